//! Races the sequencer arbitrates. Two requests whose changes exclude each other (links of one
//! X.509 DN to two persons, lifts of one suspension, merges A←B and B←A), released together:
//! exactly one succeeds and the other gets 409, exactly one entry is logged, and the database
//! agrees with the log. The same requests one after the other get the same outcomes.

use std::sync::Barrier;
use std::time::Instant;

use serde_json::{Value, json};
use tokenledger_e2e::both_backends;
use tokenledger_e2e::issuer::now_secs;
use tokenledger_e2e::{Reply, ServedEntry, TestServer, db, issuer_of};

const VO: &str = "atlas";
/// Rounds of each race.
const ROUNDS: usize = 50;

struct Ledger {
    server: TestServer,
    admin: String,
    officer: String,
    _dir: tempfile::TempDir,
}

impl Ledger {
    fn start() -> Ledger {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(&dir.path().join("data"));
        let admin = server.admin_secret().to_string();
        let officer = server.create_credential("vo-security", Some(VO));
        Ledger {
            server,
            admin,
            officer,
            _dir: dir,
        }
    }

    fn db(&self) -> db::Database {
        self.server.db()
    }

    /// Logs one issuance of each of `subs` (issuer [`issuer_of`] `VO`) and returns the
    /// person each one created.
    fn persons(&self, subs: &[String]) -> Vec<String> {
        let issuer = self.server.create_issuer(VO);
        let iss = issuer_of(VO);
        let now = now_secs();
        let reports: Vec<Value> = subs
            .iter()
            .map(|sub| {
                json!({"claims": {
                    "jti": format!("{sub}-login"),
                    "iss": iss,
                    "sub": sub,
                    "vo": VO,
                    "iat": now,
                    "exp": now + 3600,
                }})
            })
            .collect();
        let reply = self.server.http().append(&issuer, &Value::Array(reports));
        assert_eq!(reply.status, 201, "{reply:?}");
        subs.iter()
            .map(|sub| db::person_of(&self.db(), &iss, sub, VO).expect("a person per identity"))
            .collect()
    }

    fn link(&self, person: &str, dn: &str) -> Reply {
        self.server.http().post_json(
            &format!("/v1/vos/{VO}/persons/{person}/identities"),
            Some(&self.officer),
            &json!({"iss": "x509", "sub": dn, "reason": "RACE-1"}),
        )
    }

    fn merge(&self, into: &str, from: &str) -> Reply {
        self.server.http().post_json(
            &format!("/v1/vos/{VO}/persons/{into}/merge"),
            Some(&self.officer),
            &json!({"other": from, "reason": "RACE-2"}),
        )
    }

    fn suspend(&self, person: &str) -> Reply {
        self.server.http().post_json(
            &format!("/v1/vos/{VO}/suspensions"),
            Some(&self.officer),
            &json!({"person": person, "reason": "RACE-3"}),
        )
    }

    /// A new VO-wide suspension of `person`; its id.
    fn suspension(&self, person: &str) -> String {
        let reply = self.suspend(person);
        assert_eq!(reply.status, 201, "{reply:?}");
        reply.json()["id"].as_str().unwrap().to_string()
    }

    fn lift(&self, id: &str) -> Reply {
        self.server.http().send(
            "DELETE",
            &format!("/v1/vos/{VO}/suspensions/{id}?reason=RACE-4"),
            Some(&self.officer),
            None,
            None,
        )
    }

    /// The entries logged from index `size` on.
    fn logged_since(&self, size: u64) -> Vec<ServedEntry> {
        let http = self.server.http();
        http.entries(&self.admin, size, http.log_size())
    }

    /// The one entry logged from index `size` on; panics unless there is exactly one.
    fn one_logged_since(&self, size: u64, what: &str) -> ServedEntry {
        let mut logged = self.logged_since(size);
        assert_eq!(logged.len(), 1, "{what}: {logged:#?}");
        logged.pop().unwrap()
    }
}

/// Runs `first` and `second` on two threads released together; their replies, in order.
fn race(
    first: impl FnOnce() -> Reply + Send,
    second: impl FnOnce() -> Reply + Send,
) -> (Reply, Reply) {
    let start = Barrier::new(2);
    std::thread::scope(|scope| {
        let first = scope.spawn(|| {
            start.wait();
            first()
        });
        let second = scope.spawn(|| {
            start.wait();
            second()
        });
        (first.join().unwrap(), second.join().unwrap())
    })
}

