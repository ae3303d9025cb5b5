//! Site → VO suspension requests end to end (issue 22): the real server, real JWTs, signed
//! blocklists and the real `tokenledger` CLI. Site A (CERN-PROD) asks the VO to suspend the
//! person behind its pseudonym; the VO's officer accepts; site B's (RAL-LCG2) blocklist then
//! carries the person; site A's view names the outcome and never an issuer, subject or person
//! id; a declined request reaches site A with its reason. Every step is a log entry; bad
//! input is a 4xx JSON error that logs nothing; a request is decided once.

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokenledger_core::blocklist::{BlocklistIndex, Decision, Scope, SignedBlocklist};
use tokenledger_core::note::NoteVerifier;
use tokenledger_core::pseudonym::SiteKey;
use tokenledger_e2e::both_backends;
use tokenledger_e2e::daemon::set_mode;
use tokenledger_e2e::issuer::{TestIssuer, now_secs};
use tokenledger_e2e::{CliRun, Reply, TestServer, run_cli_with};

const ATLAS_ISS: &str = "https://atlas-auth.example/";
const CMS_ISS: &str = "https://cms-auth.example/";
const SITE_A: &str = "CERN-PROD";
const SITE_B: &str = "RAL-LCG2";
const EVIDENCE: &str = "ce01 job 4711.0: outbound port scans\n\tfrom 10.0.0.7 at 03:12Z";

struct Setup {
    server: TestServer,
    atlas: TestIssuer,
    cms: TestIssuer,
    a_admin: String,
    b_admin: String,
    officer: String,
    admin: String,
    dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let atlas = TestIssuer::new(ATLAS_ISS);
    let cms = TestIssuer::new(CMS_ISS);
    let (atlas_jwks, cms_jwks) = (dir.path().join("atlas.json"), dir.path().join("cms.json"));
    atlas.write_jwks(&atlas_jwks);
    cms.write_jwks(&cms_jwks);
    let config = format!(
        "{}\n{}\n[[site]]\nname = \"{SITE_A}\"\nvos = [\"atlas\", \"cms\"]\n\n\
         [[site]]\nname = \"{SITE_B}\"\nvos = [\"atlas\"]\n",
        atlas.config_block(
            &format!("jwks_file = \"{}\"", atlas_jwks.display()),
            "[{ rule = \"fixed\", vo = \"atlas\" }]"
        ),
        cms.config_block(
            &format!("jwks_file = \"{}\"", cms_jwks.display()),
            "[{ rule = \"fixed\", vo = \"cms\" }]"
        ),
    );
    let server = TestServer::start_with_config(&dir.path().join("data"), &config);
    let site_admin = |site: &str| {
        server
            .credential(&["--role", "site-admin", "--site", site])
            .secret
    };
    let (a_admin, b_admin) = (site_admin(SITE_A), site_admin(SITE_B));
    let officer = server.create_credential("vo-security", Some("atlas"));
    let admin = server.admin_secret().to_string();
    Setup {
        server,
        atlas,
        cms,
        a_admin,
        b_admin,
        officer,
        admin,
        dir,
    }
}

impl Setup {
    fn ingest(&self, issuer: &TestIssuer, vo: &str, jti: &str, sub: &str) {
        let credential = self.server.create_credential("issuer", Some(vo));
        let token = issuer.mint(Algorithm::ES256, &issuer.claims(jti, sub));
        let reply = self.server.http().post_json(
            "/v1/issuances",
            Some(&credential),
            &json!({"token": token}),
        );
        assert_eq!(reply.status, 201, "{reply:?}");
    }

    fn get(&self, path: &str, token: &str) -> Reply {
        self.server.http().get(path, Some(token))
    }

    fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.server.http().post_json(path, Some(token), &body)
    }

    fn pseudonym(&self, site: &str, admin: &str, jti: &str) -> String {
        let reply = self.get(&format!("/v1/sites/{site}/tokens/{jti}/pseudonym"), admin);
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.json()["pseudonym"].as_str().unwrap().to_string()
    }

    /// Site A asks the VO; the request as answered.
    fn request(&self, body: Value) -> Value {
        let reply = self.post(
            &format!("/v1/sites/{SITE_A}/suspension-requests"),
            &self.a_admin,
            body,
        );
        assert_eq!(reply.status, 201, "{reply:?}");
        assert_no_identity(&reply);
        reply.json()
    }

    fn decide(&self, id: &str, decision: &str, body: Value) -> Reply {
        self.post(
            &format!("/v1/vos/atlas/suspension-requests/{id}/{decision}"),
            &self.officer,
            body,
        )
    }

    fn site_view(&self, id: &str) -> Reply {
        let reply = self.get(
            &format!("/v1/sites/{SITE_A}/suspension-requests/{id}"),
            &self.a_admin,
        );
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_no_identity(&reply);
        reply
    }

    /// Whether `site`'s signed blocklist (signature and freshness checked) denies atlas's
    /// `sub` for compute.
    fn blocklist_denies(&self, site: &str, admin: &str, sub: &str) -> bool {
        let reply = self.get(&format!("/v1/sites/{site}/blocklist"), admin);
        assert_eq!(reply.status, 200, "{reply:?}");
        let signed: SignedBlocklist = serde_json::from_str(&reply.body).unwrap();
        let verifier = NoteVerifier::parse(&self.server.log_key()).unwrap();
        let document = signed.verify(&verifier).expect("a valid signature").clone();
        document.check_fresh(site, None, now_secs()).unwrap();
        let key = self.site_key(site, admin);
        let index = BlocklistIndex::new(document);
        matches!(
            index.decide(&key, ATLAS_ISS, sub, None, Scope::Compute, now_secs()),
            Decision::Suspended(_)
        )
    }

    fn site_key(&self, site: &str, admin: &str) -> SiteKey {
        use base64::Engine;
        let reply = self.get(&format!("/v1/sites/{site}/key"), admin);
        assert_eq!(reply.status, 200, "{reply:?}");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(reply.json()["key"].as_str().unwrap())
            .unwrap();
        SiteKey::from_bytes(bytes.try_into().unwrap())
    }

    /// The VO-wide suspension made by accepting request `id`, as the VO lists it.
    fn vo_suspension(&self, id: &str) -> Value {
        let suspension = self.site_view(id).json()["suspension_id"].clone();
        let listed = self.get("/v1/vos/atlas/suspensions", &self.officer).json();
        listed["suspensions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|made| made["id"] == suspension)
            .unwrap_or_else(|| panic!("suspension {suspension} listed: {listed}"))
            .clone()
    }

    /// The log's entries from `start` on, but the site key fetches (of `blocklist_denies`).
    fn entries_since(&self, start: u64) -> Vec<Value> {
        let end = self.server.log_size();
        self.server
            .http()
            .entries(&self.admin, start, end)
            .into_iter()
            .map(|e| e.entry)
            .filter(|e| e["type"] != "site_key_fetch")
            .collect()
    }

    /// A credential in a token file (0600), for the CLI.
    fn token_file(&self, name: &str, secret: &str) -> String {
        let path = self.dir.path().join(format!("{name}.token"));
        std::fs::write(&path, secret).unwrap();
        set_mode(&path, 0o600);
        path.display().to_string()
    }

    fn cli(&self, token_file: &str, args: &[&str], stdin: Option<&[u8]>) -> CliRun {
        let mut all = vec!["--server", self.server.url(), "--token-file", token_file];
        all.extend_from_slice(args);
        let run = run_cli_with(&all, &[], stdin);
        assert_eq!(run.code, 0, "tokenledger {args:?}: {run:#?}");
        run
    }
}

/// A site's answer names no issuer, subject or person. Random identifiers (the request's
/// id, the pseudonym, the requester's credential id) are left out of the search: a random
/// `bob` in one of them is no leak.
fn assert_no_identity(reply: &Reply) {
    let mut answer: Value = serde_json::from_str(&reply.body).expect("a JSON answer");
    blank_random_ids(&mut answer);
    let searched = answer.to_string();
    for word in [ATLAS_ISS, "alice", "bob", "\"iss\"", "\"sub\"", "pe-"] {
        assert!(
            !searched.contains(word),
            "a site's answer leaked `{word}`: {}",
            reply.body
        );
    }
}

