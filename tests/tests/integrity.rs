//! Integrity of what the server stores, end to end: a leaf changed in the database (raw,
//! or zstd-compressed) is never served, only a fixed integrity error, counted in `/metrics`
//! and reported by `/healthz`; `tokenledger-server fsck` names each damaged leaf and stored
//! hash; the server refuses to start on a stored tree that disagrees with its newest
//! checkpoint. The damage is done on both backends; fsck, and so the tests that run it, are
//! SQLite's only.

use serde_json::Value;
use tokenledger_e2e::both_backends;
use tokenledger_e2e::{Http, Reply, TestServer, batch, db, report, run_refused_server};

/// Leaves after which the test servers compress: low, so a test reaches compressed leaves.
const COMPRESS_AFTER: u64 = 200;
/// The fixed answer to a read that met an integrity error.
const INTEGRITY_MESSAGE: &str = "the stored log failed an integrity check; nothing was served";

/// A server on a fresh data dir that compresses after [`COMPRESS_AFTER`] leaves, its issuer
/// credential, and the jtis of the entries it holds (jti `i-<n>` at index n), filled until
/// some leaves are stored compressed.
fn compressed_log(dir: &std::path::Path) -> (TestServer, String) {
    let server = TestServer::start_with_config(
        &dir.join("data"),
        &format!("[log]\ncompress_after = {COMPRESS_AFTER}\n"),
    );
    let issuer = server.create_issuer("atlas");
    let mut rounds = 0;
    while db::compression_counts(&server.db()).0 < 20 {
        rounds += 1;
        assert!(rounds < 100, "no entry was ever stored compressed");
        let next = server.log_size();
        let jtis: Vec<String> = (next..next + 100).map(|n| format!("i-{n}")).collect();
        let reply = server.http().append(&issuer, &batch(&jtis, "atlas"));
        assert_eq!(reply.status, 201, "{reply:?}");
    }
    (server, issuer)
}

/// [`compressed_log`] in a temporary directory, stopped: its server and its size.
fn stopped_compressed_log() -> (tempfile::TempDir, TestServer, u64) {
    let tmp = tempfile::tempdir().unwrap();
    let (mut server, _issuer) = compressed_log(tmp.path());
    let size = server.log_size();
    server.stop();
    (tmp, server, size)
}

/// The leaf of entry `index` with one byte (in its middle) changed.
fn with_flipped_byte(leaf: &[u8]) -> Vec<u8> {
    let mut changed = leaf.to_vec();
    let middle = changed.len() / 2;
    changed[middle] ^= 0x01;
    changed
}

/// A compressed leaf with one byte of its zstd frame's content checksum (the frame's last 4
/// bytes) changed: it never decodes, where a byte in the middle of the frame may fall on
/// bits the decoder ignores and leave the leaf as it was (seen once in a full run).
fn with_flipped_checksum(frame: &[u8]) -> Vec<u8> {
    let mut changed = frame.to_vec();
    *changed.last_mut().expect("a frame is not empty") ^= 0x01;
    changed
}

/// The value of an unlabelled metric in `GET /metrics`.
fn metric(http: &Http, name: &str) -> u64 {
    let reply = http.get("/metrics", None);
    assert_eq!(reply.status, 200, "{reply:?}");
    reply
        .body
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no metric {name}: {}", reply.body))
        .parse()
        .unwrap()
}

/// Asserts the fixed integrity error, and that nothing of any entry is in the answer.
fn assert_integrity_error(reply: &Reply) {
    reply.assert_error(500, "integrity_error");
    assert_eq!(reply.json()["error"]["message"], INTEGRITY_MESSAGE);
    assert!(!reply.body.contains("i-"), "no entry bytes: {reply:?}");
}

fn entries(http: &Http, admin: &str, start: u64, end: u64) -> Reply {
    http.get(
        &format!("/v1/log/entries?start={start}&end={end}"),
        Some(admin),
    )
}

/// `GET /healthz` as JSON, whatever its status.
fn health(http: &Http) -> (u16, Value) {
    let reply = http.get("/healthz", None);
    (reply.status, reply.json())
}

