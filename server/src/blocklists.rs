//! Building, signing and caching each site's blocklist. A request finds the document of
//! the site's current suspensions; when its entries changed (a suspension, a lift, an
//! expiry) or half its validity is gone, it is signed again with the next sequence.
//!
//! Long polls ([`Blocklists::wait_for_change`]) wait on the sequencer's count of committed
//! changes ([`crate::sequencer::Sequencer::state_changes`]), and on the first expiry of the document they hold: a waiter is a task and a
//! small future, no thread, and at most [`MAX_WAITERS`] wait at once.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokenledger_core::blocklist::{Blocklist, BlocklistEntry, SignedBlocklist, SignedDocument};
use tokenledger_core::export::{ExportEntry, ExportFormat, ExportOptions, render};
use tokenledger_core::ids::{Pseudonym, Site, Vo};
use tokenledger_core::note::NoteSigner;
use tokenledger_core::wire::ExportDocument;
use tokio::sync::{Mutex, Semaphore, watch};

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::service::pseudonyms::Pseudonyms;
use crate::store::{BlocklistFetch, LedgerReader, Registry, StoreError, SuspensionRecord};

/// A credential's fetches are written at most this often (seconds) unless a document of a
/// newer sequence was served: a node polling with its ETag costs one write a minute, not one
/// per poll.
pub const FETCH_WRITE_INTERVAL_SECS: i64 = 60;

/// What was last written of one credential's fetches of one site's blocklist.
struct FetchMark {
    /// The highest sequence recorded as served to it.
    served: Option<u64>,
    /// When its fetch was last written (unix seconds).
    written_at: i64,
}

/// Whether a fetch (of `sequence`, a document `served` or a 304, at `now`) by the credential
/// of `key` is to be written, and if so marks it written: a document of a sequence newer than
/// any recorded for it, or [`FETCH_WRITE_INTERVAL_SECS`] since its last write.
fn write_due(
    marks: &mut HashMap<(String, String), FetchMark>,
    key: (String, String),
    sequence: u64,
    served: bool,
    now: i64,
) -> bool {
    let Some(mark) = marks.get_mut(&key) else {
        marks.insert(
            key,
            FetchMark {
                served: served.then_some(sequence),
                written_at: now,
            },
        );
        return true;
    };
    let newer = served && mark.served.is_none_or(|s| sequence > s);
    if !newer && now - mark.written_at < FETCH_WRITE_INTERVAL_SECS {
        return false;
    }
    if served {
        mark.served = Some(mark.served.map_or(sequence, |s| s.max(sequence)));
    }
    mark.written_at = now;
    true
}

/// Which export, and what the site tells about its consumer.
pub struct ExportRequest {
    pub format: ExportFormat,
    pub options: ExportOptions,
}

/// How long a built blocklist is served without looking at the database again, at most:
/// changes made through this server are seen at once; this bounds what another process
/// changes (`tokenledger-server site add`).
const MAX_CACHE_AGE: Duration = Duration::from_secs(10);

/// The longest a long poll waits, in seconds (`?wait=`).
pub const MAX_WAIT_SECS: u64 = 60;

/// Long polls held open at once; the next one is refused (503) rather than queued. Each costs
/// a task, a small future and its connection's socket.
pub const MAX_WAITERS: usize = 10_000;

/// Why a long poll could not wait.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("{MAX_WAITERS} blocklist requests are waiting already; ask again later")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A site's blocklist as last built, and until when it holds.
struct Cached {
    signed: SignedBlocklist,
    /// The change counter when it was built.
    version: u64,
    built: Instant,
    /// Unix seconds: the first entry expiry, or the time to sign again, whichever is first.
    valid_until: i64,
}

/// Builds, signs and caches blocklists. A site's document is built under that site's lock,
/// so a sequence is never reused; polls of an unchanged blocklist (ETag checks) are answered
/// from memory, without the database or a lock.
pub struct Blocklists {
    reader: Arc<dyn LedgerReader>,
    registry: Arc<dyn Registry>,
    pseudonyms: Pseudonyms,
    clock: Arc<dyn Clock>,
    validity_secs: i64,
    /// The sequencer's change counter, bumped by every committed suspension, lift, link or
    /// merge before its caller is answered; long polls wait on it.
    changes: watch::Receiver<u64>,
    /// Set when the server shuts down: long polls answer at once.
    closing: watch::Sender<bool>,
    /// One permit per long poll waiting.
    waiters: Semaphore,
    metrics: Arc<Metrics>,
    cache: RwLock<HashMap<String, Cached>>,
    site_locks: std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Per (site, credential), what was last written of its fetches.
    fetches: Arc<std::sync::Mutex<HashMap<(String, String), FetchMark>>>,
}

