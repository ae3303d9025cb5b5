//! The leaf codec's storage: dictionaries written with the first leaves they compress, found
//! again by another process, and raw leaves sampled again after a restart; dictionaries
//! trained on training samples, and those of before replaced.

use std::sync::Arc;

use sqlx::SqliteConnection;

use crate::storage_errors::StorageErrors;
use crate::store::conformance::{self, TestLog};
use crate::store::leaf_codec::LeafDecoders;
use crate::store::leaf_codec::tests::{
    assert_holds_nobody, dictionary_of_leaves, holds, leaves, train_on_alice_among_others,
};
use crate::store::sqlite::script::SqlScript;
use crate::store::sqlite::{SqliteStore, SqliteWriter, connection, dictionaries};
use crate::store::{LedgerReader, LedgerWriter, LogRecord};

async fn database() -> (tempfile::TempDir, sqlx::SqlitePool, SqliteConnection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let pool = connection::open(&path).await.unwrap();
    let writer = connection::open_writer(&path).await.unwrap();
    (dir, pool, writer)
}

#[tokio::test]
async fn leaves_are_raw_until_a_dictionary_is_trained_then_compressed_and_decoded() {
    let (_dir, pool, mut conn) = database().await;
    let decoders = Arc::new(LeafDecoders::default());
    let mut encoder = dictionaries::load_encoder(&mut conn, decoders.clone(), 1000)
        .await
        .unwrap();
    let all = leaves(1500);
    let mut stored = Vec::new();
    for leaf in &all[..1000] {
        assert_eq!(encoder.samples_wanted(), 1000 - stored.len());
        let s = encoder.encode(leaf).unwrap();
        assert_eq!(s.dictionary, None);
        assert_eq!(&s.bytes, leaf);
        stored.push(s);
    }
    assert_eq!(encoder.samples_wanted(), 0, "training has started");
    let dictionary = encoder.wait_for_training().await.unwrap().expect("trained");
    assert_eq!(dictionary.id, 1);
    assert_eq!(
        encoder.pending_dictionary().unwrap().map(|d| d.id),
        Some(1),
        "pending until its transaction commits"
    );
    for leaf in &all[1000..] {
        let s = encoder.encode(leaf).unwrap();
        assert_eq!(s.dictionary, Some(1));
        assert!(s.bytes.len() * 2 < leaf.len(), "{} bytes", s.bytes.len());
        stored.push(s);
    }
    assert!(
        !decoders.knows(1),
        "the readers learn a dictionary once its transaction commits"
    );
    encoder.committed();
    assert!(encoder.pending_dictionary().unwrap().is_none());
    assert!(decoders.knows(1));
    for (leaf, s) in all.iter().zip(&stored) {
        assert_eq!(
            &decoders.decode(s.dictionary, s.bytes.clone()).unwrap(),
            leaf
        );
    }

    // Another process finds the dictionary in the database.
    let mut script = SqlScript::begin();
    dictionaries::push_dictionary(&mut script, &dictionary, 1);
    script.commit(&mut conn).await.unwrap();
    let reloaded = dictionaries::load_decoders(&pool).await.unwrap();
    let last = stored.last().unwrap();
    assert_eq!(
        &reloaded
            .decode(last.dictionary, last.bytes.clone())
            .unwrap(),
        all.last().unwrap()
    );
    let mut again = dictionaries::load_encoder(&mut conn, Arc::new(reloaded), 1000)
        .await
        .unwrap();
    assert_eq!(again.samples_wanted(), 0);
    assert_eq!(again.encode(&all[0]).unwrap().dictionary, Some(1));
}

