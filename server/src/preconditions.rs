//! The sequencer's decision step: whether each state change of a batch still applies to the
//! state as of its place in the batch. Handlers read state to validate and authorize a
//! request, but two requests can both read the same state before either is written; only the
//! writer sees every change in order, so only it decides.
//!
//! What each [`StateChange`] depends on:
//! - `Suspend`: its person has an identity in the VO and was not merged away (a merge moves
//!   suspensions, so one written after the merge would stay with a person without identities
//!   and block nobody).
//! - `Lift`: the suspension exists and is not lifted.
//! - `Link`: the person has an identity in the VO and was not merged away; the identity
//!   belongs to no person (or to this one: then the link is in effect already).
//! - `Merge`: two distinct persons, each with an identity in the VO, neither merged away.
//! - `Sighting` and `None` (site key fetches) depend on nothing that changes: a sighting names
//!   a logged issuance, and issuances are never removed.
//!
//! The writer reads the rows a batch's changes name on its own connection just before the
//! batch's transaction (it is the only writer of these tables, so nothing changes them in
//! between), then decides the changes in batch order against those rows plus the effects of
//! the changes admitted before: suspensions lifted, identities linked and persons merged
//! earlier in the same batch.

use std::collections::{BTreeSet, HashMap, HashSet};

use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::log_store::{CHUNK, StateChange, StoreError};

/// Why a state change was not written. Messages name persons: they are for the VO's
/// security officers; a site's caller must be answered in other words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No identity of the person in the VO, and no record of a merge.
    #[error("no person `{person}` in VO `{vo}`")]
    UnknownPerson { vo: String, person: String },
    /// The person was merged into another and has no identity left.
    #[error("person `{person}` was merged into `{into}`")]
    MergedAway { person: String, into: String },
    #[error("a person cannot be merged into itself")]
    SelfMerge,
    #[error("this identity belongs to another person: merge the two")]
    IdentityOfAnother,
    #[error("no suspension `{id}`")]
    UnknownSuspension { id: String },
    #[error("suspension {id} is already lifted")]
    AlreadyLifted { id: String },
    /// The change holds already (a link of an identity to the person it belongs to).
    #[error("the change is in effect already")]
    InEffect,
}

impl Refusal {
    /// The refusal names something that does not exist (404), rather than a change that no
    /// longer applies (409).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Refusal::UnknownPerson { .. } | Refusal::UnknownSuspension { .. }
        )
    }
}

/// Decides the state changes of each job of a batch, in batch order: a job's changes are
/// admitted together, and their effects then count for the jobs after it, or the job is
/// refused whole and has no effect. A job without state changes is admitted.
pub async fn decide(
    conn: &mut SqliteConnection,
    jobs: &[Vec<&StateChange>],
) -> Result<Vec<Result<(), Refusal>>, StoreError> {
    let mut state = BatchState::load(conn, jobs.iter().flatten().copied()).await?;
    Ok(jobs
        .iter()
        .map(|changes| state.admit_job(changes))
        .collect())
}

/// A person: (VO, person id).
type PersonKey = (String, String);
/// An identity: (iss, sub, VO).
type IdentityKey = (String, String, String);

/// The state a batch's changes are decided against: the rows they name as the database held
/// them before the batch, updated by each change admitted so far.
#[derive(Clone, Debug, Default)]
struct BatchState {
    /// Suspensions named by lifts: whether each is lifted.
    lifted: HashMap<String, bool>,
    /// Persons named by the batch that have an identity in their VO.
    live: HashSet<PersonKey>,
    /// Persons named by the batch that were merged away, with the person they went to.
    merged: HashMap<PersonKey, String>,
    /// Identities named by links, with the person each belongs to.
    owners: HashMap<IdentityKey, String>,
}

