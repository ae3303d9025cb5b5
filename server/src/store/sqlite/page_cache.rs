//! Warms the OS page cache with the database file when the server starts, so that lookups
//! and proofs after a reboot read memory, not the disk (10 M entries: 3.8 GB, read in ~7 s
//! on the test VM).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use crate::metrics::Metrics;

/// The file is warmed only if it takes at most 1 / this of the memory available.
const AVAILABLE_SHARE: u64 = 2;
/// Bytes read at a time.
const READ_CHUNK: usize = 1 << 20;

/// A started warm-up. It holds a descriptor of the database file for as long as it lives:
/// closing one while SQLite has the file open would release SQLite's POSIX locks, so it
/// must be dropped only after every connection to the database has closed.
pub struct WarmUp {
    _file: Option<Arc<File>>,
}

impl WarmUp {
    /// If `wanted` and the file at `path` fits in 1 / [`AVAILABLE_SHARE`] of the available
    /// memory, reads it once, start to end, on a thread of its own: the kernel keeps what was
    /// read in its page cache. `metrics` learns when that has ended, or at once if it does
    /// not happen. A failure only leaves the cache as it was, and is logged.
    pub fn start(path: &Path, wanted: bool, metrics: Arc<Metrics>) -> WarmUp {
        let skipped = || {
            metrics.page_cache_warm_up_ended();
            WarmUp { _file: None }
        };
        if !wanted {
            return skipped();
        }
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let available = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| mem_available(&text));
        if !fits(bytes, available) {
            tracing::info!(
                bytes,
                available,
                "page cache warm-up skipped: the database does not fit in half of the available memory"
            );
            return skipped();
        }
        let file = match File::open(path) {
            Ok(file) => Arc::new(file),
            Err(e) => {
                tracing::warn!(error = %e, "page cache warm-up: cannot open the database file");
                return skipped();
            }
        };
        let (reader, ended) = (file.clone(), metrics.clone());
        let spawned = std::thread::Builder::new()
            .name("page-cache-warm-up".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                match read_through(&reader) {
                    Ok(bytes) => tracing::info!(
                        bytes,
                        seconds = started.elapsed().as_secs_f64(),
                        "database file read into the page cache"
                    ),
                    Err(e) => tracing::warn!(error = %e, "page cache warm-up failed"),
                }
                drop(reader);
                ended.page_cache_warm_up_ended();
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "page cache warm-up: no thread");
            metrics.page_cache_warm_up_ended();
        }
        WarmUp { _file: Some(file) }
    }
}

/// Reads `file` from start to end, [`READ_CHUNK`] at a time, which leaves it in the page
/// cache; returns the bytes read. (`posix_fadvise(WILLNEED)` would not copy, but Linux reads
/// only the first 8 MiB of it.)
fn read_through(file: &File) -> std::io::Result<u64> {
    std::io::copy(
        &mut BufReader::with_capacity(READ_CHUNK, file),
        &mut std::io::sink(),
    )
}

/// `MemAvailable` of a /proc/meminfo text, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kib.checked_mul(1024)
}

/// Whether a file of `bytes` is warmed with `available` bytes of memory (unknown: no).
fn fits(bytes: u64, available: Option<u64>) -> bool {
    available.is_some_and(|available| bytes <= available / AVAILABLE_SHARE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mem_available_in_bytes() {
        let text = "MemTotal:       24684528 kB\nMemFree:        20045000 kB\nMemAvailable:   23464000 kB\n";
        assert_eq!(mem_available(text), Some(23_464_000 * 1024));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
        assert_eq!(mem_available("MemAvailable: lots\n"), None);
    }

    #[test]
    fn warms_only_a_file_that_fits_in_half_the_available_memory() {
        assert!(fits(3_800_000_000, Some(23_000_000_000)));
        assert!(fits(1000, Some(2000)));
        assert!(!fits(1001, Some(2000)));
        assert!(!fits(1, None), "unknown memory: leave the cache alone");
    }

    /// Descriptors of `path` open in this process.
    fn open_descriptors(path: &Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter(|e| {
                std::fs::read_link(e.as_ref().unwrap().path())
                    .ok()
                    .as_deref()
                    == Some(path)
            })
            .count()
    }

    fn warm_up_ended(metrics: &Metrics) -> bool {
        metrics
            .render()
            .contains("\ntokenledger_page_cache_warm_up_done 1\n")
    }

    #[test]
    fn a_warm_up_ends_and_keeps_its_descriptor_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        std::fs::write(&path, vec![7u8; READ_CHUNK + 5]).unwrap();
        let whole = read_through(&File::open(&path).unwrap()).unwrap();
        assert_eq!(
            whole,
            READ_CHUNK as u64 + 5,
            "every chunk, the last one short"
        );
        let metrics = Arc::new(Metrics::default());
        assert!(!warm_up_ended(&metrics));
        let warm_up = WarmUp::start(&path, true, metrics.clone());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !warm_up_ended(&metrics) {
            assert!(
                std::time::Instant::now() < deadline,
                "the warm-up never ended"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(open_descriptors(&path), 1, "held while the warm-up lives");
        drop(warm_up);
        assert_eq!(open_descriptors(&path), 0);
    }

    #[test]
    fn an_unwanted_warm_up_opens_nothing_and_has_ended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        std::fs::write(&path, b"x").unwrap();
        let metrics = Arc::new(Metrics::default());
        let _warm_up = WarmUp::start(&path, false, metrics.clone());
        assert!(warm_up_ended(&metrics));
        assert_eq!(open_descriptors(&path), 0);
    }
}
