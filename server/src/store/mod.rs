//! Storage behind one seam: the traits the rest of the server reads and writes the ledger
//! through ([`LedgerWriter`], [`LedgerReader`], [`Registry`]), their row and error types, and
//! one folder per engine (`sqlite/`, `postgres/`) holding every statement of that engine.

#[cfg(test)]
mod conformance;
mod error;
pub mod identity_epochs;
mod ids;
mod issuance_search;
pub mod leaf_codec;
pub mod migrate;
pub mod ownership;
pub mod postgres;
mod reclaim;
mod records;
mod rows;
pub mod sqlite;
mod stored_hashes;

use std::collections::HashMap;

use async_trait::async_trait;
use tokenledger_core::blocklist::SignedBlocklist;
use tokenledger_core::ids::{Jti, PersonId, Pseudonym, Site, Vo};
use tokenledger_core::merkle::{self, Frontier, Hash};
use tokenledger_core::suspension_request::RequestStatus;
use tokenledger_core::wire::InclusionProof;

pub use error::StoreError;
pub use reclaim::{Reclaimed, Reclaimer};
pub use rows::{
    Batch, BlocklistFetch, CheckpointRow, CredentialInfo, IssuanceFilter, IssuanceKey, IssuanceRow,
    LogRecord, NewEntry, RedactedEntry, RedactedIssuance, RedactedIssuanceRow, RedactedRow,
    RedactionSpan, RequestDecision, SiteFetches, StateChange, StateQuery, StateRows, StoredEntry,
    StoredState, SuspensionRecord, SuspensionRequestRecord, TimelineEvent, check_redaction,
    decode_issuance,
};

/// The single writer of the log (the sequencer holds the only one): every entry, with its
/// lookup rows and state changes, is appended through [`LedgerWriter::append`], one
/// transaction per batch.
#[async_trait]
pub trait LedgerWriter: Send {
    /// Opens the stored log for appending: checks that it holds every stored hash of its
    /// size (restoring what the engine keeps twice) and returns its right edge.
    async fn open_log(&mut self) -> Result<Frontier, StoreError>;

    /// The rows the state changes of a batch are decided against, as stored now.
    async fn state_rows(&mut self, query: &StateQuery) -> Result<StateRows, StoreError>;

    /// The redacted issuances of any of the jtis whose digests are `jti_hashes`, as
    /// [`LedgerReader::redacted_issuances_of`], read where the writer writes.
    async fn redacted_issuances_of(
        &mut self,
        jti_hashes: &[[u8; 32]],
    ) -> Result<Vec<RedactedIssuance>, StoreError>;

    /// Indexes of already logged issuances among `keys` `(jti, iss)`.
    async fn logged_issuances(
        &mut self,
        keys: &[(&Jti, &str)],
    ) -> Result<HashMap<(Jti, String), u64>, StoreError>;

    /// Entries at `indexes`, by index, each leaf checked against its stored leaf hash, a
    /// redacted entry as such; missing ones are left out.
    async fn entries_at(&mut self, indexes: &[u64]) -> Result<Vec<LogRecord>, StoreError>;

