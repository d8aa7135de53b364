//! HTTP fetch of a watched page: conditional requests, a body-size cap enforced while reading,
//! charset decoding, per-host politeness, proxies, and retries of transient failures. The
//! browser fetcher (`browser`) renders pages that build themselves in the browser; `blocked`
//! recognises bot walls for both.

pub(crate) mod blocked;
pub mod browser;
mod decode;
mod gate;
mod proxy;
mod redirect;
mod retry;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use tokio::time::Instant;

use crate::reason::Reason;
use crate::redact::SensitiveUrl;

pub(crate) use gate::{Busy, HostPolicy, Limit};
pub(crate) use proxy::{ProxyPool, ProxyUrl, Rotation};
use redirect::{Hop, Unusable};
pub(crate) use retry::parse_retry_after;

pub(crate) const USER_AGENT: &str = concat!("pagehook/", env!("CARGO_PKG_VERSION"));
/// Requests in flight at once across all hosts (`daemon.max_concurrency`).
pub(crate) const DEFAULT_MAX_CONCURRENCY: usize = 32;
/// Requests in flight at once to one host (`per_host_concurrency`).
pub(crate) const DEFAULT_PER_HOST_CONCURRENCY: usize = 2;
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const MAX_REDIRECTS: usize = 10;

/// How a watcher's requests are made, beyond the URL: fixed at config load.
#[derive(Clone, PartialEq)]
pub struct HttpOptions {
    pub(crate) method: Method,
    /// Extra headers, cookies and user agent included; all marked sensitive.
    pub headers: HeaderMap,
    pub(crate) body: Option<String>,
    pub(crate) proxy: Proxy,
    pub(crate) connect_timeout: Duration,
    pub(crate) host: HostPolicy,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            method: Method::GET,
            headers: HeaderMap::new(),
            body: None,
            proxy: Proxy::Direct,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            host: HostPolicy::default(),
        }
    }
}

impl fmt::Debug for HttpOptions {
    // Headers and cookies usually carry credentials, so only their names are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpOptions")
            .field("method", &self.method)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("body", &self.body.as_ref().map(|b| b.len()))
            .field("proxy", &self.proxy)
            .field("connect_timeout", &self.connect_timeout)
            .field("host", &self.host)
            .finish()
    }
}

/// Where requests go out.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Proxy {
    Direct,
    One(ProxyUrl),
    Pool(Arc<ProxyPool>),
}

/// The validators of the last full fetch of a page. Sent back, they let an unchanged page
/// answer 304 Not Modified without a body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Validators {
    pub(crate) etag: Option<String>,
    pub(crate) last_modified: Option<String>,
}

impl Validators {
    pub(crate) fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// What one request for a page needs to know.
#[derive(Debug, Clone)]
pub(crate) struct Request<'a> {
    pub(crate) url: &'a SensitiveUrl,
    /// The whole fetch: waiting for a slot, every try, body included, and the pauses between.
    pub(crate) timeout: Duration,
    /// When `timeout` runs out.
    pub(crate) deadline: Instant,
    /// When the check was due: waiting requests to a host are served earliest-due first.
    pub(crate) due: DateTime<Utc>,
    pub(crate) max_body: u64,
    pub(crate) options: &'a HttpOptions,
    /// Sent as If-None-Match / If-Modified-Since when present (HTTP only).
    pub(crate) validators: Option<&'a Validators>,
    /// Render the page in the browser instead (`browser = true`).
    pub(crate) browser: Option<&'a browser::BrowserPage>,
}

/// A fetched page.
#[derive(Debug, Clone)]
pub struct Page {
    /// Where the page ended up after redirects.
    pub url: SensitiveUrl,
    pub body: String,
    pub(crate) validators: Validators,
}

