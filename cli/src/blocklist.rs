//! `tokenledger blocklist show`: fetch a site's signed blocklist, check its signature with
//! the pinned log key and its freshness (the right site, not expired), and show it: one row
//! per suspension, by pseudonym (the document holds no identity). `blocklist pull` installs
//! it (or an export) for local daemons: [`crate::pull`].

use std::io::IsTerminal;

use clap::{Args, Subcommand};
use tokenledger_core::blocklist::{BlocklistEntry, SignedBlocklist};
use tokenledger_core::note::NoteVerifier;

use crate::client::ApiPath;
use crate::config::Settings;
use crate::exit::{self, Failure};
use crate::pull::{self, Pulled};
use crate::pull_follow;
use crate::render::{self, ListFormat, Table, fields};
use crate::timespec;
use crate::verify;

#[derive(Subcommand, Debug)]
pub enum BlocklistCommand {
    /// Fetch, verify and show a site's signed blocklist (exit 1 if the signature or the
    /// freshness check fails).
    Show(ShowArgs),
    /// Fetch, verify and install the signed blocklist (or an export) at --out, atomically,
    /// refusing rollbacks. Exit 0 updated, 3 not modified, 1 refused (old file kept), 2 usage
    /// or network error, 4 credential refused. --follow keeps running (long poll).
    #[command(long_about = pull::ABOUT)]
    Pull(pull::PullArgs),
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The site (credential: site-admin or site-reader of it).
    #[arg(long, value_name = "S")]
    pub site: String,
    /// The log's verifier key (`name+keyid+base64key`), pinned out of band
    /// [env: TOKENLEDGER_LOG_KEY, or the profile's `log_key`].
    #[arg(long, value_name = "KEY")]
    pub log_key: Option<String>,
    #[command(flatten)]
    pub format: ListFormat,
}

/// Runs a `blocklist` subcommand; its exit code.
pub fn run(command: &BlocklistCommand, settings: &Settings) -> Result<u8, Failure> {
    match command {
        BlocklistCommand::Show(args) => show(args, settings).map(|()| exit::OK),
        BlocklistCommand::Pull(args) if args.follow => pull_follow::run(args, settings),
        BlocklistCommand::Pull(args) => match pull::run(args, settings)? {
            Pulled::Updated(message) => {
                println!("{message}");
                Ok(exit::OK)
            }
            Pulled::NotModified(message) => {
                // Quiet under a timer (every 30 s), informative at a terminal.
                if std::io::stdout().is_terminal() {
                    println!("not modified: {message}");
                }
                Ok(exit::NOT_MODIFIED)
            }
        },
    }
}

fn show(args: &ShowArgs, settings: &Settings) -> Result<(), Failure> {
    let log_key = settings.log_key(args.log_key.as_deref()).ok_or_else(|| {
        Failure::Error(
            "no log key: pass --log-key, set TOKENLEDGER_LOG_KEY, or set `log_key` in the profile"
                .into(),
        )
    })?;
    let verifier = verify::parse_log_key(log_key).map_err(|e| Failure::Error(e.to_string()))?;
    let client = settings.authenticated_client()?;
    let path = ApiPath::new(&["sites", &args.site, "blocklist"])?;
    let answer = client.get_blocklist::<SignedBlocklist>(&path)?;
    check(&answer.typed, &verifier, &args.site, timespec::now_secs())?;
    if args.format.json {
        render::print_json(&answer.raw);
        return Ok(());
    }
    let table = entries_table(&answer.typed.document.entries);
    if args.format.csv {
        print!("{}", table.csv());
        return Ok(());
    }
    print!("{}", header_text(&answer.typed));
    println!();
    if table.is_empty() {
        println!("(no suspensions)");
    } else {
        print!("{}", table.text());
    }
    Ok(())
}

/// The signature (with the pinned key), then the site and expiry.
fn check(
    signed: &SignedBlocklist,
    verifier: &NoteVerifier,
    site: &str,
    now: i64,
) -> Result<(), Failure> {
    signed
        .verify(verifier)
        .and_then(|document| document.check_fresh(site, None, now))
        .map_err(|e| Failure::Negative(format!("the blocklist of {site} is refused: {e}")))
}

fn header_text(signed: &SignedBlocklist) -> String {
    let d = &signed.document;
    fields(&[
        ("site", d.site.clone()),
        ("sequence", d.sequence.to_string()),
        ("issued", render::time_secs(d.issued_at)),
        ("expires", render::time_secs(d.expires_at)),
        ("signature", format!("valid, by {}", signed.signer)),
        ("entries", d.entries.len().to_string()),
    ])
}

