//! Log entries and their canonical bytes: the exact leaves that the Merkle tree hashes.
//! Canonical form: JSON with keys sorted at every level, no floats, no insignificant space, a version field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::redaction::{Erasure, Redaction};
use crate::suspension_request::{
    SuspensionRequest, SuspensionRequestAccept, SuspensionRequestDecline,
};

/// Version of the canonical entry encoding, written into every leaf as `"v"`.
pub const ENTRY_VERSION: u64 = 1;
/// Largest canonical entry accepted, in bytes.
pub const MAX_ENTRY_BYTES: usize = 16 * 1024;
/// Longest identifier accepted, in characters (as JSON Schema's `maxLength` counts them).
pub const MAX_ID_LEN: usize = 1024;
const MAX_LIST_LEN: usize = 256;

/// Why a report or an entry was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntryError {
    #[error("claim `{0}` is required")]
    Missing(&'static str),
    #[error("claim `{claim}` is invalid: {reason}")]
    Invalid { claim: String, reason: String },
    #[error("entry is {0} bytes, more than the {MAX_ENTRY_BYTES} allowed")]
    TooLarge(usize),
    #[error("entry is not canonical JSON: {0}")]
    NotCanonical(String),
}

/// Where the ledger got an issuance from, and so how far a reader may trust it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A JWT whose signature the ledger checked against the issuer's keys.
    Jwt,
    /// Claims reported by a credential bound to the issuer, without a signature to check
    /// (audit-log and event feeds).
    Claims,
}

/// Claims of a verified JWT that are kept besides the recognised ones; any other claim
/// (names, e-mail addresses...) is dropped: the ledger keeps what traceability needs.
pub const KEPT_JWT_CLAIMS: [&str; 4] = [
    "wlcg.ver",
    "eduperson_entitlement",
    "entitlements",
    "voperson_id",
];

/// One token issuance as recorded in the log.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Issuance {
    pub jti: String,
    pub iss: String,
    pub sub: String,
    pub vo: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aud: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Normalised grant: authorization_code, refresh_token, token-exchange, client_credentials, device_code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_type: Option<String>,
    /// The token this one was derived from (refresh, exchange), where the report names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_jti: Option<String>,
    /// The refresh token issued with, or used for, this token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_jti: Option<String>,
    /// RFC 8693 actor claim, as given (token exchange).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Value>,
    pub source: Source,
    /// SHA-256 (hex) of the JWT, for signature-verified reports; the JWT itself is never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
    /// The feed a claims report came through (iam-audit, keycloak-events, ndjson...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed: Option<String>,
    /// Other claims kept: for JWTs only [`KEPT_JWT_CLAIMS`]; for claims reports, all others.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, Value>,
}

/// What the ledger knows about a report beyond its claims.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportContext {
    pub source: Source,
    /// The VO, as derived from the claims or bound to the reporting credential.
    pub vo: String,
    pub grant_type: Option<String>,
    pub parent_jti: Option<String>,
    pub refresh_jti: Option<String>,
    pub token_sha256: Option<String>,
    pub feed: Option<String>,
}

/// The body of a log entry; the `type` field names the variant.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EntryBody {
    Issuance(Box<Issuance>),
    Resolution(Resolution),
    Suspension(Box<Suspension>),
    Lift(Lift),
    SiteKeyFetch(SiteKeyFetch),
    IdentityLink(IdentityLink),
    Sighting(Sighting),
    SuspensionRequest(Box<SuspensionRequest>),
    SuspensionRequestAccept(SuspensionRequestAccept),
    SuspensionRequestDecline(SuspensionRequestDecline),
    Redaction(Box<Redaction>),
    Erasure(Box<Erasure>),
}

/// The type of a log entry: its `type` field, one per [`EntryBody`] variant.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum EntryType {
    Issuance,
    Resolution,
    Suspension,
    Lift,
    SiteKeyFetch,
    IdentityLink,
    Sighting,
    SuspensionRequest,
    SuspensionRequestAccept,
    SuspensionRequestDecline,
    Redaction,
    Erasure,
}

