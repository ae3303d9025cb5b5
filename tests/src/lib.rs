//! Harness of the end-to-end tests: starts the real `tokenledger-server` binary on a temporary
//! data directory, on SQLite or PostgreSQL ([`backend`]), talks to it over loopback HTTP, runs
//! the real `tokenledger` CLI against it, and opens its SQLite file directly where a
//! (SQLite-only) test has to inspect or tamper with storage.
//!
//! Binaries are found next to the test executable (`target/debug/deps/<test>` →
//! `target/debug/<bin>`); build them first with `cargo build --workspace --bins` (or run
//! `cargo test --workspace`, which builds them). A [`TestServer`] kills its child on drop, so a
//! failing test leaves no process behind.

pub mod arc;
pub mod backend;
pub mod daemon;
pub mod db;
pub mod https_issuer;
pub mod ingest;
pub mod issuer;
pub mod netns;
pub mod pki;
pub mod site;
pub mod tls_client;
pub mod xrootd;

use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long a server may take to print its listening line, or to exit after SIGTERM. A bound on
/// waiting (a hung server fails the test instead of hanging it), not a performance threshold.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on any single HTTP exchange.
const HTTP_TIMEOUT: Duration = Duration::from_secs(60);
/// The file the server's stderr goes to.
pub const SERVER_LOG: &str = "server-stderr.log";
/// The line the server prints once it accepts connections.
const LISTENING_PREFIX: &str = "tokenledger-server listening on ";
/// Environment variables of the binaries that must not leak in from the caller's shell.
const FOREIGN_ENV: [&str; 13] = [
    "TOKENLEDGER_CONFIG",
    "TOKENLEDGER_DATABASE",
    "TOKENLEDGER_DATA_DIR",
    "TOKENLEDGER_LISTEN",
    "TOKENLEDGER_LOG_FORMAT",
    "TOKENLEDGER_SERVER",
    "TOKENLEDGER_LOG_KEY",
    "TOKENLEDGER_TOKEN",
    "TOKENLEDGER_LOG",
    "TOKENLEDGER_TLS_CERT",
    "TOKENLEDGER_TLS_KEY",
    "TOKENLEDGER_BEHIND_TLS_PROXY",
    "TOKENLEDGER_CA_FILE",
];

