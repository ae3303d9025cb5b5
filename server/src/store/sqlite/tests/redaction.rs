//! Redaction on SQLite: the conformance scenarios, through a writer and a reader of one
//! database.

use std::sync::Arc;

use crate::storage_errors::StorageErrors;
use crate::store::LedgerWriter;
use crate::store::conformance;
use crate::store::sqlite::{SqliteStore, SqliteWriter};

/// A fresh database's reader and writer (its log opened).
async fn store() -> (tempfile::TempDir, SqliteStore, SqliteWriter) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = SqliteStore::open(&path, Arc::new(StorageErrors::default()))
        .await
        .unwrap();
    let mut writer = SqliteWriter::open(&path, Default::default(), 0)
        .await
        .unwrap();
    writer.open_log().await.unwrap();
    (dir, store, writer)
}

#[tokio::test]
async fn redaction_removes_payload_and_lookups_and_keeps_hashes() {
    let (_dir, store, mut writer) = store().await;
    conformance::redaction_removes_payload_and_lookups_and_keeps_hashes(&mut writer, &store).await;
}

#[tokio::test]
async fn a_failed_batch_redacts_nothing() {
    let (_dir, store, mut writer) = store().await;
    conformance::a_failed_batch_redacts_nothing(&mut writer, &store).await;
}
