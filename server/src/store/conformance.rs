//! Scenarios every engine passes, through the storage traits only: each engine's tests run
//! them on a database of their own.

use tokenledger_core::access::{Binding, Role};
use tokenledger_core::blocklist::{
    Blocklist, BlocklistEntry, Scope, SignedBlocklist, SignedDocument,
};
use tokenledger_core::entry::{EntryBody, Issuance, LogEntry, ReportContext, Source};
use tokenledger_core::ids::{Jti, PersonId, Pseudonym, Site, Vo};
use tokenledger_core::merkle::{self, Frontier, Hash};
use tokenledger_core::note::NoteSigner;
use tokenledger_core::redaction::{IndexRange, RedactedToken, RedactionKey};

use crate::clock::Clock;
use crate::credentials::{authenticate, create, list, revoke};
use crate::store::{
    Batch, BlocklistFetch, IssuanceFilter, IssuanceKey, IssuanceRow, LedgerReader, LedgerWriter,
    LogRecord, NewEntry, RedactedIssuance, RedactionSpan, Registry, SiteFetches, StateChange,
    StoreError, SuspensionRecord,
};

/// A clock stopped at a time (unix microseconds).
pub struct StoppedAt(pub i64);

impl Clock for StoppedAt {
    fn now_micros(&self) -> i64 {
        self.0
    }
}

fn entry(suspension_id: &str) -> BlocklistEntry {
    BlocklistEntry {
        vo: "atlas".into(),
        pseudonym: Some("p1-x".into()),
        tags: vec!["t".into()],
        jti_hashes: Vec::new(),
        client_tags: Vec::new(),
        issued_before: None,
        scope: Scope::All,
        not_after: None,
        suspension_id: suspension_id.into(),
        reason_code: "compromised".into(),
    }
}

/// `site`'s blocklist of `sequence`, carrying suspensions `ids`, signed.
pub fn signed(site: &str, sequence: u64, ids: &[&str]) -> SignedBlocklist {
    let signer = NoteSigner::from_seed("test/log", [4; 32]).unwrap();
    Blocklist {
        site: site.into(),
        sequence,
        issued_at: 1_000,
        expires_at: 2_000,
        entries: ids.iter().map(|id| entry(id)).collect(),
    }
    .sign(&signer)
}

/// The site `name`.
pub fn site(name: &str) -> Site {
    Site::unchecked(name)
}

fn fetch<'a>(
    site: &'a Site,
    credential: &'a str,
    sequence: u64,
    served: bool,
    at: i64,
) -> BlocklistFetch<'a> {
    BlocklistFetch {
        site,
        credential_id: credential,
        sequence,
        served,
        at,
    }
}

