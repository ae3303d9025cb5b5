//! RFC 6962 / RFC 9162 Merkle tree hashing, the Go sumdb "stored hashes" layout,
//! and inclusion / consistency proofs generated from O(log n) stored hashes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

/// Largest tree size the layout supports: every stored index then fits in an
/// `i64` (an SQL `INTEGER`).
pub const MAX_TREE_SIZE: u64 = 1 << 62;

/// A SHA-256 hash: a leaf hash, an interior node hash or a tree root.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(
        value_type = String,
        content_encoding = "base64",
        description = "A SHA-256 hash (leaf, interior node or tree root): standard base64 of \
            32 bytes, with padding."
    )
)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// Copies exactly 32 bytes into a hash; any other length is refused.
    pub fn from_slice(bytes: &[u8]) -> Result<Hash, MerkleError> {
        <[u8; 32]>::try_from(bytes)
            .map(Hash)
            .map_err(|_| MerkleError::BadHashLength(bytes.len()))
    }

    /// Standard base64 with padding, as in checkpoints and proof responses.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Parses canonical standard base64 of exactly 32 bytes.
    pub fn from_base64(s: &str) -> Result<Hash, MerkleError> {
        let bytes = STANDARD.decode(s).map_err(|_| MerkleError::BadEncoding)?;
        Hash::from_slice(&bytes)
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses hex (either case) of exactly 32 bytes.
    pub fn from_hex(s: &str) -> Result<Hash, MerkleError> {
        let bytes = hex::decode(s).map_err(|_| MerkleError::BadEncoding)?;
        Hash::from_slice(&bytes)
    }
}

impl serde::Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64())
    }
}

impl<'de> serde::Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Hash, D::Error> {
        let s = String::deserialize(deserializer)?;
        Hash::from_base64(&s).map_err(serde::de::Error::custom)
    }
}

/// Why a Merkle operation or proof check failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MerkleError {
    /// A hash was not exactly 32 bytes long.
    #[error("hash must be 32 bytes, got {0}")]
    BadHashLength(usize),
    /// A hash was not valid base64 or hex.
    #[error("hash is not valid base64 or hex")]
    BadEncoding,
    /// A leaf index was not inside the tree.
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange {
        /// The requested leaf index.
        index: u64,
        /// The tree size it was checked against.
        size: u64,
    },
    /// The older tree of a consistency proof was larger than the newer one.
    #[error("tree size {size1} is larger than tree size {size2}")]
    SizeOrder {
        /// The older tree size.
        size1: u64,
        /// The newer tree size.
        size2: u64,
    },
    /// A tree size beyond [`MAX_TREE_SIZE`].
    #[error("tree size {0} exceeds the supported maximum")]
    TreeTooLarge(u64),
    /// The caller passed back a different number of stored hashes than requested.
    #[error("expected {expected} stored hashes, got {got}")]
    WrongHashCount {
        /// How many hashes the matching `*_indexes` function asked for.
        expected: usize,
        /// How many were given.
        got: usize,
    },
    /// An inclusion proof did not lead to the expected root.
    #[error("inclusion proof does not match the root")]
    InclusionMismatch,
    /// A consistency proof did not lead to the expected roots.
    #[error("consistency proof does not match the roots")]
    ConsistencyMismatch,
    /// A proof had the wrong number of hashes for its tree sizes.
    #[error("proof has the wrong number of hashes")]
    BadProofLength,
}

/// The RFC 6962 leaf hash: SHA-256(0x00 || data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    Hash(
        Sha256::new()
            .chain_update([0x00])
            .chain_update(data)
            .finalize()
            .into(),
    )
}

/// The RFC 6962 interior node hash: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Hash(
        Sha256::new()
            .chain_update([0x01])
            .chain_update(left.0)
            .chain_update(right.0)
            .finalize()
            .into(),
    )
}

/// The root of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Hash(Sha256::digest(b"").into())
}

/// Index of the stored hash of the `n`-th complete subtree of height `level`
/// (level 0 = leaves). Valid for subtrees of trees up to [`MAX_TREE_SIZE`].
pub fn stored_hash_index(level: u32, n: u64) -> u64 {
    let last_leaf = ((n + 1) << level) - 1;
    stored_hash_count(last_leaf) + u64::from(level)
}

