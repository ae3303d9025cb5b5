//! `tokenledger ingest` of a site's logs end to end: the real CLI reads HTCondor job ads and a
//! followed dCache access log (fixtures in the upstream formats, cli/tests/fixtures), posts
//! their sightings to the real server with a reporter credential, and a VO security officer
//! then finds each sighting, with its host and job, in the person's timeline.

use std::path::{Path, PathBuf};
use std::process::Child;

use jsonwebtoken::Algorithm;
use serde_json::Value;
use tokenledger_e2e::both_backends;
use tokenledger_e2e::ingest::{ingest, saved_offset, stdout, terminate, wait_until};
use tokenledger_e2e::issuer::TestIssuer;
use tokenledger_e2e::{TestServer, run_cli, spawn_cli};

const ATLAS_ISS: &str = "https://atlas-auth.example/";
const CMS_ISS: &str = "https://cms-auth.example/";
const SITE: &str = "CERN-PROD";
/// The token of the running ATLAS job in the HTCondor fixture, seen by the WebDAV door too.
const ALICE_JTI: &str = "5b8f6a1e-3c2d-4e7f-9a0b-1c2d3e4f5a6b";
/// The token of the idle CMS job, seen by the xrootd door.
const CAROL_JTI: &str = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a";
/// Why the officer looks.
const REASON: &str = "INC-2026-0107 leaked token";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cli/tests/fixtures")
        .join(name)
}

/// A server with the ATLAS and CMS issuers and a site serving both VOs, where alice's and
/// carol's tokens (the fixtures' jtis) were issued through `tokenledger ingest`.
struct Site {
    server: TestServer,
    reporter: String,
    dir: tempfile::TempDir,
}

fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let atlas = TestIssuer::new(ATLAS_ISS);
    let cms = TestIssuer::new(CMS_ISS);
    let mut config = String::new();
    for (issuer, vo) in [(&atlas, "atlas"), (&cms, "cms")] {
        let jwks = dir.path().join(format!("{vo}-jwks.json"));
        issuer.write_jwks(&jwks);
        config += &issuer.config_block(
            &format!("jwks_file = \"{}\"", jwks.display()),
            &format!("[{{ rule = \"fixed\", vo = \"{vo}\" }}]"),
        );
    }
    config += &format!("\n[[site]]\nname = \"{SITE}\"\nvos = [\"atlas\", \"cms\"]\n");
    let server = TestServer::start_with_config(&dir.path().join("data"), &config);
    for (issuer, vo, jti, sub) in [
        (&atlas, "atlas", ALICE_JTI, "alice-sub"),
        (&cms, "cms", CAROL_JTI, "carol-sub"),
    ] {
        let credential = server.create_credential("issuer", Some(vo));
        let tokens = dir.path().join(format!("{vo}.jwt"));
        let token = issuer.mint(Algorithm::ES256, &issuer.claims(jti, sub));
        std::fs::write(&tokens, format!("{token}\n")).unwrap();
        let run = ingest(
            &server,
            &credential,
            &["--format", "jwt-lines", tokens.to_str().unwrap()],
        );
        assert_eq!(stdout(&run), "accepted=1 duplicates=0 rejected=0 skipped=0");
    }
    let reporter = server
        .credential(&["--role", "reporter", "--site", SITE])
        .secret;
    Site {
        server,
        reporter,
        dir,
    }
}

/// The `--rejects` file as (line, code) pairs.
fn rejects(path: &Path) -> Vec<(u64, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let r: Value = serde_json::from_str(l).unwrap();
            (
                r["line"].as_u64().unwrap(),
                r["code"].as_str().unwrap().into(),
            )
        })
        .collect()
}

