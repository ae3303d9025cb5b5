//! Support for the tests against the real ARC A-REX (tests/tests/arc_daemon.rs): A-REX's
//! WS/REST interface started with Debian's own start script on a private `arc.conf`, stopped
//! on drop, and a user's token-authenticated REST job submission to it. The test CA
//! ([`crate::pki`]) and the https token issuer ([`crate::https_issuer`]) are shared with the
//! XRootD tests. Everything here runs inside [`crate::netns::inside`] and listens on
//! 127.0.0.1 only.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::daemon::{Daemon, free_port, read_or_empty, set_mode, tail};

/// Debian's script behind `systemctl start arc-arex-ws` (ARC 6: the job-management interface,
/// where token users are authenticated and authorized).
pub const AREX_WS_START: &str = "/usr/share/arc/arc-arex-ws-start";
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

/// A running A-REX WS interface (`arched`, in the foreground), stopped on drop.
pub struct Arex {
    daemon: Daemon,
    dirs: ArexDirs,
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
        let daemon = Daemon::spawn(
            Command::new(AREX_WS_START)
                .arg("-f")
                .env("ARC_CONFIG", &path)
                // The script writes its generated XML with `mktemp -t`.
                .env("TMPDIR", &dirs.tmp)
                .current_dir(&dirs.root)
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone().expect("dup")))
                .stderr(Stdio::from(log)),
        )
        .unwrap_or_else(|e| panic!("cannot run {AREX_WS_START}: {e}"));
        let mut arex = Arex {
            daemon,
            dirs: dirs.clone(),
            output,
            url: format!("https://127.0.0.1:{}/arex", dirs.port),
        };
        if let Err(why) = arex.daemon.wait_for_port(dirs.port, AREX_START_TIMEOUT) {
            panic!("A-REX did not come up: {why}\n{}", arex.log_tail(60));
        }
        arex
    }

    /// Everything A-REX printed so far (in the foreground its log goes to stderr).
    pub fn log(&self) -> String {
        read_or_empty(&self.output)
    }

    /// The last `n` lines of A-REX's output and of its interface log file, for failures.
    pub fn log_tail(&self, n: usize) -> String {
        format!(
            "{}\n{}",
            tail(&self.output, n),
            tail(&self.dirs.logs.join("ws-interface.log"), n)
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
        let body = read_or_empty(&body_path);
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
}
