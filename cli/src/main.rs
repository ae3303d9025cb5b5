//! `tokenledger`: the command-line client of the ledger. One clap command tree; each command
//! lives in its own module and returns a [`Failure`] that carries its exit code (see
//! [`exit`]): 0 success, 1 negative answer, 2 usage, network or server error, 4 refused.
//! `check`, the CE plugin, is answered before any configuration or credential is looked up
//! and speaks its callers' exit codes ([`check`]).

mod atomic;
mod blocklist;
mod check;
mod client;
mod config;
mod docs;
mod exit;
mod ingest;
mod person;
mod pull;
mod pull_follow;
mod regular_file;
mod render;
mod resolution;
mod site;
mod suspension;
mod suspension_request;
mod timespec;
mod tls;
mod verify;
mod vo;
mod vo_canary;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};

use config::{ConnectionArgs, Environment, Settings};
use exit::Failure;

const LONG_ABOUT: &str = "\
Client of the tokenledger token-issuance ledger: ship issuance reports and verify the log;
for VO security officers, resolve tokens and pseudonyms to persons, search, follow timelines,
audit, suspend at every site of the VO, link and merge identities; for site admins, turn a
jti into the site's pseudonym, suspend and lift, report sightings, and show the site's
signed blocklist.

Server and credential come from flags, else the environment (TOKENLEDGER_SERVER,
TOKENLEDGER_TOKEN, TOKENLEDGER_LOG_KEY), else a profile of the configuration file
($XDG_CONFIG_HOME/tokenledger/config.toml, else ~/.config/tokenledger/config.toml, or
--config FILE; profile --profile, else TOKENLEDGER_PROFILE, else `default`):

  [profile.default]
  server = \"https://ledger.example.org\"
  token_file = \"atlas-officer.token\"     # relative to the file; or token = \"tlk_...\"
  log_key = \"ledger.example.org/log+1a2b3c4d+AQ...\"
  ca_file = \"ledger-ca.pem\"               # optional: a CA to trust besides the system's

A configuration file holding a token, and any token file, must not be readable by group or
others (chmod 600). Without a configured credential, WLCG bearer token discovery is
followed: $BEARER_TOKEN, the file $BEARER_TOKEN_FILE, $XDG_RUNTIME_DIR/bt_u<uid>,
/tmp/bt_u<uid> (the ledger accepts operators' OIDC tokens). Credentials are never printed.

Over https the server's certificate must chain to a CA of the system's trust store, of
--ca-file FILE (TOKENLEDGER_CA_FILE, or `ca_file` in the profile), or of the CA directory
$X509_CERT_DIR (else /etc/grid-security/certificates, where it exists: the IGTF CAs).";

#[derive(Parser, Debug)]
#[command(
    name = "tokenledger",
    version,
    about = "Client of the tokenledger token-issuance ledger",
    long_about = LONG_ABOUT,
    after_long_help = exit::EXIT_CODES_HELP,
)]
struct Cli {
    #[command(flatten)]
    connection: ConnectionArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Verify the log's signed checkpoint, its consistency with the last trusted one, and
    /// optionally one entry's or one ingest receipt's inclusion. Exit 0 verified, 1 failed,
    /// 2 usage or network error, 4 refused.
    Verify(VerifyArgs),
    /// Ship issuance reports (JWTs, NDJSON, IAM audit logs, Keycloak events) or a site's
    /// sightings (HTCondor job ads, dCache access logs) to the ledger. Exit 0 nothing
    /// rejected, 1 some inputs rejected, 2 usage, network or server error, 4 refused.
    #[command(long_about = ingest::LONG_ABOUT)]
    Ingest(ingest::IngestArgs),
    /// Resolve a token (jti) to the person, its chain up to the human, with proof.
    #[command(long_about = resolution::RESOLVE_ABOUT)]
    Resolve(resolution::ResolveArgs),
    /// Search a VO's tokens by client or scope, or list one person's tokens.
    #[command(long_about = resolution::SEARCH_ABOUT)]
    Search(resolution::SearchArgs),
    /// A person's timeline: what the log holds about them, newest first.
    #[command(long_about = resolution::TIMELINE_ABOUT)]
    Timeline(resolution::TimelineArgs),
    /// Who resolved what in a VO, when and why.
    #[command(long_about = resolution::AUDIT_ABOUT)]
    Audit(resolution::AuditArgs),
    /// A site admin's commands: pseudonyms, suspensions, the site key, sightings.
    #[command(subcommand, long_about = site::ABOUT, after_long_help = exit::EXIT_CODES_HELP)]
    Site(site::SiteCommand),
    /// A VO security officer's changes: suspensions, identity links, merges, pseudonyms.
    #[command(subcommand, long_about = vo::ABOUT, after_long_help = exit::EXIT_CODES_HELP)]
    Vo(vo::VoCommand),
    /// A VO security officer's actions on one person as a whole: erase.
    #[command(subcommand, long_about = person::ABOUT, after_long_help = exit::EXIT_CODES_HELP)]
    Person(person::PersonCommand),
    /// About one suspension: which sites have fetched a blocklist carrying it.
    #[command(subcommand, after_long_help = exit::EXIT_CODES_HELP)]
    Suspension(suspension::SuspensionCommand),
    /// A site's signed blocklist, verified with the pinned log key: show it, or pull it (or an
    /// export) into a file for local daemons.
    #[command(subcommand, after_long_help = exit::EXIT_CODES_HELP)]
    Blocklist(blocklist::BlocklistCommand),
    /// Is this token's user suspended here? Offline, for HTCondor-CE (--htcondor) and ARC
    /// (--arc %D) plugins and for people (--token, --iss/--sub/--jti). Exit codes per mode:
    /// see --help.
    #[command(long_about = check::ABOUT)]
    Check(check::CheckArgs),
    /// Print a shell completion script (e.g. `tokenledger completions bash > /etc/bash_completion.d/tokenledger`).
    Completions(docs::CompletionsArgs),
    /// Print the manual page, or write one per command into a directory.
    Man(docs::ManArgs),
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// The log's verifier key (`name+keyid+base64key`, from GET /v1/log/key), pinned out of
    /// band [env: TOKENLEDGER_LOG_KEY, or the profile's `log_key`].
    #[arg(long, value_name = "KEY")]
    log_key: Option<String>,
    /// File holding the last checkpoint this verifier trusted; created if missing, updated on success.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Also check that entry N is included (needs a credential that may read entries).
    #[arg(long, value_name = "N")]
    entry: Option<u64>,
    /// Also check an ingest receipt: one answer object of POST /v1/issuances (or one line of
    /// `ingest --receipts`), `-` for stdin. Its signature must verify with --log-key and its
    /// entry be included in the checkpoint (public proofs: no credential needed).
    #[arg(long, value_name = "FILE")]
    receipt: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    ExitCode::from(run(Cli::parse()))
}

