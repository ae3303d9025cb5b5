//! Which log entries an erasure of a VO's person redacts, and which it keeps because
//! something in force needs them: [`PersonScan`] takes the log's entries in index order and
//! tells, once given the holds ([`ErasureHolds`]), the person's entries to redact and those
//! kept (with why); [`split`] cuts the entries to redact into `erasure` entries' plans.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use crate::blocklist::issued_in_reach;
use crate::entry::{EntryBody, EntryType};
use crate::retention::{PlanError, Pushed, RedactionPlan, RedactionPlanner};

/// What keeps a person's entries: an active suspension naming the person (of the person or
/// of one of their tokens), a pending suspension request about the person, or an active
/// client suspension (only for the issuances and sightings of that client's tokens).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hold {
    Suspension(String),
    Request(String),
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hold::Suspension(id) => write!(f, "active suspension {id}"),
            Hold::Request(id) => write!(f, "pending suspension request {id}"),
        }
    }
}

/// What is in force about a person when the erasure is planned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErasureHolds {
    /// Active suspensions naming the person, by id.
    pub suspensions: BTreeSet<String>,
    /// Pending suspension requests about the person, by id.
    pub requests: BTreeSet<String>,
    /// Active client suspensions of the VO, by `(iss, client_id)`.
    pub clients: HashMap<(String, String), ClientHold>,
}

/// What an active client suspension holds of the client's tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientHold {
    /// The suspension's id.
    pub suspension: String,
    /// Its cut-off: only tokens issued before it are held (none: every token).
    pub issued_before: Option<i64>,
}

impl ClientHold {
    /// Of two active suspensions of one client, the one that reaches further: without a
    /// cut-off, else with the later one (as retention's holds).
    pub fn wider(self, other: ClientHold) -> ClientHold {
        match (self.issued_before, other.issued_before) {
            (None, _) => self,
            (_, None) => other,
            (Some(a), Some(b)) if b > a => other,
            _ => self,
        }
    }
}

impl ErasureHolds {
    /// The holds on the person itself (not on a client): while any exists, the person's
    /// identities, pseudonyms, issuances, sightings and links are kept.
    pub fn of_person(&self) -> Vec<Hold> {
        self.suspensions
            .iter()
            .cloned()
            .map(Hold::Suspension)
            .chain(self.requests.iter().cloned().map(Hold::Request))
            .collect()
    }
}

/// A person's entry that an erasure keeps, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptEntry {
    pub index: u64,
    pub entry_type: EntryType,
    /// The holds that need it, e.g. `active suspension su-1`.
    pub because: String,
}

/// What an erasure of a person does with the person's entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErasurePlan {
    /// The entries to redact, by increasing index.
    pub erase: Vec<(u64, EntryType)>,
    /// The entries kept, by increasing index.
    pub kept: Vec<KeptEntry>,
}

/// An entry of the log that may be the person's, as the scan noted it: whose it is is known
/// only at the end, once every merge into the person has been seen.
#[derive(Clone, Debug)]
enum Noted {
    /// An issuance of one of the person's identities, or a sighting of such a token, with
    /// the token's client and `iat`.
    Token {
        client: Option<(String, String)>,
        iat: Option<i64>,
    },
    Suspension {
        person: String,
        id: String,
    },
    Lift {
        suspension: String,
    },
    Request {
        person: String,
        id: String,
    },
    Decision {
        request: String,
    },
    Link {
        person: String,
        from: Option<String>,
    },
}

/// The scan of the log for one person of a VO: feed it every unredacted entry in index order
/// ([`PersonScan::see`]), then [`PersonScan::plan`]. The person's entries are the issuances
/// of their identities (every identity they have now, merged ones too) and the sightings of
/// those tokens; the suspensions naming them (or a person merged into them) and the lifts of
/// those; the suspension requests about them and the decisions on those; the links and
/// merges naming them. Resolutions, redactions and erasures are not theirs: they are the
/// VO's and the ledger's audit records, kept for their own period.
#[derive(Debug)]
pub struct PersonScan {
    vo: String,
    person: String,
    identities: HashSet<(String, String)>,
    /// The person's tokens `(iss, jti)` seen so far, with their client and `iat`.
    tokens: HashMap<(String, String), (Option<String>, Option<i64>)>,
    noted: Vec<(u64, EntryType, Noted)>,
    merged_into: Option<String>,
}

