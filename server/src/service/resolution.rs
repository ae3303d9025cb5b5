//! VO-restricted resolution: a `jti` turned into a person (with its token chain and an
//! inclusion proof), a person's tokens, searches by client or scope, a person's timeline.
//! Every answer that reveals identities, and every miss, is logged as a `resolution` entry
//! with the stated reason before it is given.

use tokenledger_core::chain::{Chain, ChainLink, ChainLookup, ChainWalk};
use tokenledger_core::entry::{EntryBody, Issuance, Resolution};
use tokenledger_core::ids::{Jti, PersonId, Vo};
use tokenledger_core::redaction::RedactedToken;
use tokenledger_core::wire::{
    IdentityView, IssuancePage, PersonView, Timeline, TimelineEvent, TimelineRedaction,
    TokenResolution,
};

use super::entries::served;
use super::{Ledger, ServiceError};
use crate::sequencer::EntryKind;
use crate::store::{IssuanceFilter, StoredEntry, decode_issuance};

/// Default and largest page of a listing.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// The most redactions a timeline page names.
const MAX_REDACTIONS_SHOWN: u32 = 100;

/// What a listing of issuances asks for, beyond the VO (and person).
#[derive(Debug, Default)]
pub struct Listing<'a> {
    pub client_id: Option<&'a str>,
    pub scope: Option<&'a str>,
    /// Tokens issued at or after / before (unix seconds).
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Paging: only entries with a smaller index.
    pub before: Option<u64>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// Logs that `requester` resolved `target` in `vo` (`action`, for `reason`), revealing
/// `revealed` records; returns the entry's index.
pub async fn log(
    ledger: &Ledger,
    requester: &str,
    vo: &Vo,
    action: &str,
    target: &str,
    reason: &str,
    revealed: u64,
) -> Result<u64, ServiceError> {
    let body = EntryBody::Resolution(Resolution {
        requester: requester.to_string(),
        vo: vo.to_string(),
        action: action.to_string(),
        target: target.to_string(),
        reason: reason.to_string(),
        revealed,
    });
    ledger
        .append(body, EntryKind::Resolution { vo: vo.clone() })
        .await
}

/// The person `jti` (of `iss`, if given) of `vo` was issued to, with the issuance, its
/// inclusion proof and checkpoint, and the token chain; `by` asks, for `reason`.
pub async fn token(
    ledger: &Ledger,
    by: &str,
    vo: &Vo,
    jti: &Jti,
    iss: Option<&str>,
    reason: &str,
) -> Result<TokenResolution, ServiceError> {
    let mut found: Vec<(u64, Issuance, Vec<u8>)> = Vec::new();
    for (index, leaf) in ledger.reader.issuances_by_jti(jti).await? {
        let issuance = decode_issuance(index, &leaf)?;
        if *vo == *issuance.vo && iss.is_none_or(|iss| iss == issuance.iss) {
            found.push((index, issuance, leaf));
        }
    }
    let action = "resolve_jti";
    let (index, issuance, leaf) = match found.len() {
        1 => found.pop().expect("one"),
        0 => {
            let redacted = redacted_issuances(ledger, std::slice::from_ref(vo), jti, iss).await?;
            log(ledger, by, vo, action, jti, reason, 0).await?;
            if redacted > 0 {
                return Err(ServiceError::Redacted(format!(
                    "this jti was logged in VO `{vo}`, then redacted after retention: its \
                     issuance is no longer kept"
                )));
            }
            return Err(ServiceError::NotFound(format!(
                "no issuance of this jti in VO `{vo}`"
            )));
        }
        _ => {
            log(ledger, by, vo, action, jti, reason, 0).await?;
            let issuers: Vec<&str> = found.iter().map(|(_, i, _)| i.iss.as_str()).collect();
            return Err(ServiceError::Conflict(format!(
                "several issuers logged this jti in VO `{vo}`: pass iss= one of {issuers:?}"
            )));
        }
    };
    // The entry records how many links the answer reveals, so the chain comes first; the
    // other reads run while the entry commits.
    let chain = walk_chain(ledger, vo, index, &issuance).await?;
    let revealed = chain.links.len() as u64;
    let head = ledger.head();
    let logged = log(ledger, by, vo, action, jti, reason, revealed);
    let people = async {
        let person = person_view(ledger, vo, &issuance.iss, &issuance.sub).await?;
        let human = match chain.human_subject() {
            // A token of the human itself (the chain's root): the same person.
            Some(identity) if identity == (issuance.iss.as_str(), issuance.sub.as_str()) => {
                Some(person.clone())
            }
            Some((iss, sub)) => Some(person_view(ledger, vo, iss, sub).await?),
            None => None,
        };
        Ok::<_, ServiceError>((person, human))
    };
    let proof =
        async { Ok::<_, ServiceError>(ledger.reader.inclusion_proof(index, head.size).await?) };
    let (resolution_index, (person, human), inclusion_proof) =
        tokio::try_join!(logged, people, proof)?;
    Ok(TokenResolution {
        resolution_index,
        person,
        issuance: served(index, &leaf)?,
        inclusion_proof,
        checkpoint: head.note.clone(),
        chain,
        human,
    })
}

