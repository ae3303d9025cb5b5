//! Request and response bodies of the HTTP API, shared by the server and the CLI client.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::merkle::Hash;

/// Most issuance reports accepted in one request.
pub const MAX_BATCH: usize = 1000;
/// Most entries returned by one `GET /v1/log/entries` page.
pub const MAX_ENTRIES_PAGE: u64 = 1000;

/// The body of every error answer: `{"error": {"code": ..., "message": ...}}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// A machine-readable code and a message for people.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

/// One issuance report: either the JWT itself (`token`, signature checked, VO derived from
/// its claims) or its claims (`claims`, from a credential bound to the issuer), plus what the
/// issuer knows about the token's origin.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct IssuanceReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<Map<String, Value>>,
    /// The token this one was derived from (refresh, exchange).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_jti: Option<String>,
    /// The grant that produced the token (authorization_code, refresh_token, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_type: Option<String>,
    /// The refresh token issued with, or used for, this token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_jti: Option<String>,
    /// The feed the report came through (iam-audit, keycloak-events, ndjson, jwt-lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed: Option<String>,
}

/// Whether an append made a new entry or found the same one already logged.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AppendStatus {
    Created,
    Duplicate,
}

/// Where an issuance sits in the log, with the log's signed receipt for it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    pub index: u64,
    pub leaf_hash: Hash,
    /// When the ledger accepted the report (unix microseconds; the entry's `logged_at`).
    pub integrated_at: i64,
    /// Base64 Ed25519 signature by the log key over (origin, index, leaf_hash, integrated_at):
    /// see `receipt::receipt_message`.
    pub receipt: String,
    pub status: AppendStatus,
}

/// One line of an `application/x-ndjson` answer: the result, or the error, of the same input line.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub enum LineResult {
    Appended(Appended),
    Rejected { line: u64, error: ErrorDetail },
}

/// Answer to a batch: one result per report, in request order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AppendedBatch {
    pub results: Vec<Appended>,
}

/// `GET /v1/log/proof/inclusion?index=&size=`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    pub index: u64,
    pub size: u64,
    pub leaf_hash: Hash,
    pub hashes: Vec<Hash>,
}

/// `GET /v1/log/proof/consistency?from=&to=`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    pub hashes: Vec<Hash>,
}

/// One entry as served: its index, the base64 of its canonical bytes, and those bytes decoded.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ServedEntry {
    pub index: u64,
    pub leaf: String,
    pub entry: Value,
}

/// `GET /v1/log/entries?start=&end=`: entries `start..end`, end exclusive.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct EntriesPage {
    pub entries: Vec<ServedEntry>,
}

/// An identity of a person: `(iss, sub)`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct IdentityView {
    pub iss: String,
    pub sub: String,
}

/// A person as a VO security officer sees it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PersonView {
    pub id: String,
    pub vo: String,
    pub identities: Vec<IdentityView>,
}

/// `GET /v1/vos/{vo}/tokens/{jti}?reason=`: the person behind a token, with proof.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TokenResolution {
    /// Index of the `resolution` entry that logged this answer.
    pub resolution_index: u64,
    pub person: PersonView,
    /// The issuance entry.
    pub issuance: ServedEntry,
    /// Inclusion of the issuance in `checkpoint`.
    pub inclusion_proof: InclusionProof,
    /// The signed checkpoint the proof is against.
    pub checkpoint: String,
    /// The chain from this token up to its root.
    pub chain: crate::chain::Chain,
    /// The person at the root of the chain, where the root is not a pilot/service token.
    pub human: Option<PersonView>,
}

/// A page of issuances, newest first, from a search or a person's token list.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct IssuancePage {
    /// Index of the `resolution` entry that logged this answer.
    pub resolution_index: u64,
    pub issuances: Vec<ServedEntry>,
    /// Pass as `before` to get the next (older) page; absent on the last page.
    pub next_before: Option<u64>,
}

/// One event of a person's timeline.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TimelineEvent {
    /// `issuance` (sightings and suspensions join as they are built).
    pub kind: String,
    pub index: u64,
    /// Unix microseconds.
    pub at: i64,
    pub entry: Value,
}

/// `GET /v1/vos/{vo}/persons/{person}/timeline`: newest first, paginated.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Timeline {
    pub resolution_index: u64,
    pub person: PersonView,
    pub events: Vec<TimelineEvent>,
    pub next_before: Option<u64>,
}

/// `GET /v1/vos/{vo}/resolutions`: who resolved what, newest first.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ResolutionPage {
    pub resolutions: Vec<ServedEntry>,
    pub next_before: Option<u64>,
}
