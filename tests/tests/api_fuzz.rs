//! API fuzzing: schemathesis (4.x, from PyPI; installed by the test when missing) generates
//! requests from the live `GET /openapi.json` of a real server and checks every answer against
//! the document:
//! no 5xx, only documented statuses and bodies, schema-valid requests accepted and invalid
//! ones refused, 401 without a credential. Each operation is called with a credential that may
//! call it (`tests/api_fuzz/schemathesis.toml`), on a ledger seeded with a VO, a site, two
//! persons, a pseudonym and suspensions whose identifiers the requests often name; hooks
//! (`tests/api_fuzz/hooks.py`) keep the rules the document states in words only.
//!
//! The test fails on any failure or error schemathesis reports, on an operation that answered
//! only 401/403, and when schemathesis is missing or not 4.x: it never skips. It prints
//! `api fuzz: <cases> cases, <failures> failures (...)`.
//!
//! - `TOKENLEDGER_API_FUZZ_EXAMPLES`: examples per operation and phase (default 100).
//! - `TOKENLEDGER_API_FUZZ_SEED`: schemathesis's seed (default fixed, so CI runs the same
//!   requests every time; another seed explores others).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokenledger_e2e::both_backends;
use tokenledger_e2e::{Http, TestServer, report};

const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/api_fuzz/schemathesis.toml");
const HOOKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/api_fuzz/hooks.py");
/// The major version whose command line and configuration the test speaks, and how to get it.
const SCHEMATHESIS_MAJOR: &str = "4";
const REQUIREMENT: &str = "schemathesis>=4,<5";
const DEFAULT_EXAMPLES: u32 = 100;
const DEFAULT_SEED: u64 = 20_261_206;
/// Bound on the whole schemathesis run: one still running then is killed and fails the test.
const RUN_LIMIT: Duration = Duration::from_secs(600);
const SITE: &str = "CERN-PROD";
const REASON: &str = "API-FUZZ-1";

