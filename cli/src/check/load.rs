//! One ledger's blocklist, ready for a decision: the cache if it still describes the
//! blocklist file (same inode stamp, or same SHA-256), else the file parsed, its signature
//! verified with the pinned log key, its site, sequence and expiry checked, and the cache
//! rebuilt. Either way the sequence must not be below the high-water mark (which then
//! follows it up). Whatever cannot be trusted is "stale", and the ledger's `on_stale`
//! decides. Only regular files are read (`regular_file`): anything else at the blocklist's
//! or the cache's path is stale.

use std::io::ErrorKind;

use sha2::{Digest, Sha256};
use tokenledger_core::blocklist::{BlocklistError, SignedBlocklist};

use super::cache::{self, Cache, CacheKey, FileStamp};
use super::config::{Ledger, LedgerKeys};
use super::high_water::HighWater;
use crate::atomic;
use crate::regular_file;

/// Largest blocklist file read (100 k entries are about 25 MB).
const MAX_BLOCKLIST_BYTES: u64 = 256 << 20;
/// The cache names pseudonyms and keyed tags, like the blocklist: readable by local daemons.
const CACHE_MODE: u32 = 0o644;

/// Why a blocklist cannot be used (shown in logs; never secret).
pub type Stale = String;

/// Opens `ledger`'s blocklist at `now`. `trust_cache = false` ignores what the cache holds
/// but its (authenticated) sequence, after a record failed its MAC. Problems that do not
/// change the decision (a cache or mark that cannot be written) go to `warn`.
pub fn open(
    ledger: &Ledger,
    keys: &LedgerKeys,
    now: i64,
    trust_cache: bool,
    warn: &mut dyn FnMut(String),
) -> Result<Cache, Stale> {
    let path = &ledger.blocklist;
    let unreadable = |e: std::io::Error| {
        if e.kind() == ErrorKind::NotFound {
            format!(
                "the blocklist {} is missing (has `tokenledger blocklist pull` run?)",
                path.display()
            )
        } else {
            format!("the blocklist {} is unreadable: {e}", path.display())
        }
    };
    let mark = HighWater::new(
        &ledger.high_water,
        &keys.site_key,
        &ledger.site,
        &keys.log_key,
    );
    let high_water = mark.read()?;
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    regular_file::require_regular(&meta).map_err(unreadable)?;
    let key = CacheKey::new(&keys.site_key);
    let cached = match regular_file::open_regular(&ledger.cache) {
        Ok((file, _)) => Cache::open_file(key.clone(), file).ok(),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        // A FIFO, device, socket or directory planted at the cache's path: never read,
        // stale like the same planted at the blocklist's.
        Err(e) if e.kind() == ErrorKind::InvalidInput => {
            return Err(format!(
                "the cache {} is unreadable: {e}",
                ledger.cache.display()
            ));
        }
        Err(e) => {
            warn(format!(
                "the cache {} is unusable ({e}); it is rebuilt",
                ledger.cache.display()
            ));
            None
        }
    }
    .filter(|c| c.header.site == ledger.site && c.header.log_key == keys.log_key);
    if trust_cache
        && let Some(cache) = cached.as_ref()
        && cache.header.file == FileStamp::of(&meta)
    {
        return accept(cached.expect("checked"), &mark, high_water, now, warn);
    }

    let (bytes, read) =
        regular_file::read_regular(path, MAX_BLOCKLIST_BYTES).map_err(unreadable)?;
    // The stamp of the file read, not of whatever the path named when it was stat'ed.
    let stamp = FileStamp::of(&read);
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    if trust_cache
        && let Some(cache) = cached.as_ref()
        && cache.digest() == digest
    {
        // The same bytes under a new stamp (copied back, touched): only the header changes.
        if let Ok(restamped) = cache::restamp(cache, stamp) {
            write_cache(ledger, &restamped, warn);
        }
        return accept(cached.expect("checked"), &mark, high_water, now, warn);
    }

    let signed: SignedBlocklist = serde_json::from_slice(&bytes).map_err(|e| {
        format!(
            "the blocklist {} is not a signed blocklist: {e}",
            path.display()
        )
    })?;
    let document = signed
        .verify(&keys.verifier)
        .map_err(|e| format!("the blocklist {} is refused: {e}", path.display()))?;
    let have = cached.as_ref().map(|c| c.header.sequence).max(high_water);
    document
        .check_fresh(&ledger.site, have, now)
        .map_err(|e| format!("the blocklist {} is refused: {e}", path.display()))?;
    let built = cache::build(&key, document, &keys.log_key, digest, stamp);
    write_cache(ledger, &built, warn);
    let cache = Cache::from_bytes(key, built).map_err(|e| format!("building the cache: {e}"))?;
    accept(cache, &mark, high_water, now, warn)
}

