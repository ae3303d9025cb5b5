//! `tokenledger-server migrate --to postgres://...`: copies a SQLite ledger into an empty
//! PostgreSQL database, table by table, and checks the copy before anything is committed.
//!
//! The SQLite database is read in one snapshot (one read transaction): a server still running
//! on it goes on writing, and what it writes after the snapshot is not copied (the report says
//! the size copied). Everything on PostgreSQL is one transaction: the migrations of
//! `schema/postgres/`, the check that every table is empty (under a lock), the rows in batches
//! (multi-row INSERTs from arrays), the identity sequences set past the copied ids, then the
//! checks, made on the copy as PostgreSQL returns it:
//!
//! - every table holds as many rows as in the snapshot;
//! - every leaf decodes (with the copy's dictionaries) and hashes to its stored leaf hash, and
//!   every stored hash is the one the leaves give (the tree rebuilt leaf by leaf), the copies
//!   in `upper_hashes` equal to theirs in `hashes`;
//! - the newest checkpoint opens with the log key, and its root is the root of the copy's
//!   stored tree at its size (read as proofs read it) and of the rebuilt tree.
//!
//! A failed check rolls everything back: the target is left as it was.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures_util::TryStreamExt;
use sqlx::postgres::PgRow;
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{ConnectOptions, Connection, PgConnection, Row, SqliteConnection};
use tokenledger_core::checkpoint::Checkpoint;
use tokenledger_core::merkle::{self, Frontier, Hash};
use tokenledger_core::note::NoteVerifier;

use super::leaf_codec::LeafDecoders;
use super::ownership;
use super::postgres::{self, DatabaseUrl};
use super::sqlite;
use crate::config::Config;
use crate::keys;

/// The tables of the ledger, in the order they are copied (`sites` before `site_vos`, which
/// refers to it). Both schemas must hold exactly these (PostgreSQL may hold more tables of
/// its own, such as `writer_lease`, which must be empty).
pub const TABLES: [&str; 25] = [
    "entries",
    "hashes",
    "upper_hashes",
    "checkpoints",
    "leaf_dictionaries",
    "issuers",
    "clients",
    "identities",
    "issuances",
    "resolutions",
    "credentials",
    "sites",
    "site_vos",
    "pseudonyms",
    "suspensions",
    "blocklists",
    "sightings",
    "person_merges",
    "blocklist_suspensions",
    "blocklist_fetches",
    "blocklist_last_fetches",
    "suspension_requests",
    "redacted_entries",
    "redacted_issuances",
    "redactions",
];

/// Rows per INSERT.
const BATCH_ROWS: usize = 5000;
/// Leaves (and their stored hashes) read back per query when the copy is checked.
const CHECK_LEAVES: u64 = 4096;
/// How long the SQLite snapshot waits for a lock the server holds for a moment.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// The table of applied migrations (sqlx's), in both databases.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// How far a migration is.
#[derive(Clone, Copy, Debug)]
pub enum Progress<'a> {
    /// Rows of `table` copied, of the snapshot's `total`: after each batch, and once for a
    /// table without rows.
    Copied {
        table: &'a str,
        copied: u64,
        total: u64,
    },
    /// Entries of the copy checked (each leaf and the stored hashes its append gave), of
    /// `size`: after each chunk read back.
    Checked { entries: u64, size: u64 },
}

/// What a migration copied and checked.
#[derive(Clone, Debug)]
pub struct MigrationReport {
    /// Rows copied per table, in [`TABLES`]' order.
    pub tables: Vec<(&'static str, u64)>,
    /// Entries copied: the log's size in the snapshot.
    pub size: u64,
    /// The root of the copied tree of `size` entries.
    pub root: Hash,
    /// The newest signed checkpoint, checked against the copy (none for a log without
    /// entries and checkpoints).
    pub checkpoint: Option<Checkpoint>,
    /// From the snapshot's start to the commit.
    pub elapsed: Duration,
}

impl MigrationReport {
    /// Rows copied, every table together.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|(_, rows)| rows).sum()
    }
}

