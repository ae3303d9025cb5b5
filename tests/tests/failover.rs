//! Failover on PostgreSQL, end to end.
//!
//! Writer failover: two ledger servers on one database (the second node's data directory holds
//! copies of the first's `log.key` and `ledger.secret`), one writer holding the lease and one
//! standby. Clients ingest real signed JWTs without pause while the writer is killed with
//! SIGKILL five times, alternately, the killed one coming back as the standby. Each time the
//! standby takes the lease and acknowledges an append within 10 s; afterwards every
//! acknowledged report is at its index (a re-ingest answers that index, and the entry there is
//! that report), the checkpoint served before each kill is consistent with the log after it,
//! and the log verifies.
//!
//! Database failover: the ledger on a PostgreSQL primary with a synchronous streaming standby,
//! its URL listing both hosts. Under ingest the primary's postmaster is killed and the standby
//! promoted; the ledger moves to it, its writer takes the lease there, and nothing acknowledged
//! is lost.
//!
//! Both print their times (kill → first acknowledged append after it), for BENCHMARKS.md.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokenledger_e2e::issuer::TestIssuer;
use tokenledger_e2e::{Http, TestServer};
use tokenledger_testpg::Cluster;

const VO: &str = "atlas";
const ISS: &str = "https://atlas-auth.example/";
const KILLS: usize = 5;
const THREADS: usize = 4;
/// The standby must have taken over and acknowledged an append within this of the kill.
const TAKEOVER_LIMIT: Duration = Duration::from_secs(10);
/// Bound on waiting for the database failover (a bound, not a threshold).
const DATABASE_FAILOVER_LIMIT: Duration = Duration::from_secs(60);
/// Acknowledged appends between two kills.
const ACKS_PER_ROUND: usize = 150;
/// Bound on each wait for the clients' progress, and for a role to show.
const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// One acknowledged report: the ledger answered `index` for it, from node `node`, at `at`, to
/// the request sent at `sent` (the last try).
struct Ack {
    jti: String,
    token: String,
    index: u64,
    node: usize,
    sent: Instant,
    at: Instant,
}

/// What the client threads share: the acknowledgements in order of arrival, the node they
/// send to first, the answers that must never come, and the stop flag.
#[derive(Default)]
struct Load {
    acks: Mutex<Vec<Ack>>,
    unexpected: Mutex<Vec<String>>,
    /// 5xx answers (by status) and failed exchanges, retried: what the outages cost the
    /// clients.
    retried: Mutex<BTreeMap<String, usize>>,
    target: AtomicUsize,
    stop: AtomicBool,
}

impl Load {
    fn acked(&self) -> usize {
        self.acks.lock().unwrap().len()
    }