impl EntryType {
    pub const ALL: [EntryType; 12] = [
        EntryType::Issuance,
        EntryType::Resolution,
        EntryType::Suspension,
        EntryType::Lift,
        EntryType::SiteKeyFetch,
        EntryType::IdentityLink,
        EntryType::Sighting,
        EntryType::SuspensionRequest,
        EntryType::SuspensionRequestAccept,
        EntryType::SuspensionRequestDecline,
        EntryType::Redaction,
        EntryType::Erasure,
    ];

    /// The `type` field of entries of this type.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryType::Issuance => "issuance",
            EntryType::Resolution => "resolution",
            EntryType::Suspension => "suspension",
            EntryType::Lift => "lift",
            EntryType::SiteKeyFetch => "site_key_fetch",
            EntryType::IdentityLink => "identity_link",
            EntryType::Sighting => "sighting",
            EntryType::SuspensionRequest => "suspension_request",
            EntryType::SuspensionRequestAccept => "suspension_request_accept",
            EntryType::SuspensionRequestDecline => "suspension_request_decline",
            EntryType::Redaction => "redaction",
            EntryType::Erasure => "erasure",
        }
    }

    /// Whether entries of this type name a VO (`EntryBody::vo`). A lift, a site key fetch and
    /// a retention run's redaction do not: they belong to the whole ledger.
    pub fn has_vo(self) -> bool {
        !matches!(
            self,
            EntryType::Lift | EntryType::SiteKeyFetch | EntryType::Redaction
        )
    }
}

impl std::fmt::Display for EntryType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no entry type.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is no entry type")]
pub struct UnknownEntryType(pub String);

impl std::str::FromStr for EntryType {
    type Err = UnknownEntryType;

    fn from_str(s: &str) -> Result<EntryType, UnknownEntryType> {
        EntryType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownEntryType(s.to_string()))
    }
}

impl EntryBody {
    /// The entry's type.
    pub fn entry_type(&self) -> EntryType {
        match self {
            EntryBody::Issuance(_) => EntryType::Issuance,
            EntryBody::Resolution(_) => EntryType::Resolution,
            EntryBody::Suspension(_) => EntryType::Suspension,
            EntryBody::Lift(_) => EntryType::Lift,
            EntryBody::SiteKeyFetch(_) => EntryType::SiteKeyFetch,
            EntryBody::IdentityLink(_) => EntryType::IdentityLink,
            EntryBody::Sighting(_) => EntryType::Sighting,
            EntryBody::SuspensionRequest(_) => EntryType::SuspensionRequest,
            EntryBody::SuspensionRequestAccept(_) => EntryType::SuspensionRequestAccept,
            EntryBody::SuspensionRequestDecline(_) => EntryType::SuspensionRequestDecline,
            EntryBody::Redaction(_) => EntryType::Redaction,
            EntryBody::Erasure(_) => EntryType::Erasure,
        }
    }

    /// The VO the entry belongs to, which a VO-bound reader may see; `None` for entries of
    /// the whole ledger (lifts, site key fetches, retention runs' redactions), which only
    /// ledger-wide readers see. An erasure is of one VO's person, so it names its VO.
    pub fn vo(&self) -> Option<&str> {
        match self {
            EntryBody::Issuance(i) => Some(&i.vo),
            EntryBody::Resolution(r) => Some(&r.vo),
            EntryBody::Suspension(s) => Some(&s.vo),
            EntryBody::IdentityLink(l) => Some(&l.vo),
            EntryBody::Sighting(s) => Some(&s.vo),
            EntryBody::SuspensionRequest(r) => Some(&r.vo),
            EntryBody::SuspensionRequestAccept(a) => Some(&a.vo),
            EntryBody::SuspensionRequestDecline(d) => Some(&d.vo),
            EntryBody::Erasure(e) => Some(&e.vo),
            EntryBody::Lift(_) | EntryBody::SiteKeyFetch(_) | EntryBody::Redaction(_) => None,
        }
    }

