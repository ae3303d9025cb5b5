//! Issuances of a set of identities, newest first, read from `issuances_by_identity_epoch`
//! one window of epochs at a time.

use std::ops::RangeInclusive;

use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use super::log;
use crate::store::StoreError;
use crate::store::identity_epochs::{EPOCH_SHIFT, epoch_windows};

/// Identities (and perhaps a client) whose issuances are wanted, as the ids `issuances`
/// stores.
#[derive(Debug)]
pub struct IdentityScan {
    identities: Vec<i64>,
    client: Option<i64>,
}

impl IdentityScan {
    /// The scan for `identities` `(iss, sub)` of `vo`, narrowed to OAuth client `client_id`
    /// if given; `None` if none of the identities, or not the client, is known (nothing can
    /// match).
    pub async fn resolve(
        pool: &SqlitePool,
        vo: &str,
        identities: &[(String, String)],
        client_id: Option<&str>,
    ) -> Result<Option<IdentityScan>, StoreError> {
        if identities.is_empty() {
            return Ok(None);
        }
        let mut q = QueryBuilder::<Sqlite>::new("SELECT d.id FROM (");
        q.push_values(identities, |mut row, (iss, sub)| {
            row.push_bind(iss).push_bind(sub);
        });
        q.push(") k JOIN identities d ON d.iss = k.column1 AND d.sub = k.column2 AND d.vo = ")
            .push_bind(vo);
        let ids: Vec<(i64,)> = q.build_query_as().fetch_all(pool).await?;
        if ids.is_empty() {
            return Ok(None);
        }
        let client = match client_id {
            None => None,
            Some(client_id) => {
                let id: Option<(i64,)> =
                    sqlx::query_as("SELECT id FROM clients WHERE vo = ? AND client_id = ?")
                        .bind(vo)
                        .bind(client_id)
                        .fetch_optional(pool)
                        .await?;
                match id {
                    Some((id,)) => Some(id),
                    None => return Ok(None),
                }
            }
        };
        Ok(Some(IdentityScan {
            identities: ids.into_iter().map(|(id,)| id).collect(),
            client,
        }))
    }

    /// Log indexes of up to `limit` matching issuances below index `top` (at most the log's
    /// size: see [`log_top`]), newest first.
    pub async fn newest(
        &self,
        pool: &SqlitePool,
        top: u64,
        limit: u32,
    ) -> Result<Vec<u64>, StoreError> {
        let mut found = Vec::new();
        for window in epoch_windows(top) {
            if found.len() >= limit as usize {
                break;
            }
            let wanted = i64::from(limit) - found.len() as i64;
            let rows: Vec<(i64,)> = self
                .window_query(window, top, wanted)
                .build_query_as()
                .fetch_all(pool)
                .await?;
            found.extend(rows.into_iter().map(|(index,)| index as u64));
        }
        Ok(found)
    }

    /// Up to `limit` matching issuances in the epochs of `window`, below index `top`, newest
    /// first.
    fn window_query(
        &self,
        window: RangeInclusive<u64>,
        top: u64,
        limit: i64,
    ) -> QueryBuilder<Sqlite> {
        let mut q = QueryBuilder::new(format!(
            "SELECT i.idx FROM issuances i INDEXED BY issuances_by_identity_epoch \
             WHERE (i.idx >> {EPOCH_SHIFT}) IN \
             (WITH RECURSIVE epoch(n) AS (SELECT "
        ));
        q.push_bind(*window.end() as i64)
            .push(" UNION ALL SELECT n - 1 FROM epoch WHERE n > ")
            .push_bind(*window.start() as i64)
            .push(") SELECT n FROM epoch) AND i.identity IN ");
        self.push_identities(&mut q);
        if let Some(client) = self.client {
            q.push(" AND i.client = ").push_bind(client);
        }
        q.push(" AND i.idx < ")
            .push_bind(top as i64)
            .push(" ORDER BY i.idx DESC LIMIT ")
            .push_bind(limit);
        q
    }

    /// Pushes the identity ids as a parenthesised list, for `IN`.
    pub fn push_identities(&self, q: &mut QueryBuilder<Sqlite>) {
        q.push("(");
        let mut list = q.separated(", ");
        for id in &self.identities {
            list.push_bind(*id);
        }
        q.push(")");
    }
}

/// `before`, or the log's size if that is smaller (also when `before` is `None`): the
/// windows of a scan then start at the log's newest epoch, whatever a caller asks for.
pub async fn log_top(pool: &SqlitePool, before: Option<u64>) -> Result<u64, StoreError> {
    let size = log::log_size(pool).await?;
    Ok(before.map_or(size, |before| before.min(size)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn window_queries_seek_the_epoch_index() {
        let dir = tempfile::tempdir().unwrap();
        let pool = super::super::connection::open(&dir.path().join("t.db"))
            .await
            .unwrap();
        let scan = IdentityScan {
            identities: vec![1, 2],
            client: Some(3),
        };
        let sql = format!(
            "EXPLAIN QUERY PLAN {}",
            scan.window_query(0..=3, 10_000, 50).sql().as_str()
        );
        let mut explain = sqlx::query_as::<_, (i64, i64, i64, String)>(sqlx::AssertSqlSafe(sql));
        for value in [3i64, 0, 1, 2, 3, 10_000, 50] {
            explain = explain.bind(value);
        }
        let plan = explain.fetch_all(&pool).await.unwrap();
        assert!(
            plan.iter().any(|(_, _, _, detail)| detail
                .contains("issuances_by_identity_epoch (<expr>=? AND identity=? AND rowid<?)")),
            "each (epoch, identity) pair is a seek: {plan:?}"
        );
    }
}
