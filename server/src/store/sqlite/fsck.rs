//! `tokenledger-server fsck`: checks a whole store, on a stopped server's data directory or
//! beside a running server (a read-only connection, every read in one snapshot):
//!
//! - every leaf decodes and hashes to its stored leaf hash (level 0 of `hashes`);
//! - every stored interior hash is the hash of its two stored children, so the stored tree
//!   is the tree of the leaves; `upper_hashes` holds exactly the copies it should;
//! - row counts: every entry and every stored hash of a tree of the log's size, and nothing
//!   beyond; `issuances`, `resolutions` (resolutions and erasures), `suspensions`,
//!   `sightings` and `suspension_requests` hold one row for each entry of their types and
//!   none for another entry;
//! - the newest checkpoint is signed by the log key in the data directory, is not larger than
//!   the log, and its root is the stored tree's at its size (the check start-up makes too:
//!   [`crate::store::ownership`]).
//!
//! Each problem names what is wrong (an entry's index, a stored hash's index, level and
//! subtree), never what an entry holds. On a live server the WAL grows while fsck holds its
//! snapshot; it shrinks again at the next checkpoint after fsck ends. On a stopped server
//! SQLite may leave its empty WAL and shared-memory index (`-wal`, `-shm`, owned like the
//! database) beside the database: a read-only connection cannot remove them.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use tokenledger_core::checkpoint::Checkpoint;
use tokenledger_core::merkle::{self, Hash};
use tokenledger_core::note::NoteVerifier;

use super::dictionaries;
use super::log;
use crate::config::DB_FILE;
use crate::keys;
use crate::store::leaf_codec::LeafDecoders;
use crate::store::stored_hashes::UPPER_LEVEL;
use crate::store::{StoreError, ownership};

/// Leaves (and their stored hashes) read per query.
const CHUNK_LEAVES: u64 = 4096;
/// Problems listed one by one; those beyond are only counted.
const MAX_LISTED: usize = 1000;
/// Tables holding one row per entry of their types: (table, entry types). `resolutions` is
/// a VO's audit listing: its resolutions and its erasures.
const INDEXED_TYPES: [(&str, &[&str]); 5] = [
    ("issuances", &["issuance"]),
    ("resolutions", &["resolution", "erasure"]),
    ("suspensions", &["suspension"]),
    ("sightings", &["sighting"]),
    ("suspension_requests", &["suspension_request"]),
];

/// What fsck found.
#[derive(Debug, Default)]
pub struct FsckReport {
    /// The first [`MAX_LISTED`] problems, in the order found.
    pub problems: Vec<String>,
    /// Problems found beyond those listed.
    pub unlisted: u64,
    /// Entries in the log.
    pub entries: u64,
    /// Entries stored compressed.
    pub compressed: u64,
    /// Rows of `hashes`.
    pub stored_hashes: u64,
    /// Rows of each table of [`INDEXED_TYPES`], in that order.
    pub indexed_rows: [u64; 5],
    /// The newest checkpoint, if one is stored and it checked out.
    pub checkpoint: Option<Checkpoint>,
}

impl FsckReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// How many problems were found.
    pub fn problem_count(&self) -> u64 {
        self.problems.len() as u64 + self.unlisted
    }

    fn problem(&mut self, problem: String) {
        if self.problems.len() < MAX_LISTED {
            self.problems.push(problem);
        } else {
            self.unlisted += 1;
        }
    }

    /// One line: what was checked and found consistent.
    pub fn summary(&self) -> String {
        let [issuances, resolutions, suspensions, sightings, requests] = self.indexed_rows;
        let checkpoint = match &self.checkpoint {
            Some(c) => format!(
                "the newest checkpoint (size {}, root {}) is signed by the log key and is the \
                 stored tree's",
                c.size,
                c.root.to_base64()
            ),
            None => "no checkpoint is stored".to_string(),
        };
        format!(
            "fsck: clean: {} entries ({} stored compressed), {} stored hashes, {issuances} \
             issuances, {resolutions} resolutions, {suspensions} suspensions, {sightings} \
             sightings, {requests} suspension requests; {checkpoint}",
            self.entries, self.compressed, self.stored_hashes
        )
    }
}

