//! `tokenledger site ...`: a site admin's commands. A jti seen in local logs becomes the
//! site's pseudonym of the person (never the identity); suspensions of a pseudonym or of one
//! leaked token, lifts and the site's list; the site key for offline enforcement; sightings.

use clap::{Args, Subcommand};
use serde_json::Value;
use tokenledger_core::wire::{
    SightingReport, SiteKeyAnswer, SitePseudonym, SiteSuspendRequest, SuspendRequest,
    SuspensionList, SuspensionView,
};

use crate::client::ApiPath;
use crate::config::Settings;
use crate::exit::Failure;
use crate::render::{self, ListFormat, ObjectFormat, fields};
use crate::suspension::{self, Terms};
use crate::suspension_request;
use crate::timespec;

pub const ABOUT: &str = "\
A site admin's commands (credential: site-admin of the site): pseudonyms, suspensions, the
site key, sightings. The ledger never tells a site who is behind a pseudonym; only the VO
resolves it, and every resolution is logged.";

#[derive(Subcommand, Debug)]
pub enum SiteCommand {
    /// The site's pseudonym of the person behind a token seen in local logs.
    Pseudonym(PseudonymArgs),
    /// Suspend a pseudonym (a person), the person behind a jti, only that token, or a client
    /// of an issuer; a person or client possibly only for tokens issued before a cut-off.
    Suspend(SuspendArgs),
    /// Lift one of the site's suspensions, with a reason.
    Lift(LiftArgs),
    /// The site's suspensions (its own and the VO-wide ones reaching it), newest first.
    List(ListArgs),
    /// Print the site key (base64) for the site's offline check configuration.
    Key(KeyArgs),
    /// Report that a token was seen in use at the site (from logs: `tokenledger ingest
    /// --format htcondor-history|dcache-access`).
    Sighting(SightingArgs),
    /// Ask the VO to suspend the person behind a pseudonym (or a jti) at every site of the
    /// VO, with the site's evidence; the site sees the outcome, never the identity.
    RequestSuspension(suspension_request::RequestArgs),
    /// The site's suspension requests and their outcomes (or one, by id).
    Requests(suspension_request::SiteRequestsArgs),
}

/// The site acted for.
#[derive(Args, Debug, Clone)]
pub struct SiteName {
    /// The site (name as in GOCDB/CRIC, e.g. CERN-PROD).
    #[arg(long, value_name = "S")]
    pub site: String,
}

#[derive(Args, Debug)]
pub struct PseudonymArgs {
    /// The access token's `jti` (HTCondor `AuthTokenId`, storage logs).
    pub jti: String,
    #[command(flatten)]
    pub site: SiteName,
    /// The token's issuer, where several issuers logged the same jti.
    #[arg(long)]
    pub iss: Option<String>,
    #[command(flatten)]
    pub format: ObjectFormat,
}

#[derive(Args, Debug)]
#[group(id = "site_target", required = true, multiple = false, args = ["pseudonym", "jti", "client"])]
pub struct SuspendArgs {
    #[command(flatten)]
    pub site: SiteName,
    /// Suspend the person behind this pseudonym (`p1-...`).
    #[arg(long, value_name = "P")]
    pub pseudonym: Option<String>,
    /// Suspend the person behind this token (or, with --token-only, only the token).
    #[arg(long, value_name = "J")]
    pub jti: Option<String>,
    /// Suspend a client of an issuer (a token's `client_id`, else `azp`): every token it
    /// gets, whoever's. Needs --iss.
    #[arg(long, value_name = "CLIENT_ID", requires = "iss")]
    pub client: Option<String>,
    /// The token's issuer, where several issuers logged the same jti; the client's issuer.
    #[arg(long, value_name = "I", conflicts_with = "pseudonym")]
    pub iss: Option<String>,
    /// Suspend only the token (a leaked token), until it expires.
    #[arg(long, conflicts_with_all = ["pseudonym", "client"])]
    pub token_only: bool,
    #[command(flatten)]
    pub terms: Terms,
    #[command(flatten)]
    pub format: ObjectFormat,
}

#[derive(Args, Debug)]
pub struct LiftArgs {
    /// The suspension's id (`su-...`).
    pub id: String,
    #[command(flatten)]
    pub site: SiteName,
    /// Why it is lifted; logged.
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub format: ObjectFormat,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub site: SiteName,
    #[command(flatten)]
    pub format: ListFormat,
}

