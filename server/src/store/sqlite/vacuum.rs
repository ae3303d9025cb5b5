//! `tokenledger-server vacuum`: rewrites a database (the server stopped) with
//! `auto_vacuum = INCREMENTAL`, so that a database made before new ones had it gives the
//! pages redaction frees back to the file system too ([`super::reclaim`]), and returns the
//! free pages it holds now.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, ensure};
use sqlx::Connection;

use super::backup::{connect_existing, take_over};

/// The database before and after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vacuumed {
    /// File size, bytes (the WAL folded in first).
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// `PRAGMA auto_vacuum` before (0 none, 1 full, 2 incremental); 2 after.
    pub auto_vacuum_before: i64,
}

/// Rewrites the database at `db` (no other process may have it open) with incremental
/// auto-vacuum, in WAL mode as before. SQLite writes the copy into a temporary file and
/// then the database through its rollback journal: it needs free disk about twice the
/// database's size.
pub async fn vacuum(db: &Path) -> anyhow::Result<Vacuumed> {
    ensure!(db.is_file(), "no database at {}", db.display());
    // Refused while another process has it open; folds the WAL into the file.
    take_over(db).await?;
    let bytes_before = std::fs::metadata(db)?.len();
    let mut conn = connect_existing(db, Duration::ZERO).await?;
    let (auto_vacuum_before,): (i64,) = sqlx::query_as("PRAGMA auto_vacuum")
        .fetch_one(&mut conn)
        .await?;
    let rewritten = async {
        sqlx::query("PRAGMA auto_vacuum = INCREMENTAL")
            .execute(&mut conn)
            .await?;
        sqlx::query("VACUUM").execute(&mut conn).await?;
        anyhow::Ok(())
    }
    .await
    .with_context(|| format!("vacuuming {}", db.display()));
    // WAL again, whatever happened: the server runs on nothing else.
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode = WAL")
        .fetch_one(&mut conn)
        .await?;
    let (auto_vacuum,): (i64,) = sqlx::query_as("PRAGMA auto_vacuum")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    rewritten?;
    ensure!(mode == "wal", "{} stayed in {mode} mode", db.display());
    ensure!(
        auto_vacuum == 2,
        "{} has auto_vacuum {auto_vacuum} after VACUUM",
        db.display()
    );
    Ok(Vacuumed {
        bytes_before,
        bytes_after: std::fs::metadata(db)?.len(),
        auto_vacuum_before,
    })
}
