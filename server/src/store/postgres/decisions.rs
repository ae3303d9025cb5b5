//! The SQL of the writer's decision step on PostgreSQL: the rows a batch's state changes name,
//! each asked with its keys as arrays (one statement per kind of row, none for a kind not
//! asked for).

use std::collections::BTreeSet;

use sqlx::PgConnection;

use crate::store::{StateQuery, StateRows, StoreError, StoredState};

/// The stored rows `query` names.
pub async fn state_rows(
    conn: &mut PgConnection,
    query: &StateQuery,
) -> Result<StateRows, StoreError> {
    let named = query.persons_named();
    let person_ids: BTreeSet<&str> = named.iter().map(|[_, id]| *id).collect();
    let identities = query.identities_named();
    let suspensions: BTreeSet<&str> = query.suspensions.iter().map(String::as_str).collect();
    let requests: BTreeSet<&str> = query.requests.iter().map(String::as_str).collect();

    let select = "SELECT id, lifted_at IS NOT NULL FROM suspensions WHERE id = ANY($1)";
    let lifted = fetch_by_keys(conn, select, column(&suspensions, |id| *id)).await?;
    let select = "SELECT DISTINCT vo, person_id FROM identities WHERE person_id = ANY($1)";
    let live: Vec<(String, String)> =
        fetch_by_keys(conn, select, column(&person_ids, |id| *id)).await?;
    let select = "SELECT m.vo, m.person_id, m.into_person FROM person_merges m \
                  JOIN UNNEST($1::text[], $2::text[]) AS k(vo, person_id) \
                  ON m.vo = k.vo AND m.person_id = k.person_id";
    let merged: Vec<(String, String, String)> = fetch_by_keys(
        conn,
        select,
        [column(&named, |k| k[0]), column(&named, |k| k[1])],
    )
    .await?;
    let select = "SELECT i.iss, i.sub, i.vo, i.person_id FROM identities i \
                  JOIN UNNEST($1::text[], $2::text[], $3::text[]) AS k(iss, sub, vo) \
                  ON i.iss = k.iss AND i.sub = k.sub AND i.vo = k.vo";
    let owners: Vec<(String, String, String, String)> = fetch_by_keys(
        conn,
        select,
        [
            column(&identities, |k| k[0]),
            column(&identities, |k| k[1]),
            column(&identities, |k| k[2]),
        ],
    )
    .await?;
    let select = "SELECT id, status = 'pending' FROM suspension_requests WHERE id = ANY($1)";
    let pending = fetch_by_keys(conn, select, column(&requests, |id| *id)).await?;
    let stored = StoredState {
        lifted,
        live,
        merged,
        owners,
        pending,
    };
    Ok(stored.rows(&named))
}

/// One column of `keys`, as the array bound to one parameter.
fn column<'a, K>(keys: &BTreeSet<K>, value: impl Fn(&K) -> &'a str) -> Vec<&'a str> {
    keys.iter().map(value).collect()
}

/// The rows of `select`, whose parameters are the columns of the keys (one array each); none
/// without keys.
async fn fetch_by_keys<'a, R>(
    conn: &mut PgConnection,
    select: &'static str,
    columns: impl Into<KeyColumns<'a>>,
) -> Result<Vec<R>, StoreError>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let KeyColumns(columns) = columns.into();
    if columns.first().is_none_or(Vec::is_empty) {
        return Ok(Vec::new());
    }
    let mut query = sqlx::query_as::<_, R>(select);
    for column in columns {
        query = query.bind(column);
    }
    Ok(query.fetch_all(conn).await?)
}

/// The key columns of a [`fetch_by_keys`].
struct KeyColumns<'a>(Vec<Vec<&'a str>>);

impl<'a> From<Vec<&'a str>> for KeyColumns<'a> {
    fn from(column: Vec<&'a str>) -> KeyColumns<'a> {
        KeyColumns(vec![column])
    }
}

impl<'a, const N: usize> From<[Vec<&'a str>; N]> for KeyColumns<'a> {
    fn from(columns: [Vec<&'a str>; N]) -> KeyColumns<'a> {
        KeyColumns(columns.into())
    }
}
