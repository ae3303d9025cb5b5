//! Server configuration: the embedded default (policies/default.toml), an optional
//! file laid over it, then flags and TOKENLEDGER_* variables.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use jsonwebtoken::Algorithm;
use serde::{Deserialize, Deserializer};
use tokenledger_core::access::{Binding, Role};
use tokenledger_core::entry::{self, validate_vo_name};
use tokenledger_core::retention::{Period, RetentionPolicy};
use tokenledger_core::vo::VoRule;

/// The default configuration, exactly as shipped in policies/default.toml.
pub const DEFAULT_CONFIG: &str = include_str!("../../policies/default.toml");

/// Name of the SQLite database file inside the data directory.
pub const DB_FILE: &str = "tokenledger.db";
/// Name of the log signing key file inside the data directory.
pub const LOG_KEY_FILE: &str = "log.key";
/// Name of the pseudonym secret `K` inside the data directory.
pub const LEDGER_SECRET_FILE: &str = "ledger.secret";

#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub log: LogConfig,
    pub sequencer: SequencerConfig,
    pub database: DatabaseConfig,
    pub ingest: IngestConfig,
    #[serde(rename = "vo")]
    pub vos: Vec<VoConfig>,
    #[serde(rename = "issuer", default)]
    pub issuers: Vec<IssuerConfig>,
    pub operators: OperatorsConfig,
    pub blocklist: BlocklistConfig,
    /// `[retention]`: how long each entry type keeps its payload, ledger-wide and per VO,
    /// and how often the writer runs it.
    #[serde(deserialize_with = "retention_config")]
    pub retention: RetentionConfig,
    #[serde(rename = "site", default)]
    pub sites: Vec<SiteConfig>,
    #[serde(rename = "operator", default)]
    pub operator_rules: Vec<OperatorRule>,
}

/// Signed blocklists.
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct BlocklistConfig {
    /// How long a signed blocklist is valid; it is signed again (new sequence) once less
    /// than half of this is left.
    pub validity_secs: u64,
}

/// `[retention]`: the policy, and how often the writer runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionConfig {
    pub policy: RetentionPolicy,
    /// `run_every`: the time between two retention runs of the writer (default 1 hour, at
    /// least 1 second).
    pub run_every: Period,
}

/// The default time between two retention runs.
const RETENTION_RUN_EVERY: Period = Period::from_secs(3600);

/// `[retention]` as written: `run_every`, a period per entry type, and
/// `[retention.vo.<name>]` tables of a VO's own periods.
#[derive(Deserialize)]
struct RetentionText {
    #[serde(default)]
    run_every: Option<toml::Value>,
    #[serde(default)]
    vo: BTreeMap<String, BTreeMap<String, toml::Value>>,
    #[serde(flatten)]
    periods: BTreeMap<String, toml::Value>,
}

/// Reads `[retention]` into a policy checked by core's rules (the VOs are checked against
/// `[[vo]]` in [`Config::validate`]) and the time between runs.
fn retention_config<'de, D: Deserializer<'de>>(d: D) -> Result<RetentionConfig, D::Error> {
    let text = RetentionText::deserialize(d)?;
    let run_every = match text.run_every {
        None => RETENTION_RUN_EVERY,
        Some(toml::Value::String(every)) => every
            .parse::<Period>()
            .ok()
            .filter(|every| every.secs() >= 1)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "[retention] run_every = \"{every}\": a period of at least 1s, such as \"1h\""
                ))
            })?,
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "[retention] run_every = {other}: a period is a string such as \"1h\""
            )));
        }
    };
    let periods = period_texts("[retention]", text.periods).map_err(serde::de::Error::custom)?;
    let vos = text
        .vo
        .into_iter()
        .map(|(vo, periods)| {
            Ok((
                vo.clone(),
                period_texts(&format!("[retention.vo.{vo}]"), periods)?,
            ))
        })
        .collect::<Result<_, String>>()
        .map_err(serde::de::Error::custom)?;
    let policy = RetentionPolicy::parse(&periods, &vos)
        .map_err(|e| serde::de::Error::custom(format!("[retention]: {e}")))?;
    Ok(RetentionConfig { policy, run_every })
}

