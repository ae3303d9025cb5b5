//! The log's read API: checkpoint, verifier key, inclusion and consistency proofs (public,
//! hashes only), and entries (personal data: admin or ledger-wide auditor).

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Deserialize;
use tokenledger_core::merkle::{self, Hash};
use tokenledger_core::wire::{
    ConsistencyProof, EntriesPage, ErrorBody, InclusionProof, LogEntryView, MAX_ENTRIES_PAGE,
    Redacted, RedactedEntryView,
};
use utoipa::IntoParams;

use super::AppState;
use super::error::ApiError;
use super::extract::ApiQuery;
use crate::credentials::Principal;
use crate::service::entries::served;
use crate::store::LogRecord;

const TEXT: &str = "text/plain; charset=utf-8";

/// `GET /v1/log/checkpoint`: the latest signed checkpoint note.
#[utoipa::path(
    get,
    path = "/v1/log/checkpoint",
    tag = "log",
    operation_id = "checkpoint",
    summary = "The latest signed checkpoint",
    description = "A C2SP `tlog-checkpoint` signed note: origin, size, base64 root hash, a blank \
        line, then the log key's Ed25519 signature line. Hashes only. Roles: public.",
    responses((
        status = 200,
        description = "The signed note",
        body = String,
        content_type = "text/plain; charset=utf-8",
    )),
    extensions(("x-roles" = json!(["public"]))),
)]
pub async fn checkpoint(State(state): State<AppState>) -> impl IntoResponse {
    let head = state.ledger.head();
    (
        [
            (header::CONTENT_TYPE, TEXT),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        head.note.clone(),
    )
}

/// `GET /v1/log/key`: the verifier key of the log, `name+keyid+base64key`.
#[utoipa::path(
    get,
    path = "/v1/log/key",
    tag = "log",
    operation_id = "log_key",
    summary = "The log's verifier key",
    description = "The C2SP note verifier key of the log, `<name>+<hex key id>+<base64(0x01 || \
        Ed25519 public key)>`, and a newline. Roles: public.",
    responses((
        status = 200,
        description = "The verifier key line",
        body = String,
        content_type = "text/plain; charset=utf-8",
    )),
    extensions(("x-roles" = json!(["public"]))),
)]
pub async fn key(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, TEXT)],
        format!("{}\n", state.verifier),
    )
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InclusionQuery {
    /// The entry's index: less than `size`.
    #[serde(deserialize_with = "super::extract::index")]
    index: u64,
    /// The tree size: greater than `index`; a size the log has not reached is not found.
    #[param(minimum = 1)]
    #[serde(deserialize_with = "super::extract::index")]
    size: u64,
}

/// `GET /v1/log/proof/inclusion?index=&size=`.
#[utoipa::path(
    get,
    path = "/v1/log/proof/inclusion",
    tag = "log",
    operation_id = "inclusion_proof",
    summary = "Inclusion proof of an entry",
    description = "The RFC 9162 audit path of entry `index` in the tree of size `size` \
        (`index < size`). Hashes only. Roles: public.",
    params(InclusionQuery),
    responses(
        (status = 200, description = "The proof", body = InclusionProof),
        (status = 400, description = "Missing or malformed parameters, or `index >= size`",
            body = ErrorBody),
        (status = 404, description = "`size` is beyond the log", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["public"]))),
)]
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
        state.ledger.reader.inclusion_proof(q.index, q.size).await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    /// The older tree size: at most `to`.
    #[serde(deserialize_with = "super::extract::index")]
    from: u64,
    /// The newer tree size; a size the log has not reached is not found.
    #[serde(deserialize_with = "super::extract::index")]
    to: u64,
}

