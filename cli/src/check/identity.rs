//! Who is asking, as each caller of `tokenledger check` says it: HTCondor's decoded JWT
//! payload on stdin and `BEARER_TOKEN_0_*` variables, ARC's `%D` (`<iss>/<sub>`, plain
//! concatenation, or an X.509 DN: A-REX 6.17 passes nothing else, checked against the real
//! daemon), or a JWT / iss-sub-jti given by a person. Tokens are never verified here: the CE verified them before asking, and a person
//! asking about a token only learns what the blocklist says about its claims.

use std::io::{IsTerminal, Read};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::io::Errno;
use serde_json::Value;
use tokenledger_core::export::X509_ISSUER;

/// Largest JWT payload or token read (a token with many groups is a few kB).
pub const MAX_INPUT_BYTES: u64 = 1 << 20;
/// How long HTCondor's payload may take to arrive on stdin. It is written at once into the
/// pipe and the pipe closed, so this bounds only a caller that keeps stdin open.
pub const STDIN_WAIT: Duration = Duration::from_secs(2);

/// The identity and token a decision is about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub iss: String,
    /// Absent only for a token without `sub`: then only a token or client suspension can
    /// match.
    pub sub: Option<String>,
    pub jti: Option<String>,
    /// The token's `client_id`, else its `azp`: matches client suspensions. ARC's `%D`
    /// names none.
    pub client_id: Option<String>,
    /// The token's `iat` (unix seconds), compared with a cut-off; absent (ARC's `%D`, a
    /// token without it), a cut-off denies.
    pub iat: Option<i64>,
}

/// The process environment as a lookup (a closure, so tests can make one).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A variable of the real environment; unset and empty are the same.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The identity in a decoded JWT payload (`iss`, `sub`, `jti` as strings).
pub fn from_payload(bytes: &[u8]) -> Result<Identity, String> {
    let claims: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("the payload is not JSON: {e}"))?;
    let claim = |name: &str| -> Result<Option<String>, String> {
        match claims.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(_) => Err(format!("the payload's `{name}` is not a non-empty string")),
        }
    };
    if !claims.is_object() {
        return Err("the payload is not a JSON object".into());
    }
    let iat = match claims.get("iat") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_i64()
                .or_else(|| n.as_f64().and_then(whole_seconds))
                .ok_or("the payload's `iat` is not seconds since 1970")?,
        ),
        Some(_) => return Err("the payload's `iat` is not a number".into()),
    };
    Ok(Identity {
        iss: claim("iss")?.ok_or("the payload has no `iss`")?,
        sub: claim("sub")?,
        jti: claim("jti")?,
        client_id: match claim("client_id")? {
            Some(client) => Some(client),
            None => claim("azp")?,
        },
        iat,
    })
}

/// A NumericDate (RFC 7519: seconds since 1970, possibly with a fraction) as whole seconds,
/// rounded down: compared with a cut-off in whole seconds, the answer is the same as for the
/// exact time. `None` outside what an `i64` holds.
fn whole_seconds(seconds: f64) -> Option<i64> {
    let whole = seconds.floor();
    // i64::MAX as f64 is 2^63, one past the largest i64.
    (whole >= i64::MIN as f64 && whole < i64::MAX as f64).then_some(whole as i64)
}

/// An `iat` given as text (HTCondor's environment): whole seconds, or with a fraction.
fn seconds_of(text: &str) -> Option<i64> {
    let text = text.trim();
    text.parse()
        .ok()
        .or_else(|| text.parse::<f64>().ok().and_then(whole_seconds))
}

/// The identity in a JWT (`header.payload.signature`, payload decoded and NOT verified), or
/// in a decoded payload given as JSON.
pub fn from_token(text: &str) -> Result<Identity, String> {
    let text = text.trim();
    if text.starts_with('{') {
        return from_payload(text.as_bytes());
    }
    let mut parts = text.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a JWT (header.payload.signature) nor a JSON payload".into());
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "the JWT payload is not base64url".to_string())?;
    from_payload(&bytes)
}