/// A long poll's place among the waiters, counted in the metrics while it lasts.
struct Waiting<'a> {
    _permit: tokio::sync::SemaphorePermit<'a>,
    metrics: &'a Metrics,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.metrics.blocklist_wait_ended();
    }
}

impl Blocklists {
    /// Blocklists of `pseudonyms`, valid `validity_secs` by `clock`, rebuilt when
    /// `changes` (the sequencer's [`state_changes`](crate::sequencer::Sequencer::state_changes))
    /// moves.
    pub fn new(
        reader: Arc<dyn LedgerReader>,
        registry: Arc<dyn Registry>,
        pseudonyms: Pseudonyms,
        clock: Arc<dyn Clock>,
        validity_secs: u64,
        metrics: Arc<Metrics>,
        changes: watch::Receiver<u64>,
    ) -> Blocklists {
        Blocklists {
            reader,
            registry,
            pseudonyms,
            clock,
            validity_secs: validity_secs as i64,
            changes,
            closing: watch::Sender::new(false),
            waiters: Semaphore::new(MAX_WAITERS),
            metrics,
            cache: RwLock::new(HashMap::new()),
            site_locks: std::sync::Mutex::new(HashMap::new()),
            fetches: Arc::default(),
        }
    }

    /// Records that `credential` fetched `site`'s blocklist: a document of `sequence` was
    /// served (`served`), or a 304 answered its ETag of `sequence`. Written in the background
    /// (never slowing or failing the answer; an error is logged and counted) when a document
    /// of a sequence newer than the last recorded for the credential was served, else at most
    /// once per [`FETCH_WRITE_INTERVAL_SECS`].
    pub fn record_fetch(&self, site: &Site, credential: &str, sequence: u64, served: bool) {
        let now = self.clock.now_secs();
        self.metrics.blocklist_fetched(site, now);
        let key = (site.to_string(), credential.to_string());
        let due = write_due(
            &mut self.fetches.lock().expect("fetch marks"),
            key,
            sequence,
            served,
            now,
        );
        if !due {
            return;
        }
        let registry = self.registry.clone();
        let metrics = self.metrics.clone();
        let marks = self.fetches.clone();
        let (site, credential) = (site.clone(), credential.to_string());
        tokio::spawn(async move {
            let fetch = BlocklistFetch {
                site: &site,
                credential_id: &credential,
                sequence,
                served,
                at: now,
            };
            if let Err(e) = registry.record_blocklist_fetch(&fetch).await {
                metrics.blocklist_fetch_record_failed();
                // Not written: the next fetch tries again.
                marks
                    .lock()
                    .expect("fetch marks")
                    .remove(&(site.to_string(), credential.clone()));
                tracing::warn!(site = %site, error = %e, "recording a blocklist fetch failed");
            }
        });
    }

    /// The server is shutting down: every long poll answers now, and none waits any more.
    pub fn release_waiters(&self) {
        self.closing.send_replace(true);
    }

