//! Delivery benchmark: `cargo bench --bench deliver`.
//!
//! 1. Throughput: a full outbox (`PAGEHOOK_BENCH_EVENTS`, default 20,000) drained to a
//!    loopback receiver that verifies every signature, at the default per-webhook concurrency
//!    and at a raised one.
//! 2. Latency: events committed one at a time at a steady rate (`PAGEHOOK_BENCH_RATE` per
//!    second, default 500, for 4 s) while the receiver is healthy; the time from a commit
//!    returning (the event is durable) to the receiver holding the request, p50/p99/max.
//!
//! The receiver shares the machine's cores with pagehook, so the figures are a floor.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use pagehook::config::Webhook;
use pagehook::deliver::Deliverer;
use pagehook::sign::{self, Secret};
use pagehook::store::{Delivery, Store, WatcherState};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[derive(Default)]
struct Received {
    arrivals: Mutex<BTreeMap<String, Instant>>,
    bad_signatures: Mutex<usize>,
    arrived: Notify,
}

async fn receiver() -> (String, Arc<Received>) {
    let secret: Secret = SECRET.parse().unwrap();
    let state = Arc::new(Received::default());
    let router = Router::new()
        .fallback(
            move |State(log): State<Arc<Received>>, headers: HeaderMap, body: Bytes| {
                let secret = secret.clone();
                async move {
                    let now = Instant::now();
                    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
                    let verified = sign::verify(
                        std::slice::from_ref(&secret),
                        header(sign::HEADER_ID),
                        header(sign::HEADER_TIMESTAMP),
                        header(sign::HEADER_SIGNATURE),
                        &body,
                        Utc::now().timestamp(),
                        300,
                    );
                    if verified.is_err() {
                        *log.bad_signatures.lock().unwrap() += 1;
                        return StatusCode::UNAUTHORIZED;
                    }
                    let id = header(sign::HEADER_ID).unwrap_or_default().to_owned();
                    log.arrivals.lock().unwrap().entry(id).or_insert(now);
                    log.arrived.notify_waiters();
                    StatusCode::NO_CONTENT
                }
            },
        )
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, state)
}

async fn wait_for(log: &Received, n: usize) {
    loop {
        let arrived = log.arrived.notified();
        if log.arrivals.lock().unwrap().len() >= n {
            return;
        }
        arrived.await;
    }
}

