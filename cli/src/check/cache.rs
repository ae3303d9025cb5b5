//! The verified-blocklist cache of `tokenledger check`: what a verified blocklist says, laid
//! out so that one decision reads O(log n) small records instead of parsing and verifying a
//! 100 k-entry document (~25 MB) in every process.
//!
//! Layout (integers little-endian):
//!
//! ```text
//! "TLCACHE1" ‖ header_len u32 ‖ header (JSON) ‖ HMAC(b"h" ‖ magic ‖ header)       32 bytes
//! key records, sorted by (key, entry order), 60 bytes each:
//!     key[32] ‖ entry offset u64 ‖ entry length u32 ‖ HMAC(b"k" ‖ digest ‖ i ‖ record)[..16]
//! entries, each: JSON of the entry ‖ HMAC(b"e" ‖ digest ‖ offset ‖ JSON)[..16]
//! ```
//!
//! A record key is SHA-256(kind ‖ value) of a tag (`t`), jti hash (`j`) or client tag (`c`)
//! of the document.
//! Every MAC is HMAC-SHA256 under `HMAC(K_site, "tokenledger check cache v1")`, so only a
//! holder of the site key can write a cache that is accepted. The header records the
//! blocklist file's SHA-256 (`digest`) and its inode stamp, the pinned log key and the site;
//! each record's MAC binds the digest and the record's position, so records cannot be moved,
//! dropped or spliced from another cache without the MAC failing. A binary search reads only
//! the records it probes and checks each one's MAC, which is enough: every record it sees is
//! the authentic one for its position.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokenledger_core::blocklist::{self, Blocklist, BlocklistEntry, Scope};
use tokenledger_core::pseudonym::{SiteKey, hmac_fields};

use super::identity::Identity;

type HmacSha256 = Hmac<Sha256>;

const MAGIC: &[u8; 8] = b"TLCACHE1";
/// 2: client tags and cut-offs (a cache of version 1 is rebuilt).
const VERSION: u32 = 2;
const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// key ‖ entry offset ‖ entry length ‖ MAC.
const RECORD_LEN: usize = KEY_LEN + 8 + 4 + TAG_LEN;
const HEADER_MAC_LEN: usize = 32;
/// Bounds on what a cache may claim, so a corrupt one cannot make us allocate much.
const MAX_HEADER_LEN: usize = 64 << 10;
const MAX_ENTRY_LEN: usize = 64 << 10;
const KEY_DOMAIN: &str = "tokenledger check cache v1";

/// Which list of the entry a lookup key comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Tag,
    JtiHash,
    ClientTag,
}

/// The record key of a tag, jti hash or client tag.
fn lookup_key(kind: Kind, value: &str) -> [u8; KEY_LEN] {
    let mut sha = Sha256::new();
    sha.update(match kind {
        Kind::Tag => b"t",
        Kind::JtiHash => b"j",
        Kind::ClientTag => b"c",
    });
    sha.update(value.as_bytes());
    sha.finalize().into()
}

/// The stat fields that change whenever a file is replaced or written (the inode's ctime
/// cannot be set by anyone but the kernel).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    pub fn of(meta: &std::fs::Metadata) -> FileStamp {
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// What the header of a cache says (authenticated by its MAC).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Header {
    v: u32,
    pub site: String,
    /// The pinned log key the document was verified with, as configured.
    pub log_key: String,
    pub sequence: u64,
    pub expires_at: i64,
    /// Base64 SHA-256 of the blocklist file the cache was built from.
    pub digest: String,
    /// The blocklist file's stamp when the cache was built.
    pub file: FileStamp,
    keys: u64,
    pub entries: u64,
    entries_len: u64,
}

/// What a decision needs of a blocklist entry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CachedEntry {
    pub vo: String,
    /// The person's pseudonym; none for a client suspension.
    pub pseudonym: Option<String>,
    /// Whether it suspends a client.
    pub client: bool,
    pub scope: Scope,
    pub not_after: Option<i64>,
    pub issued_before: Option<i64>,
    pub suspension_id: String,
    pub reason_code: String,
}

