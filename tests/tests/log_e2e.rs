//! The verifiable log end to end: the real server in a temp dir, an issuer credential from the
//! real admin command, 1,000+ issuances over HTTP, the real `tokenledger verify` as a witness
//! (`--state`, `--entry`), a graceful restart, and tampering with the database underneath a
//! running server, which the verifier must catch.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Value, json};
use tokenledger_core::checkpoint::Checkpoint;
use tokenledger_core::merkle::{self, Hash};
use tokenledger_core::note::{NoteSigner, NoteVerifier};
use tokenledger_core::receipt::Receipt;
use tokenledger_e2e::both_backends;
use tokenledger_e2e::{Http, TestServer, batch, db, issuer_of, report};

/// The log's origin (and key name) in the default configuration.
const ORIGIN: &str = "tokenledger.local/log";

/// One acknowledged append: the reported jti, the index and leaf hash the server answered.
#[derive(Debug, Clone)]
struct Ack {
    jti: String,
    index: u64,
    leaf_hash: String,
    receipt: Receipt,
}

/// Appends `batches` batches of `per_batch` reports, each followed by one single report, with
/// jtis prefixed by `tag`. One client, so indexes must be consecutive from the current size.
fn fill(http: &Http, token: &str, tag: &str, batches: usize, per_batch: usize) -> Vec<Ack> {
    let mut next = http.log_size();
    let mut acks = Vec::new();
    for b in 0..batches {
        let jtis: Vec<String> = (0..per_batch).map(|i| format!("{tag}-{b}-{i}")).collect();
        let reply = http.append(token, &batch(&jtis, "atlas"));
        assert_eq!(reply.status, 201, "{reply:?}");
        let json = reply.json();
        let results = json["results"].as_array().expect("a batch answers results");
        assert_eq!(results.len(), per_batch, "one result per report: {json}");
        for (jti, result) in jtis.iter().zip(results) {
            acks.push(expect_created(result, jti, next));
            next += 1;
        }

        let jti = format!("{tag}-single-{b}");
        let reply = http.append(token, &report(&jti, "atlas"));
        assert_eq!(reply.status, 201, "{reply:?}");
        acks.push(expect_created(&reply.json(), &jti, next));
        next += 1;
    }
    acks
}

fn expect_created(result: &Value, jti: &str, index: u64) -> Ack {
    assert_eq!(result["status"], "created", "{jti}: {result}");
    assert_eq!(
        result["index"], index,
        "{jti}: indexes are consecutive: {result}"
    );
    let leaf_hash = result["leaf_hash"].as_str().expect("leaf_hash").to_string();
    Ack {
        jti: jti.to_string(),
        index,
        receipt: receipt_of(result),
        leaf_hash,
    }
}

/// The signed receipt in an append answer.
fn receipt_of(result: &Value) -> Receipt {
    Receipt {
        origin: ORIGIN.to_string(),
        index: result["index"].as_u64().expect("index"),
        leaf_hash: Hash::from_base64(result["leaf_hash"].as_str().expect("leaf_hash"))
            .expect("leaf_hash is base64 of 32 bytes"),
        integrated_at: result["integrated_at"].as_i64().expect("integrated_at"),
        signature: result["receipt"].as_str().expect("receipt").to_string(),
    }
}

