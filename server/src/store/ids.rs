//! The integer ids an `issuances` row holds in place of text, whatever the engine: issuers and
//! clients are interned, identities are created (each with a new person) on first sight. The
//! writer's [`IdCache`] keeps the ids of committed rows, so a batch of known issuers, clients
//! and identities runs no query for them; each engine asks its tables for the others.

use std::collections::HashMap;

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
/// once given (a merge updates identities in place), so a cached id stays right for as long
/// as the database is written by its one writer and its row is kept. Issuers and clients
/// are never deleted; an identity is when a redaction leaves nothing that needs it, so a
/// writer forgets the identities it knows before it writes a batch that redacts
/// ([`IdCache::forget_identities`]).
#[derive(Default)]
pub struct IdCache {
    pub(crate) issuers: KnownIds,
    pub(crate) clients: KnownIds,
    pub(crate) identities: KnownIds,
}

/// Ids a transaction found or created; [`IdCache::remember`] them once it has committed.
#[derive(Default)]
pub struct NewIds {
    pub(crate) issuers: Vec<(String, i64)>,
    pub(crate) clients: Vec<(String, i64)>,
    pub(crate) identities: Vec<(String, i64)>,
}

impl IdCache {
    /// Forgets every identity id: a batch that redacts may delete identity rows (and a new
    /// row of the same key gets a new id).
    pub fn forget_identities(&mut self) {
        self.identities.0.clear();
    }

    /// Takes in the ids of a committed transaction.
    pub fn remember(&mut self, ids: NewIds) {
        self.issuers.extend(ids.issuers);
        self.clients.extend(ids.clients);
        self.identities.extend(ids.identities);
    }
}

/// One table's ids by key (its key columns joined by [`cache_key`]).
#[derive(Default)]
pub(crate) struct KnownIds(HashMap<String, i64>);

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

/// The tables whose ids an issuance row holds.
#[derive(Clone, Copy)]
pub(crate) enum Table {
    Issuers,
    Clients,
    Identities,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Table::Issuers => "issuers",
            Table::Clients => "clients",
            Table::Identities => "identities",
        }
    }

    /// The key columns, in the order of the keys' values.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Table::Issuers => &["iss"],
            Table::Clients => &["vo", "client_id"],
            Table::Identities => &["iss", "sub", "vo"],
        }
    }
}

/// The distinct issuers, identities and clients a batch's issuances name, and which of them
/// each issuance names.
pub(crate) struct IssuanceKeys<'a> {
    pub issuers: Distinct<'a, 1>,
    pub identities: Distinct<'a, 3>,
    pub clients: Distinct<'a, 2>,
    slots: Vec<(usize, usize, Option<usize>)>,
}

impl<'a> IssuanceKeys<'a> {
    /// The keys of `issuances`, each first seen at the time its first issuance was logged.
    pub fn of(issuances: &[IssuanceRow<'a>]) -> IssuanceKeys<'a> {
        let mut issuers = Distinct::default();
        let mut identities = Distinct::default();
        let mut clients = Distinct::default();
        let slots = issuances
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
        IssuanceKeys {
            issuers,
            identities,
            clients,
            slots,
        }
    }

    /// The ids of each issuance, in order, given the ids of the distinct keys of each table.
    pub fn lookup_ids(
        &self,
        issuers: &[i64],
        identities: &[i64],
        clients: &[i64],
    ) -> Vec<LookupIds> {
        self.slots
            .iter()
            .map(|&(issuer, identity, client)| LookupIds {
                issuer: issuers[issuer],
                identity: identities[identity],
                client: client.map(|c| clients[c]),
            })
            .collect()
    }
}

/// Distinct keys in order of first appearance, each with its position and the time it was
/// first seen.
#[derive(Default)]
pub(crate) struct Distinct<'a, const N: usize> {
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

    /// The id of every key, in order: from `known`, else from `read`, given the keys `known`
    /// lacks, each with the time it was first seen, which answers their ids in that order.
    /// The ids read are also pushed to `new`.
    pub async fn ids(
        &self,
        known: &KnownIds,
        new: &mut Vec<(String, i64)>,
        read: impl AsyncFnOnce(&[([&'a str; N], i64)]) -> Result<Vec<i64>, StoreError>,
    ) -> Result<Vec<i64>, StoreError> {
        let mut ids = Vec::with_capacity(self.keys.len());
        let mut missing = Vec::new();
        for (position, (key, seen_at)) in self.keys.iter().enumerate() {
            let cached = cache_key(key);
            match known.0.get(&cached) {
                Some(id) => ids.push(*id),
                None => {
                    ids.push(0); // set below, from the table
                    missing.push((position, cached, (*key, *seen_at)));
                }
            }
        }
        if missing.is_empty() {
            return Ok(ids);
        }
        let keys: Vec<([&str; N], i64)> = missing.iter().map(|m| m.2).collect();
        let found = read(&keys).await?;
        for ((position, cached, _), id) in missing.into_iter().zip(found) {
            ids[position] = id;
            new.push((cached, id));
        }
        Ok(ids)
    }
}
