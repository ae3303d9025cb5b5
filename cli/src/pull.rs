//! `tokenledger blocklist pull`: install a site's signed blocklist (or an export of it) for
//! local daemons, the way a timer runs it every 30 seconds on each node.
//!
//! The signed blocklist (`--format json`) is fetched with `If-None-Match` (the ETag is kept
//! in `FILE.etag`) and written as served. An export writes its `content` to `FILE` and the
//! signed envelope to `FILE.signed.json`, so the next pull can refuse a rollback. Before
//! anything is replaced the document must be signed by the pinned log key, be for this site
//! (and format), not be older than the one on disk, and not be expired; otherwise the old file
//! stays and the exit status is 1. Files are replaced atomically ([`crate::atomic`]):
//! the signed blocklist with mode 0644 (it names no one: CE plugins read it), exports with
//! 0640 (they name identities). `--follow` keeps a long poll open instead and installs each
//! new blocklist at once: [`crate::pull_follow`].

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde::de::DeserializeOwned;
use tokenledger_core::blocklist::{BlocklistError, Signed, SignedBlocklist, SignedDocument};
use tokenledger_core::export::ExportFormat;
use tokenledger_core::note::NoteVerifier;
use tokenledger_core::wire::ExportDocument;

use crate::atomic;
use crate::client::{ApiPath, Client, Tagged};
use crate::config::Settings;
use crate::exit::Failure;
use crate::regular_file;
use crate::timespec;
use crate::verify;
use rustix::fs::{FlockOperation, flock};

/// Mode of the signed blocklist: pseudonyms and keyed tags only, for any local daemon.
const BLOCKLIST_MODE: u32 = 0o644;
/// Mode of an export and its envelope: they name identities.
const EXPORT_MODE: u32 = 0o640;
/// Largest file on disk read back for the rollback check (a 100 k-entry blocklist is ~25 MB).
const MAX_HELD_BYTES: u64 = 256 << 20;

pub const ABOUT: &str = "\
Fetch the site's signed blocklist (or an export of it), verify it with the pinned log key and
install it atomically at --out, for `tokenledger check` or a local daemon. Meant to run as a
service with --follow, the timer (packaging/systemd/tokenledger-blocklist-pull@.timer: every
30 s) as a fallback.

--follow (json only): keep running. Each request waits on the server (long poll, up to 60 s)
until a newer blocklist exists, which is verified and installed at once (one line on stdout
per update). A refused document keeps the old file (one line on stderr); network and server
errors reconnect with backoff (1 s doubling to 60 s, jittered). Ends with exit 0 on SIGTERM or
SIGINT (never in the middle of an install), exit 4 if the server refuses the credential.

--format json (default): the signed blocklist, as served; a site-reader credential suffices.
The ETag is kept in FILE.etag and sent as If-None-Match. Mode 0644: it names no one.

--format htcondor|arc|argus|dcache|xrootd|text: an export naming identities (site-admin
only). The CE formats (htcondor, arc, argus) carry compute and all-scope suspensions, the
storage formats (dcache, xrootd, text) storage and all-scope ones. FILE gets the export's
content (mode 0640) with a fresh mtime; the signed envelope is kept in FILE.signed.json (0640)
so that the next pull can refuse a rollback. dCache needs --op-alias ISSUER=ALIAS for each
issuer (the site's gplazma.oidc.provider!ALIAS names); XRootD needs --issuer ISS, the issuer
whose scitokens.cfg section uses FILE as its name_mapfile (--xrootd-name, default tlbanned,
is the local name suspended users map to: the authdb must strip it, `u tlbanned / -a`).
Argus lines ban with --private and un-ban the subjects of lifted or expired suspensions.

Refused, and the old file kept (exit 1): a bad signature or another signing key, a document
for another site or format, an older sequence than the one on disk (rollback), an expired one.

Exit status: 0 updated, 3 not modified, 1 refused, 2 usage or network error, 4 the server
refused the credential (401/403).";

/// What `--format` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PullFormat {
    /// The signed blocklist, for `tokenledger check` (site-reader).
    Json,
    /// HTCondor-CE mapfile lines, `00-tokenledger-ban.conf` (site-admin).
    Htcondor,
    /// ARC `[authgroup] file=` list (site-admin).
    Arc,
    /// dCache gPlazma banfile, needs --op-alias (site-admin).
    Dcache,
    /// Argus `pap-admin ban` commands for linked X.509 identities (site-admin).
    Argus,
    /// `<iss> TAB <sub>` lines, for storage (site-admin).
    Text,
    /// XRootD SciTokens `name_mapfile` of one issuer, needs --issuer (site-admin).
    Xrootd,
}

