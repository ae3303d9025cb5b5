//! The SQL of redaction on SQLite: the rows a [`StateChange::Redact`] deletes and records
//! in its entry's transaction, and the reads of what is left of redacted entries and
//! issuances.
//!

use std::collections::HashMap;

use sqlx::{Executor, QueryBuilder, Sqlite, SqliteConnection};
use tokenledger_core::ids::{PersonId, Vo};
use tokenledger_core::redaction::{IndexRange, RedactedToken, RedactionKey};

use super::dictionaries;
use super::log::read_hashes;
use super::orphans;
use super::script::SqlScript;
use crate::store::{
    RedactedEntry, RedactedIssuance, RedactedIssuanceRow, RedactedRow, RedactionSpan, StateChange,
    StoreError, check_redaction,
};

/// The tables whose rows point at one entry by its `idx`: deleted with the entry's leaf.
const BY_INDEX: [&str; 7] = [
    "issuances",
    "sightings",
    "resolutions",
    "suspensions",
    "suspension_requests",
    "person_merges",
    "entries",
];

/// An issuance about to be redacted: its index, VO and token digests.
pub type TokenRow = (u64, String, RedactedToken);

/// Appends `(idx >= s AND idx < e) OR ...` over `ranges` (at least one) for column `column`.
pub(super) fn push_ranges(query: &mut QueryBuilder<Sqlite>, column: &str, ranges: &[IndexRange]) {
    query.push("(");
    for (n, range) in ranges.iter().enumerate() {
        if n > 0 {
            query.push(" OR ");
        }
        query
            .push(format_args!("({column} >= "))
            .push_bind(range.start as i64)
            .push(format_args!(" AND {column} < "))
            .push_bind(range.end as i64)
            .push(")");
    }
    query.push(")");
}

/// The issuances in `ranges` not yet redacted, as they will be kept once redacted. The
/// writer reads them before its batch's transaction: no other connection writes the log.
pub async fn tokens_in(
    conn: &mut SqliteConnection,
    ranges: &[IndexRange],
    key: &RedactionKey,
) -> Result<Vec<TokenRow>, StoreError> {
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = QueryBuilder::<Sqlite>::new(
        "SELECT i.idx, d.vo, r.iss, i.jti FROM issuances i \
         JOIN issuers r ON r.id = i.issuer JOIN identities d ON d.id = i.identity WHERE ",
    );
    push_ranges(&mut query, "i.idx", ranges);
    let rows: Vec<(i64, String, String, String)> =
        query.build_query_as().fetch_all(&mut *conn).await?;
    Ok(rows
        .into_iter()
        .map(|(idx, vo, iss, jti)| (idx as u64, vo, RedactedToken::of(key, &iss, &jti)))
        .collect())
}

/// The issuances each [`StateChange::Redact`] of `changes` removes, by the index of its
/// entry ([`tokens_in`]); an error if one names its own entry or beyond
/// ([`check_redaction`]).
pub async fn tokens_of(
    conn: &mut SqliteConnection,
    changes: &[(u64, &StateChange)],
) -> Result<HashMap<u64, Vec<TokenRow>>, StoreError> {
    let mut tokens = HashMap::new();
    for (index, change) in changes {
        if let StateChange::Redact { ranges, key, .. } = change {
            check_redaction(*index, ranges)?;
            tokens.insert(*index, tokens_in(conn, ranges, key).await?);
        }
    }
    Ok(tokens)
}

/// Queues the redaction of `ranges` by the entry at `by`, at `at`: its span recorded
/// (`redactions`), `tokens` (from [`tokens_in`]) kept, each entry still stored recorded as redacted, the candidate
/// orphans of its rows and of `persons` gathered ([`orphans::push_candidates`]; the batch
/// sweeps them with [`orphans::sweep`]), then its leaf and every row that points at it
/// deleted, and the dictionaries no entry uses any more
/// ([`dictionaries::push_unused_removal`]). Stored hashes stay.
pub fn push_redact(
    script: &mut SqlScript,
    by: u64,
    ranges: &[IndexRange],
    at: i64,
    tokens: &[TokenRow],
    persons: &[(Vo, PersonId)],
) {
    orphans::push_candidates(script, ranges, persons);
    let (Some(first), Some(last)) = (ranges.first(), ranges.last()) else {
        return;
    };
    script
        .statement("INSERT INTO redactions (idx, first_idx, end_idx, redacted_at) VALUES (")
        .push_bind(by as i64)
        .push(", ")
        .push_bind(first.start as i64)
        .push(", ")
        .push_bind(last.end as i64)
        .push(", ")
        .push_bind(at)
        .push(")");
    for chunk in tokens.chunks(super::script::CHUNK) {
        script
            .statement("INSERT INTO redacted_issuances (idx, vo, jti_hash, token_hash) ")
            .push_values(chunk, |mut row, (idx, vo, token)| {
                row.push_bind(*idx as i64)
                    .push_bind(vo.as_str())
                    .push_bind(token.jti_hash.to_vec())
                    .push_bind(token.token_hash.to_vec());
            });
    }
    let query = script
        .statement("INSERT INTO redacted_entries (idx, redacted_at, redacted_by) SELECT idx, ")
        .push_bind(at)
        .push(", ")
        .push_bind(by as i64)
        .push(" FROM entries WHERE ");
    push_ranges(query, "idx", ranges);
    let query = script.statement(
        "DELETE FROM blocklist_suspensions WHERE suspension_id IN (SELECT id FROM suspensions WHERE ",
    );
    push_ranges(query, "idx", ranges);
    query.push(")");
    for table in BY_INDEX {
        let query = script.statement(format_args!("DELETE FROM {table} WHERE "));
        push_ranges(query, "idx", ranges);
    }
    dictionaries::push_unused_removal(script);
}