impl CachedEntry {
    fn of(entry: &BlocklistEntry) -> CachedEntry {
        CachedEntry {
            vo: entry.vo.clone(),
            pseudonym: entry.pseudonym.clone(),
            client: !entry.client_tags.is_empty(),
            scope: entry.scope,
            not_after: entry.not_after,
            issued_before: entry.issued_before,
            suspension_id: entry.suspension_id.clone(),
            reason_code: entry.reason_code.clone(),
        }
    }

    /// What names it to a person or in a log line: the pseudonym, else `client`.
    pub fn label(&self) -> &str {
        self.pseudonym.as_deref().unwrap_or("client")
    }
}

/// Why a cache cannot be used (it is then rebuilt from the blocklist).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache unreadable: {0}")]
    Io(#[from] std::io::Error),
    #[error("cache malformed: {0}")]
    Malformed(&'static str),
    #[error("cache MAC does not verify ({0})")]
    BadMac(&'static str),
}

/// The bytes of a cache: its file, or a freshly built one in memory.
enum Source {
    File(File),
    Memory(Vec<u8>),
}

impl Source {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), CacheError> {
        match self {
            Source::File(file) => file.read_exact_at(buf, offset).map_err(CacheError::Io),
            Source::Memory(bytes) => {
                let start = usize::try_from(offset).map_err(|_| CacheError::Malformed("offset"))?;
                let slice = bytes
                    .get(start..start + buf.len())
                    .ok_or(CacheError::Malformed("short"))?;
                buf.copy_from_slice(slice);
                Ok(())
            }
        }
    }
}

/// The MAC key of caches of one site.
#[derive(Clone)]
pub struct CacheKey(HmacSha256);

impl CacheKey {
    pub fn new(site_key: &SiteKey) -> CacheKey {
        let key = hmac_fields(site_key.as_bytes(), &[KEY_DOMAIN]);
        CacheKey(HmacSha256::new_from_slice(&key).expect("HMAC takes any key length"))
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        let mut mac = self.0.clone();
        for part in parts {
            mac.update(part);
        }
        mac
    }
}

/// An opened cache, its header authenticated (records are as they are read).
pub struct Cache {
    key: CacheKey,
    pub header: Header,
    source: Source,
    keys_offset: u64,
    entries_offset: u64,
    digest: [u8; 32],
}

/// Builds the cache of `blocklist` (already verified), read from a file of SHA-256 `digest`
/// and stamp `file`.
pub fn build(
    key: &CacheKey,
    blocklist: &Blocklist,
    log_key: &str,
    digest: [u8; 32],
    file: FileStamp,
) -> Vec<u8> {
    let mut entries = Vec::new();
    let mut spans = Vec::with_capacity(blocklist.entries.len());
    for entry in &blocklist.entries {
        let json = serde_json::to_vec(&CachedEntry::of(entry)).expect("an entry serializes");
        let offset = entries.len() as u64;
        let tag = key
            .mac(&[b"e", &digest, &offset.to_le_bytes(), &json])
            .finalize()
            .into_bytes();
        entries.extend_from_slice(&json);
        entries.extend_from_slice(&tag[..TAG_LEN]);
        spans.push((offset, json.len() as u32));
    }
    let mut keys: Vec<([u8; KEY_LEN], usize)> = Vec::new();
    for (i, entry) in blocklist.entries.iter().enumerate() {
        keys.extend(entry.tags.iter().map(|t| (lookup_key(Kind::Tag, t), i)));
        keys.extend(
            entry
                .jti_hashes
                .iter()
                .map(|h| (lookup_key(Kind::JtiHash, h), i)),
        );
        keys.extend(
            entry
                .client_tags
                .iter()
                .map(|c| (lookup_key(Kind::ClientTag, c), i)),
        );
    }
    keys.sort_unstable();
    keys.dedup();
    let header = Header {
        v: VERSION,
        site: blocklist.site.clone(),
        log_key: log_key.to_string(),
        sequence: blocklist.sequence,
        expires_at: blocklist.expires_at,
        digest: STANDARD.encode(digest),
        file,
        keys: keys.len() as u64,
        entries: blocklist.entries.len() as u64,
        entries_len: entries.len() as u64,
    };
    let mut out = header_bytes(key, &header);
    for (i, (lookup, entry)) in keys.iter().enumerate() {
        let (offset, len) = spans[*entry];
        let mut record = [0u8; RECORD_LEN];
        record[..KEY_LEN].copy_from_slice(lookup);
        record[KEY_LEN..KEY_LEN + 8].copy_from_slice(&offset.to_le_bytes());
        record[KEY_LEN + 8..KEY_LEN + 12].copy_from_slice(&len.to_le_bytes());
        let tag = key
            .mac(&[
                b"k",
                &digest,
                &(i as u64).to_le_bytes(),
                &record[..KEY_LEN + 12],
            ])
            .finalize()
            .into_bytes();
        record[KEY_LEN + 12..].copy_from_slice(&tag[..TAG_LEN]);
        out.extend_from_slice(&record);
    }
    out.extend_from_slice(&entries);
    out
}

/// Magic, length, header JSON and its MAC.
fn header_bytes(key: &CacheKey, header: &Header) -> Vec<u8> {
    let json = serde_json::to_vec(header).expect("a header serializes");
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&key.mac(&[b"h", MAGIC, &json]).finalize().into_bytes());
    out
}

