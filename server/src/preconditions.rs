//! The sequencer's decision step: whether each state change of a batch still applies to the
//! state as of its place in the batch. Handlers read state to validate and authorize a
//! request, but two requests can both read the same state before either is written; only the
//! writer sees every change in order, so only it decides.
//!
//! What each [`StateChange`] depends on:
//! - `Suspend`: its person has an identity in the VO and was not merged away (a merge moves
//!   suspensions, so one written after the merge would stay with a person without identities
//!   and block nobody). A client suspension names no person and depends on nothing.
//! - `Lift`: the suspension exists and is not lifted.
//! - `Link`: the person has an identity in the VO and was not merged away; the identity
//!   belongs to no person (or to this one: then the link is in effect already).
//! - `Merge`: two distinct persons, each with an identity in the VO, neither merged away.
//! - `RequestSuspension`: as `Suspend`, its person has an identity in the VO and was not
//!   merged away.
//! - `DecideRequest`: the suspension request exists and is still pending (two officers
//!   deciding at once: the first one written wins, the other is refused).
//! - `Sighting` and `None` (site key fetches) depend on nothing that changes: a sighting names
//!   a logged issuance, and issuances are never removed.
//!
//! The writer reads the rows a batch's changes name ([`LedgerWriter::state_rows`]) just before
//! the batch's transaction (it is the only writer of these tables, so nothing changes them in
//! between), then decides the changes in batch order against those rows plus the effects of
//! the changes admitted before: suspensions lifted, identities linked and persons merged
//! earlier in the same batch.

use std::collections::{HashMap, HashSet};

use tokenledger_core::ids::{PersonId, Vo};

use crate::store::{LedgerWriter, StateChange, StateQuery, StoreError};

/// Why a state change was not written. Messages name persons: they are for the VO's
/// security officers; a site's caller must be answered in other words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No identity of the person in the VO, and no record of a merge.
    #[error("no person `{person}` in VO `{vo}`")]
    UnknownPerson { vo: String, person: String },
    /// The person was merged into another and has no identity left.
    #[error("person `{person}` was merged into `{into}`")]
    MergedAway { person: String, into: String },
    #[error("a person cannot be merged into itself")]
    SelfMerge,
    #[error("this identity belongs to another person: merge the two")]
    IdentityOfAnother,
    #[error("no suspension `{id}`")]
    UnknownSuspension { id: String },
    #[error("suspension {id} is already lifted")]
    AlreadyLifted { id: String },
    /// The change holds already (a link of an identity to the person it belongs to).
    #[error("the change is in effect already")]
    InEffect,
    #[error("no suspension request `{id}`")]
    UnknownRequest { id: String },
    #[error("suspension request {id} was decided already")]
    RequestDecided { id: String },
    /// A change of what retention holds was logged after the run read its holds.
    #[error("suspensions, requests, links or merges were logged since the holds were read")]
    HoldsChanged,
    /// A redaction range reaches past the committed log.
    #[error("a redaction range ends at {end}, past the log's size {size}")]
    BeyondLog { end: u64, size: u64 },
    /// Reports checked for redacted issuances before a redaction that was logged since: they
    /// are checked again (see `service::redacted_reports`).
    #[error("a redaction was logged after these reports were checked: send them again")]
    RedactedSince,
}

impl Refusal {
    /// The refusal names something that does not exist (404), rather than a change that no
    /// longer applies (409).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Refusal::UnknownPerson { .. }
                | Refusal::UnknownSuspension { .. }
                | Refusal::UnknownRequest { .. }
        )
    }
}

/// Decides the state changes of each job of a batch, in batch order: a job's changes are
/// admitted together, and their effects then count for the jobs after it, or the job is
/// refused whole and has no effect. A job without state changes is admitted.
pub async fn decide(
    writer: &mut dyn LedgerWriter,
    jobs: &[Vec<&StateChange>],
    log: LogPosition,
) -> Result<Vec<Result<(), Refusal>>, StoreError> {
    let mut state = BatchState::load(writer, jobs.iter().flatten().copied()).await?;
    state.log = log;
    Ok(jobs
        .iter()
        .map(|changes| state.admit_job(changes))
        .collect())
}

