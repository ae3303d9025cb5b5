//! Whom the CLI trusts over https: the system's store, a PEM bundle (`--ca-file`) and a CA
//! directory as grid hosts have (`X509_CERT_DIR`, else /etc/grid-security/certificates); and
//! TLS failures put in words.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::CertificateError;
use rustls_native_certs::{CertificateResult, load_certs_from_paths, load_native_certs};
use ureq::tls::{Certificate, RootCerts, TlsConfig};

use crate::exit::Failure;

/// Where the grid keeps its trusted CAs (IGTF), used when `X509_CERT_DIR` is not set.
pub const GRID_CA_DIR: &str = "/etc/grid-security/certificates";

/// A file or directory of trusted CAs, and what named it (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustPath {
    pub path: PathBuf,
    pub named_by: String,
}

/// The trust anchors' sources besides the system's store.
#[derive(Debug, Clone, Default)]
pub struct TrustSources {
    /// A PEM bundle: every certificate in it is trusted.
    pub ca_file: Option<TrustPath>,
    /// A CA directory: every PEM certificate in its files (OpenSSL's hashed `<hash>.0` names
    /// as `openssl rehash` makes them, or any other names).
    pub ca_dir: Option<TrustPath>,
}

impl TrustSources {
    /// Reads the system's store, the CA file and the CA directory. A CA file or directory
    /// that cannot be read is an error; the system's store is read as far as it goes.
    pub fn load(&self) -> Result<TrustAnchors, Failure> {
        let mut certificates = Vec::new();
        let mut described = vec!["the system's store".to_string()];
        let system = load_native_certs();
        for e in &system.errors {
            eprintln!("tokenledger: warning: reading the system's trust store: {e}");
        }
        certificates.extend(system.certs);
        if let Some(file) = &self.ca_file {
            let loaded = checked(load_certs_from_paths(Some(&file.path), None), file)?;
            if loaded.is_empty() {
                return Err(Failure::Error(format!(
                    "the CA file {} (from {}) holds no PEM certificate",
                    file.path.display(),
                    file.named_by
                )));
            }
            certificates.extend(loaded);
            described.push(format!("{} ({})", file.path.display(), file.named_by));
        }
        if let Some(dir) = &self.ca_dir {
            certificates.extend(checked(load_certs_from_paths(None, Some(&dir.path)), dir)?);
            described.push(format!(
                "the CA directory {} ({})",
                dir.path.display(),
                dir.named_by
            ));
        }
        Ok(TrustAnchors {
            certificates: certificates
                .iter()
                .map(|der| Certificate::from_der(der).to_owned())
                .collect(),
            described: described.join(", "),
        })
    }
}

/// The certificates read, or the first error, naming the file or directory.
fn checked(
    result: CertificateResult,
    source: &TrustPath,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, Failure> {
    match result.errors.first() {
        Some(e) => Err(Failure::Error(format!(
            "reading the trusted CAs of {} (from {}): {e}",
            source.path.display(),
            source.named_by
        ))),
        None => Ok(result.certs),
    }
}

/// The certificates a client trusts as roots; none by default (plain http needs none).
#[derive(Debug, Clone, Default)]
pub struct TrustAnchors {
    certificates: Vec<Certificate<'static>>,
    described: String,
}

impl TrustAnchors {
    /// ureq's TLS settings: exactly these roots (TLS 1.2 and 1.3, ureq's defaults).
    pub fn tls_config(&self) -> TlsConfig {
        TlsConfig::builder()
            .root_certs(RootCerts::Specific(Arc::new(self.certificates.clone())))
            .build()
    }

    /// Why a request failed, in words, when TLS was the reason; `None` for any other failure.
    pub fn explain(&self, e: &ureq::Error) -> Option<String> {
        let tls = match e {
            ureq::Error::Rustls(tls) => tls,
            ureq::Error::Io(io) => io.get_ref()?.downcast_ref::<rustls::Error>()?,
            _ => return None,
        };
        Some(match tls {
            rustls::Error::InvalidCertificate(problem) => {
                let trusted = match self.described.as_str() {
                    "" => "no CA",
                    described => described,
                };
                format!(
                    "its certificate was refused: {} ({tls}); trusted: {trusted}",
                    in_words(problem)
                )
            }
            other => format!("the TLS handshake failed: {other}"),
        })
    }
}

fn in_words(problem: &CertificateError) -> &'static str {
    match problem {
        CertificateError::UnknownIssuer => "it is not signed by a CA this client trusts",
        CertificateError::BadSignature => {
            "it is not signed by the trusted CA of its issuer's name (another CA of that name?)"
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => "it has expired",
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "it is not valid yet"
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "it does not name this host"
        }
        CertificateError::Revoked => "it is revoked",
        _ => "it did not verify",
    }
}

