//! `GET /v1/vos/{vo}/resolutions`: who resolved what, when and why, in a VO (its security
//! officers, auditors of the VO or of the whole ledger, admins).

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use tokenledger_core::wire::ResolutionPage;

use super::AppState;
use super::error::ApiError;
use super::extract::ApiQuery;
use super::log::served;
use crate::credentials::Principal;
use crate::lookup;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

#[derive(Deserialize)]
pub struct AuditQuery {
    before: Option<u64>,
    limit: Option<u32>,
}

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
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!("limit is 1 to {MAX_LIMIT}")));
    }
    let rows = lookup::resolutions(&state.pool, &vo, q.before, limit).await?;
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
