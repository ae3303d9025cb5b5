//! Reads of the suspensions table (the writer writes it with each suspension and lift).

use sqlx::PgPool;
use tokenledger_core::ids::Vo;

use crate::store::records::{SUSPENSION_COLUMNS, SuspensionRow};
use crate::store::{StoreError, SuspensionRecord};

/// The suspension `id`.
pub async fn get(pool: &PgPool, id: &str) -> Result<Option<SuspensionRecord>, StoreError> {
    let row: Option<SuspensionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SUSPENSION_COLUMNS} WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.map(SuspensionRecord::try_from).transpose()
}

/// Suspensions that reach `site`: its own, and VO-wide ones of the VOs it serves; newest first.
pub async fn for_site(
    pool: &PgPool,
    site: &str,
    vos: &[Vo],
) -> Result<Vec<SuspensionRecord>, StoreError> {
    let vos: Vec<&str> = vos.iter().map(Vo::as_str).collect();
    let rows: Vec<SuspensionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SUSPENSION_COLUMNS} WHERE site = $1 OR (site IS NULL AND vo = ANY($2))
         ORDER BY created_at DESC, id"
    )))
    .bind(site)
    .bind(&vos)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(SuspensionRecord::try_from).collect()
}

/// Every suspension of a VO's persons and clients, at any site or VO-wide; newest first.
pub async fn for_vo(pool: &PgPool, vo: &str) -> Result<Vec<SuspensionRecord>, StoreError> {
    let rows: Vec<SuspensionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SUSPENSION_COLUMNS} WHERE vo = $1 ORDER BY created_at DESC, id"
    )))
    .bind(vo)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(SuspensionRecord::try_from).collect()
}
