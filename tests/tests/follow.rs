//! `tokenledger blocklist pull --follow` end to end: the real server, the real CLI. The
//! follower holds a long poll open; a suspension made through the API is installed and
//! denied by `tokenledger check` within 2 s of its 201, and so is its lift; after the server
//! is killed (-9) and started again on the same port, the follower reconnects and installs
//! the next change; SIGTERM ends it with exit 0; exports refuse `--follow`.
//!
//! Every CLI run starts from an empty environment, so nothing of the machine leaks in.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokenledger_e2e::both_backends;
use tokenledger_e2e::issuer::TestIssuer;
use tokenledger_e2e::site::{Site, check_person};
use tokenledger_e2e::{CliRun, cli_binary};

const ATLAS_ISS: &str = "https://atlas-auth.example/";
const SITE: &str = "CERN-PROD";
/// What the issue asks: a suspension is denied by `check` this soon after its 201.
const ENFORCED_WITHIN: Duration = Duration::from_secs(2);
/// How often `check` is asked while waiting for a change to arrive.
const CHECK_EVERY: Duration = Duration::from_millis(50);
/// Bound on waiting for the follower (a hung follower fails the test instead of hanging it).
const FOLLOWER_TIMEOUT: Duration = Duration::from_secs(120);

/// A running `blocklist pull --follow`, its stdout lines arriving on a channel; killed on drop.
struct Follower {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Follower {
    fn start(s: &Site, out: &Path) -> Follower {
        let mut child = Command::new(cli_binary())
            .env_clear()
            .args(s.pull_args(&s.reader, out, &["--follow"]))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning tokenledger blocklist pull --follow");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Follower { child, lines }
    }

    /// The next line the follower prints (one per installed update).
    fn next_update(&mut self) -> String {
        self.lines
            .recv_timeout(FOLLOWER_TIMEOUT)
            .unwrap_or_else(|e| panic!("no update from the follower ({e}): {:?}", self.child))
    }

