//! Site → VO suspension requests: a site asks its VO's security officers to suspend, at every
//! site of the VO, the person behind the site's pseudonym, with its evidence; the officers
//! accept (a VO-wide suspension) or decline with a reason. The three log entries, the states
//! of a request, and the evidence rule.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::entry::EntryError;
use crate::export::is_bidi_formatting;

/// Longest `evidence` accepted, in characters (as JSON Schema's `maxLength` counts them).
pub const MAX_EVIDENCE_LEN: usize = 2048;

/// A site asks the VO to suspend a person at every site of the VO. It names the person by
/// the site's pseudonym only (the `person_id` is the ledger's, for the VO and the sequencer).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SuspensionRequest {
    pub request_id: String,
    /// The requesting site.
    pub site: String,
    pub vo: String,
    pub person_id: String,
    /// The requesting site's pseudonym of the person.
    pub pseudonym: String,
    /// The token the site named, if it named one instead of the pseudonym.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_jti: Option<String>,
    /// What the site saw, in its words.
    pub evidence: String,
    /// The terms the site proposes: `compute`, `storage` or `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    /// Unix seconds after which the proposed suspension would end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<i64>,
    pub requested_by: String,
}

/// A VO security officer accepted a request: suspension `suspension_id` (logged just before,
/// in the same batch) is its outcome.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SuspensionRequestAccept {
    pub request_id: String,
    pub vo: String,
    pub suspension_id: String,
    pub decided_by: String,
}

/// A VO security officer declined a request, and why (the requesting site reads the reason).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SuspensionRequestDecline {
    pub request_id: String,
    pub vo: String,
    pub reason: String,
    pub decided_by: String,
}

/// Where a request stands.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RequestStatus {
    /// Waiting for the VO's security officers.
    Pending,
    /// A VO-wide suspension was made from it.
    Accepted,
    /// Declined, with a reason.
    Declined,
}

impl RequestStatus {
    pub const ALL: [RequestStatus; 3] = [
        RequestStatus::Pending,
        RequestStatus::Accepted,
        RequestStatus::Declined,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Pending => "pending",
            RequestStatus::Accepted => "accepted",
            RequestStatus::Declined => "declined",
        }
    }
}

impl fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status that is none of [`RequestStatus::ALL`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("status is `pending`, `accepted` or `declined`")]
pub struct UnknownStatus;

impl FromStr for RequestStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<RequestStatus, UnknownStatus> {
        RequestStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or(UnknownStatus)
    }
}

/// Checks a request's evidence: 1 to [`MAX_EVIDENCE_LEN`] characters, not only blanks; line
/// breaks and tabs allowed (log excerpts), no other control characters and no bidirectional
/// formatting characters (which would show an officer the text in another order).
pub fn validate_evidence(evidence: &str) -> Result<(), EntryError> {
    let invalid = |reason: &str| EntryError::Invalid {
        claim: "evidence".into(),
        reason: reason.into(),
    };
    if evidence.trim().is_empty() {
        return Err(invalid("is required: say what the site saw"));
    }
    if evidence.len() > MAX_EVIDENCE_LEN && evidence.chars().count() > MAX_EVIDENCE_LEN {
        return Err(invalid("is longer than 2048 characters"));
    }
    if evidence
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(invalid(
            "contains control characters other than line breaks and tabs",
        ));
    }
    if evidence.chars().any(is_bidi_formatting) {
        return Err(invalid(
            "contains bidirectional formatting characters (U+061C, U+200E, U+200F, \
             U+202A to U+202E, U+2066 to U+2069)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_keeps_line_breaks_and_refuses_other_controls_bidi_formatting_blanks_and_length() {
        assert_eq!(
            validate_evidence("job 123.0 on ce01:\n\tscanned ports"),
            Ok(())
        );
        assert_eq!(
            validate_evidence(&"\u{e9}".repeat(MAX_EVIDENCE_LEN)),
            Ok(())
        );
        for bad in [
            "",
            " \n\t",
            "a\u{0}b",
            "a\u{1b}[31m",
            "a\u{85}b",
            "job 1.0 \u{202e}nacs\u{202c}",
            "a\u{2066}b",
            "a\u{200f}b",
            "a\u{61c}b",
        ] {
            assert!(validate_evidence(bad).is_err(), "{bad:?}");
        }
        let err = validate_evidence(&"\u{e9}".repeat(MAX_EVIDENCE_LEN + 1)).unwrap_err();
        assert!(err.to_string().contains("2048 characters"), "{err}");
    }

    #[test]
    fn the_three_entries_name_their_type_and_read_back() {
        use crate::entry::{EntryBody, LogEntry};
        let request = SuspensionRequest {
            request_id: "sr-1".into(),
            site: "CERN-PROD".into(),
            vo: "atlas".into(),
            person_id: "pe-1".into(),
            pseudonym: "p1-x".into(),
            token_iss: None,
            token_jti: None,
            evidence: "job 1.0:\nscans".into(),
            scope: Some("compute".into()),
            reason_code: None,
            not_after: None,
            requested_by: "credential:c".into(),
        };
        let bodies = [
            (
                EntryBody::SuspensionRequest(Box::new(request)),
                "suspension_request",
            ),
            (
                EntryBody::SuspensionRequestAccept(SuspensionRequestAccept {
                    request_id: "sr-1".into(),
                    vo: "atlas".into(),
                    suspension_id: "su-1".into(),
                    decided_by: "credential:o".into(),
                }),
                "suspension_request_accept",
            ),
            (
                EntryBody::SuspensionRequestDecline(SuspensionRequestDecline {
                    request_id: "sr-1".into(),
                    vo: "atlas".into(),
                    reason: "INC-1".into(),
                    decided_by: "credential:o".into(),
                }),
                "suspension_request_decline",
            ),
        ];
        for (body, kind) in bodies {
            let entry = LogEntry::new(1, body);
            let bytes = entry.canonical_bytes().unwrap();
            let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(value["type"], kind);
            assert_eq!(LogEntry::from_canonical_bytes(&bytes).unwrap(), entry);
        }
    }

    #[test]
    fn statuses_read_back_as_written() {
        for status in RequestStatus::ALL {
            assert_eq!(status.as_str().parse(), Ok(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        assert_eq!("open".parse::<RequestStatus>(), Err(UnknownStatus));
    }
}
