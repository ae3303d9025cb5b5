//! A revoke's fence: after a change to `credentials` has committed, waits until no server can
//! still use a credential it held from before. A payload is notified on the credentials'
//! channel (after the change, so every listener hears the change first); each listening
//! server drops what it holds and answers on [`HEARD_CHANNEL`]; the fence returns once every
//! listener session then on the database has answered or gone, and in any case after
//! [`LEASE`], when a server that has not heard has also stopped using what it holds.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::PgListener;

use super::credential_cache::{APPLICATION_NAME, CHANNEL, HEARD_CHANNEL, LEASE};

/// How often the listener sessions still to answer are looked up again.
const RECHECK_EVERY: Duration = Duration::from_millis(50);

/// How a fence ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fenced {
    /// Every listening server answered.
    Heard,
    /// Some server did not answer, or none could be asked: the fence waited out [`LEASE`],
    /// so none uses what it held before.
    WaitedOut,
}

/// Fences the changes committed so far on `pool`'s database (see the module's docs).
pub async fn fence(pool: &PgPool) -> Fenced {
    let deadline = Instant::now() + LEASE;
    match tokio::time::timeout(LEASE, heard_by_all(pool)).await {
        Ok(Ok(())) => Fenced::Heard,
        Ok(Err(problem)) => {
            tracing::warn!(%problem, "a revoke could not ask the servers to confirm it");
            tokio::time::sleep_until(deadline.into()).await;
            Fenced::WaitedOut
        }
        Err(_) => Fenced::WaitedOut,
    }
}

/// Sends a fence and waits until every listener session on the database has answered it
/// or gone. One connection does it all.
async fn heard_by_all(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut answers = PgListener::connect_with(pool).await?;
    answers.listen(HEARD_CHANNEL).await?;
    let payload = fence_payload();
    // When the fence was sent (the database's clock): a session that started later listens
    // from after the fence and holds nothing from before it.
    let sent_at: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM clock_timestamp())::float8 FROM pg_notify($1, $2)",
    )
    .bind(CHANNEL)
    .bind(&payload)
    .fetch_one(&mut answers)
    .await?;
    let mut answered = HashSet::new();
    loop {
        let waiting: Vec<i32> = listeners(&mut answers, sent_at)
            .await?
            .into_iter()
            .filter(|pid| !answered.contains(pid))
            .collect();
        if waiting.is_empty() {
            return Ok(());
        }
        let next = tokio::time::timeout(RECHECK_EVERY, answers.recv()).await;
        if let Ok(notification) = next {
            let notification = notification?;
            if notification.payload() == payload {
                answered.insert(notification.process_id() as i32);
            }
        }
    }
}

/// The process ids of the listener sessions on the database that started before `before`
/// (seconds since the epoch, the database's clock), or whose start this role may not see
/// (another role's, without `pg_read_all_stats`): those are waited for.
async fn listeners<'c>(
    on: impl sqlx::Executor<'c, Database = sqlx::Postgres>,
    before: f64,
) -> Result<Vec<i32>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = $1 \
         AND (backend_start IS NULL OR extract(epoch FROM backend_start)::float8 < $2)",
    )
    .bind(APPLICATION_NAME)
    .bind(before)
    .fetch_all(on)
    .await
}

/// A payload no other fence has: the time and random bits.
fn fence_payload() -> String {
    let mut random = [0u8; 8];
    let random = match getrandom::fill(&mut random) {
        Ok(()) => u64::from_be_bytes(random),
        Err(_) => 0,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("fence:{now:x}:{random:016x}")
}
