//! Retention end to end, on both backends: with periods of a few seconds, the writer's
//! retention run redacts issuances whose period has passed and whose token expired (a
//! suspended person's only after the lift); the independent checks (`tokenledger verify`: the checkpoint,
//! consistency with a trusted one, inclusion of a redacted and of a kept entry, an issuer's
//! receipt of a redacted entry) still pass; resolving a redacted jti answers 410.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokenledger_e2e::{TestServer, both_backends, issuer_of, report, run_cli};

/// Retention every second; issuances and sightings kept 2 seconds; a site of atlas.
const CONFIG: &str = "[retention]\nrun_every = \"1s\"\nissuance = \"2s\"\nsighting = \"2s\"\n\
                      [[site]]\nname = \"CERN-PROD\"\nvos = [\"atlas\"]\n";

/// Unix seconds.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An issuance report of atlas for `sub` whose token expires at `exp`.
fn token_of(jti: &str, sub: &str, exp: u64) -> Value {
    json!({
        "claims": {
            "jti": jti,
            "iss": issuer_of("atlas"),
            "sub": sub,
            "vo": "atlas",
            "iat": now(),
            "exp": exp,
        }
    })
}

/// An issuance report of atlas whose token expires a second from now.
fn short_lived(jti: &str) -> Value {
    token_of(jti, "alice", now() + 1)
}

