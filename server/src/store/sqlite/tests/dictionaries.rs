//! The leaf codec's storage: dictionaries written with the first leaves they compress, found
//! again by another process, and raw leaves sampled again after a restart.

use std::sync::Arc;

use sqlx::SqliteConnection;

use crate::store::leaf_codec::LeafDecoders;
use crate::store::leaf_codec::tests::leaves;
use crate::store::sqlite::script::SqlScript;
use crate::store::sqlite::{connection, dictionaries};

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
