//! Lookups of resolution, search, timelines and the audit view over issuances, sightings,
//! suspensions and resolutions written with SQL.

use tokenledger_core::ids::{Jti, PersonId, Vo};

use super::TestLog;
use crate::store::{IssuanceFilter, LedgerReader, StoredEntry, decode_issuance};

const ISS: &str = "https://iam.example.org/";
const OTHER: &str = "https://other.example/";

fn indexes(found: Vec<StoredEntry>) -> Vec<u64> {
    found.into_iter().map(|e| e.0).collect()
}

#[tokio::test]
async fn tokens_persons_and_clients_are_found() {
    let (_db, store) = super::store().await;
    let mut log = TestLog::new(store.pool());
    let t = 1_700_000_000;
    log.issuance(ISS, "j-0", "alice", "atlas", "a", t, None)
        .await;
    log.issuance(ISS, "j-1", "alice", "atlas", "a", t + 1, Some("r-1"))
        .await;
    log.issuance(OTHER, "j-1", "bob", "cms", "a", t + 2, None)
        .await;
    log.issuance(ISS, "j-3", "alice", "atlas", "a", t + 3, Some("r-1"))
        .await;
    log.issuance(ISS, "j-4", "carol", "atlas", "a", t + 4, None)
        .await;
    // carol becomes another identity of alice's person.
    sqlx::query("UPDATE identities SET person_id = 'pe-alice' WHERE sub = 'carol'")
        .execute(&store.pool())
        .await
        .unwrap();

    let j1 = Jti::unchecked("j-1");
    assert_eq!(indexes(store.issuances_by_jti(&j1).await.unwrap()), [1, 2]);
    let found = store.issuance(OTHER, &j1).await.unwrap().unwrap();
    assert_eq!(found.0, 2);
    let issuance = decode_issuance(found.0, &found.1).unwrap();
    assert_eq!(
        (issuance.sub.as_str(), issuance.vo.as_str()),
        ("bob", "cms")
    );
    assert!(
        store
            .issuance(ISS, &Jti::unchecked("j-2"))
            .await
            .unwrap()
            .is_none()
    );

    let r1 = Jti::unchecked("r-1");
    assert_eq!(
        store
            .first_with_refresh(ISS, &r1, 4)
            .await
            .unwrap()
            .map(|e| e.0),
        Some(1)
    );
    assert!(
        store
            .first_with_refresh(ISS, &r1, 1)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .first_with_refresh(OTHER, &r1, 9)
            .await
            .unwrap()
            .is_none()
    );

    let atlas = Vo::unchecked("atlas");
    let alice = PersonId::unchecked("pe-alice");
    assert_eq!(
        store.person_of(ISS, "alice", &atlas).await.unwrap(),
        Some(alice.clone())
    );
    assert!(
        store
            .person_of(ISS, "alice", &Vo::unchecked("cms"))
            .await
            .unwrap()
            .is_none()
    );
    let both = vec![
        (ISS.to_string(), "alice".to_string()),
        (ISS.to_string(), "carol".to_string()),
    ];
    assert_eq!(store.identities_of(&alice, &atlas).await.unwrap(), both);
    assert!(
        store
            .identities_of(&PersonId::unchecked("pe-none"), &atlas)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .person_with_identities(ISS, "carol", &atlas)
            .await
            .unwrap(),
        Some((alice.clone(), both.clone()))
    );
    assert!(
        store
            .person_with_identities(ISS, "nobody", &atlas)
            .await
            .unwrap()
            .is_none()
    );

    assert_eq!(
        store.client_vos(ISS, "rucio").await.unwrap(),
        [Vo::unchecked("atlas")]
    );
    assert_eq!(
        store.client_vos(OTHER, "rucio").await.unwrap(),
        [Vo::unchecked("cms")]
    );
    assert!(store.client_vos(ISS, "fts").await.unwrap().is_empty());
    assert!(
        store
            .client_vos("https://none/", "rucio")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn scope_time_client_and_identity_filters_page_newest_first() {
    let (_db, store) = super::store().await;
    let mut log = TestLog::new(store.pool());
    let t = 1_700_000_000;
    for i in 0..1_300u64 {
        let scope = if i % 400 == 7 {
            "rare common"
        } else {
            "common"
        };
        let sub = format!("user-{}", i % 3);
        log.issuance(
            ISS,
            &format!("jti-{i}"),
            &sub,
            "atlas",
            scope,
            t + i as i64,
            None,
        )
        .await;
    }
    let atlas = Vo::unchecked("atlas");
    let filter = IssuanceFilter {
        scope: Some("rare"),
        limit: 10,
        ..IssuanceFilter::in_vo(&atlas)
    };
    assert_eq!(
        indexes(store.issuances(&filter).await.unwrap()),
        [1207, 807, 407, 7],
        "across pages of 500, newest first"
    );
    let limited = IssuanceFilter { limit: 2, ..filter };
    assert_eq!(
        indexes(store.issuances(&limited).await.unwrap()),
        [1207, 807]
    );
    let next = IssuanceFilter {
        before: Some(807),
        ..limited
    };
    assert_eq!(indexes(store.issuances(&next).await.unwrap()), [407, 7]);

    let window = IssuanceFilter {
        from: Some(t + 100),
        to: Some(t + 103),
        limit: 100,
        ..IssuanceFilter::in_vo(&atlas)
    };
    assert_eq!(
        indexes(store.issuances(&window).await.unwrap()),
        [102, 101, 100]
    );
    let user1 = [(ISS.to_string(), "user-1".to_string())];
    let person = IssuanceFilter {
        identities: Some(&user1),
        ..window
    };
    assert_eq!(indexes(store.issuances(&person).await.unwrap()), [100]);

    let newest = IssuanceFilter {
        client_id: Some("rucio"),
        limit: 3,
        ..IssuanceFilter::in_vo(&atlas)
    };
    assert_eq!(
        indexes(store.issuances(&newest).await.unwrap()),
        [1299, 1298, 1297]
    );
    let elsewhere = IssuanceFilter {
        client_id: Some("not-a-client"),
        ..newest
    };
    assert!(store.issuances(&elsewhere).await.unwrap().is_empty());
    let cms = Vo::unchecked("cms");
    assert!(
        store
            .issuances(&IssuanceFilter::in_vo(&cms))
            .await
            .unwrap()
            .is_empty()
    );
}

/// 9,000 issuances span epochs 0 to 2 of the identity index: `user-rare`'s three are found
/// across windows, newest first, paged with `before`, and make its timeline with a sighting,
/// a suspension and its lift.
#[tokio::test]
async fn identity_searches_and_timelines_cross_epochs() {
    const RARE: [u64; 3] = [10, 5_000, 8_500];
    let (_db, store) = super::store().await;
    let pool = store.pool();
    // The bulk of the log, as the writer would store it, in a few statements.
    sqlx::query("INSERT INTO issuers (id, iss) VALUES (1, $1)")
        .bind(ISS)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO clients (id, vo, client_id) VALUES (1, 'atlas', 'rucio')")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO identities (id, iss, sub, vo, person_id, created_at) VALUES
         (1, $1, 'user-0', 'atlas', 'pe-0', 0), (2, $1, 'user-1', 'atlas', 'pe-1', 0),
         (3, $1, 'user-rare', 'atlas', 'pe-rare', 0)",
    )
    .bind(ISS)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO issuances (idx, jti, issuer, identity, client)
         SELECT n, 'jti-' || n, 1,
                CASE WHEN n = ANY($1) THEN 3 ELSE 1 + n % 2 END, 1
         FROM generate_series(0, 8999) AS n",
    )
    .bind(RARE.iter().map(|n| *n as i64).collect::<Vec<_>>())
    .execute(&pool)
    .await
    .unwrap();
    let mut log = TestLog::new(pool.clone());
    let leaves: Vec<Vec<u8>> = (0..9_001)
        .map(|n| format!("entry {n}").into_bytes())
        .collect();
    log.append_all(&leaves).await;
    sqlx::query(
        "INSERT INTO sightings (idx, site, vo, iss, jti, identity)
         VALUES (8600, 'CERN-PROD', 'atlas', $1, 'jti-8500', 3)",
    )
    .bind(ISS)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO suspensions (id, idx, vo, person_id, scope, reason_code, created_by,
                                  created_at, lifted_at, lifted_by, lift_idx)
         VALUES ('su-1', 6000, 'atlas', 'pe-rare', 'all', 'x', 'c1', 5, 6, 'c2', 7000)",
    )
    .execute(&pool)
    .await
    .unwrap();

    let atlas = Vo::unchecked("atlas");
    let rare = [(ISS.to_string(), "user-rare".to_string())];
    let search = |before: Option<u64>, limit: u32| IssuanceFilter {
        identities: Some(&rare),
        before,
        limit,
        ..IssuanceFilter::in_vo(&atlas)
    };
    let found = |filter| {
        let store = store.clone();
        async move { indexes(store.issuances(&filter).await.unwrap()) }
    };
    assert_eq!(found(search(None, 10)).await, [8_500, 5_000, 10]);
    assert_eq!(found(search(None, 2)).await, [8_500, 5_000]);
    assert_eq!(found(search(Some(5_000), 2)).await, [10]);
    assert_eq!(
        found(search(Some(u64::MAX), 10)).await,
        [8_500, 5_000, 10],
        "a `before` past the log starts at its newest epoch"
    );
    let frequent = [(ISS.to_string(), "user-1".to_string())];
    let newest = IssuanceFilter {
        identities: Some(&frequent),
        client_id: Some("rucio"),
        ..search(Some(8_999), 3)
    };
    assert_eq!(found(newest).await, [8_997, 8_995, 8_993]);

    let rare_person = PersonId::unchecked("pe-rare");
    let events = store
        .timeline(&atlas, &rare_person, &rare, None, 10)
        .await
        .unwrap();
    let kinds: Vec<(&str, u64)> = events.iter().map(|e| (e.0.as_str(), e.1)).collect();
    assert_eq!(
        kinds,
        [
            ("sighting", 8_600),
            ("issuance", 8_500),
            ("lift", 7_000),
            ("suspension", 6_000),
            ("issuance", 5_000),
            ("issuance", 10)
        ]
    );
    assert_eq!(events[1].2, b"entry 8500");
    let paged = store
        .timeline(&atlas, &rare_person, &rare, Some(7_000), 2)
        .await
        .unwrap();
    assert_eq!(
        paged.iter().map(|e| e.1).collect::<Vec<_>>(),
        [6_000, 5_000]
    );
    let nobody = [(ISS.to_string(), "nobody".to_string())];
    assert!(
        store
            .timeline(&atlas, &rare_person, &nobody, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn resolutions_of_a_vo_newest_first() {
    let (_db, store) = super::store().await;
    let mut log = TestLog::new(store.pool());
    for (n, vo) in ["atlas", "cms", "atlas", "atlas"].iter().enumerate() {
        let index = log.append(format!("resolution {n}").as_bytes()).await;
        sqlx::query("INSERT INTO resolutions (idx, vo) VALUES ($1, $2)")
            .bind(index as i64)
            .bind(vo)
            .execute(&store.pool())
            .await
            .unwrap();
    }
    let atlas = Vo::unchecked("atlas");
    let all = store.resolutions(&atlas, None, 10).await.unwrap();
    assert_eq!(indexes(all.clone()), [3, 2, 0]);
    assert_eq!(all[2].1, b"resolution 0");
    assert_eq!(
        indexes(store.resolutions(&atlas, Some(3), 1).await.unwrap()),
        [2]
    );
    assert!(
        store
            .resolutions(&Vo::unchecked("lhcb"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The window query of an identity search seeks the epoch index, not the client's (every
/// issuance here is of one client, of one of 1,000 identities; a sequential scan is ruled
/// out, as on a large table).
#[tokio::test]
async fn identity_windows_seek_the_epoch_index() {
    let (_db, store) = super::store().await;
    let mut conn = store.pool().acquire().await.unwrap();
    sqlx::query(
        "INSERT INTO issuances (idx, jti, issuer, identity, client)
         SELECT n, 'jti-' || n, 1, n % 1000, 3 FROM generate_series(0, 19999) AS n",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query("ANALYZE issuances")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .unwrap();
    let sql = format!(
        "EXPLAIN {}",
        crate::store::postgres::identity_scan::window_query()
    );
    let plan: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(0i64)
        .bind(3i64)
        .bind(vec![1i64, 2])
        .bind(Some(3i64))
        .bind(10_000i64)
        .bind(50i64)
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    let plan: Vec<String> = plan.into_iter().map(|(line,)| line).collect();
    assert!(
        plan.iter()
            .any(|line| line.contains("issuances_by_identity_epoch")),
        "{plan:#?}"
    );
}
