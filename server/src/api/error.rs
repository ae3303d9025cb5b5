//! The one error type of the HTTP API: a status per case and a JSON body
//! `{"error": {"code", "message"}}`. 5xx bodies say nothing internal; details go to the log.
//! A storage error marks its answer ([`StorageFault`]) so that [`count_storage_faults`]
//! records it for `GET /healthz`.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokenledger_core::wire::{ErrorBody, ErrorDetail};

use super::AppState;
use crate::sequencer::{AppendError, SequencerError};
use crate::service::ServiceError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("missing or invalid credential")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The caller cannot read the representation it would be served (an older blocklist
    /// reader).
    #[error("{0}")]
    NotAcceptable(String),
    #[error("{0}")]
    Conflict(String),
    /// What was asked for was logged, but a retention run or an erasure removed it.
    #[error("{0}")]
    Redacted(String),
    #[error("request body is too large")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unavailable(String),
    /// This server is a standby: the message names the writer.
    #[error("{0}")]
    NotTheWriter(String),
    #[error("internal error")]
    Internal(String),
    /// Reading or writing the store failed; the detail goes to the log only.
    #[error("internal error")]
    Storage(String),
    /// A stored entry failed its integrity check: nothing of it is served. The index was
    /// logged, and counted, where the check failed.
    #[error("the stored log failed an integrity check; nothing was served")]
    Integrity,
}

/// Marks an answer that failed on storage.
#[derive(Clone, Copy, Debug)]
pub struct StorageFault;

/// Records every answer marked [`StorageFault`] as a storage error of this process.
pub async fn count_storage_faults(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    if response.extensions().get::<StorageFault>().is_some() {
        state.metrics.storage_errors().storage_error();
    }
    response
}

