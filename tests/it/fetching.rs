//! Fetching at scale, through the real binary: bad inputs, conditional requests, retries,
//! request options, proxies, politeness and failure alerts.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::stream;
use pagehook::store::{Store, WatcherState};

use crate::fixtures::*;

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// Method, headers and body of each request a server saw.
type Requests = Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>;
/// The request URI and Proxy-Authorization of each request a proxy saw.
type ProxyLog = Arc<Mutex<Vec<(String, String)>>>;

fn html(body: impl Into<Body>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

fn state(setup: &Setup, watcher: &str) -> WatcherState {
    Store::open(&setup.state_dir())
        .unwrap()
        .watcher_state(watcher)
        .unwrap()
}

fn watcher(name: &str, url: &str, extra: &str) -> String {
    format!(
        "[[watchers]]\nname = \"{name}\"\nurl = \"{url}\"\nfields.price = {{ css = \"div.buy .price\" }}\n{extra}\n"
    )
}

/// A stream of `chunk` every `every`, `count` times (forever when None).
fn drip(chunk: &'static [u8], every: Duration, count: Option<usize>) -> Body {
    let chunks = stream::unfold(0usize, move |sent| async move {
        if count.is_some_and(|c| sent >= c) {
            return None;
        }
        // Not a wait: a server that trickles its body, on purpose.
        if !every.is_zero() {
            tokio::time::sleep(every).await;
        }
        Some((Ok::<_, std::io::Error>(Bytes::from_static(chunk)), sent + 1))
    });
    Body::from_stream(chunks)
}

#[tokio::test(flavor = "multi_thread")]
async fn each_bad_input_is_one_bounded_failed_check_and_the_others_go_on() {
    static MIB: [u8; 1 << 20] = [b'x'; 1 << 20];
    let page = product("Widget", "$5.00", 1);
    let latin1 = page.clone();
    let router = Router::new()
        .route(
            "/trickle",
            get(|| async { html(drip(b"<", Duration::from_secs(1), None)) }),
        )
        .route(
            "/endless",
            get(|| async { html(drip(&MIB[..64 * 1024], Duration::ZERO, None)) }),
        )
        // 50 MB, chunked: no Content-Length warns pagehook in advance.
        .route(
            "/huge",
            get(|| async { html(drip(&MIB, Duration::ZERO, Some(50))) }),
        )
        .route(
            "/loop",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/loop")]) }),
        )
        .route(
            "/garbage",
            get(|| async {
                let bytes: Vec<u8> = (0..20_000u32)
                    .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                    .collect();
                html(bytes)
            }),
        )
        .route(
            "/charset",
            get(move || {
                let page = latin1.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/html; charset=x-no-such-charset")],
                        page,
                    )
                }
            }),
        )
        .route(
            "/good",
            get(move || {
                let page = page.clone();
                async move { html(page) }
            }),
        );
    let addr = serve(router).await;
    let receiver = Receiver::start().await;
    let url = |path: &str| format!("http://{addr}{path}");
    let watchers = [
        watcher("trickle", &url("/trickle"), "timeout = \"1s\""),
        watcher("endless", &url("/endless"), "max_body_size = \"1 MiB\""),
        watcher("huge", &url("/huge"), ""),
        watcher("redirect-loop", &url("/loop"), ""),
        watcher("garbage", &url("/garbage"), ""),
        watcher("bad-charset", &url("/charset"), ""),
        watcher("good", &url("/good"), ""),
    ]
    .concat();
    let setup = Setup::new(&receiver, r#"["5s"]"#, &watchers);

    let started = Instant::now();
    let out = setup.pagehook(&["once"]).await;
    let took = started.elapsed();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout
            .contains("checked 7: 0 changed, 0 unchanged, 0 quiet, 2 baseline, 5 failed"),
        "{out:?}"
    );
    assert!(took < Duration::from_secs(5), "bounded: took {took:?}");

    let error = |name: &str| state(&setup, name).last_error.unwrap_or_default();
    let expected = [
        ("trickle", "fetch failed: timed out after 1s"),
        (
            "endless",
            "fetch failed: body is larger than the 1048576-byte limit",
        ),
        (
            "huge",
            "fetch failed: body is larger than the 10485760-byte limit",
        ),
        (
            "redirect-loop",
            "fetch failed: more than 10 redirects (a redirect loop?)",
        ),
        (
            "garbage",
            "extraction failed: field `price`: selector `div.buy .price` matched nothing",
        ),
    ];
    for (name, reason) in expected {
        assert!(error(name).starts_with(reason), "{name}: {:?}", error(name));
    }
    // Browsers ignore a charset label they do not know, and so does pagehook: the page is
    // read as UTF-8 rather than failed.
    assert_eq!(
        state(&setup, "bad-charset").values.unwrap()["price"],
        "$5.00"
    );
    assert_eq!(state(&setup, "good").values.unwrap()["price"], "$5.00");
}

