//! The rows that cross the storage traits, whatever the engine.

use std::collections::BTreeSet;

use serde::Serialize;
use tokenledger_core::access::Binding;
use tokenledger_core::blocklist::{self, Scope};
use tokenledger_core::entry::{EntryBody, Issuance, LogEntry};
use tokenledger_core::ids::{Jti, PersonId, Pseudonym, Site, Vo};
use tokenledger_core::merkle::{self, Hash};
#[cfg(doc)]
use tokenledger_core::redaction::RedactedToken;
use tokenledger_core::redaction::{IndexRange, RedactionKey};
use tokenledger_core::suspension_request::RequestStatus;

use super::StoreError;

/// An entry as stored: its index and canonical bytes.
pub type StoredEntry = (u64, Vec<u8>);

/// An entry as read from the log: its canonical bytes, or, once a redaction or an erasure
/// removed them, what is left of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogRecord {
    Leaf(StoredEntry),
    Redacted(RedactedEntry),
}

impl LogRecord {
    pub fn index(&self) -> u64 {
        match self {
            LogRecord::Leaf((index, _)) => *index,
            LogRecord::Redacted(redacted) => redacted.index,
        }
    }

    /// The entry's canonical bytes, unless it is redacted.
    pub fn leaf(&self) -> Option<&[u8]> {
        match self {
            LogRecord::Leaf((_, leaf)) => Some(leaf),
            LogRecord::Redacted(_) => None,
        }
    }
}

/// What is left of a redacted entry: its index and stored leaf hash (so its inclusion still
/// verifies), when it was redacted (unix microseconds) and the index of the `redaction` or
/// `erasure` entry that removed its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedactedEntry {
    pub index: u64,
    pub leaf_hash: Hash,
    pub at: i64,
    pub by: u64,
}

/// A `redacted_entries` row as both engines read it: `(idx, redacted_at, redacted_by)`.
pub type RedactedRow = (i64, i64, i64);

impl RedactedEntry {
    /// The stored-hash indexes of the leaf hashes of `rows`, in their order.
    pub fn leaf_hash_indexes(rows: &[RedactedRow]) -> Vec<u64> {
        rows.iter()
            .map(|(idx, _, _)| merkle::stored_hash_index(0, *idx as u64))
            .collect()
    }

    /// `rows` with their leaf hashes (read at [`RedactedEntry::leaf_hash_indexes`]).
    pub fn with_leaf_hashes(rows: Vec<RedactedRow>, hashes: Vec<Hash>) -> Vec<RedactedEntry> {
        rows.into_iter()
            .zip(hashes)
            .map(|((idx, at, by), leaf_hash)| RedactedEntry {
                index: idx as u64,
                leaf_hash,
                at,
                by: by as u64,
            })
            .collect()
    }
}

/// A redacted issuance as kept for resolution: its index, VO and the digest of its
/// `(iss, jti)` ([`RedactedToken::token_hash`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedactedIssuance {
    pub index: u64,
    pub vo: Vo,
    pub token_hash: [u8; 32],
}

/// A `redacted_issuances` row as both engines read it: `(idx, vo, token_hash)`.
pub type RedactedIssuanceRow = (i64, String, Vec<u8>);

impl RedactedIssuance {
    /// The redacted issuance of a stored row; a digest not of 32 bytes is corruption.
    pub fn from_row((idx, vo, token_hash): RedactedIssuanceRow) -> Result<Self, StoreError> {
        Ok(RedactedIssuance {
            index: idx as u64,
            vo: Vo::unchecked(vo),
            token_hash: token_hash.try_into().map_err(|_| {
                StoreError::Corrupt(format!("redacted issuance {idx}: a digest of bad length"))
            })?,
        })
    }
}

