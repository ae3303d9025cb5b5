//! `tokenledger check`: is this token's user suspended at this site? Decided offline from
//! the blocklists `blocklist pull` installed (no network, ever), for the CE that asks:
//!
//! - `--htcondor`: HTCondor's SciTokens plugin protocol. Exit 2 (authentication fails) for a
//!   suspended user, with one line on stderr; exit 1 (decline: the next plugin maps) otherwise.
//! - `--arc %D`: an ARC `[authgroup]` plugin. Exit 0 (the group matches: `denyaccess`) for a
//!   suspended user; exit 1 otherwise.
//! - `--token FILE|-` or `--iss/--sub/--jti`: a person asking. Prints `allowed` (exit 0) or
//!   `suspended <pseudonym> <scope> <reason-code>` (exit 1); exit 2 on a usage error or a
//!   check.toml that cannot be used.
//! - `--self-test`: the node's monitoring decides the VO's canary (`self_test`): a
//!   Nagios/ETF plugin, exit 0 OK, 1 WARNING, 2 CRITICAL with one status line.
//!
//! A blocklist that cannot be trusted (missing, not a regular file, unreadable, badly signed,
//! for another site, rolled back, expired) is decided by `on_stale` (default `deny`); so is a
//! ledger whose site key or log key cannot be used, and a configuration error (with the
//! file's policy if it could be read). Each deny of the plugin modes goes to syslog
//! (`authpriv`): site, pseudonym, suspension, jti as given; never the token. Nothing waits:
//! no network, no FIFO or device read. The modules: `config` (check.toml), `identity` (who is
//! asking, per protocol), `file` (reading only regular files), `load` and `cache` (a verified
//! blocklist, cached so that a decision reads a few records), `high_water` (the rollback
//! guard that outlives the cache), `syslog`.

mod cache;
mod config;
#[cfg(test)]
mod fuzz;
mod high_water;
pub(crate) mod identity;
mod load;
mod self_test;
mod syslog;

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::{ArgGroup, Args, ValueEnum};
use serde_json::json;
use tokenledger_core::blocklist::Scope;

use cache::CachedEntry;
use config::{CheckConfig, Ledger, LedgerKeys, OnStale};
use identity::{ArcSubject, Identity};

pub const ABOUT: &str = "\
Decide whether a token's user is suspended at this site, offline, from the signed blocklists
that `tokenledger blocklist pull` installs (no network, ever). The configuration is --config
FILE, else $TOKENLEDGER_CHECK_CONFIG, else /etc/tokenledger/check.toml:

  on_stale = \"deny\"     # or \"allow\": when a blocklist is missing, unreadable, badly signed,
                        # for another site, rolled back or expired (default: deny)
  scope = \"compute\"     # what this node grants: compute (default), storage, all
  issuers = [\"https://atlas-auth.cern.ch/\"]   # for splitting ARC's %D (<iss>/<sub>)

  [[ledger]]
  site = \"CERN-PROD\"
  blocklist = \"/var/lib/tokenledger/CERN-PROD.json\"
  log_key = \"ledger.example.org/log+1a2b3c4d+AQ...\"
  site_key_file = \"/etc/tokenledger/CERN-PROD.key\"   # `tokenledger site key`; mode 0600
  # high_water = \"/etc/tokenledger/CERN-PROD.key.seq\"  # the default: beside the site key

Modes and exit status:
  --htcondor        HTCondor SciTokens plugin: the decoded JWT payload on stdin, BEARER_TOKEN_0_*
                    in the environment. 2 = suspended (authentication fails; one line on
                    stderr), 1 = not suspended (decline: the next plugin maps).
  --arc %D          ARC [authgroup] plugin (`denyaccess` on a match): 0 = suspended, 1 = not.
  --token FILE|-    A JWT (or its decoded payload), whose payload is read WITHOUT verifying
                    its signature: the CE verified it. Or --iss I (--sub S) (--jti J)
                    (--client C) (--iat TIME).
                    Prints `allowed` (exit 0) or `suspended <pseudonym> <scope> <reason-code>`
                    (`client` for a client suspension) (exit 1); 2 = usage error, or a
                    check.toml that cannot be used. --json for details.
A token matches a suspension by its identity (iss, sub), its jti, or its client (client_id,
else azp). A not-before cut-off suspends only tokens whose iat is before it, and tokens
without iat: ARC's %D names neither client nor iat, so under --arc a client suspension
cannot match and a cut-off suspends the person's every token.
  --self-test       For the node's monitoring (Nagios, ETF, NRPE): decides every [[canary]]
                    of check.toml (iss, sub: the VO's canary, suspended for good at every
                    site of the VO) with this configuration, keys and blocklists, as the
                    plugins would; run it as the plugin's user. One status line on stdout;
                    0 = OK, 1 = WARNING (a blocklist expiring within 6 h, a canary denied
                    by another reason code, a cache or rollback mark not writable),
                    2 = CRITICAL (a canary let in, a blocklist or key that cannot be used,
                    a check.toml that cannot be read or names no canary).
When on_stale applies (a stale blocklist, a site key that cannot be used, or for the plugins
a check.toml that cannot be used: its own on_stale if it could be read, else deny), \"deny\"
answers as for a suspended user (and says why on stderr), \"allow\" as for one who is not.

The first decision after a new blocklist verifies it and writes a cache beside it
(FILE.cache, or `cache = ...`), authenticated with the site key; later decisions read only a
few records of it. The highest sequence accepted is kept beside the site key (`high_water`),
so an older blocklist is refused as a rollback even after the cache is deleted: its directory
must be writable by the plugin's user and by no one who can write the blocklist.";

/// What this node grants, for `--scope`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    Compute,
    Storage,
    All,
}

