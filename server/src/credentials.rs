//! API credentials: random `tlk_` secrets, stored only as SHA-256 hashes, each bound to a role.

use data_encoding::BASE32_NOPAD;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::SqlitePool;
use tokenledger_core::access::{Binding, Role};

use crate::keys::random_bytes;
use crate::sequencer::now_micros;

/// Every credential secret starts with this, so scanners can spot a leaked one.
pub const SECRET_PREFIX: &str = "tlk_";

/// A credential as listed (never with its secret).
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct CredentialInfo {
    pub id: String,
    #[serde(flatten)]
    pub binding: Binding,
    pub label: Option<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// An authenticated caller: `credential:<id>` for an API credential, `oidc:<iss>#<sub>` for
/// an operator's token; and what it may do.
#[derive(Clone, Debug)]
pub struct Principal {
    pub id: String,
    pub binding: Binding,
}

/// Creates a credential; returns its id and the secret, which is shown once and never stored.
pub async fn create(
    pool: &SqlitePool,
    binding: &Binding,
    label: Option<&str>,
) -> anyhow::Result<(String, String)> {
    let id = format!(
        "c-{}",
        BASE32_NOPAD.encode(&random_bytes::<5>()?).to_lowercase()
    );
    let secret = format!(
        "{SECRET_PREFIX}{}",
        BASE32_NOPAD.encode(&random_bytes::<32>()?).to_lowercase()
    );
    sqlx::query(
        "INSERT INTO credentials (id, secret_hash, role, vo, site, issuer, label, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(secret_hash(&secret))
    .bind(binding.role.as_str())
    .bind(&binding.vo)
    .bind(&binding.site)
    .bind(&binding.issuer)
    .bind(label)
    .bind(now_micros())
    .execute(pool)
    .await?;
    Ok((id, secret))
}

/// Every credential, oldest first.
pub async fn list(pool: &SqlitePool) -> anyhow::Result<Vec<CredentialInfo>> {
    let rows: Vec<CredentialRow> = sqlx::query_as(
        "SELECT id, role, vo, site, issuer, label, created_at, revoked_at FROM credentials ORDER BY created_at, id",
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(CredentialRow::into_info).collect()
}

/// Revokes a credential; returns false if there is no such active credential.
pub async fn revoke(pool: &SqlitePool, id: &str) -> anyhow::Result<bool> {
    let done =
        sqlx::query("UPDATE credentials SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(now_micros())
            .bind(id)
            .execute(pool)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Does any active admin credential exist?
pub async fn has_active_admin(pool: &SqlitePool) -> anyhow::Result<bool> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM credentials WHERE role = 'admin' AND revoked_at IS NULL",
    )
    .fetch_one(pool)
    .await?;
    Ok(n > 0)
}

/// The active credential whose secret this is, if any.
pub async fn authenticate(
    pool: &SqlitePool,
    secret: &str,
) -> Result<Option<Principal>, sqlx::Error> {
    if !secret.starts_with(SECRET_PREFIX) {
        return Ok(None);
    }
    let row: Option<CredentialRow> = sqlx::query_as(
        "SELECT id, role, vo, site, issuer, label, created_at, revoked_at FROM credentials
         WHERE secret_hash = ? AND revoked_at IS NULL",
    )
    .bind(secret_hash(secret))
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|r| r.into_info().ok()).map(|info| Principal {
        id: format!("credential:{}", info.id),
        binding: info.binding,
    }))
}

fn secret_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

#[derive(sqlx::FromRow)]
struct CredentialRow {
    id: String,
    role: String,
    vo: Option<String>,
    site: Option<String>,
    issuer: Option<String>,
    label: Option<String>,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl CredentialRow {
    fn into_info(self) -> anyhow::Result<CredentialInfo> {
        let role: Role = self.role.parse()?;
        Ok(CredentialInfo {
            binding: Binding::new(role, self.vo, self.site)?.with_issuer(self.issuer)?,
            id: self.id,
            label: self.label,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn create_authenticate_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::db::open(&dir.path().join("t.db")).await.unwrap();
        let binding = Binding::new(Role::Issuer, Some("atlas".into()), None).unwrap();
        let (id, secret) = create(&pool, &binding, Some("iam")).await.unwrap();
        assert!(secret.starts_with("tlk_") && secret.len() > 50);

        let stored: (Vec<u8>,) = sqlx::query_as("SELECT secret_hash FROM credentials")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_ne!(stored.0, secret.as_bytes(), "only the hash is stored");

        let principal = authenticate(&pool, &secret).await.unwrap().unwrap();
        assert_eq!(principal.id, format!("credential:{id}"));
        assert_eq!(principal.binding, binding);
        assert!(authenticate(&pool, "tlk_wrong").await.unwrap().is_none());
        assert!(
            authenticate(&pool, "not-a-credential")
                .await
                .unwrap()
                .is_none()
        );

        assert!(revoke(&pool, &id).await.unwrap());
        assert!(!revoke(&pool, &id).await.unwrap());
        assert!(authenticate(&pool, &secret).await.unwrap().is_none());
        assert!(list(&pool).await.unwrap()[0].revoked_at.is_some());
    }
}
