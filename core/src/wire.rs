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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// A machine-readable code and a message for people.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable, machine-readable: `bad_request`, `unauthenticated`, `forbidden`, `not_found`,
    /// `conflict`, `payload_too_large`, `unsupported_media_type`, `unavailable`, `internal`,
    /// `integrity_error` (a stored entry failed its check; nothing of it is served),
    /// or a 422 reason such as `unknown_vo`, `invalid_claims`, `vo_not_derived`.
    pub code: String,
    /// For people; never internal details.
    pub message: String,
}

/// One issuance report: either the JWT itself (`token`, signature checked, VO derived from
/// its claims) or its claims (`claims`, from a credential bound to the issuer), plus what the
/// issuer knows about the token's origin.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IssuanceReport {
    /// The signed JWT (compact serialization). Exactly one of `token` and `claims`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The token's claims, unsigned: only from an issuer credential bound to their `iss`
    /// (or an admin, who names the `vo` claim). Exactly one of `token` and `claims`. An
    /// object naming a member twice, at any depth, is refused (it has no one reading).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::strict_json::optional_object"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AppendStatus {
    Created,
    Duplicate,
}

/// The `application/json` body of `POST /v1/issuances`: one report, or an array of 1 to
/// `MAX_BATCH` (1000) reports, accepted or refused as a whole.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum IssuanceRequest {
    One(IssuanceReport),
    Batch(Vec<IssuanceReport>),
}

/// The `application/json` answer of `POST /v1/issuances`: [`Appended`] for one report,
/// [`AppendedBatch`] for an array.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum IssuanceAnswer {
    One(Appended),
    Batch(AppendedBatch),
}

/// Where an issuance sits in the log, with the log's signed receipt for it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Appended {
    /// The entry's index in the log.
    pub index: u64,
    /// RFC 6962 leaf hash of the entry's canonical bytes.
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum LineResult {
    Appended(Appended),
    Rejected {
        /// The input line (from 1).
        line: u64,
        error: ErrorDetail,
    },
}

/// Answer to a batch: one result per report, in request order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppendedBatch {
    pub results: Vec<Appended>,
}

/// `GET /v1/log/proof/inclusion?index=&size=`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InclusionProof {
    /// The entry's index.
    pub index: u64,
    /// The tree size the proof is for.
    pub size: u64,
    /// The entry's leaf hash.
    pub leaf_hash: Hash,
    /// The audit path, leaf to root (RFC 9162 §2.1.3).
    pub hashes: Vec<Hash>,
}

/// `GET /v1/log/proof/consistency?from=&to=`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsistencyProof {
    /// The older tree size.
    pub from: u64,
    /// The newer tree size.
    pub to: u64,
    /// The consistency path (RFC 9162 §2.1.4); empty from size 0.
    pub hashes: Vec<Hash>,
}

/// One entry as served: its index, the base64 of its canonical bytes, and those bytes decoded.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServedEntry {
    /// The entry's index in the log.
    pub index: u64,
    /// Standard base64 of the entry's canonical bytes: exactly what was hashed.
    #[cfg_attr(feature = "openapi", schema(content_encoding = "base64"))]
    pub leaf: String,
    /// The same bytes, decoded (sorted keys, `"v": 1`, a `type`).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub entry: Value,
}

/// `GET /v1/log/entries?start=&end=`: entries `start..end`, end exclusive.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EntriesPage {
    pub entries: Vec<ServedEntry>,
}

/// An identity of a person: `(iss, sub)`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IdentityView {
    /// The issuer (or `x509`).
    pub iss: String,
    /// The subject at that issuer.
    pub sub: String,
}

/// A person as a VO security officer sees it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PersonView {
    /// The person's id in the VO (`pe-...`).
    pub id: String,
    pub vo: String,
    /// Every identity linked to the person in this VO.
    pub identities: Vec<IdentityView>,
}

/// `GET /v1/vos/{vo}/tokens/{jti}?reason=`: the person behind a token, with proof.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResolution {
    /// Index of the `resolution` entry that logged this answer.
    pub resolution_index: u64,
    /// The person the token was issued to.
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssuancePage {
    /// Index of the `resolution` entry that logged this answer.
    pub resolution_index: u64,
    /// The issuance entries.
    pub issuances: Vec<ServedEntry>,
    /// Pass as `before` to get the next (older) page; null on the last page.
    pub next_before: Option<u64>,
}

/// One event of a person's timeline.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineEvent {
    /// `issuance` (sightings and suspensions join as they are built).
    pub kind: String,
    /// The entry's index in the log.
    pub index: u64,
    /// Unix microseconds.
    pub at: i64,
    /// The entry, decoded.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub entry: Value,
}

