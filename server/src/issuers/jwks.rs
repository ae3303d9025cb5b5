//! An issuer's signing keys: parsed from a JWKS (file or URL), cached by `kid`, fetched again
//! when stale or when a token names a key we do not have (rate-limited).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::Jwk;
use serde_json::Value;

use super::verifier::KeyVerifier;
use crate::config::IssuerConfig;

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: u64 = 1 << 20;

#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, Arc<KeyVerifier>>,
    without_kid: Vec<Arc<KeyVerifier>>,
}

enum Source {
    File(PathBuf),
    /// The URL and the agent that fetches it (its trust: [`super::trust::jwks_tls`]).
    Url(String, ureq::Agent),
}

/// The cached keys of one issuer.
pub struct KeyCache {
    source: Source,
    refresh: Duration,
    min_refetch: Duration,
    keys: RwLock<Arc<KeySet>>,
    fetched_at: Mutex<Option<Instant>>,
}

impl KeyCache {
    /// Reads a JWKS file at once; a URL is fetched on first use.
    pub fn new(config: &IssuerConfig) -> anyhow::Result<KeyCache> {
        let source = match (&config.jwks_file, &config.jwks_url) {
            (Some(path), _) => Source::File(path.clone()),
            (None, Some(url)) => Source::Url(url.clone(), agent(config)?),
            (None, None) => bail!("no JWKS source"),
        };
        let cache = KeyCache {
            source,
            refresh: Duration::from_secs(config.jwks_refresh_secs),
            min_refetch: Duration::from_secs(config.jwks_min_refetch_secs),
            keys: RwLock::new(Arc::new(KeySet::default())),
            fetched_at: Mutex::new(None),
        };
        if matches!(cache.source, Source::File(_)) {
            cache.reload()?;
        }
        Ok(cache)
    }

    /// Keys that may have signed a token with this `kid` (or, without one, every key
    /// without a kid plus all keys). Blocking: may read the file or fetch the URL.
    pub fn candidates(&self, kid: Option<&str>) -> Vec<Arc<KeyVerifier>> {
        if self.is_stale() {
            self.reload_logged();
        }
        let found = self.lookup(kid);
        if !found.is_empty() || !self.may_refetch() {
            return found;
        }
        self.reload_logged();
        self.lookup(kid)
    }

    fn lookup(&self, kid: Option<&str>) -> Vec<Arc<KeyVerifier>> {
        let keys = self.keys.read().expect("key cache lock").clone();
        match kid {
            Some(kid) => keys.by_kid.get(kid).cloned().into_iter().collect(),
            None => keys
                .without_kid
                .iter()
                .chain(keys.by_kid.values())
                .cloned()
                .collect(),
        }
    }

    fn is_stale(&self) -> bool {
        match *self.fetched_at.lock().expect("key cache lock") {
            None => true,
            Some(at) => matches!(self.source, Source::Url(..)) && at.elapsed() >= self.refresh,
        }
    }

    fn may_refetch(&self) -> bool {
        match *self.fetched_at.lock().expect("key cache lock") {
            None => true,
            Some(at) => at.elapsed() >= self.min_refetch,
        }
    }

    fn reload_logged(&self) {
        if let Err(e) = self.reload() {
            tracing::warn!(error = %format!("{e:#}"), "could not refresh issuer keys; keeping the cached ones");
        }
    }

    /// Reads the source and replaces the cached keys (the old keys stay on failure).
    fn reload(&self) -> anyhow::Result<()> {
        *self.fetched_at.lock().expect("key cache lock") = Some(Instant::now());
        let text = match &self.source {
            Source::File(path) => std::fs::read_to_string(path)
                .with_context(|| format!("reading JWKS {}", path.display()))?,
            Source::Url(url, agent) => fetch(agent, url)?,
        };
        let keys = parse_jwks(&text)?;
        *self.keys.write().expect("key cache lock") = Arc::new(keys);
        Ok(())
    }
}

/// The agent of an issuer's JWKS fetches: bounded in time, trusting what
/// [`super::trust::jwks_tls`] says.
fn agent(config: &IssuerConfig) -> anyhow::Result<ureq::Agent> {
    let tls = super::trust::jwks_tls(config.ca_file.as_deref())?;
    Ok(ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .tls_config(tls)
        .build()
        .into())
}

fn fetch(agent: &ureq::Agent, url: &str) -> anyhow::Result<String> {
    let mut response = agent
        .get(url)
        .call()
        .with_context(|| format!("fetching JWKS {url}"))?;
    response
        .body_mut()
        .with_config()
        .limit(MAX_JWKS_BYTES)
        .read_to_string()
        .with_context(|| format!("reading JWKS {url}"))
}

/// Parses a JWKS; keys that are not usable signature keys are skipped, none at all is an error.
fn parse_jwks(text: &str) -> anyhow::Result<KeySet> {
    let doc: Value = serde_json::from_str(text).context("JWKS is not JSON")?;
    let Some(items) = doc.get("keys").and_then(Value::as_array) else {
        bail!("JWKS has no `keys` array");
    };
    let mut set = KeySet::default();
    for item in items {
        let symmetric = item.get("kty").and_then(Value::as_str) == Some("oct");
        if symmetric
            || item
                .get("use")
                .and_then(Value::as_str)
                .is_some_and(|u| u != "sig")
        {
            continue;
        }
        let Ok(jwk) = serde_json::from_value::<Jwk>(item.clone()) else {
            continue;
        };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        let pinned = jwk
            .common
            .key_algorithm
            .and_then(|a| a.to_string().parse().ok());
        let Some(key) = KeyVerifier::new(&key, pinned) else {
            continue;
        };
        let key = Arc::new(key);
        match jwk.common.key_id {
            Some(kid) => {
                set.by_kid.insert(kid, key);
            }
            None => set.without_kid.push(key),
        }
    }
    if set.by_kid.is_empty() && set.without_kid.is_empty() {
        bail!("JWKS holds no usable signature key");
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EC_JWK: &str = r#"{"kty":"EC","crv":"P-256","kid":"ec1","alg":"ES256","use":"sig",
        "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;

    #[test]
    fn keeps_signature_keys_and_skips_the_rest() {
        let text = format!(
            r#"{{"keys":[{EC_JWK},{{"kty":"oct","k":"c2VjcmV0","kid":"hmac"}},{{"kty":"RSA","use":"enc","kid":"e","n":"AQAB","e":"AQAB"}}]}}"#
        );
        let set = parse_jwks(&text).unwrap();
        assert_eq!(set.by_kid.len(), 1, "only the EC signature key");
        assert!(set.without_kid.is_empty());
    }

    #[test]
    fn refuses_documents_without_keys() {
        assert!(parse_jwks("[]").is_err());
        assert!(parse_jwks(r#"{"keys":[]}"#).is_err());
        assert!(parse_jwks("not json").is_err());
    }
}
