//! The SQL of redaction on PostgreSQL: the rows a [`StateChange::Redact`] deletes and
//! records in its entry's transaction, and the reads of what is left of redacted entries
//! and issuances.
//!
//! [`StateChange::Redact`]: crate::store::StateChange::Redact

use sqlx::{PgConnection, PgExecutor, PgPool};
use tokenledger_core::ids::{PersonId, Vo};
use tokenledger_core::redaction::{IndexRange, RedactedToken, RedactionKey};

use super::encoder;
use super::log_reads::read_hashes;
use super::orphans::Candidates;
use crate::store::{
    RedactedEntry, RedactedIssuance, RedactedIssuanceRow, RedactedRow, RedactionSpan, StoreError,
    check_redaction,
};

/// The tables whose rows point at one entry by its `idx`: deleted with the entry's leaf.
pub(super) const BY_INDEX: [&str; 7] = [
    "issuances",
    "sightings",
    "resolutions",
    "suspensions",
    "suspension_requests",
    "person_merges",
    "entries",
];

/// The ranges as the `unnest($1::bigint[], $2::bigint[]) AS g(s, e)` of each statement.
const RANGES: &str = "unnest($1::bigint[], $2::bigint[]) AS g(s, e)";

/// The entries a redaction removes, and the persons whose identities and pseudonyms go too
/// unless something kept needs them.
pub struct Redaction<'a> {
    pub ranges: &'a [IndexRange],
    pub persons: &'a [(Vo, PersonId)],
}

/// Redacts the entries of `redaction` by the entry at `by`, at `at`, in the batch's
/// transaction `tx`: its span recorded (`redactions`), each issuance still stored kept as
/// digests ([`RedactedToken`]), each entry still stored recorded as redacted, its candidate orphans (and its persons') added
/// to `orphans` for the batch to sweep, then its leaf and every row that points at it
/// deleted, and the dictionaries no entry uses any more ([`encoder::delete_unused`]).
/// Stored hashes stay. An error if a range reaches `by` ([`check_redaction`]): the
/// batch's transaction is then rolled back.
pub async fn redact(
    tx: &mut PgConnection,
    by: u64,
    redaction: Redaction<'_>,
    at: i64,
    key: &RedactionKey,
    orphans: &mut Candidates,
) -> Result<(), StoreError> {
    let ranges = redaction.ranges;
    check_redaction(by, ranges)?;
    if let (Some(first), Some(last)) = (ranges.first(), ranges.last()) {
        sqlx::query(
            "INSERT INTO redactions (idx, first_idx, end_idx, redacted_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(by as i64)
        .bind(first.start as i64)
        .bind(last.end as i64)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    }
    let starts: Vec<i64> = ranges.iter().map(|r| r.start as i64).collect();
    let ends: Vec<i64> = ranges.iter().map(|r| r.end as i64).collect();
    orphans
        .gather(tx, &starts, &ends, redaction.persons)
        .await?;
    let tokens: Vec<(i64, String, String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT i.idx, d.vo, r.iss, i.jti FROM issuances i \
         JOIN issuers r ON r.id = i.issuer JOIN identities d ON d.id = i.identity \
         JOIN {RANGES} ON i.idx >= g.s AND i.idx < g.e"
    )))
    .bind(&starts)
    .bind(&ends)
    .fetch_all(&mut *tx)
    .await?;
    let (mut indexes, mut vos, mut jti_hashes, mut token_hashes) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (idx, vo, iss, jti) in tokens {
        let token = RedactedToken::of(key, &iss, &jti);
        indexes.push(idx);
        vos.push(vo);
        jti_hashes.push(token.jti_hash.to_vec());
        token_hashes.push(token.token_hash.to_vec());
    }
    sqlx::query(
        "INSERT INTO redacted_issuances (idx, vo, jti_hash, token_hash) \
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::bytea[])",
    )
    .bind(&indexes)
    .bind(&vos)
    .bind(&jti_hashes)
    .bind(&token_hashes)
    .execute(&mut *tx)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO redacted_entries (idx, redacted_at, redacted_by) \
         SELECT t.idx, $3, $4 FROM entries t JOIN {RANGES} ON t.idx >= g.s AND t.idx < g.e"
    )))
    .bind(&starts)
    .bind(&ends)
    .bind(at)
    .bind(by as i64)
    .execute(&mut *tx)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM blocklist_suspensions WHERE suspension_id IN \
         (SELECT t.id FROM suspensions t JOIN {RANGES} ON t.idx >= g.s AND t.idx < g.e)"
    )))
    .bind(&starts)
    .bind(&ends)
    .execute(&mut *tx)
    .await?;
    for table in BY_INDEX {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} t USING {RANGES} WHERE t.idx >= g.s AND t.idx < g.e"
        )))
        .bind(&starts)
        .bind(&ends)
        .execute(&mut *tx)
        .await?;
    }
    encoder::delete_unused(tx).await
}

