//! One ledger's blocklist, ready for a decision: the cache if it still describes the
//! blocklist file (same inode stamp, or same SHA-256), else the file parsed, its signature
//! verified with the pinned log key, its site, sequence and expiry checked, and the cache
//! rebuilt. Whatever cannot be trusted is "stale", and the ledger's `on_stale` decides.

use std::fs::File;
use std::io::Read;

use sha2::{Digest, Sha256};
use tokenledger_core::blocklist::{BlocklistError, SignedBlocklist};

use super::cache::{self, Cache, CacheKey, FileStamp};
use super::config::Ledger;
use crate::atomic;

/// Largest blocklist file read (100 k entries are about 25 MB).
const MAX_BLOCKLIST_BYTES: u64 = 256 << 20;
/// The cache names pseudonyms and keyed tags, like the blocklist: readable by local daemons.
const CACHE_MODE: u32 = 0o644;

/// Why a blocklist cannot be used (shown in logs; never secret).
pub type Stale = String;

/// Opens `ledger`'s blocklist at `now`. `trust_cache = false` ignores what the cache holds
/// but its (authenticated) sequence, after a record failed its MAC. Problems that do not
/// change the decision (a cache that cannot be written) go to `warn`.
pub fn open(
    ledger: &Ledger,
    now: i64,
    trust_cache: bool,
    warn: &mut dyn FnMut(String),
) -> Result<Cache, Stale> {
    let path = &ledger.blocklist;
    let meta = std::fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "the blocklist {} is missing (has `tokenledger blocklist pull` run?)",
                path.display()
            )
        } else {
            format!("the blocklist {} is unreadable: {e}", path.display())
        }
    })?;
    let stamp = FileStamp::of(&meta);
    let key = CacheKey::new(&ledger.site_key);
    let cached = File::open(&ledger.cache)
        .ok()
        .and_then(|file| Cache::open_file(key.clone(), file).ok())
        .filter(|c| c.header.site == ledger.site && c.header.log_key == ledger.log_key);
    if trust_cache
        && let Some(cache) = &cached
        && cache.header.file == stamp
    {
        return fresh(cached.expect("checked"), now);
    }

    let bytes = read_bounded(path)?;
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    if trust_cache
        && let Some(cache) = &cached
        && cache.digest() == digest
    {
        // The same bytes under a new stamp (copied back, touched): only the header changes.
        if let Ok(restamped) = cache::restamp(cache, stamp) {
            write_cache(ledger, &restamped, warn);
        }
        return fresh(cached.expect("checked"), now);
    }

    let signed: SignedBlocklist = serde_json::from_slice(&bytes).map_err(|e| {
        format!(
            "the blocklist {} is not a signed blocklist: {e}",
            path.display()
        )
    })?;
    let document = signed
        .verify(&ledger.verifier)
        .map_err(|e| format!("the blocklist {} is refused: {e}", path.display()))?;
    let have = cached.as_ref().map(|c| c.header.sequence);
    document
        .check_fresh(&ledger.site, have, now)
        .map_err(|e| format!("the blocklist {} is refused: {e}", path.display()))?;
    let built = cache::build(&key, document, &ledger.log_key, digest, stamp);
    write_cache(ledger, &built, warn);
    Cache::from_bytes(key, built).map_err(|e| format!("building the cache: {e}"))
}

/// The cache, unless its document has expired.
fn fresh(cache: Cache, now: i64) -> Result<Cache, Stale> {
    if now > cache.header.expires_at {
        return Err(format!(
            "the blocklist of site {} is refused: {}",
            cache.header.site,
            BlocklistError::Expired {
                expires_at: cache.header.expires_at,
                now
            }
        ));
    }
    Ok(cache)
}

