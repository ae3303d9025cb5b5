//! The SQL of the log tables: entries, stored hashes, issuance keys, state rows, checkpoints.
//! Only the writer ([`super::SqliteWriter`]) calls the write functions.
//!
//! Stored hashes of level [`UPPER_LEVEL`] and above are written twice: to `hashes`, which
//! holds every stored hash, and to `upper_hashes`, where those few rows sit together on
//! pages that stay cached; proofs read them from there.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::{Connection, Executor, QueryBuilder, Sqlite};
use tokenledger_core::ids::{Jti, Vo};
use tokenledger_core::merkle::{self, Frontier, Hash};

use super::ids;
use super::orphans;
use super::redaction::{self, TokenRow};
use super::script::{self, CHUNK, SqlScript};
use super::suspension_requests;
use crate::store::ids::{IdCache, NewIds};
use crate::store::leaf_codec::{EntryData, EntryRow, LeafDecoders, decode_entries};
use crate::store::stored_hashes::{self, StoredLog, UPPER_LEVEL, is_upper};
use crate::store::{CheckpointRow, IssuanceRow, StateChange, StoreError, StoredEntry};

/// Number of entries in the log (written from index 0 without gaps).
pub async fn log_size<'e>(db: impl Executor<'e, Database = Sqlite>) -> Result<u64, StoreError> {
    count(db, "SELECT COALESCE(MAX(idx) + 1, 0) FROM entries").await
}

/// Number of stored hashes (written from index 0 without gaps).
pub async fn stored_hash_rows<'e>(
    db: impl Executor<'e, Database = Sqlite>,
) -> Result<u64, StoreError> {
    count(db, "SELECT COALESCE(MAX(idx) + 1, 0) FROM hashes").await
}

/// Number of rows of `upper_hashes`.
pub async fn upper_hash_rows<'e>(
    db: impl Executor<'e, Database = Sqlite>,
) -> Result<u64, StoreError> {
    count(db, "SELECT COUNT(*) FROM upper_hashes").await
}

/// The one number `select` answers.
async fn count<'e>(
    db: impl Executor<'e, Database = Sqlite>,
    select: &'static str,
) -> Result<u64, StoreError> {
    let (n,): (i64,) = sqlx::query_as(select).fetch_one(db).await?;
    Ok(n as u64)
}

/// Copies into `upper_hashes` the stored hashes of level [`UPPER_LEVEL`] and above of a tree
/// of `size` leaves that it lacks, from `hashes`, in one transaction. Returns how many rows
/// were copied.
pub async fn copy_upper_hashes(
    conn: &mut sqlx::SqliteConnection,
    size: u64,
) -> Result<u64, StoreError> {
    let mut tx = conn.begin().await?;
    let mut copied = 0;
    for chunk in merkle::stored_hash_indexes_from_level(size, UPPER_LEVEL).chunks(CHUNK) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT OR IGNORE INTO upper_hashes (idx, hash) SELECT idx, hash FROM hashes WHERE idx IN ",
        );
        push_index_list(&mut query, chunk);
        copied += query.build().execute(&mut *tx).await?.rows_affected();
    }
    tx.commit().await?;
    Ok(copied)
}

/// The stored hashes at `indexes`, in the same order: those of level [`UPPER_LEVEL`] and
/// above from `upper_hashes`, the others from `hashes` (one statement, two IN lists).
pub async fn read_hashes<'e>(
    db: impl Executor<'e, Database = Sqlite>,
    indexes: &[u64],
) -> Result<Vec<Hash>, StoreError> {
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    let (upper, lower): (Vec<u64>, Vec<u64>) = indexes.iter().partition(|i| is_upper(**i));
    let mut query = QueryBuilder::<Sqlite>::new("");
    let lists = [("upper_hashes", upper), ("hashes", lower)];
    let lists = lists.iter().filter(|(_, list)| !list.is_empty());
    for (position, (table, list)) in lists.enumerate() {
        if position > 0 {
            query.push(" UNION ALL ");
        }
        query.push(format_args!("SELECT idx, hash FROM {table} WHERE idx IN "));
        push_index_list(&mut query, list);
    }
    let rows: Vec<(i64, Vec<u8>)> = query.build_query_as().fetch_all(db).await?;
    stored_hashes::in_order(indexes, rows)
}

