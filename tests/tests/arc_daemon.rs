//! Against the real ARC CE: Debian's A-REX (`nordugrid-arc-arex`, ARC 6) started with its own
//! start script on a private `arc.conf`, a token issuer served over https, the real ledger and
//! CLI. A suspended user's token-authenticated REST job submission is refused and another
//! user's accepted; a lift plus a pull lets the user back in; with the `tokenledger check`
//! plugin and with the `file=` export. And the recipe this replaces: `denyaccess` in
//! `[arex/ws/jobs]` is never checked, the suspended user gets a job.
//!
//! Each test installs the Debian packages it needs when missing, then runs in private network
//! and mount namespaces (`netns`): everything listens on 127.0.0.1 there, and the test CA is
//! mounted over `/etc/grid-security` for that namespace only. A daemon that cannot start fails
//! the test; nothing is skipped.
//!
//! What A-REX 6.17 answers: a submission (`POST /arex/rest/1.0/jobs?action=new`) is `201` at
//! the HTTP level whatever becomes of the job; each job has its own `status-code` in the
//! body: `201` `Created` with an id, or `500` with a reason. A queue's `denyaccess` gives
//! `500` and "Requested queue grid does not match any of available queues" (sic: A-REX swaps
//! its two queue messages), and no job is created.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokenledger_e2e::arc::{self, Arex, ArexDirs, HttpsIssuer, Submission, read_or_empty};
use tokenledger_e2e::issuer::TestIssuer;
use tokenledger_e2e::pki::{TestCa, set_mode};
use tokenledger_e2e::{TestServer, cli_binary, netns, run_cli};

const SITE: &str = "CERN-PROD";
/// What the tests need beyond the Rust build: A-REX itself, `openssl` (the test CA), `curl`
/// (the user's client), `iproute2` (the namespace's loopback).
const PACKAGES: [&str; 4] = ["nordugrid-arc-arex", "openssl", "curl", "iproute2"];
/// The queue of every configuration.
const QUEUE: &str = "grid";
/// The authgroup the ledger fills.
const BANNED: &str = "tokenledger-banned";

/// Bound on one test inside its namespace (about 10 s on a 2-core machine).
const TEST_LIMIT: Duration = Duration::from_secs(240);

/// Outside: installs the packages and runs the test `name` in its namespaces (returns
/// `false`). Inside: starts the watchdog and returns `true`.
fn enter(name: &str) -> bool {
    netns::require_packages(&PACKAGES);
    if !netns::inside(name) {
        return false;
    }
    arc::watchdog(TEST_LIMIT);
    true
}

/// A site with a ledger: the test CA in `/etc/grid-security`, the VO's https issuer, the
/// ledger with alice's and bob's tokens ingested, and the site's credentials.
struct World {
    dir: tempfile::TempDir,
    ca: TestCa,
    https: HttpsIssuer,
    /// The issuer, with a trailing slash as IAM's have: ARC's `%D` is then `<iss>/<sub>` with
    /// a double slash.
    iss: String,
    server: TestServer,
    log_key: String,
    /// Token files of a site-admin (exports) and a site-reader (the blocklist).
    admin: String,
    reader: String,
    alice: String,
    bob: String,
    /// An ES256 token of the same issuer (not in the ledger: A-REX refuses it first).
    carol_es256: String,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ca = TestCa::new(&dir.path().join("ca"));
        let host = ca.issue("hostcert");
        ca.install_grid_security(&host);
        let https = HttpsIssuer::start(&ca.issue("idp"));
        let iss = format!("{}/realms/atlas/", https.base);
        let issuer = TestIssuer::new(&iss);
        let jwks_uri = format!("{}/realms/atlas/protocol/openid-connect/certs", https.base);
        https.serve(
            "/realms/atlas/.well-known/openid-configuration",
            json!({"issuer": iss, "jwks_uri": jwks_uri}).to_string(),
        );
        // Its RSA, EC and EdDSA keys: A-REX 6 uses the RSA key and cannot read the others.
        https.serve("/realms/atlas/protocol/openid-connect/certs", issuer.jwks());

