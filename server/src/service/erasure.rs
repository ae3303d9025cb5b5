//! Erasure of a VO's person at its security officers' request: every entry of the person is
//! redacted now ([`PersonScan`] says which), except what an active suspension or a pending
//! suspension request still needs, through `erasure` entries whose transaction removes the
//! payloads exactly as a retention run's does ([`StateChange::Redact`]; the last one names
//! the person, so their identities and pseudonyms go too, when nothing of theirs is kept).

use std::collections::BTreeSet;

use tokenledger_core::entry::{EntryBody, LogEntry};
use tokenledger_core::erasure::{ClientHold, ErasureHolds, ErasurePlan, PersonScan, split};
use tokenledger_core::ids::{PersonId, Vo};
use tokenledger_core::redaction::{Erasure, range_room};
use tokenledger_core::suspension_request::RequestStatus;
use tokenledger_core::wire::{ErasureEntryView, ErasureView, KeptEntryView};

use super::retention::MAX_REDACTED_PER_ENTRY;
use super::{Ledger, ServiceError};
use crate::preconditions::Refusal;
use crate::sequencer::{AppendError, EntryKind};
use crate::store::{LedgerReader, StateChange, StoreError};

/// Entries read per page while the log is scanned for the person's.
const PAGE: u64 = 1000;

/// Erases `person` of `vo` for `reason`; `by` is the caller. The erasure is planned with
/// the holds read at a recorded log size; if the sequencer refuses it because a suspension,
/// lift, request, decision, link or merge was logged since, it is planned again once, and
/// a second refusal is a 409. If nothing is kept but an identity of the person is left (a
/// token of theirs logged during the scan), it is planned again, at most twice more, then a
/// 409. Every `erasure` entry appended is in the answer. It runs to its end on a task of its
/// own even if the caller goes away: stopped between its entries, it would leave the
/// person's identities behind.
pub async fn erase(
    ledger: &Ledger,
    by: &str,
    vo: &Vo,
    person: &PersonId,
    reason: &str,
) -> Result<ErasureView, ServiceError> {
    let ledger = ledger.clone();
    let (by, vo, person, reason) = (
        by.to_string(),
        vo.clone(),
        person.clone(),
        reason.to_string(),
    );
    tokio::spawn(async move { erase_to_end(&ledger, &by, &vo, &person, &reason).await })
        .await
        .map_err(|e| ServiceError::Internal(format!("the erasure's task failed: {e}")))?
}

/// The erasure of [`erase`], on its task.
async fn erase_to_end(
    ledger: &Ledger,
    by: &str,
    vo: &Vo,
    person: &PersonId,
    reason: &str,
) -> Result<ErasureView, ServiceError> {
    let mut logged = Vec::new();
    let (mut refused, mut issued_meanwhile) = (0, 0);
    let what = loop {
        match erase_once(ledger, by, vo, person, reason, &mut logged).await {
            Err(ServiceError::Append(AppendError::Refused(Refusal::HoldsChanged))) => {
                refused += 1;
                if refused == 2 {
                    break "suspensions, requests, links or merges were logged while it was \
                           planned, twice";
                }
            }
            // Nothing kept, yet an identity is left: a token or sighting of the person was
            // logged while the log was scanned. Plan again for it.
            Ok(view)
                if view.kept.is_empty()
                    && !ledger
                        .reader
                        .primary()
                        .identities_of(person, vo)
                        .await?
                        .is_empty() =>
            {
                issued_meanwhile += 1;
                if issued_meanwhile == 3 {
                    break "tokens of the person kept being logged while it ran";
                }
            }
            outcome => return outcome,
        }
    };
    let indexes: Vec<u64> = logged.iter().map(|(index, _)| *index).collect();
    Err(ServiceError::Conflict(format!(
        "the erasure of person `{person}` is not complete: {what}{}: erase again",
        if indexes.is_empty() {
            String::new()
        } else {
            format!(" (erasure entries {indexes:?} were logged)")
        }
    )))
}

