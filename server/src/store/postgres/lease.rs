//! [`PostgresLease`]: the writer lease of a PostgreSQL ledger, behind [`WriterLease`]. Any
//! number of servers share the database; the one whose writer connection holds the session
//! advisory lock [`LEASE_KEY`] is the writer, and records its name in `writer_lease` once its
//! session is set up; a name counts only while the backend that wrote it holds the lock.
//!
//! Safety: the lock belongs to the writer's connection, and every append runs on that
//! connection ([`PostgresWriter`] never reconnects). When the connection dies (the process
//! is killed, the host or network fails and the database's keepalives drop it, the database
//! restarts or fails over), PostgreSQL releases the lock, and the old writer's next append
//! fails on the dead connection before another server can take the lock: never two writers,
//! never a fork. A writer whose batch failed opens the log again
//! ([`LedgerWriter::open_log`](crate::store::LedgerWriter::open_log)), which fails unless its
//! connection still holds the lock.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{Connection, PgConnection};
use tokio::sync::Mutex;

use super::connection::{DatabaseUrl, connect_writable};
use super::writer::PostgresWriter;
use crate::clock::{Clock, SystemClock};
use crate::store::leaf_codec::LeafDecoders;
use crate::store::{LedgerWriter, StoreError, WriterLease};

/// The key of the advisory lock that is the writer lease: the ASCII bytes of `tlwriter`, a
/// fixed 64-bit number no other application on the database is expected to lock.
pub const LEASE_KEY: i64 = i64::from_be_bytes(*b"tlwriter");

/// How long taking the lock may take once connected.
const LOCK_DEADLINE: Duration = Duration::from_secs(10);
/// How long asking who the writer is may take: past it the writer is unknown.
const HOLDER_DEADLINE: Duration = Duration::from_secs(2);

/// `pg_locks` shows a bigint advisory key as its high and low 32 bits, with objsubid 1: the
/// condition on a `pg_locks` row `l` that it is the lease's, granted (keys `$1`, `$2`).
const LEASE_LOCK: &str = "l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
    AND l.classid::bigint = $1 AND l.objid::bigint = $2";

/// The two halves of [`LEASE_KEY`] as `pg_locks` shows them.
fn key_halves() -> (i64, i64) {
    let key = LEASE_KEY as u64;
    ((key >> 32) as i64, (key & 0xffff_ffff) as i64)
}
/// The writer lease of the ledger at a PostgreSQL URL.
pub struct PostgresLease {
    url: DatabaseUrl,
    decoders: Arc<LeafDecoders>,
    compress_after: usize,
    /// A connection kept for [`WriterLease::holder`], which standbys ask on every refused
    /// write; dropped on any error and made again on the next call.
    reader: Mutex<Option<PgConnection>>,
}

impl PostgresLease {
    /// The lease of the ledger at `url`; its writer stores leaves raw until `compress_after`
    /// are logged (0: always), and `decoders` (the readers') learn its dictionaries.
    pub fn new(url: DatabaseUrl, decoders: Arc<LeafDecoders>, compress_after: usize) -> Self {
        PostgresLease {
            url,
            decoders,
            compress_after,
            reader: Mutex::new(None),
        }
    }
}

#[async_trait]
impl WriterLease for PostgresLease {
    async fn try_acquire(&self, holder: &str) -> Result<Option<Box<dyn LedgerWriter>>, StoreError> {
        let (mut conn, _) = connect_writable(&self.url).await?;
        let lock = sqlx::query_as::<_, (bool,)>("SELECT pg_try_advisory_lock($1)")
            .bind(LEASE_KEY)
            .fetch_one(&mut conn);
        let (taken,) = match tokio::time::timeout(LOCK_DEADLINE, lock).await {
            Ok(taken) => taken?,
            Err(_) => {
                return Err(StoreError::Db(format!(
                    "the database did not answer within {} s when asked for the writer lease",
                    LOCK_DEADLINE.as_secs()
                )));
            }
        };
        if !taken {
            let _ = conn.close().await;
            return Ok(None);
        }
        // From here on, dropping `conn` (or the writer) on an error closes it, which releases
        // the lock.
        let mut writer =
            PostgresWriter::on_lease(conn, &self.url, self.decoders.clone(), self.compress_after)
                .await?;
        writer
            .record_holder(holder, SystemClock.now_micros())
            .await?;
        tracing::info!(database = %self.url, "took the writer lease");
        Ok(Some(Box::new(writer)))
    }

    /// `None` too when no session holds the lease's lock (the writer died and no other took
    /// over yet, or the one that did has not recorded its name yet), and when the database
    /// does not answer within [`HOLDER_DEADLINE`]: the writer is then unknown.
    async fn holder(&self) -> Result<Option<String>, StoreError> {
        let mut reader = self.reader.lock().await;
        let asked = async {
            let conn = match reader.as_mut() {
                Some(conn) => conn,
                None => reader.insert(connect_writable(&self.url).await?.0),
            };
            let (high, low) = key_halves();
            let found = sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(format!(
                "SELECT w.holder FROM writer_lease w JOIN pg_locks l ON l.pid = w.pid \
                 WHERE w.id = 1 AND l.database = \
                 (SELECT oid FROM pg_database WHERE datname = current_database()) AND {LEASE_LOCK}"
            )))
            .bind(high)
            .bind(low)
            .fetch_optional(conn)
            .await?;
            Ok::<_, StoreError>(found.map(|(holder,)| holder))
        };
        match tokio::time::timeout(HOLDER_DEADLINE, asked).await {
            Ok(Ok(holder)) => Ok(holder),
            Ok(Err(e)) => {
                *reader = None;
                Err(e)
            }
            Err(_) => {
                *reader = None;
                tracing::warn!(
                    database = %self.url,
                    "the database did not say who the writer is within {} s",
                    HOLDER_DEADLINE.as_secs()
                );
                Ok(None)
            }
        }
    }
}

/// Records `holder` (since `since`, unix microseconds) as the writer, with the backend of
/// `conn`, which holds the lock.
pub(super) async fn record_holder(
    conn: &mut PgConnection,
    holder: &str,
    since: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO writer_lease (id, holder, since, pid) VALUES (1, $1, $2, pg_backend_pid()) \
         ON CONFLICT (id) DO UPDATE SET holder = EXCLUDED.holder, since = EXCLUDED.since, \
         pid = EXCLUDED.pid",
    )
    .bind(holder)
    .bind(since)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether the session of `conn` holds the writer lease's lock.
pub(super) async fn holds_lease(conn: &mut PgConnection) -> Result<bool, StoreError> {
    let (high, low) = key_halves();
    let (held,): (bool,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = pg_backend_pid() AND {LEASE_LOCK})"
    )))
    .bind(high)
    .bind(low)
    .fetch_one(conn)
    .await?;
    Ok(held)
}
