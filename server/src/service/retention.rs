//! Retention runs: the writer, every `[retention] run_every`, reads the log from its lowest
//! entry not yet redacted, decides each entry with the policy ([`RetentionPolicy::decide`]),
//! holding what active suspensions and pending suspension requests need, and appends
//! `redaction` entries through the sequencer (each of at most [`MAX_REDACTED_PER_ENTRY`]
//! entries), whose transaction removes the payload of the entries it names
//! ([`StateChange::Redact`]). A run leaves the writer to other appends between two of its
//! entries for at least as long as the last one held it, so that a run with much due (the
//! first on an old ledger) takes at most about half of the writer's time. After a run that
//! redacted something, the space of the deleted rows is given back ([`reclaim`]), off the
//! sequencer's path.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokenledger_core::blocklist::issued_in_reach;
use tokenledger_core::entry::{EntryBody, Issuance, LogEntry};
use tokenledger_core::ids::{Jti, PersonId, Vo};
use tokenledger_core::redaction::{Redaction, range_room};
use tokenledger_core::retention::{
    Candidate, Pushed, RedactionPlan, RedactionPlanner, RetentionPolicy,
};
use tokenledger_core::suspension_request::RequestStatus;
use tokio::sync::watch;

use super::{Ledger, ServiceError};
use crate::sequencer::{AppendError, EntryKind};
use crate::store::{LedgerReader, Reclaimed, Reclaimer, StateChange, StoreError, decode_issuance};
use crate::writer_role::Role;

/// Stored entries read per page while a run scans the log.
const PAGE: u64 = 1000;

/// The most entries one `redaction` entry removes. Its transaction deletes their rows (and
/// the lookup rows that point at them) in the writer's batch, which on PostgreSQL must commit
/// within the writer's deadline (60 s): a run with more due appends several entries in a row.
pub const MAX_REDACTED_PER_ENTRY: u64 = 20_000;

/// The most `redaction` entries one run appends; what is still due waits for the next tick.
pub const MAX_ENTRIES_PER_RUN: usize = 50;

/// The pause between two steps of [`reclaim`], during which the log's writer has the
/// database to itself.
pub const RECLAIM_PAUSE: Duration = Duration::from_millis(20);

/// What a run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOutcome {
    /// The indexes of its `redaction` entries, in order.
    pub logged: Vec<u64>,
    /// How many entries it redacted.
    pub redacted: u64,
    /// Where the next run starts: the lowest entry this run left unredacted.
    pub next_from: u64,
}

/// Runs retention every `every` while this server is the writer, the first run `every`
/// after the start, until `stop` turns true. A failed run is logged and tried again at the
/// next tick; so is a run the sequencer refused because holds changed while it ran. After a
/// run that redacted something, `reclaimer` gives the space back ([`reclaim`]); a failure
/// there is logged (the space is reused anyway, and the next run tries again).
pub async fn run_every(
    ledger: Ledger,
    policy: Arc<RetentionPolicy>,
    vos: Vec<Vo>,
    reclaimer: Arc<dyn Reclaimer>,
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
        match run_once(&ledger, &policy, &vos, from, MAX_REDACTED_PER_ENTRY).await {
            Ok(outcome) => {
                from = outcome.next_from;
                if !outcome.logged.is_empty() {
                    tracing::info!(
                        entries = ?outcome.logged,
                        redacted = outcome.redacted,
                        "retention run"
                    );
                }
                if outcome.redacted > 0 {
                    tokio::select! {
                        reclaimed = reclaim(reclaimer.as_ref()) => match reclaimed {
                            Ok(steps) => tracing::info!(steps, "space of redacted rows given back"),
                            Err(e) => tracing::warn!(
                                error = %e,
                                "giving back the space of redacted rows failed; it is reused, \
                                 and tried again after the next run that redacts"
                            ),
                        },
                        _ = stop.wait_for(|stop| *stop) => return,
                    }
                }
            }
            Err(ServiceError::Append(AppendError::Refused(refusal))) => {
                tracing::info!(%refusal, "retention run refused: tried again at the next tick");
            }
            Err(e) => tracing::warn!(error = %e, "retention run failed"),
        }
    }
}

