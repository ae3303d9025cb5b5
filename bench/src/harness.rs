//! The server under test: the real `tokenledger-server` binary (found next to the bench's own
//! executable, so a `dist` bench runs the `dist` server), started by the end-to-end
//! harness on a loopback port with a temporary data directory, the default configuration
//! (unless `--max-wait-ms` overrides the sequencer's batch wait) and one JWT issuer (the
//! benchmark workload's), and stopped with SIGTERM at the end. Its log is in the SQLite file
//! of its data directory, or in a PostgreSQL database made for the run (`serve --database
//! URL`; the harness gives the admin commands `TOKENLEDGER_DATABASE`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokenledger_e2e::issuer::TestIssuer;
use tokenledger_e2e::{Http, TestServer};

use crate::block_on;
use crate::pg::BenchDatabase;
use crate::size::DbSize;
use crate::workload::{ISSUER, VO};

/// A running server with the workload's issuer configured.
pub struct Ledger {
    pub server: TestServer,
    pub issuer: TestIssuer,
    /// The PostgreSQL database of its log (none: the SQLite file in its data directory).
    pub database: Option<Arc<BenchDatabase>>,
}

/// The server binary next to the running executable (`target/<profile>/`, also from
/// `target/<profile>/deps/` for tests), or an error saying how to build it.
pub fn server_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("path of the running executable")?;
    let mut dir = exe
        .parent()
        .context("the executable has no directory")?
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join("tokenledger-server");
    anyhow::ensure!(
        path.is_file(),
        "{} is missing: build the binaries with the same profile first, e.g. \
         `cargo build --profile dist -p tokenledger-server -p tokenledger -p tokenledger-bench` \
         (or `cargo build --workspace --bins` before `cargo test`)",
        path.display()
    );
    Ok(path)
}

impl Ledger {
    /// Starts a server on `work/data` (created if missing, reused if it holds a log), with a
    /// fresh issuer key set written to `work/jwks.json`; `max_wait_ms` overrides the
    /// sequencer's `max_wait_ms` (default configuration: 0).
    pub fn start(work: &Path, max_wait_ms: Option<u64>) -> anyhow::Result<Ledger> {
        Ledger::start_on(work, max_wait_ms, None)
    }

    /// Like [`Ledger::start`], with the log in `database` when given.
    pub fn start_on(
        work: &Path,
        max_wait_ms: Option<u64>,
        database: Option<Arc<BenchDatabase>>,
    ) -> anyhow::Result<Ledger> {
        server_binary()?;
        std::fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
        let issuer = TestIssuer::new(ISSUER);
        let jwks = work.join("jwks.json");
        issuer.write_jwks(&jwks);
        let mut config = issuer.config_block(
            &format!("jwks_file = \"{}\"", jwks.display()),
            &format!("[{{ rule = \"fixed\", vo = \"{VO}\" }}]"),
        );
        if let Some(ms) = max_wait_ms {
            config.push_str(&format!("\n[sequencer]\nmax_wait_ms = {ms}\n"));
        }
        let dir = work.join("data");
        let server = match &database {
            None => TestServer::start_with_config(&dir, &config),
            Some(db) => TestServer::start_on_database(&dir, &config, db.url()),
        };
        Ok(Ledger {
            server,
            issuer,
            database,
        })
    }

    /// Stops the server (SIGTERM, its last checkpoint written) and measures its database.
    pub fn stop_and_measure(self) -> anyhow::Result<DbSize> {
        let Ledger {
            mut server,
            database,
            ..
        } = self;
        server.stop();
        match database {
            None => block_on(DbSize::measure(&server.db_path())),
            Some(db) => block_on(DbSize::measure_postgres(&db)),
        }
    }

    /// A fresh HTTP client of the current run (its own connection pool).
    pub fn http(&self) -> Http {
        Http::new(self.server.url())
    }

    /// The SQLite database file.
    pub fn db_path(&self) -> PathBuf {
        self.server.db_path()
    }

