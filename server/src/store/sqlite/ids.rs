//! The integer ids an `issuances` row holds in place of text, for [`super::log::push_batch`]:
//! issuers and clients are interned, identities are created (each with a new person) on
//! first sight. The writer's [`IdCache`] keeps the ids of committed rows, so a batch of known
//! issuers, clients and identities runs no query for them.

use std::collections::HashMap;

use sqlx::{QueryBuilder, Sqlite};

use super::script::{CHUNK, SqlScript};
use crate::keys::new_person_id;
use crate::store::{IssuanceRow, StoreError};

/// Ids kept per table; a full table of the cache is emptied and fills again from queries.
const CACHED_IDS: usize = 1 << 18;

/// The ids an `issuances` row holds in place of its issuer, identity and client.
pub(crate) struct LookupIds {
    pub issuer: i64,
    pub identity: i64,
    pub client: Option<i64>,
}

/// Ids of `issuers`, `clients` and `identities` rows that are committed. An id never changes
/// once given (these rows are never deleted; a merge updates identities in place), so a
/// cached id stays right for as long as the database is written by its one writer.
#[derive(Default)]
pub struct IdCache {
    issuers: KnownIds,
    clients: KnownIds,
    identities: KnownIds,
}

/// Ids a transaction found or created; [`IdCache::remember`] them once it has committed.
#[derive(Default)]
pub struct NewIds {
    issuers: Vec<(String, i64)>,
    clients: Vec<(String, i64)>,
    identities: Vec<(String, i64)>,
}

impl IdCache {
    /// Takes in the ids of a committed transaction.
    pub fn remember(&mut self, ids: NewIds) {
        self.issuers.extend(ids.issuers);
        self.clients.extend(ids.clients);
        self.identities.extend(ids.identities);
    }
}

/// One table's ids by key (its key columns joined by [`cache_key`]).
#[derive(Default)]
struct KnownIds(HashMap<String, i64>);

impl KnownIds {
    fn extend(&mut self, ids: Vec<(String, i64)>) {
        if self.0.len() + ids.len() > CACHED_IDS {
            self.0.clear();
        }
        self.0.extend(ids);
    }
}

/// One string per key, unambiguous whatever the columns hold: each column's length, then it.
fn cache_key<const N: usize>(key: &[&str; N]) -> String {
    let mut out = String::with_capacity(key.iter().map(|c| c.len() + 4).sum());
    for column in key {
        out.push_str(&column.len().to_string());
        out.push(':');
        out.push_str(column);
    }
    out
}

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
    let mut issuers = Distinct::default();
    let mut identities = Distinct::default();
    let mut clients = Distinct::default();
    let slots: Vec<(usize, usize, Option<usize>)> = issuances
        .iter()
        .map(|i| {
            let k = i.key;
            (
                issuers.slot([k.iss.as_str()], i.logged_at),
                identities.slot([k.iss.as_str(), k.sub.as_str(), k.vo.as_str()], i.logged_at),
                k.client_id
                    .as_deref()
                    .map(|client_id| clients.slot([k.vo.as_str(), client_id], i.logged_at)),
            )
        })
        .collect();
    let mut new = NewIds::default();
    let issuer_ids = issuers
        .ids(tx, script, &cache.issuers, &mut new.issuers, Table::Issuers)
        .await?;
    let client_ids = clients
        .ids(tx, script, &cache.clients, &mut new.clients, Table::Clients)
        .await?;
    let identity_ids = identities
        .ids(
            tx,
            script,
            &cache.identities,
            &mut new.identities,
            Table::Identities,
        )
        .await?;
    let ids = slots
        .into_iter()
        .map(|(issuer, identity, client)| LookupIds {
            issuer: issuer_ids[issuer],
            identity: identity_ids[identity],
            client: client.map(|c| client_ids[c]),
        })
        .collect();
    Ok((ids, new))
}

/// The tables whose ids an issuance row holds.
#[derive(Clone, Copy)]
enum Table {
    Issuers,
    Clients,
    Identities,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Issuers => "issuers",
            Table::Clients => "clients",
            Table::Identities => "identities",
        }
    }

    fn columns(self) -> &'static [&'static str] {
        match self {
            Table::Issuers => &["iss"],
            Table::Clients => &["vo", "client_id"],
            Table::Identities => &["iss", "sub", "vo"],
        }
    }
}

/// Distinct keys in order of first appearance, each with its position and the time it was
/// first seen.
#[derive(Default)]
struct Distinct<'a, const N: usize> {
    keys: Vec<([&'a str; N], i64)>,
    slots: HashMap<[&'a str; N], usize>,
}

impl<'a, const N: usize> Distinct<'a, N> {
    /// The position of `key`, added if new.
    fn slot(&mut self, key: [&'a str; N], seen_at: i64) -> usize {
        *self.slots.entry(key).or_insert_with(|| {
            self.keys.push((key, seen_at));
            self.keys.len() - 1
        })
    }

    /// The id of every key, in order: from `known`, else from `table` (adding the missing
    /// rows, after sending `script`), and then also pushed to `new`.
    async fn ids(
        &self,
        tx: &mut sqlx::SqliteConnection,
        script: &mut SqlScript,
        known: &KnownIds,
        new: &mut Vec<(String, i64)>,
        table: Table,
    ) -> Result<Vec<i64>, StoreError> {
        let mut ids = Vec::with_capacity(self.keys.len());
        let mut missing = Vec::new();
        for (position, (key, seen_at)) in self.keys.iter().enumerate() {
            let cached = cache_key(key);
            match known.0.get(&cached) {
                Some(id) => ids.push(*id),
                None => {
                    ids.push(0); // set below, from the table
                    missing.push((position, cached, *key, *seen_at));
                }
            }
        }
        if missing.is_empty() {
            return Ok(ids);
        }
        script.flush(tx).await?;
        let keys: Vec<([&str; N], i64)> = missing.iter().map(|m| (m.2, m.3)).collect();
        insert_missing(tx, table, &keys).await?;
        let found = ids_of(tx, table, &keys).await?;
        for ((position, cached, _, _), id) in missing.into_iter().zip(found) {
            ids[position] = id;
            new.push((cached, id));
        }
        Ok(ids)
    }
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
