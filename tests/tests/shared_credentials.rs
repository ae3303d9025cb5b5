//! API credentials on PostgreSQL, shared by two servers on one database, each holding the
//! credentials it authenticated in memory while its listener session hears every change: a
//! credential revoked with `tokenledger-server credential revoke` is refused by both from
//! the moment the command returns, even one made and revoked between two requests; and so
//! after the listener sessions are killed (`pg_terminate_backend`), when the revoke's
//! notification cannot reach them, and on a server frozen (SIGSTOP) while the revoke ran,
//! which the revoke waits out. No secret is logged.

use std::path::Path;
use std::time::{Duration, Instant};

use tokenledger_e2e::TestServer;

/// How long after its last ping a server's listener stops using what it holds (the
/// server's `credential_cache::LEASE`): a revoke waits this out for a silent server.
const LEASE: Duration = Duration::from_secs(2);
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

/// `secret` is refused (401) by `server`, at the first request.
fn refused(server: &TestServer, secret: &str, what: &str) {
    assert_eq!(
        status(server, secret),
        401,
        "{what}: accepted after the revoke returned\n{}",
        server.log_tail()
    );
}

/// What a revoke that waited out a silent server says.
const WAITED_OUT: &str = "not every server confirmed the revoke";

/// Revokes credential `id` with `tokenledger-server credential revoke`; its stderr.
fn revoke(server: &TestServer, id: &str) -> String {
    let out = server.admin_command(&["credential", "revoke", id]);
    assert!(out.status.success(), "credential revoke failed: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Sends `signal` (`STOP`, `CONT`) to `server`'s process.
fn signal(server: &TestServer, signal: &str) {
    let sent = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(server.pid().to_string())
        .status()
        .expect("running kill");
    assert!(sent.success(), "kill -{signal}");
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
    let said = revoke(&writer, &officer.id);
    assert!(!said.contains(WAITED_OUT), "both servers were up: {said}");
    for server in servers {
        refused(server, &officer.secret, "revoked");
    }
    secrets.push(officer.secret);

    // Made and revoked while the servers hold other credentials: never accepted after.
    let other = standby.create_credential_with_id("vo-security", Some("atlas"));
    both_hold(&servers, &database, &other.secret);
    let brief = writer.create_credential_with_id("vo-security", Some("atlas"));
    assert_eq!(status(&standby, &brief.secret), 200);
    standby.revoke_credential(&brief.id);
    for server in servers {
        refused(server, &brief.secret, "made then revoked");
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
    for server in servers {
        refused(server, &other.secret, "revoked, listener killed");
    }
    secrets.push(other.secret);

    // A server frozen while the revoke runs cannot answer it: the revoke waits until that
    // server no longer uses what it held, and the server refuses at its first request.
    let frozen = writer.create_credential_with_id("vo-security", Some("atlas"));
    both_hold(&servers, &database, &frozen.secret);
    signal(&standby, "STOP");
    let revoking = Instant::now();
    let said = revoke(&writer, &frozen.id);
    let waited = revoking.elapsed();
    signal(&standby, "CONT");
    assert!(
        waited >= LEASE,
        "the revoke did not wait out the frozen server: {waited:?}"
    );
    assert!(said.contains(WAITED_OUT), "{said}");
    for server in servers {
        refused(server, &frozen.secret, "revoked while a server was frozen");
    }
    secrets.push(frozen.secret);

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
