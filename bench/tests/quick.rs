//! The benchmarks in quick mode, as CI runs them so they never rot, and the bulk loader's
//! promise that the big logs are the ones ingest would have written. Nothing here looks at
//! how fast anything was: only that every figure was produced.
//!
//! Like the end-to-end tests, these start the real `tokenledger-server` next to the test
//! executable: run them with `cargo test --workspace` (which builds it), or build it first.

use std::collections::HashMap;

use jsonwebtoken::Algorithm;
use serde_json::Value;
use sqlx::ConnectOptions;
use tokenledger_bench::bulk::{BulkRow, BulkWriter, token_sha256};
use tokenledger_bench::harness::Ledger;
use tokenledger_bench::ingest::IngestOptions;
use tokenledger_bench::proof::ProofOptions;
use tokenledger_bench::report::Report;
use tokenledger_bench::resolve::ResolveOptions;
use tokenledger_bench::retention::RetentionOptions;
use tokenledger_bench::workload::{VO, Workload};
use tokenledger_bench::{PreloadOptions, block_on};
use tokenledger_e2e::issuer::now_secs;
use tokenledger_server::store::sqlite::connect_options;

/// Every named figure is a positive number.
fn assert_positive(report: &Report, names: &[&str]) {
    assert!(report.quick, "{}", report.json_line());
    assert!(!report.rows.is_empty());
    for name in names {
        let value = report.figures.get(*name).and_then(Value::as_f64);
        assert!(
            value.is_some_and(|v| v > 0.0),
            "{name} missing or not positive in {}",
            report.json_line()
        );
    }
    let line: Value = serde_json::from_str(&report.json_line()).expect("one JSON line");
    assert_eq!(line["bench"], report.bench);
    assert!(report.table().contains(&report.title));
}

#[test]
fn ingest_quick_produces_every_figure() {
    let report = tokenledger_bench::ingest::run(&IngestOptions::quick()).unwrap();
    assert_positive(
        &report,
        &[
            "rs256_issuances_per_sec",
            "es256_issuances_per_sec",
            "rs256_ratio_to_sqlite",
            "es256_ratio_to_verify_1core",
            "rs256_mean_batch",
            "latency_p50_ms",
            "latency_p99_ms",
            "rs256_verify_per_sec_1core",
            "es256_verify_per_sec_1core",
            "ed25519_receipt_sign_per_sec_1core",
            "sqlite_inserts_per_sec",
            "durable_commit_p99_ms",
            "rs256_db_bytes_per_entry",
        ],
    );
    assert_eq!(report.figures["rs256_failed_requests"], 0);
    assert_eq!(report.figures["latency_failed_requests"], 0);
}

#[test]
fn resolve_quick_produces_every_figure() {
    let report =
        tokenledger_bench::resolve(&PreloadOptions::quick(), &ResolveOptions::quick()).unwrap();
    assert_positive(
        &report,
        &[
            "resolve_p50_ms",
            "resolve_p99_ms",
            "timeline_p99_ms",
            "timeline_mean_events",
            "reads_in_process_p99_ms",
            "durable_commit_p99_ms",
            "healthz_round_trip_p99_ms",
        ],
    );
    assert!(report.figures["page_cache_warm_up_seconds"].is_f64());
}

#[test]
fn proof_quick_produces_every_figure() {
    let report =
        tokenledger_bench::proof(&PreloadOptions::quick(), &ProofOptions::quick()).unwrap();
    assert_positive(
        &report,
        &[
            "inclusion_p50_ms",
            "inclusion_p99_ms",
            "consistency_p99_ms",
            "inclusion_in_process_p99_ms",
            "consistency_in_process_p99_ms",
        ],
    );
    assert!(report.figures["page_cache_warm_up_seconds"].is_f64());
}

#[test]
fn check_quick_produces_every_figure() {
    let report =
        tokenledger_bench::check::run(tokenledger_bench::check::CheckOptions::quick()).unwrap();
    assert_positive(
        &report,
        &[
            "process_allowed_p50_ms",
            "process_suspended_p50_ms",
            "bin_true_p50_ms",
            "decisions_per_sec",
            "tag_hmac_per_sec",
        ],
    );
}

#[test]
fn propagation_quick_produces_every_figure() {
    let report = tokenledger_bench::propagation::run(
        tokenledger_bench::propagation::PropagationOptions::quick(),
    )
    .unwrap();
    assert_positive(
        &report,
        &[
            "last_node_denies_p50_ms",
            "last_node_denies_p99_ms",
            "last_node_denies_max_ms",
            "node_denies_p99_ms",
            "last_node_installs_p99_ms",
            "waiting_server_rss_kib",
            "fan_out_ms",
        ],
    );
    assert_eq!(report.figures["last_node_denies_samples"], 2);
    assert_eq!(report.figures["node_denies_samples"], 6);
    for cpu in ["idle_server_cpu_ms_per_s", "waiting_server_cpu_ms_per_s"] {
        assert!(
            report.figures[cpu].as_f64().is_some_and(|v| v >= 0.0),
            "{cpu}"
        );
    }
}

#[test]
fn size_quick_measures_every_milestone() {
    let pre = PreloadOptions::quick();
    let report = tokenledger_bench::size(&pre).unwrap();
    let names: Vec<String> = pre
        .milestones
        .iter()
        .flat_map(|m| {
            [
                format!("at_{m}_bytes_per_issuance"),
                format!("at_{m}_mean_leaf_bytes"),
                format!("at_{m}_entries_bytes"),
                format!("at_{m}_issuances_by_jti_bytes"),
            ]
        })
        .collect();
    assert_positive(
        &report,
        &names.iter().map(String::as_str).collect::<Vec<_>>(),
    );
}

