//! Active credentials held in memory on PostgreSQL, so that authenticating a request costs no
//! round trip: held only while a connection of their own listens on [`CHANNEL`], which every
//! change to `credentials` notifies (migration 0004's trigger), and dropped on each
//! notification; while that connection is down nothing is held and every lookup queries.
//!
//! Safety: an entry is kept only if the listener was up, on the host the query went to,
//! before the query began, and nothing was heard between the two; a change committed after
//! the query's snapshot is then delivered to the listener, which drops the entry. A lost
//! listener (or a change of host) drops everything, and the cache starts empty when it
//! listens again. Second safety nets: an entry is read again after [`MAX_AGE`], at most
//! [`MAX_ENTRIES`] are held, and an unknown secret is never held (a brute force fills
//! nothing). The listener's connection is pinged every [`CHECK_EVERY`], so a silently lost
//! one is noticed within that and [`PING_DEADLINE`].
//!
//! Revocation at once: entries are used only within [`LEASE`] of the start of the listener's
//! last answered ping (notifications committed before a ping are delivered before its
//! answer, and are handled first), so a server whose listener is stuck stops using them; and
//! a notification carrying a payload (a revoke's fence, see `credential_fence`) is answered
//! on [`HEARD_CHANNEL`] once everything held has been dropped, so that the revoke returns as
//! soon as every listening server has heard it, and at the latest after [`LEASE`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgNotification, PgPoolOptions};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::connection::limit_keepalives;
use super::hosts::Hosts;
use crate::store::{CredentialInfo, StoreError};

/// The channel migration 0004's trigger notifies on every change to `credentials`.
pub const CHANNEL: &str = "tokenledger_credentials";
/// The channel a listener answers a fence on, with the fence's payload, once it has dropped
/// everything it held.
pub const HEARD_CHANNEL: &str = "tokenledger_credentials_heard";
/// The `application_name` of the listener's session (in `pg_stat_activity`).
pub const APPLICATION_NAME: &str = "tokenledger-credential-listener";
/// How long after the start of the listener's last answered ping entries are used: a change
/// committed this long ago has been heard by every server still using what it holds.
pub const LEASE: Duration = Duration::from_secs(2);
/// How long an entry is used without being read again, notification or not.
const MAX_AGE: Duration = Duration::from_secs(60);
/// The most credentials held; past it, others are read from the database every time.
const MAX_ENTRIES: usize = 10_000;
/// How often the listener's connection is pinged and the host in use checked.
const CHECK_EVERY: Duration = Duration::from_millis(500);
/// How long a ping of the listener's connection may take before it counts as lost.
const PING_DEADLINE: Duration = Duration::from_secs(1);
/// How long connecting the listener and subscribing may take.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);
/// The wait before listening again after a failure.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The credentials one server holds, and its listener (started by the first lookup).
pub struct CredentialCache {
    hosts: Arc<Hosts>,
    state: Mutex<State>,
    started: AtomicBool,
    closed: AtomicBool,
    stop: Arc<Notify>,
    listener: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct State {
    /// The host the listener listens on, while it is up.
    listening_on: Option<usize>,
    /// Every change committed before this instant has been heard (and everything held before
    /// it dropped); entries are used only within [`LEASE`] of it.
    heard_until: Option<Instant>,
    /// Moves on every notification, every change of the listener and every local change: a
    /// query's answer is kept only if it did not move while the query ran.
    generation: u64,
    entries: HashMap<Vec<u8>, Held>,
}

struct Held {
    info: CredentialInfo,
    /// When the query that read it began.
    read_at: Instant,
}

impl State {
    /// Drops every entry; `listening_on` is where the listener is up from now on.
    fn forget(&mut self, listening_on: Option<usize>) {
        self.entries.clear();
        self.generation += 1;
        self.listening_on = listening_on;
        self.heard_until = listening_on.map(|_| Instant::now());
    }

    /// Whether held entries may be used: the listener is up on `host` and heard recently.
    fn current(&self, host: usize) -> bool {
        self.listening_on == Some(host)
            && self
                .heard_until
                .is_some_and(|heard| heard.elapsed() < LEASE)
    }

    fn hold(&mut self, secret_hash: &[u8], info: &CredentialInfo, read_at: Instant) {
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.retain(|_, held| fresh(held));
        }
        if self.entries.len() < MAX_ENTRIES || self.entries.contains_key(secret_hash) {
            let info = info.clone();
            self.entries
                .insert(secret_hash.to_vec(), Held { info, read_at });
        }
    }
}

fn fresh(held: &Held) -> bool {
    held.read_at.elapsed() < MAX_AGE
}

impl CredentialCache {
    /// An empty cache of the credentials of the database on `hosts`; nothing listens yet.
    pub fn new(hosts: Arc<Hosts>) -> CredentialCache {
        CredentialCache {
            hosts,
            state: Mutex::default(),
            started: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            stop: Arc::new(Notify::new()),
            listener: Mutex::new(None),
        }
    }

