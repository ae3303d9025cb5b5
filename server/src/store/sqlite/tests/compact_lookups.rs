//! The compact lookup tables (migration 0004): a database written in the old layout keeps
//! every lookup answer once migrated, and the sequencer still finds duplicates and interns
//! issuers, identities and clients once.

use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use serde_json::{Map, json};
use sqlx::{ConnectOptions, Connection, SqlitePool};
use tokenledger_core::entry::{EntryBody, Issuance, ReportContext, Source};
use tokenledger_core::ids::{PersonId, Vo};
use tokenledger_core::merkle::{Frontier, leaf_hash};
use tokenledger_core::note::NoteSigner;
use tokenledger_core::wire::AppendStatus;

use crate::clock::SystemClock;
use crate::metrics::Metrics;
use crate::preconditions::Refusal;
use crate::sequencer::{AppendError, BatchLimits, EntryKind, PreparedEntry, Sequenced, Sequencer};
use crate::store::ids::{IdCache, NewIds};
use crate::store::leaf_codec::{EntryRow, LeafDecoders, StoredLeaf};
use crate::store::sqlite::connection;
use crate::store::sqlite::log;
use crate::store::sqlite::script::SqlScript;
use crate::store::sqlite::{SqliteStore, SqliteWriter, lookup};
use crate::store::{
    IssuanceFilter, IssuanceKey, IssuanceRow, LedgerReader, StateChange, StoreError,
    decode_issuance,
};

const A: &str = "https://a.example/";
const B: &str = "https://b.example/";
const C: &str = "https://c.example/";

/// A token as the tests report it.
struct Token {
    jti: &'static str,
    iss: &'static str,
    sub: &'static str,
    vo: &'static str,
    client_id: Option<&'static str>,
    refresh_jti: Option<&'static str>,
}

impl Token {
    fn issuance(&self) -> Issuance {
        let mut claims = Map::new();
        for (name, value) in [
            ("jti", Some(self.jti)),
            ("iss", Some(self.iss)),
            ("sub", Some(self.sub)),
            ("client_id", self.client_id),
        ] {
            if let Some(value) = value {
                claims.insert(name.into(), json!(value));
            }
        }
        let ctx = ReportContext {
            source: Source::Claims,
            vo: self.vo.into(),
            grant_type: None,
            parent_jti: None,
            refresh_jti: self.refresh_jti.map(String::from),
            token_sha256: None,
            feed: None,
        };
        Issuance::from_claims(claims, ctx).unwrap()
    }

    /// The prepared entry the API would hand the sequencer.
    fn prepared(&self, logged_at: i64) -> PreparedEntry {
        let issuance = self.issuance();
        let key = IssuanceKey::of(&issuance);
        PreparedEntry::new(
            logged_at,
            EntryBody::Issuance(Box::new(issuance)),
            EntryKind::Issuance(key),
        )
        .unwrap()
    }
}

fn token(
    jti: &'static str,
    iss: &'static str,
    sub: &'static str,
    vo: &'static str,
    client_id: Option<&'static str>,
    refresh_jti: Option<&'static str>,
) -> Token {
    Token {
        jti,
        iss,
        sub,
        vo,
        client_id,
        refresh_jti,
    }
}

/// Issuances 0..6 of the old-layout database; entry 6 is a sighting of token 0.
fn old_tokens() -> Vec<Token> {
    vec![
        token("j1", A, "alice", "atlas", Some("c1"), None),
        token("j2", B, "bob", "cms", None, Some("r1")),
        token("j3", A, "alice", "cms", Some("c1"), Some("r1")),
        token("j1", B, "bob", "cms", Some("c2"), None),
        token("j4", B, "alice2", "atlas", Some("c1"), Some("r2")),
        token("j5", A, "alice", "atlas", None, Some("r2")),
    ]
}

/// (iss, sub, vo, person, created_at) of the old-layout database: pe-1 has two identities.
const OLD_IDENTITIES: [(&str, &str, &str, &str, i64); 4] = [
    (A, "alice", "atlas", "pe-1", 20),
    (B, "bob", "cms", "pe-2", 10),
    (A, "alice", "cms", "pe-3", 30),
    (B, "alice2", "atlas", "pe-1", 40),
];

