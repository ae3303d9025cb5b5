//! `tokenledger verify`: check the log's signed checkpoint, its consistency with the last
//! checkpoint this verifier trusted (kept in a state file, like a witness), and optionally
//! that one entry is included (recomputing its leaf hash from the served bytes) or that an
//! ingest receipt is signed by the log and its entry included.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use tokenledger_core::checkpoint::Checkpoint;
use tokenledger_core::merkle::{self, Hash};
use tokenledger_core::note::NoteVerifier;
use tokenledger_core::receipt::Receipt;
use tokenledger_core::wire::{
    Appended, ConsistencyProof, EntriesPage, InclusionProof, LineResult, LogEntryView,
    RedactedEntryView, ServedEntry, TokenResolution,
};

use crate::client::{Client, ClientError};
use crate::exit;

/// How a verification ended, other than in success.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The log or its answers did not check out (exit 1).
    #[error("verification failed: {0}")]
    Failed(String),
    /// Bad arguments, unreadable files, or the server could not be asked (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The server refused the credential (401) or the caller (403) (exit 4).
    #[error("{0}")]
    Refused(String),
}

impl From<ClientError> for VerifyError {
    fn from(e: ClientError) -> VerifyError {
        if e.is_refused() {
            VerifyError::Refused(e.to_string())
        } else {
            VerifyError::Usage(e.to_string())
        }
    }
}

impl VerifyError {
    pub fn code(&self) -> u8 {
        match self {
            VerifyError::Failed(_) => exit::NEGATIVE,
            VerifyError::Usage(_) => exit::ERROR,
            VerifyError::Refused(_) => exit::REFUSED,
        }
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
    /// That entry's redaction, if its bytes were removed: its stored leaf hash was checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry_redacted: Option<RedactedEntryView>,
    /// The receipt that was checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<ReceiptChecked>,
}

/// A receipt whose signature verified and whose entry is included in the checkpoint.
#[derive(Serialize, Debug)]
pub struct ReceiptChecked {
    pub index: u64,
    pub verified: bool,
}

/// The inputs of one verification.
pub struct VerifyRequest<'a> {
    pub client: &'a Client,
    pub log_key: &'a str,
    pub state: Option<&'a Path>,
    pub entry: Option<u64>,
    /// An ingest answer (`Appended`) whose receipt and inclusion to check.
    pub receipt: Option<&'a Appended>,
}

/// Runs every check; stores the new checkpoint in the state file only if all passed.
pub fn run(req: &VerifyRequest<'_>) -> Result<Verified, VerifyError> {
    let verifier = parse_log_key(req.log_key)?;
    if let Some(appended) = req.receipt {
        check_receipt_signature(appended, &verifier)?;
    }
    let note = req.client.get_text("/v1/log/checkpoint")?;
    let checkpoint = open_checkpoint(&note, &verifier)?;
    let trusted = match req.state {
        Some(path) => read_state(path, &verifier)?,
        None => None,
    };
    if let Some(old) = &trusted {
        check_consistency(req.client, old, &checkpoint)?;
    }
    let entry_redacted = match req.entry {
        Some(index) => check_inclusion(req.client, index, &checkpoint)?,
        None => None,
    };
    if let Some(appended) = req.receipt {
        check_receipt_inclusion(req.client, appended, &checkpoint)?;
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
        entry_redacted,
        receipt: req.receipt.map(|a| ReceiptChecked {
            index: a.index,
            verified: true,
        }),
    })
}

/// Reads a receipt file: one `Appended` object as the server answered it (a JSON object, or
/// one NDJSON answer line, possibly from `ingest --receipts`); `-` is standard input.
pub fn read_receipt(path: &Path) -> Result<Appended, VerifyError> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|e| VerifyError::Usage(format!("reading {}: {e}", path.display())))?;
    let unreadable = |e: serde_json::Error| {
        VerifyError::Usage(format!(
            "{} does not hold one ingest answer (index, leaf_hash, integrated_at, receipt): {e}",
            path.display()
        ))
    };
    match serde_json::from_str::<LineResult>(text.trim()).map_err(unreadable)? {
        LineResult::Appended(appended) => Ok(appended),
        LineResult::Rejected { error, .. } => Err(VerifyError::Usage(format!(
            "{} holds a rejected report ({}: {}), which has no receipt",
            path.display(),
            error.code,
            error.message
        ))),
    }
}

/// The receipt is the log key's signature over (origin, index, leaf hash, time).
fn check_receipt_signature(
    appended: &Appended,
    verifier: &NoteVerifier,
) -> Result<(), VerifyError> {
    let receipt = Receipt {
        origin: verifier.name().to_owned(),
        index: appended.index,
        leaf_hash: appended.leaf_hash,
        integrated_at: appended.integrated_at,
        signature: appended.receipt.clone(),
    };
    receipt
        .verify(verifier)
        .map_err(|e| VerifyError::Failed(format!("receipt of entry {}: {e}", appended.index)))
}

