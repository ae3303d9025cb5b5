//! Liveness, the server's role, storage health and Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use tokenledger_core::wire::{Health, ServerRole};

use super::AppState;
use crate::writer_role::Role;

/// `GET /healthz`: the server answers, knows its log size and says its role; degraded (503)
/// while it has met storage errors in the last minute.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    operation_id = "healthz",
    summary = "Liveness, log size, role and storage health",
    description = "`ok` with the log size and the server's role: `writer`, or `standby` with \
        the writer's name in `writer` (servers sharing one database have one writer; a \
        standby serves reads and answers writes with 503 `not_the_writer`, so a load balancer \
        sends writes to the server whose role is `writer`). `degraded` (503) while storage \
        errors (a database error, or a stored entry that failed its integrity check) were met \
        in the last minute, with their number. Roles: public.",
    responses(
        (status = 200, description = "The server answers and met no storage error in the \
            last minute", body = Health),
        (status = 503, description = "Storage errors in the last minute \
            (`status` `degraded`, `storage_errors_last_minute`)", body = Health),
    ),
    extensions(("x-roles" = json!(["public"]))),
)]
pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let log_size = state.ledger.head().size;
    let (role, writer) = match state.ledger.role() {
        Role::Writer => (ServerRole::Writer, None),
        Role::Standby { writer } => (ServerRole::Standby, writer),
    };
    let errors = state.metrics.storage_errors().last_minute();
    let (status, code) = match errors {
        0 => (StatusCode::OK, "ok"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "degraded"),
    };
    let health = Health {
        status: code.into(),
        log_size,
        role,
        writer,
        storage_errors_last_minute: (errors > 0).then_some(errors),
    };
    (status, Json(health))
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
