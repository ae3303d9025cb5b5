//! Extractors that turn axum's rejections into [`ApiError`]s, so every error has one JSON shape,
//! and the reading of log indexes in queries ([`index`]).

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};

use super::error::ApiError;
use super::nul;

/// `axum::Json`, with JSON errors (400 bad JSON, 413 too large, 415 not JSON), refusing
/// U+0000 in any string of the body (400).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|rejection| match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
                _ => ApiError::BadRequest(rejection.body_text()),
            })?;
        let req = Request::from_parts(parts, Body::from(bytes.clone()));
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => {
                nul::check_json(&bytes, "body")?;
                Ok(ApiJson(value))
            }
            Err(rejection) => Err(match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
                StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                    ApiError::UnsupportedMediaType("expected Content-Type: application/json".into())
                }
                _ => ApiError::BadRequest(format!("invalid JSON body: {}", rejection.body_text())),
            }),
        }
    }
}

/// `axum::extract::Query`, with JSON errors.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| ApiError::BadRequest(e.body_text()))
    }
}

/// A log index, tree size or paging bound in a query: unsigned and at most `i64::MAX`, as the
/// API document's `int64` says and SQLite stores them. A larger one is a malformed request
/// (400); read as `u64` alone, it would wrap to a negative bound in SQL.
pub fn index<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let value = u64::deserialize(deserializer)?;
    if i64::try_from(value).is_err() {
        return Err(D::Error::custom(format!(
            "{value} is larger than {} (an int64)",
            i64::MAX
        )));
    }
    Ok(value)
}

/// [`index`], where the parameter may be left out.
pub fn optional_index<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    index(deserializer).map(Some)
}
