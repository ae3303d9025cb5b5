//! The server's fetch of an issuer's JWKS over https (a real rustls issuer with a test CA's
//! certificate): trusted through the issuer's `ca_file` or the grid CA directory
//! (`X509_CERT_DIR`), refused otherwise with the TLS failure in the server's log, and a
//! start refused when `X509_CERT_DIR` names no directory.

use std::path::{Path, PathBuf};

use serde_json::json;
use tokenledger_e2e::https_issuer::HttpsIssuer;
use tokenledger_e2e::issuer::TestIssuer;
use tokenledger_e2e::pki::TestCa;
use tokenledger_e2e::{Reply, TestServer, netns, run_refused_server_with_env};

const JWKS_PATH: &str = "/atlas/jwk";

/// A test CA, an https issuer whose certificate it signed, and an empty CA directory (so
/// that neither the host's /etc/grid-security/certificates nor anything else is trusted).
struct Lab {
    dir: tempfile::TempDir,
    ca: TestCa,
    https: HttpsIssuer,
    issuer: TestIssuer,
    no_cas: PathBuf,
}

impl Lab {
    fn new() -> Lab {
        netns::require_packages(&["openssl"]);
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new(&dir.path().join("ca"));
        let https = HttpsIssuer::start(&ca.issue("issuer"));
        let issuer = TestIssuer::new(&format!("{}/atlas", https.base));
        https.publish_keys(&issuer.iss, JWKS_PATH, issuer.jwks());
        let no_cas = dir.path().join("no-cas");
        std::fs::create_dir(&no_cas).unwrap();
        Lab {
            dir,
            ca,
            https,
            issuer,
            no_cas,
        }
    }

    /// The configuration: the issuer's keys at its https URL, and `extra` lines.
    fn config(&self, extra: &str) -> String {
        let source = format!(
            "jwks_url = \"{}{JWKS_PATH}\"\njwks_min_refetch_secs = 0\n{extra}",
            self.https.base
        );
        self.issuer
            .config_block(&source, "[{ rule = \"fixed\", vo = \"atlas\" }]")
    }

    /// A server named `name`, with `extra` configuration lines and `X509_CERT_DIR`.
    fn start(&self, name: &str, extra: &str, cert_dir: &Path) -> TestServer {
        TestServer::start_with_config_and_env(
            &self.dir.path().join(name),
            &self.config(extra),
            &[("X509_CERT_DIR", Some(&cert_dir.display().to_string()))],
        )
    }

    /// Posts a fresh token of the issuer, minted for `jti`.
    fn post(&self, server: &TestServer, jti: &str) -> Reply {
        let credential = server.create_credential("issuer", Some("atlas"));
        let token = self.issuer.mint(
            jsonwebtoken::Algorithm::RS256,
            &self.issuer.claims(jti, "alice"),
        );
        server.http().post_json(
            "/v1/issuances",
            Some(&credential),
            &json!({ "token": token }),
        )
    }
}

#[test]
fn an_issuers_ca_file_is_trusted_for_its_jwks() {
    let lab = Lab::new();
    let extra = format!("ca_file = \"{}\"\n", lab.ca.cert.display());
    let server = lab.start("ca-file", &extra, &lab.no_cas);
    let reply = lab.post(&server, "jti-ca-file");
    assert_eq!(reply.status, 201, "{reply:?}\n{}", server.log_tail());
    assert!(
        lab.https.asked().iter().any(|p| p == JWKS_PATH),
        "the keys came from the https issuer: {:?}",
        lab.https.asked()
    );
}

#[test]
fn the_grid_ca_directory_is_trusted_for_every_issuers_jwks() {
    let lab = Lab::new();
    let server = lab.start("grid-dir", "", &lab.ca.certificates);
    let reply = lab.post(&server, "jti-grid-dir");
    assert_eq!(reply.status, 201, "{reply:?}\n{}", server.log_tail());
}

#[test]
fn an_untrusted_issuer_certificate_refuses_its_tokens_and_says_why_in_the_log() {
    let lab = Lab::new();
    let server = lab.start("untrusted", "", &lab.no_cas);
    let reply = lab.post(&server, "jti-untrusted");
    assert_eq!(reply.status, 422, "{reply:?}\n{}", server.log_tail());
    let log = std::fs::read_to_string(server.stderr_path()).unwrap();
    assert!(
        log.contains("could not refresh issuer keys") && log.contains("UnknownIssuer"),
        "the log names the TLS failure:\n{}",
        server.log_tail()
    );
    let count = server
        .http()
        .get("/v1/log/checkpoint", None)
        .body
        .lines()
        .nth(1)
        .map(str::to_string);
    assert_eq!(count.as_deref(), Some("0"), "nothing was logged");
}

#[test]
fn a_start_with_x509_cert_dir_naming_no_directory_is_refused() {
    let lab = Lab::new();
    let data = lab.dir.path().join("refused");
    std::fs::create_dir(&data).unwrap();
    let config = data.join("config.toml");
    std::fs::write(&config, lab.config("")).unwrap();
    let missing = lab.dir.path().join("no-such-dir");
    let out = run_refused_server_with_env(
        &[
            "--config",
            &config.display().to_string(),
            "--data-dir",
            &data.display().to_string(),
        ],
        &[("X509_CERT_DIR", &missing.display().to_string())],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("X509_CERT_DIR") && stderr.contains("no-such-dir"),
        "{stderr}"
    );
}
