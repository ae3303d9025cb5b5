//! Per-site pseudonyms and match tags (DESIGN.md "Pseudonyms"): HMAC-SHA256 over fields that
//! are each prefixed with their 4-byte big-endian length, so no two inputs collide.

use std::fmt;

use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const SITE_KEY_DOMAIN: &str = "tokenledger site key v1";
const TAG_DOMAIN: &str = "tokenledger tag v1";
const JTI_DOMAIN: &str = "tokenledger jti v1";
const CLIENT_DOMAIN: &str = "tokenledger client v1";
const PSEUDONYM_DOMAIN: &str = "tokenledger pseudonym v1";
const REDACTION_DOMAIN: &str = "tokenledger redacted token v1";
/// Every pseudonym starts with this (version 1 of the construction).
pub const PSEUDONYM_PREFIX: &str = "p1-";

/// `HMAC-SHA256(key, len(f1) ‖ f1 ‖ len(f2) ‖ f2 ‖ …)`, lengths as 4-byte big-endian.
pub fn hmac_fields(key: &[u8], fields: &[&str]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for field in fields {
        let len = u32::try_from(field.len()).expect("a field shorter than 4 GiB");
        mac.update(&len.to_be_bytes());
        mac.update(field.as_bytes());
    }
    mac.finalize().into_bytes().into()
}

/// RFC 4648 base32, lowercase, no padding: the printable form of tags and pseudonyms.
pub fn base32(bytes: &[u8]) -> String {
    BASE32_NOPAD.encode(bytes).to_ascii_lowercase()
}

/// The ledger's secret `K`: the root of every site key and pseudonym. Never printed.
#[derive(Clone)]
pub struct LedgerSecret([u8; 32]);

impl fmt::Debug for LedgerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LedgerSecret(..)")
    }
}

impl LedgerSecret {
    pub fn from_bytes(bytes: [u8; 32]) -> LedgerSecret {
        LedgerSecret(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// `K_redacted = HMAC(K, "tokenledger redacted token v1")`: the key of the digests kept
    /// of redacted issuances ([`crate::redaction::RedactedToken`]).
    pub fn redaction_key(&self) -> crate::redaction::RedactionKey {
        crate::redaction::RedactionKey::from_bytes(hmac_fields(&self.0, &[REDACTION_DOMAIN]))
    }

    /// `K_site = HMAC(K, "tokenledger site key v1", site)`.
    pub fn site_key(&self, site: &str) -> SiteKey {
        SiteKey(hmac_fields(&self.0, &[SITE_KEY_DOMAIN, site]))
    }

    /// `p1-` + base32 of the first 16 bytes of `HMAC(K, "tokenledger pseudonym v1", site, vo, person)`.
    pub fn pseudonym(&self, site: &str, vo: &str, person_id: &str) -> String {
        let mac = hmac_fields(&self.0, &[PSEUDONYM_DOMAIN, site, vo, person_id]);
        format!("{PSEUDONYM_PREFIX}{}", base32(&mac[..16]))
    }
}

/// A site's key `K_site`: lets the site's CE and storage compute match tags offline.
#[derive(Clone, PartialEq, Eq)]
pub struct SiteKey([u8; 32]);

impl fmt::Debug for SiteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SiteKey(..)")
    }
}

