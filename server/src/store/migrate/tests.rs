//! The migration from a SQLite ledger written by the real sequencer and writer (compressed
//! leaves, every table holding rows) into a real PostgreSQL database: the copy equals the
//! source row for row, its root the source's, and the PostgreSQL engine takes it up (its
//! readers answer as SQLite's, its writer appends after the copied log); a target with rows is
//! refused; a tampered source or another log's key is refused and leaves the target as it was.
//!
//! PostgreSQL comes from `tokenledger_testpg` (`TOKENLEDGER_TEST_PG_URL`, else a private
//! cluster); a test fails without it.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteRow;
use sqlx::{ConnectOptions, Connection, PgConnection, Row, SqliteConnection};
use tokenledger_core::blocklist::Scope;
use tokenledger_core::ids::{Jti, Site, Vo};
use tokenledger_core::merkle::{self, Hash, leaf_hash};
use tokenledger_core::note::NoteSigner;
use tokenledger_core::redaction::RedactionKey;
use tokenledger_testpg::{TestDatabase, database};

use super::{MigrationReport, Progress, TABLES, copy_ledger};
use crate::clock::SystemClock;
use crate::metrics::Metrics;
use crate::sequencer::{BatchLimits, EntryKind, PreparedEntry, Sequencer};
use crate::store::leaf_codec::tests::leaves;
use crate::store::postgres::{DatabaseUrl, MIGRATOR, PostgresLease, PostgresStore};
use crate::store::sqlite::{SqliteStore, SqliteWriter};
use crate::store::{
    IssuanceKey, LedgerReader, LedgerWriter, LogRecord, StateChange, StoredEntry, SuspensionRecord,
    WriterLease, ownership,
};

const ORIGIN: &str = "test/migrate";
/// The log's size: its stored entries and its redacted ones.
const LOG_SIZE: &str =
    "SELECT (SELECT COUNT(*) FROM entries) + (SELECT COUNT(*) FROM redacted_entries)";
const ISS: &str = "https://iam.example.org/";
/// Leaves stored raw before the writer trains a dictionary and compresses the rest.
const COMPRESS_AFTER: usize = 300;
/// Issuances of the source log: more than one chunk of the check, more stored hashes than
/// one batch of the copy.
const ISSUANCES: usize = 4500;

fn signer() -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, [7; 32]).unwrap()
}