    /// Checks what the fields' types cannot say: a redaction's or an erasure's ranges and
    /// counts agree. Every other body is checked where it is made.
    fn check(&self) -> Result<(), EntryError> {
        match self {
            EntryBody::Redaction(r) => r.check(),
            EntryBody::Erasure(e) => e.check(),
            _ => Ok(()),
        }
    }
}

/// A person, one leaked token, or a client of an issuer, suspended at a site or (no `site`)
/// at every site of a VO; for a person or a client, possibly only the tokens issued before a
/// cut-off.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Suspension {
    pub suspension_id: String,
    /// The site that suspends; absent for a VO-wide suspension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    pub vo: String,
    /// The person (also of a single token); absent for a client suspension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person_id: Option<String>,
    /// The suspending site's pseudonym of the person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudonym: Option<String>,
    /// `person` (every identity), `token` (one jti) or `client` (one client of an issuer).
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_jti: Option<String>,
    /// The suspended client's issuer and id (`client_id` / `azp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `compute`, `storage` or `all`.
    pub scope: String,
    pub reason: String,
    pub reason_code: String,
    pub created_by: String,
    /// Unix seconds after which it no longer applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<i64>,
    /// A not-before cut-off (unix seconds): only tokens issued before it are suspended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_before: Option<i64>,
}

/// A suspension lifted, and why.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Lift {
    pub suspension_id: String,
    pub reason: String,
    pub lifted_by: String,
}

/// A site admin fetched its site key (for offline enforcement).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SiteKeyFetch {
    pub site: String,
    pub requester: String,
}

/// Another identity attached to a person, or (with `merged_from`) two persons merged.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct IdentityLink {
    pub vo: String,
    pub person_id: String,
    /// The identity linked; absent for a merge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The person whose identities all moved to `person_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_from: Option<String>,
    pub reason: String,
    pub linked_by: String,
}

/// A site saw a token in use.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Sighting {
    pub site: String,
    pub vo: String,
    pub iss: String,
    pub jti: String,
    /// Unix seconds.
    pub seen_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    pub reported_by: String,
}

/// A look into identities by a VO security officer, logged before the answer is given:
/// who asked, for what, why, and how much it revealed. The watchers are watched too.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    /// The caller: `credential:<id>` or `oidc:<iss>#<sub>`.
    pub requester: String,
    pub vo: String,
    /// What was asked: `resolve_jti`, `person_tokens`, `search`, `timeline`.
    pub action: String,
    /// The jti, person id or query asked about.
    pub target: String,
    /// The incident or ticket the caller gave.
    pub reason: String,
    /// How many issuances the answer revealed (0: nothing found).
    pub revealed: u64,
}

/// Longest `reason` accepted, in characters.
pub const MAX_REASON_LEN: usize = 512;

/// Checks a resolution reason: 1 to 512 characters, not only blanks, no control characters.
pub fn validate_reason(reason: &str) -> Result<(), EntryError> {
    let reason_text = reason.trim();
    if reason_text.is_empty() {
        return Err(invalid(
            "reason",
            "is required: name the incident or ticket",
        ));
    }
    if longer_than(reason, MAX_REASON_LEN) {
        return Err(invalid("reason", "is longer than 512 characters"));
    }
    if reason.chars().any(char::is_control) {
        return Err(invalid("reason", "contains control characters"));
    }
    Ok(())
}

/// A log entry: version, the time the ledger logged it (unix microseconds, UTC) and its body.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LogEntry {
    pub v: u64,
    pub logged_at: i64,
    #[serde(flatten)]
    pub body: EntryBody,
}

impl LogEntry {
    /// A current-version entry logged at `logged_at` (unix microseconds).
    pub fn new(logged_at: i64, body: EntryBody) -> LogEntry {
        LogEntry {
            v: ENTRY_VERSION,
            logged_at,
            body,
        }
    }

