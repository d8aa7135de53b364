//! One page in one fresh browser context: set it up, load it, wait for it, read its DOM, and
//! throw the context away.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::{Instant, timeout_at};
use url::Url;

use super::cdp::{CdpError, Connection};
use super::intercept::{Handler, cookies, credentials, proxy_server, request_headers};
use super::{RenderRequest, Rendered};
use crate::fetch::{FetchError, Proxy, ProxyUrl};

/// Characters of HTML per message while the DOM is read; far below the connection's limit
/// even when every character is escaped.
const CHUNK: u64 = 1 << 20;
/// How long throwing a context away may take before the browser counts as not answering.
const DISPOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the network must stay quiet, with the page's scripts idle too, before a page
/// without `wait_for` counts as rendered. Puppeteer's and Playwright's `networkidle` wait
/// 500 ms; what the page does in between is checked here instead (see `settle`), so less
/// will do. A page that fetches its price after a timer needs `wait_for`.
const QUIET: Duration = Duration::from_millis(200);

/// What the page's event task has seen so far.
#[derive(Debug, Clone, Default)]
pub(super) struct Progress {
    /// The loader of the main frame's current document.
    pub(crate) loader: Option<String>,
    pub(crate) loaded: bool,
    /// The page's requests under way, and when one last started or ended.
    pub(crate) in_flight: HashSet<String>,
    pub(crate) activity: Option<Instant>,
    /// The main frame was asked to go elsewhere (a script redirect) and has not yet.
    pub(crate) navigating: bool,
    pub(crate) crashed: bool,
    /// The main frame's last document response.
    pub(crate) document: Option<(StatusCode, HeaderMap)>,
}

/// Where the page got to, for the message when its time runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Setup,
    Navigate,
    Load,
    WaitFor,
    Read,
}

/// How a render failed, and whether the browser itself is to blame.
pub(super) struct Failure {
    pub(crate) error: FetchError,
    /// The browser stopped answering or went away: start a new one.
    pub(crate) browser_broken: bool,
}

impl Failure {
    fn page(error: FetchError) -> Self {
        Failure {
            error,
            browser_broken: false,
        }
    }
}

impl From<CdpError> for Failure {
    fn from(err: CdpError) -> Self {
        match err {
            CdpError::Closed => Failure {
                error: FetchError::Browser(
                    "the browser went away while rendering the page (did it crash?)".into(),
                ),
                browser_broken: true,
            },
            CdpError::Protocol { .. } => Failure::page(FetchError::Render(err.to_string())),
        }
    }
}

/// Render `req` in a new context of the browser behind `connection`, within `deadline`.
pub(super) async fn render(
    connection: &Connection,
    req: &RenderRequest<'_>,
    deadline: Instant,
) -> Result<Rendered, Failure> {
    let proxy = match &req.options.proxy {
        Proxy::Direct => None,
        Proxy::One(url) => Some((url.clone(), None)),
        Proxy::Pool(pool) => {
            let (index, url) = pool.pick();
            Some((url, Some(index)))
        }
    };
    let created = timeout_at(
        deadline,
        Context::create(connection, proxy.as_ref().map(|(url, _)| url)),
    )
    .await;
    let context = match created {
        Ok(context) => context?,
        Err(_) => {
            return Err(Failure {
                error: FetchError::Browser(format!(
                    "the browser did not open a context within {}",
                    humantime::format_duration(req.timeout)
                )),
                browser_broken: true,
            });
        }
    };
    let mut page = Page {
        connection,
        req,
        context: &context,
        stage: Stage::Setup,
        session: String::new(),
        target: String::new(),
        progress: watch::channel(Progress::default()).1,
    };
    let outcome = timeout_at(
        deadline,
        page.run(proxy.as_ref().map(|(url, _)| url), deadline),
    )
    .await
    .unwrap_or_else(|_| Err(page.timed_out()));
    connection.forget(&page.session);
    let broken = context.dispose().await;
    if let (Some((_, Some(index))), Proxy::Pool(pool)) = (&proxy, &req.options.proxy) {
        pool.report(
            *index,
            !matches!(&outcome, Err(f) if f.error.blames_proxy()),
        );
    }
    match outcome {
        Err(failure) if failure.browser_broken => Err(failure),
        // Whatever the page seemed to do, a browser that does not answer is the cause.
        _ if broken => Err(Failure {
            error: FetchError::Browser("the browser stopped answering".into()),
            browser_broken: true,
        }),
        outcome => outcome,
    }
}

