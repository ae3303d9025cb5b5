//! A revoke's fence: after a change to `credentials` has committed, waits until no server can
//! still use a credential it held from before. A payload is notified on the credentials'
//! channel (after the change, so every listener hears the change first); each listening
//! server drops what it holds and answers on [`HEARD_CHANNEL`]; the fence returns once every
//! listener session then on the database has answered, and otherwise (one did not answer,
//! or went without answering: its server may not have noticed yet) after [`LEASE`] and a
//! margin, when a server that has not heard has also stopped using what it holds.
//!
//! A listener session that ended before the fence looked (killed by the database, say) is
//! not waited for: its server drops what it holds when it reads the connection's end,
//! within milliseconds on a working network.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::PgListener;

use super::credential_cache::{APPLICATION_NAME, CHANNEL, HEARD_CHANNEL, LEASE};

/// How often the listener sessions still to answer are looked up again.
const RECHECK_EVERY: Duration = Duration::from_millis(50);
/// Added to [`LEASE`] when the fence waits it out: the servers' clocks and this one's may
/// run slightly apart.
const MARGIN: Duration = Duration::from_millis(100);

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
    let deadline = Instant::now() + LEASE + MARGIN;
    let fenced = match tokio::time::timeout_at(deadline.into(), heard_by_all(pool)).await {
        Ok(Ok(Heard::ByAll)) => return Fenced::Heard,
        Ok(Ok(Heard::NotByAll)) => Fenced::WaitedOut,
        Ok(Err(problem)) => {
            tracing::warn!(%problem, "a revoke could not ask the servers to confirm it");
            Fenced::WaitedOut
        }
        Err(_) => Fenced::WaitedOut,
    };
    tokio::time::sleep_until(deadline.into()).await;
    fenced
}

/// Whether every listener session answered.
enum Heard {
    ByAll,
    /// One went without answering.
    NotByAll,
}

/// Sends a fence and waits until every listener session on the database has answered it
/// or gone. One connection does it all.
async fn heard_by_all(pool: &PgPool) -> Result<Heard, sqlx::Error> {
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
    let mut waited_for = HashSet::new();
    loop {
        let listening: HashSet<i32> = listeners(&mut answers, sent_at)
            .await?
            .into_iter()
            .collect();
        let gone_unanswered = waited_for
            .iter()
            .any(|pid| !listening.contains(pid) && !answered.contains(pid));
        if gone_unanswered {
            return Ok(Heard::NotByAll);
        }
        waited_for.extend(listening.iter().filter(|pid| !answered.contains(*pid)));
        if waited_for.iter().all(|pid| answered.contains(pid)) {
            return Ok(Heard::ByAll);
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