fn run(cli: Cli) -> u8 {
    let settings = match &cli.command {
        // The decision path: no configuration file, credential or network.
        Command::Check(args) => return check::run(args),
        Command::Completions(args) => {
            docs::completions(args, Cli::command());
            return exit::OK;
        }
        Command::Man(args) => return report(docs::man(args, Cli::command()), None),
        _ => match config::resolve(&cli.connection, &Environment::current()) {
            Ok(settings) => settings,
            Err(e) => return report(Err(e), None),
        },
    };
    let done = match cli.command {
        Command::Verify(args) => return verify_command(&args, &settings),
        Command::Ingest(args) => return ingest::run(args, &settings),
        Command::Resolve(args) => resolution::resolve(&args, &settings),
        Command::Search(args) => resolution::search(&args, &settings),
        Command::Timeline(args) => resolution::timeline(&args, &settings),
        Command::Audit(args) => resolution::audit(&args, &settings),
        Command::Site(command) => site::run(&command, &settings),
        Command::Vo(command) => vo::run(&command, &settings),
        Command::Person(command) => person::run(&command, &settings),
        Command::Suspension(command) => suspension::run(&command, &settings),
        Command::Blocklist(command) => match blocklist::run(&command, &settings) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        Command::Check(_) | Command::Completions(_) | Command::Man(_) => {
            unreachable!("answered above")
        }
    };
    report(done, Some(&settings))
}

/// Prints a failure (and, for a refusal, where the credential came from); returns the exit code.
fn report(result: Result<(), Failure>, settings: Option<&Settings>) -> u8 {
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("tokenledger: {e}");
            if let (Failure::Refused(_), Some(settings)) = (&e, settings) {
                eprintln!("tokenledger: {}", settings.credential_hint());
            }
            e.code()
        }
    }
}