/// The identity HTCondor puts in `BEARER_TOKEN_0_ISSUER`, `_SUBJECT`, `_CLAIM_jti_0`,
/// `_CLAIM_client_id_0` (else `_CLAIM_azp_0`) and `_CLAIM_iat_0`; `None` without an issuer.
/// An `iat` that is not a number of seconds (a fraction is rounded down) is taken as absent (a
/// cut-off then denies).
pub fn from_env(env: Env<'_>) -> Option<Identity> {
    Some(Identity {
        iss: env("BEARER_TOKEN_0_ISSUER")?,
        sub: env("BEARER_TOKEN_0_SUBJECT"),
        jti: env("BEARER_TOKEN_0_CLAIM_jti_0"),
        client_id: env("BEARER_TOKEN_0_CLAIM_client_id_0")
            .or_else(|| env("BEARER_TOKEN_0_CLAIM_azp_0")),
        iat: env("BEARER_TOKEN_0_CLAIM_iat_0").and_then(|t| seconds_of(&t)),
    })
}

/// HTCondor's plugin protocol: the decoded payload on stdin (preferred: it is what HTCondor
/// verified), else the environment. The jti, client and iat missing from one are taken from
/// the other.
pub fn htcondor(stdin: Option<&[u8]>, env: Env<'_>) -> Result<Identity, String> {
    let from_env = from_env(env);
    let payload = stdin
        .filter(|b| !b.iter().all(u8::is_ascii_whitespace))
        .map(from_payload);
    match (payload, from_env) {
        (Some(Ok(mut id)), env) => {
            if let Some(env) = env {
                id.jti = id.jti.or(env.jti);
                id.client_id = id.client_id.or(env.client_id);
                id.iat = id.iat.or(env.iat);
            }
            Ok(id)
        }
        (_, Some(id)) => Ok(id),
        (Some(Err(e)), None) => Err(format!("{e}, and BEARER_TOKEN_0_ISSUER is not set")),
        (None, None) => Err("no JWT payload on stdin and no BEARER_TOKEN_0_ISSUER".into()),
    }
}

/// Reads stdin to its end: [`read_bounded`]; `None` at once if it is a terminal.
pub fn read_stdin_bounded(wait: Duration) -> Option<Vec<u8>> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return None;
    }
    read_bounded(&mut stdin.lock(), wait)
}

