//! How leaves are stored: zstd frames made with a dictionary trained on training samples of
//! the log's own first leaves (their structure and the values many subjects share, nothing
//! of one person: [`tokenledger_core::training_sample`]; a leaf's hash is always over its canonical bytes,
//! only the stored row is smaller).
//! Every leaf read back is checked against its stored leaf hash ([`LeafDecoders::verified`])
//! before it is served or used. The engine stores the frames and dictionaries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use tokenledger_core::merkle::leaf_hash;
use tokenledger_core::training_sample::training_samples;
use tokio::sync::oneshot;
use zstd::bulk::{Compressor, Decompressor};

use crate::storage_errors::StorageErrors;
use crate::store::{NewEntry, StoreError, StoredEntry};

/// zstd level of stored leaves: with a dictionary, higher levels save a few bytes at many
/// times the CPU.
const LEVEL: i32 = 3;
/// Size of a trained dictionary.
const DICTIONARY_BYTES: usize = 32 * 1024;
/// A stored frame claiming more than this is corrupt (leaves come from bodies of 256 KiB).
const MAX_LEAF_BYTES: u64 = 1 << 20;

/// A leaf as stored: its canonical bytes (`dictionary` None), or a zstd frame of them made
/// with dictionary `dictionary`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredLeaf {
    pub dictionary: Option<i64>,
    pub bytes: Vec<u8>,
}

/// A new entry ready to be written at `index`, in its stored form.
pub struct EntryRow<'a> {
    pub index: u64,
    pub leaf: &'a StoredLeaf,
}

impl<'a> EntryRow<'a> {
    /// `entries` with their stored forms `stored`, in order.
    pub fn of(entries: &[NewEntry<'_>], stored: &'a [StoredLeaf]) -> Vec<EntryRow<'a>> {
        entries
            .iter()
            .zip(stored)
            .map(|(e, leaf)| EntryRow {
                index: e.index,
                leaf,
            })
            .collect()
    }
}

/// A dictionary the writer uses from now on: it must be written in the transaction of the
/// first leaves compressed with it. It is trained on scrubbed samples.
#[derive(Clone, Debug)]
pub struct NewDictionary {
    pub id: i64,
    pub bytes: Vec<u8>,
}

/// A stored dictionary, as the writer finds the newest one.
#[derive(Clone, Debug)]
pub struct StoredDictionary {
    pub id: i64,
    pub bytes: Vec<u8>,
    /// Trained on training samples; false for a dictionary trained on the leaves themselves
    /// (before SQLite migration 0016, PostgreSQL 0006), which holds fragments of them.
    pub scrubbed: bool,
}

/// Decompressors for every dictionary of one database, shared by all readers, and where
/// they report leaves that fail their check.
#[derive(Default)]
pub struct LeafDecoders {
    by_id: RwLock<HashMap<i64, Arc<Mutex<Decompressor<'static>>>>>,
    errors: Arc<StorageErrors>,
}

impl LeafDecoders {
    /// These decoders, recording the integrity errors they find in `errors`.
    pub fn reporting_to(self, errors: Arc<StorageErrors>) -> LeafDecoders {
        LeafDecoders { errors, ..self }
    }

    /// The canonical bytes of the stored leaf of entry `index`, only if they hash to
    /// `stored_hash`, its stored leaf hash (`None`: the row is missing). Anything else is an
    /// integrity error: counted, logged with the index (never the leaf), never other bytes.
    pub fn verified(
        &self,
        index: u64,
        dictionary: Option<i64>,
        bytes: Vec<u8>,
        stored_hash: Option<&[u8]>,
    ) -> Result<Vec<u8>, StoreError> {
        self.checked(dictionary, bytes, stored_hash)
            .map_err(|problem| {
                self.errors.integrity_error();
                tracing::error!(
                    index,
                    %problem,
                    "INTEGRITY ERROR: a stored log entry failed its check and is not served; \
                     run `tokenledger-server fsck`"
                );
                StoreError::Integrity { index, problem }
            })
    }