/// Credentials created, authenticated by their secret, revoked once; returns the secret of
/// the one created (whose hash only is stored).
pub async fn create_authenticate_revoke(store: &(impl LedgerReader + Registry)) -> String {
    let binding = Binding::new(Role::Issuer, Some("atlas".into()), None).unwrap();
    let (id, secret) = create(store, &StoppedAt(1_000), &binding, Some("iam"))
        .await
        .unwrap();
    assert!(secret.starts_with("tlk_") && secret.len() > 50);

    let principal = authenticate(store, &secret).await.unwrap().unwrap();
    assert_eq!(principal.id, format!("credential:{id}"));
    assert_eq!(principal.binding, binding);
    assert!(authenticate(store, "tlk_wrong").await.unwrap().is_none());
    assert!(
        authenticate(store, "not-a-credential")
            .await
            .unwrap()
            .is_none()
    );

    assert!(
        revoke(store, &StoppedAt(2_000), &id)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        revoke(store, &StoppedAt(3_000), &id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(authenticate(store, &secret).await.unwrap().is_none());
    let listed = &list(store).await.unwrap()[0];
    assert_eq!((listed.created_at, listed.revoked_at), (1_000, Some(2_000)));
    secret
}

/// Enforcement status: the sequence a suspension first appeared in, the first fetch of a
/// sequence carrying it (not a 304, not a later sequence without it), the last fetch.
pub async fn first_appearance_first_fetch_and_last_fetch(store: &(impl LedgerReader + Registry)) {
    let nothing = SiteFetches {
        site: site("A"),
        first_sequence: None,
        first_fetch: None,
        last_fetch: None,
    };
    assert_eq!(
        store
            .blocklist_enforcement(&site("A"), "su-1")
            .await
            .unwrap(),
        nothing
    );

    store.store_blocklist(&signed("A", 1, &[])).await.unwrap();
    store
        .record_blocklist_fetch(&fetch(&site("A"), "credential:c-1", 1, true, 100))
        .await
        .unwrap();
    // su-1 first appears in sequence 2, stays in 3; a fetch of 1 does not enforce it.
    store
        .store_blocklist(&signed("A", 2, &["su-1"]))
        .await
        .unwrap();
    store
        .store_blocklist(&signed("A", 3, &["su-1", "su-2"]))
        .await
        .unwrap();
    let status = store
        .blocklist_enforcement(&site("A"), "su-1")
        .await
        .unwrap();
    assert_eq!(status.first_sequence, Some(2));
    assert_eq!(status.first_fetch, None);
    assert_eq!(status.last_fetch, Some(100));

    // A 304 is a last fetch, not a fetch of a sequence.
    store
        .record_blocklist_fetch(&fetch(&site("A"), "credential:c-1", 1, false, 150))
        .await
        .unwrap();
    let status = store
        .blocklist_enforcement(&site("A"), "su-1")
        .await
        .unwrap();
    assert_eq!((status.first_fetch, status.last_fetch), (None, Some(150)));

    // Another credential fetches 3, then this one 3 again later: the first fetch holds.
    store
        .record_blocklist_fetch(&fetch(&site("A"), "credential:c-2", 3, true, 200))
        .await
        .unwrap();
    store
        .record_blocklist_fetch(&fetch(&site("A"), "credential:c-1", 3, true, 300))
        .await
        .unwrap();
    store
        .record_blocklist_fetch(&fetch(&site("A"), "credential:c-2", 3, true, 400))
        .await
        .unwrap();
    let status = store
        .blocklist_enforcement(&site("A"), "su-1")
        .await
        .unwrap();
    assert_eq!(status.first_fetch, Some((200, 3)));
    assert_eq!(status.last_fetch, Some(400));
    assert_eq!(
        store
            .blocklist_enforcement(&site("A"), "su-2")
            .await
            .unwrap()
            .first_sequence,
        Some(3)
    );

    // An older time never moves the last fetch back; another site is its own.
    store
        .record_blocklist_fetch(&fetch(&site("A"), "credential:c-2", 3, false, 50))
        .await
        .unwrap();
    assert_eq!(
        store
            .blocklist_enforcement(&site("A"), "su-1")
            .await
            .unwrap()
            .last_fetch,
        Some(400)
    );
    let b = store
        .blocklist_enforcement(&site("B"), "su-1")
        .await
        .unwrap();
    assert_eq!(
        (b.first_sequence, b.first_fetch, b.last_fetch),
        (None, None, None)
    );
    store
        .record_blocklist_fetch(&fetch(&site("B"), "credential:c-3", 9, false, 70))
        .await
        .unwrap();
    assert_eq!(
        store.last_blocklist_fetches().await.unwrap(),
        vec![(site("A"), 400), (site("B"), 70)]
    );
}

/// A fetch of a sequence that no longer carries a suspension is no fetch of it; one of its
/// last carrying sequence is.
pub async fn a_fetch_after_the_suspension_left_the_blocklist_is_no_fetch_of_it(
    store: &(impl LedgerReader + Registry),
) {
    // su-1 is carried by sequences 2 and 3, then lifted: 4 no longer carries it.
    for (sequence, ids) in [(2, &["su-1"][..]), (3, &["su-1"][..]), (4, &[][..])] {
        store
            .store_blocklist(&signed("A", sequence, ids))
            .await
            .unwrap();
    }
    store
        .record_blocklist_fetch(&fetch(&site("A"), "credential:c-1", 4, true, 500))
        .await
        .unwrap();
    let status = store
        .blocklist_enforcement(&site("A"), "su-1")
        .await
        .unwrap();
    assert_eq!(status.first_sequence, Some(2));
    assert_eq!(status.first_fetch, None, "sequence 4 does not carry su-1");
    assert_eq!(status.last_fetch, Some(500));
    store
        .record_blocklist_fetch(&fetch(&site("A"), "credential:c-2", 3, true, 600))
        .await
        .unwrap();
    let status = store
        .blocklist_enforcement(&site("A"), "su-1")
        .await
        .unwrap();
    assert_eq!(
        status.first_fetch,
        Some((600, 3)),
        "its last carrying sequence"
    );
}

/// A blocklist whose sequence is not higher than the stored one's is not stored (another
/// server signed that sequence first): the stored document stays, and so do its suspensions'
/// first appearances.
pub async fn a_blocklist_of_a_sequence_already_stored_is_refused(
    store: &(impl LedgerReader + Registry),
) {
    let first = signed("A", 2, &["su-1"]);
    assert!(store.store_blocklist(&first).await.unwrap());
    for refused in [signed("A", 2, &["su-2"]), signed("A", 1, &["su-3"])] {
        assert!(!store.store_blocklist(&refused).await.unwrap());
        let stored = store.blocklist(&site("A")).await.unwrap().unwrap();
        assert_eq!(
            serde_json::to_value(&stored).unwrap(),
            serde_json::to_value(&first).unwrap()
        );
        for id in ["su-2", "su-3"] {
            let status = store.blocklist_enforcement(&site("A"), id).await.unwrap();
            assert_eq!(status.first_sequence, None, "{id}");
        }
    }
    assert!(store.store_blocklist(&signed("A", 3, &[])).await.unwrap());
}

/// The issuer of the redaction scenarios' tokens.
const ISS: &str = "https://iam.example/";

/// One entry of a redaction scenario's batch: its leaf, and the rows that go with it.
pub enum Written {
    /// An issuance of `(jti, sub)` by [`ISS`] in atlas.
    Issuance(&'static str, &'static str),
    /// A resolution entry of atlas.
    Resolution,
    State(StateChange),
}

/// A log built batch by batch as the sequencer builds it: leaves, stored hashes from its
/// right edge, lookup and state rows.
#[derive(Default)]
pub struct TestLog {
    frontier: Frontier,
    /// Every leaf appended, by index.
    pub leaves: Vec<Vec<u8>>,
}

impl TestLog {
    /// Appends `entries` through `writer` in one batch; the batch's result. The log moves on
    /// only if the batch was written.
    pub async fn append(
        &mut self,
        writer: &mut dyn LedgerWriter,
        entries: Vec<Written>,
    ) -> Result<(), StoreError> {
        let mut frontier = self.frontier.clone();
        let first = frontier.size();
        let atlas = Vo::unchecked("atlas");
        let (mut leaves, mut hashes, mut keys, mut resolutions, mut changes) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (n, entry) in entries.into_iter().enumerate() {
            let index = first + n as u64;
            let leaf = match entry {
                Written::Issuance(jti, sub) => {
                    let claims = serde_json::json!({"iss": ISS, "jti": jti, "sub": sub});
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
                        feed: None,
                    };
                    let issuance = Issuance::from_claims(claims, ctx).unwrap();
                    keys.push((index, IssuanceKey::of(&issuance)));
                    LogEntry::new(index as i64, EntryBody::Issuance(Box::new(issuance)))
                        .canonical_bytes()
                        .unwrap()
                }
                Written::Resolution => {
                    resolutions.push(index);
                    format!("{{\"resolution\":{index}}}").into_bytes()
                }
                Written::State(change) => {
                    changes.push((index, change));
                    format!("{{\"state\":{index}}}").into_bytes()
                }
            };
            hashes.extend(frontier.append(merkle::leaf_hash(&leaf)));
            leaves.push(leaf);
        }
        let batch = Batch {
            written_at: 1,
            entries: leaves
                .iter()
                .enumerate()
                .map(|(n, leaf)| NewEntry {
                    index: first + n as u64,
                    leaf,
                })
                .collect(),
            hashes: &hashes,
            issuances: keys
                .iter()
                .map(|(index, key)| IssuanceRow {
                    index: *index,
                    key,
                    logged_at: *index as i64,
                })
                .collect(),
            resolutions: resolutions.iter().map(|index| (*index, &atlas)).collect(),
            state_changes: changes.iter().map(|(index, c)| (*index, c)).collect(),
            checkpoint: None,
        };
        writer.append(&batch).await?;
        self.frontier = frontier;
        self.leaves.extend(leaves);
        Ok(())
    }

    pub fn root(&self) -> Hash {
        self.frontier.root()
    }
}

/// Issuances of `sub`, of jtis `{sub}-{n}` for each `n` of `range`.
pub fn issuances_of(sub: &'static str, range: std::ops::Range<usize>) -> Vec<Written> {
    range
        .map(|n| {
            let jti: &'static str = format!("{sub}-{n}").leak();
            Written::Issuance(jti, sub)
        })
        .collect()
}

/// The key of redacted issuances' digests in these scenarios.
pub fn key() -> RedactionKey {
    RedactionKey::from_bytes([3; 32])
}

/// The digest a redacted issuance of `jti` is found by.
fn jti_hash(jti: &str) -> [u8; 32] {
    RedactedToken::jti_hash(&key(), jti)
}

/// A redaction of `ranges` `(start, end)` at `at`.
pub fn redact(ranges: &[(u64, u64)], at: i64) -> Written {
    Written::State(StateChange::Redact {
        ranges: ranges.iter().map(|r| IndexRange::from(*r)).collect(),
        at,
        holds_at: 0,
        key: key(),
        persons: Vec::new(),
    })
}

/// A VO-wide suspension `id` of person `person` in atlas.
fn suspension(id: &str, person: &str) -> Written {
    Written::State(StateChange::Suspend(Box::new(SuspensionRecord {
        id: id.into(),
        idx: 0,
        site: None,
        vo: Vo::unchecked("atlas"),
        person_id: Some(PersonId::unchecked(person)),
        token_iss: None,
        token_jti: None,
        client_iss: None,
        client_id: None,
        scope: Scope::All,
        reason_code: "suspended".into(),
        created_by: "officer".into(),
        created_at: 5,
        not_after: None,
        issued_before: None,
        lifted_at: None,
    })))
}

/// Indexes of `records` that are redacted, with their `(at, by)`, and of those that are
/// leaves.
fn split(records: &[LogRecord]) -> (Vec<(u64, i64, u64)>, Vec<u64>) {
    let mut redacted = Vec::new();
    let mut leaves = Vec::new();
    for record in records {
        match record {
            LogRecord::Redacted(r) => redacted.push((r.index, r.at, r.by)),
            LogRecord::Leaf((index, _)) => leaves.push(*index),
        }
    }
    (redacted, leaves)
}

/// A redaction deletes the leaves of its ranges and every row that points at them
/// (issuance keys, sightings, resolution rows, suspensions); readers give those entries as
/// redacted (stored leaf hash, when, by which entry), lookups no longer find them, and a
/// redacted token is still known as redacted, by digests only. Stored hashes stay: the
/// root, inclusion proofs and leaf hashes are those of before. A second redaction over the
/// same entries leaves the first's record as it is.
pub async fn redaction_removes_payload_and_lookups_and_keeps_hashes(
    writer: &mut dyn LedgerWriter,
    reader: &dyn LedgerReader,
) {
    let atlas = Vo::unchecked("atlas");
    let mut log = TestLog::default();
    log.append(
        writer,
        vec![
            Written::Issuance("j-1", "alice"),
            Written::Issuance("j-2", "bob"),
            Written::Resolution,
            Written::State(StateChange::Sighting {
                site: Site::unchecked("CERN-PROD"),
                vo: atlas.clone(),
                iss: ISS.into(),
                jti: Jti::unchecked("j-1"),
            }),
            Written::Issuance("j-3", "carol"),
            suspension("su-1", "pe-x"),
        ],
    )
    .await
    .unwrap();
    let size = 6;
    let before = reader.inclusion_proof(0, size).await.unwrap();
    assert_eq!(
        reader
            .issuances_by_jti(&Jti::unchecked("j-1"))
            .await
            .unwrap()
            .len(),
        1
    );

    log.append(writer, vec![redact(&[(0, 2), (3, 4), (5, 6)], 77)])
        .await
        .unwrap();
    let records = reader.entries(0, 7).await.unwrap();
    assert_eq!(
        records.iter().map(LogRecord::index).collect::<Vec<_>>(),
        (0..7).collect::<Vec<_>>()
    );
    let (redacted, leaves) = split(&records);
    assert_eq!(
        redacted,
        vec![(0, 77, 6), (1, 77, 6), (3, 77, 6), (5, 77, 6)]
    );
    assert_eq!(leaves, vec![2, 4, 6]);
    for record in &records {
        if let LogRecord::Redacted(r) = record {
            assert_eq!(
                r.leaf_hash,
                merkle::leaf_hash(&log.leaves[r.index as usize])
            );
        }
    }
    let at = writer.entries_at(&[0, 2, 9]).await.unwrap();
    assert_eq!(split(&at), (vec![(0, 77, 6)], vec![2]));
    // What is still stored, redacted entries skipped: the first `limit` of a span.
    let leaves = &log.leaves;
    let stored = |start, end, limit| async move {
        let stored = reader.stored_entries(start, end, limit).await.unwrap();
        for (index, leaf) in &stored {
            assert_eq!(leaf, &leaves[*index as usize]);
        }
        stored.into_iter().map(|(i, _)| i).collect::<Vec<_>>()
    };
    assert_eq!(stored(0, 7, 10).await, vec![2, 4, 6]);
    assert_eq!(stored(0, 7, 2).await, vec![2, 4]);
    assert_eq!(stored(3, 6, 10).await, vec![4]);
    assert_eq!(stored(5, 6, 10).await, Vec::<u64>::new());

    // Stored hashes are untouched: the same root and proofs.
    assert_eq!(reader.frontier(7).await.unwrap().root(), log.root());
    assert_eq!(reader.inclusion_proof(0, size).await.unwrap(), before);

    // Lookups no longer find the redacted rows; the others stay.
    for jti in ["j-1", "j-2"] {
        assert!(
            reader
                .issuances_by_jti(&Jti::unchecked(jti))
                .await
                .unwrap()
                .is_empty()
        );
    }
    assert!(
        reader
            .issuance(ISS, &Jti::unchecked("j-2"))
            .await
            .unwrap()
            .is_none()
    );
    let listed = reader
        .issuances(&IssuanceFilter::in_vo(&atlas))
        .await
        .unwrap();
    assert_eq!(listed.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![4]);
    assert_eq!(reader.resolutions(&atlas, None, 10).await.unwrap().len(), 1);
    assert!(reader.suspension("su-1").await.unwrap().is_none());

    // A redacted token is known as redacted, by its VO and digests.
    let kept = reader.redacted_issuances(&jti_hash("j-1")).await.unwrap();
    assert_eq!(
        kept,
        vec![RedactedIssuance {
            index: 0,
            vo: atlas.clone(),
            token_hash: RedactedToken::of(&key(), ISS, "j-1").token_hash,
        }]
    );
    assert!(
        reader
            .redacted_issuances(&jti_hash("j-3"))
            .await
            .unwrap()
            .is_empty()
    );
    // In one lookup, as ingest asks: each redacted issuance of any of the jtis, by index.
    let of = reader
        .redacted_issuances_of(&[jti_hash("j-3"), jti_hash("j-2"), jti_hash("j-1")])
        .await
        .unwrap();
    assert_eq!(of.iter().map(|r| r.index).collect::<Vec<_>>(), vec![0, 1]);
    // The writer reads the same (the sequencer asks it about reports a redaction overtook).
    let by_writer = writer
        .redacted_issuances_of(&[jti_hash("j-3"), jti_hash("j-2"), jti_hash("j-1")])
        .await
        .unwrap();
    assert_eq!(by_writer, of);
    assert_eq!(
        of[1].token_hash,
        RedactedToken::of(&key(), ISS, "j-2").token_hash
    );

    // Redacting again over redacted entries: they keep their first record.
    log.append(writer, vec![redact(&[(0, 3)], 99)])
        .await
        .unwrap();
    let (redacted, leaves) = split(&reader.entries(0, 8).await.unwrap());
    assert_eq!(
        redacted,
        vec![(0, 77, 6), (1, 77, 6), (2, 99, 7), (3, 77, 6), (5, 77, 6)]
    );
    assert_eq!(leaves, vec![4, 6, 7]);
    // Each redaction's span, newest first, as far as it meets the span asked about.
    let span = |index, first, end, at| RedactionSpan {
        index,
        first,
        end,
        at,
    };
    assert_eq!(
        reader.redactions_within(0, 8, 10).await.unwrap(),
        vec![span(7, 0, 3, 99), span(6, 0, 6, 77)]
    );
    assert_eq!(
        reader.redactions_within(3, 4, 10).await.unwrap(),
        vec![span(6, 0, 6, 77)]
    );
    assert!(reader.redactions_within(6, 8, 10).await.unwrap().is_empty());
    assert_eq!(reader.redactions_within(0, 8, 1).await.unwrap().len(), 1);
    assert!(
        reader
            .resolutions(&atlas, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        reader
            .redacted_issuances(&jti_hash("j-1"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(reader.frontier(8).await.unwrap().root(), log.root());
}

/// A batch whose redaction goes with a report logged before (one it does not redact) fails
/// whole: nothing of the redaction is written.
pub async fn a_failed_batch_redacts_nothing(
    writer: &mut dyn LedgerWriter,
    reader: &dyn LedgerReader,
) {
    let mut log = TestLog::default();
    log.append(
        writer,
        vec![
            Written::Issuance("j-1", "alice"),
            Written::Issuance("j-2", "bob"),
            Written::Resolution,
        ],
    )
    .await
    .unwrap();
    let failed = log
        .append(
            writer,
            vec![
                redact(&[(0, 1), (2, 3)], 5),
                Written::Issuance("j-2", "bob"),
            ],
        )
        .await
        .unwrap_err();
    assert!(failed.is_unique_violation(), "{failed:?}");
    let (redacted, leaves) = split(&reader.entries(0, 3).await.unwrap());
    assert_eq!((redacted, leaves), (vec![], vec![0, 1, 2]));
    assert!(reader.redactions_within(0, 3, 10).await.unwrap().is_empty());
    assert_eq!(
        reader
            .issuances_by_jti(&Jti::unchecked("j-1"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        reader
            .redacted_issuances(&jti_hash("j-1"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        reader
            .resolutions(&Vo::unchecked("atlas"), None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// A redaction whose range reaches its own entry (or beyond) is refused and its batch
/// writes nothing: it would delete its own entry and lower the log size.
pub async fn a_redaction_past_its_own_entry_is_refused(
    writer: &mut dyn LedgerWriter,
    reader: &dyn LedgerReader,
) {
    let mut log = TestLog::default();
    log.append(
        writer,
        vec![
            Written::Issuance("j-1", "alice"),
            Written::Issuance("j-2", "bob"),
        ],
    )
    .await
    .unwrap();
    // The redaction would be entry 3.
    for ranges in [[(0, 4)], [(2, 9)]] {
        let refused = log
            .append(writer, vec![Written::Resolution, redact(&ranges, 5)])
            .await
            .unwrap_err();
        assert!(matches!(refused, StoreError::Corrupt(_)), "{refused:?}");
    }
    assert_eq!(
        split(&reader.entries(0, 4).await.unwrap()),
        (vec![], vec![0, 1])
    );
    assert_eq!(reader.frontier(2).await.unwrap().root(), log.root());
    log.append(writer, vec![redact(&[(0, 2)], 5)])
        .await
        .unwrap();
    assert_eq!(
        split(&reader.entries(0, 3).await.unwrap()),
        (vec![(0, 5, 2), (1, 5, 2)], vec![2])
    );
}

/// A redaction of `ranges` at `at` that also names `persons` (an erasure's).
fn erase(ranges: &[(u64, u64)], at: i64, persons: Vec<(Vo, PersonId)>) -> Written {
    Written::State(StateChange::Redact {
        ranges: ranges.iter().map(|r| IndexRange::from(*r)).collect(),
        at,
        holds_at: 0,
        key: key(),
        persons,
    })
}

/// The person of identity `(ISS, sub)` in atlas, if it is kept.
async fn person(reader: &dyn LedgerReader, sub: &str) -> Option<PersonId> {
    reader
        .person_of(ISS, sub, &Vo::unchecked("atlas"))
        .await
        .unwrap()
}

/// Whether pseudonym `p-{sub}` still resolves.
async fn resolves(reader: &dyn LedgerReader, sub: &str) -> bool {
    let pseudonym = Pseudonym::unchecked(format!("p-{sub}"));
    reader.pseudonym(&pseudonym).await.unwrap().is_some()
}

/// Identities and pseudonyms that nothing kept needs go with the redaction that removed
/// their last rows: an identity stays while an issuance or a sighting points at it or its
/// person has a suspension row (lifted or not); a pseudonym stays while its person has an
/// identity in its VO. A redaction's persons (an erasure's) lose every identity, even one
/// no redacted row names. An identity that went and issues again is a new person; one that
/// issues in the batch of the redaction keeps its person. `padding` resolution entries follow
/// the first issuances: with a few thousand, the kept issuances span more than one epoch
/// and the first checks seek each epoch; with none, they scan
/// ([`crate::store::identity_epochs::seek_each_epoch`]).
pub async fn orphans_go_with_their_redaction(
    writer: &mut dyn LedgerWriter,
    reader: &dyn LedgerReader,
    registry: &dyn Registry,
    padding: u64,
) {
    let atlas = Vo::unchecked("atlas");
    let cern = site("CERN-PROD");
    let mut log = TestLog::default();
    let mut first = vec![
        Written::Issuance("j-1", "alice"),
        Written::Issuance("j-2", "bob"),
        Written::Issuance("j-3", "alice"),
        Written::Issuance("j-4", "carol"),
        Written::Issuance("j-5", "dave"),
    ];
    first.extend((0..padding).map(|_| Written::Resolution));
    // 5 + padding: an issuance kept throughout, so that the kept ones span the padding.
    first.push(Written::Issuance("j-z", "zoe"));
    log.append(writer, first).await.unwrap();
    let p = padding + 1;
    // 5 (+ padding + 1, as every index below): a sighting names a token logged before (in an earlier batch).
    log.append(
        writer,
        vec![Written::State(StateChange::Sighting {
            site: cern.clone(),
            vo: atlas.clone(),
            iss: ISS.into(),
            jti: Jti::unchecked("j-5"),
        })],
    )
    .await
    .unwrap();
    let mut persons = std::collections::HashMap::new();
    for sub in ["alice", "bob", "carol", "dave"] {
        let p = person(reader, sub).await.unwrap();
        let pseudonym = Pseudonym::unchecked(format!("p-{sub}"));
        registry
            .remember_pseudonym(&pseudonym, &cern, &atlas, &p, 10)
            .await
            .unwrap();
        persons.insert(sub, p);
    }
    let carol = persons["carol"].as_str().to_owned();
    // 6: carol suspended.
    log.append(writer, vec![suspension("su-1", &carol)])
        .await
        .unwrap();

    // 7: every issuance but alice's j-3.
    log.append(writer, vec![redact(&[(0, 2), (3, 5)], 20)])
        .await
        .unwrap();
    assert_eq!(person(reader, "bob").await, None, "nothing needs bob");
    assert!(!resolves(reader, "bob").await);
    assert!(
        reader
            .identities_of(&persons["bob"], &atlas)
            .await
            .unwrap()
            .is_empty()
    );
    for (sub, why) in [
        ("alice", "an issuance is kept"),
        ("carol", "a suspension is kept"),
        ("dave", "a sighting is kept"),
    ] {
        assert_eq!(
            person(reader, sub).await.as_ref(),
            Some(&persons[sub]),
            "{why}"
        );
        assert!(resolves(reader, sub).await, "{why}");
    }

    // 8, 9: lifted, carol is still held by the suspension's row until it is redacted.
    log.append(
        writer,
        vec![Written::State(StateChange::Lift {
            suspension_id: "su-1".into(),
            lifted_by: "officer".into(),
            lifted_at: 30,
        })],
    )
    .await
    .unwrap();
    log.append(writer, vec![redact(&[(8 + p, 9 + p)], 31)])
        .await
        .unwrap();
    assert!(
        person(reader, "carol").await.is_some(),
        "lifted, still held"
    );
    // 10: the sighting and the suspension.
    log.append(writer, vec![redact(&[(5 + p, 7 + p)], 40)])
        .await
        .unwrap();
    for sub in ["carol", "dave"] {
        assert_eq!(person(reader, sub).await, None, "{sub}");
        assert!(!resolves(reader, sub).await, "{sub}");
    }

    // 11: bob issues again: a new person, whose issuance is found with its identity.
    log.append(writer, vec![Written::Issuance("j-6", "bob")])
        .await
        .unwrap();
    let bob = person(reader, "bob").await.unwrap();
    assert_ne!(bob, persons["bob"], "a new person, not the one that went");
    assert_eq!(
        reader.identities_of(&bob, &atlas).await.unwrap(),
        vec![(ISS.to_owned(), "bob".to_owned())]
    );
    assert_eq!(
        reader
            .issuances_by_jti(&Jti::unchecked("j-6"))
            .await
            .unwrap()
            .len(),
        1
    );

    // 12, 13: alice's last kept issuance (2) redacted in the batch of a new one: she stays.
    log.append(
        writer,
        vec![Written::Issuance("j-7", "alice"), redact(&[(2, 3)], 50)],
    )
    .await
    .unwrap();
    assert_eq!(
        person(reader, "alice").await.as_ref(),
        Some(&persons["alice"])
    );
    assert!(resolves(reader, "alice").await);

    // 14: another identity linked to alice's person, then 15: alice erased with j-7 only:
    // both her identities and her pseudonym go.
    let alice = persons["alice"].clone();
    log.append(
        writer,
        vec![Written::State(StateChange::Link {
            vo: atlas.clone(),
            person_id: alice.clone(),
            iss: ISS.into(),
            sub: "alice-2".into(),
            created_at: 60,
        })],
    )
    .await
    .unwrap();
    assert_eq!(reader.identities_of(&alice, &atlas).await.unwrap().len(), 2);
    log.append(
        writer,
        vec![erase(
            &[(12 + p, 13 + p)],
            70,
            vec![(atlas.clone(), alice.clone())],
        )],
    )
    .await
    .unwrap();
    assert!(
        reader
            .identities_of(&alice, &atlas)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!resolves(reader, "alice").await);
    assert_eq!(person(reader, "bob").await, Some(bob), "bob is not alice");

    // A person's identities go together: zoe-2, linked to zoe's person, issues a token that
    // is redacted; zoe's first identity still has a token kept, so zoe-2 stays too.
    let zoe = person(reader, "zoe").await.unwrap();
    log.append(
        writer,
        vec![Written::State(StateChange::Link {
            vo: atlas.clone(),
            person_id: zoe.clone(),
            iss: ISS.into(),
            sub: "zoe-2".into(),
            created_at: 80,
        })],
    )
    .await
    .unwrap();
    let j8 = log.leaves.len() as u64;
    log.append(writer, vec![Written::Issuance("j-8", "zoe-2")])
        .await
        .unwrap();
    assert_eq!(person(reader, "zoe-2").await.as_ref(), Some(&zoe));
    log.append(writer, vec![redact(&[(j8, j8 + 1)], 90)])
        .await
        .unwrap();
    assert_eq!(
        reader.identities_of(&zoe, &atlas).await.unwrap().len(),
        2,
        "zoe-2 stays while zoe has a token kept"
    );
}
