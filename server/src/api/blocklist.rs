//! `GET /v1/sites/{site}/blocklist`: the site's signed blocklist (site-admin, site-reader),
//! with a strong ETag so thousands of nodes can poll cheaply, and `?wait=` to hold a poll
//! open until a newer sequence exists (long poll); `?format=` gives a signed export naming
//! identities, for the site's admins only. Every answer is recorded as a fetch of its sequence by the
//! caller's credential (enforcement status; [`crate::blocklists::Blocklists::record_fetch`]),
//! except a signed blocklist refused to a reader that cannot verify it (an older format).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokenledger_core::blocklist::{BLOCKLIST_READER_HEADER, SignedBlocklist};
use tokenledger_core::export::{ExportFormat, ExportOptions};
use tokenledger_core::ids::Site;
use tokenledger_core::wire::ErrorBody;
use tokenledger_core::wire::checked::BlocklistFormat;
use utoipa::IntoParams;

use super::AppState;
use super::error::ApiError;
use super::extract::ApiQuery;
use crate::blocklists::{ExportRequest, MAX_WAIT_SECS, WaitError};
use crate::credentials::Principal;
use crate::service::sites;

/// The query of `GET /v1/sites/{site}/blocklist`. `op_alias` may repeat, so it is read from
/// the query's pairs ([`BlocklistQuery::from_pairs`]) rather than by `serde_urlencoded`,
/// which refuses a repeated key.
#[derive(Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BlocklistQuery {
    /// `json` (default: the signed blocklist), or an export naming identities (site-admin
    /// only): `htcondor`, `arc`, `argus` (compute and all-scope suspensions), `dcache`,
    /// `xrootd`, `text` (storage and all-scope suspensions).
    #[param(value_type = Option<BlocklistFormat>, inline)]
    format: Option<String>,
    /// Long poll, with `If-None-Match` (signed blocklist only): seconds, 0 to 60, to hold the
    /// request while the blocklist still has that ETag. It answers 200 with the new document
    /// as soon as a newer sequence exists, else 304 at the end of the wait.
    #[param(maximum = 60)]
    wait: Option<u64>,
    /// For `dcache` only: `ISSUER=ALIAS`, the site's `gplazma.oidc.provider!<ALIAS>` of an
    /// issuer; repeat for each issuer (or join them with commas).
    #[param(required = false, pattern = r"^(,|[^,]+=[A-Za-z0-9._-]+)*$")]
    op_alias: Vec<String>,
    /// For `xrootd` only, and required there: the issuer whose `[Issuer ...]` section's
    /// `name_mapfile` this is.
    #[param(min_length = 1, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    issuer: Option<String>,
    /// For `xrootd` only: the local name suspended users map to (default `tlbanned`).
    #[param(pattern = "^[a-z0-9_.-]{1,32}$")]
    xrootd_name: Option<String>,
}

impl BlocklistQuery {
    /// The query from its `key=value` pairs: `op_alias` may repeat, the others may not;
    /// other keys are ignored.
    fn from_pairs(pairs: Vec<(String, String)>) -> Result<BlocklistQuery, ApiError> {
        let mut query = BlocklistQuery::default();
        for (key, value) in pairs {
            let single = match key.as_str() {
                "op_alias" => {
                    query.op_alias.push(value);
                    continue;
                }
                "wait" => {
                    let secs = value.parse::<u64>().map_err(|_| {
                        ApiError::BadRequest(format!(
                            "wait must be a whole number of seconds, 0 to {MAX_WAIT_SECS}, not `{value}`"
                        ))
                    })?;
                    if query.wait.replace(secs).is_some() {
                        return Err(ApiError::BadRequest("`wait` is given twice".into()));
                    }
                    continue;
                }
                "format" => &mut query.format,
                "issuer" => &mut query.issuer,
                "xrootd_name" => &mut query.xrootd_name,
                _ => continue,
            };
            if single.replace(value).is_some() {
                return Err(ApiError::BadRequest(format!("`{key}` is given twice")));
            }
        }
        Ok(query)
    }
}

