//! The authorization matrix, end to end: every route of the live `GET /openapi.json` × every
//! kind of caller (no credential, bad or revoked secrets, each role bound to its own or a
//! foreign VO or a site, OIDC operator tokens good and bad) gets exactly the expected status,
//! with the API's JSON error shape for 401 and 403.
//!
//! The expectations are a table keyed by (method, path template). A route in the document
//! without a row fails the test, and so does a row whose route is gone: a new route cannot
//! ship without deciding who may call it.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokenledger_e2e::both_backends;
use tokenledger_e2e::issuer::{TestIssuer, now_secs};
use tokenledger_e2e::{Http, Reply, TestServer};

const ATLAS_ISS: &str = "https://atlas-auth.example/";
const AUDIENCE: &str = "tokenledger-test";
const SITE: &str = "CERN-PROD";
/// A token of VO atlas that is in the log.
const JTI: &str = "matrix-login";
/// The committed OpenAPI document, which the server must serve.
const SNAPSHOT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../server/tests/snapshots/openapi.json"
);

/// Every kind of caller. "Own" and "foreign" are relative to VO atlas, which every VO-scoped
/// path of the matrix names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    NoCredential,
    /// `Authorization: Bearer` with something that is neither a `tlk_` secret nor a JWT.
    Malformed,
    /// `Authorization: Basic ...`.
    WrongScheme,
    /// A well-formed `tlk_` secret the server never issued.
    UnknownSecret,
    /// An atlas vo-security credential, revoked.
    Revoked,
    Admin,
    IssuerOwn,
    IssuerForeign,
    OfficerOwn,
    OfficerForeign,
    AuditorGlobal,
    AuditorOwn,
    AuditorForeign,
    /// Site roles of CERN-PROD (serves atlas and cms); the foreign one is RAL-LCG2's admin.
    SiteAdmin,
    SiteAdminForeign,
    SiteReader,
    Reporter,
    /// An OIDC token that the `[[operator]]` rule maps to vo-security of atlas.
    OidcOfficer,
    /// A valid OIDC token that no rule maps to a role.
    OidcNoRole,
    OidcExpired,
    OidcWrongAudience,
    /// Signed by a key that is not in the issuer's JWKS.
    OidcForeignKey,
}

impl Kind {
    const ALL: [Kind; 22] = [
        Kind::NoCredential,
        Kind::Malformed,
        Kind::WrongScheme,
        Kind::UnknownSecret,
        Kind::Revoked,
        Kind::Admin,
        Kind::IssuerOwn,
        Kind::IssuerForeign,
        Kind::OfficerOwn,
        Kind::OfficerForeign,
        Kind::AuditorGlobal,
        Kind::AuditorOwn,
        Kind::AuditorForeign,
        Kind::SiteAdmin,
        Kind::SiteAdminForeign,
        Kind::SiteReader,
        Kind::Reporter,
        Kind::OidcOfficer,
        Kind::OidcNoRole,
        Kind::OidcExpired,
        Kind::OidcWrongAudience,
        Kind::OidcForeignKey,
    ];

    /// Callers the server cannot authenticate: 401 on every route that takes a credential.
    fn unauthenticated(self) -> bool {
        matches!(
            self,
            Kind::NoCredential
                | Kind::Malformed
                | Kind::WrongScheme
                | Kind::UnknownSecret
                | Kind::Revoked
                | Kind::OidcExpired
                | Kind::OidcWrongAudience
                | Kind::OidcForeignKey
        )
    }
}