/// A page that answers conditional requests, and counts what it sent.
#[derive(Default)]
struct Conditional {
    price: Mutex<String>,
    etags: std::sync::atomic::AtomicBool,
    full: AtomicUsize,
    not_modified: AtomicUsize,
}

async fn conditional(State(page): State<Arc<Conditional>>, headers: HeaderMap) -> Response {
    let price = page.price.lock().unwrap().clone();
    let etag = format!("\"{price}\"");
    if !page.etags.load(Ordering::SeqCst) {
        page.full.fetch_add(1, Ordering::SeqCst);
        return html(product("Widget", &price, 1));
    }
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        page.not_modified.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    page.full.fetch_add(1, Ordering::SeqCst);
    ([(header::ETAG, etag)], html(product("Widget", &price, 1))).into_response()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unchanged_page_costs_a_304_or_a_hash_and_still_counts_as_a_success() {
    let page = Arc::new(Conditional::default());
    *page.price.lock().unwrap() = "$5.00".into();
    page.etags.store(true, Ordering::SeqCst);
    let addr = serve(
        Router::new()
            .route("/w", get(conditional))
            .with_state(page.clone()),
    )
    .await;
    let receiver = Receiver::start().await;
    let setup = Setup::new(
        &receiver,
        r#"["5s"]"#,
        &watcher("w", &format!("http://{addr}/w"), ""),
    );

    let first = setup.pagehook(&["once"]).await;
    assert!(first.stdout.contains("1 baseline"), "{first:?}");
    let before = state(&setup, "w");
    assert_eq!(before.etag.as_deref(), Some("\"$5.00\""));

    let again = setup.pagehook(&["once"]).await;
    assert!(again.stdout.contains("1 unchanged"), "{again:?}");
    assert_eq!(
        page.not_modified.load(Ordering::SeqCst),
        1,
        "the second fetch was conditional"
    );
    let after = state(&setup, "w");
    assert!(
        after.last_success > before.last_success,
        "a 304 is a successful check"
    );
    assert_eq!(after.values, before.values);

    // Without validators the body is hashed: the same page is unchanged, a new one is parsed.
    page.etags.store(false, Ordering::SeqCst);
    let hashed = setup.pagehook(&["once"]).await;
    assert!(hashed.stdout.contains("1 unchanged"), "{hashed:?}");
    assert_eq!(
        state(&setup, "w").etag,
        None,
        "validators the server dropped are forgotten"
    );
    *page.price.lock().unwrap() = "$4.00".into();
    let changed = setup.pagehook(&["once"]).await;
    assert!(changed.stdout.contains("1 changed"), "{changed:?}");

    // A config edit makes the stored hash stale: the same body is extracted again.
    let edited = std::fs::read_to_string(setup.config())
        .unwrap()
        .replace("div.buy .price", "h1.title");
    std::fs::write(setup.config(), edited).unwrap();
    let reextracted = setup.pagehook(&["once"]).await;
    assert!(
        reextracted.stdout.contains("1 changed"),
        "the same body, read with the new selector: {reextracted:?}"
    );
    assert_eq!(state(&setup, "w").values.unwrap()["price"], "Widget");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transient_503_is_retried_within_the_check_honouring_retry_after() {
    let hits = Arc::new(AtomicUsize::new(0));
    let router = Router::new()
        .route(
            "/flaky",
            get(|State(hits): State<Arc<AtomicUsize>>| async move {
                if hits.fetch_add(1, Ordering::SeqCst) == 0 {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [(header::RETRY_AFTER, "0")],
                    )
                        .into_response()
                } else {
                    html(product("Widget", "$5.00", 1))
                }
            }),
        )
        .route(
            "/slow-down",
            get(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, "3600")],
                )
                    .into_response()
            }),
        )
        .with_state(hits.clone());
    let addr = serve(router).await;
    let receiver = Receiver::start().await;
    let watchers = watcher("flaky", &format!("http://{addr}/flaky"), "")
        + &watcher("slow-down", &format!("http://{addr}/slow-down"), "");
    let setup = Setup::new(&receiver, r#"["5s"]"#, &watchers);
    let started = Instant::now();
    let out = setup.pagehook(&["once"]).await;
    assert!(out.stdout.contains("1 baseline, 1 failed"), "{out:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a Retry-After beyond the bound is not waited for"
    );
    assert_eq!(
        state(&setup, "slow-down").last_error.as_deref(),
        Some("fetch failed: HTTP 503 Service Unavailable")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_with_a_huge_head_is_not_retried_as_if_transient() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                // Well past the client's limit for a response head (about 400 KB).
                let head = format!(
                    "HTTP/1.1 200 OK\r\nX-Padding: {}\r\n\r\n",
                    "a".repeat(1 << 20)
                );
                let _ = socket.write_all(head.as_bytes()).await;
            });
        }
    });
    let receiver = Receiver::start().await;
    let setup = Setup::new(
        &receiver,
        r#"["5s"]"#,
        &watcher("huge-head", &format!("http://{addr}/"), ""),
    );
    let out = setup.pagehook(&["test", "--json"]).await;
    let line: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let error = line["error"].as_str().unwrap();
    assert!(error.contains("message head is too large"), "{out:?}");
    assert_eq!(connections.load(Ordering::SeqCst), 1, "tried once: {out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn method_body_headers_cookies_and_user_agent_reach_the_server() {
    let seen: Requests = Arc::default();
    let router = Router::new()
        .fallback(
            |State(seen): State<Requests>, request: Request| async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
                seen.lock()
                    .unwrap()
                    .push((parts.method.to_string(), parts.headers, body));
                html(product("Widget", "$5.00", 1))
            },
        )
        .with_state(seen.clone());
    let addr = serve(router).await;
    let receiver = Receiver::start().await;
    let defaults_and_watcher = format!(
        r#"[defaults]
headers = {{ Accept-Language = "de-DE", X-Api-Key = "from-defaults" }}
cookies = {{ region = "eu" }}

{}"#,
        watcher(
            "api",
            &format!("http://{addr}/api/search"),
            r#"method = "POST"
body = '{"sku": "W-1"}'
headers = { X-Api-Key = "k3y" }
cookies = { session = "abc123" }
user_agent = "Mozilla/5.0 (pagehook test)""#
        )
    );
    let setup = Setup::new(&receiver, r#"["5s"]"#, &defaults_and_watcher);
    let out = setup.pagehook(&["once"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let seen = seen.lock().unwrap();
    let (method, headers, body) = &seen[0];
    let header = |name: &str| headers.get(name).unwrap().to_str().unwrap();
    assert_eq!(method, "POST");
    assert_eq!(&body[..], br#"{"sku": "W-1"}"#);
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(
        header("x-api-key"),
        "k3y",
        "a watcher's header overrides the default's"
    );
    assert_eq!(header("accept-language"), "de-DE");
    assert_eq!(header("cookie"), "region=eu; session=abc123");
    assert_eq!(header("user-agent"), "Mozilla/5.0 (pagehook test)");
    assert!(!out.stderr.contains("abc123") && !out.stderr.contains("k3y"));
}

/// A forward proxy: answers every absolute-form request itself, recording who asked.
async fn proxy() -> (SocketAddr, ProxyLog) {
    let seen: ProxyLog = Arc::default();
    let router = Router::new()
        .fallback(
            |State(seen): State<ProxyLog>, request: Request| async move {
                let auth = request
                    .headers()
                    .get(header::PROXY_AUTHORIZATION)
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                seen.lock().unwrap().push((request.uri().to_string(), auth));
                html(product("Widget", "$5.00", 1))
            },
        )
        .with_state(seen.clone());
    (serve(router).await, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proxy_pool_rotates_skips_a_dead_proxy_and_never_logs_credentials() {
    let (one, one_seen) = proxy().await;
    let (two, two_seen) = proxy().await;
    // Nothing listens here once the listener is dropped: connections are refused.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let receiver = Receiver::start().await;
    let config = format!(
        r#"[proxies]
urls = ["http://alice:pw-one@{one}", "http://bob:pw-dead@{dead}", "http://carol:pw-two@{two}"]
rotation = "round-robin"

{}{}{}"#,
        watcher("a", "http://shop.invalid/a", "per_host_concurrency = 1"),
        watcher("b", "http://shop.invalid/b", ""),
        watcher(
            "own",
            "http://shop.invalid/own",
            &format!("proxy = \"http://dave:pw-own@{one}\"")
        ),
    );
    let setup = Setup::new(&receiver, r#"["5s"]"#, &config);
    let out = setup.pagehook(&["once"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let one_seen = one_seen.lock().unwrap().clone();
    let two_seen = two_seen.lock().unwrap().clone();
    assert_eq!(
        one_seen.len() + two_seen.len(),
        3,
        "{one_seen:?} {two_seen:?}"
    );
    assert!(
        one_seen
            .iter()
            .all(|(uri, _)| uri.starts_with("http://shop.invalid/"))
    );
    let basic = |user: &str, pass: &str| {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
    };
    assert!(one_seen.contains(&("http://shop.invalid/own".into(), basic("dave", "pw-own"))));
    assert!(
        one_seen
            .iter()
            .any(|(_, auth)| *auth == basic("alice", "pw-one"))
    );
    assert!(
        two_seen
            .iter()
            .all(|(_, auth)| *auth == basic("carol", "pw-two"))
    );
    assert!(
        !two_seen.is_empty(),
        "a retry after the dead proxy goes to the next one"
    );
    for secret in ["pw-one", "pw-two", "pw-dead", "pw-own"] {
        assert!(
            !out.stderr.contains(secret),
            "{secret} leaked: {}",
            out.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_with_a_delay_is_paced_and_other_hosts_are_not_held_up() {
    type Log = Arc<Mutex<Vec<(String, Instant)>>>;
    let log: Log = Arc::default();
    let router = Router::new()
        .fallback(|State(log): State<Log>, request: Request| async move {
            log.lock()
                .unwrap()
                .push((request.uri().path().to_owned(), Instant::now()));
            html(product("Widget", "$5.00", 1))
        })
        .with_state(log.clone());
    let slow = serve(router.clone()).await;
    let fast = serve(router).await;
    let receiver = Receiver::start().await;
    let paced = "per_host_delay = \"300ms\"\nper_host_concurrency = 1";
    let watchers = [
        watcher("s1", &format!("http://{slow}/s1"), paced),
        watcher("s2", &format!("http://{slow}/s2"), ""),
        watcher("s3", &format!("http://{slow}/s3"), ""),
        watcher("f1", &format!("http://{fast}/f1"), ""),
    ]
    .concat();
    let setup = Setup::new(&receiver, r#"["5s"]"#, &watchers);
    let out = setup.pagehook(&["once"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let log = log.lock().unwrap().clone();
    let slow_times: Vec<Instant> = log
        .iter()
        .filter(|(p, _)| p.starts_with("/s"))
        .map(|(_, t)| *t)
        .collect();
    assert_eq!(slow_times.len(), 3);
    for pair in slow_times.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(290),
            "one host's delay applies to all its watchers"
        );
    }
    let fast_time = log.iter().find(|(p, _)| p == "/f1").unwrap().1;
    assert!(
        fast_time < slow_times[1],
        "the other host did not wait for the slow one"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_is_announced_once_at_the_threshold_and_recovery_once() {
    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    shop.set("/widget", product("Widget", "$5.00", 1));
    let setup = Setup::new(
        &receiver,
        r#"["5s"]"#,
        &(widget_watcher(&shop, "w", "/widget", "every 5m") + "failure_threshold = 2\n"),
    );
    setup.pagehook(&["once"]).await;
    shop.set_status("/widget", 404);
    for _ in 0..4 {
        setup.pagehook(&["once"]).await;
    }
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1, "one alert, no storm");
    let failing = requests[0].json();
    assert_eq!(failing["type"], "watch.failing");
    assert_eq!(failing["data"]["consecutive_failures"], 2);
    assert_eq!(failing["data"]["error"], "fetch failed: HTTP 404 Not Found");
    assert_eq!(failing["data"]["seq"], 1);
    assert!(failing["data"]["last_success"].is_string());

    shop.set("/widget", product("Widget", "$5.00", 1));
    let back = setup.pagehook(&["once"]).await;
    assert!(back.stdout.contains("1 unchanged"), "{back:?}");
    let requests = receiver.wait_for(2).await;
    let recovered = requests[1].json();
    assert_eq!(recovered["type"], "watch.recovered");
    assert_eq!(recovered["data"]["failed_checks"], 4);
    assert_eq!(recovered["data"]["seq"], 2);
    assert_eq!(recovered["data"]["values"]["price"], "$5.00");
    setup.pagehook(&["once"]).await;
    assert_eq!(receiver.requests().len(), 2, "recovered is sent once");
}

#[tokio::test(flavor = "multi_thread")]
async fn in_the_daemon_a_stuck_server_does_not_hold_up_other_watchers() {
    let shop = Shop::start().await;
    shop.set("/good", product("Widget", "$5.00", 1));
    let router = Router::new().route(
        "/trickle",
        get(|| async { html(drip(b"<", Duration::from_secs(1), None)) }),
    );
    let stuck = serve(router).await;
    let receiver = Receiver::start().await;
    // Both on whole seconds; the stuck one may only hold its check for 700 ms at a time.
    let watchers = watcher(
        "stuck",
        &format!("http://{stuck}/trickle"),
        "schedule = \"every 1s\"\njitter = \"0s\"\ntimeout = \"700ms\"",
    ) + &watcher(
        "good",
        &shop.url("/good"),
        "schedule = \"every 1s\"\njitter = \"0s\"",
    );
    let setup = Setup::new(&receiver, r#"["5s"]"#, &watchers);
    let config = pagehook::config::load(&setup.config()).unwrap().config;
    let stop = tokio_util::sync::CancellationToken::new();
    let daemon = tokio::spawn(pagehook::daemon::run(config, setup.config(), stop.clone()));

    let started = Instant::now();
    shop.wait_for_hits("/good", 2).await;
    assert!(
        started.elapsed() < Duration::from_millis(1_600),
        "the good watcher kept its one-second schedule: {:?}",
        started.elapsed()
    );
    stop.cancel();
    daemon.await.unwrap().unwrap();
    let stuck = state(&setup, "stuck");
    assert!(stuck.consecutive_failures >= 1, "{stuck:?}");
    assert_eq!(
        stuck.last_error.as_deref(),
        Some("fetch failed: timed out after 700ms")
    );
}
