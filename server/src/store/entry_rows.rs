//! The rows every engine reads the log as: leaves (the view `entries_with_leaf_hash`), checked
//! against their stored leaf hash before a leaf is served or used, and stored hashes.

use std::collections::HashMap;

use tokenledger_core::merkle::Hash;

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

/// The stored hashes at `indexes`, in that order, from the rows `(index, hash)` read: a
/// missing or malformed one makes the stored log corrupt.
pub fn hashes_in_order(
    indexes: &[u64],
    rows: Vec<(i64, Vec<u8>)>,
) -> Result<Vec<Hash>, StoreError> {
    let found: HashMap<u64, Vec<u8>> = rows.into_iter().map(|(i, h)| (i as u64, h)).collect();
    indexes
        .iter()
        .map(|index| {
            let bytes = found
                .get(index)
                .ok_or_else(|| StoreError::Corrupt(format!("stored hash {index} is missing")))?;
            Hash::from_slice(bytes)
                .map_err(|e| StoreError::Corrupt(format!("stored hash {index}: {e}")))
        })
        .collect()
}
