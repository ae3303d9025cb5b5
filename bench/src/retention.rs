//! `retention`: redaction of the older half of a preloaded log through the ledger's own
//! retention run (`service::retention::run_once`, appending `redaction` entries through the
//! sequencer, as the writer does every `[retention] run_every`), on a copy of the preload
//! (SQLite: the data directory copied beside it; PostgreSQL: `CREATE DATABASE ... TEMPLATE`),
//! so the preload stays whole for the other benchmarks.
//!
//! The ledger runs in this process on the copy, with a stopped clock and issuances and
//! sightings kept one day: at the first clock the older half is due (every token long
//! expired), at the second the older three quarters. The older half is redacted alone (the
//! redaction rate) and its space given back (`service::retention::reclaim`, as the writer
//! does after a run): the database's bytes per live (unredacted) entry against the copy's
//! before. Then writers append the ingest workload's issuances through the same sequencer
//! (`clients` jobs of `batch` entries each, as `ingest`'s requests), idle for a while, on
//! while the third quarter is redacted and while its space is given back: the ingest rates
//! during a redaction run and during the reclaim against the idle rate of the same run.
//!
//! The appends skip HTTP and JWT verification (the server's clock cannot be stopped), so the
//! ingest figures are the sequencer's and the store's, not `ingest`'s end-to-end rate.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use sqlx::ConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use tokenledger_core::entry::{EntryBody, EntryType, Issuance, LogEntry, ReportContext, Source};
use tokenledger_core::ids::Vo;
use tokenledger_core::retention::{Period, RetentionPolicy};
use tokenledger_server::clock::Clock;
use tokenledger_server::config::Config;
use tokenledger_server::data_dir;
use tokenledger_server::metrics::Metrics;
use tokenledger_server::sequencer::{BatchLimits, EntryKind};
use tokenledger_server::service::Ledger;
use tokenledger_server::service::pseudonyms::Pseudonyms;
use tokenledger_server::service::retention::{MAX_REDACTED_PER_ENTRY, reclaim, run_once};
use tokenledger_server::storage_errors::StorageErrors;
use tokenledger_server::store::postgres::{DatabaseUrl, PostgresLease, PostgresStore};
use tokenledger_server::store::sqlite::SqliteStore;
use tokenledger_server::store::{
    IssuanceKey, LedgerReader, LogRecord, Reclaimer, Registry, WriterLease,
};
use tokenledger_server::writer_role::{RoleKeeper, SequencerSetup};

use crate::PreloadOptions;
use crate::bulk::token_sha256;
use crate::pg::BenchDatabase;
use crate::progress;
use crate::report::{Report, Row, thousands};
use crate::workload::{VO, Workload};

/// How long issuances and sightings are kept in the run's policy.
const PERIOD: Period = Period::from_secs(86_400);

/// Numbers of the tokens the writers append: far above any preloaded one.
const FIRST_APPENDED_TOKEN: u64 = 1 << 40;

/// How the retention benchmark appends while it redacts.
#[derive(Clone, Debug)]
pub struct RetentionOptions {
    /// Concurrent writers.
    pub clients: usize,
    /// Entries per append (one request's reports).
    pub batch: usize,
    /// How long the idle ingest rate is measured.
    pub idle: Duration,
}

impl RetentionOptions {
    /// As `ingest`'s throughput runs: 4 clients of 250 reports.
    pub fn full() -> RetentionOptions {
        RetentionOptions {
            clients: 4,
            batch: 250,
            idle: Duration::from_secs(10),
        }
    }

    /// CI's quick mode.
    pub fn quick() -> RetentionOptions {
        RetentionOptions {
            clients: 2,
            batch: 50,
            idle: Duration::from_secs(1),
        }
    }
}