        let jwks = dir.path().join("atlas-jwks.json");
        issuer.write_jwks(&jwks);
        let config = format!(
            "{}\n[[site]]\nname = \"{SITE}\"\nvos = [\"atlas\"]\n",
            issuer.config_block(
                &format!("jwks_file = \"{}\"", jwks.display()),
                "[{ rule = \"fixed\", vo = \"atlas\" }]"
            )
        );
        let server = TestServer::start_with_config(&dir.path().join("ledger"), &config);
        arc::register_daemon(server.pid());
        let log_key = server.log_key();
        let ingest = server.create_credential("issuer", Some("atlas"));
        let mint = |jti: &str, sub: &str| {
            let token = issuer.mint(Algorithm::RS256, &issuer.claims(jti, sub));
            let reply =
                server
                    .http()
                    .post_json("/v1/issuances", Some(&ingest), &json!({ "token": token }));
            assert_eq!(reply.status, 201, "ingest {jti}: {reply:?}");
            token
        };
        let (alice, bob) = (mint("t-alice", "alice"), mint("t-bob", "bob"));
        let carol_es256 = issuer.mint(Algorithm::ES256, &issuer.claims("t-carol", "carol"));
        let mut world = World {
            dir,
            ca,
            https,
            iss,
            server,
            log_key,
            admin: String::new(),
            reader: String::new(),
            alice,
            bob,
            carol_es256,
        };
        world.admin = world.credential_file("site-admin");
        world.reader = world.credential_file("site-reader");
        world
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn credential_file(&self, role: &str) -> String {
        let secret = self
            .server
            .credential(&["--role", role, "--site", SITE])
            .secret;
        let path = self.path(&format!("{role}.token"));
        std::fs::write(&path, secret).expect("writing a credential");
        set_mode(&path, 0o600);
        path.display().to_string()
    }

    /// Runs the CLI against the ledger with the credential in `token_file`; panics unless it
    /// exits 0.
    fn cli(&self, token_file: &str, args: &[&str]) -> Output {
        let mut all = vec!["--server", self.server.url(), "--token-file", token_file];
        all.extend_from_slice(args);
        let out = run_cli(&all);
        assert!(
            out.status.success(),
            "tokenledger {args:?}: {out:?}\n{}",
            self.server.log_tail()
        );
        out
    }

    /// The site admin turns alice's jti into the site's pseudonym and suspends it for
    /// compute; the suspension's id.
    fn suspend_alice(&self) -> String {
        let found = self.cli(
            &self.admin,
            &["site", "pseudonym", "t-alice", "--site", SITE, "--json"],
        );
        let pseudonym = json_of(&found)["pseudonym"]
            .as_str()
            .expect("a pseudonym")
            .to_string();
        let suspended = self.cli(
            &self.admin,
            &[
                "site",
                "suspend",
                "--site",
                SITE,
                "--pseudonym",
                &pseudonym,
                "--scope",
                "compute",
                "--reason",
                "INC-7 cryptomining",
                "--reason-code",
                "misuse",
                "--json",
            ],
        );
        json_of(&suspended)["id"]
            .as_str()
            .expect("a suspension id")
            .to_string()
    }

    fn lift(&self, suspension: &str) {
        self.cli(
            &self.admin,
            &[
                "site", "lift", suspension, "--site", SITE, "--reason", "cleared",
            ],
        );
    }

    /// `tokenledger blocklist pull` of the signed blocklist (site-reader), for the plugin.
    fn pull_blocklist(&self) -> PathBuf {
        let out = self.path("CERN-PROD.json");
        self.pull(&self.reader, &out, &[]);
        out
    }

    /// `tokenledger blocklist pull --format arc` (site-admin), for `file=`.
    fn pull_arc_export(&self) -> PathBuf {
        let out = self.path("arc-banned.txt");
        self.pull(&self.admin, &out, &["--format", "arc"]);
        out
    }

    fn pull(&self, token_file: &str, out: &Path, extra: &[&str]) {
        let out = out.display().to_string();
        let mut args = vec![
            "blocklist",
            "pull",
            "--site",
            SITE,
            "--log-key",
            &self.log_key,
            "--out",
            &out,
        ];
        args.extend_from_slice(extra);
        self.cli(token_file, &args);
    }

