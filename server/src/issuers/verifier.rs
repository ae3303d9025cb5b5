//! An issuer's public key parsed once for AWS-LC, for each algorithm it may sign with, so a
//! token's signature check does no key parsing (an RSA key built from `n` and `e` on every
//! token cost as much as the check itself).

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519, ParsedPublicKey,
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_2048_8192_SHA384, RSA_PKCS1_2048_8192_SHA512,
    RSA_PSS_2048_8192_SHA256, RSA_PSS_2048_8192_SHA384, RSA_PSS_2048_8192_SHA512, RsaParameters,
    RsaPublicKeyComponents, VerificationAlgorithm,
};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};

/// A JWK's key, ready to check JWS signatures of each algorithm its type allows (or of the
/// one algorithm the JWK pins).
pub struct KeyVerifier {
    parsed: Vec<(Algorithm, ParsedPublicKey)>,
}

impl KeyVerifier {
    /// Parses `key` for every algorithm it can verify; `pinned` restricts it to one. `None`
    /// if it verifies none (a malformed key, or one of a type no accepted algorithm uses).
    pub fn new(key: &DecodingKey, pinned: Option<Algorithm>) -> Option<KeyVerifier> {
        let parsed: Vec<(Algorithm, ParsedPublicKey)> = algorithms_of(key.family())
            .iter()
            .filter(|alg| pinned.is_none_or(|p| p == **alg))
            .filter_map(|alg| Some((*alg, parse(key, *alg)?)))
            .collect();
        (!parsed.is_empty()).then_some(KeyVerifier { parsed })
    }

    /// Whether `signature` (raw bytes, as in the JWS) over `signing_input` verifies under
    /// this key with `alg`; false for an algorithm this key was not parsed for.
    pub fn verifies(&self, alg: Algorithm, signing_input: &[u8], signature: &[u8]) -> bool {
        self.parsed
            .iter()
            .find(|(a, _)| *a == alg)
            .is_some_and(|(_, key)| key.verify_sig(signing_input, signature).is_ok())
    }
}

/// The asymmetric algorithms (those an issuer may be configured with) of a key type.
fn algorithms_of(family: AlgorithmFamily) -> &'static [Algorithm] {
    match family {
        AlgorithmFamily::Rsa => &[
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmFamily::Ec => &[Algorithm::ES256, Algorithm::ES384],
        AlgorithmFamily::Ed => &[Algorithm::EdDSA],
        _ => &[],
    }
}

fn parse(key: &DecodingKey, alg: Algorithm) -> Option<ParsedPublicKey> {
    match key.kind() {
        DecodingKeyKind::RsaModulusExponent { n, e } => RsaPublicKeyComponents { n, e }
            .to_parsed_public_key(rsa_parameters(alg)?)
            .ok(),
        DecodingKeyKind::SecretOrDer(bytes) => ParsedPublicKey::new(verification(alg)?, bytes).ok(),
    }
}

fn rsa_parameters(alg: Algorithm) -> Option<&'static RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

