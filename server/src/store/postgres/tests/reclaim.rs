//! Space given back on PostgreSQL: after a redaction, the vacuum of the tables it deleted
//! from lets the log's next entries reuse the space of the redacted ones.

use sqlx::PgPool;

use super::{ledger, open_url, writer};
use crate::store::conformance::{TestLog, Written, redact};
use crate::store::{Reclaimed, Reclaimer};

/// Bytes of the main fork of `entries` and of `issuances`.
async fn size(pool: &PgPool) -> i64 {
    let (bytes,): (i64,) = sqlx::query_as(
        "SELECT pg_relation_size('entries') + pg_relation_size('issuances')::bigint",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    bytes
}

/// `count` issuances of distinct jtis, starting at number `from`.
fn issuances(from: usize, count: usize) -> Vec<Written> {
    (from..from + count)
        .map(|n| {
            let jti: &'static str = format!("jti-{n:08}-{}", "x".repeat(64)).leak();
            Written::Issuance(jti, "alice")
        })
        .collect()
}

/// 2,000 issuances redacted, vacuumed, and 2,000 more logged: the tables are no larger than
/// before the redaction (without the vacuum they double, the dead rows' space unused).
#[tokio::test]
async fn after_the_vacuum_new_entries_reuse_the_space_of_redacted_ones() {
    let (_db, url, pool) = ledger().await;
    let mut writer = writer(&url, 0).await;
    let store = open_url(&url).await;
    let mut log = TestLog::default();
    let batch = 500;
    for n in 0..4 {
        log.append(writer.as_mut(), issuances(n * batch, batch))
            .await
            .unwrap();
    }
    let filled = size(&pool).await;

    log.append(writer.as_mut(), vec![redact(&[(0, 2_000)], 9)])
        .await
        .unwrap();
    assert_eq!(store.reclaim_step().await.unwrap(), Reclaimed::Done);

    for n in 4..8 {
        log.append(writer.as_mut(), issuances(n * batch, batch))
            .await
            .unwrap();
    }
    let refilled = size(&pool).await;
    assert!(
        refilled <= filled + filled / 10,
        "{refilled} bytes after the refill, {filled} before the redaction"
    );
    store.close().await;
}
