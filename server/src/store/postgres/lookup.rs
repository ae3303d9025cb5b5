//! Read queries behind resolution, search, timelines and the audit view. Entries are read
//! back as their canonical bytes; the lookup tables only point at them.

use sqlx::{PgPool, Postgres, QueryBuilder};

use super::identity_scan::{self, IdentityScan};
use super::log_reads::{decoded, read_entries_at};
use crate::store::issuance_search::{self, IssuanceCandidates};
use crate::store::leaf_codec::{EntryData, LeafDecoders};
use crate::store::{IssuanceFilter, StoreError, StoredEntry, TimelineEvent};

/// Every issuance of `jti`, whatever its issuer.
pub async fn issuances_by_jti(
    pool: &PgPool,
    leaves: &LeafDecoders,
    jti: &str,
) -> Result<Vec<StoredEntry>, StoreError> {
    let rows: Vec<EntryData> = sqlx::query_as(
        "SELECT e.idx, e.leaf, e.dictionary, e.leaf_hash FROM issuances i
         JOIN entries_with_leaf_hash e ON e.idx = i.idx WHERE i.jti = $1 ORDER BY e.idx",
    )
    .bind(jti)
    .fetch_all(pool)
    .await?;
    decoded(pool, leaves, rows).await
}

/// The issuance of `(iss, jti)`.
pub async fn issuance(
    pool: &PgPool,
    leaves: &LeafDecoders,
    iss: &str,
    jti: &str,
) -> Result<Option<StoredEntry>, StoreError> {
    let row: Option<EntryData> = sqlx::query_as(
        "SELECT e.idx, e.leaf, e.dictionary, e.leaf_hash FROM issuances i
         JOIN issuers r ON r.id = i.issuer JOIN entries_with_leaf_hash e ON e.idx = i.idx
         WHERE i.jti = $1 AND r.iss = $2",
    )
    .bind(jti)
    .bind(iss)
    .fetch_optional(pool)
    .await?;
    Ok(decoded(pool, leaves, row.into_iter().collect())
        .await?
        .pop())
}

/// The earliest issuance of `iss` that carried `refresh_jti`, before index `before`.
pub async fn first_with_refresh(
    pool: &PgPool,
    leaves: &LeafDecoders,
    iss: &str,
    refresh_jti: &str,
    before: u64,
) -> Result<Option<StoredEntry>, StoreError> {
    let row: Option<EntryData> = sqlx::query_as(
        "SELECT e.idx, e.leaf, e.dictionary, e.leaf_hash FROM issuances i
         JOIN issuers r ON r.id = i.issuer JOIN entries_with_leaf_hash e ON e.idx = i.idx
         WHERE r.iss = $1 AND i.refresh_jti = $2 AND i.idx < $3 ORDER BY i.idx LIMIT 1",
    )
    .bind(iss)
    .bind(refresh_jti)
    .bind(before.min(i64::MAX as u64) as i64)
    .fetch_optional(pool)
    .await?;
    Ok(decoded(pool, leaves, row.into_iter().collect())
        .await?
        .pop())
}

/// The person an identity belongs to in `vo`.
pub async fn person_of(
    pool: &PgPool,
    iss: &str,
    sub: &str,
    vo: &str,
) -> Result<Option<String>, StoreError> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT person_id FROM identities WHERE iss = $1 AND sub = $2 AND vo = $3")
            .bind(iss)
            .bind(sub)
            .bind(vo)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|r| r.0))
}

/// Every identity `(iss, sub)` of a person in `vo`, oldest first; empty if no such person.
pub async fn identities_of(
    pool: &PgPool,
    person: &str,
    vo: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT iss, sub FROM identities WHERE person_id = $1 AND vo = $2
         ORDER BY created_at, iss, sub",
    )
    .bind(person)
    .bind(vo)
    .fetch_all(pool)
    .await?)
}

