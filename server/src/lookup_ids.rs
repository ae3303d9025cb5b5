//! The integer ids an `issuances` row holds in place of text, for `log_store::insert_batch`:
//! issuers and clients are interned, identities found by `(iss, sub, vo)`.

use std::collections::HashMap;

use sqlx::{QueryBuilder, Sqlite};

use crate::log_store::{CHUNK, IssuanceRow, StoreError};

/// The ids an `issuances` row holds in place of its issuer, identity and client.
pub(crate) struct LookupIds {
    pub issuer: i64,
    pub identity: i64,
    pub client: Option<i64>,
}

/// The ids of each issuance's issuer, identity and client, in order: issuers and clients
/// are interned here, identities must already exist ([`crate::log_store::insert_identities`]).
pub(crate) async fn of_issuances(
    tx: &mut sqlx::SqliteConnection,
    issuances: &[IssuanceRow<'_>],
) -> Result<Vec<LookupIds>, StoreError> {
    let mut issuers = Distinct::default();
    let mut identities = Distinct::default();
    let mut clients = Distinct::default();
    let slots: Vec<(usize, usize, Option<usize>)> = issuances
        .iter()
        .map(|i| {
            let k = i.key;
            (
                issuers.slot([k.iss.as_str()]),
                identities.slot([k.iss.as_str(), k.sub.as_str(), k.vo.as_str()]),
                k.client_id
                    .as_deref()
                    .map(|client_id| clients.slot([k.vo.as_str(), client_id])),
            )
        })
        .collect();
    let issuer_ids = intern(tx, "issuers", ["iss"], &issuers.keys).await?;
    let client_ids = intern(tx, "clients", ["vo", "client_id"], &clients.keys).await?;
    let identity_ids = ids_of(tx, "identities", ["iss", "sub", "vo"], &identities.keys).await?;
    Ok(slots
        .into_iter()
        .map(|(issuer, identity, client)| LookupIds {
            issuer: issuer_ids[issuer],
            identity: identity_ids[identity],
            client: client.map(|c| client_ids[c]),
        })
        .collect())
}

/// Distinct keys in order of first appearance, each with its position.
#[derive(Default)]
struct Distinct<'a, const N: usize> {
    keys: Vec<[&'a str; N]>,
    slots: HashMap<[&'a str; N], usize>,
}

impl<'a, const N: usize> Distinct<'a, N> {
    /// The position of `key`, added if new.
    fn slot(&mut self, key: [&'a str; N]) -> usize {
        *self.slots.entry(key).or_insert_with(|| {
            self.keys.push(key);
            self.keys.len() - 1
        })
    }
}

/// Adds the `keys` missing from `table` (an `id INTEGER PRIMARY KEY` table, unique on
/// `columns`) and returns the id of each key, in order.
async fn intern<const N: usize>(
    tx: &mut sqlx::SqliteConnection,
    table: &str,
    columns: [&str; N],
    keys: &[[&str; N]],
) -> Result<Vec<i64>, StoreError> {
    for chunk in keys.chunks(CHUNK) {
        let mut query = QueryBuilder::<Sqlite>::new(format!(
            "INSERT OR IGNORE INTO {table} ({}) ",
            columns.join(", ")
        ));
        query.push_values(chunk, |mut row, key| {
            for value in key {
                row.push_bind(*value);
            }
        });
        query.build().execute(&mut *tx).await?;
    }
    ids_of(tx, table, columns, keys).await
}

/// The id of each of `keys` in `table` (unique on `columns`), in order; a missing key means
/// the lookup tables lost a row (the error does not name it: keys are personal data).
async fn ids_of<const N: usize>(
    tx: &mut sqlx::SqliteConnection,
    table: &str,
    columns: [&str; N],
    keys: &[[&str; N]],
) -> Result<Vec<i64>, StoreError> {
    let mut ids = vec![None; keys.len()];
    for (c, chunk) in keys.chunks(CHUNK).enumerate() {
        let mut query = QueryBuilder::<Sqlite>::new("SELECT k.column1, t.id FROM (");
        query.push_values(chunk.iter().enumerate(), |mut row, (n, key)| {
            row.push_bind((c * CHUNK + n) as i64);
            for value in key {
                row.push_bind(*value);
            }
        });
        query.push(format!(") k JOIN {table} t ON "));
        for (n, column) in columns.iter().enumerate() {
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
        .map(|id| id.ok_or_else(|| StoreError::Corrupt(format!("a key has no {table} row"))))
        .collect()
}
