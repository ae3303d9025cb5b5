//! tokenledger-bench: the benchmarks behind BENCHMARKS.md, against the real
//! `tokenledger-server` binary on loopback.
//!
//! - [`ingest`]: durable ingest of real RS256 / ES256 JWTs, sustained throughput and latency
//!   at a fixed offered rate, with JWT-verify, Ed25519-sign and SQLite-insert baselines;
//!   [`pg_ingest`]: RS256 with the log in PostgreSQL against the SQLite backend, same run.
//! - [`resolve`]: `GET /v1/vos/{vo}/tokens/{jti}` at 10 M preloaded issuances.
//! - [`proof`]: inclusion and consistency proofs at 10 M.
//! - [`size`]: database bytes per issuance at 1 M and 10 M.
//! - [`retention`]: redaction of the older half of a preloaded log (entries/s), database
//!   bytes per live entry before and after, ingest during a redaction run against idle.
//! - [`check`]: `tokenledger check` per process and in-process with 100 k suspended persons.
//! - [`propagation`]: a VO-wide suspension until 50 following nodes deny; the ledger's CPU
//!   with 1,000 waiting long polls.
//!
//! With `--database URL` the log is in a fresh PostgreSQL database on that server ([`pg`])
//! for `ingest`, `resolve`, `proof`, `size` and `retention`.
//!
//! Each benchmark returns a [`report::Report`]: one table and one JSON line. Quick options
//! (`--quick`) run in seconds, so CI runs them and the benchmarks never rot; no benchmark
//! asserts anything about time. The large logs are bulk-loaded ([`bulk`], [`preload`]) with
//! exactly the rows the sequencer writes, so the server starts on them and they verify.

pub mod baseline;
pub mod bulk;
pub mod check;
pub mod harness;
pub mod ingest;
pub mod load;
pub mod pg;
pub mod pg_baseline;
pub mod pg_ingest;
pub mod preload;
pub mod proof;
pub mod propagation;
pub mod report;
pub mod resolve;
pub mod retention;
pub mod size;
pub mod workload;

use std::future::Future;
use std::path::PathBuf;

use report::Report;

/// How large a log the resolve, proof and size benchmarks preload, and where.
#[derive(Clone, Debug)]
pub struct PreloadOptions {
    /// Quick mode: figures are not judged against the targets.
    pub quick: bool,
    pub entries: u64,
    /// Log sizes at which the database size is measured on the way (at most `entries`).
    pub milestones: Vec<u64>,
    /// Work (and keep the data) here instead of a temporary directory; a log already there
    /// with at least `entries` entries is reused.
    pub dir: Option<PathBuf>,
    /// Overrides the server's sequencer `max_wait_ms`.
    pub max_wait_ms: Option<u64>,
    /// The log in a database on this PostgreSQL server instead of SQLite.
    pub database: Option<pg::PgServer>,
}

impl PreloadOptions {
    /// 10 M issuances, measured at 1 M and 10 M.
    pub fn full() -> PreloadOptions {
        PreloadOptions {
            quick: false,
            entries: 10_000_000,
            milestones: vec![1_000_000, 10_000_000],
            dir: None,
            max_wait_ms: None,
            database: None,
        }
    }

    /// 20,000 issuances, measured at 10,000 and 20,000.
    pub fn quick() -> PreloadOptions {
        PreloadOptions {
            quick: true,
            entries: 20_000,
            milestones: vec![10_000, 20_000],
            dir: None,
            max_wait_ms: None,
            database: None,
        }
    }

    fn preload(&self) -> anyhow::Result<preload::Preloaded> {
        preload::preload(
            self.entries,
            &self.milestones,
            self.dir.as_deref(),
            self.max_wait_ms,
            self.database.as_ref(),
        )
    }
}

/// `resolve`: preloads, then resolves.
pub fn resolve(pre: &PreloadOptions, opts: &resolve::ResolveOptions) -> anyhow::Result<Report> {
    let loaded = pre.preload()?;
    let report = resolve::run(&loaded, opts)?;
    loaded.stop();
    Ok(report)
}

/// `proof`: preloads, then fetches proofs.
pub fn proof(pre: &PreloadOptions, opts: &proof::ProofOptions) -> anyhow::Result<Report> {
    let loaded = pre.preload()?;
    let report = proof::run(&loaded, opts)?;
    loaded.stop();
    Ok(report)
}

/// `size`: preloads, measuring the database at each milestone.
pub fn size(pre: &PreloadOptions) -> anyhow::Result<Report> {
    let loaded = pre.preload()?;
    let report = size::report(&loaded, pre.quick);
    loaded.stop();
    Ok(report)
}

/// `all`: ingest, then one preload shared by size, resolve and proof, then check. Each
/// report goes to `emit` as soon as it is done.
pub fn all(
    ingest: &ingest::IngestOptions,
    pre: &PreloadOptions,
    resolve: &resolve::ResolveOptions,
    proof: &proof::ProofOptions,
    check: check::CheckOptions,
    emit: &mut dyn FnMut(&Report),
) -> anyhow::Result<()> {
    emit(&ingest::run(ingest)?);
    let loaded = pre.preload()?;
    emit(&size::report(&loaded, pre.quick));
    emit(&resolve::run(&loaded, resolve)?);
    emit(&proof::run(&loaded, proof)?);
    loaded.stop();
    emit(&check::run(check)?);
    Ok(())
}

/// Runs a future to completion on a current-thread runtime (the bench is otherwise
/// blocking: clients are threads).
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}

/// A progress line on stderr (stdout carries only tables and JSON lines).
pub fn progress(message: &str) {
    eprintln!("[bench] {message}");
}