/// Checks that the redaction logged at `by` names only entries before it: a range reaching
/// its own entry or beyond would delete it (or entries not yet logged) and lower the log
/// size. Each engine's writer checks this before it writes anything of the batch.
pub fn check_redaction(by: u64, ranges: &[IndexRange]) -> Result<(), StoreError> {
    match ranges.iter().find(|r| r.end > by) {
        Some(r) => Err(StoreError::Corrupt(format!(
            "the redaction at entry {by} names entries {}..{}, past its own",
            r.start, r.end
        ))),
        None => Ok(()),
    }
}

/// `leaves` and `redacted` merged by index. Read the leaves first, then the redacted
/// entries: an entry redacted in between is in both, and is given as redacted.
pub fn merge_records(leaves: Vec<StoredEntry>, redacted: Vec<RedactedEntry>) -> Vec<LogRecord> {
    let gone: BTreeSet<u64> = redacted.iter().map(|r| r.index).collect();
    let mut records: Vec<LogRecord> = leaves
        .into_iter()
        .filter(|(index, _)| !gone.contains(index))
        .map(LogRecord::Leaf)
        .chain(redacted.into_iter().map(LogRecord::Redacted))
        .collect();
    records.sort_by_key(LogRecord::index);
    records
}

/// An event of a person's timeline: its kind (`issuance`, `sighting`, `suspension`, `lift`),
/// index and canonical bytes.
pub type TimelineEvent = (String, u64, Vec<u8>);

/// What the sequencer records beside an issuance entry: its (jti, iss) key, which makes a
/// repeated report the same entry, its refresh token, and the identity it belongs to.
#[derive(Clone, Debug)]
pub struct IssuanceKey {
    pub jti: Jti,
    pub iss: String,
    pub sub: String,
    pub vo: Vo,
    pub client_id: Option<String>,
    pub refresh_jti: Option<Jti>,
}

impl IssuanceKey {
    /// The lookup key of an issuance entry (checked when it was made), exactly as the
    /// append path records it.
    pub fn of(issuance: &Issuance) -> IssuanceKey {
        IssuanceKey {
            jti: Jti::unchecked(&issuance.jti),
            iss: issuance.iss.clone(),
            sub: issuance.sub.clone(),
            vo: Vo::unchecked(&issuance.vo),
            client_id: issuance.client_id.clone(),
            refresh_jti: issuance.refresh_jti.as_deref().map(Jti::unchecked),
        }
    }
}

/// A state change that goes with a log entry, written in the entry's transaction.
#[derive(Clone, Debug)]
pub enum StateChange {
    Suspend(Box<SuspensionRecord>),
    Lift {
        suspension_id: String,
        lifted_by: String,
        lifted_at: i64,
    },
    /// Attach identity `(iss, sub)` of `vo`, which belongs to no person, to a person.
    Link {
        vo: Vo,
        person_id: PersonId,
        iss: String,
        sub: String,
        created_at: i64,
    },
    /// Move every identity, pseudonym and suspension of person `from` to `into`, and record
    /// that `from` was merged away.
    Merge {
        vo: Vo,
        into: PersonId,
        from: PersonId,
    },
    Sighting {
        site: Site,
        vo: Vo,
        iss: String,
        jti: Jti,
    },
    /// A site's request that the VO suspend a person at every site of the VO.
    RequestSuspension(Box<SuspensionRequestRecord>),
    /// A pending suspension request accepted (its suspension logged in the same job) or
    /// declined.
    DecideRequest {
        request_id: String,
        decision: RequestDecision,
        decided_by: String,
        decided_at: i64,
    },
    /// Redact the entries of `ranges` (a `redaction` or `erasure` entry, whose index is
    /// recorded as the redacting one) at `at` (unix microseconds): their leaves and lookup
    /// rows are deleted, their stored hashes kept, and what resolution needs of an issuance
    /// kept as digests ([`RedactedToken`]). Entries already redacted are left as they are.
    /// `holds_at` is the log size the retention run read its holds at: the sequencer refuses
    /// the redaction if a change of holds was logged since ([`crate::preconditions`]).
    /// `key` keys the digests kept of redacted issuances. `persons` are persons whose
    /// identities and pseudonyms go too, unless something kept still needs them (an
    /// erasure's person; empty for a retention run).
    Redact {
        ranges: Vec<IndexRange>,
        at: i64,
        holds_at: u64,
        key: RedactionKey,
        persons: Vec<(Vo, PersonId)>,
    },
    /// The entry is the whole record (site key fetches).
    None,
}

