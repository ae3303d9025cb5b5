//! The SQL of orphans on SQLite: the identities and pseudonyms that nothing kept needs any
//! more once a [`StateChange::Redact`] deleted its rows, deleted in the same transaction.
//! The candidates are gathered in two temporary tables before the redaction's deletes
//! ([`push_candidates`]) and swept once the batch's issuance rows are in ([`sweep`]).
//!
//! [`StateChange::Redact`]: crate::store::StateChange::Redact

use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use tokenledger_core::ids::{PersonId, Vo};
use tokenledger_core::redaction::IndexRange;

use super::redaction::push_ranges;
use super::script::{CHUNK, SqlScript};
use crate::store::StoreError;
use crate::store::identity_epochs::{EPOCH_SHIFT, seek_each_epoch};

/// Whether person `{t}.person_id` still has a suspension or a suspension request row.
const PERSON_HELD: &str = "EXISTS (SELECT 1 FROM suspensions s WHERE s.person_id = {t}.person_id) \
     OR EXISTS (SELECT 1 FROM suspension_requests q WHERE q.person_id = {t}.person_id)";

/// The held-person condition over the rows of table alias `t`.
fn person_held(t: &str) -> String {
    PERSON_HELD.replace("{t}", t)
}

/// Queues, before the redaction of `ranges` deletes its rows, the gathering of its
/// candidates: the identities its issuance and sighting rows point at, the persons of its
/// suspension and suspension request rows, and `persons` (an erasure's).
pub fn push_candidates(script: &mut SqlScript, ranges: &[IndexRange], persons: &[(Vo, PersonId)]) {
    script.statement("CREATE TEMP TABLE IF NOT EXISTS orphan_identities (id INTEGER PRIMARY KEY)");
    script.statement(
        "CREATE TEMP TABLE IF NOT EXISTS orphan_persons (person_id TEXT NOT NULL, \
         vo TEXT NOT NULL, PRIMARY KEY (person_id, vo)) WITHOUT ROWID",
    );
    if !ranges.is_empty() {
        let query = script.statement(
            "INSERT OR IGNORE INTO temp.orphan_identities (id) SELECT identity FROM issuances WHERE ",
        );
        push_ranges(query, "idx", ranges);
        let query = script.statement(
            "INSERT OR IGNORE INTO temp.orphan_identities (id) SELECT identity FROM sightings \
             WHERE identity IS NOT NULL AND ",
        );
        push_ranges(query, "idx", ranges);
        for table in ["suspensions", "suspension_requests"] {
            let query = script.statement(format_args!(
                "INSERT OR IGNORE INTO temp.orphan_persons (person_id, vo) \
                 SELECT person_id, vo FROM {table} WHERE person_id IS NOT NULL AND "
            ));
            push_ranges(query, "idx", ranges);
        }
    }
    for chunk in persons.chunks(CHUNK) {
        script
            .statement("INSERT OR IGNORE INTO temp.orphan_persons (person_id, vo) ")
            .push_values(chunk, |mut row, (vo, person)| {
                row.push_bind(person.as_str()).push_bind(vo.as_str());
            });
    }
}

