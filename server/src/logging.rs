//! The server's log on stderr: text or JSON lines. Colours only when stderr is a terminal;
//! under systemd, where journald stamps every line it reads, no timestamps of our own.

use crate::store::sqlite::ENGINE_LOG_FILTER;
use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

/// The shape of each log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object a line.
    Json,
}

/// Installs the global subscriber: `TOKENLEDGER_LOG` filters (default `info`, and the
/// storage engine's own library at [`ENGINE_LOG_FILTER`]).
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TOKENLEDGER_LOG")
        .unwrap_or_else(|_| format!("info,{ENGINE_LOG_FILTER}").into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colours_wanted());
    match (format, stderr_is_the_journal()) {
        (LogFormat::Json, _) => builder.json().init(),
        (LogFormat::Text, true) => builder.without_time().init(),
        (LogFormat::Text, false) => builder.init(),
    }
}

/// Colours on a terminal only, and never with `NO_COLOR` set (https://no-color.org).
fn colours_wanted() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Is stderr the stream systemd connected to journald? systemd names its device and inode
/// in `JOURNAL_STREAM` (`DEV:INODE`); a redirection by the service's command line would
/// not match them.
fn stderr_is_the_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(descriptor) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    let Ok(metadata) = std::fs::File::from(descriptor).metadata() else {
        return false;
    };
    stream.to_str() == Some(format!("{}:{}", metadata.dev(), metadata.ino()).as_str())
}
