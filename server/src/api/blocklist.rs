//! `GET /v1/sites/{site}/blocklist`: the site's signed blocklist (site-admin, site-reader),
//! with a strong ETag so thousands of nodes can poll cheaply; `?format=` gives a signed
//! export naming identities, for the site's admins only.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokenledger_core::export::{ExportFormat, ExportOptions};
use tokenledger_core::wire::ErrorBody;
use utoipa::IntoParams;

use super::AppState;
use super::append::now_secs;
use super::error::ApiError;
use super::extract::ApiQuery;
use super::sites::existing_site;
use crate::blocklists::ExportRequest;
use crate::credentials::Principal;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BlocklistQuery {
    /// `json` (default: the signed blocklist), or an export naming identities (site-admin
    /// only): `htcondor`, `arc`, `argus` (compute and all-scope suspensions), `dcache`,
    /// `xrootd`, `text` (storage and all-scope suspensions).
    format: Option<String>,
    /// For `dcache`: `ISSUER=ALIAS`, the site's `gplazma.oidc.provider!<ALIAS>` of an issuer;
    /// repeat for each issuer.
    #[param(value_type = Option<Vec<String>>)]
    op_alias: Option<String>,
    /// For `xrootd` (required there): the issuer whose `[Issuer ...]` section's
    /// `name_mapfile` this is.
    issuer: Option<String>,
    /// For `xrootd`: the local name suspended users map to (default `tlbanned`; 1 to 32 of
    /// a-z, 0-9, `_`, `-`, `.`).
    xrootd_name: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/sites/{site}/blocklist",
    tag = "blocklists",
    operation_id = "site_blocklist",
    summary = "The site's signed blocklist, or an export of it",
    description = "The signed blocklist (pseudonyms and keyed tags only; no identity) with a strong \
        ETag; `If-None-Match` answers 304. Roles: `site-admin` or `site-reader` of `{site}`. With \
        `format=`, a signed export naming identities (HTCondor mapfile, ARC list, Argus commands for \
        CEs; dCache banfile, XRootD name_mapfile, text for storage), each with only the suspensions \
        its consumer enforces: `site-admin` of `{site}` only.",
    params(("site" = String, Path, description = "The site"), BlocklistQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`{\"document\": Blocklist, \"signer\", \"signature\"}`", body = Object),
        (status = 304, description = "Not modified since the ETag given"),
        (status = 400, description = "Unknown format, or options that do not fit it (op_alias, issuer, xrootd_name)", body = ErrorBody),
        (status = 403, description = "Not an admin or reader of this site (exports: admins only)", body = ErrorBody),
        (status = 404, description = "No such site", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["site-admin (of {site})", "site-reader (of {site}, without format)"]))),
)]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(site): Path<String>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<BlocklistQuery>,
) -> Result<Response, ApiError> {
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
    let vos = existing_site(&state, &site).await?;
    let now = now_secs();
    let Some(format) = format else {
        if q.op_alias.is_some() || q.issuer.is_some() || q.xrootd_name.is_some() {
            return Err(ApiError::BadRequest(
                "op_alias, issuer and xrootd_name apply to exports (format=) only".into(),
            ));
        }
        let signed = state
            .blocklists
            .current(&state.pool, &state.signer, &site, &vos, now)
            .await?;
        let etag = format!("\"{}-{}\"", site, signed.document.sequence);
        if headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
        {
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
        op_aliases: op_aliases(q.op_alias.as_deref())?,
        xrootd_issuer: q.issuer,
        xrootd_name: q.xrootd_name,
    };
    options.check(format).map_err(ApiError::BadRequest)?;
    let request = ExportRequest { format, options };
    let export = state
        .blocklists
        .export(&state.pool, &state.signer, &site, &vos, &request, now)
        .await?;
    Ok(Json(export).into_response())
}

/// Parses `ISSUER=ALIAS[,ISSUER=ALIAS...]` (a repeated query parameter arrives comma-joined
/// by clients that cannot repeat it; issuers hold no commas).
fn op_aliases(raw: Option<&str>) -> Result<BTreeMap<String, String>, ApiError> {
    let mut aliases = BTreeMap::new();
    for pair in raw
        .into_iter()
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