/// How many hashes a tree of `size` leaves has stored: appending leaf `m` stores
/// one hash per level of the subtrees it completes, so the total is
/// `size + size/2 + size/4 + ...` = `2*size - popcount(size)`.
pub fn stored_hash_count(size: u64) -> u64 {
    size + (size - u64::from(size.count_ones()))
}

/// The inverse of [`stored_hash_index`]: the `(level, n)` of the complete subtree whose
/// hash is stored at `index`. Leaf `m` stores its hashes at `stored_hash_count(m)` onwards,
/// one per level, so `index` belongs to the last leaf `m` with `stored_hash_count(m) <= index`.
pub fn split_stored_hash_index(index: u64) -> (u32, u64) {
    // stored_hash_count(m) = 2m - popcount(m) lies in [2m - 64, 2m]: m is at most 32 above
    // index / 2, and stored_hash_count(index / 2) <= index.
    let mut leaf = index / 2;
    while stored_hash_count(leaf + 1) <= index {
        leaf += 1;
    }
    let level = (index - stored_hash_count(leaf)) as u32;
    (level, leaf >> level)
}

/// The level of the subtree whose hash is stored at `index` (0 for a leaf hash).
pub fn stored_hash_level(index: u64) -> u32 {
    split_stored_hash_index(index).0
}

/// How many stored hashes of level `level` or above a tree of `size` leaves has: the sum
/// over `l >= level` of `size / 2^l`, which is the stored hash count of `size >> level`.
pub fn stored_hash_count_from_level(size: u64, level: u32) -> u64 {
    stored_hash_count(size.checked_shr(level).unwrap_or(0))
}

/// The stored indexes of every hash of level `level` or above in a tree of `size` leaves,
/// in increasing order ([`stored_hash_count_from_level`] of them).
pub fn stored_hash_indexes_from_level(size: u64, level: u32) -> Vec<u64> {
    let mut indexes: Vec<u64> = (level..64)
        .flat_map(|l| (0..size >> l).map(move |n| stored_hash_index(l, n)))
        .collect();
    indexes.sort_unstable();
    indexes
}

/// A complete subtree: `2^level` leaves starting at leaf `n << level`.
#[derive(Clone, Copy)]
struct Subtree {
    level: u32,
    n: u64,
}

impl Subtree {
    fn stored_index(self) -> u64 {
        stored_hash_index(self.level, self.n)
    }
}

/// The maximal complete subtrees covering leaves `[lo, hi)`, left to right.
/// `lo` must be a multiple of the largest power of two not above `hi - lo`,
/// which holds for every range the RFC 6962 recursion produces.
fn complete_subtrees(mut lo: u64, hi: u64) -> Vec<Subtree> {
    let mut parts = Vec::new();
    let mut remaining = hi - lo;
    while remaining > 0 {
        let level = 63 - remaining.leading_zeros();
        parts.push(Subtree {
            level,
            n: lo >> level,
        });
        lo += 1 << level;
        remaining -= 1 << level;
    }
    parts
}

