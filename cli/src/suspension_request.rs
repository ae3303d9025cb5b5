//! Suspension requests on the command line: a site admin asks the VO to suspend a person at
//! every site (`site request-suspension`) and follows the outcome (`site requests`); a VO
//! security officer lists the requests and accepts or declines them (`vo requests ...`).

use std::io::Read as _;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;
use tokenledger_core::wire::{
    AcceptSuspensionRequest, DeclineSuspensionRequest, NewSuspensionRequest, SuspensionRequestList,
    SuspensionRequestView,
};

use crate::client::{ApiPath, Client};
use crate::exit::Failure;
use crate::render::{self, ListFormat, ObjectFormat, Table, fields};
use crate::site::SiteName;
use crate::suspension::parse_reason_code;
use crate::timespec;
use crate::vo::VoName;

/// Which requests to list.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum Status {
    Pending,
    Accepted,
    Declined,
    All,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Accepted => "accepted",
            Status::Declined => "declined",
            Status::All => "all",
        }
    }
}

#[derive(Args, Debug)]
#[group(id = "request_target", required = true, multiple = false, args = ["pseudonym", "jti"])]
pub struct RequestArgs {
    #[command(flatten)]
    pub site: SiteName,
    /// The person behind this pseudonym (`p1-...`).
    #[arg(long, value_name = "P")]
    pub pseudonym: Option<String>,
    /// The person behind this token, seen at the site.
    #[arg(long, value_name = "J")]
    pub jti: Option<String>,
    /// The token's issuer, where several issuers logged the same jti.
    #[arg(long, value_name = "I", conflicts_with = "pseudonym")]
    pub iss: Option<String>,
    #[command(flatten)]
    pub evidence: Evidence,
    /// Proposed scope [VO default: all].
    #[arg(long, value_parser = ["compute", "storage", "all"])]
    pub scope: Option<String>,
    /// Proposed reason code, 1-32 of a-z, 0-9, `-`.
    #[arg(long, value_name = "CODE", value_parser = parse_reason_code)]
    pub reason_code: Option<String>,
    /// Proposed end: a duration from now (12h, 7d), an RFC 3339 time, or unix seconds.
    #[arg(long, value_name = "T", value_parser = timespec::parse_expiry)]
    pub expires: Option<i64>,
    #[command(flatten)]
    pub format: ObjectFormat,
}

/// What the site saw: given on the command line or read from a file.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct Evidence {
    /// What the site saw (1 to 2048 characters; logged, read by the VO's officers).
    #[arg(long, value_name = "TEXT")]
    pub evidence: Option<String>,
    /// Read the evidence from a file (`-`: stdin), e.g. a few log lines.
    #[arg(long, value_name = "FILE")]
    pub evidence_file: Option<PathBuf>,
}

impl Evidence {
    fn text(&self) -> Result<String, Failure> {
        match (&self.evidence, &self.evidence_file) {
            (Some(text), _) => Ok(text.clone()),
            (None, Some(path)) if path.as_os_str() == "-" => {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|e| Failure::Error(format!("reading the evidence from stdin: {e}")))?;
                Ok(text)
            }
            (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
                Failure::Error(format!("reading the evidence from {}: {e}", path.display()))
            }),
            (None, None) => unreachable!("clap requires --evidence or --evidence-file"),
        }
    }
}

#[derive(Args, Debug)]
pub struct SiteRequestsArgs {
    /// Show only this request (`sr-...`); with --csv, as a row of the list.
    pub id: Option<String>,
    #[command(flatten)]
    pub site: SiteName,
    /// Only requests in this state [default: all].
    #[arg(long, value_enum, conflicts_with = "id")]
    pub status: Option<Status>,
    #[command(flatten)]
    pub format: ListFormat,
}

/// A VO security officer's handling of the sites' suspension requests.
#[derive(Subcommand, Debug)]
pub enum VoRequestsCommand {
    /// The requests made to the VO, newest first (pending ones unless --status says otherwise).
    List(VoListArgs),
    /// Accept: suspend the person at every site of the VO, on the site's proposed terms unless
    /// given here.
    Accept(AcceptArgs),
    /// Decline, with a reason the requesting site reads.
    Decline(DeclineArgs),
}

#[derive(Args, Debug)]
pub struct VoListArgs {
    #[command(flatten)]
    pub vo: VoName,
    /// Only requests in this state [default: pending].
    #[arg(long, value_enum)]
    pub status: Option<Status>,
    #[command(flatten)]
    pub format: ListFormat,
}

#[derive(Args, Debug)]
pub struct AcceptArgs {
    /// The request's id (`sr-...`).
    pub id: String,
    #[command(flatten)]
    pub vo: VoName,
    /// Scope [default: the site's proposal, else all].
    #[arg(long, value_parser = ["compute", "storage", "all"])]
    pub scope: Option<String>,
    /// Why, for the suspension's log entry [default: names the request and the site].
    #[arg(long)]
    pub reason: Option<String>,
    /// Reason code [default: the site's proposal, else suspended].
    #[arg(long, value_name = "CODE", value_parser = parse_reason_code)]
    pub reason_code: Option<String>,
    /// When the suspension ends on its own [default: the site's proposal, else until lifted].
    #[arg(long, value_name = "T", value_parser = timespec::parse_expiry)]
    pub expires: Option<i64>,
    /// Until lifted, whatever end the site proposed.
    #[arg(long, conflicts_with = "expires")]
    pub no_expiry: bool,
    #[command(flatten)]
    pub format: ObjectFormat,
}

