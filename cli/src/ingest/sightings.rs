//! Sighting formats of `tokenledger ingest`: HTCondor job ClassAds (`condor_history` /
//! `condor_q` with `-json` or `-jsonl`) and dCache door access log lines (NetLogger
//! `key=value`). Each input becomes a sighting of the token it names, a skip (no token), or a
//! local reject. Reject messages name attributes and keys, never a person's DN or subject.

use std::collections::HashMap;

use serde_json::{Map, Value};
use tokenledger_core::wire::SightingReport;

use super::formats::{LineError, Parsed, Report};

/// The issuer URL of each dCache OP alias (`gplazma.oidc.provider!ALIAS = ISSUER`).
pub type OpIssuers = HashMap<String, String>;

/// Job ad attributes that date a sighting, the first one set wins: the start of the current
/// (or last) run, the first start, the submission.
const HTCONDOR_TIMES: [&str; 3] = ["JobCurrentStartDate", "JobStartDate", "QDate"];

/// One HTCondor job ad: a sighting of the token the job was submitted with (`AuthTokenId`),
/// on the slot that runs or ran it, at the start of its run. Ads without `AuthTokenId`
/// (X.509 or unauthenticated submissions) are skipped.
pub fn htcondor_ad(ad: Value) -> Parsed {
    let Value::Object(ad) = ad else {
        return Err(LineError::new(
            "invalid_ad",
            "an HTCondor job ad is a JSON object",
        ));
    };
    let jti = match ad.get("AuthTokenId") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(jti)) => jti.clone(),
        Some(_) => {
            return Err(LineError::new(
                "invalid_ad",
                "the job ad's AuthTokenId is not a string",
            ));
        }
    };
    let iss = ad_text(&ad, "AuthTokenIssuer").ok_or_else(|| {
        LineError::new(
            "invalid_ad",
            "job ad with AuthTokenId but without AuthTokenIssuer: the token's issuer is unknown",
        )
    })?;
    let seen_at = HTCONDOR_TIMES
        .iter()
        .find_map(|name| ad.get(*name).and_then(Value::as_i64).filter(|t| *t > 0))
        .ok_or_else(|| {
            LineError::new(
                "missing_time",
                "job ad with none of JobCurrentStartDate, JobStartDate, QDate (unix seconds)",
            )
        })?;
    Ok(Some(Report::Sighting(SightingReport {
        jti,
        iss: Some(iss),
        seen_at,
        host: ad_text(&ad, "RemoteHost").or_else(|| ad_text(&ad, "LastRemoteHost")),
        job_id: ad_text(&ad, "GlobalJobId"),
    })))
}

/// A non-empty string attribute of a job ad.
fn ad_text(ad: &Map<String, Value>, name: &str) -> Option<String> {
    ad.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// One dCache access log line: with `user.jti=JTI@OP`, a sighting of that token at `ts`, on
/// the door host of `request.url` (HTTP doors), with the door session (`session`) as its job.
/// Lines without `user.jti` are skipped; an OP alias without an issuer is rejected.
pub fn dcache_access_line(line: &str, op_issuers: &OpIssuers) -> Parsed {
    let fields = netlogger_fields(line)?;
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    };
    let Some(token) = field("user.jti") else {
        return Ok(None);
    };
    if token.contains(',') {
        return Err(LineError::new(
            "several_tokens",
            "user.jti names several tokens; report each with `tokenledger site sighting`",
        ));
    }
    let (jti, op) = token
        .rsplit_once('@')
        .filter(|(jti, op)| !jti.is_empty() && !op.is_empty())
        .ok_or_else(|| LineError::new("invalid_line", "user.jti is not JTI@OP"))?;
    let iss = op_issuers.get(op).ok_or_else(|| {
        LineError::new(
            "unknown_op",
            format!(
                "the OP alias `{op}` has no issuer: pass --op-alias ISSUER={op} \
                 (dCache's gplazma.oidc.provider!{op})"
            ),
        )
    })?;
    let ts =
        field("ts").ok_or_else(|| LineError::new("missing_time", "access log line without ts="))?;
    let seen_at = access_log_time(ts).ok_or_else(|| {
        LineError::new(
            "invalid_time",
            format!("ts={ts} is not an ISO 8601 time with its offset"),
        )
    })?;
    Ok(Some(Report::Sighting(SightingReport {
        jti: jti.to_owned(),
        iss: Some(iss.clone()),
        seen_at,
        host: field("request.url").and_then(url_host).map(str::to_owned),
        job_id: field("session")
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
    })))
}

