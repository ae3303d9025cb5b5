//! `tokenledger-server backup` beside a server under ingest, and `restore` into a new data
//! directory: the restored log is the log at the backup, consistent with every checkpoint
//! issued before it and, as the restore warns, a fork of any issued after it.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokenledger_e2e::{TestServer, batch, refused_start, run_server};

/// Bound on waiting for the log to grow; not a performance threshold.
const GROWTH_TIMEOUT: Duration = Duration::from_secs(120);

/// Waits (bounded) until the server's log has at least `size` entries.
fn wait_for_size(server: &TestServer, size: u64) {
    let deadline = Instant::now() + GROWTH_TIMEOUT;
    while server.log_size() < size {
        assert!(
            Instant::now() < deadline,
            "the log did not reach {size} entries"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Distinct jtis `start..end`.
fn jtis(prefix: &str, start: u64, end: u64) -> Vec<String> {
    (start..end).map(|i| format!("{prefix}-{i}")).collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Saves the server's current checkpoint in a new state file (trusting it on first use).
fn save_state(server: &TestServer, key: &str, state: &Path) -> u64 {
    let run = server.verify(key, &["--state", state.to_str().unwrap()]);
    run.assert_verified();
    server_size_in(state)
}

/// The size of the checkpoint kept in a state file (a signed note: origin, size, root, ...).
fn server_size_in(state: &Path) -> u64 {
    let note = std::fs::read_to_string(state).unwrap();
    note.lines().nth(1).unwrap().parse().unwrap()
}

/// `tokenledger-server restore --from FROM --data-dir DIR [extra]`.
fn restore(from: &Path, dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args: Vec<&OsStr> = vec![
        "restore".as_ref(),
        "--from".as_ref(),
        from.as_os_str(),
        "--data-dir".as_ref(),
        dir.as_os_str(),
    ];
    args.extend(extra.iter().map(|a| OsStr::new(*a)));
    run_server(&args)
}

/// The number after `log size ` in a backup's or restore's report.
fn reported_size(stdout: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(stdout);
    text.split("log size ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no log size in {text:?}"))
}

#[test]
fn a_backup_under_ingest_restores_the_log_of_every_checkpoint_before_it() {
    let root = tempfile::tempdir().unwrap();
    let live_dir = root.path().join("live");
    let mut live = TestServer::start(&live_dir);
    let issuer = live.create_issuer("atlas");
    let key = live.log_key();
    let first = live
        .http()
        .append(&issuer, &batch(&jtis("a", 0, 50), "atlas"));
    assert_eq!(first.status, 201, "{first:?}");
    let early = root.path().join("early.state");
    let early_size = save_state(&live, &key, &early);

    let stop = Arc::new(AtomicBool::new(false));
    let ingest = {
        let (http, issuer, stop) = (live.http(), issuer.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut next = 0;
            while !stop.load(Ordering::Relaxed) {
                let reply = http.append(&issuer, &batch(&jtis("b", next, next + 20), "atlas"));
                assert_eq!(reply.status, 201, "{reply:?}");
                next += 20;
            }
        })
    };
    wait_for_size(&live, early_size + 100);
    let just_before = root.path().join("just-before.state");
    let just_before_size = save_state(&live, &key, &just_before);

    std::fs::create_dir(root.path().join("backups")).unwrap();
    let backup = root.path().join("backups/ledger.db");
    let out = live.admin_command(&["backup", "--to", backup.to_str().unwrap()]);
    assert!(out.status.success(), "backup: {out:?}");
    let size = reported_size(&out.stdout);
    assert!(size >= just_before_size, "{size} < {just_before_size}");
    assert_eq!(mode(&backup), 0o600, "a backup is its owner's only");
    let again = live.admin_command(&["backup", "--to", backup.to_str().unwrap()]);
    assert!(!again.status.success(), "a backup never replaces a file");

    wait_for_size(&live, size + 100);
    let later = root.path().join("later.state");
    let later_size = save_state(&live, &key, &later);
    stop.store(true, Ordering::Relaxed);
    ingest.join().expect("the ingest thread");
    live.stop();

    let restored_dir = root.path().join("restored");
    let out = restore(&backup, &restored_dir, &[]);
    assert!(out.status.success(), "restore: {out:?}");
    assert_eq!(reported_size(&out.stdout), size);
    let warning = String::from_utf8_lossy(&out.stderr);
    assert!(
        warning.contains(&format!("checkpoint larger than {size}")),
        "{warning}"
    );
    assert!(warning.contains("log.key is missing"), "{warning}");
    assert_eq!(mode(&restored_dir.join("tokenledger.db")), 0o600);
    assert_eq!(mode(&restored_dir), 0o700);
    let refusal = refused_start(&restored_dir);
    assert!(refusal.contains("log.key is missing"), "{refusal}");

    for file in ["log.key", "ledger.secret"] {
        std::fs::copy(live_dir.join(file), restored_dir.join(file)).unwrap();
    }
    let mut restored = TestServer::start(&restored_dir);
    assert_eq!(restored.log_size(), size);
    for state in [&early, &just_before] {
        restored
            .verify(&key, &["--state", state.to_str().unwrap()])
            .assert_verified();
    }
    let ahead = restored.verify(&key, &["--state", later.to_str().unwrap()]);
    assert_ne!(ahead.code, 0, "a checkpoint after the backup: {ahead:#?}");
    // Grown past that checkpoint with other entries, the restored log is a fork of it.
    let mut next = 0;
    while restored.log_size() <= later_size {
        let reply = restored
            .http()
            .append(&issuer, &batch(&jtis("c", next, next + 200), "atlas"));
        assert_eq!(reply.status, 201, "{reply:?}");
        next += 200;
    }
    let forked = restored.verify(&key, &["--state", later.to_str().unwrap()]);
    assert_ne!(
        forked.code, 0,
        "a fork of a checkpoint after the backup: {forked:#?}"
    );

    let busy = restore(&backup, &restored_dir, &["--force"]);
    assert!(!busy.status.success(), "replaced under a running server");
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("open in another process"),
        "{busy:?}"
    );
    let occupied = restore(&backup, &restored_dir, &[]);
    assert!(
        String::from_utf8_lossy(&occupied.stderr).contains("holds a database"),
        "{occupied:?}"
    );
    assert!(
        restored.log_size() > later_size,
        "the running server kept its log"
    );
    restored.stop();

    let replaced = restore(&backup, &restored_dir, &["--force"]);
    assert!(replaced.status.success(), "restore --force: {replaced:?}");
    restored.start_again();
    assert_eq!(restored.log_size(), size);
    restored
        .verify(&key, &["--state", just_before.to_str().unwrap()])
        .assert_verified();
}

#[test]
fn another_ledgers_keys_are_refused_for_a_restored_log() {
    let root = tempfile::tempdir().unwrap();
    let mut one = TestServer::start(&root.path().join("one"));
    let issuer = one.create_issuer("atlas");
    let reply = one
        .http()
        .append(&issuer, &batch(&jtis("a", 0, 5), "atlas"));
    assert_eq!(reply.status, 201, "{reply:?}");
    let backup = root.path().join("one.db");
    let out = one.admin_command(&["backup", "--to", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    one.stop();
    let mut other = TestServer::start(&root.path().join("other"));
    other.stop();

    let dir = root.path().join("restored");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(root.path().join("other/log.key"), dir.join("log.key")).unwrap();
    let out = restore(&backup, &dir, &[]);
    assert!(!out.status.success(), "restored beside another log's key");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("another log's"), "{stderr}");
    assert!(!dir.join("tokenledger.db").exists(), "nothing put in place");
}