impl PullFormat {
    fn export(self) -> Option<ExportFormat> {
        Some(match self {
            PullFormat::Json => return None,
            PullFormat::Htcondor => ExportFormat::Htcondor,
            PullFormat::Arc => ExportFormat::Arc,
            PullFormat::Dcache => ExportFormat::Dcache,
            PullFormat::Argus => ExportFormat::Argus,
            PullFormat::Text => ExportFormat::Text,
            PullFormat::Xrootd => ExportFormat::Xrootd,
        })
    }
}

#[derive(Args, Clone, Debug)]
pub struct PullArgs {
    /// The site (credential: site-reader or site-admin of it; exports: site-admin).
    #[arg(long, value_name = "S")]
    pub site: String,
    /// The log's verifier key (`name+keyid+base64key`), pinned out of band
    /// [env: TOKENLEDGER_LOG_KEY, or the profile's `log_key`].
    #[arg(long, value_name = "KEY")]
    pub log_key: Option<String>,
    /// Where to install the file (its directory must be writable: the new file is renamed in).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The signed blocklist (json) or an export.
    #[arg(long, value_enum, default_value = "json")]
    pub format: PullFormat,
    /// For --format dcache: the site's provider alias of an issuer, `ISSUER=ALIAS`
    /// (`gplazma.oidc.provider!ALIAS = ISSUER`); repeat for each issuer.
    #[arg(long = "op-alias", value_name = "ISS=ALIAS", value_parser = parse_op_alias)]
    pub op_alias: Vec<(String, String)>,
    /// For --format xrootd: the issuer whose `[Issuer ...]` section in scitokens.cfg names
    /// FILE as its `name_mapfile` (one pull per issuer).
    #[arg(long, value_name = "ISS")]
    pub issuer: Option<String>,
    /// For --format xrootd: the local name suspended users map to; the authdb must hold
    /// `u NAME / -a` [default: tlbanned].
    #[arg(long, value_name = "NAME")]
    pub xrootd_name: Option<String>,
    /// Keep running: wait on the server for each new blocklist and install it at once
    /// (--format json only).
    #[arg(long)]
    pub follow: bool,
}

/// How a pull ended, when nothing was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Pulled {
    /// A new file was installed (exit 0); the message says what.
    Updated(String),
    /// The file on disk is current (exit 3).
    NotModified(String),
}

/// `ISSUER=ALIAS`, split at the last `=`; the alias as dCache allows it, no commas (the
/// server takes the list comma-joined).
pub fn parse_op_alias(text: &str) -> Result<(String, String), String> {
    let (iss, alias) = text
        .rsplit_once('=')
        .filter(|(i, a)| !i.is_empty() && !a.is_empty())
        .ok_or_else(|| format!("`{text}` is not ISSUER=ALIAS"))?;
    if iss.contains(',') {
        return Err(format!("the issuer `{iss}` holds a comma"));
    }
    if !alias
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(format!(
            "the alias `{alias}` may hold only letters, digits, `-`, `_` and `.`"
        ));
    }
    Ok((iss.to_string(), alias.to_string()))
}

/// Runs `blocklist pull` once (`--follow`: [`crate::pull_follow::run`]).
pub fn run(args: &PullArgs, settings: &Settings) -> Result<Pulled, Failure> {
    let (verifier, client, path) = prepare(args, settings)?;
    let now = timespec::now_secs();
    match args.format.export() {
        None => pull_blocklist(
            args,
            &verifier,
            |etag| fetch(&client, &path, etag, None),
            now,
        ),
        Some(format) => {
            let aliases: Vec<String> = args
                .op_alias
                .iter()
                .map(|(iss, alias)| format!("{iss}={alias}"))
                .collect();
            let path = path
                .query("format", format.as_str())
                .query_opt("op_alias", (!aliases.is_empty()).then(|| aliases.join(",")))
                .query_opt("issuer", args.issuer.clone())
                .query_opt("xrootd_name", args.xrootd_name.clone());
            pull_export(
                args,
                format,
                &verifier,
                || fetch(&client, &path, None, None),
                now,
            )
        }
    }
}

