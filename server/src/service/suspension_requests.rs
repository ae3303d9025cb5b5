//! Site → VO suspension requests: a site asks its VO's security officers to suspend, at every
//! site of the VO, the person behind its pseudonym (or behind a jti seen locally), with its
//! evidence; an officer accepts (a VO-wide suspension, logged in one job with the acceptance)
//! or declines with a reason. Each step is a log entry; whether a request is still pending is
//! decided by the sequencer, so of two officers deciding at once only the first one counts.

use tokenledger_core::blocklist::{ReasonCode, Scope, TermError};
use tokenledger_core::entry::{EntryBody, validate_reason};
use tokenledger_core::ids::{Jti, Pseudonym, Site, Vo};
use tokenledger_core::suspension_request::{
    RequestStatus, SuspensionRequest, SuspensionRequestAccept, SuspensionRequestDecline,
    validate_evidence,
};
use tokenledger_core::wire::{AcceptSuspensionRequest, NewSuspensionRequest};

use super::sites::{issuance_in, person_of, person_of_pseudonym};
use super::suspensions::prepare_in_vo;
use super::{Ledger, ServiceError};
use crate::keys::random_bytes;
use crate::sequencer::{AppendError, EntryKind, PreparedEntry};
use crate::store::{RequestDecision, StateChange, SuspensionRequestRecord};

/// Logs `site`'s (serving `vos`) request that the VO suspend the person behind a pseudonym or
/// a jti; `by` is the caller.
pub async fn request(
    ledger: &Ledger,
    by: &str,
    site: &Site,
    vos: &[Vo],
    req: NewSuspensionRequest,
) -> Result<SuspensionRequestRecord, ServiceError> {
    let bad = |e: &dyn std::fmt::Display| ServiceError::BadRequest(e.to_string());
    validate_evidence(&req.evidence).map_err(|e| bad(&e))?;
    let scope: Option<Scope> = req
        .scope
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e: TermError| bad(&e))?;
    let reason_code: Option<ReasonCode> = req
        .reason_code
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e: TermError| bad(&e))?;
    if req.expires_at.is_some_and(|t| t <= ledger.clock.now_secs()) {
        return Err(ServiceError::BadRequest(
            "expires_at must be in the future (unix seconds)".into(),
        ));
    }
    if req.iss.is_some() && req.jti.is_none() {
        return Err(ServiceError::BadRequest(
            "`iss` goes only with `jti`: it names the jti's issuer".into(),
        ));
    }
    let (vo, person_id, pseudonym, token) = match (&req.pseudonym, &req.jti) {
        (Some(pseudonym), None) => {
            let pseudonym = Pseudonym::unchecked(pseudonym.as_str());
            let (vo, person_id) =
                person_of_pseudonym(ledger.reader.as_ref(), site, vos, &pseudonym).await?;
            (vo, person_id, pseudonym, None)
        }
        (None, Some(jti)) => {
            let jti = Jti::parse(jti.as_str()).map_err(|e| bad(&e))?;
            let reader = ledger.reader.as_ref();
            let (_, issuance) = issuance_in(ledger, vos, &jti, req.iss.as_deref()).await?;
            let person_id = person_of(reader, &issuance).await?;
            let vo = Vo::unchecked(issuance.vo);
            let pseudonym = ledger.pseudonyms.hand_out(site, &vo, &person_id).await?;
            (vo, person_id, pseudonym, Some((issuance.iss, jti)))
        }
        _ => {
            return Err(ServiceError::BadRequest(
                "give `pseudonym` or `jti` (the person behind a token seen at the site)".into(),
            ));
        }
    };
    let (token_iss, token_jti) = token.unzip();
    let mut record = SuspensionRequestRecord {
        id: new_id()?,
        idx: 0,
        site: site.clone(),
        vo,
        person_id,
        pseudonym,
        token_iss,
        token_jti,
        evidence: req.evidence,
        scope,
        reason_code: reason_code.map(ReasonCode::into_string),
        not_after: req.expires_at,
        requested_by: by.to_string(),
        requested_at: ledger.clock.now_micros(),
        status: RequestStatus::Pending,
        decided_by: None,
        decided_at: None,
        decision_idx: None,
        suspension_id: None,
        decline_reason: None,
    };
    let body = EntryBody::SuspensionRequest(Box::new(SuspensionRequest {
        request_id: record.id.clone(),
        site: record.site.to_string(),
        vo: record.vo.to_string(),
        person_id: record.person_id.to_string(),
        pseudonym: record.pseudonym.to_string(),
        token_iss: record.token_iss.clone(),
        token_jti: record.token_jti.as_ref().map(Jti::to_string),
        evidence: record.evidence.clone(),
        scope: record.scope.map(|s| s.as_str().to_string()),
        reason_code: record.reason_code.clone(),
        not_after: record.not_after,
        requested_by: by.to_string(),
    }));
    let change = StateChange::RequestSuspension(Box::new(record.clone()));
    let entry = ledger.prepare(body, EntryKind::State(change))?;
    // Refused only if the person is gone: in words that name no person, for the site.
    record.idx = ledger.append_decided(entry).await.map_err(|e| match e {
        AppendError::Refused(refusal) if refusal.is_not_found() => {
            ServiceError::NotFound("no such person".into())
        }
        AppendError::Refused(_) => ServiceError::Conflict(
            "the person was merged into another person meanwhile: request again".into(),
        ),
        e => e.into(),
    })?;
    Ok(record)
}

