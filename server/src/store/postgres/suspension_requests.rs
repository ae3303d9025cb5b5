//! Reads of the suspension_requests table (the writer writes its rows with their entries).

use sqlx::PgPool;
use tokenledger_core::suspension_request::RequestStatus;

use crate::store::records::{REQUEST_COLUMNS, RequestRow};
use crate::store::{StoreError, SuspensionRequestRecord};

/// The request `id`.
pub async fn get(pool: &PgPool, id: &str) -> Result<Option<SuspensionRequestRecord>, StoreError> {
    let row: Option<RequestRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{REQUEST_COLUMNS} WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.map(SuspensionRequestRecord::try_from).transpose()
}

/// Whose requests a listing holds.
pub enum Listing {
    /// A site's own.
    OfSite,
    /// Those made to a VO.
    ToVo,
}

/// The requests of `listing` `value` (and of `status`, if given), newest first.
pub async fn listed(
    pool: &PgPool,
    listing: Listing,
    value: &str,
    status: Option<RequestStatus>,
) -> Result<Vec<SuspensionRequestRecord>, StoreError> {
    let column = match listing {
        Listing::OfSite => "site",
        Listing::ToVo => "vo",
    };
    let rows: Vec<RequestRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{REQUEST_COLUMNS} WHERE {column} = $1 AND ($2::text IS NULL OR status = $2)
         ORDER BY requested_at DESC, id"
    )))
    .bind(value)
    .bind(status.map(|s| s.as_str()))
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(SuspensionRequestRecord::try_from)
        .collect()
}
