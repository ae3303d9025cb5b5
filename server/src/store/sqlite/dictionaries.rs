//! The SQL of the leaf codec's storage: the dictionaries leaves are compressed with, and the
//! raw leaves a new dictionary is trained on.

use std::sync::Arc;

use sqlx::{Executor, Sqlite, SqliteConnection};

use super::script::SqlScript;
use crate::store::StoreError;
use crate::store::leaf_codec::{LeafDecoders, LeafEncoder, NewDictionary, StoredDictionary};

/// The decoders of every dictionary stored in the database.
pub async fn load_decoders<'e>(
    db: impl Executor<'e, Database = Sqlite>,
) -> Result<LeafDecoders, StoreError> {
    let decoders = LeafDecoders::default();
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as("SELECT id, dictionary FROM leaf_dictionaries")
        .fetch_all(db)
        .await?;
    for (id, bytes) in rows {
        decoders.install(id, &bytes)?;
    }
    Ok(decoders)
}

/// The writer's encoder for the database behind `conn`: the newest dictionary if there is
/// one (and whether it is scrubbed); otherwise, with `train_after` > 0, sampling the newest
/// raw leaves (see [`LeafEncoder::new`]).
pub async fn load_encoder(
    conn: &mut SqliteConnection,
    decoders: Arc<LeafDecoders>,
    train_after: usize,
) -> Result<LeafEncoder, StoreError> {
    let newest: Option<(i64, Vec<u8>, i64)> = sqlx::query_as(
        "SELECT id, dictionary, scrubbed FROM leaf_dictionaries ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    let mut raw = Vec::new();
    if newest.is_none() && train_after > 0 {
        let rows: Vec<(Vec<u8>,)> = sqlx::query_as(
            "SELECT leaf FROM entries WHERE dictionary IS NULL ORDER BY idx DESC LIMIT ?",
        )
        .bind(train_after as i64)
        .fetch_all(&mut *conn)
        .await?;
        raw = rows.into_iter().map(|(leaf,)| leaf).collect();
    }
    let newest = newest.map(|(id, bytes, scrubbed)| StoredDictionary {
        id,
        bytes,
        scrubbed: scrubbed != 0,
    });
    LeafEncoder::new(decoders, train_after, newest, raw)
}

/// Queues the dictionary the leaves of this transaction are compressed with (again, if an
/// earlier transaction that wrote it failed), trained on scrubbed samples.
pub fn push_dictionary(script: &mut SqlScript, dictionary: &NewDictionary, created_at: i64) {
    script
        .statement(
            "INSERT OR IGNORE INTO leaf_dictionaries (id, dictionary, created_at, scrubbed) ",
        )
        .push_values([dictionary], |mut row, d| {
            row.push_bind(d.id)
                .push_bind(&d.bytes)
                .push_bind(created_at)
                .push_bind(1i64);
        });
}

/// Queues the deletion of the dictionaries no stored entry uses any more (their entries all
/// redacted), but for the newest: the writer compresses with it (or with a newer one that
/// its transaction writes first). A dictionary holds fragments of the leaves it was trained
/// on. Cheap while there is one dictionary; with several, each older one costs a scan of
/// `entries` until a use is found.
pub fn push_unused_removal(script: &mut SqlScript) {
    script.statement(
        "DELETE FROM leaf_dictionaries \
         WHERE id < (SELECT max(id) FROM leaf_dictionaries) \
         AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.dictionary = leaf_dictionaries.id)",
    );
}
