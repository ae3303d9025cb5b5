//! The data directory: created 0700 (it holds the database and both secrets), and the log
//! key and pseudonym secret in it, which must be the ones its database was written with.

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use anyhow::{Context, bail};
use sqlx::{Sqlite, SqlitePool};
use tokenledger_core::note::{NoteSigner, NoteVerifier};
use tokenledger_core::pseudonym::LedgerSecret;

use crate::config::{Config, DB_FILE};
use crate::log_store::{self, StoreError};
use crate::{fsck, keys};

/// The data directory of the embedded default (`server.data_dir`), relative to the working
/// directory: `data`, so that a server run from a checkout keeps its files in one ignored
/// folder. A packaged server is given `--data-dir /var/lib/tokenledger` by its unit.
pub const DEFAULT_DATA_DIR: &str = "data";

/// Creates `dir` (and missing parents) with mode 0700; an existing directory is left as it is.
pub fn create(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))
}

/// Refuses to start a new log in the default data directory while the working directory
/// `cwd` holds a database: one made when the default was the working directory itself, which
/// the server would otherwise silently leave behind for an empty log with a new key.
pub fn refuse_a_database_left_in(cwd: &Path, config: &Config) -> anyhow::Result<()> {
    let default = config.server.data_dir == Path::new(DEFAULT_DATA_DIR);
    if default && !cwd.join(config.db_path()).exists() && cwd.join(DB_FILE).exists() {
        bail!(
            "the working directory holds {DB_FILE} (with log.key and ledger.secret), but the \
             default data directory is now `{DEFAULT_DATA_DIR}`: move those files into \
             `{DEFAULT_DATA_DIR}/` (mode 0700), or pass --data-dir ."
        );
    }
    Ok(())
}

/// The log key and the pseudonym secret of the database behind `pool`. They are created only
/// for a log without entries: for any other a new key would sign checkpoints no witness
/// knows and a new secret would change every pseudonym, so a missing file is an error (a
/// restored database needs the files it was backed up beside). Either is refused if the
/// database shows it belongs to another ledger ([`check_log_key`], [`check_ledger_secret`]).
pub async fn open_secrets(
    config: &Config,
    pool: &SqlitePool,
) -> anyhow::Result<(NoteSigner, LedgerSecret)> {
    let size = log_store::log_size(pool).await?;
    if size > 0 {
        for path in [config.log_key_path(), config.ledger_secret_path()] {
            if !path.exists() {
                bail!(
                    "{} is missing, but the log in {} has {size} entries: put back the copy \
                     kept with the backups (mode 0600; `tokenledger-server restore --help`)",
                    path.display(),
                    config.db_path().display()
                );
            }
        }
    }
    let signer = keys::load_or_create_log_key(&config.log_key_path(), &config.log.origin)?;
    let secret = keys::load_or_create_ledger_secret(&config.ledger_secret_path())?;
    check_log_key(pool, &signer.verifier())
        .await
        .with_context(|| format!("checking {}", config.log_key_path().display()))?;
    check_ledger_secret(pool, &secret)
        .await
        .with_context(|| format!("checking {}", config.ledger_secret_path().display()))?;
    Ok((signer, secret))
}

/// The newest checkpoint stored in the database must verify under `verifier` and hold the
/// root of the stored tree at its size (`fsck::check_newest_checkpoint`, which fsck runs
/// too).
pub async fn check_log_key<'c, E>(db: E, verifier: &NoteVerifier) -> anyhow::Result<()>
where
    E: sqlx::Acquire<'c, Database = Sqlite>,
{
    let mut conn = db.acquire().await?;
    let size = log_store::log_size(&mut *conn).await?;
    fsck::check_newest_checkpoint(&mut conn, verifier, size)
        .await
        .map_err(|e| match e {
            StoreError::Corrupt(problem) => anyhow::anyhow!(
                "{problem}. Refusing to use this database: run `tokenledger-server fsck` and \
                 restore the data directory from a backup"
            ),
            other => other.into(),
        })?;
    Ok(())
}

