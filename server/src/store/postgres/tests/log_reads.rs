//! The log read back: size, stored hashes and proofs, entries checked against their stored
//! leaf hashes, checkpoints, and leaves compressed with a dictionary trained after the store
//! was opened (by another server's writer).

use std::sync::Arc;

use tokenledger_core::merkle::{self, leaf_hash, stored_hash_index};

use super::TestLog;
use crate::storage_errors::StorageErrors;
use crate::store::leaf_codec::tests::leaves;
use crate::store::leaf_codec::{LeafDecoders, LeafEncoder};
use crate::store::postgres::{DatabaseUrl, PostgresStore};
use crate::store::{LedgerReader, LogRecord, StoreError};

#[tokio::test]
async fn size_hashes_proofs_entries_and_checkpoints() {
    let (_db, store) = super::store().await;
    assert_eq!(store.log_size().await.unwrap(), 0);
    assert!(store.newest_checkpoint().await.unwrap().is_none());
    assert!(store.entries(0, 10).await.unwrap().is_empty());
    let mut log = TestLog::new(store.pool());
    let leaves: Vec<Vec<u8>> = (0..70).map(|n| format!("leaf {n}").into_bytes()).collect();
    for leaf in &leaves {
        log.append(leaf).await;
    }
    assert_eq!(store.log_size().await.unwrap(), 70);
    let read = store.entries(3, 6).await.unwrap();
    assert_eq!(
        read,
        (3..6)
            .map(|n| LogRecord::Leaf((n, leaves[n as usize].clone())))
            .collect::<Vec<_>>()
    );
    let hashes = store
        .read_hashes(&[stored_hash_index(0, 5), stored_hash_index(0, 1)])
        .await
        .unwrap();
    assert_eq!(hashes, [leaf_hash(&leaves[5]), leaf_hash(&leaves[1])]);
    assert!(matches!(
        store.read_hashes(&[1 << 40]).await,
        Err(StoreError::Corrupt(_))
    ));

    let frontier = store.frontier(70).await.unwrap();
    let proof = store.inclusion_proof(33, 70).await.unwrap();
    assert_eq!(proof.leaf_hash, leaf_hash(&leaves[33]));
    merkle::verify_inclusion(33, 70, &proof.leaf_hash, &proof.hashes, &frontier.root()).unwrap();

    for (size, note) in [(10, "note 10"), (70, "note 70"), (40, "note 40")] {
        sqlx::query("INSERT INTO checkpoints (size, note, created_at) VALUES ($1, $2, 0)")
            .bind(size)
            .bind(note)
            .execute(&store.pool())
            .await
            .unwrap();
    }
    assert_eq!(
        store.newest_checkpoint().await.unwrap(),
        Some((70, "note 70".to_string()))
    );
}

/// A leaf whose bytes were changed, or whose hash row is gone, is an integrity error naming
/// its index, counted; untouched leaves read as they are.
#[tokio::test]
async fn a_leaf_that_fails_its_check_is_never_returned() {
    let db = tokenledger_testpg::database();
    let errors = Arc::new(StorageErrors::default());
    let url = DatabaseUrl::parse(db.url()).unwrap();
    let store = PostgresStore::open(&url, None, errors.clone())
        .await
        .unwrap();
    let mut log = TestLog::new(store.pool());
    for n in 0..4u64 {
        log.append(format!("{{\"n\":{n}}}").as_bytes()).await;
    }
    assert_eq!(store.entries(0, 4).await.unwrap().len(), 4);
    sqlx::query("UPDATE entries SET leaf = '\\x7b226e223a397d' WHERE idx = 1")
        .execute(&store.pool())
        .await
        .unwrap();
    sqlx::query("DELETE FROM hashes WHERE idx = $1")
        .bind(stored_hash_index(0, 3) as i64)
        .execute(&store.pool())
        .await
        .unwrap();
    for (range, index, problem) in [
        ((0, 4), 1, "the leaf and its stored leaf hash disagree"),
        ((3, 4), 3, "stored leaf hash is missing"),
    ] {
        match store.entries(range.0, range.1).await {
            Err(StoreError::Integrity {
                index: i,
                problem: p,
            }) => {
                assert_eq!(i, index);
                assert!(p.contains(problem), "{p}");
            }
            other => panic!("entry {index}: {other:?}"),
        }
    }
    assert_eq!(
        store.entries(2, 3).await.unwrap()[0].leaf(),
        Some(&b"{\"n\":2}"[..])
    );
    assert_eq!(errors.integrity_total(), 2);
}

/// Dictionaries stored before the store opened are loaded with it; one trained later (by
/// the writer of another server) is loaded when a leaf that uses it is first read.
#[tokio::test]
async fn leaves_of_a_dictionary_trained_later_are_decoded() {
    let (db, store) = super::store().await;
    let mut encoder =
        LeafEncoder::new(Arc::new(LeafDecoders::default()), 1000, None, Vec::new()).unwrap();
    let all = leaves(1002);
    let mut log = TestLog::new(store.pool());
    for leaf in &all[..1000] {
        let stored = encoder.encode(leaf).unwrap();
        log.append_stored(leaf, &stored.bytes, stored.dictionary)
            .await;
    }
    let dictionary = encoder.wait_for_training().await.unwrap().expect("trained");
    sqlx::query("INSERT INTO leaf_dictionaries (id, dictionary, created_at) VALUES ($1, $2, 0)")
        .bind(dictionary.id)
        .bind(&dictionary.bytes)
        .execute(&store.pool())
        .await
        .unwrap();
    let stored = encoder.encode(&all[1000]).unwrap();
    assert_eq!(stored.dictionary, Some(dictionary.id));
    log.append_stored(&all[1000], &stored.bytes, stored.dictionary)
        .await;
    assert!(!store.decoders().knows(dictionary.id));
    assert_eq!(
        store.entries(1000, 1001).await.unwrap()[0].leaf(),
        Some(&all[1000][..])
    );
    assert!(store.decoders().knows(dictionary.id));

    let stored = encoder.encode(&all[1001]).unwrap();
    log.append_stored(&all[1001], &stored.bytes, stored.dictionary)
        .await;
    let reopened = super::open(&db).await;
    assert!(reopened.decoders().knows(dictionary.id), "loaded on open");
    assert_eq!(
        reopened.entries(1001, 1002).await.unwrap()[0].leaf(),
        Some(&all[1001][..])
    );
}
