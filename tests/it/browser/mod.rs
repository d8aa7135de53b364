//! The browser fetcher against a loopback shop of single-page apps and hostile pages, with a
//! real headless Chromium. Each test checks the process table afterwards: nothing of the
//! browser may be left running.
//!
//! Without a browser on PATH each test says it was skipped, and passes; under `CI=true` a
//! missing browser fails it.

mod devtools;
mod hostile;
mod lifecycle;
mod render;
mod watchers;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use pagehook::fetch::browser::{Browser, BrowserConfig, RenderRequest, Source, discover};
use pagehook::fetch::{FetchError, HttpOptions};
use pagehook::reason::Reason;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use url::Url;

/// A browser to test with, or None (and a note) when the machine has none.
pub(crate) fn browser_source(test: &str) -> Option<Source> {
    if discover().is_some() {
        return Some(Source::Discover);
    }
    let why = "no chromium-headless-shell, chromium, chromium-browser or google-chrome on PATH";
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: {why} (CI=true requires one; .ci/run installs chromium-headless-shell)");
    }
    eprintln!("skipped {test}: {why}");
    None
}

fn browser(test: &str, max_tabs: usize) -> Option<Browser> {
    let source = browser_source(test)?;
    Some(Browser::new(BrowserConfig {
        source,
        max_tabs,
        ..BrowserConfig::default()
    }))
}

/// The loopback shop: each page by name, and a count of requests per path.
#[derive(Clone, Default)]
struct Shop {
    hits: Arc<Mutex<HashMap<String, usize>>>,
    /// The headers of the last request for each path.
    headers: Arc<Mutex<HashMap<String, HeaderMap>>>,
    served: Arc<Notify>,
}

const SPA: &str = r#"<!doctype html><html><head><title>Widget</title></head><body>
<div id="app"></div>
<script>
fetch('/api/price').then(r => r.json()).then(data => {
  document.getElementById('app').innerHTML =
    '<h1>Widget</h1><span class="price">$' + data.price + '</span>';
});
</script></body></html>"#;

const SPA_LATE: &str = r#"<!doctype html><html><body><div id="app">Loading...</div>
<script>
setTimeout(() => fetch('/api/price').then(r => r.json()).then(data => {
  document.getElementById('app').innerHTML = '<span id="price">$' + data.price + '</span>';
}), 1200);
</script></body></html>"#;

const JSONLD: &str = r#"<!doctype html><html><head><title>Gadget</title></head><body><div id="app"></div>
<script>
fetch('/api/price').then(r => r.json()).then(data => {
  const ld = document.createElement('script');
  ld.type = 'application/ld+json';
  ld.textContent = JSON.stringify({
    '@context': 'https://schema.org', '@type': 'Product', name: 'Gadget',
    offers: { '@type': 'Offer', price: data.price, priceCurrency: 'EUR',
              availability: 'https://schema.org/InStock' } });
  document.head.appendChild(ld);
});
</script></body></html>"#;

const NEVER: &str = r#"<!doctype html><html><body><div id="app"></div>
<script>/* the app's bundle failed: nothing ever renders */</script></body></html>"#;

const STUCK_SCRIPT: &str = r#"<!doctype html><html><head><script src="/never.js"></script></head>
<body><span class="price">$1</span></body></html>"#;

const REDIRECT: &str = r#"<!doctype html><html><body>Redirecting...
<script>setTimeout(() => { location.href = '/final'; }, 100);</script></body></html>"#;

const FINAL: &str = r#"<!doctype html><html><body><span class="price">$7.50</span></body></html>"#;

const ENDLESS: &str =
    r#"<!doctype html><html><body><p>before</p><script>while (true) {}</script></body></html>"#;

const ENDLESS_AFTER_LOAD: &str = r#"<!doctype html><html><body><p>loaded</p>
<script>addEventListener('load', () => setTimeout(() => { for (;;) {} }, 0));</script></body></html>"#;

const HOARD: &str = r#"<!doctype html><html><body><script>
const hoard = []; for (;;) { hoard.push(new Array(1 << 20).fill(hoard.length)); }
</script></body></html>"#;