/// Rebuilds the in-memory right edge of a tree of `size` leaves from stored hashes.
pub async fn load_frontier<'e>(
    db: impl Executor<'e, Database = Sqlite>,
    size: u64,
) -> Result<Frontier, StoreError> {
    let hashes = read_hashes(db, &merkle::tree_hash_indexes(size)).await?;
    Frontier::from_stored(size, &hashes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[async_trait]
impl StoredLog for sqlx::SqliteConnection {
    async fn log_size(&mut self) -> Result<u64, StoreError> {
        log_size(self).await
    }

    async fn stored_hash_rows(&mut self) -> Result<u64, StoreError> {
        stored_hash_rows(self).await
    }

    async fn upper_hash_rows(&mut self) -> Result<u64, StoreError> {
        upper_hash_rows(self).await
    }

    async fn copy_upper_hashes(&mut self, size: u64) -> Result<u64, StoreError> {
        copy_upper_hashes(self, size).await
    }

    async fn load_frontier(&mut self, size: u64) -> Result<Frontier, StoreError> {
        load_frontier(self, size).await
    }
}

/// The stored (unredacted) entries of `start..end` as (index, canonical bytes), at most
/// `limit` of them, the first ones: redacted entries have no row, and are not read.
pub async fn read_entries<'e>(
    db: impl Executor<'e, Database = Sqlite>,
    leaves: &LeafDecoders,
    start: u64,
    end: u64,
    limit: u64,
) -> Result<Vec<StoredEntry>, StoreError> {
    let rows: Vec<EntryData> = sqlx::query_as(
        "SELECT e.idx, e.leaf, e.dictionary, e.leaf_hash FROM entries_with_leaf_hash e
         WHERE e.idx >= ? AND e.idx < ? ORDER BY e.idx LIMIT ?",
    )
    .bind(start as i64)
    .bind(end as i64)
    .bind(limit.min(i64::MAX as u64) as i64)
    .fetch_all(db)
    .await?;
    decode_entries(leaves, rows)
}

/// Indexes of already logged issuances among `keys` (jti, iss).
pub async fn find_issuances(
    db: &mut sqlx::SqliteConnection,
    keys: &[(&Jti, &str)],
) -> Result<HashMap<(Jti, String), u64>, StoreError> {
    let mut found = HashMap::new();
    for chunk in keys.chunks(CHUNK) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT i.jti, r.iss, i.idx FROM issuances i JOIN issuers r ON r.id = i.issuer WHERE i.jti IN (",
        );
        let mut list = query.separated(",");
        for (jti, _) in chunk {
            list.push_bind(jti.as_str());
        }
        query.push(")");
        let rows: Vec<(String, String, i64)> = query.build_query_as().fetch_all(&mut *db).await?;
        found.extend(
            rows.into_iter()
                .map(|(jti, iss, idx)| ((Jti::unchecked(jti), iss), idx as u64)),
        );
    }
    Ok(found)
}

/// Adds a batch's rows (see [`push_batch`]) and, if given, a checkpoint row `(size, note,
/// created_at)` to `script`, which began the transaction, and commits it: one round trip
/// unless new ids must be read or `sweep_orphans` (the batch redacts: its candidate orphans
/// are swept once its issuance rows are in, [`orphans::sweep`]). On failure the transaction
/// is rolled back. Returns the ids to give to [`IdCache::remember`].
pub async fn commit_batch(
    conn: &mut sqlx::SqliteConnection,
    mut script: SqlScript,
    cache: &IdCache,
    rows: (&[EntryRow<'_>], &[(u64, Hash)], &[IssuanceRow<'_>]),
    checkpoint: Option<CheckpointRow<'_>>,
    sweep_orphans: bool,
) -> Result<NewIds, StoreError> {
    let (entries, hashes, issuances) = rows;
    let written = async {
        let new_ids = push_batch(conn, &mut script, cache, entries, hashes, issuances).await?;
        if sweep_orphans {
            script.flush(conn).await?;
            orphans::sweep(conn).await?;
        }
        if let Some(checkpoint) = checkpoint {
            push_checkpoint(&mut script, checkpoint);
        }
        script.commit(conn).await?;
        Ok(new_ids)
    }
    .await;
    if written.is_err() {
        script::roll_back(conn).await;
    }
    written
}

