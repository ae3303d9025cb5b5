//! `tokenledger-bench`: a thin command line over the benchmarks of the library crate.
//! Each subcommand prints its table and one JSON line on stdout, progress on stderr.
//! Build the server and the CLI with the same profile first (the bench runs the binaries next
//! to itself): `cargo build --profile dist -p tokenledger-server -p tokenledger -p tokenledger-bench`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tokenledger_bench::check::CheckOptions;
use tokenledger_bench::ingest::IngestOptions;
use tokenledger_bench::pg::PgServer;
use tokenledger_bench::proof::ProofOptions;
use tokenledger_bench::propagation::PropagationOptions;
use tokenledger_bench::report::Report;
use tokenledger_bench::resolve::ResolveOptions;
use tokenledger_bench::retention::RetentionOptions;
use tokenledger_bench::{PreloadOptions, all, proof, resolve, size};

#[derive(Parser, Debug)]
#[command(
    name = "tokenledger-bench",
    version,
    about = "Benchmarks of tokenledger against the real server binary on loopback"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Durable ingest of real RS256 / ES256 JWTs: sustained rate, latency at a fixed rate.
    Ingest(IngestArgs),
    /// Resolve random jtis over HTTP on a preloaded log.
    Resolve(PreloadArgs),
    /// Inclusion and consistency proofs over HTTP on a preloaded log.
    Proof(PreloadArgs),
    /// Database bytes per issuance at the preload milestones.
    Size(PreloadArgs),
    /// Redaction of the older half of a preloaded log through the ledger's retention runs
    /// (entries/s), database bytes per live entry before and after (space given back), and
    /// appends during a redaction run against idle. Works on a copy of the preload (SQLite:
    /// the data directory copied beside it, so that much free disk is needed; PostgreSQL:
    /// CREATE DATABASE ... TEMPLATE), which stays whole for the other benchmarks.
    Retention(RetentionArgs),
    /// `tokenledger check` once per decision, and decisions in process, on 100 k entries.
    Check(CheckArgs),
    /// A VO-wide suspension until 50 `pull --follow` nodes deny (p50/p99/max over 20); the
    /// ledger's CPU with 1,000 waiting long polls against idle.
    Propagation(PropagationArgs),
    /// Everything: ingest, then one preload for size, resolve and proof, then check.
    All(AllArgs),
}

#[derive(Args, Debug)]
struct IngestArgs {
    /// Seconds, small pools: what CI runs.
    #[arg(long)]
    quick: bool,
    /// Concurrent clients of the throughput runs.
    #[arg(long)]
    clients: Option<usize>,
    /// Reports per request (1 to 1000).
    #[arg(long)]
    batch: Option<usize>,
    /// Seconds of each throughput run.
    #[arg(long)]
    seconds: Option<f64>,
    /// Offered rate of the latency run, reports per second.
    #[arg(long)]
    rate: Option<f64>,
    /// Run the server with this sequencer `max_wait_ms` instead of the default (0).
    #[arg(long)]
    max_wait_ms: Option<u64>,
    #[command(flatten)]
    postgres: PostgresArgs,
}

/// The PostgreSQL server of a run.
#[derive(Args, Debug)]
struct PostgresArgs {
    /// Put the log in PostgreSQL: a fresh database per server on the server of this URL
    /// (`postgres://user@host:port/postgres`; databases are made through its `postgres`
    /// database). `ingest` then measures RS256 on PostgreSQL against the SQLite backend. With
    /// --data-dir, the preload's database is named in the directory and kept, and a later run
    /// with that directory reuses it.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Keep the PostgreSQL databases made for the run (their names go to stderr).
    #[arg(long, requires = "database")]
    keep: bool,
}

impl PostgresArgs {
    fn server(&self) -> anyhow::Result<Option<PgServer>> {
        self.database
            .as_deref()
            .map(|url| PgServer::new(url, self.keep))
            .transpose()
    }
}

#[derive(Args, Debug)]
struct PreloadArgs {
    /// 20,000 entries and few requests: what CI runs.
    #[arg(long)]
    quick: bool,
    /// Issuances to preload [default: 10,000,000; quick 20,000].
    #[arg(long)]
    entries: Option<u64>,
    /// Work in (and keep) this directory; a log already there is reused.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Run the server with this sequencer `max_wait_ms` instead of the default (0).
    #[arg(long)]
    max_wait_ms: Option<u64>,
    /// resolve and proof: which random sample of jtis and indexes to ask for. The same
    /// number asks for the same ones, so a second run finds them cached; a new number reads
    /// what earlier runs did not.
    #[arg(long, default_value_t = 0)]
    sample: u64,
    #[command(flatten)]
    postgres: PostgresArgs,
}

