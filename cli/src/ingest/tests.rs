//! Whole ingest runs against a loopback fake server: batching, answer-to-line mapping, refused
//! requests, Keycloak arrays, and following a file across rotation and restarts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use serde_json::{Value, json};

use super::fake_server::{FakeServer, created};
use super::*;
use crate::client::Client;
use crate::tls::TrustAnchors;

const ISS: &str = "https://kc.example/realms/egi";

fn session<'a>(
    client: &'a Client,
    format: Format,
    batch: usize,
    rejects: Option<&Path>,
) -> Session<'a> {
    let progress = Progress::new(None, true);
    let parser = Parser::new(format, Some(ISS.into()), &[]).unwrap();
    let records = Records::open(rejects, None, false, progress.clone()).unwrap();
    let shipper = Shipper::new(client, Destination::Issuances, progress.clone());
    Session::new(parser, shipper, batch, records, progress)
}

fn jwt(i: usize) -> String {
    format!("eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJ4In0.sig{i}")
}

fn jwt_lines(range: std::ops::Range<usize>) -> String {
    range.map(|i| jwt(i) + "\n").collect()
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

fn rejects(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn batches_are_cut_at_the_batch_size_and_every_line_accounted_for() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("tokens.jwt");
    let mut text = jwt_lines(0..12);
    text.push_str("\n   \nnot a token\n");
    text.push_str(&jwt_lines(12..25));
    std::fs::write(&input, text).unwrap();
    let server = FakeServer::accepting();
    let client = Client::new(&server.url, Some("tlk_x".into()), TrustAnchors::default());
    let rejects_file = dir.path().join("rejects");
    let mut session = session(&client, Format::JwtLines, 10, Some(&rejects_file));
    ingest_files(&mut session, &[input]).unwrap();
    let sizes: Vec<usize> = server.requests().iter().map(Vec::len).collect();
    assert_eq!(sizes, [10, 10, 5]);
    assert_eq!(
        server.reports()[24],
        json!({"token": jwt(24), "feed": "jwt-lines"})
    );
    assert_eq!(
        session.summary().line(),
        "accepted=25 duplicates=0 rejected=1 skipped=0"
    );
    assert_eq!(session.summary().exit_code(None), 1);
    let rejected = rejects(&rejects_file);
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["line"], 15);
    assert_eq!(rejected[0]["code"], "invalid_jwt");
}

#[test]
fn server_answers_map_back_to_their_files_and_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.jwt"), dir.path().join("b.jwt"));
    std::fs::write(&a, format!("{}{}\n", jwt(0), "-bad")).unwrap();
    std::fs::write(&b, jwt_lines(1..3) + &jwt(3) + "-bad\n" + &jwt(4)).unwrap();
    let server = FakeServer::answering(|lines| {
        let body = lines
            .iter()
            .enumerate()
            .map(|(i, line)| {
                if line.contains("-bad") {
                    json!({"line": i + 1, "error": {"code": "invalid_token", "message": "bad signature"}})
                        .to_string()
                } else {
                    let status = if line.contains("sig2") { "duplicate" } else { "created" };
                    created(i as u64).replace("created", status)
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        (200, body)
    });
    let client = Client::new(&server.url, Some("tlk_x".into()), TrustAnchors::default());
    let rejects_file = dir.path().join("rejects");
    let mut session = session(&client, Format::JwtLines, 2, Some(&rejects_file));
    ingest_files(&mut session, &[a.clone(), b.clone()]).unwrap();
    assert_eq!(
        session.summary().line(),
        "accepted=2 duplicates=1 rejected=2 skipped=0"
    );
    let where_: Vec<(String, u64)> = rejects(&rejects_file)
        .iter()
        .map(|r| {
            (
                r["file"].as_str().unwrap().to_owned(),
                r["line"].as_u64().unwrap(),
            )
        })
        .collect();
    let name = |p: &PathBuf| p.display().to_string();
    assert_eq!(where_, [(name(&a), 1), (name(&b), 3)]);
}

#[test]
fn a_refused_request_ends_the_run_with_the_server_message() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("tokens.jwt");
    std::fs::write(&input, jwt_lines(0..3)).unwrap();
    let server = FakeServer::answering(|_| {
        let error = json!({"error": {"code": "unauthenticated", "message": "missing or invalid credential"}});
        (401, error.to_string())
    });
    let client = Client::new(
        &server.url,
        Some("tlk_wrong".into()),
        TrustAnchors::default(),
    );
    let mut session = session(&client, Format::JwtLines, 1000, None);
    let e = ingest_files(&mut session, &[input]).unwrap_err();
    assert!(
        format!("{e:#}").contains("answered 401: missing or invalid credential"),
        "{e:#}"
    );
    assert_eq!(
        failure_code(&e),
        exit::REFUSED,
        "a refused credential is exit 4"
    );
    assert_eq!(session.summary().exit_code(Some(failure_code(&e))), 4);
}

#[test]
fn a_keycloak_events_array_is_read_whole_with_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.json");
    let event = |event_type: &str, token: &str| {
        json!({"time": 1767225600000i64, "type": event_type, "clientId": "c", "userId": "u",
               "details": {"token_id": token}})
    };
    let text = format!(
        "\n[\n  {},\n  {},\n  {},\n  {{\"type\": 7}},\n  {{oops\n]",
        event("CLIENT_LOGIN", "t1"),
        event("LOGOUT", "t2"),
        event("REFRESH_TOKEN", "t3"),
    );
    std::fs::write(&input, text).unwrap();
    let server = FakeServer::accepting();
    let client = Client::new(&server.url, Some("tlk_x".into()), TrustAnchors::default());
    let rejects_file = dir.path().join("rejects");
    let mut session = session(&client, Format::KeycloakEvents, 1000, Some(&rejects_file));
    ingest_files(&mut session, &[input]).unwrap();
    assert_eq!(
        session.summary().line(),
        "accepted=2 duplicates=0 rejected=2 skipped=1"
    );
    let reports = server.reports();
    assert_eq!(reports[0]["claims"]["jti"], "t1");
    assert_eq!(reports[0]["grant_type"], "client_credentials");
    assert_eq!(reports[1]["claims"]["iss"], ISS);
    let lines: Vec<u64> = rejects(&rejects_file)
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [6, 7]);
}

