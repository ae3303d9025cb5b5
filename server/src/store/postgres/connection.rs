//! Connecting to PostgreSQL: database URLs that may list several hosts (`postgres://user@a:5432,b:5432/db`),
//! the host that accepts writes (as libpq's `target_session_attrs=read-write`), embedded
//! migrations (`schema/postgres/`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

use crate::store::StoreError;

/// How long connecting to one host and asking whether it accepts writes may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The migrations of schema/postgres, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../schema/postgres");

/// A PostgreSQL URL, one set of connection options per host it lists, in its order.
#[derive(Clone)]
pub struct DatabaseUrl {
    hosts: Vec<PgConnectOptions>,
    /// `host:port` of each host, for messages (never the user or password).
    names: Vec<String>,
}

impl DatabaseUrl {
    /// Parses `postgres://` or `postgresql://` URLs; the authority may list hosts separated by
    /// commas, each with its own port (default 5432). The user, password, database and query
    /// parameters apply to every host.
    pub fn parse(url: &str) -> Result<DatabaseUrl, String> {
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or("a database URL starts with postgres:// or postgresql://")?;
        // A `/`, `?` or `#` before the last `@` would end the authority early and put part of
        // the password where a host is expected (and shown): refused without echoing it.
        if let Some(at) = rest.rfind('@')
            && rest[..at].contains(['/', '?', '#'])
        {
            return Err(
                "the database URL's user or password holds an unencoded '/', '?' or \
                        '#' (or the URL has an '@' after its host): percent-encode it (%2F, \
                        %3F, %23, %40)"
                    .into(),
            );
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let (userinfo, host_list) = match authority.rfind('@') {
            Some(i) => (&authority[..=i], &authority[i + 1..]),
            None => ("", authority),
        };
        if host_list.is_empty() {
            return Err("the database URL names no host".into());
        }
        let mut hosts = Vec::new();
        let mut names = Vec::new();
        for host in host_list.split(',') {
            if host.is_empty() {
                return Err("the database URL has an empty host in its list".into());
            }
            let one = format!("postgres://{userinfo}{host}{path}");
            let options = PgConnectOptions::from_str(&one)
                .map_err(|e| format!("database URL host {host}: {e}"))?;
            names.push(format!("{}:{}", options.get_host(), options.get_port()));
            hosts.push(options);
        }
        Ok(DatabaseUrl { hosts, names })
    }

    /// Each host's connection options, in the URL's order.
    pub fn hosts(&self) -> &[PgConnectOptions] {
        &self.hosts
    }

    /// `host:port` of host `i`.
    pub fn host_name(&self, i: usize) -> &str {
        &self.names[i]
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.names.join(","))
    }
}

impl fmt::Display for DatabaseUrl {
    /// The hosts only: a URL may carry a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "postgres://{}", self.names.join(","))
    }
}

/// Whether the server behind `conn` accepts writes (a primary, not a standby in recovery,
/// and not read-only by default).
pub async fn accepts_writes(conn: &mut PgConnection) -> Result<bool, StoreError> {
    let (in_recovery, read_only): (bool, String) = sqlx::query_as(
        "SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only')",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(!in_recovery && read_only == "off")
}

/// Makes the server notice a session's lost client within about 11 s (idle 5 s, then 3 probes
/// 2 s apart; 10 s of unacknowledged data), as docs/operations.md sets server-wide: each of
/// these settings is lowered to that, never raised above a lower one of the server's.
pub async fn limit_keepalives(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT set_config(w.name, w.value::text, false) FROM (VALUES \
         ('tcp_keepalives_idle', 5), ('tcp_keepalives_interval', 2), \
         ('tcp_keepalives_count', 3), ('tcp_user_timeout', 10000)) AS w(name, value) \
         WHERE current_setting(w.name)::int NOT BETWEEN 1 AND w.value",
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A connection to the first host of `url` that accepts writes, and that host's index; each
/// host is given [`CONNECT_TIMEOUT`].
pub async fn connect_writable(url: &DatabaseUrl) -> Result<(PgConnection, usize), StoreError> {
    let mut failures = Vec::new();
    for (i, options) in url.hosts().iter().enumerate() {
        let attempt = async {
            let mut conn = options.connect().await?;
            let writable = accepts_writes(&mut conn).await?;
            Ok::<_, StoreError>((conn, writable))
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
            Ok(Ok((conn, true))) => return Ok((conn, i)),
            Ok(Ok((conn, false))) => {
                failures.push(format!("{}: read-only", url.host_name(i)));
                let _ = conn.close().await;
            }
            Ok(Err(e)) => failures.push(format!("{}: {e}", url.host_name(i))),
            Err(_) => failures.push(format!(
                "{}: no answer in {} s",
                url.host_name(i),
                CONNECT_TIMEOUT.as_secs()
            )),
        }
    }
    Err(StoreError::Unavailable(format!(
        "no database host accepts writes ({})",
        failures.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::DatabaseUrl;

    #[test]
    fn parses_one_or_several_hosts() {
        let url =
            DatabaseUrl::parse("postgres://ledger:secret@db1:5433,db2/tokenledger?sslmode=disable")
                .unwrap();
        assert_eq!(url.hosts().len(), 2);
        assert_eq!(url.host_name(0), "db1:5433");
        assert_eq!(url.host_name(1), "db2:5432");
        assert_eq!(url.hosts()[1].get_database(), Some("tokenledger"));
        assert_eq!(url.to_string(), "postgres://db1:5433,db2:5432");
        assert!(!format!("{url:?}").contains("secret"));
        let one = DatabaseUrl::parse("postgresql://localhost/x").unwrap();
        assert_eq!(one.hosts().len(), 1);
    }

    #[test]
    fn refuses_what_is_not_a_postgres_url() {
        assert!(DatabaseUrl::parse("mysql://x/y").is_err());
        assert!(DatabaseUrl::parse("postgres:///db").is_err());
        assert!(DatabaseUrl::parse("postgres://a,,b/db").is_err());
    }

    #[test]
    fn an_unencoded_slash_in_the_password_is_refused_without_echoing_it() {
        for url in [
            "postgres://u:pw1/xyz@db/x",
            "postgres://u:pw1?xyz@db/x",
            "postgres://u:pw1#xyz@db/x",
        ] {
            let err = DatabaseUrl::parse(url).expect_err(url);
            assert!(!err.contains("pw1") && !err.contains("xyz"), "{err}");
            assert!(err.contains("percent-encode"), "{err}");
        }
        let encoded = DatabaseUrl::parse("postgres://u:pw1%2Fxyz@db/x").unwrap();
        assert_eq!(encoded.host_name(0), "db:5432");
    }
}
