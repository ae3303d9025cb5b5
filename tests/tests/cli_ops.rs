//! The operators' CLI end to end: the real `tokenledger` binary against the real server.
//! An issuer ships a chain of real signed tokens with `tokenledger ingest`; a VO security
//! officer resolves, searches, follows a timeline and audits with the CLI (API credential,
//! configuration profile, or an OIDC token found by WLCG bearer token discovery); foreign
//! officers and bad credentials get exit 4. A site admin turns a jti into the site's
//! pseudonym, suspends it, sees it in the verified signed blocklist, and lifts it; the VO
//! suspends at every site, resolves the pseudonym, links and merges identities.
//!
//! Every CLI run starts from an empty environment (no HOME, no bearer token variables), so
//! nothing from the machine's shell or configuration leaks in.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokenledger_e2e::both_backends;
use tokenledger_e2e::issuer::{TestIssuer, now_secs};
use tokenledger_e2e::{TestServer, cli_binary};

const ATLAS_ISS: &str = "https://atlas-auth.example/";
const AUDIENCE: &str = "tokenledger-test";

/// A server that verifies the atlas issuer's tokens and maps atlas officers' OIDC tokens
/// (`wlcg.groups` holding `/atlas/security`) to `vo-security` of atlas.
struct Ledger {
    server: TestServer,
    atlas: TestIssuer,
    dir: tempfile::TempDir,
}

/// One CLI run.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> Run {
        assert_eq!(self.code, 0, "{self:#?}");
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:#?}"))
    }
}