both_backends!(a_changed_leaf_is_never_served_only_a_counted_integrity_error);
fn a_changed_leaf_is_never_served_only_a_counted_integrity_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut server, issuer) = compressed_log(tmp.path());
    let admin = server.admin_secret().to_string();
    let officer = server.create_credential("vo-security", Some("atlas"));
    let size = server.log_size();
    let raw_victim = 10u64;
    let compressed_victim = size - 1;
    let raw = db::leaf(&server.db(), raw_victim);
    let compressed = db::leaf(&server.db(), compressed_victim);
    assert!(raw.starts_with(b"{"), "entry {raw_victim} is stored raw");
    assert!(
        !compressed.starts_with(b"{"),
        "the last entry is stored compressed"
    );

    let damaged = [
        (raw_victim, &raw, with_flipped_byte(&raw)),
        (
            compressed_victim,
            &compressed,
            with_flipped_checksum(&compressed),
        ),
    ];
    for (victim, stored, changed) in damaged {
        server.stop();
        assert_eq!(db::set_leaf(&server.db(), victim, &changed), 1);
        server.start_again();
        let http = server.http();
        assert_eq!(metric(&http, "tokenledger_integrity_errors_total"), 0);
        assert_eq!(
            health(&http),
            (
                200,
                serde_json::json!({"status": "ok", "log_size": size, "role": "writer"})
            )
        );

        // Every read of the entry: a page of entries, a resolution of its token, and a
        // repeated report of it (whose receipt is built from the logged entry).
        let page_start = victim.saturating_sub(5);
        assert_integrity_error(&entries(&http, &admin, page_start, victim + 1));
        assert_integrity_error(&http.get(
            &format!("/v1/vos/atlas/tokens/i-{victim}?reason=INC-7"),
            Some(&officer),
        ));
        assert_integrity_error(&http.append(&issuer, &report(&format!("i-{victim}"), "atlas")));
        assert_eq!(metric(&http, "tokenledger_integrity_errors_total"), 3);
        assert!(metric(&http, "tokenledger_storage_errors_total") >= 3);
        let (status, body) = health(&http);
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["status"], "degraded");
        assert_eq!(body["role"], "writer");
        assert!(
            body["storage_errors_last_minute"].as_u64() >= Some(3),
            "{body}"
        );

        // Entries that were not changed are served as before.
        let reply = entries(&http, &admin, victim - 3, victim);
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.json()["entries"].as_array().unwrap().len(), 3);

        // The log says which entry, never what it holds.
        let log = std::fs::read_to_string(server.stderr_path()).unwrap();
        let alarms: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("INTEGRITY ERROR"))
            .collect();
        assert!(
            alarms
                .iter()
                .any(|l| l.contains(&format!("index={victim}"))),
            "{}",
            server.log_tail()
        );
        assert!(alarms.iter().all(|l| !l.contains("i-")), "{alarms:#?}");

        server.stop();
        assert_eq!(db::set_leaf(&server.db(), victim, stored), 1);
        server.start_again();
        let reply = entries(&server.http(), &admin, victim, victim + 1);
        assert_eq!(reply.status, 200, "restored: {reply:?}");
    }
    assert_eq!(server.log_size(), size, "nothing was appended");
}

