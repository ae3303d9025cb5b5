//! What a benchmark hands back: one table for people, one JSON line for machines, and the
//! small statistics both are made of (percentiles by sorting, rates).

use std::fmt::Write;
use std::time::Duration;

use serde_json::{Map, Value, json};

/// One row of a table: the figure, its value, the target from DESIGN.md (if any) and whether
/// it was met, the same-run baseline it is compared with (if any) and the ratio to it.
#[derive(Clone, Debug)]
pub struct Row {
    pub figure: String,
    pub value: String,
    pub target: String,
    pub met: Option<bool>,
    pub baseline: String,
    pub ratio: String,
}

impl Row {
    /// A row with only a figure and a value.
    pub fn plain(figure: impl Into<String>, value: impl Into<String>) -> Row {
        Row {
            figure: figure.into(),
            value: value.into(),
            target: String::new(),
            met: None,
            baseline: String::new(),
            ratio: String::new(),
        }
    }

    /// Sets the target column: a DESIGN.md target and whether the value meets it.
    pub fn target(mut self, target: impl Into<String>, met: bool) -> Row {
        self.target = target.into();
        self.met = Some(met);
        self
    }

    /// The target column as printed; a quick run is never judged against a target.
    fn target_cell(&self, quick: bool) -> String {
        match (self.met, quick) {
            (None, _) => self.target.clone(),
            (Some(_), true) => format!("{} (quick run: not judged)", self.target),
            (Some(true), false) => format!("{} (met)", self.target),
            (Some(false), false) => format!("{} (MISSED)", self.target),
        }
    }

    /// Sets the baseline and ratio columns.
    pub fn against(mut self, baseline: impl Into<String>, ratio: f64) -> Row {
        self.baseline = baseline.into();
        self.ratio = format!("{ratio:.3}");
        self
    }
}

/// The result of one benchmark: a titled table and the figures as JSON numbers.
#[derive(Clone, Debug)]
pub struct Report {
    pub bench: &'static str,
    pub title: String,
    /// A `--quick` run: small sizes, figures not comparable with the targets.
    pub quick: bool,
    pub rows: Vec<Row>,
    /// Machine-readable figures: name → number (or string, for units and notes).
    pub figures: Map<String, Value>,
}

impl Report {
    pub fn new(bench: &'static str, title: impl Into<String>, quick: bool) -> Report {
        Report {
            bench,
            title: title.into(),
            quick,
            rows: Vec::new(),
            figures: Map::new(),
        }
    }

    /// Adds a table row.
    pub fn row(&mut self, row: Row) {
        self.rows.push(row);
    }

    /// Records a machine-readable figure.
    pub fn figure(&mut self, name: &str, value: impl Into<Value>) {
        self.figures.insert(name.to_string(), value.into());
    }

