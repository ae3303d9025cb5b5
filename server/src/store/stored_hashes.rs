//! Stored hashes kept twice: those of level [`UPPER_LEVEL`] and above are written to `hashes`,
//! which holds every stored hash, and to `upper_hashes`, where those few rows sit together
//! (on pages that stay cached); proofs read them from there. The same in every engine.

use tokenledger_core::merkle;

/// Stored hashes of this level and above (subtrees of 64 leaves or more, 1/32 of all stored
/// hashes) are also kept in `upper_hashes` and read from there (SQLite's migration 0005).
pub const UPPER_LEVEL: u32 = 6;

/// Whether the stored hash at `index` is one of those `upper_hashes` holds.
pub fn is_upper(index: u64) -> bool {
    merkle::stored_hash_level(index) >= UPPER_LEVEL
}
