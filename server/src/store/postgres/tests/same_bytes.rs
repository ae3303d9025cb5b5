//! The same batches appended through SQLite's writer and PostgreSQL's store the same stored
//! hashes (and `upper_hashes`), the same leaves, raw and then compressed with the same trained
//! dictionary, and read back the same.

use std::sync::Arc;

use sqlx::{Connection, PgConnection};

use super::{Entry, Log, Rows, ledger};
use crate::storage_errors::StorageErrors;
use crate::store::LedgerWriter;
use crate::store::leaf_codec::LeafDecoders;
use crate::store::postgres::{LEASE_KEY, PostgresWriter};
use crate::store::sqlite::{SqliteStore, SqliteWriter, connect_options};

/// Leaves are stored raw until this many are logged, then compressed.
const COMPRESS_AFTER: usize = 400;

/// Issuance batches of 100 entries each, different enough to train a dictionary on.
pub(super) fn batches(log: &mut Log, count: usize) -> Vec<Rows> {
    const SUBS: [&str; 7] = ["alice", "bob", "carol", "dave", "erin", "frank", "grace"];
    const VOS: [&str; 3] = ["atlas", "cms", "lhcb"];
    (0..count)
        .map(|_| {
            let first = log.size() as usize;
            let entries = (first..first + 100)
                .map(|n| {
                    let jti = format!("jti-{:08x}", n.wrapping_mul(2_654_435_761));
                    let iss = if n % 3 == 0 { super::A } else { super::B };
                    let client = (n % 2 == 0).then_some("client-1");
                    Entry::Issuance((jti, iss, SUBS[n % 7], VOS[n % 3], client))
                })
                .collect();
            log.rows(entries, true)
        })
        .collect()
}

/// Rows `(idx, bytes, extra)` of `select` on SQLite and on PostgreSQL.
type Stored = Vec<(i64, Vec<u8>, Option<i64>)>;

#[tokio::test]
async fn both_engines_store_the_same_hashes_and_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let sqlite = SqliteStore::open(&path, Arc::new(StorageErrors::default()))
        .await
        .unwrap();
    let mut on_sqlite = SqliteWriter::open(&path, Default::default(), COMPRESS_AFTER)
        .await
        .unwrap();
    on_sqlite.open_log().await.unwrap();

    let (_db, url, pool) = ledger().await;
    let mut conn = PgConnection::connect_with(&url.hosts()[0]).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LEASE_KEY)
        .execute(&mut conn)
        .await
        .unwrap();
    let decoders = Arc::new(LeafDecoders::default());
    let mut on_postgres = PostgresWriter::on_lease(conn, &url, decoders, COMPRESS_AFTER)
        .await
        .unwrap();
    on_postgres.open_log().await.unwrap();

    let mut log = Log::default();
    let raw = batches(&mut log, 4);
    for rows in &raw {
        rows.append(&mut on_sqlite).await.unwrap();
        rows.append(&mut on_postgres).await.unwrap();
    }
    let trained = on_sqlite
        .wait_for_training()
        .await
        .unwrap()
        .expect("a dictionary");
    let also = on_postgres
        .wait_for_training()
        .await
        .unwrap()
        .expect("a dictionary");
    assert_eq!((trained.id, &trained.bytes), (also.id, &also.bytes));
    let compressed = batches(&mut log, 2);
    for rows in &compressed {
        rows.append(&mut on_sqlite).await.unwrap();
        rows.append(&mut on_postgres).await.unwrap();
    }
    let sqlite_pool = sqlx::SqlitePool::connect_with(connect_options(&path))
        .await
        .unwrap();

    for select in [
        "SELECT idx, hash, NULL FROM hashes ORDER BY idx",
        "SELECT idx, hash, NULL FROM upper_hashes ORDER BY idx",
        "SELECT idx, leaf, dictionary FROM entries ORDER BY idx",
        "SELECT id, dictionary, NULL FROM leaf_dictionaries ORDER BY id",
    ] {
        let on_sqlite: Stored = sqlx::query_as(select)
            .fetch_all(&sqlite_pool)
            .await
            .unwrap();
        let pg_select = select.replace("NULL", "NULL::bigint");
        let on_postgres: Stored = sqlx::query_as(sqlx::AssertSqlSafe(pg_select))
            .fetch_all(&pool)
            .await
            .unwrap();
        assert!(!on_sqlite.is_empty(), "{select}");
        assert!(on_sqlite == on_postgres, "{select}: the engines differ");
    }
    let entries: Stored = sqlx::query_as("SELECT idx, leaf, dictionary FROM entries ORDER BY idx")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(entries.len(), 600);
    assert_eq!(entries[399].2, None);
    assert_eq!(entries[400].2, Some(trained.id));

    let indexes: Vec<u64> = (0..600).step_by(7).collect();
    let read = on_postgres.entries_at(&indexes).await.unwrap();
    let leaves: Vec<&Vec<u8>> = raw
        .iter()
        .chain(&compressed)
        .flat_map(|r| &r.leaves)
        .collect();
    assert_eq!(read.len(), indexes.len());
    for record in read {
        let index = record.index();
        assert_eq!(
            record.leaf(),
            Some(&leaves[index as usize][..]),
            "entry {index}"
        );
    }
    assert_eq!(
        on_sqlite.entries_at(&indexes).await.unwrap().len(),
        indexes.len()
    );
    assert_eq!(on_postgres.open_log().await.unwrap().root(), log.root());
    sqlite.close().await;
}