/// Reads `source` to its end (at most [`MAX_INPUT_BYTES`]), waiting at most `wait` in all;
/// `None` if it is unreadable or did not end in time. `poll` comes before each read, so no
/// read blocks past the deadline (and no thread is needed).
fn read_bounded(source: &mut (impl Read + AsFd), wait: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + wait;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let timeout = Timespec {
            tv_sec: i64::try_from(left.as_secs()).ok()?,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let ready = poll(&mut [PollFd::new(source, PollFlags::IN)], Some(&timeout));
        match ready {
            Ok(0) => return None,
            Ok(_) => {}
            Err(Errno::INTR) => continue,
            Err(_) => return None,
        }
        // Readable (or at its end): one read returns what is there without blocking.
        match source.read(&mut buf) {
            Ok(0) => return Some(bytes),
            Ok(n) => {
                bytes.extend_from_slice(&buf[..n]);
                if bytes.len() as u64 > MAX_INPUT_BYTES {
                    return None;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// What ARC's `%D` names.
#[derive(Debug, PartialEq, Eq)]
pub enum ArcSubject {
    /// A token user, split at the longest configured issuer.
    Token(Identity),
    /// No configured issuer is a prefix: the ledger has nothing on it.
    Unlisted,
    /// An empty `%D`: A-REX asks for every request, also those without a token or
    /// certificate identity. There is no one to check.
    Nobody,
}

/// Splits `%D`: an X.509 DN (starting with `/`) is the identity `("x509", DN)`, as the ledger
/// keeps linked certificates; otherwise `<iss>/<sub>` with `iss` the longest configured issuer
/// that, followed by `/`, starts it (issuers may hold slashes, e.g.
/// `https://idp.example/realms/atlas/` gives `https://idp.example/realms/atlas//<sub>`).
pub fn split_arc(d: &str, issuers: &[String]) -> ArcSubject {
    if d.is_empty() {
        return ArcSubject::Nobody;
    }
    if d.starts_with('/') {
        return ArcSubject::Token(Identity {
            iss: X509_ISSUER.to_string(),
            sub: Some(d.to_string()),
            ..Identity::default()
        });
    }
    issuers
        .iter()
        .filter_map(|iss| {
            let sub = d.strip_prefix(iss.as_str())?.strip_prefix('/')?;
            (!sub.is_empty()).then_some((iss, sub))
        })
        .max_by_key(|(iss, _)| iss.len())
        .map_or(ArcSubject::Unlisted, |(iss, sub)| {
            ArcSubject::Token(Identity {
                iss: iss.clone(),
                sub: Some(sub.to_string()),
                ..Identity::default()
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REALM: &str = "https://idp.example/realms/atlas/";

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn id(iss: &str, sub: Option<&str>, jti: Option<&str>) -> Identity {
        Identity {
            iss: iss.into(),
            sub: sub.map(str::to_string),
            jti: jti.map(str::to_string),
            ..Identity::default()
        }
    }

    #[test]
    fn the_client_and_iat_come_from_the_payload_else_the_environment() {
        let with = |client: &str, iat| Identity {
            client_id: Some(client.into()),
            iat,
            ..id("https://p/", Some("s"), Some("j"))
        };
        let none = env(&[]);
        let payload = br#"{"iss": "https://p/", "sub": "s", "jti": "j", "client_id": "rucio", "azp": "other", "iat": 1700000000}"#;
        assert_eq!(
            htcondor(Some(payload), &none).unwrap(),
            with("rucio", Some(1_700_000_000))
        );
        let azp = br#"{"iss": "https://p/", "sub": "s", "jti": "j", "azp": "fts"}"#;
        assert_eq!(htcondor(Some(azp), &none).unwrap(), with("fts", None));
        let vars = env(&[
            ("BEARER_TOKEN_0_ISSUER", "https://p/"),
            ("BEARER_TOKEN_0_SUBJECT", "s"),
            ("BEARER_TOKEN_0_CLAIM_jti_0", "j"),
            ("BEARER_TOKEN_0_CLAIM_azp_0", "fts"),
            ("BEARER_TOKEN_0_CLAIM_iat_0", "1700000001"),
        ]);
        let bare = br#"{"iss": "https://p/", "sub": "s", "jti": "j"}"#;
        assert_eq!(
            htcondor(Some(bare), &vars).unwrap(),
            with("fts", Some(1_700_000_001))
        );
        assert_eq!(
            htcondor(None, &vars).unwrap(),
            with("fts", Some(1_700_000_001))
        );
        for bad in [r#""1700000000""#, "true", "1e300"] {
            let text = format!(r#"{{"iss": "https://p/", "iat": {bad}}}"#);
            assert!(
                from_payload(text.as_bytes()).unwrap_err().contains("`iat`"),
                "{bad}"
            );
        }
        assert!(
            from_payload(br#"{"iss": "https://p/", "client_id": 7}"#)
                .unwrap_err()
                .contains("client_id")
        );
    }

    /// RFC 7519's NumericDate may hold a fraction: rounded down, it compares with a cut-off
    /// (whole seconds) as the exact time does, from the payload and from the environment.
    #[test]
    fn a_fractional_iat_is_rounded_down() {
        let iat = |payload: &str| from_payload(payload.as_bytes()).unwrap().iat;
        assert_eq!(
            iat(r#"{"iss": "https://p/", "iat": 1700000000.75}"#),
            Some(1_700_000_000)
        );
        assert_eq!(
            iat(r#"{"iss": "https://p/", "iat": 1700000000.0}"#),
            Some(1_700_000_000)
        );
        assert_eq!(iat(r#"{"iss": "https://p/", "iat": -0.5}"#), Some(-1));
        let of_variable = |value: &str| {
            let pairs = [
                ("BEARER_TOKEN_0_ISSUER", "https://p/"),
                ("BEARER_TOKEN_0_CLAIM_iat_0", value),
            ];
            let vars = env(&pairs);
            from_env(&vars).unwrap().iat
        };
        assert_eq!(of_variable("1700000000.999"), Some(1_700_000_000));
        assert_eq!(of_variable(" 1700000001 "), Some(1_700_000_001));
        assert_eq!(of_variable("soon"), None);
        assert_eq!(of_variable("1e300"), None);
        // Under --htcondor the payload's fractional iat is used, not the environment's.
        let payload = br#"{"iss": "https://p/", "sub": "s", "iat": 1699999999.5}"#;
        let vars = env(&[
            ("BEARER_TOKEN_0_ISSUER", "https://p/"),
            ("BEARER_TOKEN_0_CLAIM_iat_0", "5"),
        ]);
        assert_eq!(
            htcondor(Some(payload), &vars).unwrap().iat,
            Some(1_699_999_999)
        );
        // Against a cut-off at 1700000000: .5 before it is reached, at or after it passes.
        let cut_off = Some(1_700_000_000);
        let reached = |at: &str| {
            let payload = format!(r#"{{"iss": "https://p/", "iat": {at}}}"#);
            tokenledger_core::blocklist::issued_in_reach(cut_off, iat(&payload))
        };
        assert!(reached("1699999999.5"));
        assert!(!reached("1700000000.5"));
        assert!(!reached("1700000000"));
    }

    #[test]
    fn arc_d_splits_at_the_longest_configured_issuer() {
        let issuers: Vec<String> = [
            "https://idp.example/realms",
            "https://idp.example/realms/atlas",
            REALM,
            "https://other.example/",
        ]
        .map(String::from)
        .to_vec();
        let token = |d| match split_arc(d, &issuers) {
            ArcSubject::Token(id) => (id.iss, id.sub.unwrap()),
            other => panic!("{d}: {other:?}"),
        };
        assert_eq!(
            token("https://idp.example/realms/atlas//abc-123"),
            (REALM.to_string(), "abc-123".to_string())
        );
        assert_eq!(
            token("https://idp.example/realms/atlas/abc"),
            (
                "https://idp.example/realms/atlas".to_string(),
                "abc".to_string()
            )
        );
        assert_eq!(
            token("https://idp.example/realms/cms/x"),
            (
                "https://idp.example/realms".to_string(),
                "cms/x".to_string()
            )
        );
        assert_eq!(
            token("https://other.example//s/with/slashes"),
            (
                "https://other.example/".to_string(),
                "s/with/slashes".to_string()
            )
        );
        assert_eq!(
            token("/DC=ch/DC=cern/CN=jdoe"),
            ("x509".to_string(), "/DC=ch/DC=cern/CN=jdoe".to_string())
        );
        for unlisted in [
            "https://unknown.example//abc",
            "https://idp.example/realm/x",
            "https://other.example/",
        ] {
            assert_eq!(
                split_arc(unlisted, &issuers),
                ArcSubject::Unlisted,
                "{unlisted}"
            );
        }
        assert_eq!(split_arc("https://a/b", &[]), ArcSubject::Unlisted);
    }

    #[test]
    fn an_empty_d_names_nobody() {
        assert_eq!(split_arc("", &[REALM.to_string()]), ArcSubject::Nobody);
    }

    #[test]
    fn htcondor_prefers_the_payload_and_falls_back_to_the_environment() {
        let vars = env(&[
            ("BEARER_TOKEN_0_ISSUER", "https://env/"),
            ("BEARER_TOKEN_0_SUBJECT", "env-sub"),
            ("BEARER_TOKEN_0_CLAIM_jti_0", "env-jti"),
        ]);
        let none = env(&[]);
        let payload = br#"{"iss": "https://p/", "sub": "p-sub", "jti": "p-jti", "scope": "compute.read", "exp": 1}"#;
        assert_eq!(
            htcondor(Some(payload), &vars).unwrap(),
            id("https://p/", Some("p-sub"), Some("p-jti"))
        );
        let no_jti = br#"{"iss": "https://p/", "sub": "p-sub"}"#;
        assert_eq!(
            htcondor(Some(no_jti), &vars).unwrap(),
            id("https://p/", Some("p-sub"), Some("env-jti"))
        );
        assert_eq!(
            htcondor(Some(no_jti), &none).unwrap(),
            id("https://p/", Some("p-sub"), None)
        );
        for stdin in [
            None,
            Some(&b""[..]),
            Some(&b" \n"[..]),
            Some(&b"not json"[..]),
        ] {
            assert_eq!(
                htcondor(stdin, &vars).unwrap(),
                id("https://env/", Some("env-sub"), Some("env-jti")),
                "{stdin:?}"
            );
        }
        assert!(
            htcondor(None, &none)
                .unwrap_err()
                .contains("no JWT payload")
        );
        assert!(
            htcondor(Some(b"[1]"), &none)
                .unwrap_err()
                .contains("not a JSON object")
        );
        assert!(
            htcondor(Some(br#"{"sub": "x"}"#), &none)
                .unwrap_err()
                .contains("no `iss`")
        );
        assert!(
            htcondor(Some(br#"{"iss": 5}"#), &none)
                .unwrap_err()
                .contains("not a non-empty string")
        );
    }

    #[test]
    fn stdin_is_read_to_its_end_but_never_waited_for_past_the_deadline() {
        use std::io::Write;
        let wait = Duration::from_millis(200);
        // Written and closed, as HTCondor does: read whole.
        let (mut reader, mut writer) = std::io::pipe().unwrap();
        writer.write_all(br#"{"iss":"i"}"#).unwrap();
        drop(writer);
        assert_eq!(
            read_bounded(&mut reader, wait).as_deref(),
            Some(&br#"{"iss":"i"}"#[..])
        );
        // Closed without data: empty at once.
        let (mut reader, writer) = std::io::pipe().unwrap();
        drop(writer);
        assert_eq!(read_bounded(&mut reader, wait), Some(vec![]));
        // Kept open (with or without a part written): given up after the wait.
        for part in [&b""[..], b"{\"iss\""] {
            let (mut reader, mut writer) = std::io::pipe().unwrap();
            writer.write_all(part).unwrap();
            let started = Instant::now();
            assert_eq!(read_bounded(&mut reader, wait), None);
            let took = started.elapsed();
            assert!(took >= wait && took < wait * 10, "{took:?}");
            drop(writer);
        }
        // More than the bound: refused, not read on and on.
        let (mut reader, mut writer) = std::io::pipe().unwrap();
        let big = std::thread::spawn(move || {
            let chunk = vec![b' '; 1 << 16];
            for _ in 0..(MAX_INPUT_BYTES >> 16) + 2 {
                if writer.write_all(&chunk).is_err() {
                    break;
                }
            }
        });
        assert_eq!(read_bounded(&mut reader, Duration::from_secs(10)), None);
        drop(reader);
        big.join().unwrap();
    }

    #[test]
    fn tokens_are_decoded_without_verification() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"iss":"https://i/","sub":"s","jti":"j"}"#);
        let jwt = format!("eyJhbGciOiJFUzI1NiJ9.{payload}.c2lnbmF0dXJl");
        assert_eq!(
            from_token(&format!("  {jwt}\n")).unwrap(),
            id("https://i/", Some("s"), Some("j"))
        );
        assert_eq!(
            from_token(r#"{"iss":"https://i/","sub":"s"}"#).unwrap(),
            id("https://i/", Some("s"), None)
        );
        for bad in ["abc", "a.b", "a.!!!.c", "a.b.c.d"] {
            assert!(from_token(bad).is_err(), "{bad}");
        }
    }
}
