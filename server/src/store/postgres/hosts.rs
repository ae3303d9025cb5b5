//! The hosts of a database URL, one lazily connecting pool each, and which of them this server
//! uses: the one that accepts writes (or, for a read replica, any that answers). A failed
//! query makes it ask again, at most once a second, so that the next query goes to the host
//! that took over (a promoted standby); the failed query keeps its error. It also asks every
//! [`WATCH_INTERVAL`], on a new connection, so a host that stopped accepting writes while
//! its pooled sessions still answer (made read-only, demoted) is left. Every query has a
//! deadline: the server's `statement_timeout`, and [`QUERY_DEADLINE`] here for a host that
//! does not answer at all.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use tokio::sync::Mutex;

use super::connection::{DatabaseUrl, accepts_writes, limit_keepalives};
use crate::store::StoreError;

/// Connections of each host's pool.
const POOL_CONNECTIONS: u32 = 8;
/// A pooled connection idle longer than this is pinged before a query gets it. The pool pings
/// every connection it takes back (sqlx does, on release), so one used more recently was
/// answering then; pinging it again would add a round trip to every query.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);
/// How long a query waits for a connection: past it the host counts as gone (the query fails
/// as unavailable, and the hosts are selected again), so a failover costs about this more.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long asking one host whether it is the one to use may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// The least time between two selections after errors.
const RESELECT_INTERVAL: Duration = Duration::from_secs(1);
/// How often the host in use is asked whether it still is the one to use.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(5);
/// The server-side limit of one statement of the pools' sessions.
const STATEMENT_TIMEOUT: &str = "30s";
/// How long a query may go unanswered (a host that is gone without closing its connections)
/// before it fails here: a little more than [`STATEMENT_TIMEOUT`].
const QUERY_DEADLINE: Duration = Duration::from_secs(35);

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
    /// Whether the host in use was `wanted` when last asked.
    usable: AtomicBool,
    /// When hosts were last selected after an error; held while selecting.
    last_selection: Mutex<Option<Instant>>,
}

impl Hosts {
    /// The pools of `url`'s hosts (connecting when first used), using the first host, in the
    /// URL's order, that is `wanted`; an error naming every host if none is. A task asks
    /// again every [`WATCH_INTERVAL`] until the hosts are dropped or closed.
    pub async fn connect(url: &DatabaseUrl, wanted: Wanted) -> Result<Arc<Hosts>, StoreError> {
        let pools = url
            .hosts()
            .iter()
            .map(|options| {
                PgPoolOptions::new()
                    .max_connections(POOL_CONNECTIONS)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .test_before_acquire(false)
                    .before_acquire(|conn, meta| {
                        Box::pin(async move {
                            if meta.idle_for > PING_IF_IDLE_FOR {
                                conn.ping().await?;
                            }
                            Ok(true)
                        })
                    })
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            limit_keepalives(conn).await?;
                            Ok(())
                        })
                    })
                    .connect_lazy_with(
                        options
                            .clone()
                            .options([("statement_timeout", STATEMENT_TIMEOUT)]),
                    )
            })
            .collect();
        let hosts = Hosts {
            url: url.clone(),
            wanted,
            pools,
            current: AtomicUsize::new(0),
            usable: AtomicBool::new(true),
            last_selection: Mutex::new(None),
        };
        let mut failures = Vec::new();
        for i in 0..hosts.pools.len() {
            match hosts.probe(i).await {
                Ok(()) => {
                    hosts.current.store(i, Ordering::Relaxed);
                    let hosts = Arc::new(hosts);
                    tokio::spawn(watch(Arc::downgrade(&hosts)));
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

    /// A connection of its own to the host in use, without the pools' statement timeout
    /// (for migrations).
    pub async fn connect_one(&self) -> Result<sqlx::PgConnection, StoreError> {
        let options = &self.url.hosts()[self.current.load(Ordering::Relaxed)];
        Ok(options.connect().await?)
    }

    /// Whether the host in use was `wanted` when last asked (a read replica that is down is
    /// not, until it answers again).
    pub fn usable(&self) -> bool {
        self.usable.load(Ordering::Relaxed)
    }

    /// The result of `work` (a query on [`Hosts::pool`]), failing past [`QUERY_DEADLINE`],
    /// through [`Hosts::checked`].
    pub async fn run<T>(
        &self,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let result = match tokio::time::timeout(QUERY_DEADLINE, work).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(format!(
                "database host {} did not answer within {} s",
                self.url.host_name(self.current.load(Ordering::Relaxed)),
                QUERY_DEADLINE.as_secs()
            ))),
        };
        self.checked(result).await
    }

    /// The index, in the URL's order, of the host in use.
    pub fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    /// The host in use and its pool, read together.
    pub fn current_pool(&self) -> (usize, PgPool) {
        let i = self.current();
        (i, self.pools[i].clone())
    }

    /// The connection options of host `i`.
    pub fn options(&self, i: usize) -> &PgConnectOptions {
        &self.url.hosts()[i]
    }

    /// `host:port` of host `i`.
    pub fn name_of(&self, i: usize) -> &str {
        self.url.host_name(i)
    }

    /// `host:port` of the host in use.
    #[cfg(test)]
    pub fn host_name(&self) -> &str {
        self.url.host_name(self.current.load(Ordering::Relaxed))
    }

    /// `result` as it is; if it is a database error or the host is unavailable (it may have
    /// gone or become a standby), the hosts are asked again first (see [`Hosts::reselect`]).
    pub async fn checked<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(StoreError::Db(_) | StoreError::Unavailable(_)) = &result {
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
        self.select().await;
        *last = Some(Instant::now());
    }

    /// Selects the host to use: the host in use if it still is `wanted`, else the first other
    /// one in the URL's order that is; the host in use, not usable, if none is.
    async fn select(&self) {
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
                    self.usable.store(true, Ordering::Relaxed);
                    return;
                }
                Err(problem) => tracing::warn!(
                    host = self.url.host_name(i),
                    %problem,
                    "database host not usable"
                ),
            }
        }
        self.usable.store(false, Ordering::Relaxed);
    }

    /// Whether host `i` is `wanted` now, and if not why: asked on a new connection, which
    /// sees what a new session would (a database made read-only by default since the pool's
    /// sessions began).
    async fn probe(&self, i: usize) -> Result<(), String> {
        let probe = async {
            let mut conn = self.url.hosts()[i].connect().await?;
            let wanted = match self.wanted {
                Wanted::Writes => accepts_writes(&mut conn).await,
                Wanted::Reads => match sqlx::query("SELECT 1").execute(&mut conn).await {
                    Ok(_) => Ok(true),
                    Err(e) => Err(e.into()),
                },
            };
            let _ = conn.close().await;
            wanted
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

    pub fn closed(&self) -> bool {
        self.pools.iter().all(PgPool::is_closed)
    }
}

/// Selects the host of `hosts` every [`WATCH_INTERVAL`], until they are dropped or closed.
async fn watch(hosts: Weak<Hosts>) {
    let mut ticks = tokio::time::interval(WATCH_INTERVAL);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(hosts) = hosts.upgrade() else {
            return;
        };
        if hosts.closed() {
            return;
        }
        let Ok(mut last) = hosts.last_selection.try_lock() else {
            continue;
        };
        hosts.select().await;
        *last = Some(Instant::now());
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
