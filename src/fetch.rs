//! HTTP GET of a watched page, with a timeout and a body-size cap enforced while reading.

use std::time::Duration;

use url::Url;

pub const USER_AGENT: &str = concat!("pagehook/", env!("CARGO_PKG_VERSION"));

/// What one request for a page needs to know.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub url: &'a Url,
    pub timeout: Duration,
    pub max_body: u64,
}

/// A fetched page.
#[derive(Debug, Clone)]
pub struct Page {
    /// Where the page ended up after redirects.
    pub url: Url,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("timed out after {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error("HTTP {0}")]
    Status(reqwest::StatusCode),
    #[error("body is larger than the {0}-byte limit (max_body_size)")]
    TooLarge(u64),
    #[error("{0}")]
    Transport(String),
}

impl FetchError {
    fn from_reqwest(err: reqwest::Error, timeout: Duration) -> Self {
        if err.is_timeout() {
            FetchError::Timeout(timeout)
        } else {
            // The URL is the watcher's own and already in every log line about it.
            FetchError::Transport(error_chain(&err.without_url()))
        }
    }
}

/// reqwest's top-level message ("error sending request") hides the cause a user needs.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// One HTTP client for all pages: connection pools and TLS sessions are shared.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
}

impl Fetcher {
    pub fn new() -> Result<Self, FetchError> {
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::limited(10))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| FetchError::Transport(error_chain(&e)))?;
        Ok(Fetcher { client })
    }

    pub async fn fetch(&self, req: &Request<'_>) -> Result<Page, FetchError> {
        // One deadline for the whole exchange, body included: a server that trickles bytes
        // must not hold a check open forever.
        tokio::time::timeout(req.timeout, self.exchange(req))
            .await
            .unwrap_or(Err(FetchError::Timeout(req.timeout)))
    }

    async fn exchange(&self, req: &Request<'_>) -> Result<Page, FetchError> {
        let mut response = self
            .client
            .get(req.url.clone())
            .send()
            .await
            .map_err(|e| FetchError::from_reqwest(e, req.timeout))?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status(status));
        }
        if response
            .content_length()
            .is_some_and(|len| len > req.max_body)
        {
            return Err(FetchError::TooLarge(req.max_body));
        }
        let url = response.url().clone();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| FetchError::from_reqwest(e, req.timeout))?
        {
            if (body.len() + chunk.len()) as u64 > req.max_body {
                return Err(FetchError::TooLarge(req.max_body));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Page {
            url,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}
