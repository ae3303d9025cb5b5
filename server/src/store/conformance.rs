//! Scenarios every engine passes, through the storage traits only: each engine's tests run
//! them on a database of their own.

use tokenledger_core::access::{Binding, Role};
use tokenledger_core::blocklist::{
    Blocklist, BlocklistEntry, Scope, SignedBlocklist, SignedDocument,
};
use tokenledger_core::ids::Site;
use tokenledger_core::note::NoteSigner;

use crate::clock::Clock;
use crate::credentials::{authenticate, create, list, revoke};
use crate::store::{BlocklistFetch, LedgerReader, Registry, SiteFetches};

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

    assert!(revoke(store, &StoppedAt(2_000), &id).await.unwrap());
    assert!(!revoke(store, &StoppedAt(3_000), &id).await.unwrap());
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