/// Every acknowledged append is served at its index, with the leaf bytes that hash to the
/// leaf hash the server answered at append time, and its receipt is signed by the log key.
fn check_entries(http: &Http, admin: &str, key: &str, acks: &[Ack]) {
    let verifier = NoteVerifier::parse(key).expect("the log key parses");
    let start = acks.first().expect("some acks").index;
    let end = acks.last().unwrap().index + 1;
    let served = http.entries(admin, start, end);
    assert_eq!(served.len(), acks.len());
    for (ack, entry) in acks.iter().zip(&served) {
        assert_eq!(entry.index, ack.index);
        assert_eq!(entry.jti(), ack.jti, "entry {}", ack.index);
        assert_eq!(
            merkle::leaf_hash(&entry.leaf).to_base64(),
            ack.leaf_hash,
            "entry {}: served leaf does not hash to the acknowledged leaf hash",
            ack.index
        );
        assert_eq!(entry.entry["type"], "issuance");
        assert_eq!(entry.entry["v"], 1);
        assert_eq!(entry.entry["vo"], "atlas");
        assert_eq!(entry.entry["iss"], issuer_of("atlas"));
        assert_eq!(entry.entry["source"], "claims");
        assert_eq!(entry.entry["logged_at"], ack.receipt.integrated_at);
        ack.receipt
            .verify(&verifier)
            .unwrap_or_else(|e| panic!("entry {}: receipt: {e}", ack.index));
    }
}