/// Where the log stood before a batch, for deciding redactions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogPosition {
    /// The committed log size.
    pub size: u64,
    /// No change of retention's holds ([`changes_holds`]) was logged at this index or
    /// after: one past the newest such entry, or (as nothing older is known) the size the
    /// writer opened the log at.
    pub holds_since: u64,
}

/// Whether a change moves what retention holds: suspensions, lifts, suspension requests and
/// their decisions, links and merges.
pub fn changes_holds(change: &StateChange) -> bool {
    match change {
        StateChange::Suspend(_)
        | StateChange::Lift { .. }
        | StateChange::Link { .. }
        | StateChange::Merge { .. }
        | StateChange::RequestSuspension(_)
        | StateChange::DecideRequest { .. } => true,
        StateChange::Sighting { .. } | StateChange::Redact { .. } | StateChange::None => false,
    }
}

/// A person: (VO, person id).
type PersonKey = (Vo, PersonId);
/// An identity: (iss, sub, VO).
type IdentityKey = (String, String, Vo);

/// The state a batch's changes are decided against: the rows they name as the database held
/// them before the batch, updated by each change admitted so far.
#[derive(Clone, Debug, Default)]
struct BatchState {
    /// Suspensions named by lifts: whether each is lifted.
    lifted: HashMap<String, bool>,
    /// Persons named by the batch that have an identity in their VO.
    live: HashSet<PersonKey>,
    /// Persons named by the batch that were merged away, with the person they went to.
    merged: HashMap<PersonKey, PersonId>,
    /// Identities named by links, with the person each belongs to.
    owners: HashMap<IdentityKey, PersonId>,
    /// Suspension requests named by decisions: whether each is still pending.
    pending: HashMap<String, bool>,
    /// The log before the batch; `holds_since` moves past it once a change of holds is
    /// admitted in the batch.
    log: LogPosition,
}