/// The same cache with a new file stamp (the blocklist was copied or touched, its digest is
/// unchanged): a new header before the same records, whose MACs do not cover the stamp.
pub fn restamp(cache: &Cache, file: FileStamp) -> Result<Vec<u8>, CacheError> {
    let mut header = cache.header.clone();
    header.file = file;
    let mut out = header_bytes(&cache.key, &header);
    let tail_len = cache.header.keys * RECORD_LEN as u64 + cache.header.entries_len;
    let mut tail = vec![0u8; usize::try_from(tail_len).map_err(|_| CacheError::Malformed("size"))?];
    cache.source.read_at(&mut tail, cache.keys_offset)?;
    out.extend_from_slice(&tail);
    Ok(out)
}

impl Cache {
    /// Opens a cache file and authenticates its header.
    pub fn open_file(key: CacheKey, file: File) -> Result<Cache, CacheError> {
        let len = file.metadata()?.len();
        Cache::open(key, Source::File(file), len)
    }

    /// Opens a cache just built.
    pub fn from_bytes(key: CacheKey, bytes: Vec<u8>) -> Result<Cache, CacheError> {
        let len = bytes.len() as u64;
        Cache::open(key, Source::Memory(bytes), len)
    }

    fn open(key: CacheKey, source: Source, len: u64) -> Result<Cache, CacheError> {
        let mut start = [0u8; 12];
        source.read_at(&mut start, 0)?;
        if &start[..8] != MAGIC {
            return Err(CacheError::Malformed("not a tokenledger check cache"));
        }
        let header_len = u32::from_le_bytes(start[8..12].try_into().expect("4 bytes")) as usize;
        if header_len > MAX_HEADER_LEN {
            return Err(CacheError::Malformed("header too long"));
        }
        let mut header = vec![0u8; header_len + HEADER_MAC_LEN];
        source.read_at(&mut header, 12)?;
        let (json, tag) = header.split_at(header_len);
        key.mac(&[b"h", MAGIC, json])
            .verify_slice(tag)
            .map_err(|_| CacheError::BadMac("header"))?;
        let header: Header =
            serde_json::from_slice(json).map_err(|_| CacheError::Malformed("header"))?;
        if header.v != VERSION {
            return Err(CacheError::Malformed("another cache version"));
        }
        let digest: [u8; 32] = STANDARD
            .decode(&header.digest)
            .ok()
            .and_then(|d| d.try_into().ok())
            .ok_or(CacheError::Malformed("digest"))?;
        let keys_offset = 12 + (header_len + HEADER_MAC_LEN) as u64;
        let entries_offset = header
            .keys
            .checked_mul(RECORD_LEN as u64)
            .and_then(|k| k.checked_add(keys_offset))
            .ok_or(CacheError::Malformed("size"))?;
        if entries_offset.checked_add(header.entries_len) != Some(len) {
            return Err(CacheError::Malformed("size"));
        }
        Ok(Cache {
            key,
            header,
            source,
            keys_offset,
            entries_offset,
            digest,
        })
    }

