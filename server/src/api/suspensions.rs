//! The suspension routes: a site's admins suspend and lift at their site, a VO's security
//! officers at every site of the VO ([`crate::service::suspensions`] does both); each sees
//! suspensions in its own words (a site never a person id).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use tokenledger_core::ids::{Site, Vo};
use tokenledger_core::wire::checked::Reason;
use tokenledger_core::wire::{
    EnforcementStatus, ErrorBody, LiftRequest, SiteSuspendRequest, SuspensionList, SuspensionView,
    VoSuspendRequest,
};
use utoipa::IntoParams;

use super::AppState;
use super::auth::{administered_site, officer};
use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery};
use super::nul;
use crate::credentials::Principal;
use crate::service::{enforcement, suspensions};
use crate::store::SuspensionRecord;

/// `POST /v1/sites/{site}/suspensions`.
#[utoipa::path(
    post,
    path = "/v1/sites/{site}/suspensions",
    tag = "suspensions",
    operation_id = "site_suspend",
    summary = "Suspend a pseudonym, a token or a client at the site",
    description = "Suspends the person behind a pseudonym (or behind a jti), or with `target: token` \
        only that leaked jti until it expires, or with `client` and `iss` every token of that client \
        (`client_id`, else `azp`). With `issued_before`, only the person's or client's tokens issued \
        before it. Logged; in the site's next blocklist. Roles: `site-admin` of `{site}`.",
    params(("site" = String, Path, description = "The site")),
    request_body = SiteSuspendRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Suspended", body = SuspensionView),
        (status = 400, description = "Invalid request: not exactly one of the person (or \
            pseudonym), `jti` and `client`, `target: token` without `jti`, `client` without \
            `iss`, `expires_at` not in the future, `issued_before` in the future or with \
            `target: token`, a bad `reason`, `reason_code`, `scope` or `target`", body = ErrorBody),
        (status = 403, description = "Not an admin of this site", body = ErrorBody),
        (status = 404, description = "No such site, pseudonym or token; no token of the client logged", body = ErrorBody),
        (status = 410, description = "`redacted`: this jti was logged in one of the site's VOs, \
            then redacted after retention", body = ErrorBody),
        (status = 409, description = "The person was merged into another meanwhile: suspend again; \
            the client's tokens are of several VOs of the site", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["site-admin (of {site})"]))),
)]
pub async fn site_suspend(
    State(state): State<AppState>,
    principal: Principal,
    Path(site): Path<String>,
    ApiJson(req): ApiJson<SiteSuspendRequest>,
) -> Result<(StatusCode, Json<SuspensionView>), ApiError> {
    let (site, vos) = administered_site(&state, &principal, &site).await?;
    let skew = state.config.ingest.clock_skew_secs as i64;
    let record =
        suspensions::suspend_at_site(&state.ledger, &principal.id, &site, &vos, req.into(), skew)
            .await?;
    let view = site_view(&state, &site, &record);
    Ok((StatusCode::CREATED, Json(view)))
}

/// `DELETE /v1/sites/{site}/suspensions/{id}`.
#[utoipa::path(
    delete,
    path = "/v1/sites/{site}/suspensions/{id}",
    tag = "suspensions",
    operation_id = "site_lift",
    summary = "Lift a suspension of the site",
    description = "Lifts one of the site's own suspensions, with a reason; logged. Roles: `site-admin` of `{site}`.",
    params(("site" = String, Path, description = "The site"), ("id" = String, Path, description = "The suspension id"), LiftQuery),
    request_body(content = Option<LiftRequest>, description = "Alternatively to `?reason=`"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Lifted", body = SuspensionView),
        (status = 400, description = "No reason, or one in both the query and the body", body = ErrorBody),
        (status = 403, description = "Not an admin of this site", body = ErrorBody),
        (status = 404, description = "No such suspension of this site", body = ErrorBody),
        (status = 409, description = "Already lifted", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["site-admin (of {site})"]))),
)]
pub async fn site_lift(
    State(state): State<AppState>,
    principal: Principal,
    Path((site, id)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<LiftQuery>,
    body: Bytes,
) -> Result<Json<SuspensionView>, ApiError> {
    let (site, _) = administered_site(&state, &principal, &site).await?;
    let reason = lift_reason(q, &body)?;
    let record =
        suspensions::lift_at_site(&state.ledger, &principal.id, &site, &id, &reason).await?;
    Ok(Json(site_view(&state, &site, &record)))
}

/// `GET /v1/sites/{site}/suspensions`.
#[utoipa::path(
    get,
    path = "/v1/sites/{site}/suspensions",
    tag = "suspensions",
    operation_id = "site_suspensions",
    summary = "The site's suspensions, active and past",
    description = "The site's own suspensions and the VO-wide ones that reach it, newest first, \
        by pseudonym (never an identity). Roles: `site-admin` of `{site}`.",
    params(("site" = String, Path, description = "The site")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The suspensions", body = SuspensionList),
        (status = 403, description = "Not an admin of this site", body = ErrorBody),
        (status = 404, description = "No such site", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["site-admin (of {site})"]))),
)]
pub async fn site_list(
    State(state): State<AppState>,
    principal: Principal,
    Path(site): Path<String>,
) -> Result<Json<SuspensionList>, ApiError> {
    let (site, vos) = administered_site(&state, &principal, &site).await?;
    let mut views = Vec::new();
    for record in state
        .ledger
        .reader
        .suspensions_for_site(&site, &vos)
        .await?
    {
        views.push(site_view(&state, &site, &record));
    }
    Ok(Json(SuspensionList { suspensions: views }))
}

