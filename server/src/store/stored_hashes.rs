//! The stored hashes of the log, whatever the engine: those of level [`UPPER_LEVEL`] and above
//! are written twice, to `hashes`, which holds every stored hash, and to `upper_hashes`, where
//! those few rows sit together (on pages that stay cached); proofs read them from there. A
//! writer opens the log ([`open_log`]) only once every stored hash of its size is there.

use std::collections::HashMap;

use async_trait::async_trait;
use tokenledger_core::merkle::{self, Frontier, Hash};

use crate::store::StoreError;

/// Stored hashes of this level and above (subtrees of 64 leaves or more, 1/32 of all stored
/// hashes) are also kept in `upper_hashes` and read from there (SQLite's migration 0005).
pub const UPPER_LEVEL: u32 = 6;

/// Whether the stored hash at `index` is one of those `upper_hashes` holds.
pub fn is_upper(index: u64) -> bool {
    merkle::stored_hash_level(index) >= UPPER_LEVEL
}

/// What a writer's connection tells of the stored log, in each engine's SQL.
#[async_trait]
pub trait StoredLog: Send {
    /// Number of entries (written from index 0 without gaps).
    async fn log_size(&mut self) -> Result<u64, StoreError>;

    /// Number of stored hashes (written from index 0 without gaps).
    async fn stored_hash_rows(&mut self) -> Result<u64, StoreError>;

    /// Number of rows of `upper_hashes`.
    async fn upper_hash_rows(&mut self) -> Result<u64, StoreError>;

    /// Copies into `upper_hashes` the stored hashes of level [`UPPER_LEVEL`] and above of a
    /// tree of `size` leaves that it lacks, from `hashes`; returns how many it copied.
    async fn copy_upper_hashes(&mut self, size: u64) -> Result<u64, StoreError>;

    /// The right edge of the tree of `size` leaves, from stored hashes.
    async fn load_frontier(&mut self, size: u64) -> Result<Frontier, StoreError>;
}

/// Opens the stored log for appending: checks that it holds every stored hash of its size,
/// restores `upper_hashes` (see [`restore_upper_hashes`]) and returns its right edge.
pub async fn open_log(log: &mut impl StoredLog) -> Result<Frontier, StoreError> {
    let size = log.log_size().await?;
    let stored = log.stored_hash_rows().await?;
    if stored != merkle::stored_hash_count(size) {
        return Err(StoreError::Corrupt(format!(
            "{size} entries need {} stored hashes, found {stored}",
            merkle::stored_hash_count(size)
        )));
    }
    restore_upper_hashes(log, size).await?;
    log.load_frontier(size).await
}

/// Makes `upper_hashes` hold every stored hash of level `UPPER_LEVEL` and above of the log
/// (a SQLite database from before migration 0005 has none): copies the missing ones from
/// `hashes`, then refuses to start unless the count is exact.
async fn restore_upper_hashes(log: &mut impl StoredLog, size: u64) -> Result<(), StoreError> {
    let expected = merkle::stored_hash_count_from_level(size, UPPER_LEVEL);
    if log.upper_hash_rows().await? == expected {
        return Ok(());
    }
    let copied = log.copy_upper_hashes(size).await?;
    tracing::info!(
        copied,
        expected,
        "copied upper-level stored hashes into upper_hashes"
    );
    let found = log.upper_hash_rows().await?;
    if found != expected {
        return Err(StoreError::Corrupt(format!(
            "{size} entries need {expected} upper-level stored hashes, found {found}"
        )));
    }
    Ok(())
}

/// The hashes of `rows` (stored index, hash) at `indexes`, in that order; a missing or
/// malformed one is an error.
pub fn in_order(indexes: &[u64], rows: Vec<(i64, Vec<u8>)>) -> Result<Vec<Hash>, StoreError> {
    let found: HashMap<u64, Vec<u8>> = rows.into_iter().map(|(i, h)| (i as u64, h)).collect();
    indexes
        .iter()
        .map(|index| {
            let bytes = found
                .get(index)
                .ok_or_else(|| StoreError::Corrupt(format!("stored hash {index} is missing")))?;
            Hash::from_slice(bytes)
                .map_err(|e| StoreError::Corrupt(format!("stored hash {index}: {e}")))
        })
        .collect()
}