    /// The server's process id: the `tokenledger-server` whose command line names this
    /// server's data directory.
    pub fn pid(&self) -> Option<u32> {
        let dir = self.server.dir().to_string_lossy().into_owned();
        std::fs::read_dir("/proc")
            .ok()?
            .flatten()
            .find_map(|entry| {
                let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
                let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
                let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
                let is_server = args
                    .first()
                    .is_some_and(|a| a.ends_with(b"tokenledger-server"));
                (is_server && args.contains(&dir.as_bytes())).then_some(pid)
            })
    }

    /// Starts sampling CPU use (server, this process, PostgreSQL's processes when the log
    /// is there, the rest of the machine).
    pub fn cpu_sampler(&self) -> CpuSampler {
        let sampler = CpuSampler::start(self.pid());
        match self.database {
            Some(_) => sampler.with_postgres(),
            None => sampler,
        }
    }

    /// `GET /healthz` → log size.
    pub fn log_size(&self) -> u64 {
        self.server.log_size()
    }

    /// Waits, up to `limit`, until the server's start-up read of its database into the page
    /// cache has ended (`tokenledger_page_cache_warm_up_done 1`); returns how long it took.
    pub fn wait_for_page_cache_warm_up(&self, limit: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            let reply = self.http().get("/metrics", None);
            anyhow::ensure!(reply.status == 200, "GET /metrics: {reply:?}");
            if metric_value(&reply.body, "tokenledger_page_cache_warm_up_done")? == 1.0 {
                return Ok(started.elapsed());
            }
            anyhow::ensure!(
                started.elapsed() < limit,
                "the server's page cache warm-up did not end within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Scrapes `/metrics` for the sequencer's batch sizes and commit times.
    pub fn sequencer_metrics(&self) -> anyhow::Result<SequencerMetrics> {
        let reply = self.http().get("/metrics", None);
        anyhow::ensure!(reply.status == 200, "GET /metrics: {reply:?}");
        SequencerMetrics::parse(&reply.body)
    }
}

/// Clock ticks per second of /proc (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// Ticks of the whole machine so far, from /proc/stat.
#[derive(Clone, Copy, Debug)]
struct MachineTicks {
    /// User, system and interrupts: steal excluded.
    busy: u64,
    stolen: u64,
    iowait: u64,
    idle: u64,
}

fn machine_ticks() -> MachineTicks {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let get = |i: usize| fields.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal
    MachineTicks {
        busy: get(0) + get(1) + get(2) + get(5) + get(6),
        stolen: get(7),
        iowait: get(4),
        idle: get(3),
    }
}

/// User plus system ticks of process `pid` (all its threads, live and exited).
fn process_ticks(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(0, |text| stat_ticks(&text))
}

/// User plus system ticks of every PostgreSQL server process on this machine (command name
/// `postgres`: the postmaster, its backends and background workers), by pid.
fn postgres_ticks() -> HashMap<u32, u64> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    dir.flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            stat.contains(" (postgres) ")
                .then(|| (pid, stat_ticks(&stat)))
        })
        .collect()
}

/// Ticks PostgreSQL's processes used between two snapshots: a process started since counts
/// whole; one that ended since is lost (its last ticks are unknown), a short-lived
/// connection's share at most.
fn postgres_ticks_since(before: &HashMap<u32, u64>) -> u64 {
    postgres_ticks()
        .into_iter()
        .map(|(pid, now)| now.saturating_sub(before.get(&pid).copied().unwrap_or(0)))
        .sum()
}

/// utime + stime of a /proc/<pid>/stat line. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted after its last `)`: state is field 3, utime field 14.
fn stat_ticks(stat: &str) -> u64 {
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(14) + field(15)
}

/// Where the machine's CPU went during a measured run, in cores (2 = both cores busy).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuUse {
    pub server: f64,
    /// This process: the load generator (and any in-process baseline).
    pub bench: f64,
    /// PostgreSQL's server processes on this machine, when the log is in PostgreSQL.
    pub postgres: Option<f64>,
    /// Everything else on the machine: kernel threads (page writeback, I/O completion, which
    /// the server's writes cause) and other people's jobs. It competes with the figures, so
    /// every report shows it.
    pub others: f64,
    /// Taken by the hypervisor for other machines on the host (`steal`): on a shared host
    /// this is what makes one run of the same code much slower than the next.
    pub stolen: f64,
    /// Idle while some I/O was outstanding (fsync, page reads).
    pub iowait: f64,
    pub idle: f64,
}

