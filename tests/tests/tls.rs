//! TLS end to end: the real server serving a certificate of a test CA (made with `openssl`),
//! the real CLI trusting that CA through `--ca-file` or a hashed CA directory and refusing
//! another CA, certificates re-read on SIGHUP, and the refusals at start: plain HTTP off
//! loopback, a key file others may read.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tokenledger_e2e::ingest::wait_until;
use tokenledger_e2e::daemon::set_mode;
use tokenledger_e2e::pki::{Leaf, TestCa};
use tokenledger_e2e::tls_client::TlsConnection;
use tokenledger_e2e::{Http, TestServer, netns, report, run_cli_with_env, run_refused_server};

/// A CA, a certificate of the ledger for 127.0.0.1, and the files the server reads.
struct Pki {
    dir: tempfile::TempDir,
    ca: TestCa,
    ledger: Leaf,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        netns::require_packages(&["openssl"]);
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new(&dir.path().join("ca"));
        let ledger = ca.issue("ledger");
        let served = dir.path().join("served");
        std::fs::create_dir(&served).unwrap();
        let pki = Pki {
            cert: served.join("cert.pem"),
            key: served.join("key.pem"),
            dir,
            ca,
            ledger,
        };
        pki.serve(&pki.ledger);
        pki
    }

    /// Puts `leaf` in the files the server reads (the key 0600).
    fn serve(&self, leaf: &Leaf) {
        std::fs::copy(&leaf.cert_pem, &self.cert).unwrap();
        std::fs::copy(&leaf.key_pem, &self.key).unwrap();
        set_mode(&self.key, 0o600);
    }

    fn config(&self) -> String {
        format!(
            "[server]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            self.cert.display(),
            self.key.display()
        )
    }

    fn start(&self) -> TestServer {
        let server = TestServer::start_with_config(&self.dir.path().join("data"), &self.config());
        assert!(
            server.url().starts_with("https://127.0.0.1:"),
            "{}",
            server.url()
        );
        server
    }

    /// A directory (made empty) under the test's.
    fn empty_dir(&self, name: &str) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        dir
    }

}

fn address(server: &TestServer) -> &str {
    server.url().trim_start_matches("https://")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_cli_trusts_a_ca_file_or_a_hashed_ca_directory_and_refuses_another_ca() {
    let pki = Pki::new();
    let server = pki.start();
    let (status, log_key) = TlsConnection::open(address(&server), &pki.ca.cert).get("/v1/log/key");
    assert_eq!(status, 200);
    let log_key = log_key.trim_end();
    let issuer = server.create_issuer("atlas");
    let admin = server.admin_secret().to_string();
    let no_ca_dir = pki.empty_dir("no-cas");
    let ca = pki.ca.cert.to_str().unwrap();
    let without_ca_dir: [(&str, &Path); 1] = [("X509_CERT_DIR", &no_ca_dir)];

    // --ca-file: a bearer secret crosses over TLS, and the entry verifies.
    let reports = pki.dir.path().join("reports.ndjson");
    std::fs::write(&reports, format!("{}\n", report("tls-1", "atlas"))).unwrap();
    let reports = reports.to_str().unwrap();
    let url = server.url();
    let args = [
        "ingest", "--server", url, "--token", &issuer, "--format", "ndjson",
    ];
    let shipped = run_cli_with_env(
        &[&args[..], &["--ca-file", ca, reports]].concat(),
        &without_ca_dir,
    );
    assert_eq!(shipped.status.code(), Some(0), "{shipped:?}");
    let verify = [
        "verify",
        "--server",
        url,
        "--log-key",
        log_key,
        "--entry",
        "0",
        "--token",
        &admin,
    ];
    let verified = run_cli_with_env(&[&verify[..], &["--ca-file", ca]].concat(), &without_ca_dir);
    assert_eq!(verified.status.code(), Some(0), "{verified:?}");
    assert!(
        String::from_utf8_lossy(&verified.stdout).contains("entry 0 is included"),
        "{verified:?}"
    );

    // The same CA from TOKENLEDGER_CA_FILE.
    let from_env = run_cli_with_env(
        &verify,
        &[
            ("X509_CERT_DIR", &no_ca_dir),
            ("TOKENLEDGER_CA_FILE", &pki.ca.cert),
        ],
    );
    assert_eq!(from_env.status.code(), Some(0), "{from_env:?}");

    // A hashed CA directory.
    let hashed = pki.ca.certificates.clone();
    let from_dir = run_cli_with_env(&verify, &[("X509_CERT_DIR", &hashed)]);
    assert_eq!(from_dir.status.code(), Some(0), "{from_dir:?}");

    // Without the CA, and with another CA of the same name (as a file or in the directory):
    // refused, naming the host and why, exit 2.
    let other = TestCa::new(&pki.dir.path().join("other-ca"));
    let other_dir = other.certificates.clone();
    let other_ca = other.cert.to_str().unwrap();
    let refused = |out: Output, why: &str| {
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let said = stderr(&out);
        let expected = format!(
            "TLS with {} failed: its certificate was refused: it is not signed by {why}",
            address(&server)
        );
        assert!(said.contains(&expected), "{said}");
        assert!(!said.contains(&admin) && !said.contains(&issuer), "{said}");
    };
    refused(
        run_cli_with_env(&verify, &without_ca_dir),
        "a CA this client trusts",
    );
    let same_name = "the trusted CA of its issuer's name";
    refused(
        run_cli_with_env(
            &[&verify[..], &["--ca-file", other_ca]].concat(),
            &without_ca_dir,
        ),
        same_name,
    );
    refused(
        run_cli_with_env(&verify, &[("X509_CERT_DIR", &other_dir)]),
        same_name,
    );
    refused(
        run_cli_with_env(
            &[&args[..], &[reports]].concat(),
            &[("X509_CERT_DIR", &other_dir)],
        ),
        same_name,
    );
    let (_, health) = TlsConnection::open(address(&server), &pki.ca.cert).get("/healthz");
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(
        health["log_size"], 1,
        "nothing was shipped past the refusals"
    );
}

#[test]
fn sighup_serves_a_new_certificate_to_new_connections_and_open_ones_keep_working() {
    let pki = Pki::new();
    let server = pki.start();
    let addr = address(&server).to_string();
    let mut open = TlsConnection::open(&addr, &pki.ca.cert);
    assert_eq!(open.server_certificate(), pki.ledger.cert_der);
    assert_eq!(open.get("/healthz").0, 200);

    let renewed = pki.ca.issue("ledger-renewed");
    assert_ne!(renewed.cert_der, pki.ledger.cert_der);
    pki.serve(&renewed);
    hang_up(&server);
    wait_until("a new connection gets the renewed certificate", || {
        TlsConnection::open(&addr, &pki.ca.cert).server_certificate() == renewed.cert_der
    });
    // The connection opened before the reload goes on, with its certificate.
    let (status, body) = open.get("/healthz");
    assert_eq!(status, 200, "{body}");
    assert_eq!(open.server_certificate(), pki.ledger.cert_der);

    // Files that do not load leave the current certificate in place, and the log says why.
    std::fs::write(&pki.cert, "not a certificate\n").unwrap();
    hang_up(&server);
    wait_for_log(&server, "holds no PEM certificate");
    std::fs::copy(&pki.ledger.cert_pem, &pki.cert).unwrap();
    hang_up(&server);
    wait_for_log(&server, "does not go with the certificate");
    assert_eq!(
        TlsConnection::open(&addr, &pki.ca.cert).server_certificate(),
        renewed.cert_der
    );
    assert_eq!(open.get("/healthz").0, 200);
}

#[test]
fn a_plain_http_server_lives_through_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(dir.path());
    hang_up(&server);
    wait_for_log(&server, "no TLS certificate to re-read");
    assert_eq!(server.log_size(), 0);
    server.stop();
}

