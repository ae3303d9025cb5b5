//! A server on a large log: the server creates its data directory (database, log key,
//! credentials) and is stopped, the bulk loader writes the workload's issuances into the
//! database (measuring its size at each milestone on the way), and the server starts again
//! on it. Before anything is measured, the checkpoint it signs is checked: signature by the
//! log key, size, and the root the loader computed independently.
//!
//! The database is the SQLite file of the data directory, or with `--database` a PostgreSQL
//! database made for the run (named in `--data-dir`, and kept, for the next runs), loaded
//! through the ledger's PostgreSQL writer under the writer lease while no server runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokenledger_core::checkpoint::Checkpoint;
use tokenledger_core::merkle::Hash;
use tokenledger_core::note::NoteVerifier;
use tokenledger_server::clock::{Clock, SystemClock};
use tokenledger_server::storage_errors::StorageErrors;
use tokenledger_server::store::LedgerReader;
use tokenledger_server::store::postgres::{DatabaseUrl, PostgresStore};
use tokenledger_server::store::sqlite::SqliteStore;

use crate::bulk::{self, BulkWriter, Timeline};
use crate::harness::Ledger;
use crate::pg::{BenchDatabase, PgServer};
use crate::report::thousands;
use crate::size::DbSize;
use crate::workload::Workload;
use crate::{block_on, progress};

/// Rows per bulk transaction: large, so that the random-key index pages each transaction
/// dirties are shared by many rows.
const BULK_BATCH: u64 = 100_000;
/// SQLite page cache of the bulk writer, MiB (holds a transaction's dirty pages).
const BULK_CACHE_MIB: u64 = 3_072;

/// The longest wait for the server's page cache warm-up (3.8 GB took ~7 s on the test VM).
const WARM_UP_LIMIT: Duration = Duration::from_secs(600);

/// The longest wait for PostgreSQL to release the writer lease of a writer that closed its
/// connection (the loader's, or a stopped server's).
const LEASE_LIMIT: Duration = Duration::from_secs(30);

/// The size of the database when the log reached a milestone.
#[derive(Clone, Debug)]
pub struct Milestone {
    pub size: DbSize,
    /// Bulk-load rate up to this milestone, entries per second.
    pub load_rate: f64,
}

/// A running server on a preloaded log of `entries` workload issuances (indexes
/// `0..entries`; entries appended later, such as resolutions, come after).
pub struct Preloaded {
    pub ledger: Ledger,
    pub workload: Workload,
    pub entries: u64,
    /// The verified checkpoint the server signed when it started on the loaded log.
    pub checkpoint: Checkpoint,
    pub verifier: NoteVerifier,
    pub milestones: Vec<Milestone>,
    /// Wall time of the bulk load (zero when an existing preload was reused).
    pub load_time: Duration,
    /// The sequencer `max_wait_ms` override the server runs with, if any.
    pub max_wait_ms: Option<u64>,
    /// How long the server took, after it started, to read the database into the page
    /// cache (waited for before anything is measured).
    pub warm_up: Duration,
    /// On PostgreSQL, the bytes of tables and indexes `pg_prewarm` read before that.
    pub warmed_bytes: Option<u64>,
    /// Kept so the temporary directory lives as long as the server.
    _temp: Option<tempfile::TempDir>,
}

impl Preloaded {
    /// Stops the server: SIGTERM, then a bounded wait for its clean exit.
    pub fn stop(self) {
        let mut server = self.ledger.server;
        server.stop();
    }

    /// The SQLite database file.
    pub fn db_path(&self) -> PathBuf {
        self.ledger.db_path()
    }

    /// The page cache warm-up: `7.2 s`, and on PostgreSQL what was read.
    pub fn warm_up_note(&self) -> String {
        match self.warmed_bytes {
            None => format!("{:.1} s", self.warm_up.as_secs_f64()),
            Some(bytes) => format!(
                "{:.1} s (PostgreSQL: pg_prewarm read every table and index, {} MB)",
                self.warm_up.as_secs_f64(),
                thousands(bytes / 1_000_000)
            ),
        }
    }

