//! Suspension requests read back as the writer stores them: one by id, a site's and a VO's,
//! newest first, by status.

use tokenledger_core::blocklist::Scope;
use tokenledger_core::ids::{Site, Vo};
use tokenledger_core::suspension_request::RequestStatus;

use crate::store::{LedgerReader, SuspensionRequestRecord};

#[tokio::test]
async fn requests_are_read_by_id_site_vo_and_status() {
    let (_db, store) = super::store().await;
    sqlx::query(
        "INSERT INTO suspension_requests (id, idx, site, vo, person_id, pseudonym, token_iss,
             token_jti, evidence, scope, reason_code, not_after, requested_by, requested_at)
         VALUES ('rq-1', 3, 'CERN-PROD', 'atlas', 'pe-a', 'p1-cern', 'https://iam/', 'j-1',
                 'ce01: port scans', 'compute', 'compromised', 2000000000, 'credential:site', 11),
                ('rq-2', 4, 'CERN-PROD', 'atlas', 'pe-b', 'p1-cern-b', NULL, NULL,
                 'ce02', NULL, NULL, NULL, 'credential:site', 12),
                ('rq-3', 5, 'RAL', 'atlas', 'pe-a', 'p1-ral', NULL, NULL,
                 'ral', NULL, NULL, NULL, 'credential:ral', 13),
                ('rq-4', 6, 'RAL', 'cms', 'pe-c', 'p1-ral-c', NULL, NULL,
                 'ral', NULL, NULL, NULL, 'credential:ral', 14)",
    )
    .execute(&store.pool())
    .await
    .unwrap();
    sqlx::query(
        "UPDATE suspension_requests SET status = 'accepted', decided_by = 'officer',
             decided_at = 21, decision_idx = 9, suspension_id = 'su-9' WHERE id = 'rq-2'",
    )
    .execute(&store.pool())
    .await
    .unwrap();

    let first = store.suspension_request("rq-1").await.unwrap().unwrap();
    assert_eq!(
        (first.idx, first.site.as_str(), first.person_id.as_str()),
        (3, "CERN-PROD", "pe-a")
    );
    assert_eq!(first.pseudonym.as_str(), "p1-cern");
    assert_eq!(first.token_jti.as_deref(), Some("j-1"));
    assert_eq!(
        (first.scope, first.not_after, first.status),
        (
            Some(Scope::Compute),
            Some(2_000_000_000),
            RequestStatus::Pending
        )
    );
    assert_eq!(first.evidence, "ce01: port scans");
    let accepted = store.suspension_request("rq-2").await.unwrap().unwrap();
    assert_eq!(accepted.status, RequestStatus::Accepted);
    assert_eq!(
        (accepted.decision_idx, accepted.suspension_id.as_deref()),
        (Some(9), Some("su-9"))
    );
    assert!(store.suspension_request("rq-none").await.unwrap().is_none());

    let ids =
        |listed: Vec<SuspensionRequestRecord>| listed.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let cern = Site::unchecked("CERN-PROD");
    let atlas = Vo::unchecked("atlas");
    assert_eq!(
        ids(store
            .suspension_requests_of_site(&cern, None)
            .await
            .unwrap()),
        ["rq-2", "rq-1"]
    );
    assert_eq!(
        ids(store
            .suspension_requests_of_site(&cern, Some(RequestStatus::Pending))
            .await
            .unwrap()),
        ["rq-1"]
    );
    assert_eq!(
        ids(store.suspension_requests_to_vo(&atlas, None).await.unwrap()),
        ["rq-3", "rq-2", "rq-1"]
    );
    assert_eq!(
        ids(store
            .suspension_requests_to_vo(&atlas, Some(RequestStatus::Accepted))
            .await
            .unwrap()),
        ["rq-2"]
    );
    assert!(
        store
            .suspension_requests_to_vo(&atlas, Some(RequestStatus::Declined))
            .await
            .unwrap()
            .is_empty()
    );
}
