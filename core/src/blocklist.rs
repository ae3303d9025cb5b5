//! The signed per-site blocklist (DESIGN.md "Blocklists"): the document, its Ed25519
//! signature, the freshness rules a consumer applies, and the fast lookup a CE uses.
//! The document holds no identity: only pseudonyms and keyed tags.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::entry::canonical_json;
use crate::note::{NoteSigner, NoteVerifier};
use crate::pseudonym::SiteKey;

/// What a suspension blocks.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Compute,
    Storage,
    All,
}

impl Scope {
    /// Does a suspension of this scope block access of kind `asked`? Asking for `All`
    /// ("suspended for anything?") matches every scope.
    pub fn blocks(self, asked: Scope) -> bool {
        self == Scope::All || asked == Scope::All || self == asked
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Compute => "compute",
            Scope::Storage => "storage",
            Scope::All => "all",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = TermError;

    fn from_str(s: &str) -> Result<Scope, TermError> {
        match s {
            "compute" => Ok(Scope::Compute),
            "storage" => Ok(Scope::Storage),
            "all" => Ok(Scope::All),
            _ => Err(TermError::Scope),
        }
    }
}

/// What a suspension targets: a person (every identity), or one token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Person,
    Token,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Person => "person",
            Target::Token => "token",
        }
    }
}

impl std::str::FromStr for Target {
    type Err = TermError;

    fn from_str(s: &str) -> Result<Target, TermError> {
        match s {
            "person" => Ok(Target::Person),
            "token" => Ok(Target::Token),
            _ => Err(TermError::Target),
        }
    }
}

/// A suspension's short reason code for logs and plugins (e.g. `compromised`): 1-32
/// characters of a-z, 0-9 and '-', never free text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReasonCode(String);

impl ReasonCode {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::str::FromStr for ReasonCode {
    type Err = TermError;

    fn from_str(s: &str) -> Result<ReasonCode, TermError> {
        let valid = (1..=32).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if valid {
            Ok(ReasonCode(s.to_string()))
        } else {
            Err(TermError::ReasonCode)
        }
    }
}

/// A suspension term that does not parse, in the words a caller is told.
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
pub enum TermError {
    #[error("target is `person` or `token`")]
    Target,
    #[error("scope is `compute`, `storage` or `all`")]
    Scope,
    #[error("reason_code is 1-32 characters of a-z, 0-9, '-'")]
    ReasonCode,
}

/// One suspension as a site's consumers see it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BlocklistEntry {
    pub vo: String,
    pub pseudonym: String,
    /// Match tags of every identity of the person (empty for a single-token suspension).
    pub tags: Vec<String>,
    /// Keyed hashes of suspended tokens (empty for a person suspension).
    pub jti_hashes: Vec<String>,
    pub scope: Scope,
    /// Unix seconds after which the entry no longer applies; none = until lifted.
    pub not_after: Option<i64>,
    pub suspension_id: String,
    /// A short code for logs and plugins (e.g. `compromised`), never free text.
    pub reason_code: String,
}

impl BlocklistEntry {
    /// Whether this entry suspends access of kind `asked` at `now` (unix seconds): the one
    /// decision rule, of `check` (through [`applies`]) and of the server.
    pub fn applies(&self, asked: Scope, now: i64) -> bool {
        applies(self.scope, self.not_after, asked, now)
    }
}

/// Whether a suspension of `scope` that ends after `not_after` suspends access of kind
/// `asked` at `now` (unix seconds).
pub fn applies(scope: Scope, not_after: Option<i64>, asked: Scope, now: i64) -> bool {
    scope.blocks(asked) && in_force(not_after, now)
}

/// Whether a suspension that ends after `not_after` (none: until lifted) is in force at `now`
/// (unix seconds): through the whole second `not_after`.
pub fn in_force(not_after: Option<i64>, now: i64) -> bool {
    not_after.is_none_or(|t| now <= t)
}

/// A site's blocklist document.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Blocklist {
    pub site: String,
    /// Grows with every change; a consumer refuses a smaller one (rollback).
    pub sequence: u64,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds; a consumer treats a document past this as stale.
    pub expires_at: i64,
    pub entries: Vec<BlocklistEntry>,
}

/// A document the log key signs; the domain string is prefixed to its canonical bytes.
pub trait SignedDocument: Serialize {
    const DOMAIN: &'static [u8];

