//! Readiness and stopping notifications to systemd (`Type=notify`), through the socket named
//! by `NOTIFY_SOCKET`; without it (not started by systemd) they do nothing.

use std::net::SocketAddr;

use sd_notify::NotifyState;

/// Tells systemd the service is up: the log is open and `addr` accepts connections.
pub fn notify_ready(addr: SocketAddr) {
    let status = format!("listening on {addr}");
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// Tells systemd the service is shutting down (draining the sequencer).
pub fn notify_stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("draining the sequencer"),
    ]);
}

fn send(states: &[NotifyState]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::error!(%error, "cannot notify systemd through NOTIFY_SOCKET");
    }
}
