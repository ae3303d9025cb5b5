//! A VO security officer's reading commands: `resolve` (a jti to the person, the chain up to
//! the human, and the proof), `search` (a VO's tokens by client or scope, or one person's),
//! `timeline` (what the log holds about a person) and `audit` (who resolved what). Every
//! answer that reveals an identity is logged by the server, with the reason, before it is
//! given; each command shows the index of that log entry.

use clap::Args;
use serde_json::Value;
use tokenledger_core::wire::{
    IssuancePage, PersonView, ResolutionPage, ServedEntry, Timeline, TokenResolution,
};

use crate::client::{ApiPath, Client};
use crate::config::Settings;
use crate::exit::Failure;
use crate::render::{self, ListFormat, ObjectFormat, Table, cell, fields, micros_cell, secs_cell};
use crate::timespec;
use crate::verify::{self, VerifyError};

/// Most rows the server gives in one page.
const MAX_LIMIT: i64 = 1000;

/// Which VO, and why (the reason is logged with the answer).
#[derive(Args, Debug, Clone)]
pub struct Officer {
    /// The VO whose data is read; the credential must be a security officer of it.
    #[arg(long)]
    pub vo: String,
    /// Why: the incident or ticket (1 to 512 characters). Logged with the answer.
    #[arg(long)]
    pub reason: String,
}

/// Paging of a newest-first list.
#[derive(Args, Debug, Clone, Copy)]
pub struct Paging {
    /// Rows per page (1 to 1000) [server default: 100].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_LIMIT))]
    pub limit: Option<u32>,
    /// Only entries older than log index IDX (the `next_before` of the previous page).
    #[arg(long, value_name = "IDX")]
    pub before: Option<u64>,
}

impl Paging {
    fn apply(&self, path: ApiPath) -> ApiPath {
        path.query_opt("limit", self.limit)
            .query_opt("before", self.before)
    }
}

#[derive(Args, Debug)]
pub struct ResolveArgs {
    /// The access token's `jti`.
    pub jti: String,
    #[command(flatten)]
    pub officer: Officer,
    /// The token's issuer, where several issuers logged the same jti in the VO.
    #[arg(long)]
    pub iss: Option<String>,
    /// Verify the answer's inclusion proof against its signed checkpoint with this log key
    /// (`name+keyid+base64key`) [env: TOKENLEDGER_LOG_KEY, or the profile's `log_key`].
    #[arg(long, value_name = "KEY")]
    pub log_key: Option<String>,
    #[command(flatten)]
    pub format: ObjectFormat,
}

pub const RESOLVE_ABOUT: &str = "\
Resolve a token (its jti) to the person it was issued to: GET /v1/vos/{vo}/tokens/{jti}.