    /// The plugin's check.toml and the site key (root's, 0600: ARC runs plugins as root).
    fn check_config(&self, blocklist: &Path) -> PathBuf {
        let key = self.cli(&self.admin, &["site", "key", "--site", SITE]);
        let key_path = self.path("CERN-PROD.key");
        std::fs::write(&key_path, String::from_utf8_lossy(&key.stdout).trim())
            .expect("writing the site key");
        set_mode(&key_path, 0o600);
        let path = self.path("check.toml");
        std::fs::write(
            &path,
            format!(
                "on_stale = \"deny\"\nscope = \"compute\"\nissuers = [\"{}\"]\n\n\
                 [[ledger]]\nsite = \"{SITE}\"\nblocklist = \"{}\"\nlog_key = \"{}\"\n\
                 site_key_file = \"{}\"\n",
                self.iss,
                blocklist.display(),
                self.log_key,
                key_path.display()
            ),
        )
        .expect("writing check.toml");
        path
    }

    /// The `plugin =` rule of the banned authgroup.
    fn plugin_rule(&self, check_toml: &Path) -> String {
        format!(
            "plugin = 10 {} check --arc %D --config {}",
            cli_binary().display(),
            check_toml.display()
        )
    }

    /// ARC's `%D` for a token user of the issuer.
    fn d(&self, sub: &str) -> String {
        format!("{}/{sub}", self.iss)
    }

    fn submit(&self, arex: &Arex, who: &str) -> Submission {
        let token = match who {
            "alice" => &self.alice,
            "bob" => &self.bob,
            "carol" => &self.carol_es256,
            _ => panic!("no token for {who}"),
        };
        let answer = arex.submit(token, &self.ca.cert);
        eprintln!("A-REX answered {who}'s submission: {answer:?}");
        answer
    }
}

/// Where the site puts the deny.
#[derive(Clone, Copy)]
enum Recipe {
    /// In every `[queue:NAME]`, before the queue's `allowaccess`: enforced.
    PerQueue,
    /// In `[arex/ws/jobs]` only, as the old site guide had it: stored, never checked.
    WsJobsOnly,
}

/// The whole arc.conf: the site's part (token prerequisites, the banned authgroup with
/// `banned_rule`, the VO's group, mapping, fork LRMS, the infosys blocks, one queue), plus
/// `dirs`' lines that keep A-REX's files under the test directory. `extra` goes before the
/// groups (the environment probe).
fn arc_conf(w: &World, dirs: &ArexDirs, banned_rule: &str, recipe: Recipe, extra: &str) -> String {
    let (jobs_acl, queue_acl) = match recipe {
        Recipe::PerQueue => (
            String::new(),
            format!("denyaccess = {BANNED}\nallowaccess = atlas\n"),
        ),
        Recipe::WsJobsOnly => (
            format!("denyaccess = {BANNED}\nallowaccess = atlas\n"),
            "allowaccess = atlas\n".to_string(),
        ),
    };
    format!(
        "[common]\n\n\
         [authtokens]\n\n\
         {extra}\
         [authgroup:{BANNED}]\n{banned_rule}\n\n\
         [authgroup:atlas]\nauthtokens = * {iss} * * *\n\n\
         [mapping]\nmap_to_user = atlas nobody:nogroup\n\n\
         [lrms]\nlrms = fork\n\n\
         {arex}\n\
         [arex/ws/jobs]\n{jobs_acl}\n\
         [infosys]\n\n\
         [infosys/glue2]\n\n\
         [queue:{QUEUE}]\n{queue_acl}",
        iss = w.iss,
        arex = dirs.arex_blocks(4),
    )
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"))
}

/// A-REX refused the job: HTTP 201 for the request, `500` for the job, a queue refusal as
/// the reason, no job id.
fn assert_refused(answer: &Submission, arex: &Arex, what: &str) {
    assert!(
        answer.http == 201
            && answer.job_status == "500"
            && answer.id.is_none()
            && (answer
                .reason
                .ends_with("does not match any of available queues")
                || answer.reason.ends_with("is not allowed for this user")),
        "{what}: expected the queue's refusal, got {answer:?}\n{}",
        arex.log_tail(80)
    );
}

/// A-REX created the job: HTTP 201, job `201 Created` with an id.
fn assert_accepted(answer: &Submission, arex: &Arex, what: &str) {
    assert!(
        answer.http == 201
            && answer.job_status == "201"
            && answer.reason == "Created"
            && answer.id.as_deref().is_some_and(|id| !id.is_empty()),
        "{what}: expected a created job, got {answer:?}\n{}",
        arex.log_tail(80)
    );
}