const HUGE: &str = r#"<!doctype html><html><body><script>
const row = '<p class="row">' + 'x'.repeat(1000) + '</p>';
document.body.insertAdjacentHTML('beforeend', row.repeat(5 * 1000));
</script></body></html>"#;

const RUDE: &str = r#"<!doctype html><html><body><span class="price">$3.00</span><ul id="log"></ul>
<a id="dl" href="/file.bin" download="file.bin">download</a>
<script>
const log = text => { const li = document.createElement('li'); li.textContent = text;
                      document.getElementById('log').appendChild(li); };
const popup = window.open('/popup', '_blank');
log('popup:' + (popup ? 'opened' : 'refused'));
document.getElementById('dl').click();
alert('hello');
log('alert:returned');
log('confirm:' + confirm('sure?'));
Notification.requestPermission().then(p => log('notification:' + p));
navigator.geolocation.getCurrentPosition(() => log('geolocation:granted'),
                                          e => log('geolocation:' + e.code));
</script></body></html>"#;

const ECHO: &str = r#"<!doctype html><html><body><div id="app"></div>
<img src="/image.png"><video src="/movie.mp4" autoplay></video>
<style>@font-face { font-family: F; src: url(/font.woff2); } body { font-family: F; }</style>
<script>
const third = location.href.replace('127.0.0.1', 'localhost').replace('/echo', '/third.js');
const s = document.createElement('script'); s.src = third; document.head.appendChild(s);
fetch('/api/price').then(r => r.json()).then(d => {
  document.getElementById('app').innerHTML = '<span id="price">' + d.price + '</span>';
});
</script></body></html>"#;

const SLOW: &str = r#"<!doctype html><html><body><div id="app"></div>
<script>fetch('/api/slow').then(r => r.text()).then(t => { document.getElementById('app').textContent = t; });</script>
</body></html>"#;

