//! Retention runs through the real sequencer and database: a run appends bounded
//! `redaction` entries in a row until nothing is due; a pending suspension request holds its
//! person, a client suspension the sightings of the client's tokens.

use std::sync::Arc;
use std::time::Duration;

use tokenledger_core::blocklist::Scope;
use tokenledger_core::entry::{EntryBody, Issuance, ReportContext, Sighting, Source};
use tokenledger_core::ids::{Jti, Pseudonym, Site, Vo};
use tokenledger_core::note::NoteSigner;
use tokenledger_core::pseudonym::LedgerSecret;
use tokenledger_core::retention::RetentionPolicy;
use tokenledger_core::suspension_request::{RequestStatus, SuspensionRequest};

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::sequencer::{BatchLimits, EntryKind, PreparedEntry};
use crate::service::Ledger;
use crate::service::pseudonyms::Pseudonyms;
use crate::service::retention::run_once;
use crate::store::conformance::StoppedAt;
use crate::store::sqlite::SqliteStore;
use crate::store::{
    IssuanceKey, LedgerReader, LogRecord, Registry, StateChange, SuspensionRecord,
    SuspensionRequestRecord,
};
use crate::writer_role::{RoleKeeper, SequencerSetup};

const ISS: &str = "https://iam/";
/// Long past every default period of entries logged near 0.
const NOW: i64 = 100_000_000_000_000_000;

/// The issuance of `jti` to `sub` in atlas, logged at `logged_at` (unix microseconds).
pub(super) fn issuance(logged_at: i64, jti: &str, sub: &str) -> PreparedEntry {
    let claims = serde_json::json!({"iss": ISS, "jti": jti, "sub": sub});
    let serde_json::Value::Object(claims) = claims else {
        unreachable!("an object")
    };
    let ctx = ReportContext {
        source: Source::Claims,
        vo: "atlas".into(),
        grant_type: None,
        parent_jti: None,
        refresh_jti: None,
        token_sha256: None,
        feed: None,
    };
    let issuance = Issuance::from_claims(claims, ctx).unwrap();
    let key = IssuanceKey::of(&issuance);
    PreparedEntry::new(
        logged_at,
        EntryBody::Issuance(Box::new(issuance)),
        EntryKind::Issuance(key),
    )
    .unwrap()
}

/// A ledger over a fresh database, its writer, at [`NOW`]; the keeper holds the role.
pub(super) async fn ledger() -> (tempfile::TempDir, Ledger, RoleKeeper) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = SqliteStore::open(&path, Default::default()).await.unwrap();
    let lease = Arc::new(store.lease(&path, 0));
    let clock: Arc<dyn Clock> = Arc::new(StoppedAt(NOW));
    let setup = SequencerSetup {
        signer: NoteSigner::from_seed("test/log", [5; 32]).unwrap(),
        origin: "test/log".into(),
        limits: BatchLimits {
            max_batch: 100,
            max_wait: Duration::ZERO,
            queue_depth: 8,
        },
        metrics: Arc::new(Metrics::default()),
        clock: clock.clone(),
    };
    let registry: Arc<dyn Registry> = Arc::new(store.clone());
    let reader: Arc<dyn LedgerReader> = Arc::new(store);
    let keeper = RoleKeeper::start(lease, "test".into(), reader.clone(), setup)
        .await
        .unwrap();
    let ledger = Ledger {
        reader,
        role: keeper.role(),
        pseudonyms: Pseudonyms::new(LedgerSecret::from_bytes([7; 32]), registry, clock.clone()),
        clock,
    };
    (dir, ledger, keeper)
}

/// Indexes of the redacted entries below `end`.
pub(super) async fn redacted(ledger: &Ledger, end: u64) -> Vec<u64> {
    ledger
        .reader
        .entries(0, end)
        .await
        .unwrap()
        .iter()
        .filter(|r| matches!(r, LogRecord::Redacted(_)))
        .map(LogRecord::index)
        .collect()
}

