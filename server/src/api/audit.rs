//! `GET /v1/vos/{vo}/resolutions`: who resolved or erased what, when and why, in a VO (its
//! security officers, auditors of the VO or of the whole ledger, admins).

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use tokenledger_core::ids::Vo;
use tokenledger_core::wire::{ErrorBody, ResolutionPage};
use utoipa::IntoParams;

use super::AppState;
use super::error::ApiError;
use super::extract::ApiQuery;
use crate::credentials::Principal;
use crate::service::entries::served;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Paging: only entries with a smaller index (from `next_before`).
    #[serde(default, deserialize_with = "super::extract::optional_index")]
    before: Option<u64>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// `GET /v1/vos/{vo}/resolutions[?before=&limit=]`: newest first.
#[utoipa::path(
    get,
    path = "/v1/vos/{vo}/resolutions",
    tag = "audit",
    operation_id = "vo_resolutions",
    summary = "Who resolved what in a VO",
    description = "The VO's `resolution` entries (requester, action, target, reason, how much \
        was revealed) and its `erasure` entries (requester, person, reason, what was redacted), \
        newest first. Roles: `admin`, `vo-security` of `{vo}`, `auditor` \
        ledger-wide or of `{vo}`.",
    params(("vo" = String, Path, description = "The VO"), AuditQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of resolution entries", body = ResolutionPage),
        (status = 400, description = "A bad `limit` or `before`", body = ErrorBody),
        (status = 403, description = "Neither admin, nor an officer or auditor of this VO, nor a \
            ledger-wide auditor", body = ErrorBody),
    ),
    extensions((
        "x-roles" = json!(["admin", "vo-security (of {vo})", "auditor (ledger-wide or of {vo})"])
    )),
)]
pub async fn resolutions(
    State(state): State<AppState>,
    principal: Principal,
    Path(vo): Path<String>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<ResolutionPage>, ApiError> {
    if !principal.binding.may_audit(&vo) {
        return Err(ApiError::Forbidden(format!(
            "the resolutions of VO `{vo}` are for its security officers and auditors"
        )));
    }
    let vo = Vo::unchecked(vo);
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!("limit is 1 to {MAX_LIMIT}")));
    }
    let rows = state
        .ledger
        .reader
        .resolutions(&vo, q.before, limit)
        .await?;
    let next_before = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.0))
        .flatten();
    let resolutions = rows
        .iter()
        .map(|(index, leaf)| served(*index, leaf))
        .collect::<Result<_, _>>()?;
    Ok(Json(ResolutionPage {
        resolutions,
        next_before,
    }))
}
