//! Fuzz targets of the ingest feed parsers (see `fuzz/README.md`), one per format, over raw
//! bytes and mutated lines of our fixtures: each input is parsed as one line and, for the
//! formats that have whole-file JSON arrays, as a file. Invariants: an input gives a report, a
//! skip or a local reject, never a panic; a report is of the format's kind, names its feed,
//! carries what the format promises (a compact JWT, a `jti`, times in seconds, an issuer the
//! site configured) and survives the JSON it is shipped as; array elements keep their lines.

use serde_json::Value;
use tokenledger_core::entry::canonical_json;
use tokenledger_core::wire::{IssuanceReport, SightingReport};
use tokenledger_fuzz::Target;

use super::formats::{Format, Parsed, Parser, Report, json_array};

/// Cases of each format's target, unless `TOKENLEDGER_FUZZ_CASES` says otherwise.
const CASES: u32 = 100_000;
const KEYCLOAK_ISSUER: &str = "https://kc.example/realms/egi";
/// The dCache OP aliases the parser is configured with: (issuer, alias).
const OP_ALIASES: [(&str, &str); 2] = [
    ("https://atlas-auth.example/", "ATLAS"),
    ("https://cms-auth.example/", "CMS"),
];

fn parser(format: Format) -> Parser {
    let aliases: Vec<(String, String)> = OP_ALIASES
        .iter()
        .map(|(iss, alias)| (iss.to_string(), alias.to_string()))
        .collect();
    match format {
        Format::KeycloakEvents => Parser::new(format, Some(KEYCLOAK_ISSUER.into()), &[]),
        Format::DcacheAccess => Parser::new(format, None, &aliases),
        _ => Parser::new(format, None, &[]),
    }
    .expect("a valid parser configuration")
}

/// Runs the target of `format`: every input as a line, and as a whole file where the format
/// has arrays.
fn fuzz(format: Format, words: &[&str]) {
    let parser = parser(format);
    Target::new(format!("ingest-{}", format.feed()), CASES)
        .words(words)
        .run(move |bytes| {
            let text = String::from_utf8_lossy(bytes);
            let line = text.lines().next().unwrap_or_default();
            let parsed = parser.parse_line(line);
            check(&parser, &parsed);
            let mut accepted = matches!(parsed, Ok(Some(_)));
            if let Some(items) = format.array_items() {
                accepted |= check_array(&parser, &text, items);
            }
            accepted
        });
}

/// Reads `text` as a whole-file array; true if it held a report.
fn check_array(parser: &Parser, text: &str, items: &str) -> bool {
    const FIRST_LINE: u64 = 3;
    let array = json_array(text, FIRST_LINE, items);
    let last_line = FIRST_LINE + text.matches('\n').count() as u64;
    let mut previous = FIRST_LINE;
    let mut reports = false;
    for (line, element) in array.elements {
        assert!(
            (previous..=last_line).contains(&line),
            "element at line {line} after {previous}"
        );
        previous = line;
        let parsed = parser.parse_element(element);
        check(parser, &parsed);
        reports |= matches!(parsed, Ok(Some(_)));
    }
    if let Some((line, error)) = array.error {
        assert!(
            (previous..=last_line).contains(&line),
            "error at line {line} after {previous}"
        );
        assert_eq!(error.code, "invalid_json");
    }
    reports
}

/// What every outcome of `parser` must be.
fn check(parser: &Parser, parsed: &Parsed) {
    match parsed {
        Ok(Some(Report::Issuance(report))) => check_issuance(parser.format(), report),
        Ok(Some(Report::Sighting(report))) => check_sighting(parser.format(), report),
        Ok(None) => {}
        Err(e) => assert!(
            !e.code.is_empty() && !e.message.is_empty(),
            "a reject has a code and a message: {e:?}"
        ),
    }
}

