//! `check`: the site's decision path. A signed blocklist of 100 k suspended persons (2,000 in
//! quick mode) and a check configuration around it; the real `tokenledger check` process run
//! once per decision (wall time per process, p50/p99, against starting `/bin/true`), and the
//! in-process decision rate of `BlocklistIndex::decide` (against the HMAC of a tag alone).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokenledger_core::blocklist::{
    Blocklist, BlocklistEntry, BlocklistIndex, Scope, SignedDocument,
};
use tokenledger_core::note::NoteSigner;
use tokenledger_core::pseudonym::{LedgerSecret, SiteKey};

use crate::report::{Percentiles, Report, Row, fmt_ms, fmt_rate};

const ISS: &str = "https://idp.example/realms/atlas/";
const SITE: &str = "CERN-PROD";

/// Sizes of one run.
#[derive(Clone, Copy, Debug)]
pub struct CheckOptions {
    pub quick: bool,
    pub entries: usize,
    /// Processes started per command.
    pub runs: usize,
    /// In-process decisions.
    pub decisions: usize,
}

impl CheckOptions {
    pub fn full() -> CheckOptions {
        CheckOptions {
            quick: false,
            entries: 100_000,
            runs: 300,
            decisions: 2_000_000,
        }
    }

    pub fn quick() -> CheckOptions {
        CheckOptions {
            quick: true,
            entries: 2_000,
            runs: 20,
            decisions: 20_000,
        }
    }
}

/// The `tokenledger` CLI next to the running executable.
pub(crate) fn cli_binary() -> anyhow::Result<PathBuf> {
    let server = crate::harness::server_binary()?;
    let path = server.with_file_name("tokenledger");
    ensure!(
        path.is_file(),
        "{} is missing: build it with the same profile, e.g. `cargo build --profile dist -p tokenledger`",
        path.display()
    );
    Ok(path)
}

pub fn run(options: CheckOptions) -> anyhow::Result<Report> {
    let cli = cli_binary()?;
    let dir = tempfile::tempdir()?;
    let now = tokenledger_e2e::issuer::now_secs();
    let (site_key, blocklist) = write_fixture(dir.path(), options.entries, now)?;
    let config = dir.path().join("check.toml");
    let check = |sub: &str| -> Command {
        let mut cmd = Command::new(&cli);
        cmd.args(["check", "--config"])
            .arg(&config)
            .args(["--iss", ISS, "--sub", sub]);
        cmd
    };
    // The first run verifies the signature and writes the cache; it is timed on its own.
    let first = time_once(&mut check("nobody"))?;
    let suspended = check("user-42").output()?;
    ensure!(
        String::from_utf8_lossy(&suspended.stdout).starts_with("suspended"),
        "check did not find a suspended user: {suspended:?}"
    );
    let mut allowed = sample(options.runs, || time_once(&mut check("nobody")))?;
    let mut denied = sample(options.runs, || time_once(&mut check("user-42")))?;
    let mut baseline = sample(options.runs, || time_once(&mut Command::new("/bin/true")))?;
    let (allowed, denied, baseline) = (
        Percentiles::of(&mut allowed).context("no samples")?,
        Percentiles::of(&mut denied).context("no samples")?,
        Percentiles::of(&mut baseline).context("no samples")?,
    );

    let index = BlocklistIndex::new(blocklist);
    let rate = decision_rate(&index, &site_key, options.decisions, now);
    let hmac_rate = hmac_rate(&site_key, options.decisions);

    let mut report = Report::new(
        "check",
        format!("tokenledger check, {} suspended persons", options.entries),
        options.quick,
    );
    let ratio = |p: &Percentiles| p.p50.as_secs_f64() / baseline.p50.as_secs_f64();
    report.row(
        Row::plain("process per decision, allowed: p50", fmt_ms(allowed.p50))
            .target("< 3 ms wall", allowed.p50 < Duration::from_millis(3))
            .against(
                format!("/bin/true p50 {}", fmt_ms(baseline.p50)),
                ratio(&allowed),
            ),
    );
    report.row(Row::plain(
        "process per decision, allowed: p99",
        fmt_ms(allowed.p99),
    ));
    report.row(
        Row::plain("process per decision, suspended: p50", fmt_ms(denied.p50))
            .target("< 3 ms wall", denied.p50 < Duration::from_millis(3))
            .against(
                format!("/bin/true p50 {}", fmt_ms(baseline.p50)),
                ratio(&denied),
            ),
    );
    report.row(Row::plain(
        "process per decision, suspended: p99",
        fmt_ms(denied.p99),
    ));
    report.row(Row::plain(
        "first run after a new blocklist (verify + cache)",
        fmt_ms(first),
    ));
    report.row(
        Row::plain("in-process decisions, one thread", fmt_rate(rate))
            .target(">= 1,000,000/s", rate >= 1_000_000.0)
            .against(
                format!("tag HMAC alone {}", fmt_rate(hmac_rate)),
                rate / hmac_rate,
            ),
    );
    allowed.record(&mut report, "process_allowed");
    denied.record(&mut report, "process_suspended");
    baseline.record(&mut report, "bin_true");
    report.figure("first_run_ms", crate::report::ms(first));
    report.figure("decisions_per_sec", rate.round());
    report.figure("tag_hmac_per_sec", hmac_rate.round());
    Ok(report)
}

