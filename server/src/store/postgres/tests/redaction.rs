//! Redaction on PostgreSQL: the conformance scenarios, through the writer and a reader of
//! one database.

use super::{ledger, open_url, writer};
use crate::store::conformance;

#[tokio::test]
async fn redaction_removes_payload_and_lookups_and_keeps_hashes() {
    let (_db, url, _pool) = ledger().await;
    let mut writer = writer(&url, 0).await;
    let store = open_url(&url).await;
    conformance::redaction_removes_payload_and_lookups_and_keeps_hashes(writer.as_mut(), &store)
        .await;
}

#[tokio::test]
async fn a_failed_batch_redacts_nothing() {
    let (_db, url, _pool) = ledger().await;
    let mut writer = writer(&url, 0).await;
    let store = open_url(&url).await;
    conformance::a_failed_batch_redacts_nothing(writer.as_mut(), &store).await;
}

#[tokio::test]
async fn a_redaction_past_its_own_entry_is_refused() {
    let (_db, url, _pool) = ledger().await;
    let mut writer = writer(&url, 0).await;
    let store = open_url(&url).await;
    conformance::a_redaction_past_its_own_entry_is_refused(writer.as_mut(), &store).await;
}

#[tokio::test]
async fn orphans_go_with_their_redaction() {
    let (_db, url, _pool) = ledger().await;
    let mut writer = writer(&url, 0).await;
    let store = open_url(&url).await;
    conformance::orphans_go_with_their_redaction(writer.as_mut(), &store, &store, 0).await;
}

#[tokio::test]
async fn orphans_go_with_their_redaction_over_epochs() {
    let (_db, url, _pool) = ledger().await;
    let mut writer = writer(&url, 0).await;
    let store = open_url(&url).await;
    conformance::orphans_go_with_their_redaction(writer.as_mut(), &store, &store, 4200).await;
}
