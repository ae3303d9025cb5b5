//! Backups of the database while the server runs (`VACUUM INTO`: one consistent snapshot,
//! written beside the target and renamed into place, 0600), and restores of one into a data
//! directory. Neither touches the log key or the pseudonym secret: they never change, and are
//! kept as files (0600) apart from the database's backups.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use tokenledger_core::merkle::{self, Hash};

use super::{SqliteStore, connection, log};
use crate::config::Config;
use crate::keys;
use crate::store::ownership;

/// The log a database holds: what a backup saved, or what a restore put back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogState {
    /// Number of entries.
    pub size: u64,
    /// Root of the stored tree of `size` entries.
    pub root: Hash,
    /// Size of the newest signed checkpoint stored with it (the server stores one a second).
    pub newest_stored_checkpoint: Option<u64>,
}

/// Copies the database at `db_path` (live or not) into the new file `to`, readable by its
/// owner only, and returns the log it holds. Refuses to overwrite anything.
pub async fn backup(db_path: &Path, to: &Path) -> anyhow::Result<LogState> {
    ensure!(db_path.is_file(), "no database at {}", db_path.display());
    ensure!(
        !to.exists(),
        "{} exists: a backup never replaces a file",
        to.display()
    );
    let partial = partial_path(to)?;
    create_private_file(&partial)?;
    let saved = async {
        let target = partial
            .to_str()
            .with_context(|| format!("{} is not UTF-8", partial.display()))?;
        let mut source = connect_existing(db_path, BUSY_TIMEOUT).await?;
        sqlx::query("VACUUM INTO ?")
            .bind(target)
            .execute(&mut source)
            .await
            .with_context(|| format!("copying {} into {target}", db_path.display()))?;
        source.close().await?;
        let state = read_state(&partial).await?;
        File::open(&partial)?.sync_all()?;
        rename_durably(&partial, to)?;
        Ok(state)
    }
    .await;
    if saved.is_err() {
        // Best effort: the error that made the backup fail is the one worth reporting.
        let _ = std::fs::remove_file(&partial);
    }
    saved
}

/// Puts the backup `from` in place as the database of `config`'s data directory (which must
/// exist: `data_dir::create` makes it 0700) and returns the log it holds. A data directory that holds a database is
/// refused unless `replace`, and then only if no process has that database open. The backup
/// must pass SQLite's quick check and come from this or an older version; a log key or
/// pseudonym secret already in the directory must be the backup's ledger's.
pub async fn restore(from: &Path, config: &Config, replace: bool) -> anyhow::Result<LogState> {
    let dir = &config.server.data_dir;
    let target = config.db_path();
    let present = database_files(&target).iter().any(|p| p.exists());
    if present && !replace {
        bail!(
            "{} holds a database: restore into a data directory without one, or give --force \
             to replace it (with the server stopped)",
            dir.display()
        );
    }
    let partial = partial_path(&target)?;
    let mut copy = create_private_file(&partial)?;
    let restored = async {
        let mut source = File::open(from).with_context(|| format!("opening {}", from.display()))?;
        std::io::copy(&mut source, &mut copy)
            .with_context(|| format!("copying {} to {}", from.display(), partial.display()))?;
        copy.sync_all()?;
        drop(copy);
        let state = check_backup(&partial, config)
            .await
            .with_context(|| format!("checking the backup {}", from.display()))?;
        if present {
            take_over(&target).await?;
        }
        rename_durably(&partial, &target)?;
        Ok(state)
    }
    .await;
    if restored.is_err() {
        // Best effort, as in `backup`.
        let _ = std::fs::remove_file(&partial);
    }
    restored
}

/// The database file and the WAL, shared-memory and rollback journal files SQLite keeps
/// beside it.
fn database_files(db: &Path) -> [PathBuf; 4] {
    ["", "-wal", "-shm", "-journal"].map(|suffix| {
        let mut name = db.as_os_str().to_os_string();
        name.push(suffix);
        PathBuf::from(name)
    })
}

/// Where a file is written before it is renamed to `path`: `<path>.partial`.
fn partial_path(path: &Path) -> anyhow::Result<PathBuf> {
    let mut name: OsString = path
        .file_name()
        .with_context(|| format!("{} does not name a file", path.display()))?
        .to_os_string();
    name.push(".partial");
    Ok(path.with_file_name(name))
}

/// Creates an empty file readable by its owner only; an existing one is an error.
fn create_private_file(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| {
            format!(
                "creating {} (a leftover of an interrupted run? remove it)",
                path.display()
            )
        })
}

/// Renames `from` to `to` and makes the rename durable (fsync of the directory).
fn rename_durably(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::rename(from, to)
        .with_context(|| format!("renaming {} to {}", from.display(), to.display()))?;
    let parent = match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()?;
    Ok(())
}

