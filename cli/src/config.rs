//! Where the CLI finds its server, credential and pinned log key.
//!
//! The configuration file (`--config FILE`, else `$XDG_CONFIG_HOME/tokenledger/config.toml`,
//! else `~/.config/tokenledger/config.toml`) holds profiles:
//!
//! ```toml
//! [profile.default]
//! server = "https://ledger.example.org"
//! token_file = "~/.config/tokenledger/atlas-officer.token"   # or: token = "tlk_..."
//! log_key = "ledger.example.org/log+1a2b3c4d+AQ..."
//! ca_file = "ledger-ca.pem"                                   # optional, see below
//! ```
//!
//! The profile is `--profile`, else `$TOKENLEDGER_PROFILE`, else `default`. Each setting is
//! taken from the first place that has it: flag, then environment (`TOKENLEDGER_SERVER`,
//! `TOKENLEDGER_TOKEN`, `TOKENLEDGER_LOG_KEY`), then the profile. Without a configured
//! credential, the WLCG bearer token discovery is followed (`$BEARER_TOKEN`,
//! `$BEARER_TOKEN_FILE`, `$XDG_RUNTIME_DIR/bt_u<euid>`, `/tmp/bt_u<euid>`), since the server
//! accepts operators' OIDC tokens. A configuration file holding a `token`, and any token file
//! named by a flag or a profile, must not be readable by group or others (like ssh's keys).
//! Credentials are never printed.
//!
//! Over https the server's certificate must chain to the system's trust store, to the CA file
//! (`--ca-file`, `TOKENLEDGER_CA_FILE`, the profile's `ca_file`), or to a CA of the directory
//! `$X509_CERT_DIR`, else of /etc/grid-security/certificates when it exists ([`crate::tls`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;

use crate::client::{Client, authority};
use crate::exit::Failure;
use crate::tls::{GRID_CA_DIR, TrustAnchors, TrustPath, TrustSources, ca_dir};

/// The profile used when none is named.
const DEFAULT_PROFILE: &str = "default";
/// Largest configuration or token file read (a JWT with many groups is a few kB).
const MAX_FILE_BYTES: u64 = 1 << 20;

/// How to reach the ledger: flags shared by every command that talks to it.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Connection")]
pub struct ConnectionArgs {
    /// Configuration file [default: $XDG_CONFIG_HOME/tokenledger/config.toml, else
    /// ~/.config/tokenledger/config.toml].
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Profile of the configuration file [env: TOKENLEDGER_PROFILE] [default: default].
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// Base URL of the ledger, e.g. `https://ledger.example.org` [env: TOKENLEDGER_SERVER].
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// Credential: an API secret (`tlk_...`) or an operator's OIDC token
    /// [env: TOKENLEDGER_TOKEN]. Others may see a command line: prefer --token-file.
    #[arg(long, global = true, value_name = "SECRET")]
    pub token: Option<String>,
    /// File holding the credential (not readable by group or others).
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// PEM bundle of CAs trusted for https, besides the system's store and the CA directory
    /// ($X509_CERT_DIR, else /etc/grid-security/certificates) [env: TOKENLEDGER_CA_FILE].
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

/// The process environment as the resolution sees it (a snapshot, so tests can make one).
pub struct Environment {
    vars: HashMap<String, String>,
    /// The effective user id, for `bt_u<euid>`.
    euid: u32,
    /// Where the last step of the bearer token discovery looks (`/tmp`).
    tmp_dir: PathBuf,
    /// The CA directory used when `X509_CERT_DIR` is not set and it exists.
    grid_ca_dir: PathBuf,
}

impl Environment {
    /// This process's environment.
    pub fn current() -> Environment {
        Environment {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            euid: rustix::process::geteuid().as_raw(),
            tmp_dir: PathBuf::from("/tmp"),
            grid_ca_dir: PathBuf::from(GRID_CA_DIR),
        }
    }

    /// A variable; unset and empty are the same.
    fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// A credential and where it was found (for messages; the secret is never shown).
#[derive(Clone)]
pub struct Credential {
    pub secret: String,
    pub source: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Credential {{ source: {:?}, secret: <hidden> }}",
            self.source
        )
    }
}

