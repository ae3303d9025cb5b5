//! The SQL of orphans on PostgreSQL: the identities and pseudonyms that nothing kept needs
//! any more once a [`StateChange::Redact`] deleted its rows, deleted in the same
//! transaction. The candidates are read before the redaction's deletes ([`Candidates::gather`])
//! and swept once the batch's issuance rows are in ([`sweep`]).
//!
//! [`StateChange::Redact`]: crate::store::StateChange::Redact

use std::collections::HashSet;

use sqlx::PgConnection;
use tokenledger_core::ids::{PersonId, Vo};

use crate::store::StoreError;
use crate::store::identity_epochs::{EPOCH_SHIFT, seek_each_epoch};

/// Whether person `{t}.person_id` still has a suspension or a suspension request row.
const PERSON_HELD: &str = "(EXISTS (SELECT 1 FROM suspensions s WHERE s.person_id = {t}.person_id) \
     OR EXISTS (SELECT 1 FROM suspension_requests q WHERE q.person_id = {t}.person_id))";

/// The held-person condition over the rows of table alias `t`.
fn person_held(t: &str) -> String {
    PERSON_HELD.replace("{t}", t)
}

/// The identities (by id) and persons `(vo, person)` a batch's redactions may leave
/// unneeded.
#[derive(Debug, Default)]
pub struct Candidates {
    identities: Vec<i64>,
    vos: Vec<String>,
    persons: Vec<String>,
}

impl Candidates {
    /// Adds, before a redaction of the ranges `starts[n]..ends[n]` deletes its rows, the
    /// identities its issuance and sighting rows point at, the persons of its suspension and
    /// suspension request rows, and `persons` (an erasure's).
    pub async fn gather(
        &mut self,
        tx: &mut PgConnection,
        starts: &[i64],
        ends: &[i64],
        persons: &[(Vo, PersonId)],
    ) -> Result<(), StoreError> {
        let identities: Vec<(i64,)> = sqlx::query_as(
            "SELECT t.identity FROM issuances t \
             JOIN unnest($1::bigint[], $2::bigint[]) AS g(s, e) ON t.idx >= g.s AND t.idx < g.e \
             UNION SELECT t.identity FROM sightings t \
             JOIN unnest($1::bigint[], $2::bigint[]) AS g(s, e) ON t.idx >= g.s AND t.idx < g.e \
             WHERE t.identity IS NOT NULL",
        )
        .bind(starts)
        .bind(ends)
        .fetch_all(&mut *tx)
        .await?;
        self.identities
            .extend(identities.into_iter().map(|(id,)| id));
        let held: Vec<(String, String)> = sqlx::query_as(
            "SELECT t.vo, t.person_id FROM suspensions t \
             JOIN unnest($1::bigint[], $2::bigint[]) AS g(s, e) ON t.idx >= g.s AND t.idx < g.e \
             WHERE t.person_id IS NOT NULL \
             UNION SELECT t.vo, t.person_id FROM suspension_requests t \
             JOIN unnest($1::bigint[], $2::bigint[]) AS g(s, e) ON t.idx >= g.s AND t.idx < g.e",
        )
        .bind(starts)
        .bind(ends)
        .fetch_all(&mut *tx)
        .await?;
        let named = persons
            .iter()
            .map(|(vo, person)| (vo.as_str().to_owned(), person.as_str().to_owned()));
        for (vo, person) in held.into_iter().chain(named) {
            self.vos.push(vo);
            self.persons.push(person);
        }
        Ok(())
    }
}