    /// A long poll: the current signed blocklist of `site` as soon as `held` is false of it,
    /// or, after `wait`, the one still held. It looks again after every committed change
    /// (of any site: a change elsewhere only makes it look), when the document's first entry
    /// expires or it is due to be signed again, and at least every [`MAX_CACHE_AGE`] (changes
    /// made by another process). Refused with [`WaitError::Busy`] when [`MAX_WAITERS`] wait.
    pub async fn wait_for_change(
        &self,
        signer: &NoteSigner,
        site: &Site,
        vos: &[Vo],
        wait: Duration,
        held: impl Fn(&SignedBlocklist) -> bool,
    ) -> Result<SignedBlocklist, WaitError> {
        let deadline = tokio::time::Instant::now() + wait;
        let permit = self.waiters.try_acquire().map_err(|_| WaitError::Busy)?;
        self.metrics.blocklist_wait_began();
        let _waiting = Waiting {
            _permit: permit,
            metrics: &self.metrics,
        };
        // Subscribed before the first look, so no change after it goes unseen.
        let mut changes = self.changes.clone();
        changes.borrow_and_update();
        let mut closing = self.closing.subscribe();
        loop {
            let now_ms = self.clock.now_micros() / 1_000;
            let (signed, valid_until) = self.current(signer, site, vos, now_ms / 1_000).await?;
            if !held(&signed) || *closing.borrow_and_update() {
                return Ok(signed);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(signed);
            }
            // The cache holds the document until the end of the second `valid_until`.
            let until_stale_ms = ((valid_until + 1) * 1_000 - now_ms).max(0) as u64;
            let look_again = deadline
                .min(now + MAX_CACHE_AGE)
                .min(now + Duration::from_millis(until_stale_ms));
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Ok(signed);
                    }
                }
                _ = closing.changed() => {}
                () = tokio::time::sleep_until(look_again) => {}
            }
            self.metrics.blocklist_rechecked();
        }
    }

    /// The current signed blocklist of `site` (serving `vos`) at `now` (unix seconds), and the
    /// unix second after which it must be built again (an entry ends, or it is due to be
    /// signed again).
    pub async fn current(
        &self,
        signer: &NoteSigner,
        site: &Site,
        vos: &[Vo],
        now: i64,
    ) -> Result<(SignedBlocklist, i64), StoreError> {
        if let Some(cached) = self.cached(site, now) {
            return Ok(cached);
        }
        let lock = self.site_lock(site);
        let _one_at_a_time = lock.lock().await;
        if let Some(cached) = self.cached(site, now) {
            return Ok(cached);
        }
        let version = *self.changes.borrow();
        let entries = self.entries(site, vos, now).await?;
        let stored = self.reader.blocklist(site).await?;
        let signed = match stored {
            Some(doc)
                if doc.document.entries == entries
                    && doc.document.expires_at - now > self.validity_secs / 2 =>
            {
                doc
            }
            stored => {
                self.remember_pseudonyms(site, &entries).await?;
                let blocklist = Blocklist {
                    site: site.to_string(),
                    sequence: stored.map_or(1, |d| d.document.sequence + 1),
                    issued_at: now,
                    expires_at: now + self.validity_secs,
                    entries,
                };
                let signed = blocklist.sign(signer);
                if self.registry.store_blocklist(&signed).await? {
                    signed
                } else {
                    // Another server on the database signed this sequence first: its
                    // document is the one sites get.
                    self.reader.blocklist(site).await?.ok_or_else(|| {
                        StoreError::Corrupt(format!("the blocklist of site {site} went away"))
                    })?
                }
            }
        };
        let first_expiry = signed
            .document
            .entries
            .iter()
            .filter_map(|e| e.not_after)
            .min();
        let resign_at = signed.document.expires_at - self.validity_secs / 2;
        let valid_until = first_expiry.map_or(resign_at, |t| t.min(resign_at));
        let cached = Cached {
            signed: signed.clone(),
            version,
            built: Instant::now(),
            valid_until,
        };
        self.cache
            .write()
            .expect("blocklist cache lock")
            .insert(site.to_string(), cached);
        Ok((signed, valid_until))
    }

    fn cached(&self, site: &str, now: i64) -> Option<(SignedBlocklist, i64)> {
        let cache = self.cache.read().expect("blocklist cache lock");
        let cached = cache.get(site)?;
        let fresh = cached.version == *self.changes.borrow()
            && cached.built.elapsed() < MAX_CACHE_AGE
            && now <= cached.valid_until;
        fresh.then(|| (cached.signed.clone(), cached.valid_until))
    }

    fn site_lock(&self, site: &str) -> Arc<Mutex<()>> {
        self.site_locks
            .lock()
            .expect("site locks")
            .entry(site.to_string())
            .or_default()
            .clone()
    }

    /// Remembers every pseudonym the blocklist hands out, so the VO can resolve the one a
    /// site reports (VO-wide suspensions, merged persons).
    async fn remember_pseudonyms(
        &self,
        site: &Site,
        entries: &[BlocklistEntry],
    ) -> Result<(), StoreError> {
        for entry in entries {
            if let Some(pseudonym) = &entry.pseudonym {
                let pseudonym = Pseudonym::unchecked(pseudonym);
                let vo = Vo::unchecked(&entry.vo);
                self.pseudonyms
                    .remember_for_suspension(&pseudonym, site, &vo, &entry.suspension_id)
                    .await?;
            }
        }
        Ok(())
    }

    /// A signed export of the current blocklist's suspensions, naming identities.
    pub async fn export(
        &self,
        signer: &NoteSigner,
        site: &Site,
        vos: &[Vo],
        request: &ExportRequest,
        now: i64,
    ) -> Result<tokenledger_core::blocklist::Signed<ExportDocument>, StoreError> {
        let ExportRequest { format, options } = request;
        let (current, _) = self.current(signer, site, vos, now).await?;
        let (mut active, mut ended) = (Vec::new(), Vec::new());
        for record in self.reader.suspensions_for_site(site, vos).await? {
            let is_active = record.is_active(now);
            // Only Argus speaks of ended suspensions (their bans must be removed).
            if !is_active && *format != ExportFormat::Argus {
                continue;
            }
            let identities = match (&record.person_id, &record.token_jti) {
                (Some(person), None) => self.reader.identities_of(person, &record.vo).await?,
                _ => Vec::new(),
            };
            let entry = ExportEntry {
                label: match &record.person_id {
                    Some(person) => self.pseudonyms.of(site, &record.vo, person).into_string(),
                    None => record.id.clone(),
                },
                scope: record.scope,
                identities,
                client: record.client_id.is_some(),
                issued_before: record.issued_before,
            };
            if is_active {
                active.push(entry);
            } else {
                ended.push(entry);
            }
        }
        let sequence = current.document.sequence;
        let document = ExportDocument {
            site: site.to_string(),
            sequence,
            expires_at: current.document.expires_at,
            format: format.as_str().to_string(),
            content: render(*format, site, sequence, &active, &ended, options),
        };
        Ok(document.sign(signer))
    }

    async fn entries(
        &self,
        site: &Site,
        vos: &[Vo],
        now: i64,
    ) -> Result<Vec<BlocklistEntry>, StoreError> {
        let site_key = self.pseudonyms.secret().site_key(site);
        let mut entries = Vec::new();
        for record in self.active(site, vos, now).await? {
            let (mut tags, mut jti_hashes, mut client_tags) = (Vec::new(), Vec::new(), Vec::new());
            match (&record.token_iss, &record.token_jti, &record.person_id) {
                (Some(iss), Some(jti), _) => jti_hashes.push(site_key.jti_hash(iss, jti)),
                (_, _, Some(person)) => {
                    let identities = self.reader.identities_of(person, &record.vo).await?;
                    tags = identities
                        .iter()
                        .map(|(iss, sub)| site_key.tag(iss, sub))
                        .collect();
                    tags.sort();
                }
                _ => {
                    if let (Some(iss), Some(client)) = (&record.client_iss, &record.client_id) {
                        client_tags.push(site_key.client_tag(iss, client));
                    }
                }
            }
            entries.push(BlocklistEntry {
                vo: record.vo.to_string(),
                pseudonym: record
                    .person_id
                    .as_ref()
                    .map(|person| self.pseudonyms.of(site, &record.vo, person).into_string()),
                tags,
                jti_hashes,
                client_tags,
                issued_before: record.issued_before,
                scope: record.scope,
                not_after: record.not_after,
                suspension_id: record.id.clone(),
                reason_code: record.reason_code.clone(),
            });
        }
        entries.sort_by(|a, b| a.suspension_id.cmp(&b.suspension_id));
        Ok(entries)
    }

    /// The suspensions in force at `site` at `now`.
    async fn active(
        &self,
        site: &Site,
        vos: &[Vo],
        now: i64,
    ) -> Result<Vec<SuspensionRecord>, StoreError> {
        Ok(self
            .reader
            .suspensions_for_site(site, vos)
            .await?
            .into_iter()
            .filter(|s| s.is_active(now))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetch_is_written_for_a_new_sequence_else_once_a_minute() {
        let mut marks = HashMap::new();
        let key = |c: &str| ("SITE-A".to_string(), c.to_string());
        let mut due =
            |c: &str, sequence, served, now| write_due(&mut marks, key(c), sequence, served, now);
        // A first 304 is written (the last fetch), and so is the first document after it.
        assert!(due("c-1", 3, false, 1_000));
        assert!(due("c-1", 3, true, 1_001));
        // Polls of the same sequence, 200 or 304: not until a minute has passed.
        assert!(!due("c-1", 3, true, 1_002));
        assert!(!due("c-1", 3, false, 1_060));
        assert!(due("c-1", 3, false, 1_061));
        // A newer sequence served is written at once; a 304 naming it is not.
        assert!(!due("c-1", 4, false, 1_062));
        assert!(due("c-1", 4, true, 1_062));
        assert!(!due("c-1", 4, true, 1_063));
        // Every credential on its own.
        assert!(due("c-2", 4, true, 1_063));
    }
}
