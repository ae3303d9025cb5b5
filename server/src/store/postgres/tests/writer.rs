//! The PostgreSQL writer: a batch's rows as written, read back with SQL; a report logged
//! before fails its batch with nothing written; the log reopened from stored hashes, with
//! `upper_hashes` restored; the sequencer over this writer.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokenledger_core::entry::EntryBody;
use tokenledger_core::ids::{Jti, PersonId, Site, Vo};
use tokenledger_core::merkle::{self, Hash};
use tokenledger_core::note::NoteSigner;
use tokenledger_core::wire::AppendStatus;

use super::same_bytes::batches;
use super::{A, B, Entry, Log, issuance, ledger, locked_writer, snapshot, suspension, writer};
use crate::clock::SystemClock;
use crate::metrics::Metrics;
use crate::sequencer::{BatchLimits, EntryKind, PreparedEntry, Sequencer};
use crate::store::leaf_codec::LeafDecoders;
use crate::store::stored_hashes::UPPER_LEVEL;
use crate::store::{IssuanceKey, LedgerWriter, LogRecord, StateChange, StoreError, WriterLease};

fn sighting(iss: &str, jti: &str) -> StateChange {
    StateChange::Sighting {
        site: Site::unchecked("site-1"),
        vo: Vo::unchecked("atlas"),
        iss: iss.into(),
        jti: Jti::unchecked(jti),
    }
}

async fn rows<T>(pool: &PgPool, select: &'static str) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    sqlx::query_as(select).fetch_all(pool).await.unwrap()
}

