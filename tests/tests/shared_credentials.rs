//! API credentials on PostgreSQL, shared by two servers on one database, each holding the
//! credentials it authenticated in memory while its listener session hears every change: a
//! credential revoked with `tokenledger-server credential revoke` stops working on both at
//! once, even one made and revoked between two requests; and so after the listener sessions
//! are killed (`pg_terminate_backend`), when the revoke's notification cannot reach them. No
//! secret is logged.

use std::path::Path;
use std::time::{Duration, Instant};

use tokenledger_e2e::TestServer;

/// How long a revoke may take to reach the other server (an entry is otherwise held 60 s;
/// polled, not slept).
const NOTICE: Duration = Duration::from_secs(2);
/// Bound on waiting for the servers' listener sessions to be there.
const WAIT: Duration = Duration::from_secs(30);
/// The `application_name` of a server's listener session.
const LISTENER: &str = "tokenledger-credential-listener";
/// A read every `vo-security` credential of atlas may do.
const READ: &str = "/v1/vos/atlas/suspensions";

fn copy_keys(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for file in ["log.key", "ledger.secret"] {
        std::fs::copy(from.join(file), to.join(file)).unwrap();
    }
}

fn status(server: &TestServer, secret: &str) -> u16 {
    server.http().get(READ, Some(secret)).status
}

/// The number of listener sessions on the test's database.
fn listeners(database: &tokenledger_testpg::TestDatabase) -> u64 {
    database
        .query(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name = '{LISTENER}'"
        ))
        .parse()
        .unwrap()
}

/// Requests on both servers until each has its listener up; the last answers were 200.
fn both_hold(servers: &[&TestServer], database: &tokenledger_testpg::TestDatabase, secret: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        for server in servers {
            assert_eq!(status(server, secret), 200, "{}", server.log_tail());
        }
        if listeners(database) == servers.len() as u64 {
            for server in servers {
                assert_eq!(status(server, secret), 200);
            }
            return;
        }
        assert!(Instant::now() < deadline, "the listeners never started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `server` with `secret` until it is refused (401), within [`NOTICE`] of `since`.
fn refused_soon(server: &TestServer, secret: &str, since: Instant, what: &str) {
    loop {
        match status(server, secret) {
            401 => return,
            200 => assert!(
                since.elapsed() < NOTICE,
                "{what}: still accepted {NOTICE:?} after the revoke\n{}",
                server.log_tail()
            ),
            other => panic!("{what}: {other}"),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_revoked_credential_stops_working_on_every_server_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let database = tokenledger_testpg::database();
    let url = database.url();
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let writer = TestServer::start_on_database(&dir_a, "", url);
    copy_keys(&dir_a, &dir_b);
    let standby = TestServer::start_on_database(&dir_b, "", url);
    let servers = [&writer, &standby];
    let mut secrets = Vec::new();

    // Revoked on the command line: refused by both.
    let officer = writer.create_credential_with_id("vo-security", Some("atlas"));
    both_hold(&servers, &database, &officer.secret);
    writer.revoke_credential(&officer.id);
    let revoked = Instant::now();
    for server in servers {
        refused_soon(server, &officer.secret, revoked, "revoked");
    }
    secrets.push(officer.secret);

    // Made and revoked while the servers hold other credentials: never accepted after.
    let other = standby.create_credential_with_id("vo-security", Some("atlas"));
    both_hold(&servers, &database, &other.secret);
    let brief = writer.create_credential_with_id("vo-security", Some("atlas"));
    assert_eq!(status(&standby, &brief.secret), 200);
    standby.revoke_credential(&brief.id);
    let revoked = Instant::now();
    for server in servers {
        refused_soon(server, &brief.secret, revoked, "made then revoked");
    }
    secrets.push(brief.secret);

    // The listener sessions killed: a revoke they cannot hear is still refused by both.
    assert_eq!(status(&writer, &other.secret), 200);
    let killed = database.query(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = '{LISTENER}'"
    ));
    assert_eq!(killed, "2");
    writer.revoke_credential(&other.id);
    let revoked = Instant::now();
    for server in servers {
        refused_soon(server, &other.secret, revoked, "revoked, listener killed");
    }
    secrets.push(other.secret);

    // The servers listen again, and hold credentials again.
    let after = writer.create_credential_with_id("vo-security", Some("atlas"));
    both_hold(&servers, &database, &after.secret);
    secrets.push(after.secret);

    for server in servers {
        let log = std::fs::read_to_string(server.stderr_path()).unwrap();
        for secret in &secrets {
            assert!(!log.contains(secret.as_str()), "a secret is logged");
        }
        assert!(!log.contains("ERROR"), "{}", server.log_tail());
    }
}
