//! SQLite connections: options (WAL, synchronous=FULL, incremental auto-vacuum), the readers'
//! pool, the writer's connection, the WAL checkpointer, embedded migrations.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, SqliteConnection};

/// The migrations of schema/sqlite, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../schema/sqlite");

/// Page size of a new database (an existing one keeps its own). Every issuance inserts at a
/// random place in the `jti` index, so each commit writes about one page per row to the
/// WAL: 1 KiB pages write a quarter of what 4 KiB pages do (RS256 ingest 11.5-12.8k ->
/// 15.4k/s on the 2-core machine, measured when the identity index was random too, for 5 %
/// more bytes per issuance).
pub const PAGE_SIZE: u32 = 1024;

/// Connection options every tokenledger connection uses: WAL, fsync on every commit. A new
/// database is made with `auto_vacuum = INCREMENTAL` (set, as the page size, before its first
/// table), so the pages redaction frees can be given back to the file system
/// ([`super::reclaim`]); on an existing database both settings change nothing (one made
/// without auto-vacuum is converted by `tokenledger-server vacuum`).
pub fn connect_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::from_str("sqlite://")
        .expect("static sqlite url")
        .filename(path)
        .create_if_missing(true)
        .page_size(PAGE_SIZE)
        .auto_vacuum(SqliteAutoVacuum::Incremental)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
}

/// Page cache of each reader connection (KiB): keeps the upper levels of the tree and of
/// the indexes in memory while nothing is written (a reader drops its cache when the writer
/// has committed). Readers do not use a memory map: the kernel reads around each page fault
/// (8 MiB on the test VM's disk), which turned 10,000 proofs over a cold 10 M log into 289
/// MB of disk reads against 17 MB through `pread`.
const READER_CACHE_KIB: i64 = 64 * 1024;
/// Bytes of the database file the writer reads through a memory map (SQLite caps this at
/// its compile-time maximum, 2 GiB): index pages it inserts into are read without a system
/// call and without a copy in its page cache.
const WRITER_MMAP_BYTES: i64 = 1 << 31;
/// Page cache of the writer (KiB). With the memory map it holds little more than the pages
/// a batch dirties, and it must stay small: while the database is under 1 GiB, SQLite walks
/// every cached page at the commit of a transaction that split a B-tree page (RS256 ingest
/// 14.5-14.8k/s with 256 MiB and no map, 16.4-17.6k/s with this, in 6 s runs).
const WRITER_CACHE_KIB: i64 = 4 * 1024;
/// How often the WAL is copied back into the database, off the writer's path.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// Opens (creating if needed) the database at `path` and applies pending migrations.
/// Returns a pool for readers and short writes (credentials).
pub async fn open(path: &Path) -> anyhow::Result<SqlitePool> {
    create_private_file(path)?;
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        // A local file does not drop connections the way a network peer does; a broken one
        // still fails its query (and is then closed when returned to the pool).
        .test_before_acquire(false)
        .connect_with(connect_options(path).pragma("cache_size", format!("-{READER_CACHE_KIB}")))
        .await
        .with_context(|| format!("opening database {}", path.display()))?;
    MIGRATOR
        .run(&pool)
        .await
        .with_context(|| format!("migrating database {}", path.display()))?;
    Ok(pool)
}

/// Creates the database file readable by its owner only (0600): it holds personal data.
/// SQLite gives the -wal and -shm files the same mode. The descriptor is closed before
/// SQLite opens the file: once SQLite holds its locks, closing any other descriptor of the
/// file would drop them (POSIX locks belong to the process), which is why the page cache
/// warm-up keeps its own open until the database is closed.
fn create_private_file(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating database {}", path.display())),
    }
}