    /// [`Self::verified`] without the reporting: what is wrong with a stored leaf, if anything.
    pub fn checked(
        &self,
        dictionary: Option<i64>,
        bytes: Vec<u8>,
        stored_hash: Option<&[u8]>,
    ) -> Result<Vec<u8>, String> {
        let leaf = self.decode(dictionary, bytes).map_err(|e| match e {
            StoreError::Corrupt(problem) => problem,
            other => other.to_string(),
        })?;
        match stored_hash {
            None => Err("its stored leaf hash is missing".into()),
            Some(stored) if stored == leaf_hash(&leaf).0.as_slice() => Ok(leaf),
            Some(_) => Err("the leaf and its stored leaf hash disagree".into()),
        }
    }

    /// Adds the decoder of stored dictionary `id`.
    pub fn install(&self, id: i64, dictionary: &[u8]) -> Result<(), StoreError> {
        self.add(id, decompressor(id, dictionary)?);
        Ok(())
    }

    fn add(&self, id: i64, decompressor: Decompressor<'static>) {
        self.by_id
            .write()
            .expect("leaf decoders lock")
            .insert(id, Arc::new(Mutex::new(decompressor)));
    }

    /// Whether the decoder of stored dictionary `id` is installed.
    pub fn knows(&self, id: i64) -> bool {
        self.by_id
            .read()
            .expect("leaf decoders lock")
            .contains_key(&id)
    }

    /// The canonical bytes of a stored leaf.
    pub fn decode(&self, dictionary: Option<i64>, bytes: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let Some(id) = dictionary else {
            return Ok(bytes);
        };
        let decompressor = self
            .by_id
            .read()
            .expect("leaf decoders lock")
            .get(&id)
            .cloned()
            .ok_or_else(|| StoreError::Corrupt(format!("leaf dictionary {id} is missing")))?;
        let corrupt = |e: &dyn std::fmt::Display| {
            StoreError::Corrupt(format!("leaf stored with dictionary {id}: {e}"))
        };
        let size = match zstd::zstd_safe::get_frame_content_size(&bytes) {
            Ok(Some(size)) if size <= MAX_LEAF_BYTES => size as usize,
            Ok(_) => return Err(corrupt(&"no or too large content size")),
            Err(e) => return Err(corrupt(&e)),
        };
        let leaf = decompressor
            .lock()
            .expect("leaf decompressor lock")
            .decompress(&bytes, size)
            .map_err(|e| corrupt(&e))?;
        if leaf.len() != size {
            return Err(corrupt(&"content size mismatch"));
        }
        Ok(leaf)
    }
}

/// A row of the view `entries_with_leaf_hash` (SQLite's migration 0009, PostgreSQL's 0001) as read: index, stored
/// bytes, dictionary, stored leaf hash. Every read of a leaf selects these four columns from
/// the view, so that [`decode_entries`] can check each leaf before it is served or used.
pub type EntryData = (i64, Vec<u8>, Option<i64>, Option<Vec<u8>>);

/// Decodes rows of `entries` into (index, canonical bytes), each checked against its stored
/// leaf hash: a leaf that fails is an integrity error, and no row is returned.
pub fn decode_entries(
    leaves: &LeafDecoders,
    rows: Vec<EntryData>,
) -> Result<Vec<StoredEntry>, StoreError> {
    rows.into_iter()
        .map(|(index, bytes, dictionary, stored_hash)| {
            let index = index as u64;
            let leaf = leaves.verified(index, dictionary, bytes, stored_hash.as_deref())?;
            Ok((index, leaf))
        })
        .collect()
}

/// The dictionaries `rows` were compressed with that `leaves` has no decoder for (sorted,
/// once each): a shared database's writer may have trained them after this server loaded
/// its decoders.
pub fn unknown_dictionaries(leaves: &LeafDecoders, rows: &[EntryData]) -> Vec<i64> {
    let mut unknown: Vec<i64> = rows
        .iter()
        .filter_map(|row| row.2)
        .filter(|id| !leaves.knows(*id))
        .collect();
    unknown.sort_unstable();
    unknown.dedup();
    unknown
}

