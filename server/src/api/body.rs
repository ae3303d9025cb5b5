//! Reads every request body whole (up to the configured limit) before routing, so that a
//! request refused before its handler reads the body (401, 403, 404, 415) still leaves the
//! connection clean for the client's next request, instead of closing it under a client
//! that is still writing (broken pipes and resets on keep-alive connections).

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use super::error::ApiError;

pub async fn read_whole(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, state.config.server.max_body_bytes)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    Ok(next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await)
}