/// Checks the arguments; the pinned log key, a client with the credential, and the path of
/// the site's blocklist.
pub fn prepare(
    args: &PullArgs,
    settings: &Settings,
) -> Result<(NoteVerifier, Client, ApiPath), Failure> {
    let log_key = settings.log_key(args.log_key.as_deref()).ok_or_else(|| {
        Failure::Error(
            "no log key: pass --log-key, set TOKENLEDGER_LOG_KEY, or set `log_key` in the profile"
                .into(),
        )
    })?;
    let verifier = verify::parse_log_key(log_key).map_err(|e| Failure::Error(e.to_string()))?;
    if !args.op_alias.is_empty() && args.format != PullFormat::Dcache {
        return Err(Failure::Error(
            "--op-alias applies to --format dcache only".into(),
        ));
    }
    let xrootd = args.format == PullFormat::Xrootd;
    if !xrootd && (args.issuer.is_some() || args.xrootd_name.is_some()) {
        return Err(Failure::Error(
            "--issuer and --xrootd-name apply to --format xrootd only".into(),
        ));
    }
    if xrootd && args.issuer.is_none() {
        return Err(Failure::Error(
            "--format xrootd needs --issuer: a name_mapfile serves one [Issuer] section".into(),
        ));
    }
    if args.follow && args.format != PullFormat::Json {
        return Err(Failure::Error(
            "--follow applies to --format json only: exports carry no ETag to wait on; \
             pull them from the timer"
                .into(),
        ));
    }
    if args.out.is_dir() {
        return Err(Failure::Error(format!(
            "--out {} is a directory; name the file to write",
            args.out.display()
        )));
    }
    let client = settings.authenticated_client()?;
    let path = ApiPath::new(&["sites", &args.site, "blocklist"])?;
    Ok((verifier, client, path))
}

/// One GET, bounded by `timeout` if given (else the client's bound): `None` for 304.
/// Transport and server errors exit 2, 401/403 exit 4.
pub fn fetch(
    client: &Client,
    path: &ApiPath,
    etag: Option<&str>,
    timeout: Option<std::time::Duration>,
) -> Result<Option<Tagged>, Failure> {
    client.get_if_none_match(path, etag, timeout).map_err(|e| {
        if e.is_refused() {
            Failure::Refused(e.to_string())
        } else {
            Failure::Error(e.to_string())
        }
    })
}

/// A refusal: the document is not installed, the old file stays (exit 1).
fn refused(out: &Path, why: impl std::fmt::Display) -> Failure {
    Failure::Negative(format!(
        "refused the document: {why}; {} is left as it was",
        out.display()
    ))
}

