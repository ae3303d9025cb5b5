//! Liveness and Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use tokenledger_core::wire::Health;

use super::AppState;

/// `GET /healthz`: the server answers and knows its log size.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    operation_id = "healthz",
    summary = "Liveness and log size",
    description = "Roles: public.",
    responses((status = 200, description = "The server answers", body = Health)),
    extensions(("x-roles" = json!(["public"]))),
)]
pub async fn healthz(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"status": "ok", "log_size": state.sequencer.head().size}))
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    operation_id = "metrics",
    summary = "Prometheus metrics",
    description = "Log size, appends, duplicates, batch sizes, commit latency, blocklist long polls, in the Prometheus \
        text format. Roles: public.",
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
