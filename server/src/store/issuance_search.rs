//! Issuance listings, whatever the engine: candidates come from the lookup tables a page at a
//! time, newest first; scope and time filters are checked on the decoded entries.

use std::future::Future;

use super::{IssuanceFilter, StoreError, StoredEntry};

/// Candidates scanned per query when a filter is checked on the entries themselves.
const ISSUANCE_SCAN_PAGE: u32 = 500;

/// Where an engine finds the candidates of a listing (by identity, or by VO and client).
pub trait IssuanceCandidates: Send {
    /// Up to `limit` candidates below index `before` (all if `None`), newest first.
    fn page(
        &mut self,
        before: Option<u64>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<StoredEntry>, StoreError>> + Send;
}

/// Issuances matching `filter` among `candidates`, newest first, at most `filter.limit`.
pub async fn matching(
    filter: &IssuanceFilter<'_>,
    candidates: &mut impl IssuanceCandidates,
) -> Result<Vec<StoredEntry>, StoreError> {
    let checks_entries = filter.checks_entries();
    let page = if checks_entries {
        ISSUANCE_SCAN_PAGE.max(filter.limit)
    } else {
        filter.limit
    };
    let mut found = Vec::new();
    let mut before = filter.before;
    loop {
        let candidates = candidates.page(before, page).await?;
        let exhausted = candidates.len() < page as usize;
        before = candidates.last().map(|entry| entry.0);
        for (index, leaf) in candidates {
            if !checks_entries || filter.entry_matches(index, &leaf)? {
                found.push((index, leaf));
                if found.len() == filter.limit as usize {
                    return Ok(found);
                }
            }
        }
        if exhausted {
            return Ok(found);
        }
    }
}
