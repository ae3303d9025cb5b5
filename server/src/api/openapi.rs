//! The OpenAPI 3.1 document of the API, generated from the code and served at
//! `GET /openapi.json`.
//!
//! Operations come from the handlers' `#[utoipa::path]` annotations, collected by the router
//! itself ([`super::routes`]), so a route cannot exist without its operation; schemas come from
//! the wire types of `tokenledger-core` (its `openapi` feature). Every operation names the roles
//! that may call it in its description and in `x-roles`. Rules that hold for every operation
//! are applied here, once: the `bearer` security scheme, `400 BadRequest` on every operation
//! that takes a parameter or a body (a string in either may not carry U+0000), `401
//! Unauthenticated` on every operation that takes a credential, `413 PayloadTooLarge` on every
//! operation that takes a
//! body and `415 UnsupportedMediaType` where that body must be JSON, and `500 Internal` on
//! every operation that can fail. So are the bodies that carry exactly one of two members
//! ([`EXACTLY_ONE_OF`]), which JSON Schema can state and utoipa's derive cannot.
//!
//! The document states every rule the server checks that a schema can state (lengths,
//! patterns, ranges, enums, one member of two); the rules that relate parameters to each
//! other, to the log's state or to the clock (`index < size`, a size the log has reached,
//! `expires_at` in the future) are in the operations' descriptions.
//!
//! `server/tests/snapshots/openapi.json` pins the document; after a deliberate API change,
//! review the difference and rewrite it with
//! `UPDATE_SNAPSHOTS=1 cargo test -p tokenledger-server openapi`.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::OpenApi as _;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{
    AllOfBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Required, ResponseBuilder};

/// The security scheme every authenticated operation names.
const BEARER: &str = "bearer";
/// Reusable responses added to the operations by rule.
const BAD_REQUEST: &str = "BadRequest";
const UNAUTHENTICATED: &str = "Unauthenticated";
const PAYLOAD_TOO_LARGE: &str = "PayloadTooLarge";
const UNSUPPORTED_MEDIA_TYPE: &str = "UnsupportedMediaType";
const INTERNAL: &str = "Internal";
const UNAVAILABLE: &str = "Unavailable";

/// One member of two that a body carries, non-null: the schema, the two members with the
/// type each has when given, what `target` may be beside the first (a token suspension
/// needs `jti`), and the members that go only with the second (null beside the first).
struct OneOfTwo {
    schema: &'static str,
    first: (&'static str, Type),
    second: (&'static str, Type),
    targets_with_first: Option<&'static [&'static str]>,
    only_with_second: &'static [&'static str],
}

/// The bodies that carry exactly one of two members.
const EXACTLY_ONE_OF: [OneOfTwo; 4] = [
    OneOfTwo {
        schema: "IssuanceReport",
        first: ("token", Type::String),
        second: ("claims", Type::Object),
        targets_with_first: None,
        only_with_second: &[],
    },
    OneOfTwo {
        schema: "SiteSuspendRequest",
        first: ("pseudonym", Type::String),
        second: ("jti", Type::String),
        targets_with_first: Some(&["person"]),
        only_with_second: &[],
    },
    OneOfTwo {
        schema: "NewSuspensionRequest",
        first: ("pseudonym", Type::String),
        second: ("jti", Type::String),
        targets_with_first: None,
        only_with_second: &["iss"],
    },
    OneOfTwo {
        schema: "VoSuspendRequest",
        first: ("person", Type::String),
        second: ("jti", Type::String),
        targets_with_first: Some(&["person"]),
        only_with_second: &[],
    },
];

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "tokenledger",
        description = "An append-only, Ed25519-signed, verifiable log of OAuth token issuances \
            (WLCG / EGI), with VO-restricted resolution.\n\n\
            Access is denied by default. Each operation names the roles that may call it (its \
            description and `x-roles`); a credential's role is bound to a VO or a site where the \
            role needs one. Public operations take no credential. Every error, including an \
            unknown route (404) or method (405), is a JSON `ErrorBody`. No string a request \
            carries (path, query, body, token claims) may contain U+0000: 400.\n\n\
            Servers sharing one database have one writer; the others are standbys, which \
            serve reads and answer every operation that appends to the log (reports, \
            suspensions, lifts, links, merges, requests, sightings, and the resolutions and \
            key fetches that are logged) with 503 `not_the_writer`, naming the writer, and \
            `Retry-After`. `GET /healthz` says each server's role."
    ),
    tags(
        (name = "issuances", description = "Issuers report the tokens they mint"),
        (name = "log", description = "The signed log: checkpoints and proofs (public, hashes \
            only), entries (personal data)"),
        (name = "resolution", description = "A VO's security officers turn tokens into persons; \
            every answer is logged first"),
        (name = "audit", description = "Who resolved what"),
        (name = "health", description = "Liveness and metrics"),
        (name = "meta", description = "This document"),
    )
)]
struct ApiDoc;