    /// SIGTERM, then its exit code and stderr.
    fn terminate(mut self) -> (i32, String) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                started.elapsed() < FOLLOWER_TIMEOUT,
                "the follower ignored SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut self.child.stderr.take().unwrap(), &mut stderr).unwrap();
        (status.code().expect("an exit code"), stderr)
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tokenledger check` for compute, as a person asks about (ATLAS_ISS, sub).
fn check(config: &Path, sub: &str) -> CliRun {
    check_person(config, ATLAS_ISS, sub)
}

/// Asks `check` every 50 ms until `decided` holds of its answer; how long that took from
/// `since`. Bounded by [`FOLLOWER_TIMEOUT`] (the 2 s is asserted by the caller).
fn until_check(
    config: &Path,
    sub: &str,
    since: Instant,
    decided: impl Fn(&CliRun) -> bool,
) -> Duration {
    loop {
        let run = check(config, sub);
        if decided(&run) {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < FOLLOWER_TIMEOUT,
            "check never changed its answer: {run:#?}"
        );
        std::thread::sleep(CHECK_EVERY);
    }
}

fn suspended(run: &CliRun) -> bool {
    run.stdout.starts_with("suspended ")
}

fn allowed(run: &CliRun) -> bool {
    run.code == 0 && run.stdout == "allowed\n"
}

/// The site admin's secret, from its token file.
fn admin_secret(s: &Site) -> String {
    std::fs::read_to_string(&s.admin)
        .unwrap()
        .trim()
        .to_string()
}

/// Suspends the person behind `jti` (compute) through the API; returns the suspension's id
/// and the instant its 201 arrived.
fn suspend(s: &Site, jti: &str) -> (String, Instant) {
    let http = s.server.http();
    let admin = admin_secret(s);
    let found = http.get(
        &format!("/v1/sites/{SITE}/tokens/{jti}/pseudonym"),
        Some(&admin),
    );
    assert_eq!(found.status, 200, "{found:?}");
    let pseudonym = found.json()["pseudonym"].as_str().unwrap().to_string();
    let made = http.post_json(
        &format!("/v1/sites/{SITE}/suspensions"),
        Some(&admin),
        &json!({"pseudonym": pseudonym, "scope": "compute", "reason": "INC-22 mining"}),
    );
    assert_eq!(made.status, 201, "{made:?}");
    let at = Instant::now();
    (made.json()["id"].as_str().unwrap().to_string(), at)
}

/// Lifts suspension `id` through the API; the instant its answer arrived.
fn lift(s: &Site, id: &str) -> Instant {
    let lifted = s.server.http().send(
        "DELETE",
        &format!("/v1/sites/{SITE}/suspensions/{id}?reason=cleared"),
        Some(&admin_secret(s)),
        None,
        None,
    );
    assert_eq!(lifted.status, 200, "{lifted:?}");
    Instant::now()
}

both_backends!(a_followed_suspension_is_denied_within_two_seconds_and_survives_a_server_restart);
fn a_followed_suspension_is_denied_within_two_seconds_and_survives_a_server_restart() {
    let mut s = Site::start(
        tempfile::tempdir().unwrap(),
        SITE,
        TestIssuer::new(ATLAS_ISS),
    );
    s.ingest("t-alice", "alice");
    s.ingest("t-bob", "bob");
    let blocklist = s.path("var/CERN-PROD.json");
    std::fs::create_dir_all(blocklist.parent().unwrap()).unwrap();
    let config = s.write_check_config("check.toml", "deny", &[ATLAS_ISS], &blocklist);

    let mut follower = Follower::start(&s, &blocklist);
    let first = follower.next_update();
    assert!(
        first.contains("sequence 1 (was none), 0 suspensions"),
        "{first}"
    );
    assert!(allowed(&check(&config, "alice")));

    // Suspended while the follower waits: denied within 2 s of the 201.
    let (id, created) = suspend(&s, "t-alice");
    let took = until_check(&config, "alice", created, suspended);
    eprintln!("suspension: 201 -> denied by check in {took:?}");
    assert!(took < ENFORCED_WITHIN, "denied {took:?} after the 201");
    assert!(follower.next_update().contains("(was 1), 1 suspensions"));
    assert!(allowed(&check(&config, "bob")), "only alice");

    // The lift arrives the same way.
    let lifted = lift(&s, &id);
    let took = until_check(&config, "alice", lifted, allowed);
    eprintln!("lift: 200 -> allowed by check in {took:?}");
    assert!(took < ENFORCED_WITHIN, "allowed {took:?} after the lift");
    assert!(follower.next_update().contains("0 suspensions"));

    // The server dies under the waiting follower and comes back on the same port: the
    // follower reconnects and installs the next change.
    s.server.kill9();
    s.server.start_again_on_the_same_port();
    suspend(&s, "t-bob");
    let update = follower.next_update();
    assert!(update.contains("1 suspensions"), "{update}");
    assert!(suspended(&check(&config, "bob")));
    assert!(allowed(&check(&config, "alice")));

    // SIGTERM ends it cleanly; it said why it waited while the server was away.
    let (code, stderr) = follower.terminate();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("asking again in"), "{stderr}");
    assert!(stderr.contains("stopped following"), "{stderr}");
}

both_backends!(follow_is_refused_for_exports_and_ends_on_a_refused_credential);
fn follow_is_refused_for_exports_and_ends_on_a_refused_credential() {
    let s = Site::start(
        tempfile::tempdir().unwrap(),
        SITE,
        TestIssuer::new(ATLAS_ISS),
    );
    let out = s.path("ban.txt");
    let export = s.pull(&s.admin, &out, &["--format", "text", "--follow"]);
    assert_eq!(export.code, 2, "{export:#?}");
    assert!(
        export
            .stderr
            .contains("--follow applies to --format json only"),
        "{export:#?}"
    );

    let stranger = s.path("stranger.token");
    std::fs::write(&stranger, "tlk_not-a-credential").unwrap();
    tokenledger_e2e::daemon::set_mode(&stranger, 0o600);
    let refused = s.pull(
        &stranger.display().to_string(),
        &s.path("b.json"),
        &["--follow"],
    );
    assert_eq!(refused.code, 4, "{refused:#?}");
}
