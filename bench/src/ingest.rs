//! `ingest`: durable ingest of real signed JWTs through the real server on loopback.
//!
//! Per algorithm (RS256, IAM's; ES256), a fresh server and database: a short calibration run
//! sizes the token pool, the pool is minted before the clock starts, then `clients` threads
//! post batches of `batch` tokens as fast as they are answered for `seconds` (closed loop).
//! Then, on another fresh server, single-token reports at a fixed offered rate (open loop)
//! for latency. Baselines from the same run: JWT verification and receipt signing on one
//! core, and SQLite inserts of the same rows in transactions of the server's mean batch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use serde_json::Value;
use tokenledger_e2e::issuer::{TestIssuer, now_secs};

use crate::baseline;
use crate::bulk::{BulkRow, token_sha256};
use crate::harness::{CpuUse, Ledger, SLOW_COMMIT_MS, SequencerMetrics, tuning_note};
use crate::load::{self, Body, LoadResult};
use crate::pg::{BenchDatabase, PgServer};
use crate::report::{Percentiles, Report, Row, fmt_ms, fmt_rate, ms, thousands};
use crate::size::DbSize;
use crate::workload::{VO, Workload};
use crate::{block_on, progress};

/// DESIGN.md targets on 2 cores.
pub(crate) const TARGET_RS256: f64 = 20_000.0;
const TARGET_ES256: f64 = 10_000.0;
const TARGET_P99: Duration = Duration::from_millis(25);

/// How the ingest benchmark runs.
#[derive(Clone, Debug)]
pub struct IngestOptions {
    /// Quick mode: figures are not judged against the targets.
    pub quick: bool,
    /// Concurrent clients of the throughput runs.
    pub clients: usize,
    /// Reports per request in the throughput runs.
    pub batch: usize,
    /// Length of each throughput run.
    pub seconds: f64,
    /// Size the token pool from a calibration run (else a fixed pool of `min_pool`).
    pub calibrate: bool,
    /// Smallest token pool of a throughput run.
    pub min_pool: usize,
    /// Largest token pool of a throughput run (minting RS256 costs about 1 ms a token).
    pub max_pool: usize,
    /// Offered rate of the latency run, single-token reports per second.
    pub rate: f64,
    /// Length of the latency run.
    pub latency_seconds: f64,
    /// Client threads of the latency run.
    pub latency_threads: usize,
    /// How long each one-core baseline runs.
    pub baseline_budget: Duration,
    /// Durable one-entry commits timed for the latency baseline.
    pub commit_samples: usize,
    /// Overrides the server's sequencer `max_wait_ms`.
    pub max_wait_ms: Option<u64>,
    /// Measure RS256 on PostgreSQL against the SQLite backend instead ([`crate::pg_ingest`]).
    pub database: Option<PgServer>,
}

impl IngestOptions {
    /// The full benchmark (minutes).
    pub fn full() -> IngestOptions {
        IngestOptions {
            quick: false,
            clients: 4,
            batch: 250,
            seconds: 20.0,
            calibrate: true,
            min_pool: 20_000,
            max_pool: 700_000,
            rate: 2_000.0,
            latency_seconds: 20.0,
            latency_threads: 32,
            baseline_budget: Duration::from_secs(2),
            commit_samples: 2_000,
            max_wait_ms: None,
            database: None,
        }
    }

    /// CI's quick mode (seconds): small fixed pools, short runs.
    pub fn quick() -> IngestOptions {
        IngestOptions {
            quick: true,
            clients: 2,
            batch: 50,
            seconds: 10.0,
            calibrate: false,
            min_pool: 600,
            max_pool: 600,
            rate: 200.0,
            latency_seconds: 1.5,
            latency_threads: 8,
            baseline_budget: Duration::from_millis(100),
            commit_samples: 50,
            max_wait_ms: None,
            database: None,
        }
    }
}

/// One throughput run of one algorithm.
pub(crate) struct Throughput {
    pub alg: Algorithm,
    pub load: LoadResult,
    pub cpu: CpuUse,
    pub metrics: SequencerMetrics,
    pub db: DbSize,
    /// The rows the server wrote (same claims and token hashes), for the insert baselines.
    pub rows: Vec<BulkRow>,
}

