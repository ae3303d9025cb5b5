//! The SQLite engine: every SQL statement of the server, its connection options and
//! migrations (`schema/sqlite/`), the storage of the leaf codec, the page-cache warm-up,
//! fsck and backups. [`SqliteStore`] is the readers' pool; [`SqliteWriter`] the log writer's
//! connection.

pub mod backup;
mod blocklists;
mod connection;
mod credentials;
mod decisions;
mod dictionaries;
pub mod fsck;
mod identity_scan;
mod ids;
mod lease;
mod log;
mod lookup;
mod orphans;
pub mod page_cache;
mod reclaim;
mod redaction;
mod script;
mod sites;
mod suspension_requests;
mod suspensions;
#[cfg(test)]
mod tests;
pub mod vacuum;
mod writer;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use sqlx::SqlitePool;
use sqlx::sqlite::SqlitePoolOptions;
use tokenledger_core::blocklist::SignedBlocklist;
use tokenledger_core::ids::{Jti, PersonId, Pseudonym, Site, Vo};
use tokenledger_core::merkle::Hash;
use tokenledger_core::suspension_request::RequestStatus;

pub use connection::{CHECKPOINT_INTERVAL, MIGRATOR, connect_options};
pub use lease::SqliteLease;
pub use writer::SqliteWriter;

use super::leaf_codec::LeafDecoders;
use super::records;
use super::rows::merge_records;
use super::{
    BlocklistFetch, CredentialInfo, IssuanceFilter, LedgerReader, LogRecord, RedactedIssuance,
    RedactionSpan, Registry, Revoked, SiteFetches, StoreError, StoredEntry, SuspensionRecord,
    SuspensionRequestRecord, TimelineEvent,
};
use crate::storage_errors::StorageErrors;

/// The default log filter of the engine's library: its statements are logged only when slow
/// or failing.
pub const ENGINE_LOG_FILTER: &str = "sqlx=warn";

/// A SQLite ledger's readers: a small pool, and the decoders of its stored leaves (shared with
/// its writer, which adds the dictionaries it trains).
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    leaves: Arc<LeafDecoders>,
}

impl SqliteStore {
    /// Opens (creating if needed, 0600) the database at `path`, applies pending migrations and
    /// loads its leaf dictionaries; leaves that fail their check are counted in `errors`.
    pub async fn open(path: &Path, errors: Arc<StorageErrors>) -> anyhow::Result<SqliteStore> {
        let pool = connection::open(path).await?;
        let leaves = dictionaries::load_decoders(&pool)
            .await
            .with_context(|| format!("loading leaf dictionaries of {}", path.display()))?;
        Ok(SqliteStore {
            pool,
            leaves: Arc::new(leaves.reporting_to(errors)),
        })
    }

    /// Opens the migrated database at `path` for reading through `connections` plain
    /// connections (the readers' page cache left at SQLite's default): what in-process
    /// measurements read with.
    pub async fn open_plain(path: &Path, connections: u32) -> anyhow::Result<SqliteStore> {
        let pool = SqlitePoolOptions::new()
            .max_connections(connections)
            .connect_with(connect_options(path))
            .await
            .with_context(|| format!("opening database {}", path.display()))?;
        let leaves = dictionaries::load_decoders(&pool).await?;
        Ok(SqliteStore {
            pool,
            leaves: Arc::new(leaves),
        })
    }

    /// The readers of the pool `pool`, which reads no leaf (no dictionary is loaded).
    fn over(pool: SqlitePool) -> SqliteStore {
        SqliteStore {
            pool,
            leaves: Arc::new(LeafDecoders::default()),
        }
    }

    /// The writer lease of this database, which opens its log writer
    /// ([`SqliteWriter::open`]) when taken.
    pub fn lease(&self, path: &Path, compress_after: usize) -> SqliteLease {
        SqliteLease::new(path.to_path_buf(), self.leaves.clone(), compress_after)
    }

    /// Copies the WAL back into the database every [`CHECKPOINT_INTERVAL`]; runs until
    /// aborted.
    pub async fn run_checkpointer(self) {
        connection::run_checkpointer(self.pool).await;
    }

    /// Closes every connection of the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl LedgerReader for SqliteStore {
    fn primary(&self) -> &dyn LedgerReader {
        self
    }

    async fn log_size(&self) -> Result<u64, StoreError> {
        log::log_size(&self.pool).await
    }

    async fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StoreError> {
        log::read_hashes(&self.pool, indexes).await
    }

