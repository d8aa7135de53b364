//! The browser fetcher: a page rendered in headless Chromium, for shops that build their
//! prices in the browser.
//!
//! One [`Browser`] handle serves every browser watcher. It starts Chromium on first use, reuses
//! it, and starts a new one when it crashed or stopped answering. Each render gets a fresh
//! browser context (its own cookies and storage), at most `max_tabs` render at once, and the
//! page's timeout bounds everything, from waiting for the browser to reading the DOM. Images,
//! media and fonts are refused unless asked for; popups, downloads, dialogs and permission
//! prompts are refused always.
//!
//! The protocol is spoken by a small client of our own (`cdp`) rather than chromiumoxide:
//! that crate's generated protocol types alone took 77 s of a 2 min 13 s debug build here,
//! it brings a second reqwest, and its typed events fail to parse when a new Chromium adds an
//! enum value. `devtools` drives the same client and process directly, for the dashboard's
//! tests.

mod cdp;
pub mod devtools;
mod intercept;
mod process;
mod render;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::json;
use tokio::sync::{Mutex, Semaphore};
use tokio::time::{Instant, timeout_at};
use url::Url;

use super::{Busy, FetchError, HttpOptions, Limit, Page, Validators, blocked};
use cdp::Connection;
use process::Process;

pub(crate) use process::EXECUTABLES;
pub use process::discover;

/// Pages rendered at once (`[browser] max_tabs`).
pub(crate) const DEFAULT_MAX_TABS: usize = 2;
/// How long a browser that pagehook started gets to close by itself before it is killed.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How a failure to start begins when the browser went away before it answered.
const DID_NOT_START: &str = "the browser did not start";

/// Which browser to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The first of [`EXECUTABLES`] on `PATH`, started by pagehook.
    Discover,
    /// This executable, started by pagehook.
    Executable(PathBuf),
    /// A browser that is already running, at its DevTools WebSocket (`ws://...`). pagehook
    /// neither starts nor stops it.
    Endpoint(Url),
}

/// The `[browser]` table, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserConfig {
    pub source: Source,
    pub max_tabs: usize,
    /// Load images, media and fonts (`load_media`); refused by default, as a price needs none.
    pub load_media: bool,
}

impl Default for BrowserConfig {
    fn default() -> Self {
        BrowserConfig {
            source: Source::Discover,
            max_tabs: DEFAULT_MAX_TABS,
            load_media: false,
        }
    }
}

impl BrowserConfig {
    /// Why no browser can be had, when that can be told without starting one: a browser at an
    /// endpoint is only known when asked.
    pub(crate) fn unavailable(&self) -> Option<String> {
        match &self.source {
            Source::Discover if discover().is_none() => Some(format!(
                "no browser found: install one of {} on PATH, or set [browser] executable or endpoint",
                EXECUTABLES.join(", ")
            )),
            Source::Executable(path) if !process::is_executable(path) => Some(format!(
                "[browser] executable {} is not an executable file",
                path.display()
            )),
            _ => None,
        }
    }
}

/// A watcher's `browser = true`, with what it adds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct BrowserPage {
    /// `wait_for`: a CSS selector (validated at load) the rendered page must match.
    pub(crate) wait_for: Option<String>,
}

/// What one render needs to know.
#[derive(Debug, Clone)]
pub struct RenderRequest<'a> {
    pub url: &'a Url,
    /// Everything: the wait for a browser, loading, waiting, reading the DOM.
    pub timeout: Duration,
    /// The largest rendered HTML accepted.
    pub max_body: u64,
    /// Headers (sent to the page's own origin only), cookies, user agent and proxy.
    pub options: &'a HttpOptions,
    /// Wait until this CSS selector matches, instead of for the load event and a quiet
    /// network.
    pub wait_for: Option<&'a str>,
    /// Load images, media and fonts too.
    pub load_media: bool,
    /// When set, the render ends by then, waiting for a tab included: a check's whole
    /// `timeout`. Without it, only the render after the wait for a tab is bounded.
    pub deadline: Option<Instant>,
}