impl BatchState {
    /// Reads the rows `changes` name.
    async fn load<'c>(
        writer: &mut dyn LedgerWriter,
        changes: impl Iterator<Item = &'c StateChange>,
    ) -> Result<BatchState, StoreError> {
        let mut query = StateQuery::default();
        for change in changes {
            match change {
                StateChange::Suspend(row) => {
                    if let Some(person) = &row.person_id {
                        query.persons.push((row.vo.clone(), person.clone()));
                    }
                }
                StateChange::Lift { suspension_id, .. } => {
                    query.suspensions.push(suspension_id.clone());
                }
                StateChange::Link {
                    vo,
                    person_id,
                    iss,
                    sub,
                    ..
                } => {
                    query.persons.push((vo.clone(), person_id.clone()));
                    query
                        .identities
                        .push((iss.clone(), sub.clone(), vo.clone()));
                }
                StateChange::Merge { vo, into, from } => {
                    query.persons.push((vo.clone(), into.clone()));
                    query.persons.push((vo.clone(), from.clone()));
                }
                StateChange::RequestSuspension(row) => {
                    query.persons.push((row.vo.clone(), row.person_id.clone()));
                }
                StateChange::DecideRequest { request_id, .. } => {
                    query.requests.push(request_id.clone());
                }
                StateChange::Sighting { .. } | StateChange::Redact { .. } | StateChange::None => {}
            }
        }
        let rows = writer.state_rows(&query).await?;
        Ok(BatchState {
            lifted: rows.lifted.into_iter().collect(),
            live: rows.live.into_iter().collect(),
            merged: rows
                .merged
                .into_iter()
                .map(|(vo, person, into)| ((vo, person), into))
                .collect(),
            owners: rows
                .owners
                .into_iter()
                .map(|(iss, sub, vo, person)| ((iss, sub, vo), person))
                .collect(),
            pending: rows.pending.into_iter().collect(),
            log: LogPosition::default(),
        })
    }

    /// Admits all of `changes` or none.
    fn admit_job(&mut self, changes: &[&StateChange]) -> Result<(), Refusal> {
        match changes {
            [] => Ok(()),
            [change] => self.admit(change),
            several => {
                let mut trial = self.clone();
                for change in several {
                    trial.admit(change)?;
                }
                *self = trial;
                Ok(())
            }
        }
    }

    /// Decides one change and, if it applies, records its effect; a refused change leaves
    /// the state as it was.
    fn admit(&mut self, change: &StateChange) -> Result<(), Refusal> {
        self.apply(change)?;
        if changes_holds(change) {
            // Logged in this batch, at the committed size or after.
            self.log.holds_since = u64::MAX;
        }
        Ok(())
    }

    fn apply(&mut self, change: &StateChange) -> Result<(), Refusal> {
        match change {
            // A client suspension names no person: nothing to decide.
            StateChange::Suspend(row) => match &row.person_id {
                Some(person) => self.check_person(&row.vo, person),
                None => Ok(()),
            },
            StateChange::Lift { suspension_id, .. } => match self.lifted.get_mut(suspension_id) {
                None => Err(Refusal::UnknownSuspension {
                    id: suspension_id.clone(),
                }),
                Some(true) => Err(Refusal::AlreadyLifted {
                    id: suspension_id.clone(),
                }),
                Some(lifted) => {
                    *lifted = true;
                    Ok(())
                }
            },
            StateChange::Link {
                vo,
                person_id,
                iss,
                sub,
                ..
            } => {
                self.check_person(vo, person_id)?;
                let identity = (iss.clone(), sub.clone(), vo.clone());
                match self.owners.get(&identity) {
                    Some(owner) if owner == person_id => Err(Refusal::InEffect),
                    Some(_) => Err(Refusal::IdentityOfAnother),
                    None => {
                        self.owners.insert(identity, person_id.clone());
                        Ok(())
                    }
                }
            }
            StateChange::Merge { vo, into, from } => {
                if into == from {
                    return Err(Refusal::SelfMerge);
                }
                self.check_person(vo, into)?;
                self.check_person(vo, from)?;
                let gone = (vo.clone(), from.clone());
                self.live.remove(&gone);
                self.merged.insert(gone, into.clone());
                for ((_, _, at), owner) in &mut self.owners {
                    if at == vo && owner == from {
                        owner.clone_from(into);
                    }
                }
                Ok(())
            }
            StateChange::RequestSuspension(row) => self.check_person(&row.vo, &row.person_id),
            StateChange::DecideRequest { request_id, .. } => {
                match self.pending.get_mut(request_id) {
                    None => Err(Refusal::UnknownRequest {
                        id: request_id.clone(),
                    }),
                    Some(false) => Err(Refusal::RequestDecided {
                        id: request_id.clone(),
                    }),
                    Some(pending) => {
                        *pending = false;
                        Ok(())
                    }
                }
            }
            StateChange::Redact {
                ranges,
                holds_at,
                persons,
                ..
            } => {
                if let Some(end) = ranges
                    .iter()
                    .map(|r| r.end)
                    .find(|end| *end > self.log.size)
                {
                    return Err(Refusal::BeyondLog {
                        end,
                        size: self.log.size,
                    });
                }
                if *holds_at < self.log.holds_since {
                    return Err(Refusal::HoldsChanged);
                }
                // An erased person's identities go at the end of the batch: a later change
                // of the batch naming them would be undone by that, so it is refused.
                for (vo, person) in persons {
                    self.live.remove(&(vo.clone(), person.clone()));
                }
                Ok(())
            }
            StateChange::Sighting { .. } | StateChange::None => Ok(()),
        }
    }

    /// The person has an identity in the VO now.
    fn check_person(&self, vo: &Vo, person: &PersonId) -> Result<(), Refusal> {
        let key = (vo.clone(), person.clone());
        if self.live.contains(&key) {
            return Ok(());
        }
        Err(match self.merged.get(&key) {
            Some(into) => Refusal::MergedAway {
                person: person.to_string(),
                into: into.to_string(),
            },
            None => Refusal::UnknownPerson {
                vo: vo.to_string(),
                person: person.to_string(),
            },
        })
    }
}