/// Runs `tokenledger-server fsck` on the server's data directory: (exit code, stdout lines).
fn fsck(server: &TestServer) -> (i32, Vec<String>) {
    let out = server.admin_command(&["fsck"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let code = out.status.code().expect("fsck was killed by a signal");
    assert!(
        code != 2,
        "fsck could not check: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (code, stdout.lines().map(str::to_string).collect())
}

/// Asserts one of `lines` starts with `start` and contains `part`.
fn names(lines: &[String], start: &str, part: &str) {
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(start) && l.contains(part)),
        "no line `{start}...{part}...` in {lines:#?}"
    );
}

#[test]
fn fsck_passes_a_clean_store_beside_a_running_server_and_a_stopped_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut server, _issuer) = compressed_log(tmp.path());
    let officer = server.create_credential("vo-security", Some("atlas"));
    let resolved = server
        .http()
        .get("/v1/vos/atlas/tokens/i-3?reason=INC-8", Some(&officer));
    assert_eq!(resolved.status, 200, "{resolved:?}");
    let size = server.log_size();
    let (compressed, _) = db::compression_counts(&server.db());

    let (code, lines) = fsck(&server);
    assert_eq!(code, 0, "{lines:#?}");
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let expected = format!(
        "fsck: clean: {size} entries ({compressed} stored compressed), {} stored hashes, {} \
         issuances, 1 resolutions, 0 suspensions, 0 sightings, 0 suspension requests; the newest \
         checkpoint (size",
        2 * size - u64::from(size.count_ones()),
        size - 1
    );
    assert!(lines[0].starts_with(&expected), "{}\n{expected}", lines[0]);

    server.stop();
    let wal = server.dir().join("tokenledger.db-wal");
    let stored = || {
        let wal = std::fs::read(&wal).unwrap_or_default();
        (std::fs::read(server.db_path()).unwrap(), wal)
    };
    let before = stored();
    let (code, lines) = fsck(&server);
    assert_eq!(code, 0, "{lines:#?}");
    assert!(lines[0].starts_with(&expected), "{lines:#?}");
    // Read-only: the database and its WAL are as they were. SQLite may leave an empty WAL
    // and its shared-memory index beside the database, which the next start uses.
    assert!(stored() == before, "fsck changed the database or its WAL");
    server.start_again();
    assert_eq!(server.log_size(), size);
}

#[test]
fn fsck_names_each_damaged_leaf_and_stored_hash() {
    let (_tmp, server, size) = stopped_compressed_log();
    let store = server.db();
    let flip = |bytes: Vec<u8>| with_flipped_byte(&bytes);

    let (raw_victim, compressed_victim) = (10u64, size - 1);
    db::set_leaf(&store, raw_victim, &flip(db::leaf(&store, raw_victim)));
    db::set_leaf(
        &store,
        compressed_victim,
        &with_flipped_checksum(&db::leaf(&store, compressed_victim)),
    );
    // A stored leaf hash and a stored interior hash (subtree 50 of level 1: leaves 100, 101).
    let leaf_hash_index = merkle_index(0, 77);
    db::set_stored_hash(
        &store,
        leaf_hash_index,
        &flip(db::stored_hash(&store, leaf_hash_index)),
    );
    let interior = merkle_index(1, 50);
    db::set_stored_hash(&store, interior, &flip(db::stored_hash(&store, interior)));
    // The copy of an upper hash (subtree 0 of level 6) that proofs read.
    let upper = merkle_index(6, 0);
    let copy = db::upper_hash(&store, upper).expect("an upper hash is copied");
    db::set_upper_hash(&store, upper, &flip(copy));

    let (code, lines) = fsck(&server);
    assert_eq!(code, 1, "{lines:#?}");
    names(
        &lines,
        "entry 10: ",
        "the leaf and its stored leaf hash disagree",
    );
    names(
        &lines,
        &format!("entry {compressed_victim}: "),
        "leaf stored with dictionary",
    );
    // The damaged leaf hash disagrees with its leaf and with its parent (leaves 76, 77).
    names(
        &lines,
        "entry 77: ",
        &format!("(stored hash {leaf_hash_index}, level 0)"),
    );
    names(
        &lines,
        &format!("stored hash {} (level 1, subtree 38) ", merkle_index(1, 38)),
        &format!(
            "children, stored hashes {} and {leaf_hash_index}",
            merkle_index(0, 76)
        ),
    );
    // The damaged interior hash disagrees with its children and with its parent.
    names(
        &lines,
        &format!("stored hash {interior} (level 1, subtree 50) "),
        "children",
    );
    names(
        &lines,
        &format!("stored hash {} (level 2, subtree 25) ", merkle_index(2, 25)),
        &format!(
            "children, stored hashes {interior} and {}",
            merkle_index(1, 51)
        ),
    );
    names(&lines, &format!("upper_hashes row {upper} "), "differs");
    assert_eq!(
        lines.last().map(String::as_str),
        Some(format!("fsck: 7 problems in {}", server.dir().display()).as_str()),
        "{lines:#?}"
    );
}

