//! JWT verification for ingest: the issuer must be configured, the algorithm one it is
//! allowed, the signature valid under one of its keys; expiry only within the back-fill window.
//!
//! A token must have one reading: a header or payload that names a member twice (at any
//! depth) is refused, as is a header with `crit` (RFC 7515 §4.1.11: we implement no
//! extension, so every critical one is unknown to us) and, unless its issuer is configured
//! with `require_exp = false`, a token without `exp`.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokenledger_core::strict_json;

use super::{Issuer, Issuers};
use crate::config::IngestConfig;

/// Largest JWT accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A token whose signature checked out.
pub struct VerifiedToken {
    pub issuer: Arc<Issuer>,
    pub claims: Map<String, Value>,
    /// SHA-256 of the compact JWT, hex.
    pub token_sha256: String,
}

/// Why a token was not believed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token is not a well-formed JWT: {0}")]
    Malformed(String),
    #[error("token is larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("issuer `{0}` is not configured on this ledger")]
    UnknownIssuer(String),
    #[error("algorithm {0} is not accepted for this issuer")]
    AlgorithmNotAllowed(String),
    #[error("no key of the issuer matches the token (kid {0})")]
    UnknownKey(String),
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token expired at {exp}, before the back-fill window ({window_secs} s)")]
    TooOld { exp: i64, window_secs: u64 },
    #[error("token is issued or valid only in the future ({0}); check clocks")]
    InFuture(&'static str),
    #[error("token has expired")]
    Expired,
    #[error("token is not meant for this ledger (aud)")]
    WrongAudience,
    #[error("token {part} names a member twice, so it has no one reading: {detail}")]
    DuplicateMember { part: &'static str, detail: String },
    #[error("token header carries `crit`: this ledger implements no JWS extension")]
    CriticalExtension,
    #[error("token has no `exp`, which its issuer is configured to require")]
    MissingExp,
}

impl TokenError {
    /// Stable machine-readable code for the API.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Malformed(_) | TokenError::TooLarge => "invalid_token",
            TokenError::UnknownIssuer(_) => "unknown_issuer",
            TokenError::AlgorithmNotAllowed(_) => "algorithm_not_allowed",
            TokenError::UnknownKey(_) => "unknown_key",
            TokenError::BadSignature => "bad_signature",
            TokenError::TooOld { .. } => "token_too_old",
            TokenError::InFuture(_) => "token_in_future",
            TokenError::Expired => "token_expired",
            TokenError::WrongAudience => "wrong_audience",
            TokenError::DuplicateMember { .. } => "duplicate_member",
            TokenError::CriticalExtension => "critical_extension",
            TokenError::MissingExp => "exp_required",
        }
    }
}

/// Verifies an issuance report's `token` at time `now` (unix seconds): an expired token is
/// accepted within the back-fill window. Blocking: may refresh the issuer's keys.
pub fn verify_token(
    issuers: &Issuers,
    token: &str,
    now: i64,
    ingest: &IngestConfig,
) -> Result<VerifiedToken, TokenError> {
    let verified = verify_signature(issuers, token)?;
    if verified.issuer.config.require_exp && time_claim(&verified.claims, "exp").is_none() {
        return Err(TokenError::MissingExp);
    }
    check_times(&verified.claims, now, ingest)?;
    Ok(verified)
}

/// Verifies an operator's bearer token: signature as for ingest, but it must be unexpired
/// (`exp` required, `clock_skew_secs` tolerated) and name `audience` in `aud`.
pub fn verify_operator_token(
    issuers: &Issuers,
    token: &str,
    now: i64,
    audience: &str,
    skew_secs: u64,
) -> Result<VerifiedToken, TokenError> {
    let verified = verify_signature(issuers, token)?;
    let claims = &verified.claims;
    let skew = skew_secs as i64;
    match claims.get("exp").and_then(Value::as_i64) {
        None => {
            return Err(TokenError::Malformed(
                "operator tokens must carry `exp`".into(),
            ));
        }
        Some(exp) if exp + skew < now => return Err(TokenError::Expired),
        Some(_) => {}
    }
    if claims
        .get("nbf")
        .and_then(Value::as_i64)
        .is_some_and(|nbf| nbf > now + skew)
    {
        return Err(TokenError::InFuture("nbf"));
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&audience) {
        return Err(TokenError::WrongAudience);
    }
    Ok(verified)
}

/// Checks the token's signature against its issuer's keys. The payload is decoded once, to
/// find the issuer, and its claims are returned only if the signature over it verifies.
fn verify_signature(issuers: &Issuers, token: &str) -> Result<VerifiedToken, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge);
    }
    let (signing_input, header, payload, signature) = jws_parts(token)?;
    let header = JoseHeader::decode(header)?;
    let claims = decode_claims(payload)?;
    let iss = match claims.get("iss") {
        Some(Value::String(iss)) => iss.clone(),
        _ => return Err(TokenError::Malformed("no readable `iss`".into())),
    };
    let issuer = issuers
        .get(&iss)
        .ok_or(TokenError::UnknownIssuer(iss))?
        .clone();
    if !issuer.algorithms.contains(&header.alg) {
        return Err(TokenError::AlgorithmNotAllowed(format!("{:?}", header.alg)));
    }
    let candidates = issuer.keys.candidates(header.kid.as_deref());
    if candidates.is_empty() {
        return Err(TokenError::UnknownKey(
            header.kid.unwrap_or_else(|| "none".into()),
        ));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|e| TokenError::Malformed(format!("signature is not base64url: {e}")))?;
    if !candidates
        .iter()
        .any(|key| key.verifies(header.alg, signing_input.as_bytes(), &signature))
    {
        return Err(TokenError::BadSignature);
    }
    Ok(VerifiedToken {
        issuer,
        claims,
        token_sha256: hex::encode(Sha256::digest(token.as_bytes())),
    })
}

