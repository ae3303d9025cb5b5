//! The writer role on SQLite's lease: a standby while the lease is held (appends refused,
//! naming the writer; the stored head served), the writer once it is free; after a failed
//! batch the writer re-reads the log and goes on, and if it cannot it stops appending and
//! stands by until the log can be opened again.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::SqlitePool;
use tokenledger_core::merkle::leaf_hash;
use tokenledger_core::note::NoteSigner;
use tokio::sync::watch;

use crate::clock::SystemClock;
use crate::metrics::Metrics;
use crate::sequencer::{AppendError, BatchLimits, EntryKind, PreparedEntry};
use crate::store::sqlite::{SqliteStore, connection};
use crate::store::{LedgerReader, StateChange, WriterLease, ownership};
use crate::writer_role::{Role, RoleKeeper, SequencerSetup, WriterRole};

const ORIGIN: &str = "test/log";

fn signer() -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, [5; 32]).unwrap()
}

fn setup() -> SequencerSetup {
    SequencerSetup {
        signer: signer(),
        origin: ORIGIN.into(),
        limits: BatchLimits {
            max_batch: 100,
            max_wait: Duration::ZERO,
            queue_depth: 8,
        },
        metrics: Arc::new(Metrics::default()),
        clock: Arc::new(SystemClock),
    }
}

fn entry(name: &str) -> PreparedEntry {
    let leaf = name.as_bytes().to_vec();
    PreparedEntry {
        leaf_hash: leaf_hash(&leaf),
        leaf,
        logged_at: 1,
        kind: EntryKind::State(StateChange::None),
    }
}

/// Appends one entry through whatever the role offers: its index.
async fn append(role: &WriterRole, name: &str) -> Result<u64, AppendError> {
    Ok(role.sequencer()?.append(vec![entry(name)]).await?[0].index)
}

/// Waits (bounded) until `role` is `wanted`.
async fn wait_for(role: &WriterRole, wanted: Role) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while role.role() != wanted {
        assert!(Instant::now() < deadline, "still {:?}", role.role());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A keeper of the database at `path`, as `holder`, running until the sender is set.
async fn keeper(
    path: &Path,
    holder: &str,
) -> (
    Arc<WriterRole>,
    Arc<dyn LedgerReader>,
    watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let store = SqliteStore::open(path, Default::default()).await.unwrap();
    let lease = Arc::new(store.lease(path, 0));
    let reader: Arc<dyn LedgerReader> = Arc::new(store);
    let keeper = RoleKeeper::start(lease, holder.into(), reader.clone(), setup())
        .await
        .unwrap();
    let role = keeper.role();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(keeper.run(stopped));
    (role, reader, stop, task)
}

#[tokio::test]
async fn a_standby_names_the_writer_serves_the_stored_head_and_takes_the_free_lease() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let (role, _, stop, task) = keeper(&path, "first:1").await;
    for name in ["a", "b", "c"] {
        append(&role, name).await.unwrap();
    }
    let written = role.head();
    stop.send_replace(true);
    task.await.unwrap();

    // Another server holds the lease: this one stands by.
    let store = SqliteStore::open(&path, Default::default()).await.unwrap();
    let lease = Arc::new(store.lease(&path, 0));
    let held = lease.try_acquire("other:8080").await.unwrap().unwrap();
    assert!(lease.try_acquire("me:8080").await.unwrap().is_none());
    let reader: Arc<dyn LedgerReader> = Arc::new(store);
    let keeper = RoleKeeper::start(lease.clone(), "me:8080".into(), reader.clone(), setup())
        .await
        .unwrap();
    let role = keeper.role();
    let other = Role::Standby {
        writer: Some("other:8080".into()),
    };
    assert_eq!(role.role(), other);
    let refused = append(&role, "d").await.unwrap_err();
    assert!(
        matches!(&refused, AppendError::Standby(s) if s.writer.as_deref() == Some("other:8080")),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("other:8080"), "{refused}");
    assert_eq!(role.head().size, 3);
    assert_eq!(role.head().note, written.note, "the stored checkpoint");

    // The writer goes: the standby takes the lease and appends after the stored entries.
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(keeper.run(stopped));
    drop(held);
    wait_for(&role, Role::Writer).await;
    assert_eq!(lease.holder().await.unwrap().as_deref(), Some("me:8080"));
    assert_eq!(append(&role, "d").await.unwrap(), 3);
    stop.send_replace(true);
    task.await.unwrap();
    let checkpoint = ownership::check(reader.as_ref(), &signer().verifier())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        checkpoint.size, 4,
        "the last checkpoint is written at the stop"
    );
}