/// What the VO's security officers made of a suspension request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestDecision {
    Accepted { suspension_id: String },
    Declined { reason: String },
}

impl RequestDecision {
    pub fn status(&self) -> RequestStatus {
        match self {
            RequestDecision::Accepted { .. } => RequestStatus::Accepted,
            RequestDecision::Declined { .. } => RequestStatus::Declined,
        }
    }
}

/// A site's suspension request: as the writer records it (with
/// [`StateChange::RequestSuspension`]) and as it is read back.
#[derive(Clone, Debug)]
pub struct SuspensionRequestRecord {
    pub id: String,
    /// The index of the request's entry (the writer records the index the entry gets).
    pub idx: u64,
    pub site: Site,
    pub vo: Vo,
    pub person_id: PersonId,
    /// The requesting site's pseudonym of the person.
    pub pseudonym: Pseudonym,
    pub token_iss: Option<String>,
    pub token_jti: Option<Jti>,
    pub evidence: String,
    /// The proposed terms.
    pub scope: Option<Scope>,
    pub reason_code: Option<String>,
    pub not_after: Option<i64>,
    pub requested_by: String,
    pub requested_at: i64,
    pub status: RequestStatus,
    /// Set by [`StateChange::DecideRequest`], never by the request.
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub decision_idx: Option<u64>,
    pub suspension_id: Option<String>,
    pub decline_reason: Option<String>,
}

/// A suspension: as the writer records it (with [`StateChange::Suspend`]) and as it is read
/// back.
#[derive(Clone, Debug)]
pub struct SuspensionRecord {
    pub id: String,
    /// The index of the suspension's entry: the log's to give, so the writer records the
    /// index the entry gets, not this.
    pub idx: u64,
    pub site: Option<Site>,
    pub vo: Vo,
    /// The person (also of a single token); none for a client suspension.
    pub person_id: Option<PersonId>,
    pub token_iss: Option<String>,
    pub token_jti: Option<Jti>,
    /// A client suspension's issuer and client id (`client_id` / `azp`).
    pub client_iss: Option<String>,
    pub client_id: Option<String>,
    pub scope: Scope,
    pub reason_code: String,
    pub created_by: String,
    pub created_at: i64,
    pub not_after: Option<i64>,
    /// A not-before cut-off (unix seconds): only tokens issued before it are suspended.
    pub issued_before: Option<i64>,
    /// Set by a lift ([`StateChange::Lift`]), never by a suspension.
    pub lifted_at: Option<i64>,
}

impl SuspensionRecord {
    /// Neither lifted nor past `not_after` at `now` (unix seconds).
    pub fn is_active(&self, now: i64) -> bool {
        self.lifted_at.is_none() && blocklist::in_force(self.not_after, now)
    }

    /// `person`, `token` or `client`.
    pub fn target(&self) -> &'static str {
        if self.token_jti.is_some() {
            "token"
        } else if self.client_id.is_some() {
            "client"
        } else {
            "person"
        }
    }
}

/// A credential as listed (never with its secret).
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct CredentialInfo {
    pub id: String,
    #[serde(flatten)]
    pub binding: Binding,
    pub label: Option<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A new entry at `index`: its canonical bytes (the engine chooses how to store them).
pub struct NewEntry<'a> {
    pub index: u64,
    pub leaf: &'a [u8],
}

/// A new issuance key pointing at its entry, logged at `logged_at` (unix microseconds).
pub struct IssuanceRow<'a> {
    pub index: u64,
    pub key: &'a IssuanceKey,
    pub logged_at: i64,
}

/// A signed checkpoint as stored: its size, note, and when it was written (unix
/// microseconds).
#[derive(Clone, Copy)]
pub struct CheckpointRow<'a> {
    pub size: u64,
    pub note: &'a str,
    pub created_at: i64,
}

