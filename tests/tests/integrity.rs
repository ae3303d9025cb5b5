//! Integrity of what the server stores, end to end: a leaf changed in the SQLite file (raw,
//! or zstd-compressed) is never served, only a fixed integrity error, counted in `/metrics`
//! and reported by `/healthz`; `tokenledger-server fsck` names each damaged leaf and stored
//! hash; the server refuses to start on a stored tree that disagrees with its newest
//! checkpoint.

use serde_json::Value;
use tokenledger_e2e::{Http, Reply, TestServer, batch, db, report};

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
    while db::compression_counts(&server.db_path()).0 < 20 {
        rounds += 1;
        assert!(rounds < 100, "no entry was ever stored compressed");
        let next = server.log_size();
        let jtis: Vec<String> = (next..next + 100).map(|n| format!("i-{n}")).collect();
        let reply = server.http().append(&issuer, &batch(&jtis, "atlas"));
        assert_eq!(reply.status, 201, "{reply:?}");
    }
    (server, issuer)
}

/// The leaf of entry `index` with one byte (in its middle) changed.
fn with_flipped_byte(leaf: &[u8]) -> Vec<u8> {
    let mut changed = leaf.to_vec();
    let middle = changed.len() / 2;
    changed[middle] ^= 0x01;
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

#[test]
fn a_changed_leaf_is_never_served_only_a_counted_integrity_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut server, issuer) = compressed_log(tmp.path());
    let admin = server.admin_secret().to_string();
    let officer = server.create_credential("vo-security", Some("atlas"));
    let size = server.log_size();
    let raw_victim = 10u64;
    let compressed_victim = size - 1;
    let raw = db::leaf(&server.db_path(), raw_victim);
    let compressed = db::leaf(&server.db_path(), compressed_victim);
    assert!(raw.starts_with(b"{"), "entry {raw_victim} is stored raw");
    assert!(
        !compressed.starts_with(b"{"),
        "the last entry is stored compressed"
    );

    for (victim, stored) in [(raw_victim, &raw), (compressed_victim, &compressed)] {
        server.stop();
        assert_eq!(
            db::set_leaf(&server.db_path(), victim, &with_flipped_byte(stored)),
            1
        );
        server.start_again();
        let http = server.http();
        assert_eq!(metric(&http, "tokenledger_integrity_errors_total"), 0);
        assert_eq!(
            health(&http),
            (200, serde_json::json!({"status": "ok", "log_size": size}))
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
        assert_eq!(db::set_leaf(&server.db_path(), victim, stored), 1);
        server.start_again();
        let reply = entries(&server.http(), &admin, victim, victim + 1);
        assert_eq!(reply.status, 200, "restored: {reply:?}");
    }
    assert_eq!(server.log_size(), size, "nothing was appended");
}