/// Copies the ledger of `config`'s data directory (its SQLite database, checked with its log
/// key) into the empty PostgreSQL database `target` ([`copy_ledger`]).
pub async fn run(
    config: &Config,
    target: &DatabaseUrl,
    progress: &mut (dyn FnMut(Progress<'_>) + Send),
) -> anyhow::Result<MigrationReport> {
    let source = config.db_path();
    ensure!(source.is_file(), "no database at {}", source.display());
    let verifier = keys::load_log_key(&config.log_key_path(), &config.log.origin)?.verifier();
    copy_ledger(&source, target, &verifier, progress).await
}

/// Copies the SQLite database at `source` into the empty PostgreSQL database `target` and
/// checks the copy (its newest checkpoint with `verifier`) before committing it.
pub async fn copy_ledger(
    source: &Path,
    target: &DatabaseUrl,
    verifier: &NoteVerifier,
    progress: &mut (dyn FnMut(Progress<'_>) + Send),
) -> anyhow::Result<MigrationReport> {
    let started = Instant::now();
    let mut sqlite = SqliteConnectOptions::new()
        .filename(source)
        .read_only(true)
        .busy_timeout(BUSY_TIMEOUT)
        .connect()
        .await
        .with_context(|| format!("opening {} read-only", source.display()))?;
    let mut snapshot = sqlite.begin().await?;
    let source_rows = read_source(&mut snapshot)
        .await
        .with_context(|| format!("reading {}", source.display()))?;

    let (mut pg, _) = postgres::connect_writable(target)
        .await
        .with_context(|| format!("connecting to {target}"))?;
    let mut copy = pg.begin().await?;
    let copied = copy_and_check(&mut snapshot, &mut copy, &source_rows, verifier, progress).await;
    let (tables, (size, root, checkpoint)) = match copied {
        Ok(copied) => copied,
        Err(e) => {
            // Best effort: the connection closing would roll back too.
            let _ = copy.rollback().await;
            return Err(e.context("rolled back: nothing was written to the target"));
        }
    };
    copy.commit()
        .await
        .with_context(|| format!("committing the copy in {target}"))?;
    // The planner's statistics of the copied tables: without them PostgreSQL plans the
    // ledger's lookups for empty tables until autovacuum gets to them.
    sqlx::query("ANALYZE")
        .execute(&mut pg)
        .await
        .with_context(|| format!("gathering planner statistics in {target}"))?;
    snapshot.rollback().await?;
    sqlite.close().await?;
    pg.close().await?;
    Ok(MigrationReport {
        tables,
        size,
        root,
        checkpoint,
        elapsed: started.elapsed(),
    })
}

/// The size, root and newest checkpoint of the checked copy.
type CopiedLog = (u64, Hash, Option<Checkpoint>);

/// Prepares the target, copies every table and checks the copy, all in the transaction `pg`.
async fn copy_and_check(
    snapshot: &mut SqliteConnection,
    pg: &mut PgConnection,
    source_rows: &HashMap<&'static str, u64>,
    verifier: &NoteVerifier,
    progress: &mut (dyn FnMut(Progress<'_>) + Send),
) -> anyhow::Result<(Vec<(&'static str, u64)>, CopiedLog)> {
    postgres::MIGRATOR
        .run(&mut *pg)
        .await
        .context("applying the PostgreSQL migrations (schema/postgres)")?;
    refuse_a_target_with_rows(pg).await?;
    let mut tables = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let columns = columns(snapshot, pg, table).await?;
        let total = source_rows[table];
        let copied = copy_table(snapshot, pg, table, &columns, total, progress)
            .await
            .with_context(|| format!("copying table {table}"))?;
        tables.push((table, copied));
    }
    restart_identities(pg).await?;
    check_row_counts(pg, source_rows, &tables).await?;
    let log = check_log(pg, verifier, progress).await?;
    Ok((tables, log))
}

/// The rows of each table in the snapshot, after checking that the database is of this
/// version's SQLite schema and holds exactly the tables copied.
async fn read_source(
    snapshot: &mut SqliteConnection,
) -> anyhow::Result<HashMap<&'static str, u64>> {
    let applied: BTreeSet<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT version FROM {MIGRATIONS_TABLE}"
    )))
    .fetch_all(&mut *snapshot)
    .await
    .context("not a tokenledger database (no migrations table)")?
    .into_iter()
    .collect();
    let known: BTreeSet<i64> = sqlite::MIGRATOR.iter().map(|m| m.version).collect();
    if let Some(unknown) = applied.difference(&known).next() {
        bail!("it was written by a newer tokenledger-server (migration {unknown} is unknown here)");
    }
    if let Some(missing) = known.difference(&applied).next() {
        bail!(
            "it lacks migration {missing}: start this version of tokenledger-server on it once \
             (it migrates the database at start), stop it, then migrate"
        );
    }
    let names: BTreeSet<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .fetch_all(&mut *snapshot)
    .await?
    .into_iter()
    .filter(|name: &String| name != MIGRATIONS_TABLE)
    .collect();
    let copied: BTreeSet<String> = TABLES.iter().map(|t| t.to_string()).collect();
    if names != copied {
        bail!(
            "its tables are not the ones this migration copies (not copied: {:?}; missing: \
             {:?})",
            names.difference(&copied).collect::<Vec<_>>(),
            copied.difference(&names).collect::<Vec<_>>()
        );
    }
    let mut rows = HashMap::new();
    for table in TABLES {
        let (count,): (i64,) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&mut *snapshot)
                .await?;
        rows.insert(table, count as u64);
    }
    Ok(rows)
}

/// Locks every table of the target's schema against writers until the copy commits, then
/// refuses the target if any of them holds a row: a migration makes a new database, it never
/// merges into one.
async fn refuse_a_target_with_rows(pg: &mut PgConnection) -> anyhow::Result<()> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
           AND table_name <> $1 ORDER BY table_name",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_all(&mut *pg)
    .await?;
    let list = names
        .iter()
        .map(|name| quoted(name))
        .collect::<Vec<_>>()
        .join(", ");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "LOCK TABLE {list} IN EXCLUSIVE MODE"
    )))
    .execute(&mut *pg)
    .await
    .context("locking the target's tables")?;
    let mut holding = Vec::new();
    for name in &names {
        let (any,): (bool,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM {})",
            quoted(name)
        )))
        .fetch_one(&mut *pg)
        .await?;
        if any {
            holding.push(name.as_str());
        }
    }
    if !holding.is_empty() {
        bail!(
            "the target database is not empty (rows in {}): migrate copies a ledger into an \
             empty database only (make a new one: createdb -O OWNER NAME)",
            holding.join(", ")
        );
    }
    Ok(())
}