/// The signed blocklist: conditional GET, checks, then FILE and FILE.etag.
pub fn pull_blocklist(
    args: &PullArgs,
    verifier: &NoteVerifier,
    fetch: impl FnOnce(Option<&str>) -> Result<Option<Tagged>, Failure>,
    now: i64,
) -> Result<Pulled, Failure> {
    let out = &args.out;
    let etag_path = atomic::sibling(out, ".etag");
    // What is held for another site says nothing about this one's sequence.
    let held: Option<SignedBlocklist> =
        read_held(out, verifier).filter(|h: &SignedBlocklist| h.document.site == args.site);
    // Ask "changed?" only while the file on disk is valid (an expired or missing one is
    // fetched whole), and only with the ETag stored for the very sequence on disk: an older
    // document planted beside a newer ETag would otherwise be "not modified" for good.
    let etag = held
        .as_ref()
        .filter(|h| now <= h.document.expires_at)
        .and_then(|h| read_etag(&etag_path, h.document.sequence));
    let Some(answer) = fetch(etag.as_deref())? else {
        let sequence = held.map_or(0, |h| h.document.sequence);
        return Ok(Pulled::NotModified(format!(
            "{} is current (sequence {sequence})",
            out.display()
        )));
    };
    let signed: SignedBlocklist = parse(out, &answer.body)?;
    let document = signed.verify(verifier).map_err(|e| refused(out, e))?;
    // What is held is read again under the install lock: another pull of this file (the
    // follower, a timer's, a person's) may have installed a newer document meanwhile.
    let first_read = held.as_ref().map(|h| h.document.sequence);
    let _installing = lock_install(out)?;
    let held: Option<SignedBlocklist> =
        read_held(out, verifier).filter(|h: &SignedBlocklist| h.document.site == args.site);
    let have = held.as_ref().map(|h| h.document.sequence);
    if let Some(newer) = have.filter(|&h| Some(h) > first_read && h > document.sequence) {
        return Ok(Pulled::NotModified(format!(
            "{} is current: sequence {newer} was installed meanwhile",
            out.display()
        )));
    }
    document
        .check_fresh(&args.site, have, now)
        .map_err(|e| refused(out, e))?;
    if let Some(held) = &held
        && held.document.sequence == document.sequence
    {
        if held.document != *document {
            return Err(refused(
                out,
                format!(
                    "sequence {} differs from the document already held under the same sequence",
                    document.sequence
                ),
            ));
        }
        write_etag(&etag_path, answer.etag.as_deref(), document.sequence)?;
        return Ok(Pulled::NotModified(format!(
            "{} is current (sequence {})",
            out.display(),
            document.sequence
        )));
    }
    atomic::write(out, answer.body.as_bytes(), BLOCKLIST_MODE).map_err(|e| write_error(out, e))?;
    write_etag(&etag_path, answer.etag.as_deref(), document.sequence)?;
    Ok(Pulled::Updated(format!(
        "updated {}: site {}, sequence {} (was {}), {} suspensions, valid until {}",
        out.display(),
        document.site,
        document.sequence,
        have.map_or_else(|| "none".to_string(), |s| s.to_string()),
        document.entries.len(),
        crate::render::time_secs(document.expires_at)
    )))
}

/// An export: plain GET, checks, then FILE (the content) and FILE.signed.json (the envelope).
fn pull_export(
    args: &PullArgs,
    format: ExportFormat,
    verifier: &NoteVerifier,
    fetch: impl FnOnce() -> Result<Option<Tagged>, Failure>,
    now: i64,
) -> Result<Pulled, Failure> {
    let out = &args.out;
    let envelope_path = atomic::sibling(out, ".signed.json");
    let Some(answer) = fetch()? else {
        return Err(Failure::Error(
            "the server answered 304 to a request without If-None-Match".into(),
        ));
    };
    let signed: Signed<ExportDocument> = parse(out, &answer.body)?;
    let document = signed.verify(verifier).map_err(|e| refused(out, e))?;
    let _installing = lock_install(out)?;
    let held: Option<Signed<ExportDocument>> =
        read_held(&envelope_path, verifier).filter(|h: &Signed<ExportDocument>| {
            h.document.site == args.site && h.document.format == format.as_str()
        });
    let have = held.as_ref().map(|h| h.document.sequence);
    check_export(document, &args.site, format, have, now).map_err(|e| refused(out, e))?;
    let installed = regular_file::read_regular(out, MAX_HELD_BYTES)
        .ok()
        .map(|(bytes, _)| bytes);
    if held.as_ref().is_some_and(|h| h.document == *document)
        && installed.as_deref() == Some(document.content.as_bytes())
    {
        return Ok(Pulled::NotModified(format!(
            "{} is current (sequence {})",
            out.display(),
            document.sequence
        )));
    }
    // The content first: a crash before the envelope is written only makes the next pull
    // write both again.
    atomic::write(out, document.content.as_bytes(), EXPORT_MODE)
        .map_err(|e| write_error(out, e))?;
    atomic::write(&envelope_path, answer.body.as_bytes(), EXPORT_MODE)
        .map_err(|e| write_error(&envelope_path, e))?;
    let lines = document
        .content
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    Ok(Pulled::Updated(format!(
        "updated {}: {} export of site {}, sequence {} (was {}), {lines} lines, valid until {}",
        out.display(),
        document.format,
        document.site,
        document.sequence,
        have.map_or_else(|| "none".to_string(), |s| s.to_string()),
        crate::render::time_secs(document.expires_at)
    )))
}

