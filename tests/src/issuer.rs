//! A test token issuer with real keys (RSA 2048, P-256, Ed25519), its JWKS (as a file or
//! served over HTTP on loopback), and signed JWTs, so tests ingest real tokens.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// One signing key of the issuer.
struct Key {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Jwk,
}

/// A token issuer for tests.
pub struct TestIssuer {
    pub iss: String,
    keys: Vec<Key>,
}

impl TestIssuer {
    /// An issuer with one key of each kind: kids `rsa-1` (RS256), `ec-1` (ES256), `ed-1` (EdDSA).
    pub fn new(iss: &str) -> TestIssuer {
        TestIssuer {
            iss: iss.to_string(),
            keys: vec![
                new_key("rsa-1", Algorithm::RS256),
                new_key("ec-1", Algorithm::ES256),
                new_key("ed-1", Algorithm::EdDSA),
            ],
        }
    }

    /// Adds a key (e.g. for a rotation test); it is in the JWKS from then on.
    pub fn add_key(&mut self, kid: &str, alg: Algorithm) {
        self.keys.push(new_key(kid, alg));
    }

    /// The public JWKS of every key.
    pub fn jwks(&self) -> String {
        let set = JwkSet {
            keys: self.keys.iter().map(|k| k.jwk.clone()).collect(),
        };
        serde_json::to_string(&set).expect("serializable JWKS")
    }

    pub fn write_jwks(&self, path: &Path) {
        std::fs::write(path, self.jwks()).expect("write JWKS");
    }

    /// Signs `claims` with the first key of `alg`, naming its kid.
    pub fn mint(&self, alg: Algorithm, claims: &Value) -> String {
        let key = self.key(alg);
        self.mint_with(alg, Some(&key.kid), &key.encoding, claims)
    }

    /// Signs with the key named `kid`.
    pub fn mint_by_kid(&self, kid: &str, claims: &Value) -> String {
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .expect("a key with that kid");
        self.mint_with(key.alg, Some(kid), &key.encoding, claims)
    }

    /// Signs with the key of `alg` but puts `kid` (or none) in the header.
    pub fn mint_with_kid(&self, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
        self.mint_with(alg, kid, &self.key(alg).encoding, claims)
    }

    /// Signs a hand-written header and payload, sent exactly as written (a repeated member
    /// name, `crit`, a missing `exp`: what no JWT library would produce), with the key of `alg`.
    pub fn mint_raw(&self, alg: Algorithm, header: &str, payload: &str) -> String {
        use base64::Engine;
        let b64 = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
        let input = format!("{}.{}", b64(header), b64(payload));
        let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &self.key(alg).encoding, alg)
            .expect("sign JWT");
        format!("{input}.{signature}")
    }

    /// The header [`TestIssuer::mint`] writes for `alg`, as JSON text.
    pub fn header_json(&self, alg: Algorithm) -> String {
        format!(
            r#"{{"typ":"JWT","alg":"{alg:?}","kid":"{}"}}"#,
            self.key(alg).kid
        )
    }

    fn mint_with(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
        key: &EncodingKey,
        claims: &Value,
    ) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_string);
        jsonwebtoken::encode(&header, claims, key).expect("sign JWT")
    }

    fn key(&self, alg: Algorithm) -> &Key {
        self.keys
            .iter()
            .find(|k| k.alg == alg)
            .expect("a key of that algorithm")
    }

    /// WLCG-profile claims of a fresh access token: valid for an hour from now.
    pub fn claims(&self, jti: &str, sub: &str) -> Value {
        let now = now_secs();
        json!({
            "iss": self.iss, "jti": jti, "sub": sub, "client_id": "test-client",
            "scope": "storage.read:/ compute.create", "wlcg.ver": "1.0",
            "aud": "https://wlcg.cern.ch/jwt/v1/any", "iat": now, "nbf": now, "exp": now + 3600,
        })
    }

    /// Writes the JWKS to `jwks` and returns the `[[issuer]]` block that reads it from there.
    pub fn file_config_block(&self, jwks: &Path, vo_rules: &str) -> String {
        self.write_jwks(jwks);
        self.config_block(&format!("jwks_file = \"{}\"", jwks.display()), vo_rules)
    }

    /// A TOML `[[issuer]]` block for the server configuration.
    pub fn config_block(&self, jwks_source: &str, vo_rules: &str) -> String {
        format!(
            "[[issuer]]\niss = \"{}\"\n{jwks_source}\nalgorithms = [\"RS256\", \"ES256\", \"EdDSA\"]\nvo_rules = {vo_rules}\n",
            self.iss
        )
    }
}

