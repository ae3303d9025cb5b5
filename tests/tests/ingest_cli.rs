//! `tokenledger ingest` end to end: the real CLI ships real feeds (100,000 signed JWTs, an INDIGO
//! IAM audit log, Keycloak events, a followed and rotated log) to the real server.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Instant;

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokenledger_e2e::both_backends;
use tokenledger_e2e::ingest::{ingest, saved_offset, stdout, terminate, wait_until};
use tokenledger_e2e::issuer::{TestIssuer, now_secs};
use tokenledger_e2e::{TestServer, spawn_cli};

const ATLAS_ISS: &str = "https://atlas-auth.example/";
const KEYCLOAK_ISS: &str = "https://aai.egi.example/auth/realms/egi";

/// A server that verifies the atlas issuer's JWTs (one VO per issuer, keys from a file).
fn server_with_issuer(dir: &Path, issuer: &TestIssuer) -> TestServer {
    let jwks = dir.join("atlas-jwks.json");
    issuer.write_jwks(&jwks);
    let config = issuer.config_block(
        &format!("jwks_file = \"{}\"", jwks.display()),
        "[{ rule = \"fixed\", vo = \"atlas\" }]",
    );
    TestServer::start_with_config(&dir.join("data"), &config)
}

/// Every entry of the log, by jti; panics if a jti is logged twice.
fn entries_by_jti(server: &TestServer) -> HashMap<String, Value> {
    let size = server.log_size();
    let mut by_jti = HashMap::new();
    for served in server.http().entries(server.admin_secret(), 0, size) {
        if served.entry["type"] != "issuance" {
            continue;
        }
        let jti = served.jti().to_string();
        let mut entry = served.entry.clone();
        entry["index"] = served.index.into();
        assert!(
            by_jti.insert(jti.clone(), entry).is_none(),
            "{jti} is logged twice"
        );
    }
    by_jti
}

both_backends!(a_bulk_import_of_100000_jwts_is_accepted_and_verifies);
fn a_bulk_import_of_100000_jwts_is_accepted_and_verifies() {
    const COUNT: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let atlas = TestIssuer::new(ATLAS_ISS);
    let server = server_with_issuer(dir.path(), &atlas);
    let issuer = server.create_credential("issuer", Some("atlas"));

    let started = Instant::now();
    let tokens = dir.path().join("tokens.jwt");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&tokens).unwrap());
    for i in 0..COUNT {
        let claims = atlas.claims(&format!("bulk-{i}"), &format!("user-{}", i % 500));
        writeln!(out, "{}", atlas.mint(Algorithm::EdDSA, &claims)).unwrap();
    }
    out.flush().unwrap();
    drop(out);
    let minted = started.elapsed();

    let run = ingest(
        &server,
        &issuer,
        &["--format", "jwt-lines", tokens.to_str().unwrap()],
    );
    let shipped = started.elapsed() - minted;
    assert_eq!(run.status.code(), Some(0), "{run:?}\n{}", server.log_tail());
    assert_eq!(
        stdout(&run),
        format!("accepted={COUNT} duplicates=0 rejected=0 skipped=0")
    );
    assert_eq!(server.log_size(), COUNT as u64);
    server.verify(&server.log_key(), &[]).assert_verified();
    eprintln!("minted {COUNT} EdDSA tokens in {minted:?}, ingested them in {shipped:?}");
}

/// An INDIGO IAM AUDIT logger line: logback's prefix, then the event's JSON.
fn iam_line(prefix: bool, event: &Value) -> String {
    let prefix = if prefix {
        "2026-01-01 12:00:00.000 [http-nio-8080-exec-7] INFO  AUDIT - "
    } else {
        ""
    };
    format!("{prefix}{event}\n")
}