/// An export's checks beyond the signature: the site, the format asked for, no rollback,
/// not expired (the blocklist's rules, [`tokenledger_core::blocklist::Blocklist::check_fresh`]).
fn check_export(
    document: &ExportDocument,
    site: &str,
    format: ExportFormat,
    have: Option<u64>,
    now: i64,
) -> Result<(), String> {
    if document.site != site {
        return Err(BlocklistError::WrongSite {
            expected: site.to_string(),
            found: document.site.clone(),
        }
        .to_string());
    }
    if document.format != format.as_str() {
        return Err(format!(
            "the export is in format `{}`, not `{}`",
            document.format,
            format.as_str()
        ));
    }
    if let Some(have) = have
        && document.sequence < have
    {
        return Err(BlocklistError::Rollback {
            have,
            got: document.sequence,
        }
        .to_string());
    }
    if now > document.expires_at {
        return Err(BlocklistError::Expired {
            expires_at: document.expires_at,
            now,
        }
        .to_string());
    }
    Ok(())
}

/// The signed document already on disk, if it is readable and its signature verifies with
/// the pinned key. Anything else is not trusted for the rollback check (and is replaced).
fn read_held<T: SignedDocument + DeserializeOwned>(
    path: &Path,
    verifier: &NoteVerifier,
) -> Option<Signed<T>> {
    let (bytes, _) = match regular_file::read_regular(path, MAX_HELD_BYTES) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            eprintln!(
                "tokenledger: warning: {} cannot be read ({e}); it will be replaced",
                path.display()
            );
            return None;
        }
    };
    let held: Signed<T> = match serde_json::from_slice(&bytes) {
        Ok(held) => held,
        Err(e) => {
            eprintln!(
                "tokenledger: warning: {} is not a signed document ({e}); it will be replaced",
                path.display()
            );
            return None;
        }
    };
    if let Err(e) = held.verify(verifier) {
        eprintln!(
            "tokenledger: warning: {} does not verify ({e}); it will be replaced",
            path.display()
        );
        return None;
    }
    Some(held)
}

fn parse<T: DeserializeOwned>(out: &Path, body: &str) -> Result<T, Failure> {
    serde_json::from_str(body)
        .map_err(|e| refused(out, format!("the answer is not a signed document: {e}")))
}

/// Holds `FILE.lock` (exclusively, waiting for another pull's install to end) while a pull
/// reads what is installed for the last time and installs: two pulls of one file never
/// install an older document over a newer one.
fn lock_install(out: &Path) -> Result<std::fs::File, Failure> {
    let path = atomic::sibling(out, ".lock");
    let lock = regular_file::open_lock(&path).map_err(|e| write_error(&path, e))?;
    flock(&lock, FlockOperation::LockExclusive).map_err(|e| write_error(&path, e.into()))?;
    Ok(lock)
}

/// `FILE.etag`: the ETag, then the sequence of the document it was served with.
fn write_etag(path: &Path, etag: Option<&str>, sequence: u64) -> Result<(), Failure> {
    match etag {
        Some(etag) => atomic::write(
            path,
            format!("{etag}\n{sequence}\n").as_bytes(),
            BLOCKLIST_MODE,
        )
        .map_err(|e| write_error(path, e)),
        None => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(write_error(path, e)),
            _ => Ok(()),
        },
    }
}

/// The ETag kept for `sequence`, if `FILE.etag` holds one for it.
fn read_etag(path: &Path, sequence: u64) -> Option<String> {
    let (bytes, _) = regular_file::read_regular(path, 4096).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut lines = text.lines();
    let etag = lines.next()?.trim();
    let stored_for = lines.next()?.trim().parse::<u64>().ok()?;
    (stored_for == sequence && !etag.is_empty()).then(|| etag.to_string())
}

