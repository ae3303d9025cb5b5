//! Redaction on SQLite: the conformance scenarios, through a writer and a reader of one
//! database.

use std::sync::Arc;
use std::time::Duration;

use tokenledger_core::blocklist::Scope;
use tokenledger_core::ids::{Jti, PersonId, Vo};
use tokenledger_core::merkle::leaf_hash;
use tokenledger_core::note::NoteSigner;
use tokenledger_core::redaction::IndexRange;

use crate::clock::SystemClock;
use crate::metrics::Metrics;
use crate::preconditions::Refusal;
use crate::sequencer::{AppendError, BatchLimits, EntryKind, PreparedEntry, Sequenced, Sequencer};
use crate::storage_errors::StorageErrors;
use crate::store::conformance;
use crate::store::sqlite::{SqliteStore, SqliteWriter, connection};
use crate::store::{
    IssuanceKey, LedgerReader, LedgerWriter, LogRecord, StateChange, SuspensionRecord,
};

/// A fresh database's reader and writer (its log opened).
async fn store() -> (tempfile::TempDir, SqliteStore, SqliteWriter) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = SqliteStore::open(&path, Arc::new(StorageErrors::default()))
        .await
        .unwrap();
    let mut writer = SqliteWriter::open(&path, Default::default(), 0)
        .await
        .unwrap();
    writer.open_log().await.unwrap();
    (dir, store, writer)
}

#[tokio::test]
async fn redaction_removes_payload_and_lookups_and_keeps_hashes() {
    let (_dir, store, mut writer) = store().await;
    conformance::redaction_removes_payload_and_lookups_and_keeps_hashes(&mut writer, &store).await;
}

#[tokio::test]
async fn a_failed_batch_redacts_nothing() {
    let (_dir, store, mut writer) = store().await;
    conformance::a_failed_batch_redacts_nothing(&mut writer, &store).await;
}

/// A fresh database holding person `pe-a` (identity `alice` of atlas), its writer closed
/// so a sequencer can open it; its path.
async fn store_of_alice() -> (tempfile::TempDir, SqliteStore, std::path::PathBuf) {
    let (dir, store, writer) = store().await;
    drop(writer);
    let path = dir.path().join("t.db");
    sqlx::query(
        "INSERT INTO identities (iss, sub, vo, person_id, created_at) VALUES \
         ('https://iam/', 'alice', 'atlas', 'pe-a', 1)",
    )
    .execute(&connection::open(&path).await.unwrap())
    .await
    .unwrap();
    (dir, store, path)
}

/// A sequencer over the database at `path`.
async fn sequencer(path: &std::path::Path) -> (Sequencer, tokio::task::JoinHandle<()>) {
    Sequencer::start(
        Box::new(
            SqliteWriter::open(path, Default::default(), 0)
                .await
                .unwrap(),
        ),
        NoteSigner::from_seed("test/log", [5; 32]).unwrap(),
        "test/log".into(),
        BatchLimits {
            max_batch: 100,
            max_wait: Duration::ZERO,
            queue_depth: 8,
        },
        Arc::new(Metrics::default()),
        Arc::new(SystemClock),
    )
    .await
    .unwrap()
}

/// An entry (its bytes do not matter here) with the state change `change`.
fn entry(n: usize, change: StateChange) -> PreparedEntry {
    let leaf = format!("entry {n}").into_bytes();
    PreparedEntry {
        leaf_hash: leaf_hash(&leaf),
        leaf,
        logged_at: n as i64,
        kind: EntryKind::State(change),
    }
}

fn redact(ranges: &[(u64, u64)], holds_at: u64) -> StateChange {
    StateChange::Redact {
        ranges: ranges.iter().map(|r| IndexRange::from(*r)).collect(),
        at: 9,
        holds_at,
        key: conformance::key(),
        persons: Vec::new(),
    }
}

fn suspend_person(id: &str, person: &str) -> StateChange {
    StateChange::Suspend(Box::new(SuspensionRecord {
        id: id.into(),
        idx: 0,
        site: None,
        vo: Vo::unchecked("atlas"),
        person_id: Some(PersonId::unchecked(person)),
        token_iss: None,
        token_jti: None,
        client_iss: None,
        client_id: None,
        scope: Scope::All,
        reason_code: "suspended".into(),
        created_by: "officer".into(),
        created_at: 1,
        not_after: None,
        issued_before: None,
        lifted_at: None,
    }))
}

