//! A site's own API (its `site-admin`; sightings also its `reporter`): the site's pseudonym
//! for the person behind a jti (never the identity), the site key for offline enforcement
//! (each fetch logged), and sightings of tokens in use.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use tokenledger_core::entry::{EntryBody, Issuance, Sighting, SiteKeyFetch, check_id};
use tokenledger_core::wire::checked::Id;
use tokenledger_core::wire::{ErrorBody, Logged, SightingReport, SiteKeyAnswer, SitePseudonym};
use utoipa::IntoParams;

use super::AppState;
use super::append::{append_entry, now_secs};
use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery};
use crate::clock::now_micros;
use crate::credentials::Principal;
use crate::sequencer::EntryKind;
use crate::store::{StateChange, decode_issuance};

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
    ),
    extensions(("x-roles" = json!(["site-admin (of {site})"]))),
)]
pub async fn pseudonym(
    State(state): State<AppState>,
    principal: Principal,
    Path((site, jti)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<PseudonymQuery>,
) -> Result<Json<SitePseudonym>, ApiError> {
    let vos = administered_site(&state, &principal, &site).await?;
    check_id("jti", &jti).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let (_, issuance) = site_issuance(&state, &vos, &jti, q.iss.as_deref()).await?;
    let person = person_of(&state, &issuance).await?;
    let pseudonym = remember_pseudonym(&state, &site, &issuance.vo, &person).await?;
    Ok(Json(SitePseudonym {
        site,
        vo: issuance.vo,
        pseudonym,
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
    administered_site(&state, &principal, &site).await?;
    let body = EntryBody::SiteKeyFetch(SiteKeyFetch {
        site: site.clone(),
        requester: principal.id.clone(),
    });
    append_entry(&state, body, EntryKind::State(StateChange::None)).await?;
    let key = state.blocklists.secret().site_key(&site);
    Ok(Json(SiteKeyAnswer {
        site,
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
    let vos = existing_site(&state, &site).await?;
    check_id("jti", &report.jti).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    for (name, value) in [("host", &report.host), ("job_id", &report.job_id)] {
        if let Some(value) = value {
            check_id(name, value).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        }
    }
    let horizon = now_secs() + state.config.ingest.clock_skew_secs as i64;
    if report.seen_at < 0 || report.seen_at > horizon {
        return Err(ApiError::BadRequest(
            "seen_at must be a past time in unix seconds".into(),
        ));
    }
    let (_, issuance) = site_issuance(&state, &vos, &report.jti, report.iss.as_deref()).await?;
    let body = EntryBody::Sighting(Sighting {
        site: site.clone(),
        vo: issuance.vo.clone(),
        iss: issuance.iss.clone(),
        jti: issuance.jti.clone(),
        seen_at: report.seen_at,
        host: report.host,
        job_id: report.job_id,
        reported_by: principal.id.clone(),
    });
    let change = StateChange::Sighting {
        site,
        vo: issuance.vo,
        iss: issuance.iss,
        jti: issuance.jti,
    };
    let index = append_entry(&state, body, EntryKind::State(change)).await?;
    Ok((StatusCode::CREATED, Json(Logged { index })))
}

/// Checks the caller administers `site` (403 first, whether or not it exists), then that
/// the site exists (404); returns the VOs it serves.
pub async fn administered_site(
    state: &AppState,
    principal: &Principal,
    site: &str,
) -> Result<Vec<String>, ApiError> {
    if !principal.binding.may_administer_site(site) {
        return Err(ApiError::Forbidden(format!(
            "only admins of site `{site}` may do this"
        )));
    }
    existing_site(state, site).await
}

/// The VOs of an existing site, or 404.
pub async fn existing_site(state: &AppState, site: &str) -> Result<Vec<String>, ApiError> {
    state
        .reader
        .site_vos(site)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no site `{site}`")))
}

/// The one issuance of `jti` (of `iss`, if given) in a VO the site serves.
pub async fn site_issuance(
    state: &AppState,
    vos: &[String],
    jti: &str,
    iss: Option<&str>,
) -> Result<(u64, Issuance), ApiError> {
    let mut found = Vec::new();
    for (index, leaf) in state.reader.issuances_by_jti(jti).await? {
        let issuance = decode_issuance(index, &leaf)?;
        if vos.contains(&issuance.vo) && iss.is_none_or(|iss| iss == issuance.iss) {
            found.push((index, issuance));
        }
    }
    match found.len() {
        1 => Ok(found.pop().expect("one")),
        0 => Err(ApiError::NotFound(
            "no token with this jti in the site's VOs".into(),
        )),
        _ => Err(ApiError::Conflict(
            "several issuers logged this jti: pass iss".into(),
        )),
    }
}

/// The person an issuance belongs to.
pub async fn person_of(state: &AppState, issuance: &Issuance) -> Result<String, ApiError> {
    state
        .reader
        .person_of(&issuance.iss, &issuance.sub, &issuance.vo)
        .await?
        .ok_or_else(|| ApiError::Internal("an issuance without a person".into()))
}

/// The site's pseudonym of a person, remembered so the VO can resolve it later.
pub async fn remember_pseudonym(
    state: &AppState,
    site: &str,
    vo: &str,
    person: &str,
) -> Result<String, ApiError> {
    let pseudonym = state.blocklists.secret().pseudonym(site, vo, person);
    state
        .registry
        .remember_pseudonym(&pseudonym, site, vo, person, now_micros())
        .await?;
    Ok(pseudonym)
}
