//! Tests of the SQLite engine that reach into its tables: migrations of old layouts, the
//! writer's id cache and duplicate lookup, stored hashes, decisions, dictionaries, the writer
//! role on a failed batch.

mod blocklist_fetches;
mod client_suspensions;
mod compact_lookups;
mod credentials;
mod decisions;
mod dictionaries;
mod reclaim;
mod redaction;
mod retention;
mod secrets;
mod suspension_requests;
mod upper_hashes;
mod writer_role;

/// A database at `path` migrated up to `version` only: an old layout that a later migration
/// must carry over.
async fn database_at_migration(path: &std::path::Path, version: i64) -> sqlx::SqlitePool {
    let pool = sqlx::SqlitePool::connect_with(super::connection::connect_options(path))
        .await
        .unwrap();
    let old = sqlx::migrate::Migrator::with_migrations(
        super::connection::MIGRATOR
            .iter()
            .filter(|m| m.version <= version)
            .cloned()
            .collect(),
    );
    old.run(&pool).await.unwrap();
    pool
}
