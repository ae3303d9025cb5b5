//! The writer role of this server among every server sharing one database. Every instance
//! serves reads; the one holding the writer lease ([`WriterLease`]) runs the sequencer and
//! appends. The others are standbys: they answer appends with
//! [`AppendError::Standby`] (503, naming the writer), serve the newest checkpoint stored in
//! the database (the writer stores one a second), and try the lease about once a second. A
//! standby that takes it starts a sequencer, which opens the log from what is stored (the
//! frontier from stored hashes) and signs a checkpoint; a writer whose sequencer ends (it
//! could not re-read the log after a failed batch: [`crate::sequencer`]) is a standby again.
//!
//! [`WriterRole`] is what requests see (the sequencer, if any, and the head); [`RoleKeeper`]
//! the task that takes the lease and swaps the role. One count of state changes outlives
//! every sequencer, so the blocklists learn of changes across a failover.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use tokenledger_core::checkpoint::Checkpoint;
use tokenledger_core::merkle::Frontier;
use tokenledger_core::note::NoteSigner;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::sequencer::{AppendError, BatchLimits, LogHead, Sequencer, Standby};
use crate::store::{LedgerReader, LedgerWriter, WriterLease, ownership};

/// How often a standby tries the lease and reads the newest stored checkpoint.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// This server's role, as `GET /healthz` says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    Writer,
    /// Another server (named, if it is known) holds the writer lease, or none does.
    Standby {
        writer: Option<String>,
    },
}

enum State {
    Writer(Sequencer),
    Standby {
        head: Arc<LogHead>,
        writer: Option<String>,
    },
}

/// The role requests see: the sequencer to append through while this server is the writer,
/// else the newest stored checkpoint and the writer's name.
pub struct WriterRole {
    state: RwLock<State>,
    /// Bumped by every sequencer this server runs: see [`Sequencer::state_changes`].
    changes: watch::Sender<u64>,
}

impl WriterRole {
    /// A standby's role, serving `head` until it learns more.
    fn standby(head: LogHead) -> WriterRole {
        WriterRole {
            state: RwLock::new(State::Standby {
                head: Arc::new(head),
                writer: None,
            }),
            changes: watch::Sender::new(0),
        }
    }

    /// The sequencer to append through, or why there is none here.
    pub fn sequencer(&self) -> Result<Sequencer, AppendError> {
        match &*self.state.read().expect("writer role") {
            State::Writer(sequencer) => Ok(sequencer.clone()),
            State::Standby { writer, .. } => Err(AppendError::Standby(Standby {
                writer: writer.clone(),
            })),
        }
    }

    /// The log's head: the sequencer's on the writer, the newest stored checkpoint on a
    /// standby (at most about a second behind the writer's).
    pub fn head(&self) -> Arc<LogHead> {
        match &*self.state.read().expect("writer role") {
            State::Writer(sequencer) => sequencer.head(),
            State::Standby { head, .. } => head.clone(),
        }
    }

    pub fn role(&self) -> Role {
        match &*self.state.read().expect("writer role") {
            State::Writer(_) => Role::Writer,
            State::Standby { writer, .. } => Role::Standby {
                writer: writer.clone(),
            },
        }
    }

    /// A count that moves after every committed batch that suspended, lifted, linked or
    /// merged, whichever sequencer of this server committed it.
    pub fn state_changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn become_writer(&self, sequencer: Sequencer) {
        *self.state.write().expect("writer role") = State::Writer(sequencer);
    }

    /// Becomes a standby serving `head`; the sequencer handle it held is dropped.
    fn become_standby(&self, head: Arc<LogHead>, writer: Option<String>) {
        *self.state.write().expect("writer role") = State::Standby { head, writer };
    }

