//! API credentials in the database: only the hash of a secret is stored.

use crate::store::conformance;
use crate::store::sqlite::{SqliteStore, connection};

#[tokio::test]
async fn create_authenticate_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let pool = connection::open(&dir.path().join("t.db")).await.unwrap();
    let store = SqliteStore::over(pool.clone());
    let secret = conformance::create_authenticate_revoke(&store).await;
    let stored: (Vec<u8>,) = sqlx::query_as("SELECT secret_hash FROM credentials")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_ne!(stored.0, secret.as_bytes(), "only the hash is stored");
}
