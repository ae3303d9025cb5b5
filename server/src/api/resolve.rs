//! The resolution routes of a VO's security officers ([`crate::service::resolution`], which
//! logs every answer before it is given): a `jti` to a person, a person's tokens, searches by
//! client or scope, a person's timeline.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use tokenledger_core::ids::{Jti, PersonId};
use tokenledger_core::wire::checked::Reason;
use tokenledger_core::wire::{ErrorBody, IssuancePage, Timeline, TokenResolution};
use utoipa::IntoParams;

use super::AppState;
use super::auth::authorize_resolution;
use super::error::ApiError;
use super::extract::ApiQuery;
use crate::credentials::Principal;
use crate::service::resolution::{self, Listing};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResolveQuery {
    /// Why: the incident or ticket. Required; it is logged with the answer.
    #[param(required = true, value_type = Reason, inline)]
    reason: Option<String>,
    /// Which issuer, where several logged the same jti in this VO.
    iss: Option<String>,
}

/// `GET /v1/vos/{vo}/tokens/{jti}?reason=[&iss=]`.
#[utoipa::path(
    get,
    path = "/v1/vos/{vo}/tokens/{jti}",
    tag = "resolution",
    operation_id = "resolve_token",
    summary = "Resolve a token to the person",
    description = "The person a `jti` of the VO was issued to, the issuance entry with its \
        inclusion proof and checkpoint, and the token chain (refresh, exchange) up to its root \
        and the human. The answer, and a miss, are logged as a `resolution` entry (requester, \
        reason) before they are given. Roles: `vo-security` of `{vo}` only: not admins, not \
        auditors, not another VO's officers, who get the same 403 whether or not the jti exists.",
    params(
        ("vo" = String, Path, description = "The VO"),
        ("jti" = String, Path, description = "The access token's `jti`"),
        ResolveQuery,
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The person, the issuance and its chain",
            body = TokenResolution),
        (status = 400, description = "No reason, or an invalid one", body = ErrorBody),
        (status = 403, description = "Not a security officer of this VO", body = ErrorBody),
        (status = 404, description = "No issuance of this jti in the VO (logged)",
            body = ErrorBody),
        (status = 409, description = "Several issuers logged this jti in the VO: pass `iss` \
            (logged)", body = ErrorBody),
        (status = 410, description = "`redacted`: an issuance of this jti was logged in the \
            VO, then redacted after retention (or erased); only that is kept (logged)",
            body = ErrorBody),
        (status = 503, description = "The sequencer is busy or shutting down, or this \
            server is a standby (`not_the_writer`, naming the writer); retry (`Retry-After`)",
            body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["vo-security (of {vo})"]))),
)]
pub async fn token(
    State(state): State<AppState>,
    principal: Principal,
    Path((vo, jti)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<ResolveQuery>,
) -> Result<Json<TokenResolution>, ApiError> {
    let (vo, reason) = authorize_resolution(&principal, &vo, q.reason.as_deref())?;
    let iss = q.iss.as_deref();
    let jti = Jti::unchecked(jti);
    let answer = resolution::token(&state.ledger, &principal.id, &vo, &jti, iss, reason).await?;
    Ok(Json(answer))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Why: the incident or ticket. Required; it is logged with the answer.
    #[param(required = true, value_type = Reason, inline)]
    reason: Option<String>,
    /// Tokens issued at or after (unix seconds).
    from: Option<i64>,
    /// Tokens issued before (unix seconds).
    to: Option<i64>,
    /// Tokens issued to this client.
    client_id: Option<String>,
    /// Tokens carrying this scope.
    scope: Option<String>,
    /// Paging: only entries with a smaller index (from `next_before`).
    #[serde(default, deserialize_with = "super::extract::optional_index")]
    before: Option<u64>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// `GET /v1/vos/{vo}/persons/{person}/tokens?reason=[&from=&to=&client_id=&scope=&before=&limit=]`.
#[utoipa::path(
    get,
    path = "/v1/vos/{vo}/persons/{person}/tokens",
    tag = "resolution",
    operation_id = "person_tokens",
    summary = "A person's tokens",
    description = "The issuances of every identity of a person in the VO, newest first, \
        optionally filtered. Logged as a `resolution` entry before the answer. Roles: \
        `vo-security` of `{vo}` only.",
    params(
        ("vo" = String, Path, description = "The VO"),
        ("person" = String, Path, description = "The person's id (`pe-...`)"),
        ListQuery,
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of issuances", body = IssuancePage),
        (status = 400, description = "No reason, an invalid one, or a bad `limit`",
            body = ErrorBody),
        (status = 403, description = "Not a security officer of this VO", body = ErrorBody),
        (status = 404, description = "No such person in the VO (logged)",
            body = ErrorBody),
        (status = 503, description = "The sequencer is busy or shutting down, or this \
            server is a standby (`not_the_writer`, naming the writer); retry (`Retry-After`)",
            body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["vo-security (of {vo})"]))),
)]
pub async fn person_tokens(
    State(state): State<AppState>,
    principal: Principal,
    Path((vo, person)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<IssuancePage>, ApiError> {
    let (vo, reason) = authorize_resolution(&principal, &vo, q.reason.as_deref())?;
    let person = PersonId::unchecked(person);
    let listing = q.listing();
    let page =
        resolution::person_tokens(&state.ledger, &principal.id, &vo, &person, listing, reason)
            .await?;
    Ok(Json(page))
}

/// `GET /v1/vos/{vo}/tokens?reason=&client_id=|scope=[&from=&to=&before=&limit=]`.
#[utoipa::path(
    get,
    path = "/v1/vos/{vo}/tokens",
    tag = "resolution",
    operation_id = "search_tokens",
    summary = "Search a VO's tokens by client or scope",
    description = "Issuances of the VO by `client_id` or `scope` (at least one), newest first. \
        Logged as a `resolution` entry before the answer. Roles: `vo-security` of `{vo}` only.",
    params(("vo" = String, Path, description = "The VO"), ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of issuances", body = IssuancePage),
        (status = 400, description = "No reason, an invalid one, neither `client_id` nor \
            `scope`, or a bad `limit`", body = ErrorBody),
        (status = 403, description = "Not a security officer of this VO", body = ErrorBody),
        (status = 503, description = "The sequencer is busy or shutting down, or this \
            server is a standby (`not_the_writer`, naming the writer); retry (`Retry-After`)",
            body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["vo-security (of {vo})"]))),
)]
pub async fn search(
    State(state): State<AppState>,
    principal: Principal,
    Path(vo): Path<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<IssuancePage>, ApiError> {
    let (vo, reason) = authorize_resolution(&principal, &vo, q.reason.as_deref())?;
    let listing = q.listing();
    let page = resolution::search(&state.ledger, &principal.id, &vo, listing, reason).await?;
    Ok(Json(page))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimelineQuery {
    /// Why: the incident or ticket. Required; it is logged with the answer.
    #[param(required = true, value_type = Reason, inline)]
    reason: Option<String>,
    /// Paging: only entries with a smaller index (from `next_before`).
    #[serde(default, deserialize_with = "super::extract::optional_index")]
    before: Option<u64>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// `GET /v1/vos/{vo}/persons/{person}/timeline?reason=[&before=&limit=]`: newest first.
#[utoipa::path(
    get,
    path = "/v1/vos/{vo}/persons/{person}/timeline",
    tag = "resolution",
    operation_id = "person_timeline",
    summary = "A person's timeline",
    description = "What the log holds about a person in the VO (issuances for now), newest \
        first. Logged as a `resolution` entry before the answer. Roles: `vo-security` of `{vo}` \
        only.",
    params(
        ("vo" = String, Path, description = "The VO"),
        ("person" = String, Path, description = "The person's id (`pe-...`)"),
        TimelineQuery,
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of events", body = Timeline),
        (status = 400, description = "No reason, an invalid one, or a bad `limit`",
            body = ErrorBody),
        (status = 403, description = "Not a security officer of this VO", body = ErrorBody),
        (status = 404, description = "No such person in the VO (logged)",
            body = ErrorBody),
        (status = 503, description = "The sequencer is busy or shutting down, or this \
            server is a standby (`not_the_writer`, naming the writer); retry (`Retry-After`)",
            body = ErrorBody),
    ),
    extensions(("x-roles" = json!(["vo-security (of {vo})"]))),
)]
pub async fn timeline(
    State(state): State<AppState>,
    principal: Principal,
    Path((vo, person)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<TimelineQuery>,
) -> Result<Json<Timeline>, ApiError> {
    let (vo, reason) = authorize_resolution(&principal, &vo, q.reason.as_deref())?;
    let person = PersonId::unchecked(person);
    let page = (q.before, q.limit);
    let timeline =
        resolution::timeline(&state.ledger, &principal.id, &vo, &person, page, reason).await?;
    Ok(Json(timeline))
}

impl ListQuery {
    /// The listing the query asks for.
    fn listing(&self) -> Listing<'_> {
        Listing {
            client_id: self.client_id.as_deref(),
            scope: self.scope.as_deref(),
            from: self.from,
            to: self.to,
            before: self.before,
            limit: self.limit,
        }
    }
}