/// The periods of a `[retention]` table, each a string.
fn period_texts(
    table: &str,
    periods: BTreeMap<String, toml::Value>,
) -> Result<BTreeMap<String, String>, String> {
    periods
        .into_iter()
        .map(|(key, value)| match value {
            toml::Value::String(text) => Ok((key, text)),
            other => Err(format!(
                "{table} {key} = {other}: a period is a string such as \"180d\" or \"5y\""
            )),
        })
        .collect()
}

/// A site (name as in GOCDB/CRIC) and the VOs it serves.
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub name: String,
    pub vos: Vec<String>,
}

/// OIDC bearer tokens of operators (security officers, site admins, auditors).
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct OperatorsConfig {
    /// The `aud` an operator token must name.
    pub audience: String,
}

/// Maps a claim value of a verified operator token from `iss` to a role binding.
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct OperatorRule {
    pub iss: String,
    /// `wlcg.groups`, `scope`, `eduperson_entitlement` or `entitlements`.
    pub claim: String,
    /// The value that must be among the claim's values.
    pub value: String,
    pub role: Role,
    #[serde(default)]
    pub vo: Option<String>,
    #[serde(default)]
    pub site: Option<String>,
}

impl OperatorRule {
    /// The claims a rule may look at.
    pub const CLAIMS: [&str; 4] = [
        "wlcg.groups",
        "scope",
        "eduperson_entitlement",
        "entitlements",
    ];

    /// The binding granted, checked at load.
    pub fn binding(&self) -> anyhow::Result<Binding> {
        if self.role == Role::Admin {
            bail!("an operator token never grants admin: use an API credential");
        }
        Ok(Binding::new(self.role, self.vo.clone(), self.site.clone())?)
    }
}

#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub max_body_bytes: usize,
    /// Read the database into the OS page cache at start, if it fits in half the memory
    /// available.
    pub warm_page_cache: bool,
    /// PEM certificate chain served over TLS (with `tls_key`).
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`, readable by its owner only.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Plain HTTP on a non-loopback address is allowed: a TLS proxy in front terminates TLS.
    pub behind_tls_proxy: bool,
    /// The name this server gives other servers of its database (a standby's 503s and
    /// `/healthz` name the writer by it); none: `hostname:port` of its listener.
    #[serde(default)]
    pub advertise: Option<String>,
    /// The log signing key (0600); none: `log.key` in the data directory.
    #[serde(default)]
    pub log_key_file: Option<PathBuf>,
    /// The pseudonym secret `K` (0600); none: `ledger.secret` in the data directory.
    #[serde(default)]
    pub ledger_secret_file: Option<PathBuf>,
}

/// Where the ledger is stored: the SQLite file in the data directory (no `url`), or a
/// PostgreSQL database shared by any number of servers.
#[derive(Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://user:password@host1:5432,host2:5432/db`: the hosts are tried in order
    /// for the one that accepts writes.
    #[serde(default)]
    pub url: Option<DatabaseUrlText>,
    /// A read replica for lookups (as `url`; its answers lag the primary by its replication
    /// delay).
    #[serde(default)]
    pub read_url: Option<DatabaseUrlText>,
}

/// A database URL as configured: it may carry a password, so its `Debug` says nothing of it
/// (the engine parses it and shows its hosts only).
#[derive(Deserialize, Clone, PartialEq, Eq)]
#[serde(transparent)]
pub struct DatabaseUrlText(pub String);

impl std::fmt::Debug for DatabaseUrlText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseUrlText(..)")
    }
}

#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub origin: String,
    /// Leaves are stored compressed with a dictionary trained on the first this many; 0 keeps
    /// them raw.
    pub compress_after: usize,
}

#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct SequencerConfig {
    pub max_batch: usize,
    pub max_wait_ms: u64,
    pub queue_depth: usize,
}

#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// A report of a token that expired longer ago than this is refused.
    pub backfill_window_secs: u64,
    /// Tolerated clock difference for `iat` and `nbf` in the future.
    pub clock_skew_secs: u64,
}

#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct VoConfig {
    pub name: String,
}

