//! The SQL of sites and the VOs they serve.

use sqlx::SqlitePool;
use tokenledger_core::ids::Vo;

use crate::store::StoreError;

/// Adds a site (created at `at`) or replaces the VOs it serves.
pub async fn upsert(pool: &SqlitePool, name: &str, vos: &[Vo], at: i64) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT OR IGNORE INTO sites (name, created_at) VALUES (?, ?)")
        .bind(name)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM site_vos WHERE site = ?")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    for vo in vos {
        sqlx::query("INSERT INTO site_vos (site, vo) VALUES (?, ?)")
            .bind(name)
            .bind(vo.as_str())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The VOs `site` serves; `None` if there is no such site.
pub async fn vos_of(pool: &SqlitePool, site: &str) -> Result<Option<Vec<String>>, StoreError> {
    let exists: Option<(String,)> = sqlx::query_as("SELECT name FROM sites WHERE name = ?")
        .bind(site)
        .fetch_optional(pool)
        .await?;
    if exists.is_none() {
        return Ok(None);
    }
    let vos: Vec<(String,)> = sqlx::query_as("SELECT vo FROM site_vos WHERE site = ? ORDER BY vo")
        .bind(site)
        .fetch_all(pool)
        .await?;
    Ok(Some(vos.into_iter().map(|v| v.0).collect()))
}

/// Every site with its VOs, by name.
pub async fn list(pool: &SqlitePool) -> Result<Vec<(String, Vec<String>)>, StoreError> {
    let names: Vec<(String,)> = sqlx::query_as("SELECT name FROM sites ORDER BY name")
        .fetch_all(pool)
        .await?;
    let mut sites = Vec::with_capacity(names.len());
    for (name,) in names {
        let vos = vos_of(pool, &name).await?.unwrap_or_default();
        sites.push((name, vos));
    }
    Ok(sites)
}