fn open_checkpoint(note: &str, key: &str) -> Checkpoint {
    let verifier = NoteVerifier::parse(key).expect("the served log key parses");
    Checkpoint::open(note, &verifier).expect("the served checkpoint verifies with the log key")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

both_backends!(thousand_entries_verify_grow_consistently_and_survive_a_restart);
fn thousand_entries_verify_grow_consistently_and_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("witness.checkpoint");
    let mut server = TestServer::start(&tmp.path().join("data"));
    let admin = server.admin_secret().to_string();
    let issuer = server.create_issuer("atlas");
    let key = server.log_key();
    let http = server.http();
    assert_eq!(http.log_size(), 0);

    // 10 batches of 99 plus 10 singles: 1,000 entries.
    let mut acks = fill(&http, &issuer, "e2e", 10, 99);
    assert_eq!(acks.len(), 1000);
    assert_eq!(http.log_size(), 1000);
    check_entries(&http, &admin, &key, &acks);

    // The same report again: 200, same index and leaf hash, nothing appended.
    let again = http.append(&issuer, &report(&acks[500].jti, "atlas"));
    assert_eq!(again.status, 200, "{again:?}");
    let again = again.json();
    assert_eq!(again["status"], "duplicate");
    assert_eq!(again["index"], 500);
    assert_eq!(again["leaf_hash"], acks[500].leaf_hash.as_str());
    assert_eq!(
        receipt_of(&again),
        acks[500].receipt,
        "a duplicate gets the first receipt"
    );
    assert_eq!(http.log_size(), 1000);

    // The real verifier, as a witness: the first run trusts the checkpoint and saves it.
    let first = server.verify(
        &key,
        &[
            "--state",
            state.to_str().unwrap(),
            "--entry",
            "500",
            "--token",
            &admin,
        ],
    );
    let json = first.assert_verified();
    assert_eq!(json["size"], 1000);
    assert_eq!(json["entry"], 500);
    assert_eq!(json["consistent_with"], Value::Null);
    assert_eq!(json["origin"], ORIGIN);
    let note = server.checkpoint();
    assert_eq!(
        read(&state),
        note,
        "the state file holds the verified checkpoint"
    );
    let checkpoint = open_checkpoint(&note, &key);
    assert_eq!(checkpoint.size, 1000);
    assert_eq!(json["root"], checkpoint.root.to_base64());

    // Grow the log: three more batches, and a batch mixing logged reports, a new one and the
    // new one again.
    acks.extend(fill(&http, &issuer, "more", 3, 100));
    let size = http.log_size();
    assert_eq!(size, 1303);
    let mixed = json!([
        report(&acks[0].jti, "atlas"),
        report("mixed-new", "atlas"),
        report(&acks[999].jti, "atlas"),
        report("mixed-new", "atlas"),
    ]);
    let reply = http.append(&issuer, &mixed);
    assert_eq!(reply.status, 201, "{reply:?}");
    let results = reply.json()["results"].clone();
    let summary: Vec<(Value, Value)> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].clone(), r["status"].clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (json!(0), json!("duplicate")),
            (json!(size), json!("created")),
            (json!(999), json!("duplicate")),
            (json!(size), json!("duplicate")),
        ]
    );
    let size = size + 1;
    assert_eq!(http.log_size(), size);

    let grown = server.verify(
        &key,
        &[
            "--state",
            state.to_str().unwrap(),
            "--entry",
            "1250",
            "--token",
            &admin,
        ],
    );
    let json = grown.assert_verified();
    assert_eq!(json["consistent_with"], 1000, "{json}");
    assert_eq!(json["size"], size);
    assert_eq!(json["entry"], 1250);
    check_entries(&http, &admin, &key, &acks[1000..]);

    // A verifier pinned to another key (same name) refuses the log: exit 1, state untouched.
    let stranger = NoteSigner::from_seed(ORIGIN, [7; 32])
        .unwrap()
        .verifier()
        .to_string();
    let saved = read(&state);
    let refused = server.verify(&stranger, &[]);
    assert_eq!(refused.code, 1, "{refused:#?}");
    assert_eq!(refused.json["verified"], false);
    // An entry beyond the checkpoint is a usage error (exit 2).
    let beyond = server.verify(
        &key,
        &["--entry", &(size + 5).to_string(), "--token", &admin],
    );
    assert_eq!(beyond.code, 2, "{beyond:#?}");
    assert_eq!(read(&state), saved);

    // Graceful restart: SIGTERM writes the final checkpoint; size, key and checkpoint survive.
    let before = server.checkpoint();
    server.stop();
    let stored = db::checkpoint_note(&server.db(), size)
        .expect("a checkpoint of the final size is stored at shutdown");
    assert_eq!(
        open_checkpoint(&stored, &key),
        open_checkpoint(&before, &key),
        "the stored final checkpoint is the one served before shutdown"
    );
    let stored_sizes = db::checkpoint_sizes(&server.db());
    assert_eq!(stored_sizes.last(), Some(&size), "{stored_sizes:?}");
    assert_eq!(db::row_counts(&server.db()).0, size);

    server.start_again();
    let http = server.http();
    assert_eq!(http.log_size(), size, "the log size survives a restart");
    assert_eq!(server.log_key(), key, "the log key survives a restart");
    assert_eq!(
        open_checkpoint(&server.checkpoint(), &key),
        open_checkpoint(&before, &key),
        "the checkpoint survives a restart"
    );
    let after = server.verify(
        &key,
        &[
            "--state",
            state.to_str().unwrap(),
            "--entry",
            "3",
            "--token",
            &admin,
        ],
    );
    let json = after.assert_verified();
    assert_eq!(json["consistent_with"], size);
    assert_eq!(json["size"], size);

    // The log goes on where it stopped, and the old credential still works.
    let reply = http.append(&issuer, &report("after-restart", "atlas"));
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(reply.json()["index"], size);
    let again = http.append(&issuer, &report(&acks[42].jti, "atlas"));
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.json()["index"], 42);
    let last = server.verify(&key, &["--state", state.to_str().unwrap()]);
    assert_eq!(last.assert_verified()["consistent_with"], size);
    assert_eq!(last.json["size"], size + 1);
    server.stop();
}

/// The running server holds SQLite's shared lock on its database file. Another process that
/// closes its last connection to the file (an operator's `sqlite3`, a backup script) takes
/// the exclusive lock when no one holds a shared one, then checkpoints and deletes the WAL;
/// the server would write on into the deleted WAL and lose what it wrote there at its next
/// start. The server once dropped its own locks by closing a duplicate descriptor of the
/// file (POSIX locks belong to the process, and any close releases them).
// SQLite-only: the locks are SQLite's, on its file.
#[test]
fn the_running_server_holds_its_lock_on_the_database_file() {
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::start(&tmp.path().join("data"));
    let issuer = server.create_issuer("atlas");
    fill(&server.http(), &issuer, "locked", 2, 10);
    let held = db::locks_held(&server.db_path(), server.pid());
    assert!(
        !held.is_empty(),
        "the server holds no lock on its database file: another process's close would \
         delete its WAL"
    );
}

