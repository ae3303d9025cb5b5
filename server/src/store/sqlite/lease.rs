//! [`SqliteLease`]: the writer role of an embedded database. Only this server uses the file,
//! so the lease is free whenever no writer it handed out is alive: it opens one
//! [`SqliteWriter`] at a time (at start, and again only if that writer's sequencer ended).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::Semaphore;

use super::SqliteWriter;
use crate::store::leaf_codec::LeafDecoders;
use crate::store::{LedgerWriter, StoreError, WriterLease};

/// Hands out the one writer of the SQLite database at `path`.
pub struct SqliteLease {
    path: PathBuf,
    decoders: Arc<LeafDecoders>,
    compress_after: usize,
    /// One permit: held by the writer handed out, returned when it is dropped.
    writer: Arc<Semaphore>,
    holder: Mutex<Option<String>>,
}

impl SqliteLease {
    /// The lease of the database at `path`, whose writer stores leaves as
    /// [`SqliteWriter::open`] says and teaches `decoders` its dictionaries.
    pub fn new(path: PathBuf, decoders: Arc<LeafDecoders>, compress_after: usize) -> SqliteLease {
        SqliteLease {
            path,
            decoders,
            compress_after,
            writer: Arc::new(Semaphore::new(1)),
            holder: Mutex::new(None),
        }
    }
}

#[async_trait]
impl WriterLease for SqliteLease {
    async fn try_acquire(&self, holder: &str) -> Result<Option<Box<dyn LedgerWriter>>, StoreError> {
        let Ok(permit) = self.writer.clone().try_acquire_owned() else {
            return Ok(None);
        };
        let writer = SqliteWriter::open(&self.path, self.decoders.clone(), self.compress_after)
            .await
            .map_err(|e| StoreError::Db(format!("{e:#}")))?;
        *self.holder.lock().expect("lease holder") = Some(holder.to_string());
        Ok(Some(Box::new(writer.holding(permit))))
    }

    async fn holder(&self) -> Result<Option<String>, StoreError> {
        let out = self.writer.available_permits() == 0;
        Ok(out
            .then(|| self.holder.lock().expect("lease holder").clone())
            .flatten())
    }
}
