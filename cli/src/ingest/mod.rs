//! `tokenledger ingest`: read issuance feeds (JWT lines, NDJSON reports, INDIGO IAM audit logs,
//! Keycloak events), ship them to `POST /v1/issuances` in NDJSON batches, and account for
//! every input: accepted, duplicate, rejected or skipped.

mod follow;
mod formats;
mod lines;
mod progress;
mod records;
mod session;
mod ship;
mod summary;

#[cfg(test)]
mod fake_server;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, bail};
use clap::Args;

use crate::config::Settings;
use crate::exit::{self, Failure};
use formats::{Format, Parser, keycloak_array};
use lines::LineReader;
use progress::Progress;
use records::Records;
use session::Session;
use ship::{Origin, ShipError, Shipper};
use summary::Summary;

/// Most reports in one request (the server's limit for an NDJSON body).
const MAX_BATCH_LINES: usize = 10_000;
const READ_BUFFER: usize = 256 * 1024;

pub const LONG_ABOUT: &str = "\
Ship issuance reports to the ledger: POST /v1/issuances with one report per line
(application/x-ndjson), in batches. Every input is accepted (a new log entry), a duplicate
(already logged: the same index comes back), rejected (by this parser or by the server), or
skipped (an event that is not a token issuance). The run ends with the summary
`accepted=N duplicates=N rejected=N skipped=N` (--json: as JSON).