impl Shop {
    async fn start() -> (Shop, SocketAddr) {
        let shop = Shop::default();
        let router = Router::new()
            .route("/{page}", get(page))
            .route("/api/{what}", get(api))
            .with_state(shop.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        (shop, addr)
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    fn header(&self, path: &str, name: &str) -> Option<String> {
        let headers = self.headers.lock().unwrap();
        headers
            .get(path)?
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    fn record(&self, path: String, headers: HeaderMap) {
        *self.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
        self.headers.lock().unwrap().insert(path, headers);
        self.served.notify_waiters();
    }
}

async fn page(State(shop): State<Shop>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    shop.record(format!("/{name}"), headers);
    let html = match name.as_str() {
        "spa" => SPA,
        "spa-late" => SPA_LATE,
        "jsonld" => JSONLD,
        "never" => NEVER,
        "stuck" => STUCK_SCRIPT,
        "redirect" => REDIRECT,
        "final" => FINAL,
        "endless" => ENDLESS,
        "endless-after-load" => ENDLESS_AFTER_LOAD,
        "hoard" => HOARD,
        "huge" => HUGE,
        "rude" => RUDE,
        "echo" => ECHO,
        "slow" => SLOW,
        "popup" => "<p>popup</p>",
        "never.js" => return std::future::pending().await,
        "third.js" => return ([(header::CONTENT_TYPE, "text/javascript")], "").into_response(),
        "file.bin" | "download" => {
            return (
                [
                    (header::CONTENT_TYPE, "application/octet-stream"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"file.bin\"",
                    ),
                ],
                vec![0u8; 4096],
            )
                .into_response();
        }
        "challenge" => {
            let body = include_str!("../../../src/fetch/blocked/cloudflare-challenge.html");
            return (
                StatusCode::FORBIDDEN,
                [("cf-mitigated", "challenge"), ("content-type", "text/html")],
                body,
            )
                .into_response();
        }
        // The same challenge as a site may serve it: status 200, no telling header.
        "challenge-ok" => include_str!("../../../src/fetch/blocked/cloudflare-challenge.html"),
        "gone" => return (StatusCode::GONE, Html("<p>gone</p>")).into_response(),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    Html(html).into_response()
}

async fn api(State(shop): State<Shop>, Path(what): Path<String>, headers: HeaderMap) -> Response {
    shop.record(format!("/api/{what}"), headers);
    match what.as_str() {
        // The price arrives late: a quiet network, not the load event, says the page is done.
        // Not a wait: the API is slow on purpose.
        "price" => {
            tokio::time::sleep(Duration::from_millis(600)).await;
            axum::Json(serde_json::json!({ "price": "19.99" })).into_response()
        }
        // Not a wait: an API that answers long after any test's timeout, so that a page
        // waits on it while the test does something to the browser.
        "slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late".into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

fn request<'a>(url: &'a Url, options: &'a HttpOptions, timeout: Duration) -> RenderRequest<'a> {
    RenderRequest {
        url,
        timeout,
        max_body: 10 << 20,
        options,
        wait_for: None,
        load_media: false,
        deadline: None,
    }
}

/// A loopback URL where nothing listens.
async fn closed_port() -> Url {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    url(addr, "/")
}

fn url(addr: SocketAddr, path: &str) -> Url {
    Url::parse(&format!("http://{addr}{path}")).unwrap()
}

/// Processes of `group` that are not zombies, as (pid, state, command).
fn live_processes(group: u32) -> Vec<(u32, char, String)> {
    let mut live = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let comm = stat[stat.find('(').unwrap() + 1..close].to_owned();
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let state = fields[0].chars().next().unwrap_or('?');
        if fields[2].parse::<u32>() == Ok(group) && state != 'Z' {
            live.push((pid, state, comm));
        }
    }
    live
}

/// Wait (up to 10 s) until no process of `group` runs any more.
pub(crate) async fn assert_gone(group: u32) {
    wait_for_exits(
        group,
        || live_processes(group).is_empty(),
        "the browser's processes to exit",
    )
    .await;
}

/// Close the browser and check that nothing of it is left.
async fn close(browser: &Browser) {
    let group = browser.process_group().await;
    browser.close().await;
    if let Some(group) = group {
        assert_gone(group).await;
    }
}

fn assert_within(start: Instant, limit: Duration) {
    let took = start.elapsed();
    assert!(took < limit, "took {took:?}, more than {limit:?}");
}

/// The renderer processes of the browser in `group`.
fn renderers(group: u32) -> usize {
    live_processes(group)
        .iter()
        .filter(|(pid, _, _)| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(15).any(|w| w == b"--type=renderer"))
        })
        .count()
}

/// Wait (up to 10 s) until `done` holds, looking again each time a process of `group` exits.
async fn wait_for_exits(group: u32, done: impl Fn() -> bool, what: &str) {
    let wait = async {
        while !done() {
            let exits = live_processes(group)
                .into_iter()
                .map(|(pid, _, _)| Box::pin(exited(pid)));
            let exits: Vec<_> = exits.collect();
            if exits.is_empty() {
                return;
            }
            futures_util::future::select_all(exits).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or_else(|_| panic!("waited 10 s for {what}"));
    assert!(done(), "{what}: nothing of group {group} is left to exit");
}

/// Return once `pid` has exited, or after 10 s: its pidfd turns readable then
/// (pidfd_open(2)). At once if it is gone already.
async fn exited(pid: u32) {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    use rustix::process::{Pid, PidfdFlags, pidfd_open};
    let Some(pid) = Pid::from_raw(pid as i32) else {
        return;
    };
    let Ok(pidfd) = pidfd_open(pid, PidfdFlags::empty()) else {
        return;
    };
    let bound = Timespec {
        tv_sec: 10,
        tv_nsec: 0,
    };
    tokio::task::spawn_blocking(move || {
        let _ = poll(&mut [PollFd::new(&pidfd, PollFlags::IN)], Some(&bound));
    })
    .await
    .unwrap();
}

async fn shop_waits_for(shop: &Shop, path: &str) {
    let wait = async {
        loop {
            let served = shop.served.notified();
            if shop.hits(path) > 0 {
                return;
            }
            served.await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .unwrap_or_else(|_| panic!("{path} never requested"));
}
