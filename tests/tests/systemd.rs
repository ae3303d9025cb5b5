//! The server under systemd: readiness and stopping notifications on `NOTIFY_SOCKET`
//! (`Type=notify`), and the shipped unit and sysusers files as systemd's own tools read them.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use tokenledger_e2e::{TestServer, cli_binary, netns, server_binary};

/// The repository's `packaging/` folder.
fn packaging() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging")
}

/// The next datagram on `socket` as text, waiting (bounded) for it.
fn receive(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = socket
        .recv(&mut buf)
        .expect("a notification within the socket's timeout");
    String::from_utf8(buf[..n].to_vec()).expect("a notification is text")
}

#[test]
fn the_server_notifies_systemd_when_it_serves_and_when_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let data = dir.path().join("data");
    let mut server = TestServer::start_with_env(
        &data,
        &[("NOTIFY_SOCKET", Some(socket_path.to_str().unwrap()))],
    );

    let ready = receive(&socket);
    let lines: Vec<&str> = ready.lines().collect();
    assert!(lines.contains(&"READY=1"), "{ready:?}");
    let port = server.url().rsplit(':').next().unwrap();
    assert!(
        lines.contains(&format!("STATUS=listening on 127.0.0.1:{port}").as_str()),
        "{ready:?}"
    );
    for file in ["tokenledger.db", "log.key", "ledger.secret"] {
        assert!(data.join(file).is_file(), "{file} before READY=1");
    }
    assert_eq!(server.log_size(), 0, "the first request after READY=1");

    server.stop();
    let stopping = receive(&socket);
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
}