fn webhook(url: &str, concurrency: usize) -> Arc<Webhook> {
    let text = format!(
        "[daemon]\nstate_dir = \"unused\"\n[webhooks.bench]\nurl = \"{url}\"\nsecret = \"{SECRET}\"\nconcurrency = {concurrency}\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("watchers.toml");
    std::fs::write(&path, text).unwrap();
    let config = pagehook::config::load(&path).unwrap().config;
    config.webhooks["bench"].clone()
}

/// An event body of the size pagehook sends for a product with a handful of fields.
fn delivery(n: usize) -> Delivery {
    let payload = serde_json::json!({
        "type": "watch.changed",
        "timestamp": Utc::now(),
        "data": {
            "watcher": format!("product-{}", n % 1000), "url": "https://shop.example.com/p/12345",
            "seq": n, "checked_at": Utc::now(),
            "changes": {"price": {"old": {"amount": "1299.99", "currency": "USD", "raw": "$1,299.99"},
                                  "new": {"amount": "1199.99", "currency": "USD", "raw": "$1,199.99"},
                                  "delta": "-100.00", "pct": "-7.69"}},
            "values": {"price": {"amount": "1199.99", "currency": "USD", "raw": "$1,199.99"},
                       "stock": "InStock", "title": "Acme Widget, 2-pack, blue"}
        }
    });
    Delivery {
        event_id: format!("evt_{:032x}", n),
        webhook: "bench".into(),
        watcher: format!("product-{}", n % 1000),
        payload: payload.to_string(),
        created_at: Utc::now(),
        attempts: 0,
        next_attempt: Utc::now(),
        history: Vec::new(),
    }
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn throughput(events: usize, concurrency: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (url, log) = receiver().await;
    let entries: Vec<Delivery> = (0..events).map(delivery).collect();
    for chunk in entries.chunks(1000) {
        store
            .commit("bench", &WatcherState::default(), chunk)
            .await
            .unwrap();
    }
    let hook = webhook(&url, concurrency);
    let deliverer = Deliverer::new(store.clone(), [("bench".to_string(), hook)].into()).unwrap();
    let stop = CancellationToken::new();
    let started = Instant::now();
    let cpu = cpu_seconds();
    let worker = tokio::spawn({
        let (deliverer, stop) = (deliverer.clone(), stop.clone());
        async move { deliverer.run(stop, Duration::from_secs(5)).await }
    });
    wait_for(&log, events).await;
    let elapsed = started.elapsed();
    let cpu = cpu_seconds() - cpu;
    stop.cancel();
    worker.await.unwrap();
    assert_eq!(*log.bad_signatures.lock().unwrap(), 0);
    assert_eq!(store.pending_count(), 0, "the outbox drained");
    println!(
        "throughput  concurrency {concurrency:>2}: {events} signed deliveries in {:.2} s = {:>6.0}/s (process CPU {:.2} s, receiver included)",
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64(),
        cpu
    );
}

async fn latency(rate: usize, seconds: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (url, log) = receiver().await;
    let hook = webhook(&url, 4);
    let deliverer = Deliverer::new(store.clone(), [("bench".to_string(), hook)].into()).unwrap();
    let stop = CancellationToken::new();
    let worker = tokio::spawn({
        let (deliverer, stop) = (deliverer.clone(), stop.clone());
        async move { deliverer.run(stop, Duration::from_secs(5)).await }
    });
    let events = rate * seconds;
    let committed = Arc::new(Mutex::new(BTreeMap::new()));
    let commit_times = Arc::new(Mutex::new(Vec::new()));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    let mut commits = tokio::task::JoinSet::new();
    for n in 0..events {
        ticker.tick().await;
        let (store, deliverer) = (store.clone(), deliverer.clone());
        let (committed, commit_times) = (committed.clone(), commit_times.clone());
        // Each check commits on its own, as the daemon's checks do.
        commits.spawn(async move {
            let d = delivery(n);
            let id = d.event_id.clone();
            let started = Instant::now();
            store
                .commit(&d.watcher.clone(), &WatcherState::default(), &[d])
                .await
                .unwrap();
            let done = Instant::now();
            commit_times.lock().unwrap().push(done - started);
            committed.lock().unwrap().insert(id, done);
            deliverer.wake();
        });
    }
    while commits.join_next().await.is_some() {}
    wait_for(&log, events).await;
    stop.cancel();
    worker.await.unwrap();
    let arrivals = log.arrivals.lock().unwrap();
    let mut latencies: Vec<Duration> = committed
        .lock()
        .unwrap()
        .iter()
        .map(|(id, at)| arrivals[id].saturating_duration_since(*at))
        .collect();
    let mut commit_times = commit_times.lock().unwrap().clone();
    println!(
        "latency     {rate}/s for {seconds} s, commit to receipt: {}",
        percentiles(&mut latencies)
    );
    println!(
        "            the commit itself (transaction + fsync): {}",
        percentiles(&mut commit_times)
    );
}

fn percentiles(samples: &mut [Duration]) -> String {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(at(0.5)),
        ms(at(0.99)),
        ms(at(1.0))
    )
}

/// This process's user + system CPU time, from /proc (Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 11 and 12 after the name; 100 Hz.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let events = env_or("PAGEHOOK_BENCH_EVENTS", 20_000);
        throughput(events, 4).await;
        throughput(events, 16).await;
        latency(env_or("PAGEHOOK_BENCH_RATE", 500), 4).await;
    });
}
