//! `resolve`: `GET /v1/vos/{vo}/tokens/{jti}` for random preloaded `jti`s, over HTTP, one
//! request after another, by a security officer of the VO. Every answer is checked after
//! the clock stops: the right issuance, and an inclusion proof that verifies against the
//! signed checkpoint in the same answer.
//!
//! Then the timelines of the persons those answers named (`GET
//! /v1/vos/{vo}/persons/{person}/timeline`, the newest 100 events): no target, but the cost
//! of reading issuances by identity through the epoch index (`identity_scan.rs`).
//!
//! A resolution is logged (a durable log append) before it is answered, so the baselines
//! are the two halves of the work: the reads a resolve makes (for other random jtis, equally
//! cold), in-process through the server's store on the same database, and a durable
//! one-entry commit on the same file system (on PostgreSQL: through the ledger's writer, in a
//! fresh database on the same server); plus the HTTP round trip of `GET /healthz`.

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;
use tokenledger_core::checkpoint::Checkpoint;
use tokenledger_core::entry::{EntryBody, LogEntry};
use tokenledger_core::ids::{Jti, Vo};
use tokenledger_core::merkle::{self, leaf_hash};
use tokenledger_core::wire::InclusionProof;
use tokenledger_server::store::LedgerReader;

use crate::harness::{disk_reads_kib, tuning_note};
use crate::load::sequential_gets;
use crate::preload::Preloaded;
use crate::report::{Percentiles, Report, Row, fmt_ms, ms, thousands};
use crate::workload::{VO, sample_below, sample_seed};
use crate::{baseline, pg_baseline};
use crate::{block_on, progress};

/// DESIGN.md: resolve at 10 M entries, over HTTP, p99 under 2 ms.
const TARGET_P99: Duration = Duration::from_millis(2);
/// Issue 20: the same with the log in PostgreSQL, p99 under 3 ms.
const TARGET_P99_POSTGRES: Duration = Duration::from_millis(3);

/// How the resolve benchmark runs.
#[derive(Clone, Debug)]
pub struct ResolveOptions {
    /// Quick mode: figures are not judged against the target.
    pub quick: bool,
    /// Timed requests.
    pub requests: usize,
    /// Untimed requests first.
    pub warmup: usize,
    /// Samples of each baseline.
    pub baseline_samples: usize,
    /// Bound on the timed part.
    pub limit: Duration,
    /// Which random `jti`s to ask for (see [`sample_seed`]).
    pub sample: u64,
    /// Timed timelines, of the persons the first resolutions named.
    pub timelines: usize,
}

impl ResolveOptions {
    pub fn full() -> ResolveOptions {
        ResolveOptions {
            quick: false,
            requests: 5_000,
            warmup: 200,
            baseline_samples: 2_000,
            limit: Duration::from_secs(300),
            sample: 0,
            timelines: 500,
        }
    }

    pub fn quick() -> ResolveOptions {
        ResolveOptions {
            quick: true,
            requests: 100,
            warmup: 10,
            baseline_samples: 50,
            limit: Duration::from_secs(30),
            sample: 0,
            timelines: 20,
        }
    }
}