/// Runs a command and returns its output, panicking if it cannot start.
fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Copies each unit of `packaging/systemd` into `dir`, its `/usr/bin/` binaries pointed at the
/// ones just built and a template (`name@.service`) made an instance (`name@ci.service`):
/// `systemd-analyze verify` checks that each command exists and is executable.
fn units_with_built_binaries(dir: &Path) -> Vec<PathBuf> {
    let server = server_binary();
    let cli = cli_binary();
    let mut units = Vec::new();
    for entry in std::fs::read_dir(packaging().join("systemd")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if !name.ends_with(".service") && !name.ends_with(".timer") {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace(
                "=/usr/bin/tokenledger-server ",
                &format!("={} ", server.display()),
            )
            .replace("=/usr/bin/tokenledger ", &format!("={} ", cli.display()));
        assert!(
            !text.contains("/usr/bin/"),
            "{name}: a binary not built here"
        );
        let copy = dir.join(name.replace("@.", "@ci."));
        std::fs::write(&copy, text).unwrap();
        units.push(copy);
    }
    units.sort();
    units
}

#[test]
fn every_shipped_unit_passes_systemd_analyze_verify() {
    netns::require_packages(&["systemd", "man-db"]);
    let dir = tempfile::tempdir().unwrap();
    let units = units_with_built_binaries(dir.path());
    let names: Vec<String> = units
        .iter()
        .map(|u| u.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "tokenledger-server.service",
        "tokenledger-blocklist-pull@ci.service",
        "tokenledger-blocklist-pull@ci.timer",
        "tokenledger-blocklist-follow@ci.service",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    // The manual pages named by Documentation=man:... are the CLI's own: generate them.
    let man = dir.path().join("man");
    let pages = run(Command::new(cli_binary())
        .args(["man", "--out"])
        .arg(man.join("man1")));
    assert!(pages.status.success(), "{pages:?}");

    let out = run(Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .env("MANPATH", &man)
        .env("SYSTEMD_LOG_COLOR", "0"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {out:?}");
    for name in &names {
        assert!(
            !stderr.contains(name.as_str()),
            "systemd-analyze verify complains about {name}:\n{stderr}"
        );
    }
    // systemd's own rating of the sandbox: exposure at most 1.5 of 10 (1.2 when written).
    for unit in units
        .iter()
        .filter(|u| u.extension().is_some_and(|e| e == "service"))
    {
        let rated = run(Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--threshold=15"])
            .arg(unit)
            .env("SYSTEMD_LOG_COLOR", "0"));
        assert!(
            rated.status.success(),
            "{} is exposed more than 1.5:\n{}",
            unit.display(),
            String::from_utf8_lossy(&rated.stdout)
        );
    }
}

#[test]
fn the_example_server_configuration_loads() {
    let out = run(Command::new(server_binary())
        .arg("--config")
        .arg(packaging().join("server.toml.example"))
        .arg("config"));
    assert!(out.status.success(), "{out:?}");
}

/// The `Key=value` settings of a shipped unit, in order (comments left out).
fn settings(unit: &str) -> Vec<(String, String)> {
    std::fs::read_to_string(packaging().join("systemd").join(unit))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The one value of `key` in `settings`.
fn value<'a>(settings: &'a [(String, String)], key: &str) -> &'a str {
    let values: Vec<&str> = settings
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(values.len(), 1, "{key}: {values:?}");
    values[0]
}

#[test]
fn the_server_unit_runs_the_packaged_binary_unprivileged_and_confined() {
    let settings = settings("tokenledger-server.service");
    let value = |key: &str| value(&settings, key);
    assert_eq!(
        value("ExecStart"),
        "/usr/bin/tokenledger-server --config /etc/tokenledger/server.toml --data-dir /var/lib/tokenledger"
    );
    assert_eq!(value("Type"), "notify");
    assert_eq!(value("User"), "tokenledger");
    assert_eq!(value("StateDirectory"), "tokenledger");
    assert_eq!(value("StateDirectoryMode"), "0700");
    assert_eq!(value("ConfigurationDirectory"), "tokenledger");
    assert_eq!(value("UMask"), "0077");
    assert_eq!(value("CapabilityBoundingSet"), "", "no capability");
    for key in ["NoNewPrivileges", "ProtectHome", "PrivateTmp"] {
        assert_eq!(value(key), "yes", "{key}");
    }
    assert_eq!(value("ProtectSystem"), "strict");
}

#[test]
fn sysusers_creates_the_service_user_with_its_state_directory_as_home() {
    netns::require_packages(&["systemd"]);
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("etc")).unwrap();
    let out = run(Command::new("systemd-sysusers")
        .arg("--root")
        .arg(root.path())
        .arg(packaging().join("sysusers.d/tokenledger.conf")));
    assert!(out.status.success(), "systemd-sysusers: {out:?}");
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    let user = passwd
        .lines()
        .find(|l| l.starts_with("tokenledger:"))
        .unwrap_or_else(|| panic!("no tokenledger user in {passwd}"));
    let fields: Vec<&str> = user.split(':').collect();
    let uid: u32 = fields[2].parse().unwrap();
    assert!((1..1000).contains(&uid), "a system user: {user}");
    assert_eq!(fields[5], "/var/lib/tokenledger", "{user}");
    assert!(fields[6].ends_with("nologin"), "{user}");
    let group = std::fs::read_to_string(root.path().join("etc/group")).unwrap();
    assert!(
        group.lines().any(|l| l.starts_with("tokenledger:")),
        "{group}"
    );
}

#[test]
fn the_follow_unit_runs_pull_follow_with_the_timer_units_settings_and_sandbox() {
    let follow = settings("tokenledger-blocklist-follow@.service");
    let pull = settings("tokenledger-blocklist-pull@.service");
    assert_eq!(
        value(&follow, "ExecStart"),
        value(&pull, "ExecStart").replace("blocklist pull ", "blocklist pull --follow "),
        "the same pull, following"
    );
    assert_eq!(value(&follow, "Restart"), "always");
    assert!(value(&follow, "RestartSec").ends_with('s'));
    // Every other setting of the timer's pull (settings file, user, state directory, the
    // whole sandbox) is the follower's too, so the two cannot drift apart.
    let its_own = [
        "Description",
        "Type",
        "ExecStart",
        "SuccessExitStatus",
        "TimeoutStartSec",
    ];
    for (key, wanted) in pull.iter().filter(|(k, _)| !its_own.contains(&k.as_str())) {
        assert!(
            follow.iter().any(|(k, v)| k == key && v == wanted),
            "{key}={wanted} of the pull unit is missing from the follow unit"
        );
    }
}
