//! HTTP load on loopback: blocking clients on threads, each with its own connection.
//! Closed loop (as fast as the server answers) for throughput, open loop (requests due at a
//! fixed rate, latency counted from when each was due, so a slow server cannot hide its
//! queue) for latency. Every loop is bounded by its request count and by a deadline.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokenledger_e2e::Http;

/// One request body and the number of reports in it.
#[derive(Clone, Debug)]
pub struct Body {
    pub bytes: Vec<u8>,
    pub reports: u64,
}

impl Body {
    /// `{"token": ...}` for one token, `[{"token": ...}, ...]` for several.
    pub fn tokens(tokens: &[String]) -> Body {
        let item = |t: &String| format!("{{\"token\":\"{t}\"}}");
        let text = match tokens {
            [one] => item(one),
            many => format!("[{}]", many.iter().map(item).collect::<Vec<_>>().join(",")),
        };
        Body {
            bytes: text.into_bytes(),
            reports: tokens.len() as u64,
        }
    }
}

/// What a load run saw.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// Reports acknowledged (201).
    pub acknowledged: u64,
    pub requests: u64,
    pub failures: u64,
    pub first_failure: Option<String>,
    /// From the start to the last answer.
    pub elapsed: Duration,
    /// Per request: closed loop, from send to answer; open loop, from when it was due.
    pub latencies: Vec<Duration>,
    /// Reports acknowledged in each second of the run.
    pub per_second: Vec<u64>,
}

impl LoadResult {
    /// Acknowledged reports per second over the run.
    pub fn rate(&self) -> f64 {
        self.acknowledged as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The lowest per-second count among the full seconds of the run, the first excluded
    /// (warm-up); `None` for runs shorter than three seconds.
    pub fn slowest_second(&self) -> Option<u64> {
        let full = self.elapsed.as_secs() as usize;
        (full >= 3).then(|| {
            (1..full)
                .map(|s| self.per_second.get(s).copied().unwrap_or(0))
                .min()
                .unwrap_or(0)
        })
    }

    fn merge(&mut self, other: Worker, start: Instant) {
        self.acknowledged += other.acknowledged;
        self.requests += other.requests;
        self.failures += other.failures;
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
        self.latencies.extend(other.latencies);
        for (at, reports) in other.done {
            let second = at.duration_since(start).as_secs() as usize;
            if self.per_second.len() <= second {
                self.per_second.resize(second + 1, 0);
            }
            self.per_second[second] += reports;
            self.elapsed = self.elapsed.max(at.duration_since(start));
        }
    }
}

/// One client thread's tally.
#[derive(Default)]
struct Worker {
    acknowledged: u64,
    requests: u64,
    failures: u64,
    first_failure: Option<String>,
    latencies: Vec<Duration>,
    done: Vec<(Instant, u64)>,
}

impl Worker {
    /// Posts `body`; counts it acknowledged on 201.
    fn post(&mut self, http: &Http, credential: &str, body: &Body) {
        self.requests += 1;
        let reply = http.try_send(
            "POST",
            "/v1/issuances",
            Some(credential),
            Some("application/json"),
            Some(&body.bytes),
        );
        match reply {
            Ok(reply) if reply.status == 201 => {
                self.acknowledged += body.reports;
                self.done.push((Instant::now(), body.reports));
            }
            Ok(reply) => self.fail(format!(
                "status {}: {}",
                reply.status,
                reply.body.chars().take(300).collect::<String>()
            )),
            Err(e) => self.fail(format!("transport: {e}")),
        }
    }

    fn fail(&mut self, message: String) {
        self.failures += 1;
        self.first_failure.get_or_insert(message);
    }
}

/// Closed loop: `clients` threads post `bodies` in order, each taking the next one as soon
/// as its previous answer is in, until all are sent or `limit` has passed.
pub fn closed_loop(
    url: &str,
    credential: &str,
    bodies: &[Body],
    clients: usize,
    limit: Duration,
) -> LoadResult {
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let deadline = start + limit;
    let total = Mutex::new(LoadResult::default());
    std::thread::scope(|scope| {
        for _ in 0..clients {
            scope.spawn(|| {
                let http = Http::new(url);
                let mut worker = Worker::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= bodies.len() || Instant::now() >= deadline {
                        break;
                    }
                    let sent = Instant::now();
                    worker.post(&http, credential, &bodies[i]);
                    worker.latencies.push(sent.elapsed());
                }
                total.lock().expect("tally").merge(worker, start);
            });
        }
    });
    total.into_inner().expect("tally")
}

/// Open loop: body `i` is due at `start + i / rate`; `threads` clients send each when due
/// (or as soon as one is free), until all are sent or `limit` has passed. Latency runs from
/// the due time to the answer.
pub fn open_loop(
    url: &str,
    credential: &str,
    bodies: &[Body],
    rate: f64,
    threads: usize,
    limit: Duration,
) -> LoadResult {
    let next = AtomicUsize::new(0);
    let start = Instant::now() + Duration::from_millis(50);
    let deadline = start + limit;
    let total = Mutex::new(LoadResult::default());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let http = Http::new(url);
                let mut worker = Worker::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let due = start + Duration::from_secs_f64(i as f64 / rate);
                    if i >= bodies.len() || due >= deadline {
                        break;
                    }
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    worker.post(&http, credential, &bodies[i]);
                    worker.latencies.push(due.elapsed());
                }
                total.lock().expect("tally").merge(worker, start);
            });
        }
    });
    total.into_inner().expect("tally")
}

/// Sequential GETs of `paths` by one client; the latency of each answered 200, and the
/// bodies for checking afterwards (outside the timed part).
pub fn sequential_gets(
    url: &str,
    credential: Option<&str>,
    paths: &[String],
    limit: Duration,
) -> anyhow::Result<(Vec<Duration>, Vec<String>)> {
    let http = Http::new(url);
    let deadline = Instant::now() + limit;
    let mut latencies = Vec::with_capacity(paths.len());
    let mut bodies = Vec::with_capacity(paths.len());
    for path in paths {
        if Instant::now() >= deadline {
            break;
        }
        let sent = Instant::now();
        let reply = http
            .try_send("GET", path, credential, None, None)
            .map_err(|e| anyhow::anyhow!("GET {path}: {e}"))?;
        let took = sent.elapsed();
        anyhow::ensure!(reply.status == 200, "GET {path}: {reply:?}");
        latencies.push(took);
        bodies.push(reply.body);
    }
    Ok((latencies, bodies))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_a_report_or_an_array() {
        let one = Body::tokens(&["a.b.c".to_string()]);
        assert_eq!(one.bytes, br#"{"token":"a.b.c"}"#);
        let two = Body::tokens(&["a".to_string(), "b".to_string()]);
        assert_eq!(two.bytes, br#"[{"token":"a"},{"token":"b"}]"#);
        assert_eq!(two.reports, 2);
    }

    #[test]
    fn per_second_counts_skip_the_warm_up_second() {
        let r = LoadResult {
            elapsed: Duration::from_millis(4_500),
            per_second: vec![1, 10, 7, 9, 3],
            ..LoadResult::default()
        };
        assert_eq!(r.slowest_second(), Some(7));
        let short = LoadResult {
            elapsed: Duration::from_secs(2),
            per_second: vec![1, 2],
            ..LoadResult::default()
        };
        assert_eq!(short.slowest_second(), None);
    }
}
