//! A ledger as one site uses it: the real server with one issuer whose every token belongs to
//! the VO `atlas`, one site of that VO, the site-admin's and site-reader's credential files,
//! and what a site does with the CLI (pseudonym, suspend, lift, pull).

use std::path::{Path, PathBuf};

use jsonwebtoken::Algorithm;
use serde_json::json;

use crate::daemon::set_mode;
use crate::issuer::TestIssuer;
use crate::{CliRun, TestServer, run_cli_with};

/// The VO of the issuer and of the site.
pub const VO: &str = "atlas";

/// A suspension made by [`Site::suspend_person`].
#[derive(Debug)]
pub struct Suspension {
    /// The site's pseudonym of the suspended person.
    pub pseudonym: String,
    /// The suspension's id (to lift it).
    pub id: String,
}

/// A running ledger and one site, with everything under one temporary directory.
pub struct Site {
    /// The site's name.
    pub name: String,
    pub server: TestServer,
    /// The VO's issuer, whose JWKS the ledger reads from a file.
    pub issuer: TestIssuer,
    /// Token files of a site-admin (suspensions, exports) and a site-reader (the blocklist).
    pub admin: String,
    pub reader: String,
    /// The ledger's log key, pinned by every pull.
    pub log_key: String,
    /// The issuer's credential, to ingest tokens with.
    issuer_secret: String,
    dir: tempfile::TempDir,
}

impl Site {
    /// Starts a ledger in `dir` that accepts `issuer`'s tokens (their VO fixed to [`VO`]) and
    /// knows the site `name`, and writes the site's credential files.
    pub fn start(dir: tempfile::TempDir, name: &str, issuer: TestIssuer) -> Site {
        let jwks = dir.path().join(format!("{VO}-jwks.json"));
        issuer.write_jwks(&jwks);
        let config = format!(
            "{}\n[[site]]\nname = \"{name}\"\nvos = [\"{VO}\"]\n",
            issuer.config_block(
                &format!("jwks_file = \"{}\"", jwks.display()),
                &format!("[{{ rule = \"fixed\", vo = \"{VO}\" }}]")
            )
        );
        let server = TestServer::start_with_config(&dir.path().join("ledger"), &config);
        let log_key = server.log_key();
        let issuer_secret = server.create_credential("issuer", Some(VO));
        let mut site = Site {
            name: name.to_string(),
            server,
            issuer,
            admin: String::new(),
            reader: String::new(),
            log_key,
            issuer_secret,
            dir,
        };
        site.admin = site.credential_file("site-admin");
        site.reader = site.credential_file("site-reader");
        site
    }

    /// `name` in the site's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A new credential of `role` for this site, in a token file (0600); the file's path.
    fn credential_file(&self, role: &str) -> String {
        let secret = self
            .server
            .credential(&["--role", role, "--site", &self.name])
            .secret;
        let path = self.path(&format!("{role}.token"));
        std::fs::write(&path, secret).expect("writing a credential");
        set_mode(&path, 0o600);
        path.display().to_string()
    }

    /// Ingests a real ES256 token of `sub` with id `jti`; returns the JWT.
    pub fn ingest(&self, jti: &str, sub: &str) -> String {
        let token = self
            .issuer
            .mint(Algorithm::ES256, &self.issuer.claims(jti, sub));
        self.ingest_token(token)
    }

    /// Reports `token` to the ledger as its issuer does; returns it.
    pub fn ingest_token(&self, token: String) -> String {
        let reply = self.server.http().post_json(
            "/v1/issuances",
            Some(&self.issuer_secret),
            &json!({ "token": token }),
        );
        assert_eq!(reply.status, 201, "ingesting a token: {reply:?}");
        token
    }

    /// Runs the CLI, in an empty environment, against the ledger with the credential in
    /// `token_file`.
    pub fn cli(&self, token_file: &str, args: &[&str]) -> CliRun {
        let mut all = vec!["--server", self.server.url(), "--token-file", token_file];
        all.extend_from_slice(args);
        run_cli_with(&all, &[], None)
    }

