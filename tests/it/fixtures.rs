//! Loopback fixtures: a fake shop whose pages a test edits, a receiver that records every
//! request, and helpers to write a config and drive the real binary.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use tokio::net::TcpListener;
use tokio::sync::Notify;

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

#[derive(Default)]
struct Pages {
    pages: Mutex<HashMap<String, (u16, String)>>,
    hits: Mutex<HashMap<String, usize>>,
    last_headers: Mutex<HeaderMap>,
    served: Notify,
}

/// A shop serving `(status, html)` per path; 404 for anything it does not know.
#[derive(Clone)]
pub struct Shop {
    pub addr: SocketAddr,
    state: Arc<Pages>,
}

impl Shop {
    pub async fn start() -> Shop {
        let state = Arc::new(Pages::default());
        let router =
            Router::new().fallback(|State(state): State<Arc<Pages>>, uri: Uri| async move {
                let page = state.pages.lock().unwrap().get(uri.path()).cloned();
                *state
                    .hits
                    .lock()
                    .unwrap()
                    .entry(uri.path().to_owned())
                    .or_default() += 1;
                state.served.notify_waiters();
                let (status, body) = page.unwrap_or((404, "not found".into()));
                let headers = [("content-type", "text/html; charset=utf-8")];
                (StatusCode::from_u16(status).unwrap(), headers, body)
            });
        // Real shops compress; pagehook must ask for it and decode it. Request headers are
        // recorded outside the compression layer, which consumes Accept-Encoding.
        let recorder = state.clone();
        let router = router
            .layer(tower_http::compression::CompressionLayer::new())
            .layer(axum::middleware::map_request(move |request: Request| {
                *recorder.last_headers.lock().unwrap() = request.headers().clone();
                std::future::ready(Ok::<_, StatusCode>(request))
            }));
        let addr = serve(router.with_state(state.clone())).await;
        Shop { addr, state }
    }

    /// A header of the latest page request.
    pub fn last_request_header(&self, name: &str) -> String {
        let headers = self.state.last_headers.lock().unwrap();
        let value = headers.get(name).and_then(|v| v.to_str().ok());
        value.unwrap_or_default().to_owned()
    }

    /// How many requests for `path` the shop has answered.
    pub fn hits(&self, path: &str) -> usize {
        self.state
            .hits
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Wait until the shop has answered `n` requests for `path`; panic after 10 s.
    pub async fn wait_for_hits(&self, path: &str, n: usize) {
        let wait = async {
            loop {
                let served = self.state.served.notified();
                if self.hits(path) >= n {
                    return;
                }
                served.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("expected {n} requests for {path}"));
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set(&self, path: &str, html: String) {
        self.state
            .pages
            .lock()
            .unwrap()
            .insert(path.into(), (200, html));
    }

    pub fn set_status(&self, path: &str, status: u16) {
        self.state.pages.lock().unwrap().get_mut(path).unwrap().0 = status;
    }
}

/// A product page in the shape shops use: the price sits among other markup.
pub fn product(title: &str, price: &str, stock: u32) -> String {
    format!(
        r#"<!doctype html><html><head><title>{title} | Shop</title></head><body>
        <nav><a href="/">Home</a> <span class="price">$0.00 cart</span></nav>
        <main><h1 class="title">{title}</h1>
          <div class="buy"><span class="price">{price}</span>
          <p class="stock">In stock ({stock} available)</p></div></main>
        </body></html>"#
    )
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    /// What the receiver answered.
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Default)]
struct Log {
    requests: Mutex<Vec<Received>>,
    status: Mutex<u16>,
    retry_after: Mutex<Option<String>>,
    delay: Mutex<Duration>,
    arrived: Notify,
}

/// A webhook receiver that records every request and answers with a status the test sets.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    log: Arc<Log>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let log = Arc::new(Log::default());
        *log.status.lock().unwrap() = 204;
        let router = Router::new().fallback(
            |State(log): State<Arc<Log>>, headers: HeaderMap, body: Bytes| async move {
                let status = *log.status.lock().unwrap();
                let delay = *log.delay.lock().unwrap();
                log.requests.lock().unwrap().push(Received {
                    status,
                    headers,
                    body,
                });
                log.arrived.notify_waiters();
                // Recorded on arrival, answered after the delay: a slow endpoint mid-request.
                tokio::time::sleep(delay).await;
                let mut answer = HeaderMap::new();
                if let Some(after) = log.retry_after.lock().unwrap().as_deref() {
                    answer.insert("retry-after", after.parse().unwrap());
                }
                let body = format!("receiver answered {status}");
                (StatusCode::from_u16(status).unwrap(), answer, body)
            },
        );
        let addr = serve(router.with_state(log.clone())).await;
        Receiver { addr, log }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks/pagehook", self.addr)
    }

