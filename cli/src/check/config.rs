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
//! # high_water = "/etc/tokenledger/CERN-PROD.key.seq"     # the default: beside the site key
//! # on_stale = "allow"                                     # this ledger's own policy
//!
//! [[canary]]              # the VO's canary, for `check --self-test` (not a person)
//! iss = "https://atlas-auth.cern.ch/"
//! sub = "atlas-canary"
//! ```
//!
//! The file is found at `--config FILE`, else `$TOKENLEDGER_CHECK_CONFIG`, else
//! `/etc/tokenledger/check.toml`; relative paths in it are relative to its directory. The site
//! key is a secret: its file must not be accessible to group or others. Neither file may be
//! writable by group or others (whoever can change them decides who is let in).
//!
//! Errors are decided by a policy, as a stale blocklist is: a file that cannot be read or
//! parsed (or that others may write) by the default, deny; an error in a file that could be
//! read by its `on_stale`; an unusable log key or site key only makes its ledger unusable,
//! decided by that ledger's `on_stale` while the other ledgers are asked as usual.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use tokenledger_core::blocklist::Scope;
use tokenledger_core::note::NoteVerifier;
use tokenledger_core::pseudonym::SiteKey;

use crate::atomic;
use crate::regular_file;

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
    #[serde(default)]
    canary: Vec<Canary>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLedger {
    site: String,
    blocklist: PathBuf,
    log_key: String,
    site_key_file: PathBuf,
    cache: Option<PathBuf>,
    high_water: Option<PathBuf>,
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
    /// The canary identities `check --self-test` must see denied.
    pub canaries: Vec<Canary>,
}

/// A VO's canary: an identity suspended at every site of the VO for good.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Canary {
    pub iss: String,
    pub sub: String,
}

/// One ledger whose blocklist the node enforces.
#[derive(Debug)]
pub struct Ledger {
    pub site: String,
    pub blocklist: PathBuf,
    pub cache: PathBuf,
    /// The highest blocklist sequence accepted, kept where the blocklist's writer cannot write.
    pub high_water: PathBuf,
    pub on_stale: OnStale,
    /// Its keys, or why they cannot be used (then `on_stale` decides, as for a stale
    /// blocklist).
    pub keys: Result<LedgerKeys, String>,
}

/// What a ledger's blocklist is verified and looked up with.
#[derive(Debug)]
pub struct LedgerKeys {
    /// As configured (recorded in the cache, so a new key invalidates it).
    pub log_key: String,
    pub verifier: NoteVerifier,
    pub site_key: SiteKey,
}

/// Why the configuration cannot be used, and the policy that decides meanwhile: the file's
/// `on_stale` if it could be read, else the default (deny).
#[derive(Debug)]
pub struct ConfigError {
    pub policy: OnStale,
    pub message: String,
}

impl ConfigError {
    /// An error whose file gave no policy to trust: the default, deny.
    fn fail_closed(message: String) -> ConfigError {
        ConfigError {
            policy: OnStale::default(),
            message,
        }
    }
}

/// Which file: `--config`, else the environment, else [`DEFAULT_PATH`].
pub fn path(flag: Option<&Path>, env: Option<String>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| env.map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
}

/// Reads and checks the configuration, and every ledger's log key and site key (a ledger
/// whose keys cannot be used carries the reason in [`Ledger::keys`]).
pub fn load(path: &Path) -> Result<CheckConfig, ConfigError> {
    let (text, mode) = read_small(path)
        .map_err(|e| ConfigError::fail_closed(format!("reading {}: {e}", path.display())))?;
    if mode & 0o022 != 0 {
        // Its policy is not trusted either: whoever wrote it may have chosen "allow".
        return Err(ConfigError::fail_closed(format!(
            "{} is writable by group or others (mode {:04o}): whoever can change it decides who \
             is let in; run `chmod go-w {}`",
            path.display(),
            mode & 0o7777,
            path.display()
        )));
    }
    parse(path, &text)
}

