//! `POST /v1/issuances`: issuers report the tokens they minted; each becomes a log entry
//! and is answered with a signed receipt.
//!
//! Bodies: one report (`application/json` object), an array of up to [`MAX_BATCH`] (all or
//! nothing), or `application/x-ndjson`, one report a line, each line answered on its own.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use tokenledger_core::access::Role;
use tokenledger_core::entry::{EntryBody, Issuance, ReportContext, Source};
use tokenledger_core::receipt::Receipt;
use tokenledger_core::strict_json;
use tokenledger_core::vo::derive_vo;
use tokenledger_core::wire::{
    AppendStatus, Appended, AppendedBatch, ErrorBody, ErrorDetail, IssuanceAnswer, IssuanceReport,
    IssuanceRequest, LineResult, MAX_BATCH,
};

use super::AppState;
use super::error::ApiError;
use super::nul;
use crate::credentials::Principal;
use crate::issuers::verify_token;
use crate::sequencer::{EntryKind, PreparedEntry, Sequenced};
use crate::service::redacted_reports;
use crate::store::IssuanceKey;

/// Most lines of one `application/x-ndjson` request.
pub const MAX_NDJSON_LINES: usize = 10_000;

/// `POST /v1/issuances`.
#[utoipa::path(
    post,
    path = "/v1/issuances",
    tag = "issuances",
    operation_id = "report_issuances",
    summary = "Report issued tokens",
    description = "Each report becomes a log entry and is answered with a signed receipt; a \
        `jti` already logged by the same issuer is a duplicate and keeps its index. \
        `application/json`: one report, or an array of 1 to 1000 reports, all or nothing (any bad \
        report refuses the request). `application/x-ndjson`: up to 10,000 reports, one a line, \
        each line answered on its own line (a good line is logged even if another is refused). \
        Roles: `issuer` of the VO of every report (a signed JWT's VO comes from its issuer's \
        rules; unsigned claims only from an issuer credential bound to their `iss`), or \
        `admin`.",
    request_body(
        description = "Issuance reports",
        content(
            (IssuanceRequest = "application/json"),
            (IssuanceReport = "application/x-ndjson"),
        ),
    ),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "At least one new entry", body = IssuanceAnswer),
        (status = 200, description = "JSON: every report was a duplicate. NDJSON: always, one \
            result or error per non-empty input line", content(
            (IssuanceAnswer = "application/json"),
            (LineResult = "application/x-ndjson"),
        )),
        (status = 400, description = "Malformed JSON, not a report or array, empty or too large \
            batch, a report with both or neither of `token` and `claims`, a bad `feed`",
            body = ErrorBody),
        (status = 403, description = "The credential may not report issuances (of this VO, or \
            unsigned claims of this issuer)", body = ErrorBody),
        (status = 410, description = "JSON: a report of an issuance that was logged and \
            redacted since (`redacted`, naming its index): it is not logged again (NDJSON: that \
            line's error)", body = ErrorBody),
        (status = 413, description = "Body larger than the configured limit", body = ErrorBody),
        (status = 415, description = "Content-Type neither `application/json` nor \
            `application/x-ndjson`", body = ErrorBody),
        (status = 422, description = "A token or claims refused: unknown issuer, bad signature, \
            expired, VO not derived (`vo_not_derived`), unknown VO (`unknown_vo`), invalid \
            claims (`invalid_claims`), a member name repeated in the body, the claims or a \
            token's header or payload (`duplicate_member`), a token header with `crit` \
            (`critical_extension`), a token without `exp` (`exp_required`, unless its issuer \
            has `require_exp = false`), ...", body = ErrorBody),
        (status = 503, description = "The sequencer is busy or shutting down, or this \
            server is a standby (`not_the_writer`, naming the writer); retry (`Retry-After`)",
            body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["issuer (of the report's VO)", "admin"]))),
)]
pub async fn post(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if !matches!(principal.binding.role, Role::Admin | Role::Issuer) {
        return Err(ApiError::Forbidden(
            "reporting issuances needs an issuer credential".into(),
        ));
    }
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        _ => ApiError::BadRequest(e.body_text()),
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    match content_type.as_str() {
        "application/json" => post_json(state, principal, body).await,
        "application/x-ndjson" => post_ndjson(state, principal, body).await,
        _ => Err(ApiError::UnsupportedMediaType(
            "expected Content-Type application/json or application/x-ndjson".into(),
        )),
    }
}

