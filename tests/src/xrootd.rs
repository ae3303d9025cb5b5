//! A real XRootD 5 data server with the SciTokens authorization plugin, for tests that run
//! inside [`crate::netns::inside`]: a test CA and a server certificate made with the
//! `openssl` CLI, a token issuer whose discovery document and JWKS are served over https
//! (scitokens-cpp fetches keys only over https), and `xrootd` itself serving a data
//! directory over the xroot protocol (ztn, which needs TLS) and over HTTP (XrdHttp).
//!
//! Everything listens on 127.0.0.1 of the test's private network namespace. The only change
//! to a system path is a bind mount of the test CA over the CA bundle that libcurl reads,
//! and [`Pki::trust_in_this_mount_namespace`] refuses to make it outside a private mount
//! namespace. Each daemon is killed when its guard drops, on success and on panic.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Debian packages the XRootD tests use: the daemon, its client, the SciTokens plugin
/// (which pulls in scitokens-cpp), `openssl` for the CA and the https issuer,
/// `ca-certificates` for the bundle path libcurl reads, `iproute2` for the namespace.
pub const PACKAGES: &[&str] = &[
    "xrootd-server",
    "xrootd-client",
    "xrootd-scitokens-plugins",
    "openssl",
    "ca-certificates",
    "iproute2",
];

/// The CA bundle Debian's libcurl (OpenSSL flavour) reads by default; scitokens-cpp sets no
/// CA of its own, so this is what decides whether the issuer's https is trusted.
pub const CURL_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The unprivileged user the Debian package creates; xrootd refuses to run as root.
pub const DAEMON_USER: &str = "xrootd";

/// Bound on the daemon's start-up, and on one client run.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);

