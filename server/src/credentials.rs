//! API credentials: random `tlk_` secrets, stored only as SHA-256 hashes, each bound to a role.

use data_encoding::BASE32_NOPAD;
use sha2::{Digest, Sha256};
use tokenledger_core::access::Binding;

use crate::clock::Clock;
use crate::keys::random_bytes;
pub use crate::store::CredentialInfo;
use crate::store::{LedgerReader, Registry, Revoked, StoreError};

/// Every credential secret starts with this, so scanners can spot a leaked one.
pub const SECRET_PREFIX: &str = "tlk_";

/// An authenticated caller: `credential:<id>` for an API credential, `oidc:<iss>#<sub>` for
/// an operator's token; and what it may do.
#[derive(Clone, Debug)]
pub struct Principal {
    pub id: String,
    pub binding: Binding,
}

/// Creates a credential at the time of `clock`; returns its id and the secret, which is shown
/// once and never stored.
pub async fn create(
    registry: &dyn Registry,
    clock: &dyn Clock,
    binding: &Binding,
    label: Option<&str>,
) -> anyhow::Result<(String, String)> {
    let id = format!(
        "c-{}",
        BASE32_NOPAD.encode(&random_bytes::<5>()?).to_lowercase()
    );
    let secret = format!(
        "{SECRET_PREFIX}{}",
        BASE32_NOPAD.encode(&random_bytes::<32>()?).to_lowercase()
    );
    let credential = CredentialInfo {
        id: id.clone(),
        binding: binding.clone(),
        label: label.map(String::from),
        created_at: clock.now_micros(),
        revoked_at: None,
    };
    registry
        .add_credential(&credential, &secret_hash(&secret))
        .await?;
    Ok((id, secret))
}

/// Every credential, oldest first.
pub async fn list(reader: &dyn LedgerReader) -> anyhow::Result<Vec<CredentialInfo>> {
    Ok(reader.credentials().await?)
}

/// Revokes a credential at the time of `clock`; `None` if there is no such active
/// credential. Returns once no server of the ledger accepts it.
pub async fn revoke(
    registry: &dyn Registry,
    clock: &dyn Clock,
    id: &str,
) -> anyhow::Result<Option<Revoked>> {
    Ok(registry.revoke_credential(id, clock.now_micros()).await?)
}

/// The active credential whose secret this is, if any.
pub async fn authenticate(
    reader: &dyn LedgerReader,
    secret: &str,
) -> Result<Option<Principal>, StoreError> {
    if !secret.starts_with(SECRET_PREFIX) {
        return Ok(None);
    }
    let found = reader.active_credential(&secret_hash(secret)).await?;
    Ok(found.map(|info| Principal {
        id: format!("credential:{}", info.id),
        binding: info.binding,
    }))
}

fn secret_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}