/// Waits (at most 30 s) until entry `index` is served redacted; the page `0..size` then.
fn until_redacted(server: &TestServer, index: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let served = page(server, 0, server.http().log_size());
        if served[index].get("redacted").is_some() {
            return served;
        }
        assert!(
            Instant::now() < deadline,
            "entry {index} was not redacted: {served:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Entries `start..end` as served (JSON).
fn page(server: &TestServer, start: u64, end: u64) -> Vec<Value> {
    let reply = server.http().get(
        &format!("/v1/log/entries?start={start}&end={end}"),
        Some(server.admin_secret()),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json()["entries"].as_array().unwrap().clone()
}

both_backends!(entries_past_their_period_are_redacted_and_every_proof_still_verifies);
/// Two short-lived issuances are redacted by one retention run; an issuance whose token is
/// still valid is kept. Every independent check still passes, and the redacted jti answers
/// 410 `redacted`, logged as a resolution.
fn entries_past_their_period_are_redacted_and_every_proof_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with_config(&dir.path().join("data"), CONFIG);
    let http = server.http();
    let issuer = server.create_issuer("atlas");
    let officer = server.create_credential("vo-security", Some("atlas"));
    let log_key = server.log_key();
    let state = dir.path().join("trusted-checkpoint");
    let state = state.to_str().unwrap();

    let first = http.append(&issuer, &short_lived("old-1"));
    assert_eq!(first.status, 201, "{first:?}");
    let receipt = dir.path().join("receipt.json");
    std::fs::write(&receipt, &first.body).unwrap();
    assert_eq!(http.append(&issuer, &short_lived("old-2")).status, 201);
    assert_eq!(http.append(&issuer, &report("live", "atlas")).status, 201);
    let before = page(&server, 0, 3);
    server
        .verify(&log_key, &["--state", state])
        .assert_verified();

    // The writer's next runs redact entries 0 and 1 in one `redaction` entry.
    let deadline = Instant::now() + Duration::from_secs(30);
    let served = loop {
        let size = http.log_size();
        let served = page(&server, 0, size);
        // Redacted, and the redaction entry within the page (the size read may be older
        // than the entries served).
        let by = served[1]["redacted"]["by"].as_u64();
        if by.is_some_and(|by| by < served.len() as u64) {
            break served;
        }
        assert!(
            Instant::now() < deadline,
            "nothing was redacted: {served:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    for (index, entry) in served.iter().enumerate().take(2) {
        assert_eq!(entry["index"], index as u64);
        let leaf_hash = entry["leaf_hash"].as_str().unwrap();
        assert_eq!(
            entry.as_object().unwrap().len(),
            3,
            "only index, leaf_hash and redacted: {entry}"
        );
        assert!(entry.get("leaf").is_none() && entry.get("entry").is_none());
        assert_eq!(entry["redacted"].as_object().unwrap().len(), 2, "{entry}");
        assert!(entry["redacted"]["at"].as_i64().unwrap() > 0);
        assert!(!leaf_hash.is_empty());
    }
    assert_eq!(served[0]["leaf_hash"], first.json()["leaf_hash"]);
    let by = served[0]["redacted"]["by"].as_u64().unwrap();
    assert_eq!(served[1]["redacted"]["by"], by);
    assert_eq!(served[2], before[2], "the valid token's issuance is kept");
    let run = &served[by as usize]["entry"];
    assert_eq!(run["type"], "redaction", "{run}");
    assert_eq!(run["ranges"], json!([[0, 2]]));
    assert_eq!(run["counts"], json!({"issuance": 2}));
    assert_eq!(run["policy"]["periods"]["issuance"], 2);

    // The independent checks: the checkpoint, consistency with the trusted one, inclusion
    // of a redacted entry (its stored leaf hash) and of a kept one, a redacted entry's receipt.
    let admin = server.admin_secret();
    let entry = |index: &str| {
        server.verify(
            &log_key,
            &["--state", state, "--entry", index, "--token", admin],
        )
    };
    let redacted = entry("0");
    let redacted = redacted.assert_verified();
    assert_eq!(redacted["entry"], 0);
    assert_eq!(redacted["entry_redacted"]["redacted"]["by"], by);
    assert!(redacted["consistent_with"].as_u64().unwrap() >= 3);
    let text = run_cli(&[
        "verify",
        "--server",
        server.url(),
        "--log-key",
        &log_key,
        "--entry",
        "1",
        "--token",
        admin,
    ]);
    let text_out = String::from_utf8_lossy(&text.stdout);
    assert_eq!(text.status.code(), Some(0), "{text:?}");
    assert!(
        text_out.contains("entry 1 is included; it is redacted"),
        "{text_out}"
    );
    let kept = entry("2");
    assert!(kept.assert_verified().get("entry_redacted").is_none());
    server
        .verify(&log_key, &["--receipt", receipt.to_str().unwrap()])
        .assert_verified();

    // Resolving: a redacted jti is gone (410), never unknown; a kept one resolves. Both are
    // logged.
    let size = http.log_size();
    let resolve = |jti: &str| {
        http.get(
            &format!("/v1/vos/atlas/tokens/{jti}?reason=INC-7"),
            Some(&officer),
        )
    };
    let gone = resolve("old-1");
    gone.assert_error(410, "redacted");
    assert!(gone.body.contains("redacted after retention"), "{gone:?}");
    assert_eq!(resolve("live").status, 200);
    resolve("never-logged").assert_error(404, "not_found");
    let logged = page(&server, size, http.log_size());
    let resolutions: Vec<&Value> = logged
        .iter()
        .filter(|e| e["entry"]["type"] == "resolution")
        .collect();
    assert_eq!(resolutions.len(), 3, "{logged:?}");
    assert_eq!(resolutions[0]["entry"]["target"], "old-1");
    assert_eq!(resolutions[0]["entry"]["revealed"], 0);

    // Reported again, a redacted issuance is refused (`redacted`, naming its entry), not
    // logged anew: alone, in a JSON batch (the whole batch), and as an NDJSON line (that
    // line only).
    let size = http.log_size();
    let again = http.append(&issuer, &short_lived("old-1"));
    again.assert_error(410, "redacted");
    assert!(again.body.contains("logged at entry 0"), "{again:?}");
    let batch = http.append(
        &issuer,
        &json!([report("live", "atlas"), short_lived("old-2")]),
    );
    batch.assert_error(410, "redacted");
    assert!(
        batch
            .body
            .contains("report 1: this issuance was logged at entry 1"),
        "{batch:?}"
    );
    let lines = format!("{}\n{}\n", short_lived("old-2"), short_lived("new-1"));
    let reply = http.send(
        "POST",
        "/v1/issuances",
        Some(&issuer),
        Some("application/x-ndjson"),
        Some(lines.as_bytes()),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    let lines: Vec<Value> = reply
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["line"], 1, "{reply:?}");
    assert_eq!(lines[0]["error"]["code"], "redacted");
    assert_eq!(lines[1]["status"], "created", "{reply:?}");
    assert_eq!(http.log_size(), size + 1, "only the new report was logged");

    // A site naming the redacted jti (its pseudonym, a suspension, a request, a sighting)
    // hears that it was redacted, never that it is unknown.
    let site_admin = server
        .credential(&["--role", "site-admin", "--site", "CERN-PROD"])
        .secret;
    let pseudonym = |jti: &str| {
        http.get(
            &format!("/v1/sites/CERN-PROD/tokens/{jti}/pseudonym"),
            Some(&site_admin),
        )
    };
    pseudonym("old-2").assert_error(410, "redacted");
    pseudonym("never-logged").assert_error(404, "not_found");
    assert_eq!(pseudonym("live").status, 200);
    for (path, body) in [
        (
            "/v1/sites/CERN-PROD/suspensions",
            json!({"jti": "old-1", "reason": "INC-7"}),
        ),
        (
            "/v1/sites/CERN-PROD/suspension-requests",
            json!({"jti": "old-1", "evidence": "seen on a worker node"}),
        ),
    ] {
        http.post_json(path, Some(&site_admin), &body)
            .assert_error(410, "redacted");
    }
    // `tokenledger ingest` of a site's job ads: the redacted token's ad is that ad's reject
    // (`redacted`), the run goes on and logs the live token's.
    let reporter = server
        .credential(&["--role", "reporter", "--site", "CERN-PROD"])
        .secret;
    let ads = dir.path().join("ads.jsonl");
    let iss = issuer_of("atlas");
    let ad = |jti: &str| json!({"AuthTokenId": jti, "AuthTokenIssuer": iss, "QDate": now()});
    std::fs::write(&ads, format!("{}\n{}\n", ad("old-2"), ad("live"))).unwrap();
    let rejects = dir.path().join("rejects.jsonl");
    let run = run_cli(&[
        "ingest",
        "--server",
        server.url(),
        "--token",
        &reporter,
        "--format",
        "htcondor-history",
        "--site",
        "CERN-PROD",
        "--rejects",
        rejects.to_str().unwrap(),
        ads.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(1), "one ad rejected: {run:?}");
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        "accepted=1 duplicates=0 rejected=1 skipped=0"
    );
    let reject: Value =
        serde_json::from_str(std::fs::read_to_string(&rejects).unwrap().trim()).unwrap();
    assert_eq!(
        (reject["line"].as_u64(), reject["code"].as_str()),
        (Some(1), Some("redacted"))
    );
}

both_backends!(a_suspended_persons_issuances_are_kept_until_the_lift_and_their_period);
/// While a person is suspended, all their issuances are kept past their period and their
/// tokens' expiry, not only the token the suspension was made from; another person's are
/// redacted. Once the suspension is lifted, the next runs redact them too.
fn a_suspended_persons_issuances_are_kept_until_the_lift_and_their_period() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with_config(&dir.path().join("data"), CONFIG);
    let http = server.http();
    let issuer = server.create_issuer("atlas");
    let officer = server.create_credential("vo-security", Some("atlas"));
    let bob_expires = now() + 4;
    assert_eq!(http.append(&issuer, &short_lived("alice-1")).status, 201);
    let bob = http.append(&issuer, &token_of("bob-1", "bob", bob_expires));
    assert_eq!(bob.status, 201, "{bob:?}");
    let bobs_other = http.append(&issuer, &token_of("bob-2", "bob", bob_expires));
    assert_eq!(bobs_other.status, 201, "{bobs_other:?}");
    // The person behind bob-1 (the default target), not the token.
    let suspended = http.post_json(
        "/v1/vos/atlas/suspensions",
        Some(&officer),
        &json!({"jti": "bob-1", "target": "person", "reason": "INC-8"}),
    );
    assert_eq!(suspended.status, 201, "{suspended:?}");
    assert_eq!(suspended.json()["target"], "person", "{suspended:?}");
    assert!(suspended.json()["person"].is_string(), "{suspended:?}");
    let id = suspended.json()["id"].as_str().unwrap().to_string();

    until_redacted(&server, 0);
    // Past bob's tokens' expiry and period, and a few runs later: both still kept.
    while now() < bob_expires + 3 {
        std::thread::sleep(Duration::from_millis(200));
    }
    let served = page(&server, 0, http.log_size());
    for (index, jti) in [(1, "bob-1"), (2, "bob-2")] {
        assert!(
            served[index].get("redacted").is_none(),
            "{:?}",
            served[index]
        );
        assert_eq!(served[index]["entry"]["jti"], jti);
    }

    let lifted = http.send(
        "DELETE",
        &format!("/v1/vos/atlas/suspensions/{id}?reason=INC-8"),
        Some(&officer),
        None,
        None,
    );
    assert_eq!(lifted.status, 200, "{lifted:?}");
    until_redacted(&server, 1);
    let served = until_redacted(&server, 2);
    assert_eq!(served[1]["leaf_hash"], bob.json()["leaf_hash"]);
    assert_eq!(served[2]["leaf_hash"], bobs_other.json()["leaf_hash"]);
    let suspension = served
        .iter()
        .find(|e| e["entry"]["type"] == "suspension")
        .expect("the suspension's entry is an audit entry, kept");
    assert_eq!(suspension["entry"]["suspension_id"], id.as_str());
}

/// `tokenledger-server fsck` (SQLite) finds a ledger with redacted entries clean: their
/// stored hashes stand for their leaves.
#[test]
fn fsck_finds_a_redacted_ledger_clean() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with_config(&dir.path().join("data"), CONFIG);
    let issuer = server.create_issuer("atlas");
    for jti in ["old-1", "old-2"] {
        assert_eq!(server.http().append(&issuer, &short_lived(jti)).status, 201);
    }
    assert_eq!(
        server
            .http()
            .append(&issuer, &report("live", "atlas"))
            .status,
        201
    );
    until_redacted(&server, 1);
    let out = server.admin_command(&["fsck"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{out:?}");
    assert!(stdout.starts_with("fsck: clean: "), "{stdout}");
}

both_backends!(a_persons_identities_and_pseudonym_go_with_their_last_entries);
/// Once every entry that needs a person is redacted, the person's identities and the
/// pseudonyms sites were given go too: the pseudonym no longer resolves for the VO (404).
/// A suspended person's stay while the suspension is active; after its lift, once the
/// suspension's own entry is redacted too (its period), they go. An identity that went and
/// issues again is a new person.
fn a_persons_identities_and_pseudonym_go_with_their_last_entries() {
    let dir = tempfile::tempdir().unwrap();
    let config = CONFIG.replace(
        "sighting = \"2s\"\n",
        "sighting = \"2s\"\nsuspension = \"3s\"\nlift = \"3s\"\n",
    );
    let server = TestServer::start_with_config(&dir.path().join("data"), &config);
    let http = server.http();
    let issuer = server.create_issuer("atlas");
    let officer = server.create_credential("vo-security", Some("atlas"));
    let site_admin = server
        .credential(&["--role", "site-admin", "--site", "CERN-PROD"])
        .secret;
    let bob_expires = now() + 2;
    assert_eq!(http.append(&issuer, &short_lived("alice-1")).status, 201);
    let bob = http.append(&issuer, &token_of("bob-1", "bob", bob_expires));
    assert_eq!(bob.status, 201, "{bob:?}");
    let pseudonym_of = |jti: &str| {
        let reply = http.get(
            &format!("/v1/sites/CERN-PROD/tokens/{jti}/pseudonym"),
            Some(&site_admin),
        );
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.json()["pseudonym"].as_str().unwrap().to_string()
    };
    let (alice, bobs) = (pseudonym_of("alice-1"), pseudonym_of("bob-1"));
    let resolve = |pseudonym: &str| {
        http.get(
            &format!("/v1/vos/atlas/pseudonyms/{pseudonym}?reason=INC-9"),
            Some(&officer),
        )
    };
    let resolved = resolve(&alice);
    assert_eq!(resolved.status, 200, "{resolved:?}");
    assert_eq!(resolved.json()["identities"][0]["sub"], "alice");
    let suspended = http.post_json(
        "/v1/vos/atlas/suspensions",
        Some(&officer),
        &json!({"jti": "bob-1", "target": "person", "reason": "INC-9"}),
    );
    assert_eq!(suspended.status, 201, "{suspended:?}");
    let id = suspended.json()["id"].as_str().unwrap().to_string();

    // Alice's only issuance redacted: her pseudonym no longer resolves.
    until_redacted(&server, 0);
    resolve(&alice).assert_error(404, "not_found");
    // Bob, suspended, past his token's expiry and period: kept, and resolves.
    while now() < bob_expires + 3 {
        std::thread::sleep(Duration::from_millis(200));
    }
    let resolved = resolve(&bobs);
    assert_eq!(resolved.status, 200, "{resolved:?}");
    assert_eq!(resolved.json()["identities"][0]["sub"], "bob");

    let suspension = page(&server, 0, http.log_size())
        .iter()
        .position(|e| e["entry"]["type"] == "suspension")
        .expect("the suspension's entry");
    let lifted = http.send(
        "DELETE",
        &format!("/v1/vos/atlas/suspensions/{id}?reason=INC-9"),
        Some(&officer),
        None,
        None,
    );
    assert_eq!(lifted.status, 200, "{lifted:?}");
    // Once bob's issuance and the suspension's entry (which blocklists and audits of the
    // suspension need) are redacted, his identities and pseudonym go.
    until_redacted(&server, 1);
    until_redacted(&server, suspension);
    resolve(&bobs).assert_error(404, "not_found");

    // Bob issues again: a new person, with a new pseudonym at the site.
    assert_eq!(
        http.append(&issuer, &token_of("bob-2", "bob", now() + 3600))
            .status,
        201
    );
    let again = pseudonym_of("bob-2");
    assert_ne!(again, bobs, "a new person, not the one that went");
    let resolved = resolve(&again);
    assert_eq!(resolved.status, 200, "{resolved:?}");
    assert_eq!(resolved.json()["identities"][0]["sub"], "bob");
}
