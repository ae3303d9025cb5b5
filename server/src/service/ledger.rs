//! [`Ledger`]: what every service works with, and appending one entry: canonical bytes and
//! leaf hash at the edge, then the sequencer, which decides whether a state change still
//! applies; the index comes back once the entry (and its state rows) are durable. Every
//! append goes through here: on a standby, which has no sequencer, each is refused with
//! [`AppendError::Standby`].

use std::sync::Arc;

use tokenledger_core::entry::EntryBody;

use super::ServiceError;
use super::pseudonyms::Pseudonyms;
use crate::clock::Clock;
use crate::sequencer::{AppendError, EntryKind, LogHead, PreparedEntry, Sequenced};
use crate::store::LedgerReader;
use crate::writer_role::{Role, WriterRole};

/// The ledger as services see it: reads, the one way to append, the pseudonyms handed to
/// sites, and the clock.
#[derive(Clone)]
pub struct Ledger {
    pub reader: Arc<dyn LedgerReader>,
    /// The sequencer while this server is the writer; the stored head on a standby.
    pub role: Arc<WriterRole>,
    pub pseudonyms: Pseudonyms,
    pub clock: Arc<dyn Clock>,
}

impl Ledger {
    /// Appends `body` with the state change `kind`; returns its log index. A refused change
    /// is [`ServiceError::Append`] with the sequencer's reason.
    pub async fn append(&self, body: EntryBody, kind: EntryKind) -> Result<u64, ServiceError> {
        Ok(self.append_decided(self.prepare(body, kind)?).await?)
    }

    /// The entry of `body`, logged now, with the state change `kind`.
    pub fn prepare(&self, body: EntryBody, kind: EntryKind) -> Result<PreparedEntry, ServiceError> {
        PreparedEntry::new(self.clock.now_micros(), body, kind)
            .map_err(|e| ServiceError::BadRequest(e.to_string()))
    }

    /// Appends one prepared entry; returns its log index, or the sequencer's refusal for the
    /// caller to word.
    pub async fn append_decided(&self, entry: PreparedEntry) -> Result<u64, AppendError> {
        let done = self.append_entries(vec![entry]).await?;
        Ok(done[0].index)
    }

    /// Appends prepared entries together: all of them in one batch, in order, or (if the
    /// sequencer refuses one's state change) none. Returns their log indexes.
    pub async fn append_together(
        &self,
        entries: Vec<PreparedEntry>,
    ) -> Result<Vec<u64>, AppendError> {
        let done = self.append_entries(entries).await?;
        Ok(done.iter().map(|s| s.index).collect())
    }

    /// Appends prepared entries in one job ([`crate::sequencer::Sequencer::append`]): where
    /// each went.
    pub async fn append_entries(
        &self,
        entries: Vec<PreparedEntry>,
    ) -> Result<Vec<Sequenced>, AppendError> {
        self.role.sequencer()?.append(entries).await
    }

    /// Appends prepared reports checked for redacted issuances at log size `checked_at`
    /// ([`crate::sequencer::Sequencer::append_checked`]).
    pub async fn append_checked(
        &self,
        entries: Vec<PreparedEntry>,
        checked_at: u64,
    ) -> Result<Vec<Sequenced>, AppendError> {
        self.role
            .sequencer()?
            .append_checked(entries, checked_at)
            .await
    }

    /// The latest head: committed by this server's sequencer, or on a standby the newest
    /// checkpoint stored.
    pub fn head(&self) -> Arc<LogHead> {
        self.role.head()
    }

    /// Whether this server is the writer.
    pub fn role(&self) -> Role {
        self.role.role()
    }
}
