//! Fuzz target of the server's JWT reading (see `fuzz/README.md`): `verify_token` (ingest) and
//! `verify_operator_token` (operators' bearer tokens) over raw bytes and over mutated tokens
//! that two configured test issuers really signed (RS256, ES256, EdDSA, with and without a
//! `kid`). Invariants: an error is a value, never a panic; a token that verifies carries
//! exactly the claims an issuer signed, its issuer is the one its `iss` names, and the time
//! (and, for operators, audience) rules hold.

use std::collections::HashMap;

use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokenledger_e2e::issuer::TestIssuer;
use tokenledger_fuzz::{Target, corpus};
use tokenledger_server::config::Config;
use tokenledger_server::issuers::{Issuers, verify_operator_token, verify_token};

const ATLAS: &str = "https://atlas-auth.example/";
const EGI: &str = "https://aai.egi.example/auth/realms/egi";
/// The time the tokens are checked at: within the corpus tokens' lifetimes.
const NOW: i64 = 1_767_226_000;
const AUDIENCE: &str = "tokenledger";

/// What the signature covers: `header.payload`.
fn signing_input(token: &str) -> &str {
    token.rsplit_once('.').map_or(token, |(input, _)| input)
}

fn time(claims: &Map<String, Value>, name: &str) -> Option<i64> {
    claims.get(name).and_then(Value::as_i64)
}

#[test]
fn fuzz_jwt_verification() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let issuers = [TestIssuer::new(ATLAS), TestIssuer::new(EGI)];
    let mut config_text = String::new();
    for (i, issuer) in issuers.iter().enumerate() {
        let jwks = dir.path().join(format!("jwks-{i}.json"));
        issuer.write_jwks(&jwks);
        config_text += &issuer.config_block(
            &format!("jwks_file = \"{}\"", jwks.display()),
            "[{ rule = \"fixed\", vo = \"atlas\" }]",
        );
    }
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, config_text).expect("writing the configuration");
    let config = Config::load(Some(&config_path)).expect("a valid configuration");
    let registry = Issuers::from_config(&config).expect("the issuers' keys");

    // Every signed token's signing input, with the claims it carries.
    let mut signed: HashMap<String, Map<String, Value>> = HashMap::new();
    let mut target = Target::new("jwt", 100_000).words(&[
        ".",
        "eyJ",
        "eyJhbGciOiJub25lIn0",
        "eyJhbGciOiJIUzI1NiJ9",
        "eyJhbGciOiJSUzI1NiIsImtpZCI6ImVjLTEifQ",
        "e30",
        "bnVsbA",
        "W10",
        "=",
    ]);
    for (name, bytes) in corpus("jwt") {
        let claims: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("corpus jwt/{name} is not JSON claims: {e}"));
        let issuer = issuers
            .iter()
            .find(|i| claims["iss"] == i.iss)
            .unwrap_or(&issuers[0]);
        for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
            for token in [
                issuer.mint(alg, &claims),
                issuer.mint_with_kid(alg, None, &claims),
            ] {
                let Value::Object(map) = &claims else {
                    panic!("corpus jwt/{name} is not a claims object");
                };
                signed.insert(signing_input(&token).to_string(), map.clone());
                target = target.seed(token);
            }
        }
    }

    target.run(move |bytes| {
        let token = String::from_utf8_lossy(bytes);
        let check_signed = |claims: &Map<String, Value>, iss: &str| {
            let expected = signed
                .get(signing_input(&token))
                .unwrap_or_else(|| panic!("verified a token no issuer signed: {token}"));
            assert_eq!(claims, expected, "verified claims are the signed ones");
            assert_eq!(claims.get("iss").and_then(Value::as_str), Some(iss));
        };
        let ingested = verify_token(&registry, &token, NOW, &config.ingest);
        if let Ok(verified) = &ingested {
            check_signed(&verified.claims, &verified.issuer.config.iss);
            assert_eq!(
                verified.token_sha256,
                hex::encode(Sha256::digest(token.as_bytes()))
            );
            let window = config.ingest.backfill_window_secs as i64;
            let skew = config.ingest.clock_skew_secs as i64;
            assert!(time(&verified.claims, "exp").is_none_or(|exp| exp + window >= NOW));
            assert!(time(&verified.claims, "iat").is_none_or(|iat| iat <= NOW + skew));
            assert!(time(&verified.claims, "nbf").is_none_or(|nbf| nbf <= NOW + skew));
        }
        let skew = config.ingest.clock_skew_secs;
        if let Ok(operator) = verify_operator_token(&registry, &token, NOW, AUDIENCE, skew) {
            check_signed(&operator.claims, &operator.issuer.config.iss);
            let exp = time(&operator.claims, "exp").expect("operator tokens carry exp");
            assert!(exp + skew as i64 >= NOW);
            let aud = &operator.claims["aud"];
            assert!(
                aud == AUDIENCE || aud.as_array().is_some_and(|a| a.contains(&AUDIENCE.into())),
                "{aud}"
            );
        }
        ingested.is_ok()
    });
}
