//! `tokenledger-server migrate --to postgres://...` end to end: a SQLite ledger with
//! issuances (compressed leaves), a resolution, suspensions (one lifted) and a fetched
//! blocklist is stopped and copied into an empty PostgreSQL database: the copy holds every row
//! and the ledger's newest checkpoint, a second migration into it is refused, the URL's
//! password is never printed. A migration beside a server under ingest copies one snapshot.
//!
//! PostgreSQL comes from `tokenledger_testpg` (`TOKENLEDGER_TEST_PG_URL`, else a private
//! cluster); the test fails without it.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, SqliteConnection};
use tokenledger_e2e::{TestServer, batch, db};
use tokenledger_testpg::database;

/// Leaves are compressed after the first 1000, so the copy holds both kinds.
const CONFIG: &str = "[log]\ncompress_after = 1000\n\n\
                      [[site]]\nname = \"CERN-PROD\"\nvos = [\"atlas\"]\n";
/// Issuances logged before the migration, in reports of [`BATCH`].
const ISSUANCES: u64 = 3000;
const BATCH: u64 = 250;

/// `url` and the password it carries: its own, or one added (a server that trusts loopback
/// ignores it), so the test can look for it in the output.
fn with_password(url: &str) -> (String, String) {
    let authority = url.find("://").unwrap() + 3;
    let at = url[authority..]
        .find('@')
        .map(|i| authority + i)
        .expect("a user in TOKENLEDGER_TEST_PG_URL");
    let userinfo = &url[authority..at];
    match userinfo.split_once(':') {
        Some((_, password)) => (url.to_string(), password.to_string()),
        None => {
            let password = "e2e-not-printed";
            (
                format!("{}:{password}{}", &url[..at], &url[at..]),
                password.to_string(),
            )
        }
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// Every table of the SQLite ledger (but sqlx's migrations) and its rows.
fn sqlite_rows(path: &Path) -> Vec<(String, u64)> {
    block_on(async {
        let mut conn: SqliteConnection = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .connect()
            .await
            .unwrap();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             AND name <> '_sqlx_migrations' ORDER BY name",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let mut rows = Vec::new();
        for table in tables {
            let (n,): (i64,) =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
            rows.push((table, n as u64));
        }
        rows
    })
}

fn migrate(server: &TestServer, url: &str) -> std::process::Output {
    server.admin_command(&["migrate", "--to", url])
}

/// The number after `migrated ` in the summary.
fn migrated_size(stdout: &str) -> u64 {
    stdout
        .split("migrated ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no size in {stdout:?}"))
}

#[test]
fn a_stopped_ledger_is_copied_with_every_row_and_its_newest_checkpoint() {
    let root = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_with_config(&root.path().join("data"), CONFIG);
    let http = server.http();
    let issuer = server.create_issuer("atlas");
    for start in (0..ISSUANCES).step_by(BATCH as usize) {
        let jtis: Vec<String> = (start..start + BATCH).map(|i| format!("m-{i}")).collect();
        let reply = http.append(&issuer, &batch(&jtis, "atlas"));
        assert_eq!(reply.status, 201, "{reply:?}");
    }
    let officer = server.create_credential("vo-security", Some("atlas"));
    let resolved = http.get("/v1/vos/atlas/tokens/m-7?reason=INC-1", Some(&officer));
    assert_eq!(resolved.status, 200, "{resolved:?}");
    let site_admin = server
        .credential(&["--role", "site-admin", "--site", "CERN-PROD"])
        .secret;
    let pseudonym = http.get(
        "/v1/sites/CERN-PROD/tokens/m-7/pseudonym",
        Some(&site_admin),
    );
    assert_eq!(pseudonym.status, 200, "{pseudonym:?}");
    let suspended = http.post_json(
        "/v1/sites/CERN-PROD/suspensions",
        Some(&site_admin),
        &json!({"pseudonym": pseudonym.json()["pseudonym"], "reason": "INC-2"}),
    );
    assert_eq!(suspended.status, 201, "{suspended:?}");
    let vo_wide = http.post_json(
        "/v1/vos/atlas/suspensions",
        Some(&officer),
        &json!({"jti": "m-8", "scope": "all", "reason": "INC-3"}),
    );
    assert_eq!(vo_wide.status, 201, "{vo_wide:?}");
    let id = vo_wide.json()["id"].as_str().unwrap().to_string();
    let lifted = http.send(
        "DELETE",
        &format!("/v1/vos/atlas/suspensions/{id}?reason=resolved"),
        Some(&officer),
        None,
        None,
    );
    assert_eq!(lifted.status, 200, "{lifted:?}");
    let blocklist = http.get("/v1/sites/CERN-PROD/blocklist", Some(&site_admin));
    assert_eq!(blocklist.status, 200, "{blocklist:?}");
    let key = server.log_key();
    let state = root.path().join("verify.state");
    server
        .verify(&key, &["--state", state.to_str().unwrap()])
        .assert_verified();
    let size = server.log_size();
    server.stop();

    let source = sqlite_rows(&server.db_path());
    let sizes = db::checkpoint_sizes(&server.db());
    let newest = *sizes.last().unwrap();
    assert_eq!(newest, size, "the server stores its checkpoint at shutdown");
    let target = database();
    let (url, password) = with_password(target.url());
    let out = migrate(&server, &url);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "migrate: {stdout}\n{stderr}");
    assert_eq!(migrated_size(&stdout), size, "{stdout}");
    assert!(
        stdout.contains(&format!("newest checkpoint: size {size}, checked")),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("copied entries: {size} rows")),
        "progress per table: {stderr}"
    );
    assert!(
        stderr.contains(&format!("checked {size} of {size} entries")),
        "{stderr}"
    );
    assert!(stderr.contains("copy both (mode 0600)"), "{stderr}");
    assert!(
        !stdout.contains(&password) && !stderr.contains(&password),
        "the URL's password was printed: {stdout}\n{stderr}"
    );

    // The copy, read with SQL: every table's rows, the same newest checkpoint, compressed
    // leaves with their dictionary, the lifted suspension.
    assert_eq!(source.len(), 25, "{source:?}");
    for (table, rows) in &source {
        let copied = target.query(&format!("SELECT COUNT(*) FROM {table}"));
        assert_eq!(copied, rows.to_string(), "rows of {table}");
    }
    assert_eq!(
        target.query("SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1"),
        db::checkpoint_note(&server.db(), newest)
            .unwrap()
            .trim_end()
    );
    let compressed: u64 = target
        .query("SELECT COUNT(dictionary) FROM entries")
        .parse()
        .unwrap();
    assert!(
        compressed > 0 && compressed < size,
        "{compressed} compressed"
    );
    assert_eq!(
        target.query("SELECT COUNT(*) FROM suspensions WHERE lifted_at IS NOT NULL"),
        "1"
    );

    let again = migrate(&server, &url);
    assert!(!again.status.success(), "a second migration into the copy");
    let refused = String::from_utf8_lossy(&again.stderr);
    assert!(refused.contains("not empty"), "{refused}");
    assert_eq!(
        target.query("SELECT COUNT(*) FROM entries"),
        size.to_string()
    );

    // The server on the copy: the same data directory (its keys), the SQLite file moved away,
    // so that a server that ignored the URL would start an empty log and fail what follows.
    std::fs::rename(
        server.db_path(),
        root.path().join("sqlite-before-migration.db"),
    )
    .unwrap();
    let mut on_pg = TestServer::start_on_database(server.dir(), CONFIG, target.url());
    assert_eq!(on_pg.log_size(), size);
    on_pg
        .verify(&key, &["--state", state.to_str().unwrap()])
        .assert_verified();
    let http = on_pg.http();
    let again = http.get("/v1/vos/atlas/tokens/m-7?reason=INC-4", Some(&officer));
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.json()["person"], resolved.json()["person"]);
    assert_eq!(again.json()["chain"], resolved.json()["chain"]);
    // It appends after the copied log (identity sequences, frontier), and still verifies.
    let reply = http.append(&issuer, &batch(&["after-migration".to_string()], "atlas"));
    assert_eq!(reply.status, 201, "{reply:?}");
    on_pg
        .verify(&key, &["--state", state.to_str().unwrap()])
        .assert_verified();
    on_pg.stop();
}