fn parse(path: &Path, text: &str) -> Result<CheckConfig, ConfigError> {
    let raw: RawConfig = toml::from_str(text)
        .map_err(|e| ConfigError::fail_closed(format!("{} is not valid: {e}", path.display())))?;
    let on_stale = raw.on_stale.unwrap_or_default();
    let invalid = |message: String| ConfigError {
        policy: on_stale,
        message,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let relative = |p: &Path| {
        if p.is_relative() {
            dir.join(p)
        } else {
            p.to_path_buf()
        }
    };
    if raw.ledger.is_empty() {
        return Err(invalid(format!("{} has no [[ledger]]", path.display())));
    }
    if raw
        .issuers
        .iter()
        .any(|i| i.trim().is_empty() || i.trim() != i)
    {
        return Err(invalid(format!(
            "{}: `issuers` holds an empty or space-padded issuer",
            path.display()
        )));
    }
    if raw
        .canary
        .iter()
        .any(|c| c.iss.trim().is_empty() || c.sub.trim().is_empty())
    {
        return Err(invalid(format!(
            "{}: a [[canary]] has an empty `iss` or `sub`",
            path.display()
        )));
    }
    let mut ledgers = Vec::with_capacity(raw.ledger.len());
    for (n, ledger) in raw.ledger.into_iter().enumerate() {
        let at = format!(
            "{} [[ledger]] {} (site `{}`)",
            path.display(),
            n + 1,
            ledger.site
        );
        if ledger.site.is_empty() {
            return Err(invalid(format!("{at}: `site` is empty")));
        }
        let blocklist = relative(&ledger.blocklist);
        let cache = ledger
            .cache
            .as_deref()
            .map_or_else(|| atomic::sibling(&blocklist, ".cache"), &relative);
        let site_key_file = relative(&ledger.site_key_file);
        let high_water = ledger
            .high_water
            .as_deref()
            .map_or_else(|| atomic::sibling(&site_key_file, ".seq"), &relative);
        let keys =
            read_keys(ledger.log_key.trim(), &site_key_file).map_err(|e| format!("{at}: {e}"));
        ledgers.push(Ledger {
            site: ledger.site,
            blocklist,
            cache,
            high_water,
            on_stale: ledger.on_stale.unwrap_or(on_stale),
            keys,
        });
    }
    let mut named: Vec<&Path> = Vec::new();
    for file in ledgers
        .iter()
        .flat_map(|l| [&l.blocklist, &l.cache, &l.high_water])
    {
        if named.contains(&file.as_path()) {
            return Err(invalid(format!(
                "{}: the file {} is named twice (each ledger needs its own blocklist, cache and \
                 high-water mark)",
                path.display(),
                file.display()
            )));
        }
        named.push(file);
    }
    Ok(CheckConfig {
        path: path.to_path_buf(),
        on_stale,
        scope: raw.scope.unwrap_or(Scope::Compute),
        issuers: raw.issuers,
        ledgers,
        canaries: raw.canary,
    })
}

/// A ledger's pinned log key and its site key.
fn read_keys(log_key: &str, site_key_file: &Path) -> Result<LedgerKeys, String> {
    let verifier = NoteVerifier::parse(log_key).map_err(|e| format!("`log_key`: {e}"))?;
    Ok(LedgerKeys {
        log_key: log_key.to_string(),
        verifier,
        site_key: read_site_key(site_key_file)?,
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

/// A small regular file's text and mode (of the file opened, not of whatever the path names
/// later).
fn read_small(path: &Path) -> std::io::Result<(String, u32)> {
    let (bytes, meta) = regular_file::read_regular(path, MAX_FILE_BYTES)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"))?;
    Ok((text, meta.permissions().mode()))
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
        assert_eq!(
            l.high_water,
            dir.path().join("site.key.seq"),
            "beside the site key"
        );
        assert_eq!(l.on_stale, OnStale::Deny);
        let keys = l.keys.as_ref().unwrap();
        assert_eq!(keys.site_key.as_bytes()[31], 31);
        assert_eq!(keys.verifier.name(), "ledger.example/log");
    }

    #[test]
    fn policies_scopes_issuers_and_caches_are_read() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "site.key", KEY_B64, 0o400);
        let text = config(
            "on_stale = \"allow\"\nscope = \"storage\"\nissuers = [\"https://a/\", \"https://b/realms/x/\"]",
            "cache = \"/var/cache/x\"\nhigh_water = \"seq/CERN-PROD\"\non_stale = \"deny\"",
        );
        let c = parse(&dir.path().join("check.toml"), &text).unwrap();
        assert_eq!((c.on_stale, c.scope), (OnStale::Allow, Scope::Storage));
        assert_eq!(c.issuers, ["https://a/", "https://b/realms/x/"]);
        assert_eq!(c.ledgers[0].cache, PathBuf::from("/var/cache/x"));
        assert_eq!(c.ledgers[0].high_water, dir.path().join("seq/CERN-PROD"));
        assert_eq!(
            c.ledgers[0].on_stale,
            OnStale::Deny,
            "a ledger's own policy wins"
        );
        assert!(c.canaries.is_empty());
    }

    #[test]
    fn canaries_are_read() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "site.key", KEY_B64, 0o600);
        let at = dir.path().join("check.toml");
        let canaries = "[[canary]]\niss = \"https://a/\"\nsub = \"canary\"\n\
                        [[canary]]\niss = \"https://b/\"\nsub = \"c2\"";
        let c = parse(&at, &config("", canaries)).unwrap();
        assert_eq!(
            c.canaries,
            [
                Canary {
                    iss: "https://a/".into(),
                    sub: "canary".into()
                },
                Canary {
                    iss: "https://b/".into(),
                    sub: "c2".into()
                }
            ]
        );
        let empty = config("", "[[canary]]\niss = \"https://a/\"\nsub = \" \"");
        assert!(
            parse(&at, &empty)
                .unwrap_err()
                .message
                .contains("empty `iss` or `sub`")
        );
        let unknown = config(
            "",
            "[[canary]]\niss = \"https://a/\"\nsub = \"c\"\njti = \"j\"",
        );
        assert!(
            parse(&at, &unknown)
                .unwrap_err()
                .message
                .contains("unknown field `jti`")
        );
    }

    #[test]
    fn bad_files_are_clear_errors_decided_by_their_policy_once_read() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "site.key", KEY_B64, 0o600);
        let at = dir.path().join("check.toml");
        let allow = "on_stale = \"allow\"";
        for (text, says, policy) in [
            (
                config("on_stale = \"maybe\"", ""),
                "unknown variant `maybe`",
                OnStale::Deny,
            ),
            (
                format!("{allow}\nscope = \"network\""),
                "unknown variant `network`",
                OnStale::Deny,
            ),
            (
                config(allow, "colour = 1"),
                "unknown field `colour`",
                OnStale::Deny,
            ),
            ("".to_string(), "has no [[ledger]]", OnStale::Deny),
            (allow.to_string(), "has no [[ledger]]", OnStale::Allow),
            (
                config(&format!("{allow}\nissuers = [\" https://a/\"]"), ""),
                "space-padded",
                OnStale::Allow,
            ),
            (
                config(allow, "").replace("CERN-PROD", ""),
                "`site` is empty",
                OnStale::Allow,
            ),
            (
                format!(
                    "{}{}",
                    config(allow, ""),
                    config("", "").replace("site = \"CERN-PROD\"", "site = \"B\"")
                ),
                "bl.json is named twice",
                OnStale::Allow,
            ),
            (
                config("", "cache = \"bl.json\""),
                "bl.json is named twice",
                OnStale::Deny,
            ),
            (
                format!(
                    "{}{}",
                    config("", ""),
                    config("", "")
                        .replace("site = \"CERN-PROD\"", "site = \"B\"")
                        .replace("bl.json", "b.json")
                ),
                "site.key.seq is named twice",
                OnStale::Deny,
            ),
        ] {
            let e = parse(&at, &text).unwrap_err();
            assert!(e.message.contains(says), "{says}: {e:?}");
            assert_eq!(e.policy, policy, "{says}");
        }
    }

    #[test]
    fn a_ledger_with_unusable_keys_is_loaded_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "site.key", KEY_B64, 0o600);
        write(dir.path(), "bad.key", "c2hvcnQ=", 0o600);
        write(dir.path(), "open.key", KEY_B64, 0o644);
        crate::regular_file::mkfifo(&dir.path().join("fifo.key"));
        let at = dir.path().join("check.toml");
        for (text, says) in [
            (config("", "").replace(&log_key(), "not-a-key"), "`log_key`"),
            (
                config("", "").replace("site.key", "missing.key"),
                "reading the site key",
            ),
            (
                config("", "").replace("site.key", "bad.key"),
                "does not hold 32 base64 bytes",
            ),
            (
                config("", "").replace("site.key", "open.key"),
                "group or others may access it",
            ),
            (
                config("", "").replace("site.key", "fifo.key"),
                "a FIFO, not a regular file",
            ),
        ] {
            let c = parse(&at, &format!("on_stale = \"allow\"\n{text}")).unwrap();
            let l = &c.ledgers[0];
            let e = l.keys.as_ref().unwrap_err();
            assert!(e.contains(says), "{says}: {e}");
            assert!(e.contains("[[ledger]] 1 (site `CERN-PROD`)"), "{e}");
            assert_eq!(l.on_stale, OnStale::Allow, "the file's policy decides");
        }
    }

    #[test]
    fn secrets_and_the_file_itself_are_protected() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "check.toml", &config("", ""), 0o644);
        for mode in [0o640, 0o604, 0o644] {
            write(dir.path(), "site.key", KEY_B64, mode);
            let c = load(&path).unwrap();
            let e = c.ledgers[0].keys.as_ref().unwrap_err();
            assert!(
                e.contains("is a secret but group or others may access it"),
                "{mode:o}: {e}"
            );
            assert!(!e.contains(KEY_B64), "never prints the key");
        }
        write(dir.path(), "site.key", KEY_B64, 0o600);
        assert!(load(&path).unwrap().ledgers[0].keys.is_ok());
        // Its own policy is not trusted when others may have written it.
        let allowing = write(
            dir.path(),
            "allow.toml",
            &config("on_stale = \"allow\"", ""),
            0o644,
        );
        for mode in [0o664, 0o646] {
            std::fs::set_permissions(&allowing, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = load(&allowing).unwrap_err();
            assert!(
                e.message.contains("writable by group or others"),
                "{mode:o}"
            );
            assert_eq!(e.policy, OnStale::Deny);
        }
        let e = load(&dir.path().join("none.toml")).unwrap_err();
        assert!(e.message.starts_with("reading "), "{e:?}");
        assert_eq!(e.policy, OnStale::Deny);
        let fifo = dir.path().join("fifo.toml");
        crate::regular_file::mkfifo(&fifo);
        let e = load(&fifo).unwrap_err();
        assert!(e.message.contains("a FIFO, not a regular file"), "{e:?}");
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
