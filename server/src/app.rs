//! Starting and stopping the service: choose the engine, open the database and key, take the
//! writer role or stand by ([`crate::writer_role`]), serve until shutdown, then drain the
//! sequencer. With `main`, the only place that names an engine.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::serve::Listener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{AppState, router};
use crate::blocklists::Blocklists;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, DatabaseUrlText};
use crate::credentials;
use crate::data_dir;
use crate::issuers::Issuers;
use crate::metrics::Metrics;
use crate::sequencer::BatchLimits;
use crate::service::pseudonyms::Pseudonyms;
use crate::service::{Ledger, retention};
use crate::storage_errors::StorageErrors;
use crate::store::postgres::{DatabaseUrl, PostgresLease, PostgresStore};
use crate::store::sqlite::SqliteStore;
use crate::store::sqlite::page_cache::WarmUp;
use crate::store::{LedgerReader, Reclaimer, Registry, WriterLease};
use crate::writer_role::{RoleKeeper, SequencerSetup};
use tokenledger_core::access::{Binding, Role};
use tokenledger_core::ids::{Site, Vo};

/// The database a server or command uses, from `[database]` (and `--database`): the SQLite
/// file of the data directory when no URL is given.
#[derive(Debug)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres {
        url: DatabaseUrl,
        read_url: Option<DatabaseUrl>,
    },
}

impl Database {
    /// The database `config` names (after `--database` and `TOKENLEDGER_DATABASE`); a URL
    /// that is not one is refused here, at start, in words that never show its password, and
    /// so is a read URL without a URL.
    pub fn of(config: &Config) -> anyhow::Result<Database> {
        let parse = |key: &str, url: &DatabaseUrlText| {
            DatabaseUrl::parse(&url.0).map_err(|e| anyhow::anyhow!("database.{key}: {e}"))
        };
        let Some(url) = &config.database.url else {
            if config.database.read_url.is_some() {
                bail!("database.read_url goes with database.url (a PostgreSQL database)");
            }
            return Ok(Database::Sqlite(config.db_path()));
        };
        Ok(Database::Postgres {
            url: parse("url", url)?,
            read_url: config
                .database
                .read_url
                .as_ref()
                .map(|read_url| parse("read_url", read_url))
                .transpose()?,
        })
    }

    /// The SQLite file, for the commands that work on it alone (fsck, backup, restore):
    /// `command` is refused on any other database.
    pub fn sqlite_file(&self, command: &str) -> anyhow::Result<&Path> {
        match self {
            Database::Sqlite(path) => Ok(path),
            Database::Postgres { url, .. } => bail!(
                "`{command}` works on the SQLite file of a data directory, and this server's \
                 database is PostgreSQL ({url}): use PostgreSQL's own tools (pg_dump, \
                 pg_basebackup, amcheck)"
            ),
        }
    }
}

impl fmt::Display for Database {
    /// The SQLite file, or the PostgreSQL hosts (never a password).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "SQLite {}", path.display()),
            Database::Postgres { url, .. } => write!(f, "PostgreSQL {url}"),
        }
    }
}

/// The ledger's store, opened for a command run beside or instead of the server
/// (credentials, sites).
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl Store {
    /// Opens (creating and migrating) the database `config` names; leaves that fail their
    /// check are counted in `errors`.
    pub async fn open(config: &Config, errors: Arc<StorageErrors>) -> anyhow::Result<Store> {
        match Database::of(config)? {
            Database::Sqlite(path) => Ok(Store::Sqlite(SqliteStore::open(&path, errors).await?)),
            Database::Postgres { url, read_url } => Ok(Store::Postgres(
                PostgresStore::open(&url, read_url.as_ref(), errors).await?,
            )),
        }
    }

    pub fn reader(&self) -> &dyn LedgerReader {
        match self {
            Store::Sqlite(store) => store,
            Store::Postgres(store) => store,
        }
    }

    pub fn registry(&self) -> &dyn Registry {
        match self {
            Store::Sqlite(store) => store,
            Store::Postgres(store) => store,
        }
    }

    /// The same store, shared: as readers see it, and as the registry.
    fn shared(&self) -> (Arc<dyn LedgerReader>, Arc<dyn Registry>) {
        match self {
            Store::Sqlite(store) => (Arc::new(store.clone()), Arc::new(store.clone())),
            Store::Postgres(store) => (Arc::new(store.clone()), Arc::new(store.clone())),
        }
    }

    /// The same store, as it gives back the space of redacted rows.
    fn reclaimer(&self) -> Arc<dyn Reclaimer> {
        match self {
            Store::Sqlite(store) => Arc::new(store.clone()),
            Store::Postgres(store) => Arc::new(store.clone()),
        }
    }

    /// Closes every connection.
    pub async fn close(&self) {
        match self {
            Store::Sqlite(store) => store.close().await,
            Store::Postgres(store) => store.close().await,
        }
    }
}

