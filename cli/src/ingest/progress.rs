//! The progress display of `ingest` on stderr: a byte bar over the input files when their size
//! is known, a spinner otherwise; hidden with --quiet or when stderr is not a terminal. Notes
//! to the user (rejects, retries) go through it, so they do not tear the bar.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::summary::Summary;

/// A handle on the display; clones share it.
#[derive(Clone)]
pub struct Progress {
    bar: ProgressBar,
    quiet: bool,
}

impl Progress {
    /// A bar over `total` bytes, or a spinner when the total is unknown (stdin, --follow).
    pub fn new(total: Option<u64>, quiet: bool) -> Progress {
        let target = if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let bar = match total {
            Some(total) => {
                let bar = ProgressBar::with_draw_target(Some(total), target);
                bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}",
                    )
                    .expect("valid template"),
                );
                bar
            }
            None => {
                let bar = ProgressBar::with_draw_target(None, target);
                bar.set_style(
                    ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                        .expect("valid template"),
                );
                bar.enable_steady_tick(Duration::from_millis(200));
                bar
            }
        };
        Progress { bar, quiet }
    }

    /// Prints `tokenledger: <note>` on stderr above the bar, unless --quiet.
    pub fn note(&self, note: &str) {
        if !self.quiet {
            self.bar.suspend(|| eprintln!("tokenledger: {note}"));
        }
    }

    /// Bytes of input read so far.
    pub fn set_position(&self, bytes: u64) {
        self.bar.set_position(bytes);
    }

    /// Shows the counts so far.
    pub fn show(&self, summary: &Summary) {
        self.bar.set_message(summary.line());
    }

    /// Removes the display, before the summary is printed.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