impl CpuUse {
    /// `server 1.20, load generator 0.35, kernel threads and others 0.05, stolen by the
    /// host 0.00, I/O wait 0.10, idle 0.30 (cores)`.
    pub fn describe(&self) -> String {
        let postgres = self
            .postgres
            .map_or(String::new(), |p| format!("PostgreSQL {p:.2}, "));
        format!(
            "server {:.2}, load generator {:.2}, {postgres}kernel threads and others {:.2}, \
             stolen by the host {:.2}, I/O wait {:.2}, idle {:.2} (cores)",
            self.server, self.bench, self.others, self.stolen, self.iowait, self.idle
        )
    }

    /// Records each share under `prefix_cpu_*`.
    pub fn record(&self, report: &mut crate::report::Report, prefix: &str) {
        let round = |v: f64| (v * 100.0).round() / 100.0;
        report.figure(&format!("{prefix}_cpu_server_cores"), round(self.server));
        report.figure(&format!("{prefix}_cpu_bench_cores"), round(self.bench));
        if let Some(postgres) = self.postgres {
            report.figure(&format!("{prefix}_cpu_postgres_cores"), round(postgres));
        }
        report.figure(&format!("{prefix}_cpu_others_cores"), round(self.others));
        report.figure(&format!("{prefix}_cpu_stolen_cores"), round(self.stolen));
        report.figure(&format!("{prefix}_cpu_iowait_cores"), round(self.iowait));
        report.figure(&format!("{prefix}_cpu_idle_cores"), round(self.idle));
    }
}

/// Samples CPU time of the machine, the server process and this process over a run.
pub struct CpuSampler {
    started: Instant,
    machine: MachineTicks,
    server_pid: Option<String>,
    server: u64,
    bench: u64,
    /// PostgreSQL's processes at the start, when they are sampled.
    postgres: Option<HashMap<u32, u64>>,
}

impl CpuSampler {
    pub fn start(server_pid: Option<u32>) -> CpuSampler {
        let server_pid = server_pid.map(|p| p.to_string());
        CpuSampler {
            started: Instant::now(),
            machine: machine_ticks(),
            server: server_pid.as_deref().map_or(0, process_ticks),
            server_pid,
            bench: process_ticks("self"),
            postgres: None,
        }
    }

    /// Also samples PostgreSQL's server processes on this machine.
    pub fn with_postgres(mut self) -> CpuSampler {
        self.postgres = Some(postgres_ticks());
        self
    }

    pub fn finish(&self) -> CpuUse {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let cores = |ticks: u64| ticks as f64 / TICKS_PER_SEC / secs;
        let now = machine_ticks();
        let since = |at: u64, before: u64| cores(at.saturating_sub(before));
        let server = self
            .server_pid
            .as_deref()
            .map_or(0, |p| process_ticks(p).saturating_sub(self.server));
        let bench = process_ticks("self").saturating_sub(self.bench);
        let postgres = self.postgres.as_ref().map(postgres_ticks_since);
        let busy = now.busy.saturating_sub(self.machine.busy);
        CpuUse {
            server: cores(server),
            bench: cores(bench),
            postgres: postgres.map(cores),
            others: cores(busy.saturating_sub(server + bench + postgres.unwrap_or(0))),
            stolen: since(now.stolen, self.machine.stolen),
            iowait: since(now.iowait, self.machine.iowait),
            idle: since(now.idle, self.machine.idle),
        }
    }
}

/// Kibibytes read from block devices so far, machine-wide (`pgpgin` of /proc/vmstat): shows
/// whether a read benchmark was served from the page cache.
pub fn disk_reads_kib() -> u64 {
    std::fs::read_to_string("/proc/vmstat")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("pgpgin "))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// ` [sequencer max_wait_ms = N]` when the server's batch wait is overridden.
pub fn tuning_note(max_wait_ms: Option<u64>) -> String {
    max_wait_ms.map_or(String::new(), |ms| {
        format!(" [sequencer max_wait_ms = {ms}]")
    })
}

