//! Client suspensions and not-before cut-offs end to end (issue 22): the real server, real
//! ES256 tokens, `tokenledger site|vo suspend --client/--issued-before`, `blocklist pull`,
//! and `tokenledger check` as HTCondor and ARC run it. A client suspension blocks every token
//! of that client and none of the same user's other clients; a cut-off blocks a person's (or
//! client's) tokens issued before it and passes those issued at or after it. ARC's `%D` names
//! neither client nor `iat`: there a client suspension cannot match, and a cut-off denies the
//! person. Exports say what their format cannot express. Lift, expiry, the VO-wide variants
//! and bad input (400, 404) too; a VO-wide client suspension is refused (409) while another
//! VO's tokens of the client are logged (a client tag names no VO). A reader of the older
//! blocklist format (no reader header) is refused a document holding either (406), and not
//! counted as having fetched it.
//!
//! Every CLI run starts from an empty environment, so nothing of the machine leaks in.

use std::path::{Path, PathBuf};

use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokenledger_e2e::both_backends;
use tokenledger_e2e::daemon::set_mode;
use tokenledger_e2e::issuer::{TestIssuer, now_secs};
use tokenledger_e2e::site::Site;
use tokenledger_e2e::{CliRun, TestServer, run_cli_with};

/// An issuer whose URL holds slashes, so ARC's `%D` is `https://idp.example/realms/atlas//<sub>`.
const ATLAS_ISS: &str = "https://idp.example/realms/atlas/";
const SITE: &str = "CERN-PROD";

fn start_site() -> Site {
    Site::start(
        tempfile::tempdir().unwrap(),
        SITE,
        TestIssuer::new(ATLAS_ISS),
    )
}

/// Ingests a token of [`mint`]; returns the JWT.
fn token(s: &Site, jti: &str, sub: &str, client: &str, as_azp: bool, iat: Option<i64>) -> String {
    s.ingest_token(mint(s, jti, sub, client, as_azp, iat))
}

/// A token of `sub` with id `jti`, of `client` (as `client_id`, or as `azp` when `as_azp`),
/// issued at `iat` (none: no `iat` claim), not reported to the ledger (`check` never asks it).
fn mint(s: &Site, jti: &str, sub: &str, client: &str, as_azp: bool, iat: Option<i64>) -> String {
    let mut claims = s.issuer.claims(jti, sub);
    let object = claims.as_object_mut().unwrap();
    object.remove("client_id");
    object.insert(
        if as_azp { "azp" } else { "client_id" }.into(),
        client.into(),
    );
    match iat {
        Some(iat) => {
            object.insert("iat".into(), iat.into());
            object.insert("nbf".into(), iat.into());
        }
        None => {
            object.remove("iat");
        }
    }
    s.issuer.mint(Algorithm::ES256, &claims)
}

/// The decoded payload of a JWT, as HTCondor writes it to the plugin's stdin.
fn payload(jwt: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jwt.split('.').nth(1).unwrap())
        .unwrap()
}

/// `tokenledger check --htcondor`: the payload on stdin, issuer and subject in the
/// environment (HTCondor passes no client or `iat` variable unless configured to).
fn htcondor(config: &Path, jwt: &str, sub: &str) -> CliRun {
    let config = config.display().to_string();
    run_cli_with(
        &["check", "--htcondor", "--config", &config],
        &[
            ("BEARER_TOKEN_0_ISSUER", ATLAS_ISS),
            ("BEARER_TOKEN_0_SUBJECT", sub),
        ],
        Some(&payload(jwt)),
    )
}

/// `tokenledger check --arc %D` with `%D` = `<iss>/<sub>`, nothing else (ARC 6).
fn arc(config: &Path, sub: &str) -> CliRun {
    let config = config.display().to_string();
    let d = format!("{ATLAS_ISS}/{sub}");
    run_cli_with(&["check", "--arc", &d, "--config", &config], &[], None)
}

/// The blocklist file and check.toml of the site's CE.
fn ce(s: &Site) -> (PathBuf, PathBuf) {
    let blocklist = s.path("var/CERN-PROD.json");
    std::fs::create_dir_all(blocklist.parent().unwrap()).unwrap();
    let config = s.write_check_config("check.toml", "deny", &[ATLAS_ISS], &blocklist);
    (blocklist, config)
}

