//! The `tokenledger` binary's exit codes without a server. (Having an integration test here
//! also makes `cargo test --workspace` build the binary that the end-to-end tests use.)

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tokenledger");
const KEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";

#[test]
fn unreachable_server_is_exit_2() {
    let out = Command::new(BIN)
        .args(["verify", "--server", "http://127.0.0.1:9", "--log-key", KEY])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));
}

#[test]
fn malformed_log_key_is_exit_2() {
    let out = Command::new(BIN)
        .args([
            "verify",
            "--server",
            "http://127.0.0.1:9",
            "--log-key",
            "not-a-key",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["verified"], false);
}
