//! One RFC 3164 line per event to the local syslog socket (`/dev/log`, which journald or
//! rsyslog serves), facility `authpriv`: decisions name pseudonyms and jtis, which belong with
//! the other authentication records. Never a token. If there is no socket, nothing is logged
//! and nothing fails: the decision does not depend on the log. Nor does it wait for the log: a
//! datagram socket blocks its sender while the reader's queue is full (a stalled journald), so
//! the event is sent without blocking, and dropped if it cannot go at once.

use std::os::unix::net::UnixDatagram;
use std::path::Path;

/// The local syslog socket.
const SOCKET: &str = "/dev/log";
/// `authpriv` (10 × 8).
const AUTHPRIV: u8 = 10 << 3;

/// How serious an event is (RFC 5424 severities).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Warning = 4,
    Notice = 5,
}

/// The line sent: `<PRI>Mmm dd hh:mm:ss tokenledger[PID]: message`, control characters
/// replaced so one event stays one line.
pub fn line(severity: Severity, message: &str, timestamp: &str) -> String {
    let message: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!(
        "<{}>{timestamp} tokenledger[{}]: {message}",
        AUTHPRIV | severity as u8,
        std::process::id()
    )
}

/// Sends one event to `/dev/log`; silently does nothing if it is absent or refuses.
pub fn send(severity: Severity, message: &str) {
    send_to(Path::new(SOCKET), severity, message);
}

fn send_to(socket: &Path, severity: Severity, message: &str) {
    if !socket.exists() {
        return;
    }
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    if sock.set_nonblocking(true).is_err() {
        return;
    }
    // RFC 3164 wants local time; chrono reads the zone only on this (deny) path.
    let timestamp = chrono::Local::now().format("%b %e %H:%M:%S").to_string();
    let _ = sock.send_to(line(severity, message, &timestamp).as_bytes(), socket);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_rfc3164_authpriv_and_single() {
        let l = line(
            Severity::Warning,
            "deny site=S\npseudonym=p1-x",
            "Jan  5 10:00:00",
        );
        assert_eq!(
            l,
            format!(
                "<84>Jan  5 10:00:00 tokenledger[{}]: deny site=S pseudonym=p1-x",
                std::process::id()
            )
        );
        assert!(line(Severity::Notice, "m", "t").starts_with("<85>t tokenledger["));
    }

    #[test]
    fn events_reach_a_datagram_socket_and_a_missing_one_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        send_to(&path, Severity::Warning, "nobody listens");
        let listener = UnixDatagram::bind(&path).unwrap();
        send_to(&path, Severity::Warning, "deny site=CERN-PROD");
        let mut buf = [0u8; 512];
        let n = listener.recv(&mut buf).unwrap();
        let got = String::from_utf8_lossy(&buf[..n]);
        assert!(got.starts_with("<84>"), "{got}");
        assert!(got.ends_with("]: deny site=CERN-PROD"), "{got}");
    }

    #[test]
    fn a_reader_that_stopped_reading_never_blocks_the_sender() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let _stalled = UnixDatagram::bind(&path).unwrap();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Far more than the reader's queue holds (net.unix.max_dgram_qlen, 512).
            for _ in 0..2_000 {
                send_to(&path, Severity::Warning, "deny site=CERN-PROD");
            }
            done.send(()).unwrap();
        });
        finished
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("sending to a full syslog socket blocked");
    }
}