/// What a column holds, by its PostgreSQL type: values are read from SQLite and bound as
/// arrays of this kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Integer,
    Text,
    Bytes,
}

impl Kind {
    fn of(pg_type: &str) -> Option<Kind> {
        match pg_type {
            "bigint" | "integer" | "smallint" => Some(Kind::Integer),
            "text" => Some(Kind::Text),
            "bytea" => Some(Kind::Bytes),
            _ => None,
        }
    }

    fn array_type(self) -> &'static str {
        match self {
            Kind::Integer => "bigint[]",
            Kind::Text => "text[]",
            Kind::Bytes => "bytea[]",
        }
    }
}

/// The columns of `table` with their kinds, in PostgreSQL's order, after checking that both
/// databases have the same ones.
async fn columns(
    snapshot: &mut SqliteConnection,
    pg: &mut PgConnection,
    table: &str,
) -> anyhow::Result<Vec<(String, Kind)>> {
    let target: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(&mut *pg)
    .await?;
    let source: BTreeSet<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?)")
        .bind(table)
        .fetch_all(&mut *snapshot)
        .await?
        .into_iter()
        .collect();
    let target_names: BTreeSet<String> = target.iter().map(|(name, _)| name.clone()).collect();
    if source != target_names {
        bail!(
            "table {table} has columns {source:?} in SQLite but {target_names:?} in PostgreSQL: \
             the two schemas of this tokenledger-server disagree"
        );
    }
    target
        .into_iter()
        .map(|(name, pg_type)| match Kind::of(&pg_type) {
            Some(kind) => Ok((name, kind)),
            None => bail!("column {table}.{name} is of type {pg_type}, which is not copied"),
        })
        .collect()
}

/// One batch of a column's values.
enum Values {
    Integer(Vec<Option<i64>>),
    Text(Vec<Option<String>>),
    Bytes(Vec<Option<Vec<u8>>>),
}

impl Values {
    fn new(kind: Kind) -> Values {
        match kind {
            Kind::Integer => Values::Integer(Vec::with_capacity(BATCH_ROWS)),
            Kind::Text => Values::Text(Vec::with_capacity(BATCH_ROWS)),
            Kind::Bytes => Values::Bytes(Vec::with_capacity(BATCH_ROWS)),
        }
    }

