//! The writer's side of the leaf codec's storage on PostgreSQL: the encoder of a writer taking
//! up the log (the dictionaries other writers trained included), and each new dictionary,
//! written in the transaction of the first leaves compressed with it.

use std::sync::Arc;

use sqlx::PgConnection;

use super::log_reads;
use crate::store::StoreError;
use crate::store::leaf_codec::{LeafDecoders, LeafEncoder, NewDictionary, StoredDictionary};

/// The writer's encoder for the database behind `conn`: the newest dictionary if there is
/// one (and whether it is scrubbed); otherwise, with `train_after` > 0, sampling the newest raw leaves (see
/// [`LeafEncoder::new`]). Every stored dictionary is installed into `decoders` first: an
/// earlier writer (another server) may have trained some since they were loaded.
pub async fn load_encoder(
    conn: &mut PgConnection,
    decoders: Arc<LeafDecoders>,
    train_after: usize,
) -> Result<LeafEncoder, StoreError> {
    let stored = log_reads::install_dictionaries(&mut *conn, &decoders, None).await?;
    let newest = match stored.into_iter().last() {
        Some((id, bytes)) => {
            let (scrubbed,): (i64,) =
                sqlx::query_as("SELECT scrubbed FROM leaf_dictionaries WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut *conn)
                    .await?;
            Some(StoredDictionary {
                id,
                bytes,
                scrubbed: scrubbed != 0,
            })
        }
        None => None,
    };
    let mut raw = Vec::new();
    if newest.is_none() && train_after > 0 {
        let rows: Vec<(Vec<u8>,)> = sqlx::query_as(
            "SELECT leaf FROM entries WHERE dictionary IS NULL ORDER BY idx DESC LIMIT $1",
        )
        .bind(train_after as i64)
        .fetch_all(&mut *conn)
        .await?;
        raw = rows.into_iter().map(|(leaf,)| leaf).collect();
    }
    LeafEncoder::new(decoders, train_after, newest, raw)
}

/// Writes the dictionary the leaves of this transaction are compressed with (again, if an
/// earlier transaction that wrote it failed), trained on scrubbed samples.
pub async fn insert_dictionary(
    conn: &mut PgConnection,
    dictionary: &NewDictionary,
    created_at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO leaf_dictionaries (id, dictionary, created_at, scrubbed) \
         VALUES ($1, $2, $3, 1) ON CONFLICT (id) DO NOTHING",
    )
    .bind(dictionary.id)
    .bind(&dictionary.bytes)
    .bind(created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes the dictionaries no stored entry uses any more (their entries all redacted), but
/// for the newest: the writer compresses with it (or with a newer one that its transaction
/// wrote first). A dictionary holds fragments of the leaves it was trained on. Cheap while
/// there is one dictionary; with several, each older one costs a scan of `entries` until a
/// use is found.
pub async fn delete_unused(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM leaf_dictionaries \
         WHERE id < (SELECT max(id) FROM leaf_dictionaries) \
         AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.dictionary = leaf_dictionaries.id)",
    )
    .execute(conn)
    .await?;
    Ok(())
}
