//! The server under test: the real `tokenledger-server` binary (found next to the bench's own
//! executable, so a release bench runs the release server), started by the end-to-end
//! harness on a loopback port with a temporary data directory, the default configuration and
//! one JWT issuer (the benchmark workload's), and stopped with SIGTERM at the end.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tokenledger_e2e::issuer::TestIssuer;
use tokenledger_e2e::{Http, TestServer};

use crate::workload::{ISSUER, VO};

/// A running server with the workload's issuer configured.
pub struct Ledger {
    pub server: TestServer,
    pub issuer: TestIssuer,
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
        "{} is missing: build the server with the same profile first, e.g. \
         `cargo build --release -p tokenledger-server -p tokenledger-bench` \
         (or `cargo build --workspace --bins` before `cargo test`)",
        path.display()
    );
    Ok(path)
}

impl Ledger {
    /// Starts a server on `work/data` (created if missing, reused if it holds a log), with a
    /// fresh issuer key set written to `work/jwks.json`.
    pub fn start(work: &Path) -> anyhow::Result<Ledger> {
        server_binary()?;
        std::fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
        let issuer = TestIssuer::new(ISSUER);
        let jwks = work.join("jwks.json");
        issuer.write_jwks(&jwks);
        let config = issuer.config_block(
            &format!("jwks_file = \"{}\"", jwks.display()),
            &format!("[{{ rule = \"fixed\", vo = \"{VO}\" }}]"),
        );
        let server = TestServer::start_with_config(&work.join("data"), &config);
        Ok(Ledger { server, issuer })
    }

    /// A fresh HTTP client of the current run (its own connection pool).
    pub fn http(&self) -> Http {
        Http::new(self.server.url())
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.server.db_path()
    }

    /// `GET /healthz` → log size.
    pub fn log_size(&self) -> u64 {
        self.server.log_size()
    }

    /// Scrapes `/metrics` for the sequencer's batch sizes and commit times.
    pub fn sequencer_metrics(&self) -> anyhow::Result<SequencerMetrics> {
        let reply = self.http().get("/metrics", None);
        anyhow::ensure!(reply.status == 200, "GET /metrics: {reply:?}");
        SequencerMetrics::parse(&reply.body)
    }
}

/// What `/metrics` says about group commit.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SequencerMetrics {
    pub batches: u64,
    pub batch_entries: u64,
    pub commit_seconds: f64,
}

impl SequencerMetrics {
    /// Parses the Prometheus text of the server.
    pub fn parse(text: &str) -> anyhow::Result<SequencerMetrics> {
        let value = |name: &str| -> anyhow::Result<f64> {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
                .with_context(|| format!("no {name} in /metrics"))?
                .trim()
                .parse::<f64>()
                .with_context(|| format!("{name} is not a number"))
        };
        Ok(SequencerMetrics {
            batches: value("tokenledger_batch_entries_count")? as u64,
            batch_entries: value("tokenledger_batch_entries_sum")? as u64,
            commit_seconds: value("tokenledger_commit_seconds_sum")?,
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_servers_metrics() {
        let text = "# TYPE x\ntokenledger_batch_entries_bucket{le=\"1\"} 0\n\
                    tokenledger_batch_entries_sum 3000\ntokenledger_batch_entries_count 4\n\
                    tokenledger_commit_seconds_sum 0.02\ntokenledger_commit_seconds_count 4\n";
        let m = SequencerMetrics::parse(text).unwrap();
        assert_eq!(m.batches, 4);
        assert_eq!(m.mean_batch(), 750.0);
        assert!((m.mean_commit_ms() - 5.0).abs() < 1e-9);
        assert!(SequencerMetrics::parse("nothing").is_err());
    }
}
