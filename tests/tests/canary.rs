//! The VO's canary end to end: the real server, real signed JWTs, the real CLI. A VO officer
//! registers the canary from one of its logged tokens (`vo canary register`: a logged
//! resolution, then a VO-wide suspension for good with reason code `canary`); the site puts
//! the printed `[[canary]]` in check.toml, and `check --self-test` answers as a Nagios/ETF
//! plugin: OK with a fresh blocklist holding the canary, CRITICAL once the canary is missing
//! from the blocklist, when the blocklist is stale, or when the configuration cannot be
//! read, WARNING when the blocklist is about to expire. The CE refuses the canary's token
//! as HTCondor asks, which is what a VO's submission probe shows.
//!
//! Every CLI run starts from an empty environment, so nothing of the machine leaks in.

use std::path::{Path, PathBuf};

use jsonwebtoken::Algorithm;
use tokenledger_core::blocklist::{SignedBlocklist, SignedDocument};
use tokenledger_core::note::NoteSigner;
use tokenledger_e2e::both_backends;
use tokenledger_e2e::daemon::set_mode;
use tokenledger_e2e::issuer::{TestIssuer, now_secs};
use tokenledger_e2e::site::{Site, VO};
use tokenledger_e2e::{CliRun, run_cli_with};

const ATLAS_ISS: &str = "https://atlas-auth.example/";
const SITE: &str = "CERN-PROD";
const CANARY: &str = "atlas-canary";

/// `tokenledger check --self-test --config CONFIG`.
fn self_test(config: &Path) -> CliRun {
    let config = config.display().to_string();
    run_cli_with(&["check", "--self-test", "--config", &config], &[], None)
}

/// Asserts a plugin answer: `code`, and one line on stdout starting with `TOKENLEDGER
/// <state>:` and holding each of `says`.
fn assert_plugin(run: &CliRun, code: i32, state: &str, says: &[&str]) {
    assert_eq!(run.code, code, "{run:#?}");
    assert_eq!(run.stdout.lines().count(), 1, "one line: {run:#?}");
    assert!(
        run.stdout.starts_with(&format!("TOKENLEDGER {state}: ")),
        "{run:#?}"
    );
    for said in says {
        assert!(run.stdout.contains(said), "`{said}` not in {run:#?}");
    }
}

/// A VO security officer's credential in a token file (0600).
fn officer(s: &Site) -> String {
    let path = s.path("officer.token");
    std::fs::write(&path, s.server.create_credential("vo-security", Some(VO))).unwrap();
    set_mode(&path, 0o600);
    path.display().to_string()
}

/// check.toml for compute with this site's ledger and `canary` (the `[[canary]]` table).
fn config_with(s: &Site, name: &str, blocklist: &Path, canary: &str) -> PathBuf {
    let path = s.write_check_config(name, "deny", &[ATLAS_ISS], blocklist);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{text}\n{canary}")).unwrap();
    path
}

/// The installed blocklist signed again by the ledger's own key with `expires_at`, as a
/// pull would install it (validly signed, same sequence: only its time differs); its
/// sequence.
fn resign(s: &Site, blocklist: &Path, expires_at: i64) -> u64 {
    let text = std::fs::read_to_string(s.server.dir().join("log.key")).unwrap();
    let signer = NoteSigner::parse(text.trim()).unwrap();
    let held: SignedBlocklist = serde_json::from_slice(&std::fs::read(blocklist).unwrap()).unwrap();
    let mut document = held.document;
    document.expires_at = expires_at;
    let sequence = document.sequence;
    std::fs::write(
        blocklist,
        serde_json::to_vec(&document.sign(&signer)).unwrap(),
    )
    .unwrap();
    sequence
}

