//! Starting and stopping the service: open the database and key, start the sequencer,
//! serve until shutdown, then drain the sequencer.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::Listener;
use tokio::task::JoinHandle;

use crate::api::{AppState, router};
use crate::blocklists::Blocklists;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::credentials;
use crate::data_dir;
use crate::issuers::Issuers;
use crate::metrics::Metrics;
use crate::sequencer::{BatchLimits, Sequencer};
use crate::service::Ledger;
use crate::service::pseudonyms::Pseudonyms;
use crate::store::sqlite::SqliteStore;
use crate::store::sqlite::page_cache::WarmUp;
use crate::store::{LedgerReader, Registry};
use tokenledger_core::access::{Binding, Role};
use tokenledger_core::ids::{Site, Vo};

/// A started service: its state and the sequencer task to await after shutdown.
pub struct Service {
    pub state: AppState,
    store: SqliteStore,
    sequencer_task: JoinHandle<()>,
    checkpointer: JoinHandle<()>,
    /// Dropped only after the database is closed (it holds a descriptor of the file).
    warm_up: WarmUp,
}

impl Service {
    /// Opens the data directory (creating it (0700), the database, key, secret and a first
    /// admin credential on first start) and starts the sequencer.
    pub async fn start(config: Config) -> anyhow::Result<Service> {
        data_dir::refuse_a_database_left_in(Path::new("."), &config)?;
        data_dir::create(&config.server.data_dir)?;
        let metrics = Arc::new(Metrics::default());
        let store = SqliteStore::open(&config.db_path(), metrics.storage_errors().clone()).await?;
        let (signer, secret) = data_dir::open_secrets(&config, &store).await?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        bootstrap_admin(&store, clock.as_ref()).await?;
        // The configuration checked its sites' names and VOs.
        for site in &config.sites {
            let vos: Vec<Vo> = site.vos.iter().map(Vo::unchecked).collect();
            store
                .upsert_site(&Site::unchecked(&site.name), &vos, clock.now_micros())
                .await?;
        }
        let reader: Arc<dyn LedgerReader> = Arc::new(store.clone());
        // The metric of each site's last blocklist fetch starts from what is recorded.
        for (site, at) in reader.last_blocklist_fetches().await? {
            metrics.blocklist_fetched(&site, at);
        }
        let registry: Arc<dyn Registry> = Arc::new(store.clone());
        let pseudonyms = Pseudonyms::new(secret, registry.clone(), clock.clone());
        let writer = store
            .writer(&config.db_path(), config.log.compress_after)
            .await?;
        let warm_up = WarmUp::start(
            &config.db_path(),
            config.server.warm_page_cache,
            metrics.clone(),
        );
        let limits = BatchLimits {
            max_batch: config.sequencer.max_batch,
            max_wait: Duration::from_millis(config.sequencer.max_wait_ms),
            queue_depth: config.sequencer.queue_depth,
        };
        let verifier = signer.verifier();
        let issuers = Issuers::from_config(&config)?;
        let (sequencer, sequencer_task) = Sequencer::start(
            Box::new(writer),
            signer.clone(),
            config.log.origin.clone(),
            limits,
            metrics.clone(),
            clock.clone(),
        )
        .await
        .context("starting the sequencer")?;
        tracing::info!(log_size = sequencer.head().size, verifier_key = %verifier, "log opened");
        let blocklists = Arc::new(Blocklists::new(
            reader.clone(),
            registry,
            pseudonyms.clone(),
            clock.clone(),
            config.blocklist.validity_secs,
            metrics.clone(),
            sequencer.state_changes(),
        ));
        let checkpointer = tokio::spawn(store.clone().run_checkpointer());
        let state = AppState {
            ledger: Ledger {
                reader,
                sequencer,
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
        Ok(Service {
            state,
            store,
            sequencer_task,
            checkpointer,
            warm_up,
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
            store,
            sequencer_task,
            checkpointer,
            warm_up,
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
        sequencer_task.await.context("sequencer task")?;
        checkpointer.abort();
        store.close().await;
        drop(warm_up);
        Ok(())
    }
}

/// On a database with no credential at all, creates an admin credential and prints it once.
async fn bootstrap_admin(store: &SqliteStore, clock: &dyn Clock) -> anyhow::Result<()> {
    if !credentials::list(store).await?.is_empty() {
        return Ok(());
    }
    let binding = Binding::new(Role::Admin, None, None)?;
    let (id, secret) = credentials::create(store, clock, &binding, Some("bootstrap")).await?;
    println!(
        "Created the first admin credential {id}. Its secret is shown only this once:\n\n  {secret}\n\n\
         Store it safely; create others with `tokenledger-server credential create`."
    );
    tracing::info!(credential = %id, "created the bootstrap admin credential");
    Ok(())
}