fn iam_issued(jti: &str, sub: &str, username: &str, grant: &str, extra: Value) -> Value {
    let now = now_secs();
    let mut payload = json!({
        "iss": ATLAS_ISS, "sub": sub, "jti": jti, "client_id": "rucio",
        "scope": "openid storage.read:/ compute.create", "aud": "https://wlcg.cern.ch/jwt/v1/any",
        "wlcg.groups": ["/atlas"], "iat": now, "nbf": now, "exp": now + 3600,
    });
    for (k, v) in extra.as_object().unwrap() {
        payload[k] = v.clone();
    }
    json!({
        "timestamp": now * 1000, "@type": "AccessTokenIssuedEvent", "category": "TOKEN",
        "principal": username, "message": "Issue access token", "scopes": ["openid"],
        "subject": username, "grantType": grant, "header": {"alg": "RS256", "kid": "rsa1"},
        "payload": payload, "refreshTokenJti": format!("rt-of-{jti}"),
        "source": "IamTokenService",
    })
}

both_backends!(an_iam_audit_log_imports_its_issuances_with_their_claims_and_chain);
fn an_iam_audit_log_imports_its_issuances_with_their_claims_and_chain() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("data"));
    let issuer = server
        .credential(&["--role", "issuer", "--vo", "atlas", "--issuer", ATLAS_ISS])
        .secret;
    let mut text = String::new();
    text += &iam_line(
        true,
        &iam_issued(
            "iam-1",
            "7f1c-alice",
            "alice",
            "authorization_code",
            json!({}),
        ),
    );
    text += &iam_line(
        false,
        &json!({"timestamp": 1, "@type": "RefreshTokenIssuedEvent", "category": "TOKEN",
                "payload": {"jti": "rt-of-iam-1"}}),
    );
    text += &iam_line(
        true,
        &iam_issued("iam-2", "7f1c-alice", "alice", "refresh_token", json!({})),
    );
    text += &iam_line(
        true,
        &iam_issued(
            "iam-3",
            "7f1c-alice",
            "rucio",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            json!({"act": {"sub": "rucio"}}),
        ),
    );
    let mut no_jti = iam_issued("x", "s", "bob", "authorization_code", json!({}));
    no_jti["payload"].as_object_mut().unwrap().remove("jti");
    text += &iam_line(true, &no_jti);
    text += &iam_line(
        true,
        &json!({"@type": "AccountUpdateEvent", "category": "ACCOUNT", "principal": "admin"}),
    );
    let log = dir.path().join("iam-audit.log");
    std::fs::write(&log, text).unwrap();
    let rejects = dir.path().join("rejects.jsonl");
    let receipts = dir.path().join("receipts.jsonl");

    let run = ingest(
        &server,
        &issuer,
        &[
            "--format",
            "iam-audit",
            "--rejects",
            rejects.to_str().unwrap(),
            "--receipts",
            receipts.to_str().unwrap(),
            log.to_str().unwrap(),
        ],
    );
    assert_eq!(run.status.code(), Some(1), "a line was rejected: {run:?}");
    assert_eq!(stdout(&run), "accepted=3 duplicates=0 rejected=1 skipped=2");
    let rejected: Value =
        serde_json::from_str(std::fs::read_to_string(&rejects).unwrap().trim()).unwrap();
    assert_eq!(rejected["line"], 5);
    assert_eq!(rejected["code"], "missing_jti");

    let entries = entries_by_jti(&server);
    assert_eq!(entries.len(), 3);
    let first = &entries["iam-1"];
    assert_eq!(
        first["sub"], "7f1c-alice",
        "the token's sub, not the username"
    );
    assert_eq!(first["iss"], ATLAS_ISS);
    assert_eq!(first["client_id"], "rucio");
    assert_eq!(first["vo"], "atlas");
    assert_eq!(first["source"], "claims");
    assert_eq!(first["feed"], "iam-audit");
    assert_eq!(first["grant_type"], "authorization_code");
    assert_eq!(first["refresh_jti"], "rt-of-iam-1");
    assert_eq!(first["groups"], json!(["/atlas"]));
    assert_eq!(entries["iam-2"]["grant_type"], "refresh_token");
    assert_eq!(entries["iam-3"]["grant_type"], "token-exchange");
    assert_eq!(entries["iam-3"]["act"], json!({"sub": "rucio"}));

    let receipt = dir.path().join("receipt-2.json");
    let line = std::fs::read_to_string(&receipts)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    std::fs::write(&receipt, line).unwrap();
    let checked = server.verify(&server.log_key(), &["--receipt", receipt.to_str().unwrap()]);
    checked.assert_verified();
    assert_eq!(checked.json["receipt"]["verified"], true);
    assert_eq!(checked.json["receipt"]["index"], entries["iam-2"]["index"]);
}