/// Everything one batch of the writer writes, in one transaction.
#[derive(Default)]
pub struct Batch<'a> {
    /// When the batch is written (unix microseconds): the time of the rows the engine adds
    /// on its own (a new compression dictionary).
    pub written_at: i64,
    pub entries: Vec<NewEntry<'a>>,
    /// Stored hashes (stored index, hash) of the new entries.
    pub hashes: &'a [(u64, Hash)],
    pub issuances: Vec<IssuanceRow<'a>>,
    /// Resolution entries by VO.
    pub resolutions: Vec<(u64, &'a Vo)>,
    /// The state change of each entry that has one, by index.
    pub state_changes: Vec<(u64, &'a StateChange)>,
    pub checkpoint: Option<CheckpointRow<'a>>,
}

impl Batch<'_> {
    /// Whether the batch holds a redaction (which may delete identities and pseudonyms).
    pub fn redacts(&self) -> bool {
        self.state_changes
            .iter()
            .any(|(_, change)| matches!(change, StateChange::Redact { .. }))
    }
}

/// The rows a batch's state changes name, asked of the writer before the batch is decided.
#[derive(Debug, Default)]
pub struct StateQuery {
    /// Suspensions named by lifts.
    pub suspensions: Vec<String>,
    /// Persons `(vo, person)`.
    pub persons: Vec<(Vo, PersonId)>,
    /// Identities `(iss, sub, vo)` named by links.
    pub identities: Vec<(String, String, Vo)>,
    /// Suspension requests named by decisions.
    pub requests: Vec<String>,
}

impl StateQuery {
    /// The persons `[vo, person]` asked for, each once.
    pub fn persons_named(&self) -> BTreeSet<[&str; 2]> {
        self.persons
            .iter()
            .map(|(vo, person)| [vo.as_str(), person.as_str()])
            .collect()
    }

    /// The identities `[iss, sub, vo]` asked for, each once.
    pub fn identities_named(&self) -> BTreeSet<[&str; 3]> {
        self.identities
            .iter()
            .map(|(iss, sub, vo)| [iss.as_str(), sub.as_str(), vo.as_str()])
            .collect()
    }
}

/// The stored state a [`StateQuery`] asked for.
#[derive(Debug, Default)]
pub struct StateRows {
    /// Each suspension asked for that exists, and whether it is lifted.
    pub lifted: Vec<(String, bool)>,
    /// The persons `(vo, person)` asked for that have an identity in their VO.
    pub live: Vec<(Vo, PersonId)>,
    /// Persons asked for that were merged away: `(vo, person, into)`.
    pub merged: Vec<(Vo, PersonId, PersonId)>,
    /// Identities asked for that belong to a person: `(iss, sub, vo, person)`.
    pub owners: Vec<(String, String, Vo, PersonId)>,
    /// Each suspension request asked for that exists, and whether it is still pending.
    pub pending: Vec<(String, bool)>,
}

/// The rows a [`StateQuery`] found, as each engine reads them (text columns), before they
/// become [`StateRows`].
pub struct StoredState {
    pub lifted: Vec<(String, bool)>,
    /// `(vo, person)` of identities of the persons asked for, in any VO.
    pub live: Vec<(String, String)>,
    pub merged: Vec<(String, String, String)>,
    pub owners: Vec<(String, String, String, String)>,
    pub pending: Vec<(String, bool)>,
}

impl StoredState {
    /// The state rows, `live` kept to the persons `named` `[vo, person]`.
    pub fn rows(self, named: &BTreeSet<[&str; 2]>) -> StateRows {
        StateRows {
            lifted: self.lifted,
            live: self
                .live
                .into_iter()
                .filter(|(vo, id)| named.contains(&[vo.as_str(), id.as_str()]))
                .map(|(vo, id)| (Vo::unchecked(vo), PersonId::unchecked(id)))
                .collect(),
            merged: self
                .merged
                .into_iter()
                .map(|(vo, id, into)| {
                    let into = PersonId::unchecked(into);
                    (Vo::unchecked(vo), PersonId::unchecked(id), into)
                })
                .collect(),
            owners: self
                .owners
                .into_iter()
                .map(|(iss, sub, vo, id)| (iss, sub, Vo::unchecked(vo), PersonId::unchecked(id)))
                .collect(),
            pending: self.pending,
        }
    }
}

