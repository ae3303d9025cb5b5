//! PostgreSQL for the benchmarks: the server named by `--database URL`, and a fresh, empty
//! database on it for each run (`CREATE DATABASE` with a unique name, through the server's
//! `postgres` database), dropped after the run unless `--keep` (or a `--data-dir` names it for
//! later runs). Also the server's settings that bear on the figures, for every report.

use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokenledger_server::store::postgres::{DatabaseUrl, LEASE_KEY};

use crate::progress;

/// The PostgreSQL server of `--database URL` (one host; the URL's database is not used: each
/// run makes its own), and whether the databases made on it are kept (`--keep`).
#[derive(Clone)]
pub struct PgServer {
    url: String,
    pub keep: bool,
}

impl std::fmt::Debug for PgServer {
    /// The host only: the URL may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgServer({}, keep: {})", host_of(&self.url), self.keep)
    }
}

impl PgServer {
    /// The server of `url` (`postgres://user[:password]@host[:port]/any?params`).
    pub fn new(url: &str, keep: bool) -> anyhow::Result<PgServer> {
        let parsed = DatabaseUrl::parse(url).map_err(|e| anyhow::anyhow!("--database: {e}"))?;
        anyhow::ensure!(
            parsed.hosts().len() == 1,
            "--database names one server ({parsed} lists several)"
        );
        Ok(PgServer {
            url: url.to_string(),
            keep,
        })
    }

    /// `host:port` of the server, for reports (never the user or password).
    pub fn host(&self) -> String {
        host_of(&self.url)
    }

    /// A connection to the server's `postgres` database, where databases are made.
    async fn admin(&self) -> anyhow::Result<PgConnection> {
        let url = with_database(&self.url, "postgres");
        PgConnectOptions::from_str(&url)?
            .connect()
            .await
            .with_context(|| format!("connecting to PostgreSQL at {}", self.host()))
    }

    /// The settings that bear on durable commits and reads, as one line:
    /// `PostgreSQL 15.20, synchronous_commit on, fsync on, ...`.
    pub async fn settings(&self) -> anyhow::Result<String> {
        let mut conn = self.admin().await?;
        let mut parts = Vec::new();
        let (version,): (String,) = sqlx::query_as("SHOW server_version")
            .fetch_one(&mut conn)
            .await?;
        parts.push(format!("PostgreSQL {version}"));
        for name in SETTINGS {
            let (value,): (String,) = sqlx::query_as("SELECT current_setting($1)")
                .bind(name)
                .fetch_one(&mut conn)
                .await?;
            parts.push(format!("{name} {value}"));
        }
        conn.close().await?;
        Ok(parts.join(", "))
    }
}

/// The server settings every PostgreSQL report names.
const SETTINGS: [&str; 6] = [
    "synchronous_commit",
    "fsync",
    "wal_sync_method",
    "full_page_writes",
    "shared_buffers",
    "max_wal_size",
];

/// A database made for one run on a [`PgServer`]; dropped (`WITH (FORCE)`) with the value
/// unless kept.
pub struct BenchDatabase {
    name: String,
    url: String,
    server: PgServer,
    keep: bool,
}

impl std::fmt::Debug for BenchDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BenchDatabase({} on {})", self.name, self.server.host())
    }
}

/// The file in a `--data-dir` that names the database its log is in.
const NAME_FILE: &str = "postgres-database";

impl BenchDatabase {
    /// A fresh, empty database with a unique name, kept after the run with `--keep`.
    pub async fn create(server: &PgServer) -> anyhow::Result<BenchDatabase> {
        let name = unique_name();
        let mut admin = server.admin().await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .with_context(|| format!("creating database {name} on {}", server.host()))?;
        admin.close().await?;
        if server.keep {
            progress(&format!(
                "postgres: created database {name} on {} (kept: --keep)",
                server.host()
            ));
        }
        Ok(BenchDatabase {
            url: with_database(&server.url, &name),
            name,
            server: server.clone(),
            keep: server.keep,
        })
    }