async fn connect(db: &TestDatabase) -> PgConnection {
    PgConnectOptions::from_str(db.url())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// The sequencer over `writer`.
async fn start(writer: Box<dyn LedgerWriter>) -> (Sequencer, tokio::task::JoinHandle<()>) {
    Sequencer::start(
        writer,
        signer(),
        ORIGIN.into(),
        BatchLimits {
            max_batch: 500,
            max_wait: Duration::ZERO,
            queue_depth: 8,
        },
        Arc::new(Metrics::default()),
        Arc::new(SystemClock),
    )
    .await
    .unwrap()
}

/// Issuance `n` of the source ledger (jti-n of user-0 or user-1, every third by a client).
fn issuance(n: usize, leaf: Vec<u8>) -> PreparedEntry {
    PreparedEntry {
        leaf_hash: leaf_hash(&leaf),
        leaf,
        logged_at: n as i64,
        kind: EntryKind::Issuance(IssuanceKey {
            jti: Jti::unchecked(format!("jti-{n}")),
            iss: ISS.into(),
            sub: format!("user-{}", n % 2),
            vo: Vo::unchecked("atlas"),
            client_id: n.is_multiple_of(3).then(|| "pilot-factory".into()),
            refresh_jti: None,
        }),
    }
}

/// A SQLite ledger with rows in every table: issuances (some compressed, two identities, a
/// client), a resolution, a client suspension, a sighting and a redaction of two issuances
/// through the sequencer; the
/// registry's tables and the rest as test rows. Returns the directory, the database and the
/// log's root.
async fn source_ledger() -> (tempfile::TempDir, PathBuf, Hash) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenledger.db");
    let store = SqliteStore::open(&path, Default::default()).await.unwrap();
    let writer = SqliteWriter::open(&path, Default::default(), COMPRESS_AFTER)
        .await
        .unwrap();
    let (sequencer, task) = start(Box::new(writer)).await;
    let all = leaves(ISSUANCES);
    let mut next = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    // Until the dictionary trained on the first leaves has compressed some.
    while next < ISSUANCES || compressed(&path).await == 0 {
        assert!(Instant::now() < deadline, "no leaf was compressed");
        let batch = if next < ISSUANCES {
            let end = (next + 500).min(ISSUANCES);
            let batch = (next..end).map(|n| issuance(n, all[n].clone())).collect();
            next = end;
            batch
        } else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            next += 1;
            vec![issuance(next, format!("extra {next}").into_bytes())]
        };
        sequencer.append(batch).await.unwrap();
    }
    let state = |n: i64, kind: EntryKind| PreparedEntry {
        leaf_hash: leaf_hash(format!("state {n}").as_bytes()),
        leaf: format!("state {n}").into_bytes(),
        logged_at: n,
        kind,
    };
    sequencer
        .append(vec![
            state(
                1,
                EntryKind::Resolution {
                    vo: Vo::unchecked("atlas"),
                },
            ),
            state(
                2,
                EntryKind::State(StateChange::Suspend(Box::new(SuspensionRecord {
                    id: "su-1".into(),
                    idx: 0,
                    site: None,
                    vo: Vo::unchecked("atlas"),
                    person_id: None,
                    token_iss: None,
                    token_jti: None,
                    client_iss: Some(ISS.into()),
                    client_id: Some("pilot-factory".into()),
                    scope: Scope::All,
                    reason_code: "compromised".into(),
                    created_by: "officer".into(),
                    created_at: 2,
                    not_after: None,
                    issued_before: Some(1_700_000_000),
                    lifted_at: None,
                }))),
            ),
            state(
                3,
                EntryKind::State(StateChange::Sighting {
                    site: Site::unchecked("CERN-PROD"),
                    vo: Vo::unchecked("atlas"),
                    iss: ISS.into(),
                    jti: Jti::unchecked("jti-1"),
                }),
            ),
        ])
        .await
        .unwrap();
    // After the suspension: a redaction refuses holds read before it.
    let holds_at = sequencer.head().size;
    sequencer
        .append(vec![state(
            4,
            EntryKind::State(StateChange::Redact {
                ranges: vec![(4, 6).into()],
                at: 4,
                holds_at,
                key: RedactionKey::from_bytes([3; 32]),
                persons: Vec::new(),
            }),
        )])
        .await
        .unwrap();
    let root = sequencer.head().root;
    drop(sequencer);
    task.await.unwrap();
    store.close().await;

    let mut conn = sqlite(&path).await;
    let (person,): (String,) = sqlx::query_as("SELECT person_id FROM identities LIMIT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    for statement in [
        "INSERT INTO credentials VALUES ('cr-1', x'0102', 'site-admin', NULL, 'CERN-PROD', NULL, \
         'ops', 5, NULL), ('cr-2', x'0304', 'issuer', 'atlas', NULL, 'https://iam.example.org/', \
         NULL, 6, 7)",
        "INSERT INTO sites VALUES ('CERN-PROD', 8)",
        "INSERT INTO site_vos VALUES ('CERN-PROD', 'atlas')",
        "INSERT INTO blocklists VALUES ('CERN-PROD', 3, '{\"entries\":[]}')",
        "INSERT INTO blocklist_suspensions VALUES ('CERN-PROD', 'su-1', 2, NULL)",
        "INSERT INTO blocklist_fetches VALUES ('CERN-PROD', 2, 'cr-1', 9)",
        "INSERT INTO blocklist_last_fetches VALUES ('CERN-PROD', 'cr-1', 3, 10)",
    ] {
        sqlx::query(statement).execute(&mut conn).await.unwrap();
    }
    sqlx::query("INSERT INTO pseudonyms VALUES ('p1-x', 'CERN-PROD', 'atlas', ?, 11)")
        .bind(&person)
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO person_merges VALUES ('atlas', 'pe-gone', ?, 12)")
        .bind(&person)
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO suspension_requests (id, idx, site, vo, person_id, pseudonym, evidence, \
         requested_by, requested_at) VALUES ('sr-1', 13, 'CERN-PROD', 'atlas', ?, 'p1-x', \
         'ce01: port scans', 'credential:cr-1', 14)",
    )
    .bind(&person)
    .execute(&mut conn)
    .await
    .unwrap();
    for table in TABLES {
        let (rows,): (i64,) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert!(rows > 0, "the source has no row in {table}");
    }
    conn.close().await.unwrap();
    (dir, path, root)
}

