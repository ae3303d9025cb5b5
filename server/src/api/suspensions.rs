//! Suspensions and lifts: a site suspends a pseudonym (a person) or one leaked token at
//! itself; a VO's security officers suspend a person or token at every site of the VO.
//! Each is a log entry; the site's next blocklist fetch carries it. Whether the person is
//! still one (not merged away) and the suspension not yet lifted is decided by the sequencer.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use tokenledger_core::blocklist::Scope;
use tokenledger_core::entry::{EntryBody, Lift, Suspension, check_id, validate_reason};
use tokenledger_core::wire::checked::Reason;
use tokenledger_core::wire::{
    ErrorBody, LiftRequest, SiteSuspendRequest, SuspensionList, SuspensionView, VoSuspendRequest,
};
use utoipa::IntoParams;

use super::AppState;
use super::append::{append_decided, append_entry, now_secs, prepare_entry};
use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery};
use super::sites::{administered_site, person_of, remember_pseudonym, site_issuance};
use crate::clock::now_micros;
use crate::credentials::Principal;
use crate::keys::random_bytes;
use crate::preconditions::Refusal;
use crate::sequencer::{AppendError, EntryKind};
use crate::store::{StateChange, SuspensionRecord};

/// Who or what a suspension targets, resolved.
struct Target {
    vo: String,
    person_id: String,
    /// `(iss, jti)` for a single-token suspension, and the token's `exp`.
    token: Option<(String, String, Option<i64>)>,
}

/// What every suspension request carries.
struct Terms {
    scope: Scope,
    reason: String,
    reason_code: String,
    expires_at: Option<i64>,
    token_only: bool,
}

/// `POST /v1/sites/{site}/suspensions`.
#[utoipa::path(
    post,
    path = "/v1/sites/{site}/suspensions",
    tag = "suspensions",
    operation_id = "site_suspend",
    summary = "Suspend a pseudonym or a token at the site",
    description = "Suspends the person behind a pseudonym (or behind a jti), or with `target: token` \
        only that leaked jti until it expires. Logged; in the site's next blocklist. Roles: `site-admin` of `{site}`.",
    params(("site" = String, Path, description = "The site")),
    request_body = SiteSuspendRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Suspended", body = SuspensionView),
        (status = 400, description = "Invalid request: not exactly one of the person (or \
            pseudonym) and `jti`, `target: token` without `jti`, `expires_at` not in the future, \
            a bad `reason`, `reason_code`, `scope` or `target`", body = ErrorBody),
        (status = 403, description = "Not an admin of this site", body = ErrorBody),
        (status = 404, description = "No such site, pseudonym or token", body = ErrorBody),
        (status = 409, description = "The person was merged into another meanwhile: suspend again", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["site-admin (of {site})"]))),
)]
pub async fn site_suspend(
    State(state): State<AppState>,
    principal: Principal,
    Path(site): Path<String>,
    ApiJson(req): ApiJson<SiteSuspendRequest>,
) -> Result<(StatusCode, Json<SuspensionView>), ApiError> {
    let vos = administered_site(&state, &principal, &site).await?;
    let terms = terms(
        req.target.as_deref(),
        req.scope.as_deref(),
        &req.reason,
        req.reason_code.as_deref(),
        req.expires_at,
    )?;
    let target = match (&req.pseudonym, &req.jti) {
        (Some(pseudonym), None) if !terms.token_only => {
            let (at, vo, person_id) = state
                .reader
                .pseudonym(pseudonym)
                .await?
                .filter(|(at, _, _)| at == &site)
                .ok_or_else(|| ApiError::NotFound("no such pseudonym at this site".into()))?;
            debug_assert_eq!(at, site);
            Target {
                vo,
                person_id,
                token: None,
            }
        }
        (None, Some(jti)) => {
            jti_target(&state, &vos, jti, req.iss.as_deref(), terms.token_only).await?
        }
        _ => {
            return Err(ApiError::BadRequest(
                "give `pseudonym` (a person) or `jti` (its person, or with target token the token only)".into(),
            ));
        }
    };
    let record = suspend(&state, &principal, Some(site.clone()), target, terms).await?;
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
    administered_site(&state, &principal, &site).await?;
    let reason = lift_reason(q, &body)?;
    let record = state
        .reader
        .suspension(&id)
        .await?
        .filter(|s| s.site.as_deref() == Some(site.as_str()))
        .ok_or_else(|| ApiError::NotFound("no such suspension of this site".into()))?;
    let record = lift(&state, &principal, record, &reason).await?;
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
    let vos = administered_site(&state, &principal, &site).await?;
    let mut views = Vec::new();
    for record in state.reader.suspensions_for_site(&site, &vos).await? {
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
    summary = "Suspend a person or a token at every site of the VO",
    description = "Puts the person (by id, or the person behind a jti) or one token on the blocklist \
        of every site serving the VO. Logged. Roles: `vo-security` of `{vo}`.",
    params(("vo" = String, Path, description = "The VO")),
    request_body = VoSuspendRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Suspended", body = SuspensionView),
        (status = 400, description = "Invalid request: not exactly one of the person (or \
            pseudonym) and `jti`, `target: token` without `jti`, `expires_at` not in the future, \
            a bad `reason`, `reason_code`, `scope` or `target`", body = ErrorBody),
        (status = 403, description = "Not a security officer of this VO", body = ErrorBody),
        (status = 404, description = "No such person or token in the VO", body = ErrorBody),
        (status = 409, description = "The person was merged into another", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["vo-security (of {vo})"]))),
)]
pub async fn vo_suspend(
    State(state): State<AppState>,
    principal: Principal,
    Path(vo): Path<String>,
    ApiJson(req): ApiJson<VoSuspendRequest>,
) -> Result<(StatusCode, Json<SuspensionView>), ApiError> {
    officer(&principal, &vo)?;
    let terms = terms(
        req.target.as_deref(),
        req.scope.as_deref(),
        &req.reason,
        req.reason_code.as_deref(),
        req.expires_at,
    )?;
    let target = match (&req.person, &req.jti) {
        (Some(person), None) if !terms.token_only => Target {
            vo: vo.clone(),
            person_id: person.clone(),
            token: None,
        },
        (None, Some(jti)) => {
            jti_target(
                &state,
                std::slice::from_ref(&vo),
                jti,
                req.iss.as_deref(),
                terms.token_only,
            )
            .await?
        }
        _ => {
            return Err(ApiError::BadRequest(
                "give `person`, or `jti` (its person, or with target token the token only)".into(),
            ));
        }
    };
    let record = suspend(&state, &principal, None, target, terms).await?;
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
    officer(&principal, &vo)?;
    let reason = lift_reason(q, &body)?;
    let record = state
        .reader
        .suspension(&id)
        .await?
        .filter(|s| s.site.is_none() && s.vo == vo)
        .ok_or_else(|| ApiError::NotFound("no such VO-wide suspension".into()))?;
    let record = lift(&state, &principal, record, &reason).await?;
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
    officer(&principal, &vo)?;
    let suspensions = state
        .reader
        .suspensions_for_vo(&vo)
        .await?
        .iter()
        .map(|r| vo_view(&state, r))
        .collect();
    Ok(Json(SuspensionList { suspensions }))
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
        serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?
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

fn officer(principal: &Principal, vo: &str) -> Result<(), ApiError> {
    if principal.binding.may_resolve(vo) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "only security officers of VO `{vo}` may do this"
        )))
    }
}