/// A browser context: its own cookies, cache and storage, gone when it is disposed.
struct Context<'c> {
    connection: &'c Connection,
    id: String,
    event_task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl<'c> Context<'c> {
    async fn create(connection: &'c Connection, proxy: Option<&ProxyUrl>) -> Result<Self, Failure> {
        let mut params = json!({ "disposeOnDetach": true });
        if let Some(proxy) = proxy {
            let server = proxy_server(proxy).map_err(Failure::page)?;
            params["proxyServer"] = Value::from(server);
        }
        let created = connection
            .call(None, "Target.createBrowserContext", params)
            .await?;
        let id = created["browserContextId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Ok(Context {
            connection,
            id,
            event_task: std::sync::Mutex::new(None),
        })
    }

    /// Close the context and every page in it; true when the browser did not answer.
    async fn dispose(&self) -> bool {
        if let Some(task) = self.event_task.lock().expect("not poisoned").take() {
            task.abort();
        }
        let call = self.connection.call(
            None,
            "Target.disposeBrowserContext",
            json!({ "browserContextId": self.id }),
        );
        match tokio::time::timeout(DISPOSE_TIMEOUT, call).await {
            Ok(Ok(_)) => false,
            Ok(Err(CdpError::Protocol { message, .. })) => {
                tracing::debug!(error = %message, "disposing a browser context failed");
                false
            }
            Ok(Err(CdpError::Closed)) | Err(_) => true,
        }
    }
}

struct Page<'p> {
    connection: &'p Connection,
    req: &'p RenderRequest<'p>,
    context: &'p Context<'p>,
    stage: Stage,
    session: String,
    /// The page's target id, which is also its main frame's id.
    target: String,
    progress: watch::Receiver<Progress>,
}