/// The CA directory: `X509_CERT_DIR` when set, else [`GRID_CA_DIR`] (`grid_default`) when it
/// exists.
pub fn ca_dir(x509_cert_dir: Option<&str>, grid_default: &Path) -> Option<TrustPath> {
    match x509_cert_dir {
        Some(dir) => Some(TrustPath {
            path: PathBuf::from(dir),
            named_by: "X509_CERT_DIR".into(),
        }),
        None => grid_default.is_dir().then(|| TrustPath {
            path: grid_default.to_path_buf(),
            named_by: "the grid's default".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(path: &Path, by: &str) -> TrustPath {
        TrustPath {
            path: path.to_path_buf(),
            named_by: by.into(),
        }
    }

    #[test]
    fn the_ca_directory_is_x509_cert_dir_else_the_grid_default_when_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        let grid = dir.path().join("certificates");
        assert_eq!(ca_dir(None, &grid), None);
        std::fs::create_dir(&grid).unwrap();
        assert_eq!(
            ca_dir(None, &grid),
            Some(named(&grid, "the grid's default"))
        );
        assert_eq!(
            ca_dir(Some("/x509"), &grid),
            Some(named(Path::new("/x509"), "X509_CERT_DIR"))
        );
    }

    #[test]
    fn unreadable_or_empty_ca_files_are_errors_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let sources = TrustSources {
            ca_file: Some(named(&missing, "--ca-file")),
            ca_dir: None,
        };
        let e = sources.load().unwrap_err();
        assert_eq!(e.code(), 2);
        assert!(
            e.to_string().contains("missing.pem (from --ca-file)"),
            "{e}"
        );

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let sources = TrustSources {
            ca_file: Some(named(&empty, "$TOKENLEDGER_CA_FILE")),
            ca_dir: None,
        };
        let e = sources.load().unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "the CA file {} (from $TOKENLEDGER_CA_FILE) holds no PEM certificate",
                empty.display()
            )
        );

        let sources = TrustSources {
            ca_file: None,
            ca_dir: Some(named(&dir.path().join("nodir"), "X509_CERT_DIR")),
        };
        let e = sources.load().unwrap_err();
        assert!(e.to_string().contains("nodir (from X509_CERT_DIR)"), "{e}");
    }

    #[test]
    fn certificate_failures_are_put_in_words_with_what_is_trusted() {
        let anchors = TrustAnchors {
            certificates: Vec::new(),
            described: "the system's store, ca.pem (--ca-file)".into(),
        };
        let unknown = ureq::Error::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        ));
        assert_eq!(
            anchors.explain(&unknown).unwrap(),
            "its certificate was refused: it is not signed by a CA this client trusts \
             (invalid peer certificate: UnknownIssuer); trusted: the system's store, ca.pem \
             (--ca-file)"
        );
        let expired =
            ureq::Error::Rustls(rustls::Error::InvalidCertificate(CertificateError::Expired));
        assert!(
            anchors
                .explain(&expired)
                .unwrap()
                .starts_with("its certificate was refused: it has expired")
        );
        let handshake = ureq::Error::Rustls(rustls::Error::HandshakeNotComplete);
        assert!(
            anchors
                .explain(&handshake)
                .unwrap()
                .starts_with("the TLS handshake failed: ")
        );
        assert_eq!(anchors.explain(&ureq::Error::ConnectionFailed), None);
        let refused = ureq::Error::Io(std::io::ErrorKind::ConnectionRefused.into());
        assert_eq!(anchors.explain(&refused), None);
    }
}