/// What a running service holds of its engine, to close at the end.
enum Engine {
    Sqlite {
        store: SqliteStore,
        checkpointer: JoinHandle<()>,
        /// Dropped only after the database is closed (it holds a descriptor of the file).
        warm_up: WarmUp,
    },
    Postgres(PostgresStore),
}

/// A started service: its state, and the task that keeps its writer role (and drains the
/// sequencer after shutdown).
pub struct Service {
    pub state: AppState,
    engine: Engine,
    role_keeper: JoinHandle<()>,
    /// Retention runs, while this server is the writer.
    retention: JoinHandle<()>,
    stop_role: watch::Sender<bool>,
}

/// The name a server is known by to the others of its database when `[server] advertise`
/// is not set: `hostname:port` of its listener at `addr`, or `addr` without a host name.
pub fn default_advertise(addr: SocketAddr) -> String {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    match hostname.trim() {
        "" => addr.to_string(),
        name => format!("{name}:{}", addr.port()),
    }
}

impl Service {
    /// Opens the database `config` names (for SQLite, creating the data directory (0700),
    /// the database, key and secret on first start), a first admin credential on a database
    /// without any, and takes the writer role if it is free (else stands by).
    pub async fn start(config: Config) -> anyhow::Result<Service> {
        let database = Database::of(&config)?;
        let metrics = Arc::new(Metrics::default());
        let errors = metrics.storage_errors().clone();
        let (store, lease): (Store, Arc<dyn WriterLease>) = match &database {
            Database::Sqlite(path) => {
                data_dir::refuse_a_database_left_in(Path::new("."), &config)?;
                data_dir::create(&config.server.data_dir)?;
                let store = SqliteStore::open(path, errors).await?;
                let lease = Arc::new(store.lease(path, config.log.compress_after));
                (Store::Sqlite(store), lease)
            }
            Database::Postgres { url, read_url } => {
                // The log key and the ledger secret are files of the data directory.
                data_dir::create(&config.server.data_dir)?;
                let store = PostgresStore::open(url, read_url.as_ref(), errors).await?;
                let lease = Arc::new(PostgresLease::new(
                    url.clone(),
                    store.decoders(),
                    config.log.compress_after,
                ));
                (Store::Postgres(store), lease)
            }
        };
        let holder = config
            .server
            .advertise
            .clone()
            .unwrap_or_else(|| config.server.listen.to_string());
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        if let Store::Postgres(_) = &store {
            data_dir::create_shared_secrets(
                &config,
                store.reader(),
                lease.as_ref(),
                &holder,
                clock.now_micros(),
            )
            .await?;
        }
        let (signer, secret) = data_dir::open_secrets(&config, store.reader(), &database).await?;
        bootstrap_admin(&store, clock.as_ref()).await?;
        // The configuration checked its sites' names and VOs.
        for site in &config.sites {
            let vos: Vec<Vo> = site.vos.iter().map(Vo::unchecked).collect();
            store
                .registry()
                .upsert_site(&Site::unchecked(&site.name), &vos, clock.now_micros())
                .await?;
        }
        let (reader, registry) = store.shared();
        let reclaimer = store.reclaimer();
        // The metric of each site's last blocklist fetch starts from what is recorded.
        for (site, at) in reader.last_blocklist_fetches().await? {
            metrics.blocklist_fetched(&site, at);
        }
        let pseudonyms = Pseudonyms::new(secret, registry.clone(), clock.clone());
        let verifier = signer.verifier();
        let issuers = Issuers::from_config(&config)?;
        let setup = SequencerSetup {
            signer: signer.clone(),
            origin: config.log.origin.clone(),
            limits: BatchLimits {
                max_batch: config.sequencer.max_batch,
                max_wait: Duration::from_millis(config.sequencer.max_wait_ms),
                queue_depth: config.sequencer.queue_depth,
            },
            metrics: metrics.clone(),
            clock: clock.clone(),
        };
        let keeper = RoleKeeper::start(lease, holder, reader.clone(), setup).await?;
        let role = keeper.role();
        let engine = match store {
            Store::Sqlite(store) => Engine::Sqlite {
                warm_up: WarmUp::start(
                    &config.db_path(),
                    config.server.warm_page_cache,
                    metrics.clone(),
                ),
                checkpointer: tokio::spawn(store.clone().run_checkpointer()),
                store,
            },
            Store::Postgres(store) => {
                // No file to warm: the database server keeps its own cache.
                metrics.page_cache_warm_up_ended();
                Engine::Postgres(store)
            }
        };
        let (head, role_now) = (role.head(), role.role());
        tracing::info!(
            log_size = head.size,
            verifier_key = %verifier,
            database = %database,
            role = ?role_now,
            "log opened"
        );
        let blocklists = Arc::new(Blocklists::new(
            reader.clone(),
            registry,
            pseudonyms.clone(),
            clock.clone(),
            config.blocklist.validity_secs,
            metrics.clone(),
            role.state_changes(),
        ));
        let (stop_role, stop) = watch::channel(false);
        let stop_retention = stop.clone();
        let role_keeper = tokio::spawn(keeper.run(stop));
        let state = AppState {
            ledger: Ledger {
                reader,
                role,
                pseudonyms,
                clock,
            },
            verifier,
            signer: Arc::new(signer),
            issuers,
            blocklists,
            config: Arc::new(config),
            metrics,
        };
        let retention = tokio::spawn(retention::run_every(
            state.ledger.clone(),
            Arc::new(state.config.retention.policy.clone()),
            state
                .config
                .vos
                .iter()
                .map(|vo| Vo::unchecked(&vo.name))
                .collect(),
            reclaimer,
            Duration::from_secs(state.config.retention.run_every.secs()),
            stop_retention,
        ));
        Ok(Service {
            state,
            engine,
            role_keeper,
            retention,
            stop_role,
        })
    }