impl Ledger {
    fn start() -> Ledger {
        let dir = tempfile::tempdir().unwrap();
        let atlas = TestIssuer::new(ATLAS_ISS);
        let jwks = dir.path().join("atlas.json");
        atlas.write_jwks(&jwks);
        let config = format!(
            "{}\n[operators]\naudience = \"{AUDIENCE}\"\n\n\
             [[operator]]\niss = \"{ATLAS_ISS}\"\nclaim = \"wlcg.groups\"\n\
             value = \"/atlas/security\"\nrole = \"vo-security\"\nvo = \"atlas\"\n\n\
             [[site]]\nname = \"CERN-PROD\"\nvos = [\"atlas\"]\n\n\
             [[site]]\nname = \"RAL-LCG2\"\nvos = [\"atlas\"]\n",
            atlas.config_block(
                &format!("jwks_file = \"{}\"", jwks.display()),
                "[{ rule = \"fixed\", vo = \"atlas\" }]"
            )
        );
        let server = TestServer::start_with_config(&dir.path().join("data"), &config);
        Ledger { server, atlas, dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a 0600 token file holding `secret`; returns its path.
    fn token_file(&self, name: &str, secret: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, format!("{secret}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path.display().to_string()
    }

    /// Runs the CLI with `args` in an environment holding only `env`.
    fn cli_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let out = Command::new(cli_binary())
            .env_clear()
            .envs(env.iter().copied())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running tokenledger");
        Run {
            code: out.status.code().expect("tokenledger was killed"),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs the CLI against this server with the credential in `token_file`.
    fn cli(&self, token_file: &str, args: &[&str]) -> Run {
        let mut all = vec!["--server", self.server.url(), "--token-file", token_file];
        all.extend_from_slice(args);
        self.cli_env(&all, &[])
    }

    /// A token file of a new credential bound to a site (`site-admin`, `site-reader`).
    fn site_credential(&self, role: &str, site: &str) -> String {
        let secret = self
            .server
            .credential(&["--role", role, "--site", site])
            .secret;
        self.token_file(&format!("{role}-{site}.token"), &secret)
    }

    /// An operator's OIDC token from the atlas issuer, with these groups.
    fn operator_token(&self, groups: Value) -> String {
        let mut claims = self
            .atlas
            .claims(&format!("op-{}", now_secs()), "officer-7");
        claims["wlcg.groups"] = groups;
        claims["aud"] = json!(AUDIENCE);
        self.atlas.mint(Algorithm::RS256, &claims)
    }

    /// Ships alice's login (with refresh token rt-1), bob's token, alice's refreshed token,
    /// rucio's exchange of it, and a pilot token with `tokenledger ingest` (NDJSON of signed
    /// JWTs), the issuer credential coming from a configuration profile.
    fn ingest_chain(&self) {
        let issuer = self.server.create_credential("issuer", Some("atlas"));
        let mint = |jti: &str, sub: &str, extra: Value| {
            let mut claims = self.atlas.claims(jti, sub);
            for (k, v) in extra.as_object().unwrap() {
                claims[k] = v.clone();
            }
            self.atlas.mint(Algorithm::ES256, &claims)
        };
        let reports = [
            json!({"token": mint("login", "alice", json!({})), "grant_type": "authorization_code", "refresh_jti": "rt-1"}),
            json!({"token": mint("other", "bob", json!({}))}),
            json!({"token": mint("refreshed", "alice", json!({})), "grant_type": "refresh_token", "refresh_jti": "rt-1"}),
            json!({"token": mint("exchanged", "alice", json!({"act": {"sub": "rucio"}, "client_id": "rucio"})), "parent_jti": "refreshed"}),
            json!({"token": mint("pilot", "atlas-pilot", json!({"client_id": "atlas-pilot"}))}),
        ];
        let input = self.path("chain.ndjson");
        let lines: Vec<String> = reports.iter().map(Value::to_string).collect();
        std::fs::write(&input, lines.join("\n") + "\n").unwrap();

        let config_home = self.path("xdg");
        let config = config_home.join("tokenledger/config.toml");
        std::fs::create_dir_all(config.parent().unwrap()).unwrap();
        std::fs::write(
            &config,
            format!(
                "[profile.atlas-issuer]\nserver = \"{}\"\ntoken = \"{issuer}\"\n",
                self.server.url()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
        let xdg = config_home.display().to_string();
        let env = [
            ("XDG_CONFIG_HOME", xdg.as_str()),
            ("TOKENLEDGER_PROFILE", "atlas-issuer"),
        ];
        let run = self.cli_env(
            &[
                "ingest",
                "--format",
                "ndjson",
                "--quiet",
                input.to_str().unwrap(),
            ],
            &env,
        );
        assert_eq!(
            run.stdout.trim(),
            "accepted=5 duplicates=0 rejected=0 skipped=0",
            "{run:#?}"
        );
        assert_eq!(run.code, 0, "{run:#?}");

        // The same file, readable by others, is refused before anything is sent.
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
        let refused = self.cli_env(
            &["ingest", "--format", "ndjson", input.to_str().unwrap()],
            &env,
        );
        assert_eq!(refused.code, 2, "{refused:#?}");
        assert!(
            refused
                .stderr
                .contains("holds a `token` but group or others may access it (mode 0644)"),
            "{refused:#?}"
        );
        assert!(!refused.stderr.contains(&issuer), "never prints the token");
    }
}

fn jtis(links: &Value) -> Vec<&str> {
    links
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["jti"].as_str().or(l["entry"]["jti"].as_str()).unwrap())
        .collect()
}

both_backends!(an_officer_resolves_a_chain_to_the_human_with_proof);
fn an_officer_resolves_a_chain_to_the_human_with_proof() {
    let l = Ledger::start();
    l.ingest_chain();
    let officer = l.token_file(
        "officer.token",
        &l.server.create_credential("vo-security", Some("atlas")),
    );
    let key = l.server.log_key();

    let run = l
        .cli(
            &officer,
            &[
                "resolve",
                "exchanged",
                "--vo",
                "atlas",
                "--reason",
                "INC-42: leaked?",
                "--log-key",
                &key,
            ],
        )
        .ok();
    let out = &run.stdout;
    assert!(out.starts_with("Person pe-"), "{out}");
    assert!(out.contains(&format!("{ATLAS_ISS}  alice")), "{out}");
    for row in [
        "exchanged  token-exchange",
        "refreshed  refresh_token",
        "login      authorization_code",
    ] {
        assert!(out.contains(row), "{row}: {out}");
    }
    assert!(out.contains("Chain, this token first (complete)"), "{out}");
    assert!(out.contains("client_id   rucio"), "{out}");
    assert!(out.contains("Human at the root  pe-"), "{out}");
    assert!(out.contains("Resolution logged  log entry 5"), "{out}");
    assert!(
        out.contains("inclusion proof verified: entry 3 is in checkpoint"),
        "{out}"
    );
    assert!(
        out.contains("T") && out.contains("Z\n"),
        "RFC 3339 times: {out}"
    );

    let json = l
        .cli(
            &officer,
            &[
                "resolve",
                "exchanged",
                "--vo",
                "atlas",
                "--reason",
                "INC-42",
                "--json",
            ],
        )
        .ok()
        .json();
    assert_eq!(
        json["person"]["identities"],
        json!([{"iss": ATLAS_ISS, "sub": "alice"}])
    );
    assert_eq!(
        jtis(&json["chain"]["links"]),
        ["exchanged", "refreshed", "login"]
    );
    assert_eq!(json["human"]["id"], json["person"]["id"]);
    assert_eq!(json["issuance"]["entry"]["jti"], "exchanged");
    assert!(json["resolution_index"].is_u64() && json["checkpoint"].is_string());
    assert!(json["inclusion_proof"]["hashes"].is_array());

    let pilot = l
        .cli(
            &officer,
            &["resolve", "pilot", "--vo", "atlas", "--reason", "INC-42"],
        )
        .ok();
    assert!(
        pilot.stdout.contains("none: service/pilot token, no human"),
        "{pilot:#?}"
    );

    // A proof checked with another log key fails: exit 1, the answer still shown.
    let stranger = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    let failed = l.cli(
        &officer,
        &[
            "resolve",
            "login",
            "--vo",
            "atlas",
            "--reason",
            "INC-42",
            "--log-key",
            stranger,
        ],
    );
    assert_eq!(failed.code, 1, "{failed:#?}");
    assert!(failed.stderr.contains("verification failed"), "{failed:#?}");
    assert!(failed.stdout.contains("Person pe-"), "{failed:#?}");
    // A malformed key is a usage error found before anything is asked (and logged).
    let size = l.server.log_size();
    let bad = l.cli(
        &officer,
        &[
            "resolve",
            "login",
            "--vo",
            "atlas",
            "--reason",
            "x",
            "--log-key",
            "k",
        ],
    );
    assert_eq!(bad.code, 2, "{bad:#?}");
    assert_eq!(l.server.log_size(), size, "no resolution was logged");
    // Not found: exit 1.
    let missing = l.cli(
        &officer,
        &["resolve", "no-such", "--vo", "atlas", "--reason", "INC-42"],
    );
    assert_eq!(missing.code, 1, "{missing:#?}");
    assert!(missing.stderr.contains("answered 404"), "{missing:#?}");
    // A jti that needs encoding reaches the server as one path segment.
    let odd = l.cli(
        &officer,
        &[
            "resolve",
            "a/../b?c=d#e",
            "--vo",
            "atlas",
            "--reason",
            "x y&z",
        ],
    );
    assert_eq!(odd.code, 1, "404, not a routing accident: {odd:#?}");
    assert!(odd.stderr.contains("no issuance of this jti"), "{odd:#?}");
}

both_backends!(refusals_are_exit_4_and_name_the_credential_source);
fn refusals_are_exit_4_and_name_the_credential_source() {
    let l = Ledger::start();
    l.ingest_chain();
    let cms = l.token_file(
        "cms.token",
        &l.server.create_credential("vo-security", Some("cms")),
    );
    let run = l.cli(
        &cms,
        &["resolve", "login", "--vo", "atlas", "--reason", "x"],
    );
    assert_eq!(run.code, 4, "{run:#?}");
    assert!(run.stderr.contains("answered 403"), "{run:#?}");
    assert!(
        run.stderr.contains("the credential sent came from"),
        "{run:#?}"
    );
    assert!(run.stdout.is_empty());

    let bogus = l.token_file("bogus.token", "tlk_not_a_credential");
    for args in [
        &["resolve", "login", "--vo", "atlas", "--reason", "x"][..],
        &["audit", "--vo", "atlas"],
        &["search", "--vo", "atlas", "--reason", "x", "--scope", "s"],
    ] {
        let run = l.cli(&bogus, args);
        assert_eq!(run.code, 4, "{args:?}: {run:#?}");
        assert!(run.stderr.contains("answered 401"), "{run:#?}");
    }
    let input = l.path("one.ndjson");
    std::fs::write(&input, "{\"token\": \"a.b.c\"}\n").unwrap();
    let ingest = l.cli(
        &bogus,
        &[
            "ingest",
            "--format",
            "ndjson",
            "--quiet",
            input.to_str().unwrap(),
        ],
    );
    assert_eq!(ingest.code, 4, "{ingest:#?}");
    // Reading an entry needs admin or auditor: an issuer is refused, exit 4.
    let issuer = l.token_file(
        "issuer.token",
        &l.server.create_credential("issuer", Some("atlas")),
    );
    let key = l.server.log_key();
    let verify = l.cli(&issuer, &["verify", "--log-key", &key, "--entry", "0"]);
    assert_eq!(verify.code, 4, "{verify:#?}");

    // No credential anywhere: a usage error, before anything is sent.
    let none = l.cli_env(&["--server", l.server.url(), "audit", "--vo", "atlas"], &[]);
    assert_eq!(none.code, 2, "{none:#?}");
    assert!(none.stderr.contains("no credential"), "{none:#?}");
}

both_backends!(search_timeline_and_audit);
fn search_timeline_and_audit() {
    let l = Ledger::start();
    l.ingest_chain();
    let officer = l.token_file(
        "officer.token",
        &l.server.create_credential("vo-security", Some("atlas")),
    );
    let by_client = l
        .cli(
            &officer,
            &[
                "search",
                "--vo",
                "atlas",
                "--reason",
                "T-1",
                "--client-id",
                "rucio",
                "--csv",
            ],
        )
        .ok();
    let lines: Vec<&str> = by_client.stdout.lines().collect();
    assert_eq!(
        lines[0], "index,iat,jti,iss,sub,client_id,scopes,exp",
        "{by_client:#?}"
    );
    assert_eq!(lines.len(), 2, "{by_client:#?}");
    assert!(
        lines[1].starts_with("3,20") && lines[1].contains(",exchanged,"),
        "{lines:?}"
    );
    assert!(
        by_client.stderr.contains("logged as resolution entry"),
        "{by_client:#?}"
    );

    let from = (now_secs() - 600).to_string();
    let by_scope = l
        .cli(
            &officer,
            &[
                "search",
                "--vo",
                "atlas",
                "--reason",
                "T-2",
                "--scope",
                "compute.create",
                "--from",
                &from,
                "--limit",
                "2",
                "--json",
            ],
        )
        .ok()
        .json();
    assert_eq!(by_scope["issuances"].as_array().unwrap().len(), 2);
    let before = by_scope["next_before"].as_u64().unwrap();

    let resolved = l
        .cli(
            &officer,
            &[
                "resolve", "login", "--vo", "atlas", "--reason", "T-3", "--json",
            ],
        )
        .ok()
        .json();
    let person = resolved["person"]["id"].as_str().unwrap().to_string();
    let tokens = l
        .cli(
            &officer,
            &[
                "search", "--vo", "atlas", "--reason", "T-4", "--person", &person,
            ],
        )
        .ok();
    let rows: Vec<&str> = tokens.stdout.lines().collect();
    assert!(rows[0].starts_with("INDEX  IAT"), "{tokens:#?}");
    assert_eq!(
        rows.len(),
        1 + 3 + 1,
        "header, alice's three tokens, the log note: {tokens:#?}"
    );
    assert!(
        rows[1].contains("exchanged") && rows[3].contains("login"),
        "newest first"
    );
    let older = l
        .cli(
            &officer,
            &[
                "search",
                "--vo",
                "atlas",
                "--reason",
                "T-4",
                "--person",
                &person,
                "--before",
                &before.to_string(),
                "--json",
            ],
        )
        .ok()
        .json();
    assert!(
        older["issuances"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["index"].as_u64() < Some(before))
    );
    let nobody = l.cli(
        &officer,
        &[
            "search",
            "--vo",
            "atlas",
            "--reason",
            "T",
            "--person",
            "pe-nobody",
        ],
    );
    assert_eq!(nobody.code, 1, "{nobody:#?}");

    let timeline = l
        .cli(
            &officer,
            &["timeline", &person, "--vo", "atlas", "--reason", "T-5"],
        )
        .ok();
    assert!(
        timeline
            .stdout
            .starts_with(&format!("Person {person} in VO atlas")),
        "{timeline:#?}"
    );
    assert!(
        timeline
            .stdout
            .contains("issuance  jti=exchanged client_id=rucio"),
        "{timeline:#?}"
    );
    let json = l
        .cli(
            &officer,
            &[
                "timeline", &person, "--vo", "atlas", "--reason", "T-5", "--json",
            ],
        )
        .ok()
        .json();
    assert_eq!(json["events"].as_array().unwrap().len(), 3);

    let auditor = l.token_file(
        "auditor.token",
        &l.server.create_credential("auditor", Some("atlas")),
    );
    let audit = l.cli(&auditor, &["audit", "--vo", "atlas", "--csv"]).ok();
    let rows: Vec<&str> = audit.stdout.lines().collect();
    assert_eq!(rows[0], "index,when,who,action,target,reason,revealed");
    assert!(
        rows[1].contains(",timeline,") && rows[1].contains(",T-5,"),
        "newest first: {rows:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.contains(",search,client_id=rucio scope=*,T-1,1")),
        "{rows:?}"
    );
    let page = l
        .cli(&auditor, &["audit", "--vo", "atlas", "--limit", "1"])
        .ok();
    assert!(page.stdout.contains("more: --before"), "{page:#?}");
    let cms_auditor = l.token_file(
        "cms.token",
        &l.server.create_credential("auditor", Some("cms")),
    );
    assert_eq!(l.cli(&cms_auditor, &["audit", "--vo", "atlas"]).code, 4);
}

both_backends!(operators_use_their_oidc_token_from_bearer_token_discovery);
fn operators_use_their_oidc_token_from_bearer_token_discovery() {
    let l = Ledger::start();
    l.ingest_chain();
    let token = l.operator_token(json!(["/atlas", "/atlas/security"]));
    let run = l.cli_env(
        &[
            "--server",
            l.server.url(),
            "resolve",
            "login",
            "--vo",
            "atlas",
            "--reason",
            "INC-7",
            "--json",
        ],
        &[("BEARER_TOKEN", &format!(" {token}\n"))],
    );
    let index = run.ok().json()["resolution_index"].as_u64().unwrap();
    let logged = l
        .server
        .http()
        .entries(l.server.admin_secret(), index, index + 1);
    assert_eq!(
        logged[0].entry["requester"],
        format!("oidc:{ATLAS_ISS}#officer-7")
    );

    // From the runtime directory's bt_u<uid> file, found when nothing else is configured.
    let runtime = l.path("run");
    std::fs::create_dir_all(&runtime).unwrap();
    let uid = std::fs::metadata("/proc/self").unwrap();
    let uid = std::os::unix::fs::MetadataExt::uid(&uid);
    std::fs::write(runtime.join(format!("bt_u{uid}")), &token).unwrap();
    let runtime_dir = runtime.display().to_string();
    let run = l.cli_env(
        &[
            "--server",
            l.server.url(),
            "audit",
            "--vo",
            "atlas",
            "--limit",
            "1",
        ],
        &[("XDG_RUNTIME_DIR", runtime_dir.as_str())],
    );
    assert!(run.ok().stdout.contains("resolve_jti"));

    // A token without the officer's group is refused: exit 4.
    let plain = l.operator_token(json!(["/atlas"]));
    let run = l.cli_env(
        &[
            "--server",
            l.server.url(),
            "resolve",
            "login",
            "--vo",
            "atlas",
            "--reason",
            "x",
        ],
        &[("BEARER_TOKEN", plain.as_str())],
    );
    assert_eq!(run.code, 4, "{run:#?}");
    assert!(run.stderr.contains("came from $BEARER_TOKEN"), "{run:#?}");
}

both_backends!(completions_and_manual_pages);
fn completions_and_manual_pages() {
    let dir = tempfile::tempdir().unwrap();
    let l_cli = |args: &[&str]| {
        let out = Command::new(cli_binary())
            .env_clear()
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(l_cli(&["completions", "bash"]).contains("tokenledger__subcmd__resolve"));
    // The other two the packages ship: zsh's and fish's own forms, down to subcommands.
    let zsh = l_cli(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef tokenledger"), "{zsh}");
    assert!(zsh.contains("(pull)"), "{zsh}");
    let fish = l_cli(&["completions", "fish"]);
    assert!(fish.contains("complete -c tokenledger"), "{fish}");
    assert!(fish.contains("-a \"pull\""), "{fish}");
    assert!(l_cli(&["man"]).contains(".TH tokenledger 1"));
    let out = dir.path().join("man");
    let listed = l_cli(&["man", "--out", out.to_str().unwrap()]);
    for page in [
        "tokenledger.1",
        "tokenledger-resolve.1",
        "tokenledger-audit.1",
    ] {
        assert!(Path::new(&out).join(page).is_file(), "{page}: {listed}");
    }
}

both_backends!(a_site_suspends_a_pseudonym_sees_it_in_its_signed_blocklist_and_lifts_it);
/// A site admin's whole round: pseudonym, suspension, the signed blocklist, lift.
fn a_site_suspends_a_pseudonym_sees_it_in_its_signed_blocklist_and_lifts_it() {
    let l = Ledger::start();
    l.ingest_chain();
    let admin = l.site_credential("site-admin", "CERN-PROD");
    let reader = l.site_credential("site-reader", "CERN-PROD");
    let key = l.server.log_key();
    fn with<'a>(args: &[&'a str]) -> Vec<&'a str> {
        [args, &["--site", "CERN-PROD"]].concat()
    }

    let shown = l.cli(&admin, &with(&["site", "pseudonym", "login"])).ok();
    let pseudonym = l
        .cli(&admin, &with(&["site", "pseudonym", "login", "--json"]))
        .ok()
        .json()["pseudonym"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(pseudonym.starts_with("p1-"), "{pseudonym}");
    assert!(
        shown
            .stdout
            .contains(&format!("pseudonym  {pseudonym}\nvo         atlas\n")),
        "{shown:#?}"
    );
    assert!(!shown.stdout.contains("alice"), "never the identity");
    let again = l
        .cli(&admin, &with(&["site", "pseudonym", "refreshed", "--json"]))
        .ok()
        .json();
    assert_eq!(
        again["pseudonym"],
        pseudonym.as_str(),
        "same person, same pseudonym"
    );

    let suspended = l
        .cli(
            &admin,
            &with(&[
                "site",
                "suspend",
                "--pseudonym",
                &pseudonym,
                "--scope",
                "compute",
                "--reason",
                "INC-9: mining",
                "--reason-code",
                "compromised",
                "--expires",
                "7d",
                "--json",
            ]),
        )
        .ok()
        .json();
    let id = suspended["id"].as_str().unwrap().to_string();
    assert_eq!(suspended["active"], true);
    assert_eq!(suspended["pseudonym"], pseudonym.as_str());
    assert_eq!(suspended["scope"], "compute");
    let week = suspended["not_after"].as_i64().unwrap() - now_secs();
    assert!((7 * 86_400 - 60..=7 * 86_400).contains(&week), "{week}");

    // A site-reader (a CE) fetches the blocklist; the signature verifies with the log key.
    let blocklist = l
        .cli(
            &reader,
            &[
                "blocklist",
                "show",
                "--site",
                "CERN-PROD",
                "--log-key",
                &key,
            ],
        )
        .ok();
    let out = &blocklist.stdout;
    assert!(
        out.starts_with("site       CERN-PROD\nsequence   "),
        "{out}"
    );
    assert!(out.contains("signature  valid, by "), "{out}");
    let row = out
        .lines()
        .find(|l| l.contains(&id))
        .unwrap_or_else(|| panic!("{out}"));
    for cell in [
        "atlas",
        pseudonym.as_str(),
        "compute",
        "person",
        "compromised",
    ] {
        assert!(row.contains(cell), "{cell}: {row}");
    }
    let csv = l
        .cli(
            &reader,
            &[
                "blocklist",
                "show",
                "--site",
                "CERN-PROD",
                "--log-key",
                &key,
                "--csv",
            ],
        )
        .ok();
    assert!(csv.stdout.starts_with(
        "vo,pseudonym,scope,target,not_after,issued_before,suspension_id,reason_code\r\n"
    ));
    let json = l
        .cli(
            &reader,
            &[
                "blocklist",
                "show",
                "--site",
                "CERN-PROD",
                "--log-key",
                &key,
                "--json",
            ],
        )
        .ok()
        .json();
    assert_eq!(json["document"]["entries"][0]["suspension_id"], id.as_str());
    assert!(json["signature"].is_string() && json["signer"].is_string());
    // Another key, or another site's reader: refused.
    let stranger = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    let forged = l.cli(
        &reader,
        &[
            "blocklist",
            "show",
            "--site",
            "CERN-PROD",
            "--log-key",
            stranger,
        ],
    );
    assert_eq!(forged.code, 1, "{forged:#?}");
    assert!(
        forged.stderr.contains("refused") && forged.stdout.is_empty(),
        "{forged:#?}"
    );
    let ral = l.site_credential("site-reader", "RAL-LCG2");
    let other_site = l.cli(
        &ral,
        &[
            "blocklist",
            "show",
            "--site",
            "CERN-PROD",
            "--log-key",
            &key,
        ],
    );
    assert_eq!(other_site.code, 4, "{other_site:#?}");

    let list = l.cli(&admin, &with(&["site", "list", "--csv"])).ok();
    let row = list
        .stdout
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{list:#?}"));
    assert!(
        row.contains(",active,CERN-PROD,atlas,") && row.contains(&pseudonym),
        "{row}"
    );

    let lifted = l
        .cli(
            &admin,
            &with(&["site", "lift", &id, "--reason", "INC-9 closed"]),
        )
        .ok();
    assert!(
        lifted.stdout.contains("state        lifted 20"),
        "{lifted:#?}"
    );
    let again = l.cli(&admin, &with(&["site", "lift", &id, "--reason", "twice"]));
    assert_eq!(again.code, 2, "already lifted: 409 {again:#?}");
    let after = l
        .cli(
            &reader,
            &[
                "blocklist",
                "show",
                "--site",
                "CERN-PROD",
                "--log-key",
                &key,
            ],
        )
        .ok();
    assert!(
        !after.stdout.contains(&id),
        "gone from the blocklist: {after:#?}"
    );
    assert!(after.stdout.contains("(no suspensions)"), "{after:#?}");

    // A leaked token only: a token entry, not the person.
    let token = l
        .cli(
            &admin,
            &with(&[
                "site",
                "suspend",
                "--jti",
                "other",
                "--token-only",
                "--reason",
                "leaked",
                "--json",
            ]),
        )
        .ok()
        .json();
    assert_eq!(token["target"], "token");
    assert!(token["not_after"].is_i64(), "ends when the token expires");
    let listed = l
        .cli(
            &reader,
            &[
                "blocklist",
                "show",
                "--site",
                "CERN-PROD",
                "--log-key",
                &key,
            ],
        )
        .ok();
    let row = listed
        .stdout
        .lines()
        .find(|r| r.contains(token["id"].as_str().unwrap()))
        .unwrap();
    assert!(row.contains(" token "), "{row}");

    // The site key, base64 of 32 bytes; a warning that it is a secret.
    let site_key = l.cli(&admin, &with(&["site", "key"])).ok();
    assert_eq!(site_key.stdout.trim().len(), 44, "{site_key:#?}");
    assert!(
        site_key.stderr.contains("secret key of site CERN-PROD"),
        "{site_key:#?}"
    );

    let sighting = l
        .cli(
            &admin,
            &with(&[
                "site",
                "sighting",
                "--jti",
                "login",
                "--host",
                "wn-17.cern.ch",
                "--job-id",
                "4242",
            ]),
        )
        .ok();
    assert!(
        sighting.stdout.starts_with("sighting logged as log entry "),
        "{sighting:#?}"
    );
    let future = l.cli(
        &admin,
        &with(&[
            "site",
            "sighting",
            "--jti",
            "login",
            "--seen-at",
            "2999-01-01T00:00:00Z",
        ]),
    );
    assert_eq!(future.code, 2, "{future:#?}");

    // The VO's timeline of the person shows the site's suspension, lift and sighting.
    let officer = l.token_file(
        "officer.token",
        &l.server.create_credential("vo-security", Some("atlas")),
    );
    let person = l
        .cli(
            &officer,
            &[
                "resolve", "login", "--vo", "atlas", "--reason", "INC-9", "--json",
            ],
        )
        .ok()
        .json()["person"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let timeline = l
        .cli(
            &officer,
            &["timeline", &person, "--vo", "atlas", "--reason", "INC-9"],
        )
        .ok();
    let kinds = |kind: &str| {
        timeline
            .stdout
            .lines()
            .filter(|r| r.split_whitespace().nth(2) == Some(kind))
            .count()
    };
    assert_eq!(kinds("sighting"), 1, "{timeline:#?}");
    assert!(
        timeline
            .stdout
            .contains("site=CERN-PROD host=wn-17.cern.ch job_id=4242"),
        "{timeline:#?}"
    );
    assert_eq!(
        (kinds("suspension"), kinds("lift")),
        (1, 1),
        "{timeline:#?}"
    );

    // Another site's admin learns nothing about CERN-PROD.
    let ral_admin = l.site_credential("site-admin", "RAL-LCG2");
    let refused = l.cli(&ral_admin, &with(&["site", "pseudonym", "login"]));
    assert_eq!(refused.code, 4, "{refused:#?}");
    let missing = l.cli(&admin, &with(&["site", "pseudonym", "no-such-jti"]));
    assert_eq!(missing.code, 1, "{missing:#?}");
}

both_backends!(a_vo_suspends_everywhere_resolves_pseudonyms_links_and_merges);
/// A VO officer suspends at every site, resolves a site's pseudonym, links and merges.
fn a_vo_suspends_everywhere_resolves_pseudonyms_links_and_merges() {
    let l = Ledger::start();
    l.ingest_chain();
    let officer = l.token_file(
        "officer.token",
        &l.server.create_credential("vo-security", Some("atlas")),
    );
    let admin = l.site_credential("site-admin", "RAL-LCG2");
    let key = l.server.log_key();
    let person_of = |jti: &str| {
        l.cli(
            &officer,
            &[
                "resolve", jti, "--vo", "atlas", "--reason", "INC-5", "--json",
            ],
        )
        .ok()
        .json()["person"]["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let alice = person_of("login");
    let bob = person_of("other");

    let wide = l
        .cli(
            &officer,
            &[
                "vo", "suspend", "--vo", "atlas", "--person", &alice, "--reason", "INC-5", "--json",
            ],
        )
        .ok()
        .json();
    let id = wide["id"].as_str().unwrap().to_string();
    assert_eq!(wide["person"], alice.as_str());
    assert_eq!(wide["site"], Value::Null);
    let at_ral = l
        .cli(
            &admin,
            &["blocklist", "show", "--site", "RAL-LCG2", "--log-key", &key],
        )
        .ok();
    assert!(
        at_ral
            .stdout
            .lines()
            .any(|r| r.contains(&id) && r.contains(" all ")),
        "{at_ral:#?}"
    );

    let site_suspension = l
        .cli(
            &admin,
            &[
                "site", "suspend", "--site", "RAL-LCG2", "--jti", "other", "--reason", "INC-6",
                "--json",
            ],
        )
        .ok()
        .json();
    let ral_pseudonym = site_suspension["pseudonym"].as_str().unwrap().to_string();
    let listed = l
        .cli(&officer, &["vo", "suspensions", "--vo", "atlas"])
        .ok();
    let rows: Vec<&str> = listed.stdout.lines().collect();
    assert!(rows[0].starts_with("ID  "), "{listed:#?}");
    assert!(
        rows.iter().any(|r| r.contains(&id) && r.contains(&alice)),
        "{listed:#?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.contains("RAL-LCG2") && r.contains(&ral_pseudonym)),
        "{listed:#?}"
    );

    let resolved = l
        .cli(
            &officer,
            &[
                "vo",
                "pseudonym",
                &ral_pseudonym,
                "--vo",
                "atlas",
                "--reason",
                "INC-6",
            ],
        )
        .ok();
    assert!(
        resolved
            .stdout
            .starts_with(&format!("Person {bob} in VO atlas")),
        "{resolved:#?}"
    );
    assert!(resolved.stdout.contains("bob"), "{resolved:#?}");

    let linked = l
        .cli(
            &officer,
            &[
                "vo",
                "link",
                &alice,
                "--vo",
                "atlas",
                "--iss",
                "x509",
                "--sub",
                "/DC=ch/DC=cern/CN=alice",
                "--reason",
                "INC-7",
                "--json",
            ],
        )
        .ok()
        .json();
    assert!(
        linked["identities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["iss"] == "x509"),
        "{linked}"
    );
    let merged = l
        .cli(
            &officer,
            &[
                "vo", "merge", &alice, "--other", &bob, "--vo", "atlas", "--reason", "INC-8",
            ],
        )
        .ok();
    assert!(
        merged.stdout.contains("  bob") && merged.stdout.contains("  alice"),
        "{merged:#?}"
    );

    let lifted = l
        .cli(
            &officer,
            &[
                "vo",
                "lift",
                &id,
                "--vo",
                "atlas",
                "--reason",
                "INC-5 closed",
                "--json",
            ],
        )
        .ok()
        .json();
    assert!(lifted["lifted_at"].is_i64());
    assert_eq!(lifted["active"], false);
    let cms = l.token_file(
        "cms.token",
        &l.server.create_credential("vo-security", Some("cms")),
    );
    let refused = l.cli(&cms, &["vo", "suspensions", "--vo", "atlas"]);
    assert_eq!(refused.code, 4, "{refused:#?}");
}