/// A database at migration 0002, before the compact lookup tables.
async fn old_database(path: &Path) -> SqlitePool {
    super::database_at_migration(path, 2).await
}

/// Writes `tokens` (logged at 1000, 1001...) and a sighting of the first one as entries 0..
/// in the old layout, with their stored hashes, and the identities of `identities`.
async fn write_old_log(
    pool: &SqlitePool,
    tokens: &[Token],
    identities: &[(&str, &str, &str, &str, i64)],
) {
    let mut leaves: Vec<Vec<u8>> = (1_000..)
        .zip(tokens)
        .map(|(logged_at, t)| t.prepared(logged_at).leaf)
        .collect();
    leaves.push(b"a sighting stands in here".to_vec());
    let mut frontier = Frontier::new();
    for (index, leaf) in leaves.iter().enumerate() {
        sqlx::query("INSERT INTO entries (idx, leaf) VALUES (?, ?)")
            .bind(index as i64)
            .bind(leaf)
            .execute(pool)
            .await
            .unwrap();
        for (idx, hash) in frontier.append(leaf_hash(leaf)) {
            sqlx::query("INSERT INTO hashes (idx, hash) VALUES (?, ?)")
                .bind(idx as i64)
                .bind(hash.0.to_vec())
                .execute(pool)
                .await
                .unwrap();
        }
    }
    for (index, t) in tokens.iter().enumerate() {
        sqlx::query(
            "INSERT INTO issuances (idx, jti, iss, sub, vo, client_id, refresh_jti)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(index as i64)
        .bind(t.jti)
        .bind(t.iss)
        .bind(t.sub)
        .bind(t.vo)
        .bind(t.client_id)
        .bind(t.refresh_jti)
        .execute(pool)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO sightings (idx, site, vo, iss, jti) VALUES (?, 'S', 'atlas', ?, 'j1')",
    )
    .bind(tokens.len() as i64)
    .bind(A)
    .execute(pool)
    .await
    .unwrap();
    for (iss, sub, vo, person, created_at) in identities {
        sqlx::query(
            "INSERT INTO identities (iss, sub, vo, person_id, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(iss)
        .bind(sub)
        .bind(vo)
        .bind(person)
        .bind(created_at)
        .execute(pool)
        .await
        .unwrap();
    }
}

fn indexes(rows: Vec<(u64, Vec<u8>)>) -> Vec<u64> {
    rows.into_iter().map(|(index, _)| index).collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(iss, sub)| (iss.to_string(), sub.to_string()))
        .collect()
}

/// A filter of nothing but its VO, which [`search`] sets.
fn unfiltered() -> IssuanceFilter<'static> {
    static SET_BY_SEARCH: LazyLock<Vo> = LazyLock::new(|| Vo::unchecked("set-by-search"));
    IssuanceFilter::in_vo(&SET_BY_SEARCH)
}

async fn search(pool: &SqlitePool, vo: &str, filter: IssuanceFilter<'_>) -> Vec<u64> {
    let vo = Vo::unchecked(vo);
    let filter = IssuanceFilter {
        vo: &vo,
        limit: 100,
        ..filter
    };
    indexes(lookup::issuances(pool, raw(), &filter).await.unwrap())
}

/// Decoders for leaves stored raw, as every leaf of these tests is.
fn raw() -> &'static LeafDecoders {
    static RAW: std::sync::OnceLock<LeafDecoders> = std::sync::OnceLock::new();
    RAW.get_or_init(LeafDecoders::default)
}

async fn count(pool: &SqlitePool, table: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(pool)
        .await
        .unwrap();
    n
}