#[derive(Args, Debug)]
struct RetentionArgs {
    #[command(flatten)]
    preload: PreloadArgs,
    /// Concurrent writers appending during the redaction run [default: 4; quick 2].
    #[arg(long)]
    clients: Option<usize>,
    /// Entries per append [default: 250; quick 50].
    #[arg(long)]
    batch: Option<usize>,
    /// Seconds of the idle append rate [default: 10; quick 1].
    #[arg(long)]
    idle_seconds: Option<f64>,
}

impl RetentionArgs {
    fn options(&self) -> RetentionOptions {
        let mut o = pick(
            self.preload.quick,
            RetentionOptions::quick(),
            RetentionOptions::full(),
        );
        o.clients = self.clients.unwrap_or(o.clients);
        o.batch = self.batch.unwrap_or(o.batch);
        o.idle = self.idle_seconds.map_or(o.idle, Duration::from_secs_f64);
        o
    }
}

#[derive(Args, Debug)]
struct CheckArgs {
    /// 2,000 entries and few processes: what CI runs.
    #[arg(long)]
    quick: bool,
}

#[derive(Args, Debug)]
struct PropagationArgs {
    /// A few nodes, suspensions and long polls: what CI runs.
    #[arg(long)]
    quick: bool,
    /// Simulated nodes (`pull --follow` processes) [default: 50; quick 3].
    #[arg(long)]
    nodes: Option<usize>,
    /// Long polls held open for the CPU measurement [default: 1,000; quick 20].
    #[arg(long)]
    waiters: Option<usize>,
}

impl PropagationArgs {
    fn options(&self) -> PropagationOptions {
        let mut o = pick(
            self.quick,
            PropagationOptions::quick(),
            PropagationOptions::full(),
        );
        o.nodes = self.nodes.unwrap_or(o.nodes);
        o.waiters = self.waiters.unwrap_or(o.waiters);
        o
    }
}

#[derive(Args, Debug)]
struct AllArgs {
    #[command(flatten)]
    preload: PreloadArgs,
}

impl IngestArgs {
    fn options(&self) -> anyhow::Result<IngestOptions> {
        let mut o = if self.quick {
            IngestOptions::quick()
        } else {
            IngestOptions::full()
        };
        o.clients = self.clients.unwrap_or(o.clients);
        o.batch = self.batch.unwrap_or(o.batch);
        o.seconds = self.seconds.unwrap_or(o.seconds);
        o.rate = self.rate.unwrap_or(o.rate);
        o.max_wait_ms = self.max_wait_ms;
        o.database = self.postgres.server()?;
        Ok(o)
    }
}

impl PreloadArgs {
    fn options(&self) -> anyhow::Result<PreloadOptions> {
        let mut o = if self.quick {
            PreloadOptions::quick()
        } else {
            PreloadOptions::full()
        };
        if let Some(entries) = self.entries {
            o.milestones = vec![entries / 10, entries];
            o.entries = entries;
        }
        o.dir = self.data_dir.clone();
        o.max_wait_ms = self.max_wait_ms;
        o.database = self.postgres.server()?;
        Ok(o)
    }
}

fn pick<T>(quick: bool, quick_value: T, full: T) -> T {
    if quick { quick_value } else { full }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let print = |r: &Report| r.print();
    match cli.command {
        Command::Ingest(args) => print(&tokenledger_bench::ingest::run(&args.options()?)?),
        Command::Check(args) => print(&tokenledger_bench::check::run(pick(
            args.quick,
            CheckOptions::quick(),
            CheckOptions::full(),
        ))?),
        Command::Propagation(args) => print(&tokenledger_bench::propagation::run(args.options())?),
        Command::Resolve(args) => print(&resolve(
            &args.options()?,
            &ResolveOptions {
                sample: args.sample,
                ..pick(args.quick, ResolveOptions::quick(), ResolveOptions::full())
            },
        )?),
        Command::Proof(args) => print(&proof(
            &args.options()?,
            &ProofOptions {
                sample: args.sample,
                ..pick(args.quick, ProofOptions::quick(), ProofOptions::full())
            },
        )?),
        Command::Size(args) => print(&size(&args.options()?)?),
        Command::Retention(args) => print(&tokenledger_bench::retention::run(
            &args.preload.options()?,
            &args.options(),
        )?),
        Command::All(args) => {
            let quick = args.preload.quick;
            let preload = args.preload.options()?;
            let mut ingest = pick(quick, IngestOptions::quick(), IngestOptions::full());
            ingest.max_wait_ms = args.preload.max_wait_ms;
            ingest.database = preload.database.clone();
            all(
                &ingest,
                &preload,
                &pick(quick, ResolveOptions::quick(), ResolveOptions::full()),
                &pick(quick, ProofOptions::quick(), ProofOptions::full()),
                pick(quick, CheckOptions::quick(), CheckOptions::full()),
                &mut |r: &Report| r.print(),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
