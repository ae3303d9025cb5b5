//! The PostgreSQL engine: every SQL statement of the server for a shared database, its
//! connections (several hosts, the one that accepts writes), migrations (`schema/postgres/`),
//! and the writer lease that lets any number of servers share one log with one writer.
//! [`PostgresStore`] is the readers' side: pools on the primary (and on a read replica).

mod blocklists;
mod connection;
mod credential_cache;
mod credential_fence;
mod credentials;
mod decisions;
mod encoder;
mod hosts;
mod identity_scan;
mod ids;
mod lease;
mod log;
mod log_reads;
mod lookup;
mod orphans;
mod reclaim;
mod redaction;
mod sites;
mod state_changes;
mod suspension_requests;
mod suspensions;
#[cfg(test)]
mod tests;
mod writer;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use sqlx::PgPool;
use tokenledger_core::blocklist::SignedBlocklist;
use tokenledger_core::ids::{Jti, PersonId, Pseudonym, Site, Vo};
use tokenledger_core::merkle::Hash;
use tokenledger_core::suspension_request::RequestStatus;

pub use connection::{DatabaseUrl, MIGRATOR, accepts_writes, connect_writable};
pub use credential_cache::APPLICATION_NAME as CREDENTIAL_LISTENER;
pub use lease::{LEASE_KEY, PostgresLease};
pub use writer::PostgresWriter;

use self::credential_cache::CredentialCache;
use self::credential_fence::Fenced;
use self::hosts::{Hosts, Wanted};
use self::suspension_requests::Listing;
use super::leaf_codec::LeafDecoders;
use super::records;
use super::rows::merge_records;
use super::{
    BlocklistFetch, CredentialInfo, IssuanceFilter, LedgerReader, LogRecord, RedactedIssuance,
    RedactionSpan, Registry, Revoked, SiteFetches, StoreError, StoredEntry, SuspensionRecord,
    SuspensionRequestRecord, TimelineEvent,
};
use crate::storage_errors::StorageErrors;

/// A PostgreSQL ledger's readers: pools on every host of the database URL (the one that
/// accepts writes in use), perhaps on a read replica for lookups, and the decoders of its
/// stored leaves (shared with its writer, which adds the dictionaries it trains).
///
/// Lookups of resolution, search and timelines read from the replica when there is one (from
/// the primary while it does not answer); everything else (the log's size, stored hashes,
/// entries, checkpoints, credentials, sites, suspensions, blocklists, pseudonyms) from the
/// primary, and so does [`LedgerReader::primary`], for decisions leading to writes. Active
/// credentials are held in memory while the database notifies their changes
/// ([`CredentialCache`]).
#[derive(Clone)]
pub struct PostgresStore {
    primary: Arc<Hosts>,
    replica: Option<Arc<Hosts>>,
    leaves: Arc<LeafDecoders>,
    credentials: Arc<CredentialCache>,
    /// This store without its replica, when it has one.
    on_primary: Option<Arc<PostgresStore>>,
}

impl PostgresStore {
    /// Connects to the host of `url` that accepts writes (and to `read_url`'s, if given),
    /// applies pending migrations on it and loads its leaf dictionaries; leaves that fail
    /// their check are counted in `errors`.
    pub async fn open(
        url: &DatabaseUrl,
        read_url: Option<&DatabaseUrl>,
        errors: Arc<StorageErrors>,
    ) -> anyhow::Result<PostgresStore> {
        let primary = Hosts::connect(url, Wanted::Writes)
            .await
            .with_context(|| format!("connecting to database {url}"))?;
        // On a connection of its own: the pools' statement timeout would cut a long migration.
        let mut conn = primary
            .connect_one()
            .await
            .with_context(|| format!("connecting to database {url}"))?;
        MIGRATOR
            .run(&mut conn)
            .await
            .with_context(|| format!("migrating database {url}"))?;
        let _ = sqlx::Connection::close(conn).await;
        let leaves = log_reads::load_decoders(&primary.pool())
            .await
            .with_context(|| format!("loading leaf dictionaries of {url}"))?;
        let leaves = Arc::new(leaves.reporting_to(errors));
        let on_primary = PostgresStore {
            credentials: Arc::new(CredentialCache::new(primary.clone())),
            primary,
            replica: None,
            leaves,
            on_primary: None,
        };
        let Some(read_url) = read_url else {
            return Ok(on_primary);
        };
        let replica = Hosts::connect(read_url, Wanted::Reads)
            .await
            .with_context(|| format!("connecting to read replica {read_url}"))?;
        Ok(PostgresStore {
            primary: on_primary.primary.clone(),
            replica: Some(replica),
            leaves: on_primary.leaves.clone(),
            credentials: on_primary.credentials.clone(),
            on_primary: Some(Arc::new(on_primary)),
        })
    }