#[tokio::test]
async fn migration_keeps_every_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let pool = old_database(&dir.path().join("t.db")).await;
    let tokens = old_tokens();
    write_old_log(&pool, &tokens, &OLD_IDENTITIES).await;
    connection::MIGRATOR.run(&pool).await.unwrap();

    assert_eq!(count(&pool, "issuances").await, 6);
    assert_eq!(count(&pool, "issuers").await, 2);
    assert_eq!(
        count(&pool, "clients").await,
        3,
        "c1 of atlas, c1 and c2 of cms"
    );
    let ids: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT id, sub, vo FROM identities ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let in_order = |list: &[(i64, &str, &str)]| {
        list.iter()
            .map(|(id, sub, vo)| (*id, sub.to_string(), vo.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids,
        in_order(&[
            (1, "bob", "cms"),
            (2, "alice", "atlas"),
            (3, "alice", "cms"),
            (4, "alice2", "atlas")
        ]),
        "ids in order of created_at"
    );

    let by_jti = lookup::issuances_by_jti(&pool, raw(), "j1").await.unwrap();
    assert_eq!(indexes(by_jti.clone()), [0, 3]);
    let (_, leaf) = &by_jti[0];
    assert_eq!(decode_issuance(0, leaf).unwrap(), tokens[0].issuance());
    let one = |iss, jti| lookup::issuance(&pool, raw(), iss, jti);
    assert_eq!(one(A, "j1").await.unwrap().map(|e| e.0), Some(0));
    assert_eq!(one(B, "j1").await.unwrap().map(|e| e.0), Some(3));
    assert_eq!(one(A, "j2").await.unwrap(), None);

    let refresh = |iss, jti, before| lookup::first_with_refresh(&pool, raw(), iss, jti, before);
    assert_eq!(refresh(B, "r1", 10).await.unwrap().map(|e| e.0), Some(1));
    assert_eq!(refresh(A, "r1", 10).await.unwrap().map(|e| e.0), Some(2));
    assert_eq!(refresh(A, "r1", 2).await.unwrap(), None);
    assert_eq!(refresh(B, "r2", 10).await.unwrap().map(|e| e.0), Some(4));
    assert_eq!(refresh(A, "r2", 10).await.unwrap().map(|e| e.0), Some(5));

    let person = |iss, sub, vo| lookup::person_of(&pool, iss, sub, vo);
    assert_eq!(person(A, "alice", "atlas").await.unwrap().unwrap(), "pe-1");
    assert_eq!(person(B, "alice2", "atlas").await.unwrap().unwrap(), "pe-1");
    assert_eq!(person(A, "alice", "cms").await.unwrap().unwrap(), "pe-3");
    assert_eq!(person(A, "bob", "cms").await.unwrap(), None);
    let pe1 = lookup::identities_of(&pool, "pe-1", "atlas").await.unwrap();
    assert_eq!(pe1, pairs(&[(A, "alice"), (B, "alice2")]));
    let with_identities = |iss, sub, vo| lookup::person_with_identities(&pool, iss, sub, vo);
    assert_eq!(
        with_identities(B, "alice2", "atlas").await.unwrap(),
        Some(("pe-1".to_string(), pe1.clone()))
    );
    assert_eq!(
        with_identities(A, "alice", "cms").await.unwrap(),
        Some(("pe-3".to_string(), pairs(&[(A, "alice")])))
    );
    assert_eq!(with_identities(A, "bob", "cms").await.unwrap(), None);

    assert_eq!(search(&pool, "atlas", unfiltered()).await, [5, 4, 0]);
    assert_eq!(search(&pool, "cms", unfiltered()).await, [3, 2, 1]);
    let by_person = IssuanceFilter {
        identities: Some(&pe1),
        ..unfiltered()
    };
    assert_eq!(search(&pool, "atlas", by_person).await, [5, 4, 0]);
    let alice = pairs(&[(A, "alice")]);
    let by_alice = |before| IssuanceFilter {
        identities: Some(&alice),
        before,
        ..unfiltered()
    };
    assert_eq!(search(&pool, "atlas", by_alice(None)).await, [5, 0]);
    assert_eq!(search(&pool, "cms", by_alice(None)).await, [2]);
    assert_eq!(search(&pool, "atlas", by_alice(Some(5))).await, [0]);
    let by_client = |client_id| IssuanceFilter {
        client_id: Some(client_id),
        ..unfiltered()
    };
    assert_eq!(search(&pool, "atlas", by_client("c1")).await, [4, 0]);
    assert_eq!(search(&pool, "cms", by_client("c1")).await, [2]);
    assert_eq!(search(&pool, "cms", by_client("c2")).await, [3]);
    assert!(search(&pool, "atlas", by_client("c2")).await.is_empty());

    let timeline = lookup::timeline(&pool, raw(), "atlas", "pe-1", &pe1, None, 100)
        .await
        .unwrap();
    let kinds: Vec<(&str, u64)> = timeline
        .iter()
        .map(|(kind, index, _)| (kind.as_str(), *index))
        .collect();
    assert_eq!(
        kinds,
        [
            ("sighting", 6),
            ("issuance", 5),
            ("issuance", 4),
            ("issuance", 0)
        ]
    );
}

#[tokio::test]
async fn migration_refuses_an_issuance_without_its_identity() {
    let dir = tempfile::tempdir().unwrap();
    let pool = old_database(&dir.path().join("t.db")).await;
    write_old_log(&pool, &old_tokens(), &OLD_IDENTITIES[..3]).await;
    let error = connection::MIGRATOR
        .run(&pool)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("NOT NULL"), "{error}");
    let (columns,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM pragma_table_info('issuances') WHERE name = 'sub'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(columns, 1, "the old layout is left as it was");
    assert_eq!(count(&pool, "issuances").await, 6);
}

async fn start_sequencer(path: &Path) -> (Sequencer, tokio::task::JoinHandle<()>) {
    start_sequencer_with(path, Arc::new(Metrics::default())).await
}

async fn start_sequencer_with(
    path: &Path,
    metrics: Arc<Metrics>,
) -> (Sequencer, tokio::task::JoinHandle<()>) {
    let limits = BatchLimits {
        max_batch: 100,
        max_wait: Duration::ZERO,
        queue_depth: 16,
    };
    Sequencer::start(
        Box::new(
            SqliteWriter::open(path, Default::default(), 0)
                .await
                .unwrap(),
        ),
        NoteSigner::from_seed("test.example/log", [7; 32]).unwrap(),
        "test.example/log".into(),
        limits,
        metrics,
        Arc::new(SystemClock),
    )
    .await
    .unwrap()
}

fn statuses(answers: &[Sequenced]) -> Vec<(u64, AppendStatus)> {
    answers.iter().map(|s| (s.index, s.status)).collect()
}

#[tokio::test]
async fn the_sequencer_appends_to_a_migrated_log_and_finds_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let pool = old_database(&path).await;
    write_old_log(&pool, &old_tokens(), &OLD_IDENTITIES).await;
    connection::MIGRATOR.run(&pool).await.unwrap();
    let (sequencer, task) = start_sequencer(&path).await;

    let again = old_tokens().remove(0).prepared(5_000);
    let fresh = token("j6", A, "alice", "atlas", Some("c1"), None).prepared(5_001);
    let answers = sequencer.append(vec![again, fresh]).await.unwrap();
    assert_eq!(
        statuses(&answers),
        [(0, AppendStatus::Duplicate), (7, AppendStatus::Created)]
    );
    assert_eq!(answers[0].logged_at, 1_000, "the first report's logged_at");
    assert_eq!(count(&pool, "issuers").await, 2);
    assert_eq!(count(&pool, "clients").await, 3);
    assert_eq!(count(&pool, "identities").await, 4);
    let pe1 = pairs(&[(A, "alice"), (B, "alice2")]);
    let by_person = IssuanceFilter {
        identities: Some(&pe1),
        ..unfiltered()
    };
    assert_eq!(search(&pool, "atlas", by_person).await, [7, 5, 4, 0]);

    let carol = || token("j7", C, "carol", "atlas", Some("c3"), None);
    let same_jti = token("j7", A, "alice", "atlas", None, None);
    let answers = sequencer
        .append(vec![
            carol().prepared(6_000),
            carol().prepared(6_001),
            same_jti.prepared(6_002),
        ])
        .await
        .unwrap();
    assert_eq!(
        statuses(&answers),
        [
            (8, AppendStatus::Created),
            (8, AppendStatus::Duplicate),
            (9, AppendStatus::Created)
        ]
    );
    assert_eq!(count(&pool, "issuers").await, 3);
    assert_eq!(count(&pool, "clients").await, 4);
    assert_eq!(count(&pool, "identities").await, 5);
    let carol_person = lookup::person_of(&pool, C, "carol", "atlas")
        .await
        .unwrap()
        .unwrap();
    assert!(carol_person.starts_with("pe-"));
    assert_eq!(
        indexes(lookup::issuances_by_jti(&pool, raw(), "j7").await.unwrap()),
        [8, 9]
    );
    let answers = sequencer
        .append(vec![carol().prepared(7_000)])
        .await
        .unwrap();
    assert_eq!(statuses(&answers), [(8, AppendStatus::Duplicate)]);
    assert_eq!(answers[0].logged_at, 6_000);

    let change = |stand_in: &[u8], change| PreparedEntry {
        leaf: stand_in.to_vec(),
        leaf_hash: leaf_hash(stand_in),
        logged_at: 8_000,
        kind: EntryKind::State(change),
    };
    let link = change(
        b"a link stands in here",
        StateChange::Link {
            vo: Vo::unchecked("atlas"),
            person_id: PersonId::unchecked("pe-1"),
            iss: C.into(),
            sub: "carol".into(),
            created_at: 8_000,
        },
    );
    let refused = sequencer.append(vec![link]).await.unwrap_err();
    assert!(
        matches!(refused, AppendError::Refused(Refusal::IdentityOfAnother)),
        "{refused:?}"
    );
    let merge = change(
        b"a merge stands in here",
        StateChange::Merge {
            vo: Vo::unchecked("atlas"),
            into: PersonId::unchecked("pe-1"),
            from: PersonId::unchecked(carol_person),
        },
    );
    sequencer.append(vec![merge]).await.unwrap();
    let carol_ids: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, person_id FROM identities WHERE sub = 'carol'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(carol_ids, [(5, "pe-1".to_string())], "same id, new person");
    drop(sequencer);
    task.await.unwrap();
}

