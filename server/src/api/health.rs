//! Liveness, storage health and Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use tokenledger_core::wire::Health;

use super::AppState;

/// `GET /healthz`: the server answers and knows its log size; degraded (503) while it has
/// met storage errors in the last minute.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    operation_id = "healthz",
    summary = "Liveness, log size and storage health",
    description = "`ok` with the log size; `degraded` (503) while storage errors (a database \
        error, or a stored entry that failed its integrity check) were met in the last minute, \
        with their number. Roles: public.",
    responses(
        (status = 200, description = "The server answers and met no storage error in the \
            last minute", body = Health),
        (status = 503, description = "Storage errors in the last minute \
            (`status` `degraded`, `storage_errors_last_minute`)", body = Health),
    ),
    extensions(("x-roles" = json!(["public"]))),
)]
pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let log_size = state.ledger.sequencer.head().size;
    match state.metrics.storage_errors().last_minute() {
        0 => (
            StatusCode::OK,
            Json(Health {
                status: "ok".into(),
                log_size,
                storage_errors_last_minute: None,
            }),
        ),
        errors => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "degraded".into(),
                log_size,
                storage_errors_last_minute: Some(errors),
            }),
        ),
    }
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    operation_id = "metrics",
    summary = "Prometheus metrics",
    description = "Log size, appends, duplicates, batch sizes, commit latency, blocklist long \
        polls, storage and integrity errors, in the Prometheus text format. Roles: public.",
    responses((
        status = 200,
        description = "Prometheus text format 0.0.4",
        body = String,
        content_type = "text/plain; version=0.0.4; charset=utf-8",
    )),
    extensions(("x-roles" = json!(["public"]))),
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
