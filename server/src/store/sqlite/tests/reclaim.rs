//! Space given back on SQLite: a new database gives the pages a retention run freed back to
//! the file system; one made without auto-vacuum keeps them (for new rows) until
//! `tokenledger-server vacuum` converts it, which a running server's database refuses.

use std::path::Path;

use sqlx::sqlite::{SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode};
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use tokenledger_core::ids::Vo;
use tokenledger_core::retention::RetentionPolicy;

use super::retention::{issuance, ledger, redacted};
use crate::service::retention::{reclaim, run_once};
use crate::store::sqlite::{SqliteStore, vacuum};
use crate::store::{Reclaimed, Reclaimer};

/// `(page_count, freelist_count)` of the database at `path`, its WAL checkpointed first.
async fn pages(path: &Path) -> (i64, i64) {
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .unwrap();
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await
        .unwrap();
    let (count,): (i64,) = sqlx::query_as("PRAGMA page_count")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let (free,): (i64,) = sqlx::query_as("PRAGMA freelist_count")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    (count, free)
}

/// 3,000 issuances redacted by a run leave their pages free; [`reclaim`] gives them back in
/// bounded steps: no free page is left and the file holds fewer pages than before the run.
#[tokio::test]
async fn a_new_database_gives_back_the_pages_a_retention_run_freed() {
    let (dir, ledger, _keeper) = ledger().await;
    let path = dir.path().join("t.db");
    let sequencer = ledger.role.sequencer().unwrap();
    let entries: u64 = 3_000;
    for batch in 0..entries / 500 {
        let issuances = (batch * 500..(batch + 1) * 500)
            .map(|n| {
                issuance(
                    n as i64 + 1,
                    &format!("jti-{n:08}-{}", "x".repeat(64)),
                    "alice",
                )
            })
            .collect();
        sequencer.append(issuances).await.unwrap();
    }
    let (filled, _) = pages(&path).await;

    let outcome = run_once(
        &ledger,
        &RetentionPolicy::default(),
        &[Vo::unchecked("atlas")],
        0,
        20_000,
    )
    .await
    .unwrap();
    assert_eq!(outcome.redacted, entries);
    assert_eq!(redacted(&ledger, entries).await.len() as u64, entries);
    let (_, freed) = pages(&path).await;
    assert!(freed > 100, "{freed} free pages after the run");

    let store = SqliteStore::open(&path, Default::default()).await.unwrap();
    let steps = reclaim(&store).await.unwrap();
    assert!(steps >= 1);
    let (count, free) = pages(&path).await;
    assert_eq!(free, 0, "every free page given back");
    assert!(
        count < filled,
        "{count} pages after the reclaim, {filled} before the run"
    );
    assert_eq!(store.reclaim_step().await.unwrap(), Reclaimed::Done);
    store.close().await;
}

/// A database made without auto-vacuum (as before this version), with free pages.
async fn old_database(path: &Path) {
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .page_size(1024)
        .auto_vacuum(SqliteAutoVacuum::None)
        .journal_mode(SqliteJournalMode::Wal)
        .connect()
        .await
        .unwrap();
    sqlx::query("CREATE TABLE t (x BLOB)")
        .execute(&mut conn)
        .await
        .unwrap();
    for _ in 0..2_000 {
        sqlx::query("INSERT INTO t VALUES (zeroblob(500))")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    sqlx::query("DELETE FROM t WHERE rowid > 100")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

/// An old database keeps its free pages through a reclaim step (new rows reuse them);
/// `vacuum` converts it: incremental, in WAL mode, smaller, its rows kept.
#[tokio::test]
async fn vacuum_converts_a_database_made_without_auto_vacuum() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    old_database(&path).await;
    // Not a ledger (no migrations): only the reclaim step is asked of it.
    let pool = sqlx::SqlitePool::connect_with(SqliteConnectOptions::new().filename(&path))
        .await
        .unwrap();
    assert_eq!(
        crate::store::sqlite::reclaim::step(&pool).await.unwrap(),
        Reclaimed::Done
    );
    pool.close().await;
    let (_, free) = pages(&path).await;
    assert!(free > 1000, "{free} free pages kept");

    let done = vacuum::vacuum(&path).await.unwrap();
    assert_eq!(done.auto_vacuum_before, 0);
    assert!(
        done.bytes_after < done.bytes_before / 4,
        "{} -> {} bytes",
        done.bytes_before,
        done.bytes_after
    );
    let mut conn = SqliteConnectOptions::new()
        .filename(&path)
        .connect()
        .await
        .unwrap();
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let (auto_vacuum,): (i64,) = sqlx::query_as("PRAGMA auto_vacuum")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM t")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    assert_eq!((mode.as_str(), auto_vacuum, rows), ("wal", 2, 100));
}

/// A database another process (or connection) has open is left as it is.
#[tokio::test]
async fn vacuum_refuses_a_database_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    old_database(&path).await;
    let mut open: SqliteConnection = SqliteConnectOptions::new()
        .filename(&path)
        .connect()
        .await
        .unwrap();
    sqlx::query("SELECT count(*) FROM t")
        .execute(&mut open)
        .await
        .unwrap();
    let refused = vacuum::vacuum(&path).await.unwrap_err();
    assert!(
        format!("{refused:#}").contains("open in another process"),
        "{refused:#}"
    );
    open.close().await.unwrap();
    let (_, free) = pages(&path).await;
    assert!(free > 1000, "untouched: {free} free pages");
}
