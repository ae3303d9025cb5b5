//! A report must have one reading: real signed JWTs whose header or payload names a member
//! twice, whose header carries `crit`, or (by default) that lack `exp` are refused, and so
//! are claims reports that name a member twice, with nothing appended. Each refused token is
//! signed correctly: the same token without its defect is accepted.

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokenledger_e2e::both_backends;
use tokenledger_e2e::issuer::TestIssuer;
use tokenledger_e2e::{Reply, TestServer, report};

const ATLAS_ISS: &str = "https://atlas-auth.example/";
/// An issuer configured with `require_exp = false`.
const LEGACY_ISS: &str = "https://legacy-auth.example/";

/// Two issuers of VO atlas (the second with `require_exp = false`) and an issuer credential.
struct Setup {
    server: TestServer,
    atlas: TestIssuer,
    legacy: TestIssuer,
    credential: String,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (atlas, legacy) = (TestIssuer::new(ATLAS_ISS), TestIssuer::new(LEGACY_ISS));
    let atlas_vo = "[{ rule = \"fixed\", vo = \"atlas\" }]";
    let config = format!(
        "{}\n{}require_exp = false\n",
        atlas.file_config_block(&dir.path().join("atlas.json"), atlas_vo),
        legacy.file_config_block(&dir.path().join("legacy.json"), atlas_vo),
    );
    let server = TestServer::start_with_config(&dir.path().join("data"), &config);
    let credential = server.create_credential("issuer", Some("atlas"));
    Setup {
        server,
        atlas,
        legacy,
        credential,
        _dir: dir,
    }
}

impl Setup {
    fn post_token(&self, token: &str) -> Reply {
        self.server.http().post_json(
            "/v1/issuances",
            Some(&self.credential),
            &json!({ "token": token }),
        )
    }

    /// Posts a token that must be refused with 422 `code`, and checks the log did not move.
    fn refused(&self, what: &str, token: &str, code: &str) {
        let before = self.server.log_size();
        let reply = self.post_token(token);
        assert_eq!(reply.status, 422, "{what}: {reply:?}");
        reply.assert_error(422, code);
        assert_eq!(self.server.log_size(), before, "{what}: nothing appended");
    }

    fn accepted(&self, what: &str, token: &str) {
        let before = self.server.log_size();
        let reply = self.post_token(token);
        assert_eq!(reply.status, 201, "{what}: {reply:?}");
        assert_eq!(self.server.log_size(), before + 1, "{what}");
    }
}

/// The claims of a fresh token as JSON text, with `extra` (raw members) appended inside the
/// top-level object.
fn payload(issuer: &TestIssuer, jti: &str, extra: &str) -> String {
    let text = issuer.claims(jti, "alice").to_string();
    let body = text.strip_suffix('}').expect("an object");
    format!("{body}{extra}}}")
}

/// `claims` as JSON text without `exp`.
fn payload_without_exp(issuer: &TestIssuer, jti: &str) -> String {
    let mut claims = issuer.claims(jti, "alice");
    claims.as_object_mut().unwrap().remove("exp");
    claims.to_string()
}

