//! JWT verification for ingest: the issuer must be configured, the algorithm one it is
//! allowed, the signature valid under one of its keys; expiry only within the back-fill window.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::decode_header;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

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
    let header = decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
    let (signing_input, payload, signature) = jws_parts(token)?;
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

/// The signing input (`header.payload`), the payload and the signature of a compact JWS.
fn jws_parts(token: &str) -> Result<(&str, &str, &str), TokenError> {
    let parts = token
        .rsplit_once('.')
        .and_then(|(input, signature)| Some((input, input.split_once('.')?.1, signature)));
    parts.ok_or_else(|| TokenError::Malformed("not three dot-separated parts".into()))
}

/// The JWS payload: base64url (unpadded) of a JSON object.
fn decode_claims(payload: &str) -> Result<Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|e| TokenError::Malformed(format!("payload is not base64url: {e}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| TokenError::Malformed(format!("payload is not a JSON object: {e}")))
}

fn check_times(
    claims: &Map<String, Value>,
    now: i64,
    ingest: &IngestConfig,
) -> Result<(), TokenError> {
    let time = |name| claims.get(name).and_then(Value::as_i64);
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