#[test]
fn a_key_file_others_may_read_is_refused_at_start() {
    let pki = Pki::new();
    let config = pki.dir.path().join("tls.toml");
    std::fs::write(&config, pki.config()).unwrap();
    let data = pki.dir.path().join("data");
    for mode in [0o644, 0o640, 0o604] {
        set_mode(&pki.key, mode);
        assert_refused_start(
            &[
                "--config",
                config.to_str().unwrap(),
                "serve",
                "--listen",
                "127.0.0.1:0",
            ],
            &data,
            &format!(
                "{} has mode {mode:o}: a secret file must be readable by its owner only \
                 (chmod 600)",
                pki.key.display()
            ),
        );
    }
}

#[test]
fn plain_http_off_loopback_needs_tls_or_a_tls_proxy() {
    netns::require_packages(&["iproute2", "openssl"]);
    // Inside a network namespace of its own, where 0.0.0.0 reaches nothing but loopback.
    if !netns::inside("plain_http_off_loopback_needs_tls_or_a_tls_proxy") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("plain");
    assert_refused_start(
        &["serve", "--listen", "0.0.0.0:0"],
        &data,
        "refusing to serve plain HTTP on 0.0.0.0:0: bearer secrets would cross the network in \
         clear; set server.tls_cert and server.tls_key (--tls-cert, --tls-key), or \
         server.behind_tls_proxy = true (--behind-tls-proxy) when a TLS proxy in front \
         terminates TLS",
    );

    let proxied =
        TestServer::start_listening_on(&data, "[server]\nbehind_tls_proxy = true\n", "0.0.0.0:0");
    let port = proxied.url().rsplit_once(':').unwrap().1;
    assert!(
        proxied.url().starts_with("http://0.0.0.0:"),
        "{}",
        proxied.url()
    );
    let health = Http::new(&format!("http://127.0.0.1:{port}")).get("/healthz", None);
    assert_eq!(health.status, 200, "{health:?}");

    let pki = Pki::new();
    let tls =
        TestServer::start_listening_on(&pki.dir.path().join("data"), &pki.config(), "0.0.0.0:0");
    let port = tls
        .url()
        .strip_prefix("https://0.0.0.0:")
        .expect("https on 0.0.0.0");
    let mut connection = TlsConnection::open(&format!("127.0.0.1:{port}"), &pki.ca.cert);
    assert_eq!(connection.get("/healthz").0, 200);
}

/// Sends SIGHUP to the server, as `systemctl reload` would.
fn hang_up(server: &TestServer) {
    let sent = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
}

/// Waits, bounded, until the server's log holds `text`.
fn wait_for_log(server: &TestServer, text: &str) {
    wait_until(&format!("the server logs `{text}`"), || {
        std::fs::read_to_string(server.stderr_path()).is_ok_and(|log| log.contains(text))
    });
}

/// Runs `tokenledger-server <args> --data-dir data`: it must exit non-zero saying exactly
/// `error`, on one line, before it touches the data directory.
fn assert_refused_start(args: &[&str], data: &Path, error: &str) {
    let out = run_refused_server(&[args, &["--data-dir", data.to_str().unwrap()]].concat());
    assert!(!out.status.success(), "{out:?}");
    assert_eq!(stderr(&out), format!("Error: {error}\n"));
    assert!(!data.exists(), "refused before touching the data directory");
}
