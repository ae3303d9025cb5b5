//! The single writer of the log. Group commit: every batch is one fsync'd transaction,
//! and each caller is answered only after the batch holding its entries committed. Before
//! a batch that changes state is written, [`preconditions`] decides which of its changes
//! still apply; a refused change takes no index and writes nothing, and the rest of the
//! batch goes on.
//!
//! The signed head is stored as a checkpoint at most once a second with a batch, and at the
//! latest a second after the last batch when none follows: the other servers of a shared
//! database serve the stored one.
//!
//! A failed batch (or checkpoint write): its callers are told it failed, but it may have
//! committed all the same (the connection can be lost between the commit and its answer).
//! So the writer never appends again with the frontier it had: it re-opens the log
//! ([`LedgerWriter::open_log`]), takes the stored frontier as its own, signs and stores the
//! checkpoint of it, and goes on. If that fails too (the database is gone, or, on a shared
//! database, the writer's connection and with it the writer lease), the writer task ends:
//! the jobs still queued are answered as if the log were shutting down (503), and the server
//! is a standby again ([`crate::writer_role`]) until it takes the lease anew, opening the log
//! from what is stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokenledger_core::checkpoint::Checkpoint;
use tokenledger_core::entry::{EntryBody, EntryError, LogEntry};
use tokenledger_core::ids::{Jti, Vo};
use tokenledger_core::merkle::{self, Frontier, Hash};
use tokenledger_core::note::NoteSigner;
use tokenledger_core::redaction::RedactionKey;
use tokenledger_core::wire::AppendStatus;
use tokio::sync::{mpsc, oneshot, watch};

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::overtaken_reports;
use crate::preconditions::{self, LogPosition, Refusal};
use crate::store::{
    Batch, CheckpointRow, IssuanceKey, IssuanceRow, LedgerWriter, LogRecord, NewEntry, StateChange,
    StoreError,
};

/// How long a caller waits for room in the sequencer's queue before getting 503.
const ENQUEUE_TIMEOUT: Duration = Duration::from_secs(5);
/// A checkpoint is written to the database at most this often, and this long after a batch
/// at the latest (and at shutdown).
const CHECKPOINT_PERSIST_INTERVAL: Duration = Duration::from_secs(1);
/// How long the writer may go without a successful call to its store before it checks that
/// it can still append ([`LedgerWriter::check_lease`]): an idle writer whose connection, and
/// with it the writer lease, is gone ends within about this, rather than at its next batch.
const LEASE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// An entry prepared at the edge: its canonical bytes and leaf hash, when it was accepted,
/// and for an issuance the key that makes a repeated report idempotent.
#[derive(Clone, Debug)]
pub struct PreparedEntry {
    pub leaf: Vec<u8>,
    pub leaf_hash: Hash,
    /// The entry's `logged_at` (unix microseconds).
    pub logged_at: i64,
    /// The lookup rows written beside the entry.
    pub kind: EntryKind,
}

/// What kind of entry, with the state rows the sequencer writes in the entry's transaction.
#[derive(Clone, Debug)]
pub enum EntryKind {
    Issuance(IssuanceKey),
    Resolution {
        vo: Vo,
    },
    /// Any other state change: suspensions, lifts, links, sightings, key fetches.
    State(StateChange),
    /// A state change whose entry is also listed with the VO's resolutions, its audit
    /// listing: an erasure.
    Audited {
        vo: Vo,
        change: StateChange,
    },
}

impl EntryKind {
    /// The state change the entry's transaction applies, if any.
    pub fn state_change(&self) -> Option<&StateChange> {
        match self {
            EntryKind::State(change) | EntryKind::Audited { change, .. } => Some(change),
            EntryKind::Issuance(_) | EntryKind::Resolution { .. } => None,
        }
    }

    /// The VO whose audit listing (`GET /v1/vos/{vo}/resolutions`) lists the entry.
    fn audit_vo(&self) -> Option<&Vo> {
        match self {
            EntryKind::Resolution { vo } | EntryKind::Audited { vo, .. } => Some(vo),
            EntryKind::Issuance(_) | EntryKind::State(_) => None,
        }
    }
}