/// What a command uses to reach the ledger.
#[derive(Debug)]
pub struct Settings {
    pub server: Option<String>,
    pub credential: Option<Credential>,
    /// The pinned log verifier key, from the environment or the profile.
    pub log_key: Option<String>,
    /// The profile's name, for messages.
    pub profile: String,
    /// Where trusted CAs come from besides the system's store.
    pub trust: TrustSources,
}

impl Settings {
    /// A client for the configured server.
    pub fn client(&self) -> Result<Client, Failure> {
        let server = self.server.as_deref().ok_or_else(|| {
            Failure::Error(format!(
                "no server: pass --server URL, set TOKENLEDGER_SERVER, or set `server` in \
                 profile `{}` of the configuration file",
                self.profile
            ))
        })?;
        let lower = server.to_ascii_lowercase();
        if !(lower.starts_with("https://") || lower.starts_with("http://")) {
            return Err(Failure::Error(format!(
                "the server `{server}` is not an http:// or https:// URL"
            )));
        }
        if self.credential.is_some() && lower.starts_with("http://") && !is_loopback(&lower) {
            eprintln!("tokenledger: warning: sending a credential over plain HTTP to {server}");
        }
        let trust = if lower.starts_with("https://") {
            self.trust.load()?
        } else {
            TrustAnchors::default()
        };
        Ok(Client::new(
            server,
            self.credential.as_ref().map(|c| c.secret.clone()),
            trust,
        ))
    }

    /// A client that sends a credential, for commands that always need one.
    pub fn authenticated_client(&self) -> Result<Client, Failure> {
        if self.credential.is_none() {
            return Err(Failure::Error(format!(
                "no credential: pass --token-file FILE, set TOKENLEDGER_TOKEN, set `token_file` \
                 in profile `{}` of the configuration file, or provide a WLCG bearer token \
                 ($BEARER_TOKEN, $BEARER_TOKEN_FILE, $XDG_RUNTIME_DIR/bt_u<uid>, /tmp/bt_u<uid>)",
                self.profile
            )));
        }
        self.client()
    }

    /// The log key: the command's `--log-key`, else the environment's or the profile's.
    pub fn log_key<'a>(&'a self, flag: Option<&'a str>) -> Option<&'a str> {
        flag.or(self.log_key.as_deref())
    }

    /// Where the credential came from, to explain a refusal.
    pub fn credential_hint(&self) -> String {
        match &self.credential {
            Some(c) => format!("the credential sent came from {}", c.source),
            None => "no credential was sent".to_string(),
        }
    }
}

