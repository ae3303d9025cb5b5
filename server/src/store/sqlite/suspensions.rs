//! Reads of the suspensions table (the writer writes it with each suspension and lift).

use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use tokenledger_core::ids::Vo;

use crate::store::records::{SUSPENSION_COLUMNS, SuspensionRow};
use crate::store::{StoreError, SuspensionRecord};

/// The rows `q` selects.
async fn fetch_all(
    pool: &SqlitePool,
    mut q: QueryBuilder<Sqlite>,
) -> Result<Vec<SuspensionRecord>, StoreError> {
    let rows: Vec<SuspensionRow> = q.build_query_as().fetch_all(pool).await?;
    rows.into_iter().map(SuspensionRecord::try_from).collect()
}

/// The suspension `id`.
pub async fn get(pool: &SqlitePool, id: &str) -> Result<Option<SuspensionRecord>, StoreError> {
    let mut q = QueryBuilder::<Sqlite>::new(SUSPENSION_COLUMNS);
    q.push(" WHERE id = ").push_bind(id);
    let row: Option<SuspensionRow> = q.build_query_as().fetch_optional(pool).await?;
    row.map(SuspensionRecord::try_from).transpose()
}

/// Suspensions that reach `site`: its own, and VO-wide ones of the VOs it serves; newest first.
pub async fn for_site(
    pool: &SqlitePool,
    site: &str,
    vos: &[Vo],
) -> Result<Vec<SuspensionRecord>, StoreError> {
    let mut q = QueryBuilder::<Sqlite>::new(SUSPENSION_COLUMNS);
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
    let mut q = QueryBuilder::<Sqlite>::new(SUSPENSION_COLUMNS);
    q.push(" WHERE vo = ")
        .push_bind(vo)
        .push(" ORDER BY created_at DESC, id");
    fetch_all(pool, q).await
}