    /// The canonical bytes of this entry: the Merkle leaf. A body that
    /// [`LogEntry::from_canonical_bytes`] would refuse is refused here too.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, EntryError> {
        self.body.check()?;
        let value =
            serde_json::to_value(self).map_err(|e| EntryError::NotCanonical(e.to_string()))?;
        let bytes = canonical_json(&value)?;
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(EntryError::TooLarge(bytes.len()));
        }
        Ok(bytes)
    }

    /// Decodes canonical bytes back into an entry, refusing bytes that are not canonical.
    pub fn from_canonical_bytes(bytes: &[u8]) -> Result<LogEntry, EntryError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| EntryError::NotCanonical(e.to_string()))?;
        if canonical_json(&value)? != bytes {
            return Err(EntryError::NotCanonical(
                "keys unsorted or extra space".into(),
            ));
        }
        let entry: LogEntry =
            serde_json::from_value(value).map_err(|e| EntryError::NotCanonical(e.to_string()))?;
        entry.body.check()?;
        Ok(entry)
    }
}

/// Serializes a JSON value with object keys sorted at every level and no floats.
pub fn canonical_json(value: &Value) -> Result<Vec<u8>, EntryError> {
    let mut out = Vec::with_capacity(256);
    write_canonical(value, &mut out)?;
    Ok(out)
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) -> Result<(), EntryError> {
    match value {
        Value::Number(n) if !(n.is_i64() || n.is_u64()) => {
            return Err(EntryError::NotCanonical(format!(
                "number {n} is not an integer"
            )));
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_unstable_by_key(|(key, _)| *key);
            out.push(b'{');
            for (i, (key, value)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(key, out);
                out.push(b':');
                write_canonical(value, out)?;
            }
            out.push(b'}');
        }
        scalar => write_scalar(scalar, out),
    }
    Ok(())
}

/// A string, number, boolean or null as serde_json writes it, straight into `out`.
fn write_scalar<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    serde_json::to_writer(out, value).expect("a JSON scalar serializes into memory");
}

/// Refuses what [`canonical_json`] refuses (numbers that are not integers), without
/// writing anything.
fn check_canonical(value: &Value) -> Result<(), EntryError> {
    match value {
        Value::Number(n) if !(n.is_i64() || n.is_u64()) => Err(EntryError::NotCanonical(format!(
            "number {n} is not an integer"
        ))),
        Value::Array(items) => items.iter().try_for_each(check_canonical),
        Value::Object(map) => map.values().try_for_each(check_canonical),
        _ => Ok(()),
    }
}

impl Issuance {
    /// Builds an issuance from a token's claims: `jti`, `iss`, `sub` required; `client_id`
    /// (or `azp`), `scope`, `wlcg.groups`, `aud`, `iat`, `nbf`, `exp`, `act` recognised.
    /// A `vo` claim, if any, is dropped: the VO comes from `ctx`.
    pub fn from_claims(
        mut claims: Map<String, Value>,
        ctx: ReportContext,
    ) -> Result<Issuance, EntryError> {
        validate_vo_name(&ctx.vo)?;
        claims.remove("vo");
        let jti = take_id(&mut claims, "jti")?;
        let iss = take_id(&mut claims, "iss")?;
        let sub = take_id(&mut claims, "sub")?;
        let client_id = match take_optional_id(&mut claims, "client_id")? {
            Some(id) => {
                claims.remove("azp");
                Some(id)
            }
            None => take_optional_id(&mut claims, "azp")?,
        };
        let scopes = take_list(&mut claims, "scope")?;
        let groups = take_list(&mut claims, "wlcg.groups")?;
        let aud = take_list(&mut claims, "aud")?;
        let iat = take_time(&mut claims, "iat")?;
        let nbf = take_time(&mut claims, "nbf")?;
        let exp = take_time(&mut claims, "exp")?;
        let act = match claims.remove("act") {
            None | Some(Value::Null) => None,
            Some(act @ Value::Object(_)) => Some(act),
            Some(_) => return Err(invalid("act", "must be an object")),
        };
        for (name, value) in [
            ("parent_jti", &ctx.parent_jti),
            ("refresh_jti", &ctx.refresh_jti),
        ] {
            if let Some(value) = value {
                check_id(name, value)?;
            }
        }
        if ctx.source == Source::Jwt {
            claims.retain(|name, _| KEPT_JWT_CLAIMS.contains(&name.as_str()));
        }
        let claims: BTreeMap<String, Value> = claims.into_iter().collect();
        claims.values().try_for_each(check_canonical)?;
        Ok(Issuance {
            grant_type: crate::chain::infer_grant_type(
                ctx.grant_type.as_deref(),
                &sub,
                client_id.as_deref(),
                act.is_some(),
            ),
            jti,
            iss,
            sub,
            vo: ctx.vo,
            client_id,
            scopes,
            groups,
            aud,
            iat,
            nbf,
            exp,
            parent_jti: ctx.parent_jti,
            refresh_jti: ctx.refresh_jti,
            act,
            source: ctx.source,
            token_sha256: ctx.token_sha256,
            feed: ctx.feed,
            claims,
        })
    }
}