impl From<ScopeArg> for Scope {
    fn from(s: ScopeArg) -> Scope {
        match s {
            ScopeArg::Compute => Scope::Compute,
            ScopeArg::Storage => Scope::Storage,
            ScopeArg::All => Scope::All,
        }
    }
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("mode").required(true).args(["htcondor", "arc", "token", "iss", "self_test"])))]
#[command(group(ArgGroup::new("who").multiple(true).args(["sub", "jti", "client"])))]
pub struct CheckArgs {
    /// The check configuration [env: TOKENLEDGER_CHECK_CONFIG] [default:
    /// /etc/tokenledger/check.toml].
    #[arg(long, id = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// HTCondor SciTokens plugin (SEC_SCITOKENS_PLUGIN_<N>_COMMAND): exit 2 suspended, 1 not.
    #[arg(long)]
    pub htcondor: bool,
    /// ARC authgroup plugin, given `%D` (`<iss>/<sub>`): exit 0 suspended, 1 not.
    #[arg(long, value_name = "IDENTITY")]
    pub arc: Option<String>,
    /// A JWT (or its decoded payload JSON) from FILE, or `-` for stdin; NOT verified.
    #[arg(long, id = "token", value_name = "FILE|-")]
    pub token: Option<String>,
    /// The token's issuer (with --sub, --jti and/or --client).
    #[arg(long, value_name = "I", requires = "who")]
    pub iss: Option<String>,
    /// The token's subject.
    #[arg(long, value_name = "S", requires = "iss", conflicts_with_all = ["htcondor", "arc", "token"])]
    pub sub: Option<String>,
    /// The token's jti (matches token suspensions).
    #[arg(long, value_name = "J", requires = "iss", conflicts_with_all = ["htcondor", "arc", "token"])]
    pub jti: Option<String>,
    /// The token's client (`client_id`, else `azp`; matches client suspensions).
    #[arg(long, value_name = "C", requires = "iss", conflicts_with_all = ["htcondor", "arc", "token"])]
    pub client: Option<String>,
    /// When the token was issued (`iat`), unix seconds or RFC 3339; without it a not-before
    /// cut-off suspends.
    #[arg(long, value_name = "TIME", requires = "iss", value_parser = crate::timespec::parse_time, conflicts_with_all = ["htcondor", "arc", "token"])]
    pub iat: Option<i64>,
    /// The access asked for [default: `scope` of the configuration, else compute].
    #[arg(long, value_enum, conflicts_with_all = ["htcondor", "arc"])]
    pub scope: Option<ScopeArg>,
    /// Print the decision as JSON.
    #[arg(long, conflicts_with_all = ["htcondor", "arc", "self_test"])]
    pub json: bool,
    /// Monitoring: decide the configuration's [[canary]]s; exit 0 OK, 1 WARNING, 2 CRITICAL.
    #[arg(long)]
    pub self_test: bool,
}