fn check_issuance(format: Format, report: &IssuanceReport) {
    assert!(
        !format.reports_sightings(),
        "{format:?} reported an issuance"
    );
    let shipped = serde_json::to_string(report).expect("a report serializes");
    let reread: IssuanceReport = serde_json::from_str(&shipped).expect("and parses again");
    // A non-integer number may come back a last digit off (serde_json's float parsing); the
    // ledger refuses those claims whole (canonical JSON has no floats), so none is logged.
    let claims_have_floats = report
        .claims
        .as_ref()
        .is_some_and(|c| canonical_json(&Value::Object(c.clone())).is_err());
    if !claims_have_floats {
        assert_eq!(&reread, report, "a report survives its JSON");
    }
    if format != Format::Ndjson {
        assert_eq!(report.feed.as_deref(), Some(format.feed()));
    }
    let claims = report.claims.as_ref();
    let claim = |name: &str| claims.and_then(|c| c.get(name));
    match format {
        Format::JwtLines => {
            let token = report
                .token
                .as_deref()
                .expect("a JWT line reports its token");
            assert_eq!(token.split('.').count(), 3, "{token}");
            assert!(!token.contains(char::is_whitespace), "{token:?}");
            assert!(claims.is_none());
        }
        Format::Ndjson => assert!(report.feed.is_some(), "the feed is set"),
        Format::IamAudit => {
            assert!(claim("jti").is_some_and(Value::is_string));
            for name in ["exp", "iat", "nbf"] {
                assert!(
                    claim(name).is_none_or(|t| t.is_null() || t.is_i64()),
                    "{name} in seconds: {:?}",
                    claim(name)
                );
            }
        }
        Format::KeycloakEvents => {
            assert_eq!(claim("iss"), Some(&Value::from(KEYCLOAK_ISSUER)));
            assert!(claim("jti").is_some_and(Value::is_string));
            assert!(claim("sub").is_some_and(Value::is_string));
            assert!(report.grant_type.is_some());
        }
        Format::HtcondorHistory | Format::DcacheAccess => unreachable!("sighting formats"),
    }
}

fn check_sighting(format: Format, report: &SightingReport) {
    assert!(format.reports_sightings(), "{format:?} reported a sighting");
    let shipped = serde_json::to_string(report).expect("a sighting serializes");
    let reread: SightingReport = serde_json::from_str(&shipped).expect("and parses again");
    assert_eq!(&reread, report, "a sighting survives its JSON");
    let iss = report.iss.as_deref().expect("a sighting names its issuer");
    assert!(!iss.is_empty());
    for text in [&report.host, &report.job_id].into_iter().flatten() {
        assert!(!text.is_empty(), "an empty host or job is left out");
    }
    match format {
        Format::HtcondorHistory => assert!(report.seen_at > 0, "{}", report.seen_at),
        Format::DcacheAccess => {
            assert!(OP_ALIASES.iter().any(|(known, _)| *known == iss), "{iss}");
            assert!(!report.jti.is_empty() && !report.jti.contains(','));
        }
        _ => unreachable!("issuance formats"),
    }
}

#[test]
fn fuzz_jwt_lines() {
    fuzz(Format::JwtLines, &[".", "eyJ", " ", "\t", "-", "_"]);
}

#[test]
fn fuzz_ndjson() {
    fuzz(
        Format::Ndjson,
        &[
            "\"token\":",
            "\"claims\":",
            "\"feed\":",
            "\"grant_type\":",
            "\"unknown\":1,",
        ],
    );
}

#[test]
fn fuzz_iam_audit() {
    fuzz(
        Format::IamAudit,
        &[
            "\"AccessTokenIssuedEvent\"",
            "\"@type\":",
            "\"payload\":",
            "\"jti\":",
            "\"exp\":",
            "1767229200000",
            "\"2026-01-01T00:00:00.000+00:00\"",
            "AUDIT : ",
        ],
    );
}

#[test]
fn fuzz_keycloak_events() {
    fuzz(
        Format::KeycloakEvents,
        &[
            "\"CODE_TO_TOKEN\"",
            "\"CLIENT_LOGIN\"",
            "_ERROR",
            "\"details\":",
            "\"token_id\":",
            "\"userId\":",
            "\"time\":",
            "\"error\":",
        ],
    );
}

#[test]
fn fuzz_htcondor_history() {
    fuzz(
        Format::HtcondorHistory,
        &[
            "\"AuthTokenId\":",
            "\"AuthTokenIssuer\":",
            "\"JobCurrentStartDate\":",
            "\"QDate\":",
            "\"RemoteHost\":",
            "\"GlobalJobId\":",
            "},{",
        ],
    );
}

#[test]
fn fuzz_dcache_access() {
    fuzz(
        Format::DcacheAccess,
        &[
            "user.jti=",
            "@ATLAS",
            "@CMS",
            "@LHCB",
            "ts=",
            "request.url=https://",
            "session=",
            "=\"",
            "\\\"",
            "[::1]",
            "+0100",
            "Z",
        ],
    );
}