/// How long a backup or restore waits for a lock the server holds for a moment.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection to an existing database, changing none of its settings; a lock held by
/// another connection is waited for up to `busy_timeout`.
pub(super) async fn connect_existing(
    path: &Path,
    busy_timeout: Duration,
) -> anyhow::Result<SqliteConnection> {
    existing(path, busy_timeout)
        .connect()
        .await
        .with_context(|| format!("opening database {}", path.display()))
}

/// Options of a connection to the existing database at `path`.
fn existing(path: &Path, busy_timeout: Duration) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .busy_timeout(busy_timeout)
}

/// The log held by the database at `path`; its stored hashes must be complete.
async fn read_state(path: &Path) -> anyhow::Result<LogState> {
    let mut conn = connect_existing(path, BUSY_TIMEOUT).await?;
    let size = log::log_size(&mut conn).await?;
    let stored = log::stored_hash_rows(&mut conn).await?;
    ensure!(
        stored == merkle::stored_hash_count(size),
        "{size} entries need {} stored hashes, found {stored}",
        merkle::stored_hash_count(size)
    );
    let root = log::load_frontier(&mut conn, size).await?.root();
    let (newest,): (Option<i64>,) = sqlx::query_as("SELECT MAX(size) FROM checkpoints")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok(LogState {
        size,
        root,
        newest_stored_checkpoint: newest.map(|n| n as u64),
    })
}

/// Checks a copied backup before it is put in place: SQLite's quick check, migrations this
/// binary knows, complete stored hashes, and the secrets already in the data directory.
async fn check_backup(path: &Path, config: &Config) -> anyhow::Result<LogState> {
    let mut conn = connect_existing(path, BUSY_TIMEOUT).await?;
    let (check,): (String,) = sqlx::query_as("PRAGMA quick_check")
        .fetch_one(&mut conn)
        .await?;
    ensure!(check == "ok", "SQLite's quick check says: {check}");
    let applied: Vec<(i64,)> = sqlx::query_as("SELECT version FROM _sqlx_migrations")
        .fetch_all(&mut conn)
        .await
        .context("not a tokenledger database (no migrations table)")?;
    for (version,) in applied {
        ensure!(
            connection::MIGRATOR.iter().any(|m| m.version == version),
            "it was written by a newer tokenledger-server (migration {version} is unknown here)"
        );
    }
    conn.close().await?;
    let reader = SqliteStore::over(
        SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(existing(path, BUSY_TIMEOUT))
            .await
            .with_context(|| format!("opening database {}", path.display()))?,
    );
    if config.log_key_path().exists() {
        let signer = keys::load_log_key(&config.log_key_path(), &config.log.origin)?;
        ownership::check_log_key(&reader, &signer.verifier())
            .await
            .with_context(|| format!("checking {}", config.log_key_path().display()))?;
    }
    if config.ledger_secret_path().exists() {
        let secret = keys::load_ledger_secret(&config.ledger_secret_path())?;
        ownership::check_ledger_secret(&reader, &secret)
            .await
            .with_context(|| format!("checking {}", config.ledger_secret_path().display()))?;
    }
    reader.close().await;
    read_state(path).await
}

/// Proves that no process has the database at `db` open (a running server would keep its
/// own copy of the old log) by leaving WAL mode, which SQLite allows only to its sole user;
/// that also folds the WAL into the file and removes it, so nothing of it can be applied to
/// the restored database.
pub(super) async fn take_over(db: &Path) -> anyhow::Result<()> {
    let mut conn = connect_existing(db, Duration::ZERO).await?;
    let mode: Result<(String,), sqlx::Error> = sqlx::query_as("PRAGMA journal_mode = DELETE")
        .fetch_one(&mut conn)
        .await;
    conn.close().await?;
    let refused = match mode {
        Ok((mode,)) if mode == "delete" => return Ok(()),
        Ok((mode,)) => format!("it stayed in {mode} mode"),
        Err(e) => e.to_string(),
    };
    bail!(
        "{} is open in another process (a running server?): stop it before replacing its \
         database ({refused})",
        db.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_files_of_a_database() {
        let files = database_files(Path::new("d/tokenledger.db"));
        assert_eq!(
            files.map(|p| p.display().to_string()),
            [
                "d/tokenledger.db",
                "d/tokenledger.db-wal",
                "d/tokenledger.db-shm",
                "d/tokenledger.db-journal"
            ]
        );
        assert_eq!(
            partial_path(Path::new("b/x.db")).unwrap(),
            Path::new("b/x.db.partial")
        );
    }
}