fn is_loopback(url: &str) -> bool {
    let host = authority(url);
    let name = if host.starts_with('[') {
        host.split(']').next().map(|h| &h[1..]).unwrap_or_default()
    } else {
        host.split(':').next().unwrap_or_default()
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    profile: BTreeMap<String, Profile>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct Profile {
    server: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    log_key: Option<String>,
    ca_file: Option<PathBuf>,
}

/// Resolves the settings from flags, environment and configuration file (see the module docs).
pub fn resolve(args: &ConnectionArgs, env: &Environment) -> Result<Settings, Failure> {
    let (path, explicit) = match &args.config {
        Some(path) => (Some(path.clone()), true),
        None => (default_config_path(env), false),
    };
    let (file, path) = match path {
        Some(path) => match load_config(&path, explicit)? {
            Some(file) => (file, Some(path)),
            None => (ConfigFile::default(), None),
        },
        None => (ConfigFile::default(), None),
    };
    let named = args
        .profile
        .clone()
        .or_else(|| env.var("TOKENLEDGER_PROFILE").map(str::to_owned));
    let name = named.clone().unwrap_or_else(|| DEFAULT_PROFILE.to_string());
    let profile = match (file.profile.get(&name), &named, &path) {
        (Some(profile), _, _) => profile.clone(),
        (None, None, _) => Profile::default(),
        (None, Some(_), Some(path)) => {
            return Err(Failure::Error(format!(
                "no profile `{name}` in {}",
                path.display()
            )));
        }
        (None, Some(_), None) => {
            return Err(Failure::Error(format!(
                "profile `{name}` asked for, but there is no configuration file{}",
                args.config
                    .as_ref()
                    .map(|p| format!(" ({})", p.display()))
                    .unwrap_or_default()
            )));
        }
    };
    let config_dir = path.as_deref().and_then(Path::parent);
    let in_profile = || match &path {
        Some(path) => format!("profile `{name}` of {}", path.display()),
        None => format!("profile `{name}`"),
    };
    if profile.token.is_some() && profile.token_file.is_some() {
        return Err(Failure::Error(format!(
            "{} sets both `token` and `token_file`",
            in_profile()
        )));
    }

    let server = args
        .server
        .clone()
        .or_else(|| env.var("TOKENLEDGER_SERVER").map(str::to_owned))
        .or(profile.server.clone());
    let credential = if let Some(secret) = &args.token {
        Some(credential(secret, "--token")?)
    } else if let Some(file) = &args.token_file {
        Some(read_token_file(file, "--token-file")?)
    } else if let Some(secret) = env.var("TOKENLEDGER_TOKEN") {
        Some(credential(secret, "$TOKENLEDGER_TOKEN")?)
    } else if let Some(secret) = &profile.token {
        Some(credential(secret, &in_profile())?)
    } else if let Some(file) = &profile.token_file {
        let file = expand_path(file, config_dir, env);
        Some(read_token_file(&file, &in_profile())?)
    } else {
        discover_bearer_token(env)
    };
    let log_key = env
        .var("TOKENLEDGER_LOG_KEY")
        .map(str::to_owned)
        .or(profile.log_key);
    let ca_file = if let Some(file) = &args.ca_file {
        Some(TrustPath {
            path: file.clone(),
            named_by: "--ca-file".into(),
        })
    } else if let Some(file) = env.var("TOKENLEDGER_CA_FILE") {
        Some(TrustPath {
            path: PathBuf::from(file),
            named_by: "$TOKENLEDGER_CA_FILE".into(),
        })
    } else {
        profile.ca_file.as_ref().map(|file| TrustPath {
            path: expand_path(file, config_dir, env),
            named_by: in_profile(),
        })
    };
    let trust = TrustSources {
        ca_file,
        ca_dir: ca_dir(env.var("X509_CERT_DIR"), &env.grid_ca_dir),
    };
    Ok(Settings {
        server,
        credential,
        log_key,
        profile: name,
        trust,
    })
}

/// `$XDG_CONFIG_HOME/tokenledger/config.toml` (when set to an absolute path, as the XDG base
/// directory specification asks), else `$HOME/.config/tokenledger/config.toml`.
fn default_config_path(env: &Environment) -> Option<PathBuf> {
    let base = env
        .var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| env.var("HOME").map(|home| Path::new(home).join(".config")))?;
    Some(base.join("tokenledger").join("config.toml"))
}

/// Reads and checks the configuration file; `None` if the default one does not exist.
fn load_config(path: &Path, explicit: bool) -> Result<Option<ConfigFile>, Failure> {
    let (text, mode) = match read_small_file(path) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(None),
        Err(e) => {
            return Err(Failure::Error(format!(
                "reading the configuration file {}: {e}",
                path.display()
            )));
        }
    };
    let file: ConfigFile = toml::from_str(&text).map_err(|e| {
        Failure::Error(format!(
            "the configuration file {} is not valid: {e}",
            path.display()
        ))
    })?;
    if file.profile.values().any(|p| p.token.is_some()) {
        // The mode of the file as opened, not of whatever the path names later.
        refuse_readable_by_others(path, mode, "holds a `token`")?;
    }
    Ok(Some(file))
}

/// A file holding a secret must be the owner's alone (mode & 0o077 == 0), as ssh demands.
fn refuse_readable_by_others(path: &Path, mode: u32, what: &str) -> Result<(), Failure> {
    if mode & 0o077 != 0 {
        return Err(Failure::Error(format!(
            "{} {what} but group or others may access it (mode {:04o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o7777,
            path.display()
        )));
    }
    Ok(())
}

/// Reads a file of at most [`MAX_FILE_BYTES`]; also returns its mode, from the open file.
fn read_small_file(path: &Path) -> std::io::Result<(String, u32)> {
    let file = std::fs::File::open(path)?;
    let mode = file.metadata()?.permissions().mode();
    let mut text = String::new();
    file.take(MAX_FILE_BYTES).read_to_string(&mut text)?;
    Ok((text, mode))
}