/// The receipt's (index, leaf hash) is included in the checkpoint (public proof, no credential).
fn check_receipt_inclusion(
    client: &Client,
    appended: &Appended,
    checkpoint: &Checkpoint,
) -> Result<(), VerifyError> {
    let index = appended.index;
    if index >= checkpoint.size {
        return Err(VerifyError::Failed(format!(
            "the receipt's entry {index} is beyond the checkpoint (size {})",
            checkpoint.size
        )));
    }
    let proof: InclusionProof = client.get_json(&format!(
        "/v1/log/proof/inclusion?index={index}&size={}",
        checkpoint.size
    ))?;
    if (proof.index, proof.size) != (index, checkpoint.size) {
        return Err(VerifyError::Failed(
            "the server answered a proof for another index or size".into(),
        ));
    }
    merkle::verify_inclusion(
        index,
        checkpoint.size,
        &appended.leaf_hash,
        &proof.hashes,
        &checkpoint.root,
    )
    .map_err(|e| {
        VerifyError::Failed(format!(
            "the receipt's entry {index} is not included in the checkpoint: {e}"
        ))
    })
}

/// Parses a pinned log key (`name+keyid+base64key`).
pub fn parse_log_key(key: &str) -> Result<NoteVerifier, VerifyError> {
    NoteVerifier::parse(key.trim()).map_err(|e| VerifyError::Usage(format!("--log-key: {e}")))
}

/// Opens a signed checkpoint with the pinned key; its origin must be the key's name.
fn open_checkpoint(note: &str, verifier: &NoteVerifier) -> Result<Checkpoint, VerifyError> {
    let checkpoint = Checkpoint::open(note, verifier)
        .map_err(|e| VerifyError::Failed(format!("checkpoint: {e}")))?;
    if checkpoint.origin != verifier.name() {
        return Err(VerifyError::Failed(format!(
            "checkpoint origin `{}` is not the key's name `{}`",
            checkpoint.origin,
            verifier.name()
        )));
    }
    Ok(checkpoint)
}

/// The leaf hash of a served entry, recomputed from its bytes, which must decode to the
/// entry served beside them.
fn served_leaf_hash(served: &ServedEntry) -> Result<Hash, VerifyError> {
    let index = served.index;
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
    Ok(merkle::leaf_hash(&leaf))
}

