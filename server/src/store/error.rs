//! The one error type of every storage engine.

/// Errors reading or writing the stored ledger.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The engine failed (I/O, locks, a statement refused); its own words.
    #[error("database: {0}")]
    Db(String),
    /// A write refused by a unique index (for the writer: a report logged before).
    #[error("database: {0}")]
    UniqueViolation(String),
    #[error("stored log is inconsistent: {0}")]
    Corrupt(String),
    #[error("no randomness for a new person id: {0}")]
    Randomness(String),
    /// A stored leaf read back is not the leaf that was logged (it does not decode, or does
    /// not hash to its stored leaf hash): see
    /// [`LeafDecoders::verified`](super::leaf_codec::LeafDecoders::verified).
    #[error("integrity error at entry {index}: {problem}")]
    Integrity { index: u64, problem: String },
}

impl StoreError {
    /// A write refused by a unique index (for the writer: a report logged before).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::UniqueViolation(_))
    }
}
