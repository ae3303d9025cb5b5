//! [`PostgresWriter`]: the log writer on PostgreSQL, behind [`LedgerWriter`]. It owns one
//! connection, the one that holds the writer lease ([`super::PostgresLease`]), and never
//! reconnects: when that connection is gone, so is the lease, and every later call fails.
//! Each batch is one transaction (group commit, `synchronous_commit = on` or stronger). A
//! batch does not ask `pg_locks` whether its session still holds the lease: the lock is the
//! session's until it ends (the writer never unlocks), so a batch that runs on the session
//! holds it, and a query there would cost more than 1 % of a small batch. The lock is checked
//! when the log is opened and every second the writer is idle ([`LedgerWriter::check_lease`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{Connection, PgConnection};
use tokenledger_core::ids::Jti;
use tokenledger_core::merkle::Frontier;
use tokio::time::error::Elapsed;

use super::connection::{DatabaseUrl, connect_writable, limit_keepalives};
use super::log::LogRows;
use super::{decisions, encoder, lease, orphans, redaction, state_changes};
use super::{log, log_reads};
use crate::store::ids::{IdCache, NewIds};
use crate::store::leaf_codec::{EntryRow, LeafDecoders, LeafEncoder, NewDictionary};
use crate::store::rows::merge_records;
use crate::store::stored_hashes;
use crate::store::{
    Batch, CheckpointRow, LedgerWriter, LogRecord, RedactedIssuance, StateQuery, StateRows,
    StoreError,
};

/// How long the writer waits for the database to answer one call (a batch, its reads, a
/// checkpoint) before it gives its connection up: a database that stopped answering (a dead
/// host, a cut network) fails the batch instead of holding its callers. The connection is
/// then closed and its backend ended from another connection, which releases the lease; the
/// database ends the session on its side too, through the settings of [`configure_session`].
const DEADLINE: Duration = Duration::from_secs(60);
/// The deadline of opening the log once the lease is checked: restoring `upper_hashes` of
/// a large log takes minutes.
const OPEN_DEADLINE: Duration = Duration::from_secs(600);
/// How long the idle writer's check that it still holds the lease may take.
const CHECK_DEADLINE: Duration = Duration::from_secs(10);
/// How long ending a given-up connection's backend from another connection may take.
const END_DEADLINE: Duration = Duration::from_secs(10);

/// Settings of the writer's session: a transaction idles at most 45 s (below [`DEADLINE`]),
/// a lost client is noticed within 10 s even mid-statement (PostgreSQL 14 and later), and the
/// session is never ended for idling between batches. No `statement_timeout`: a timeout that
/// cancels a COMMIT waiting for the synchronous standby makes it succeed, committed on the
/// primary alone, and the batch's callers would hear of a commit on one machine; past
/// [`DEADLINE`] the writer gives the session up instead and its callers get an error. Settings
/// the server lacks are skipped.
const SESSION: &str = "SELECT set_config(name, w.value, false) FROM pg_settings \
    JOIN (VALUES ('statement_timeout', '0'), ('idle_in_transaction_session_timeout', '45s'), \
    ('client_connection_check_interval', '10s'), ('idle_session_timeout', '0')) \
    AS w(name, value) USING (name)";

/// Every commit waits at least for the WAL to be flushed (and, with
/// `synchronous_standby_names`, for the synchronous standby): `on`, unless the server's
/// setting is stronger (`remote_apply`).
const SYNCHRONOUS_COMMIT: &str = "SELECT set_config('synchronous_commit', 'on', false) \
    WHERE current_setting('synchronous_commit') IN ('off', 'local', 'remote_write')";

/// The backend of the writer's connection: its process id and start (unix microseconds), so
/// that it is ended only if it still is the same session.
#[derive(Clone, Copy, Debug)]
struct Backend {
    pid: i32,
    started: i64,
}

/// The one writer of a PostgreSQL ledger: the holder of the writer lease.
pub struct PostgresWriter {
    /// `None` once a call ran past its deadline: the connection was given up.
    conn: Option<PgConnection>,
    backend: Backend,
    url: DatabaseUrl,
    leaves: LeafEncoder,
    /// Ids of issuers, clients and identities of committed batches.
    ids: IdCache,
    deadline: Duration,
}

