//! Authentication: `Authorization: Bearer <secret>` becomes a typed [`Principal`]. A `tlk_`
//! secret is an API credential; anything else is tried as an operator's OIDC token (verified
//! with the issuer's keys, unexpired, our audience) whose claims map to a role by the
//! `[[operator]]` rules. Missing or bad: 401; what the principal may do is the handler's (403).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde_json::Value;

use tokenledger_core::entry::validate_reason;
use tokenledger_core::ids::{Site, Vo};

use super::AppState;
use super::error::ApiError;
use crate::credentials::{self, Principal, SECRET_PREFIX};
use crate::issuers::verify_operator_token;
use crate::service::sites;

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let secret = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| {
                let (scheme, rest) = h.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(rest)
            })
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .ok_or(ApiError::Unauthenticated)?;
        if secret.starts_with(SECRET_PREFIX) {
            return credentials::authenticate(state.ledger.reader.as_ref(), &secret)
                .await?
                .ok_or(ApiError::Unauthenticated);
        }
        let state = state.clone();
        tokio::task::spawn_blocking(move || operator_principal(&state, &secret))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
    }
}

/// Verifies an operator token and grants the binding of the first matching rule.
fn operator_principal(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let config = &state.config;
    let verified = verify_operator_token(
        &state.issuers,
        token,
        state.ledger.clock.now_secs(),
        &config.operators.audience,
        config.ingest.clock_skew_secs,
    )
    .map_err(|e| {
        tracing::info!(reason = e.code(), "operator token refused");
        ApiError::Unauthenticated
    })?;
    let iss = &verified.issuer.config.iss;
    let sub = verified
        .claims
        .get("sub")
        .and_then(Value::as_str)
        .ok_or(ApiError::Unauthenticated)?;
    let rule = config
        .operator_rules
        .iter()
        .filter(|r| &r.iss == iss)
        .find(|r| claim_values(&verified.claims, &r.claim).any(|v| v == r.value))
        .ok_or_else(|| ApiError::Forbidden("this token grants no role on this ledger".into()))?;
    Ok(Principal {
        id: format!("oidc:{iss}#{sub}"),
        binding: rule
            .binding()
            .map_err(|e| ApiError::Internal(e.to_string()))?,
    })
}

/// The string values of a claim: a space-separated `scope`, or a string or array elsewhere.
fn claim_values<'a>(
    claims: &'a serde_json::Map<String, Value>,
    name: &str,
) -> Box<dyn Iterator<Item = &'a str> + 'a> {
    match claims.get(name) {
        Some(Value::String(s)) if name == "scope" => Box::new(s.split_whitespace()),
        Some(Value::String(s)) => Box::new(std::iter::once(s.as_str())),
        Some(Value::Array(items)) => Box::new(items.iter().filter_map(Value::as_str)),
        _ => Box::new(std::iter::empty()),
    }
}

/// Checks the caller administers `site` (403 first, whether or not it exists), then that
/// the site exists (404); returns the site and the VOs it serves.
pub async fn administered_site(
    state: &AppState,
    principal: &Principal,
    site: &str,
) -> Result<(Site, Vec<Vo>), ApiError> {
    if !principal.binding.may_administer_site(site) {
        return Err(ApiError::Forbidden(format!(
            "only admins of site `{site}` may do this"
        )));
    }
    let site = Site::unchecked(site);
    let vos = sites::existing(state.ledger.reader.as_ref(), &site).await?;
    Ok((site, vos))
}

/// Checks the caller is a security officer of `vo`; returns the VO.
pub fn officer(principal: &Principal, vo: &str) -> Result<Vo, ApiError> {
    if principal.binding.may_resolve(vo) {
        Ok(Vo::unchecked(vo))
    } else {
        Err(ApiError::Forbidden(format!(
            "only security officers of VO `{vo}` may do this"
        )))
    }
}

/// Only the VO's own security officers, and only with a reason: the same 403 whether or
/// not the token or person exists. Returns the VO and the reason.
pub fn authorize_resolution<'a>(
    principal: &Principal,
    vo: &str,
    reason: Option<&'a str>,
) -> Result<(Vo, &'a str), ApiError> {
    if !principal.binding.may_resolve(vo) {
        return Err(ApiError::Forbidden(format!(
            "only security officers of VO `{vo}` may resolve its tokens and persons"
        )));
    }
    let vo = Vo::unchecked(vo);
    let reason = reason.unwrap_or_default();
    validate_reason(reason).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok((vo, reason))
}
