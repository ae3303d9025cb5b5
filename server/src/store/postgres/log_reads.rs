//! Reads of the log tables, by the readers and the writer alike: its size, stored hashes,
//! entries (each leaf checked against its stored leaf hash), checkpoints, and the leaf
//! dictionaries' decoders, which a reader loads again when the writer (perhaps another
//! server's) has trained a new one.

use sqlx::{PgConnection, PgExecutor, PgPool};
use tokenledger_core::merkle::Hash;

use crate::store::leaf_codec::{EntryData, LeafDecoders, decode_entries, unknown_dictionaries};
use crate::store::stored_hashes::{self, is_upper};
use crate::store::{StoreError, StoredEntry};

/// Number of entries in the log (written from index 0 without gaps).
pub async fn log_size<'e>(db: impl PgExecutor<'e>) -> Result<u64, StoreError> {
    let (n,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(idx) + 1, 0) FROM entries")
        .fetch_one(db)
        .await?;
    Ok(n as u64)
}

/// The stored hashes at `indexes`, in the same order: those of level [`UPPER_LEVEL`] and
/// above from `upper_hashes`, the others from `hashes` (one statement).
///
/// [`UPPER_LEVEL`]: stored_hashes::UPPER_LEVEL
pub async fn read_hashes<'e>(
    db: impl PgExecutor<'e>,
    indexes: &[u64],
) -> Result<Vec<Hash>, StoreError> {
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    let (upper, lower): (Vec<i64>, Vec<i64>) = indexes
        .iter()
        .map(|i| *i as i64)
        .partition(|i| is_upper(*i as u64));
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT idx, hash FROM upper_hashes WHERE idx = ANY($1) \
         UNION ALL SELECT idx, hash FROM hashes WHERE idx = ANY($2)",
    )
    .bind(upper)
    .bind(lower)
    .fetch_all(db)
    .await?;
    stored_hashes::in_order(indexes, rows)
}

/// The stored (unredacted) entries of `start..end` as (index, canonical bytes), at most
/// `limit` of them, the first ones: redacted entries have no row, and are not read.
pub async fn read_entries(
    pool: &PgPool,
    leaves: &LeafDecoders,
    start: u64,
    end: u64,
    limit: u64,
) -> Result<Vec<StoredEntry>, StoreError> {
    let rows: Vec<EntryData> = sqlx::query_as(
        "SELECT e.idx, e.leaf, e.dictionary, e.leaf_hash FROM entries_with_leaf_hash e
         WHERE e.idx >= $1 AND e.idx < $2 ORDER BY e.idx LIMIT $3",
    )
    .bind(start as i64)
    .bind(end as i64)
    .bind(limit.min(i64::MAX as u64) as i64)
    .fetch_all(pool)
    .await?;
    decoded(pool, leaves, rows).await
}

/// Entries at `indexes` as (index, canonical bytes), by index, each checked against its
/// stored leaf hash; missing ones are left out. `conn`: one of a reader's pool, or the
/// writer's.
pub async fn read_entries_at(
    conn: &mut PgConnection,
    leaves: &LeafDecoders,
    indexes: &[u64],
) -> Result<Vec<StoredEntry>, StoreError> {
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: Vec<i64> = indexes.iter().map(|i| *i as i64).collect();
    let rows: Vec<EntryData> = sqlx::query_as(
        "SELECT e.idx, e.leaf, e.dictionary, e.leaf_hash FROM entries_with_leaf_hash e
         WHERE e.idx = ANY($1) ORDER BY e.idx",
    )
    .bind(&wanted)
    .fetch_all(&mut *conn)
    .await?;
    decoded(&mut *conn, leaves, rows).await
}

/// `rows` decoded and checked (see [`decode_entries`]), after loading the dictionaries they
/// use that `leaves` lacks from `db`, which read them (a dictionary is committed with the
/// first leaves that use it).
pub async fn decoded<'e>(
    db: impl PgExecutor<'e>,
    leaves: &LeafDecoders,
    rows: Vec<EntryData>,
) -> Result<Vec<StoredEntry>, StoreError> {
    let unknown = unknown_dictionaries(leaves, &rows);
    if !unknown.is_empty() {
        install_dictionaries(db, leaves, Some(&unknown)).await?;
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
    install_dictionaries(pool, &decoders, None).await?;
    Ok(decoders)
}

/// Installs into `leaves` the decoders of the stored dictionaries (those of `ids` only, if
/// given) and returns the dictionaries, by id.
pub async fn install_dictionaries<'e>(
    db: impl PgExecutor<'e>,
    leaves: &LeafDecoders,
    ids: Option<&[i64]>,
) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
    let stored: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT id, dictionary FROM leaf_dictionaries
         WHERE $1::bigint[] IS NULL OR id = ANY($1) ORDER BY id",
    )
    .bind(ids)
    .fetch_all(db)
    .await?;
    for (id, bytes) in &stored {
        leaves.install(*id, bytes)?;
    }
    Ok(stored)
}
