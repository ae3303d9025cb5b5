//! `POST /v1/issuances`: issuers report the tokens they minted; each becomes a log entry.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokenledger_core::entry::{EntryBody, Issuance, LogEntry, Source};
use tokenledger_core::merkle::leaf_hash;
use tokenledger_core::wire::{AppendStatus, Appended, AppendedBatch, IssuanceReport, MAX_BATCH};

use super::AppState;
use super::error::ApiError;
use super::extract::ApiJson;
use crate::credentials::Principal;
use crate::sequencer::{IssuanceKey, PreparedEntry, now_micros};

/// One report (`{"claims": {...}}`) answers `Appended`; an array answers `AppendedBatch`.
/// 201 when something new was logged, 200 when every report was already in the log.
pub async fn post(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let (reports, single) = match body {
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
    let logged_at = now_micros();
    let prepared = if single {
        prepare_all(&state, &principal, reports, logged_at)?
    } else {
        let (state2, principal2) = (state.clone(), principal.clone());
        tokio::task::spawn_blocking(move || prepare_all(&state2, &principal2, reports, logged_at))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??
    };
    let results = state.sequencer.append(prepared).await?;
    let status = if results.iter().any(|r| r.status == AppendStatus::Created) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(if single {
        (
            status,
            Json::<Appended>(results.into_iter().next().expect("one result")),
        )
            .into_response()
    } else {
        (status, Json(AppendedBatch { results })).into_response()
    })
}

/// Validates every report and builds its canonical entry; any bad report refuses the whole request.
fn prepare_all(
    state: &AppState,
    principal: &Principal,
    reports: Vec<Value>,
    logged_at: i64,
) -> Result<Vec<PreparedEntry>, ApiError> {
    let many = reports.len() > 1;
    reports
        .into_iter()
        .enumerate()
        .map(|(i, report)| {
            prepare(state, principal, report, logged_at).map_err(|e| match e {
                ApiError::Unprocessable { code, message } if many => {
                    ApiError::unprocessable(code, format!("report {i}: {message}"))
                }
                ApiError::BadRequest(message) if many => {
                    ApiError::BadRequest(format!("report {i}: {message}"))
                }
                ApiError::Forbidden(message) if many => {
                    ApiError::Forbidden(format!("report {i}: {message}"))
                }
                other => other,
            })
        })
        .collect()
}

fn prepare(
    state: &AppState,
    principal: &Principal,
    report: Value,
    logged_at: i64,
) -> Result<PreparedEntry, ApiError> {
    let report: IssuanceReport = serde_json::from_value(report)
        .map_err(|e| ApiError::BadRequest(format!("invalid report: {e}")))?;
    let issuance = Issuance::from_claims(report.claims, Source::Claims)
        .map_err(|e| ApiError::unprocessable("invalid_claims", e.to_string()))?;
    if !state.config.knows_vo(&issuance.vo) {
        return Err(ApiError::unprocessable(
            "unknown_vo",
            format!("VO `{}` is not configured on this ledger", issuance.vo),
        ));
    }
    if !principal.binding.may_append(&issuance.vo) {
        return Err(ApiError::Forbidden(format!(
            "this credential may not report issuances of VO `{}`",
            issuance.vo
        )));
    }
    let key = IssuanceKey {
        jti: issuance.jti.clone(),
        iss: issuance.iss.clone(),
    };
    let leaf = LogEntry::new(logged_at, EntryBody::Issuance(issuance))
        .canonical_bytes()
        .map_err(|e| ApiError::unprocessable("invalid_claims", e.to_string()))?;
    Ok(PreparedEntry {
        leaf_hash: leaf_hash(&leaf),
        leaf,
        dedup: Some(key),
    })
}