/// What a request brought back.
#[derive(Debug, Clone)]
pub(crate) enum Fetched {
    Page(Page),
    /// 304: the page is what it was when the validators were taken.
    NotModified,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("timed out after {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// Politeness or the global cap left no slot within the check's timeout.
    #[error("{}", .0.explain(*.1))]
    Busy(Busy, Duration),
    #[error("HTTP {0}")]
    Status(StatusCode),
    #[error("body is larger than the {0}-byte limit (max_body_size)")]
    TooLarge(u64),
    #[error("more than {MAX_REDIRECTS} redirects (a redirect loop?)")]
    TooManyRedirects,
    #[error("HTTP {0} redirects to a location that is not an http:// or https:// URL")]
    BadRedirect(StatusCode),
    #[error("{0}")]
    Transport(String),
    #[error("blocked by a bot wall: {0}")]
    Blocked(blocked::Wall),
    #[error("the page did not render: {0}")]
    Render(String),
    #[error("browser: {0}")]
    Browser(String),
}

impl FetchError {
    pub fn reason(&self) -> Reason {
        match self {
            FetchError::Timeout(_) => Reason::Timeout,
            FetchError::Status(_) => Reason::HttpStatus,
            FetchError::TooLarge(_) => Reason::TooLarge,
            FetchError::TooManyRedirects | FetchError::BadRedirect(_) => Reason::Redirect,
            FetchError::Busy(..) => Reason::Busy,
            FetchError::Transport(_) => Reason::Connect,
            FetchError::Blocked(_) => Reason::Blocked,
            FetchError::Render(_) => Reason::Render,
            FetchError::Browser(_) => Reason::Browser,
        }
    }

    /// Whether a proxy of a pool is to blame: it answered at all if the site did.
    pub(crate) fn blames_proxy(&self) -> bool {
        matches!(self, FetchError::Transport(_) | FetchError::Timeout(_))
            || matches!(self, FetchError::Status(s) if *s == StatusCode::PROXY_AUTHENTICATION_REQUIRED)
    }
}

/// One failed try, and whether another may help.
struct Failure {
    error: FetchError,
    transient: bool,
    retry_after: Option<Duration>,
}

impl Failure {
    fn fatal(error: FetchError) -> Self {
        Failure {
            error,
            transient: false,
            retry_after: None,
        }
    }