/// `GET /v1/vos/{vo}/persons/{person}/timeline`: newest first, paginated.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Timeline {
    /// Index of the `resolution` entry that logged this answer.
    pub resolution_index: u64,
    pub person: PersonView,
    pub events: Vec<TimelineEvent>,
    /// Pass as `before` to get the next (older) page; null on the last page.
    pub next_before: Option<u64>,
}

/// `GET /v1/vos/{vo}/resolutions`: who resolved what, newest first.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResolutionPage {
    /// The `resolution` entries of the VO.
    pub resolutions: Vec<ServedEntry>,
    /// Pass as `before` to get the next (older) page; null on the last page.
    pub next_before: Option<u64>,
}

/// `GET /healthz`: the server answers and knows its log size, and whether it met storage
/// errors in the last minute.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `ok`, or `degraded` (answered with 503) while storage errors were met in the last
    /// minute.
    pub status: String,
    /// Entries in the log.
    pub log_size: u64,
    /// Storage errors (database errors, stored entries failing their integrity check) of
    /// the last minute; absent when there were none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_errors_last_minute: Option<u64>,
}

/// `GET /v1/sites/{site}/tokens/{jti}/pseudonym`: the site's pseudonym of the person
/// behind a token; never the person's identity.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SitePseudonym {
    pub site: String,
    pub vo: String,
    pub pseudonym: String,
}

/// `POST /v1/sites/{site}/suspensions`: suspend a pseudonym (a person), or the person
/// behind a jti, or (`target: token`) only that jti.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct SiteSuspendRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudonym: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The jti's issuer, where several issuers logged the same jti.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// `person` (default) or `token` (needs `jti`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `compute`, `storage` or `all` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Why, for the log (incident or ticket); never in the blocklist.
    pub reason: String,
    /// A short code for plugins and logs, `[a-z0-9-]{1,32}`; default `suspended`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    /// Unix seconds after which the suspension ends on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// `POST /v1/vos/{vo}/suspensions`: suspend a person (by id, or the person behind a jti),
/// or one token, at every site of the VO.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct VoSuspendRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// `DELETE /v1/.../suspensions/{id}`: lift, with a reason.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LiftRequest {
    pub reason: String,
}

/// A suspension as a site sees it: the site's pseudonym, never an identity or person id.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SuspensionView {
    pub id: String,
    /// Log index of the suspension entry.
    pub index: u64,
    /// The suspending site; absent for a VO-wide suspension.
    pub site: Option<String>,
    pub vo: String,
    /// The pseudonym at the site asking (for a VO's listing: at the suspending site; absent
    /// for VO-wide suspensions, which name `person` instead).
    pub pseudonym: Option<String>,
    /// Only in a VO's own listing, for VO-wide suspensions.
    pub person: Option<String>,
    /// `person` or `token`.
    pub target: String,
    pub scope: String,
    pub reason_code: String,
    /// Unix microseconds.
    pub created_at: i64,
    /// Unix seconds.
    pub not_after: Option<i64>,
    /// Unix microseconds.
    pub lifted_at: Option<i64>,
    /// Neither lifted nor past `not_after`.
    pub active: bool,
}

/// A list of suspensions, newest first.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SuspensionList {
    pub suspensions: Vec<SuspensionView>,
}

/// `GET /v1/sites/{site}/key`: `K_site` for offline enforcement (each fetch is logged).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SiteKeyAnswer {
    pub site: String,
    /// Base64 of the 32-byte key.
    pub key: String,
}

/// `POST /v1/sites/{site}/sightings`: a site saw a token in use.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SightingReport {
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Unix seconds.
    pub seen_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
}

/// `POST /v1/vos/{vo}/persons/{person}/identities`: attach another identity to a person.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    pub iss: String,
    pub sub: String,
    pub reason: String,
}

/// `POST /v1/vos/{vo}/persons/{person}/merge`: move every identity of `other` to this person.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    pub other: String,
    pub reason: String,
}

/// A signed export for consumers that cannot compute tags (dCache, Argus, HTCondor, ARC,
/// plain text): it carries identities, so only the site's admins get it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ExportDocument {
    pub site: String,
    /// The blocklist sequence it was made from.
    pub sequence: u64,
    /// Unix seconds.
    pub expires_at: i64,
    /// `dcache`, `argus`, `htcondor`, `arc` or `text`.
    pub format: String,
    /// The file contents to install.
    pub content: String,
}

/// `GET /v1/vos/{vo}/pseudonyms/{pseudonym}`: the person, and the log entry of this resolution.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PseudonymResolution {
    pub resolution_index: u64,
    #[serde(flatten)]
    pub person: PersonView,
}

/// The log index of an entry just written (sightings).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Logged {
    pub index: u64,
}
