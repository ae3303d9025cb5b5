//! Support for the tests against the real ARC A-REX (tests/tests/arc_daemon.rs): the test CA
//! ([`crate::pki`]) installed at `/etc/grid-security` inside the test's private mount namespace; an https token issuer (OpenID discovery document and JWKS, the only way
//! ARC 6 accepts issuer keys); and A-REX's WS/REST interface started with Debian's own start
//! script on a private `arc.conf`, killed on drop. Everything here runs inside
//! [`crate::netns::inside`] and listens on 127.0.0.1 only.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::agreement;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::Value;

use crate::pki::{Leaf, TestCa, set_mode};

/// Debian's script behind `systemctl start arc-arex-ws` (ARC 6: the job-management interface,
/// where token users are authenticated and authorized).
pub const AREX_WS_START: &str = "/usr/share/arc/arc-arex-ws-start";
/// Where ARC looks for trust anchors, host certificate and key by default.
const GRID_SECURITY: &str = "/etc/grid-security";
/// Bound on A-REX's start (its start script validates the configuration with perl and
/// python first: a few seconds), and on one REST exchange.
const AREX_START_TIMEOUT: Duration = Duration::from_secs(90);
const CURL_MAX_TIME: &str = "60";
/// The RFC 7919 `ffdhe2048` group. `arc-arex-ws-start` wants DH parameters in the control
/// directory and, when there are none, starts `openssl dhparam 4096` in the background, where
/// it runs for minutes outside the test's control: a well-known group in place avoids that.
const FFDHE2048: &str = "-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
";

/// Daemons of this test process (A-REX, the ledger) that the watchdog kills.
static DAEMONS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Makes the [`watchdog`] kill `pid` (a daemon the test started) when time is up.
pub fn register_daemon(pid: u32) {
    DAEMONS.lock().expect("daemons").push(pid);
}

fn unregister_daemon(pid: u32) {
    DAEMONS.lock().expect("daemons").retain(|p| *p != pid);
}

/// Bounds the whole test: after `limit` a thread kills the registered daemons and ends this
/// process with a failure (drop guards cannot run then, hence the registry). Every wait is
/// bounded as well; this catches the sum.
pub fn watchdog(limit: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        // Held to the end: no daemon starts after this.
        let daemons = DAEMONS.lock().unwrap_or_else(|e| e.into_inner());
        eprintln!("the test exceeded {limit:?}: killing its daemons {daemons:?} and failing");
        for pid in daemons.iter() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        std::process::exit(101);
    });
}

impl TestCa {
    /// Puts this CA and `host` where ARC looks by default, for this mount namespace only: a
    /// tmpfs over `/etc/grid-security` holding `certificates/<hash>.0` (the trust anchor for
    /// A-REX's TLS and for its fetch of issuer keys), `hostcert.pem` and `hostkey.pem`. The
    /// host's own `/etc/grid-security` (which `nordugrid-arc-arex`'s postinst creates) is
    /// hidden, never changed.
    pub fn install_grid_security(&self, host: &Leaf) {
        assert_private_mount_namespace();
        let root = Path::new(GRID_SECURITY);
        assert!(
            root.is_dir(),
            "{GRID_SECURITY} does not exist: nordugrid-arc-arex's postinst creates it (arcctl \
             test-ca init); the test mounts over it and never creates it on the host"
        );
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                "mode=0755",
                "tokenledger-e2e",
                GRID_SECURITY,
            ])
            .status()
            .expect("mount (util-linux) runs");
        assert!(
            mounted.success(),
            "cannot mount a tmpfs over {GRID_SECURITY}"
        );
        let certificates = root.join("certificates");
        std::fs::create_dir(&certificates).expect("creating certificates/");
        std::fs::copy(
            &self.cert,
            certificates.join(format!("{}.0", self.subject_hash())),
        )
        .expect("installing the CA");
        std::fs::copy(&host.cert_pem, root.join("hostcert.pem")).expect("installing hostcert");
        std::fs::copy(&host.key_pem, root.join("hostkey.pem")).expect("installing hostkey");
        set_mode(&root.join("hostkey.pem"), 0o600);
    }
}

/// Panics unless this process has another mount namespace than its parent, the test process
/// that ran `unshare` (so a mount cannot reach the host).
fn assert_private_mount_namespace() {
    let mine = std::fs::read_link("/proc/self/ns/mnt").expect("own mount namespace");
    let parent = std::os::unix::process::parent_id();
    let theirs =
        std::fs::read_link(format!("/proc/{parent}/ns/mnt")).expect("the parent's mount namespace");
    assert_ne!(
        mine, theirs,
        "refusing to mount over {GRID_SECURITY}: not in a private mount namespace (run inside \
         netns::inside)"
    );
}

