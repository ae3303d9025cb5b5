//! The routes of a VO's persons (its `vo-security` only): link an identity, merge two
//! persons, resolve a site's pseudonym ([`crate::service::persons`]), erase a person
//! ([`crate::service::erasure`]); which identities a VO may link is checked here.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use tokenledger_core::entry::check_id;
use tokenledger_core::export::X509_ISSUER;
use tokenledger_core::ids::{PersonId, Pseudonym};
use tokenledger_core::wire::checked::Reason;
use tokenledger_core::wire::{
    ErasureRequest, ErasureView, ErrorBody, LinkRequest, MergeRequest, PersonView,
    PseudonymResolution,
};
use utoipa::IntoParams;

use super::AppState;
use super::auth::authorize_resolution;
use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery};
use crate::credentials::Principal;
use crate::service::{erasure, persons};

#[utoipa::path(
    post,
    path = "/v1/vos/{vo}/persons/{person}/identities",
    tag = "persons",
    operation_id = "link_identity",
    summary = "Attach another identity to a person",
    description = "Links `(iss, sub)` (a second issuer, a new `sub`, or `iss: \"x509\"` with a DN) to the \
        person; suspensions follow the person, so blocklist tags cover the new identity. Logged. An \
        identity of another person is refused: merge instead. Linking an identity the person \
        already has changes nothing and logs nothing. Roles: `vo-security` of `{vo}`.",
    params(("vo" = String, Path, description = "The VO"), ("person" = String, Path, description = "The person")),
    request_body = LinkRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The person with all identities", body = PersonView),
        (status = 400, description = "Invalid request, or an X.509 DN holding $, `, \\, ' or \"", body = ErrorBody),
        (status = 403, description = "Not a security officer of this VO, or an identity of an \
            issuer that serves other VOs only", body = ErrorBody),
        (status = 404, description = "No such person", body = ErrorBody),
        (status = 409, description = "The identity belongs to another person, or the person was merged into another", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["vo-security (of {vo})"]))),
)]
pub async fn link(
    State(state): State<AppState>,
    principal: Principal,
    Path((vo, person)): Path<(String, String)>,
    ApiJson(req): ApiJson<LinkRequest>,
) -> Result<Json<PersonView>, ApiError> {
    let (vo, _) = authorize_resolution(&principal, &vo, Some(&req.reason))?;
    let person = PersonId::unchecked(person);
    for (name, value) in [("iss", &req.iss), ("sub", &req.sub)] {
        check_id(name, value).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    }
    check_link_target(&state, &vo, &req.iss, &req.sub)?;
    let identity = (req.iss, req.sub);
    let view = persons::link(
        &state.ledger,
        &principal.id,
        &vo,
        &person,
        identity,
        req.reason,
    )
    .await?;
    Ok(Json(view))
}

#[utoipa::path(
    post,
    path = "/v1/vos/{vo}/persons/{person}/merge",
    tag = "persons",
    operation_id = "merge_persons",
    summary = "Merge another person into this one",
    description = "Moves every identity, pseudonym and suspension of `other` to the person; `other` \
        is merged away, and later changes naming it are refused (409). Logged. Roles: `vo-security` of `{vo}`.",
    params(("vo" = String, Path, description = "The VO"), ("person" = String, Path, description = "The person kept")),
    request_body = MergeRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The merged person", body = PersonView),
        (status = 400, description = "Invalid request, or `other` is the person itself", body = ErrorBody),
        (status = 403, description = "Not a security officer of this VO", body = ErrorBody),
        (status = 404, description = "No such person", body = ErrorBody),
        (status = 409, description = "One of the persons was merged into another", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["vo-security (of {vo})"]))),
)]
pub async fn merge(
    State(state): State<AppState>,
    principal: Principal,
    Path((vo, person)): Path<(String, String)>,
    ApiJson(req): ApiJson<MergeRequest>,
) -> Result<Json<PersonView>, ApiError> {
    let (vo, _) = authorize_resolution(&principal, &vo, Some(&req.reason))?;
    let person = PersonId::unchecked(person);
    let other = PersonId::unchecked(req.other);
    let view = persons::merge(
        &state.ledger,
        &principal.id,
        &vo,
        &person,
        other,
        req.reason,
    )
    .await?;
    Ok(Json(view))
}

