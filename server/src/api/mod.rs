//! The HTTP API: the router over [`AppState`], one module per resource.

mod audit;
mod auth;
pub mod error;
mod extract;
mod health;
mod issuances;
mod log;
mod resolve;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use sqlx::SqlitePool;
use tokenledger_core::note::{NoteSigner, NoteVerifier};
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::issuers::Issuers;
use crate::metrics::Metrics;
use crate::sequencer::Sequencer;
use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: SqlitePool,
    pub sequencer: Sequencer,
    pub verifier: NoteVerifier,
    /// The log key, for receipts.
    pub signer: Arc<NoteSigner>,
    pub issuers: Issuers,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
}

/// Every route of the API.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.server.max_body_bytes;
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .route("/v1/issuances", post(issuances::post))
        .route("/v1/log/checkpoint", get(log::checkpoint))
        .route("/v1/log/key", get(log::key))
        .route("/v1/log/proof/inclusion", get(log::inclusion))
        .route("/v1/log/proof/consistency", get(log::consistency))
        .route("/v1/log/entries", get(log::entries))
        .route("/v1/vos/{vo}/tokens", get(resolve::search))
        .route("/v1/vos/{vo}/tokens/{jti}", get(resolve::token))
        .route(
            "/v1/vos/{vo}/persons/{person}/tokens",
            get(resolve::person_tokens),
        )
        .route(
            "/v1/vos/{vo}/persons/{person}/timeline",
            get(resolve::timeline),
        )
        .route("/v1/vos/{vo}/resolutions", get(audit::resolutions))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("method not allowed on this route".into())
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
