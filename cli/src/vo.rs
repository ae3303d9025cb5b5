//! `tokenledger vo ...`: a VO security officer's changes. Suspend a person (or one token) at
//! every site of the VO, lift, list the VO's suspensions; link another identity to a person,
//! merge two persons; resolve a pseudonym a site reported (a logged resolution); the VO's
//! canary (`vo_canary`).

use clap::{Args, Subcommand};
use tokenledger_core::wire::{
    LinkRequest, MergeRequest, PersonView, SuspendRequest, SuspensionList, SuspensionView,
    VoSuspendRequest,
};

use crate::client::ApiPath;
use crate::config::Settings;
use crate::exit::Failure;
use crate::render::{self, ListFormat, ObjectFormat};
use crate::resolution::person_text;
use crate::suspension::{self, Terms};
use crate::suspension_request;
use crate::vo_canary;

pub const ABOUT: &str = "\
A VO security officer's changes (credential: vo-security of the VO): suspensions at every
site of the VO, identity links and merges, and resolving a site's pseudonym. Each is a log
entry, with its reason.";

#[derive(Subcommand, Debug)]
pub enum VoCommand {
    /// Suspend a person (or the person behind a jti, or only that token), or a client of an
    /// issuer, at every site of the VO; a person or client possibly only for tokens issued
    /// before a cut-off.
    Suspend(SuspendArgs),
    /// Lift a VO-wide suspension, with a reason.
    Lift(LiftArgs),
    /// Every suspension of the VO's persons: by site and pseudonym, or VO-wide by person.
    Suspensions(SuspensionsArgs),
    /// Link another identity (iss, sub) to a person.
    Link(LinkArgs),
    /// Merge another person into this one (identities, pseudonyms, suspensions).
    Merge(MergeArgs),
    /// Resolve a site's pseudonym to the person (logged with the reason).
    Pseudonym(PseudonymArgs),
    /// Sites' requests to suspend a person at every site of the VO: list, accept, decline.
    #[command(subcommand)]
    Requests(suspension_request::VoRequestsCommand),
    /// The VO's canary: a test account suspended at every site for good (sites' monitoring
    /// and submission probes show it is refused).
    #[command(subcommand, long_about = vo_canary::ABOUT)]
    Canary(vo_canary::CanaryCommand),
}

/// The VO acted for.
#[derive(Args, Debug, Clone)]
pub struct VoName {
    /// The VO (e.g. atlas).
    #[arg(long, value_name = "V")]
    pub vo: String,
}

#[derive(Args, Debug)]
#[group(id = "vo_target", required = true, multiple = false, args = ["person", "jti", "client"])]
pub struct SuspendArgs {
    #[command(flatten)]
    pub vo: VoName,
    /// Suspend this person (`pe-...`).
    #[arg(long, value_name = "P")]
    pub person: Option<String>,
    /// Suspend the person behind this token (or, with --token-only, only the token).
    #[arg(long, value_name = "J")]
    pub jti: Option<String>,
    /// Suspend a client of an issuer (a token's `client_id`, else `azp`): every token it
    /// gets, whoever's. Needs --iss.
    #[arg(long, value_name = "CLIENT_ID", requires = "iss")]
    pub client: Option<String>,
    /// The token's issuer, where several issuers logged the same jti; the client's issuer.
    #[arg(long, value_name = "I", conflicts_with = "person")]
    pub iss: Option<String>,
    /// Suspend only the token (a leaked token), until it expires.
    #[arg(long, conflicts_with_all = ["person", "client"])]
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
    pub vo: VoName,
    /// Why it is lifted; logged.
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub format: ObjectFormat,
}

#[derive(Args, Debug)]
pub struct SuspensionsArgs {
    #[command(flatten)]
    pub vo: VoName,
    #[command(flatten)]
    pub format: ListFormat,
}

#[derive(Args, Debug)]
pub struct LinkArgs {
    /// The person (`pe-...`) who gets the identity.
    pub person: String,
    #[command(flatten)]
    pub vo: VoName,
    /// The identity's issuer (or `x509` for a certificate DN).
    #[arg(long, value_name = "I")]
    pub iss: String,
    /// The identity's subject at that issuer (or the DN).
    #[arg(long, value_name = "S")]
    pub sub: String,
    /// Why; logged.
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub format: ObjectFormat,
}

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The person (`pe-...`) kept.
    pub person: String,
    /// The person merged into it, who ceases to exist.
    #[arg(long, value_name = "P2")]
    pub other: String,
    #[command(flatten)]
    pub vo: VoName,
    /// Why; logged.
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub format: ObjectFormat,
}

#[derive(Args, Debug)]
pub struct PseudonymArgs {
    /// The pseudonym (`p1-...`) a site reported.
    pub pseudonym: String,
    #[command(flatten)]
    pub vo: VoName,
    /// Why: the incident or ticket. Logged with the answer.
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub format: ObjectFormat,
}

/// Runs a `vo` subcommand.
pub fn run(command: &VoCommand, settings: &Settings) -> Result<(), Failure> {
    let client = settings.authenticated_client()?;
    match command {
        VoCommand::Suspend(args) => {
            let (subject, jti, iss) = (args.person.clone(), args.jti.clone(), args.iss.clone());
            let body = VoSuspendRequest::from(SuspendRequest {
                client: args.client.clone(),
                ..args.terms.request(subject, jti, iss, args.token_only)
            });
            let path = ApiPath::new(&["vos", &args.vo.vo, "suspensions"])?;
            let answer = client.send::<SuspensionView>("POST", &path, &body)?;
            suspension::print_view(&answer.raw, &answer.typed, args.format);
        }
        VoCommand::Lift(args) => {
            let path = ApiPath::new(&["vos", &args.vo.vo, "suspensions", &args.id])?;
            suspension::lift(&client, &path, &args.reason, args.format)?;
        }
        VoCommand::Suspensions(args) => {
            let path = ApiPath::new(&["vos", &args.vo.vo, "suspensions"])?;
            let answer = client.get::<SuspensionList>(&path)?;
            suspension::print_list(&answer.raw, &answer.typed, args.format);
        }
        VoCommand::Link(args) => {
            let body = LinkRequest {
                iss: args.iss.clone(),
                sub: args.sub.clone(),
                reason: args.reason.clone(),
            };
            let path = ApiPath::new(&["vos", &args.vo.vo, "persons", &args.person, "identities"])?;
            let answer = client.send::<PersonView>("POST", &path, &body)?;
            print_person(&answer.raw, &answer.typed, args.format);
        }
        VoCommand::Merge(args) => {
            let body = MergeRequest {
                other: args.other.clone(),
                reason: args.reason.clone(),
            };
            let path = ApiPath::new(&["vos", &args.vo.vo, "persons", &args.person, "merge"])?;
            let answer = client.send::<PersonView>("POST", &path, &body)?;
            print_person(&answer.raw, &answer.typed, args.format);
        }
        VoCommand::Pseudonym(args) => {
            let path = ApiPath::new(&["vos", &args.vo.vo, "pseudonyms", &args.pseudonym])?
                .query("reason", &args.reason);
            let answer = client.get::<PersonView>(&path)?;
            print_person(&answer.raw, &answer.typed, args.format);
        }
        VoCommand::Requests(command) => suspension_request::vo_requests(&client, command)?,
        VoCommand::Canary(command) => vo_canary::run(command, &client)?,
    }
    Ok(())
}

fn print_person(raw: &serde_json::Value, person: &PersonView, format: ObjectFormat) {
    if format.json {
        render::print_json(raw);
    } else {
        print!("{}", person_text(person));
    }
}