/// Replaces the values of random identifiers in `value`, at any depth, by null.
fn blank_random_ids(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields.iter_mut() {
                if ["id", "pseudonym", "requested_by", "suspension_id"].contains(&key.as_str()) {
                    *field = Value::Null;
                } else {
                    blank_random_ids(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(blank_random_ids),
        _ => {}
    }
}

both_backends!(an_accepted_request_reaches_every_site_and_the_requesting_site_never_learns_who);
fn an_accepted_request_reaches_every_site_and_the_requesting_site_never_learns_who() {
    let s = setup();
    s.ingest(&s.atlas, "atlas", "t1", "alice");
    let pseudonym = s.pseudonym(SITE_A, &s.a_admin, "t1");
    assert!(!s.blocklist_denies(SITE_B, &s.b_admin, "alice"));

    let start = s.server.log_size();
    let request = s.request(json!({
        "pseudonym": pseudonym, "evidence": EVIDENCE, "scope": "compute",
        "reason_code": "compromised",
    }));
    let id = request["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("sr-"), "{request}");
    assert_eq!(request["status"], "pending");
    assert_eq!(request["pseudonym"], pseudonym.as_str());
    assert_eq!(request["evidence"], EVIDENCE);
    assert!(
        !s.blocklist_denies(SITE_B, &s.b_admin, "alice"),
        "a request alone suspends nobody"
    );

    // Site B cannot see site A's requests.
    s.get(
        &format!("/v1/sites/{SITE_A}/suspension-requests"),
        &s.b_admin,
    )
    .assert_error(403, "forbidden");
    s.get(
        &format!("/v1/sites/{SITE_B}/suspension-requests/{id}"),
        &s.b_admin,
    )
    .assert_error(404, "not_found");

    // The VO's officers see it pending, by site and pseudonym, never by person.
    let listed = s.get("/v1/vos/atlas/suspension-requests", &s.officer);
    assert_eq!(listed.status, 200, "{listed:?}");
    assert!(!listed.body.contains("pe-"), "{}", listed.body);
    let listed = listed.json();
    assert_eq!(listed["requests"].as_array().unwrap().len(), 1, "{listed}");
    let row = &listed["requests"][0];
    assert_eq!(
        (&row["id"], &row["site"], &row["pseudonym"]),
        (&json!(id), &json!(SITE_A), &json!(pseudonym))
    );
    assert_eq!(row["evidence"], EVIDENCE);
    let cms_officer = s.server.create_credential("vo-security", Some("cms"));
    s.get("/v1/vos/atlas/suspension-requests", &cms_officer)
        .assert_error(403, "forbidden");
    s.post(
        &format!("/v1/vos/cms/suspension-requests/{id}/accept"),
        &cms_officer,
        json!({}),
    )
    .assert_error(404, "not_found");

    // Accepted on the site's terms: a VO-wide suspension, at site B too.
    let accepted = s.decide(&id, "accept", json!({}));
    assert_eq!(accepted.status, 200, "{accepted:?}");
    let accepted = accepted.json();
    assert_eq!(accepted["status"], "accepted");
    let suspension = accepted["suspension_id"].as_str().unwrap().to_string();
    assert!(s.blocklist_denies(SITE_B, &s.b_admin, "alice"));
    assert!(s.blocklist_denies(SITE_A, &s.a_admin, "alice"));
    let vo_suspensions = s.get("/v1/vos/atlas/suspensions", &s.officer).json();
    let made = &vo_suspensions["suspensions"][0];
    assert_eq!(made["id"], suspension.as_str());
    assert_eq!(made["site"], Value::Null, "VO-wide");
    assert_eq!(
        (&made["scope"], &made["reason_code"]),
        (&json!("compute"), &json!("compromised")),
        "the site's proposed terms"
    );

    // Decided once.
    let size = s.server.log_size();
    s.decide(&id, "accept", json!({}))
        .assert_error(409, "conflict");
    s.decide(&id, "decline", json!({"reason": "too late"}))
        .assert_error(409, "conflict");
    assert_eq!(s.server.log_size(), size, "a refused decision logs nothing");

    // Site A sees the outcome, and the suspension in its own list, by its pseudonym.
    let view = s.site_view(&id).json();
    assert_eq!(view["status"], "accepted");
    assert_eq!(view["suspension_id"], suspension.as_str());
    assert!(view["decided_at"].as_i64().is_some(), "{view}");
    let own = s.get(&format!("/v1/sites/{SITE_A}/suspensions"), &s.a_admin);
    assert_no_identity(&own);
    assert_eq!(own.json()["suspensions"][0]["id"], suspension.as_str());
    assert_eq!(
        own.json()["suspensions"][0]["pseudonym"],
        pseudonym.as_str()
    );

    // Every step is a log entry: the request, then the suspension with its acceptance.
    let entries = s.entries_since(start);
    let types: Vec<&str> = entries
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "suspension_request",
            "suspension",
            "suspension_request_accept"
        ]
    );
    let logged = &entries[0];
    assert_eq!(
        (
            &logged["request_id"],
            &logged["pseudonym"],
            &logged["evidence"]
        ),
        (&json!(id), &json!(pseudonym), &json!(EVIDENCE))
    );
    // As designed: the person id (the VO's suspension names the same person) and the site's
    // pseudonym; no issuer or subject, and no token (the site named a pseudonym).
    let mut members: Vec<&str> = logged
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    members.sort_unstable();
    assert_eq!(
        members,
        [
            "evidence",
            "logged_at",
            "person_id",
            "pseudonym",
            "reason_code",
            "request_id",
            "requested_by",
            "scope",
            "site",
            "type",
            "v",
            "vo"
        ],
        "{logged}"
    );
    assert!(
        made["person"].as_str().unwrap().starts_with("pe-"),
        "{made}"
    );
    assert_eq!(logged["person_id"], made["person"]);
    assert_eq!(entries[2]["suspension_id"], suspension.as_str());
    assert_eq!(entries[1]["suspension_id"], suspension.as_str());
}

both_backends!(a_declined_request_reaches_the_site_with_its_reason_and_suspends_nobody);
fn a_declined_request_reaches_the_site_with_its_reason_and_suspends_nobody() {
    let s = setup();
    s.ingest(&s.atlas, "atlas", "t2", "bob");
    // Named by a jti seen at the site: its person, by the site's pseudonym.
    let request = s.request(json!({"jti": "t2", "evidence": "one failed login"}));
    let id = request["id"].as_str().unwrap().to_string();
    assert_eq!(request["jti"], "t2");
    assert_eq!(
        request["pseudonym"],
        s.pseudonym(SITE_A, &s.a_admin, "t2").as_str()
    );
    let listed = s
        .get("/v1/vos/atlas/suspension-requests", &s.officer)
        .json();
    assert_eq!(
        listed["requests"][0]["iss"], ATLAS_ISS,
        "the VO sees the issuer"
    );

    let declined = s.decide(
        &id,
        "decline",
        json!({"reason": "INC-7: not enough evidence"}),
    );
    assert_eq!(declined.status, 200, "{declined:?}");
    s.decide(&id, "accept", json!({}))
        .assert_error(409, "conflict");
    s.decide(&id, "decline", json!({"reason": "again"}))
        .assert_error(409, "conflict");

    let view = s.site_view(&id).json();
    assert_eq!(view["status"], "declined");
    assert_eq!(view["decline_reason"], "INC-7: not enough evidence");
    assert_eq!(view["suspension_id"], Value::Null);
    let mine = s.get(
        &format!("/v1/sites/{SITE_A}/suspension-requests?status=declined"),
        &s.a_admin,
    );
    assert_no_identity(&mine);
    assert_eq!(mine.json()["requests"][0]["id"], id.as_str());
    let pending = s
        .get("/v1/vos/atlas/suspension-requests", &s.officer)
        .json();
    assert!(
        pending["requests"].as_array().unwrap().is_empty(),
        "{pending}"
    );
    let declined = s
        .get(
            "/v1/vos/atlas/suspension-requests?status=declined",
            &s.officer,
        )
        .json();
    assert_eq!(declined["requests"][0]["id"], id.as_str());
    assert!(!s.blocklist_denies(SITE_B, &s.b_admin, "bob"));
    let logged = s.entries_since(0);
    let decline = logged.last().unwrap();
    assert_eq!(decline["type"], "suspension_request_decline");
    assert_eq!(decline["reason"], "INC-7: not enough evidence");
    assert_eq!(decline["request_id"], id.as_str());
}

both_backends!(bad_requests_and_decisions_are_4xx_json_and_log_nothing);
fn bad_requests_and_decisions_are_4xx_json_and_log_nothing() {
    let s = setup();
    s.ingest(&s.atlas, "atlas", "t1", "alice");
    s.ingest(&s.cms, "cms", "c1", "carol");
    let pseudonym = s.pseudonym(SITE_A, &s.a_admin, "t1");
    let ral_pseudonym = s.pseudonym(SITE_B, &s.b_admin, "t1");
    let path = format!("/v1/sites/{SITE_A}/suspension-requests");
    let size = s.server.log_size();
    let refused = |body: Value, status: u16, code: &str| {
        let reply = s.post(&path, &s.a_admin, body.clone());
        eprintln!("{body}: {} {}", reply.status, reply.body);
        reply.assert_error(status, code);
    };
    let bad = |body: Value| refused(body, 400, "bad_request");
    bad(json!({"pseudonym": pseudonym}));
    bad(json!({"evidence": "seen"}));
    bad(json!({"pseudonym": pseudonym, "jti": "t1", "evidence": "seen"}));
    bad(json!({"pseudonym": pseudonym, "iss": ATLAS_ISS, "evidence": "seen"}));
    bad(json!({"pseudonym": pseudonym, "evidence": " \n\t "}));
    bad(json!({"pseudonym": pseudonym, "evidence": "a\u{1b}[2Jb"}));
    bad(json!({"pseudonym": pseudonym, "evidence": "job 1.0 \u{202e}nacs\u{202c}"}));
    bad(json!({"pseudonym": pseudonym, "evidence": "x".repeat(2049)}));
    bad(json!({"pseudonym": pseudonym, "evidence": "seen", "scope": "network"}));
    bad(json!({"pseudonym": pseudonym, "evidence": "seen", "reason_code": "Bad Code"}));
    bad(json!({"pseudonym": pseudonym, "evidence": "seen", "expires_at": now_secs() - 1}));
    bad(json!({"pseudonym": pseudonym, "evidence": "seen", "expires_at": 1.5}));
    bad(json!({"pseudonym": pseudonym, "evidence": "seen", "person": "pe-x"}));
    bad(json!({"jti": "", "evidence": "seen"}));
    bad(json!([pseudonym, null, null, "seen", null, null, null]));
    let missing = |body: Value| refused(body, 404, "not_found");
    missing(json!({"pseudonym": "p1-nobody", "evidence": "seen"}));
    missing(json!({"pseudonym": ral_pseudonym, "evidence": "another site's"}));
    missing(json!({"jti": "no-such-jti", "evidence": "seen"}));
    let reply = s.server.http().send(
        "POST",
        &path,
        Some(&s.a_admin),
        Some("text/plain"),
        Some(b"{}"),
    );
    reply.assert_error(415, "unsupported_media_type");
    s.get(&format!("{path}?status=open"), &s.a_admin)
        .assert_error(400, "bad_request");
    s.get("/v1/vos/atlas/suspension-requests?status=open", &s.officer)
        .assert_error(400, "bad_request");
    s.get(&format!("{path}/sr-nothing"), &s.a_admin)
        .assert_error(404, "not_found");
    s.decide("sr-nothing", "accept", json!({}))
        .assert_error(404, "not_found");
    s.decide("sr-nothing", "decline", json!({"reason": "x"}))
        .assert_error(404, "not_found");
    assert_eq!(s.server.log_size(), size, "bad input logged something");

    // A well-formed request, then bad decisions of it.
    let request = s.request(json!({"pseudonym": pseudonym, "evidence": "seen"}));
    let id = request["id"].as_str().unwrap();
    let size = s.server.log_size();
    let bad_decision = |decision: &str, body: Value| {
        s.decide(id, decision, body)
            .assert_error(400, "bad_request");
    };
    bad_decision("decline", json!({}));
    bad_decision("decline", json!({"reason": "  "}));
    bad_decision("accept", json!({"scope": "network"}));
    bad_decision("accept", json!({"expires_at": now_secs() - 10}));
    bad_decision("accept", json!({"reason": "x", "person": "pe-x"}));
    bad_decision("accept", json!({"reason": "a\u{0}b"}));
    bad_decision("accept", json!([null, null, null, null]));
    bad_decision("decline", json!(["INC-1"]));
    s.post(
        &format!("/v1/vos/atlas/suspension-requests/{id}/accept"),
        &s.a_admin,
        json!({}),
    )
    .assert_error(403, "forbidden");
    assert_eq!(s.server.log_size(), size, "bad decisions logged something");
    let view = s.site_view(id).json();
    assert_eq!(view["status"], "pending");
}

both_backends!(the_cli_requests_lists_and_accepts);
/// The CLI: `site request-suspension` (evidence from stdin), `site requests`, `vo requests
/// list`, `accept` with terms of the officer's own (and the site's proposed end), `accept
/// --no-expiry` (no end, though the site proposed one).
fn the_cli_requests_lists_and_accepts() {
    let s = setup();
    s.ingest(&s.atlas, "atlas", "t1", "alice");
    let site_token = s.token_file("site-a", &s.a_admin);
    let officer_token = s.token_file("officer", &s.officer);

    let requested = s.cli(
        &site_token,
        &[
            "site",
            "request-suspension",
            "--site",
            SITE_A,
            "--jti",
            "t1",
            "--evidence-file",
            "-",
            "--expires",
            "7d",
            "--json",
        ],
        Some(EVIDENCE.as_bytes()),
    );
    let id = requested.json()["id"].as_str().unwrap().to_string();
    assert_eq!(requested.json()["evidence"], EVIDENCE);
    let proposed_end = requested.json()["expires_at"]
        .as_i64()
        .expect("a proposed end");

    let listed = s.cli(
        &officer_token,
        &["vo", "requests", "list", "--vo", "atlas"],
        None,
    );
    assert!(listed.stdout.contains(&id), "{listed:#?}");
    assert!(listed.stdout.contains("pending"), "{listed:#?}");

    let accepted = s.cli(
        &officer_token,
        &[
            "vo", "requests", "accept", &id, "--vo", "atlas", "--scope", "all", "--reason",
            "INC-42",
        ],
        None,
    );
    assert!(accepted.stdout.contains("accepted"), "{accepted:#?}");
    assert!(
        accepted.stdout.contains("port scans"),
        "the evidence, line by line: {accepted:#?}"
    );
    assert!(s.blocklist_denies(SITE_B, &s.b_admin, "alice"));
    let made = s.vo_suspension(&id);
    assert_eq!(
        (&made["scope"], &made["reason_code"], &made["not_after"]),
        (&json!("all"), &json!("suspended"), &json!(proposed_end)),
        "the officer's scope, the site's proposed end: {made}"
    );

    let shown = s.cli(
        &site_token,
        &["site", "requests", &id, "--site", SITE_A],
        None,
    );
    assert!(shown.stdout.contains("accepted"), "{shown:#?}");
    assert!(!shown.stdout.contains("alice") && !shown.stdout.contains(ATLAS_ISS));
    let csv = s.cli(
        &site_token,
        &["site", "requests", "--site", SITE_A, "--csv"],
        None,
    );
    assert!(csv.stdout.starts_with("id,status,"), "{csv:#?}");
    assert!(csv.stdout.contains(&id), "{csv:#?}");
    let one = s.cli(
        &site_token,
        &["site", "requests", &id, "--site", SITE_A, "--csv"],
        None,
    );
    let lines: Vec<&str> = one.stdout.split("\r\n").collect();
    assert!(
        lines[0].starts_with("id,status,"),
        "one request as CSV: {one:#?}"
    );
    assert!(lines[1].starts_with(&format!("{id},accepted,")), "{one:#?}");
    assert!(one.stdout.contains("port scans"), "its evidence: {one:#?}");

    let again = run_cli_with(
        &[
            "--server",
            s.server.url(),
            "--token-file",
            &officer_token,
            "vo",
            "requests",
            "decline",
            &id,
            "--vo",
            "atlas",
            "--reason",
            "late",
        ],
        &[],
        None,
    );
    assert_eq!(again.code, 2, "a conflict is a server error: {again:#?}");
    assert!(again.stderr.contains("already"), "{again:#?}");

    s.ingest(&s.atlas, "atlas", "t2", "bob");
    let request = s.request(json!({
        "jti": "t2", "evidence": "seen", "expires_at": now_secs() + 86_400,
    }));
    let id = request["id"].as_str().unwrap();
    let accepted = s.cli(
        &officer_token,
        &[
            "vo",
            "requests",
            "accept",
            id,
            "--vo",
            "atlas",
            "--no-expiry",
            "--json",
        ],
        None,
    );
    assert_eq!(accepted.json()["status"], "accepted", "{accepted:#?}");
    let made = s.vo_suspension(id);
    assert_eq!(made["not_after"], Value::Null, "until lifted: {made}");
    assert!(s.blocklist_denies(SITE_B, &s.b_admin, "bob"));
}
