//! A small blocking HTTP client for the tokenledger API: base URL, optional bearer
//! credential, and the API's JSON errors turned into messages.

use std::time::Duration;

use serde::de::DeserializeOwned;
use tokenledger_core::wire::ErrorBody;

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {url}: {source}")]
    Transport {
        url: String,
        source: Box<ureq::Error>,
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
        let mut response = request.call().map_err(|e| ClientError::Transport {
            url: url.clone(),
            source: Box::new(e),
        })?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
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

    /// GETs `path` and decodes the JSON body.
    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let body = self.get_text(path)?;
        serde_json::from_str(&body).map_err(|e| ClientError::Body {
            url: format!("{}{path}", self.base),
            detail: e.to_string(),
        })
    }
}