impl PreparedEntry {
    /// The entry of `body` logged at `logged_at` (unix microseconds): its canonical bytes and
    /// leaf hash, with the rows `kind` writes beside it.
    pub fn new(logged_at: i64, body: EntryBody, kind: EntryKind) -> Result<Self, EntryError> {
        let leaf = LogEntry::new(logged_at, body).canonical_bytes()?;
        Ok(PreparedEntry {
            leaf_hash: merkle::leaf_hash(&leaf),
            leaf,
            logged_at,
            kind,
        })
    }

    fn issuance(&self) -> Option<&IssuanceKey> {
        match &self.kind {
            EntryKind::Issuance(key) => Some(key),
            EntryKind::Resolution { .. } | EntryKind::State(_) | EntryKind::Audited { .. } => None,
        }
    }
}

/// Where one prepared entry ended up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sequenced {
    pub index: u64,
    pub leaf_hash: Hash,
    /// The `logged_at` of the entry at `index` (the first report's, for a duplicate).
    pub logged_at: i64,
    pub status: AppendStatus,
}

/// The latest committed state of the log, as readers see it.
#[derive(Clone, Debug)]
pub struct LogHead {
    pub size: u64,
    pub root: Hash,
    /// The signed C2SP checkpoint note for `size`.
    pub note: String,
}

/// Why an append was not done.
#[derive(Debug, thiserror::Error)]
pub enum SequencerError {
    #[error("the log is busy, retry later")]
    Busy,
    #[error("the log is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("signing the checkpoint failed: {0}")]
    Sign(String),
}

/// Why a standby appends nothing: another server is the writer (see
/// [`crate::writer_role`]).
#[derive(Clone, Debug)]
pub struct Standby {
    /// The writer's name (its `[server] advertise`), if a server holds the writer lease.
    pub writer: Option<String>,
}

impl std::fmt::Display for Standby {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.writer {
            Some(writer) => write!(
                f,
                "this server is a standby; the writer is {writer}: send writes there, or retry"
            ),
            None => write!(
                f,
                "this server is a standby and no server is the writer at the moment: retry"
            ),
        }
    }
}

impl std::error::Error for Standby {}

/// Why a job's entries were not appended.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// A state change does not apply to the state as of its place in the log.
    #[error(transparent)]
    Refused(Refusal),
    /// This server is not the writer.
    #[error(transparent)]
    Standby(Standby),
    /// The batch was not written.
    #[error(transparent)]
    Failed(Arc<SequencerError>),
}

/// A job's answer: where its entries went, or why its state change was refused.
type Answer = Result<Vec<Sequenced>, Refusal>;

/// The answers of a committed batch, with its counts of new and duplicate entries.
type BatchOutcome = (Vec<Answer>, u64, u64);

type Reply = oneshot::Sender<Result<Vec<Sequenced>, AppendError>>;

struct Job {
    entries: Vec<PreparedEntry>,
    /// Some entry changes state: the job is decided before it is written.
    changes_state: bool,
    /// The log's size when its reports were checked for redacted issuances, if they were.
    checked_at: Option<u64>,
    reply: Reply,
}

impl Job {
    fn state_changes(&self) -> Vec<&StateChange> {
        self.entries
            .iter()
            .filter_map(|e| e.kind.state_change())
            .collect()
    }
}

/// Batch limits of the sequencer.
#[derive(Clone, Copy, Debug)]
pub struct BatchLimits {
    pub max_batch: usize,
    pub max_wait: Duration,
    pub queue_depth: usize,
}

/// The handle request handlers append through.
#[derive(Clone)]
pub struct Sequencer {
    jobs: mpsc::Sender<Job>,
    head: watch::Receiver<Arc<LogHead>>,
    changes: watch::Receiver<u64>,
}