/// Path of a workspace binary, next to the running test executable.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test executable");
    let mut dir = exe
        .parent()
        .expect("test executable has a directory")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo test --workspace` (or `cargo build --workspace --bins`) \
         before the end-to-end tests",
        path.display()
    );
    path
}

/// The `tokenledger-server` binary.
pub fn server_binary() -> PathBuf {
    binary("tokenledger-server")
}

/// The `tokenledger` CLI binary.
pub fn cli_binary() -> PathBuf {
    binary("tokenledger")
}

fn command(bin: PathBuf) -> Command {
    let mut cmd = Command::new(bin);
    for var in FOREIGN_ENV {
        cmd.env_remove(var);
    }
    cmd.env("NO_COLOR", "1").stdin(Stdio::null());
    cmd
}

/// Runs the real `tokenledger` CLI with `args` and returns what it did.
pub fn run_cli(args: &[&str]) -> Output {
    run_cli_with_env(args, &[])
}

/// Like [`run_cli`], with environment variables set for this run.
pub fn run_cli_with_env(args: &[&str], env: &[(&str, &Path)]) -> Output {
    command(cli_binary())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("running tokenledger")
}

/// Runs `tokenledger-server <args>` where it must refuse to start: waits, bounded, for it to
/// exit and returns what it printed (without backtraces); panics if it keeps running.
pub fn run_refused_server(args: &[&str]) -> Output {
    run_refused_server_with_env(args, &[])
}

/// Like [`run_refused_server`], with environment variables set for it.
pub fn run_refused_server_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = command(server_binary())
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning tokenledger-server");
    if wait_bounded(&mut child, START_TIMEOUT).is_none() {
        let _ = child.kill();
        let out = child
            .wait_with_output()
            .expect("reaping tokenledger-server");
        panic!("tokenledger-server {args:?} kept running: {out:?}");
    }
    child
        .wait_with_output()
        .expect("reading tokenledger-server's output")
}

/// Runs the real `tokenledger-server` with `args` (an offline command) and returns what it did.
pub fn run_server(args: &[&OsStr]) -> Output {
    command(server_binary())
        .args(args)
        .output()
        .expect("running tokenledger-server")
}

/// Runs `tokenledger-server serve` on the data directory `dir`, which it must refuse, and
/// returns its stderr. Panics if it runs instead, or exits 0.
pub fn refused_start(dir: &Path) -> String {
    let dir = dir.to_str().expect("a UTF-8 data directory");
    let out = run_refused_server(&["serve", "--listen", "127.0.0.1:0", "--data-dir", dir]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "tokenledger-server exited 0: {stderr}"
    );
    stderr
}

/// Starts the real `tokenledger` CLI with `args` as a child process, its output piped.
pub fn spawn_cli<I, S>(args: I) -> Child
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    command(cli_binary())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning tokenledger")
}

/// Bound on one CLI run of [`run_cli_with`]: one still running then was waiting on something.
const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// One run of the real `tokenledger` CLI: its exit code and output.
#[derive(Debug)]
pub struct CliRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    /// Its standard output as JSON; panics, with the run, when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:#?}"))
    }
}

/// Runs the real `tokenledger` CLI in an environment holding only `env`, feeding `stdin`
/// (else /dev/null).
pub fn run_cli_with(args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> CliRun {
    time_cli_with(args, env, stdin).0
}

/// [`run_cli_with`], and how long the process took from its start to its exit. One that has
/// not exited after 30 s is killed and fails the test.
pub fn time_cli_with(
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
) -> (CliRun, Duration) {
    let mut cmd = Command::new(cli_binary());
    cmd.env_clear()
        .envs(env.iter().copied())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let started = Instant::now();
    let mut child = cmd.spawn().expect("running tokenledger");
    if let Some(bytes) = stdin {
        // Written and closed at once, as HTCondor does.
        let mut pipe = child.stdin.take().expect("the CLI's stdin");
        pipe.write_all(bytes).expect("writing the CLI's stdin");
    }
    let took = loop {
        if child.try_wait().expect("waiting for tokenledger").is_some() {
            break started.elapsed();
        }
        if started.elapsed() > CLI_TIMEOUT {
            child.kill().expect("killing tokenledger");
            panic!("tokenledger {args:?} did not exit within {CLI_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let out = child.wait_with_output().expect("the CLI's output");
    let run = CliRun {
        code: out.status.code().expect("tokenledger was killed"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    (run, took)
}

/// A credential made by `tokenledger-server credential create`.
#[derive(Clone, Debug)]
pub struct Credential {
    pub id: String,
    pub secret: String,
}

/// One run of `tokenledger verify --json`: its exit code and JSON answer.
#[derive(Debug)]
pub struct VerifyRun {
    pub code: i32,
    pub json: Value,
    pub stderr: String,
}

impl VerifyRun {
    /// Panics with the CLI's output unless it verified (exit 0, `"verified": true`).
    pub fn assert_verified(&self) -> &Value {
        assert_eq!(self.code, 0, "tokenledger verify failed: {self:#?}");
        assert_eq!(self.json["verified"], true, "{self:#?}");
        &self.json
    }
}

/// A running (or stopped) real server on a data directory it owns for the test, and on the
/// PostgreSQL database of the test's backend ([`backend::current`] when it was made).
pub struct TestServer {
    dir: PathBuf,
    /// `--database` of every start and admin command; `None`: the SQLite file of `dir`.
    database_url: Option<String>,
    /// The database made for this server, dropped after it.
    database: Option<tokenledger_testpg::TestDatabase>,
    config: Option<PathBuf>,
    /// The address asked for with `--listen`.
    listen: String,
    /// Variables set (`Some`) or removed (`None`) for every start, after the harness's own.
    env: Vec<(String, Option<String>)>,
    /// Set by [`TestServer::start_in_working_dir`]: the server runs there without
    /// `--data-dir`, and its log file is kept there.
    working_dir: Option<PathBuf>,
    child: Option<Child>,
    url: String,
    admin_secret: Option<String>,
    http: Option<Http>,
}

impl TestServer {
    /// Starts `tokenledger-server serve` on an ephemeral loopback port with `dir` as its data
    /// directory, and waits (bounded) for its listening line. On a fresh directory the server
    /// prints a bootstrap admin secret, which is kept for [`TestServer::admin_secret`].
    pub fn start(dir: &Path) -> TestServer {
        TestServer::launch(dir, None, "127.0.0.1:0")
    }

    /// Like [`TestServer::start`], with environment variables set (`Some`) or removed
    /// (`None`) for this and every later start.
    pub fn start_with_env(dir: &Path, env: &[(&str, Option<&str>)]) -> TestServer {
        let mut server = TestServer::new(dir, None);
        server.set_env(env);
        server.spawn();
        server
    }

    /// Sets (`Some`) or removes (`None`) environment variables for every later start.
    fn set_env(&mut self, env: &[(&str, Option<&str>)]) {
        self.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect();
    }

    /// Writes `config` to a file in `dir` (created), for `--config`.
    fn write_config(dir: &Path, config: &str) -> PathBuf {
        std::fs::create_dir_all(dir).expect("creating the data directory");
        let path = dir.join("e2e-config.toml");
        std::fs::write(&path, config).expect("writing the test configuration");
        path
    }

    /// Starts the server in the working directory `cwd` without `--data-dir`, so that it
    /// uses its default data directory, which [`TestServer::dir`] names (`cwd/data`). The
    /// harness creates nothing in that directory.
    pub fn start_in_working_dir(cwd: &Path) -> TestServer {
        let mut server = TestServer::new(&cwd.join("data"), None);
        server.working_dir = Some(cwd.to_path_buf());
        server.spawn();
        server
    }

    /// Like [`TestServer::start`], with `config` (TOML laid over the embedded default) written
    /// to a file in `dir` and passed as `--config` to this and every later start and admin
    /// command.
    pub fn start_with_config(dir: &Path, config: &str) -> TestServer {
        TestServer::start_listening_on(dir, config, "127.0.0.1:0")
    }

    /// Like [`TestServer::start_with_config`], with environment variables set (`Some`) or
    /// removed (`None`) for this and every later start.
    pub fn start_with_config_and_env(
        dir: &Path,
        config: &str,
        env: &[(&str, Option<&str>)],
    ) -> TestServer {
        let mut server = TestServer::new(dir, Some(TestServer::write_config(dir, config)));
        server.set_env(env);
        server.spawn();
        server
    }

    /// Like [`TestServer::start_with_config`], listening on `listen` (an address other than
    /// loopback only inside a private network namespace: [`netns::inside`]).
    pub fn start_listening_on(dir: &Path, config: &str, listen: &str) -> TestServer {
        TestServer::launch(dir, Some(TestServer::write_config(dir, config)), listen)
    }

    fn launch(dir: &Path, config: Option<PathBuf>, listen: &str) -> TestServer {
        let mut server = TestServer::new(dir, config);
        server.listen = listen.to_string();
        server.spawn();
        server
    }

    /// Starts a server like [`TestServer::start_with_config`], on the PostgreSQL database of
    /// `url` (which the caller owns; other servers may share it), whatever the test's backend.
    /// `url` may list several hosts.
    pub fn start_on_database(dir: &Path, config: &str, url: &str) -> TestServer {
        let config = TestServer::write_config(dir, config);
        let mut server = TestServer::on(dir, Some(config), Some(url.to_string()));
        server.spawn();
        server
    }

    /// A server of the test's backend: on PostgreSQL, with a database made for it.
    fn new(dir: &Path, config: Option<PathBuf>) -> TestServer {
        let database = match backend::current() {
            backend::Backend::Sqlite => None,
            backend::Backend::Postgres => Some(tokenledger_testpg::database()),
        };
        let url = database.as_ref().map(|db| db.url().to_string());
        let mut server = TestServer::on(dir, config, url);
        server.database = database;
        server
    }

    fn on(dir: &Path, config: Option<PathBuf>, database_url: Option<String>) -> TestServer {
        TestServer {
            dir: dir.to_path_buf(),
            database_url,
            database: None,
            config,
            listen: "127.0.0.1:0".to_string(),
            env: Vec::new(),
            working_dir: None,
            child: None,
            url: String::new(),
            admin_secret: None,
            http: None,
        }
    }

    /// Stops the server gracefully (if it runs) and starts it again on the same data directory.
    /// The port changes: use [`TestServer::url`] / [`TestServer::http`] afresh.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.spawn();
    }

    /// Starts the server again after [`TestServer::stop`] or [`TestServer::kill9`].
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is still running");
        self.spawn();
    }

    /// [`TestServer::start_again`] on the port of the last run (and of every later one), so
    /// that clients holding its URL reconnect to it.
    pub fn start_again_on_the_same_port(&mut self) {
        let (_, address) = self.url.rsplit_once("://").expect("a URL of a run");
        self.listen = address.to_string();
        self.start_again();
    }

    /// `tokenledger-server serve` as this server is started: its configuration, listener,
    /// database, data or working directory and environment.
    fn serve_command(&self) -> Command {
        let mut cmd = command(server_binary());
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        cmd.arg("serve").arg("--listen").arg(&self.listen);
        if let Some(url) = &self.database_url {
            cmd.arg("--database").arg(url);
        }
        match &self.working_dir {
            Some(cwd) => cmd.current_dir(cwd),
            None => cmd.arg("--data-dir").arg(&self.dir),
        };
        cmd.env("TOKENLEDGER_LOG", "info,sqlx=warn");
        for (name, value) in &self.env {
            match value {
                Some(value) => cmd.env(name, value),
                None => cmd.env_remove(name),
            };
        }
        cmd
    }

    /// Starts this (stopped) server as [`TestServer::start_again`] would, where it must refuse
    /// to start: returns its stderr. Panics if it keeps running or exits 0.
    pub fn refused_start(&self) -> String {
        assert!(self.child.is_none(), "the server is still running");
        let mut child = self
            .serve_command()
            .env("RUST_BACKTRACE", "0")
            .env("RUST_LIB_BACKTRACE", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning tokenledger-server");
        let kept_running = wait_bounded(&mut child, START_TIMEOUT).is_none();
        if kept_running {
            let _ = child.kill();
        }
        let out = child
            .wait_with_output()
            .expect("reading tokenledger-server's output");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !kept_running && !out.status.success(),
            "tokenledger-server started: {stderr}"
        );
        stderr
    }

    fn spawn(&mut self) {
        if self.working_dir.is_none() {
            std::fs::create_dir_all(&self.dir).expect("creating the data directory");
        }
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.stderr_path())
            .expect("opening the server log file");
        let mut child = self
            .serve_command()
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawning tokenledger-server");
        let stdout = child.stdout.take().expect("piped stdout");
        // The server goes into `self` at once, so that it is killed on drop even if the wait
        // below panics.
        self.child = Some(child);

        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            // Reads until EOF: after the listening line this keeps the pipe drained.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let mut printed = Vec::new();
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix(LISTENING_PREFIX) {
                        break url.trim().to_string();
                    }
                    let trimmed = line.trim();
                    if line.starts_with(char::is_whitespace) && trimmed.starts_with("tlk_") {
                        self.admin_secret = Some(trimmed.to_string());
                    }
                    printed.push(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "tokenledger-server printed no listening line within {START_TIMEOUT:?}\n\
                         stdout so far: {printed:#?}\n{}",
                        self.log_tail()
                    )
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.as_mut().and_then(|c| c.wait().ok());
                    self.child = None;
                    panic!(
                        "tokenledger-server exited ({status:?}) before listening\n\
                         stdout: {printed:#?}\n{}",
                        self.log_tail()
                    )
                }
            }
        };
        let asked_host = self.listen.rsplit_once(':').map(|(host, _)| host);
        let host = url
            .split_once("://")
            .and_then(|(_, rest)| rest.rsplit_once(':'))
            .map(|(host, _)| host);
        assert!(
            host.is_some() && host == asked_host,
            "the server must listen where the test asked ({}), it said {url}",
            self.listen
        );
        self.http = Some(Http::new(&url));
        self.url = url;
    }

    /// Sends SIGTERM (graceful shutdown: drain the sequencer, write a final checkpoint) and
    /// waits, bounded, for the process to exit; panics unless it exits successfully.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("stop: the server is not running");
        let pid = child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        if !sent.as_ref().is_ok_and(|s| s.success()) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kill -TERM {pid} failed: {sent:?}");
        }
        let status = wait_bounded(&mut child, STOP_TIMEOUT);
        self.http = None;
        match status {
            Some(status) => assert!(
                status.success(),
                "tokenledger-server exited with {status} after SIGTERM\n{}",
                self.log_tail()
            ),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "tokenledger-server did not exit within {STOP_TIMEOUT:?} of SIGTERM\n{}",
                    self.log_tail()
                );
            }
        }
    }

    /// Kills the server with SIGKILL (no chance to clean up) and reaps it.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("kill9: the server is not running");
        child.kill().expect("sending SIGKILL");
        child.wait().expect("reaping the killed server");
        self.http = None;
    }

    /// The process id of the current run.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is not running").id()
    }

    /// Base URL, `http://127.0.0.1:PORT` (`https://` with TLS), of the current run.
    pub fn url(&self) -> &str {
        assert!(self.child.is_some(), "the server is not running");
        &self.url
    }

    /// An HTTP client bound to the current run (cheap to clone, usable from many threads).
    pub fn http(&self) -> Http {
        self.http.clone().expect("the server is not running")
    }

    /// The bootstrap admin secret the server printed on its first start.
    pub fn admin_secret(&self) -> &str {
        self.admin_secret
            .as_deref()
            .expect("the server printed no bootstrap admin secret (not a fresh data directory?)")
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The SQLite database in the data directory. Panics on PostgreSQL: a test that reaches
    /// into the file is SQLite-only.
    pub fn db_path(&self) -> PathBuf {
        assert!(
            self.database_url.is_none(),
            "this test reads the SQLite file: run it on SQLite only"
        );
        self.dir.join("tokenledger.db")
    }

    /// A copy of the stopped server's ledger: the files of its data directory and, on
    /// PostgreSQL, its database; for [`TestServer::restore`].
    pub fn snapshot(&self) -> Snapshot {
        assert!(self.child.is_none(), "snapshot of a running server");
        let files = tempfile::tempdir().expect("a temp dir for the snapshot");
        copy_files(&self.dir, files.path());
        let database = self.database_url.as_ref().map(|_| {
            self.database
                .as_ref()
                .expect("a snapshot of a database the harness made")
                .copy()
        });
        Snapshot { files, database }
    }

    /// Rolls the stopped server's ledger back to `snapshot` (which stays as it is, to be
    /// restored again): its files replace the data directory's, and on PostgreSQL the server
    /// moves to a new copy of its database.
    pub fn restore(&mut self, snapshot: &Snapshot) {
        assert!(self.child.is_none(), "restore under a running server");
        for name in ["tokenledger.db-wal", "tokenledger.db-shm"] {
            let _ = std::fs::remove_file(self.dir.join(name));
        }
        copy_files(snapshot.files.path(), &self.dir);
        if let Some(database) = &snapshot.database {
            let copy = database.copy();
            self.database_url = Some(copy.url().to_string());
            self.database = Some(copy);
        }
    }

    /// Where the server keeps its ledger, for the inspections of [`db`] that read both backends.
    pub fn db(&self) -> db::Database {
        match &self.database_url {
            Some(url) => db::Database::Postgres(url.clone()),
            None => db::Database::Sqlite(self.dir.join("tokenledger.db")),
        }
    }

    /// The PostgreSQL URL the server runs on (`None` on SQLite).
    pub fn database_url(&self) -> Option<&str> {
        self.database_url.as_deref()
    }

    /// Where the server's stderr (its log) goes, across restarts: `server-stderr.log` in the
    /// data directory (in the working directory of [`TestServer::start_in_working_dir`]).
    pub fn stderr_path(&self) -> PathBuf {
        self.working_dir
            .as_deref()
            .unwrap_or(&self.dir)
            .join(SERVER_LOG)
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.stderr_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        format!(
            "--- server log ({}) ---\n{tail}",
            self.stderr_path().display()
        )
    }

    /// Runs `tokenledger-server [--config FILE] <args> --data-dir DIR` (an offline admin
    /// command), with `TOKENLEDGER_DATABASE` set to the server's PostgreSQL database if any.
    pub fn admin_command(&self, args: &[&str]) -> Output {
        let mut cmd = command(server_binary());
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        if let Some(url) = &self.database_url {
            cmd.env("TOKENLEDGER_DATABASE", url);
        }
        cmd.args(args)
            .arg("--data-dir")
            .arg(&self.dir)
            .output()
            .expect("running tokenledger-server")
    }

    /// Creates a credential with the real admin command; `vo` for VO-bound roles. Returns the secret.
    pub fn create_credential(&self, role: &str, vo: Option<&str>) -> String {
        self.create_credential_with_id(role, vo).secret
    }

    /// An `issuer` credential of `vo`, bound to [`issuer_of`]`(vo)`, so that it may report
    /// the unsigned claims that [`report`] builds. Returns the secret.
    pub fn create_issuer(&self, vo: &str) -> String {
        let iss = issuer_of(vo);
        self.credential(&["--role", "issuer", "--vo", vo, "--issuer", &iss])
            .secret
    }

    /// Like [`TestServer::create_credential`], also returning the credential's id.
    pub fn create_credential_with_id(&self, role: &str, vo: Option<&str>) -> Credential {
        let mut args = vec!["--role", role];
        if let Some(vo) = vo {
            args.extend(["--vo", vo]);
        }
        self.credential(&args)
    }

    /// Runs `tokenledger-server credential create <args> --json --data-dir DIR`.
    pub fn credential(&self, args: &[&str]) -> Credential {
        let mut all = vec!["credential", "create"];
        all.extend_from_slice(args);
        all.push("--json");
        let out = self.admin_command(&all);
        assert!(out.status.success(), "credential create failed: {out:?}");
        let json: Value = serde_json::from_slice(&out.stdout).expect("credential create --json");
        let credential = Credential {
            id: json["id"].as_str().expect("id").to_string(),
            secret: json["secret"].as_str().expect("secret").to_string(),
        };
        assert!(credential.secret.starts_with("tlk_"), "{json}");
        credential
    }

    /// Revokes a credential with the real admin command.
    pub fn revoke_credential(&self, id: &str) {
        let out = self.admin_command(&["credential", "revoke", id]);
        assert!(out.status.success(), "credential revoke failed: {out:?}");
    }

    /// `GET /healthz` → `log_size`.
    pub fn log_size(&self) -> u64 {
        self.http().log_size()
    }

    /// `GET /v1/log/key`, without its trailing newline.
    pub fn log_key(&self) -> String {
        let reply = self.http().get("/v1/log/key", None);
        assert_eq!(reply.status, 200, "{reply:?}");
        assert!(reply.body.ends_with('\n'), "{reply:?}");
        reply.body.trim_end().to_string()
    }

    /// `GET /v1/log/checkpoint`: the signed note.
    pub fn checkpoint(&self) -> String {
        let reply = self.http().get("/v1/log/checkpoint", None);
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.body
    }

    /// Runs `tokenledger verify --server URL --log-key KEY --json` plus `extra` arguments.
    pub fn verify(&self, log_key: &str, extra: &[&str]) -> VerifyRun {
        let mut args = vec![
            "verify",
            "--server",
            self.url(),
            "--log-key",
            log_key,
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = run_cli(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "tokenledger verify printed no JSON ({e}): {out:?}\n{}",
                self.log_tail()
            )
        });
        VerifyRun {
            code: out
                .status
                .code()
                .expect("tokenledger verify was killed by a signal"),
            json,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// A copy of a stopped server's ledger ([`TestServer::snapshot`]).
pub struct Snapshot {
    files: tempfile::TempDir,
    database: Option<tokenledger_testpg::TestDatabase>,
}

/// Copies the files (not the folders) of the directory `from` into `to`, replacing them there.
fn copy_files(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("creating the copy's directory");
    for file in std::fs::read_dir(from).expect("reading the directory to copy") {
        let file = file.expect("a directory entry");
        if file.file_type().expect("its type").is_file() {
            std::fs::copy(file.path(), to.join(file.file_name())).expect("copying a file");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits up to `limit` for `child` to exit; `None` if it did not.
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for the server") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An HTTP answer: status, selected headers and the body as text.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    pub www_authenticate: Option<String>,
    pub etag: Option<String>,
    pub body: String,
}

impl Reply {
    /// The body as JSON; panics (showing the body) if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {self:?}"))
    }

    /// Asserts the API's error shape: this status, a JSON content type and exactly
    /// `{"error": {"code": <code>, "message": <non-empty string>}}`.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "wrong status: {self:?}");
        assert!(
            self.content_type
                .as_deref()
                .is_some_and(|t| t.starts_with("application/json")),
            "error without a JSON content type: {self:?}"
        );
        let json = self.json();
        let outer = json.as_object().expect("error body is an object");
        assert_eq!(outer.len(), 1, "only `error` at the top: {self:?}");
        let error = json["error"].as_object().expect("`error` is an object");
        assert_eq!(
            error.len(),
            2,
            "error has exactly code and message: {self:?}"
        );
        assert_eq!(error["code"], code, "wrong error code: {self:?}");
        let message = error["message"].as_str().expect("message is a string");
        assert!(!message.is_empty(), "empty error message: {self:?}");
        if status == 401 {
            assert_eq!(
                self.www_authenticate.as_deref(),
                Some("Bearer"),
                "401 without WWW-Authenticate: Bearer: {self:?}"
            );
        }
    }
}

/// A small blocking HTTP client bound to one server run; 4xx/5xx are answers, not errors.
#[derive(Clone)]
pub struct Http {
    base: String,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http").field("base", &self.base).finish()
    }
}

impl Http {
    /// A client for `base` (`http://127.0.0.1:PORT`).
    pub fn new(base: &str) -> Http {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(HTTP_TIMEOUT))
            .build()
            .into();
        Http {
            base: base.trim_end_matches('/').to_string(),
            agent,
        }
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends one request; `Err` only for transport failures (refused, reset, timeout).
    pub fn try_send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Option<&[u8]>,
    ) -> Result<Reply, ureq::Error> {
        let authorization = token.map(|t| format!("Bearer {t}"));
        self.exchange(method, path, authorization.as_deref(), content_type, body)
    }

    /// Sends one request with a raw `Authorization` header value (or none), for the
    /// malformed credentials a bearer token cannot express.
    pub fn send_with_authorization(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        content_type: Option<&str>,
        body: Option<&[u8]>,
    ) -> Reply {
        self.exchange(method, path, authorization, content_type, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    fn exchange(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        content_type: Option<&str>,
        body: Option<&[u8]>,
    ) -> Result<Reply, ureq::Error> {
        let url = self.url(path);
        let response = match (method, body) {
            ("GET" | "DELETE" | "HEAD" | "OPTIONS", None) => {
                let mut request = match method {
                    "GET" => self.agent.get(&url),
                    "DELETE" => self.agent.delete(&url),
                    "HEAD" => self.agent.head(&url),
                    _ => self.agent.options(&url),
                };
                if let Some(auth) = authorization {
                    request = request.header("Authorization", auth);
                }
                request.call()?
            }
            ("POST" | "PUT" | "PATCH", body) => {
                let mut request = match method {
                    "POST" => self.agent.post(&url),
                    "PUT" => self.agent.put(&url),
                    _ => self.agent.patch(&url),
                };
                if let Some(auth) = authorization {
                    request = request.header("Authorization", auth);
                }
                if let Some(content_type) = content_type {
                    request = request.header("Content-Type", content_type);
                }
                request.send(body.unwrap_or_default())?
            }
            _ => panic!("unsupported request in the harness: {method} with body {body:?}"),
        };
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let status = response.status().as_u16();
        let content_type = header("content-type");
        let www_authenticate = header("www-authenticate");
        let etag = header("etag");
        let body = response
            .into_body()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()?;
        Ok(Reply {
            status,
            content_type,
            www_authenticate,
            etag,
            body,
        })
    }

    /// `GET path` with a bearer credential and extra request headers.
    pub fn get_with_headers(&self, path: &str, token: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = self
            .agent
            .get(self.url(path))
            .header("Authorization", format!("Bearer {token}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.call().unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (status, content_type, www_authenticate, etag) = (
            response.status().as_u16(),
            header("content-type"),
            header("www-authenticate"),
            header("etag"),
        );
        let body = response.into_body().read_to_string().unwrap_or_default();
        Reply {
            status,
            content_type,
            www_authenticate,
            etag,
            body,
        }
    }

    /// Like [`Http::try_send`], panicking on a transport failure.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Option<&[u8]>,
    ) -> Reply {
        self.try_send(method, path, token, content_type, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// `GET path`, with a bearer credential if given.
    pub fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send("GET", path, token, None, None)
    }

    /// `POST path` with a JSON body.
    pub fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.send(
            "POST",
            path,
            token,
            Some("application/json"),
            Some(body.to_string().as_bytes()),
        )
    }

    /// `POST /v1/issuances`; `Err` only for transport failures.
    pub fn try_append(&self, token: &str, body: &Value) -> Result<Reply, ureq::Error> {
        self.try_send(
            "POST",
            "/v1/issuances",
            Some(token),
            Some("application/json"),
            Some(body.to_string().as_bytes()),
        )
    }

    /// `POST /v1/issuances`.
    pub fn append(&self, token: &str, body: &Value) -> Reply {
        self.post_json("/v1/issuances", Some(token), body)
    }

    /// `GET /healthz` → `log_size`.
    pub fn log_size(&self) -> u64 {
        let reply = self.get("/healthz", None);
        assert_eq!(reply.status, 200, "{reply:?}");
        let json = reply.json();
        assert_eq!(json["status"], "ok", "{json}");
        json["log_size"].as_u64().expect("log_size is a number")
    }

    /// Every entry `start..end` (end exclusive), paging 1000 at a time, as (index, entry JSON,
    /// leaf bytes). Needs an admin (or ledger-wide auditor) credential.
    pub fn entries(&self, token: &str, start: u64, end: u64) -> Vec<ServedEntry> {
        let mut out = Vec::new();
        let mut from = start;
        while from < end {
            let to = end.min(from + 1000);
            let reply = self.get(
                &format!("/v1/log/entries?start={from}&end={to}"),
                Some(token),
            );
            assert_eq!(reply.status, 200, "{reply:?}");
            let json = reply.json();
            let page = json["entries"].as_array().expect("entries is a list");
            assert_eq!(page.len() as u64, to - from, "short page {from}..{to}");
            for item in page {
                out.push(ServedEntry::from_json(item));
            }
            from = to;
        }
        out
    }
}

/// One served entry, with its leaf bytes decoded and checked against the decoded entry.
#[derive(Debug, Clone)]
pub struct ServedEntry {
    pub index: u64,
    pub leaf: Vec<u8>,
    pub entry: Value,
}

impl ServedEntry {
    fn from_json(item: &Value) -> ServedEntry {
        use base64::Engine;
        let index = item["index"].as_u64().expect("index");
        let leaf = base64::engine::general_purpose::STANDARD
            .decode(item["leaf"].as_str().expect("leaf is base64 text"))
            .expect("leaf is valid base64");
        let decoded: Value = serde_json::from_slice(&leaf).expect("leaf is JSON");
        assert_eq!(
            decoded, item["entry"],
            "entry {index}: leaf and entry differ"
        );
        ServedEntry {
            index,
            leaf,
            entry: item["entry"].clone(),
        }
    }

    /// The issuance's `jti`.
    pub fn jti(&self) -> &str {
        self.entry["jti"].as_str().expect("entry has a jti")
    }
}

/// The issuer URL the tests use for `vo`.
pub fn issuer_of(vo: &str) -> String {
    format!("https://{vo}-auth.example.org/")
}

/// A well-formed issuance report of VO `vo` with token id `jti`: a token issued now, valid
/// for an hour, of issuer [`issuer_of`]`(vo)`.
pub fn report(jti: &str, vo: &str) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    json!({
        "claims": {
            "jti": jti,
            "iss": issuer_of(vo),
            "sub": format!("sub-{}", jti.len() % 7),
            "vo": vo,
            "client_id": "e2e-client",
            "scope": "openid compute.read storage.read:/",
            "iat": now,
            "exp": now + 3600,
        }
    })
}

/// A batch (JSON array) of reports for `jtis`.
pub fn batch<S: AsRef<str>>(jtis: &[S], vo: &str) -> Value {
    Value::Array(jtis.iter().map(|j| report(j.as_ref(), vo)).collect())
}
