//! The SQL of what is handed to sites: each site's last signed blocklist, and the pseudonyms
//! given out, so a VO can resolve the one a site reports.

use sqlx::SqlitePool;
use tokenledger_core::blocklist::SignedBlocklist;

use crate::store::StoreError;

/// The blocklist last signed for `site`.
pub async fn stored(pool: &SqlitePool, site: &str) -> Result<Option<SignedBlocklist>, StoreError> {
    let row: Option<(String,)> = sqlx::query_as("SELECT document FROM blocklists WHERE site = ?")
        .bind(site)
        .fetch_optional(pool)
        .await?;
    row.map(|(text,)| {
        serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("stored blocklist of {site}: {e}")))
    })
    .transpose()
}

/// Replaces the stored blocklist of its site.
pub async fn store(pool: &SqlitePool, signed: &SignedBlocklist) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO blocklists (site, sequence, document) VALUES (?, ?, ?)
         ON CONFLICT (site) DO UPDATE SET sequence = excluded.sequence, document = excluded.document",
    )
    .bind(&signed.document.site)
    .bind(signed.document.sequence as i64)
    .bind(serde_json::to_string(signed).expect("a blocklist serializes"))
    .execute(pool)
    .await?;
    Ok(())
}

/// Remembers a pseudonym handed to `site` for `person` of `vo` (kept once).
pub async fn remember_pseudonym(
    pool: &SqlitePool,
    pseudonym: &str,
    site: &str,
    vo: &str,
    person: &str,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT OR IGNORE INTO pseudonyms (pseudonym, site, vo, person_id, created_at) VALUES (?, ?, ?, ?, ?)",
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

/// Remembers a pseudonym handed to `site` for the person of suspension `suspension_id`.
pub async fn remember_suspension_pseudonym(
    pool: &SqlitePool,
    pseudonym: &str,
    site: &str,
    vo: &str,
    suspension_id: &str,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT OR IGNORE INTO pseudonyms (pseudonym, site, vo, person_id, created_at)
         SELECT ?, ?, ?, person_id, ? FROM suspensions WHERE id = ?",
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
    pool: &SqlitePool,
) -> Result<Option<(String, String, String, String)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT pseudonym, site, vo, person_id FROM pseudonyms LIMIT 1")
            .fetch_optional(pool)
            .await?,
    )
}