/// The lines of A-REX's log after `from` (a length of an earlier [`Arex::log`]) that say
/// which authgroups the request's user was put in.
fn groups_logged(arex: &Arex, from: usize) -> Vec<String> {
    arex.log()[from..]
        .lines()
        .filter(|l| l.contains("Assigned to authorization group"))
        .map(str::to_string)
        .collect()
}

/// The request logged after `from` put its user in the VO's group and not in the banned one.
fn assert_not_banned(arex: &Arex, from: usize, what: &str) {
    let groups = groups_logged(arex, from);
    assert!(
        groups.iter().any(|l| l.ends_with("group atlas"))
            && !groups
                .iter()
                .any(|l| l.ends_with(&format!("group {BANNED}"))),
        "{what}: {groups:#?}"
    );
}

#[test]
fn plugin_mode_refuses_a_suspended_user_until_lifted_and_pulled() {
    if !enter("plugin_mode_refuses_a_suspended_user_until_lifted_and_pulled") {
        return;
    }
    let w = World::new();
    let suspension = w.suspend_alice();
    let blocklist = w.pull_blocklist();
    let check = w.check_config(&blocklist);

    // A second plugin that only records what ARC gives a plugin (arguments, user, stdin,
    // environment) and never matches.
    let probe_log = w.path("plugin-env.log");
    let probe = w.path("env-probe");
    std::fs::write(
        &probe,
        format!(
            "#!/bin/sh\n{{ echo \"argv1=$1\"; echo \"uid=$(id -u)\"; \
             echo \"stdin=$(readlink /proc/self/fd/0)\"; env; echo --; }} >> {}\nexit 1\n",
            probe_log.display()
        ),
    )
    .expect("writing the probe");
    set_mode(&probe, 0o755);
    let extra = format!(
        "[authgroup:env-probe]\nplugin = 5 {} %D\n\n",
        probe.display()
    );

    let dirs = ArexDirs::new(&w.path("arex-plugin"));
    let conf = arc_conf(&w, &dirs, &w.plugin_rule(&check), Recipe::PerQueue, &extra);
    let arex = Arex::start(&dirs, &conf);

    let before = arex.log().len();
    let refused = w.submit(&arex, "alice");
    assert_refused(&refused, &arex, "suspended alice, plugin mode");
    let groups = groups_logged(&arex, before);
    eprintln!("A-REX's log of the refused request: {groups:#?}");
    assert!(
        groups
            .iter()
            .any(|l| l.ends_with(&format!("group {BANNED}"))),
        "the plugin matched alice: {groups:#?}\n{}",
        arex.log_tail(80)
    );
    let before = arex.log().len();
    assert_accepted(&w.submit(&arex, "bob"), &arex, "bob, plugin mode");
    assert_not_banned(&arex, before, "bob, plugin mode");

    // ARC's keys came from the issuer over https, through the test CA.
    let asked = w.https.asked();
    assert!(
        asked.contains(&"/realms/atlas/.well-known/openid-configuration".to_string())
            && asked.contains(&"/realms/atlas/protocol/openid-connect/certs".to_string()),
        "A-REX fetched the issuer's keys: {asked:?}"
    );

    // A-REX 6 reads only RSA keys from an issuer's JWKS: an ES256 token is refused before any
    // authgroup, the request with 403.
    let before = arex.log().len();
    let es256 = w.submit(&arex, "carol");
    assert!(
        es256.http == 403
            && es256
                .status_line
                .ends_with("403 User can't be assigned configuration")
            && es256.id.is_none(),
        "an ES256 token: {es256:?}\n{}",
        arex.log_tail(60)
    );
    assert!(
        arex.log()[before..].contains("JWSE::ExtractPublicKey: key parsing error"),
        "{}",
        arex.log_tail(60)
    );

    // What a plugin gets from A-REX 6: `%D` = <iss>/<sub>, root, and no BEARER_TOKEN_*.
    let seen = read_or_empty(&probe_log);
    assert!(
        seen.lines().any(|l| l == format!("argv1={}", w.d("alice"))),
        "%D of alice is {}: {seen}",
        w.d("alice")
    );
    assert!(
        seen.lines().any(|l| l == "uid=0"),
        "plugins run as root: {seen}"
    );
    let bearer: Vec<&str> = seen
        .lines()
        .filter(|l| l.starts_with("BEARER_TOKEN"))
        .collect();
    assert!(
        bearer.is_empty(),
        "A-REX 6 sets no BEARER_TOKEN_* for plugins, yet: {bearer:?}"
    );
    let stdin: Vec<&str> = seen.lines().filter(|l| l.starts_with("stdin=")).collect();
    eprintln!("a plugin's stdin under A-REX: {stdin:?}");

    // Lifted: enforced until the next pull, then alice is back in, with no restart.
    w.lift(&suspension);
    assert_refused(
        &w.submit(&arex, "alice"),
        &arex,
        "lifted but not pulled yet",
    );
    w.pull_blocklist();
    assert_accepted(
        &w.submit(&arex, "alice"),
        &arex,
        "alice after lift and pull",
    );
    assert_accepted(&w.submit(&arex, "bob"), &arex, "bob still");
}

