//! Suspensions and lifts: a site suspends a pseudonym (a person) or one leaked token at
//! itself; a VO's security officers suspend a person or token at every site of the VO. Each
//! is a log entry; the site's next blocklist fetch carries it. Whether the person is still
//! one (not merged away) and the suspension not yet lifted is decided by the sequencer.

use tokenledger_core::blocklist::{ReasonCode, Scope, Target, TermError};
use tokenledger_core::entry::{EntryBody, Lift, Suspension, check_id, validate_reason};
use tokenledger_core::wire::{AcceptSuspensionRequest, SiteSuspendRequest, VoSuspendRequest};

use super::sites::{issuance_in, person_of};
use super::{Ledger, ServiceError};
use crate::keys::random_bytes;
use crate::preconditions::Refusal;
use crate::sequencer::{AppendError, EntryKind, PreparedEntry};
use crate::store::{StateChange, SuspensionRecord};

/// Who or what a suspension targets, resolved.
struct Subject {
    vo: String,
    person_id: String,
    /// `(iss, jti)` for a single-token suspension, and the token's `exp`.
    token: Option<(String, String, Option<i64>)>,
}

/// What every suspension request carries.
struct Terms {
    scope: Scope,
    reason: String,
    reason_code: ReasonCode,
    expires_at: Option<i64>,
    token_only: bool,
}

