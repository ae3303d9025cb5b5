//! Signed ingest receipts: the log key's Ed25519 promise that an issuance was
//! accepted at an index, so the issuer can later demand an inclusion proof.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::merkle::Hash;
use crate::note::{NoteSigner, NoteVerifier};

/// First line of every signed receipt message, naming the format and its version.
const RECEIPT_HEADER: &str = "tokenledger receipt v1";

/// Why a receipt was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReceiptError {
    /// The receipt names another log than the verifier's key.
    #[error("receipt is from log {found:?}, expected {expected:?}")]
    WrongOrigin {
        /// The verifier's key name.
        expected: String,
        /// The receipt's origin.
        found: String,
    },
    /// The signature is not canonical standard base64.
    #[error("receipt signature is not valid base64")]
    BadSignatureEncoding,
    /// The signature does not decode to 64 bytes.
    #[error("receipt signature is {0} bytes, expected 64")]
    BadSignatureLength(usize),
    /// The signature does not verify (strictly) against the log key.
    #[error("receipt signature does not verify against the log key")]
    InvalidSignature,
}

/// What the ledger answers for an accepted issuance: where it is in the log, and
/// the log key's signature over that.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The log's name: the name of the key that signed the receipt.
    pub origin: String,
    /// The entry's index in the log.
    pub index: u64,
    /// The entry's RFC 6962 leaf hash.
    pub leaf_hash: Hash,
    /// When the entry was integrated, in unix microseconds.
    pub integrated_at: i64,
    /// Standard base64 of the 64-byte Ed25519 signature of [`receipt_message`].
    pub signature: String,
}

/// The exact bytes signed:
/// `tokenledger receipt v1\n<origin>\n<index>\n<base64 leaf_hash>\n<integrated_at>\n`.
/// Origins are key names, which hold no newline.
pub fn receipt_message(origin: &str, index: u64, leaf_hash: &Hash, integrated_at: i64) -> Vec<u8> {
    format!(
        "{RECEIPT_HEADER}\n{origin}\n{index}\n{}\n{integrated_at}\n",
        leaf_hash.to_base64()
    )
    .into_bytes()
}

impl Receipt {
    /// Signs a receipt with the log key; the origin is the key's name.
    pub fn sign(signer: &NoteSigner, index: u64, leaf_hash: Hash, integrated_at: i64) -> Receipt {
        let message = receipt_message(signer.name(), index, &leaf_hash, integrated_at);
        Receipt {
            origin: signer.name().to_owned(),
            index,
            leaf_hash,
            integrated_at,
            signature: STANDARD.encode(signer.sign_bytes(&message)),
        }
    }

    /// The bytes this receipt's signature covers.
    fn message(&self) -> Vec<u8> {
        receipt_message(
            &self.origin,
            self.index,
            &self.leaf_hash,
            self.integrated_at,
        )
    }

    /// Decodes the signature: canonical standard base64 of exactly 64 bytes.
    fn signature_bytes(&self) -> Result<[u8; 64], ReceiptError> {
        let bytes = STANDARD
            .decode(&self.signature)
            .map_err(|_| ReceiptError::BadSignatureEncoding)?;
        <[u8; 64]>::try_from(bytes.as_slice())
            .map_err(|_| ReceiptError::BadSignatureLength(bytes.len()))
    }

