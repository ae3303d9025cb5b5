//! The rows every engine reads leaves as (the view `entries_with_leaf_hash`), and their check
//! against the stored leaf hash before a leaf is served or used.

use super::leaf_codec::LeafDecoders;
use super::{StoreError, StoredEntry};

/// A row of the view `entries_with_leaf_hash` as read: index, stored bytes, dictionary,
/// stored leaf hash. Every read of a leaf selects these four columns from the view, so that
/// [`decode_entries`] can check each leaf before it is served or used.
pub type EntryData = (i64, Vec<u8>, Option<i64>, Option<Vec<u8>>);

/// Decodes rows of `entries` into (index, canonical bytes), each checked against its stored
/// leaf hash: a leaf that fails is an integrity error, and no row is returned.
pub fn decode_entries(
    leaves: &LeafDecoders,
    rows: Vec<EntryData>,
) -> Result<Vec<StoredEntry>, StoreError> {
    rows.into_iter()
        .map(|(index, bytes, dictionary, stored_hash)| {
            let index = index as u64;
            let leaf = leaves.verified(index, dictionary, bytes, stored_hash.as_deref())?;
            Ok((index, leaf))
        })
        .collect()
}

/// The dictionaries `rows` were compressed with that `leaves` has no decoder for (sorted,
/// once each): a shared database's writer may have trained them after this server loaded
/// its decoders.
pub fn unknown_dictionaries(leaves: &LeafDecoders, rows: &[EntryData]) -> Vec<i64> {
    let mut unknown: Vec<i64> = rows
        .iter()
        .filter_map(|row| row.2)
        .filter(|id| !leaves.knows(*id))
        .collect();
    unknown.sort_unstable();
    unknown.dedup();
    unknown
}
