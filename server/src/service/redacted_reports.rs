//! Reports of issuances that were logged and redacted since: their key row went with the
//! leaf, so the sequencer would log them anew. Ingest refuses them (`redacted`), naming the
//! index the issuance had, after one lookup of the redacted issuances per request. The
//! lookup records the log's size it was made at; the sequencer refuses the reports if a
//! redaction was logged since, and they are looked up again ([`append_unless_redacted`]).

use std::collections::HashMap;

use tokenledger_core::redaction::RedactedToken;

use super::{Ledger, ServiceError};
use crate::preconditions::Refusal;
use crate::sequencer::{AppendError, EntryKind, PreparedEntry, Sequenced};
use crate::store::IssuanceKey;

/// How many times reports are looked up and sent when redactions keep being logged
/// meanwhile; then the request is refused (409), to be sent again.
const TRIES: usize = 5;

/// What [`append_unless_redacted`] did.
pub struct Checked {
    /// For each entry, the index of the redacted issuance it reports again, or `None`.
    pub redacted: Vec<Option<u64>>,
    /// Where the other entries went, in order (none, for a whole request with one refused).
    pub appended: Vec<Sequenced>,
}

/// Appends the entries that do not report a redacted issuance again, in one job; with
/// `whole`, none if one does (a request refused whole). Looked up again, and sent again, if
/// the sequencer refuses them because a redaction was logged after the lookup.
pub async fn append_unless_redacted(
    ledger: &Ledger,
    entries: Vec<PreparedEntry>,
    whole: bool,
) -> Result<Checked, ServiceError> {
    let mut tries = 0;
    loop {
        tries += 1;
        let checked_at = ledger.head().size;
        let redacted = redacted_reports(ledger, &entries).await?;
        let keep: Vec<PreparedEntry> = if whole && redacted.iter().any(Option::is_some) {
            Vec::new()
        } else {
            entries
                .iter()
                .zip(&redacted)
                .filter(|(_, r)| r.is_none())
                .map(|(e, _)| e.clone())
                .collect()
        };
        if keep.is_empty() {
            return Ok(Checked {
                redacted,
                appended: Vec::new(),
            });
        }
        match ledger.append_checked(keep, checked_at).await {
            Err(AppendError::Refused(Refusal::RedactedSince)) if tries < TRIES => continue,
            Err(e) => return Err(e.into()),
            Ok(appended) => return Ok(Checked { redacted, appended }),
        }
    }
}

/// For each of `entries`, the index of the redacted issuance it reports again, or `None`
/// (not an issuance, never redacted, or logged again before this check existed and live).
pub async fn redacted_reports(
    ledger: &Ledger,
    entries: &[PreparedEntry],
) -> Result<Vec<Option<u64>>, ServiceError> {
    let mut found = vec![None; entries.len()];
    let key = ledger.pseudonyms.secret().redaction_key();
    let reported: Vec<(usize, &IssuanceKey)> = entries
        .iter()
        .enumerate()
        .filter_map(|(n, e)| match &e.kind {
            EntryKind::Issuance(k) => Some((n, k)),
            _ => None,
        })
        .collect();
    if reported.is_empty() {
        return Ok(found);
    }
    let jti_hashes: Vec<[u8; 32]> = reported
        .iter()
        .map(|(_, k)| RedactedToken::jti_hash(&key, k.jti.as_str()))
        .collect();
    // On the primary: a lagging read replica may still hold a redacted issuance's key.
    let reader = ledger.reader.primary();
    let redacted = reader.redacted_issuances_of(&jti_hashes).await?;
    if redacted.is_empty() {
        return Ok(found);
    }
    let mut first: HashMap<[u8; 32], u64> = HashMap::new();
    for r in redacted {
        first.entry(r.token_hash).or_insert(r.index);
    }
    for (n, k) in reported {
        let token = RedactedToken::of(&key, &k.iss, k.jti.as_str());
        let Some(index) = first.get(&token.token_hash) else {
            continue;
        };
        if reader.issuance(&k.iss, &k.jti).await?.is_none() {
            found[n] = Some(*index);
        }
    }
    Ok(found)
}

/// The message of a refused report whose issuance was entry `index`.
pub fn refusal(index: u64) -> String {
    format!(
        "this issuance was logged at entry {index} and redacted since (retention or erasure): \
         it is not logged again"
    )
}
