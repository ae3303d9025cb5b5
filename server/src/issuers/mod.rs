//! Configured token issuers: their keys (JWKS, cached and refreshed) and JWT verification.

mod jwks;
mod trust;
mod verifier;
mod verify;

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, bail};
use jsonwebtoken::Algorithm;

use crate::config::{Config, IssuerConfig, parse_algorithm};
pub use jwks::KeyCache;
pub use verify::{TokenError, VerifiedToken, verify_operator_token, verify_token};

/// One configured issuer and its key cache.
pub struct Issuer {
    pub config: IssuerConfig,
    pub algorithms: Vec<Algorithm>,
    pub keys: KeyCache,
}

/// Every configured issuer, by `iss`.
#[derive(Clone, Default)]
pub struct Issuers {
    by_iss: HashMap<String, Arc<Issuer>>,
}

impl Issuers {
    /// Builds the registry; JWKS files are read now (a bad file stops the start),
    /// JWKS URLs are fetched on first use.
    pub fn from_config(config: &Config) -> anyhow::Result<Issuers> {
        let mut by_iss = HashMap::new();
        for issuer in &config.issuers {
            let algorithms = issuer
                .algorithms
                .iter()
                .map(|a| parse_algorithm(a))
                .collect::<anyhow::Result<_>>()?;
            let keys = KeyCache::new(issuer).with_context(|| format!("issuer `{}`", issuer.iss))?;
            let entry = Issuer {
                config: issuer.clone(),
                algorithms,
                keys,
            };
            if by_iss.insert(issuer.iss.clone(), Arc::new(entry)).is_some() {
                bail!("issuer `{}` is configured twice", issuer.iss);
            }
        }
        Ok(Issuers { by_iss })
    }

    pub fn get(&self, iss: &str) -> Option<&Arc<Issuer>> {
        self.by_iss.get(iss)
    }
}