/// A loopback port nobody listens on (the namespace is private, so it stays free).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// An https server on 127.0.0.1 with fixed documents per path (an OpenID provider's discovery
/// document and JWKS), serving until the test process ends. It answers both request forms,
/// `GET /path` and ARC's absolute `GET https://host:port/path`, and records what was asked.
pub struct HttpsIssuer {
    /// `https://127.0.0.1:PORT`
    pub base: String,
    routes: Arc<Mutex<HashMap<String, String>>>,
    asked: Arc<Mutex<Vec<String>>>,
}

impl HttpsIssuer {
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

    /// Serves `body` (JSON) at `path`.
    pub fn serve(&self, path: &str, body: String) {
        self.routes
            .lock()
            .expect("routes")
            .insert(path.to_string(), body);
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

/// The directories and files of one A-REX instance, all under one test directory.
#[derive(Debug, Clone)]
pub struct ArexDirs {
    pub root: PathBuf,
    pub control: PathBuf,
    pub session: PathBuf,
    pub logs: PathBuf,
    pub tmp: PathBuf,
    /// The WS interface's port on 127.0.0.1.
    pub port: u16,
}

impl ArexDirs {
    /// Fresh directories under `root` and a free port.
    pub fn new(root: &Path) -> ArexDirs {
        let dirs = ArexDirs {
            root: root.to_path_buf(),
            control: root.join("control"),
            session: root.join("session"),
            logs: root.join("log"),
            tmp: root.join("tmp"),
            port: free_port(),
        };
        for dir in [&dirs.control, &dirs.session, &dirs.logs, &dirs.tmp] {
            std::fs::create_dir_all(dir).expect("creating A-REX's directories");
        }
        // A-REX's validator wants its tmpdir as /tmp is: world-writable with the sticky bit.
        set_mode(&dirs.tmp, 0o1777);
        std::fs::write(dirs.control.join("dhparam.pem"), FFDHE2048).expect("dhparam.pem");
        dirs
    }

    /// The `[arex]`, `[arex/ws]` lines that keep every file of A-REX under `root` and the
    /// interface on 127.0.0.1 (a site keeps the defaults and sets its hostname in `wsurl`).
    pub fn arex_blocks(&self, loglevel: u8) -> String {
        let r = |p: &Path| p.display().to_string();
        format!(
            "[arex]\n\
             loglevel = {loglevel}\n\
             controldir = {}\n\
             sessiondir = {}\n\
             logfile = {}/arex.log\n\
             joblog =\n\
             pidfile = {}/arex.pid\n\
             tmpdir = {}\n\n\
             [arex/ws]\n\
             wsurl = https://127.0.0.1:{}/arex\n\
             logfile = {}/ws-interface.log\n\
             pidfile = {}/arched-arex-ws.pid\n",
            r(&self.control),
            r(&self.session),
            r(&self.logs),
            r(&self.root),
            r(&self.tmp),
            self.port,
            r(&self.logs),
            r(&self.root),
        )
    }
}

/// What A-REX answered to one REST submission (`POST .../jobs?action=new`): the HTTP status
/// (and its status line), and the per-job `status-code`, `reason` and `id` of its JSON body.
#[derive(Debug)]
pub struct Submission {
    pub http: u16,
    pub status_line: String,
    pub job_status: String,
    pub reason: String,
    pub id: Option<String>,
    pub body: String,
}

/// A running A-REX WS interface (`arched`, in the foreground), killed on drop.
pub struct Arex {
    child: Option<Child>,
    dirs: ArexDirs,
    conf: PathBuf,
    output: PathBuf,
    pub url: String,
}

impl Arex {
    /// Writes `conf` as `arc.conf` in the instance's directory and starts Debian's
    /// `arc-arex-ws-start -f` on it (`ARC_CONFIG`). Waits, bounded, for the port; panics with
    /// the log's tail if A-REX exits or does not listen.
    pub fn start(dirs: &ArexDirs, conf: &str) -> Arex {
        assert!(
            Path::new(AREX_WS_START).is_file(),
            "{AREX_WS_START} is missing: is nordugrid-arc-arex installed?"
        );
        let path = dirs.root.join("arc.conf");
        std::fs::write(&path, conf).expect("writing arc.conf");
        let output = dirs.root.join("arched.out");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&output)
            .expect("A-REX's output file");
        // Started and registered under the lock, so the watchdog never misses it.
        let mut daemons = DAEMONS.lock().expect("daemons");
        let child = Command::new(AREX_WS_START)
            .arg("-f")
            .env("ARC_CONFIG", &path)
            // The script writes its generated XML with `mktemp -t`.
            .env("TMPDIR", &dirs.tmp)
            .current_dir(&dirs.root)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("dup")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {AREX_WS_START}: {e}"));
        daemons.push(child.id());
        drop(daemons);
        let mut arex = Arex {
            child: Some(child),
            dirs: dirs.clone(),
            conf: path,
            output,
            url: format!("https://127.0.0.1:{}/arex", dirs.port),
        };
        arex.wait_listening();
        arex
    }

    fn wait_listening(&mut self) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.dirs.port));
        let deadline = Instant::now() + AREX_START_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().expect("waiting for A-REX") {
                unregister_daemon(child.id());
                self.child = None;
                panic!(
                    "A-REX exited ({status}) before listening on {addr}\n{}",
                    self.log_tail(60)
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "A-REX did not listen on {addr} within {AREX_START_TIMEOUT:?}\n{}",
                    self.log_tail(60)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The arc.conf it runs on.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// Everything A-REX printed so far (in the foreground its log goes to stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// The last `n` lines of A-REX's output and of its interface log file, for failures.
    pub fn log_tail(&self, n: usize) -> String {
        let tail = |path: &Path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        };
        format!(
            "--- A-REX output ({}) ---\n{}\n--- {} ---\n{}",
            self.output.display(),
            tail(&self.output),
            self.dirs.logs.join("ws-interface.log").display(),
            tail(&self.dirs.logs.join("ws-interface.log"))
        )
    }

    /// Submits a one-line xRSL job over the REST interface with `token` as the bearer, the
    /// way a user's client does: `curl` trusting `ca`, JSON answer asked for.
    pub fn submit(&self, token: &str, ca: &Path) -> Submission {
        let headers = self.dirs.tmp.join("headers");
        std::fs::write(
            &headers,
            format!(
                "Authorization: Bearer {token}\nAccept: application/json\n\
                 Content-Type: application/rsl\n"
            ),
        )
        .expect("writing the request headers");
        set_mode(&headers, 0o600);
        let job = self.dirs.tmp.join("job.xrsl");
        std::fs::write(
            &job,
            "&(executable=\"/bin/true\")(jobname=\"tokenledger-e2e\")",
        )
        .expect("writing the job");
        let body_path = self.dirs.tmp.join("answer");
        let head_path = self.dirs.tmp.join("answer-head");
        let _ = std::fs::remove_file(&body_path);
        let _ = std::fs::remove_file(&head_path);
        let url = format!("{}/rest/1.0/jobs?action=new", self.url);
        let out = Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", CURL_MAX_TIME])
            .arg("--cacert")
            .arg(ca)
            .arg("-H")
            .arg(format!("@{}", headers.display()))
            .arg("--data-binary")
            .arg(format!("@{}", job.display()))
            .arg("-o")
            .arg(&body_path)
            .arg("-D")
            .arg(&head_path)
            .args(["-w", "%{http_code}"])
            .arg(&url)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("curl cannot run ({e}): is the curl package installed?"));
        let _ = std::fs::remove_file(&headers);
        let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            out.status.success(),
            "curl POST {url} failed ({}): {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log_tail(40)
        );
        let body = std::fs::read_to_string(&body_path).unwrap_or_default();
        let http = code
            .parse()
            .unwrap_or_else(|_| panic!("curl printed no status: {code:?}"));
        let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let job = &json["job"];
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        let status_line = read_or_empty(&head_path)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        Submission {
            http,
            status_line,
            job_status: text(&job["status-code"]),
            reason: text(&job["reason"]),
            id: job["id"].as_str().map(str::to_string),
            body,
        }
    }

    /// Stops A-REX (SIGTERM, then SIGKILL after a bound) and reaps it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !matches!(child.try_wait(), Ok(Some(_))) {
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Only now: until reaped, the watchdog may still have to kill it.
        unregister_daemon(child.id());
    }
}

impl Drop for Arex {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads a whole file, or "" if it does not exist.
pub fn read_or_empty(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    text
}