    /// Waits (bounded) until `count` reports are acknowledged in all.
    fn wait_for(&self, count: usize, servers: &[TestServer]) {
        let deadline = Instant::now() + WAIT_LIMIT;
        while self.acked() < count {
            assert!(
                Instant::now() < deadline && self.unexpected.lock().unwrap().is_empty(),
                "the clients stalled at {} acknowledged (waiting for {count}); unexpected \
                 answers: {:?}\n{}",
                self.acked(),
                self.unexpected.lock().unwrap(),
                logs(servers)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// When node `node` first acknowledged an append sent after `since` (not one that was on
    /// its way before), waiting up to `limit`.
    fn first_ack_after(&self, node: usize, since: Instant, limit: Duration) -> Option<Instant> {
        let deadline = since + limit;
        loop {
            let first = self
                .acks
                .lock()
                .unwrap()
                .iter()
                .filter(|a| a.node == node && a.sent > since)
                .map(|a| a.at)
                .min();
            if first.is_some() || Instant::now() > deadline {
                return first;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// After an answer of `node` that was not an acknowledgement: the next request goes to
    /// the next node (unless another client moved on already), a moment later.
    fn move_on_from(&self, node: usize, nodes: usize, why: String) {
        *self.retried.lock().unwrap().entry(why).or_default() += 1;
        let _ = self.target.compare_exchange(
            node,
            (node + 1) % nodes,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sets the flag when dropped, so the clients stop however the test ends.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Reports fresh tokens one at a time until told to stop, each until a writer acknowledges
/// it: the same report again after a refused connection or a 5xx (a report that was logged
/// unanswered is then a duplicate and keeps its index).
fn client(load: &Load, nodes: &[Http], issuer: &TestIssuer, credential: &str, thread: usize) {
    for n in 0.. {
        let jti = format!("c{thread}-{n}");
        let claims = issuer.claims(&jti, &format!("user-{}", n % 20));
        let token = issuer.mint(Algorithm::RS256, &claims);
        let body = serde_json::to_vec(&json!({ "token": token })).unwrap();
        loop {
            if load.stop.load(Ordering::SeqCst) {
                return;
            }
            let node = load.target.load(Ordering::SeqCst);
            let sent_at = Instant::now();
            let sent = nodes[node].try_send(
                "POST",
                "/v1/issuances",
                Some(credential),
                Some("application/json"),
                Some(&body),
            );
            match sent {
                Ok(reply) if reply.status == 201 || reply.status == 200 => {
                    let index = reply.json()["index"]
                        .as_u64()
                        .unwrap_or_else(|| panic!("an index in {reply:?}"));
                    load.acks.lock().unwrap().push(Ack {
                        jti,
                        token,
                        index,
                        node,
                        sent: sent_at,
                        at: Instant::now(),
                    });
                    break;
                }
                Ok(reply) if reply.status >= 500 => {
                    load.move_on_from(node, nodes.len(), reply.status.to_string())
                }
                Ok(reply) => {
                    load.unexpected
                        .lock()
                        .unwrap()
                        .push(format!("{jti} to node {node}: {reply:?}"));
                    return;
                }
                Err(_) => load.move_on_from(node, nodes.len(), "no answer".to_string()),
            }
        }
    }
}

/// An issuer of signed tokens of `VO`, its JWKS in `dir`, and the ledger configuration that
/// trusts it.
fn issuer(dir: &Path) -> (TestIssuer, String) {
    let issuer = TestIssuer::new(ISS);
    let config = issuer.file_config_block(
        &dir.join("atlas.json"),
        "[{ rule = \"fixed\", vo = \"atlas\" }]",
    );
    (issuer, config)
}

/// Copies the log key and the ledger secret of one node's data directory into another's.
fn copy_keys(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for file in ["log.key", "ledger.secret"] {
        std::fs::copy(from.join(file), to.join(file))
            .unwrap_or_else(|e| panic!("copying {file}: {e}"));
    }
}

/// `GET /healthz` of a server: 200, or 503 (`degraded`) for a minute after storage errors,
/// which a failover brings.
fn health(server: &TestServer) -> Value {
    let reply = server.http().get("/healthz", None);
    assert!([200, 503].contains(&reply.status), "{reply:?}");
    reply.json()
}

/// The log size `/healthz` gives.
fn log_size(server: &TestServer) -> u64 {
    health(server)["log_size"]
        .as_u64()
        .expect("log_size is a number")
}

/// Waits (bounded) until the server's `/healthz` gives it `role`; returns that answer.
fn wait_for_role(server: &TestServer, role: &str) -> Value {
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        let health = health(server);
        if health["role"] == role {
            return health;
        }
        assert!(
            Instant::now() < deadline,
            "no {role} role after {WAIT_LIMIT:?}: {health}\n{}",
            server.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The servers' log tails, for failure messages.
fn logs(servers: &[TestServer]) -> String {
    servers
        .iter()
        .map(TestServer::log_tail)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The checks once the load has stopped, against the writer `server`: every acknowledged
/// report is the entry at its index, and a re-ingest of each answers that index and appends
/// nothing; no report is logged twice.
fn check_acknowledged(server: &TestServer, admin: &str, credential: &str, acks: &[Ack]) {
    let http = server.http();
    let size = log_size(server);
    let entries = http.entries(admin, 0, size);
    let mut logged = HashSet::new();
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(entry.index, i as u64);
        assert!(
            logged.insert(entry.jti().to_string()),
            "{} is logged twice",
            entry.jti()
        );
    }
    let mut at_index: HashMap<u64, &str> = HashMap::new();
    for ack in acks {
        if let Some(other) = at_index.insert(ack.index, &ack.jti) {
            panic!(
                "index {} acknowledged for both {other} and {}",
                ack.index, ack.jti
            );
        }
        assert!(
            ack.index < size,
            "{} acknowledged at {}, but the log has {size} entries",
            ack.jti,
            ack.index
        );
        assert_eq!(
            entries[ack.index as usize].jti(),
            ack.jti,
            "entry {} is not the report acknowledged there",
            ack.index
        );
    }
    for chunk in acks.chunks(1000) {
        let reports: Vec<Value> = chunk.iter().map(|a| json!({ "token": a.token })).collect();
        let reply = http.post_json("/v1/issuances", Some(credential), &Value::Array(reports));
        assert_eq!(reply.status, 200, "{reply:?}");
        let json = reply.json();
        let results = json["results"].as_array().expect("results");
        for (ack, result) in chunk.iter().zip(results) {
            assert_eq!(result["status"], "duplicate", "{}: {result}", ack.jti);
            assert_eq!(result["index"], ack.index, "{}: {result}", ack.jti);
        }
    }
    assert_eq!(log_size(server), size, "a re-ingest appended something");
}

/// Writes `note` to `path` and checks that the log `server` serves is consistent with it.
fn assert_consistent_with(server: &TestServer, key: &str, note: &str, path: &Path) {
    std::fs::write(path, note).unwrap();
    let run = server.verify(key, &["--state", path.to_str().unwrap()]);
    assert!(
        run.assert_verified()["consistent_with"].is_u64(),
        "the checkpoint was not checked: {run:?}"
    );
}

/// p50 and max of durations, in milliseconds.
fn p50_and_max(times: &[Duration]) -> (u128, u128) {
    let mut ms: Vec<u128> = times.iter().map(Duration::as_millis).collect();
    ms.sort_unstable();
    (ms[(ms.len() - 1) / 2], ms[ms.len() - 1])
}

#[test]
fn the_standby_takes_over_from_a_killed_writer_five_times_and_nothing_acknowledged_moves() {
    let tmp = tempfile::tempdir().unwrap();
    let database = tokenledger_testpg::database();
    let (issuer, config) = issuer(tmp.path());
    let dirs = [tmp.path().join("node-a"), tmp.path().join("node-b")];
    let first = TestServer::start_on_database(&dirs[0], &config, database.url());
    wait_for_role(&first, "writer");
    let admin = first.admin_secret().to_string();
    copy_keys(&dirs[0], &dirs[1]);
    let second = TestServer::start_on_database(&dirs[1], &config, database.url());
    let mut nodes = [first, second];
    let standby = wait_for_role(&nodes[1], "standby");
    assert!(
        standby["writer"].is_string(),
        "a standby names the writer: {standby}"
    );
    let credential = nodes[0].create_credential("issuer", Some(VO));
    let key = nodes[0].log_key();
    assert_eq!(nodes[1].log_key(), key, "both nodes sign with one key");
    let witness = tmp.path().join("witness.checkpoint");
    let witness_arg = witness.to_str().unwrap().to_string();
    nodes[0]
        .verify(&key, &["--state", &witness_arg])
        .assert_verified();

    // The nodes keep their ports across restarts, so these clients stay valid.
    let https: Vec<Http> = nodes.iter().map(TestServer::http).collect();
    let load = Load::default();
    let mut takeovers = Vec::new();
    let mut writer = 0;
    std::thread::scope(|scope| {
        let _stop_clients = StopOnDrop(&load.stop);
        for thread in 0..THREADS {
            let (load, https, issuer, credential) = (&load, &https, &issuer, &credential);
            scope.spawn(move || client(load, https, issuer, credential, thread));
        }
        for kill in 0..KILLS {
            load.wait_for(load.acked() + ACKS_PER_ROUND, &nodes);
            let note = https[writer].get("/v1/log/checkpoint", None);
            assert_eq!(note.status, 200, "{note:?}");
            load.wait_for(load.acked() + 20, &nodes);

            let standby = 1 - writer;
            let killed_at = Instant::now();
            nodes[writer].kill9();
            let Some(first_ack) = load.first_ack_after(standby, killed_at, TAKEOVER_LIMIT) else {
                panic!(
                    "kill {kill}: the standby acknowledged nothing within {TAKEOVER_LIMIT:?} \
                     of the writer's SIGKILL\n{}",
                    logs(&nodes)
                );
            };
            takeovers.push(first_ack - killed_at);
            wait_for_role(&nodes[standby], "writer");
            assert_consistent_with(
                &nodes[standby],
                &key,
                &note.body,
                &tmp.path().join("before-kill.checkpoint"),
            );

            nodes[writer].start_again_on_the_same_port();
            let health = wait_for_role(&nodes[writer], "standby");
            assert!(health["writer"].is_string(), "{health}");
            eprintln!(
                "kill {kill}: node {writer} killed, node {standby} acknowledged {} ms later",
                (first_ack - killed_at).as_millis()
            );
            writer = standby;
        }
        load.wait_for(load.acked() + ACKS_PER_ROUND, &nodes);
        load.stop.store(true, Ordering::SeqCst);
    });
    let unexpected = load.unexpected.lock().unwrap();
    assert!(unexpected.is_empty(), "unexpected answers: {unexpected:#?}");
    let acks = load.acks.lock().unwrap();

    check_acknowledged(&nodes[writer], &admin, &credential, &acks);
    let run = nodes[writer].verify(&key, &["--state", &witness_arg]);
    assert_eq!(run.assert_verified()["consistent_with"], 0);
    // The standby reads the same log.
    let standby = &nodes[1 - writer];
    let size = log_size(&nodes[writer]);
    let deadline = Instant::now() + WAIT_LIMIT;
    while log_size(standby) < size {
        assert!(
            Instant::now() < deadline,
            "the standby never caught up with {size}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    standby
        .verify(&key, &["--state", &witness_arg])
        .assert_verified();

    let (p50, max) = p50_and_max(&takeovers);
    eprintln!(
        "writer failover over {KILLS} kills (kill → first acknowledged append by the new \
         writer): p50 {p50} ms, max {max} ms; {} acknowledged, retried: {:?}",
        acks.len(),
        load.retried.lock().unwrap()
    );
}

#[test]
fn the_ledger_moves_to_a_promoted_synchronous_standby_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let primary = Cluster::start();
    let standby = primary.replica();
    primary.set("synchronous_standby_names", "'*'");
    let deadline = Instant::now() + WAIT_LIMIT;
    while primary.query("SELECT sync_state FROM pg_stat_replication") != "sync" {
        assert!(
            Instant::now() < deadline,
            "the standby never became synchronous"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let database = primary.database();
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/{}",
        primary.port(),
        standby.port(),
        database.name()
    );
    let (issuer, config) = issuer(tmp.path());
    let server = TestServer::start_on_database(&tmp.path().join("data"), &config, &url);
    wait_for_role(&server, "writer");
    let admin = server.admin_secret().to_string();
    let credential = server.create_credential("issuer", Some(VO));
    let key = server.log_key();
    let witness = tmp.path().join("witness.checkpoint");
    let witness_arg = witness.to_str().unwrap().to_string();
    server
        .verify(&key, &["--state", &witness_arg])
        .assert_verified();

    let https = [server.http()];
    let servers = std::slice::from_ref(&server);
    let load = Load::default();
    let outage = std::thread::scope(|scope| {
        let _stop_clients = StopOnDrop(&load.stop);
        for thread in 0..THREADS {
            let (load, https, issuer, credential) = (&load, &https, &issuer, &credential);
            scope.spawn(move || client(load, https, issuer, credential, thread));
        }
        load.wait_for(ACKS_PER_ROUND, servers);
        let note = server.http().get("/v1/log/checkpoint", None);
        assert_eq!(note.status, 200, "{note:?}");
        load.wait_for(load.acked() + 20, servers);

        let killed_at = Instant::now();
        primary.kill9();
        standby.promote();
        let Some(first_ack) = load.first_ack_after(0, killed_at, DATABASE_FAILOVER_LIMIT) else {
            panic!(
                "nothing acknowledged within {DATABASE_FAILOVER_LIMIT:?} of the primary's \
                 SIGKILL and the standby's promotion\n{}\n--- standby's log ---\n{}",
                server.log_tail(),
                standby.log()
            );
        };
        load.wait_for(load.acked() + ACKS_PER_ROUND, servers);
        load.stop.store(true, Ordering::SeqCst);
        assert_consistent_with(
            &server,
            &key,
            &note.body,
            &tmp.path().join("before-kill.checkpoint"),
        );
        first_ack - killed_at
    });
    let unexpected = load.unexpected.lock().unwrap();
    assert!(unexpected.is_empty(), "unexpected answers: {unexpected:#?}");
    wait_for_role(&server, "writer");
    let acks = load.acks.lock().unwrap();
    check_acknowledged(&server, &admin, &credential, &acks);
    let run = server.verify(&key, &["--state", &witness_arg]);
    assert_eq!(run.assert_verified()["consistent_with"], 0);
    eprintln!(
        "database failover (primary killed, standby promoted → first acknowledged append): \
         {} ms; {} acknowledged, retried: {:?}",
        outage.as_millis(),
        acks.len(),
        load.retried.lock().unwrap()
    );
}