    /// Writes `batch` in one transaction: all of it, or (on error) none of it. A report
    /// logged before makes it fail with [`StoreError::is_unique_violation`].
    async fn append(&mut self, batch: &Batch<'_>) -> Result<(), StoreError>;

    /// Records a signed checkpoint (once per size), outside any batch.
    async fn write_checkpoint(&mut self, checkpoint: CheckpointRow<'_>) -> Result<(), StoreError>;

    /// Checks, cheaply, that this writer can still append: on a shared database, that its
    /// connection is alive and still holds the writer lease. The idle sequencer calls it
    /// about once a second and ends on an error. An embedded engine has nothing to check.
    async fn check_lease(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Lets the writer (and, on a shared database, the lease) go now rather than when it is
    /// dropped.
    async fn close(self: Box<Self>) -> Result<(), StoreError> {
        Ok(())
    }
}

/// How a server becomes the one writer of the log. An embedded engine (SQLite) has one server
/// and hands its writer out once; a shared database (PostgreSQL) has one writer among any
/// number of servers, the holder of a lease tied to the writer's connection: when that
/// connection goes, so does the lease, and the writer can append nothing more.
#[async_trait]
pub trait WriterLease: Send + Sync {
    /// Tries once to take the lease as `holder` (the name standbys give in their 503s):
    /// the writer, not yet opened ([`LedgerWriter::open_log`]), or `None` while another
    /// server holds the lease.
    async fn try_acquire(&self, holder: &str) -> Result<Option<Box<dyn LedgerWriter>>, StoreError>;

    /// The holder the current writer recorded when it took the lease, if any.
    async fn holder(&self) -> Result<Option<String>, StoreError>;
}

/// Reads of the ledger: stored hashes for proofs, entries, lookups, searches, timelines,
/// credentials, sites, suspensions. Every leaf returned was checked against its stored leaf
/// hash.
#[async_trait]
pub trait LedgerReader: Send + Sync {
    /// This reader as it reads what every committed write left: without a read replica that
    /// may lag. A decision that leads to a write (the token a suspension, a request or a
    /// sighting names) reads through it.
    fn primary(&self) -> &dyn LedgerReader;

    /// Number of entries in the log.
    async fn log_size(&self) -> Result<u64, StoreError>;

    /// The stored hashes at `indexes`, in the same order.
    async fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StoreError>;

    /// The inclusion proof of entry `index` in the tree of `size` (index < size <= log size).
    async fn inclusion_proof(&self, index: u64, size: u64) -> Result<InclusionProof, StoreError> {
        let corrupt = |e: merkle::MerkleError| StoreError::Corrupt(e.to_string());
        let mut indexes = merkle::inclusion_proof_indexes(index, size).map_err(corrupt)?;
        indexes.push(merkle::stored_hash_index(0, index));
        let mut hashes = self.read_hashes(&indexes).await?;
        let leaf_hash = hashes.pop().expect("the leaf hash was asked for");
        let proof = merkle::inclusion_proof(index, size, &hashes).map_err(corrupt)?;
        Ok(InclusionProof {
            index,
            size,
            leaf_hash,
            hashes: proof,
        })
    }

    /// The right edge of the tree of `size` leaves, from stored hashes.
    async fn frontier(&self, size: u64) -> Result<Frontier, StoreError> {
        let hashes = self.read_hashes(&merkle::tree_hash_indexes(size)).await?;
        Frontier::from_stored(size, &hashes).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// Entries `start..end`, by index, a redacted entry as such.
    async fn entries(&self, start: u64, end: u64) -> Result<Vec<LogRecord>, StoreError>;

    /// The first `limit` entries of `start..end` still stored (not redacted), by index, each
    /// leaf checked against its stored leaf hash: redacted entries are skipped unread.
    async fn stored_entries(
        &self,
        start: u64,
        end: u64,
        limit: u64,
    ) -> Result<Vec<StoredEntry>, StoreError>;

    /// The redacted issuances of `jti`, whatever their issuer (as
    /// [`LedgerReader::issuances_by_jti`] finds those not redacted).
    async fn redacted_issuances(
        &self,
        jti_hash: &[u8; 32],
    ) -> Result<Vec<RedactedIssuance>, StoreError>;

    /// The redactions (`redaction` and `erasure` entries) whose span of the log meets
    /// `start..end`, newest first, at most `limit`.
    async fn redactions_within(
        &self,
        start: u64,
        end: u64,
        limit: u32,
    ) -> Result<Vec<RedactionSpan>, StoreError>;

    /// The redacted issuances of any of the jtis whose digests are `jti_hashes`, in one
    /// lookup (an ingest request's reports).
    async fn redacted_issuances_of(
        &self,
        jti_hashes: &[[u8; 32]],
    ) -> Result<Vec<RedactedIssuance>, StoreError>;

    /// The newest stored checkpoint: its size and signed note.
    async fn newest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError>;

    /// Every issuance of `jti`, whatever its issuer.
    async fn issuances_by_jti(&self, jti: &Jti) -> Result<Vec<StoredEntry>, StoreError>;

    /// The issuance of `(iss, jti)`.
    async fn issuance(&self, iss: &str, jti: &Jti) -> Result<Option<StoredEntry>, StoreError>;

    /// The earliest issuance of `iss` that carried `refresh_jti`, before index `before`.
    async fn first_with_refresh(
        &self,
        iss: &str,
        refresh_jti: &Jti,
        before: u64,
    ) -> Result<Option<StoredEntry>, StoreError>;

    /// The person an identity belongs to in `vo`.
    async fn person_of(
        &self,
        iss: &str,
        sub: &str,
        vo: &Vo,
    ) -> Result<Option<PersonId>, StoreError>;

    /// Every identity `(iss, sub)` of a person in `vo`, oldest first; empty if no such person.
    async fn identities_of(
        &self,
        person: &PersonId,
        vo: &Vo,
    ) -> Result<Vec<(String, String)>, StoreError>;

    /// The person an identity belongs to in `vo`, with every identity of that person there
    /// (as [`LedgerReader::identities_of`]); `None` if the identity is unknown.
    async fn person_with_identities(
        &self,
        iss: &str,
        sub: &str,
        vo: &Vo,
    ) -> Result<Option<(PersonId, Vec<(String, String)>)>, StoreError>;

    /// Issuances matching `filter`, newest first, at most `filter.limit`.
    async fn issuances(&self, filter: &IssuanceFilter<'_>) -> Result<Vec<StoredEntry>, StoreError>;

    /// The VOs (sorted) in which a token of client `client_id` of issuer `iss` is logged.
    async fn client_vos(&self, iss: &str, client_id: &str) -> Result<Vec<Vo>, StoreError>;

    /// Resolution entries of `vo`, newest first.
    async fn resolutions(
        &self,
        vo: &Vo,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, StoreError>;

    /// A person's timeline, newest first: issuances of its identities, sightings of those
    /// tokens, its suspensions and their lifts.
    async fn timeline(
        &self,
        vo: &Vo,
        person: &PersonId,
        identities: &[(String, String)],
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<TimelineEvent>, StoreError>;

    /// The site, VO and person a pseudonym was handed out for.
    async fn pseudonym(
        &self,
        pseudonym: &Pseudonym,
    ) -> Result<Option<(Site, Vo, PersonId)>, StoreError>;

    /// One stored pseudonym with its site, VO and person, if any is stored.
    async fn any_pseudonym(&self) -> Result<Option<(Pseudonym, Site, Vo, PersonId)>, StoreError>;

    /// The active credential whose secret hashes to `secret_hash`.
    async fn active_credential(
        &self,
        secret_hash: &[u8],
    ) -> Result<Option<CredentialInfo>, StoreError>;

    /// Every credential, oldest first.
    async fn credentials(&self) -> Result<Vec<CredentialInfo>, StoreError>;

    /// The VOs `site` serves; `None` if there is no such site.
    async fn site_vos(&self, site: &Site) -> Result<Option<Vec<Vo>>, StoreError>;

    /// Every site with its VOs, by name.
    async fn sites(&self) -> Result<Vec<(Site, Vec<Vo>)>, StoreError>;

    /// The suspension `id`.
    async fn suspension(&self, id: &str) -> Result<Option<SuspensionRecord>, StoreError>;

    /// Suspensions that reach `site`: its own, and VO-wide ones of the VOs it serves; newest
    /// first.
    async fn suspensions_for_site(
        &self,
        site: &Site,
        vos: &[Vo],
    ) -> Result<Vec<SuspensionRecord>, StoreError>;

    /// Every suspension of a VO's persons, at any site or VO-wide; newest first.
    async fn suspensions_for_vo(&self, vo: &Vo) -> Result<Vec<SuspensionRecord>, StoreError>;

    /// The blocklist last signed for `site`.
    async fn blocklist(&self, site: &Site) -> Result<Option<SignedBlocklist>, StoreError>;

    /// Whether `site` fetched a blocklist carrying suspension `suspension_id`: the sequence it
    /// first appeared in, the first fetch of that or a later sequence, the site's last fetch.
    async fn blocklist_enforcement(
        &self,
        site: &Site,
        suspension_id: &str,
    ) -> Result<SiteFetches, StoreError>;

    /// Every site's last blocklist fetch (unix seconds), by site.
    async fn last_blocklist_fetches(&self) -> Result<Vec<(Site, i64)>, StoreError>;

    /// The suspension request `id`.
    async fn suspension_request(
        &self,
        id: &str,
    ) -> Result<Option<SuspensionRequestRecord>, StoreError>;

    /// The suspension requests `site` made (only those of `status`, if given), newest first.
    async fn suspension_requests_of_site(
        &self,
        site: &Site,
        status: Option<RequestStatus>,
    ) -> Result<Vec<SuspensionRequestRecord>, StoreError>;

    /// The suspension requests made to `vo` (only those of `status`, if given), newest first.
    async fn suspension_requests_to_vo(
        &self,
        vo: &Vo,
        status: Option<RequestStatus>,
    ) -> Result<Vec<SuspensionRequestRecord>, StoreError>;
}

/// A credential revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revoked {
    /// Some server on the same database (PostgreSQL) did not confirm the revoke in time, or
    /// could not be asked: the revoke waited until none uses credentials held from before it.
    pub waited_out: bool,
}

/// Rows kept beside the log and written outside it: credentials, sites, the pseudonyms
/// handed out to sites, and each site's last signed blocklist.
#[async_trait]
pub trait Registry: Send + Sync {
    /// Adds a credential, of which only the hash of the secret is kept.
    async fn add_credential(
        &self,
        credential: &CredentialInfo,
        secret_hash: &[u8],
    ) -> Result<(), StoreError>;

    /// Revokes a credential at `at`; `None` if there is no such active credential. Returns
    /// once no server of the ledger accepts it any more.
    async fn revoke_credential(&self, id: &str, at: i64) -> Result<Option<Revoked>, StoreError>;

    /// Adds a site (created at `at`) or replaces the VOs it serves.
    async fn upsert_site(&self, name: &Site, vos: &[Vo], at: i64) -> Result<(), StoreError>;

    /// Replaces the stored blocklist of its site if `signed` has a higher sequence, and then
    /// records the sequence at which each suspension it carries first appeared in that site's
    /// blocklists. False, with nothing written, when the stored one has this sequence or a
    /// higher one (another server sharing the database signed it first): never two documents
    /// with one sequence.
    async fn store_blocklist(&self, signed: &SignedBlocklist) -> Result<bool, StoreError>;

    /// Records a fetch of a site's blocklist: the first fetch of its sequence by the
    /// credential when a document was served, and the credential's last fetch.
    async fn record_blocklist_fetch(&self, fetch: &BlocklistFetch<'_>) -> Result<(), StoreError>;

    /// Remembers that `pseudonym` was handed to `site` for `person` of `vo` (kept once).
    async fn remember_pseudonym(
        &self,
        pseudonym: &Pseudonym,
        site: &Site,
        vo: &Vo,
        person: &PersonId,
        at: i64,
    ) -> Result<(), StoreError>;

    /// As [`Registry::remember_pseudonym`], for the person suspension `suspension_id` holds.
    async fn remember_suspension_pseudonym(
        &self,
        pseudonym: &Pseudonym,
        site: &Site,
        vo: &Vo,
        suspension_id: &str,
        at: i64,
    ) -> Result<(), StoreError>;
}
