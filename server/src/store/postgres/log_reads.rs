//! Reads of the log tables: its size, stored hashes, entries (each leaf checked against its
//! stored leaf hash), checkpoints, and the leaf dictionaries' decoders, which a reader loads
//! again when the writer (perhaps another server's) has trained a new one.

use sqlx::PgPool;
use tokenledger_core::merkle::Hash;

use crate::store::leaf_codec::{EntryData, LeafDecoders, decode_entries, unknown_dictionaries};
use crate::store::stored_hashes;
use crate::store::{StoreError, StoredEntry};

/// Number of entries in the log (written from index 0 without gaps).
pub async fn log_size(pool: &PgPool) -> Result<u64, StoreError> {
    let (n,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(idx) + 1, 0) FROM entries")
        .fetch_one(pool)
        .await?;
    Ok(n as u64)
}

/// The stored hashes at `indexes`, in the same order (all from `hashes`, which holds every
/// stored hash; `upper_hashes` is SQLite's page locality, kept for a like-for-like copy).
pub async fn read_hashes(pool: &PgPool, indexes: &[u64]) -> Result<Vec<Hash>, StoreError> {
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: Vec<i64> = indexes.iter().map(|i| *i as i64).collect();
    let rows: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT idx, hash FROM hashes WHERE idx = ANY($1)")
            .bind(&wanted)
            .fetch_all(pool)
            .await?;
    stored_hashes::in_order(indexes, rows)
}

/// Entries `start..end` as (index, canonical bytes).
pub async fn read_entries(
    pool: &PgPool,
    leaves: &LeafDecoders,
    start: u64,
    end: u64,
) -> Result<Vec<StoredEntry>, StoreError> {
    let rows: Vec<EntryData> = sqlx::query_as(
        "SELECT e.idx, e.leaf, e.dictionary, e.leaf_hash FROM entries_with_leaf_hash e
         WHERE e.idx >= $1 AND e.idx < $2 ORDER BY e.idx",
    )
    .bind(start as i64)
    .bind(end as i64)
    .fetch_all(pool)
    .await?;
    decoded(pool, leaves, rows).await
}

/// Entries at `indexes` as (index, canonical bytes), by index; missing ones are left out.
pub async fn read_entries_at(
    pool: &PgPool,
    leaves: &LeafDecoders,
    indexes: &[u64],
) -> Result<Vec<StoredEntry>, StoreError> {
    let wanted: Vec<i64> = indexes.iter().map(|i| *i as i64).collect();
    let rows: Vec<EntryData> = sqlx::query_as(
        "SELECT e.idx, e.leaf, e.dictionary, e.leaf_hash FROM entries_with_leaf_hash e
         WHERE e.idx = ANY($1) ORDER BY e.idx",
    )
    .bind(&wanted)
    .fetch_all(pool)
    .await?;
    decoded(pool, leaves, rows).await
}

/// `rows` decoded and checked (see [`decode_entries`]), after loading the dictionaries they
/// use that `leaves` lacks from `pool`, which read them (a dictionary is committed with the
/// first leaves that use it).
pub async fn decoded(
    pool: &PgPool,
    leaves: &LeafDecoders,
    rows: Vec<EntryData>,
) -> Result<Vec<StoredEntry>, StoreError> {
    let unknown = unknown_dictionaries(leaves, &rows);
    if !unknown.is_empty() {
        let found: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT id, dictionary FROM leaf_dictionaries WHERE id = ANY($1)")
                .bind(&unknown)
                .fetch_all(pool)
                .await?;
        for (id, bytes) in found {
            leaves.install(id, &bytes)?;
        }
    }
    decode_entries(leaves, rows)
}

/// The newest stored checkpoint: its size and signed note.
pub async fn newest_checkpoint(pool: &PgPool) -> Result<Option<(u64, String)>, StoreError> {
    let newest: Option<(i64, String)> =
        sqlx::query_as("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1")
            .fetch_optional(pool)
            .await?;
    Ok(newest.map(|(size, note)| (size as u64, note)))
}

/// The decoders of every dictionary stored in the database.
pub async fn load_decoders(pool: &PgPool) -> Result<LeafDecoders, StoreError> {
    let decoders = LeafDecoders::default();
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as("SELECT id, dictionary FROM leaf_dictionaries")
        .fetch_all(pool)
        .await?;
    for (id, bytes) in rows {
        decoders.install(id, &bytes)?;
    }
    Ok(decoders)
}