#[utoipa::path(
    get,
    path = "/v1/sites/{site}/blocklist",
    tag = "blocklists",
    operation_id = "site_blocklist",
    summary = "The site's signed blocklist, or an export of it",
    description = "The signed blocklist (pseudonyms and keyed tags only; no identity) with a strong \
        ETag; `If-None-Match` answers 304. With `If-None-Match` and `wait=N` (seconds, at most 60), \
        a long poll: the request is held until a newer sequence exists (200 with it, at once) or \
        the wait ends (304). Roles: `site-admin` or `site-reader` of `{site}`. With \
        `format=`, a signed export naming identities (HTCondor mapfile, ARC list, Argus commands for \
        CEs; dCache banfile, XRootD name_mapfile, text for storage), each with only the suspensions \
        its consumer enforces: `site-admin` of `{site}` only. A reader declares the blocklist \
        format it reads in `TokenLedger-Blocklist-Reader` (absent: 1); a signed blocklist \
        holding client suspensions or not-before cut-offs (format 2) is refused (406, not \
        recorded as a fetch) to a reader of format 1, which could not verify it. Exports are \
        not affected.",
    params(
        ("site" = String, Path, description = "The site"),
        ("TokenLedger-Blocklist-Reader" = Option<u32>, Header, nullable = false,
            description = "The blocklist format the reader reads: 2 reads client suspensions \
            and not-before cut-offs; absent: 1", minimum = 1),
        BlocklistQuery
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`{\"document\": Blocklist, \"signer\", \"signature\"}`", body = Object),
        (status = 304, description = "Not modified since the ETag given (with wait: nothing newer by its end)"),
        (status = 400, description = "Unknown format, options that do not fit it (op_alias, issuer, xrootd_name), a wait outside 0 to 60 or with format=, or a reader format that is not a whole number from 1", body = ErrorBody),
        (status = 403, description = "Not an admin or reader of this site (exports: admins only)", body = ErrorBody),
        (status = 404, description = "No such site", body = ErrorBody),
        (status = 406, description = "The signed blocklist holds client suspensions or not-before cut-offs and the reader declared no format 2 (`TokenLedger-Blocklist-Reader`): upgrade it", body = ErrorBody),
        (status = 503, description = "Too many long polls wait already; ask again later", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["site-admin (of {site})", "site-reader (of {site}, without format)"]))),
)]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(site): Path<String>,
    headers: HeaderMap,
    ApiQuery(pairs): ApiQuery<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let q = BlocklistQuery::from_pairs(pairs)?;
    if !principal.binding.may_read_blocklist(&site) {
        return Err(ApiError::Forbidden(format!(
            "only admins and readers of site `{site}` fetch its blocklist"
        )));
    }
    let format = match q.format.as_deref() {
        None | Some("json") => None,
        Some(other) => Some(
            other
                .parse::<ExportFormat>()
                .map_err(ApiError::BadRequest)?,
        ),
    };
    if format.is_some() && !principal.binding.may_administer_site(&site) {
        return Err(ApiError::Forbidden(
            "exports name identities: only the site's admins get them".into(),
        ));
    }
    let wait = match q.wait {
        Some(secs) if secs > MAX_WAIT_SECS => {
            return Err(ApiError::BadRequest(format!(
                "wait is at most {MAX_WAIT_SECS} seconds, not {secs}"
            )));
        }
        Some(_) if format.is_some() => {
            return Err(ApiError::BadRequest(
                "wait applies to the signed blocklist only, not to exports (format=)".into(),
            ));
        }
        secs => Duration::from_secs(secs.unwrap_or(0)),
    };
    let site = Site::unchecked(site);
    let vos = sites::existing(state.ledger.reader.as_ref(), &site).await?;
    let now = state.ledger.clock.now_secs();
    let Some(format) = format else {
        if !q.op_alias.is_empty() || q.issuer.is_some() || q.xrootd_name.is_some() {
            return Err(ApiError::BadRequest(
                "op_alias, issuer and xrootd_name apply to exports (format=) only".into(),
            ));
        }
        let reader = reader_format(&headers)?;
        let (signed, _) = state
            .blocklists
            .current(&state.signer, &site, &vos, now)
            .await?;
        let if_none_match = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok());
        let held = |doc: &SignedBlocklist| {
            if_none_match.is_some_and(|tags| matches_etag(tags, &etag_of(doc)))
        };
        let signed = if held(&signed) && !wait.is_zero() {
            state
                .blocklists
                .wait_for_change(&state.signer, &site, &vos, wait, held)
                .await
                .map_err(|e| match e {
                    WaitError::Busy => ApiError::Unavailable(e.to_string()),
                    WaitError::Store(e) => e.into(),
                })?
        } else {
            signed
        };
        if signed.document.format() > reader {
            // Not recorded as a fetch: the node cannot use the document, and the VO must see
            // that it does not hold the suspensions.
            return Err(ApiError::NotAcceptable(
                "this site's blocklist holds client suspensions or not-before cut-offs, which \
                 this reader cannot verify: upgrade tokenledger on this node to read it"
                    .into(),
            ));
        }
        let etag = etag_of(&signed);
        let not_modified = held(&signed);
        state.blocklists.record_fetch(
            &site,
            &principal.id,
            signed.document.sequence,
            !not_modified,
        );
        if not_modified {
            return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
        }
        let mut response = Json(signed).into_response();
        let etag = HeaderValue::from_str(&etag).map_err(|e| ApiError::Internal(e.to_string()))?;
        response.headers_mut().insert(header::ETAG, etag);
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return Ok(response);
    };
    let options = ExportOptions {
        op_aliases: op_aliases(&q.op_alias)?,
        xrootd_issuer: q.issuer,
        xrootd_name: q.xrootd_name,
    };
    options.check(format).map_err(ApiError::BadRequest)?;
    let request = ExportRequest { format, options };
    let export = state
        .blocklists
        .export(&state.signer, &site, &vos, &request, now)
        .await?;
    // Only a last fetch: an export leaves out what its consumer does not enforce (and names
    // no single-token suspension), so it never shows that the site holds a suspension.
    state
        .blocklists
        .record_fetch(&site, &principal.id, export.document.sequence, false);
    Ok(Json(export).into_response())
}

