//! The SQL of sites and the VOs they serve.

use sqlx::PgPool;
use tokenledger_core::ids::Vo;

use crate::store::StoreError;

/// Adds a site (created at `at`) or replaces the VOs it serves, in one transaction.
pub async fn upsert(pool: &PgPool, name: &str, vos: &[Vo], at: i64) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO sites (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(name)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM site_vos WHERE site = $1")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    let vos: Vec<&str> = vos.iter().map(Vo::as_str).collect();
    sqlx::query("INSERT INTO site_vos (site, vo) SELECT $1, UNNEST($2::text[])")
        .bind(name)
        .bind(&vos)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The VOs `site` serves; `None` if there is no such site.
pub async fn vos_of(pool: &PgPool, site: &str) -> Result<Option<Vec<String>>, StoreError> {
    let row: Option<(Vec<String>,)> = sqlx::query_as(
        "SELECT ARRAY(SELECT vo FROM site_vos WHERE site = s.name ORDER BY vo)
         FROM sites s WHERE s.name = $1",
    )
    .bind(site)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(vos,)| vos))
}

/// Every site with its VOs, by name.
pub async fn list(pool: &PgPool) -> Result<Vec<(String, Vec<String>)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT s.name, ARRAY(SELECT vo FROM site_vos WHERE site = s.name ORDER BY vo)
         FROM sites s ORDER BY s.name",
    )
    .fetch_all(pool)
    .await?)
}
