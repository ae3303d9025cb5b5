//! The entries that say what was redacted, so the log itself tells what was removed and
//! when: `redaction` (a retention run: the policy it applied, the index ranges whose payload
//! it removed, how many entries of each type) and `erasure` (one VO's person erased on a
//! security officer's request: who asked and why, and what was removed).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::entry::{
    EntryBody, EntryError, EntryType, LogEntry, MAX_ENTRY_BYTES, canonical_json, check_id,
    validate_reason, validate_vo_name,
};
use crate::pseudonym::hmac_fields;

/// Entries `start..end` of the log (`end` exclusive, as `GET /v1/log/entries`), written as
/// the pair `[start, end]`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(from = "(u64, u64)", into = "(u64, u64)")]
pub struct IndexRange {
    pub start: u64,
    pub end: u64,
}

impl IndexRange {
    /// How many entries the range holds.
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<(u64, u64)> for IndexRange {
    fn from((start, end): (u64, u64)) -> IndexRange {
        IndexRange { start, end }
    }
}

impl From<IndexRange> for (u64, u64) {
    fn from(range: IndexRange) -> (u64, u64) {
        (range.start, range.end)
    }
}

/// The retention policy a run applied, as it records it: periods in seconds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PolicyRecord {
    /// The ledger-wide period of each entry type.
    pub periods: BTreeMap<EntryType, u64>,
    /// The periods of a VO that differ from `periods`, by VO.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vos: BTreeMap<String, BTreeMap<EntryType, u64>>,
}

/// A retention run: the payload of the entries in `ranges` (and their lookup rows) was
/// removed because their period under `policy` had passed; their leaf hashes stay.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Redaction {
    pub policy: PolicyRecord,
    /// The entries redacted: increasing, neither overlapping nor touching, never empty (a run
    /// that redacts nothing logs nothing).
    pub ranges: Vec<IndexRange>,
    /// How many entries of each type `ranges` holds.
    pub counts: BTreeMap<EntryType, u64>,
}

/// A person of a VO erased at the request of its security officers: every entry of the
/// person in `ranges` lost its payload, except those an active suspension still needed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Erasure {
    pub vo: String,
    pub person_id: String,
    /// The caller: `credential:<id>` or `oidc:<iss>#<sub>`.
    pub requester: String,
    /// The request or ticket the caller gave.
    pub reason: String,
    /// The entries redacted, as in [`Redaction::ranges`]; empty if active suspensions needed
    /// every entry of the person.
    pub ranges: Vec<IndexRange>,
    /// How many entries of each type `ranges` holds.
    pub counts: BTreeMap<EntryType, u64>,
}

impl Redaction {
    /// Checks the ranges and counts agree (see [`check_ranges`]), that there is at least one
    /// range, and that the policy's periods are above zero.
    pub fn check(&self) -> Result<(), EntryError> {
        if self.ranges.is_empty() {
            return Err(invalid("ranges", "a redaction redacts at least one entry"));
        }
        check_ranges(&self.ranges, &self.counts)?;
        for (vo, periods) in &self.policy.vos {
            validate_vo_name(vo)?;
            if periods.is_empty() || periods.keys().any(|t| !t.has_vo()) {
                return Err(invalid(
                    "policy",
                    &format!("VO `{vo}` has no periods, or one of a type that names no VO"),
                ));
            }
        }
        let vo_periods = self.policy.vos.values().flat_map(BTreeMap::values);
        if self
            .policy
            .periods
            .values()
            .chain(vo_periods)
            .any(|p| *p == 0)
        {
            return Err(invalid("policy", "a period is 0 seconds"));
        }
        Ok(())
    }
}

impl Erasure {
    /// Checks the VO name, the person id, the requester and the reason, and that the
    /// ranges and counts agree (see [`check_ranges`]).
    pub fn check(&self) -> Result<(), EntryError> {
        validate_vo_name(&self.vo)?;
        check_id("person_id", &self.person_id)?;
        check_id("requester", &self.requester)?;
        validate_reason(&self.reason)?;
        check_ranges(&self.ranges, &self.counts)
    }
}