/// Filters of an issuance listing; every present filter must match.
#[derive(Debug)]
pub struct IssuanceFilter<'a> {
    pub vo: &'a Vo,
    /// Any of these identities `(iss, sub)`.
    pub identities: Option<&'a [(String, String)]>,
    pub client_id: Option<&'a str>,
    /// A scope the token carried, exactly.
    pub scope: Option<&'a str>,
    /// Token issued (`iat`, else logged) at or after, unix seconds.
    pub from: Option<i64>,
    /// Token issued before, unix seconds.
    pub to: Option<i64>,
    /// Only entries with a smaller index (paging, newest first).
    pub before: Option<u64>,
    pub limit: u32,
}

impl<'a> IssuanceFilter<'a> {
    /// Every issuance of `vo`: no other filter, no limit.
    pub fn in_vo(vo: &'a Vo) -> Self {
        IssuanceFilter {
            vo,
            identities: None,
            client_id: None,
            scope: None,
            from: None,
            to: None,
            before: None,
            limit: u32::MAX,
        }
    }

    /// Whether the filter looks into the entries themselves (scope, time), beyond what the
    /// lookup rows tell.
    pub fn checks_entries(&self) -> bool {
        self.scope.is_some() || self.from.is_some() || self.to.is_some()
    }

    /// Whether an issuance entry has the filter's scope and was issued (`iat`, else logged)
    /// in its time window.
    pub fn entry_matches(&self, index: u64, leaf: &[u8]) -> Result<bool, StoreError> {
        let entry = LogEntry::from_canonical_bytes(leaf)
            .map_err(|e| StoreError::Corrupt(format!("entry {index}: {e}")))?;
        let EntryBody::Issuance(issuance) = &entry.body else {
            return Err(StoreError::Corrupt(format!(
                "entry {index} is not an issuance"
            )));
        };
        let issued = issuance.iat.unwrap_or(entry.logged_at / 1_000_000);
        Ok(self
            .scope
            .is_none_or(|scope| issuance.scopes.iter().any(|s| s == scope))
            && self.from.is_none_or(|from| issued >= from)
            && self.to.is_none_or(|to| issued < to))
    }
}

/// Decodes an issuance entry.
pub fn decode_issuance(index: u64, leaf: &[u8]) -> Result<Issuance, StoreError> {
    match LogEntry::from_canonical_bytes(leaf) {
        Ok(LogEntry {
            body: EntryBody::Issuance(issuance),
            ..
        }) => Ok(*issuance),
        Ok(_) => Err(StoreError::Corrupt(format!(
            "entry {index} is not an issuance"
        ))),
        Err(e) => Err(StoreError::Corrupt(format!("entry {index}: {e}"))),
    }
}

/// One fetch of a site's blocklist, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlocklistFetch<'a> {
    pub site: &'a Site,
    /// The fetching credential (the principal's id).
    pub credential_id: &'a str,
    /// The sequence served, or (with `served` false) the one the caller's ETag named.
    pub sequence: u64,
    /// A document (signed blocklist or export) was served, not a 304.
    pub served: bool,
    /// Unix seconds.
    pub at: i64,
}

/// A site's fetches as they bear on one suspension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteFetches {
    pub site: Site,
    /// The sequence of the site's first signed blocklist carrying the suspension.
    pub first_sequence: Option<u64>,
    /// The first fetch (unix seconds, sequence) of a sequence >= `first_sequence`.
    pub first_fetch: Option<(i64, u64)>,
    /// The site's last fetch of any sequence (unix seconds).
    pub last_fetch: Option<i64>,
}