/// A token issuer whose JWTs the ledger verifies.
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The `iss` claim, exactly.
    pub iss: String,
    /// A local JWKS file (re-read when a token names an unknown `kid`).
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// An HTTPS JWKS URL (http only for loopback), fetched and cached.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// A PEM bundle of CAs to trust for `jwks_url`, besides the system's store and the grid
    /// CA directory (`X509_CERT_DIR`, else /etc/grid-security/certificates).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// How long fetched keys are used before fetching again.
    #[serde(default = "default_jwks_refresh_secs")]
    pub jwks_refresh_secs: u64,
    /// A token naming an unknown `kid` makes the ledger fetch the keys again, at most this often.
    #[serde(default = "default_jwks_min_refetch_secs")]
    pub jwks_min_refetch_secs: u64,
    /// Accepted signature algorithms, e.g. ["RS256", "ES256", "EdDSA"].
    pub algorithms: Vec<String>,
    /// VOs this issuer may vouch for; empty means any configured VO.
    #[serde(default)]
    pub vos: Vec<String>,
    /// Ordered VO derivation rules (see core::vo::VoRule).
    pub vo_rules: Vec<VoRule>,
    /// Refuse this issuer's tokens that carry no `exp` (a token valid forever is
    /// usually a mistake of the issuer; set false only for one known to mint them).
    #[serde(default = "default_require_exp")]
    pub require_exp: bool,
}

fn default_require_exp() -> bool {
    true
}

fn default_jwks_refresh_secs() -> u64 {
    3600
}

fn default_jwks_min_refetch_secs() -> u64 {
    10
}

impl Config {
    /// Loads the embedded default, with `file` (if any) laid over it.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let mut table: toml::Table = DEFAULT_CONFIG.parse().context("embedded default config")?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config {}", path.display()))?;
            let overlay: toml::Table = text
                .parse()
                .with_context(|| format!("parsing config {}", path.display()))?;
            merge(&mut table, overlay);
        }
        let config: Config = table.try_into().context("invalid configuration")?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.sequencer.max_batch == 0 || self.sequencer.queue_depth == 0 {
            bail!("sequencer.max_batch and sequencer.queue_depth must be at least 1");
        }
        if self.log.origin.is_empty() || self.log.origin.contains(['+', '\n', ' ']) {
            bail!("log.origin must be non-empty, without '+', spaces or newlines");
        }
        for vo in &self.vos {
            validate_vo_name(&vo.name).with_context(|| format!("VO `{}`", vo.name))?;
        }
        for issuer in &self.issuers {
            issuer
                .validate(self)
                .with_context(|| format!("issuer `{}`", issuer.iss))?;
        }
        for site in &self.sites {
            validate_site_name(&site.name)?;
            for vo in &site.vos {
                if !self.knows_vo(vo) {
                    bail!("site `{}`: VO `{vo}` is not configured", site.name);
                }
            }
        }
        if self.blocklist.validity_secs < 60 {
            bail!("blocklist.validity_secs must be at least 60");
        }
        if let Some(vo) = self.retention.policy.vos().find(|vo| !self.knows_vo(vo)) {
            bail!("[retention.vo.{vo}]: VO `{vo}` is not configured ([[vo]])");
        }
        if self.server.advertise.as_deref().is_some_and(str::is_empty) {
            bail!("server.advertise must not be empty");
        }
        for (name, path) in [
            ("log_key_file", &self.server.log_key_file),
            ("ledger_secret_file", &self.server.ledger_secret_file),
        ] {
            if path.as_deref().is_some_and(|p| !p.is_absolute()) {
                bail!("server.{name} must be an absolute path");
            }
        }
        if self.server.log_key_file.is_some()
            && self.server.log_key_file == self.server.ledger_secret_file
        {
            bail!("server.log_key_file and server.ledger_secret_file must be two files");
        }
        for rule in &self.operator_rules {
            self.validate_operator_rule(rule).with_context(|| {
                format!("operator rule for `{}` = `{}`", rule.claim, rule.value)
            })?;
        }
        Ok(())
    }

    fn validate_operator_rule(&self, rule: &OperatorRule) -> anyhow::Result<()> {
        rule.binding()?;
        let Some(issuer) = self.issuers.iter().find(|i| i.iss == rule.iss) else {
            bail!("issuer `{}` is not configured ([[issuer]])", rule.iss);
        };
        if let Some(vo) = &rule.vo
            && !issuer.may_vouch_for(vo)
        {
            bail!(
                "issuer `{}` does not serve VO `{vo}`: a VO's roles come from its own issuer",
                rule.iss
            );
        }
        if !OperatorRule::CLAIMS.contains(&rule.claim.as_str()) {
            bail!("claim must be one of {:?}", OperatorRule::CLAIMS);
        }
        if let Some(vo) = &rule.vo
            && !self.knows_vo(vo)
        {
            bail!("VO `{vo}` is not configured");
        }
        Ok(())
    }

    /// Is `vo` one of the configured VOs?
    pub fn knows_vo(&self, vo: &str) -> bool {
        self.vos.iter().any(|v| v.name == vo)
    }

    pub fn db_path(&self) -> PathBuf {
        self.server.data_dir.join(DB_FILE)
    }

    /// Refuses a configuration (flags applied) whose database file, log key and pseudonym
    /// secret are not three files: one named at another's default place, say.
    pub fn check_file_paths(&self) -> anyhow::Result<()> {
        let files = [
            ("the log key", self.log_key_path()),
            ("the pseudonym secret", self.ledger_secret_path()),
            ("the SQLite database", self.db_path()),
        ];
        for (i, (what, path)) in files.iter().enumerate() {
            let at = std::path::absolute(path)?;
            for (other, other_path) in &files[i + 1..] {
                if at == std::path::absolute(other_path)? {
                    bail!(
                        "{what} and {other} are both {}: name two files \
                         (server.log_key_file, server.ledger_secret_file, --data-dir)",
                        path.display()
                    );
                }
            }
        }
        Ok(())
    }

    /// The log key file: `server.log_key_file`, else `log.key` in the data directory.
    pub fn log_key_path(&self) -> PathBuf {
        self.server
            .log_key_file
            .clone()
            .unwrap_or_else(|| self.server.data_dir.join(LOG_KEY_FILE))
    }

    /// The pseudonym secret file: `server.ledger_secret_file`, else `ledger.secret` in the
    /// data directory.
    pub fn ledger_secret_path(&self) -> PathBuf {
        self.server
            .ledger_secret_file
            .clone()
            .unwrap_or_else(|| self.server.data_dir.join(LEDGER_SECRET_FILE))
    }
}

