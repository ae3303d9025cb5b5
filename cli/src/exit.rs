//! Exit codes, the same for every command (but `check`, which speaks its callers' plugin
//! protocols: [`crate::check`]), and [`Failure`], the error a command ends with: it carries its
//! exit code, so that mapping errors to codes happens in one place.

use crate::client::ClientError;

/// Success.
pub const OK: u8 = 0;
/// The answer is negative: verification failed, not found, some reports rejected.
pub const NEGATIVE: u8 = 1;
/// Usage, network or server error (clap's own usage errors exit 2 as well).
pub const ERROR: u8 = 2;
/// `blocklist pull`: the file on disk is current, nothing was written.
pub const NOT_MODIFIED: u8 = 3;
/// Authentication or authorization refused: the server answered 401 or 403.
pub const REFUSED: u8 = 4;

/// The exit codes as `--help` and README.md document them.
pub const EXIT_CODES_HELP: &str = "\
Exit status (every command but `check`):
  0  success
  1  the answer is negative: verification failed, not found, some reports rejected
  2  usage, network or server error
  3  not modified (`blocklist pull`: the file on disk is current)
  4  authentication or authorization refused (the server answered 401 or 403)
`tokenledger check` answers in its callers' plugin protocols instead: see `check --help`.";

/// Why a command did not succeed, with the exit code that follows.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// A negative answer (exit 1).
    #[error("{0}")]
    Negative(String),
    /// Usage, network or server error (exit 2).
    #[error("{0}")]
    Error(String),
    /// The server refused the credential or the caller (exit 4).
    #[error("{0}")]
    Refused(String),
}

impl Failure {
    pub fn code(&self) -> u8 {
        match self {
            Failure::Negative(_) => NEGATIVE,
            Failure::Error(_) => ERROR,
            Failure::Refused(_) => REFUSED,
        }
    }
}

/// The exit code of an HTTP error status: 401/403 refused, 404 not found (negative), any other
/// error status a server or usage error.
pub fn code_of_status(status: u16) -> u8 {
    match status {
        401 | 403 => REFUSED,
        404 => NEGATIVE,
        _ => ERROR,
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        let code = match &e {
            ClientError::Status { status, .. } => code_of_status(*status),
            ClientError::Transport { .. }
            | ClientError::Tls { .. }
            | ClientError::Body { .. }
            | ClientError::Path(_) => ERROR,
        };
        let message = e.to_string();
        match code {
            REFUSED => Failure::Refused(message),
            NEGATIVE => Failure::Negative(message),
            _ => Failure::Error(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> ClientError {
        ClientError::Status {
            url: "http://ledger/v1/x".into(),
            status,
            code: None,
            message: "m".into(),
        }
    }

    #[test]
    fn statuses_map_to_exit_codes() {
        for (http, code) in [
            (400, ERROR),
            (401, REFUSED),
            (403, REFUSED),
            (404, NEGATIVE),
            (409, ERROR),
            (422, ERROR),
            (500, ERROR),
            (503, ERROR),
        ] {
            assert_eq!(code_of_status(http), code, "{http}");
            assert_eq!(Failure::from(status(http)).code(), code, "{http}");
        }
        let body = ClientError::Body {
            url: "u".into(),
            detail: "d".into(),
        };
        assert_eq!(Failure::from(body).code(), ERROR);
        let message = Failure::from(status(403)).to_string();
        assert_eq!(message, "http://ledger/v1/x answered 403: m");
    }

    #[test]
    fn each_failure_has_its_code() {
        assert_eq!(Failure::Negative("n".into()).code(), 1);
        assert_eq!(Failure::Error("e".into()).code(), 2);
        assert_eq!(Failure::Refused("r".into()).code(), 4);
        assert!(EXIT_CODES_HELP.contains("4  authentication"));
    }
}
