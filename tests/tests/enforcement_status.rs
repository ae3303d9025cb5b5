//! Enforcement status end to end (issue 22): the real server, the real `tokenledger` CLI. Two
//! sites serve one VO; a VO-wide suspension; site A pulls its blocklist, site B does not:
//! `GET /v1/vos/{vo}/suspensions/{id}/enforcement` and `tokenledger suspension status` say A
//! fetched it (when, at which sequence) and B has not, and never fetched at all; then B pulls
//! and the answer changes. A 304 or an export is a last fetch, not a fetch of the
//! suspension. A site's admin cannot read the VO's view and sees only its own site in the site
//! variant; a lift is reported; `/metrics` has each site's last fetch.
//!
//! Fetches are recorded in the background (never slowing the blocklist's answer), so the
//! test asks until the record shows, bounded by [`RECORDED_WITHIN`] (a failure bound, not a
//! measurement).
//!
//! Every CLI run starts from an empty environment, so nothing of the machine leaks in.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokenledger_e2e::both_backends;
use tokenledger_e2e::daemon::set_mode;
use tokenledger_e2e::issuer::{TestIssuer, now_secs};
use tokenledger_e2e::{CliRun, TestServer, run_cli_with};

const ATLAS_ISS: &str = "https://atlas-auth.example/";
const VO: &str = "atlas";
const SITE_A: &str = "SITE-A";
const SITE_B: &str = "SITE-B";
/// Bound on waiting for a fetch to be recorded (a stuck record fails the test).
const RECORDED_WITHIN: Duration = Duration::from_secs(30);

struct Ledger {
    server: TestServer,
    log_key: String,
    dir: tempfile::TempDir,
}

impl Ledger {
    fn start() -> Ledger {
        let dir = tempfile::tempdir().unwrap();
        let issuer = TestIssuer::new(ATLAS_ISS);
        let jwks = dir.path().join("atlas-jwks.json");
        issuer.write_jwks(&jwks);
        let config = format!(
            "{}\n[[site]]\nname = \"{SITE_A}\"\nvos = [\"{VO}\"]\n\n\
             [[site]]\nname = \"{SITE_B}\"\nvos = [\"{VO}\"]\n",
            issuer.config_block(
                &format!("jwks_file = \"{}\"", jwks.display()),
                &format!("[{{ rule = \"fixed\", vo = \"{VO}\" }}]")
            )
        );
        let server = TestServer::start_with_config(&dir.path().join("ledger"), &config);
        let log_key = server.log_key();
        let issuer_secret = server.create_credential("issuer", Some(VO));
        let token = issuer.mint(
            jsonwebtoken::Algorithm::ES256,
            &issuer.claims("es-login", "alice"),
        );
        let reply = server.http().post_json(
            "/v1/issuances",
            Some(&issuer_secret),
            &json!({ "token": token }),
        );
        assert_eq!(reply.status, 201, "{reply:?}");
        Ledger {
            server,
            log_key,
            dir,
        }
    }

    /// A credential of `args` in a token file (0600): its secret and the file's path.
    fn credential(&self, name: &str, args: &[&str]) -> (String, String) {
        let secret = self.server.credential(args).secret;
        let path = self.dir.path().join(format!("{name}.token"));
        std::fs::write(&path, &secret).unwrap();
        set_mode(&path, 0o600);
        (secret, path.display().to_string())
    }

    fn cli(&self, token_file: &str, args: &[&str]) -> CliRun {
        let mut all = vec!["--server", self.server.url(), "--token-file", token_file];
        all.extend_from_slice(args);
        run_cli_with(&all, &[], None)
    }

    fn cli_ok(&self, token_file: &str, args: &[&str]) -> CliRun {
        let run = self.cli(token_file, args);
        assert_eq!(
            run.code,
            0,
            "tokenledger {args:?}: {run:#?}\n{}",
            self.server.log_tail()
        );
        run
    }