/// Checks a VO name: lowercase letters, digits, `.`, `_`, `-`; 1 to 64 characters.
pub fn validate_vo_name(vo: &str) -> Result<(), EntryError> {
    let ok = !vo.is_empty()
        && vo.len() <= 64
        && vo
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && vo.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "vo",
            "a VO name is 1-64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit",
        ))
    }
}

/// Checks a site name: 1 to 64 characters of A-Z, a-z, 0-9, `-`, `_`, `.`.
pub fn validate_site_name(site: &str) -> Result<(), EntryError> {
    let ok = (1..=64).contains(&site.len())
        && site
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "site",
            "a site name is 1-64 characters of A-Z, a-z, 0-9, '-', '_', '.'",
        ))
    }
}

fn invalid(claim: &str, reason: &str) -> EntryError {
    EntryError::Invalid {
        claim: claim.to_string(),
        reason: reason.to_string(),
    }
}

fn take_optional_id(
    claims: &mut Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, EntryError> {
    match claims.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            check_id(name, &s)?;
            Ok(Some(s))
        }
        Some(_) => Err(invalid(name, "must be a string")),
    }
}

fn take_id(claims: &mut Map<String, Value>, name: &'static str) -> Result<String, EntryError> {
    take_optional_id(claims, name)?.ok_or(EntryError::Missing(name))
}