/// One retention run at the clock's time, from entry `from`: appends `redaction` entries
/// while any entry is due, each removing at most `max_per_entry` entries, at most
/// [`MAX_ENTRIES_PER_RUN`] of them. The holds are read once, at the start; every entry
/// carries the log size they were read at, and the sequencer refuses it if a change of
/// holds was logged since ([`crate::preconditions`]): the run then ends with that refusal,
/// having kept the entries it appended before. Before each entry but the first, it waits
/// until the writer has been free of the run for as long as the run's previous entry took
/// to append.
pub async fn run_once(
    ledger: &Ledger,
    policy: &RetentionPolicy,
    vos: &[Vo],
    from: u64,
    max_per_entry: u64,
) -> Result<RunOutcome, ServiceError> {
    let now = ledger.clock.now_micros();
    let reader = ledger.reader.primary();
    // The size first: a change of holds logged from here on is not in what is read next.
    let holds_at = ledger.head().size;
    let holds = Holds::read(reader, vos, now / 1_000_000).await?;
    let run = Run {
        reader,
        policy,
        holds: &holds,
        now,
        newest_due: now.saturating_sub(shortest_period(policy, vos)),
        max_per_entry: max_per_entry.max(1),
    };
    let mut outcome = RunOutcome {
        logged: Vec::new(),
        redacted: 0,
        next_from: from,
    };
    let mut start = from;
    let mut kept: Option<u64> = None;
    let mut pacer = Pacer::default();
    while outcome.logged.len() < MAX_ENTRIES_PER_RUN {
        let round = run.plan(start, ledger.head().size).await?;
        if let Some(index) = round.first_kept {
            kept.get_or_insert(index);
        }
        if round.plan.is_empty() {
            outcome.next_from = kept.unwrap_or(round.stopped_at).max(from);
            return Ok(outcome);
        }
        let change = StateChange::Redact {
            ranges: round.plan.ranges.clone(),
            at: now,
            holds_at,
            key: ledger.pseudonyms.secret().redaction_key(),
            persons: Vec::new(),
        };
        let redacted = round.plan.total();
        let body = EntryBody::Redaction(Box::new(Redaction {
            policy: policy.record(),
            ranges: round.plan.ranges,
            counts: round.plan.counts,
        }));
        tokio::time::sleep(pacer.pause(Instant::now())).await;
        let appending = Instant::now();
        let index = ledger.append(body, EntryKind::State(change)).await?;
        pacer.appended(appending, Instant::now());
        outcome.logged.push(index);
        outcome.redacted += redacted;
        start = round.stopped_at;
        outcome.next_from = kept.unwrap_or(start).max(from);
    }
    Ok(outcome)
}

/// How long a run leaves the writer to other appends before its next entry: as long as its
/// last entry held it, less the time since (planning the next entry takes some of it).
#[derive(Default)]
struct Pacer {
    /// How long the last entry took to append, and when it was appended.
    last: Option<(Duration, Instant)>,
}

impl Pacer {
    /// The pause before the next entry, at `now`.
    fn pause(&self, now: Instant) -> Duration {
        self.last.map_or(Duration::ZERO, |(took, done)| {
            took.saturating_sub(now.saturating_duration_since(done))
        })
    }

    /// An entry was appended from `started` to `done`.
    fn appended(&mut self, started: Instant, done: Instant) {
        self.last = Some((done.saturating_duration_since(started), done));
    }
}

/// Gives back the space of the rows redaction deleted, step by bounded step with
/// [`RECLAIM_PAUSE`] between steps, until nothing is left; the number of steps taken.
pub async fn reclaim(reclaimer: &dyn Reclaimer) -> Result<u64, StoreError> {
    let mut steps = 0;
    loop {
        steps += 1;
        if reclaimer.reclaim_step().await? == Reclaimed::Done {
            return Ok(steps);
        }
        tokio::time::sleep(RECLAIM_PAUSE).await;
    }
}

