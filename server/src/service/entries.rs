//! Entries as the API serves them: the index, standard base64 of the canonical bytes (what
//! was hashed), and those bytes decoded.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokenledger_core::wire::ServedEntry;

use super::ServiceError;

/// The entry at `index` whose canonical bytes are `leaf`, as served.
pub fn served(index: u64, leaf: &[u8]) -> Result<ServedEntry, ServiceError> {
    Ok(ServedEntry {
        index,
        leaf: STANDARD.encode(leaf),
        entry: serde_json::from_slice(leaf).map_err(|e| ServiceError::Internal(e.to_string()))?,
    })
}