#[derive(Args, Debug)]
pub struct KeyArgs {
    #[command(flatten)]
    pub site: SiteName,
    #[command(flatten)]
    pub format: ObjectFormat,
}

#[derive(Args, Debug)]
pub struct SightingArgs {
    #[command(flatten)]
    pub site: SiteName,
    /// The token's `jti`.
    #[arg(long, value_name = "J")]
    pub jti: String,
    /// The token's issuer, where several issuers logged the same jti.
    #[arg(long, value_name = "I")]
    pub iss: Option<String>,
    /// When it was seen (RFC 3339 or unix seconds) [default: now].
    #[arg(long, value_name = "T", value_parser = timespec::parse_time)]
    pub seen_at: Option<i64>,
    /// The host it was seen on.
    #[arg(long, value_name = "H")]
    pub host: Option<String>,
    /// The batch job it ran in.
    #[arg(long, value_name = "ID")]
    pub job_id: Option<String>,
    #[command(flatten)]
    pub format: ObjectFormat,
}

/// Runs a `site` subcommand.
pub fn run(command: &SiteCommand, settings: &Settings) -> Result<(), Failure> {
    let client = settings.authenticated_client()?;
    match command {
        SiteCommand::Pseudonym(args) => {
            let path = ApiPath::new(&["sites", &args.site.site, "tokens", &args.jti, "pseudonym"])?
                .query_opt("iss", args.iss.as_deref());
            let answer = client.get::<SitePseudonym>(&path)?;
            if args.format.json {
                render::print_json(&answer.raw);
            } else {
                let p = &answer.typed;
                print!(
                    "{}",
                    fields(&[
                        ("pseudonym", p.pseudonym.clone()),
                        ("vo", p.vo.clone()),
                        ("site", p.site.clone()),
                    ])
                );
            }
        }
        SiteCommand::Suspend(args) => {
            let (subject, jti, iss) = (args.pseudonym.clone(), args.jti.clone(), args.iss.clone());
            let body = SiteSuspendRequest::from(SuspendRequest {
                client: args.client.clone(),
                ..args.terms.request(subject, jti, iss, args.token_only)
            });
            let path = ApiPath::new(&["sites", &args.site.site, "suspensions"])?;
            let answer = client.send::<SuspensionView>("POST", &path, &body)?;
            suspension::print_view(&answer.raw, &answer.typed, args.format);
        }
        SiteCommand::Lift(args) => {
            let path = ApiPath::new(&["sites", &args.site.site, "suspensions", &args.id])?;
            suspension::lift(&client, &path, &args.reason, args.format)?;
        }
        SiteCommand::List(args) => {
            let path = ApiPath::new(&["sites", &args.site.site, "suspensions"])?;
            let answer = client.get::<SuspensionList>(&path)?;
            suspension::print_list(&answer.raw, &answer.typed, args.format);
        }
        SiteCommand::Key(args) => {
            let path = ApiPath::new(&["sites", &args.site.site, "key"])?;
            let answer = client.get::<SiteKeyAnswer>(&path)?;
            eprintln!(
                "tokenledger: this is the secret key of site {}: keep it only in the site's \
                 check configuration (mode 0600); this fetch is logged",
                answer.typed.site
            );
            if args.format.json {
                render::print_json(&answer.raw);
            } else {
                println!("{}", answer.typed.key);
            }
        }
        SiteCommand::RequestSuspension(args) => suspension_request::request(&client, args)?,
        SiteCommand::Requests(args) => suspension_request::site_requests(&client, args)?,
        SiteCommand::Sighting(args) => {
            let body = SightingReport {
                jti: args.jti.clone(),
                iss: args.iss.clone(),
                seen_at: args.seen_at.unwrap_or_else(timespec::now_secs),
                host: args.host.clone(),
                job_id: args.job_id.clone(),
            };
            let path = ApiPath::new(&["sites", &args.site.site, "sightings"])?;
            let answer = client.send::<Value>("POST", &path, &body)?;
            if args.format.json {
                render::print_json(&answer.raw);
            } else {
                let index = answer
                    .typed
                    .get("index")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| {
                        Failure::Error(format!("the server's answer has no index: {}", answer.raw))
                    })?;
                println!("sighting logged as log entry {index}");
            }
        }
    }
    Ok(())
}
