//! Builds a signed blocklist of N suspended persons (default 100,000) with a check
//! configuration around it, for timing `tokenledger check` by hand, and measures the
//! in-process decision rate of `BlocklistIndex::decide` on it.
//!
//! Run with: `cargo run --release -p tokenledger --example check_bench -- DIR [N]`, then e.g.
//! `hyperfine -N --warmup 20 --runs 200 --input DIR/allowed.json \
//!  'target/release/tokenledger check --htcondor --config DIR/check.toml'`.
//! DIR gets `blocklist.json`, `site.key` (0600), `check.toml`, and the decoded JWT payloads
//! `allowed.json` and `suspended.json` (stdin of `check --htcondor`).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokenledger_core::blocklist::{
    Blocklist, BlocklistEntry, BlocklistIndex, Decision, Scope, SignedBlocklist, SignedDocument,
};
use tokenledger_core::note::NoteSigner;
use tokenledger_core::pseudonym::LedgerSecret;

const ISS: &str = "https://idp.example/realms/atlas/";
const SITE: &str = "CERN-PROD";

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("usage: check_bench DIR [N]"));
    let n: usize = args
        .next()
        .map_or(100_000, |n| n.parse().expect("N is a number"));
    std::fs::create_dir_all(&dir).expect("creating DIR");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;

    let secret = LedgerSecret::from_bytes([42; 32]);
    let site_key = secret.site_key(SITE);
    let signer = NoteSigner::from_seed("ledger.example/log", [7; 32]).unwrap();
    let entries: Vec<BlocklistEntry> = (0..n)
        .map(|i| BlocklistEntry {
            vo: "atlas".into(),
            pseudonym: secret.pseudonym(SITE, "atlas", &format!("pe-{i}")),
            tags: vec![site_key.tag(ISS, &format!("user-{i}"))],
            jti_hashes: if i % 10 == 0 {
                vec![site_key.jti_hash(ISS, &format!("jti-{i}"))]
            } else {
                vec![]
            },
            scope: Scope::Compute,
            not_after: None,
            suspension_id: format!("su-{i:08}"),
            reason_code: "misuse".into(),
        })
        .collect();
    let blocklist = Blocklist {
        site: SITE.into(),
        sequence: 1,
        issued_at: now,
        expires_at: now + 86_400,
        entries,
    };
    let signed = blocklist.clone().sign(&signer);
    let json = serde_json::to_vec(&signed).unwrap();
    std::fs::write(dir.join("blocklist.json"), &json).unwrap();
    let key_path = dir.join("site.key");
    std::fs::write(&key_path, STANDARD.encode(site_key.as_bytes())).unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(
        dir.join("check.toml"),
        format!(
            "on_stale = \"deny\"\nscope = \"compute\"\nissuers = [\"{ISS}\"]\n\n[[ledger]]\nsite = \"{SITE}\"\n\
             blocklist = \"blocklist.json\"\nlog_key = \"{}\"\nsite_key_file = \"site.key\"\n",
            signer.verifier()
        ),
    )
    .unwrap();
    for (name, sub) in [("allowed.json", "nobody"), ("suspended.json", "user-4242")] {
        let payload = serde_json::json!({"iss": ISS, "sub": sub, "jti": format!("j-{name}"), "exp": now + 3600});
        std::fs::write(dir.join(name), payload.to_string()).unwrap();
    }
    println!(
        "wrote {} entries, {} bytes, to {}",
        n,
        json.len(),
        dir.display()
    );

    let started = Instant::now();
    let parsed: SignedBlocklist = serde_json::from_slice(&json).unwrap();
    parsed.verify(&signer.verifier()).unwrap();
    println!("parse + verify of the document: {:?}", started.elapsed());
    let started = Instant::now();
    let index = BlocklistIndex::new(parsed.document);
    println!("BlocklistIndex::new: {:?}", started.elapsed());

    let rounds = 1_000_000;
    let subs: Vec<String> = (0..1024).map(|i| format!("user-{}", i * 97)).collect();
    let started = Instant::now();
    let mut suspended = 0usize;
    for i in 0..rounds {
        // Half suspended (user-k, k < n), half not.
        let sub = if i % 2 == 0 {
            subs[i % 1024].as_str()
        } else {
            "nobody"
        };
        if let Decision::Suspended(_) =
            index.decide(&site_key, ISS, sub, Some("some-jti"), Scope::Compute, now)
        {
            suspended += 1;
        }
    }
    let elapsed = started.elapsed();
    println!(
        "in-process BlocklistIndex::decide (tag + jti hash, one thread): {rounds} decisions in {elapsed:?} = {:.0}/s ({suspended} suspended)",
        rounds as f64 / elapsed.as_secs_f64()
    );
    let started = Instant::now();
    for i in 0..rounds {
        let sub = if i % 2 == 0 {
            subs[i % 1024].as_str()
        } else {
            "nobody"
        };
        std::hint::black_box(index.decide(&site_key, ISS, sub, None, Scope::Compute, now));
    }
    let elapsed = started.elapsed();
    println!(
        "in-process BlocklistIndex::decide (tag only, one thread): {:.0}/s",
        rounds as f64 / elapsed.as_secs_f64()
    );
}
