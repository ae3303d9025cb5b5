//! Reports checked for redacted issuances at ingest (`service::redacted_reports`) that a
//! redaction overtook before the writer took them: a report of an issuance redacted after
//! the check (committed since, or earlier in the same batch) would be logged anew, its key
//! row gone. The writer refuses such a job ([`Refusal::RedactedSince`]) and the server checks
//! it again; a job whose reports the redaction did not touch goes on.
//!
//! [`Refusal::RedactedSince`]: crate::preconditions::Refusal::RedactedSince

use std::collections::HashSet;

use tokenledger_core::ids::Jti;
use tokenledger_core::redaction::{IndexRange, RedactedToken, RedactionKey};

use crate::store::{IssuanceKey, LedgerWriter, StateChange, StoreError};

/// One job of a batch, as this check sees it.
pub struct Job<'a> {
    /// The log's size its reports were checked at, if they were.
    pub checked_at: Option<u64>,
    pub issuances: Vec<&'a IssuanceKey>,
    pub changes: Vec<&'a StateChange>,
    /// Admitted so far (its state changes apply).
    pub admitted: bool,
}

/// What the writer knows of the redactions it committed.
pub struct Redactions<'a> {
    /// The log's size after the last batch that redacted (or when the writer took up the
    /// log: what was redacted before is unknown).
    pub since: u64,
    /// The key of the digests of redacted issuances, once the writer committed a redaction.
    pub key: Option<&'a RedactionKey>,
}

/// For each of `jobs`, whether a redaction overtook its reports: one committed after their
/// check redacted an issuance one of them reports (and it is not logged again since), or
/// a job before it in the batch redacts one. Without the key, every job checked before
/// `since` counts as overtaken.
pub async fn overtaken(
    store: &mut dyn LedgerWriter,
    jobs: &[Job<'_>],
    redactions: &Redactions<'_>,
) -> Result<Vec<bool>, StoreError> {
    let mut refused = vec![false; jobs.len()];
    // Each candidate: its position, whether it was checked before `since`, and how many of
    // the batch's redacted ranges come before it.
    let mut candidates: Vec<(usize, bool, usize)> = Vec::new();
    let mut in_batch: Vec<IndexRange> = Vec::new();
    for (n, job) in jobs.iter().enumerate() {
        if !job.admitted {
            continue;
        }
        if let Some(at) = job.checked_at {
            let since = at < redactions.since;
            if !job.issuances.is_empty() && (since || !in_batch.is_empty()) {
                candidates.push((n, since, in_batch.len()));
            }
        }
        for change in &job.changes {
            if let StateChange::Redact { ranges, .. } = change {
                in_batch.extend(ranges.iter().copied());
            }
        }
    }
    if candidates.is_empty() {
        return Ok(refused);
    }
    let keys: Vec<(&Jti, &str)> = candidates
        .iter()
        .flat_map(|(n, _, _)| &jobs[*n].issuances)
        .map(|k| (&k.jti, k.iss.as_str()))
        .collect();
    let live = store.logged_issuances(&keys).await?;
    let redacted: HashSet<[u8; 32]> = match redactions.key {
        Some(key) if candidates.iter().any(|(_, since, _)| *since) => {
            let hashes: Vec<[u8; 32]> = candidates
                .iter()
                .filter(|(_, since, _)| *since)
                .flat_map(|(n, _, _)| &jobs[*n].issuances)
                .map(|k| RedactedToken::jti_hash(key, k.jti.as_str()))
                .collect();
            store
                .redacted_issuances_of(&hashes)
                .await?
                .into_iter()
                .map(|r| r.token_hash)
                .collect()
        }
        _ => HashSet::new(),
    };
    for (n, since, ranges_before) in candidates {
        let before = &in_batch[..ranges_before];
        refused[n] = jobs[n].issuances.iter().any(|k| {
            let logged = live.get(&(k.jti.clone(), k.iss.clone()));
            let redacted_since = since
                && match redactions.key {
                    Some(key) => {
                        logged.is_none()
                            && redacted.contains(
                                &RedactedToken::of(key, &k.iss, k.jti.as_str()).token_hash,
                            )
                    }
                    None => true,
                };
            let redacted_before =
                logged.is_some_and(|i| before.iter().any(|r| r.start <= *i && *i < r.end));
            redacted_since || redacted_before
        });
    }
    Ok(refused)
}
