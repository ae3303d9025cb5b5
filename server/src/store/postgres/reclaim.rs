//! Dead rows back to free space on PostgreSQL: one `VACUUM (ANALYZE)` of the tables redaction
//! deletes from, on a connection of its own (VACUUM runs outside any transaction, and may take
//! longer than the pools' statement timeout). Autovacuum would get there too, later.

use async_trait::async_trait;

use super::PostgresStore;
use super::hosts::Hosts;
use super::redaction::BY_INDEX;
use crate::store::{Reclaimed, Reclaimer, StoreError};

/// Tables redaction deletes from besides those of [`BY_INDEX`]: rows reached through a
/// redacted entry's rows, and what nothing kept needs any more (store/postgres/orphans.rs,
/// the unused leaf dictionaries).
const ALSO_DELETED: [&str; 4] = [
    "blocklist_suspensions",
    "identities",
    "pseudonyms",
    "leaf_dictionaries",
];

/// Vacuums and analyzes the tables redaction deletes from, on the host in use.
pub async fn vacuum(primary: &Hosts) -> Result<Reclaimed, StoreError> {
    let tables: Vec<&str> = BY_INDEX.iter().chain(&ALSO_DELETED).copied().collect();
    let mut conn = primary.connect_one().await?;
    let result = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "VACUUM (ANALYZE) {}",
        tables.join(", ")
    )))
    .execute(&mut conn)
    .await;
    // Best effort: the connection is not reused either way.
    let _ = sqlx::Connection::close(conn).await;
    result?;
    Ok(Reclaimed::Done)
}

#[async_trait]
impl Reclaimer for PostgresStore {
    async fn reclaim_step(&self) -> Result<Reclaimed, StoreError> {
        vacuum(&self.primary).await
    }
}