/// Runs the CLI as a VO security officer and parses its `--json` answer.
fn officer_json(server: &TestServer, officer: &str, args: &[&str]) -> Value {
    let mut all = vec!["--server", server.url(), "--token", officer];
    all.extend_from_slice(args);
    all.extend(["--reason", REASON, "--json"]);
    let out = run_cli(&all);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The person behind `jti`, as the officer of `vo` resolves it: (officer's secret, person id).
fn person_of(server: &TestServer, vo: &str, jti: &str) -> (String, String) {
    let officer = server.create_credential("vo-security", Some(vo));
    let resolved = officer_json(server, &officer, &["resolve", jti, "--vo", vo]);
    let person = resolved["person"]["id"].as_str().unwrap().to_string();
    (officer, person)
}

/// The sightings in the timeline of the person behind `jti`, as the officer of `vo` sees it.
fn sightings_in_timeline(server: &TestServer, vo: &str, jti: &str) -> Vec<Value> {
    let (officer, person) = person_of(server, vo, jti);
    let timeline = officer_json(server, &officer, &["timeline", &person, "--vo", vo]);
    let events = timeline["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "issuance" && e["entry"]["jti"] == jti),
        "{timeline}"
    );
    events
        .iter()
        .filter(|e| e["kind"] == "sighting")
        .map(|e| e["entry"].clone())
        .collect()
}

both_backends!(condor_history_json_sightings_appear_in_the_timeline_with_host_and_job);
fn condor_history_json_sightings_appear_in_the_timeline_with_host_and_job() {
    let s = site();
    let ads = fixture("htcondor-history.json");
    let rejects_file = s.dir.path().join("rejects.jsonl");
    let run = ingest(
        &s.server,
        &s.reporter,
        &[
            "--format",
            "htcondor-history",
            "--site",
            SITE,
            "--rejects",
            rejects_file.to_str().unwrap(),
            ads.to_str().unwrap(),
        ],
    );
    assert_eq!(
        run.status.code(),
        Some(1),
        "three ads were rejected: {run:?}"
    );
    assert_eq!(stdout(&run), "accepted=2 duplicates=0 rejected=3 skipped=1");

    // Each reject names the line its ad starts on: the finished job's token was never issued
    // through the ledger (the server's not_found), two ads are not usable job ads.
    let text = std::fs::read_to_string(&ads).unwrap();
    let starts: Vec<u64> = (1..)
        .zip(text.lines())
        .filter(|(_, l)| *l == "{")
        .map(|(n, _)| n)
        .collect();
    assert_eq!(starts.len(), 6);
    assert_eq!(
        rejects(&rejects_file),
        [
            (starts[1], "not_found".to_string()),
            (starts[4], "invalid_ad".to_string()),
            (starts[5], "missing_time".to_string()),
        ]
    );

    let alice = sightings_in_timeline(&s.server, "atlas", ALICE_JTI);
    assert_eq!(alice.len(), 1, "{alice:?}");
    assert_eq!(alice[0]["site"], SITE);
    assert_eq!(alice[0]["jti"], ALICE_JTI);
    assert_eq!(alice[0]["iss"], ATLAS_ISS);
    assert_eq!(alice[0]["host"], "slot1_12@wn-b7-031.cern.example");
    assert_eq!(
        alice[0]["job_id"],
        "ce503.cern.example#4471203.0#1767259843"
    );
    assert_eq!(alice[0]["seen_at"], 1_767_260_112, "JobCurrentStartDate");

    let carol = sightings_in_timeline(&s.server, "cms", CAROL_JTI);
    assert_eq!(carol.len(), 1, "{carol:?}");
    assert_eq!(
        carol[0]["seen_at"], 1_767_262_205,
        "QDate: the job never ran"
    );
    assert_eq!(
        carol[0]["job_id"],
        "ce503.cern.example#4471377.0#1767262205"
    );
    assert!(carol[0].get("host").is_none(), "{carol:?}");

    // `tokenledger timeline` as people read it: the sighting's row names site, host and job.
    let (officer, person) = person_of(&s.server, "atlas", ALICE_JTI);
    let out = run_cli(&[
        "--server",
        s.server.url(),
        "--token",
        &officer,
        "timeline",
        &person,
        "--vo",
        "atlas",
        "--reason",
        REASON,
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    let row = text
        .lines()
        .find(|l| l.contains("sighting"))
        .unwrap_or_else(|| panic!("no sighting row: {text}"));
    for part in [
        "site=CERN-PROD",
        "host=slot1_12@wn-b7-031.cern.example",
        "job_id=ce503.cern.example#4471203.0#1767259843",
    ] {
        assert!(row.contains(part), "{part} missing from {row}");
    }
}

/// `tokenledger ingest --format dcache-access --follow` as a child process.
fn spawn_follow(s: &Site, log: &Path, state: &Path, rejects: &Path) -> Child {
    let (atlas, cms) = (format!("{ATLAS_ISS}=ATLAS"), format!("{CMS_ISS}=CMS"));
    let (log, state, rejects) = (
        log.to_str().unwrap(),
        state.to_str().unwrap(),
        rejects.to_str().unwrap(),
    );
    spawn_cli([
        "ingest",
        "--server",
        s.server.url(),
        "--token",
        &s.reporter,
        "--format",
        "dcache-access",
        "--site",
        SITE,
        "--op-alias",
        &atlas,
        "--op-alias",
        &cms,
        "--follow",
        "--state",
        state,
        "--rejects",
        rejects,
        log,
    ])
}

fn append(path: &Path, lines: &[&str]) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
}

both_backends!(a_followed_dcache_access_log_reports_each_sighting_once_across_a_restart);
fn a_followed_dcache_access_log_reports_each_sighting_once_across_a_restart() {
    let s = site();
    let fixture = std::fs::read_to_string(fixture("dcache-door.access")).unwrap();
    let lines: Vec<&str> = fixture.lines().collect();
    assert_eq!(lines.len(), 8);
    let log = s.dir.path().join("webdav-dcache-door-03Domain.access");
    let state = s.dir.path().join("follow.state");
    let rejects_file = s.dir.path().join("rejects.jsonl");
    let size = s.server.log_size();

    append(&log, &lines[..3]);
    let follower = spawn_follow(&s, &log, &state, &rejects_file);
    wait_until("the WebDAV sighting is logged", || {
        s.server.log_size() == size + 1
    });
    append(&log, &lines[3..5]);
    wait_until("the xrootd sighting is logged", || {
        s.server.log_size() == size + 2
    });
    let length = std::fs::metadata(&log).unwrap().len();
    wait_until("the state file covers the whole log", || {
        saved_offset(&state) == Some(length)
    });
    let out = terminate(follower);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out), "accepted=2 duplicates=0 rejected=0 skipped=3");

    append(&log, &lines[5..]);
    let follower = spawn_follow(&s, &log, &state, &rejects_file);
    let length = std::fs::metadata(&log).unwrap().len();
    wait_until("the restart read the rest of the log", || {
        saved_offset(&state) == Some(length)
    });
    let out = terminate(follower);
    assert_eq!(
        out.status.code(),
        Some(1),
        "three lines were rejected: {out:?}"
    );
    assert_eq!(
        stdout(&out),
        "accepted=0 duplicates=0 rejected=3 skipped=0",
        "the restart resumed at the saved offset: {out:?}"
    );
    assert_eq!(
        s.server.log_size(),
        size + 2,
        "no sighting was posted twice"
    );
    assert_eq!(
        rejects(&rejects_file),
        [
            (6, "unknown_op".to_string()),
            (7, "invalid_line".to_string()),
            (8, "invalid_time".to_string()),
        ]
    );

    let alice = sightings_in_timeline(&s.server, "atlas", ALICE_JTI);
    assert_eq!(alice.len(), 1, "{alice:?}");
    assert_eq!(alice[0]["site"], SITE);
    assert_eq!(alice[0]["iss"], ATLAS_ISS);
    assert_eq!(alice[0]["host"], "dcache-door-03.cern.example");
    assert_eq!(
        alice[0]["job_id"],
        "door:WebDAV-dcache-door-03@webdav-dcache-door-03Domain:AAZGiwhNWPg"
    );
    assert_eq!(alice[0]["seen_at"], 1_767_260_415);
    let carol = sightings_in_timeline(&s.server, "cms", CAROL_JTI);
    assert_eq!(carol.len(), 1, "{carol:?}");
    assert_eq!(
        carol[0]["job_id"],
        "door:Xrootd-dcache-door-05@xrootd-dcache-door-05Domain:AAZGixCkbyA"
    );
    assert!(carol[0].get("host").is_none(), "{carol:?}");
}

both_backends!(sighting_formats_need_a_known_site_and_issuance_formats_refuse_one);
fn sighting_formats_need_a_known_site_and_issuance_formats_refuse_one() {
    let s = site();
    let ads = fixture("htcondor-history.jsonl");
    let ads = ads.to_str().unwrap();
    let size = s.server.log_size();
    let usage = |args: &[&str], says: &str| {
        let run = ingest(&s.server, &s.reporter, args);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {run:?}");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    };
    usage(&["--format", "htcondor-history", ads], "needs --site SITE");
    usage(
        &["--format", "jwt-lines", "--site", SITE, ads],
        "--site applies to the sighting formats",
    );
    usage(
        &["--format", "dcache-access", "--site", SITE, ads],
        "needs --op-alias",
    );
    usage(
        &[
            "--format",
            "htcondor-history",
            "--site",
            SITE,
            "--batch",
            "5",
            ads,
        ],
        "sightings are posted one at a time",
    );
    usage(
        &[
            "--format",
            "htcondor-history",
            "--site",
            SITE,
            "--op-alias",
            "https://i/=A",
            ads,
        ],
        "--op-alias applies to --format dcache-access only",
    );

    // A reporter of a site the ledger does not know: the first sighting ends the run.
    let stray = s
        .server
        .credential(&["--role", "reporter", "--site", "NO-SUCH-SITE"])
        .secret;
    let run = ingest(
        &s.server,
        &stray,
        &[
            "--format",
            "htcondor-history",
            "--site",
            "NO-SUCH-SITE",
            ads,
        ],
    );
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("no site `NO-SUCH-SITE`"),
        "{run:?}"
    );
    assert_eq!(stdout(&run), "accepted=0 duplicates=0 rejected=0 skipped=0");

    // Another site's reporter is refused (exit 4).
    let run = ingest(
        &s.server,
        &stray,
        &["--format", "htcondor-history", "--site", SITE, ads],
    );
    assert_eq!(run.status.code(), Some(4), "{run:?}");
    assert_eq!(s.server.log_size(), size, "nothing was logged");
}
