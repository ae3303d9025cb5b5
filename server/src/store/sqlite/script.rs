//! The statements of one write transaction, sent to SQLite together: each flush is one round
//! trip to sqlx's worker thread, however many statements it holds. Under load each round
//! trip waits for two threads to be scheduled, so the writer sends a batch in one or two.

use std::fmt::Display;

use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

/// Rows per multi-row INSERT or IN (...) list; well under SQLite's bound-parameter limit.
pub(crate) const CHUNK: usize = 250;

/// Statements queued for one round trip; [`SqlScript::begin`] opens a transaction that
/// [`SqlScript::commit`] ends. A failed flush or commit leaves the transaction open: call
/// [`roll_back`].
pub struct SqlScript {
    query: QueryBuilder<Sqlite>,
    statements: usize,
}

impl SqlScript {
    /// An empty script, for statements inside a transaction the caller manages.
    pub fn new() -> SqlScript {
        SqlScript {
            query: QueryBuilder::new(""),
            statements: 0,
        }
    }

    /// A script whose first statement opens a transaction.
    pub fn begin() -> SqlScript {
        let mut script = SqlScript::new();
        script.statement("BEGIN");
        script
    }

    /// Starts the next statement with `sql`; bind its values on the builder returned.
    /// Every value must be bound with `push_bind` (never a literal `?` in `sql`).
    pub fn statement(&mut self, sql: impl Display) -> &mut QueryBuilder<Sqlite> {
        if self.statements > 0 {
            self.query.push(";\n");
        }
        self.statements += 1;
        self.query.push(sql)
    }

    /// Runs the queued statements in order, in one round trip, and empties the script. The
    /// statements are prepared for this run only: a script is rarely sent twice.
    pub async fn flush(&mut self, conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        if self.statements == 0 {
            return Ok(());
        }
        let result = self.query.build().persistent(false).execute(conn).await;
        self.query.reset();
        self.statements = 0;
        result.map(|_| ())
    }

    /// Ends the script with `COMMIT` and runs it.
    pub async fn commit(mut self, conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        self.statement("COMMIT");
        self.flush(conn).await
    }
}

impl Default for SqlScript {
    fn default() -> SqlScript {
        SqlScript::new()
    }
}

/// Rolls back the transaction a failed script left open, if any (SQLite ends some itself, and
/// none is open if `BEGIN` failed). Any other failure leaves the connection in a transaction,
/// so the next `BEGIN` fails too: it is logged as an error.
pub async fn roll_back(conn: &mut SqliteConnection) {
    match sqlx::query("ROLLBACK").execute(conn).await {
        Ok(_) => {}
        Err(e) if e.to_string().contains("no transaction is active") => {
            tracing::debug!("no transaction left to roll back");
        }
        Err(e) => tracing::error!(error = %e, "rolling back a failed write failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    async fn conn() -> (tempfile::TempDir, SqliteConnection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        super::super::connection::open(&path)
            .await
            .unwrap()
            .close()
            .await;
        let mut conn = super::super::connection::open_writer(&path).await.unwrap();
        sqlx::query("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT NOT NULL)")
            .execute(&mut conn)
            .await
            .unwrap();
        (dir, conn)
    }

    async fn rows(conn: &mut SqliteConnection) -> Vec<(i64, String)> {
        sqlx::query_as("SELECT a, b FROM t ORDER BY a")
            .fetch_all(conn)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn binds_values_across_statements_in_order_and_commits_them_together() {
        let (_dir, mut conn) = conn().await;
        let mut script = SqlScript::begin();
        script.statement("INSERT INTO t (a, b) ").push_values(
            [(1, "one"), (2, "two")],
            |mut row, (a, b)| {
                row.push_bind(a).push_bind(b);
            },
        );
        script
            .statement("INSERT INTO t (a, b) VALUES (")
            .push_bind(3)
            .push(", ")
            .push_bind("three")
            .push(")");
        script.flush(&mut conn).await.unwrap();
        script
            .statement("UPDATE t SET b = ")
            .push_bind("deux")
            .push(" WHERE a = ")
            .push_bind(2);
        script.commit(&mut conn).await.unwrap();
        assert_eq!(
            rows(&mut conn).await,
            [(1, "one".into()), (2, "deux".into()), (3, "three".into())]
        );
        // The transaction is closed: sqlx can open one of its own.
        conn.begin().await.unwrap().commit().await.unwrap();
    }

    #[tokio::test]
    async fn a_failed_statement_stops_the_script_and_its_transaction_rolls_back() {
        let (_dir, mut conn) = conn().await;
        let mut script = SqlScript::begin();
        script
            .statement("INSERT INTO t (a, b) VALUES (")
            .push_bind(1)
            .push(", 'kept only if committed')");
        script
            .statement("INSERT INTO t (a, b) VALUES (")
            .push_bind(1)
            .push(", 'a duplicate key')");
        script
            .statement("INSERT INTO t (a, b) VALUES (")
            .push_bind(2)
            .push(", 'never run')");
        let e = script.commit(&mut conn).await.unwrap_err();
        assert!(e.as_database_error().unwrap().is_unique_violation());
        roll_back(&mut conn).await;
        assert!(rows(&mut conn).await.is_empty());
        // Nothing left open: another script begins and commits.
        let mut script = SqlScript::begin();
        script
            .statement("INSERT INTO t (a, b) VALUES (")
            .push_bind(5)
            .push(", 'five')");
        script.commit(&mut conn).await.unwrap();
        assert_eq!(rows(&mut conn).await, [(5, "five".into())]);
        // Rolling back with no transaction open is harmless, and SQLite says why.
        roll_back(&mut conn).await;
        let e = sqlx::query("ROLLBACK")
            .execute(&mut conn)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no transaction is active"), "{e}");
        assert_eq!(rows(&mut conn).await.len(), 1);
    }
}
