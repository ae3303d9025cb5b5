//! The SQL of the writer's decision step: the rows a batch's state changes name, each asked
//! by an index of the columns it is named by.

use std::collections::BTreeSet;

use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::script::CHUNK;
use crate::store::{StateQuery, StateRows, StoreError, StoredState};

/// The stored rows `query` names.
pub async fn state_rows(
    conn: &mut SqliteConnection,
    query: &StateQuery,
) -> Result<StateRows, StoreError> {
    let named = query.persons_named();
    let persons: Vec<[&str; 2]> = named.iter().copied().collect();
    let person_ids: BTreeSet<[&str; 1]> = named.iter().map(|[_, id]| [*id]).collect();
    let person_ids: Vec<[&str; 1]> = person_ids.into_iter().collect();
    let identities = query.identities_named();
    let identities: Vec<[&str; 3]> = identities.into_iter().collect();
    let suspensions: BTreeSet<[&str; 1]> =
        query.suspensions.iter().map(|id| [id.as_str()]).collect();
    let suspensions: Vec<[&str; 1]> = suspensions.into_iter().collect();
    let requests: BTreeSet<[&str; 1]> = query.requests.iter().map(|id| [id.as_str()]).collect();
    let requests: Vec<[&str; 1]> = requests.into_iter().collect();

    let select = "SELECT id, lifted_at IS NOT NULL FROM suspensions WHERE ";
    let lifted = fetch_by_keys(conn, select, ["id"], &suspensions).await?;
    let select = "SELECT DISTINCT vo, person_id FROM identities WHERE ";
    let live: Vec<(String, String)> =
        fetch_by_keys(conn, select, ["person_id"], &person_ids).await?;
    let select = "SELECT vo, person_id, into_person FROM person_merges WHERE ";
    let merged: Vec<(String, String, String)> =
        fetch_by_keys(conn, select, ["vo", "person_id"], &persons).await?;
    let select = "SELECT iss, sub, vo, person_id FROM identities WHERE ";
    let owners: Vec<(String, String, String, String)> =
        fetch_by_keys(conn, select, ["iss", "sub", "vo"], &identities).await?;
    let select = "SELECT id, status = 'pending' FROM suspension_requests WHERE ";
    let pending = fetch_by_keys(conn, select, ["id"], &requests).await?;
    let stored = StoredState {
        lifted,
        live,
        merged,
        owners,
        pending,
    };
    Ok(stored.rows(&named))
}

/// The rows of `select` (which ends in `WHERE `) whose `columns` hold one of `keys`, asked
/// [`CHUNK`] keys at a time.
async fn fetch_by_keys<const N: usize, R>(
    conn: &mut SqliteConnection,
    select: &str,
    columns: [&str; N],
    keys: &[[&str; N]],
) -> Result<Vec<R>, StoreError>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin,
{
    let mut found = Vec::new();
    for chunk in keys.chunks(CHUNK) {
        let mut query = QueryBuilder::<Sqlite>::new(select);
        push_keys(&mut query, columns, chunk);
        found.extend(query.build_query_as::<R>().fetch_all(&mut *conn).await?);
    }
    Ok(found)
}

/// Appends `(c1 = ? AND c2 = ?) OR (...)`, one group per key, binding its values: SQLite
/// finds each key through an index of `columns` (a row-value `IN` would scan the table).
fn push_keys<const N: usize>(
    query: &mut QueryBuilder<Sqlite>,
    columns: [&str; N],
    keys: &[[&str; N]],
) {
    for (k, key) in keys.iter().enumerate() {
        query.push(if k == 0 { "(" } else { " OR (" });
        for (c, (column, value)) in columns.iter().zip(key).enumerate() {
            if c > 0 {
                query.push(" AND ");
            }
            query.push(format_args!("{column} = ")).push_bind(*value);
        }
        query.push(")");
    }
}
