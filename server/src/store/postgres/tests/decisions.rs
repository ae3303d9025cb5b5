//! The writer's decision step over a PostgreSQL database: the rows a batch's changes name are
//! read (`state_rows`), then each change is decided against them, as on SQLite.

use tokenledger_core::ids::{PersonId, Vo};

use super::{ledger, suspension, writer};
use crate::preconditions::{LogPosition, Refusal, decide};
use crate::store::{RequestDecision, StateChange};

fn atlas() -> Vo {
    Vo::unchecked("atlas")
}

fn link(person: &str, iss: &str, sub: &str) -> StateChange {
    StateChange::Link {
        vo: atlas(),
        person_id: PersonId::unchecked(person),
        iss: iss.into(),
        sub: sub.into(),
        created_at: 1,
    }
}

fn merge(into: &str, from: &str) -> StateChange {
    StateChange::Merge {
        vo: atlas(),
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
    suspension("su-new", person)
}

fn decide_request(id: &str) -> StateChange {
    StateChange::DecideRequest {
        request_id: id.into(),
        decision: RequestDecision::Declined {
            reason: "no".into(),
        },
        decided_by: "officer".into(),
        decided_at: 1,
    }
}

/// Persons pe-a (identity alice) and pe-b (bob) in atlas, pe-gone merged into pe-a,
/// suspension su-1 active and su-2 lifted, request rq-1 pending and rq-2 declined.
#[tokio::test]
async fn changes_are_decided_against_the_stored_rows_and_those_before_them() {
    let (_db, url, pool) = ledger().await;
    for sql in [
        "INSERT INTO identities (iss, sub, vo, person_id, created_at) VALUES \
         ('https://iam/', 'alice', 'atlas', 'pe-a', 1), \
         ('https://iam/', 'bob', 'atlas', 'pe-b', 2), \
         ('https://iam/', 'bob', 'cms', 'pe-c', 2)",
        "INSERT INTO person_merges (vo, person_id, into_person, idx) \
         VALUES ('atlas', 'pe-gone', 'pe-a', 7)",
        "INSERT INTO suspensions (id, idx, vo, person_id, scope, reason_code, created_by, \
         created_at, lifted_at) VALUES \
         ('su-1', 3, 'atlas', 'pe-a', 'all', 'suspended', 'officer', 1, NULL), \
         ('su-2', 4, 'atlas', 'pe-b', 'all', 'suspended', 'officer', 1, 5)",
        "INSERT INTO suspension_requests (id, idx, site, vo, person_id, pseudonym, evidence, \
         requested_by, requested_at, status) VALUES \
         ('rq-1', 5, 'site-1', 'atlas', 'pe-a', 'ps-1', 'e', 'site', 1, 'pending'), \
         ('rq-2', 6, 'site-1', 'atlas', 'pe-b', 'ps-2', 'e', 'site', 1, 'declined')",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    let mut writer = writer(&url, 0).await;
    let jobs = [
        vec![link("pe-a", "x509", "/CN=dn")],
        vec![link("pe-b", "x509", "/CN=dn")],
        vec![link("pe-b", "https://iam/", "alice")],
        vec![link("pe-a", "https://iam/", "alice")],
        vec![merge("pe-a", "pe-gone")],
        vec![suspend("pe-nobody")],
        vec![suspend("pe-c")],
        vec![lift("su-1")],
        vec![lift("su-1")],
        vec![lift("su-2")],
        vec![lift("su-none")],
        vec![decide_request("rq-1")],
        vec![decide_request("rq-2")],
        vec![decide_request("rq-none")],
        vec![merge("pe-a", "pe-b"), link("pe-b", "x509", "/CN=other")],
        vec![merge("pe-a", "pe-b")],
        vec![suspend("pe-b")],
    ];
    let jobs: Vec<Vec<&StateChange>> = jobs.iter().map(|j| j.iter().collect()).collect();
    let decisions = decide(writer.as_mut(), &jobs, LogPosition::default())
        .await
        .unwrap();
    let merged_away = |person: &str, into: &str| Refusal::MergedAway {
        person: person.into(),
        into: into.into(),
    };
    let unknown_person = |person: &str| Refusal::UnknownPerson {
        vo: "atlas".into(),
        person: person.into(),
    };
    assert_eq!(
        decisions,
        [
            Ok(()),
            Err(Refusal::IdentityOfAnother),
            Err(Refusal::IdentityOfAnother),
            Err(Refusal::InEffect),
            Err(merged_away("pe-gone", "pe-a")),
            Err(unknown_person("pe-nobody")),
            Err(unknown_person("pe-c")),
            Ok(()),
            Err(Refusal::AlreadyLifted { id: "su-1".into() }),
            Err(Refusal::AlreadyLifted { id: "su-2".into() }),
            Err(Refusal::UnknownSuspension {
                id: "su-none".into()
            }),
            Ok(()),
            Err(Refusal::RequestDecided { id: "rq-2".into() }),
            Err(Refusal::UnknownRequest {
                id: "rq-none".into()
            }),
            Err(merged_away("pe-b", "pe-a")),
            Ok(()),
            Err(merged_away("pe-b", "pe-a")),
        ]
    );
}
