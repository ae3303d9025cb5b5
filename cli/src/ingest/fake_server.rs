//! A loopback stand-in for `POST /v1/issuances` in unit tests: records every NDJSON request
//! body and answers each report line as created, or as a test decides.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokenledger_core::merkle::Hash;

/// Decides the answer (status, body) to one request's report lines.
type Answer = dyn Fn(&[String]) -> (u16, String) + Send + Sync;

pub struct FakeServer {
    pub url: String,
    requests: Arc<Mutex<Vec<Vec<String>>>>,
}

impl FakeServer {
    /// A server that answers every report as created, at increasing indexes.
    pub fn accepting() -> FakeServer {
        let next = Mutex::new(0u64);
        FakeServer::answering(move |lines| {
            let mut next = next.lock().unwrap();
            let body = lines
                .iter()
                .map(|_| {
                    *next += 1;
                    created(*next - 1)
                })
                .collect::<Vec<_>>()
                .join("\n");
            (200, body)
        })
    }

    /// A server whose answers `answer` computes.
    pub fn answering(
        answer: impl Fn(&[String]) -> (u16, String) + Send + Sync + 'static,
    ) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let answer: Arc<Answer> = Arc::new(answer);
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                serve(stream, &seen, &*answer);
            }
        });
        FakeServer { url, requests }
    }

    /// The report lines of each request so far.
    pub fn requests(&self) -> Vec<Vec<String>> {
        self.requests.lock().unwrap().clone()
    }

    /// All report lines received so far, parsed.
    pub fn reports(&self) -> Vec<serde_json::Value> {
        self.requests()
            .concat()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits (bounded) until `count` reports have arrived.
    pub fn wait_for_reports(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.requests().concat().len() < count {
            assert!(
                Instant::now() < deadline,
                "only {} of {count} reports arrived",
                self.requests().concat().len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// An answer line for a created entry.
pub fn created(index: u64) -> String {
    json!({
        "index": index,
        "leaf_hash": Hash([1; 32]),
        "integrated_at": 1,
        "receipt": "c2ln",
        "status": "created",
    })
    .to_string()
}

fn serve(stream: TcpStream, seen: &Mutex<Vec<Vec<String>>>, answer: &Answer) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 {
            return;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let lines: Vec<String> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let (status, body) = answer(&lines);
    seen.lock().unwrap().push(lines);
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/x-ndjson\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}
