//! A small blocking HTTP client for the tokenledger API: base URL, optional bearer
//! credential, the API's JSON errors turned into messages, and [`ApiPath`], which
//! percent-encodes every path segment and query value.
//!
//! A request answered 503 with the API's own `not_the_writer` or `unavailable` error is sent
//! again after a pause ([`retry_delays`]: 0.25 s doubling to 4 s, at most 30 s from the first
//! try, answers included), saying so once on stderr with the server's message (a standby's
//! names the writer): a standby (one of several servers of a
//! shared database, answering writes with `not_the_writer` until it or another takes the
//! writer role) or a busy writer. A 503 means nothing was written, so asking again is safe;
//! blocklist polls ([`Client::get_if_none_match`]) are not retried here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokenledger_core::blocklist::{BLOCKLIST_FORMAT, BLOCKLIST_READER_HEADER};
use tokenledger_core::wire::ErrorBody;

use crate::tls::TrustAnchors;

/// Largest answer read, in bytes (an NDJSON answer to 10,000 reports is about 3 MB).
const MAX_ANSWER_BYTES: u64 = 64 << 20;

/// The first pause before a request answered 503 is sent again; each next one is twice the
/// last, up to [`LONGEST_RETRY_DELAY`], while they add up to at most [`RETRY_BUDGET`].
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(250);
const LONGEST_RETRY_DELAY: Duration = Duration::from_secs(4);
const RETRY_BUDGET: Duration = Duration::from_secs(30);

/// Whether an answer is one the server gives while it cannot take the request yet: a 503
/// whose body is the API's own error `not_the_writer` (a standby) or `unavailable` (busy,
/// shutting down, or its database unreachable). Any other 503 (a proxy's, a bare one) is
/// final.
fn is_retried(status: u16, code: Option<&str>) -> bool {
    status == 503 && matches!(code, Some("not_the_writer" | "unavailable"))
}

/// The pauses between the tries of a request answered 503: 0.25 s doubling to 4 s, as long
/// as they add up to at most 30 s.
pub fn retry_delays() -> impl Iterator<Item = Duration> {
    let mut next = FIRST_RETRY_DELAY;
    let mut waited = Duration::ZERO;
    std::iter::from_fn(move || {
        if waited + next > RETRY_BUDGET {
            return None;
        }
        let delay = next;
        waited += delay;
        next = (next * 2).min(LONGEST_RETRY_DELAY);
        Some(delay)
    })
}

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {url}: {cause}")]
    Transport {
        url: String,
        cause: Box<ureq::Error>,
    },
    /// The server's certificate was refused, or the TLS handshake failed.
    #[error("TLS with {host} failed: {problem}")]
    Tls { host: String, problem: String },
    #[error("{url} answered {status}: {message}")]
    Status {
        url: String,
        status: u16,
        /// The API's machine-readable code, when the body was an API error.
        code: Option<String>,
        message: String,
    },
    #[error("{url} answered something unreadable: {detail}")]
    Body { url: String, detail: String },
    #[error("{0}")]
    Path(String),
}

/// A client bound to one server.
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
    trust: TrustAnchors,
    /// Whether it said on stderr that it waits for a server answering 503.
    said_unavailable: AtomicBool,
}

impl ClientError {
    /// Whether the server could not be reached (asking again later may succeed; a 503 was
    /// asked again already).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Transport { .. })
    }

    /// Whether the server refused the credential or the caller (401, 403).
    pub fn is_refused(&self) -> bool {
        matches!(
            self,
            ClientError::Status {
                status: 401 | 403,
                ..
            }
        )
    }
}

