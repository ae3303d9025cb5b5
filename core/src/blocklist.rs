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

/// What a suspension targets: a person (every identity), one token, or one client of an
/// issuer (every token it gets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Person,
    Token,
    Client,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Person => "person",
            Target::Token => "token",
            Target::Client => "client",
        }
    }
}

impl std::str::FromStr for Target {
    type Err = TermError;

    fn from_str(s: &str) -> Result<Target, TermError> {
        match s {
            "person" => Ok(Target::Person),
            "token" => Ok(Target::Token),
            "client" => Ok(Target::Client),
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
    #[error("target is `person`, `token` or `client`")]
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
    /// The site's pseudonym of the suspended person; absent for a client suspension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudonym: Option<String>,
    /// Match tags of every identity of the person (empty for a single-token suspension).
    pub tags: Vec<String>,
    /// Keyed hashes of suspended tokens (empty for a person suspension).
    pub jti_hashes: Vec<String>,
    /// Keyed tags of suspended clients (`client_id`, else `azp`, of an issuer); absent
    /// unless a client is suspended. Written only when not empty, so a document without
    /// client suspensions is byte for byte what consumers before them read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_tags: Vec<String>,
    /// A not-before cut-off (unix seconds): only tokens issued (`iat`) before it are
    /// suspended, and a token without `iat`; absent: every token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_before: Option<i64>,
    pub scope: Scope,
    /// Unix seconds after which the entry no longer applies; none = until lifted.
    pub not_after: Option<i64>,
    pub suspension_id: String,
    /// A short code for logs and plugins (e.g. `compromised`), never free text.
    pub reason_code: String,
}

impl BlocklistEntry {
    /// Whether this entry suspends a token issued at `iat` (if it says) for access of kind
    /// `asked` at `now` (unix seconds): the one decision rule, of `check` (through
    /// [`applies`]) and of the server.
    pub fn applies(&self, asked: Scope, now: i64, iat: Option<i64>) -> bool {
        applies(
            self.scope,
            self.not_after,
            self.issued_before,
            asked,
            now,
            iat,
        )
    }
}

/// Whether a suspension of `scope` that ends after `not_after` and reaches tokens issued
/// before `issued_before` suspends a token issued at `iat` for access of kind `asked` at
/// `now` (unix seconds).
pub fn applies(
    scope: Scope,
    not_after: Option<i64>,
    issued_before: Option<i64>,
    asked: Scope,
    now: i64,
    iat: Option<i64>,
) -> bool {
    scope.blocks(asked) && in_force(not_after, now) && issued_in_reach(issued_before, iat)
}

/// Whether a token issued at `iat` is reached by a cut-off at `issued_before`: every token
/// without a cut-off; under one, a token issued before it, and (deny, not guess) a token
/// that does not say when it was issued. A token issued at or after the cut-off passes.
pub fn issued_in_reach(issued_before: Option<i64>, iat: Option<i64>) -> bool {
    match (issued_before, iat) {
        (None, _) | (Some(_), None) => true,
        (Some(cut_off), Some(iat)) => iat < cut_off,
    }
}

/// Whether a suspension that ends after `not_after` (none: until lifted) is in force at `now`
/// (unix seconds): through the whole second `not_after`.
pub fn in_force(not_after: Option<i64>, now: i64) -> bool {
    not_after.is_none_or(|t| now <= t)
}

/// The request header by which a fetcher of the signed blocklist declares the document
/// format it reads ([`BLOCKLIST_FORMAT`]; absent: 1).
pub const BLOCKLIST_READER_HEADER: &str = "TokenLedger-Blocklist-Reader";

/// The blocklist format this build reads: 2 adds client suspensions (`client_tags`) and
/// not-before cut-offs (`issued_before`) to format 1.
pub const BLOCKLIST_FORMAT: u32 = 2;

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
    /// The lowest blocklist format that reads this document whole: 2 when an entry holds a
    /// client tag or a cut-off (a reader of format 1 cannot verify it), else 1.
    pub fn format(&self) -> u32 {
        let needs_2 = self
            .entries
            .iter()
            .any(|e| !e.client_tags.is_empty() || e.issued_before.is_some());
        if needs_2 { 2 } else { 1 }
    }

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

/// What a token presented says of itself, as far as a decision needs it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Presented<'a> {
    pub iss: &'a str,
    /// Absent for a token without `sub`: then no person suspension can match.
    pub sub: Option<&'a str>,
    pub jti: Option<&'a str>,
    /// `client_id`, else `azp`.
    pub client_id: Option<&'a str>,
    /// Unix seconds; compared with a cut-off's `issued_before`.
    pub iat: Option<i64>,
}

/// A blocklist indexed by tag, jti hash and client tag, for decisions in well under a
/// microsecond beyond the HMACs.
pub struct BlocklistIndex {
    blocklist: Blocklist,
    by_tag: HashMap<String, Vec<usize>>,
    by_jti: HashMap<String, Vec<usize>>,
    by_client: HashMap<String, Vec<usize>>,
}

impl BlocklistIndex {
    pub fn new(blocklist: Blocklist) -> BlocklistIndex {
        let mut by_tag: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_jti: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_client: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, entry) in blocklist.entries.iter().enumerate() {
            for (values, map) in [
                (&entry.tags, &mut by_tag),
                (&entry.jti_hashes, &mut by_jti),
                (&entry.client_tags, &mut by_client),
            ] {
                for value in values {
                    map.entry(value.clone()).or_default().push(i);
                }
            }
        }
        BlocklistIndex {
            blocklist,
            by_tag,
            by_jti,
            by_client,
        }
    }