/// A table of the database, every row as strings, in key order.
type Dump = Vec<Vec<String>>;

async fn dump(path: &std::path::Path) -> HashMap<&'static str, Dump> {
    let mut conn = connect_options(path).connect().await.unwrap();
    let mut out = HashMap::new();
    let queries = [
        ("entries", "SELECT idx, hex(leaf) FROM entries ORDER BY idx"),
        ("hashes", "SELECT idx, hex(hash) FROM hashes ORDER BY idx"),
        (
            "issuances",
            "SELECT i.idx, i.jti, r.iss, d.iss, d.sub, d.vo, ifnull(c.vo, '-'), \
             ifnull(c.client_id, '-'), ifnull(i.refresh_jti, '-') \
             FROM issuances i JOIN issuers r ON r.id = i.issuer \
             JOIN identities d ON d.id = i.identity LEFT JOIN clients c ON c.id = i.client \
             ORDER BY i.idx",
        ),
        // Person ids are random: compare which identities share a person instead.
        (
            "identities",
            "SELECT iss, sub, vo, created_at, length(person_id), \
             (SELECT count(*) FROM identities o WHERE o.person_id = i.person_id) \
             FROM identities i ORDER BY iss, sub, vo",
        ),
    ];
    for (name, sql) in queries {
        let rows: Vec<sqlx::sqlite::SqliteRow> =
            sqlx::query(sql).fetch_all(&mut conn).await.unwrap();
        let rows = rows
            .iter()
            .map(|row| {
                use sqlx::Row;
                (0..row.len())
                    .map(|i| {
                        row.try_get::<String, _>(i)
                            .or_else(|_| row.try_get::<i64, _>(i).map(|n| n.to_string()))
                            .unwrap()
                    })
                    .collect()
            })
            .collect();
        out.insert(name, rows);
    }
    out
}

/// Real JWTs through the real server, then the same reports through the bulk loader into a
/// fresh database: entries, stored hashes, issuance rows and identities are the same rows.
#[test]
fn the_bulk_loader_writes_what_the_sequencer_writes() {
    let temp = tempfile::tempdir().unwrap();
    let workload = Workload {
        users: 4,
        clients: 2,
        seed: 99,
    };
    let ledger = Ledger::start(&temp.path().join("served"), None).unwrap();
    let credential = ledger.server.create_credential("issuer", Some(VO));
    let iat = now_secs();
    let tokens: Vec<String> = (0..25)
        .map(|i| {
            ledger
                .issuer
                .mint(Algorithm::ES256, &Value::Object(workload.claims(i, iat)))
        })
        .collect();
    for chunk in tokens.chunks(10) {
        let body = tokenledger_bench::load::Body::tokens(chunk);
        let reply = ledger.http().send(
            "POST",
            "/v1/issuances",
            Some(&credential),
            Some("application/json"),
            Some(&body.bytes),
        );
        assert_eq!(reply.status, 201, "{reply:?}");
    }
    let served = ledger
        .http()
        .entries(ledger.server.admin_secret(), 0, tokens.len() as u64);
    let served_db = ledger.db_path();
    let mut server = ledger.server;
    server.stop();

    let by_jti: HashMap<String, u64> = (0..tokens.len() as u64)
        .map(|i| (workload.jti(i), i))
        .collect();
    let rows: Vec<BulkRow> = served
        .iter()
        .map(|entry| {
            let i = by_jti[entry.jti()];
            let logged_at = entry.entry["logged_at"].as_i64().unwrap();
            BulkRow::jwt_issuance(
                workload.claims(i, iat),
                VO,
                token_sha256(&tokens[i as usize]),
                logged_at,
            )
            .unwrap()
        })
        .collect();
    let fresh = Ledger::start(&temp.path().join("bulk"), None).unwrap();
    let bulk_db = fresh.db_path();
    let mut server = fresh.server;
    server.stop();
    block_on(async {
        let mut writer = BulkWriter::open(&bulk_db).await.unwrap();
        writer.write(&rows[..7]).await.unwrap();
        writer.write(&rows[7..]).await.unwrap();
        writer.close().await.unwrap();
        let (served, bulk) = (dump(&served_db).await, dump(&bulk_db).await);
        for table in ["entries", "hashes", "issuances", "identities"] {
            assert!(!served[table].is_empty(), "{table} is empty");
            assert_eq!(served[table], bulk[table], "table {table} differs");
        }
        assert_eq!(served["identities"].len(), 4);
    });
}

/// `retention` redacts exactly the older half of a copy of the preload, and leaves the
/// preload in `--data-dir` whole (nothing redacted, nothing appended) and no copy behind.
#[test]
fn retention_quick_redacts_the_older_half_of_a_copy() {
    let work = tempfile::tempdir().unwrap();
    let mut pre = PreloadOptions::quick();
    pre.dir = Some(work.path().to_path_buf());
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
            "database_bytes_before",
            "database_bytes_after",
            "reclaim_steps",
        ],
    );
    assert_eq!(report.figures["redacted"], pre.entries / 2);
    assert_eq!(report.figures["sqlite_auto_vacuum"], 2);

    let leftovers: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("retention-copy"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    block_on(async {
        let mut conn = connect_options(&work.path().join("data/tokenledger.db"))
            .connect()
            .await
            .unwrap();
        let (size, redacted): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM entries), (SELECT count(*) FROM redacted_entries)",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!((size as u64, redacted), (pre.entries, 0));
    });
}