/// Who asks, and so how the answer is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Htcondor,
    Arc,
    Person { json: bool },
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Htcondor => "htcondor",
            Mode::Arc => "arc",
            Mode::Person { .. } => "query",
        }
    }

    /// The exit status of "let in" and of "keep out".
    fn codes(self) -> (u8, u8) {
        match self {
            Mode::Htcondor => (1, 2),
            Mode::Arc => (1, 0),
            Mode::Person { .. } => (0, 1),
        }
    }
}

/// The answer.
#[derive(Debug)]
enum Outcome<'a> {
    Allowed,
    Suspended(&'a Ledger, CachedEntry),
    /// A blocklist could not be trusted and its policy is deny.
    Stale {
        site: &'a str,
        why: String,
    },
}

/// Runs `check`; its exit status.
pub fn run(args: &CheckArgs) -> u8 {
    if args.self_test {
        let path = config::path(
            args.config.as_deref(),
            identity::process_env(config::PATH_ENV),
        );
        return self_test::run(&path, args.scope.map(Scope::from));
    }
    let mode = if args.htcondor {
        Mode::Htcondor
    } else if args.arc.is_some() {
        Mode::Arc
    } else {
        Mode::Person { json: args.json }
    };
    // HTCondor writes the payload and closes stdin at once: read it before anything else.
    let stdin = (mode == Mode::Htcondor)
        .then(|| identity::read_stdin_bounded(identity::STDIN_WAIT))
        .flatten();
    let path = config::path(
        args.config.as_deref(),
        identity::process_env(config::PATH_ENV),
    );
    let config = match config::load(&path) {
        Ok(config) => config,
        Err(e) => return error(mode, e.policy, &e.message),
    };
    let who = match who(args, mode, stdin.as_deref(), &config) {
        Ok(Some(who)) => who,
        Ok(None) => return answer_allowed(mode, &[]),
        Err(e) => return error(mode, config.on_stale, &e),
    };
    let asked = args.scope.map_or(config.scope, Scope::from);
    let now = crate::timespec::now_secs();
    let mut warnings = Vec::new();
    match decide(&config, &who, asked, now, &mut warnings) {
        Outcome::Allowed => answer_allowed(mode, &warnings),
        Outcome::Suspended(ledger, entry) => {
            answer_suspended(mode, ledger, &entry, &who, &warnings)
        }
        Outcome::Stale { site, why } => answer_stale(mode, site, &why, &who, &warnings),
    }
}

/// The identity to decide on, per mode; `None` when there is nothing the ledger could match
/// (ARC: an issuer not in `issuers`, logged).
fn who(
    args: &CheckArgs,
    mode: Mode,
    stdin: Option<&[u8]>,
    config: &CheckConfig,
) -> Result<Option<Identity>, String> {
    let env = &identity::process_env;
    match mode {
        Mode::Htcondor => identity::htcondor(stdin, env).map(Some),
        Mode::Arc => {
            let d = args.arc.as_deref().unwrap_or_default();
            if config.issuers.is_empty() && !d.is_empty() && !d.starts_with('/') {
                return Err(format!(
                    "{} lists no `issuers`, so ARC's %D cannot be split into issuer and subject",
                    config.path.display()
                ));
            }
            match identity::split_arc(d, &config.issuers) {
                ArcSubject::Token(who) => Ok(Some(who)),
                ArcSubject::Nobody => Ok(None),
                ArcSubject::Unlisted => {
                    let note = format!(
                        "not checked: no issuer of {} starts the identity (list every issuer \
                         of the ledger's VOs in `issuers`)",
                        config.path.display()
                    );
                    // The identity on stderr (the CE's own log), not in syslog.
                    say(&format!("tokenledger: {note}: `{d}`"));
                    syslog::send(syslog::Severity::Notice, &format!("mode=arc {note}"));
                    Ok(None)
                }
            }
        }
        Mode::Person { .. } => {
            if let Some(source) = &args.token {
                let text = read_token(source)?;
                return identity::from_token(&text).map(Some);
            }
            Ok(Some(Identity {
                iss: args.iss.clone().ok_or("--iss is required")?,
                sub: args.sub.clone(),
                jti: args.jti.clone(),
                client_id: args.client.clone(),
                iat: args.iat,
            }))
        }
    }
}