/// Queues entries, their stored hashes (those of level [`UPPER_LEVEL`] and above to
/// `upper_hashes` too) and issuance keys as multi-row INSERTs in `script`, creating the
/// issuers, clients and identities (each with a new person) that `cache` and the database
/// lack: only then is `script` sent before the batch's transaction commits, to read their
/// ids. Returns the ids `cache` lacked: give them to [`IdCache::remember`] once it commits.
pub async fn push_batch(
    conn: &mut sqlx::SqliteConnection,
    script: &mut SqlScript,
    cache: &IdCache,
    entries: &[EntryRow<'_>],
    hashes: &[(u64, Hash)],
    issuances: &[IssuanceRow<'_>],
) -> Result<NewIds, StoreError> {
    for chunk in entries.chunks(CHUNK) {
        script
            .statement("INSERT INTO entries (idx, leaf, dictionary) ")
            .push_values(chunk, |mut row, e| {
                row.push_bind(e.index as i64)
                    .push_bind(&e.leaf.bytes)
                    .push_bind(e.leaf.dictionary);
            });
    }
    push_hashes(script, "hashes", hashes);
    let upper: Vec<(u64, Hash)> = hashes
        .iter()
        .filter(|(i, _)| is_upper(*i))
        .copied()
        .collect();
    push_hashes(script, "upper_hashes", &upper);
    let (row_ids, new_ids) = ids::of_issuances(conn, script, cache, issuances).await?;
    for (chunk, ids) in issuances.chunks(CHUNK).zip(row_ids.chunks(CHUNK)) {
        script
            .statement("INSERT INTO issuances (idx, jti, issuer, identity, client, refresh_jti) ")
            .push_values(chunk.iter().zip(ids), |mut row, (i, id)| {
                row.push_bind(i.index as i64)
                    .push_bind(i.key.jti.as_str())
                    .push_bind(id.issuer)
                    .push_bind(id.identity)
                    .push_bind(id.client)
                    .push_bind(i.key.refresh_jti.as_deref());
            });
    }
    Ok(new_ids)
}

/// Appends `(i1,i2,...)` binding each index: the list of an `IN (...)`.
fn push_index_list(query: &mut QueryBuilder<Sqlite>, indexes: &[u64]) {
    query.push("(");
    let mut list = query.separated(",");
    for index in indexes {
        list.push_bind(*index as i64);
    }
    query.push(")");
}

/// Queues (stored index, hash) rows for `table` (`hashes` or `upper_hashes`).
fn push_hashes(script: &mut SqlScript, table: &str, hashes: &[(u64, Hash)]) {
    for chunk in hashes.chunks(CHUNK) {
        script
            .statement(format_args!("INSERT INTO {table} (idx, hash) "))
            .push_values(chunk, |mut row, (index, hash)| {
                row.push_bind(*index as i64).push_bind(hash.0.to_vec());
            });
    }
}

/// Queues the rows indexing resolution entries by VO.
pub fn push_resolutions(script: &mut SqlScript, rows: &[(u64, &Vo)]) {
    for chunk in rows.chunks(CHUNK) {
        script
            .statement("INSERT INTO resolutions (idx, vo) ")
            .push_values(chunk, |mut row, (index, vo)| {
                row.push_bind(*index as i64).push_bind(vo.as_str());
            });
    }
}

/// Entries at the given indexes as (index, canonical bytes); missing ones are left out.
pub async fn read_entries_at(
    db: &mut sqlx::SqliteConnection,
    leaves: &LeafDecoders,
    indexes: &[u64],
) -> Result<Vec<StoredEntry>, StoreError> {
    let mut found = Vec::with_capacity(indexes.len());
    for chunk in indexes.chunks(CHUNK) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT e.idx, e.leaf, e.dictionary, e.leaf_hash FROM entries_with_leaf_hash e \
             WHERE e.idx IN ",
        );
        push_index_list(&mut query, chunk);
        let rows: Vec<EntryData> = query.build_query_as().fetch_all(&mut *db).await?;
        found.extend(decode_entries(leaves, rows)?);
    }
    Ok(found)
}

