//! Output: aligned tables for people, RFC 4180 CSV for spreadsheets and scripts, the
//! server's JSON pretty-printed, and times as RFC 3339 UTC.
//!
//! Values come from tokens and reports that other people wrote: in tables and key-value
//! lines every control character is shown escaped, so that no value can move the cursor,
//! recolour or retitle an officer's terminal. CSV keeps values as they are (quoted); free
//! text that a spreadsheet would run as a formula goes through [`csv_text`] first.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat};
use clap::Args;
use serde_json::Value;

/// `--json` / `--csv` for commands that answer a list.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct ListFormat {
    /// Print the server's JSON answer (pretty).
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print the rows as CSV (RFC 4180, with a header line); notes go to stderr.
    #[arg(long)]
    pub csv: bool,
}

/// `--json` for commands that answer one object.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct ObjectFormat {
    /// Print the server's JSON answer (pretty).
    #[arg(long)]
    pub json: bool,
}

/// Rows under a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&'static str]) -> Table {
        Table {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; it must have one cell per column.
    pub fn row(&mut self, cells: Vec<String>) {
        assert_eq!(cells.len(), self.header.len(), "one cell per column");
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Columns padded to their widest cell, two spaces apart, trailing blanks trimmed.
    pub fn text(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|row| row.iter().map(|c| sanitize(c)).collect())
            .collect();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let header: Vec<String> = self.header.iter().map(|h| h.to_string()).collect();
        let mut out = String::new();
        for row in std::iter::once(&header).chain(&rows) {
            let mut line = String::new();
            for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let _ = write!(line, "{cell:<width$}");
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// RFC 4180: CRLF line ends; a field with a comma, quote or line break is quoted, its
    /// quotes doubled.
    pub fn csv(&self) -> String {
        let mut out = String::new();
        let header = self.header.iter().map(|h| h.to_ascii_lowercase());
        let header: Vec<String> = header.collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let fields: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
            out.push_str(&fields.join(","));
            out.push_str("\r\n");
        }
        out
    }
}

fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// Free text (a site's evidence, a reason) for a CSV cell: text that a spreadsheet would
/// read as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a
/// leading `'`, which spreadsheets show as text. [`Table::csv`] then quotes it as it must.
pub fn csv_text(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

/// The text with every control character escaped (`\n`, `\u{1b}`), for terminals.
pub fn sanitize(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Unix seconds as RFC 3339 UTC (`2026-01-01T00:00:00Z`).
pub fn time_secs(secs: i64) -> String {
    DateTime::from_timestamp(secs, 0)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| format!("{secs} (unix seconds, out of range)"))
}

/// Unix microseconds as RFC 3339 UTC, to the second.
pub fn time_micros(micros: i64) -> String {
    time_secs(micros.div_euclid(1_000_000))
}

/// Prints a JSON value pretty, as the `--json` output of every command.
pub fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values print")
    );
}

/// A JSON field of an entry as a cell: strings as they are, arrays joined by spaces, numbers,
/// and `-` for absent or null.
pub fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.is_empty() => "-".into(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| cell(Some(i)))
            .collect::<Vec<_>>()
            .join(" "),
        Some(other) => other.to_string(),
    }
}

/// A JSON field holding unix seconds, as a time cell.
pub fn secs_cell(value: Option<&Value>) -> String {
    value
        .and_then(Value::as_i64)
        .map_or_else(|| "-".into(), time_secs)
}

/// A JSON field holding unix microseconds, as a time cell.
pub fn micros_cell(value: Option<&Value>) -> String {
    value
        .and_then(Value::as_i64)
        .map_or_else(|| "-".into(), time_micros)
}

/// `label  value` lines, labels padded to the longest, values sanitized.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (label, value) in pairs {
        let _ = writeln!(out, "{label:<width$}  {}", sanitize(value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table() -> Table {
        let mut t = Table::new(&["INDEX", "JTI", "CLIENT_ID"]);
        t.row(vec!["3".into(), "login".into(), "-".into()]);
        t.row(vec!["12".into(), "a,\"b\"\nc".into(), "rucio".into()]);
        t
    }

    #[test]
    fn tables_align_columns_and_escape_control_characters() {
        assert_eq!(
            table().text(),
            "INDEX  JTI       CLIENT_ID\n\
             3      login     -\n\
             12     a,\"b\"\\nc  rucio\n"
        );
        let mut t = Table::new(&["SUB"]);
        t.row(vec!["evil\u{1b}]0;pwned\u{7}".into()]);
        assert_eq!(t.text(), "SUB\nevil\\u{1b}]0;pwned\\u{7}\n");
        assert!(!t.text().contains('\u{1b}'));
        assert!(Table::new(&["A"]).is_empty());
    }

    #[test]
    fn csv_quotes_what_it_must() {
        assert_eq!(
            table().csv(),
            "index,jti,client_id\r\n3,login,-\r\n12,\"a,\"\"b\"\"\nc\",rucio\r\n"
        );
    }

    #[test]
    fn csv_text_is_never_a_formula() {
        for formula in [
            "=HYPERLINK(\"x\")",
            "+1",
            "-2+3",
            "@SUM(A1)",
            "\t=1",
            "\r=1",
        ] {
            assert_eq!(csv_text(formula), format!("'{formula}"));
        }
        for text in ["job 1.0: scans", "a=b", "", "'quoted"] {
            assert_eq!(csv_text(text), text);
        }
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(time_secs(0), "1970-01-01T00:00:00Z");
        assert_eq!(time_secs(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(time_micros(1_767_225_600_999_999), "2026-01-01T00:00:00Z");
        assert_eq!(time_micros(-1), "1969-12-31T23:59:59Z");
        assert!(time_secs(i64::MAX).contains("out of range"));
    }

    #[test]
    fn cells_from_json() {
        let entry = json!({"s": "x", "n": 5, "a": ["r", "w"], "e": [], "z": null, "t": 1767225600});
        assert_eq!(cell(entry.get("s")), "x");
        assert_eq!(cell(entry.get("n")), "5");
        assert_eq!(cell(entry.get("a")), "r w");
        assert_eq!(cell(entry.get("e")), "-");
        assert_eq!(cell(entry.get("z")), "-");
        assert_eq!(cell(entry.get("missing")), "-");
        assert_eq!(secs_cell(entry.get("t")), "2026-01-01T00:00:00Z");
        assert_eq!(secs_cell(entry.get("s")), "-");
        assert_eq!(
            micros_cell(Some(&json!(1_767_225_600_000_000i64))),
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(
            fields(&[("person", "pe-1".into()), ("vo", "atlas\n".into())]),
            "person  pe-1\nvo      atlas\\n\n"
        );
    }
}