    /// [`Site::cli`] as the site admin; panics, with the server's log, unless it exits 0.
    pub fn admin_ok(&self, args: &[&str]) -> CliRun {
        let run = self.cli(&self.admin, args);
        assert_eq!(
            run.code,
            0,
            "tokenledger {args:?}: {run:#?}\n{}",
            self.server.log_tail()
        );
        run
    }

    /// `blocklist pull` of this site into `out`, with the pinned log key and `extra`.
    pub fn pull(&self, token_file: &str, out: &Path, extra: &[&str]) -> CliRun {
        let out = out.display().to_string();
        let mut args = vec![
            "blocklist",
            "pull",
            "--site",
            &self.name,
            "--log-key",
            &self.log_key,
            "--out",
            &out,
        ];
        args.extend_from_slice(extra);
        self.cli(token_file, &args)
    }

    /// [`Site::pull`]; panics, with the server's log, unless it exits 0.
    pub fn pull_ok(&self, token_file: &str, out: &Path, extra: &[&str]) -> CliRun {
        let run = self.pull(token_file, out, extra);
        assert_eq!(
            run.code,
            0,
            "blocklist pull {extra:?}: {run:#?}\n{}",
            self.server.log_tail()
        );
        run
    }

    /// The site admin turns `jti` (from the site's logs) into the site's pseudonym and
    /// suspends that person for `scope`.
    pub fn suspend_person(&self, jti: &str, scope: &str) -> Suspension {
        let found = self.admin_ok(&["site", "pseudonym", jti, "--site", &self.name, "--json"]);
        let pseudonym = found.json()["pseudonym"]
            .as_str()
            .expect("a pseudonym")
            .to_string();
        let suspended = self.admin_ok(&[
            "site",
            "suspend",
            "--site",
            &self.name,
            "--pseudonym",
            &pseudonym,
            "--scope",
            scope,
            "--reason",
            "INC-7 cryptomining",
            "--reason-code",
            "misuse",
            "--json",
        ]);
        let id = suspended.json()["id"]
            .as_str()
            .expect("a suspension id")
            .to_string();
        Suspension { pseudonym, id }
    }

    /// The site admin lifts the suspension `id`.
    pub fn lift(&self, id: &str) {
        self.admin_ok(&[
            "site", "lift", id, "--site", &self.name, "--reason", "cleared",
        ]);
    }

    /// Writes `name`, a check.toml of `tokenledger check` for compute: `on_stale`, trusting
    /// `issuers`, with this site's ledger (`blocklist`, the pinned log key, and the site key
    /// from [`Site::site_key_file`], named relative to the configuration); returns its path.
    pub fn write_check_config(
        &self,
        name: &str,
        on_stale: &str,
        issuers: &[&str],
        blocklist: &Path,
    ) -> PathBuf {
        self.site_key_file();
        let issuers: Vec<String> = issuers.iter().map(|iss| format!("\"{iss}\"")).collect();
        let path = self.path(name);
        std::fs::write(
            &path,
            format!(
                "on_stale = \"{on_stale}\"\nscope = \"compute\"\nissuers = [{}]\n\n\
                 [[ledger]]\nsite = \"{}\"\nblocklist = \"{}\"\nlog_key = \"{}\"\n\
                 site_key_file = \"site.key\"\n",
                issuers.join(", "),
                self.name,
                blocklist.display(),
                self.log_key
            ),
        )
        .expect("writing check.toml");
        path
    }

    /// The site key (`tokenledger site key`) in `site.key` (0600), fetched on the first call.
    pub fn site_key_file(&self) -> PathBuf {
        let path = self.path("site.key");
        if !path.exists() {
            let key = self.admin_ok(&["site", "key", "--site", &self.name]);
            std::fs::write(&path, key.stdout.trim()).expect("writing the site key");
            set_mode(&path, 0o600);
        }
        path
    }
}