/// The redacted entries among `start..end`, by index, with their stored leaf hashes.
pub async fn redacted_in(
    pool: &PgPool,
    start: u64,
    end: u64,
) -> Result<Vec<RedactedEntry>, StoreError> {
    let rows: Vec<RedactedRow> = sqlx::query_as(
        "SELECT idx, redacted_at, redacted_by FROM redacted_entries \
         WHERE idx >= $1 AND idx < $2 ORDER BY idx",
    )
    .bind(start as i64)
    .bind(end as i64)
    .fetch_all(pool)
    .await?;
    with_leaf_hashes(pool, rows).await
}

/// The redacted entries among `indexes`, by index, with their stored leaf hashes.
pub async fn redacted_at(
    conn: &mut PgConnection,
    indexes: &[u64],
) -> Result<Vec<RedactedEntry>, StoreError> {
    let wanted: Vec<i64> = indexes.iter().map(|i| *i as i64).collect();
    let rows: Vec<RedactedRow> = sqlx::query_as(
        "SELECT idx, redacted_at, redacted_by FROM redacted_entries \
         WHERE idx = ANY($1) ORDER BY idx",
    )
    .bind(&wanted)
    .fetch_all(&mut *conn)
    .await?;
    with_leaf_hashes(&mut *conn, rows).await
}

/// Redacted rows with the stored leaf hash of each.
async fn with_leaf_hashes<'c>(
    db: impl PgExecutor<'c>,
    rows: Vec<RedactedRow>,
) -> Result<Vec<RedactedEntry>, StoreError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let hashes = read_hashes(db, &RedactedEntry::leaf_hash_indexes(&rows)).await?;
    Ok(RedactedEntry::with_leaf_hashes(rows, hashes))
}

/// The redacted issuances whose jti has the digest `jti_hash`.
pub async fn redacted_issuances(
    pool: &PgPool,
    jti_hash: &[u8; 32],
) -> Result<Vec<RedactedIssuance>, StoreError> {
    let rows: Vec<RedactedIssuanceRow> = sqlx::query_as(
        "SELECT idx, vo, token_hash FROM redacted_issuances WHERE jti_hash = $1 ORDER BY idx",
    )
    .bind(jti_hash.to_vec())
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(RedactedIssuance::from_row).collect()
}

/// The redactions whose span meets `start..end`, newest first, at most `limit`.
pub async fn redactions_within(
    pool: &PgPool,
    start: u64,
    end: u64,
    limit: u32,
) -> Result<Vec<RedactionSpan>, StoreError> {
    let rows: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT idx, first_idx, end_idx, redacted_at FROM redactions \
         WHERE first_idx < $1 AND end_idx > $2 ORDER BY idx DESC LIMIT $3",
    )
    .bind(end as i64)
    .bind(start as i64)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(RedactionSpan::from_row).collect())
}

/// The redacted issuances whose jti has any of the digests `jti_hashes`, by index.
pub async fn redacted_issuances_of<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Postgres>,
    jti_hashes: &[[u8; 32]],
) -> Result<Vec<RedactedIssuance>, StoreError> {
    let hashes: Vec<Vec<u8>> = jti_hashes.iter().map(|h| h.to_vec()).collect();
    let rows: Vec<RedactedIssuanceRow> = sqlx::query_as(
        "SELECT idx, vo, token_hash FROM redacted_issuances WHERE jti_hash = ANY($1) ORDER BY idx",
    )
    .bind(&hashes)
    .fetch_all(db)
    .await?;
    rows.into_iter().map(RedactedIssuance::from_row).collect()
}