impl Sequencer {
    /// Opens the log through `store`, its one writer, and starts the writer task.
    /// The task ends, after committing everything queued, once every handle is dropped (or
    /// when the log cannot be re-opened after a failed batch: see the module's docs).
    pub async fn start(
        store: Box<dyn LedgerWriter>,
        signer: NoteSigner,
        origin: String,
        limits: BatchLimits,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> Result<(Sequencer, tokio::task::JoinHandle<()>), SequencerError> {
        let changes = watch::Sender::new(0);
        Sequencer::start_reporting(store, signer, origin, limits, metrics, clock, changes).await
    }

    /// As [`Sequencer::start`], counting the batches that change suspensions in `changes`
    /// ([`Sequencer::state_changes`]), which outlives the sequencer: a server that loses the
    /// writer role and takes it again keeps one count its blocklists listen to.
    pub async fn start_reporting(
        mut store: Box<dyn LedgerWriter>,
        signer: NoteSigner,
        origin: String,
        limits: BatchLimits,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        changes: watch::Sender<u64>,
    ) -> Result<(Sequencer, tokio::task::JoinHandle<()>), SequencerError> {
        let frontier = store.open_log().await?;
        let size = frontier.size();
        let head = sign_head(&signer, &origin, &frontier)?;
        store
            .write_checkpoint(CheckpointRow {
                size: head.size,
                note: &head.note,
                created_at: clock.now_micros(),
            })
            .await?;
        metrics.set_log_size(size);
        let (head_tx, head_rx) = watch::channel(Arc::new(head));
        let changes_rx = changes.subscribe();
        let (jobs_tx, jobs_rx) = mpsc::channel(limits.queue_depth);
        let writer = Writer {
            store,
            signer,
            origin,
            frontier,
            limits,
            expect_logged: false,
            metrics,
            clock,
            head: head_tx,
            changes,
            persisted_size: size,
            persisted_at: Instant::now(),
            checked_at: Instant::now(),
            holds_since: size,
            redacted_since: size,
            redaction_key: None,
        };
        let task = tokio::spawn(writer.run(jobs_rx));
        Ok((
            Sequencer {
                jobs: jobs_tx,
                head: head_rx,
                changes: changes_rx,
            },
            task,
        ))
    }

    /// Appends entries; answers once they are durable, in the order given. If one of them
    /// is a state change that no longer applies, none is appended.
    pub async fn append(&self, entries: Vec<PreparedEntry>) -> Result<Vec<Sequenced>, AppendError> {
        self.append_job(entries, None).await
    }

    /// As [`Sequencer::append`], for reports checked for redacted issuances when the log
    /// had `checked_at` entries: refused ([`Refusal::RedactedSince`]), none appended, if a
    /// redaction was logged since.
    pub async fn append_checked(
        &self,
        entries: Vec<PreparedEntry>,
        checked_at: u64,
    ) -> Result<Vec<Sequenced>, AppendError> {
        self.append_job(entries, Some(checked_at)).await
    }

    async fn append_job(
        &self,
        entries: Vec<PreparedEntry>,
        checked_at: Option<u64>,
    ) -> Result<Vec<Sequenced>, AppendError> {
        let changes_state = entries.iter().any(|e| e.kind.state_change().is_some());
        let (reply, answer) = oneshot::channel();
        let job = Job {
            entries,
            changes_state,
            checked_at,
            reply,
        };
        let failed = |e: SequencerError| AppendError::Failed(Arc::new(e));
        match tokio::time::timeout(ENQUEUE_TIMEOUT, self.jobs.send(job)).await {
            Err(_) => return Err(failed(SequencerError::Busy)),
            Ok(Err(_)) => return Err(failed(SequencerError::ShuttingDown)),
            Ok(Ok(())) => {}
        }
        answer
            .await
            .map_err(|_| failed(SequencerError::ShuttingDown))?
    }

    /// The latest committed head (size, root, signed checkpoint).
    pub fn head(&self) -> Arc<LogHead> {
        self.head.borrow().clone()
    }

    /// A count of committed batches that suspended, lifted, linked or merged: it moves after
    /// such a batch commits and before any of its callers is answered.
    pub fn state_changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }
}

struct Writer {
    store: Box<dyn LedgerWriter>,
    signer: NoteSigner,
    origin: String,
    frontier: Frontier,
    limits: BatchLimits,
    /// The last batch met reports logged before: the next one looks its keys up first.
    expect_logged: bool,
    metrics: Arc<Metrics>,
    /// The time of checkpoints and batches.
    clock: Arc<dyn Clock>,
    head: watch::Sender<Arc<LogHead>>,
    /// See [`Sequencer::state_changes`].
    changes: watch::Sender<u64>,
    persisted_size: u64,
    persisted_at: Instant,
    /// When a call to the store last succeeded (see [`LEASE_CHECK_INTERVAL`]).
    checked_at: Instant,
    /// See [`LogPosition::holds_since`].
    holds_since: u64,
    /// The log's size after the last batch this writer committed that redacted (its size
    /// when it took up the log, not knowing what was redacted before): reports checked for
    /// redacted issuances at a smaller size may be refused ([`Refusal::RedactedSince`]).
    redacted_since: u64,
    /// The key of the redacted issuances' digests, from the last redaction committed.
    redaction_key: Option<RedactionKey>,
}

