//! Site enforcement end to end: the real server, the real `tokenledger` CLI. A site admin
//! suspends a pseudonym; `tokenledger blocklist pull` installs the signed blocklist; the
//! CE plugin `tokenledger check` (HTCondor and ARC protocols, and the human mode) refuses the
//! suspended user and only them; a lift is enforced at the next pull. Pulls refuse tampered,
//! foreign-key, rolled-back, expired and foreign-site documents and keep the old file; `check`
//! on a tampered file, or with a site key it cannot use, follows `on_stale`; it never waits on
//! a FIFO planted where a file should be; an older blocklist planted after its cache is
//! deleted is refused by the high-water mark beside the site key. Exports (HTCondor mapfile,
//! ARC list, dCache banfile, Argus, text) arrive through `pull` in the formats of
//! INTEGRATIONS.md.
//!
//! Every CLI run starts from an empty environment, so nothing of the machine leaks in.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokenledger_core::blocklist::{Blocklist, SignedBlocklist, SignedDocument};
use tokenledger_core::note::NoteSigner;
use tokenledger_e2e::both_backends;
use tokenledger_e2e::issuer::{JwksServer, TestIssuer, now_secs};
use tokenledger_e2e::site::{Site, Suspension, check_person};
use tokenledger_e2e::{CliRun, cli_binary, run_cli_with, time_cli_with};

/// An issuer whose URL holds slashes (a Keycloak realm), so ARC's `%D` is
/// `https://idp.example/realms/atlas//<sub>`.
const ATLAS_ISS: &str = "https://idp.example/realms/atlas/";
const SITE: &str = "CERN-PROD";

/// CERN-PROD with a ledger whose atlas issuer is [`ATLAS_ISS`].
fn start_site() -> Site {
    Site::start(
        tempfile::tempdir().unwrap(),
        SITE,
        TestIssuer::new(ATLAS_ISS),
    )
}

/// Links the certificate subject `dn` to the person behind `jti`, as the VO's officer.
fn link_x509(s: &Site, jti: &str, dn: &str) {
    let officer = s.server.create_credential("vo-security", Some("atlas"));
    let http = s.server.http();
    let resolved = http.get(
        &format!("/v1/vos/atlas/tokens/{jti}?reason=INC-7"),
        Some(&officer),
    );
    let person = resolved.json()["person"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let linked = http.post_json(
        &format!("/v1/vos/atlas/persons/{person}/identities"),
        Some(&officer),
        &json!({"iss": "x509", "sub": dn, "reason": "migration"}),
    );
    assert_eq!(linked.status, 200, "{linked:?}");
}

/// Writes the site key file (0600) and check.toml trusting the realms' prefix and
/// [`ATLAS_ISS`]; returns the configuration's path.
fn check_config(s: &Site, name: &str, on_stale: &str, blocklist: &Path) -> PathBuf {
    s.write_check_config(
        name,
        on_stale,
        &["https://idp.example/realms/", ATLAS_ISS],
        blocklist,
    )
}

/// The server's own log signing key, from its data directory, to forge documents that
/// are validly signed yet must be refused (expired, another site).
fn server_signer(s: &Site) -> NoteSigner {
    let text = std::fs::read_to_string(s.server.dir().join("log.key")).unwrap();
    NoteSigner::parse(text.trim()).unwrap()
}

/// The decoded payload of a JWT, as HTCondor writes it to the plugin's stdin.
fn payload(jwt: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jwt.split('.').nth(1).unwrap())
        .unwrap()
}

/// `tokenledger check --htcondor` as HTCondor runs it: payload on stdin, BEARER_TOKEN_0_*.
fn htcondor(config: &Path, jwt: &str, sub: &str, jti: &str) -> CliRun {
    timed_htcondor(config, jwt, sub, jti).0
}

/// [`htcondor`], and how long it took.
fn timed_htcondor(config: &Path, jwt: &str, sub: &str, jti: &str) -> (CliRun, Duration) {
    let config = config.display().to_string();
    time_cli_with(
        &["check", "--htcondor", "--config", &config],
        &[
            ("BEARER_TOKEN_0_ISSUER", ATLAS_ISS),
            ("BEARER_TOKEN_0_SUBJECT", sub),
            ("BEARER_TOKEN_0_CLAIM_jti_0", jti),
            ("BEARER_TOKEN_0_SCOPE_0", "compute.create"),
        ],
        Some(&payload(jwt)),
    )
}

/// `tokenledger check --arc %D`, nothing on stdin or in the environment (ARC 6).
fn arc(config: &Path, d: &str) -> CliRun {
    let config = config.display().to_string();
    run_cli_with(&["check", "--arc", d, "--config", &config], &[], None)
}

/// `tokenledger check --iss ATLAS_ISS --sub <sub>`, as a person asks.
fn person(config: &Path, sub: &str) -> CliRun {
    check_person(config, ATLAS_ISS, sub)
}

