//! Roles, their bindings to a VO or a site, and the decisions that follow from them.
//! Deny by default: every check names the one binding that allows the action.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a credential may do.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Sites, VOs, credentials, and every read.
    Admin,
    /// Reports issuances for its VO.
    Issuer,
    /// Resolves, searches, links and suspends within its VO.
    VoSecurity,
    /// Acts for its site: pseudonyms, suspensions, blocklist, sightings.
    SiteAdmin,
    /// Fetches its site's signed blocklist (CE and storage nodes).
    SiteReader,
    /// Reads the log and proofs, for its VO or for all.
    Auditor,
    /// Reports sightings for its site (log scrapers on CEs and storage).
    Reporter,
}

impl Role {
    /// Every role, in a fixed order.
    pub const ALL: [Role; 7] = [
        Role::Admin,
        Role::Issuer,
        Role::VoSecurity,
        Role::SiteAdmin,
        Role::SiteReader,
        Role::Auditor,
        Role::Reporter,
    ];

    /// The role's name as written in credentials and policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Issuer => "issuer",
            Role::VoSecurity => "vo-security",
            Role::SiteAdmin => "site-admin",
            Role::SiteReader => "site-reader",
            Role::Auditor => "auditor",
            Role::Reporter => "reporter",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AccessError;
    fn from_str(s: &str) -> Result<Role, AccessError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| AccessError::UnknownRole(s.to_string()))
    }
}

/// A role together with the VO or site it is bound to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// For `issuer`: the `iss` whose unsigned claims reports (audit logs, event feeds) this
    /// credential may make. Without it, only signed JWTs are accepted from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

/// A binding that does not fit its role, or an unknown role.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccessError {
    #[error(
        "unknown role `{0}` (known: admin, issuer, vo-security, site-admin, site-reader, auditor, reporter)"
    )]
    UnknownRole(String),
    #[error("role `{0}` must be bound to a VO (--vo)")]
    NeedsVo(Role),
    #[error("role `{0}` must be bound to a site (--site)")]
    NeedsSite(Role),
    #[error("role `{0}` takes no {1} binding")]
    UnexpectedBinding(Role, &'static str),
}

impl Binding {
    /// Checks that the role has exactly the binding it needs: issuer and vo-security a VO,
    /// site roles a site, admin nothing, auditor a VO or nothing (ledger-wide).
    pub fn new(
        role: Role,
        vo: Option<String>,
        site: Option<String>,
    ) -> Result<Binding, AccessError> {
        match role {
            Role::Admin if vo.is_some() => return Err(AccessError::UnexpectedBinding(role, "VO")),
            Role::Issuer | Role::VoSecurity if vo.is_none() => {
                return Err(AccessError::NeedsVo(role));
            }
            Role::SiteAdmin | Role::SiteReader | Role::Reporter if site.is_none() => {
                return Err(AccessError::NeedsSite(role));
            }
            Role::SiteAdmin | Role::SiteReader | Role::Reporter if vo.is_some() => {
                return Err(AccessError::UnexpectedBinding(role, "VO"));
            }
            _ => {}
        }
        if site.is_some() && !matches!(role, Role::SiteAdmin | Role::SiteReader | Role::Reporter) {
            return Err(AccessError::UnexpectedBinding(role, "site"));
        }
        Ok(Binding {
            role,
            vo,
            site,
            issuer: None,
        })
    }

    /// Binds an `issuer` credential to the `iss` whose claims reports it may make.
    pub fn with_issuer(mut self, iss: Option<String>) -> Result<Binding, AccessError> {
        if iss.is_some() && self.role != Role::Issuer {
            return Err(AccessError::UnexpectedBinding(self.role, "issuer"));
        }
        self.issuer = iss;
        Ok(self)
    }

