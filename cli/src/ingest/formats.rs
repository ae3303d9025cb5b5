//! Input formats of `tokenledger ingest`: each turns one input line (or one element of a JSON
//! array: Keycloak events, HTCondor job ads) into a report (an issuance or a sighting), a skip
//! (nothing to report), or a local reject.

use std::collections::HashMap;

use serde_json::{Map, Value};
use tokenledger_core::strict_json::{StrictObject, StrictValue};
use tokenledger_core::wire::{IssuanceReport, SightingReport};

use super::sightings::{self, OpIssuers};

/// The feeds `ingest` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One compact JWT per line.
    JwtLines,
    /// One IssuanceReport JSON object per line.
    Ndjson,
    /// INDIGO IAM AUDIT logger lines (AccessTokenIssuedEvent).
    IamAudit,
    /// Keycloak admin events: a JSON array, or one event object per line.
    KeycloakEvents,
    /// HTCondor job ClassAds (`condor_history` / `condor_q` `-json` or `-jsonl`): sightings.
    HtcondorHistory,
    /// dCache door access log lines with `user.jti`: sightings.
    DcacheAccess,
}

impl Format {
    /// The format's name, which is also the `feed` its issuance reports carry.
    pub fn feed(self) -> &'static str {
        match self {
            Format::JwtLines => "jwt-lines",
            Format::Ndjson => "ndjson",
            Format::IamAudit => "iam-audit",
            Format::KeycloakEvents => "keycloak-events",
            Format::HtcondorHistory => "htcondor-history",
            Format::DcacheAccess => "dcache-access",
        }
    }

    /// Whether the format reports sightings at a site (else issuances).
    pub fn reports_sightings(self) -> bool {
        matches!(self, Format::HtcondorHistory | Format::DcacheAccess)
    }

    /// What a whole-file JSON array of this format holds, if the format has such files.
    pub fn array_items(self) -> Option<&'static str> {
        match self {
            Format::KeycloakEvents => Some("Keycloak events"),
            Format::HtcondorHistory => Some("HTCondor job ads"),
            Format::JwtLines | Format::Ndjson | Format::IamAudit | Format::DcacheAccess => None,
        }
    }
}

/// Why an input was rejected before reaching the server: a stable code and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    pub code: &'static str,
    pub message: String,
}

impl LineError {
    pub fn new(code: &'static str, message: impl Into<String>) -> LineError {
        LineError {
            code,
            message: message.into(),
        }
    }
}

/// A report to ship: where it goes follows from the format.
#[derive(Clone, Debug, PartialEq)]
pub enum Report {
    Issuance(IssuanceReport),
    Sighting(SightingReport),
}

/// What one input yields: a report to ship, `None` for an input with nothing to report (an
/// event that is not an issuance, a job or request without a token), or a local reject.
pub type Parsed = Result<Option<Report>, LineError>;

/// The IAM audit event type of an access token issuance (also on refresh and exchange).
const IAM_ISSUANCE_TYPE: &str = "AccessTokenIssuedEvent";

/// Keycloak event types that issue an access token, with the grant each implies.
const KEYCLOAK_ISSUING_TYPES: [(&str, &str); 6] = [
    ("CODE_TO_TOKEN", "authorization_code"),
    ("LOGIN", "authorization_code"),
    ("CLIENT_LOGIN", "client_credentials"),
    ("REFRESH_TOKEN", "refresh_token"),
    ("TOKEN_EXCHANGE", "token-exchange"),
    ("OAUTH2_DEVICE_CODE_TO_TOKEN", "device_code"),
];

/// Seconds values at or beyond this are taken for milliseconds (it is the year 5138 in seconds).
const MILLIS_THRESHOLD: i64 = 100_000_000_000;

/// Turns input lines of one format into reports.
#[derive(Clone, Debug)]
pub struct Parser {
    format: Format,
    /// The realm's issuer URL, for Keycloak events (which carry no `iss`).
    issuer: Option<String>,
    /// The issuer of each dCache OP alias, for dCache access log lines (which name the alias).
    op_issuers: OpIssuers,
}