    /// The exact bytes that are signed.
    fn signing_bytes(&self) -> Vec<u8> {
        let value = serde_json::to_value(self).expect("a signed document serializes");
        let mut bytes = Self::DOMAIN.to_vec();
        bytes.extend(canonical_json(&value).expect("a signed document holds no floats"));
        bytes
    }

    /// Signs with the log key.
    fn sign(self, signer: &NoteSigner) -> Signed<Self>
    where
        Self: Sized,
    {
        let signature = STANDARD.encode(signer.sign_bytes(&self.signing_bytes()));
        Signed {
            signer: signer_id(&signer.verifier()),
            document: self,
            signature,
        }
    }
}

impl SignedDocument for Blocklist {
    const DOMAIN: &'static [u8] = b"tokenledger blocklist v1\n";
}

impl SignedDocument for crate::wire::ExportDocument {
    const DOMAIN: &'static [u8] = b"tokenledger export v1\n";
}

/// A document with its detached signature, as served and stored on disk.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Signed<T> {
    pub document: T,
    /// The signing key's name (the log origin) and key id, `name+hexid`.
    pub signer: String,
    /// Base64 Ed25519 signature over the domain string ‖ the document's canonical bytes.
    pub signature: String,
}

/// The signed blocklist of a site.
pub type SignedBlocklist = Signed<Blocklist>;

/// Why a blocklist document is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlocklistError {
    #[error("blocklist is signed by `{found}`, not by the pinned log key `{expected}`")]
    WrongSigner { expected: String, found: String },
    #[error("blocklist signature does not verify")]
    BadSignature,
    #[error("blocklist sequence {got} is older than the {have} already held (rollback)")]
    Rollback { have: u64, got: u64 },
    #[error("blocklist expired at {expires_at} (now {now})")]
    Expired { expires_at: i64, now: i64 },
    #[error("blocklist is for site `{found}`, not `{expected}`")]
    WrongSite { expected: String, found: String },
}

fn signer_id(verifier: &NoteVerifier) -> String {
    format!("{}+{}", verifier.name(), hex::encode(verifier.key_id()))
}

impl<T: SignedDocument> Signed<T> {
    /// Checks the signature with the pinned log key.
    pub fn verify(&self, verifier: &NoteVerifier) -> Result<&T, BlocklistError> {
        let expected = signer_id(verifier);
        if self.signer != expected {
            return Err(BlocklistError::WrongSigner {
                expected,
                found: self.signer.clone(),
            });
        }
        let signature: [u8; 64] = STANDARD
            .decode(&self.signature)
            .ok()
            .and_then(|s| s.try_into().ok())
            .ok_or(BlocklistError::BadSignature)?;
        verifier
            .verify_bytes(&self.document.signing_bytes(), &signature)
            .map_err(|_| BlocklistError::BadSignature)?;
        Ok(&self.document)
    }
}

impl Blocklist {
    /// A consumer's checks beyond the signature: the right site, not older than what it
    /// holds (`have`), not expired at `now` (unix seconds).
    pub fn check_fresh(
        &self,
        site: &str,
        have: Option<u64>,
        now: i64,
    ) -> Result<(), BlocklistError> {
        if self.site != site {
            return Err(BlocklistError::WrongSite {
                expected: site.to_string(),
                found: self.site.clone(),
            });
        }
        if let Some(have) = have
            && self.sequence < have
        {
            return Err(BlocklistError::Rollback {
                have,
                got: self.sequence,
            });
        }
        if now > self.expires_at {
            return Err(BlocklistError::Expired {
                expires_at: self.expires_at,
                now,
            });
        }
        Ok(())
    }
}

/// The answer to "may this token's user in?".
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "lowercase")]
pub enum Decision<'a> {
    Allowed,
    Suspended(&'a BlocklistEntry),
}

/// A blocklist indexed by tag and jti hash, for decisions in well under a microsecond
/// beyond the HMAC.
pub struct BlocklistIndex {
    blocklist: Blocklist,
    by_tag: HashMap<String, Vec<usize>>,
    by_jti: HashMap<String, Vec<usize>>,
}