/// Who may call a route.
enum Access {
    /// Anyone, whatever credential comes along.
    Public,
    /// These callers; any other authenticated caller gets 403.
    Only(&'static [Kind]),
}

/// What a request of the table carries.
#[derive(Clone, Copy)]
enum Body {
    Empty,
    /// A fresh, valid report of VO atlas (a signed JWT with a new jti), as JSON.
    FreshIssuance,
    /// Fixed JSON.
    Json(&'static str),
    /// `{id}` in the path becomes a fresh active suspension of the site, made by its admin.
    FreshSiteSuspension,
    /// `{id}` in the path becomes a fresh active VO-wide suspension, made by an officer.
    FreshVoSuspension,
    /// A link of a fresh identity to the person.
    FreshLink,
    /// A merge of a fresh person into the person.
    FreshMerge,
    /// `{person}` in the path becomes a fresh person (a new token's), erased with a reason.
    FreshErasure,
    /// `{id}` in the path becomes a fresh pending suspension request of the site, made by its
    /// admin; the body is the JSON given.
    FreshSuspensionRequest(&'static str),
}

/// One row of the table: a route, a concrete request to it, and who may call it.
struct Row {
    method: &'static str,
    template: &'static str,
    /// The request path, parameters filled in with real values.
    path: String,
    body: Body,
    /// The status of an allowed call.
    ok: u16,
    access: Access,
}

impl Row {
    fn expected(&self, kind: Kind) -> u16 {
        match self.access {
            Access::Public => self.ok,
            Access::Only(allowed) if allowed.contains(&kind) => self.ok,
            Access::Only(_) if kind.unauthenticated() => 401,
            Access::Only(_) => 403,
        }
    }
}

/// The expectations, from the access rules: resolution only for the VO's own vo-security;
/// entries for admin and the ledger-wide auditor; the audit view for admin, the VO's own
/// vo-security and auditors of the VO or of the ledger; reporting for the VO's issuer and admin.
fn table(person: &str, pseudonym: &str) -> Vec<Row> {
    use Kind::*;
    const OFFICERS: &[Kind] = &[OfficerOwn, OidcOfficer];
    let with = |body, row: Row| Row { body, ..row };
    let row = |method, template, path: &str, ok, access| Row {
        method,
        template,
        path: path.to_string(),
        body: Body::Empty,
        ok,
        access,
    };
    vec![
        row("GET", "/healthz", "/healthz", 200, Access::Public),
        row("GET", "/metrics", "/metrics", 200, Access::Public),
        row("GET", "/openapi.json", "/openapi.json", 200, Access::Public),
        row(
            "GET",
            "/v1/log/checkpoint",
            "/v1/log/checkpoint",
            200,
            Access::Public,
        ),
        row("GET", "/v1/log/key", "/v1/log/key", 200, Access::Public),
        row(
            "GET",
            "/v1/log/proof/inclusion",
            "/v1/log/proof/inclusion?index=0&size=2",
            200,
            Access::Public,
        ),
        row(
            "GET",
            "/v1/log/proof/consistency",
            "/v1/log/proof/consistency?from=1&to=2",
            200,
            Access::Public,
        ),
        row(
            "GET",
            "/v1/log/entries",
            "/v1/log/entries?start=0&end=2",
            200,
            Access::Only(&[Admin, AuditorGlobal]),
        ),
        Row {
            body: Body::FreshIssuance,
            ..row(
                "POST",
                "/v1/issuances",
                "/v1/issuances",
                201,
                Access::Only(&[Admin, IssuerOwn]),
            )
        },
        row(
            "GET",
            "/v1/vos/{vo}/tokens",
            "/v1/vos/atlas/tokens?reason=MATRIX-1&client_id=test-client",
            200,
            Access::Only(OFFICERS),
        ),
        row(
            "GET",
            "/v1/vos/{vo}/tokens/{jti}",
            &format!("/v1/vos/atlas/tokens/{JTI}?reason=MATRIX-1"),
            200,
            Access::Only(OFFICERS),
        ),
        row(
            "GET",
            "/v1/vos/{vo}/persons/{person}/tokens",
            &format!("/v1/vos/atlas/persons/{person}/tokens?reason=MATRIX-1"),
            200,
            Access::Only(OFFICERS),
        ),
        row(
            "GET",
            "/v1/vos/{vo}/persons/{person}/timeline",
            &format!("/v1/vos/atlas/persons/{person}/timeline?reason=MATRIX-1"),
            200,
            Access::Only(OFFICERS),
        ),
        row(
            "GET",
            "/v1/vos/{vo}/resolutions",
            "/v1/vos/atlas/resolutions",
            200,
            Access::Only(&[Admin, OfficerOwn, OidcOfficer, AuditorGlobal, AuditorOwn]),
        ),
        row(
            "GET",
            "/v1/vos/{vo}/pseudonyms/{pseudonym}",
            &format!("/v1/vos/atlas/pseudonyms/{pseudonym}?reason=MATRIX-1"),
            200,
            Access::Only(OFFICERS),
        ),
        with(
            Body::FreshLink,
            row(
                "POST",
                "/v1/vos/{vo}/persons/{person}/identities",
                &format!("/v1/vos/atlas/persons/{person}/identities"),
                200,
                Access::Only(OFFICERS),
            ),
        ),
        with(
            Body::FreshMerge,
            row(
                "POST",
                "/v1/vos/{vo}/persons/{person}/merge",
                &format!("/v1/vos/atlas/persons/{person}/merge"),
                200,
                Access::Only(OFFICERS),
            ),
        ),
        with(
            Body::FreshErasure,
            row(
                "POST",
                "/v1/vos/{vo}/persons/{person}/erasure",
                "/v1/vos/atlas/persons/{person}/erasure",
                200,
                Access::Only(OFFICERS),
            ),
        ),
        with(
            Body::Json(r#"{"jti": "matrix-login", "reason": "MATRIX-1"}"#),
            row(
                "POST",
                "/v1/vos/{vo}/suspensions",
                "/v1/vos/atlas/suspensions",
                201,
                Access::Only(OFFICERS),
            ),
        ),
        row(
            "GET",
            "/v1/vos/{vo}/suspensions",
            "/v1/vos/atlas/suspensions",
            200,
            Access::Only(OFFICERS),
        ),
        with(
            Body::FreshVoSuspension,
            row(
                "DELETE",
                "/v1/vos/{vo}/suspensions/{id}",
                "/v1/vos/atlas/suspensions/{id}?reason=MATRIX-1",
                200,
                Access::Only(OFFICERS),
            ),
        ),
        with(
            Body::FreshVoSuspension,
            row(
                "GET",
                "/v1/vos/{vo}/suspensions/{id}/enforcement",
                "/v1/vos/atlas/suspensions/{id}/enforcement",
                200,
                Access::Only(&[Admin, OfficerOwn, OidcOfficer]),
            ),
        ),
        row(
            "GET",
            "/v1/sites/{site}/tokens/{jti}/pseudonym",
            &format!("/v1/sites/{SITE}/tokens/{JTI}/pseudonym"),
            200,
            Access::Only(&[SiteAdmin]),
        ),
        row(
            "GET",
            "/v1/sites/{site}/key",
            &format!("/v1/sites/{SITE}/key"),
            200,
            Access::Only(&[SiteAdmin]),
        ),
        with(
            Body::Json(r#"{"jti": "matrix-login", "seen_at": 1700000000, "host": "ce01"}"#),
            row(
                "POST",
                "/v1/sites/{site}/sightings",
                &format!("/v1/sites/{SITE}/sightings"),
                201,
                Access::Only(&[SiteAdmin, Reporter]),
            ),
        ),
        with(
            Body::Json(r#"{"jti": "matrix-login", "reason": "MATRIX-1", "scope": "compute"}"#),
            row(
                "POST",
                "/v1/sites/{site}/suspensions",
                &format!("/v1/sites/{SITE}/suspensions"),
                201,
                Access::Only(&[SiteAdmin]),
            ),
        ),
        row(
            "GET",
            "/v1/sites/{site}/suspensions",
            &format!("/v1/sites/{SITE}/suspensions"),
            200,
            Access::Only(&[SiteAdmin]),
        ),
        with(
            Body::FreshSiteSuspension,
            row(
                "DELETE",
                "/v1/sites/{site}/suspensions/{id}",
                &format!("/v1/sites/{SITE}/suspensions/{{id}}?reason=MATRIX-1"),
                200,
                Access::Only(&[SiteAdmin]),
            ),
        ),
        with(
            Body::FreshSiteSuspension,
            row(
                "GET",
                "/v1/sites/{site}/suspensions/{id}/enforcement",
                &format!("/v1/sites/{SITE}/suspensions/{{id}}/enforcement"),
                200,
                Access::Only(&[SiteAdmin]),
            ),
        ),
        with(
            Body::Json(r#"{"jti": "matrix-login", "evidence": "MATRIX-1"}"#),
            row(
                "POST",
                "/v1/sites/{site}/suspension-requests",
                &format!("/v1/sites/{SITE}/suspension-requests"),
                201,
                Access::Only(&[SiteAdmin]),
            ),
        ),
        row(
            "GET",
            "/v1/sites/{site}/suspension-requests",
            &format!("/v1/sites/{SITE}/suspension-requests?status=all"),
            200,
            Access::Only(&[SiteAdmin]),
        ),
        with(
            Body::FreshSuspensionRequest(""),
            row(
                "GET",
                "/v1/sites/{site}/suspension-requests/{id}",
                &format!("/v1/sites/{SITE}/suspension-requests/{{id}}"),
                200,
                Access::Only(&[SiteAdmin]),
            ),
        ),
        row(
            "GET",
            "/v1/vos/{vo}/suspension-requests",
            "/v1/vos/atlas/suspension-requests?status=pending",
            200,
            Access::Only(OFFICERS),
        ),
        with(
            Body::FreshSuspensionRequest("{}"),
            row(
                "POST",
                "/v1/vos/{vo}/suspension-requests/{id}/accept",
                "/v1/vos/atlas/suspension-requests/{id}/accept",
                200,
                Access::Only(OFFICERS),
            ),
        ),
        with(
            Body::FreshSuspensionRequest(r#"{"reason": "MATRIX-1"}"#),
            row(
                "POST",
                "/v1/vos/{vo}/suspension-requests/{id}/decline",
                "/v1/vos/atlas/suspension-requests/{id}/decline",
                200,
                Access::Only(OFFICERS),
            ),
        ),
        row(
            "GET",
            "/v1/sites/{site}/blocklist",
            &format!("/v1/sites/{SITE}/blocklist"),
            200,
            Access::Only(&[SiteAdmin, SiteReader]),
        ),
    ]
}

/// The server, its atlas issuer (whose tokens are both reported and used by operators), and
/// the `Authorization` header of every kind of caller.
struct Setup {
    server: TestServer,
    atlas: TestIssuer,
    callers: Vec<(Kind, Option<String>)>,
    person: String,
    pseudonym: String,
    issuer: String,
    officer: String,
    site_admin: String,
    posts: AtomicUsize,
    _dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let atlas = TestIssuer::new(ATLAS_ISS);
        let jwks = dir.path().join("atlas.json");
        atlas.write_jwks(&jwks);
        let config = format!(
            "{}\n[operators]\naudience = \"{AUDIENCE}\"\n\n\
             [[operator]]\niss = \"{ATLAS_ISS}\"\nclaim = \"wlcg.groups\"\n\
             value = \"/atlas/security\"\nrole = \"vo-security\"\nvo = \"atlas\"\n\n\
             [[site]]\nname = \"{SITE}\"\nvos = [\"atlas\", \"cms\"]\n\n\
             [[site]]\nname = \"RAL-LCG2\"\nvos = [\"atlas\"]\n",
            atlas.config_block(
                &format!("jwks_file = \"{}\"", jwks.display()),
                "[{ rule = \"fixed\", vo = \"atlas\" }]"
            )
        );
        let server = TestServer::start_with_config(&dir.path().join("data"), &config);

        let bearer = |secret: &str| Some(format!("Bearer {secret}"));
        let vo_role = |role: &str, vo: Option<&str>| bearer(&server.create_credential(role, vo));
        let site_role =
            |role: &str| bearer(&server.credential(&["--role", role, "--site", SITE]).secret);
        let site_admin = server
            .credential(&["--role", "site-admin", "--site", SITE])
            .secret;
        let revoked = server.create_credential_with_id("vo-security", Some("atlas"));
        server.revoke_credential(&revoked.id);
        let operator = |groups: &[&str], aud: &str, exp: i64| {
            let mut claims = atlas.claims(&format!("op-{exp}-{aud}-{}", groups.len()), "officer-7");
            claims["wlcg.groups"] = json!(groups);
            claims["aud"] = json!(aud);
            claims["exp"] = json!(exp);
            atlas.mint(Algorithm::RS256, &claims)
        };
        let in_ten_minutes = now_secs() + 600;
        let forged = {
            let stranger = TestIssuer::new(ATLAS_ISS);
            let mut claims = stranger.claims("op-forged", "mallory");
            claims["wlcg.groups"] = json!(["/atlas/security"]);
            claims["aud"] = json!(AUDIENCE);
            stranger.mint(Algorithm::RS256, &claims)
        };
        let callers = vec![
            (Kind::NoCredential, None),
            (Kind::Malformed, bearer("not-a-credential")),
            (Kind::WrongScheme, Some("Basic YWRtaW46YWRtaW4=".into())),
            (
                Kind::UnknownSecret,
                bearer("tlk_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            ),
            (Kind::Revoked, bearer(&revoked.secret)),
            (Kind::Admin, bearer(server.admin_secret())),
            (Kind::IssuerOwn, vo_role("issuer", Some("atlas"))),
            (Kind::IssuerForeign, vo_role("issuer", Some("cms"))),
            (Kind::OfficerOwn, vo_role("vo-security", Some("atlas"))),
            (Kind::OfficerForeign, vo_role("vo-security", Some("cms"))),
            (Kind::AuditorGlobal, vo_role("auditor", None)),
            (Kind::AuditorOwn, vo_role("auditor", Some("atlas"))),
            (Kind::AuditorForeign, vo_role("auditor", Some("cms"))),
            (Kind::SiteAdmin, bearer(&site_admin)),
            (
                Kind::SiteAdminForeign,
                bearer(
                    &server
                        .credential(&["--role", "site-admin", "--site", "RAL-LCG2"])
                        .secret,
                ),
            ),
            (Kind::SiteReader, site_role("site-reader")),
            (Kind::Reporter, site_role("reporter")),
            (
                Kind::OidcOfficer,
                bearer(&operator(
                    &["/atlas", "/atlas/security"],
                    AUDIENCE,
                    in_ten_minutes,
                )),
            ),
            (
                Kind::OidcNoRole,
                bearer(&operator(&["/atlas"], AUDIENCE, in_ten_minutes)),
            ),
            (
                Kind::OidcExpired,
                bearer(&operator(&["/atlas/security"], AUDIENCE, now_secs() - 3600)),
            ),
            (
                Kind::OidcWrongAudience,
                bearer(&operator(
                    &["/atlas/security"],
                    "https://elsewhere",
                    in_ten_minutes,
                )),
            ),
            (Kind::OidcForeignKey, bearer(&forged)),
        ];
        assert_eq!(
            callers.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            Kind::ALL,
            "one caller of every kind"
        );

        // One token of atlas in the log, and its person, found by an officer.
        let issuer = server.create_credential("issuer", Some("atlas"));
        let token = atlas.mint(Algorithm::ES256, &atlas.claims(JTI, "alice"));
        let reply = server.http().append(&issuer, &json!({"token": token}));
        assert_eq!(reply.status, 201, "{reply:?}");
        let officer = server.create_credential("vo-security", Some("atlas"));
        let resolved = server.http().get(
            &format!("/v1/vos/atlas/tokens/{JTI}?reason=SETUP"),
            Some(&officer),
        );
        assert_eq!(resolved.status, 200, "{resolved:?}");
        let person = resolved.json()["person"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            server.log_size() >= 2,
            "the proofs of the table need two entries"
        );
        let pseudonym = server.http().get(
            &format!("/v1/sites/{SITE}/tokens/{JTI}/pseudonym"),
            Some(&site_admin),
        );
        assert_eq!(pseudonym.status, 200, "{pseudonym:?}");
        let pseudonym = pseudonym.json()["pseudonym"].as_str().unwrap().to_string();

        Setup {
            server,
            atlas,
            callers,
            person,
            pseudonym,
            issuer,
            officer,
            site_admin,
            posts: AtomicUsize::new(0),
            _dir: dir,
        }
    }

    fn http(&self) -> Http {
        self.server.http()
    }

    /// Sends the row's request as `authorization`, preparing what it needs fresh.
    fn call(&self, row: &Row, authorization: Option<&str>) -> Reply {
        let n = self.posts.fetch_add(1, Ordering::SeqCst);
        let mut path = row.path.clone();
        let body = match row.body {
            Body::Empty => None,
            Body::FreshIssuance => {
                let claims = self.atlas.claims(&format!("matrix-post-{n}"), "bob");
                Some(json!({"token": self.atlas.mint(Algorithm::ES256, &claims)}).to_string())
            }
            Body::Json(json) => Some(json.to_string()),
            Body::FreshSiteSuspension => {
                let id = self.prepare(
                    &format!("/v1/sites/{SITE}/suspensions"),
                    &self.site_admin,
                    json!({"jti": JTI, "reason": "to lift"}),
                )["id"]
                    .clone();
                path = path.replace("{id}", id.as_str().unwrap());
                None
            }
            Body::FreshVoSuspension => {
                let id = self.prepare(
                    "/v1/vos/atlas/suspensions",
                    &self.officer,
                    json!({"jti": JTI, "reason": "to lift"}),
                )["id"]
                    .clone();
                path = path.replace("{id}", id.as_str().unwrap());
                None
            }
            Body::FreshSuspensionRequest(json) => {
                let id = self.prepare(
                    &format!("/v1/sites/{SITE}/suspension-requests"),
                    &self.site_admin,
                    json!({"jti": JTI, "evidence": "to decide"}),
                )["id"]
                    .clone();
                path = path.replace("{id}", id.as_str().unwrap());
                (!json.is_empty()).then(|| json.to_string())
            }
            Body::FreshLink => Some(
                json!({"iss": ATLAS_ISS, "sub": format!("linked-{n}"), "reason": "MATRIX-1"})
                    .to_string(),
            ),
            Body::FreshMerge => {
                let other = self.fresh_person(&format!("matrix-merge-{n}"), n);
                Some(json!({"other": other, "reason": "MATRIX-1"}).to_string())
            }
            Body::FreshErasure => {
                let person = self.fresh_person(&format!("matrix-erase-{n}"), n);
                path = path.replace("{person}", &person);
                Some(json!({"reason": "MATRIX-1"}).to_string())
            }
        };
        let content_type = body.as_ref().map(|_| "application/json");
        self.http().send_with_authorization(
            row.method,
            &path,
            authorization,
            content_type,
            body.as_deref().map(str::as_bytes),
        )
    }

    /// The id of a new person of atlas: the one of a token `jti` just logged for sub
    /// `other-{n}`.
    fn fresh_person(&self, jti: &str, n: usize) -> String {
        let token = self.atlas.mint(
            Algorithm::ES256,
            &self.atlas.claims(jti, &format!("other-{n}")),
        );
        let reply = self.http().append(&self.issuer, &json!({"token": token}));
        assert_eq!(reply.status, 201, "{reply:?}");
        let person = self.http().get(
            &format!("/v1/vos/atlas/tokens/{jti}?reason=SETUP"),
            Some(&self.officer),
        );
        person.json()["person"]["id"].as_str().unwrap().to_string()
    }

    /// A POST by a helper credential that must succeed; its JSON answer.
    fn prepare(&self, path: &str, secret: &str, body: Value) -> Value {
        let reply = self.http().post_json(path, Some(secret), &body);
        assert_eq!(reply.status, 201, "{reply:?}");
        reply.json()
    }

    fn authorization(&self, kind: Kind) -> Option<&str> {
        self.callers
            .iter()
            .find(|(k, _)| *k == kind)
            .and_then(|(_, a)| a.as_deref())
    }
}

/// Does `path` (query aside) fill in `template`?
fn fills(template: &str, path: &str) -> bool {
    let path = path.split('?').next().unwrap_or_default();
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| t == p || (t.starts_with('{') && t.ends_with('}') && !p.is_empty()))
}

/// The reply has the expected status, and a 401 or 403 has the API's error shape.
fn check(reply: &Reply, expected: u16) -> Result<(), String> {
    if reply.status != expected {
        return Err(format!("got {}: {}", reply.status, reply.body));
    }
    let code = match expected {
        401 => "unauthenticated",
        403 => "forbidden",
        _ => return Ok(()),
    };
    let json_type = reply
        .content_type
        .as_deref()
        .is_some_and(|t| t.starts_with("application/json"));
    let body: Value = serde_json::from_str(&reply.body).unwrap_or_default();
    let shaped = body.as_object().is_some_and(|o| o.len() == 1)
        && body["error"].as_object().is_some_and(|e| e.len() == 2)
        && body["error"]["code"] == code
        && body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty());
    let challenge = expected != 401 || reply.www_authenticate.as_deref() == Some("Bearer");
    if json_type && shaped && challenge {
        Ok(())
    } else {
        Err(format!("not the {expected} error shape: {reply:?}"))
    }
}

both_backends!(every_route_answers_every_kind_of_caller_as_the_table_says);
fn every_route_answers_every_kind_of_caller_as_the_table_says() {
    let s = Setup::new();
    let doc = s.http().get("/openapi.json", None);
    assert_eq!(doc.status, 200, "{doc:?}");
    let doc = doc.json();
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(SNAPSHOT).unwrap()).unwrap();
    assert!(
        doc == committed,
        "the server does not serve the committed {SNAPSHOT}; run \
         `UPDATE_SNAPSHOTS=1 cargo test -p tokenledger-server openapi` and review the change"
    );

    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    let rows = table(&s.person, &s.pseudonym);
    let tabled: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| (r.method.to_string(), r.template.to_string()))
        .collect();
    assert_eq!(tabled.len(), rows.len(), "one row per route");
    let missing: Vec<_> = documented.difference(&tabled).collect();
    assert!(
        missing.is_empty(),
        "routes with no row in the authorization matrix: {missing:?}"
    );
    let gone: Vec<_> = tabled.difference(&documented).collect();
    assert!(
        gone.is_empty(),
        "rows whose route no longer exists: {gone:?}"
    );

    let mut failures = Vec::new();
    for row in &rows {
        assert!(
            fills(row.template, &row.path),
            "{} does not fill {}",
            row.path,
            row.template
        );
        let operation = &doc["paths"][row.template][row.method.to_lowercase()];
        assert_eq!(
            matches!(row.access, Access::Public),
            operation.get("security").is_none(),
            "{} {}: public in the table iff the document asks no credential",
            row.method,
            row.template
        );
        for kind in Kind::ALL {
            let expected = row.expected(kind);
            let reply = s.call(row, s.authorization(kind));
            if let Err(why) = check(&reply, expected) {
                failures.push(format!(
                    "{} {} as {kind:?}: expected {expected}, {why}",
                    row.method, row.path
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} calls answered other than the matrix says:\n{}",
        failures.len(),
        rows.len() * Kind::ALL.len(),
        failures.join("\n")
    );
}

both_backends!(a_refused_caller_cannot_tell_whether_a_token_or_person_exists);
/// A foreign VO's officer (or anyone else refused) learns nothing: the same 403, byte for
/// byte, whether the jti or person exists or not, and nothing is logged.
fn a_refused_caller_cannot_tell_whether_a_token_or_person_exists() {
    let s = Setup::new();
    let size = s.server.log_size();
    let pairs = [
        (
            format!("/v1/vos/atlas/tokens/{JTI}?reason=probe"),
            "/v1/vos/atlas/tokens/no-such-jti?reason=probe".to_string(),
        ),
        (
            format!("/v1/vos/atlas/persons/{}/tokens?reason=probe", s.person),
            "/v1/vos/atlas/persons/pe-nobody/tokens?reason=probe".to_string(),
        ),
        (
            format!("/v1/vos/atlas/persons/{}/timeline?reason=probe", s.person),
            "/v1/vos/atlas/persons/pe-nobody/timeline?reason=probe".to_string(),
        ),
    ];
    for kind in [
        Kind::OfficerForeign,
        Kind::OidcNoRole,
        Kind::Admin,
        Kind::AuditorGlobal,
        Kind::AuditorOwn,
        Kind::IssuerOwn,
        Kind::SiteAdmin,
    ] {
        for (existing, missing) in &pairs {
            let get = |path: &str| {
                s.http()
                    .send_with_authorization("GET", path, s.authorization(kind), None, None)
            };
            let (known, unknown) = (get(existing), get(missing));
            known.assert_error(403, "forbidden");
            assert_eq!(
                (known.status, &known.body),
                (unknown.status, &unknown.body),
                "{kind:?}: {existing} and {missing} must answer alike"
            );
        }
    }
    assert_eq!(s.server.log_size(), size, "a refused call logs nothing");
}