both_backends!(the_self_test_is_ok_only_while_the_canary_is_enforced);
fn the_self_test_is_ok_only_while_the_canary_is_enforced() {
    let s = Site::start(
        tempfile::tempdir().unwrap(),
        SITE,
        TestIssuer::new(ATLAS_ISS),
    );
    let canary_jwt = s.ingest("t-canary", CANARY);
    s.ingest("t-alice", "alice");
    let token = s.path("canary.jwt");
    std::fs::write(&token, &canary_jwt).unwrap();
    let token = token.display().to_string();
    let officer = officer(&s);

    // The officer registers the canary from its token: a VO-wide suspension, every scope,
    // until lifted, reason code `canary`; the [[canary]] table for the sites is printed.
    let register = |extra: &[&str]| {
        let mut args = vec![
            "vo",
            "canary",
            "register",
            "--vo",
            VO,
            "--reason",
            "VO-MON-1 canary",
        ];
        args.extend_from_slice(extra);
        s.cli(&officer, &args)
    };
    let registered = register(&["--jwt", &token]);
    assert_eq!(registered.code, 0, "{registered:#?}");
    for said in ["every site of the VO", "until lifted"] {
        assert!(registered.stdout.contains(said), "{said}: {registered:#?}");
    }
    assert!(
        registered
            .stdout
            .lines()
            .any(|l| l.starts_with("reason code") && l.ends_with(" canary")),
        "{registered:#?}"
    );
    let table = &registered.stdout[registered.stdout.find("[[canary]]").unwrap()..];
    assert_eq!(
        table,
        format!("[[canary]]\niss = \"{ATLAS_ISS}\"\nsub = \"{CANARY}\"\n")
    );
    // Registering again finds it; so does the list.
    let again = register(&["--iss", ATLAS_ISS, "--sub", CANARY, "--jti", "t-canary"]);
    assert_eq!(again.code, 0, "{again:#?}");
    assert!(again.stderr.contains("already registered"), "{again:#?}");
    let listed = s.cli(&officer, &["vo", "canary", "list", "--vo", VO, "--json"]);
    assert_eq!(listed.code, 0, "{listed:#?}");
    let canaries = listed.json()["suspensions"].as_array().unwrap().clone();
    assert_eq!(canaries.len(), 1, "{listed:#?}");
    assert_eq!(canaries[0]["reason_code"], "canary");
    assert_eq!(canaries[0]["scope"], "all");
    assert!(canaries[0]["not_after"].is_null());
    let suspension = canaries[0]["id"].as_str().unwrap().to_string();
    // A token of someone else, named as the canary, is refused before anything changes.
    let wrong = register(&["--iss", ATLAS_ISS, "--sub", CANARY, "--jti", "t-alice"]);
    assert_eq!(wrong.code, 1, "{wrong:#?}");
    assert!(wrong.stderr.contains("not registered"), "{wrong:#?}");

    // The site pulls and tests: OK, one line, exit 0.
    let blocklist = s.path("var/CERN-PROD.json");
    std::fs::create_dir_all(blocklist.parent().unwrap()).unwrap();
    let config = config_with(&s, "check.toml", &blocklist, table);
    assert_plugin(
        &self_test(&config),
        2,
        "CRITICAL",
        &["site CERN-PROD", "is missing"],
    );
    s.pull_ok(&s.reader, &blocklist, &[]);
    let ok = self_test(&config);
    assert_plugin(
        &ok,
        0,
        "OK",
        &[
            "site CERN-PROD blocklist ",
            " valid 2",
            &format!("canary denied by site CERN-PROD ({suspension})"),
        ],
    );
    assert!(!ok.stdout.contains(CANARY), "the identity is not repeated");

    // A VO's submission probe with a new token of the canary: the CE refuses it (HTCondor's
    // plugin: exit 2, authentication fails).
    let fresh = s
        .issuer
        .mint(Algorithm::ES256, &s.issuer.claims("t-canary-2", CANARY));
    let payload = fresh.split('.').nth(1).unwrap();
    let payload = base64_url_decode(payload);
    let config_s = config.display().to_string();
    let probe = run_cli_with(
        &["check", "--htcondor", "--config", &config_s],
        &[
            ("BEARER_TOKEN_0_ISSUER", ATLAS_ISS),
            ("BEARER_TOKEN_0_SUBJECT", CANARY),
            ("BEARER_TOKEN_0_CLAIM_jti_0", "t-canary-2"),
        ],
        Some(&payload),
    );
    assert_eq!(probe.code, 2, "{probe:#?}");
    assert!(probe.stderr.contains("(canary, scope all)"), "{probe:#?}");

    // A configuration that names another identity: it would be let in.
    let other = config_with(
        &s,
        "other.toml",
        &blocklist,
        &format!("[[canary]]\niss = \"{ATLAS_ISS}\"\nsub = \"alice\"\n"),
    );
    assert_plugin(
        &self_test(&other),
        2,
        "CRITICAL",
        &[&format!("canary {ATLAS_ISS} alice would be let in")],
    );

    // A blocklist near its expiry (the pull has failed for hours): WARNING; expired: CRITICAL.
    let sequence = resign(&s, &blocklist, now_secs() + 5400);
    assert_plugin(
        &self_test(&config),
        1,
        "WARNING",
        &[
            &format!("site CERN-PROD: blocklist {sequence} expires in 1h"),
            "is the pull running?",
        ],
    );
    resign(&s, &blocklist, now_secs() - 60);
    assert_plugin(
        &self_test(&config),
        2,
        "CRITICAL",
        &["site CERN-PROD: the blocklist", "expired"],
    );

    // The canary lifted (the VO no longer reaches this site): the next blocklist lacks it.
    let lifted = s.cli(
        &officer,
        &[
            "vo",
            "lift",
            &suspension,
            "--vo",
            VO,
            "--reason",
            "test of the probe",
        ],
    );
    assert_eq!(lifted.code, 0, "{lifted:#?}");
    std::fs::remove_file(&blocklist).unwrap();
    s.pull_ok(&s.reader, &blocklist, &[]);
    assert_plugin(
        &self_test(&config),
        2,
        "CRITICAL",
        &[&format!("canary {ATLAS_ISS} {CANARY} would be let in")],
    );
}

both_backends!(a_configuration_that_cannot_be_used_is_critical);
fn a_configuration_that_cannot_be_used_is_critical() {
    let s = Site::start(
        tempfile::tempdir().unwrap(),
        SITE,
        TestIssuer::new(ATLAS_ISS),
    );
    let blocklist = s.path("var/CERN-PROD.json");
    std::fs::create_dir_all(blocklist.parent().unwrap()).unwrap();
    s.pull_ok(&s.reader, &blocklist, &[]);

    let missing = self_test(&s.path("nowhere.toml"));
    assert_plugin(
        &missing,
        2,
        "CRITICAL",
        &["cannot use the configuration", "nowhere.toml"],
    );

    let writable = config_with(
        &s,
        "writable.toml",
        &blocklist,
        "[[canary]]\niss = \"https://a/\"\nsub = \"c\"\n",
    );
    set_mode(&writable, 0o666);
    assert_plugin(
        &self_test(&writable),
        2,
        "CRITICAL",
        &["writable by group or others"],
    );

    let no_canary = s.write_check_config("plain.toml", "deny", &[ATLAS_ISS], &blocklist);
    assert_plugin(
        &self_test(&no_canary),
        2,
        "CRITICAL",
        &["names no [[canary]]"],
    );
}

fn base64_url_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}