    pub fn answer(&self, status: u16) {
        *self.log.status.lock().unwrap() = status;
    }

    /// Send `Retry-After: value` with every answer from now on.
    pub fn retry_after(&self, value: &str) {
        *self.log.retry_after.lock().unwrap() = Some(value.to_owned());
    }

    /// Hold each answer this long after the request arrives.
    pub fn answer_after(&self, delay: Duration) {
        *self.log.delay.lock().unwrap() = delay;
    }

    pub fn requests(&self) -> Vec<Received> {
        self.log.requests.lock().unwrap().clone()
    }

    /// Wait until at least `n` requests have arrived; panic after 10 s.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        self.wait_until(|requests| requests.len() >= n).await
    }

    /// Wait until the recorded requests satisfy `done`; panic after 10 s.
    pub async fn wait_until(&self, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let wait = async {
            loop {
                let arrived = self.log.arrived.notified();
                let requests = self.requests();
                if done(&requests) {
                    return requests;
                }
                arrived.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("gave up waiting; received {:?}", self.requests()))
    }
}

/// A temporary directory holding a watchers.toml and its state directory.
pub struct Setup {
    pub dir: tempfile::TempDir,
}

impl Setup {
    /// A config with one webhook pointing at `receiver` and the given watcher tables.
    pub fn new(receiver: &Receiver, retry: &str, watchers: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let config = format!(
            r#"[daemon]
state_dir = "{}"

[webhooks.pipeline]
url = "{}"
secret = "{SECRET}"
retry = {retry}

{watchers}"#,
            state.display(),
            receiver.url()
        );
        std::fs::write(dir.path().join("watchers.toml"), config).unwrap();
        Setup { dir }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("watchers.toml")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Open the store once a daemon that just stopped has let go of it: sled's background
    /// flusher can hold the lock for a moment after the last handle is dropped.
    pub async fn store(&self) -> pagehook::store::Store {
        for _ in 0..100 {
            match pagehook::store::Store::open(&self.state_dir()) {
                Err(pagehook::store::StoreError::Locked(_)) => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                opened => return opened.unwrap(),
            }
        }
        panic!("the store stayed locked for 2 s")
    }

    pub async fn pagehook(&self, args: &[&str]) -> Output {
        pagehook(&self.config(), args).await
    }
}

/// A watcher table for `shop`'s `path` tracking the page's title, price and stock.
pub fn widget_watcher(shop: &Shop, name: &str, path: &str, schedule: &str) -> String {
    format!(
        r#"[[watchers]]
name = "{name}"
url = "{}"
schedule = "{schedule}"
fields.title = {{ css = "h1.title" }}
fields.price = {{ css = "div.buy .price" }}
fields.stock = {{ css = "p.stock", regex = '\((\d+) available\)', type = "number" }}
"#,
        shop.url(path)
    )
}

/// A loopback port free right now, for a listener the daemon opens itself.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_pagehook")
}

/// Run the real binary to completion.
pub async fn pagehook(config: &Path, args: &[&str]) -> Output {
    pagehook_logging(config, args, "info").await
}

/// Run the real binary to completion, logging what `rust_log` (RUST_LOG) chooses.
pub async fn pagehook_logging(config: &Path, args: &[&str], rust_log: &str) -> Output {
    let out = tokio::process::Command::new(binary())
        .arg("-c")
        .arg(config)
        .args(args)
        .env_remove("PAGEHOOK_CONFIG")
        .env("RUST_LOG", rust_log)
        .output()
        .await
        .unwrap();
    out.into()
}

impl From<std::process::Output> for Output {
    fn from(out: std::process::Output) -> Output {
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