impl PostgresWriter {
    /// The writer on `conn`, the connection to a host of `url` that took the lease. Leaves
    /// are stored raw until `compress_after` are logged, then compressed with a dictionary
    /// trained on them (0: always raw); `decoders` learn every stored dictionary now and each
    /// new one once committed. Fails (closing `conn`) past [`DEADLINE`].
    pub(super) async fn on_lease(
        mut conn: PgConnection,
        url: &DatabaseUrl,
        decoders: Arc<LeafDecoders>,
        compress_after: usize,
    ) -> Result<PostgresWriter, StoreError> {
        let set_up = async {
            configure_session(&mut conn).await?;
            let backend = backend(&mut conn).await?;
            let leaves = encoder::load_encoder(&mut conn, decoders, compress_after).await?;
            Ok::<_, StoreError>((backend, leaves))
        };
        let (backend, leaves) = match tokio::time::timeout(DEADLINE, set_up).await {
            Ok(set_up) => set_up?,
            Err(_) => return Err(no_answer(DEADLINE)),
        };
        Ok(PostgresWriter {
            conn: Some(conn),
            backend,
            url: url.clone(),
            leaves,
            ids: IdCache::default(),
            deadline: DEADLINE,
        })
    }

    /// How many more raw leaves are stored before a dictionary is trained (0 once one is
    /// trained or training).
    pub fn samples_wanted(&self) -> usize {
        self.leaves.samples_wanted()
    }

    /// Waits for a dictionary being trained; the next batch writes it.
    pub async fn wait_for_training(&mut self) -> Result<Option<NewDictionary>, StoreError> {
        self.leaves.wait_for_training().await
    }

    /// Records `holder` as the writer, for standbys to name (see [`super::PostgresLease`]).
    pub(super) async fn record_holder(
        &mut self,
        holder: &str,
        since: i64,
    ) -> Result<(), StoreError> {
        let deadline = self.deadline;
        let written = lease::record_holder(live(&mut self.conn)?, holder, since);
        let answered = tokio::time::timeout(deadline, written).await;
        self.answered(answered, deadline).await
    }

    /// Closes the connection, which releases the lease.
    pub async fn close(self) -> Result<(), StoreError> {
        if let Some(conn) = self.conn {
            conn.close().await?;
        }
        Ok(())
    }

    /// The writer with another deadline for each call.
    #[cfg(test)]
    pub(super) fn with_deadline(self, deadline: Duration) -> PostgresWriter {
        PostgresWriter { deadline, ..self }
    }

    /// The value of setting `name` in the writer's session.
    #[cfg(test)]
    pub(super) async fn setting(&mut self, name: &str) -> String {
        let (value,): (String,) = sqlx::query_as("SELECT current_setting($1)")
            .bind(name)
            .fetch_one(live(&mut self.conn).unwrap())
            .await
            .unwrap();
        value
    }

    /// What a call that had `deadline` came to: its result, or, past the deadline, an error
    /// once the connection is given up (see [`Self::give_up`]).
    async fn answered<T>(
        &mut self,
        answered: Result<Result<T, StoreError>, Elapsed>,
        deadline: Duration,
    ) -> Result<T, StoreError> {
        match answered {
            Ok(result) => result,
            Err(_) => {
                self.give_up().await;
                Err(no_answer(deadline))
            }
        }
    }

