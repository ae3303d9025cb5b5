//! Property tests of the Merkle module: proofs generated from stored hashes verify,
//! any tampering is caught, and the frontier agrees with the stored-hash layout.

use std::sync::OnceLock;

use proptest::prelude::*;
use tokenledger_core::merkle::{
    Frontier, Hash, MerkleError, consistency_proof, consistency_proof_indexes, empty_root,
    inclusion_proof, inclusion_proof_indexes, leaf_hash, stored_hash_count, stored_hash_index,
    tree_hash, tree_hash_indexes, verify_consistency, verify_inclusion,
};

const MAX_SIZE: u64 = 300;

/// A log of `MAX_SIZE` distinct leaves: its stored hashes and the root at every size.
struct Log {
    stored: Vec<Hash>,
    roots: Vec<Hash>,
}

fn leaf(i: u64) -> Hash {
    leaf_hash(&i.to_be_bytes())
}

fn log() -> &'static Log {
    static LOG: OnceLock<Log> = OnceLock::new();
    LOG.get_or_init(|| {
        let mut frontier = Frontier::new();
        let mut log = Log {
            stored: Vec::new(),
            roots: vec![frontier.root()],
        };
        for i in 0..MAX_SIZE {
            log.stored
                .extend(frontier.append(leaf(i)).into_iter().map(|(_, h)| h));
            log.roots.push(frontier.root());
        }
        log
    })
}

impl Log {
    fn read(&self, indexes: &[u64]) -> Vec<Hash> {
        indexes.iter().map(|&i| self.stored[i as usize]).collect()
    }

    fn root(&self, size: u64) -> Hash {
        self.roots[size as usize]
    }

    fn inclusion(&self, index: u64, size: u64) -> Vec<Hash> {
        let indexes = inclusion_proof_indexes(index, size).unwrap();
        inclusion_proof(index, size, &self.read(&indexes)).unwrap()
    }

    fn consistency(&self, size1: u64, size2: u64) -> Vec<Hash> {
        let indexes = consistency_proof_indexes(size1, size2).unwrap();
        consistency_proof(size1, size2, &self.read(&indexes)).unwrap()
    }
}

fn flip(hash: &Hash, bit: usize) -> Hash {
    let mut flipped = *hash;
    flipped.0[bit / 8 % 32] ^= 1 << (bit % 8);
    flipped
}

/// Left (true) / right (false) position of each proof hash, from the RFC 9162
/// section 2.1.3.2 decomposition: `inner` hashes follow the index bits, then
/// every border hash is on the left.
fn inclusion_directions(index: u64, size: u64) -> Vec<bool> {
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    let border = (index >> inner).count_ones() as usize;
    let mut directions: Vec<bool> = (0..inner).map(|bit| index >> bit & 1 == 1).collect();
    directions.extend(std::iter::repeat_n(true, border));
    directions
}

/// An index and a size with the index inside the tree.
fn index_and_size() -> impl Strategy<Value = (u64, u64)> {
    (1..=MAX_SIZE).prop_flat_map(|size| (0..size, Just(size)))
}

/// Two sizes in order, the first possibly 0.
fn two_sizes() -> impl Strategy<Value = (u64, u64)> {
    (0..=MAX_SIZE).prop_flat_map(|size2| (0..=size2, Just(size2)))
}

fn leaf_data() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..8)
}

/// Against the same root, a proof also verifies for another (index, size) exactly
/// when the hashing order is the same (the root binds the size); against the
/// other tree's real root and leaf it never does, unless the proofs are equal.
fn check_inclusion_binding(
    log: &Log,
    (index, size): (u64, u64),
    (other_index, other_size): (u64, u64),
) -> Result<(), TestCaseError> {
    let proof = log.inclusion(index, size);
    let root = log.root(size);
    let same_root = verify_inclusion(other_index, other_size, &leaf(index), &proof, &root);
    prop_assert_eq!(
        same_root.is_ok(),
        inclusion_directions(index, size) == inclusion_directions(other_index, other_size)
    );
    let other_root = log.root(other_size);
    let real_root = verify_inclusion(
        other_index,
        other_size,
        &leaf(other_index),
        &proof,
        &other_root,
    );
    if real_root.is_ok() {
        prop_assert_eq!(&log.inclusion(other_index, other_size), &proof);
    }
    Ok(())
}

