//! Direct access to a server's database, for inspection and tampering, opening one connection
//! per call. The functions on a [`Database`] work on either backend (SQLite's WAL mode lets
//! them run beside a live server); those on a `&Path` only on the SQLite file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::postgres::PgRow;
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{ConnectOptions, Connection, FromRow, PgConnection, SqliteConnection};

/// Where a server keeps its ledger ([`crate::TestServer::db`]).
#[derive(Clone, Debug)]
pub enum Database {
    /// The SQLite file.
    Sqlite(PathBuf),
    /// The PostgreSQL database's URL.
    Postgres(String),
}

/// A parameter of a query (`$1`, `$2`, ... in the SQL of both backends).
#[derive(Clone, Copy)]
enum Param<'a> {
    Int(i64),
    Text(&'a str),
    Bytes(&'a [u8]),
}

/// `$query` with `$params` bound in order.
macro_rules! bound {
    ($query:expr, $params:expr) => {{
        let mut query = $query;
        for param in $params {
            query = match *param {
                Param::Int(i) => query.bind(i),
                Param::Text(t) => query.bind(t),
                Param::Bytes(b) => query.bind(b),
            };
        }
        query
    }};
}

/// Runs `$body` with `$conn` a new connection to the database of `$db`, either backend.
macro_rules! with_connection {
    ($db:expr, $conn:ident => $body:expr) => {
        block_on(async {
            match $db {
                Database::Sqlite(path) => {
                    let mut $conn = connect(path).await;
                    $body
                }
                Database::Postgres(url) => {
                    let mut $conn = PgConnection::connect(url).await.unwrap_or_else(|e| {
                        panic!("connecting to the test's PostgreSQL database: {e}")
                    });
                    $body
                }
            }
        })
    };
}

/// The rows of `sql` with `params`, on either backend.
fn rows<T>(db: &Database, sql: &'static str, params: &[Param<'_>]) -> Vec<T>
where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    with_connection!(db, conn => bound!(sqlx::query_as::<_, T>(sql), params)
        .fetch_all(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}")))
}

/// Runs `sql` with `params`, on either backend; the number of rows it changed.
fn change(db: &Database, sql: &'static str, params: &[Param<'_>]) -> u64 {
    with_connection!(db, conn => bound!(sqlx::query(sql), params)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .rows_affected())
}

/// Every byte the ledger stores: the SQLite file and its WAL, or a dump of the PostgreSQL
/// database (`pg_dump`, where byte strings appear in hex). For tests that a value is never
/// stored.
pub fn stored_bytes(db: &Database) -> Vec<u8> {
    match db {
        Database::Sqlite(path) => {
            let mut bytes =
                std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            bytes.extend(std::fs::read(path.with_extension("db-wal")).unwrap_or_default());
            bytes
        }
        Database::Postgres(url) => tokenledger_testpg::dump(url),
    }
}

/// Sizes of the checkpoints stored in the database, ascending.
pub fn checkpoint_sizes(db: &Database) -> Vec<u64> {
    rows::<(i64,)>(db, "SELECT size FROM checkpoints ORDER BY size", &[])
        .into_iter()
        .map(|(s,)| s as u64)
        .collect()
}

/// The stored checkpoint note of `size`, if any.
pub fn checkpoint_note(db: &Database, size: u64) -> Option<String> {
    let sql = "SELECT note FROM checkpoints WHERE size = $1";
    let found = rows::<(String,)>(db, sql, &[Param::Int(size as i64)]);
    found.into_iter().next().map(|(note,)| note)
}

/// The person identity `(iss, sub)` of `vo` belongs to, if any.
pub fn person_of(db: &Database, iss: &str, sub: &str, vo: &str) -> Option<String> {
    let sql = "SELECT person_id FROM identities WHERE iss = $1 AND sub = $2 AND vo = $3";
    let params = [Param::Text(iss), Param::Text(sub), Param::Text(vo)];
    let found = rows::<(String,)>(db, sql, &params);
    found.into_iter().next().map(|(person,)| person)
}

/// How many identities person `person` has in `vo`.
pub fn identity_count(db: &Database, person: &str, vo: &str) -> u64 {
    let sql = "SELECT count(*) FROM identities WHERE person_id = $1 AND vo = $2";
    let (n,) = rows::<(i64,)>(db, sql, &[Param::Text(person), Param::Text(vo)])[0];
    n as u64
}

/// The log index of the lift of suspension `id`, if it was lifted.
pub fn lift_index(db: &Database, id: &str) -> Option<u64> {
    let sql = "SELECT lift_idx FROM suspensions WHERE id = $1";
    let found = rows::<(Option<i64>,)>(db, sql, &[Param::Text(id)]);
    let (index,) = found.first().copied().expect("the suspension is stored");
    index.map(|i| i as u64)
}

