//! What site and VO suspensions share on the command line: the terms (scope, reason, reason
//! code, expiry), lifting, and how a suspension or a list of them is shown; and
//! `tokenledger suspension status`, which sites have fetched a blocklist carrying one.

use clap::{Args, Subcommand};
use serde_json::Value;
use tokenledger_core::wire::{
    EnforcementStatus, LiftRequest, SiteEnforcement, SuspendRequest, SuspensionList, SuspensionView,
};

use crate::client::{ApiPath, Client};
use crate::config::Settings;
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
    /// A not-before cut-off: suspend only the person's (or client's) tokens issued before
    /// TIME (`now`, an RFC 3339 time or unix seconds; not in the future). Tokens issued at or
    /// after it pass; a token without `iat` does not.
    #[arg(long, value_name = "TIME", value_parser = timespec::parse_cut_off)]
    pub issued_before: Option<i64>,
}

impl Terms {
    /// The request to suspend `subject` (the person in the route's words) or the person
    /// behind `jti` (with `token_only`, only that token) on these terms, with their cut-off
    /// if any; a client suspension sets `client` on it.
    pub fn request(
        &self,
        subject: Option<String>,
        jti: Option<String>,
        iss: Option<String>,
        token_only: bool,
    ) -> SuspendRequest {
        SuspendRequest {
            subject,
            jti,
            iss,
            target: token_only.then(|| "token".to_string()),
            scope: self.scope.clone(),
            reason: self.reason.clone(),
            reason_code: self.reason_code.clone(),
            expires_at: self.expires,
            issued_before: self.issued_before,
            ..SuspendRequest::default()
        }
    }
}

/// Questions about one suspension, asked by its VO's officers or a site's admins.
#[derive(Subcommand, Debug)]
pub enum SuspensionCommand {
    /// Which sites have fetched a blocklist carrying the suspension, when, and at which
    /// sequence; or that a site has not yet, with its last fetch. `--vo`: every site of a
    /// VO-wide suspension (vo-security, admin); `--site`: that site only (site-admin).
    Status(StatusArgs),
}

#[derive(Args, Debug)]
#[group(id = "asker", required = true, multiple = false, args = ["vo", "site"])]
pub struct StatusArgs {
    /// The suspension id (`su-...`).
    pub id: String,
    /// Ask as a security officer (or admin) of this VO.
    #[arg(long, value_name = "V")]
    pub vo: Option<String>,
    /// Ask as an admin of this site: its own row only.
    #[arg(long, value_name = "S")]
    pub site: Option<String>,
    #[command(flatten)]
    pub format: ListFormat,
}

pub fn run(command: &SuspensionCommand, settings: &Settings) -> Result<(), Failure> {
    let client = settings.authenticated_client()?;
    match command {
        SuspensionCommand::Status(args) => {
            let path = match (&args.vo, &args.site) {
                (Some(vo), _) => {
                    ApiPath::new(&["vos", vo, "suspensions", &args.id, "enforcement"])?
                }
                (None, Some(site)) => {
                    ApiPath::new(&["sites", site, "suspensions", &args.id, "enforcement"])?
                }
                (None, None) => unreachable!("clap requires --vo or --site"),
            };
            let answer = client.get::<EnforcementStatus>(&path)?;
            print_status(&answer.raw, &answer.typed, args.format);
        }
    }
    Ok(())
}

/// Prints an enforcement status: JSON, CSV, or a line about the suspension and a table.
pub fn print_status(raw: &Value, status: &EnforcementStatus, format: ListFormat) {
    if format.json {
        render::print_json(raw);
        return;
    }
    let table = status_table(status);
    if format.csv {
        print!("{}", table.csv());
    } else {
        print!("{}", status_text(status, &table));
    }
}

fn status_table(status: &EnforcementStatus) -> Table {
    let mut table = Table::new(&["SITE", "FETCHED_AT", "SEQUENCE", "LAST_FETCH"]);
    for row in &status.sites {
        table.row(vec![
            row.site.clone(),
            fetched_cell(row),
            row.sequence.map_or_else(|| "-".into(), |s| s.to_string()),
            row.last_fetch_at
                .map_or_else(|| "never".into(), render::time_secs),
        ]);
    }
    table
}

