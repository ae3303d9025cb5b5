//! The log's Ed25519 signing key: created on first start in a 0600 file, refused if others can read it.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokenledger_core::note::NoteSigner;
use tokenledger_core::pseudonym::LedgerSecret;

/// Loads the signing key from `path`, creating it (0600) under `origin` if it does not exist.
/// Refuses a key file readable by group or others, and one made for another origin.
pub fn load_or_create_log_key(path: &Path, origin: &str) -> anyhow::Result<NoteSigner> {
    if !path.exists() {
        let signer = NoteSigner::from_seed(origin, random_bytes()?)
            .context("log.origin is not a valid key name")?;
        write_secret_file(path, &signer.to_skey_string())?;
        tracing::info!(path = %path.display(), "created the log signing key");
        return Ok(signer);
    }
    load_log_key(path, origin)
}

/// Loads the signing key from `path`, refusing a file readable by group or others and a key
/// made for another origin.
pub fn load_log_key(path: &Path, origin: &str) -> anyhow::Result<NoteSigner> {
    let signer = read_log_key(path)?;
    if signer.name() != origin {
        bail!(
            "{} was created for origin `{}` but log.origin is `{origin}`; \
             changing the origin would break every witness of this log",
            path.display(),
            signer.name()
        );
    }
    Ok(signer)
}

/// Reads the existing signing key at `path` (refused if others can read it), whatever its
/// origin; creates nothing.
pub fn read_log_key(path: &Path) -> anyhow::Result<NoteSigner> {
    let text = read_secret_file(path)?;
    NoteSigner::parse(text.trim())
        .with_context(|| format!("{} is not a tokenledger log key", path.display()))
}

/// Loads the pseudonym secret `K` from `path`, creating it (0600) on first start. It must be
/// backed up with the database: without it no pseudonym or tag can be recomputed.
pub fn load_or_create_ledger_secret(path: &Path) -> anyhow::Result<LedgerSecret> {
    if !path.exists() {
        let secret = random_bytes::<32>()?;
        write_secret_file(path, &STANDARD.encode(secret))?;
        tracing::info!(path = %path.display(), "created the pseudonym secret");
        return Ok(LedgerSecret::from_bytes(secret));
    }
    load_ledger_secret(path)
}

/// Loads the pseudonym secret `K` from `path`, refusing a file readable by group or others.
pub fn load_ledger_secret(path: &Path) -> anyhow::Result<LedgerSecret> {
    let text = read_secret_file(path)?;
    let bytes: [u8; 32] = STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("{} does not hold 32 base64 bytes", path.display()))?;
    Ok(LedgerSecret::from_bytes(bytes))
}

/// Fills an array from the operating system's random source.
pub fn random_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| anyhow::anyhow!("no randomness available: {e}"))?;
    Ok(buf)
}

/// A new random person id: `pe-` and 26 base32 characters (128 bits).
pub fn new_person_id() -> anyhow::Result<String> {
    let bytes = random_bytes::<16>()?;
    Ok(format!(
        "pe-{}",
        data_encoding::BASE32_NOPAD.encode(&bytes).to_lowercase()
    ))
}

/// Writes a new file readable only by its owner (0600); never overwrites.
pub fn write_secret_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    Ok(())
}

/// Reads a secret file, refusing it if group or others may read or write it.
pub fn read_secret_file(path: &Path) -> anyhow::Result<String> {
    let mode = fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "{} has mode {:o}: a secret file must be readable by its owner only (chmod 600)",
            path.display(),
            mode & 0o777
        );
    }
    fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_ids_are_pe_and_26_base32_characters() {
        let id = new_person_id().unwrap();
        assert!(id.starts_with("pe-"), "{id}");
        assert_eq!(id.len(), 29);
        assert!(
            id[3..]
                .bytes()
                .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
        );
        assert_ne!(id, new_person_id().unwrap());
    }

    #[test]
    fn key_is_created_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.key");
        let first = load_or_create_log_key(&path, "example.org/log").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = load_or_create_log_key(&path, "example.org/log").unwrap();
        assert_eq!(first.verifier(), again.verifier());
    }

    #[test]
    fn ledger_secret_survives_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.secret");
        let first = load_or_create_ledger_secret(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let again = load_or_create_ledger_secret(&path).unwrap();
        assert_eq!(first.as_bytes(), again.as_bytes());
    }

    #[test]
    fn readable_key_and_other_origin_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.key");
        load_or_create_log_key(&path, "example.org/log").unwrap();
        assert!(load_or_create_log_key(&path, "other.org/log").is_err());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create_log_key(&path, "example.org/log").unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
