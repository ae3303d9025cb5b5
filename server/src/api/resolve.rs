//! VO-restricted resolution: a VO's security officers turn a `jti` into a person (with its
//! token chain and an inclusion proof), list a person's tokens, search by client or scope,
//! and read a person's timeline. Every answer that reveals identities is logged as a
//! `resolution` entry, with the stated reason, before it is given.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use tokenledger_core::chain::{ChainLink, ChainLookup, ChainWalk};
use tokenledger_core::entry::Issuance;
use tokenledger_core::wire::checked::Reason;
use tokenledger_core::wire::{
    ErrorBody, IdentityView, IssuancePage, PersonView, Timeline, TimelineEvent, TokenResolution,
};
use utoipa::IntoParams;

use super::AppState;
use super::auth::authorize_resolution;
use super::error::ApiError;
use super::extract::ApiQuery;
use super::log::served;
use crate::credentials::Principal;
use crate::service::resolution;
use crate::store::{IssuanceFilter, StoredEntry, decode_issuance};

/// Default and largest page of a listing.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

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
        (status = 503, description = "The sequencer is busy or shutting down; retry",
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
    let reason = authorize_resolution(&principal, &vo, q.reason.as_deref())?;
    let mut found: Vec<(u64, Issuance, Vec<u8>)> = Vec::new();
    for (index, leaf) in state.ledger.reader.issuances_by_jti(&jti).await? {
        let issuance = decode_issuance(index, &leaf)?;
        if issuance.vo == vo && q.iss.as_deref().is_none_or(|iss| iss == issuance.iss) {
            found.push((index, issuance, leaf));
        }
    }
    let (index, issuance, leaf) = match found.len() {
        1 => found.pop().expect("one"),
        0 => {
            resolution::log(
                &state.ledger,
                &principal.id,
                &vo,
                "resolve_jti",
                &jti,
                reason,
                0,
            )
            .await?;
            return Err(ApiError::NotFound(format!(
                "no issuance of this jti in VO `{vo}`"
            )));
        }
        _ => {
            resolution::log(
                &state.ledger,
                &principal.id,
                &vo,
                "resolve_jti",
                &jti,
                reason,
                0,
            )
            .await?;
            let issuers: Vec<&str> = found.iter().map(|(_, i, _)| i.iss.as_str()).collect();
            return Err(ApiError::Conflict(format!(
                "several issuers logged this jti in VO `{vo}`: pass iss= one of {issuers:?}"
            )));
        }
    };
    // The entry records how many links the answer reveals, so the chain comes first; the
    // other reads run while the entry commits.
    let chain = walk_chain(&state, &vo, index, &issuance).await?;
    let revealed = chain.links.len() as u64;
    let head = state.ledger.sequencer.head();
    let logged = async {
        Ok::<_, ApiError>(
            resolution::log(
                &state.ledger,
                &principal.id,
                &vo,
                "resolve_jti",
                &jti,
                reason,
                revealed,
            )
            .await?,
        )
    };
    let people = async {
        let person = person_view(&state, &vo, &issuance.iss, &issuance.sub).await?;
        let human = match chain.human_subject() {
            Some((iss, sub)) => Some(person_view(&state, &vo, iss, sub).await?),
            None => None,
        };
        Ok::<_, ApiError>((person, human))
    };
    let proof = async {
        Ok::<_, ApiError>(
            state
                .ledger
                .reader
                .inclusion_proof(index, head.size)
                .await?,
        )
    };
    let (resolution_index, (person, human), inclusion_proof) =
        tokio::try_join!(logged, people, proof)?;
    Ok(Json(TokenResolution {
        resolution_index,
        person,
        issuance: served(index, &leaf)?,
        inclusion_proof,
        checkpoint: head.note.clone(),
        chain,
        human,
    }))
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
        (status = 503, description = "The sequencer is busy or shutting down; retry",
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
    let reason = authorize_resolution(&principal, &vo, q.reason.as_deref())?;
    let identities = state.ledger.reader.identities_of(&person, &vo).await?;
    if identities.is_empty() {
        resolution::log(
            &state.ledger,
            &principal.id,
            &vo,
            "person_tokens",
            &person,
            reason,
            0,
        )
        .await?;
        return Err(ApiError::NotFound(format!(
            "no person `{person}` in VO `{vo}`"
        )));
    }
    let page = list(&state, &vo, Some(&identities), &q).await?;
    page_answer(
        &state,
        &principal,
        &vo,
        "person_tokens",
        &person,
        reason,
        page,
    )
    .await
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
        (status = 503, description = "The sequencer is busy or shutting down; retry",
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
    let reason = authorize_resolution(&principal, &vo, q.reason.as_deref())?;
    if q.client_id.is_none() && q.scope.is_none() {
        return Err(ApiError::BadRequest(
            "search by client_id or scope (or both)".into(),
        ));
    }
    let target = format!(
        "client_id={} scope={}",
        q.client_id.as_deref().unwrap_or("*"),
        q.scope.as_deref().unwrap_or("*")
    );
    let page = list(&state, &vo, None, &q).await?;
    page_answer(&state, &principal, &vo, "search", &target, reason, page).await
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
        (status = 503, description = "The sequencer is busy or shutting down; retry",
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
    let reason = authorize_resolution(&principal, &vo, q.reason.as_deref())?;
    let identities = state.ledger.reader.identities_of(&person, &vo).await?;
    if identities.is_empty() {
        resolution::log(
            &state.ledger,
            &principal.id,
            &vo,
            "timeline",
            &person,
            reason,
            0,
        )
        .await?;
        return Err(ApiError::NotFound(format!(
            "no person `{person}` in VO `{vo}`"
        )));
    }
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!("limit is 1 to {MAX_LIMIT}")));
    }
    let rows = state
        .ledger
        .reader
        .timeline(&vo, &person, &identities, q.before, limit)
        .await?;
    let next_before = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.1))
        .flatten();
    let mut events = Vec::with_capacity(rows.len());
    for (kind, index, leaf) in &rows {
        let entry = served(*index, leaf)?;
        events.push(TimelineEvent {
            kind: kind.clone(),
            index: *index,
            at: entry.entry["logged_at"].as_i64().unwrap_or_default(),
            entry: entry.entry,
        });
    }
    let resolution_index = resolution::log(
        &state.ledger,
        &principal.id,
        &vo,
        "timeline",
        &person,
        reason,
        events.len() as u64,
    )
    .await?;
    Ok(Json(Timeline {
        resolution_index,
        person: PersonView {
            id: person,
            vo,
            identities: identity_views(identities),
        },
        events,
        next_before,
    }))
}