/// The log writer's side: compresses new leaves once a dictionary exists; until then gathers
/// the raw leaves and, off the writer's thread, trains one on their training samples (made
/// over the whole set, [`training_samples`]) when it has enough. A writer whose dictionary was
/// trained on leaves themselves (a ledger from before training samples) compresses with it and
/// gathers the leaves it appends the same way, then switches to the dictionary trained on
/// their samples.
pub struct LeafEncoder {
    decoders: Arc<LeafDecoders>,
    current: Option<(i64, Compressor<'static>)>,
    /// Whether `current` was trained on training samples.
    scrubbed: bool,
    /// The dictionary in use that is not known to be committed yet, and its decoder, which
    /// the shared decoders get once it is: a batch that fails leaves them as they were.
    pending: Option<(NewDictionary, Decompressor<'static>)>,
    /// The leaves gathered for the next training (in memory only).
    samples: Vec<Vec<u8>>,
    train_after: usize,
    training: Option<oneshot::Receiver<std::io::Result<Vec<u8>>>>,
    next_id: i64,
}

impl LeafEncoder {
    /// The encoder of a store whose newest dictionary is `newest`, if it has one; otherwise,
    /// with `train_after` > 0, sampling from `raw_leaves`, the newest leaves stored raw (a
    /// dictionary is trained once `train_after` are gathered). `train_after` 0 stores leaves
    /// raw, or compresses them with `newest`, and trains nothing. With a `newest` not
    /// scrubbed and `train_after` > 0, the next `train_after` leaves appended are sampled for
    /// a scrubbed dictionary that replaces it.
    pub fn new(
        decoders: Arc<LeafDecoders>,
        train_after: usize,
        newest: Option<StoredDictionary>,
        raw_leaves: Vec<Vec<u8>>,
    ) -> Result<LeafEncoder, StoreError> {
        let mut encoder = LeafEncoder {
            decoders,
            current: None,
            scrubbed: false,
            pending: None,
            samples: Vec::new(),
            train_after,
            training: None,
            next_id: 1,
        };
        match newest {
            Some(newest) => {
                encoder.current = Some((newest.id, compressor(newest.id, &newest.bytes)?));
                encoder.scrubbed = newest.scrubbed;
                encoder.next_id = newest.id + 1;
            }
            None => {
                for leaf in raw_leaves {
                    encoder.sample(&leaf);
                }
            }
        }
        Ok(encoder)
    }

    /// The decoders this encoder installs its dictionaries into.
    pub fn decoders(&self) -> &LeafDecoders {
        &self.decoders
    }

    /// How many more leaves are sampled before a dictionary is trained (0 once a scrubbed one
    /// is in use or training): raw leaves, or leaves compressed with a dictionary that is not
    /// scrubbed.
    pub fn samples_wanted(&self) -> usize {
        if self.scrubbed || self.training.is_some() {
            0
        } else {
            self.train_after.saturating_sub(self.samples.len())
        }
    }

    /// The dictionary the caller's transaction must write, if the leaves it encodes use one
    /// that is not committed yet. Adopts a dictionary whose training has finished.
    pub fn pending_dictionary(&mut self) -> Result<Option<NewDictionary>, StoreError> {
        let finished = match &mut self.training {
            Some(training) => match training.try_recv() {
                Ok(result) => Some(result),
                Err(oneshot::error::TryRecvError::Empty) => None,
                Err(oneshot::error::TryRecvError::Closed) => {
                    Some(Err(std::io::Error::other("the training thread stopped")))
                }
            },
            None => None,
        };
        if let Some(result) = finished {
            self.adopt(result)?;
        }
        Ok(self.pending_copy())
    }

    /// Waits for a dictionary being trained, then behaves as [`Self::pending_dictionary`].
    pub async fn wait_for_training(&mut self) -> Result<Option<NewDictionary>, StoreError> {
        if let Some(training) = self.training.take() {
            let result = training
                .await
                .unwrap_or_else(|_| Err(std::io::Error::other("the training thread stopped")));
            self.adopt(result)?;
        }
        Ok(self.pending_copy())
    }

    fn pending_copy(&self) -> Option<NewDictionary> {
        self.pending
            .as_ref()
            .map(|(dictionary, _)| dictionary.clone())
    }

    fn adopt(&mut self, trained: std::io::Result<Vec<u8>>) -> Result<(), StoreError> {
        self.training = None;
        match trained {
            Ok(bytes) => {
                let id = self.next_id;
                let decoder = decompressor(id, &bytes)?;
                self.current = Some((id, compressor(id, &bytes)?));
                self.scrubbed = true;
                self.pending = Some((NewDictionary { id, bytes }, decoder));
                self.next_id += 1;
                self.samples = Vec::new();
                tracing::info!(
                    dictionary = id,
                    "leaf dictionary trained; new leaves are stored compressed"
                );
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "training a leaf dictionary failed; leaves stay as they are stored now"
                );
                self.samples = Vec::new();
                self.train_after = 0;
            }
        }
        Ok(())
    }

    /// The transaction that wrote the pending dictionary committed: the shared decoders
    /// learn it.
    pub fn committed(&mut self) {
        if let Some((dictionary, decoder)) = self.pending.take() {
            self.decoders.add(dictionary.id, decoder);
        }
    }

    /// The stored form of each of `entries`, in order.
    pub fn encode_all(&mut self, entries: &[NewEntry<'_>]) -> Result<Vec<StoredLeaf>, StoreError> {
        entries.iter().map(|e| self.encode(e.leaf)).collect()
    }

    /// The stored form of a new leaf.
    pub fn encode(&mut self, leaf: &[u8]) -> Result<StoredLeaf, StoreError> {
        let stored = match &mut self.current {
            Some((id, compressor)) => StoredLeaf {
                dictionary: Some(*id),
                bytes: compressor.compress(leaf).map_err(|e| {
                    StoreError::Corrupt(format!("compressing a leaf with dictionary {id}: {e}"))
                })?,
            },
            None => StoredLeaf {
                dictionary: None,
                bytes: leaf.to_vec(),
            },
        };
        self.sample(leaf);
        Ok(stored)
    }

    /// Keeps `leaf` while samples are wanted; with enough, trains a dictionary on their
    /// training samples (a leaf that gives none, not a JSON object, is left out then).
    fn sample(&mut self, leaf: &[u8]) {
        if self.samples_wanted() == 0 {
            return;
        }
        self.samples.push(leaf.to_vec());
        if self.samples_wanted() == 0 {
            let leaves = std::mem::take(&mut self.samples);
            let (done, training) = oneshot::channel();
            std::thread::spawn(move || {
                let samples = training_samples(&leaves);
                drop(leaves);
                let _ = done.send(zstd::dict::from_samples(&samples, DICTIONARY_BYTES));
            });
            self.training = Some(training);
        }
    }
}

/// A compressor of stored leaves with dictionary `id`: a checksum, so that a damaged row is
/// an error rather than other bytes, and no dictionary id in the frame (the row names it).
fn decompressor(id: i64, dictionary: &[u8]) -> Result<Decompressor<'static>, StoreError> {
    Decompressor::with_dictionary(dictionary)
        .map_err(|e| StoreError::Corrupt(format!("leaf dictionary {id}: {e}")))
}

fn compressor(id: i64, dictionary: &[u8]) -> Result<Compressor<'static>, StoreError> {
    let setup = || -> std::io::Result<Compressor<'static>> {
        let mut compressor = Compressor::with_dictionary(LEVEL, dictionary)?;
        compressor.include_checksum(true)?;
        compressor.include_dictid(false)?;
        compressor.include_contentsize(true)?;
        Ok(compressor)
    };
    setup().map_err(|e| StoreError::Corrupt(format!("leaf dictionary {id}: {e}")))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Leaves shaped like issuance entries, different enough to need a real dictionary.
    pub(crate) fn leaves(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                format!(
                    r#"{{"iss":"https://iam.example.org/","jti":"{:032x}","logged_at":{},"scopes":["compute.read","storage.read:/"],"sub":"user-{}","type":"issuance","v":1,"vo":"atlas"}}"#,
                    (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834),
                    1_700_000_000_000_000u64 + i as u64 * 977,
                    i % 37
                )
                .into_bytes()
            })
            .collect()
    }

    /// What [`leaves_of_alice_among_others`] say of her (subject, e-mail, name, home
    /// directory, own group, own client): none of it may be in a dictionary.
    pub(crate) const ALICE: [&str; 6] = [
        "alice-8d1e-4f0b",
        "alice.liddell@example.org",
        "Alice Liddell",
        "/home/alice",
        "/atlas/users/alice",
        "alice-laptop-7c1f",
    ];

    /// What the leaves of [`leaves_of_alice_among_others`] share: the audience.
    pub(crate) const SHARED_AUD: &str = "https://wlcg.cern.ch/jwt/v1/any";

    /// Canonical leaves of `n` issuances, every other one of one person (as [`ALICE`]
    /// names her), the others of 40 other people through a shared portal client; all reports
    /// carry extra claims (kept, from a claims feed) and [`SHARED_AUD`].
    pub(crate) fn leaves_of_alice_among_others(n: usize) -> Vec<Vec<u8>> {
        use tokenledger_core::entry::{EntryBody, Issuance, LogEntry, ReportContext, Source};
        (0..n)
            .map(|i| {
                let other = format!("user-{:04}", i / 2 % 40);
                let (sub, email, name, home, group, client) = if i % 2 == 0 {
                    (ALICE[0].to_string(), ALICE[1].to_string(), ALICE[2].to_string(),
                     ALICE[3].to_string(), ALICE[4].to_string(), ALICE[5])
                } else {
                    (format!("{other}-4f0b"), format!("{other}@example.org"),
                     format!("User {other}"), format!("/home/{other}"),
                     format!("/atlas/users/{other}"), "shared-portal-3b9a")
                };
                let claims = serde_json::json!({
                    "iss": "https://iam.example.org/",
                    "jti": format!("{:032x}", (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834)),
                    "sub": sub,
                    "client_id": client,
                    "scope": format!("compute.read storage.read:{home}"),
                    "wlcg.groups": ["/atlas", group],
                    "aud": SHARED_AUD,
                    "email": email,
                    "name": name,
                    "iat": 1_700_000_000 + i as i64,
                    "exp": 1_700_003_600 + i as i64,
                });
                let serde_json::Value::Object(claims) = claims else {
                    unreachable!("an object")
                };
                let ctx = ReportContext {
                    source: Source::Claims,
                    vo: "atlas".into(),
                    grant_type: None,
                    parent_jti: None,
                    refresh_jti: None,
                    token_sha256: None,
                    feed: Some("iam-audit".into()),
                };
                let issuance = Issuance::from_claims(claims, ctx).unwrap();
                LogEntry::new(
                    1_700_000_000_000_000 + i as i64 * 977,
                    EntryBody::Issuance(Box::new(issuance)),
                )
                .canonical_bytes()
                .unwrap()
            })
            .collect()
    }

    /// Has `encoder` train a dictionary on the first 1,000 of
    /// [`leaves_of_alice_among_others`]`(1500)`, then encode the other 500 with it: the
    /// dictionary (for the caller to store) and those 500 leaves with their stored form.
    pub(crate) async fn train_on_alice_among_others(
        encoder: &mut LeafEncoder,
    ) -> (NewDictionary, Vec<(Vec<u8>, StoredLeaf)>) {
        let mut all = leaves_of_alice_among_others(1500);
        let after = all.split_off(1000);
        for leaf in &all {
            encoder.encode(leaf).unwrap();
        }
        let dictionary = encoder.wait_for_training().await.unwrap().expect("trained");
        let encoded = after
            .into_iter()
            .map(|leaf| {
                let stored = encoder.encode(&leaf).unwrap();
                (leaf, stored)
            })
            .collect();
        (dictionary, encoded)
    }

    /// A dictionary of [`train_on_alice_among_others`], as stored (`bytes`, `scrubbed`):
    /// marked scrubbed, holding nothing of alice's yet what 40 people share; the leaves
    /// encoded with it take less than half their size and decode with `decoders`.
    pub(crate) fn assert_holds_nobody(
        (bytes, scrubbed): (Vec<u8>, i64),
        dictionary: &NewDictionary,
        encoded: &[(Vec<u8>, StoredLeaf)],
        decoders: &LeafDecoders,
    ) {
        assert_eq!(scrubbed, 1);
        assert!(bytes.len() > 1000, "{} bytes", bytes.len());
        for value in ALICE {
            assert!(!holds(&bytes, value), "the dictionary holds {value}");
        }
        assert!(holds(&bytes, SHARED_AUD), "what 40 people share stays");
        let (mut raw, mut compressed) = (0, 0);
        for (leaf, stored) in encoded {
            assert_eq!(stored.dictionary, Some(dictionary.id));
            assert_eq!(
                &decoders
                    .decode(stored.dictionary, stored.bytes.clone())
                    .unwrap(),
                leaf
            );
            raw += leaf.len();
            compressed += stored.bytes.len();
        }
        assert!(compressed * 2 < raw, "{compressed} bytes of {raw}");
    }

    /// Whether `needle` occurs in `haystack`.
    pub(crate) fn holds(haystack: &[u8], needle: &str) -> bool {
        haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    }

    /// A dictionary as writers trained them before training samples, on `leaves` themselves,
    /// and the leaves compressed with it (as dictionary `id`).
    pub(crate) fn dictionary_of_leaves(id: i64, leaves: &[Vec<u8>]) -> (Vec<u8>, Vec<Vec<u8>>) {
        let dictionary = zstd::dict::from_samples(leaves, DICTIONARY_BYTES).unwrap();
        let mut compressor = compressor(id, &dictionary).unwrap();
        let frames = leaves
            .iter()
            .map(|leaf| compressor.compress(leaf).unwrap())
            .collect();
        (dictionary, frames)
    }

    #[test]
    fn a_dictionary_of_the_leaves_themselves_holds_what_they_say() {
        let (dictionary, _) = dictionary_of_leaves(1, &leaves_of_alice_among_others(1000));
        for value in ALICE {
            assert!(holds(&dictionary, value), "{value}");
        }
    }

    #[test]
    fn a_missing_dictionary_or_a_damaged_frame_is_an_error_not_a_leaf() {
        let decoders = LeafDecoders::default();
        assert!(matches!(
            decoders.decode(Some(7), b"whatever".to_vec()),
            Err(StoreError::Corrupt(e)) if e.contains("dictionary 7 is missing")
        ));
        let dictionary = zstd::dict::from_samples(&leaves(1000), DICTIONARY_BYTES).unwrap();
        decoders.install(1, &dictionary).unwrap();
        let mut frame = compressor(1, &dictionary)
            .unwrap()
            .compress(&leaves(1)[0])
            .unwrap();
        assert_eq!(
            decoders.decode(Some(1), frame.clone()).unwrap(),
            leaves(1)[0]
        );
        let last = frame.len() - 1;
        frame[last] ^= 0xff;
        frame.truncate(last - 3);
        assert!(decoders.decode(Some(1), frame).is_err());
        assert!(decoders.decode(Some(1), b"not zstd".to_vec()).is_err());
    }
}
