//! API credentials in the database: only the hash of a secret is stored.

use std::time::{Duration, Instant};

use tokenledger_core::access::{Binding, Role};

use crate::credentials::{authenticate, create, list, revoke};
use crate::store::Revoked;
use crate::store::conformance::{self, StoppedAt};
use crate::store::postgres::credential_cache::LEASE;
use crate::store::postgres::{CREDENTIAL_LISTENER, PostgresStore};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};

#[tokio::test]
async fn create_authenticate_revoke() {
    let (_db, store) = super::store().await;
    let secret = conformance::create_authenticate_revoke(&store).await;
    let stored: (Vec<u8>,) = sqlx::query_as("SELECT secret_hash FROM credentials")
        .fetch_one(&store.pool())
        .await
        .unwrap();
    assert_ne!(stored.0, secret.as_bytes(), "only the hash is stored");
}

/// Every credential, oldest first; a row that no longer parses is listed as corrupt but
/// authenticates nobody.
#[tokio::test]
async fn credentials_are_listed_oldest_first() {
    let (_db, store) = super::store().await;
    let site = Binding::new(Role::SiteReader, None, Some("CERN-PROD".into())).unwrap();
    let officer = Binding::new(Role::VoSecurity, Some("atlas".into()), None).unwrap();
    let (second, _) = create(&store, &StoppedAt(2_000), &site, None)
        .await
        .unwrap();
    let (first, secret) = create(&store, &StoppedAt(1_000), &officer, Some("o"))
        .await
        .unwrap();
    let listed = list(&store).await.unwrap();
    assert_eq!(
        listed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [first.as_str(), second.as_str()]
    );
    assert_eq!(listed[1].binding, site);
    sqlx::query("UPDATE credentials SET role = 'no-such-role' WHERE id = $1")
        .bind(&first)
        .execute(&store.pool())
        .await
        .unwrap();
    assert!(authenticate(&store, &secret).await.unwrap().is_none());
    assert!(list(&store).await.is_err());
}

/// How long a change may take to reach another server's cache (well under the 60 s an entry
/// is otherwise held).
const NOTICE: Duration = Duration::from_secs(2);

/// A credential (vo-security of atlas) made through `store`: its id and secret.
async fn officer(store: &PostgresStore) -> (String, String) {
    let binding = Binding::new(Role::VoSecurity, Some("atlas".into()), None).unwrap();
    create(store, &StoppedAt(1_000), &binding, None)
        .await
        .unwrap()
}

