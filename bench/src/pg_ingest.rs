//! `ingest --database URL`: durable RS256 ingest through the real server with its log in
//! PostgreSQL, and in the same run, with the same workload and binaries, the same ingest on
//! the SQLite backend (issue 20's goal: PostgreSQL at least half of SQLite's rate).
//!
//! Each server gets a fresh database ([`crate::pg`]); PostgreSQL is checkpointed before and
//! after its run, so neither run inherits the other's deferred writes. Baselines afterwards,
//! same run: the rows the PostgreSQL server wrote inserted raw into a plain table (one
//! multi-row statement and one `synchronous_commit = on` transaction per batch of the
//! server's mean size, no ledger), the same rows through the ledger's PostgreSQL writer
//! alone, the SQLite run's rows through the SQLite writer alone, and RS256 verification on
//! one core.

use std::sync::Arc;

use jsonwebtoken::Algorithm;
use tokenledger_e2e::issuer::{TestIssuer, now_secs};

use crate::baseline;
use crate::ingest::{IngestOptions, TARGET_RS256, Throughput, mint, throughput};
use crate::pg::{BenchDatabase, PgServer};
use crate::pg_baseline;
use crate::report::{Percentiles, Report, Row, fmt_ms, fmt_rate, thousands};
use crate::workload::Workload;
use crate::{block_on, progress};

/// Issue 20: RS256 ingest on PostgreSQL at least this share of the SQLite backend's rate on
/// the same machine.
pub const TARGET_SHARE_OF_SQLITE: f64 = 0.5;

/// Runs RS256 ingest on PostgreSQL, then on SQLite, then the baselines.
pub fn run(opts: &IngestOptions, server: &PgServer) -> anyhow::Result<Report> {
    let workload = Workload::standard();
    let settings = block_on(server.settings())?;
    progress(&format!(
        "ingest: PostgreSQL at {}: {settings}",
        server.host()
    ));

    progress("ingest: RS256 on PostgreSQL");
    let db = Arc::new(block_on(BenchDatabase::create(server))?);
    block_on(pg_baseline::checkpoint(&db));
    let pg = throughput(opts, &workload, Algorithm::RS256, Some(db.clone()))?;
    block_on(pg_baseline::checkpoint(&db));
    drop(db);

    progress("ingest: RS256 on SQLite (same run)");
    let sqlite = throughput(opts, &workload, Algorithm::RS256, None)?;

    progress("ingest: baselines (one core each; the servers are stopped)");
    let issuer = TestIssuer::new(crate::workload::ISSUER);
    let sample = mint(&issuer, Algorithm::RS256, &workload, 0..64, now_secs());
    let verify =
        baseline::jwt_verify_rate(&issuer, Algorithm::RS256, &sample, opts.baseline_budget)?;
    let pg_batch = mean_batch(&pg);
    let raw = block_on(pg_baseline::raw_insert_rate(server, &pg.rows, pg_batch))?;
    let pg_writer = block_on(pg_baseline::writer_insert_rate(server, &pg.rows, pg_batch))?;
    let sqlite_batch = mean_batch(&sqlite);
    let temp = tempfile::tempdir()?;
    let sqlite_writer = block_on(baseline::sqlite_insert_rate(
        temp.path(),
        &sqlite.rows,
        sqlite_batch,
    ))?;

    let mut report = Report::new(
        "ingest-postgres",
        format!(
            "ingest on PostgreSQL ({}) against the SQLite backend, same run: durable RS256 JWTs \
             over HTTP ({} clients x {} per request){}",
            server.host(),
            opts.clients,
            opts.batch,
            crate::harness::tuning_note(opts.max_wait_ms)
        ),
        opts.quick,
    );
    let pg_rate = pg.load.rate();
    let sqlite_rate = sqlite.load.rate();
    let share = pg_rate / sqlite_rate;
    report.row(
        Row::plain(
            "RS256 issuances/s on PostgreSQL, sustained",
            fmt_rate(pg_rate),
        )
        .target(
            format!("≥ {TARGET_SHARE_OF_SQLITE} × the SQLite backend"),
            share >= TARGET_SHARE_OF_SQLITE,
        )
        .against(
            format!(
                "SQLite backend, same workload and binary: {}",
                fmt_rate(sqlite_rate)
            ),
            share,
        ),
    );
    report.row(
        Row::plain("  PostgreSQL vs raw inserts of its rows", "").against(
            format!(
                "raw PostgreSQL inserts, same rows, {pg_batch}/tx: {}",
                fmt_rate(raw)
            ),
            pg_rate / raw,
        ),
    );
    report.row(Row::plain("  PostgreSQL vs its writer alone", "").against(
        format!(
            "PostgreSQL ledger writer, same rows, {pg_batch}/tx: {}",
            fmt_rate(pg_writer)
        ),
        pg_rate / pg_writer,
    ));
    report.row(Row::plain("  PostgreSQL vs JWT verify", "").against(
        format!("RS256 verify, 1 core: {}", fmt_rate(verify)),
        pg_rate / verify,
    ));
    describe_run(&mut report, "PostgreSQL", &pg);
    report.row(
        Row::plain(
            "RS256 issuances/s on SQLite, sustained (same run)",
            fmt_rate(sqlite_rate),
        )
        .target(
            format!("≥ {}", fmt_rate(TARGET_RS256)),
            sqlite_rate >= TARGET_RS256,
        )
        .against(
            format!(
                "SQLite ledger writer, same rows, {sqlite_batch}/tx: {}",
                fmt_rate(sqlite_writer)
            ),
            sqlite_rate / sqlite_writer,
        ),
    );
    report.row(Row::plain("  SQLite vs JWT verify", "").against(
        format!("RS256 verify, 1 core: {}", fmt_rate(verify)),
        sqlite_rate / verify,
    ));
    describe_run(&mut report, "SQLite", &sqlite);
    report.row(Row::plain(
        "baseline: RS256 verify+decode, 1 core",
        fmt_rate(verify),
    ));
    report.row(Row::plain(
        format!(
            "baseline: raw PostgreSQL inserts of the PostgreSQL run's rows, {pg_batch} per \
             durable tx (one plain table, primary key only)"
        ),
        fmt_rate(raw),
    ));
    report.row(Row::plain(
        format!("baseline: PostgreSQL ledger writer alone, same rows, {pg_batch} per tx"),
        fmt_rate(pg_writer),
    ));
    report.row(Row::plain(
        format!(
            "baseline: SQLite ledger writer alone, the SQLite run's rows, {sqlite_batch} per tx"
        ),
        fmt_rate(sqlite_writer),
    ));
    report.row(Row::plain("PostgreSQL server", settings.clone()));

    report.figure("postgres_settings", settings);
    report.figure("postgres_rs256_issuances_per_sec", pg_rate.round());
    report.figure("sqlite_rs256_issuances_per_sec", sqlite_rate.round());
    report.figure("postgres_ratio_to_sqlite_backend", share);
    report.figure("target_share_of_sqlite", TARGET_SHARE_OF_SQLITE);
    report.figure("postgres_raw_inserts_per_sec", raw.round());
    report.figure("postgres_ratio_to_raw_inserts", pg_rate / raw);
    report.figure("postgres_writer_inserts_per_sec", pg_writer.round());
    report.figure("postgres_ratio_to_writer", pg_rate / pg_writer);
    report.figure("postgres_batch", pg_batch);
    report.figure("sqlite_writer_inserts_per_sec", sqlite_writer.round());
    report.figure("sqlite_ratio_to_writer", sqlite_rate / sqlite_writer);
    report.figure("sqlite_batch", sqlite_batch);
    report.figure("rs256_verify_per_sec_1core", verify.round());
    report.figure("postgres_ratio_to_verify_1core", pg_rate / verify);
    report.figure("sqlite_ratio_to_verify_1core", sqlite_rate / verify);
    for (key, run) in [("postgres", &pg), ("sqlite", &sqlite)] {
        record_run(&mut report, key, run);
    }
    if let Some(ms) = opts.max_wait_ms {
        report.figure("sequencer_max_wait_ms", ms);
    }
    Ok(report)
}