/// One planning of the erasure and its `erasure` entries; those appended are added to
/// `logged` (index and the entry), before a refusal ends it.
async fn erase_once(
    ledger: &Ledger,
    by: &str,
    vo: &Vo,
    person: &PersonId,
    reason: &str,
    logged: &mut Vec<(u64, Erasure)>,
) -> Result<ErasureView, ServiceError> {
    // Only the writer appends: a standby answers before reading the whole log.
    ledger.role.sequencer()?;
    let now = ledger.clock.now_micros();
    let reader = ledger.reader.primary();
    // The size first: a change of holds logged from here on is not in what is read next,
    // and the sequencer refuses the erasure for it.
    let holds_at = ledger.head().size;
    let holds = read_holds(reader, vo, person, now / 1_000_000).await?;
    let identities = reader.identities_of(person, vo).await?;
    let scan = scan(reader, vo, person, &identities, holds_at).await?;
    if identities.is_empty() {
        return Err(match scan.merged_into() {
            Some(into) => ServiceError::Conflict(format!(
                "person `{person}` was merged into `{into}`: erase that person"
            )),
            None => ServiceError::NotFound(format!("no person `{person}` in VO `{vo}`")),
        });
    }
    let ErasurePlan { erase, kept } = scan.plan(&holds);
    let person_holds = holds.of_person();
    let unranged = |ranges, counts| Erasure {
        vo: vo.to_string(),
        person_id: person.to_string(),
        requester: by.to_string(),
        reason: reason.to_string(),
        ranges,
        counts,
    };
    let room = range_room(&EntryBody::Erasure(Box::new(unranged(
        Vec::new(),
        Default::default(),
    ))));
    let plans = split(&erase, room, MAX_REDACTED_PER_ENTRY)
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    // A second planning after a refusal: its plan has entries only when something is left;
    // an empty one is not logged again.
    let skip_empty = !logged.is_empty();
    let last = plans.len().saturating_sub(1);
    for (n, plan) in plans.into_iter().enumerate() {
        // The entry naming the person is always appended: nothing else removes their
        // identities.
        if plan.is_empty() && skip_empty && !(n == last && kept.is_empty()) {
            continue;
        }
        // The person's identities and pseudonyms go with the last entry, once every
        // issuance of theirs is redacted (a redacted issuance's VO is read through its
        // identity), and only when nothing of theirs is kept.
        let persons = if n == last && kept.is_empty() {
            vec![(vo.clone(), person.clone())]
        } else {
            Vec::new()
        };
        let change = StateChange::Redact {
            ranges: plan.ranges.clone(),
            at: now,
            holds_at,
            key: ledger.pseudonyms.secret().redaction_key(),
            persons,
        };
        let erasure = unranged(plan.ranges, plan.counts);
        let body = EntryBody::Erasure(Box::new(erasure.clone()));
        let kind = EntryKind::Audited {
            vo: vo.clone(),
            change,
        };
        let index = ledger.append(body, kind).await?;
        logged.push((index, erasure));
    }
    Ok(ErasureView {
        vo: vo.to_string(),
        person_id: person.to_string(),
        redacted: logged
            .iter()
            .flat_map(|(_, e)| &e.ranges)
            .map(|r| r.len())
            .sum(),
        erasures: logged
            .iter()
            .map(|(index, e)| ErasureEntryView {
                index: *index,
                ranges: e.ranges.iter().map(|r| [r.start, r.end]).collect(),
                counts: e.counts.iter().map(|(t, n)| (t.to_string(), *n)).collect(),
            })
            .collect(),
        kept: kept
            .into_iter()
            .map(|k| KeptEntryView {
                index: k.index,
                entry_type: k.entry_type.to_string(),
                because: k.because,
            })
            .collect(),
        holds: person_holds.iter().map(ToString::to_string).collect(),
    })
}

/// What is in force about `person` of `vo` at `now` (unix seconds): the active suspensions
/// naming them, their pending suspension requests, and the VO's active client suspensions
/// (the widest of each client's).
async fn read_holds(
    reader: &dyn LedgerReader,
    vo: &Vo,
    person: &PersonId,
    now: i64,
) -> Result<ErasureHolds, StoreError> {
    let mut holds = ErasureHolds::default();
    for s in reader.suspensions_for_vo(vo).await? {
        if !s.is_active(now) {
            continue;
        }
        if s.person_id.as_ref() == Some(person) {
            holds.suspensions.insert(s.id);
        } else if let (Some(iss), Some(client)) = (s.client_iss, s.client_id) {
            let hold = ClientHold {
                suspension: s.id,
                issued_before: s.issued_before,
            };
            let wider = match holds.clients.remove(&(iss.clone(), client.clone())) {
                Some(other) => other.wider(hold),
                None => hold,
            };
            holds.clients.insert((iss, client), wider);
        }
    }
    holds.requests = reader
        .suspension_requests_to_vo(vo, Some(RequestStatus::Pending))
        .await?
        .into_iter()
        .filter(|r| r.person_id == *person)
        .map(|r| r.id)
        .collect::<BTreeSet<_>>();
    Ok(holds)
}

/// Scans the log's unredacted entries below `size` for the person's (redacted ones are
/// skipped unread).
async fn scan(
    reader: &dyn LedgerReader,
    vo: &Vo,
    person: &PersonId,
    identities: &[(String, String)],
    size: u64,
) -> Result<PersonScan, ServiceError> {
    let mut scan = PersonScan::new(vo, person, identities);
    let mut page = 0;
    while page < size {
        let stored = reader.stored_entries(page, size, PAGE).await?;
        let Some(&(last, _)) = stored.last() else {
            break;
        };
        for (index, leaf) in stored {
            let entry = LogEntry::from_canonical_bytes(&leaf)
                .map_err(|e| StoreError::Corrupt(format!("entry {index}: {e}")))?;
            scan.see(index, &entry.body);
        }
        page = last + 1;
    }
    Ok(scan)
}
