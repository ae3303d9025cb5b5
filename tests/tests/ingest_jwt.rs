//! Ingest of real signed JWTs through the real server: signature checks against the issuer's
//! JWKS (file and HTTP), VO derivation, persons, chains, receipts, and every kind of bad token.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokenledger_e2e::both_backends;
use tokenledger_e2e::issuer::{JwksServer, TestIssuer, now_secs};
use tokenledger_e2e::{Reply, TestServer, db, run_cli};

const ATLAS_ISS: &str = "https://atlas-auth.example/";
const EGI_ISS: &str = "https://aai.egi.example/realms/egi";
const DUNE_ISS: &str = "https://cilogon.example/dune";

/// Three issuers: WLCG IAM (file JWKS, one VO), EGI Check-in (HTTP JWKS, entitlements),
/// a SciTokens issuer (file JWKS, scope paths).
struct Setup {
    server: TestServer,
    atlas: TestIssuer,
    egi: TestIssuer,
    dune: TestIssuer,
    jwks: JwksServer,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let atlas = TestIssuer::new(ATLAS_ISS);
    let egi = TestIssuer::new(EGI_ISS);
    let dune = TestIssuer::new(DUNE_ISS);
    let atlas_jwks = dir.path().join("atlas.json");
    let dune_jwks = dir.path().join("dune.json");
    atlas.write_jwks(&atlas_jwks);
    dune.write_jwks(&dune_jwks);
    let jwks = JwksServer::start(egi.jwks());
    let config = [
        atlas.config_block(
            &format!("jwks_file = \"{}\"", atlas_jwks.display()),
            "[{ rule = \"fixed\", vo = \"atlas\" }]",
        ),
        format!(
            "{}jwks_min_refetch_secs = 0\n",
            egi.config_block(
                &format!("jwks_url = \"{}\"", jwks.url),
                "[{ rule = \"egi_entitlement\" }, { rule = \"wlcg_groups\" }]",
            )
        ),
        dune.config_block(
            &format!("jwks_file = \"{}\"", dune_jwks.display()),
            "[{ rule = \"scope_path\" }]",
        ),
    ]
    .join("\n");
    let server = TestServer::start_with_config(&dir.path().join("data"), &config);
    Setup {
        server,
        atlas,
        egi,
        dune,
        jwks,
        _dir: dir,
    }
}

fn post_token(server: &TestServer, credential: &str, token: &str) -> Reply {
    server.http().post_json(
        "/v1/issuances",
        Some(credential),
        &json!({ "token": token }),
    )
}

