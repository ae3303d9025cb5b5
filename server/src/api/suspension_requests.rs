//! The suspension request routes: a site's admins ask their VO to suspend a person at every
//! site of the VO and follow the outcome; the VO's security officers list the requests and
//! accept or decline them ([`crate::service::suspension_requests`]). A site's view never holds
//! an issuer, subject or person id; neither does the VO's list (a pseudonym resolves only
//! through the logged `GET /v1/vos/{vo}/pseudonyms/{pseudonym}`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokenledger_core::suspension_request::RequestStatus;
use tokenledger_core::wire::{
    AcceptSuspensionRequest, DeclineSuspensionRequest, ErrorBody, NewSuspensionRequest,
    SuspensionRequestList, SuspensionRequestView,
};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::{administered_site, officer};
use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery};
use crate::credentials::Principal;
use crate::service::suspension_requests;
use crate::store::SuspensionRequestRecord;

/// Which requests a listing holds.
#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum StatusFilter {
    Pending,
    Accepted,
    Declined,
    All,
}

impl StatusFilter {
    fn status(self) -> Option<RequestStatus> {
        match self {
            StatusFilter::Pending => Some(RequestStatus::Pending),
            StatusFilter::Accepted => Some(RequestStatus::Accepted),
            StatusFilter::Declined => Some(RequestStatus::Declined),
            StatusFilter::All => None,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SiteListQuery {
    /// Only requests in this state [default: all].
    #[param(inline)]
    status: Option<StatusFilter>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VoListQuery {
    /// Only requests in this state [default: pending].
    #[param(inline)]
    status: Option<StatusFilter>,
}

/// `POST /v1/sites/{site}/suspension-requests`.
#[utoipa::path(
    post,
    path = "/v1/sites/{site}/suspension-requests",
    tag = "suspension requests",
    operation_id = "site_request_suspension",
    summary = "Ask the VO to suspend a person at every site",
    description = "Asks the security officers of the person's VO to suspend, at every site of the \
        VO, the person behind the site's pseudonym (or behind a jti seen at the site), with the \
        site's evidence and proposed terms. Logged (the evidence too: the VO's officers and \
        auditors read it). The site sees the outcome, never the identity. `expires_at` must be \
        in the future. Roles: `site-admin` of `{site}`.",
    params(("site" = String, Path, description = "The site")),
    request_body = NewSuspensionRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Requested", body = SuspensionRequestView),
        (status = 400, description = "Invalid request: not exactly one of `pseudonym` and \
            `jti`, `iss` without `jti`, `expires_at` not in the future, bad `evidence`, `scope` or `reason_code`",
            body = ErrorBody),
        (status = 403, description = "Not an admin of this site", body = ErrorBody),
        (status = 410, description = "`redacted`: this jti was logged in one of the site's VOs, \
            then redacted after retention", body = ErrorBody),
        (status = 404, description = "No such site, pseudonym of the site, or token of its VOs",
            body = ErrorBody),
        (status = 409, description = "Several issuers logged this jti (pass `iss`), or the \
            person was merged into another meanwhile: request again", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["site-admin (of {site})"]))),
)]
pub async fn site_request(
    State(state): State<AppState>,
    principal: Principal,
    Path(site): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<SuspensionRequestView>), ApiError> {
    let (site, vos) = administered_site(&state, &principal, &site).await?;
    let req: NewSuspensionRequest = object(body)?;
    let record =
        suspension_requests::request(&state.ledger, &principal.id, &site, &vos, req).await?;
    Ok((StatusCode::CREATED, Json(site_view(&record))))
}

