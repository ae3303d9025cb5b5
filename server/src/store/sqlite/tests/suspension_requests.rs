//! Suspension requests through the real sequencer and database: a request's row is written
//! with its entry, read back as written, decided once (the acceptance with its suspension in
//! one job), moved by a merge; of two decisions in one batch only the first is admitted, and
//! of two officers accepting at once the second writes neither its suspension nor its entries.

use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlitePool;
use tokenledger_core::blocklist::Scope;
use tokenledger_core::ids::{Jti, PersonId, Pseudonym, Site, Vo};
use tokenledger_core::merkle::leaf_hash;
use tokenledger_core::note::NoteSigner;
use tokenledger_core::suspension_request::RequestStatus;

use crate::clock::SystemClock;
use crate::metrics::Metrics;
use crate::preconditions::{LogPosition, Refusal, decide};
use crate::sequencer::{AppendError, BatchLimits, EntryKind, PreparedEntry, Sequencer};
use crate::store::sqlite::suspension_requests::{Listing, get, listed};
use crate::store::sqlite::{SqliteWriter, connection};
use crate::store::{RequestDecision, StateChange, SuspensionRecord, SuspensionRequestRecord};

/// A database with persons pe-a (alice) and pe-b (bob) of atlas.
async fn database() -> (tempfile::TempDir, std::path::PathBuf, SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let pool = connection::open(&path).await.unwrap();
    sqlx::query(
        "INSERT INTO identities (iss, sub, vo, person_id, created_at) VALUES \
         ('https://iam/', 'alice', 'atlas', 'pe-a', 1), \
         ('https://iam/', 'bob', 'atlas', 'pe-b', 2)",
    )
    .execute(&pool)
    .await
    .unwrap();
    (dir, path, pool)
}

fn request(id: &str, person: &str) -> SuspensionRequestRecord {
    SuspensionRequestRecord {
        id: id.into(),
        idx: 0,
        site: Site::unchecked("CERN-PROD"),
        vo: Vo::unchecked("atlas"),
        person_id: PersonId::unchecked(person),
        pseudonym: Pseudonym::unchecked("p1-cern"),
        token_iss: Some("https://iam/".into()),
        token_jti: Some(Jti::unchecked("j-1")),
        evidence: "ce01:\n\tport scans from job 12.0".into(),
        scope: Some(Scope::Compute),
        reason_code: Some("compromised".into()),
        not_after: Some(2_000_000_000),
        requested_by: "credential:site".into(),
        requested_at: 11,
        status: RequestStatus::Pending,
        decided_by: None,
        decided_at: None,
        decision_idx: None,
        suspension_id: None,
        decline_reason: None,
    }
}

fn suspend(id: &str, person: &str) -> StateChange {
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

fn decide_request(id: &str, decision: RequestDecision) -> StateChange {
    StateChange::DecideRequest {
        request_id: id.into(),
        decision,
        decided_by: "officer".into(),
        decided_at: 21,
    }
}

fn accepted(suspension: &str) -> RequestDecision {
    RequestDecision::Accepted {
        suspension_id: suspension.into(),
    }
}

fn declined() -> RequestDecision {
    RequestDecision::Declined {
        reason: "not enough evidence".into(),
    }
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

async fn start(path: &std::path::Path) -> (Sequencer, tokio::task::JoinHandle<()>) {
    start_batching(path, Duration::ZERO).await
}

/// A sequencer that waits up to `max_wait` for more jobs to join a batch.
async fn start_batching(
    path: &std::path::Path,
    max_wait: Duration,
) -> (Sequencer, tokio::task::JoinHandle<()>) {
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
            max_wait,
            queue_depth: 8,
        },
        Arc::new(Metrics::default()),
        Arc::new(SystemClock),
    )
    .await
    .unwrap()
}

