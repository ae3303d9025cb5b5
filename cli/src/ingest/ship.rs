//! Ships batches of issuance reports to `POST /v1/issuances` as NDJSON, retries what may
//! succeed later (unreachable server, 503), and matches each answer line to its input.

use std::sync::Arc;
use std::time::Duration;

use tokenledger_core::wire::{Appended, ErrorDetail, IssuanceReport, LineResult};

use super::progress::Progress;
use crate::client::{Client, ClientError};

/// Largest request body sent, in bytes; a batch is shipped early when it reaches this size
/// (the server's default limit is 8 MiB).
pub const MAX_BATCH_BYTES: usize = 4 << 20;
/// Waits before each retry of a batch that failed transiently; then the run fails.
const RETRY_DELAYS: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
];
const ISSUANCES_PATH: &str = "/v1/issuances";

/// Where an input came from: the file as named on the command line, and its line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: Arc<str>,
    pub line: u64,
}

/// Reports waiting to be shipped, in input order, as the NDJSON body they will be sent as.
#[derive(Debug)]
pub struct Batch {
    origins: Vec<Origin>,
    body: Vec<u8>,
    max_lines: usize,
}

impl Batch {
    pub fn new(max_lines: usize) -> Batch {
        Batch {
            origins: Vec::new(),
            body: Vec::new(),
            max_lines,
        }
    }

    pub fn push(&mut self, origin: Origin, report: &IssuanceReport) {
        serde_json::to_writer(&mut self.body, report).expect("a report serializes");
        self.body.push(b'\n');
        self.origins.push(origin);
    }

    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }

    /// Whether the batch should be shipped now: it has `--batch` lines, or the byte limit.
    pub fn is_full(&self) -> bool {
        self.origins.len() >= self.max_lines || self.body.len() >= MAX_BATCH_BYTES
    }

    /// Empties the batch, giving back the origins of what it held.
    fn take(&mut self) -> (Vec<Origin>, Vec<u8>) {
        (
            std::mem::take(&mut self.origins),
            std::mem::take(&mut self.body),
        )
    }
}

/// The server's answer to one report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Appended(Appended),
    Rejected(ErrorDetail),
}

/// Why a whole batch failed (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the server's answer does not match the request: {0}")]
    Protocol(String),
}

/// Sends batches to one server.
pub struct Shipper<'a> {
    client: &'a Client,
    /// Where retries are announced.
    progress: Progress,
}

impl<'a> Shipper<'a> {
    pub fn new(client: &'a Client, progress: Progress) -> Shipper<'a> {
        Shipper { client, progress }
    }

    /// Ships the batch (emptying it) and returns each input's outcome, in order.
    pub fn ship(&self, batch: &mut Batch) -> Result<Vec<(Origin, Outcome)>, ShipError> {
        let (origins, body) = batch.take();
        if origins.is_empty() {
            return Ok(Vec::new());
        }
        let answer = self.post_with_retries(&body)?;
        let outcomes = match_answer(&answer, origins.len())?;
        Ok(origins.into_iter().zip(outcomes).collect())
    }

    fn post_with_retries(&self, body: &[u8]) -> Result<String, ClientError> {
        let mut delays = RETRY_DELAYS.iter();
        loop {
            match self.client.post_ndjson(ISSUANCES_PATH, body) {
                Err(e) if e.is_transient() => {
                    let Some(delay) = delays.next() else {
                        return Err(e);
                    };
                    self.progress
                        .note(&format!("{e}; retrying in {}s", delay.as_secs()));
                    std::thread::sleep(*delay);
                }
                other => return other,
            }
        }
    }
}

/// Reads an NDJSON answer: exactly one result line per report, rejected lines numbered in order.
fn match_answer(answer: &str, expected: usize) -> Result<Vec<Outcome>, ShipError> {
    let lines: Vec<&str> = answer.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() != expected {
        return Err(ShipError::Protocol(format!(
            "{} answer lines for {expected} reports",
            lines.len()
        )));
    }
    lines
        .into_iter()
        .enumerate()
        .map(|(i, line)| {
            let result: LineResult = serde_json::from_str(line)
                .map_err(|e| ShipError::Protocol(format!("answer line {}: {e}", i + 1)))?;
            match result {
                LineResult::Appended(appended) => Ok(Outcome::Appended(appended)),
                LineResult::Rejected { line, error } if line == i as u64 + 1 => {
                    Ok(Outcome::Rejected(error))
                }
                LineResult::Rejected { line, .. } => Err(ShipError::Protocol(format!(
                    "answer line {} is about request line {line}",
                    i + 1
                ))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokenledger_core::merkle::Hash;
    use tokenledger_core::wire::AppendStatus;

    fn origin(line: u64) -> Origin {
        Origin {
            file: "in.jwt".into(),
            line,
        }
    }

    fn appended(index: u64, status: &str) -> String {
        json!({
            "index": index,
            "leaf_hash": Hash([7; 32]),
            "integrated_at": 1,
            "receipt": "sig",
            "status": status,
        })
        .to_string()
    }

    #[test]
    fn a_batch_is_the_ndjson_body_of_its_reports() {
        let mut batch = Batch::new(2);
        let report = IssuanceReport {
            token: Some("a.b.c".into()),
            feed: Some("jwt-lines".into()),
            ..IssuanceReport::default()
        };
        batch.push(origin(1), &report);
        assert!(!batch.is_full());
        batch.push(origin(3), &report);
        assert!(batch.is_full());
        let (origins, body) = batch.take();
        assert_eq!(origins, [origin(1), origin(3)]);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "{\"token\":\"a.b.c\",\"feed\":\"jwt-lines\"}\n".repeat(2)
        );
        assert!(batch.is_empty());
    }

    #[test]
    fn answers_are_matched_in_order() {
        let answer = format!(
            "{}\n{}\n{}\n",
            appended(4, "created"),
            json!({"line": 2, "error": {"code": "invalid_token", "message": "bad signature"}}),
            appended(1, "duplicate"),
        );
        let outcomes = match_answer(&answer, 3).unwrap();
        assert!(
            matches!(&outcomes[0], Outcome::Appended(a) if a.index == 4 && a.status == AppendStatus::Created)
        );
        assert_eq!(
            outcomes[1],
            Outcome::Rejected(ErrorDetail {
                code: "invalid_token".into(),
                message: "bad signature".into()
            })
        );
        assert!(
            matches!(&outcomes[2], Outcome::Appended(a) if a.status == AppendStatus::Duplicate)
        );
    }

    #[test]
    fn mismatched_answers_are_protocol_errors() {
        let one = format!("{}\n", appended(0, "created"));
        assert!(matches!(match_answer(&one, 2), Err(ShipError::Protocol(_))));
        let misnumbered = json!({"line": 5, "error": {"code": "c", "message": "m"}}).to_string();
        assert!(matches!(
            match_answer(&misnumbered, 1),
            Err(ShipError::Protocol(_))
        ));
        assert!(matches!(
            match_answer("{\"what\": 1}", 1),
            Err(ShipError::Protocol(_))
        ));
    }
}