/// What an entry blocks: a person (its identities' tags), tokens (jti hashes) or a client
/// (client tags).
fn target_kind(entry: &BlocklistEntry) -> &'static str {
    if !entry.client_tags.is_empty() {
        return "client";
    }
    match (entry.tags.is_empty(), entry.jti_hashes.is_empty()) {
        (false, true) => "person",
        (true, false) => "token",
        (false, false) => "person+token",
        (true, true) => "-",
    }
}

fn entries_table(entries: &[BlocklistEntry]) -> Table {
    let mut table = Table::new(&[
        "VO",
        "PSEUDONYM",
        "SCOPE",
        "TARGET",
        "NOT_AFTER",
        "ISSUED_BEFORE",
        "SUSPENSION_ID",
        "REASON_CODE",
    ]);
    for e in entries {
        table.row(vec![
            e.vo.clone(),
            e.pseudonym.clone().unwrap_or_else(|| "-".into()),
            e.scope.as_str().to_string(),
            target_kind(e).to_string(),
            e.not_after.map_or_else(|| "-".into(), render::time_secs),
            e.issued_before
                .map_or_else(|| "-".into(), render::time_secs),
            e.suspension_id.clone(),
            e.reason_code.clone(),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenledger_core::blocklist::{Blocklist, Scope, SignedDocument};
    use tokenledger_core::note::NoteSigner;

    fn signer(seed: u8) -> NoteSigner {
        NoteSigner::from_seed("ledger.example/log", [seed; 32]).unwrap()
    }

    fn entry(tags: usize, jtis: usize) -> BlocklistEntry {
        BlocklistEntry {
            vo: "atlas".into(),
            pseudonym: Some("p1-abc".into()),
            tags: vec!["t".into(); tags],
            jti_hashes: vec!["j".into(); jtis],
            client_tags: vec![],
            issued_before: None,
            scope: Scope::Storage,
            not_after: Some(1_767_229_200),
            suspension_id: "su-1".into(),
            reason_code: "compromised".into(),
        }
    }

    fn signed(seed: u8) -> SignedBlocklist {
        Blocklist {
            site: "CERN-PROD".into(),
            sequence: 3,
            issued_at: 1_767_225_600,
            expires_at: 1_767_312_000,
            entries: vec![
                entry(2, 0),
                entry(0, 1),
                BlocklistEntry {
                    pseudonym: None,
                    client_tags: vec!["c".into()],
                    issued_before: Some(1_767_225_600),
                    ..entry(0, 0)
                },
            ],
        }
        .sign(&signer(seed))
    }

    #[test]
    fn signature_site_and_expiry_are_checked() {
        let verifier = signer(1).verifier();
        let now = 1_767_230_000;
        assert!(check(&signed(1), &verifier, "CERN-PROD", now).is_ok());
        let e = check(&signed(2), &verifier, "CERN-PROD", now).unwrap_err();
        assert_eq!(e.code(), 1);
        let mut tampered = signed(1);
        tampered.document.entries.pop();
        let e = check(&tampered, &verifier, "CERN-PROD", now).unwrap_err();
        assert!(e.to_string().contains("signature does not verify"), "{e}");
        let e = check(&signed(1), &verifier, "RAL-LCG2", now).unwrap_err();
        assert!(e.to_string().contains("not `RAL-LCG2`"), "{e}");
        let e = check(&signed(1), &verifier, "CERN-PROD", 1_767_312_001).unwrap_err();
        assert!(e.to_string().contains("expired"), "{e}");
    }

    #[test]
    fn entries_show_their_target_kind() {
        assert_eq!(target_kind(&entry(1, 0)), "person");
        assert_eq!(target_kind(&entry(0, 1)), "token");
        assert_eq!(target_kind(&entry(1, 1)), "person+token");
        assert_eq!(target_kind(&entry(0, 0)), "-");
        let table = entries_table(&signed(1).document.entries);
        assert_eq!(
            table.text(),
            "VO     PSEUDONYM  SCOPE    TARGET  NOT_AFTER             ISSUED_BEFORE         SUSPENSION_ID  REASON_CODE\n\
             atlas  p1-abc     storage  person  2026-01-01T01:00:00Z  -                     su-1           compromised\n\
             atlas  p1-abc     storage  token   2026-01-01T01:00:00Z  -                     su-1           compromised\n\
             atlas  -          storage  client  2026-01-01T01:00:00Z  2026-01-01T00:00:00Z  su-1           compromised\n"
        );
        let header = header_text(&signed(1));
        assert!(
            header.starts_with("site       CERN-PROD\nsequence   3\n"),
            "{header}"
        );
        assert!(
            header.contains("signature  valid, by ledger.example/log+"),
            "{header}"
        );
    }
}