/// Preloads (or reuses the preload), copies it, and measures retention on the copy.
pub fn run(pre: &PreloadOptions, opts: &RetentionOptions) -> anyhow::Result<Report> {
    let mut loaded = pre.preload()?;
    anyhow::ensure!(
        loaded.entries >= 8,
        "the retention benchmark needs at least 8 preloaded entries"
    );
    loaded.ledger.server.stop();
    let backend = loaded.backend();
    let data = loaded.ledger.server.dir().to_path_buf();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        let copy = Copy::make(&data, loaded.database()).await?;
        let measured = measure(&copy, loaded.entries, opts).await;
        copy.remove();
        measured
    });
    drop(runtime);
    Ok(report?.report(&backend, pre.quick))
}

/// The copy of a preloaded log the benchmark changes, with the configuration of its ledger.
enum Copy {
    Sqlite {
        dir: tempfile::TempDir,
        config: Config,
    },
    Postgres {
        db: BenchDatabase,
        config: Config,
    },
}

impl Copy {
    /// Copies the preload of the (stopped) server whose data directory is `data`.
    async fn make(data: &Path, database: Option<&BenchDatabase>) -> anyhow::Result<Copy> {
        let config_file = data.join("e2e-config.toml");
        let mut config = Config::load(config_file.is_file().then_some(config_file.as_path()))?;
        match database {
            None => {
                let parent = data.parent().unwrap_or(Path::new("."));
                let dir = tempfile::Builder::new()
                    .prefix(".retention-copy-")
                    .tempdir_in(parent)
                    .with_context(|| format!("making a directory in {}", parent.display()))?;
                progress(&format!(
                    "retention: copying {} into {}",
                    data.display(),
                    dir.path().display()
                ));
                for entry in std::fs::read_dir(data)? {
                    let entry = entry?;
                    if entry.file_type()?.is_file() {
                        std::fs::copy(entry.path(), dir.path().join(entry.file_name()))
                            .with_context(|| format!("copying {}", entry.path().display()))?;
                    }
                }
                config.server.data_dir = dir.path().to_path_buf();
                Ok(Copy::Sqlite { dir, config })
            }
            Some(db) => {
                config.server.data_dir = data.to_path_buf();
                Ok(Copy::Postgres {
                    db: db.copy().await?,
                    config,
                })
            }
        }
    }

    fn config(&self) -> &Config {
        match self {
            Copy::Sqlite { config, .. } | Copy::Postgres { config, .. } => config,
        }
    }

    /// The database's bytes: on SQLite the file and its WAL after a truncating checkpoint
    /// (free pages included), on PostgreSQL `pg_database_size`.
    async fn bytes(&self) -> anyhow::Result<u64> {
        match self {
            Copy::Sqlite { config, .. } => {
                let path = config.db_path();
                let mut conn = SqliteConnectOptions::new()
                    .filename(&path)
                    .busy_timeout(Duration::from_secs(30))
                    .connect()
                    .await?;
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&mut conn)
                    .await?;
                sqlx::Connection::close(conn).await?;
                let file = |suffix: &str| {
                    let mut name = path.as_os_str().to_owned();
                    name.push(suffix);
                    std::fs::metadata(PathBuf::from(name)).map_or(0, |m| m.len())
                };
                Ok(file("") + file("-wal"))
            }
            Copy::Postgres { db, .. } => {
                let mut conn = db.connect().await?;
                let (bytes,): (i64,) =
                    sqlx::query_as("SELECT pg_database_size(current_database())")
                        .fetch_one(&mut conn)
                        .await?;
                sqlx::Connection::close(conn).await?;
                Ok(bytes as u64)
            }
        }
    }

    /// `PRAGMA auto_vacuum` of the SQLite copy (0 none, 2 incremental).
    async fn auto_vacuum(&self) -> anyhow::Result<Option<i64>> {
        let Copy::Sqlite { config, .. } = self else {
            return Ok(None);
        };
        let mut conn = SqliteConnectOptions::new()
            .filename(config.db_path())
            .connect()
            .await?;
        let (mode,): (i64,) = sqlx::query_as("PRAGMA auto_vacuum")
            .fetch_one(&mut conn)
            .await?;
        sqlx::Connection::close(conn).await?;
        Ok(Some(mode))
    }

    /// Removes the copy (a PostgreSQL one is dropped unless `--keep`).
    fn remove(self) {
        match self {
            Copy::Sqlite { dir, .. } => drop(dir),
            Copy::Postgres { db, .. } => drop(db),
        }
    }
}