/// Runs the ingest benchmark (on PostgreSQL against SQLite with `database`).
pub fn run(opts: &IngestOptions) -> anyhow::Result<Report> {
    if let Some(server) = &opts.database {
        return crate::pg_ingest::run(opts, server);
    }
    let workload = Workload::standard();
    let rs = throughput(opts, &workload, Algorithm::RS256, None)?;
    let es = throughput(opts, &workload, Algorithm::ES256, None)?;
    let (latency, latency_metrics, latency_cpu) = latency(opts, &workload)?;

    progress("ingest: baselines (one core each; the server is stopped)");
    let issuer = TestIssuer::new(crate::workload::ISSUER);
    let sample = |alg| mint(&issuer, alg, &workload, 0..64, now_secs());
    let rs_verify = baseline::jwt_verify_rate(
        &issuer,
        Algorithm::RS256,
        &sample(Algorithm::RS256),
        opts.baseline_budget,
    )?;
    let es_verify = baseline::jwt_verify_rate(
        &issuer,
        Algorithm::ES256,
        &sample(Algorithm::ES256),
        opts.baseline_budget,
    )?;
    let sign = baseline::receipt_sign_rate(opts.baseline_budget)?;
    let batch = rs.metrics.mean_batch().round().max(1.0) as usize;
    let temp = tempfile::tempdir()?;
    let sqlite = block_on(baseline::sqlite_insert_rate(temp.path(), &rs.rows, batch))?;
    let commit = baseline::durable_commit(opts.commit_samples)?;

    let mut report = Report::new(
        "ingest",
        format!(
            "ingest: durable, batched, real JWTs over HTTP ({} clients x {} per request){}",
            opts.clients,
            opts.batch,
            tuning_note(opts.max_wait_ms)
        ),
        opts.quick,
    );
    for (run, target, verify) in [
        (&rs, TARGET_RS256, rs_verify),
        (&es, TARGET_ES256, es_verify),
    ] {
        let name = format!("{:?}", run.alg);
        let key = name.to_lowercase();
        let rate = run.load.rate();
        report.row(
            Row::plain(format!("{name} issuances/s, sustained"), fmt_rate(rate))
                .target(format!("≥ {}", fmt_rate(target)), rate >= target)
                .against(
                    format!(
                        "SQLite inserts, same rows, {batch}/tx: {}",
                        fmt_rate(sqlite)
                    ),
                    rate / sqlite,
                ),
        );
        report.row(Row::plain(format!("  {name} vs JWT verify"), "").against(
            format!("{name} verify, 1 core: {}", fmt_rate(verify)),
            rate / verify,
        ));
        report.row(
            Row::plain(format!("  {name} vs receipt signing"), "").against(
                format!("Ed25519 receipt sign, 1 core: {}", fmt_rate(sign)),
                rate / sign,
            ),
        );
        report.row(Row::plain(
            format!("  {name} run"),
            format!(
                "{} reports in {:.1} s, {} failed requests",
                thousands(run.load.acknowledged),
                run.load.elapsed.as_secs_f64(),
                run.load.failures
            ),
        ));
        if let Some(slowest) = run.load.slowest_second() {
            report.row(Row::plain(
                format!("  {name} slowest second (after the first)"),
                fmt_rate(slowest as f64),
            ));
        }
        let mut request = run.load.latencies.clone();
        if let Some(p) = Percentiles::of(&mut request) {
            report.row(Row::plain(
                format!("  {name} request latency under load, p50 / p99"),
                format!("{} / {}", fmt_ms(p.p50), fmt_ms(p.p99)),
            ));
            p.record(&mut report, &format!("{key}_request"));
        }
        report.row(Row::plain(
            format!("  {name} sequencer: mean batch, mean commit"),
            format!(
                "{:.0} entries, {:.2} ms",
                run.metrics.mean_batch(),
                run.metrics.mean_commit_ms()
            ),
        ));
        report.row(Row::plain(
            format!("  {name} CPU during the run"),
            run.cpu.describe(),
        ));
        run.cpu.record(&mut report, &key);
        report.row(Row::plain(
            format!("  {name} database after the run"),
            format!(
                "{:.0} bytes per entry ({} entries)",
                run.db.bytes_per_entry(),
                thousands(run.db.entries)
            ),
        ));
        report.figure(&format!("{key}_issuances_per_sec"), rate.round());
        report.figure(&format!("{key}_target_per_sec"), target);
        report.figure(&format!("{key}_seconds"), run.load.elapsed.as_secs_f64());
        report.figure(&format!("{key}_reports"), run.load.acknowledged);
        report.figure(&format!("{key}_failed_requests"), run.load.failures);
        report.figure(&format!("{key}_mean_batch"), run.metrics.mean_batch());
        report.figure(
            &format!("{key}_mean_commit_ms"),
            run.metrics.mean_commit_ms(),
        );
        report.figure(&format!("{key}_verify_per_sec_1core"), verify.round());
        report.figure(&format!("{key}_ratio_to_sqlite"), rate / sqlite);
        report.figure(&format!("{key}_ratio_to_verify_1core"), rate / verify);
        report.figure(&format!("{key}_ratio_to_sign_1core"), rate / sign);
        report.figure(
            &format!("{key}_db_bytes_per_entry"),
            run.db.bytes_per_entry(),
        );
        if let Some(e) = &run.load.first_failure {
            report.figure(&format!("{key}_first_failure"), e.as_str());
        }
    }

    let mut lat = latency.latencies.clone();
    if let Some(p) = Percentiles::of(&mut lat) {
        report.row(
            Row::plain(
                format!(
                    "latency at {} single reports/s, p50",
                    thousands(opts.rate as u64)
                ),
                fmt_ms(p.p50),
            )
            .against(
                format!("durable 1-entry commit p50: {}", fmt_ms(commit.p50)),
                ms(p.p50) / ms(commit.p50),
            ),
        );
        report.row(
            Row::plain(
                format!(
                    "latency at {} single reports/s, p99",
                    thousands(opts.rate as u64)
                ),
                fmt_ms(p.p99),
            )
            .target(format!("< {}", fmt_ms(TARGET_P99)), p.p99 < TARGET_P99)
            .against(
                format!("durable 1-entry commit p99: {}", fmt_ms(commit.p99)),
                ms(p.p99) / ms(commit.p99),
            ),
        );
        report.row(Row::plain(
            "  latency run",
            format!(
                "{} of {} reports acknowledged at {} over {:.1} s, max {}, {} failed",
                thousands(latency.acknowledged),
                thousands(latency.requests),
                fmt_rate(latency.rate()),
                latency.elapsed.as_secs_f64(),
                fmt_ms(p.max),
                latency.failures
            ),
        ));
        report.row(Row::plain(
            format!(
                "  latency run sequencer: mean batch, mean commit, commits over {SLOW_COMMIT_MS} ms"
            ),
            format!(
                "{:.1} entries, {:.2} ms, {} of {}",
                latency_metrics.mean_batch(),
                latency_metrics.mean_commit_ms(),
                latency_metrics.slow_commits,
                thousands(latency_metrics.batches)
            ),
        ));
        report.row(Row::plain("  latency run CPU", latency_cpu.describe()));
        latency_cpu.record(&mut report, "latency");
        p.record(&mut report, "latency");
        report.figure("latency_offered_per_sec", opts.rate);
        report.figure("latency_achieved_per_sec", latency.rate().round());
        report.figure("latency_failed_requests", latency.failures);
        report.figure("latency_target_p99_ms", ms(TARGET_P99));
        report.figure("latency_mean_batch", latency_metrics.mean_batch());
        report.figure("latency_mean_commit_ms", latency_metrics.mean_commit_ms());
        report.figure("latency_slow_commits", latency_metrics.slow_commits);
    }

    report.row(Row::plain(
        "baseline: RS256 verify+decode, 1 core",
        fmt_rate(rs_verify),
    ));
    report.row(Row::plain(
        "baseline: ES256 verify+decode, 1 core",
        fmt_rate(es_verify),
    ));
    report.row(Row::plain(
        "baseline: Ed25519 receipt sign, 1 core",
        fmt_rate(sign),
    ));
    report.row(Row::plain(
        format!("baseline: SQLite inserts of the same rows, {batch} per fsync'd tx"),
        fmt_rate(sqlite),
    ));
    report.row(Row::plain(
        "baseline: durable 1-entry commit, p50 / p99",
        format!("{} / {}", fmt_ms(commit.p50), fmt_ms(commit.p99)),
    ));
    report.figure("ed25519_receipt_sign_per_sec_1core", sign.round());
    report.figure("sqlite_inserts_per_sec", sqlite.round());
    report.figure("sqlite_batch", batch);
    if let Some(ms) = opts.max_wait_ms {
        report.figure("sequencer_max_wait_ms", ms);
    }
    commit.record(&mut report, "durable_commit");
    Ok(report)
}

