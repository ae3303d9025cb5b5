//! `tokenledger blocklist pull --follow`: a long-running pull. Each request is a long poll
//! (`If-None-Match` with `?wait=60`): the server holds it until the site's blocklist has a
//! newer sequence, and the document is then verified and installed at once by the one-shot
//! pull's own code ([`crate::pull::pull_blocklist`]: the same checks, the same atomic install).
//!
//! A refused document keeps the old file, is told on stderr in one line, and is asked again
//! after a backoff; so are network and server errors (1 s doubling to 60 s, jittered). A
//! credential the server refuses (401/403) ends the follower with exit 4: asking again cannot
//! help. SIGTERM and SIGINT end it with exit 0, never in the middle of an install: the signal
//! is awaited on the main thread while a worker thread pulls, and an install holds a lock the
//! main thread takes before it returns.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use tokenledger_core::note::NoteVerifier;

use crate::client::Tagged;
use crate::config::Settings;
use crate::exit::{self, Failure};
use crate::pull::{self, PullArgs, Pulled};
use crate::timespec;

/// How long the server is asked to hold each request, in seconds (its maximum).
const WAIT_SECS: u64 = 60;
/// Bound on one request: the wait, and time for the server to build and send the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(WAIT_SECS + 30);
/// Least time between two requests that brought nothing new: a server (or a proxy) that does
/// not hold the request is polled once a second, not in a busy loop.
const MIN_QUIET_INTERVAL: Duration = Duration::from_secs(1);
/// First and longest pause before asking again after an error.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What the main thread and the pulling thread share.
#[derive(Default)]
struct Shared {
    /// Set, under `installing`, when a signal asks the follower to end.
    stopping: AtomicBool,
    /// Held from the end of a request to the end of its install.
    installing: Mutex<()>,
}

/// Runs `blocklist pull --follow` until a signal (exit 0) or a refused credential (exit 4).
pub fn run(args: &PullArgs, settings: &Settings) -> Result<u8, Failure> {
    let (verifier, client, path) = pull::prepare(args, settings)?;
    let path = path.query("wait", WAIT_SECS);
    let mut signals = Signals::new([SIGTERM, SIGINT])
        .map_err(|e| Failure::Error(format!("installing the signal handlers: {e}")))?;
    let shared = Arc::new(Shared::default());
    let worker = {
        let (args, shared) = (args.clone(), shared.clone());
        let wake_main = WakeOnEnd(signals.handle());
        std::thread::spawn(move || {
            let _wake_main_at_end = wake_main;
            follow(&args, &verifier, &shared, |etag| {
                pull::fetch(&client, &path, etag, Some(REQUEST_TIMEOUT))
            })
        })
    };
    if let Some(signal) = signals.forever().next() {
        let _no_install_running = shared.installing.lock().unwrap_or_else(|e| e.into_inner());
        shared.stopping.store(true, Ordering::SeqCst);
        eprintln!("tokenledger: signal {signal}: stopped following");
        return Ok(exit::OK);
    }
    match worker.join() {
        Ok(ended) => ended.map(|()| exit::OK),
        Err(_) => Err(Failure::Error("the pulling thread panicked".into())),
    }
}

/// Ends the main thread's wait for a signal when the pulling thread ends, however it ends.
struct WakeOnEnd(signal_hook::iterator::Handle);