/// A credential file of the VO's security officer.
fn officer_file(s: &Site) -> String {
    let path = s.path("officer.token");
    std::fs::write(
        &path,
        s.server.create_credential("vo-security", Some("atlas")),
    )
    .unwrap();
    set_mode(&path, 0o600);
    path.display().to_string()
}

/// `tokenledger <args> --json` with the credential in `token_file`; panics unless it exits 0.
fn cli_ok(s: &Site, token_file: &str, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let run = s.cli(token_file, &args);
    assert_eq!(run.code, 0, "{args:?}: {run:#?}\n{}", s.server.log_tail());
    run.json()
}

both_backends!(a_client_suspension_blocks_that_clients_tokens_and_not_the_users_other_clients);
fn a_client_suspension_blocks_that_clients_tokens_and_not_the_users_other_clients() {
    let s = start_site();
    let (blocklist, config) = ce(&s);
    let now = now_secs();
    let alice_rucio = token(&s, "t-alice-rucio", "alice", "rucio", false, Some(now));
    let alice_fts = token(&s, "t-alice-fts", "alice", "fts", true, Some(now));
    let bob_rucio = token(&s, "t-bob-rucio", "bob", "rucio", true, Some(now));

    let suspended = cli_ok(
        &s,
        &s.admin,
        &[
            "site",
            "suspend",
            "--site",
            SITE,
            "--client",
            "rucio",
            "--iss",
            ATLAS_ISS,
            "--scope",
            "compute",
            "--reason",
            "INC-9 runaway client",
            "--reason-code",
            "misuse",
        ],
    );
    assert_eq!(suspended["target"], "client", "{suspended}");
    assert_eq!(suspended["client"], "rucio");
    assert_eq!(suspended["client_iss"], ATLAS_ISS);
    assert!(
        suspended.get("pseudonym").is_none_or(Value::is_null),
        "{suspended}"
    );
    let id = suspended["id"].as_str().unwrap().to_string();
    s.pull_ok(&s.reader, &blocklist, &[]);
    let document = std::fs::read_to_string(&blocklist).unwrap();
    assert!(
        !document.contains("rucio") && !document.contains("alice"),
        "only a keyed client tag: {document}"
    );
    assert!(document.contains("\"client_tags\""), "{document}");

    // HTCondor: the client's tokens, whoever's, are refused; the same user's other client
    // (named by `azp`) is not.
    let denied = htcondor(&config, &alice_rucio, "alice");
    assert_eq!(denied.code, 2, "{denied:#?}");
    assert!(
        denied.stderr.contains("the token's client") && denied.stderr.contains(&id),
        "{denied:#?}"
    );
    assert_eq!(
        htcondor(&config, &bob_rucio, "bob").code,
        2,
        "azp counts as the client"
    );
    assert_eq!(htcondor(&config, &alice_fts, "alice").code, 1);
    // ARC's %D names no client: the plugin cannot match a client suspension (the site guide
    // says so); alice is not suspended as a person.
    assert_eq!(arc(&config, "alice").code, 1);
    // A person asking about the token, or about the client.
    let file = s.path("alice-rucio.jwt");
    std::fs::write(&file, &alice_rucio).unwrap();
    let (config_s, file_s) = (config.display().to_string(), file.display().to_string());
    let asked = run_cli_with(
        &["check", "--config", &config_s, "--token", &file_s],
        &[],
        None,
    );
    assert_eq!(
        (asked.code, asked.stdout.as_str()),
        (1, "suspended client compute misuse\n")
    );
    let by_flags = run_cli_with(
        &[
            "check", "--config", &config_s, "--iss", ATLAS_ISS, "--client", "fts", "--sub", "alice",
        ],
        &[],
        None,
    );
    assert_eq!(by_flags.stdout, "allowed\n", "{by_flags:#?}");

    // The site's listing names its own client; exports say they cannot express it.
    let listed = cli_ok(&s, &s.admin, &["site", "list", "--site", SITE]);
    assert_eq!(listed["suspensions"][0]["client"], "rucio", "{listed}");
    for format in ["htcondor", "arc"] {
        let out = s.path(&format!("export.{format}"));
        s.pull_ok(&s.admin, &out, &["--format", format]);
        let content = std::fs::read_to_string(&out).unwrap();
        assert!(
            content.contains(&format!(
                "# {id}: a client suspension, left out: enforceable only by `tokenledger check`"
            )),
            "{format}: {content}"
        );
        assert!(
            !content.contains("alice") && !content.contains("bob"),
            "{content}"
        );
    }

    // Lifted: the next pull lets the client in again.
    s.lift(&id);
    s.pull_ok(&s.reader, &blocklist, &[]);
    assert_eq!(htcondor(&config, &alice_rucio, "alice").code, 1);
}

