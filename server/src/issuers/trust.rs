//! Whom the server trusts when it fetches an issuer's JWKS over https: the system's store,
//! the grid's CA directory (`X509_CERT_DIR`, else /etc/grid-security/certificates where it
//! exists: the IGTF CAs an IAM's certificate often chains to) and the issuer's own
//! `ca_file`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::bail;
use rustls_native_certs::{CertificateResult, load_certs_from_paths, load_native_certs};
use ureq::tls::{Certificate, RootCerts, TlsConfig};

/// Where grid hosts keep their trusted CAs, used when `X509_CERT_DIR` is not set.
const GRID_CA_DIR: &str = "/etc/grid-security/certificates";

/// The CA directory to trust: `X509_CERT_DIR` when set (it must then exist), else
/// [`GRID_CA_DIR`] when it exists.
fn grid_ca_dir() -> anyhow::Result<Option<PathBuf>> {
    match std::env::var_os("X509_CERT_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if !dir.is_dir() {
                bail!(
                    "X509_CERT_DIR names {}, which is not a directory",
                    dir.display()
                );
            }
            Ok(Some(dir))
        }
        _ => Ok(Some(PathBuf::from(GRID_CA_DIR)).filter(|d| d.is_dir())),
    }
}

/// The certificates of `result`, or its first error naming `what`.
fn loaded(
    result: CertificateResult,
    what: &str,
) -> anyhow::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    if let Some(e) = result.errors.first() {
        bail!("reading the trusted CAs of {what}: {e}");
    }
    Ok(result.certs)
}

/// ureq's TLS settings for one issuer's JWKS fetches: TLS 1.2 and 1.3 with the roots of the
/// system's store, the grid CA directory and `ca_file` (a PEM bundle, which must hold at
/// least one certificate). A CA file or directory that cannot be read stops the start; the
/// system's store is read as far as it goes.
pub fn jwks_tls(ca_file: Option<&Path>) -> anyhow::Result<TlsConfig> {
    let system = load_native_certs();
    for e in &system.errors {
        tracing::warn!(error = %e, "reading the system's trust store");
    }
    let mut roots = system.certs;
    if let Some(dir) = grid_ca_dir()? {
        let what = format!("the CA directory {}", dir.display());
        roots.extend(loaded(load_certs_from_paths(None, Some(&dir)), &what)?);
    }
    if let Some(file) = ca_file {
        let what = format!("ca_file {}", file.display());
        let certs = loaded(load_certs_from_paths(Some(file), None), &what)?;
        if certs.is_empty() {
            bail!("{what} holds no PEM certificate");
        }
        roots.extend(certs);
    }
    let roots: Vec<Certificate<'static>> = roots
        .iter()
        .map(|der| Certificate::from_der(der).to_owned())
        .collect();
    Ok(TlsConfig::builder()
        .root_certs(RootCerts::Specific(Arc::new(roots)))
        .build())
}
