//! The SQL of the integer ids an `issuances` row holds (see [`crate::store::ids`]) on
//! PostgreSQL: the ids the writer's [`IdCache`] lacks are read back from their tables after
//! `INSERT ... ON CONFLICT (key columns) DO NOTHING` of the keys, two statements per table
//! that lacks any.

use sqlx::PgConnection;

use crate::keys::new_person_id;
use crate::store::ids::{IdCache, IssuanceKeys, LookupIds, NewIds, Table};
use crate::store::{IssuanceRow, StoreError};

/// The ids of each issuance's issuer, identity and client, in order, with the ids that were
/// not in `cache`: issuers and clients are interned, identities not seen before get a new
/// person (an identity a link of this transaction wrote keeps that link's person).
pub(crate) async fn of_issuances(
    conn: &mut PgConnection,
    cache: &IdCache,
    issuances: &[IssuanceRow<'_>],
) -> Result<(Vec<LookupIds>, NewIds), StoreError> {
    let keys = IssuanceKeys::of(issuances);
    let mut new = NewIds::default();
    let issuers =
        async |missing: &[([&str; 1], i64)]| read_ids(conn, Table::Issuers, missing).await;
    let issuer_ids = keys.issuers.ids(&cache.issuers, &mut new.issuers, issuers);
    let issuer_ids = issuer_ids.await?;
    let clients =
        async |missing: &[([&str; 2], i64)]| read_ids(conn, Table::Clients, missing).await;
    let client_ids = keys.clients.ids(&cache.clients, &mut new.clients, clients);
    let client_ids = client_ids.await?;
    let identities =
        async |missing: &[([&str; 3], i64)]| read_ids(conn, Table::Identities, missing).await;
    let identity_ids = keys
        .identities
        .ids(&cache.identities, &mut new.identities, identities);
    let identity_ids = identity_ids.await?;
    Ok((
        keys.lookup_ids(&issuer_ids, &identity_ids, &client_ids),
        new,
    ))
}

/// The ids of `keys` in `table` (each with the time it was first seen), after adding the
/// rows it lacks.
async fn read_ids<const N: usize>(
    conn: &mut PgConnection,
    table: Table,
    keys: &[([&str; N], i64)],
) -> Result<Vec<i64>, StoreError> {
    let columns: Vec<Vec<&str>> = (0..N)
        .map(|c| keys.iter().map(|(key, _)| key[c]).collect())
        .collect();
    let seen_at: Vec<i64> = keys.iter().map(|(_, at)| *at).collect();
    insert_missing(conn, table, &columns, &seen_at).await?;
    ids_of(conn, table, &columns).await
}

/// `$1::text[], $2::text[], ...`: one array parameter per key column.
fn text_arrays(columns: usize) -> String {
    (1..=columns)
        .map(|n| format!("${n}::text[]"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Adds the rows of the keys (`columns[c][k]`: column `c` of key `k`) that `table` lacks; a
/// new identity gets a new person, created at `seen_at[k]`, the time its key was first seen.
async fn insert_missing(
    conn: &mut PgConnection,
    table: Table,
    columns: &[Vec<&str>],
    seen_at: &[i64],
) -> Result<(), StoreError> {
    let identities = matches!(table, Table::Identities);
    let mut names = table.columns().join(", ");
    let mut arrays = text_arrays(columns.len());
    if identities {
        names.push_str(", person_id, created_at");
        let n = columns.len();
        arrays.push_str(&format!(", ${}::text[], ${}::bigint[]", n + 1, n + 2));
    }
    let sql = format!(
        "INSERT INTO {} ({names}) SELECT * FROM UNNEST({arrays}) ON CONFLICT ({}) DO NOTHING",
        table.name(),
        table.columns().join(", ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for column in columns {
        query = query.bind(column.clone());
    }
    if identities {
        let persons = seen_at
            .iter()
            .map(|_| new_person_id())
            .collect::<anyhow::Result<Vec<String>>>()
            .map_err(|e| StoreError::Randomness(e.to_string()))?;
        query = query.bind(persons).bind(seen_at.to_vec());
    }
    query.execute(conn).await?;
    Ok(())
}

/// The id of each key in `table`, in order; a missing key means the lookup tables lost a row
/// (the error does not name it: keys are personal data).
async fn ids_of(
    conn: &mut PgConnection,
    table: Table,
    columns: &[Vec<&str>],
) -> Result<Vec<i64>, StoreError> {
    let names = table.columns();
    let key_columns: Vec<String> = (1..=names.len()).map(|n| format!("k{n}")).collect();
    let join = names
        .iter()
        .zip(&key_columns)
        .map(|(name, key)| format!("t.{name} = k.{key}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let sql = format!(
        "SELECT k.n, t.id FROM UNNEST({}) WITH ORDINALITY AS k({}, n) JOIN {} t ON {join}",
        text_arrays(columns.len()),
        key_columns.join(", "),
        table.name()
    );
    let mut query = sqlx::query_as::<_, (i64, i64)>(sqlx::AssertSqlSafe(sql));
    for column in columns {
        query = query.bind(column.clone());
    }
    let rows = query.fetch_all(conn).await?;
    let mut ids = vec![None; columns.first().map_or(0, Vec::len)];
    for (n, id) in rows {
        ids[(n - 1) as usize] = Some(id);
    }
    ids.into_iter()
        .map(|id| {
            id.ok_or_else(|| StoreError::Corrupt(format!("a key has no {} row", table.name())))
        })
        .collect()
}