fn entry(server: &TestServer, index: u64) -> Value {
    let reply = server.http().get(
        &format!("/v1/log/entries?start={index}&end={}", index + 1),
        Some(server.admin_secret()),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json()["entries"][0]["entry"].clone()
}

fn index_of(reply: &Reply) -> u64 {
    reply.json()["index"]
        .as_u64()
        .unwrap_or_else(|| panic!("{reply:?}"))
}

both_backends!(signed_tokens_of_every_algorithm_are_verified_and_recorded);
fn signed_tokens_of_every_algorithm_are_verified_and_recorded() {
    let s = setup();
    let issuer = s.server.create_credential("issuer", Some("atlas"));
    let mut indexes = Vec::new();
    for (i, alg) in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]
        .into_iter()
        .enumerate()
    {
        let mut claims = s.atlas.claims(&format!("jti-{i}"), "alice");
        claims["email"] = json!("alice@example.org");
        claims["wlcg.groups"] = json!(["/atlas", "/atlas/production"]);
        let token = s.atlas.mint(alg, &claims);
        let reply = post_token(&s.server, &issuer, &token);
        assert_eq!(reply.status, 201, "{alg:?}: {reply:?}");
        let body = reply.json();
        assert_eq!(body["status"], "created");
        assert!(
            body["receipt"].as_str().is_some_and(|r| r.len() > 80),
            "{body}"
        );
        assert!(body["integrated_at"].as_i64().unwrap() > 0);
        indexes.push(index_of(&reply));

        let recorded = entry(&s.server, index_of(&reply));
        assert_eq!(recorded["source"], "jwt");
        assert_eq!(recorded["vo"], "atlas");
        assert_eq!(recorded["jti"], format!("jti-{i}"));
        assert_eq!(recorded["sub"], "alice");
        assert_eq!(recorded["client_id"], "test-client");
        assert_eq!(recorded["groups"], json!(["/atlas", "/atlas/production"]));
        assert_eq!(
            recorded["scopes"],
            json!(["storage.read:/", "compute.create"])
        );
        assert_eq!(
            recorded["claims"],
            json!({"wlcg.ver": "1.0"}),
            "only traceability claims are kept"
        );
        assert_eq!(recorded["token_sha256"].as_str().unwrap().len(), 64);
        assert!(!recorded.to_string().contains("alice@example.org"));

        let stored = db::stored_bytes(&s.server.db());
        let signature = token.rsplit('.').next().unwrap();
        let hex: String = signature.bytes().map(|b| format!("{b:02x}")).collect();
        for needle in [signature.as_bytes(), hex.as_bytes()] {
            assert!(
                !stored.windows(needle.len()).any(|w| w == needle),
                "the JWT itself must never be stored"
            );
        }
    }
    assert_eq!(indexes, [0, 1, 2]);

    let person =
        db::person_of(&s.server.db(), ATLAS_ISS, "alice", "atlas").expect("a person for alice");
    assert!(person.starts_with("pe-"));
    let token = s
        .atlas
        .mint(Algorithm::RS256, &s.atlas.claims("jti-bob", "bob"));
    assert_eq!(post_token(&s.server, &issuer, &token).status, 201);
    let bob = db::person_of(&s.server.db(), ATLAS_ISS, "bob", "atlas").unwrap();
    assert_ne!(bob, person, "another subject is another person");
    assert_eq!(
        db::person_of(&s.server.db(), ATLAS_ISS, "alice", "atlas").unwrap(),
        person,
        "stable"
    );
}

both_backends!(vo_is_derived_by_the_issuers_rules);
fn vo_is_derived_by_the_issuers_rules() {
    let s = setup();
    let biomed = s.server.create_credential("issuer", Some("biomed"));
    let dune = s.server.create_credential("issuer", Some("dune"));
    let atlas = s.server.create_credential("issuer", Some("atlas"));

    let mut claims = s.egi.claims("egi-1", "user@egi.eu");
    claims["eduperson_entitlement"] =
        json!(["urn:mace:egi.eu:group:biomed:role=member#aai.egi.example"]);
    let entitlement_wrong_authority = s.egi.mint(Algorithm::ES256, &claims);
    let reply = post_token(&s.server, &biomed, &entitlement_wrong_authority);
    reply.assert_error(422, "vo_not_derived");

    claims["eduperson_entitlement"] =
        json!(["urn:mace:egi.eu:group:biomed:role=member#aai.egi.eu"]);
    let token = s.egi.mint(Algorithm::ES256, &claims);
    post_token(&s.server, &atlas, &token).assert_error(403, "forbidden");
    let reply = post_token(&s.server, &biomed, &token);
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(entry(&s.server, index_of(&reply))["vo"], "biomed");

    let mut claims = s.egi.claims("egi-2", "other@egi.eu");
    claims["wlcg.groups"] = json!(["/biomed/team"]);
    let reply = post_token(&s.server, &biomed, &s.egi.mint(Algorithm::RS256, &claims));
    assert_eq!(
        reply.status, 201,
        "wlcg.groups is the second rule: {reply:?}"
    );

    let mut claims = s.dune.claims("dune-1", "dune-user");
    claims["scope"] = json!("read:/dune/raw write:/dune/scratch");
    let reply = post_token(&s.server, &dune, &s.dune.mint(Algorithm::EdDSA, &claims));
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(entry(&s.server, index_of(&reply))["vo"], "dune");

    let mut claims = s.egi.claims("egi-3", "nobody");
    claims["wlcg.groups"] = json!(["/atlas", "/cms"]);
    post_token(&s.server, &biomed, &s.egi.mint(Algorithm::RS256, &claims))
        .assert_error(422, "vo_not_derived");
    let nothing = s.egi.claims("egi-4", "nobody");
    let reply = post_token(&s.server, &biomed, &s.egi.mint(Algorithm::RS256, &nothing));
    reply.assert_error(422, "vo_not_derived");
}