    /// `blocklist pull` of `site` with the pinned log key; the pulled document's sequence.
    fn pull(&self, token_file: &str, site: &str) -> u64 {
        let out = self.dir.path().join(format!("{site}.blocklist.json"));
        let out_arg = out.display().to_string();
        self.cli_ok(
            token_file,
            &[
                "blocklist",
                "pull",
                "--site",
                site,
                "--log-key",
                &self.log_key,
                "--out",
                &out_arg,
            ],
        );
        sequence_of(&out)
    }

    fn get(&self, path: &str, secret: &str) -> Value {
        let reply = self.server.http().get(path, Some(secret));
        assert_eq!(reply.status, 200, "GET {path}: {reply:?}");
        reply.json()
    }

    /// Asks `path` until `done` holds of the answer's row of `site`; the whole answer.
    fn until(&self, path: &str, secret: &str, site: &str, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let answer = self.get(path, secret);
            if done(row(&answer, site)) {
                return answer;
            }
            assert!(
                started.elapsed() < RECORDED_WITHIN,
                "the fetch of {site} was never recorded: {answer:#}\n{}",
                self.server.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn sequence_of(path: &Path) -> u64 {
    let text = std::fs::read_to_string(path).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["document"]["sequence"].as_u64().expect("a sequence")
}

fn row<'a>(answer: &'a Value, site: &str) -> &'a Value {
    answer["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["site"] == site)
        .unwrap_or_else(|| panic!("no row of {site}: {answer:#}"))
}

fn sites(answer: &Value) -> Vec<&str> {
    answer["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["site"].as_str().unwrap())
        .collect()
}

fn fetched(r: &Value) -> bool {
    r["status"] == "fetched"
}

/// The table line of `site` in `suspension status` output.
fn line<'a>(text: &'a str, site: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(site))
        .unwrap_or_else(|| panic!("no line of {site}: {text}"))
}

both_backends!(the_vo_sees_which_sites_fetched_a_suspension);
fn the_vo_sees_which_sites_fetched_a_suspension() {
    let ledger = Ledger::start();
    let (officer, officer_file) =
        ledger.credential("officer", &["--role", "vo-security", "--vo", VO]);
    let (_, reader_a) = ledger.credential("reader-a", &["--role", "site-reader", "--site", SITE_A]);
    let (admin_a, admin_a_file) =
        ledger.credential("admin-a", &["--role", "site-admin", "--site", SITE_A]);

    let suspended = ledger.cli_ok(
        &officer_file,
        &[
            "vo", "suspend", "--vo", VO, "--jti", "es-login", "--reason", "INC-9", "--json",
        ],
    );
    let id = suspended.json()["id"].as_str().unwrap().to_string();
    let vo_path = format!("/v1/vos/{VO}/suspensions/{id}/enforcement");

    // Nobody fetched anything yet.
    let before = ledger.get(&vo_path, &officer);
    assert_eq!(before["suspension_id"], id.as_str());
    assert_eq!(before["vo"], VO);
    assert_eq!(before["site"], Value::Null);
    assert_eq!(before["active"], true);
    assert_eq!(sites(&before), [SITE_A, SITE_B]);
    for site in [SITE_A, SITE_B] {
        let r = row(&before, site);
        assert_eq!(r["status"], "not_fetched", "{before:#}");
        assert_eq!(r["fetched_at"], Value::Null);
        assert_eq!(r["last_fetch_at"], Value::Null);
    }

    // Site A pulls; site B does not.
    let pulled_at = now_secs();
    let sequence_a = ledger.pull(&reader_a, SITE_A);
    let answer = ledger.until(&vo_path, &officer, SITE_A, fetched);
    let a = row(&answer, SITE_A);
    assert_eq!(a["sequence"], sequence_a, "{answer:#}");
    assert_eq!(a["first_sequence"], sequence_a, "{answer:#}");
    let fetched_at = a["fetched_at"].as_i64().unwrap();
    assert!(
        (pulled_at - 1..=now_secs() + 1).contains(&fetched_at),
        "{fetched_at} vs {pulled_at}"
    );
    assert_eq!(a["last_fetch_at"], fetched_at);
    let b = row(&answer, SITE_B);
    assert_eq!(b["status"], "not_fetched", "{answer:#}");
    assert_eq!(b["last_fetch_at"], Value::Null, "B never fetched");

    // The CLI says the same, as a table and as JSON.
    let table = ledger.cli_ok(&officer_file, &["suspension", "status", &id, "--vo", VO]);
    assert!(
        table.stdout.starts_with(&format!(
            "suspension {id} of {VO} (every site of the VO): active\n"
        )),
        "{}",
        table.stdout
    );
    assert!(table.stdout.contains("SITE  "), "{}", table.stdout);
    let line_a = line(&table.stdout, SITE_A);
    assert!(!line_a.contains("not yet"), "{line_a}");
    assert!(line_a.contains(&format!(" {sequence_a} ")), "{line_a}");
    let line_b = line(&table.stdout, SITE_B);
    assert!(
        line_b.contains("not yet") && line_b.ends_with("never"),
        "{line_b}"
    );
    let json = ledger.cli_ok(
        &officer_file,
        &["suspension", "status", &id, "--vo", VO, "--json"],
    );
    assert_eq!(json.json(), ledger.get(&vo_path, &officer));

    // A 304 is a fetch of nothing: B's row stays `not_fetched`, with a last fetch now.
    let (reader_b_secret, reader_b) =
        ledger.credential("reader-b", &["--role", "site-reader", "--site", SITE_B]);
    let not_modified = ledger.server.http().get_with_headers(
        &format!("/v1/sites/{SITE_B}/blocklist"),
        &reader_b_secret,
        &[("If-None-Match", "*")],
    );
    assert_eq!(not_modified.status, 304, "{not_modified:?}");
    let answer = ledger.until(&vo_path, &officer, SITE_B, |r| r["last_fetch_at"].is_i64());
    assert_eq!(row(&answer, SITE_B)["status"], "not_fetched", "{answer:#}");

    // Then site B pulls, and the answer changes.
    let sequence_b = ledger.pull(&reader_b, SITE_B);
    let answer = ledger.until(&vo_path, &officer, SITE_B, fetched);
    let b = row(&answer, SITE_B);
    assert_eq!(b["sequence"], sequence_b, "{answer:#}");
    assert!(b["fetched_at"].as_i64().unwrap() >= fetched_at);
    assert!(b["last_fetch_at"].is_i64());
    assert_eq!(
        row(&answer, SITE_A)["fetched_at"],
        fetched_at,
        "the first fetch holds"
    );
    let table = ledger.cli_ok(&officer_file, &["suspension", "status", &id, "--vo", VO]);
    assert!(!table.stdout.contains("not yet"), "{}", table.stdout);

    // A site's admin: not the VO's view; the site variant, with its own row only.
    let denied = ledger.server.http().get(&vo_path, Some(&admin_a));
    denied.assert_error(403, "forbidden");
    let refused = ledger.cli(&admin_a_file, &["suspension", "status", &id, "--vo", VO]);
    assert_eq!(refused.code, 4, "{refused:#?}");
    let site_path = format!("/v1/sites/{SITE_A}/suspensions/{id}/enforcement");
    let own = ledger.get(&site_path, &admin_a);
    assert_eq!(sites(&own), [SITE_A], "{own:#}");
    assert_eq!(row(&own, SITE_A)["fetched_at"], fetched_at);
    let other = ledger.server.http().get(
        &format!("/v1/sites/{SITE_B}/suspensions/{id}/enforcement"),
        Some(&admin_a),
    );
    other.assert_error(403, "forbidden");
    let by_site = ledger.cli_ok(
        &admin_a_file,
        &["suspension", "status", &id, "--site", SITE_A],
    );
    assert!(
        line(&by_site.stdout, SITE_A).contains(&format!(" {sequence_a} ")),
        "{}",
        by_site.stdout
    );
    assert!(!by_site.stdout.contains(SITE_B), "{}", by_site.stdout);
    let unknown = ledger.server.http().get(
        &format!("/v1/sites/{SITE_A}/suspensions/su-nope/enforcement"),
        Some(&admin_a),
    );
    unknown.assert_error(404, "not_found");

    // An export is only a last fetch: it leaves out what its consumer does not enforce (and
    // names no single-token suspension), so it never shows that the site holds one. A second
    // suspension, exported by A's admin as text: A has still not fetched it; A's reader then
    // pulls the signed blocklist, and that is the fetch.
    let second = ledger.cli_ok(
        &officer_file,
        &[
            "vo", "suspend", "--vo", VO, "--jti", "es-login", "--reason", "INC-10", "--json",
        ],
    );
    let second = second.json()["id"].as_str().unwrap().to_string();
    let second_path = format!("/v1/vos/{VO}/suspensions/{second}/enforcement");
    // Every earlier fetch is in an earlier second than the export's.
    std::thread::sleep(Duration::from_millis(1100));
    let exported_at = now_secs();
    let export = ledger.server.http().get(
        &format!("/v1/sites/{SITE_A}/blocklist?format=text"),
        Some(&admin_a),
    );
    assert_eq!(export.status, 200, "{export:?}");
    let answer = ledger.until(&second_path, &officer, SITE_A, |r| {
        r["last_fetch_at"]
            .as_i64()
            .is_some_and(|at| at >= exported_at)
    });
    assert_eq!(row(&answer, SITE_A)["status"], "not_fetched", "{answer:#}");
    let pulled = ledger.pull(&reader_a, SITE_A);
    let answer = ledger.until(&second_path, &officer, SITE_A, fetched);
    assert_eq!(row(&answer, SITE_A)["sequence"], pulled, "{answer:#}");
    assert_eq!(row(&answer, SITE_B)["status"], "not_fetched", "{answer:#}");

    // `/metrics`: each site's last fetch.
    let metrics = ledger.server.http().get("/metrics", None);
    for site in [SITE_A, SITE_B] {
        assert!(
            metrics.body.contains(&format!(
                "tokenledger_blocklist_last_fetch_timestamp_seconds{{site=\"{site}\"}} "
            )),
            "{}",
            metrics.body
        );
    }

    // A lift is reported; what the sites fetched stays.
    ledger.cli_ok(
        &officer_file,
        &["vo", "lift", &id, "--vo", VO, "--reason", "cleared"],
    );
    let lifted = ledger.get(&vo_path, &officer);
    assert_eq!(lifted["active"], false);
    assert!(lifted["lifted_at"].is_i64(), "{lifted:#}");
    assert_eq!(row(&lifted, SITE_A)["fetched_at"], fetched_at);
    let table = ledger.cli_ok(&officer_file, &["suspension", "status", &id, "--vo", VO]);
    assert!(table.stdout.contains("): lifted "), "{}", table.stdout);

    // A site that first fetches after a lift has not fetched the suspension. B's admin
    // exports (the ledger signs B's blocklist carrying the second suspension: its first
    // sequence at B), the second suspension is lifted, then B's reader pulls.
    let (admin_b, _) = ledger.credential("admin-b", &["--role", "site-admin", "--site", SITE_B]);
    let export = ledger.server.http().get(
        &format!("/v1/sites/{SITE_B}/blocklist?format=text"),
        Some(&admin_b),
    );
    assert_eq!(export.status, 200, "{export:?}");
    let carried = ledger.get(&second_path, &officer);
    assert!(
        row(&carried, SITE_B)["first_sequence"].is_u64(),
        "{carried:#}"
    );
    ledger.cli_ok(
        &officer_file,
        &["vo", "lift", &second, "--vo", VO, "--reason", "cleared"],
    );
    std::thread::sleep(Duration::from_millis(1100));
    let pulled_at = now_secs();
    ledger.pull(&reader_b, SITE_B);
    let answer = ledger.until(&second_path, &officer, SITE_B, |r| {
        r["last_fetch_at"]
            .as_i64()
            .is_some_and(|at| at >= pulled_at)
    });
    assert_eq!(row(&answer, SITE_B)["status"], "not_fetched", "{answer:#}");
    assert_eq!(row(&answer, SITE_A)["status"], "fetched", "{answer:#}");
}
