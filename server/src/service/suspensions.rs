//! Suspensions and lifts: a site suspends a pseudonym (a person), one leaked token or a
//! client of an issuer at itself; a VO's security officers suspend a person, token or client
//! at every site of the VO. A person or client suspension may be a not-before cut-off: only
//! the tokens issued before it. Each is a log entry; the site's next blocklist fetch carries
//! it. Whether the person is still one (not merged away) and the suspension not yet lifted is
//! decided by the sequencer.

use tokenledger_core::blocklist::{ReasonCode, Scope, Target, TermError};
use tokenledger_core::entry::{EntryBody, EntryError, Lift, Suspension, check_id, validate_reason};
use tokenledger_core::ids::{Jti, PersonId, Pseudonym, Site, Vo};
use tokenledger_core::wire::{AcceptSuspensionRequest, SuspendRequest};

use super::sites::{issuance_in, person_of, person_of_pseudonym};
use super::{Ledger, ServiceError};
use crate::keys::random_bytes;
use crate::preconditions::Refusal;
use crate::sequencer::{AppendError, EntryKind, PreparedEntry};
use crate::store::{StateChange, SuspensionRecord};

/// Who or what a suspension targets, resolved.
struct Subject {
    vo: Vo,
    /// The person (also of a single token); none for a client.
    person_id: Option<PersonId>,
    /// `(iss, jti)` for a single-token suspension, and the token's `exp`.
    token: Option<(String, Jti, Option<i64>)>,
    /// `(iss, client_id)` for a client suspension.
    client: Option<(String, String)>,
}

/// What every suspension request carries.
struct Terms {
    target: Target,
    scope: Scope,
    reason: String,
    reason_code: ReasonCode,
    expires_at: Option<i64>,
    issued_before: Option<i64>,
}

/// Suspends at `site` (serving `vos`) the person behind a pseudonym (`req.subject`) or a
/// jti, one token, or a client, as `req` asks; `by` is the caller. A cut-off may lie at most
/// `clock_skew_secs` ahead of the ledger's clock.
pub async fn suspend_at_site(
    ledger: &Ledger,
    by: &str,
    site: &Site,
    vos: &[Vo],
    req: SuspendRequest,
    clock_skew_secs: i64,
) -> Result<SuspensionRecord, ServiceError> {
    let terms = terms(ledger, &req, clock_skew_secs)?;
    let target = match (&req.subject, &req.jti, &req.client) {
        (Some(pseudonym), None, None) if terms.target == Target::Person => {
            let pseudonym = Pseudonym::unchecked(pseudonym.as_str());
            let (vo, person_id) =
                person_of_pseudonym(ledger.reader.as_ref(), site, vos, &pseudonym).await?;
            Subject {
                vo,
                person_id: Some(person_id),
                token: None,
                client: None,
            }
        }
        (None, Some(jti), None) if terms.target != Target::Client => {
            jti_target(ledger, vos, jti, req.iss.as_deref(), terms.target).await?
        }
        (None, None, Some(client)) if terms.target == Target::Client => {
            client_target(ledger, vos, req.iss.as_deref(), client, false).await?
        }
        _ => {
            return Err(ServiceError::BadRequest(
                "give one of `pseudonym` (a person), `jti` (its person, or with target token \
                 the token only) and `client` with `iss` (a client)"
                    .into(),
            ));
        }
    };
    suspend(ledger, by, Some(site.clone()), target, terms).await
}

