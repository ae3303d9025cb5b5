//! VO derivation: an issuer's ordered rules turn a token's claims into the one VO
//! the token belongs to, or into a clear refusal (never a guess).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::entry::validate_vo_name;

/// The authority suffix of EGI Check-in entitlements.
const EGI_AUTHORITY: &str = "aai.egi.eu";
/// An EGI group entitlement: this prefix, then `<vo>[:<subgroup>...][:role=<role>]#<authority>`.
const EGI_GROUP_URN: &str = "urn:mace:egi.eu:group:";
/// Prefix of an entitlement carried as a scope (EGI pilot tokens).
const ENTITLEMENT_SCOPE: &str = "eduperson_entitlement:";
/// Claims that hold entitlements (a string or an array of strings).
const ENTITLEMENT_CLAIMS: [&str; 2] = ["eduperson_entitlement", "entitlements"];
/// Scope operations whose path starts with the VO: SciTokens and WLCG storage scopes.
const PATH_SCOPE_OPERATIONS: [&str; 6] = [
    "read",
    "write",
    "storage.read",
    "storage.create",
    "storage.modify",
    "storage.stage",
];

fn default_egi_authority() -> String {
    EGI_AUTHORITY.to_owned()
}

/// One rule of an issuer's ordered VO derivation, as written in a policy file
/// (tag `rule`, e.g. `{ rule = "fixed", vo = "atlas" }`).
/// Unknown fields are refused, also beside the rules that take none.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "rule", rename_all = "snake_case", from = "PolicyRule")]
pub enum VoRule {
    /// The issuer serves exactly one VO (WLCG IAM): `{ rule = "fixed", vo = "atlas" }`.
    Fixed {
        /// The issuer's VO.
        vo: String,
    },
    /// The first path element of the `wlcg.groups` entries (`/cms/uscms` gives `cms`).
    WlcgGroups,
    /// EGI Check-in group entitlements `urn:mace:egi.eu:group:<vo>[:<subgroup>...]:role=<role>#<authority>`
    /// in `eduperson_entitlement` or `entitlements`, or as pilot scopes
    /// `eduperson_entitlement:urn:mace:egi.eu:group:<vo>:...` in `scope`.
    EgiEntitlement {
        /// The `#<authority>` suffix an entitlement must carry (default `aai.egi.eu`).
        authority: String,
    },
    /// SciTokens and WLCG storage scope paths: `read:/dune/...`, `write:/dune`,
    /// `storage.read:/dune/...` give `dune`.
    ScopePath,
}

/// A rule as written in a policy file. Serde ignores `deny_unknown_fields` for unit
/// variants of a tagged enum, so the fieldless rules are empty structs here.
#[derive(Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case", deny_unknown_fields)]
enum PolicyRule {
    Fixed {
        vo: String,
    },
    WlcgGroups {},
    EgiEntitlement {
        #[serde(default = "default_egi_authority")]
        authority: String,
    },
    ScopePath {},
}

impl From<PolicyRule> for VoRule {
    fn from(rule: PolicyRule) -> VoRule {
        match rule {
            PolicyRule::Fixed { vo } => VoRule::Fixed { vo },
            PolicyRule::WlcgGroups {} => VoRule::WlcgGroups,
            PolicyRule::EgiEntitlement { authority } => VoRule::EgiEntitlement { authority },
            PolicyRule::ScopePath {} => VoRule::ScopePath,
        }
    }
}

/// Why no VO could be derived from a token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VoError {
    /// No rule gave a known VO; the message says what each rule looked at and
    /// which unknown VO names (if any) it found.
    #[error("cannot derive the token's VO: {0}")]
    NoMatch(String),
    /// A rule found several different known VOs (e.g. `/atlas` and `/cms` in
    /// `wlcg.groups`); the ledger never guesses.
    #[error("rule {rule} found several VOs ({}): refusing to guess", .vos.join(", "))]
    Ambiguous {
        /// The rule that found them.
        rule: &'static str,
        /// The distinct known VOs, sorted.
        vos: Vec<String>,
    },
}