both_backends!(chains_and_pilot_tokens_are_recorded);
fn chains_and_pilot_tokens_are_recorded() {
    let s = setup();
    let issuer = s.server.create_credential("issuer", Some("atlas"));
    let root = s
        .atlas
        .mint(Algorithm::RS256, &s.atlas.claims("root-jti", "alice"));
    let reply = s.server.http().post_json(
        "/v1/issuances",
        Some(&issuer),
        &json!({"token": root, "grant_type": "authorization_code", "refresh_jti": "rt-1"}),
    );
    assert_eq!(reply.status, 201, "{reply:?}");

    let mut exchanged = s.atlas.claims("child-jti", "alice");
    exchanged["act"] = json!({"sub": "rucio"});
    let reply = s.server.http().post_json(
        "/v1/issuances",
        Some(&issuer),
        &json!({"token": s.atlas.mint(Algorithm::RS256, &exchanged), "parent_jti": "root-jti"}),
    );
    let child = entry(&s.server, index_of(&reply));
    assert_eq!(child["parent_jti"], "root-jti");
    assert_eq!(child["grant_type"], "token-exchange");
    assert_eq!(child["act"], json!({"sub": "rucio"}));

    let mut pilot = s.atlas.claims("pilot-jti", "atlas-pilot");
    pilot["client_id"] = json!("atlas-pilot");
    let reply = post_token(&s.server, &issuer, &s.atlas.mint(Algorithm::RS256, &pilot));
    assert_eq!(
        entry(&s.server, index_of(&reply))["grant_type"],
        "client_credentials"
    );
}

both_backends!(duplicates_are_idempotent_per_issuer);
fn duplicates_are_idempotent_per_issuer() {
    let s = setup();
    let atlas = s.server.create_credential("issuer", Some("atlas"));
    let dune = s.server.create_credential("issuer", Some("dune"));
    let token = s
        .atlas
        .mint(Algorithm::RS256, &s.atlas.claims("same-jti", "alice"));
    let first = post_token(&s.server, &atlas, &token);
    assert_eq!(first.status, 201);
    let again = post_token(&s.server, &atlas, &token);
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.json()["status"], "duplicate");
    assert_eq!(index_of(&again), index_of(&first));
    assert_eq!(
        again.json()["receipt"],
        first.json()["receipt"],
        "the same receipt"
    );

    let mut claims = s.dune.claims("same-jti", "alice");
    claims["scope"] = json!("read:/dune");
    let other = post_token(&s.server, &dune, &s.dune.mint(Algorithm::RS256, &claims));
    assert_eq!(other.status, 201, "same jti, other issuer: a new entry");
    assert_ne!(index_of(&other), index_of(&first));
    assert_eq!(s.server.log_size(), 2);
}

both_backends!(keys_fetched_over_http_are_refreshed_for_an_unknown_kid);
fn keys_fetched_over_http_are_refreshed_for_an_unknown_kid() {
    let mut s = setup();
    let biomed = s.server.create_credential("issuer", Some("biomed"));
    let mut claims = s.egi.claims("rot-1", "u");
    claims["wlcg.groups"] = json!(["/biomed"]);
    assert_eq!(
        post_token(&s.server, &biomed, &s.egi.mint(Algorithm::RS256, &claims)).status,
        201
    );
    let hits = s.jwks.hits();
    assert!(hits >= 1);

    s.egi.add_key("rsa-2", Algorithm::RS256);
    s.jwks.set(s.egi.jwks());
    claims["jti"] = json!("rot-2");
    let rotated = s.egi.mint_by_kid("rsa-2", &claims);
    let reply = post_token(&s.server, &biomed, &rotated);
    assert_eq!(
        reply.status, 201,
        "the key of a new kid must be fetched: {reply:?}"
    );
    assert!(s.jwks.hits() > hits, "the JWKS was fetched again");
}