/// How many redacted issuances of `jti` (of `iss`, if given) `vos` had.
pub(super) async fn redacted_issuances(
    ledger: &Ledger,
    vos: &[Vo],
    jti: &Jti,
    iss: Option<&str>,
) -> Result<usize, ServiceError> {
    let key = ledger.pseudonyms.secret().redaction_key();
    let token_hash = iss.map(|iss| RedactedToken::of(&key, iss, jti).token_hash);
    Ok(ledger
        .reader
        .redacted_issuances(&RedactedToken::jti_hash(&key, jti))
        .await?
        .iter()
        .filter(|r| vos.contains(&r.vo) && token_hash.is_none_or(|hash| hash == r.token_hash))
        .count())
}

/// A page of the issuances of every identity of `person` of `vo`; `by` asks, for `reason`.
pub async fn person_tokens(
    ledger: &Ledger,
    by: &str,
    vo: &Vo,
    person: &PersonId,
    listing: Listing<'_>,
    reason: &str,
) -> Result<IssuancePage, ServiceError> {
    let identities = ledger.reader.identities_of(person, vo).await?;
    if identities.is_empty() {
        log(ledger, by, vo, "person_tokens", person, reason, 0).await?;
        return Err(ServiceError::NotFound(format!(
            "no person `{person}` in VO `{vo}`"
        )));
    }
    let page = list(ledger, vo, Some(&identities), &listing).await?;
    page_answer(ledger, by, vo, "person_tokens", person, reason, page).await
}

/// A page of the issuances of `vo` by client or scope (one at least); `by` asks, for
/// `reason`.
pub async fn search(
    ledger: &Ledger,
    by: &str,
    vo: &Vo,
    listing: Listing<'_>,
    reason: &str,
) -> Result<IssuancePage, ServiceError> {
    if listing.client_id.is_none() && listing.scope.is_none() {
        return Err(ServiceError::BadRequest(
            "search by client_id or scope (or both)".into(),
        ));
    }
    let target = format!(
        "client_id={} scope={}",
        listing.client_id.unwrap_or("*"),
        listing.scope.unwrap_or("*")
    );
    let page = list(ledger, vo, None, &listing).await?;
    page_answer(ledger, by, vo, "search", &target, reason, page).await
}

/// A page of `person`'s timeline in `vo`, newest first; `by` asks, for `reason`.
pub async fn timeline(
    ledger: &Ledger,
    by: &str,
    vo: &Vo,
    person: &PersonId,
    (before, limit): (Option<u64>, Option<u32>),
    reason: &str,
) -> Result<Timeline, ServiceError> {
    let identities = ledger.reader.identities_of(person, vo).await?;
    if identities.is_empty() {
        log(ledger, by, vo, "timeline", person, reason, 0).await?;
        return Err(ServiceError::NotFound(format!(
            "no person `{person}` in VO `{vo}`"
        )));
    }
    let limit = page_size(limit)?;
    let rows = ledger
        .reader
        .timeline(vo, person, &identities, before, limit)
        .await?;
    let next_before = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.1))
        .flatten();
    let mut events = Vec::with_capacity(rows.len());
    for (kind, index, leaf) in &rows {
        let entry = served(*index, leaf)?;
        events.push(TimelineEvent {
            kind: kind.clone(),
            index: *index,
            at: entry.entry["logged_at"].as_i64().unwrap_or_default(),
            entry: entry.entry,
        });
    }
    // The page's span of the log: from its oldest event (the log's start on the last page)
    // up to `before` (the log's end on the first page).
    let start = next_before.unwrap_or(0);
    let end = before.unwrap_or(i64::MAX as u64);
    let redactions = ledger
        .reader
        .redactions_within(start, end, MAX_REDACTIONS_SHOWN)
        .await?
        .into_iter()
        .map(|span| TimelineRedaction {
            index: span.index,
            at: span.at,
            first: span.first,
            end: span.end,
        })
        .collect();
    let revealed = events.len() as u64;
    let resolution_index = log(ledger, by, vo, "timeline", person, reason, revealed).await?;
    Ok(Timeline {
        resolution_index,
        person: PersonView {
            id: person.to_string(),
            vo: vo.to_string(),
            identities: identity_views(identities),
        },
        events,
        redactions,
        next_before,
    })
}