impl BlocklistIndex {
    pub fn new(blocklist: Blocklist) -> BlocklistIndex {
        let mut by_tag: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_jti: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, entry) in blocklist.entries.iter().enumerate() {
            for tag in &entry.tags {
                by_tag.entry(tag.clone()).or_default().push(i);
            }
            for hash in &entry.jti_hashes {
                by_jti.entry(hash.clone()).or_default().push(i);
            }
        }
        BlocklistIndex {
            blocklist,
            by_tag,
            by_jti,
        }
    }

    pub fn blocklist(&self) -> &Blocklist {
        &self.blocklist
    }

    /// Decides for the identity `(iss, sub)` presenting token `jti` (if known), for access of
    /// kind `asked`, at `now` (unix seconds).
    pub fn decide(
        &self,
        site_key: &SiteKey,
        iss: &str,
        sub: &str,
        jti: Option<&str>,
        asked: Scope,
        now: i64,
    ) -> Decision<'_> {
        let by_tag = self
            .by_tag
            .get(&site_key.tag(iss, sub))
            .into_iter()
            .flatten();
        let jti_hash = jti.map(|jti| site_key.jti_hash(iss, jti));
        let by_jti = jti_hash
            .as_ref()
            .and_then(|h| self.by_jti.get(h))
            .into_iter()
            .flatten();
        by_tag
            .chain(by_jti)
            .map(|i| &self.blocklist.entries[*i])
            .find(|e| e.applies(asked, now))
            .map_or(Decision::Allowed, Decision::Suspended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pseudonym::LedgerSecret;

    const ISS: &str = "https://atlas-auth.cern.ch/";

    fn signer() -> NoteSigner {
        NoteSigner::from_seed("ledger.example/log", [9; 32]).unwrap()
    }

    fn site_key() -> SiteKey {
        LedgerSecret::from_bytes([1; 32]).site_key("CERN-PROD")
    }

    fn document(entries: Vec<BlocklistEntry>) -> Blocklist {
        Blocklist {
            site: "CERN-PROD".into(),
            sequence: 7,
            issued_at: 1_000,
            expires_at: 2_000,
            entries,
        }
    }

    fn entry(
        tags: Vec<String>,
        jti_hashes: Vec<String>,
        scope: Scope,
        not_after: Option<i64>,
    ) -> BlocklistEntry {
        BlocklistEntry {
            vo: "atlas".into(),
            pseudonym: "p1-x".into(),
            tags,
            jti_hashes,
            scope,
            not_after,
            suspension_id: "s-1".into(),
            reason_code: "compromised".into(),
        }
    }

    #[test]
    fn signature_round_trips_and_any_change_breaks_it() {
        let signed =
            document(vec![entry(vec!["t".into()], vec![], Scope::All, None)]).sign(&signer());
        let verifier = signer().verifier();
        assert!(signed.verify(&verifier).is_ok());
        let json = serde_json::to_string(&signed).unwrap();
        let reread: SignedBlocklist = serde_json::from_str(&json).unwrap();
        assert!(reread.verify(&verifier).is_ok());

        let mut tampered = signed.clone();
        tampered.document.sequence += 1;
        assert_eq!(
            tampered.verify(&verifier),
            Err(BlocklistError::BadSignature)
        );
        let mut tampered = signed.clone();
        tampered.document.entries.clear();
        assert_eq!(
            tampered.verify(&verifier),
            Err(BlocklistError::BadSignature)
        );
        let other = NoteSigner::from_seed("ledger.example/log", [8; 32]).unwrap();
        assert!(matches!(
            signed.verify(&other.verifier()),
            Err(BlocklistError::WrongSigner { .. })
        ));
        let forged = document(vec![]).sign(&other);
        let mut forged_named = forged.clone();
        forged_named.signer = signed.signer.clone();
        assert_eq!(
            forged_named.verify(&verifier),
            Err(BlocklistError::BadSignature)
        );
    }

    #[test]
    fn consumers_refuse_rollback_expiry_and_other_sites() {
        let doc = document(vec![]);
        assert!(doc.check_fresh("CERN-PROD", Some(7), 1_500).is_ok());
        assert!(doc.check_fresh("CERN-PROD", None, 2_000).is_ok());
        assert_eq!(
            doc.check_fresh("CERN-PROD", Some(8), 1_500),
            Err(BlocklistError::Rollback { have: 8, got: 7 })
        );
        assert!(matches!(
            doc.check_fresh("CERN-PROD", None, 2_001),
            Err(BlocklistError::Expired { .. })
        ));
        assert!(matches!(
            doc.check_fresh("RAL-LCG2", None, 1_500),
            Err(BlocklistError::WrongSite { .. })
        ));
    }

    #[test]
    fn decisions_match_tags_jtis_scopes_and_expiry() {
        let key = site_key();
        let index = BlocklistIndex::new(document(vec![
            entry(vec![key.tag(ISS, "alice")], vec![], Scope::Compute, None),
            entry(
                vec![],
                vec![key.jti_hash(ISS, "leaked")],
                Scope::All,
                Some(1_500),
            ),
        ]));
        let decide = |sub, jti, asked, now| index.decide(&key, ISS, sub, jti, asked, now);
        assert!(matches!(
            decide("alice", None, Scope::Compute, 1_000),
            Decision::Suspended(_)
        ));
        assert!(matches!(
            decide("alice", None, Scope::All, 1_000),
            Decision::Suspended(_)
        ));
        assert_eq!(
            decide("alice", None, Scope::Storage, 1_000),
            Decision::Allowed
        );
        assert_eq!(
            decide("bob", None, Scope::Compute, 1_000),
            Decision::Allowed
        );
        assert!(matches!(
            decide("bob", Some("leaked"), Scope::Storage, 1_000),
            Decision::Suspended(_)
        ));
        assert_eq!(
            decide("bob", Some("leaked"), Scope::Storage, 1_501),
            Decision::Allowed
        );
        assert_eq!(
            decide("bob", Some("other"), Scope::Storage, 1_000),
            Decision::Allowed
        );
        let other_site = LedgerSecret::from_bytes([1; 32]).site_key("RAL-LCG2");
        assert_eq!(
            index.decide(&other_site, ISS, "alice", None, Scope::Compute, 1_000),
            Decision::Allowed
        );
    }
}