/// Mints tokens `range` of the workload with the issuer's `alg` key, on every core.
pub(crate) fn mint(
    issuer: &TestIssuer,
    alg: Algorithm,
    workload: &Workload,
    range: std::ops::Range<u64>,
    iat: i64,
) -> Vec<String> {
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let ids: Vec<u64> = range.collect();
    let per = ids.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let parts: Vec<_> = ids
            .chunks(per)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|&i| issuer.mint(alg, &Value::Object(workload.claims(i, iat))))
                        .collect::<Vec<String>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().expect("minting thread"))
            .collect()
    })
}

fn bodies(tokens: &[String], batch: usize) -> Vec<Body> {
    tokens.chunks(batch.max(1)).map(Body::tokens).collect()
}

/// A fresh server (its log in `database`, else in SQLite), a calibration run to size the
/// pool, then the measured closed-loop run.
pub(crate) fn throughput(
    opts: &IngestOptions,
    workload: &Workload,
    alg: Algorithm,
    database: Option<Arc<BenchDatabase>>,
) -> anyhow::Result<Throughput> {
    let temp = tempfile::tempdir()?;
    let ledger = Ledger::start_on(temp.path(), opts.max_wait_ms, database)?;
    let credential = ledger.server.create_credential("issuer", Some(VO));
    let url = ledger.server.url().to_string();
    let iat = now_secs();
    let limit = Duration::from_secs_f64(opts.seconds);
    let mut next = 0u64;

    let mut pool = opts.min_pool;
    if opts.calibrate {
        let n = (opts.clients * opts.batch * 8) as u64;
        let tokens = mint(&ledger.issuer, alg, workload, next..next + n, iat);
        next += n;
        let cal = load::closed_loop(
            &url,
            &credential,
            &bodies(&tokens, opts.batch),
            opts.clients,
            limit,
        );
        anyhow::ensure!(
            cal.failures == 0,
            "{alg:?} calibration: {:?}",
            cal.first_failure
        );
        pool = ((cal.rate() * opts.seconds * 1.5) as usize).clamp(opts.min_pool, opts.max_pool);
        progress(&format!(
            "ingest {alg:?}: calibration {} reports/s; minting a pool of {pool}",
            cal.rate().round()
        ));
    }
    let minting = Instant::now();
    let tokens = mint(&ledger.issuer, alg, workload, next..next + pool as u64, iat);
    progress(&format!(
        "ingest {alg:?}: minted {pool} tokens in {:.1} s; posting for up to {} s",
        minting.elapsed().as_secs_f64(),
        opts.seconds
    ));
    let before = ledger.sequencer_metrics()?;
    let cpu = ledger.cpu_sampler();
    let run = load::closed_loop(
        &url,
        &credential,
        &bodies(&tokens, opts.batch),
        opts.clients,
        limit,
    );
    let cpu = cpu.finish();
    let metrics = ledger.sequencer_metrics()?.since(&before);
    anyhow::ensure!(
        run.acknowledged > 0,
        "{alg:?}: nothing acknowledged: {:?}",
        run.first_failure
    );
    let logged = ledger.log_size();
    anyhow::ensure!(
        logged >= next + run.acknowledged,
        "{alg:?}: {} reports acknowledged but the log holds {logged}",
        next + run.acknowledged
    );
    let db = ledger.stop_and_measure()?;
    let now_us = iat * 1_000_000;
    let rows = tokens[..run.acknowledged as usize]
        .iter()
        .enumerate()
        .map(|(k, token)| {
            let i = next + k as u64;
            BulkRow::jwt_issuance(
                workload.claims(i, iat),
                VO,
                token_sha256(token),
                now_us + k as i64,
            )
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Throughput {
        alg,
        load: run,
        cpu,
        metrics,
        db,
        rows,
    })
}

/// Single RS256 reports at the offered rate, on a fresh server.
fn latency(
    opts: &IngestOptions,
    workload: &Workload,
) -> anyhow::Result<(LoadResult, SequencerMetrics, CpuUse)> {
    let temp = tempfile::tempdir()?;
    let ledger = Ledger::start(temp.path(), opts.max_wait_ms)?;
    let credential = ledger.server.create_credential("issuer", Some(VO));
    let n = (opts.rate * opts.latency_seconds).ceil() as u64;
    progress(&format!("ingest latency: minting {n} RS256 tokens"));
    let tokens = mint(&ledger.issuer, Algorithm::RS256, workload, 0..n, now_secs());
    let bodies = bodies(&tokens, 1);
    progress(&format!(
        "ingest latency: {} single reports/s for {} s",
        opts.rate, opts.latency_seconds
    ));
    let before = ledger.sequencer_metrics()?;
    let cpu = ledger.cpu_sampler();
    let run = load::open_loop(
        ledger.server.url(),
        &credential,
        &bodies,
        opts.rate,
        opts.latency_threads,
        Duration::from_secs_f64(opts.latency_seconds + 0.5),
    );
    let cpu = cpu.finish();
    let metrics = ledger.sequencer_metrics()?.since(&before);
    anyhow::ensure!(
        run.acknowledged > 0,
        "latency run: nothing acknowledged: {:?}",
        run.first_failure
    );
    let mut server = ledger.server;
    server.stop();
    Ok((run, metrics, cpu))
}
