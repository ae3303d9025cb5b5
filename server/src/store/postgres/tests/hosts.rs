//! The hosts of a database URL against a real server: a host that does not answer is passed
//! over; when the host in use goes, the query that failed keeps its error and the next one
//! goes to the host that took over; a host that stops accepting writes is left within a few
//! seconds; lookups read from the read replica, and from the primary when it is down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokenledger_core::ids::{Jti, Vo};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use super::{TestDatabase, TestLog};
use crate::storage_errors::StorageErrors;
use crate::store::LedgerReader;
use crate::store::postgres::hosts::WATCH_INTERVAL;
use crate::store::postgres::{DatabaseUrl, PostgresStore};

/// A TCP forwarder to the test server that can be stopped, as a host going down.
struct Relay {
    port: u16,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    async fn to(server: (String, u16)) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accepted = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let server = server.clone();
                let relay = tokio::spawn(async move {
                    if let Ok(mut upstream) = TcpStream::connect(server).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
                accepted.lock().await.push(relay);
            }
        });
        tasks.lock().await.push(accept);
        Relay { port, tasks }
    }

    /// Refuses new connections and cuts every open one.
    async fn stop(&self) {
        for task in self.tasks.lock().await.drain(..) {
            task.abort();
        }
    }
}

/// `db`'s URL with `hosts` (`host:port`, comma separated) in place of its own.
fn url_with_hosts(db: &TestDatabase, hosts: &str) -> DatabaseUrl {
    let url = db.url();
    let start = url
        .find('@')
        .map_or(url.find("://").unwrap() + 3, |at| at + 1);
    let end = start + url[start..].find('/').unwrap();
    DatabaseUrl::parse(&format!("{}{hosts}{}", &url[..start], &url[end..])).unwrap()
}

/// The test server's host and port.
fn server(db: &TestDatabase) -> (String, u16) {
    let url = DatabaseUrl::parse(db.url()).unwrap();
    let options = &url.hosts()[0];
    (options.get_host().to_string(), options.get_port())
}