both_backends!(tampering_with_stored_hashes_or_leaves_fails_verification);
fn tampering_with_stored_hashes_or_leaves_fails_verification() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("witness.checkpoint");
    let server = TestServer::start(&tmp.path().join("data"));
    let admin = server.admin_secret().to_string();
    let issuer = server.create_issuer("atlas");
    let key = server.log_key();
    let http = server.http();
    let acks = fill(&http, &issuer, "t", 10, 100);
    let size = http.log_size();
    assert_eq!(size, 1010);
    let state_arg = state.to_str().unwrap();
    let verify_entry = |n: u64, with_state: bool| {
        let n = n.to_string();
        let mut args = vec!["--entry", n.as_str(), "--token", admin.as_str()];
        if with_state {
            args.extend(["--state", state_arg]);
        }
        server.verify(&key, &args)
    };
    verify_entry(700, true).assert_verified();
    let trusted = read(&state);
    let store = server.db();

    // The sibling leaf of entry 700 is in 700's inclusion proof, read from its stored hash.
    let target = 700u64;
    let sibling = merkle::stored_hash_index(0, target ^ 1);
    let proof_indexes = merkle::inclusion_proof_indexes(target, size).unwrap();
    assert!(
        proof_indexes.contains(&sibling),
        "test premise: {sibling} in {proof_indexes:?}"
    );
    // Entry 10's proof covers leaf 701 only through a higher subtree hash.
    let far_indexes = merkle::inclusion_proof_indexes(10, size).unwrap();
    assert!(!far_indexes.contains(&sibling), "test premise");

    let original = db::stored_hash(&store, sibling);
    assert_eq!(original.len(), 32);
    assert_eq!(
        original,
        merkle::leaf_hash(&db::leaf(&store, target ^ 1)).0,
        "the stored level-0 hash is the leaf hash of entry 701"
    );
    let forged: Vec<u8> = original.iter().map(|b| b ^ 0x5a).collect();
    assert_eq!(db::set_stored_hash(&store, sibling, &forged), 1);

    let caught = verify_entry(target, true);
    assert_eq!(
        caught.code,
        1,
        "a tampered stored hash must fail verification: {caught:#?}\n{}",
        server.log_tail()
    );
    assert_eq!(caught.json["verified"], false);
    assert!(
        caught.json["error"]
            .as_str()
            .is_some_and(|e| e.contains("700")),
        "{caught:#?}"
    );
    assert_eq!(
        read(&state),
        trusted,
        "a failed verification keeps the trusted state"
    );
    // The proof of an entry that does not read the tampered row still verifies ...
    verify_entry(10, false).assert_verified();
    // ... and restoring the row makes entry 700 verify again: the failure was the tampering.
    assert_eq!(db::set_stored_hash(&store, sibling, &original), 1);
    verify_entry(target, true).assert_verified();

    // Changing the bytes of a stored entry is caught too: the server hashes every leaf it
    // reads and refuses to serve one that does not match its stored leaf hash, so the
    // verifier gets an error, never the changed bytes (tests/integrity.rs has the details).
    let victim = 333u64;
    let leaf = db::leaf(&store, victim);
    let text = String::from_utf8(leaf.clone()).unwrap();
    assert!(text.contains(&acks[victim as usize].jti), "{text}");
    let forged_leaf = text.replace(
        &format!("\"{}\"", acks[victim as usize].jti),
        "\"someone-else\"",
    );
    assert_ne!(forged_leaf, text);
    assert_eq!(db::set_leaf(&store, victim, forged_leaf.as_bytes()), 1);
    let caught = verify_entry(victim, false);
    assert_eq!(caught.code, 2, "a tampered leaf must fail: {caught:#?}");
    assert!(caught.stderr.contains("answered 500"), "{caught:#?}");
    assert_eq!(db::set_leaf(&store, victim, &leaf), 1);
    verify_entry(victim, true).assert_verified();
    let health = http.get("/healthz", None).json();
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["log_size"], size);
}