    /// The decoders of this database's leaves, to share with its writer.
    pub fn decoders(&self) -> Arc<LeafDecoders> {
        self.leaves.clone()
    }

    /// The pool of the host that accepts writes, as selected now: a snapshot, which a failover
    /// does not move. For tests, benchmarks and tools on a database they own; the store's own
    /// queries follow the host that accepts writes.
    pub fn pool(&self) -> PgPool {
        self.primary.pool()
    }

    /// Closes every connection of every pool, and the credential listener's.
    pub async fn close(&self) {
        self.credentials.close().await;
        self.primary.close().await;
        if let Some(replica) = &self.replica {
            replica.close().await;
        }
    }

    /// The result of `read` on the replica's pool if there is a replica and it answers, else
    /// on the primary's: a replica that fails (or failed when last asked) is not waited for.
    async fn lookup<T, F, Fut>(&self, read: F) -> Result<T, StoreError>
    where
        F: Fn(PgPool) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        if let Some(replica) = self.replica.as_deref().filter(|r| r.usable()) {
            match replica.run(read(replica.pool())).await {
                Err(StoreError::Db(problem) | StoreError::Unavailable(problem)) => {
                    tracing::warn!(%problem, "the read replica failed; reading from the primary");
                }
                answered => return answered,
            }
        }
        self.primary.run(read(self.primary.pool())).await
    }
}

#[async_trait]
impl LedgerReader for PostgresStore {
    fn primary(&self) -> &dyn LedgerReader {
        match &self.on_primary {
            Some(on_primary) => on_primary.as_ref(),
            None => self,
        }
    }

    async fn log_size(&self) -> Result<u64, StoreError> {
        let db = &self.primary;
        db.run(log_reads::log_size(&db.pool())).await
    }

    async fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StoreError> {
        let db = &self.primary;
        db.run(log_reads::read_hashes(&db.pool(), indexes)).await
    }

    async fn entries(&self, start: u64, end: u64) -> Result<Vec<LogRecord>, StoreError> {
        let db = &self.primary;
        let pool = db.pool();
        db.run(async {
            let leaves = log_reads::read_entries(&pool, &self.leaves, start, end, u64::MAX).await?;
            let redacted = redaction::redacted_in(&pool, start, end).await?;
            Ok(merge_records(leaves, redacted))
        })
        .await
    }

    async fn stored_entries(
        &self,
        start: u64,
        end: u64,
        limit: u64,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        let db = &self.primary;
        let pool = db.pool();
        db.run(log_reads::read_entries(
            &pool,
            &self.leaves,
            start,
            end,
            limit,
        ))
        .await
    }

    async fn redacted_issuances(
        &self,
        jti_hash: &[u8; 32],
    ) -> Result<Vec<RedactedIssuance>, StoreError> {
        let db = &self.primary;
        db.run(redaction::redacted_issuances(&db.pool(), jti_hash))
            .await
    }

    async fn redactions_within(
        &self,
        start: u64,
        end: u64,
        limit: u32,
    ) -> Result<Vec<RedactionSpan>, StoreError> {
        self.lookup(
            |pool| async move { redaction::redactions_within(&pool, start, end, limit).await },
        )
        .await
    }

    async fn redacted_issuances_of(
        &self,
        jti_hashes: &[[u8; 32]],
    ) -> Result<Vec<RedactedIssuance>, StoreError> {
        let db = &self.primary;
        db.run(redaction::redacted_issuances_of(&db.pool(), jti_hashes))
            .await
    }

