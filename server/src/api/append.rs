//! Appending one entry from a handler: canonical bytes and leaf hash at the edge, then the
//! sequencer, which decides whether a state change still applies; the index comes back once
//! the entry (and its state rows) are durable.

use tokenledger_core::entry::{EntryBody, LogEntry};
use tokenledger_core::merkle::leaf_hash;

use super::AppState;
use super::error::ApiError;
use crate::clock::now_micros;
use crate::sequencer::{AppendError, EntryKind, PreparedEntry};

/// Appends `body` with the state change `kind`; returns its log index. A refused change is
/// 404 or 409 with the reason.
pub async fn append_entry(
    state: &AppState,
    body: EntryBody,
    kind: EntryKind,
) -> Result<u64, ApiError> {
    Ok(append_decided(state, prepare_entry(body, kind)?).await?)
}

/// The entry of `body`, logged now, with the state change `kind`.
pub fn prepare_entry(body: EntryBody, kind: EntryKind) -> Result<PreparedEntry, ApiError> {
    let logged_at = now_micros();
    let leaf = LogEntry::new(logged_at, body)
        .canonical_bytes()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(PreparedEntry {
        leaf_hash: leaf_hash(&leaf),
        leaf,
        logged_at,
        kind,
    })
}

/// Appends one prepared entry; returns its log index, or the sequencer's refusal for the
/// handler to render.
pub async fn append_decided(state: &AppState, entry: PreparedEntry) -> Result<u64, AppendError> {
    let done = state.sequencer.append(vec![entry]).await?;
    Ok(done[0].index)
}

/// Unix seconds now.
pub fn now_secs() -> i64 {
    now_micros() / 1_000_000
}