#[cfg(test)]
mod schema_tests {
    use super::*;
    use serde_json::Value;

    const SCHEMA: &str = include_str!("../../schema/json/blocklist.schema.json");

    fn keys(value: &Value) -> Vec<String> {
        let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    }

    fn sorted(value: &Value) -> Vec<String> {
        let mut items: Vec<String> = value
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        items.sort();
        items
    }

    /// The schema in schema/json names exactly the fields the code writes, all required.
    #[test]
    fn the_json_schema_matches_the_document() {
        let schema: Value = serde_json::from_str(SCHEMA).unwrap();
        let signer = NoteSigner::from_seed("ledger.example/log", [3; 32]).unwrap();
        let key = crate::pseudonym::LedgerSecret::from_bytes([4; 32]).site_key("CERN-PROD");
        let signed = Blocklist {
            site: "CERN-PROD".into(),
            sequence: 1,
            issued_at: 10,
            expires_at: 20,
            entries: vec![BlocklistEntry {
                vo: "atlas".into(),
                pseudonym: crate::pseudonym::LedgerSecret::from_bytes([4; 32]).pseudonym(
                    "CERN-PROD",
                    "atlas",
                    "pe-1",
                ),
                tags: vec![key.tag("https://iam/", "s")],
                jti_hashes: vec![key.jti_hash("https://iam/", "j")],
                scope: Scope::Storage,
                not_after: None,
                suspension_id: "su-1".into(),
                reason_code: "misuse".into(),
            }],
        }
        .sign(&signer);
        let value = serde_json::to_value(&signed).unwrap();
        for (instance, definition) in [
            (&value, &schema),
            (&value["document"], &schema["$defs"]["blocklist"]),
            (&value["document"]["entries"][0], &schema["$defs"]["entry"]),
        ] {
            assert_eq!(keys(instance), keys(&definition["properties"]));
            assert_eq!(keys(instance), sorted(&definition["required"]));
        }
        let signature = value["signature"].as_str().unwrap();
        assert!(signature.len() == 88 && signature.ends_with("=="));
        let entry = &value["document"]["entries"][0];
        assert_eq!(entry["tags"][0].as_str().unwrap().len(), 52);
        assert_eq!(entry["pseudonym"].as_str().unwrap().len(), 29);
    }

    #[test]
    fn suspension_terms_parse_once_and_say_what_is_allowed() {
        for scope in [Scope::Compute, Scope::Storage, Scope::All] {
            assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope));
        }
        for target in [Target::Person, Target::Token] {
            assert_eq!(target.as_str().parse::<Target>(), Ok(target));
        }
        assert_eq!(
            "everything".parse::<Scope>().unwrap_err().to_string(),
            "scope is `compute`, `storage` or `all`"
        );
        assert_eq!("group".parse::<Target>(), Err(TermError::Target));
        assert_eq!(
            "compromised".parse::<ReasonCode>().unwrap().as_str(),
            "compromised"
        );
        for bad in ["", "Compromised", "a b", &"x".repeat(33)] {
            assert_eq!(
                bad.parse::<ReasonCode>(),
                Err(TermError::ReasonCode),
                "{bad:?}"
            );
        }
    }
}