/// A proof never shows two other real trees consistent, unless it is their proof too.
fn check_consistency_binding(
    log: &Log,
    (size1, size2): (u64, u64),
    (other1, other2): (u64, u64),
) -> Result<(), TestCaseError> {
    let proof = log.consistency(size1, size2);
    let (root1, root2) = (log.root(other1), log.root(other2));
    if verify_consistency(other1, other2, &root1, &root2, &proof).is_ok() {
        prop_assert_eq!(&log.consistency(other1, other2), &proof);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn inclusion_proofs_verify_and_catch_bit_flips(
        (index, size) in index_and_size(),
        bit in 0..256usize,
    ) {
        let log = log();
        let (leaf, root) = (leaf(index), log.root(size));
        let proof = log.inclusion(index, size);
        prop_assert!(verify_inclusion(index, size, &leaf, &proof, &root).is_ok());
        prop_assert!(verify_inclusion(index, size, &flip(&leaf, bit), &proof, &root).is_err());
        prop_assert!(verify_inclusion(index, size, &leaf, &proof, &flip(&root, bit)).is_err());
        for i in 0..proof.len() {
            let mut bad = proof.clone();
            bad[i] = flip(&bad[i], bit + i);
            prop_assert!(verify_inclusion(index, size, &leaf, &bad, &root).is_err());
        }
        let mut longer = proof.clone();
        longer.push(root);
        prop_assert_eq!(
            verify_inclusion(index, size, &leaf, &longer, &root),
            Err(MerkleError::BadProofLength)
        );
        if let Some((_, shorter)) = proof.split_last() {
            prop_assert!(verify_inclusion(index, size, &leaf, shorter, &root).is_err());
        }
    }

    #[test]
    fn inclusion_proofs_bind_index_and_size(
        (index, size) in index_and_size(),
        (other_index, other_size) in index_and_size(),
    ) {
        let log = log();
        let proof = log.inclusion(index, size);
        check_inclusion_binding(log, (index, size), (other_index, other_size))?;
        let wrong_index = (index + 1 + other_index % (size.max(2) - 1)) % size;
        if wrong_index != index {
            let root = log.root(size);
            prop_assert!(verify_inclusion(wrong_index, size, &leaf(index), &proof, &root).is_err());
        }
    }

    #[test]
    fn consistency_proofs_verify_and_catch_bit_flips(
        (size1, size2) in two_sizes(),
        bit in 0..256usize,
    ) {
        let log = log();
        let (root1, root2) = (log.root(size1), log.root(size2));
        let proof = log.consistency(size1, size2);
        prop_assert!(verify_consistency(size1, size2, &root1, &root2, &proof).is_ok());
        prop_assert!(verify_consistency(size1, size2, &flip(&root1, bit), &root2, &proof).is_err());
        let root2_flip = verify_consistency(size1, size2, &root1, &flip(&root2, bit), &proof);
        // Any non-empty tree is consistent with the empty tree.
        prop_assert_eq!(root2_flip.is_ok(), size1 == 0 && size2 > 0);
        for i in 0..proof.len() {
            let mut bad = proof.clone();
            bad[i] = flip(&bad[i], bit + i);
            prop_assert!(verify_consistency(size1, size2, &root1, &root2, &bad).is_err());
        }
        let mut longer = proof.clone();
        longer.push(root2);
        prop_assert_eq!(
            verify_consistency(size1, size2, &root1, &root2, &longer),
            Err(MerkleError::BadProofLength)
        );
        if let Some((_, shorter)) = proof.split_last() {
            prop_assert!(verify_consistency(size1, size2, &root1, &root2, shorter).is_err());
        }
    }

    #[test]
    fn consistency_proofs_bind_sizes(
        (size1, size2) in two_sizes(),
        (other1, other2) in two_sizes(),
    ) {
        check_consistency_binding(log(), (size1, size2), (other1, other2))?;
    }

    #[test]
    fn frontier_root_equals_tree_hash_at_every_size(
        leaves in prop::collection::vec(leaf_data(), 0..=MAX_SIZE as usize),
    ) {
        let mut frontier = Frontier::new();
        let mut stored = Vec::new();
        let mut roots = vec![frontier.root()];
        for data in &leaves {
            let before = stored_hash_count(frontier.size());
            let pairs = frontier.append(leaf_hash(data));
            for (offset, (index, hash)) in pairs.into_iter().enumerate() {
                prop_assert_eq!(index, before + offset as u64);
                stored.push(hash);
            }
            prop_assert_eq!(stored.len() as u64, stored_hash_count(frontier.size()));
            roots.push(frontier.root());
        }
        for (size, root) in roots.iter().enumerate() {
            let indexes = tree_hash_indexes(size as u64);
            let hashes: Vec<Hash> = indexes.iter().map(|&i| stored[i as usize]).collect();
            prop_assert_eq!(tree_hash(size as u64, &hashes), Ok(*root));
        }
    }

    #[test]
    fn frontier_from_stored_resumes_appending(
        (resume_at, size) in two_sizes(),
    ) {
        let log = log();
        let hashes = log.read(&tree_hash_indexes(resume_at));
        let mut frontier = Frontier::from_stored(resume_at, &hashes).unwrap();
        prop_assert_eq!(frontier.size(), resume_at);
        prop_assert_eq!(frontier.root(), log.root(resume_at));
        let first = stored_hash_count(resume_at) as usize;
        let mut stored = Vec::new();
        for i in resume_at..size {
            stored.extend(frontier.append(leaf(i)));
        }
        let expected: Vec<(u64, Hash)> = (first..stored_hash_count(size) as usize)
            .map(|i| (i as u64, log.stored[i]))
            .collect();
        prop_assert_eq!(stored, expected);
        prop_assert_eq!(frontier.root(), log.root(size));
    }
}

#[test]
fn every_proof_up_to_size_64_verifies() {
    let log = log();
    for size in 1..=64 {
        for index in 0..size {
            let proof = log.inclusion(index, size);
            verify_inclusion(index, size, &leaf(index), &proof, &log.root(size)).unwrap();
        }
    }
    for size2 in 0..=64 {
        for size1 in 0..=size2 {
            let proof = log.consistency(size1, size2);
            verify_consistency(size1, size2, &log.root(size1), &log.root(size2), &proof).unwrap();
        }
    }
}

#[test]
fn proofs_bind_their_sizes_up_to_size_16() {
    let log = log();
    let inclusions: Vec<(u64, u64)> = (1..=16).flat_map(|n| (0..n).map(move |i| (i, n))).collect();
    let consistencies: Vec<(u64, u64)> = (0..=16)
        .flat_map(|n| (0..=n).map(move |m| (m, n)))
        .collect();
    for &a in &inclusions {
        for &b in &inclusions {
            check_inclusion_binding(log, a, b).unwrap();
        }
    }
    for &a in &consistencies {
        for &b in &consistencies {
            check_consistency_binding(log, a, b).unwrap();
        }
    }
}

#[test]
fn stored_hashes_follow_the_documented_layout() {
    let log = log();
    let mut leaf_index = 0;
    for (index, hash) in log.stored.iter().enumerate() {
        if *hash == leaf(leaf_index) {
            assert_eq!(stored_hash_index(0, leaf_index), index as u64);
            leaf_index += 1;
        }
    }
    assert_eq!(leaf_index, MAX_SIZE);
    for level in 1..8 {
        for n in 0..(MAX_SIZE >> level) {
            let children =
                [2 * n, 2 * n + 1].map(|c| log.stored[stored_hash_index(level - 1, c) as usize]);
            let parent = log.stored[stored_hash_index(level, n) as usize];
            assert_eq!(
                parent,
                tokenledger_core::merkle::node_hash(&children[0], &children[1])
            );
        }
    }
}

#[test]
fn bad_arguments_are_refused() {
    let log = log();
    assert_eq!(
        inclusion_proof_indexes(5, 5),
        Err(MerkleError::IndexOutOfRange { index: 5, size: 5 })
    );
    assert_eq!(
        consistency_proof_indexes(6, 5),
        Err(MerkleError::SizeOrder { size1: 6, size2: 5 })
    );
    assert_eq!(consistency_proof_indexes(0, 5), Ok(Vec::new()));
    assert_eq!(consistency_proof_indexes(5, 5), Ok(Vec::new()));
    assert_eq!(tree_hash(0, &[]), Ok(empty_root()));
    assert_eq!(
        tree_hash(3, &[empty_root()]),
        Err(MerkleError::WrongHashCount {
            expected: 2,
            got: 1
        })
    );
    let indexes = inclusion_proof_indexes(3, 7).unwrap();
    let mut hashes = log.read(&indexes);
    hashes.pop();
    assert!(matches!(
        inclusion_proof(3, 7, &hashes),
        Err(MerkleError::WrongHashCount { .. })
    ));
    assert!(matches!(
        consistency_proof(3, 7, &hashes),
        Err(MerkleError::WrongHashCount { .. })
    ));
    assert!(matches!(
        Frontier::from_stored(3, &[empty_root()]),
        Err(MerkleError::WrongHashCount {
            expected: 2,
            got: 1
        })
    ));
    let root = log.root(4);
    assert_eq!(
        verify_inclusion(4, 4, &leaf(4), &[], &root),
        Err(MerkleError::IndexOutOfRange { index: 4, size: 4 })
    );
    assert_eq!(
        verify_consistency(5, 4, &root, &root, &[]),
        Err(MerkleError::SizeOrder { size1: 5, size2: 4 })
    );
    assert_eq!(
        verify_consistency(3, 4, &log.root(3), &root, &[]),
        Err(MerkleError::BadProofLength)
    );
    assert_eq!(
        verify_consistency(4, 4, &root, &log.root(3), &[]),
        Err(MerkleError::ConsistencyMismatch)
    );
    assert_eq!(
        verify_consistency(4, 4, &root, &root, &[root]),
        Err(MerkleError::BadProofLength)
    );
}
