//! Crash safety end to end: client threads append continuously while the real server is killed
//! with SIGKILL, five times. Every acknowledged append must come back at the same index, no index
//! may hold two different reports, and `tokenledger verify` must find every checkpoint served
//! before a crash (and every one stored) consistent with the log after it.
//!
//! The kill points vary per run; set `TOKENLEDGER_E2E_SEED` to replay the one a failure printed.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
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

#[test]
fn acknowledged_appends_survive_repeated_kill_9() {
    let seed = seed();
    eprintln!("crash test seed: {seed} (replay with TOKENLEDGER_E2E_SEED={seed})");
    let mut rng = Rng::new(seed);
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("witness.checkpoint");
    let pre_crash_state = tmp.path().join("pre-crash.checkpoint");
    let mut server = TestServer::start(&tmp.path().join("data"));
    let admin = server.admin_secret().to_string();
    let issuer = server.create_issuer(VO);
    let key = server.log_key();

    let first = server.verify(&key, &["--state", state.to_str().unwrap()]);
    assert_eq!(first.assert_verified()["size"], 0);
    let mut trusted_size = 0u64;

    // Everything ever acknowledged (jti → index, and index → jti), and every jti ever sent.
    let mut acked_index: HashMap<String, u64> = HashMap::new();
    let mut jti_at: HashMap<u64, String> = HashMap::new();
    let mut sent: HashSet<String> = HashSet::new();
    // The leaves seen after the previous crash: the log only ever grows past them.
    let mut previous_leaves: Vec<Vec<u8>> = Vec::new();

    for round in 0..ROUNDS {
        let http = server.http();
        let kill_after = 100 + rng.below(400) as usize;
        let stop = AtomicBool::new(false);
        let acked = AtomicUsize::new(0);
        let (logs, pre_crash_note) = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|thread| {
                    let (http, issuer, stop, acked) = (&http, &issuer, &stop, &acked);
                    scope.spawn(move || client(http, issuer, round, thread, seed, stop, acked))
                })
                .collect();
            // Wait (bounded) for enough acknowledgements, then take the checkpoint a witness
            // would see and pull the plug while the clients are still sending.
            let deadline = Instant::now() + ROUND_LIMIT;
            while acked.load(Ordering::SeqCst) < kill_after
                && Instant::now() < deadline
                && !handles.iter().all(|h| h.is_finished())
            {
                std::thread::sleep(Duration::from_millis(2));
            }
            let note = http.get("/v1/log/checkpoint", None);
            let clients_alive = !handles.iter().all(|h| h.is_finished());
            server.kill9();
            stop.store(true, Ordering::SeqCst);
            let logs: Vec<ClientLog> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            assert!(
                clients_alive && acked.load(Ordering::SeqCst) >= kill_after,
                "round {round}: the clients stopped or stalled before the kill \
                 ({} of {kill_after} acknowledged)\n{}",
                acked.load(Ordering::SeqCst),
                server.log_tail()
            );
            assert_eq!(note.status, 200, "{note:?}");
            (logs, note.body)
        });
        for log in &logs {
            assert!(
                log.unexpected.is_empty(),
                "round {round}: unexpected answers to fresh reports: {:#?}",
                log.unexpected
            );
        }
        let mut round_acks = Vec::new();
        for log in logs {
            sent.extend(log.unanswered);
            for (jti, index) in log.acked {
                sent.insert(jti.clone());
                assert!(
                    acked_index.insert(jti.clone(), index).is_none(),
                    "{jti} acknowledged twice"
                );
                if let Some(other) = jti_at.insert(index, jti.clone()) {
                    panic!("index {index} acknowledged for both {other} and {jti}");
                }
                round_acks.push((jti, index));
            }
        }

        server.start_again();
        let http = server.http();
        let size = http.log_size();

        // Every acknowledged append is in the log at its index; nothing else is there.
        let entries = http.entries(&admin, 0, size);
        let mut seen = HashSet::new();
        for (i, entry) in entries.iter().enumerate() {
            assert_eq!(entry.index, i as u64);
            let jti = entry.jti();
            assert!(seen.insert(jti.to_string()), "{jti} is logged twice");
            assert!(sent.contains(jti), "entry {i}: {jti} was never sent");
            if let Some(j) = jti_at.get(&entry.index) {
                assert_eq!(j, jti, "entry {i} holds another report than acknowledged");
            }
        }
        for (jti, index) in &acked_index {
            assert!(
                *index < size,
                "round {round}: acknowledged {jti} at {index}, but the log has {size} entries \
                 after the crash\n{}",
                server.log_tail()
            );
        }
        assert!(
            previous_leaves.len() as u64 <= size,
            "the log shrank from {} to {size}",
            previous_leaves.len()
        );
        for (i, leaf) in previous_leaves.iter().enumerate() {
            assert_eq!(&entries[i].leaf, leaf, "entry {i} changed across a crash");
        }
        previous_leaves = entries.into_iter().map(|e| e.leaf).collect();

        // Re-posting acknowledged reports: 200, duplicate, the same index, nothing appended.
        for chunk in round_acks.chunks(1000) {
            let jtis: Vec<&str> = chunk.iter().map(|(j, _)| j.as_str()).collect();
            let reply = http.append(&issuer, &batch(&jtis, VO));
            assert_eq!(reply.status, 200, "{reply:?}");
            let json = reply.json();
            let results = json["results"].as_array().unwrap();
            for ((jti, index), result) in chunk.iter().zip(results) {
                assert_eq!(result["status"], "duplicate", "{jti}: {result}");
                assert_eq!(result["index"], *index, "{jti}: {result}");
            }
        }
        let (jti, index) = &round_acks[rng.below(round_acks.len() as u64) as usize];
        let single = http.append(&issuer, &report(jti, VO));
        assert_eq!(single.status, 200, "{single:?}");
        assert_eq!(single.json()["index"], *index);
        assert_eq!(http.log_size(), size, "re-posting appended something");

        // The witness: consistent with what it trusted before the round, and with the
        // checkpoint served just before the kill; one acknowledged entry is included.
        write(&pre_crash_state, &pre_crash_note);
        let pre = server.verify(&key, &["--state", pre_crash_state.to_str().unwrap()]);
        let pre_size = pre.assert_verified()["consistent_with"].as_u64().unwrap();
        assert!(pre_size <= size);
        let index = index.to_string();
        let run = server.verify(
            &key,
            &[
                "--state",
                state.to_str().unwrap(),
                "--entry",
                &index,
                "--token",
                &admin,
            ],
        );
        let json = run.assert_verified();
        assert_eq!(json["consistent_with"], trusted_size);
        assert_eq!(json["size"], size);
        trusted_size = size;
        eprintln!(
            "round {round}: killed after {} acknowledged, log size {size}, checkpoint before \
             the kill at {pre_size}",
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
    let sizes = db::checkpoint_sizes(&server.db_path());
    assert!(
        sizes.contains(&size),
        "no stored checkpoint of the final size: {sizes:?}"
    );
    for stored in sizes {
        let note = db::checkpoint_note(&server.db_path(), stored).unwrap();
        write(&pre_crash_state, &note);
        let run = server.verify(&key, &["--state", pre_crash_state.to_str().unwrap()]);
        assert_eq!(run.assert_verified()["consistent_with"], stored);
    }
    server.stop();
}