    /// The PostgreSQL database of the log, if it is there.
    pub fn database(&self) -> Option<&BenchDatabase> {
        self.ledger.database.as_deref()
    }

    /// `SQLite` or `PostgreSQL (host)`: where the log is, for titles.
    pub fn backend(&self) -> String {
        match self.database() {
            None => "SQLite".to_string(),
            Some(db) => format!("PostgreSQL ({})", db.server().host()),
        }
    }

    /// A reader of the loaded database in this process, through the server's own store
    /// (one connection): for the in-process baselines.
    pub async fn reader(&self) -> anyhow::Result<InProcessReader> {
        Ok(match self.database() {
            None => InProcessReader::Sqlite(SqliteStore::open_plain(&self.db_path(), 1).await?),
            Some(db) => {
                let url = DatabaseUrl::parse(db.url()).map_err(anyhow::Error::msg)?;
                let errors = Arc::new(StorageErrors::default());
                InProcessReader::Postgres(PostgresStore::open(&url, None, errors).await?)
            }
        })
    }
}

/// The server's store of a preloaded database, opened in the bench's process.
pub enum InProcessReader {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl InProcessReader {
    /// The store's reads.
    pub fn reads(&self) -> &dyn LedgerReader {
        match self {
            InProcessReader::Sqlite(store) => store,
            InProcessReader::Postgres(store) => store,
        }
    }

