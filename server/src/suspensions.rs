//! Reads of the suspensions table (the sequencer writes it with each suspension and lift).

use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use crate::log_store::StoreError;

/// A suspension row.
#[derive(sqlx::FromRow, Clone, Debug)]
pub struct SuspensionRecord {
    pub id: String,
    pub idx: i64,
    pub site: Option<String>,
    pub vo: String,
    pub person_id: String,
    pub token_iss: Option<String>,
    pub token_jti: Option<String>,
    pub scope: String,
    pub reason_code: String,
    pub created_at: i64,
    pub not_after: Option<i64>,
    pub lifted_at: Option<i64>,
}

impl SuspensionRecord {
    /// Neither lifted nor past `not_after` at `now` (unix seconds).
    pub fn is_active(&self, now: i64) -> bool {
        self.lifted_at.is_none() && self.not_after.is_none_or(|t| now <= t)
    }

    /// `person` or `token`.
    pub fn target(&self) -> &'static str {
        if self.token_jti.is_some() {
            "token"
        } else {
            "person"
        }
    }
}

const COLUMNS: &str = "SELECT id, idx, site, vo, person_id, token_iss, token_jti, scope, reason_code, \
                       created_at, not_after, lifted_at FROM suspensions";

pub async fn get(pool: &SqlitePool, id: &str) -> Result<Option<SuspensionRecord>, StoreError> {
    let mut q = QueryBuilder::<Sqlite>::new(COLUMNS);
    q.push(" WHERE id = ").push_bind(id);
    Ok(q.build_query_as().fetch_optional(pool).await?)
}

/// Suspensions that reach `site`: its own, and VO-wide ones of the VOs it serves; newest first.
pub async fn for_site(
    pool: &SqlitePool,
    site: &str,
    vos: &[String],
) -> Result<Vec<SuspensionRecord>, StoreError> {
    let mut q = QueryBuilder::<Sqlite>::new(COLUMNS);
    q.push(" WHERE site = ").push_bind(site);
    if !vos.is_empty() {
        q.push(" OR (site IS NULL AND vo IN (");
        let mut list = q.separated(",");
        for vo in vos {
            list.push_bind(vo);
        }
        q.push("))");
    }
    q.push(" ORDER BY created_at DESC, id");
    Ok(q.build_query_as().fetch_all(pool).await?)
}

/// Every suspension of a VO's persons, at any site or VO-wide; newest first.
pub async fn for_vo(pool: &SqlitePool, vo: &str) -> Result<Vec<SuspensionRecord>, StoreError> {
    let mut q = QueryBuilder::<Sqlite>::new(COLUMNS);
    q.push(" WHERE vo = ")
        .push_bind(vo)
        .push(" ORDER BY created_at DESC, id");
    Ok(q.build_query_as().fetch_all(pool).await?)
}