/// The largest power of two strictly below `n` (`n >= 2`): RFC 6962's split point `k`.
fn split_point(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// Folds the hashes of adjacent complete subtrees (left to right, each larger
/// than the next) into the hash of the range they cover.
fn fold_subtrees(hashes: &[Hash]) -> Hash {
    let mut iter = hashes.iter().rev();
    let last = *iter
        .next()
        .expect("a non-empty range has at least one subtree");
    iter.fold(last, |right, left| node_hash(left, &right))
}

/// Each proof element is the hash of one range of leaves, stored as one or more
/// complete subtrees.
type ProofPlan = Vec<Vec<Subtree>>;

fn plan_indexes(plan: &ProofPlan) -> Vec<u64> {
    plan.iter()
        .flatten()
        .map(|subtree| subtree.stored_index())
        .collect()
}

/// Builds each proof element from the stored hashes fetched in `plan_indexes` order.
fn build_proof(plan: &ProofPlan, hashes: &[Hash]) -> Result<Vec<Hash>, MerkleError> {
    let expected = plan.iter().map(Vec::len).sum();
    check_hash_count(expected, hashes)?;
    let mut rest = hashes;
    let proof = plan
        .iter()
        .map(|element| {
            let (mine, next) = rest.split_at(element.len());
            rest = next;
            fold_subtrees(mine)
        })
        .collect();
    Ok(proof)
}

fn check_hash_count(expected: usize, hashes: &[Hash]) -> Result<(), MerkleError> {
    if hashes.len() == expected {
        Ok(())
    } else {
        Err(MerkleError::WrongHashCount {
            expected,
            got: hashes.len(),
        })
    }
}

fn check_tree_size(size: u64) -> Result<(), MerkleError> {
    if size <= MAX_TREE_SIZE {
        Ok(())
    } else {
        Err(MerkleError::TreeTooLarge(size))
    }
}

/// Stored indexes whose hashes [`tree_hash`] needs for a tree of `size` leaves
/// (at most 64; `size` must not exceed [`MAX_TREE_SIZE`]).
pub fn tree_hash_indexes(size: u64) -> Vec<u64> {
    complete_subtrees(0, size)
        .into_iter()
        .map(Subtree::stored_index)
        .collect()
}

/// The root of a tree of `size` leaves from the stored hashes at
/// [`tree_hash_indexes`]`(size)`, in that order. Size 0 gives [`empty_root`].
pub fn tree_hash(size: u64, hashes: &[Hash]) -> Result<Hash, MerkleError> {
    check_tree_size(size)?;
    check_hash_count(size.count_ones() as usize, hashes)?;
    if size == 0 {
        return Ok(empty_root());
    }
    Ok(fold_subtrees(hashes))
}

/// RFC 6962 PATH(index, D[size]), element by element from the leaf upwards.
fn inclusion_plan(index: u64, size: u64) -> Result<ProofPlan, MerkleError> {
    check_tree_size(size)?;
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let mut siblings = Vec::new();
    let (mut lo, mut hi) = (0, size);
    while hi - lo > 1 {
        let mid = lo + split_point(hi - lo);
        if index < mid {
            siblings.push(complete_subtrees(mid, hi));
            hi = mid;
        } else {
            siblings.push(complete_subtrees(lo, mid));
            lo = mid;
        }
    }
    siblings.reverse();
    Ok(siblings)
}

/// Stored indexes whose hashes [`inclusion_proof`] needs (O(log size) of them).
pub fn inclusion_proof_indexes(index: u64, size: u64) -> Result<Vec<u64>, MerkleError> {
    Ok(plan_indexes(&inclusion_plan(index, size)?))
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves, from the
/// stored hashes at [`inclusion_proof_indexes`]`(index, size)`, in that order.
pub fn inclusion_proof(index: u64, size: u64, hashes: &[Hash]) -> Result<Vec<Hash>, MerkleError> {
    build_proof(&inclusion_plan(index, size)?, hashes)
}

/// RFC 6962 PROOF(size1, D[size2]), element by element from the bottom up.
/// Empty when `size1` is 0 or equals `size2`.
fn consistency_plan(size1: u64, size2: u64) -> Result<ProofPlan, MerkleError> {
    check_tree_size(size2)?;
    if size1 > size2 {
        return Err(MerkleError::SizeOrder { size1, size2 });
    }
    if size1 == 0 || size1 == size2 {
        return Ok(Vec::new());
    }
    let mut siblings = Vec::new();
    let (mut lo, mut hi) = (0, size2);
    let mut old_root_is_a_node = true;
    while size1 != hi {
        let mid = lo + split_point(hi - lo);
        if size1 <= mid {
            siblings.push(complete_subtrees(mid, hi));
            hi = mid;
        } else {
            siblings.push(complete_subtrees(lo, mid));
            lo = mid;
            old_root_is_a_node = false;
        }
    }
    let mut plan = Vec::with_capacity(siblings.len() + 1);
    if !old_root_is_a_node {
        plan.push(complete_subtrees(lo, hi));
    }
    plan.extend(siblings.into_iter().rev());
    Ok(plan)
}

/// Stored indexes whose hashes [`consistency_proof`] needs (O(log size2) of them).
pub fn consistency_proof_indexes(size1: u64, size2: u64) -> Result<Vec<u64>, MerkleError> {
    Ok(plan_indexes(&consistency_plan(size1, size2)?))
}

/// The consistency proof from the tree of `size1` leaves to the tree of `size2`
/// leaves, from the stored hashes at [`consistency_proof_indexes`]`(size1, size2)`.
pub fn consistency_proof(
    size1: u64,
    size2: u64,
    hashes: &[Hash],
) -> Result<Vec<Hash>, MerkleError> {
    build_proof(&consistency_plan(size1, size2)?, hashes)
}

/// Shifts `node` and `last` right together until `node` is odd or zero.
fn shift_while_even(node: &mut u64, last: &mut u64) {
    let shift = if *node == 0 { 0 } else { node.trailing_zeros() };
    *node >>= shift;
    *last >>= shift;
}

/// Shifts `node` and `last` right together until `node` is even.
fn shift_while_odd(node: &mut u64, last: &mut u64) {
    let shift = node.trailing_ones();
    *node >>= shift;
    *last >>= shift;
}

/// Verifies an inclusion proof (RFC 9162 section 2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    if root_from_inclusion_proof(index, size, leaf, proof)? == *root {
        Ok(())
    } else {
        Err(MerkleError::InclusionMismatch)
    }
}

