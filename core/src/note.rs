//! C2SP signed notes with Ed25519 signatures (signature type 0x01): signer and
//! verifier key strings, signing, and opening a note against a trusted key.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::signature::Ed25519KeyPair;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Signature type byte of Ed25519 note signatures.
const ED25519_TYPE: u8 = 0x01;
/// Every signature line starts with an EM DASH (U+2014) and a space.
const SIGNATURE_LINE_PREFIX: &str = "\u{2014} ";
/// Prefix of a signer key string.
const SIGNER_KEY_PREFIX: &str = "PRIVATE+KEY+";
/// Notes with more signature lines are refused (the Go limit; C2SP asks for at least 16).
const MAX_SIGNATURE_LINES: usize = 100;

/// Why a key string, a note or a signature was refused.
#[derive(Debug, thiserror::Error)]
pub enum NoteError {
    /// A key name was empty or contained '+', whitespace or a control character.
    #[error(
        "invalid key name {0:?}: must be non-empty, without '+', whitespace or control characters"
    )]
    BadKeyName(String),
    /// A signer or verifier key string did not have the expected shape.
    #[error("malformed key: {0}")]
    MalformedKey(&'static str),
    /// A key of a type other than Ed25519 (0x01).
    #[error("unsupported key type {0:#04x}: only Ed25519 (0x01) is supported")]
    UnsupportedKeyType(u8),
    /// The key ID in a key string does not belong to its name and key.
    #[error("key ID {0} does not match the key name and public key")]
    KeyIdMismatch(String),
    /// Text to sign was empty, lacked a final newline, or had a blank line or control character.
    #[error("note text must end with a newline and have no blank lines or control characters")]
    BadText,
    /// A signed note did not have the signed-note shape.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// A signature by the trusted key did not verify.
    #[error("invalid signature for key {0}")]
    InvalidSignature(String),
    /// No signature line was by the trusted key.
    #[error("note has no signature by key {0}")]
    NotSignedBy(String),
}

