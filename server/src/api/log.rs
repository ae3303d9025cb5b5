//! The log's read API: checkpoint, verifier key, inclusion and consistency proofs (public,
//! hashes only), and entries (personal data: admin or ledger-wide auditor).

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use tokenledger_core::merkle::{self, Hash};
use tokenledger_core::wire::{
    ConsistencyProof, EntriesPage, InclusionProof, MAX_ENTRIES_PAGE, ServedEntry,
};

use super::AppState;
use super::error::ApiError;
use super::extract::ApiQuery;
use crate::credentials::Principal;
use crate::log_store;

const TEXT: &str = "text/plain; charset=utf-8";

/// `GET /v1/log/checkpoint`: the latest signed checkpoint note.
pub async fn checkpoint(State(state): State<AppState>) -> impl IntoResponse {
    let head = state.sequencer.head();
    (
        [
            (header::CONTENT_TYPE, TEXT),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        head.note.clone(),
    )
}

/// `GET /v1/log/key`: the verifier key of the log, `name+keyid+base64key`.
pub async fn key(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, TEXT)],
        format!("{}\n", state.verifier),
    )
}

#[derive(Deserialize)]
pub struct InclusionQuery {
    index: u64,
    size: u64,
}

/// `GET /v1/log/proof/inclusion?index=&size=`.
pub async fn inclusion(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<InclusionQuery>,
) -> Result<Json<InclusionProof>, ApiError> {
    check_size(&state, q.size)?;
    if q.index >= q.size {
        return Err(ApiError::BadRequest(format!(
            "index {} is not in a tree of size {}",
            q.index, q.size
        )));
    }
    Ok(Json(
        log_store::read_inclusion_proof(&state.pool, q.index, q.size).await?,
    ))
}

#[derive(Deserialize)]
pub struct ConsistencyQuery {
    from: u64,
    to: u64,
}

/// `GET /v1/log/proof/consistency?from=&to=`; from 0 is an empty proof.
pub async fn consistency(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ConsistencyQuery>,
) -> Result<Json<ConsistencyProof>, ApiError> {
    check_size(&state, q.to)?;
    if q.from > q.to {
        return Err(ApiError::BadRequest(format!(
            "from ({}) must not be greater than to ({})",
            q.from, q.to
        )));
    }
    let indexes = merkle::consistency_proof_indexes(q.from, q.to)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let hashes = log_store::read_hashes(&state.pool, &indexes).await?;
    let proof: Vec<Hash> = merkle::consistency_proof(q.from, q.to, &hashes).map_err(internal)?;
    Ok(Json(ConsistencyProof {
        from: q.from,
        to: q.to,
        hashes: proof,
    }))
}

#[derive(Deserialize)]
pub struct EntriesQuery {
    start: u64,
    end: u64,
}

/// `GET /v1/log/entries?start=&end=`: entries start..end (end exclusive, cut at the log's size).
pub async fn entries(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<EntriesQuery>,
) -> Result<Json<EntriesPage>, ApiError> {
    if !principal.binding.may_read_all_entries() {
        return Err(ApiError::Forbidden(
            "reading log entries needs an admin or a ledger-wide auditor credential".into(),
        ));
    }
    if q.start >= q.end {
        return Err(ApiError::BadRequest("start must be less than end".into()));
    }
    if q.end - q.start > MAX_ENTRIES_PAGE {
        return Err(ApiError::BadRequest(format!(
            "a page holds at most {MAX_ENTRIES_PAGE} entries"
        )));
    }
    let size = state.sequencer.head().size;
    if q.start >= size {
        return Err(ApiError::BadRequest(format!(
            "start {} is beyond the log (size {size})",
            q.start
        )));
    }
    let rows = log_store::read_entries(&state.pool, q.start, q.end.min(size)).await?;
    let entries = rows
        .into_iter()
        .map(|(index, leaf)| served(index, &leaf))
        .collect::<Result<_, ApiError>>()?;
    Ok(Json(EntriesPage { entries }))
}

/// An entry as served: index, base64 of its canonical bytes, and those bytes decoded.
pub fn served(index: u64, leaf: &[u8]) -> Result<ServedEntry, ApiError> {
    Ok(ServedEntry {
        index,
        leaf: STANDARD.encode(leaf),
        entry: serde_json::from_slice(leaf).map_err(internal)?,
    })
}

fn check_size(state: &AppState, size: u64) -> Result<(), ApiError> {
    let current = state.sequencer.head().size;
    if size > current {
        return Err(ApiError::BadRequest(format!(
            "size {size} is beyond the log (current size {current})"
        )));
    }
    Ok(())
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}
