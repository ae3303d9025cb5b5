//! The server under systemd: readiness and stopping notifications on `NOTIFY_SOCKET`
//! (`Type=notify`), the shipped unit and sysusers files as systemd's own tools read them, and
//! the pull units' commands run as systemd runs them, with the example settings file.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tokenledger_e2e::issuer::TestIssuer;
use tokenledger_e2e::site::Site;
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
        "/usr/bin/tokenledger-server --config /etc/tokenledger/server.toml --data-dir /var/lib/tokenledger-server"
    );
    assert_eq!(value("Type"), "notify");
    assert_eq!(value("User"), "tokenledger");
    assert_eq!(value("StateDirectory"), "tokenledger-server");
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

/// `packaging/systemd/pull.env.example` with `values` in place of its examples: the variables
/// as systemd's `EnvironmentFile=` reads them. Each key of `values` must be in the example.
fn pull_settings(values: &[(&str, String)]) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(packaging().join("systemd/pull.env.example")).unwrap();
    let mut vars: Vec<(String, String)> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (key, value) = l.split_once('=').unwrap_or_else(|| panic!("{l}"));
            (key.to_string(), value.to_string())
        })
        .collect();
    for (key, value) in values {
        let slot = vars
            .iter_mut()
            .find(|(k, _)| k == key)
            .unwrap_or_else(|| panic!("{key} is not in pull.env.example"));
        slot.1 = value.clone();
    }
    vars
}

/// The arguments of `unit`'s `ExecStart=` after `/usr/bin/tokenledger`, expanded as systemd
/// does with `vars`: `${VAR}` is one word, `$VAR` its value split at whitespace.
fn exec_start_args(unit: &str, vars: &[(String, String)]) -> Vec<String> {
    let settings = settings(unit);
    let lookup = |name: &str| {
        vars.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{unit} uses {name}, which the settings file does not set"))
    };
    let mut words = Vec::new();
    for word in value(&settings, "ExecStart").split_whitespace() {
        if let Some(name) = word.strip_prefix("${").and_then(|w| w.strip_suffix('}')) {
            words.push(lookup(name));
        } else if let Some(name) = word.strip_prefix('$') {
            words.extend(lookup(name).split_whitespace().map(str::to_string));
        } else {
            assert!(!word.contains('$'), "{unit}: {word}");
            words.push(word.to_string());
        }
    }
    assert_eq!(words.remove(0), "/usr/bin/tokenledger", "{unit}");
    words
}

/// The built CLI with `args`, in the environment the settings file gives the unit (only).
fn unit_command(args: &[String], vars: &[(String, String)]) -> Command {
    let mut cmd = Command::new(cli_binary());
    cmd.env_clear()
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .args(args)
        .stdin(Stdio::null());
    cmd
}

/// Asserts `path` holds the signed blocklist of `site`.
fn assert_blocklist_of(path: &Path, site: &str) {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("nothing installed at {}: {e}", path.display()));
    let installed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(installed["document"]["site"], site, "{text}");
    assert!(installed["signature"].is_string(), "{text}");
}

#[test]
fn the_pull_units_run_with_the_example_settings_pull_and_follow_the_blocklist() {
    let site = Site::start(
        tempfile::tempdir().unwrap(),
        "CERN-PROD",
        TestIssuer::new("https://atlas-auth.example/"),
    );
    let token = std::fs::read_to_string(&site.reader).unwrap();
    let settings_for = |out: &Path| {
        pull_settings(&[
            ("TOKENLEDGER_SERVER", site.server.url().to_string()),
            ("TOKENLEDGER_LOG_KEY", site.log_key.clone()),
            ("TOKENLEDGER_TOKEN", token.trim().to_string()),
            ("TOKENLEDGER_SITE", site.name.clone()),
            ("TOKENLEDGER_OUT", out.display().to_string()),
        ])
    };

    // The timer's one-shot pull.
    let once = site.path("once.json");
    let vars = settings_for(&once);
    let args = exec_start_args("tokenledger-blocklist-pull@.service", &vars);
    let pulled = run(&mut unit_command(&args, &vars));
    assert!(pulled.status.success(), "{args:?}: {pulled:?}");
    assert_blocklist_of(&once, &site.name);

    // The follower installs the blocklist and keeps running until systemd's SIGTERM, which
    // ends it with exit 0 (a stop: Restart=always does not start it again).
    let followed = site.path("followed.json");
    let vars = settings_for(&followed);
    let args = exec_start_args("tokenledger-blocklist-follow@.service", &vars);
    assert!(args.iter().any(|a| a == "--follow"), "{args:?}");
    let mut follower = unit_command(&args, &vars)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning the follow unit's command");
    // Bound on waiting, so that a hung follower fails the test instead of hanging it.
    let started = Instant::now();
    while !followed.exists() {
        if let Some(status) = follower.try_wait().unwrap() {
            panic!(
                "the follower ended ({status}) before installing: {:?}",
                follower.wait_with_output()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the follower installed nothing"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_blocklist_of(&followed, &site.name);
    assert!(
        follower.try_wait().unwrap().is_none(),
        "the follower keeps running"
    );
    let sent = Command::new("kill")
        .args(["-TERM", &follower.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let ended = follower.wait_with_output().unwrap();
    assert_eq!(ended.status.code(), Some(0), "{ended:?}");
}