/// With at most 3 entries a `redaction` entry, 7 due entries take three in a row; the next
/// run starts at the first entry left (the last `redaction` entry, not due).
#[tokio::test]
async fn a_run_appends_bounded_redaction_entries_until_nothing_is_due() {
    let (_dir, ledger, _keeper) = ledger().await;
    let sequencer = ledger.role.sequencer().unwrap();
    let entries = (0..7)
        .map(|n| issuance(n + 1, &format!("j-{n}"), "alice"))
        .collect();
    sequencer.append(entries).await.unwrap();
    let atlas = [Vo::unchecked("atlas")];
    let policy = RetentionPolicy::default();

    let outcome = run_once(&ledger, &policy, &atlas, 0, 3).await.unwrap();
    assert_eq!(outcome.logged, vec![7, 8, 9]);
    assert_eq!(outcome.redacted, 7);
    assert_eq!(outcome.next_from, 7);
    assert_eq!(redacted(&ledger, 10).await, (0..7).collect::<Vec<_>>());

    let again = run_once(&ledger, &policy, &atlas, outcome.next_from, 3)
        .await
        .unwrap();
    assert_eq!(
        (again.logged, again.redacted, again.next_from),
        (vec![], 0, 7)
    );
}

/// A pending suspension request holds the person it names (every issuance of theirs, not
/// only the token named) as a suspension would; another person's are redacted.
#[tokio::test]
async fn a_pending_request_holds_its_persons_issuances() {
    let (_dir, ledger, _keeper) = ledger().await;
    let sequencer = ledger.role.sequencer().unwrap();
    let atlas = Vo::unchecked("atlas");
    sequencer
        .append(vec![
            issuance(1, "j-a1", "alice"),
            issuance(2, "j-a2", "alice"),
            issuance(3, "j-b1", "bob"),
        ])
        .await
        .unwrap();
    let person = ledger
        .reader
        .person_of(ISS, "alice", &atlas)
        .await
        .unwrap()
        .unwrap();
    let body = EntryBody::SuspensionRequest(Box::new(SuspensionRequest {
        request_id: "sr-1".into(),
        site: "CERN-PROD".into(),
        vo: "atlas".into(),
        person_id: person.to_string(),
        pseudonym: "p1-cern".into(),
        token_iss: Some(ISS.into()),
        token_jti: Some("j-a1".into()),
        evidence: "port scans".into(),
        scope: None,
        reason_code: None,
        not_after: None,
        requested_by: "credential:site".into(),
    }));
    let record = SuspensionRequestRecord {
        id: "sr-1".into(),
        idx: 0,
        site: Site::unchecked("CERN-PROD"),
        vo: atlas.clone(),
        person_id: person,
        pseudonym: Pseudonym::unchecked("p1-cern"),
        token_iss: Some(ISS.into()),
        token_jti: Some(Jti::unchecked("j-a1")),
        evidence: "port scans".into(),
        scope: None,
        reason_code: None,
        not_after: None,
        requested_by: "credential:site".into(),
        requested_at: 4,
        status: RequestStatus::Pending,
        decided_by: None,
        decided_at: None,
        decision_idx: None,
        suspension_id: None,
        decline_reason: None,
    };
    let change = StateChange::RequestSuspension(Box::new(record));
    let entry = PreparedEntry::new(NOW, body, EntryKind::State(change)).unwrap();
    sequencer.append(vec![entry]).await.unwrap();

    let outcome = run_once(&ledger, &RetentionPolicy::default(), &[atlas], 0, 3)
        .await
        .unwrap();
    assert_eq!((outcome.redacted, outcome.next_from), (1, 0));
    assert_eq!(redacted(&ledger, 5).await, vec![2]);
}

/// The sighting of `jti` (of [`ISS`]) at CERN-PROD, logged at `logged_at`.
fn sighting(logged_at: i64, jti: &str) -> PreparedEntry {
    let change = StateChange::Sighting {
        site: Site::unchecked("CERN-PROD"),
        vo: Vo::unchecked("atlas"),
        iss: ISS.into(),
        jti: Jti::unchecked(jti),
    };
    PreparedEntry::new(logged_at, sighting_body(jti), EntryKind::State(change)).unwrap()
}

