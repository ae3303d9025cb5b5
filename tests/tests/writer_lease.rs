//! One writer, any number of servers, on PostgreSQL: two servers on one database, the second
//! with copies of the first's `log.key` and `ledger.secret`. The first takes the writer lease;
//! the second is a standby: `/healthz` says so and names the writer, every write to it
//! (a report, a suspension, a logged resolution, an erasure) is a 503 `not_the_writer` naming
//! the writer, and its reads agree with the writer's. A `tokenledger ingest` sent to the
//! standby waits (saying so once) while the writer is killed with SIGKILL; the standby takes
//! the lease within 10 s, the ingest goes through, and the log verifies. A server whose data
//! directory lacks the keys of the database, or holds another log's, refuses to start.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokenledger_e2e::{TestServer, report, run_refused_server, spawn_cli};

/// The standby must take the lease within this of the writer's SIGKILL.
const TAKEOVER_LIMIT: Duration = Duration::from_secs(10);
/// Bound on waiting for something the test polls (not a performance threshold).
const WAIT: Duration = Duration::from_secs(60);

fn health(server: &TestServer) -> Value {
    let reply = server.http().get("/healthz", None);
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json()
}

/// The name a server advertises by default: `hostname:port` of its listener.
fn advertised(server: &TestServer) -> String {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let port = server.url().rsplit_once(':').unwrap().1;
    format!("{}:{port}", hostname.trim())
}

fn copy_keys(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for file in ["log.key", "ledger.secret"] {
        std::fs::copy(from.join(file), to.join(file)).unwrap();
    }
}

