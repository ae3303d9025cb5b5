//! The verifiable log end to end: the real server in a temp dir, an issuer credential from the
//! real admin command, 1,000+ issuances over HTTP, the real `tokenledger verify` as a witness
//! (`--state`, `--entry`), a graceful restart, and tampering with the SQLite file underneath a
//! running server, which the verifier must catch.

use std::path::Path;

use serde_json::{Value, json};
use tokenledger_core::checkpoint::Checkpoint;
use tokenledger_core::merkle::{self, Hash};
use tokenledger_core::note::{NoteSigner, NoteVerifier};
use tokenledger_e2e::{Http, TestServer, batch, db, issuer_of, report};

/// One acknowledged append: the reported jti, the index and leaf hash the server answered.
#[derive(Debug, Clone)]
struct Ack {
    jti: String,
    index: u64,
    leaf_hash: String,
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
    Hash::from_base64(&leaf_hash).expect("leaf_hash is base64 of 32 bytes");
    Ack {
        jti: jti.to_string(),
        index,
        leaf_hash,
    }
}

/// Every acknowledged append is served at its index, with the leaf bytes that hash to the
/// leaf hash the server answered at append time.
fn check_entries(http: &Http, admin: &str, acks: &[Ack]) {
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
    }
}

fn open_checkpoint(note: &str, key: &str) -> Checkpoint {
    let verifier = NoteVerifier::parse(key).expect("the served log key parses");
    Checkpoint::open(note, &verifier).expect("the served checkpoint verifies with the log key")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
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
    check_entries(&http, &admin, &acks);

    // The same report again: 200, same index and leaf hash, nothing appended.
    let again = http.append(&issuer, &report(&acks[500].jti, "atlas"));
    assert_eq!(again.status, 200, "{again:?}");
    let again = again.json();
    assert_eq!(again["status"], "duplicate");
    assert_eq!(again["index"], 500);
    assert_eq!(again["leaf_hash"], acks[500].leaf_hash.as_str());
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
    assert_eq!(json["origin"], "tokenledger.local/log");
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
    check_entries(&http, &admin, &acks[1000..]);

    // A verifier pinned to another key (same name) refuses the log: exit 1, state untouched.
    let stranger = NoteSigner::from_seed("tokenledger.local/log", [7; 32])
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
    let stored = db::checkpoint_note(&server.db_path(), size)
        .expect("a checkpoint of the final size is stored at shutdown");
    assert_eq!(
        open_checkpoint(&stored, &key),
        open_checkpoint(&before, &key),
        "the stored final checkpoint is the one served before shutdown"
    );
    let stored_sizes = db::checkpoint_sizes(&server.db_path());
    assert_eq!(stored_sizes.last(), Some(&size), "{stored_sizes:?}");
    assert_eq!(db::row_counts(&server.db_path()).0, size);

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

#[test]
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
    let db_path = server.db_path();

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

    let original = db::stored_hash(&db_path, sibling);
    assert_eq!(original.len(), 32);
    assert_eq!(
        original,
        merkle::leaf_hash(&db::leaf(&db_path, target ^ 1)).0,
        "the stored level-0 hash is the leaf hash of entry 701"
    );
    let forged: Vec<u8> = original.iter().map(|b| b ^ 0x5a).collect();
    assert_eq!(db::set_stored_hash(&db_path, sibling, &forged), 1);

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
    assert_eq!(db::set_stored_hash(&db_path, sibling, &original), 1);
    verify_entry(target, true).assert_verified();

    // Changing the bytes of a stored entry is caught too: the verifier rehashes served leaves.
    let victim = 333u64;
    let leaf = db::leaf(&db_path, victim);
    let text = String::from_utf8(leaf.clone()).unwrap();
    assert!(text.contains(&acks[victim as usize].jti), "{text}");
    let forged_leaf = text.replace(
        &format!("\"{}\"", acks[victim as usize].jti),
        "\"someone-else\"",
    );
    assert_ne!(forged_leaf, text);
    assert_eq!(db::set_leaf(&db_path, victim, forged_leaf.as_bytes()), 1);
    let caught = verify_entry(victim, false);
    assert_eq!(caught.code, 1, "a tampered leaf must fail: {caught:#?}");
    assert_eq!(caught.json["verified"], false);
    assert_eq!(db::set_leaf(&db_path, victim, &leaf), 1);
    verify_entry(victim, true).assert_verified();
    assert_eq!(http.log_size(), size);
}
