//! The HTTP API: the router over [`AppState`], one module per resource, and its OpenAPI
//! document ([`openapi`]).

mod audit;
mod auth;
mod blocklist;
mod body;
pub mod error;
mod extract;
mod health;
mod issuances;
mod log;
mod nul;
pub mod openapi;
mod persons;
mod resolve;
mod sites;
mod suspension_requests;
mod suspensions;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokenledger_core::note::{NoteSigner, NoteVerifier};
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::blocklists::Blocklists;
use crate::config::Config;
use crate::issuers::Issuers;
use crate::metrics::Metrics;
use crate::service::Ledger;
use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Reads (`ledger.reader`), appends, pseudonyms and the clock: what services work with.
    pub ledger: Ledger,
    pub verifier: NoteVerifier,
    /// The log key, for receipts.
    pub signer: Arc<NoteSigner>,
    pub issuers: Issuers,
    /// Site blocklists and the pseudonym secret they derive from.
    pub blocklists: Arc<Blocklists>,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
}

/// Every route of the API with its OpenAPI operation: a handler is routed only through
/// `routes!`, which takes its method and path from the handler's `#[utoipa::path]`, so no
/// route exists without being in the document.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(health::healthz))
        .routes(routes!(health::metrics))
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(issuances::post))
        .routes(routes!(log::checkpoint))
        .routes(routes!(log::key))
        .routes(routes!(log::inclusion))
        .routes(routes!(log::consistency))
        .routes(routes!(log::entries))
        .routes(routes!(resolve::search))
        .routes(routes!(resolve::token))
        .routes(routes!(resolve::person_tokens))
        .routes(routes!(resolve::timeline))
        .routes(routes!(audit::resolutions))
        .routes(routes!(persons::link))
        .routes(routes!(persons::merge))
        .routes(routes!(persons::erase))
        .routes(routes!(persons::resolve_pseudonym))
        .routes(routes!(suspensions::vo_suspend, suspensions::vo_list))
        .routes(routes!(suspensions::vo_lift))
        .routes(routes!(suspensions::vo_enforcement))
        .routes(routes!(sites::pseudonym))
        .routes(routes!(sites::key))
        .routes(routes!(sites::sighting))
        .routes(routes!(suspensions::site_suspend, suspensions::site_list))
        .routes(routes!(suspensions::site_lift))
        .routes(routes!(suspensions::site_enforcement))
        .routes(routes!(
            suspension_requests::site_request,
            suspension_requests::site_list
        ))
        .routes(routes!(suspension_requests::site_get))
        .routes(routes!(suspension_requests::vo_list))
        .routes(routes!(suspension_requests::vo_accept))
        .routes(routes!(suspension_requests::vo_decline))
        .routes(routes!(blocklist::get))
}

/// The router of the whole API, errors included.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.server.max_body_bytes;
    Router::from(routes())
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("method not allowed on this route".into())
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            error::count_storage_faults,
        ))
        .layer(axum::middleware::from_fn(nul::refuse_in_uri))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            body::read_whole,
        ))
        // Server errors are logged where they are made (`error.rs`), at their own level: a
        // standby's 503 `not_the_writer` is no error, an internal one is.
        .layer(TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(Level::DEBUG)))
        .with_state(state)
}