#[tokio::test]
async fn an_encoder_resumes_sampling_from_the_raw_leaves_in_the_database() {
    let (_dir, _pool, mut conn) = database().await;
    for (i, leaf) in leaves(600).iter().enumerate() {
        sqlx::query("INSERT INTO entries (idx, leaf) VALUES (?, ?)")
            .bind(i as i64)
            .bind(leaf)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let decoders = Arc::new(LeafDecoders::default());
    let encoder = dictionaries::load_encoder(&mut conn, decoders.clone(), 1000)
        .await
        .unwrap();
    assert_eq!(encoder.samples_wanted(), 400);
    let mut encoder = dictionaries::load_encoder(&mut conn, decoders, 500)
        .await
        .unwrap();
    assert_eq!(encoder.samples_wanted(), 0, "enough raw leaves: training");
    assert!(encoder.wait_for_training().await.unwrap().is_some());
    let mut never = dictionaries::load_encoder(&mut conn, Arc::new(LeafDecoders::default()), 0)
        .await
        .unwrap();
    assert_eq!(never.encode(b"{}").unwrap().dictionary, None);
}

/// A dictionary is trained on training samples: however often the leaves it learns from name
/// one person (a `sub`, extra claims, her own group and client), it holds nothing of her, yet
/// keeps what 40 people share (the audience), and is stored as scrubbed; the leaves still
/// compress and decode.
#[tokio::test]
async fn a_dictionary_holds_nothing_of_the_person_its_leaves_name() {
    let (_dir, pool, mut conn) = database().await;
    let decoders = Arc::new(LeafDecoders::default());
    let mut encoder = dictionaries::load_encoder(&mut conn, decoders.clone(), 1000)
        .await
        .unwrap();
    let (dictionary, encoded) = train_on_alice_among_others(&mut encoder).await;
    let mut script = SqlScript::begin();
    dictionaries::push_dictionary(&mut script, &dictionary, 1);
    script.commit(&mut conn).await.unwrap();
    encoder.committed();

    let stored = sqlx::query_as("SELECT dictionary, scrubbed FROM leaf_dictionaries")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_holds_nobody(stored, &dictionary, &encoded, &decoders);
}

/// A ledger from before training samples: its newest dictionary was trained on leaves
/// themselves. The writer keeps compressing with it, samples the leaves it appends, and
/// switches to a scrubbed dictionary trained on them; the old leaves still read back, and
/// the old dictionary goes with the redaction of its last entry.
#[tokio::test]
async fn a_dictionary_of_leaves_themselves_is_replaced_then_goes_with_its_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = SqliteStore::open(&path, Arc::new(StorageErrors::default()))
        .await
        .unwrap();
    let mut writer = SqliteWriter::open(&path, store.leaves.clone(), 0)
        .await
        .unwrap();
    writer.open_log().await.unwrap();
    let mut log = TestLog::default();
    log.append(&mut writer, conformance::issuances_of("alice", 0..300))
        .await
        .unwrap();
    writer.close().await.unwrap();
    // As a writer of before stored them: dictionary 1 trained on these leaves, the leaves
    // compressed with it, the dictionary written by the INSERT of before.
    let (dictionary, frames) = dictionary_of_leaves(1, &log.leaves);
    assert!(holds(&dictionary, "alice-1"));
    sqlx::query("INSERT INTO leaf_dictionaries (id, dictionary, created_at) VALUES (1, ?, 0)")
        .bind(&dictionary)
        .execute(&store.pool)
        .await
        .unwrap();
    for (index, frame) in frames.iter().enumerate() {
        sqlx::query("UPDATE entries SET leaf = ?, dictionary = 1 WHERE idx = ?")
            .bind(frame)
            .bind(index as i64)
            .execute(&store.pool)
            .await
            .unwrap();
    }
    store.leaves.install(1, &dictionary).unwrap();

    let mut writer = SqliteWriter::open(&path, store.leaves.clone(), 200)
        .await
        .unwrap();
    writer.open_log().await.unwrap();
    assert_eq!(
        writer.samples_wanted(),
        200,
        "dictionary 1 is to be replaced"
    );
    for start in (300..500).step_by(50) {
        log.append(
            &mut writer,
            conformance::issuances_of("bob", start..start + 50),
        )
        .await
        .unwrap();
    }
    let trained = writer
        .wait_for_training()
        .await
        .unwrap()
        .expect("a scrubbed dictionary");
    assert_eq!(trained.id, 2);
    log.append(&mut writer, conformance::issuances_of("carol", 500..510))
        .await
        .unwrap();

    let dictionaries = async || -> Vec<(i64, i64)> {
        sqlx::query_as("SELECT id, scrubbed FROM leaf_dictionaries ORDER BY id")
            .fetch_all(&store.pool)
            .await
            .unwrap()
    };
    assert_eq!(dictionaries().await, vec![(1, 0), (2, 1)]);
    let uses: Vec<(Option<i64>, i64)> = sqlx::query_as(
        "SELECT dictionary, COUNT(*) FROM entries GROUP BY dictionary ORDER BY dictionary",
    )
    .fetch_all(&store.pool)
    .await
    .unwrap();
    assert_eq!(uses, vec![(Some(1), 500), (Some(2), 10)]);
    for sub in ["alice-1", "bob-3"] {
        assert!(!holds(&trained.bytes, sub), "{sub}");
    }
    let read: Vec<Vec<u8>> = store
        .entries(0, 510)
        .await
        .unwrap()
        .into_iter()
        .map(|record| match record {
            LogRecord::Leaf((_, leaf)) => leaf,
            LogRecord::Redacted(r) => panic!("entry {} redacted", r.index),
        })
        .collect();
    assert_eq!(read, log.leaves);

    log.append(&mut writer, vec![conformance::redact(&[(0, 499)], 7)])
        .await
        .unwrap();
    assert_eq!(
        dictionaries().await,
        vec![(1, 0), (2, 1)],
        "entry 499 uses 1"
    );
    log.append(&mut writer, vec![conformance::redact(&[(499, 500)], 8)])
        .await
        .unwrap();
    assert_eq!(dictionaries().await, vec![(2, 1)]);
}
