//! PostgreSQL for tests: a fresh, empty database per test, on the server named by
//! `TOKENLEDGER_TEST_PG_URL` or else on a private cluster that this test process starts
//! (the system's `initdb` and `pg_ctl`, in a temp dir, on a free loopback port) and that
//! stops when the process ends. A test that cannot get a database panics: it never skips.
//!
//! ```no_run
//! let db = tokenledger_testpg::database();
//! let url: &str = db.url(); // for the ledger's `--database`; dropped with `db`
//! # let _ = url;
//! ```

mod cluster;
mod programs;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use cluster::Cluster;

/// The variable naming a server to create test databases on: a `postgres://` URL of a
/// superuser (or a role with CREATEDB), for instance `postgres://postgres@127.0.0.1:5432/postgres`.
pub const URL_VARIABLE: &str = "TOKENLEDGER_TEST_PG_URL";

/// A fresh, empty database with a unique name: on the server of [`URL_VARIABLE`] when it is
/// set, else on this process's private [`cluster`]. Dropped (best effort) with the value.
///
/// Panics, saying what is missing, when neither the variable nor PostgreSQL's server
/// programs are there.
pub fn database() -> TestDatabase {
    match std::env::var(URL_VARIABLE) {
        Ok(url) if !url.trim().is_empty() => TestDatabase::create(url.trim()),
        _ => cluster().database(),
    }
}

/// This test process's private cluster, started on first use and stopped (its directory
/// removed) when the process exits. It is private even when [`URL_VARIABLE`] is set, so a
/// test may stop and start it; a test that does so should rather own its cluster
/// ([`Cluster::start`]), as the other tests of the process share this one.
pub fn cluster() -> &'static Cluster {
    static SHARED: OnceLock<Cluster> = OnceLock::new();
    SHARED.get_or_init(Cluster::start)
}

/// A plain-text dump (`pg_dump`) of the database of `url`: its schema and every row (byte
/// strings in hex). Panics when it cannot be made.
pub fn dump(url: &str) -> Vec<u8> {
    programs::pg_dump(url)
}

/// A database made for one test, dropped (with `WITH (FORCE)`, closing what is still
/// connected) when the value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
}

impl TestDatabase {
    /// Creates a database with a unique name on the server of `admin_url`.
    fn create(admin_url: &str) -> TestDatabase {
        let name = unique_name();
        programs::psql(admin_url, &format!("CREATE DATABASE {name}"));
        TestDatabase {
            url: with_database(admin_url, &name),
            name,
            admin_url: admin_url.to_owned(),
        }
    }

    /// A new database with a unique name holding a copy of this one (`CREATE DATABASE ...
    /// TEMPLATE`), on the same server. Nothing may be connected to this one meanwhile: it
    /// waits up to 10 s for the sessions of a stopped client to go.
    pub fn copy(&self) -> TestDatabase {
        let name = unique_name();
        let sql = format!("CREATE DATABASE {name} TEMPLATE {}", self.name);
        let before = Instant::now();
        while let Err(e) = programs::try_psql(&self.admin_url, &sql) {
            assert!(
                e.contains("being accessed by other users")
                    && before.elapsed() < Duration::from_secs(10),
                "cannot copy the database {}: {e}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        TestDatabase {
            url: with_database(&self.admin_url, &name),
            name,
            admin_url: self.admin_url.clone(),
        }
    }

    /// The `postgres://` URL of the database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `sql` in the database with `psql` and returns its unaligned, tuples-only
    /// output (fields separated by `|`, one row a line), trimmed. Panics when it fails.
    pub fn query(&self, sql: &str) -> String {
        programs::psql(&self.url, sql)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Best effort: the server may be gone already (a test that stopped its cluster).
        let _ = programs::try_psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// A database name no other test, process or earlier run is using.
fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    format!("tokenledger_test_{}_{n}_{micros}", std::process::id())
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

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_of_a_url_is_replaced() {
        let cases = [
            ("postgres://u@h:5432/postgres", "postgres://u@h:5432/t"),
            ("postgres://u@h:5432", "postgres://u@h:5432/t"),
            (
                "postgres://u@h/db?sslmode=disable",
                "postgres://u@h/t?sslmode=disable",
            ),
            ("postgresql://u@h1:1,h2:2/db", "postgresql://u@h1:1,h2:2/t"),
            (
                "postgres://u@h?sslmode=disable",
                "postgres://u@h/t?sslmode=disable",
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(with_database(url, "t"), expected, "{url}");
        }
    }
}
