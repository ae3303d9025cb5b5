//! Reports of issuances that were logged and redacted since: their key row went with the
//! leaf, so the sequencer would log them anew. Ingest refuses them (`redacted`), naming the
//! index the issuance had, after one lookup of the redacted issuances per request.

use std::collections::HashMap;

use tokenledger_core::redaction::RedactedToken;

use super::{Ledger, ServiceError};
use crate::sequencer::{EntryKind, PreparedEntry};
use crate::store::IssuanceKey;

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
    let redacted = ledger.reader.redacted_issuances_of(&jti_hashes).await?;
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
        if ledger.reader.issuance(&k.iss, &k.jti).await?.is_none() {
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