/// A token from a file or stdin (`-`), read to its end.
pub(crate) fn read_token(source: &str) -> Result<String, String> {
    let mut text = String::new();
    let read = if source == "-" {
        std::io::stdin()
            .lock()
            .take(identity::MAX_INPUT_BYTES)
            .read_to_string(&mut text)
    } else {
        std::fs::File::open(source)
            .and_then(|f| f.take(identity::MAX_INPUT_BYTES).read_to_string(&mut text))
    };
    read.map_err(|e| format!("reading the token from {source}: {e}"))?;
    Ok(text)
}

/// Every ledger is asked; the first suspension wins, then a stale blocklist (or unusable
/// keys) whose policy is deny. A stale blocklist whose policy is allow only adds a warning.
fn decide<'a>(
    config: &'a CheckConfig,
    who: &Identity,
    asked: Scope,
    now: i64,
    warnings: &mut Vec<String>,
) -> Outcome<'a> {
    let mut stale = None;
    for ledger in &config.ledgers {
        let found = match &ledger.keys {
            Ok(keys) => ask(ledger, keys, who, asked, now, &mut |w| warnings.push(w))
                .map(|(found, _)| found),
            Err(why) => Err(why.clone()),
        };
        match found {
            Ok(Some(entry)) => return Outcome::Suspended(ledger, entry),
            Ok(None) => {}
            Err(why) if ledger.on_stale == OnStale::Deny => {
                stale.get_or_insert((ledger.site.as_str(), why));
            }
            Err(why) => warnings.push(format!(
                "{why}; allowed because on_stale = \"allow\" for site {}",
                ledger.site
            )),
        }
    }
    match stale {
        Some((site, why)) => Outcome::Stale { site, why },
        None => Outcome::Allowed,
    }
}

/// The entry of `ledger`'s blocklist suspending `who`, if any, and the header of the
/// blocklist it was decided with.
fn ask(
    ledger: &Ledger,
    keys: &LedgerKeys,
    who: &Identity,
    asked: Scope,
    now: i64,
    warn: &mut dyn FnMut(String),
) -> Result<(Option<CachedEntry>, cache::Header), load::Stale> {
    let cache = load::open(ledger, keys, now, true, warn)?;
    match cache.decide(&keys.site_key, who, asked, now) {
        Ok(found) => Ok((found, cache.header)),
        // A record failed its MAC: rebuild from the verified file and ask again.
        Err(e) => {
            warn(format!(
                "{e}; rebuilding it from {}",
                ledger.blocklist.display()
            ));
            let rebuilt = load::open(ledger, keys, now, false, warn)?;
            let found = rebuilt
                .decide(&keys.site_key, who, asked, now)
                .map_err(|e| format!("the rebuilt cache fails: {e}"))?;
            Ok((found, rebuilt.header))
        }
    }
}

