//! TLS for the server: a PEM certificate chain and key (TLS 1.2 and 1.3), re-read on SIGHUP
//! without dropping connections; plain HTTP only on loopback or behind a TLS proxy.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::ServerConfig;
use crate::keys::read_secret_file;

/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections through their handshake, waiting for the HTTP server to take them.
const HANDSHAKEN_QUEUE: usize = 64;

/// The TLS settings of `serve` on the command line, over `[server]` of the configuration.
#[derive(Args, Debug, Default)]
pub struct TlsArgs {
    /// PEM certificate chain to serve over TLS, leaf first [default: server.tls_cert].
    #[arg(long, env = "TOKENLEDGER_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate, readable by its owner only [default:
    /// server.tls_key].
    #[arg(long, env = "TOKENLEDGER_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback address: a TLS proxy in front terminates TLS
    /// [default: server.behind_tls_proxy].
    #[arg(long, env = "TOKENLEDGER_BEHIND_TLS_PROXY")]
    pub behind_tls_proxy: bool,
}

impl TlsArgs {
    /// Lays the flags over the configuration.
    pub fn apply(self, server: &mut ServerConfig) {
        if let Some(cert) = self.tls_cert {
            server.tls_cert = Some(cert);
        }
        if let Some(key) = self.tls_key {
            server.tls_key = Some(key);
        }
        server.behind_tls_proxy |= self.behind_tls_proxy;
    }
}

/// How the server speaks to its clients.
pub enum Transport {
    /// Plain HTTP: on loopback, or behind a TLS proxy.
    Plain,
    /// HTTPS with the certificate the resolver holds.
    Tls(Arc<ReloadingCertificate>),
}

impl Transport {
    /// Decides from `[server]`, loading the certificate and key now: TLS when both are
    /// configured, plain HTTP on a loopback address or behind a TLS proxy, else a refusal.
    pub fn for_server(server: &ServerConfig) -> anyhow::Result<Transport> {
        match (&server.tls_cert, &server.tls_key) {
            (Some(cert), Some(key)) => Ok(Transport::Tls(Arc::new(ReloadingCertificate::load(
                cert, key,
            )?))),
            (None, None) => {
                let ip = server.listen.ip().to_canonical();
                if ip.is_loopback() || server.behind_tls_proxy {
                    Ok(Transport::Plain)
                } else {
                    bail!(
                        "refusing to serve plain HTTP on {}: bearer secrets would cross the \
                         network in clear; set server.tls_cert and server.tls_key (--tls-cert, \
                         --tls-key), or server.behind_tls_proxy = true (--behind-tls-proxy) when \
                         a TLS proxy in front terminates TLS",
                        server.listen
                    )
                }
            }
            _ => bail!("server.tls_cert and server.tls_key go together: set both (TLS) or neither"),
        }
    }

    /// From now on, every SIGHUP re-reads the certificate (plain HTTP: logs that there is
    /// none). The handler is installed before this returns: a SIGHUP arriving before it
    /// would end the process without draining the sequencer.
    pub fn reload_on_sighup(&self) -> anyhow::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        let certificate = match self {
            Transport::Plain => None,
            Transport::Tls(certificate) => Some(certificate.clone()),
        };
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match &certificate {
                    Some(certificate) => certificate.reload(),
                    None => tracing::info!("SIGHUP: plain HTTP, no TLS certificate to re-read"),
                }
            }
        });
        Ok(())
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        match self {
            Transport::Plain => "http",
            Transport::Tls(_) => "https",
        }
    }
}

/// The served certificate and key, swapped whole when the files are read again. A handshake
/// takes the pair current at its start; established connections keep theirs.
#[derive(Debug)]
pub struct ReloadingCertificate {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadingCertificate {
    /// Reads the certificate chain and key; refuses a key file that group or others may read,
    /// and a key that does not belong to the certificate.
    pub fn load(cert_path: &Path, key_path: &Path) -> anyhow::Result<ReloadingCertificate> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certified = read_certified_key(cert_path, key_path, &provider)?;
        tracing::info!(
            cert = %cert_path.display(),
            sha256 = %fingerprint(&certified),
            "TLS certificate loaded"
        );
        Ok(ReloadingCertificate {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            provider,
            current: RwLock::new(Arc::new(certified)),
        })
    }

    /// Reads the files again; on any error the current certificate stays and the reason is
    /// logged.
    pub fn reload(&self) {
        match read_certified_key(&self.cert_path, &self.key_path, &self.provider) {
            Ok(certified) => {
                tracing::info!(
                    cert = %self.cert_path.display(),
                    sha256 = %fingerprint(&certified),
                    "TLS certificate re-read"
                );
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(certified);
            }
            Err(e) => tracing::error!(
                error = format!("{e:#}"),
                "TLS certificate not re-read, keeping the current one"
            ),
        }
    }