    /// A fresh database made from this one (`CREATE DATABASE ... TEMPLATE`, which needs no
    /// other session on this one), dropped with the value unless `--keep`: what a benchmark
    /// that changes a preloaded log works on.
    pub async fn copy(&self) -> anyhow::Result<BenchDatabase> {
        let name = unique_name();
        let mut admin = self.server.admin().await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {name} TEMPLATE {}",
            self.name
        )))
        .execute(&mut admin)
        .await
        .with_context(|| format!("copying database {} into {name}", self.name))?;
        admin.close().await?;
        progress(&format!(
            "postgres: copied database {} into {name}{}",
            self.name,
            if self.server.keep {
                " (kept: --keep)"
            } else {
                ""
            }
        ));
        Ok(BenchDatabase {
            url: with_database(&self.server.url, &name),
            name,
            server: self.server.clone(),
            keep: self.server.keep,
        })
    }

    /// The database named in `dir` by an earlier run, if it still exists on the server;
    /// otherwise a fresh one, named in `dir` for the next runs. Either is kept.
    pub async fn in_dir(server: &PgServer, dir: &Path) -> anyhow::Result<BenchDatabase> {
        let file = dir.join(NAME_FILE);
        if let Ok(text) = std::fs::read_to_string(&file) {
            let name = text.trim().to_string();
            let mut admin = server.admin().await?;
            let found: Option<(i32,)> =
                sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
                    .bind(&name)
                    .fetch_optional(&mut admin)
                    .await?;
            admin.close().await?;
            if found.is_some() {
                progress(&format!(
                    "postgres: reusing database {name} on {} (named in {})",
                    server.host(),
                    file.display()
                ));
                return Ok(BenchDatabase {
                    url: with_database(&server.url, &name),
                    name,
                    server: server.clone(),
                    keep: true,
                });
            }
        }
        let mut db = BenchDatabase::create(server).await?;
        db.keep = true;
        std::fs::create_dir_all(dir)?;
        std::fs::write(&file, format!("{}\n", db.name))
            .with_context(|| format!("writing {}", file.display()))?;
        progress(&format!(
            "postgres: created database {} on {} (kept, named in {})",
            db.name,
            server.host(),
            file.display()
        ));
        Ok(db)
    }

    /// The database's `postgres://` URL (with the user and password of `--database`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server it is on.
    pub fn server(&self) -> &PgServer {
        &self.server
    }

    /// A connection to the database.
    pub async fn connect(&self) -> anyhow::Result<PgConnection> {
        PgConnectOptions::from_str(&self.url)?
            .connect()
            .await
            .with_context(|| format!("connecting to database {}", self.name))
    }

    /// Gathers the planner's statistics of a database just bulk-loaded, as an operator does
    /// after a load (autovacuum would, later): without them PostgreSQL plans lookups for
    /// tables it believes empty.
    pub async fn analyze(&self) -> anyhow::Result<()> {
        let mut conn = self.connect().await?;
        sqlx::query("ANALYZE").execute(&mut conn).await?;
        conn.close().await?;
        Ok(())
    }

    /// Reads every table and index of the database into the page cache of the database's
    /// machine, with `pg_prewarm` in its `read` mode (installed in the database as the
    /// extension if missing: `--database` names a superuser), and returns the bytes read:
    /// the counterpart of the SQLite server's warm-up, and of what a long-running primary
    /// holds in memory (or `pg_prewarm`'s autoprewarm restores after a restart).
    pub async fn prewarm(&self) -> anyhow::Result<u64> {
        let mut conn = self.connect().await?;
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
            .execute(&mut conn)
            .await
            .context("installing pg_prewarm (PostgreSQL's contrib) in the bench database")?;
        let (blocks,): (Option<i64>,) = sqlx::query_as(
            "SELECT sum(pg_prewarm(c.oid, 'read'))::bigint FROM pg_class c \
             WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'i')",
        )
        .fetch_one(&mut conn)
        .await?;
        conn.close().await?;
        Ok(blocks.unwrap_or(0) as u64 * 8192)
    }

    /// Waits, up to `limit`, until no session holds the ledger's writer lease (a writer
    /// that just closed its connection releases it when its backend notices).
    pub async fn wait_for_free_lease(&self, limit: Duration) -> anyhow::Result<()> {
        let mut conn = self.connect().await?;
        let started = Instant::now();
        loop {
            let (taken,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
                .bind(LEASE_KEY)
                .fetch_one(&mut conn)
                .await?;
            if taken {
                sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(LEASE_KEY)
                    .execute(&mut conn)
                    .await?;
                conn.close().await?;
                return Ok(());
            }
            anyhow::ensure!(
                started.elapsed() < limit,
                "the writer lease of database {} was still held after {limit:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn drop_database(server: PgServer, name: String) -> anyhow::Result<()> {
        let mut admin = server.admin().await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await?;
        admin.close().await?;
        Ok(())
    }
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        let (server, name) = (self.server.clone(), self.name.clone());
        // On a thread of its own: the value may be dropped inside an async runtime.
        let dropped =
            std::thread::spawn(move || crate::block_on(BenchDatabase::drop_database(server, name)))
                .join();
        if !matches!(dropped, Ok(Ok(()))) {
            progress(&format!(
                "postgres: could not drop database {} on {}: {dropped:?}",
                self.name,
                self.server.host()
            ));
        }
    }
}

/// A database name no other run or process is using.
fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    format!("tokenledger_bench_{}_{n}_{micros}", std::process::id())
}

/// `url` with its database (the path) replaced by `name`; the query string is kept.
fn with_database(url: &str, name: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[after_scheme..];
    let authority_end = rest
        .find(['/', '?'])
        .map_or(url.len(), |i| after_scheme + i);
    let query = url[authority_end..]
        .find('?')
        .map_or("", |i| &url[authority_end + i..]);
    format!("{}/{name}{query}", &url[..authority_end])
}

/// `host:port` of a URL's server, without user or password.
fn host_of(url: &str) -> String {
    DatabaseUrl::parse(url).map_or_else(
        |_| "an unreadable URL".to_string(),
        |u| u.host_name(0).to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_of_a_url_is_replaced() {
        let cases = [
            ("postgres://u@h:5432/postgres", "postgres://u@h:5432/t"),
            ("postgres://u@h:5432", "postgres://u@h:5432/t"),
            (
                "postgres://u:pw@h/db?sslmode=disable",
                "postgres://u:pw@h/t?sslmode=disable",
            ),
            (
                "postgres://u@h?sslmode=disable",
                "postgres://u@h/t?sslmode=disable",
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(with_database(url, "t"), expected, "{url}");
        }
    }

    #[test]
    fn a_password_is_never_shown() {
        let server = PgServer::new("postgres://u:secret@db.example:5433/x", false).unwrap();
        assert_eq!(server.host(), "db.example:5433");
        assert!(!format!("{server:?}").contains("secret"));
        assert!(PgServer::new("mysql://x", false).is_err());
        assert!(PgServer::new("postgres://a,b/x", false).is_err());
    }
}