impl AcceptArgs {
    /// The end asked for: none given (the site's proposal), none at all, or a time.
    fn expires_at(&self) -> Option<Option<i64>> {
        if self.no_expiry {
            Some(None)
        } else {
            self.expires.map(Some)
        }
    }
}

#[derive(Args, Debug)]
pub struct DeclineArgs {
    /// The request's id (`sr-...`).
    pub id: String,
    #[command(flatten)]
    pub vo: VoName,
    /// Why not; logged, and the requesting site reads it.
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub format: ObjectFormat,
}

/// `site request-suspension`.
pub fn request(client: &Client, args: &RequestArgs) -> Result<(), Failure> {
    let body = NewSuspensionRequest {
        pseudonym: args.pseudonym.clone(),
        jti: args.jti.clone(),
        iss: args.iss.clone(),
        evidence: args.evidence.text()?,
        scope: args.scope.clone(),
        reason_code: args.reason_code.clone(),
        expires_at: args.expires,
    };
    let path = ApiPath::new(&["sites", &args.site.site, "suspension-requests"])?;
    let answer = client.send::<SuspensionRequestView>("POST", &path, &body)?;
    print_view(&answer.raw, &answer.typed, args.format);
    Ok(())
}

/// `site requests`: the site's requests, or one of them.
pub fn site_requests(client: &Client, args: &SiteRequestsArgs) -> Result<(), Failure> {
    let site = &args.site.site;
    if let Some(id) = &args.id {
        let path = ApiPath::new(&["sites", site, "suspension-requests", id])?;
        let answer = client.get::<SuspensionRequestView>(&path)?;
        if args.format.csv {
            let list = SuspensionRequestList {
                requests: vec![answer.typed],
            };
            print!("{}", list_table(&list, true).csv());
        } else {
            let format = ObjectFormat {
                json: args.format.json,
            };
            print_view(&answer.raw, &answer.typed, format);
        }
        return Ok(());
    }
    let path = ApiPath::new(&["sites", site, "suspension-requests"])?
        .query_opt("status", args.status.map(Status::as_str));
    let answer = client.get::<SuspensionRequestList>(&path)?;
    print_list(&answer.raw, &answer.typed, args.format);
    Ok(())
}

/// `vo requests ...`.
pub fn vo_requests(client: &Client, command: &VoRequestsCommand) -> Result<(), Failure> {
    match command {
        VoRequestsCommand::List(args) => {
            let path = ApiPath::new(&["vos", &args.vo.vo, "suspension-requests"])?
                .query_opt("status", args.status.map(Status::as_str));
            let answer = client.get::<SuspensionRequestList>(&path)?;
            print_list(&answer.raw, &answer.typed, args.format);
        }
        VoRequestsCommand::Accept(args) => {
            let body = AcceptSuspensionRequest {
                scope: args.scope.clone(),
                reason: args.reason.clone(),
                reason_code: args.reason_code.clone(),
                expires_at: args.expires_at(),
            };
            let path = decision_path(&args.vo, &args.id, "accept")?;
            let answer = client.send::<SuspensionRequestView>("POST", &path, &body)?;
            print_view(&answer.raw, &answer.typed, args.format);
        }
        VoRequestsCommand::Decline(args) => {
            let body = DeclineSuspensionRequest {
                reason: args.reason.clone(),
            };
            let path = decision_path(&args.vo, &args.id, "decline")?;
            let answer = client.send::<SuspensionRequestView>("POST", &path, &body)?;
            print_view(&answer.raw, &answer.typed, args.format);
        }
    }
    Ok(())
}

fn decision_path(vo: &VoName, id: &str, decision: &str) -> Result<ApiPath, Failure> {
    Ok(ApiPath::new(&[
        "vos",
        &vo.vo,
        "suspension-requests",
        id,
        decision,
    ])?)
}

/// Prints one request: the server's JSON, or its fields and then the evidence, line by line.
fn print_view(raw: &Value, view: &SuspensionRequestView, format: ObjectFormat) {
    if format.json {
        render::print_json(raw);
    } else {
        print!("{}", view_text(view));
    }
}