/// `POST /v1/vos/{vo}/suspensions`.
#[utoipa::path(
    post,
    path = "/v1/vos/{vo}/suspensions",
    tag = "suspensions",
    operation_id = "vo_suspend",
    summary = "Suspend a person, a token or a client at every site of the VO",
    description = "Puts the person (by id, or the person behind a jti), one token, or a client of an \
        issuer (`client` and `iss`) on the blocklist of every site serving the VO; with \
        `issued_before`, only the person's or client's tokens issued before it. A client \
        suspension names no VO (its tag is of issuer and client id): one whose tokens are logged \
        in other VOs too is refused (409, naming them), as it would stop their users at sites \
        serving both. Logged. Roles: `vo-security` of `{vo}`.",
    params(("vo" = String, Path, description = "The VO")),
    request_body = VoSuspendRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Suspended", body = SuspensionView),
        (status = 400, description = "Invalid request: not exactly one of the person (or \
            pseudonym), `jti` and `client`, `target: token` without `jti`, `client` without \
            `iss`, `expires_at` not in the future, `issued_before` in the future or with \
            `target: token`, a bad `reason`, `reason_code`, `scope` or `target`", body = ErrorBody),
        (status = 403, description = "Not a security officer of this VO", body = ErrorBody),
        (status = 404, description = "No such person or token in the VO; no token of the client logged", body = ErrorBody),
        (status = 409, description = "The person was merged into another; the client's tokens \
            are logged in other VOs too (named)", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["vo-security (of {vo})"]))),
)]
pub async fn vo_suspend(
    State(state): State<AppState>,
    principal: Principal,
    Path(vo): Path<String>,
    ApiJson(req): ApiJson<VoSuspendRequest>,
) -> Result<(StatusCode, Json<SuspensionView>), ApiError> {
    let vo = officer(&principal, &vo)?;
    let skew = state.config.ingest.clock_skew_secs as i64;
    let record =
        suspensions::suspend_in_vo(&state.ledger, &principal.id, &vo, req.into(), skew).await?;
    Ok((StatusCode::CREATED, Json(vo_view(&state, &record))))
}