Exit status: 0 nothing was rejected; 1 some inputs were rejected (the rest was still shipped;
--rejects FILE lists them); 2 usage, network or server error; 4 the server refused the
credential (401) or the caller (403). The credential (--token, --token-file,
TOKENLEDGER_TOKEN or the profile's) is the reporting issuer's (`tlk_...`).
Batches that meet an unreachable server or a 503 are retried a few times first; a report sent
twice is harmless (the ledger is idempotent on the token's jti).

Formats:
  jwt-lines        One compact JWT per line. The ledger checks its signature against the
                   issuer's keys and derives the VO from its claims.
  ndjson           One IssuanceReport JSON object per line ({\"token\": ...} or {\"claims\": ...},
                   with optional grant_type, parent_jti, refresh_jti, feed), sent as it is
                   (feed \"ndjson\" unless it names one).
  iam-audit        INDIGO IAM AUDIT logger output. Text before the first `{` of a line (the
                   logger's timestamp, level and name) is ignored. Only `@type`
                   AccessTokenIssuedEvent is an issuance (IAM logs it on refresh and token
                   exchange too); other event types are skipped. The token's claims are the
                   event's `payload` (the event's `subject` is a user or client name, never
                   the token's sub); grantType and refreshTokenJti are reported with them.
                   Time claims written as milliseconds or ISO-8601 dates are turned into seconds.
  keycloak-events  Keycloak events as GET /admin/realms/{realm}/events returns them (needs the
                   view-events role): a JSON array (a whole file) or one event object per line.
                   Issuing types: LOGIN, CODE_TO_TOKEN, CLIENT_LOGIN, REFRESH_TOKEN,
                   TOKEN_EXCHANGE, OAUTH2_DEVICE_CODE_TO_TOKEN; their *_ERROR twins, events with
                   an `error`, other types and events without details.token_id are skipped.
                   Events carry no `iss`: --issuer gives the realm's issuer URL. Keycloak stores
                   REFRESH_TOKEN events only if that type is enabled in the realm's event
                   settings; without it refreshed tokens never reach the ledger. The event's
                   userId is taken as the token's sub: true for plain Keycloak realms, unconfirmed
                   for EGI Check-in.

Claims reports (iam-audit, keycloak-events, and ndjson lines with \"claims\") carry no
signature: the ledger accepts them only from an issuer credential bound to that issuer, e.g.
  tokenledger-server credential create --role issuer --vo atlas --issuer https://iam.example/

Following a log (--follow, with --state): one FILE, one event per line. New complete lines are
shipped as they are written, a batch at --batch lines or 1 s after its first line. Rotation is
followed: when the path names a new file (rename and create), the old one is read to its end
first, then the new one from its start; a file that shrinks (copytruncate) is read again from
its start. After every batch the server acknowledged, the state file records
{\"path\", \"inode\", \"offset\"} (replaced atomically); a restart resumes at that offset when
the path is still the same file, and from the start of the new file when it was rotated in the
meantime. SIGTERM or SIGINT stops after the current batch. While following, --rejects and
--receipts files are appended to (otherwise they are rewritten).";

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// Input files; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Input format.
    #[arg(long, value_enum)]
    format: Format,
    /// Reports per request (1 to 10000); a batch also goes early at 4 MiB.
    #[arg(long, default_value_t = 1000, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=MAX_BATCH_LINES as u64))]
    batch: u64,
    /// Write every rejected input as a JSON line {"file", "line", "code", "message"}.
    #[arg(long, value_name = "FILE")]
    rejects: Option<PathBuf>,
    /// Write the server's signed receipt of every accepted or duplicate report as a JSON line
    /// (with "file" and "line"); `tokenledger verify --receipt` checks one.
    #[arg(long, value_name = "FILE")]
    receipts: Option<PathBuf>,
    /// The realm's issuer URL (the tokens' `iss`); required for keycloak-events.
    #[arg(long, value_name = "ISS", required_if_eq("format", "keycloak-events"))]
    issuer: Option<String>,
    /// Tail the one FILE and ship new lines as they are written (needs --state).
    #[arg(long, requires = "state")]
    follow: bool,
    /// With --follow: file keeping the position acknowledged by the server.
    #[arg(long, value_name = "FILE", requires = "follow")]
    state: Option<PathBuf>,
    /// No progress display, no per-reject messages on stderr.
    #[arg(long)]
    quiet: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `ingest`; returns the exit code.
pub fn run(args: IngestArgs, settings: &Settings) -> u8 {
    let total = if args.follow {
        None
    } else {
        total_size(&args.files)
    };
    let progress = Progress::new(total, args.quiet);
    let ready = settings
        .authenticated_client()
        .map_err(anyhow::Error::from)
        .and_then(|client| Ok((client, prepare(&args, &progress)?)));
    let (summary, error) = match ready {
        Ok((client, (parser, records))) => {
            let shipper = Shipper::new(&client, progress.clone());
            let mut session = Session::new(
                parser,
                shipper,
                args.batch as usize,
                records,
                progress.clone(),
            );
            let outcome = if args.follow {
                follow_one(&mut session, &args)
            } else {
                ingest_files(&mut session, &args.files)
            };
            (session.summary(), outcome.err())
        }
        Err(e) => (Summary::default(), Some(e)),
    };
    progress.finish();
    let code = summary.exit_code(error.as_ref().map(failure_code));
    let error = error.map(|e| format!("{e:#}"));
    if args.json {
        println!("{}", summary.json(error.as_deref()));
    } else {
        println!("{}", summary.line());
    }
    if let Some(error) = &error {
        eprintln!("tokenledger: {error}");
    }
    if code == exit::REFUSED {
        eprintln!("tokenledger: {}", settings.credential_hint());
    }
    code
}

/// The exit code of the error that ended a run: 4 if the server refused the credential or
/// the caller, else the failure's own code, else 2.
fn failure_code(error: &anyhow::Error) -> u8 {
    if let Some(ShipError::Client(e)) = error.downcast_ref::<ShipError>()
        && e.is_refused()
    {
        return exit::REFUSED;
    }
    error
        .downcast_ref::<Failure>()
        .map_or(exit::ERROR, Failure::code)
}

/// Checks the arguments clap cannot, and opens the output files.
fn prepare(args: &IngestArgs, progress: &Progress) -> anyhow::Result<(Parser, Records)> {
    let parser = Parser::new(args.format, args.issuer.clone()).map_err(anyhow::Error::msg)?;
    if args.follow {
        if args.files.len() != 1 || is_stdin(&args.files[0]) {
            bail!("--follow takes exactly one FILE, not standard input");
        }
    } else if args.files.iter().filter(|f| is_stdin(f)).count() > 1 {
        bail!("standard input (`-`) can be read only once");
    }
    let records = Records::open(
        args.rejects.as_deref(),
        args.receipts.as_deref(),
        args.follow,
        progress.clone(),
    )?;
    Ok((parser, records))
}

fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Total bytes of the inputs, if all are regular files.
fn total_size(files: &[PathBuf]) -> Option<u64> {
    files
        .iter()
        .map(|f| {
            (!is_stdin(f))
                .then(|| std::fs::metadata(f).ok())
                .flatten()
                .filter(|m| m.is_file())
                .map(|m| m.len())
        })
        .sum()
}

fn follow_one(session: &mut Session<'_>, args: &IngestArgs) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing the signal handlers")?;
    }
    let state = args.state.as_deref().expect("clap requires --state");
    follow::run(session, &args.files[0], state, &stop)
}

/// Opens every input first (a missing file ships nothing), then reads each to its end and
/// ships the last batch.
fn ingest_files(session: &mut Session<'_>, files: &[PathBuf]) -> anyhow::Result<()> {
    let mut inputs = Vec::with_capacity(files.len());
    for path in files {
        let name: Arc<str> = path.display().to_string().into();
        let input: Box<dyn BufRead> = if is_stdin(path) {
            Box::new(BufReader::with_capacity(READ_BUFFER, std::io::stdin()))
        } else {
            let file = File::open(path).with_context(|| format!("opening {name}"))?;
            Box::new(BufReader::with_capacity(READ_BUFFER, file))
        };
        inputs.push((name, input));
    }
    let mut done = 0;
    for (name, input) in inputs {
        done += ingest_input(session, &name, input, done)?;
    }
    session.flush()
}

/// Ingests one input; returns the bytes read. `done` is what earlier inputs read (progress).
fn ingest_input(
    session: &mut Session<'_>,
    name: &Arc<str>,
    input: Box<dyn BufRead>,
    done: u64,
) -> anyhow::Result<u64> {
    let mut reader = LineReader::new(input, 0, 0);
    let mut first = true;
    loop {
        let next = reader
            .next_line()
            .with_context(|| format!("reading {name}"))?;
        let Some(line) = next.or_else(|| reader.finish()) else {
            break;
        };
        // The first non-blank line of a Keycloak events file tells an array from an event a line.
        let opens_array = match &line.text {
            Ok(text) if text.trim().is_empty() => None,
            Ok(text) => Some(text.trim_start().starts_with('[')),
            Err(_) => Some(false),
        };
        if first && let Some(opens_array) = opens_array {
            first = false;
            if opens_array && session.parser().format() == Format::KeycloakEvents {
                let end = reader.offset();
                let rest = reader.into_inner();
                return Ok(end + keycloak_file(session, name, line, rest)?);
            }
        }
        session.handle_line(name, line)?;
        if session.is_full() {
            session.flush()?;
            session.progress().set_position(done + reader.offset());
        }
    }
    session.progress().set_position(done + reader.offset());
    Ok(reader.offset())
}

/// A Keycloak events array: `first` is its first non-blank line, `rest` what follows it.
/// Returns the bytes read from `rest`.
fn keycloak_file(
    session: &mut Session<'_>,
    name: &Arc<str>,
    first: lines::Line,
    mut rest: Box<dyn Read>,
) -> anyhow::Result<u64> {
    let mut bytes = first
        .text
        .expect("the first line was read as text")
        .into_bytes();
    bytes.push(b'\n');
    let read = rest
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {name}"))?;
    let origin = |line| Origin {
        file: name.clone(),
        line,
    };
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(_) => {
            let error = formats::LineError::new("not_utf8", "the events file is not valid UTF-8");
            session.handle(origin(first.number), Err(error))?;
            return Ok(read as u64);
        }
    };
    let array = keycloak_array(&text, first.number);
    for (line, event) in array.events {
        let parsed = session.parser().keycloak_event(event);
        session.handle(origin(line), parsed)?;
        if session.is_full() {
            session.flush()?;
        }
    }
    if let Some((line, error)) = array.error {
        session.handle(origin(line), Err(error))?;
    }
    Ok(read as u64)
}
