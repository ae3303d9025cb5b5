//! A real XRootD 5 data server with the SciTokens authorization plugin, for tests that run
//! inside [`crate::netns::inside`]: `xrootd` serving a data directory over the xroot protocol
//! (ztn, which needs TLS) and over HTTP (XrdHttp), with a server certificate of the test CA
//! ([`crate::pki`]); scitokens-cpp fetches the issuer's keys over https from
//! [`crate::https_issuer`], trusting the test CA through [`crate::pki::TestCa::trust_for_libcurl`].
//!
//! Everything listens on 127.0.0.1 of the test's private network namespace. The daemon is
//! stopped when its guard drops, on success and on panic.

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::daemon::{Daemon, free_port, read_or_empty, set_mode, tail};
use crate::pki::{Leaf, TestCa};

/// The Debian packages the XRootD tests use: the daemon, its client, the SciTokens plugin
/// (which pulls in scitokens-cpp), `openssl` for the test CA, `ca-certificates` for the
/// bundle path libcurl reads, `iproute2` for the namespace.
pub const PACKAGES: &[&str] = &[
    "xrootd-server",
    "xrootd-client",
    "xrootd-scitokens-plugins",
    "openssl",
    "ca-certificates",
    "iproute2",
];

/// The unprivileged user the Debian package creates; xrootd refuses to run as root.
pub const DAEMON_USER: &str = "xrootd";

/// Bound on the daemon's start-up, and on one client run.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);

/// Numeric uid and gid of [`DAEMON_USER`], from `id`.
pub fn daemon_ids() -> (u32, u32) {
    let id = |flag: &str| {
        let out = Command::new("id")
            .args([flag, DAEMON_USER])
            .output()
            .expect("id runs");
        assert!(
            out.status.success(),
            "there is no user {DAEMON_USER}: the xrootd-server package creates it"
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
    let (uid, gid) = daemon_ids();
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

fn mkdir(path: &Path) -> PathBuf {
    std::fs::create_dir_all(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
    path.to_path_buf()
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
    /// The CA whose hashed directory is the daemon's (and xrdcp's) trust anchor.
    pub ca: &'a TestCa,
    /// The daemon's TLS certificate and key (handed to [`DAEMON_USER`]: xrootd checks).
    pub host: &'a Leaf,
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
/// on `http_port`, the SciTokens plugin in front of the authdb. Stopped on drop.
pub struct Xrootd {
    pub root_port: u16,
    pub http_port: u16,
    dir: PathBuf,
    ca_dir: PathBuf,
    log: PathBuf,
    stderr: PathBuf,
    daemon: Daemon,
    runs: usize,
}

impl Xrootd {
    /// Writes `xrootd.cfg`, `scitokens.cfg` and `authdb` into `dir`, starts the daemon, and
    /// waits (bounded) until both ports accept and its log says initialization completed;
    /// `Err` (why, with the log's tail) otherwise, for tests of what stops it.
    pub fn try_start(dir: &Path, setup: &XrootdSetup<'_>) -> Result<Xrootd, String> {
        let dir = mkdir(dir);
        set_mode(&dir, 0o755);
        let run = mkdir(&dir.join("run"));
        let cache = mkdir(&dir.join("cache"));
        let export = mkdir(&dir.join("export").join("data"));
        for (name, content) in setup.files {
            std::fs::write(export.join(name), content).expect("writing a served file");
        }
        give_to_daemon(&run);
        give_to_daemon(&cache);
        give_to_daemon(&setup.host.cert_pem);
        give_to_daemon(&setup.host.key_pem);
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
                ca: setup.ca,
                host: setup.host,
                scitokens: &scitokens,
                authdb: &authdb,
            }),
        )
        .expect("writing xrootd.cfg");

        let log = run.join("xrootd.log");
        let stderr = dir.join("xrootd.stderr");
        let err_file = std::fs::File::create(&stderr).expect("the xrootd stderr file");
        let daemon = Daemon::spawn(
            Command::new("xrootd")
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
                .stderr(Stdio::from(err_file)),
        )
        .unwrap_or_else(|e| panic!("cannot spawn xrootd: {e}"));
        let mut xrootd = Xrootd {
            root_port,
            http_port,
            dir,
            ca_dir: setup.ca.certificates.clone(),
            log,
            stderr,
            daemon,
            runs: 0,
        };
        xrootd.wait_ready()?;
        Ok(xrootd)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        for port in [self.root_port, self.http_port] {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(why) = self.daemon.wait_for_port(port, left) {
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
        self.daemon.pid()
    }

    /// Panics, with the log, if the daemon has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.daemon.exited() {
            panic!("xrootd exited ({status})\n{}", self.log_tail(60));
        }
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        read_or_empty(&self.log)
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
                let _ = child.kill();
                let _ = child.wait();
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
    ca: &'a TestCa,
    host: &'a Leaf,
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
        cert = p.host.cert_pem.display(),
        key = p.host.key_pem.display(),
        ca_dir = p.ca.certificates.display(),
        scitokens = p.scitokens.display(),
        authdb = p.authdb.display(),
    )
}