/// Checks the store in `data_dir` (its database), against the log key in `log_key`, without
/// changing anything.
pub async fn run(data_dir: &Path, log_key: &Path) -> anyhow::Result<FsckReport> {
    let db_path = data_dir.join(DB_FILE);
    anyhow::ensure!(db_path.is_file(), "no database at {}", db_path.display());
    let verifier = keys::read_log_key(log_key)?.verifier();
    let mut conn = SqliteConnectOptions::new()
        .filename(&db_path)
        .read_only(true)
        .busy_timeout(Duration::from_secs(10))
        .connect()
        .await
        .with_context(|| format!("opening {} read-only", db_path.display()))?;
    let mut snapshot = conn.begin().await?;
    let mut report = FsckReport::default();
    check_store(&mut snapshot, &verifier, &mut report)
        .await
        .with_context(|| format!("reading {}", db_path.display()))?;
    snapshot.rollback().await?;
    conn.close().await?;
    Ok(report)
}

async fn check_store(
    conn: &mut SqliteConnection,
    verifier: &NoteVerifier,
    report: &mut FsckReport,
) -> Result<(), StoreError> {
    let (size, entry_rows, compressed): (i64, i64, i64) = sqlx::query_as(
        "SELECT COALESCE(MAX(idx) + 1, 0), COUNT(*), COUNT(dictionary) FROM \
         (SELECT idx, dictionary FROM entries \
          UNION ALL SELECT idx, NULL FROM redacted_entries)",
    )
    .fetch_one(&mut *conn)
    .await?;
    let size = size as u64;
    report.entries = size;
    report.compressed = compressed as u64;
    if entry_rows as u64 != size {
        // A redacted entry counts as a row: its stored hashes stand for its leaf.
        report.problem(format!(
            "entries: {entry_rows} rows for indexes 0 to {size} (exclusive): some are missing"
        ));
    }
    check_hash_rows(conn, size, report).await?;
    let leaves = dictionaries::load_decoders(&mut *conn).await?;
    let mut tree = TreeCheck::default();
    let mut start = 0;
    while start < size {
        let end = size.min(start + CHUNK_LEAVES);
        check_chunk(conn, &leaves, &mut tree, start, end, report).await?;
        start = end;
    }
    check_upper_hashes(conn, size, report).await?;
    for (position, (table, _)) in INDEXED_TYPES.iter().enumerate() {
        let (rows, beyond): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE idx >= ?) FROM {table}"
        )))
        .bind(size as i64)
        .fetch_one(&mut *conn)
        .await?;
        report.indexed_rows[position] = rows as u64;
        if beyond > 0 {
            report.problem(format!(
                "{table}: {beyond} rows point beyond the log's {size} entries"
            ));
        }
    }
    match check_newest_checkpoint(conn, verifier, size).await {
        Ok(checkpoint) => {
            if checkpoint.is_none() && size > 0 {
                report.problem(format!(
                    "no checkpoint is stored for a log of {size} entries"
                ));
            }
            report.checkpoint = checkpoint;
        }
        Err(StoreError::Corrupt(problem)) => report.problem(problem),
        Err(e) => return Err(e),
    }
    Ok(())
}

/// `hashes` must hold exactly the stored hashes of a tree of `size` leaves: the scan finds
/// the missing ones, this the extra ones.
async fn check_hash_rows(
    conn: &mut SqliteConnection,
    size: u64,
    report: &mut FsckReport,
) -> Result<(), StoreError> {
    let expected = merkle::stored_hash_count(size);
    let (rows, beyond): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(*) FILTER (WHERE idx >= ?) FROM hashes")
            .bind(expected as i64)
            .fetch_one(&mut *conn)
            .await?;
    report.stored_hashes = rows as u64;
    if beyond > 0 {
        report.problem(format!(
            "hashes: {beyond} rows at stored indexes {expected} and above, beyond the tree of \
             {size} entries"
        ));
    }
    Ok(())
}

/// The stored hashes of the left children met so far, one per level: the hash of subtree
/// `(level, n)` for an even `n`, waiting for its right sibling and their parent.
struct TreeCheck {
    left: [Option<(u64, Hash)>; 64],
}

impl Default for TreeCheck {
    fn default() -> Self {
        TreeCheck { left: [None; 64] }
    }
}