/// Queues the state rows of one entry at `index`; `tokens`: the issuances each redacting
/// entry removes, by its index ([`redaction::tokens_of`]).
pub fn push_state_change(
    script: &mut SqlScript,
    index: u64,
    change: &StateChange,
    tokens: &HashMap<u64, Vec<TokenRow>>,
) {
    match change {
        StateChange::Suspend(s) => {
            script
                .statement(
                    "INSERT INTO suspensions (id, idx, site, vo, person_id, token_iss, token_jti, \
                     client_iss, client_id, scope, reason_code, created_by, created_at, \
                     not_after, issued_before) ",
                )
                .push_values([s], |mut row, s| {
                    row.push_bind(&s.id)
                        .push_bind(index as i64)
                        .push_bind(s.site.as_deref())
                        .push_bind(s.vo.as_str())
                        .push_bind(s.person_id.as_deref())
                        .push_bind(&s.token_iss)
                        .push_bind(s.token_jti.as_deref())
                        .push_bind(&s.client_iss)
                        .push_bind(&s.client_id)
                        .push_bind(s.scope.as_str())
                        .push_bind(&s.reason_code)
                        .push_bind(&s.created_by)
                        .push_bind(s.created_at)
                        .push_bind(s.not_after)
                        .push_bind(s.issued_before);
                });
        }
        StateChange::Lift {
            suspension_id,
            lifted_by,
            lifted_at,
        } => {
            script
                .statement("UPDATE suspensions SET lifted_at = ")
                .push_bind(*lifted_at)
                .push(", lifted_by = ")
                .push_bind(lifted_by)
                .push(", lift_idx = ")
                .push_bind(index as i64)
                .push(" WHERE id = ")
                .push_bind(suspension_id)
                .push(" AND lifted_at IS NULL");
        }
        StateChange::Link {
            vo,
            person_id,
            iss,
            sub,
            created_at,
        } => {
            script
                .statement("INSERT INTO identities (iss, sub, vo, person_id, created_at) ")
                .push_values([()], |mut row, ()| {
                    row.push_bind(iss)
                        .push_bind(sub)
                        .push_bind(vo.as_str())
                        .push_bind(person_id.as_str())
                        .push_bind(*created_at);
                });
        }
        StateChange::Merge { vo, into, from } => {
            script
                .statement("INSERT INTO person_merges (vo, person_id, into_person, idx) ")
                .push_values([()], |mut row, ()| {
                    row.push_bind(vo.as_str())
                        .push_bind(from.as_str())
                        .push_bind(into.as_str())
                        .push_bind(index as i64);
                });
            for table in [
                "identities",
                "pseudonyms",
                "suspensions",
                "suspension_requests",
            ] {
                script
                    .statement(format_args!("UPDATE {table} SET person_id = "))
                    .push_bind(into.as_str())
                    .push(" WHERE person_id = ")
                    .push_bind(from.as_str())
                    .push(" AND vo = ")
                    .push_bind(vo.as_str());
            }
        }
        StateChange::Sighting { site, vo, iss, jti } => {
            script
                .statement("INSERT INTO sightings (idx, site, vo, iss, jti, identity) VALUES (")
                .push_bind(index as i64)
                .push(", ")
                .push_bind(site.as_str())
                .push(", ")
                .push_bind(vo.as_str())
                .push(", ")
                .push_bind(iss)
                .push(", ")
                .push_bind(jti.as_str())
                .push(
                    ", (SELECT i.identity FROM issuances i JOIN issuers r ON r.id = i.issuer \
                     WHERE i.jti = ",
                )
                .push_bind(jti.as_str())
                .push(" AND r.iss = ")
                .push_bind(iss)
                .push("))");
        }
        StateChange::RequestSuspension(request) => {
            suspension_requests::push_request(script, index, request);
        }
        StateChange::DecideRequest {
            request_id,
            decision,
            decided_by,
            decided_at,
        } => suspension_requests::push_decision(
            script,
            index,
            request_id,
            decision,
            decided_by,
            *decided_at,
        ),
        StateChange::Redact {
            ranges,
            at,
            persons,
            ..
        } => {
            let tokens = tokens.get(&index).map_or(&[][..], Vec::as_slice);
            redaction::push_redact(script, index, ranges, *at, tokens, persons);
        }
        StateChange::None => {}
    }
}

/// Queues the row of a signed checkpoint (once per size).
pub fn push_checkpoint(script: &mut SqlScript, checkpoint: CheckpointRow<'_>) {
    script
        .statement("INSERT OR IGNORE INTO checkpoints (size, note, created_at) ")
        .push_values([checkpoint], |mut row, c| {
            row.push_bind(c.size as i64)
                .push_bind(c.note)
                .push_bind(c.created_at);
        });
}

/// Records a signed checkpoint (once per size), outside any batch.
pub async fn insert_checkpoint(
    conn: &mut sqlx::SqliteConnection,
    checkpoint: CheckpointRow<'_>,
) -> Result<(), StoreError> {
    let mut script = SqlScript::new();
    push_checkpoint(&mut script, checkpoint);
    Ok(script.flush(conn).await?)
}

