//! Retention runs: the writer, every `[retention] run_every`, reads the log from its lowest
//! entry not yet redacted, decides each entry with the policy ([`RetentionPolicy::decide`]),
//! holding what active suspensions and pending suspension requests need, and appends one
//! `redaction` entry through the sequencer, whose transaction removes the payload of the
//! entries it names ([`StateChange::Redact`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokenledger_core::entry::{EntryBody, LogEntry};
use tokenledger_core::ids::{Jti, PersonId, Vo};
use tokenledger_core::redaction::{Redaction, range_room};
use tokenledger_core::retention::{Candidate, Pushed, RedactionPlanner, RetentionPolicy};
use tokenledger_core::suspension_request::RequestStatus;
use tokio::sync::watch;

use super::{Ledger, ServiceError};
use crate::sequencer::EntryKind;
use crate::store::{LedgerReader, LogRecord, StateChange, StoreError, decode_issuance};
use crate::writer_role::Role;

/// Entries read per page while a run scans the log.
const PAGE: u64 = 1000;

/// What a run did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunOutcome {
    /// The index of its `redaction` entry, if it redacted anything.
    pub logged: Option<u64>,
    /// How many entries it redacted.
    pub redacted: u64,
    /// Where the next run starts: the lowest entry this run left unredacted.
    pub next_from: u64,
}

/// Runs retention every `every` while this server is the writer, the first run `every`
/// after the start, until `stop` turns true. A failed run is logged and tried again at the
/// next tick.
pub async fn run_every(
    ledger: Ledger,
    policy: Arc<RetentionPolicy>,
    vos: Vec<Vo>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut from = 0;
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        if ledger.role() != Role::Writer {
            continue;
        }
        match run_once(&ledger, &policy, &vos, from).await {
            Ok(outcome) => {
                from = outcome.next_from;
                if let Some(index) = outcome.logged {
                    tracing::info!(index, redacted = outcome.redacted, "retention run");
                }
            }
            Err(e) => tracing::warn!(error = %e, "retention run failed"),
        }
    }
}

/// One retention run at the clock's time, from entry `from`: appends one `redaction` entry
/// if any entry is due.
pub async fn run_once(
    ledger: &Ledger,
    policy: &RetentionPolicy,
    vos: &[Vo],
    from: u64,
) -> Result<RunOutcome, ServiceError> {
    let now = ledger.clock.now_micros();
    let reader = ledger.reader.primary();
    let holds = Holds::read(reader, vos, now / 1_000_000).await?;
    // Entries are logged in index order: past the newest a period could make due, none is.
    let shortest = vos
        .iter()
        .map(|vo| Some(vo.as_str()))
        .chain([None])
        .flat_map(|vo| {
            tokenledger_core::entry::EntryType::ALL.map(|t| policy.period(t, vo).micros())
        })
        .min()
        .unwrap_or(i64::MAX);
    let newest_due = now.saturating_sub(shortest);
    let unranged = EntryBody::Redaction(Box::new(Redaction {
        policy: policy.record(),
        ranges: Vec::new(),
        counts: Default::default(),
    }));
    let mut planner = RedactionPlanner::new(range_room(&unranged));
    let size = ledger.head().size;
    let mut next_from = None;
    let mut start = from;
    'scan: while start < size {
        let end = size.min(start + PAGE);
        for record in reader.entries(start, end).await? {
            let LogRecord::Leaf((index, leaf)) = record else {
                continue;
            };
            let entry = LogEntry::from_canonical_bytes(&leaf)
                .map_err(|e| StoreError::Corrupt(format!("entry {index}: {e}")))?;
            if entry.logged_at > newest_due {
                next_from.get_or_insert(index);
                break 'scan;
            }
            let token_exp = match &entry.body {
                EntryBody::Issuance(issuance) => issuance.exp,
                _ => None,
            };
            let candidate = Candidate {
                entry_type: entry.body.entry_type(),
                vo: entry.body.vo(),
                logged_at: entry.logged_at,
                token_exp,
                held: holds.hold(reader, index, &entry.body).await?,
            };
            let due = policy.decide(&candidate, now).is_redact();
            let pushed = planner
                .push(index, candidate.entry_type, due)
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
            if pushed == Pushed::Full {
                next_from.get_or_insert(index);
                break 'scan;
            }
            if !due {
                next_from.get_or_insert(index);
            }
        }
        start = end;
    }
    let plan = planner.finish();
    let next_from = next_from.unwrap_or(start.max(from));
    if plan.is_empty() {
        return Ok(RunOutcome {
            logged: None,
            redacted: 0,
            next_from,
        });
    }
    let redacted = plan.total();
    let change = StateChange::Redact {
        ranges: plan.ranges.clone(),
        at: now,
    };
    let body = EntryBody::Redaction(Box::new(Redaction {
        policy: policy.record(),
        ranges: plan.ranges,
        counts: plan.counts,
    }));
    let index = ledger.append(body, EntryKind::State(change)).await?;
    Ok(RunOutcome {
        logged: Some(index),
        redacted,
        next_from,
    })
}

