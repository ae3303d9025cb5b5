//! A VO's persons: another identity attached to a person, two persons merged, and a pseudonym
//! a site reported resolved to its person (logged like every resolution). Whether the persons
//! exist and the identity is free is decided by the sequencer, in log order.

use tokenledger_core::entry::{EntryBody, IdentityLink};
use tokenledger_core::ids::{PersonId, Pseudonym, Vo};
use tokenledger_core::wire::{IdentityView, PersonView, PseudonymResolution};

use super::{Ledger, ServiceError, resolution};
use crate::preconditions::Refusal;
use crate::sequencer::{AppendError, EntryKind};
use crate::store::{LedgerReader, StateChange};

/// Attaches identity `(iss, sub)` to `person` of `vo` for `reason`; `by` is the caller. A link
/// in effect already changes nothing. Returns the person as it is then.
pub async fn link(
    ledger: &Ledger,
    by: &str,
    vo: &Vo,
    person: &PersonId,
    (iss, sub): (String, String),
    reason: String,
) -> Result<PersonView, ServiceError> {
    let body = EntryBody::IdentityLink(IdentityLink {
        vo: vo.to_string(),
        person_id: person.to_string(),
        iss: Some(iss.clone()),
        sub: Some(sub.clone()),
        merged_from: None,
        reason,
        linked_by: by.to_string(),
    });
    let change = StateChange::Link {
        vo: vo.clone(),
        person_id: person.clone(),
        iss,
        sub,
        created_at: ledger.clock.now_micros(),
    };
    let entry = ledger.prepare(body, EntryKind::State(change))?;
    match ledger.append_decided(entry).await {
        Ok(_) | Err(AppendError::Refused(Refusal::InEffect)) => {}
        Err(e) => return Err(e.into()),
    }
    view(ledger.reader.as_ref(), vo, person).await
}

/// Merges person `other` into `person` of `vo` for `reason`; `by` is the caller. Returns the
/// merged person.
pub async fn merge(
    ledger: &Ledger,
    by: &str,
    vo: &Vo,
    person: &PersonId,
    other: PersonId,
    reason: String,
) -> Result<PersonView, ServiceError> {
    if other == *person {
        return Err(ServiceError::BadRequest(
            "a person cannot be merged into itself".into(),
        ));
    }
    let body = EntryBody::IdentityLink(IdentityLink {
        vo: vo.to_string(),
        person_id: person.to_string(),
        iss: None,
        sub: None,
        merged_from: Some(other.to_string()),
        reason,
        linked_by: by.to_string(),
    });
    let change = StateChange::Merge {
        vo: vo.clone(),
        into: person.clone(),
        from: other,
    };
    ledger.append(body, EntryKind::State(change)).await?;
    view(ledger.reader.as_ref(), vo, person).await
}

/// The person of `vo` behind a site's `pseudonym`, for `reason`; the answer (or the miss) is
/// logged first. `by` is the caller.
pub async fn resolve_pseudonym(
    ledger: &Ledger,
    by: &str,
    vo: &Vo,
    pseudonym: &Pseudonym,
    reason: &str,
) -> Result<PseudonymResolution, ServiceError> {
    let found = ledger
        .reader
        .pseudonym(pseudonym)
        .await?
        .filter(|(_, at_vo, _)| at_vo == vo);
    let action = "resolve_pseudonym";
    let Some((_, _, person)) = found else {
        resolution::log(ledger, by, vo, action, pseudonym, reason, 0).await?;
        return Err(ServiceError::NotFound(format!(
            "no pseudonym `{pseudonym}` in VO `{vo}`"
        )));
    };
    let person = view(ledger.reader.as_ref(), vo, &person).await?;
    let resolution_index = resolution::log(ledger, by, vo, action, pseudonym, reason, 1).await?;
    Ok(PseudonymResolution {
        resolution_index,
        person,
    })
}

/// A person of `vo` with every identity, oldest first.
pub async fn view(
    reader: &dyn LedgerReader,
    vo: &Vo,
    person: &PersonId,
) -> Result<PersonView, ServiceError> {
    let identities = reader.identities_of(person, vo).await?;
    Ok(PersonView {
        id: person.to_string(),
        vo: vo.to_string(),
        identities: identities
            .into_iter()
            .map(|(iss, sub)| IdentityView { iss, sub })
            .collect(),
    })
}