both_backends!(bad_tokens_change_nothing);
fn bad_tokens_change_nothing() {
    let s = setup();
    let issuer = s.server.create_credential("issuer", Some("atlas"));
    let good = s
        .atlas
        .mint(Algorithm::RS256, &s.atlas.claims("good", "alice"));
    assert_eq!(post_token(&s.server, &issuer, &good).status, 201);
    let size = s.server.log_size();

    let mut forged: Vec<char> = good.chars().collect();
    let at = forged.len() - 20;
    forged[at] = if forged[at] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    let mut claims = s.atlas.claims("forged-payload", "alice");
    let other_sig = s.atlas.mint(Algorithm::RS256, &claims);
    let parts: Vec<&str> = good.split('.').collect();
    let swapped = format!(
        "{}.{}.{}",
        parts[0],
        other_sig.split('.').nth(1).unwrap(),
        parts[2]
    );

    claims["jti"] = json!("unknown-kid");
    let unknown_kid = s
        .atlas
        .mint_with_kid(Algorithm::RS256, Some("no-such-kid"), &claims);
    let stranger = TestIssuer::new("https://stranger.example/");
    let unknown_issuer = stranger.mint(Algorithm::RS256, &stranger.claims("x", "y"));
    let other_keys = TestIssuer::new(ATLAS_ISS);
    let wrong_key = other_keys.mint(Algorithm::RS256, &other_keys.claims("wrong-key", "alice"));

    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&s.atlas.claims("none", "alice"))
    );
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &s.atlas.claims("hs256", "alice"),
        &EncodingKey::from_secret(s.atlas.jwks().as_bytes()),
    )
    .unwrap();
    let mut old = s.atlas.claims("too-old", "alice");
    old["exp"] = json!(now_secs() - 8 * 24 * 3600);
    old["iat"] = json!(now_secs() - 8 * 24 * 3600 - 3600);
    let too_old = s.atlas.mint(Algorithm::RS256, &old);
    let mut future = s.atlas.claims("future", "alice");
    future["iat"] = json!(now_secs() + 3600);
    let in_future = s.atlas.mint(Algorithm::RS256, &future);
    let mut huge = s.atlas.claims("huge", "alice");
    for i in 0..10_000 {
        huge[format!("claim{i}")] = json!(i);
    }
    let huge = s.atlas.mint(Algorithm::EdDSA, &huge);

    let bad_signature_encoding = format!("{}.{}.not*base64", parts[0], parts[1]);
    let array_payload = format!("{}.{}.{}", parts[0], b64(&json!([1])), parts[2]);

    let cases: [(&str, &str, u16, &str); 14] = [
        (
            "signature not base64url",
            &bad_signature_encoding,
            422,
            "invalid_token",
        ),
        (
            "payload not an object",
            &array_payload,
            422,
            "invalid_token",
        ),
        ("flipped signature", &forged, 422, "bad_signature"),
        ("payload of another token", &swapped, 422, "bad_signature"),
        ("unknown kid", &unknown_kid, 422, "unknown_key"),
        ("unknown issuer", &unknown_issuer, 422, "unknown_issuer"),
        (
            "right issuer and kid, wrong key",
            &wrong_key,
            422,
            "bad_signature",
        ),
        ("alg none", &alg_none, 422, "invalid_token"),
        (
            "HS256 with the public key as secret",
            &hs256,
            422,
            "algorithm_not_allowed",
        ),
        (
            "expired before the back-fill window",
            &too_old,
            422,
            "token_too_old",
        ),
        ("issued in the future", &in_future, 422, "token_in_future"),
        ("10,000 claims", &huge, 422, "invalid_token"),
        ("not a JWT", "not.a.jwt", 422, "invalid_token"),
        ("empty", "", 422, "invalid_token"),
    ];
    for (what, token, status, code) in cases {
        let reply = post_token(&s.server, &issuer, token);
        assert_eq!(reply.status, status, "{what}: {reply:?}");
        reply.assert_error(status, code);
    }
    let cms = s.server.create_credential("issuer", Some("cms"));
    let token = s
        .atlas
        .mint(Algorithm::RS256, &s.atlas.claims("cms-try", "alice"));
    post_token(&s.server, &cms, &token).assert_error(403, "forbidden");

    let http = s.server.http();
    let batch = json!([{"token": s.atlas.mint(Algorithm::RS256, &s.atlas.claims("b1", "a"))}, {"token": forged}]);
    http.post_json("/v1/issuances", Some(&issuer), &batch)
        .assert_error(422, "bad_signature");
    http.send(
        "POST",
        "/v1/issuances",
        Some(&issuer),
        Some("application/json"),
        Some(b"{\"token\": \"\xff\xfe\"}"),
    )
    .assert_error(400, "bad_request");
    assert_eq!(s.server.log_size(), size, "nothing was appended");
}

