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
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, UnixDatagram};
use tokio::process::Child;
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
                // Not a wait: the receiver is slow on purpose when a test asks it to be.
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

    /// Open the store. A daemon that ran in this process has let go of it once `run` returned;
    /// one in a child process once the child was waited for, as its exit releases the lock.
    pub fn store(&self) -> pagehook::store::Store {
        pagehook::store::Store::open(&self.state_dir()).unwrap()
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

/// A stand-in for systemd's notification socket: what the daemon tells its service manager.
/// READY=1 is the daemon's word that it holds the store and its sockets answer.
pub struct Systemd {
    socket: UnixDatagram,
    pub path: PathBuf,
    pub seen: Vec<String>,
}

impl Systemd {
    pub fn listen(dir: &Path) -> Systemd {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        Systemd {
            socket,
            path,
            seen: Vec::new(),
        }
    }

    /// Take in what arrived without waiting.
    pub fn drain(&mut self) {
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = self.socket.try_recv(&mut buf) {
            self.seen
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }

    /// Wait for a message with a line starting with `prefix`; return that line.
    pub async fn wait_for(&mut self, prefix: &str) -> String {
        let wait = async {
            loop {
                let mut buf = vec![0u8; 4096];
                let n = self.socket.recv(&mut buf).await.unwrap();
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.seen.push(message.clone());
                if let Some(line) = message.lines().find(|l| l.starts_with(prefix)) {
                    return line.to_owned();
                }
            }
        };
        match tokio::time::timeout(Duration::from_secs(10), wait).await {
            Ok(line) => line,
            Err(_) => panic!("no {prefix} from the daemon; got {:?}", self.seen),
        }
    }
}

/// Every line a daemon writes to stderr, as it arrives.
#[derive(Clone, Default)]
pub struct DaemonLog {
    lines: Arc<Mutex<Vec<String>>>,
    arrived: Arc<Notify>,
    ended: Arc<tokio::sync::OnceCell<()>>,
}

impl DaemonLog {
    /// Follow `child`'s piped stderr.
    pub fn follow(child: &mut Child) -> DaemonLog {
        let log = DaemonLog::default();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::spawn({
            let log = log.clone();
            async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    log.lines.lock().unwrap().push(line);
                    log.arrived.notify_waiters();
                }
                let _ = log.ended.set(());
                log.arrived.notify_waiters();
            }
        });
        log
    }

    pub fn len(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Everything logged, once the daemon has closed its stderr (it exited).
    pub async fn all(&self) -> String {
        loop {
            let arrived = self.arrived.notified();
            if self.ended.initialized() {
                return self.lines().join("\n");
            }
            arrived.await;
        }
    }

    /// Wait for the `n`th line from `from` on that `matches`; returns the index after it.
    pub async fn wait_for(&self, from: usize, n: usize, matches: impl Fn(&str) -> bool) -> usize {
        let wait = async {
            let (mut next, mut seen) = (from, 0);
            loop {
                let arrived = self.arrived.notified();
                {
                    let lines = self.lines.lock().unwrap();
                    for line in &lines[next..] {
                        next += 1;
                        if matches(line) {
                            seen += 1;
                            if seen == n {
                                return next;
                            }
                        }
                    }
                }
                arrived.await;
            }
        };
        match tokio::time::timeout(Duration::from_secs(15), wait).await {
            Ok(at) => at,
            Err(_) => panic!(
                "no such log line; the daemon logged:\n{}",
                self.lines().join("\n")
            ),
        }
    }
}

/// Under `--log-format json`: the line is a check's, `outcome` its outcome.
pub fn check_line(outcome: &'static str) -> impl Fn(&str) -> bool {
    json_line(move |line| {
        line["fields"]["message"] == "check" && line["fields"]["outcome"] == outcome
    })
}

/// Under `--log-format json`: the line parses and `matches`.
pub fn json_line(matches: impl Fn(&Value) -> bool) -> impl Fn(&str) -> bool {
    move |line| matches(&serde_json::from_str(line).unwrap_or(Value::Null))
}
