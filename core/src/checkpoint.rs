//! C2SP tlog-checkpoint bodies (origin, tree size, root hash, extension lines),
//! signed and opened as signed notes.

use crate::merkle::{Hash, MerkleError};
use crate::note::{self, NoteError, NoteSigner, NoteVerifier};

/// A checkpoint: the log's origin line, its size and root hash, and any extension lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's unique origin line, e.g. `example.com/log`.
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// Root hash of the tree of `size` leaves.
    pub root: Hash,
    /// Optional extra lines after the root, each non-empty.
    pub extensions: Vec<String>,
}

/// Why a checkpoint was refused.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The checkpoint text did not have the tlog-checkpoint shape.
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
    /// The root line was not base64 of 32 bytes.
    #[error("bad checkpoint root hash: {0}")]
    BadRoot(#[from] MerkleError),
    /// Signing or opening the note failed.
    #[error(transparent)]
    Note(#[from] NoteError),
}

/// Checks that `line` is a single non-empty line.
fn check_line(line: &str, what: &'static str) -> Result<(), CheckpointError> {
    if line.is_empty() || line.contains('\n') {
        Err(CheckpointError::Malformed(what))
    } else {
        Ok(())
    }
}

/// Parses a decimal tree size: ASCII digits, no sign, no leading zeros (except "0").
fn parse_size(line: &str) -> Result<u64, CheckpointError> {
    let digits_only = !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || (line.len() > 1 && line.starts_with('0')) {
        return Err(CheckpointError::Malformed(
            "tree size must be a decimal number without leading zeros",
        ));
    }
    line.parse()
        .map_err(|_| CheckpointError::Malformed("tree size is too large"))
}

impl Checkpoint {
    /// The checkpoint body: `<origin>\n<size>\n<base64 root>\n`, then each extension line.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            self.root.to_base64()
        );
        for extension in &self.extensions {
            text.push_str(extension);
            text.push('\n');
        }
        text
    }

    /// Parses a checkpoint body strictly: non-empty origin, canonical decimal size,
    /// base64 root of exactly 32 bytes, non-empty extension lines, final newline.
    pub fn parse(text: &str) -> Result<Checkpoint, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::Malformed("must end with a newline"))?;
        let mut lines = body.split('\n');
        let mut next_line = |missing| lines.next().ok_or(CheckpointError::Malformed(missing));
        let origin = next_line("missing origin")?;
        check_line(origin, "empty origin line")?;
        let size = parse_size(next_line("missing tree size")?)?;
        let root = Hash::from_base64(next_line("missing root hash")?)?;
        let extensions = lines
            .map(|line| check_line(line, "empty extension line").map(|()| line.to_owned()))
            .collect::<Result<_, _>>()?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }

    fn check_lines(&self) -> Result<(), CheckpointError> {
        check_line(&self.origin, "origin must be one non-empty line")?;
        self.extensions
            .iter()
            .try_for_each(|line| check_line(line, "extension must be one non-empty line"))
    }

    /// Signs the checkpoint body as a signed note.
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, CheckpointError> {
        self.check_lines()?;
        Ok(signer.sign(&self.to_text())?)
    }

    /// Opens a signed checkpoint with `verifier` (see [`note::open`]) and parses its body.
    pub fn open(signed: &str, verifier: &NoteVerifier) -> Result<Checkpoint, CheckpointError> {
        Checkpoint::parse(&note::open(signed, verifier)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::empty_root;

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: "example.com/log".to_owned(),
            size: 42,
            root: empty_root(),
            extensions: vec!["ext one".to_owned(), "— ext two".to_owned()],
        }
    }

    #[test]
    fn text_round_trips_with_extensions() {
        let cp = checkpoint();
        let text = cp.to_text();
        assert!(text.ends_with("\next one\n— ext two\n"));
        assert_eq!(Checkpoint::parse(&text).unwrap(), cp);
    }

    #[test]
    fn strict_parsing() {
        let root = empty_root().to_base64();
        let bad = [
            format!("\n1\n{root}\n"),
            format!("o\n01\n{root}\n"),
            format!("o\n+1\n{root}\n"),
            format!("o\n-1\n{root}\n"),
            format!("o\n 1\n{root}\n"),
            format!("o\n\n{root}\n"),
            format!("o\n18446744073709551616\n{root}\n"),
            format!("o\n1\n{root}"),
            format!("o\n1\n{root}\n\n"),
            format!("o\n1\n{root}\next\n\n"),
            format!("o\n1\n{}\n", &root[..40]),
            "o\n1\nAAAA\n".to_owned(),
            "o\n1\n".to_owned(),
            "o\n".to_owned(),
            String::new(),
        ];
        for text in bad {
            assert!(Checkpoint::parse(&text).is_err(), "{text:?}");
        }
        let zero = Checkpoint::parse(&format!("o\n0\n{root}\n")).unwrap();
        assert_eq!(zero.size, 0);
        let max = Checkpoint::parse(&format!("o\n18446744073709551615\n{root}\n")).unwrap();
        assert_eq!(max.size, u64::MAX);
    }

    #[test]
    fn sign_refuses_multi_line_fields() {
        let signer = NoteSigner::from_seed("example.com/log", [3; 32]).unwrap();
        let mut cp = checkpoint();
        cp.origin = "two\nlines".to_owned();
        assert!(cp.sign(&signer).is_err());
        let mut cp = checkpoint();
        cp.extensions.push(String::new());
        assert!(cp.sign(&signer).is_err());
    }

    #[test]
    fn sign_then_open() {
        let signer = NoteSigner::from_seed("example.com/log", [3; 32]).unwrap();
        let signed = checkpoint().sign(&signer).unwrap();
        let opened = Checkpoint::open(&signed, &signer.verifier()).unwrap();
        assert_eq!(opened, checkpoint());
    }
}
