//! `cargo bench --bench dashboard [-- N]` (default 10000): the dashboard of a daemon with N
//! watchers, with the real release binary (`PAGEHOOK_BENCH_BIN=/path/to/pagehook` measures
//! another build).
//!
//! It writes a watchers.toml of N watchers, imports a state for each (most ok, some failing,
//! some blocked, some never checked) and two histories, of 1,000 and 100,000 entries, with
//! `pagehook import`, starts `pagehook run`, and for each page measures over a keep-alive
//! connection the time to the first byte of the answer and to its last, and its size. Then it
//! queues `PAGEHOOK_BENCH_OUTBOX` deliveries (default 100,000, of 1.5 KB each, due tomorrow:
//! an endpoint that has been down a while) and measures again.

mod support;

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use serde_json::json;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const RUNS: usize = 15;

fn binary() -> PathBuf {
    std::env::var_os("PAGEHOOK_BENCH_BIN")
        .map_or_else(|| env!("CARGO_BIN_EXE_pagehook").into(), PathBuf::from)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_config(dir: &Path, n: usize, admin: SocketAddr) -> PathBuf {
    // Nothing listens on the shop's port, and nothing is due for a day: the daemon serves
    // the dashboard and checks nothing while it is measured.
    let mut text = format!(
        "[daemon]\nstate_dir = \"{}\"\nadmin_listen = \"{admin}\"\n\n[defaults]\nschedule = \"every 24h\"\nhistory_limit = 100000\n\n[webhooks.bench]\nurl = \"http://127.0.0.1:9/hooks\"\nsecret = \"{SECRET}\"\n\n",
        dir.join("state").display()
    );
    for i in 0..n {
        let _ = write!(
            text,
            "[[watchers]]\nname = \"p{i:06}\"\nurl = \"http://127.0.0.1:9/products/{i}\"\nfields.price = {{ type = \"price\" }}\nfields.title = {{ css = \"h1\" }}\n\n"
        );
    }
    let path = dir.join("watchers.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn values(i: usize, cents: usize) -> serde_json::Value {
    let amount = format!("{}.{:02}", cents / 100, cents % 100);
    json!({
        "price": {"amount": amount, "currency": "USD", "raw": format!("${amount}")},
        "title": format!("Product number {i} with a long enough name"),
    })
}

/// The export `pagehook import` reads: watcher `p000000` has `long` entries of history,
/// `p000001` has 1,000, the rest one baseline each.
fn write_export(dir: &Path, n: usize, long: usize) -> PathBuf {
    let now = Utc::now();
    let checked = now - TimeDelta::minutes(5);
    let mut text =
        json!({"pagehook_export": 1, "version": "bench", "exported_at": now}).to_string();
    text.push('\n');
    for i in 0..n {
        let history_len = match i {
            0 => long,
            1 => 1_000,
            _ => 1,
        };
        let mut history = Vec::with_capacity(history_len);
        for h in 0..history_len {
            let at = checked - TimeDelta::minutes(10 * (history_len - h) as i64);
            history.push(json!({
                "checked_at": at,
                "kind": if h == 0 { "baseline" } else { "changed" },
                "changed": if h == 0 { vec![] } else { vec!["price"] },
                "event_id": if h == 0 { None } else { Some(format!("evt_{i:06}_{h:06}")) },
                "values": values(i, 1000 + (h * 37) % 900),
            }));
        }
        let (last_success, last_error, last_reason, failures) = match i % 20 {
            0..=16 => (Some(checked), None, None, 0),
            17 | 18 => (
                Some(checked - TimeDelta::hours(3)),
                Some("fetch failed: HTTP 503 Service Unavailable".to_owned()),
                Some(if i % 20 == 17 {
                    "http_status"
                } else {
                    "blocked"
                }),
                4,
            ),
            _ => (None, None, None, 0),
        };
        let never = i % 20 == 19;
        let state = json!({
            "values": (!never).then(|| values(i, 1000)),
            "seq": history_len,
            "last_check": (!never).then_some(checked),
            "last_success": last_success.filter(|_| !never),
            "consecutive_failures": failures,
            "last_error": last_error,
            "last_reason": last_reason,
        });
        let record = json!({"watcher": format!("p{i:06}"), "state": state, "history": history});
        text.push_str(&record.to_string());
        text.push('\n');
    }
    let path = dir.join("export.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

/// One GET on a kept-alive connection: (time to the first byte, time to the last, bytes).
fn get(stream: &mut TcpStream, addr: SocketAddr, path: &str) -> (Duration, Duration, usize) {
    let started = Instant::now();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let mut got: Vec<u8> = Vec::new();
    let mut first = None;
    loop {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "the daemon closed the connection");
        first.get_or_insert_with(|| started.elapsed());
        got.extend_from_slice(&buf[..n]);
        let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&got[..end]).to_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .expect("a length")
            .trim()
            .parse()
            .unwrap();
        if got.len() >= end + 4 + length {
            return (first.unwrap(), started.elapsed(), length);
        }
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let n = support::sizes("10000")[0];
    let long = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = write_config(dir.path(), n, admin);
    let export = write_export(dir.path(), n, long);
    let started = Instant::now();
    let import = Command::new(binary())
        .args([
            "-c".as_ref(),
            config.as_os_str(),
            "import".as_ref(),
            export.as_os_str(),
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(import.success(), "pagehook import failed");
    eprintln!(
        "imported {n} watchers and {} history entries in {:.1} s",
        n - 2 + 1_000 + long,
        started.elapsed().as_secs_f64()
    );
    measure(&config, admin, n, long, "empty outbox");
    let outbox: usize = std::env::var("PAGEHOOK_BENCH_OUTBOX").map_or(100_000, |v| {
        v.parse().expect("PAGEHOOK_BENCH_OUTBOX: a number")
    });
    queue(&dir.path().join("state"), outbox);
    measure(
        &config,
        admin,
        n,
        long,
        &format!("{outbox} deliveries in the outbox"),
    );
}

/// Queue `count` deliveries for the first watchers, 1,000 to each, due in a day.
fn queue(state_dir: &Path, count: usize) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = pagehook::store::Store::open(state_dir).unwrap();
        let now = Utc::now();
        let payload = "x".repeat(1500);
        for (w, start) in (0..count).step_by(1_000).enumerate() {
            let watcher = format!("p{w:06}");
            let state = store.watcher_state(&watcher).unwrap();
            let deliveries: Vec<_> = (start..count.min(start + 1_000))
                .map(|i| pagehook::store::Delivery {
                    event_id: format!("evt_bench{i:08}"),
                    webhook: "bench".into(),
                    watcher: watcher.clone(),
                    payload: payload.clone(),
                    created_at: now - TimeDelta::minutes(30),
                    attempts: 3,
                    next_attempt: now + TimeDelta::days(1),
                    history: Vec::new(),
                })
                .collect();
            store.commit(&watcher, &state, &deliveries).await.unwrap();
        }
        store.flush().await.unwrap();
    });
}

/// Run the daemon and time each page.
fn measure(config: &Path, admin: SocketAddr, n: usize, long: usize, label: &str) {
    let mut daemon = Command::new(binary())
        .args(["-c".as_ref(), config.as_os_str(), "run".as_ref()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stream = loop {
        if let Ok(s) = TcpStream::connect(admin) {
            break s;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    stream.set_nodelay(true).unwrap();
    let pages = [
        ("overview, page 1".to_owned(), "/".to_owned()),
        (
            "overview, last page".to_owned(),
            format!("/?page={}", n.div_ceil(100)),
        ),
        (
            "overview, filtered by name".to_owned(),
            "/?q=p0001".to_owned(),
        ),
        (
            "overview, failing only".to_owned(),
            "/?outcome=failing".to_owned(),
        ),
        (
            "watcher, 1,000 entries".to_owned(),
            "/watchers/p000001".to_owned(),
        ),
        (
            format!("watcher, {long} entries"),
            "/watchers/p000000".to_owned(),
        ),
        ("deliveries".to_owned(), "/deliveries".to_owned()),
    ];
    println!("dashboard of {n} watchers, {label} ({RUNS} runs each; median and slowest)");
    println!(
        "{:<32} {:>10} {:>10} {:>10} {:>10}",
        "page", "TTFB ms", "slowest", "total ms", "KiB"
    );
    for (label, path) in &pages {
        get(&mut stream, admin, path);
        let (mut firsts, mut totals, mut size) = (Vec::new(), Vec::new(), 0);
        for _ in 0..RUNS {
            let (first, total, bytes) = get(&mut stream, admin, path);
            firsts.push(first);
            totals.push(total);
            size = bytes;
        }
        let slowest = firsts.iter().max().copied().unwrap();
        println!(
            "{label:<32} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
            ms(median(firsts)),
            ms(slowest),
            ms(median(totals)),
            size as f64 / 1024.0
        );
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    println!();
}