/// Ranges are not empty, increasing, and neither overlap nor touch (they are coalesced);
/// every count is above zero, and the counts add up to the entries the ranges hold.
pub fn check_ranges(
    ranges: &[IndexRange],
    counts: &BTreeMap<EntryType, u64>,
) -> Result<(), EntryError> {
    let mut held: u64 = 0;
    let mut previous_end: Option<u64> = None;
    for range in ranges {
        if range.is_empty() {
            return Err(invalid(
                "ranges",
                &format!("[{}, {}] holds no entry", range.start, range.end),
            ));
        }
        if previous_end.is_some_and(|end| range.start <= end) {
            return Err(invalid(
                "ranges",
                "must increase, without overlapping or touching ranges",
            ));
        }
        previous_end = Some(range.end);
        held += range.len();
    }
    if counts.values().any(|n| *n == 0) {
        return Err(invalid("counts", "a count is 0"));
    }
    let counted = counts
        .values()
        .try_fold(0u64, |sum, n| sum.checked_add(*n))
        .ok_or_else(|| invalid("counts", "add up beyond 2^64"))?;
    if counted != held {
        return Err(invalid(
            "counts",
            &format!("add up to {counted}, but the ranges hold {held} entries"),
        ));
    }
    Ok(())
}

/// Bytes a range takes in an entry at most: `[start,end]` with 20-digit indexes, and a comma.
const MAX_RANGE_BYTES: usize = 44;

/// How many ranges fit in the entry of `unranged`, a redaction or an erasure with no ranges
/// and no counts, whatever the indexes, the counts and the time it is logged at.
pub fn range_room(unranged: &EntryBody) -> usize {
    let entry = LogEntry::new(i64::MIN, unranged.clone());
    let size = serde_json::to_value(&entry)
        .ok()
        .and_then(|value| canonical_json(&value).ok())
        .map_or(usize::MAX, |bytes| bytes.len());
    let counts: usize = EntryType::ALL
        .iter()
        .map(|t| format!("\"{t}\":{},", u64::MAX).len())
        .sum();
    MAX_ENTRY_BYTES.saturating_sub(size).saturating_sub(counts) / MAX_RANGE_BYTES
}

/// What the ledger keeps of a redacted issuance so that resolving its token answers
/// "redacted" rather than "unknown": HMAC-SHA256 digests ([`hmac_fields`], keyed with the
/// [`RedactionKey`]) of its `jti` (the lookup key) and of its `iss` and `jti` (which issuer's
/// token). Never its subject or person.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedactedToken {
    pub jti_hash: [u8; 32],
    pub token_hash: [u8; 32],
}

impl RedactedToken {
    pub fn of(key: &RedactionKey, iss: &str, jti: &str) -> RedactedToken {
        RedactedToken {
            jti_hash: Self::jti_hash(key, jti),
            token_hash: hmac_fields(&key.0, &[TOKEN_FIELD, iss, jti]),
        }
    }

    /// The lookup key of a redacted token by `jti`.
    pub fn jti_hash(key: &RedactionKey, jti: &str) -> [u8; 32] {
        hmac_fields(&key.0, &[JTI_FIELD, jti])
    }
}

/// The key of [`RedactedToken`]'s digests, derived from the ledger secret
/// ([`crate::pseudonym::LedgerSecret::redaction_key`]): without it, a digest cannot be
/// tested against guessed jtis. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct RedactionKey([u8; 32]);

impl RedactionKey {
    pub fn from_bytes(bytes: [u8; 32]) -> RedactionKey {
        RedactionKey(bytes)
    }
}

impl std::fmt::Debug for RedactionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedactionKey(..)")
    }
}

/// The first field of a [`RedactedToken::jti_hash`] and of a `token_hash`: the two digests
/// of one jti never agree.
const JTI_FIELD: &str = "jti";
const TOKEN_FIELD: &str = "token";

