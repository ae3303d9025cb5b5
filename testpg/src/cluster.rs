//! A private PostgreSQL cluster: `initdb` in a temp dir, a server on a free loopback port
//! (socket in that dir, fsync on), and a watchdog process that stops the server and removes
//! the dir once the test process is gone, so no cluster outlives its tests.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::TestDatabase;
use crate::programs::{self, output_text, server_command};

/// The superuser of a private cluster (`initdb -U`), whoever runs the tests.
const SUPERUSER: &str = "postgres";

/// A PostgreSQL server of this test process in a temp dir. An owned one ([`Cluster::start`])
/// stops and is removed when dropped; the shared one ([`crate::cluster`]) when the process ends.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    data_dir: PathBuf,
    port: u16,
    base_url: String,
}

impl Cluster {
    /// Makes and starts a new cluster (trust authentication, UTF8, no locale).
    pub fn start() -> Cluster {
        let (dir, data_dir) = new_dir();
        let out = server_command("initdb")
            .arg("-D")
            .arg(&data_dir)
            .args([
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .output()
            .unwrap_or_else(|e| panic!("initdb cannot run: {e}"));
        assert!(out.status.success(), "initdb failed: {}", output_text(&out));
        Cluster::launch(dir, data_dir)
    }

    /// Makes and starts a streaming standby of this cluster (`pg_basebackup -R`), and waits
    /// until it streams. It is asynchronous until the primary names it in
    /// `synchronous_standby_names` (`primary.set("synchronous_standby_names", "'*'")`).
    pub fn replica(&self) -> Cluster {
        let (dir, data_dir) = new_dir();
        let out = server_command("pg_basebackup")
            .arg("-D")
            .arg(&data_dir)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
            ])
            .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"])
            .output()
            .unwrap_or_else(|e| panic!("pg_basebackup cannot run: {e}"));
        assert!(
            out.status.success(),
            "pg_basebackup failed: {}",
            output_text(&out)
        );
        let replica = Cluster::launch(dir, data_dir);
        let streaming = "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'";
        let before = Instant::now();
        while self.query(streaming) == "0" {
            assert!(
                before.elapsed() < Duration::from_secs(60),
                "the replica does not stream after 60 s: {}",
                replica.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        replica
    }

    /// The URL of the superuser on the `postgres` database.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The loopback port the server listens on (the same after a restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A fresh database on this cluster, dropped with the value.
    pub fn database(&self) -> TestDatabase {
        TestDatabase::create(&self.base_url)
    }

    /// Runs `sql` on the `postgres` database (see [`TestDatabase::query`]).
    pub fn query(&self, sql: &str) -> String {
        programs::psql(&self.base_url, sql)
    }

    /// Sets a server parameter (`ALTER SYSTEM`, then a reload); `value` is SQL (quote strings).
    pub fn set(&self, name: &str, value: &str) {
        self.query(&format!("ALTER SYSTEM SET {name} = {value}"));
        self.query("SELECT pg_reload_conf()");
    }

    /// The postmaster's process id.
    pub fn postmaster_pid(&self) -> u32 {
        let pid_file = std::fs::read_to_string(self.data_dir.join("postmaster.pid"))
            .unwrap_or_else(|e| panic!("the cluster has no postmaster.pid: {e}"));
        pid_file
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("postmaster.pid starts with the postmaster's pid")
    }

    /// Stops the server (fast shutdown: sessions are ended, the data is checkpointed).
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "60"]);
    }

    /// `kill -9` of the server as in a crash of its machine: the postmaster, then every
    /// process it started (left alone, its backends would live on for a moment, and one could
    /// still finish a commit).
    pub fn kill9(&self) {
        let postmaster = self.postmaster_pid();
        let children = children_of(postmaster);
        let kill = |pids: &[u32]| {
            Command::new("kill")
                .arg("-9")
                .args(pids.iter().map(u32::to_string))
                .output()
                .unwrap_or_else(|e| panic!("kill cannot run: {e}"))
        };
        let out = kill(&[postmaster]);
        assert!(
            out.status.success(),
            "kill -9 {postmaster} failed: {}",
            output_text(&out)
        );
        if !children.is_empty() {
            // Some may have exited meanwhile: kill's complaint about them is no failure.
            kill(&children);
        }
    }

    /// Starts the stopped or killed server again on the same port (crash recovery included).
    pub fn start_again(&self) {
        // After a kill -9 the orphaned backends take a moment to exit and release the
        // shared memory; the postmaster refuses to start until they have.
        let before = Instant::now();
        while let Err(e) = start_server(&self.dir, &self.data_dir) {
            assert!(
                before.elapsed() < Duration::from_secs(30),
                "the cluster does not start again: {e}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Promotes a standby to a primary and waits until it accepts writes.
    pub fn promote(&self) {
        self.pg_ctl(&["promote", "-w", "-t", "60"]);
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Configures the server in `data_dir` on a free port and starts it, trying other ports
    /// if the one picked was taken in the meantime.
    fn launch(dir: PathBuf, data_dir: PathBuf) -> Cluster {
        for _ in 0..5 {
            let port = free_port();
            configure(&dir, &data_dir, port);
            match start_server(&dir, &data_dir) {
                Ok(()) => {
                    return Cluster {
                        base_url: format!("postgres://{SUPERUSER}@127.0.0.1:{port}/postgres"),
                        dir,
                        data_dir,
                        port,
                    };
                }
                Err(e) if e.contains("Address already in use") => continue,
                Err(e) => panic!("the private PostgreSQL cluster does not start: {e}"),
            }
        }
        panic!("the private PostgreSQL cluster found no free port in five tries");
    }

    fn pg_ctl(&self, args: &[&str]) {
        let out = server_command("pg_ctl")
            .args(args)
            .arg("-D")
            .arg(&self.data_dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("pg_ctl cannot run: {e}"));
        assert!(
            out.status.success(),
            "pg_ctl {args:?} failed: {}\n{}",
            output_text(&out),
            self.log()
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = server_command("pg_ctl")
            .args(["stop", "-m", "immediate", "-D"])
            .arg(&self.data_dir)
            .stdin(Stdio::null())
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Appends the settings of a cluster in `dir` on `port` to `postgresql.conf` (later lines
/// win, so a replica's copy of its primary's settings is overridden).
fn configure(dir: &Path, data_dir: &Path, port: u16) {
    use std::io::Write;
    let settings = format!(
        "\n# tokenledger-testpg\n\
         listen_addresses = '127.0.0.1'\n\
         port = {port}\n\
         unix_socket_directories = '{dir}'\n\
         fsync = on\n\
         synchronous_commit = on\n\
         shared_buffers = 32MB\n\
         max_connections = 300\n",
        dir = dir.display()
    );
    std::fs::OpenOptions::new()
        .append(true)
        .open(data_dir.join("postgresql.conf"))
        .and_then(|mut f| f.write_all(settings.as_bytes()))
        .unwrap_or_else(|e| panic!("cannot write the cluster's postgresql.conf: {e}"));
}

/// `pg_ctl start` of the server in `data_dir`, logging to `dir/server.log`; waits until it
/// accepts connections. The error holds pg_ctl's output and the log.
fn start_server(dir: &Path, data_dir: &Path) -> Result<(), String> {
    let log = dir.join("server.log");
    let out = server_command("pg_ctl")
        .arg("start")
        .arg("-D")
        .arg(data_dir)
        .arg("-l")
        .arg(&log)
        .args(["-w", "-t", "60"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("pg_ctl cannot run: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        Err(format!("{}\n{log}", output_text(&out)))
    }
}

/// A new temp dir for a cluster, owned by the server's user, with its watchdog; and the
/// data dir to be, inside.
fn new_dir() -> (PathBuf, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("tokenledger-pg-")
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot make a temp dir for a PostgreSQL cluster: {e}"))
        .keep();
    programs::give_to_server_user(&dir);
    let data_dir = dir.join("data");
    watchdog(&dir, &data_dir);
    (dir, data_dir)
}

/// Leaves a shell running, in its own process group (a Ctrl-C of the tests does not reach
/// it) and detached (the shell started here forks it and exits), that waits for this process
/// to exit, then stops the server of `data_dir` at once and removes `dir`.
fn watchdog(dir: &Path, data_dir: &Path) {
    use std::os::unix::process::CommandExt;
    const SCRIPT: &str = r#"pid=$1 dir=$2; shift 2
(
    while kill -0 "$pid" 2>/dev/null; do sleep 1; done
    "$@" >/dev/null 2>&1
    rm -rf "$dir"
) &"#;
    let mut stop = server_command("pg_ctl");
    stop.args(["stop", "-m", "immediate", "-D"]).arg(data_dir);
    let started = Command::new("sh")
        .args(["-c", SCRIPT, "sh"])
        .arg(std::process::id().to_string())
        .arg(dir)
        .arg(stop.get_program())
        .args(stop.get_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .status()
        .unwrap_or_else(|e| panic!("cannot start the PostgreSQL cluster's watchdog (sh): {e}"));
    assert!(
        started.success(),
        "the PostgreSQL cluster's watchdog does not start: {started}"
    );
}

/// The processes whose parent is `pid` (from `/proc/<pid>/stat`: the parent follows the
/// command name in parentheses and the state).
fn children_of(pid: u32) -> Vec<u32> {
    let parent_of = |stat: &str| -> Option<u32> {
        let after_name = &stat[stat.rfind(')')? + 1..];
        after_name.split_whitespace().nth(1)?.parse().ok()
    };
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|child| {
                    std::fs::read_to_string(format!("/proc/{child}/stat"))
                        .is_ok_and(|stat| parent_of(&stat) == Some(pid))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A loopback port free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}
