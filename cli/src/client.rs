//! A small blocking HTTP client for the tokenledger API: base URL, optional bearer
//! credential, and the API's JSON errors turned into messages.

use std::time::Duration;

use serde::de::DeserializeOwned;
use tokenledger_core::wire::ErrorBody;

/// Largest answer read, in bytes (an NDJSON answer to 10,000 reports is about 3 MB).
const MAX_ANSWER_BYTES: u64 = 64 << 20;

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {url}: {cause}")]
    Transport {
        url: String,
        cause: Box<ureq::Error>,
    },
    #[error("{url} answered {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url} answered something unreadable: {detail}")]
    Body { url: String, detail: String },
}

/// A client bound to one server.
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl ClientError {
    /// Whether asking again may succeed: the server was unreachable or answered 503.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Transport { .. } => true,
            ClientError::Status { status, .. } => *status == 503,
            ClientError::Body { .. } => false,
        }
    }
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Client {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .http_status_as_error(false)
            .build()
            .into();
        Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            agent,
        }
    }

    /// GETs `path` and returns the body as text.
    pub fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.agent.get(&url);
        if let Some(token) = &self.token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        let response = request.call();
        read_answer(url, response)
    }

    /// POSTs an `application/x-ndjson` body to `path` and returns the answer as text.
    pub fn post_ndjson(&self, path: &str, body: &[u8]) -> Result<String, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .agent
            .post(&url)
            .header("Content-Type", "application/x-ndjson");
        if let Some(token) = &self.token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        let response = request.send(body);
        read_answer(url, response)
    }

    /// GETs `path` and decodes the JSON body.
    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let body = self.get_text(path)?;
        serde_json::from_str(&body).map_err(|e| ClientError::Body {
            url: format!("{}{path}", self.base),
            detail: e.to_string(),
        })
    }
}

/// Reads an answer: its body as text, or the API's error message for a non-2xx status.
fn read_answer(
    url: String,
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<String, ClientError> {
    let mut response = response.map_err(|e| ClientError::Transport {
        url: url.clone(),
        cause: Box::new(e),
    })?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_string()
        .map_err(|e| ClientError::Body {
            url: url.clone(),
            detail: e.to_string(),
        })?;
    if !(200..300).contains(&status) {
        let message = serde_json::from_str::<ErrorBody>(&body)
            .map(|e| e.error.message)
            .unwrap_or(body);
        return Err(ClientError::Status {
            url,
            status,
            message,
        });
    }
    Ok(body)
}
