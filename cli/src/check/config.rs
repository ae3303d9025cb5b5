//! `check.toml`: the ledgers a node enforces, read by every `tokenledger check` process.
//!
//! ```toml
//! on_stale = "deny"      # or "allow"; the default is "deny" (fail closed)
//! scope = "compute"      # what this node grants: compute (CEs, the default), storage, all
//! issuers = ["https://atlas-auth.cern.ch/", "https://idp.example/realms/atlas/"]  # for ARC's %D
//!
//! [[ledger]]
//! site = "CERN-PROD"
//! blocklist = "/var/lib/tokenledger/CERN-PROD.json"        # written by `blocklist pull`
//! log_key = "ledger.example.org/log+1a2b3c4d+AQ..."
//! site_key_file = "/etc/tokenledger/CERN-PROD.key"         # `tokenledger site key`, mode 0600
//! # cache = "/var/lib/tokenledger/CERN-PROD.json.cache"   # the default: beside the blocklist
//! # on_stale = "allow"                                     # this ledger's own policy
//! ```
//!
//! The file is found at `--config FILE`, else `$TOKENLEDGER_CHECK_CONFIG`, else
//! `/etc/tokenledger/check.toml`; relative paths in it are relative to its directory. The site
//! key is a secret: its file must not be accessible to group or others. Neither file may be
//! writable by group or others (whoever can change them decides who is let in).

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use tokenledger_core::blocklist::Scope;
use tokenledger_core::note::NoteVerifier;
use tokenledger_core::pseudonym::SiteKey;

use crate::atomic;

/// Where the configuration is when neither `--config` nor the environment names one.
pub const DEFAULT_PATH: &str = "/etc/tokenledger/check.toml";
/// The environment variable naming the configuration.
pub const PATH_ENV: &str = "TOKENLEDGER_CHECK_CONFIG";
const MAX_FILE_BYTES: u64 = 1 << 20;

/// What to decide when a ledger's blocklist cannot be trusted: missing, unreadable, badly
/// signed, for another site, older than the cached one, or expired.
#[derive(Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnStale {
    /// Let the user in (and say so in the log).
    Allow,
    /// Refuse everyone until a valid blocklist is back: fail closed.
    #[default]
    Deny,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    on_stale: Option<OnStale>,
    scope: Option<Scope>,
    #[serde(default)]
    issuers: Vec<String>,
    #[serde(default)]
    ledger: Vec<RawLedger>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLedger {
    site: String,
    blocklist: PathBuf,
    log_key: String,
    site_key_file: PathBuf,
    cache: Option<PathBuf>,
    on_stale: Option<OnStale>,
}

/// The configuration as a decision uses it.
#[derive(Debug)]
pub struct CheckConfig {
    pub path: PathBuf,
    /// The file's policy (each ledger may override it).
    pub on_stale: OnStale,
    pub scope: Scope,
    pub issuers: Vec<String>,
    pub ledgers: Vec<Ledger>,
}

/// One ledger whose blocklist the node enforces.
#[derive(Debug)]
pub struct Ledger {
    pub site: String,
    pub blocklist: PathBuf,
    pub cache: PathBuf,
    /// As configured (recorded in the cache, so a new key invalidates it).
    pub log_key: String,
    pub verifier: NoteVerifier,
    pub site_key: SiteKey,
    pub on_stale: OnStale,
}

/// Which file: `--config`, else the environment, else [`DEFAULT_PATH`].
pub fn path(flag: Option<&Path>, env: Option<String>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| env.map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
}