both_backends!(compressed_leaves_are_served_and_verified_as_the_exact_canonical_bytes);
fn compressed_leaves_are_served_and_verified_as_the_exact_canonical_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = TestServer::start_with_config(&data, "[log]\ncompress_after = 1000\n");
    let admin = server.admin_secret().to_string();
    let issuer = server.create_issuer("atlas");
    let key = server.log_key();
    let mut acks = fill(&server.http(), &issuer, "raw", 10, 99);
    assert_eq!(acks.len(), 1000);
    // The dictionary is trained off the writer's path: the log goes on meanwhile, and the
    // entries after it are stored compressed.
    let mut rounds = 0;
    while db::compression_counts(&server.db()).0 == 0 {
        rounds += 1;
        assert!(rounds < 200, "no entry was ever stored compressed");
        acks.extend(fill(&server.http(), &issuer, &format!("z{rounds}"), 1, 49));
    }
    let (compressed, dictionaries) = db::compression_counts(&server.db());
    assert_eq!(dictionaries, 1);
    // The first 1,000 were logged raw; of the later ones, those written before the dictionary
    // was ready are raw too (none, when training beat the first of them).
    assert!(
        compressed > 0 && compressed <= acks.len() as u64 - 1000,
        "{compressed} stored compressed of {} acknowledged",
        acks.len()
    );
    let victim = acks.last().unwrap().index;
    let stored = db::leaf(&server.db(), victim);
    assert!(
        !stored.starts_with(b"{") && stored.len() * 2 < 579,
        "entry {victim} is stored compressed: {} bytes",
        stored.len()
    );
    check_entries(&server.http(), &admin, &key, &acks);
    let verify = |server: &TestServer, n: u64| {
        server.verify(
            &key,
            &["--entry", &n.to_string(), "--token", admin.as_str()],
        )
    };
    verify(&server, victim).assert_verified();

    // After a restart the dictionary comes from the database, and new leaves use it.
    server.restart();
    acks.extend(fill(&server.http(), &issuer, "after", 1, 10));
    check_entries(&server.http(), &admin, &key, &acks);
    let (after, dictionaries) = db::compression_counts(&server.db());
    assert_eq!((after, dictionaries), (compressed + 11, 1));

    // A damaged compressed leaf is an error (the server refuses to serve it), never other
    // bytes served as the entry.
    let mut damaged = stored.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x55;
    assert_eq!(db::set_leaf(&server.db(), victim, &damaged), 1);
    let caught = verify(&server, victim);
    assert_eq!(
        caught.code, 2,
        "a damaged leaf must not verify: {caught:#?}"
    );
    assert!(caught.stderr.contains("answered 500"), "{caught:#?}");
    assert_eq!(db::set_leaf(&server.db(), victim, &stored), 1);
    verify(&server, victim).assert_verified();
}

