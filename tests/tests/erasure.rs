//! Erasure of a person end to end, on both backends: a VO security officer erases a person
//! with tokens, sightings and a pseudonym; their jtis answer 410 `redacted`, their pseudonym
//! no longer resolves, the `erasure` entry is in the log and in the VO's audit listing (not
//! another VO's), and the independent checks (`tokenledger verify`: checkpoint, consistency,
//! inclusion of a redacted entry) still pass. A suspended person's erasure keeps the
//! suspension's entry and their identities, and says so; after the lift, a second erasure
//! removes the rest. Who may erase, and bad requests; `tokenledger person erase`.

use serde_json::{Value, json};
use tokenledger_e2e::{Http, TestServer, both_backends, issuer_of, run_cli};

/// A site of atlas.
const CONFIG: &str = "[[site]]\nname = \"CERN-PROD\"\nvos = [\"atlas\"]\n";

/// Unix seconds.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An issuance report of atlas for `sub`, valid for an hour.
fn token_of(jti: &str, sub: &str) -> Value {
    json!({
        "claims": {
            "jti": jti, "iss": issuer_of("atlas"), "sub": sub, "vo": "atlas",
            "iat": now(), "exp": now() + 3600,
        }
    })
}

/// A running ledger with the credentials the tests use.
struct Ledger {
    server: TestServer,
    issuer: String,
    officer: String,
    site_admin: String,
    _dir: tempfile::TempDir,
}

impl Ledger {
    fn start() -> Ledger {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start_with_config(&dir.path().join("data"), CONFIG);
        let issuer = server.create_issuer("atlas");
        let officer = server.create_credential("vo-security", Some("atlas"));
        let site_admin = server
            .credential(&["--role", "site-admin", "--site", "CERN-PROD"])
            .secret;
        Ledger {
            server,
            issuer,
            officer,
            site_admin,
            _dir: dir,
        }
    }

    fn http(&self) -> Http {
        self.server.http()
    }

    /// Logs a token; its index.
    fn issue(&self, jti: &str, sub: &str) -> u64 {
        let reply = self.http().append(&self.issuer, &token_of(jti, sub));
        assert_eq!(reply.status, 201, "{reply:?}");
        reply.json()["index"].as_u64().unwrap()
    }

    /// The person behind `jti` (a logged resolution).
    fn person_of(&self, jti: &str) -> String {
        let reply = self.resolve(jti);
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.json()["person"]["id"].as_str().unwrap().to_string()
    }

    fn resolve(&self, jti: &str) -> tokenledger_e2e::Reply {
        self.http().get(
            &format!("/v1/vos/atlas/tokens/{jti}?reason=INC-9"),
            Some(&self.officer),
        )
    }

    /// `POST .../erasure` by `secret` with `body`.
    fn erase_as(
        &self,
        secret: &str,
        vo: &str,
        person: &str,
        body: &Value,
    ) -> tokenledger_e2e::Reply {
        self.http().post_json(
            &format!("/v1/vos/{vo}/persons/{person}/erasure"),
            Some(secret),
            body,
        )
    }

    /// Erases `person` of atlas as its officer; the answer.
    fn erase(&self, person: &str) -> Value {
        let reply = self.erase_as(
            &self.officer,
            "atlas",
            person,
            &json!({"reason": "GDPR-17 #4"}),
        );
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.json()
    }

    /// Entries `start..end` as served to the admin.
    fn page(&self, start: u64, end: u64) -> Vec<Value> {
        let reply = self.http().get(
            &format!("/v1/log/entries?start={start}&end={end}"),
            Some(self.server.admin_secret()),
        );
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.json()["entries"].as_array().unwrap().clone()
    }