fn verify_command(args: &VerifyArgs, settings: &Settings) -> u8 {
    let result = settings
        .log_key(args.log_key.as_deref())
        .ok_or_else(|| {
            verify::VerifyError::Usage(
                "no log key: pass --log-key, set TOKENLEDGER_LOG_KEY, or set `log_key` in the \
                 profile"
                    .into(),
            )
        })
        .and_then(|log_key| {
            let client = settings
                .client()
                .map_err(|e| verify::VerifyError::Usage(e.to_string()))?;
            let receipt = args
                .receipt
                .as_deref()
                .map(verify::read_receipt)
                .transpose()?;
            verify::run(&verify::VerifyRequest {
                client: &client,
                log_key,
                state: args.state.as_deref(),
                entry: args.entry,
                receipt: receipt.as_ref(),
            })
        });
    match result {
        Ok(done) => {
            if args.json {
                let mut value = serde_json::to_value(&done).expect("serializable");
                value["verified"] = true.into();
                println!("{value}");
            } else {
                println!(
                    "verified: {} at size {} (root {})",
                    done.origin,
                    done.size,
                    done.root.to_base64()
                );
                if let Some(old) = done.consistent_with {
                    println!("consistent with the trusted checkpoint of size {old}");
                }
                match (done.entry, &done.entry_redacted) {
                    (Some(index), Some(redacted)) => println!(
                        "entry {index} is included; it is redacted (its bytes were removed at \
                         {} by entry {}): its stored leaf hash {} is the one the checkpoint \
                         commits to",
                        render::time_micros(redacted.redacted.at),
                        redacted.redacted.by,
                        redacted.leaf_hash.to_base64()
                    ),
                    (Some(index), None) => println!("entry {index} is included"),
                    (None, _) => {}
                }
                if let Some(receipt) = &done.receipt {
                    println!(
                        "receipt of entry {} is signed by the log, and the entry is included",
                        receipt.index
                    );
                }
            }
            exit::OK
        }
        Err(e) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"verified": false, "error": e.to_string()})
                );
            }
            eprintln!("tokenledger: {e}");
            if matches!(e, verify::VerifyError::Refused(_)) {
                eprintln!("tokenledger: {}", settings.credential_hint());
            }
            e.code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tokenledger").chain(args.iter().copied()))
    }

    #[test]
    fn connection_flags_work_before_and_after_the_command() {
        let cli = parse(&["--server", "http://a", "verify", "--token", "t"]).unwrap();
        assert_eq!(cli.connection.server.as_deref(), Some("http://a"));
        assert_eq!(cli.connection.token.as_deref(), Some("t"));
        let cli = parse(&["audit", "--vo", "atlas", "--profile", "cms"]).unwrap();
        assert_eq!(cli.connection.profile.as_deref(), Some("cms"));
        let e = parse(&[
            "audit",
            "--vo",
            "atlas",
            "--token",
            "t",
            "--token-file",
            "f",
        ])
        .unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn arguments_are_validated_before_anything_is_sent() {
        use clap::error::ErrorKind;
        let kind = |args: &[&str]| parse(args).map(|_| ()).unwrap_err().kind();
        assert_eq!(
            kind(&["resolve", "j", "--vo", "atlas"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            kind(&[
                "search",
                "--vo",
                "a",
                "--reason",
                "r",
                "--from",
                "yesterday"
            ]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            kind(&["search", "--vo", "a", "--reason", "r", "--limit", "0"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            kind(&["search", "--vo", "a", "--reason", "r", "--limit", "1001"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            kind(&["audit", "--vo", "a", "--json", "--csv"]),
            ErrorKind::ArgumentConflict
        );
        let cli = parse(&[
            "search",
            "--vo",
            "a",
            "--reason",
            "r",
            "--scope",
            "s",
            "--from",
            "2026-01-01T00:00:00Z",
            "--to",
            "1767229200",
        ])
        .unwrap();
        let Command::Search(args) = cli.command else {
            panic!("search")
        };
        assert_eq!(
            (args.from, args.to),
            (Some(1_767_225_600), Some(1_767_229_200))
        );
        assert_eq!(parse(&["completions", "zsh"]).map(|_| ()).ok(), Some(()));
        assert_eq!(kind(&["completions", "tcsh"]), ErrorKind::InvalidValue);
    }

    #[test]
    fn suspension_targets_and_terms_are_validated() {
        use clap::error::ErrorKind;
        let kind = |args: &[&str]| parse(args).map(|_| ()).unwrap_err().kind();
        let site = [
            "site",
            "suspend",
            "--site",
            "CERN-PROD",
            "--reason",
            "INC-1",
        ];
        let with = |extra: &[&'static str]| -> Vec<&'static str> { [&site[..], extra].concat() };
        assert_eq!(
            kind(&site),
            ErrorKind::MissingRequiredArgument,
            "a target is required"
        );
        assert_eq!(
            kind(&with(&["--pseudonym", "p1-x", "--jti", "j"])),
            ErrorKind::ArgumentConflict
        );
        for needs_jti in [
            &["--pseudonym", "p1-x", "--token-only"][..],
            &["--pseudonym", "p1-x", "--iss", "i"],
        ] {
            assert_eq!(
                kind(&with(needs_jti)),
                ErrorKind::ArgumentConflict,
                "{needs_jti:?}"
            );
        }
        assert_eq!(
            kind(&with(&["--jti", "j", "--scope", "network"])),
            ErrorKind::InvalidValue
        );
        assert_eq!(
            kind(&with(&["--jti", "j", "--reason-code", "Bad Code"])),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            kind(&with(&["--jti", "j", "--expires", "soon"])),
            ErrorKind::ValueValidation
        );

        let cli = parse(&with(&[
            "--jti",
            "j",
            "--token-only",
            "--scope",
            "storage",
            "--reason-code",
            "leaked",
            "--expires",
            "12h",
        ]))
        .unwrap();
        let Command::Site(site::SiteCommand::Suspend(args)) = cli.command else {
            panic!("site suspend")
        };
        assert!(args.token_only && args.jti.as_deref() == Some("j"));
        assert_eq!(args.terms.scope.as_deref(), Some("storage"));
        let expires = args.terms.expires.unwrap() - timespec::now_secs();
        assert!((43_199..=43_200).contains(&expires), "{expires}");

        let vo = ["vo", "suspend", "--vo", "atlas", "--reason", "r"];
        assert_eq!(kind(&vo), ErrorKind::MissingRequiredArgument);
        for wrong in [
            &["--person", "pe-1", "--jti", "j"][..],
            &["--person", "pe-1", "--token-only"],
        ] {
            assert_eq!(
                kind(&[&vo[..], wrong].concat()),
                ErrorKind::ArgumentConflict
            );
        }
        let cli = parse(
            &[
                &vo[..],
                &["--person", "pe-1", "--expires", "2026-02-01T00:00:00Z"],
            ]
            .concat(),
        )
        .unwrap();
        let Command::Vo(vo::VoCommand::Suspend(args)) = cli.command else {
            panic!("vo suspend")
        };
        assert_eq!(args.terms.expires, Some(1_769_904_000));
        assert_eq!(
            kind(&[
                "site",
                "sighting",
                "--site",
                "S",
                "--jti",
                "j",
                "--seen-at",
                "now"
            ]),
            ErrorKind::ValueValidation
        );
        assert!(
            parse(&[
                "vo", "merge", "pe-1", "--other", "pe-2", "--vo", "a", "--reason", "r"
            ])
            .is_ok()
        );
        assert!(parse(&["blocklist", "show", "--site", "S", "--csv"]).is_ok());
    }

    #[test]
    fn check_modes_are_exclusive_and_its_own_flags_shadow_the_connection_ones() {
        use clap::error::ErrorKind;
        let kind = |args: &[&str]| parse(args).map(|_| ()).unwrap_err().kind();
        assert_eq!(kind(&["check"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            kind(&["check", "--htcondor", "--arc", "x"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&["check", "--htcondor", "--json"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&["check", "--iss", "i"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            kind(&["check", "--token", "-", "--sub", "s"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&["check", "--jti", "j"]),
            ErrorKind::MissingRequiredArgument
        );
        let cli = parse(&[
            "check",
            "--config",
            "/etc/x.toml",
            "--token",
            "jwt.txt",
            "--json",
        ])
        .unwrap();
        let Command::Check(args) = cli.command else {
            panic!("check")
        };
        assert_eq!(args.config.as_deref(), Some(Path::new("/etc/x.toml")));
        assert_eq!(args.token.as_deref(), Some("jwt.txt"));
        let cli = parse(&["check", "--arc", "https://i/realms/a//s", "--config", "c"]).unwrap();
        let Command::Check(args) = cli.command else {
            panic!("check")
        };
        assert_eq!(args.arc.as_deref(), Some("https://i/realms/a//s"));
        let help = Cli::command()
            .find_subcommand_mut("check")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(help.contains("WITHOUT verifying"), "{help}");
        assert!(
            help.contains("2 = suspended (authentication fails"),
            "{help}"
        );
        assert!(help.contains("A JWT (or its decoded payload JSON) from FILE"));
        assert!(
            !help.contains("API secret"),
            "the connection's --token is shadowed"
        );
        let pull = parse(&[
            "blocklist",
            "pull",
            "--site",
            "S",
            "--out",
            "/var/lib/x",
            "--format",
            "dcache",
            "--op-alias",
            "https://i/=ATLAS",
            "--op-alias",
            "https://j/=CMS",
        ])
        .unwrap();
        let Command::Blocklist(blocklist::BlocklistCommand::Pull(args)) = pull.command else {
            panic!("pull")
        };
        assert_eq!(args.op_alias.len(), 2);
        assert_eq!(
            kind(&[
                "blocklist",
                "pull",
                "--site",
                "S",
                "--out",
                "f",
                "--format",
                "xml"
            ]),
            ErrorKind::InvalidValue
        );
    }

    #[test]
    fn help_documents_the_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        for line in [
            "0  success",
            "1  the answer is negative",
            "2  usage, network or server error",
            "4  authentication or authorization refused",
            "bt_u<uid>",
        ] {
            assert!(help.contains(line), "{line}");
        }
    }
}
