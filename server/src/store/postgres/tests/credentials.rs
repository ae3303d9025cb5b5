//! API credentials in the database: only the hash of a secret is stored.

use tokenledger_core::access::{Binding, Role};

use crate::credentials::{authenticate, create, list};
use crate::store::conformance::{self, StoppedAt};

#[tokio::test]
async fn create_authenticate_revoke() {
    let (_db, store) = super::store().await;
    let secret = conformance::create_authenticate_revoke(&store).await;
    let stored: (Vec<u8>,) = sqlx::query_as("SELECT secret_hash FROM credentials")
        .fetch_one(&store.pool())
        .await
        .unwrap();
    assert_ne!(stored.0, secret.as_bytes(), "only the hash is stored");
}

/// Every credential, oldest first; a row that no longer parses is listed as corrupt but
/// authenticates nobody.
#[tokio::test]
async fn credentials_are_listed_oldest_first() {
    let (_db, store) = super::store().await;
    let site = Binding::new(Role::SiteReader, None, Some("CERN-PROD".into())).unwrap();
    let officer = Binding::new(Role::VoSecurity, Some("atlas".into()), None).unwrap();
    let (second, _) = create(&store, &StoppedAt(2_000), &site, None)
        .await
        .unwrap();
    let (first, secret) = create(&store, &StoppedAt(1_000), &officer, Some("o"))
        .await
        .unwrap();
    let listed = list(&store).await.unwrap();
    assert_eq!(
        listed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [first.as_str(), second.as_str()]
    );
    assert_eq!(listed[1].binding, site);
    sqlx::query("UPDATE credentials SET role = 'no-such-role' WHERE id = $1")
        .bind(&first)
        .execute(&store.pool())
        .await
        .unwrap();
    assert!(authenticate(&store, &secret).await.unwrap().is_none());
    assert!(list(&store).await.is_err());
}