impl Writer {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        loop {
            let Some(next) = self.next_job(&mut jobs).await else {
                break;
            };
            let committed = match next {
                Next::Job(first) => {
                    let batch = collect_batch(self.limits, first, &mut jobs).await;
                    self.commit(batch).await
                }
                Next::Persist => match self.persist_checkpoint().await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::error!(error = %e, "could not write the checkpoint");
                        false
                    }
                },
                Next::CheckLease => match self.store.check_lease().await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::error!(
                            error = %e,
                            "the idle writer can no longer append: this server stops appending"
                        );
                        return;
                    }
                },
            };
            if committed {
                self.checked_at = Instant::now();
            }
            if !committed && let Err(e) = self.reopen().await {
                tracing::error!(
                    error = %e,
                    "the log cannot be re-read after a failed write: this server stops appending"
                );
                return;
            }
        }
        if let Err(e) = self.persist_checkpoint().await {
            tracing::error!(error = %e, "could not write the final checkpoint");
        }
        tracing::info!(size = self.frontier.size(), "sequencer drained and stopped");
    }

    /// The next job; `None` once every handle is dropped and the queue is empty. While the
    /// head is newer than the stored checkpoint, waits at most until a checkpoint is due
    /// ([`CHECKPOINT_PERSIST_INTERVAL`] after the last), so that the stored one (which other
    /// servers of the database serve) is never much behind, even when no batch follows; and
    /// at most [`LEASE_CHECK_INTERVAL`] after the last successful call, to check the lease.
    async fn next_job(&mut self, jobs: &mut mpsc::Receiver<Job>) -> Option<Next> {
        let check_due = LEASE_CHECK_INTERVAL.saturating_sub(self.checked_at.elapsed());
        let persist_due = (self.head.borrow().size != self.persisted_size)
            .then(|| CHECKPOINT_PERSIST_INTERVAL.saturating_sub(self.persisted_at.elapsed()));
        let (due, persist) = match persist_due {
            Some(persist_due) if persist_due <= check_due => (persist_due, true),
            _ => (check_due, false),
        };
        tokio::select! {
            job = jobs.recv() => job.map(Next::Job),
            _ = tokio::time::sleep(due) => Some(if persist { Next::Persist } else { Next::CheckLease }),
        }
    }

    /// After a failed batch, which may have committed: the stored log's frontier becomes the
    /// writer's, and its checkpoint is signed and stored. Reports of the failed batch may be
    /// logged now, so the next batch looks its keys up.
    async fn reopen(&mut self) -> Result<(), SequencerError> {
        let frontier = self.store.open_log().await?;
        let head = sign_head(&self.signer, &self.origin, &frontier)?;
        self.store
            .write_checkpoint(CheckpointRow {
                size: head.size,
                note: &head.note,
                created_at: self.clock.now_micros(),
            })
            .await?;
        if frontier.size() != self.frontier.size() {
            tracing::warn!(
                size = frontier.size(),
                "the failed batch was committed after all"
            );
            // Its suspensions, lifts, links or merges may be in force now.
            self.changes.send_modify(|n| *n += 1);
        }
        self.metrics.set_log_size(frontier.size());
        self.persisted_size = head.size;
        self.persisted_at = Instant::now();
        self.expect_logged = true;
        self.holds_since = frontier.size();
        self.redacted_since = frontier.size();
        self.frontier = frontier;
        self.head.send_replace(Arc::new(head));
        Ok(())
    }

    /// Writes and answers one batch; false if it failed (every caller is told so).
    async fn commit(&mut self, batch: Vec<Job>) -> bool {
        let started = Instant::now();
        match self.write_batch(&batch).await {
            Ok((answers, new_entries, duplicates)) => {
                let micros = started.elapsed().as_micros() as u64;
                self.metrics
                    .batch_committed(self.frontier.size(), new_entries, duplicates, micros);
                let changed = batch.iter().zip(&answers).any(|(job, answer)| {
                    answer.is_ok() && job.state_changes().into_iter().any(changes_suspensions)
                });
                if changed {
                    self.changes.send_modify(|n| *n += 1);
                }
                let holds_changed = batch.iter().zip(&answers).any(|(job, answer)| {
                    answer.is_ok()
                        && job
                            .state_changes()
                            .into_iter()
                            .any(preconditions::changes_holds)
                });
                if holds_changed {
                    self.holds_since = self.frontier.size();
                }
                // (Every redaction's key is the ledger's: any one will do.)
                let redaction_key = batch
                    .iter()
                    .zip(&answers)
                    .filter(|(_, answer)| answer.is_ok())
                    .flat_map(|(job, _)| job.state_changes())
                    .find_map(|change| match change {
                        StateChange::Redact { key, .. } => Some(key.clone()),
                        _ => None,
                    });
                if let Some(key) = redaction_key {
                    self.redacted_since = self.frontier.size();
                    self.redaction_key = Some(key);
                }
                for (job, answer) in batch.into_iter().zip(answers) {
                    let _ = job.reply.send(answer.map_err(AppendError::Refused));
                }
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "batch not committed");
                let e = Arc::new(e);
                for job in batch {
                    let _ = job.reply.send(Err(AppendError::Failed(e.clone())));
                }
                false
            }
        }
    }

    /// Writes one batch in one transaction; on any error nothing is written and the
    /// in-memory tree is left as it was. State changes are decided first (see
    /// [`Writer::decide`]). Unless the last batch met reports that were logged before, the
    /// batch is first written without looking its keys up: the unique index of `issuances`
    /// refuses a logged `(jti, iss)`, and the batch is then written again with the lookup.
    async fn write_batch(&mut self, batch: &[Job]) -> Result<BatchOutcome, SequencerError> {
        let decisions = self.decide(batch).await?;
        if !self.expect_logged {
            match self.try_write(batch, &decisions, false).await {
                Err(SequencerError::Store(e)) if e.is_unique_violation() => {
                    self.metrics.batch_rewritten();
                }
                done => return done,
            }
        }
        self.try_write(batch, &decisions, true).await
    }

    /// Whether each job's state changes apply, decided in batch order against the state the
    /// writer reads now, before the batch's transaction: only the writer changes that state,
    /// so it holds until the batch commits. Reports checked for redacted issuances that a
    /// redaction overtook are refused ([`Refusal::RedactedSince`], [`overtaken_reports`]). A
    /// batch with neither is not decided: the answer is then empty.
    async fn decide(&mut self, batch: &[Job]) -> Result<Vec<Result<(), Refusal>>, StoreError> {
        let checked_before = |job: &Job| job.checked_at.is_some_and(|at| at < self.redacted_since);
        let redacts = |job: &Job| {
            job.changes_state
                && job
                    .entries
                    .iter()
                    .any(|e| matches!(e.kind.state_change(), Some(StateChange::Redact { .. })))
        };
        let may_be_overtaken = batch.iter().any(checked_before)
            || (batch.iter().any(|job| job.checked_at.is_some()) && batch.iter().any(redacts));
        let changes_state = batch.iter().any(|job| job.changes_state);
        if !changes_state && !may_be_overtaken {
            return Ok(Vec::new());
        }
        let mut decisions = if changes_state {
            let changes: Vec<Vec<&StateChange>> = batch.iter().map(Job::state_changes).collect();
            let log = LogPosition {
                size: self.frontier.size(),
                holds_since: self.holds_since,
            };
            preconditions::decide(self.store.as_mut(), &changes, log).await?
        } else {
            vec![Ok(()); batch.len()]
        };
        if !may_be_overtaken {
            return Ok(decisions);
        }
        let jobs: Vec<overtaken_reports::Job> = batch
            .iter()
            .zip(&decisions)
            .map(|(job, decision)| overtaken_reports::Job {
                checked_at: job.checked_at,
                issuances: job.entries.iter().filter_map(|e| e.issuance()).collect(),
                changes: job.state_changes(),
                admitted: decision.is_ok(),
            })
            .collect();
        let redactions = overtaken_reports::Redactions {
            since: self.redacted_since,
            key: self.redaction_key.as_ref(),
        };
        let overtaken =
            overtaken_reports::overtaken(self.store.as_mut(), &jobs, &redactions).await?;
        for (decision, overtaken) in decisions.iter_mut().zip(overtaken) {
            if overtaken {
                *decision = Err(Refusal::RedactedSince);
            }
        }
        Ok(decisions)
    }

    /// One attempt of [`Writer::write_batch`]: the jobs `decisions` refused are left out;
    /// `look_up` finds the reports logged before.
    async fn try_write(
        &mut self,
        batch: &[Job],
        decisions: &[Result<(), Refusal>],
        look_up: bool,
    ) -> Result<BatchOutcome, SequencerError> {
        let logged = if look_up {
            let keys: Vec<(&Jti, &str)> = batch
                .iter()
                .flat_map(|job| &job.entries)
                .filter_map(|e| e.issuance())
                .map(|k| (&k.jti, k.iss.as_str()))
                .collect();
            self.store.logged_issuances(&keys).await?
        } else {
            HashMap::new()
        };
        let plan = plan_batch(batch, decisions, &logged, self.frontier.clone());
        let old_entries = self.read_logged(&plan.old_duplicates).await?;
        let head = sign_head(&self.signer, &self.origin, &plan.frontier)?;
        let persist = self.persisted_at.elapsed() >= CHECKPOINT_PERSIST_INTERVAL;
        let written_at = self.clock.now_micros();
        let batch_rows = Batch {
            written_at,
            entries: plan.entry_rows(),
            hashes: &plan.hashes,
            issuances: plan.issuance_rows(),
            resolutions: plan.resolution_rows(),
            state_changes: plan.state_changes(),
            checkpoint: persist.then(|| CheckpointRow {
                size: head.size,
                note: &head.note,
                created_at: written_at,
            }),
        };
        self.store.append(&batch_rows).await?;

        if persist {
            self.persisted_size = head.size;
            self.persisted_at = Instant::now();
        }
        self.expect_logged = !plan.old_duplicates.is_empty();
        let answers = plan.answers(&old_entries);
        let counts = (plan.new_count, plan.duplicate_count);
        self.frontier = plan.frontier;
        self.head.send_replace(Arc::new(head));
        Ok((answers, counts.0, counts.1))
    }

    /// Leaf hash and `logged_at` of already logged entries, read from their canonical bytes.
    async fn read_logged(
        &mut self,
        indexes: &[u64],
    ) -> Result<HashMap<u64, (Hash, i64)>, StoreError> {
        let mut found = HashMap::new();
        for record in self.store.entries_at(indexes).await? {
            // The writer deletes a redacted issuance's key with its leaf: its report is new.
            let LogRecord::Leaf((index, leaf)) = record else {
                return Err(StoreError::Corrupt(format!(
                    "entry {} is redacted but its issuance key is stored",
                    record.index()
                )));
            };
            let entry = LogEntry::from_canonical_bytes(&leaf)
                .map_err(|e| StoreError::Corrupt(format!("entry {index}: {e}")))?;
            found.insert(index, (merkle::leaf_hash(&leaf), entry.logged_at));
        }
        Ok(found)
    }

    async fn persist_checkpoint(&mut self) -> Result<(), StoreError> {
        let head = self.head.borrow().clone();
        if head.size != self.persisted_size {
            self.store
                .write_checkpoint(CheckpointRow {
                    size: head.size,
                    note: &head.note,
                    created_at: self.clock.now_micros(),
                })
                .await?;
            self.persisted_size = head.size;
            self.persisted_at = Instant::now();
        }
        Ok(())
    }
}