async fn post_json(
    state: AppState,
    principal: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    let value = strict_json::from_slice(&body).map_err(|e| json_error("invalid JSON body", e))?;
    nul::check_json(&body, "body")?;
    let (reports, single) = match value {
        Value::Array(items) => (items, false),
        item @ Value::Object(_) => (vec![item], true),
        _ => {
            return Err(ApiError::BadRequest(
                "expected a report object or an array of reports".into(),
            ));
        }
    };
    if reports.is_empty() || reports.len() > MAX_BATCH {
        return Err(ApiError::BadRequest(format!(
            "a request carries 1 to {MAX_BATCH} reports, this one has {}",
            reports.len()
        )));
    }
    let prepared = blocking({
        let (state, principal) = (state.clone(), principal.clone());
        move || prepare_all(&state, &principal, reports)
    })
    .await??;
    let several = prepared.len() > 1;
    let checked = redacted_reports::append_unless_redacted(&state.ledger, prepared, true).await?;
    if let Some((i, index)) = checked
        .redacted
        .iter()
        .enumerate()
        .find_map(|(i, r)| r.map(|index| (i, index)))
    {
        let refused = ApiError::Redacted(redacted_reports::refusal(index));
        return Err(if several {
            prefixed(refused, i)
        } else {
            refused
        });
    }
    let sequenced = checked.appended;
    let status = if sequenced.iter().any(|r| r.status == AppendStatus::Created) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let results = blocking({
        let state = state.clone();
        move || {
            sequenced
                .iter()
                .map(|s| with_receipt(&state, s))
                .collect::<Vec<_>>()
        }
    })
    .await?;
    Ok(if single {
        let one = results.into_iter().next().expect("one result");
        (status, Json(one)).into_response()
    } else {
        (status, Json(AppendedBatch { results })).into_response()
    })
}

async fn post_ndjson(
    state: AppState,
    principal: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    let lines: Vec<(u64, Vec<u8>)> = body
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, line)| {
            (
                i as u64 + 1,
                line.strip_suffix(b"\r").unwrap_or(line).to_vec(),
            )
        })
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .collect();
    if lines.len() > MAX_NDJSON_LINES {
        return Err(ApiError::BadRequest(format!(
            "an NDJSON request carries at most {MAX_NDJSON_LINES} lines"
        )));
    }
    let outcomes: Vec<(u64, Result<PreparedEntry, ApiError>)> = blocking({
        let (state, principal) = (state.clone(), principal.clone());
        move || {
            lines
                .into_iter()
                .map(|(n, line)| {
                    (
                        n,
                        parse_line(&line).and_then(|r| prepare(&state, &principal, r)),
                    )
                })
                .collect()
        }
    })
    .await?;
    let mut outcomes = outcomes;
    let prepared: Vec<PreparedEntry> = outcomes
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().cloned())
        .collect();
    let checked = redacted_reports::append_unless_redacted(&state.ledger, prepared, false).await?;
    let mut redacted = checked.redacted.into_iter();
    for (_, outcome) in outcomes.iter_mut().filter(|(_, r)| r.is_ok()) {
        if let Some(index) = redacted.next().flatten() {
            *outcome = Err(ApiError::Redacted(redacted_reports::refusal(index)));
        }
    }
    let mut sequenced = checked.appended.into_iter();
    let lines = blocking(move || {
        let mut out = Vec::new();
        for (line, outcome) in outcomes {
            let result = match outcome {
                Ok(_) => LineResult::Appended(with_receipt(
                    &state,
                    &sequenced.next().expect("one per entry"),
                )),
                Err(e) => LineResult::Rejected {
                    line,
                    error: ErrorDetail {
                        code: e.status_and_code().1.to_string(),
                        message: e.to_string(),
                    },
                },
            };
            serde_json::to_writer(&mut out, &result).expect("serializable");
            out.push(b'\n');
        }
        out
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], lines).into_response())
}

fn parse_line(line: &[u8]) -> Result<IssuanceReport, ApiError> {
    let text =
        std::str::from_utf8(line).map_err(|_| ApiError::BadRequest("line is not UTF-8".into()))?;
    let report = serde_json::from_str(text).map_err(|e| json_error("invalid report", e))?;
    nul::check_json(line, "report")?;
    Ok(report)
}

/// A body or line that did not parse: a repeated member name (at any depth) is refused as
/// `duplicate_member` (the report has no one reading), anything else is a bad request.
fn json_error(what: &str, e: serde_json::Error) -> ApiError {
    if strict_json::is_duplicate_member(&e) {
        ApiError::unprocessable("duplicate_member", format!("{what}: {e}"))
    } else {
        ApiError::BadRequest(format!("{what}: {e}"))
    }
}

/// Validates every report; any bad report refuses the whole request, naming it.
fn prepare_all(
    state: &AppState,
    principal: &Principal,
    reports: Vec<Value>,
) -> Result<Vec<PreparedEntry>, ApiError> {
    let many = reports.len() > 1;
    reports
        .into_iter()
        .enumerate()
        .map(|(i, report)| {
            serde_json::from_value(report)
                .map_err(|e| ApiError::BadRequest(format!("invalid report: {e}")))
                .and_then(|r| prepare(state, principal, r))
                .map_err(|e| if many { prefixed(e, i) } else { e })
        })
        .collect()
}

fn prefixed(e: ApiError, i: usize) -> ApiError {
    match e {
        ApiError::Unprocessable { code, message } => {
            ApiError::unprocessable(code, format!("report {i}: {message}"))
        }
        ApiError::BadRequest(m) => ApiError::BadRequest(format!("report {i}: {m}")),
        ApiError::Forbidden(m) => ApiError::Forbidden(format!("report {i}: {m}")),
        ApiError::Redacted(m) => ApiError::Redacted(format!("report {i}: {m}")),
        other => other,
    }
}