/// The document's skeleton (info, tags), which the router fills with its operations.
pub(super) fn base() -> OpenApi {
    ApiDoc::openapi()
}

/// The complete document: every route of the router, and the rules that apply to all.
pub fn document() -> OpenApi {
    let mut doc = super::routes().into_openapi();
    let components = doc.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        BEARER.into(),
        RefOr::T(SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "An API credential (`tlk_...`, created with `tokenledger-server credential \
                     create`, bound to a role and a VO or site), or an operator's OIDC access \
                     token (JWT) from a configured issuer, for the ledger's audience, whose \
                     claims map to a role by the `[[operator]]` rules.",
                ))
                .build(),
        )),
    );
    components.responses.insert(
        BAD_REQUEST.into(),
        RefOr::T(
            error_response(
                "A malformed parameter or body; a string with U+0000 (`%00` in the path or \
                 query, `\\u0000` in JSON) is refused everywhere",
            )
            .build(),
        ),
    );
    components.responses.insert(
        UNAUTHENTICATED.into(),
        RefOr::T(
            error_response(
                "No credential, or a malformed, unknown, revoked or expired one; an OIDC token \
                 that is expired, for another audience, or not signed by its issuer's keys",
            )
            .header(
                "WWW-Authenticate",
                HeaderBuilder::new().description(Some("`Bearer`")).build(),
            )
            .build(),
        ),
    );
    components.responses.insert(
        PAYLOAD_TOO_LARGE.into(),
        RefOr::T(error_response("The body is larger than the configured limit").build()),
    );
    components.responses.insert(
        UNSUPPORTED_MEDIA_TYPE.into(),
        RefOr::T(error_response("The body is not `Content-Type: application/json`").build()),
    );
    components.responses.insert(
        INTERNAL.into(),
        RefOr::T(error_response("Internal error; the message says nothing internal").build()),
    );
    components.responses.insert(
        UNAVAILABLE.into(),
        RefOr::T(
            error_response(
                "The database cannot be reached now (`unavailable`), or the operation appends to \
                 the log and this server is a standby (`not_the_writer`, naming the writer); \
                 try again after `Retry-After` seconds",
            )
            .header(
                "Retry-After",
                HeaderBuilder::new()
                    .description(Some("Seconds: `1`"))
                    .build(),
            )
            .build(),
        ),
    );
    for rule in &EXACTLY_ONE_OF {
        let schema = components
            .schemas
            .remove(rule.schema)
            .unwrap_or_else(|| panic!("the document has no schema {}", rule.schema));
        components
            .schemas
            .insert(rule.schema.into(), exactly_one_of(schema, rule));
    }
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            apply_rules(operation);
        }
    }
    doc
}

fn error_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    )
}

/// `schema` with its rule: one branch per member, that member given (of its type) and the
/// other absent or null.
fn exactly_one_of(schema: RefOr<Schema>, rule: &OneOfTwo) -> RefOr<Schema> {
    let branch = |(given, given_type): &(&str, Type), (other, _): &(&str, Type)| {
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::Object))
            .required(*given)
            .property(*given, ObjectBuilder::new().schema_type(given_type.clone()))
            .property(*other, ObjectBuilder::new().schema_type(Type::Null))
    };
    let mut first = branch(&rule.first, &rule.second);
    if let Some(targets) = rule.targets_with_first {
        let allowed = targets.iter().map(|t| serde_json::Value::from(*t));
        first = first.property(
            "target",
            ObjectBuilder::new()
                .schema_type(SchemaType::AnyValue)
                .enum_values(Some(allowed.chain([serde_json::Value::Null]))),
        );
    }
    for member in rule.only_with_second {
        first = first.property(*member, ObjectBuilder::new().schema_type(Type::Null));
    }
    let one_of = OneOfBuilder::new()
        .item(first)
        .item(branch(&rule.second, &rule.first));
    AllOfBuilder::new().item(schema).item(one_of).into()
}

/// 400 where a parameter or a body is taken, 401 where a credential is, 413 where a body is
/// and 415 where it must be JSON, 500 where anything can fail and 503 there too (every such
/// operation may need the database; those that append, the writer). A status the operation
/// documents itself is kept.
fn apply_rules(operation: &mut Operation) {
    let responses = &mut operation.responses.responses;
    let parameters = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
    if parameters || operation.request_body.is_some() {
        responses
            .entry("400".into())
            .or_insert_with(|| Ref::from_response_name(BAD_REQUEST).into());
    }
    if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
        responses.insert(
            "401".into(),
            Ref::from_response_name(UNAUTHENTICATED).into(),
        );
    }
    if let Some(body) = &operation.request_body {
        responses
            .entry("413".into())
            .or_insert_with(|| Ref::from_response_name(PAYLOAD_TOO_LARGE).into());
        let required = matches!(body, RefOr::T(b) if matches!(b.required, Some(Required::True)));
        if required {
            responses
                .entry("415".into())
                .or_insert_with(|| Ref::from_response_name(UNSUPPORTED_MEDIA_TYPE).into());
        }
    }
    if responses.keys().any(|status| is_error(status)) {
        responses.insert("500".into(), Ref::from_response_name(INTERNAL).into());
        responses
            .entry("503".into())
            .or_insert_with(|| Ref::from_response_name(UNAVAILABLE).into());
    }
}

