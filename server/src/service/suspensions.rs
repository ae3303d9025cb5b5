//! Suspensions and lifts: a site suspends a pseudonym (a person), one leaked token or a
//! client of an issuer at itself; a VO's security officers suspend a person, token or client
//! at every site of the VO. A person or client suspension may be a not-before cut-off: only
//! the tokens issued before it. Each is a log entry; the site's next blocklist fetch carries
//! it. Whether the person is still one (not merged away) and the suspension not yet lifted is
//! decided by the sequencer.

use tokenledger_core::blocklist::{ReasonCode, Scope, Target, TermError};
use tokenledger_core::entry::{EntryBody, Lift, Suspension, check_id, validate_reason};
use tokenledger_core::wire::SuspendRequest;

use super::sites::{issuance_in, person_of};
use super::{Ledger, ServiceError};
use crate::keys::random_bytes;
use crate::preconditions::Refusal;
use crate::sequencer::{AppendError, EntryKind};
use crate::store::{StateChange, SuspensionRecord};

/// Who or what a suspension targets, resolved.
struct Subject {
    vo: String,
    /// The person (also of a single token); none for a client.
    person_id: Option<String>,
    /// `(iss, jti)` for a single-token suspension, and the token's `exp`.
    token: Option<(String, String, Option<i64>)>,
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
    site: &str,
    vos: &[String],
    req: SuspendRequest,
    clock_skew_secs: i64,
) -> Result<SuspensionRecord, ServiceError> {
    let terms = terms(ledger, &req, clock_skew_secs)?;
    let target = match (&req.subject, &req.jti, &req.client) {
        (Some(pseudonym), None, None) if terms.target == Target::Person => {
            let (_, vo, person_id) = ledger
                .reader
                .pseudonym(pseudonym)
                .await?
                .filter(|(at, _, _)| at == site)
                .ok_or_else(|| ServiceError::NotFound("no such pseudonym at this site".into()))?;
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
    suspend(ledger, by, Some(site.to_string()), target, terms).await
}

/// Suspends at every site of `vo` a person (`req.subject`, its id), the person behind a jti,
/// one token, or a client, as `req` asks; `by` is the caller. A cut-off may lie at most
/// `clock_skew_secs` ahead of the ledger's clock.
pub async fn suspend_in_vo(
    ledger: &Ledger,
    by: &str,
    vo: &str,
    req: SuspendRequest,
    clock_skew_secs: i64,
) -> Result<SuspensionRecord, ServiceError> {
    let terms = terms(ledger, &req, clock_skew_secs)?;
    let vos = [vo.to_string()];
    let target = match (&req.subject, &req.jti, &req.client) {
        (Some(person), None, None) if terms.target == Target::Person => Subject {
            vo: vo.to_string(),
            person_id: Some(person.clone()),
            token: None,
            client: None,
        },
        (None, Some(jti), None) if terms.target != Target::Client => {
            jti_target(ledger, &vos, jti, req.iss.as_deref(), terms.target).await?
        }
        (None, None, Some(client)) if terms.target == Target::Client => {
            client_target(ledger, &vos, req.iss.as_deref(), client, true).await?
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
    vos: &[String],
    jti: &str,
    iss: Option<&str>,
    target: Target,
) -> Result<Subject, ServiceError> {
    check_id("jti", jti).map_err(|e| ServiceError::BadRequest(e.to_string()))?;
    let (_, issuance) = issuance_in(ledger.reader.as_ref(), vos, jti, iss).await?;
    let person_id = person_of(ledger.reader.as_ref(), &issuance).await?;
    Ok(Subject {
        vo: issuance.vo.clone(),
        person_id: Some(person_id),
        token: (target == Target::Token)
            .then(|| (issuance.iss.clone(), issuance.jti.clone(), issuance.exp)),
        client: None,
    })
}

/// The client `client_id` of issuer `iss`, in the one of `vos` that logged a token of it:
/// a client the ledger has never seen is a typo until shown otherwise (404). A client tag
/// names no VO, so a VO-wide suspension (`vo_wide`) of a client whose tokens are logged in
/// other VOs too would stop their users at every site serving both: refused (409).
async fn client_target(
    ledger: &Ledger,
    vos: &[String],
    iss: Option<&str>,
    client_id: &str,
    vo_wide: bool,
) -> Result<Subject, ServiceError> {
    let bad = |e: tokenledger_core::entry::EntryError| ServiceError::BadRequest(e.to_string());
    let iss = iss.ok_or_else(|| {
        ServiceError::BadRequest("a client suspension needs `iss`, the client's issuer".into())
    })?;
    check_id("iss", iss).map_err(bad)?;
    check_id("client", client_id).map_err(bad)?;
    let (mut found, others): (Vec<String>, Vec<String>) = ledger
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
            others.join(", ")
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

async fn suspend(
    ledger: &Ledger,
    by: &str,
    site: Option<String>,
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
        site: site.clone(),
        vo: target.vo.clone(),
        person_id: target.person_id.clone(),
        pseudonym,
        target: terms.target.as_str().into(),
        token_iss: token_iss.clone(),
        token_jti: token_jti.clone(),
        client_iss: client_iss.clone(),
        client_id: client_id.clone(),
        scope: terms.scope.as_str().into(),
        reason: terms.reason,
        reason_code: terms.reason_code.as_str().into(),
        created_by: by.to_string(),
        not_after,
        issued_before: terms.issued_before,
    }));
    let mut record = SuspensionRecord {
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