/// Writes `blocklist.json`, `site.key` (0600) and `check.toml` for `entries` suspended
/// persons `user-0`, `user-1`, ...; returns the site key and the document.
fn write_fixture(dir: &Path, entries: usize, now: i64) -> anyhow::Result<(SiteKey, Blocklist)> {
    let secret = LedgerSecret::from_bytes([42; 32]);
    let site_key = secret.site_key(SITE);
    let signer = NoteSigner::from_seed("ledger.example/log", [7; 32])?;
    let blocklist = Blocklist {
        site: SITE.into(),
        sequence: 1,
        issued_at: now,
        expires_at: now + 86_400,
        entries: (0..entries)
            .map(|i| BlocklistEntry {
                vo: "atlas".into(),
                pseudonym: Some(secret.pseudonym(SITE, "atlas", &format!("pe-{i}"))),
                tags: vec![site_key.tag(ISS, &format!("user-{i}"))],
                jti_hashes: Vec::new(),
                client_tags: Vec::new(),
                issued_before: None,
                scope: Scope::Compute,
                not_after: None,
                suspension_id: format!("su-{i:08}"),
                reason_code: "misuse".into(),
            })
            .collect(),
    };
    let signed = blocklist.clone().sign(&signer);
    std::fs::write(dir.join("blocklist.json"), serde_json::to_vec(&signed)?)?;
    let key = dir.join("site.key");
    std::fs::write(&key, STANDARD.encode(site_key.as_bytes()))?;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    let mut config = std::fs::File::create(dir.join("check.toml"))?;
    writeln!(
        config,
        "on_stale = \"deny\"\nscope = \"compute\"\nissuers = [\"{ISS}\"]\n\n[[ledger]]\nsite = \"{SITE}\"\n\
         blocklist = \"blocklist.json\"\nlog_key = \"{}\"\nsite_key_file = \"site.key\"",
        signer.verifier()
    )?;
    Ok((site_key, blocklist))
}

fn time_once(command: &mut Command) -> anyhow::Result<Duration> {
    let started = Instant::now();
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    Ok(started.elapsed())
}

fn sample(
    runs: usize,
    mut once: impl FnMut() -> anyhow::Result<Duration>,
) -> anyhow::Result<Vec<Duration>> {
    (0..runs).map(|_| once()).collect()
}

/// Decisions per second on one thread, half of them for suspended users.
fn decision_rate(index: &BlocklistIndex, key: &SiteKey, decisions: usize, now: i64) -> f64 {
    let subs: Vec<String> = (0..1024).map(|i| format!("user-{i}")).collect();
    let started = Instant::now();
    for i in 0..decisions {
        let sub = if i % 2 == 0 {
            subs[i % 1024].as_str()
        } else {
            "nobody"
        };
        std::hint::black_box(index.decide(key, ISS, sub, None, Scope::Compute, now));
    }
    decisions as f64 / started.elapsed().as_secs_f64()
}

/// Tags computed per second: the HMAC every decision needs.
fn hmac_rate(key: &SiteKey, count: usize) -> f64 {
    let started = Instant::now();
    for i in 0..count {
        std::hint::black_box(key.tag(ISS, if i % 2 == 0 { "user-1" } else { "nobody" }));
    }
    count as f64 / started.elapsed().as_secs_f64()
}
