//! Authentication: the `Authorization: Bearer tlk_...` header becomes a typed [`Principal`].
//! A missing or unknown credential is 401; what the principal may do is decided by the handler (403).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::AppState;
use super::error::ApiError;
use crate::credentials::{self, Principal};

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or(ApiError::Unauthenticated)?;
        let secret = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(ApiError::Unauthenticated)?;
        credentials::authenticate(&state.pool, secret)
            .await?
            .ok_or(ApiError::Unauthenticated)
    }
}