    fn from_reqwest(err: reqwest::Error, timeout: Duration, proxy: Option<&ProxyUrl>) -> Self {
        let transient = retry::is_transient_transport(&err);
        let error = if err.is_timeout() {
            FetchError::Timeout(timeout)
        } else {
            // The URL may hold credentials, and the watcher's name already says which page.
            let text = error_chain(&err.without_url());
            FetchError::Transport(match proxy {
                Some(proxy) => proxy.scrub(text),
                None => text,
            })
        };
        Failure {
            error,
            transient,
            retry_after: None,
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

/// The HTTP side of pagehook: cheap to clone; connection pools, TLS sessions and the
/// politeness limits are shared by every clone.
#[derive(Clone)]
pub(crate) struct Fetcher {
    inner: Arc<Inner>,
}

struct Inner {
    // One client per proxy and connect timeout, since reqwest fixes both per client; a config
    // names few of them. A std mutex: held only to look one up.
    clients: Mutex<HashMap<(Option<ProxyUrl>, Duration), reqwest::Client>>,
    gates: gate::Gates,
    /// Started on the first browser watcher's check, and shared by all of them.
    browser: browser::Browser,
}

impl Fetcher {
    #[cfg(test)]
    pub(crate) fn new() -> Result<Self, FetchError> {
        Self::with_browser(DEFAULT_MAX_CONCURRENCY, browser::BrowserConfig::default())
    }

    /// A fetcher that has at most `max_concurrency` requests in flight, rendering browser
    /// watchers' pages with the browser `config` names. No browser starts until one is needed.
    pub(crate) fn with_browser(
        max_concurrency: usize,
        config: browser::BrowserConfig,
    ) -> Result<Self, FetchError> {
        let fetcher = Fetcher {
            inner: Arc::new(Inner {
                clients: Mutex::new(HashMap::new()),
                gates: gate::Gates::new(max_concurrency),
                browser: browser::Browser::new(config),
            }),
        };
        // Build the direct client now, so a broken TLS setup shows at start-up.
        fetcher.client(None, DEFAULT_CONNECT_TIMEOUT)?;
        Ok(fetcher)
    }

    fn client(
        &self,
        proxy: Option<&ProxyUrl>,
        connect_timeout: Duration,
    ) -> Result<reqwest::Client, FetchError> {
        let key = (proxy.cloned(), connect_timeout);
        let mut clients = self.inner.clients.lock().expect("not poisoned");
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            // `exchange` follows redirects itself, choosing what may reach another origin.
            .redirect(reqwest::redirect::Policy::none())
            .referer(false)
            .connect_timeout(connect_timeout);
        builder = match proxy {
            Some(url) => builder.proxy(
                reqwest::Proxy::all(url.expose())
                    .map_err(|e| FetchError::Transport(url.scrub(error_chain(&e))))?,
            ),
            // The environment's HTTP_PROXY must not silently reroute a watcher that asked for
            // no proxy.
            None => builder.no_proxy(),
        };
        let client = builder
            .build()
            .map_err(|e| FetchError::Transport(error_chain(&e)))?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// Fetch a page: wait for the host's and a global slot, then try up to three times while
    /// the failures look transient (connection refused or reset, 429, 502, 503, 504); all of
    /// it within the request's deadline.
    pub(crate) async fn fetch(&self, req: &Request<'_>) -> Result<Fetched, FetchError> {
        if let Some(page) = req.browser {
            return self.render(req, page).await.map(Fetched::Page);
        }
        let host = host_key(req.url);
        let mut attempt = 1;
        loop {
            let (proxy, pool_index) = match &req.options.proxy {
                Proxy::Direct => (None, None),
                Proxy::One(url) => (Some(url.clone()), None),
                Proxy::Pool(pool) => {
                    let (index, url) = pool.pick();
                    (Some(url), Some(index))
                }
            };
            let result = {
                let gates = &self.inner.gates;
                let _pass = gates
                    .enter(&host, req.options.host, req.due, req.deadline)
                    .await
                    .map_err(|busy| FetchError::Busy(busy, req.timeout))?;
                // One deadline for the whole fetch, body included: a server that trickles
                // bytes must not hold a check open forever.
                // Boxed: a check waiting at the gates then costs a few hundred bytes, not the
                // size of a whole exchange, which adds up over thousands of waiting checks.
                let exchange = Box::pin(self.exchange(req, proxy.as_ref()));
                tokio::time::timeout_at(req.deadline, exchange)
                    .await
                    .unwrap_or_else(|_| Err(Failure::fatal(FetchError::Timeout(req.timeout))))
            };
            if let (Proxy::Pool(pool), Some(index)) = (&req.options.proxy, pool_index) {
                let proxy_failed = matches!(&result, Err(f) if f.error.blames_proxy());
                pool.report(index, !proxy_failed);
            }
            let failure = match result {
                Ok(fetched) => return Ok(fetched),
                Err(failure) => failure,
            };
            let wait = failure
                .transient
                .then(|| retry::delay(attempt, failure.retry_after))
                .flatten();
            // No pause that would end past the deadline: the check's time is up.
            let Some(wait) = wait.filter(|w| Instant::now() + *w < req.deadline) else {
                return Err(failure.error);
            };
            tracing::debug!(url = %req.url, attempt, error = %failure.error, wait = ?wait, "transient fetch failure; trying again");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// Close the browser, if one was started: `once` and `test` do before they exit.
    pub(crate) async fn close(&self) {
        self.inner.browser.close().await;
    }

    /// Render a browser watcher's page: the host's politeness applies as to an HTTP request
    /// (the page's own requests follow from it), then a tab, all within the deadline. No
    /// retries: a render that failed for a reason worth retrying has used its time.
    async fn render(
        &self,
        req: &Request<'_>,
        page: &browser::BrowserPage,
    ) -> Result<Page, FetchError> {
        let host = host_key(req.url);
        let _pass = self
            .inner
            .gates
            .enter(&host, req.options.host, req.due, req.deadline)
            .await
            .map_err(|busy| FetchError::Busy(busy, req.timeout))?;
        let render = browser::RenderRequest {
            url: req.url.expose(),
            timeout: req.timeout,
            max_body: req.max_body,
            options: req.options,
            wait_for: page.wait_for.as_deref(),
            load_media: self.inner.browser.loads_media(),
            deadline: Some(req.deadline),
        };
        self.inner.browser.fetch(&render).await
    }

    async fn exchange(
        &self,
        req: &Request<'_>,
        proxy: Option<&ProxyUrl>,
    ) -> Result<Fetched, Failure> {
        let options = req.options;
        let client = self
            .client(proxy, options.connect_timeout)
            .map_err(Failure::fatal)?;
        let mut headers = options.headers.clone();
        if let Some(v) = req.validators {
            if let Some(etag) = v
                .etag
                .as_deref()
                .and_then(|e| HeaderValue::from_str(e).ok())
            {
                headers.insert(header::IF_NONE_MATCH, etag);
            }
            if let Some(date) = v
                .last_modified
                .as_deref()
                .and_then(|d| HeaderValue::from_str(d).ok())
            {
                headers.insert(header::IF_MODIFIED_SINCE, date);
            }
        }
        let first = Hop {
            url: req.url.expose().clone(),
            method: options.method.clone(),
            headers,
            body: options.body.clone(),
        };
        let mut response = follow_redirects(&client, first, req.timeout, proxy).await?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED && req.validators.is_some() {
            return Ok(Fetched::NotModified);
        }
        if !status.is_success() {
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry::parse_retry_after(v, chrono::Utc::now()));
            let headers = response.headers().clone();
            // A refusal is read (a little of it) only to tell a bot wall from a plain error;
            // a body that cannot be read leaves the status as the answer.
            let limit = req.max_body.min(blocked::MAX_CHALLENGE_PAGE as u64);
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = read_body(&mut response, limit, req.timeout, proxy)
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
            let body = decode::decode(body, content_type.as_deref());
            if let Some(wall) = blocked::detect(status, &headers, &body) {
                return Err(Failure::fatal(FetchError::Blocked(wall)));
            }
            return Err(Failure {
                error: FetchError::Status(status),
                transient: retry::is_transient_status(status),
                retry_after,
            });
        }
        if response
            .content_length()
            .is_some_and(|len| len > req.max_body)
        {
            return Err(Failure::fatal(FetchError::TooLarge(req.max_body)));
        }
        let url = SensitiveUrl::new(response.url().clone());
        let headers = response.headers();
        let text = |name| {
            headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let validators = Validators {
            etag: text(header::ETAG),
            last_modified: text(header::LAST_MODIFIED),
        };
        let content_type = text(header::CONTENT_TYPE);
        let headers = headers.clone();
        let body = read_body(&mut response, req.max_body, req.timeout, proxy)
            .await?
            .ok_or_else(|| Failure::fatal(FetchError::TooLarge(req.max_body)))?;
        let body = decode::decode(body, content_type.as_deref());
        // A challenge page served with 200 is not the page: no value may be read from it.
        if let Some(wall) = blocked::detect(status, &headers, &body) {
            return Err(Failure::fatal(FetchError::Blocked(wall)));
        }
        Ok(Fetched::Page(Page {
            url,
            body,
            validators,
        }))
    }
}

/// The body, or None when it is larger than `limit`. Bodies are usually compressed, so the
/// declared length says little about the decoded size; the cap is checked as each chunk
/// arrives.
async fn read_body(
    response: &mut reqwest::Response,
    limit: u64,
    timeout: Duration,
    proxy: Option<&ProxyUrl>,
) -> Result<Option<Vec<u8>>, Failure> {
    let declared = response.content_length().unwrap_or(0);
    let mut body = Vec::with_capacity(declared.min(limit) as usize);
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Failure::from_reqwest(e, timeout, proxy))?
    {
        if (body.len() + chunk.len()) as u64 > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// Send `hop`, then each request its redirects ask for (see `redirect`), up to MAX_REDIRECTS;
/// the answer that is not a redirect.
async fn follow_redirects(
    client: &reqwest::Client,
    mut hop: Hop,
    timeout: Duration,
    proxy: Option<&ProxyUrl>,
) -> Result<reqwest::Response, Failure> {
    let mut redirects = 0;
    loop {
        let mut builder = client
            .request(hop.method.clone(), hop.url.clone())
            .headers(hop.headers.clone());
        if let Some(body) = &hop.body {
            builder = builder.body(body.clone());
        }
        let response = builder
            .send()
            .await
            .map_err(|e| Failure::from_reqwest(e, timeout, proxy))?;
        let status = response.status();
        match hop.redirected(status, response.headers().get(header::LOCATION)) {
            None => return Ok(response),
            Some(Err(Unusable)) => return Err(Failure::fatal(FetchError::BadRedirect(status))),
            Some(Ok(_)) if redirects == MAX_REDIRECTS => {
                return Err(Failure::fatal(FetchError::TooManyRedirects));
            }
            Some(Ok(next)) => {
                hop = next;
                redirects += 1;
            }
        }
    }
}

/// Politeness is per origin host and port, whatever proxy a request goes through.
pub(crate) fn host_key(url: &SensitiveUrl) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}