/// Deletes, in the open transaction, the `candidates` nothing kept needs: the identities of
/// a person none of whose identities an issuance or sighting row points at, and who has no
/// suspension or suspension request row; a pseudonym of a candidate person who has no identity left in its VO and no such
/// row. Run after the batch's issuance rows are in (a candidate one of them names stays).
pub async fn sweep(tx: &mut PgConnection, candidates: &Candidates) -> Result<(), StoreError> {
    // Every identity of the candidate persons and of the candidate identities' persons.
    let identities: Vec<(i64, String, String)> = sqlx::query_as(
        "WITH c AS (SELECT d.vo, d.person_id AS person FROM identities d WHERE d.id = ANY($1) \
                    UNION SELECT * FROM unnest($2::text[], $3::text[]) AS p(vo, person)) \
         SELECT d.id, d.vo, d.person_id FROM identities d \
         JOIN c ON d.person_id = c.person AND d.vo = c.vo",
    )
    .bind(&candidates.identities)
    .bind(&candidates.vos)
    .bind(&candidates.persons)
    .fetch_all(&mut *tx)
    .await?;
    let (mut vos, mut persons) = (candidates.vos.clone(), candidates.persons.clone());
    for (_, vo, person) in &identities {
        vos.push(vo.clone());
        persons.push(person.clone());
    }
    let ids: Vec<i64> = identities.iter().map(|(id, _, _)| *id).collect();
    // Those no sighting points at and whose person is not held.
    let unheld: Vec<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT d.id FROM identities d WHERE d.id = ANY($1) \
         AND NOT EXISTS (SELECT 1 FROM sightings s WHERE s.identity = d.id) AND NOT {}",
        person_held("d")
    )))
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    let unheld: Vec<i64> = unheld.into_iter().map(|(id,)| id).collect();
    let unneeded: HashSet<i64> = not_issued(tx, &unheld).await?.into_iter().collect();
    // A person's identities go together: none while one of them is still needed (an
    // identity linked to a person who still has a token kept stays with them).
    let mut needed_persons = HashSet::new();
    for (id, vo, person) in &identities {
        if !unneeded.contains(id) {
            needed_persons.insert((vo, person));
        }
    }
    let orphans: Vec<i64> = identities
        .iter()
        .filter(|(_, vo, person)| !needed_persons.contains(&(vo, person)))
        .map(|(id, _, _)| *id)
        .collect();
    sqlx::query("DELETE FROM identities WHERE id = ANY($1)")
        .bind(&orphans)
        .execute(&mut *tx)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM pseudonyms ps USING (SELECT DISTINCT * FROM \
         unnest($1::text[], $2::text[]) AS p(vo, person)) p \
         WHERE ps.person_id = p.person AND ps.vo = p.vo \
         AND NOT EXISTS (SELECT 1 FROM identities d \
                         WHERE d.person_id = ps.person_id AND d.vo = ps.vo) \
         AND NOT {}",
        person_held("ps")
    )))
    .bind(&vos)
    .bind(&persons)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Those of `ids` no issuance row points at. The issuance index is keyed by epoch first
/// (`issuances_by_identity_epoch`): few candidates seek each epoch, newest first (one with
/// recent issuances stops early); many are found by one pass over the issuances
/// ([`seek_each_epoch`]).
async fn not_issued(tx: &mut PgConnection, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let (lowest, highest): (Option<i64>, Option<i64>) =
        sqlx::query_as("SELECT min(idx), max(idx) FROM issuances")
            .fetch_one(&mut *tx)
            .await?;
    let (Some(lowest), Some(highest)) = (lowest, highest) else {
        return Ok(ids.to_vec());
    };
    let issued: Vec<(i64,)> = if seek_each_epoch(ids.len(), lowest as u64, highest as u64) {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT c.id FROM unnest($1::bigint[]) AS c(id) WHERE EXISTS ( \
             SELECT 1 FROM generate_series($2::bigint, $3::bigint, -1) AS e(n) \
             CROSS JOIN LATERAL (SELECT 1 FROM issuances i \
                                 WHERE (i.idx >> {EPOCH_SHIFT}) = e.n AND i.identity = c.id \
                                 LIMIT 1) AS x)"
        )))
        .bind(ids)
        .bind(highest >> EPOCH_SHIFT)
        .bind(lowest >> EPOCH_SHIFT)
        .fetch_all(&mut *tx)
        .await?
    } else {
        sqlx::query_as(
            "SELECT DISTINCT i.identity FROM issuances i \
             JOIN unnest($1::bigint[]) AS c(id) ON c.id = i.identity",
        )
        .bind(ids)
        .fetch_all(&mut *tx)
        .await?
    };
    let issued: std::collections::HashSet<i64> = issued.into_iter().map(|(id,)| id).collect();
    Ok(ids
        .iter()
        .copied()
        .filter(|id| !issued.contains(id))
        .collect())
}
