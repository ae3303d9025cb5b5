//! `tokenledger vo canary ...`: a VO's canary, a test account of the VO's issuer that is
//! suspended at every site of the VO for good (reason code `canary`), so that each site's
//! monitoring (`tokenledger check --self-test`) and the VO's submission probes can show that
//! the site refuses it. Built on the existing endpoints: the token resolution (logged) finds
//! the canary's person and shows it is an account of its own; the VO-wide suspension follows.

use clap::{Args, Subcommand};
use tokenledger_core::canary::REASON_CODE;
use tokenledger_core::wire::{
    SuspendRequest, SuspensionList, SuspensionView, TokenResolution, VoSuspendRequest,
};

use crate::check::{self, identity};
use crate::client::{ApiPath, Client};
use crate::exit::Failure;
use crate::render::{ListFormat, ObjectFormat};
use crate::suspension;
use crate::vo::VoName;

pub const ABOUT: &str = "\
The VO's canary: an account of the VO's issuer used for nothing but tests, suspended at every
site of the VO, for every scope, until lifted (reason code `canary`). Sites put its iss and
sub in check.toml ([[canary]]) and run `tokenledger check --self-test` from their
monitoring; the VO's submission probes use its tokens and expect every CE to refuse them.
Register it with one of its tokens (its issuance must be logged): the token is resolved
(a logged resolution), the person behind it must have no other identity, then it is
suspended. The canary's identity is no person's: sites may know it.";

#[derive(Subcommand, Debug)]
pub enum CanaryCommand {
    /// Suspend the canary at every site of the VO, for good; prints its [[canary]] for
    /// check.toml.
    Register(RegisterArgs),
    /// The VO's active canary suspensions.
    List(ListArgs),
}

#[derive(Args, Debug)]
#[group(id = "canary_token", required = true, multiple = true, args = ["jwt", "jti"])]
pub struct RegisterArgs {
    #[command(flatten)]
    pub vo: VoName,
    /// A token of the canary (JWT or its decoded payload, FILE or `-`): its iss, sub and jti.
    #[arg(long, value_name = "FILE|-", conflicts_with_all = ["iss", "sub", "jti"])]
    pub jwt: Option<String>,
    /// The canary's issuer (with --sub and --jti, instead of --jwt).
    #[arg(long, value_name = "I", requires_all = ["sub", "jti"])]
    pub iss: Option<String>,
    /// The canary's subject at that issuer.
    #[arg(long, value_name = "S", requires_all = ["iss", "jti"])]
    pub sub: Option<String>,
    /// The jti of a logged token of the canary.
    #[arg(long, value_name = "J", requires_all = ["iss", "sub"])]
    pub jti: Option<String>,
    /// Why (e.g. the VO's monitoring ticket); logged with the resolution and the suspension.
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub format: ObjectFormat,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub vo: VoName,
    #[command(flatten)]
    pub format: ListFormat,
}

/// Runs a `vo canary` subcommand.
pub fn run(command: &CanaryCommand, client: &Client) -> Result<(), Failure> {
    match command {
        CanaryCommand::Register(args) => register(args, client),
        CanaryCommand::List(args) => {
            let canaries = active_canaries(client, &args.vo.vo)?;
            let raw = serde_json::to_value(&canaries).expect("a list serializes");
            suspension::print_list(&raw, &canaries, args.format);
            Ok(())
        }
    }
}

/// The canary's (iss, sub, jti), from its token or the flags.
fn canary_of(args: &RegisterArgs) -> Result<(String, String, String), Failure> {
    if let Some(source) = &args.jwt {
        let who = check::read_token(source)
            .and_then(|text| identity::from_token(&text))
            .map_err(Failure::Error)?;
        let missing = |claim: &str| Failure::Error(format!("the canary's token has no `{claim}`"));
        let sub = who.sub.ok_or_else(|| missing("sub"))?;
        let jti = who.jti.ok_or_else(|| missing("jti"))?;
        return Ok((who.iss, sub, jti));
    }
    match (&args.iss, &args.sub, &args.jti) {
        (Some(iss), Some(sub), Some(jti)) => Ok((iss.clone(), sub.clone(), jti.clone())),
        _ => Err(Failure::Error(
            "give --jwt, or --iss, --sub and --jti".into(),
        )),
    }
}

fn register(args: &RegisterArgs, client: &Client) -> Result<(), Failure> {
    let vo = &args.vo.vo;
    let (iss, sub, jti) = canary_of(args)?;
    let path = ApiPath::new(&["vos", vo, "tokens", &jti])?
        .query("reason", &args.reason)
        .query("iss", &iss);
    let resolved = client.get::<TokenResolution>(&path)?.typed;
    let person = resolved.person;
    let only_the_canary =
        matches!(person.identities.as_slice(), [one] if one.iss == iss && one.sub == sub);
    if !only_the_canary {
        let identities: Vec<String> = person
            .identities
            .iter()
            .map(|i| format!("{} {}", i.iss, i.sub))
            .collect();
        return Err(Failure::Negative(format!(
            "not registered: token {jti} belongs to person {} with the identities [{}], not to \
             {iss} {sub} alone; a canary must be an account of its own, used for nothing else",
            person.id,
            identities.join(", ")
        )));
    }
    let already = active_canaries(client, vo)?
        .suspensions
        .into_iter()
        .find(|s| s.person.as_deref() == Some(person.id.as_str()));
    let (raw, view) = match already {
        Some(view) => {
            eprintln!("already registered: {}", view.id);
            let raw = serde_json::to_value(&view).expect("a suspension serializes");
            (raw, view)
        }
        None => {
            let body = VoSuspendRequest::from(SuspendRequest {
                subject: Some(person.id.clone()),
                scope: Some("all".into()),
                reason: args.reason.clone(),
                reason_code: Some(REASON_CODE.into()),
                ..SuspendRequest::default()
            });
            let path = ApiPath::new(&["vos", vo, "suspensions"])?;
            let answer = client.send::<SuspensionView>("POST", &path, &body)?;
            (answer.raw, answer.typed)
        }
    };
    suspension::print_view(&raw, &view, args.format);
    if !args.format.json {
        println!("\n# For the sites' check.toml (`tokenledger check --self-test`):");
        print!("{}", check_toml(&iss, &sub));
    }
    Ok(())
}

/// The `[[canary]]` table of check.toml.
fn check_toml(iss: &str, sub: &str) -> String {
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    format!("[[canary]]\niss = {}\nsub = {}\n", quote(iss), quote(sub))
}

/// The VO's active suspensions with the canary's reason code.
fn active_canaries(client: &Client, vo: &str) -> Result<SuspensionList, Failure> {
    let path = ApiPath::new(&["vos", vo, "suspensions"])?;
    let mut list = client.get::<SuspensionList>(&path)?.typed;
    list.suspensions
        .retain(|s| s.active && s.site.is_none() && s.reason_code == REASON_CODE);
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_toml_table_reads_back_as_given() {
        for sub in ["atlas-canary", "can\"ary", "it's", "a\\b\nc"] {
            let text = check_toml("https://iss.example/", sub);
            assert!(text.starts_with("[[canary]]\niss = \"https://iss.example/\"\n"));
            let read: toml::Table = toml::from_str(&text).unwrap();
            assert_eq!(read["canary"][0]["sub"].as_str(), Some(sub), "{text}");
        }
    }
}
