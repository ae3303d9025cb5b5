//! Where each input's outcome goes: the run's counts, the `--rejects` file (one JSON line per
//! rejected input), the `--receipts` file (the server's signed receipts), and the first few
//! rejects on stderr.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use serde_json::json;
use tokenledger_core::wire::{AppendStatus, Appended};

use super::progress::Progress;
use super::ship::Origin;
use super::summary::Summary;

/// Rejects printed on stderr before the rest is only counted.
const SHOWN_REJECTS: u64 = 10;

/// The sinks of one run.
pub struct Records {
    summary: Summary,
    rejects: Option<BufWriter<File>>,
    receipts: Option<BufWriter<File>>,
    /// Where the first rejects are shown.
    progress: Progress,
}

impl Records {
    /// Opens the output files: truncated for a one-shot run, appended to when following.
    pub fn open(
        rejects: Option<&Path>,
        receipts: Option<&Path>,
        append: bool,
        progress: Progress,
    ) -> anyhow::Result<Records> {
        let open = |path: &Path| -> anyhow::Result<BufWriter<File>> {
            let mut options = OpenOptions::new();
            options.create(true);
            if append {
                options.append(true);
            } else {
                options.write(true).truncate(true);
            }
            let file = options
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            Ok(BufWriter::new(file))
        };
        Ok(Records {
            summary: Summary::default(),
            rejects: rejects.map(open).transpose()?,
            receipts: receipts.map(open).transpose()?,
            progress,
        })
    }

    pub fn summary(&self) -> Summary {
        self.summary
    }

    pub fn skipped(&mut self) {
        self.summary.skipped += 1;
    }

    pub fn rejected(&mut self, origin: &Origin, code: &str, message: &str) -> anyhow::Result<()> {
        self.summary.rejected += 1;
        if self.summary.rejected <= SHOWN_REJECTS {
            self.progress.note(&format!(
                "{}:{}: rejected ({code}): {message}",
                origin.file, origin.line
            ));
            if self.summary.rejected == SHOWN_REJECTS && self.rejects.is_none() {
                self.progress
                    .note("further rejects are only counted (see --rejects FILE)");
            }
        }
        if let Some(out) = &mut self.rejects {
            let record = json!({
                "file": &*origin.file,
                "line": origin.line,
                "code": code,
                "message": message,
            });
            writeln!(out, "{record}").context("writing the rejects file")?;
        }
        Ok(())
    }

    pub fn appended(&mut self, origin: &Origin, appended: &Appended) -> anyhow::Result<()> {
        match appended.status {
            AppendStatus::Created => self.summary.accepted += 1,
            AppendStatus::Duplicate => self.summary.duplicates += 1,
        }
        if let Some(out) = &mut self.receipts {
            let mut record = serde_json::to_value(appended).expect("serializable");
            record["file"] = (*origin.file).into();
            record["line"] = origin.line.into();
            writeln!(out, "{record}").context("writing the receipts file")?;
        }
        Ok(())
    }

    /// A sighting the server logged (it signs no receipt for sightings).
    pub fn logged(&mut self) {
        self.summary.accepted += 1;
    }

    /// Pushes what was recorded so far to the files (after every batch).
    pub fn flush(&mut self) -> anyhow::Result<()> {
        for out in [&mut self.rejects, &mut self.receipts]
            .into_iter()
            .flatten()
        {
            out.flush().context("writing the rejects / receipts file")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenledger_core::merkle::Hash;

    fn quiet() -> Progress {
        Progress::new(None, true)
    }

    #[test]
    fn rejects_and_receipts_are_json_lines_with_their_origin() {
        let dir = tempfile::tempdir().unwrap();
        let (rejects, receipts) = (dir.path().join("rejects"), dir.path().join("receipts"));
        let mut records = Records::open(Some(&rejects), Some(&receipts), false, quiet()).unwrap();
        let origin = Origin {
            file: "audit.log".into(),
            line: 12,
        };
        records.rejected(&origin, "missing_jti", "no jti").unwrap();
        let appended = Appended {
            index: 3,
            leaf_hash: Hash([1; 32]),
            integrated_at: 5,
            receipt: "sig".into(),
            status: AppendStatus::Duplicate,
        };
        records.appended(&origin, &appended).unwrap();
        records.skipped();
        records.flush().unwrap();
        assert_eq!(
            records.summary(),
            Summary {
                duplicates: 1,
                rejected: 1,
                skipped: 1,
                ..Summary::default()
            }
        );
        let line: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&rejects).unwrap()).unwrap();
        assert_eq!(
            line,
            json!({"file": "audit.log", "line": 12, "code": "missing_jti", "message": "no jti"})
        );
        let receipt: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&receipts).unwrap()).unwrap();
        assert_eq!(receipt["index"], 3);
        assert_eq!(receipt["line"], 12);
        let back: Appended = serde_json::from_value(receipt).unwrap();
        assert_eq!(back, appended);
    }

    #[test]
    fn following_appends_to_the_rejects_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rejects");
        std::fs::write(&path, "{\"earlier\":1}\n").unwrap();
        let origin = Origin {
            file: "f".into(),
            line: 1,
        };
        let mut records = Records::open(Some(&path), None, true, quiet()).unwrap();
        records.rejected(&origin, "c", "m").unwrap();
        records.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
        let mut records = Records::open(Some(&path), None, false, quiet()).unwrap();
        records.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    }
}
