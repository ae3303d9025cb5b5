//! The writer's SQL of the log tables on PostgreSQL: entries, stored hashes (those of level
//! [`UPPER_LEVEL`] and above to `upper_hashes` too), issuance keys, resolutions, checkpoints.
//! Rows go in as arrays, one `INSERT ... SELECT * FROM UNNEST(...)` per table and batch.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::PgConnection;
use tokenledger_core::ids::{Jti, Vo};
use tokenledger_core::merkle::{self, Frontier, Hash};

use super::{ids, log_reads};
use crate::store::ids::{IdCache, NewIds};
use crate::store::leaf_codec::EntryRow;
use crate::store::stored_hashes::{StoredLog, UPPER_LEVEL, is_upper};
use crate::store::{CheckpointRow, IssuanceRow, StoreError};

/// Stored-hash indexes per statement when `upper_hashes` is filled from `hashes`.
const COPY_CHUNK: usize = 10_000;

#[async_trait]
impl StoredLog for PgConnection {
    async fn log_size(&mut self) -> Result<u64, StoreError> {
        log_reads::log_size(self).await
    }

    async fn stored_hash_rows(&mut self) -> Result<u64, StoreError> {
        count(self, "SELECT COALESCE(MAX(idx) + 1, 0) FROM hashes").await
    }

    async fn upper_hash_rows(&mut self) -> Result<u64, StoreError> {
        count(self, "SELECT COUNT(*) FROM upper_hashes").await
    }

    /// In one transaction, [`COPY_CHUNK`] indexes per statement.
    async fn copy_upper_hashes(&mut self, size: u64) -> Result<u64, StoreError> {
        let mut tx = sqlx::Connection::begin(self).await?;
        let mut copied = 0;
        let indexes = merkle::stored_hash_indexes_from_level(size, UPPER_LEVEL);
        for chunk in indexes.chunks(COPY_CHUNK) {
            let chunk: Vec<i64> = chunk.iter().map(|i| *i as i64).collect();
            copied += sqlx::query(
                "INSERT INTO upper_hashes (idx, hash) SELECT idx, hash FROM hashes \
                 WHERE idx = ANY($1) ON CONFLICT DO NOTHING",
            )
            .bind(chunk)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(copied)
    }

    async fn load_frontier(&mut self, size: u64) -> Result<Frontier, StoreError> {
        let hashes = log_reads::read_hashes(self, &merkle::tree_hash_indexes(size)).await?;
        Frontier::from_stored(size, &hashes).map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

/// The one number `select` answers.
async fn count(conn: &mut PgConnection, select: &'static str) -> Result<u64, StoreError> {
    let (n,): (i64,) = sqlx::query_as(select).fetch_one(conn).await?;
    Ok(n as u64)
}

/// Indexes of already logged issuances among `keys` (jti, iss).
pub async fn find_issuances(
    conn: &mut PgConnection,
    keys: &[(&Jti, &str)],
) -> Result<HashMap<(Jti, String), u64>, StoreError> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let jtis: Vec<&str> = keys.iter().map(|(jti, _)| jti.as_str()).collect();
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT i.jti, r.iss, i.idx FROM issuances i JOIN issuers r ON r.id = i.issuer \
         WHERE i.jti = ANY($1)",
    )
    .bind(jtis)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(jti, iss, idx)| ((Jti::unchecked(jti), iss), idx as u64))
        .collect())
}

