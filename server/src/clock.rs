//! The wall clock, in the unit the ledger records times in.

/// The current time in unix microseconds.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}
