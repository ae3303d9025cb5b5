//! Tests of the PostgreSQL engine against a real database (a fresh one per test, from
//! `tokenledger_testpg`): the readers and registry on rows written with SQL here, then read
//! through the traits; the writer's batches, its decisions, the writer lease, and the same
//! bytes as SQLite's writer.

mod blocklist_fetches;
mod client_suspensions;
mod collation;
mod credentials;
mod decisions;
mod dictionaries;
mod hosts;
mod lease;
mod log_reads;
mod lookups;
mod reclaim;
mod redaction;
mod registry;
mod same_bytes;
mod suspension_requests;
mod writer;

use std::sync::Arc;

use serde_json::{Map, json};
use sqlx::{Connection, PgConnection, PgPool};
use tokenledger_core::blocklist::Scope;
use tokenledger_core::entry::{EntryBody, Issuance, LogEntry, ReportContext, Source};
use tokenledger_core::ids::{Jti, PersonId, Vo};
use tokenledger_core::merkle::{Frontier, Hash, leaf_hash};
use tokenledger_testpg::TestDatabase;

use super::{DatabaseUrl, LEASE_KEY, MIGRATOR, PostgresLease, PostgresStore, PostgresWriter};
use crate::sequencer::{EntryKind, PreparedEntry};
use crate::storage_errors::StorageErrors;
use crate::store::leaf_codec::LeafDecoders;
use crate::store::stored_hashes::is_upper;
use crate::store::{
    Batch, CheckpointRow, IssuanceKey, IssuanceRow, LedgerWriter, NewEntry, StateChange,
    StoreError, SuspensionRecord, WriterLease,
};

/// A fresh database and the store opened on it (migrated).
pub async fn store() -> (TestDatabase, PostgresStore) {
    let db = tokenledger_testpg::database();
    let store = open(&db).await;
    (db, store)
}

/// The store of `db`, reading lookups from itself.
pub async fn open(db: &TestDatabase) -> PostgresStore {
    open_url(&DatabaseUrl::parse(db.url()).unwrap()).await
}

/// The store of the database at `url`, reading lookups from itself.
pub async fn open_url(url: &DatabaseUrl) -> PostgresStore {
    PostgresStore::open(url, None, Arc::new(StorageErrors::default()))
        .await
        .unwrap()
}

/// A log written with SQL: each leaf with its stored hashes (those of level `UPPER_LEVEL` and
/// above in `upper_hashes` too), as the writer stores them.
pub struct TestLog {
    pub pool: PgPool,
    frontier: Frontier,
}

impl TestLog {
    pub fn new(pool: PgPool) -> TestLog {
        TestLog {
            pool,
            frontier: Frontier::new(),
        }
    }

    /// Appends `leaf` stored as `stored` (compressed with `dictionary`, or raw); its index.
    pub async fn append_stored(
        &mut self,
        leaf: &[u8],
        stored: &[u8],
        dictionary: Option<i64>,
    ) -> u64 {
        let index = self.frontier.size();
        sqlx::query("INSERT INTO entries (idx, leaf, dictionary) VALUES ($1, $2, $3)")
            .bind(index as i64)
            .bind(stored)
            .bind(dictionary)
            .execute(&self.pool)
            .await
            .unwrap();
        let (at, hashes) = self
            .frontier
            .append(leaf_hash(leaf))
            .into_iter()
            .map(|(at, hash)| (at as i64, hash.0.to_vec()))
            .unzip();
        self.insert_hashes(at, hashes).await;
        index
    }

    /// Appends raw `leaves` in a few statements (a large log quickly).
    pub async fn append_all(&mut self, leaves: &[Vec<u8>]) {
        let first = self.frontier.size() as i64;
        let indexes: Vec<i64> = (first..first + leaves.len() as i64).collect();
        let (mut at, mut hashes) = (Vec::new(), Vec::new());
        for leaf in leaves {
            for (index, hash) in self.frontier.append(leaf_hash(leaf)) {
                at.push(index as i64);
                hashes.push(hash.0.to_vec());
            }
        }
        sqlx::query(
            "INSERT INTO entries (idx, leaf) SELECT * FROM UNNEST($1::bigint[], $2::bytea[])",
        )
        .bind(&indexes)
        .bind(leaves)
        .execute(&self.pool)
        .await
        .unwrap();
        self.insert_hashes(at, hashes).await;
    }

