//! The SQL of what is handed to sites: each site's last signed blocklist, the fetches of it
//! (enforcement status), and the pseudonyms given out, so a VO can resolve the one a site
//! reports.

use sqlx::PgPool;
use tokenledger_core::blocklist::SignedBlocklist;
use tokenledger_core::ids::Site;

use crate::store::records::parse_blocklist;
use crate::store::{BlocklistFetch, SiteFetches, StoreError};

/// The blocklist last signed for `site`.
pub async fn stored(pool: &PgPool, site: &str) -> Result<Option<SignedBlocklist>, StoreError> {
    let row: Option<(String,)> = sqlx::query_as("SELECT document FROM blocklists WHERE site = $1")
        .bind(site)
        .fetch_optional(pool)
        .await?;
    row.map(|(text,)| parse_blocklist(site, &text)).transpose()
}

/// Replaces the stored blocklist of its site if `signed`'s sequence is higher, and records,
/// for each of its suspensions, the first and the last sequence that carried it there, in one
/// transaction. False, with nothing written, if the stored sequence is as high or higher.
pub async fn store(pool: &PgPool, signed: &SignedBlocklist) -> Result<bool, StoreError> {
    let site = &signed.document.site;
    let sequence = signed.document.sequence as i64;
    let mut tx = pool.begin().await?;
    let stored = sqlx::query(
        "INSERT INTO blocklists (site, sequence, document) VALUES ($1, $2, $3)
         ON CONFLICT (site) DO UPDATE SET sequence = excluded.sequence, document = excluded.document
         WHERE blocklists.sequence < excluded.sequence",
    )
    .bind(site)
    .bind(sequence)
    .bind(serde_json::to_string(signed).expect("a blocklist serializes"))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if stored == 0 {
        return Ok(false);
    }
    let suspensions: Vec<&str> = signed
        .document
        .entries
        .iter()
        .map(|entry| entry.suspension_id.as_str())
        .collect();
    sqlx::query(
        "INSERT INTO blocklist_suspensions AS b (site, suspension_id, sequence, last_sequence)
         SELECT $1, s.id, $2, $2 FROM (SELECT DISTINCT UNNEST($3::text[]) AS id) s
         ON CONFLICT (site, suspension_id) DO UPDATE SET
             last_sequence = GREATEST(COALESCE(b.last_sequence, b.sequence), excluded.last_sequence)",
    )
    .bind(site)
    .bind(sequence)
    .bind(&suspensions)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Records one fetch of `site`'s blocklist: the first fetch of its sequence by that
/// credential (a document was served), and its last fetch.
pub async fn record_fetch(pool: &PgPool, fetch: &BlocklistFetch<'_>) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    if fetch.served {
        sqlx::query(
            "INSERT INTO blocklist_fetches (site, sequence, credential_id, fetched_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(fetch.site.as_str())
        .bind(fetch.sequence as i64)
        .bind(fetch.credential_id)
        .bind(fetch.at)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO blocklist_last_fetches AS l (site, credential_id, sequence, fetched_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (site, credential_id) DO UPDATE SET
             sequence = GREATEST(l.sequence, excluded.sequence),
             fetched_at = GREATEST(l.fetched_at, excluded.fetched_at)",
    )
    .bind(fetch.site.as_str())
    .bind(fetch.credential_id)
    .bind(fetch.sequence as i64)
    .bind(fetch.at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Whether `site` has fetched a blocklist carrying suspension `suspension_id`: a document of
/// a sequence from the first to the last that carried it.
pub async fn enforcement(
    pool: &PgPool,
    site: &Site,
    suspension_id: &str,
) -> Result<SiteFetches, StoreError> {
    let carried: Option<(i64, i64)> = sqlx::query_as(
        "SELECT sequence, COALESCE(last_sequence, sequence) FROM blocklist_suspensions
         WHERE site = $1 AND suspension_id = $2",
    )
    .bind(site.as_str())
    .bind(suspension_id)
    .fetch_optional(pool)
    .await?;
    let first_fetch: Option<(i64, i64)> = match carried {
        None => None,
        Some((first, last)) => {
            sqlx::query_as(
                "SELECT fetched_at, sequence FROM blocklist_fetches
                 WHERE site = $1 AND sequence BETWEEN $2 AND $3
                 ORDER BY fetched_at, sequence LIMIT 1",
            )
            .bind(site.as_str())
            .bind(first)
            .bind(last)
            .fetch_optional(pool)
            .await?
        }
    };
    let (last_fetch,): (Option<i64>,) =
        sqlx::query_as("SELECT MAX(fetched_at) FROM blocklist_last_fetches WHERE site = $1")
            .bind(site.as_str())
            .fetch_one(pool)
            .await?;
    Ok(SiteFetches {
        site: site.clone(),
        first_sequence: carried.map(|(first, _)| first as u64),
        first_fetch: first_fetch.map(|(at, s)| (at, s as u64)),
        last_fetch,
    })
}

/// Every site's last blocklist fetch (unix seconds), by site.
pub async fn last_fetches(pool: &PgPool) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT site, MAX(fetched_at) FROM blocklist_last_fetches GROUP BY site ORDER BY site",
    )
    .fetch_all(pool)
    .await?)
}

/// Remembers a pseudonym handed to `site` for `person` of `vo` (kept once).
pub async fn remember_pseudonym(
    pool: &PgPool,
    pseudonym: &str,
    site: &str,
    vo: &str,
    person: &str,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO pseudonyms (pseudonym, site, vo, person_id, created_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(pseudonym)
    .bind(site)
    .bind(vo)
    .bind(person)
    .bind(at)
    .execute(pool)
    .await?;
    Ok(())
}

/// Remembers a pseudonym handed to `site` for the person of suspension `suspension_id`
/// (nothing for a client suspension, as SQLite's `INSERT OR IGNORE` skips its NULL person).
pub async fn remember_suspension_pseudonym(
    pool: &PgPool,
    pseudonym: &str,
    site: &str,
    vo: &str,
    suspension_id: &str,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO pseudonyms (pseudonym, site, vo, person_id, created_at)
         SELECT $1, $2, $3, person_id, $4 FROM suspensions
         WHERE id = $5 AND person_id IS NOT NULL
         ON CONFLICT DO NOTHING",
    )
    .bind(pseudonym)
    .bind(site)
    .bind(vo)
    .bind(at)
    .bind(suspension_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// One stored pseudonym with its site, VO and person, if any is stored.
pub async fn any_pseudonym(
    pool: &PgPool,
) -> Result<Option<(String, String, String, String)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT pseudonym, site, vo, person_id FROM pseudonyms LIMIT 1")
            .fetch_optional(pool)
            .await?,
    )
}
