//! Migration 0012: suspensions of clients and not-before cut-offs in the rebuilt table.

use sqlx::SqlitePool;
use tokenledger_core::blocklist::Scope;
use tokenledger_core::ids::Vo;

use crate::store::LedgerReader;
use crate::store::sqlite::{SqliteStore, connection};

/// A database at migration 0011, before client suspensions, holding one suspension of a
/// person (lifted) and one of a token.
async fn old_database(path: &std::path::Path) -> SqlitePool {
    let pool = super::database_at_migration(path, 11).await;
    sqlx::query(
        "INSERT INTO suspensions (id, idx, site, vo, person_id, token_iss, token_jti, scope,
                                  reason_code, created_by, created_at, not_after, lifted_at,
                                  lifted_by, lift_idx)
         VALUES ('su-1', 4, 'CERN-PROD', 'atlas', 'pe-1', NULL, NULL, 'compute', 'misuse',
                 'c1', 10, 99, 20, 'c2', 6),
                ('su-2', 5, NULL, 'atlas', 'pe-2', 'https://iam/', 'j-1', 'all', 'leaked',
                 'c1', 11, NULL, NULL, NULL, NULL)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool
}

#[tokio::test]
async fn the_migration_keeps_every_suspension_and_takes_clients_and_cut_offs() {
    let dir = tempfile::tempdir().unwrap();
    let pool = old_database(&dir.path().join("t.db")).await;
    connection::MIGRATOR.run(&pool).await.unwrap();
    sqlx::query(
        "INSERT INTO suspensions (id, idx, site, vo, person_id, client_iss, client_id, scope,
                                  reason_code, created_by, created_at, issued_before)
         VALUES ('su-3', 7, NULL, 'atlas', NULL, 'https://iam/', 'rucio', 'all', 'misuse',
                 'c1', 12, 1000)",
    )
    .execute(&pool)
    .await
    .unwrap();
    // Never both a person and a client, never neither.
    for (person, client) in [(Some("pe-1"), Some("rucio")), (None, None)] {
        let refused = sqlx::query(
            "INSERT INTO suspensions (id, idx, vo, person_id, client_iss, client_id, scope,
                                      reason_code, created_by, created_at)
             VALUES ('su-bad', 8, 'atlas', ?, 'https://iam/', ?, 'all', 'x', 'c1', 13)",
        )
        .bind(person)
        .bind(client)
        .execute(&pool)
        .await;
        assert!(refused.is_err(), "{person:?} {client:?}");
    }
    let store = SqliteStore::over(pool);
    let lifted = store.suspension("su-1").await.unwrap().unwrap();
    assert_eq!(lifted.person_id.as_deref(), Some("pe-1"));
    assert_eq!(
        (lifted.scope, lifted.not_after, lifted.lifted_at),
        (Scope::Compute, Some(99), Some(20))
    );
    assert_eq!((lifted.target(), lifted.issued_before), ("person", None));
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
    assert_eq!(client.issued_before, Some(1000));
    let listed = store
        .suspensions_for_vo(&Vo::unchecked("atlas"))
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["su-3", "su-2", "su-1"]
    );
}