impl VoRule {
    /// The rule's tag in policy files, e.g. `wlcg_groups`.
    pub fn name(&self) -> &'static str {
        match self {
            VoRule::Fixed { .. } => "fixed",
            VoRule::WlcgGroups => "wlcg_groups",
            VoRule::EgiEntitlement { .. } => "egi_entitlement",
            VoRule::ScopePath => "scope_path",
        }
    }

    /// What the rule reads, for error messages.
    fn looks_at(&self) -> &'static str {
        match self {
            VoRule::Fixed { .. } => "the issuer's configured VO",
            VoRule::WlcgGroups => "wlcg.groups",
            VoRule::EgiEntitlement { .. } => "eduperson_entitlement, entitlements and scope",
            VoRule::ScopePath => "scope paths",
        }
    }

    /// Every well-formed VO name the rule finds in `claims`, known or not, sorted and distinct.
    fn candidates(&self, claims: &Map<String, Value>) -> BTreeSet<String> {
        let found: Vec<&str> = match self {
            VoRule::Fixed { vo } => vec![vo.as_str()],
            VoRule::WlcgGroups => strings(claims.get("wlcg.groups"))
                .filter_map(group_vo)
                .collect(),
            VoRule::EgiEntitlement { authority } => entitlements(claims)
                .filter_map(|e| entitlement_vo(e, authority))
                .collect(),
            VoRule::ScopePath => scopes(claims).filter_map(scope_path_vo).collect(),
        };
        found
            .into_iter()
            .filter(|vo| validate_vo_name(vo).is_ok())
            .map(str::to_owned)
            .collect()
    }
}

/// The strings of a claim that is a string or an array (other array items are ignored).
fn strings(value: Option<&Value>) -> impl Iterator<Item = &str> {
    let items: &[Value] = match value {
        Some(Value::Array(items)) => items,
        Some(single @ Value::String(_)) => std::slice::from_ref(single),
        _ => &[],
    };
    items.iter().filter_map(Value::as_str)
}

/// The scopes of the `scope` claim: a space-separated string or an array of strings.
fn scopes(claims: &Map<String, Value>) -> impl Iterator<Item = &str> {
    strings(claims.get("scope")).flat_map(str::split_whitespace)
}

/// Entitlements from the entitlement claims and from `eduperson_entitlement:` scopes.
fn entitlements(claims: &Map<String, Value>) -> impl Iterator<Item = &str> {
    let from_claims = ENTITLEMENT_CLAIMS
        .into_iter()
        .flat_map(|name| strings(claims.get(name)));
    let from_scopes = scopes(claims).filter_map(|s| s.strip_prefix(ENTITLEMENT_SCOPE));
    from_claims.chain(from_scopes)
}

/// `/cms/uscms` gives `cms`.
fn group_vo(group: &str) -> Option<&str> {
    group.strip_prefix('/')?.split('/').next()
}

/// `urn:mace:egi.eu:group:<vo>[:...]#<authority>` gives `<vo>` if the authority matches.
fn entitlement_vo<'a>(entitlement: &'a str, authority: &str) -> Option<&'a str> {
    let (group, suffix) = entitlement.strip_prefix(EGI_GROUP_URN)?.split_once('#')?;
    if suffix != authority {
        return None;
    }
    group.split(':').next()
}

/// `read:/dune/...` or `storage.create:/dune` gives `dune`.
fn scope_path_vo(scope: &str) -> Option<&str> {
    let (operation, path) = scope.split_once(':')?;
    if !PATH_SCOPE_OPERATIONS.contains(&operation) {
        return None;
    }
    path.strip_prefix('/')?.split('/').next()
}

/// Applies `rules` in order to the token's claims (the whole JSON claims object).
/// Each rule's candidates are filtered by `known` (the VOs configured on the ledger and
/// allowed for this issuer); malformed VO names are ignored. The first rule with exactly
/// one distinct known candidate gives the VO; one with several is [`VoError::Ambiguous`];
/// one with none passes to the next rule; when no rule is left, [`VoError::NoMatch`].
pub fn derive_vo(
    rules: &[VoRule],
    claims: &Map<String, Value>,
    known: &dyn Fn(&str) -> bool,
) -> Result<String, VoError> {
    let mut misses = Vec::with_capacity(rules.len());
    for rule in rules {
        let (found, unknown): (Vec<String>, Vec<String>) = rule
            .candidates(claims)
            .into_iter()
            .partition(|vo| known(vo));
        match <[String; 1]>::try_from(found) {
            Ok([vo]) => return Ok(vo),
            Err(found) if !found.is_empty() => {
                return Err(VoError::Ambiguous {
                    rule: rule.name(),
                    vos: found,
                });
            }
            Err(_) => misses.push(describe_miss(rule, &unknown)),
        }
    }
    Err(VoError::NoMatch(no_match_message(&misses)))
}

