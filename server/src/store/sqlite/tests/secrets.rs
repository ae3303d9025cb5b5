//! The log key and the pseudonym secret must be the ones the database was written with.

use std::path::Path;

use tokenledger_core::checkpoint::Checkpoint;
use tokenledger_core::merkle;
use tokenledger_core::note::NoteSigner;
use tokenledger_core::pseudonym::LedgerSecret;

use crate::config::{Config, DB_FILE};
use crate::data_dir::open_secrets;
use crate::store::ownership::{check_ledger_secret, check_log_key};
use crate::store::sqlite::{SqliteStore, connection};

/// A new database holding one signed checkpoint of the empty tree with `root`.
async fn database_with_checkpoint(
    dir: &Path,
    signer: &NoteSigner,
    root: merkle::Hash,
) -> SqliteStore {
    let pool = connection::open(&dir.join(DB_FILE)).await.unwrap();
    let checkpoint = Checkpoint {
        origin: signer.name().to_string(),
        size: 0,
        root,
        extensions: Vec::new(),
    };
    let note = checkpoint.sign(signer).unwrap();
    sqlx::query("INSERT INTO checkpoints (size, note, created_at) VALUES (0, ?, 0)")
        .bind(note)
        .execute(&pool)
        .await
        .unwrap();
    SqliteStore::over(pool)
}

#[tokio::test]
async fn the_log_key_must_have_signed_the_stored_tree() {
    let dir = tempfile::tempdir().unwrap();
    let key = |seed| NoteSigner::from_seed("example.org/log", [seed; 32]).unwrap();
    let store = database_with_checkpoint(dir.path(), &key(1), merkle::empty_root()).await;
    check_log_key(&store, &key(1).verifier()).await.unwrap();
    let err = check_log_key(&store, &key(2).verifier()).await.unwrap_err();
    assert!(err.to_string().contains("another log's"), "{err}");

    let other = tempfile::tempdir().unwrap();
    let forged = merkle::leaf_hash(b"not the empty tree");
    let store = database_with_checkpoint(other.path(), &key(1), forged).await;
    let err = check_log_key(&store, &key(1).verifier()).await.unwrap_err();
    assert!(err.to_string().contains("stored tree"), "{err}");
}

#[tokio::test]
async fn the_ledger_secret_must_give_the_stored_pseudonyms() {
    let dir = tempfile::tempdir().unwrap();
    let pool = connection::open(&dir.path().join(DB_FILE)).await.unwrap();
    let store = SqliteStore::over(pool.clone());
    let secret = LedgerSecret::from_bytes([7; 32]);
    check_ledger_secret(&store, &LedgerSecret::from_bytes([8; 32]))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO pseudonyms (pseudonym, site, vo, person_id, created_at) \
         VALUES (?, 'CERN-PROD', 'atlas', 'pe-1', 0)",
    )
    .bind(secret.pseudonym("CERN-PROD", "atlas", "pe-1"))
    .execute(&pool)
    .await
    .unwrap();
    check_ledger_secret(&store, &secret).await.unwrap();
    let err = check_ledger_secret(&store, &LedgerSecret::from_bytes([8; 32]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("another ledger's"), "{err}");
}

#[tokio::test]
async fn no_key_is_made_for_a_database_that_has_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let signer = NoteSigner::from_seed("example.org/log", [1; 32]).unwrap();
    let store = database_with_checkpoint(dir.path(), &signer, merkle::empty_root()).await;
    let mut config = Config::load(None).unwrap();
    config.server.data_dir = dir.path().to_path_buf();
    let err = open_secrets(&config, &store, &"the test database")
        .await
        .unwrap_err();
    let err = err.to_string();
    assert!(err.contains("log.key is missing"), "{err}");
    assert!(err.contains("0 entries and a signed checkpoint"), "{err}");
    assert!(!config.log_key_path().exists() && !config.ledger_secret_path().exists());
}