both_backends!(ndjson_lines_are_answered_one_by_one);
fn ndjson_lines_are_answered_one_by_one() {
    let s = setup();
    let issuer = s.server.create_credential("issuer", Some("atlas"));
    let good1 = s
        .atlas
        .mint(Algorithm::ES256, &s.atlas.claims("nd-1", "alice"));
    let good2 = s
        .atlas
        .mint(Algorithm::ES256, &s.atlas.claims("nd-2", "alice"));
    let body = format!(
        "{}\n{{\"token\": \"garbage\"}}\n\n{}\nnot json\n{}\n",
        json!({"token": good1}),
        json!({"token": good2}),
        json!({"token": good1}),
    );
    let reply = s.server.http().send(
        "POST",
        "/v1/issuances",
        Some(&issuer),
        Some("application/x-ndjson"),
        Some(body.as_bytes()),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    let lines: Vec<Value> = reply
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "{reply:?}");
    assert_eq!(lines[0]["status"], "created");
    assert_eq!(lines[1]["line"], 2);
    assert_eq!(lines[1]["error"]["code"], "invalid_token");
    assert_eq!(lines[2]["status"], "created");
    assert_eq!(lines[3]["line"], 5);
    assert_eq!(lines[3]["error"]["code"], "bad_request");
    assert_eq!(lines[4]["status"], "duplicate");
    assert_eq!(lines[4]["index"], lines[0]["index"]);
    assert_eq!(s.server.log_size(), 2);
}

both_backends!(claims_reports_need_a_credential_bound_to_their_issuer);
fn claims_reports_need_a_credential_bound_to_their_issuer() {
    let s = setup();
    let plain = s.server.create_credential("issuer", Some("atlas"));
    let bound = s
        .server
        .credential(&["--role", "issuer", "--vo", "atlas", "--issuer", ATLAS_ISS])
        .secret;
    let report = json!({"claims": s.atlas.claims("claims-1", "alice"), "feed": "iam-audit"});
    let http = s.server.http();
    http.post_json("/v1/issuances", Some(&plain), &report)
        .assert_error(403, "forbidden");
    let mut other = report.clone();
    other["claims"]["iss"] = json!("https://elsewhere.example/");
    http.post_json("/v1/issuances", Some(&bound), &other)
        .assert_error(403, "forbidden");
    let reply = http.post_json("/v1/issuances", Some(&bound), &report);
    assert_eq!(reply.status, 201, "{reply:?}");
    let recorded = entry(&s.server, index_of(&reply));
    assert_eq!(recorded["source"], "claims");
    assert_eq!(recorded["feed"], "iam-audit");
    assert_eq!(recorded["vo"], "atlas");
}

both_backends!(a_receipt_verifies_with_the_cli_and_a_forged_one_does_not);
fn a_receipt_verifies_with_the_cli_and_a_forged_one_does_not() {
    let s = setup();
    let issuer = s.server.create_credential("issuer", Some("atlas"));
    let token = s
        .atlas
        .mint(Algorithm::RS256, &s.atlas.claims("receipt-jti", "alice"));
    let reply = post_token(&s.server, &issuer, &token);
    assert_eq!(reply.status, 201);
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("receipt.json");
    std::fs::write(&good, &reply.body).unwrap();
    let mut forged_body = reply.json();
    forged_body["integrated_at"] = json!(forged_body["integrated_at"].as_i64().unwrap() + 1);
    let forged = dir.path().join("forged.json");
    std::fs::write(&forged, forged_body.to_string()).unwrap();

    let key = s.server.log_key();
    let run = |file: &std::path::Path| {
        run_cli(&[
            "verify",
            "--server",
            s.server.url(),
            "--log-key",
            &key,
            "--receipt",
            file.to_str().unwrap(),
        ])
    };
    let ok = run(&good);
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    let bad = run(&forged);
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
}