/// `DELETE /v1/vos/{vo}/suspensions/{id}`.
#[utoipa::path(
    delete,
    path = "/v1/vos/{vo}/suspensions/{id}",
    tag = "suspensions",
    operation_id = "vo_lift",
    summary = "Lift a VO-wide suspension",
    description = "Lifts one of the VO's own VO-wide suspensions, with a reason; logged. \
        Roles: `vo-security` of `{vo}`.",
    params(("vo" = String, Path, description = "The VO"), ("id" = String, Path, description = "The suspension id"), LiftQuery),
    request_body(content = Option<LiftRequest>, description = "Alternatively to `?reason=`"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Lifted", body = SuspensionView),
        (status = 400, description = "No reason, or one in both the query and the body", body = ErrorBody),
        (status = 403, description = "Not a security officer of this VO", body = ErrorBody),
        (status = 404, description = "No such VO-wide suspension", body = ErrorBody),
        (status = 409, description = "Already lifted", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["vo-security (of {vo})"]))),
)]
pub async fn vo_lift(
    State(state): State<AppState>,
    principal: Principal,
    Path((vo, id)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<LiftQuery>,
    body: Bytes,
) -> Result<Json<SuspensionView>, ApiError> {
    let vo = officer(&principal, &vo)?;
    let reason = lift_reason(q, &body)?;
    let record = suspensions::lift_in_vo(&state.ledger, &principal.id, &vo, &id, &reason).await?;
    Ok(Json(vo_view(&state, &record)))
}

/// `GET /v1/vos/{vo}/suspensions`.
#[utoipa::path(
    get,
    path = "/v1/vos/{vo}/suspensions",
    tag = "suspensions",
    operation_id = "vo_suspensions",
    summary = "Which sites suspended which of the VO's persons",
    description = "Every suspension of the VO's persons, newest first: site suspensions by site and \
        pseudonym (resolve a pseudonym only through the logged `GET /v1/vos/{vo}/pseudonyms/{pseudonym}`), \
        VO-wide ones by person. Roles: `vo-security` of `{vo}`.",
    params(("vo" = String, Path, description = "The VO")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The suspensions", body = SuspensionList),
        (status = 403, description = "Not a security officer of this VO", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["vo-security (of {vo})"]))),
)]
pub async fn vo_list(
    State(state): State<AppState>,
    principal: Principal,
    Path(vo): Path<String>,
) -> Result<Json<SuspensionList>, ApiError> {
    let vo = officer(&principal, &vo)?;
    let suspensions = state
        .ledger
        .reader
        .suspensions_for_vo(&vo)
        .await?
        .iter()
        .map(|r| vo_view(&state, r))
        .collect();
    Ok(Json(SuspensionList { suspensions }))
}

/// `GET /v1/vos/{vo}/suspensions/{id}/enforcement`.
#[utoipa::path(
    get,
    path = "/v1/vos/{vo}/suspensions/{id}/enforcement",
    tag = "suspensions",
    operation_id = "vo_suspension_enforcement",
    summary = "Which sites fetched a blocklist carrying the suspension",
    description = "Per site the suspension reaches (every site serving the VO for a VO-wide \
        suspension, the suspending site for a site suspension): `fetched` with the first time \
        (unix seconds) any credential of the site fetched a blocklist or export of a sequence \
        carrying it, and that sequence; or `not_fetched`; with the site's last fetch of any \
        sequence. A lifted suspension says so (`lifted_at`). Roles: `vo-security` of `{vo}`, `admin`.",
    params(("vo" = String, Path, description = "The VO"), ("id" = String, Path, description = "The suspension id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The enforcement status", body = EnforcementStatus),
        (status = 403, description = "Not a security officer of this VO, nor an admin", body = ErrorBody),
        (status = 404, description = "No such suspension in this VO", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["vo-security (of {vo})", "admin"]))),
)]
pub async fn vo_enforcement(
    State(state): State<AppState>,
    principal: Principal,
    Path((vo, id)): Path<(String, String)>,
) -> Result<Json<EnforcementStatus>, ApiError> {
    if !principal.binding.may_see_enforcement(&vo) {
        return Err(ApiError::Forbidden(format!(
            "only security officers of VO `{vo}` and admins may do this"
        )));
    }
    let vo = Vo::unchecked(vo);
    Ok(Json(enforcement::in_vo(&state.ledger, &vo, &id).await?))
}