/// Checks a resolution answer offline: its checkpoint is signed by the pinned log key, and
/// the issuance it names (recomputed from the served bytes) is included in that checkpoint.
/// Returns the checkpoint.
pub fn check_resolution(
    answer: &TokenResolution,
    verifier: &NoteVerifier,
) -> Result<Checkpoint, VerifyError> {
    let checkpoint = open_checkpoint(&answer.checkpoint, verifier)?;
    let proof = &answer.inclusion_proof;
    let index = answer.issuance.index;
    if (proof.index, proof.size) != (index, checkpoint.size) {
        return Err(VerifyError::Failed(format!(
            "the proof is for entry {} at size {}, not entry {index} at the checkpoint's size {}",
            proof.index, proof.size, checkpoint.size
        )));
    }
    let leaf_hash = served_leaf_hash(&answer.issuance)?;
    merkle::verify_inclusion(
        index,
        checkpoint.size,
        &leaf_hash,
        &proof.hashes,
        &checkpoint.root,
    )
    .map_err(|e| {
        VerifyError::Failed(format!(
            "the issuance (entry {index}) is not included in the checkpoint: {e}"
        ))
    })?;
    Ok(checkpoint)
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

/// Checks that entry `index` is included in `checkpoint`: the leaf hash of its served bytes
/// or, for a redacted entry, the leaf hash served in their place, which must then be the one
/// the proof and the signed root commit to. Returns the redaction, if any.
fn check_inclusion(
    client: &Client,
    index: u64,
    checkpoint: &Checkpoint,
) -> Result<Option<RedactedEntryView>, VerifyError> {
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
        .find(|e| e.index() == index)
        .ok_or_else(|| VerifyError::Failed(format!("the server did not return entry {index}")))?;
    let (leaf_hash, redacted) = match served {
        LogEntryView::Served(served) => (served_leaf_hash(&served)?, None),
        LogEntryView::Redacted(redacted) => (redacted.leaf_hash, Some(redacted)),
    };
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
    })?;
    Ok(redacted)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::TrustAnchors;
    use tokenledger_core::note::NoteSigner;
    use tokenledger_core::wire::AppendStatus;

    const ORIGIN: &str = "ledger.example.org/log";

    fn signer() -> NoteSigner {
        NoteSigner::from_seed(ORIGIN, [9; 32]).unwrap()
    }

    fn appended(index: u64) -> Appended {
        let receipt = Receipt::sign(&signer(), index, Hash([3; 32]), 1_767_225_600_000_000);
        Appended {
            index,
            leaf_hash: receipt.leaf_hash,
            integrated_at: receipt.integrated_at,
            receipt: receipt.signature,
            status: AppendStatus::Created,
        }
    }

    #[test]
    fn a_receipt_signed_by_the_log_key_verifies() {
        let verifier = signer().verifier();
        check_receipt_signature(&appended(4), &verifier).unwrap();
        let mut moved = appended(4);
        moved.index = 5;
        let e = check_receipt_signature(&moved, &verifier).unwrap_err();
        assert!(matches!(e, VerifyError::Failed(_)), "{e}");
        let other = NoteSigner::from_seed(ORIGIN, [8; 32]).unwrap().verifier();
        assert!(matches!(
            check_receipt_signature(&appended(4), &other),
            Err(VerifyError::Failed(_))
        ));
    }

    #[test]
    fn a_receipt_beyond_the_checkpoint_fails_saying_so() {
        let checkpoint = Checkpoint {
            origin: ORIGIN.into(),
            size: 3,
            root: Hash([0; 32]),
            extensions: Vec::new(),
        };
        let client = Client::new("http://127.0.0.1:9", None, TrustAnchors::default());
        let e = check_receipt_inclusion(&client, &appended(3), &checkpoint).unwrap_err();
        assert!(matches!(e, VerifyError::Failed(_)));
        assert!(
            e.to_string()
                .contains("entry 3 is beyond the checkpoint (size 3)"),
            "{e}"
        );
    }

    /// A resolution of entry 1 of a two-entry log, with its proof and signed checkpoint.
    fn resolution() -> TokenResolution {
        use tokenledger_core::chain::{Chain, ChainLink};
        use tokenledger_core::wire::PersonView;
        let first = br#"{"type":"issuance","jti":"a"}"#;
        let second = br#"{"type":"issuance","jti":"b"}"#;
        let (h0, h1) = (merkle::leaf_hash(first), merkle::leaf_hash(second));
        let checkpoint = Checkpoint {
            origin: ORIGIN.into(),
            size: 2,
            root: merkle::node_hash(&h0, &h1),
            extensions: Vec::new(),
        };
        let link = ChainLink {
            index: 1,
            jti: "b".into(),
            iss: "i".into(),
            sub: "s".into(),
            client_id: None,
            grant_type: None,
            parent_jti: None,
            refresh_jti: None,
        };
        TokenResolution {
            resolution_index: 2,
            person: PersonView {
                id: "pe-1".into(),
                vo: "atlas".into(),
                identities: vec![],
            },
            issuance: ServedEntry {
                index: 1,
                leaf: STANDARD.encode(second),
                entry: serde_json::from_slice(second).unwrap(),
            },
            inclusion_proof: InclusionProof {
                index: 1,
                size: 2,
                leaf_hash: h1,
                hashes: vec![h0],
            },
            checkpoint: checkpoint.sign(&signer()).unwrap(),
            chain: Chain {
                links: vec![link],
                complete: true,
                stopped: None,
            },
            human: None,
        }
    }

    #[test]
    fn a_resolution_proof_is_checked_against_its_signed_checkpoint() {
        let verifier = signer().verifier();
        let checkpoint = check_resolution(&resolution(), &verifier).unwrap();
        assert_eq!(checkpoint.size, 2);

        let other = NoteSigner::from_seed(ORIGIN, [8; 32]).unwrap().verifier();
        let failed = |r: &TokenResolution, v: &NoteVerifier| {
            let e = check_resolution(r, v).unwrap_err();
            assert!(matches!(e, VerifyError::Failed(_)), "{e}");
            e.to_string()
        };
        assert!(failed(&resolution(), &other).contains("checkpoint"));
        let mut r = resolution();
        r.issuance.entry["jti"] = "c".into();
        assert!(failed(&r, &verifier).contains("differs from its leaf bytes"));
        let mut r = resolution();
        r.inclusion_proof.hashes[0] = Hash([5; 32]);
        assert!(failed(&r, &verifier).contains("not included"));
        let mut r = resolution();
        r.inclusion_proof.index = 0;
        assert!(failed(&r, &verifier).contains("the proof is for entry 0"));
        assert!(matches!(parse_log_key("nope"), Err(VerifyError::Usage(_))));
    }

    #[test]
    fn receipt_files_hold_one_answer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("receipt.json");
        let pretty = serde_json::to_string_pretty(&appended(2)).unwrap();
        std::fs::write(&path, pretty).unwrap();
        assert_eq!(read_receipt(&path).unwrap(), appended(2));

        let mut line = serde_json::to_value(appended(2)).unwrap();
        line["file"] = "audit.log".into();
        line["line"] = 7.into();
        std::fs::write(&path, format!("{line}\n")).unwrap();
        assert_eq!(read_receipt(&path).unwrap(), appended(2));

        let rejected = r#"{"line": 1, "error": {"code": "invalid_token", "message": "bad"}}"#;
        std::fs::write(&path, rejected).unwrap();
        let e = read_receipt(&path).unwrap_err();
        assert!(matches!(e, VerifyError::Usage(_)) && e.to_string().contains("rejected"));

        for bad in ["", "{}", "not json", "[1]"] {
            std::fs::write(&path, bad).unwrap();
            assert!(
                matches!(read_receipt(&path), Err(VerifyError::Usage(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            read_receipt(&dir.path().join("missing")),
            Err(VerifyError::Usage(_))
        ));
    }
}