impl IssuerConfig {
    fn validate(&self, config: &Config) -> anyhow::Result<()> {
        if self.jwks_file.is_some() == self.jwks_url.is_some() {
            bail!("give exactly one of jwks_file and jwks_url");
        }
        if let Some(url) = &self.jwks_url {
            let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
                .iter()
                .any(|prefix| url.starts_with(prefix));
            if !url.starts_with("https://") && !loopback {
                bail!("jwks_url must be https (plain http only on loopback)");
            }
        }
        if self.ca_file.is_some() && self.jwks_url.is_none() {
            bail!("ca_file applies to jwks_url only (a jwks_file is read, not fetched)");
        }
        if self.algorithms.is_empty() || self.vo_rules.is_empty() {
            bail!("algorithms and vo_rules must not be empty");
        }
        for alg in &self.algorithms {
            parse_algorithm(alg)?;
        }
        for vo in self
            .vos
            .iter()
            .chain(self.vo_rules.iter().filter_map(|r| match r {
                VoRule::Fixed { vo } => Some(vo),
                _ => None,
            }))
        {
            if !config.knows_vo(vo) {
                bail!("VO `{vo}` is not configured");
            }
        }
        Ok(())
    }

    /// May this issuer vouch for `vo`?
    pub fn allows_vo(&self, vo: &str) -> bool {
        self.vos.is_empty() || self.vos.iter().any(|v| v == vo)
    }

    /// Can this issuer's tokens be of `vo` at all: allowed, and, for an issuer whose rules
    /// all fix the VO (one VO per issuer), one of those VOs.
    pub fn may_vouch_for(&self, vo: &str) -> bool {
        let fixed: Vec<&str> = self
            .vo_rules
            .iter()
            .filter_map(|r| match r {
                VoRule::Fixed { vo } => Some(vo.as_str()),
                _ => None,
            })
            .collect();
        let only_fixed = fixed.len() == self.vo_rules.len();
        self.allows_vo(vo) && (!only_fixed || fixed.contains(&vo))
    }
}