    /// Checks that the receipt is by the log of `verifier` (origin equals its key
    /// name) and that its signature verifies strictly.
    pub fn verify(&self, verifier: &NoteVerifier) -> Result<(), ReceiptError> {
        if self.origin != verifier.name() {
            return Err(ReceiptError::WrongOrigin {
                expected: verifier.name().to_owned(),
                found: self.origin.clone(),
            });
        }
        let signature = self.signature_bytes()?;
        verifier
            .verify_bytes(&self.message(), &signature)
            .map_err(|_| ReceiptError::InvalidSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "ledger.example.org/tokenledger";
    const INTEGRATED_AT: i64 = 1_767_225_600_123_456;

    fn signer() -> NoteSigner {
        NoteSigner::from_seed(ORIGIN, [42; 32]).unwrap()
    }

    fn leaf() -> Hash {
        Hash([0xab; 32])
    }

    fn receipt() -> Receipt {
        Receipt::sign(&signer(), 7, leaf(), INTEGRATED_AT)
    }

    #[test]
    fn the_signed_message_is_pinned() {
        let message = receipt_message(ORIGIN, 7, &leaf(), INTEGRATED_AT);
        assert_eq!(
            String::from_utf8(message).unwrap(),
            "tokenledger receipt v1\n\
             ledger.example.org/tokenledger\n\
             7\n\
             q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n\
             1767225600123456\n"
        );
        assert_eq!(
            receipt_message("l", u64::MAX, &Hash([0; 32]), -1),
            b"tokenledger receipt v1\nl\n18446744073709551615\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n-1\n"
        );
    }

    #[test]
    fn sign_then_verify_round_trips() {
        let receipt = receipt();
        assert_eq!(receipt.origin, ORIGIN);
        assert_eq!(receipt.index, 7);
        receipt.verify(&signer().verifier()).unwrap();
    }

    #[test]
    fn signature_and_json_are_pinned() {
        let json = serde_json::to_value(receipt()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "origin": ORIGIN,
                "index": 7,
                "leaf_hash": "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=",
                "integrated_at": INTEGRATED_AT,
                "signature": PINNED_SIGNATURE,
            })
        );
        let back: Receipt = serde_json::from_value(json).unwrap();
        back.verify(&signer().verifier()).unwrap();
    }

    /// Ed25519 (seed 42 x 32) over the pinned message, checked with an independent implementation.
    const PINNED_SIGNATURE: &str =
        "b+Nh10fysfJ4+qcO9brhd+ZoGV3NqG2m2QsAC7N46Bly8kFci3ZXfvyBaJzfw6mY3mp6T5NHdEWTuJLy5pzhDg==";

    #[test]
    fn tampered_fields_fail() {
        let verifier = signer().verifier();
        let tampers: [fn(&mut Receipt); 4] = [
            |r| r.index += 1,
            |r| r.leaf_hash.0[31] ^= 1,
            |r| r.integrated_at += 1,
            |r| r.signature = STANDARD.encode([0u8; 64]),
        ];
        for tamper in tampers {
            let mut receipt = receipt();
            tamper(&mut receipt);
            assert_eq!(
                receipt.verify(&verifier),
                Err(ReceiptError::InvalidSignature)
            );
        }
        let mut receipt = receipt();
        let mut signature = STANDARD.decode(&receipt.signature).unwrap();
        signature[0] ^= 1;
        receipt.signature = STANDARD.encode(signature);
        assert_eq!(
            receipt.verify(&verifier),
            Err(ReceiptError::InvalidSignature)
        );
    }

    #[test]
    fn another_origin_fails() {
        let mut receipt = receipt();
        receipt.origin = "other.example.org/log".to_owned();
        assert_eq!(
            receipt.verify(&signer().verifier()),
            Err(ReceiptError::WrongOrigin {
                expected: ORIGIN.to_owned(),
                found: "other.example.org/log".to_owned(),
            })
        );
    }

    #[test]
    fn another_key_fails() {
        let same_name = NoteSigner::from_seed(ORIGIN, [43; 32]).unwrap();
        assert_eq!(
            receipt().verify(&same_name.verifier()),
            Err(ReceiptError::InvalidSignature)
        );
        let other = NoteSigner::from_seed("other.example.org/log", [42; 32]).unwrap();
        let by_other = Receipt::sign(&other, 7, leaf(), INTEGRATED_AT);
        assert!(matches!(
            by_other.verify(&signer().verifier()),
            Err(ReceiptError::WrongOrigin { .. })
        ));
    }

    #[test]
    fn malformed_signatures_fail() {
        let verifier = signer().verifier();
        let cases = [
            ("not base64!", ReceiptError::BadSignatureEncoding),
            ("", ReceiptError::BadSignatureLength(0)),
            (
                &STANDARD.encode([1u8; 63]),
                ReceiptError::BadSignatureLength(63),
            ),
            (
                &STANDARD.encode([1u8; 65]),
                ReceiptError::BadSignatureLength(65),
            ),
        ];
        for (signature, expected) in cases {
            let mut receipt = receipt();
            receipt.signature = signature.to_owned();
            assert_eq!(receipt.verify(&verifier), Err(expected), "{signature:?}");
        }
        let mut unpadded = receipt();
        unpadded.signature = unpadded.signature.trim_end_matches('=').to_owned();
        assert_eq!(
            unpadded.verify(&verifier),
            Err(ReceiptError::BadSignatureEncoding)
        );
    }
}