impl BatchState {
    /// Reads the rows `changes` name: each by an index of the columns it is asked by.
    async fn load<'c>(
        conn: &mut SqliteConnection,
        changes: impl Iterator<Item = &'c StateChange>,
    ) -> Result<BatchState, StoreError> {
        let mut suspensions = BTreeSet::new();
        let mut persons = BTreeSet::new();
        let mut identities = BTreeSet::new();
        for change in changes {
            match change {
                StateChange::Suspend(row) => {
                    persons.insert([row.vo.as_str(), row.person_id.as_str()]);
                }
                StateChange::Lift { suspension_id, .. } => {
                    suspensions.insert([suspension_id.as_str()]);
                }
                StateChange::Link {
                    vo,
                    person_id,
                    iss,
                    sub,
                    ..
                } => {
                    persons.insert([vo.as_str(), person_id.as_str()]);
                    identities.insert([iss.as_str(), sub.as_str(), vo.as_str()]);
                }
                StateChange::Merge { vo, into, from } => {
                    persons.insert([vo.as_str(), into.as_str()]);
                    persons.insert([vo.as_str(), from.as_str()]);
                }
                StateChange::Sighting { .. } | StateChange::None => {}
            }
        }
        let named = persons;
        let persons: Vec<[&str; 2]> = named.iter().copied().collect();
        let person_ids: BTreeSet<[&str; 1]> = named.iter().map(|[_, id]| [*id]).collect();
        let person_ids: Vec<[&str; 1]> = person_ids.into_iter().collect();
        let identities: Vec<[&str; 3]> = identities.into_iter().collect();
        let suspensions: Vec<[&str; 1]> = suspensions.into_iter().collect();

        let select = "SELECT id, lifted_at IS NOT NULL FROM suspensions WHERE ";
        let lifted: Vec<(String, bool)> = fetch_by_keys(conn, select, ["id"], &suspensions).await?;
        let select = "SELECT DISTINCT vo, person_id FROM identities WHERE ";
        let live: Vec<PersonKey> = fetch_by_keys(conn, select, ["person_id"], &person_ids).await?;
        let select = "SELECT vo, person_id, into_person FROM person_merges WHERE ";
        let merged: Vec<(String, String, String)> =
            fetch_by_keys(conn, select, ["vo", "person_id"], &persons).await?;
        let select = "SELECT iss, sub, vo, person_id FROM identities WHERE ";
        let owners: Vec<(String, String, String, String)> =
            fetch_by_keys(conn, select, ["iss", "sub", "vo"], &identities).await?;
        Ok(BatchState {
            lifted: lifted.into_iter().collect(),
            live: live
                .into_iter()
                .filter(|(vo, id)| named.contains(&[vo.as_str(), id.as_str()]))
                .collect(),
            merged: merged
                .into_iter()
                .map(|(vo, person, into)| ((vo, person), into))
                .collect(),
            owners: owners
                .into_iter()
                .map(|(iss, sub, vo, person)| ((iss, sub, vo), person))
                .collect(),
        })
    }

    /// Admits all of `changes` or none.
    fn admit_job(&mut self, changes: &[&StateChange]) -> Result<(), Refusal> {
        match changes {
            [] => Ok(()),
            [change] => self.admit(change),
            several => {
                let mut trial = self.clone();
                for change in several {
                    trial.admit(change)?;
                }
                *self = trial;
                Ok(())
            }
        }
    }

    /// Decides one change and, if it applies, records its effect; a refused change leaves
    /// the state as it was.
    fn admit(&mut self, change: &StateChange) -> Result<(), Refusal> {
        match change {
            StateChange::Suspend(row) => self.check_person(&row.vo, &row.person_id),
            StateChange::Lift { suspension_id, .. } => match self.lifted.get_mut(suspension_id) {
                None => Err(Refusal::UnknownSuspension {
                    id: suspension_id.clone(),
                }),
                Some(true) => Err(Refusal::AlreadyLifted {
                    id: suspension_id.clone(),
                }),
                Some(lifted) => {
                    *lifted = true;
                    Ok(())
                }
            },
            StateChange::Link {
                vo,
                person_id,
                iss,
                sub,
                ..
            } => {
                self.check_person(vo, person_id)?;
                let identity = (iss.clone(), sub.clone(), vo.clone());
                match self.owners.get(&identity) {
                    Some(owner) if owner == person_id => Err(Refusal::InEffect),
                    Some(_) => Err(Refusal::IdentityOfAnother),
                    None => {
                        self.owners.insert(identity, person_id.clone());
                        Ok(())
                    }
                }
            }
            StateChange::Merge { vo, into, from } => {
                if into == from {
                    return Err(Refusal::SelfMerge);
                }
                self.check_person(vo, into)?;
                self.check_person(vo, from)?;
                let gone = (vo.clone(), from.clone());
                self.live.remove(&gone);
                self.merged.insert(gone, into.clone());
                for ((_, _, at), owner) in &mut self.owners {
                    if at == vo && owner == from {
                        owner.clone_from(into);
                    }
                }
                Ok(())
            }
            StateChange::Sighting { .. } | StateChange::None => Ok(()),
        }
    }

    /// The person has an identity in the VO now.
    fn check_person(&self, vo: &str, person: &str) -> Result<(), Refusal> {
        let key = (vo.to_string(), person.to_string());
        if self.live.contains(&key) {
            return Ok(());
        }
        Err(match self.merged.get(&key) {
            Some(into) => Refusal::MergedAway {
                person: person.to_string(),
                into: into.clone(),
            },
            None => Refusal::UnknownPerson {
                vo: vo.to_string(),
                person: person.to_string(),
            },
        })
    }
}