fn status_text(status: &EnforcementStatus, table: &Table) -> String {
    let state = match (status.active, status.lifted_at) {
        (_, Some(at)) => format!("lifted {}", render::time_micros(at)),
        (true, None) => "active".into(),
        (false, None) => "expired".into(),
    };
    let reach = status.site.as_ref().map_or_else(
        || "every site of the VO".to_string(),
        |s| format!("site {s}"),
    );
    let mut text = format!(
        "suspension {} of {} ({reach}): {state}\n",
        render::sanitize(&status.suspension_id),
        render::sanitize(&status.vo),
    );
    if table.is_empty() {
        text.push_str("(no site serves the VO)\n");
    } else {
        text.push_str(&table.text());
    }
    if status.check_only {
        text.push_str(
            "note: a client suspension or a cut-off is enforced as meant only by `tokenledger \
             check` given the token (HTCondor); FETCHED_AT does not say that a site's ARC CEs \
             (%D) or export consumers enforce it (see the site guide)\n",
        );
    }
    text
}

/// When the site first fetched a blocklist carrying the suspension, or `not yet`.
fn fetched_cell(row: &SiteEnforcement) -> String {
    match row.fetched_at {
        Some(at) if row.status == "fetched" => render::time_secs(at),
        _ => "not yet".into(),
    }
}

/// `[a-z0-9-]{1,32}`, as the server requires.
pub fn parse_reason_code(code: &str) -> Result<String, String> {
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
    if let Some(client) = &v.client {
        pairs.push(("client", client.clone()));
    }
    if let Some(iss) = &v.client_iss {
        pairs.push(("client issuer", iss.clone()));
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
    if let Some(cut_off) = v.issued_before {
        pairs.push(("issued before", render::time_secs(cut_off)));
    }
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
        "CLIENT",
        "ISSUED_BEFORE",
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
            v.client.clone().unwrap_or_else(|| "-".into()),
            v.issued_before
                .map_or_else(|| "-".into(), render::time_secs),
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
            client_iss: None,
            client: None,
            issued_before: None,
            scope: "compute".into(),
            reason_code: "compromised".into(),
            created_at: 1_767_225_600_000_000,
            not_after: Some(1_767_229_200),
            lifted_at: None,
            active: true,
        }
    }

    #[test]
    fn an_enforcement_status_reads_as_a_table() {
        let status = EnforcementStatus {
            suspension_id: "su-1".into(),
            vo: "atlas".into(),
            site: None,
            active: true,
            lifted_at: None,
            check_only: false,
            sites: vec![
                SiteEnforcement {
                    site: "SITE-A".into(),
                    status: "fetched".into(),
                    first_sequence: Some(3),
                    fetched_at: Some(1_767_225_600),
                    sequence: Some(4),
                    last_fetch_at: Some(1_767_225_660),
                },
                SiteEnforcement {
                    site: "SITE-B".into(),
                    status: "not_fetched".into(),
                    first_sequence: Some(2),
                    fetched_at: None,
                    sequence: None,
                    last_fetch_at: None,
                },
            ],
        };
        let table = status_table(&status);
        let text = status_text(&status, &table);
        assert!(
            text.starts_with("suspension su-1 of atlas (every site of the VO): active\n"),
            "{text}"
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[2].starts_with("SITE-A") && lines[2].contains("2026-01-01T00:00:00Z"));
        assert!(lines[2].contains(" 4 ") && lines[2].ends_with("2026-01-01T00:01:00Z"));
        assert!(lines[3].starts_with("SITE-B") && lines[3].contains("not yet"));
        assert!(lines[3].ends_with("never"), "{text}");
        assert_eq!(lines.len(), 4, "no note for a person: {text}");
        let client = EnforcementStatus {
            check_only: true,
            ..status.clone()
        };
        let text = status_text(&client, &table);
        assert!(
            text.lines()
                .last()
                .unwrap()
                .starts_with("note: a client suspension or a cut-off"),
            "{text}"
        );
        assert!(
            table
                .csv()
                .starts_with("site,fetched_at,sequence,last_fetch\r\n")
        );
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
        let client_cut_off = SuspensionView {
            pseudonym: None,
            target: "client".into(),
            client_iss: Some("https://iam/".into()),
            client: Some("rucio".into()),
            issued_before: Some(1_767_222_000),
            ..view()
        };
        let text = view_text(&client_cut_off);
        assert!(
            text.contains(
                "client         rucio\nclient issuer  https://iam/\ntarget         client\n"
            ),
            "{text}"
        );
        assert!(
            text.ends_with("issued before  2025-12-31T23:00:00Z\n"),
            "{text}"
        );
    }
}