impl Client {
    /// A client of `base` that sends `token`, if any, and trusts `trust` over https.
    pub fn new(base: &str, token: Option<String>, trust: TrustAnchors) -> Client {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .http_status_as_error(false)
            .tls_config(trust.tls_config())
            .build()
            .into();
        Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            agent,
            trust,
            said_unavailable: AtomicBool::new(false),
        }
    }

    /// The request with the bearer credential, if any.
    fn authorized<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(token) => request.header("Authorization", &format!("Bearer {token}")),
            None => request,
        }
    }

    /// Sends a request (`send` makes and sends it afresh each time) and reads its answer;
    /// one answered 503 is sent again after each of [`retry_delays`], until another answer
    /// comes or they are spent.
    fn retrying(
        &self,
        url: &str,
        send: impl Fn() -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<String, ClientError> {
        let started = Instant::now();
        let mut delays = retry_delays();
        loop {
            let answer = self.read_answer(url.to_string(), send());
            let Err(ClientError::Status {
                status,
                code,
                message,
                ..
            }) = &answer
            else {
                return answer;
            };
            if !is_retried(*status, code.as_deref()) {
                return answer;
            }
            let Some(delay) = delays.next() else {
                return answer;
            };
            if started.elapsed() + delay > RETRY_BUDGET {
                return answer;
            }
            if !self.said_unavailable.swap(true, Ordering::Relaxed) {
                let what = match code.as_deref() {
                    Some("not_the_writer") => "is a standby",
                    _ => "is unavailable",
                };
                eprintln!(
                    "tokenledger: {} {what} ({message}); retrying for up to {} s",
                    authority(url),
                    RETRY_BUDGET.as_secs()
                );
            }
            std::thread::sleep(delay);
        }
    }

    /// GETs `path` and returns the body as text.
    pub fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let url = format!("{}{path}", self.base);
        self.retrying(&url, || self.authorized(self.agent.get(&url)).call())
    }

    /// GETs a site's blocklist (or an export) at an API path with `If-None-Match: etag` (when
    /// given), declaring the blocklist format this build reads: `None` if the server answered
    /// 304 Not Modified, else the body as text and the answer's ETag. `timeout`, when given,
    /// replaces the client's bound on the whole exchange (a long poll is held longer).
    pub fn get_if_none_match(
        &self,
        path: &ApiPath,
        etag: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<Option<Tagged>, ClientError> {
        let url = format!("{}{}", self.base, path.as_str());
        let mut request = self.agent.get(&url);
        if let Some(timeout) = timeout {
            request = request.config().timeout_global(Some(timeout)).build();
        }
        request = self.authorized(request);
        if let Some(etag) = etag {
            request = request.header("If-None-Match", etag);
        }
        request = request.header(BLOCKLIST_READER_HEADER, &BLOCKLIST_FORMAT.to_string());
        let response = request.call();
        if let Ok(answer) = &response
            && answer.status().as_u16() == 304
        {
            return Ok(None);
        }
        let etag = response.as_ref().ok().and_then(|r| {
            r.headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        });
        let body = self.read_answer(url, response)?;
        Ok(Some(Tagged { body, etag }))
    }

    /// GETs a site's signed blocklist at an API path, declaring the blocklist format this
    /// build reads: as the server sent it, and decoded.
    pub fn get_blocklist<T: DeserializeOwned>(
        &self,
        path: &ApiPath,
    ) -> Result<Answer<T>, ClientError> {
        let answer =
            self.get_if_none_match(path, None, None)?
                .ok_or_else(|| ClientError::Body {
                    url: format!("{}{}", self.base, path.as_str()),
                    detail: "304 to a request without If-None-Match".into(),
                })?;
        self.decode(path, &answer.body)
    }

    /// POSTs an `application/x-ndjson` body to `path` and returns the answer as text.
    pub fn post_ndjson(&self, path: &str, body: &[u8]) -> Result<String, ClientError> {
        self.post_body(path, "application/x-ndjson", body)
    }

    /// POSTs a body that already is JSON to an API path and returns the answer as text.
    pub fn post_json(&self, path: &ApiPath, body: &[u8]) -> Result<String, ClientError> {
        self.post_body(path.as_str(), "application/json", body)
    }

    fn post_body(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<String, ClientError> {
        let url = format!("{}{path}", self.base);
        self.retrying(&url, || {
            let request = self.agent.post(&url).header("Content-Type", content_type);
            self.authorized(request).send(body)
        })
    }

    /// GETs `path` and decodes the JSON body.
    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let body = self.get_text(path)?;
        serde_json::from_str(&body).map_err(|e| ClientError::Body {
            url: format!("{}{path}", self.base),
            detail: e.to_string(),
        })
    }

    /// GETs an API path; the answer both as the server sent it (for `--json`) and typed.
    pub fn get<T: DeserializeOwned>(&self, path: &ApiPath) -> Result<Answer<T>, ClientError> {
        let text = self.get_text(path.as_str())?;
        self.decode(path, &text)
    }

    /// Sends `body` as JSON with `method` (`POST`, `DELETE`) to an API path.
    pub fn send<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &ApiPath,
        body: &impl Serialize,
    ) -> Result<Answer<T>, ClientError> {
        self.send_within(method, path, body, None)
    }

    /// [`Client::send`], with `timeout`, when given, replacing the client's bound on each
    /// exchange (a request the server may work on for minutes, such as an erasure).
    pub fn send_within<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &ApiPath,
        body: &impl Serialize,
        timeout: Option<Duration>,
    ) -> Result<Answer<T>, ClientError> {
        let url = format!("{}{}", self.base, path.as_str());
        let json = serde_json::to_vec(body).expect("a request body serializes");
        let text = self.retrying(&url, || {
            let mut request = match method {
                "POST" => self.agent.post(&url),
                "DELETE" => self.agent.delete(&url).force_send_body(),
                other => unreachable!("no {other} requests are sent"),
            };
            if let Some(timeout) = timeout {
                request = request.config().timeout_global(Some(timeout)).build();
            }
            let request = request.header("Content-Type", "application/json");
            self.authorized(request).send(&json[..])
        })?;
        self.decode(path, &text)
    }

    /// Reads an answer: its body as text, or the API's error message for a non-2xx status.
    fn read_answer(
        &self,
        url: String,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<String, ClientError> {
        let mut response = response.map_err(|e| match self.trust.explain(&e) {
            Some(problem) => ClientError::Tls {
                host: authority(&url).to_string(),
                problem,
            },
            None => ClientError::Transport {
                url: url.clone(),
                cause: Box::new(e),
            },
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
            let (code, message) = match serde_json::from_str::<ErrorBody>(&body) {
                Ok(e) => (Some(e.error.code), e.error.message),
                Err(_) => (None, body),
            };
            return Err(ClientError::Status {
                url,
                status,
                code,
                message,
            });
        }
        Ok(body)
    }

    fn decode<T: DeserializeOwned>(
        &self,
        path: &ApiPath,
        text: &str,
    ) -> Result<Answer<T>, ClientError> {
        let unreadable = |e: serde_json::Error| ClientError::Body {
            url: format!("{}{}", self.base, path.as_str()),
            detail: e.to_string(),
        };
        let raw: Value = serde_json::from_str(text).map_err(unreadable)?;
        let typed = T::deserialize(&raw).map_err(unreadable)?;
        Ok(Answer { raw, typed })
    }
}

/// An answer's body with its `ETag`, if it had one.
#[derive(Debug)]
pub struct Tagged {
    pub body: String,
    pub etag: Option<String>,
}

/// A JSON answer: as the server sent it, and decoded.
#[derive(Debug)]
pub struct Answer<T> {
    pub raw: Value,
    pub typed: T,
}

/// The `host[:port]` of a URL, without scheme, user info, path, query or fragment.
pub fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
}

