//! Running `tokenledger ingest` in tests: one-shot runs and their summary line, followers
//! stopped with SIGTERM, the offset their state file saved, and bounded waits for the server
//! to catch up.

use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{TestServer, run_cli};

/// Bound on waiting for something a test can poll; not a performance threshold.
pub const WAIT: Duration = Duration::from_secs(60);

/// Runs `tokenledger ingest --server URL --token SECRET <args>`.
pub fn ingest(server: &TestServer, token: &str, args: &[&str]) -> Output {
    let mut all = vec!["ingest", "--server", server.url(), "--token", token];
    all.extend_from_slice(args);
    run_cli(&all)
}

/// A run's standard output, trimmed: the summary line of an ingest.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Polls `done` until it holds; fails the test after [`WAIT`].
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The offset a follower's state file records.
pub fn saved_offset(state: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(state).ok()?;
    serde_json::from_str::<Value>(&text).ok()?["offset"].as_u64()
}

/// Sends SIGTERM and waits (bounded) for the follower to exit; returns its output.
pub fn terminate(mut child: Child) -> Output {
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + WAIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("tokenledger ingest --follow did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}
