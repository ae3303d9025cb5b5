//! Read queries behind resolution, search, timelines and the audit view. Entries are read
//! back as their canonical bytes; the lookup tables only point at them.

use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use super::identity_scan::{self, IdentityScan};
use super::log::read_entries_at;
use crate::store::issuance_search::{self, IssuanceCandidates};
use crate::store::leaf_codec::{EntryData, LeafDecoders, decode_entries};
use crate::store::{IssuanceFilter, StoreError, StoredEntry, TimelineEvent};

/// Every issuance of `jti`, whatever its issuer.
pub async fn issuances_by_jti(
    pool: &SqlitePool,
    leaves: &LeafDecoders,
    jti: &str,
) -> Result<Vec<StoredEntry>, StoreError> {
    let rows: Vec<EntryData> = sqlx::query_as(
        "SELECT e.idx, e.leaf, e.dictionary, e.leaf_hash FROM issuances i JOIN entries_with_leaf_hash e ON e.idx = i.idx WHERE i.jti = ? ORDER BY e.idx",
    )
    .bind(jti)
    .fetch_all(pool)
    .await?;
    decode_entries(leaves, rows)
}

/// The issuance of `(iss, jti)`.
pub async fn issuance(
    pool: &SqlitePool,
    leaves: &LeafDecoders,
    iss: &str,
    jti: &str,
) -> Result<Option<StoredEntry>, StoreError> {
    let row: Option<EntryData> = sqlx::query_as(
        "SELECT e.idx, e.leaf, e.dictionary, e.leaf_hash FROM issuances i JOIN issuers r ON r.id = i.issuer JOIN entries_with_leaf_hash e ON e.idx = i.idx
         WHERE i.jti = ? AND r.iss = ?",
    )
    .bind(jti)
    .bind(iss)
    .fetch_optional(pool)
    .await?;
    Ok(decode_entries(leaves, row.into_iter().collect())?.pop())
}

/// The earliest issuance of `iss` that carried `refresh_jti`, before index `before`.
pub async fn first_with_refresh(
    pool: &SqlitePool,
    leaves: &LeafDecoders,
    iss: &str,
    refresh_jti: &str,
    before: u64,
) -> Result<Option<StoredEntry>, StoreError> {
    let row: Option<EntryData> = sqlx::query_as(
        "SELECT e.idx, e.leaf, e.dictionary, e.leaf_hash FROM issuances i JOIN issuers r ON r.id = i.issuer JOIN entries_with_leaf_hash e ON e.idx = i.idx
         WHERE r.iss = ? AND i.refresh_jti = ? AND i.idx < ? ORDER BY i.idx LIMIT 1",
    )
    .bind(iss)
    .bind(refresh_jti)
    .bind(before as i64)
    .fetch_optional(pool)
    .await?;
    Ok(decode_entries(leaves, row.into_iter().collect())?.pop())
}

/// The person an identity belongs to in `vo`.
pub async fn person_of(
    pool: &SqlitePool,
    iss: &str,
    sub: &str,
    vo: &str,
) -> Result<Option<String>, StoreError> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT person_id FROM identities WHERE iss = ? AND sub = ? AND vo = ?")
            .bind(iss)
            .bind(sub)
            .bind(vo)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|r| r.0))
}

/// Every identity `(iss, sub)` of a person in `vo`, oldest first; empty if no such person.
pub async fn identities_of(
    pool: &SqlitePool,
    person: &str,
    vo: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT iss, sub FROM identities WHERE person_id = ? AND vo = ? ORDER BY created_at, iss, sub",
    )
    .bind(person)
    .bind(vo)
    .fetch_all(pool)
    .await?)
}

/// The person an identity belongs to in `vo`, with every identity of that person there
/// (as [`identities_of`]), in one query; `None` if the identity is unknown.
pub async fn person_with_identities(
    pool: &SqlitePool,
    iss: &str,
    sub: &str,
    vo: &str,
) -> Result<Option<(String, Vec<(String, String)>)>, StoreError> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT o.person_id, o.iss, o.sub FROM identities p
         JOIN identities o ON o.person_id = p.person_id AND o.vo = p.vo
         WHERE p.iss = ? AND p.sub = ? AND p.vo = ? ORDER BY o.created_at, o.iss, o.sub",
    )
    .bind(iss)
    .bind(sub)
    .bind(vo)
    .fetch_all(pool)
    .await?;
    let Some(person) = rows.first().map(|r| r.0.clone()) else {
        return Ok(None);
    };
    let identities = rows.into_iter().map(|(_, iss, sub)| (iss, sub)).collect();
    Ok(Some((person, identities)))
}