/// Bytes left as they are in a path segment or query value: RFC 3986 unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// An API path with a query, every segment and value percent-encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiPath {
    path: String,
    has_query: bool,
}

impl ApiPath {
    /// `/v1` followed by `segments`, each encoded. Refuses an empty segment, `.` and `..`,
    /// which URL normalisation would remove or resolve whatever their encoding.
    pub fn new(segments: &[&str]) -> Result<ApiPath, ClientError> {
        let mut path = String::from("/v1");
        for segment in segments {
            if segment.is_empty() || *segment == "." || *segment == ".." {
                return Err(ClientError::Path(format!(
                    "`{segment}` cannot be part of a URL path"
                )));
            }
            path.push('/');
            path.extend(utf8_percent_encode(segment, UNRESERVED));
        }
        Ok(ApiPath {
            path,
            has_query: false,
        })
    }

    /// Adds `name=value` to the query.
    pub fn query(mut self, name: &str, value: impl std::fmt::Display) -> ApiPath {
        self.path.push(if self.has_query { '&' } else { '?' });
        self.has_query = true;
        self.path.extend(utf8_percent_encode(name, UNRESERVED));
        self.path.push('=');
        self.path
            .extend(utf8_percent_encode(&value.to_string(), UNRESERVED));
        self
    }

    /// Adds `name=value` if there is a value.
    pub fn query_opt<V: std::fmt::Display>(self, name: &str, value: Option<V>) -> ApiPath {
        match value {
            Some(value) => self.query(name, value),
            None => self,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_503_is_asked_again_after_pauses_doubling_to_4_s_for_about_30_s() {
        let delays: Vec<Duration> = retry_delays().collect();
        let ms = |ms| Duration::from_millis(ms);
        let secs = Duration::from_secs;
        assert_eq!(
            delays,
            [
                ms(250),
                ms(500),
                secs(1),
                secs(2),
                secs(4),
                secs(4),
                secs(4),
                secs(4)
            ]
            .into_iter()
            .chain([secs(4), secs(4)])
            .collect::<Vec<_>>()
        );
        let total: Duration = delays.iter().sum();
        assert!(total <= RETRY_BUDGET && total > RETRY_BUDGET - LONGEST_RETRY_DELAY);
    }

    #[test]
    fn only_the_apis_own_503s_are_asked_again() {
        assert!(is_retried(503, Some("not_the_writer")));
        assert!(is_retried(503, Some("unavailable")));
        assert!(!is_retried(503, None));
        assert!(!is_retried(503, Some("internal")));
        assert!(!is_retried(500, Some("unavailable")));
        assert!(!is_retried(502, None));
    }

    #[test]
    fn path_segments_and_query_values_are_percent_encoded() {
        let path = ApiPath::new(&["vos", "atlas", "tokens", "a/b?c#d e%f"])
            .unwrap()
            .query("reason", "INC-42: a&b=c+d é")
            .query_opt("iss", Some("https://iam.example/"))
            .query_opt::<u64>("before", None)
            .query("limit", 5);
        assert_eq!(
            path.as_str(),
            "/v1/vos/atlas/tokens/a%2Fb%3Fc%23d%20e%25f\
             ?reason=INC-42%3A%20a%26b%3Dc%2Bd%20%C3%A9\
             &iss=https%3A%2F%2Fiam.example%2F&limit=5"
        );
        assert_eq!(
            ApiPath::new(&["vos", "x.y_z~-1"]).unwrap().as_str(),
            "/v1/vos/x.y_z~-1"
        );
        for bad in ["", ".", ".."] {
            let e = ApiPath::new(&["vos", bad]).unwrap_err();
            assert!(
                e.to_string().contains("cannot be part of a URL path"),
                "{e}"
            );
        }
        assert_eq!(
            ApiPath::new(&["vos", "..."]).unwrap().as_str(),
            "/v1/vos/..."
        );
    }
}