/// The `key=value` fields of a NetLogger line, in order, values unquoted. dCache quotes a
/// value holding a space, `"`, CR or LF, escaping `\`, `"`, CR and LF with a backslash.
fn netlogger_fields(line: &str) -> Result<Vec<(&str, String)>, LineError> {
    let invalid = |message: String| LineError::new("invalid_line", message);
    let mut fields = Vec::new();
    let mut rest = line.trim_start_matches(' ');
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once('=')
            .filter(|(key, _)| !key.is_empty() && !key.contains(' '))
            .ok_or_else(|| invalid(format!("not key=value pairs after field {}", fields.len())))?;
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => unquote(quoted)
                .ok_or_else(|| invalid(format!("the quoted value of {key} is malformed")))?,
            None => {
                let end = after.find(' ').unwrap_or(after.len());
                (after[..end].to_owned(), &after[end..])
            }
        };
        if !after.is_empty() && !after.starts_with(' ') {
            return Err(invalid(format!("text follows the quoted value of {key}")));
        }
        fields.push((key, value));
        rest = after.trim_start_matches(' ');
    }
    Ok(fields)
}

/// A quoted value without its opening quote: the value and what follows its closing quote,
/// or None if it is not closed or holds an escape dCache does not write.
fn unquote(quoted: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = quoted.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Some((value, &quoted[at + 1..])),
            '\\' => value.push(match chars.next()?.1 {
                '\\' => '\\',
                '"' => '"',
                'n' => '\n',
                'r' => '\r',
                _ => return None,
            }),
            c => value.push(c),
        }
    }
    None
}

/// A `ts=` value as unix seconds: dCache writes `2026-03-02T10:15:30.123+0100`; RFC 3339
/// (`+01:00`, `Z`) is accepted too.
fn access_log_time(ts: &str) -> Option<i64> {
    chrono::DateTime::parse_from_str(ts, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(ts))
        .ok()
        .map(|t| t.timestamp())
}