    /// The file's digest the cache was built from.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// Record `i`, authenticated: (its key, entry offset, entry length).
    fn record(&self, i: u64) -> Result<([u8; KEY_LEN], u64, u32), CacheError> {
        let mut record = [0u8; RECORD_LEN];
        self.source
            .read_at(&mut record, self.keys_offset + i * RECORD_LEN as u64)?;
        self.key
            .mac(&[
                b"k",
                &self.digest,
                &i.to_le_bytes(),
                &record[..KEY_LEN + 12],
            ])
            .verify_truncated_left(&record[KEY_LEN + 12..])
            .map_err(|_| CacheError::BadMac("key record"))?;
        let lookup: [u8; KEY_LEN] = record[..KEY_LEN].try_into().expect("32 bytes");
        let offset = u64::from_le_bytes(record[KEY_LEN..KEY_LEN + 8].try_into().expect("8"));
        let len = u32::from_le_bytes(record[KEY_LEN + 8..KEY_LEN + 12].try_into().expect("4"));
        Ok((lookup, offset, len))
    }

    /// The entry at `offset` (relative to the entries), authenticated.
    fn entry(&self, offset: u64, len: u32) -> Result<CachedEntry, CacheError> {
        let len = len as usize;
        if len > MAX_ENTRY_LEN || offset + (len + TAG_LEN) as u64 > self.header.entries_len {
            return Err(CacheError::Malformed("entry out of bounds"));
        }
        let mut bytes = vec![0u8; len + TAG_LEN];
        self.source
            .read_at(&mut bytes, self.entries_offset + offset)?;
        let (json, tag) = bytes.split_at(len);
        self.key
            .mac(&[b"e", &self.digest, &offset.to_le_bytes(), json])
            .verify_truncated_left(tag)
            .map_err(|_| CacheError::BadMac("entry"))?;
        serde_json::from_slice(json).map_err(|_| CacheError::Malformed("entry"))
    }