/// Runs the resolve benchmark on a preloaded server.
pub fn run(pre: &Preloaded, opts: &ResolveOptions) -> anyhow::Result<Report> {
    let officer = pre.ledger.server.create_credential("vo-security", Some(VO));
    let url = pre.ledger.server.url().to_string();
    let picks = sample_below(
        pre.entries,
        opts.warmup + opts.requests,
        sample_seed(0x7265_736f, opts.sample),
    );
    let paths: Vec<String> = picks
        .iter()
        .map(|i| {
            format!(
                "/v1/vos/{VO}/tokens/{}?reason=benchmark",
                pre.workload.jti(*i)
            )
        })
        .collect();
    let (warmup, timed) = paths.split_at(opts.warmup);
    progress(&format!(
        "resolve: {} sequential resolutions at {} entries",
        timed.len(),
        thousands(pre.entries)
    ));
    sequential_gets(&url, Some(&officer), warmup, opts.limit)?;
    let before = pre.ledger.sequencer_metrics()?;
    let read_before = disk_reads_kib();
    let cpu = pre.ledger.cpu_sampler();
    let (mut latencies, bodies) = sequential_gets(&url, Some(&officer), timed, opts.limit)?;
    let cpu = cpu.finish();
    let disk_kib = disk_reads_kib() - read_before;
    let metrics = pre.ledger.sequencer_metrics()?.since(&before);
    for (body, i) in bodies.iter().zip(&picks[opts.warmup..]) {
        check_answer(pre, body, &pre.workload.jti(*i))?;
    }
    let resolve = Percentiles::of(&mut latencies).expect("resolutions were timed");

    progress("resolve: person timelines");
    let persons = bodies
        .iter()
        .take(opts.timelines)
        .map(|body| person_of(body))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let paths: Vec<String> = persons
        .iter()
        .map(|person| {
            format!(
                "/v1/vos/{VO}/persons/{person}/timeline?reason=benchmark&limit={TIMELINE_LIMIT}"
            )
        })
        .collect();
    let (mut timeline_latencies, timelines) =
        sequential_gets(&url, Some(&officer), &paths, opts.limit)?;
    let mut events = 0;
    for (body, person) in timelines.iter().zip(&persons) {
        events += check_timeline(body, person)?;
    }
    let timeline = Percentiles::of(&mut timeline_latencies).expect("timelines were timed");

    progress("resolve: baselines");
    // Other random jtis than the timed ones, whose pages the timed run has just read.
    let jtis: Vec<String> = sample_below(
        pre.entries,
        opts.baseline_samples,
        sample_seed(0x7261_7772, opts.sample),
    )
    .into_iter()
    .map(|i| pre.workload.jti(i))
    .collect();
    let mut reads = block_on(read_latencies(pre, &jtis))?;
    let reads = Percentiles::of(&mut reads).expect("reads were timed");
    let healthz = vec!["/healthz".to_string(); opts.baseline_samples];
    let (mut round_trips, _) = sequential_gets(&url, None, &healthz, opts.limit)?;
    let round_trip = Percentiles::of(&mut round_trips).expect("round trips were timed");
    let (commit, target) = match pre.database() {
        None => (baseline::durable_commit(opts.baseline_samples)?, TARGET_P99),
        Some(db) => (
            block_on(pg_baseline::durable_commit(
                db.server(),
                opts.baseline_samples,
            ))?,
            TARGET_P99_POSTGRES,
        ),
    };

    let mut report = Report::new(
        "resolve",
        format!(
            "resolve: GET /v1/vos/{{vo}}/tokens/{{jti}} over HTTP at {} entries, sequential, \
             log in {}{}",
            thousands(pre.entries),
            pre.backend(),
            tuning_note(pre.max_wait_ms)
        ),
        opts.quick,
    );
    report.row(Row::plain("resolve p50", fmt_ms(resolve.p50)).against(
        format!("its reads in-process p50: {}", fmt_ms(reads.p50)),
        ms(resolve.p50) / ms(reads.p50),
    ));
    report.row(
        Row::plain("resolve p99", fmt_ms(resolve.p99))
            .target(format!("< {}", fmt_ms(target)), resolve.p99 < target)
            .against(
                format!("durable 1-entry commit p99: {}", fmt_ms(commit.p99)),
                ms(resolve.p99) / ms(commit.p99),
            ),
    );
    report.row(Row::plain(
        "  resolve max, samples, sample number (--sample)",
        format!(
            "{}, {}, {}",
            fmt_ms(resolve.max),
            resolve.count,
            opts.sample
        ),
    ));
    report.row(Row::plain(
        "  sequencer during the run: mean batch, mean commit",
        format!(
            "{:.1} entries, {:.2} ms",
            metrics.mean_batch(),
            metrics.mean_commit_ms()
        ),
    ));
    report.row(Row::plain(
        format!("person timeline, newest {TIMELINE_LIMIT} events, p50 / p99"),
        format!("{} / {}", fmt_ms(timeline.p50), fmt_ms(timeline.p99)),
    ));
    report.row(Row::plain(
        "  timelines, mean events",
        format!(
            "{}, {:.1}",
            timeline.count,
            events as f64 / timeline.count as f64
        ),
    ));
    report.row(Row::plain("  CPU during the run", cpu.describe()));
    cpu.record(&mut report, "resolve");
    report.row(Row::plain(
        "  disk reads during the run (machine-wide)",
        format!("{} KiB", thousands(disk_kib)),
    ));
    report.row(Row::plain(
        "  page cache warm-up before the run, waited for",
        pre.warm_up_note(),
    ));
    report.row(Row::plain(
        "baseline: reads of one resolve, in-process (the server's store), p50 / p99",
        format!("{} / {}", fmt_ms(reads.p50), fmt_ms(reads.p99)),
    ));
    report.row(Row::plain(
        "baseline: durable 1-entry commit, p50 / p99",
        format!("{} / {}", fmt_ms(commit.p50), fmt_ms(commit.p99)),
    ));
    report.row(Row::plain(
        "baseline: HTTP round trip, GET /healthz, p50 / p99",
        format!("{} / {}", fmt_ms(round_trip.p50), fmt_ms(round_trip.p99)),
    ));
    report.figure("entries", pre.entries);
    report.figure("sample", opts.sample);
    resolve.record(&mut report, "resolve");
    timeline.record(&mut report, "timeline");
    report.figure(
        "timeline_mean_events",
        events as f64 / timeline.count as f64,
    );
    report.figure("resolve_target_p99_ms", ms(target));
    if let Some(db) = pre.database() {
        let settings = block_on(db.server().settings())?;
        report.row(Row::plain("PostgreSQL server", settings.clone()));
        report.figure("postgres_settings", settings);
    }
    report.figure("sequencer_mean_batch", metrics.mean_batch());
    report.figure("disk_reads_kib", disk_kib);
    report.figure("page_cache_warm_up_seconds", pre.warm_up.as_secs_f64());
    if let Some(bytes) = pre.warmed_bytes {
        report.figure("postgres_prewarmed_bytes", bytes as f64);
    }
    if let Some(ms) = pre.max_wait_ms {
        report.figure("sequencer_max_wait_ms", ms);
    }
    report.figure("sequencer_mean_commit_ms", metrics.mean_commit_ms());
    reads.record(&mut report, "reads_in_process");
    commit.record(&mut report, "durable_commit");
    round_trip.record(&mut report, "healthz_round_trip");
    Ok(report)
}