/// The person an identity belongs to in `vo`, with every identity of that person there
/// (as [`identities_of`]), in one query; `None` if the identity is unknown.
pub async fn person_with_identities(
    pool: &PgPool,
    iss: &str,
    sub: &str,
    vo: &str,
) -> Result<Option<(String, Vec<(String, String)>)>, StoreError> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT o.person_id, o.iss, o.sub FROM identities p
         JOIN identities o ON o.person_id = p.person_id AND o.vo = p.vo
         WHERE p.iss = $1 AND p.sub = $2 AND p.vo = $3 ORDER BY o.created_at, o.iss, o.sub",
    )
    .bind(iss)
    .bind(sub)
    .bind(vo)
    .fetch_all(pool)
    .await?;
    let Some(person) = rows.first().map(|r| r.0.clone()) else {
        return Ok(None);
    };
    let identities = rows.into_iter().map(|(_, iss, sub)| (iss, sub)).collect();
    Ok(Some((person, identities)))
}

/// Issuances matching `filter`, newest first, at most `filter.limit`. The lookup tables
/// narrow by VO, identity and client; scope and time are checked on the decoded entries,
/// a page of candidates at a time.
pub async fn issuances(
    pool: &PgPool,
    leaves: &LeafDecoders,
    filter: &IssuanceFilter<'_>,
) -> Result<Vec<StoredEntry>, StoreError> {
    let mut candidates = match filter.identities {
        None => Candidates::InVo {
            pool,
            leaves,
            filter,
        },
        Some(identities) => {
            match IdentityScan::resolve(pool, filter.vo, identities, filter.client_id).await? {
                Some(scan) => {
                    let top = identity_scan::log_top(pool, filter.before).await?;
                    Candidates::ByIdentity {
                        pool,
                        leaves,
                        scan,
                        top,
                    }
                }
                None => return Ok(Vec::new()),
            }
        }
    };
    issuance_search::matching(filter, &mut candidates).await
}

/// The candidates of an issuance listing: by identity (the epoch index), or by VO and client.
enum Candidates<'a> {
    ByIdentity {
        pool: &'a PgPool,
        leaves: &'a LeafDecoders,
        scan: IdentityScan,
        top: u64,
    },
    InVo {
        pool: &'a PgPool,
        leaves: &'a LeafDecoders,
        filter: &'a IssuanceFilter<'a>,
    },
}

impl IssuanceCandidates for Candidates<'_> {
    async fn page(
        &mut self,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        match self {
            Candidates::ByIdentity {
                pool,
                leaves,
                scan,
                top,
            } => {
                let top = before.map_or(*top, |before| before.min(*top));
                let indexes = scan.newest(pool, top, limit).await?;
                entries_newest_first(pool, leaves, &indexes).await
            }
            Candidates::InVo {
                pool,
                leaves,
                filter,
            } => {
                let rows = vo_candidates(pool, filter, before, limit).await?;
                decoded(*pool, leaves, rows).await
            }
        }
    }
}

/// The VOs (sorted) in which a token of client `client_id` of issuer `iss` is logged: per VO
/// that interned the client, its first issuance of that issuer (clients are interned per VO,
/// not per issuer).
pub async fn client_vos(
    pool: &PgPool,
    iss: &str,
    client_id: &str,
) -> Result<Vec<String>, StoreError> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT c.vo FROM clients c WHERE c.client_id = $1 AND EXISTS (
           SELECT 1 FROM issuances i WHERE i.client = c.id
             AND i.issuer = (SELECT id FROM issuers WHERE iss = $2) LIMIT 1)
         ORDER BY c.vo",
    )
    .bind(client_id)
    .bind(iss)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(vo,)| vo).collect())
}

/// Up to `limit` issuances of the filter's VO (and client), below `before`, newest first:
/// the candidates of a filter without identities.
async fn vo_candidates(
    pool: &PgPool,
    filter: &IssuanceFilter<'_>,
    before: Option<u64>,
    limit: u32,
) -> Result<Vec<EntryData>, StoreError> {
    let mut q = QueryBuilder::<Postgres>::new(
        "SELECT e.idx, e.leaf, e.dictionary, e.leaf_hash FROM issuances i
         JOIN identities d ON d.id = i.identity
         JOIN entries_with_leaf_hash e ON e.idx = i.idx WHERE d.vo = ",
    );
    q.push_bind(filter.vo.as_str());
    if let Some(client_id) = filter.client_id {
        q.push(" AND i.client = (SELECT id FROM clients WHERE vo = ")
            .push_bind(filter.vo.as_str())
            .push(" AND client_id = ")
            .push_bind(client_id)
            .push(")");
    }
    if let Some(before) = before {
        q.push(" AND i.idx < ")
            .push_bind(before.min(i64::MAX as u64) as i64);
    }
    q.push(" ORDER BY i.idx DESC LIMIT ")
        .push_bind(limit as i64);
    Ok(q.build_query_as().fetch_all(pool).await?)
}

