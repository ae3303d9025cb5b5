//! Read queries behind resolution, search, timelines and the audit view. Entries are read
//! back as their canonical bytes; the lookup tables only point at them.

use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use crate::log_store::StoreError;

/// An entry as stored: its index and canonical bytes.
pub type StoredEntry = (u64, Vec<u8>);

/// Filters of an issuance listing; every present filter must match.
#[derive(Default, Debug)]
pub struct IssuanceFilter<'a> {
    pub vo: &'a str,
    /// Any of these identities `(iss, sub)`.
    pub identities: Option<&'a [(String, String)]>,
    pub client_id: Option<&'a str>,
    /// A scope the token carried, exactly.
    pub scope: Option<&'a str>,
    /// Token issued (`iat`, else logged) at or after, unix seconds.
    pub from: Option<i64>,
    /// Token issued before, unix seconds.
    pub to: Option<i64>,
    /// Only entries with a smaller index (paging, newest first).
    pub before: Option<u64>,
    pub limit: u32,
}

/// Every issuance of `jti`, whatever its issuer.
pub async fn issuances_by_jti(
    pool: &SqlitePool,
    jti: &str,
) -> Result<Vec<StoredEntry>, StoreError> {
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT e.idx, e.leaf FROM issuances i JOIN entries e ON e.idx = i.idx WHERE i.jti = ? ORDER BY e.idx",
    )
    .bind(jti)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(i, leaf)| (i as u64, leaf)).collect())
}

/// The issuance of `(iss, jti)`.
pub async fn issuance(
    pool: &SqlitePool,
    iss: &str,
    jti: &str,
) -> Result<Option<StoredEntry>, StoreError> {
    let row: Option<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT e.idx, e.leaf FROM issuances i JOIN issuers r ON r.id = i.issuer JOIN entries e ON e.idx = i.idx
         WHERE i.jti = ? AND r.iss = ?",
    )
    .bind(jti)
    .bind(iss)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(i, leaf)| (i as u64, leaf)))
}

/// The earliest issuance of `iss` that carried `refresh_jti`, before index `before`.
pub async fn first_with_refresh(
    pool: &SqlitePool,
    iss: &str,
    refresh_jti: &str,
    before: u64,
) -> Result<Option<StoredEntry>, StoreError> {
    let row: Option<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT e.idx, e.leaf FROM issuances i JOIN issuers r ON r.id = i.issuer JOIN entries e ON e.idx = i.idx
         WHERE r.iss = ? AND i.refresh_jti = ? AND i.idx < ? ORDER BY i.idx LIMIT 1",
    )
    .bind(iss)
    .bind(refresh_jti)
    .bind(before as i64)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(i, leaf)| (i as u64, leaf)))
}

/// The person an identity belongs to in `vo`.
pub async fn person_of(
    pool: &SqlitePool,
    iss: &str,
    sub: &str,
    vo: &str,
) -> Result<Option<String>, StoreError> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT person_id FROM identities WHERE iss = ? AND sub = ? AND vo = ?")
            .bind(iss)
            .bind(sub)
            .bind(vo)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|r| r.0))
}

/// Every identity `(iss, sub)` of a person in `vo`, oldest first; empty if no such person.
pub async fn identities_of(
    pool: &SqlitePool,
    person: &str,
    vo: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT iss, sub FROM identities WHERE person_id = ? AND vo = ? ORDER BY created_at, iss, sub",
    )
    .bind(person)
    .bind(vo)
    .fetch_all(pool)
    .await?)
}

/// Issuances matching `filter`, newest first, at most `filter.limit`.
pub async fn issuances(
    pool: &SqlitePool,
    filter: &IssuanceFilter<'_>,
) -> Result<Vec<StoredEntry>, StoreError> {
    let mut q = QueryBuilder::<Sqlite>::new(
        "SELECT e.idx, e.leaf FROM issuances i JOIN identities d ON d.id = i.identity
         JOIN entries e ON e.idx = i.idx WHERE d.vo = ",
    );
    q.push_bind(filter.vo);
    if let Some(identities) = filter.identities {
        if identities.is_empty() {
            return Ok(Vec::new());
        }
        q.push(" AND ");
        push_identity_filter(&mut q, filter.vo, identities);
    }
    if let Some(client_id) = filter.client_id {
        q.push(" AND i.client = (SELECT id FROM clients WHERE vo = ")
            .push_bind(filter.vo)
            .push(" AND client_id = ")
            .push_bind(client_id)
            .push(")");
    }
    if let Some(scope) = filter.scope {
        q.push(
            " AND EXISTS (SELECT 1 FROM json_each(CAST(e.leaf AS TEXT), '$.scopes') WHERE value = ",
        )
        .push_bind(scope)
        .push(")");
    }
    let issued = "COALESCE(json_extract(CAST(e.leaf AS TEXT), '$.iat'), json_extract(CAST(e.leaf AS TEXT), '$.logged_at') / 1000000)";
    if let Some(from) = filter.from {
        q.push(format!(" AND {issued} >= ")).push_bind(from);
    }
    if let Some(to) = filter.to {
        q.push(format!(" AND {issued} < ")).push_bind(to);
    }
    if let Some(before) = filter.before {
        q.push(" AND i.idx < ").push_bind(before as i64);
    }
    q.push(" ORDER BY i.idx DESC LIMIT ")
        .push_bind(filter.limit as i64);
    let rows: Vec<(i64, Vec<u8>)> = q.build_query_as().fetch_all(pool).await?;
    Ok(rows.into_iter().map(|(i, leaf)| (i as u64, leaf)).collect())
}

