//! What the server does without being told: where its files go when no data directory is
//! given, and what its log looks like in a file or in the journal.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use tokenledger_e2e::both_backends;
use tokenledger_e2e::{SERVER_LOG, TestServer};

/// The names in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// SQLite-only: the default data folder holds the SQLite file, which the test looks for.
#[test]
fn without_a_data_dir_the_server_keeps_every_file_in_an_ignored_private_data_folder() {
    let cwd = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_in_working_dir(cwd.path());
    assert_eq!(server.log_size(), 0);
    server.stop();

    assert_eq!(names_in(cwd.path()), ["data", SERVER_LOG]);
    let data = cwd.path().join("data");
    assert_eq!(server.dir(), data);
    let mode = std::fs::metadata(&data).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "the data folder is the owner's only");
    for file in ["tokenledger.db", "log.key", "ledger.secret"] {
        assert!(names_in(&data).iter().any(|n| n == file), "{file} in data/");
    }
    let gitignore =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.gitignore"))
            .unwrap();
    assert!(
        gitignore.lines().any(|l| l == "/data/"),
        "git ignores the default data folder of a server run from the checkout"
    );
}

/// The server's log after one request, a stop and nothing else.
fn log_of_one_run(server: &mut TestServer) -> String {
    assert_eq!(server.log_size(), 0);
    server.stop();
    let log = std::fs::read_to_string(server.stderr_path()).unwrap();
    assert!(log.contains("listening"), "{log}");
    log
}

/// Does `line` begin with an RFC 3339 timestamp (`2026-12-06T06:54:34...`)?
fn starts_with_a_timestamp(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 20 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[10] == b'T'
}

both_backends!(a_log_redirected_to_a_file_has_no_colour_codes);
fn a_log_redirected_to_a_file_has_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_with_env(
        dir.path(),
        &[("NO_COLOR", None), ("TERM", Some("xterm-256color"))],
    );
    let log = log_of_one_run(&mut server);
    assert!(
        !log.contains("\x1b["),
        "terminal escape codes in a file:\n{log:?}"
    );
    assert!(log.lines().all(starts_with_a_timestamp), "{log}");
}

both_backends!(a_log_written_to_the_journal_leaves_timestamps_to_journald);
fn a_log_written_to_the_journal_leaves_timestamps_to_journald() {
    let dir = tempfile::tempdir().unwrap();
    let log_file = dir.path().join(SERVER_LOG);
    std::fs::write(&log_file, "").unwrap();
    let meta = std::fs::metadata(&log_file).unwrap();
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    let mut server = TestServer::start_with_env(
        dir.path(),
        &[
            ("NO_COLOR", None),
            ("JOURNAL_STREAM", Some(stream.as_str())),
        ],
    );
    let log = log_of_one_run(&mut server);
    assert!(!log.contains("\x1b["), "{log:?}");
    assert!(!log.lines().any(starts_with_a_timestamp), "{log}");
    let levels = ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"];
    assert!(
        log.lines()
            .all(|l| levels.iter().any(|level| l.trim_start().starts_with(level))),
        "each line starts with its level: {log}"
    );
}

both_backends!(key_files_named_by_the_config_are_made_there_and_kept_across_restarts);
fn key_files_named_by_the_config_are_made_there_and_kept_across_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, keys) = (tmp.path().join("data"), tmp.path().join("keys"));
    std::fs::create_dir(&keys).unwrap();
    let (key, secret) = (keys.join("log.key"), keys.join("ledger.secret"));
    let config = format!(
        "[server]\nlog_key_file = \"{}\"\nledger_secret_file = \"{}\"\n",
        key.display(),
        secret.display()
    );
    let mut server = TestServer::start_with_config(&data, &config);
    let served = server.log_key();
    for file in [&key, &secret] {
        let mode = std::fs::metadata(file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    }
    let in_data = names_in(&data);
    for default in ["log.key", "ledger.secret"] {
        assert!(
            !in_data.iter().any(|n| n == default),
            "{default} in {in_data:?}"
        );
    }
    server.restart();
    assert_eq!(server.log_key(), served, "the same key after a restart");
    server.stop();
    std::fs::remove_file(&key).unwrap();
    let refused = server.refused_start();
    assert!(
        refused.contains(&key.display().to_string()) && refused.contains("is missing"),
        "{refused}"
    );
}