/// `site`'s request `id`.
pub async fn of_site(
    ledger: &Ledger,
    site: &Site,
    id: &str,
) -> Result<SuspensionRequestRecord, ServiceError> {
    ledger
        .reader
        .suspension_request(id)
        .await?
        .filter(|r| r.site == *site)
        .ok_or_else(|| ServiceError::NotFound("no such suspension request of this site".into()))
}

/// Accepts `vo`'s pending request `id`: suspends its person at every site of the VO, on the
/// terms `asked` gives, else those the site proposed (an `expires_at` of `null` ends none),
/// and logs the acceptance with the suspension. `by` is the caller. Returns the request as
/// decided (naming the suspension).
pub async fn accept(
    ledger: &Ledger,
    by: &str,
    vo: &Vo,
    id: &str,
    asked: AcceptSuspensionRequest,
) -> Result<SuspensionRequestRecord, ServiceError> {
    let mut request = pending_in(ledger, vo, id).await?;
    let terms = AcceptSuspensionRequest {
        scope: asked
            .scope
            .or_else(|| request.scope.map(|s| s.as_str().to_string())),
        reason: None,
        reason_code: asked.reason_code.or_else(|| request.reason_code.clone()),
        expires_at: Some(asked.expires_at.unwrap_or(request.not_after)),
    };
    let reason = asked
        .reason
        .unwrap_or_else(|| format!("suspension request {} of site {}", request.id, request.site));
    let proposal_passed = asked.expires_at.is_none()
        && request
            .not_after
            .is_some_and(|t| t <= ledger.clock.now_secs());
    if proposal_passed {
        return Err(ServiceError::BadRequest(
            "the end the site proposed (expires_at) has passed: give expires_at".into(),
        ));
    }
    let (suspension_entry, suspension) =
        prepare_in_vo(ledger, by, vo, &request.person_id, &terms, &reason).await?;
    let decision = RequestDecision::Accepted {
        suspension_id: suspension.id,
    };
    let (accept_entry, decided_at) = decision_entry(ledger, &request, by, &decision)?;
    let indexes = ledger
        .append_together(vec![suspension_entry, accept_entry])
        .await?;
    decided(&mut request, by, decided_at, indexes[1], decision);
    Ok(request)
}

/// Declines `vo`'s pending request `id`, with `reason` (which the requesting site reads);
/// `by` is the caller.
pub async fn decline(
    ledger: &Ledger,
    by: &str,
    vo: &Vo,
    id: &str,
    reason: &str,
) -> Result<SuspensionRequestRecord, ServiceError> {
    validate_reason(reason).map_err(|e| ServiceError::BadRequest(e.to_string()))?;
    let mut request = pending_in(ledger, vo, id).await?;
    let decision = RequestDecision::Declined {
        reason: reason.to_string(),
    };
    let (entry, decided_at) = decision_entry(ledger, &request, by, &decision)?;
    let index = ledger.append_decided(entry).await?;
    decided(&mut request, by, decided_at, index, decision);
    Ok(request)
}

/// `vo`'s request `id`, if still pending as read now (the sequencer decides again).
async fn pending_in(
    ledger: &Ledger,
    vo: &Vo,
    id: &str,
) -> Result<SuspensionRequestRecord, ServiceError> {
    let request = ledger
        .reader
        .suspension_request(id)
        .await?
        .filter(|r| r.vo == *vo)
        .ok_or_else(|| ServiceError::NotFound("no such suspension request in this VO".into()))?;
    if request.status != RequestStatus::Pending {
        return Err(ServiceError::Conflict(format!(
            "suspension request {id} was {} already",
            request.status
        )));
    }
    Ok(request)
}

/// The entry of `by`'s `decision` on `request`, and the time it was decided (unix
/// microseconds).
fn decision_entry(
    ledger: &Ledger,
    request: &SuspensionRequestRecord,
    by: &str,
    decision: &RequestDecision,
) -> Result<(PreparedEntry, i64), ServiceError> {
    let (request_id, vo, decided_by) = (request.id.clone(), request.vo.to_string(), by.to_string());
    let body = match decision {
        RequestDecision::Accepted { suspension_id } => {
            EntryBody::SuspensionRequestAccept(SuspensionRequestAccept {
                request_id,
                vo,
                suspension_id: suspension_id.clone(),
                decided_by,
            })
        }
        RequestDecision::Declined { reason } => {
            EntryBody::SuspensionRequestDecline(SuspensionRequestDecline {
                request_id,
                vo,
                reason: reason.clone(),
                decided_by,
            })
        }
    };
    let decided_at = ledger.clock.now_micros();
    let change = StateChange::DecideRequest {
        request_id: request.id.clone(),
        decision: decision.clone(),
        decided_by: by.to_string(),
        decided_at,
    };
    Ok((ledger.prepare(body, EntryKind::State(change))?, decided_at))
}

/// The record as the decision's entry at `index` left it.
fn decided(
    request: &mut SuspensionRequestRecord,
    by: &str,
    at: i64,
    index: u64,
    decision: RequestDecision,
) {
    request.status = decision.status();
    request.decided_by = Some(by.to_string());
    request.decided_at = Some(at);
    request.decision_idx = Some(index);
    match decision {
        RequestDecision::Accepted { suspension_id } => request.suspension_id = Some(suspension_id),
        RequestDecision::Declined { reason } => request.decline_reason = Some(reason),
    }
}

fn new_id() -> Result<String, ServiceError> {
    let bytes = random_bytes::<10>().map_err(|e| ServiceError::Internal(e.to_string()))?;
    Ok(format!(
        "sr-{}",
        tokenledger_core::pseudonym::base32(&bytes)
    ))
}