/// `tokenledger check --token FILE` with the JWT written to a file.
fn person_token(config: &Path, jwt: &str) -> CliRun {
    let file = config.with_extension("jwt");
    std::fs::write(&file, jwt).unwrap();
    let (config, file) = (config.display().to_string(), file.display().to_string());
    run_cli_with(&["check", "--config", &config, "--token", &file], &[], None)
}

both_backends!(a_suspension_is_enforced_by_htcondor_and_arc_until_it_is_lifted);
fn a_suspension_is_enforced_by_htcondor_and_arc_until_it_is_lifted() {
    let s = start_site();
    let alice = s.ingest("t-alice", "alice");
    let bob = s.ingest("t-bob", "bob");
    let blocklist = s.path("var/CERN-PROD.json");
    std::fs::create_dir_all(blocklist.parent().unwrap()).unwrap();
    let config = check_config(&s, "check.toml", "deny", &blocklist);

    // Before any pull: no blocklist, on_stale = deny refuses everyone, and says why.
    let missing = htcondor(&config, &bob, "bob", "t-bob");
    assert_eq!(missing.code, 2, "{missing:#?}");
    assert!(missing.stderr.contains("is missing"), "{missing:#?}");
    assert!(
        missing.stderr.contains("on_stale = \"deny\""),
        "{missing:#?}"
    );

    // A site reader pulls the (empty) blocklist: 0 updated, then 3 not modified (ETag).
    let first = s.pull(&s.reader, &blocklist, &[]);
    assert_eq!(first.code, 0, "{first:#?}");
    assert!(
        first
            .stdout
            .contains("sequence 1 (was none), 0 suspensions"),
        "{first:#?}"
    );
    assert_eq!(std::fs::metadata(&blocklist).unwrap().mode() & 0o777, 0o644);
    let etag = std::fs::read_to_string(s.path("var/CERN-PROD.json.etag")).unwrap();
    assert_eq!(
        etag, "\"CERN-PROD-1\"\n1\n",
        "the ETag, and the sequence it is for"
    );
    let again = s.pull(&s.reader, &blocklist, &[]);
    assert_eq!(again.code, 3, "{again:#?}");
    assert_eq!(again.stdout, "", "quiet when not at a terminal");
    assert_eq!(
        htcondor(&config, &alice, "alice", "t-alice").code,
        1,
        "not suspended: decline"
    );

    // The site admin suspends alice; the next pull brings it; HTCondor refuses her.
    let Suspension {
        pseudonym,
        id: suspension,
    } = s.suspend_person("t-alice", "compute");
    let pulled = s.pull(&s.reader, &blocklist, &[]);
    assert_eq!(pulled.code, 0, "{pulled:#?}");
    assert!(
        pulled.stdout.contains("(was 1), 1 suspensions"),
        "{pulled:#?}"
    );
    let denied = htcondor(&config, &alice, "alice", "t-alice");
    assert_eq!(
        denied.code, 2,
        "suspended: authentication fails {denied:#?}"
    );
    assert_eq!(denied.stdout, "");
    assert_eq!(denied.stderr.lines().count(), 1, "one line: {denied:#?}");
    assert!(
        denied.stderr.contains(&pseudonym) && denied.stderr.contains(&suspension),
        "{denied:#?}"
    );
    assert!(
        !denied.stderr.contains("alice"),
        "no identity in the line: {denied:#?}"
    );
    assert!(
        s.path("var/CERN-PROD.json.cache").exists(),
        "the verified cache is beside the file"
    );
    // Again from the cache, and from the environment alone (empty stdin), and with the
    // payload alone (no environment).
    assert_eq!(htcondor(&config, &alice, "alice", "t-alice").code, 2);
    let config_s = config.display().to_string();
    let env_only = run_cli_with(
        &["check", "--htcondor", "--config", &config_s],
        &[
            ("BEARER_TOKEN_0_ISSUER", ATLAS_ISS),
            ("BEARER_TOKEN_0_SUBJECT", "alice"),
        ],
        Some(b""),
    );
    assert_eq!(env_only.code, 2, "{env_only:#?}");
    let stdin_only = run_cli_with(
        &["check", "--htcondor", "--config", &config_s],
        &[],
        Some(&payload(&alice)),
    );
    assert_eq!(stdin_only.code, 2, "{stdin_only:#?}");
    // A caller that keeps stdin open: the plugin gives up on it within its bound (2 s) and
    // decides from the environment.
    let mut held_open = Command::new(cli_binary())
        .env_clear()
        .env("BEARER_TOKEN_0_ISSUER", ATLAS_ISS)
        .env("BEARER_TOKEN_0_SUBJECT", "alice")
        .args(["check", "--htcondor", "--config", &config_s])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = held_open.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(30) {
            held_open.kill().unwrap();
            panic!("check --htcondor blocked on an open stdin");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(2), "decided from the environment");
    drop(held_open.stdin.take());
    // Another user: declined, nothing said.
    let other = htcondor(&config, &bob, "bob", "t-bob");
    assert_eq!((other.code, other.stderr.as_str()), (1, ""), "{other:#?}");

    // ARC: %D is <iss>/<sub>, and the issuer URL holds slashes; exit 0 = suspended.
    assert_eq!(arc(&config, &format!("{ATLAS_ISS}/alice")).code, 0);
    assert_eq!(arc(&config, &format!("{ATLAS_ISS}/bob")).code, 1);
    assert_eq!(
        arc(&config, "https://unknown.example//alice").code,
        1,
        "not one of the ledger's issuers"
    );
    // A-REX passes only %D (its own environment is inherited whole): variables that happen
    // to be set never override it.
    let env_ignored = run_cli_with(
        &[
            "check",
            "--arc",
            &format!("{ATLAS_ISS}/bob"),
            "--config",
            &config_s,
        ],
        &[
            ("BEARER_TOKEN_0_ISSUER", ATLAS_ISS),
            ("BEARER_TOKEN_0_SUBJECT", "alice"),
        ],
        None,
    );
    assert_eq!(env_ignored.code, 1, "decided on %D: {env_ignored:#?}");
    // A request without an identity (an empty %D): no match, nothing said.
    let nobody = run_cli_with(&["check", "--arc", "", "--config", &config_s], &[], None);
    assert_eq!(
        (nobody.code, nobody.stderr.as_str()),
        (1, ""),
        "{nobody:#?}"
    );

    // A person asks: by token (not verified), or by iss/sub; --json for details.
    std::fs::write(s.path("alice.jwt"), &alice).unwrap();
    let alice_jwt = s.path("alice.jwt").display().to_string();
    let asked = run_cli_with(
        &["check", "--config", &config_s, "--token", &alice_jwt],
        &[],
        None,
    );
    assert_eq!(asked.code, 1, "{asked:#?}");
    assert_eq!(
        asked.stdout,
        format!("suspended {pseudonym} compute misuse\n")
    );
    let from_stdin = run_cli_with(
        &["check", "--config", &config_s, "--token", "-", "--json"],
        &[],
        Some(alice.as_bytes()),
    );
    let details = from_stdin.json();
    assert_eq!(details["decision"], "suspended");
    assert_eq!(details["suspension_id"], suspension.as_str());
    assert_eq!(details["site"], SITE);
    let bob_asked = run_cli_with(
        &[
            "check", "--config", &config_s, "--iss", ATLAS_ISS, "--sub", "bob",
        ],
        &[],
        None,
    );
    assert_eq!(
        (bob_asked.code, bob_asked.stdout.as_str()),
        (0, "allowed\n"),
        "{bob_asked:#?}"
    );
    let storage = run_cli_with(
        &[
            "check", "--config", &config_s, "--iss", ATLAS_ISS, "--sub", "alice", "--scope",
            "storage",
        ],
        &[],
        None,
    );
    assert_eq!(
        storage.stdout, "allowed\n",
        "a compute suspension does not block storage"
    );

    // Lifted: the next pull brings it, and alice is declined (not refused) again.
    s.lift(&suspension);
    assert_eq!(
        htcondor(&config, &alice, "alice", "t-alice").code,
        2,
        "enforced until pulled"
    );
    assert_eq!(s.pull(&s.reader, &blocklist, &[]).code, 0);
    assert_eq!(htcondor(&config, &alice, "alice", "t-alice").code, 1);
    assert_eq!(arc(&config, &format!("{ATLAS_ISS}/alice")).code, 1);
}