#[utoipa::path(
    post,
    path = "/v1/vos/{vo}/persons/{person}/erasure",
    tag = "persons",
    operation_id = "erase_person",
    summary = "Erase a person: redact every entry of theirs now",
    description = "Redacts now, as a retention run would, every entry of the person in the VO: \
        the issuances of their identities and the sightings of those tokens, their suspensions \
        and lifts, the suspension requests about them and the decisions, the links and merges \
        naming them; their identities and pseudonyms go too. Kept: what an active suspension or \
        a pending suspension request of the person needs, and the issuances and sightings of a \
        client under an active suspension (and, while any entry of the person is kept, their \
        identities and pseudonyms); the answer lists each kept entry and why. Resolutions (the VO's audit of lookups) are \
        not the person's entries and stay for their own period. Logged as one `erasure` entry, \
        or several for a person with more entries than one can name; one with no ranges when \
        nothing is left to redact. Roles: `vo-security` of `{vo}`.",
    params(("vo" = String, Path, description = "The VO"), ("person" = String, Path, description = "The person")),
    request_body = ErasureRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "What was redacted and what was kept", body = ErasureView),
        (status = 400, description = "No reason, or an invalid one", body = ErrorBody),
        (status = 403, description = "Not a security officer of this VO", body = ErrorBody),
        (status = 404, description = "No such person in the VO", body = ErrorBody),
        (status = 409, description = "The person was merged into another, or suspensions, requests, \
            links or merges kept being logged while the erasure was planned: erase again", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["vo-security (of {vo})"]))),
)]
pub async fn erase(
    State(state): State<AppState>,
    principal: Principal,
    Path((vo, person)): Path<(String, String)>,
    ApiJson(req): ApiJson<ErasureRequest>,
) -> Result<Json<ErasureView>, ApiError> {
    let (vo, reason) = authorize_resolution(&principal, &vo, Some(&req.reason))?;
    let person = PersonId::unchecked(person);
    let view = erasure::erase(&state.ledger, &principal.id, &vo, &person, reason).await?;
    Ok(Json(view))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PseudonymQuery {
    /// Why: the incident or ticket. Required; logged with the answer.
    #[param(required = true, value_type = Reason, inline)]
    reason: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/vos/{vo}/pseudonyms/{pseudonym}",
    tag = "resolution",
    operation_id = "resolve_pseudonym",
    summary = "Resolve a site's pseudonym to the person",
    description = "The person behind a pseudonym a site reported (e.g. in a suspension). Logged as a \
        `resolution` entry before the answer. Roles: `vo-security` of `{vo}` only.",
    params(("vo" = String, Path, description = "The VO"), ("pseudonym" = String, Path, description = "The pseudonym (`p1-...`)"), PseudonymQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The person", body = PseudonymResolution),
        (status = 400, description = "No reason", body = ErrorBody),
        (status = 403, description = "Not a security officer of this VO", body = ErrorBody),
        (status = 404, description = "No such pseudonym in the VO (logged)", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["vo-security (of {vo})"]))),
)]
pub async fn resolve_pseudonym(
    State(state): State<AppState>,
    principal: Principal,
    Path((vo, pseudonym)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<PseudonymQuery>,
) -> Result<Json<PseudonymResolution>, ApiError> {
    let (vo, reason) = authorize_resolution(&principal, &vo, q.reason.as_deref())?;
    let pseudonym = Pseudonym::unchecked(pseudonym);
    let resolution =
        persons::resolve_pseudonym(&state.ledger, &principal.id, &vo, &pseudonym, reason).await?;
    Ok(Json(resolution))
}

/// An identity a VO may link: not one of an issuer that serves other VOs only (that would
/// let one VO suspend another's users at shared sites), and an X.509 DN with no character a
/// shell or an export format would interpret.
fn check_link_target(state: &AppState, vo: &str, iss: &str, sub: &str) -> Result<(), ApiError> {
    if iss == X509_ISSUER {
        if sub.contains(['$', '`', '\\', '\'', '"']) {
            return Err(ApiError::BadRequest(
                "an X.509 DN may not contain $, `, \\, ' or \"".into(),
            ));
        }
        return Ok(());
    }
    match state.issuers.get(iss) {
        Some(issuer) if !issuer.config.may_vouch_for(vo) => Err(ApiError::Forbidden(format!(
            "issuer `{iss}` does not serve VO `{vo}`: its identities are another VO's to link"
        ))),
        _ => Ok(()),
    }
}
