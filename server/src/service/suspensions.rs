//! Suspensions and lifts: a site suspends a pseudonym (a person) or one leaked token at
//! itself; a VO's security officers suspend a person or token at every site of the VO. Each
//! is a log entry; the site's next blocklist fetch carries it. Whether the person is still
//! one (not merged away) and the suspension not yet lifted is decided by the sequencer.

use tokenledger_core::blocklist::{ReasonCode, Scope, Target, TermError};
use tokenledger_core::entry::{EntryBody, EntryError, Lift, Suspension, validate_reason};
use tokenledger_core::ids::{Jti, PersonId, Pseudonym, Site, Vo};
use tokenledger_core::wire::SuspendRequest;

use super::sites::{issuance_in, person_of};
use super::{Ledger, ServiceError};
use crate::keys::random_bytes;
use crate::preconditions::Refusal;
use crate::sequencer::{AppendError, EntryKind};
use crate::store::{StateChange, SuspensionRecord};

/// Who or what a suspension targets, resolved.
struct Subject {
    vo: Vo,
    person_id: PersonId,
    /// `(iss, jti)` for a single-token suspension, and the token's `exp`.
    token: Option<(String, Jti, Option<i64>)>,
}

/// What every suspension request carries.
struct Terms {
    scope: Scope,
    reason: String,
    reason_code: ReasonCode,
    expires_at: Option<i64>,
    token_only: bool,
}

/// Suspends at `site` (serving `vos`) the person behind a pseudonym (`req.subject`) or a
/// jti, or one token, as `req` asks; `by` is the caller.
pub async fn suspend_at_site(
    ledger: &Ledger,
    by: &str,
    site: &Site,
    vos: &[Vo],
    req: SuspendRequest,
) -> Result<SuspensionRecord, ServiceError> {
    let terms = terms(ledger, &req)?;
    let target = match (&req.subject, &req.jti) {
        (Some(pseudonym), None) if !terms.token_only => {
            let pseudonym = Pseudonym::unchecked(pseudonym.as_str());
            let (_, vo, person_id) = ledger
                .reader
                .pseudonym(&pseudonym)
                .await?
                .filter(|(at, _, _)| at == site)
                .ok_or_else(|| ServiceError::NotFound("no such pseudonym at this site".into()))?;
            Subject {
                vo,
                person_id,
                token: None,
            }
        }
        (None, Some(jti)) => {
            jti_target(ledger, vos, jti, req.iss.as_deref(), terms.token_only).await?
        }
        _ => {
            return Err(ServiceError::BadRequest(
                "give `pseudonym` (a person) or `jti` (its person, or with target token the token only)".into(),
            ));
        }
    };
    suspend(ledger, by, Some(site.clone()), target, terms).await
}

/// Suspends at every site of `vo` a person (`req.subject`, its id), the person behind a jti,
/// or one token, as `req` asks; `by` is the caller.
pub async fn suspend_in_vo(
    ledger: &Ledger,
    by: &str,
    vo: &Vo,
    req: SuspendRequest,
) -> Result<SuspensionRecord, ServiceError> {
    let terms = terms(ledger, &req)?;
    let target = match (&req.subject, &req.jti) {
        (Some(person), None) if !terms.token_only => Subject {
            vo: vo.clone(),
            person_id: PersonId::unchecked(person.as_str()),
            token: None,
        },
        (None, Some(jti)) => {
            let vos = std::slice::from_ref(vo);
            jti_target(ledger, vos, jti, req.iss.as_deref(), terms.token_only).await?
        }
        _ => {
            return Err(ServiceError::BadRequest(
                "give `person`, or `jti` (its person, or with target token the token only)".into(),
            ));
        }
    };
    suspend(ledger, by, None, target, terms).await
}

/// Lifts suspension `id` of `site`, with `reason`; `by` is the caller.
pub async fn lift_at_site(
    ledger: &Ledger,
    by: &str,
    site: &Site,
    id: &str,
    reason: &str,
) -> Result<SuspensionRecord, ServiceError> {
    let of_site = |s: &SuspensionRecord| s.site.as_ref() == Some(site);
    let record = suspension_where(ledger, id, of_site, "no such suspension of this site").await?;
    lift(ledger, by, record, reason).await
}

/// Lifts the VO-wide suspension `id` of `vo`, with `reason`; `by` is the caller.
pub async fn lift_in_vo(
    ledger: &Ledger,
    by: &str,
    vo: &Vo,
    id: &str,
    reason: &str,
) -> Result<SuspensionRecord, ServiceError> {
    let vo_wide = |s: &SuspensionRecord| s.site.is_none() && s.vo == *vo;
    let record = suspension_where(ledger, id, vo_wide, "no such VO-wide suspension").await?;
    lift(ledger, by, record, reason).await
}

/// Suspension `id`, where `belongs` holds for it; else 404 with `missing`.
async fn suspension_where(
    ledger: &Ledger,
    id: &str,
    belongs: impl FnOnce(&SuspensionRecord) -> bool,
    missing: &str,
) -> Result<SuspensionRecord, ServiceError> {
    ledger
        .reader
        .suspension(id)
        .await?
        .filter(belongs)
        .ok_or_else(|| ServiceError::NotFound(missing.into()))
}