both_backends!(a_token_suspension_blocks_that_jti_only);
fn a_token_suspension_blocks_that_jti_only() {
    let s = start_site();
    let leaked = s.ingest("t-leaked", "carol");
    let fine = s.ingest("t-fine", "carol");
    let suspended = s.cli(
        &s.admin,
        &[
            "site",
            "suspend",
            "--site",
            SITE,
            "--jti",
            "t-leaked",
            "--token-only",
            "--reason",
            "leaked in a log",
        ],
    );
    assert_eq!(suspended.code, 0, "{suspended:#?}");
    let blocklist = s.path("bl.json");
    assert_eq!(s.pull(&s.reader, &blocklist, &[]).code, 0);
    let config = check_config(&s, "check.toml", "deny", &blocklist);
    assert_eq!(
        htcondor(&config, &leaked, "carol", "t-leaked").code,
        2,
        "the jti comes from the payload"
    );
    assert_eq!(
        htcondor(&config, &fine, "carol", "t-fine").code,
        1,
        "carol's other token"
    );
}

both_backends!(pull_refuses_bad_documents_and_keeps_the_old_file);
fn pull_refuses_bad_documents_and_keeps_the_old_file() {
    let s = start_site();
    s.ingest("t-alice", "alice");
    let blocklist = s.path("bl.json");
    assert_eq!(s.pull(&s.reader, &blocklist, &[]).code, 0);
    let sequence_1 = std::fs::read_to_string(&blocklist).unwrap();
    s.suspend_person("t-alice", "compute");
    assert_eq!(s.pull(&s.reader, &blocklist, &[]).code, 0);
    let held = std::fs::read_to_string(&blocklist).unwrap();
    let current: SignedBlocklist = serde_json::from_str(&held).unwrap();
    let sequence = current.document.sequence;
    assert!(sequence >= 2);

    let mut tampered: Value = serde_json::from_str(&held).unwrap();
    tampered["document"]["sequence"] = json!(sequence + 5);
    tampered["document"]["entries"] = json!([]);
    let other_key = NoteSigner::from_seed(server_signer(&s).verifier().name(), [9; 32]).unwrap();
    let fresh = |site: &str, sequence: u64, expires_at: i64| Blocklist {
        site: site.to_string(),
        sequence,
        issued_at: now_secs() - 10,
        expires_at,
        entries: vec![],
    };
    let signed =
        |doc: Blocklist, signer: &NoteSigner| serde_json::to_string(&doc.sign(signer)).unwrap();
    let real = server_signer(&s);
    for (body, says) in [
        (tampered.to_string(), "signature does not verify"),
        (
            signed(fresh(SITE, sequence + 1, now_secs() + 600), &other_key),
            "not by the pinned log key",
        ),
        (sequence_1.clone(), "rollback"),
        (
            signed(fresh(SITE, sequence + 1, now_secs() - 60), &real),
            "expired",
        ),
        (
            signed(fresh("RAL-LCG2", sequence + 1, now_secs() + 600), &real),
            "not `CERN-PROD`",
        ),
        ("{\"error\": 1}".to_string(), "not a signed document"),
    ] {
        // A plain HTTP server answering every request with `body` (a mirror gone bad).
        let mirror = JwksServer::start(body);
        let base = mirror.url.trim_end_matches("/jwks.json").to_string();
        let out = blocklist.display().to_string();
        let refused = run_cli_with(
            &[
                "blocklist",
                "pull",
                "--server",
                &base,
                "--token-file",
                &s.reader,
                "--site",
                SITE,
                "--log-key",
                &s.log_key,
                "--out",
                &out,
            ],
            &[],
            None,
        );
        assert_eq!(refused.code, 1, "{says}: {refused:#?}");
        assert!(refused.stderr.contains(says), "{says}: {refused:#?}");
        assert!(refused.stderr.contains("is left as it was"), "{refused:#?}");
        assert_eq!(
            std::fs::read_to_string(&blocklist).unwrap(),
            held,
            "{says}: the old file is kept"
        );
    }

    // Usage, network and credential failures: 2, 2, 4; the file is untouched.
    let out = blocklist.display().to_string();
    let unreachable = run_cli_with(
        &[
            "blocklist",
            "pull",
            "--server",
            "http://127.0.0.1:9",
            "--token-file",
            &s.reader,
            "--site",
            SITE,
            "--log-key",
            &s.log_key,
            "--out",
            &out,
        ],
        &[],
        None,
    );
    assert_eq!(unreachable.code, 2, "{unreachable:#?}");
    let bad_token = s.path("bad.token");
    std::fs::write(&bad_token, "tlk_nope").unwrap();
    std::fs::set_permissions(&bad_token, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        s.pull(&bad_token.display().to_string(), &blocklist, &[])
            .code,
        4
    );
    let export = s.pull(&s.reader, &s.path("ban.conf"), &["--format", "htcondor"]);
    assert_eq!(export.code, 4, "exports are for site admins: {export:#?}");
    assert!(!s.path("ban.conf").exists());
    let usage = s.pull(&s.reader, &blocklist, &["--op-alias", "https://i/=A"]);
    assert_eq!(usage.code, 2, "{usage:#?}");
    assert_eq!(std::fs::read_to_string(&blocklist).unwrap(), held);
}

