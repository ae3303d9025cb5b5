//! Tests of the PostgreSQL engine's readers and registry against a real database (a fresh one
//! per test, from `tokenledger_testpg`): rows are written with SQL here (the writer is tested
//! on its own), then read through the traits.

mod blocklist_fetches;
mod client_suspensions;
mod credentials;
mod hosts;
mod log_reads;
mod lookups;
mod registry;
mod suspension_requests;

use std::sync::Arc;

use serde_json::json;
use sqlx::PgPool;
use tokenledger_core::entry::{EntryBody, Issuance, ReportContext, Source};
use tokenledger_core::merkle::{Frontier, leaf_hash};
use tokenledger_testpg::TestDatabase;

use super::{DatabaseUrl, PostgresStore};
use crate::sequencer::{EntryKind, PreparedEntry};
use crate::storage_errors::StorageErrors;
use crate::store::IssuanceKey;

/// A fresh database and the store opened on it (migrated).
pub async fn store() -> (TestDatabase, PostgresStore) {
    let db = tokenledger_testpg::database();
    let store = open(&db).await;
    (db, store)
}

/// The store of `db`, reading lookups from itself.
pub async fn open(db: &TestDatabase) -> PostgresStore {
    let url = DatabaseUrl::parse(db.url()).unwrap();
    PostgresStore::open(&url, None, Arc::new(StorageErrors::default()))
        .await
        .unwrap()
}

/// A log written with SQL: each leaf with its stored hashes, as the writer stores them.
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
        for (at, hash) in self.frontier.append(leaf_hash(leaf)) {
            sqlx::query("INSERT INTO hashes (idx, hash) VALUES ($1, $2)")
                .bind(at as i64)
                .bind(hash.0.to_vec())
                .execute(&self.pool)
                .await
                .unwrap();
        }
        index
    }

    /// Appends raw `leaves` in two statements (a large log quickly).
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
        sqlx::query(
            "INSERT INTO hashes (idx, hash) SELECT * FROM UNNEST($1::bigint[], $2::bytea[])",
        )
        .bind(&at)
        .bind(&hashes)
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