async fn sqlite(path: &Path) -> SqliteConnection {
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .unwrap()
}

async fn compressed(path: &Path) -> i64 {
    let mut conn = sqlite(path).await;
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(dictionary) FROM entries")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    n
}

async fn migrate(path: &Path, target: &TestDatabase) -> anyhow::Result<MigrationReport> {
    migrate_with(path, target, &signer()).await
}

async fn migrate_with(
    path: &Path,
    target: &TestDatabase,
    key: &NoteSigner,
) -> anyhow::Result<MigrationReport> {
    let mut copied = Vec::new();
    let mut checked = 0;
    let report = copy_ledger(
        path,
        &DatabaseUrl::parse(target.url()).unwrap(),
        &key.verifier(),
        &mut |p: Progress<'_>| match p {
            Progress::Copied {
                table,
                copied: rows,
                total,
            } => copied.push((table.to_string(), rows, total)),
            Progress::Checked { entries, size } => {
                assert!(entries > checked && entries <= size, "{entries} of {size}");
                checked = entries;
            }
        },
    )
    .await;
    if let Ok(report) = &report {
        for table in TABLES {
            let done = copied
                .iter()
                .any(|(t, rows, total)| t == table && rows == total);
            assert!(done, "no progress said {table} was copied: {copied:?}");
        }
        assert_eq!(checked, report.size, "every entry checked");
    }
    report
}

/// A value of a row, whichever engine it was read from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    Integer(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

/// The columns of `table` in PostgreSQL and their types.
async fn pg_columns(pg: &mut PgConnection, table: &str) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(pg)
    .await
    .unwrap()
}

fn value<'r, R: Row>(row: &'r R, i: usize, pg_type: &str) -> Value
where
    usize: sqlx::ColumnIndex<R>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<Vec<u8>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    match pg_type {
        "bigint" => Value::Integer(row.try_get(i).unwrap()),
        "text" => Value::Text(row.try_get(i).unwrap()),
        "bytea" => Value::Bytes(row.try_get(i).unwrap()),
        other => panic!("column type {other}"),
    }
}

/// Every row of every table in both databases, sorted: they must be equal.
async fn assert_same_rows(path: &Path, pg: &mut PgConnection) {
    let mut source = sqlite(path).await;
    for table in TABLES {
        let columns = pg_columns(pg, table).await;
        let names = columns
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let select = format!("SELECT {names} FROM {table}");
        let mut from_sqlite: Vec<Vec<Value>> = sqlx::query(sqlx::AssertSqlSafe(select.clone()))
            .fetch_all(&mut source)
            .await
            .unwrap()
            .iter()
            .map(|row: &SqliteRow| {
                (0..columns.len())
                    .map(|i| value(row, i, &columns[i].1))
                    .collect()
            })
            .collect();
        let mut from_pg: Vec<Vec<Value>> = sqlx::query(sqlx::AssertSqlSafe(select))
            .fetch_all(&mut *pg)
            .await
            .unwrap()
            .iter()
            .map(|row| {
                (0..columns.len())
                    .map(|i| value(row, i, &columns[i].1))
                    .collect()
            })
            .collect();
        from_sqlite.sort();
        from_pg.sort();
        assert!(!from_pg.is_empty(), "{table} is empty");
        assert_eq!(from_sqlite, from_pg, "table {table}");
    }
}

/// Sets stored hash `index` to `hash` in `tables` (`hashes`, `upper_hashes`); returns what
/// `hashes` held.
async fn set_hash(
    source: &mut SqliteConnection,
    tables: &[&str],
    index: u64,
    hash: &[u8],
) -> Vec<u8> {
    let (before,): (Vec<u8>,) = sqlx::query_as("SELECT hash FROM hashes WHERE idx = ?")
        .bind(index as i64)
        .fetch_one(&mut *source)
        .await
        .unwrap();
    for table in tables {
        let changed = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET hash = ? WHERE idx = ?"
        )))
        .bind(hash)
        .bind(index as i64)
        .execute(&mut *source)
        .await
        .unwrap()
        .rows_affected();
        assert_eq!(changed, 1, "stored hash {index} in {table}");
    }
    before
}

