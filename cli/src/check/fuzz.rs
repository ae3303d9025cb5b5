//! Fuzz targets of `check`'s reading of who is asking (see `fuzz/README.md`): HTCondor's
//! payload on stdin with its `BEARER_TOKEN_0_*` environment, ARC's `%D` split against the
//! configured issuers, and a token or payload given by a person. Invariants: an error is a
//! value, never a panic; an identity always has an issuer; it is the payload's when the payload
//! reads, else the environment's; `%D` splits into exactly a configured issuer, `/`, and a
//! non-empty subject, at the longest issuer that fits.

use std::collections::HashMap;

use tokenledger_core::export::X509_ISSUER;
use tokenledger_fuzz::Target;

use super::identity::{ArcSubject, Identity, from_payload, from_token, htcondor, split_arc};

/// The variables HTCondor sets: issuer, subject, jti, client (`client_id`, else `azp`), iat.
const BEARER_VARIABLES: [&str; 6] = [
    "BEARER_TOKEN_0_ISSUER",
    "BEARER_TOKEN_0_SUBJECT",
    "BEARER_TOKEN_0_CLAIM_jti_0",
    "BEARER_TOKEN_0_CLAIM_client_id_0",
    "BEARER_TOKEN_0_CLAIM_azp_0",
    "BEARER_TOKEN_0_CLAIM_iat_0",
];

/// Every present claim of an identity is a non-empty string, and there is an issuer.
fn assert_well_formed(id: &Identity) {
    assert!(!id.iss.is_empty(), "{id:?}");
    for claim in [&id.sub, &id.jti, &id.client_id].into_iter().flatten() {
        assert!(!claim.is_empty(), "{id:?}");
    }
}

/// An input of the `check-htcondor` corpus: `NAME=value` lines of the environment, a blank
/// line, then stdin. Without a blank line, it is all stdin.
fn environment_and_stdin(text: &str) -> (HashMap<String, String>, &str) {
    let (head, stdin) = text.split_once("\n\n").unwrap_or(("", text));
    let env = head
        .lines()
        .filter_map(|line| line.split_once('='))
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    (env, stdin)
}

#[test]
fn fuzz_htcondor_stdin_and_environment() {
    Target::new("check-htcondor", 100_000)
        .words(&BEARER_VARIABLES)
        .words(&[
            "=",
            "\"iss\":",
            "\"sub\":",
            "\"jti\":",
            "\"client_id\":",
            "\"azp\":",
            "\"iat\":",
            "\"\"",
            "\n\n",
        ])
        .run(|bytes| {
            let text = String::from_utf8_lossy(bytes);
            let (vars, stdin) = environment_and_stdin(&text);
            let env = |name: &str| vars.get(name).cloned();
            let env_issuer = env(BEARER_VARIABLES[0]);
            let env_client = env(BEARER_VARIABLES[3]).or_else(|| env(BEARER_VARIABLES[4]));
            // Whole seconds, or a NumericDate with a fraction rounded down (within i64).
            let env_iat = env(BEARER_VARIABLES[5]).and_then(|t| {
                let t = t.trim();
                t.parse::<i64>().ok().or_else(|| {
                    let seconds = t.parse::<f64>().ok()?.floor();
                    let fits = (i64::MIN as f64..i64::MAX as f64).contains(&seconds);
                    fits.then_some(seconds as i64)
                })
            });
            let mut accepted = false;
            for stdin in [None, Some(stdin.as_bytes())] {
                let payload = stdin
                    .filter(|b| !b.iter().all(u8::is_ascii_whitespace))
                    .map(from_payload);
                match (htcondor(stdin, &env), payload) {
                    (Ok(id), Some(Ok(from_stdin))) => {
                        assert_well_formed(&id);
                        assert_eq!((&id.iss, &id.sub), (&from_stdin.iss, &from_stdin.sub));
                        let env_jti = env_issuer.as_ref().and(env(BEARER_VARIABLES[2]));
                        let jti = from_stdin.jti.or(env_jti);
                        assert_eq!(id.jti, jti, "the payload's jti, else the environment's");
                        let env_client = env_issuer.as_ref().and(env_client.clone());
                        assert_eq!(id.client_id, from_stdin.client_id.or(env_client));
                        let env_iat = env_issuer.as_ref().and(env_iat);
                        assert_eq!(id.iat, from_stdin.iat.or(env_iat));
                        accepted = true;
                    }
                    (Ok(id), _) => {
                        assert_well_formed(&id);
                        assert_eq!(Some(&id.iss), env_issuer.as_ref(), "the environment's");
                        assert_eq!(id.sub, env(BEARER_VARIABLES[1]));
                        assert_eq!(id.jti, env(BEARER_VARIABLES[2]));
                        assert_eq!((&id.client_id, id.iat), (&env_client, env_iat));
                        accepted = true;
                    }
                    (Err(e), payload) => {
                        assert!(env_issuer.is_none(), "{e}, but the environment names one");
                        assert!(
                            !matches!(payload, Some(Ok(_))),
                            "{e}, but the payload reads"
                        );
                    }
                }
            }
            accepted
        });
}

#[test]
fn fuzz_arc_subject_split() {
    Target::new("check-arc", 100_000)
        .words(&["/", "//", "https://", "\n", "/DC="])
        .run(|bytes| {
            let text = String::from_utf8_lossy(bytes);
            let mut lines = text.split('\n');
            let d = lines.next().unwrap_or_default();
            let issuers: Vec<String> = lines.map(str::to_string).collect();
            // An issuer fits `d` when `d` is the issuer, `/` and a non-empty subject.
            let fits = |iss: &String| {
                d.strip_prefix(iss.as_str())
                    .and_then(|rest| rest.strip_prefix('/'))
                    .is_some_and(|sub| !sub.is_empty())
            };
            match split_arc(d, &issuers) {
                ArcSubject::Nobody => assert!(d.is_empty()),
                ArcSubject::Token(id) if d.starts_with('/') => {
                    assert_eq!(id.iss, X509_ISSUER);
                    assert_eq!(id.sub.as_deref(), Some(d));
                }
                ArcSubject::Token(id) => {
                    assert_well_formed(&id);
                    let sub = id.sub.as_deref().expect("a token user has a subject");
                    assert_eq!(format!("{}/{sub}", id.iss), d);
                    assert!(issuers.contains(&id.iss));
                    let longest = issuers.iter().filter(|i| fits(i)).map(String::len).max();
                    assert_eq!(longest, Some(id.iss.len()), "the longest issuer that fits");
                    return true;
                }
                ArcSubject::Unlisted => {
                    assert!(!d.is_empty() && !d.starts_with('/'));
                    assert!(!issuers.iter().any(fits), "{d:?} fits a configured issuer");
                }
            }
            false
        });
}

#[test]
fn fuzz_token_or_payload_given_by_a_person() {
    Target::new("check-token", 100_000)
        .words(&[".", "eyJ", "{", "\"iss\":", "=", "=="])
        .run(|bytes| {
            let text = String::from_utf8_lossy(bytes);
            let read = from_token(&text);
            if let Ok(id) = &read {
                assert_well_formed(id);
            }
            let trimmed = text.trim();
            if trimmed.starts_with('{') {
                assert_eq!(read, from_payload(trimmed.as_bytes()), "a payload as given");
            }
            read.is_ok()
        });
}
