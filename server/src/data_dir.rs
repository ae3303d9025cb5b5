//! The data directory: created 0700 (it holds the database and both secrets), and the log
//! key and pseudonym secret in it, which must be the ones its database was written with.

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use anyhow::{Context, bail};
use tokenledger_core::checkpoint::Checkpoint;
use tokenledger_core::merkle::Frontier;
use tokenledger_core::note::NoteSigner;
use tokenledger_core::pseudonym::LedgerSecret;

use crate::config::{Config, DB_FILE};
use crate::keys;
use crate::store::ownership::{check_ledger_secret, check_log_key};
use crate::store::{CheckpointRow, LedgerReader, WriterLease};

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

/// The log key and the pseudonym secret of the store `reader` reads. They are created only
/// for a log without entries or checkpoints: for any other a new key would sign checkpoints
/// no witness knows and a new secret would change every pseudonym, so a missing file is an
/// error (a restored database needs the files it was backed up beside; every server of a
/// shared database needs the files of the first). Either is refused if the database shows it
/// belongs to another ledger ([`check_log_key`], [`check_ledger_secret`]).
/// `database` says where the log is, for messages.
pub async fn open_secrets(
    config: &Config,
    reader: &dyn LedgerReader,
    database: &dyn std::fmt::Display,
) -> anyhow::Result<(NoteSigner, LedgerSecret)> {
    config.check_file_paths()?;
    let size = reader.log_size().await?;
    let signed = reader.newest_checkpoint().await?.is_some();
    if size > 0 || signed {
        let held = match signed {
            true => format!("{size} entries and a signed checkpoint"),
            false => format!("{size} entries"),
        };
        for path in [config.log_key_path(), config.ledger_secret_path()] {
            if !path.exists() {
                bail!(
                    "{} is missing, but the log in {database} has {held}: put back the copy \
                     kept with the backups, or copy it from another server of this database \
                     (mode 0600; `tokenledger-server restore --help`)",
                    path.display(),
                );
            }
        }
    }
    let signer = keys::load_or_create_log_key(&config.log_key_path(), &config.log.origin)?;
    let secret = keys::load_or_create_ledger_secret(&config.ledger_secret_path())?;
    check_log_key(reader, &signer.verifier())
        .await
        .with_context(|| format!("checking {}", config.log_key_path().display()))?;
    check_ledger_secret(reader, &secret)
        .await
        .with_context(|| format!("checking {}", config.ledger_secret_path().display()))?;
    Ok((signer, secret))
}

/// On a shared database (PostgreSQL), the log key and ledger secret are made only by the one
/// server that holds the writer lease while the database is empty, and that server signs and
/// stores the empty tree's checkpoint before it lets the lease go: every other server then
/// finds a signed log and refuses to start without copies of those files
/// ([`open_secrets`]). Two servers started at once on a new database thus never make two
/// keys: the one that does not get the lease refuses to start. Nothing is done when both
/// files exist or the database holds entries or a checkpoint.
pub async fn create_shared_secrets(
    config: &Config,
    reader: &dyn LedgerReader,
    lease: &dyn WriterLease,
    holder: &str,
    now_micros: i64,
) -> anyhow::Result<()> {
    config.check_file_paths()?;
    let (key_path, secret_path) = (config.log_key_path(), config.ledger_secret_path());
    if key_path.exists() && secret_path.exists() {
        return Ok(());
    }
    if reader.log_size().await? > 0 || reader.newest_checkpoint().await?.is_some() {
        return Ok(());
    }
    let Some(mut writer) = lease.try_acquire(holder).await? else {
        bail!(
            "{} is missing and another server holds the writer lease of this new database: \
             copy its log key and pseudonym secret to {} and {} (mode 0600)",
            key_path.display(),
            key_path.display(),
            secret_path.display()
        );
    };
    let frontier = writer.open_log().await?;
    if frontier.size() > 0 || reader.newest_checkpoint().await?.is_some() {
        writer.close().await?;
        return Ok(());
    }
    let signer = keys::load_or_create_log_key(&key_path, &config.log.origin)?;
    keys::load_or_create_ledger_secret(&secret_path)?;
    let checkpoint = Checkpoint {
        origin: config.log.origin.clone(),
        size: 0,
        root: Frontier::new().root(),
        extensions: Vec::new(),
    };
    let note = checkpoint
        .sign(&signer)
        .map_err(|e| anyhow::anyhow!("signing the empty tree's checkpoint: {e}"))?;
    writer
        .write_checkpoint(CheckpointRow {
            size: 0,
            note: &note,
            created_at: now_micros,
        })
        .await?;
    writer.close().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

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