/// `GET /v1/sites/{site}/suspension-requests`.
#[utoipa::path(
    get,
    path = "/v1/sites/{site}/suspension-requests",
    tag = "suspension requests",
    operation_id = "site_suspension_requests",
    summary = "The site's suspension requests and their outcomes",
    description = "The site's own requests, newest first: pending, accepted (with the VO-wide \
        suspension made) or declined (with the officers' reason); by the site's pseudonym, \
        never an identity. Roles: `site-admin` of `{site}`.",
    params(("site" = String, Path, description = "The site"), SiteListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The requests", body = SuspensionRequestList),
        (status = 400, description = "An unknown `status`", body = ErrorBody),
        (status = 403, description = "Not an admin of this site", body = ErrorBody),
        (status = 404, description = "No such site", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["site-admin (of {site})"]))),
)]
pub async fn site_list(
    State(state): State<AppState>,
    principal: Principal,
    Path(site): Path<String>,
    ApiQuery(q): ApiQuery<SiteListQuery>,
) -> Result<Json<SuspensionRequestList>, ApiError> {
    let (site, _) = administered_site(&state, &principal, &site).await?;
    let status = q.status.unwrap_or(StatusFilter::All).status();
    let requests = state
        .ledger
        .reader
        .suspension_requests_of_site(&site, status)
        .await?
        .iter()
        .map(site_view)
        .collect();
    Ok(Json(SuspensionRequestList { requests }))
}

/// `GET /v1/sites/{site}/suspension-requests/{id}`.
#[utoipa::path(
    get,
    path = "/v1/sites/{site}/suspension-requests/{id}",
    tag = "suspension requests",
    operation_id = "site_suspension_request",
    summary = "One of the site's suspension requests",
    description = "Where the request stands: pending, accepted (with the VO-wide suspension \
        made) or declined (with the officers' reason). Roles: `site-admin` of `{site}`.",
    params(("site" = String, Path, description = "The site"), ("id" = String, Path, description = "The request id (`sr-...`)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The request", body = SuspensionRequestView),
        (status = 403, description = "Not an admin of this site", body = ErrorBody),
        (status = 404, description = "No such site, or no such request of the site", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["site-admin (of {site})"]))),
)]
pub async fn site_get(
    State(state): State<AppState>,
    principal: Principal,
    Path((site, id)): Path<(String, String)>,
) -> Result<Json<SuspensionRequestView>, ApiError> {
    let (site, _) = administered_site(&state, &principal, &site).await?;
    let record = suspension_requests::of_site(&state.ledger, &site, &id).await?;
    Ok(Json(site_view(&record)))
}

/// `GET /v1/vos/{vo}/suspension-requests`.
#[utoipa::path(
    get,
    path = "/v1/vos/{vo}/suspension-requests",
    tag = "suspension requests",
    operation_id = "vo_suspension_requests",
    summary = "Sites' requests to suspend persons of the VO",
    description = "The requests made to the VO, newest first, pending ones unless `status` \
        says otherwise: the requesting site, its pseudonym of the person (resolve it only \
        through the logged `GET /v1/vos/{vo}/pseudonyms/{pseudonym}`), the jti and issuer it \
        named, its evidence and proposed terms. Roles: `vo-security` of `{vo}`.",
    params(("vo" = String, Path, description = "The VO"), VoListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The requests", body = SuspensionRequestList),
        (status = 400, description = "An unknown `status`", body = ErrorBody),
        (status = 403, description = "Not a security officer of this VO", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["vo-security (of {vo})"]))),
)]
pub async fn vo_list(
    State(state): State<AppState>,
    principal: Principal,
    Path(vo): Path<String>,
    ApiQuery(q): ApiQuery<VoListQuery>,
) -> Result<Json<SuspensionRequestList>, ApiError> {
    let vo = officer(&principal, &vo)?;
    let status = q.status.unwrap_or(StatusFilter::Pending).status();
    let requests = state
        .ledger
        .reader
        .suspension_requests_to_vo(&vo, status)
        .await?
        .iter()
        .map(vo_view)
        .collect();
    Ok(Json(SuspensionRequestList { requests }))
}

