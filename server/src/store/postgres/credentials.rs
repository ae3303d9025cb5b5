//! The SQL of API credentials: only the SHA-256 of each secret is stored.

use sqlx::PgPool;

use crate::store::records::{CREDENTIAL_COLUMNS, CredentialRow};
use crate::store::{CredentialInfo, StoreError};

/// Adds a credential.
pub async fn insert(
    pool: &PgPool,
    credential: &CredentialInfo,
    secret_hash: &[u8],
) -> Result<(), StoreError> {
    let binding = &credential.binding;
    sqlx::query(
        "INSERT INTO credentials (id, secret_hash, role, vo, site, issuer, label, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&credential.id)
    .bind(secret_hash)
    .bind(binding.role.as_str())
    .bind(&binding.vo)
    .bind(&binding.site)
    .bind(&binding.issuer)
    .bind(&credential.label)
    .bind(credential.created_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// Every credential, oldest first.
pub async fn list(pool: &PgPool) -> Result<Vec<CredentialInfo>, StoreError> {
    let rows: Vec<CredentialRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{CREDENTIAL_COLUMNS} ORDER BY created_at, id"
    )))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(CredentialRow::into_info).collect()
}

/// Revokes a credential at `at`; false if there is no such active credential.
pub async fn revoke(pool: &PgPool, id: &str, at: i64) -> Result<bool, StoreError> {
    let done =
        sqlx::query("UPDATE credentials SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(at)
            .bind(id)
            .execute(pool)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// The active credential whose secret hashes to `secret_hash` (a row that no longer parses
/// authenticates nobody).
pub async fn active(
    pool: &PgPool,
    secret_hash: &[u8],
) -> Result<Option<CredentialInfo>, StoreError> {
    let row: Option<CredentialRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{CREDENTIAL_COLUMNS} WHERE secret_hash = $1 AND revoked_at IS NULL"
    )))
    .bind(secret_hash)
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|r| r.into_info().ok()))
}