impl PersonScan {
    /// The scan for `person` of `vo`, whose identities `(iss, sub)` are `identities`.
    pub fn new(vo: &str, person: &str, identities: &[(String, String)]) -> PersonScan {
        PersonScan {
            vo: vo.to_string(),
            person: person.to_string(),
            identities: identities.iter().cloned().collect(),
            tokens: HashMap::new(),
            noted: Vec::new(),
            merged_into: None,
        }
    }

    /// Notes the entry at `index` if it may be the person's. Entries come by increasing
    /// index; a sighting counts if its token's issuance was seen before it.
    pub fn see(&mut self, index: u64, body: &EntryBody) {
        let in_vo = body.vo() == Some(self.vo.as_str());
        let noted = match body {
            EntryBody::Issuance(i)
                if in_vo && self.identities.contains(&(i.iss.clone(), i.sub.clone())) =>
            {
                let client = i.client_id.clone();
                self.tokens
                    .insert((i.iss.clone(), i.jti.clone()), (client.clone(), i.iat));
                Noted::Token {
                    client: client.map(|c| (i.iss.clone(), c)),
                    iat: i.iat,
                }
            }
            EntryBody::Sighting(s) if in_vo => {
                match self.tokens.get(&(s.iss.clone(), s.jti.clone())) {
                    Some((client, iat)) => Noted::Token {
                        client: client.clone().map(|c| (s.iss.clone(), c)),
                        iat: *iat,
                    },
                    None => return,
                }
            }
            EntryBody::Suspension(s) if in_vo => match &s.person_id {
                Some(person) => Noted::Suspension {
                    person: person.clone(),
                    id: s.suspension_id.clone(),
                },
                None => return,
            },
            EntryBody::Lift(l) => Noted::Lift {
                suspension: l.suspension_id.clone(),
            },
            EntryBody::SuspensionRequest(r) if in_vo => Noted::Request {
                person: r.person_id.clone(),
                id: r.request_id.clone(),
            },
            EntryBody::SuspensionRequestAccept(a) if in_vo => Noted::Decision {
                request: a.request_id.clone(),
            },
            EntryBody::SuspensionRequestDecline(d) if in_vo => Noted::Decision {
                request: d.request_id.clone(),
            },
            EntryBody::IdentityLink(l) if in_vo => {
                if l.merged_from.as_deref() == Some(self.person.as_str()) {
                    self.merged_into = Some(l.person_id.clone());
                }
                Noted::Link {
                    person: l.person_id.clone(),
                    from: l.merged_from.clone(),
                }
            }
            _ => return,
        };
        self.noted.push((index, body.entry_type(), noted));
    }

    /// The person the scanned person was merged into, if a merge seen moved them away.
    pub fn merged_into(&self) -> Option<&str> {
        self.merged_into.as_deref()
    }

