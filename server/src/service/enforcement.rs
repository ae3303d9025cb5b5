//! Enforcement status: per site a suspension reaches, whether a credential of the site has
//! fetched a blocklist carrying it (from the fetches [`crate::blocklists::Blocklists`]
//! records), or when the site last fetched any.

use tokenledger_core::ids::{Site, Vo};
use tokenledger_core::wire::{EnforcementStatus, SiteEnforcement};

use super::{Ledger, ServiceError};
use crate::store::SuspensionRecord;

/// The enforcement of suspension `id` of `vo` (VO-wide or of one of its sites): every site
/// serving the VO for a VO-wide one, the suspending site for a site suspension.
pub async fn in_vo(ledger: &Ledger, vo: &Vo, id: &str) -> Result<EnforcementStatus, ServiceError> {
    let record = suspension(ledger, id)
        .await?
        .filter(|s| &s.vo == vo)
        .ok_or_else(|| ServiceError::NotFound("no such suspension in this VO".into()))?;
    let sites = match &record.site {
        Some(site) => vec![site.clone()],
        None => ledger
            .reader
            .sites()
            .await?
            .into_iter()
            .filter(|(_, vos)| vos.iter().any(|v| v == vo))
            .map(|(site, _)| site)
            .collect(),
    };
    status(ledger, &record, &sites).await
}

/// The enforcement at `site` (serving `vos`) of suspension `id`: one of the site's own, or a
/// VO-wide one of a VO it serves. Only that site's row.
pub async fn at_site(
    ledger: &Ledger,
    site: &Site,
    vos: &[Vo],
    id: &str,
) -> Result<EnforcementStatus, ServiceError> {
    let record = suspension(ledger, id)
        .await?
        .filter(|s| match &s.site {
            Some(own) => own == site,
            None => vos.contains(&s.vo),
        })
        .ok_or_else(|| ServiceError::NotFound("no such suspension at this site".into()))?;
    status(ledger, &record, std::slice::from_ref(site)).await
}

async fn suspension(ledger: &Ledger, id: &str) -> Result<Option<SuspensionRecord>, ServiceError> {
    Ok(ledger.reader.suspension(id).await?)
}

async fn status(
    ledger: &Ledger,
    record: &SuspensionRecord,
    sites: &[Site],
) -> Result<EnforcementStatus, ServiceError> {
    let mut rows = Vec::with_capacity(sites.len());
    for site in sites {
        let fetches = ledger
            .reader
            .blocklist_enforcement(site, &record.id)
            .await?;
        rows.push(SiteEnforcement {
            site: fetches.site.into_string(),
            status: if fetches.first_fetch.is_some() {
                "fetched"
            } else {
                "not_fetched"
            }
            .into(),
            first_sequence: fetches.first_sequence,
            fetched_at: fetches.first_fetch.map(|(at, _)| at),
            sequence: fetches.first_fetch.map(|(_, sequence)| sequence),
            last_fetch_at: fetches.last_fetch,
        });
    }
    rows.sort_by(|a, b| a.site.cmp(&b.site));
    Ok(EnforcementStatus {
        suspension_id: record.id.clone(),
        vo: record.vo.to_string(),
        site: record.site.as_ref().map(Site::to_string),
        active: record.is_active(ledger.clock.now_secs()),
        lifted_at: record.lifted_at,
        check_only: record.client_id.is_some() || record.issued_before.is_some(),
        sites: rows,
    })
}