/// The blocklist format the fetcher reads, from [`BLOCKLIST_READER_HEADER`]: 1 without it
/// (readers before client suspensions and cut-offs did not send it). A whole number from 1;
/// one beyond `u32` reads every format there is.
fn reader_format(headers: &HeaderMap) -> Result<u32, ApiError> {
    let Some(value) = headers.get(BLOCKLIST_READER_HEADER) else {
        return Ok(1);
    };
    value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .map(|v| v.parse::<u32>().unwrap_or(u32::MAX))
        .filter(|&v| v >= 1)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "{BLOCKLIST_READER_HEADER} is the blocklist format the reader reads, a whole \
                 number from 1"
            ))
        })
}

/// The strong ETag of a site's signed blocklist: the site and the sequence.
fn etag_of(signed: &SignedBlocklist) -> String {
    format!("\"{}-{}\"", signed.document.site, signed.document.sequence)
}

/// Whether an `If-None-Match` value names `etag` (or is `*`).
fn matches_etag(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .any(|t| t.trim() == etag || t.trim() == "*")
}

/// Parses each `ISSUER=ALIAS[,ISSUER=ALIAS...]` (the parameter repeats, or arrives
/// comma-joined from clients that cannot repeat it; issuers hold no commas).
fn op_aliases(raw: &[String]) -> Result<BTreeMap<String, String>, ApiError> {
    let mut aliases = BTreeMap::new();
    for pair in raw
        .iter()
        .flat_map(|r| r.split(','))
        .filter(|p| !p.is_empty())
    {
        let (iss, alias) = pair
            .rsplit_once('=')
            .filter(|(i, a)| {
                !i.is_empty()
                    && !a.is_empty()
                    && a.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            })
            .ok_or_else(|| {
                ApiError::BadRequest(format!("op_alias `{pair}` is not ISSUER=ALIAS"))
            })?;
        aliases.insert(iss.to_string(), alias.to_string());
    }
    Ok(aliases)
}