    /// Gives the connection up: closes it here, and ends its backend from another connection
    /// (if it still is the same session), so that the lease is free at once rather than when
    /// the database notices the lost client.
    async fn give_up(&mut self) {
        drop(self.conn.take());
        let Backend { pid, started } = self.backend;
        let ended = tokio::time::timeout(END_DEADLINE, end_backend(&self.url, self.backend)).await;
        match ended {
            Ok(Ok(true)) => tracing::warn!(pid, "ended the given-up writer session"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!(
                pid,
                started,
                error = %e,
                "could not end the given-up writer session; the database ends it when it \
                 notices the lost client"
            ),
            Err(_) => tracing::warn!(
                pid,
                started,
                "no database answered to end the given-up writer session; it ends when the \
                 database notices the lost client"
            ),
        }
    }
}

/// The error of a call the database did not answer within `deadline`.
fn no_answer(deadline: Duration) -> StoreError {
    StoreError::Unavailable(format!(
        "the database did not answer the writer within {} s; the writer gives up its connection",
        deadline.as_secs()
    ))
}

/// The error of a batch the database did not answer within `deadline`: its COMMIT may have
/// been sent and applied, so it is not "nothing written" (not [`StoreError::Unavailable`],
/// whose 503 invites a retry); the sequencer re-reads the log to learn which.
fn outcome_unknown(deadline: Duration) -> StoreError {
    StoreError::Db(format!(
        "the database did not answer a batch within {} s (it may have been committed); the \
         writer gives up its connection",
        deadline.as_secs()
    ))
}

/// The error of a writer whose session no longer holds the lease.
fn lease_lost() -> StoreError {
    StoreError::Unavailable("this server no longer holds the writer lease".into())
}

/// The writer's connection, unless it was given up.
fn live(conn: &mut Option<PgConnection>) -> Result<&mut PgConnection, StoreError> {
    conn.as_mut().ok_or_else(|| {
        StoreError::Unavailable(
            "the writer gave up its database connection; the lease must be taken again".into(),
        )
    })
}

/// Applies [`SESSION`], [`SYNCHRONOUS_COMMIT`] and the keepalives to the writer's connection.
async fn configure_session(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query(SESSION).execute(&mut *conn).await?;
    sqlx::query(SYNCHRONOUS_COMMIT).execute(&mut *conn).await?;
    limit_keepalives(conn).await?;
    Ok(())
}

/// The backend of `conn`.
async fn backend(conn: &mut PgConnection) -> Result<Backend, StoreError> {
    let (pid, started): (i32, i64) = sqlx::query_as(
        "SELECT pid, (extract(epoch FROM backend_start) * 1000000)::bigint \
         FROM pg_stat_activity WHERE pid = pg_backend_pid()",
    )
    .fetch_one(conn)
    .await?;
    Ok(Backend { pid, started })
}

/// Ends `backend` on the host of `url` that accepts writes, if it runs there: whether it did.
async fn end_backend(url: &DatabaseUrl, backend: Backend) -> Result<bool, StoreError> {
    let (mut conn, _) = connect_writable(url).await?;
    let ended: Option<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE pid = $1 AND (extract(epoch FROM backend_start) * 1000000)::bigint = $2",
    )
    .bind(backend.pid)
    .bind(backend.started)
    .fetch_optional(&mut conn)
    .await?;
    let _ = conn.close().await;
    Ok(ended.is_some_and(|(ended,)| ended))
}

#[async_trait]
impl LedgerWriter for PostgresWriter {
    /// Also checks that this connection still holds the lease: after a failed batch the
    /// sequencer opens the log again, which fails on a connection that is gone.
    async fn open_log(&mut self) -> Result<Frontier, StoreError> {
        let deadline = self.deadline;
        let held = tokio::time::timeout(deadline, lease::holds_lease(live(&mut self.conn)?)).await;
        if !self.answered(held, deadline).await? {
            return Err(lease_lost());
        }
        let deadline = OPEN_DEADLINE.max(self.deadline);
        let opened = stored_hashes::open_log(live(&mut self.conn)?);
        let opened = tokio::time::timeout(deadline, opened).await;
        self.answered(opened, deadline).await
    }

    /// Whether the session still holds the lease, within [`CHECK_DEADLINE`].
    async fn check_lease(&mut self) -> Result<(), StoreError> {
        let deadline = CHECK_DEADLINE.min(self.deadline);
        let held = tokio::time::timeout(deadline, lease::holds_lease(live(&mut self.conn)?)).await;
        match self.answered(held, deadline).await? {
            true => Ok(()),
            false => Err(lease_lost()),
        }
    }

    async fn close(self: Box<Self>) -> Result<(), StoreError> {
        PostgresWriter::close(*self).await
    }

    async fn state_rows(&mut self, query: &StateQuery) -> Result<StateRows, StoreError> {
        let deadline = self.deadline;
        let read = decisions::state_rows(live(&mut self.conn)?, query);
        let answered = tokio::time::timeout(deadline, read).await;
        self.answered(answered, deadline).await
    }

    async fn logged_issuances(
        &mut self,
        keys: &[(&Jti, &str)],
    ) -> Result<HashMap<(Jti, String), u64>, StoreError> {
        let deadline = self.deadline;
        let read = log::find_issuances(live(&mut self.conn)?, keys);
        let answered = tokio::time::timeout(deadline, read).await;
        self.answered(answered, deadline).await
    }

    async fn redacted_issuances_of(
        &mut self,
        jti_hashes: &[[u8; 32]],
    ) -> Result<Vec<RedactedIssuance>, StoreError> {
        let deadline = self.deadline;
        let read = redaction::redacted_issuances_of(live(&mut self.conn)?, jti_hashes);
        let answered = tokio::time::timeout(deadline, read).await;
        self.answered(answered, deadline).await
    }

    async fn entries_at(&mut self, indexes: &[u64]) -> Result<Vec<LogRecord>, StoreError> {
        let deadline = self.deadline;
        let decoders = self.leaves.decoders();
        let conn = live(&mut self.conn)?;
        let read = async {
            let leaves = log_reads::read_entries_at(&mut *conn, decoders, indexes).await?;
            let redacted = redaction::redacted_at(&mut *conn, indexes).await?;
            Ok(merge_records(leaves, redacted))
        };
        let answered = tokio::time::timeout(deadline, read).await;
        self.answered(answered, deadline).await
    }