/// The cache, unless its document has expired or is older than the high-water mark; the
/// mark is raised to its sequence (best effort, like the cache).
fn accept(
    cache: Cache,
    mark: &HighWater,
    high_water: Option<u64>,
    now: i64,
    warn: &mut dyn FnMut(String),
) -> Result<Cache, Stale> {
    let header = &cache.header;
    let refused =
        |e: BlocklistError| format!("the blocklist of site {} is refused: {e}", header.site);
    if now > header.expires_at {
        return Err(refused(BlocklistError::Expired {
            expires_at: header.expires_at,
            now,
        }));
    }
    match high_water {
        Some(have) if header.sequence < have => {
            return Err(refused(BlocklistError::Rollback {
                have,
                got: header.sequence,
            }));
        }
        Some(have) if header.sequence == have => {}
        _ => {
            if let Err(e) = mark.raise(header.sequence) {
                warn(format!(
                    "cannot write the high-water mark {} ({e}); until it can, an older \
                     blocklist planted after the cache is deleted is not refused (make its \
                     directory writable by this user and by no one who can write the \
                     blocklist, or set `high_water` in check.toml)",
                    mark.path().display()
                ));
            }
        }
    }
    Ok(cache)
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
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;
    use std::time::{Duration, Instant};
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
            high_water: dir.join("keys/site.key.seq"),
            on_stale: OnStale::Deny,
            keys: Ok(LedgerKeys {
                log_key: verifier.to_string(),
                verifier,
                site_key: site_key(),
            }),
        }
    }

    /// `open` with the ledger's keys; the directory of its high-water mark made on first use.
    fn open(
        ledger: &Ledger,
        now: i64,
        trust_cache: bool,
        warn: &mut dyn FnMut(String),
    ) -> Result<Cache, Stale> {
        std::fs::create_dir_all(ledger.high_water.parent().unwrap()).unwrap();
        super::open(
            ledger,
            ledger.keys.as_ref().unwrap(),
            now,
            trust_cache,
            warn,
        )
    }

    fn signed(sequence: u64, expires_at: i64, subs: &[&str]) -> String {
        let entries = subs
            .iter()
            .map(|sub| BlocklistEntry {
                vo: "atlas".into(),
                pseudonym: Some(format!("p1-{sub}")),
                tags: vec![site_key().tag(ISS, sub)],
                jti_hashes: vec![],
                client_tags: vec![],
                issued_before: None,
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
            ..Identity::default()
        };
        cache
            .decide(&site_key(), &who, Scope::Compute, 100)
            .unwrap()
            .is_some()
    }

    fn no_warnings() -> impl FnMut(String) {
        |w| panic!("unexpected warning: {w}")
    }

    /// `open` at time 100, trusting the cache, expecting no warning.
    fn opened(l: &Ledger) -> Cache {
        open(l, 100, true, &mut no_warnings()).unwrap()
    }

    #[test]
    fn the_cache_is_built_once_and_used_while_the_file_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let l = ledger(dir.path());
        std::fs::write(&l.blocklist, signed(3, 1_000, &["alice"])).unwrap();
        let cache = opened(&l);
        assert!(suspended(&cache, "alice") && !suspended(&cache, "bob"));
        let built = std::fs::read(&l.cache).unwrap();

        assert_eq!(
            high_water(&l),
            Some(3),
            "the mark follows the first blocklist"
        );

        // The file unchanged: the cache is used as it is, and neither it nor the mark is
        // written again.
        let stamps = || {
            [&l.cache, &l.high_water].map(|f| {
                let meta = std::fs::metadata(f).unwrap();
                (meta.ino(), meta.modified().unwrap())
            })
        };
        let before = stamps();
        let again = opened(&l);
        assert!(suspended(&again, "alice"));
        assert_eq!(stamps(), before);
        assert_eq!(std::fs::read(&l.cache).unwrap(), built);

        // The same bytes copied in (new inode): found by digest and restamped.
        let copy = dir.path().join("copy");
        std::fs::copy(&l.blocklist, &copy).unwrap();
        std::fs::rename(&copy, &l.blocklist).unwrap();
        assert!(suspended(&opened(&l), "alice"));
        assert_ne!(
            std::fs::read(&l.cache).unwrap(),
            built,
            "new stamp in the header"
        );

        // A new document replaces the cache.
        std::fs::write(&l.blocklist, signed(4, 1_000, &["bob"])).unwrap();
        let newer = opened(&l);
        assert!(suspended(&newer, "bob") && !suspended(&newer, "alice"));
        assert_eq!(newer.header.sequence, 4);
        assert_eq!(high_water(&l), Some(4));
    }

    /// What the ledger's high-water mark holds.
    fn high_water(l: &Ledger) -> Option<u64> {
        let keys = l.keys.as_ref().unwrap();
        HighWater::new(&l.high_water, &keys.site_key, &l.site, &keys.log_key)
            .read()
            .unwrap()
    }

    /// `open`, which must return within 100 ms whatever is at the ledger's paths.
    fn open_quickly(l: &Ledger, warn: &mut dyn FnMut(String)) -> Result<Cache, Stale> {
        let started = Instant::now();
        let opened = open(l, 100, true, warn);
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "took {:?}",
            started.elapsed()
        );
        opened
    }

    #[test]
    fn a_fifo_or_device_at_the_blocklist_is_stale_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let l = ledger(dir.path());
        std::fs::write(&l.blocklist, signed(3, 1_000, &["alice"])).unwrap();
        opened(&l);

        std::fs::remove_file(&l.blocklist).unwrap();
        regular_file::mkfifo(&l.blocklist);
        let e = open_quickly(&l, &mut no_warnings()).err().unwrap();
        assert!(
            e.contains("bl.json is unreadable: a FIFO, not a regular file"),
            "{e}"
        );
        std::fs::remove_file(&l.blocklist).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &l.blocklist).unwrap();
        let e = open_quickly(&l, &mut no_warnings()).err().unwrap();
        assert!(e.contains("a character device, not a regular file"), "{e}");
    }

    #[test]
    fn a_fifo_at_the_cache_is_stale_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let l = ledger(dir.path());
        std::fs::write(&l.blocklist, signed(3, 1_000, &["alice"])).unwrap();
        regular_file::mkfifo(&l.cache);
        let e = open_quickly(&l, &mut no_warnings()).err().unwrap();
        assert!(
            e.contains("bl.json.cache is unreadable: a FIFO, not a regular file"),
            "{e}"
        );
        std::fs::remove_file(&l.cache).unwrap();
        assert!(
            suspended(&opened(&l), "alice"),
            "a decision again once it is gone"
        );
    }

    #[test]
    fn an_older_blocklist_planted_after_the_cache_is_deleted_is_a_rollback() {
        let dir = tempfile::tempdir().unwrap();
        let l = ledger(dir.path());
        // Sequence 3, with its cache, kept by whoever can write the blocklist's directory.
        let old = signed(3, 1_000, &[]);
        std::fs::write(&l.blocklist, &old).unwrap();
        opened(&l);
        let old_cache = std::fs::read(&l.cache).unwrap();
        // Then alice is suspended in sequence 5.
        std::fs::write(&l.blocklist, signed(5, 1_000, &["alice"])).unwrap();
        assert!(suspended(&opened(&l), "alice"));
        let mark = std::fs::read(&l.high_water).unwrap();

        // The cache deleted, the older (unexpired, validly signed) blocklist planted.
        std::fs::remove_file(&l.cache).unwrap();
        std::fs::write(&l.blocklist, &old).unwrap();
        let e = open(&l, 100, true, &mut no_warnings()).err().unwrap();
        assert!(
            e.contains("sequence 3 is older than the 5 already held (rollback)"),
            "{e}"
        );
        // With its own old cache beside it (found by digest): refused too.
        std::fs::write(&l.cache, &old_cache).unwrap();
        let e = open(&l, 100, true, &mut no_warnings()).err().unwrap();
        assert!(e.contains("(rollback)"), "{e}");
        assert_eq!(std::fs::read(&l.high_water).unwrap(), mark, "intact");
        assert_eq!(high_water(&l), Some(5));

        // The current blocklist back: accepted.
        std::fs::write(&l.blocklist, signed(5, 1_000, &["alice"])).unwrap();
        assert!(suspended(&opened(&l), "alice"));
    }

    #[test]
    fn a_damaged_mark_makes_every_blocklist_stale_until_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let l = ledger(dir.path());
        std::fs::write(&l.blocklist, signed(5, 1_000, &["alice"])).unwrap();
        opened(&l);
        let text = std::fs::read_to_string(&l.high_water).unwrap();
        atomic::write(
            &l.high_water,
            text.replace("\"sequence\":5", "\"sequence\":2").as_bytes(),
            0o644,
        )
        .unwrap();
        let e = open(&l, 100, true, &mut no_warnings()).err().unwrap();
        assert!(e.contains("does not verify with the site key"), "{e}");
        std::fs::remove_file(&l.high_water).unwrap();
        assert!(suspended(&opened(&l), "alice"));
        assert_eq!(high_water(&l), Some(5), "recreated from the cache");
    }

    #[test]
    fn an_unwritable_mark_is_a_warning_not_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = ledger(dir.path());
        std::fs::write(&l.blocklist, signed(3, 1_000, &["alice"])).unwrap();
        l.high_water = dir.path().join("no-such-dir/site.key.seq");
        let mut warnings = Vec::new();
        let cache = super::open(&l, l.keys.as_ref().unwrap(), 100, true, &mut |w| {
            warnings.push(w)
        })
        .unwrap();
        assert!(suspended(&cache, "alice"));
        assert!(
            warnings[0].contains("cannot write the high-water mark"),
            "{warnings:?}"
        );
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
        let verifier = NoteSigner::from_seed("ledger.example/log", [2; 32])
            .unwrap()
            .verifier();
        other.keys = Ok(LedgerKeys {
            log_key: verifier.to_string(),
            verifier,
            site_key: site_key(),
        });
        std::fs::write(&l.blocklist, signed(7, 1_000, &["alice"])).unwrap();
        let e = open(&other, 100, true, &mut no_warnings()).err().unwrap();
        assert!(e.contains("not by the pinned log key"), "{e}");
    }

    #[test]
    fn a_forged_cache_is_ignored_and_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let l = ledger(dir.path());
        std::fs::write(&l.blocklist, signed(3, 1_000, &["alice"])).unwrap();
        opened(&l);
        // A cache made with another site key (a forger's) claiming nobody is suspended.
        let forger = CacheKey::new(&LedgerSecret::from_bytes([6; 32]).site_key("CERN-PROD"));
        let empty: SignedBlocklist = serde_json::from_str(&signed(3, 1_000, &[])).unwrap();
        let stamp = FileStamp::of(&std::fs::metadata(&l.blocklist).unwrap());
        std::fs::write(
            &l.cache,
            cache::build(
                &forger,
                &empty.document,
                &l.keys.as_ref().unwrap().log_key,
                [0; 32],
                stamp,
            ),
        )
        .unwrap();
        assert!(suspended(&opened(&l), "alice"));
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
