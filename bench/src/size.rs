//! `size`: database bytes per issuance, indexes included, at the preload milestones (1 M and
//! 10 M by default), with the share of every table and index (SQLite's `dbstat`; on
//! PostgreSQL its relation sizes) and the mean canonical leaf beside it: the bytes that are
//! hashed, which no layout can avoid.

use std::path::Path;

use sqlx::{ConnectOptions, SqliteConnection};
use tokenledger_server::store::sqlite::connect_options;

use crate::pg::BenchDatabase;
use crate::preload::Preloaded;
use crate::report::{Report, Row, thousands};

/// DESIGN.md: at most 400 bytes per issuance, indexes included.
pub const TARGET_BYTES: f64 = 400.0;

/// Tables and indexes with the bytes of their pages.
pub type Objects = Vec<(String, u64)>;

/// The size of a database and of each of its tables and indexes.
#[derive(Clone, Debug, Default)]
pub struct DbSize {
    /// Entries in the log.
    pub entries: u64,
    /// The database file plus its WAL, after a truncating checkpoint.
    pub file_bytes: u64,
    /// (table or index, bytes of its pages), largest first.
    pub objects: Objects,
    /// Mean length of the canonical leaves.
    pub mean_leaf: f64,
}

impl DbSize {
    /// Measures the database at `path`, which no one else has open.
    pub async fn measure(path: &Path) -> anyhow::Result<DbSize> {
        let mut conn = connect_options(path).connect().await?;
        let size = DbSize::measure_on(&mut conn, path).await;
        sqlx::Connection::close(conn).await?;
        size
    }

    /// Measures through `conn`, the only connection to the database at `path`: checkpoints
    /// the WAL into the file first.
    pub async fn measure_on(conn: &mut SqliteConnection, path: &Path) -> anyhow::Result<DbSize> {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut *conn)
            .await?;
        let (entries,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(idx) + 1, 0) FROM entries")
            .fetch_one(&mut *conn)
            .await?;
        let entries = entries as u64;
        let objects: Vec<(String, i64)> =
            sqlx::query_as("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC, 1")
                .fetch_all(&mut *conn)
                .await?;
        let (mean_leaf,): (Option<f64>,) = sqlx::query_as("SELECT avg(length(leaf)) FROM entries")
            .fetch_one(&mut *conn)
            .await?;
        let file = |suffix: &str| {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            std::fs::metadata(name).map_or(0, |m| m.len())
        };
        Ok(DbSize {
            entries,
            file_bytes: file("") + file("-wal"),
            objects: objects.into_iter().map(|(n, b)| (n, b as u64)).collect(),
            mean_leaf: mean_leaf.unwrap_or(0.0),
        })
    }

    /// Measures the PostgreSQL database `db`, whose writer is idle or gone: `file_bytes` is
    /// the sum of its tables (heap, TOAST, free space and visibility maps) and indexes in
    /// the ledger's schema; the catalog and the WAL are left out.
    pub async fn measure_postgres(db: &BenchDatabase) -> anyhow::Result<DbSize> {
        let mut conn = db.connect().await?;
        let (entries,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(idx) + 1, 0) FROM entries")
            .fetch_one(&mut conn)
            .await?;
        let objects: Vec<(String, i64)> = sqlx::query_as(
            "SELECT c.relname::text, CASE WHEN c.relkind = 'r' THEN pg_table_size(c.oid) \
             ELSE pg_relation_size(c.oid) END \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i') ORDER BY 2 DESC, 1",
        )
        .fetch_all(&mut conn)
        .await?;
        let (mean_leaf,): (Option<f64>,) =
            sqlx::query_as("SELECT avg(octet_length(leaf))::float8 FROM entries")
                .fetch_one(&mut conn)
                .await?;
        sqlx::Connection::close(conn).await?;
        let objects: Objects = objects.into_iter().map(|(n, b)| (n, b as u64)).collect();
        Ok(DbSize {
            entries: entries as u64,
            file_bytes: objects.iter().map(|(_, b)| b).sum(),
            objects,
            mean_leaf: mean_leaf.unwrap_or(0.0),
        })
    }

    /// The objects holding at least 1 % of the file, and the others.
    pub fn split_objects(&self) -> (Objects, Objects) {
        let total: u64 = self.objects.iter().map(|(_, b)| b).sum();
        self.objects
            .iter()
            .cloned()
            .partition(|(_, bytes)| *bytes * 100 >= total)
    }

    /// File bytes per log entry.
    pub fn bytes_per_entry(&self) -> f64 {
        self.file_bytes as f64 / self.entries.max(1) as f64
    }
}

/// The size report of a preload's milestones.
pub fn report(pre: &Preloaded, quick: bool) -> Report {
    let mut report = Report::new(
        "size",
        format!(
            "size: {} database bytes per issuance, indexes included (bulk-loaded as ingest writes)",
            pre.backend()
        ),
        quick,
    );
    for m in &pre.milestones {
        let n = thousands(m.size.entries);
        let per = m.size.bytes_per_entry();
        let row = Row::plain(format!("bytes per issuance at {n}"), format!("{per:.0}"));
        // DESIGN.md's target is the SQLite layout's; PostgreSQL's has none (issue 20).
        let row = match pre.database() {
            None => row.target(format!("≤ {TARGET_BYTES:.0}"), per <= TARGET_BYTES),
            Some(_) => row,
        };
        report.row(row.against(
            format!("mean canonical leaf: {:.0} bytes", m.size.mean_leaf),
            per / m.size.mean_leaf.max(1.0),
        ));
        report.row(Row::plain(
            format!("  database file at {n}"),
            format!("{:.2} GiB", m.size.file_bytes as f64 / (1u64 << 30) as f64),
        ));
        let per_issuance = |bytes: u64| bytes as f64 / m.size.entries.max(1) as f64;
        let (large, small) = m.size.split_objects();
        for (name, bytes) in &large {
            report.row(Row::plain(
                format!("  {name} at {n}"),
                format!("{:.1} bytes per issuance", per_issuance(*bytes)),
            ));
        }
        report.row(Row::plain(
            format!("  {} other tables and indexes at {n}", small.len()),
            format!(
                "{:.1} bytes per issuance",
                per_issuance(small.iter().map(|(_, b)| b).sum())
            ),
        ));
        report.row(Row::plain(
            format!("  bulk-load rate up to {n}"),
            format!("{:.0} entries/s", m.load_rate),
        ));
        let key = format!("at_{}", m.size.entries);
        report.figure(&format!("{key}_bytes_per_issuance"), per.round());
        report.figure(&format!("{key}_file_bytes"), m.size.file_bytes);
        report.figure(&format!("{key}_mean_leaf_bytes"), m.size.mean_leaf.round());
        for (name, bytes) in &m.size.split_objects().0 {
            report.figure(&format!("{key}_{name}_bytes"), *bytes);
        }
    }
    if !pre.load_time.is_zero() {
        report.row(Row::plain(
            "  bulk load (not a target: preparation)",
            format!(
                "{} entries in {:.0} s",
                thousands(pre.entries),
                pre.load_time.as_secs_f64()
            ),
        ));
        report.figure("bulk_load_seconds", pre.load_time.as_secs_f64().round());
    }
    report.figure("target_bytes_per_issuance", TARGET_BYTES);
    report
}