    pub fn blocklist(&self) -> &Blocklist {
        &self.blocklist
    }

    /// Decides for the identity `(iss, sub)` presenting token `jti` (if known), that says
    /// neither its client nor when it was issued, for access of kind `asked`, at `now` (unix
    /// seconds).
    pub fn decide(
        &self,
        site_key: &SiteKey,
        iss: &str,
        sub: &str,
        jti: Option<&str>,
        asked: Scope,
        now: i64,
    ) -> Decision<'_> {
        let token = Presented {
            iss,
            sub: Some(sub),
            jti,
            ..Presented::default()
        };
        self.decide_token(site_key, &token, asked, now)
    }

    /// Decides for `token`, for access of kind `asked`, at `now` (unix seconds): the first
    /// entry listing its identity's tag, its jti hash or its client's tag that applies.
    pub fn decide_token(
        &self,
        site_key: &SiteKey,
        token: &Presented<'_>,
        asked: Scope,
        now: i64,
    ) -> Decision<'_> {
        let keys = [
            token
                .sub
                .map(|sub| (&self.by_tag, site_key.tag(token.iss, sub))),
            token
                .jti
                .map(|jti| (&self.by_jti, site_key.jti_hash(token.iss, jti))),
            token
                .client_id
                .map(|client| (&self.by_client, site_key.client_tag(token.iss, client))),
        ];
        keys.iter()
            .flatten()
            .flat_map(|(map, key)| map.get(key).into_iter().flatten())
            .map(|i| &self.blocklist.entries[*i])
            .find(|e| e.applies(asked, now, token.iat))
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
            pseudonym: Some("p1-x".into()),
            tags,
            jti_hashes,
            client_tags: vec![],
            issued_before: None,
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

    #[test]
    fn clients_are_matched_by_their_tag_and_cut_offs_by_iat() {
        let key = site_key();
        let client = BlocklistEntry {
            pseudonym: None,
            client_tags: vec![key.client_tag(ISS, "rucio")],
            ..entry(vec![], vec![], Scope::All, None)
        };
        let cut_off = BlocklistEntry {
            issued_before: Some(500),
            suspension_id: "s-2".into(),
            ..entry(vec![key.tag(ISS, "alice")], vec![], Scope::All, None)
        };
        let index = BlocklistIndex::new(document(vec![client, cut_off]));
        let token = |sub, client_id, iat| Presented {
            iss: ISS,
            sub: Some(sub),
            jti: Some("j"),
            client_id,
            iat,
        };
        let decide = |t: Presented<'_>| match index.decide_token(&key, &t, Scope::Compute, 1_000) {
            Decision::Allowed => None,
            Decision::Suspended(e) => Some(e.suspension_id.clone()),
        };
        // The suspended client, whoever uses it; the same user's other clients pass.
        assert_eq!(
            decide(token("bob", Some("rucio"), Some(900))),
            Some("s-1".into())
        );
        assert_eq!(decide(token("bob", Some("fts"), Some(900))), None);
        assert_eq!(decide(token("bob", None, Some(900))), None);
        let other_issuer = Presented {
            iss: "https://other/",
            ..token("bob", Some("rucio"), Some(900))
        };
        assert_eq!(decide(other_issuer), None, "a client is of its issuer");
        // The cut-off: before it suspended, at or after it passes, without iat suspended.
        assert_eq!(
            decide(token("alice", Some("fts"), Some(499))),
            Some("s-2".into())
        );
        assert_eq!(decide(token("alice", Some("fts"), Some(500))), None);
        assert_eq!(decide(token("alice", None, Some(501))), None);
        assert_eq!(decide(token("alice", None, None)), Some("s-2".into()));
        assert_eq!(
            index.decide(&key, ISS, "alice", None, Scope::Compute, 1_000),
            Decision::Suspended(&index.blocklist().entries[1]),
            "a caller that cannot say iat is denied"
        );
    }

    #[test]
    fn entries_without_clients_or_cut_offs_sign_the_bytes_of_before() {
        let person = entry(vec!["t".into()], vec![], Scope::All, None);
        let json = serde_json::to_value(&person).unwrap();
        let mut keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "jti_hashes",
                "not_after",
                "pseudonym",
                "reason_code",
                "scope",
                "suspension_id",
                "tags",
                "vo"
            ]
        );
        // A consumer that drops fields it does not know re-serializes other bytes, so its
        // signature check refuses a document with a client or a cut-off: never a silent allow.
        let client = BlocklistEntry {
            client_tags: vec!["c".into()],
            ..person.clone()
        };
        let signed = document(vec![client]).sign(&signer());
        let mut stripped = signed.clone();
        stripped.document.entries[0].client_tags.clear();
        assert_eq!(
            stripped.verify(&signer().verifier()),
            Err(BlocklistError::BadSignature)
        );
    }

    #[test]
    fn a_document_with_a_client_or_a_cut_off_needs_format_2() {
        let person = entry(vec!["t".into()], vec![], Scope::All, None);
        let token = entry(vec![], vec!["j".into()], Scope::All, Some(5));
        assert_eq!(document(vec![]).format(), 1);
        assert_eq!(document(vec![person.clone(), token]).format(), 1);
        let client = BlocklistEntry {
            pseudonym: None,
            tags: vec![],
            client_tags: vec!["c".into()],
            ..person.clone()
        };
        let cut_off = BlocklistEntry {
            issued_before: Some(500),
            ..person.clone()
        };
        assert_eq!(document(vec![person.clone(), client]).format(), 2);
        assert_eq!(document(vec![cut_off, person]).format(), 2);
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

    /// The schema in schema/json names exactly the fields the code writes, all required but
    /// those written only when they say something (a person's pseudonym, client tags, a
    /// cut-off).
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
                pseudonym: Some(
                    crate::pseudonym::LedgerSecret::from_bytes([4; 32]).pseudonym(
                        "CERN-PROD",
                        "atlas",
                        "pe-1",
                    ),
                ),
                tags: vec![key.tag("https://iam/", "s")],
                jti_hashes: vec![key.jti_hash("https://iam/", "j")],
                client_tags: vec![key.client_tag("https://iam/", "c")],
                issued_before: Some(5),
                scope: Scope::Storage,
                not_after: None,
                suspension_id: "su-1".into(),
                reason_code: "misuse".into(),
            }],
        }
        .sign(&signer);
        let value = serde_json::to_value(&signed).unwrap();
        let optional = ["client_tags", "issued_before", "pseudonym"];
        for (instance, definition) in [
            (&value, &schema),
            (&value["document"], &schema["$defs"]["blocklist"]),
            (&value["document"]["entries"][0], &schema["$defs"]["entry"]),
        ] {
            assert_eq!(keys(instance), keys(&definition["properties"]));
            let required: Vec<String> = keys(instance)
                .into_iter()
                .filter(|k| !optional.contains(&k.as_str()))
                .collect();
            assert_eq!(required, sorted(&definition["required"]));
        }
        let signature = value["signature"].as_str().unwrap();
        assert!(signature.len() == 88 && signature.ends_with("=="));
        let entry = &value["document"]["entries"][0];
        assert_eq!(entry["tags"][0].as_str().unwrap().len(), 52);
        assert_eq!(entry["client_tags"][0].as_str().unwrap().len(), 52);
        assert_eq!(entry["pseudonym"].as_str().unwrap().len(), 29);
    }

    #[test]
    fn suspension_terms_parse_once_and_say_what_is_allowed() {
        for scope in [Scope::Compute, Scope::Storage, Scope::All] {
            assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope));
        }
        for target in [Target::Person, Target::Token, Target::Client] {
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
