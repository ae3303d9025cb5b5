//! The SQL of the suspension_requests table: the writer's rows for a request and its decision
//! (in the transaction of their log entries), and the reads of the API.

use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use tokenledger_core::suspension_request::RequestStatus;

use super::script::SqlScript;
use crate::store::records::{REQUEST_COLUMNS, RequestRow};
use crate::store::{RequestDecision, StoreError, SuspensionRequestRecord};

/// Queues the row of a new request, whose entry is at `index`.
pub fn push_request(script: &mut SqlScript, index: u64, r: &SuspensionRequestRecord) {
    script
        .statement(
            "INSERT INTO suspension_requests (id, idx, site, vo, person_id, pseudonym, \
             token_iss, token_jti, evidence, scope, reason_code, not_after, requested_by, \
             requested_at, status) ",
        )
        .push_values([r], |mut row, r| {
            row.push_bind(&r.id)
                .push_bind(index as i64)
                .push_bind(r.site.as_str())
                .push_bind(r.vo.as_str())
                .push_bind(r.person_id.as_str())
                .push_bind(r.pseudonym.as_str())
                .push_bind(&r.token_iss)
                .push_bind(r.token_jti.as_deref())
                .push_bind(&r.evidence)
                .push_bind(r.scope.map(|s| s.as_str()))
                .push_bind(&r.reason_code)
                .push_bind(r.not_after)
                .push_bind(&r.requested_by)
                .push_bind(r.requested_at)
                .push_bind(RequestStatus::Pending.as_str());
        });
}

/// Queues the decision of a pending request, whose entry is at `index`.
pub fn push_decision(
    script: &mut SqlScript,
    index: u64,
    request_id: &str,
    decision: &RequestDecision,
    decided_by: &str,
    decided_at: i64,
) {
    let (suspension_id, decline_reason) = match decision {
        RequestDecision::Accepted { suspension_id } => (Some(suspension_id), None),
        RequestDecision::Declined { reason } => (None, Some(reason)),
    };
    script
        .statement("UPDATE suspension_requests SET status = ")
        .push_bind(decision.status().as_str())
        .push(", decided_by = ")
        .push_bind(decided_by)
        .push(", decided_at = ")
        .push_bind(decided_at)
        .push(", decision_idx = ")
        .push_bind(index as i64)
        .push(", suspension_id = ")
        .push_bind(suspension_id)
        .push(", decline_reason = ")
        .push_bind(decline_reason)
        .push(" WHERE id = ")
        .push_bind(request_id)
        .push(" AND status = ")
        .push_bind(RequestStatus::Pending.as_str());
}

/// The rows `q` selects.
async fn fetch_all(
    pool: &SqlitePool,
    mut q: QueryBuilder<Sqlite>,
) -> Result<Vec<SuspensionRequestRecord>, StoreError> {
    let rows: Vec<RequestRow> = q.build_query_as().fetch_all(pool).await?;
    rows.into_iter()
        .map(SuspensionRequestRecord::try_from)
        .collect()
}

/// The request `id`.
pub async fn get(
    pool: &SqlitePool,
    id: &str,
) -> Result<Option<SuspensionRequestRecord>, StoreError> {
    let mut q = QueryBuilder::<Sqlite>::new(REQUEST_COLUMNS);
    q.push(" WHERE id = ").push_bind(id);
    let row: Option<RequestRow> = q.build_query_as().fetch_optional(pool).await?;
    row.map(SuspensionRequestRecord::try_from).transpose()
}

/// The requests whose `column` is `value` (and of `status`, if given), newest first.
pub async fn listed(
    pool: &SqlitePool,
    column: Listing,
    value: &str,
    status: Option<RequestStatus>,
) -> Result<Vec<SuspensionRequestRecord>, StoreError> {
    let mut q = QueryBuilder::<Sqlite>::new(REQUEST_COLUMNS);
    let column = match column {
        Listing::OfSite => " WHERE site = ",
        Listing::ToVo => " WHERE vo = ",
    };
    q.push(column).push_bind(value);
    if let Some(status) = status {
        q.push(" AND status = ").push_bind(status.as_str());
    }
    q.push(" ORDER BY requested_at DESC, id");
    fetch_all(pool, q).await
}

/// Whose requests a listing holds.
pub enum Listing {
    /// A site's own.
    OfSite,
    /// Those made to a VO.
    ToVo,
}