/// The redacted entries among `start..end`, by index, with their stored leaf hashes.
pub async fn redacted_in<'c, E>(
    db: E,
    start: u64,
    end: u64,
) -> Result<Vec<RedactedEntry>, StoreError>
where
    E: Executor<'c, Database = Sqlite> + Copy,
{
    let rows: Vec<RedactedRow> = sqlx::query_as(
        "SELECT idx, redacted_at, redacted_by FROM redacted_entries \
         WHERE idx >= ? AND idx < ? ORDER BY idx",
    )
    .bind(start as i64)
    .bind(end as i64)
    .fetch_all(db)
    .await?;
    with_leaf_hashes(db, rows).await
}

/// The redacted entries among `indexes`, by index, with their stored leaf hashes.
pub async fn redacted_at(
    conn: &mut SqliteConnection,
    indexes: &[u64],
) -> Result<Vec<RedactedEntry>, StoreError> {
    let mut rows: Vec<RedactedRow> = Vec::new();
    for chunk in indexes.chunks(super::script::CHUNK) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT idx, redacted_at, redacted_by FROM redacted_entries WHERE idx IN (",
        );
        let mut list = query.separated(",");
        for index in chunk {
            list.push_bind(*index as i64);
        }
        query.push(")");
        rows.extend(
            query
                .build_query_as::<(i64, i64, i64)>()
                .fetch_all(&mut *conn)
                .await?,
        );
    }
    rows.sort_unstable();
    with_leaf_hashes(&mut *conn, rows).await
}

/// Redacted rows with the stored leaf hash of each.
async fn with_leaf_hashes<'c>(
    db: impl Executor<'c, Database = Sqlite>,
    rows: Vec<RedactedRow>,
) -> Result<Vec<RedactedEntry>, StoreError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let hashes = read_hashes(db, &RedactedEntry::leaf_hash_indexes(&rows)).await?;
    Ok(RedactedEntry::with_leaf_hashes(rows, hashes))
}

/// The redacted issuances whose jti has the digest `jti_hash`.
pub async fn redacted_issuances<'e>(
    db: impl Executor<'e, Database = Sqlite>,
    jti_hash: &[u8; 32],
) -> Result<Vec<RedactedIssuance>, StoreError> {
    let rows: Vec<RedactedIssuanceRow> = sqlx::query_as(
        "SELECT idx, vo, token_hash FROM redacted_issuances WHERE jti_hash = ? ORDER BY idx",
    )
    .bind(jti_hash.to_vec())
    .fetch_all(db)
    .await?;
    rows.into_iter().map(RedactedIssuance::from_row).collect()
}

/// The redactions whose span meets `start..end`, newest first, at most `limit`.
pub async fn redactions_within<'e>(
    db: impl Executor<'e, Database = Sqlite>,
    start: u64,
    end: u64,
    limit: u32,
) -> Result<Vec<RedactionSpan>, StoreError> {
    let rows: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT idx, first_idx, end_idx, redacted_at FROM redactions \
         WHERE first_idx < ? AND end_idx > ? ORDER BY idx DESC LIMIT ?",
    )
    .bind(end as i64)
    .bind(start as i64)
    .bind(i64::from(limit))
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(RedactionSpan::from_row).collect())
}

/// The redacted issuances whose jti has any of the digests `jti_hashes`, by index.
pub async fn redacted_issuances_of(
    conn: &mut SqliteConnection,
    jti_hashes: &[[u8; 32]],
) -> Result<Vec<RedactedIssuance>, StoreError> {
    let mut rows: Vec<RedactedIssuanceRow> = Vec::new();
    for chunk in jti_hashes.chunks(super::script::CHUNK) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT idx, vo, token_hash FROM redacted_issuances WHERE jti_hash IN (",
        );
        let mut list = query.separated(",");
        for hash in chunk {
            list.push_bind(hash.to_vec());
        }
        query.push(")");
        rows.extend(query.build_query_as().fetch_all(&mut *conn).await?);
    }
    rows.sort_unstable_by_key(|(idx, _, _)| *idx);
    rows.dedup_by_key(|(idx, _, _)| *idx);
    rows.into_iter().map(RedactedIssuance::from_row).collect()
}