/// Checks one report (signature or credential binding, VO, permission) and builds its entry.
fn prepare(
    state: &AppState,
    principal: &Principal,
    report: IssuanceReport,
) -> Result<PreparedEntry, ApiError> {
    if report.feed.as_deref().is_some_and(|f| !valid_feed_name(f)) {
        return Err(ApiError::BadRequest(
            "feed is 1-32 characters of a-z, 0-9, '-'".into(),
        ));
    }
    let (claims, source, vo, token_sha256) = match (report.token, report.claims) {
        (Some(token), None) => {
            let (claims, vo, sha) = verified_claims(state, principal, &token)?;
            (claims, Source::Jwt, vo, Some(sha))
        }
        (None, Some(claims)) => {
            let vo = claims_vo(state, principal, &claims)?;
            (claims, Source::Claims, vo, None)
        }
        _ => {
            return Err(ApiError::BadRequest(
                "a report carries exactly one of `token` and `claims`".into(),
            ));
        }
    };
    let ctx = ReportContext {
        source,
        vo,
        grant_type: report.grant_type,
        parent_jti: report.parent_jti,
        refresh_jti: report.refresh_jti,
        token_sha256,
        feed: report.feed,
    };
    let issuance = Issuance::from_claims(claims, ctx)
        .map_err(|e| ApiError::unprocessable("invalid_claims", e.to_string()))?;
    let key = IssuanceKey::of(&issuance);
    let logged_at = state.ledger.clock.now_micros();
    PreparedEntry::new(
        logged_at,
        EntryBody::Issuance(Box::new(issuance)),
        EntryKind::Issuance(key),
    )
    .map_err(|e| ApiError::unprocessable("invalid_claims", e.to_string()))
}

/// A JWT: verified against its issuer's keys; the VO comes from the issuer's rules.
fn verified_claims(
    state: &AppState,
    principal: &Principal,
    token: &str,
) -> Result<(Map<String, Value>, String, String), ApiError> {
    let now = state.ledger.clock.now_secs();
    let verified = verify_token(&state.issuers, token.trim(), now, &state.config.ingest)
        .map_err(|e| ApiError::unprocessable(e.code(), e.to_string()))?;
    nul::check_claims(&verified.claims)?;
    let issuer = &verified.issuer.config;
    let known = |vo: &str| state.config.knows_vo(vo) && issuer.allows_vo(vo);
    let vo = derive_vo(&issuer.vo_rules, &verified.claims, &known)
        .map_err(|e| ApiError::unprocessable("vo_not_derived", e.to_string()))?;
    if !principal.binding.may_append(&vo) {
        return Err(ApiError::Forbidden(format!(
            "this credential may not report issuances of VO `{vo}`"
        )));
    }
    Ok((verified.claims, vo, verified.token_sha256))
}

/// Unsigned claims: only from a credential bound to their issuer; the VO is the credential's
/// (an admin names it in the claims).
fn claims_vo(
    state: &AppState,
    principal: &Principal,
    claims: &Map<String, Value>,
) -> Result<String, ApiError> {
    let named_vo = string_claim(claims, "vo")?;
    let vo = match (&principal.binding.vo, named_vo) {
        (Some(bound), Some(named)) if bound != named => {
            return Err(ApiError::Forbidden(format!(
                "this credential may not report issuances of VO `{named}`"
            )));
        }
        (Some(bound), _) => bound.clone(),
        (None, Some(named)) => named.to_string(),
        (None, None) => {
            return Err(ApiError::unprocessable(
                "invalid_claims",
                "claim `vo` is required",
            ));
        }
    };
    if !state.config.knows_vo(&vo) {
        return Err(ApiError::unprocessable(
            "unknown_vo",
            format!("VO `{vo}` is not configured on this ledger"),
        ));
    }
    let iss = string_claim(claims, "iss")?
        .ok_or_else(|| ApiError::unprocessable("invalid_claims", "claim `iss` is required"))?;
    if !principal.binding.may_report_claims(iss, &vo) {
        return Err(ApiError::Forbidden(format!(
            "unsigned claims of issuer `{iss}` are accepted only from an issuer credential bound to it \
             (credential create --issuer); send the signed token instead"
        )));
    }
    Ok(vo)
}

/// A claim that must be a string when present.
fn string_claim<'a>(
    claims: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, ApiError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::unprocessable(
            "invalid_claims",
            format!("claim `{name}` is invalid: must be a string"),
        )),
    }
}

fn valid_feed_name(feed: &str) -> bool {
    (1..=32).contains(&feed.len())
        && feed
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn with_receipt(state: &AppState, s: &Sequenced) -> Appended {
    let receipt = Receipt::sign(&state.signer, s.index, s.leaf_hash, s.logged_at);
    Appended {
        index: s.index,
        leaf_hash: s.leaf_hash,
        integrated_at: s.logged_at,
        receipt: receipt.signature,
        status: s.status,
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))
}