/// The rows `push_batch` writes for issuances `keys` at indexes `first..`, in `tx`.
async fn insert_issuances(
    tx: &mut sqlx::SqliteConnection,
    cache: &IdCache,
    first: u64,
    keys: &[IssuanceKey],
) -> Result<NewIds, StoreError> {
    let leaf = StoredLeaf {
        dictionary: None,
        bytes: b"leaf".to_vec(),
    };
    let entries: Vec<EntryRow> = (0..keys.len())
        .map(|n| EntryRow {
            index: first + n as u64,
            leaf: &leaf,
        })
        .collect();
    let issuances: Vec<IssuanceRow> = keys
        .iter()
        .enumerate()
        .map(|(n, key)| IssuanceRow {
            index: first + n as u64,
            key,
            logged_at: 1_000,
        })
        .collect();
    let mut script = SqlScript::new();
    let new = log::push_batch(tx, &mut script, cache, &entries, &[], &issuances).await?;
    script.flush(tx).await?;
    Ok(new)
}

/// The (jti, iss, sub, vo, client_id) of every issuance row, through its ids.
async fn issuances_through_ids(
    pool: &SqlitePool,
) -> Vec<(String, String, String, String, Option<String>)> {
    sqlx::query_as(
        "SELECT i.jti, r.iss, d.sub, d.vo, c.client_id FROM issuances i
         JOIN issuers r ON r.id = i.issuer JOIN identities d ON d.id = i.identity
         LEFT JOIN clients c ON c.id = i.client ORDER BY i.idx",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_writer_caches_only_ids_of_committed_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let pool = connection::open(&path).await.unwrap();
    let mut conn = connection::connect_options(&path).connect().await.unwrap();
    let key = |jti, iss, sub, client| {
        IssuanceKey::of(&token(jti, iss, sub, "atlas", client, None).issuance())
    };
    let mut cache = IdCache::default();

    // Alice's issuer, identity and client get ids in a transaction that rolls back: the
    // caller does not remember them, and bob takes those ids next.
    let mut tx = conn.begin().await.unwrap();
    let lost = insert_issuances(&mut tx, &cache, 0, &[key("j0", A, "alice", Some("c-a"))]).await;
    drop(lost.unwrap());
    tx.rollback().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    let new = insert_issuances(&mut tx, &cache, 0, &[key("j1", B, "bob", Some("c-b"))]).await;
    tx.commit().await.unwrap();
    cache.remember(new.unwrap());

    // Then alice for real, and both again, partly from the cache.
    for (first, keys) in [
        (1, vec![key("j2", A, "alice", Some("c-a"))]),
        (
            2,
            vec![
                key("j3", B, "bob", Some("c-b")),
                key("j4", A, "alice", Some("c-a")),
                key("j5", A, "bob", None),
            ],
        ),
    ] {
        let mut tx = conn.begin().await.unwrap();
        let new = insert_issuances(&mut tx, &cache, first, &keys)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        cache.remember(new);
    }

    let row = |jti: &str, iss: &str, sub: &str, client: Option<&str>| {
        (
            jti.to_string(),
            iss.to_string(),
            sub.to_string(),
            "atlas".to_string(),
            client.map(String::from),
        )
    };
    assert_eq!(
        issuances_through_ids(&pool).await,
        [
            row("j1", B, "bob", Some("c-b")),
            row("j2", A, "alice", Some("c-a")),
            row("j3", B, "bob", Some("c-b")),
            row("j4", A, "alice", Some("c-a")),
            row("j5", A, "bob", None),
        ]
    );
    let identities: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM identities")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(identities.0, 3, "bob at B, alice at A, bob at A");
}

#[tokio::test]
async fn a_batch_meeting_a_logged_report_is_written_again_with_the_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let pool = connection::open(&path).await.unwrap();
    let metrics = Arc::new(Metrics::default());
    let (sequencer, task) = start_sequencer_with(&path, metrics.clone()).await;
    let report = |jti| token(jti, A, "alice", "atlas", None, None).prepared(1_000);
    let rewritten = || {
        let text = metrics.render();
        let line = text
            .lines()
            .find(|l| l.starts_with("tokenledger_batches_rewritten_total "))
            .unwrap()
            .to_string();
        line.rsplit(' ').next().unwrap().parse::<u64>().unwrap()
    };

    for (batch, expected, rewrites) in [
        (vec!["j1"], vec![(0, AppendStatus::Created)], 0),
        (vec!["j2"], vec![(1, AppendStatus::Created)], 0),
        // j1 is logged: the unique index refuses the first attempt, nothing of it stays.
        (
            vec!["j3", "j1", "j3"],
            vec![
                (2, AppendStatus::Created),
                (0, AppendStatus::Duplicate),
                (2, AppendStatus::Duplicate),
            ],
            1,
        ),
        // After a batch with a logged report the next one looks its keys up first.
        (
            vec!["j2", "j4"],
            vec![(1, AppendStatus::Duplicate), (3, AppendStatus::Created)],
            1,
        ),
        (vec!["j4"], vec![(3, AppendStatus::Duplicate)], 1),
        (vec!["j5"], vec![(4, AppendStatus::Created)], 1),
    ] {
        let answers = sequencer
            .append(batch.into_iter().map(report).collect())
            .await
            .unwrap();
        assert_eq!(statuses(&answers), expected);
        assert_eq!(rewritten(), rewrites);
    }
    assert_eq!(count(&pool, "entries").await, 5);
    assert_eq!(count(&pool, "issuances").await, 5);
    assert_eq!(sequencer.head().size, 5);
    let stored = SqliteStore::over(pool.clone()).frontier(5).await.unwrap();
    assert_eq!(
        stored.root(),
        sequencer.head().root,
        "stored hashes match the head"
    );
    drop(sequencer);
    task.await.unwrap();
}