    async fn newest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        let db = &self.primary;
        db.run(log_reads::newest_checkpoint(&db.pool())).await
    }

    async fn issuances_by_jti(&self, jti: &Jti) -> Result<Vec<StoredEntry>, StoreError> {
        let leaves = &self.leaves;
        self.lookup(|pool| async move { lookup::issuances_by_jti(&pool, leaves, jti).await })
            .await
    }

    async fn issuance(&self, iss: &str, jti: &Jti) -> Result<Option<StoredEntry>, StoreError> {
        let leaves = &self.leaves;
        self.lookup(|pool| async move { lookup::issuance(&pool, leaves, iss, jti).await })
            .await
    }

    async fn first_with_refresh(
        &self,
        iss: &str,
        refresh_jti: &Jti,
        before: u64,
    ) -> Result<Option<StoredEntry>, StoreError> {
        let leaves = &self.leaves;
        self.lookup(|pool| async move {
            lookup::first_with_refresh(&pool, leaves, iss, refresh_jti, before).await
        })
        .await
    }

    async fn person_of(
        &self,
        iss: &str,
        sub: &str,
        vo: &Vo,
    ) -> Result<Option<PersonId>, StoreError> {
        let db = &self.primary;
        let person = db.run(lookup::person_of(&db.pool(), iss, sub, vo)).await?;
        Ok(person.map(PersonId::unchecked))
    }

    async fn identities_of(
        &self,
        person: &PersonId,
        vo: &Vo,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let db = &self.primary;
        db.run(lookup::identities_of(&db.pool(), person, vo)).await
    }

    async fn person_with_identities(
        &self,
        iss: &str,
        sub: &str,
        vo: &Vo,
    ) -> Result<Option<(PersonId, Vec<(String, String)>)>, StoreError> {
        let db = &self.primary;
        let found = db
            .run(lookup::person_with_identities(&db.pool(), iss, sub, vo))
            .await?;
        Ok(found.map(|(person, identities)| (PersonId::unchecked(person), identities)))
    }

    async fn issuances(&self, filter: &IssuanceFilter<'_>) -> Result<Vec<StoredEntry>, StoreError> {
        let leaves = &self.leaves;
        self.lookup(|pool| async move { lookup::issuances(&pool, leaves, filter).await })
            .await
    }

    async fn client_vos(&self, iss: &str, client_id: &str) -> Result<Vec<Vo>, StoreError> {
        let db = &self.primary;
        let vos = db
            .run(lookup::client_vos(&db.pool(), iss, client_id))
            .await?;
        Ok(records::vos(vos))
    }

    async fn resolutions(
        &self,
        vo: &Vo,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        let leaves = &self.leaves;
        self.lookup(
            |pool| async move { lookup::resolutions(&pool, leaves, vo, before, limit).await },
        )
        .await
    }

    async fn timeline(
        &self,
        vo: &Vo,
        person: &PersonId,
        identities: &[(String, String)],
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<TimelineEvent>, StoreError> {
        let leaves = &self.leaves;
        self.lookup(|pool| async move {
            lookup::timeline(&pool, leaves, vo, person, identities, before, limit).await
        })
        .await
    }

    async fn pseudonym(
        &self,
        pseudonym: &Pseudonym,
    ) -> Result<Option<(Site, Vo, PersonId)>, StoreError> {
        let db = &self.primary;
        let found = db.run(lookup::pseudonym(&db.pool(), pseudonym)).await?;
        Ok(found.map(records::pseudonym_holder))
    }

    async fn any_pseudonym(&self) -> Result<Option<(Pseudonym, Site, Vo, PersonId)>, StoreError> {
        let db = &self.primary;
        let found = db.run(blocklists::any_pseudonym(&db.pool())).await?;
        Ok(found.map(records::pseudonym_row))
    }

    async fn active_credential(
        &self,
        secret_hash: &[u8],
    ) -> Result<Option<CredentialInfo>, StoreError> {
        let db = &self.primary;
        self.credentials
            .active(secret_hash, |pool| async move {
                db.run(credentials::active(&pool, secret_hash)).await
            })
            .await
    }

    async fn credentials(&self) -> Result<Vec<CredentialInfo>, StoreError> {
        let db = &self.primary;
        db.run(credentials::list(&db.pool())).await
    }

    async fn site_vos(&self, site: &Site) -> Result<Option<Vec<Vo>>, StoreError> {
        let db = &self.primary;
        let vos = db.run(sites::vos_of(&db.pool(), site)).await?;
        Ok(vos.map(records::vos))
    }

    async fn sites(&self) -> Result<Vec<(Site, Vec<Vo>)>, StoreError> {
        let db = &self.primary;
        let sites = db.run(sites::list(&db.pool())).await?;
        Ok(records::sites(sites))
    }

    async fn suspension(&self, id: &str) -> Result<Option<SuspensionRecord>, StoreError> {
        let db = &self.primary;
        db.run(suspensions::get(&db.pool(), id)).await
    }

    async fn suspensions_for_site(
        &self,
        site: &Site,
        vos: &[Vo],
    ) -> Result<Vec<SuspensionRecord>, StoreError> {
        let db = &self.primary;
        db.run(suspensions::for_site(&db.pool(), site, vos)).await
    }

    async fn suspensions_for_vo(&self, vo: &Vo) -> Result<Vec<SuspensionRecord>, StoreError> {
        let db = &self.primary;
        db.run(suspensions::for_vo(&db.pool(), vo)).await
    }

    async fn blocklist(&self, site: &Site) -> Result<Option<SignedBlocklist>, StoreError> {
        let db = &self.primary;
        db.run(blocklists::stored(&db.pool(), site)).await
    }

    async fn blocklist_enforcement(
        &self,
        site: &Site,
        suspension_id: &str,
    ) -> Result<SiteFetches, StoreError> {
        let db = &self.primary;
        db.run(blocklists::enforcement(&db.pool(), site, suspension_id))
            .await
    }

    async fn last_blocklist_fetches(&self) -> Result<Vec<(Site, i64)>, StoreError> {
        let db = &self.primary;
        let fetches = db.run(blocklists::last_fetches(&db.pool())).await?;
        Ok(records::sites_at(fetches))
    }

    async fn suspension_request(
        &self,
        id: &str,
    ) -> Result<Option<SuspensionRequestRecord>, StoreError> {
        let db = &self.primary;
        db.run(suspension_requests::get(&db.pool(), id)).await
    }

    async fn suspension_requests_of_site(
        &self,
        site: &Site,
        status: Option<RequestStatus>,
    ) -> Result<Vec<SuspensionRequestRecord>, StoreError> {
        let db = &self.primary;
        db.run(suspension_requests::listed(
            &db.pool(),
            Listing::OfSite,
            site,
            status,
        ))
        .await
    }

    async fn suspension_requests_to_vo(
        &self,
        vo: &Vo,
        status: Option<RequestStatus>,
    ) -> Result<Vec<SuspensionRequestRecord>, StoreError> {
        let db = &self.primary;
        db.run(suspension_requests::listed(
            &db.pool(),
            Listing::ToVo,
            vo,
            status,
        ))
        .await
    }
}

