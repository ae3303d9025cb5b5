//! A site's own API (its `site-admin`; sightings also its `reporter`): the site's pseudonym
//! for the person behind a jti (never the identity), the site key for offline enforcement
//! (each fetch logged), and sightings of tokens in use.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use tokenledger_core::ids::{Jti, Site};
use tokenledger_core::wire::checked::Id;
use tokenledger_core::wire::{ErrorBody, Logged, SightingReport, SiteKeyAnswer, SitePseudonym};
use utoipa::IntoParams;

use super::AppState;
use super::auth::administered_site;
use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery};
use crate::credentials::Principal;
use crate::service::sites;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PseudonymQuery {
    /// The jti's issuer, where several issuers logged the same jti.
    iss: Option<String>,
}

/// `GET /v1/sites/{site}/tokens/{jti}/pseudonym`.
#[utoipa::path(
    get,
    path = "/v1/sites/{site}/tokens/{jti}/pseudonym",
    tag = "sites",
    operation_id = "site_pseudonym",
    summary = "The site's pseudonym for the person behind a token",
    description = "Turns a jti seen in the site's logs (HTCondor `AuthTokenId`, storage logs) into \
        the site's persistent pseudonym of the person, never the identity. Roles: `site-admin` of `{site}`.",
    params(
        ("site" = String, Path, description = "The site"),
        ("jti" = inline(Id), Path, description = "The access token's `jti`"),
        PseudonymQuery,
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The pseudonym", body = SitePseudonym),
        (status = 400, description = "A `jti` that is not an identifier", body = ErrorBody),
        (status = 403, description = "Not an admin of this site", body = ErrorBody),
        (status = 404, description = "No such site, or no such token of the site's VOs", body = ErrorBody),
        (status = 409, description = "Several issuers logged this jti: pass `iss`", body = ErrorBody),
        (status = 410, description = "`redacted`: this jti was logged in one of the site's VOs, \
            then redacted after retention", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["site-admin (of {site})"]))),
)]
pub async fn pseudonym(
    State(state): State<AppState>,
    principal: Principal,
    Path((site, jti)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<PseudonymQuery>,
) -> Result<Json<SitePseudonym>, ApiError> {
    let (site, vos) = administered_site(&state, &principal, &site).await?;
    let jti = Jti::parse(jti).map_err(ApiError::invalid)?;
    let (vo, pseudonym) =
        sites::pseudonym_of_token(&state.ledger, &site, &vos, &jti, q.iss.as_deref()).await?;
    Ok(Json(SitePseudonym {
        site: site.into_string(),
        vo: vo.into_string(),
        pseudonym: pseudonym.into_string(),
    }))
}

/// `GET /v1/sites/{site}/key`.
#[utoipa::path(
    get,
    path = "/v1/sites/{site}/key",
    tag = "sites",
    operation_id = "site_key",
    summary = "The site key, for offline enforcement",
    description = "`K_site`, with which the site's CE and storage plugins compute match tags from the \
        token in hand. Each fetch is logged. Roles: `site-admin` of `{site}`.",
    params(("site" = String, Path, description = "The site")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The key", body = SiteKeyAnswer),
        (status = 403, description = "Not an admin of this site", body = ErrorBody),
        (status = 404, description = "No such site", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["site-admin (of {site})"]))),
)]
pub async fn key(
    State(state): State<AppState>,
    principal: Principal,
    Path(site): Path<String>,
) -> Result<Json<SiteKeyAnswer>, ApiError> {
    let (site, _) = administered_site(&state, &principal, &site).await?;
    let key = sites::fetch_key(&state.ledger, &site, &principal.id).await?;
    Ok(Json(SiteKeyAnswer {
        site: site.into_string(),
        key: STANDARD.encode(key.as_bytes()),
    }))
}

/// `POST /v1/sites/{site}/sightings`.
#[utoipa::path(
    post,
    path = "/v1/sites/{site}/sightings",
    tag = "sites",
    operation_id = "report_sighting",
    summary = "Report that a token was seen in use",
    description = "Logs where and when a token was used, so the VO's timeline shows it. Roles: \
        `site-admin` or `reporter` of `{site}`.",
    params(("site" = String, Path, description = "The site")),
    request_body = SightingReport,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Logged; the entry's index", body = Logged),
        (status = 400, description = "Invalid report, or `seen_at` in the future", body = ErrorBody),
        (status = 403, description = "Not an admin or reporter of this site", body = ErrorBody),
        (status = 404, description = "No such site, or no such token of the site's VOs", body = ErrorBody),
        (status = 410, description = "`redacted`: this jti was logged in one of the site's VOs, \
            then redacted after retention", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["site-admin (of {site})", "reporter (of {site})"]))),
)]
pub async fn sighting(
    State(state): State<AppState>,
    principal: Principal,
    Path(site): Path<String>,
    ApiJson(report): ApiJson<SightingReport>,
) -> Result<(StatusCode, Json<Logged>), ApiError> {
    if !principal.binding.may_report_sightings(&site) {
        return Err(ApiError::Forbidden(format!(
            "only admins and reporters of site `{site}` report its sightings"
        )));
    }
    let site = Site::unchecked(site);
    let vos = sites::existing(state.ledger.reader.as_ref(), &site).await?;
    let skew = state.config.ingest.clock_skew_secs as i64;
    let index =
        sites::report_sighting(&state.ledger, &site, &vos, report, &principal.id, skew).await?;
    Ok((StatusCode::CREATED, Json(Logged { index })))
}