/// Reads and checks the configuration, and every ledger's log key and site key. Any error
/// here is a configuration error: the caller decides with the default policy.
pub fn load(path: &Path) -> Result<CheckConfig, String> {
    let (text, mode) = read_small(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    if mode & 0o022 != 0 {
        return Err(format!(
            "{} is writable by group or others (mode {:04o}): whoever can change it decides who \
             is let in; run `chmod go-w {}`",
            path.display(),
            mode & 0o7777,
            path.display()
        ));
    }
    parse(path, &text)
}

fn parse(path: &Path, text: &str) -> Result<CheckConfig, String> {
    let raw: RawConfig =
        toml::from_str(text).map_err(|e| format!("{} is not valid: {e}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let relative = |p: &Path| {
        if p.is_relative() {
            dir.join(p)
        } else {
            p.to_path_buf()
        }
    };
    if raw.ledger.is_empty() {
        return Err(format!("{} has no [[ledger]]", path.display()));
    }
    if raw
        .issuers
        .iter()
        .any(|i| i.trim().is_empty() || i.trim() != i)
    {
        return Err(format!(
            "{}: `issuers` holds an empty or space-padded issuer",
            path.display()
        ));
    }
    let on_stale = raw.on_stale.unwrap_or_default();
    let mut ledgers = Vec::with_capacity(raw.ledger.len());
    for (n, ledger) in raw.ledger.into_iter().enumerate() {
        let at = format!(
            "{} [[ledger]] {} (site `{}`)",
            path.display(),
            n + 1,
            ledger.site
        );
        if ledger.site.is_empty() {
            return Err(format!("{at}: `site` is empty"));
        }
        let verifier = NoteVerifier::parse(ledger.log_key.trim())
            .map_err(|e| format!("{at}: `log_key`: {e}"))?;
        let blocklist = relative(&ledger.blocklist);
        let cache = ledger
            .cache
            .as_deref()
            .map_or_else(|| atomic::sibling(&blocklist, ".cache"), &relative);
        let site_key =
            read_site_key(&relative(&ledger.site_key_file)).map_err(|e| format!("{at}: {e}"))?;
        ledgers.push(Ledger {
            site: ledger.site,
            blocklist,
            cache,
            log_key: ledger.log_key.trim().to_string(),
            verifier,
            site_key,
            on_stale: ledger.on_stale.unwrap_or(on_stale),
        });
    }
    for (i, a) in ledgers.iter().enumerate() {
        if ledgers[..i]
            .iter()
            .any(|b| b.blocklist == a.blocklist || b.cache == a.cache)
        {
            return Err(format!(
                "{}: two ledgers share the blocklist or cache file {}",
                path.display(),
                a.blocklist.display()
            ));
        }
    }
    Ok(CheckConfig {
        path: path.to_path_buf(),
        on_stale,
        scope: raw.scope.unwrap_or(Scope::Compute),
        issuers: raw.issuers,
        ledgers,
    })
}

/// The base64 site key (as `tokenledger site key` prints it) from a file only its owner may
/// access.
fn read_site_key(path: &Path) -> Result<SiteKey, String> {
    let (text, mode) =
        read_small(path).map_err(|e| format!("reading the site key {}: {e}", path.display()))?;
    if mode & 0o077 != 0 {
        return Err(format!(
            "the site key {} is a secret but group or others may access it (mode {:04o}); run \
             `chmod 600 {}`",
            path.display(),
            mode & 0o7777,
            path.display()
        ));
    }
    let bytes: [u8; 32] = STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            format!(
                "the site key {} does not hold 32 base64 bytes (the output of `tokenledger site \
                 key`)",
                path.display()
            )
        })?;
    Ok(SiteKey::from_bytes(bytes))
}