fn terms(
    target: Option<&str>,
    scope: Option<&str>,
    reason: &str,
    reason_code: Option<&str>,
    expires_at: Option<i64>,
) -> Result<Terms, ApiError> {
    let bad = |m: &str| ApiError::BadRequest(m.to_string());
    let token_only = match target.unwrap_or("person") {
        "person" => false,
        "token" => true,
        _ => return Err(bad("target is `person` or `token`")),
    };
    let scope = match scope.unwrap_or("all") {
        "compute" => Scope::Compute,
        "storage" => Scope::Storage,
        "all" => Scope::All,
        _ => return Err(bad("scope is `compute`, `storage` or `all`")),
    };
    validate_reason(reason).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let reason_code = reason_code.unwrap_or("suspended");
    let code_ok = (1..=32).contains(&reason_code.len())
        && reason_code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !code_ok {
        return Err(bad("reason_code is 1-32 characters of a-z, 0-9, '-'"));
    }
    if expires_at.is_some_and(|t| t <= now_secs()) {
        return Err(bad("expires_at must be in the future (unix seconds)"));
    }
    Ok(Terms {
        scope,
        reason: reason.to_string(),
        reason_code: reason_code.to_string(),
        expires_at,
        token_only,
    })
}

async fn jti_target(
    state: &AppState,
    vos: &[String],
    jti: &str,
    iss: Option<&str>,
    token_only: bool,
) -> Result<Target, ApiError> {
    check_id("jti", jti).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let (_, issuance) = site_issuance(state, vos, jti, iss).await?;
    let person_id = person_of(state, &issuance).await?;
    Ok(Target {
        vo: issuance.vo.clone(),
        person_id,
        token: token_only.then(|| (issuance.iss.clone(), issuance.jti.clone(), issuance.exp)),
    })
}

