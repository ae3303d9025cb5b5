//! The bulk loader: writes issuances straight into a stopped server's database, row for row
//! what the sequencer writes for the same reports (`sequencer.rs`, `write_batch`), so that
//! the server starts on it, signs a checkpoint over it and serves proofs that verify.
//!
//! Per issuance, in one transaction per batch, through the server's own log writer (the
//! `LedgerWriter` the sequencer appends through: `store::sqlite::SqliteWriter`, or on
//! PostgreSQL the writer `store::postgres::PostgresLease` hands out with the writer lease):
//! the entry (its canonical bytes, built by `Issuance::from_claims` and
//! `LogEntry::canonical_bytes` exactly as `api::issuances::prepare` builds them, stored by the
//! sequencer's `LeafEncoder`: raw until the default `compress_after` leaves are logged, then
//! compressed with the dictionary trained on them, written with the first), its stored
//! hashes (from the same `Frontier`), a person for every identity not seen before (`INSERT OR
//! IGNORE`, a random `pe-` id, `created_at` the first entry's `logged_at`), and its
//! `issuances` lookup row pointing at its issuer, identity and client. What it skips: the
//! duplicate lookup (workload `jti`s are unique), and the checkpoint rows the sequencer
//! writes once a second (the server writes one when it starts on the loaded log; a few
//! hundred bytes a second of ingest, see BENCHMARKS.md).

use std::path::Path;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sqlx::SqliteConnection;
use tokenledger_core::entry::{EntryBody, Issuance, LogEntry, ReportContext, Source};
use tokenledger_core::merkle::{Frontier, Hash, leaf_hash};
use tokenledger_server::config::Config;
use tokenledger_server::storage_errors::StorageErrors;
use tokenledger_server::store::postgres::{DatabaseUrl, PostgresLease, PostgresStore};
use tokenledger_server::store::sqlite::SqliteWriter;
use tokenledger_server::store::{
    Batch, IssuanceKey, IssuanceRow, LedgerWriter, NewEntry, WriterLease,
};

use crate::workload::{VO, Workload};

/// One issuance ready to be written: its leaf and the lookup key beside it.
#[derive(Clone, Debug)]
pub struct BulkRow {
    pub leaf: Vec<u8>,
    pub leaf_hash: Hash,
    pub logged_at: i64,
    pub key: IssuanceKey,
}

impl BulkRow {
    /// The entry of a signed JWT report of `claims`, as the server builds it after verifying
    /// the token (source `jwt`, the token's SHA-256, no grant type or parent given).
    pub fn jwt_issuance(
        claims: Map<String, Value>,
        vo: &str,
        token_sha256: String,
        logged_at: i64,
    ) -> anyhow::Result<BulkRow> {
        let ctx = ReportContext {
            source: Source::Jwt,
            vo: vo.to_string(),
            grant_type: None,
            parent_jti: None,
            refresh_jti: None,
            token_sha256: Some(token_sha256),
            feed: None,
        };
        let issuance = Issuance::from_claims(claims, ctx)?;
        let key = IssuanceKey::of(&issuance);
        let leaf =
            LogEntry::new(logged_at, EntryBody::Issuance(Box::new(issuance))).canonical_bytes()?;
        Ok(BulkRow {
            leaf_hash: leaf_hash(&leaf),
            leaf,
            logged_at,
            key,
        })
    }
}

/// SHA-256 (hex) of a token, as the server records it.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The single writer of a bulk load: the log's right edge in memory, like the sequencer's.
pub struct BulkWriter {
    engine: Engine,
    frontier: Frontier,
}

/// The engine's log writer a bulk load appends through: the one the sequencer would use.
enum Engine {
    /// The sequencer's `SqliteWriter`, whose dictionary training the loader can wait for.
    Sqlite(Box<SqliteWriter>),
    /// A PostgreSQL writer taken through the writer lease, as a server takes it, and the
    /// `compress_after` it was given.
    Postgres(Box<dyn LedgerWriter>, usize),
}

/// How long a PostgreSQL load pauses after its raw leaves, for the compression dictionary
/// trained on them off the writer's thread (well under a second for 5,000 leaves); the next
/// batch adopts it. A dictionary not ready by then is adopted by a later batch, as the
/// sequencer does.
const TRAINING_PAUSE: Duration = Duration::from_secs(2);

impl BulkWriter {
    /// Opens the log writer on a migrated database (a server has started on it once) with
    /// exactly the sequencer's writer (`SqliteWriter`), and restores the frontier from the
    /// stored hashes.
    pub async fn open(db_path: &Path) -> anyhow::Result<BulkWriter> {
        let compress_after = Config::load(None)?.log.compress_after;
        let mut writer = SqliteWriter::open(db_path, Default::default(), compress_after).await?;
        let frontier = writer.open_log().await?;
        Ok(BulkWriter {
            engine: Engine::Sqlite(Box::new(writer)),
            frontier,
        })
    }

