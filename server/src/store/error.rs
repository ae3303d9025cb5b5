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
    /// The database could not be reached or cannot take the call now (no connection in
    /// time, a connection lost or refused, a host read-only or shutting down): asking again,
    /// once the host or the writer is selected again, may succeed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
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

    /// The database could not be reached or cannot take the call now.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::UniqueViolation(e.to_string())
            }
            _ if is_unavailability(&e) => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Db(e.to_string()),
        }
    }
}

/// Whether `e` says the database could not be reached or cannot take the call now: no pooled
/// connection in time, a closed pool, a lost or refused connection, or a PostgreSQL
/// SQLSTATE of class 08 (connection exception), 25006 (read-only transaction: a standby or
/// a host made read-only), 57P01-57P03 (shutting down, starting up) or 53300 (too many
/// connections).
fn is_unavailability(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| is_unavailable_state(&code)),
        _ => false,
    }
}

/// Whether a PostgreSQL SQLSTATE says the host cannot take the call now (see
/// [`is_unavailability`]).
fn is_unavailable_state(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "25006" | "57P01" | "57P02" | "57P03" | "53300")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_unavailability() {
        for code in [
            "08006", "08001", "25006", "57P01", "57P02", "57P03", "53300",
        ] {
            assert!(is_unavailable_state(code), "{code}");
        }
        for code in ["23505", "40001", "42P01", "XX000", "57014"] {
            assert!(!is_unavailable_state(code), "{code}");
        }
        assert!(StoreError::from(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(StoreError::from(sqlx::Error::PoolClosed).is_unavailable());
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(StoreError::from(sqlx::Error::Io(refused)).is_unavailable());
        assert!(!StoreError::from(sqlx::Error::RowNotFound).is_unavailable());
    }
}