fn credential(secret: &str, source: &str) -> Result<Credential, Failure> {
    let secret = secret.trim();
    if secret.is_empty() {
        return Err(Failure::Error(format!(
            "the credential from {source} is empty"
        )));
    }
    Ok(Credential {
        secret: secret.to_string(),
        source: source.to_string(),
    })
}

/// A token file named by a flag or a profile: it must exist, be the owner's alone, and hold
/// a credential.
fn read_token_file(path: &Path, named_by: &str) -> Result<Credential, Failure> {
    let (text, mode) = read_small_file(path).map_err(|e| {
        Failure::Error(format!(
            "reading the token file {} (from {named_by}): {e}",
            path.display()
        ))
    })?;
    refuse_readable_by_others(path, mode, "holds a credential")?;
    credential(&text, &format!("{} (from {named_by})", path.display()))
}

/// `~/x` is under `$HOME`; a relative path is relative to the configuration file's directory.
fn expand_path(path: &Path, config_dir: Option<&Path>, env: &Environment) -> PathBuf {
    if let (Ok(rest), Some(home)) = (path.strip_prefix("~"), env.var("HOME")) {
        return Path::new(home).join(rest);
    }
    match config_dir {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

/// WLCG Bearer Token Discovery (WLCG Common JWT Profiles): `$BEARER_TOKEN`, then the file
/// `$BEARER_TOKEN_FILE`, then `$XDG_RUNTIME_DIR/bt_u<euid>`, then `/tmp/bt_u<euid>`. Each is
/// trimmed; an empty value or a missing or unreadable file moves on to the next.
pub fn discover_bearer_token(env: &Environment) -> Option<Credential> {
    if let Some(token) = env.var("BEARER_TOKEN").map(str::trim)
        && !token.is_empty()
    {
        return Some(Credential {
            secret: token.to_string(),
            source: "$BEARER_TOKEN".into(),
        });
    }
    let file_name = format!("bt_u{}", env.euid);
    let candidates = [
        env.var("BEARER_TOKEN_FILE").map(PathBuf::from),
        env.var("XDG_RUNTIME_DIR")
            .map(|dir| Path::new(dir).join(&file_name)),
        Some(env.tmp_dir.join(&file_name)),
    ];
    candidates.into_iter().flatten().find_map(|path| {
        let (text, _) = read_small_file(&path).ok()?;
        let token = text.trim();
        (!token.is_empty()).then(|| Credential {
            secret: token.to_string(),
            source: format!("the bearer token file {}", path.display()),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        /// An environment whose HOME, runtime and tmp directories are inside the fixture.
        fn env(&self, vars: &[(&str, &str)]) -> Environment {
            let mut map: HashMap<String, String> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            map.entry("HOME".into())
                .or_insert_with(|| self.path("home").display().to_string());
            Environment {
                vars: map,
                euid: 1234,
                tmp_dir: self.path("tmp"),
                grid_ca_dir: self.path("grid-security/certificates"),
            }
        }

        fn write(&self, name: &str, text: &str, mode: u32) -> PathBuf {
            let path = self.path(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path
        }

        /// Writes `~/.config/tokenledger/config.toml`.
        fn home_config(&self, text: &str, mode: u32) -> PathBuf {
            self.write("home/.config/tokenledger/config.toml", text, mode)
        }
    }

    fn args() -> ConnectionArgs {
        ConnectionArgs::default()
    }

    fn secret(settings: &Settings) -> Option<(&str, &str)> {
        settings
            .credential
            .as_ref()
            .map(|c| (c.secret.as_str(), c.source.as_str()))
    }

    const PROFILES: &str = r#"
        [profile.default]
        server = "https://file.example"
        token = "tlk_file"
        log_key = "file-key"

        [profile.cms]
        server = "https://cms.example"
        token_file = "cms.token"
    "#;

    #[test]
    fn flags_override_environment_which_overrides_the_file() {
        let f = Fixture::new();
        f.home_config(PROFILES, 0o600);
        let settings = resolve(&args(), &f.env(&[])).unwrap();
        assert_eq!(settings.server.as_deref(), Some("https://file.example"));
        assert_eq!(secret(&settings).unwrap().0, "tlk_file");
        assert!(
            secret(&settings)
                .unwrap()
                .1
                .starts_with("profile `default` of ")
        );
        assert_eq!(settings.log_key.as_deref(), Some("file-key"));

        let env = f.env(&[
            ("TOKENLEDGER_SERVER", "https://env.example"),
            ("TOKENLEDGER_TOKEN", " tlk_env\n"),
            ("TOKENLEDGER_LOG_KEY", "env-key"),
        ]);
        let settings = resolve(&args(), &env).unwrap();
        assert_eq!(settings.server.as_deref(), Some("https://env.example"));
        assert_eq!(secret(&settings), Some(("tlk_env", "$TOKENLEDGER_TOKEN")));
        assert_eq!(settings.log_key(None), Some("env-key"));
        assert_eq!(settings.log_key(Some("flag-key")), Some("flag-key"));

        let flags = ConnectionArgs {
            server: Some("https://flag.example".into()),
            token: Some("tlk_flag".into()),
            ..args()
        };
        let settings = resolve(&flags, &env).unwrap();
        assert_eq!(settings.server.as_deref(), Some("https://flag.example"));
        assert_eq!(secret(&settings), Some(("tlk_flag", "--token")));

        let token_file = f.write("flag.token", "tlk_from_file\n", 0o600);
        let flags = ConnectionArgs {
            token_file: Some(token_file),
            ..args()
        };
        let settings = resolve(&flags, &env).unwrap();
        assert_eq!(secret(&settings).unwrap().0, "tlk_from_file");
    }

    #[test]
    fn profiles_are_chosen_by_flag_then_environment() {
        let f = Fixture::new();
        let config = f.home_config(PROFILES, 0o600);
        f.write("home/.config/tokenledger/cms.token", "tlk_cms", 0o400);
        let env = f.env(&[("TOKENLEDGER_PROFILE", "cms")]);
        let settings = resolve(&args(), &env).unwrap();
        assert_eq!(settings.server.as_deref(), Some("https://cms.example"));
        assert_eq!(
            secret(&settings).unwrap().0,
            "tlk_cms",
            "relative to the file"
        );
        assert_eq!(settings.log_key, None);

        let flags = ConnectionArgs {
            profile: Some("default".into()),
            ..args()
        };
        let settings = resolve(&flags, &env).unwrap();
        assert_eq!(settings.server.as_deref(), Some("https://file.example"));

        let flags = ConnectionArgs {
            profile: Some("lhcb".into()),
            ..args()
        };
        let e = resolve(&flags, &env).unwrap_err();
        assert_eq!(e.code(), 2);
        assert_eq!(
            e.to_string(),
            format!("no profile `lhcb` in {}", config.display())
        );
    }

    #[test]
    fn xdg_config_home_and_config_flag_choose_the_file() {
        let f = Fixture::new();
        f.home_config(PROFILES, 0o600);
        f.write(
            "xdg/tokenledger/config.toml",
            "[profile.default]\nserver = \"https://xdg.example\"\n",
            0o644,
        );
        let xdg = f.path("xdg").display().to_string();
        let settings = resolve(&args(), &f.env(&[("XDG_CONFIG_HOME", &xdg)])).unwrap();
        assert_eq!(settings.server.as_deref(), Some("https://xdg.example"));
        // A relative XDG_CONFIG_HOME is ignored, as the specification says.
        let settings = resolve(&args(), &f.env(&[("XDG_CONFIG_HOME", "xdg")])).unwrap();
        assert_eq!(settings.server.as_deref(), Some("https://file.example"));

        let other = f.write(
            "other.toml",
            "[profile.default]\nserver = \"https://other.example\"\n",
            0o644,
        );
        let flags = ConnectionArgs {
            config: Some(other),
            ..args()
        };
        let settings = resolve(&flags, &f.env(&[("XDG_CONFIG_HOME", &xdg)])).unwrap();
        assert_eq!(settings.server.as_deref(), Some("https://other.example"));

        let missing = ConnectionArgs {
            config: Some(f.path("missing.toml")),
            ..args()
        };
        assert_eq!(resolve(&missing, &f.env(&[])).unwrap_err().code(), 2);
    }

    #[test]
    fn no_file_is_no_settings() {
        let f = Fixture::new();
        let settings = resolve(&args(), &f.env(&[])).unwrap();
        assert_eq!(settings.server, None);
        assert!(settings.credential.is_none());
        assert_eq!(settings.profile, "default");
        let e = settings.client().err().unwrap();
        assert!(
            e.to_string().starts_with("no server: pass --server URL"),
            "{e}"
        );
        let e = settings.authenticated_client().err().unwrap();
        assert!(e.to_string().starts_with("no credential"), "{e}");
        let flags = ConnectionArgs {
            profile: Some("atlas".into()),
            ..args()
        };
        assert!(
            resolve(&flags, &f.env(&[]))
                .unwrap_err()
                .to_string()
                .contains("no configuration file")
        );
    }

    #[test]
    fn a_token_that_others_can_read_is_refused() {
        let f = Fixture::new();
        let config = f.home_config(PROFILES, 0o644);
        let e = resolve(&args(), &f.env(&[])).unwrap_err();
        assert_eq!(e.code(), 2);
        assert_eq!(
            e.to_string(),
            format!(
                "{} holds a `token` but group or others may access it (mode 0644); \
                 run `chmod 600 {}`",
                config.display(),
                config.display()
            )
        );
        assert!(
            !e.to_string().contains("tlk_file"),
            "never prints the token"
        );
        for mode in [0o640, 0o604, 0o660, 0o601] {
            f.home_config(PROFILES, mode);
            assert!(resolve(&args(), &f.env(&[])).is_err(), "{mode:o}");
        }
        for mode in [0o600, 0o400, 0o700] {
            f.home_config(PROFILES, mode);
            f.write("home/.config/tokenledger/cms.token", "tlk_cms", 0o600);
            assert!(resolve(&args(), &f.env(&[])).is_ok(), "{mode:o}");
        }
        // Without a token the file may be world-readable; a token file may not.
        f.home_config(
            "[profile.default]\nserver = \"https://s\"\ntoken_file = \"t\"\n",
            0o644,
        );
        f.write("home/.config/tokenledger/t", "tlk_x", 0o644);
        let e = resolve(&args(), &f.env(&[])).unwrap_err();
        assert!(
            e.to_string()
                .contains("holds a credential but group or others"),
            "{e}"
        );
        f.write("home/.config/tokenledger/t", "tlk_x", 0o600);
        assert!(resolve(&args(), &f.env(&[])).is_ok());
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let f = Fixture::new();
        for (text, says) in [
            (
                "[profile.default]\nsrever = \"x\"\n",
                "unknown field `srever`",
            ),
            ("not toml", "is not valid"),
            (
                "[profile.default]\ntoken = \"a\"\ntoken_file = \"b\"\n",
                "sets both `token` and `token_file`",
            ),
        ] {
            f.home_config(text, 0o600);
            let e = resolve(&args(), &f.env(&[])).unwrap_err();
            assert!(e.to_string().contains(says), "{text}: {e}");
        }
        f.home_config("[profile.default]\ntoken = \"  \"\n", 0o600);
        assert!(
            resolve(&args(), &f.env(&[]))
                .unwrap_err()
                .to_string()
                .contains("is empty")
        );
    }

    #[test]
    fn bearer_token_discovery_follows_the_wlcg_order() {
        let f = Fixture::new();
        let runtime = f.path("run");
        std::fs::create_dir_all(&runtime).unwrap();
        let runtime_s = runtime.display().to_string();
        let file = f.write("bt.file", "  from-file \n", 0o600);
        let file_s = file.display().to_string();
        f.write("run/bt_u1234", "from-runtime\n", 0o600);
        f.write("tmp/bt_u1234", "from-tmp\n", 0o600);
        let found = |vars: &[(&str, &str)]| {
            let settings = resolve(&args(), &f.env(vars)).unwrap();
            settings.credential.map(|c| c.secret)
        };
        let all = [
            ("BEARER_TOKEN", " from-env\n"),
            ("BEARER_TOKEN_FILE", file_s.as_str()),
            ("XDG_RUNTIME_DIR", runtime_s.as_str()),
        ];
        assert_eq!(found(&all).as_deref(), Some("from-env"));
        assert_eq!(found(&all[1..]).as_deref(), Some("from-file"));
        assert_eq!(found(&all[2..]).as_deref(), Some("from-runtime"));
        assert_eq!(found(&[]).as_deref(), Some("from-tmp"));
        // Empty values and missing or empty files move on.
        f.write("empty.file", " \n", 0o600);
        let empty = f.path("empty.file").display().to_string();
        assert_eq!(
            found(&[("BEARER_TOKEN", "  "), ("BEARER_TOKEN_FILE", &empty)]).as_deref(),
            Some("from-tmp")
        );
        assert_eq!(
            found(&[
                ("BEARER_TOKEN_FILE", "/nonexistent/bt"),
                ("XDG_RUNTIME_DIR", "/nonexistent")
            ])
            .as_deref(),
            Some("from-tmp")
        );
        std::fs::remove_file(f.path("tmp/bt_u1234")).unwrap();
        assert_eq!(found(&[]), None);
        // A configured credential wins over discovery.
        assert_eq!(
            found(&[
                ("TOKENLEDGER_TOKEN", "tlk_configured"),
                ("BEARER_TOKEN", "x")
            ])
            .as_deref(),
            Some("tlk_configured")
        );
        let settings = resolve(&args(), &f.env(&[("BEARER_TOKEN", "eyJ.x.y")])).unwrap();
        assert_eq!(
            settings.credential_hint(),
            "the credential sent came from $BEARER_TOKEN"
        );
        assert!(
            !format!("{settings:?}").contains("eyJ.x.y"),
            "Debug hides it"
        );
    }

    #[test]
    fn the_ca_file_comes_from_flag_environment_or_profile_and_the_ca_directory_from_x509_cert_dir()
    {
        let f = Fixture::new();
        f.home_config(
            "[profile.default]\nserver = \"https://s\"\nca_file = \"ledger-ca.pem\"\n",
            0o644,
        );
        let trust = |args: &ConnectionArgs, vars: &[(&str, &str)]| {
            let trust = resolve(args, &f.env(vars)).unwrap().trust;
            let named = |t: Option<TrustPath>| t.map(|t| (t.path, t.named_by));
            (named(trust.ca_file), named(trust.ca_dir))
        };
        let (ca_file, ca_dir) = trust(&args(), &[]);
        let config = f.path("home/.config/tokenledger/config.toml");
        assert_eq!(
            ca_file,
            Some((
                f.path("home/.config/tokenledger/ledger-ca.pem"),
                format!("profile `default` of {}", config.display())
            )),
            "relative to the file"
        );
        assert_eq!(ca_dir, None, "no X509_CERT_DIR and no grid directory");

        std::fs::create_dir_all(f.path("grid-security/certificates")).unwrap();
        let env = [("TOKENLEDGER_CA_FILE", "/env/ca.pem")];
        let (ca_file, ca_dir) = trust(&args(), &env);
        assert_eq!(
            ca_file,
            Some(("/env/ca.pem".into(), "$TOKENLEDGER_CA_FILE".into()))
        );
        assert_eq!(
            ca_dir,
            Some((
                f.path("grid-security/certificates"),
                "the grid's default".into()
            ))
        );

        let flags = ConnectionArgs {
            ca_file: Some("/flag/ca.pem".into()),
            ..args()
        };
        let (ca_file, ca_dir) = trust(&flags, &[env[0], ("X509_CERT_DIR", "/x509")]);
        assert_eq!(ca_file, Some(("/flag/ca.pem".into(), "--ca-file".into())));
        assert_eq!(ca_dir, Some(("/x509".into(), "X509_CERT_DIR".into())));
    }

    #[test]
    fn servers_must_be_http_urls() {
        let settings = Settings {
            server: Some("ledger.example".into()),
            credential: None,
            log_key: None,
            profile: "default".into(),
            trust: TrustSources::default(),
        };
        assert!(settings.client().is_err());
        for url in [
            "http://127.0.0.1:8080",
            "http://localhost/",
            "http://[::1]:9",
            "http://u@127.0.0.2",
        ] {
            assert!(is_loopback(url), "{url}");
        }
        for url in [
            "http://ledger.example",
            "http://10.0.0.1:80",
            "http://127.0.0.1.evil/",
        ] {
            assert!(!is_loopback(url), "{url}");
        }
    }
}