/// RFC 9162 section 2.1.3.2 steps 2 and 3: the root the proof leads to.
/// `node` is the index of the current node on its level, `last` that of the
/// level's last node.
fn root_from_inclusion_proof(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
) -> Result<Hash, MerkleError> {
    let (mut node, mut last) = (index, size - 1);
    let mut hash = *leaf;
    for sibling in proof {
        if last == 0 {
            return Err(MerkleError::BadProofLength);
        }
        if node & 1 == 1 || node == last {
            hash = node_hash(sibling, &hash);
            shift_while_even(&mut node, &mut last);
        } else {
            hash = node_hash(&hash, sibling);
        }
        node >>= 1;
        last >>= 1;
    }
    if last != 0 {
        return Err(MerkleError::BadProofLength);
    }
    Ok(hash)
}

/// Verifies a consistency proof (RFC 9162 section 2.1.4.2), with these policies:
/// from size 0 the proof must be empty and `root1` must be [`empty_root`] (any
/// `root2` is consistent with it, as the C2SP witness protocol requires); equal
/// sizes need an empty proof and equal roots.
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    root1: &Hash,
    root2: &Hash,
    proof: &[Hash],
) -> Result<(), MerkleError> {
    if size1 > size2 {
        return Err(MerkleError::SizeOrder { size1, size2 });
    }
    if size1 == 0 || size1 == size2 {
        return verify_trivial_consistency(size1, size2, root1, root2, proof);
    }
    if roots_from_consistency_proof(size1, size2, root1, proof)? == (*root1, *root2) {
        Ok(())
    } else {
        Err(MerkleError::ConsistencyMismatch)
    }
}

/// The cases RFC 9162 leaves out: an empty old tree, or two trees of one size.
fn verify_trivial_consistency(
    size1: u64,
    size2: u64,
    root1: &Hash,
    root2: &Hash,
    proof: &[Hash],
) -> Result<(), MerkleError> {
    if !proof.is_empty() {
        return Err(MerkleError::BadProofLength);
    }
    let old_root_ok = size1 != 0 || *root1 == empty_root();
    let same_tree_ok = size1 != size2 || root1 == root2;
    if old_root_ok && same_tree_ok {
        Ok(())
    } else {
        Err(MerkleError::ConsistencyMismatch)
    }
}

/// RFC 9162 section 2.1.4.2 steps 1 to 6 for `0 < size1 < size2`: the old and new
/// roots the proof leads to.
fn roots_from_consistency_proof(
    size1: u64,
    size2: u64,
    root1: &Hash,
    proof: &[Hash],
) -> Result<(Hash, Hash), MerkleError> {
    let Some((first, rest)) = proof.split_first() else {
        return Err(MerkleError::BadProofLength);
    };
    // When size1 is a power of two, the old root is the first node of the path.
    let (start, path) = if size1.is_power_of_two() {
        (root1, proof)
    } else {
        (first, rest)
    };
    let (mut node, mut last) = (size1 - 1, size2 - 1);
    shift_while_odd(&mut node, &mut last);
    let (mut old, mut new) = (*start, *start);
    for sibling in path {
        if last == 0 {
            return Err(MerkleError::BadProofLength);
        }
        if node & 1 == 1 || node == last {
            old = node_hash(sibling, &old);
            new = node_hash(sibling, &new);
            shift_while_even(&mut node, &mut last);
        } else {
            new = node_hash(&new, sibling);
        }
        node >>= 1;
        last >>= 1;
    }
    if last != 0 {
        return Err(MerkleError::BadProofLength);
    }
    Ok((old, new))
}

