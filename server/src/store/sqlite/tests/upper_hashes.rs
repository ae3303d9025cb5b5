//! The `upper_hashes` copy of the stored hashes of level `UPPER_LEVEL` and above (migration
//! 0005): the sequencer writes it beside `hashes`, fills it on a database that lacks it,
//! proofs read it and still verify, and tampering with it shows in verification.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlitePool;
use tokenledger_core::merkle::{self, Frontier, Hash, leaf_hash};
use tokenledger_core::note::NoteSigner;

use crate::clock::SystemClock;
use crate::metrics::Metrics;
use crate::sequencer::{BatchLimits, EntryKind, PreparedEntry, Sequencer, SequencerError};
use crate::store::sqlite::log;
use crate::store::sqlite::{SqliteStore, SqliteWriter, connection};
use crate::store::stored_hashes::UPPER_LEVEL;
use crate::store::{LedgerReader, StateChange, StoreError};

/// Batch sizes of the log the tests build: 2,661 entries, so stored hashes up to level 11.
const BATCHES: [u64; 8] = [1, 62, 1, 64, 129, 1000, 380, 1024];

/// Roots of the log as entries are appended, computed in memory: `roots[size]`.
struct Reference {
    frontier: Frontier,
    roots: Vec<Hash>,
}

impl Reference {
    fn new() -> Reference {
        Reference {
            frontier: Frontier::new(),
            roots: vec![merkle::empty_root()],
        }
    }

    fn append(&mut self, leaf: &[u8]) {
        self.frontier.append(leaf_hash(leaf));
        self.roots.push(self.frontier.root());
    }

    fn size(&self) -> u64 {
        self.frontier.size()
    }
}

fn leaf(index: u64) -> Vec<u8> {
    format!("entry {index}").into_bytes()
}

fn entry(index: u64) -> PreparedEntry {
    let leaf = leaf(index);
    PreparedEntry {
        leaf_hash: leaf_hash(&leaf),
        leaf,
        logged_at: index as i64,
        kind: EntryKind::State(StateChange::None),
    }
}

async fn start(path: &Path) -> Result<(Sequencer, tokio::task::JoinHandle<()>), SequencerError> {
    Sequencer::start(
        Box::new(
            SqliteWriter::open(path, Default::default(), 0)
                .await
                .unwrap(),
        ),
        NoteSigner::from_seed("test/log", [5; 32]).unwrap(),
        "test/log".into(),
        BatchLimits {
            max_batch: 2000,
            max_wait: Duration::ZERO,
            queue_depth: 8,
        },
        Arc::new(Metrics::default()),
        Arc::new(SystemClock),
    )
    .await
}

/// Appends `batches` (one sequencer call each) through a sequencer started on `path`.
async fn append(path: &Path, reference: &mut Reference, batches: &[u64]) {
    let (sequencer, task) = start(path).await.unwrap();
    for &count in batches {
        let first = reference.size();
        let entries = (first..first + count).map(entry).collect();
        sequencer.append(entries).await.unwrap();
        for index in first..first + count {
            reference.append(&leaf(index));
        }
        assert_eq!(sequencer.head().root, *reference.roots.last().unwrap());
    }
    drop(sequencer);
    task.await.unwrap();
}

async fn logged() -> (tempfile::TempDir, SqlitePool, Reference) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let pool = connection::open(&path).await.unwrap();
    let mut reference = Reference::new();
    append(&path, &mut reference, &BATCHES).await;
    (dir, pool, reference)
}

async fn rows(pool: &SqlitePool, table: &str) -> Vec<(i64, Vec<u8>)> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT idx, hash FROM {table} ORDER BY idx"
    )))
    .fetch_all(pool)
    .await
    .unwrap()
}

/// `upper_hashes` holds exactly the rows of `hashes` of level `UPPER_LEVEL` and above.
async fn assert_upper_hashes_complete(pool: &SqlitePool, size: u64) {
    let expected: Vec<(i64, Vec<u8>)> = rows(pool, "hashes")
        .await
        .into_iter()
        .filter(|(idx, _)| merkle::stored_hash_level(*idx as u64) >= UPPER_LEVEL)
        .collect();
    let upper = rows(pool, "upper_hashes").await;
    assert_eq!(
        upper.len() as u64,
        merkle::stored_hash_count_from_level(size, UPPER_LEVEL)
    );
    assert_eq!(upper, expected);
}

/// Tree sizes and leaf indexes the proofs are checked at.
fn proof_points(size: u64) -> Vec<(u64, u64)> {
    let sizes = [
        1, 2, 63, 64, 65, 127, 128, 129, 1000, 1257, 2047, 2048, 2049, size,
    ];
    sizes
        .into_iter()
        .filter(|s| *s <= size)
        .flat_map(|s| {
            let indexes = [0, 1, 63, 64, s / 2, s.saturating_sub(2), s - 1].into_iter();
            let spread = (0..s).step_by(97);
            indexes
                .chain(spread)
                .filter(move |i| *i < s)
                .map(move |i| (i, s))
        })
        .collect()
}