/// The entries at `indexes` (newest first, as given), decoded.
async fn entries_newest_first(
    pool: &PgPool,
    leaves: &LeafDecoders,
    indexes: &[u64],
) -> Result<Vec<StoredEntry>, StoreError> {
    let mut entries = read_entries_at(&mut *pool.acquire().await?, leaves, indexes).await?;
    if entries.len() != indexes.len() {
        return Err(StoreError::Corrupt(format!(
            "{} of {} indexed entries are missing",
            indexes.len() - entries.len(),
            indexes.len()
        )));
    }
    entries.sort_unstable_by_key(|entry| std::cmp::Reverse(entry.0));
    Ok(entries)
}

/// Resolution entries of `vo`, newest first.
pub async fn resolutions(
    pool: &PgPool,
    leaves: &LeafDecoders,
    vo: &str,
    before: Option<u64>,
    limit: u32,
) -> Result<Vec<StoredEntry>, StoreError> {
    let rows: Vec<EntryData> = sqlx::query_as(
        "SELECT e.idx, e.leaf, e.dictionary, e.leaf_hash FROM resolutions r
         JOIN entries_with_leaf_hash e ON e.idx = r.idx
         WHERE r.vo = $1 AND r.idx < $2 ORDER BY r.idx DESC LIMIT $3",
    )
    .bind(vo)
    .bind(before.map_or(i64::MAX, |b| b.min(i64::MAX as u64) as i64))
    .bind(limit as i64)
    .fetch_all(pool)
    .await?;
    decoded(pool, leaves, rows).await
}

/// The site, VO and person a pseudonym was handed out for.
pub async fn pseudonym(
    pool: &PgPool,
    pseudonym: &str,
) -> Result<Option<(String, String, String)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT site, vo, person_id FROM pseudonyms WHERE pseudonym = $1")
            .bind(pseudonym)
            .fetch_optional(pool)
            .await?,
    )
}

/// A person's timeline, newest first: issuances of its identities, sightings of those
/// tokens, its suspensions and their lifts, as `(kind, index, canonical bytes)`.
pub async fn timeline(
    pool: &PgPool,
    leaves: &LeafDecoders,
    vo: &str,
    person: &str,
    identities: &[(String, String)],
    before: Option<u64>,
    limit: u32,
) -> Result<Vec<TimelineEvent>, StoreError> {
    let Some(scan) = IdentityScan::resolve(pool, vo, identities, None).await? else {
        return Ok(Vec::new());
    };
    // One bound for both reads below: every entry under it was committed before them, so
    // they see the same log.
    let top = identity_scan::log_top(pool, before).await?;
    let mut events: Vec<(String, u64)> = scan
        .newest(pool, top, limit)
        .await?
        .into_iter()
        .map(|index| ("issuance".to_string(), index))
        .collect();
    let others: Vec<(String, i64)> = sqlx::query_as(
        "SELECT t.kind, t.idx FROM (
           SELECT 'sighting'::text AS kind, s.idx AS idx FROM sightings s
             WHERE s.vo = $1 AND s.identity = ANY($2)
           UNION ALL SELECT 'suspension', idx FROM suspensions WHERE person_id = $3 AND vo = $1
           UNION ALL SELECT 'lift', lift_idx FROM suspensions
             WHERE lift_idx IS NOT NULL AND person_id = $3 AND vo = $1
         ) t WHERE t.idx < $4 ORDER BY t.idx DESC LIMIT $5",
    )
    .bind(vo)
    .bind(scan.identities())
    .bind(person)
    .bind(top as i64)
    .bind(limit as i64)
    .fetch_all(pool)
    .await?;
    events.extend(others.into_iter().map(|(kind, index)| (kind, index as u64)));
    events.sort_unstable_by_key(|event| std::cmp::Reverse(event.1));
    events.truncate(limit as usize);
    let indexes: Vec<u64> = events.iter().map(|event| event.1).collect();
    let entries = entries_newest_first(pool, leaves, &indexes).await?;
    Ok(events
        .into_iter()
        .zip(entries)
        .map(|((kind, index), (_, bytes))| (kind, index, bytes))
        .collect())
}