/// What the writer does next.
enum Next {
    Job(Job),
    /// Store the head's checkpoint, which is due.
    Persist,
    /// Check that the writer can still append ([`LedgerWriter::check_lease`]): it was idle
    /// for [`LEASE_CHECK_INTERVAL`].
    CheckLease,
}

/// Takes every job already queued behind `first`, up to `max_batch` entries, then waits
/// up to `max_wait` for more (0, the default, waits not at all). Jobs that arrive while a
/// batch commits make the next batch, so batches grow with the load without a timer.
async fn collect_batch(
    limits: BatchLimits,
    first: Job,
    jobs: &mut mpsc::Receiver<Job>,
) -> Vec<Job> {
    let deadline = tokio::time::Instant::now() + limits.max_wait;
    let mut count = first.entries.len();
    let mut batch = vec![first];
    while count < limits.max_batch {
        let next = match jobs.try_recv() {
            Ok(job) => Some(job),
            Err(_) if limits.max_wait.is_zero() => None,
            Err(_) => tokio::time::timeout_at(deadline, jobs.recv())
                .await
                .ok()
                .flatten(),
        };
        let Some(job) = next else { break };
        count += job.entries.len();
        batch.push(job);
    }
    batch
}

/// Whether a change moves what a blocklist holds: its suspensions, or the identities of a
/// suspended person.
fn changes_suspensions(change: &StateChange) -> bool {
    match change {
        StateChange::Suspend(_)
        | StateChange::Lift { .. }
        | StateChange::Link { .. }
        | StateChange::Merge { .. } => true,
        StateChange::RequestSuspension(_)
        | StateChange::DecideRequest { .. }
        | StateChange::Sighting { .. }
        | StateChange::Redact { .. }
        | StateChange::None => false,
    }
}