fn sighting_body(jti: &str) -> EntryBody {
    EntryBody::Sighting(Sighting {
        site: "CERN-PROD".into(),
        vo: "atlas".into(),
        iss: ISS.into(),
        jti: jti.into(),
        seen_at: 1,
        host: None,
        job_id: None,
        reported_by: "credential:site".into(),
    })
}

/// The issuance of `jti` to alice by client `pilot`, issued at `iat` (unix seconds).
fn pilot_issuance(logged_at: i64, jti: &str, iat: Option<i64>) -> PreparedEntry {
    let mut claims =
        serde_json::json!({"iss": ISS, "jti": jti, "sub": "alice", "client_id": "pilot"});
    if let Some(iat) = iat {
        claims["iat"] = iat.into();
    }
    let serde_json::Value::Object(claims) = claims else {
        unreachable!("an object")
    };
    let ctx = ReportContext {
        source: Source::Claims,
        vo: "atlas".into(),
        grant_type: None,
        parent_jti: None,
        refresh_jti: None,
        token_sha256: None,
        feed: None,
    };
    let issued = Issuance::from_claims(claims, ctx).unwrap();
    assert_eq!(issued.client_id.as_deref(), Some("pilot"));
    let key = IssuanceKey::of(&issued);
    PreparedEntry::new(
        logged_at,
        EntryBody::Issuance(Box::new(issued)),
        EntryKind::Issuance(key),
    )
    .unwrap()
}

/// An active VO-wide suspension of client `pilot`, with the cut-off `issued_before`. Logged
/// at NOW, past what a run redacts: its body does not matter.
fn pilot_suspension(issued_before: Option<i64>) -> PreparedEntry {
    PreparedEntry::new(
        NOW,
        sighting_body("j-p"),
        EntryKind::State(StateChange::Suspend(Box::new(SuspensionRecord {
            id: "su-c".into(),
            idx: 0,
            site: None,
            vo: Vo::unchecked("atlas"),
            person_id: None,
            token_iss: None,
            token_jti: None,
            client_iss: Some(ISS.into()),
            client_id: Some("pilot".into()),
            scope: Scope::All,
            reason_code: "compromised".into(),
            created_by: "officer".into(),
            created_at: 1,
            not_after: None,
            issued_before,
            lifted_at: None,
        }))),
    )
    .unwrap()
}

/// A client suspension holds the client's issuances and the sightings of its tokens;
/// another client's token and its sighting are redacted.
#[tokio::test]
async fn a_client_suspension_holds_the_sightings_of_its_tokens() {
    let (_dir, ledger, _keeper) = ledger().await;
    let sequencer = ledger.role.sequencer().unwrap();
    sequencer
        .append(vec![
            pilot_issuance(1, "j-p", None),
            issuance(2, "j-o", "bob"),
            sighting(3, "j-p"),
            sighting(4, "j-o"),
            pilot_suspension(None),
        ])
        .await
        .unwrap();

    let atlas = [Vo::unchecked("atlas")];
    let outcome = run_once(&ledger, &RetentionPolicy::default(), &atlas, 0, 3)
        .await
        .unwrap();
    assert_eq!((outcome.redacted, outcome.next_from), (2, 0));
    assert_eq!(redacted(&ledger, 5).await, vec![1, 3]);
}

/// A client suspension with a cut-off holds only the client's tokens issued before it (and
/// one that does not say when it was issued), with their sightings: a token issued at or
/// after the cut-off, and its sighting, are redacted.
#[tokio::test]
async fn a_client_cut_off_holds_only_the_tokens_issued_before_it() {
    let (_dir, ledger, _keeper) = ledger().await;
    let sequencer = ledger.role.sequencer().unwrap();
    sequencer
        .append(vec![
            pilot_issuance(1, "j-p", Some(50)),
            pilot_issuance(2, "j-late", Some(100)),
            pilot_issuance(3, "j-undated", None),
            sighting(4, "j-p"),
            sighting(5, "j-late"),
            pilot_suspension(Some(100)),
        ])
        .await
        .unwrap();

    let atlas = [Vo::unchecked("atlas")];
    run_once(&ledger, &RetentionPolicy::default(), &atlas, 0, 10)
        .await
        .unwrap();
    assert_eq!(redacted(&ledger, 6).await, vec![1, 4]);
}
