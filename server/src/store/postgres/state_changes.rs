//! The writer's SQL of the state rows that go with log entries on PostgreSQL: suspensions and
//! their lifts, links and merges of identities, sightings, suspension requests and their
//! decisions, each in the transaction of its entry.

use sqlx::PgConnection;
use tokenledger_core::suspension_request::RequestStatus;

use super::orphans::Candidates;
use super::redaction::{self, Redaction};
use crate::store::{RequestDecision, StateChange, StoreError, SuspensionRequestRecord};

/// Writes the state rows of a batch's entries, in the order of `changes` (a lift may follow
/// its suspension, a merge the link of its identity); sightings, which no other change reads,
/// go in together at the end. The candidate orphans of redactions are added to `orphans`,
/// for the batch to sweep once its issuance rows are in.
pub async fn write(
    conn: &mut PgConnection,
    changes: &[(u64, &StateChange)],
    orphans: &mut Candidates,
) -> Result<(), StoreError> {
    let mut sightings = Sightings::default();
    for (index, change) in changes {
        match change {
            StateChange::Sighting { site, vo, iss, jti } => {
                sightings.indexes.push(*index as i64);
                sightings.sites.push(site.as_str());
                sightings.vos.push(vo.as_str());
                sightings.issuers.push(iss);
                sightings.jtis.push(jti.as_str());
            }
            other => write_one(conn, *index, other, orphans).await?,
        }
    }
    sightings.insert(conn).await
}

/// The state rows of one entry at `index` (not a sighting).
async fn write_one(
    conn: &mut PgConnection,
    index: u64,
    change: &StateChange,
    orphans: &mut Candidates,
) -> Result<(), StoreError> {
    match change {
        StateChange::Suspend(s) => {
            sqlx::query(
                "INSERT INTO suspensions (id, idx, site, vo, person_id, token_iss, token_jti, \
                 client_iss, client_id, scope, reason_code, created_by, created_at, not_after, \
                 issued_before) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            )
            .bind(&s.id)
            .bind(index as i64)
            .bind(s.site.as_deref())
            .bind(s.vo.as_str())
            .bind(s.person_id.as_deref())
            .bind(&s.token_iss)
            .bind(s.token_jti.as_deref())
            .bind(&s.client_iss)
            .bind(&s.client_id)
            .bind(s.scope.as_str())
            .bind(&s.reason_code)
            .bind(&s.created_by)
            .bind(s.created_at)
            .bind(s.not_after)
            .bind(s.issued_before)
            .execute(conn)
            .await?;
        }
        StateChange::Lift {
            suspension_id,
            lifted_by,
            lifted_at,
        } => {
            sqlx::query(
                "UPDATE suspensions SET lifted_at = $1, lifted_by = $2, lift_idx = $3 \
                 WHERE id = $4 AND lifted_at IS NULL",
            )
            .bind(*lifted_at)
            .bind(lifted_by)
            .bind(index as i64)
            .bind(suspension_id)
            .execute(conn)
            .await?;
        }
        StateChange::Link {
            vo,
            person_id,
            iss,
            sub,
            created_at,
        } => {
            sqlx::query(
                "INSERT INTO identities (iss, sub, vo, person_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(iss)
            .bind(sub)
            .bind(vo.as_str())
            .bind(person_id.as_str())
            .bind(*created_at)
            .execute(conn)
            .await?;
        }
        StateChange::Merge { vo, into, from } => {
            sqlx::query(
                "INSERT INTO person_merges (vo, person_id, into_person, idx) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(vo.as_str())
            .bind(from.as_str())
            .bind(into.as_str())
            .bind(index as i64)
            .execute(&mut *conn)
            .await?;
            for table in [
                "identities",
                "pseudonyms",
                "suspensions",
                "suspension_requests",
            ] {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE {table} SET person_id = $1 WHERE person_id = $2 AND vo = $3"
                )))
                .bind(into.as_str())
                .bind(from.as_str())
                .bind(vo.as_str())
                .execute(&mut *conn)
                .await?;
            }
        }
        StateChange::RequestSuspension(request) => insert_request(conn, index, request).await?,
        StateChange::DecideRequest {
            request_id,
            decision,
            decided_by,
            decided_at,
        } => {
            let (suspension_id, decline_reason) = match decision {
                RequestDecision::Accepted { suspension_id } => (Some(suspension_id), None),
                RequestDecision::Declined { reason } => (None, Some(reason)),
            };
            sqlx::query(
                "UPDATE suspension_requests SET status = $1, decided_by = $2, decided_at = $3, \
                 decision_idx = $4, suspension_id = $5, decline_reason = $6 \
                 WHERE id = $7 AND status = $8",
            )
            .bind(decision.status().as_str())
            .bind(decided_by)
            .bind(*decided_at)
            .bind(index as i64)
            .bind(suspension_id)
            .bind(decline_reason)
            .bind(request_id)
            .bind(RequestStatus::Pending.as_str())
            .execute(conn)
            .await?;
        }
        StateChange::Redact {
            ranges,
            at,
            key,
            persons,
            ..
        } => {
            let redaction = Redaction { ranges, persons };
            redaction::redact(conn, index, redaction, *at, key, orphans).await?
        }
        StateChange::Sighting { .. } | StateChange::None => {}
    }
    Ok(())
}

/// The row of a new suspension request, whose entry is at `index`.
async fn insert_request(
    conn: &mut PgConnection,
    index: u64,
    r: &SuspensionRequestRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO suspension_requests (id, idx, site, vo, person_id, pseudonym, token_iss, \
         token_jti, evidence, scope, reason_code, not_after, requested_by, requested_at, status) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(&r.id)
    .bind(index as i64)
    .bind(r.site.as_str())
    .bind(r.vo.as_str())
    .bind(r.person_id.as_str())
    .bind(r.pseudonym.as_str())
    .bind(&r.token_iss)
    .bind(r.token_jti.as_deref())
    .bind(&r.evidence)
    .bind(r.scope.map(|s| s.as_str()))
    .bind(&r.reason_code)
    .bind(r.not_after)
    .bind(&r.requested_by)
    .bind(r.requested_at)
    .bind(RequestStatus::Pending.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

/// A batch's sightings, column by column; each row's `identity` is that of the sighted
/// issuance, if it was logged before this batch.
#[derive(Default)]
struct Sightings<'a> {
    indexes: Vec<i64>,
    sites: Vec<&'a str>,
    vos: Vec<&'a str>,
    issuers: Vec<&'a str>,
    jtis: Vec<&'a str>,
}

impl Sightings<'_> {
    async fn insert(self, conn: &mut PgConnection) -> Result<(), StoreError> {
        if self.indexes.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO sightings (idx, site, vo, iss, jti, identity) \
             SELECT s.idx, s.site, s.vo, s.iss, s.jti, \
             (SELECT i.identity FROM issuances i JOIN issuers r ON r.id = i.issuer \
              WHERE i.jti = s.jti AND r.iss = s.iss) \
             FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[]) \
             AS s(idx, site, vo, iss, jti)",
        )
        .bind(self.indexes)
        .bind(self.sites)
        .bind(self.vos)
        .bind(self.issuers)
        .bind(self.jtis)
        .execute(conn)
        .await?;
        Ok(())
    }
}