    /// Every entry listing `value` as a tag, jti hash or client tag, in document order.
    pub fn find(&self, kind: Kind, value: &str) -> Result<Vec<CachedEntry>, CacheError> {
        let wanted = lookup_key(kind, value);
        // The first record whose key is not less than `wanted`.
        let (mut low, mut high) = (0u64, self.header.keys);
        while low < high {
            let mid = low + (high - low) / 2;
            if self.record(mid)?.0 < wanted {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        let mut found = Vec::new();
        for i in low..self.header.keys {
            let (lookup, offset, len) = self.record(i)?;
            if lookup != wanted {
                break;
            }
            found.push(self.entry(offset, len)?);
        }
        Ok(found)
    }

    /// The first entry suspending identity `(iss, sub)`, token `jti` or its client for access
    /// of kind `asked` at `now`, given the token's `iat`:
    /// [`tokenledger_core::blocklist::BlocklistIndex::decide_token`]'s rules.
    pub fn decide(
        &self,
        site_key: &SiteKey,
        who: &Identity,
        asked: Scope,
        now: i64,
    ) -> Result<Option<CachedEntry>, CacheError> {
        let mut candidates = Vec::new();
        if let Some(sub) = &who.sub {
            candidates.extend(self.find(Kind::Tag, &site_key.tag(&who.iss, sub))?);
        }
        if let Some(jti) = &who.jti {
            candidates.extend(self.find(Kind::JtiHash, &site_key.jti_hash(&who.iss, jti))?);
        }
        if let Some(client) = &who.client_id {
            candidates.extend(self.find(Kind::ClientTag, &site_key.client_tag(&who.iss, client))?);
        }
        Ok(candidates.into_iter().find(|e| {
            blocklist::applies(e.scope, e.not_after, e.issued_before, asked, now, who.iat)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenledger_core::blocklist::{BlocklistIndex, Decision};
    use tokenledger_core::pseudonym::LedgerSecret;

    const ISS: &str = "https://idp.example/realms/atlas/";

    fn site_key() -> SiteKey {
        LedgerSecret::from_bytes([3; 32]).site_key("CERN-PROD")
    }

    fn stamp() -> FileStamp {
        FileStamp {
            dev: 1,
            ino: 2,
            size: 3,
            mtime: (4, 5),
            ctime: (6, 7),
        }
    }

    /// Persons 0..n suspended (every third also by a token), scopes and expiries mixed, and
    /// person 1 twice (a VO-wide storage suspension besides the site's compute one).
    fn blocklist(n: usize) -> Blocklist {
        let key = site_key();
        let scopes = [Scope::Compute, Scope::Storage, Scope::All];
        let mut entries: Vec<BlocklistEntry> = (0..n)
            .map(|i| BlocklistEntry {
                vo: "atlas".into(),
                pseudonym: Some(format!("p1-{i}")),
                tags: vec![
                    key.tag(ISS, &format!("user-{i}")),
                    key.tag("x509", &format!("/CN=u{i}")),
                ],
                jti_hashes: if i % 3 == 0 {
                    vec![key.jti_hash(ISS, &format!("jti-{i}"))]
                } else {
                    vec![]
                },
                client_tags: if i % 5 == 0 {
                    vec![key.client_tag(ISS, &format!("client-{i}"))]
                } else {
                    vec![]
                },
                issued_before: (i % 7 == 0).then_some(700 + i as i64),
                scope: scopes[i % 3],
                not_after: (i % 4 == 0).then_some(1_000 + i as i64),
                suspension_id: format!("su-{i}"),
                reason_code: "misuse".into(),
            })
            .collect();
        entries.push(BlocklistEntry {
            scope: Scope::Storage,
            suspension_id: "su-vo".into(),
            not_after: None,
            ..entries[1].clone()
        });
        Blocklist {
            site: "CERN-PROD".into(),
            sequence: 12,
            issued_at: 1,
            expires_at: 99_999,
            entries,
        }
    }

    fn who(iss: &str, sub: Option<&str>, jti: Option<&str>) -> Identity {
        Identity {
            iss: iss.into(),
            sub: sub.map(str::to_string),
            jti: jti.map(str::to_string),
            ..Identity::default()
        }
    }

    fn built(n: usize) -> (CacheKey, Blocklist, Vec<u8>) {
        let key = CacheKey::new(&site_key());
        let list = blocklist(n);
        let bytes = build(&key, &list, "log+key", [7; 32], stamp());
        (key, list, bytes)
    }

    #[test]
    fn decisions_are_those_of_the_blocklist_index() {
        let (key, list, bytes) = built(200);
        let cache = Cache::from_bytes(key, bytes).unwrap();
        assert_eq!(cache.header.sequence, 12);
        assert_eq!(cache.header.entries, 201);
        let index = BlocklistIndex::new(list);
        let sk = site_key();
        for i in 0..210 {
            let sub = format!("user-{i}");
            let jti = format!("jti-{i}");
            let client = format!("client-{i}");
            for (sub, jti, client) in [
                (Some(sub.as_str()), None, None),
                (None, Some(jti.as_str()), None),
                (Some("nobody"), Some(jti.as_str()), None),
                (Some("nobody"), None, Some(client.as_str())),
                (Some(sub.as_str()), None, Some(client.as_str())),
            ] {
                for (asked, now, iat) in [Scope::Compute, Scope::Storage, Scope::All]
                    .into_iter()
                    .flat_map(|a| [500, 1_050, 5_000].map(|n| (a, n)))
                    .flat_map(|(a, n)| [None, Some(600), Some(705), Some(900)].map(|t| (a, n, t)))
                {
                    let asking = Identity {
                        client_id: client.map(str::to_string),
                        iat,
                        ..who(ISS, sub, jti)
                    };
                    let ours = cache.decide(&sk, &asking, asked, now).unwrap();
                    let token = tokenledger_core::blocklist::Presented {
                        iss: ISS,
                        sub,
                        jti,
                        client_id: client,
                        iat,
                    };
                    let theirs = index.decide_token(&sk, &token, asked, now);
                    match theirs {
                        Decision::Allowed => {
                            assert_eq!(ours, None, "{i} {sub:?} {jti:?} {asked:?} {now}")
                        }
                        Decision::Suspended(e) => {
                            assert_eq!(ours, Some(CachedEntry::of(e)), "{i} {asked:?} {now}")
                        }
                    }
                }
            }
        }
        let x509 = cache
            .decide(&sk, &who("x509", Some("/CN=u5"), None), Scope::Storage, 0)
            .unwrap();
        assert_eq!(x509.unwrap().suspension_id, "su-5");
        let both = cache.find(Kind::Tag, &sk.tag(ISS, "user-1")).unwrap();
        assert_eq!(
            both.iter()
                .map(|e| e.suspension_id.as_str())
                .collect::<Vec<_>>(),
            ["su-1", "su-vo"]
        );
    }

    #[test]
    fn an_empty_blocklist_allows_everyone() {
        let key = CacheKey::new(&site_key());
        let list = Blocklist {
            site: "CERN-PROD".into(),
            sequence: 1,
            issued_at: 0,
            expires_at: 1,
            entries: vec![],
        };
        let bytes = build(&key, &list, "k", [0; 32], stamp());
        let cache = Cache::from_bytes(key, bytes).unwrap();
        assert_eq!(
            cache
                .decide(&site_key(), &who(ISS, Some("a"), Some("j")), Scope::All, 0)
                .unwrap(),
            None
        );
    }

    #[test]
    fn any_change_to_a_cache_is_caught() {
        let (key, _, bytes) = built(50);
        let sk = site_key();
        let cache = Cache::from_bytes(key.clone(), bytes.clone()).unwrap();
        let header_end = cache.keys_offset as usize;
        let entries_start = cache.entries_offset as usize;
        // Flip one byte anywhere: either the open or the lookup of a suspended user fails
        // (every record the search probes is checked), never a silent "allowed".
        for at in (0..bytes.len()).step_by(7) {
            let mut bad = bytes.clone();
            bad[at] ^= 0x01;
            let Ok(cache) = Cache::from_bytes(key.clone(), bad) else {
                assert!(at < header_end, "only header damage fails the open ({at})");
                continue;
            };
            for i in 0..50 {
                match cache.decide(
                    &sk,
                    &who(ISS, Some(&format!("user-{i}")), None),
                    Scope::All,
                    0,
                ) {
                    Ok(found) => assert!(found.is_some(), "byte {at}: user-{i} became allowed"),
                    Err(e) => assert!(
                        matches!(e, CacheError::BadMac(_) | CacheError::Malformed(_)),
                        "{e}"
                    ),
                }
            }
        }
        // Dropping a record (shifting the rest) or truncating is caught too.
        let mut dropped = bytes.clone();
        dropped.drain(header_end..header_end + RECORD_LEN);
        assert!(
            Cache::from_bytes(key.clone(), dropped).is_err(),
            "size no longer matches the header"
        );
        assert!(Cache::from_bytes(key, bytes[..entries_start].to_vec()).is_err());
        // Another site key (another site, or a forger) cannot open it.
        let other = CacheKey::new(&LedgerSecret::from_bytes([3; 32]).site_key("RAL-LCG2"));
        assert!(matches!(
            Cache::from_bytes(other, bytes),
            Err(CacheError::BadMac("header"))
        ));
    }

    #[test]
    fn records_cannot_be_spliced_from_another_cache() {
        let key = CacheKey::new(&site_key());
        let list = blocklist(20);
        let a = build(&key, &list, "k", [1; 32], stamp());
        let b = build(&key, &list, "k", [2; 32], stamp());
        let header_end = Cache::from_bytes(key.clone(), a.clone())
            .unwrap()
            .keys_offset as usize;
        let mut spliced = a[..header_end].to_vec();
        spliced.extend_from_slice(&b[header_end..]);
        let cache = Cache::from_bytes(key, spliced).unwrap();
        assert!(
            cache
                .decide(&site_key(), &who(ISS, Some("user-3"), None), Scope::All, 0)
                .is_err()
        );
    }

    #[test]
    fn restamping_keeps_the_records() {
        let (key, _, bytes) = built(30);
        let cache = Cache::from_bytes(key.clone(), bytes).unwrap();
        let new_stamp = FileStamp { ino: 99, ..stamp() };
        let again = Cache::from_bytes(key, restamp(&cache, new_stamp.clone()).unwrap()).unwrap();
        assert_eq!(again.header.file, new_stamp);
        let found = again
            .decide(&site_key(), &who(ISS, Some("user-4"), None), Scope::All, 0)
            .unwrap();
        assert_eq!(found.unwrap().suspension_id, "su-4");
    }
}