    /// The person's entries, each to redact or kept for `holds`.
    pub fn plan(self, holds: &ErasureHolds) -> ErasurePlan {
        // The person, and every person merged into them (a merge moved their identities
        // and suspensions), however many merges deep.
        let mut persons: HashSet<&str> = HashSet::from([self.person.as_str()]);
        loop {
            let before = persons.len();
            for (_, _, noted) in &self.noted {
                if let Noted::Link {
                    person,
                    from: Some(from),
                } = noted
                    && persons.contains(person.as_str())
                {
                    persons.insert(from.as_str());
                }
            }
            if persons.len() == before {
                break;
            }
        }
        let mut suspensions = HashSet::new();
        let mut requests = HashSet::new();
        for (_, _, noted) in &self.noted {
            match noted {
                Noted::Suspension { person, id } if persons.contains(person.as_str()) => {
                    suspensions.insert(id.as_str());
                }
                Noted::Request { person, id } if persons.contains(person.as_str()) => {
                    requests.insert(id.as_str());
                }
                _ => {}
            }
        }
        let person_holds = holds
            .of_person()
            .iter()
            .map(Hold::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let held_by_person = (!person_holds.is_empty()).then_some(person_holds);
        let mut plan = ErasurePlan::default();
        for (index, entry_type, noted) in &self.noted {
            let kept: Option<String> = match noted {
                Noted::Token { client, iat } => client
                    .as_ref()
                    .and_then(|client| holds.clients.get(client))
                    .filter(|hold| issued_in_reach(hold.issued_before, *iat))
                    .map(|hold| Hold::Suspension(hold.suspension.clone()).to_string())
                    .or_else(|| held_by_person.clone()),
                Noted::Link { person, from } => {
                    let theirs = persons.contains(person.as_str())
                        || from.as_deref().is_some_and(|f| persons.contains(f));
                    if !theirs {
                        continue;
                    }
                    held_by_person.clone()
                }
                Noted::Suspension { id, .. } => {
                    if !suspensions.contains(id.as_str()) {
                        continue;
                    }
                    holds
                        .suspensions
                        .contains(id)
                        .then(|| Hold::Suspension(id.clone()).to_string())
                }
                Noted::Request { id, .. } => {
                    if !requests.contains(id.as_str()) {
                        continue;
                    }
                    holds
                        .requests
                        .contains(id)
                        .then(|| Hold::Request(id.clone()).to_string())
                }
                Noted::Lift { suspension } if suspensions.contains(suspension.as_str()) => None,
                Noted::Decision { request } if requests.contains(request.as_str()) => None,
                Noted::Lift { .. } | Noted::Decision { .. } => continue,
            };
            match kept {
                Some(because) => plan.kept.push(KeptEntry {
                    index: *index,
                    entry_type: *entry_type,
                    because,
                }),
                None => plan.erase.push((*index, *entry_type)),
            }
        }
        plan
    }
}

/// Cuts `erase` (by increasing index) into the plans of successive `erasure` entries, each
/// of at most `room` ranges ([`crate::redaction::range_room`]) and `max_per_entry` entries.
/// Nothing to erase is one empty plan: the request is on record all the same.
pub fn split(
    erase: &[(u64, EntryType)],
    room: usize,
    max_per_entry: u64,
) -> Result<Vec<RedactionPlan>, PlanError> {
    let mut plans = Vec::new();
    let mut planner = RedactionPlanner::new(room.max(1));
    let mut taken = 0;
    for (index, entry_type) in erase {
        if taken == max_per_entry.max(1) || planner.push(*index, *entry_type, true)? == Pushed::Full
        {
            plans
                .push(std::mem::replace(&mut planner, RedactionPlanner::new(room.max(1))).finish());
            planner.push(*index, *entry_type, true)?;
            taken = 0;
        }
        taken += 1;
    }
    plans.push(planner.finish());
    Ok(plans)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::entry::{IdentityLink, Issuance, Lift, Sighting, Suspension};
    use crate::suspension_request::{SuspensionRequest, SuspensionRequestDecline};

    fn issuance(jti: &str, sub: &str, vo: &str, client: Option<&str>) -> EntryBody {
        let mut value = json!({
            "iss": "https://iam/", "jti": jti, "sub": sub, "vo": vo, "source": "claims",
            "iat": 1,
        });
        if let Some(client) = client {
            value["client_id"] = json!(client);
        }
        EntryBody::Issuance(Box::new(serde_json::from_value::<Issuance>(value).unwrap()))
    }

    fn sighting(jti: &str) -> EntryBody {
        EntryBody::Sighting(Sighting {
            site: "CERN-PROD".into(),
            vo: "atlas".into(),
            iss: "https://iam/".into(),
            jti: jti.into(),
            seen_at: 1,
            host: None,
            job_id: None,
            reported_by: "credential:r".into(),
        })
    }

    fn suspension(id: &str, person: &str) -> EntryBody {
        let value = json!({
            "suspension_id": id, "vo": "atlas", "person_id": person, "target": "person",
            "scope": "all", "reason": "INC-1", "reason_code": "other",
            "created_by": "credential:o",
        });
        EntryBody::Suspension(Box::new(
            serde_json::from_value::<Suspension>(value).unwrap(),
        ))
    }

    fn lift(id: &str) -> EntryBody {
        EntryBody::Lift(Lift {
            suspension_id: id.into(),
            reason: "done".into(),
            lifted_by: "credential:o".into(),
        })
    }

    fn link(person: &str, from: Option<&str>) -> EntryBody {
        EntryBody::IdentityLink(IdentityLink {
            vo: "atlas".into(),
            person_id: person.into(),
            iss: from.is_none().then(|| "https://other/".into()),
            sub: from.is_none().then(|| "alice-2".into()),
            merged_from: from.map(str::to_string),
            reason: "INC-2".into(),
            linked_by: "credential:o".into(),
        })
    }

    fn request(id: &str, person: &str) -> EntryBody {
        let value = json!({
            "request_id": id, "site": "CERN-PROD", "vo": "atlas", "person_id": person,
            "pseudonym": "p1-x", "evidence": "seen", "requested_by": "credential:s",
        });
        EntryBody::SuspensionRequest(Box::new(
            serde_json::from_value::<SuspensionRequest>(value).unwrap(),
        ))
    }

    fn decline(id: &str) -> EntryBody {
        EntryBody::SuspensionRequestDecline(SuspensionRequestDecline {
            request_id: id.into(),
            vo: "atlas".into(),
            reason: "no".into(),
            decided_by: "credential:o".into(),
        })
    }

    fn identities() -> Vec<(String, String)> {
        vec![
            ("https://iam/".into(), "alice".into()),
            ("https://iam/".into(), "alice-old".into()),
        ]
    }

    /// A log about alice (pe-a, who absorbed pe-old), bob (pe-b) and cms.
    fn scan() -> PersonScan {
        let log = [
            issuance("j-old", "alice-old", "atlas", None), // 0: the merged person's token
            suspension("su-old", "pe-old"),                // 1: of the merged person
            lift("su-old"),                                // 2
            link("pe-a", Some("pe-old")),                  // 3: the merge
            issuance("j-1", "alice", "atlas", Some("rucio")), // 4
            issuance("j-bob", "bob", "atlas", None),       // 5
            sighting("j-1"),                               // 6
            sighting("j-bob"),                             // 7
            issuance("j-cms", "alice", "cms", None),       // 8: another VO's
            request("rq-1", "pe-a"),                       // 9
            decline("rq-1"),                               // 10
            request("rq-2", "pe-a"),                       // 11: pending
            suspension("su-1", "pe-a"),                    // 12: active
            suspension("su-bob", "pe-b"),                  // 13
            link("pe-a", None),                            // 14
            issuance("j-2", "alice", "atlas", None),       // 15
        ];
        let mut scan = PersonScan::new("atlas", "pe-a", &identities());
        for (index, body) in log.iter().enumerate() {
            scan.see(index as u64, body);
        }
        scan
    }

    fn indexes(plan: &ErasurePlan) -> Vec<u64> {
        plan.erase.iter().map(|(index, _)| *index).collect()
    }

    #[test]
    fn without_holds_every_entry_of_the_person_and_of_those_merged_into_them_is_erased() {
        let scan = scan();
        assert_eq!(scan.merged_into(), None);
        let plan = scan.plan(&ErasureHolds::default());
        assert_eq!(indexes(&plan), [0, 1, 2, 3, 4, 6, 9, 10, 11, 12, 14, 15]);
        assert!(plan.kept.is_empty());
        assert_eq!(plan.erase[0].1, EntryType::Issuance);
        assert_eq!(plan.erase[2].1, EntryType::Lift);
    }

    #[test]
    fn holds_keep_what_they_need_and_say_why() {
        let holds = ErasureHolds {
            suspensions: BTreeSet::from(["su-1".to_string()]),
            requests: BTreeSet::from(["rq-2".to_string()]),
            clients: HashMap::new(),
        };
        let plan = scan().plan(&holds);
        // The lifted suspension, its lift, the declined request and its decision go.
        assert_eq!(indexes(&plan), [1, 2, 9, 10]);
        let kept: Vec<(u64, &str)> = plan
            .kept
            .iter()
            .map(|k| (k.index, k.because.as_str()))
            .collect();
        let both = "active suspension su-1, pending suspension request rq-2";
        assert_eq!(
            kept,
            [
                (0, both),
                (3, both),
                (4, both),
                (6, both),
                (11, "pending suspension request rq-2"),
                (12, "active suspension su-1"),
                (14, both),
                (15, both),
            ]
        );
    }

    /// A client suspension keeps its client's tokens (their issuances and sightings), under
    /// a cut-off only those issued before it.
    #[test]
    fn a_client_suspension_keeps_only_its_clients_tokens() {
        let rucio = |issued_before| ErasureHolds {
            clients: HashMap::from([(
                ("https://iam/".to_string(), "rucio".to_string()),
                ClientHold {
                    suspension: "su-c".to_string(),
                    issued_before,
                },
            )]),
            ..ErasureHolds::default()
        };
        // j-1 was issued at 1: a cut-off at 1 does not reach it, one at 2 does.
        assert!(scan().plan(&rucio(Some(1))).kept.is_empty());
        assert_eq!(scan().plan(&rucio(Some(2))).kept.len(), 2);
        let plan = scan().plan(&rucio(None));
        let kept: Vec<(u64, &str)> = plan
            .kept
            .iter()
            .map(|k| (k.index, k.because.as_str()))
            .collect();
        assert_eq!(
            kept,
            [(4, "active suspension su-c"), (6, "active suspension su-c")]
        );
        assert!(indexes(&plan).contains(&15));
    }

    #[test]
    fn a_person_merged_away_is_told() {
        let mut scan = PersonScan::new("atlas", "pe-old", &[]);
        scan.see(3, &link("pe-a", Some("pe-old")));
        assert_eq!(scan.merged_into(), Some("pe-a"));
    }

    #[test]
    fn split_cuts_at_the_room_and_the_count_and_keeps_an_empty_plan() {
        let erase: Vec<(u64, EntryType)> = [0, 1, 3, 5, 6, 7, 9]
            .iter()
            .map(|i| (*i, EntryType::Issuance))
            .collect();
        let ranges = |plans: &[RedactionPlan]| -> Vec<Vec<(u64, u64)>> {
            plans
                .iter()
                .map(|p| p.ranges.iter().map(|r| (r.start, r.end)).collect())
                .collect()
        };
        let plans = split(&erase, 2, 100).unwrap();
        assert_eq!(
            ranges(&plans),
            [vec![(0, 2), (3, 4)], vec![(5, 8), (9, 10)]]
        );
        assert_eq!(plans[1].counts[&EntryType::Issuance], 4);
        let plans = split(&erase, 10, 3).unwrap();
        assert_eq!(
            ranges(&plans),
            [vec![(0, 2), (3, 4)], vec![(5, 8)], vec![(9, 10)]]
        );
        let nothing = split(&[], 10, 3).unwrap();
        assert_eq!(nothing.len(), 1);
        assert!(nothing[0].is_empty());
    }

    #[test]
    fn the_wider_of_two_client_holds_is_the_one_without_a_cut_off_or_with_the_later() {
        let hold = |id: &str, issued_before| ClientHold {
            suspension: id.into(),
            issued_before,
        };
        assert_eq!(hold("a", Some(5)).wider(hold("b", None)).suspension, "b");
        assert_eq!(hold("a", None).wider(hold("b", Some(5))).suspension, "a");
        assert_eq!(hold("a", Some(5)).wider(hold("b", Some(9))).suspension, "b");
        assert_eq!(hold("a", Some(9)).wider(hold("b", Some(5))).suspension, "a");
    }
}
