//! What a page asks of the browser while it renders, answered by pagehook: its requests
//! (media refused, the watcher's headers added on its own origin), proxy logins, dialogs, and
//! the progress of loading that `render` waits on. Also the watcher's cookies, headers and
//! proxy in the forms Chromium takes them.

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use url::Url;

use super::cdp::{Connection, Event};
use super::render::Progress;
use crate::fetch::{FetchError, ProxyUrl};

/// Chromium's `--proxy-server` form of a proxy: scheme, host and port, no credentials.
pub(super) fn proxy_server(proxy: &ProxyUrl) -> Result<String, FetchError> {
    let url = Url::parse(proxy.expose()).map_err(|e| FetchError::Transport(e.to_string()))?;
    let scheme = match url.scheme() {
        "socks5h" => "socks5",
        other => other,
    };
    if scheme == "socks5" && !url.username().is_empty() {
        return Err(FetchError::Transport(
            "Chromium cannot log in to a SOCKS proxy; use an HTTP proxy for browser watchers"
                .into(),
        ));
    }
    let host = url.host_str().unwrap_or_default();
    Ok(match url.port_or_known_default() {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}

pub(super) fn credentials(proxy: &ProxyUrl) -> Option<(String, String)> {
    let url = Url::parse(proxy.expose()).ok()?;
    if url.username().is_empty() {
        return None;
    }
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((
        decode(url.username()),
        decode(url.password().unwrap_or_default()),
    ))
}

/// The watcher's `Cookie` headers as cookies of its URL, so the browser sends them where a
/// browser would, and not to every third-party script the page loads.
pub(super) fn cookies(url: &Url, headers: &HeaderMap) -> Vec<Value> {
    headers
        .get_all(reqwest::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            Some(json!({ "name": name.trim(), "value": value.trim(), "url": url.as_str() }))
        })
        .collect()
}

/// The watcher's other headers, sent with requests to the watched page's own origin only:
/// they often carry credentials.
pub(super) fn request_headers(headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    headers
        .iter()
        .filter(|(name, _)| {
            *name != reqwest::header::COOKIE && *name != reqwest::header::USER_AGENT
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// Answers the page's events while the render goes on: paused requests, dialogs, proxy logins,
/// and the progress of loading.
pub(super) struct Handler {
    pub(crate) connection: Connection,
    pub(crate) session: String,
    pub(crate) main_frame: String,
    pub(crate) origin: url::Origin,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) load_media: bool,
    pub(crate) proxy_credentials: Option<(String, String)>,
    pub(crate) progress: watch::Sender<Progress>,
}

impl Handler {
    pub(super) async fn run(self, mut events: mpsc::UnboundedReceiver<Event>) {
        while let Some(event) = events.recv().await {
            self.handle(event).await;
        }
    }

    /// Send without waiting for the answer: the page waits on these, the handler must not.
    fn send(&self, method: &'static str, params: Value) {
        let connection = self.connection.clone();
        let session = self.session.clone();
        tokio::spawn(async move {
            if let Err(err) = connection.call(Some(&session), method, params).await {
                tracing::trace!(error = %err, "page event answer failed");
            }
        });
    }

    async fn handle(&self, event: Event) {
        let p = &event.params;
        match event.method.as_str() {
            "Fetch.requestPaused" => self.paused(p),
            "Fetch.authRequired" => {
                let response = match (
                    &self.proxy_credentials,
                    p["authChallenge"]["source"].as_str(),
                ) {
                    (Some((username, password)), Some("Proxy")) => json!({
                        "response": "ProvideCredentials", "username": username, "password": password,
                    }),
                    _ => json!({ "response": "CancelAuth" }),
                };
                self.send(
                    "Fetch.continueWithAuth",
                    json!({ "requestId": p["requestId"], "authChallengeResponse": response }),
                );
            }
            "Page.javascriptDialogOpening" => {
                self.send("Page.handleJavaScriptDialog", json!({ "accept": false }));
            }
            "Page.lifecycleEvent" if p["frameId"] == self.main_frame.as_str() => {
                let loader = p["loaderId"].as_str().map(str::to_owned);
                self.progress
                    .send_modify(|progress| match p["name"].as_str() {
                        Some("init") => {
                            progress.loader = loader;
                            progress.loaded = false;
                            progress.navigating = false;
                        }
                        Some("load") if progress.loader == loader => progress.loaded = true,
                        _ => {}
                    });
            }
            "Network.requestWillBeSent" => {
                if let Some(id) = p["requestId"].as_str() {
                    self.progress.send_modify(|progress| {
                        progress.in_flight.insert(id.to_owned());
                        progress.activity = Some(Instant::now());
                    });
                }
            }
            "Network.loadingFinished" | "Network.loadingFailed" => {
                if let Some(id) = p["requestId"].as_str() {
                    self.progress.send_modify(|progress| {
                        progress.in_flight.remove(id);
                        progress.activity = Some(Instant::now());
                    });
                }
            }
            "Page.frameRequestedNavigation" | "Page.frameScheduledNavigation"
                if p["frameId"] == self.main_frame.as_str() =>
            {
                self.progress
                    .send_modify(|progress| progress.navigating = true);
            }
            "Page.frameClearedScheduledNavigation" | "Page.frameStoppedLoading"
                if p["frameId"] == self.main_frame.as_str() =>
            {
                self.progress
                    .send_modify(|progress| progress.navigating = false);
            }
            "Inspector.targetCrashed" => {
                self.progress
                    .send_modify(|progress| progress.crashed = true);
            }
            _ => {}
        }
    }

    fn paused(&self, p: &Value) {
        let id = &p["requestId"];
        let kind = p["resourceType"].as_str().unwrap_or_default();
        if let Some(status) = p["responseStatusCode"].as_u64() {
            if kind == "Document" && p["frameId"] == self.main_frame.as_str() {
                let status = u16::try_from(status)
                    .ok()
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .unwrap_or(StatusCode::OK);
                let headers = response_headers(&p["responseHeaders"]);
                self.progress
                    .send_modify(|progress| progress.document = Some((status, headers)));
            }
            self.send("Fetch.continueResponse", json!({ "requestId": id }));
            return;
        }
        if !self.load_media && matches!(kind, "Image" | "Media" | "Font") {
            self.send(
                "Fetch.failRequest",
                json!({ "requestId": id, "errorReason": "BlockedByClient" }),
            );
            return;
        }
        let same_origin = p["request"]["url"]
            .as_str()
            .and_then(|u| Url::parse(u).ok())
            .is_some_and(|u| u.origin() == self.origin);
        if same_origin && !self.headers.is_empty() {
            let mut headers: Vec<Value> = p["request"]["headers"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(name, _)| {
                    !self
                        .headers
                        .iter()
                        .any(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
                })
                .map(|(name, value)| json!({ "name": name, "value": value }))
                .collect();
            headers.extend(self.headers.iter().map(|(name, value)| {
                json!({ "name": name.as_str(), "value": value.to_str().unwrap_or_default() })
            }));
            self.send(
                "Fetch.continueRequest",
                json!({ "requestId": id, "headers": headers }),
            );
            return;
        }
        self.send("Fetch.continueRequest", json!({ "requestId": id }));
    }
}

fn response_headers(headers: &Value) -> HeaderMap {
    let mut map = HeaderMap::new();
    for header in headers.as_array().into_iter().flatten() {
        let (Some(name), Some(value)) = (header["name"].as_str(), header["value"].as_str()) else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            map.append(name, value);
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_belong_to_the_watched_url() {
        let url = Url::parse("https://shop.example/p/1").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("cookie", HeaderValue::from_static("session=abc; region=eu"));
        let cookies = cookies(&url, &headers);
        assert_eq!(cookies.len(), 2);
        assert_eq!(cookies[1]["name"], "region");
        assert_eq!(cookies[1]["value"], "eu");
        assert_eq!(cookies[1]["url"], "https://shop.example/p/1");
    }

    #[test]
    fn proxies_reach_chromium_without_credentials() {
        let proxy = ProxyUrl::parse("http://user:p%40ss@proxy.example:3128").unwrap();
        assert_eq!(proxy_server(&proxy).unwrap(), "http://proxy.example:3128");
        assert_eq!(credentials(&proxy), Some(("user".into(), "p@ss".into())));
        let socks = ProxyUrl::parse("socks5h://proxy.example:1080").unwrap();
        assert_eq!(proxy_server(&socks).unwrap(), "socks5://proxy.example:1080");
        let socks_login = ProxyUrl::parse("socks5://u:p@proxy.example:1080").unwrap();
        assert!(proxy_server(&socks_login).is_err());
    }
}
