//! Text sorts by bytes, as on SQLite, whatever the database's default collation: every TEXT
//! column is `COLLATE "C"` (migration 0002), and listings of a database whose default sorts
//! 'a' before 'B' (ICU's English) come out in byte order.

use std::sync::Arc;

use sqlx::{Connection, PgConnection};
use tokenledger_core::ids::{Site, Vo};

use crate::storage_errors::StorageErrors;
use crate::store::postgres::{DatabaseUrl, PostgresStore};
use crate::store::{LedgerReader, Registry};

#[tokio::test]
async fn every_text_column_compares_by_bytes() {
    let (_db, store) = super::store().await;
    let columns: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT c.table_name::text, c.column_name::text, c.collation_name::text
         FROM information_schema.columns c
         JOIN information_schema.tables t
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
           AND c.data_type = 'text' AND c.table_name <> '_sqlx_migrations'",
    )
    .fetch_all(&store.pool())
    .await
    .unwrap();
    assert!(columns.len() > 50, "{columns:?}");
    let other: Vec<_> = columns
        .iter()
        .filter(|(_, _, collation)| collation.as_deref() != Some("C"))
        .collect();
    assert!(other.is_empty(), "{other:?}");
}

#[tokio::test]
async fn a_database_sorting_by_language_still_lists_in_byte_order() {
    let db = tokenledger_testpg::database();
    let name = format!("{}_icu", db.name());
    let mut admin = PgConnection::connect(db.url()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' \
         LOCALE_PROVIDER icu ICU_LOCALE 'en'"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    let url = db
        .url()
        .replacen(&format!("/{}", db.name()), &format!("/{name}"), 1);
    let mut icu = PgConnection::connect(&url).await.unwrap();
    let (by_language,): (bool,) = sqlx::query_as("SELECT 'a'::text < 'B'::text")
        .fetch_one(&mut icu)
        .await
        .unwrap();
    assert!(by_language, "the database's default sorts 'a' before 'B'");
    icu.close().await.unwrap();

    let store = PostgresStore::open(
        &DatabaseUrl::parse(&url).unwrap(),
        None,
        Arc::new(StorageErrors::default()),
    )
    .await
    .unwrap();
    let vos = [Vo::unchecked("b-vo"), Vo::unchecked("B-vo")];
    for site in ["a", "B", "C", "_"] {
        store
            .upsert_site(&Site::unchecked(site), &vos, 1)
            .await
            .unwrap();
    }
    let sites = store.sites().await.unwrap();
    let names: Vec<&str> = sites.iter().map(|(site, _)| site.as_str()).collect();
    assert_eq!(names, ["B", "C", "_", "a"]);
    let vos: Vec<&str> = sites[0].1.iter().map(|vo| vo.as_str()).collect();
    assert_eq!(vos, ["B-vo", "b-vo"]);
    store.close().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
}
