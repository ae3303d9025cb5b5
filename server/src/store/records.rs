//! Rows of credentials, suspensions, suspension requests and blocklists as every engine
//! selects them (the same columns, plain SQL), and their decoding into the records the
//! traits return.

use tokenledger_core::access::{Binding, Role};
use tokenledger_core::blocklist::SignedBlocklist;
use tokenledger_core::ids::{Jti, PersonId, Pseudonym, Site, Vo};

use super::{CredentialInfo, StoreError, SuspensionRecord, SuspensionRequestRecord};

pub const CREDENTIAL_COLUMNS: &str =
    "SELECT id, role, vo, site, issuer, label, created_at, revoked_at FROM credentials";

/// A row of [`CREDENTIAL_COLUMNS`].
#[derive(sqlx::FromRow)]
pub struct CredentialRow {
    id: String,
    role: String,
    vo: Option<String>,
    site: Option<String>,
    issuer: Option<String>,
    label: Option<String>,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl CredentialRow {
    /// The credential this row holds.
    pub fn into_info(self) -> Result<CredentialInfo, StoreError> {
        let corrupt =
            |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("credential {}: {e}", self.id));
        let role: Role = self.role.parse().map_err(|e| corrupt(&e))?;
        let binding = Binding::new(role, self.vo.clone(), self.site.clone())
            .and_then(|b| b.with_issuer(self.issuer.clone()))
            .map_err(|e| corrupt(&e))?;
        Ok(CredentialInfo {
            binding,
            id: self.id,
            label: self.label,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
        })
    }
}

pub const SUSPENSION_COLUMNS: &str = "SELECT id, idx, site, vo, person_id, token_iss, token_jti, client_iss, \
                       client_id, scope, reason_code, created_by, created_at, not_after, \
                       issued_before, lifted_at FROM suspensions";

/// A row of [`SUSPENSION_COLUMNS`].
#[derive(sqlx::FromRow)]
pub struct SuspensionRow {
    id: String,
    idx: i64,
    site: Option<String>,
    vo: String,
    person_id: Option<String>,
    token_iss: Option<String>,
    token_jti: Option<String>,
    client_iss: Option<String>,
    client_id: Option<String>,
    scope: String,
    reason_code: String,
    created_by: String,
    created_at: i64,
    not_after: Option<i64>,
    issued_before: Option<i64>,
    lifted_at: Option<i64>,
}

impl TryFrom<SuspensionRow> for SuspensionRecord {
    type Error = StoreError;

    fn try_from(r: SuspensionRow) -> Result<SuspensionRecord, StoreError> {
        let scope = r
            .scope
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("unknown suspension scope `{}`", r.scope)))?;
        Ok(SuspensionRecord {
            id: r.id,
            idx: r.idx as u64,
            site: r.site.map(Site::unchecked),
            vo: Vo::unchecked(r.vo),
            person_id: r.person_id.map(PersonId::unchecked),
            token_iss: r.token_iss,
            token_jti: r.token_jti.map(Jti::unchecked),
            client_iss: r.client_iss,
            client_id: r.client_id,
            scope,
            reason_code: r.reason_code,
            created_by: r.created_by,
            created_at: r.created_at,
            not_after: r.not_after,
            issued_before: r.issued_before,
            lifted_at: r.lifted_at,
        })
    }
}

pub const REQUEST_COLUMNS: &str = "SELECT id, idx, site, vo, person_id, pseudonym, token_iss, token_jti, \
                       evidence, scope, reason_code, not_after, requested_by, requested_at, \
                       status, decided_by, decided_at, decision_idx, suspension_id, \
                       decline_reason FROM suspension_requests";

/// A row of [`REQUEST_COLUMNS`].
#[derive(sqlx::FromRow)]
pub struct RequestRow {
    id: String,
    idx: i64,
    site: String,
    vo: String,
    person_id: String,
    pseudonym: String,
    token_iss: Option<String>,
    token_jti: Option<String>,
    evidence: String,
    scope: Option<String>,
    reason_code: Option<String>,
    not_after: Option<i64>,
    requested_by: String,
    requested_at: i64,
    status: String,
    decided_by: Option<String>,
    decided_at: Option<i64>,
    decision_idx: Option<i64>,
    suspension_id: Option<String>,
    decline_reason: Option<String>,
}

impl TryFrom<RequestRow> for SuspensionRequestRecord {
    type Error = StoreError;

    fn try_from(r: RequestRow) -> Result<SuspensionRequestRecord, StoreError> {
        let corrupt = |what: &str, value: &str| {
            StoreError::Corrupt(format!("suspension request with unknown {what} `{value}`"))
        };
        let scope = match &r.scope {
            Some(scope) => Some(scope.parse().map_err(|_| corrupt("scope", scope))?),
            None => None,
        };
        let status = r.status.parse().map_err(|_| corrupt("status", &r.status))?;
        Ok(SuspensionRequestRecord {
            id: r.id,
            idx: r.idx as u64,
            site: Site::unchecked(r.site),
            vo: Vo::unchecked(r.vo),
            person_id: PersonId::unchecked(r.person_id),
            pseudonym: Pseudonym::unchecked(r.pseudonym),
            token_iss: r.token_iss,
            token_jti: r.token_jti.map(Jti::unchecked),
            evidence: r.evidence,
            scope,
            reason_code: r.reason_code,
            not_after: r.not_after,
            requested_by: r.requested_by,
            requested_at: r.requested_at,
            status,
            decided_by: r.decided_by,
            decided_at: r.decided_at,
            decision_idx: r.decision_idx.map(|i| i as u64),
            suspension_id: r.suspension_id,
            decline_reason: r.decline_reason,
        })
    }
}

/// The stored document of `site`'s last signed blocklist.
pub fn parse_blocklist(site: &str, document: &str) -> Result<SignedBlocklist, StoreError> {
    serde_json::from_str(document)
        .map_err(|e| StoreError::Corrupt(format!("stored blocklist of {site}: {e}")))
}

/// A pseudonym's row `(site, vo, person)`, typed.
pub fn pseudonym_holder((site, vo, person): (String, String, String)) -> (Site, Vo, PersonId) {
    (
        Site::unchecked(site),
        Vo::unchecked(vo),
        PersonId::unchecked(person),
    )
}

/// A row `(pseudonym, site, vo, person)` of the pseudonyms table, typed.
pub fn pseudonym_row(
    (pseudonym, site, vo, person): (String, String, String, String),
) -> (Pseudonym, Site, Vo, PersonId) {
    let (site, vo, person) = pseudonym_holder((site, vo, person));
    (Pseudonym::unchecked(pseudonym), site, vo, person)
}

/// VO names, typed.
pub fn vos(names: Vec<String>) -> Vec<Vo> {
    names.into_iter().map(Vo::unchecked).collect()
}

/// Sites with the VOs they serve, typed.
pub fn sites(rows: Vec<(String, Vec<String>)>) -> Vec<(Site, Vec<Vo>)> {
    rows.into_iter()
        .map(|(site, names)| (Site::unchecked(site), vos(names)))
        .collect()
}

/// Sites with a time (a last fetch), typed.
pub fn sites_at(rows: Vec<(String, i64)>) -> Vec<(Site, i64)> {
    rows.into_iter()
        .map(|(site, at)| (Site::unchecked(site), at))
        .collect()
}