    /// On a standby: the newest stored head, unless the one it serves is larger (a writer
    /// that just ended may not have stored its last checkpoint), and the writer's name. A head
    /// that grew may hold state changes the writer committed: the count of changes moves.
    fn update_standby(&self, new_head: LogHead, new_writer: Option<String>) {
        if let State::Standby { head, writer } = &mut *self.state.write().expect("writer role") {
            if new_head.size > head.size {
                *head = Arc::new(new_head);
                self.changes.send_modify(|n| *n += 1);
            }
            *writer = new_writer;
        }
    }
}

/// What a sequencer is started with, each time this server takes the lease.
pub struct SequencerSetup {
    pub signer: NoteSigner,
    pub origin: String,
    pub limits: BatchLimits,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
}

/// Takes the writer lease and swaps the role: see the module's docs.
pub struct RoleKeeper {
    role: Arc<WriterRole>,
    lease: Arc<dyn WriterLease>,
    /// The name this server takes the lease under (`[server] advertise`).
    holder: String,
    reader: Arc<dyn LedgerReader>,
    setup: SequencerSetup,
    /// The writer task while this server is the writer.
    sequencer_task: Option<JoinHandle<()>>,
}

impl RoleKeeper {
    /// Tries the lease once, as `holder`: the writer if it is free (an error starting the
    /// sequencer is the caller's), else a standby serving the newest stored checkpoint.
    pub async fn start(
        lease: Arc<dyn WriterLease>,
        holder: String,
        reader: Arc<dyn LedgerReader>,
        setup: SequencerSetup,
    ) -> anyhow::Result<RoleKeeper> {
        let head = stored_head(reader.as_ref(), &setup.signer, &setup.origin).await?;
        let mut keeper = RoleKeeper {
            role: Arc::new(WriterRole::standby(head)),
            lease,
            holder,
            reader,
            setup,
            sequencer_task: None,
        };
        match keeper
            .lease
            .try_acquire(&keeper.holder)
            .await
            .context("taking the writer lease")?
        {
            Some(writer) => keeper
                .take_over(writer)
                .await
                .context("starting the sequencer")?,
            None => keeper.refresh_standby().await?,
        }
        Ok(keeper)
    }

    /// The role requests see.
    pub fn role(&self) -> Arc<WriterRole> {
        self.role.clone()
    }