/// The page size asked for, or the default; 400 beyond the largest.
fn page_size(limit: Option<u32>) -> Result<u32, ServiceError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ServiceError::BadRequest(format!(
            "limit is 1 to {MAX_LIMIT}"
        )));
    }
    Ok(limit)
}

async fn list(
    ledger: &Ledger,
    vo: &Vo,
    identities: Option<&[(String, String)]>,
    listing: &Listing<'_>,
) -> Result<(Vec<StoredEntry>, Option<u64>), ServiceError> {
    let limit = page_size(listing.limit)?;
    let filter = IssuanceFilter {
        vo,
        identities,
        client_id: listing.client_id,
        scope: listing.scope,
        from: listing.from,
        to: listing.to,
        before: listing.before,
        limit,
    };
    let rows = ledger.reader.issuances(&filter).await?;
    let next_before = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.0))
        .flatten();
    Ok((rows, next_before))
}

async fn page_answer(
    ledger: &Ledger,
    by: &str,
    vo: &Vo,
    action: &str,
    target: &str,
    reason: &str,
    (rows, next_before): (Vec<StoredEntry>, Option<u64>),
) -> Result<IssuancePage, ServiceError> {
    let issuances = rows
        .iter()
        .map(|(index, leaf)| served(*index, leaf))
        .collect::<Result<Vec<_>, _>>()?;
    let revealed = issuances.len() as u64;
    let resolution_index = log(ledger, by, vo, action, target, reason, revealed).await?;
    Ok(IssuancePage {
        resolution_index,
        issuances,
        next_before,
    })
}

/// Walks the token chain up from `issuance`, within `vo`.
async fn walk_chain(
    ledger: &Ledger,
    vo: &Vo,
    index: u64,
    issuance: &Issuance,
) -> Result<Chain, ServiceError> {
    let mut walk = ChainWalk::new(link(index, issuance));
    while let Some(lookup) = walk.next_lookup() {
        let row = match &lookup {
            ChainLookup::ByJti { iss, jti } => {
                ledger.reader.issuance(iss, &Jti::unchecked(jti)).await?
            }
            ChainLookup::FirstWithRefresh {
                iss,
                refresh_jti,
                before_index,
            } => {
                ledger
                    .reader
                    .first_with_refresh(iss, &Jti::unchecked(refresh_jti), *before_index)
                    .await?
            }
        };
        let found = match row {
            Some((index, leaf)) => {
                let parent = decode_issuance(index, &leaf)?;
                (*vo == *parent.vo).then(|| link(index, &parent))
            }
            None => None,
        };
        walk.feed(found);
    }
    Ok(walk.finish())
}

fn link(index: u64, issuance: &Issuance) -> ChainLink {
    ChainLink {
        index,
        jti: issuance.jti.clone(),
        iss: issuance.iss.clone(),
        sub: issuance.sub.clone(),
        client_id: issuance.client_id.clone(),
        grant_type: issuance.grant_type.clone(),
        parent_jti: issuance.parent_jti.clone(),
        refresh_jti: issuance.refresh_jti.clone(),
    }
}

async fn person_view(
    ledger: &Ledger,
    vo: &Vo,
    iss: &str,
    sub: &str,
) -> Result<PersonView, ServiceError> {
    let (id, identities) = ledger
        .reader
        .person_with_identities(iss, sub, vo)
        .await?
        .ok_or_else(|| {
            ServiceError::Internal(format!("no person for an identity logged in {vo}"))
        })?;
    Ok(PersonView {
        id: id.into_string(),
        vo: vo.to_string(),
        identities: identity_views(identities),
    })
}

fn identity_views(identities: Vec<(String, String)>) -> Vec<IdentityView> {
    identities
        .into_iter()
        .map(|(iss, sub)| IdentityView { iss, sub })
        .collect()
}