fn keycloak_event(id: &str, event_type: &str, user: &str, details: Value) -> Value {
    json!({
        "id": id, "time": now_secs() * 1000 + 123, "type": event_type, "realmId": "egi",
        "clientId": "biomed-portal", "userId": user, "sessionId": "5c1e-session",
        "ipAddress": "192.0.2.10", "details": details,
    })
}

both_backends!(keycloak_events_import_as_an_array_or_one_event_a_line);
fn keycloak_events_import_as_an_array_or_one_event_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("data"));
    let issuer = server
        .credential(&[
            "--role",
            "issuer",
            "--vo",
            "biomed",
            "--issuer",
            KEYCLOAK_ISS,
        ])
        .secret;
    let events = json!([
        keycloak_event(
            "e1",
            "CODE_TO_TOKEN",
            "u-alice",
            json!({
            "token_id": "kc-1", "refresh_token_id": "kc-rt-1", "grant_type": "authorization_code",
            "scope": "openid eduperson_entitlement", "username": "alice"})
        ),
        keycloak_event(
            "e2",
            "CODE_TO_TOKEN_ERROR",
            "u-alice",
            json!({"token_id": "kc-x"})
        ),
        keycloak_event(
            "e3",
            "REFRESH_TOKEN",
            "u-alice",
            json!({
            "token_id": "kc-2", "refresh_token_id": "kc-rt-1", "updated_refresh_token_id": "kc-rt-2",
            "scope": "openid"})
        ),
        keycloak_event("e4", "LOGOUT", "u-alice", json!({})),
        keycloak_event(
            "e5",
            "CLIENT_LOGIN",
            "u-service-account",
            json!({
            "token_id": "kc-3", "grant_type": "client_credentials", "scope": "openid",
            "client_auth_method": "client-secret"})
        ),
        keycloak_event(
            "e6",
            "TOKEN_EXCHANGE",
            "u-alice",
            json!({
            "token_id": "kc-4", "audience": "https://storage.example/", "scope": "openid"})
        ),
    ]);
    let array = dir.path().join("events.json");
    std::fs::write(&array, serde_json::to_string_pretty(&events).unwrap()).unwrap();

    let run = ingest(
        &server,
        &issuer,
        &[
            "--format",
            "keycloak-events",
            "--issuer",
            KEYCLOAK_ISS,
            array.to_str().unwrap(),
        ],
    );
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    assert_eq!(stdout(&run), "accepted=4 duplicates=0 rejected=0 skipped=2");
    let entries = entries_by_jti(&server);
    assert_eq!(entries.len(), 4);
    let code = &entries["kc-1"];
    assert_eq!(code["iss"], KEYCLOAK_ISS);
    assert_eq!(code["sub"], "u-alice");
    assert_eq!(code["client_id"], "biomed-portal");
    assert_eq!(code["vo"], "biomed");
    assert_eq!(code["feed"], "keycloak-events");
    assert_eq!(code["grant_type"], "authorization_code");
    assert_eq!(code["refresh_jti"], "kc-rt-1");
    assert_eq!(code["iat"], now_secs_of(&events[0]));
    assert_eq!(entries["kc-2"]["grant_type"], "refresh_token");
    assert_eq!(entries["kc-2"]["refresh_jti"], "kc-rt-2");
    assert_eq!(entries["kc-3"]["grant_type"], "client_credentials");
    assert_eq!(entries["kc-3"]["sub"], "u-service-account");
    assert_eq!(entries["kc-4"]["grant_type"], "token-exchange");
    assert_eq!(entries["kc-4"]["aud"], json!(["https://storage.example/"]));

    let lines: String = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{e}\n"))
        .collect();
    let per_line = dir.path().join("events.ndjson");
    std::fs::write(&per_line, lines).unwrap();
    let again = ingest(
        &server,
        &issuer,
        &[
            "--format",
            "keycloak-events",
            "--issuer",
            KEYCLOAK_ISS,
            "--quiet",
            per_line.to_str().unwrap(),
        ],
    );
    assert_eq!(again.status.code(), Some(0), "{again:?}");
    assert_eq!(
        stdout(&again),
        "accepted=0 duplicates=4 rejected=0 skipped=2"
    );
    assert_eq!(entries_by_jti(&server).len(), 4);
}