Prints the person and every identity linked to them, the issuance (log index, iss, sub,
client_id, scopes, iat, exp), the token chain (refresh, exchange) up to its root, the human at
the root (or that it is a service/pilot token, with no human), and the log index of the
resolution entry that logged this answer and its reason. With a log key (--log-key, or
TOKENLEDGER_LOG_KEY, or the profile's log_key), the issuance's inclusion proof is verified
against the signed checkpoint returned with it; exit 1 if it fails.

Exit status: 0 resolved (and verified); 1 not found, or the proof failed; 2 usage, network or
server error (409: several issuers logged the jti, pass --iss); 4 refused (401/403).";

/// `tokenledger resolve`.
pub fn resolve(args: &ResolveArgs, settings: &Settings) -> Result<(), Failure> {
    let verifier = settings
        .log_key(args.log_key.as_deref())
        .map(verify::parse_log_key)
        .transpose()
        .map_err(|e| Failure::Error(e.to_string()))?;
    let client = settings.authenticated_client()?;
    let path = ApiPath::new(&["vos", &args.officer.vo, "tokens", &args.jti])?
        .query("reason", &args.officer.reason)
        .query_opt("iss", args.iss.as_deref());
    let answer = client.get::<TokenResolution>(&path)?;
    let checked = verifier.map(|v| verify::check_resolution(&answer.typed, &v));
    if args.format.json {
        render::print_json(&answer.raw);
    } else {
        print!("{}", resolution_text(&answer.typed));
    }
    match checked {
        None => Ok(()),
        Some(Ok(checkpoint)) => {
            let line = format!(
                "inclusion proof verified: entry {} is in checkpoint `{}` of size {}",
                answer.typed.issuance.index, checkpoint.origin, checkpoint.size
            );
            if args.format.json {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
            Ok(())
        }
        Some(Err(e @ VerifyError::Failed(_))) => Err(Failure::Negative(e.to_string())),
        Some(Err(e)) => Err(Failure::Error(e.to_string())),
    }
}

/// The human rendering of a resolution.
fn resolution_text(r: &TokenResolution) -> String {
    let entry = &r.issuance.entry;
    let mut out = person_text(&r.person);
    out.push('\n');
    out.push_str(&format!("Issuance (log entry {})\n", r.issuance.index));
    out.push_str(&indent(&fields(&[
        ("jti", cell(entry.get("jti"))),
        ("iss", cell(entry.get("iss"))),
        ("sub", cell(entry.get("sub"))),
        ("client_id", cell(entry.get("client_id"))),
        ("scopes", cell(entry.get("scopes"))),
        ("grant_type", cell(entry.get("grant_type"))),
        ("iat", secs_cell(entry.get("iat"))),
        ("exp", secs_cell(entry.get("exp"))),
        ("logged_at", micros_cell(entry.get("logged_at"))),
    ])));
    out.push('\n');
    let state = if r.chain.complete {
        "complete".to_string()
    } else {
        format!(
            "incomplete: {}",
            r.chain.stopped.as_deref().unwrap_or("stopped")
        )
    };
    out.push_str(&format!("Chain, this token first ({state})\n"));
    let mut table = Table::new(&["INDEX", "JTI", "GRANT_TYPE", "CLIENT_ID", "SUB"]);
    for link in &r.chain.links {
        table.row(vec![
            link.index.to_string(),
            link.jti.clone(),
            link.grant_type.clone().unwrap_or_else(|| "-".into()),
            link.client_id.clone().unwrap_or_else(|| "-".into()),
            link.sub.clone(),
        ]);
    }
    out.push_str(&indent(&table.text()));
    out.push('\n');
    let human = match &r.human {
        Some(human) => format!("{} ({})", human.id, identities_inline(human)),
        None => "none: service/pilot token, no human".to_string(),
    };
    out.push_str(&fields(&[
        ("Human at the root", human),
        (
            "Resolution logged",
            format!("log entry {}", r.resolution_index),
        ),
    ]));
    out
}

pub fn person_text(person: &PersonView) -> String {
    let mut out = format!("Person {} in VO {}\n", person.id, person.vo);
    let mut table = Table::new(&["ISS", "SUB"]);
    for identity in &person.identities {
        table.row(vec![identity.iss.clone(), identity.sub.clone()]);
    }
    out.push_str(&indent(&table.text()));
    out
}

fn identities_inline(person: &PersonView) -> String {
    let all: Vec<String> = person
        .identities
        .iter()
        .map(|i| format!("{} {}", i.iss, i.sub))
        .collect();
    all.join(", ")
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    #[command(flatten)]
    pub officer: Officer,
    /// List this person's tokens (GET /v1/vos/{vo}/persons/{person}/tokens) instead of
    /// searching the VO.
    #[arg(long, value_name = "PERSON")]
    pub person: Option<String>,
    /// Tokens issued to this client.
    #[arg(long, value_name = "C")]
    pub client_id: Option<String>,
    /// Tokens carrying this scope.
    #[arg(long, value_name = "S")]
    pub scope: Option<String>,
    /// Tokens issued at or after T (RFC 3339 or unix seconds).
    #[arg(long, value_name = "T", value_parser = timespec::parse_time)]
    pub from: Option<i64>,
    /// Tokens issued before T (RFC 3339 or unix seconds).
    #[arg(long, value_name = "T", value_parser = timespec::parse_time)]
    pub to: Option<i64>,
    #[command(flatten)]
    pub paging: Paging,
    #[command(flatten)]
    pub format: ListFormat,
}

pub const SEARCH_ABOUT: &str = "\
Search a VO's tokens by --client-id and/or --scope (GET /v1/vos/{vo}/tokens), or list one
person's tokens with --person (GET /v1/vos/{vo}/persons/{person}/tokens), newest first,
optionally between --from and --to. The search is logged, with its reason, as a resolution.

Exit status: 0 answered (also with no rows); 1 no such person; 2 usage, network or server
error; 4 refused (401/403).";

/// `tokenledger search`.
pub fn search(args: &SearchArgs, settings: &Settings) -> Result<(), Failure> {
    let vo = &args.officer.vo;
    let path = match &args.person {
        Some(person) => ApiPath::new(&["vos", vo, "persons", person, "tokens"])?,
        None => {
            if args.client_id.is_none() && args.scope.is_none() {
                return Err(Failure::Error(
                    "search by --client-id or --scope (or both), or list a --person's tokens"
                        .into(),
                ));
            }
            ApiPath::new(&["vos", vo, "tokens"])?
        }
    };
    let path = path
        .query("reason", &args.officer.reason)
        .query_opt("client_id", args.client_id.as_deref())
        .query_opt("scope", args.scope.as_deref())
        .query_opt("from", args.from)
        .query_opt("to", args.to);
    let client = settings.authenticated_client()?;
    let answer = client.get::<IssuancePage>(&args.paging.apply(path))?;
    let page = &answer.typed;
    if args.format.json {
        render::print_json(&answer.raw);
        return Ok(());
    }
    let table = issuance_table(&page.issuances);
    let notes = page_notes(page.resolution_index, page.next_before);
    print_list(&table, &notes, args.format.csv, "no tokens match");
    Ok(())
}

/// One row per issuance.
pub fn issuance_table(issuances: &[ServedEntry]) -> Table {
    let mut table = Table::new(&[
        "INDEX",
        "IAT",
        "JTI",
        "ISS",
        "SUB",
        "CLIENT_ID",
        "SCOPES",
        "EXP",
    ]);
    for served in issuances {
        let e = &served.entry;
        table.row(vec![
            served.index.to_string(),
            secs_cell(e.get("iat")),
            cell(e.get("jti")),
            cell(e.get("iss")),
            cell(e.get("sub")),
            cell(e.get("client_id")),
            cell(e.get("scopes")),
            secs_cell(e.get("exp")),
        ]);
    }
    table
}

fn page_notes(resolution_index: u64, next_before: Option<u64>) -> Vec<String> {
    let mut notes = vec![format!("logged as resolution entry {resolution_index}")];
    notes.extend(next_before.map(|b| format!("more: --before {b}")));
    notes
}

/// A table (or CSV) on stdout; notes after a table on stdout, or for CSV on stderr.
fn print_list(table: &Table, notes: &[String], csv: bool, empty: &str) {
    if csv {
        print!("{}", table.csv());
        for note in notes {
            eprintln!("{note}");
        }
        return;
    }
    if table.is_empty() {
        println!("({empty})");
    } else {
        print!("{}", table.text());
    }
    for note in notes {
        println!("{note}");
    }
}

#[derive(Args, Debug)]
pub struct TimelineArgs {
    /// The person's id (`pe-...`).
    pub person: String,
    #[command(flatten)]
    pub officer: Officer,
    #[command(flatten)]
    pub paging: Paging,
    #[command(flatten)]
    pub format: ListFormat,
}

pub const TIMELINE_ABOUT: &str = "\
What the log holds about a person in the VO (issuances, and as the ledger grows sightings and
suspensions), newest first: GET /v1/vos/{vo}/persons/{person}/timeline. Logged, with its
reason, as a resolution. A row of kind `redacted` marks a span of the log where a retention
run or an erasure redacted entries: the person's entries there, if any, are gone.

Exit status: 0 answered; 1 no such person; 2 usage, network or server error; 4 refused.";

/// `tokenledger timeline`.
pub fn timeline(args: &TimelineArgs, settings: &Settings) -> Result<(), Failure> {
    let path = ApiPath::new(&["vos", &args.officer.vo, "persons", &args.person, "timeline"])?
        .query("reason", &args.officer.reason);
    let client = settings.authenticated_client()?;
    let answer = client.get::<Timeline>(&args.paging.apply(path))?;
    if args.format.json {
        render::print_json(&answer.raw);
        return Ok(());
    }
    let timeline = &answer.typed;
    // Events and the redactions that cut into the page (shown at their span's last entry),
    // newest first.
    let mut rows: Vec<(u64, Vec<String>)> = timeline
        .events
        .iter()
        .map(|event| {
            let row = vec![
                event.index.to_string(),
                render::time_micros(event.at),
                event.kind.clone(),
                summarize(&event.entry),
            ];
            (event.index, row)
        })
        .collect();
    rows.extend(timeline.redactions.iter().map(|gap| {
        let row = vec![
            format!("{}-{}", gap.first, gap.end.saturating_sub(1)),
            render::time_micros(gap.at),
            "redacted".to_string(),
            format!(
                "by entry {}: this person's entries there, if any, are redacted",
                gap.index
            ),
        ];
        (gap.end.saturating_sub(1), row)
    }));
    rows.sort_by_key(|(index, _)| std::cmp::Reverse(*index));
    let mut table = Table::new(&["INDEX", "AT", "KIND", "DETAILS"]);
    for (_, row) in rows {
        table.row(row);
    }
    if !args.format.csv {
        print!("{}", person_text(&timeline.person));
        println!();
    }
    let notes = page_notes(timeline.resolution_index, timeline.next_before);
    print_list(&table, &notes, args.format.csv, "no events");
    Ok(())
}

/// The telling fields of an entry, `name=value`, in a fixed order.
fn summarize(entry: &Value) -> String {
    const FIELDS: [&str; 12] = [
        "jti",
        "client_id",
        "grant_type",
        "site",
        "host",
        "job_id",
        "suspension_id",
        "target",
        "scope",
        "reason_code",
        "action",
        "reason",
    ];
    let parts: Vec<String> = FIELDS
        .iter()
        .filter_map(|name| match entry.get(*name) {
            None | Some(Value::Null) => None,
            value => Some(format!("{name}={}", cell(value))),
        })
        .collect();
    parts.join(" ")
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// The VO whose resolutions are listed.
    #[arg(long)]
    pub vo: String,
    #[command(flatten)]
    pub paging: Paging,
    #[command(flatten)]
    pub format: ListFormat,
}

pub const AUDIT_ABOUT: &str = "\
Who resolved what in a VO, when and why, newest first: GET /v1/vos/{vo}/resolutions. One row
per resolution entry: log index, time, requester, action, target, reason, and how many
records the answer revealed; an erasure of a person is a row too (action `erasure`, the
person as target, the entries it redacted as revealed). For the VO's security officers and auditors, and admins.

Exit status: 0 answered; 2 usage, network or server error; 4 refused (401/403).";

/// `tokenledger audit`.
pub fn audit(args: &AuditArgs, settings: &Settings) -> Result<(), Failure> {
    let path = args
        .paging
        .apply(ApiPath::new(&["vos", &args.vo, "resolutions"])?);
    let client: Client = settings.authenticated_client()?;
    let answer = client.get::<ResolutionPage>(&path)?;
    if args.format.json {
        render::print_json(&answer.raw);
        return Ok(());
    }
    let mut table = Table::new(&[
        "INDEX", "WHEN", "WHO", "ACTION", "TARGET", "REASON", "REVEALED",
    ]);
    for served in &answer.typed.resolutions {
        let e = &served.entry;
        let (action, target, revealed) = if e.get("type") == Some(&Value::from("erasure")) {
            let redacted: u64 = e
                .get("counts")
                .and_then(Value::as_object)
                .map_or(0, |counts| counts.values().filter_map(Value::as_u64).sum());
            (
                "erasure".to_string(),
                cell(e.get("person_id")),
                redacted.to_string(),
            )
        } else {
            (
                cell(e.get("action")),
                cell(e.get("target")),
                cell(e.get("revealed")),
            )
        };
        table.row(vec![
            served.index.to_string(),
            micros_cell(e.get("logged_at")),
            cell(e.get("requester")),
            action,
            target,
            cell(e.get("reason")),
            revealed,
        ]);
    }
    let notes: Vec<String> = answer
        .typed
        .next_before
        .map(|b| format!("more: --before {b}"))
        .into_iter()
        .collect();
    print_list(&table, &notes, args.format.csv, "no resolutions");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokenledger_core::chain::{Chain, ChainLink};
    use tokenledger_core::merkle::Hash;
    use tokenledger_core::wire::{IdentityView, InclusionProof};

    const ISS: &str = "https://atlas-auth.example/";

    fn person(id: &str) -> PersonView {
        PersonView {
            id: id.into(),
            vo: "atlas".into(),
            identities: vec![IdentityView {
                iss: ISS.into(),
                sub: "alice".into(),
            }],
        }
    }

    fn link(index: u64, jti: &str, grant: Option<&str>) -> ChainLink {
        ChainLink {
            index,
            jti: jti.into(),
            iss: ISS.into(),
            sub: "alice".into(),
            client_id: Some("rucio".into()),
            grant_type: grant.map(str::to_owned),
            parent_jti: None,
            refresh_jti: None,
        }
    }

    fn resolution(human: Option<PersonView>) -> TokenResolution {
        TokenResolution {
            resolution_index: 17,
            person: person("pe-1"),
            issuance: ServedEntry {
                index: 3,
                leaf: String::new(),
                entry: json!({
                    "jti": "exchanged", "iss": ISS, "sub": "alice", "client_id": "rucio",
                    "scopes": ["storage.read:/", "compute.create"], "iat": 1767225600,
                    "exp": 1767229200, "logged_at": 1767225600000000i64, "type": "issuance",
                }),
            },
            inclusion_proof: InclusionProof {
                index: 3,
                size: 4,
                leaf_hash: Hash([0; 32]),
                hashes: vec![],
            },
            checkpoint: String::new(),
            chain: Chain {
                links: vec![
                    link(3, "exchanged", Some("token-exchange")),
                    link(0, "login", Some("authorization_code")),
                ],
                complete: true,
                stopped: None,
            },
            human,
        }
    }

    #[test]
    fn a_resolution_shows_person_issuance_chain_human_and_log_index() {
        let text = resolution_text(&resolution(Some(person("pe-1"))));
        let expected = "\
Person pe-1 in VO atlas
  ISS                          SUB
  https://atlas-auth.example/  alice

Issuance (log entry 3)
  jti         exchanged
  iss         https://atlas-auth.example/
  sub         alice
  client_id   rucio
  scopes      storage.read:/ compute.create
  grant_type  -
  iat         2026-01-01T00:00:00Z
  exp         2026-01-01T01:00:00Z
  logged_at   2026-01-01T00:00:00Z

Chain, this token first (complete)
  INDEX  JTI        GRANT_TYPE          CLIENT_ID  SUB
  3      exchanged  token-exchange      rucio      alice
  0      login      authorization_code  rucio      alice

Human at the root  pe-1 (https://atlas-auth.example/ alice)
Resolution logged  log entry 17
";
        assert_eq!(text, expected);
        let pilot = resolution_text(&resolution(None));
        assert!(pilot.contains("Human at the root  none: service/pilot token, no human"));
    }

    #[test]
    fn issuance_rows_and_event_summaries() {
        let served = ServedEntry {
            index: 9,
            leaf: String::new(),
            entry: json!({"jti": "t", "iss": ISS, "sub": "bob", "scopes": [], "iat": 0}),
        };
        let table = issuance_table(&[served]);
        assert_eq!(
            table.csv(),
            "index,iat,jti,iss,sub,client_id,scopes,exp\r\n\
             9,1970-01-01T00:00:00Z,t,https://atlas-auth.example/,bob,-,-,-\r\n"
        );
        assert_eq!(
            summarize(
                &json!({"type": "sighting", "jti": "t", "site": "CERN-PROD", "host": null, "job_id": "j1"})
            ),
            "jti=t site=CERN-PROD job_id=j1"
        );
        assert_eq!(
            page_notes(5, Some(2)),
            ["logged as resolution entry 5", "more: --before 2"]
        );
    }
}