/// The ids of the suspensions written, and the number of log entries.
async fn written(pool: &SqlitePool) -> (Vec<String>, i64) {
    let suspensions = sqlx::query_scalar("SELECT id FROM suspensions ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap();
    let entries = sqlx::query_scalar("SELECT COUNT(*) FROM entries")
        .fetch_one(pool)
        .await
        .unwrap();
    (suspensions, entries)
}

fn refusal(result: Result<Vec<crate::sequencer::Sequenced>, AppendError>) -> Refusal {
    match result {
        Err(AppendError::Refused(refusal)) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_request_is_written_read_back_decided_once_and_moved_by_a_merge() {
    let (_dir, path, pool) = database().await;
    let (sequencer, task) = start(&path).await;
    let change = |r: SuspensionRequestRecord| StateChange::RequestSuspension(Box::new(r));

    let done = sequencer
        .append(vec![entry(0, change(request("sr-1", "pe-a")))])
        .await
        .unwrap();
    let stored = get(&pool, "sr-1")
        .await
        .unwrap()
        .expect("the request's row");
    assert_eq!(stored.idx, done[0].index);
    assert_eq!(stored.status, RequestStatus::Pending);
    assert_eq!(stored.evidence, "ce01:\n\tport scans from job 12.0");
    assert_eq!(stored.scope, Some(Scope::Compute));
    assert_eq!(
        (stored.reason_code.as_deref(), stored.not_after),
        (Some("compromised"), Some(2_000_000_000))
    );
    assert_eq!(
        (stored.token_iss.as_deref(), stored.token_jti.as_deref()),
        (Some("https://iam/"), Some("j-1"))
    );
    let unknown = sequencer
        .append(vec![entry(1, change(request("sr-2", "pe-nobody")))])
        .await;
    assert!(matches!(refusal(unknown), Refusal::UnknownPerson { .. }));
    assert!(get(&pool, "sr-2").await.unwrap().is_none());

    // The acceptance and its suspension are one job: both written, in order.
    let done = sequencer
        .append(vec![
            entry(2, suspend("su-1", "pe-a")),
            entry(3, decide_request("sr-1", accepted("su-1"))),
        ])
        .await
        .unwrap();
    assert_eq!(done[1].index, done[0].index + 1);
    let again = sequencer
        .append(vec![entry(4, decide_request("sr-1", declined()))])
        .await;
    assert_eq!(
        refusal(again),
        Refusal::RequestDecided { id: "sr-1".into() }
    );
    let unknown = sequencer
        .append(vec![entry(5, decide_request("sr-9", declined()))])
        .await;
    assert_eq!(
        refusal(unknown),
        Refusal::UnknownRequest { id: "sr-9".into() }
    );
    let stored = get(&pool, "sr-1").await.unwrap().unwrap();
    assert_eq!(stored.status, RequestStatus::Accepted);
    assert_eq!(stored.suspension_id.as_deref(), Some("su-1"));
    assert_eq!(stored.decision_idx, Some(done[1].index));
    assert_eq!(
        (stored.decided_by.as_deref(), stored.decided_at),
        (Some("officer"), Some(21))
    );
    assert_eq!(stored.decline_reason, None);

    // A refused acceptance (its person merged away) leaves the request pending.
    sequencer
        .append(vec![
            entry(6, change(request("sr-3", "pe-a"))),
            entry(
                7,
                StateChange::Merge {
                    vo: Vo::unchecked("atlas"),
                    into: PersonId::unchecked("pe-b"),
                    from: PersonId::unchecked("pe-a"),
                },
            ),
        ])
        .await
        .unwrap();
    let before = written(&pool).await;
    let merged_away = sequencer
        .append(vec![
            entry(8, suspend("su-2", "pe-a")),
            entry(9, decide_request("sr-3", accepted("su-2"))),
        ])
        .await;
    assert!(matches!(refusal(merged_away), Refusal::MergedAway { .. }));
    assert_eq!(
        written(&pool).await,
        before,
        "neither the suspension su-2 nor an entry"
    );
    assert!(!before.0.contains(&"su-2".to_string()));
    let moved = get(&pool, "sr-3").await.unwrap().unwrap();
    assert_eq!(moved.status, RequestStatus::Pending);
    assert_eq!(moved.person_id, "pe-b", "a merge moves the request");

    sequencer
        .append(vec![entry(10, decide_request("sr-3", declined()))])
        .await
        .unwrap();
    let declined = get(&pool, "sr-3").await.unwrap().unwrap();
    assert_eq!(declined.status, RequestStatus::Declined);
    assert_eq!(
        declined.decline_reason.as_deref(),
        Some("not enough evidence")
    );
    assert_eq!(declined.suspension_id, None);

    let ids = |rows: Vec<SuspensionRequestRecord>| -> Vec<String> {
        rows.into_iter().map(|r| r.id).collect()
    };
    let to_vo = |status| listed(&pool, Listing::ToVo, "atlas", status);
    assert!(
        to_vo(Some(RequestStatus::Pending))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ids(to_vo(Some(RequestStatus::Declined)).await.unwrap()),
        ["sr-3"]
    );
    assert_eq!(ids(to_vo(None).await.unwrap()).len(), 2);
    let of_site = listed(&pool, Listing::OfSite, "CERN-PROD", None);
    assert_eq!(ids(of_site.await.unwrap()).len(), 2);
    assert!(
        listed(&pool, Listing::OfSite, "RAL-LCG2", None)
            .await
            .unwrap()
            .is_empty()
    );
    drop(sequencer);
    task.await.unwrap();
}

#[tokio::test]
async fn of_two_decisions_in_one_batch_only_the_first_is_admitted() {
    let (_dir, path, pool) = database().await;
    sqlx::query(
        "INSERT INTO suspension_requests (id, idx, site, vo, person_id, pseudonym, evidence, \
         requested_by, requested_at, status) VALUES \
         ('sr-1', 0, 'CERN-PROD', 'atlas', 'pe-a', 'p1-x', 'seen', 'site', 1, 'pending'), \
         ('sr-2', 1, 'CERN-PROD', 'atlas', 'pe-a', 'p1-x', 'seen', 'site', 2, 'declined')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mut writer = SqliteWriter::open(&path, Default::default(), 0)
        .await
        .unwrap();
    let jobs = [
        vec![
            suspend("su-1", "pe-a"),
            decide_request("sr-1", accepted("su-1")),
        ],
        vec![decide_request("sr-1", declined())],
        vec![
            suspend("su-2", "pe-a"),
            decide_request("sr-1", accepted("su-2")),
        ],
        vec![decide_request("sr-2", declined())],
        vec![decide_request("sr-3", declined())],
    ];
    let jobs: Vec<Vec<&StateChange>> = jobs.iter().map(|j| j.iter().collect()).collect();
    assert_eq!(
        decide(&mut writer, &jobs, LogPosition::default())
            .await
            .unwrap(),
        [
            Ok(()),
            Err(Refusal::RequestDecided { id: "sr-1".into() }),
            Err(Refusal::RequestDecided { id: "sr-1".into() }),
            Err(Refusal::RequestDecided { id: "sr-2".into() }),
            Err(Refusal::UnknownRequest { id: "sr-3".into() }),
        ]
    );
}

#[tokio::test]
async fn of_two_officers_accepting_at_once_the_second_writes_nothing() {
    let (_dir, path, pool) = database().await;
    // Jobs sent together are decided in one batch (or one after the other: the same answers).
    let (sequencer, task) = start_batching(&path, Duration::from_millis(200)).await;
    let change = StateChange::RequestSuspension(Box::new(request("sr-1", "pe-a")));
    sequencer.append(vec![entry(0, change)]).await.unwrap();
    let (no_suspension, entries) = written(&pool).await;
    assert!(no_suspension.is_empty());

    let accept = |n: usize, suspension: &str| {
        vec![
            entry(n, suspend(suspension, "pe-a")),
            entry(n + 1, decide_request("sr-1", accepted(suspension))),
        ]
    };
    let (first, second) = tokio::join!(
        sequencer.append(accept(1, "su-1")),
        sequencer.append(accept(3, "su-2")),
    );
    let done = first.expect("the first acceptance is admitted");
    assert_eq!(
        refusal(second),
        Refusal::RequestDecided { id: "sr-1".into() }
    );
    assert_eq!(
        written(&pool).await,
        (vec!["su-1".to_string()], entries + 2),
        "only the first acceptance and its suspension are written"
    );
    let stored = get(&pool, "sr-1").await.unwrap().unwrap();
    assert_eq!(stored.suspension_id.as_deref(), Some("su-1"));
    assert_eq!(stored.decision_idx, Some(done[1].index));
    drop(sequencer);
    task.await.unwrap();
}