/// `GET /v1/sites/{site}/suspensions/{id}/enforcement`.
#[utoipa::path(
    get,
    path = "/v1/sites/{site}/suspensions/{id}/enforcement",
    tag = "suspensions",
    operation_id = "site_suspension_enforcement",
    summary = "Whether the site fetched a blocklist carrying the suspension",
    description = "For one of the site's suspensions or a VO-wide one that reaches it: `fetched` \
        with the first time (unix seconds) any credential of the site fetched a blocklist or export \
        of a sequence carrying it, and that sequence; or `not_fetched`; with the site's last fetch. \
        Only this site. Roles: `site-admin` of `{site}`.",
    params(("site" = String, Path, description = "The site"), ("id" = String, Path, description = "The suspension id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The enforcement status at this site", body = EnforcementStatus),
        (status = 403, description = "Not an admin of this site", body = ErrorBody),
        (status = 404, description = "No such site, or no such suspension reaching it", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["site-admin (of {site})"]))),
)]
pub async fn site_enforcement(
    State(state): State<AppState>,
    principal: Principal,
    Path((site, id)): Path<(String, String)>,
) -> Result<Json<EnforcementStatus>, ApiError> {
    let (site, vos) = administered_site(&state, &principal, &site).await?;
    Ok(Json(
        enforcement::at_site(&state.ledger, &site, &vos, &id).await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LiftQuery {
    /// Why the suspension is lifted, or give `{"reason"}` as a JSON body: exactly one of
    /// the two.
    #[param(value_type = Option<Reason>, inline)]
    reason: Option<String>,
}

/// The lift's reason: `?reason=`, or a JSON `LiftRequest` body (some clients cannot send a
/// body with DELETE, some proxies drop it); exactly one of the two, so the reason logged is
/// never a guess between them. An empty body, or `null`, is no body.
fn lift_reason(q: LiftQuery, body: &[u8]) -> Result<String, ApiError> {
    let body: Option<LiftRequest> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let parsed = serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
        nul::check_json(body, "body")?;
        parsed
    };
    match (q.reason, body) {
        (Some(reason), None) => Ok(reason),
        (None, Some(body)) => Ok(body.reason),
        (Some(_), Some(_)) => Err(ApiError::BadRequest(
            "give the reason in the query or in the body, not both".into(),
        )),
        (None, None) => Err(ApiError::BadRequest(
            "reason is required: name the incident or ticket".into(),
        )),
    }
}

/// As a site sees it: its own pseudonym of the person (remembered when the suspension was
/// made), nothing more; the client of its own client suspensions (a VO-wide one says only
/// that a client is suspended).
fn site_view(state: &AppState, site: &Site, r: &SuspensionRecord) -> SuspensionView {
    let own = r.site.as_ref() == Some(site);
    SuspensionView {
        pseudonym: r.person_id.as_ref().map(|person| {
            state
                .ledger
                .pseudonyms
                .of(site, &r.vo, person)
                .into_string()
        }),
        person: None,
        client_iss: r.client_iss.clone().filter(|_| own),
        client: r.client_id.clone().filter(|_| own),
        ..common_view(state, r)
    }
}

/// As the VO sees it: the suspending site's pseudonym for site suspensions, the person for its own.
fn vo_view(state: &AppState, r: &SuspensionRecord) -> SuspensionView {
    let pseudonyms = &state.ledger.pseudonyms;
    SuspensionView {
        pseudonym: r
            .site
            .as_ref()
            .zip(r.person_id.as_ref())
            .map(|(site, person)| pseudonyms.of(site, &r.vo, person).into_string()),
        person: r
            .person_id
            .as_ref()
            .filter(|_| r.site.is_none())
            .map(|person| person.to_string()),
        client_iss: r.client_iss.clone(),
        client: r.client_id.clone(),
        ..common_view(state, r)
    }
}

fn common_view(state: &AppState, r: &SuspensionRecord) -> SuspensionView {
    SuspensionView {
        id: r.id.clone(),
        index: r.idx,
        site: r.site.as_ref().map(Site::to_string),
        vo: r.vo.to_string(),
        pseudonym: None,
        person: None,
        target: r.target().into(),
        client_iss: None,
        client: None,
        issued_before: r.issued_before,
        scope: r.scope.as_str().into(),
        reason_code: r.reason_code.clone(),
        created_at: r.created_at,
        not_after: r.not_after,
        lifted_at: r.lifted_at,
        active: r.is_active(state.ledger.clock.now_secs()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(query: Option<&str>, body: &str) -> Result<String, String> {
        let q = LiftQuery {
            reason: query.map(str::to_string),
        };
        lift_reason(q, body.as_bytes()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_lift_takes_its_reason_from_the_query_or_the_body_not_both() {
        assert_eq!(reason(Some("INC-1"), ""), Ok("INC-1".into()));
        assert_eq!(reason(None, r#"{"reason": "INC-2"}"#), Ok("INC-2".into()));
        assert_eq!(reason(Some("INC-1"), " \n"), Ok("INC-1".into()));
        assert_eq!(reason(Some("INC-1"), "null"), Ok("INC-1".into()));
        let both = reason(Some("INC-1"), r#"{"reason": "INC-2"}"#).unwrap_err();
        assert!(both.contains("not both"), "{both}");
        let bad_body = reason(Some("INC-1"), r#"{"reason": true}"#).unwrap_err();
        assert!(
            bad_body.contains("JSON"),
            "a given body is read: {bad_body}"
        );
        assert!(reason(None, "").unwrap_err().contains("required"));
        assert!(reason(None, "null").unwrap_err().contains("required"));
        let nul = reason(None, r#"{"reason": "INC\u0000"}"#).unwrap_err();
        assert!(nul.contains("U+0000"), "{nul}");
        assert_eq!(
            reason(None, r#"{"reason": "\\u0000"}"#),
            Ok(r"\u0000".into())
        );
        assert!(
            reason(None, r#"{"reason": 1}"#)
                .unwrap_err()
                .contains("JSON")
        );
    }
}