/// `POST /v1/vos/{vo}/suspension-requests/{id}/accept`.
#[utoipa::path(
    post,
    path = "/v1/vos/{vo}/suspension-requests/{id}/accept",
    tag = "suspension requests",
    operation_id = "vo_accept_suspension_request",
    summary = "Accept a suspension request: suspend the person at every site of the VO",
    description = "Suspends the request's person at every site of the VO (a VO-wide suspension, \
        on the terms given, else those the site proposed) and logs the acceptance, naming the \
        suspension, in the same batch. Send `{}` to take the site's terms. `expires_at` (given, \
        or proposed) must be in the future; `expires_at` `null` makes a suspension that lasts \
        until lifted, whatever end the site proposed. Roles: `vo-security` of `{vo}`.",
    params(("vo" = String, Path, description = "The VO"), ("id" = String, Path, description = "The request id (`sr-...`)")),
    request_body = AcceptSuspensionRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Accepted: the request, naming the suspension made", body = SuspensionRequestView),
        (status = 400, description = "Bad terms, or the proposed `expires_at` has passed", body = ErrorBody),
        (status = 403, description = "Not a security officer of this VO", body = ErrorBody),
        (status = 404, description = "No such request in this VO", body = ErrorBody),
        (status = 409, description = "Accepted or declined already, or the person was merged \
            into another", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["vo-security (of {vo})"]))),
)]
pub async fn vo_accept(
    State(state): State<AppState>,
    principal: Principal,
    Path((vo, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<SuspensionRequestView>, ApiError> {
    let vo = officer(&principal, &vo)?;
    let req: AcceptSuspensionRequest = object(body)?;
    let record = suspension_requests::accept(&state.ledger, &principal.id, &vo, &id, req).await?;
    Ok(Json(vo_view(&record)))
}

/// `POST /v1/vos/{vo}/suspension-requests/{id}/decline`.
#[utoipa::path(
    post,
    path = "/v1/vos/{vo}/suspension-requests/{id}/decline",
    tag = "suspension requests",
    operation_id = "vo_decline_suspension_request",
    summary = "Decline a suspension request, with a reason",
    description = "Declines the request; the reason is logged and the requesting site reads it. \
        Roles: `vo-security` of `{vo}`.",
    params(("vo" = String, Path, description = "The VO"), ("id" = String, Path, description = "The request id (`sr-...`)")),
    request_body = DeclineSuspensionRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Declined", body = SuspensionRequestView),
        (status = 400, description = "No reason, or a bad one", body = ErrorBody),
        (status = 403, description = "Not a security officer of this VO", body = ErrorBody),
        (status = 404, description = "No such request in this VO", body = ErrorBody),
        (status = 409, description = "Accepted or declined already", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["vo-security (of {vo})"]))),
)]
pub async fn vo_decline(
    State(state): State<AppState>,
    principal: Principal,
    Path((vo, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<SuspensionRequestView>, ApiError> {
    let vo = officer(&principal, &vo)?;
    let req: DeclineSuspensionRequest = object(body)?;
    let record =
        suspension_requests::decline(&state.ledger, &principal.id, &vo, &id, &req.reason).await?;
    Ok(Json(vo_view(&record)))
}

/// A body read from a JSON object only: serde would read a struct from an array of its
/// members' values too (and `[null, ...]` as an acceptance with no terms).
fn object<T: DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    if !body.is_object() {
        return Err(ApiError::BadRequest(
            "invalid JSON body: expected an object".into(),
        ));
    }
    serde_json::from_value(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// As the requesting site sees it: its pseudonym and the jti it named, no issuer.
fn site_view(r: &SuspensionRequestRecord) -> SuspensionRequestView {
    SuspensionRequestView {
        iss: None,
        ..vo_view(r)
    }
}

/// As the VO's officers see it: the site's pseudonym, the token it named; never the person.
fn vo_view(r: &SuspensionRequestRecord) -> SuspensionRequestView {
    SuspensionRequestView {
        id: r.id.clone(),
        index: r.idx,
        site: r.site.to_string(),
        vo: r.vo.to_string(),
        pseudonym: r.pseudonym.to_string(),
        jti: r.token_jti.as_ref().map(|jti| jti.to_string()),
        iss: r.token_iss.clone(),
        evidence: r.evidence.clone(),
        scope: r.scope.map(|s| s.as_str().to_string()),
        reason_code: r.reason_code.clone(),
        expires_at: r.not_after,
        requested_by: r.requested_by.clone(),
        requested_at: r.requested_at,
        status: r.status,
        decided_at: r.decided_at,
        decision_index: r.decision_idx,
        suspension_id: r.suspension_id.clone(),
        decline_reason: r.decline_reason.clone(),
    }
}