    /// The table, aligned, with a header line.
    pub fn table(&self) -> String {
        let header = [
            "figure",
            "measured",
            "target",
            "baseline (same run)",
            "ratio",
        ];
        let targets: Vec<String> = self
            .rows
            .iter()
            .map(|r| r.target_cell(self.quick))
            .collect();
        let cells: Vec<[&str; 5]> = self
            .rows
            .iter()
            .zip(&targets)
            .map(|(r, target)| {
                [
                    r.figure.as_str(),
                    r.value.as_str(),
                    target.as_str(),
                    r.baseline.as_str(),
                    r.ratio.as_str(),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &cells {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = format!("== {} ==\n", self.title);
        let line = |out: &mut String, row: &[&str; 5]| {
            let mut text = String::new();
            for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
                if i > 0 {
                    text.push_str(" | ");
                }
                let _ = write!(text, "{cell:<w$}");
            }
            let _ = writeln!(out, "{}", text.trim_end());
        };
        line(&mut out, &header);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        let _ = writeln!(out, "{}", rule.join("-+-"));
        for row in &cells {
            line(&mut out, row);
        }
        out
    }

    /// The one-line JSON form: `{"bench", "title", "quick", "targets", "figures"}`, where
    /// `targets` maps each judged row's figure to whether its target was met.
    pub fn json_line(&self) -> String {
        let targets: Map<String, Value> = self
            .rows
            .iter()
            .filter_map(|r| Some((r.figure.trim().to_string(), Value::Bool(r.met?))))
            .collect();
        json!({
            "bench": self.bench,
            "title": self.title,
            "quick": self.quick,
            "targets": targets,
            "figures": self.figures,
        })
        .to_string()
    }

    /// Prints the table, then the JSON line, on stdout.
    pub fn print(&self) {
        println!("{}", self.table());
        println!("{}", self.json_line());
        println!();
    }
}

/// Latency percentiles of a sample, nearest rank.
#[derive(Clone, Copy, Debug)]
pub struct Percentiles {
    pub count: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Percentiles {
    /// Sorts `samples` and takes p50, p99 and the maximum; `None` for an empty sample.
    pub fn of(samples: &mut [Duration]) -> Option<Percentiles> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let rank = |q: f64| {
            let n = samples.len();
            let r = (q * n as f64).ceil() as usize;
            samples[r.clamp(1, n) - 1]
        };
        Some(Percentiles {
            count: samples.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            max: samples[samples.len() - 1],
        })
    }

    /// Records p50, p99 and max in milliseconds under `prefix_*_ms`.
    pub fn record(&self, report: &mut Report, prefix: &str) {
        report.figure(&format!("{prefix}_p50_ms"), ms(self.p50));
        report.figure(&format!("{prefix}_p99_ms"), ms(self.p99));
        report.figure(&format!("{prefix}_max_ms"), ms(self.max));
        report.figure(&format!("{prefix}_samples"), self.count as u64);
    }
}

/// A duration in milliseconds, rounded to microseconds.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// `12.345 ms`.
pub fn fmt_ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// A rate with thousands separators: `12,345/s`.
pub fn fmt_rate(per_sec: f64) -> String {
    format!("{}/s", thousands(per_sec.round() as u64))
}

/// `12,345,678`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let p = Percentiles::of(&mut samples).unwrap();
        assert_eq!(p.p50, Duration::from_millis(50));
        assert_eq!(p.p99, Duration::from_millis(99));
        assert_eq!(p.max, Duration::from_millis(100));
        let mut one = vec![Duration::from_millis(7)];
        let p = Percentiles::of(&mut one).unwrap();
        assert_eq!(
            (p.p50, p.p99),
            (Duration::from_millis(7), Duration::from_millis(7))
        );
        assert!(Percentiles::of(&mut []).is_none());
    }

    #[test]
    fn numbers_are_readable() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(10_000_000), "10,000,000");
        assert_eq!(fmt_rate(20_000.4), "20,000/s");
        assert_eq!(ms(Duration::from_micros(1_234)), 1.234);
    }

    #[test]
    fn a_report_prints_an_aligned_table_and_one_json_line() {
        let mut report = Report::new("t", "Title", false);
        report.row(Row::plain("a", "1").target("≥ 1", true));
        report.row(Row::plain("b", "0").target("≥ 1", false));
        report.row(Row::plain("longer figure", "2").against("4/s", 0.5));
        report.figure("a", 1);
        let table = report.table();
        assert!(table.starts_with("== Title ==\n"), "{table}");
        assert!(table.contains("longer figure | 2"), "{table}");
        assert!(
            table.contains("≥ 1 (met)") && table.contains("≥ 1 (MISSED)"),
            "{table}"
        );
        report.quick = true;
        assert!(report.table().contains("≥ 1 (quick run: not judged)"));
        let line = report.json_line();
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["figures"]["a"], 1);
        assert_eq!(v["bench"], "t");
        assert_eq!(v["targets"]["a"], true);
        assert_eq!(v["targets"]["b"], false);
    }
}
