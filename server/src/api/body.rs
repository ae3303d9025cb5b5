//! Reads small request bodies whole before routing, so that a request refused before its
//! handler reads the body (401, 403, 404, 415) still leaves the connection clean for the
//! client's next request, instead of closing it under a client that is still writing
//! (broken pipes and resets on keep-alive connections). Larger bodies stream on, so an
//! unauthenticated caller cannot make the server hold many large bodies at once.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::Response;

use super::error::ApiError;

/// Bodies declared this small (or smaller) are read before routing.
const READ_AHEAD_BYTES: u64 = 256 * 1024;

pub async fn read_whole(request: Request, next: Next) -> Result<Response, ApiError> {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_none_or(|len| len > READ_AHEAD_BYTES) {
        return Ok(next.run(request).await);
    }
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, READ_AHEAD_BYTES as usize)
        .await
        .map_err(|_| {
            ApiError::BadRequest("the body is shorter or longer than its Content-Length".into())
        })?;
    Ok(next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await)
}