fn read_bounded(path: &std::path::Path) -> Result<Vec<u8>, Stale> {
    let unreadable =
        |e: std::io::Error| format!("the blocklist {} is unreadable: {e}", path.display());
    let mut bytes = Vec::new();
    File::open(path)
        .map_err(unreadable)?
        .take(MAX_BLOCKLIST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_BLOCKLIST_BYTES {
        return Err(format!(
            "the blocklist {} is larger than {} MiB",
            path.display(),
            MAX_BLOCKLIST_BYTES >> 20
        ));
    }
    Ok(bytes)
}

/// Best effort: without a cache every decision verifies the whole blocklist, which is slower
/// but as correct.
fn write_cache(ledger: &Ledger, bytes: &[u8], warn: &mut dyn FnMut(String)) {
    if let Err(e) = atomic::write(&ledger.cache, bytes, CACHE_MODE) {
        warn(format!(
            "cannot write the cache {} ({e}); every decision verifies the whole blocklist until \
             it can (make its directory writable by this user, or set `cache` in check.toml)",
            ledger.cache.display()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use tokenledger_core::blocklist::{Blocklist, BlocklistEntry, Scope, SignedDocument};
    use tokenledger_core::note::NoteSigner;
    use tokenledger_core::pseudonym::{LedgerSecret, SiteKey};

    use crate::check::config::OnStale;
    use crate::check::identity::Identity;

    const ISS: &str = "https://iss.example/";

    fn site_key() -> SiteKey {
        LedgerSecret::from_bytes([5; 32]).site_key("CERN-PROD")
    }

    fn signer() -> NoteSigner {
        NoteSigner::from_seed("ledger.example/log", [1; 32]).unwrap()
    }

    fn ledger(dir: &Path) -> Ledger {
        let verifier = signer().verifier();
        Ledger {
            site: "CERN-PROD".into(),
            blocklist: dir.join("bl.json"),
            cache: dir.join("bl.json.cache"),
            log_key: verifier.to_string(),
            verifier,
            site_key: site_key(),
            on_stale: OnStale::Deny,
        }
    }

    fn signed(sequence: u64, expires_at: i64, subs: &[&str]) -> String {
        let entries = subs
            .iter()
            .map(|sub| BlocklistEntry {
                vo: "atlas".into(),
                pseudonym: format!("p1-{sub}"),
                tags: vec![site_key().tag(ISS, sub)],
                jti_hashes: vec![],
                scope: Scope::All,
                not_after: None,
                suspension_id: format!("su-{sub}"),
                reason_code: "misuse".into(),
            })
            .collect();
        let doc = Blocklist {
            site: "CERN-PROD".into(),
            sequence,
            issued_at: 0,
            expires_at,
            entries,
        };
        serde_json::to_string(&doc.sign(&signer())).unwrap()
    }

    fn suspended(cache: &Cache, sub: &str) -> bool {
        let who = Identity {
            iss: ISS.into(),
            sub: Some(sub.into()),
            jti: None,
        };
        cache
            .decide(&site_key(), &who, Scope::Compute, 100)
            .unwrap()
            .is_some()
    }

    fn no_warnings() -> impl FnMut(String) {
        |w| panic!("unexpected warning: {w}")
    }

    #[test]
    fn the_cache_is_built_once_and_used_while_the_file_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let l = ledger(dir.path());
        std::fs::write(&l.blocklist, signed(3, 1_000, &["alice"])).unwrap();
        let cache = open(&l, 100, true, &mut no_warnings()).unwrap();
        assert!(suspended(&cache, "alice") && !suspended(&cache, "bob"));
        let built = std::fs::read(&l.cache).unwrap();

        // The file unchanged: the cache is used as it is (not rewritten).
        let before = std::fs::metadata(&l.cache).unwrap().modified().unwrap();
        let again = open(&l, 100, true, &mut no_warnings()).unwrap();
        assert!(suspended(&again, "alice"));
        assert_eq!(
            std::fs::metadata(&l.cache).unwrap().modified().unwrap(),
            before
        );
        assert_eq!(std::fs::read(&l.cache).unwrap(), built);

        // The same bytes copied in (new inode): found by digest and restamped.
        let copy = dir.path().join("copy");
        std::fs::copy(&l.blocklist, &copy).unwrap();
        std::fs::rename(&copy, &l.blocklist).unwrap();
        assert!(suspended(
            &open(&l, 100, true, &mut no_warnings()).unwrap(),
            "alice"
        ));
        assert_ne!(
            std::fs::read(&l.cache).unwrap(),
            built,
            "new stamp in the header"
        );

        // A new document replaces the cache.
        std::fs::write(&l.blocklist, signed(4, 1_000, &["bob"])).unwrap();
        let newer = open(&l, 100, true, &mut no_warnings()).unwrap();
        assert!(suspended(&newer, "bob") && !suspended(&newer, "alice"));
        assert_eq!(newer.header.sequence, 4);
    }

    #[test]
    fn untrusted_blocklists_are_stale() {
        let dir = tempfile::tempdir().unwrap();
        let l = ledger(dir.path());
        let e = open(&l, 100, true, &mut no_warnings()).err().unwrap();
        assert!(e.contains("is missing"), "{e}");

        std::fs::write(&l.blocklist, signed(5, 1_000, &["alice"])).unwrap();
        assert!(open(&l, 100, true, &mut no_warnings()).is_ok());
        // Expired, even with a valid cache.
        let e = open(&l, 1_001, true, &mut no_warnings()).err().unwrap();
        assert!(e.contains("expired at 1000"), "{e}");

        // Tampered: the signature fails, whatever the cache says.
        let mut value: serde_json::Value =
            serde_json::from_str(&signed(6, 1_000, &["alice"])).unwrap();
        value["document"]["entries"] = serde_json::json!([]);
        std::fs::write(&l.blocklist, value.to_string()).unwrap();
        let e = open(&l, 100, true, &mut no_warnings()).err().unwrap();
        assert!(e.contains("signature does not verify"), "{e}");

        // Older than the cached sequence: a rollback.
        std::fs::write(&l.blocklist, signed(2, 1_000, &[])).unwrap();
        let e = open(&l, 100, true, &mut no_warnings()).err().unwrap();
        assert!(e.contains("rollback"), "{e}");

        std::fs::write(&l.blocklist, "{").unwrap();
        let e = open(&l, 100, true, &mut no_warnings()).err().unwrap();
        assert!(e.contains("is not a signed blocklist"), "{e}");

        // Another log key pinned: the cache of the old one is not used.
        let mut other = ledger(dir.path());
        other.verifier = NoteSigner::from_seed("ledger.example/log", [2; 32])
            .unwrap()
            .verifier();
        other.log_key = other.verifier.to_string();
        std::fs::write(&l.blocklist, signed(7, 1_000, &["alice"])).unwrap();
        let e = open(&other, 100, true, &mut no_warnings()).err().unwrap();
        assert!(e.contains("not by the pinned log key"), "{e}");
    }

    #[test]
    fn a_forged_cache_is_ignored_and_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let l = ledger(dir.path());
        std::fs::write(&l.blocklist, signed(3, 1_000, &["alice"])).unwrap();
        open(&l, 100, true, &mut no_warnings()).unwrap();
        // A cache made with another site key (a forger's) claiming nobody is suspended.
        let forger = CacheKey::new(&LedgerSecret::from_bytes([6; 32]).site_key("CERN-PROD"));
        let empty: SignedBlocklist = serde_json::from_str(&signed(3, 1_000, &[])).unwrap();
        let stamp = FileStamp::of(&std::fs::metadata(&l.blocklist).unwrap());
        std::fs::write(
            &l.cache,
            cache::build(&forger, &empty.document, &l.log_key, [0; 32], stamp),
        )
        .unwrap();
        assert!(suspended(
            &open(&l, 100, true, &mut no_warnings()).unwrap(),
            "alice"
        ));
        // Untrusted cache: rebuilt from the file.
        assert!(suspended(
            &open(&l, 100, false, &mut no_warnings()).unwrap(),
            "alice"
        ));
    }

    #[test]
    fn an_unwritable_cache_is_a_warning_not_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = ledger(dir.path());
        l.cache = dir.path().join("no-such-dir/bl.cache");
        std::fs::write(&l.blocklist, signed(3, 1_000, &["alice"])).unwrap();
        let mut warnings = Vec::new();
        let cache = open(&l, 100, true, &mut |w| warnings.push(w)).unwrap();
        assert!(suspended(&cache, "alice"));
        assert!(
            warnings[0].contains("cannot write the cache"),
            "{warnings:?}"
        );
    }
}