/// The tables of the target's schema (none: the target is as it was before the migration).
async fn tables_in(pg: &mut PgConnection) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() ORDER BY 1",
    )
    .fetch_all(pg)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_ledger_is_copied_row_for_row_with_its_root_and_its_ids_go_on() {
    let (_dir, path, root) = source_ledger().await;
    let target = database();
    let report = migrate(&path, &target).await.unwrap();
    let mut source = sqlite(&path).await;
    let (entries,): (i64,) = sqlx::query_as(LOG_SIZE)
        .fetch_one(&mut source)
        .await
        .unwrap();
    assert_eq!(report.size, entries as u64);
    assert_eq!(report.root, root);
    let checkpoint = report.checkpoint.clone().expect("the newest checkpoint");
    assert_eq!(checkpoint.size, report.size, "stored at shutdown");
    assert_eq!(report.tables.len(), TABLES.len());

    let mut pg = connect(&target).await;
    assert_same_rows(&path, &mut pg).await;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
        .fetch_all(&mut pg)
        .await
        .unwrap();
    assert_eq!(applied.len(), MIGRATOR.iter().count());
    for table in ["issuers", "clients", "identities", "leaf_dictionaries"] {
        let (largest,): (i64,) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT MAX(id) FROM {table}")))
                .fetch_one(&mut pg)
                .await
                .unwrap();
        let (next,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT nextval(pg_get_serial_sequence('{table}', 'id'))"
        )))
        .fetch_one(&mut pg)
        .await
        .unwrap();
        assert_eq!(next, largest + 1, "the next id of {table}");
    }

    let again = migrate(&path, &target).await.unwrap_err();
    assert!(format!("{again:#}").contains("not empty"), "{again:#}");
    pg.close().await.unwrap();

    // The PostgreSQL engine takes the copy up: its readers find this ledger's checkpoint and
    // answer lookups as the SQLite ledger does; a writer appends after the copied log and
    // interns a new issuer after the copied ids.
    let url = DatabaseUrl::parse(target.url()).unwrap();
    let copy = PostgresStore::open(&url, None, Default::default())
        .await
        .unwrap();
    let source_store = SqliteStore::open(&path, Default::default()).await.unwrap();
    let opened = ownership::check(&copy, &signer().verifier())
        .await
        .unwrap()
        .expect("the copy's newest checkpoint");
    assert_eq!(
        (opened.size, opened.root),
        (checkpoint.size, checkpoint.root)
    );
    let jti = Jti::unchecked("jti-3");
    for (a, b) in [
        (
            as_records(source_store.issuances_by_jti(&jti).await.unwrap()),
            as_records(copy.issuances_by_jti(&jti).await.unwrap()),
        ),
        (
            source_store.entries(0, 20).await.unwrap(),
            copy.entries(0, 20).await.unwrap(),
        ),
        (
            source_store
                .entries(report.size - 20, report.size)
                .await
                .unwrap(),
            copy.entries(report.size - 20, report.size).await.unwrap(),
        ),
    ] {
        assert!(!a.is_empty());
        assert_eq!(a, b);
    }
    let redacted = copy.entries(4, 6).await.unwrap();
    assert!(
        redacted
            .iter()
            .all(|r| matches!(r, LogRecord::Redacted(r) if r.at == 4)),
        "{redacted:?}"
    );
    assert_eq!(
        source_store
            .person_with_identities(ISS, "user-1", &Vo::unchecked("atlas"))
            .await
            .unwrap(),
        copy.person_with_identities(ISS, "user-1", &Vo::unchecked("atlas"))
            .await
            .unwrap()
    );
    source_store.close().await;

    let lease = PostgresLease::new(url, Default::default(), COMPRESS_AFTER);
    let writer = lease.try_acquire("migrate-test").await.unwrap().unwrap();
    let (sequencer, task) = start(writer).await;
    let mut new = issuance(0, b"after the migration".to_vec());
    if let EntryKind::Issuance(key) = &mut new.kind {
        key.jti = Jti::unchecked("after-1");
        key.iss = "https://other.example.org/".into();
    }
    let appended = sequencer.append(vec![new.clone()]).await.unwrap();
    assert_eq!(appended[0].index, report.size);
    let mut frontier = copy.frontier(report.size).await.unwrap();
    frontier.append(new.leaf_hash);
    assert_eq!(sequencer.head().root, frontier.root());
    drop(sequencer);
    task.await.unwrap();
    let issuer = sqlx::query_scalar::<_, i64>("SELECT issuer FROM issuances WHERE jti = 'after-1'")
        .fetch_one(&mut connect(&target).await)
        .await
        .unwrap();
    assert_eq!(
        issuer, 3,
        "after the copied issuer (1) and the id drawn above (2)"
    );
    copy.close().await;
}

