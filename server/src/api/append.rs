//! Appending one entry from a handler: canonical bytes and leaf hash at the edge, then the
//! sequencer; the index comes back once the entry (and its state rows) are durable.

use tokenledger_core::entry::{EntryBody, LogEntry};
use tokenledger_core::merkle::leaf_hash;

use super::AppState;
use super::error::ApiError;
use crate::sequencer::{EntryKind, PreparedEntry, now_micros};

/// Appends `body` with the state change `kind`; returns its log index.
pub async fn append_entry(
    state: &AppState,
    body: EntryBody,
    kind: EntryKind,
) -> Result<u64, ApiError> {
    let logged_at = now_micros();
    let leaf = LogEntry::new(logged_at, body)
        .canonical_bytes()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let entry = PreparedEntry {
        leaf_hash: leaf_hash(&leaf),
        leaf,
        logged_at,
        kind,
    };
    let done = state.sequencer.append(vec![entry]).await?;
    Ok(done[0].index)
}

/// Unix seconds now.
pub fn now_secs() -> i64 {
    now_micros() / 1_000_000
}
