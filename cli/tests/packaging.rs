//! The files shipped in `packaging/` work with this binary: the systemd timer keeps the
//! "suspension enforced on a node within 60 s" budget, the service's command line parses
//! (with the example settings), and the example check.toml is a valid configuration.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tokenledger");
const KEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const SERVICE: &str = include_str!("../../packaging/systemd/tokenledger-blocklist-pull@.service");
const TIMER: &str = include_str!("../../packaging/systemd/tokenledger-blocklist-pull@.timer");
const PULL_ENV: &str = include_str!("../../packaging/systemd/pull.env.example");
const CHECK_TOML: &str = include_str!("../../packaging/check.toml.example");

/// `Key=value` lines of a unit or environment file (comments and sections skipped).
fn settings(text: &str) -> HashMap<&str, &str> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .collect()
}

fn seconds(value: &str) -> u64 {
    value.strip_suffix('s').unwrap().parse().unwrap()
}

#[test]
fn the_timer_keeps_the_enforcement_budget() {
    let timer = settings(TIMER);
    let interval = seconds(timer["OnUnitActiveSec"]);
    let jitter = seconds(timer["RandomizedDelaySec"]);
    let accuracy = seconds(timer["AccuracySec"]);
    assert_eq!(interval, 30);
    assert!(jitter > 0, "nodes must not poll in step");
    // A suspension made just after a pull is fetched by the next one: leave at least 15 s
    // of the 60 s budget for that fetch.
    assert!(
        interval + jitter + accuracy <= 45,
        "{interval}+{jitter}+{accuracy}"
    );
    let service = settings(SERVICE);
    assert!(seconds(service["TimeoutStartSec"]) <= interval);
    assert_eq!(
        service["SuccessExitStatus"], "3",
        "not modified is a success"
    );
    assert_eq!(service["Type"], "oneshot");
}

/// The service's ExecStart with the example settings (and `pull_args`), against an
/// unreachable server: it must get as far as the network (exit 2, "cannot reach").
fn exec_start(pull_args: &str) -> std::process::Output {
    let env = settings(PULL_ENV);
    let line = settings(SERVICE)["ExecStart"]
        .replace("${TOKENLEDGER_SITE}", env["TOKENLEDGER_SITE"])
        .replace("${TOKENLEDGER_OUT}", "/nonexistent/CERN-PROD.json")
        .replace("$TOKENLEDGER_PULL_ARGS", pull_args);
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("/usr/bin/tokenledger"));
    Command::new(BIN)
        .args(words)
        .env_clear()
        .env("TOKENLEDGER_SERVER", "http://127.0.0.1:9")
        .env("TOKENLEDGER_TOKEN", "tlk_test")
        .env("TOKENLEDGER_LOG_KEY", KEY)
        .output()
        .unwrap()
}

#[test]
fn the_service_command_line_parses_with_the_example_settings() {
    let env = settings(PULL_ENV);
    for key in [
        "TOKENLEDGER_SERVER",
        "TOKENLEDGER_LOG_KEY",
        "TOKENLEDGER_TOKEN",
    ] {
        assert!(env.contains_key(key), "{key}: read by the CLI itself");
    }
    let dcache = PULL_ENV
        .lines()
        .find_map(|l| l.strip_prefix("#TOKENLEDGER_PULL_ARGS="))
        .unwrap();
    for args in [env["TOKENLEDGER_PULL_ARGS"], dcache] {
        let out = exec_start(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args}: {out:?}");
        assert!(
            stderr.contains("cannot reach http://127.0.0.1:9"),
            "{args}: {stderr}"
        );
    }
}

#[test]
fn the_example_check_configuration_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("site.key");
    std::fs::write(&key, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = CHECK_TOML
        .replace("/etc/tokenledger/CERN-PROD.key", key.to_str().unwrap())
        .replace(
            "/var/lib/tokenledger/",
            &format!("{}/", dir.path().display()),
        )
        .replace("ledger.example.org/log+1a2b3c4d+AQ...", KEY);
    let config = dir.path().join("check.toml");
    std::fs::write(&config, text).unwrap();
    let ask = |args: &[&str]| {
        Command::new(BIN)
            .args(["check", "--config", config.to_str().unwrap()])
            .args(args)
            .env_clear()
            .output()
            .unwrap()
    };
    // No blocklist pulled yet: the documented default, deny.
    let out = ask(&["--iss", "https://atlas-auth.cern.ch/", "--sub", "a"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "denied stale CERN-PROD\n"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("is missing"));
    // ARC's %D of a listed issuer: denied (exit 0) for the same reason; an unlisted one is
    // not checked (exit 1).
    let arc = ask(&["--arc", "https://idp.example/realms/atlas//abc"]);
    assert_eq!(arc.status.code(), Some(0), "{arc:?}");
    let unlisted = ask(&["--arc", "https://elsewhere.example//abc"]);
    assert_eq!(unlisted.status.code(), Some(1), "{unlisted:?}");
}
