//! `tokenledger ingest`: read issuance feeds (JWT lines, NDJSON reports, INDIGO IAM audit logs,
//! Keycloak events) and ship them to `POST /v1/issuances` in NDJSON batches, or a site's logs
//! (HTCondor job ads, dCache access logs) and post their sightings to
//! `POST /v1/sites/{site}/sightings`; account for every input: accepted, duplicate, rejected
//! or skipped.

mod follow;
mod formats;
mod lines;
mod progress;
mod records;
mod session;
mod ship;
mod sightings;
mod summary;

#[cfg(test)]
mod fake_server;
#[cfg(test)]
mod fuzz;
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
use crate::pull::parse_op_alias;
use formats::{Format, Parser, json_array};
use lines::LineReader;
use progress::Progress;
use records::Records;
use session::Session;
use ship::{Destination, Origin, ShipError, Shipper};
use summary::Summary;

/// Most reports in one request (the server's limit for an NDJSON body).
const MAX_BATCH_LINES: usize = 10_000;
/// Issuance reports per request unless --batch says otherwise.
const DEFAULT_BATCH_LINES: usize = 1000;
const READ_BUFFER: usize = 256 * 1024;

pub const LONG_ABOUT: &str = "\
Ship reports to the ledger. Issuance formats (jwt-lines, ndjson, iam-audit, keycloak-events)
POST /v1/issuances with one report per line (application/x-ndjson), in batches. Sighting
formats (htcondor-history, dcache-access) POST each token seen in use at --site to
/v1/sites/{site}/sightings, one at a time. Every input is accepted (a new log entry), a duplicate
(an issuance already logged: the same index comes back), rejected (by this parser or by the
server), or skipped (nothing to report: an event that is not a token issuance, a job or request
without a token). The run ends with the summary `accepted=N duplicates=N rejected=N skipped=N`
(--json: as JSON).