/// A site where alice is suspended (compute) and bob is not, and the blocklist pulled to
/// `bl.json`: (the site, alice's JWT (jti `t-alice`), bob's (`t-bob`), the blocklist, a
/// check.toml with on_stale = "deny", one with "allow").
fn enforcing() -> (Site, String, String, PathBuf, PathBuf, PathBuf) {
    let s = start_site();
    let alice = s.ingest("t-alice", "alice");
    let bob = s.ingest("t-bob", "bob");
    s.suspend_person("t-alice", "compute");
    let blocklist = s.path("bl.json");
    assert_eq!(s.pull(&s.reader, &blocklist, &[]).code, 0);
    let deny = check_config(&s, "deny.toml", "deny", &blocklist);
    let allow = check_config(&s, "allow.toml", "allow", &blocklist);
    (s, alice, bob, blocklist, deny, allow)
}

both_backends!(check_follows_on_stale_for_a_tampered_blocklist);
fn check_follows_on_stale_for_a_tampered_blocklist() {
    let (s, alice, bob, blocklist, deny, allow) = enforcing();
    assert_eq!(htcondor(&deny, &alice, "alice", "t-alice").code, 2);
    assert_eq!(htcondor(&deny, &bob, "bob", "t-bob").code, 1);

    // Someone drops alice's entry from the file: the signature no longer verifies, whatever
    // the cache says.
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(&blocklist).unwrap()).unwrap();
    doc["document"]["entries"] = json!([]);
    std::fs::write(&blocklist, doc.to_string()).unwrap();
    for (who, jwt, sub) in [("alice", &alice, "alice"), ("bob", &bob, "bob")] {
        let denied = htcondor(&deny, jwt, sub, "-");
        assert_eq!(denied.code, 2, "{who}: {denied:#?}");
        assert!(
            denied.stderr.contains("signature does not verify"),
            "{denied:#?}"
        );
        assert!(denied.stderr.contains("on_stale = \"deny\""), "{denied:#?}");
        assert_eq!(
            arc(&deny, &format!("{ATLAS_ISS}/{sub}")).code,
            0,
            "{who}: ARC denies too"
        );
    }
    let deny_s = deny.display().to_string();
    let person = run_cli_with(
        &[
            "check", "--config", &deny_s, "--iss", ATLAS_ISS, "--sub", "bob",
        ],
        &[],
        None,
    );
    assert_eq!(
        (person.code, person.stdout.as_str()),
        (1, "denied stale CERN-PROD\n"),
        "{person:#?}"
    );

    // on_stale = allow lets everyone in, with a warning.
    let allowed = htcondor(&allow, &alice, "alice", "t-alice");
    assert_eq!(allowed.code, 1, "{allowed:#?}");
    assert!(
        allowed
            .stderr
            .contains("allowed because on_stale = \"allow\""),
        "{allowed:#?}"
    );
    assert_eq!(arc(&allow, &format!("{ATLAS_ISS}/alice")).code, 1);

    // A good pull repairs it.
    assert_eq!(
        s.pull(&s.reader, &blocklist, &[]).code,
        0,
        "the bad file does not block the pull"
    );
    assert_eq!(htcondor(&deny, &alice, "alice", "t-alice").code, 2);
    assert_eq!(htcondor(&deny, &bob, "bob", "t-bob").code, 1);
}