impl Parser {
    /// A parser for `format`. Keycloak events need the realm's issuer URL; dCache access logs
    /// need the site's OP aliases (`ISSUER`, `ALIAS` pairs), which no other format takes.
    pub fn new(
        format: Format,
        issuer: Option<String>,
        op_aliases: &[(String, String)],
    ) -> Result<Parser, String> {
        if format == Format::KeycloakEvents && issuer.is_none() {
            return Err(
                "--format keycloak-events needs --issuer (the realm's issuer URL): \
                        Keycloak events carry no `iss`"
                    .into(),
            );
        }
        if format == Format::DcacheAccess && op_aliases.is_empty() {
            return Err(
                "--format dcache-access needs --op-alias ISSUER=ALIAS for each OP of the \
                        site's gplazma.oidc.provider!ALIAS lines: access logs name the OP by its \
                        alias only"
                    .into(),
            );
        }
        if format != Format::DcacheAccess && !op_aliases.is_empty() {
            return Err("--op-alias applies to --format dcache-access only".into());
        }
        let mut op_issuers = HashMap::new();
        for (iss, alias) in op_aliases {
            if let Some(other) = op_issuers.insert(alias.clone(), iss.clone())
                && other != *iss
            {
                return Err(format!(
                    "--op-alias gives the OP alias `{alias}` two issuers: {other} and {iss}"
                ));
            }
        }
        Ok(Parser {
            format,
            issuer,
            op_issuers,
        })
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Parses one non-blank input line.
    pub fn parse_line(&self, line: &str) -> Parsed {
        match self.format {
            Format::JwtLines => jwt_line(line),
            Format::Ndjson => ndjson_line(line),
            Format::IamAudit => iam_audit_line(line),
            Format::KeycloakEvents | Format::HtcondorHistory => {
                let items = self.format.array_items().expect("both formats have arrays");
                let trimmed = line.trim();
                if trimmed.starts_with('[') {
                    let code = match self.format {
                        Format::KeycloakEvents => "invalid_event",
                        _ => "invalid_ad",
                    };
                    return Err(LineError::new(
                        code,
                        format!(
                            "a JSON array of {items} is read only from a whole file (without \
                             --follow); followed files need one object per line"
                        ),
                    ));
                }
                let element = serde_json::from_str::<StrictValue>(trimmed).map_err(|e| {
                    LineError::new("invalid_json", format!("not one of the {items}: {e}"))
                })?;
                self.parse_element(element.0)
            }
            Format::DcacheAccess => sightings::dcache_access_line(line, &self.op_issuers),
        }
    }

    /// Parses one element of a JSON array (or one object line) of the formats that have them.
    pub fn parse_element(&self, element: Value) -> Parsed {
        match self.format {
            Format::HtcondorHistory => sightings::htcondor_ad(element),
            Format::KeycloakEvents => self.keycloak_event(element),
            other => unreachable!("{} has no JSON arrays", other.feed()),
        }
    }

    /// Turns one Keycloak event (`GET /admin/realms/{realm}/events`) into a claims report.
    fn keycloak_event(&self, event: Value) -> Parsed {
        let Value::Object(event) = event else {
            return Err(LineError::new(
                "invalid_event",
                "a Keycloak event is a JSON object",
            ));
        };
        let event_type = event.get("type").and_then(Value::as_str).ok_or_else(|| {
            LineError::new("invalid_event", "Keycloak event without a string `type`")
        })?;
        if event_type.ends_with("_ERROR") || event.get("error").is_some_and(|e| !e.is_null()) {
            return Ok(None);
        }
        let Some((_, implied_grant)) = KEYCLOAK_ISSUING_TYPES
            .iter()
            .find(|(issuing, _)| *issuing == event_type)
        else {
            return Ok(None);
        };
        let empty = Map::new();
        let details = event
            .get("details")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let detail = |name: &str| details.get(name).and_then(Value::as_str);
        let Some(token_id) = detail("token_id") else {
            return Ok(None);
        };
        let sub = event.get("userId").and_then(Value::as_str).ok_or_else(|| {
            LineError::new(
                "invalid_event",
                format!("{event_type} event of token {token_id} has no `userId`"),
            )
        })?;
        let mut claims = Map::new();
        let issuer = self.issuer.clone().expect("checked in Parser::new");
        claims.insert("iss".into(), issuer.into());
        claims.insert("jti".into(), token_id.into());
        claims.insert("sub".into(), sub.into());
        if let Some(client) = event.get("clientId").and_then(Value::as_str) {
            claims.insert("client_id".into(), client.into());
        }
        if let Some(scope) = detail("scope") {
            claims.insert("scope".into(), scope.into());
        }
        if let Some(audience) = detail("audience") {
            claims.insert("aud".into(), audience.into());
        }
        if let Some(time) = event.get("time").and_then(Value::as_i64) {
            claims.insert("iat".into(), (time.div_euclid(1000)).into());
        }
        Ok(Some(Report::Issuance(IssuanceReport {
            claims: Some(claims),
            grant_type: Some(detail("grant_type").unwrap_or(implied_grant).to_owned()),
            refresh_jti: detail("updated_refresh_token_id")
                .or(detail("refresh_token_id"))
                .map(str::to_owned),
            feed: Some(Format::KeycloakEvents.feed().to_owned()),
            ..IssuanceReport::default()
        })))
    }
}

fn jwt_line(line: &str) -> Parsed {
    let token = line.trim();
    let parts: Vec<&str> = token.split('.').collect();
    let base64url = |part: &&str| {
        part.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if parts.len() != 3 || parts[..2].iter().any(|p| p.is_empty()) || !parts.iter().all(base64url) {
        return Err(LineError::new(
            "invalid_jwt",
            "not a compact JWT (three base64url parts separated by dots)",
        ));
    }
    Ok(Some(Report::Issuance(IssuanceReport {
        token: Some(token.to_owned()),
        feed: Some(Format::JwtLines.feed().to_owned()),
        ..IssuanceReport::default()
    })))
}

fn ndjson_line(line: &str) -> Parsed {
    let mut report: IssuanceReport = serde_json::from_str(line.trim())
        .map_err(|e| LineError::new("invalid_report", format!("not an issuance report: {e}")))?;
    report
        .feed
        .get_or_insert_with(|| Format::Ndjson.feed().to_owned());
    Ok(Some(Report::Issuance(report)))
}

/// An IAM AUDIT logger line: optional logger prefix, then the event's JSON object.
fn iam_audit_line(line: &str) -> Parsed {
    let start = line
        .find('{')
        .ok_or_else(|| LineError::new("invalid_event", "no JSON object on this IAM audit line"))?;
    let event = serde_json::Deserializer::from_str(&line[start..])
        .into_iter::<StrictObject>()
        .next()
        .expect("a '{' starts a value")
        .map_err(|e| LineError::new("invalid_json", format!("IAM audit event: {e}")))?
        .0;
    let event_type = event.get("@type").and_then(Value::as_str).ok_or_else(|| {
        LineError::new("invalid_event", "IAM audit event without a string `@type`")
    })?;
    if event_type != IAM_ISSUANCE_TYPE {
        return Ok(None);
    }
    let mut claims = match event.get("payload") {
        Some(Value::Object(payload)) => payload.clone(),
        _ => {
            return Err(LineError::new(
                "invalid_event",
                "AccessTokenIssuedEvent without a `payload` object (the token's claims)",
            ));
        }
    };
    if !claims.get("jti").is_some_and(Value::is_string) {
        return Err(LineError::new(
            "missing_jti",
            "AccessTokenIssuedEvent without `payload.jti`: the token cannot be identified",
        ));
    }
    for name in ["exp", "iat", "nbf"] {
        if let Some(value) = claims.get_mut(name) {
            *value = seconds(name, value)?;
        }
    }
    let text = |name: &str| event.get(name).and_then(Value::as_str).map(str::to_owned);
    Ok(Some(Report::Issuance(IssuanceReport {
        claims: Some(claims),
        grant_type: text("grantType"),
        refresh_jti: text("refreshTokenJti"),
        feed: Some(Format::IamAudit.feed().to_owned()),
        ..IssuanceReport::default()
    })))
}

/// A time claim as IAM's Jackson mapper may write it (seconds, milliseconds or an ISO-8601
/// date, depending on its configuration), as integer seconds since 1970.
fn seconds(name: &str, value: &Value) -> Result<Value, LineError> {
    let bad = || {
        LineError::new(
            "invalid_claims",
            format!("payload.{name} is not a time (seconds, milliseconds or ISO-8601): {value}"),
        )
    };
    match value {
        Value::Null => Ok(Value::Null),
        Value::Number(n) => {
            let t = n.as_i64().ok_or_else(bad)?;
            Ok(if t >= MILLIS_THRESHOLD { t / 1000 } else { t }.into())
        }
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp().into())
            .map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// A JSON array file as read: its elements, each with the line it starts on, and the syntax
/// error that ended it early, with its line.
#[derive(Debug, Default)]
pub struct JsonArray {
    pub elements: Vec<(u64, Value)>,
    pub error: Option<(u64, LineError)>,
}

/// Reads a JSON array of `items` (Keycloak's `GET /admin/realms/{realm}/events`, HTCondor's
/// `-json` output, which may be pretty-printed over many lines); `first_line` is the number of
/// the line `text` starts on. A syntax error ends the array after the elements read before it.
pub fn json_array(text: &str, first_line: u64, items: &str) -> JsonArray {
    let bytes = text.as_bytes();
    let mut line = first_line;
    let mut counted = 0;
    let mut line_at = |pos: usize| {
        line += bytes[counted..pos].iter().filter(|b| **b == b'\n').count() as u64;
        counted = pos;
        line
    };
    let skip_ws = |mut pos: usize| {
        while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        pos
    };
    let mut elements = Vec::new();
    let mut pos = skip_ws(0);
    if bytes.get(pos) != Some(&b'[') {
        let error = LineError::new("invalid_json", format!("expected a JSON array of {items}"));
        return JsonArray {
            elements,
            error: Some((line_at(pos), error)),
        };
    }
    pos = skip_ws(pos + 1);
    if bytes.get(pos) == Some(&b']') {
        return trailing(elements, items, bytes, skip_ws(pos + 1), &mut line_at);
    }
    loop {
        let start = pos;
        let mut stream =
            serde_json::Deserializer::from_slice(&bytes[start..]).into_iter::<StrictValue>();
        match stream.next() {
            Some(Ok(StrictValue(value))) => {
                elements.push((line_at(start), value));
                pos = skip_ws(start + stream.byte_offset());
            }
            Some(Err(e)) => {
                let error = LineError::new("invalid_json", format!("array of {items}: {e}"));
                return JsonArray {
                    elements,
                    error: Some((line_at(start) + e.line() as u64 - 1, error)),
                };
            }
            None => break,
        }
        match bytes.get(pos) {
            Some(b',') => pos = skip_ws(pos + 1),
            Some(b']') => return trailing(elements, items, bytes, skip_ws(pos + 1), &mut line_at),
            _ => break,
        }
    }
    let error = LineError::new(
        "invalid_json",
        format!("array of {items}: expected `,` or `]` after an element"),
    );
    JsonArray {
        elements,
        error: Some((line_at(pos), error)),
    }
}

/// Ends an array read: only whitespace may follow the closing bracket.
fn trailing(
    elements: Vec<(u64, Value)>,
    items: &str,
    bytes: &[u8],
    pos: usize,
    line_at: &mut impl FnMut(usize) -> u64,
) -> JsonArray {
    let error = (pos < bytes.len()).then(|| {
        let error = LineError::new(
            "invalid_json",
            format!("array of {items}: unexpected text after the closing `]`"),
        );
        (line_at(pos), error)
    });
    JsonArray { elements, error }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parser(format: Format) -> Parser {
        Parser::new(format, Some("https://kc.example/realms/egi".into()), &[]).unwrap()
    }

    fn report(parsed: Parsed) -> IssuanceReport {
        match parsed.expect("parsed").expect("a report") {
            Report::Issuance(report) => report,
            other => panic!("not an issuance: {other:?}"),
        }
    }

    const JWT: &str = "eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJ4In0.c2ln";

    #[test]
    fn jwt_lines_are_trimmed() {
        let r = report(parser(Format::JwtLines).parse_line(&format!("  {JWT}\t ")));
        assert_eq!(r.token.as_deref(), Some(JWT));
        assert_eq!(r.feed.as_deref(), Some("jwt-lines"));
        assert_eq!(r.claims, None);
    }

    #[test]
    fn jwt_lines_refuse_what_is_not_a_compact_jwt() {
        for bad in [
            "hello",
            "a.b",
            "a.b.c.d",
            ".b.c",
            "a b.c.d",
            "{\"token\":\"x\"}",
        ] {
            let e = parser(Format::JwtLines).parse_line(bad).unwrap_err();
            assert_eq!(e.code, "invalid_jwt", "{bad}");
        }
    }

    #[test]
    fn ndjson_sets_the_feed_only_when_absent() {
        let p = parser(Format::Ndjson);
        let r = report(p.parse_line(&format!(
            r#"{{"token":"{JWT}","grant_type":"refresh_token"}}"#
        )));
        assert_eq!(r.feed.as_deref(), Some("ndjson"));
        assert_eq!(r.grant_type.as_deref(), Some("refresh_token"));
        let r = report(p.parse_line(r#"{"claims":{"jti":"j"},"feed":"sidecar"}"#));
        assert_eq!(r.feed.as_deref(), Some("sidecar"));
        assert_eq!(
            p.parse_line("{\"tokn\":1}").unwrap_err().code,
            "invalid_report"
        );
        assert_eq!(p.parse_line("not json").unwrap_err().code, "invalid_report");
    }

    fn iam_event(event_type: &str) -> Value {
        json!({
            "timestamp": 1767225600123i64,
            "@type": event_type,
            "category": "TOKEN",
            "principal": "alice",
            "message": "Issue access token",
            "scopes": ["openid", "compute.create"],
            "subject": "alice",
            "grantType": "authorization_code",
            "header": {"alg": "RS256", "kid": "rsa1"},
            "payload": {
                "iss": "https://atlas-auth.example/",
                "sub": "7f2e-uuid",
                "jti": "jti-1",
                "client_id": "rucio",
                "scope": "openid compute.create",
                "aud": "https://wlcg.cern.ch/jwt/v1/any",
                "iat": 1767225600,
                "exp": 1767229200
            },
            "refreshTokenJti": "rt-1",
            "source": "DefaultOAuth2ProviderTokenService"
        })
    }

    #[test]
    fn iam_audit_takes_the_payload_claims_not_the_event_subject() {
        let line = iam_event(IAM_ISSUANCE_TYPE).to_string();
        let r = report(parser(Format::IamAudit).parse_line(&line));
        let claims = r.claims.unwrap();
        assert_eq!(claims["sub"], "7f2e-uuid");
        assert_eq!(claims["jti"], "jti-1");
        assert_eq!(claims["client_id"], "rucio");
        assert_eq!(claims["exp"], 1767229200);
        assert_eq!(r.grant_type.as_deref(), Some("authorization_code"));
        assert_eq!(r.refresh_jti.as_deref(), Some("rt-1"));
        assert_eq!(r.feed.as_deref(), Some("iam-audit"));
        assert_eq!(r.token, None);
    }

    #[test]
    fn iam_audit_skips_a_logger_prefix() {
        let line = format!(
            "2026-01-01 00:00:00.123  INFO 1234 --- [nio-8080-exec-3] AUDIT : {}",
            iam_event(IAM_ISSUANCE_TYPE)
        );
        let r = report(parser(Format::IamAudit).parse_line(&line));
        assert_eq!(r.claims.unwrap()["jti"], "jti-1");
    }

    #[test]
    fn iam_audit_skips_other_event_types() {
        for other in [
            "RefreshTokenIssuedEvent",
            "IdTokenIssuedEvent",
            "AccountUpdateEvent",
        ] {
            let line = iam_event(other).to_string();
            assert_eq!(
                parser(Format::IamAudit).parse_line(&line),
                Ok(None),
                "{other}"
            );
        }
    }

    #[test]
    fn iam_audit_without_jti_is_rejected() {
        let mut event = iam_event(IAM_ISSUANCE_TYPE);
        event["payload"].as_object_mut().unwrap().remove("jti");
        let e = parser(Format::IamAudit)
            .parse_line(&event.to_string())
            .unwrap_err();
        assert_eq!(e.code, "missing_jti");
        assert!(e.message.contains("payload.jti"), "{}", e.message);
        event.as_object_mut().unwrap().remove("payload");
        let e = parser(Format::IamAudit)
            .parse_line(&event.to_string())
            .unwrap_err();
        assert_eq!(e.code, "invalid_event");
    }

    #[test]
    fn iam_audit_unreadable_lines_are_rejected() {
        let p = parser(Format::IamAudit);
        let cases = [
            ("Data parsing error: boom", "invalid_event"),
            ("prefix {\"@type\": ", "invalid_json"),
            ("{\"category\": \"TOKEN\"}", "invalid_event"),
        ];
        for (line, code) in cases {
            assert_eq!(p.parse_line(line).unwrap_err().code, code, "{line}");
        }
    }

    #[test]
    fn iam_audit_time_claims_become_seconds() {
        let mut event = iam_event(IAM_ISSUANCE_TYPE);
        event["payload"]["exp"] = json!(1767229200000i64);
        event["payload"]["iat"] = json!("2026-01-01T00:00:00.000+00:00");
        event["payload"]["nbf"] = json!(null);
        let claims = report(parser(Format::IamAudit).parse_line(&event.to_string()))
            .claims
            .unwrap();
        assert_eq!(claims["exp"], 1767229200);
        assert_eq!(claims["iat"], 1767225600);
        assert_eq!(claims["nbf"], Value::Null);
        event["payload"]["exp"] = json!("tomorrow");
        let e = parser(Format::IamAudit)
            .parse_line(&event.to_string())
            .unwrap_err();
        assert_eq!(e.code, "invalid_claims");
    }

    fn kc_event(event_type: &str) -> Value {
        json!({
            "id": "8b7d",
            "time": 1767225600999i64,
            "type": event_type,
            "realmId": "egi",
            "clientId": "pilot-factory",
            "userId": "f81d4fae-user",
            "sessionId": "s-1",
            "ipAddress": "192.0.2.7",
            "details": {
                "token_id": "kc-jti-1",
                "refresh_token_id": "kc-rt-old",
                "scope": "openid eduperson_entitlement",
                "username": "alice",
                "client_auth_method": "client-secret"
            }
        })
    }

    #[test]
    fn keycloak_event_becomes_a_claims_report() {
        let mut event = kc_event("CODE_TO_TOKEN");
        event["details"]["audience"] = json!("https://storage.example");
        let r = report(parser(Format::KeycloakEvents).parse_line(&event.to_string()));
        assert_eq!(
            Value::Object(r.claims.unwrap()),
            json!({
                "iss": "https://kc.example/realms/egi",
                "jti": "kc-jti-1",
                "sub": "f81d4fae-user",
                "client_id": "pilot-factory",
                "scope": "openid eduperson_entitlement",
                "aud": "https://storage.example",
                "iat": 1767225600,
            })
        );
        assert_eq!(r.refresh_jti.as_deref(), Some("kc-rt-old"));
        assert_eq!(r.feed.as_deref(), Some("keycloak-events"));
    }

    #[test]
    fn keycloak_issuing_types_imply_their_grant() {
        let p = parser(Format::KeycloakEvents);
        for (event_type, grant) in [
            ("CODE_TO_TOKEN", "authorization_code"),
            ("LOGIN", "authorization_code"),
            ("CLIENT_LOGIN", "client_credentials"),
            ("REFRESH_TOKEN", "refresh_token"),
            ("TOKEN_EXCHANGE", "token-exchange"),
            ("OAUTH2_DEVICE_CODE_TO_TOKEN", "device_code"),
        ] {
            let r = report(p.keycloak_event(kc_event(event_type)));
            assert_eq!(r.grant_type.as_deref(), Some(grant), "{event_type}");
        }
        let mut event = kc_event("LOGIN");
        event["details"]["grant_type"] = json!("password");
        assert_eq!(
            report(p.keycloak_event(event)).grant_type.as_deref(),
            Some("password")
        );
    }

    #[test]
    fn keycloak_updated_refresh_token_is_preferred() {
        let mut event = kc_event("REFRESH_TOKEN");
        event["details"]["updated_refresh_token_id"] = json!("kc-rt-new");
        let r = report(parser(Format::KeycloakEvents).keycloak_event(event));
        assert_eq!(r.refresh_jti.as_deref(), Some("kc-rt-new"));
    }

    #[test]
    fn keycloak_errors_other_types_and_tokenless_events_are_skipped() {
        let p = parser(Format::KeycloakEvents);
        for event_type in [
            "CODE_TO_TOKEN_ERROR",
            "LOGIN_ERROR",
            "LOGOUT",
            "USER_INFO_REQUEST",
        ] {
            assert_eq!(
                p.keycloak_event(kc_event(event_type)),
                Ok(None),
                "{event_type}"
            );
        }
        let mut failed = kc_event("CLIENT_LOGIN");
        failed["error"] = json!("invalid_client_credentials");
        assert_eq!(p.keycloak_event(failed), Ok(None));
        let mut tokenless = kc_event("LOGIN");
        tokenless["details"]
            .as_object_mut()
            .unwrap()
            .remove("token_id");
        assert_eq!(p.keycloak_event(tokenless), Ok(None));
    }

    #[test]
    fn keycloak_malformed_events_are_rejected() {
        let p = parser(Format::KeycloakEvents);
        let mut userless = kc_event("CODE_TO_TOKEN");
        userless.as_object_mut().unwrap().remove("userId");
        assert_eq!(
            p.keycloak_event(userless).unwrap_err().code,
            "invalid_event"
        );
        assert_eq!(
            p.parse_line("{\"time\": 1}").unwrap_err().code,
            "invalid_event"
        );
        assert_eq!(p.parse_line("{nope").unwrap_err().code, "invalid_json");
        assert_eq!(p.parse_line("[{}]").unwrap_err().code, "invalid_event");
    }

    #[test]
    fn keycloak_needs_an_issuer() {
        assert!(Parser::new(Format::KeycloakEvents, None, &[]).is_err());
        assert!(Parser::new(Format::IamAudit, None, &[]).is_ok());
    }

    #[test]
    fn op_aliases_are_for_dcache_access_only_and_name_one_issuer_each() {
        let alias = |iss: &str, alias: &str| (iss.to_owned(), alias.to_owned());
        let e = Parser::new(Format::DcacheAccess, None, &[]).unwrap_err();
        assert!(e.contains("needs --op-alias"), "{e}");
        let e = Parser::new(Format::HtcondorHistory, None, &[alias("https://i/", "A")]);
        assert!(e.unwrap_err().contains("dcache-access only"));
        let e = Parser::new(
            Format::DcacheAccess,
            None,
            &[alias("https://i/", "A"), alias("https://j/", "A")],
        );
        assert!(e.unwrap_err().contains("two issuers"));
        let both = [
            alias("https://i/", "A"),
            alias("https://i/", "B"),
            alias("https://i/", "A"),
        ];
        assert!(Parser::new(Format::DcacheAccess, None, &both).is_ok());
    }

    const EVENTS: &str = "Keycloak events";

    #[test]
    fn array_elements_carry_their_lines() {
        let text = format!(
            "[\n  {},\n  {}\n,{}]\n",
            kc_event("LOGIN"),
            kc_event("LOGOUT"),
            kc_event("CLIENT_LOGIN")
        );
        let array = json_array(&text, 3, EVENTS);
        assert_eq!(array.error, None);
        let lines: Vec<u64> = array.elements.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [4, 5, 6]);
        assert_eq!(array.elements[2].1["type"], "CLIENT_LOGIN");
        let empty = json_array(" [ ] ", 1, EVENTS);
        assert!(empty.elements.is_empty() && empty.error.is_none());
    }

    #[test]
    fn array_errors_name_their_line_and_what_the_array_holds() {
        let array = json_array("[{\"type\":\"LOGIN\"},\n{\"type\": }]", 1, EVENTS);
        assert_eq!(array.elements.len(), 1);
        let (line, error) = array.error.unwrap();
        assert_eq!((line, error.code), (2, "invalid_json"));
        assert!(
            error.message.starts_with("array of Keycloak events: "),
            "{}",
            error.message
        );
        let array = json_array("[{}\n {}]", 1, EVENTS);
        assert_eq!((array.elements.len(), array.error.unwrap().0), (1, 2));
        assert_eq!(json_array("[{}]\nx", 1, EVENTS).error.unwrap().0, 2);
        assert!(json_array("[{}", 1, EVENTS).error.is_some());
        let (_, error) = json_array("{}", 1, "HTCondor job ads").error.unwrap();
        assert_eq!(error.message, "expected a JSON array of HTCondor job ads");
    }

    /// An event or report that names a member twice has no one reading: it is rejected
    /// here, as the server would refuse it, whichever value it would have kept.
    #[test]
    fn a_member_named_twice_is_rejected_in_every_json_feed() {
        let twice = |value: &Value, name: &str| {
            let text = value.to_string();
            let member = format!("\"{name}\":");
            assert!(text.contains(&member), "{text}");
            text.replacen(&member, &format!("{member}\"other\",{member}"), 1)
        };
        let rejected = |format: Format, line: &str| {
            let e = parser(format).parse_line(line).unwrap_err();
            assert!(e.message.contains("appears twice"), "{format:?}: {e:?}");
            e.code
        };
        let iam = twice(&iam_event("AccessTokenIssuedEvent"), "sub");
        assert_eq!(rejected(Format::IamAudit, &iam), "invalid_json");
        let kc = twice(&kc_event("CODE_TO_TOKEN"), "userId");
        assert_eq!(rejected(Format::KeycloakEvents, &kc), "invalid_json");
        let ndjson = r#"{"claims":{"iss":"https://i/","jti":"j","sub":"a","sub":"b"}}"#;
        assert_eq!(rejected(Format::Ndjson, ndjson), "invalid_report");
        let array = json_array(
            &format!("[{}]", twice(&kc_event("LOGIN"), "type")),
            1,
            EVENTS,
        );
        let (line, error) = array.error.unwrap();
        assert!(array.elements.is_empty() && line == 1, "{error:?}");
        assert!(error.message.contains("appears twice"), "{error:?}");
    }
}