    /// Accepts TLS connections on `listener` with this certificate.
    pub fn listener(self: &Arc<Self>, listener: TcpListener) -> anyhow::Result<TlsListener> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .context("TLS 1.2 and 1.3")?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let local_addr = listener.local_addr()?;
        let (handshaken, queue) = mpsc::channel(HANDSHAKEN_QUEUE);
        let acceptor = tokio::spawn(accept_loop(
            listener,
            TlsAcceptor::from(Arc::new(config)),
            handshaken,
        ));
        Ok(TlsListener {
            local_addr,
            queue,
            acceptor,
        })
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// Reads a PEM chain (leaf first) and its PEM key (PKCS#8, PKCS#1 or SEC1, unencrypted).
fn read_certified_key(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> anyhow::Result<CertifiedKey> {
    let cert_pem = std::fs::read(cert_path)
        .with_context(|| format!("reading the TLS certificate {}", cert_path.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", cert_path.display()))?;
    if chain.is_empty() {
        bail!("{} holds no PEM certificate", cert_path.display());
    }
    // The key's own parse errors are not shown: they could quote its bytes.
    let key_pem = read_secret_file(key_path)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|_| {
        anyhow::anyhow!(
            "{} holds no unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1)",
            key_path.display()
        )
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        anyhow::anyhow!(
            "the key {} does not go with the certificate {}: {e}",
            key_path.display(),
            cert_path.display()
        )
    })
}

/// SHA-256 of the leaf certificate, in hex (what `openssl x509 -fingerprint -sha256` shows).
fn fingerprint(certified: &CertifiedKey) -> String {
    certified
        .cert
        .first()
        .map(|leaf| hex::encode(Sha256::digest(leaf)))
        .unwrap_or_default()
}

/// TLS connections, handed to the HTTP server once their handshake is done. Handshakes run
/// in tasks of their own, so a slow client delays no other.
pub struct TlsListener {
    local_addr: SocketAddr,
    queue: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    acceptor: JoinHandle<()>,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.queue.recv().await {
            Some(connection) => connection,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

impl Drop for TlsListener {
    /// Stops accepting: the socket closes with the accept loop.
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handshaken: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of descriptors or memory: wait instead of spinning, as axum does.
                tracing::error!(error = %e, "accepting a connection");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let (acceptor, handshaken) = (acceptor.clone(), handshaken.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = handshaken.send((stream, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// Errors of one connection, not of the listening socket.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn server(listen: &str) -> ServerConfig {
        let mut server = Config::load(None).unwrap().server;
        server.listen = listen.parse().unwrap();
        server
    }

    #[test]
    fn plain_http_only_on_loopback_or_behind_a_proxy() {
        for listen in [
            "127.0.0.1:8080",
            "127.3.4.5:0",
            "[::1]:8080",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert!(
                matches!(Transport::for_server(&server(listen)), Ok(Transport::Plain)),
                "{listen}"
            );
        }
        for listen in ["0.0.0.0:8080", "[::]:8080", "192.0.2.7:443"] {
            let err = Transport::for_server(&server(listen)).err().unwrap();
            assert_eq!(
                err.to_string(),
                format!(
                    "refusing to serve plain HTTP on {listen}: bearer secrets would cross the \
                     network in clear; set server.tls_cert and server.tls_key (--tls-cert, \
                     --tls-key), or server.behind_tls_proxy = true (--behind-tls-proxy) when a \
                     TLS proxy in front terminates TLS"
                )
            );
            let mut proxied = server(listen);
            proxied.behind_tls_proxy = true;
            assert!(matches!(
                Transport::for_server(&proxied),
                Ok(Transport::Plain)
            ));
        }
    }

    #[test]
    fn certificate_and_key_go_together() {
        let mut half = server("0.0.0.0:443");
        half.tls_cert = Some("cert.pem".into());
        let err = Transport::for_server(&half).err().unwrap();
        assert!(err.to_string().contains("go together"), "{err}");
        let mut half = server("127.0.0.1:443");
        half.tls_key = Some("key.pem".into());
        assert!(Transport::for_server(&half).is_err());
    }

    #[test]
    fn flags_are_laid_over_the_configuration() {
        let mut configured = server("0.0.0.0:443");
        configured.tls_cert = Some("file.pem".into());
        configured.behind_tls_proxy = true;
        TlsArgs {
            tls_cert: None,
            tls_key: Some("flag.key".into()),
            behind_tls_proxy: false,
        }
        .apply(&mut configured);
        assert_eq!(configured.tls_cert, Some("file.pem".into()));
        assert_eq!(configured.tls_key, Some("flag.key".into()));
        assert!(
            configured.behind_tls_proxy,
            "a flag left off clears nothing"
        );
    }

    #[test]
    fn missing_and_unreadable_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let err = ReloadingCertificate::load(&cert, &key).unwrap_err();
        assert!(format!("{err:#}").contains("cert.pem"), "{err:#}");
        std::fs::write(&cert, "not a certificate\n").unwrap();
        let err = ReloadingCertificate::load(&cert, &key).unwrap_err();
        assert!(
            format!("{err:#}").contains("holds no PEM certificate"),
            "{err:#}"
        );
    }
}
