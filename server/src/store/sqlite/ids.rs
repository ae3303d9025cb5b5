//! The SQL of the integer ids an `issuances` row holds (see [`crate::store::ids`]), for
//! [`super::log::push_batch`]: the ids the writer's [`IdCache`] lacks are read from their
//! tables, which get the rows they lack first.

use sqlx::{QueryBuilder, Sqlite};

use super::script::{CHUNK, SqlScript};
use crate::keys::new_person_id;
use crate::store::ids::{IdCache, IssuanceKeys, LookupIds, NewIds, Table};
use crate::store::{IssuanceRow, StoreError};

/// The ids of each issuance's issuer, identity and client, in order, with the ids that were
/// not in `cache`: issuers and clients are interned, identities not seen before get a new
/// person (an identity a link of this transaction wrote keeps that link's person). `script`,
/// the transaction's statements so far, is sent first if the database must be asked.
pub(crate) async fn of_issuances(
    tx: &mut sqlx::SqliteConnection,
    script: &mut SqlScript,
    cache: &IdCache,
    issuances: &[IssuanceRow<'_>],
) -> Result<(Vec<LookupIds>, NewIds), StoreError> {
    let keys = IssuanceKeys::of(issuances);
    let mut new = NewIds::default();
    let issuers =
        async |missing: &[([&str; 1], i64)]| read_ids(tx, script, Table::Issuers, missing).await;
    let issuer_ids = keys.issuers.ids(&cache.issuers, &mut new.issuers, issuers);
    let issuer_ids = issuer_ids.await?;
    let clients =
        async |missing: &[([&str; 2], i64)]| read_ids(tx, script, Table::Clients, missing).await;
    let client_ids = keys.clients.ids(&cache.clients, &mut new.clients, clients);
    let client_ids = client_ids.await?;
    let identities =
        async |missing: &[([&str; 3], i64)]| read_ids(tx, script, Table::Identities, missing).await;
    let identity_ids = keys
        .identities
        .ids(&cache.identities, &mut new.identities, identities);
    let identity_ids = identity_ids.await?;
    let ids = keys.lookup_ids(&issuer_ids, &identity_ids, &client_ids);
    Ok((ids, new))
}

/// The ids of `keys` in `table`, after adding the rows it lacks (having sent `script`, the
/// transaction's statements so far).
async fn read_ids<const N: usize>(
    tx: &mut sqlx::SqliteConnection,
    script: &mut SqlScript,
    table: Table,
    keys: &[([&str; N], i64)],
) -> Result<Vec<i64>, StoreError> {
    script.flush(tx).await?;
    insert_missing(tx, table, keys).await?;
    ids_of(tx, table, keys).await
}

/// Adds the rows of `keys` that `table` lacks; a new identity gets a new person, created at
/// the time its key was first seen.
async fn insert_missing<const N: usize>(
    tx: &mut sqlx::SqliteConnection,
    table: Table,
    keys: &[([&str; N], i64)],
) -> Result<(), StoreError> {
    let identities = matches!(table, Table::Identities);
    let mut columns = table.columns().join(", ");
    if identities {
        columns.push_str(", person_id, created_at");
    }
    for chunk in keys.chunks(CHUNK) {
        let persons = if identities {
            chunk
                .iter()
                .map(|_| new_person_id().map(Some))
                .collect::<anyhow::Result<Vec<_>>>()
                .map_err(|e| StoreError::Randomness(e.to_string()))?
        } else {
            vec![None; chunk.len()]
        };
        let mut query = QueryBuilder::<Sqlite>::new(format!(
            "INSERT OR IGNORE INTO {} ({columns}) ",
            table.name()
        ));
        query.push_values(
            chunk.iter().zip(persons),
            |mut row, ((key, seen_at), person)| {
                for value in key {
                    row.push_bind(*value);
                }
                if let Some(person) = person {
                    row.push_bind(person).push_bind(*seen_at);
                }
            },
        );
        query.build().execute(&mut *tx).await?;
    }
    Ok(())
}

/// The id of each of `keys` in `table`, in order; a missing key means the lookup tables
/// lost a row (the error does not name it: keys are personal data).
async fn ids_of<const N: usize>(
    tx: &mut sqlx::SqliteConnection,
    table: Table,
    keys: &[([&str; N], i64)],
) -> Result<Vec<i64>, StoreError> {
    let mut ids = vec![None; keys.len()];
    for (c, chunk) in keys.chunks(CHUNK).enumerate() {
        let mut query = QueryBuilder::<Sqlite>::new("SELECT k.column1, t.id FROM (");
        query.push_values(chunk.iter().enumerate(), |mut row, (n, (key, _))| {
            row.push_bind((c * CHUNK + n) as i64);
            for value in key {
                row.push_bind(*value);
            }
        });
        query.push(format!(") k JOIN {} t ON ", table.name()));
        for (n, column) in table.columns().iter().enumerate() {
            if n > 0 {
                query.push(" AND ");
            }
            query.push(format!("t.{column} = k.column{}", n + 2));
        }
        let rows: Vec<(i64, i64)> = query.build_query_as().fetch_all(&mut *tx).await?;
        for (slot, id) in rows {
            ids[slot as usize] = Some(id);
        }
    }
    ids.into_iter()
        .map(|id| {
            id.ok_or_else(|| StoreError::Corrupt(format!("a key has no {} row", table.name())))
        })
        .collect()
}
