//! `proof`: inclusion proofs (random index, at the current size) and consistency proofs
//! (random older size to the current size) over HTTP on the preloaded log, one request after
//! another. Every proof is verified after the clock stops: inclusion against the signed
//! checkpoint root and the leaf hash of the stored entry bytes, consistency against the
//! checkpoint root and the older root rebuilt from stored hashes. Baselines: proofs of as
//! many other random positions read in-process through the server's `LedgerReader` on the same
//! database (other positions, so that their pages are as cold as the timed ones were), and
//! the HTTP round trip of `GET /healthz`.

use std::time::{Duration, Instant};

use tokenledger_core::checkpoint::Checkpoint;
use tokenledger_core::merkle::{self, Hash, leaf_hash};
use tokenledger_core::wire::{ConsistencyProof, InclusionProof};
use tokenledger_server::store::LedgerReader;

use crate::harness::{CpuUse, disk_reads_kib, tuning_note};
use crate::load::sequential_gets;
use crate::preload::Preloaded;
use crate::report::{Percentiles, Report, Row, fmt_ms, ms, thousands};
use crate::workload::{sample_below, sample_seed};
use crate::{block_on, progress};

/// DESIGN.md: inclusion and consistency proofs at 10 M entries, p99 under 1 ms.
const TARGET_P99: Duration = Duration::from_millis(1);

/// How the proof benchmark runs.
#[derive(Clone, Debug)]
pub struct ProofOptions {
    /// Quick mode: figures are not judged against the target.
    pub quick: bool,
    /// Timed requests of each kind.
    pub requests: usize,
    /// Untimed requests of each kind first.
    pub warmup: usize,
    /// Bound on each timed part.
    pub limit: Duration,
    /// Which random indexes to ask for (see [`sample_seed`]).
    pub sample: u64,
}

impl ProofOptions {
    pub fn full() -> ProofOptions {
        ProofOptions {
            quick: false,
            requests: 10_000,
            warmup: 500,
            limit: Duration::from_secs(300),
            sample: 0,
        }
    }

    pub fn quick() -> ProofOptions {
        ProofOptions {
            quick: true,
            requests: 200,
            warmup: 20,
            limit: Duration::from_secs(30),
            sample: 0,
        }
    }
}

/// Runs the proof benchmark on a preloaded server.
pub fn run(pre: &Preloaded, opts: &ProofOptions) -> anyhow::Result<Report> {
    let checkpoint = Checkpoint::open(&pre.ledger.server.checkpoint(), &pre.verifier)?;
    let (size, root) = (checkpoint.size, checkpoint.root);
    let url = pre.ledger.server.url().to_string();
    let n = opts.warmup + opts.requests;
    let indexes = sample_below(size, n, sample_seed(0x696e_636c, opts.sample));
    let olders: Vec<u64> = sample_below(size - 1, n, sample_seed(0x636f_6e73, opts.sample))
        .into_iter()
        .map(|m| m + 1)
        .collect();
    let inclusion_paths: Vec<String> = indexes
        .iter()
        .map(|i| format!("/v1/log/proof/inclusion?index={i}&size={size}"))
        .collect();
    let consistency_paths: Vec<String> = olders
        .iter()
        .map(|m| format!("/v1/log/proof/consistency?from={m}&to={size}"))
        .collect();
    progress(&format!(
        "proof: {} inclusion and {} consistency proofs at {} entries",
        opts.requests,
        opts.requests,
        thousands(size)
    ));
    let timed = |paths: &[String]| -> anyhow::Result<Timed> {
        let (warmup, timed) = paths.split_at(opts.warmup);
        sequential_gets(&url, None, warmup, opts.limit)?;
        let read_before = disk_reads_kib();
        let cpu = pre.ledger.cpu_sampler();
        let (mut latencies, bodies) = sequential_gets(&url, None, timed, opts.limit)?;
        let cpu = cpu.finish();
        let disk_kib = disk_reads_kib() - read_before;
        let latency =
            Percentiles::of(&mut latencies).ok_or_else(|| anyhow::anyhow!("nothing timed"))?;
        Ok(Timed {
            latency,
            bodies,
            disk_kib,
            cpu,
        })
    };
    let inclusion = timed(&inclusion_paths)?;
    let consistency = timed(&consistency_paths)?;
    let healthz = vec!["/healthz".to_string(); opts.requests];
    let (mut round_trips, _) = sequential_gets(&url, None, &healthz, opts.limit)?;
    let round_trip = Percentiles::of(&mut round_trips).expect("round trips were timed");

    progress("proof: verifying every proof; in-process baselines");
    let (raw_inclusion, raw_consistency) = block_on(async {
        let reader = pre.reader().await?;
        let store = reader.reads();
        for (body, i) in inclusion.bodies.iter().zip(&indexes[opts.warmup..]) {
            check_inclusion(store, body, *i, size, &root).await?;
        }
        for (body, m) in consistency.bodies.iter().zip(&olders[opts.warmup..]) {
            check_consistency(store, body, *m, size, &root).await?;
        }
        // Fresh random positions: the checks above have just read the timed ones' pages.
        let raw_indexes = sample_below(size, opts.requests, sample_seed(0x7261_7769, opts.sample));
        let raw_olders: Vec<u64> = sample_below(
            size - 1,
            opts.requests,
            sample_seed(0x7261_7763, opts.sample),
        )
        .into_iter()
        .map(|m| m + 1)
        .collect();
        let raw = raw_latencies(store, &raw_indexes, &raw_olders, size).await;
        reader.close().await;
        raw
    })?;

    let mut report = Report::new(
        "proof",
        format!(
            "proof: inclusion and consistency proofs over HTTP at {} entries, sequential, log \
             in {}{}",
            thousands(size),
            pre.backend(),
            tuning_note(pre.max_wait_ms)
        ),
        opts.quick,
    );
    for (name, timed, raw) in [
        ("inclusion", &inclusion, &raw_inclusion),
        ("consistency", &consistency, &raw_consistency),
    ] {
        let http = &timed.latency;
        report.row(
            Row::plain(format!("{name} proof p50"), fmt_ms(http.p50)).against(
                format!("same proof in-process p50: {}", fmt_ms(raw.p50)),
                ms(http.p50) / ms(raw.p50),
            ),
        );
        report.row(
            Row::plain(format!("{name} proof p99"), fmt_ms(http.p99))
                .target(format!("< {}", fmt_ms(TARGET_P99)), http.p99 < TARGET_P99)
                .against(
                    format!("same proof in-process p99: {}", fmt_ms(raw.p99)),
                    ms(http.p99) / ms(raw.p99),
                ),
        );
        report.row(Row::plain(
            format!("  {name} max, samples, sample number (--sample)"),
            format!("{}, {}, {}", fmt_ms(http.max), http.count, opts.sample),
        ));
        report.row(Row::plain(
            format!("  {name}: disk reads during the run (machine-wide)"),
            format!("{} KiB", thousands(timed.disk_kib)),
        ));
        report.figure(&format!("{name}_disk_reads_kib"), timed.disk_kib);
        report.row(Row::plain(
            format!("  {name}: CPU during the run"),
            timed.cpu.describe(),
        ));
        timed.cpu.record(&mut report, name);
        http.record(&mut report, name);
        raw.record(&mut report, &format!("{name}_in_process"));
    }
    report.row(Row::plain(
        "page cache warm-up before the run, waited for",
        pre.warm_up_note(),
    ));
    report.row(Row::plain(
        "baseline: HTTP round trip, GET /healthz, p50 / p99",
        format!("{} / {}", fmt_ms(round_trip.p50), fmt_ms(round_trip.p99)),
    ));
    report.figure("size", size);
    report.figure("page_cache_warm_up_seconds", pre.warm_up.as_secs_f64());
    if let Some(bytes) = pre.warmed_bytes {
        report.figure("postgres_prewarmed_bytes", bytes as f64);
    }
    report.figure("sample", opts.sample);
    report.figure("target_p99_ms", ms(TARGET_P99));
    round_trip.record(&mut report, "healthz_round_trip");
    Ok(report)
}