/// Issuances matching `filter`, newest first, at most `filter.limit`. The lookup tables
/// narrow by VO, identity and client; scope and time are checked on the decoded entries,
/// a page of candidates at a time.
pub async fn issuances(
    pool: &SqlitePool,
    leaves: &LeafDecoders,
    filter: &IssuanceFilter<'_>,
) -> Result<Vec<StoredEntry>, StoreError> {
    let mut candidates = match filter.identities {
        None => Candidates::InVo {
            pool,
            leaves,
            filter,
        },
        Some(identities) => {
            match IdentityScan::resolve(pool, filter.vo, identities, filter.client_id).await? {
                Some(scan) => {
                    let top = identity_scan::log_top(pool, filter.before).await?;
                    Candidates::ByIdentity {
                        pool,
                        leaves,
                        scan,
                        top,
                    }
                }
                None => return Ok(Vec::new()),
            }
        }
    };
    issuance_search::matching(filter, &mut candidates).await
}

/// The candidates of an issuance listing: by identity (the epoch index), or by VO and client.
enum Candidates<'a> {
    ByIdentity {
        pool: &'a SqlitePool,
        leaves: &'a LeafDecoders,
        scan: IdentityScan,
        top: u64,
    },
    InVo {
        pool: &'a SqlitePool,
        leaves: &'a LeafDecoders,
        filter: &'a IssuanceFilter<'a>,
    },
}

impl IssuanceCandidates for Candidates<'_> {
    async fn page(
        &mut self,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        match self {
            Candidates::ByIdentity {
                pool,
                leaves,
                scan,
                top,
            } => {
                let top = before.map_or(*top, |before| before.min(*top));
                let indexes = scan.newest(pool, top, limit).await?;
                entries_newest_first(pool, leaves, &indexes).await
            }
            Candidates::InVo {
                pool,
                leaves,
                filter,
            } => {
                let rows = vo_candidates(pool, filter, before, limit).await?;
                decode_entries(leaves, rows)
            }
        }
    }
}

/// The VOs (sorted) in which a token of client `client_id` of issuer `iss` is logged: per VO
/// that interned the client, its first issuance of that issuer (clients are interned per VO,
/// not per issuer).
pub async fn client_vos(
    pool: &SqlitePool,
    iss: &str,
    client_id: &str,
) -> Result<Vec<String>, StoreError> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT c.vo FROM clients c WHERE c.client_id = ? AND EXISTS (
           SELECT 1 FROM issuances i WHERE i.client = c.id
             AND i.issuer = (SELECT id FROM issuers WHERE iss = ?) LIMIT 1)
         ORDER BY c.vo",
    )
    .bind(client_id)
    .bind(iss)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(vo,)| vo).collect())
}

/// Up to `limit` issuances of the filter's VO (and client), below `before`, newest first:
/// the candidates of a filter without identities.
async fn vo_candidates(
    pool: &SqlitePool,
    filter: &IssuanceFilter<'_>,
    before: Option<u64>,
    limit: u32,
) -> Result<Vec<EntryData>, StoreError> {
    let mut q = QueryBuilder::<Sqlite>::new(
        "SELECT e.idx, e.leaf, e.dictionary, e.leaf_hash FROM issuances i JOIN identities d ON d.id = i.identity
         JOIN entries_with_leaf_hash e ON e.idx = i.idx WHERE d.vo = ",
    );
    q.push_bind(filter.vo.as_str());
    if let Some(client_id) = filter.client_id {
        q.push(" AND i.client = (SELECT id FROM clients WHERE vo = ")
            .push_bind(filter.vo.as_str())
            .push(" AND client_id = ")
            .push_bind(client_id)
            .push(")");
    }
    if let Some(before) = before {
        q.push(" AND i.idx < ").push_bind(before as i64);
    }
    q.push(" ORDER BY i.idx DESC LIMIT ")
        .push_bind(limit as i64);
    Ok(q.build_query_as().fetch_all(pool).await?)
}

/// The entries at `indexes` (newest first, as given), decoded.
async fn entries_newest_first(
    pool: &SqlitePool,
    leaves: &LeafDecoders,
    indexes: &[u64],
) -> Result<Vec<StoredEntry>, StoreError> {
    let mut conn = pool.acquire().await?;
    let mut entries = read_entries_at(&mut conn, leaves, indexes).await?;
    if entries.len() != indexes.len() {
        return Err(StoreError::Corrupt(format!(
            "{} of {} indexed entries are missing",
            indexes.len() - entries.len(),
            indexes.len()
        )));
    }
    entries.sort_unstable_by_key(|entry| std::cmp::Reverse(entry.0));
    Ok(entries)
}