/// What active suspensions and pending suspension requests hold, as stored at the start of
/// a run.
struct Holds {
    /// Active suspensions, by id, and the index of each one's entry.
    suspensions: HashSet<String>,
    /// Persons `(vo, person)` an active person (or token) suspension names.
    persons: HashSet<(String, String)>,
    /// Tokens `(iss, jti)` an active token suspension names.
    tokens: HashSet<(String, String)>,
    /// Clients `(iss, client_id)` an active client suspension names.
    clients: HashSet<(String, String)>,
    /// Entries of pending suspension requests.
    pending: HashSet<u64>,
}

impl Holds {
    async fn read(reader: &dyn LedgerReader, vos: &[Vo], now: i64) -> Result<Holds, StoreError> {
        let mut holds = Holds {
            suspensions: HashSet::new(),
            persons: HashSet::new(),
            tokens: HashSet::new(),
            clients: HashSet::new(),
            pending: HashSet::new(),
        };
        for vo in vos {
            for s in reader.suspensions_for_vo(vo).await? {
                if !s.is_active(now) {
                    continue;
                }
                if let Some(person) = &s.person_id {
                    holds.persons.insert((vo.to_string(), person.to_string()));
                }
                if let (Some(iss), Some(jti)) = (&s.token_iss, &s.token_jti) {
                    holds.tokens.insert((iss.clone(), jti.to_string()));
                }
                if let (Some(iss), Some(client)) = (&s.client_iss, &s.client_id) {
                    holds.clients.insert((iss.clone(), client.clone()));
                }
                holds.suspensions.insert(s.id);
            }
            let pending = reader
                .suspension_requests_to_vo(vo, Some(RequestStatus::Pending))
                .await?;
            holds.pending.extend(pending.iter().map(|r| r.idx));
        }
        Ok(holds)
    }

    /// Whether something in force needs the entry at `index`.
    async fn hold(
        &self,
        reader: &dyn LedgerReader,
        index: u64,
        body: &EntryBody,
    ) -> Result<bool, StoreError> {
        Ok(match body {
            EntryBody::Issuance(i) => {
                self.tokens.contains(&(i.iss.clone(), i.jti.clone()))
                    || i.client_id
                        .as_ref()
                        .is_some_and(|c| self.clients.contains(&(i.iss.clone(), c.clone())))
                    || self.person_held(reader, &i.vo, &i.iss, &i.sub).await?
            }
            EntryBody::Sighting(s) => {
                self.tokens.contains(&(s.iss.clone(), s.jti.clone()))
                    || self
                        .sighted_person_held(reader, &s.vo, &s.iss, &s.jti)
                        .await?
            }
            EntryBody::IdentityLink(l) => {
                self.persons.contains(&(l.vo.clone(), l.person_id.clone()))
                    || l.merged_from
                        .as_ref()
                        .is_some_and(|from| self.persons.contains(&(l.vo.clone(), from.clone())))
            }
            EntryBody::Suspension(s) => self.suspensions.contains(&s.suspension_id),
            EntryBody::SuspensionRequest(_) => self.pending.contains(&index),
            _ => false,
        })
    }

    /// Whether identity `(iss, sub)` belongs to a suspended person of `vo`.
    async fn person_held(
        &self,
        reader: &dyn LedgerReader,
        vo: &str,
        iss: &str,
        sub: &str,
    ) -> Result<bool, StoreError> {
        if !self.persons.iter().any(|(v, _)| v == vo) {
            return Ok(false);
        }
        let person: Option<PersonId> = reader.person_of(iss, sub, &Vo::unchecked(vo)).await?;
        Ok(person.is_some_and(|p| self.persons.contains(&(vo.to_string(), p.to_string()))))
    }

    /// Whether the token `(iss, jti)` seen belongs to a suspended person of `vo`.
    async fn sighted_person_held(
        &self,
        reader: &dyn LedgerReader,
        vo: &str,
        iss: &str,
        jti: &str,
    ) -> Result<bool, StoreError> {
        if !self.persons.iter().any(|(v, _)| v == vo) {
            return Ok(false);
        }
        match reader.issuance(iss, &Jti::unchecked(jti)).await? {
            Some((index, leaf)) => {
                let issuance = decode_issuance(index, &leaf)?;
                self.person_held(reader, vo, iss, &issuance.sub).await
            }
            None => Ok(false),
        }
    }
}