/// The site's enforcement status of suspension `id`, asked by its admin, until `done` holds of
/// the site's row (fetches are recorded in the background); that row.
fn enforcement_until(s: &Site, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let admin = std::fs::read_to_string(&s.admin).unwrap();
    let path = format!("/v1/sites/{SITE}/suspensions/{id}/enforcement");
    let started = std::time::Instant::now();
    loop {
        let reply = s.server.http().get(&path, Some(admin.trim()));
        assert_eq!(reply.status, 200, "{reply:?}");
        let row = reply.json()["sites"][0].clone();
        if done(&row) {
            return row;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{row:#}\n{}",
            s.server.log_tail()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

both_backends!(a_reader_of_the_older_format_is_refused_a_client_suspension_and_not_counted);
fn a_reader_of_the_older_format_is_refused_a_client_suspension_and_not_counted() {
    let s = start_site();
    token(&s, "t-rucio", "alice", "rucio", false, Some(now_secs()));
    let http = s.server.http();
    let path = format!("/v1/sites/{SITE}/blocklist");
    // A node still running a tokenledger that predates client suspensions: it sends no
    // reader header. Before there is one, it is served as ever.
    let old_node = s
        .server
        .credential(&["--role", "site-reader", "--site", SITE])
        .secret;
    assert_eq!(http.get(&path, Some(&old_node)).status, 200);
    let suspended = cli_ok(
        &s,
        &s.admin,
        &[
            "site", "suspend", "--site", SITE, "--client", "rucio", "--iss", ATLAS_ISS, "--reason",
            "INC-9",
        ],
    );
    let id = suspended["id"].as_str().unwrap().to_string();

    // Now it fails loudly, and is not counted as holding the suspension.
    let refused = http.get(&path, Some(&old_node));
    refused.assert_error(406, "not_acceptable");
    assert!(
        refused.body.contains("upgrade tokenledger on this node"),
        "{refused:?}"
    );
    let format_1 =
        http.get_with_headers(&path, &old_node, &[("TokenLedger-Blocklist-Reader", "1")]);
    format_1.assert_error(406, "not_acceptable");
    http.get_with_headers(&path, &old_node, &[("TokenLedger-Blocklist-Reader", "two")])
        .assert_error(400, "bad_request");
    // Exports are not affected (and are only a last fetch): once the admin's export shows as
    // the site's last fetch, the refused requests have shown nothing.
    let admin = std::fs::read_to_string(&s.admin).unwrap();
    let export = http.get(&format!("{path}?format=text"), Some(admin.trim()));
    assert_eq!(export.status, 200, "{export:?}");
    let row = enforcement_until(&s, &id, |r| r["last_fetch_at"].is_i64());
    assert_eq!(row["status"], "not_fetched", "{row:#}");

    // Declaring format 2 (as `blocklist pull` does) gets the document, and that is a fetch.
    let read = http.get_with_headers(&path, &old_node, &[("TokenLedger-Blocklist-Reader", "2")]);
    assert_eq!(read.status, 200, "{read:?}");
    assert!(read.body.contains("\"client_tags\""), "{read:?}");
    enforcement_until(&s, &id, |r| r["status"] == "fetched");
    // A fetch says the site holds it, not that an ARC CE or an export enforces it: noted.
    let status = s.cli(&s.admin, &["suspension", "status", &id, "--site", SITE]);
    assert_eq!(status.code, 0, "{status:#?}");
    assert!(
        status
            .stdout
            .contains("note: a client suspension or a cut-off"),
        "{status:#?}"
    );
    let (blocklist, _) = ce(&s);
    s.pull_ok(&s.reader, &blocklist, &[]);
    let shown = cli_ok(
        &s,
        &s.reader,
        &["blocklist", "show", "--site", SITE, "--log-key", &s.log_key],
    );
    assert_eq!(
        shown["document"]["entries"][0]["suspension_id"],
        id.as_str()
    );
}

both_backends!(a_cut_off_blocks_a_persons_old_tokens_and_passes_new_ones);
fn a_cut_off_blocks_a_persons_old_tokens_and_passes_new_ones() {
    let s = start_site();
    let (blocklist, config) = ce(&s);
    let now = now_secs();
    let old = token(&s, "t-old", "alice", "cli", false, Some(now - 3_600));
    let fresh = token(&s, "t-new", "alice", "cli", false, Some(now));
    let undated = token(&s, "t-undated", "alice", "cli", false, None);
    let bob = token(&s, "t-bob", "bob", "cli", false, Some(now - 3_600));
    let officer = officer_file(&s);

    // The VO's officer cuts off every token alice got before a compromise, VO-wide.
    let cut_off = (now - 60).to_string();
    let suspended = cli_ok(
        &s,
        &officer,
        &[
            "vo",
            "suspend",
            "--vo",
            "atlas",
            "--jti",
            "t-old",
            "--issued-before",
            &cut_off,
            "--reason",
            "INC-10 laptop stolen",
            "--reason-code",
            "compromised",
        ],
    );
    assert_eq!(suspended["target"], "person", "{suspended}");
    assert_eq!(suspended["issued_before"], now - 60);
    let id = suspended["id"].as_str().unwrap().to_string();
    s.pull_ok(&s.reader, &blocklist, &[]);

    // HTCondor: the old token is refused, the new one of the same person passes; a token
    // that does not say when it was issued is refused (deny, not guess).
    assert_eq!(htcondor(&config, &old, "alice").code, 2);
    assert_eq!(htcondor(&config, &fresh, "alice").code, 1);
    assert_eq!(htcondor(&config, &undated, "alice").code, 2);
    assert_eq!(htcondor(&config, &bob, "bob").code, 1);
    // ARC's %D carries no iat: the cut-off refuses every token of alice there; bob passes.
    assert_eq!(arc(&config, "alice").code, 0);
    assert_eq!(arc(&config, "bob").code, 1);
    // Exports list alice whole, and say why.
    let out = s.path("export.htcondor");
    s.pull_ok(&s.admin, &out, &["--format", "htcondor"]);
    let content = std::fs::read_to_string(&out).unwrap();
    assert!(
        content.contains(&format!(
            "only tokens issued before {} (unix seconds)",
            now - 60
        )) && content.contains(&format!("SCITOKENS {ATLAS_ISS},alice ")),
        "{content}"
    );
    // The site sees the cut-off, never the person.
    let listed = cli_ok(&s, &s.admin, &["site", "list", "--site", SITE]);
    let view = &listed["suspensions"][0];
    assert_eq!(
        (view["id"].as_str(), &view["issued_before"]),
        (Some(id.as_str()), &json!(now - 60))
    );
    assert!(view["person"].is_null(), "{view}");

    // Lifted by the VO: alice's old token passes again.
    cli_ok(
        &s,
        &officer,
        &["vo", "lift", &id, "--vo", "atlas", "--reason", "re-issued"],
    );
    s.pull_ok(&s.reader, &blocklist, &[]);
    assert_eq!(htcondor(&config, &old, "alice").code, 1);
}

both_backends!(a_vo_wide_client_cut_off_ends_on_its_own);
fn a_vo_wide_client_cut_off_ends_on_its_own() {
    let s = start_site();
    let (blocklist, config) = ce(&s);
    let now = now_secs();
    let old = token(&s, "t-old", "alice", "fts", false, Some(now - 600));
    let officer = officer_file(&s);
    // FTS's client secret was rotated at the issuer just now: the tokens issued before are
    // refused, those of the new secret pass. (Before a rotation a cut-off would not do: the
    // holder of a leaked secret gets fresh tokens; the client is then suspended whole.)
    let suspended = cli_ok(
        &s,
        &officer,
        &[
            "vo",
            "suspend",
            "--vo",
            "atlas",
            "--client",
            "fts",
            "--iss",
            ATLAS_ISS,
            "--issued-before",
            "now",
            "--expires",
            "4s",
            "--reason",
            "INC-11 FTS secret rotated",
        ],
    );
    assert_eq!(suspended["target"], "client", "{suspended}");
    assert_eq!(suspended["client"], "fts");
    let cut_off = suspended["issued_before"].as_i64().unwrap();
    assert!((now..now + 60).contains(&cut_off), "`now`: {suspended}");
    // Issued at the cut-off: passes.
    let fresh = mint(&s, "t-new", "alice", "fts", false, Some(cut_off));
    s.pull_ok(&s.reader, &blocklist, &[]);
    // A site sees that a client of its VO is suspended, not which: the VO suspended it.
    let listed = cli_ok(&s, &s.admin, &["site", "list", "--site", SITE]);
    let view = &listed["suspensions"][0];
    assert_eq!(view["target"], "client", "{view}");
    assert!(view.get("client").is_none_or(Value::is_null), "{view}");
    assert_eq!(htcondor(&config, &old, "alice").code, 2);
    assert_eq!(htcondor(&config, &fresh, "alice").code, 1);
    // Past `expires_at`, the blocklist already held lets the old token in.
    std::thread::sleep(std::time::Duration::from_secs(6));
    assert_eq!(htcondor(&config, &old, "alice").code, 1);
}

both_backends!(a_vo_wide_client_suspension_is_refused_while_other_vos_use_the_client);
fn a_vo_wide_client_suspension_is_refused_while_other_vos_use_the_client() {
    // One issuer serving two VOs (by `wlcg.groups`), one site serving both.
    let dir = tempfile::tempdir().unwrap();
    let issuer = TestIssuer::new(ATLAS_ISS);
    let jwks = dir.path().join("jwks.json");
    let config = format!(
        "{}\n[[site]]\nname = \"{SITE}\"\nvos = [\"atlas\", \"cms\"]\n",
        issuer.file_config_block(&jwks, "[{ rule = \"wlcg_groups\" }]")
    );
    let server = TestServer::start_with_config(&dir.path().join("ledger"), &config);
    let http = server.http();
    for (jti, vo, client) in [
        ("t-atlas-rucio", "atlas", "rucio"),
        ("t-cms-rucio", "cms", "rucio"),
        ("t-atlas-fts", "atlas", "fts"),
    ] {
        let mut claims = issuer.claims(jti, "alice");
        claims["client_id"] = client.into();
        claims["wlcg.groups"] = json!([format!("/{vo}")]);
        let token = issuer.mint(Algorithm::ES256, &claims);
        let reported = http.post_json(
            "/v1/issuances",
            Some(&server.create_credential("issuer", Some(vo))),
            &json!({ "token": token }),
        );
        assert_eq!(reported.status, 201, "{reported:?}");
    }
    // A client tag names no VO: atlas suspending the shared `rucio` would stop cms's users at
    // the site. Refused, naming the other VO; cms is refused the same.
    let rucio = json!({"client": "rucio", "iss": ATLAS_ISS, "reason": "INC-12"});
    for (vo, other) in [("atlas", "cms"), ("cms", "atlas")] {
        let officer = server.create_credential("vo-security", Some(vo));
        let refused = http.post_json(&format!("/v1/vos/{vo}/suspensions"), Some(&officer), &rucio);
        refused.assert_error(409, "conflict");
        assert!(
            refused
                .body
                .contains(&format!("logged in other VOs too ({other})")),
            "{refused:?}"
        );
    }
    // The site serving both is refused too; a client only atlas uses is suspended VO-wide.
    let admin = server
        .credential(&["--role", "site-admin", "--site", SITE])
        .secret;
    let at_site = http.post_json(
        &format!("/v1/sites/{SITE}/suspensions"),
        Some(&admin),
        &rucio,
    );
    assert_eq!(at_site.status, 409, "{at_site:?}");
    assert!(
        at_site.body.contains("several VOs of the site"),
        "{at_site:?}"
    );
    let officer = server.create_credential("vo-security", Some("atlas"));
    let fts = http.post_json(
        "/v1/vos/atlas/suspensions",
        Some(&officer),
        &json!({"client": "fts", "iss": ATLAS_ISS, "reason": "INC-12"}),
    );
    assert_eq!(fts.status, 201, "{fts:?}");
    assert_eq!(fts.json()["vo"], "atlas");
}

both_backends!(bad_client_and_cut_off_requests_are_refused_with_the_reason);
fn bad_client_and_cut_off_requests_are_refused_with_the_reason() {
    let s = start_site();
    s.ingest("t-alice", "alice");
    let http = s.server.http();
    let admin = std::fs::read_to_string(&s.admin).unwrap();
    let officer = s.server.create_credential("vo-security", Some("atlas"));
    let pseudonym = s
        .admin_ok(&["site", "pseudonym", "t-alice", "--site", SITE, "--json"])
        .json()["pseudonym"]
        .as_str()
        .unwrap()
        .to_string();
    let future = now_secs() + 3_600;
    let site_path = format!("/v1/sites/{SITE}/suspensions");
    for (body, status, words) in [
        (
            json!({"pseudonym": pseudonym, "client": "test-client", "iss": ATLAS_ISS, "reason": "x"}),
            400,
            "give one of",
        ),
        (
            json!({"client": "test-client", "reason": "x"}),
            400,
            "needs `iss`",
        ),
        (
            json!({"client": "test-client", "iss": ATLAS_ISS, "target": "person", "reason": "x"}),
            400,
            "give one of",
        ),
        (
            json!({"pseudonym": pseudonym, "issued_before": future, "reason": "x"}),
            400,
            "issued_before must not be in the future",
        ),
        (
            json!({"jti": "t-alice", "target": "token", "issued_before": 1, "reason": "x"}),
            400,
            "issued_before applies to a person or a client",
        ),
        (
            json!({"pseudonym": pseudonym, "issued_before": -5, "reason": "x"}),
            400,
            "not negative",
        ),
        (
            json!({"client": "no-such-client", "iss": ATLAS_ISS, "reason": "x"}),
            404,
            "no token of this client",
        ),
        (
            json!({"client": "test-client", "iss": "https://other.example/", "reason": "x"}),
            404,
            "no token of this client",
        ),
    ] {
        let reply = http.post_json(&site_path, Some(admin.trim()), &body);
        assert_eq!(reply.status, status, "{body}: {reply:?}");
        assert!(reply.body.contains(words), "{body}: {reply:?}");
    }
    let vo_path = "/v1/vos/atlas/suspensions";
    for (body, words) in [
        (
            json!({"person": "pe-x", "client": "test-client", "iss": ATLAS_ISS, "reason": "x"}),
            "give one of",
        ),
        (
            json!({"client": "test-client", "iss": ATLAS_ISS, "issued_before": future, "reason": "x"}),
            "issued_before must not be in the future",
        ),
        (
            json!({"client": "test-client", "iss": ATLAS_ISS, "issued_before": 1.5, "reason": "x"}),
            "not an integer",
        ),
    ] {
        let reply = http.post_json(vo_path, Some(&officer), &body);
        assert_eq!(reply.status, 400, "{body}: {reply:?}");
        assert!(reply.body.contains(words), "{body}: {reply:?}");
    }
    // The CLI refuses what it can before asking.
    let both = s.cli(
        &s.admin,
        &[
            "site",
            "suspend",
            "--site",
            SITE,
            "--pseudonym",
            &pseudonym,
            "--client",
            "c",
            "--iss",
            ATLAS_ISS,
            "--reason",
            "x",
        ],
    );
    assert_eq!(both.code, 2, "{both:#?}");
    let no_iss = s.cli(
        &s.admin,
        &[
            "site", "suspend", "--site", SITE, "--client", "c", "--reason", "x",
        ],
    );
    assert_eq!(no_iss.code, 2, "{no_iss:#?}");
    let bad_time = s.cli(
        &s.admin,
        &[
            "site",
            "suspend",
            "--site",
            SITE,
            "--pseudonym",
            &pseudonym,
            "--issued-before",
            "soon",
            "--reason",
            "x",
        ],
    );
    assert_eq!(bad_time.code, 2, "{bad_time:#?}");
    assert!(bad_time.stderr.contains("neither `now`"), "{bad_time:#?}");
}