/// The signing input (`header.payload`), the header, the payload and the signature of a
/// compact JWS.
fn jws_parts(token: &str) -> Result<(&str, &str, &str, &str), TokenError> {
    let parts = token.rsplit_once('.').and_then(|(input, signature)| {
        let (header, payload) = input.split_once('.')?;
        Some((input, header, payload, signature))
    });
    parts.ok_or_else(|| TokenError::Malformed("not three dot-separated parts".into()))
}

/// What the ledger reads of a JOSE header: the algorithm and the key id.
struct JoseHeader {
    alg: Algorithm,
    kid: Option<String>,
}

impl JoseHeader {
    /// Decodes the header part (base64url, unpadded, of a JSON object): every member name
    /// once, no `crit`, `alg` a known algorithm, `kid` absent or a string.
    fn decode(part: &str) -> Result<JoseHeader, TokenError> {
        let mut header = decode_object(part, "header")?;
        if header.contains_key("crit") {
            return Err(TokenError::CriticalExtension);
        }
        let alg = match header.get("alg") {
            Some(Value::String(alg)) => alg.parse().map_err(|_| {
                TokenError::Malformed(format!("header `alg` {alg:?} is no JWS algorithm"))
            })?,
            _ => return Err(TokenError::Malformed("header has no string `alg`".into())),
        };
        let kid = match header.remove("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid),
            Some(_) => return Err(TokenError::Malformed("header `kid` is not a string".into())),
        };
        Ok(JoseHeader { alg, kid })
    }
}

/// The JWS payload: base64url (unpadded) of a JSON object, every member name once.
fn decode_claims(payload: &str) -> Result<Map<String, Value>, TokenError> {
    decode_object(payload, "payload")
}

/// A JWS part that must be base64url (unpadded) of a JSON object naming each member once,
/// at any depth: one pass over the decoded bytes, failing at the first repeated name.
fn decode_object(part: &str, name: &'static str) -> Result<Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| TokenError::Malformed(format!("{name} is not base64url: {e}")))?;
    strict_json::object_from_slice(&bytes).map_err(|e| {
        if strict_json::is_duplicate_member(&e) {
            TokenError::DuplicateMember {
                part: name,
                detail: e.to_string(),
            }
        } else {
            TokenError::Malformed(format!("{name} is not a JSON object: {e}"))
        }
    })
}

/// A time claim (NumericDate) of the token, if present as an integer.
fn time_claim(claims: &Map<String, Value>, name: &str) -> Option<i64> {
    claims.get(name).and_then(Value::as_i64)
}

fn check_times(
    claims: &Map<String, Value>,
    now: i64,
    ingest: &IngestConfig,
) -> Result<(), TokenError> {
    let time = |name| time_claim(claims, name);
    let skew = ingest.clock_skew_secs as i64;
    if let Some(exp) = time("exp")
        && exp.saturating_add(ingest.backfill_window_secs as i64) < now
    {
        return Err(TokenError::TooOld {
            exp,
            window_secs: ingest.backfill_window_secs,
        });
    }
    if time("iat").is_some_and(|iat| iat > now + skew) {
        return Err(TokenError::InFuture("iat"));
    }
    if time("nbf").is_some_and(|nbf| nbf > now + skew) {
        return Err(TokenError::InFuture("nbf"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(text: &str) -> String {
        URL_SAFE_NO_PAD.encode(text)
    }

    fn header(text: &str) -> Result<JoseHeader, TokenError> {
        JoseHeader::decode(&b64(text))
    }

    #[test]
    fn a_header_is_read_once_and_without_extensions() {
        let read = header(r#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#).unwrap();
        assert_eq!(
            (read.alg, read.kid.as_deref()),
            (Algorithm::ES256, Some("k1"))
        );
        assert_eq!(header(r#"{"alg":"EdDSA"}"#).unwrap().kid, None);
        for (text, code) in [
            (r#"{"alg":"RS256","alg":"RS256"}"#, "duplicate_member"),
            (
                r#"{"alg":"RS256","jwk":{"e":"AQAB","e":"AQAB"}}"#,
                "duplicate_member",
            ),
            (
                r#"{"alg":"RS256","crit":["b64"],"b64":false}"#,
                "critical_extension",
            ),
            (r#"{"alg":"RS256","crit":null}"#, "critical_extension"),
            (r#"{"alg":"none"}"#, "invalid_token"),
            (r#"{"kid":"k1"}"#, "invalid_token"),
            (r#"{"alg":"RS256","kid":7}"#, "invalid_token"),
            ("[]", "invalid_token"),
        ] {
            let refused = header(text).err().map(|e| e.code());
            assert_eq!(refused, Some(code), "{text}");
        }
        assert!(matches!(
            JoseHeader::decode("not base64!"),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn a_payload_naming_a_member_twice_is_refused_by_name() {
        let claims = decode_claims(&b64(r#"{"iss":"i","sub":"a","exp":1}"#)).unwrap();
        assert_eq!(time_claim(&claims, "exp"), Some(1));
        let refused = decode_claims(&b64(r#"{"iss":"i","sub":"a","sub":"b"}"#)).unwrap_err();
        assert_eq!(refused.code(), "duplicate_member");
        assert!(refused.to_string().contains("member `sub`"), "{refused}");
        assert_eq!(
            decode_claims(&b64("[1]")).unwrap_err().code(),
            "invalid_token"
        );
    }
}