/// Whether the first of two replies is the success (`ok`); the other must be a 409.
fn first_wins(replies: &(Reply, Reply), ok: u16, what: &str) -> bool {
    let (first, second) = replies;
    match (first.status, second.status) {
        (status, 409) if status == ok => {
            second.assert_error(409, "conflict");
            true
        }
        (409, status) if status == ok => {
            first.assert_error(409, "conflict");
            false
        }
        _ => panic!("{what}: one {ok} and one 409 expected, got {replies:#?}"),
    }
}

/// Reports how the races went (who won tells that both orders happened).
fn report(race: &str, first_won: usize, started: Instant) {
    eprintln!(
        "{race}: {ROUNDS} rounds in {:.1} s, the first request won {first_won}",
        started.elapsed().as_secs_f64()
    );
}

/// The database agrees with a logged link of `dn`: the DN belongs to the linked person.
fn assert_link_stored(db: &db::Database, entry: &ServedEntry, dn: &str, person: &str, what: &str) {
    assert_eq!(entry.entry["type"], "identity_link", "{what}: {entry:?}");
    assert_eq!(entry.entry["iss"], "x509", "{what}");
    assert_eq!(entry.entry["sub"], dn, "{what}");
    assert_eq!(entry.entry["person_id"], person, "{what}");
    assert_eq!(
        db::person_of(db, "x509", dn, VO).as_deref(),
        Some(person),
        "{what}: the database holds the logged link"
    );
}

/// The database agrees with a logged merge of `from` into `into`, which had one identity each.
fn assert_merge_stored(db: &db::Database, entry: &ServedEntry, into: &str, from: &str, what: &str) {
    assert_eq!(entry.entry["type"], "identity_link", "{what}: {entry:?}");
    assert_eq!(entry.entry["person_id"], into, "{what}");
    assert_eq!(entry.entry["merged_from"], from, "{what}");
    assert_eq!(db::identity_count(db, into, VO), 2, "{what}");
    assert_eq!(db::identity_count(db, from, VO), 0, "{what}");
    assert_eq!(
        db::merged_into(db, VO, from),
        Some((into.to_string(), entry.index)),
        "{what}: the database records the logged merge"
    );
    assert_eq!(db::merged_into(db, VO, into), None, "{what}");
}

/// The database agrees with a logged lift of suspension `id`.
fn assert_lift_stored(db: &db::Database, entry: &ServedEntry, id: &str, what: &str) {
    assert_eq!(entry.entry["type"], "lift", "{what}: {entry:?}");
    assert_eq!(entry.entry["suspension_id"], id, "{what}");
    assert_eq!(
        db::lift_index(db, id),
        Some(entry.index),
        "{what}: the database holds the logged lift"
    );
}

both_backends!(concurrent_links_of_one_dn_to_two_persons_log_exactly_one);
fn concurrent_links_of_one_dn_to_two_persons_log_exactly_one() {
    let ledger = Ledger::start();
    let persons = ledger.persons(&["link-1".into(), "link-2".into()]);
    let (one, two) = (&persons[0], &persons[1]);
    let started = Instant::now();
    let mut first_won = 0;
    for round in 0..ROUNDS {
        let what = format!("link round {round}");
        let dn = format!("/DC=org/DC=example/CN=race {round}");
        let size = ledger.server.log_size();
        let replies = race(|| ledger.link(one, &dn), || ledger.link(two, &dn));
        let winner = if first_wins(&replies, 200, &what) {
            first_won += 1;
            one
        } else {
            two
        };
        let entry = ledger.one_logged_since(size, &what);
        assert_link_stored(&ledger.db(), &entry, &dn, winner, &what);
    }
    report("link/link", first_won, started);
    assert_eq!(
        db::identity_count(&ledger.db(), one, VO),
        1 + first_won as u64
    );
    assert_eq!(
        db::identity_count(&ledger.db(), two, VO),
        1 + (ROUNDS - first_won) as u64
    );
}