/// A pseudonym stored in the database must be the one `secret` gives.
pub async fn check_ledger_secret<'c, E>(db: E, secret: &LedgerSecret) -> anyhow::Result<()>
where
    E: sqlx::Acquire<'c, Database = Sqlite>,
{
    let mut conn = db.acquire().await?;
    let stored: Option<(String, String, String, String)> =
        sqlx::query_as("SELECT pseudonym, site, vo, person_id FROM pseudonyms LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    if let Some((pseudonym, site, vo, person)) = stored
        && secret.pseudonym(&site, &vo, &person) != pseudonym
    {
        bail!(
            "the stored pseudonym {pseudonym} is not this secret's: the secret is another \
             ledger's"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use tokenledger_core::checkpoint::Checkpoint;
    use tokenledger_core::merkle;

    /// A new database holding one signed checkpoint of the empty tree with `root`.
    async fn database_with_checkpoint(
        dir: &Path,
        signer: &NoteSigner,
        root: merkle::Hash,
    ) -> SqlitePool {
        let pool = crate::db::open(&dir.join(DB_FILE)).await.unwrap();
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
        pool
    }

    #[tokio::test]
    async fn the_log_key_must_have_signed_the_stored_tree() {
        let dir = tempfile::tempdir().unwrap();
        let key = |seed| NoteSigner::from_seed("example.org/log", [seed; 32]).unwrap();
        let pool = database_with_checkpoint(dir.path(), &key(1), merkle::empty_root()).await;
        check_log_key(&pool, &key(1).verifier()).await.unwrap();
        let err = check_log_key(&pool, &key(2).verifier()).await.unwrap_err();
        assert!(err.to_string().contains("another log's"), "{err}");

        let other = tempfile::tempdir().unwrap();
        let forged = merkle::leaf_hash(b"not the empty tree");
        let pool = database_with_checkpoint(other.path(), &key(1), forged).await;
        let err = check_log_key(&pool, &key(1).verifier()).await.unwrap_err();
        assert!(err.to_string().contains("stored tree"), "{err}");
    }

    #[tokio::test]
    async fn the_ledger_secret_must_give_the_stored_pseudonyms() {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::db::open(&dir.path().join(DB_FILE)).await.unwrap();
        let secret = LedgerSecret::from_bytes([7; 32]);
        check_ledger_secret(&pool, &LedgerSecret::from_bytes([8; 32]))
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
        check_ledger_secret(&pool, &secret).await.unwrap();
        let err = check_ledger_secret(&pool, &LedgerSecret::from_bytes([8; 32]))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("another ledger's"), "{err}");
    }

    #[test]
    fn the_embedded_default_data_dir_is_data() {
        let config = Config::load(None).unwrap();
        assert_eq!(config.server.data_dir, Path::new(DEFAULT_DATA_DIR));
    }

    #[test]
    fn a_database_in_the_working_directory_stops_a_new_log_in_the_default_dir() {
        let cwd = tempfile::tempdir().unwrap();
        let config = Config::load(None).unwrap();
        refuse_a_database_left_in(cwd.path(), &config).unwrap();
        std::fs::write(cwd.path().join(DB_FILE), b"").unwrap();
        let err = refuse_a_database_left_in(cwd.path(), &config).unwrap_err();
        assert!(err.to_string().contains("--data-dir ."), "{err}");
        create(&cwd.path().join(DEFAULT_DATA_DIR)).unwrap();
        std::fs::write(cwd.path().join(config.db_path()), b"").unwrap();
        refuse_a_database_left_in(cwd.path(), &config).unwrap();
    }

    #[test]
    fn a_new_data_dir_is_private_and_an_existing_one_is_kept() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("a/data");
        create(&dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
        create(&dir).unwrap();
        assert_eq!(mode(&dir), 0o750);
    }
}