/// Checks an identifier (jti, iss, sub, ids): 1 to 1024 characters, no control characters.
pub fn check_id(name: &str, value: &str) -> Result<(), EntryError> {
    if value.is_empty() {
        return Err(invalid(name, "must not be empty"));
    }
    if longer_than(value, MAX_ID_LEN) {
        return Err(invalid(name, "is longer than 1024 characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(name, "contains control characters"));
    }
    Ok(())
}

/// Whether `text` has more than `max` characters (Unicode scalar values: what JSON Schema's
/// `maxLength` counts, so the API document can state the limit exactly). Limits are in
/// characters; bytes are counted first because no text has more characters than bytes.
fn longer_than(text: &str, max: usize) -> bool {
    text.len() > max && text.chars().count() > max
}

/// A list claim: a space-separated string for `scope`, a single string or an array elsewhere.
fn take_list(
    claims: &mut Map<String, Value>,
    name: &'static str,
) -> Result<Vec<String>, EntryError> {
    let items: Vec<String> = match claims.remove(name) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if name == "scope" => {
            s.split_whitespace().map(str::to_string).collect()
        }
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(invalid(name, "list items must be strings")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid(name, "must be a string or a list of strings")),
    };
    if items.len() > MAX_LIST_LEN {
        return Err(invalid(name, "has more than 256 items"));
    }
    for item in &items {
        check_id(name, item)?;
    }
    Ok(items)
}

fn take_time(
    claims: &mut Map<String, Value>,
    name: &'static str,
) -> Result<Option<i64>, EntryError> {
    match claims.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .filter(|t| *t >= 0)
            .map(Some)
            .ok_or_else(|| invalid(name, "must be a non-negative integer (seconds since 1970)")),
        Some(_) => Err(invalid(name, "must be an integer (seconds since 1970)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn ctx(source: Source) -> ReportContext {
        ReportContext {
            source,
            vo: "atlas".into(),
            grant_type: None,
            parent_jti: None,
            refresh_jti: None,
            token_sha256: None,
            feed: None,
        }
    }

    #[test]
    fn canonical_bytes_sort_keys_at_every_level() {
        let issuance = Issuance::from_claims(
            claims(
                json!({"jti":"j1","iss":"https://iam.example/","sub":"u1","vo":"ignored",
                "scope":"storage.read:/ compute.create","iat":10,"exp":20,
                "zeta":{"b":1,"a":[{"y":2,"x":1}]},"alpha":"x"}),
            ),
            ctx(Source::Claims),
        )
        .unwrap();
        let entry = LogEntry::new(
            1_700_000_000_000_000,
            EntryBody::Issuance(Box::new(issuance)),
        );
        let bytes = entry.canonical_bytes().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(
            text,
            r#"{"claims":{"alpha":"x","zeta":{"a":[{"x":1,"y":2}],"b":1}},"exp":20,"iat":10,"iss":"https://iam.example/","jti":"j1","logged_at":1700000000000000,"scopes":["storage.read:/","compute.create"],"source":"claims","sub":"u1","type":"issuance","v":1,"vo":"atlas"}"#
        );
        assert_eq!(LogEntry::from_canonical_bytes(&bytes).unwrap(), entry);
    }

    #[test]
    fn canonical_json_escapes_strings_and_writes_integers_as_serde_json_does() {
        let value = json!({
            "z\"key": "quote \" backslash \\ tab \t nul \u{0} é ✓ \u{1F600} </script>",
            "big": u64::MAX,
            "neg": i64::MIN,
            "list": [true, false, null, 0, "a"],
            "B": {},
            "a": []
        });
        assert_eq!(
            String::from_utf8(canonical_json(&value).unwrap()).unwrap(),
            r#"{"B":{},"a":[],"big":18446744073709551615,"list":[true,false,null,0,"a"],"neg":-9223372036854775808,"z\"key":"quote \" backslash \\ tab \t nul \u0000 é ✓ 😀 </script>"}"#
        );
    }

    #[test]
    fn jwt_reports_keep_only_traceability_claims() {
        let issuance = Issuance::from_claims(
            claims(
                json!({"jti":"j","iss":"i","sub":"s","email":"a@b.c","name":"A B",
                "wlcg.ver":"1.0","wlcg.groups":["/atlas"],"aud":"https://wlcg.cern.ch/jwt/v1/any",
                "act":{"sub":"rucio"},"nbf":5}),
            ),
            ReportContext {
                token_sha256: Some("ab".repeat(32)),
                ..ctx(Source::Jwt)
            },
        )
        .unwrap();
        assert_eq!(issuance.claims.keys().collect::<Vec<_>>(), ["wlcg.ver"]);
        assert_eq!(issuance.groups, ["/atlas"]);
        assert_eq!(issuance.aud, ["https://wlcg.cern.ch/jwt/v1/any"]);
        assert_eq!(issuance.nbf, Some(5));
        assert_eq!(issuance.grant_type.as_deref(), Some("token-exchange"));
        assert!(issuance.act.is_some());
    }

    #[test]
    fn non_canonical_bytes_are_refused() {
        let err = LogEntry::from_canonical_bytes(br#"{"v":1, "logged_at":1}"#).unwrap_err();
        assert!(matches!(err, EntryError::NotCanonical(_)));
    }

    #[test]
    fn floats_are_refused() {
        let err = Issuance::from_claims(
            claims(json!({"jti":"j","iss":"i","sub":"s","weight":1.5})),
            ctx(Source::Claims),
        )
        .unwrap_err();
        assert!(matches!(err, EntryError::NotCanonical(_)), "{err}");
    }

    #[test]
    fn required_claims_and_bad_values_are_named() {
        let cases = [
            (json!({"iss":"i","sub":"s"}), "jti"),
            (json!({"jti":"j","sub":"s"}), "iss"),
            (json!({"jti":"j","iss":"i"}), "sub"),
            (json!({"jti":"","iss":"i","sub":"s"}), "jti"),
            (json!({"jti":"j","iss":"i","sub":"s","exp":"soon"}), "exp"),
            (json!({"jti":"j","iss":"i","sub":"s","iat":-1}), "iat"),
            (json!({"jti":5,"iss":"i","sub":"s"}), "jti"),
            (json!({"jti":"a\u{0}b","iss":"i","sub":"s"}), "jti"),
            (
                json!({"jti":"j","iss":"i","sub":"s","wlcg.groups":[1]}),
                "wlcg.groups",
            ),
            (json!({"jti":"j","iss":"i","sub":"s","act":"x"}), "act"),
        ];
        for (input, claim) in cases {
            let err =
                Issuance::from_claims(claims(input.clone()), ctx(Source::Claims)).unwrap_err();
            assert!(err.to_string().contains(claim), "{input}: {err}");
        }
        let bad_vo = ReportContext {
            vo: "ATLAS".into(),
            ..ctx(Source::Claims)
        };
        let err = Issuance::from_claims(claims(json!({"jti":"j","iss":"i","sub":"s"})), bad_vo)
            .unwrap_err();
        assert!(err.to_string().contains("vo"), "{err}");
    }

    /// Limits count characters, as the API document's `maxLength` does, not bytes.
    #[test]
    fn length_limits_count_characters() {
        let reason = |n: usize| "\u{e9}".repeat(n);
        assert_eq!(validate_reason(&reason(MAX_REASON_LEN)), Ok(()));
        let err = validate_reason(&reason(MAX_REASON_LEN + 1)).unwrap_err();
        assert!(err.to_string().contains("512 characters"), "{err}");
        let id = |n: usize| "\u{20ac}".repeat(n);
        assert_eq!(check_id("jti", &id(MAX_ID_LEN)), Ok(()));
        let err = check_id("jti", &id(MAX_ID_LEN + 1)).unwrap_err();
        assert!(err.to_string().contains("1024 characters"), "{err}");
        for blank in ["", " ", "\u{3000}\u{a0}"] {
            assert!(validate_reason(blank).is_err(), "{blank:?}");
        }
    }

    /// A suspension entry as logged before client suspensions and cut-offs existed reads
    /// back, and its canonical bytes are unchanged (its leaf hash still verifies).
    #[test]
    fn suspension_entries_of_before_read_back_to_the_same_bytes() {
        let old = br#"{"created_by":"credential:c1","logged_at":1,"person_id":"pe-1","pseudonym":"p1-x","reason":"INC-7","reason_code":"misuse","scope":"compute","site":"CERN-PROD","suspension_id":"su-1","target":"person","type":"suspension","v":1,"vo":"atlas"}"#;
        let entry = LogEntry::from_canonical_bytes(old).unwrap();
        let EntryBody::Suspension(suspension) = &entry.body else {
            panic!("{entry:?}")
        };
        assert_eq!(suspension.person_id.as_deref(), Some("pe-1"));
        assert_eq!(
            (suspension.client_id.as_ref(), suspension.issued_before),
            (None, None)
        );
        assert_eq!(entry.canonical_bytes().unwrap(), old);
    }

    /// An entry type's name is the `type` field serde writes for its body, and reads back.
    #[test]
    fn entry_type_names_read_back() {
        for t in EntryType::ALL {
            assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
            assert_eq!(t.as_str().parse(), Ok(t));
            assert_eq!(t.to_string(), t.as_str());
        }
        assert_eq!(
            "tokens".parse::<EntryType>(),
            Err(UnknownEntryType("tokens".into()))
        );
        let lift = EntryBody::Lift(Lift {
            suspension_id: "su-1".into(),
            reason: "r".into(),
            lifted_by: "c".into(),
        });
        assert_eq!((lift.entry_type(), lift.vo()), (EntryType::Lift, None));
        let value = serde_json::to_value(LogEntry::new(1, lift)).unwrap();
        assert_eq!(value["type"], "lift");
    }

    #[test]
    fn azp_stands_in_for_client_id() {
        let issuance = Issuance::from_claims(
            claims(json!({"jti":"j","iss":"i","sub":"s","azp":"rucio"})),
            ctx(Source::Claims),
        )
        .unwrap();
        assert_eq!(issuance.client_id.as_deref(), Some("rucio"));
    }
}
