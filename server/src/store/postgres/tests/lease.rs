//! The writer lease: one writer at a time among any number of servers; the lease passes on
//! when the writer's connection closes, and the writer is named only while it holds it; a
//! writer whose connection was ended, or that gave it up at its deadline, appends nothing
//! more and cannot open the log again; a connection without the lock cannot open the log;
//! the writer's session settings.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, PgPool};

use super::{Entry, Log, lease, ledger, locked_writer};
use crate::store::postgres::{LEASE_KEY, PostgresLease, PostgresWriter};
use crate::store::{LedgerWriter, StateChange, StoreError, WriterLease};

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
    let start = Instant::now();
    while lease_holder_pid(&pool).await.is_some() {
        assert!(start.elapsed() < Duration::from_secs(10), "not released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        second.holder().await.unwrap(),
        None,
        "a writer that is gone is not named"
    );
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

/// Waits up to 5 s for the lease's lock to be free.
async fn released(pool: &PgPool) -> bool {
    let start = Instant::now();
    while lease_holder_pid(pool).await.is_some() {
        if start.elapsed() > Duration::from_secs(5) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

#[tokio::test]
async fn a_connection_without_the_lock_cannot_open_the_log() {
    let (_db, url, _pool) = ledger().await;
    let conn = PgConnection::connect_with(&url.hosts()[0]).await.unwrap();
    let mut writer = PostgresWriter::on_lease(conn, &url, Arc::default(), 0)
        .await
        .unwrap();
    match writer.open_log().await {
        Err(StoreError::Unavailable(e)) => {
            assert!(e.contains("no longer holds the writer lease"), "{e}")
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a writer without the lock opened the log"),
    }
}

/// A call the database does not answer within the deadline (here, a batch waiting for a
/// table another session locked) fails; the writer's connection is given up and its backend
/// ended, so the lease is free at once, for another server to take; the old writer can do
/// nothing more.
#[tokio::test]
async fn past_its_deadline_the_writer_gives_its_connection_and_the_lease_up() {
    let (_db, url, pool) = ledger().await;
    let mut writer = locked_writer(&url, Arc::default(), 0)
        .await
        .with_deadline(Duration::from_secs(1));
    writer.open_log().await.unwrap();
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE entries IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let mut log = Log::default();
    let rows = log.rows(vec![Entry::State(StateChange::None)], false);
    let start = Instant::now();
    let failed = rows.append(&mut writer).await.unwrap_err();
    assert!(failed.to_string().contains("did not answer"), "{failed}");
    // Not "nothing written, retry": the batch's COMMIT may have been applied.
    assert!(!failed.is_unavailable(), "{failed}");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(
        released(&pool).await,
        "the given-up session still holds the lease"
    );
    assert_eq!(lease(&url, 0).holder().await.unwrap(), None);
    blocker.rollback().await.unwrap();

    let mut new = take(&lease(&url, 0), "node-2").await;
    new.open_log().await.unwrap();
    assert!(rows.append(&mut writer).await.is_err());
    assert!(writer.open_log().await.is_err());
    rows.append(new.as_mut()).await.unwrap();
}

/// The writer's session: commits wait for at least the WAL flush (`on`), or for what the
/// database asks if that is stronger; no statement timeout (one would let a COMMIT waiting for
/// the synchronous standby succeed on the primary alone); an idle transaction ends before the
/// writer's deadline; idle sessions are not ended; keepalives no slower than 5/2/3.
#[tokio::test]
async fn the_writer_session_settings() {
    let (db, url, _pool) = ledger().await;
    let mut writer = locked_writer(&url, Arc::default(), 0).await;
    for (name, value) in [
        ("synchronous_commit", "on"),
        ("statement_timeout", "0"),
        ("idle_in_transaction_session_timeout", "45s"),
        ("idle_session_timeout", "0"),
        ("client_connection_check_interval", "10s"),
        ("tcp_keepalives_idle", "5"),
        ("tcp_keepalives_interval", "2"),
        ("tcp_keepalives_count", "3"),
    ] {
        assert_eq!(writer.setting(name).await, value, "{name}");
    }
    drop(writer);
    for (server, session) in [
        ("off", "on"),
        ("remote_write", "on"),
        ("remote_apply", "remote_apply"),
    ] {
        db.query(&format!(
            "ALTER DATABASE {} SET synchronous_commit = {server}",
            db.name()
        ));
        let mut writer = loop {
            // The previous writer's connection closes in the background.
            let mut conn = PgConnection::connect_with(&url.hosts()[0]).await.unwrap();
            let (taken,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
                .bind(LEASE_KEY)
                .fetch_one(&mut conn)
                .await
                .unwrap();
            if taken {
                break PostgresWriter::on_lease(conn, &url, Arc::default(), 0)
                    .await
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(
            writer.setting("synchronous_commit").await,
            session,
            "{server}"
        );
    }
}