    /// Serves HTTP on `listener` (TCP, or TLS from [`crate::tls`]) until `shutdown` resolves,
    /// then answers the waiting blocklist long polls at once, lets in-flight requests finish,
    /// commits what the sequencer still holds and writes a last checkpoint.
    pub async fn serve<L>(
        self,
        listener: L,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()>
    where
        L: Listener,
        L::Addr: std::fmt::Debug,
    {
        let Service {
            state,
            engine,
            role_keeper,
            retention,
            stop_role,
        } = self;
        let blocklists = state.blocklists.clone();
        let shutdown = async move {
            shutdown.await;
            blocklists.release_waiters();
        };
        axum::serve(listener, router(state))
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP")?;
        stop_role.send_replace(true);
        retention.await.context("retention task")?;
        role_keeper.await.context("writer role task")?;
        match engine {
            Engine::Sqlite {
                store,
                checkpointer,
                warm_up,
            } => {
                checkpointer.abort();
                store.close().await;
                drop(warm_up);
            }
            Engine::Postgres(store) => store.close().await,
        }
        Ok(())
    }
}

/// On a database with no credential at all, creates an admin credential and prints it once.
async fn bootstrap_admin(store: &Store, clock: &dyn Clock) -> anyhow::Result<()> {
    if !credentials::list(store.reader()).await?.is_empty() {
        return Ok(());
    }
    let binding = Binding::new(Role::Admin, None, None)?;
    let (id, secret) =
        credentials::create(store.registry(), clock, &binding, Some("bootstrap")).await?;
    println!(
        "Created the first admin credential {id}. Its secret is shown only this once:\n\n  {secret}\n\n\
         Store it safely; create others with `tokenledger-server credential create`."
    );
    tracing::info!(credential = %id, "created the bootstrap admin credential");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DatabaseUrlText;

    fn config(url: Option<&str>, read_url: Option<&str>) -> Config {
        let mut config = Config::load(None).unwrap();
        config.database.url = url.map(|u| DatabaseUrlText(u.into()));
        config.database.read_url = read_url.map(|u| DatabaseUrlText(u.into()));
        config
    }

    #[test]
    fn no_url_is_the_sqlite_file_and_a_url_shows_its_hosts_only() {
        let sqlite = Database::of(&config(None, None)).unwrap();
        assert_eq!(
            sqlite.sqlite_file("fsck").unwrap(),
            Path::new("data/tokenledger.db")
        );
        let url = "postgres://ledger:s3cret@db1:5433,db2/ledger?sslmode=disable";
        let postgres = Database::of(&config(Some(url), Some(url))).unwrap();
        let shown = format!("{postgres} {postgres:?}");
        assert!(
            shown.contains("db1:5433,db2:5432") && !shown.contains("s3cret"),
            "{shown}"
        );
        let refused = format!("{:#}", postgres.sqlite_file("fsck").unwrap_err());
        assert!(
            refused.contains("`fsck` works on the SQLite file"),
            "{refused}"
        );
        assert!(!refused.contains("s3cret"), "{refused}");
        assert!(!format!("{:?}", config(Some(url), None)).contains("s3cret"));
    }

    #[test]
    fn a_read_url_goes_with_a_url_given_in_the_file_or_on_the_command_line() {
        let err = Database::of(&config(None, Some("postgres://db/x"))).unwrap_err();
        assert!(
            err.to_string().contains("read_url goes with database.url"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[database]\nread_url = \"postgres://b/x\"\n").unwrap();
        let mut config = Config::load(Some(&path)).unwrap();
        config.database.url = Some(DatabaseUrlText("postgres://a/x".into()));
        assert!(matches!(
            Database::of(&config).unwrap(),
            Database::Postgres {
                read_url: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn a_url_that_is_not_one_is_refused_at_start() {
        let err = Database::of(&config(Some("mysql://u:s3cret@db/x"), None)).unwrap_err();
        let err = format!("{err:#}");
        assert!(err.starts_with("database.url: "), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        let err =
            Database::of(&config(Some("postgres://db/x"), Some("postgres://,/x"))).unwrap_err();
        assert!(
            format!("{err:#}").starts_with("database.read_url: "),
            "{err:#}"
        );
    }
}