impl Page<'_> {
    fn call(
        &self,
        method: &str,
        params: Value,
    ) -> impl Future<Output = Result<Value, CdpError>> + Send + 'static {
        self.connection.call(Some(&self.session), method, params)
    }

    async fn run(
        &mut self,
        proxy: Option<&ProxyUrl>,
        deadline: Instant,
    ) -> Result<Rendered, Failure> {
        let connection = self.connection;
        let context = &self.context.id;
        connection
            .call(
                None,
                "Browser.setDownloadBehavior",
                json!({ "behavior": "deny", "browserContextId": context }),
            )
            .await?;
        let cookies = cookies(self.req.url, &self.req.options.headers);
        if !cookies.is_empty() {
            connection
                .call(
                    None,
                    "Storage.setCookies",
                    json!({ "cookies": cookies, "browserContextId": context }),
                )
                .await?;
        }
        let created = connection
            .call(
                None,
                "Target.createTarget",
                json!({ "url": "about:blank", "browserContextId": context }),
            )
            .await?;
        self.target = created["targetId"].as_str().unwrap_or_default().to_owned();
        let attached = connection
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": self.target, "flatten": true }),
            )
            .await?;
        self.session = attached["sessionId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();

        let events = connection.events(&self.session);
        let (progress, watcher) = watch::channel(Progress::default());
        self.progress = watcher;
        let handler = Handler {
            connection: connection.clone(),
            session: self.session.clone(),
            main_frame: self.target.clone(),
            origin: self.req.url.origin(),
            headers: request_headers(&self.req.options.headers),
            load_media: self.req.load_media,
            proxy_credentials: proxy.and_then(credentials),
            progress,
        };
        *self.context.event_task.lock().expect("not poisoned") =
            Some(tokio::spawn(handler.run(events)));

        let patterns = [
            json!({ "urlPattern": "*", "requestStage": "Request" }),
            json!({ "urlPattern": "*", "resourceType": "Document", "requestStage": "Response" }),
        ];
        let mut setup = vec![
            self.call("Inspector.enable", json!({})),
            self.call("Page.enable", json!({})),
            self.call("Page.setLifecycleEventsEnabled", json!({ "enabled": true })),
            // Only to follow requests: no bodies kept for the protocol.
            self.call(
                "Network.enable",
                json!({ "maxTotalBufferSize": 0, "maxResourceBufferSize": 0 }),
            ),
            self.call(
                "Fetch.enable",
                json!({ "patterns": patterns, "handleAuthRequests": true }),
            ),
        ];
        if let Some(agent) = self.req.options.headers.get(reqwest::header::USER_AGENT) {
            let agent = agent.to_str().unwrap_or_default();
            setup.push(self.call(
                "Emulation.setUserAgentOverride",
                json!({ "userAgent": agent }),
            ));
        }
        // All sent at once, and answered in order: one wait for the browser instead of one a
        // call, which on a busy machine is what a page's setup mostly spends.
        for call in setup {
            call.await?;
        }

        self.stage = Stage::Navigate;
        let navigated = self
            .call("Page.navigate", json!({ "url": self.req.url.as_str() }))
            .await?;
        if let Some(error) = navigated["errorText"].as_str().filter(|e| !e.is_empty()) {
            // A page that answers with an error status and no body is still an answer.
            if let Some((status, _)) = &self.progress.borrow().document {
                if !status.is_success() {
                    return Err(Failure::page(FetchError::Status(*status)));
                }
            }
            return Err(Failure::page(navigation_error(error, self.req.timeout)));
        }

        let reserve = (self.req.timeout / 10).min(Duration::from_secs(1));
        match self.req.wait_for {
            Some(selector) => {
                self.stage = Stage::WaitFor;
                self.wait_for(selector).await?;
            }
            None => {
                self.stage = Stage::Load;
                self.settle(deadline - reserve).await?;
            }
        }
        self.stage = Stage::Read;
        let (url, html) = self.read_dom().await?;
        let progress = self.progress.borrow().clone();
        if progress.crashed {
            return Err(Failure::page(crashed()));
        }
        let (status, headers) = progress
            .document
            .unwrap_or((StatusCode::OK, HeaderMap::new()));
        let url = Url::parse(&url).unwrap_or_else(|_| self.req.url.clone());
        Ok(Rendered {
            url,
            status,
            headers,
            html,
        })
    }

    /// Wait for the load event of the page's last document, then for its network to go quiet,
    /// but not past `until`: a page that keeps polling is read as it is then.
    ///
    /// Quiet means no request under way for [`QUIET`], and then the page's main thread free:
    /// a script busy for longer than that (parsing a large bundle, say) may start the request
    /// for the price when it is done, so a trivial evaluation, which waits for the main thread,
    /// must come back with the network still quiet.
    async fn settle(&mut self, until: Instant) -> Result<(), Failure> {
        let idle =
            |p: &Progress| p.crashed || (p.loaded && !p.navigating && p.in_flight.is_empty());
        loop {
            let waited = timeout_at(until, self.progress.wait_for(idle))
                .await
                .map(|r| r.is_ok());
            match waited {
                Ok(true) => {}
                Ok(false) => return Err(CdpError::Closed.into()),
                Err(_) if self.progress.borrow().loaded => return Ok(()),
                Err(_) => return Err(Failure::page(FetchError::Timeout(self.req.timeout))),
            }
            let (gone, activity) = {
                let p = self.progress.borrow();
                (p.crashed, p.activity)
            };
            if gone {
                return Err(Failure::page(crashed()));
            }
            let quiet_at = activity.map_or_else(Instant::now, |at| at + QUIET);
            if quiet_at >= until {
                tokio::time::sleep_until(until).await;
                return Ok(());
            }
            tokio::time::sleep_until(quiet_at).await;
            if self.progress.borrow().activity != activity {
                continue;
            }
            let ping = self.call("Runtime.evaluate", json!({ "expression": "0" }));
            match timeout_at(until, ping).await {
                Err(_) => return Ok(()),
                Ok(Err(CdpError::Closed)) => return Err(CdpError::Closed.into()),
                // An error: a navigation under way, whose document is waited for next.
                Ok(_) => {}
            }
            let p = self.progress.borrow();
            if p.activity == activity && idle(&p) {
                return Ok(());
            }
        }
    }

    /// Wait until `selector` matches in the page's current document, following script
    /// redirects.
    async fn wait_for(&mut self, selector: &str) -> Result<(), Failure> {
        let selector_literal = Value::from(selector).to_string();
        let expression = format!(
            "(selector => new Promise(resolve => {{
                const found = () => document.querySelector(selector) !== null;
                if (found()) return resolve(true);
                const observer = new MutationObserver(() => {{
                    if (found()) {{ observer.disconnect(); resolve(true); }}
                }});
                observer.observe(document, {{ childList: true, subtree: true, attributes: true, characterData: true }});
            }}))({selector_literal})"
        );
        loop {
            let loader = self.progress.borrow().loader.clone();
            let answer = self
                .call(
                    "Runtime.evaluate",
                    json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }),
                )
                .await;
            match answer {
                Ok(result) => {
                    if let Some(exception) = result.get("exceptionDetails") {
                        return Err(Failure::page(FetchError::Render(format!(
                            "wait_for `{selector}`: {}",
                            exception_text(exception)
                        ))));
                    }
                    return Ok(());
                }
                // The document went away under the promise (a script redirect): wait for its
                // successor and look there.
                Err(CdpError::Protocol { .. }) => {
                    let moved = |p: &Progress| p.crashed || p.loader != loader;
                    if self.progress.wait_for(moved).await.is_err() {
                        return Err(CdpError::Closed.into());
                    }
                    if self.progress.borrow().crashed {
                        return Err(Failure::page(crashed()));
                    }
                }
                Err(closed) => return Err(closed.into()),
            }
        }
    }

    /// The rendered document's HTML and its URL, read in chunks and capped at `max_body`.
    async fn read_dom(&self) -> Result<(String, String), Failure> {
        let document = self
            .call(
                "Runtime.evaluate",
                json!({
                    "expression": "new String(document.documentElement ? document.documentElement.outerHTML : '')",
                    "returnByValue": false,
                }),
            )
            .await?;
        let Some(object) = document["result"]["objectId"].as_str() else {
            return Err(Failure::page(FetchError::Render(
                "the page's document could not be read".into(),
            )));
        };
        let object = object.to_owned();
        let head = self
            .call_on(
                &object,
                "function() { return [this.length, location.href]; }",
                &[],
            )
            .await?;
        let length = head[0].as_u64().unwrap_or(0);
        let url = head[1].as_str().unwrap_or_default().to_owned();
        // UTF-16 units never outnumber UTF-8 bytes, so this can only under-count.
        if length > self.req.max_body {
            return Err(Failure::page(FetchError::TooLarge(self.req.max_body)));
        }
        let mut html = String::with_capacity(length as usize);
        let mut at = 0;
        while at < length {
            // Never cut a surrogate pair in two: half of one is not valid JSON text.
            let chunk = self
                .call_on(
                    &object,
                    "function(at, size) {
                        let end = Math.min(at + size, this.length);
                        const last = this.charCodeAt(end - 1);
                        if (end < this.length && last >= 0xD800 && last <= 0xDBFF) end -= 1;
                        return [end, this.slice(at, end)];
                    }",
                    &[at, CHUNK],
                )
                .await?;
            let end = chunk[0].as_u64().unwrap_or(length);
            html.push_str(chunk[1].as_str().unwrap_or_default());
            if html.len() as u64 > self.req.max_body {
                return Err(Failure::page(FetchError::TooLarge(self.req.max_body)));
            }
            if end <= at {
                break;
            }
            at = end;
        }
        let _ = self
            .call("Runtime.releaseObject", json!({ "objectId": object }))
            .await;
        Ok((url, html))
    }

    async fn call_on(&self, object: &str, function: &str, args: &[u64]) -> Result<Value, Failure> {
        let arguments: Vec<Value> = args.iter().map(|a| json!({ "value": a })).collect();
        let mut answer = self
            .call(
                "Runtime.callFunctionOn",
                json!({
                    "objectId": object,
                    "functionDeclaration": function,
                    "arguments": arguments,
                    "returnByValue": true,
                }),
            )
            .await?;
        if let Some(exception) = answer.get("exceptionDetails") {
            return Err(Failure::page(FetchError::Render(format!(
                "reading the page failed: {}",
                exception_text(exception)
            ))));
        }
        Ok(answer["result"]["value"].take())
    }

    /// The error for a page whose time ran out, by how far it got.
    fn timed_out(&self) -> Failure {
        let limit = humantime::format_duration(self.req.timeout);
        if self.progress.borrow().crashed {
            return Failure::page(crashed());
        }
        let error = match self.stage {
            // The browser was told what to do and said nothing back.
            // Whether the browser is broken or only busy, disposing the context tells.
            Stage::Setup => {
                FetchError::Browser(format!("the browser did not set up a page within {limit}"))
            }
            Stage::Navigate | Stage::Load => FetchError::Timeout(self.req.timeout),
            Stage::WaitFor => FetchError::Render(format!(
                "wait_for `{}` matched nothing within {limit}",
                self.req.wait_for.unwrap_or_default()
            )),
            Stage::Read => FetchError::Render(format!(
                "the page stopped answering within {limit} (a script that never ends?)"
            )),
        };
        Failure::page(error)
    }
}

