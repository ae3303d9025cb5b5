//! Sites: the VOs each serves, the token a site names by jti, the site's pseudonym of its
//! person, the site key (each fetch logged), and sightings of tokens in use.

use tokenledger_core::entry::{EntryBody, Issuance, Sighting, SiteKeyFetch, check_id};
use tokenledger_core::ids::{Jti, PersonId, Pseudonym, Site, Vo};
use tokenledger_core::pseudonym::SiteKey;
use tokenledger_core::wire::SightingReport;

use super::resolution::redacted_issuances;
use super::{Ledger, ServiceError};
use crate::sequencer::EntryKind;
use crate::store::{LedgerReader, StateChange, decode_issuance};

/// The VOs of an existing site.
pub async fn existing(reader: &dyn LedgerReader, site: &Site) -> Result<Vec<Vo>, ServiceError> {
    reader
        .site_vos(site)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("no site `{site}`")))
}

/// The one issuance of `jti` (of `iss`, if given) in one of `vos`, read from the primary:
/// what is written next depends on it. One that retention removed is 410 `redacted`,
/// never 404.
pub async fn issuance_in(
    ledger: &Ledger,
    vos: &[Vo],
    jti: &Jti,
    iss: Option<&str>,
) -> Result<(u64, Issuance), ServiceError> {
    let reader = ledger.reader.primary();
    let mut found = Vec::new();
    for (index, leaf) in reader.issuances_by_jti(jti).await? {
        let issuance = decode_issuance(index, &leaf)?;
        if vos.iter().any(|vo| *vo == *issuance.vo) && iss.is_none_or(|iss| iss == issuance.iss) {
            found.push((index, issuance));
        }
    }
    match found.len() {
        1 => Ok(found.pop().expect("one")),
        0 if redacted_issuances(ledger, vos, jti, iss).await? > 0 => Err(ServiceError::Redacted(
            "this jti was logged in one of the site's VOs, then redacted after retention: \
                 its issuance is no longer kept"
                .into(),
        )),
        0 => Err(ServiceError::NotFound(
            "no token with this jti in the site's VOs".into(),
        )),
        _ => Err(ServiceError::Conflict(
            "several issuers logged this jti: pass iss".into(),
        )),
    }
}

/// The VO and person behind `site`'s `pseudonym`, among the site's `vos`, read from the
/// primary: what is written next depends on it. Another site's pseudonym, or one of a VO the
/// site no longer serves, is not found.
pub async fn person_of_pseudonym(
    reader: &dyn LedgerReader,
    site: &Site,
    vos: &[Vo],
    pseudonym: &Pseudonym,
) -> Result<(Vo, PersonId), ServiceError> {
    reader
        .primary()
        .pseudonym(pseudonym)
        .await?
        .filter(|(at, vo, _)| at == site && vos.contains(vo))
        .map(|(_, vo, person)| (vo, person))
        .ok_or_else(|| ServiceError::NotFound("no such pseudonym at this site".into()))
}

/// The person an issuance belongs to.
pub async fn person_of(
    reader: &dyn LedgerReader,
    issuance: &Issuance,
) -> Result<PersonId, ServiceError> {
    reader
        .person_of(&issuance.iss, &issuance.sub, &Vo::unchecked(&issuance.vo))
        .await?
        .ok_or_else(|| ServiceError::Internal("an issuance without a person".into()))
}

/// The VO and the site's pseudonym of the person behind `jti` (of `iss`), among the site's
/// `vos`; remembered, so the VO can resolve it later.
pub async fn pseudonym_of_token(
    ledger: &Ledger,
    site: &Site,
    vos: &[Vo],
    jti: &Jti,
    iss: Option<&str>,
) -> Result<(Vo, Pseudonym), ServiceError> {
    let (_, issuance) = issuance_in(ledger, vos, jti, iss).await?;
    let person = person_of(ledger.reader.as_ref(), &issuance).await?;
    let vo = Vo::unchecked(issuance.vo);
    let pseudonym = ledger.pseudonyms.hand_out(site, &vo, &person).await?;
    Ok((vo, pseudonym))
}

/// The key of `site`, once its fetch by `requester` is logged.
pub async fn fetch_key(
    ledger: &Ledger,
    site: &Site,
    requester: &str,
) -> Result<SiteKey, ServiceError> {
    let body = EntryBody::SiteKeyFetch(SiteKeyFetch {
        site: site.to_string(),
        requester: requester.to_string(),
    });
    ledger
        .append(body, EntryKind::State(StateChange::None))
        .await?;
    Ok(ledger.pseudonyms.secret().site_key(site))
}

/// Logs a sighting at `site` (serving `vos`) reported by `reporter`; `seen_at` may be up to
/// `clock_skew_secs` ahead. Returns the entry's index.
pub async fn report_sighting(
    ledger: &Ledger,
    site: &Site,
    vos: &[Vo],
    report: SightingReport,
    reporter: &str,
    clock_skew_secs: i64,
) -> Result<u64, ServiceError> {
    let bad = |e: &dyn std::fmt::Display| ServiceError::BadRequest(e.to_string());
    let jti = Jti::parse(report.jti).map_err(|e| bad(&e))?;
    for (name, value) in [("host", &report.host), ("job_id", &report.job_id)] {
        if let Some(value) = value {
            check_id(name, value).map_err(|e| bad(&e))?;
        }
    }
    let horizon = ledger.clock.now_secs() + clock_skew_secs;
    if report.seen_at < 0 || report.seen_at > horizon {
        return Err(ServiceError::BadRequest(
            "seen_at must be a past time in unix seconds".into(),
        ));
    }
    let (_, issuance) = issuance_in(ledger, vos, &jti, report.iss.as_deref()).await?;
    let body = EntryBody::Sighting(Sighting {
        site: site.to_string(),
        vo: issuance.vo.clone(),
        iss: issuance.iss.clone(),
        jti: issuance.jti.clone(),
        seen_at: report.seen_at,
        host: report.host,
        job_id: report.job_id,
        reported_by: reporter.to_string(),
    });
    let change = StateChange::Sighting {
        site: site.clone(),
        vo: Vo::unchecked(issuance.vo),
        iss: issuance.iss,
        jti: Jti::unchecked(issuance.jti),
    };
    ledger.append(body, EntryKind::State(change)).await
}
