//! Counters and histograms of the append path, whether the page cache warm-up has ended,
//! the blocklist long polls, and storage and integrity errors, rendered in the Prometheus
//! text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::storage_errors::StorageErrors;

const BATCH_BUCKETS: [u64; 8] = [1, 10, 50, 100, 250, 500, 1000, 5000];
const COMMIT_BUCKETS_US: [u64; 9] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 1_000_000,
];

/// A histogram with fixed upper bounds; the last bucket is +Inf.
struct Histogram<const N: usize> {
    bounds: [u64; N],
    counts: [AtomicU64; N],
    count: AtomicU64,
    sum: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    fn new(bounds: [u64; N]) -> Self {
        Histogram {
            bounds,
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    fn observe(&self, value: u64) {
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            if value <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str, scale: f64) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            let le = *bound as f64 / scale;
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{le}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum.load(Ordering::Relaxed) as f64 / scale;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// Metrics of one server process.
pub struct Metrics {
    log_size: AtomicU64,
    appended: AtomicU64,
    duplicates: AtomicU64,
    rewritten: AtomicU64,
    warm_up_ended: AtomicBool,
    blocklist_waiting: AtomicU64,
    blocklist_rechecks: AtomicU64,
    /// Each site's last blocklist fetch, unix seconds (seeded from the store at start).
    blocklist_last_fetch: Mutex<BTreeMap<String, i64>>,
    blocklist_fetch_record_errors: AtomicU64,
    batch_entries: Histogram<8>,
    commit_micros: Histogram<9>,
    storage_errors: Arc<StorageErrors>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            log_size: AtomicU64::new(0),
            appended: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            rewritten: AtomicU64::new(0),
            warm_up_ended: AtomicBool::new(false),
            blocklist_waiting: AtomicU64::new(0),
            blocklist_rechecks: AtomicU64::new(0),
            blocklist_last_fetch: Mutex::default(),
            blocklist_fetch_record_errors: AtomicU64::new(0),
            batch_entries: Histogram::new(BATCH_BUCKETS),
            commit_micros: Histogram::new(COMMIT_BUCKETS_US),
            storage_errors: Arc::default(),
        }
    }
}

impl Metrics {
    /// Records one committed batch.
    pub fn batch_committed(
        &self,
        log_size: u64,
        new_entries: u64,
        duplicates: u64,
        commit_micros: u64,
    ) {
        self.log_size.store(log_size, Ordering::Relaxed);
        self.appended.fetch_add(new_entries, Ordering::Relaxed);
        self.duplicates.fetch_add(duplicates, Ordering::Relaxed);
        self.batch_entries.observe(new_entries + duplicates);
        self.commit_micros.observe(commit_micros);
    }

    /// Records a batch written again, with a lookup, after its first attempt met a report
    /// logged before.
    pub fn batch_rewritten(&self) {
        self.rewritten.fetch_add(1, Ordering::Relaxed);
    }

    /// The start-up read of the database into the page cache has ended (or will not run).
    pub fn page_cache_warm_up_ended(&self) {
        self.warm_up_ended.store(true, Ordering::Relaxed);
    }

    /// A blocklist long poll began waiting.
    pub fn blocklist_wait_began(&self) {
        self.blocklist_waiting.fetch_add(1, Ordering::Relaxed);
    }

    /// A blocklist long poll ended (answered, or its client went away).
    pub fn blocklist_wait_ended(&self) {
        self.blocklist_waiting.fetch_sub(1, Ordering::Relaxed);
    }

    /// A waiting long poll woke (a change elsewhere, an expiry, a periodic look) and found
    /// its site's blocklist unchanged.
    pub fn blocklist_rechecked(&self) {
        self.blocklist_rechecks.fetch_add(1, Ordering::Relaxed);
    }

    /// `site` fetched its blocklist (or asked after it) at `at`, unix seconds.
    pub fn blocklist_fetched(&self, site: &str, at: i64) {
        let mut last = self.blocklist_last_fetch.lock().expect("metrics lock");
        match last.get_mut(site) {
            Some(t) => *t = (*t).max(at),
            None => {
                last.insert(site.to_string(), at);
            }
        }
    }