/// `tokenledger-server serve` on `dir` and the database `url`, which must refuse: its stderr.
fn refused(dir: &Path, url: &str) -> String {
    let dir = dir.to_str().unwrap();
    let out = run_refused_server(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir,
        "--database",
        url,
    ]);
    assert!(!out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_standby_names_the_writer_serves_the_same_reads_and_takes_over_when_it_is_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let database = tokenledger_testpg::database();
    let url = database.url();
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let mut writer = TestServer::start_on_database(&dir_a, "", url);
    let state = health(&writer);
    assert_eq!(state["role"], "writer", "{state}");
    assert!(state.get("writer").is_none(), "{state}");
    let admin = writer.admin_secret().to_string();
    let issuer = writer.create_issuer("atlas");
    let officer = writer.create_credential("vo-security", Some("atlas"));
    let key = writer.log_key();

    // A node without the database's keys, or with another log's, does not start.
    let missing = refused(&dir_b, url);
    assert!(missing.contains("log.key is missing"), "{missing}");
    assert!(
        !dir_b.join("log.key").exists(),
        "no key is made for this database"
    );
    let other_database = tokenledger_testpg::database();
    let mut other = TestServer::start_on_database(&tmp.path().join("c"), "", other_database.url());
    other.stop();
    copy_keys(&tmp.path().join("c"), &dir_b);
    let foreign = refused(&dir_b, url);
    assert!(
        foreign.contains("does not open with the log key"),
        "{foreign}"
    );

    copy_keys(&dir_a, &dir_b);
    let standby = TestServer::start_on_database(&dir_b, "", url);
    let state = health(&standby);
    assert_eq!(state["role"], "standby", "{state}");
    assert_eq!(state["writer"], advertised(&writer), "{state}");
    assert_eq!(standby.log_key(), key);

    for n in 0..5 {
        let reply = writer
            .http()
            .append(&issuer, &report(&format!("w-{n}"), "atlas"));
        assert_eq!(reply.status, 201, "{reply:?}");
    }
    let to_standby = standby.http();
    let person = writer
        .http()
        .get("/v1/vos/atlas/tokens/w-1?reason=INC-1", Some(&officer))
        .json()["person"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let refusals = [
        to_standby.post_json(
            &format!("/v1/vos/atlas/persons/{person}/erasure"),
            Some(&officer),
            &json!({"reason": "GDPR-17"}),
        ),
        to_standby.append(&issuer, &report("s-0", "atlas")),
        to_standby.post_json(
            "/v1/vos/atlas/suspensions",
            Some(&officer),
            &json!({"jti": "w-0", "reason": "INC-1"}),
        ),
        to_standby.get("/v1/vos/atlas/tokens/w-0?reason=INC-1", Some(&officer)),
    ];
    for reply in refusals {
        reply.assert_error(503, "not_the_writer");
        let message = reply.json()["error"]["message"].to_string();
        assert!(message.contains(&advertised(&writer)), "{message}");
    }
    // A standby refusing writes is working as designed: nothing at ERROR for an operator
    // to chase.
    let standby_log = std::fs::read_to_string(standby.stderr_path()).unwrap();
    assert!(
        !standby_log.contains("ERROR"),
        "a standby's refusals are logged as errors:\n{}",
        standby.log_tail()
    );

    // Reads agree once the writer has stored its checkpoint (at most about a second).
    let size = writer.log_size();
    let deadline = Instant::now() + WAIT;
    while standby.log_size() < size {
        assert!(Instant::now() < deadline, "the standby stays behind {size}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(standby.checkpoint(), writer.checkpoint());
    for path in [
        format!("/v1/log/entries?start=0&end={size}"),
        format!("/v1/log/proof/inclusion?index=3&size={size}"),
        format!("/v1/log/proof/consistency?from=2&to={size}"),
    ] {
        let (a, b) = (
            writer.http().get(&path, Some(&admin)),
            standby.http().get(&path, Some(&admin)),
        );
        assert_eq!((a.status, &a.body), (b.status, &b.body), "{path}");
    }

    // An ingest sent to the standby waits for a writer; the writer dies, the standby takes
    // over, and the ingest goes through.
    let reports = tmp.path().join("reports.ndjson");
    let lines: Vec<String> = (0..20)
        .map(|n| report(&format!("i-{n}"), "atlas").to_string())
        .collect();
    std::fs::write(&reports, lines.join("\n") + "\n").unwrap();
    let standby_address = standby.url().rsplit_once("://").unwrap().1.to_string();
    let ingest = spawn_cli([
        "ingest",
        "--server",
        standby.url(),
        "--token",
        &issuer,
        "--format",
        "ndjson",
        reports.to_str().unwrap(),
    ]);
    std::thread::sleep(Duration::from_millis(1500));
    let killed_at = Instant::now();
    writer.kill9();
    while health(&standby)["role"] != "writer" {
        assert!(
            killed_at.elapsed() < TAKEOVER_LIMIT,
            "the standby did not take the lease within {TAKEOVER_LIMIT:?}\n{}",
            standby.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let reply = standby.http().append(&issuer, &report("after", "atlas"));
    assert_eq!(reply.status, 201, "{reply:?}");
    assert!(killed_at.elapsed() < TAKEOVER_LIMIT, "{reply:?}");
    let out = ingest.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "accepted=20 duplicates=0 rejected=0 skipped=0"
    );
    let notices: Vec<&str> = stderr.lines().filter(|l| l.contains("retrying")).collect();
    assert_eq!(notices.len(), 1, "said once: {stderr}");
    assert!(
        notices[0].contains(&format!("{} is a standby", standby_address)),
        "{stderr}"
    );

    // The killed node comes back as the standby of the new writer; the log verifies.
    writer.start_again();
    let state = health(&writer);
    assert_eq!(state["role"], "standby", "{state}");
    assert_eq!(state["writer"], advertised(&standby), "{state}");
    let run = standby.verify(&key, &[]);
    // 5 reports, the resolution naming the person to erase, 20 reports and one more.
    assert_eq!(run.assert_verified()["size"], 27, "{run:?}");
    let resolved = standby
        .http()
        .get("/v1/vos/atlas/tokens/i-7?reason=INC-1", Some(&officer));
    assert_eq!(resolved.status, 200, "{resolved:?}");
}

/// An idle writer whose database session ends (and the lease with it) notices within about a
/// second: its role is given up, so a write to either server is committed (201) by the one
/// writer or refused with 503 `not_the_writer`, never a 500 from the lost session.
#[test]
fn an_idle_writer_whose_session_ends_gives_the_role_up_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let database = tokenledger_testpg::database();
    let url = database.url();
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let first = TestServer::start_on_database(&dir_a, "", url);
    let issuer = first.create_issuer("atlas");
    copy_keys(&dir_a, &dir_b);
    let second = TestServer::start_on_database(&dir_b, "", url);
    assert_eq!(health(&second)["role"], "standby");

    let ended = database.query("SELECT pg_terminate_backend(pid) FROM writer_lease");
    assert_eq!(ended.trim(), "t", "{ended}");
    std::thread::sleep(Duration::from_secs(3));
    let roles: Vec<Value> = [&first, &second]
        .iter()
        .map(|server| health(server)["role"].clone())
        .collect();
    assert_eq!(
        roles.iter().filter(|role| *role == "writer").count(),
        1,
        "{roles:?}\n{}",
        first.log_tail()
    );
    for (n, server) in [&first, &second].into_iter().enumerate() {
        let reply = server
            .http()
            .append(&issuer, &report(&format!("after-{n}"), "atlas"));
        match health(server)["role"].as_str() {
            Some("writer") => assert_eq!(reply.status, 201, "{reply:?}"),
            _ => reply.assert_error(503, "not_the_writer"),
        }
    }
}

/// Two servers started at once on a new database: only the one that takes the writer lease
/// makes `log.key` and `ledger.secret` (and stores the empty tree's checkpoint before letting
/// the lease go); the other refuses to start, asking for copies, and makes no key.
#[test]
fn two_servers_started_at_once_on_a_new_database_make_one_key() {
    let tmp = tempfile::tempdir().unwrap();
    let database = tokenledger_testpg::database();
    let dirs = [tmp.path().join("a"), tmp.path().join("b")];
    let mut children: Vec<std::process::Child> = dirs
        .iter()
        .map(|dir| {
            std::process::Command::new(tokenledger_e2e::server_binary())
                .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
                .arg(dir)
                .args(["--database", database.url()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let deadline = Instant::now() + WAIT;
    let refused = loop {
        let exited: Vec<usize> = (0..2)
            .filter(|&i| children[i].try_wait().unwrap().is_some())
            .collect();
        if let [i] = exited[..] {
            break i;
        }
        assert!(exited.len() < 2, "both servers ended");
        assert!(Instant::now() < deadline, "neither server refused to start");
        std::thread::sleep(Duration::from_millis(50));
    };
    let running = 1 - refused;
    std::thread::sleep(Duration::from_secs(1));
    assert!(children[running].try_wait().unwrap().is_none());
    children[running].kill().unwrap();
    children[running].wait().unwrap();
    let out = children.remove(refused).wait_with_output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("log.key is missing"), "{stderr}");
    assert!(dirs[running].join("log.key").exists());
    assert!(!dirs[refused].join("log.key").exists());
    assert!(!dirs[refused].join("ledger.secret").exists());
}