/// A rendered page: the DOM as the page's scripts left it.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// Where the page ended up, after redirects, script redirects included.
    pub url: Url,
    /// The status and headers of the main document's last response.
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub html: String,
}

impl From<Rendered> for Page {
    fn from(rendered: Rendered) -> Page {
        Page {
            url: crate::redact::SensitiveUrl::new(rendered.url),
            body: rendered.html,
            validators: Validators::default(),
        }
    }
}

/// The browser side of pagehook: cheap to clone; every clone shares one browser.
#[derive(Clone)]
pub struct Browser {
    shared: Arc<Shared>,
}

struct Shared {
    config: BrowserConfig,
    tabs: Semaphore,
    // A tokio mutex: starting a browser awaits, and renders that arrive meanwhile wait for
    // that browser rather than starting their own.
    instance: Mutex<Option<Arc<Instance>>>,
}

/// One running browser.
struct Instance {
    connection: Connection,
    /// None for a browser at an endpoint.
    process: std::sync::Mutex<Option<Process>>,
    group: Option<u32>,
    broken: AtomicBool,
}

impl Instance {
    fn usable(&self) -> bool {
        !self.broken.load(Ordering::Relaxed) && !self.connection.is_closed()
    }

    /// Stop using this browser; one that pagehook started is killed, group and all.
    async fn shut(&self) {
        self.broken.store(true, Ordering::Relaxed);
        let process = self.process.lock().expect("not poisoned").take();
        self.connection.close();
        if let Some(process) = process {
            let _ = process.kill().await;
        }
    }
}

impl Browser {
    pub fn new(config: BrowserConfig) -> Browser {
        Browser {
            shared: Arc::new(Shared {
                tabs: Semaphore::new(config.max_tabs.max(1)),
                config,
                instance: Mutex::new(None),
            }),
        }
    }

    /// Render a page and screen it like the HTTP fetcher screens a response: a bot wall's
    /// challenge fails as `Blocked`, any other non-2xx document as `Status`.
    pub async fn fetch(&self, req: &RenderRequest<'_>) -> Result<Page, FetchError> {
        let rendered = self.render(req).await?;
        blocked::screen(rendered.status, &rendered.headers, &rendered.html)?;
        Ok(rendered.into())
    }

    /// The `load_media` of the `[browser]` table.
    pub(crate) fn loads_media(&self) -> bool {
        self.shared.config.load_media
    }

    /// Render a page and return it as it is, whatever its status.
    pub async fn render(&self, req: &RenderRequest<'_>) -> Result<Rendered, FetchError> {
        // Waiting for a tab is queueing, like waiting at the HTTP fetcher's gates: bounded by a
        // check's deadline when there is one.
        let acquire = self.shared.tabs.acquire();
        let _tab = match req.deadline {
            Some(by) => timeout_at(by, acquire).await.map_err(|_| {
                let busy = Busy {
                    host: req.url.host_str().unwrap_or_default().to_owned(),
                    limit: Limit::Tabs(self.shared.config.max_tabs),
                };
                FetchError::Busy(busy, req.timeout)
            })?,
            None => acquire.await,
        }
        .expect("never closed");
        let deadline = match req.deadline {
            Some(by) => by.min(Instant::now() + req.timeout),
            None => Instant::now() + req.timeout,
        };
        let instance = self.instance(deadline, req.timeout).await?;
        match render::render(&instance.connection, req, deadline).await {
            Ok(rendered) => Ok(rendered),
            Err(failure) => {
                if failure.browser_broken {
                    tracing::warn!(error = %failure.error, "the browser is restarted on next use");
                    instance.shut().await;
                }
                Err(failure.error)
            }
        }
    }

