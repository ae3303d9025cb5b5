//! API credentials in the database: only the hash of a secret is stored.

use tokenledger_core::access::{Binding, Role};

use crate::clock::Clock;
use crate::credentials::{authenticate, create, list, revoke};

/// A clock stopped at a time (unix microseconds).
struct StoppedAt(i64);

impl Clock for StoppedAt {
    fn now_micros(&self) -> i64 {
        self.0
    }
}

#[tokio::test]
async fn create_authenticate_revoke() {
    let (_db, store) = super::store().await;
    let binding = Binding::new(Role::Issuer, Some("atlas".into()), None).unwrap();
    let (id, secret) = create(&store, &StoppedAt(1_000), &binding, Some("iam"))
        .await
        .unwrap();
    assert!(secret.starts_with("tlk_") && secret.len() > 50);

    let stored: (Vec<u8>,) = sqlx::query_as("SELECT secret_hash FROM credentials")
        .fetch_one(&store.pool())
        .await
        .unwrap();
    assert_ne!(stored.0, secret.as_bytes(), "only the hash is stored");

    let principal = authenticate(&store, &secret).await.unwrap().unwrap();
    assert_eq!(principal.id, format!("credential:{id}"));
    assert_eq!(principal.binding, binding);
    assert!(authenticate(&store, "tlk_wrong").await.unwrap().is_none());
    assert!(
        authenticate(&store, "not-a-credential")
            .await
            .unwrap()
            .is_none()
    );

    assert!(revoke(&store, &StoppedAt(2_000), &id).await.unwrap());
    assert!(!revoke(&store, &StoppedAt(3_000), &id).await.unwrap());
    assert!(authenticate(&store, &secret).await.unwrap().is_none());
    let listed = &list(&store).await.unwrap()[0];
    assert_eq!((listed.created_at, listed.revoked_at), (1_000, Some(2_000)));
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
