//! Request and response bodies of the HTTP API, shared by the server and the CLI client.

use std::collections::BTreeMap;

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
    #[cfg_attr(feature = "openapi", schema(value_type = Option<checked::Id>))]
    pub parent_jti: Option<String>,
    /// The grant that produced the token (authorization_code, refresh_token, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_type: Option<String>,
    /// The refresh token issued with, or used for, this token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<checked::Id>))]
    pub refresh_jti: Option<String>,
    /// The feed the report came through (iam-audit, keycloak-events, ndjson, jwt-lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<checked::Code>))]
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
    #[cfg_attr(feature = "openapi", schema(value_type = checked::IssuanceBatch))]
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

/// An entry of the log as served: whole, or, once a retention run or an erasure removed its
/// bytes, redacted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum LogEntryView {
    Served(ServedEntry),
    Redacted(RedactedEntryView),
}

impl LogEntryView {
    pub fn index(&self) -> u64 {
        match self {
            LogEntryView::Served(served) => served.index,
            LogEntryView::Redacted(redacted) => redacted.index,
        }
    }
}

/// A redacted entry: its bytes are gone, its leaf hash (the hash its inclusion proofs and
/// every checkpoint still commit to) stays.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RedactedEntryView {
    /// The entry's index in the log.
    pub index: u64,
    /// RFC 6962 leaf hash of the entry's canonical bytes, as stored.
    pub leaf_hash: Hash,
    pub redacted: Redacted,
}

/// When and by which entry an entry was redacted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Redacted {
    /// When (unix microseconds).
    pub at: i64,
    /// The index of the `redaction` (retention run) or `erasure` entry that removed it.
    pub by: u64,
}

/// `GET /v1/log/entries?start=&end=`: entries `start..end`, end exclusive.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EntriesPage {
    pub entries: Vec<LogEntryView>,
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

/// A redaction (a retention run's `redaction` entry or an `erasure`) that cut into a
/// timeline page's span of the log: entries of the person may be missing there, since what a
/// redacted entry was about is no longer known.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineRedaction {
    /// The index of the `redaction` or `erasure` entry.
    pub index: u64,
    /// When it was logged, unix microseconds.
    pub at: i64,
    /// The first entry of the span its ranges cover.
    pub first: u64,
    /// One past the last entry of that span.
    pub end: u64,
}

/// `GET /v1/vos/{vo}/persons/{person}/timeline`: newest first, paginated.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Timeline {
    /// Index of the `resolution` entry that logged this answer.
    pub resolution_index: u64,
    pub person: PersonView,
    pub events: Vec<TimelineEvent>,
    /// The gaps: the redactions whose span meets this page's span of the log (from its
    /// oldest event, or the log's start on the last page, up to `before` or the log's end),
    /// newest first, at most 100.
    #[serde(default)]
    pub redactions: Vec<TimelineRedaction>,
    /// Pass as `before` to get the next (older) page; null on the last page.
    pub next_before: Option<u64>,
}

/// `GET /v1/vos/{vo}/resolutions`: who resolved what, newest first.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResolutionPage {
    /// The `resolution` and `erasure` entries of the VO.
    pub resolutions: Vec<ServedEntry>,
    /// Pass as `before` to get the next (older) page; null on the last page.
    pub next_before: Option<u64>,
}

/// `GET /healthz`: the server answers and knows its log size, its role (the writer, or a
/// standby naming the writer), and whether it met storage errors in the last minute.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `ok`, or `degraded` (answered with 503) while storage errors were met in the last
    /// minute.
    pub status: String,
    /// Entries in the log: on a standby, as of the newest checkpoint the writer stored (at
    /// most about a second behind).
    pub log_size: u64,
    /// Whether this server appends (`writer`) or only reads (`standby`): route writes to
    /// the writer.
    pub role: ServerRole,
    /// On a standby, the writer's name (its `[server] advertise`); absent when no server
    /// holds the writer lease, and on the writer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<String>,
    /// Storage errors (database errors, stored entries failing their integrity check) of
    /// the last minute; absent when there were none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_errors_last_minute: Option<u64>,
}

/// A server's role among those sharing one database: one writer, any number of standbys,
/// which serve reads and answer writes with 503 `not_the_writer`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ServerRole {
    Writer,
    Standby,
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