fn describe_miss(rule: &VoRule, unknown: &[String]) -> String {
    let found = if unknown.is_empty() {
        "no VO".to_owned()
    } else {
        format!("only VOs not allowed here ({})", unknown.join(", "))
    };
    format!(
        "{} looked at {} and found {found}",
        rule.name(),
        rule.looks_at()
    )
}

fn no_match_message(misses: &[String]) -> String {
    if misses.is_empty() {
        "no VO derivation rule is configured for this issuer".to_owned()
    } else {
        misses.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const KNOWN: [&str; 6] = ["atlas", "cms", "dune", "biomed", "vo.access.egi.eu", "lhcb"];

    fn known(vo: &str) -> bool {
        KNOWN.contains(&vo)
    }

    fn claims(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn egi() -> VoRule {
        VoRule::EgiEntitlement {
            authority: EGI_AUTHORITY.to_owned(),
        }
    }

    fn derive(rules: &[VoRule], value: Value) -> Result<String, VoError> {
        derive_vo(rules, &claims(value), &known)
    }

    #[test]
    fn each_rule_derives_its_vo() {
        let fixed = VoRule::Fixed {
            vo: "atlas".to_owned(),
        };
        let cases: Vec<(&str, VoRule, Value, &str)> = vec![
            ("IAM fixed", fixed, json!({"sub": "u"}), "atlas"),
            (
                "wlcg.groups sub-group",
                VoRule::WlcgGroups,
                json!({"wlcg.groups": ["/cms/uscms", "/cms", 7]}),
                "cms",
            ),
            (
                "eduperson_entitlement",
                egi(),
                json!({"eduperson_entitlement": ["urn:mace:egi.eu:group:biomed:role=member#aai.egi.eu"]}),
                "biomed",
            ),
            (
                "entitlements as a string, sub-group",
                egi(),
                json!({"entitlements": "urn:mace:egi.eu:group:vo.access.egi.eu:sub:role=vm_operator#aai.egi.eu"}),
                "vo.access.egi.eu",
            ),
            (
                "pilot scope",
                egi(),
                json!({"scope": "openid eduperson_entitlement:urn:mace:egi.eu:group:biomed:role=pilot#aai.egi.eu"}),
                "biomed",
            ),
            (
                "SciTokens read",
                VoRule::ScopePath,
                json!({"scope": "read:/dune/data/x openid"}),
                "dune",
            ),
            (
                "WLCG storage.create, scope array",
                VoRule::ScopePath,
                json!({"scope": ["storage.create:/dune", "compute.read"]}),
                "dune",
            ),
            (
                "SciTokens write of the VO root",
                VoRule::ScopePath,
                json!({"scope": "write:/dune"}),
                "dune",
            ),
        ];
        for (name, rule, value, vo) in cases {
            assert_eq!(derive(&[rule], value), Ok(vo.to_owned()), "{name}");
        }
    }

    #[test]
    fn egi_entitlement_with_another_authority_is_ignored() {
        let token = json!({"eduperson_entitlement": [
            "urn:mace:egi.eu:group:biomed:role=member#other.example.org",
            "urn:mace:egi.eu:group:biomed:role=member",
        ]});
        assert!(matches!(derive(&[egi()], token), Err(VoError::NoMatch(_))));
        let custom = VoRule::EgiEntitlement {
            authority: "other.example.org".to_owned(),
        };
        let token =
            json!({"entitlements": ["urn:mace:egi.eu:group:biomed:role=member#other.example.org"]});
        assert_eq!(derive(&[custom], token), Ok("biomed".to_owned()));
    }

    #[test]
    fn token_matching_no_rule_is_refused_with_what_was_looked_at() {
        let rules = [VoRule::WlcgGroups, egi(), VoRule::ScopePath];
        let token = json!({"sub": "alice", "email": "alice@example.org", "scope": "openid compute.read read:/"});
        let Err(VoError::NoMatch(message)) = derive(&rules, token) else {
            panic!("expected NoMatch");
        };
        assert!(
            message.contains("wlcg_groups looked at wlcg.groups"),
            "{message}"
        );
        assert!(message.contains("egi_entitlement"), "{message}");
        assert!(
            message.contains("scope_path looked at scope paths"),
            "{message}"
        );
        assert!(!message.contains("alice"), "{message}");
        assert_eq!(
            derive(&[], json!({})),
            Err(VoError::NoMatch(
                "no VO derivation rule is configured for this issuer".to_owned()
            ))
        );
    }

    #[test]
    fn several_known_vos_are_ambiguous() {
        let token = json!({"wlcg.groups": ["/cms", "/atlas/production", "/cms/uscms"]});
        let err = derive(&[VoRule::WlcgGroups, VoRule::ScopePath], token).unwrap_err();
        assert_eq!(
            err,
            VoError::Ambiguous {
                rule: "wlcg_groups",
                vos: vec!["atlas".to_owned(), "cms".to_owned()],
            }
        );
        assert_eq!(
            err.to_string(),
            "rule wlcg_groups found several VOs (atlas, cms): refusing to guess"
        );
    }

    #[test]
    fn first_rule_with_a_known_vo_wins() {
        let token = json!({"wlcg.groups": ["/cms"], "scope": "read:/dune"});
        let scope_first = [VoRule::ScopePath, VoRule::WlcgGroups];
        assert_eq!(derive(&scope_first, token.clone()), Ok("dune".to_owned()));
        let groups_first = [VoRule::WlcgGroups, VoRule::ScopePath];
        assert_eq!(derive(&groups_first, token.clone()), Ok("cms".to_owned()));
        let fixed = VoRule::Fixed {
            vo: "lhcb".to_owned(),
        };
        assert_eq!(
            derive(&[fixed, VoRule::WlcgGroups], token),
            Ok("lhcb".to_owned())
        );
    }

    #[test]
    fn unknown_and_malformed_vos_are_filtered_out() {
        let token = json!({"wlcg.groups": ["/unknown-vo", "/CMS", "/", "cms", "/atlas"]});
        assert_eq!(derive(&[VoRule::WlcgGroups], token), Ok("atlas".to_owned()));
        let fixed = VoRule::Fixed {
            vo: "alice".to_owned(),
        };
        let token = json!({"scope": "read:/dune"});
        assert_eq!(
            derive(&[fixed.clone(), VoRule::ScopePath], token),
            Ok("dune".to_owned())
        );
        let Err(VoError::NoMatch(message)) = derive(&[fixed], json!({})) else {
            panic!("expected NoMatch");
        };
        assert_eq!(
            message,
            "fixed looked at the issuer's configured VO and found only VOs not allowed here (alice)"
        );
    }

    #[test]
    fn scope_paths_need_a_storage_operation() {
        let token = json!({"scope": "compute.create:/dune queue:/dune https://dune.example/x"});
        assert!(matches!(
            derive(&[VoRule::ScopePath], token),
            Err(VoError::NoMatch(_))
        ));
    }

    #[test]
    fn rules_deserialize_from_policy_json() {
        let rules: Vec<VoRule> = serde_json::from_value(json!([
            {"rule": "fixed", "vo": "atlas"},
            {"rule": "wlcg_groups"},
            {"rule": "egi_entitlement"},
            {"rule": "egi_entitlement", "authority": "aai-dev.egi.eu"},
            {"rule": "scope_path"},
        ]))
        .unwrap();
        assert_eq!(
            rules,
            vec![
                VoRule::Fixed {
                    vo: "atlas".to_owned()
                },
                VoRule::WlcgGroups,
                egi(),
                VoRule::EgiEntitlement {
                    authority: "aai-dev.egi.eu".to_owned()
                },
                VoRule::ScopePath,
            ]
        );
        let written = serde_json::to_value(&rules).unwrap();
        assert_eq!(written[1], json!({"rule": "wlcg_groups"}));
        assert_eq!(
            written[2],
            json!({"rule": "egi_entitlement", "authority": "aai.egi.eu"})
        );
        assert_eq!(
            serde_json::from_value::<Vec<VoRule>>(written).unwrap(),
            rules
        );
        for bad in [
            json!({"rule": "fixed", "vo": "atlas", "extra": 1}),
            json!({"rule": "wlcg_groups", "authority": "aai.egi.eu"}),
            json!({"rule": "egi_entitlement", "authorty": "aai.egi.eu"}),
            json!({"rule": "scope_path", "vo": "dune"}),
            json!({"rule": "guess"}),
            json!({"rule": "fixed"}),
        ] {
            assert!(
                serde_json::from_value::<VoRule>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }
}