async fn suspend(
    state: &AppState,
    principal: &Principal,
    site: Option<String>,
    target: Target,
    terms: Terms,
) -> Result<SuspensionRecord, ApiError> {
    let id = format!(
        "su-{}",
        tokenledger_core::pseudonym::base32(
            &random_bytes::<10>().map_err(|e| ApiError::Internal(e.to_string()))?
        )
    );
    let token_exp = target.token.as_ref().and_then(|t| t.2);
    let not_after = match (terms.expires_at, token_exp) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let (token_iss, token_jti) = match target.token {
        Some((iss, jti, _)) => (Some(iss), Some(jti)),
        None => (None, None),
    };
    let pseudonym = match &site {
        Some(site) => Some(remember_pseudonym(state, site, &target.vo, &target.person_id).await?),
        None => None,
    };
    let created_at = now_micros();
    let body = EntryBody::Suspension(Box::new(Suspension {
        suspension_id: id.clone(),
        site: site.clone(),
        vo: target.vo.clone(),
        person_id: target.person_id.clone(),
        pseudonym,
        target: if token_jti.is_some() {
            "token"
        } else {
            "person"
        }
        .into(),
        token_iss: token_iss.clone(),
        token_jti: token_jti.clone(),
        scope: terms.scope.as_str().into(),
        reason: terms.reason,
        reason_code: terms.reason_code.clone(),
        created_by: principal.id.clone(),
        not_after,
    }));
    let mut record = SuspensionRecord {
        id,
        idx: 0,
        site,
        vo: target.vo,
        person_id: target.person_id,
        token_iss,
        token_jti,
        scope: terms.scope.as_str().into(),
        reason_code: terms.reason_code,
        created_by: principal.id.clone(),
        created_at,
        not_after,
        lifted_at: None,
    };
    let change = StateChange::Suspend(record.clone());
    let entry = prepare_entry(body, EntryKind::State(change))?;
    let at_site = record.site.is_some();
    record.idx = append_decided(state, entry).await.map_err(|e| match e {
        AppendError::Refused(refusal) if at_site => site_refusal(refusal),
        e => e.into(),
    })?;
    state.blocklists.changed();
    Ok(record)
}

async fn lift(
    state: &AppState,
    principal: &Principal,
    mut record: SuspensionRecord,
    reason: &str,
) -> Result<SuspensionRecord, ApiError> {
    validate_reason(reason).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let lifted_at = now_micros();
    let body = EntryBody::Lift(Lift {
        suspension_id: record.id.clone(),
        reason: reason.to_string(),
        lifted_by: principal.id.clone(),
    });
    let change = StateChange::Lift {
        suspension_id: record.id.clone(),
        lifted_by: principal.id.clone(),
        lifted_at,
    };
    append_entry(state, body, EntryKind::State(change)).await?;
    state.blocklists.changed();
    record.lifted_at = Some(lifted_at);
    Ok(record)
}

/// A site suspension the sequencer refused, in words that name no person: a site never
/// learns person ids. Its person came from a pseudonym or a token, so it has identities unless
/// a merge moved them; the pseudonym and the token then lead to the person merged into.
fn site_refusal(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::MergedAway { .. } => ApiError::Conflict(
            "the person was merged into another person meanwhile: suspend again".into(),
        ),
        other if other.is_not_found() => ApiError::NotFound("no such person".into()),
        _ => ApiError::Conflict("the suspension no longer applies: suspend again".into()),
    }
}

/// As a site sees it: its own pseudonym of the person (remembered when the suspension was
/// made), nothing more.
fn site_view(state: &AppState, site: &str, r: &SuspensionRecord) -> SuspensionView {
    SuspensionView {
        pseudonym: Some(
            state
                .blocklists
                .secret()
                .pseudonym(site, &r.vo, &r.person_id),
        ),
        person: None,
        ..common_view(r)
    }
}

/// As the VO sees it: the suspending site's pseudonym for site suspensions, the person for its own.
fn vo_view(state: &AppState, r: &SuspensionRecord) -> SuspensionView {
    let secret = state.blocklists.secret();
    SuspensionView {
        pseudonym: r
            .site
            .as_ref()
            .map(|site| secret.pseudonym(site, &r.vo, &r.person_id)),
        person: r.site.is_none().then(|| r.person_id.clone()),
        ..common_view(r)
    }
}

fn common_view(r: &SuspensionRecord) -> SuspensionView {
    SuspensionView {
        id: r.id.clone(),
        index: r.idx,
        site: r.site.clone(),
        vo: r.vo.clone(),
        pseudonym: None,
        person: None,
        target: r.target().into(),
        scope: r.scope.clone(),
        reason_code: r.reason_code.clone(),
        created_at: r.created_at,
        not_after: r.not_after,
        lifted_at: r.lifted_at,
        active: r.is_active(now_secs()),
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
        assert!(
            reason(None, r#"{"reason": 1}"#)
                .unwrap_err()
                .contains("JSON")
        );
    }
}