impl Drop for WakeOnEnd {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// The follower's loop: returns only when stopping (Ok) or on a refused credential.
fn follow(
    args: &PullArgs,
    verifier: &NoteVerifier,
    shared: &Shared,
    fetch: impl Fn(Option<&str>) -> Result<Option<Tagged>, Failure>,
) -> Result<(), Failure> {
    let mut backoff = Backoff::new(RandomState::new());
    while !shared.stopping.load(Ordering::SeqCst) {
        let asked = Instant::now();
        let mut installing = None;
        let pulled = pull::pull_blocklist(
            args,
            verifier,
            |etag| {
                let answer = fetch(etag);
                installing = Some(shared.installing.lock().unwrap_or_else(|e| e.into_inner()));
                if shared.stopping.load(Ordering::SeqCst) {
                    return Err(Failure::Error("stopping".into()));
                }
                answer
            },
            timespec::now_secs(),
        );
        drop(installing);
        match pulled {
            Ok(Pulled::Updated(message)) => {
                println!("{message}");
                backoff.reset();
            }
            Ok(Pulled::NotModified(_)) => {
                backoff.reset();
                std::thread::sleep(MIN_QUIET_INTERVAL.saturating_sub(asked.elapsed()));
            }
            Err(refused @ Failure::Refused(_)) => return Err(refused),
            Err(_) if shared.stopping.load(Ordering::SeqCst) => return Ok(()),
            Err(failure) => {
                let pause = backoff.next();
                eprintln!(
                    "tokenledger: {failure}; asking again in {:.1} s",
                    pause.as_secs_f64()
                );
                std::thread::sleep(pause);
            }
        }
    }
    Ok(())
}

/// Exponential backoff with jitter: the n-th pause after an error is between half and all of
/// `FIRST_BACKOFF * 2^n`, at most [`MAX_BACKOFF`], so that nodes cut off together do not come
/// back together.
struct Backoff {
    /// Seeded at random: the jitter of one process.
    random: RandomState,
    attempt: u32,
}

impl Backoff {
    fn new(random: RandomState) -> Backoff {
        Backoff { random, attempt: 0 }
    }

    fn reset(&mut self) {
        self.attempt = 0;
    }

    fn next(&mut self) -> Duration {
        let ceiling = FIRST_BACKOFF
            .saturating_mul(1 << self.attempt.min(16))
            .min(MAX_BACKOFF);
        self.attempt += 1;
        let unit = (self.random.hash_one(self.attempt) % 1_000) as u32;
        ceiling / 2 + ceiling / 2 * unit / 1_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pull::PullFormat;
    use crate::pull::tests::{answer, args, blocklist, signer};

    #[test]
    fn a_refused_document_keeps_the_old_file_and_a_refused_credential_ends_the_follower() {
        let dir = tempfile::tempdir().unwrap();
        let a = args(dir.path(), PullFormat::Json);
        let verifier = signer(1).verifier();
        let expires = timespec::now_secs() + 3_600;
        let good = blocklist("CERN-PROD", 5, expires, 1);
        let foreign = blocklist("RAL-LCG2", 6, expires, 1);
        let answers = Mutex::new(vec![
            Err(Failure::Refused("403 forbidden".into())),
            answer(&foreign, None),
            answer(&good, Some("\"CERN-PROD-5\"")),
        ]);
        let asked_with = Mutex::new(Vec::new());
        let ended = follow(&a, &verifier, &Shared::default(), |etag| {
            asked_with.lock().unwrap().push(etag.map(str::to_string));
            answers
                .lock()
                .unwrap()
                .pop()
                .expect("no request after the 403")
        });
        assert!(matches!(ended, Err(Failure::Refused(_))), "{ended:?}");
        assert_eq!(std::fs::read_to_string(&a.out).unwrap(), good);
        assert_eq!(
            *asked_with.lock().unwrap(),
            [
                None,
                Some("\"CERN-PROD-5\"".to_string()),
                Some("\"CERN-PROD-5\"".to_string())
            ],
            "each request after the install is conditional"
        );
    }

    #[test]
    fn backoff_doubles_from_one_second_to_a_minute_with_jitter_and_resets() {
        let mut backoff = Backoff::new(RandomState::new());
        let ceilings = [1, 2, 4, 8, 16, 32, 60, 60, 60];
        for ceiling in ceilings {
            let ceiling = Duration::from_secs(ceiling);
            let pause = backoff.next();
            assert!(
                ceiling / 2 <= pause && pause <= ceiling,
                "{pause:?} within {ceiling:?}"
            );
        }
        backoff.reset();
        assert!(backoff.next() <= FIRST_BACKOFF);
    }

    #[test]
    fn two_followers_pause_differently() {
        let pauses = |random| {
            let mut backoff = Backoff::new(random);
            (0..8).map(|_| backoff.next()).collect::<Vec<_>>()
        };
        assert_ne!(pauses(RandomState::new()), pauses(RandomState::new()));
    }
}