both_backends!(concurrent_lifts_of_one_suspension_log_exactly_one);
fn concurrent_lifts_of_one_suspension_log_exactly_one() {
    let ledger = Ledger::start();
    let person = &ledger.persons(&["lifted".into()])[0];
    let started = Instant::now();
    let mut first_won = 0;
    for round in 0..ROUNDS {
        let what = format!("lift round {round}");
        let id = ledger.suspension(person);
        let size = ledger.server.log_size();
        let replies = race(|| ledger.lift(&id), || ledger.lift(&id));
        first_won += usize::from(first_wins(&replies, 200, &what));
        let entry = ledger.one_logged_since(size, &what);
        assert_lift_stored(&ledger.db(), &entry, &id, &what);
    }
    report("lift/lift", first_won, started);
}

both_backends!(crossed_concurrent_merges_log_exactly_one);
fn crossed_concurrent_merges_log_exactly_one() {
    let ledger = Ledger::start();
    let subs: Vec<String> = (0..ROUNDS)
        .flat_map(|round| [format!("merge-a-{round}"), format!("merge-b-{round}")])
        .collect();
    let persons = ledger.persons(&subs);
    let started = Instant::now();
    let mut first_won = 0;
    for (round, pair) in persons.chunks(2).enumerate() {
        let what = format!("merge round {round}");
        let (a, b) = (&pair[0], &pair[1]);
        let size = ledger.server.log_size();
        let replies = race(|| ledger.merge(a, b), || ledger.merge(b, a));
        let (into, from) = if first_wins(&replies, 200, &what) {
            first_won += 1;
            (a, b)
        } else {
            (b, a)
        };
        let entry = ledger.one_logged_since(size, &what);
        assert_merge_stored(&ledger.db(), &entry, into, from, &what);
    }
    report("merge A←B / B←A", first_won, started);
}

both_backends!(the_same_requests_one_after_the_other_get_the_same_outcomes);
fn the_same_requests_one_after_the_other_get_the_same_outcomes() {
    let ledger = Ledger::start();
    let db = ledger.db();
    let persons = ledger.persons(&["seq-1".into(), "seq-2".into(), "seq-3".into()]);
    let (one, two, three) = (&persons[0], &persons[1], &persons[2]);

    // A link, then a link of the same DN to another person; the same link again changes
    // nothing and logs nothing.
    let dn = "/DC=org/DC=example/CN=sequential";
    let size = ledger.server.log_size();
    let linked = ledger.link(one, dn);
    assert_eq!(linked.status, 200, "{linked:?}");
    ledger.link(two, dn).assert_error(409, "conflict");
    let again = ledger.link(one, dn);
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.json(), linked.json(), "the same person, unchanged");
    let entry = ledger.one_logged_since(size, "sequential links");
    assert_link_stored(&db, &entry, dn, one, "sequential links");

    // A lift, then the same lift.
    let id = ledger.suspension(one);
    let size = ledger.server.log_size();
    let lifted = ledger.lift(&id);
    assert_eq!(lifted.status, 200, "{lifted:?}");
    ledger.lift(&id).assert_error(409, "conflict");
    let entry = ledger.one_logged_since(size, "sequential lifts");
    assert_lift_stored(&db, &entry, &id, "sequential lifts");

    // A merge, then the reverse merge, the same merge, and every change naming the person
    // merged away; a person that never was is not found.
    let size = ledger.server.log_size();
    let merged = ledger.merge(two, three);
    assert_eq!(merged.status, 200, "{merged:?}");
    ledger.merge(three, two).assert_error(409, "conflict");
    ledger.merge(two, three).assert_error(409, "conflict");
    ledger
        .link(three, "/DC=org/CN=late")
        .assert_error(409, "conflict");
    ledger.suspend(three).assert_error(409, "conflict");
    let entry = ledger.one_logged_since(size, "sequential merges");
    assert_eq!(db::identity_count(&db, two, VO), 2, "seq-2 and seq-3");
    assert_eq!(db::identity_count(&db, three, VO), 0);
    assert_eq!(
        db::merged_into(&db, VO, three),
        Some((two.to_string(), entry.index))
    );
    let size = ledger.server.log_size();
    let nobody = "pe-nobody";
    ledger.merge(two, nobody).assert_error(404, "not_found");
    ledger
        .link(nobody, "/DC=org/CN=nobody")
        .assert_error(404, "not_found");
    ledger.suspend(nobody).assert_error(404, "not_found");
    assert!(ledger.logged_since(size).is_empty(), "refusals log nothing");
}
