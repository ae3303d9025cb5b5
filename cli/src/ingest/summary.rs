//! What an ingest run did: counts of accepted, duplicate, rejected and skipped inputs, the
//! summary line or JSON printed at the end, and the exit code that follows from them.

use serde::Serialize;

use crate::exit;

/// Counts of one run.
#[derive(Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// New log entries.
    pub accepted: u64,
    /// Issuances the log already held (same index back).
    pub duplicates: u64,
    /// Inputs refused, by the parser or by the server.
    pub rejected: u64,
    /// Inputs with nothing to report (other event types, failed events, jobs or requests
    /// without a token).
    pub skipped: u64,
}

impl Summary {
    /// `accepted=N duplicates=N rejected=N skipped=N`.
    pub fn line(&self) -> String {
        format!(
            "accepted={} duplicates={} rejected={} skipped={}",
            self.accepted, self.duplicates, self.rejected, self.skipped
        )
    }

    /// The summary as JSON, with the error that ended the run, if any.
    pub fn json(&self, error: Option<&str>) -> serde_json::Value {
        let mut value = serde_json::to_value(self).expect("serializable");
        value["error"] = error.into();
        value
    }

    /// The code of the error that ended the run, if any; else 1 if anything was rejected,
    /// else 0.
    pub fn exit_code(&self, error: Option<u8>) -> u8 {
        match error {
            Some(code) => code,
            None if self.rejected > 0 => exit::NEGATIVE,
            None => exit::OK,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_line_is_pinned() {
        let summary = Summary {
            accepted: 5,
            duplicates: 2,
            rejected: 1,
            skipped: 3,
        };
        assert_eq!(
            summary.line(),
            "accepted=5 duplicates=2 rejected=1 skipped=3"
        );
        assert_eq!(
            summary.json(None),
            serde_json::json!({
                "accepted": 5, "duplicates": 2, "rejected": 1, "skipped": 3, "error": null
            })
        );
        assert_eq!(summary.json(Some("boom"))["error"], "boom");
    }

    #[test]
    fn exit_codes_follow_rejects_and_errors() {
        let clean = Summary {
            accepted: 3,
            duplicates: 1,
            skipped: 4,
            ..Summary::default()
        };
        assert_eq!(clean.exit_code(None), exit::OK);
        assert_eq!(Summary::default().exit_code(None), exit::OK);
        let rejected = Summary {
            rejected: 1,
            ..clean
        };
        assert_eq!(rejected.exit_code(None), exit::NEGATIVE);
        assert_eq!(rejected.exit_code(Some(exit::ERROR)), exit::ERROR);
        assert_eq!(clean.exit_code(Some(exit::REFUSED)), exit::REFUSED);
    }
}
