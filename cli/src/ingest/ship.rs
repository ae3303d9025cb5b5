//! Ships batches of reports: issuances to `POST /v1/issuances` as NDJSON, each answer line
//! matched to its input; sightings one at a time to `POST /v1/sites/{site}/sightings`, each
//! answer mapped to its input's outcome. Retries a batch that met an unreachable server (the
//! client itself asks again after a 503: [`crate::client`]).

use std::sync::Arc;
use std::time::Duration;

use tokenledger_core::wire::{Appended, ErrorDetail, LineResult, Logged};

use super::formats::Report;
use super::progress::Progress;
use crate::client::{ApiPath, Client, ClientError};

/// Largest request body sent, in bytes; a batch is shipped early when it reaches this size
/// (the server's default limit is 8 MiB).
pub const MAX_BATCH_BYTES: usize = 4 << 20;
/// Waits before each retry of a batch that met an unreachable server; then the run fails.
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

    pub fn push(&mut self, origin: Origin, report: &Report) {
        match report {
            Report::Issuance(report) => serde_json::to_writer(&mut self.body, report),
            Report::Sighting(report) => serde_json::to_writer(&mut self.body, report),
        }
        .expect("a report serializes");
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
    /// An issuance, logged now or before, with its receipt.
    Appended(Appended),
    /// A sighting, logged at this index.
    Logged(Logged),
    Rejected(ErrorDetail),
}

/// Where the reports go.
#[derive(Clone, Debug)]
pub enum Destination {
    /// `POST /v1/issuances`, in NDJSON batches.
    Issuances,
    /// `POST /v1/sites/{site}/sightings`, one report a request.
    Sightings { site: String, path: ApiPath },
}

impl Destination {
    /// The sightings of `site`.
    pub fn sightings(site: &str) -> Result<Destination, ClientError> {
        Ok(Destination::Sightings {
            site: site.to_owned(),
            path: ApiPath::new(&["sites", site, "sightings"])?,
        })
    }
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
    destination: Destination,
    /// Where retries are announced.
    progress: Progress,
}

impl<'a> Shipper<'a> {
    pub fn new(client: &'a Client, destination: Destination, progress: Progress) -> Shipper<'a> {
        Shipper {
            client,
            destination,
            progress,
        }
    }

    /// Ships the batch (emptying it) and returns each input's outcome, in order.
    pub fn ship(&self, batch: &mut Batch) -> Result<Vec<(Origin, Outcome)>, ShipError> {
        let (origins, body) = batch.take();
        if origins.is_empty() {
            return Ok(Vec::new());
        }
        match &self.destination {
            Destination::Issuances => {
                let answer =
                    self.with_retries(|| self.client.post_ndjson(ISSUANCES_PATH, &body))?;
                let outcomes = match_answer(&answer, origins.len())?;
                Ok(origins.into_iter().zip(outcomes).collect())
            }
            Destination::Sightings { site, path } => {
                let reports = body.split(|b| *b == b'\n').filter(|r| !r.is_empty());
                origins
                    .into_iter()
                    .zip(reports)
                    .map(|(origin, report)| Ok((origin, self.sighting(site, path, report)?)))
                    .collect()
            }
        }
    }

    /// Posts one sighting. A report the server refuses (400 invalid, 404 no such token in the
    /// site's VOs, 409 several issuers logged its jti, 410 its issuance redacted after
    /// retention) is that input's reject; an unknown site, a refused credential or any other
    /// error ends the run.
    fn sighting(&self, site: &str, path: &ApiPath, report: &[u8]) -> Result<Outcome, ShipError> {
        match self.with_retries(|| self.client.post_json(path, report)) {
            Ok(answer) => serde_json::from_str(&answer)
                .map(Outcome::Logged)
                .map_err(|e| ShipError::Protocol(format!("sighting answer: {e}"))),
            Err(ClientError::Status {
                status: status @ (400 | 404 | 409 | 410),
                code,
                message,
                ..
            }) if !(status == 404 && message == unknown_site_message(site)) => {
                Ok(Outcome::Rejected(ErrorDetail {
                    code: code.unwrap_or_else(|| format!("http_{status}")),
                    message,
                }))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn with_retries(
        &self,
        post: impl Fn() -> Result<String, ClientError>,
    ) -> Result<String, ClientError> {
        let mut delays = RETRY_DELAYS.iter();
        loop {
            match post() {
                Err(e) if e.is_unreachable() => {
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

/// The server's 404 message for a site it does not know (server/src/api/sites.rs); the other
/// 404 of a sighting, an unknown token, is that report's reject.
fn unknown_site_message(site: &str) -> String {
    format!("no site `{site}`")
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
    use tokenledger_core::wire::{AppendStatus, IssuanceReport};

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
        let report = Report::Issuance(IssuanceReport {
            token: Some("a.b.c".into()),
            feed: Some("jwt-lines".into()),
            ..IssuanceReport::default()
        });
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
