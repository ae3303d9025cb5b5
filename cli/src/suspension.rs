//! What site and VO suspensions share on the command line: the terms (scope, reason, reason
//! code, expiry), lifting, and how a suspension or a list of them is shown.

use clap::Args;
use serde_json::Value;
use tokenledger_core::wire::{LiftRequest, SuspensionList, SuspensionView};

use crate::client::{ApiPath, Client};
use crate::exit::Failure;
use crate::render::{self, ListFormat, ObjectFormat, Table, fields};
use crate::timespec;

/// The terms of a suspension.
#[derive(Args, Debug, Clone)]
pub struct Terms {
    /// What is blocked [server default: all].
    #[arg(long, value_parser = ["compute", "storage", "all"])]
    pub scope: Option<String>,
    /// Why: the incident or ticket (1 to 512 characters). Logged; never in the blocklist.
    #[arg(long)]
    pub reason: String,
    /// A short code for plugins and logs, 1-32 of a-z, 0-9, `-` [server default: suspended].
    #[arg(long, value_name = "CODE", value_parser = parse_reason_code)]
    pub reason_code: Option<String>,
    /// When the suspension ends on its own: a duration from now (12h, 7d), an RFC 3339 time,
    /// or unix seconds [default: until lifted; a token suspension ends when the token expires].
    #[arg(long, value_name = "T", value_parser = timespec::parse_expiry)]
    pub expires: Option<i64>,
}

/// `[a-z0-9-]{1,32}`, as the server requires.
fn parse_reason_code(code: &str) -> Result<String, String> {
    let ok = (1..=32).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(code.to_string())
    } else {
        Err("a reason code is 1 to 32 characters of a-z, 0-9 and `-` (e.g. compromised)".into())
    }
}

/// `DELETE {path}` with the reason; prints the lifted suspension.
pub fn lift(
    client: &Client,
    path: &ApiPath,
    reason: &str,
    format: ObjectFormat,
) -> Result<(), Failure> {
    let body = LiftRequest {
        reason: reason.to_string(),
    };
    let answer = client.send::<SuspensionView>("DELETE", path, &body)?;
    print_view(&answer.raw, &answer.typed, format);
    Ok(())
}

/// Prints one suspension: the server's JSON, or its fields.
pub fn print_view(raw: &Value, view: &SuspensionView, format: ObjectFormat) {
    if format.json {
        render::print_json(raw);
    } else {
        print!("{}", view_text(view));
    }
}

fn view_text(v: &SuspensionView) -> String {
    let mut pairs = vec![
        ("suspension", v.id.clone()),
        ("log entry", v.index.to_string()),
        ("state", state(v)),
        (
            "site",
            v.site
                .clone()
                .unwrap_or_else(|| "every site of the VO".into()),
        ),
        ("vo", v.vo.clone()),
    ];
    if let Some(pseudonym) = &v.pseudonym {
        pairs.push(("pseudonym", pseudonym.clone()));
    }
    if let Some(person) = &v.person {
        pairs.push(("person", person.clone()));
    }
    pairs.extend([
        ("target", v.target.clone()),
        ("scope", v.scope.clone()),
        ("reason code", v.reason_code.clone()),
        ("created", render::time_micros(v.created_at)),
        (
            "not after",
            v.not_after
                .map_or_else(|| "until lifted".into(), render::time_secs),
        ),
    ]);
    fields(&pairs)
}

/// `active`, `lifted <time>`, or `expired`.
fn state(v: &SuspensionView) -> String {
    match (v.active, v.lifted_at) {
        (_, Some(at)) => format!("lifted {}", render::time_micros(at)),
        (true, None) => "active".into(),
        (false, None) => "expired".into(),
    }
}

/// Prints a list of suspensions: JSON, CSV, or a table.
pub fn print_list(raw: &Value, list: &SuspensionList, format: ListFormat) {
    if format.json {
        render::print_json(raw);
        return;
    }
    let mut table = Table::new(&[
        "ID",
        "INDEX",
        "STATE",
        "SITE",
        "VO",
        "PSEUDONYM",
        "PERSON",
        "TARGET",
        "SCOPE",
        "REASON_CODE",
        "CREATED",
        "NOT_AFTER",
    ]);
    for v in &list.suspensions {
        table.row(vec![
            v.id.clone(),
            v.index.to_string(),
            state(v),
            v.site.clone().unwrap_or_else(|| "*".into()),
            v.vo.clone(),
            v.pseudonym.clone().unwrap_or_else(|| "-".into()),
            v.person.clone().unwrap_or_else(|| "-".into()),
            v.target.clone(),
            v.scope.clone(),
            v.reason_code.clone(),
            render::time_micros(v.created_at),
            v.not_after.map_or_else(|| "-".into(), render::time_secs),
        ]);
    }
    if format.csv {
        print!("{}", table.csv());
    } else if table.is_empty() {
        println!("(no suspensions)");
    } else {
        print!("{}", table.text());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> SuspensionView {
        SuspensionView {
            id: "su-1".into(),
            index: 9,
            site: Some("CERN-PROD".into()),
            vo: "atlas".into(),
            pseudonym: Some("p1-abc".into()),
            person: None,
            target: "person".into(),
            scope: "compute".into(),
            reason_code: "compromised".into(),
            created_at: 1_767_225_600_000_000,
            not_after: Some(1_767_229_200),
            lifted_at: None,
            active: true,
        }
    }

    #[test]
    fn reason_codes_are_checked_early() {
        assert_eq!(
            parse_reason_code("compromised-2"),
            Ok("compromised-2".into())
        );
        for bad in ["", "Compromised", "a b", "x_y", &"a".repeat(33)] {
            assert!(parse_reason_code(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_suspension_reads_as_fields() {
        assert_eq!(
            view_text(&view()),
            "suspension   su-1\n\
             log entry    9\n\
             state        active\n\
             site         CERN-PROD\n\
             vo           atlas\n\
             pseudonym    p1-abc\n\
             target       person\n\
             scope        compute\n\
             reason code  compromised\n\
             created      2026-01-01T00:00:00Z\n\
             not after    2026-01-01T01:00:00Z\n"
        );
        let lifted = SuspensionView {
            active: false,
            lifted_at: Some(1_767_225_660_000_000),
            ..view()
        };
        assert_eq!(state(&lifted), "lifted 2026-01-01T00:01:00Z");
        let expired = SuspensionView {
            active: false,
            ..view()
        };
        assert_eq!(state(&expired), "expired");
        let vo_wide = SuspensionView {
            site: None,
            pseudonym: None,
            person: Some("pe-1".into()),
            not_after: None,
            ..view()
        };
        let text = view_text(&vo_wide);
        assert!(
            text.contains("site         every site of the VO\n"),
            "{text}"
        );
        assert!(
            text.contains("person       pe-1\n") && text.contains("until lifted"),
            "{text}"
        );
    }
}