/// Suspends at every site of `vo` a person (`req.subject`, its id), the person behind a jti,
/// one token, or a client, as `req` asks; `by` is the caller. A cut-off may lie at most
/// `clock_skew_secs` ahead of the ledger's clock.
pub async fn suspend_in_vo(
    ledger: &Ledger,
    by: &str,
    vo: &Vo,
    req: SuspendRequest,
    clock_skew_secs: i64,
) -> Result<SuspensionRecord, ServiceError> {
    let terms = terms(ledger, &req, clock_skew_secs)?;
    let vos = std::slice::from_ref(vo);
    let target = match (&req.subject, &req.jti, &req.client) {
        (Some(person), None, None) if terms.target == Target::Person => Subject {
            vo: vo.clone(),
            person_id: Some(PersonId::unchecked(person.as_str())),
            token: None,
            client: None,
        },
        (None, Some(jti), None) if terms.target != Target::Client => {
            jti_target(ledger, vos, jti, req.iss.as_deref(), terms.target).await?
        }
        (None, None, Some(client)) if terms.target == Target::Client => {
            client_target(ledger, vos, req.iss.as_deref(), client, true).await?
        }
        _ => {
            return Err(ServiceError::BadRequest(
                "give one of `person`, `jti` (its person, or with target token the token only) \
                 and `client` with `iss` (a client)"
                    .into(),
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

/// The terms of `asked`, parsed and checked; a cut-off may lie at most `clock_skew_secs` ahead.
fn terms(
    ledger: &Ledger,
    asked: &SuspendRequest,
    clock_skew_secs: i64,
) -> Result<Terms, ServiceError> {
    let bad = |m: &str| ServiceError::BadRequest(m.to_string());
    let term = |e: TermError| ServiceError::BadRequest(e.to_string());
    let default_target = if asked.client.is_some() {
        "client"
    } else {
        "person"
    };
    let target: Target = asked
        .target
        .as_deref()
        .unwrap_or(default_target)
        .parse()
        .map_err(term)?;
    let scope: Scope = asked
        .scope
        .as_deref()
        .unwrap_or("all")
        .parse()
        .map_err(term)?;
    validate_reason(&asked.reason).map_err(|e| ServiceError::BadRequest(e.to_string()))?;
    let reason_code: ReasonCode = asked
        .reason_code
        .as_deref()
        .unwrap_or("suspended")
        .parse()
        .map_err(term)?;
    let now = ledger.clock.now_secs();
    if asked.expires_at.is_some_and(|t| t <= now) {
        return Err(bad("expires_at must be in the future (unix seconds)"));
    }
    if let Some(cut_off) = asked.issued_before {
        if target == Target::Token {
            return Err(bad(
                "issued_before applies to a person or a client; a token suspension names one token",
            ));
        }
        if cut_off < 0 {
            return Err(bad("issued_before is unix seconds, not negative"));
        }
        if cut_off > now + clock_skew_secs {
            return Err(bad(
                "issued_before must not be in the future (unix seconds): a cut-off suspends \
                 tokens already issued; to stop new ones too, suspend without it",
            ));
        }
    }
    Ok(Terms {
        target,
        scope,
        reason: asked.reason.clone(),
        reason_code,
        expires_at: asked.expires_at,
        issued_before: asked.issued_before,
    })
}

async fn jti_target(
    ledger: &Ledger,
    vos: &[Vo],
    jti: &str,
    iss: Option<&str>,
    target: Target,
) -> Result<Subject, ServiceError> {
    let jti = Jti::parse(jti).map_err(bad_request)?;
    let (_, issuance) = issuance_in(ledger, vos, &jti, iss).await?;
    let person_id = person_of(ledger.reader.as_ref(), &issuance).await?;
    Ok(Subject {
        vo: Vo::unchecked(issuance.vo),
        person_id: Some(person_id),
        token: (target == Target::Token).then_some((issuance.iss, jti, issuance.exp)),
        client: None,
    })
}

/// The client `client_id` of issuer `iss`, in the one of `vos` that logged a token of it:
/// a client the ledger has never seen is a typo until shown otherwise (404). A client tag
/// names no VO, so a VO-wide suspension (`vo_wide`) of a client whose tokens are logged in
/// other VOs too would stop their users at every site serving both: refused (409).
async fn client_target(
    ledger: &Ledger,
    vos: &[Vo],
    iss: Option<&str>,
    client_id: &str,
    vo_wide: bool,
) -> Result<Subject, ServiceError> {
    let iss = iss.ok_or_else(|| {
        ServiceError::BadRequest("a client suspension needs `iss`, the client's issuer".into())
    })?;
    check_id("iss", iss).map_err(bad_request)?;
    check_id("client", client_id).map_err(bad_request)?;
    let (mut found, others): (Vec<Vo>, Vec<Vo>) = ledger
        .reader
        .client_vos(iss, client_id)
        .await?
        .into_iter()
        .partition(|vo| vos.contains(vo));
    if vo_wide && !found.is_empty() && !others.is_empty() {
        return Err(ServiceError::Conflict(format!(
            "tokens of this client are logged in other VOs too ({}): a client suspension \
             names no VO, so it would stop their users as well at every site serving both; \
             ask the sites to suspend the client instead",
            others
                .iter()
                .map(|vo| vo.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    match found.len() {
        1 => Ok(Subject {
            vo: found.pop().expect("one"),
            person_id: None,
            token: None,
            client: Some((iss.to_string(), client_id.to_string())),
        }),
        0 => Err(ServiceError::NotFound(
            "no token of this client of this issuer is logged".into(),
        )),
        _ => Err(ServiceError::Conflict(
            "this client's tokens are of several VOs of the site: ask each VO to suspend it".into(),
        )),
    }
}

/// A VO-wide suspension of person `person_id` of `vo` on the terms given (as the API takes
/// them; no cut-off, as an accept asks for none), prepared but not appended: for a suspension
/// logged in one job with the entry that links it (an accepted suspension request). `by` is
/// the caller.
pub async fn prepare_in_vo(
    ledger: &Ledger,
    by: &str,
    vo: &Vo,
    person_id: &PersonId,
    terms_asked: &AcceptSuspensionRequest,
    reason: &str,
) -> Result<(PreparedEntry, SuspensionRecord), ServiceError> {
    let asked = SuspendRequest {
        subject: Some(person_id.to_string()),
        reason: reason.to_string(),
        scope: terms_asked.scope.clone(),
        reason_code: terms_asked.reason_code.clone(),
        expires_at: terms_asked.expires_at.flatten(),
        ..SuspendRequest::default()
    };
    // Without a cut-off there is no clock skew to allow for.
    let terms = terms(ledger, &asked, 0)?;
    let target = Subject {
        vo: vo.clone(),
        person_id: Some(person_id.clone()),
        token: None,
        client: None,
    };
    prepare_suspension(ledger, by, None, target, terms).await
}

async fn suspend(
    ledger: &Ledger,
    by: &str,
    site: Option<Site>,
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
    site: Option<Site>,
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
    let (client_iss, client_id) = match target.client {
        Some((iss, client)) => (Some(iss), Some(client)),
        None => (None, None),
    };
    let pseudonym = match (&site, &target.person_id) {
        (Some(site), Some(person)) => {
            Some(ledger.pseudonyms.hand_out(site, &target.vo, person).await?)
        }
        _ => None,
    };
    let created_at = ledger.clock.now_micros();
    let body = EntryBody::Suspension(Box::new(Suspension {
        suspension_id: id.clone(),
        site: site.as_ref().map(Site::to_string),
        vo: target.vo.to_string(),
        person_id: target.person_id.as_ref().map(PersonId::to_string),
        pseudonym: pseudonym.map(Pseudonym::into_string),
        target: terms.target.as_str().into(),
        token_iss: token_iss.clone(),
        token_jti: token_jti.as_ref().map(Jti::to_string),
        client_iss: client_iss.clone(),
        client_id: client_id.clone(),
        scope: terms.scope.as_str().into(),
        reason: terms.reason,
        reason_code: terms.reason_code.as_str().into(),
        created_by: by.to_string(),
        not_after,
        issued_before: terms.issued_before,
    }));
    let record = SuspensionRecord {
        id,
        idx: 0,
        site,
        vo: target.vo,
        person_id: target.person_id,
        token_iss,
        token_jti,
        client_iss,
        client_id,
        scope: terms.scope,
        reason_code: terms.reason_code.into_string(),
        created_by: by.to_string(),
        created_at,
        not_after,
        issued_before: terms.issued_before,
        lifted_at: None,
    };
    let change = StateChange::Suspend(Box::new(record.clone()));
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

/// A name of the request that is not one (400).
fn bad_request(e: EntryError) -> ServiceError {
    ServiceError::BadRequest(e.to_string())
}