/// The newest stored checkpoint: its size and signed note.
pub async fn newest_checkpoint<'e>(
    db: impl Executor<'e, Database = Sqlite>,
) -> Result<Option<(u64, String)>, StoreError> {
    let newest: Option<(i64, String)> =
        sqlx::query_as("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1")
            .fetch_optional(db)
            .await?;
    Ok(newest.map(|(size, note)| (size as u64, note)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The view every leaf read goes through pairs entry `n` with the stored hash at
    /// `stored_hash_index(0, n)`, for small indexes and for indexes far beyond any log.
    #[tokio::test]
    async fn entries_are_read_with_their_own_stored_leaf_hash() {
        let dir = tempfile::tempdir().unwrap();
        let pool = super::super::connection::open(&dir.path().join("t.db"))
            .await
            .unwrap();
        let mut indexes: Vec<u64> = (0..600).collect();
        indexes.extend([
            (1 << 32) + 5,
            (1 << 40) - 1,
            (1 << 50) + 12_345,
            (1 << 61) + 3,
        ]);
        let hash_of = |n: u64| {
            let mut hash = [0u8; 32];
            hash[..8].copy_from_slice(&n.to_be_bytes());
            hash.to_vec()
        };
        for &n in &indexes {
            sqlx::query("INSERT INTO entries (idx, leaf) VALUES (?, x'00')")
                .bind(n as i64)
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query("INSERT INTO hashes (idx, hash) VALUES (?, ?)")
                .bind(merkle::stored_hash_index(0, n) as i64)
                .bind(hash_of(n))
                .execute(&pool)
                .await
                .unwrap();
        }
        let rows: Vec<EntryData> = sqlx::query_as(
            "SELECT e.idx, e.leaf, e.dictionary, e.leaf_hash FROM entries_with_leaf_hash e \
             ORDER BY e.idx",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(rows.len(), indexes.len());
        for (n, (idx, _, _, leaf_hash)) in indexes.iter().zip(rows) {
            assert_eq!(idx as u64, *n);
            assert_eq!(leaf_hash, Some(hash_of(*n)), "entry {n}");
        }
    }

    /// A leaf whose bytes or stored leaf hash were changed, or whose hash row is gone, is an
    /// integrity error naming its index, counted once; untouched leaves read as they are.
    #[tokio::test]
    async fn a_leaf_that_fails_its_check_is_never_returned() {
        let dir = tempfile::tempdir().unwrap();
        let pool = super::super::connection::open(&dir.path().join("t.db"))
            .await
            .unwrap();
        for n in 0..4u64 {
            let leaf = format!("{{\"n\":{n}}}");
            sqlx::query("INSERT INTO entries (idx, leaf) VALUES (?, ?)")
                .bind(n as i64)
                .bind(leaf.as_bytes())
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query("INSERT INTO hashes (idx, hash) VALUES (?, ?)")
                .bind(merkle::stored_hash_index(0, n) as i64)
                .bind(merkle::leaf_hash(leaf.as_bytes()).0.to_vec())
                .execute(&pool)
                .await
                .unwrap();
        }
        let errors = std::sync::Arc::new(crate::storage_errors::StorageErrors::default());
        let leaves = LeafDecoders::default().reporting_to(errors.clone());
        let read = |start: u64, end: u64| read_entries(&pool, &leaves, start, end, u64::MAX);
        assert_eq!(read(0, 4).await.unwrap().len(), 4);

        sqlx::query("UPDATE entries SET leaf = x'7b226e223a397d' WHERE idx = 1")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("DELETE FROM hashes WHERE idx = ?")
            .bind(merkle::stored_hash_index(0, 3) as i64)
            .execute(&pool)
            .await
            .unwrap();
        for (range, index, problem) in [
            ((0, 4), 1, "the leaf and its stored leaf hash disagree"),
            ((3, 4), 3, "stored leaf hash is missing"),
        ] {
            match read(range.0, range.1).await {
                Err(StoreError::Integrity {
                    index: i,
                    problem: p,
                }) => {
                    assert_eq!(i, index);
                    assert!(p.contains(problem), "{p}");
                }
                other => panic!("entry {index}: {other:?}"),
            }
        }
        assert_eq!(read(2, 3).await.unwrap()[0].1, b"{\"n\":2}");
        let mut conn = pool.acquire().await.unwrap();
        assert!(read_entries_at(&mut conn, &leaves, &[0, 1]).await.is_err());
        assert_eq!(errors.integrity_total(), 3);
    }
}