both_backends!(concurrent_reports_of_the_same_tokens_get_one_index_each);
fn concurrent_reports_of_the_same_tokens_get_one_index_each() {
    const TOKENS: usize = 240;
    const CLIENTS: usize = 4;
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::start(tmp.path());
    let admin = server.admin_secret().to_string();
    let issuer = server.create_issuer("atlas");
    let http = server.http();
    let jtis: Vec<String> = (0..TOKENS).map(|i| format!("race-{i}")).collect();

    // Every client reports every token, in its own order and grouping, at the same time.
    let answers: Vec<Vec<(String, u64, String)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (http, issuer, jtis) = (&http, &issuer, &jtis);
                scope.spawn(move || {
                    let mut order: Vec<&String> = jtis.iter().collect();
                    order.rotate_left(c * TOKENS / CLIENTS);
                    if c % 2 == 1 {
                        order.reverse();
                    }
                    let mut seen = Vec::new();
                    for group in order.chunks(1 + 3 * c) {
                        let reply = if group.len() == 1 {
                            http.append(issuer, &report(group[0], "atlas"))
                        } else {
                            http.append(issuer, &batch(group, "atlas"))
                        };
                        let json = reply.json();
                        let results = match json.get("results") {
                            Some(list) => list.as_array().unwrap().clone(),
                            None => vec![json.clone()],
                        };
                        let created = results.iter().any(|r| r["status"] == "created");
                        assert_eq!(
                            reply.status,
                            if created { 201 } else { 200 },
                            "201 exactly when something was created: {reply:?}"
                        );
                        for (jti, r) in group.iter().zip(&results) {
                            let status = r["status"].as_str().unwrap().to_string();
                            seen.push(((*jti).clone(), r["index"].as_u64().unwrap(), status));
                        }
                    }
                    seen
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    assert_eq!(http.log_size(), TOKENS as u64, "each token is logged once");
    let mut index_of: HashMap<&str, u64> = HashMap::new();
    let mut created: HashMap<&str, usize> = HashMap::new();
    for (jti, index, status) in answers.iter().flatten() {
        let first = *index_of.entry(jti).or_insert(*index);
        assert_eq!(first, *index, "{jti} answered with two indexes");
        if status == "created" {
            *created.entry(jti).or_default() += 1;
        } else {
            assert_eq!(status, "duplicate");
        }
    }
    assert_eq!(index_of.len(), TOKENS);
    for jti in &jtis {
        assert_eq!(
            created.get(jti.as_str()),
            Some(&1),
            "{jti}: created exactly once"
        );
    }
    let served = http.entries(&admin, 0, TOKENS as u64);
    for entry in &served {
        assert_eq!(index_of[entry.jti()], entry.index);
    }
    let key = server.log_key();
    server
        .verify(&key, &["--entry", "17", "--token", &admin])
        .assert_verified();
}

/// RFC 6962 MTH over leaf hashes, computed here from the served leaves, independently of the
/// server's stored-hash layout.
fn tree_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => merkle::empty_root(),
        1 => leaves[0],
        n => {
            // The largest power of two smaller than n.
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            merkle::node_hash(&tree_root(&leaves[..k]), &tree_root(&leaves[k..]))
        }
    }
}

fn hashes_of(json: &Value) -> Vec<Hash> {
    json["hashes"]
        .as_array()
        .expect("hashes is a list")
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap()).expect("32-byte base64 hash"))
        .collect()
}

