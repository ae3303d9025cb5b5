//! Free pages back to the file system on SQLite: `PRAGMA incremental_vacuum`, a bounded
//! number of pages per step, on a database made with `auto_vacuum = INCREMENTAL` (every new
//! one: [`super::connection::connect_options`]). A database made without it reuses its free
//! pages for new rows until `tokenledger-server vacuum` converts it ([`super::vacuum`]).

use async_trait::async_trait;
use sqlx::SqlitePool;

use super::SqliteStore;
use crate::store::{Reclaimed, Reclaimer, StoreError};

/// Pages one step gives back (1 MiB of 1 KiB pages): one short write transaction, which the
/// log's writer waits for at most that long.
pub const PAGES_PER_STEP: u32 = 1024;

/// `PRAGMA auto_vacuum` of an incremental database.
const INCREMENTAL: i64 = 2;

/// Gives back at most [`PAGES_PER_STEP`] free pages of the database of `pool`.
pub async fn step(pool: &SqlitePool) -> Result<Reclaimed, StoreError> {
    let mut conn = pool.acquire().await?;
    let (mode,): (i64,) = sqlx::query_as("PRAGMA auto_vacuum")
        .fetch_one(&mut *conn)
        .await?;
    if mode != INCREMENTAL {
        return Ok(Reclaimed::Done);
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "PRAGMA incremental_vacuum({PAGES_PER_STEP})"
    )))
    .execute(&mut *conn)
    .await?;
    let (free,): (i64,) = sqlx::query_as("PRAGMA freelist_count")
        .fetch_one(&mut *conn)
        .await?;
    Ok(if free > 0 {
        Reclaimed::More
    } else {
        Reclaimed::Done
    })
}

#[async_trait]
impl Reclaimer for SqliteStore {
    async fn reclaim_step(&self) -> Result<Reclaimed, StoreError> {
        step(&self.pool).await
    }
}
