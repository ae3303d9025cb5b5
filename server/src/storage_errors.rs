//! Storage errors a server process has met: integrity errors (a stored leaf read back that
//! does not decode, or does not hash to its stored leaf hash) and other storage errors
//! (database errors, inconsistent rows) that failed a request. Totals go to `/metrics`;
//! those of the last minute make `GET /healthz` report the server degraded.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// How far back `GET /healthz` looks, in seconds.
pub const RECENT_SECS: u64 = 60;

/// Counts of storage errors, shared by the readers that find them and the handlers that
/// report them.
pub struct StorageErrors {
    integrity_total: AtomicU64,
    total: AtomicU64,
    started: Instant,
    /// The second (since `started`) of the newest error, plus one; 0 before the first.
    newest: AtomicU64,
    /// `(second since started, errors in that second)`, oldest first, the last
    /// [`RECENT_SECS`] only.
    recent: Mutex<VecDeque<(u64, u64)>>,
}

impl Default for StorageErrors {
    fn default() -> Self {
        StorageErrors {
            integrity_total: AtomicU64::new(0),
            total: AtomicU64::new(0),
            started: Instant::now(),
            newest: AtomicU64::new(0),
            recent: Mutex::new(VecDeque::new()),
        }
    }
}

impl StorageErrors {
    /// Records an integrity error (it is a storage error too).
    pub fn integrity_error(&self) {
        self.integrity_total.fetch_add(1, Ordering::Relaxed);
        self.storage_error();
    }

    /// Records a storage error now.
    pub fn storage_error(&self) {
        self.record_at(self.second());
    }

    /// Storage errors (integrity errors included) of the last [`RECENT_SECS`] seconds.
    pub fn last_minute(&self) -> u64 {
        self.count_at(self.second())
    }

    /// Integrity errors since the process started.
    pub fn integrity_total(&self) -> u64 {
        self.integrity_total.load(Ordering::Relaxed)
    }

    /// Storage errors (integrity errors included) since the process started.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    fn second(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    fn record_at(&self, second: u64) {
        self.total.fetch_add(1, Ordering::Relaxed);
        self.newest.fetch_max(second + 1, Ordering::Relaxed);
        let mut recent = self.recent.lock().expect("storage errors lock");
        forget_before(&mut recent, second);
        match recent.back_mut() {
            Some((at, count)) if *at >= second => *count += 1,
            _ => recent.push_back((second, 1)),
        }
    }

    fn count_at(&self, second: u64) -> u64 {
        let newest = self.newest.load(Ordering::Relaxed);
        if newest == 0 || newest + RECENT_SECS <= second + 1 {
            return 0;
        }
        let mut recent = self.recent.lock().expect("storage errors lock");
        forget_before(&mut recent, second);
        recent.iter().map(|(_, count)| count).sum()
    }
}

/// Drops the seconds that are no longer among the last [`RECENT_SECS`] before `now`.
fn forget_before(recent: &mut VecDeque<(u64, u64)>, now: u64) {
    while recent
        .front()
        .is_some_and(|(at, _)| at + RECENT_SECS <= now)
    {
        recent.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_count_for_a_minute_then_only_in_the_totals() {
        let errors = StorageErrors::default();
        assert_eq!(errors.count_at(0), 0);
        errors.record_at(5);
        errors.record_at(5);
        errors.integrity_total.fetch_add(1, Ordering::Relaxed);
        errors.record_at(30);
        assert_eq!(errors.count_at(30), 3);
        assert_eq!(errors.count_at(64), 3, "second 5 is 59 s before 64");
        assert_eq!(errors.count_at(65), 1, "second 5 is a minute old at 65");
        assert_eq!(errors.count_at(89), 1);
        assert_eq!(errors.count_at(90), 0);
        assert_eq!(errors.count_at(1000), 0);
        assert_eq!((errors.total(), errors.integrity_total()), (3, 1));
        errors.record_at(1000);
        assert_eq!(errors.count_at(1000), 1);
        assert!(
            errors.recent.lock().unwrap().len() == 1,
            "old seconds are dropped"
        );
    }

    #[test]
    fn an_integrity_error_is_a_storage_error() {
        let errors = StorageErrors::default();
        errors.integrity_error();
        errors.storage_error();
        assert_eq!((errors.total(), errors.integrity_total()), (2, 1));
        assert_eq!(errors.last_minute(), 2);
    }
}