/// Only the VO's own security officers, and only with a reason. The same 403 whether or not
/// the token or person exists.
async fn list(
    state: &AppState,
    vo: &str,
    identities: Option<&[(String, String)]>,
    q: &ListQuery,
) -> Result<(Vec<StoredEntry>, Option<u64>), ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!("limit is 1 to {MAX_LIMIT}")));
    }
    let filter = IssuanceFilter {
        vo,
        identities,
        client_id: q.client_id.as_deref(),
        scope: q.scope.as_deref(),
        from: q.from,
        to: q.to,
        before: q.before,
        limit,
    };
    let rows = state.ledger.reader.issuances(&filter).await?;
    let next_before = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.0))
        .flatten();
    Ok((rows, next_before))
}

async fn page_answer(
    state: &AppState,
    principal: &Principal,
    vo: &str,
    action: &str,
    target: &str,
    reason: &str,
    (rows, next_before): (Vec<StoredEntry>, Option<u64>),
) -> Result<Json<IssuancePage>, ApiError> {
    let issuances = rows
        .iter()
        .map(|(index, leaf)| served(*index, leaf))
        .collect::<Result<Vec<_>, _>>()?;
    let resolution_index = resolution::log(
        &state.ledger,
        &principal.id,
        vo,
        action,
        target,
        reason,
        issuances.len() as u64,
    )
    .await?;
    Ok(Json(IssuancePage {
        resolution_index,
        issuances,
        next_before,
    }))
}

/// Appends the `resolution` entry and waits until it is durable; returns its index.
/// Walks the token chain up from `issuance`, within `vo`.
async fn walk_chain(
    state: &AppState,
    vo: &str,
    index: u64,
    issuance: &Issuance,
) -> Result<tokenledger_core::chain::Chain, ApiError> {
    let mut walk = ChainWalk::new(link(index, issuance));
    while let Some(lookup) = walk.next_lookup() {
        let row = match &lookup {
            ChainLookup::ByJti { iss, jti } => state.ledger.reader.issuance(iss, jti).await?,
            ChainLookup::FirstWithRefresh {
                iss,
                refresh_jti,
                before_index,
            } => {
                state
                    .ledger
                    .reader
                    .first_with_refresh(iss, refresh_jti, *before_index)
                    .await?
            }
        };
        let found = match row {
            Some((index, leaf)) => {
                let parent = decode_issuance(index, &leaf)?;
                (parent.vo == vo).then(|| link(index, &parent))
            }
            None => None,
        };
        walk.feed(found);
    }
    Ok(walk.finish())
}

fn link(index: u64, issuance: &Issuance) -> ChainLink {
    ChainLink {
        index,
        jti: issuance.jti.clone(),
        iss: issuance.iss.clone(),
        sub: issuance.sub.clone(),
        client_id: issuance.client_id.clone(),
        grant_type: issuance.grant_type.clone(),
        parent_jti: issuance.parent_jti.clone(),
        refresh_jti: issuance.refresh_jti.clone(),
    }
}

async fn person_view(
    state: &AppState,
    vo: &str,
    iss: &str,
    sub: &str,
) -> Result<PersonView, ApiError> {
    let (id, identities) = state
        .ledger
        .reader
        .person_with_identities(iss, sub, vo)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("no person for an identity logged in {vo}")))?;
    Ok(PersonView {
        id,
        vo: vo.to_string(),
        identities: identity_views(identities),
    })
}

fn identity_views(identities: Vec<(String, String)>) -> Vec<IdentityView> {
    identities
        .into_iter()
        .map(|(iss, sub)| IdentityView { iss, sub })
        .collect()
}