/// The algorithm for a key a JWK gives as bytes: an uncompressed EC point or an Ed25519 key
/// (RSA keys from a JWK are always `n` and `e`).
fn verification(alg: Algorithm) -> Option<&'static dyn VerificationAlgorithm> {
    match alg {
        Algorithm::ES256 => Some(&ECDSA_P256_SHA256_FIXED),
        Algorithm::ES384 => Some(&ECDSA_P384_SHA384_FIXED),
        Algorithm::EdDSA => Some(&ED25519),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize, PublicKeyComponents};
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
        RSA_PSS_SHA256,
    };
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    const INPUT: &[u8] = b"eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2lhbS5leGFtcGxlLyJ9";

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn rsa() -> (RsaKeyPair, DecodingKey) {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let public = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let key = DecodingKey::from_rsa_components(&b64(&public.n), &b64(&public.e)).unwrap();
        (pair, key)
    }

    fn rsa_sign(
        pair: &RsaKeyPair,
        padding: &'static dyn aws_lc_rs::signature::RsaEncoding,
    ) -> Vec<u8> {
        let mut signature = vec![0; pair.public_modulus_len()];
        pair.sign(padding, &SystemRandom::new(), INPUT, &mut signature)
            .unwrap();
        signature
    }

    #[test]
    fn an_rsa_key_verifies_each_rsa_algorithm_unless_the_jwk_pins_one() {
        let (pair, key) = rsa();
        let pkcs1 = rsa_sign(&pair, &RSA_PKCS1_SHA256);
        let pss = rsa_sign(&pair, &RSA_PSS_SHA256);

        let any = KeyVerifier::new(&key, None).unwrap();
        assert!(any.verifies(Algorithm::RS256, INPUT, &pkcs1));
        assert!(any.verifies(Algorithm::PS256, INPUT, &pss));
        assert!(
            !any.verifies(Algorithm::RS256, INPUT, &pss),
            "PSS is not PKCS#1"
        );
        assert!(
            !any.verifies(Algorithm::RS384, INPUT, &pkcs1),
            "another hash"
        );
        assert!(
            !any.verifies(Algorithm::ES256, INPUT, &pkcs1),
            "another key type"
        );

        let pinned = KeyVerifier::new(&key, Some(Algorithm::RS256)).unwrap();
        assert!(pinned.verifies(Algorithm::RS256, INPUT, &pkcs1));
        assert!(!pinned.verifies(Algorithm::PS256, INPUT, &pss));
        assert!(KeyVerifier::new(&key, Some(Algorithm::ES256)).is_none());
    }

    #[test]
    fn a_changed_input_or_signature_does_not_verify() {
        let (pair, key) = rsa();
        let verifier = KeyVerifier::new(&key, None).unwrap();
        let mut signature = rsa_sign(&pair, &RSA_PKCS1_SHA256);
        let mut input = INPUT.to_vec();
        input[5] ^= 1;
        assert!(!verifier.verifies(Algorithm::RS256, &input, &signature));
        signature[0] ^= 1;
        assert!(!verifier.verifies(Algorithm::RS256, INPUT, &signature));
        assert!(!verifier.verifies(Algorithm::RS256, INPUT, &[]));
    }

    #[test]
    fn ec_and_ed25519_keys_verify_their_algorithms() {
        let rng = SystemRandom::new();
        let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let point = ec.public_key().as_ref();
        let key = DecodingKey::from_ec_components(&b64(&point[1..33]), &b64(&point[33..])).unwrap();
        let verifier = KeyVerifier::new(&key, None).unwrap();
        let signature = ec.sign(&rng, INPUT).unwrap();
        assert!(verifier.verifies(Algorithm::ES256, INPUT, signature.as_ref()));
        assert!(!verifier.verifies(Algorithm::ES384, INPUT, signature.as_ref()));
        assert!(
            KeyVerifier::new(&key, Some(Algorithm::ES384)).is_none(),
            "a P-256 point is not a P-384 key"
        );

        let ed = Ed25519KeyPair::generate().unwrap();
        let key = DecodingKey::from_ed_components(&b64(ed.public_key().as_ref())).unwrap();
        let verifier = KeyVerifier::new(&key, None).unwrap();
        assert!(verifier.verifies(Algorithm::EdDSA, INPUT, ed.sign(INPUT).as_ref()));
        assert!(!verifier.verifies(Algorithm::EdDSA, b"other", ed.sign(INPUT).as_ref()));
    }

    #[test]
    fn symmetric_and_malformed_keys_verify_nothing() {
        assert!(KeyVerifier::new(&DecodingKey::from_secret(b"secret"), None).is_none());
        let not_a_point = DecodingKey::from_ec_components("AQAB", "AQAB").unwrap();
        assert!(KeyVerifier::new(&not_a_point, None).is_none());
    }
}