/// A stored leaf as read: its bytes and dictionary.
type StoredRow = (Vec<u8>, Option<i64>);

/// The `type` of an entry, read from its canonical bytes.
#[derive(Deserialize)]
struct EntryType {
    #[serde(rename = "type")]
    kind: String,
}

/// Checks leaves `start..end`, the stored hashes their appends wrote, and the rows of the
/// tables that index them.
async fn check_chunk(
    conn: &mut SqliteConnection,
    leaves: &LeafDecoders,
    tree: &mut TreeCheck,
    start: u64,
    end: u64,
    report: &mut FsckReport,
) -> Result<(), StoreError> {
    let entry_rows: Vec<(i64, Vec<u8>, Option<i64>)> = sqlx::query_as(
        "SELECT idx, leaf, dictionary FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx",
    )
    .bind(start as i64)
    .bind(end as i64)
    .fetch_all(&mut *conn)
    .await?;
    let mut stored_leaves: Vec<Option<StoredRow>> = vec![None; (end - start) as usize];
    for (index, leaf, dictionary) in entry_rows {
        stored_leaves[index as u64 as usize - start as usize] = Some((leaf, dictionary));
    }
    let redacted: Vec<(i64,)> =
        sqlx::query_as("SELECT idx FROM redacted_entries WHERE idx >= ? AND idx < ?")
            .bind(start as i64)
            .bind(end as i64)
            .fetch_all(&mut *conn)
            .await?;
    let redacted: HashSet<u64> = redacted.into_iter().map(|(i,)| i as u64).collect();
    let first_hash = merkle::stored_hash_count(start);
    let hash_rows: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT idx, hash FROM hashes WHERE idx >= ? AND idx < ? ORDER BY idx")
            .bind(first_hash as i64)
            .bind(merkle::stored_hash_count(end) as i64)
            .fetch_all(&mut *conn)
            .await?;
    let mut hashes: Vec<Option<Vec<u8>>> =
        vec![None; (merkle::stored_hash_count(end) - first_hash) as usize];
    for (index, hash) in hash_rows {
        hashes[(index as u64 - first_hash) as usize] = Some(hash);
    }

    let mut types: Vec<Option<String>> = Vec::with_capacity(stored_leaves.len());
    for (n, stored) in (start..end).zip(stored_leaves) {
        let base = merkle::stored_hash_count(n);
        let stored_hash =
            |level: u32| hashes[(base + u64::from(level) - first_hash) as usize].as_deref();
        let leaf = match stored {
            // Its payload was removed: its stored leaf hash is checked as a stored hash.
            None if redacted.contains(&n) => None,
            None => {
                report.problem(format!("entry {n} is missing"));
                None
            }
            Some(_) if redacted.contains(&n) => {
                report.problem(format!("entry {n} is redacted, but its leaf is stored"));
                None
            }
            Some((bytes, dictionary)) => match leaves.checked(dictionary, bytes, stored_hash(0)) {
                Ok(leaf) => Some(leaf),
                Err(problem) => {
                    report.problem(format!(
                        "entry {n}: {problem} (stored hash {base}, level 0)"
                    ));
                    None
                }
            },
        };
        types.push(leaf.and_then(|leaf| {
            serde_json::from_slice::<EntryType>(&leaf)
                .map(|t| t.kind)
                .ok()
        }));
        // Appending leaf n stored its leaf hash and the hash of every subtree it completed.
        let mut below: Option<(u64, Hash)> = None;
        for level in 0..=n.trailing_ones() {
            let index = base + u64::from(level);
            let subtree = n >> level;
            let hash = match stored_hash(level).map(Hash::from_slice) {
                None => {
                    report.problem(format!(
                        "stored hash {index} (level {level}, subtree {subtree}) is missing"
                    ));
                    None
                }
                Some(Err(_)) => {
                    report.problem(format!(
                        "stored hash {index} (level {level}, subtree {subtree}) is not 32 bytes"
                    ));
                    None
                }
                Some(Ok(hash)) => Some(hash),
            };
            if level > 0
                && let (Some(hash), Some((left_index, left)), Some((right_index, right))) =
                    (hash, tree.left[level as usize - 1], below)
                && hash != merkle::node_hash(&left, &right)
            {
                report.problem(format!(
                    "stored hash {index} (level {level}, subtree {subtree}) is not the hash of \
                     its children, stored hashes {left_index} and {right_index}"
                ));
            }
            below = hash.map(|hash| (index, hash));
            if subtree % 2 == 0 {
                tree.left[level as usize] = below;
            }
        }
    }
    check_indexed_rows(conn, start, &types, report).await
}