/// The shortest period of `policy` in any of `vos` or outside them.
fn shortest_period(policy: &RetentionPolicy, vos: &[Vo]) -> i64 {
    vos.iter()
        .map(|vo| Some(vo.as_str()))
        .chain([None])
        .flat_map(|vo| {
            tokenledger_core::entry::EntryType::ALL.map(|t| policy.period(t, vo).micros())
        })
        .min()
        .unwrap_or(i64::MAX)
}

/// What one run decides with.
struct Run<'a> {
    reader: &'a dyn LedgerReader,
    policy: &'a RetentionPolicy,
    holds: &'a Holds,
    now: i64,
    /// Entries are logged in index order: past the newest a period could make due, none is.
    newest_due: i64,
    max_per_entry: u64,
}

/// One `redaction` entry's worth of a run.
struct Round {
    plan: RedactionPlan,
    /// The first entry the plan did not look at: the next round starts there.
    stopped_at: u64,
    /// The lowest entry looked at and left unredacted.
    first_kept: Option<u64>,
}

impl Run<'_> {
    /// The plan of one `redaction` entry, scanning the entries still stored from `start`
    /// below `size` (redacted ones are skipped unread, so a run over a long-redacted past
    /// costs what is kept there): it ends where no entry can be due any more, where its entry
    /// has no room for another range, or at `max_per_entry` entries.
    async fn plan(&self, start: u64, size: u64) -> Result<Round, ServiceError> {
        let unranged = EntryBody::Redaction(Box::new(Redaction {
            policy: self.policy.record(),
            ranges: Vec::new(),
            counts: Default::default(),
        }));
        let mut planner = RedactionPlanner::new(range_room(&unranged));
        let mut taken = 0;
        let mut first_kept = None;
        let mut page = start;
        while page < size {
            let stored = self.reader.stored_entries(page, size, PAGE).await?;
            let Some(&(last, _)) = stored.last() else {
                break;
            };
            for (index, leaf) in stored {
                let entry = LogEntry::from_canonical_bytes(&leaf)
                    .map_err(|e| StoreError::Corrupt(format!("entry {index}: {e}")))?;
                // Stopped at `index`, left for the next round or (if `kept`) the next run.
                let stop = |plan, kept: bool| Round {
                    plan,
                    stopped_at: index,
                    first_kept: first_kept.or(kept.then_some(index)),
                };
                if entry.logged_at > self.newest_due {
                    return Ok(stop(planner.finish(), true));
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
                    held: self.holds.hold(self.reader, index, &entry.body).await?,
                };
                let due = self.policy.decide(&candidate, self.now).is_redact();
                if due && taken == self.max_per_entry {
                    return Ok(stop(planner.finish(), false));
                }
                let pushed = planner
                    .push(index, candidate.entry_type, due)
                    .map_err(|e| ServiceError::Internal(e.to_string()))?;
                if pushed == Pushed::Full {
                    return Ok(stop(planner.finish(), false));
                }
                if due {
                    taken += 1;
                } else {
                    first_kept.get_or_insert(index);
                }
            }
            page = last + 1;
        }
        Ok(Round {
            plan: planner.finish(),
            stopped_at: size.max(start),
            first_kept,
        })
    }
}

/// What active suspensions and pending suspension requests hold, as stored at the start of
/// a run: a person's (or a request's person's) issuances, sightings and links, a token's
/// issuance and sightings (named by a suspension or a pending request), a client's issuances
/// and the sightings of its tokens (under a cut-off, of those issued before it), and the
/// suspension's and pending request's own entries.
struct Holds {
    /// Active suspensions, by id, and the index of each one's entry.
    suspensions: HashSet<String>,
    /// Persons `(vo, person)` an active person (or token) suspension or a pending request
    /// names.
    persons: HashSet<(String, String)>,
    /// Tokens `(iss, jti)` an active token suspension or a pending request names.
    tokens: HashSet<(String, String)>,
    /// Clients `(iss, client_id)` an active client suspension names, with the tokens it
    /// reaches: those issued before the cut-off (the latest of its suspensions'), or every
    /// token (`None`: a suspension without one).
    clients: HashMap<(String, String), Option<i64>>,
    /// Entries of pending suspension requests.
    pending: HashSet<u64>,
}

