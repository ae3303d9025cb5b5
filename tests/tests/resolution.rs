//! Resolution end to end: only a VO's own security officers (API credential or OIDC token)
//! turn a jti into a person, with the chain up to the human; every answer is logged first.

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokenledger_core::checkpoint::Checkpoint;
use tokenledger_core::merkle::{self, Hash};
use tokenledger_core::note::NoteVerifier;
use tokenledger_e2e::both_backends;
use tokenledger_e2e::issuer::{TestIssuer, now_secs};
use tokenledger_e2e::{Reply, TestServer};

const ATLAS_ISS: &str = "https://atlas-auth.example/";

struct Setup {
    server: TestServer,
    atlas: TestIssuer,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let atlas = TestIssuer::new(ATLAS_ISS);
    let jwks = dir.path().join("atlas.json");
    atlas.write_jwks(&jwks);
    let config = format!(
        "{}\n[operators]\naudience = \"tokenledger-test\"\n\n\
         [[operator]]\niss = \"{ATLAS_ISS}\"\nclaim = \"wlcg.groups\"\nvalue = \"/atlas/security\"\nrole = \"vo-security\"\nvo = \"atlas\"\n",
        atlas.config_block(
            &format!("jwks_file = \"{}\"", jwks.display()),
            "[{ rule = \"fixed\", vo = \"atlas\" }]"
        )
    );
    let server = TestServer::start_with_config(&dir.path().join("data"), &config);
    Setup {
        server,
        atlas,
        _dir: dir,
    }
}

/// Logs a chain: alice's login (root, with refresh token rt-1), a refresh, an exchange of the
/// refreshed token by rucio, and a pilot token.
fn ingest_chain(s: &Setup) {
    let issuer = s.server.create_credential("issuer", Some("atlas"));
    let post = |report: Value| {
        let reply = s
            .server
            .http()
            .post_json("/v1/issuances", Some(&issuer), &report);
        assert_eq!(reply.status, 201, "{reply:?}");
    };
    let mint = |jti: &str, sub: &str| s.atlas.mint(Algorithm::ES256, &s.atlas.claims(jti, sub));
    post(
        json!({"token": mint("login", "alice"), "grant_type": "authorization_code", "refresh_jti": "rt-1"}),
    );
    post(json!({"token": mint("other", "bob")}));
    post(
        json!({"token": mint("refreshed", "alice"), "grant_type": "refresh_token", "refresh_jti": "rt-1"}),
    );
    let mut exchanged = s.atlas.claims("exchanged", "alice");
    exchanged["act"] = json!({"sub": "rucio"});
    exchanged["client_id"] = json!("rucio");
    post(json!({"token": s.atlas.mint(Algorithm::ES256, &exchanged), "parent_jti": "refreshed"}));
    let mut pilot = s.atlas.claims("pilot", "atlas-pilot");
    pilot["client_id"] = json!("atlas-pilot");
    post(json!({"token": s.atlas.mint(Algorithm::ES256, &pilot)}));
}

fn get(s: &Setup, path: &str, token: &str) -> Reply {
    s.server.http().get(path, Some(token))
}