Exit status: 0 nothing was rejected; 1 some inputs were rejected (the rest was still shipped;
--rejects FILE lists them); 2 usage, network or server error; 4 the server refused the
credential (401) or the caller (403). The credential (--token, --token-file,
TOKENLEDGER_TOKEN or the profile's) is the reporting issuer's (`tlk_...`) for issuance formats,
a site-admin or reporter credential of --site for sighting formats. A request answered 503 (a
standby server, or a busy one) is sent again for up to 30 s, and one that meets an unreachable
server a few times over 15 s; an issuance sent twice is harmless (the ledger is idempotent on
the token's jti).

Issuance formats:
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

Sighting formats (need --site; --batch and --receipts do not apply):
  htcondor-history Job ClassAds as `condor_history -json` or `condor_q -json` print them (a JSON
                   array, read from a whole file) or as `-jsonl` prints them (one ad per line,
                   the form to --follow). An ad with AuthTokenId, the jti of the token the job
                   was submitted with, is a sighting of that token: issuer AuthTokenIssuer, host
                   RemoteHost (LastRemoteHost once the job left its slot), job GlobalJobId, seen
                   at JobCurrentStartDate (start of the current or last run), else JobStartDate
                   (first start), else QDate (submission, for a job that never ran). Ads without
                   AuthTokenId (X.509 or unauthenticated submissions) are skipped.
  dcache-access    A dCache door's access log (the `access` logger's NetLogger key=value lines,
                   <domain>.access). A line with user.jti=JTI@OP is a sighting of that token:
                   issuer the ISSUER of --op-alias ISSUER=OP (the site's
                   gplazma.oidc.provider!OP = ISSUER lines, as for the dCache banfile; a line
                   whose OP has no --op-alias is rejected: the ledger never guesses an issuer),
                   seen at ts=, host the door host of request.url (HTTP doors; xrootd login lines
                   name none), job the door session (session=door:CELL@DOMAIN:ID, which finds
                   the request's other lines in the access log). Lines without user.jti are
                   skipped.
The server rejects a sighting of a jti no issuer of the site's VOs logged (not_found), of a jti
several issuers logged (conflict), of a jti whose issuance retention removed (redacted), or an
invalid one (bad_request); a --site the ledger does not know ends the run. The ledger logs every sighting it is sent, so feed each ad or line once:
--follow a log, or pass only new ads (condor_history -since).

Following a log (--follow, with --state): one FILE, one event per line. New complete lines are
shipped as they are written, a batch at --batch lines or 1 s after its first line (sightings:
each line as it is read). Rotation is followed: when the path names a new file (rename and
create), the old one is read to its end first, then the new one from its start; a file that
shrinks (copytruncate) is read again from its start. After every batch the server acknowledged,
the state file records {\"path\", \"inode\", \"offset\"} (replaced atomically); a restart resumes
at that offset when the path is still the same file, and from the start of the new file when it
was rotated in the meantime. SIGTERM or SIGINT stops after the current batch. While following,
--rejects and --receipts files are appended to (otherwise they are rewritten).";

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// Input files; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Input format.
    #[arg(long, value_enum)]
    format: Format,
    /// Issuance reports per request (1 to 10000) [default: 1000]; a batch also goes early at
    /// 4 MiB.
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=MAX_BATCH_LINES as u64))]
    batch: Option<u64>,
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
    /// The site where the tokens were seen (name as in GOCDB/CRIC); required for the sighting
    /// formats (htcondor-history, dcache-access), refused for the others.
    #[arg(long, value_name = "S")]
    site: Option<String>,
    /// For dcache-access: the issuer of a dCache OP alias, `ISSUER=ALIAS`
    /// (`gplazma.oidc.provider!ALIAS = ISSUER`); repeat for each OP.
    #[arg(long = "op-alias", value_name = "ISS=ALIAS", value_parser = parse_op_alias)]
    op_alias: Vec<(String, String)>,
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
        Ok((client, plan)) => {
            let shipper = Shipper::new(&client, plan.destination, progress.clone());
            let mut session = Session::new(
                plan.parser,
                shipper,
                plan.batch_lines,
                plan.records,
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

/// What a run reads with, where it ships to, and in batches of how many reports.
struct Plan {
    parser: Parser,
    destination: Destination,
    batch_lines: usize,
    records: Records,
}

/// Checks the arguments clap cannot, and opens the output files.
fn prepare(args: &IngestArgs, progress: &Progress) -> anyhow::Result<Plan> {
    let parser = Parser::new(args.format, args.issuer.clone(), &args.op_alias)
        .map_err(anyhow::Error::msg)?;
    let format = args.format.feed();
    let (destination, batch_lines) = match (&args.site, args.format.reports_sightings()) {
        (None, false) => {
            let batch = args.batch.map_or(DEFAULT_BATCH_LINES, |n| n as usize);
            (Destination::Issuances, batch)
        }
        (Some(_), false) => bail!(
            "--site applies to the sighting formats (htcondor-history, dcache-access) only: \
             --format {format} reports issuances"
        ),
        (None, true) => bail!(
            "--format {format} reports sightings: it needs --site SITE, the site whose \
             site-admin or reporter credential is used"
        ),
        (Some(_), true) if args.batch.is_some() => {
            bail!("--batch applies to issuance formats only: sightings are posted one at a time")
        }
        (Some(_), true) if args.receipts.is_some() => bail!(
            "--receipts applies to issuance formats only: the server signs no receipt for a \
             sighting"
        ),
        (Some(site), true) => (Destination::sightings(site)?, 1),
    };
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
    Ok(Plan {
        parser,
        destination,
        batch_lines,
        records,
    })
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
        // The first non-blank line of a Keycloak events or HTCondor ads file tells an array from
        // an object a line.
        let opens_array = match &line.text {
            Ok(text) if text.trim().is_empty() => None,
            Ok(text) => Some(text.trim_start().starts_with('[')),
            Err(_) => Some(false),
        };
        if first && let Some(opens_array) = opens_array {
            first = false;
            if let Some(items) = session.parser().format().array_items()
                && opens_array
            {
                let end = reader.offset();
                let rest = reader.into_inner();
                return Ok(end + array_file(session, name, items, line, rest)?);
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

/// A JSON array file of `items`: `first` is its first non-blank line, `rest` what follows it.
/// Returns the bytes read from `rest`.
fn array_file(
    session: &mut Session<'_>,
    name: &Arc<str>,
    items: &str,
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
            let error = formats::LineError::new(
                "not_utf8",
                format!("the file of {items} is not valid UTF-8"),
            );
            session.handle(origin(first.number), Err(error))?;
            return Ok(read as u64);
        }
    };
    let array = json_array(&text, first.number, items);
    for (line, element) in array.elements {
        let parsed = session.parser().parse_element(element);
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
