//! Enforcement status in the database: the sequence at which each suspension first appeared
//! in a site's blocklist, the first fetch of each sequence per credential, the last fetch per
//! site; the stored blocklist read back.

use crate::store::conformance::{self, signed, site};
use crate::store::{LedgerReader, Registry};

#[tokio::test]
async fn first_appearance_first_fetch_and_last_fetch() {
    let (_db, store) = super::store().await;
    conformance::first_appearance_first_fetch_and_last_fetch(&store).await;
}

#[tokio::test]
async fn a_fetch_after_the_suspension_left_the_blocklist_is_no_fetch_of_it() {
    let (_db, store) = super::store().await;
    conformance::a_fetch_after_the_suspension_left_the_blocklist_is_no_fetch_of_it(&store).await;
}

#[tokio::test]
async fn a_blocklist_of_a_sequence_already_stored_is_refused() {
    let (_db, store) = super::store().await;
    conformance::a_blocklist_of_a_sequence_already_stored_is_refused(&store).await;
}

/// The last signed blocklist of a site replaces the one before; a suspension carried twice
/// in one document is recorded once.
#[tokio::test]
async fn the_last_signed_blocklist_is_read_back() {
    let (_db, store) = super::store().await;
    assert!(store.blocklist(&site("A")).await.unwrap().is_none());
    store
        .store_blocklist(&signed("A", 1, &["su-1", "su-1"]))
        .await
        .unwrap();
    let newer = signed("A", 2, &["su-2"]);
    store.store_blocklist(&newer).await.unwrap();
    let read = store.blocklist(&site("A")).await.unwrap().unwrap();
    assert_eq!(
        serde_json::to_value(&read).unwrap(),
        serde_json::to_value(&newer).unwrap()
    );
    assert!(store.blocklist(&site("B")).await.unwrap().is_none());
    let status = store
        .blocklist_enforcement(&site("A"), "su-1")
        .await
        .unwrap();
    assert_eq!(status.first_sequence, Some(1));
}