/// The host of an absolute URL (`https://door.example:2880/path` → `door.example`), without
/// user information, port or IPv6 brackets.
fn url_host(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split_once(']')?.0,
        None => host_port.split(':').next()?,
    };
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ATLAS: &str = "https://atlas-auth.example/";
    const CMS: &str = "https://cms-auth.example/";
    const CONDOR_ARRAY: &str = include_str!("../../tests/fixtures/htcondor-history.json");
    const CONDOR_LINES: &str = include_str!("../../tests/fixtures/htcondor-history.jsonl");
    const DCACHE_LOG: &str = include_str!("../../tests/fixtures/dcache-door.access");

    fn sighting(parsed: Parsed) -> SightingReport {
        match parsed.expect("parsed").expect("a report") {
            Report::Sighting(sighting) => sighting,
            other => panic!("not a sighting: {other:?}"),
        }
    }

    /// The fixture's ads, parsed: sightings, skips (None) and rejects (their codes).
    fn condor_outcomes(ads: Vec<Value>) -> Vec<Result<Option<SightingReport>, &'static str>> {
        ads.into_iter()
            .map(|ad| match htcondor_ad(ad) {
                Ok(Some(Report::Sighting(s))) => Ok(Some(s)),
                Ok(Some(other)) => panic!("not a sighting: {other:?}"),
                Ok(None) => Ok(None),
                Err(e) => Err(e.code),
            })
            .collect()
    }

    #[test]
    fn condor_history_json_ads_become_sightings_and_others_are_skipped_or_rejected() {
        let ads: Vec<Value> = serde_json::from_str(CONDOR_ARRAY).unwrap();
        let outcomes = condor_outcomes(ads);
        let running = SightingReport {
            jti: "5b8f6a1e-3c2d-4e7f-9a0b-1c2d3e4f5a6b".into(),
            iss: Some(ATLAS.into()),
            seen_at: 1_767_260_112,
            host: Some("slot1_12@wn-b7-031.cern.example".into()),
            job_id: Some("ce503.cern.example#4471203.0#1767259843".into()),
        };
        let finished = SightingReport {
            jti: "0e1d2c3b-4a59-4687-b7c6-d5e4f3a2b1c0".into(),
            iss: Some(ATLAS.into()),
            seen_at: 1_767_171_530,
            host: Some("slot1_3@wn-a2-117.cern.example".into()),
            job_id: Some("ce503.cern.example#4470988.0#1767170011".into()),
        };
        let idle = SightingReport {
            jti: "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a".into(),
            iss: Some(CMS.into()),
            seen_at: 1_767_262_205,
            host: None,
            job_id: Some("ce503.cern.example#4471377.0#1767262205".into()),
        };
        assert_eq!(
            outcomes,
            [
                Ok(Some(running)),
                Ok(Some(finished)),
                Ok(None),
                Ok(Some(idle)),
                Err("invalid_ad"),
                Err("missing_time"),
            ]
        );
    }

    #[test]
    fn condor_jsonl_ads_are_the_same_ads_one_a_line() {
        let array: Vec<Value> = serde_json::from_str(CONDOR_ARRAY).unwrap();
        let lines: Vec<Value> = CONDOR_LINES
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(condor_outcomes(lines), condor_outcomes(array));
    }

    #[test]
    fn condor_start_times_are_taken_in_order_and_unset_ones_passed_over() {
        let ad = |times: Value| {
            let mut ad = json!({"AuthTokenId": "j", "AuthTokenIssuer": ATLAS});
            ad.as_object_mut()
                .unwrap()
                .extend(times.as_object().unwrap().clone());
            sighting(htcondor_ad(ad)).seen_at
        };
        let all = json!({"JobCurrentStartDate": 30, "JobStartDate": 20, "QDate": 10});
        assert_eq!(ad(all), 30);
        assert_eq!(ad(json!({"JobStartDate": 20, "QDate": 10})), 20);
        assert_eq!(ad(json!({"JobCurrentStartDate": -1, "QDate": 10})), 10);
        assert_eq!(ad(json!({"JobCurrentStartDate": null, "QDate": 10})), 10);
    }

    #[test]
    fn condor_ads_that_are_not_job_ads_are_rejected() {
        for (ad, code) in [
            (json!([1]), "invalid_ad"),
            (json!({"AuthTokenId": 7, "QDate": 1}), "invalid_ad"),
            (
                json!({"AuthTokenId": "j", "AuthTokenIssuer": "", "QDate": 1}),
                "invalid_ad",
            ),
            (
                json!({"AuthTokenId": "j", "AuthTokenIssuer": ATLAS, "QDate": "x"}),
                "missing_time",
            ),
        ] {
            assert_eq!(htcondor_ad(ad.clone()).unwrap_err().code, code, "{ad}");
        }
        assert_eq!(htcondor_ad(json!({"AuthTokenId": null})), Ok(None));
    }

    fn op_issuers() -> OpIssuers {
        HashMap::from([
            ("ATLAS".to_owned(), ATLAS.to_owned()),
            ("CMS".to_owned(), CMS.to_owned()),
        ])
    }

    #[test]
    fn dcache_access_lines_with_a_jti_become_sightings() {
        let outcomes: Vec<Result<Option<SightingReport>, &str>> = DCACHE_LOG
            .lines()
            .map(|line| match dcache_access_line(line, &op_issuers()) {
                Ok(Some(Report::Sighting(s))) => Ok(Some(s)),
                Ok(Some(other)) => panic!("not a sighting: {other:?}"),
                Ok(None) => Ok(None),
                Err(e) => Err(e.code),
            })
            .collect();
        let webdav = SightingReport {
            jti: "5b8f6a1e-3c2d-4e7f-9a0b-1c2d3e4f5a6b".into(),
            iss: Some(ATLAS.into()),
            seen_at: 1_767_260_415,
            host: Some("dcache-door-03.cern.example".into()),
            job_id: Some(
                "door:WebDAV-dcache-door-03@webdav-dcache-door-03Domain:AAZGiwhNWPg".into(),
            ),
        };
        let xrootd = SightingReport {
            jti: "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a".into(),
            iss: Some(CMS.into()),
            seen_at: 1_767_262_331,
            host: None,
            job_id: Some(
                "door:Xrootd-dcache-door-05@xrootd-dcache-door-05Domain:AAZGixCkbyA".into(),
            ),
        };
        assert_eq!(
            outcomes,
            [
                Ok(Some(webdav)),
                Ok(None),
                Ok(None),
                Ok(Some(xrootd)),
                Ok(None),
                Err("unknown_op"),
                Err("invalid_line"),
                Err("invalid_time"),
            ]
        );
    }

    #[test]
    fn an_unknown_op_is_rejected_with_the_alias_to_configure() {
        let line = DCACHE_LOG.lines().nth(5).unwrap();
        let e = dcache_access_line(line, &op_issuers()).unwrap_err();
        assert!(
            e.message.contains("--op-alias ISSUER=LHCB"),
            "{}",
            e.message
        );
        let mut with_lhcb = op_issuers();
        with_lhcb.insert("LHCB".into(), "https://lhcb-auth.example/".into());
        let s = sighting(dcache_access_line(line, &with_lhcb));
        assert_eq!(s.iss.as_deref(), Some("https://lhcb-auth.example/"));
    }

    #[test]
    fn netlogger_values_are_unquoted_and_unescaped() {
        let fields = netlogger_fields(
            r#"level=INFO a=1 empty= q="x \"y\" \\z\nw" url=https://h/p?a=b last="""#,
        )
        .unwrap();
        let expected = [
            ("level", "INFO"),
            ("a", "1"),
            ("empty", ""),
            ("q", "x \"y\" \\z\nw"),
            ("url", "https://h/p?a=b"),
            ("last", ""),
        ];
        let got: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(got, expected);
        for bad in [
            "a=1 oops",
            "a=\"open",
            "a=\"bad \\t escape\"",
            "a=\"x\"y",
            "=1",
        ] {
            assert_eq!(
                netlogger_fields(bad).unwrap_err().code,
                "invalid_line",
                "{bad}"
            );
        }
    }

    #[test]
    fn jti_values_are_jti_at_op() {
        let line = |jti: &str| format!("ts=2026-01-01T00:00:00.000+0000 user.jti={jti}");
        let s = sighting(dcache_access_line(&line("a@b@ATLAS"), &op_issuers()));
        assert_eq!(s.jti, "a@b", "the OP follows the last @");
        for (jti, code) in [
            ("noop", "invalid_line"),
            ("@ATLAS", "invalid_line"),
            ("j@", "invalid_line"),
            ("j1@ATLAS,j2@CMS", "several_tokens"),
        ] {
            let e = dcache_access_line(&line(jti), &op_issuers()).unwrap_err();
            assert_eq!(e.code, code, "{jti}");
        }
        let e = dcache_access_line("user.jti=j@ATLAS", &op_issuers()).unwrap_err();
        assert_eq!(e.code, "missing_time");
    }

    #[test]
    fn access_log_times_have_an_offset() {
        for (ts, secs) in [
            ("2026-01-01T01:00:00.000+0100", 1_767_225_600),
            ("2026-01-01T00:00:00.999-0000", 1_767_225_600),
            ("2026-01-01T00:00:00Z", 1_767_225_600),
            ("2026-01-01T02:00:00+02:00", 1_767_225_600),
        ] {
            assert_eq!(access_log_time(ts), Some(secs), "{ts}");
        }
        for bad in ["2026-01-01T00:00:00.000", "2026-01-01", "yesterday"] {
            assert_eq!(access_log_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn url_hosts_drop_user_port_and_brackets() {
        for (url, host) in [
            ("https://door.example:2880/pnfs/x", Some("door.example")),
            ("https://door.example", Some("door.example")),
            ("http://u:p@door.example/x", Some("door.example")),
            ("https://[2001:db8::5]:443/x", Some("2001:db8::5")),
            ("https://door.example?x=1", Some("door.example")),
            ("/pnfs/x", None),
            ("https:///x", None),
        ] {
            assert_eq!(url_host(url), host, "{url}");
        }
    }
}