/// Resolution entries of `vo`, newest first.
pub async fn resolutions(
    pool: &SqlitePool,
    vo: &str,
    before: Option<u64>,
    limit: u32,
) -> Result<Vec<StoredEntry>, StoreError> {
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT e.idx, e.leaf FROM resolutions r JOIN entries e ON e.idx = r.idx
         WHERE r.vo = ? AND r.idx < ? ORDER BY r.idx DESC LIMIT ?",
    )
    .bind(vo)
    .bind(before.map_or(i64::MAX, |b| b as i64))
    .bind(limit as i64)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(i, leaf)| (i as u64, leaf)).collect())
}

/// Decodes an issuance entry.
pub fn decode_issuance(
    index: u64,
    leaf: &[u8],
) -> Result<tokenledger_core::entry::Issuance, StoreError> {
    use tokenledger_core::entry::{EntryBody, LogEntry};
    match LogEntry::from_canonical_bytes(leaf) {
        Ok(LogEntry {
            body: EntryBody::Issuance(issuance),
            ..
        }) => Ok(*issuance),
        Ok(_) => Err(StoreError::Corrupt(format!(
            "entry {index} is not an issuance"
        ))),
        Err(e) => Err(StoreError::Corrupt(format!("entry {index}: {e}"))),
    }
}

/// The site, VO and person a pseudonym was handed out for.
pub async fn pseudonym(
    pool: &SqlitePool,
    pseudonym: &str,
) -> Result<Option<(String, String, String)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT site, vo, person_id FROM pseudonyms WHERE pseudonym = ?")
            .bind(pseudonym)
            .fetch_optional(pool)
            .await?,
    )
}

/// A person's timeline, newest first: issuances of its identities, sightings of those
/// tokens, its suspensions and their lifts, as `(kind, index, canonical bytes)`.
pub async fn timeline(
    pool: &SqlitePool,
    vo: &str,
    person: &str,
    identities: &[(String, String)],
    before: Option<u64>,
    limit: u32,
) -> Result<Vec<(String, u64, Vec<u8>)>, StoreError> {
    if identities.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = QueryBuilder::<Sqlite>::new(
        "SELECT t.kind, t.idx, e.leaf FROM (SELECT 'issuance' AS kind, i.idx AS idx FROM issuances i WHERE ",
    );
    push_identity_filter(&mut q, vo, identities);
    q.push(" UNION ALL SELECT 'sighting', s.idx FROM sightings s JOIN issuers r ON r.iss = s.iss");
    q.push(" JOIN issuances i ON i.jti = s.jti AND i.issuer = r.id WHERE s.vo = ");
    q.push_bind(vo.to_string()).push(" AND ");
    push_identity_filter(&mut q, vo, identities);
    q.push(" UNION ALL SELECT 'suspension', idx FROM suspensions WHERE person_id = ")
        .push_bind(person.to_string())
        .push(" AND vo = ")
        .push_bind(vo.to_string());
    q.push(" UNION ALL SELECT 'lift', lift_idx FROM suspensions WHERE lift_idx IS NOT NULL AND person_id = ")
        .push_bind(person.to_string())
        .push(" AND vo = ")
        .push_bind(vo.to_string());
    q.push(") t JOIN entries e ON e.idx = t.idx WHERE t.idx < ")
        .push_bind(before.map_or(i64::MAX, |b| b as i64))
        .push(" ORDER BY t.idx DESC LIMIT ")
        .push_bind(limit as i64);
    let rows: Vec<(String, i64, Vec<u8>)> = q.build_query_as().fetch_all(pool).await?;
    Ok(rows
        .into_iter()
        .map(|(kind, idx, leaf)| (kind, idx as u64, leaf))
        .collect())
}

/// The condition that issuance `i` is of one of `identities` `(iss, sub)` of `vo` (not
/// empty), resolved to identity ids.
fn push_identity_filter(q: &mut QueryBuilder<Sqlite>, vo: &str, identities: &[(String, String)]) {
    q.push("i.identity IN (SELECT d.id FROM (");
    q.push_values(identities, |mut row, (iss, sub)| {
        row.push_bind(iss).push_bind(sub);
    });
    q.push(") k JOIN identities d ON d.iss = k.column1 AND d.sub = k.column2 AND d.vo = ")
        .push_bind(vo)
        .push(")");
}