    /// Appends column `i` of a SQLite row.
    fn push(&mut self, row: &SqliteRow, i: usize) -> Result<(), sqlx::Error> {
        match self {
            Values::Integer(v) => v.push(row.try_get(i)?),
            Values::Text(v) => v.push(row.try_get(i)?),
            Values::Bytes(v) => v.push(row.try_get(i)?),
        }
        Ok(())
    }
}

/// Copies every row of `table` from the snapshot into the target, [`BATCH_ROWS`] per INSERT;
/// returns the number of rows copied.
async fn copy_table(
    snapshot: &mut SqliteConnection,
    pg: &mut PgConnection,
    table: &str,
    columns: &[(String, Kind)],
    total: u64,
    progress: &mut (dyn FnMut(Progress<'_>) + Send),
) -> anyhow::Result<u64> {
    let names = columns
        .iter()
        .map(|(name, _)| quoted(name))
        .collect::<Vec<_>>()
        .join(", ");
    let arrays = columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| format!("${}::{}", i + 1, kind.array_type()))
        .collect::<Vec<_>>()
        .join(", ");
    let select = format!("SELECT {names} FROM {table}");
    let insert = format!("INSERT INTO {table} ({names}) SELECT * FROM UNNEST({arrays})");
    let new_batch =
        || -> Vec<Values> { columns.iter().map(|(_, kind)| Values::new(*kind)).collect() };

    let mut rows = sqlx::query(sqlx::AssertSqlSafe(select)).fetch(&mut *snapshot);
    let mut batch = new_batch();
    let mut in_batch = 0;
    let mut copied = 0u64;
    loop {
        let row = rows.try_next().await?;
        if let Some(row) = &row {
            for (i, values) in batch.iter_mut().enumerate() {
                values.push(row, i)?;
            }
            in_batch += 1;
        }
        if in_batch == BATCH_ROWS || (row.is_none() && in_batch > 0) {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(insert.as_str()));
            for values in std::mem::replace(&mut batch, new_batch()) {
                query = match values {
                    Values::Integer(v) => query.bind(v),
                    Values::Text(v) => query.bind(v),
                    Values::Bytes(v) => query.bind(v),
                };
            }
            let written = query.execute(&mut *pg).await?.rows_affected();
            ensure!(
                written == in_batch as u64,
                "{written} rows written of a batch of {in_batch}"
            );
            copied += written;
            in_batch = 0;
            progress(Progress::Copied {
                table,
                copied,
                total,
            });
        }
        if row.is_none() {
            break;
        }
    }
    if copied == 0 {
        progress(Progress::Copied {
            table,
            copied,
            total,
        });
    }
    Ok(copied)
}

/// Sets each identity column's sequence past the largest id copied, so the next row the
/// server adds gets a new id.
async fn restart_identities(pg: &mut PgConnection) -> anyhow::Result<()> {
    let identities: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND is_identity = 'YES' \
           AND table_name = ANY($1) ORDER BY table_name",
    )
    .bind(TABLES.as_slice())
    .fetch_all(&mut *pg)
    .await?;
    for (table, column) in identities {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT setval(pg_get_serial_sequence($1, $2), \
             COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)",
            column = quoted(&column),
            table = quoted(&table),
        )))
        .bind(&table)
        .bind(&column)
        .execute(&mut *pg)
        .await
        .with_context(|| format!("restarting the identity of {table}.{column}"))?;
    }
    Ok(())
}