/// The terms of `req`, parsed and checked.
fn terms(ledger: &Ledger, req: &SuspendRequest) -> Result<Terms, ServiceError> {
    let bad = |m: &str| ServiceError::BadRequest(m.to_string());
    let term = |e: TermError| ServiceError::BadRequest(e.to_string());
    let target: Target = req
        .target
        .as_deref()
        .unwrap_or("person")
        .parse()
        .map_err(term)?;
    let scope: Scope = req
        .scope
        .as_deref()
        .unwrap_or("all")
        .parse()
        .map_err(term)?;
    validate_reason(&req.reason).map_err(|e| ServiceError::BadRequest(e.to_string()))?;
    let reason_code: ReasonCode = req
        .reason_code
        .as_deref()
        .unwrap_or("suspended")
        .parse()
        .map_err(term)?;
    if req.expires_at.is_some_and(|t| t <= ledger.clock.now_secs()) {
        return Err(bad("expires_at must be in the future (unix seconds)"));
    }
    Ok(Terms {
        scope,
        reason: req.reason.clone(),
        reason_code,
        expires_at: req.expires_at,
        token_only: target == Target::Token,
    })
}

async fn jti_target(
    ledger: &Ledger,
    vos: &[Vo],
    jti: &str,
    iss: Option<&str>,
    token_only: bool,
) -> Result<Subject, ServiceError> {
    let jti = Jti::parse(jti).map_err(bad_request)?;
    let (_, issuance) = issuance_in(ledger.reader.as_ref(), vos, &jti, iss).await?;
    let person_id = person_of(ledger.reader.as_ref(), &issuance).await?;
    Ok(Subject {
        vo: Vo::unchecked(issuance.vo),
        person_id,
        token: token_only.then_some((issuance.iss, jti, issuance.exp)),
    })
}

async fn suspend(
    ledger: &Ledger,
    by: &str,
    site: Option<Site>,
    target: Subject,
    terms: Terms,
) -> Result<SuspensionRecord, ServiceError> {
    let id = format!(
        "su-{}",
        tokenledger_core::pseudonym::base32(
            &random_bytes::<10>().map_err(|e| ServiceError::Internal(e.to_string()))?
        )
    );
    let token_exp = target.token.as_ref().and_then(|t| t.2);
    let not_after = match (terms.expires_at, token_exp) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let (token_iss, token_jti) = match target.token {
        Some((iss, jti, _)) => (Some(iss), Some(jti)),
        None => (None, None),
    };
    let pseudonym = match &site {
        Some(site) => Some(
            ledger
                .pseudonyms
                .hand_out(site, &target.vo, &target.person_id)
                .await?,
        ),
        None => None,
    };
    let created_at = ledger.clock.now_micros();
    let body = EntryBody::Suspension(Box::new(Suspension {
        suspension_id: id.clone(),
        site: site.as_ref().map(Site::to_string),
        vo: target.vo.to_string(),
        person_id: target.person_id.to_string(),
        pseudonym: pseudonym.map(Pseudonym::into_string),
        target: if token_jti.is_some() {
            "token"
        } else {
            "person"
        }
        .into(),
        token_iss: token_iss.clone(),
        token_jti: token_jti.as_ref().map(Jti::to_string),
        scope: terms.scope.as_str().into(),
        reason: terms.reason,
        reason_code: terms.reason_code.as_str().into(),
        created_by: by.to_string(),
        not_after,
    }));
    let mut record = SuspensionRecord {
        id,
        idx: 0,
        site,
        vo: target.vo,
        person_id: target.person_id,
        token_iss,
        token_jti,
        scope: terms.scope,
        reason_code: terms.reason_code.into_string(),
        created_by: by.to_string(),
        created_at,
        not_after,
        lifted_at: None,
    };
    let change = StateChange::Suspend(record.clone());
    let entry = ledger.prepare(body, EntryKind::State(change))?;
    let at_site = record.site.is_some();
    record.idx = ledger.append_decided(entry).await.map_err(|e| match e {
        AppendError::Refused(refusal) if at_site => site_refusal(refusal),
        e => e.into(),
    })?;
    Ok(record)
}

async fn lift(
    ledger: &Ledger,
    by: &str,
    mut record: SuspensionRecord,
    reason: &str,
) -> Result<SuspensionRecord, ServiceError> {
    validate_reason(reason).map_err(|e| ServiceError::BadRequest(e.to_string()))?;
    let lifted_at = ledger.clock.now_micros();
    let body = EntryBody::Lift(Lift {
        suspension_id: record.id.clone(),
        reason: reason.to_string(),
        lifted_by: by.to_string(),
    });
    let change = StateChange::Lift {
        suspension_id: record.id.clone(),
        lifted_by: by.to_string(),
        lifted_at,
    };
    ledger.append(body, EntryKind::State(change)).await?;
    record.lifted_at = Some(lifted_at);
    Ok(record)
}

/// A site suspension the sequencer refused, in words that name no person: a site never
/// learns person ids. Its person came from a pseudonym or a token, so it has identities unless
/// a merge moved them; the pseudonym and the token then lead to the person merged into.
fn site_refusal(refusal: Refusal) -> ServiceError {
    match refusal {
        Refusal::MergedAway { .. } => ServiceError::Conflict(
            "the person was merged into another person meanwhile: suspend again".into(),
        ),
        other if other.is_not_found() => ServiceError::NotFound("no such person".into()),
        _ => ServiceError::Conflict("the suspension no longer applies: suspend again".into()),
    }
}

/// A name of the request that is not one (400).
fn bad_request(e: EntryError) -> ServiceError {
    ServiceError::BadRequest(e.to_string())
}