    async fn entries(&self, start: u64, end: u64) -> Result<Vec<LogRecord>, StoreError> {
        let leaves = log::read_entries(&self.pool, &self.leaves, start, end, u64::MAX).await?;
        let redacted = redaction::redacted_in(&self.pool, start, end).await?;
        Ok(merge_records(leaves, redacted))
    }

    async fn stored_entries(
        &self,
        start: u64,
        end: u64,
        limit: u64,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        log::read_entries(&self.pool, &self.leaves, start, end, limit).await
    }

    async fn redacted_issuances(
        &self,
        jti_hash: &[u8; 32],
    ) -> Result<Vec<RedactedIssuance>, StoreError> {
        redaction::redacted_issuances(&self.pool, jti_hash).await
    }

    async fn redactions_within(
        &self,
        start: u64,
        end: u64,
        limit: u32,
    ) -> Result<Vec<RedactionSpan>, StoreError> {
        redaction::redactions_within(&self.pool, start, end, limit).await
    }

    async fn redacted_issuances_of(
        &self,
        jti_hashes: &[[u8; 32]],
    ) -> Result<Vec<RedactedIssuance>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        redaction::redacted_issuances_of(&mut conn, jti_hashes).await
    }

    async fn newest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        log::newest_checkpoint(&self.pool).await
    }

    async fn issuances_by_jti(&self, jti: &Jti) -> Result<Vec<StoredEntry>, StoreError> {
        lookup::issuances_by_jti(&self.pool, &self.leaves, jti).await
    }

    async fn issuance(&self, iss: &str, jti: &Jti) -> Result<Option<StoredEntry>, StoreError> {
        lookup::issuance(&self.pool, &self.leaves, iss, jti).await
    }

    async fn first_with_refresh(
        &self,
        iss: &str,
        refresh_jti: &Jti,
        before: u64,
    ) -> Result<Option<StoredEntry>, StoreError> {
        lookup::first_with_refresh(&self.pool, &self.leaves, iss, refresh_jti, before).await
    }

    async fn person_of(
        &self,
        iss: &str,
        sub: &str,
        vo: &Vo,
    ) -> Result<Option<PersonId>, StoreError> {
        let person = lookup::person_of(&self.pool, iss, sub, vo).await?;
        Ok(person.map(PersonId::unchecked))
    }

    async fn identities_of(
        &self,
        person: &PersonId,
        vo: &Vo,
    ) -> Result<Vec<(String, String)>, StoreError> {
        lookup::identities_of(&self.pool, person, vo).await
    }

    async fn person_with_identities(
        &self,
        iss: &str,
        sub: &str,
        vo: &Vo,
    ) -> Result<Option<(PersonId, Vec<(String, String)>)>, StoreError> {
        let found = lookup::person_with_identities(&self.pool, iss, sub, vo).await?;
        Ok(found.map(|(person, identities)| (PersonId::unchecked(person), identities)))
    }

    async fn issuances(&self, filter: &IssuanceFilter<'_>) -> Result<Vec<StoredEntry>, StoreError> {
        lookup::issuances(&self.pool, &self.leaves, filter).await
    }

    async fn client_vos(&self, iss: &str, client_id: &str) -> Result<Vec<Vo>, StoreError> {
        Ok(records::vos(
            lookup::client_vos(&self.pool, iss, client_id).await?,
        ))
    }

    async fn resolutions(
        &self,
        vo: &Vo,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        lookup::resolutions(&self.pool, &self.leaves, vo, before, limit).await
    }

    async fn timeline(
        &self,
        vo: &Vo,
        person: &PersonId,
        identities: &[(String, String)],
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<TimelineEvent>, StoreError> {
        lookup::timeline(
            &self.pool,
            &self.leaves,
            vo,
            person,
            identities,
            before,
            limit,
        )
        .await
    }

    async fn pseudonym(
        &self,
        pseudonym: &Pseudonym,
    ) -> Result<Option<(Site, Vo, PersonId)>, StoreError> {
        let found = lookup::pseudonym(&self.pool, pseudonym).await?;
        Ok(found.map(records::pseudonym_holder))
    }

    async fn any_pseudonym(&self) -> Result<Option<(Pseudonym, Site, Vo, PersonId)>, StoreError> {
        let found = blocklists::any_pseudonym(&self.pool).await?;
        Ok(found.map(records::pseudonym_row))
    }

    async fn active_credential(
        &self,
        secret_hash: &[u8],
    ) -> Result<Option<CredentialInfo>, StoreError> {
        credentials::active(&self.pool, secret_hash).await
    }

    async fn credentials(&self) -> Result<Vec<CredentialInfo>, StoreError> {
        credentials::list(&self.pool).await
    }

    async fn site_vos(&self, site: &Site) -> Result<Option<Vec<Vo>>, StoreError> {
        let vos = sites::vos_of(&self.pool, site).await?;
        Ok(vos.map(records::vos))
    }

    async fn sites(&self) -> Result<Vec<(Site, Vec<Vo>)>, StoreError> {
        Ok(records::sites(sites::list(&self.pool).await?))
    }

    async fn suspension(&self, id: &str) -> Result<Option<SuspensionRecord>, StoreError> {
        suspensions::get(&self.pool, id).await
    }

    async fn suspensions_for_site(
        &self,
        site: &Site,
        vos: &[Vo],
    ) -> Result<Vec<SuspensionRecord>, StoreError> {
        suspensions::for_site(&self.pool, site, vos).await
    }

    async fn suspensions_for_vo(&self, vo: &Vo) -> Result<Vec<SuspensionRecord>, StoreError> {
        suspensions::for_vo(&self.pool, vo).await
    }

    async fn blocklist(&self, site: &Site) -> Result<Option<SignedBlocklist>, StoreError> {
        blocklists::stored(&self.pool, site).await
    }

    async fn blocklist_enforcement(
        &self,
        site: &Site,
        suspension_id: &str,
    ) -> Result<SiteFetches, StoreError> {
        blocklists::enforcement(&self.pool, site, suspension_id).await
    }

    async fn last_blocklist_fetches(&self) -> Result<Vec<(Site, i64)>, StoreError> {
        Ok(records::sites_at(
            blocklists::last_fetches(&self.pool).await?,
        ))
    }

    async fn suspension_request(
        &self,
        id: &str,
    ) -> Result<Option<SuspensionRequestRecord>, StoreError> {
        suspension_requests::get(&self.pool, id).await
    }

    async fn suspension_requests_of_site(
        &self,
        site: &Site,
        status: Option<RequestStatus>,
    ) -> Result<Vec<SuspensionRequestRecord>, StoreError> {
        let of_site = suspension_requests::Listing::OfSite;
        suspension_requests::listed(&self.pool, of_site, site, status).await
    }

    async fn suspension_requests_to_vo(
        &self,
        vo: &Vo,
        status: Option<RequestStatus>,
    ) -> Result<Vec<SuspensionRequestRecord>, StoreError> {
        let to_vo = suspension_requests::Listing::ToVo;
        suspension_requests::listed(&self.pool, to_vo, vo, status).await
    }
}

