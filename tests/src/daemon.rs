//! Processes of the real-daemon tests (ARC A-REX, XRootD): a daemon stopped when its guard
//! drops, a watchdog that kills every daemon when a whole test runs too long, and the small
//! helpers around them (free loopback ports, file modes, log tails).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a stopped daemon may take to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// Daemons of this test process that the watchdog kills.
static DAEMONS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Makes the [`watchdog`] kill `pid`, a daemon the test started elsewhere (the ledger).
pub fn register(pid: u32) {
    DAEMONS.lock().expect("daemons").push(pid);
}

fn unregister(pid: u32) {
    DAEMONS.lock().expect("daemons").retain(|p| *p != pid);
}

/// Bounds the whole test: after `limit` a thread kills the registered daemons and ends this
/// process with a failure (drop guards cannot run then, hence the registry). Every wait is
/// bounded as well; this catches the sum.
pub fn watchdog(limit: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        // Held to the end: no daemon starts after this.
        let daemons = DAEMONS.lock().unwrap_or_else(|e| e.into_inner());
        eprintln!("the test exceeded {limit:?}: killing its daemons {daemons:?} and failing");
        for pid in daemons.iter() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        std::process::exit(101);
    });
}

/// A daemon the test started, registered with the [`watchdog`]; stopped (SIGTERM, then
/// SIGKILL after a bound) and reaped when dropped.
pub struct Daemon {
    child: Option<Child>,
    pid: u32,
}

impl Daemon {
    /// Spawns `cmd`. Spawned and registered under the watchdog's lock, so the watchdog never
    /// misses it.
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Daemon> {
        let mut daemons = DAEMONS.lock().expect("daemons");
        let child = cmd.spawn()?;
        let pid = child.id();
        daemons.push(pid);
        Ok(Daemon {
            child: Some(child),
            pid,
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// How it exited, if it has (then it is reaped and no longer the watchdog's).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        unregister(self.pid);
        Some(status)
    }

    /// Waits, at most `timeout`, until something accepts TCP connections on
    /// 127.0.0.1:`port`; `Err` with the reason when the daemon exits first or time is up.
    pub fn wait_for_port(&mut self, port: u16, timeout: Duration) -> Result<(), String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return Err(format!("it exited ({status}) before listening on {addr}"));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("nothing listens on {addr} after {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops it (SIGTERM, then SIGKILL after a bound) and reaps it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while !matches!(child.try_wait(), Ok(Some(_))) {
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Only now: until reaped, the watchdog may still have to kill it.
        unregister(self.pid);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port nobody listens on (the test's network namespace is private, so nothing
/// else takes it in between).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Sets a file's permission bits.
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// A whole file as text (invalid UTF-8 replaced), or "" if it cannot be read.
pub fn read_or_empty(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The last `n` lines of a file under a header naming it, for failure messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("(cannot read: {e})"));
    let lines: Vec<&str> = text.lines().collect();
    format!(
        "--- {} (last {n} lines) ---\n{}",
        path.display(),
        lines[lines.len().saturating_sub(n)..].join("\n")
    )
}