fn write_error(path: &Path, e: std::io::Error) -> Failure {
    Failure::Error(format!("writing {}: {e}", path.display()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use tokenledger_core::blocklist::{Blocklist, BlocklistEntry, Scope};
    use tokenledger_core::note::NoteSigner;

    pub(crate) const NOW: i64 = 1_767_225_600;

    pub(crate) fn signer(seed: u8) -> NoteSigner {
        NoteSigner::from_seed("ledger.example/log", [seed; 32]).unwrap()
    }

    pub(crate) fn blocklist(site: &str, sequence: u64, expires_at: i64, entries: usize) -> String {
        let entry = BlocklistEntry {
            vo: "atlas".into(),
            pseudonym: Some("p1-abc".into()),
            tags: vec!["t".into()],
            jti_hashes: vec![],
            client_tags: vec![],
            issued_before: None,
            scope: Scope::Compute,
            not_after: None,
            suspension_id: "su-1".into(),
            reason_code: "misuse".into(),
        };
        let doc = Blocklist {
            site: site.into(),
            sequence,
            issued_at: NOW - 10,
            expires_at,
            entries: vec![entry; entries],
        };
        serde_json::to_string(&doc.sign(&signer(1))).unwrap()
    }

    fn export(site: &str, format: &str, sequence: u64, content: &str) -> String {
        let doc = ExportDocument {
            site: site.into(),
            sequence,
            expires_at: NOW + 100,
            format: format.into(),
            content: content.into(),
        };
        serde_json::to_string(&doc.sign(&signer(1))).unwrap()
    }

    pub(crate) fn args(dir: &Path, format: PullFormat) -> PullArgs {
        PullArgs {
            site: "CERN-PROD".into(),
            log_key: None,
            out: dir.join("blocklist.json"),
            format,
            op_alias: vec![],
            issuer: None,
            xrootd_name: None,
            follow: false,
        }
    }

    pub(crate) fn answer(body: &str, etag: Option<&str>) -> Result<Option<Tagged>, Failure> {
        Ok(Some(Tagged {
            body: body.to_string(),
            etag: etag.map(str::to_string),
        }))
    }

    #[test]
    fn a_blocklist_is_installed_then_not_modified_and_rollbacks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = args(dir.path(), PullFormat::Json);
        let v = signer(1).verifier();
        let seq5 = blocklist("CERN-PROD", 5, NOW + 100, 1);
        let pulled = pull_blocklist(
            &a,
            &v,
            |etag| {
                assert_eq!(etag, None, "nothing held yet");
                answer(&seq5, Some("\"CERN-PROD-5\""))
            },
            NOW,
        )
        .unwrap();
        assert!(
            matches!(&pulled, Pulled::Updated(m) if m.contains("sequence 5 (was none)")),
            "{pulled:?}"
        );
        assert_eq!(std::fs::read_to_string(&a.out).unwrap(), seq5);
        assert_eq!(std::fs::metadata(&a.out).unwrap().mode() & 0o777, 0o644);
        let etag_file = dir.path().join("blocklist.json.etag");
        assert_eq!(
            std::fs::read_to_string(&etag_file).unwrap(),
            "\"CERN-PROD-5\"\n5\n"
        );

        // The ETag goes back; 304 is "not modified".
        let pulled = pull_blocklist(
            &a,
            &v,
            |etag| {
                assert_eq!(etag, Some("\"CERN-PROD-5\""));
                Ok(None)
            },
            NOW,
        )
        .unwrap();
        assert_eq!(
            pulled,
            Pulled::NotModified(format!("{} is current (sequence 5)", a.out.display()))
        );
        // The same document again (the ETag file was lost) is not modified either.
        std::fs::remove_file(&etag_file).unwrap();
        let same = pull_blocklist(&a, &v, |_| answer(&seq5, Some("\"CERN-PROD-5\"")), NOW).unwrap();
        assert!(matches!(same, Pulled::NotModified(_)));
        assert!(etag_file.exists(), "and the ETag is kept again");

        // An older, validly signed document planted over the file, beside the newer ETag:
        // the ETag is not sent for it, so the current document comes back whole and replaces
        // it (a 304 would keep the planted file for good).
        let seq4 = blocklist("CERN-PROD", 4, NOW + 100, 1);
        std::fs::write(&a.out, &seq4).unwrap();
        let restored = pull_blocklist(
            &a,
            &v,
            |etag| {
                assert_eq!(etag, None, "the ETag belongs to sequence 5, not 4");
                answer(&seq5, Some("\"CERN-PROD-5\""))
            },
            NOW,
        )
        .unwrap();
        assert!(
            matches!(&restored, Pulled::Updated(m) if m.contains("sequence 5 (was 4)")),
            "{restored:?}"
        );

        // Older, other site, expired, other key, tampered, the same sequence with other
        // content, not JSON: refused with exit 1, the file untouched.
        let mut tampered: serde_json::Value =
            serde_json::from_str(&blocklist("CERN-PROD", 6, NOW + 100, 2)).unwrap();
        tampered["document"]["entries"]
            .as_array_mut()
            .unwrap()
            .pop();
        let other_key = {
            let doc: SignedBlocklist =
                serde_json::from_str(&blocklist("CERN-PROD", 7, NOW + 100, 1)).unwrap();
            serde_json::to_string(&doc.document.sign(&signer(2))).unwrap()
        };
        for (body, says) in [
            (
                blocklist("CERN-PROD", 4, NOW + 100, 1),
                "older than the 5 already held (rollback)",
            ),
            (blocklist("RAL-LCG2", 6, NOW + 100, 1), "not `CERN-PROD`"),
            (blocklist("CERN-PROD", 6, NOW - 1, 1), "expired"),
            (other_key, "not by the pinned log key"),
            (tampered.to_string(), "signature does not verify"),
            (
                blocklist("CERN-PROD", 5, NOW + 100, 2),
                "differs from the document already held",
            ),
            ("<html>".to_string(), "not a signed document"),
        ] {
            let e = pull_blocklist(&a, &v, |_| answer(&body, None), NOW).unwrap_err();
            assert_eq!(e.code(), 1, "{e}");
            assert!(e.to_string().contains(says), "{says}: {e}");
            assert!(e.to_string().contains("is left as it was"), "{e}");
            assert_eq!(std::fs::read_to_string(&a.out).unwrap(), seq5);
        }

        // A newer one replaces it; an answer without an ETag drops the stale ETag file.
        let seq6 = blocklist("CERN-PROD", 6, NOW + 100, 0);
        let pulled = pull_blocklist(&a, &v, |_| answer(&seq6, None), NOW).unwrap();
        assert!(
            matches!(&pulled, Pulled::Updated(m) if m.contains("sequence 6 (was 5), 0 suspensions")),
            "{pulled:?}"
        );
        assert!(!etag_file.exists());
    }

    #[test]
    fn an_expired_or_unverifiable_file_on_disk_is_fetched_whole_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let a = args(dir.path(), PullFormat::Json);
        let v = signer(1).verifier();
        std::fs::write(&a.out, blocklist("CERN-PROD", 9, NOW - 5, 1)).unwrap();
        std::fs::write(
            dir.path().join("blocklist.json.etag"),
            "\"CERN-PROD-9\"\n9\n",
        )
        .unwrap();
        let fresh = blocklist("CERN-PROD", 10, NOW + 100, 1);
        let pulled = pull_blocklist(
            &a,
            &v,
            |etag| {
                assert_eq!(etag, None, "no If-None-Match for an expired file");
                answer(&fresh, None)
            },
            NOW,
        )
        .unwrap();
        assert!(matches!(pulled, Pulled::Updated(_)));
        // A file that does not verify gives no rollback protection: it is replaced.
        std::fs::write(&a.out, "garbage").unwrap();
        let older = blocklist("CERN-PROD", 3, NOW + 100, 1);
        assert!(matches!(
            pull_blocklist(&a, &v, |_| answer(&older, None), NOW).unwrap(),
            Pulled::Updated(_)
        ));
    }

    #[test]
    fn exports_install_the_content_and_keep_the_envelope() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = args(dir.path(), PullFormat::Dcache);
        a.out = dir.path().join("ban.conf");
        let v = signer(1).verifier();
        let envelope = dir.path().join("ban.conf.signed.json");
        let first = export("CERN-PROD", "dcache", 4, "# x\nban oidc:alice@ATLAS\n");
        let pulled =
            pull_export(&a, ExportFormat::Dcache, &v, || answer(&first, None), NOW).unwrap();
        assert!(
            matches!(&pulled, Pulled::Updated(m) if m.contains("dcache export of site CERN-PROD, sequence 4 (was none), 1 lines")),
            "{pulled:?}"
        );
        assert_eq!(
            std::fs::read_to_string(&a.out).unwrap(),
            "# x\nban oidc:alice@ATLAS\n"
        );
        assert_eq!(std::fs::read_to_string(&envelope).unwrap(), first);
        for path in [&a.out, &envelope] {
            assert_eq!(
                std::fs::metadata(path).unwrap().mode() & 0o777,
                0o640,
                "{}",
                path.display()
            );
        }
        let mtime = std::fs::metadata(&a.out).unwrap().mtime_nsec();
        let again =
            pull_export(&a, ExportFormat::Dcache, &v, || answer(&first, None), NOW).unwrap();
        assert!(matches!(again, Pulled::NotModified(_)));
        assert_eq!(
            std::fs::metadata(&a.out).unwrap().mtime_nsec(),
            mtime,
            "untouched"
        );

        // Same sequence, other content (new aliases): installed. An edited file is restored.
        let aliased = export("CERN-PROD", "dcache", 4, "ban oidc:alice@ATLAS2\n");
        assert!(matches!(
            pull_export(&a, ExportFormat::Dcache, &v, || answer(&aliased, None), NOW).unwrap(),
            Pulled::Updated(_)
        ));
        std::fs::write(&a.out, "edited").unwrap();
        assert!(matches!(
            pull_export(&a, ExportFormat::Dcache, &v, || answer(&aliased, None), NOW).unwrap(),
            Pulled::Updated(_)
        ));
        assert_eq!(
            std::fs::read_to_string(&a.out).unwrap(),
            "ban oidc:alice@ATLAS2\n"
        );

        for (body, says) in [
            (export("CERN-PROD", "dcache", 3, "old"), "rollback"),
            (
                export("CERN-PROD", "argus", 5, "x"),
                "format `argus`, not `dcache`",
            ),
            (export("RAL-LCG2", "dcache", 5, "x"), "not `CERN-PROD`"),
            (
                blocklist("CERN-PROD", 5, NOW + 100, 1),
                "not a signed document",
            ),
        ] {
            let e =
                pull_export(&a, ExportFormat::Dcache, &v, || answer(&body, None), NOW).unwrap_err();
            assert_eq!(e.code(), 1, "{e}");
            assert!(e.to_string().contains(says), "{says}: {e}");
            assert_eq!(
                std::fs::read_to_string(&a.out).unwrap(),
                "ban oidc:alice@ATLAS2\n"
            );
        }
    }

    #[test]
    fn a_fifo_at_the_installed_path_is_replaced_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let a = args(dir.path(), PullFormat::Json);
        let v = signer(1).verifier();
        regular_file::mkfifo(&a.out);
        let seq5 = blocklist("CERN-PROD", 5, NOW + 100, 1);
        let started = std::time::Instant::now();
        let pulled = pull_blocklist(&a, &v, |_| answer(&seq5, None), NOW).unwrap();
        assert!(started.elapsed() < std::time::Duration::from_millis(500));
        assert!(matches!(pulled, Pulled::Updated(_)), "{pulled:?}");
        assert_eq!(std::fs::read_to_string(&a.out).unwrap(), seq5);
    }

    #[test]
    fn a_newer_document_installed_meanwhile_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let a = args(dir.path(), PullFormat::Json);
        let v = signer(1).verifier();
        let seq6 = blocklist("CERN-PROD", 6, NOW + 100, 1);
        let seq7 = blocklist("CERN-PROD", 7, NOW + 100, 1);
        // Another pull of the same file (the follower) installs 7 while this one fetches 6.
        let pulled = pull_blocklist(
            &a,
            &v,
            |_| {
                std::fs::write(&a.out, &seq7).unwrap();
                answer(&seq6, None)
            },
            NOW,
        )
        .unwrap();
        assert!(
            matches!(&pulled, Pulled::NotModified(m) if m.contains("sequence 7 was installed meanwhile")),
            "{pulled:?}"
        );
        assert_eq!(std::fs::read_to_string(&a.out).unwrap(), seq7);
    }

    #[test]
    fn op_aliases_are_checked() {
        assert_eq!(
            parse_op_alias("https://a.example/x=y=ATLAS").unwrap(),
            ("https://a.example/x=y".to_string(), "ATLAS".to_string())
        );
        for bad in [
            "ATLAS",
            "=A",
            "https://a/=",
            "https://a/=A B",
            "https://a/,b=A",
        ] {
            assert!(parse_op_alias(bad).is_err(), "{bad}");
        }
    }
}