/// The value of the sample `name` (with its labels, if any) in the server's Prometheus text.
fn metric_value(text: &str, name: &str) -> anyhow::Result<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .with_context(|| format!("no {name} in /metrics"))?
        .trim()
        .parse::<f64>()
        .with_context(|| format!("{name} is not a number"))
}

/// What `/metrics` says about group commit.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SequencerMetrics {
    pub batches: u64,
    pub batch_entries: u64,
    pub commit_seconds: f64,
    /// Batches whose write and fsync took over [`SLOW_COMMIT_MS`].
    pub slow_commits: u64,
}

/// A commit slower than this (a bucket bound of the server's histogram) is counted apart:
/// every report of its batch, and of the batches queued behind it, waits for it.
pub const SLOW_COMMIT_MS: u64 = 10;

impl SequencerMetrics {
    /// Parses the Prometheus text of the server.
    pub fn parse(text: &str) -> anyhow::Result<SequencerMetrics> {
        let value = |name: &str| metric_value(text, name);
        let commits = value("tokenledger_commit_seconds_count")? as u64;
        let fast_bucket = format!(
            "tokenledger_commit_seconds_bucket{{le=\"{}\"}}",
            SLOW_COMMIT_MS as f64 / 1e3
        );
        let fast = value(&fast_bucket)? as u64;
        Ok(SequencerMetrics {
            batches: value("tokenledger_batch_entries_count")? as u64,
            batch_entries: value("tokenledger_batch_entries_sum")? as u64,
            commit_seconds: value("tokenledger_commit_seconds_sum")?,
            slow_commits: commits.saturating_sub(fast),
        })
    }

    /// Reports per committed batch, on average.
    pub fn mean_batch(&self) -> f64 {
        self.batch_entries as f64 / self.batches.max(1) as f64
    }

    /// Milliseconds to write and fsync one batch, on average.
    pub fn mean_commit_ms(&self) -> f64 {
        self.commit_seconds * 1e3 / self.batches.max(1) as f64
    }

    /// What happened between two scrapes.
    pub fn since(&self, before: &SequencerMetrics) -> SequencerMetrics {
        SequencerMetrics {
            batches: self.batches - before.batches,
            batch_entries: self.batch_entries - before.batch_entries,
            commit_seconds: self.commit_seconds - before.commit_seconds,
            slow_commits: self.slow_commits - before.slow_commits,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_and_stime_from_a_stat_line() {
        // A command name with a space and a parenthesis, and a negative tpgid (no terminal).
        let line = "4242 (tokio rt) x) S 1 4242 4242 0 -1 4194560 1800 0 0 0 250 37 0 0 20 0 9 0 \
                    5000 100000 2000 18446744073709551615";
        assert_eq!(stat_ticks(line), 287);
        assert_eq!(stat_ticks("garbage"), 0);
    }

    #[test]
    fn cpu_use_is_attributed_to_this_process() {
        let sampler = CpuSampler::start(None);
        let before = process_ticks("self");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut x = 0u64;
        while process_ticks("self") == before && std::time::Instant::now() < deadline {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let used = sampler.finish();
        assert!(x > 0);
        assert!(used.bench > 0.0, "{used:?}");
        assert_eq!(used.server, 0.0);
        assert!(used.describe().contains("load generator"));
    }

    #[test]
    fn parses_the_servers_metrics() {
        let text = "# TYPE x\ntokenledger_batch_entries_bucket{le=\"1\"} 0\n\
                    tokenledger_batch_entries_sum 3000\ntokenledger_batch_entries_count 4\n\
                    tokenledger_commit_seconds_bucket{le=\"0.005\"} 2\n\
                    tokenledger_commit_seconds_bucket{le=\"0.01\"} 3\n\
                    tokenledger_commit_seconds_bucket{le=\"0.025\"} 4\n\
                    tokenledger_commit_seconds_sum 0.02\ntokenledger_commit_seconds_count 4\n";
        let m = SequencerMetrics::parse(text).unwrap();
        assert_eq!(m.batches, 4);
        assert_eq!(m.slow_commits, 1);
        assert_eq!(m.mean_batch(), 750.0);
        assert!((m.mean_commit_ms() - 5.0).abs() < 1e-9);
        assert!(SequencerMetrics::parse("nothing").is_err());
    }
}