/// Makes every insert of an entry fail, as a lost database would.
async fn refuse_entries(pool: &SqlitePool) {
    sqlx::query(
        "CREATE TRIGGER refuse_entries BEFORE INSERT ON entries \
         BEGIN SELECT RAISE(ABORT, 'test: no entry is written'); END",
    )
    .execute(pool)
    .await
    .unwrap();
}

async fn accept_entries(pool: &SqlitePool) {
    sqlx::query("DROP TRIGGER refuse_entries")
        .execute(pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn after_a_failed_batch_the_writer_rereads_the_log_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let (role, reader, stop, task) = keeper(&path, "me:1").await;
    append(&role, "a").await.unwrap();
    append(&role, "b").await.unwrap();
    let pool = connection::open(&path).await.unwrap();
    refuse_entries(&pool).await;
    let failed = append(&role, "c").await.unwrap_err();
    assert!(matches!(failed, AppendError::Failed(_)), "{failed:?}");
    accept_entries(&pool).await;
    assert_eq!(append(&role, "c").await.unwrap(), 2);
    assert_eq!(role.role(), Role::Writer);
    let root = role.head().root;
    stop.send_replace(true);
    task.await.unwrap();
    let checkpoint = ownership::check(reader.as_ref(), &signer().verifier())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((checkpoint.size, checkpoint.root), (3, root));
}

#[tokio::test]
async fn a_writer_that_cannot_reread_the_log_stops_appending_and_stands_by_until_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let (role, reader, stop, task) = keeper(&path, "me:1").await;
    append(&role, "a").await.unwrap();
    append(&role, "b").await.unwrap();

    // The batch fails, and the stored tree is then one hash short: the log cannot be opened.
    let pool = connection::open(&path).await.unwrap();
    let (idx, hash): (i64, Vec<u8>) =
        sqlx::query_as("SELECT idx, hash FROM hashes ORDER BY idx DESC LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    sqlx::query("DELETE FROM hashes WHERE idx = ?")
        .bind(idx)
        .execute(&pool)
        .await
        .unwrap();
    refuse_entries(&pool).await;
    let failed = append(&role, "c").await.unwrap_err();
    assert!(matches!(failed, AppendError::Failed(_)), "{failed:?}");
    wait_for(&role, Role::Standby { writer: None }).await;
    let refused = append(&role, "c").await.unwrap_err();
    assert!(matches!(refused, AppendError::Standby(_)), "{refused:?}");
    // It keeps trying the lease, and fails to open the log every time.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(role.role(), Role::Standby { writer: None });

    // Repaired, the log opens again: the server is the writer and goes on from the stored
    // tree.
    sqlx::query("INSERT INTO hashes (idx, hash) VALUES (?, ?)")
        .bind(idx)
        .bind(hash)
        .execute(&pool)
        .await
        .unwrap();
    accept_entries(&pool).await;
    wait_for(&role, Role::Writer).await;
    assert_eq!(append(&role, "c").await.unwrap(), 2);
    stop.send_replace(true);
    task.await.unwrap();
    let checkpoint = ownership::check(reader.as_ref(), &signer().verifier())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(checkpoint.size, 3);
}

#[tokio::test]
async fn an_idle_writer_stores_its_head_within_about_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let (role, reader, stop, task) = keeper(&path, "me:1").await;
    append(&role, "a").await.unwrap();
    append(&role, "b").await.unwrap();
    let appended = Instant::now();
    while reader
        .newest_checkpoint()
        .await
        .unwrap()
        .map(|(size, _)| size)
        != Some(2)
    {
        assert!(
            appended.elapsed() < Duration::from_secs(3),
            "no checkpoint of the head stored"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, note) = reader.newest_checkpoint().await.unwrap().unwrap();
    assert_eq!(note, role.head().note);
    stop.send_replace(true);
    task.await.unwrap();
}
