//! [`PostgresWriter`]: the log writer on PostgreSQL, behind [`LedgerWriter`]. It owns one
//! connection, the one that holds the writer lease ([`super::PostgresLease`]), and never
//! reconnects: when that connection is gone, so is the lease, and every later call fails.
//! Each batch is one transaction (group commit, `synchronous_commit = on`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{Connection, PgConnection};
use tokenledger_core::ids::Jti;
use tokenledger_core::merkle::Frontier;

use super::{decisions, encoder, lease, state_changes};
use super::{log, log_reads};
use crate::store::ids::{IdCache, NewIds};
use crate::store::leaf_codec::{EntryRow, LeafDecoders, LeafEncoder, NewDictionary};
use crate::store::stored_hashes;
use crate::store::{
    Batch, CheckpointRow, LedgerWriter, StateQuery, StateRows, StoreError, StoredEntry,
};

/// How long the writer waits for the database to answer one call (a batch, its reads, a
/// checkpoint) before it gives its connection up: a database that stopped answering (a dead
/// host, a cut network) fails the batch instead of holding its callers. The database ends
/// the session on its side through the keepalives [`configure_session`] sets.
const DEADLINE: Duration = Duration::from_secs(60);

/// Settings of the writer's session: every commit waits for the WAL to be flushed (and, with
/// `synchronous_standby_names`, for the synchronous standby); the server probes an idle
/// writer's socket every 5 s after 10 s and drops a dead peer after 3 missed probes or 20 s
/// of unacknowledged data, which releases the lease for a standby to take.
const SESSION: &str = "SET synchronous_commit = on; SET tcp_keepalives_idle = 10; \
                       SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3; \
                       SET tcp_user_timeout = 20000";

/// The one writer of a PostgreSQL ledger: the holder of the writer lease.
pub struct PostgresWriter {
    conn: PgConnection,
    leaves: LeafEncoder,
    /// Ids of issuers, clients and identities of committed batches.
    ids: IdCache,
    /// A call ran past [`DEADLINE`]: the connection's state is unknown, it is not used again.
    lost: bool,
}

impl PostgresWriter {
    /// The writer on `conn`, the connection that took the lease. Leaves are stored raw until
    /// `compress_after` are logged, then compressed with a dictionary trained on them (0:
    /// always raw); `decoders` learn every stored dictionary now and each new one later.
    pub(super) async fn on_lease(
        mut conn: PgConnection,
        decoders: Arc<LeafDecoders>,
        compress_after: usize,
    ) -> Result<PostgresWriter, StoreError> {
        configure_session(&mut conn).await?;
        let leaves = encoder::load_encoder(&mut conn, decoders, compress_after).await?;
        Ok(PostgresWriter {
            conn,
            leaves,
            ids: IdCache::default(),
            lost: false,
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

    /// Closes the connection, which releases the lease.
    pub async fn close(self) -> Result<(), StoreError> {
        self.conn.close().await?;
        Ok(())
    }
}

/// Applies [`SESSION`] to the writer's connection.
async fn configure_session(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::raw_sql(SESSION).execute(conn).await?;
    Ok(())
}

/// Runs `work` on the writer's connection within [`DEADLINE`]; past it (or on a connection
/// given up before) the call fails and `lost` is set.
async fn within<T>(
    lost: &mut bool,
    work: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    if *lost {
        return Err(StoreError::Db(
            "the writer gave up its database connection; the lease must be taken again".into(),
        ));
    }
    match tokio::time::timeout(DEADLINE, work).await {
        Ok(result) => result,
        Err(_) => {
            *lost = true;
            Err(StoreError::Db(format!(
                "the database did not answer the writer within {} s; the writer gives up its \
                 connection",
                DEADLINE.as_secs()
            )))
        }
    }
}

#[async_trait]
impl LedgerWriter for PostgresWriter {
    /// Also checks that this connection still holds the lease: after a failed batch the
    /// sequencer opens the log again, which fails on a connection that is gone.
    async fn open_log(&mut self) -> Result<Frontier, StoreError> {
        let conn = &mut self.conn;
        if !within(&mut self.lost, lease::holds_lease(conn)).await? {
            return Err(StoreError::Db(
                "this server no longer holds the writer lease".into(),
            ));
        }
        stored_hashes::open_log(&mut self.conn).await
    }

    async fn state_rows(&mut self, query: &StateQuery) -> Result<StateRows, StoreError> {
        let conn = &mut self.conn;
        within(&mut self.lost, decisions::state_rows(conn, query)).await
    }

    async fn logged_issuances(
        &mut self,
        keys: &[(&Jti, &str)],
    ) -> Result<HashMap<(Jti, String), u64>, StoreError> {
        let conn = &mut self.conn;
        within(&mut self.lost, log::find_issuances(conn, keys)).await
    }

    async fn entries_at(&mut self, indexes: &[u64]) -> Result<Vec<StoredEntry>, StoreError> {
        let conn = &mut self.conn;
        let decoders = self.leaves.decoders();
        within(
            &mut self.lost,
            log_reads::read_entries_at(conn, decoders, indexes),
        )
        .await
    }

    async fn append(&mut self, batch: &Batch<'_>) -> Result<(), StoreError> {
        let dictionary = self.leaves.pending_dictionary()?;
        let stored = self.leaves.encode_all(&batch.entries)?;
        let entries = EntryRow::of(&batch.entries, &stored);
        let written = write_batch(
            &mut self.conn,
            &self.ids,
            dictionary.as_ref(),
            batch,
            &entries,
        );
        let new_ids = within(&mut self.lost, written).await?;
        self.leaves.committed();
        self.ids.remember(new_ids);
        Ok(())
    }

    async fn write_checkpoint(&mut self, checkpoint: CheckpointRow<'_>) -> Result<(), StoreError> {
        let conn = &mut self.conn;
        within(&mut self.lost, log::insert_checkpoint(conn, checkpoint)).await
    }
}

/// Writes `batch` (its entries in stored form) in one transaction, in SQLite's order: the new
/// dictionary, resolutions, state changes, entries, stored hashes, issuances, the checkpoint.
/// On any failure the transaction is rolled back and nothing is written. Returns the ids to
/// give to [`IdCache::remember`].
async fn write_batch(
    conn: &mut PgConnection,
    cache: &IdCache,
    dictionary: Option<&NewDictionary>,
    batch: &Batch<'_>,
    entries: &[EntryRow<'_>],
) -> Result<NewIds, StoreError> {
    let mut tx = conn.begin().await?;
    let written = async {
        if let Some(dictionary) = dictionary {
            encoder::insert_dictionary(&mut tx, dictionary, batch.written_at).await?;
        }
        log::insert_resolutions(&mut tx, &batch.resolutions).await?;
        state_changes::write(&mut tx, &batch.state_changes).await?;
        let new_ids =
            log::insert_log_rows(&mut tx, cache, entries, batch.hashes, &batch.issuances).await?;
        if let Some(checkpoint) = batch.checkpoint {
            log::insert_checkpoint(&mut tx, checkpoint).await?;
        }
        Ok(new_ids)
    }
    .await;
    match written {
        Ok(new_ids) => {
            tx.commit().await?;
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
