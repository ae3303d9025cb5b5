//! Leaf dictionaries on PostgreSQL: trained on training samples and stored as scrubbed; a
//! dictionary of before, trained on leaves themselves, replaced and then gone with its entries.

use std::sync::Arc;

use sqlx::{Connection, PgConnection};

use super::{ledger, locked_writer, open_url};
use crate::store::conformance::{self, TestLog};
use crate::store::leaf_codec::LeafDecoders;
use crate::store::leaf_codec::tests::{
    assert_holds_nobody, dictionary_of_leaves, holds, train_on_alice_among_others,
};
use crate::store::postgres::encoder;
use crate::store::{LedgerReader, LedgerWriter, LogRecord};

/// As SQLite's: however often the leaves a dictionary learns from name one person, it holds
/// nothing of her, yet keeps what 40 people share, and is stored as scrubbed; the leaves
/// still compress and decode.
#[tokio::test]
async fn a_dictionary_holds_nothing_of_the_person_its_leaves_name() {
    let (_db, url, pool) = ledger().await;
    let mut conn = PgConnection::connect_with(&url.hosts()[0]).await.unwrap();
    let decoders = Arc::new(LeafDecoders::default());
    let mut encoder = encoder::load_encoder(&mut conn, decoders.clone(), 1000)
        .await
        .unwrap();
    let (dictionary, encoded) = train_on_alice_among_others(&mut encoder).await;
    encoder::insert_dictionary(&mut conn, &dictionary, 1)
        .await
        .unwrap();
    encoder.committed();

    let stored = sqlx::query_as("SELECT dictionary, scrubbed FROM leaf_dictionaries")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_holds_nobody(stored, &dictionary, &encoded, &decoders);
}

/// As SQLite's: the writer of a ledger whose dictionary was trained on leaves themselves
/// keeps compressing with it, samples the leaves it appends, and switches to a scrubbed
/// dictionary trained on them; the old leaves still read back, and the old dictionary goes
/// with the redaction of its last entry.
#[tokio::test]
async fn a_dictionary_of_leaves_themselves_is_replaced_then_goes_with_its_entries() {
    let (_db, url, pool) = ledger().await;
    let mut writer = locked_writer(&url, Arc::new(LeafDecoders::default()), 0).await;
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
    sqlx::query("INSERT INTO leaf_dictionaries (id, dictionary, created_at) VALUES (1, $1, 0)")
        .bind(&dictionary)
        .execute(&pool)
        .await
        .unwrap();
    let indexes: Vec<i64> = (0..frames.len() as i64).collect();
    sqlx::query(
        "UPDATE entries SET leaf = f.leaf, dictionary = 1 \
         FROM UNNEST($1::bigint[], $2::bytea[]) AS f(idx, leaf) WHERE entries.idx = f.idx",
    )
    .bind(&indexes)
    .bind(&frames)
    .execute(&pool)
    .await
    .unwrap();

    let store = open_url(&url).await;
    let mut writer = locked_writer(&url, Arc::new(LeafDecoders::default()), 200).await;
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
            .fetch_all(&pool)
            .await
            .unwrap()
    };
    assert_eq!(dictionaries().await, vec![(1, 0), (2, 1)]);
    let uses: Vec<(Option<i64>, i64)> = sqlx::query_as(
        "SELECT dictionary, COUNT(*) FROM entries GROUP BY dictionary ORDER BY dictionary",
    )
    .fetch_all(&pool)
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