/// The one connection the sequencer writes the log through. Its commits never run a WAL
/// checkpoint (that is [`run_checkpointer`]'s job), and its statement journals stay in
/// memory.
pub async fn open_writer(path: &Path) -> anyhow::Result<SqliteConnection> {
    let conn = connect_options(path)
        .pragma("mmap_size", WRITER_MMAP_BYTES.to_string())
        .pragma("cache_size", format!("-{WRITER_CACHE_KIB}"))
        .pragma("temp_store", "memory")
        .pragma("wal_autocheckpoint", "0")
        .connect()
        .await
        .with_context(|| format!("opening log writer on {}", path.display()))?;
    Ok(conn)
}

/// Copies the WAL back into the database every [`CHECKPOINT_INTERVAL`] (PASSIVE: never
/// waits for readers or the writer); runs until aborted.
pub async fn run_checkpointer(pool: SqlitePool) {
    let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&pool)
            .await
        {
            tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn migrates_an_empty_database_and_uses_wal() {
        let dir = tempfile::tempdir().unwrap();
        let pool = open(&dir.path().join("t.db")).await.unwrap();
        let mode: (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(mode.0, "wal");
        let perms = std::fs::metadata(dir.path().join("t.db")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&perms.permissions()) & 0o777,
            0o600
        );
        let sync: (i64,) = sqlx::query_as("PRAGMA synchronous")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(sync.0, 2, "synchronous=FULL");
        let page: (i64,) = sqlx::query_as("PRAGMA page_size")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(page.0, i64::from(PAGE_SIZE));
        let auto_vacuum: (i64,) = sqlx::query_as("PRAGMA auto_vacuum")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(auto_vacuum.0, 2, "auto_vacuum=INCREMENTAL");
        for table in [
            "entries",
            "hashes",
            "checkpoints",
            "issuances",
            "credentials",
        ] {
            let n: (i64,) =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            assert_eq!(n.0, 0);
        }
    }

    /// The integer value of `PRAGMA name` on a connection.
    async fn pragma(conn: &mut SqliteConnection, name: &str) -> i64 {
        let (value,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("PRAGMA {name}")))
            .fetch_one(conn)
            .await
            .unwrap();
        value
    }

    /// A new database in a temporary directory, its reader pool and its writer.
    async fn pool_and_writer() -> (
        tempfile::TempDir,
        std::path::PathBuf,
        SqlitePool,
        SqliteConnection,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let pool = open(&path).await.unwrap();
        let writer = open_writer(&path).await.unwrap();
        (dir, path, pool, writer)
    }

    #[tokio::test]
    async fn the_writer_reads_through_a_memory_map_and_readers_through_their_cache() {
        let (_dir, _path, pool, mut writer) = pool_and_writer().await;
        let mmap = pragma(&mut writer, "mmap_size").await;
        assert!(mmap >= 1 << 30, "writer mmap_size {mmap}");
        assert_eq!(pragma(&mut writer, "cache_size").await, -WRITER_CACHE_KIB);
        let mut reader = pool.acquire().await.unwrap();
        assert_eq!(pragma(&mut reader, "mmap_size").await, 0);
        assert_eq!(pragma(&mut reader, "cache_size").await, -READER_CACHE_KIB);
    }

    #[tokio::test]
    async fn the_writer_leaves_checkpoints_to_the_checkpointer() {
        let (_dir, path, pool, mut writer) = pool_and_writer().await;
        assert_eq!(pragma(&mut writer, "wal_autocheckpoint").await, 0);
        assert_eq!(
            pragma(&mut writer, "temp_store").await,
            2,
            "statement journals in memory"
        );

        let before = std::fs::metadata(&path).unwrap().len();
        for i in 0..2000 {
            sqlx::query("INSERT INTO entries (idx, leaf) VALUES (?, zeroblob(500))")
                .bind(i)
                .execute(&mut writer)
                .await
                .unwrap();
        }
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            before,
            "without the checkpointer the commits stay in the WAL"
        );
        let checkpointer = tokio::spawn(run_checkpointer(pool.clone()));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::fs::metadata(&path).unwrap().len() <= before {
            assert!(std::time::Instant::now() < deadline, "no checkpoint ran");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        checkpointer.abort();
    }
}
