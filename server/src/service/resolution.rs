//! Resolution answers are logged before they are given: who asked, in which VO, what, why,
//! and how much was revealed (a miss too).

use tokenledger_core::entry::{EntryBody, Resolution};

use super::{Ledger, ServiceError};
use crate::sequencer::EntryKind;

/// Logs that `requester` resolved `target` in `vo` (`action`, for `reason`), revealing
/// `revealed` records; returns the entry's index.
pub async fn log(
    ledger: &Ledger,
    requester: &str,
    vo: &str,
    action: &str,
    target: &str,
    reason: &str,
    revealed: u64,
) -> Result<u64, ServiceError> {
    let body = EntryBody::Resolution(Resolution {
        requester: requester.to_string(),
        vo: vo.to_string(),
        action: action.to_string(),
        target: target.to_string(),
        reason: reason.to_string(),
        revealed,
    });
    ledger
        .append(body, EntryKind::Resolution { vo: vo.to_string() })
        .await
}
