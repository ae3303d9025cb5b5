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

/// One issuance report: the token's claims (and, for now, the VO).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IssuanceReport {
    pub claims: Map<String, Value>,
}

/// Whether an append made a new entry or found the same one already logged.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AppendStatus {
    Created,
    Duplicate,
}

/// Where an issuance sits in the log.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    pub index: u64,
    pub leaf_hash: Hash,
    pub status: AppendStatus,
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