    /// The active credential whose secret hashes to `secret_hash`: held, or else the answer
    /// of `read` on the pool of the host in use (kept if it is a credential and the rules
    /// above allow). The first call starts the listener.
    pub async fn active<F, Fut>(
        self: &Arc<Self>,
        secret_hash: &[u8],
        read: F,
    ) -> Result<Option<CredentialInfo>, StoreError>
    where
        F: FnOnce(PgPool) -> Fut,
        Fut: Future<Output = Result<Option<CredentialInfo>, StoreError>>,
    {
        self.start();
        let (host, pool) = self.hosts.current_pool();
        let ticket = {
            let state = self.lock();
            if state.current(host) {
                if let Some(held) = state.entries.get(secret_hash).filter(|h| fresh(h)) {
                    return Ok(Some(held.info.clone()));
                }
                Some(state.generation)
            } else {
                None
            }
        };
        let read_at = Instant::now();
        let found = read(pool).await?;
        if let (Some(generation), Some(info)) = (ticket, &found) {
            let mut state = self.lock();
            if state.generation == generation && state.current(host) {
                state.hold(secret_hash, info, read_at);
            }
        }
        Ok(found)
    }

    /// Drops every entry (after a change this server made, so that its own next lookup does
    /// not wait for the notification).
    pub fn forget_all(&self) {
        let mut state = self.lock();
        let listening_on = state.listening_on;
        state.forget(listening_on);
    }

    /// Stops the listener and closes its connection; nothing is held from then on.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.stop.notify_one();
        let listener = self
            .listener
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(listener) = listener {
            let _ = listener.await;
        }
        self.lock().forget(None);
    }

    fn start(self: &Arc<Self>) {
        if self.closed.load(Ordering::Acquire) || self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let task = tokio::spawn(listen(Arc::downgrade(self), self.stop.clone()));
        *self
            .listener
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(task);
    }

    /// Whether the listener is up (entries may be held).
    #[cfg(test)]
    pub fn listening(&self) -> bool {
        self.lock().listening_on.is_some()
    }

    /// How many credentials are held.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.lock().entries.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Why the listener stopped listening on a connection.
enum Ended {
    Stopped,
    HostChanged,
    Lost(String),
}

/// Listens on the host in use, again after each loss, until the cache is closed or dropped.
async fn listen(cache: Weak<CredentialCache>, stop: Arc<Notify>) {
    loop {
        let (host, options, name) = {
            let Some(cache) = cache.upgrade() else {
                return;
            };
            if cache.closed.load(Ordering::Acquire) {
                return;
            }
            let host = cache.hosts.current();
            let options = cache.hosts.options(host).clone();
            (host, options, cache.hosts.name_of(host).to_owned())
        };
        let subscribed = tokio::select! {
            _ = stop.notified() => return,
            subscribed = subscribe(&options) => subscribed,
        };
        let ended = match subscribed {
            Ok((pool, mut listener)) => {
                let ended = match cache.upgrade() {
                    Some(up) => {
                        up.lock().forget(Some(host));
                        drop(up);
                        tracing::info!(database = name, "credentials are held in memory");
                        hear(&cache, &stop, &mut listener, host).await
                    }
                    None => Ended::Stopped,
                };
                if let Some(up) = cache.upgrade() {
                    up.lock().forget(None);
                }
                drop(listener);
                let _ = tokio::time::timeout(PING_DEADLINE, pool.close()).await;
                ended
            }
            Err(problem) => Ended::Lost(problem),
        };
        match ended {
            Ended::Stopped => return,
            Ended::HostChanged => continue,
            Ended::Lost(problem) => tracing::warn!(
                database = name,
                %problem,
                "not listening for credential changes: every credential is read from the \
                 database until listening again"
            ),
        }
        tokio::select! {
            _ = stop.notified() => return,
            _ = tokio::time::sleep(RETRY_AFTER) => {}
        }
    }
}

/// A pool of one connection to `options`' host (it owns the listener's session) and the
/// listener on [`CHANNEL`].
async fn subscribe(options: &PgConnectOptions) -> Result<(PgPool, PgListener), String> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(CONNECT_DEADLINE)
        .after_connect(|conn, _| Box::pin(async move { limit_keepalives(conn).await }))
        .connect_lazy_with(options.clone().application_name(APPLICATION_NAME));
    let subscribed = async {
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.eager_reconnect(false);
        listener.listen(CHANNEL).await?;
        Ok::<_, sqlx::Error>(listener)
    };
    let problem = match tokio::time::timeout(CONNECT_DEADLINE, subscribed).await {
        Ok(Ok(listener)) => return Ok((pool, listener)),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer in {} s", CONNECT_DEADLINE.as_secs()),
    };
    let _ = tokio::time::timeout(PING_DEADLINE, pool.close()).await;
    Err(problem)
}

/// What the listener heard or noticed.
enum Event {
    Stop,
    Heard(PgNotification),
    Lost(String),
    Check,
}

