//! The wall clock, in the units the ledger records times in; services take a [`Clock`] so
//! that the time is one of their inputs.

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// Unix microseconds.
    fn now_micros(&self) -> i64;

    /// Unix seconds.
    fn now_secs(&self) -> i64 {
        self.now_micros() / 1_000_000
    }
}

/// The system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_micros(&self) -> i64 {
        chrono::Utc::now().timestamp_micros()
    }
}
