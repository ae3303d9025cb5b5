//! The hosts of a database URL, one lazily connecting pool each, and which of them this server
//! uses: the one that accepts writes (or, for a read replica, any that answers). A failed
//! query makes it ask again, at most once a second, so that the next query goes to the host
//! that took over (a promoted standby); the failed query keeps its error.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::sync::Mutex;

use super::connection::{DatabaseUrl, accepts_writes};
use crate::store::StoreError;

/// Connections of each host's pool.
const POOL_CONNECTIONS: u32 = 8;
/// How long a query waits for a connection: past it the host counts as gone.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long asking one host whether it is the one to use may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// The least time between two selections after errors.
const RESELECT_INTERVAL: Duration = Duration::from_secs(1);

/// What a host must do to be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wanted {
    /// Accept writes: a primary, not a standby in recovery nor read-only by default.
    Writes,
    /// Answer: any host, for reads that may lag (a read replica).
    Reads,
}

/// One pool per host of a URL, and the index of the host in use.
pub struct Hosts {
    url: DatabaseUrl,
    wanted: Wanted,
    pools: Vec<PgPool>,
    current: AtomicUsize,
    /// When hosts were last selected after an error; held while selecting.
    last_selection: Mutex<Option<Instant>>,
}

impl Hosts {
    /// The pools of `url`'s hosts (connecting when first used), using the first host, in the
    /// URL's order, that is `wanted`; an error naming every host if none is.
    pub async fn connect(url: &DatabaseUrl, wanted: Wanted) -> Result<Hosts, StoreError> {
        let pools = url
            .hosts()
            .iter()
            .map(|options| {
                PgPoolOptions::new()
                    .max_connections(POOL_CONNECTIONS)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_lazy_with(options.clone())
            })
            .collect();
        let hosts = Hosts {
            url: url.clone(),
            wanted,
            pools,
            current: AtomicUsize::new(0),
            last_selection: Mutex::new(None),
        };
        let mut failures = Vec::new();
        for i in 0..hosts.pools.len() {
            match hosts.probe(i).await {
                Ok(()) => {
                    hosts.current.store(i, Ordering::Relaxed);
                    return Ok(hosts);
                }
                Err(problem) => failures.push(format!("{}: {problem}", url.host_name(i))),
            }
        }
        hosts.close().await;
        let wanted = match wanted {
            Wanted::Writes => "accepts writes",
            Wanted::Reads => "answers",
        };
        Err(StoreError::Db(format!(
            "no database host {wanted} ({})",
            failures.join("; ")
        )))
    }

    /// The pool of the host in use.
    pub fn pool(&self) -> PgPool {
        self.pools[self.current.load(Ordering::Relaxed)].clone()
    }

    /// `host:port` of the host in use.
    #[cfg(test)]
    pub fn host_name(&self) -> &str {
        self.url.host_name(self.current.load(Ordering::Relaxed))
    }

    /// `result` as it is; if it is a database error (the host may have gone or become a
    /// standby), the hosts are asked again first (see [`Hosts::reselect`]).
    pub async fn checked<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(StoreError::Db(_)) = &result {
            self.reselect().await;
        }
        result
    }

    /// Selects the host to use again, unless another query is doing it or it was done less
    /// than [`RESELECT_INTERVAL`] ago: the host in use if it still is `wanted`, else the first
    /// other one in the URL's order that is; the host in use if none is.
    pub async fn reselect(&self) {
        let Ok(mut last) = self.last_selection.try_lock() else {
            return;
        };
        if !selection_due(*last, Instant::now()) {
            return;
        }
        let current = self.current.load(Ordering::Relaxed);
        for i in probe_order(current, self.pools.len()) {
            match self.probe(i).await {
                Ok(()) => {
                    if i != current {
                        tracing::warn!(
                            from = self.url.host_name(current),
                            to = self.url.host_name(i),
                            "database host changed"
                        );
                        self.current.store(i, Ordering::Relaxed);
                    }
                    break;
                }
                Err(problem) => tracing::warn!(
                    host = self.url.host_name(i),
                    %problem,
                    "database host not usable"
                ),
            }
        }
        *last = Some(Instant::now());
    }

    /// Whether host `i` is `wanted` now, and if not why.
    async fn probe(&self, i: usize) -> Result<(), String> {
        let probe = async {
            let mut conn = self.pools[i].acquire().await?;
            match self.wanted {
                Wanted::Writes => accepts_writes(&mut conn).await,
                Wanted::Reads => {
                    sqlx::query("SELECT 1").execute(&mut *conn).await?;
                    Ok(true)
                }
            }
        };
        match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err("read-only".into()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer in {PROBE_TIMEOUT:?}")),
        }
    }

    /// Closes every host's pool.
    pub async fn close(&self) {
        for pool in &self.pools {
            pool.close().await;
        }
    }
}

/// Whether hosts may be selected again at `now`, when they last were at `last`.
fn selection_due(last: Option<Instant>, now: Instant) -> bool {
    last.is_none_or(|last| now.saturating_duration_since(last) >= RESELECT_INTERVAL)
}

/// The hosts to ask, in order, when `current` of `count` may have gone: `current` first
/// (it may be back), then the others in the URL's order.
fn probe_order(current: usize, count: usize) -> impl Iterator<Item = usize> {
    std::iter::once(current).chain((0..count).filter(move |&i| i != current))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_in_use_is_asked_first_then_the_others_in_order() {
        assert_eq!(probe_order(0, 3).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(probe_order(1, 3).collect::<Vec<_>>(), [1, 0, 2]);
        assert_eq!(probe_order(2, 3).collect::<Vec<_>>(), [2, 0, 1]);
        assert_eq!(probe_order(0, 1).collect::<Vec<_>>(), [0]);
    }

    #[test]
    fn hosts_are_selected_again_at_most_once_a_second() {
        let start = Instant::now();
        assert!(selection_due(None, start), "the first error selects");
        assert!(!selection_due(Some(start), start));
        assert!(!selection_due(
            Some(start),
            start + Duration::from_millis(999)
        ));
        assert!(selection_due(Some(start), start + RESELECT_INTERVAL));
        assert!(
            !selection_due(Some(start + Duration::from_secs(5)), start),
            "a clock read out of order is not due"
        );
    }
}
