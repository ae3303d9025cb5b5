//! Stored hashes as every engine reads them back.

use std::collections::HashMap;

use tokenledger_core::merkle::Hash;

use crate::store::StoreError;

/// The hashes of `rows` (stored index, hash) at `indexes`, in that order; a missing or
/// malformed one is an error.
pub fn in_order(indexes: &[u64], rows: Vec<(i64, Vec<u8>)>) -> Result<Vec<Hash>, StoreError> {
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