/// Resolution entries of `vo`, newest first.
pub async fn resolutions(
    pool: &SqlitePool,
    leaves: &LeafDecoders,
    vo: &str,
    before: Option<u64>,
    limit: u32,
) -> Result<Vec<StoredEntry>, StoreError> {
    let rows: Vec<EntryData> = sqlx::query_as(
        "SELECT e.idx, e.leaf, e.dictionary, e.leaf_hash FROM resolutions r JOIN entries_with_leaf_hash e ON e.idx = r.idx
         WHERE r.vo = ? AND r.idx < ? ORDER BY r.idx DESC LIMIT ?",
    )
    .bind(vo)
    .bind(before.map_or(i64::MAX, |b| b as i64))
    .bind(limit as i64)
    .fetch_all(pool)
    .await?;
    decode_entries(leaves, rows)
}

/// The site, VO and person a pseudonym was handed out for.
pub async fn pseudonym(
    pool: &SqlitePool,
    pseudonym: &str,
) -> Result<Option<(String, String, String)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT site, vo, person_id FROM pseudonyms WHERE pseudonym = ?")
            .bind(pseudonym)
            .fetch_optional(pool)
            .await?,
    )
}

/// A person's timeline, newest first: issuances of its identities, sightings of those
/// tokens, its suspensions and their lifts, as `(kind, index, canonical bytes)`.
pub async fn timeline(
    pool: &SqlitePool,
    leaves: &LeafDecoders,
    vo: &str,
    person: &str,
    identities: &[(String, String)],
    before: Option<u64>,
    limit: u32,
) -> Result<Vec<TimelineEvent>, StoreError> {
    let Some(scan) = IdentityScan::resolve(pool, vo, identities, None).await? else {
        return Ok(Vec::new());
    };
    // One bound for both reads below: every entry under it was committed before them, so
    // they see the same log.
    let top = identity_scan::log_top(pool, before).await?;
    let mut events: Vec<(String, u64)> = scan
        .newest(pool, top, limit)
        .await?
        .into_iter()
        .map(|index| ("issuance".to_string(), index))
        .collect();
    let mut q = QueryBuilder::<Sqlite>::new(
        "SELECT t.kind, t.idx FROM (SELECT 'sighting' AS kind, s.idx AS idx FROM sightings s
         WHERE s.vo = ",
    );
    q.push_bind(vo).push(" AND s.identity IN ");
    scan.push_identities(&mut q);
    q.push(" UNION ALL SELECT 'suspension', idx FROM suspensions WHERE person_id = ")
        .push_bind(person)
        .push(" AND vo = ")
        .push_bind(vo);
    q.push(" UNION ALL SELECT 'lift', lift_idx FROM suspensions WHERE lift_idx IS NOT NULL AND person_id = ")
        .push_bind(person)
        .push(" AND vo = ")
        .push_bind(vo);
    q.push(") t WHERE t.idx < ")
        .push_bind(top as i64)
        .push(" ORDER BY t.idx DESC LIMIT ")
        .push_bind(limit as i64);
    let others: Vec<(String, i64)> = q.build_query_as().fetch_all(pool).await?;
    events.extend(others.into_iter().map(|(kind, index)| (kind, index as u64)));
    events.sort_unstable_by_key(|event| std::cmp::Reverse(event.1));
    events.truncate(limit as usize);
    let indexes: Vec<u64> = events.iter().map(|event| event.1).collect();
    let entries = entries_newest_first(pool, leaves, &indexes).await?;
    Ok(events
        .into_iter()
        .zip(entries)
        .map(|((kind, index), (_, bytes))| (kind, index, bytes))
        .collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::json;
    use tokenledger_core::entry::{EntryBody, Issuance, LogEntry, ReportContext, Source};
    use tokenledger_core::note::NoteSigner;

    use tokenledger_core::ids::Vo;

    use super::*;
    use crate::clock::SystemClock;
    use crate::metrics::Metrics;
    use crate::sequencer::{BatchLimits, EntryKind, PreparedEntry, Sequencer};
    use crate::store::IssuanceKey;
    use crate::store::sqlite::{SqliteWriter, connection};

    const ISS: &str = "https://iam.example.org/";

    fn issuance(i: u64, scope: &str, sub: &str) -> PreparedEntry {
        issuance_of(i, ISS, "atlas", scope, sub)
    }

    /// The `i`-th issuance, of client `rucio` of `iss`, logged in `vo`.
    fn issuance_of(i: u64, iss: &str, vo: &str, scope: &str, sub: &str) -> PreparedEntry {
        let claims = json!({
            "iss": iss, "jti": format!("jti-{i}"), "sub": sub,
            "client_id": "rucio", "scope": scope, "iat": 1_700_000_000 + i as i64,
        });
        let ctx = ReportContext {
            source: Source::Claims,
            vo: vo.into(),
            grant_type: None,
            parent_jti: None,
            refresh_jti: None,
            token_sha256: None,
            feed: None,
        };
        let serde_json::Value::Object(claims) = claims else {
            unreachable!()
        };
        let issuance = Issuance::from_claims(claims, ctx).unwrap();
        let key = IssuanceKey::of(&issuance);
        let logged_at = (1_700_000_000 + i as i64) * 1_000_000;
        PreparedEntry::new(
            logged_at,
            EntryBody::Issuance(Box::new(issuance)),
            EntryKind::Issuance(key),
        )
        .unwrap()
    }

    /// 1,300 issuances through the real sequencer (stored compressed once the dictionary
    /// trained on the first 1,000 is ready) of `user-0` to `user-2` in turn; every 400th
    /// carries the scope `rare`.
    async fn logged() -> (tempfile::TempDir, SqlitePool, Arc<LeafDecoders>) {
        let scope = |i: u64| {
            if i % 400 == 7 {
                "rare common"
            } else {
                "common"
            }
        };
        logged_with(1300, |i| issuance(i, scope(i), &format!("user-{}", i % 3))).await
    }

    /// `n` entries through the real sequencer, built by `entry`.
    async fn logged_with(
        n: u64,
        entry: impl Fn(u64) -> PreparedEntry,
    ) -> (tempfile::TempDir, SqlitePool, Arc<LeafDecoders>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let pool = connection::open(&path).await.unwrap();
        let decoders = Arc::new(LeafDecoders::default());
        let writer = SqliteWriter::open(&path, decoders.clone(), 1000)
            .await
            .unwrap();
        let (sequencer, task) = Sequencer::start(
            Box::new(writer),
            NoteSigner::from_seed("test/log", [3; 32]).unwrap(),
            "test/log".into(),
            BatchLimits {
                max_batch: 1000,
                max_wait: Duration::ZERO,
                queue_depth: 8,
            },
            Arc::new(Metrics::default()),
            Arc::new(SystemClock),
        )
        .await
        .unwrap();
        for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
            let entries = chunk.iter().map(|&i| entry(i)).collect();
            sequencer.append(entries).await.unwrap();
        }
        drop(sequencer);
        task.await.unwrap();
        (dir, pool, decoders)
    }

    /// A client is found by its issuer, not among its newest tokens: 200 newer tokens of the
    /// same client id from another issuer in the same VO hide nothing, and a VO is named only
    /// for the issuer's own tokens.
    #[tokio::test]
    async fn a_clients_vos_are_those_of_its_issuers_tokens() {
        const OTHER: &str = "https://other.example/";
        let (_dir, pool, _) = logged_with(203, |i| {
            let (iss, vo) = match i {
                0 => (ISS, "atlas"),
                1 => (ISS, "cms"),
                2 => (OTHER, "lhcb"),
                _ => (OTHER, "atlas"),
            };
            issuance_of(i, iss, vo, "common", "user-0")
        })
        .await;
        let vos = |iss: &'static str, client: &'static str| {
            let pool = pool.clone();
            async move { client_vos(&pool, iss, client).await.unwrap() }
        };
        assert_eq!(vos(ISS, "rucio").await, ["atlas", "cms"]);
        assert_eq!(vos(OTHER, "rucio").await, ["atlas", "lhcb"]);
        assert!(vos(ISS, "fts").await.is_empty());
        assert!(vos("https://none.example/", "rucio").await.is_empty());
    }

    #[tokio::test]
    async fn scope_and_time_filters_page_through_decoded_entries() {
        let (_dir, pool, leaves) = logged().await;
        let atlas = Vo::unchecked("atlas");
        let filter = IssuanceFilter {
            vo: &atlas,
            scope: Some("rare"),
            limit: 10,
            ..IssuanceFilter::in_vo(&atlas)
        };
        let found: Vec<u64> = issuances(&pool, &leaves, &filter)
            .await
            .unwrap()
            .into_iter()
            .map(|(index, _)| index)
            .collect();
        assert_eq!(
            found,
            vec![1207, 807, 407, 7],
            "across pages of 500, newest first"
        );

        let limited = IssuanceFilter { limit: 2, ..filter };
        let two = issuances(&pool, &leaves, &limited).await.unwrap();
        assert_eq!(two.iter().map(|e| e.0).collect::<Vec<_>>(), vec![1207, 807]);
        let next = IssuanceFilter {
            before: Some(807),
            ..limited
        };
        let rest = issuances(&pool, &leaves, &next).await.unwrap();
        assert_eq!(rest.iter().map(|e| e.0).collect::<Vec<_>>(), vec![407, 7]);

        let window = IssuanceFilter {
            vo: &atlas,
            from: Some(1_700_000_100),
            to: Some(1_700_000_103),
            limit: 100,
            ..IssuanceFilter::in_vo(&atlas)
        };
        let found = issuances(&pool, &leaves, &window).await.unwrap();
        assert_eq!(
            found.iter().map(|e| e.0).collect::<Vec<_>>(),
            vec![102, 101, 100]
        );
        let person = IssuanceFilter {
            identities: Some(&[(ISS.to_string(), "user-1".to_string())]),
            ..window
        };
        let found = issuances(&pool, &leaves, &person).await.unwrap();
        assert_eq!(found.iter().map(|e| e.0).collect::<Vec<_>>(), vec![100]);
    }

    /// 9,000 issuances span epochs 0 to 2 of the identity index: `user-rare`'s three are
    /// found across windows, newest first, and paged with `before`.
    #[tokio::test]
    async fn identity_searches_and_timelines_cross_epochs() {
        const RARE: [u64; 3] = [10, 5_000, 8_500];
        let sub = |i: u64| {
            if RARE.contains(&i) {
                "user-rare".to_string()
            } else {
                format!("user-{}", i % 2)
            }
        };
        let (_dir, pool, leaves) = logged_with(9_000, |i| issuance(i, "common", &sub(i))).await;
        let rare = [(ISS.to_string(), "user-rare".to_string())];
        let atlas = Vo::unchecked("atlas");
        let search = |before: Option<u64>, limit: u32| IssuanceFilter {
            vo: &atlas,
            identities: Some(&rare),
            before,
            limit,
            ..IssuanceFilter::in_vo(&atlas)
        };
        let indexes = |found: Vec<StoredEntry>| found.into_iter().map(|e| e.0).collect::<Vec<_>>();

        let all = issuances(&pool, &leaves, &search(None, 10)).await.unwrap();
        assert_eq!(indexes(all), vec![8_500, 5_000, 10]);
        let first = issuances(&pool, &leaves, &search(None, 2)).await.unwrap();
        assert_eq!(indexes(first), vec![8_500, 5_000]);
        let rest = issuances(&pool, &leaves, &search(Some(5_000), 2))
            .await
            .unwrap();
        assert_eq!(indexes(rest), vec![10]);
        let beyond = issuances(&pool, &leaves, &search(Some(u64::MAX), 10))
            .await
            .unwrap();
        assert_eq!(
            indexes(beyond),
            vec![8_500, 5_000, 10],
            "a `before` past the log starts at its newest epoch"
        );

        let frequent = [(ISS.to_string(), "user-1".to_string())];
        let newest = IssuanceFilter {
            identities: Some(&frequent),
            client_id: Some("rucio"),
            ..search(Some(8_999), 3)
        };
        let found = issuances(&pool, &leaves, &newest).await.unwrap();
        assert_eq!(indexes(found), vec![8_997, 8_995, 8_993]);
        let elsewhere = IssuanceFilter {
            client_id: Some("not-a-client"),
            ..newest
        };
        assert!(
            issuances(&pool, &leaves, &elsewhere)
                .await
                .unwrap()
                .is_empty()
        );

        let events = timeline(&pool, &leaves, "atlas", "unused", &rare, Some(u64::MAX), 10)
            .await
            .unwrap();
        let kinds: Vec<(&str, u64)> = events.iter().map(|e| (e.0.as_str(), e.1)).collect();
        assert_eq!(
            kinds,
            vec![("issuance", 8_500), ("issuance", 5_000), ("issuance", 10)]
        );
        let leaf = LogEntry::from_canonical_bytes(&events[1].2).unwrap();
        let EntryBody::Issuance(issuance) = leaf.body else {
            panic!("an issuance entry")
        };
        assert_eq!(
            (issuance.jti.as_str(), issuance.sub.as_str()),
            ("jti-5000", "user-rare")
        );
    }
}