/// Declares [`SuspendRequest`] and its wire forms from one list of fields. A wire form is the
/// request with the person under the name its route gives it (`pseudonym` at a site, `person`
/// in a VO), converts into the request and back, and documents the `per_form` fields in its
/// own words (their docs, in order, follow the form's binding).
macro_rules! suspend_requests {
    (
        $(#[$doc:meta])*
        pub struct $request:ident {
            $(#[$subject_doc:meta])*
            pub $subject:ident: Option<String>,
            per_form $per_form:tt
            $shared:tt
        }
        $( $(#[$form_doc:meta])* pub struct $form:ident $form_body:tt )*
    ) => {
        suspend_requests!(@request [$(#[$doc])*] $request [$(#[$subject_doc])*] $subject $per_form $shared);
        $( suspend_requests!(@form [$(#[$form_doc])*] $form $form_body $request $subject $per_form $shared); )*
    };
    (
        @request [$($doc:tt)*] $request:ident [$($subject_doc:tt)*] $subject:ident
        { $( $(#[$per_form_attr:meta])* pub $per_form_field:ident: $per_form_ty:ty, )* }
        { $( $(#[$attr:meta])* pub $field:ident: $ty:ty, )* }
    ) => {
        $($doc)*
        #[derive(Clone, Debug, PartialEq, Eq, Default)]
        pub struct $request {
            $($subject_doc)*
            pub $subject: Option<String>,
            $( pub $per_form_field: $per_form_ty, )*
            $( pub $field: $ty, )*
        }
    };
    (
        @form [$($doc:tt)*] $form:ident
        { $(#[$binding_doc:meta])* $binding:ident, per_form { $($per_form_doc:tt),* $(,)? } }
        $request:ident $subject:ident
        { $( $(#[$per_form_attr:meta])* pub $per_form_field:ident: $per_form_ty:ty, )* }
        { $( $(#[$attr:meta])* pub $field:ident: $ty:ty, )* }
    ) => {
        $($doc)*
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
        #[serde(deny_unknown_fields)]
        pub struct $form {
            $(#[$binding_doc])*
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub $binding: Option<String>,
            $( #[doc = $per_form_doc] $(#[$per_form_attr])* pub $per_form_field: $per_form_ty, )*
            $( $(#[$attr])* pub $field: $ty, )*
        }

        impl From<$form> for $request {
            fn from(form: $form) -> Self {
                $request {
                    $subject: form.$binding,
                    $( $per_form_field: form.$per_form_field, )*
                    $( $field: form.$field, )*
                }
            }
        }

        impl From<$request> for $form {
            fn from(request: $request) -> Self {
                $form {
                    $binding: request.$subject,
                    $( $per_form_field: request.$per_form_field, )*
                    $( $field: request.$field, )*
                }
            }
        }
    };
}

suspend_requests! {
    /// A request to suspend, whichever route it came to ([`SiteSuspendRequest`],
    /// [`VoSuspendRequest`]): the person in the route's words, or a token, and the terms.
    /// Each field is as the wire forms document it.
    pub struct SuspendRequest {
        /// The person: a pseudonym at a site, a person id (`pe-...`) in a VO.
        pub subject: Option<String>,
        per_form {
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[cfg_attr(feature = "openapi", schema(value_type = Option<checked::Id>))]
            pub jti: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[cfg_attr(feature = "openapi", schema(value_type = Option<checked::Id>))]
            pub client: Option<String>,
            #[cfg_attr(feature = "openapi", schema(value_type = checked::Reason))]
            pub reason: String,
        }
        {
            /// The jti's issuer, where several issuers logged the same jti; with `client`,
            /// required: the client's issuer.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub iss: Option<String>,
            /// `person` (default), `token` (needs `jti`) or `client` (the default with
            /// `client`).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[cfg_attr(feature = "openapi", schema(value_type = Option<checked::SuspensionTarget>))]
            pub target: Option<String>,
            /// `compute`, `storage` or `all` (default).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::blocklist::Scope>))]
            pub scope: Option<String>,
            /// A short code for plugins and logs; default `suspended`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[cfg_attr(feature = "openapi", schema(value_type = Option<checked::Code>))]
            pub reason_code: Option<String>,
            /// Unix seconds after which the suspension ends on its own; in the future.
            #[serde(
                default,
                deserialize_with = "whole_number::optional",
                skip_serializing_if = "Option::is_none"
            )]
            pub expires_at: Option<i64>,
            /// A not-before cut-off, unix seconds, not in the future: only the person's (or the
            /// client's) tokens issued before it are suspended (`iat` before it; a token without
            /// `iat` is suspended too); tokens issued at or after it pass. Not with `target: token`.
            #[serde(
                default,
                deserialize_with = "whole_number::optional",
                skip_serializing_if = "Option::is_none"
            )]
            #[cfg_attr(feature = "openapi", schema(minimum = 0))]
            pub issued_before: Option<i64>,
        }
    }

    /// `POST /v1/sites/{site}/suspensions`: suspend a pseudonym (a person), or the person
    /// behind a jti, or (`target: token`) only that jti, or a client of an issuer; a person or a
    /// client possibly only for tokens issued before a cut-off.
    pub struct SiteSuspendRequest {
        /// The person's pseudonym at this site. Exactly one of `pseudonym`, `jti` and `client`.
        pseudonym,
        per_form {
            "A token seen at the site. Exactly one of `pseudonym`, `jti` and `client`.",
            "A client of `iss` (a token's `client_id`, else its `azp`): suspends every token the \
             client gets, whoever's. Exactly one of `pseudonym`, `jti` and `client`.",
            "Why, for the log (incident or ticket); never in the blocklist.",
        }
    }

    /// `POST /v1/vos/{vo}/suspensions`: suspend a person (by id, or the person behind a jti),
    /// one token, or a client of an issuer, at every site of the VO; a person or a client
    /// possibly only for tokens issued before a cut-off.
    pub struct VoSuspendRequest {
        /// The person's id (`pe-...`). Exactly one of `person`, `jti` and `client`.
        person,
        per_form {
            "A token of the VO. Exactly one of `person`, `jti` and `client`.",
            "A client of `iss` (a token's `client_id`, else its `azp`): suspends every token the \
             client gets, whoever's. Exactly one of `person`, `jti` and `client`.",
            "Why, for the log (incident or ticket).",
        }
    }
}

/// `DELETE /v1/.../suspensions/{id}`: lift, with a reason.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LiftRequest {
    /// Why the suspension is lifted.
    #[cfg_attr(feature = "openapi", schema(value_type = checked::Reason))]
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
    /// `person`, `token` or `client`.
    pub target: String,
    /// A client suspension's issuer and client id: in the suspending site's listing, or the
    /// VO's own; another site sees only that a client of the VO is suspended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The not-before cut-off, unix seconds: only tokens issued before it are suspended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_before: Option<i64>,
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

/// `GET /v1/vos/{vo}/suspensions/{id}/enforcement` (and the site variant): per site the
/// suspension reaches, whether the site has fetched a blocklist carrying it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct EnforcementStatus {
    pub suspension_id: String,
    pub vo: String,
    /// The suspending site; absent for a VO-wide suspension.
    pub site: Option<String>,
    /// Neither lifted nor past `not_after`.
    pub active: bool,
    /// Unix microseconds, if lifted (the sites below then say when they enforced it).
    pub lifted_at: Option<i64>,
    /// A client suspension or a not-before cut-off: only `tokenledger check` given the
    /// token's claims (HTCondor) enforces it as meant. ARC's `%D` names no client and no
    /// `iat`, and no export names a client or compares `iat`: `fetched` says a site holds it,
    /// not that its ARC CEs or export consumers enforce it.
    #[serde(default)]
    pub check_only: bool,
    /// By site name: every site serving the VO (VO-wide), the suspending site (site
    /// suspension), or only the asking site (the site variant).
    pub sites: Vec<SiteEnforcement>,
}

/// One site's fetches of the suspension.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SiteEnforcement {
    pub site: String,
    /// `fetched`: a credential of the site fetched a blocklist (or export) carrying the
    /// suspension; `not_fetched`: none has yet.
    #[cfg_attr(feature = "openapi", schema(pattern = "^(fetched|not_fetched)$"))]
    pub status: String,
    /// The sequence of the site's first signed blocklist carrying the suspension; absent if
    /// none was signed yet.
    pub first_sequence: Option<u64>,
    /// Unix seconds: the first fetch of a blocklist of `sequence` >= `first_sequence`.
    pub fetched_at: Option<i64>,
    /// The sequence of that first fetch.
    pub sequence: Option<u64>,
    /// Unix seconds: the site's last blocklist fetch (any sequence), if ever.
    pub last_fetch_at: Option<i64>,
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
    /// The token seen.
    #[cfg_attr(feature = "openapi", schema(value_type = checked::Id))]
    pub jti: String,
    /// The token's issuer, where several issuers logged the same jti.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// When it was seen: unix seconds, not in the future (beyond the ledger's clock skew).
    #[serde(deserialize_with = "whole_number::required")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub seen_at: i64,
    /// Where: the worker node, door or host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<checked::Id>))]
    pub host: Option<String>,
    /// The job or session it was used in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<checked::Id>))]
    pub job_id: Option<String>,
}

/// `POST /v1/vos/{vo}/persons/{person}/identities`: attach another identity to a person.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// The identity's issuer, or `x509` for a certificate's DN.
    #[cfg_attr(feature = "openapi", schema(value_type = checked::Id))]
    pub iss: String,
    /// The subject at that issuer (a DN for `x509`, without `$`, `` ` ``, `\`, `'` or `"`).
    #[cfg_attr(feature = "openapi", schema(value_type = checked::Id))]
    pub sub: String,
    /// Why, for the log.
    #[cfg_attr(feature = "openapi", schema(value_type = checked::Reason))]
    pub reason: String,
}

/// `POST /v1/vos/{vo}/persons/{person}/merge`: move every identity of `other` to this person.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// The person merged away: not the one merged into.
    pub other: String,
    /// Why, for the log.
    #[cfg_attr(feature = "openapi", schema(value_type = checked::Reason))]
    pub reason: String,
}

/// `POST /v1/vos/{vo}/persons/{person}/erasure`: redact every entry of the person now.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ErasureRequest {
    /// Why (the person's request, a ticket), for the log.
    #[cfg_attr(feature = "openapi", schema(value_type = checked::Reason))]
    pub reason: String,
}

/// What an erasure did: the `erasure` entries it logged (what they redacted) and the
/// person's entries it kept, with why.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ErasureView {
    pub vo: String,
    pub person_id: String,
    /// The `erasure` entries logged, in order: several when the person had more entries
    /// than one entry can name; one with no ranges when nothing was left to redact.
    pub erasures: Vec<ErasureEntryView>,
    /// How many entries were redacted, in all.
    pub redacted: u64,
    /// The person's entries kept because something in force needs them.
    pub kept: Vec<KeptEntryView>,
    /// What is in force about the person (`active suspension ...`, `pending suspension
    /// request ...`). While any entry of theirs is kept, so are their identities and
    /// pseudonyms.
    pub holds: Vec<String>,
}

/// One `erasure` entry: its index, the `[start, end)` ranges it redacted and how many
/// entries of each type.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ErasureEntryView {
    pub index: u64,
    pub ranges: Vec<[u64; 2]>,
    pub counts: BTreeMap<String, u64>,
}

/// A person's entry an erasure kept.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct KeptEntryView {
    pub index: u64,
    /// The entry's type (`issuance`, `suspension`, ...).
    #[serde(rename = "type")]
    pub entry_type: String,
    /// What needs it, e.g. `active suspension su-...`.
    pub because: String,
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

/// `POST /v1/sites/{site}/suspension-requests`: ask the VO's security officers to suspend,
/// at every site of the VO, the person behind the site's pseudonym (or behind a jti seen at
/// the site), with what the site saw. The terms are a proposal the officers may change.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct NewSuspensionRequest {
    /// The person's pseudonym at this site. Exactly one of `pseudonym` and `jti`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudonym: Option<String>,
    /// A token seen at the site: its person. Exactly one of `pseudonym` and `jti`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<checked::Id>))]
    pub jti: Option<String>,
    /// The jti's issuer, where several issuers logged the same jti.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// What the site saw (log lines, job ids, the incident): logged, read by the VO's
    /// officers and auditors. Line breaks allowed.
    #[cfg_attr(feature = "openapi", schema(value_type = checked::Evidence))]
    pub evidence: String,
    /// Proposed scope: `compute`, `storage` or `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::blocklist::Scope>))]
    pub scope: Option<String>,
    /// Proposed reason code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<checked::Code>))]
    pub reason_code: Option<String>,
    /// Proposed end: unix seconds, in the future.
    #[serde(
        default,
        deserialize_with = "whole_number::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<i64>,
}

/// `POST /v1/vos/{vo}/suspension-requests/{id}/accept`: suspend the person at every site of
/// the VO. Each term given replaces the one the site proposed; the others are taken from the
/// request (else the defaults of a VO-wide suspension).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct AcceptSuspensionRequest {
    /// `compute`, `storage` or `all` [default: the request's, else `all`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::blocklist::Scope>))]
    pub scope: Option<String>,
    /// Why, for the suspension's log entry [default: `suspension request {id} of site {site}`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<checked::Reason>))]
    pub reason: Option<String>,
    /// [default: the request's, else `suspended`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<checked::Code>))]
    pub reason_code: Option<String>,
    /// Unix seconds, in the future; `null`: until lifted, whatever the site proposed
    /// [default: the request's, else until lifted].
    #[serde(
        default,
        deserialize_with = "whole_number::given_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub expires_at: Option<Option<i64>>,
}

/// `POST /v1/vos/{vo}/suspension-requests/{id}/decline`: decline, with a reason the requesting
/// site reads.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeclineSuspensionRequest {
    /// Why not; the requesting site sees it.
    #[cfg_attr(feature = "openapi", schema(value_type = checked::Reason))]
    pub reason: String,
}

/// A suspension request. The requesting site's view carries its own pseudonym and the jti it
/// named, never an issuer, subject or person id; the VO's view adds the jti's issuer.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SuspensionRequestView {
    /// `sr-...`.
    pub id: String,
    /// Log index of the request's entry.
    pub index: u64,
    /// The requesting site.
    pub site: String,
    pub vo: String,
    /// The requesting site's pseudonym of the person.
    pub pseudonym: String,
    /// The token the site named, if it named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The token's issuer: only in the VO's view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    pub evidence: String,
    /// Proposed scope.
    pub scope: Option<String>,
    /// Proposed reason code.
    pub reason_code: Option<String>,
    /// Proposed end, unix seconds.
    pub expires_at: Option<i64>,
    /// The requesting credential.
    pub requested_by: String,
    /// Unix microseconds.
    pub requested_at: i64,
    pub status: crate::suspension_request::RequestStatus,
    /// Unix microseconds, once accepted or declined.
    pub decided_at: Option<i64>,
    /// Log index of the decision's entry.
    pub decision_index: Option<u64>,
    /// The VO-wide suspension made on acceptance.
    pub suspension_id: Option<String>,
    /// Why it was declined.
    pub decline_reason: Option<String>,
}

/// Suspension requests, newest first.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SuspensionRequestList {
    pub requests: Vec<SuspensionRequestView>,
}

/// Integers a client may write as JSON numbers with a zero fraction (`1.0`): JSON and JSON
/// Schema take `1.0` for the integer 1, so the API does too. Any other fraction is refused.
mod whole_number {
    use serde::{Deserialize, Deserializer, de::Error};
    use serde_json::Number;

    /// An `i64` field.
    pub fn required<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        let number = Number::deserialize(deserializer)?;
        integer(&number).ok_or_else(|| D::Error::custom(format!("{number} is not an integer")))
    }

    /// An `Option<i64>` field; `null` is none.
    pub fn optional<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
        Option::<Number>::deserialize(deserializer)?
            .map(|number| {
                integer(&number)
                    .ok_or_else(|| D::Error::custom(format!("{number} is not an integer")))
            })
            .transpose()
    }

    /// An `Option<Option<i64>>` field that tells `null` (`Some(None)`) from absent (`None`,
    /// with `#[serde(default)]`: serde calls this only for a member that is present).
    pub fn given_or_null<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<i64>>, D::Error> {
        optional(deserializer).map(Some)
    }

    /// The integer a number spells, if it is one within `i64`.
    fn integer(number: &Number) -> Option<i64> {
        // Below 2^63 in magnitude a float converts exactly; 2^63 itself saturates.
        const LIMIT: f64 = 9_223_372_036_854_775_808.0;
        number.as_i64().or_else(|| {
            let float = number.as_f64()?;
            (float.fract() == 0.0 && (-LIMIT..LIMIT).contains(&float)).then_some(float as i64)
        })
    }

    #[cfg(test)]
    mod tests {
        use crate::wire::{AcceptSuspensionRequest, SightingReport};

        fn seen_at(json: &str) -> Result<i64, String> {
            let text = format!(r#"{{"jti": "j", "seen_at": {json}}}"#);
            serde_json::from_str::<SightingReport>(&text)
                .map(|r| r.seen_at)
                .map_err(|e| e.to_string())
        }

        #[test]
        fn integers_may_have_a_zero_fraction() {
            assert_eq!(seen_at("1767225600"), Ok(1_767_225_600));
            assert_eq!(seen_at("1767225600.0"), Ok(1_767_225_600));
            assert_eq!(seen_at("-3.0e3"), Ok(-3000));
            assert_eq!(seen_at("-9223372036854775808.0"), Ok(i64::MIN));
            for bad in [
                "1.5",
                "9223372036854775808.0",
                "1e300",
                "\"1\"",
                "null",
                "18446744073709551615",
            ] {
                assert!(seen_at(bad).is_err(), "{bad}");
            }
        }

        #[test]
        fn an_acceptance_tells_an_end_of_null_from_none_given() {
            let expires_at = |json: &str| {
                serde_json::from_str::<AcceptSuspensionRequest>(json)
                    .map(|a| a.expires_at)
                    .map_err(|e| e.to_string())
            };
            assert_eq!(expires_at("{}"), Ok(None));
            assert_eq!(expires_at(r#"{"expires_at": null}"#), Ok(Some(None)));
            assert_eq!(
                expires_at(r#"{"expires_at": 1767225600.0}"#),
                Ok(Some(Some(1_767_225_600)))
            );
            assert!(expires_at(r#"{"expires_at": 1.5}"#).is_err());
            for (terms, json) in [
                (None, "{}"),
                (Some(None), r#"{"expires_at":null}"#),
                (Some(Some(7)), r#"{"expires_at":7}"#),
            ] {
                let accept = AcceptSuspensionRequest {
                    expires_at: terms,
                    ..Default::default()
                };
                assert_eq!(serde_json::to_string(&accept).unwrap(), json);
            }
        }
    }
}

/// Schemas of the strings the server checks, so the OpenAPI document states each rule once,
/// exactly as the checks in `entry` and the handlers apply it. They only describe: fields stay
/// `String`, and take these with `schema(value_type = ...)`.
#[cfg(feature = "openapi")]
pub mod checked {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
    use utoipa::openapi::{Ref, RefOr};
    use utoipa::{PartialSchema, ToSchema};

    use super::MAX_BATCH;
    use crate::entry::{MAX_ID_LEN, MAX_REASON_LEN};
    use crate::export::ExportFormat;

    /// No control character (Unicode category Cc, what `char::is_control` refuses).
    pub const NO_CONTROL: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";
    /// No control character, and at least one that is not blank either (Unicode White_Space,
    /// what `str::trim` removes).
    pub const NOT_BLANK: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*\
        [^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]\
        [^\\u0000-\\u001f\\u007f-\\u009f]*$";
    /// The bidirectional formatting characters ([`crate::export::is_bidi_formatting`]), as
    /// members of a character class.
    macro_rules! bidi_formatting {
        () => {
            "\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069"
        };
    }
    /// Line breaks and tabs, no other control character, no bidirectional formatting
    /// character, and at least one character that is not blank.
    pub const EVIDENCE: &str = concat!(
        "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f",
        bidi_formatting!(),
        "]*[^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000",
        bidi_formatting!(),
        "][^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f",
        bidi_formatting!(),
        "]*$"
    );
    /// Feed names and reason codes.
    pub const CODE: &str = "^[a-z0-9-]{1,32}$";

    /// A string schema: its description, length bounds and pattern.
    fn string(description: &str, min: usize, max: usize, pattern: &str) -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::String))
            .description(Some(description))
            .min_length(Some(min))
            .max_length(Some(max))
            .pattern(Some(pattern))
            .into()
    }

    /// Declares a schema-only type, named after it in the document, whose schema is `$schema`.
    macro_rules! schema {
        ($(#[$doc:meta])* $name:ident => $schema:expr) => {
            $(#[$doc])*
            pub struct $name;

            impl PartialSchema for $name {
                fn schema() -> RefOr<Schema> {
                    $schema
                }
            }

            impl ToSchema for $name {}
        };
    }

    schema! {
        /// Why: an incident or ticket, for the log.
        Reason => string(
            "The incident or ticket: 1 to 512 characters, not only blanks, no control \
             characters.",
            1,
            MAX_REASON_LEN,
            NOT_BLANK,
        )
    }

    schema! {
        /// An identifier the ledger logs (jti, iss, sub, host, job).
        Id => string(
            "An identifier: 1 to 1024 characters, no control characters.",
            1,
            MAX_ID_LEN,
            NO_CONTROL,
        )
    }

    schema! {
        /// What a site saw, for a suspension request.
        Evidence => string(
            "What the site saw: 1 to 2048 characters, not only blanks; line breaks and tabs \
             allowed, no other control characters, no bidirectional formatting characters \
             (U+061C, U+200E, U+200F, U+202A to U+202E, U+2066 to U+2069).",
            1,
            crate::suspension_request::MAX_EVIDENCE_LEN,
            EVIDENCE,
        )
    }

    schema! {
        /// A feed name or reason code.
        Code => string("1 to 32 of a-z, 0-9, `-`.", 1, 32, CODE)
    }

    schema! {
        /// An array of 1 to [`MAX_BATCH`] issuance reports.
        IssuanceBatch => ArrayBuilder::new()
            .items(Ref::from_schema_name("IssuanceReport"))
            .min_items(Some(1))
            .max_items(Some(MAX_BATCH))
            .into()
    }

    schema! {
        /// What a site's blocklist is asked for in: `json` (the signed blocklist) or an export.
        BlocklistFormat => ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::String))
            .enum_values(Some(
                ["json"]
                    .into_iter()
                    .chain(ExportFormat::ALL.map(ExportFormat::as_str)),
            ))
            .into()
    }

    /// What a suspension is of: the person (default), only the token named by `jti`, or
    /// the client named by `client` (the default with `client`).
    #[derive(utoipa::ToSchema)]
    #[schema(rename_all = "lowercase")]
    pub enum SuspensionTarget {
        Person,
        Token,
        Client,
    }

    #[cfg(test)]
    mod tests {
        use crate::export::is_bidi_formatting;

        /// The characters a class's members (`\\uXXXX` and `\\uXXXX-\\uXXXX`) name.
        fn members(class: &str) -> Vec<char> {
            let code = |hex: &str| u32::from_str_radix(hex, 16).unwrap();
            let mut items = class.split("\\u").skip(1);
            let mut codes = Vec::new();
            while let Some(item) = items.next() {
                match item.strip_suffix('-') {
                    Some(from) => codes.extend(code(from)..=code(items.next().unwrap())),
                    None => codes.push(code(item)),
                }
            }
            codes
                .into_iter()
                .map(|c| char::from_u32(c).unwrap())
                .collect()
        }

        #[test]
        fn the_evidence_pattern_refuses_what_the_server_refuses_as_bidi_formatting() {
            let named = members(bidi_formatting!());
            let refused: Vec<char> = (0..=0xffff)
                .filter_map(char::from_u32)
                .filter(|&c| is_bidi_formatting(c))
                .collect();
            assert_eq!(named, refused);
            assert_eq!(super::EVIDENCE.matches(bidi_formatting!()).count(), 3);
        }
    }
}

#[cfg(test)]
mod suspend_request_tests {
    use super::{SiteSuspendRequest, SuspendRequest, VoSuspendRequest};

    /// Each wire form carries the person under its own name, refuses the other form's name
    /// and any unknown member, and converts into the one request and back unchanged.
    #[test]
    fn wire_forms_carry_the_subject_under_their_own_name() {
        let site: SiteSuspendRequest = serde_json::from_str(
            r#"{"pseudonym": "p1-x", "reason": "INC-1", "scope": "compute", "expires_at": 7.0}"#,
        )
        .unwrap();
        let request = SuspendRequest::from(site.clone());
        assert_eq!(request.subject.as_deref(), Some("p1-x"));
        assert_eq!(request.scope.as_deref(), Some("compute"));
        assert_eq!(request.expires_at, Some(7));
        assert_eq!(SiteSuspendRequest::from(request.clone()), site);

        let vo = VoSuspendRequest::from(request);
        assert_eq!(
            serde_json::to_value(&vo).unwrap(),
            serde_json::json!({"person": "p1-x", "reason": "INC-1", "scope": "compute", "expires_at": 7})
        );
        for (body, form) in [
            (r#"{"person": "pe-x", "reason": "r"}"#, "site"),
            (r#"{"pseudonym": "p1-x", "reason": "r"}"#, "vo"),
            (r#"{"subject": "pe-x", "reason": "r"}"#, "site"),
            (r#"{"subject": "pe-x", "reason": "r"}"#, "vo"),
        ] {
            let refused = match form {
                "site" => serde_json::from_str::<SiteSuspendRequest>(body).is_err(),
                _ => serde_json::from_str::<VoSuspendRequest>(body).is_err(),
            };
            assert!(refused, "{form}: {body}");
        }
    }
}