/// Is this response status (`"404"`, `"5XX"`) an error?
fn is_error(status: &str) -> bool {
    status.starts_with('4') || status.starts_with('5')
}

/// The document as served, built once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    document()
        .to_json()
        .expect("the OpenAPI document serializes")
});

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    operation_id = "openapi",
    summary = "This OpenAPI document",
    description = "Every route of the API, the roles that may call it, its parameters, bodies \
        and errors. Roles: public.",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)),
    extensions(("x-roles" = json!(["public"]))),
)]
pub async fn openapi_json() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots/openapi.json");

    fn json() -> Value {
        serde_json::to_value(document()).unwrap()
    }

    /// The committed document is the generated one. `UPDATE_SNAPSHOTS=1` rewrites it.
    #[test]
    fn openapi_document_matches_the_snapshot() {
        let generated = document().to_pretty_json().unwrap() + "\n";
        if std::env::var("UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1") {
            std::fs::write(SNAPSHOT, &generated).unwrap();
            return;
        }
        let committed = std::fs::read_to_string(SNAPSHOT).unwrap_or_default();
        if committed != generated {
            let first = committed
                .lines()
                .zip(generated.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(committed.lines().count().min(generated.lines().count()));
            let line = |text: &str| text.lines().nth(first).unwrap_or("<end>").to_string();
            panic!(
                "the OpenAPI document differs from {SNAPSHOT} from line {}:\n  committed: {}\n  \
                 generated: {}\nIf the API change is deliberate, review it and run \
                 `UPDATE_SNAPSHOTS=1 cargo test -p tokenledger-server openapi`.",
                first + 1,
                line(&committed),
                line(&generated),
            );
        }
    }

    #[test]
    fn openapi_is_version_3_1_with_a_bearer_scheme() {
        let doc = json();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(
            doc["components"]["securitySchemes"][BEARER]["scheme"],
            "bearer"
        );
        assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    }

    /// Every operation names its roles, declares its path parameters, answers 400 exactly when
    /// it takes a parameter or a body, 401 exactly when it takes a credential, 413 when it takes a body and 415 when that body must be JSON,
    /// and documents its errors as `ErrorBody` (but for `/healthz`, whose 503 is its own
    /// health document, `degraded`).
    #[test]
    fn openapi_operations_follow_the_rules() {
        let doc = json();
        let paths = doc["paths"].as_object().unwrap();
        let mut ids = std::collections::BTreeSet::new();
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                let at = format!("{method} {path}");
                assert!(ids.insert(op["operationId"].as_str().unwrap()), "{at}");
                let roles = op["x-roles"].as_array().unwrap_or_else(|| panic!("{at}"));
                assert!(!roles.is_empty(), "{at}");
                let public = roles == &[Value::from("public")];
                let secured = op.get("security").is_some();
                assert_eq!(public, !secured, "{at}: public iff no security");
                let responses = op["responses"].as_object().unwrap();
                assert_eq!(responses.contains_key("401"), secured, "{at}");
                let body = op.get("requestBody");
                let parameters = op["parameters"].as_array().is_some_and(|p| !p.is_empty());
                assert_eq!(
                    responses.contains_key("400"),
                    parameters || body.is_some(),
                    "{at}: 400"
                );
                assert_eq!(responses.contains_key("413"), body.is_some(), "{at}: 413");
                assert_eq!(
                    responses.contains_key("503"),
                    responses.contains_key("500"),
                    "{at}: 503 wherever anything can fail"
                );
                if body.is_some_and(|b| b["required"] == true) {
                    assert!(responses.contains_key("415"), "{at}: 415");
                }
                for (status, response) in responses {
                    if is_error(status) && response.get("$ref").is_none() {
                        let schema = match (path.as_str(), status.as_str()) {
                            ("/healthz", "503") => "#/components/schemas/Health",
                            _ => "#/components/schemas/ErrorBody",
                        };
                        assert_eq!(
                            response["content"]["application/json"]["schema"]["$ref"], schema,
                            "{at} {status}"
                        );
                    }
                }
                let declared: Vec<&str> = op["parameters"]
                    .as_array()
                    .map(|ps| {
                        ps.iter()
                            .filter(|p| p["in"] == "path")
                            .map(|p| p["name"].as_str().unwrap())
                            .collect()
                    })
                    .unwrap_or_default();
                let in_template: Vec<&str> = path
                    .split('/')
                    .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                    .collect();
                assert_eq!(declared, in_template, "{at}: path parameters");
            }
        }
        assert!(paths.contains_key("/openapi.json"));
    }
}