both_backends!(a_site_key_check_cannot_use_is_decided_by_on_stale_in_every_protocol);
fn a_site_key_check_cannot_use_is_decided_by_on_stale_in_every_protocol() {
    let (s, alice, bob, _, deny, allow) = enforcing();
    // The file denies, its only ledger allows: the ledger's own policy decides.
    let ledger_allows = s.path("ledger-allows.toml");
    std::fs::write(
        &ledger_allows,
        format!(
            "{}on_stale = \"allow\"\n",
            std::fs::read_to_string(&deny).unwrap()
        ),
    )
    .unwrap();
    assert_eq!(htcondor(&deny, &alice, "alice", "t-alice").code, 2);
    assert_eq!(htcondor(&allow, &bob, "bob", "t-bob").code, 1);

    // The site key readable by others (0644): that ledger cannot be used.
    let key = s.path("site.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let says = "is a secret but group or others may access it";
    for (who, jwt) in [("alice", &alice), ("bob", &bob)] {
        let jti = format!("t-{who}");
        let d = format!("{ATLAS_ISS}/{who}");

        // deny: every protocol keeps everyone out, and says why.
        let denied = htcondor(&deny, jwt, who, &jti);
        assert_eq!(denied.code, 2, "{who}: {denied:#?}");
        assert_eq!(denied.stderr.lines().count(), 1, "one line: {denied:#?}");
        assert!(denied.stderr.contains(says), "{denied:#?}");
        assert!(denied.stderr.contains("on_stale = \"deny\""), "{denied:#?}");
        assert_eq!(arc(&deny, &d).code, 0, "{who}: ARC matches (denyaccess)");
        let asked = person(&deny, who);
        assert_eq!(
            (asked.code, asked.stdout.as_str()),
            (1, "denied stale CERN-PROD\n"),
            "{who}: {asked:#?}"
        );
        assert!(asked.stderr.contains(says), "{asked:#?}");
        assert_eq!(person_token(&deny, jwt).code, 1, "{who}");

        // allow: every protocol lets everyone in (alice too), with a warning.
        for config in [&allow, &ledger_allows] {
            let allowed = htcondor(config, jwt, who, &jti);
            assert_eq!(allowed.code, 1, "{who}: {allowed:#?}");
            assert!(
                allowed.stderr.contains(says)
                    && allowed
                        .stderr
                        .contains("allowed because on_stale = \"allow\""),
                "{allowed:#?}"
            );
            assert_eq!(arc(config, &d).code, 1, "{who}: ARC does not match");
            let asked = person(config, who);
            assert_eq!(
                (asked.code, asked.stdout.as_str()),
                (0, "allowed\n"),
                "{who}: {asked:#?}"
            );
            assert_eq!(person_token(config, jwt).code, 0, "{who}");
        }
    }

    // Missing: the same.
    std::fs::rename(&key, s.path("site.key.away")).unwrap();
    let missing = htcondor(&deny, &bob, "bob", "t-bob");
    assert_eq!(missing.code, 2, "{missing:#?}");
    assert!(
        missing.stderr.contains("reading the site key"),
        "{missing:#?}"
    );
    assert_eq!(htcondor(&allow, &alice, "alice", "t-alice").code, 1);

    // Back at 0600: enforced again.
    std::fs::rename(s.path("site.key.away"), &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    for config in [&deny, &allow] {
        assert_eq!(htcondor(config, &alice, "alice", "t-alice").code, 2);
        assert_eq!(htcondor(config, &bob, "bob", "t-bob").code, 1);
    }
}

/// Makes a FIFO at `path` (as whoever can write its directory could).
fn mkfifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    let made = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
}

/// SQLite only: `check` reads files on the node and never the ledger's database, so the
/// backend changes nothing here (and the time bound need not be met twice on a busy host).
#[test]
fn check_never_waits_on_a_fifo_planted_where_a_file_should_be() {
    let (s, alice, bob, blocklist, deny, allow) = enforcing();
    let held = std::fs::read(&blocklist).unwrap();
    let within = |(run, took): (CliRun, Duration), what: &str| -> CliRun {
        assert!(
            took < Duration::from_millis(100),
            "{what}: took {took:?}: {run:#?}"
        );
        run
    };

    // At the blocklist's path: stale, decided by on_stale.
    mkfifo(&blocklist);
    let denied = within(timed_htcondor(&deny, &bob, "bob", "t-bob"), "deny");
    assert_eq!(denied.code, 2, "{denied:#?}");
    assert!(
        denied.stderr.contains("a FIFO, not a regular file") && denied.stderr.contains("on_stale"),
        "{denied:#?}"
    );
    let allowed = within(timed_htcondor(&allow, &alice, "alice", "t-alice"), "allow");
    assert_eq!(allowed.code, 1, "{allowed:#?}");
    assert!(
        allowed.stderr.contains("a FIFO, not a regular file"),
        "{allowed:#?}"
    );

    // At the cache's path: stale as well, decided by on_stale, until the FIFO is gone.
    std::fs::remove_file(&blocklist).unwrap();
    std::fs::write(&blocklist, &held).unwrap();
    let cache = s.path("bl.json.cache");
    mkfifo(&cache);
    let denied = within(timed_htcondor(&deny, &bob, "bob", "t-bob"), "cache, deny");
    assert_eq!(denied.code, 2, "{denied:#?}");
    assert!(
        denied
            .stderr
            .contains("bl.json.cache is unreadable: a FIFO, not a regular file"),
        "{denied:#?}"
    );
    let allowed = within(
        timed_htcondor(&allow, &alice, "alice", "t-alice"),
        "cache, allow",
    );
    assert_eq!(allowed.code, 1, "{allowed:#?}");
    std::fs::remove_file(&cache).unwrap();
    let refused = within(
        timed_htcondor(&deny, &alice, "alice", "t-alice"),
        "cache gone",
    );
    assert_eq!(refused.code, 2, "alice is suspended again: {refused:#?}");

    // At the site key's path: that ledger cannot be used, decided by on_stale.
    let key = s.path("site.key");
    std::fs::rename(&key, s.path("site.key.away")).unwrap();
    mkfifo(&key);
    let denied = within(timed_htcondor(&deny, &bob, "bob", "t-bob"), "key");
    assert_eq!(denied.code, 2, "{denied:#?}");
    assert!(
        denied.stderr.contains("a FIFO, not a regular file"),
        "{denied:#?}"
    );
    let allowed = within(timed_htcondor(&allow, &alice, "alice", "t-alice"), "key");
    assert_eq!(allowed.code, 1, "{allowed:#?}");

    // At check.toml's path: nothing of it could be read, so the default, deny.
    let fifo_config = s.path("fifo.toml");
    mkfifo(&fifo_config);
    let denied = within(timed_htcondor(&fifo_config, &bob, "bob", "t-bob"), "config");
    assert_eq!(denied.code, 2, "{denied:#?}");
    assert!(
        denied.stderr.contains("a FIFO, not a regular file"),
        "{denied:#?}"
    );
}

both_backends!(an_older_blocklist_planted_after_the_cache_is_deleted_is_refused);
fn an_older_blocklist_planted_after_the_cache_is_deleted_is_refused() {
    let s = start_site();
    let alice = s.ingest("t-alice", "alice");
    let bob = s.ingest("t-bob", "bob");
    let blocklist = s.path("bl.json");
    assert_eq!(s.pull(&s.reader, &blocklist, &[]).code, 0);
    let config = check_config(&s, "check.toml", "deny", &blocklist);
    assert_eq!(htcondor(&config, &alice, "alice", "t-alice").code, 1);
    // Whoever can write the blocklist's directory keeps the first document (validly signed,
    // unexpired, nobody suspended).
    let before_suspension = std::fs::read(&blocklist).unwrap();

    s.suspend_person("t-alice", "compute");
    assert_eq!(s.pull(&s.reader, &blocklist, &[]).code, 0);
    assert_eq!(htcondor(&config, &alice, "alice", "t-alice").code, 2);
    let mark = s.path("site.key.seq");
    let marked = std::fs::read(&mark).expect("the high-water mark beside the site key");

    // The cache deleted, the older document planted: a rollback, refused (deny by default).
    std::fs::remove_file(s.path("bl.json.cache")).unwrap();
    std::fs::write(&blocklist, &before_suspension).unwrap();
    let refused = htcondor(&config, &alice, "alice", "t-alice");
    assert_eq!(refused.code, 2, "{refused:#?}");
    assert!(
        refused.stderr.contains("already held (rollback)"),
        "{refused:#?}"
    );
    assert_eq!(
        htcondor(&config, &bob, "bob", "t-bob").code,
        2,
        "stale: deny"
    );
    assert_eq!(arc(&config, &format!("{ATLAS_ISS}/alice")).code, 0);
    assert_eq!(person(&config, "alice").stdout, "denied stale CERN-PROD\n");
    assert_eq!(std::fs::read(&mark).unwrap(), marked, "the mark is intact");

    // The next pull repairs it: the ETag kept beside it is for the newer sequence, so the
    // current document is fetched whole and installed over the planted one.
    assert_eq!(s.pull(&s.reader, &blocklist, &[]).code, 0);
    assert_eq!(htcondor(&config, &alice, "alice", "t-alice").code, 2);
    assert_eq!(htcondor(&config, &bob, "bob", "t-bob").code, 1);

    // The mark is the guard: whoever can delete it too (so it must live where the blocklist's
    // writer cannot write) gets the older document accepted as a first use.
    std::fs::remove_file(s.path("bl.json.cache")).unwrap();
    std::fs::remove_file(&mark).unwrap();
    std::fs::write(&blocklist, &before_suspension).unwrap();
    assert_eq!(htcondor(&config, &alice, "alice", "t-alice").code, 1);
}

both_backends!(each_export_carries_only_the_scopes_its_consumer_enforces);
fn each_export_carries_only_the_scopes_its_consumer_enforces() {
    let s = start_site();
    s.ingest("t-cpu", "cpu-only");
    s.ingest("t-disk", "disk-only");
    s.ingest("t-both", "everything");
    s.suspend_person("t-cpu", "compute");
    s.suspend_person("t-disk", "storage");
    s.suspend_person("t-both", "all");
    let alias = format!("{ATLAS_ISS}=ATLAS");
    for (format, extra, grants) in [
        ("htcondor", vec![], "compute"),
        ("arc", vec![], "compute"),
        ("dcache", vec!["--op-alias", alias.as_str()], "storage"),
        ("xrootd", vec!["--issuer", ATLAS_ISS], "storage"),
        ("text", vec![], "storage"),
    ] {
        let out = s.path(&format!("scoped.{format}"));
        let mut args = vec!["--format", format];
        args.extend(extra);
        let pulled = s.pull(&s.admin, &out, &args);
        assert_eq!(pulled.code, 0, "{format}: {pulled:#?}");
        let content = std::fs::read_to_string(&out).unwrap();
        let names = |sub: &str| content.contains(sub);
        assert!(names("everything"), "{format}: {content}");
        assert_eq!(
            names("cpu-only"),
            grants == "compute",
            "{format}: {content}"
        );
        assert_eq!(
            names("disk-only"),
            grants == "storage",
            "{format}: {content}"
        );
    }
}

both_backends!(argus_un_bans_the_subject_of_a_lifted_suspension);
fn argus_un_bans_the_subject_of_a_lifted_suspension() {
    let s = start_site();
    s.ingest("t-alice", "alice");
    link_x509(&s, "t-alice", "/DC=ch/DC=cern/CN=alice");
    let id = s.suspend_person("t-alice", "compute").id;
    let out = s.path("argus.sh");
    let argus = |expect: &str| {
        assert_eq!(s.pull(&s.admin, &out, &["--format", "argus"]).code, 0);
        let content = std::fs::read_to_string(&out).unwrap();
        assert_eq!(
            content.lines().skip(1).collect::<Vec<_>>(),
            [expect],
            "{content}"
        );
    };
    argus("pap-admin ban --private subject '/DC=ch/DC=cern/CN=alice'");
    s.lift(&id);
    argus("pap-admin un-ban subject '/DC=ch/DC=cern/CN=alice'");
}

both_backends!(exports_arrive_through_pull_in_the_consumers_formats);
fn exports_arrive_through_pull_in_the_consumers_formats() {
    let s = start_site();
    s.ingest("t-alice", "alice");
    // A linked certificate identity, for Argus and ARC's X.509 users.
    link_x509(&s, "t-alice", "/DC=ch/DC=cern/CN=alice");
    // Scope all: CEs and storage both enforce it.
    let pseudonym = s.suspend_person("t-alice", "all").pseudonym;

    let alias = format!("{ATLAS_ISS}=ATLAS");
    for (format, extra, line) in [
        (
            "htcondor",
            None,
            format!("SCITOKENS {ATLAS_ISS},alice {pseudonym}@banned.htcondor.org"),
        ),
        ("arc", None, format!("\"{ATLAS_ISS}/alice\"")),
        (
            "dcache",
            Some(alias.as_str()),
            "ban oidc:alice@ATLAS".to_string(),
        ),
        (
            "argus",
            None,
            "pap-admin ban --private subject '/DC=ch/DC=cern/CN=alice'".to_string(),
        ),
        ("text", None, format!("{ATLAS_ISS}\talice")),
        (
            "xrootd",
            None,
            format!(r#"{{"comment":"{pseudonym}","result":"tlbanned","sub":"alice"}}"#),
        ),
    ] {
        let out = s.path(&format!("export.{format}"));
        let mut args = vec!["--format", format];
        if let Some(alias) = extra {
            args.extend(["--op-alias", alias]);
        }
        if format == "xrootd" {
            args.extend(["--issuer", ATLAS_ISS]);
        }
        let before = std::time::SystemTime::now();
        let pulled = s.pull(&s.admin, &out, &args);
        assert_eq!(pulled.code, 0, "{format}: {pulled:#?}");
        let content = std::fs::read_to_string(&out).unwrap();
        let header = format!("tokenledger {format} export for site {SITE}");
        assert!(
            content.lines().take(2).any(|l| l.contains(&header)),
            "{content}"
        );
        assert!(
            content.lines().any(|l| l == line),
            "{format}: no `{line}` in\n{content}"
        );
        let meta = std::fs::metadata(&out).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o640, "{format}: names identities");
        assert!(
            meta.modified().unwrap() >= before - std::time::Duration::from_secs(1),
            "fresh mtime"
        );
        let envelope = s.path(&format!("export.{format}.signed.json"));
        let signed: Value =
            serde_json::from_str(&std::fs::read_to_string(&envelope).unwrap()).unwrap();
        assert_eq!(signed["document"]["content"], content.as_str());
        assert_eq!(std::fs::metadata(&envelope).unwrap().mode() & 0o777, 0o640);
        let again = s.pull(&s.admin, &out, &args);
        assert_eq!(again.code, 3, "{format}: {again:#?}");
    }
    // XRootD's name_mapfile is JSON, per issuer; an X.509 DN is in none of them.
    let mapfile = std::fs::read_to_string(s.path("export.xrootd")).unwrap();
    let rules: Vec<Value> = serde_json::from_str(&mapfile).unwrap();
    assert_eq!(rules.len(), 2, "{mapfile}");
    let other = s.pull(
        &s.admin,
        &s.path("other.json"),
        &["--format", "xrootd", "--issuer", "https://other.example/"],
    );
    assert_eq!(other.code, 0, "{other:#?}");
    let other = std::fs::read_to_string(s.path("other.json")).unwrap();
    assert_eq!(serde_json::from_str::<Vec<Value>>(&other).unwrap().len(), 1);
    // Without --issuer, the CLI refuses (a mapfile serves one issuer's section).
    let no_issuer = s.pull(&s.admin, &s.path("x.json"), &["--format", "xrootd"]);
    assert_eq!(no_issuer.code, 2, "{no_issuer:#?}");
    assert!(no_issuer.stderr.contains("--issuer"), "{no_issuer:#?}");

    // Without the alias, dCache's line is left out with a comment saying why.
    let no_alias = s.path("ban-no-alias.conf");
    assert_eq!(s.pull(&s.admin, &no_alias, &["--format", "dcache"]).code, 0);
    let content = std::fs::read_to_string(&no_alias).unwrap();
    assert!(!content.contains("ban oidc:"), "{content}");
    assert!(
        content.contains("no dCache OP alias for its issuer"),
        "{content}"
    );

    // ARC's %D of an X.509 user is the DN: the linked certificate is refused too.
    let blocklist = s.path("bl.json");
    assert_eq!(s.pull(&s.reader, &blocklist, &[]).code, 0);
    let config = check_config(&s, "check.toml", "deny", &blocklist);
    assert_eq!(arc(&config, "/DC=ch/DC=cern/CN=alice").code, 0);
    assert_eq!(arc(&config, "/DC=ch/DC=cern/CN=bob").code, 1);
}
