//! Issuances of a set of identities, newest first, read from `issuances_by_identity_epoch`
//! one window of epochs at a time (see [`crate::store::identity_epochs`]).

use std::ops::RangeInclusive;

use sqlx::PgPool;

use super::log_reads;
use crate::store::StoreError;
use crate::store::identity_epochs::{EPOCH_SHIFT, epoch_windows};

/// Identities (and perhaps a client) whose issuances are wanted, as the ids `issuances`
/// stores.
#[derive(Debug)]
pub struct IdentityScan {
    identities: Vec<i64>,
    client: Option<i64>,
}

impl IdentityScan {
    /// The scan for `identities` `(iss, sub)` of `vo`, narrowed to OAuth client `client_id`
    /// if given; `None` if none of the identities, or not the client, is known (nothing can
    /// match).
    pub async fn resolve(
        pool: &PgPool,
        vo: &str,
        identities: &[(String, String)],
        client_id: Option<&str>,
    ) -> Result<Option<IdentityScan>, StoreError> {
        if identities.is_empty() {
            return Ok(None);
        }
        let (issuers, subjects): (Vec<&str>, Vec<&str>) = identities
            .iter()
            .map(|(iss, sub)| (iss.as_str(), sub.as_str()))
            .unzip();
        let ids: Vec<(i64,)> = sqlx::query_as(
            "SELECT d.id FROM UNNEST($1::text[], $2::text[]) AS k (iss, sub)
             JOIN identities d ON d.iss = k.iss AND d.sub = k.sub AND d.vo = $3",
        )
        .bind(&issuers)
        .bind(&subjects)
        .bind(vo)
        .fetch_all(pool)
        .await?;
        if ids.is_empty() {
            return Ok(None);
        }
        let client = match client_id {
            None => None,
            Some(client_id) => {
                let id: Option<(i64,)> =
                    sqlx::query_as("SELECT id FROM clients WHERE vo = $1 AND client_id = $2")
                        .bind(vo)
                        .bind(client_id)
                        .fetch_optional(pool)
                        .await?;
                match id {
                    Some((id,)) => Some(id),
                    None => return Ok(None),
                }
            }
        };
        Ok(Some(IdentityScan {
            identities: ids.into_iter().map(|(id,)| id).collect(),
            client,
        }))
    }

    /// The identity ids, for `= ANY(...)`.
    pub fn identities(&self) -> &[i64] {
        &self.identities
    }

    /// Log indexes of up to `limit` matching issuances below index `top` (at most the log's
    /// size: see [`log_top`]), newest first.
    pub async fn newest(
        &self,
        pool: &PgPool,
        top: u64,
        limit: u32,
    ) -> Result<Vec<u64>, StoreError> {
        let mut found = Vec::new();
        for window in epoch_windows(top) {
            if found.len() >= limit as usize {
                break;
            }
            let wanted = i64::from(limit) - found.len() as i64;
            found.extend(self.in_window(pool, window, top, wanted).await?);
        }
        Ok(found)
    }

    /// Up to `limit` matching issuances in the epochs of `window`, below index `top`, newest
    /// first: the epoch expression is the index's, so each (epoch, identity) pair is a seek.
    async fn in_window(
        &self,
        pool: &PgPool,
        window: RangeInclusive<u64>,
        top: u64,
        limit: i64,
    ) -> Result<Vec<u64>, StoreError> {
        let rows: Vec<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(window_query()))
            .bind(*window.start() as i64)
            .bind(*window.end() as i64)
            .bind(&self.identities)
            .bind(self.client)
            .bind(top as i64)
            .bind(limit)
            .fetch_all(pool)
            .await?;
        Ok(rows.into_iter().map(|(index,)| index as u64).collect())
    }
}

/// The issuances of identities `$3` (of client `$4` if not null) in epochs `$1` to `$2`,
/// below index `$5`, newest first, at most `$6`.
pub(super) fn window_query() -> String {
    format!(
        "SELECT i.idx FROM issuances i
         WHERE (i.idx >> {EPOCH_SHIFT}) = ANY(ARRAY(SELECT generate_series($1::bigint, $2::bigint)))
           AND i.identity = ANY($3) AND ($4::bigint IS NULL OR i.client = $4) AND i.idx < $5
         ORDER BY i.idx DESC LIMIT $6"
    )
}

/// `before`, or the log's size if that is smaller (also when `before` is `None`): the
/// windows of a scan then start at the log's newest epoch, whatever a caller asks for.
pub async fn log_top(pool: &PgPool, before: Option<u64>) -> Result<u64, StoreError> {
    let size = log_reads::log_size(pool).await?;
    Ok(before.map_or(size, |before| before.min(size)))
}
