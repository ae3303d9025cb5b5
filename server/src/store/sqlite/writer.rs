//! [`SqliteWriter`]: the log writer's connection, its leaf encoder and its cache of lookup
//! ids, behind [`LedgerWriter`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::SqliteConnection;
use tokenledger_core::ids::Jti;
use tokenledger_core::merkle::Frontier;
use tokio::sync::OwnedSemaphorePermit;

use super::log;
use super::script::SqlScript;
use super::{connection, decisions, dictionaries, redaction};
use crate::store::ids::IdCache;
use crate::store::leaf_codec::{EntryRow, LeafDecoders, LeafEncoder, NewDictionary};
use crate::store::rows::merge_records;
use crate::store::stored_hashes;
use crate::store::{
    Batch, CheckpointRow, LedgerWriter, LogRecord, RedactedIssuance, StateQuery, StateRows,
    StoreError,
};

/// The one writer of a SQLite ledger.
pub struct SqliteWriter {
    conn: SqliteConnection,
    leaves: LeafEncoder,
    /// Ids of issuers, clients and identities of committed batches.
    ids: IdCache,
    /// The lease's permit, given back when the writer is dropped ([`super::SqliteLease`]).
    _lease: Option<OwnedSemaphorePermit>,
}

impl SqliteWriter {
    /// Opens the writer's connection to the database at `path`. Leaves are stored raw until
    /// `compress_after` are logged, then compressed with a dictionary trained on them (0:
    /// always raw); `decoders` learn each new dictionary.
    pub async fn open(
        path: &Path,
        decoders: Arc<LeafDecoders>,
        compress_after: usize,
    ) -> anyhow::Result<SqliteWriter> {
        let mut conn = connection::open_writer(path).await?;
        let leaves = dictionaries::load_encoder(&mut conn, decoders, compress_after).await?;
        Ok(SqliteWriter {
            conn,
            leaves,
            ids: IdCache::default(),
            _lease: None,
        })
    }

    /// This writer, holding `permit` of its lease until it is dropped.
    pub(super) fn holding(mut self, permit: OwnedSemaphorePermit) -> SqliteWriter {
        self._lease = Some(permit);
        self
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

    /// The writer's connection, for measurements and tuning of this connection only.
    pub fn connection(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }

    /// Closes the connection.
    pub async fn close(self) -> Result<(), StoreError> {
        sqlx::Connection::close(self.conn).await?;
        Ok(())
    }
}

#[async_trait]
impl LedgerWriter for SqliteWriter {
    async fn open_log(&mut self) -> Result<Frontier, StoreError> {
        stored_hashes::open_log(&mut self.conn).await
    }

    async fn state_rows(&mut self, query: &StateQuery) -> Result<StateRows, StoreError> {
        decisions::state_rows(&mut self.conn, query).await
    }

    async fn logged_issuances(
        &mut self,
        keys: &[(&Jti, &str)],
    ) -> Result<HashMap<(Jti, String), u64>, StoreError> {
        log::find_issuances(&mut self.conn, keys).await
    }

    async fn redacted_issuances_of(
        &mut self,
        jti_hashes: &[[u8; 32]],
    ) -> Result<Vec<RedactedIssuance>, StoreError> {
        redaction::redacted_issuances_of(&mut self.conn, jti_hashes).await
    }

    async fn entries_at(&mut self, indexes: &[u64]) -> Result<Vec<LogRecord>, StoreError> {
        let leaves = log::read_entries_at(&mut self.conn, self.leaves.decoders(), indexes).await?;
        let redacted = redaction::redacted_at(&mut self.conn, indexes).await?;
        Ok(merge_records(leaves, redacted))
    }

    async fn append(&mut self, batch: &Batch<'_>) -> Result<(), StoreError> {
        let dictionary = self.leaves.pending_dictionary()?;
        let stored = self.leaves.encode_all(&batch.entries)?;
        let entries = EntryRow::of(&batch.entries, &stored);
        let mut script = SqlScript::begin();
        if let Some(dictionary) = &dictionary {
            dictionaries::push_dictionary(&mut script, dictionary, batch.written_at);
        }
        log::push_resolutions(&mut script, &batch.resolutions);
        let tokens = redaction::tokens_of(&mut self.conn, &batch.state_changes).await?;
        for (index, change) in &batch.state_changes {
            log::push_state_change(&mut script, *index, change, &tokens);
        }
        let redacts = batch.redacts();
        if redacts {
            self.ids.forget_identities();
        }
        let new_ids = log::commit_batch(
            &mut self.conn,
            script,
            &self.ids,
            (&entries, batch.hashes, &batch.issuances),
            batch.checkpoint,
            redacts,
        )
        .await?;
        self.leaves.committed();
        self.ids.remember(new_ids);
        Ok(())
    }

    async fn write_checkpoint(&mut self, checkpoint: CheckpointRow<'_>) -> Result<(), StoreError> {
        log::insert_checkpoint(&mut self.conn, checkpoint).await
    }
}