impl Holds {
    async fn read(reader: &dyn LedgerReader, vos: &[Vo], now: i64) -> Result<Holds, StoreError> {
        let mut holds = Holds {
            suspensions: HashSet::new(),
            persons: HashSet::new(),
            tokens: HashSet::new(),
            clients: HashMap::new(),
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
                    let key = (iss.clone(), client.clone());
                    let reach = holds.clients.entry(key).or_insert(s.issued_before);
                    *reach = reach.zip(s.issued_before).map(|(a, b)| a.max(b));
                }
                holds.suspensions.insert(s.id);
            }
            // A pending request holds what its suspension would: the person, and the token
            // it names.
            for r in reader
                .suspension_requests_to_vo(vo, Some(RequestStatus::Pending))
                .await?
            {
                holds
                    .persons
                    .insert((vo.to_string(), r.person_id.to_string()));
                if let (Some(iss), Some(jti)) = (&r.token_iss, &r.token_jti) {
                    holds.tokens.insert((iss.clone(), jti.to_string()));
                }
                holds.pending.insert(r.idx);
            }
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
                    || self.client_held(i)
                    || self.person_held(reader, &i.vo, &i.iss, &i.sub).await?
            }
            EntryBody::Sighting(s) => {
                self.tokens.contains(&(s.iss.clone(), s.jti.clone()))
                    || self.sighted_held(reader, &s.vo, &s.iss, &s.jti).await?
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

    /// Whether a client suspension reaches the token of issuance `i`: one of its client
    /// issued before the cut-off, if there is one (a token without `iat` is reached, as
    /// sites enforce it: [`issued_in_reach`]).
    fn client_held(&self, i: &Issuance) -> bool {
        i.client_id
            .as_ref()
            .and_then(|c| self.clients.get(&(i.iss.clone(), c.clone())))
            .is_some_and(|reach| issued_in_reach(*reach, i.iat))
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

    /// Whether the token `(iss, jti)` seen was issued to a suspended client, or belongs to a
    /// suspended person of `vo`: its issuance is read only if some client, or some person of
    /// `vo`, is held.
    async fn sighted_held(
        &self,
        reader: &dyn LedgerReader,
        vo: &str,
        iss: &str,
        jti: &str,
    ) -> Result<bool, StoreError> {
        let clients = self.clients.keys().any(|(i, _)| i == iss);
        if !clients && !self.persons.iter().any(|(v, _)| v == vo) {
            return Ok(false);
        }
        let Some((index, leaf)) = reader.issuance(iss, &Jti::unchecked(jti)).await? else {
            return Ok(false);
        };
        let issuance = decode_issuance(index, &leaf)?;
        if self.client_held(&issuance) {
            return Ok(true);
        }
        self.person_held(reader, vo, iss, &issuance.sub).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_leaves_the_writer_free_for_as_long_as_its_last_entry_held_it() {
        let mut pacer = Pacer::default();
        let start = Instant::now();
        assert_eq!(
            pacer.pause(start),
            Duration::ZERO,
            "the first entry waits for nothing"
        );
        let second = Duration::from_secs(1);
        pacer.appended(start, start + 3 * second);
        assert_eq!(pacer.pause(start + 3 * second), 3 * second);
        assert_eq!(
            pacer.pause(start + 4 * second),
            2 * second,
            "planning counts"
        );
        assert_eq!(pacer.pause(start + 7 * second), Duration::ZERO);
    }
}
