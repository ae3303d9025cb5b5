//! The writer's decision step over a real database: the rows a batch's changes name are read,
//! then each change is decided against them and the changes admitted before it.

use tokenledger_core::blocklist::Scope;
use tokenledger_core::ids::{PersonId, Vo};

use crate::preconditions::{LogPosition, Refusal, decide};
use crate::store::sqlite::{SqliteWriter, connection};
use crate::store::{StateChange, SuspensionRecord};

/// A database holding: person pe-a (identity alice) and pe-b (identity bob) in atlas,
/// pe-gone merged into pe-a, suspension su-1 active and su-2 lifted.
async fn database() -> (tempfile::TempDir, SqliteWriter) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let pool = connection::open(&path).await.unwrap();
    for sql in [
        "INSERT INTO identities (iss, sub, vo, person_id, created_at) VALUES \
         ('https://iam/', 'alice', 'atlas', 'pe-a', 1), \
         ('https://iam/', 'bob', 'atlas', 'pe-b', 2)",
        "INSERT INTO person_merges (vo, person_id, into_person, idx) \
         VALUES ('atlas', 'pe-gone', 'pe-a', 7)",
        "INSERT INTO suspensions (id, idx, vo, person_id, scope, reason_code, created_by, \
         created_at, lifted_at) VALUES \
         ('su-1', 3, 'atlas', 'pe-a', 'all', 'suspended', 'officer', 1, NULL), \
         ('su-2', 4, 'atlas', 'pe-b', 'all', 'suspended', 'officer', 1, 5)",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;
    let writer = SqliteWriter::open(&path, Default::default(), 0)
        .await
        .unwrap();
    (dir, writer)
}

fn link(person: &str, sub: &str) -> StateChange {
    StateChange::Link {
        vo: Vo::unchecked("atlas"),
        person_id: PersonId::unchecked(person),
        iss: "x509".into(),
        sub: sub.into(),
        created_at: 1,
    }
}

fn merge(into: &str, from: &str) -> StateChange {
    StateChange::Merge {
        vo: Vo::unchecked("atlas"),
        into: PersonId::unchecked(into),
        from: PersonId::unchecked(from),
    }
}

fn lift(id: &str) -> StateChange {
    StateChange::Lift {
        suspension_id: id.into(),
        lifted_by: "officer".into(),
        lifted_at: 1,
    }
}

