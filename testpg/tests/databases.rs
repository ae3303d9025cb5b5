//! The harness itself: databases are made, reached with psql, distinct, and dropped; a
//! private cluster starts, stops and starts again with its data.

use tokenledger_testpg::{Cluster, database};

/// Whether a database of that name exists on the server of `on` (any other database there).
fn exists(on: &tokenledger_testpg::TestDatabase, name: &str) -> bool {
    on.query(&format!(
        "SELECT count(*) FROM pg_database WHERE datname = '{name}'"
    )) == "1"
}

#[test]
fn a_database_is_made_reached_and_dropped() {
    let witness = database();
    let db = database();
    assert!(db.url().starts_with("postgres://"), "{}", db.url());
    assert_eq!(db.query("SELECT current_database()"), db.name());
    db.query("CREATE TABLE t (x BIGINT); INSERT INTO t VALUES (7)");
    assert_eq!(db.query("SELECT x FROM t"), "7");
    let name = db.name().to_owned();
    assert!(exists(&witness, &name));
    drop(db);
    assert!(
        !exists(&witness, &name),
        "{name} is still there after the drop"
    );
}

#[test]
fn two_databases_at_once_are_distinct() {
    let (a, b) = (database(), database());
    assert_ne!(a.name(), b.name());
    assert_ne!(a.url(), b.url());
    a.query("CREATE TABLE only_in_a (x BIGINT)");
    assert_eq!(
        b.query("SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'"),
        "0"
    );
}

#[test]
fn an_owned_cluster_keeps_its_data_over_a_crash_and_goes_away() {
    let cluster = Cluster::start();
    let data_dir = cluster.data_dir().to_path_buf();
    let db = cluster.database();
    assert!(
        db.url().contains(&format!(":{}/", cluster.port())),
        "{}",
        db.url()
    );
    db.query("CREATE TABLE t (x BIGINT); INSERT INTO t VALUES (1)");
    cluster.kill9();
    cluster.start_again();
    assert_eq!(db.query("SELECT x FROM t"), "1");
    cluster.stop();
    cluster.start_again();
    assert_eq!(db.query("SELECT x FROM t"), "1");
    drop(db);
    drop(cluster);
    assert!(
        !data_dir.exists(),
        "{} outlives its cluster",
        data_dir.display()
    );
}

#[test]
fn a_synchronous_replica_has_every_commit_and_takes_writes_once_promoted() {
    let primary = Cluster::start();
    let standby = primary.replica();
    primary.set("synchronous_standby_names", "'*'");
    let before = std::time::Instant::now();
    while primary.query("SELECT sync_state FROM pg_stat_replication") != "sync" {
        assert!(
            before.elapsed().as_secs() < 60,
            "the replica never became synchronous"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    primary.query("CREATE TABLE t (x BIGINT)");
    primary.query("INSERT INTO t VALUES (1)");
    assert_eq!(standby.query("SELECT pg_is_in_recovery()"), "t");
    primary.kill9();
    standby.promote();
    assert_eq!(standby.query("SELECT pg_is_in_recovery()"), "f");
    assert_eq!(standby.query("SELECT x FROM t"), "1");
    standby.query("INSERT INTO t VALUES (2)");
    assert_eq!(standby.query("SELECT count(*) FROM t"), "2");
}