/// The person `person` of `vo` was merged into, with the merge's log index, if it was.
pub fn merged_into(db: &Database, vo: &str, person: &str) -> Option<(String, u64)> {
    let sql = "SELECT into_person, idx FROM person_merges WHERE vo = $1 AND person_id = $2";
    let found = rows::<(String, i64)>(db, sql, &[Param::Text(vo), Param::Text(person)]);
    found
        .into_iter()
        .next()
        .map(|(into, index)| (into, index as u64))
}

/// Row counts of the log tables: (entries, hashes, issuances).
pub fn row_counts(db: &Database) -> (u64, u64, u64) {
    let sql = "SELECT (SELECT count(*) FROM entries), (SELECT count(*) FROM hashes), \
               (SELECT count(*) FROM issuances)";
    let (e, h, i) = rows::<(i64, i64, i64)>(db, sql, &[])[0];
    (e as u64, h as u64, i as u64)
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}

async fn connect(path: &Path) -> SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(30))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}

/// The stored hash at stored index `idx` (table `hashes`).
pub fn stored_hash(db: &Database, idx: u64) -> Vec<u8> {
    let sql = "SELECT hash FROM hashes WHERE idx = $1";
    let found = rows::<(Vec<u8>,)>(db, sql, &[Param::Int(idx as i64)]);
    found.into_iter().next().expect("a stored hash").0
}

/// Overwrites the stored hash at `idx`; returns the number of rows changed.
pub fn set_stored_hash(db: &Database, idx: u64, hash: &[u8]) -> u64 {
    let sql = "UPDATE hashes SET hash = $1 WHERE idx = $2";
    change(db, sql, &[Param::Bytes(hash), Param::Int(idx as i64)])
}

/// The copy of the stored hash at `idx` in `upper_hashes`, if that table holds one.
pub fn upper_hash(db: &Database, idx: u64) -> Option<Vec<u8>> {
    let sql = "SELECT hash FROM upper_hashes WHERE idx = $1";
    let found = rows::<(Vec<u8>,)>(db, sql, &[Param::Int(idx as i64)]);
    found.into_iter().next().map(|(hash,)| hash)
}

/// Overwrites the copy of the stored hash at `idx` in `upper_hashes`; returns the number
/// of rows changed.
pub fn set_upper_hash(db: &Database, idx: u64, hash: &[u8]) -> u64 {
    let sql = "UPDATE upper_hashes SET hash = $1 WHERE idx = $2";
    change(db, sql, &[Param::Bytes(hash), Param::Int(idx as i64)])
}

/// The leaf bytes of entry `idx` (table `entries`).
pub fn leaf(db: &Database, idx: u64) -> Vec<u8> {
    let sql = "SELECT leaf FROM entries WHERE idx = $1";
    let found = rows::<(Vec<u8>,)>(db, sql, &[Param::Int(idx as i64)]);
    found.into_iter().next().expect("a stored leaf").0
}

/// Overwrites the leaf bytes of entry `idx`; returns the number of rows changed.
pub fn set_leaf(db: &Database, idx: u64, leaf: &[u8]) -> u64 {
    let sql = "UPDATE entries SET leaf = $1 WHERE idx = $2";
    change(db, sql, &[Param::Bytes(leaf), Param::Int(idx as i64)])
}

/// Entries stored compressed with a dictionary, and dictionaries stored.
pub fn compression_counts(db: &Database) -> (u64, u64) {
    let sql = "SELECT (SELECT count(*) FROM entries WHERE dictionary IS NOT NULL), \
               (SELECT count(*) FROM leaf_dictionaries)";
    let (compressed, dictionaries) = rows::<(i64, i64)>(db, sql, &[])[0];
    (compressed as u64, dictionaries as u64)
}

/// Runs one SQL statement that changes rows (to damage the store on purpose); returns
/// the number of rows changed.
pub fn execute(path: &Path, sql: &str) -> u64 {
    let sql = sql.to_string();
    block_on(async {
        let mut conn = connect(path).await;
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .expect("changing rows")
            .rows_affected()
    })
}

/// The byte ranges (`start-end`) process `pid` holds POSIX locks on in the file `path`,
/// from /proc/locks (`1: POSIX ADVISORY READ <pid> <major>:<minor>:<inode> <start> <end>`).
pub fn locks_held(path: &Path, pid: u32) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(path)
        .expect("the database file")
        .ino()
        .to_string();
    let pid = pid.to_string();
    std::fs::read_to_string("/proc/locks")
        .expect("reading /proc/locks")
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() >= 8 && f[1] == "POSIX" && f[4] == pid)
        .filter(|f| f[5].rsplit(':').next() == Some(inode.as_str()))
        .map(|f| f[6..].join("-"))
        .collect()
}
