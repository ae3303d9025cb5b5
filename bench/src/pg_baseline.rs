//! Same-run baselines on PostgreSQL, each in a fresh database of its own on the server of
//! `--database`: the rows a server wrote inserted raw (one plain table, no ledger), the same
//! rows through the ledger's PostgreSQL writer alone (no server), and durable one-entry
//! commits through that writer: the floors under the PostgreSQL figures.

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

use crate::bulk::{BulkRow, BulkWriter, Timeline, preload_row};
use crate::pg::{BenchDatabase, PgServer};
use crate::report::Percentiles;
use crate::workload::Workload;

/// The plain table of the raw baseline: every field of an issuance row as the server
/// receives it, the canonical leaf uncompressed, a primary key and no other index.
const RAW_TABLE: &str = "CREATE TABLE raw_issuances (idx BIGINT PRIMARY KEY, \
                         logged_at BIGINT NOT NULL, jti TEXT NOT NULL, iss TEXT NOT NULL, \
                         sub TEXT NOT NULL, vo TEXT NOT NULL, client_id TEXT, \
                         leaf BYTEA NOT NULL, leaf_hash BYTEA NOT NULL)";

/// The writer's statement shape: one multi-row `INSERT ... SELECT * FROM UNNEST(arrays)`.
const RAW_INSERT: &str = "INSERT INTO raw_issuances \
                          SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], \
                          $4::text[], $5::text[], $6::text[], $7::text[], $8::bytea[], \
                          $9::bytea[])";

/// `CHECKPOINT` on the server, so that a run does not inherit the writes the one before left
/// to PostgreSQL's checkpointer; best effort (it needs a superuser or `pg_checkpoint`).
pub async fn checkpoint(db: &BenchDatabase) {
    let done = async {
        let mut conn = db.connect().await?;
        sqlx::query("CHECKPOINT").execute(&mut conn).await?;
        conn.close().await?;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = done {
        crate::progress(&format!(
            "postgres: CHECKPOINT failed (not measured): {e:#}"
        ));
    }
}

/// Rows per second of `rows` inserted into a plain table of a fresh database, `batch` a
/// transaction, each one multi-row statement, `synchronous_commit = on`. Only the inserts
/// and commits are timed.
pub async fn raw_insert_rate(
    server: &PgServer,
    rows: &[BulkRow],
    batch: usize,
) -> anyhow::Result<f64> {
    anyhow::ensure!(!rows.is_empty(), "no rows to insert");
    let db = BenchDatabase::create(server).await?;
    let mut conn = db.connect().await?;
    sqlx::query(RAW_TABLE).execute(&mut conn).await?;
    sqlx::query("SET synchronous_commit = on")
        .execute(&mut conn)
        .await?;
    checkpoint(&db).await;
    let start = Instant::now();
    for (n, chunk) in rows.chunks(batch.max(1)).enumerate() {
        let first = (n * batch.max(1)) as i64;
        insert_raw(&mut conn, first, chunk).await?;
    }
    let elapsed = start.elapsed();
    conn.close().await?;
    Ok(rows.len() as f64 / elapsed.as_secs_f64())
}

/// One transaction: `chunk` as rows `first..`.
async fn insert_raw(conn: &mut PgConnection, first: i64, chunk: &[BulkRow]) -> anyhow::Result<()> {
    let indexes: Vec<i64> = (first..first + chunk.len() as i64).collect();
    let logged_at: Vec<i64> = chunk.iter().map(|r| r.logged_at).collect();
    let jtis: Vec<&str> = chunk.iter().map(|r| r.key.jti.as_str()).collect();
    let issuers: Vec<&str> = chunk.iter().map(|r| r.key.iss.as_str()).collect();
    let subs: Vec<&str> = chunk.iter().map(|r| r.key.sub.as_str()).collect();
    let vos: Vec<&str> = chunk.iter().map(|r| r.key.vo.as_str()).collect();
    let clients: Vec<Option<&str>> = chunk.iter().map(|r| r.key.client_id.as_deref()).collect();
    let leaves: Vec<&[u8]> = chunk.iter().map(|r| r.leaf.as_slice()).collect();
    let hashes: Vec<&[u8]> = chunk.iter().map(|r| r.leaf_hash.0.as_slice()).collect();
    let mut tx = conn.begin().await?;
    sqlx::query(RAW_INSERT)
        .bind(indexes)
        .bind(logged_at)
        .bind(jtis)
        .bind(issuers)
        .bind(subs)
        .bind(vos)
        .bind(clients)
        .bind(leaves)
        .bind(hashes)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Rows per second of `rows` written through the ledger's PostgreSQL writer alone (taken
/// through the writer lease, as a server takes it) into a fresh ledger database, `batch` a
/// transaction: what the server's writer does, without HTTP, verification or the sequencer.
pub async fn writer_insert_rate(
    server: &PgServer,
    rows: &[BulkRow],
    batch: usize,
) -> anyhow::Result<f64> {
    anyhow::ensure!(!rows.is_empty(), "no rows to insert");
    let db = BenchDatabase::create(server).await?;
    let mut writer = BulkWriter::open_postgres(db.url()).await?;
    checkpoint(&db).await;
    let start = Instant::now();
    let mut paused = Duration::ZERO;
    for chunk in rows.chunks(batch.max(1)) {
        paused += writer.write(chunk).await?;
    }
    let elapsed = start.elapsed() - paused;
    writer.close().await?;
    Ok(rows.len() as f64 / elapsed.as_secs_f64())
}

/// Latency of `samples` durable one-entry transactions (an issuance entry, its stored hashes
/// and lookup rows) through the ledger's PostgreSQL writer, one after the other, in a fresh
/// database: the floor under any answer that waits for a log append.
pub async fn durable_commit(server: &PgServer, samples: usize) -> anyhow::Result<Percentiles> {
    let workload = Workload::standard();
    let timeline = Timeline::ending_at(1_700_000_000_000_000, samples as u64);
    let rows = (0..samples as u64)
        .map(|i| preload_row(&workload, &timeline, i))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let db = BenchDatabase::create(server).await?;
    let mut writer = BulkWriter::open_postgres(db.url()).await?;
    let mut latencies = Vec::with_capacity(rows.len());
    for row in &rows {
        let start = Instant::now();
        let paused = writer.write(std::slice::from_ref(row)).await?;
        latencies.push(start.elapsed() - paused);
    }
    writer.close().await?;
    Percentiles::of(&mut latencies).ok_or_else(|| anyhow::anyhow!("no commit was timed"))
}