fn view_text(v: &SuspensionRequestView) -> String {
    let mut pairs = vec![
        ("request", v.id.clone()),
        ("log entry", v.index.to_string()),
        ("status", v.status.to_string()),
        ("site", v.site.clone()),
        ("vo", v.vo.clone()),
        ("pseudonym", v.pseudonym.clone()),
    ];
    if let Some(jti) = &v.jti {
        pairs.push(("jti", jti.clone()));
    }
    if let Some(iss) = &v.iss {
        pairs.push(("iss", iss.clone()));
    }
    let proposed = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".into());
    pairs.extend([
        ("scope", proposed(&v.scope)),
        ("reason code", proposed(&v.reason_code)),
        (
            "expires",
            v.expires_at.map_or_else(|| "-".into(), render::time_secs),
        ),
        ("requested by", v.requested_by.clone()),
        ("requested", render::time_micros(v.requested_at)),
    ]);
    if let Some(at) = v.decided_at {
        pairs.push(("decided", render::time_micros(at)));
    }
    if let Some(id) = &v.suspension_id {
        pairs.push(("suspension", id.clone()));
    }
    if let Some(reason) = &v.decline_reason {
        pairs.push(("decline reason", reason.clone()));
    }
    let mut text = fields(&pairs);
    text.push_str("evidence:\n");
    for line in v.evidence.lines() {
        text.push_str(&format!("  {}\n", render::sanitize(line)));
    }
    text
}

/// Prints a list of requests: JSON, CSV, or a table (the evidence only in JSON and CSV).
fn print_list(raw: &Value, list: &SuspensionRequestList, format: ListFormat) {
    if format.json {
        render::print_json(raw);
        return;
    }
    let table = list_table(list, format.csv);
    if format.csv {
        print!("{}", table.csv());
    } else if table.is_empty() {
        println!("(no suspension requests)");
    } else {
        print!("{}", table.text());
    }
}

/// The requests as rows; for CSV, with their evidence and no cell a spreadsheet would read as
/// a formula.
fn list_table(list: &SuspensionRequestList, csv: bool) -> Table {
    let mut header = vec![
        "ID",
        "STATUS",
        "SITE",
        "VO",
        "PSEUDONYM",
        "JTI",
        "REQUESTED",
        "OUTCOME",
    ];
    if csv {
        header.push("EVIDENCE");
    }
    // What people wrote, and a jti (an issuer's).
    let text = |text: &str| {
        if csv {
            render::csv_text(text)
        } else {
            text.to_string()
        }
    };
    let mut table = Table::new(&header);
    for v in &list.requests {
        let outcome = match (&v.suspension_id, &v.decline_reason) {
            (Some(id), _) => id.clone(),
            (None, Some(reason)) => text(reason),
            (None, None) => "-".into(),
        };
        let mut row = vec![
            v.id.clone(),
            v.status.to_string(),
            v.site.clone(),
            v.vo.clone(),
            v.pseudonym.clone(),
            v.jti.as_deref().map_or_else(|| "-".into(), text),
            render::time_micros(v.requested_at),
            outcome,
        ];
        if csv {
            row.push(text(&v.evidence));
        }
        table.row(row);
    }
    table
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use clap::error::ErrorKind;

    use super::*;

    #[derive(Parser, Debug)]
    struct Accept {
        #[command(flatten)]
        args: AcceptArgs,
    }

    fn accept(extra: &[&str]) -> Result<AcceptArgs, clap::Error> {
        let base = ["accept", "sr-1", "--vo", "atlas"];
        Accept::try_parse_from(base.iter().chain(extra)).map(|a| a.args)
    }

    #[test]
    fn an_acceptance_takes_the_proposed_end_a_given_one_or_none() {
        assert_eq!(accept(&[]).unwrap().expires_at(), None);
        assert_eq!(accept(&["--no-expiry"]).unwrap().expires_at(), Some(None));
        assert_eq!(
            accept(&["--expires", "1769904000"]).unwrap().expires_at(),
            Some(Some(1_769_904_000))
        );
        let both = accept(&["--expires", "7d", "--no-expiry"]).unwrap_err();
        assert_eq!(both.kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn csv_cells_of_what_people_wrote_are_never_formulas() {
        let request: SuspensionRequestView = serde_json::from_value(serde_json::json!({
            "id": "sr-1", "index": 3, "site": "CERN-PROD", "vo": "atlas", "pseudonym": "p1-x",
            "jti": "=cmd|'/c calc'!A1", "evidence": "=HYPERLINK(\"http://x\")\nseen",
            "scope": null, "reason_code": null, "expires_at": null,
            "requested_by": "credential:c", "requested_at": 0, "status": "declined",
            "decided_at": 1, "decision_index": 4, "suspension_id": null,
            "decline_reason": "-1+1",
        }))
        .unwrap();
        let list = SuspensionRequestList {
            requests: vec![request],
        };
        assert_eq!(
            list_table(&list, true).csv(),
            "id,status,site,vo,pseudonym,jti,requested,outcome,evidence\r\n\
             sr-1,declined,CERN-PROD,atlas,p1-x,'=cmd|'/c calc'!A1,1970-01-01T00:00:00Z,'-1+1,\
             \"'=HYPERLINK(\"\"http://x\"\")\nseen\"\r\n"
        );
        let text = list_table(&list, false).text();
        assert!(text.contains(" =cmd|") && text.contains(" -1+1"), "{text}");
    }
}