both_backends!(an_officer_resolves_a_token_up_to_the_human_and_the_resolution_is_logged_first);
fn an_officer_resolves_a_token_up_to_the_human_and_the_resolution_is_logged_first() {
    let s = setup();
    ingest_chain(&s);
    let officer = s
        .server
        .create_credential_with_id("vo-security", Some("atlas"));
    let size_before = s.server.log_size();
    let reply = get(
        &s,
        "/v1/vos/atlas/tokens/exchanged?reason=INC-42",
        &officer.secret,
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    let body = reply.json();
    assert_eq!(
        s.server.log_size(),
        size_before + 1,
        "exactly one entry: the resolution"
    );

    assert_eq!(
        body["person"]["identities"],
        json!([{"iss": ATLAS_ISS, "sub": "alice"}])
    );
    let chain: Vec<&str> = body["chain"]["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["jti"].as_str().unwrap())
        .collect();
    assert_eq!(chain, ["exchanged", "refreshed", "login"]);
    assert_eq!(body["chain"]["complete"], true);
    assert_eq!(body["human"]["id"], body["person"]["id"]);
    assert_eq!(body["issuance"]["entry"]["jti"], "exchanged");

    // The issuance is provably in the signed checkpoint that came with the answer.
    let verifier = NoteVerifier::parse(&s.server.log_key()).unwrap();
    let checkpoint = Checkpoint::open(body["checkpoint"].as_str().unwrap(), &verifier).unwrap();
    let proof = &body["inclusion_proof"];
    let hashes: Vec<Hash> = proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap()).unwrap())
        .collect();
    use base64::Engine;
    let leaf = base64::engine::general_purpose::STANDARD
        .decode(body["issuance"]["leaf"].as_str().unwrap())
        .unwrap();
    merkle::verify_inclusion(
        proof["index"].as_u64().unwrap(),
        checkpoint.size,
        &merkle::leaf_hash(&leaf),
        &hashes,
        &checkpoint.root,
    )
    .unwrap();

    // The resolution entry names the requester, target and reason, and is in the log.
    let index = body["resolution_index"].as_u64().unwrap();
    let entries = get(
        &s,
        &format!("/v1/log/entries?start={index}&end={}", index + 1),
        s.server.admin_secret(),
    );
    let logged = &entries.json()["entries"][0]["entry"];
    assert_eq!(logged["type"], "resolution");
    assert_eq!(logged["requester"], format!("credential:{}", officer.id));
    assert_eq!(logged["reason"], "INC-42");
    assert_eq!(logged["target"], "exchanged");
    assert_eq!(logged["action"], "resolve_jti");
    assert_eq!(logged["vo"], "atlas");
    let head = Checkpoint::open(&s.server.checkpoint(), &verifier).unwrap();
    let proof = s
        .server
        .http()
        .get(
            &format!("/v1/log/proof/inclusion?index={index}&size={}", head.size),
            None,
        )
        .json();
    let hashes: Vec<Hash> = proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap()).unwrap())
        .collect();
    let resolution_leaf = base64::engine::general_purpose::STANDARD
        .decode(entries.json()["entries"][0]["leaf"].as_str().unwrap())
        .unwrap();
    merkle::verify_inclusion(
        index,
        head.size,
        &merkle::leaf_hash(&resolution_leaf),
        &hashes,
        &head.root,
    )
    .expect("the resolution entry is provably in the log");

    // A pilot token's root is a service account: no human.
    let reply = get(
        &s,
        "/v1/vos/atlas/tokens/pilot?reason=INC-42",
        &officer.secret,
    );
    assert_eq!(
        reply.json()["chain"]["links"][0]["grant_type"],
        "client_credentials"
    );
    assert_eq!(reply.json()["human"], Value::Null);
}

both_backends!(nobody_else_resolves_and_a_foreign_officer_learns_nothing);
fn nobody_else_resolves_and_a_foreign_officer_learns_nothing() {
    let s = setup();
    ingest_chain(&s);
    let cms_officer = s.server.create_credential("vo-security", Some("cms"));
    let size = s.server.log_size();
    let known = get(&s, "/v1/vos/atlas/tokens/login?reason=x", &cms_officer);
    let unknown = get(
        &s,
        "/v1/vos/atlas/tokens/no-such-jti?reason=x",
        &cms_officer,
    );
    known.assert_error(403, "forbidden");
    assert_eq!(
        known.body, unknown.body,
        "the same answer whether the jti exists or not"
    );
    let wrong_vo = get(&s, "/v1/vos/cms/tokens/login?reason=x", &cms_officer);
    wrong_vo.assert_error(404, "not_found");

    for (role, vo) in [
        ("admin", None),
        ("auditor", None),
        ("issuer", Some("atlas")),
        ("auditor", Some("atlas")),
    ] {
        let secret = s.server.create_credential(role, vo);
        get(&s, "/v1/vos/atlas/tokens/login?reason=x", &secret).assert_error(403, "forbidden");
    }
    s.server
        .http()
        .get("/v1/vos/atlas/tokens/login?reason=x", None)
        .assert_error(401, "unauthenticated");

    let officer = s
        .server
        .create_credential_with_id("vo-security", Some("atlas"));
    get(&s, "/v1/vos/atlas/tokens/login", &officer.secret).assert_error(400, "bad_request");
    get(&s, "/v1/vos/atlas/tokens/login?reason=", &officer.secret).assert_error(400, "bad_request");
    assert_eq!(
        s.server.log_size(),
        size + 1,
        "only the cms officer's own-VO miss was logged"
    );

    let lowercase_scheme = s.server.http().send_with_authorization(
        "GET",
        "/v1/vos/atlas/tokens/login?reason=scheme",
        Some(&format!("bearer {}", officer.secret)),
        None,
        None,
    );
    assert_eq!(
        lowercase_scheme.status, 200,
        "the auth scheme is case-insensitive: {lowercase_scheme:?}"
    );
    s.server.revoke_credential(&officer.id);
    get(&s, "/v1/vos/atlas/tokens/login?reason=x", &officer.secret)
        .assert_error(401, "unauthenticated");
}

