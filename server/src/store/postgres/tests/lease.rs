//! The writer lease: one writer at a time among any number of servers; the lease passes on
//! when the writer's connection closes; a writer whose connection was ended appends nothing
//! more, and cannot open the log again.

use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::{Entry, Log, lease, ledger};
use crate::store::postgres::{LEASE_KEY, PostgresLease};
use crate::store::{LedgerWriter, StateChange, WriterLease};

/// Takes the lease as `holder`, waiting up to 10 s for the previous writer's connection to
/// be closed by the server.
async fn take(lease: &PostgresLease, holder: &str) -> Box<dyn LedgerWriter> {
    let start = Instant::now();
    loop {
        if let Some(writer) = lease.try_acquire(holder).await.unwrap() {
            return writer;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the lease was not released"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The backend holding the lease's lock in this database (each database has its own), if any.
async fn lease_holder_pid(pool: &PgPool) -> Option<i32> {
    let key = LEASE_KEY as u64;
    sqlx::query_as::<_, (i32,)>(
        "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
         WHERE d.datname = current_database() AND l.locktype = 'advisory' AND l.granted \
         AND l.classid::bigint = $1 AND l.objid::bigint = $2",
    )
    .bind((key >> 32) as i64)
    .bind((key & 0xffff_ffff) as i64)
    .fetch_optional(pool)
    .await
    .unwrap()
    .map(|(pid,)| pid)
}

#[tokio::test]
async fn one_server_holds_the_lease_until_its_connection_closes() {
    let (_db, url, pool) = ledger().await;
    let (first, second) = (lease(&url, 0), lease(&url, 0));
    assert_eq!(second.holder().await.unwrap(), None);

    let mut writer = first
        .try_acquire("node-1")
        .await
        .unwrap()
        .expect("a free lease");
    assert!(second.try_acquire("node-2").await.unwrap().is_none());
    assert!(first.try_acquire("node-1 again").await.unwrap().is_none());
    assert_eq!(second.holder().await.unwrap().as_deref(), Some("node-1"));
    let mut log = Log::default();
    writer.open_log().await.unwrap();
    log.rows(vec![Entry::State(StateChange::None)], false)
        .append(writer.as_mut())
        .await
        .unwrap();
    assert!(lease_holder_pid(&pool).await.is_some());

    drop(writer);
    let mut writer = take(&second, "node-2").await;
    assert_eq!(first.holder().await.unwrap().as_deref(), Some("node-2"));
    assert!(first.try_acquire("node-1").await.unwrap().is_none());
    let frontier = writer.open_log().await.unwrap();
    assert_eq!((frontier.size(), frontier.root()), (log.size(), log.root()));
    let since: Vec<(i64,)> = sqlx::query_as("SELECT since FROM writer_lease")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(since.len(), 1);
    assert!(since[0].0 > 1_700_000_000_000_000);
}

#[tokio::test]
async fn a_writer_whose_connection_was_ended_appends_nothing_and_cannot_reopen_the_log() {
    let (_db, url, pool) = ledger().await;
    let (first, second) = (lease(&url, 0), lease(&url, 0));
    let mut old = first.try_acquire("node-1").await.unwrap().unwrap();
    old.open_log().await.unwrap();
    let mut log = Log::default();
    log.rows(vec![Entry::State(StateChange::None)], false)
        .append(old.as_mut())
        .await
        .unwrap();

    let pid = lease_holder_pid(&pool)
        .await
        .expect("the writer holds the lock");
    let (ended,): (bool,) = sqlx::query_as("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(ended);
    let mut new = take(&second, "node-2").await;
    new.open_log().await.unwrap();

    let mut stale = Log::default();
    stale.rows(vec![Entry::State(StateChange::None)], false);
    let late = stale.rows(vec![Entry::State(StateChange::None)], true);
    assert!(late.append(old.as_mut()).await.is_err());
    assert!(old.open_log().await.is_err());
    assert!(
        old.write_checkpoint(late.batch().checkpoint.unwrap())
            .await
            .is_err()
    );

    // Only the new writer appends, after the entry the old one committed.
    let next = log.rows(vec![Entry::State(StateChange::None)], true);
    next.append(new.as_mut()).await.unwrap();
    let (entries, checkpoints): (i64, i64) =
        sqlx::query_as("SELECT (SELECT COUNT(*) FROM entries), (SELECT COUNT(*) FROM checkpoints)")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((entries, checkpoints), (2, 1));
    assert_eq!(new.open_log().await.unwrap().root(), log.root());
}