fn invalid(claim: &str, reason: &str) -> EntryError {
    EntryError::Invalid {
        claim: claim.to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    fn redaction() -> Redaction {
        Redaction {
            policy: PolicyRecord {
                periods: BTreeMap::from([
                    (EntryType::Issuance, 15_552_000),
                    (EntryType::Resolution, 157_680_000),
                ]),
                vos: BTreeMap::from([(
                    "atlas".to_string(),
                    BTreeMap::from([(EntryType::Issuance, 31_536_000)]),
                )]),
            },
            ranges: vec![(0, 3).into(), (5, 6).into()],
            counts: BTreeMap::from([(EntryType::Issuance, 3), (EntryType::Sighting, 1)]),
        }
    }

    fn erasure() -> Erasure {
        Erasure {
            vo: "atlas".into(),
            person_id: "pe-1".into(),
            requester: "credential:c1".into(),
            reason: "GDPR-17 request 42".into(),
            ranges: vec![(7, 9).into()],
            counts: BTreeMap::from([(EntryType::Issuance, 1), (EntryType::IdentityLink, 1)]),
        }
    }

    #[test]
    fn a_redaction_has_its_canonical_form_and_reads_back() {
        let entry = LogEntry::new(
            1_700_000_000_000_000,
            EntryBody::Redaction(Box::new(redaction())),
        );
        let bytes = entry.canonical_bytes().unwrap();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"counts":{"issuance":3,"sighting":1},"logged_at":1700000000000000,"policy":{"periods":{"issuance":15552000,"resolution":157680000},"vos":{"atlas":{"issuance":31536000}}},"ranges":[[0,3],[5,6]],"type":"redaction","v":1}"#
        );
        assert_eq!(LogEntry::from_canonical_bytes(&bytes).unwrap(), entry);
        assert_eq!(entry.body.vo(), None);
        assert_eq!(entry.body.entry_type(), EntryType::Redaction);
    }

    #[test]
    fn an_erasure_has_its_canonical_form_names_its_vo_and_reads_back() {
        let entry = LogEntry::new(2, EntryBody::Erasure(Box::new(erasure())));
        let bytes = entry.canonical_bytes().unwrap();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"counts":{"identity_link":1,"issuance":1},"logged_at":2,"person_id":"pe-1","ranges":[[7,9]],"reason":"GDPR-17 request 42","requester":"credential:c1","type":"erasure","v":1,"vo":"atlas"}"#
        );
        assert_eq!(LogEntry::from_canonical_bytes(&bytes).unwrap(), entry);
        assert_eq!(entry.body.vo(), Some("atlas"));
        let nothing = Erasure {
            ranges: vec![],
            counts: BTreeMap::new(),
            ..erasure()
        };
        let bytes = LogEntry::new(2, EntryBody::Erasure(Box::new(nothing)))
            .canonical_bytes()
            .unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.contains(r#""counts":{},"#) && text.contains(r#""ranges":[],"#),
            "{text}"
        );
        assert!(LogEntry::from_canonical_bytes(&bytes).is_ok());
    }

    /// Decoding accepts exactly the written form: no unknown member, no unknown type in a
    /// count or a period, no missing member, no range that is not a pair of integers.
    #[test]
    fn decoding_refuses_anything_but_the_written_form() {
        let good = r#"{"counts":{"issuance":1},"logged_at":1,"policy":{"periods":{"issuance":1}},"ranges":[[0,1]],"type":"redaction","v":1}"#;
        assert!(LogEntry::from_canonical_bytes(good.as_bytes()).is_ok());
        for bad in [
            r#"{"counts":{"issuance":1},"extra":1,"logged_at":1,"policy":{"periods":{"issuance":1}},"ranges":[[0,1]],"type":"redaction","v":1}"#,
            r#"{"counts":{"issuance":1},"logged_at":1,"policy":{"extra":{},"periods":{"issuance":1}},"ranges":[[0,1]],"type":"redaction","v":1}"#,
            r#"{"counts":{"token":1},"logged_at":1,"policy":{"periods":{"issuance":1}},"ranges":[[0,1]],"type":"redaction","v":1}"#,
            r#"{"counts":{"issuance":1},"logged_at":1,"policy":{"periods":{"issuances":1}},"ranges":[[0,1]],"type":"redaction","v":1}"#,
            r#"{"counts":{"issuance":1},"logged_at":1,"ranges":[[0,1]],"type":"redaction","v":1}"#,
            r#"{"counts":{"issuance":1},"logged_at":1,"policy":{"periods":{"issuance":1}},"ranges":[[0,1,2]],"type":"redaction","v":1}"#,
            r#"{"counts":{"issuance":1},"logged_at":1,"policy":{"periods":{"issuance":1}},"ranges":[{"end":1,"start":0}],"type":"redaction","v":1}"#,
            r#"{"counts":{"issuance":1},"logged_at":1,"policy":{"periods":{"issuance":1}},"ranges":[[0,-1]],"type":"redaction","v":1}"#,
            r#"{"counts":{"issuance":1},"logged_at":1,"policy":{"periods":{"issuance":1}},"ranges":[[0,1]],"type":"redactions","v":1}"#,
            r#"{"counts":{"issuance":1},"logged_at":1,"policy":{"periods":{"issuance":1},"vos":{"atlas":{"lift":5}}},"ranges":[[0,1]],"type":"redaction","v":1}"#,
            r#"{"counts":{"issuance":1},"logged_at":1,"policy":{"periods":{"issuance":1},"vos":{"ATLAS":{"issuance":5}}},"ranges":[[0,1]],"type":"redaction","v":1}"#,
            r#"{"counts":{"issuance":1},"logged_at":1,"policy":{"periods":{"issuance":0}},"ranges":[[0,1]],"type":"redaction","v":1}"#,
            r#"{"counts":{"issuance":1},"logged_at":1,"person_id":"pe-1","ranges":[[0,1]],"reason":"r","type":"erasure","v":1,"vo":"atlas"}"#,
            r#"{"counts":{"issuance":1},"logged_at":1,"person_id":"pe-1","ranges":[[0,1]],"reason":" ","requester":"c","type":"erasure","v":1,"vo":"atlas"}"#,
        ] {
            assert!(
                LogEntry::from_canonical_bytes(bad.as_bytes()).is_err(),
                "accepted {bad}"
            );
        }
    }

    #[test]
    fn ranges_and_counts_must_agree() {
        let counts = |n| BTreeMap::from([(EntryType::Sighting, n)]);
        let ranges = |pairs: &[(u64, u64)]| {
            pairs
                .iter()
                .copied()
                .map(IndexRange::from)
                .collect::<Vec<_>>()
        };
        assert_eq!(check_ranges(&ranges(&[(0, 2), (3, 4)]), &counts(3)), Ok(()));
        assert_eq!(check_ranges(&[], &BTreeMap::new()), Ok(()));
        for (pairs, n, why) in [
            (&[(0, 2), (3, 4)][..], 4, "add up to 4"),
            (&[(2, 2)][..], 1, "holds no entry"),
            (&[(3, 2)][..], 1, "holds no entry"),
            (&[(0, 2), (2, 3)][..], 3, "touching"),
            (&[(0, 2), (1, 3)][..], 3, "overlapping"),
            (&[(5, 6), (0, 1)][..], 2, "increase"),
            (&[(0, 1)][..], 0, "a count is 0"),
        ] {
            let err = check_ranges(&ranges(pairs), &counts(n)).unwrap_err();
            assert!(err.to_string().contains(why), "{pairs:?} {n}: {err}");
        }
        let overflow = BTreeMap::from([(EntryType::Sighting, u64::MAX), (EntryType::Issuance, 1)]);
        assert!(check_ranges(&ranges(&[(0, 1)]), &overflow).is_err());
    }

    /// What the ledger would not read back, it does not write either.
    #[test]
    fn a_body_that_fails_its_check_is_not_written() {
        let empty = Redaction {
            ranges: vec![],
            counts: BTreeMap::new(),
            ..redaction()
        };
        let err = LogEntry::new(1, EntryBody::Redaction(Box::new(empty)))
            .canonical_bytes()
            .unwrap_err();
        assert!(err.to_string().contains("at least one entry"), "{err}");
        let blank = Erasure {
            reason: "".into(),
            ..erasure()
        };
        assert!(
            LogEntry::new(1, EntryBody::Erasure(Box::new(blank)))
                .canonical_bytes()
                .is_err()
        );
    }

    /// A redacted token is kept as keyed digests that tell issuers apart, even when the
    /// issuer and jti texts would run together, that never hold either text, and that a
    /// guess cannot be tested against without the key.
    #[test]
    fn a_redacted_token_keeps_only_keyed_digests_that_tell_issuers_apart() {
        let key = RedactionKey::from_bytes([1; 32]);
        let token = RedactedToken::of(&key, "https://iam/", "j-1");
        assert_eq!(token.jti_hash, RedactedToken::jti_hash(&key, "j-1"));
        assert_ne!(token.jti_hash, <[u8; 32]>::from(Sha256::digest(b"j-1")));
        assert_ne!(token.jti_hash, token.token_hash);
        let other_key = RedactionKey::from_bytes([2; 32]);
        assert_ne!(token, RedactedToken::of(&other_key, "https://iam/", "j-1"));
        assert_ne!(token, RedactedToken::of(&key, "https://other/", "j-1"));
        assert_ne!(
            RedactedToken::of(&key, "ab", "c").token_hash,
            RedactedToken::of(&key, "a", "bc").token_hash
        );
    }
}