/// Where each entry of a batch goes: a new index, or the index it already has.
enum Slot {
    New {
        index: u64,
        leaf_hash: Hash,
        logged_at: i64,
    },
    Logged(u64),
}

struct BatchPlan<'a> {
    /// Per job: where each entry goes, or why the job was refused.
    slots: Vec<Result<Vec<Slot>, Refusal>>,
    new_entries: Vec<(u64, &'a PreparedEntry)>,
    old_duplicates: Vec<u64>,
    hashes: Vec<(u64, Hash)>,
    frontier: Frontier,
    new_count: u64,
    duplicate_count: u64,
}

/// Assigns indexes: an entry whose key is logged (or earlier in the batch) keeps that index;
/// the entries of a job that `decisions` refused take none.
fn plan_batch<'a>(
    batch: &'a [Job],
    decisions: &[Result<(), Refusal>],
    logged: &HashMap<(Jti, String), u64>,
    mut frontier: Frontier,
) -> BatchPlan<'a> {
    let mut in_batch: HashMap<(&str, &str), (u64, Hash, i64)> = HashMap::new();
    let mut plan = BatchPlan {
        slots: Vec::with_capacity(batch.len()),
        new_entries: Vec::new(),
        old_duplicates: Vec::new(),
        hashes: Vec::new(),
        frontier: Frontier::new(),
        new_count: 0,
        duplicate_count: 0,
    };
    for (position, job) in batch.iter().enumerate() {
        if let Some(Err(refusal)) = decisions.get(position) {
            plan.slots.push(Err(refusal.clone()));
            continue;
        }
        let mut slots = Vec::with_capacity(job.entries.len());
        for entry in &job.entries {
            if let Some(key) = entry.issuance() {
                if let Some(index) = logged.get(&(key.jti.clone(), key.iss.clone())) {
                    plan.old_duplicates.push(*index);
                    plan.duplicate_count += 1;
                    slots.push(Slot::Logged(*index));
                    continue;
                }
                if let Some((index, leaf_hash, logged_at)) =
                    in_batch.get(&(key.jti.as_str(), key.iss.as_str()))
                {
                    plan.duplicate_count += 1;
                    slots.push(Slot::New {
                        index: *index,
                        leaf_hash: *leaf_hash,
                        logged_at: *logged_at,
                    });
                    continue;
                }
            }
            let index = frontier.size();
            plan.hashes.extend(frontier.append(entry.leaf_hash));
            plan.new_entries.push((index, entry));
            plan.new_count += 1;
            if let Some(key) = entry.issuance() {
                in_batch.insert(
                    (key.jti.as_str(), key.iss.as_str()),
                    (index, entry.leaf_hash, entry.logged_at),
                );
            }
            slots.push(Slot::New {
                index,
                leaf_hash: entry.leaf_hash,
                logged_at: entry.logged_at,
            });
        }
        plan.slots.push(Ok(slots));
    }
    plan.frontier = frontier;
    plan
}