/// The key ID: the first 4 bytes of SHA-256(name || "\n" || 0x01 || public key).
pub fn key_id(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update(b"\n")
        .chain_update([ED25519_TYPE])
        .chain_update(public_key)
        .finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

fn check_name(name: &str) -> Result<(), NoteError> {
    let bad_char = |c: char| c == '+' || c.is_whitespace() || c.is_control();
    if name.is_empty() || name.contains(bad_char) {
        return Err(NoteError::BadKeyName(name.to_owned()));
    }
    Ok(())
}

/// Parses the 8 lowercase hex digits of a key ID.
fn parse_key_id(hex_id: &str) -> Result<[u8; 4], NoteError> {
    let lowercase_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    let mut id = [0u8; 4];
    if hex_id.len() != 8 || !hex_id.bytes().all(lowercase_hex) {
        return Err(NoteError::MalformedKey(
            "key ID must be 8 lowercase hex digits",
        ));
    }
    hex::decode_to_slice(hex_id, &mut id)
        .map_err(|_| NoteError::MalformedKey("key ID must be 8 lowercase hex digits"))?;
    Ok(id)
}

/// Decodes base64(0x01 || 32 key bytes).
fn decode_typed_key(key_b64: &str) -> Result<[u8; 32], NoteError> {
    let bytes = STANDARD
        .decode(key_b64)
        .map_err(|_| NoteError::MalformedKey("key is not valid base64"))?;
    let (&key_type, key) = bytes
        .split_first()
        .ok_or(NoteError::MalformedKey("key is empty"))?;
    if key_type != ED25519_TYPE {
        return Err(NoteError::UnsupportedKeyType(key_type));
    }
    <[u8; 32]>::try_from(key).map_err(|_| NoteError::MalformedKey("Ed25519 key must be 32 bytes"))
}

fn encode_typed_key(key: &[u8; 32]) -> String {
    let mut bytes = Vec::with_capacity(33);
    bytes.push(ED25519_TYPE);
    bytes.extend_from_slice(key);
    STANDARD.encode(bytes)
}

fn check_key_id(name: &str, claimed: [u8; 4], public_key: &[u8; 32]) -> Result<(), NoteError> {
    if key_id(name, public_key) == claimed {
        Ok(())
    } else {
        Err(NoteError::KeyIdMismatch(hex::encode(claimed)))
    }
}

/// A named Ed25519 key that signs notes. `Debug` shows the name and key ID only.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    key: SigningKey,
    /// The same key in AWS-LC, which signs in less than half the time of `key` on x86-64
    /// (every ingest receipt is a signature); Ed25519 signatures are deterministic, so the
    /// bytes are the same.
    signing: Arc<Ed25519KeyPair>,
    key_id: [u8; 4],
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &hex::encode(self.key_id))
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// A signer named `name` with the Ed25519 private key `seed`.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<NoteSigner, NoteError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(&seed);
        let public = key.verifying_key();
        let signing = Ed25519KeyPair::from_seed_and_public_key(&seed, public.as_bytes())
            .map_err(|_| NoteError::MalformedKey("AWS-LC refused the Ed25519 seed"))?;
        Ok(NoteSigner {
            name: name.to_owned(),
            key_id: key_id(name, public.as_bytes()),
            key,
            signing: Arc::new(signing),
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>` and checks the key ID.
    /// The base64 part may itself contain '+'.
    pub fn parse(skey: &str) -> Result<NoteSigner, NoteError> {
        let rest = skey
            .strip_prefix(SIGNER_KEY_PREFIX)
            .ok_or(NoteError::MalformedKey(
                "signer key must start with PRIVATE+KEY+",
            ))?;
        let mut fields = rest.splitn(3, '+');
        let (Some(name), Some(hex_id), Some(seed_b64)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(NoteError::MalformedKey(
                "signer key must be PRIVATE+KEY+<name>+<id>+<key>",
            ));
        };
        let claimed = parse_key_id(hex_id)?;
        let signer = NoteSigner::from_seed(name, decode_typed_key(seed_b64)?)?;
        if signer.key_id != claimed {
            return Err(NoteError::KeyIdMismatch(hex_id.to_owned()));
        }
        Ok(signer)
    }

    /// The signer key string accepted by [`NoteSigner::parse`]. It holds the private key.
    pub fn to_skey_string(&self) -> String {
        format!(
            "{SIGNER_KEY_PREFIX}{}+{}+{}",
            self.name,
            hex::encode(self.key_id),
            encode_typed_key(self.key.as_bytes())
        )
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The matching verifier.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// Signs `text` (non-empty, ending with a newline, no blank lines, no control
    /// characters but newlines) and returns the signed note: the text, a blank line,
    /// and `— <name> <base64(key ID || signature)>`.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let mut sig = Vec::with_capacity(68);
        sig.extend_from_slice(&self.key_id);
        sig.extend_from_slice(&self.sign_bytes(text.as_bytes()));
        Ok(format!(
            "{text}\n{SIGNATURE_LINE_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(sig)
        ))
    }

    /// A raw Ed25519 signature of `msg`.
    pub fn sign_bytes(&self, msg: &[u8]) -> [u8; 64] {
        self.signing
            .sign(msg)
            .as_ref()
            .try_into()
            .expect("an Ed25519 signature is 64 bytes")
    }
}

fn has_bad_control_char(text: &str) -> bool {
    text.chars().any(|c| c < ' ' && c != '\n')
}

fn check_text(text: &str) -> Result<(), NoteError> {
    let well_formed = text.ends_with('\n')
        && !text.starts_with('\n')
        && !text.contains("\n\n")
        && !has_bad_control_char(text);
    if well_formed {
        Ok(())
    } else {
        Err(NoteError::BadText)
    }
}

/// A named Ed25519 public key that verifies notes. `Display` gives the verifier
/// key string `<name>+<hex key ID>+<base64(0x01 || public key)>`.
#[derive(Clone, Debug, PartialEq)]
pub struct NoteVerifier {
    name: String,
    key_id: [u8; 4],
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses `<name>+<hex key ID>+<base64(0x01 || public key)>` and checks the key ID.
    pub fn parse(vkey: &str) -> Result<NoteVerifier, NoteError> {
        let mut fields = vkey.splitn(3, '+');
        let (Some(name), Some(hex_id), Some(key_b64)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(NoteError::MalformedKey(
                "verifier key must be <name>+<id>+<key>",
            ));
        };
        check_name(name)?;
        let key_id = parse_key_id(hex_id)?;
        let public_key = decode_typed_key(key_b64)?;
        check_key_id(name, key_id, &public_key)?;
        let key = VerifyingKey::from_bytes(&public_key)
            .map_err(|_| NoteError::MalformedKey("not an Ed25519 public key"))?;
        Ok(NoteVerifier {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key ID.
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// The raw Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Checks a raw Ed25519 signature of `msg` (strict verification).
    pub fn verify_bytes(&self, msg: &[u8], sig: &[u8; 64]) -> Result<(), NoteError> {
        self.key
            .verify_strict(msg, &Signature::from_bytes(sig))
            .map_err(|_| NoteError::InvalidSignature(self.to_string()))
    }

    fn signed(&self, line: &SignatureLine<'_>) -> bool {
        line.name == self.name && line.key_id == self.key_id
    }

    /// Checks a note signature; a signature of the wrong length is simply invalid.
    fn verify_note_signature(&self, text: &str, sig: &[u8]) -> Result<(), NoteError> {
        let sig = <&[u8; 64]>::try_from(sig)
            .map_err(|_| NoteError::InvalidSignature(self.to_string()))?;
        self.verify_bytes(text.as_bytes(), sig)
    }
}

impl fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id),
            encode_typed_key(self.key.as_bytes())
        )
    }
}

/// One parsed signature line: `— <name> <base64(key ID || signature)>`.
struct SignatureLine<'a> {
    name: &'a str,
    key_id: [u8; 4],
    signature: Vec<u8>,
}

impl<'a> SignatureLine<'a> {
    fn parse(line: &'a str) -> Result<SignatureLine<'a>, NoteError> {
        let malformed = NoteError::Malformed("bad signature line");
        let (name, sig_b64) = line
            .strip_prefix(SIGNATURE_LINE_PREFIX)
            .and_then(|rest| rest.split_once(' '))
            .ok_or(malformed)?;
        check_name(name).map_err(|_| NoteError::Malformed("bad key name in signature line"))?;
        let bytes = STANDARD
            .decode(sig_b64)
            .map_err(|_| NoteError::Malformed("signature is not valid base64"))?;
        if bytes.len() < 5 {
            return Err(NoteError::Malformed("signature too short"));
        }
        let (id, signature) = bytes.split_at(4);
        Ok(SignatureLine {
            name,
            key_id: [id[0], id[1], id[2], id[3]],
            signature: signature.to_vec(),
        })
    }
}

/// Splits a signed note into its text (with its final newline) and signature lines.
fn split_note(signed: &str) -> Result<(&str, Vec<&str>), NoteError> {
    if has_bad_control_char(signed) {
        return Err(NoteError::Malformed("control character"));
    }
    let split = signed
        .rfind("\n\n")
        .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
    let (text, signatures) = (&signed[..=split], &signed[split + 2..]);
    let signatures = signatures
        .strip_suffix('\n')
        .ok_or(NoteError::Malformed("signatures must end with a newline"))?;
    let lines: Vec<&str> = signatures.split('\n').collect();
    if lines.len() > MAX_SIGNATURE_LINES {
        return Err(NoteError::Malformed("too many signatures"));
    }
    Ok((text, lines))
}

/// Opens a signed note: returns the text if at least one signature line is by
/// `verifier` (same name and key ID) and all such lines verify (strictly).
/// Lines by other keys are ignored, but must still be well formed.
pub fn open(signed: &str, verifier: &NoteVerifier) -> Result<String, NoteError> {
    let (text, lines) = split_note(signed)?;
    let mut verified = false;
    for line in lines {
        let line = SignatureLine::parse(line)?;
        if verifier.signed(&line) {
            verifier.verify_note_signature(text, &line.signature)?;
            verified = true;
        }
    }
    if !verified {
        return Err(NoteError::NotSignedBy(verifier.to_string()));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> NoteSigner {
        NoteSigner::from_seed("example.com/log", [7; 32]).unwrap()
    }

    proptest::proptest! {
        #[test]
        fn signatures_are_the_bytes_of_ed25519_dalek(seed: [u8; 32], msg: Vec<u8>) {
            use ed25519_dalek::Signer;
            let signer = NoteSigner::from_seed("example.com/log", seed).unwrap();
            let expected = SigningKey::from_bytes(&seed).sign(&msg).to_bytes();
            proptest::prop_assert_eq!(signer.sign_bytes(&msg), expected);
        }
    }

    #[test]
    fn names_are_validated() {
        for bad in ["", "a+b", "a b", "a\u{00a0}b", "a\tb", "a\u{1}b"] {
            assert!(matches!(
                NoteSigner::from_seed(bad, [1; 32]),
                Err(NoteError::BadKeyName(_))
            ));
        }
        assert!(NoteSigner::from_seed("ok/name—é", [1; 32]).is_ok());
    }

    #[test]
    fn sign_refuses_malformed_text() {
        for bad in [
            "",
            "no newline",
            "\nleading blank\n",
            "a\n\nb\n",
            "a\n\n",
            "tab\there\n",
        ] {
            assert!(
                matches!(signer().sign(bad), Err(NoteError::BadText)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn sign_then_open_round_trips() {
        let signer = signer();
        let signed = signer.sign("hello\nworld\n").unwrap();
        assert_eq!(open(&signed, &signer.verifier()).unwrap(), "hello\nworld\n");
    }

    #[test]
    fn skey_and_vkey_round_trip() {
        let signer = signer();
        let again = NoteSigner::parse(&signer.to_skey_string()).unwrap();
        assert_eq!(again.verifier(), signer.verifier());
        let vkey = signer.verifier().to_string();
        assert_eq!(NoteVerifier::parse(&vkey).unwrap(), signer.verifier());
    }

    #[test]
    fn debug_does_not_show_the_private_key() {
        let signer = signer();
        let skey = signer.to_skey_string();
        let secret = skey.rsplit('+').next().unwrap();
        let debug = format!("{signer:?}");
        assert!(debug.contains("example.com/log"));
        assert!(!debug.contains(secret));
    }

    #[test]
    fn raw_signatures_verify_strictly() {
        let signer = signer();
        let mut sig = signer.sign_bytes(b"msg");
        signer.verifier().verify_bytes(b"msg", &sig).unwrap();
        assert!(signer.verifier().verify_bytes(b"msh", &sig).is_err());
        sig[0] ^= 1;
        assert!(signer.verifier().verify_bytes(b"msg", &sig).is_err());
    }

    #[test]
    fn same_name_other_key_is_ignored() {
        let signer = signer();
        let other = NoteSigner::from_seed("example.com/log", [8; 32]).unwrap();
        let signed = other.sign("text\n").unwrap();
        assert!(matches!(
            open(&signed, &signer.verifier()),
            Err(NoteError::NotSignedBy(_))
        ));
    }
}