both_backends!(operators_authenticate_with_oidc_tokens_mapped_by_policy);
fn operators_authenticate_with_oidc_tokens_mapped_by_policy() {
    let s = setup();
    ingest_chain(&s);
    let operator = |groups: Value, aud: &str, exp: i64| {
        let mut claims = s.atlas.claims(&format!("op-{exp}-{aud}"), "officer-7");
        claims["wlcg.groups"] = groups;
        claims["aud"] = json!(aud);
        claims["exp"] = json!(exp);
        s.atlas.mint(Algorithm::RS256, &claims)
    };
    let good = operator(
        json!(["/atlas", "/atlas/security"]),
        "tokenledger-test",
        now_secs() + 600,
    );
    let reply = get(&s, "/v1/vos/atlas/tokens/login?reason=INC-7", &good);
    assert_eq!(reply.status, 200, "{reply:?}");
    let index = reply.json()["resolution_index"].as_u64().unwrap();
    let logged = get(
        &s,
        &format!("/v1/log/entries?start={index}&end={}", index + 1),
        s.server.admin_secret(),
    );
    assert_eq!(
        logged.json()["entries"][0]["entry"]["requester"],
        format!("oidc:{ATLAS_ISS}#officer-7")
    );

    let expired = operator(
        json!(["/atlas/security"]),
        "tokenledger-test",
        now_secs() - 3600,
    );
    get(&s, "/v1/vos/atlas/tokens/login?reason=x", &expired).assert_error(401, "unauthenticated");
    let wrong_audience = operator(
        json!(["/atlas/security"]),
        "https://elsewhere",
        now_secs() + 600,
    );
    get(&s, "/v1/vos/atlas/tokens/login?reason=x", &wrong_audience)
        .assert_error(401, "unauthenticated");
    let no_role = operator(json!(["/atlas"]), "tokenledger-test", now_secs() + 600);
    get(&s, "/v1/vos/atlas/tokens/login?reason=x", &no_role).assert_error(403, "forbidden");
    let stranger = TestIssuer::new(ATLAS_ISS);
    let mut claims = stranger.claims("forged-op", "mallory");
    claims["wlcg.groups"] = json!(["/atlas/security"]);
    claims["aud"] = json!("tokenledger-test");
    let forged = stranger.mint(Algorithm::RS256, &claims);
    get(&s, "/v1/vos/atlas/tokens/login?reason=x", &forged).assert_error(401, "unauthenticated");
}

both_backends!(person_tokens_search_timeline_and_audit);
fn person_tokens_search_timeline_and_audit() {
    let s = setup();
    ingest_chain(&s);
    let officer = s.server.create_credential("vo-security", Some("atlas"));
    let resolved = get(&s, "/v1/vos/atlas/tokens/login?reason=T-1", &officer).json();
    let person = resolved["person"]["id"].as_str().unwrap().to_string();

    let tokens = get(
        &s,
        &format!("/v1/vos/atlas/persons/{person}/tokens?reason=T-2"),
        &officer,
    );
    assert_eq!(tokens.status, 200, "{tokens:?}");
    let tokens = tokens.json();
    let jtis: Vec<&str> = tokens["issuances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entry"]["jti"].as_str().unwrap())
        .collect();
    assert_eq!(
        jtis,
        ["exchanged", "refreshed", "login"],
        "newest first, only alice's"
    );

    let page = get(
        &s,
        &format!("/v1/vos/atlas/persons/{person}/tokens?reason=T-2&limit=2"),
        &officer,
    )
    .json();
    assert_eq!(page["issuances"].as_array().unwrap().len(), 2);
    let before = page["next_before"].as_u64().unwrap();
    let rest = get(
        &s,
        &format!("/v1/vos/atlas/persons/{person}/tokens?reason=T-2&limit=2&before={before}"),
        &officer,
    )
    .json();
    assert_eq!(rest["issuances"][0]["entry"]["jti"], "login");

    let by_client = get(
        &s,
        "/v1/vos/atlas/tokens?reason=T-3&client_id=rucio",
        &officer,
    )
    .json();
    assert_eq!(by_client["issuances"].as_array().unwrap().len(), 1);
    assert_eq!(by_client["issuances"][0]["entry"]["jti"], "exchanged");
    let by_scope = get(
        &s,
        "/v1/vos/atlas/tokens?reason=T-3&scope=compute.create",
        &officer,
    )
    .json();
    assert_eq!(by_scope["issuances"].as_array().unwrap().len(), 5);
    get(&s, "/v1/vos/atlas/tokens?reason=T-3", &officer).assert_error(400, "bad_request");

    let timeline = get(
        &s,
        &format!("/v1/vos/atlas/persons/{person}/timeline?reason=T-4"),
        &officer,
    )
    .json();
    assert_eq!(timeline["events"].as_array().unwrap().len(), 3);
    assert_eq!(timeline["events"][0]["kind"], "issuance");
    get(
        &s,
        "/v1/vos/atlas/persons/pe-nobody/timeline?reason=T-4",
        &officer,
    )
    .assert_error(404, "not_found");

    let auditor = s.server.create_credential("auditor", Some("atlas"));
    let audit = get(&s, "/v1/vos/atlas/resolutions", &auditor).json();
    let reasons: Vec<&str> = audit["resolutions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["entry"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons.first(), Some(&"T-4"), "newest first");
    assert!(reasons.contains(&"T-1") && reasons.contains(&"T-3"));
    let cms_auditor = s.server.create_credential("auditor", Some("cms"));
    get(&s, "/v1/vos/atlas/resolutions", &cms_auditor).assert_error(403, "forbidden");
}
