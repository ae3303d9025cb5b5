//! Whether a store is this ledger's: its newest checkpoint signed by the log key, not larger
//! than the log and over the stored tree; its pseudonyms those of the ledger secret. Start-up
//! and restores refuse a store that fails; fsck reports it.

use anyhow::bail;
use tokenledger_core::checkpoint::Checkpoint;
use tokenledger_core::merkle::{self, Hash};
use tokenledger_core::note::NoteVerifier;
use tokenledger_core::pseudonym::LedgerSecret;

use super::{LedgerReader, StoreError};

/// Checks the newest checkpoint `reader` holds against the log (see [`open`] and
/// [`check_root`]). `Ok(None)` if no checkpoint is stored.
pub async fn check(
    reader: &dyn LedgerReader,
    verifier: &NoteVerifier,
) -> Result<Option<Checkpoint>, StoreError> {
    let log_size = reader.log_size().await?;
    let Some((size, note)) = reader.newest_checkpoint().await? else {
        return Ok(None);
    };
    let checkpoint = open(size, &note, verifier, log_size)?;
    let hashes = reader.read_hashes(&merkle::tree_hash_indexes(size)).await?;
    check_root(&checkpoint, &hashes)?;
    Ok(Some(checkpoint))
}

/// The stored checkpoint row `(size, note)`, if it is signed by `verifier`, says the size of
/// its row, and is not larger than the log's `log_size` entries; else
/// [`StoreError::Corrupt`] saying what disagrees.
pub fn open(
    size: u64,
    note: &str,
    verifier: &NoteVerifier,
    log_size: u64,
) -> Result<Checkpoint, StoreError> {
    let corrupt = |problem: String| Err(StoreError::Corrupt(problem));
    let checkpoint = match Checkpoint::open(note, verifier) {
        Ok(checkpoint) => checkpoint,
        Err(e) => {
            return corrupt(format!(
                "the newest checkpoint (size {size}) does not open with the log key `{}` \
                 ({e}): the key is another log's, or the checkpoint was altered",
                verifier.name()
            ));
        }
    };
    if checkpoint.size != size {
        return corrupt(format!(
            "the newest checkpoint row says size {size} but its signed note says {}",
            checkpoint.size
        ));
    }
    if size > log_size {
        return corrupt(format!(
            "the newest checkpoint is of {size} entries but the log holds {log_size}: \
             entries signed for were lost"
        ));
    }
    Ok(checkpoint)
}

/// The checkpoint's root must be the root of the stored tree at its size, computed from
/// `hashes`, the stored hashes at `merkle::tree_hash_indexes(size)` (read as proofs read
/// them).
pub fn check_root(checkpoint: &Checkpoint, hashes: &[Hash]) -> Result<(), StoreError> {
    let size = checkpoint.size;
    let stored_root =
        merkle::tree_hash(size, hashes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    if stored_root != checkpoint.root {
        return Err(StoreError::Corrupt(format!(
            "the newest checkpoint (size {size}) has root {} but the stored tree at that size \
             has root {}: the stored hashes were changed or damaged",
            checkpoint.root.to_base64(),
            stored_root.to_base64()
        )));
    }
    Ok(())
}

/// The newest checkpoint stored must verify under `verifier` and hold the root of the
/// stored tree at its size ([`check`], which fsck makes too).
pub async fn check_log_key(
    reader: &dyn LedgerReader,
    verifier: &NoteVerifier,
) -> anyhow::Result<()> {
    check(reader, verifier).await.map_err(|e| match e {
        StoreError::Corrupt(problem) => anyhow::anyhow!(
            "{problem}. Refusing to use this database: run `tokenledger-server fsck` and \
                 restore the data directory from a backup"
        ),
        other => other.into(),
    })?;
    Ok(())
}

/// A pseudonym stored must be the one `secret` gives.
pub async fn check_ledger_secret(
    reader: &dyn LedgerReader,
    secret: &LedgerSecret,
) -> anyhow::Result<()> {
    if let Some((pseudonym, site, vo, person)) = reader.any_pseudonym().await?
        && secret.pseudonym(&site, &vo, &person) != pseudonym.as_str()
    {
        bail!(
            "the stored pseudonym {pseudonym} is not this secret's: the secret is another \
             ledger's"
        );
    }
    Ok(())
}
