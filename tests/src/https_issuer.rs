//! An OpenID provider's public face over https for the real-daemon tests: the discovery
//! document and the JWKS it names, served by rustls on 127.0.0.1 with a test CA's certificate,
//! offering the P-521 key exchange that A-REX 6.17's https client insists on.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::agreement;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::pki::Leaf;

/// An https server on 127.0.0.1 with fixed JSON documents per path, serving until the test
/// process ends. It answers both request forms, `GET /path` (libcurl) and ARC's absolute
/// `GET https://host:port/path`, and records what was asked.
pub struct HttpsIssuer {
    /// `https://127.0.0.1:PORT`
    pub base: String,
    routes: Arc<Mutex<HashMap<String, String>>>,
    asked: Arc<Mutex<Vec<String>>>,
}

impl HttpsIssuer {
    /// Starts serving (nothing yet) with `leaf` as the server certificate.
    pub fn start(leaf: &Leaf) -> HttpsIssuer {
        let mut provider = rustls::crypto::ring::default_provider();
        provider.kx_groups.push(&P521);
        let provider = Arc::new(provider);
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_der.clone()));
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(leaf.cert_der.clone())], key)
            .expect("the issuer's certificate and key");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the https issuer");
        let base = format!("https://{}", listener.local_addr().expect("addr"));
        let routes: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let asked: Arc<Mutex<Vec<String>>> = Arc::default();
        let (routes2, asked2) = (routes.clone(), asked.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (config, routes, asked) = (config.clone(), routes2.clone(), asked2.clone());
                std::thread::spawn(move || {
                    let _ = serve_one(stream, config, &routes, &asked);
                });
            }
        });
        HttpsIssuer {
            base,
            routes,
            asked,
        }
    }

    /// Publishes the keys of the issuer `iss` (a URL under [`HttpsIssuer::base`]): its
    /// discovery document at `<iss without a trailing slash>/.well-known/openid-configuration`
    /// naming `jwks_path` as its `jwks_uri`, and `jwks` at `jwks_path`.
    pub fn publish_keys(&self, iss: &str, jwks_path: &str, jwks: String) {
        let issuer_path = iss
            .strip_prefix(&self.base)
            .unwrap_or_else(|| panic!("{iss} is not served by {}", self.base))
            .trim_end_matches('/');
        let discovery = serde_json::json!({
            "issuer": iss,
            "jwks_uri": format!("{}{jwks_path}", self.base),
        });
        let mut routes = self.routes.lock().expect("routes");
        routes.insert(
            format!("{issuer_path}/.well-known/openid-configuration"),
            discovery.to_string(),
        );
        routes.insert(jwks_path.to_string(), jwks);
    }

    /// The paths asked so far, in order.
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().expect("asked").clone()
    }
}

/// ECDHE on secp521r1, which rustls lacks: A-REX 6.17's https client (its fetch of issuer
/// keys) offers no other group (its `tlscurve` default), so an issuer without P-521 fails the
/// handshake and every token is refused.
#[derive(Debug)]
struct P521Kx;

static P521: P521Kx = P521Kx;

impl rustls::crypto::SupportedKxGroup for P521Kx {
    fn start(&self) -> Result<Box<dyn rustls::crypto::ActiveKeyExchange>, rustls::Error> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let private = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P521, &rng)
            .map_err(|_| rustls::Error::FailedToGetRandomBytes)?;
        let public = private
            .compute_public_key()
            .map_err(|_| rustls::Error::General("P-521 public key".into()))?
            .as_ref()
            .to_vec();
        Ok(Box::new(P521Exchange { private, public }))
    }

    fn name(&self) -> rustls::NamedGroup {
        rustls::NamedGroup::secp521r1
    }
}

struct P521Exchange {
    private: agreement::EphemeralPrivateKey,
    public: Vec<u8>,
}

impl rustls::crypto::ActiveKeyExchange for P521Exchange {
    fn complete(
        self: Box<Self>,
        peer: &[u8],
    ) -> Result<rustls::crypto::SharedSecret, rustls::Error> {
        agreement::agree_ephemeral(
            self.private,
            agreement::UnparsedPublicKey::new(&agreement::ECDH_P521, peer),
            rustls::Error::from(rustls::PeerMisbehaved::InvalidKeyShare),
            |secret| Ok(rustls::crypto::SharedSecret::from(secret)),
        )
    }

    fn pub_key(&self) -> &[u8] {
        &self.public
    }

    fn group(&self) -> rustls::NamedGroup {
        rustls::NamedGroup::secp521r1
    }
}

/// One connection: one request, one answer, then close.
fn serve_one(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    routes: &Mutex<HashMap<String, String>>,
    asked: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(20)))?;
    let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut head = Vec::new();
    {
        let mut reader = BufReader::new(&mut tls);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
                break;
            }
            head.push(line);
        }
    }
    let target = head
        .first()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("/")
        .to_string();
    // ARC's client sends the absolute form: keep the path only.
    let path = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]).to_string(),
        None => target,
    };
    let path = path.split('?').next().unwrap_or("/").to_string();
    asked.lock().expect("asked").push(path.clone());
    let body = routes.lock().expect("routes").get(&path).cloned();
    let (status, body) = match body {
        Some(body) => ("200 OK", body),
        None => ("404 Not Found", "{}".to_string()),
    };
    write!(
        tls,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    tls.conn.send_close_notify();
    tls.flush()
}