both_backends!(signed_tokens_with_repeated_names_crit_or_no_exp_are_refused_and_nothing_is_logged);
fn signed_tokens_with_repeated_names_crit_or_no_exp_are_refused_and_nothing_is_logged() {
    let s = setup();
    let header = s.atlas.header_json(Algorithm::RS256);
    let header_with = |extra: &str| format!("{}{extra}}}", header.strip_suffix('}').unwrap());

    // The hand-written tokens are good tokens as such.
    s.accepted(
        "plain hand-written token",
        &s.atlas
            .mint_raw(Algorithm::RS256, &header, &payload(&s.atlas, "good", "")),
    );
    s.accepted(
        "hand-written EdDSA token with a nested object",
        &s.atlas.mint_raw(
            Algorithm::EdDSA,
            &s.atlas.header_json(Algorithm::EdDSA),
            &payload(&s.atlas, "good-eddsa", r#","act":{"sub":"a"}"#),
        ),
    );

    let cases = [
        (
            "payload: two `sub`",
            header.clone(),
            payload(&s.atlas, "two-subs", r#","sub":"mallory""#),
            "duplicate_member",
        ),
        (
            "payload: two `jti`, the same value",
            header.clone(),
            payload(&s.atlas, "two-jtis", r#","jti":"two-jtis""#),
            "duplicate_member",
        ),
        (
            "payload: a name repeated in a nested object",
            header.clone(),
            payload(&s.atlas, "nested", r#","act":{"sub":"a","sub":"b"}"#),
            "duplicate_member",
        ),
        (
            "header: two `kid`",
            header_with(r#","kid":"rsa-1""#),
            payload(&s.atlas, "two-kids", ""),
            "duplicate_member",
        ),
        (
            "header: two `typ`",
            header_with(r#","typ":"at+jwt""#),
            payload(&s.atlas, "two-typs", ""),
            "duplicate_member",
        ),
        (
            "header: `crit` naming a parameter",
            header_with(r#","crit":["exp"],"exp":1"#),
            payload(&s.atlas, "crit", ""),
            "critical_extension",
        ),
        (
            "header: an empty `crit`",
            header_with(r#","crit":[]"#),
            payload(&s.atlas, "crit-empty", ""),
            "critical_extension",
        ),
        (
            "payload: no `exp`",
            header.clone(),
            payload_without_exp(&s.atlas, "no-exp"),
            "exp_required",
        ),
        (
            "payload: `exp` null",
            header.clone(),
            payload(&s.atlas, "null-exp", "").replace(r#""exp":"#, r#""exp":null,"old_exp":"#),
            "exp_required",
        ),
    ];
    for (what, header, payload, code) in &cases {
        s.refused(
            what,
            &s.atlas.mint_raw(Algorithm::RS256, header, payload),
            code,
        );
    }
    // The same defects under another algorithm.
    let ed_header = s.atlas.header_json(Algorithm::EdDSA);
    s.refused(
        "EdDSA: two `sub`",
        &s.atlas.mint_raw(
            Algorithm::EdDSA,
            &ed_header,
            &payload(&s.atlas, "ed-two-subs", r#","sub":"mallory""#),
        ),
        "duplicate_member",
    );
    // A token of an issuer with `require_exp = false` may lack `exp` ...
    s.accepted(
        "no `exp`, issuer allows it",
        &s.legacy.mint_raw(
            Algorithm::ES256,
            &s.legacy.header_json(Algorithm::ES256),
            &payload_without_exp(&s.legacy, "legacy-no-exp"),
        ),
    );
    // ... but must still have one reading.
    s.refused(
        "no `exp` allowed, two `sub` not",
        &s.legacy.mint_raw(
            Algorithm::ES256,
            &s.legacy.header_json(Algorithm::ES256),
            &payload(&s.legacy, "legacy-two-subs", r#","sub":"mallory""#),
        ),
        "duplicate_member",
    );
}

/// Sends `body` as it is to `POST /v1/issuances`.
fn post_raw(s: &Setup, credential: &str, content_type: &str, body: &str) -> Reply {
    s.server.http().send(
        "POST",
        "/v1/issuances",
        Some(credential),
        Some(content_type),
        Some(body.as_bytes()),
    )
}

/// A claims report as JSON text with a second `sub` written before the real one.
fn report_with_two_subs(jti: &str) -> String {
    let text = report(jti, "atlas").to_string();
    assert_eq!(text.matches(r#""sub":"#).count(), 1, "{text}");
    text.replacen(r#""sub":"#, r#""sub":"mallory","sub":"#, 1)
}

both_backends!(claims_reports_that_name_a_member_twice_are_refused);
fn claims_reports_that_name_a_member_twice_are_refused() {
    let s = setup();
    let issuer = s.server.create_issuer("atlas");
    let json = "application/json";
    let size = s.server.log_size();

    for (what, body) in [
        ("one report", report_with_two_subs("c-one")),
        (
            "a batch with one bad report",
            format!(
                "[{},{}]",
                report("c-fine", "atlas"),
                report_with_two_subs("c-batch")
            ),
        ),
        (
            "a repeated name deep in the claims",
            report("c-deep", "atlas").to_string().replacen(
                r#""claims":{"#,
                r#""claims":{"act":{"x":[{"y":1,"y":2}]},"#,
                1,
            ),
        ),
        (
            "a repeated report member",
            format!(
                r#"{{"feed":"ndjson",{}"#,
                &report("c-feed", "atlas").to_string()[1..]
            )
            .replacen(r#""claims""#, r#""feed":"other","claims""#, 1),
        ),
    ] {
        let reply = post_raw(&s, &issuer, json, &body);
        reply.assert_error(422, "duplicate_member");
        assert!(
            reply.json()["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("appears twice")),
            "{what}: {reply:?}"
        );
        assert_eq!(s.server.log_size(), size, "{what}: nothing appended");
    }

    // NDJSON: the line with the repeated name is refused on its own line; the good one is
    // logged.
    let body = format!(
        "{}\n{}\n",
        report_with_two_subs("n-bad"),
        report("n-good", "atlas")
    );
    let reply = post_raw(&s, &issuer, "application/x-ndjson", &body);
    assert_eq!(reply.status, 200, "{reply:?}");
    let lines: Vec<Value> = reply
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{reply:?}");
    assert_eq!(lines[0]["line"], 1, "{reply:?}");
    assert_eq!(lines[0]["error"]["code"], "duplicate_member", "{reply:?}");
    assert_eq!(lines[1]["status"], "created", "{reply:?}");
    assert_eq!(s.server.log_size(), size + 1);

    // Without the repeated name the same report is accepted.
    let reply = post_raw(&s, &issuer, json, &report("c-one", "atlas").to_string());
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(s.server.log_size(), size + 2);
}
