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

/// A dictionary goes once no entry uses it (its entries all redacted), in the redaction's
/// transaction; the newest stays, used or not: the writer compresses with it.
#[tokio::test]
async fn a_dictionary_goes_once_no_entry_uses_it_but_the_newest_stays() {
    let (_db, url, pool) = ledger().await;
    let mut writer = writer(&url, 0).await;
    let mut log = conformance::TestLog::default();
    let resolutions = (0..3).map(|_| conformance::Written::Resolution).collect();
    log.append(writer.as_mut(), resolutions).await.unwrap();
    // Entries 0 and 1 stored as if compressed with older dictionaries 1 and 2.
    for sql in [
        "INSERT INTO leaf_dictionaries (id, dictionary, created_at) \
         VALUES (1, decode('00', 'hex'), 0), (2, decode('00', 'hex'), 0), \
         (3, decode('00', 'hex'), 0)",
        "UPDATE entries SET dictionary = 1 WHERE idx = 0",
        "UPDATE entries SET dictionary = 2 WHERE idx = 1",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    let dictionaries = async || -> Vec<i64> {
        let rows: Vec<(i64,)> = sqlx::query_as("SELECT id FROM leaf_dictionaries ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
        rows.into_iter().map(|(id,)| id).collect()
    };
    log.append(writer.as_mut(), vec![conformance::redact(&[(0, 1)], 5)])
        .await
        .unwrap();
    assert_eq!(dictionaries().await, vec![2, 3]);
    log.append(writer.as_mut(), vec![conformance::redact(&[(1, 3)], 6)])
        .await
        .unwrap();
    assert_eq!(dictionaries().await, vec![3], "the newest stays, unused");
}