    async fn append(&mut self, batch: &Batch<'_>) -> Result<(), StoreError> {
        let deadline = self.deadline;
        let dictionary = self.leaves.pending_dictionary()?;
        let stored = self.leaves.encode_all(&batch.entries)?;
        let entries = EntryRow::of(&batch.entries, &stored);
        if batch.redacts() {
            self.ids.forget_identities();
        }
        let written = write_batch(
            live(&mut self.conn)?,
            &self.ids,
            dictionary.as_ref(),
            batch,
            &entries,
        );
        let new_ids = match tokio::time::timeout(deadline, written).await {
            Ok(result) => result?,
            Err(_) => {
                self.give_up().await;
                return Err(outcome_unknown(deadline));
            }
        };
        self.leaves.committed();
        self.ids.remember(new_ids);
        Ok(())
    }

    async fn write_checkpoint(&mut self, checkpoint: CheckpointRow<'_>) -> Result<(), StoreError> {
        let deadline = self.deadline;
        let written = log::insert_checkpoint(live(&mut self.conn)?, checkpoint);
        let answered = tokio::time::timeout(deadline, written).await;
        self.answered(answered, deadline).await
    }
}

/// Writes `batch` (its entries in stored form) in one transaction: the new dictionary, state
/// changes, entries with their stored hashes and resolution rows (one statement), issuances,
/// the sweep of a redaction's orphans, the checkpoint.
/// On any failure the transaction is rolled back and nothing is written. Returns the ids to
/// give to [`IdCache::remember`]. A batch of that one statement's rows only is written by
/// [`write_alone`].
async fn write_batch(
    conn: &mut PgConnection,
    cache: &IdCache,
    dictionary: Option<&NewDictionary>,
    batch: &Batch<'_>,
    entries: &[EntryRow<'_>],
) -> Result<NewIds, StoreError> {
    let rows = LogRows {
        entries,
        hashes: batch.hashes,
        resolutions: &batch.resolutions,
        issuances: &batch.issuances,
    };
    let one_statement = dictionary.is_none()
        && batch.state_changes.is_empty()
        && batch.issuances.is_empty()
        && batch.checkpoint.is_none();
    if one_statement {
        return write_alone(conn, &rows).await;
    }
    let mut tx = conn.begin().await?;
    let written = async {
        if let Some(dictionary) = dictionary {
            encoder::insert_dictionary(&mut tx, dictionary, batch.written_at).await?;
        }
        let mut candidates = orphans::Candidates::default();
        state_changes::write(&mut tx, &batch.state_changes, &mut candidates).await?;
        let new_ids = log::insert_log_rows(&mut tx, cache, &rows).await?;
        if batch.redacts() {
            orphans::sweep(&mut tx, &candidates).await?;
        }
        if let Some(checkpoint) = batch.checkpoint {
            log::insert_checkpoint(&mut tx, checkpoint).await?;
        }
        Ok(new_ids)
    }
    .await;
    match written {
        Ok(new_ids) => {
            // A commit without an answer may have committed: not "unavailable" (nothing
            // written), whatever the cause.
            tx.commit()
                .await
                .map_err(|e| StoreError::Db(format!("committing a batch: {e}")))?;
            Ok(new_ids)
        }
        Err(e) => {
            if let Err(rollback) = tx.rollback().await {
                tracing::error!(error = %rollback, "rolling back a failed batch failed");
            }
            Err(e)
        }
    }
}

/// Writes a batch of entries, stored hashes and resolution rows only (a resolution's, say:
/// no new dictionary, state change, issuance or checkpoint) as its one statement, committed
/// on its own: one round trip, where a transaction adds BEGIN and COMMIT. The statement is
/// atomic and, at `synchronous_commit` `on`, answered once its commit is durable. Refused by
/// the database, it wrote nothing; failed without an answer, it may have committed, as a
/// COMMIT without an answer may.
async fn write_alone(conn: &mut PgConnection, rows: &LogRows<'_>) -> Result<NewIds, StoreError> {
    match log::insert_entries_and_hashes(conn, rows).await {
        Ok(()) => Ok(NewIds::default()),
        Err(refused @ sqlx::Error::Database(_)) => Err(refused.into()),
        Err(e) => Err(StoreError::Db(format!("committing a batch: {e}"))),
    }
}
