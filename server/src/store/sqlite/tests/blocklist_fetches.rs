//! Enforcement status in the database (migration 0010): the sequence at which each
//! suspension first appeared in a site's blocklist, the first fetch of each sequence per
//! credential, the last fetch per site; blocklists stored before the migration are read into
//! it.

use sqlx::SqlitePool;

use crate::store::LedgerReader;
use crate::store::conformance::{self, signed, site};
use crate::store::sqlite::{SqliteStore, connection};

async fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let pool = connection::open(&dir.path().join("t.db")).await.unwrap();
    (dir, SqliteStore::over(pool))
}

#[tokio::test]
async fn first_appearance_first_fetch_and_last_fetch() {
    let (_dir, store) = store().await;
    conformance::first_appearance_first_fetch_and_last_fetch(&store).await;
}

#[tokio::test]
async fn a_fetch_after_the_suspension_left_the_blocklist_is_no_fetch_of_it() {
    let (_dir, store) = store().await;
    conformance::a_fetch_after_the_suspension_left_the_blocklist_is_no_fetch_of_it(&store).await;
}

#[tokio::test]
async fn a_blocklist_of_a_sequence_already_stored_is_refused() {
    let (_dir, store) = store().await;
    conformance::a_blocklist_of_a_sequence_already_stored_is_refused(&store).await;
}

/// A database at migration 0009, before the fetch tables.
async fn old_database(path: &std::path::Path) -> SqlitePool {
    super::database_at_migration(path, 9).await
}

#[tokio::test]
async fn the_migration_reads_the_stored_blocklists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let pool = old_database(&path).await;
    let document = serde_json::to_string(&signed("A", 5, &["su-1", "su-2"])).unwrap();
    sqlx::query("INSERT INTO blocklists (site, sequence, document) VALUES ('A', 5, ?)")
        .bind(document)
        .execute(&pool)
        .await
        .unwrap();
    connection::MIGRATOR.run(&pool).await.unwrap();
    let store = SqliteStore::over(pool);
    for id in ["su-1", "su-2"] {
        let status = store.blocklist_enforcement(&site("A"), id).await.unwrap();
        assert_eq!(status.first_sequence, Some(5), "{id}");
    }
    assert_eq!(
        store
            .blocklist_enforcement(&site("A"), "su-3")
            .await
            .unwrap()
            .first_sequence,
        None
    );
}
