//! `tokenledger verify`: check the log's signed checkpoint, its consistency with the last
//! checkpoint this verifier trusted (kept in a state file, like a witness), and optionally
//! that one entry is included, recomputing its leaf hash from the served bytes.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use tokenledger_core::checkpoint::Checkpoint;
use tokenledger_core::merkle::{self, Hash};
use tokenledger_core::note::NoteVerifier;
use tokenledger_core::wire::{ConsistencyProof, EntriesPage, InclusionProof};

use crate::client::{Client, ClientError};

/// How a verification ended, other than in success.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The log or its answers did not check out (exit 1).
    #[error("verification failed: {0}")]
    Failed(String),
    /// Bad arguments, unreadable files, or the server could not be asked (exit 2).
    #[error("{0}")]
    Usage(String),
}

impl From<ClientError> for VerifyError {
    fn from(e: ClientError) -> VerifyError {
        VerifyError::Usage(e.to_string())
    }
}

/// What was verified.
#[derive(Serialize, Debug)]
pub struct Verified {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// Size of the previously trusted checkpoint, if a state file had one.
    pub consistent_with: Option<u64>,
    /// The entry whose inclusion was checked.
    pub entry: Option<u64>,
}

/// The inputs of one verification.
pub struct VerifyRequest<'a> {
    pub client: &'a Client,
    pub log_key: &'a str,
    pub state: Option<&'a Path>,
    pub entry: Option<u64>,
}

/// Runs every check; stores the new checkpoint in the state file only if all passed.
pub fn run(req: &VerifyRequest<'_>) -> Result<Verified, VerifyError> {
    let verifier = NoteVerifier::parse(req.log_key.trim())
        .map_err(|e| VerifyError::Usage(format!("--log-key: {e}")))?;
    let note = req.client.get_text("/v1/log/checkpoint")?;
    let checkpoint = Checkpoint::open(&note, &verifier)
        .map_err(|e| VerifyError::Failed(format!("checkpoint: {e}")))?;
    if checkpoint.origin != verifier.name() {
        return Err(VerifyError::Failed(format!(
            "checkpoint origin `{}` is not the key's name `{}`",
            checkpoint.origin,
            verifier.name()
        )));
    }
    let trusted = match req.state {
        Some(path) => read_state(path, &verifier)?,
        None => None,
    };
    if let Some(old) = &trusted {
        check_consistency(req.client, old, &checkpoint)?;
    }
    if let Some(index) = req.entry {
        check_inclusion(req.client, index, &checkpoint)?;
    }
    if let Some(path) = req.state {
        write_state(path, &note)?;
    }
    Ok(Verified {
        origin: checkpoint.origin,
        size: checkpoint.size,
        root: checkpoint.root,
        consistent_with: trusted.map(|c| c.size),
        entry: req.entry,
    })
}

fn check_consistency(
    client: &Client,
    old: &Checkpoint,
    new: &Checkpoint,
) -> Result<(), VerifyError> {
    if new.size < old.size {
        return Err(VerifyError::Failed(format!(
            "the log shrank from {} to {} entries",
            old.size, new.size
        )));
    }
    let proof: ConsistencyProof = client.get_json(&format!(
        "/v1/log/proof/consistency?from={}&to={}",
        old.size, new.size
    ))?;
    if (proof.from, proof.to) != (old.size, new.size) {
        return Err(VerifyError::Failed(
            "the server answered a proof for other sizes".into(),
        ));
    }
    merkle::verify_consistency(old.size, new.size, &old.root, &new.root, &proof.hashes).map_err(
        |e| {
            VerifyError::Failed(format!(
                "checkpoint of size {} is not consistent with the trusted one of size {}: {e}",
                new.size, old.size
            ))
        },
    )
}

fn check_inclusion(
    client: &Client,
    index: u64,
    checkpoint: &Checkpoint,
) -> Result<(), VerifyError> {
    if index >= checkpoint.size {
        return Err(VerifyError::Usage(format!(
            "--entry {index} is not in the checkpoint (size {})",
            checkpoint.size
        )));
    }
    let page: EntriesPage =
        client.get_json(&format!("/v1/log/entries?start={index}&end={}", index + 1))?;
    let served = page
        .entries
        .into_iter()
        .find(|e| e.index == index)
        .ok_or_else(|| VerifyError::Failed(format!("the server did not return entry {index}")))?;
    let leaf = STANDARD
        .decode(&served.leaf)
        .map_err(|e| VerifyError::Failed(format!("entry {index}: leaf is not base64: {e}")))?;
    let decoded: serde_json::Value = serde_json::from_slice(&leaf)
        .map_err(|e| VerifyError::Failed(format!("entry {index}: leaf is not JSON: {e}")))?;
    if decoded != served.entry {
        return Err(VerifyError::Failed(format!(
            "entry {index}: the decoded entry differs from its leaf bytes"
        )));
    }
    let leaf_hash = merkle::leaf_hash(&leaf);
    let proof: InclusionProof = client.get_json(&format!(
        "/v1/log/proof/inclusion?index={index}&size={}",
        checkpoint.size
    ))?;
    merkle::verify_inclusion(
        index,
        checkpoint.size,
        &leaf_hash,
        &proof.hashes,
        &checkpoint.root,
    )
    .map_err(|e| {
        VerifyError::Failed(format!(
            "entry {index} is not included in the checkpoint: {e}"
        ))
    })
}

fn read_state(path: &Path, verifier: &NoteVerifier) -> Result<Option<Checkpoint>, VerifyError> {
    let note = match std::fs::read_to_string(path) {
        Ok(note) => note,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(VerifyError::Usage(format!(
                "reading {}: {e}",
                path.display()
            )));
        }
    };
    Checkpoint::open(&note, verifier).map(Some).map_err(|e| {
        VerifyError::Failed(format!(
            "the trusted checkpoint in {} does not verify with this key: {e}",
            path.display()
        ))
    })
}

/// Replaces the state file atomically: write a temporary file beside it, fsync, rename.
fn write_state(path: &Path, note: &str) -> Result<(), VerifyError> {
    let usage = |e: std::io::Error| VerifyError::Usage(format!("writing {}: {e}", path.display()));
    let mut tmp = PathBuf::from(path);
    tmp.as_mut_os_string().push(".tmp");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&tmp).map_err(usage)?;
        file.write_all(note.as_bytes()).map_err(usage)?;
        file.sync_all().map_err(usage)?;
    }
    std::fs::rename(&tmp, path).map_err(usage)
}