/// Deletes, in the open transaction, the candidates [`push_candidates`] gathered that
/// nothing kept needs: the identities of a person none of whose identities an issuance or
/// sighting row points at, and who has no suspension or suspension request row; a pseudonym of a candidate person who has no
/// identity left in its VO and no such row. Run after the batch's issuance rows are in (a
/// candidate one of them names stays); empties the candidate tables.
pub async fn sweep(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    // The persons of the candidate identities, then every identity of every candidate
    // person (CROSS JOIN: each candidate person seeks `identities_by_person`).
    sqlx::query(
        "INSERT OR IGNORE INTO temp.orphan_persons (person_id, vo) SELECT d.person_id, d.vo \
         FROM temp.orphan_identities c JOIN identities d ON d.id = c.id",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT OR IGNORE INTO temp.orphan_identities (id) SELECT d.id \
         FROM temp.orphan_persons p CROSS JOIN identities d \
         ON d.person_id = p.person_id AND d.vo = p.vo",
    )
    .execute(&mut *conn)
    .await?;
    // Identities still needed for a sighting or by their person, and ids without a row, are
    // no longer candidates.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM temp.orphan_identities \
         WHERE EXISTS (SELECT 1 FROM sightings s WHERE s.identity = orphan_identities.id) \
         OR NOT EXISTS (SELECT 1 FROM identities d WHERE d.id = orphan_identities.id \
                        AND NOT ({}))",
        person_held("d")
    )))
    .execute(&mut *conn)
    .await?;
    drop_issued(conn).await?;
    // A person's identities go together: none while one of them is still needed (an
    // identity linked to a person who still has a token kept stays with them).
    sqlx::query(
        "DELETE FROM temp.orphan_identities WHERE id IN (SELECT c.id \
         FROM temp.orphan_identities c JOIN identities d ON d.id = c.id \
         WHERE EXISTS (SELECT 1 FROM identities o \
                       WHERE o.person_id = d.person_id AND o.vo = d.vo \
                       AND o.id NOT IN (SELECT id FROM temp.orphan_identities)))",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM identities WHERE id IN (SELECT id FROM temp.orphan_identities)")
        .execute(&mut *conn)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM pseudonyms WHERE person_id IN (SELECT person_id FROM temp.orphan_persons) \
         AND EXISTS (SELECT 1 FROM temp.orphan_persons p \
                     WHERE p.person_id = pseudonyms.person_id AND p.vo = pseudonyms.vo) \
         AND NOT EXISTS (SELECT 1 FROM identities d \
                         WHERE d.person_id = pseudonyms.person_id AND d.vo = pseudonyms.vo) \
         AND NOT ({})",
        person_held("pseudonyms")
    )))
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM temp.orphan_identities")
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM temp.orphan_persons")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Removes from the candidate identities those an issuance row still points at. The
/// issuance index is keyed by epoch first (`issuances_by_identity_epoch`): few candidates
/// seek each epoch, newest first (one with recent issuances stops early); many are found by
/// one scan of the index ([`seek_each_epoch`]).
async fn drop_issued(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    let (candidates, lowest, highest): (i64, Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM temp.orphan_identities), \
         (SELECT min(idx) FROM issuances), (SELECT max(idx) FROM issuances)",
    )
    .fetch_one(&mut *conn)
    .await?;
    let (Some(lowest), Some(highest)) = (lowest, highest) else {
        return Ok(());
    };
    if candidates == 0 {
        return Ok(());
    }
    let mut query = if seek_each_epoch(candidates as usize, lowest as u64, highest as u64) {
        let mut query = QueryBuilder::<Sqlite>::new("WITH RECURSIVE epoch(n) AS (SELECT ");
        query
            .push_bind(highest >> EPOCH_SHIFT)
            .push(" UNION ALL SELECT n - 1 FROM epoch WHERE n > ")
            .push_bind(lowest >> EPOCH_SHIFT)
            .push(format!(
                ") DELETE FROM temp.orphan_identities WHERE EXISTS (SELECT 1 FROM epoch e \
                 CROSS JOIN issuances i INDEXED BY issuances_by_identity_epoch \
                 WHERE (i.idx >> {EPOCH_SHIFT}) = e.n AND i.identity = orphan_identities.id)"
            ));
        query
    } else {
        QueryBuilder::new(
            "DELETE FROM temp.orphan_identities WHERE id IN (SELECT i.identity \
             FROM issuances i INDEXED BY issuances_by_identity_epoch \
             WHERE i.identity IN (SELECT id FROM temp.orphan_identities))",
        )
    };
    query.build().execute(&mut *conn).await?;
    Ok(())
}
