//! Suspensions of persons, tokens and clients (with not-before cut-offs), read back; the table
//! refuses a suspension of both a person and a client, or of neither.

use tokenledger_core::blocklist::Scope;
use tokenledger_core::ids::{Site, Vo};

use crate::store::LedgerReader;

#[tokio::test]
async fn suspensions_of_persons_tokens_and_clients_are_read_back() {
    let (_db, store) = super::store().await;
    let pool = store.pool();
    sqlx::query(
        "INSERT INTO suspensions (id, idx, site, vo, person_id, token_iss, token_jti, scope,
                                  reason_code, created_by, created_at, not_after, lifted_at,
                                  lifted_by, lift_idx)
         VALUES ('su-1', 4, 'CERN-PROD', 'atlas', 'pe-1', NULL, NULL, 'compute', 'misuse',
                 'c1', 10, 99, 20, 'c2', 6),
                ('su-2', 5, NULL, 'atlas', 'pe-2', 'https://iam/', 'j-1', 'all', 'leaked',
                 'c1', 11, NULL, NULL, NULL, NULL),
                ('su-4', 8, NULL, 'cms', 'pe-3', NULL, NULL, 'all', 'leaked',
                 'c1', 14, NULL, NULL, NULL, NULL)",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO suspensions (id, idx, site, vo, person_id, client_iss, client_id, scope,
                                  reason_code, created_by, created_at, issued_before)
         VALUES ('su-3', 7, NULL, 'atlas', NULL, 'https://iam/', 'rucio', 'all', 'misuse',
                 'c1', 12, 1000)",
    )
    .execute(&pool)
    .await
    .unwrap();
    // Never both a person and a client, never neither (a client without its issuer is the
    // other CHECK's case, so neither has no client_iss either).
    let iam = Some("https://iam/");
    for (person, client_iss, client) in [(Some("pe-1"), iam, Some("rucio")), (None, None, None)] {
        let refused = sqlx::query(
            "INSERT INTO suspensions (id, idx, vo, person_id, client_iss, client_id, scope,
                                      reason_code, created_by, created_at)
             VALUES ('su-bad', 8, 'atlas', $1, $2, $3, 'all', 'x', 'c1', 13)",
        )
        .bind(person)
        .bind(client_iss)
        .bind(client)
        .execute(&pool)
        .await;
        let refused = refused.expect_err(&format!("{person:?} {client:?}"));
        assert!(
            refused.to_string().contains("check constraint"),
            "{person:?} {client:?}: {refused}"
        );
    }
    let lifted = store.suspension("su-1").await.unwrap().unwrap();
    assert_eq!(lifted.person_id.as_deref(), Some("pe-1"));
    assert_eq!(
        (lifted.scope, lifted.not_after, lifted.lifted_at),
        (Scope::Compute, Some(99), Some(20))
    );
    assert_eq!((lifted.target(), lifted.issued_before), ("person", None));
    assert_eq!(lifted.site.as_deref(), Some("CERN-PROD"));
    let token = store.suspension("su-2").await.unwrap().unwrap();
    assert_eq!(
        (token.target(), token.token_jti.as_deref()),
        ("token", Some("j-1"))
    );
    let client = store.suspension("su-3").await.unwrap().unwrap();
    assert_eq!(client.target(), "client");
    assert_eq!(
        (client.person_id, client.client_id.as_deref()),
        (None, Some("rucio"))
    );
    assert_eq!((client.issued_before, client.idx), (Some(1000), 7));
    assert!(store.suspension("su-none").await.unwrap().is_none());

    let ids = |listed: Vec<crate::store::SuspensionRecord>| {
        listed.into_iter().map(|s| s.id).collect::<Vec<_>>()
    };
    let atlas = Vo::unchecked("atlas");
    assert_eq!(
        ids(store.suspensions_for_vo(&atlas).await.unwrap()),
        ["su-3", "su-2", "su-1"]
    );
    let cern = Site::unchecked("CERN-PROD");
    assert_eq!(
        ids(store
            .suspensions_for_site(&cern, std::slice::from_ref(&atlas))
            .await
            .unwrap()),
        ["su-3", "su-2", "su-1"],
        "its own and the VO-wide ones of its VOs"
    );
    assert_eq!(
        ids(store.suspensions_for_site(&cern, &[]).await.unwrap()),
        ["su-1"]
    );
    let other = Site::unchecked("RAL");
    assert_eq!(
        ids(store
            .suspensions_for_site(&other, &[Vo::unchecked("cms")])
            .await
            .unwrap()),
        ["su-4"]
    );
}
