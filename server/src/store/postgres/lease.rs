//! [`PostgresLease`]: the writer lease of a PostgreSQL ledger, behind [`WriterLease`]. Any
//! number of servers share the database; the one whose writer connection holds the session
//! advisory lock [`LEASE_KEY`] is the writer, and records its name in `writer_lease`.
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
        let (taken,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
            .bind(LEASE_KEY)
            .fetch_one(&mut conn)
            .await?;
        if !taken {
            let _ = conn.close().await;
            return Ok(None);
        }
        // From here on, dropping `conn` on an error closes it, which releases the lock.
        sqlx::query(
            "INSERT INTO writer_lease (id, holder, since) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET holder = EXCLUDED.holder, since = EXCLUDED.since",
        )
        .bind(holder)
        .bind(SystemClock.now_micros())
        .execute(&mut conn)
        .await?;
        let writer =
            PostgresWriter::on_lease(conn, self.decoders.clone(), self.compress_after).await?;
        tracing::info!(database = %self.url, "took the writer lease");
        Ok(Some(Box::new(writer)))
    }

    async fn holder(&self) -> Result<Option<String>, StoreError> {
        let mut reader = self.reader.lock().await;
        let conn = match reader.as_mut() {
            Some(conn) => conn,
            None => reader.insert(connect_writable(&self.url).await?.0),
        };
        let found = sqlx::query_as::<_, (String,)>("SELECT holder FROM writer_lease WHERE id = 1")
            .fetch_optional(conn)
            .await;
        match found {
            Ok(row) => Ok(row.map(|(holder,)| holder)),
            Err(e) => {
                *reader = None;
                Err(e.into())
            }
        }
    }
}

/// Whether the session of `conn` holds the writer lease's lock.
pub(super) async fn holds_lease(conn: &mut PgConnection) -> Result<bool, StoreError> {
    // pg_locks shows a bigint key as its high and low 32 bits, with objsubid 1.
    let key = LEASE_KEY as u64;
    let (held,): (bool,) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
         AND pid = pg_backend_pid() AND granted AND objsubid = 1 \
         AND classid::bigint = $1 AND objid::bigint = $2)",
    )
    .bind((key >> 32) as i64)
    .bind((key & 0xffff_ffff) as i64)
    .fetch_one(conn)
    .await?;
    Ok(held)
}