impl SiteKey {
    pub fn from_bytes(bytes: [u8; 32]) -> SiteKey {
        SiteKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The match tag of identity `(iss, sub)` at this site: `HMAC(K_site, "tokenledger tag v1", iss, sub)`, base32.
    pub fn tag(&self, iss: &str, sub: &str) -> String {
        base32(&hmac_fields(&self.0, &[TAG_DOMAIN, iss, sub]))
    }

    /// The hash of a suspended token: `HMAC(K_site, "tokenledger jti v1", iss, jti)`, base32.
    pub fn jti_hash(&self, iss: &str, jti: &str) -> String {
        base32(&hmac_fields(&self.0, &[JTI_DOMAIN, iss, jti]))
    }

    /// The tag of a client of an issuer (the token's `client_id`, else `azp`):
    /// `HMAC(K_site, "tokenledger client v1", iss, client_id)`, base32.
    pub fn client_tag(&self, iss: &str, client_id: &str) -> String {
        base32(&hmac_fields(&self.0, &[CLIENT_DOMAIN, iss, client_id]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixed-key vectors written down in ARCHITECTURE.md (computed independently with
    /// Python's hmac), so a plugin in another language can check itself: K = bytes 0x00..0x1f.
    fn k() -> LedgerSecret {
        LedgerSecret::from_bytes(std::array::from_fn(|i| i as u8))
    }

    #[test]
    fn fixed_key_vectors() {
        let site = k().site_key("CERN-PROD");
        assert_eq!(
            hex::encode(site.as_bytes()),
            "8439e396f79bf026e058f7b35def5e8b3a3c423d0dbf35a7f4f3d9c59e155058"
        );
        assert_eq!(
            site.tag("https://atlas-auth.cern.ch/", "a1b2c3"),
            "tbblxndhmjnmx3mb5vbjaqt4d2pmtpvvxik2l2yv5ltrksmjguvq"
        );
        assert_eq!(
            site.jti_hash(
                "https://atlas-auth.cern.ch/",
                "0b9f7c6e-1111-2222-3333-444455556666"
            ),
            "d27wlnlmj4h5obspfucqhz44kfvnmc7pewand3ptebjxxvp4incq"
        );
        assert_eq!(
            site.client_tag("https://atlas-auth.cern.ch/", "rucio"),
            "esbirk3yw3dyjdp43qk5khnhvjy4spehqkwe34o5m7odpqav4kgq"
        );
        assert_eq!(
            k().pseudonym("CERN-PROD", "atlas", "pe-person1"),
            "p1-qnzfx4q7utkr7tcas5t5oasyfa"
        );
    }

    #[test]
    fn fields_are_length_prefixed() {
        let key = [7u8; 32];
        assert_ne!(
            hmac_fields(&key, &["ab", "c"]),
            hmac_fields(&key, &["a", "bc"])
        );
        assert_ne!(hmac_fields(&key, &["abc"]), hmac_fields(&key, &["abc", ""]));
    }

    #[test]
    fn pseudonyms_are_stable_per_site_and_unlinkable_across_sites() {
        let a = k().pseudonym("CERN-PROD", "atlas", "pe-1");
        assert_eq!(a, k().pseudonym("CERN-PROD", "atlas", "pe-1"));
        assert_ne!(a, k().pseudonym("RAL-LCG2", "atlas", "pe-1"));
        assert_ne!(a, k().pseudonym("CERN-PROD", "cms", "pe-1"));
        assert_ne!(a, k().pseudonym("CERN-PROD", "atlas", "pe-2"));
        assert!(a.starts_with("p1-") && a.len() == 3 + 26);
        let (cern, ral) = (k().site_key("CERN-PROD"), k().site_key("RAL-LCG2"));
        assert_ne!(cern.tag("i", "s"), ral.tag("i", "s"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        #[test]
        fn same_inputs_same_outputs_other_site_nothing_shared(
            secret in proptest::array::uniform32(0u8..),
            site_a in "[A-Z0-9-]{1,16}",
            site_b in "[A-Z0-9-]{1,16}",
            vo in "[a-z]{2,8}",
            person in "pe-[a-z2-7]{26}",
            iss in "https://[a-z]{1,10}/",
            sub in "[a-z0-9-]{1,36}",
        ) {
            proptest::prop_assume!(site_a != site_b);
            let k = LedgerSecret::from_bytes(secret);
            proptest::prop_assert_eq!(k.pseudonym(&site_a, &vo, &person), k.pseudonym(&site_a, &vo, &person));
            proptest::prop_assert_ne!(k.pseudonym(&site_a, &vo, &person), k.pseudonym(&site_b, &vo, &person));
            let (a, b) = (k.site_key(&site_a), k.site_key(&site_b));
            proptest::prop_assert_eq!(a.tag(&iss, &sub), k.site_key(&site_a).tag(&iss, &sub));
            proptest::prop_assert_ne!(a.tag(&iss, &sub), b.tag(&iss, &sub));
            proptest::prop_assert_ne!(a.jti_hash(&iss, &sub), b.jti_hash(&iss, &sub));
            proptest::prop_assert_ne!(a.tag(&iss, &sub), a.jti_hash(&iss, &sub));
            proptest::prop_assert_ne!(a.tag(&iss, &sub), a.client_tag(&iss, &sub));
            proptest::prop_assert_ne!(a.client_tag(&iss, &sub), b.client_tag(&iss, &sub));
        }
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        assert_eq!(format!("{:?}", k()), "LedgerSecret(..)");
        assert_eq!(format!("{:?}", k().site_key("X")), "SiteKey(..)");
    }
}
