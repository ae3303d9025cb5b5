//! The `tokenledger-server` binary's offline commands. (Having an integration test here also
//! makes `cargo test --workspace` build the binary that the end-to-end tests in tests/ start.)

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tokenledger-server");

#[test]
fn config_prints_the_embedded_default() {
    let out = Command::new(BIN).arg("config").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        tokenledger_server::config::DEFAULT_CONFIG
    );
}

#[test]
fn credential_commands_work_on_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let created = run(&[
        "credential",
        "create",
        "--role",
        "issuer",
        "--vo",
        "atlas",
        "--json",
    ]);
    assert!(created.status.success(), "{created:?}");
    let created: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let id = created["id"].as_str().unwrap();
    assert!(created["secret"].as_str().unwrap().starts_with("tlk_"));

    let listed = run(&["credential", "list", "--json"]);
    let text = String::from_utf8(listed.stdout).unwrap();
    assert!(text.contains(id) && !text.contains("tlk_"), "{text}");

    assert!(run(&["credential", "revoke", id]).status.success());
    let again = run(&["credential", "revoke", id]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no active credential"));

    let unknown_vo = run(&[
        "credential",
        "create",
        "--role",
        "issuer",
        "--vo",
        "nosuchvo",
    ]);
    assert!(!unknown_vo.status.success());
    let unbound = run(&["credential", "create", "--role", "issuer"]);
    assert!(!unbound.status.success());
    assert!(String::from_utf8_lossy(&unbound.stderr).contains("--vo"));
}

/// `vacuum` rewrites the data directory's database (already incremental: a new one is made
/// so) and says what it did; without a database it says there is none.
#[test]
fn vacuum_rewrites_the_database_of_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .env_remove("TOKENLEDGER_CONFIG")
            .output()
            .unwrap()
    };
    let missing = run(&["vacuum"]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no database at"),
        "{missing:?}"
    );
    assert!(run(&["credential", "list"]).status.success());
    let out = run(&["vacuum"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.starts_with("vacuumed ")
            && stdout.contains("auto_vacuum incremental -> incremental"),
        "{stdout}"
    );
}

#[test]
fn without_a_command_serve_reads_its_settings_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    // A data directory that cannot be created (under a file): had the variable been
    // ignored, the server would stop there, with another error, instead of serving.
    std::fs::write(dir.path().join("file"), "").unwrap();
    let out = Command::new(BIN)
        .env("TOKENLEDGER_LOG_FORMAT", "yaml")
        .env("TOKENLEDGER_DATA_DIR", dir.path().join("file/data"))
        .env_remove("TOKENLEDGER_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("invalid value 'yaml'") && stderr.contains("--log-format"),
        "{stderr}"
    );
}

#[test]
fn the_sqlite_tools_refuse_a_postgres_database_and_no_command_shows_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let url = "postgres://ledger:s3cret@db1.invalid:5433,db2.invalid/ledger";
    let backup = dir.path().join("backup.db");
    let backup = backup.to_str().unwrap();
    for (args, code) in [
        (vec!["fsck"], 2),
        (vec!["backup", "--to", backup], 1),
        (vec!["restore", "--from", backup], 1),
        (vec!["vacuum"], 1),
    ] {
        let out = Command::new(BIN)
            .args(&args)
            .arg("--data-dir")
            .arg(dir.path())
            .env("TOKENLEDGER_DATABASE", url)
            .env_remove("TOKENLEDGER_CONFIG")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(
            stderr.contains("works on the SQLite file of a data directory")
                && stderr.contains("postgres://db1.invalid:5433,db2.invalid:5432"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("s3cret"), "{args:?}: {stderr}");
    }
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--database"])
        .arg("mysql://ledger:s3cret@db1/ledger")
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("TOKENLEDGER_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("database.url: a database URL starts with postgres://"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
}
