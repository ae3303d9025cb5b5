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
use std::time::Duration;

use jsonwebtoken::Algorithm;
use tokenledger_e2e::arc::{Arex, ArexDirs, Submission};
use tokenledger_e2e::daemon::{self, read_or_empty, set_mode};
use tokenledger_e2e::https_issuer::HttpsIssuer;
use tokenledger_e2e::issuer::TestIssuer;
use tokenledger_e2e::pki::TestCa;
use tokenledger_e2e::site::Site;
use tokenledger_e2e::{cli_binary, netns};

const SITE: &str = "CERN-PROD";
/// What the tests need beyond the Rust build: A-REX itself, `openssl` (the test CA), `curl`
/// (the user's client), `iproute2` (the namespace's loopback).
const PACKAGES: [&str; 4] = ["nordugrid-arc-arex", "openssl", "curl", "iproute2"];
/// The queue of every configuration.
const QUEUE: &str = "grid";
/// The authgroup the ledger fills.
const BANNED: &str = "tokenledger-banned";
/// Where the issuer's JWKS is served (Keycloak's path).
const JWKS_PATH: &str = "/realms/atlas/protocol/openid-connect/certs";

/// Bound on one test inside its namespace (about 10 s on a 2-core machine).
const TEST_LIMIT: Duration = Duration::from_secs(240);

/// Outside: installs the packages and runs the test `name` in its namespaces (returns
/// `false`). Inside: starts the watchdog and returns `true`.
fn enter(name: &str) -> bool {
    if !netns::enter(name, &PACKAGES) {
        return false;
    }
    daemon::watchdog(TEST_LIMIT);
    true
}

/// A site with a ledger: the test CA in `/etc/grid-security`, the VO's https issuer, the
/// ledger with alice's and bob's tokens ingested, and the site's credentials.
struct World {
    /// The ledger and the site; its issuer's `iss` has a trailing slash as IAM's have: ARC's
    /// `%D` is then `<iss>/<sub>` with a double slash.
    site: Site,
    ca: TestCa,
    https: HttpsIssuer,
    alice: String,
    bob: String,
    /// An ES256 token of the same issuer (not in the ledger: A-REX refuses it first).
    carol_es256: String,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ca = TestCa::new(&dir.path().join("ca"));
        ca.install_grid_security(&ca.issue("hostcert"));
        let https = HttpsIssuer::start(&ca.issue("idp"));
        let issuer = TestIssuer::new(&format!("{}/realms/atlas/", https.base));
        // Its RSA, EC and EdDSA keys: A-REX 6 uses the RSA key and cannot read the others.
        https.publish_keys(&issuer.iss, JWKS_PATH, issuer.jwks());

        let site = Site::start(dir, SITE, issuer);
        daemon::register(site.server.pid());
        let rs256 = |jti: &str, sub: &str| {
            let claims = site.issuer.claims(jti, sub);
            site.ingest_token(site.issuer.mint(Algorithm::RS256, &claims))
        };
        let (alice, bob) = (rs256("t-alice", "alice"), rs256("t-bob", "bob"));
        let carol_es256 = site
            .issuer
            .mint(Algorithm::ES256, &site.issuer.claims("t-carol", "carol"));
        World {
            site,
            ca,
            https,
            alice,
            bob,
            carol_es256,
        }
    }

    /// The VO issuer's `iss`.
    fn iss(&self) -> &str {
        &self.site.issuer.iss
    }

    fn path(&self, name: &str) -> PathBuf {
        self.site.path(name)
    }

    /// The site admin turns alice's jti into the site's pseudonym and suspends it for
    /// compute; the suspension's id.
    fn suspend_alice(&self) -> String {
        self.site.suspend_person("t-alice", "compute").id
    }

    /// `tokenledger blocklist pull` of the signed blocklist (site-reader), for the plugin.
    fn pull_blocklist(&self) -> PathBuf {
        let out = self.path("CERN-PROD.json");
        self.site.pull_ok(&self.site.reader, &out, &[]);
        out
    }

    /// `tokenledger blocklist pull --format arc` (site-admin), for `file=`.
    fn pull_arc_export(&self) -> PathBuf {
        let out = self.path("arc-banned.txt");
        self.site
            .pull_ok(&self.site.admin, &out, &["--format", "arc"]);
        out
    }

    /// The plugin's check.toml and the site key (root's, 0600: ARC runs plugins as root).
    fn check_config(&self, blocklist: &Path) -> PathBuf {
        self.site
            .write_check_config("check.toml", "deny", &[self.iss()], blocklist)
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
        format!("{}/{sub}", self.iss())
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
        iss = w.iss(),
        arex = dirs.arex_blocks(4),
    )
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

/// Whether one of `groups` (from [`groups_logged`]) is the banned authgroup.
fn in_banned_group(groups: &[String]) -> bool {
    groups
        .iter()
        .any(|l| l.ends_with(&format!("group {BANNED}")))
}

/// The request logged after `from` put its user in the VO's group and not in the banned one.
fn assert_not_banned(arex: &Arex, from: usize, what: &str) {
    let groups = groups_logged(arex, from);
    assert!(
        groups.iter().any(|l| l.ends_with("group atlas")) && !in_banned_group(&groups),
        "{what}: {groups:#?}"
    );
}

/// Suspended alice's submission is refused, `matcher` (the plugin, the file) having put her
/// in the banned group; bob's is accepted, outside it.
fn assert_alice_banned_and_bob_served(w: &World, arex: &Arex, matcher: &str) {
    let before = arex.log().len();
    assert_refused(
        &w.submit(arex, "alice"),
        arex,
        &format!("suspended alice, {matcher} mode"),
    );
    let groups = groups_logged(arex, before);
    eprintln!("A-REX's log of the refused request: {groups:#?}");
    assert!(
        in_banned_group(&groups),
        "the {matcher} matched alice: {groups:#?}\n{}",
        arex.log_tail(80)
    );
    let bob = format!("bob, {matcher} mode");
    let before = arex.log().len();
    assert_accepted(&w.submit(arex, "bob"), arex, &bob);
    assert_not_banned(arex, before, &bob);
}

/// Lifts alice's `suspension`: enforced until `pull` brings the lift, then alice is back in,
/// with no restart, and bob still is.
fn assert_lift_enforced_until_pulled(
    w: &World,
    arex: &Arex,
    suspension: &str,
    pull: impl FnOnce(),
) {
    w.site.lift(suspension);
    assert_refused(&w.submit(arex, "alice"), arex, "lifted but not pulled yet");
    pull();
    assert_accepted(&w.submit(arex, "alice"), arex, "alice after lift and pull");
    assert_accepted(&w.submit(arex, "bob"), arex, "bob still");
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

    assert_alice_banned_and_bob_served(&w, &arex, "plugin");

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

    assert_lift_enforced_until_pulled(&w, &arex, &suspension, || {
        w.pull_blocklist();
    });
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

    assert_alice_banned_and_bob_served(&w, &arex, "file");

    // A-REX reads the file on every request: the lift arrives with the next pull.
    assert_lift_enforced_until_pulled(&w, &arex, &suspension, || {
        w.pull_arc_export();
        assert!(
            !read_or_empty(&export).contains(&line),
            "the lift removed alice: {}",
            read_or_empty(&export)
        );
    });
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
        in_banned_group(&groups),
        "the plugin matched alice: {groups:#?}\n{}",
        arex.log_tail(80)
    );
    assert_accepted(
        &answer,
        &arex,
        "denyaccess in [arex/ws/jobs] is not enforced by A-REX 6",
    );
}