/// Seconds since 1970.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn new_key(kid: &str, alg: Algorithm) -> Key {
    let encoding = match alg {
        Algorithm::RS256 => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .expect("RSA key");
            let pkcs8 = pair.as_der().expect("PKCS#8");
            EncodingKey::from_rsa_der(pkcs1_from_pkcs8(pkcs8.as_ref()))
        }
        Algorithm::ES256 => {
            let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("EC key");
            EncodingKey::from_ec_der(pair.to_pkcs8v1().expect("PKCS#8").as_ref())
        }
        Algorithm::EdDSA => {
            let pair = Ed25519KeyPair::generate().expect("Ed25519 key");
            EncodingKey::from_ed_der(pair.to_pkcs8v1().expect("PKCS#8").as_ref())
        }
        other => panic!("no test key for {other:?}"),
    };
    let mut jwk = Jwk::from_encoding_key(&encoding, alg).expect("JWK");
    jwk.common.key_id = Some(kid.to_string());
    Key {
        kid: kid.to_string(),
        alg,
        encoding,
        jwk,
    }
}

/// The RSAPrivateKey (PKCS#1) inside a PKCS#8 PrivateKeyInfo: SEQUENCE { INTEGER version,
/// SEQUENCE algorithm, OCTET STRING key }.
fn pkcs1_from_pkcs8(der: &[u8]) -> &[u8] {
    let (_, body) = der_item(der);
    let (rest, _version) = der_item_split(body);
    let (rest, _algorithm) = der_item_split(rest);
    let (_, key) = der_item(rest);
    key
}

/// (tag, contents) of the DER item at the start of `der`.
fn der_item(der: &[u8]) -> (u8, &[u8]) {
    let (header, len) = der_length(der);
    (der[0], &der[header..header + len])
}

/// Splits off the first DER item: (what follows it, the item's contents).
fn der_item_split(der: &[u8]) -> (&[u8], &[u8]) {
    let (header, len) = der_length(der);
    (&der[header + len..], &der[header..header + len])
}

fn der_length(der: &[u8]) -> (usize, usize) {
    let first = der[1] as usize;
    if first < 0x80 {
        return (2, first);
    }
    let count = first & 0x7f;
    let len = der[2..2 + count]
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | *b as usize);
    (2 + count, len)
}

/// A JWKS served over plain HTTP on 127.0.0.1; the body can be replaced (key rotation) and
/// requests are counted.
pub struct JwksServer {
    pub url: String,
    body: Arc<Mutex<String>>,
    hits: Arc<AtomicUsize>,
}

impl JwksServer {
    pub fn start(jwks: String) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind JWKS server");
        let url = format!("http://{}/jwks.json", listener.local_addr().expect("addr"));
        let body = Arc::new(Mutex::new(jwks));
        let hits = Arc::new(AtomicUsize::new(0));
        let (body2, hits2) = (body.clone(), hits.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                hits2.fetch_add(1, Ordering::SeqCst);
                let text = body2.lock().expect("body").clone();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
            }
        });
        JwksServer { url, body, hits }
    }

    pub fn set(&self, jwks: String) {
        *self.body.lock().expect("body") = jwks;
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}