/// The right edge of the tree (hashes of the maximal complete subtrees, left to
/// right), kept in memory by the single writer so appends need no reads.
#[derive(Clone, Debug, Default)]
pub struct Frontier {
    size: u64,
    /// One hash per set bit of `size`, largest subtree first.
    subtrees: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// Restores the frontier of a tree of `size` leaves from the stored hashes at
    /// [`tree_hash_indexes`]`(size)`, in that order.
    pub fn from_stored(size: u64, hashes: &[Hash]) -> Result<Frontier, MerkleError> {
        check_tree_size(size)?;
        check_hash_count(size.count_ones() as usize, hashes)?;
        Ok(Frontier {
            size,
            subtrees: hashes.to_vec(),
        })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tree root; equals [`tree_hash`] for this size.
    pub fn root(&self) -> Hash {
        if self.subtrees.is_empty() {
            empty_root()
        } else {
            fold_subtrees(&self.subtrees)
        }
    }

    /// Appends one leaf hash; returns every (stored index, hash) pair to persist,
    /// in increasing index order: the leaf, then each subtree it completes.
    pub fn append(&mut self, leaf: Hash) -> Vec<(u64, Hash)> {
        let first_index = stored_hash_count(self.size);
        let completed_levels = self.size.trailing_ones();
        let mut stored = Vec::with_capacity(completed_levels as usize + 1);
        stored.push((first_index, leaf));
        let mut hash = leaf;
        for level in 1..=completed_levels {
            let left = self
                .subtrees
                .pop()
                .expect("a set bit of size has a subtree");
            hash = node_hash(&left, &hash);
            stored.push((first_index + u64::from(level), hash));
        }
        self.subtrees.push(hash);
        self.size += 1;
        stored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_hash_index_small_values() {
        let level0: Vec<u64> = (0..5).map(|n| stored_hash_index(0, n)).collect();
        assert_eq!(level0, [0, 1, 3, 4, 7]);
        assert_eq!(stored_hash_index(1, 0), 2);
        assert_eq!(stored_hash_index(1, 1), 5);
        assert_eq!(stored_hash_index(2, 0), 6);
        assert_eq!(stored_hash_index(3, 0), 14);
    }

    #[test]
    fn stored_hash_count_matches_appends() {
        let mut frontier = Frontier::new();
        for size in 0..100u64 {
            assert_eq!(
                stored_hash_count(size),
                stored_hash_count_by_appending(size)
            );
            let stored = frontier.append(leaf_hash(&size.to_be_bytes()));
            assert_eq!(stored[0].0, stored_hash_count(size));
            assert_eq!(stored.len() as u64, 1 + u64::from(size.trailing_ones()));
        }
    }

    fn stored_hash_count_by_appending(size: u64) -> u64 {
        (0..size).map(|m| 1 + u64::from(m.trailing_ones())).sum()
    }

    #[test]
    fn split_stored_hash_index_inverts_stored_hash_index() {
        for level in 0..12 {
            for n in 0..300 {
                let index = stored_hash_index(level, n);
                assert_eq!(split_stored_hash_index(index), (level, n), "{index}");
                assert_eq!(stored_hash_level(index), level);
            }
        }
        for index in 0..5000 {
            let (level, n) = split_stored_hash_index(index);
            assert_eq!(stored_hash_index(level, n), index);
        }
        assert_eq!(split_stored_hash_index(0), (0, 0));
        assert_eq!(split_stored_hash_index(14), (3, 0));
        let last = stored_hash_count(MAX_TREE_SIZE) - 1;
        assert_eq!(split_stored_hash_index(last), (62, 0));
    }

    proptest::proptest! {
        #[test]
        fn split_stored_hash_index_round_trips(level in 0u32..62, n in 0u64..(1 << 40)) {
            let n = n >> level.saturating_sub(21);
            let index = stored_hash_index(level, n);
            proptest::prop_assert_eq!(split_stored_hash_index(index), (level, n));
        }

        #[test]
        fn every_index_splits_into_a_subtree(index in 0u64..(1 << 62)) {
            let (level, n) = split_stored_hash_index(index);
            proptest::prop_assert_eq!(stored_hash_index(level, n), index);
        }
    }

    /// The levels of every stored hash of a tree of `size` leaves, by appending.
    fn stored_levels_by_appending(size: u64) -> Vec<(u64, u32)> {
        let mut frontier = Frontier::new();
        (0..size)
            .flat_map(|m| {
                let stored = frontier.append(leaf_hash(&m.to_be_bytes()));
                stored.into_iter().zip(0..).map(|((i, _), l)| (i, l))
            })
            .collect()
    }

    #[test]
    fn hashes_from_a_level_match_brute_force() {
        for size in [0, 1, 2, 63, 64, 65, 127, 128, 1000, 4096, 5000] {
            let stored = stored_levels_by_appending(size);
            for level in [0, 1, 3, 6, 7, 12, 63] {
                let expected: Vec<u64> = stored
                    .iter()
                    .filter(|(_, l)| *l >= level)
                    .map(|(i, _)| *i)
                    .collect();
                let brute: u64 = (level..64).map(|l| size >> l).sum();
                assert_eq!(expected.len() as u64, brute, "size {size} level {level}");
                assert_eq!(stored_hash_count_from_level(size, level), brute);
                assert_eq!(stored_hash_indexes_from_level(size, level), expected);
            }
            assert!(stored.iter().all(|(i, l)| stored_hash_level(*i) == *l));
        }
        assert_eq!(stored_hash_count_from_level(u64::MAX, 64), 0);
        assert_eq!(stored_hash_count_from_level(10_000_000, 6), 312_492);
    }

    #[test]
    fn every_stored_index_fits_in_i64_at_max_size() {
        let last = stored_hash_index(0, MAX_TREE_SIZE - 1) + 62;
        assert!(i64::try_from(last).is_ok());
        assert_eq!(stored_hash_count(MAX_TREE_SIZE), last + 1);
    }

    #[test]
    fn split_point_is_largest_power_of_two_below() {
        let points: Vec<u64> = (2..=9).map(split_point).collect();
        assert_eq!(points, [1, 2, 2, 4, 4, 4, 4, 8]);
    }

    #[test]
    fn hash_length_and_encoding_are_checked() {
        assert_eq!(
            Hash::from_slice(&[0; 31]),
            Err(MerkleError::BadHashLength(31))
        );
        assert_eq!(
            Hash::from_base64("AAAA"),
            Err(MerkleError::BadHashLength(3))
        );
        assert_eq!(
            Hash::from_base64("not base64!"),
            Err(MerkleError::BadEncoding)
        );
        assert_eq!(Hash::from_hex("zz"), Err(MerkleError::BadEncoding));
        let h = leaf_hash(b"x");
        assert_eq!(Hash::from_hex(&h.to_hex()), Ok(h));
        assert_eq!(Hash::from_base64(&h.to_base64()), Ok(h));
    }

    #[test]
    fn hash_serde_is_base64_string() {
        let h = empty_root();
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, "\"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\"");
        assert_eq!(serde_json::from_str::<Hash>(&json).unwrap(), h);
        assert!(serde_json::from_str::<Hash>("\"AAAA\"").is_err());
    }

    #[test]
    fn oversized_trees_are_refused() {
        let too_big = MAX_TREE_SIZE + 1;
        assert_eq!(
            inclusion_proof_indexes(0, too_big),
            Err(MerkleError::TreeTooLarge(too_big))
        );
        assert_eq!(
            consistency_proof_indexes(1, u64::MAX),
            Err(MerkleError::TreeTooLarge(u64::MAX))
        );
        assert!(Frontier::from_stored(u64::MAX, &[]).is_err());
    }
}