/// `GET /v1/log/proof/consistency?from=&to=`; from 0 is an empty proof.
#[utoipa::path(
    get,
    path = "/v1/log/proof/consistency",
    tag = "log",
    operation_id = "consistency_proof",
    summary = "Consistency proof between two tree sizes",
    description = "The RFC 9162 consistency path from size `from` to size `to` \
        (`from <= to`); from 0 it is empty. Hashes only. Roles: public.",
    params(ConsistencyQuery),
    responses(
        (status = 200, description = "The proof", body = ConsistencyProof),
        (status = 400, description = "Missing or malformed parameters, or `from > to`",
            body = ErrorBody),
        (status = 404, description = "`to` is beyond the log", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["public"]))),
)]
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
    let hashes = state.ledger.reader.read_hashes(&indexes).await?;
    let proof: Vec<Hash> = merkle::consistency_proof(q.from, q.to, &hashes).map_err(internal)?;
    Ok(Json(ConsistencyProof {
        from: q.from,
        to: q.to,
        hashes: proof,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EntriesQuery {
    /// The first index: less than `end`; an index the log has not reached is not found.
    #[serde(deserialize_with = "super::extract::index")]
    start: u64,
    /// One past the last index asked for. The page ends at the log's size and holds at most
    /// 1000 entries: ask again from the index after the last one served.
    #[param(minimum = 1)]
    #[serde(deserialize_with = "super::extract::index")]
    end: u64,
}

/// `GET /v1/log/entries?start=&end=`: entries start..end (end exclusive, cut at the log's size).
#[utoipa::path(
    get,
    path = "/v1/log/entries",
    tag = "log",
    operation_id = "log_entries",
    summary = "Log entries by index range",
    description = "Entries from `start` (`start < end`) up to `end`, the log's size or 1000 \
        entries, whichever comes first (as RFC 6962 `get-entries`), each with the base64 of \
        exactly the bytes that were hashed. An entry whose bytes a retention run or an erasure \
        removed is served as `{index, leaf_hash, redacted: {at, by}}`: its leaf hash (base64, \
        as in proofs) is the one its inclusion proofs commit to; `at` is when (unix \
        microseconds), `by` the index of the `redaction` or `erasure` entry. Entries carry \
        personal data of every VO. Roles: \
        `admin`, or an `auditor` not bound to a VO (ledger-wide); a VO's officers see its \
        people only through logged resolution.",
    params(EntriesQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The entries", body = EntriesPage),
        (status = 400, description = "Missing or malformed parameters, or `start >= end`",
            body = ErrorBody),
        (status = 403, description = "Neither admin nor ledger-wide auditor", body = ErrorBody),
        (status = 404, description = "`start` is beyond the log", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["admin", "auditor (ledger-wide)"]))),
)]
pub async fn entries(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<EntriesQuery>,
) -> Result<Json<EntriesPage>, ApiError> {
    if !principal.binding.may_read_entries() {
        return Err(ApiError::Forbidden(
            "reading log entries needs an admin or a ledger-wide auditor credential".into(),
        ));
    }
    if q.start >= q.end {
        return Err(ApiError::BadRequest("start must be less than end".into()));
    }
    let size = state.ledger.head().size;
    if q.start >= size {
        return Err(ApiError::NotFound(format!(
            "start {} is beyond the log (size {size})",
            q.start
        )));
    }
    let end = q
        .end
        .min(size)
        .min(q.start.saturating_add(MAX_ENTRIES_PAGE));
    let rows = state.ledger.reader.entries(q.start, end).await?;
    let entries = rows
        .into_iter()
        .map(|record| match record {
            LogRecord::Leaf((index, leaf)) => served(index, &leaf).map(LogEntryView::Served),
            LogRecord::Redacted(r) => Ok(LogEntryView::Redacted(RedactedEntryView {
                index: r.index,
                leaf_hash: r.leaf_hash,
                redacted: Redacted { at: r.at, by: r.by },
            })),
        })
        .collect::<Result<_, _>>()?;
    Ok(Json(EntriesPage { entries }))
}

/// A tree size the log has not reached is not found (404), like the proof asked of it.
fn check_size(state: &AppState, size: u64) -> Result<(), ApiError> {
    let current = state.ledger.head().size;
    if size > current {
        return Err(ApiError::NotFound(format!(
            "size {size} is beyond the log (current size {current})"
        )));
    }
    Ok(())
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}