    /// Close the browser (`once` and `test` call this before they exit). The next render
    /// starts a new one.
    pub async fn close(&self) {
        let Some(instance) = self.shared.instance.lock().await.take() else {
            return;
        };
        let started_here = instance.process.lock().expect("not poisoned").is_some();
        if started_here && instance.usable() {
            let _ = tokio::time::timeout(
                CLOSE_GRACE,
                instance.connection.call(None, "Browser.close", json!({})),
            )
            .await;
            let _ = tokio::time::timeout(CLOSE_GRACE, instance.connection.closed()).await;
        }
        instance.shut().await;
    }

    /// The process group of the browser pagehook started, while it runs.
    pub async fn process_group(&self) -> Option<u32> {
        let instance = self.shared.instance.lock().await;
        instance
            .as_ref()
            .filter(|i| i.usable())
            .and_then(|i| i.group)
    }

    /// The running browser, or a new one.
    async fn instance(
        &self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Arc<Instance>, FetchError> {
        let mut slot = self.shared.instance.lock().await;
        if let Some(instance) = slot.as_ref() {
            if instance.usable() {
                return Ok(instance.clone());
            }
            // Crashed or hung: whatever is left of it goes.
            instance.shut().await;
            *slot = None;
        }
        let instance = match self.start(deadline, timeout).await {
            // Chromium now and then crashes as it starts on a loaded machine: one more try,
            // within the same deadline.
            Err(FetchError::Browser(why))
                if why.starts_with(DID_NOT_START) && Instant::now() < deadline =>
            {
                tracing::warn!(error = %why, "the browser crashed as it started; starting it again");
                self.start(deadline, timeout).await?
            }
            started => started?,
        };
        let instance = Arc::new(instance);
        *slot = Some(instance.clone());
        Ok(instance)
    }

    async fn start(&self, deadline: Instant, timeout: Duration) -> Result<Instance, FetchError> {
        let limit = humantime::format_duration(timeout);
        let (connection, process, group) = match &self.shared.config.source {
            Source::Endpoint(url) => {
                let connection = timeout_at(deadline, Connection::over_websocket(url))
                    .await
                    .map_err(|_| {
                        FetchError::Browser(format!(
                            "the browser at {url} did not answer within {limit}"
                        ))
                    })?
                    .map_err(|err| {
                        FetchError::Browser(format!("cannot reach the browser at {url}: {err}"))
                    })?;
                (connection, None, None)
            }
            Source::Executable(path) => self.spawn(path)?,
            Source::Discover => {
                let path = discover().ok_or_else(|| {
                    FetchError::Browser(format!(
                        "no browser found: install one of {} on PATH, or set [browser] executable or endpoint",
                        EXECUTABLES.join(", ")
                    ))
                })?;
                self.spawn(&path)?
            }
        };
        let instance = Instance {
            connection,
            group,
            process: std::sync::Mutex::new(process),
            broken: AtomicBool::new(false),
        };
        // A browser is ready when it answers.
        let version = timeout_at(
            deadline,
            instance
                .connection
                .call(None, "Browser.getVersion", json!({})),
        )
        .await;
        let failure = match version {
            Ok(Ok(version)) => {
                tracing::info!(
                    product = version["product"].as_str().unwrap_or_default(),
                    pid = group,
                    "browser started"
                );
                return Ok(instance);
            }
            Ok(Err(err)) => format!("{DID_NOT_START}: {err}"),
            Err(_) => format!("the browser did not answer within {limit}"),
        };
        let process = instance.process.lock().expect("not poisoned").take();
        instance.shut().await;
        let said = match process {
            Some(process) => process.kill().await,
            None => None,
        };
        let failure = match said {
            Some(said) => format!("{failure}: {said}"),
            None => failure,
        };
        Err(FetchError::Browser(failure))
    }

    fn spawn(
        &self,
        path: &std::path::Path,
    ) -> Result<(Connection, Option<Process>, Option<u32>), FetchError> {
        let (process, connection) = Process::spawn(path).map_err(FetchError::Browser)?;
        let group = process.group();
        Ok((connection, Some(process), group))
    }
}