/// A port that was free on 127.0.0.1 a moment ago (the namespace is private, so nothing
/// else takes it in between).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Runs a command to completion and panics, with its output, unless it succeeds.
fn must(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {cmd:?}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Numeric uid and gid of `user`, from `id`.
fn ids_of(user: &str) -> (u32, u32) {
    let id = |flag: &str| {
        let out = Command::new("id")
            .args([flag, user])
            .output()
            .expect("id runs");
        assert!(
            out.status.success(),
            "there is no user {user}: the xrootd-server package creates it"
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u32>()
            .expect("a numeric id")
    };
    (id("-u"), id("-g"))
}

/// Hands `path` to the daemon's user.
fn give_to_daemon(path: &Path) {
    let (uid, gid) = ids_of(DAEMON_USER);
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

fn mkdir(path: &Path) -> PathBuf {
    std::fs::create_dir_all(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
    path.to_path_buf()
}

/// The last `n` lines of a file, for failure messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("(cannot read: {e})"));
    let lines: Vec<&str> = text.lines().collect();
    format!(
        "--- {} (last {n} lines) ---\n{}",
        path.display(),
        lines[lines.len().saturating_sub(n)..].join("\n")
    )
}

/// Waits, bounded, until something accepts TCP connections on 127.0.0.1:`port`, or until
/// `dead()` says the process that should listen has gone; `Err` with the reason.
fn wait_for_port(
    port: u16,
    timeout: Duration,
    mut dead: impl FnMut() -> Option<String>,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(reason) = dead() {
            return Err(reason);
        }
        if TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_millis(500),
        )
        .is_ok()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "nothing listens on 127.0.0.1:{port} after {timeout:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Kills and reaps a child; for guards' `Drop`.
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A test CA and a server certificate it signed for `127.0.0.1` and `localhost`
/// (P-256 keys, valid two days), made with the `openssl` CLI.
pub struct Pki {
    /// The CA certificate (PEM).
    pub ca: PathBuf,
    /// A directory holding the CA under its OpenSSL hash name, for `X509_CERT_DIR` and
    /// `xrd.tlsca certdir`.
    pub ca_dir: PathBuf,
    /// The server certificate and its key, owned by the daemon's user (xrootd checks).
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    pub fn create(dir: &Path) -> Pki {
        let dir = mkdir(dir);
        let p = |name: &str| dir.join(name);
        must(
            Command::new("openssl")
                .args(["req", "-x509", "-newkey", "ec"])
                .args([
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=tokenledger test CA",
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                    "-keyout",
                ])
                .arg(p("ca.key"))
                .arg("-out")
                .arg(p("ca.pem")),
            "making the test CA",
        );
        must(
            Command::new("openssl")
                .args(["req", "-new", "-newkey", "ec"])
                .args([
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-subj",
                    "/CN=localhost",
                    "-keyout",
                ])
                .arg(p("server.key"))
                .arg("-out")
                .arg(p("server.csr")),
            "making the server key",
        );
        std::fs::write(
            p("server.ext"),
            "subjectAltName = IP:127.0.0.1, DNS:localhost\n\
             basicConstraints = critical, CA:FALSE\n\
             keyUsage = critical, digitalSignature, keyEncipherment\n\
             extendedKeyUsage = serverAuth, clientAuth\n",
        )
        .expect("writing the extensions file");
        must(
            Command::new("openssl")
                .args(["x509", "-req", "-days", "2", "-in"])
                .arg(p("server.csr"))
                .arg("-CA")
                .arg(p("ca.pem"))
                .arg("-CAkey")
                .arg(p("ca.key"))
                .arg("-CAcreateserial")
                .arg("-extfile")
                .arg(p("server.ext"))
                .arg("-out")
                .arg(p("server.pem")),
            "signing the server certificate",
        );
        let ca_dir = mkdir(&p("certificates"));
        std::fs::copy(p("ca.pem"), ca_dir.join("tokenledger-test-ca.pem")).expect("copy the CA");
        must(
            Command::new("openssl").arg("rehash").arg(&ca_dir),
            "openssl rehash of the CA directory",
        );
        std::fs::set_permissions(p("server.key"), std::fs::Permissions::from_mode(0o600))
            .expect("chmod the server key");
        give_to_daemon(&p("server.key"));
        give_to_daemon(&p("server.pem"));
        Pki {
            ca: p("ca.pem"),
            ca_dir,
            cert: p("server.pem"),
            key: p("server.key"),
        }
    }

    /// Makes libcurl (hence scitokens-cpp, in xrootd) trust exactly the test CA, by bind
    /// mounting it over [`CURL_CA_BUNDLE`]. Panics unless this process is in a mount
    /// namespace of its own, so the host's bundle is never touched; the mount disappears
    /// with the namespace.
    pub fn trust_in_this_mount_namespace(&self) {
        // netns::inside runs the test under `unshare --mount`, which execs it: the parent is
        // the outer test process, in the host's mount namespace.
        let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
        let parent = std::os::unix::process::parent_id().to_string();
        let (mine, outer) = (ns("self"), ns(&parent));
        assert!(
            mine.is_some() && outer.is_some() && mine != outer,
            "refusing to bind mount over {CURL_CA_BUNDLE} outside a private mount namespace \
             (mine {mine:?}, the parent's {outer:?}): run inside netns::inside"
        );
        assert!(
            Path::new(CURL_CA_BUNDLE).is_file(),
            "{CURL_CA_BUNDLE} is missing: the ca-certificates package provides it"
        );
        must(
            Command::new("mount")
                .arg("--bind")
                .arg(&self.ca)
                .arg(CURL_CA_BUNDLE),
            "bind mounting the test CA over the CA bundle",
        );
    }
}

/// A token issuer's public face over https: `<iss>/.well-known/openid-configuration` and
/// the JWKS it names, served from files by `openssl s_server -WWW` with the test server
/// certificate. `iss` is `https://127.0.0.1:PORT/<path>`.
pub struct HttpsIssuer {
    pub iss: String,
    child: Child,
}

impl HttpsIssuer {
    /// Serves `jwks` for issuer `https://127.0.0.1:port/path` (`path` without slashes).
    pub fn start(dir: &Path, pki: &Pki, port: u16, path: &str, jwks: &str) -> HttpsIssuer {
        let root = mkdir(dir);
        let iss = format!("https://127.0.0.1:{port}/{path}");
        let well_known = mkdir(&root.join(path).join(".well-known"));
        std::fs::write(
            well_known.join("openid-configuration"),
            serde_json::json!({"issuer": iss, "jwks_uri": format!("{iss}/jwks.json")}).to_string(),
        )
        .expect("writing the discovery document");
        std::fs::write(root.join(path).join("jwks.json"), jwks).expect("writing the JWKS");
        let log = root.join("s_server.log");
        let log_file = std::fs::File::create(&log).expect("the s_server log");
        let mut child = Command::new("openssl")
            .args(["s_server", "-WWW", "-quiet", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&pki.cert)
            .arg("-key")
            .arg(&pki.key)
            .current_dir(&root)
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                log_file.try_clone().expect("clone the log handle"),
            ))
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("spawning openssl s_server");
        let up = wait_for_port(port, START_TIMEOUT, || {
            child
                .try_wait()
                .ok()
                .flatten()
                .map(|s| format!("openssl s_server exited ({s})"))
        });
        if let Err(why) = up {
            kill(&mut child);
            panic!("the https issuer did not start: {why}\n{}", tail(&log, 40));
        }
        HttpsIssuer { iss, child }
    }
}

impl Drop for HttpsIssuer {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// What the XRootD under test is configured with.
pub struct XrootdSetup<'a> {
    /// The token issuer (the `issuer` of its `[Issuer ...]` section).
    pub issuer: &'a str,
    /// The SciTokens plugin's `name_mapfile` for that issuer; must exist and parse before
    /// the daemon starts.
    pub mapfile: &'a Path,
    /// The authorization database (`acc.authdb`), verbatim.
    pub authdb: &'a str,
    /// Files to serve: (logical path under `/data`, content).
    pub files: &'a [(&'a str, &'a str)],
}

/// An HTTP response: its status and body.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// Sends `request` to 127.0.0.1:`port` and reads the response to the end (the request says
/// `Connection: close`); the body is cut at `Content-Length` when there is one.
fn raw_http(port: u16, request: &str) -> std::io::Result<HttpReply> {
    use std::io::Write;
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    stream.write_all(request.as_bytes())?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let bad = |why: &str| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{why}: {text:?}"))
    };
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad("no status"))?;
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    let body = match length {
        Some(n) if n <= body.len() => body[..n].to_string(),
        _ => body.to_string(),
    };
    Ok(HttpReply {
        status,
        head: head.to_string(),
        body,
    })
}