    /// Keeps the role until `stop` is set (or its sender dropped): a standby tries the lease
    /// every [`POLL_INTERVAL`]; a writer waits for its sequencer to end. At the stop, a
    /// writer's sequencer commits what it holds and writes a last checkpoint before this
    /// returns.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut failing = false;
        while !*stop.borrow() && stop.has_changed().is_ok() {
            if let Some(task) = self.sequencer_task.as_mut() {
                let ended = tokio::select! {
                    _ = task => true,
                    _ = stop.changed() => false,
                };
                if ended {
                    self.sequencer_task = None;
                    self.lost().await;
                }
                continue;
            }
            let polled = self.poll(&stop).await;
            if polled.is_err() {
                // A server that cannot take the role (a SQLite disk full, a database gone) is
                // degraded on `GET /healthz`, each second it fails.
                self.setup.metrics.storage_errors().storage_error();
            }
            match polled {
                Ok(()) => failing = false,
                Err(e) if e.is::<ForeignCheckpoint>() => {
                    tracing::error!(error = %format!("{e:#}"), "this server cannot serve this database");
                    std::process::exit(1);
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(
                        error = %format!("{e:#}"),
                        "standby: trying the writer lease failed; trying again every second"
                    );
                }
                Err(_) => {}
            }
            if self.sequencer_task.is_none() {
                tokio::select! {
                    _ = tokio::time::sleep(POLL_INTERVAL) => {}
                    _ = stop.changed() => {}
                }
            }
        }
        self.stop().await;
    }

    /// A standby's second: the lease if it is free, else the stored head and the writer's
    /// name. A standby asked to stop takes no lease (one taken as the stop came is let go).
    async fn poll(&mut self, stop: &watch::Receiver<bool>) -> anyhow::Result<()> {
        if *stop.borrow() {
            return Ok(());
        }
        match self.lease.try_acquire(&self.holder).await? {
            Some(_) if *stop.borrow() => Ok(()),
            Some(writer) => self.take_over(writer).await,
            None => self.refresh_standby().await,
        }
    }

    /// Starts the sequencer on `writer`, once this server's log key is the one that signed
    /// the newest stored checkpoint.
    async fn take_over(&mut self, writer: Box<dyn LedgerWriter>) -> anyhow::Result<()> {
        // A checkpoint another key signed is fatal here too (`ForeignCheckpoint`), not only
        // while another server holds the lease; the writer is let go with the error.
        stored_head(self.reader.as_ref(), &self.setup.signer, &self.setup.origin).await?;
        ownership::check_log_key(self.reader.as_ref(), &self.setup.signer.verifier()).await?;
        let setup = &self.setup;
        let (sequencer, task) = Sequencer::start_reporting(
            writer,
            setup.signer.clone(),
            setup.origin.clone(),
            setup.limits,
            setup.metrics.clone(),
            setup.clock.clone(),
            self.role.changes.clone(),
        )
        .await?;
        tracing::info!(
            log_size = sequencer.head().size,
            holder = %self.holder,
            "this server is the writer"
        );
        self.role.become_writer(sequencer);
        // The previous writer's last state changes may not have been seen here.
        self.role.changes.send_modify(|n| *n += 1);
        self.sequencer_task = Some(task);
        Ok(())
    }

    /// The sequencer ended on its own: the log could not be re-read, so the lease is lost.
    async fn lost(&mut self) {
        tracing::error!("this server lost the writer role: it is a standby again");
        let head = self.role.head();
        self.role.become_standby(head, None);
        if let Err(e) = self.refresh_standby().await {
            tracing::warn!(error = %format!("{e:#}"), "standby: reading the stored checkpoint failed");
        }
    }

    async fn refresh_standby(&mut self) -> anyhow::Result<()> {
        let writer = self.lease.holder().await?;
        let head =
            stored_head(self.reader.as_ref(), &self.setup.signer, &self.setup.origin).await?;
        self.role.update_standby(head, writer);
        self.setup.metrics.set_log_size(self.role.head().size);
        Ok(())
    }

    /// A writer's sequencer drains (its handle dropped) and writes its last checkpoint.
    async fn stop(mut self) {
        let head = self.role.head();
        self.role.become_standby(head, None);
        if let Some(task) = self.sequencer_task.take()
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "the sequencer task failed");
        }
    }
}

/// The newest stored checkpoint does not open with this server's log key: another key signs
/// this database's log (two servers that started at once on an empty database, each with a
/// key of its own), so this server can neither serve nor extend it. Fatal: a standby exits.
#[derive(Debug, thiserror::Error)]
#[error(
    "the newest stored checkpoint (size {size}) does not open with this server's log key \
     ({problem}): copy log.key and ledger.secret from the writer of this database"
)]
struct ForeignCheckpoint {
    size: u64,
    problem: String,
}

/// The head of the newest checkpoint stored, which must open with this server's log key; for
/// a database without one, the empty tree's (which every log extends), signed here.
async fn stored_head(
    reader: &dyn LedgerReader,
    signer: &NoteSigner,
    origin: &str,
) -> anyhow::Result<LogHead> {
    let Some((size, note)) = reader.newest_checkpoint().await? else {
        let checkpoint = Checkpoint {
            origin: origin.to_string(),
            size: 0,
            root: Frontier::new().root(),
            extensions: Vec::new(),
        };
        let note = checkpoint
            .sign(signer)
            .map_err(|e| anyhow::anyhow!("signing the empty tree's checkpoint: {e}"))?;
        return Ok(LogHead {
            size: 0,
            root: checkpoint.root,
            note,
        });
    };
    let checkpoint =
        Checkpoint::open(&note, &signer.verifier()).map_err(|e| ForeignCheckpoint {
            size,
            problem: e.to_string(),
        })?;
    Ok(LogHead {
        size: checkpoint.size,
        root: checkpoint.root,
        note,
    })
}