    /// The types of the entries of the VO's audit listing, as `auditor` reads it.
    fn audit_types(&self, vo: &str, auditor: &str) -> Vec<String> {
        let reply = self
            .http()
            .get(&format!("/v1/vos/{vo}/resolutions"), Some(auditor));
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.json()["resolutions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["entry"]["type"].as_str().unwrap().to_string())
            .collect()
    }
}

both_backends!(an_erased_persons_entries_are_redacted_logged_and_every_proof_still_verifies);
/// Alice has two tokens, a sighting and a pseudonym at CERN-PROD; bob has a token. Erasing
/// alice redacts her three entries in one `erasure` entry; her jtis answer 410, her
/// pseudonym 404; bob's token still resolves; atlas's auditors see the erasure, cms's do
/// not; `tokenledger verify` passes, a redacted entry's inclusion too.
fn an_erased_persons_entries_are_redacted_logged_and_every_proof_still_verifies() {
    let l = Ledger::start();
    let http = l.http();
    let log_key = l.server.log_key();
    let state = l.server.dir().join("trusted-checkpoint");
    let state = state.to_str().unwrap();
    let first = l.issue("alice-1", "alice");
    let second = l.issue("alice-2", "alice");
    l.issue("bob-1", "bob");
    let reporter = l
        .server
        .credential(&["--role", "reporter", "--site", "CERN-PROD"])
        .secret;
    let seen = http.post_json(
        "/v1/sites/CERN-PROD/sightings",
        Some(&reporter),
        &json!({"jti": "alice-1", "seen_at": now()}),
    );
    assert_eq!(seen.status, 201, "{seen:?}");
    let sighting = seen.json()["index"].as_u64().unwrap();
    let pseudonym = http.get(
        "/v1/sites/CERN-PROD/tokens/alice-1/pseudonym",
        Some(&l.site_admin),
    );
    assert_eq!(pseudonym.status, 200, "{pseudonym:?}");
    let pseudonym = pseudonym.json()["pseudonym"].as_str().unwrap().to_string();
    let resolve_pseudonym = || {
        http.get(
            &format!("/v1/vos/atlas/pseudonyms/{pseudonym}?reason=INC-9"),
            Some(&l.officer),
        )
    };
    assert_eq!(resolve_pseudonym().status, 200);
    let alice = l.person_of("alice-1");
    l.server
        .verify(&log_key, &["--state", state])
        .assert_verified();

    let answer = l.erase(&alice);
    assert_eq!(answer["person_id"], alice.as_str(), "{answer}");
    assert_eq!(answer["vo"], "atlas");
    assert_eq!(answer["redacted"], 3, "{answer}");
    assert_eq!(answer["kept"], json!([]), "{answer}");
    assert_eq!(answer["holds"], json!([]), "{answer}");
    let erasures = answer["erasures"].as_array().unwrap();
    assert_eq!(erasures.len(), 1, "{answer}");
    let by = erasures[0]["index"].as_u64().unwrap();
    assert_eq!(
        erasures[0]["ranges"],
        json!([[first, second + 1], [sighting, sighting + 1]]),
        "{answer}"
    );
    assert_eq!(erasures[0]["counts"], json!({"issuance": 2, "sighting": 1}));

    // The log: her entries redacted by the erasure entry, which says who, why and what.
    let served = l.page(0, http.log_size());
    for index in [first, second, sighting] {
        let entry = &served[index as usize];
        assert_eq!(entry["redacted"]["by"], by, "{entry}");
        assert!(entry.get("entry").is_none(), "{entry}");
    }
    assert_eq!(served[2]["entry"]["jti"], "bob-1", "bob's token is kept");
    let erasure = &served[by as usize]["entry"];
    assert_eq!(erasure["type"], "erasure", "{erasure}");
    assert_eq!(erasure["vo"], "atlas");
    assert_eq!(erasure["person_id"], alice.as_str());
    assert_eq!(erasure["reason"], "GDPR-17 #4");
    assert_eq!(erasure["ranges"], erasures[0]["ranges"]);
    assert!(
        erasure["requester"]
            .as_str()
            .unwrap()
            .starts_with("credential:")
    );

    // Resolving: her jtis are gone (410), her pseudonym unknown; bob's token resolves.
    l.resolve("alice-1").assert_error(410, "redacted");
    l.resolve("alice-2").assert_error(410, "redacted");
    assert_eq!(l.resolve("bob-1").status, 200);

    // The VO's auditors see the erasure; another VO's do not.
    let atlas_auditor = l.server.create_credential("auditor", Some("atlas"));
    let cms_auditor = l.server.create_credential("auditor", Some("cms"));
    assert!(
        l.audit_types("atlas", &atlas_auditor)
            .contains(&"erasure".to_string())
    );
    assert!(
        !l.audit_types("cms", &cms_auditor)
            .contains(&"erasure".to_string())
    );
    http.get("/v1/vos/atlas/resolutions", Some(&cms_auditor))
        .assert_error(403, "forbidden");

    // The independent checks: checkpoint, consistency with the trusted one, inclusion of a
    // redacted entry.
    let checked = l.server.verify(
        &log_key,
        &[
            "--state",
            state,
            "--entry",
            &first.to_string(),
            "--token",
            l.server.admin_secret(),
        ],
    );
    let checked = checked.assert_verified();
    assert_eq!(checked["entry_redacted"]["redacted"]["by"], by);

    // Erased, the person is no more: their pseudonym resolves to nothing, and there is no
    // one left to erase.
    resolve_pseudonym().assert_error(404, "not_found");
    l.erase_as(&l.officer, "atlas", &alice, &json!({"reason": "again"}))
        .assert_error(404, "not_found");
}

both_backends!(an_active_suspension_keeps_what_it_needs_until_the_lift);
/// Carol was suspended and lifted (su-0), then suspended again (su-1, active). Erasing her
/// redacts the first suspension and its lift, keeps her token, the active suspension's
/// entry and her identity, and says why; after su-1's lift a second erasure removes the rest.
fn an_active_suspension_keeps_what_it_needs_until_the_lift() {
    let l = Ledger::start();
    let http = l.http();
    let token = l.issue("carol-1", "carol");
    let suspend = || {
        let reply = http.post_json(
            "/v1/vos/atlas/suspensions",
            Some(&l.officer),
            &json!({"jti": "carol-1", "target": "person", "reason": "INC-10"}),
        );
        assert_eq!(reply.status, 201, "{reply:?}");
        reply.json()["id"].as_str().unwrap().to_string()
    };
    let lift = |id: &str| {
        let reply = http.send(
            "DELETE",
            &format!("/v1/vos/atlas/suspensions/{id}?reason=INC-10"),
            Some(&l.officer),
            None,
            None,
        );
        assert_eq!(reply.status, 200, "{reply:?}");
    };
    let first = suspend();
    lift(&first);
    let active = suspend();
    let carol = l.person_of("carol-1");
    let served = l.page(0, http.log_size());
    let index_of = |id: &str| {
        served
            .iter()
            .position(|e| e["entry"]["type"] == "suspension" && e["entry"]["suspension_id"] == id)
            .unwrap() as u64
    };
    let (first_index, active_index) = (index_of(&first), index_of(&active));

    let answer = l.erase(&carol);
    let because = format!("active suspension {active}");
    assert_eq!(answer["holds"], json!([because]), "{answer}");
    assert_eq!(
        answer["kept"],
        json!([
            {"index": token, "type": "issuance", "because": because},
            {"index": active_index, "type": "suspension", "because": because},
        ]),
        "{answer}"
    );
    assert_eq!(
        answer["redacted"], 2,
        "the first suspension and its lift: {answer}"
    );
    let erasure = &answer["erasures"][0];
    assert_eq!(erasure["ranges"], json!([[first_index, first_index + 2]]));
    assert_eq!(erasure["counts"], json!({"lift": 1, "suspension": 1}));
    // Her identity and token are kept while the suspension holds.
    assert_eq!(l.person_of("carol-1"), carol);
    let suspension = http.get("/v1/vos/atlas/suspensions", Some(&l.officer));
    assert!(suspension.body.contains(&active), "{suspension:?}");

    lift(&active);
    let answer = l.erase(&carol);
    assert_eq!(answer["kept"], json!([]), "{answer}");
    assert_eq!(answer["holds"], json!([]), "{answer}");
    assert_eq!(
        answer["redacted"], 3,
        "the token, su-1 and its lift: {answer}"
    );
    assert_eq!(
        answer["erasures"][0]["counts"],
        json!({"issuance": 1, "lift": 1, "suspension": 1})
    );
    l.resolve("carol-1").assert_error(410, "redacted");
}

both_backends!(only_the_vos_security_officers_erase_and_only_with_a_reason);
/// Another VO's officer, a site admin, the VO's auditor: 403. No reason, a blank one, an
/// unknown field: 400 JSON. No such person: 404. A person merged away: 409. Nothing erased
/// by any of them.
fn only_the_vos_security_officers_erase_and_only_with_a_reason() {
    let l = Ledger::start();
    l.issue("dave-1", "dave");
    l.issue("erin-1", "erin");
    let dave = l.person_of("dave-1");
    let erin = l.person_of("erin-1");
    let size = l.http().log_size();
    let reason = json!({"reason": "GDPR-17 #5"});
    let cms_officer = l.server.create_credential("vo-security", Some("cms"));
    let auditor = l.server.create_credential("auditor", Some("atlas"));
    for secret in [&cms_officer, &l.site_admin, &auditor] {
        l.erase_as(secret, "atlas", &dave, &reason)
            .assert_error(403, "forbidden");
    }
    for body in [
        json!({}),
        json!({"reason": "  "}),
        json!({"reason": "GDPR-17", "person": "pe-x"}),
    ] {
        l.erase_as(&l.officer, "atlas", &dave, &body)
            .assert_error(400, "bad_request");
    }
    assert_eq!(l.http().log_size(), size, "nothing logged");
    l.erase_as(&l.officer, "atlas", "pe-nobody", &reason)
        .assert_error(404, "not_found");
    let merged = l.http().post_json(
        &format!("/v1/vos/atlas/persons/{dave}/merge"),
        Some(&l.officer),
        &json!({"other": erin, "reason": "same person"}),
    );
    assert_eq!(merged.status, 200, "{merged:?}");
    let refused = l.erase_as(&l.officer, "atlas", &erin, &reason);
    refused.assert_error(409, "conflict");
    assert!(refused.body.contains(&dave), "{refused:?}");
    assert_eq!(l.resolve("dave-1").status, 200);
}

both_backends!(tokenledger_person_erase_prints_what_was_redacted);
/// `tokenledger person erase` as text and as JSON; a foreign officer's run exits 4.
fn tokenledger_person_erase_prints_what_was_redacted() {
    let l = Ledger::start();
    l.issue("frank-1", "frank");
    l.issue("grace-1", "grace");
    let frank = l.person_of("frank-1");
    let grace = l.person_of("grace-1");
    let erase = |secret: &str, person: &str, json: bool| {
        let mut args = vec![
            "person",
            "erase",
            person,
            "--vo",
            "atlas",
            "--reason",
            "GDPR-17 #6",
            "--server",
            l.server.url(),
            "--token",
            secret,
        ];
        if json {
            args.push("--json");
        }
        run_cli(&args)
    };
    let cms_officer = l.server.create_credential("vo-security", Some("cms"));
    let refused = erase(&cms_officer, &frank, false);
    assert_eq!(refused.status.code(), Some(4), "{refused:?}");
    let text = erase(&l.officer, &frank, false);
    let out = String::from_utf8_lossy(&text.stdout);
    assert_eq!(text.status.code(), Some(0), "{text:?}");
    assert!(
        out.starts_with(&format!("Person {frank} in VO atlas: 1 entries redacted\n")),
        "{out}"
    );
    assert!(
        out.contains("issuance=1") && out.contains("Nothing kept."),
        "{out}"
    );
    let json = erase(&l.officer, &grace, true);
    assert_eq!(json.status.code(), Some(0), "{json:?}");
    let answer: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(answer["person_id"], grace.as_str());
    assert_eq!(answer["redacted"], 1);
    l.resolve("grace-1").assert_error(410, "redacted");
}

both_backends!(a_person_with_more_entries_than_one_erasure_names_gets_several);
/// Heidi's 400 tokens alternate with ivan's: 400 ranges, more than one `erasure` entry has
/// room for. The answer lists every erasure entry; together they redact exactly heidi's.
fn a_person_with_more_entries_than_one_erasure_names_gets_several() {
    let l = Ledger::start();
    let reports: Vec<Value> = (0..800)
        .map(|n| {
            let sub = if n % 2 == 0 { "heidi" } else { "ivan" };
            token_of(&format!("{sub}-{n}"), sub)
        })
        .collect();
    let logged = l.http().append(&l.issuer, &Value::Array(reports));
    assert_eq!(logged.status, 201, "{logged:?}");
    let heidi = l.person_of("heidi-0");
    let answer = l.erase(&heidi);
    let erasures = answer["erasures"].as_array().unwrap();
    assert!(erasures.len() >= 2, "{answer}");
    assert_eq!(answer["redacted"], 400);
    let mut ranges = Vec::new();
    for erasure in erasures {
        let count = erasure["counts"]["issuance"].as_u64().unwrap();
        let these = erasure["ranges"].as_array().unwrap();
        assert_eq!(these.len() as u64, count, "one token a range: {erasure}");
        ranges.extend(
            these
                .iter()
                .map(|r| (r[0].as_u64().unwrap(), erasure["index"].clone())),
        );
    }
    assert_eq!(ranges.len(), 400);
    let served = l.page(0, 800);
    for (start, by) in ranges {
        assert_eq!(served[start as usize]["redacted"]["by"], by);
        assert_eq!(start % 2, 0, "only heidi's: {start}");
    }
    assert_eq!(l.resolve("ivan-1").status, 200);
    l.resolve("heidi-798").assert_error(410, "redacted");
}

both_backends!(a_pending_suspension_request_keeps_its_person_until_it_is_decided);
/// A site asked atlas to suspend judy: erasing her keeps the request and her token, redacts
/// nothing, and still logs the request (an `erasure` entry with no ranges). Once the request
/// is declined, the next erasure redacts the token, the request and the decision.
fn a_pending_suspension_request_keeps_its_person_until_it_is_decided() {
    let l = Ledger::start();
    let token = l.issue("judy-1", "judy");
    let judy = l.person_of("judy-1");
    let asked = l.http().post_json(
        "/v1/sites/CERN-PROD/suspension-requests",
        Some(&l.site_admin),
        &json!({"jti": "judy-1", "evidence": "seen on a worker node"}),
    );
    assert_eq!(asked.status, 201, "{asked:?}");
    let id = asked.json()["id"].as_str().unwrap().to_string();
    let request = l
        .page(0, l.http().log_size())
        .iter()
        .position(|e| e["entry"]["type"] == "suspension_request")
        .unwrap() as u64;

    let answer = l.erase(&judy);
    let because = format!("pending suspension request {id}");
    assert_eq!(answer["holds"], json!([because]), "{answer}");
    assert_eq!(
        answer["kept"],
        json!([
            {"index": token, "type": "issuance", "because": because},
            {"index": request, "type": "suspension_request", "because": because},
        ]),
        "{answer}"
    );
    assert_eq!(answer["redacted"], 0);
    let erasure = &answer["erasures"][0];
    assert_eq!(
        (erasure["ranges"].clone(), erasure["counts"].clone()),
        (json!([]), json!({}))
    );
    let logged = &l.page(0, l.http().log_size())[erasure["index"].as_u64().unwrap() as usize];
    assert_eq!(logged["entry"]["type"], "erasure", "{logged}");
    assert_eq!(l.person_of("judy-1"), judy);

    let declined = l.http().post_json(
        &format!("/v1/vos/atlas/suspension-requests/{id}/decline"),
        Some(&l.officer),
        &json!({"reason": "not enough"}),
    );
    assert_eq!(declined.status, 200, "{declined:?}");
    let answer = l.erase(&judy);
    assert_eq!(answer["kept"], json!([]), "{answer}");
    assert_eq!(
        answer["erasures"][0]["counts"],
        json!({"issuance": 1, "suspension_request": 1, "suspension_request_decline": 1}),
        "{answer}"
    );
    l.resolve("judy-1").assert_error(410, "redacted");
}

both_backends!(a_client_suspension_keeps_the_clients_tokens_of_the_person);
/// Atlas suspended client `rucio`: erasing kim keeps her rucio token (and so her identity),
/// saying which suspension needs it, and redacts her other token.
fn a_client_suspension_keeps_the_clients_tokens_of_the_person() {
    let l = Ledger::start();
    let mut claims = token_of("kim-rucio", "kim");
    claims["claims"]["client_id"] = json!("rucio");
    let reply = l.http().append(&l.issuer, &claims);
    assert_eq!(reply.status, 201, "{reply:?}");
    let rucio_token = reply.json()["index"].as_u64().unwrap();
    let other = l.issue("kim-2", "kim");
    let suspended = l.http().post_json(
        "/v1/vos/atlas/suspensions",
        Some(&l.officer),
        &json!({"client": "rucio", "iss": issuer_of("atlas"), "reason": "INC-12"}),
    );
    assert_eq!(suspended.status, 201, "{suspended:?}");
    let id = suspended.json()["id"].as_str().unwrap().to_string();
    let kim = l.person_of("kim-2");

    let answer = l.erase(&kim);
    assert_eq!(answer["holds"], json!([]), "not a hold on kim: {answer}");
    assert_eq!(
        answer["kept"],
        json!([{"index": rucio_token, "type": "issuance", "because": format!("active suspension {id}")}]),
        "{answer}"
    );
    assert_eq!(answer["erasures"][0]["ranges"], json!([[other, other + 1]]));
    l.resolve("kim-2").assert_error(410, "redacted");
    assert_eq!(
        l.person_of("kim-rucio"),
        kim,
        "her identity is kept with the token"
    );
}

/// `tokenledger-server fsck` (SQLite) finds a ledger with an erasure clean: the erasure's row
/// in the VO's audit listing (`resolutions`) is one an erasure entry has.
#[test]
fn fsck_finds_an_erased_ledger_clean() {
    let l = Ledger::start();
    l.issue("leo-1", "leo");
    l.issue("mia-1", "mia");
    let leo = l.person_of("leo-1");
    l.erase(&leo);
    let out = l.server.admin_command(&["fsck"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{out:?}");
    assert!(stdout.starts_with("fsck: clean: "), "{stdout}");
}