/// Each table of [`INDEXED_TYPES`] holds one row for each entry of its type among entries
/// `start..` (of the given types; `None` where the entry could not be read), and none for
/// another entry.
async fn check_indexed_rows(
    conn: &mut SqliteConnection,
    start: u64,
    types: &[Option<String>],
    report: &mut FsckReport,
) -> Result<(), StoreError> {
    let end = start + types.len() as u64;
    for (table, kinds) in INDEXED_TYPES {
        let rows: Vec<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT idx FROM {table} WHERE idx >= ? AND idx < ? ORDER BY idx"
        )))
        .bind(start as i64)
        .bind(end as i64)
        .fetch_all(&mut *conn)
        .await?;
        let mut counts = vec![0u32; types.len()];
        for (index,) in rows {
            counts[(index as u64 - start) as usize] += 1;
        }
        for ((n, entry_type), rows) in (start..).zip(types).zip(counts) {
            let Some(entry_type) = entry_type else {
                continue;
            };
            match (kinds.contains(&entry_type.as_str()), rows) {
                (true, 1) | (false, 0) => {}
                (true, 0) => {
                    report.problem(format!("entry {n} ({entry_type}) has no row in {table}"));
                }
                (true, rows) => report.problem(format!(
                    "entry {n} ({entry_type}) has {rows} rows in {table}"
                )),
                (false, _) => report.problem(format!(
                    "{table} has a row for entry {n}, which is of type {entry_type}, not {}",
                    kinds.join(" or ")
                )),
            }
        }
    }
    Ok(())
}

/// `upper_hashes` holds exactly a copy of each stored hash of level [`UPPER_LEVEL`] and
/// above: proofs read those from there.
async fn check_upper_hashes(
    conn: &mut SqliteConnection,
    size: u64,
    report: &mut FsckReport,
) -> Result<(), StoreError> {
    let expected = merkle::stored_hash_indexes_from_level(size, UPPER_LEVEL);
    let rows: Vec<(i64, Vec<u8>, Option<Vec<u8>>)> = sqlx::query_as(
        "SELECT u.idx, u.hash, h.hash FROM upper_hashes u LEFT JOIN hashes h ON h.idx = u.idx \
         ORDER BY u.idx",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut wanted = expected.iter().peekable();
    for (index, copy, original) in rows {
        let index = index as u64;
        while let Some(missing) = wanted.next_if(|w| **w < index) {
            report.problem(format!(
                "upper_hashes lacks its copy of stored hash {missing}"
            ));
        }
        if wanted.next_if_eq(&&index).is_none() {
            report.problem(format!(
                "upper_hashes holds stored hash {index}, which is not of level {UPPER_LEVEL} or \
                 above in the tree of {size} entries"
            ));
        } else if original.as_ref() != Some(&copy) {
            report.problem(format!(
                "upper_hashes row {index} differs from stored hash {index}"
            ));
        }
    }
    for missing in wanted {
        report.problem(format!(
            "upper_hashes lacks its copy of stored hash {missing}"
        ));
    }
    Ok(())
}

/// The newest stored checkpoint, checked against the log of `log_size` entries read through
/// `conn` (see [`ownership`]); `Ok(None)` if none is stored.
async fn check_newest_checkpoint(
    conn: &mut SqliteConnection,
    verifier: &NoteVerifier,
    log_size: u64,
) -> Result<Option<Checkpoint>, StoreError> {
    let Some((size, note)) = log::newest_checkpoint(&mut *conn).await? else {
        return Ok(None);
    };
    let checkpoint = ownership::open(size, &note, verifier, log_size)?;
    let hashes = log::read_hashes(&mut *conn, &merkle::tree_hash_indexes(size)).await?;
    ownership::check_root(&checkpoint, &hashes)?;
    Ok(Some(checkpoint))
}