#[test]
fn a_migration_beside_a_server_under_ingest_copies_one_snapshot() {
    let root = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_with_config(&root.path().join("data"), CONFIG);
    let issuer = server.create_issuer("atlas");
    let stop = Arc::new(AtomicBool::new(false));
    let ingest = {
        let (http, issuer, stop) = (server.http(), issuer.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut next = 0;
            while !stop.load(Ordering::Relaxed) {
                let jtis: Vec<String> = (next..next + 50).map(|i| format!("l-{i}")).collect();
                let reply = http.append(&issuer, &batch(&jtis, "atlas"));
                assert_eq!(reply.status, 201, "{reply:?}");
                next += 50;
            }
        })
    };
    while server.log_size() < 500 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = server.log_size();
    let target = database();
    let out = migrate(&server, target.url());
    let after = server.log_size();
    stop.store(true, Ordering::Relaxed);
    ingest.join().expect("the ingest thread");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "migrate: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copied = migrated_size(&stdout);
    assert!(
        (before..=after).contains(&copied),
        "{before} <= {copied} <= {after}"
    );
    assert_eq!(
        target.query("SELECT COUNT(*) FROM entries"),
        copied.to_string()
    );
    assert_eq!(
        target.query("SELECT COUNT(*) FROM issuances"),
        copied.to_string(),
        "every entry is an issuance"
    );
    server.stop();
}