    /// Inserts stored hashes into `hashes`, those of level `UPPER_LEVEL` and above into
    /// `upper_hashes` too.
    async fn insert_hashes(&self, at: Vec<i64>, hashes: Vec<Vec<u8>>) {
        sqlx::query(
            "INSERT INTO hashes (idx, hash) SELECT * FROM UNNEST($1::bigint[], $2::bytea[])",
        )
        .bind(&at)
        .bind(&hashes)
        .execute(&self.pool)
        .await
        .unwrap();
        let upper: Vec<i64> = at.into_iter().filter(|i| is_upper(*i as u64)).collect();
        sqlx::query("INSERT INTO upper_hashes SELECT idx, hash FROM hashes WHERE idx = ANY($1)")
            .bind(upper)
            .execute(&self.pool)
            .await
            .unwrap();
    }

    /// Appends a raw leaf; its index.
    pub async fn append(&mut self, leaf: &[u8]) -> u64 {
        self.append_stored(leaf, leaf, None).await
    }

    /// Appends the issuance `jti` of `sub` by `iss` in `vo` (client `rucio`, scopes `scope`,
    /// issued at `iat`, refreshing `refresh`) with its lookup row; its index.
    #[allow(clippy::too_many_arguments)]
    pub async fn issuance(
        &mut self,
        iss: &str,
        jti: &str,
        sub: &str,
        vo: &str,
        scope: &str,
        iat: i64,
        refresh: Option<&str>,
    ) -> u64 {
        let claims = json!({
            "iss": iss, "jti": jti, "sub": sub, "client_id": "rucio", "scope": scope, "iat": iat,
        });
        let serde_json::Value::Object(claims) = claims else {
            unreachable!()
        };
        let ctx = ReportContext {
            source: Source::Claims,
            vo: vo.into(),
            grant_type: None,
            parent_jti: None,
            refresh_jti: refresh.map(str::to_string),
            token_sha256: None,
            feed: None,
        };
        let issuance = Issuance::from_claims(claims, ctx).unwrap();
        let key = IssuanceKey::of(&issuance);
        let entry = PreparedEntry::new(
            iat * 1_000_000,
            EntryBody::Issuance(Box::new(issuance)),
            EntryKind::Issuance(key.clone()),
        )
        .unwrap();
        let index = self.append(&entry.leaf).await;
        let (issuer,): (i64,) = sqlx::query_as(
            "WITH new AS (INSERT INTO issuers (iss) VALUES ($1) ON CONFLICT DO NOTHING RETURNING id)
             SELECT id FROM new UNION ALL SELECT id FROM issuers WHERE iss = $1",
        )
        .bind(&key.iss)
        .fetch_one(&self.pool)
        .await
        .unwrap();
        let (client,): (i64,) = sqlx::query_as(
            "WITH new AS (INSERT INTO clients (vo, client_id) VALUES ($1, 'rucio')
                          ON CONFLICT DO NOTHING RETURNING id)
             SELECT id FROM new UNION ALL SELECT id FROM clients WHERE vo = $1 AND client_id = 'rucio'",
        )
        .bind(vo)
        .fetch_one(&self.pool)
        .await
        .unwrap();
        let (identity,): (i64,) = sqlx::query_as(
            "WITH new AS (INSERT INTO identities (iss, sub, vo, person_id, created_at)
                          VALUES ($1, $2, $3, 'pe-' || $2, $4) ON CONFLICT DO NOTHING RETURNING id)
             SELECT id FROM new UNION ALL SELECT id FROM identities
             WHERE iss = $1 AND sub = $2 AND vo = $3",
        )
        .bind(iss)
        .bind(sub)
        .bind(vo)
        .bind(index as i64)
        .fetch_one(&self.pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO issuances (idx, jti, issuer, identity, client, refresh_jti)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(index as i64)
        .bind(jti)
        .bind(issuer)
        .bind(identity)
        .bind(client)
        .bind(refresh)
        .execute(&self.pool)
        .await
        .unwrap();
        index
    }
}