    /// Opens the log writer of the PostgreSQL database at `url` (migrated here if need be) as
    /// a server does: takes the writer lease (`PostgresLease`, as `tokenledger-bench`), which
    /// no server may hold meanwhile, and restores the frontier from the stored hashes.
    pub async fn open_postgres(url: &str) -> anyhow::Result<BulkWriter> {
        let compress_after = Config::load(None)?.log.compress_after;
        let url = DatabaseUrl::parse(url).map_err(anyhow::Error::msg)?;
        let store = PostgresStore::open(&url, None, Arc::new(StorageErrors::default())).await?;
        let lease = PostgresLease::new(url, store.decoders(), compress_after);
        let mut writer = lease
            .try_acquire("tokenledger-bench")
            .await?
            .context("the writer lease is held: a server is still running on the database")?;
        store.close().await;
        let frontier = writer.open_log().await?;
        Ok(BulkWriter {
            engine: Engine::Postgres(writer, compress_after),
            frontier,
        })
    }

    /// Like [`BulkWriter::open`], tuned for loading: a page cache of `cache_mib` and statement
    /// journals in memory, for this connection only (speed, not what is written).
    pub async fn open_for_bulk(db_path: &Path, cache_mib: u64) -> anyhow::Result<BulkWriter> {
        let mut writer = BulkWriter::open(db_path).await?;
        for pragma in [
            format!("PRAGMA cache_size = -{}", cache_mib * 1024),
            "PRAGMA temp_store = MEMORY".to_string(),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(pragma))
                .execute(writer.conn())
                .await?;
        }
        Ok(writer)
    }

    /// Entries in the log.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The root of the log as written so far.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// Writes `rows` as the next entries, in one durable transaction; the frontier moves only
    /// after the commit. Where the sequencer would start compressing in the middle of
    /// `rows` (its dictionary is trained while it commits), the rows before that point
    /// are committed first and the dictionary waited for: on SQLite by the writer; on
    /// PostgreSQL by a pause of [`TRAINING_PAUSE`], which is returned for timings to leave
    /// out (zero otherwise).
    pub async fn write(&mut self, rows: &[BulkRow]) -> anyhow::Result<Duration> {
        let raw = self.raw_leaves_wanted(rows.len());
        if raw == 0 || raw >= rows.len() {
            self.write_one(rows).await?;
            return Ok(Duration::ZERO);
        }
        self.write_one(&rows[..raw]).await?;
        let paused = match &mut self.engine {
            Engine::Sqlite(writer) => {
                writer.wait_for_training().await?;
                Duration::ZERO
            }
            Engine::Postgres(..) => {
                tokio::time::sleep(TRAINING_PAUSE).await;
                TRAINING_PAUSE
            }
        };
        self.write_one(&rows[raw..]).await?;
        Ok(paused)
    }

    /// How many more leaves the engine stores raw before it trains a dictionary (0 when it
    /// has one). The PostgreSQL writer, behind the lease's trait object, does not say: a
    /// fresh log there stores the default `compress_after` leaves raw.
    fn raw_leaves_wanted(&self, rows: usize) -> usize {
        match &self.engine {
            Engine::Sqlite(writer) => writer.samples_wanted(),
            Engine::Postgres(_, compress_after) => {
                let size = self.frontier.size() as usize;
                if size < *compress_after && size + rows > *compress_after {
                    compress_after - size
                } else {
                    0
                }
            }
        }
    }

    async fn write_one(&mut self, rows: &[BulkRow]) -> anyhow::Result<()> {
        let writer: &mut dyn LedgerWriter = match &mut self.engine {
            Engine::Sqlite(writer) => writer.as_mut(),
            Engine::Postgres(writer, _) => writer.as_mut(),
        };
        self.frontier = append_rows(writer, &self.frontier, rows).await?;
        Ok(())
    }

    /// Moves the WAL into the database file and empties it, so that file sizes are the
    /// database's own (SQLite; nothing to do on PostgreSQL).
    pub async fn checkpoint_wal(&mut self) -> anyhow::Result<()> {
        if let Engine::Sqlite(writer) = &mut self.engine {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(writer.connection())
                .await?;
        }
        Ok(())
    }

    /// Closes the connection (the server may then start on the database; on PostgreSQL,
    /// once the database has noticed and released the lease).
    pub async fn close(self) -> anyhow::Result<()> {
        match self.engine {
            Engine::Sqlite(writer) => writer.close().await?,
            Engine::Postgres(writer, _) => drop(writer),
        }
        Ok(())
    }

    /// The SQLite connection, for measurements on the loaded database. Panics on
    /// PostgreSQL, which is measured through a connection of its own.
    pub fn conn(&mut self) -> &mut SqliteConnection {
        match &mut self.engine {
            Engine::Sqlite(writer) => writer.connection(),
            Engine::Postgres(..) => {
                panic!("BulkWriter::conn: a PostgreSQL load has no SQLite connection")
            }
        }
    }
}