/// Drops the cache's entries on every notification (and answers a fence), until the
/// connection is lost, the host in use changes, or the cache is closed or dropped.
async fn hear(
    cache: &Weak<CredentialCache>,
    stop: &Notify,
    listener: &mut PgListener,
    host: usize,
) -> Ended {
    loop {
        let event = tokio::select! {
            _ = stop.notified() => Event::Stop,
            heard = listener.try_recv() => match heard {
                Ok(Some(notification)) => Event::Heard(notification),
                Ok(None) => Event::Lost("the connection closed".into()),
                Err(e) => Event::Lost(e.to_string()),
            },
            _ = tokio::time::sleep(CHECK_EVERY) => Event::Check,
        };
        let Some(up) = cache.upgrade() else {
            return Ended::Stopped;
        };
        match event {
            Event::Stop => return Ended::Stopped,
            Event::Lost(problem) => return Ended::Lost(problem),
            Event::Heard(notification) => {
                up.lock().forget(Some(host));
                drop(up);
                if let Err(problem) = answer(listener, &notification).await {
                    return Ended::Lost(problem);
                }
            }
            Event::Check => {
                if up.closed.load(Ordering::Acquire) {
                    return Ended::Stopped;
                }
                if up.hosts.current() != host {
                    return Ended::HostChanged;
                }
                drop(up);
                let pinged_at = Instant::now();
                let ping = sqlx::query("SELECT 1").execute(&mut *listener);
                match tokio::time::timeout(PING_DEADLINE, ping).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Ended::Lost(e.to_string()),
                    Err(_) => return Ended::Lost("a ping went unanswered".into()),
                }
                // What was committed before the ping arrived before its answer: handle it,
                // then everything committed before `pinged_at` has been heard.
                while let Some(notification) = listener.next_buffered() {
                    if let Some(up) = cache.upgrade() {
                        up.lock().forget(Some(host));
                    }
                    if let Err(problem) = answer(listener, &notification).await {
                        return Ended::Lost(problem);
                    }
                }
                let Some(up) = cache.upgrade() else {
                    return Ended::Stopped;
                };
                let mut state = up.lock();
                if state.listening_on == Some(host) {
                    state.heard_until = Some(pinged_at);
                }
            }
        }
    }
}

/// Answers a fence (a notification with a payload) on [`HEARD_CHANNEL`] with its payload.
async fn answer(listener: &mut PgListener, notification: &PgNotification) -> Result<(), String> {
    if notification.payload().is_empty() {
        return Ok(());
    }
    let answer = sqlx::query("SELECT pg_notify($1, $2)")
        .bind(HEARD_CHANNEL)
        .bind(notification.payload())
        .execute(&mut *listener);
    match tokio::time::timeout(PING_DEADLINE, answer).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("a fence's answer went unanswered".into()),
    }
}

#[cfg(test)]
mod tests {
    use tokenledger_core::access::{Binding, Role};

    use super::*;

    fn info(id: &str) -> CredentialInfo {
        CredentialInfo {
            id: id.into(),
            binding: Binding::new(Role::Admin, None, None).unwrap(),
            label: None,
            created_at: 0,
            revoked_at: None,
        }
    }

    #[test]
    fn at_most_max_entries_are_held_and_stale_ones_make_room() {
        let mut state = State::default();
        let now = Instant::now();
        let stale = now
            .checked_sub(MAX_AGE)
            .expect("the clock is past a minute");
        for n in 0..MAX_ENTRIES {
            let at = if n == 7 { stale } else { now };
            state.hold(&n.to_be_bytes(), &info("c-held"), at);
        }
        assert_eq!(state.entries.len(), MAX_ENTRIES);
        state.hold(b"one more", &info("c-more"), now);
        assert!(
            state.entries.contains_key(b"one more".as_slice()),
            "the stale one made room"
        );
        assert!(!state.entries.contains_key(7usize.to_be_bytes().as_slice()));
        state.hold(b"and another", &info("c-other"), now);
        assert!(
            !state.entries.contains_key(b"and another".as_slice()),
            "full of fresh ones"
        );
        assert_eq!(state.entries.len(), MAX_ENTRIES);
        state.hold(b"one more", &info("c-more"), now);
        assert_eq!(
            state.entries.len(),
            MAX_ENTRIES,
            "one held is read again in place"
        );
    }

    #[test]
    fn an_entry_is_used_for_max_age_then_read_again() {
        let now = Instant::now();
        let held = |read_at| Held {
            info: info("c-1"),
            read_at,
        };
        assert!(fresh(&held(now)));
        assert!(!fresh(&held(now.checked_sub(MAX_AGE).unwrap())));
    }

    #[test]
    fn held_entries_are_used_only_within_the_lease_of_the_last_hearing() {
        let mut state = State::default();
        assert!(!state.current(0), "not listening");
        state.forget(Some(0));
        assert!(state.current(0));
        assert!(!state.current(1), "another host");
        state.heard_until = Instant::now().checked_sub(LEASE);
        assert!(!state.current(0), "heard nothing for the lease");
    }

    #[test]
    fn forgetting_drops_everything_and_moves_the_generation() {
        let mut state = State::default();
        state.hold(b"x", &info("c-1"), Instant::now());
        state.forget(Some(0));
        assert!(state.entries.is_empty());
        assert_eq!((state.generation, state.listening_on), (1, Some(0)));
        state.forget(None);
        assert_eq!((state.generation, state.listening_on), (2, None));
    }
}