    /// May this caller report unsigned claims of issuer `iss` for `vo`?
    pub fn may_report_claims(&self, iss: &str, vo: &str) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Issuer => self.may_append(vo) && self.issuer.as_deref() == Some(iss),
            _ => false,
        }
    }

    /// May this caller append issuances of `vo`?
    pub fn may_append(&self, vo: &str) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Issuer => self.vo.as_deref() == Some(vo),
            _ => false,
        }
    }

    /// May this caller turn tokens and pseudonyms of `vo` into persons? Only that VO's
    /// security officers: not admins, not auditors, not another VO's officers.
    pub fn may_resolve(&self, vo: &str) -> bool {
        self.role == Role::VoSecurity && self.vo.as_deref() == Some(vo)
    }

    fn bound_to_site(&self, site: &str) -> bool {
        self.site.as_deref() == Some(site)
    }

    /// May this caller act for `site`: pseudonyms, suspensions, its key, exports?
    pub fn may_administer_site(&self, site: &str) -> bool {
        self.role == Role::SiteAdmin && self.bound_to_site(site)
    }

    /// May this caller fetch `site`'s signed blocklist (no identities in it)?
    pub fn may_read_blocklist(&self, site: &str) -> bool {
        matches!(self.role, Role::SiteAdmin | Role::SiteReader) && self.bound_to_site(site)
    }

    /// May this caller report sightings at `site`?
    pub fn may_report_sightings(&self, site: &str) -> bool {
        matches!(self.role, Role::SiteAdmin | Role::Reporter) && self.bound_to_site(site)
    }

    /// May this caller see which sites fetched the blocklists carrying `vo`'s suspensions?
    /// Its security officers, and admins.
    pub fn may_see_enforcement(&self, vo: &str) -> bool {
        match self.role {
            Role::Admin => true,
            Role::VoSecurity => self.vo.as_deref() == Some(vo),
            _ => false,
        }
    }

    /// May this caller see who resolved what in `vo`?
    pub fn may_audit(&self, vo: &str) -> bool {
        match self.role {
            Role::Admin => true,
            Role::VoSecurity => self.vo.as_deref() == Some(vo),
            Role::Auditor => self.vo.as_deref().is_none_or(|v| v == vo),
            _ => false,
        }
    }

    /// May this caller read log entries? They carry personal data of every VO: only admins
    /// and ledger-wide auditors; a VO's officers see its people only through logged resolution.
    pub fn may_read_entries(&self) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Auditor => self.vo.is_none(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vo(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn role_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            assert_eq!(serde_json::to_string(&role).unwrap(), format!("\"{role}\""));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn bindings_must_fit_their_role() {
        assert!(Binding::new(Role::Admin, None, None).is_ok());
        assert_eq!(
            Binding::new(Role::Issuer, None, None),
            Err(AccessError::NeedsVo(Role::Issuer))
        );
        assert!(Binding::new(Role::Admin, vo("atlas"), None).is_err());
        assert!(Binding::new(Role::SiteReader, None, None).is_err());
        assert!(Binding::new(Role::Issuer, vo("atlas"), vo("CERN-PROD")).is_err());
        assert!(Binding::new(Role::Auditor, None, None).is_ok());
        assert!(Binding::new(Role::Auditor, vo("cms"), None).is_ok());
    }

    #[test]
    fn issuers_append_only_for_their_vo() {
        let issuer = Binding::new(Role::Issuer, vo("atlas"), None).unwrap();
        assert!(issuer.may_append("atlas"));
        assert!(!issuer.may_append("cms"));
        assert!(
            Binding::new(Role::Admin, None, None)
                .unwrap()
                .may_append("cms")
        );
        let officer = Binding::new(Role::VoSecurity, vo("atlas"), None).unwrap();
        assert!(!officer.may_append("atlas"));
    }

    #[test]
    fn claims_reports_need_the_issuer_binding() {
        let plain = Binding::new(Role::Issuer, vo("atlas"), None).unwrap();
        assert!(!plain.may_report_claims("https://atlas-auth.cern.ch/", "atlas"));
        let bound = plain
            .with_issuer(vo("https://atlas-auth.cern.ch/"))
            .unwrap();
        assert!(bound.may_report_claims("https://atlas-auth.cern.ch/", "atlas"));
        assert!(!bound.may_report_claims("https://other/", "atlas"));
        assert!(!bound.may_report_claims("https://atlas-auth.cern.ch/", "cms"));
        let officer = Binding::new(Role::VoSecurity, vo("atlas"), None).unwrap();
        assert!(officer.with_issuer(vo("https://x/")).is_err());
    }

    #[test]
    fn only_the_vos_own_officers_resolve() {
        let officer = Binding::new(Role::VoSecurity, vo("atlas"), None).unwrap();
        assert!(officer.may_resolve("atlas"));
        assert!(!officer.may_resolve("cms"));
        for other in [
            Binding::new(Role::Admin, None, None).unwrap(),
            Binding::new(Role::Auditor, None, None).unwrap(),
            Binding::new(Role::Auditor, vo("atlas"), None).unwrap(),
            Binding::new(Role::Issuer, vo("atlas"), None).unwrap(),
            Binding::new(Role::SiteAdmin, None, vo("CERN-PROD")).unwrap(),
        ] {
            assert!(!other.may_resolve("atlas"), "{other:?}");
        }
    }

    #[test]
    fn audit_view_is_for_officers_auditors_and_admins() {
        assert!(
            Binding::new(Role::VoSecurity, vo("atlas"), None)
                .unwrap()
                .may_audit("atlas")
        );
        assert!(
            !Binding::new(Role::VoSecurity, vo("cms"), None)
                .unwrap()
                .may_audit("atlas")
        );
        assert!(
            Binding::new(Role::Auditor, None, None)
                .unwrap()
                .may_audit("atlas")
        );
        assert!(
            Binding::new(Role::Auditor, vo("atlas"), None)
                .unwrap()
                .may_audit("atlas")
        );
        assert!(
            !Binding::new(Role::Auditor, vo("cms"), None)
                .unwrap()
                .may_audit("atlas")
        );
        assert!(
            Binding::new(Role::Admin, None, None)
                .unwrap()
                .may_audit("atlas")
        );
        assert!(
            !Binding::new(Role::Issuer, vo("atlas"), None)
                .unwrap()
                .may_audit("atlas")
        );
    }

    #[test]
    fn site_roles_act_only_for_their_site() {
        let site = |role| Binding::new(role, None, vo("CERN-PROD")).unwrap();
        assert!(site(Role::SiteAdmin).may_administer_site("CERN-PROD"));
        assert!(!site(Role::SiteAdmin).may_administer_site("RAL-LCG2"));
        assert!(!site(Role::SiteReader).may_administer_site("CERN-PROD"));
        assert!(site(Role::SiteReader).may_read_blocklist("CERN-PROD"));
        assert!(!site(Role::SiteReader).may_read_blocklist("RAL-LCG2"));
        assert!(!site(Role::Reporter).may_read_blocklist("CERN-PROD"));
        assert!(site(Role::Reporter).may_report_sightings("CERN-PROD"));
        assert!(site(Role::SiteAdmin).may_report_sightings("CERN-PROD"));
        assert!(!site(Role::SiteReader).may_report_sightings("CERN-PROD"));
        let admin = Binding::new(Role::Admin, None, None).unwrap();
        assert!(
            !admin.may_administer_site("CERN-PROD"),
            "sites act for themselves"
        );
    }

    #[test]
    fn only_admins_and_ledger_wide_auditors_read_entries() {
        assert!(
            Binding::new(Role::Admin, None, None)
                .unwrap()
                .may_read_entries()
        );
        assert!(
            Binding::new(Role::Auditor, None, None)
                .unwrap()
                .may_read_entries()
        );
        for other in [
            Binding::new(Role::Auditor, vo("atlas"), None).unwrap(),
            Binding::new(Role::VoSecurity, vo("atlas"), None).unwrap(),
            Binding::new(Role::Issuer, vo("atlas"), None).unwrap(),
            Binding::new(Role::SiteAdmin, None, vo("X")).unwrap(),
        ] {
            assert!(!other.may_read_entries(), "{other:?}");
        }
    }
}