/// Appends `rows` after the log whose right edge is `frontier`, through `writer`, in one
/// transaction, as the sequencer's `write_batch` does for a batch of issuances; the right
/// edge after the commit.
pub async fn append_rows(
    writer: &mut dyn LedgerWriter,
    frontier: &Frontier,
    rows: &[BulkRow],
) -> anyhow::Result<Frontier> {
    let mut frontier = frontier.clone();
    let start = frontier.size();
    let mut hashes = Vec::with_capacity(rows.len() * 2);
    for row in rows {
        hashes.extend(frontier.append(row.leaf_hash));
    }
    let entries: Vec<NewEntry<'_>> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| NewEntry {
            index: start + i as u64,
            leaf: &r.leaf,
        })
        .collect();
    let issuances: Vec<IssuanceRow<'_>> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| IssuanceRow {
            index: start + i as u64,
            key: &r.key,
            logged_at: r.logged_at,
        })
        .collect();
    let batch = Batch {
        // The time of the batch in the preloaded timeline: its newest entry's.
        written_at: rows.last().map_or(0, |r| r.logged_at),
        entries,
        hashes: &hashes,
        issuances,
        ..Batch::default()
    };
    writer.append(&batch).await?;
    Ok(frontier)
}

/// Where a bulk load puts token `i` in time: tokens arrive at a steady 4,000 per second,
/// the last one just before `end_us` (unix microseconds).
#[derive(Clone, Copy, Debug)]
pub struct Timeline {
    pub first_us: i64,
}

/// Microseconds between two preloaded tokens.
const SPACING_US: i64 = 250;

impl Timeline {
    /// A timeline of `total` tokens ending at `end_us`.
    pub fn ending_at(end_us: i64, total: u64) -> Timeline {
        Timeline {
            first_us: end_us - total as i64 * SPACING_US,
        }
    }

    /// `logged_at` of token `i`.
    pub fn logged_at(&self, i: u64) -> i64 {
        self.first_us + i as i64 * SPACING_US
    }
}

/// The row of preloaded token `i`: the workload's claims, issued the second it is logged.
/// Preloaded tokens are never signed (ten million RSA signatures would take hours); their
/// `token_sha256` is the hash of a stand-in of the same length, so the row is the same size.
pub fn preload_row(workload: &Workload, timeline: &Timeline, i: u64) -> anyhow::Result<BulkRow> {
    let logged_at = timeline.logged_at(i);
    let claims = workload.claims(i, logged_at / 1_000_000);
    let stand_in = token_sha256(&format!("unsigned bench token {i} {}", workload.seed));
    BulkRow::jwt_issuance(claims, VO, stand_in, logged_at)
}

/// Progress of a bulk load, reported after each batch.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub size: u64,
    pub elapsed: Duration,
}

/// Loads workload tokens `writer.size()..end` in batches of `batch`, building rows on a
/// second thread while this one writes. `on_batch` runs after every commit and may stop the
/// load early by returning `false`.
pub async fn load(
    writer: &mut BulkWriter,
    workload: &Workload,
    timeline: &Timeline,
    end: u64,
    batch: u64,
    mut on_batch: impl AsyncFnMut(&mut BulkWriter, Progress) -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let start = writer.size();
    let started = Instant::now();
    let (tx, rx) = mpsc::sync_channel::<anyhow::Result<Vec<BulkRow>>>(2);
    let (workload, timeline) = (*workload, *timeline);
    let producer = std::thread::spawn(move || {
        let mut from = start;
        while from < end {
            let to = end.min(from + batch);
            let rows = (from..to)
                .map(|i| preload_row(&workload, &timeline, i))
                .collect();
            if tx.send(rows).is_err() {
                return;
            }
            from = to;
        }
    });
    let result = async {
        while writer.size() < end {
            let rows = rx
                .recv()
                .context("the row builder stopped early")?
                .context("building rows")?;
            writer.write(&rows).await?;
            let progress = Progress {
                size: writer.size(),
                elapsed: started.elapsed(),
            };
            if !on_batch(writer, progress).await? {
                break;
            }
        }
        anyhow::Ok(())
    }
    .await;
    drop(rx);
    producer
        .join()
        .map_err(|_| anyhow::anyhow!("the row builder panicked"))?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_canonical_issuances_of_the_workload() {
        let w = Workload::standard();
        let t = Timeline::ending_at(1_700_000_000_000_000, 10);
        let row = preload_row(&w, &t, 3).unwrap();
        assert_eq!(row.key.jti, w.jti(3));
        assert_eq!(row.key.vo, VO);
        assert_eq!(row.leaf_hash, leaf_hash(&row.leaf));
        let entry = LogEntry::from_canonical_bytes(&row.leaf).unwrap();
        assert_eq!(entry.logged_at, t.logged_at(3));
        match entry.body {
            EntryBody::Issuance(i) => {
                assert_eq!(i.source, Source::Jwt);
                assert_eq!(i.groups, vec!["/atlas".to_string()]);
                assert_eq!(i.token_sha256.as_deref().map(str::len), Some(64));
            }
            other => panic!("not an issuance: {other:?}"),
        }
    }
}