both_backends!(proofs_at_many_sizes_match_a_tree_computed_from_the_leaves);
fn proofs_at_many_sizes_match_a_tree_computed_from_the_leaves() {
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::start(tmp.path());
    let admin = server.admin_secret().to_string();
    let issuer = server.create_issuer("atlas");
    let key = server.log_key();
    let http = server.http();

    // Uneven batches, so that the log passes through many tree shapes.
    let mut next = 0usize;
    for n in (1..=24).chain([1, 1, 1, 3, 5, 7]) {
        let jtis: Vec<String> = (next..next + n).map(|i| format!("shape-{i}")).collect();
        let reply = http.append(&issuer, &batch(&jtis, "atlas"));
        assert_eq!(reply.status, 201, "{reply:?}");
        next += n;
    }
    let size = http.log_size();
    assert_eq!(size, next as u64);
    let leaves: Vec<Hash> = http
        .entries(&admin, 0, size)
        .iter()
        .map(|e| merkle::leaf_hash(&e.leaf))
        .collect();
    let roots: Vec<Hash> = (0..=leaves.len())
        .map(|n| tree_root(&leaves[..n]))
        .collect();
    let checkpoint = open_checkpoint(&server.checkpoint(), &key);
    assert_eq!(checkpoint.size, size);
    assert_eq!(
        checkpoint.root, roots[size as usize],
        "the signed root is the MTH of the leaves"
    );

    let proof = |path: String| {
        let reply = http.get(&path, None);
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
        reply.json()
    };
    // Consistency of every older size with the current one, and of a spread of pairs.
    let mut pairs: Vec<(u64, u64)> = (0..=size).map(|m| (m, size)).collect();
    pairs.extend(
        (1..size)
            .step_by(17)
            .flat_map(|n| (0..=n).step_by(7).map(move |m| (m, n))),
    );
    for (m, n) in pairs {
        let json = proof(format!("/v1/log/proof/consistency?from={m}&to={n}"));
        assert_eq!(
            (json["from"].as_u64(), json["to"].as_u64()),
            (Some(m), Some(n))
        );
        merkle::verify_consistency(
            m,
            n,
            &roots[m as usize],
            &roots[n as usize],
            &hashes_of(&json),
        )
        .unwrap_or_else(|e| panic!("consistency {m} → {n}: {e}"));
    }
    // Inclusion of every leaf at the current size, and at a spread of older sizes.
    let mut pairs: Vec<(u64, u64)> = (0..size).map(|i| (i, size)).collect();
    pairs.extend(
        (1..size)
            .step_by(23)
            .flat_map(|n| (0..n).step_by(7).map(move |i| (i, n))),
    );
    for (i, n) in pairs {
        let json = proof(format!("/v1/log/proof/inclusion?index={i}&size={n}"));
        assert_eq!(
            json["leaf_hash"],
            leaves[i as usize].to_base64(),
            "leaf {i}"
        );
        merkle::verify_inclusion(
            i,
            n,
            &leaves[i as usize],
            &hashes_of(&json),
            &roots[n as usize],
        )
        .unwrap_or_else(|e| panic!("inclusion of {i} in {n}: {e}"));
    }
}

both_backends!(a_witness_detects_a_rolled_back_or_forked_log);
fn a_witness_detects_a_rolled_back_or_forked_log() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let state = tmp.path().join("witness.checkpoint");
    let state_arg = state.to_str().unwrap();
    let mut server = TestServer::start(&data);
    let issuer = server.create_issuer("atlas");
    let key = server.log_key();
    fill(&server.http(), &issuer, "early", 2, 50);
    let json = server.verify(&key, &["--state", state_arg]);
    assert_eq!(json.assert_verified()["size"], 102);

    // Back up the stopped server, let the log grow, and let the witness see it grow.
    server.stop();
    let backup = server.snapshot();
    server.start_again();
    fill(&server.http(), &issuer, "late", 2, 50);
    let json = server.verify(&key, &["--state", state_arg]);
    assert_eq!(json.assert_verified()["consistent_with"], 102);
    assert_eq!(json.json["size"], 204);
    let trusted = read(&state);

    // Restore the old backup: the log the witness sees shrank.
    server.stop();
    server.restore(&backup);
    server.start_again();
    assert_eq!(server.log_size(), 102);
    let shrunk = server.verify(&key, &["--state", state_arg]);
    assert_eq!(shrunk.code, 1, "a rolled-back log must fail: {shrunk:#?}");
    assert_eq!(shrunk.json["verified"], false);
    assert_eq!(
        read(&state),
        trusted,
        "a failed verification keeps the trusted state"
    );

    // Grow the restored log past the trusted size with other entries: a fork.
    fill(&server.http(), &issuer, "fork", 3, 50);
    assert_eq!(server.log_size(), 255);
    let forked = server.verify(&key, &["--state", state_arg]);
    assert_eq!(forked.code, 1, "a forked log must fail: {forked:#?}");
    assert_eq!(forked.json["verified"], false);
    assert_eq!(read(&state), trusted);
    // A witness without memory cannot tell: the fork is a well-signed log of its own.
    server.verify(&key, &[]).assert_verified();
    server.stop();
}