/// The answer names the jti's issuance, and its inclusion proof verifies against the
/// checkpoint (signed by the log key) that came with it.
fn check_answer(pre: &Preloaded, body: &str, jti: &str) -> anyhow::Result<()> {
    let v: Value = serde_json::from_str(body)?;
    anyhow::ensure!(
        v["issuance"]["entry"]["jti"] == jti,
        "resolved the wrong jti: {body}"
    );
    let leaf = base64::engine::general_purpose::STANDARD
        .decode(v["issuance"]["leaf"].as_str().unwrap_or_default())?;
    let proof: InclusionProof = serde_json::from_value(v["inclusion_proof"].clone())?;
    let checkpoint = Checkpoint::open(v["checkpoint"].as_str().unwrap_or_default(), &pre.verifier)?;
    anyhow::ensure!(
        proof.leaf_hash == leaf_hash(&leaf),
        "leaf hash mismatch: {body}"
    );
    merkle::verify_inclusion(
        proof.index,
        proof.size,
        &proof.leaf_hash,
        &proof.hashes,
        &checkpoint.root,
    )?;
    anyhow::ensure!(
        proof.size == checkpoint.size,
        "proof not for the checkpoint: {body}"
    );
    Ok(())
}

/// Events asked for in each timed timeline (the API's default page).
const TIMELINE_LIMIT: u32 = 100;

/// The person a resolution answer names.
fn person_of(body: &str) -> anyhow::Result<String> {
    let v: Value = serde_json::from_str(body)?;
    v["person"]["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("no person in {body}"))
}

/// A timeline answer is the person's, holds issuances of the person's identities only,
/// newest first, at most a page; returns how many events it held.
fn check_timeline(body: &str, person: &str) -> anyhow::Result<usize> {
    let v: Value = serde_json::from_str(body)?;
    anyhow::ensure!(
        v["person"]["id"] == person,
        "another person's timeline: {body}"
    );
    let subs: Vec<&Value> = v["person"]["identities"]
        .as_array()
        .map(|ids| ids.iter().map(|id| &id["sub"]).collect())
        .unwrap_or_default();
    let events = v["events"].as_array().cloned().unwrap_or_default();
    anyhow::ensure!(
        !events.is_empty() && events.len() <= TIMELINE_LIMIT as usize,
        "{} events in a timeline of {person}",
        events.len()
    );
    let mut before = u64::MAX;
    for event in &events {
        let index = event["index"].as_u64().unwrap_or(u64::MAX);
        anyhow::ensure!(index < before, "timeline of {person} not newest first");
        before = index;
        anyhow::ensure!(
            event["kind"] == "issuance" && subs.contains(&&event["entry"]["sub"]),
            "an event of someone else in the timeline of {person}: {event}"
        );
    }
    Ok(events.len())
}

/// Times, per jti, the reads `GET /v1/vos/{vo}/tokens/{jti}` makes: the issuance by jti
/// (decoded), the person and their identities, the inclusion proof.
async fn read_latencies(pre: &Preloaded, jtis: &[String]) -> anyhow::Result<Vec<Duration>> {
    let reader = pre.reader().await?;
    let timed = time_reads(reader.reads(), pre.checkpoint.size, jtis).await;
    reader.close().await;
    timed
}

/// [`read_latencies`] through `store`, in a log of `size` entries.
async fn time_reads(
    store: &dyn LedgerReader,
    size: u64,
    jtis: &[String],
) -> anyhow::Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(jtis.len());
    for jti in jtis {
        let jti = Jti::parse(jti.as_str())?;
        let start = Instant::now();
        let found = store.issuances_by_jti(&jti).await?;
        let (index, leaf) = found
            .first()
            .ok_or_else(|| anyhow::anyhow!("{jti} not found"))?;
        let issuance = match LogEntry::from_canonical_bytes(leaf)?.body {
            EntryBody::Issuance(i) => i,
            other => anyhow::bail!("entry {index} is not an issuance: {other:?}"),
        };
        store
            .person_with_identities(&issuance.iss, &issuance.sub, &Vo::unchecked(issuance.vo))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no person for {jti}"))?;
        store.inclusion_proof(*index, size).await?;
        out.push(start.elapsed());
    }
    Ok(out)
}