fn crashed() -> FetchError {
    FetchError::Render("the page crashed (out of memory?)".into())
}

pub(super) fn exception_text(exception: &Value) -> String {
    exception["exception"]["description"]
        .as_str()
        .or_else(|| exception["text"].as_str())
        .unwrap_or("a script error")
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Chromium's network error names, sorted into pagehook's failures.
fn navigation_error(error: &str, timeout: Duration) -> FetchError {
    let name = error.trim_start_matches("net::");
    match name {
        "ERR_TIMED_OUT" | "ERR_CONNECTION_TIMED_OUT" => FetchError::Timeout(timeout),
        "ERR_TOO_MANY_REDIRECTS" => FetchError::TooManyRedirects,
        "ERR_ABORTED" => FetchError::Render(format!(
            "the browser did not show the page ({error}): is it a file download?"
        )),
        _ if name.starts_with("ERR_NAME")
            || name.starts_with("ERR_CONNECTION")
            || name.starts_with("ERR_ADDRESS")
            || name.starts_with("ERR_PROXY")
            || name.starts_with("ERR_TUNNEL")
            || name.starts_with("ERR_SSL")
            || name.starts_with("ERR_CERT")
            || name.starts_with("ERR_SOCKS")
            || name == "ERR_EMPTY_RESPONSE"
            || name == "ERR_INTERNET_DISCONNECTED" =>
        {
            FetchError::Transport(error.to_owned())
        }
        _ => FetchError::Render(format!("the browser could not load the page: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_errors_sort_into_failures() {
        let t = Duration::from_secs(5);
        assert!(matches!(
            navigation_error("net::ERR_CONNECTION_REFUSED", t),
            FetchError::Transport(_)
        ));
        assert!(matches!(
            navigation_error("net::ERR_NAME_NOT_RESOLVED", t),
            FetchError::Transport(_)
        ));
        assert!(matches!(
            navigation_error("net::ERR_TIMED_OUT", t),
            FetchError::Timeout(_)
        ));
        assert!(matches!(
            navigation_error("net::ERR_TOO_MANY_REDIRECTS", t),
            FetchError::TooManyRedirects
        ));
        let download = navigation_error("net::ERR_ABORTED", t).to_string();
        assert!(download.contains("download"), "{download}");
    }
}