/// The result of one `xrdcp` run.
#[derive(Debug)]
pub struct XrdcpRun {
    pub code: i32,
    pub output: String,
    /// What it copied, if it copied.
    pub copied: Option<String>,
}

/// A running `xrootd` (as [`DAEMON_USER`]): xroot protocol with ztn on `root_port`, XrdHttp
/// on `http_port`, the SciTokens plugin in front of the authdb. Killed on drop.
pub struct Xrootd {
    pub root_port: u16,
    pub http_port: u16,
    dir: PathBuf,
    ca_dir: PathBuf,
    log: PathBuf,
    stderr: PathBuf,
    child: Child,
    runs: usize,
}

impl Xrootd {
    /// Writes `xrootd.cfg`, `scitokens.cfg` and `authdb` into `dir`, starts the daemon, and
    /// waits (bounded) until both ports accept and its log says initialization completed;
    /// panics with the log's tail otherwise. Never skips.
    pub fn start(dir: &Path, pki: &Pki, setup: &XrootdSetup<'_>) -> Xrootd {
        Xrootd::try_start(dir, pki, setup).unwrap_or_else(|why| panic!("{why}"))
    }

    /// Like [`Xrootd::start`]; `Err` (why, with the log's tail) when the daemon does not
    /// come up, for tests of what stops it.
    pub fn try_start(dir: &Path, pki: &Pki, setup: &XrootdSetup<'_>) -> Result<Xrootd, String> {
        let dir = mkdir(dir);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .expect("chmod the xrootd directory");
        let run = mkdir(&dir.join("run"));
        let cache = mkdir(&dir.join("cache"));
        let export = mkdir(&dir.join("export").join("data"));
        for (name, content) in setup.files {
            std::fs::write(export.join(name), content).expect("writing a served file");
        }
        give_to_daemon(&run);
        give_to_daemon(&cache);
        let (root_port, http_port) = (free_port(), free_port());
        let scitokens = dir.join("scitokens.cfg");
        std::fs::write(&scitokens, scitokens_cfg(setup.issuer, setup.mapfile))
            .expect("writing scitokens.cfg");
        let authdb = dir.join("authdb");
        std::fs::write(&authdb, setup.authdb).expect("writing the authdb");
        let config = dir.join("xrootd.cfg");
        std::fs::write(
            &config,
            xrootd_cfg(&XrootdPaths {
                root_port,
                http_port,
                localroot: &dir.join("export"),
                run: &run,
                pki,
                scitokens: &scitokens,
                authdb: &authdb,
            }),
        )
        .expect("writing xrootd.cfg");

        let log = run.join("xrootd.log");
        let stderr = dir.join("xrootd.stderr");
        let err_file = std::fs::File::create(&stderr).expect("the xrootd stderr file");
        let child = Command::new("xrootd")
            .args(["-R", DAEMON_USER, "-c"])
            .arg(&config)
            .arg("-l")
            .arg(&log)
            // scitokens-cpp keeps its key cache under $XDG_CACHE_HOME/scitokens: the test's.
            .env("XDG_CACHE_HOME", &cache)
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                err_file.try_clone().expect("clone the stderr handle"),
            ))
            .stderr(Stdio::from(err_file))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn xrootd: {e}"));
        let mut xrootd = Xrootd {
            root_port,
            http_port,
            dir,
            ca_dir: pki.ca_dir.clone(),
            log,
            stderr,
            child,
            runs: 0,
        };
        xrootd.wait_ready()?;
        Ok(xrootd)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        for port in [self.root_port, self.http_port] {
            let child = &mut self.child;
            let up = wait_for_port(
                port,
                deadline.saturating_duration_since(Instant::now()),
                || {
                    child
                        .try_wait()
                        .ok()
                        .flatten()
                        .map(|s| format!("xrootd exited ({s})"))
                },
            );
            if let Err(why) = up {
                return Err(format!(
                    "xrootd did not come up: {why}\n{}",
                    self.log_tail(60)
                ));
            }
        }
        while !self.log().contains("initialization completed") {
            if Instant::now() > deadline {
                return Err(format!(
                    "xrootd never logged `initialization completed` in {START_TIMEOUT:?}\n{}",
                    self.log_tail(60)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// The daemon's process id (the same for the whole run: no restart).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Panics, with the log, if the daemon has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("xrootd exited ({status})\n{}", self.log_tail(60));
        }
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The log's and stderr's last lines, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        format!("{}\n{}", tail(&self.log, n), tail(&self.stderr, 20))
    }

    /// `GET http://127.0.0.1:PORT<path>` with `Authorization: Bearer <token>` (or none),
    /// the header name spelt exactly so: xrootd < 5.6.3 matches `http.header2cgi` names
    /// case-sensitively (XrdHttpReq.cc), so the token must arrive under the name configured.
    /// Written on a plain socket, since HTTP libraries built on the `http` crate (ureq)
    /// send header names in lower case.
    pub fn http_get(&self, path: &str, token: Option<&str>) -> HttpReply {
        self.http_get_with_header(path, token.map(|t| ("Authorization", t)))
    }

    /// Like [`Xrootd::http_get`] with the bearer token under `header.0` (say
    /// `authorization`).
    pub fn http_get_with_header(&self, path: &str, header: Option<(&str, &str)>) -> HttpReply {
        let auth = header
            .map(|(name, token)| format!("{name}: Bearer {token}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Connection: close\r\n\r\n",
            port = self.http_port
        );
        raw_http(self.http_port, &request)
            .unwrap_or_else(|e| panic!("GET {path} from xrootd: {e}\n{}", self.log_tail(40)))
    }

    /// `xrdcp root://127.0.0.1:PORT/<path>` with the token in `BEARER_TOKEN` (ztn, over the
    /// TLS the server requires), trusting the test CA, from an otherwise empty environment;
    /// bounded by a timeout.
    pub fn xrdcp(&mut self, path: &str, token: &str) -> XrdcpRun {
        self.runs += 1;
        let out = self.dir.join(format!("xrdcp-{}.out", self.runs));
        let mut child = Command::new("xrdcp")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("BEARER_TOKEN", token)
            .env("X509_CERT_DIR", &self.ca_dir)
            .env("XRD_CONNECTIONRETRY", "1")
            .env("XRD_REQUESTTIMEOUT", "30")
            .env("XRD_STREAMTIMEOUT", "30")
            .args(["--nopbar", "--force"])
            .arg(format!("root://127.0.0.1:{}/{path}", self.root_port))
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run xrdcp: {e}"));
        let deadline = Instant::now() + CLIENT_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for xrdcp") {
                break status;
            }
            if Instant::now() > deadline {
                kill(&mut child);
                panic!(
                    "xrdcp did not finish in {CLIENT_TIMEOUT:?}\n{}",
                    self.log_tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut output = String::new();
        if let Some(mut s) = child.stdout.take() {
            let _ = s.read_to_string(&mut output);
        }
        if let Some(mut s) = child.stderr.take() {
            let _ = s.read_to_string(&mut output);
        }
        XrdcpRun {
            code: status.code().unwrap_or(-1),
            output,
            copied: std::fs::read_to_string(&out).ok(),
        }
    }
}

impl Drop for Xrootd {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// The SciTokens plugin's configuration: one issuer whose tokens apply under `/data`, its
/// suspended subjects mapped by `name_mapfile`; requests the plugin does not approve by
/// scope go on to the authdb (`onmissing = passthrough`, the default, said explicitly).
pub fn scitokens_cfg(issuer: &str, mapfile: &Path) -> String {
    format!(
        "[Global]\n\
         onmissing = passthrough\n\
         \n\
         [Issuer atlas]\n\
         issuer = {issuer}\n\
         base_path = /data\n\
         name_mapfile = {}\n",
        mapfile.display()
    )
}

struct XrootdPaths<'a> {
    root_port: u16,
    http_port: u16,
    localroot: &'a Path,
    run: &'a Path,
    pki: &'a Pki,
    scitokens: &'a Path,
    authdb: &'a Path,
}

/// The daemon's configuration: `/data` exported; xroot on `root_port` with ztn as the only
/// authentication protocol (it makes login require TLS, from `xrd.tls`); XrdHttp on
/// `http_port` (plain http and https on the same port); the bearer token passed from the
/// HTTP header to the authorization layer, under both spellings of the header name (before
/// 5.6.3 the match is case-sensitive, and a token under the other spelling is ignored: the
/// request is anonymous); the SciTokens plugin chained (`++`) in front of
/// the default authorization (the authdb); denials and grants audited in the log.
fn xrootd_cfg(p: &XrootdPaths<'_>) -> String {
    format!(
        "all.export /data\n\
         oss.localroot {localroot}\n\
         all.adminpath {run}\n\
         all.pidpath {run}\n\
         xrd.port {root_port}\n\
         xrd.protocol XrdHttp:{http_port} libXrdHttp.so\n\
         xrd.tls {cert} {key}\n\
         xrd.tlsca certdir {ca_dir}\n\
         xrootd.seclib libXrdSec.so\n\
         sec.protocol ztn\n\
         http.header2cgi Authorization authz\n\
         http.header2cgi authorization authz\n\
         ofs.authorize 1\n\
         ofs.authlib ++ libXrdAccSciTokens.so config={scitokens}\n\
         acc.authdb {authdb}\n\
         acc.audit deny grant\n\
         scitokens.trace all\n",
        localroot = p.localroot.display(),
        run = p.run.display(),
        root_port = p.root_port,
        http_port = p.http_port,
        cert = p.pki.cert.display(),
        key = p.pki.key.display(),
        ca_dir = p.pki.ca_dir.display(),
        scitokens = p.scitokens.display(),
        authdb = p.authdb.display(),
    )
}