/// The server's mean batch of a run, at least 1: the transaction size of its baselines.
fn mean_batch(run: &Throughput) -> usize {
    run.metrics.mean_batch().round().max(1.0) as usize
}

/// The detail rows of one backend's run.
fn describe_run(report: &mut Report, name: &str, run: &Throughput) {
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
    report.row(Row::plain(
        format!("  {name} database after the run"),
        format!(
            "{:.0} bytes per entry ({} entries)",
            run.db.bytes_per_entry(),
            thousands(run.db.entries)
        ),
    ));
}

/// The figures of one backend's run under `key_*`.
fn record_run(report: &mut Report, key: &str, run: &Throughput) {
    let mut request = run.load.latencies.clone();
    if let Some(p) = Percentiles::of(&mut request) {
        p.record(report, &format!("{key}_request"));
    }
    run.cpu.record(report, key);
    report.figure(&format!("{key}_seconds"), run.load.elapsed.as_secs_f64());
    report.figure(&format!("{key}_reports"), run.load.acknowledged);
    report.figure(&format!("{key}_failed_requests"), run.load.failures);
    report.figure(&format!("{key}_mean_batch"), run.metrics.mean_batch());
    report.figure(
        &format!("{key}_mean_commit_ms"),
        run.metrics.mean_commit_ms(),
    );
    report.figure(
        &format!("{key}_db_bytes_per_entry"),
        run.db.bytes_per_entry(),
    );
    if let Some(e) = &run.load.first_failure {
        report.figure(&format!("{key}_first_failure"), e.as_str());
    }
}