/// Authenticates `secret` on `store` until its listener is up and holds the credential.
async fn held_by(store: &PostgresStore, secret: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(authenticate(store, secret).await.unwrap().is_some());
        if store.credentials.listening() && store.credentials.held() == 1 {
            return;
        }
        assert!(Instant::now() < deadline, "the credential is never held");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether `store` refuses `secret` within [`NOTICE`]; how long it took.
async fn refused_within_notice(store: &PostgresStore, secret: &str) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < NOTICE {
        if authenticate(store, secret).await.unwrap().is_none() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

/// Two servers on one database: a credential the second holds in memory stops working there
/// before the first's revoke returns (the second answered its fence), and soon after a
/// revoke by SQL (the trigger covers any
/// writer). With the notification left out, the held credential would still authenticate.
#[tokio::test]
async fn a_revoke_on_one_server_ends_what_another_holds() {
    let (db, first) = super::store().await;
    let second = super::open(&db).await;
    let (id, secret) = officer(&first).await;
    held_by(&second, &secret).await;

    let revoked = revoke(&first, &StoppedAt(2_000), &id).await.unwrap();
    assert_eq!(revoked, Some(Revoked { waited_out: false }));
    assert_eq!(second.credentials.held(), 0);
    assert!(authenticate(&second, &secret).await.unwrap().is_none());

    // Without a notification (the trigger disabled: this credential's creation is not heard
    // either, and every earlier change was), what is held is used: the notification is what
    // ends it.
    let pool = first.pool();
    sqlx::query("ALTER TABLE credentials DISABLE TRIGGER credentials_changed")
        .execute(&pool)
        .await
        .unwrap();
    let (_, other) = officer(&first).await;
    held_by(&second, &other).await;
    sqlx::query("UPDATE credentials SET revoked_at = 3000 WHERE revoked_at IS NULL")
        .execute(&pool)
        .await
        .unwrap();
    assert!(authenticate(&second, &other).await.unwrap().is_some());
    sqlx::query("ALTER TABLE credentials ENABLE TRIGGER credentials_changed")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE credentials SET label = 'touched'")
        .execute(&pool)
        .await
        .unwrap();
    assert!(
        refused_within_notice(&second, &other).await.is_some(),
        "a change by SQL is not heard"
    );
}

/// A lookup on the server that revoked is refused at once, without waiting for the
/// notification; unknown secrets are never held.
#[tokio::test]
async fn the_revoking_server_refuses_at_once_and_holds_no_unknown_secret() {
    let (_db, store) = super::store().await;
    let (id, secret) = officer(&store).await;
    held_by(&store, &secret).await;
    for n in 0..100 {
        let guess = format!("tlk_guess{n}");
        assert!(authenticate(&store, &guess).await.unwrap().is_none());
    }
    // (Its creation's notification, if it comes late, drops it.)
    assert!(store.credentials.held() <= 1, "only the credential is held");
    assert!(
        revoke(&store, &StoppedAt(2_000), &id)
            .await
            .unwrap()
            .is_some()
    );
    assert!(authenticate(&store, &secret).await.unwrap().is_none());
}

/// A listener session that never answers a fence (a server frozen, or stuck): the revoke
/// waits out the lease and says so; with every listener answering, it does not wait.
#[tokio::test]
async fn a_revoke_waits_out_a_listener_that_does_not_answer() {
    let (db, store) = super::store().await;
    let (id, _) = officer(&store).await;
    let silent = silent_listener(&db).await;
    let started = Instant::now();
    let revoked = revoke(&store, &StoppedAt(2_000), &id).await.unwrap();
    assert_eq!(revoked, Some(Revoked { waited_out: true }));
    assert!(started.elapsed() >= LEASE, "{:?}", started.elapsed());
    // Revoked again (a second try after a revoke cut short): nothing to revoke, fenced anyway.
    let started = Instant::now();
    assert_eq!(revoke(&store, &StoppedAt(2_500), &id).await.unwrap(), None);
    assert!(started.elapsed() >= LEASE, "{:?}", started.elapsed());
    end_listeners(&store).await;
    drop(silent);

    // One that goes during the fence without answering: its server may not know yet.
    let (id, _) = officer(&store).await;
    let silent = silent_listener(&db).await;
    let started = Instant::now();
    let revoking = revoke(&store, &StoppedAt(3_000), &id);
    let ending = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        end_listeners(&store).await;
    };
    let (revoked, ()) = tokio::join!(revoking, ending);
    assert_eq!(revoked.unwrap(), Some(Revoked { waited_out: true }));
    assert!(started.elapsed() >= LEASE, "{:?}", started.elapsed());
    drop(silent);

    let (id, _) = officer(&store).await;
    let revoked = revoke(&store, &StoppedAt(4_000), &id).await.unwrap();
    assert_eq!(revoked, Some(Revoked { waited_out: false }));
}

/// A session that listens on the credentials' channel under the listeners' name and never
/// answers a fence (a frozen server's).
async fn silent_listener(db: &tokenledger_testpg::TestDatabase) -> PgListener {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(
            db.url()
                .parse::<PgConnectOptions>()
                .unwrap()
                .application_name(CREDENTIAL_LISTENER),
        )
        .await
        .unwrap();
    let mut silent = PgListener::connect_with(&pool).await.unwrap();
    silent.listen("tokenledger_credentials").await.unwrap();
    silent
}

/// Ends (`pg_terminate_backend`) every listener session on `store`'s database: how many.
async fn terminate_listeners(store: &PostgresStore) -> i64 {
    let (ended,): (i64,) = sqlx::query_as(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = $1",
    )
    .bind(CREDENTIAL_LISTENER)
    .fetch_one(&store.pool())
    .await
    .unwrap();
    ended
}

/// Ends every listener session on `store`'s database and waits until none is left.
async fn end_listeners(store: &PostgresStore) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if terminate_listeners(store).await == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "listener sessions stay");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The listener's session killed (`pg_terminate_backend`): the server drops what it holds and
/// reads every credential from the database (a change it could not hear is seen at once),
/// then listens again, empty, and holds credentials again.
#[tokio::test]
async fn a_lost_listener_drops_what_is_held_until_it_listens_again() {
    let (_db, store) = super::store().await;
    let (_, secret) = officer(&store).await;
    held_by(&store, &secret).await;
    let pool = store.pool();
    assert_eq!(terminate_listeners(&store).await, 1);
    // Nothing can be heard now: a revoke without a notification either.
    sqlx::query("ALTER TABLE credentials DISABLE TRIGGER credentials_changed")
        .execute(&pool)
        .await
        .unwrap();
    let deadline = Instant::now() + NOTICE;
    while store.credentials.listening() {
        assert!(
            Instant::now() < deadline,
            "the lost listener is not noticed"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    sqlx::query("UPDATE credentials SET revoked_at = 2000")
        .execute(&pool)
        .await
        .unwrap();
    assert!(
        authenticate(&store, &secret).await.unwrap().is_none(),
        "a credential revoked while the listener was down is served"
    );
    sqlx::query("ALTER TABLE credentials ENABLE TRIGGER credentials_changed")
        .execute(&pool)
        .await
        .unwrap();
    let (_, again) = officer(&store).await;
    held_by(&store, &again).await;
}
