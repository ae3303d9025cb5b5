//! `tokenledger person ...`: what a VO security officer does to one person as a whole. Erase
//! a person: every entry of theirs redacted now, but for what an active suspension or a
//! pending suspension request still needs.

use std::time::Duration;

use clap::{Args, Subcommand};
use tokenledger_core::wire::{ErasureRequest, ErasureView};

use crate::client::ApiPath;
use crate::config::Settings;
use crate::exit::Failure;
use crate::render::{self, ObjectFormat, Table};
use crate::vo::VoName;

pub const ABOUT: &str = "\
What a VO security officer (credential: vo-security of the VO) does to one person as a whole.";

pub const ERASE_ABOUT: &str = "\
Erase a person of a VO: POST /v1/vos/{vo}/persons/{person}/erasure. Every entry of the person
in the VO (issuances of their identities, sightings of those tokens, their suspensions and
lifts, suspension requests about them and the decisions, the links and merges naming them)
loses its payload now, as a retention run would redact it; their identities and pseudonyms
go too. Kept, and listed with why: what an active suspension or a pending suspension request
of the person needs, and the tokens of a client under an active suspension; while anything
of theirs is kept, so are their identities and pseudonyms. The erasure is logged (`erasure` entries, with the reason) and
visible to the VO's auditors (`tokenledger audit`). Every checkpoint and proof stays valid.

Exit status: 0 erased; 2 usage, network or server error (404 no such person, 409 merged
into another); 4 refused (401/403).";

/// How long `person erase` waits for the server's answer.
const ERASURE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

#[derive(Subcommand, Debug)]
pub enum PersonCommand {
    /// Erase a person: redact every entry of theirs now, except what an active suspension or
    /// a pending suspension request needs.
    #[command(long_about = ERASE_ABOUT)]
    Erase(EraseArgs),
}

#[derive(Args, Debug)]
pub struct EraseArgs {
    /// The person (`pe-...`).
    pub person: String,
    #[command(flatten)]
    pub vo: VoName,
    /// Why (the person's request, a ticket); logged.
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub format: ObjectFormat,
}

/// Runs a `person` subcommand.
pub fn run(command: &PersonCommand, settings: &Settings) -> Result<(), Failure> {
    let client = settings.authenticated_client()?;
    match command {
        PersonCommand::Erase(args) => {
            let body = ErasureRequest {
                reason: args.reason.clone(),
            };
            let path = ApiPath::new(&["vos", &args.vo.vo, "persons", &args.person, "erasure"])?;
            // The server reads the whole log to find the person's entries: minutes on a
            // large ledger.
            let answer =
                client.send_within::<ErasureView>("POST", &path, &body, Some(ERASURE_TIMEOUT))?;
            if args.format.json {
                render::print_json(&answer.raw);
            } else {
                print!("{}", erasure_text(&answer.typed));
            }
        }
    }
    Ok(())
}

/// The answer for people: what was redacted, by which entries, and what was kept and why.
fn erasure_text(view: &ErasureView) -> String {
    let mut out = format!(
        "Person {} in VO {}: {} entries redacted\n",
        view.person_id, view.vo, view.redacted
    );
    let mut logged = Table::new(&["ERASURE", "RANGES", "COUNTS"]);
    for erasure in &view.erasures {
        let ranges: Vec<String> = erasure
            .ranges
            .iter()
            .map(|[start, end]| format!("{start}..{end}"))
            .collect();
        let counts: Vec<String> = erasure
            .counts
            .iter()
            .map(|(entry_type, n)| format!("{entry_type}={n}"))
            .collect();
        logged.row(vec![
            erasure.index.to_string(),
            or_dash(ranges.join(" ")),
            or_dash(counts.join(" ")),
        ]);
    }
    out.push_str(&logged.text());
    if view.kept.is_empty() {
        out.push_str("Nothing kept.\n");
        return out;
    }
    if !view.holds.is_empty() {
        out.push_str(&format!("In force: {}\n", view.holds.join(", ")));
    }
    out.push_str("Kept, with the person's identities and pseudonyms:\n");
    let mut kept = Table::new(&["INDEX", "TYPE", "BECAUSE"]);
    for entry in &view.kept {
        kept.row(vec![
            entry.index.to_string(),
            entry.entry_type.clone(),
            entry.because.clone(),
        ]);
    }
    out.push_str(&kept.text());
    out
}

fn or_dash(text: String) -> String {
    if text.is_empty() { "-".into() } else { text }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tokenledger_core::wire::{ErasureEntryView, KeptEntryView};

    use super::*;

    #[test]
    fn the_text_says_what_was_redacted_and_what_was_kept_and_why() {
        let view = ErasureView {
            vo: "atlas".into(),
            person_id: "pe-1".into(),
            erasures: vec![ErasureEntryView {
                index: 9,
                ranges: vec![[0, 2], [5, 6]],
                counts: BTreeMap::from([("issuance".into(), 2), ("sighting".into(), 1)]),
            }],
            redacted: 3,
            kept: vec![KeptEntryView {
                index: 7,
                entry_type: "suspension".into(),
                because: "active suspension su-1".into(),
            }],
            holds: vec!["active suspension su-1".into()],
        };
        let text = erasure_text(&view);
        assert!(
            text.starts_with("Person pe-1 in VO atlas: 3 entries redacted\n"),
            "{text}"
        );
        assert!(text.contains("0..2 5..6"), "{text}");
        assert!(text.contains("issuance=2 sighting=1"), "{text}");
        assert!(
            text.contains("In force: active suspension su-1\nKept, with"),
            "{text}"
        );
        assert!(text.contains("suspension"), "{text}");
        let nothing = ErasureView {
            erasures: vec![ErasureEntryView {
                index: 10,
                ranges: vec![],
                counts: BTreeMap::new(),
            }],
            redacted: 0,
            kept: vec![],
            holds: vec![],
            ..view
        };
        let text = erasure_text(&nothing);
        assert!(text.contains("Nothing kept."), "{text}");
        assert!(text.contains("10"), "{text}");
    }
}
