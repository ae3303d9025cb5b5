//! The rollback high-water mark of `tokenledger check`: the highest blocklist sequence this
//! node has accepted for a (site, log key), in a small file that outlives the cache. The cache
//! lives beside the blocklist, where whoever installs blocklists can write; the mark lives
//! beside the site key by default (`<site_key_file>.seq`, or `high_water =`), where only the
//! plugin's user can. So deleting the cache and planting an older, validly signed, unexpired
//! blocklist is refused as a rollback.
//!
//! The file is one JSON line, `{"v", "site", "log_key", "sequence", "mac"}`, the MAC an
//! HMAC-SHA256 under `HMAC(K_site, "tokenledger check high-water v1")` of the length-prefixed
//! site, log key and decimal sequence: only a holder of the site key can write a mark that is
//! accepted. Mode 0644: it is not a secret (every blocklist states its sequence), and a mark
//! written by root when testing by hand stays readable by `condor`.
//!
//! - Missing: first use (or a new install); the next accepted blocklist creates it.
//! - A valid mark of another site or log key (the key was pinned again): as missing, and
//!   replaced at the next accepted blocklist.
//! - Unreadable, not a regular file, writable by group or others, or failing its MAC: no
//!   blocklist is trusted (`on_stale` decides) until an admin deletes it. Writes are atomic
//!   (temporary file, fsync, rename), so a crash never leaves a damaged mark: one that fails
//!   was written by someone without the site key, or under a site key since replaced.
//!   Treating it as missing would turn "can damage the file" into "can roll back".
//!
//! A decision reads the mark (one small file); it is written only when an accepted blocklist
//! is newer than it, under a lock (`<mark>.lock`, mode 0600) that keeps two concurrent
//! decisions from lowering it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use rustix::fs::{FlockOperation, flock};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokenledger_core::pseudonym::{SiteKey, hmac_fields};

use super::load::Stale;
use crate::atomic;
use crate::regular_file;

type HmacSha256 = Hmac<Sha256>;

const VERSION: u32 = 1;
const KEY_DOMAIN: &str = "tokenledger check high-water v1";
/// A mark is about 150 bytes; anything much longer is not one.
const MAX_BYTES: u64 = 4 << 10;
/// Not a secret; see the module documentation.
const MODE: u32 = 0o644;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    v: u32,
    site: String,
    log_key: String,
    sequence: u64,
    /// Base64 HMAC of the fields above.
    mac: String,
}

/// The mark of one ledger: its file, and the site and log key it is kept for.
pub struct HighWater<'a> {
    path: &'a Path,
    mac_key: [u8; 32],
    site: &'a str,
    log_key: &'a str,
}

impl<'a> HighWater<'a> {
    pub fn new(path: &'a Path, site_key: &SiteKey, site: &'a str, log_key: &'a str) -> Self {
        HighWater {
            path,
            mac_key: hmac_fields(site_key.as_bytes(), &[KEY_DOMAIN]),
            site,
            log_key,
        }
    }

    pub fn path(&self) -> &Path {
        self.path
    }