impl ApiError {
    /// Status and stable machine-readable code of each case.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unprocessable { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code),
            ApiError::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::NotAcceptable(_) => (StatusCode::NOT_ACCEPTABLE, "not_acceptable"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Redacted(_) => (StatusCode::GONE, "redacted"),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::NotTheWriter(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_the_writer"),
            ApiError::Internal(_) | ApiError::Storage(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
            ApiError::Integrity => (StatusCode::INTERNAL_SERVER_ERROR, "integrity_error"),
        }
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Unprocessable {
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let storage_fault = matches!(self, ApiError::Storage(_));
        if let ApiError::Internal(detail) | ApiError::Storage(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message: self.to_string(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body is not read: the connection cannot be reused.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if storage_fault {
            response.extensions_mut().insert(StorageFault);
        }
        response
    }
}

impl ApiError {
    /// 400 for an input that is not what it names (a VO, site, jti, person or pseudonym).
    pub fn invalid(e: impl std::fmt::Display) -> ApiError {
        ApiError::BadRequest(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Integrity { .. } => ApiError::Integrity,
            StoreError::Randomness(_) => ApiError::Internal(e.to_string()),
            StoreError::Unavailable(_) => database_unavailable(&e),
            StoreError::Db(_) | StoreError::UniqueViolation(_) | StoreError::Corrupt(_) => {
                ApiError::Storage(e.to_string())
            }
        }
    }
}

/// 503 `unavailable` for a database that cannot be reached now: not a storage fault, and the
/// detail (which may name hosts) goes to the log only.
fn database_unavailable(detail: &dyn std::fmt::Display) -> ApiError {
    tracing::warn!(%detail, "the database is unavailable; answered 503");
    ApiError::Unavailable("the database is unavailable at the moment: retry".into())
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        match e {
            ServiceError::BadRequest(m) => ApiError::BadRequest(m),
            ServiceError::NotFound(m) => ApiError::NotFound(m),
            ServiceError::Conflict(m) => ApiError::Conflict(m),
            ServiceError::Redacted(m) => ApiError::Redacted(m),
            ServiceError::Internal(m) => ApiError::Internal(m),
            ServiceError::Store(e) => e.into(),
            ServiceError::Append(e) => e.into(),
        }
    }
}

/// A refused state change names what does not exist (404) or says why the change no
/// longer applies (409); a standby names the writer (503); a batch that was not written is
/// 503 when retrying helps, else 500.
impl From<AppendError> for ApiError {
    fn from(e: AppendError) -> ApiError {
        match e {
            AppendError::Refused(refusal) if refusal.is_not_found() => {
                ApiError::NotFound(refusal.to_string())
            }
            AppendError::Refused(refusal) => ApiError::Conflict(refusal.to_string()),
            AppendError::Standby(standby) => ApiError::NotTheWriter(standby.to_string()),
            AppendError::Failed(e) => match &*e {
                SequencerError::Busy | SequencerError::ShuttingDown => {
                    ApiError::Unavailable(e.to_string())
                }
                SequencerError::Store(StoreError::Integrity { .. }) => ApiError::Integrity,
                SequencerError::Store(StoreError::Unavailable(_)) => database_unavailable(&e),
                SequencerError::Store(
                    StoreError::Db(_) | StoreError::UniqueViolation(_) | StoreError::Corrupt(_),
                ) => ApiError::Storage(e.to_string()),
                SequencerError::Store(StoreError::Randomness(_)) | SequencerError::Sign(_) => {
                    ApiError::Internal(e.to_string())
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    async fn body_of(e: ApiError) -> (StatusCode, serde_json::Value) {
        let response = e.into_response();
        let status = response.status();
        let bytes = to_bytes(response.into_body(), 1 << 16).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn status_table_is_pinned() {
        let table = [
            (ApiError::BadRequest("b".into()), 400, "bad_request"),
            (
                ApiError::unprocessable("unknown_vo", "u"),
                422,
                "unknown_vo",
            ),
            (ApiError::Unauthenticated, 401, "unauthenticated"),
            (ApiError::Forbidden("f".into()), 403, "forbidden"),
            (ApiError::NotFound("n".into()), 404, "not_found"),
            (
                ApiError::MethodNotAllowed("m".into()),
                405,
                "method_not_allowed",
            ),
            (ApiError::NotAcceptable("a".into()), 406, "not_acceptable"),
            (ApiError::Conflict("c".into()), 409, "conflict"),
            (ApiError::Redacted("r".into()), 410, "redacted"),
            (ApiError::PayloadTooLarge, 413, "payload_too_large"),
            (
                ApiError::UnsupportedMediaType("t".into()),
                415,
                "unsupported_media_type",
            ),
            (ApiError::Unavailable("u".into()), 503, "unavailable"),
            (ApiError::NotTheWriter("w".into()), 503, "not_the_writer"),
            (ApiError::Internal("secret detail".into()), 500, "internal"),
            (ApiError::Storage("disk".into()), 500, "internal"),
            (ApiError::Integrity, 500, "integrity_error"),
        ];
        for (error, status, code) in table {
            let (got_status, body) = body_of(error).await;
            assert_eq!(got_status.as_u16(), status);
            assert_eq!(body["error"]["code"], code);
            assert!(body["error"]["message"].is_string());
        }
    }

    #[tokio::test]
    async fn a_standby_names_the_writer_and_says_when_to_retry() {
        let standby = crate::sequencer::Standby {
            writer: Some("ledger-a.example:8443".into()),
        };
        let response = ApiError::from(AppendError::Standby(standby)).into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let status = response.status();
        let bytes = to_bytes(response.into_body(), 1 << 16).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"]["code"], "not_the_writer");
        assert_eq!(
            body["error"]["message"],
            "this server is a standby; the writer is ledger-a.example:8443: send writes there, \
             or retry"
        );
    }

    #[tokio::test]
    async fn internal_errors_hide_their_detail() {
        let (_, body) = body_of(ApiError::Internal("disk /var/x failed".into())).await;
        assert_eq!(body["error"]["message"], "internal error");
        let (_, body) = body_of(ApiError::Storage("disk /var/x failed".into())).await;
        assert_eq!(body["error"]["message"], "internal error");
    }

    #[tokio::test]
    async fn storage_errors_mark_their_answer_and_integrity_errors_say_one_fixed_thing() {
        let integrity = StoreError::Integrity {
            index: 7,
            problem: "the leaf and its stored leaf hash disagree".into(),
        };
        let (status, body) = body_of(ApiError::from(integrity)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "integrity_error",
                "message": "the stored log failed an integrity check; nothing was served"}})
        );
        let marked = |e: ApiError| {
            e.into_response()
                .extensions()
                .get::<StorageFault>()
                .is_some()
        };
        assert!(marked(StoreError::Corrupt("x".into()).into()));
        assert!(marked(StoreError::Db("pool timed out".into()).into()));
        assert!(!marked(ApiError::Integrity), "counted where it was found");
        assert!(!marked(ApiError::Internal("x".into())));
        let sequencer = std::sync::Arc::new(SequencerError::Store(StoreError::Integrity {
            index: 1,
            problem: String::new(),
        }));
        assert!(matches!(
            ApiError::from(AppendError::Failed(sequencer)),
            ApiError::Integrity
        ));
    }

    #[tokio::test]
    async fn an_unreachable_database_is_503_unavailable_not_a_storage_fault() {
        let gone = || StoreError::Unavailable("pool timed out on db1:5432".into());
        let sequencer = std::sync::Arc::new(SequencerError::Store(gone()));
        for e in [
            ApiError::from(gone()),
            ApiError::from(AppendError::Failed(sequencer)),
        ] {
            let response = e.into_response();
            assert!(response.extensions().get::<StorageFault>().is_none());
            assert_eq!(response.headers()[header::RETRY_AFTER], "1");
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            let bytes = to_bytes(response.into_body(), 1 << 16).await.unwrap();
            let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(body["error"]["code"], "unavailable");
            assert!(!body.to_string().contains("db1"), "{body}");
        }
    }
}