/// One line on stderr, in one write (HTCondor logs what the plugin wrote as it came).
fn say(line: &str) {
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

/// Warnings go to syslog in the plugin modes; to stderr unless the verdict is a deny there,
/// whose stderr is the one line HTCondor logs.
fn print_warnings(mode: Mode, warnings: &[String], denied: bool) {
    let plugin = !matches!(mode, Mode::Person { .. });
    for warning in warnings {
        if !(plugin && denied) {
            say(&format!("tokenledger: warning: {warning}"));
        }
        if plugin {
            syslog::send(
                syslog::Severity::Warning,
                &format!("mode={} {warning}", mode.name()),
            );
        }
    }
}

fn answer_allowed(mode: Mode, warnings: &[String]) -> u8 {
    print_warnings(mode, warnings, false);
    match mode {
        Mode::Person { json: true } => {
            println!("{}", json!({"decision": "allowed", "warnings": warnings}))
        }
        Mode::Person { json: false } => println!("allowed"),
        Mode::Htcondor | Mode::Arc => {}
    }
    mode.codes().0
}

fn answer_suspended(
    mode: Mode,
    ledger: &Ledger,
    e: &CachedEntry,
    who: &Identity,
    warnings: &[String],
) -> u8 {
    print_warnings(mode, warnings, true);
    let details = format!(
        "site={} pseudonym={} suspension={} vo={} scope={} reason={} jti={}",
        ledger.site,
        e.pseudonym.as_deref().unwrap_or("-"),
        e.suspension_id,
        e.vo,
        e.scope.as_str(),
        e.reason_code,
        who.jti.as_deref().unwrap_or("-")
    );
    match mode {
        Mode::Person { json: true } => println!(
            "{}",
            json!({
                "decision": "suspended", "site": ledger.site, "vo": e.vo, "pseudonym": e.pseudonym,
                "client": e.client, "scope": e.scope, "reason_code": e.reason_code,
                "suspension_id": e.suspension_id, "not_after": e.not_after,
                "issued_before": e.issued_before, "warnings": warnings,
            })
        ),
        Mode::Person { json: false } => {
            println!(
                "suspended {} {} {}",
                e.label(),
                e.scope.as_str(),
                e.reason_code
            );
        }
        Mode::Htcondor | Mode::Arc => {
            let whom = match &e.pseudonym {
                Some(pseudonym) => format!("pseudonym {pseudonym}"),
                None => "the token's client".to_string(),
            };
            say(&format!(
                "tokenledger: suspended at site {}: {whom}, suspension {} ({}, scope {})",
                ledger.site,
                e.suspension_id,
                e.reason_code,
                e.scope.as_str()
            ));
            syslog::send(
                syslog::Severity::Warning,
                &format!("deny mode={} {details}", mode.name()),
            );
        }
    }
    mode.codes().1
}

fn answer_stale(mode: Mode, site: &str, why: &str, who: &Identity, warnings: &[String]) -> u8 {
    print_warnings(mode, warnings, true);
    say(&format!(
        "tokenledger: denied: {why}; on_stale = \"deny\" for site {site}"
    ));
    match mode {
        Mode::Person { json: true } => println!(
            "{}",
            json!({"decision": "denied", "reason": "stale", "site": site, "detail": why, "warnings": warnings})
        ),
        Mode::Person { json: false } => println!("denied stale {site}"),
        Mode::Htcondor | Mode::Arc => syslog::send(
            syslog::Severity::Warning,
            &format!(
                "deny mode={} site={site} stale=\"{why}\" jti={}",
                mode.name(),
                who.jti.as_deref().unwrap_or("-")
            ),
        ),
    }
    mode.codes().1
}

/// A configuration or input error: the plugins follow the policy (`deny` by default, since
/// an unusable configuration must not open the door), a person gets exit 2.
fn error(mode: Mode, policy: OnStale, e: &str) -> u8 {
    let (allow, deny) = mode.codes();
    match mode {
        Mode::Person { json } => {
            if json {
                println!("{}", json!({"decision": "error", "detail": e}));
            }
            say(&format!("tokenledger: {e}"));
            crate::exit::ERROR
        }
        Mode::Htcondor | Mode::Arc => {
            let verdict = match policy {
                OnStale::Deny => "denied",
                OnStale::Allow => "allowed",
            };
            say(&format!("tokenledger: error: {e}; {verdict} (on_stale)"));
            if policy == OnStale::Deny {
                syslog::send(
                    syslog::Severity::Warning,
                    &format!("deny mode={} error=\"{e}\"", mode.name()),
                );
                deny
            } else {
                allow
            }
        }
    }
}
