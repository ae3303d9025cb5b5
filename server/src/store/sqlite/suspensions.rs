//! Reads of the suspensions table (the writer writes it with each suspension and lift).

use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use tokenledger_core::ids::{Jti, PersonId, Site, Vo};

use crate::store::{StoreError, SuspensionRecord};

const COLUMNS: &str = "SELECT id, idx, site, vo, person_id, token_iss, token_jti, client_iss, \
                       client_id, scope, reason_code, created_by, created_at, not_after, \
                       issued_before, lifted_at FROM suspensions";

/// A row of [`COLUMNS`].
#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    idx: i64,
    site: Option<String>,
    vo: String,
    person_id: Option<String>,
    token_iss: Option<String>,
    token_jti: Option<String>,
    client_iss: Option<String>,
    client_id: Option<String>,
    scope: String,
    reason_code: String,
    created_by: String,
    created_at: i64,
    not_after: Option<i64>,
    issued_before: Option<i64>,
    lifted_at: Option<i64>,
}

impl TryFrom<Row> for SuspensionRecord {
    type Error = StoreError;

    fn try_from(r: Row) -> Result<SuspensionRecord, StoreError> {
        let scope = r
            .scope
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("unknown suspension scope `{}`", r.scope)))?;
        Ok(SuspensionRecord {
            id: r.id,
            idx: r.idx as u64,
            site: r.site.map(Site::unchecked),
            vo: Vo::unchecked(r.vo),
            person_id: r.person_id.map(PersonId::unchecked),
            token_iss: r.token_iss,
            token_jti: r.token_jti.map(Jti::unchecked),
            client_iss: r.client_iss,
            client_id: r.client_id,
            scope,
            reason_code: r.reason_code,
            created_by: r.created_by,
            created_at: r.created_at,
            not_after: r.not_after,
            issued_before: r.issued_before,
            lifted_at: r.lifted_at,
        })
    }
}

/// The rows `q` selects.
async fn fetch_all(
    pool: &SqlitePool,
    mut q: QueryBuilder<Sqlite>,
) -> Result<Vec<SuspensionRecord>, StoreError> {
    let rows: Vec<Row> = q.build_query_as().fetch_all(pool).await?;
    rows.into_iter().map(SuspensionRecord::try_from).collect()
}

/// The suspension `id`.
pub async fn get(pool: &SqlitePool, id: &str) -> Result<Option<SuspensionRecord>, StoreError> {
    let mut q = QueryBuilder::<Sqlite>::new(COLUMNS);
    q.push(" WHERE id = ").push_bind(id);
    let row: Option<Row> = q.build_query_as().fetch_optional(pool).await?;
    row.map(SuspensionRecord::try_from).transpose()
}

/// Suspensions that reach `site`: its own, and VO-wide ones of the VOs it serves; newest first.
pub async fn for_site(
    pool: &SqlitePool,
    site: &str,
    vos: &[Vo],
) -> Result<Vec<SuspensionRecord>, StoreError> {
    let mut q = QueryBuilder::<Sqlite>::new(COLUMNS);
    q.push(" WHERE site = ").push_bind(site);
    if !vos.is_empty() {
        q.push(" OR (site IS NULL AND vo IN (");
        let mut list = q.separated(",");
        for vo in vos {
            list.push_bind(vo.as_str());
        }
        q.push("))");
    }
    q.push(" ORDER BY created_at DESC, id");
    fetch_all(pool, q).await
}

/// Every suspension of a VO's persons and clients, at any site or VO-wide; newest first.
pub async fn for_vo(pool: &SqlitePool, vo: &str) -> Result<Vec<SuspensionRecord>, StoreError> {
    let mut q = QueryBuilder::<Sqlite>::new(COLUMNS);
    q.push(" WHERE vo = ")
        .push_bind(vo)
        .push(" ORDER BY created_at DESC, id");
    fetch_all(pool, q).await
}