/// Each table of the copy holds as many rows as in the snapshot.
async fn check_row_counts(
    pg: &mut PgConnection,
    source_rows: &HashMap<&'static str, u64>,
    tables: &[(&'static str, u64)],
) -> anyhow::Result<()> {
    let mut differences = Vec::new();
    for (table, copied) in tables {
        let (count,): (i64,) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&mut *pg)
                .await?;
        let source = source_rows[table];
        if count as u64 != source || *copied != source {
            differences.push(format!(
                "{table}: {source} rows in SQLite, {copied} copied, {count} in the copy"
            ));
        }
    }
    if !differences.is_empty() {
        bail!("the copy's row counts differ: {}", differences.join("; "));
    }
    Ok(())
}

/// Checks the copied log (see the module's documentation) and returns its size, root and
/// newest checkpoint.
async fn check_log(
    pg: &mut PgConnection,
    verifier: &NoteVerifier,
    progress: &mut (dyn FnMut(Progress<'_>) + Send),
) -> anyhow::Result<CopiedLog> {
    let (rows, size): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(MAX(idx) + 1, 0) FROM \
         (SELECT idx FROM entries UNION ALL SELECT idx FROM redacted_entries) AS e",
    )
    .fetch_one(&mut *pg)
    .await?;
    let size = size as u64;
    ensure!(
        rows as u64 == size,
        "the log has {rows} entries (stored or redacted) at indexes 0 to {size} (exclusive): \
         some are missing; run `tokenledger-server fsck` on the SQLite ledger"
    );
    let (stored,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM hashes")
        .fetch_one(&mut *pg)
        .await?;
    ensure!(
        stored as u64 == merkle::stored_hash_count(size),
        "a log of {size} entries has {} stored hashes, the copy {stored}",
        merkle::stored_hash_count(size)
    );
    let (differing,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM upper_hashes u LEFT JOIN hashes h ON h.idx = u.idx \
         WHERE h.hash IS DISTINCT FROM u.hash",
    )
    .fetch_one(&mut *pg)
    .await?;
    ensure!(
        differing == 0,
        "{differing} rows of upper_hashes differ from their stored hashes"
    );
    let checkpoint = newest_checkpoint(pg, verifier, size).await?;
    let root = check_tree(pg, size, checkpoint.as_ref(), progress).await?;
    Ok((size, root, checkpoint))
}

/// The copy's newest checkpoint, opened with `verifier`, its root checked against the copy's
/// stored hashes at its size.
async fn newest_checkpoint(
    pg: &mut PgConnection,
    verifier: &NoteVerifier,
    log_size: u64,
) -> anyhow::Result<Option<Checkpoint>> {
    let newest: Option<(i64, String)> =
        sqlx::query_as("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1")
            .fetch_optional(&mut *pg)
            .await?;
    let Some((size, note)) = newest else {
        ensure!(
            log_size == 0,
            "no signed checkpoint is stored for a log of {log_size} entries, so the copy \
             cannot be checked: start the server on the SQLite ledger once and stop it (it \
             stores one at shutdown), then migrate"
        );
        return Ok(None);
    };
    let checkpoint = ownership::open(size as u64, &note, verifier, log_size)?;
    let indexes = merkle::tree_hash_indexes(checkpoint.size);
    let rows: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT idx, hash FROM hashes WHERE idx = ANY($1)")
            .bind(indexes.iter().map(|i| *i as i64).collect::<Vec<_>>())
            .fetch_all(&mut *pg)
            .await?;
    let found: HashMap<u64, Vec<u8>> = rows.into_iter().map(|(i, h)| (i as u64, h)).collect();
    let hashes = indexes
        .iter()
        .map(|index| {
            let bytes = found
                .get(index)
                .with_context(|| format!("stored hash {index} is missing"))?;
            Hash::from_slice(bytes).with_context(|| format!("stored hash {index}"))
        })
        .collect::<anyhow::Result<Vec<Hash>>>()?;
    ownership::check_root(&checkpoint, &hashes)?;
    Ok(Some(checkpoint))
}

/// Reads every leaf and stored hash of the copy back, [`CHECK_LEAVES`] leaves at a time,
/// checks each leaf against its stored leaf hash and each stored hash against the tree the
/// leaves build, and the rebuilt root at the checkpoint's size against the checkpoint's.
/// Returns the root of the whole copied tree.
async fn check_tree(
    pg: &mut PgConnection,
    size: u64,
    checkpoint: Option<&Checkpoint>,
    progress: &mut (dyn FnMut(Progress<'_>) + Send),
) -> anyhow::Result<Hash> {
    let decoders = Arc::new(LeafDecoders::default());
    let dictionaries: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT id, dictionary FROM leaf_dictionaries")
            .fetch_all(&mut *pg)
            .await?;
    for (id, bytes) in dictionaries {
        decoders.install(id, &bytes)?;
    }
    let mut tree = TreeCheck {
        frontier: Frontier::new(),
        checkpoint: checkpoint.cloned(),
    };
    let mut start = 0;
    while start < size {
        let end = size.min(start + CHECK_LEAVES);
        let leaves: Vec<PgRow> = sqlx::query(
            "SELECT idx, leaf, dictionary, leaf_hash FROM entries_with_leaf_hash \
             WHERE idx >= $1 AND idx < $2 \
             UNION ALL SELECT idx, NULL, NULL, NULL FROM redacted_entries \
             WHERE idx >= $1 AND idx < $2 ORDER BY idx",
        )
        .bind(start as i64)
        .bind(end as i64)
        .fetch_all(&mut *pg)
        .await?;
        let hashes: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT idx, hash FROM hashes WHERE idx >= $1 AND idx < $2 ORDER BY idx",
        )
        .bind(merkle::stored_hash_count(start) as i64)
        .bind(merkle::stored_hash_count(end) as i64)
        .fetch_all(&mut *pg)
        .await?;
        let chunk = Chunk {
            start,
            leaves: leaves
                .into_iter()
                .map(|row| {
                    Ok(StoredLeaf {
                        index: row.try_get::<i64, _>(0)? as u64,
                        bytes: row.try_get(1)?,
                        dictionary: row.try_get(2)?,
                        leaf_hash: row.try_get(3)?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()?,
            hashes,
        };
        let decoders = decoders.clone();
        tree = tokio::task::spawn_blocking(move || tree.check(&decoders, chunk))
            .await
            .context("checking leaves")??;
        progress(Progress::Checked { entries: end, size });
        start = end;
    }
    Ok(tree.frontier.root())
}

/// A leaf of the copy as read back through `entries_with_leaf_hash`; a redacted entry has
/// no bytes, dictionary or leaf hash beside its stored hashes.
struct StoredLeaf {
    index: u64,
    bytes: Option<Vec<u8>>,
    dictionary: Option<i64>,
    leaf_hash: Option<Vec<u8>>,
}

/// Leaves `start..` of the copy and the stored hashes their appends wrote, in index order.
struct Chunk {
    start: u64,
    leaves: Vec<StoredLeaf>,
    hashes: Vec<(i64, Vec<u8>)>,
}

/// The tree rebuilt from the copy's leaves so far.
struct TreeCheck {
    frontier: Frontier,
    checkpoint: Option<Checkpoint>,
}

impl TreeCheck {
    /// Checks the leaves of `chunk`, appends them, and compares every stored hash their
    /// appends give, and the root at the checkpoint's size, with the copy's.
    fn check(mut self, decoders: &LeafDecoders, chunk: Chunk) -> anyhow::Result<TreeCheck> {
        let mut stored = chunk.hashes.into_iter().peekable();
        for (n, leaf) in (chunk.start..).zip(chunk.leaves) {
            ensure!(leaf.index == n, "entry {n} is missing");
            let leaf_hash = match leaf.bytes {
                Some(bytes) => {
                    decoders
                        .checked(leaf.dictionary, bytes, leaf.leaf_hash.as_deref())
                        .map_err(|problem| anyhow::anyhow!("entry {n}: {problem}"))?;
                    leaf.leaf_hash.unwrap_or_default()
                }
                // Redacted: its stored leaf hash, the next stored hash, is all there is.
                None => match stored.peek() {
                    Some((at, bytes)) if *at as u64 == merkle::stored_hash_index(0, n) => {
                        bytes.clone()
                    }
                    _ => bail!("the stored leaf hash of redacted entry {n} is missing"),
                },
            };
            let leaf_hash = Hash::from_slice(&leaf_hash)
                .with_context(|| format!("the stored leaf hash of entry {n}"))?;
            for (index, hash) in self.frontier.append(leaf_hash) {
                match stored.next() {
                    Some((at, bytes)) if at as u64 == index && bytes == hash.0 => {}
                    Some((at, _)) if at as u64 == index => {
                        bail!("stored hash {index} is not the hash of the subtree the leaves give")
                    }
                    _ => bail!("stored hash {index} is missing"),
                }
            }
            if let Some(checkpoint) = &self.checkpoint
                && checkpoint.size == self.frontier.size()
            {
                ensure!(
                    self.frontier.root() == checkpoint.root,
                    "the leaves give root {} at size {}, but the newest checkpoint says {}",
                    self.frontier.root().to_base64(),
                    checkpoint.size,
                    checkpoint.root.to_base64()
                );
            }
        }
        Ok(self)
    }
}

/// An identifier as PostgreSQL quotes it (the names come from the catalogs).
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests;