fn refusal(result: Result<Vec<Sequenced>, AppendError>) -> Refusal {
    match result {
        Err(AppendError::Refused(refusal)) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Indexes of the redacted entries below `end`.
async fn redacted(store: &SqliteStore, end: u64) -> Vec<u64> {
    store
        .entries(0, end)
        .await
        .unwrap()
        .iter()
        .filter(|r| matches!(r, LogRecord::Redacted(_)))
        .map(LogRecord::index)
        .collect()
}

/// A retention run whose holds were read before a suspension of the person was logged is
/// refused whole (it redacts nothing), in a later batch, in the same job, and after the
/// writer re-opened the log; read after it, it is admitted. A range reaching the
/// `redaction` entry's own index is refused.
#[tokio::test]
async fn a_redaction_is_refused_if_holds_changed_since_they_were_read_or_past_the_log() {
    let (_dir, store, path) = store_of_alice().await;
    let (sequencer, task) = sequencer(&path).await;
    let plain: Vec<PreparedEntry> = (0..3).map(|n| entry(n, StateChange::None)).collect();
    sequencer.append(plain).await.unwrap();
    let holds_at = sequencer.head().size;
    sequencer
        .append(vec![entry(3, suspend_person("su-1", "pe-a"))])
        .await
        .unwrap();

    let refused = sequencer.append(vec![entry(4, redact(&[(0, 2)], holds_at))]);
    assert_eq!(refusal(refused.await), Refusal::HoldsChanged);
    let together = sequencer.append(vec![
        entry(5, suspend_person("su-2", "pe-a")),
        entry(6, redact(&[(0, 2)], 4)),
    ]);
    assert_eq!(refusal(together.await), Refusal::HoldsChanged);
    assert_eq!(redacted(&store, 4).await, Vec::<u64>::new());
    assert_eq!(sequencer.head().size, 4);

    let beyond = sequencer.append(vec![entry(7, redact(&[(0, 5)], 4))]);
    assert_eq!(
        refusal(beyond.await),
        Refusal::BeyondLog { end: 5, size: 4 }
    );
    sequencer
        .append(vec![entry(8, redact(&[(0, 2)], 4))])
        .await
        .unwrap();
    assert_eq!(redacted(&store, 5).await, vec![0, 1]);

    // Nothing tells a new writer what changed before it opened the log.
    drop(sequencer);
    task.await.unwrap();
    let (sequencer, task) = self::sequencer(&path).await;
    let stale = sequencer.append(vec![entry(9, redact(&[(2, 3)], 4))]);
    assert_eq!(refusal(stale.await), Refusal::HoldsChanged);
    sequencer
        .append(vec![entry(10, redact(&[(2, 3)], 5))])
        .await
        .unwrap();
    assert_eq!(redacted(&store, 6).await, vec![0, 1, 2]);
    drop(sequencer);
    task.await.unwrap();
}

/// An issuance report (its bytes do not matter here) of `jti` by alice.
fn report(jti: &str) -> PreparedEntry {
    let leaf = format!("report {jti}").into_bytes();
    PreparedEntry {
        leaf_hash: leaf_hash(&leaf),
        leaf,
        logged_at: 1,
        kind: EntryKind::Issuance(IssuanceKey {
            jti: Jti::unchecked(jti),
            iss: "https://iam/".into(),
            sub: "alice".into(),
            vo: Vo::unchecked("atlas"),
            client_id: None,
            refresh_jti: None,
        }),
    }
}

/// Reports checked for redacted issuances before a redaction of one of them that was logged
/// since (in an earlier batch, or earlier in the same batch) are refused, none of the job
/// appended, and admitted once checked after it; reports the redaction did not touch go on;
/// a writer that took up the log, not knowing what was redacted before, refuses whatever
/// was checked before.
#[tokio::test]
async fn reports_checked_before_a_redaction_logged_since_are_refused() {
    let (_dir, store, path) = store_of_alice().await;
    let (sequencer, task) = sequencer(&path).await;
    sequencer.append(vec![report("j-0")]).await.unwrap();
    let checked_at = sequencer.head().size;
    sequencer
        .append_checked(vec![report("j-1")], checked_at)
        .await
        .unwrap();
    let checked_at = sequencer.head().size;
    sequencer
        .append(vec![entry(2, redact(&[(0, 1)], checked_at))])
        .await
        .unwrap();
    let stale = sequencer.append_checked(vec![report("j-2"), report("j-0")], checked_at);
    assert_eq!(refusal(stale.await), Refusal::RedactedSince);
    assert_eq!(sequencer.head().size, 3, "nothing of the job is appended");
    let untouched = sequencer
        .append_checked(vec![report("j-2")], checked_at)
        .await
        .unwrap();
    assert_eq!(
        untouched[0].index, 3,
        "a report the redaction did not touch"
    );

    // Sent while a redaction is: with it in one batch, or after it.
    let size = sequencer.head().size;
    let (redaction, reports) = tokio::join!(
        sequencer.append(vec![entry(5, redact(&[(1, 2)], size))]),
        sequencer.append_checked(vec![report("j-4"), report("j-1")], size),
    );
    redaction.unwrap();
    assert_eq!(refusal(reports), Refusal::RedactedSince);
    assert_eq!(redacted(&store, 5).await, vec![0, 1]);

    // A writer that takes up the log does not know what was redacted before.
    let size = sequencer.head().size;
    drop(sequencer);
    task.await.unwrap();
    let (sequencer, task) = self::sequencer(&path).await;
    let stale = sequencer.append_checked(vec![report("j-4")], size - 1);
    assert_eq!(refusal(stale.await), Refusal::RedactedSince);
    sequencer
        .append_checked(vec![report("j-4")], size)
        .await
        .unwrap();
    drop(sequencer);
    task.await.unwrap();
}

/// An erasure naming a person is followed, in the same job, by a suspension of them: the
/// suspension is refused (the person's identities go at the end of the batch), and nothing
/// of the job is written.
#[tokio::test]
async fn a_change_naming_a_person_erased_earlier_in_the_batch_is_refused() {
    let (_dir, store, path) = store_of_alice().await;
    let (sequencer, task) = sequencer(&path).await;
    sequencer
        .append(vec![entry(0, StateChange::None)])
        .await
        .unwrap();
    let erase = StateChange::Redact {
        ranges: Vec::new(),
        at: 9,
        holds_at: 1,
        key: conformance::key(),
        persons: vec![(Vo::unchecked("atlas"), PersonId::unchecked("pe-a"))],
    };
    let together = sequencer.append(vec![
        entry(1, erase),
        entry(2, suspend_person("su-1", "pe-a")),
    ]);
    assert!(
        matches!(refusal(together.await), Refusal::UnknownPerson { .. }),
        "the suspension of the erased person is refused"
    );
    assert_eq!(sequencer.head().size, 1);
    assert_eq!(
        store
            .identities_of(&PersonId::unchecked("pe-a"), &Vo::unchecked("atlas"))
            .await
            .unwrap()
            .len(),
        1
    );
    drop(sequencer);
    task.await.unwrap();
}

#[tokio::test]
async fn a_redaction_past_its_own_entry_is_refused() {
    let (_dir, store, mut writer) = store().await;
    conformance::a_redaction_past_its_own_entry_is_refused(&mut writer, &store).await;
}

#[tokio::test]
async fn orphans_go_with_their_redaction() {
    let (_dir, store, mut writer) = store().await;
    conformance::orphans_go_with_their_redaction(&mut writer, &store, &store, 0).await;
}

#[tokio::test]
async fn orphans_go_with_their_redaction_over_epochs() {
    let (_dir, store, mut writer) = store().await;
    conformance::orphans_go_with_their_redaction(&mut writer, &store, &store, 4200).await;
}

/// A dictionary goes once no entry uses it (its entries all redacted), in the redaction's
/// transaction; the newest stays, used or not: the writer compresses with it.
#[tokio::test]
async fn a_dictionary_goes_once_no_entry_uses_it_but_the_newest_stays() {
    let (_dir, store, mut writer) = store().await;
    let mut log = conformance::TestLog::default();
    let resolutions = (0..3).map(|_| conformance::Written::Resolution).collect();
    log.append(&mut writer, resolutions).await.unwrap();
    // Entries 0 and 1 stored as if compressed with older dictionaries 1 and 2.
    for sql in [
        "INSERT INTO leaf_dictionaries (id, dictionary, created_at) \
         VALUES (1, x'00', 0), (2, x'00', 0), (3, x'00', 0)",
        "UPDATE entries SET dictionary = 1 WHERE idx = 0",
        "UPDATE entries SET dictionary = 2 WHERE idx = 1",
    ] {
        sqlx::query(sql).execute(&store.pool).await.unwrap();
    }
    let dictionaries = async || -> Vec<i64> {
        let rows: Vec<(i64,)> = sqlx::query_as("SELECT id FROM leaf_dictionaries ORDER BY id")
            .fetch_all(&store.pool)
            .await
            .unwrap();
        rows.into_iter().map(|(id,)| id).collect()
    };
    log.append(&mut writer, vec![conformance::redact(&[(0, 1)], 5)])
        .await
        .unwrap();
    assert_eq!(dictionaries().await, vec![2, 3]);
    log.append(&mut writer, vec![conformance::redact(&[(1, 3)], 6)])
        .await
        .unwrap();
    assert_eq!(dictionaries().await, vec![3], "the newest stays, unused");
}