/// A fresh database with the ledger's tables: its URL, and a pool to read the rows back.
pub(super) async fn ledger() -> (TestDatabase, DatabaseUrl, PgPool) {
    let db = tokenledger_testpg::database();
    let pool = PgPool::connect(db.url()).await.unwrap();
    MIGRATOR.run(&pool).await.unwrap();
    let url = DatabaseUrl::parse(db.url()).unwrap();
    (db, url, pool)
}

/// The lease of the ledger at `url`, with decoders of its own.
pub(super) fn lease(url: &DatabaseUrl, compress_after: usize) -> PostgresLease {
    PostgresLease::new(
        url.clone(),
        Arc::new(LeafDecoders::default()),
        compress_after,
    )
}

/// The writer of the ledger at `url` as its own type, on a connection that took the lease's
/// lock, with `decoders`; its log not opened.
pub(super) async fn locked_writer(
    url: &DatabaseUrl,
    decoders: Arc<LeafDecoders>,
    compress_after: usize,
) -> PostgresWriter {
    let mut conn = PgConnection::connect_with(&url.hosts()[0]).await.unwrap();
    let (taken,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
        .bind(LEASE_KEY)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(taken, "no other writer");
    PostgresWriter::on_lease(conn, url, decoders, compress_after)
        .await
        .unwrap()
}

/// The writer of the ledger at `url`, its log opened.
pub(super) async fn writer(url: &DatabaseUrl, compress_after: usize) -> Box<dyn LedgerWriter> {
    let mut writer = lease(url, compress_after)
        .try_acquire("test")
        .await
        .unwrap()
        .expect("no other writer");
    writer.open_log().await.unwrap();
    writer
}

pub(super) const A: &str = "https://a.example/";
pub(super) const B: &str = "https://b.example/";

/// An issuance report `(jti, iss, sub, vo, client_id)`.
pub(super) type Token = (
    String,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
);

/// One entry of a test batch: its leaf, and the rows that go with it.
pub(super) enum Entry {
    Issuance(Token),
    Resolution(&'static str),
    State(StateChange),
}

/// The issuance of `token`, logged at `logged_at`, with its canonical bytes.
pub(super) fn issuance(
    (jti, iss, sub, vo, client_id): Token,
    logged_at: i64,
) -> (Issuance, Vec<u8>) {
    let mut claims = Map::new();
    claims.insert("jti".into(), json!(jti));
    claims.insert("iss".into(), json!(iss));
    claims.insert("sub".into(), json!(sub));
    if let Some(client_id) = client_id {
        claims.insert("client_id".into(), json!(client_id));
    }
    let ctx = ReportContext {
        source: Source::Claims,
        vo: vo.into(),
        grant_type: None,
        parent_jti: None,
        refresh_jti: Some(format!("r-{jti}")),
        token_sha256: None,
        feed: None,
    };
    let issuance = Issuance::from_claims(claims, ctx).unwrap();
    let leaf = LogEntry::new(logged_at, EntryBody::Issuance(Box::new(issuance.clone())))
        .canonical_bytes()
        .unwrap();
    (issuance, leaf)
}

/// The rows of test batches, built as the sequencer builds them: each entry's leaf, stored
/// hashes from the log's right edge, its lookup and state rows.
#[derive(Default)]
pub(super) struct Log {
    frontier: Frontier,
}

/// What one test batch owns; [`Rows::batch`] borrows it.
pub(super) struct Rows {
    first: u64,
    leaves: Vec<Vec<u8>>,
    hashes: Vec<(u64, Hash)>,
    keys: Vec<(u64, IssuanceKey)>,
    vos: Vec<(u64, Vo)>,
    changes: Vec<(u64, StateChange)>,
    checkpoint: Option<(u64, String)>,
}

impl Log {
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// The rows of `entries` appended at the end of this log (with a checkpoint of the new
    /// size if `checkpoint`).
    pub fn rows(&mut self, entries: Vec<Entry>, checkpoint: bool) -> Rows {
        let first = self.size();
        let mut rows = Rows {
            first,
            leaves: Vec::new(),
            hashes: Vec::new(),
            keys: Vec::new(),
            vos: Vec::new(),
            changes: Vec::new(),
            checkpoint: None,
        };
        for (n, entry) in entries.into_iter().enumerate() {
            let index = first + n as u64;
            let logged_at = 1_700_000_000_000_000 + index as i64;
            let leaf = match entry {
                Entry::Issuance(token) => {
                    let (issuance, leaf) = issuance(token, logged_at);
                    rows.keys.push((index, IssuanceKey::of(&issuance)));
                    leaf
                }
                Entry::Resolution(vo) => {
                    rows.vos.push((index, Vo::unchecked(vo)));
                    format!("{{\"resolution\":{index},\"vo\":\"{vo}\"}}").into_bytes()
                }
                Entry::State(change) => {
                    rows.changes.push((index, change));
                    format!("{{\"state\":{index}}}").into_bytes()
                }
            };
            rows.hashes.extend(self.frontier.append(leaf_hash(&leaf)));
            rows.leaves.push(leaf);
        }
        if checkpoint {
            rows.checkpoint = Some((self.size(), format!("checkpoint {}", self.size())));
        }
        rows
    }
}

impl Rows {
    /// The batch of these rows.
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            written_at: 1_700_000_000_000_000 + self.first as i64,
            entries: self
                .leaves
                .iter()
                .enumerate()
                .map(|(n, leaf)| NewEntry {
                    index: self.first + n as u64,
                    leaf,
                })
                .collect(),
            hashes: &self.hashes,
            issuances: self
                .keys
                .iter()
                .map(|(index, key)| IssuanceRow {
                    index: *index,
                    key,
                    logged_at: 1_700_000_000_000_000 + *index as i64,
                })
                .collect(),
            resolutions: self.vos.iter().map(|(i, vo)| (*i, vo)).collect(),
            state_changes: self.changes.iter().map(|(i, c)| (*i, c)).collect(),
            checkpoint: self.checkpoint.as_ref().map(|(size, note)| CheckpointRow {
                size: *size,
                note,
                created_at: 1,
            }),
        }
    }

    /// Appends these rows through `writer`.
    pub async fn append(&self, writer: &mut dyn LedgerWriter) -> Result<(), StoreError> {
        writer.append(&self.batch()).await
    }

    /// The (jti, iss) keys of the issuances, as the sequencer looks them up.
    pub fn issuance_keys(&self) -> Vec<(&Jti, &str)> {
        self.keys
            .iter()
            .map(|(_, k)| (&k.jti, k.iss.as_str()))
            .collect()
    }
}

