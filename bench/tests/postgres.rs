//! The PostgreSQL benchmarks in quick mode, as CI runs them so they never rot: the server of
//! `TOKENLEDGER_TEST_PG_URL`, else a private cluster (`tokenledger_testpg`). A test fails,
//! never skips, when no PostgreSQL server can be had. Nothing here looks at how fast anything
//! was: only that every figure was produced, and that every database a run made is gone.

use std::sync::Mutex;

use serde_json::Value;
use sqlx::{Connection, PgConnection};
use tokenledger_bench::bulk::{Timeline, preload_row};
use tokenledger_bench::ingest::IngestOptions;
use tokenledger_bench::pg::PgServer;
use tokenledger_bench::report::Report;
use tokenledger_bench::resolve::ResolveOptions;
use tokenledger_bench::retention::RetentionOptions;
use tokenledger_bench::workload::Workload;
use tokenledger_bench::{PreloadOptions, block_on, pg_baseline};

/// One test at a time: each checks that the databases it made are gone, and the benchmarks
/// want the 2 cores to themselves anyway.
static SERIAL: Mutex<()> = Mutex::new(());

/// The URL of a superuser on the `postgres` database of the server the tests use.
fn admin_url() -> String {
    match std::env::var(tokenledger_testpg::URL_VARIABLE) {
        Ok(url) if !url.trim().is_empty() => url.trim().to_string(),
        _ => tokenledger_testpg::cluster().base_url().to_string(),
    }
}

/// The databases this process has made that still exist.
fn left_behind() -> Vec<String> {
    block_on(async {
        let mut conn = PgConnection::connect(&admin_url()).await.unwrap();
        let prefix = format!("tokenledger_bench_{}_", std::process::id());
        let names: Vec<(String,)> =
            sqlx::query_as("SELECT datname::text FROM pg_database WHERE starts_with(datname, $1)")
                .bind(prefix)
                .fetch_all(&mut conn)
                .await
                .unwrap();
        conn.close().await.unwrap();
        names.into_iter().map(|(n,)| n).collect()
    })
}

/// Every named figure is a positive number.
fn assert_positive(report: &Report, names: &[&str]) {
    assert!(report.quick, "{}", report.json_line());
    for name in names {
        let value = report.figures.get(*name).and_then(Value::as_f64);
        assert!(
            value.is_some_and(|v| v > 0.0),
            "{name} missing or not positive in {}",
            report.json_line()
        );
    }
}

#[test]
fn the_postgres_baselines_run_each_in_a_database_of_its_own_and_drop_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = PgServer::new(&admin_url(), false).unwrap();
    let workload = Workload::standard();
    let timeline = Timeline::ending_at(1_700_000_000_000_000, 6_000);
    // Over the default compress_after (5,000): the writer's rows go raw, then compressed.
    let rows: Vec<_> = (0..6_000)
        .map(|i| preload_row(&workload, &timeline, i).unwrap())
        .collect();
    let raw = block_on(pg_baseline::raw_insert_rate(&server, &rows, 400)).unwrap();
    let writer = block_on(pg_baseline::writer_insert_rate(&server, &rows, 400)).unwrap();
    let commit = block_on(pg_baseline::durable_commit(&server, 20)).unwrap();
    assert!(raw > 0.0 && writer > 0.0, "{raw} {writer}");
    assert_eq!(commit.count, 20);
    assert_eq!(left_behind(), Vec::<String>::new());
}

#[test]
fn ingest_on_postgres_quick_produces_every_figure() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = PgServer::new(&admin_url(), false).unwrap();
    let mut opts = IngestOptions::quick();
    opts.database = Some(server.clone());
    let report = tokenledger_bench::ingest::run(&opts).unwrap();
    assert_eq!(report.bench, "ingest-postgres");
    assert_positive(
        &report,
        &[
            "postgres_rs256_issuances_per_sec",
            "sqlite_rs256_issuances_per_sec",
            "postgres_ratio_to_sqlite_backend",
            "postgres_raw_inserts_per_sec",
            "postgres_ratio_to_raw_inserts",
            "postgres_writer_inserts_per_sec",
            "sqlite_writer_inserts_per_sec",
            "rs256_verify_per_sec_1core",
            "postgres_mean_batch",
            "postgres_request_p99_ms",
            "postgres_db_bytes_per_entry",
            "sqlite_db_bytes_per_entry",
        ],
    );
    assert_eq!(report.figures["postgres_failed_requests"], 0);
    assert_eq!(report.figures["sqlite_failed_requests"], 0);
    assert_eq!(left_behind(), Vec::<String>::new());
}

#[test]
fn resolve_on_postgres_quick_produces_every_figure() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = PgServer::new(&admin_url(), false).unwrap();
    let mut pre = PreloadOptions::quick();
    pre.database = Some(server.clone());
    let report = tokenledger_bench::resolve(&pre, &ResolveOptions::quick()).unwrap();
    assert_positive(
        &report,
        &[
            "resolve_p50_ms",
            "resolve_p99_ms",
            "timeline_p99_ms",
            "reads_in_process_p99_ms",
            "durable_commit_p99_ms",
            "healthz_round_trip_p99_ms",
            "postgres_prewarmed_bytes",
        ],
    );
    assert_eq!(report.figures["resolve_target_p99_ms"], 3.0);
    assert!(report.title.contains("PostgreSQL"), "{}", report.title);
    assert_eq!(left_behind(), Vec::<String>::new());
}

#[test]
fn retention_on_postgres_quick_redacts_the_older_half_of_a_copy_and_drops_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = PgServer::new(&admin_url(), false).unwrap();
    let mut pre = PreloadOptions::quick();
    pre.database = Some(server.clone());
    let report = tokenledger_bench::retention::run(&pre, &RetentionOptions::quick()).unwrap();
    assert_positive(
        &report,
        &[
            "redaction_rate",
            "redaction_rate_while_appending",
            "ingest_idle_rate",
            "ingest_during_redaction_rate",
            "bytes_per_live_entry_before",
            "bytes_per_live_entry_after",
            "database_bytes_after",
        ],
    );
    assert_eq!(report.figures["redacted"], pre.entries / 2);
    assert!(report.title.contains("PostgreSQL"), "{}", report.title);
    assert_eq!(left_behind(), Vec::<String>::new());
}