#[async_trait]
impl Registry for PostgresStore {
    async fn add_credential(
        &self,
        credential: &CredentialInfo,
        secret_hash: &[u8],
    ) -> Result<(), StoreError> {
        let db = &self.primary;
        db.run(credentials::insert(&db.pool(), credential, secret_hash))
            .await
    }

    /// What this server holds is dropped at once; returns once every other server has heard
    /// the revoke, or no longer uses what it holds ([`credential_fence`]).
    /// A revoke that finds no active credential fences too: it may be the second try of a
    /// revoke whose fence was cut short (the command killed).
    async fn revoke_credential(&self, id: &str, at: i64) -> Result<Option<Revoked>, StoreError> {
        let db = &self.primary;
        let revoked = db.run(credentials::revoke(&db.pool(), id, at)).await?;
        self.credentials.forget_all();
        let waited_out = credential_fence::fence(&db.pool()).await == Fenced::WaitedOut;
        Ok(revoked.then_some(Revoked { waited_out }))
    }

    async fn upsert_site(&self, name: &Site, vos: &[Vo], at: i64) -> Result<(), StoreError> {
        let db = &self.primary;
        db.run(sites::upsert(&db.pool(), name, vos, at)).await
    }

    async fn store_blocklist(&self, signed: &SignedBlocklist) -> Result<bool, StoreError> {
        let db = &self.primary;
        db.run(blocklists::store(&db.pool(), signed)).await
    }

    async fn record_blocklist_fetch(&self, fetch: &BlocklistFetch<'_>) -> Result<(), StoreError> {
        let db = &self.primary;
        db.run(blocklists::record_fetch(&db.pool(), fetch)).await
    }

    async fn remember_pseudonym(
        &self,
        pseudonym: &Pseudonym,
        site: &Site,
        vo: &Vo,
        person: &PersonId,
        at: i64,
    ) -> Result<(), StoreError> {
        let db = &self.primary;
        db.run(blocklists::remember_pseudonym(
            &db.pool(),
            pseudonym,
            site,
            vo,
            person,
            at,
        ))
        .await
    }

    async fn remember_suspension_pseudonym(
        &self,
        pseudonym: &Pseudonym,
        site: &Site,
        vo: &Vo,
        suspension_id: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        let db = &self.primary;
        let pool = db.pool();
        db.run(blocklists::remember_suspension_pseudonym(
            &pool,
            pseudonym,
            site,
            vo,
            suspension_id,
            at,
        ))
        .await
    }
}
