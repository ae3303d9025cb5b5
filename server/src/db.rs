//! The SQLite database: connection options (WAL, synchronous=FULL), pools, embedded migrations.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, SqliteConnection};

/// The migrations of schema/sqlite, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../schema/sqlite");

/// Connection options every tokenledger connection uses: WAL, fsync on every commit.
pub fn connect_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::from_str("sqlite://")
        .expect("static sqlite url")
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
}

/// Opens (creating if needed) the database at `path` and applies pending migrations.
/// Returns a pool for readers and short writes (credentials).
pub async fn open(path: &Path) -> anyhow::Result<SqlitePool> {
    create_private_file(path)?;
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(connect_options(path))
        .await
        .with_context(|| format!("opening database {}", path.display()))?;
    MIGRATOR
        .run(&pool)
        .await
        .with_context(|| format!("migrating database {}", path.display()))?;
    Ok(pool)
}

/// Creates the database file readable by its owner only (0600): it holds personal data.
/// SQLite gives the -wal and -shm files the same mode.
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

/// The one connection the sequencer writes the log through.
pub async fn open_writer(path: &Path) -> anyhow::Result<SqliteConnection> {
    connect_options(path)
        .connect()
        .await
        .with_context(|| format!("opening log writer on {}", path.display()))
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
}