async fn inclusion_verifies(pool: &SqlitePool, reference: &Reference, index: u64, size: u64) {
    let proof = SqliteStore::over(pool.clone())
        .inclusion_proof(index, size)
        .await
        .unwrap();
    assert_eq!(proof.leaf_hash, leaf_hash(&leaf(index)));
    let root = reference.roots[size as usize];
    merkle::verify_inclusion(index, size, &proof.leaf_hash, &proof.hashes, &root)
        .unwrap_or_else(|e| panic!("inclusion of {index} in {size}: {e}"));
}

async fn consistency_verifies(pool: &SqlitePool, reference: &Reference, from: u64, to: u64) {
    let indexes = merkle::consistency_proof_indexes(from, to).unwrap();
    let hashes = log::read_hashes(pool, &indexes).await.unwrap();
    let proof = merkle::consistency_proof(from, to, &hashes).unwrap();
    let (old, new) = (reference.roots[from as usize], reference.roots[to as usize]);
    merkle::verify_consistency(from, to, &old, &new, &proof)
        .unwrap_or_else(|e| panic!("consistency of {from} with {to}: {e}"));
}

async fn assert_proofs_verify(pool: &SqlitePool, reference: &Reference) {
    let size = reference.size();
    for (index, tree) in proof_points(size) {
        inclusion_verifies(pool, reference, index, tree).await;
    }
    for (from, to) in proof_points(size) {
        consistency_verifies(pool, reference, from, to).await;
    }
}

#[tokio::test]
async fn the_sequencer_writes_upper_hashes_and_proofs_verify() {
    let (_dir, pool, reference) = logged().await;
    let size = reference.size();
    assert_eq!(size, BATCHES.iter().sum::<u64>());
    assert_upper_hashes_complete(&pool, size).await;
    assert!(
        rows(&pool, "upper_hashes").await.len() > 40,
        "test premise: levels 6 to 11 are stored"
    );
    assert_proofs_verify(&pool, &reference).await;
}

#[tokio::test]
async fn a_database_without_upper_hashes_gets_them_at_start() {
    let (dir, pool, mut reference) = logged().await;
    let path = dir.path().join("t.db");
    sqlx::query("DELETE FROM upper_hashes")
        .execute(&pool)
        .await
        .unwrap();
    append(&path, &mut reference, &[]).await;
    assert_upper_hashes_complete(&pool, reference.size()).await;
    assert_proofs_verify(&pool, &reference).await;

    sqlx::query("DELETE FROM upper_hashes WHERE idx % 3 = 0")
        .execute(&pool)
        .await
        .unwrap();
    append(&path, &mut reference, &[300, 1]).await;
    assert_upper_hashes_complete(&pool, reference.size()).await;
    assert_proofs_verify(&pool, &reference).await;
}

#[tokio::test]
async fn the_sequencer_refuses_to_start_when_upper_hashes_cannot_be_restored() {
    let (dir, pool, reference) = logged().await;
    let level6 = merkle::stored_hash_index(UPPER_LEVEL, 3) as i64;
    for table in ["upper_hashes", "hashes"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE idx = ?"
        )))
        .bind(level6)
        .execute(&pool)
        .await
        .unwrap();
    }
    let error = start(&dir.path().join("t.db")).await.err().unwrap();
    assert!(
        matches!(error, SequencerError::Store(StoreError::Corrupt(_))),
        "{error}"
    );
    let expected = merkle::stored_hash_count_from_level(reference.size(), UPPER_LEVEL);
    assert_eq!(rows(&pool, "upper_hashes").await.len() as u64, expected - 1);
}

#[tokio::test]
async fn a_tampered_upper_hash_fails_verification() {
    let (_dir, pool, reference) = logged().await;
    let (index, size) = (700, reference.size());
    let upper: Vec<u64> = merkle::inclusion_proof_indexes(index, size)
        .unwrap()
        .into_iter()
        .filter(|i| merkle::stored_hash_level(*i) >= UPPER_LEVEL)
        .collect();
    assert!(
        !upper.is_empty(),
        "test premise: the proof reads upper hashes"
    );
    inclusion_verifies(&pool, &reference, index, size).await;

    let forged = [0x5a; 32].to_vec();
    sqlx::query("UPDATE upper_hashes SET hash = ? WHERE idx = ?")
        .bind(&forged)
        .bind(upper[0] as i64)
        .execute(&pool)
        .await
        .unwrap();
    let proof = SqliteStore::over(pool.clone())
        .inclusion_proof(index, size)
        .await
        .unwrap();
    let root = reference.roots[size as usize];
    assert_eq!(
        merkle::verify_inclusion(index, size, &proof.leaf_hash, &proof.hashes, &root),
        Err(merkle::MerkleError::InclusionMismatch)
    );
}