/// Suspends at `site` (serving `vos`) the person behind a pseudonym or a jti, or one token,
/// as `req` asks; `by` is the caller.
pub async fn suspend_at_site(
    ledger: &Ledger,
    by: &str,
    site: &str,
    vos: &[String],
    req: SiteSuspendRequest,
) -> Result<SuspensionRecord, ServiceError> {
    let terms = terms(
        ledger,
        req.target.as_deref(),
        req.scope.as_deref(),
        &req.reason,
        req.reason_code.as_deref(),
        req.expires_at,
    )?;
    let target = match (&req.pseudonym, &req.jti) {
        (Some(pseudonym), None) if !terms.token_only => {
            let (_, vo, person_id) = ledger
                .reader
                .pseudonym(pseudonym)
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
    suspend(ledger, by, Some(site.to_string()), target, terms).await
}

/// Suspends at every site of `vo` a person, the person behind a jti, or one token, as `req`
/// asks; `by` is the caller.
pub async fn suspend_in_vo(
    ledger: &Ledger,
    by: &str,
    vo: &str,
    req: VoSuspendRequest,
) -> Result<SuspensionRecord, ServiceError> {
    let terms = terms(
        ledger,
        req.target.as_deref(),
        req.scope.as_deref(),
        &req.reason,
        req.reason_code.as_deref(),
        req.expires_at,
    )?;
    let target = match (&req.person, &req.jti) {
        (Some(person), None) if !terms.token_only => Subject {
            vo: vo.to_string(),
            person_id: person.clone(),
            token: None,
        },
        (None, Some(jti)) => {
            let vos = [vo.to_string()];
            jti_target(ledger, &vos, jti, req.iss.as_deref(), terms.token_only).await?
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
    site: &str,
    id: &str,
    reason: &str,
) -> Result<SuspensionRecord, ServiceError> {
    let record = ledger
        .reader
        .suspension(id)
        .await?
        .filter(|s| s.site.as_deref() == Some(site))
        .ok_or_else(|| ServiceError::NotFound("no such suspension of this site".into()))?;
    lift(ledger, by, record, reason).await
}

/// Lifts the VO-wide suspension `id` of `vo`, with `reason`; `by` is the caller.
pub async fn lift_in_vo(
    ledger: &Ledger,
    by: &str,
    vo: &str,
    id: &str,
    reason: &str,
) -> Result<SuspensionRecord, ServiceError> {
    let record = ledger
        .reader
        .suspension(id)
        .await?
        .filter(|s| s.site.is_none() && s.vo == vo)
        .ok_or_else(|| ServiceError::NotFound("no such VO-wide suspension".into()))?;
    lift(ledger, by, record, reason).await
}

fn terms(
    ledger: &Ledger,
    target: Option<&str>,
    scope: Option<&str>,
    reason: &str,
    reason_code: Option<&str>,
    expires_at: Option<i64>,
) -> Result<Terms, ServiceError> {
    let bad = |m: &str| ServiceError::BadRequest(m.to_string());
    let term = |e: TermError| ServiceError::BadRequest(e.to_string());
    let target: Target = target.unwrap_or("person").parse().map_err(term)?;
    let scope: Scope = scope.unwrap_or("all").parse().map_err(term)?;
    validate_reason(reason).map_err(|e| ServiceError::BadRequest(e.to_string()))?;
    let reason_code: ReasonCode = reason_code.unwrap_or("suspended").parse().map_err(term)?;
    if expires_at.is_some_and(|t| t <= ledger.clock.now_secs()) {
        return Err(bad("expires_at must be in the future (unix seconds)"));
    }
    Ok(Terms {
        scope,
        reason: reason.to_string(),
        reason_code,
        expires_at,
        token_only: target == Target::Token,
    })
}

async fn jti_target(
    ledger: &Ledger,
    vos: &[String],
    jti: &str,
    iss: Option<&str>,
    token_only: bool,
) -> Result<Subject, ServiceError> {
    check_id("jti", jti).map_err(|e| ServiceError::BadRequest(e.to_string()))?;
    let (_, issuance) = issuance_in(ledger.reader.as_ref(), vos, jti, iss).await?;
    let person_id = person_of(ledger.reader.as_ref(), &issuance).await?;
    Ok(Subject {
        vo: issuance.vo.clone(),
        person_id,
        token: token_only.then(|| (issuance.iss.clone(), issuance.jti.clone(), issuance.exp)),
    })
}

/// A VO-wide suspension of `person_id` of `vo` on the terms given (as the API takes them),
/// prepared but not appended: for a suspension logged in one job with the entry that links
/// it (an accepted suspension request). `by` is the caller.
pub async fn prepare_in_vo(
    ledger: &Ledger,
    by: &str,
    vo: &str,
    person_id: &str,
    terms_asked: &AcceptSuspensionRequest,
    reason: &str,
) -> Result<(PreparedEntry, SuspensionRecord), ServiceError> {
    let terms = terms(
        ledger,
        None,
        terms_asked.scope.as_deref(),
        reason,
        terms_asked.reason_code.as_deref(),
        terms_asked.expires_at.flatten(),
    )?;
    let target = Subject {
        vo: vo.to_string(),
        person_id: person_id.to_string(),
        token: None,
    };
    prepare_suspension(ledger, by, None, target, terms).await
}

async fn suspend(
    ledger: &Ledger,
    by: &str,
    site: Option<String>,
    target: Subject,
    terms: Terms,
) -> Result<SuspensionRecord, ServiceError> {
    let at_site = site.is_some();
    let (entry, mut record) = prepare_suspension(ledger, by, site, target, terms).await?;
    record.idx = ledger.append_decided(entry).await.map_err(|e| match e {
        AppendError::Refused(refusal) if at_site => site_refusal(refusal),
        e => e.into(),
    })?;
    Ok(record)
}

/// The entry of a suspension and its record, whose index the append will give.
async fn prepare_suspension(
    ledger: &Ledger,
    by: &str,
    site: Option<String>,
    target: Subject,
    terms: Terms,
) -> Result<(PreparedEntry, SuspensionRecord), ServiceError> {
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
        site: site.clone(),
        vo: target.vo.clone(),
        person_id: target.person_id.clone(),
        pseudonym,
        target: if token_jti.is_some() {
            "token"
        } else {
            "person"
        }
        .into(),
        token_iss: token_iss.clone(),
        token_jti: token_jti.clone(),
        scope: terms.scope.as_str().into(),
        reason: terms.reason,
        reason_code: terms.reason_code.as_str().into(),
        created_by: by.to_string(),
        not_after,
    }));
    let record = SuspensionRecord {
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
    Ok((entry, record))
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