/// Checks a site name as in GOCDB/CRIC: 1-64 characters of A-Z, a-z, 0-9, `-`, `_`, `.`.
pub fn validate_site_name(name: &str) -> anyhow::Result<()> {
    if entry::validate_site_name(name).is_err() {
        bail!("site name `{name}` must be 1-64 characters of A-Z, a-z, 0-9, '-', '_', '.'");
    }
    Ok(())
}

/// The asymmetric JWT algorithms an issuer may be configured with (never HS*, never none).
pub fn parse_algorithm(name: &str) -> anyhow::Result<Algorithm> {
    Ok(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        other => bail!("algorithm `{other}` is not accepted (asymmetric algorithms only)"),
    })
}

/// Lays `overlay` over `base`: tables merge key by key, anything else is replaced.
fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenledger_core::entry::EntryType;

    #[test]
    fn embedded_default_loads() {
        let config = Config::load(None).unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
        assert!(config.knows_vo("atlas"));
        assert!(!config.knows_vo("nosuchvo"));
    }

    #[test]
    fn a_file_overrides_only_its_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[sequencer]\nmax_batch = 10\n[[vo]]\nname = \"belle\"\n",
        )
        .unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.sequencer.max_batch, 10);
        assert_eq!(config.sequencer.max_wait_ms, 0);
        assert!(config.knows_vo("belle"));
        assert!(!config.knows_vo("atlas"));
    }

    #[test]
    fn a_ca_file_goes_with_a_jwks_url_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let jwks = dir.path().join("jwks.json");
        std::fs::write(&jwks, "{}").unwrap();
        let config = |source: &str| {
            format!(
                "[[issuer]]\niss = \"https://atlas-auth/\"\n{source}\nca_file = \"/etc/ca.pem\"\n\
                 algorithms = [\"RS256\"]\nvo_rules = [{{ rule = \"fixed\", vo = \"atlas\" }}]\n"
            )
        };
        std::fs::write(&path, config("jwks_url = \"https://atlas-auth/jwk\"")).unwrap();
        assert!(Config::load(Some(&path)).is_ok());
        let file = format!("jwks_file = \"{}\"", jwks.display());
        std::fs::write(&path, config(&file)).unwrap();
        let err = format!("{:#}", Config::load(Some(&path)).unwrap_err());
        assert!(err.contains("ca_file applies to jwks_url only"), "{err}");
    }

    #[test]
    fn operator_roles_of_a_vo_come_from_its_own_issuer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let jwks = dir.path().join("jwks.json");
        std::fs::write(&jwks, "{}").unwrap();
        let config = |vo: &str| {
            format!(
                "[[issuer]]\niss = \"https://atlas-auth/\"\njwks_file = \"{}\"\nalgorithms = [\"RS256\"]\n\
                 vo_rules = [{{ rule = \"fixed\", vo = \"atlas\" }}]\n\
                 [[operator]]\niss = \"https://atlas-auth/\"\nclaim = \"wlcg.groups\"\nvalue = \"/x\"\n\
                 role = \"vo-security\"\nvo = \"{vo}\"\n",
                jwks.display()
            )
        };
        std::fs::write(&path, config("atlas")).unwrap();
        assert!(Config::load(Some(&path)).is_ok());
        std::fs::write(&path, config("cms")).unwrap();
        let err = Config::load(Some(&path)).unwrap_err();
        assert!(
            format!("{err:#}").contains("does not serve VO `cms`"),
            "{err:#}"
        );
    }

    #[test]
    fn retention_defaults_are_cores() {
        let config = Config::load(None).unwrap();
        assert_eq!(config.retention.policy, RetentionPolicy::default());
        assert_eq!(config.retention.run_every, Period::from_secs(3600));
    }

    #[test]
    fn retention_periods_and_vo_periods_override_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[retention]\nissuance = \"1y\"\n\
             [retention.vo.atlas]\nissuance = \"2y\"\nsighting = \"2y\"\n",
        )
        .unwrap();
        let retention = Config::load(Some(&path)).unwrap().retention;
        assert_eq!(retention.run_every, Period::from_secs(3600));
        let policy = retention.policy;
        let period = |text: &str| text.parse::<Period>().unwrap();
        assert_eq!(policy.period(EntryType::Issuance, None), period("1y"));
        assert_eq!(
            policy.period(EntryType::Issuance, Some("cms")),
            period("1y")
        );
        assert_eq!(
            policy.period(EntryType::Issuance, Some("atlas")),
            period("2y")
        );
        assert_eq!(
            policy.period(EntryType::Sighting, Some("atlas")),
            period("2y")
        );
        assert_eq!(
            policy.period(EntryType::Sighting, Some("cms")),
            period("180d")
        );
        assert_eq!(
            policy.period(EntryType::Resolution, Some("atlas")),
            period("5y")
        );
    }

    #[test]
    fn bad_retention_settings_are_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        for (text, why) in [
            (
                "[retention]\nissuance = \"0s\"\n",
                "a period is 1s to 100y, not 0s",
            ),
            (
                "[retention]\nerasure = \"101y\"\n",
                "a period is 1s to 100y, not 101y",
            ),
            (
                "[retention]\nissuance = \"half a year\"\n",
                "`half a year` is not a period",
            ),
            (
                "[retention]\nissuance = 180\n",
                "[retention] issuance = 180: a period is a string such as \"180d\"",
            ),
            (
                "[retention.vo.atlas]\nsighting = 1\n",
                "[retention.vo.atlas] sighting = 1: a period is a string",
            ),
            (
                "[retention]\nissuance = \"1d 2h\"\n",
                "[retention]: ledger-wide, `issuance`: `1d 2h` is not a period",
            ),
            (
                "[retention]\ntokens = \"1d\"\n",
                "`tokens` is no entry type",
            ),
            (
                "[retention]\nrun_every = \"0s\"\n",
                "[retention] run_every = \"0s\": a period of at least 1s",
            ),
            (
                "[retention]\nrun_every = 60\n",
                "[retention] run_every = 60: a period is a string",
            ),
            (
                "[retention]\nresolution = \"30d\"\n",
                "`resolution` (30d) is shorter than",
            ),
            (
                "[retention.vo.belle]\nissuance = \"1y\"\n",
                "VO `belle` is not configured",
            ),
            (
                "[retention.vo.atlas]\nlift = \"6y\"\n",
                "`lift` entries name no VO",
            ),
            (
                "[retention.vo.atlas]\nissuance = \"6y\"\n",
                "VO `atlas`: `resolution` (5y) is shorter than `issuance` (6y)",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = format!("{:#}", Config::load(Some(&path)).unwrap_err());
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[server]\nlisen = \"x\"\n").unwrap();
        assert!(Config::load(Some(&path)).is_err());
        std::fs::write(&path, "[[vo]]\nname = \"Bad VO\"\n").unwrap();
        assert!(Config::load(Some(&path)).is_err());
    }

    #[test]
    fn key_files_default_to_the_data_dir_and_may_be_named_by_absolute_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let load = |text: &str| {
            std::fs::write(&path, text).unwrap();
            Config::load(Some(&path))
        };
        let default = load("").unwrap();
        assert_eq!(default.log_key_path(), Path::new("data/log.key"));
        assert_eq!(
            default.ledger_secret_path(),
            Path::new("data/ledger.secret")
        );
        let named =
            load("[server]\nlog_key_file = \"/k/log.key\"\nledger_secret_file = \"/k/secret\"\n")
                .unwrap();
        assert_eq!(named.log_key_path(), Path::new("/k/log.key"));
        assert_eq!(named.ledger_secret_path(), Path::new("/k/secret"));
        for (refused, why) in [
            (
                "[server]\nlog_key_file = \"keys/log.key\"\n",
                "server.log_key_file must be an absolute path",
            ),
            (
                "[server]\nledger_secret_file = \"secret\"\n",
                "server.ledger_secret_file must be an absolute path",
            ),
            (
                "[server]\nlog_key_file = \"/k/one\"\nledger_secret_file = \"/k/one\"\n",
                "must be two files",
            ),
        ] {
            let error = format!("{:#}", load(refused).unwrap_err());
            assert!(error.contains(why), "{refused}: {error}");
        }
        let mut clash = load("[server]\nledger_secret_file = \"/d/log.key\"\n").unwrap();
        clash.server.data_dir = "/d/".into();
        let error = format!("{:#}", clash.check_file_paths().unwrap_err());
        assert!(error.contains("/d/log.key"), "{error}");
        clash.server.data_dir = "/other".into();
        clash.check_file_paths().unwrap();
    }
}