#[async_trait]
impl Registry for SqliteStore {
    async fn add_credential(
        &self,
        credential: &CredentialInfo,
        secret_hash: &[u8],
    ) -> Result<(), StoreError> {
        credentials::insert(&self.pool, credential, secret_hash).await
    }

    /// SQLite's servers hold no credential in memory: every lookup reads the file.
    async fn revoke_credential(&self, id: &str, at: i64) -> Result<Option<Revoked>, StoreError> {
        let revoked = credentials::revoke(&self.pool, id, at).await?;
        Ok(revoked.then_some(Revoked { waited_out: false }))
    }

    async fn upsert_site(&self, name: &Site, vos: &[Vo], at: i64) -> Result<(), StoreError> {
        sites::upsert(&self.pool, name, vos, at).await
    }

    async fn store_blocklist(&self, signed: &SignedBlocklist) -> Result<bool, StoreError> {
        blocklists::store(&self.pool, signed).await
    }

    async fn record_blocklist_fetch(&self, fetch: &BlocklistFetch<'_>) -> Result<(), StoreError> {
        blocklists::record_fetch(&self.pool, fetch).await
    }

    async fn remember_pseudonym(
        &self,
        pseudonym: &Pseudonym,
        site: &Site,
        vo: &Vo,
        person: &PersonId,
        at: i64,
    ) -> Result<(), StoreError> {
        blocklists::remember_pseudonym(&self.pool, pseudonym, site, vo, person, at).await
    }

    async fn remember_suspension_pseudonym(
        &self,
        pseudonym: &Pseudonym,
        site: &Site,
        vo: &Vo,
        suspension_id: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        blocklists::remember_suspension_pseudonym(
            &self.pool,
            pseudonym,
            site,
            vo,
            suspension_id,
            at,
        )
        .await
    }
}