/// The rows of `select` (which ends in `WHERE `) whose `columns` hold one of `keys`, asked
/// [`CHUNK`] keys at a time.
async fn fetch_by_keys<const N: usize, R>(
    conn: &mut SqliteConnection,
    select: &str,
    columns: [&str; N],
    keys: &[[&str; N]],
) -> Result<Vec<R>, StoreError>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin,
{
    let mut found = Vec::new();
    for chunk in keys.chunks(CHUNK) {
        let mut query = QueryBuilder::<Sqlite>::new(select);
        push_keys(&mut query, columns, chunk);
        found.extend(query.build_query_as::<R>().fetch_all(&mut *conn).await?);
    }
    Ok(found)
}

/// Appends `(c1 = ? AND c2 = ?) OR (...)`, one group per key, binding its values: SQLite
/// finds each key through an index of `columns` (a row-value `IN` would scan the table).
fn push_keys<const N: usize>(
    query: &mut QueryBuilder<Sqlite>,
    columns: [&str; N],
    keys: &[[&str; N]],
) {
    for (k, key) in keys.iter().enumerate() {
        query.push(if k == 0 { "(" } else { " OR (" });
        for (c, (column, value)) in columns.iter().zip(key).enumerate() {
            if c > 0 {
                query.push(" AND ");
            }
            query.push(format_args!("{column} = ")).push_bind(*value);
        }
        query.push(")");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log_store::SuspensionRow;

    /// A database holding: person pe-a (identity alice) and pe-b (identity bob) in atlas,
    /// pe-gone merged into pe-a, suspension su-1 active and su-2 lifted.
    async fn database() -> (tempfile::TempDir, SqliteConnection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let pool = crate::db::open(&path).await.unwrap();
        for sql in [
            "INSERT INTO identities (iss, sub, vo, person_id, created_at) VALUES \
             ('https://iam/', 'alice', 'atlas', 'pe-a', 1), \
             ('https://iam/', 'bob', 'atlas', 'pe-b', 2)",
            "INSERT INTO person_merges (vo, person_id, into_person, idx) \
             VALUES ('atlas', 'pe-gone', 'pe-a', 7)",
            "INSERT INTO suspensions (id, idx, vo, person_id, scope, reason_code, created_by, \
             created_at, lifted_at) VALUES \
             ('su-1', 3, 'atlas', 'pe-a', 'all', 'suspended', 'officer', 1, NULL), \
             ('su-2', 4, 'atlas', 'pe-b', 'all', 'suspended', 'officer', 1, 5)",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
        let writer = crate::db::open_writer(&path).await.unwrap();
        (dir, writer)
    }

    fn link(person: &str, sub: &str) -> StateChange {
        StateChange::Link {
            vo: "atlas".into(),
            person_id: person.into(),
            iss: "x509".into(),
            sub: sub.into(),
            created_at: 1,
        }
    }

    fn merge(into: &str, from: &str) -> StateChange {
        StateChange::Merge {
            vo: "atlas".into(),
            into: into.into(),
            from: from.into(),
        }
    }

    fn lift(id: &str) -> StateChange {
        StateChange::Lift {
            suspension_id: id.into(),
            lifted_by: "officer".into(),
            lifted_at: 1,
        }
    }

    fn suspend(person: &str) -> StateChange {
        StateChange::Suspend(SuspensionRow {
            id: "su-new".into(),
            site: None,
            vo: "atlas".into(),
            person_id: person.into(),
            token_iss: None,
            token_jti: None,
            scope: "all".into(),
            reason_code: "suspended".into(),
            created_by: "officer".into(),
            created_at: 1,
            not_after: None,
        })
    }

    /// Decides one batch of jobs, each a list of changes.
    async fn decide_jobs(jobs: &[Vec<StateChange>]) -> Vec<Result<(), Refusal>> {
        let (_dir, mut conn) = database().await;
        let jobs: Vec<Vec<&StateChange>> = jobs.iter().map(|j| j.iter().collect()).collect();
        decide(&mut conn, &jobs).await.unwrap()
    }

    fn merged_away(person: &str, into: &str) -> Refusal {
        Refusal::MergedAway {
            person: person.into(),
            into: into.into(),
        }
    }

    #[tokio::test]
    async fn the_first_of_two_links_of_one_identity_wins_and_a_repeat_is_in_effect() {
        let decisions = decide_jobs(&[
            vec![link("pe-a", "/CN=dn")],
            vec![link("pe-b", "/CN=dn")],
            vec![link("pe-a", "/CN=dn")],
            vec![link("pe-b", "/CN=other")],
        ])
        .await;
        assert_eq!(
            decisions,
            [
                Ok(()),
                Err(Refusal::IdentityOfAnother),
                Err(Refusal::InEffect),
                Ok(())
            ]
        );
    }

    #[tokio::test]
    async fn identities_in_the_database_are_taken_or_in_effect() {
        let alice = |person: &str| StateChange::Link {
            vo: "atlas".into(),
            person_id: person.into(),
            iss: "https://iam/".into(),
            sub: "alice".into(),
            created_at: 1,
        };
        let decisions = decide_jobs(&[vec![alice("pe-b")], vec![alice("pe-a")]]).await;
        assert_eq!(
            decisions,
            [Err(Refusal::IdentityOfAnother), Err(Refusal::InEffect)]
        );
    }

    #[tokio::test]
    async fn of_two_crossed_merges_the_second_finds_its_person_merged_away() {
        let decisions =
            decide_jobs(&[vec![merge("pe-a", "pe-b")], vec![merge("pe-b", "pe-a")]]).await;
        assert_eq!(decisions, [Ok(()), Err(merged_away("pe-b", "pe-a"))]);
        let decisions =
            decide_jobs(&[vec![merge("pe-a", "pe-b")], vec![merge("pe-a", "pe-b")]]).await;
        assert_eq!(decisions, [Ok(()), Err(merged_away("pe-b", "pe-a"))]);
    }

    #[tokio::test]
    async fn a_merge_moves_the_identities_later_links_are_decided_against() {
        let decisions = decide_jobs(&[
            vec![link("pe-b", "/CN=dn")],
            vec![merge("pe-a", "pe-b")],
            vec![link("pe-a", "/CN=dn")],
            vec![link("pe-b", "/CN=new")],
            vec![suspend("pe-b")],
            vec![suspend("pe-a")],
        ])
        .await;
        assert_eq!(
            decisions,
            [
                Ok(()),
                Ok(()),
                Err(Refusal::InEffect),
                Err(merged_away("pe-b", "pe-a")),
                Err(merged_away("pe-b", "pe-a")),
                Ok(())
            ]
        );
    }

    #[tokio::test]
    async fn persons_merged_before_or_never_seen_are_refused_and_told_apart() {
        let decisions = decide_jobs(&[
            vec![merge("pe-a", "pe-gone")],
            vec![link("pe-gone", "/CN=dn")],
            vec![suspend("pe-nobody")],
            vec![merge("pe-a", "pe-a")],
        ])
        .await;
        assert_eq!(
            decisions,
            [
                Err(merged_away("pe-gone", "pe-a")),
                Err(merged_away("pe-gone", "pe-a")),
                Err(Refusal::UnknownPerson {
                    vo: "atlas".into(),
                    person: "pe-nobody".into()
                }),
                Err(Refusal::SelfMerge)
            ]
        );
        assert!(!decisions[0].clone().unwrap_err().is_not_found());
        assert!(decisions[2].clone().unwrap_err().is_not_found());
    }

    #[tokio::test]
    async fn a_suspension_is_lifted_once() {
        let decisions = decide_jobs(&[
            vec![lift("su-1")],
            vec![lift("su-1")],
            vec![lift("su-2")],
            vec![lift("su-none")],
        ])
        .await;
        let already = |id: &str| Refusal::AlreadyLifted { id: id.into() };
        assert_eq!(
            decisions,
            [
                Ok(()),
                Err(already("su-1")),
                Err(already("su-2")),
                Err(Refusal::UnknownSuspension {
                    id: "su-none".into()
                })
            ]
        );
    }

    #[tokio::test]
    async fn a_job_is_admitted_whole_or_refused_without_effect() {
        let decisions = decide_jobs(&[
            vec![lift("su-1"), merge("pe-a", "pe-b"), link("pe-b", "/CN=dn")],
            vec![lift("su-1"), link("pe-b", "/CN=dn")],
            vec![merge("pe-a", "pe-b")],
            vec![StateChange::None],
        ])
        .await;
        assert_eq!(
            decisions,
            [Err(merged_away("pe-b", "pe-a")), Ok(()), Ok(()), Ok(())]
        );
    }
}