impl BatchPlan<'_> {
    /// The new entries, in order.
    fn entry_rows(&self) -> Vec<NewEntry<'_>> {
        self.new_entries
            .iter()
            .map(|(index, e)| NewEntry {
                index: *index,
                leaf: &e.leaf,
            })
            .collect()
    }

    fn issuance_rows(&self) -> Vec<IssuanceRow<'_>> {
        self.new_entries
            .iter()
            .filter_map(|(index, e)| {
                e.issuance().map(|k| IssuanceRow {
                    index: *index,
                    key: k,
                    logged_at: e.logged_at,
                })
            })
            .collect()
    }

    fn resolution_rows(&self) -> Vec<(u64, &Vo)> {
        self.new_entries
            .iter()
            .filter_map(|(index, e)| e.kind.audit_vo().map(|vo| (*index, vo)))
            .collect()
    }

    fn state_changes(&self) -> Vec<(u64, &StateChange)> {
        self.new_entries
            .iter()
            .filter_map(|(index, e)| e.kind.state_change().map(|change| (*index, change)))
            .collect()
    }

    /// The answer of every job; an entry that took an index in this batch is `created` the
    /// first time and `duplicate` after.
    fn answers(&self, old_entries: &HashMap<u64, (Hash, i64)>) -> Vec<Answer> {
        let mut answered_new = std::collections::HashSet::new();
        self.slots
            .iter()
            .map(|slots| {
                let slots = slots.as_ref().map_err(Refusal::clone)?;
                Ok(slots
                    .iter()
                    .map(|slot| match slot {
                        Slot::New {
                            index,
                            leaf_hash,
                            logged_at,
                        } => Sequenced {
                            index: *index,
                            leaf_hash: *leaf_hash,
                            logged_at: *logged_at,
                            status: if answered_new.insert(*index) {
                                AppendStatus::Created
                            } else {
                                AppendStatus::Duplicate
                            },
                        },
                        Slot::Logged(index) => Sequenced {
                            index: *index,
                            leaf_hash: old_entries[index].0,
                            logged_at: old_entries[index].1,
                            status: AppendStatus::Duplicate,
                        },
                    })
                    .collect())
            })
            .collect()
    }
}