/// One timed series of proof requests.
struct Timed {
    latency: Percentiles,
    bodies: Vec<String>,
    disk_kib: u64,
    cpu: CpuUse,
}

/// The inclusion proof is of the stored entry's leaf and leads to the checkpoint root.
async fn check_inclusion(
    store: &dyn LedgerReader,
    body: &str,
    index: u64,
    size: u64,
    root: &Hash,
) -> anyhow::Result<()> {
    let proof: InclusionProof = serde_json::from_str(body)?;
    anyhow::ensure!(
        proof.index == index && proof.size == size,
        "wrong proof: {body}"
    );
    let stored = store.entries(index, index + 1).await?;
    let leaf = stored
        .first()
        .and_then(|record| record.leaf())
        .ok_or_else(|| anyhow::anyhow!("entry {index} missing"))?;
    anyhow::ensure!(
        leaf_hash(leaf) == proof.leaf_hash,
        "entry {index}: leaf hash mismatch"
    );
    merkle::verify_inclusion(index, size, &proof.leaf_hash, &proof.hashes, root)?;
    Ok(())
}

/// The consistency proof links the older tree (root rebuilt from stored hashes) to the
/// checkpoint root.
async fn check_consistency(
    store: &dyn LedgerReader,
    body: &str,
    older: u64,
    size: u64,
    root: &Hash,
) -> anyhow::Result<()> {
    let proof: ConsistencyProof = serde_json::from_str(body)?;
    anyhow::ensure!(
        proof.from == older && proof.to == size,
        "wrong proof: {body}"
    );
    let old_root = store.frontier(older).await?.root();
    merkle::verify_consistency(older, size, &old_root, root, &proof.hashes)?;
    Ok(())
}

/// The same proofs read in-process, through the server's own reads on one connection.
async fn raw_latencies(
    store: &dyn LedgerReader,
    indexes: &[u64],
    olders: &[u64],
    size: u64,
) -> anyhow::Result<(Percentiles, Percentiles)> {
    let mut inclusion = Vec::with_capacity(indexes.len());
    for index in indexes {
        let start = Instant::now();
        store.inclusion_proof(*index, size).await?;
        inclusion.push(start.elapsed());
    }
    let mut consistency = Vec::with_capacity(olders.len());
    for older in olders {
        let start = Instant::now();
        let wanted = merkle::consistency_proof_indexes(*older, size)?;
        let hashes = store.read_hashes(&wanted).await?;
        merkle::consistency_proof(*older, size, &hashes)?;
        consistency.push(start.elapsed());
    }
    let none = || anyhow::anyhow!("nothing timed");
    Ok((
        Percentiles::of(&mut inclusion).ok_or_else(none)?,
        Percentiles::of(&mut consistency).ok_or_else(none)?,
    ))
}