/// The time of the run's ledger: set by the benchmark, stopped in between.
struct SetClock(AtomicI64);

impl Clock for SetClock {
    fn now_micros(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One engine's store, as the ledger uses it.
struct Stores {
    reader: Arc<dyn LedgerReader>,
    registry: Arc<dyn Registry>,
    reclaimer: Arc<dyn Reclaimer>,
    lease: Arc<dyn WriterLease>,
    checkpointer: Option<tokio::task::JoinHandle<()>>,
}

/// The ledger of the copy, open in this process as a server opens it, the writer.
struct InProcess {
    ledger: Ledger,
    reclaimer: Arc<dyn Reclaimer>,
    /// Holds the writer role.
    _keeper: RoleKeeper,
    /// SQLite: the WAL checkpointer a server runs.
    checkpointer: Option<tokio::task::JoinHandle<()>>,
}

impl InProcess {
    async fn open(copy: &Copy, clock: Arc<dyn Clock>) -> anyhow::Result<InProcess> {
        let config = copy.config();
        let errors = Arc::new(StorageErrors::default());
        let Stores {
            reader,
            registry,
            reclaimer,
            lease,
            checkpointer,
        } = match copy {
            Copy::Sqlite { .. } => {
                let path = config.db_path();
                let store = SqliteStore::open(&path, errors).await?;
                Stores {
                    lease: Arc::new(store.lease(&path, config.log.compress_after)),
                    checkpointer: Some(tokio::spawn(store.clone().run_checkpointer())),
                    reader: Arc::new(store.clone()),
                    registry: Arc::new(store.clone()),
                    reclaimer: Arc::new(store),
                }
            }
            Copy::Postgres { db, .. } => {
                let url = DatabaseUrl::parse(db.url()).map_err(anyhow::Error::msg)?;
                let store = PostgresStore::open(&url, None, errors).await?;
                Stores {
                    lease: Arc::new(PostgresLease::new(
                        url,
                        store.decoders(),
                        config.log.compress_after,
                    )),
                    checkpointer: None,
                    reader: Arc::new(store.clone()),
                    registry: Arc::new(store.clone()),
                    reclaimer: Arc::new(store),
                }
            }
        };
        let (signer, secret) =
            data_dir::open_secrets(config, reader.as_ref(), &"the benchmark's copy").await?;
        let setup = SequencerSetup {
            signer,
            origin: config.log.origin.clone(),
            limits: BatchLimits {
                max_batch: config.sequencer.max_batch,
                max_wait: Duration::from_millis(config.sequencer.max_wait_ms),
                queue_depth: config.sequencer.queue_depth,
            },
            metrics: Arc::new(Metrics::default()),
            clock: clock.clone(),
        };
        let keeper = RoleKeeper::start(lease, "bench".into(), reader.clone(), setup).await?;
        let ledger = Ledger {
            reader,
            role: keeper.role(),
            pseudonyms: Pseudonyms::new(secret, registry, clock.clone()),
            clock,
        };
        Ok(InProcess {
            ledger,
            reclaimer,
            _keeper: keeper,
            checkpointer,
        })
    }

    /// `logged_at` of the entry at `index`.
    async fn logged_at(&self, index: u64) -> anyhow::Result<i64> {
        let records = self.ledger.reader.entries(index, index + 1).await?;
        match records.first() {
            Some(LogRecord::Leaf((_, leaf))) => Ok(LogEntry::from_canonical_bytes(leaf)?.logged_at),
            _ => Err(anyhow!("entry {index} is not a stored leaf")),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.abort();
        }
    }
}

/// Redactions of one clock.
#[derive(Clone, Copy, Debug, Default)]
struct Redacted {
    entries: u64,
    /// `redaction` entries appended.
    logged: u64,
    elapsed: Duration,
}

impl Redacted {
    fn rate(&self) -> f64 {
        self.entries as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Retention runs from `*from` until one redacts nothing.
async fn redact_due(
    ledger: &Ledger,
    policy: &RetentionPolicy,
    vos: &[Vo],
    from: &mut u64,
) -> anyhow::Result<Redacted> {
    let started = Instant::now();
    let mut done = Redacted::default();
    loop {
        let outcome = run_once(ledger, policy, vos, *from, MAX_REDACTED_PER_ENTRY)
            .await
            .map_err(|e| anyhow!("retention run: {e}"))?;
        *from = outcome.next_from;
        done.entries += outcome.redacted;
        done.logged += outcome.logged.len() as u64;
        progress(&format!(
            "retention: {} entries redacted, next run from {}",
            thousands(done.entries),
            thousands(*from)
        ));
        if outcome.redacted == 0 {
            done.elapsed = started.elapsed();
            return Ok(done);
        }
    }
}

/// Writers appending the ingest workload's issuances until stopped.
struct Writers {
    stop: Arc<AtomicBool>,
    appended: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Writers {
    fn start(ledger: &Ledger, opts: &RetentionOptions) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let appended = Arc::new(AtomicU64::new(0));
        let next = Arc::new(AtomicU64::new(FIRST_APPENDED_TOKEN));
        let workload = Workload::standard();
        let tasks = (0..opts.clients)
            .map(|_| {
                let (ledger, stop, appended, next) =
                    (ledger.clone(), stop.clone(), appended.clone(), next.clone());
                let batch = opts.batch as u64;
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let first = next.fetch_add(batch, Ordering::Relaxed);
                        let iat = ledger.clock.now_secs();
                        let entries = (first..first + batch)
                            .map(|i| {
                                let ctx = ReportContext {
                                    source: Source::Jwt,
                                    vo: VO.to_string(),
                                    grant_type: None,
                                    parent_jti: None,
                                    refresh_jti: None,
                                    token_sha256: Some(token_sha256(&format!(
                                        "unsigned bench token {i} {}",
                                        workload.seed
                                    ))),
                                    feed: None,
                                };
                                let issuance = Issuance::from_claims(workload.claims(i, iat), ctx)?;
                                let key = IssuanceKey::of(&issuance);
                                ledger
                                    .prepare(
                                        EntryBody::Issuance(Box::new(issuance)),
                                        EntryKind::Issuance(key),
                                    )
                                    .map_err(|e| anyhow!("{e}"))
                            })
                            .collect::<anyhow::Result<Vec<_>>>()?;
                        ledger.append_entries(entries).await?;
                        appended.fetch_add(batch, Ordering::Relaxed);
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        Writers {
            stop,
            appended,
            tasks,
        }
    }

    fn appended(&self) -> u64 {
        self.appended.load(Ordering::Relaxed)
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await??;
        }
        Ok(())
    }
}

/// What one run measured.
struct Measured {
    entries: u64,
    size_before: u64,
    bytes_before: u64,
    /// The older half, redacted alone.
    half: Redacted,
    /// Its space given back alone: steps, time.
    reclaim: (u64, Duration),
    size_after: u64,
    bytes_after: u64,
    /// The third quarter, redacted while writers append.
    during: Redacted,
    idle_rate: f64,
    ingest_during_rate: f64,
    /// Its space given back while they append: steps, time, their rate.
    reclaim_during: (u64, Duration, f64),
    auto_vacuum: Option<i64>,
}

async fn measure(copy: &Copy, entries: u64, opts: &RetentionOptions) -> anyhow::Result<Measured> {
    let auto_vacuum = copy.auto_vacuum().await?;
    let bytes_before = copy.bytes().await?;
    let clock = Arc::new(SetClock(AtomicI64::new(0)));
    let ledger = InProcess::open(copy, clock.clone()).await?;
    let size_before = ledger.ledger.head().size;
    let (half, three_quarters) = (entries / 2, entries / 4 * 3);
    let due_up_to = |logged_at: i64| logged_at + PERIOD.micros();
    let first_clock = due_up_to(ledger.logged_at(half - 1).await?);
    let second_clock = due_up_to(ledger.logged_at(three_quarters - 1).await?);
    let mut policy = RetentionPolicy::default();
    policy.set(EntryType::Issuance, PERIOD);
    policy.set(EntryType::Sighting, PERIOD);
    policy.validate()?;
    let vos = [Vo::unchecked(VO)];
    let mut from = 0;

    progress(&format!(
        "retention: redacting the older half ({} entries) alone",
        thousands(half)
    ));
    clock.0.store(first_clock, Ordering::Relaxed);
    let half_redacted = redact_due(&ledger.ledger, &policy, &vos, &mut from).await?;
    progress("retention: giving the space back alone");
    let started = Instant::now();
    let steps = reclaim(ledger.reclaimer.as_ref()).await?;
    let reclaimed = (steps, started.elapsed());
    let size_after = ledger.ledger.head().size;
    let bytes_after = copy.bytes().await?;

    progress(&format!(
        "retention: {} writers of {} entries, idle for {:.0} s",
        opts.clients,
        opts.batch,
        opts.idle.as_secs_f64()
    ));
    let writers = Writers::start(&ledger.ledger, opts);
    let started = Instant::now();
    tokio::time::sleep(opts.idle).await;
    let (idle_count, idle_time) = (writers.appended(), started.elapsed());
    progress(&format!(
        "retention: redacting the third quarter ({} entries) while they append",
        thousands(three_quarters - half)
    ));
    clock.0.store(second_clock, Ordering::Relaxed);
    let during = redact_due(&ledger.ledger, &policy, &vos, &mut from).await;
    let during_count = writers.appended() - idle_count;
    let reclaimed_during = match during {
        Ok(during) => {
            progress("retention: giving the space back while they append");
            let before = writers.appended();
            let started = Instant::now();
            let steps = reclaim(ledger.reclaimer.as_ref()).await;
            let (count, time) = (writers.appended() - before, started.elapsed());
            steps
                .map(|steps| {
                    let rate = count as f64 / time.as_secs_f64().max(1e-9);
                    (during, (steps, time, rate))
                })
                .map_err(anyhow::Error::from)
        }
        Err(e) => Err(e),
    };
    let stopped = writers.stop().await;
    let (during, reclaim_during) = reclaimed_during?;
    stopped?;
    drop(ledger);
    Ok(Measured {
        entries,
        size_before,
        bytes_before,
        half: half_redacted,
        reclaim: reclaimed,
        size_after,
        bytes_after,
        during,
        idle_rate: idle_count as f64 / idle_time.as_secs_f64(),
        ingest_during_rate: during_count as f64 / during.elapsed.as_secs_f64().max(1e-9),
        reclaim_during,
        auto_vacuum,
    })
}

impl Measured {
    fn report(&self, backend: &str, quick: bool) -> Report {
        let n = thousands(self.entries);
        let mut report = Report::new(
            "retention",
            format!(
                "retention: redacting the older half of {n} preloaded entries on {backend} \
                 (retention runs through the sequencer, on a copy of the preload)"
            ),
            quick,
        );
        let live_after = self.size_after - self.half.entries;
        let per_before = self.bytes_before as f64 / self.size_before.max(1) as f64;
        let per_after = self.bytes_after as f64 / live_after.max(1) as f64;
        let half_rate = self.half.rate();
        let during_rate = self.during.rate();
        let (reclaim_steps, reclaim_time) = self.reclaim;
        let (steps_during, time_during, ingest_reclaim_rate) = self.reclaim_during;
        report.row(Row::plain(
            "redaction rate, older half alone",
            entries_per_sec(half_rate),
        ));
        report.row(Row::plain(
            "  entries redacted",
            format!(
                "{} of {n} (the older half: {}) in {} redaction entries, {:.1} s",
                thousands(self.half.entries),
                if self.half.entries == self.entries / 2 {
                    "exactly"
                } else {
                    "NOT exactly"
                },
                self.half.logged,
                self.half.elapsed.as_secs_f64()
            ),
        ));
        report.row(Row::plain(
            "database bytes per live entry before",
            format!("{per_before:.0}"),
        ));
        report.row(
            Row::plain(
                "database bytes per live entry after (half redacted, space given back)",
                format!("{per_after:.0}"),
            )
            .against(
                format!("before: {per_before:.0}"),
                per_after / per_before.max(1e-9),
            ),
        );
        let gib = |b: u64| format!("{:.3} GiB", b as f64 / (1u64 << 30) as f64);
        report.row(Row::plain(
            "  database before, after",
            format!(
                "{} ({} entries), {} ({} live of {})",
                gib(self.bytes_before),
                thousands(self.size_before),
                gib(self.bytes_after),
                thousands(live_after),
                thousands(self.size_after)
            ),
        ));
        report.row(Row::plain(
            "  giving the space back",
            format!(
                "{:.1} s, {} steps{}",
                reclaim_time.as_secs_f64(),
                reclaim_steps,
                match self.auto_vacuum {
                    None => " (VACUUM (ANALYZE); PostgreSQL reuses the space, keeps the files)"
                        .to_string(),
                    Some(2) => " (SQLite incremental vacuum)".to_string(),
                    Some(mode) => format!(
                        " (SQLite auto_vacuum {mode}: a preload made before incremental \
                         auto-vacuum keeps its free pages; `tokenledger-server vacuum` converts it)"
                    ),
                }
            ),
        ));
        report.row(
            Row::plain(
                "ingest during a redaction run (in process)",
                entries_per_sec(self.ingest_during_rate),
            )
            .against(
                format!("idle, same run: {}", entries_per_sec(self.idle_rate)),
                self.ingest_during_rate / self.idle_rate.max(1e-9),
            ),
        );
        report.row(
            Row::plain(
                "  redaction rate of that run (third quarter)",
                entries_per_sec(during_rate),
            )
            .against(
                format!("alone: {}", entries_per_sec(half_rate)),
                during_rate / half_rate.max(1e-9),
            ),
        );
        report.row(
            Row::plain(
                "ingest while its space is given back (in process)",
                entries_per_sec(ingest_reclaim_rate),
            )
            .against(
                format!("idle, same run: {}", entries_per_sec(self.idle_rate)),
                ingest_reclaim_rate / self.idle_rate.max(1e-9),
            ),
        );
        report.row(Row::plain(
            "  giving that space back",
            format!("{:.1} s, {steps_during} steps", time_during.as_secs_f64()),
        ));
        report.figure("entries", self.entries);
        report.figure("redacted", self.half.entries);
        report.figure("redaction_entries", self.half.logged);
        report.figure("redaction_rate", half_rate.round());
        report.figure("redaction_rate_while_appending", during_rate.round());
        report.figure("ingest_idle_rate", self.idle_rate.round());
        report.figure(
            "ingest_during_redaction_rate",
            self.ingest_during_rate.round(),
        );
        report.figure("ingest_during_reclaim_rate", ingest_reclaim_rate.round());
        report.figure("bytes_per_live_entry_before", per_before.round());
        report.figure("bytes_per_live_entry_after", per_after.round());
        report.figure("database_bytes_before", self.bytes_before);
        report.figure("database_bytes_after", self.bytes_after);
        report.figure("live_entries_after", live_after);
        report.figure(
            "reclaim_seconds",
            (reclaim_time.as_secs_f64() * 10.0).round() / 10.0,
        );
        report.figure("reclaim_steps", reclaim_steps);
        if let Some(mode) = self.auto_vacuum {
            report.figure("sqlite_auto_vacuum", mode);
        }
        report
    }
}

/// `12,345 entries/s`.
fn entries_per_sec(rate: f64) -> String {
    format!("{} entries/s", thousands(rate.round() as u64))
}