#[test]
fn file_mode_refuses_a_suspended_user_until_lifted_and_pulled() {
    if !enter("file_mode_refuses_a_suspended_user_until_lifted_and_pulled") {
        return;
    }
    let w = World::new();
    let suspension = w.suspend_alice();
    let export = w.pull_arc_export();
    let line = format!("\"{}\"", w.d("alice"));
    assert!(
        read_or_empty(&export).lines().any(|l| l == line),
        "{line} in {}",
        read_or_empty(&export)
    );

    let dirs = ArexDirs::new(&w.path("arex-file"));
    let rule = format!("file = {}", export.display());
    let arex = Arex::start(&dirs, &arc_conf(&w, &dirs, &rule, Recipe::PerQueue, ""));

    let before = arex.log().len();
    assert_refused(
        &w.submit(&arex, "alice"),
        &arex,
        "suspended alice, file mode",
    );
    let groups = groups_logged(&arex, before);
    eprintln!("A-REX's log of the refused request: {groups:#?}");
    assert!(
        groups
            .iter()
            .any(|l| l.ends_with(&format!("group {BANNED}"))),
        "the file matched alice: {groups:#?}"
    );
    let before = arex.log().len();
    assert_accepted(&w.submit(&arex, "bob"), &arex, "bob, file mode");
    assert_not_banned(&arex, before, "bob, file mode");

    // A-REX reads the file on every request: the lift arrives with the next pull.
    w.lift(&suspension);
    assert_refused(
        &w.submit(&arex, "alice"),
        &arex,
        "lifted but not pulled yet",
    );
    w.pull_arc_export();
    assert!(
        !read_or_empty(&export).contains(&line),
        "the lift removed alice: {}",
        read_or_empty(&export)
    );
    assert_accepted(
        &w.submit(&arex, "alice"),
        &arex,
        "alice after lift and pull",
    );
    assert_accepted(&w.submit(&arex, "bob"), &arex, "bob still");
}

#[test]
fn a_deny_in_arex_ws_jobs_alone_is_never_checked() {
    if !enter("a_deny_in_arex_ws_jobs_alone_is_never_checked") {
        return;
    }
    let w = World::new();
    w.suspend_alice();
    let blocklist = w.pull_blocklist();
    let check = w.check_config(&blocklist);
    let dirs = ArexDirs::new(&w.path("arex-wrong"));
    let conf = arc_conf(&w, &dirs, &w.plugin_rule(&check), Recipe::WsJobsOnly, "");
    let arex = Arex::start(&dirs, &conf);

    // The plugin says "suspended" (it matches), A-REX puts alice in the group, and creates
    // her job all the same.
    let before = arex.log().len();
    let answer = w.submit(&arex, "alice");
    let groups = groups_logged(&arex, before);
    assert!(
        groups
            .iter()
            .any(|l| l.ends_with(&format!("group {BANNED}"))),
        "the plugin matched alice: {groups:#?}\n{}",
        arex.log_tail(80)
    );
    assert_accepted(
        &answer,
        &arex,
        "denyaccess in [arex/ws/jobs] is not enforced by A-REX 6",
    );
}