    /// Closes its connections.
    pub async fn close(self) {
        match self {
            InProcessReader::Sqlite(store) => store.close().await,
            InProcessReader::Postgres(store) => store.close().await,
        }
    }
}

/// Preloads `entries` issuances, measuring the database at each of `milestones` passed on
/// the way, and starts the server on the result (with `max_wait_ms` for its sequencer, if
/// given). With `dir`, works there and keeps it; a log already holding at least `entries`
/// entries there is reused as it is. With `postgres`, the log is in a database on that
/// server: a fresh one, or with `dir` the one named there.
pub fn preload(
    entries: u64,
    milestones: &[u64],
    dir: Option<&Path>,
    max_wait_ms: Option<u64>,
    postgres: Option<&PgServer>,
) -> anyhow::Result<Preloaded> {
    let temp = match dir {
        Some(_) => None,
        None => Some(tempfile::tempdir()?),
    };
    let work = dir.unwrap_or_else(|| temp.as_ref().expect("a temporary directory").path());
    let database = match (postgres, dir) {
        (None, _) => None,
        (Some(server), Some(dir)) => Some(Arc::new(block_on(BenchDatabase::in_dir(server, dir))?)),
        (Some(server), None) => Some(Arc::new(block_on(BenchDatabase::create(server))?)),
    };
    let ledger = Ledger::start_on(work, None, database.clone())?;
    let store = match &database {
        None => LoadedStore::Sqlite(ledger.db_path()),
        Some(db) => LoadedStore::Postgres(db),
    };
    let existing = ledger.log_size();
    let mut server = ledger.server;
    server.stop();

    let workload = Workload::standard();
    let started = Instant::now();
    let mut measured = Vec::new();
    let root = block_on(async {
        let mut writer = store.writer().await?;
        if existing < entries {
            let timeline = Timeline::ending_at(SystemClock.now_micros(), entries);
            let mut pending: Vec<u64> = milestones
                .iter()
                .copied()
                .filter(|m| *m > existing && *m <= entries)
                .collect();
            pending.sort_unstable();
            let mut reported = existing;
            progress(&format!(
                "preload: bulk-loading {} issuances from {} ({} per transaction)",
                thousands(entries),
                thousands(existing),
                thousands(BULK_BATCH)
            ));
            while writer.size() < entries {
                let end = match pending.first() {
                    Some(m) => *m,
                    None => entries,
                };
                bulk::load(
                    &mut writer,
                    &workload,
                    &timeline,
                    end,
                    BULK_BATCH,
                    async |_, p| {
                        if p.size >= reported + entries / 20 || p.size == end {
                            reported = p.size;
                            progress(&format!(
                                "preload: {} entries, {:.0} s, {} entries/s",
                                thousands(p.size),
                                p.elapsed.as_secs_f64(),
                                thousands(
                                    ((p.size - existing) as f64 / started.elapsed().as_secs_f64())
                                        as u64
                                )
                            ));
                        }
                        Ok(true)
                    },
                )
                .await?;
                if pending.first() == Some(&writer.size()) {
                    pending.remove(0);
                    let rate = (writer.size() - existing) as f64 / started.elapsed().as_secs_f64();
                    progress(&format!(
                        "preload: measuring the database at {}",
                        thousands(writer.size())
                    ));
                    let size = store.measure(&mut writer).await?;
                    measured.push(Milestone {
                        size,
                        load_rate: rate,
                    });
                }
            }
        }
        writer.checkpoint_wal().await?;
        let root = writer.root();
        let size = writer.size();
        writer.close().await?;
        if let LoadedStore::Postgres(db) = &store {
            db.wait_for_free_lease(LEASE_LIMIT).await?;
            db.analyze().await?;
        }
        anyhow::Ok((size, root))
    })?;
    let load_time = if existing < entries {
        started.elapsed()
    } else {
        Duration::ZERO
    };

    let ledger = Ledger::start_on(work, max_wait_ms, database)?;
    let (checkpoint, verifier) = verified_checkpoint(&ledger, root)?;
    // The SQLite engine reads its file into the page cache at start; PostgreSQL's files are
    // read by pg_prewarm.
    let (warm_up, warmed_bytes) = match &ledger.database {
        None => (ledger.wait_for_page_cache_warm_up(WARM_UP_LIMIT)?, None),
        Some(db) => {
            let started = Instant::now();
            let bytes = crate::block_on(db.prewarm())?;
            (started.elapsed(), Some(bytes))
        }
    };
    progress(&format!(
        "preload: server started on {} entries; checkpoint verified; page cache warm-up {:.1} s",
        thousands(checkpoint.size),
        warm_up.as_secs_f64()
    ));
    Ok(Preloaded {
        ledger,
        workload,
        entries,
        checkpoint,
        verifier,
        milestones: measured,
        load_time,
        max_wait_ms,
        warm_up,
        warmed_bytes,
        _temp: temp,
    })
}

/// The database a preload writes into.
enum LoadedStore<'a> {
    /// The SQLite file of the data directory.
    Sqlite(PathBuf),
    Postgres(&'a BenchDatabase),
}

impl LoadedStore<'_> {
    /// The bulk loader's writer, once no server holds the database.
    async fn writer(&self) -> anyhow::Result<BulkWriter> {
        match self {
            LoadedStore::Sqlite(path) => BulkWriter::open_for_bulk(path, BULK_CACHE_MIB).await,
            LoadedStore::Postgres(db) => {
                db.wait_for_free_lease(LEASE_LIMIT).await?;
                BulkWriter::open_postgres(db.url()).await
            }
        }
    }

    /// The database's size now (through `writer`'s connection on SQLite).
    async fn measure(&self, writer: &mut BulkWriter) -> anyhow::Result<DbSize> {
        match self {
            LoadedStore::Sqlite(path) => DbSize::measure_on(writer.conn(), path).await,
            LoadedStore::Postgres(db) => DbSize::measure_postgres(db).await,
        }
    }
}

/// The server's checkpoint, opened with its log key and checked against the loader's
/// `(size, root)`.
fn verified_checkpoint(
    ledger: &Ledger,
    (size, root): (u64, Hash),
) -> anyhow::Result<(Checkpoint, NoteVerifier)> {
    let verifier = NoteVerifier::parse(&ledger.server.log_key())?;
    let checkpoint = Checkpoint::open(&ledger.server.checkpoint(), &verifier)?;
    anyhow::ensure!(
        checkpoint.size == size && checkpoint.root == root,
        "the server's checkpoint (size {}, root {}) is not the loaded log's (size {size}, root {})",
        checkpoint.size,
        checkpoint.root.to_hex(),
        root.to_hex()
    );
    Ok((checkpoint, verifier))
}