fn sign_head(
    signer: &NoteSigner,
    origin: &str,
    frontier: &Frontier,
) -> Result<LogHead, SequencerError> {
    let checkpoint = Checkpoint {
        origin: origin.to_string(),
        size: frontier.size(),
        root: frontier.root(),
        extensions: Vec::new(),
    };
    let note = checkpoint
        .sign(signer)
        .map_err(|e| SequencerError::Sign(e.to_string()))?;
    Ok(LogHead {
        size: checkpoint.size,
        root: checkpoint.root,
        note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job of state changes without rows, one entry per leaf.
    fn job(leaves: &[&[u8]]) -> Job {
        let entries = leaves
            .iter()
            .map(|leaf| PreparedEntry {
                leaf: leaf.to_vec(),
                leaf_hash: merkle::leaf_hash(leaf),
                logged_at: 1,
                kind: EntryKind::State(StateChange::None),
            })
            .collect();
        Job {
            entries,
            changes_state: true,
            checked_at: None,
            reply: oneshot::channel().0,
        }
    }

    #[test]
    fn a_refused_job_takes_no_index_and_the_jobs_after_it_follow_on() {
        let batch = [job(&[b"a"]), job(&[b"b"]), job(&[b"c", b"d"])];
        let decisions = [Ok(()), Err(Refusal::InEffect), Ok(())];
        let plan = plan_batch(&batch, &decisions, &HashMap::new(), Frontier::new());
        assert_eq!(plan.new_count, 3);
        let written: Vec<u64> = plan.new_entries.iter().map(|(index, _)| *index).collect();
        assert_eq!(written, [0, 1, 2]);
        let mut expected = Frontier::new();
        for leaf in [b"a", b"c", b"d"] {
            expected.append(merkle::leaf_hash(leaf));
        }
        assert_eq!(
            plan.frontier.root(),
            expected.root(),
            "b is not in the tree"
        );
        let answers: Vec<Result<Vec<u64>, Refusal>> = plan
            .answers(&HashMap::new())
            .into_iter()
            .map(|answer| answer.map(|done| done.iter().map(|s| s.index).collect()))
            .collect();
        assert_eq!(
            answers,
            [Ok(vec![0]), Err(Refusal::InEffect), Ok(vec![1, 2])]
        );
    }
}
