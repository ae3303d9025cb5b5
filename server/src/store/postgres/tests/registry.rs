//! Sites and the VOs they serve, and the pseudonyms handed out to sites.

use tokenledger_core::ids::{PersonId, Pseudonym, Site, Vo};

use crate::store::{LedgerReader, Registry};

#[tokio::test]
async fn sites_are_added_and_their_vos_replaced() {
    let (_db, store) = super::store().await;
    let cern = Site::unchecked("CERN-PROD");
    let ral = Site::unchecked("RAL");
    let (atlas, cms) = (Vo::unchecked("atlas"), Vo::unchecked("cms"));
    assert!(store.site_vos(&cern).await.unwrap().is_none());
    store
        .upsert_site(&cern, &[cms.clone(), atlas.clone()], 10)
        .await
        .unwrap();
    store.upsert_site(&ral, &[], 11).await.unwrap();
    assert_eq!(
        store.site_vos(&cern).await.unwrap(),
        Some(vec![atlas.clone(), cms.clone()])
    );
    assert_eq!(store.site_vos(&ral).await.unwrap(), Some(vec![]));
    store
        .upsert_site(&cern, std::slice::from_ref(&cms), 12)
        .await
        .unwrap();
    assert_eq!(
        store.sites().await.unwrap(),
        vec![(cern.clone(), vec![cms.clone()]), (ral.clone(), vec![])]
    );
    let (created_at,): (i64,) = sqlx::query_as("SELECT created_at FROM sites WHERE name = $1")
        .bind(cern.as_str())
        .fetch_one(&store.pool())
        .await
        .unwrap();
    assert_eq!(created_at, 10, "a site keeps its creation time");
}

#[tokio::test]
async fn pseudonyms_are_kept_once_and_resolved() {
    let (_db, store) = super::store().await;
    let cern = Site::unchecked("CERN-PROD");
    let atlas = Vo::unchecked("atlas");
    assert!(store.any_pseudonym().await.unwrap().is_none());
    let p1 = Pseudonym::unchecked("p1-a");
    let alice = PersonId::unchecked("pe-a");
    store
        .remember_pseudonym(&p1, &cern, &atlas, &alice, 1)
        .await
        .unwrap();
    store
        .remember_pseudonym(&p1, &cern, &atlas, &PersonId::unchecked("pe-other"), 2)
        .await
        .unwrap();
    assert_eq!(
        store.pseudonym(&p1).await.unwrap(),
        Some((cern.clone(), atlas.clone(), alice.clone())),
        "kept once"
    );
    sqlx::query(
        "INSERT INTO suspensions (id, idx, vo, person_id, scope, reason_code, created_by, created_at)
         VALUES ('su-1', 3, 'atlas', 'pe-b', 'all', 'x', 'c1', 5)",
    )
    .execute(&store.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO suspensions (id, idx, vo, client_iss, client_id, scope, reason_code,
                                  created_by, created_at)
         VALUES ('su-2', 4, 'atlas', 'https://iam/', 'rucio', 'all', 'x', 'c1', 6)",
    )
    .execute(&store.pool())
    .await
    .unwrap();
    let p2 = Pseudonym::unchecked("p1-b");
    store
        .remember_suspension_pseudonym(&p2, &cern, &atlas, "su-1", 7)
        .await
        .unwrap();
    let p3 = Pseudonym::unchecked("p1-client");
    store
        .remember_suspension_pseudonym(&p3, &cern, &atlas, "su-2", 8)
        .await
        .unwrap();
    store
        .remember_suspension_pseudonym(&p3, &cern, &atlas, "su-none", 9)
        .await
        .unwrap();
    assert_eq!(
        store.pseudonym(&p2).await.unwrap(),
        Some((cern.clone(), atlas.clone(), PersonId::unchecked("pe-b")))
    );
    assert!(
        store.pseudonym(&p3).await.unwrap().is_none(),
        "a client suspension holds no person"
    );
    let (any, site, vo, _) = store.any_pseudonym().await.unwrap().unwrap();
    assert!([p1, p2].contains(&any));
    assert_eq!((site, vo), (cern, atlas));
}