/// Writes entries, their stored hashes, the rows indexing resolutions by VO, and issuance
/// keys, creating the issuers, clients and identities (each with a new person) that `cache`
/// and the database lack. Returns the ids `cache` lacked: give them to
/// [`IdCache::remember`] once the transaction commits.
pub async fn insert_log_rows(
    conn: &mut PgConnection,
    cache: &IdCache,
    rows: &LogRows<'_>,
) -> Result<NewIds, StoreError> {
    insert_entries_and_hashes(conn, rows).await?;
    let issuances = rows.issuances;
    let (row_ids, new_ids) = ids::of_issuances(conn, cache, issuances).await?;
    if !issuances.is_empty() {
        let indexes: Vec<i64> = issuances.iter().map(|i| i.index as i64).collect();
        let jtis: Vec<&str> = issuances.iter().map(|i| i.key.jti.as_str()).collect();
        let issuers: Vec<i64> = row_ids.iter().map(|id| id.issuer).collect();
        let identities: Vec<i64> = row_ids.iter().map(|id| id.identity).collect();
        let clients: Vec<Option<i64>> = row_ids.iter().map(|id| id.client).collect();
        let refreshes: Vec<Option<&str>> = issuances
            .iter()
            .map(|i| i.key.refresh_jti.as_deref())
            .collect();
        sqlx::query(
            "INSERT INTO issuances (idx, jti, issuer, identity, client, refresh_jti) \
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], \
             $5::bigint[], $6::text[])",
        )
        .bind(indexes)
        .bind(jtis)
        .bind(issuers)
        .bind(identities)
        .bind(clients)
        .bind(refreshes)
        .execute(&mut *conn)
        .await?;
    }
    Ok(new_ids)
}

/// What [`insert_log_rows`] writes of a batch.
pub struct LogRows<'a> {
    pub entries: &'a [EntryRow<'a>],
    pub hashes: &'a [(u64, Hash)],
    /// Resolution entries: (index, VO).
    pub resolutions: &'a [(u64, &'a Vo)],
    pub issuances: &'a [IssuanceRow<'a>],
}

/// Inserts the entries, their stored hashes (those of the upper levels in `upper_hashes`
/// too) and the resolution rows in one statement, so one round trip to the database
/// whatever the batch holds (an empty array inserts nothing). The driver's error as it is:
/// whether the database answered it tells a caller that commits this statement on its own
/// whether it may have committed.
pub async fn insert_entries_and_hashes(
    conn: &mut PgConnection,
    rows: &LogRows<'_>,
) -> Result<(), sqlx::Error> {
    let entries = rows.entries;
    let indexes: Vec<i64> = entries.iter().map(|e| e.index as i64).collect();
    let leaves: Vec<&[u8]> = entries.iter().map(|e| e.leaf.bytes.as_slice()).collect();
    let dictionaries: Vec<Option<i64>> = entries.iter().map(|e| e.leaf.dictionary).collect();
    let (hash_indexes, hashes): (Vec<i64>, Vec<&[u8]>) = rows
        .hashes
        .iter()
        .map(|(i, h)| (*i as i64, h.0.as_slice()))
        .unzip();
    let (upper_indexes, upper_hashes): (Vec<i64>, Vec<&[u8]>) = rows
        .hashes
        .iter()
        .filter(|(i, _)| is_upper(*i))
        .map(|(i, h)| (*i as i64, h.0.as_slice()))
        .unzip();
    let (resolution_indexes, resolution_vos): (Vec<i64>, Vec<&str>) = rows
        .resolutions
        .iter()
        .map(|(i, vo)| (*i as i64, vo.as_str()))
        .unzip();
    sqlx::query(
        "WITH new_entries AS (\
             INSERT INTO entries (idx, leaf, dictionary) \
             SELECT * FROM UNNEST($1::bigint[], $2::bytea[], $3::bigint[])), \
         new_upper_hashes AS (\
             INSERT INTO upper_hashes (idx, hash) SELECT * FROM UNNEST($6::bigint[], $7::bytea[])), \
         new_resolutions AS (\
             INSERT INTO resolutions (idx, vo) SELECT * FROM UNNEST($8::bigint[], $9::text[])) \
         INSERT INTO hashes (idx, hash) SELECT * FROM UNNEST($4::bigint[], $5::bytea[])",
    )
    .bind(indexes)
    .bind(leaves)
    .bind(dictionaries)
    .bind(hash_indexes)
    .bind(hashes)
    .bind(upper_indexes)
    .bind(upper_hashes)
    .bind(resolution_indexes)
    .bind(resolution_vos)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a signed checkpoint (once per size).
pub async fn insert_checkpoint(
    conn: &mut PgConnection,
    checkpoint: CheckpointRow<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO checkpoints (size, note, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (size) DO NOTHING",
    )
    .bind(checkpoint.size as i64)
    .bind(checkpoint.note)
    .bind(checkpoint.created_at)
    .execute(conn)
    .await?;
    Ok(())
}