async fn open(url: &DatabaseUrl) -> PostgresStore {
    PostgresStore::open(url, None, Arc::new(StorageErrors::default()))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_host_that_does_not_answer_is_passed_over() {
    let db = tokenledger_testpg::database();
    let (host, port) = server(&db);
    let url = url_with_hosts(&db, &format!("127.0.0.1:1,{host}:{port}"));
    let store = open(&url).await;
    assert_eq!(store.primary.host_name(), format!("{host}:{port}"));
    assert_eq!(store.log_size().await.unwrap(), 0);

    let nowhere = url_with_hosts(&db, "127.0.0.1:1");
    let refused = PostgresStore::open(&nowhere, None, Arc::new(StorageErrors::default()))
        .await
        .err()
        .expect("no host answers");
    assert!(
        format!("{refused:#}").contains("127.0.0.1:1"),
        "{refused:#}"
    );
}

#[tokio::test]
async fn after_the_host_in_use_goes_the_next_query_goes_to_the_other() {
    let db = tokenledger_testpg::database();
    let first = Relay::to(server(&db)).await;
    let second = Relay::to(server(&db)).await;
    let url = url_with_hosts(
        &db,
        &format!("127.0.0.1:{},127.0.0.1:{}", first.port, second.port),
    );
    let store = open(&url).await;
    assert_eq!(
        store.primary.host_name(),
        format!("127.0.0.1:{}", first.port)
    );
    assert_eq!(store.log_size().await.unwrap(), 0);

    first.stop().await;
    assert!(
        store.log_size().await.is_err(),
        "the failed query keeps its error"
    );
    assert_eq!(
        store.primary.host_name(),
        format!("127.0.0.1:{}", second.port)
    );
    assert_eq!(store.log_size().await.unwrap(), 0);
    second.stop().await;
}

#[tokio::test]
async fn a_host_that_stops_accepting_writes_is_left_for_the_next() {
    let db = tokenledger_testpg::database();
    let other = tokenledger_testpg::Cluster::start();
    other.query(&format!("CREATE DATABASE {}", db.name()));
    let (host, port) = server(&db);
    let url = url_with_hosts(&db, &format!("{host}:{port},127.0.0.1:{}", other.port()));
    let store = open(&url).await;
    assert_eq!(store.primary.host_name(), format!("{host}:{port}"));
    let (timeout, idle): (String, String) = sqlx::query_as(
        "SELECT current_setting('statement_timeout'), current_setting('tcp_keepalives_idle')",
    )
    .fetch_one(&store.pool())
    .await
    .unwrap();
    assert_eq!((timeout.as_str(), idle.as_str()), ("30s", "5"));

    // Sessions already open keep writing; a new one would be read-only.
    db.query(&format!(
        "ALTER DATABASE {} SET default_transaction_read_only = on",
        db.name()
    ));
    let start = Instant::now();
    while store.primary.host_name() != format!("127.0.0.1:{}", other.port()) {
        assert!(
            start.elapsed() < WATCH_INTERVAL * 3,
            "the read-only host is still in use"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store.close().await;
}

#[tokio::test]
async fn lookups_read_from_the_primary_while_the_replica_is_down() {
    let primary = tokenledger_testpg::database();
    let replica = tokenledger_testpg::database();
    let on_replica = super::open(&replica).await;
    let mut log = TestLog::new(on_replica.pool());
    log.issuance(
        "https://iam/",
        "j-1",
        "alice",
        "atlas",
        "a",
        1_700_000_000,
        None,
    )
    .await;
    let relay = Relay::to(server(&replica)).await;
    let store = PostgresStore::open(
        &DatabaseUrl::parse(primary.url()).unwrap(),
        Some(&url_with_hosts(
            &replica,
            &format!("127.0.0.1:{}", relay.port),
        )),
        Arc::new(StorageErrors::default()),
    )
    .await
    .unwrap();
    let j1 = Jti::unchecked("j-1");
    assert_eq!(store.issuances_by_jti(&j1).await.unwrap().len(), 1);

    relay.stop().await;
    assert_eq!(
        store.issuances_by_jti(&j1).await.unwrap().len(),
        0,
        "answered by the primary"
    );
    let start = Instant::now();
    assert!(store.issuances_by_jti(&j1).await.unwrap().is_empty());
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "a replica known to be down is not waited for"
    );
}

#[tokio::test]
async fn lookups_read_from_the_replica_the_rest_from_the_primary() {
    let primary = tokenledger_testpg::database();
    let replica = tokenledger_testpg::database();
    let on_replica = super::open(&replica).await;
    let mut log = TestLog::new(on_replica.pool());
    log.issuance(
        "https://iam/",
        "j-1",
        "alice",
        "atlas",
        "a",
        1_700_000_000,
        None,
    )
    .await;
    sqlx::query("INSERT INTO resolutions (idx, vo) VALUES (0, 'atlas')")
        .execute(&on_replica.pool())
        .await
        .unwrap();
    let store = PostgresStore::open(
        &DatabaseUrl::parse(primary.url()).unwrap(),
        Some(&DatabaseUrl::parse(replica.url()).unwrap()),
        Arc::new(StorageErrors::default()),
    )
    .await
    .unwrap();
    let atlas = Vo::unchecked("atlas");
    assert_eq!(
        store
            .issuances_by_jti(&Jti::unchecked("j-1"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.resolutions(&atlas, None, 5).await.unwrap().len(), 1);
    assert!(
        store.entries(0, 1).await.unwrap().is_empty(),
        "entries from the primary, whose size bounds them"
    );
    assert!(
        store
            .primary()
            .issuances_by_jti(&Jti::unchecked("j-1"))
            .await
            .unwrap()
            .is_empty(),
        "decisions leading to writes read the primary"
    );
    assert_eq!(store.log_size().await.unwrap(), 0, "from the primary");
    assert!(
        store
            .person_of("https://iam/", "alice", &atlas)
            .await
            .unwrap()
            .is_none(),
        "from the primary"
    );
}