fn suspend(person: &str) -> StateChange {
    StateChange::Suspend(Box::new(SuspensionRecord {
        id: "su-new".into(),
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

/// Decides one batch of jobs, each a list of changes.
async fn decide_jobs(jobs: &[Vec<StateChange>]) -> Vec<Result<(), Refusal>> {
    let (_dir, mut conn) = database().await;
    let jobs: Vec<Vec<&StateChange>> = jobs.iter().map(|j| j.iter().collect()).collect();
    decide(&mut conn, &jobs, LogPosition::default())
        .await
        .unwrap()
}

fn merged_away(person: &str, into: &str) -> Refusal {
    Refusal::MergedAway {
        person: person.into(),
        into: into.into(),
    }
}

#[tokio::test]
async fn the_first_of_two_links_of_one_identity_wins_and_a_repeat_is_in_effect() {
    let decisions = decide_jobs(&[
        vec![link("pe-a", "/CN=dn")],
        vec![link("pe-b", "/CN=dn")],
        vec![link("pe-a", "/CN=dn")],
        vec![link("pe-b", "/CN=other")],
    ])
    .await;
    assert_eq!(
        decisions,
        [
            Ok(()),
            Err(Refusal::IdentityOfAnother),
            Err(Refusal::InEffect),
            Ok(())
        ]
    );
}

#[tokio::test]
async fn identities_in_the_database_are_taken_or_in_effect() {
    let alice = |person: &str| StateChange::Link {
        vo: Vo::unchecked("atlas"),
        person_id: PersonId::unchecked(person),
        iss: "https://iam/".into(),
        sub: "alice".into(),
        created_at: 1,
    };
    let decisions = decide_jobs(&[vec![alice("pe-b")], vec![alice("pe-a")]]).await;
    assert_eq!(
        decisions,
        [Err(Refusal::IdentityOfAnother), Err(Refusal::InEffect)]
    );
}

#[tokio::test]
async fn of_two_crossed_merges_the_second_finds_its_person_merged_away() {
    let decisions = decide_jobs(&[vec![merge("pe-a", "pe-b")], vec![merge("pe-b", "pe-a")]]).await;
    assert_eq!(decisions, [Ok(()), Err(merged_away("pe-b", "pe-a"))]);
    let decisions = decide_jobs(&[vec![merge("pe-a", "pe-b")], vec![merge("pe-a", "pe-b")]]).await;
    assert_eq!(decisions, [Ok(()), Err(merged_away("pe-b", "pe-a"))]);
}

#[tokio::test]
async fn a_merge_moves_the_identities_later_links_are_decided_against() {
    let decisions = decide_jobs(&[
        vec![link("pe-b", "/CN=dn")],
        vec![merge("pe-a", "pe-b")],
        vec![link("pe-a", "/CN=dn")],
        vec![link("pe-b", "/CN=new")],
        vec![suspend("pe-b")],
        vec![suspend("pe-a")],
    ])
    .await;
    assert_eq!(
        decisions,
        [
            Ok(()),
            Ok(()),
            Err(Refusal::InEffect),
            Err(merged_away("pe-b", "pe-a")),
            Err(merged_away("pe-b", "pe-a")),
            Ok(())
        ]
    );
}

#[tokio::test]
async fn persons_merged_before_or_never_seen_are_refused_and_told_apart() {
    let decisions = decide_jobs(&[
        vec![merge("pe-a", "pe-gone")],
        vec![link("pe-gone", "/CN=dn")],
        vec![suspend("pe-nobody")],
        vec![merge("pe-a", "pe-a")],
    ])
    .await;
    assert_eq!(
        decisions,
        [
            Err(merged_away("pe-gone", "pe-a")),
            Err(merged_away("pe-gone", "pe-a")),
            Err(Refusal::UnknownPerson {
                vo: "atlas".into(),
                person: "pe-nobody".into()
            }),
            Err(Refusal::SelfMerge)
        ]
    );
    assert!(!decisions[0].clone().unwrap_err().is_not_found());
    assert!(decisions[2].clone().unwrap_err().is_not_found());
}

#[tokio::test]
async fn a_suspension_is_lifted_once() {
    let decisions = decide_jobs(&[
        vec![lift("su-1")],
        vec![lift("su-1")],
        vec![lift("su-2")],
        vec![lift("su-none")],
    ])
    .await;
    let already = |id: &str| Refusal::AlreadyLifted { id: id.into() };
    assert_eq!(
        decisions,
        [
            Ok(()),
            Err(already("su-1")),
            Err(already("su-2")),
            Err(Refusal::UnknownSuspension {
                id: "su-none".into()
            })
        ]
    );
}

#[tokio::test]
async fn a_job_is_admitted_whole_or_refused_without_effect() {
    let decisions = decide_jobs(&[
        vec![lift("su-1"), merge("pe-a", "pe-b"), link("pe-b", "/CN=dn")],
        vec![lift("su-1"), link("pe-b", "/CN=dn")],
        vec![merge("pe-a", "pe-b")],
        vec![StateChange::None],
    ])
    .await;
    assert_eq!(
        decisions,
        [Err(merged_away("pe-b", "pe-a")), Ok(()), Ok(()), Ok(())]
    );
}

#[tokio::test]
async fn a_client_suspension_names_no_person_and_is_admitted() {
    let StateChange::Suspend(person) = suspend("pe-nobody") else {
        unreachable!("suspend builds a suspension")
    };
    let client = StateChange::Suspend(Box::new(SuspensionRecord {
        person_id: None,
        client_iss: Some("https://iam/".into()),
        client_id: Some("rucio".into()),
        ..*person
    }));
    let decisions = decide_jobs(&[vec![client], vec![suspend("pe-nobody")]]).await;
    assert_eq!(decisions[0], Ok(()));
    assert!(decisions[1].is_err(), "a person is still decided");
}