/// A small file's text and mode (of the file opened, not of whatever the path names later).
fn read_small(path: &Path) -> std::io::Result<(String, u32)> {
    let file = std::fs::File::open(path)?;
    let mode = file.metadata()?.permissions().mode();
    let mut text = String::new();
    file.take(MAX_FILE_BYTES).read_to_string(&mut text)?;
    Ok((text, mode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenledger_core::note::NoteSigner;

    const KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn log_key() -> String {
        NoteSigner::from_seed("ledger.example/log", [1; 32])
            .unwrap()
            .verifier()
            .to_string()
    }

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn config(extra: &str, ledger_extra: &str) -> String {
        format!(
            "{extra}\n[[ledger]]\nsite = \"CERN-PROD\"\nblocklist = \"bl.json\"\nlog_key = \"{}\"\n\
             site_key_file = \"site.key\"\n{ledger_extra}\n",
            log_key()
        )
    }

    #[test]
    fn a_minimal_file_gets_the_documented_defaults() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "site.key", &format!("{KEY_B64}\n"), 0o600);
        let path = write(dir.path(), "check.toml", &config("", ""), 0o644);
        let c = load(&path).unwrap();
        assert_eq!(c.on_stale, OnStale::Deny, "fail closed by default");
        assert_eq!(c.scope, Scope::Compute);
        assert!(c.issuers.is_empty());
        let l = &c.ledgers[0];
        assert_eq!(
            l.blocklist,
            dir.path().join("bl.json"),
            "relative to the file"
        );
        assert_eq!(l.cache, dir.path().join("bl.json.cache"));
        assert_eq!(l.on_stale, OnStale::Deny);
        assert_eq!(l.site_key.as_bytes()[31], 31);
        assert_eq!(l.verifier.name(), "ledger.example/log");
    }

    #[test]
    fn policies_scopes_issuers_and_caches_are_read() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "site.key", KEY_B64, 0o400);
        let text = config(
            "on_stale = \"allow\"\nscope = \"storage\"\nissuers = [\"https://a/\", \"https://b/realms/x/\"]",
            "cache = \"/var/cache/x\"\non_stale = \"deny\"",
        );
        let c = parse(&dir.path().join("check.toml"), &text).unwrap();
        assert_eq!((c.on_stale, c.scope), (OnStale::Allow, Scope::Storage));
        assert_eq!(c.issuers, ["https://a/", "https://b/realms/x/"]);
        assert_eq!(c.ledgers[0].cache, PathBuf::from("/var/cache/x"));
        assert_eq!(
            c.ledgers[0].on_stale,
            OnStale::Deny,
            "a ledger's own policy wins"
        );
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "site.key", KEY_B64, 0o600);
        let at = dir.path().join("check.toml");
        for (text, says) in [
            (
                config("on_stale = \"maybe\"", ""),
                "unknown variant `maybe`",
            ),
            (
                "scope = \"network\"".to_string(),
                "unknown variant `network`",
            ),
            ("".to_string(), "has no [[ledger]]"),
            (config("issuers = [\" https://a/\"]", ""), "space-padded"),
            (config("", "colour = 1"), "unknown field `colour`"),
            (config("", "").replace(&log_key(), "not-a-key"), "`log_key`"),
            (config("", "").replace("CERN-PROD", ""), "`site` is empty"),
            (
                format!(
                    "{}{}",
                    config("", ""),
                    config("", "").replace("site = \"CERN-PROD\"", "site = \"B\"")
                ),
                "share the blocklist",
            ),
            (
                config("", "").replace("site.key", "missing.key"),
                "reading the site key",
            ),
        ] {
            let e = parse(&at, &text).unwrap_err();
            assert!(e.contains(says), "{says}: {e}");
        }
        write(dir.path(), "bad.key", "c2hvcnQ=", 0o600);
        let e = parse(&at, &config("", "").replace("site.key", "bad.key")).unwrap_err();
        assert!(e.contains("does not hold 32 base64 bytes"), "{e}");
    }

    #[test]
    fn secrets_and_the_file_itself_are_protected() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "check.toml", &config("", ""), 0o644);
        for mode in [0o640, 0o604, 0o644] {
            write(dir.path(), "site.key", KEY_B64, mode);
            let e = load(&path).unwrap_err();
            assert!(
                e.contains("is a secret but group or others may access it"),
                "{mode:o}: {e}"
            );
            assert!(!e.contains(KEY_B64), "never prints the key");
        }
        write(dir.path(), "site.key", KEY_B64, 0o600);
        assert!(load(&path).is_ok());
        for mode in [0o664, 0o646] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert!(
                load(&path)
                    .unwrap_err()
                    .contains("writable by group or others"),
                "{mode:o}"
            );
        }
        assert!(
            load(&dir.path().join("none.toml"))
                .unwrap_err()
                .starts_with("reading ")
        );
    }

    #[test]
    fn the_path_comes_from_the_flag_then_the_environment() {
        assert_eq!(
            path(Some(Path::new("/x.toml")), Some("/env.toml".into())),
            PathBuf::from("/x.toml")
        );
        assert_eq!(
            path(None, Some("/env.toml".into())),
            PathBuf::from("/env.toml")
        );
        assert_eq!(path(None, None), PathBuf::from(DEFAULT_PATH));
    }
}
