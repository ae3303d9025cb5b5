//! One ingest run's pipeline: parse each input, batch the reports, ship full batches on
//! request, and record every outcome (counts, rejects, receipts, progress).

use std::sync::Arc;

use super::formats::{Parsed, Parser};
use super::lines::Line;
use super::progress::Progress;
use super::records::Records;
use super::ship::{Batch, Origin, Outcome, Shipper};
use super::summary::Summary;

pub struct Session<'a> {
    parser: Parser,
    batch: Batch,
    shipper: Shipper<'a>,
    records: Records,
    progress: Progress,
}

impl<'a> Session<'a> {
    pub fn new(
        parser: Parser,
        shipper: Shipper<'a>,
        batch_lines: usize,
        records: Records,
        progress: Progress,
    ) -> Session<'a> {
        Session {
            parser,
            batch: Batch::new(batch_lines),
            shipper,
            records,
            progress,
        }
    }

    pub fn parser(&self) -> &Parser {
        &self.parser
    }

    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    pub fn summary(&self) -> Summary {
        self.records.summary()
    }

    /// Parses one input line (blank lines are ignored) and batches, skips or rejects it.
    pub fn handle_line(&mut self, file: &Arc<str>, line: Line) -> anyhow::Result<()> {
        let parsed = match &line.text {
            Ok(text) if text.trim().is_empty() => return Ok(()),
            Ok(text) => self.parser.parse_line(text),
            Err(e) => Err(e.clone()),
        };
        let origin = Origin {
            file: file.clone(),
            line: line.number,
        };
        self.handle(origin, parsed)
    }

    /// Batches a report, counts a skip, or records a local reject.
    pub fn handle(&mut self, origin: Origin, parsed: Parsed) -> anyhow::Result<()> {
        match parsed {
            Ok(Some(report)) => self.batch.push(origin, &report),
            Ok(None) => self.records.skipped(),
            Err(e) => self.records.rejected(&origin, e.code, &e.message)?,
        }
        Ok(())
    }

    /// Whether the batch should be shipped before reading on.
    pub fn is_full(&self) -> bool {
        self.batch.is_full()
    }

    /// Ships the batch (if any) and records each outcome; the files are flushed either way.
    pub fn flush(&mut self) -> anyhow::Result<()> {
        if !self.batch.is_empty() {
            for (origin, outcome) in self.shipper.ship(&mut self.batch)? {
                match outcome {
                    Outcome::Appended(appended) => self.records.appended(&origin, &appended)?,
                    Outcome::Logged(_) => self.records.logged(),
                    Outcome::Rejected(error) => {
                        self.records
                            .rejected(&origin, &error.code, &error.message)?
                    }
                }
            }
        }
        self.records.flush()?;
        self.progress.show(&self.records.summary());
        Ok(())
    }
}