#[tokio::test]
async fn a_batch_writes_every_row_and_the_log_reopens_at_its_root() {
    let (_db, url, pool) = ledger().await;
    let mut writer = writer(&url, 0).await;
    let mut log = Log::default();
    let first = log.rows(
        vec![
            Entry::Issuance(("j1".into(), A, "alice", "atlas", Some("c1"))),
            Entry::Issuance(("j2".into(), B, "bob", "cms", None)),
            Entry::Resolution("atlas"),
            Entry::Issuance(("j3".into(), A, "alice", "atlas", Some("c1"))),
        ],
        false,
    );
    first.append(writer.as_mut()).await.unwrap();
    let (person,): (String,) =
        sqlx::query_as("SELECT person_id FROM identities WHERE sub = 'alice'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let second = log.rows(
        vec![
            Entry::State(suspension("su-1", &person)),
            Entry::State(sighting(A, "j1")),
            Entry::State(StateChange::Link {
                vo: Vo::unchecked("atlas"),
                person_id: PersonId::unchecked(&person),
                iss: "x509".into(),
                sub: "/CN=alice".into(),
                created_at: 9,
            }),
            Entry::State(StateChange::Lift {
                suspension_id: "su-1".into(),
                lifted_by: "officer".into(),
                lifted_at: 11,
            }),
            Entry::Issuance(("j4".into(), B, "carol", "atlas", Some("c1"))),
            Entry::State(sighting(B, "j4")),
        ],
        true,
    );
    second.append(writer.as_mut()).await.unwrap();

    let entries: Vec<(i64, Vec<u8>, Option<i64>)> = rows(
        &pool,
        "SELECT idx, leaf, dictionary FROM entries ORDER BY idx",
    )
    .await;
    let expected: Vec<(i64, Vec<u8>, Option<i64>)> = first
        .leaves
        .iter()
        .chain(&second.leaves)
        .enumerate()
        .map(|(i, leaf)| (i as i64, leaf.clone(), None))
        .collect();
    assert_eq!(entries, expected);
    let hashes: Vec<(i64, Vec<u8>)> =
        rows(&pool, "SELECT idx, hash FROM hashes ORDER BY idx").await;
    let expected: Vec<(i64, Vec<u8>)> = first
        .hashes
        .iter()
        .chain(&second.hashes)
        .map(|(i, h)| (*i as i64, h.0.to_vec()))
        .collect();
    assert_eq!(hashes, expected);
    assert_eq!(hashes.len() as u64, merkle::stored_hash_count(10));

    let issuances: Vec<(String,)> = rows(
        &pool,
        "SELECT concat_ws(' ', i.idx, i.jti, r.iss, d.sub, d.vo, c.client_id, i.refresh_jti) \
         FROM issuances i JOIN issuers r ON r.id = i.issuer JOIN identities d ON d.id = i.identity \
         LEFT JOIN clients c ON c.id = i.client ORDER BY i.idx",
    )
    .await;
    assert_eq!(
        issuances,
        [
            (format!("0 j1 {A} alice atlas c1 r-j1"),),
            (format!("1 j2 {B} bob cms r-j2"),),
            (format!("3 j3 {A} alice atlas c1 r-j3"),),
            (format!("8 j4 {B} carol atlas c1 r-j4"),),
        ]
    );
    // Interned once each; alice's second token and the link keep her person.
    assert_eq!(
        rows::<(i64,)>(&pool, "SELECT id FROM issuers").await.len(),
        2
    );
    assert_eq!(
        rows::<(i64,)>(&pool, "SELECT id FROM clients").await.len(),
        1
    );
    let identities: Vec<(String, String, String, i64)> = rows(
        &pool,
        "SELECT sub, vo, person_id, created_at FROM identities ORDER BY sub",
    )
    .await;
    assert_eq!(identities.len(), 4);
    assert_eq!(identities[0].0, "/CN=alice");
    assert_eq!(identities[0].2, person);
    assert_eq!(
        identities[1],
        (
            "alice".into(),
            "atlas".into(),
            person.clone(),
            1_700_000_000_000_000
        )
    );
    assert!(identities.iter().all(|i| i.2.starts_with("pe-")));

    assert_eq!(
        rows::<(i64, String)>(&pool, "SELECT idx, vo FROM resolutions").await,
        [(2, "atlas".to_string())]
    );
    let suspensions: Vec<(String,)> = rows(
        &pool,
        "SELECT concat_ws(' ', id, idx, lifted_at, lifted_by, lift_idx) FROM suspensions",
    )
    .await;
    assert_eq!(suspensions, [("su-1 4 11 officer 7".to_string(),)]);
    // A sighting of a token logged in an earlier batch names its identity; one of a token of
    // the same batch does not (as on SQLite).
    let sightings: Vec<(i64, String, String, bool)> = rows(
        &pool,
        "SELECT s.idx, s.iss, s.jti, s.identity IS NOT DISTINCT FROM i.identity FROM sightings s \
         LEFT JOIN issuances i ON i.jti = s.jti ORDER BY s.idx",
    )
    .await;
    assert_eq!(
        sightings,
        [
            (5, A.into(), "j1".into(), true),
            (9, B.into(), "j4".into(), false)
        ]
    );
    assert_eq!(
        rows::<(i64, String)>(&pool, "SELECT size, note FROM checkpoints").await,
        [(10, "checkpoint 10".to_string())]
    );

    // The writer's reads.
    let logged = writer
        .logged_issuances(&first.issuance_keys())
        .await
        .unwrap();
    assert_eq!(logged.len(), 3);
    assert_eq!(logged[&(Jti::unchecked("j3"), A.to_string())], 3);
    let read = writer.entries_at(&[1, 8, 99]).await.unwrap();
    assert_eq!(
        read,
        [
            LogRecord::Leaf((1, first.leaves[1].clone())),
            LogRecord::Leaf((8, second.leaves[4].clone()))
        ]
    );
    drop(writer);

    let again = super::lease(&url, 0);
    let mut reopened = loop {
        // The first writer's connection closes in the background.
        if let Some(writer) = again.try_acquire("again").await.unwrap() {
            break writer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let frontier = reopened.open_log().await.unwrap();
    assert_eq!((frontier.size(), frontier.root()), (log.size(), log.root()));
}

#[tokio::test]
async fn a_report_logged_before_fails_its_batch_and_nothing_of_it_is_written() {
    let (_db, url, pool) = ledger().await;
    let mut writer = writer(&url, 0).await;
    let mut log = Log::default();
    log.rows(
        vec![Entry::Issuance(("j1".into(), A, "alice", "atlas", None))],
        false,
    )
    .append(writer.as_mut())
    .await
    .unwrap();
    let before = snapshot(&pool).await;

    let bad = log.rows(
        vec![
            Entry::Issuance(("j2".into(), B, "bob", "cms", Some("c2"))),
            Entry::Resolution("cms"),
            Entry::State(suspension("su-1", "pe-x")),
            Entry::Issuance(("j1".into(), A, "alice", "atlas", None)),
        ],
        true,
    );
    let refused = bad.append(writer.as_mut()).await.unwrap_err();
    assert!(refused.is_unique_violation(), "{refused}");
    assert_eq!(snapshot(&pool).await, before);

    // The connection is usable again, and ids of the rolled-back transaction were not kept:
    // the same rows without the duplicate commit, with bob's own identity and client.
    let mut log = Log::default();
    log.rows(
        vec![Entry::Issuance(("j1".into(), A, "alice", "atlas", None))],
        false,
    );
    let good = log.rows(
        vec![
            Entry::Issuance(("j2".into(), B, "bob", "cms", Some("c2"))),
            Entry::Resolution("cms"),
            Entry::State(suspension("su-1", "pe-x")),
        ],
        true,
    );
    good.append(writer.as_mut()).await.unwrap();
    let found: Vec<(String, String, Option<String>)> = rows(
        &pool,
        "SELECT i.jti, d.sub, c.client_id FROM issuances i JOIN identities d ON d.id = i.identity \
         LEFT JOIN clients c ON c.id = i.client ORDER BY i.idx",
    )
    .await;
    assert_eq!(
        found,
        [
            ("j1".into(), "alice".into(), None),
            ("j2".into(), "bob".into(), Some("c2".into()))
        ]
    );
    assert_eq!(writer.open_log().await.unwrap().root(), log.root());
}

/// A batch of resolutions alone (no issuance, state change, dictionary or checkpoint) is
/// written as one statement committed on its own: every row as a transaction writes it, and
/// a database's refusal (an index already written) writes nothing and says so.
#[tokio::test]
async fn a_batch_of_resolutions_alone_is_one_statement_and_a_refusal_writes_nothing() {
    let (_db, url, pool) = ledger().await;
    let mut writer = writer(&url, 0).await;
    let mut log = Log::default();
    let first = log.rows(vec![Entry::Resolution("atlas")], false);
    first.append(writer.as_mut()).await.unwrap();
    let resolutions = log.rows(
        vec![Entry::Resolution("cms"), Entry::Resolution("atlas")],
        false,
    );
    resolutions.append(writer.as_mut()).await.unwrap();
    let written: Vec<(i64, String)> =
        rows(&pool, "SELECT idx, vo FROM resolutions ORDER BY idx").await;
    assert_eq!(
        written,
        [(0, "atlas".into()), (1, "cms".into()), (2, "atlas".into())]
    );
    let upper: Vec<(i64,)> = rows(&pool, "SELECT idx FROM upper_hashes").await;
    assert!(
        upper.is_empty(),
        "3 entries have no hash of level {UPPER_LEVEL}"
    );
    assert_eq!(writer.open_log().await.unwrap().root(), log.root());
    let before = snapshot(&pool).await;

    let refused = resolutions.append(writer.as_mut()).await.unwrap_err();
    assert!(refused.is_unique_violation(), "{refused}");
    assert_eq!(snapshot(&pool).await, before);
    assert_eq!(writer.open_log().await.unwrap().root(), log.root());
}

#[tokio::test]
async fn upper_hashes_are_restored_and_a_missing_stored_hash_refuses_the_log() {
    let (_db, url, pool) = ledger().await;
    let mut writer = writer(&url, 0).await;
    let mut log = Log::default();
    for count in [1, 62, 1, 64, 129] {
        let entries = (0..count)
            .map(|_| Entry::State(StateChange::None))
            .collect();
        log.rows(entries, false)
            .append(writer.as_mut())
            .await
            .unwrap();
    }
    let size = log.size();
    let upper: Vec<(i64, Vec<u8>)> =
        rows(&pool, "SELECT idx, hash FROM upper_hashes ORDER BY idx").await;
    let expected: Vec<(i64, Vec<u8>)> = rows(&pool, "SELECT idx, hash FROM hashes ORDER BY idx")
        .await
        .into_iter()
        .filter(|(idx, _)| merkle::stored_hash_level(*idx as u64) >= UPPER_LEVEL)
        .collect();
    assert_eq!(upper, expected);
    assert_eq!(
        upper.len() as u64,
        merkle::stored_hash_count_from_level(size, UPPER_LEVEL)
    );

    sqlx::query("DELETE FROM upper_hashes WHERE idx % 2 = 0")
        .execute(&pool)
        .await
        .unwrap();
    let frontier = writer.open_log().await.unwrap();
    assert_eq!(frontier.root(), log.root());
    assert_eq!(
        rows::<(i64, Vec<u8>)>(&pool, "SELECT idx, hash FROM upper_hashes ORDER BY idx").await,
        upper
    );

    // A stored hash of the right edge changed: the reopened log has another root.
    let edge = *merkle::tree_hash_indexes(size).last().unwrap() as i64;
    sqlx::query("UPDATE hashes SET hash = $1 WHERE idx = $2")
        .bind(Hash([7; 32]).0.to_vec())
        .bind(edge)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(merkle::stored_hash_level(edge as u64), 0);
    assert_ne!(writer.open_log().await.unwrap().root(), log.root());
    sqlx::query("DELETE FROM hashes WHERE idx = $1")
        .bind(edge)
        .execute(&pool)
        .await
        .unwrap();
    match writer.open_log().await {
        Err(StoreError::Corrupt(e)) => assert!(e.contains("stored hashes"), "{e}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a log missing a stored hash opened"),
    }
}

/// Through the sequencer: a report logged in an earlier batch (which the sequencer does not
/// expect) fails the batch with a unique violation, and its retry answers the first index.
#[tokio::test]
async fn the_sequencer_answers_a_repeated_report_with_its_first_index() {
    let (_db, url, pool) = ledger().await;
    let metrics = Arc::new(Metrics::default());
    let (sequencer, task) = Sequencer::start(
        super::lease(&url, 0)
            .try_acquire("sequencer")
            .await
            .unwrap()
            .unwrap(),
        NoteSigner::from_seed("test/log", [5; 32]).unwrap(),
        "test/log".into(),
        BatchLimits {
            max_batch: 100,
            max_wait: Duration::ZERO,
            queue_depth: 8,
        },
        metrics,
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    let report = |jti: &str, at: i64| {
        let (issuance, _) = issuance((jti.into(), A, "alice", "atlas", None), at);
        let key = IssuanceKey::of(&issuance);
        let body = EntryBody::Issuance(Box::new(issuance));
        PreparedEntry::new(at, body, EntryKind::Issuance(key)).unwrap()
    };
    let first = sequencer
        .append(vec![report("j1", 1), report("j2", 2)])
        .await
        .unwrap();
    assert_eq!(first.iter().map(|s| s.index).collect::<Vec<_>>(), [0, 1]);
    let again = sequencer
        .append(vec![report("j3", 3), report("j2", 4)])
        .await
        .unwrap();
    assert_eq!(
        again
            .iter()
            .map(|s| (s.index, s.status))
            .collect::<Vec<_>>(),
        [(2, AppendStatus::Created), (1, AppendStatus::Duplicate)]
    );
    assert_eq!(again[1].logged_at, 2);
    let head = sequencer.head();
    assert_eq!(head.size, 3);
    drop(sequencer);
    task.await.unwrap();
    let (entries,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM entries")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(entries, 3);
    // The checkpoint of the log as opened, written outside any batch.
    let (opened,): (String,) = sqlx::query_as("SELECT note FROM checkpoints WHERE size = 0")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(opened.starts_with("test/log\n0\n"), "{opened}");
}

/// A dictionary first used by a batch that failed is not known to the readers (another
/// writer may store a different one under its id); the next batch writes it, and once that
/// commits the readers know it.
#[tokio::test]
async fn a_dictionary_of_a_failed_batch_is_learned_only_once_committed() {
    let (_db, url, pool) = ledger().await;
    let decoders = Arc::new(LeafDecoders::default());
    let mut writer = locked_writer(&url, decoders.clone(), 400).await;
    writer.open_log().await.unwrap();
    let mut log = Log::default();
    for rows in batches(&mut log, 4) {
        rows.append(&mut writer).await.unwrap();
    }
    let trained = writer
        .wait_for_training()
        .await
        .unwrap()
        .expect("a dictionary");
    let dictionaries = async || {
        rows::<(i64,)>(&pool, "SELECT id FROM leaf_dictionaries")
            .await
            .len()
    };

    // The first report of the log, again: a unique violation, the batch rolled back.
    let again = Entry::Issuance(("jti-00000000".into(), A, "alice", "atlas", None));
    let refused = log.rows(vec![again], false).append(&mut writer).await;
    assert!(refused.unwrap_err().is_unique_violation());
    assert!(!decoders.knows(trained.id));
    assert_eq!(dictionaries().await, 0);

    let mut log = Log::default();
    batches(&mut log, 4);
    for rows in batches(&mut log, 1) {
        rows.append(&mut writer).await.unwrap();
    }
    assert!(decoders.knows(trained.id));
    assert_eq!(dictionaries().await, 1);
}