// SQLite-only: it ends with fsck.
#[test]
fn start_up_refuses_a_stored_tree_that_disagrees_with_the_newest_checkpoint() {
    let (_tmp, server, size) = stopped_compressed_log();
    let store = server.db();
    // The largest complete subtree's hash: part of the root at every size since.
    let top = merkle_index(63 - size.leading_zeros(), 0);
    let forged: Vec<u8> = db::stored_hash(&store, top)
        .iter()
        .map(|b| b ^ 0x5a)
        .collect();
    assert_eq!(db::set_stored_hash(&store, top, &forged), 1);
    assert_eq!(db::set_upper_hash(&store, top, &forged), 1);

    let config = server.dir().join("e2e-config.toml");
    let out = run_refused_server(&[
        "--config",
        config.to_str().unwrap(),
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        server.dir().to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("the newest checkpoint (size {size}) has root"))
            && stderr.contains("Refusing to use this database"),
        "{stderr}"
    );
    let (code, lines) = fsck(&server);
    assert_eq!(code, 1, "{lines:#?}");
    names(
        &lines,
        &format!("the newest checkpoint (size {size}) has root"),
        "",
    );
}

/// Stored index of the hash of subtree `n` of `level`.
fn merkle_index(level: u32, n: u64) -> u64 {
    tokenledger_core::merkle::stored_hash_index(level, n)
}

#[test]
fn fsck_names_missing_and_stray_rows() {
    let (_tmp, server, size) = stopped_compressed_log();
    let path = server.db_path();
    let leaf_50 = merkle_index(0, 50);
    let beyond = 2 * size - u64::from(size.count_ones()) + 3;
    let upper = merkle_index(6, 1);
    for (sql, rows) in [
        ("DELETE FROM entries WHERE idx = 20".to_string(), 1),
        ("DELETE FROM issuances WHERE idx = 30".to_string(), 1),
        (
            "INSERT INTO resolutions (idx, vo) VALUES (40, 'atlas')".to_string(),
            1,
        ),
        (
            "INSERT INTO suspension_requests (id, idx, site, vo, person_id, pseudonym, \
             evidence, requested_by, requested_at, status) VALUES \
             ('sr-1', 41, 'CERN-PROD', 'atlas', 'pe-1', 'p1-x', 'seen', 'site', 1, 'pending')"
                .to_string(),
            1,
        ),
        (format!("DELETE FROM hashes WHERE idx = {leaf_50}"), 1),
        (
            format!("INSERT INTO hashes (idx, hash) VALUES ({beyond}, zeroblob(32))"),
            1,
        ),
        (format!("DELETE FROM upper_hashes WHERE idx = {upper}"), 1),
    ] {
        assert_eq!(db::execute(&path, &sql), rows, "{sql}");
    }

    let (code, lines) = fsck(&server);
    assert_eq!(code, 1, "{lines:#?}");
    let expected = [
        format!(
            "entries: {} rows for indexes 0 to {size} (exclusive)",
            size - 1
        ),
        format!("hashes: 1 rows at stored indexes {} and above", beyond - 3),
        "entry 20 is missing".to_string(),
        "entry 30 (issuance) has no row in issuances".to_string(),
        "resolutions has a row for entry 40, which is of type issuance, not resolution or \
         erasure"
            .into(),
        "suspension_requests has a row for entry 41, which is of type issuance, not \
         suspension_request"
            .into(),
        format!("entry 50: its stored leaf hash is missing (stored hash {leaf_50}, level 0)"),
        format!("stored hash {leaf_50} (level 0, subtree 50) is missing"),
        format!("upper_hashes lacks its copy of stored hash {upper}"),
    ];
    for line in &expected {
        names(&lines, line, "");
    }
    assert_eq!(
        lines.last().map(String::as_str),
        Some(
            format!(
                "fsck: {} problems in {}",
                expected.len(),
                server.dir().display()
            )
            .as_str()
        ),
        "{lines:#?}"
    );
}
