//! Crash safety end to end: client threads append continuously while the real server is killed
//! with SIGKILL, five times. Every acknowledged append must come back at the same index, no index
//! may hold two different reports, and `tokenledger verify` must find every checkpoint served
//! before a crash (and every one stored) consistent with the log after it. A second test stops
//! the server with SIGTERM under the same load: it must drain, exit 0 and store a checkpoint of
//! its final size.
//!
//! The kill points vary per run; set `TOKENLEDGER_E2E_SEED` to replay the one a failure printed.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokenledger_core::checkpoint::Checkpoint;
use tokenledger_core::note::NoteVerifier;
use tokenledger_e2e::both_backends;
use tokenledger_e2e::{Http, TestServer, batch, db, report};

const ROUNDS: usize = 5;
const THREADS: usize = 4;
/// Bounds on each client thread and on each round: counts and time, never thresholds.
const MAX_REQUESTS_PER_THREAD: usize = 20_000;
const ROUND_LIMIT: Duration = Duration::from_secs(60);
const VO: &str = "atlas";

/// A small deterministic generator (xorshift64*), seeded per run.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    match std::env::var("TOKENLEDGER_E2E_SEED") {
        Ok(s) => s.parse().expect("TOKENLEDGER_E2E_SEED is a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

/// What one client thread saw: acknowledged (jti, index), and jtis whose request got no answer.
#[derive(Default)]
struct ClientLog {
    acked: Vec<(String, u64)>,
    unanswered: Vec<String>,
    /// Answers that must never happen for fresh reports (anything but 201 all-created or 503).
    unexpected: Vec<String>,
}

/// Appends fresh reports (singles and batches of 2..=8) until told to stop or the server
/// stops answering.
fn client(
    http: &Http,
    token: &str,
    round: usize,
    thread: usize,
    seed: u64,
    stop: &AtomicBool,
    acked: &AtomicUsize,
) -> ClientLog {
    let mut rng = Rng::new(seed ^ ((round as u64) << 32) ^ thread as u64);
    let mut log = ClientLog::default();
    for k in 0..MAX_REQUESTS_PER_THREAD {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let single = rng.below(3) == 0;
        let n = if single { 1 } else { 2 + rng.below(7) as usize };
        let jtis: Vec<String> = (0..n)
            .map(|i| format!("crash-r{round}-t{thread}-{k}-{i}"))
            .collect();
        let body = if single {
            report(&jtis[0], VO)
        } else {
            batch(&jtis, VO)
        };
        let reply = match http.try_append(token, &body) {
            Ok(reply) => reply,
            Err(_) => {
                // The server is gone (killed): this request may or may not have been logged.
                log.unanswered.extend(jtis);
                break;
            }
        };
        match reply.status {
            201 => {
                let json = reply.json();
                let results: Vec<Value> = if single {
                    vec![json]
                } else {
                    json["results"].as_array().cloned().unwrap_or_default()
                };
                if results.len() != n || results.iter().any(|r| r["status"] != "created") {
                    log.unexpected.push(format!("{jtis:?}: {}", reply.body));
                    log.unanswered.extend(jtis);
                    continue;
                }
                for (jti, r) in jtis.into_iter().zip(&results) {
                    log.acked.push((jti, r["index"].as_u64().expect("index")));
                }
                acked.fetch_add(n, Ordering::SeqCst);
            }
            503 => log.unanswered.extend(jtis),
            _ => {
                log.unexpected.push(format!("{jtis:?}: {reply:?}"));
                log.unanswered.extend(jtis);
            }
        }
    }
    log
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Sets the flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// How a round ends the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Interrupt {
    Kill9,
    Sigterm,
}

/// One round: `THREADS` clients append until about `stop_after` appends are acknowledged;
/// then the checkpoint a witness would see is fetched, a few more appends are let through,
/// and the server is interrupted while the clients still send. Returns what the clients saw
/// and the checkpoint note fetched before the interruption.
fn load_and_interrupt(
    server: &mut TestServer,
    issuer: &str,
    round: usize,
    seed: u64,
    rng: &mut Rng,
    interrupt: Interrupt,
) -> (Vec<ClientLog>, String) {
    let http = server.http();
    let stop_after = 100 + rng.below(500) as usize;
    let extra = 1 + rng.below(40) as usize;
    let stop = AtomicBool::new(false);
    let acked = AtomicUsize::new(0);
    let (logs, note, reached) = std::thread::scope(|scope| {
        // Stops the clients however this closure ends, a panic included.
        let _stop_clients = StopOnDrop(&stop);
        let handles: Vec<_> = (0..THREADS)
            .map(|thread| {
                let (http, stop, acked) = (&http, &stop, &acked);
                scope.spawn(move || client(http, issuer, round, thread, seed, stop, acked))
            })
            .collect();
        let deadline = Instant::now() + ROUND_LIMIT;
        // Bounded polling of the clients' progress (no readiness sleeps).
        let wait_for = |target: usize| {
            while acked.load(Ordering::SeqCst) < target
                && Instant::now() < deadline
                && !handles.iter().all(|h| h.is_finished())
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            acked.load(Ordering::SeqCst) >= target && !handles.iter().all(|h| h.is_finished())
        };
        let mut reached = wait_for(stop_after);
        let note = http.get("/v1/log/checkpoint", None);
        // Let the log grow past that checkpoint, so the witness has a real proof to check.
        reached &= wait_for(acked.load(Ordering::SeqCst) + extra);
        match interrupt {
            Interrupt::Kill9 => server.kill9(),
            Interrupt::Sigterm => server.stop(),
        }
        stop.store(true, Ordering::SeqCst);
        let logs: Vec<ClientLog> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        (logs, note, reached)
    });
    assert!(
        reached,
        "round {round}: the clients stopped or stalled before the {interrupt:?} \
         ({} acknowledged, wanted {stop_after} + {extra})\n{}",
        acked.load(Ordering::SeqCst),
        server.log_tail()
    );
    assert_eq!(note.status, 200, "{note:?}");
    for log in &logs {
        assert!(
            log.unexpected.is_empty(),
            "round {round}: unexpected answers to fresh reports: {:#?}\n{}",
            log.unexpected,
            server.log_tail()
        );
    }
    (logs, note.body)
}

/// What the clients were told across all rounds, and what the log held after each restart.
#[derive(Default)]
struct Ledger {
    /// Every acknowledged append (jti → index), and the other way round.
    acked_index: HashMap<String, u64>,
    jti_at: HashMap<u64, String>,
    /// Every jti ever sent, answered or not.
    sent: HashSet<String>,
    /// The leaves seen after the previous restart: the log only ever grows past them.
    previous_leaves: Vec<Vec<u8>>,
}

impl Ledger {
    /// Records a round's client logs; returns the round's acknowledged (jti, index).
    fn record(&mut self, logs: Vec<ClientLog>) -> Vec<(String, u64)> {
        let mut round_acks = Vec::new();
        for log in logs {
            self.sent.extend(log.unanswered);
            for (jti, index) in log.acked {
                self.sent.insert(jti.clone());
                assert!(
                    self.acked_index.insert(jti.clone(), index).is_none(),
                    "{jti} acknowledged twice"
                );
                if let Some(other) = self.jti_at.insert(index, jti.clone()) {
                    panic!("index {index} acknowledged for both {other} and {jti}");
                }
                round_acks.push((jti, index));
            }
        }
        round_acks
    }

    /// After a restart: every acknowledged append is in the log at its index, no report is
    /// logged twice, nothing unsent is there, and no earlier entry changed. Returns the size.
    fn check(&mut self, server: &TestServer, admin: &str, round: usize) -> u64 {
        let http = server.http();
        let size = http.log_size();
        let entries = http.entries(admin, 0, size);
        let mut seen = HashSet::new();
        for (i, entry) in entries.iter().enumerate() {
            assert_eq!(entry.index, i as u64);
            let jti = entry.jti();
            assert!(seen.insert(jti.to_string()), "{jti} is logged twice");
            assert!(self.sent.contains(jti), "entry {i}: {jti} was never sent");
            if let Some(j) = self.jti_at.get(&entry.index) {
                assert_eq!(j, jti, "entry {i} holds another report than acknowledged");
            }
        }
        for (jti, index) in &self.acked_index {
            assert!(
                *index < size,
                "round {round}: acknowledged {jti} at {index}, but the log has {size} entries \
                 after the restart\n{}",
                server.log_tail()
            );
        }
        assert!(
            self.previous_leaves.len() as u64 <= size,
            "the log shrank from {} to {size}",
            self.previous_leaves.len()
        );
        for (i, leaf) in self.previous_leaves.iter().enumerate() {
            assert_eq!(&entries[i].leaf, leaf, "entry {i} changed across a restart");
        }
        self.previous_leaves = entries.into_iter().map(|e| e.leaf).collect();
        size
    }
}

/// Re-posting acknowledged reports: 200, duplicate, the same index, nothing appended.
fn repost(http: &Http, issuer: &str, acks: &[(String, u64)], rng: &mut Rng) {
    let size = http.log_size();
    for chunk in acks.chunks(1000) {
        let jtis: Vec<&str> = chunk.iter().map(|(j, _)| j.as_str()).collect();
        let reply = http.append(issuer, &batch(&jtis, VO));
        assert_eq!(reply.status, 200, "{reply:?}");
        let json = reply.json();
        let results = json["results"].as_array().unwrap();
        assert_eq!(results.len(), chunk.len());
        for ((jti, index), result) in chunk.iter().zip(results) {
            assert_eq!(result["status"], "duplicate", "{jti}: {result}");
            assert_eq!(result["index"], *index, "{jti}: {result}");
        }
    }
    let (jti, index) = &acks[rng.below(acks.len() as u64) as usize];
    let single = http.append(issuer, &report(jti, VO));
    assert_eq!(single.status, 200, "{single:?}");
    assert_eq!(single.json()["status"], "duplicate");
    assert_eq!(single.json()["index"], *index);
    assert_eq!(http.log_size(), size, "re-posting appended something");
}

/// What the witness saw after a restart.
struct Witnessed {
    /// Size of the checkpoint served before the interruption, found consistent.
    pre_size: u64,
    /// Size of the checkpoint the witness trusted before, if it had one.
    consistent_with: Option<u64>,
    /// Size of the checkpoint it trusts now.
    size: u64,
}

/// The witness after a restart: `pre_note` (served before the interruption) and the
/// trusted state in `dir` are both consistent with the log now; `entry` is included.
fn witness(
    server: &TestServer,
    key: &str,
    admin: &str,
    dir: &Path,
    pre_note: &str,
    entry: u64,
) -> Witnessed {
    let pre_state = dir.join("pre-interrupt.checkpoint");
    write(&pre_state, pre_note);
    let pre = server.verify(key, &["--state", pre_state.to_str().unwrap()]);
    let pre_size = pre.assert_verified()["consistent_with"]
        .as_u64()
        .expect("the pre-interrupt checkpoint was checked");
    let index = entry.to_string();
    let state = dir.join("witness.checkpoint");
    let run = server.verify(
        key,
        &[
            "--state",
            state.to_str().unwrap(),
            "--entry",
            &index,
            "--token",
            admin,
        ],
    );
    let json = run.assert_verified();
    assert_eq!(json["entry"], entry);
    let size = json["size"].as_u64().unwrap();
    assert!(pre_size <= size);
    Witnessed {
        pre_size,
        consistent_with: json["consistent_with"].as_u64(),
        size,
    }
}

both_backends!(acknowledged_appends_survive_repeated_kill_9);
fn acknowledged_appends_survive_repeated_kill_9() {
    let seed = seed();
    eprintln!("crash test seed: {seed} (replay with TOKENLEDGER_E2E_SEED={seed})");
    let mut rng = Rng::new(seed);
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("witness.checkpoint");
    let mut server = TestServer::start(&tmp.path().join("data"));
    let admin = server.admin_secret().to_string();
    let issuer = server.create_issuer(VO);
    let key = server.log_key();

    let first = server.verify(&key, &["--state", state.to_str().unwrap()]);
    assert_eq!(first.assert_verified()["size"], 0);
    assert_eq!(
        open(&std::fs::read_to_string(&state).unwrap(), &key).size,
        0
    );
    let mut trusted_size = 0u64;
    let mut ledger = Ledger::default();

    for round in 0..ROUNDS {
        let (logs, pre_note) = load_and_interrupt(
            &mut server,
            &issuer,
            round,
            seed,
            &mut rng,
            Interrupt::Kill9,
        );
        let unanswered: usize = logs.iter().map(|l| l.unanswered.len()).sum();
        let round_acks = ledger.record(logs);

        server.start_again();
        let size = ledger.check(&server, &admin, round);
        repost(&server.http(), &issuer, &round_acks, &mut rng);
        let (_, index) = &round_acks[rng.below(round_acks.len() as u64) as usize];
        let seen = witness(&server, &key, &admin, tmp.path(), &pre_note, *index);
        assert_eq!(seen.consistent_with, Some(trusted_size));
        assert_eq!(seen.size, size);
        trusted_size = size;
        let pre_size = seen.pre_size;
        eprintln!(
            "round {round}: killed after {} acknowledged ({unanswered} sent without answer), \
             log size {size}, checkpoint before the kill at {pre_size}",
            round_acks.len()
        );
    }

    // Finally a graceful restart, and every checkpoint the server ever stored is consistent
    // with the final log.
    server.restart();
    let size = server.log_size();
    assert_eq!(size, trusted_size);
    let run = server.verify(&key, &["--state", state.to_str().unwrap()]);
    assert_eq!(run.assert_verified()["consistent_with"], size);
    let sizes = db::checkpoint_sizes(&server.db());
    assert!(
        sizes.contains(&size),
        "no stored checkpoint of the final size: {sizes:?}"
    );
    let stored_state = tmp.path().join("stored.checkpoint");
    for stored in sizes {
        let note = db::checkpoint_note(&server.db(), stored).unwrap();
        write(&stored_state, &note);
        let run = server.verify(&key, &["--state", stored_state.to_str().unwrap()]);
        assert_eq!(run.assert_verified()["consistent_with"], stored);
    }
    server.stop();
}

both_backends!(sigterm_under_load_drains_and_writes_a_final_checkpoint);
fn sigterm_under_load_drains_and_writes_a_final_checkpoint() {
    let seed = seed();
    eprintln!("sigterm test seed: {seed} (replay with TOKENLEDGER_E2E_SEED={seed})");
    let mut rng = Rng::new(seed);
    let tmp = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(&tmp.path().join("data"));
    let admin = server.admin_secret().to_string();
    let issuer = server.create_issuer(VO);
    let key = server.log_key();
    let mut ledger = Ledger::default();

    for round in 0..2 {
        // `stop` asserts that the server exits successfully, within a bound, after SIGTERM.
        let (logs, pre_note) = load_and_interrupt(
            &mut server,
            &issuer,
            round,
            seed,
            &mut rng,
            Interrupt::Sigterm,
        );
        let round_acks = ledger.record(logs);
        // Everything committed is covered by the checkpoint written at shutdown.
        let (rows, _, _) = db::row_counts(&server.db());
        let final_note = db::checkpoint_note(&server.db(), rows);
        assert!(
            final_note.is_some(),
            "no checkpoint of the final size {rows} after SIGTERM: {:?}\n{}",
            db::checkpoint_sizes(&server.db()),
            server.log_tail()
        );

        server.start_again();
        let size = ledger.check(&server, &admin, round);
        assert_eq!(size, rows);
        assert_eq!(
            server.checkpoint(),
            final_note.unwrap(),
            "the served checkpoint after the restart is the one stored at shutdown"
        );
        repost(&server.http(), &issuer, &round_acks, &mut rng);
        let (_, index) = &round_acks[rng.below(round_acks.len() as u64) as usize];
        let seen = witness(&server, &key, &admin, tmp.path(), &pre_note, *index);
        assert_eq!(seen.size, size);
    }
    server.stop();
}

fn open(note: &str, key: &str) -> Checkpoint {
    let verifier = NoteVerifier::parse(key).expect("the log key parses");
    Checkpoint::open(note, &verifier).expect("a checkpoint signed by the log key")
}