/// Runs `ingest --follow` in a thread until `stop` is set; gives back the run's summary.
fn follow_in_thread(
    url: &str,
    path: &Path,
    state: &Path,
    stop: &Arc<AtomicBool>,
) -> JoinHandle<Summary> {
    let (url, path, state, stop) = (
        url.to_owned(),
        path.to_owned(),
        state.to_owned(),
        Arc::clone(stop),
    );
    std::thread::spawn(move || {
        let client = Client::new(&url, Some("tlk_x".into()), TrustAnchors::default());
        let mut session = session(&client, Format::JwtLines, 1000, None);
        follow::run(&mut session, &path, &state, &stop).unwrap();
        session.summary()
    })
}

fn tokens_shipped(server: &FakeServer) -> Vec<String> {
    let mut tokens: Vec<String> = server
        .reports()
        .iter()
        .map(|r| r["token"].as_str().unwrap().to_owned())
        .collect();
    tokens.sort();
    tokens
}

#[test]
fn following_ships_new_lines_across_rotation_and_restarts_without_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tokens.log");
    let state = dir.path().join("follow.state");
    append(&log, &jwt_lines(0..3));
    let server = FakeServer::accepting();

    let stop = Arc::new(AtomicBool::new(false));
    let run = follow_in_thread(&server.url, &log, &state, &stop);
    server.wait_for_reports(3);
    append(&log, &jwt_lines(3..5));
    server.wait_for_reports(5);
    std::fs::rename(&log, dir.path().join("tokens.log.1")).unwrap();
    append(&dir.path().join("tokens.log.1"), &jwt_lines(5..6));
    append(&log, &jwt_lines(6..8));
    server.wait_for_reports(8);
    stop.store(true, Ordering::SeqCst);
    assert_eq!(run.join().unwrap().accepted, 8);
    let saved = follow::FollowState::load(&state).unwrap().unwrap();
    let meta = std::fs::metadata(&log).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (saved.inode, saved.offset, saved.line),
        (meta.ino(), meta.len(), 2)
    );

    append(&log, &jwt_lines(8..9));
    let stop = Arc::new(AtomicBool::new(false));
    let run = follow_in_thread(&server.url, &log, &state, &stop);
    server.wait_for_reports(9);
    stop.store(true, Ordering::SeqCst);
    assert_eq!(run.join().unwrap().accepted, 1);

    let mut expected: Vec<String> = (0..9).map(jwt).collect();
    expected.sort();
    assert_eq!(tokens_shipped(&server), expected);
}