fn now_secs_of(event: &Value) -> i64 {
    event["time"].as_i64().unwrap() / 1000
}

/// `tokenledger ingest --follow` as a child process.
fn spawn_follow(server: &TestServer, token: &str, log: &Path, state: &Path) -> Child {
    let (state, log) = (state.to_str().unwrap(), log.to_str().unwrap());
    spawn_cli([
        "ingest",
        "--server",
        server.url(),
        "--token",
        token,
        "--format",
        "iam-audit",
        "--follow",
        "--state",
        state,
        log,
    ])
}

fn append(path: &Path, jtis: std::ops::Range<usize>) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in jtis {
        let event = iam_issued(
            &format!("follow-{i}"),
            &format!("sub-{i}"),
            "alice",
            "authorization_code",
            json!({}),
        );
        file.write_all(iam_line(true, &event).as_bytes()).unwrap();
    }
}

both_backends!(following_a_log_ships_new_lines_once_across_restarts_and_rotation);
fn following_a_log_ships_new_lines_once_across_restarts_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("data"));
    let issuer = server
        .credential(&["--role", "issuer", "--vo", "atlas", "--issuer", ATLAS_ISS])
        .secret;
    let log: PathBuf = dir.path().join("audit.log");
    let state = dir.path().join("follow.state");
    append(&log, 0..3);

    let follower = spawn_follow(&server, &issuer, &log, &state);
    wait_until("the first lines are logged", || server.log_size() == 3);
    append(&log, 3..5);
    wait_until("lines appended after start are logged", || {
        server.log_size() == 5
    });
    let length = std::fs::metadata(&log).unwrap().len();
    wait_until("the state file covers the whole log", || {
        saved_offset(&state) == Some(length)
    });
    let mut follower = follower;
    follower.kill().unwrap();
    follower.wait().unwrap();

    append(&log, 5..7);
    let follower = spawn_follow(&server, &issuer, &log, &state);
    wait_until("lines written while stopped are logged", || {
        server.log_size() == 7
    });
    let rotated = dir.path().join("audit.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    append(&rotated, 7..8);
    append(&log, 8..10);
    wait_until("the rotated and the new file are logged", || {
        server.log_size() == 10
    });
    let out = terminate(follower);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        stdout(&out),
        "accepted=5 duplicates=0 rejected=0 skipped=0",
        "the restart resumed at the saved offset: {out:?}"
    );

    let entries = entries_by_jti(&server);
    let mut jtis: Vec<&String> = entries.keys().collect();
    jtis.sort();
    let expected: Vec<String> = (0..10).map(|i| format!("follow-{i}")).collect();
    assert_eq!(jtis, expected.iter().collect::<Vec<_>>());
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&log).unwrap();
    assert_eq!(saved["inode"], meta.ino());
    assert_eq!(saved["offset"], meta.len());
}