#[tokio::test]
async fn a_target_holding_rows_is_refused_and_kept() {
    let (_dir, path, _) = source_ledger().await;
    let target = database();
    let mut pg = connect(&target).await;
    MIGRATOR.run(&mut pg).await.unwrap();
    sqlx::query("INSERT INTO sites VALUES ('OTHER', 1)")
        .execute(&mut pg)
        .await
        .unwrap();
    let refused = migrate(&path, &target).await.unwrap_err();
    let message = format!("{refused:#}");
    assert!(
        message.contains("not empty (rows in sites)") && message.contains("nothing was written"),
        "{message}"
    );
    let (sites, entries): (i64, i64) =
        sqlx::query_as("SELECT (SELECT COUNT(*) FROM sites), (SELECT COUNT(*) FROM entries)")
            .fetch_one(&mut pg)
            .await
            .unwrap();
    assert_eq!((sites, entries), (1, 0));

    // A database holding anything else is not empty either.
    let other = database();
    let mut pg = connect(&other).await;
    sqlx::raw_sql("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine')")
        .execute(&mut pg)
        .await
        .unwrap();
    let refused = migrate(&path, &other).await.unwrap_err();
    assert!(
        format!("{refused:#}").contains("not empty (rows in notes)"),
        "{refused:#}"
    );
    assert_eq!(
        tables_in(&mut pg).await,
        ["notes"],
        "migrations rolled back"
    );
}

#[tokio::test]
async fn a_tampered_source_or_another_logs_key_is_refused_and_nothing_is_written() {
    let (_dir, path, _) = source_ledger().await;
    let target = database();
    let mut pg = connect(&target).await;
    let mut source = sqlite(&path).await;
    let (size,): (i64,) = sqlx::query_as(LOG_SIZE)
        .fetch_one(&mut source)
        .await
        .unwrap();
    let size = size as u64;

    // A leaf's stored hash and a stored hash of level 1 (both in the second chunk the check
    // reads); the stored hash of the checkpoint's largest subtree (and its copy in
    // upper_hashes); that copy alone.
    let leaf = merkle::stored_hash_index(0, 4200);
    let pair = merkle::stored_hash_index(1, 2101);
    let subtree = merkle::tree_hash_indexes(size)[0];
    for (tables, index, expected) in [
        (
            &["hashes"][..],
            leaf,
            "entry 4200: the leaf and its stored leaf hash disagree".to_string(),
        ),
        (
            &["hashes"][..],
            pair,
            format!("stored hash {pair} is not the hash of the subtree the leaves give"),
        ),
        (
            &["hashes", "upper_hashes"][..],
            subtree,
            format!("the newest checkpoint (size {size}) has root"),
        ),
        (
            &["upper_hashes"][..],
            subtree,
            "1 rows of upper_hashes differ from their stored hashes".to_string(),
        ),
    ] {
        let original = set_hash(&mut source, tables, index, &[0xab; 32]).await;
        let refused = migrate(&path, &target).await.unwrap_err();
        let message = format!("{refused:#}");
        assert!(
            message.contains(&expected) && message.contains("nothing was written"),
            "{message}"
        );
        assert!(
            tables_in(&mut pg).await.is_empty(),
            "the target is as it was"
        );
        set_hash(&mut source, tables, index, &original).await;
    }

    let other = NoteSigner::from_seed(ORIGIN, [8; 32]).unwrap();
    let refused = migrate_with(&path, &target, &other).await.unwrap_err();
    assert!(
        format!("{refused:#}").contains("does not open with the log key"),
        "{refused:#}"
    );
    assert!(tables_in(&mut pg).await.is_empty());

    migrate(&path, &target).await.expect("the repaired source");
}

/// Leaves as the log's records.
fn as_records(leaves: Vec<StoredEntry>) -> Vec<LogRecord> {
    leaves.into_iter().map(LogRecord::Leaf).collect()
}