    /// Recording a blocklist fetch failed (the document was served all the same).
    pub fn blocklist_fetch_record_failed(&self) {
        self.blocklist_fetch_record_errors
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_log_size(&self, size: u64) {
        self.log_size.store(size, Ordering::Relaxed);
    }

    /// The storage and integrity errors of this process: readers record what they find.
    pub fn storage_errors(&self) -> &Arc<StorageErrors> {
        &self.storage_errors
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let gauge = |out: &mut String, name: &str, kind: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        gauge(
            &mut out,
            "tokenledger_log_entries",
            "gauge",
            "Entries in the log.",
            self.log_size.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "tokenledger_appended_total",
            "counter",
            "Entries appended by this process.",
            self.appended.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "tokenledger_duplicates_total",
            "counter",
            "Reports answered with an existing entry.",
            self.duplicates.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "tokenledger_batches_rewritten_total",
            "counter",
            "Batches written again, with a lookup, after meeting a report logged before.",
            self.rewritten.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "tokenledger_page_cache_warm_up_done",
            "gauge",
            "1 once the start-up read of the database into the page cache has ended or was skipped.",
            u64::from(self.warm_up_ended.load(Ordering::Relaxed)),
        );
        gauge(
            &mut out,
            "tokenledger_blocklist_waiting",
            "gauge",
            "Blocklist requests held open (long polls) now.",
            self.blocklist_waiting.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "tokenledger_blocklist_rechecks_total",
            "counter",
            "Wake-ups of waiting blocklist requests that found their site's blocklist unchanged.",
            self.blocklist_rechecks.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "tokenledger_blocklist_fetch_record_errors_total",
            "counter",
            "Blocklist fetches that could not be recorded (each was served all the same).",
            self.blocklist_fetch_record_errors.load(Ordering::Relaxed),
        );
        {
            let name = "tokenledger_blocklist_last_fetch_timestamp_seconds";
            let _ = writeln!(
                out,
                "# HELP {name} Unix time of each site's last blocklist fetch (any of its credentials).\n# TYPE {name} gauge"
            );
            for (site, at) in self
                .blocklist_last_fetch
                .lock()
                .expect("metrics lock")
                .iter()
            {
                let _ = writeln!(out, "{name}{{site=\"{}\"}} {at}", label_value(site));
            }
        }
        gauge(
            &mut out,
            "tokenledger_integrity_errors_total",
            "counter",
            "Stored leaves read back that did not decode or hash to their stored leaf hash (never served).",
            self.storage_errors.integrity_total(),
        );
        gauge(
            &mut out,
            "tokenledger_storage_errors_total",
            "counter",
            "Storage errors met by this process, integrity errors included.",
            self.storage_errors.total(),
        );
        self.batch_entries.render(
            &mut out,
            "tokenledger_batch_entries",
            "Reports per committed batch.",
            1.0,
        );
        self.commit_micros.render(
            &mut out,
            "tokenledger_commit_seconds",
            "Time to write and fsync one batch.",
            1e6,
        );
        out
    }
}

/// A Prometheus label value: backslash, double quote and line feed escaped.
fn label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_buckets() {
        let metrics = Metrics::default();
        metrics.batch_committed(7, 5, 2, 1_500);
        metrics.batch_rewritten();
        metrics.blocklist_wait_began();
        metrics.blocklist_wait_began();
        metrics.blocklist_wait_ended();
        metrics.blocklist_rechecked();
        metrics.blocklist_fetched("CERN-PROD", 1_700_000_100);
        metrics.blocklist_fetched("CERN-PROD", 1_700_000_000);
        metrics.blocklist_fetched("a\"b", 5);
        metrics.blocklist_fetch_record_failed();
        metrics.storage_errors().integrity_error();
        metrics.storage_errors().storage_error();
        let text = metrics.render();
        assert!(text.contains("tokenledger_blocklist_waiting 1\n"), "{text}");
        assert!(
            text.contains("tokenledger_blocklist_rechecks_total 1\n"),
            "{text}"
        );
        assert!(
            text.contains("tokenledger_batches_rewritten_total 1\n"),
            "{text}"
        );
        assert!(text.contains("tokenledger_log_entries 7\n"), "{text}");
        assert!(
            text.contains(
                "tokenledger_blocklist_last_fetch_timestamp_seconds{site=\"CERN-PROD\"} 1700000100\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "tokenledger_blocklist_last_fetch_timestamp_seconds{site=\"a\\\"b\"} 5\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("tokenledger_blocklist_fetch_record_errors_total 1\n"),
            "{text}"
        );
        assert!(
            text.contains("tokenledger_integrity_errors_total 1\n"),
            "{text}"
        );
        assert!(
            text.contains("tokenledger_storage_errors_total 2\n"),
            "{text}"
        );
        assert!(text.contains("tokenledger_appended_total 5\n"));
        assert!(text.contains("tokenledger_batch_entries_bucket{le=\"10\"} 1\n"));
        assert!(text.contains("tokenledger_batch_entries_bucket{le=\"1\"} 0\n"));
        assert!(text.contains("tokenledger_commit_seconds_bucket{le=\"0.001\"} 0\n"));
        assert!(text.contains("tokenledger_commit_seconds_bucket{le=\"0.0025\"} 1\n"));
        assert!(text.contains("tokenledger_commit_seconds_count 1\n"));
    }
}