/// The schemathesis command: the one on `PATH` when it is 4.x, else one installed from PyPI
/// into a virtual environment under the build's temporary folder (made once, kept for later
/// runs). Panics, saying why, when neither can be had: the test never skips.
fn schemathesis() -> Command {
    if version_of(Path::new("schemathesis")).is_ok() {
        return Command::new("schemathesis");
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("schemathesis-venv");
    // Held while the virtual environment is checked and made: the test runs once per
    // backend, on parallel threads (and maybe in other test processes), and two
    // `python3 -m venv` on one folder collide. A lock on a file of its own (flock) keeps
    // out both.
    let _installing = File::create(venv.with_extension("lock"))
        .and_then(|lock| lock.lock().map(|()| lock))
        .unwrap_or_else(|e| panic!("locking {}.lock: {e}", venv.display()));
    let installed = venv.join("bin/schemathesis");
    if version_of(&installed).is_err() {
        eprintln!("installing {REQUIREMENT} from PyPI into {}", venv.display());
        run_python_tool(
            Command::new("python3")
                .args(["-m", "venv", "--clear"])
                .arg(&venv),
            "python3 -m venv",
        );
        run_python_tool(
            Command::new(venv.join("bin/pip")).args(["install", "--quiet", REQUIREMENT]),
            "pip install",
        );
    }
    if let Err(why) = version_of(&installed) {
        panic!("schemathesis {SCHEMATHESIS_MAJOR}.x is needed: {why}");
    }
    Command::new(installed)
}

/// `Ok` when `program --version` names a schemathesis of [`SCHEMATHESIS_MAJOR`].
fn version_of(program: &Path) -> Result<(), String> {
    let out = Command::new(program)
        .arg("--version")
        .output()
        .map_err(|e| format!("{} cannot run ({e})", program.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let number = text.trim().rsplit(' ').next().unwrap_or_default();
    if out.status.success() && number.split('.').next() == Some(SCHEMATHESIS_MAJOR) {
        Ok(())
    } else {
        Err(format!("`{} --version` said {text:?}", program.display()))
    }
}

/// Runs a step of installing schemathesis; panics with its output when it fails.
fn run_python_tool(command: &mut Command, what: &str) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what} cannot run ({e}): the API fuzzing test needs python3"));
    assert!(
        out.status.success(),
        "{what} failed ({}), installing {REQUIREMENT}:\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(raw) => raw
            .parse()
            .unwrap_or_else(|_| panic!("{name}={raw:?} is not a number")),
        Err(_) => default,
    }
}

/// What the requests name: credentials of each role and records that exist.
struct Seeded {
    admin: String,
    officer: String,
    site_admin: String,
    jti: String,
    person: String,
    other_person: String,
    pseudonym: String,
    site_suspension: String,
    vo_suspension: String,
    suspension_request: String,
}

/// Two persons of VO atlas with a token each, the site's pseudonym of the first, a token
/// suspension at the site, a VO-wide suspension of the second, and the site's pending request
/// that the VO suspend the first.
fn seed(server: &TestServer) -> Seeded {
    let http = server.http();
    let admin = server.admin_secret().to_string();
    let officer = server.create_credential("vo-security", Some("atlas"));
    let site_admin = server
        .credential(&["--role", "site-admin", "--site", SITE])
        .secret;
    // `report` gives a jti of each length its own subject: two jtis, two persons.
    let (jti, other_jti) = ("api-fuzz-login", "api-fuzz-other-login");
    for j in [jti, other_jti] {
        let reply = http.append(&admin, &report(j, "atlas"));
        assert_eq!(reply.status, 201, "{reply:?}");
    }
    let person_of = |jti: &str| {
        let path = format!("/v1/vos/atlas/tokens/{jti}?reason={REASON}");
        let reply = http.get(&path, Some(&officer));
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.json()["person"]["id"].as_str().unwrap().to_string()
    };
    let (person, other_person) = (person_of(jti), person_of(other_jti));
    let path = format!("/v1/sites/{SITE}/tokens/{jti}/pseudonym");
    let reply = http.get(&path, Some(&site_admin));
    assert_eq!(reply.status, 200, "{reply:?}");
    let pseudonym = reply.json()["pseudonym"].as_str().unwrap().to_string();
    let suspend = |path: &str, token: &str, body: Value| {
        let reply = http.post_json(path, Some(token), &body);
        assert_eq!(reply.status, 201, "{reply:?}");
        reply.json()["id"].as_str().unwrap().to_string()
    };
    let site_suspension = suspend(
        &format!("/v1/sites/{SITE}/suspensions"),
        &site_admin,
        json!({"jti": jti, "target": "token", "reason": REASON}),
    );
    let vo_suspension = suspend(
        "/v1/vos/atlas/suspensions",
        &officer,
        json!({"person": other_person, "reason": REASON}),
    );
    let suspension_request = suspend(
        &format!("/v1/sites/{SITE}/suspension-requests"),
        &site_admin,
        json!({"pseudonym": pseudonym, "evidence": REASON}),
    );
    Seeded {
        admin,
        officer,
        site_admin,
        jti: jti.to_string(),
        person,
        other_person,
        pseudonym,
        site_suspension,
        vo_suspension,
        suspension_request,
    }
}

/// Runs `command` (schemathesis), its output into the file `log`, bounded by [`RUN_LIMIT`];
/// returns its exit code and output.
fn run(mut command: Command, log: &Path) -> (Option<i32>, String) {
    let file = File::create(log).expect("creating schemathesis's log");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("schemathesis's log"))
        .stderr(file)
        .spawn()
        .expect("starting schemathesis");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for schemathesis") {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("schemathesis ran for more than {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read(log).expect("reading schemathesis's log");
    (status.code(), String::from_utf8_lossy(&output).into_owned())
}

/// The count of a report's list or map (`failures`, a warning's operations).
fn count(value: &Value) -> usize {
    value
        .as_array()
        .map(Vec::len)
        .or(value.as_object().map(|o| o.len()))
        .unwrap_or(0)
}

both_backends!(schemathesis_finds_no_failure_in_the_live_api);
fn schemathesis_finds_no_failure_in_the_live_api() {
    let command = schemathesis();
    let dir = tempfile::tempdir().unwrap();
    let config = format!("[[site]]\nname = \"{SITE}\"\nvos = [\"atlas\", \"cms\"]\n");
    let server = TestServer::start_with_config(&dir.path().join("data"), &config);
    let seeded = seed(&server);
    let examples: u32 = env_number("TOKENLEDGER_API_FUZZ_EXAMPLES", DEFAULT_EXAMPLES);
    let seed: u64 = env_number("TOKENLEDGER_API_FUZZ_SEED", DEFAULT_SEED);
    let report_path = dir.path().join("schemathesis-report.json");
    let started = Instant::now();
    let (code, output) = run(
        run_command(
            command,
            &server.http(),
            &seeded,
            dir.path(),
            &report_path,
            examples,
            seed,
        ),
        &dir.path().join("schemathesis.log"),
    );
    let took = started.elapsed();
    let report: Value = std::fs::read(&report_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_else(|| panic!("schemathesis wrote no report (exit {code:?}):\n{output}"));
    let cases = report["test_cases"]["generated"].as_u64().unwrap_or(0);
    let failures: u64 = report["failures"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| f["count"].as_u64().unwrap_or(1))
        .sum();
    let errors = count(&report["errors"]);
    let line = format!(
        "api fuzz: {cases} cases, {failures} failures, {errors} errors ({} of {} operations, \
         {:.0} s, {examples} examples, seed {seed})\n",
        report["operations"]["tested"],
        report["operations"]["total"],
        took.as_secs_f64()
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    let only_denied = count(&report["warnings"]["missing_auth"]);
    assert!(
        code == Some(0) && failures == 0 && errors == 0 && only_denied == 0,
        "schemathesis failed (exit {code:?}): {failures} failures, {errors} errors, \
         {only_denied} operations answered only 401/403\n{output}\n{}",
        server.log_tail()
    );
    assert!(cases > 0, "schemathesis generated no case:\n{output}");
    assert_eq!(
        report["operations"]["tested"], report["operations"]["total"],
        "every operation is tested:\n{output}"
    );
}

/// The committed configuration with the seeded records' dictionaries appended, in `dir`.
fn write_config(seeded: &Seeded, dir: &Path) -> PathBuf {
    let mut config = std::fs::read_to_string(CONFIG).expect("tests/api_fuzz/schemathesis.toml");
    let dictionaries = [
        ("jti", vec![&seeded.jti]),
        ("person", vec![&seeded.person, &seeded.other_person]),
        ("pseudonym", vec![&seeded.pseudonym]),
        ("site_suspension", vec![&seeded.site_suspension]),
        ("vo_suspension", vec![&seeded.vo_suspension]),
        ("suspension_request", vec![&seeded.suspension_request]),
    ];
    for (name, values) in dictionaries {
        let values = serde_json::to_string(&values).expect("strings");
        config += &format!("\n[dictionaries.{name}]\nvalues = {values}\n");
    }
    let path = dir.join("schemathesis.toml");
    std::fs::write(&path, config).expect("writing the schemathesis configuration");
    path
}

/// `schemathesis run` of the server's document: its configuration with the seeded records,
/// the credentials in the environment it reads them from, two workers, a JSON report.
fn run_command(
    mut command: Command,
    http: &Http,
    seeded: &Seeded,
    dir: &Path,
    report: &Path,
    examples: u32,
    seed: u64,
) -> Command {
    let config = write_config(seeded, dir);
    command
        .current_dir(dir)
        .args(["--no-color", "--config-file"])
        .arg(config)
        .arg("run")
        .arg(http.url("/openapi.json"))
        .args(["--workers", "2", "--report", "json", "--report-json-path"])
        .arg(report)
        .args(["--max-examples", &examples.to_string()])
        .args(["--seed", &seed.to_string()])
        .env("TL_FUZZ_HOOKS", HOOKS)
        .env("TL_FUZZ_ADMIN", &seeded.admin)
        .env("TL_FUZZ_OFFICER", &seeded.officer)
        .env("TL_FUZZ_SITE_ADMIN", &seeded.site_admin);
    command
}