    /// The highest sequence accepted for this site and log key; `None` if there is no mark
    /// yet. An error when the mark cannot be trusted (see the module documentation).
    pub fn read(&self) -> Result<Option<u64>, Stale> {
        let path = self.path.display();
        let repair = "no blocklist is trusted until an admin deletes it (after `tokenledger \
                      blocklist pull` installed the current blocklist)";
        let (bytes, meta) = match regular_file::read_regular(self.path, MAX_BYTES) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(format!(
                    "the high-water mark {path} is unreadable: {e}; {repair}"
                ));
            }
        };
        let mode = meta.permissions().mode();
        if mode & 0o022 != 0 {
            return Err(format!(
                "the high-water mark {path} is writable by group or others (mode {:04o}), who \
                 could roll the blocklist back; run `chmod go-w {path}`",
                mode & 0o7777
            ));
        }
        let authentic = serde_json::from_slice::<Record>(&bytes)
            .ok()
            .filter(|r| r.v == VERSION)
            .filter(|r| {
                STANDARD.decode(&r.mac).is_ok_and(|tag| {
                    self.mac(&r.site, &r.log_key, r.sequence)
                        .verify_slice(&tag)
                        .is_ok()
                })
            })
            .ok_or_else(|| {
                format!(
                    "the high-water mark {path} does not verify with the site key (tampered \
                     with, or written under another site key); {repair}"
                )
            })?;
        Ok(
            (authentic.site == self.site && authentic.log_key == self.log_key)
                .then_some(authentic.sequence),
        )
    }

    /// Raises the mark to `sequence`, never lowering it: under an exclusive lock of
    /// `<mark>.lock` (mode 0600, so only the plugin's user can hold it), the mark is read
    /// again and replaced (atomically) only if it is lower. The lock is taken without
    /// waiting: a `check` that finds it held leaves the mark to the one holding it, and the
    /// next decision raises it if it is still low.
    pub fn raise(&self, sequence: u64) -> Result<(), String> {
        let lock_path = atomic::sibling(self.path, ".lock");
        let locking = |e: std::io::Error| format!("locking {}: {e}", lock_path.display());
        let lock = regular_file::open_lock(&lock_path).map_err(locking)?;
        match flock(&lock, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => return Ok(()),
            Err(e) => return Err(locking(e.into())),
        }
        if self.read()?.is_some_and(|have| have >= sequence) {
            return Ok(());
        }
        let record = Record {
            v: VERSION,
            site: self.site.to_string(),
            log_key: self.log_key.to_string(),
            sequence,
            mac: STANDARD.encode(
                self.mac(self.site, self.log_key, sequence)
                    .finalize()
                    .into_bytes(),
            ),
        };
        let mut line = serde_json::to_vec(&record).expect("a mark serializes");
        line.push(b'\n');
        atomic::write(self.path, &line, MODE).map_err(|e| e.to_string())
    }

    /// The MAC of a mark: HMAC-SHA256 of the length-prefixed fields (`hmac_fields`'s
    /// encoding), kept as a `Mac` so it is checked in constant time.
    fn mac(&self, site: &str, log_key: &str, sequence: u64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.mac_key).expect("HMAC takes any key length");
        for field in [site, log_key, &sequence.to_string()] {
            let len = u32::try_from(field.len()).expect("a field shorter than 4 GiB");
            mac.update(&len.to_be_bytes());
            mac.update(field.as_bytes());
        }
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use tokenledger_core::pseudonym::LedgerSecret;

    fn site_key(site: &str) -> SiteKey {
        LedgerSecret::from_bytes([5; 32]).site_key(site)
    }

    /// A temporary directory, the path of a mark in it (`name`), and CERN-PROD's site key.
    struct Fixture {
        dir: tempfile::TempDir,
        path: PathBuf,
        key: SiteKey,
    }

    impl Fixture {
        fn new(name: &str) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(name);
            Fixture {
                dir,
                path,
                key: site_key("CERN-PROD"),
            }
        }

        /// CERN-PROD's mark for `log_key`.
        fn mark(&self, log_key: &'static str) -> HighWater<'_> {
            HighWater::new(&self.path, &self.key, "CERN-PROD", log_key)
        }
    }

    #[test]
    fn a_mark_is_created_raised_and_never_lowered() {
        let f = Fixture::new("site.key.seq");
        let (mark, path) = (f.mark("log+1"), &f.path);
        assert_eq!(mark.read().unwrap(), None, "first use");
        mark.raise(7).unwrap();
        assert_eq!(mark.read().unwrap(), Some(7));
        let meta = std::fs::metadata(path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, MODE);
        mark.raise(5).unwrap();
        assert_eq!(mark.read().unwrap(), Some(7), "never lowered");
        let before = std::fs::read(path).unwrap();
        mark.raise(7).unwrap();
        assert_eq!(std::fs::read(path).unwrap(), before);
        mark.raise(9).unwrap();
        assert_eq!(mark.read().unwrap(), Some(9));
        assert_eq!(
            std::fs::read_dir(f.dir.path()).unwrap().count(),
            2,
            "the mark and its lock, no temporary file left behind"
        );

        // Another pinned log key starts afresh, and takes the file over.
        let repinned = f.mark("log+2");
        assert_eq!(repinned.read().unwrap(), None);
        repinned.raise(3).unwrap();
        assert_eq!(repinned.read().unwrap(), Some(3));
    }

    #[test]
    fn a_forged_or_damaged_mark_is_refused_not_ignored() {
        let f = Fixture::new("site.key.seq");
        let (mark, path) = (f.mark("log+1"), &f.path);
        mark.raise(40).unwrap();
        let good = std::fs::read_to_string(path).unwrap();

        // Lowered by hand; written under another site's key; cut; not JSON.
        let forger = site_key("RAL-LCG2");
        HighWater::new(path, &forger, "CERN-PROD", "log+1")
            .raise(1)
            .unwrap_err();
        let forged = {
            let other = f.dir.path().join("other.seq");
            HighWater::new(&other, &forger, "CERN-PROD", "log+1")
                .raise(1)
                .unwrap();
            std::fs::read_to_string(&other).unwrap()
        };
        for text in [
            good.replace("\"sequence\":40", "\"sequence\":4"),
            forged,
            good[..good.len() / 2].to_string(),
            "sequence 40\n".to_string(),
        ] {
            atomic::write(path, text.as_bytes(), MODE).unwrap();
            let e = mark.read().unwrap_err();
            assert!(
                e.contains("does not verify with the site key"),
                "{text}: {e}"
            );
            assert!(
                mark.raise(50).is_err(),
                "a damaged mark is never overwritten"
            );
        }

        atomic::write(path, good.as_bytes(), 0o666).unwrap();
        let e = mark.read().unwrap_err();
        assert!(e.contains("writable by group or others"), "{e}");

        std::fs::remove_file(path).unwrap();
        regular_file::mkfifo(path);
        let e = mark.read().unwrap_err();
        assert!(e.contains("a FIFO, not a regular file"), "{e}");
    }

    #[test]
    fn a_held_lock_leaves_the_mark_to_its_holder() {
        let f = Fixture::new("site.key.seq");
        let mark = f.mark("log+1");
        let held = regular_file::open_lock(&atomic::sibling(&f.path, ".lock")).unwrap();
        flock(&held, FlockOperation::LockExclusive).unwrap();
        mark.raise(3).unwrap();
        assert_eq!(
            mark.read().unwrap(),
            None,
            "not written, and not waited for"
        );
        drop(held);
        mark.raise(3).unwrap();
        assert_eq!(mark.read().unwrap(), Some(3));
    }

    #[test]
    fn an_unwritable_directory_is_an_error_for_the_caller_to_report() {
        let f = Fixture::new("missing-dir/site.key.seq");
        let mark = f.mark("log+1");
        assert!(mark.raise(3).is_err());
        assert_eq!(mark.read().unwrap(), None);
    }
}
