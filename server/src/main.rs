//! `tokenledger-server`: run the ledger, manage its credentials on the data directory, back
//! its database up and restore it, copy it into PostgreSQL.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tokenledger_core::access::{Binding, Role};
use tokenledger_core::ids::{Site, Vo};
use tokenledger_server::app::{Database, Service, Store, default_advertise};
use tokenledger_server::clock::{Clock, SystemClock};
use tokenledger_server::config::{Config, DEFAULT_CONFIG, DatabaseUrlText, validate_site_name};
use tokenledger_server::logging::{self, LogFormat};
use tokenledger_server::store::migrate::{self, MigrationReport, Progress};
use tokenledger_server::store::postgres::DatabaseUrl;
use tokenledger_server::store::sqlite::backup::{self, LogState};
use tokenledger_server::store::sqlite::vacuum;
use tokenledger_server::tls::{TlsArgs, Transport};
use tokenledger_server::{credentials, data_dir, systemd};

#[derive(Parser, Debug)]
#[command(
    name = "tokenledger-server",
    version,
    about = "The tokenledger service: an append-only, signed log of token issuances"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args, Debug)]
struct Common {
    /// Configuration file laid over the embedded default (policies/default.toml).
    #[arg(long, global = true, env = "TOKENLEDGER_CONFIG")]
    config: Option<PathBuf>,
    /// Directory of the database, the log key and the pseudonym secret (unless
    /// server.log_key_file / ledger_secret_file name them), created 0700 if missing
    /// [default: server.data_dir, "data" in the working directory].
    #[arg(long, global = true, env = "TOKENLEDGER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The ledger's database: a PostgreSQL URL (`postgres://user@host1,host2/db`) shared by
    /// any number of servers [default: database.url; none: the SQLite file in the data
    /// directory]. fsck, backup, restore and vacuum work on the SQLite file only.
    #[arg(
        long,
        global = true,
        env = "TOKENLEDGER_DATABASE",
        hide_env_values = true,
        value_name = "URL"
    )]
    database: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (the default when no command is given).
    Serve(ServeArgs),
    /// Create, list or revoke API credentials (works while the server runs).
    #[command(subcommand)]
    Credential(CredentialCommand),
    /// Add a site (or replace the VOs it serves), or list sites.
    #[command(subcommand)]
    Site(SiteCommand),
    /// Print the default configuration.
    Config,
    /// Check the whole store in the data directory (stopped or running server; read-only):
    /// every leaf against its stored hash, the stored tree, row counts, the newest
    /// checkpoint. Exit 0 and one line when clean; 1 and one line per problem; 2 if the
    /// store cannot be read.
    Fsck,
    /// Copy the database into a new file (0600) while the server runs: one consistent
    /// snapshot. The log key (log.key) and the pseudonym secret (ledger.secret) are not in
    /// it: keep copies of those two files (0600) apart from it, once; they never change.
    Backup {
        /// The backup file to create; an existing file is never replaced.
        #[arg(long)]
        to: PathBuf,
    },
    /// Rewrite the SQLite database (the server stopped) so that it gives the space retention
    /// frees back to the file system: databases made by this version do from the start; one
    /// made before reuses its free pages for new entries until converted once. Needs free disk
    /// about twice the database's size, and the server stopped while it runs (minutes on a
    /// large log).
    Vacuum,
    /// Put a backup in place as the database of the data directory (the server stopped).
    /// Entries logged after the backup are lost. Copy log.key and ledger.secret (0600) into
    /// the data directory too (or where server.log_key_file / ledger_secret_file name them):
    /// the server refuses to start a non-empty log without them.
    Restore {
        /// The backup file (made by `tokenledger-server backup`).
        #[arg(long)]
        from: PathBuf,
        /// Replace the data directory's database; refused while a process has it open.
        #[arg(long)]
        force: bool,
    },
    /// Copy the data directory's SQLite ledger into an empty PostgreSQL database, and check
    /// the copy (row counts, every leaf against its stored hash, the stored tree, the newest
    /// checkpoint's root under the log key) before committing it: all or nothing. The ledger
    /// is read in one snapshot: stop the server first, or entries it logs after the snapshot
    /// are not copied (the summary says the size copied). log.key and ledger.secret stay
    /// files: copy them (0600) into the data directory of every server using the database.
    Migrate {
        /// The PostgreSQL database to copy into (postgres://user@host:port/database); it must
        /// hold no rows.
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

/// Also a parser of its own: with no command given, `serve` runs with these read from the
/// environment alone.
#[derive(Parser, Debug)]
struct ServeArgs {
    /// Address to listen on [default: server.listen, 127.0.0.1:8080].
    #[arg(long, env = "TOKENLEDGER_LISTEN")]
    listen: Option<SocketAddr>,
    /// The name the other servers of a shared database give for this one when it is the
    /// writer [default: server.advertise, else hostname:port of the listener].
    #[arg(long, env = "TOKENLEDGER_ADVERTISE", value_name = "NAME")]
    advertise: Option<String>,
    /// Log format on stderr (colours only on a terminal; no timestamps under journald,
    /// which adds its own).
    #[arg(long, env = "TOKENLEDGER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(flatten)]
    tls: TlsArgs,
}

#[derive(Subcommand, Debug)]
enum SiteCommand {
    /// Add a site (name as in GOCDB/CRIC) serving the given VOs.
    Add {
        name: String,
        /// A VO the site serves; repeat for each.
        #[arg(long = "vo", required = true)]
        vos: Vec<String>,
    },
    /// List sites and their VOs.
    List,
}

#[derive(Subcommand, Debug)]
enum CredentialCommand {
    /// Create a credential and print its secret (shown only once).
    Create {
        /// admin, issuer, vo-security, site-admin, site-reader or auditor.
        #[arg(long)]
        role: Role,
        /// The VO the role is bound to (issuer, vo-security; optional for auditor).
        #[arg(long)]
        vo: Option<String>,
        /// The site the role is bound to (site-admin, site-reader).
        #[arg(long)]
        site: Option<String>,
        /// For issuer: the `iss` whose unsigned claims reports (audit logs, event feeds) this
        /// credential may make; without it only signed JWTs are accepted.
        #[arg(long)]
        issuer: Option<String>,
        /// A note for people: who or what holds it.
        #[arg(long)]
        label: Option<String>,
        /// Print `{"id", "secret"}` as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List credentials (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a credential by id; it stops working at once.
    Revoke { id: String },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = Config::load(cli.common.config.as_deref())?;
    if let Some(dir) = cli.common.data_dir {
        config.server.data_dir = dir;
    }
    if let Some(url) = cli.common.database {
        config.database.url = Some(DatabaseUrlText(url));
    }
    let command = cli
        .command
        .unwrap_or_else(|| Command::Serve(ServeArgs::parse_from(["serve"])));
    match command {
        Command::Serve(args) => serve(config, args).await,
        Command::Credential(cmd) => credential(config, cmd).await,
        Command::Site(cmd) => site(config, cmd).await,
        Command::Config => {
            print!("{DEFAULT_CONFIG}");
            Ok(())
        }
        Command::Fsck => fsck(config).await,
        Command::Backup { to } => {
            Database::of(&config)?.sqlite_file("backup")?;
            let state = backup::backup(&config.db_path(), &to).await?;
            println!(
                "backed up {} to {} at {}",
                config.db_path().display(),
                to.display(),
                describe(&state)
            );
            Ok(())
        }
        Command::Vacuum => {
            Database::of(&config)?.sqlite_file("vacuum")?;
            let path = config.db_path();
            let done = vacuum::vacuum(&path).await?;
            println!(
                "vacuumed {}: {} -> {} bytes; auto_vacuum {} -> incremental",
                path.display(),
                done.bytes_before,
                done.bytes_after,
                match done.auto_vacuum_before {
                    0 => "none",
                    1 => "full",
                    _ => "incremental",
                }
            );
            Ok(())
        }
        Command::Restore { from, force } => restore(config, &from, force).await,
        Command::Migrate { to } => migrate_to(config, &to).await,
    }
}

/// Progress lines on a table (or the check of a log) larger than this are written every this
/// many rows (entries).
const PROGRESS_ROWS: u64 = 100_000;

async fn migrate_to(config: Config, to: &str) -> anyhow::Result<()> {
    let target = DatabaseUrl::parse(to).map_err(anyhow::Error::msg)?;
    eprintln!(
        "migrating {} to {target} (one snapshot of the SQLite ledger, one PostgreSQL \
         transaction)",
        config.db_path().display()
    );
    let mut shown = 0;
    let report = migrate::run(&config, &target, &mut |p: Progress<'_>| match p {
        Progress::Copied {
            table,
            copied,
            total,
        } => {
            if copied == total {
                eprintln!("  copied {table}: {copied} rows");
                shown = 0;
            } else if copied >= shown + PROGRESS_ROWS {
                eprintln!("  copying {table}: {copied} of {total} rows");
                shown = copied;
            }
        }
        Progress::Checked { entries, size } => {
            if entries == size || entries >= shown + PROGRESS_ROWS {
                eprintln!("  checked {entries} of {size} entries and their stored hashes");
                shown = entries;
            }
        }
    })
    .await
    .with_context(|| format!("migrating to {target}"))?;
    println!("{}", migration_summary(&report, &target));
    eprintln!(
        "The log key ({}) and the pseudonym secret ({}) stay files: copy both (mode 0600) to \
         every tokenledger-server that will use {target} (into its data directory, or where its \
         server.log_key_file and server.ledger_secret_file name them).",
        config.log_key_path().display(),
        config.ledger_secret_path().display()
    );
    Ok(())
}

/// `migrated N entries (...) to URL in S s (R entries/s)`.
fn migration_summary(report: &MigrationReport, target: &DatabaseUrl) -> String {
    let seconds = report.elapsed.as_secs_f64();
    let checkpoint = report
        .checkpoint
        .as_ref()
        .map_or("no checkpoint (empty log)".to_string(), |c| {
            format!("newest checkpoint: size {}, checked", c.size)
        });
    format!(
        "migrated {} entries (root {}, base64 {}; {checkpoint}) and {} rows in {} tables to \
         {target} in {seconds:.1} s ({:.0} entries/s)",
        report.size,
        report.root.to_hex(),
        report.root.to_base64(),
        report.rows(),
        report.tables.len(),
        report.size as f64 / seconds.max(1e-9)
    )
}

/// Exit code of `fsck` when it found problems, and when it could not check.
const FSCK_PROBLEMS: i32 = 1;
const FSCK_UNREADABLE: i32 = 2;

async fn fsck(config: Config) -> anyhow::Result<()> {
    if let Err(e) = Database::of(&config).and_then(|db| db.sqlite_file("fsck").map(drop)) {
        eprintln!("fsck: {e:#}");
        std::process::exit(FSCK_UNREADABLE);
    }
    let dir = &config.server.data_dir;
    let report =
        match tokenledger_server::store::sqlite::fsck::run(dir, &config.log_key_path()).await {
            Ok(report) => report,
            Err(e) => {
                eprintln!("fsck: cannot check {}: {e:#}", dir.display());
                std::process::exit(FSCK_UNREADABLE);
            }
        };
    if report.is_clean() {
        println!("{}", report.summary());
        return Ok(());
    }
    for problem in &report.problems {
        println!("{problem}");
    }
    if report.unlisted > 0 {
        println!("... and {} more", report.unlisted);
    }
    println!(
        "fsck: {} problems in {}",
        report.problem_count(),
        dir.display()
    );
    std::process::exit(FSCK_PROBLEMS);
}

/// `log size N, root R (newest stored checkpoint: size M)`.
fn describe(state: &LogState) -> String {
    let newest = state
        .newest_stored_checkpoint
        .map_or("none".to_string(), |size| format!("size {size}"));
    format!(
        "log size {}, root {} (newest stored checkpoint: {newest})",
        state.size,
        state.root.to_base64()
    )
}

async fn restore(config: Config, from: &std::path::Path, force: bool) -> anyhow::Result<()> {
    Database::of(&config)?.sqlite_file("restore")?;
    data_dir::create(&config.server.data_dir)?;
    let state = backup::restore(from, &config, force).await?;
    println!(
        "restored {} from {} at {}",
        config.db_path().display(),
        from.display(),
        describe(&state)
    );
    eprintln!(
        "WARNING: entries logged after this backup are lost. If the ledger published any \
         checkpoint larger than {size} (seen by witnesses, kept in `tokenledger verify` state \
         files, or behind receipts of entries {size} and later), the first entry this ledger \
         logs forks the log from that checkpoint: compare with the newest checkpoint your \
         witnesses hold before starting the server.",
        size = state.size
    );
    for path in [config.log_key_path(), config.ledger_secret_path()] {
        if !path.exists() {
            eprintln!(
                "{} is missing: copy it (mode 0600) from where it is kept; the server will not \
                 start without it.",
                path.display()
            );
        }
    }
    Ok(())
}

async fn serve(mut config: Config, args: ServeArgs) -> anyhow::Result<()> {
    logging::init(args.log_format);
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    if let Some(advertise) = args.advertise {
        config.server.advertise = Some(advertise);
    }
    args.tls.apply(&mut config.server);
    let transport = Transport::for_server(&config.server)?;
    Database::of(&config)?;
    let listen = config.server.listen;
    // Bound first, so that this server's name (`hostname:port`) is known when it takes the
    // writer lease; connections wait in the backlog until it serves.
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    config
        .server
        .advertise
        .get_or_insert_with(|| default_advertise(addr));
    let service = Service::start(config).await?;
    let shutdown = shutdown_signal()?;
    transport.reload_on_sighup()?;
    let scheme = transport.scheme();
    match transport {
        Transport::Plain => {
            announce(scheme, addr);
            service.serve(listener, shutdown).await?;
        }
        Transport::Tls(certificate) => {
            let listener = certificate.listener(listener)?;
            announce(scheme, addr);
            service.serve(listener, shutdown).await?;
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// The line tests and operators wait for, and systemd's readiness: from now on connections
/// are accepted.
fn announce(scheme: &str, addr: SocketAddr) {
    println!("tokenledger-server listening on {scheme}://{addr}");
    tracing::info!(%addr, scheme, "listening");
    systemd::notify_ready(addr);
}

async fn credential(config: Config, cmd: CredentialCommand) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let (reader, registry) = (store.reader(), store.registry());
    match cmd {
        CredentialCommand::Create {
            role,
            vo,
            site,
            issuer,
            label,
            json,
        } => {
            if let Some(vo) = &vo {
                anyhow::ensure!(config.knows_vo(vo), "VO `{vo}` is not in the configuration");
            }
            let binding = Binding::new(role, vo, site)?.with_issuer(issuer)?;
            let (id, secret) =
                credentials::create(registry, &SystemClock, &binding, label.as_deref()).await?;
            if json {
                println!("{}", serde_json::json!({"id": id, "secret": secret}));
            } else {
                println!("{id} {secret}");
            }
        }
        CredentialCommand::List { json } => {
            let list = credentials::list(reader).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for c in list {
                    let state = if c.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    let bound = c
                        .binding
                        .vo
                        .or(c.binding.site)
                        .unwrap_or_else(|| "-".into());
                    println!(
                        "{}\t{}\t{bound}\t{state}\t{}",
                        c.id,
                        c.binding.role,
                        c.label.unwrap_or_default()
                    );
                }
            }
        }
        CredentialCommand::Revoke { id } => {
            let revoked = credentials::revoke(registry, &SystemClock, &id).await?;
            let revoked = revoked.ok_or_else(|| anyhow::anyhow!("no active credential `{id}`"))?;
            if revoked.waited_out {
                eprintln!(
                    "warning: not every server confirmed the revoke; waited until none uses \
                     credentials held from before it"
                );
            }
            println!("revoked {id}");
        }
    }
    store.close().await;
    Ok(())
}

/// The ledger's store (the data directory's SQLite file, created 0700 if missing, or the
/// configured database), for a command run beside or instead of the server.
async fn open_store(config: &Config) -> anyhow::Result<Store> {
    if let Database::Sqlite(_) = Database::of(config)? {
        data_dir::create(&config.server.data_dir)?;
    }
    Store::open(config, Default::default()).await
}

async fn site(config: Config, cmd: SiteCommand) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    match cmd {
        SiteCommand::Add { name, vos } => {
            validate_site_name(&name)?;
            for vo in &vos {
                anyhow::ensure!(config.knows_vo(vo), "VO `{vo}` is not in the configuration");
            }
            let (site, vos): (Site, Vec<Vo>) = (
                Site::unchecked(&name),
                vos.iter().map(Vo::unchecked).collect(),
            );
            store
                .registry()
                .upsert_site(&site, &vos, SystemClock.now_micros())
                .await?;
            println!("site {name}: {}", vos.join(", "));
        }
        SiteCommand::List => {
            for (name, vos) in store.reader().sites().await? {
                println!("{name}\t{}", vos.join(","));
            }
        }
    }
    store.close().await;
    Ok(())
}

/// Installs the SIGTERM and SIGINT handlers now, before the server says it listens (a
/// signal that came between the two would otherwise kill it without draining), and returns
/// the future that resolves on either.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! { _ = term.recv() => {}, _ = interrupt.recv() => {} }
        tracing::info!("shutting down: draining the sequencer");
        systemd::notify_stopping();
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