/// A VO-wide suspension `id` of `person` in atlas.
pub(super) fn suspension(id: &str, person: &str) -> StateChange {
    StateChange::Suspend(Box::new(SuspensionRecord {
        id: id.into(),
        idx: 0,
        site: None,
        vo: Vo::unchecked("atlas"),
        person_id: Some(PersonId::unchecked(person)),
        token_iss: None,
        token_jti: None,
        client_iss: None,
        client_id: None,
        scope: Scope::All,
        reason_code: "suspended".into(),
        created_by: "officer".into(),
        created_at: 5,
        not_after: None,
        issued_before: None,
        lifted_at: None,
    }))
}

/// Every row of the tables a batch writes, as text, table by table: what a failed batch must
/// leave as it was.
pub(super) async fn snapshot(pool: &PgPool) -> Vec<(String, Vec<String>)> {
    let mut tables = Vec::new();
    for table in [
        "entries",
        "hashes",
        "upper_hashes",
        "checkpoints",
        "leaf_dictionaries",
        "issuers",
        "clients",
        "identities",
        "issuances",
        "resolutions",
        "suspensions",
        "sightings",
        "person_merges",
        "suspension_requests",
        "redacted_entries",
        "redacted_issuances",
    ] {
        let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT t::text FROM {table} t ORDER BY t::text"
        )))
        .fetch_all(pool)
        .await
        .unwrap();
        tables.push((table.to_string(), rows.into_iter().map(|(r,)| r).collect()));
    }
    tables
}
