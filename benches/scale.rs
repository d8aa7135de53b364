//! `cargo bench --bench scale [-- N...]` (or PAGEHOOK_BENCH_N=10000,100000): many watchers on
//! one machine, with the real release binary (`PAGEHOOK_BENCH_BIN=/path/to/pagehook` measures
//! another build, so two builds can be run alternately on a machine whose speed drifts).
//!
//! For each N it writes a watchers.toml of N watchers over a loopback shop of 250 hosts
//! (127.1.0.1-250, small product pages), each watcher with one of a handful of shared field
//! specs and a schedule of minutes (`PAGEHOOK_BENCH_SCHEDULES`, default "every 2m,every 3m"),
//! then measures:
//! - `pagehook check`: wall time and peak RSS (VmHWM) of loading the config;
//! - `pagehook run` until every page has been fetched once (the first pass), then its RSS and
//!   its peak, and the latency of `pagehook status --json` while it checks;
//! - `pagehook run` again on the same state with every schedule at "every 24h", so nothing is
//!   due: its RSS, its CPU over an idle window (`PAGEHOOK_BENCH_IDLE_SECS`, default 15) scaled
//!   to a minute, and the latency of `status` when idle.

#[path = "support/shop.rs"]
mod shop;
mod support;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use shop::{HOSTS, Shop, serve};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const CLOCK_TICKS: f64 = 100.0;

/// The field specs watchers share, as users copy one block between many products.
const FIELDS: [&str; 4] = [
    "fields.price = { css = \"div.buy span.price\", type = \"price\" }",
    "fields.title = { css = \"h1.title\" }",
    "fields.stock = { css = \"p.stock\", type = \"availability\" }",
    "fields.sku = { css = \"span.sku\", regex = 'SKU-(\\d+)', type = \"number\" }",
];

fn write_config(dir: &Path, hosts: &[SocketAddr], n: usize, schedules: &[String]) -> PathBuf {
    let mut text = format!(
        "[daemon]\nstate_dir = \"{}\"\n\n[webhooks.bench]\nurl = \"http://{}/hooks\"\nsecret = \"{SECRET}\"\n\n",
        dir.join("state").display(),
        hosts[0]
    );
    for i in 0..n {
        let _ = write!(
            text,
            "[[watchers]]\nname = \"p{i:06}\"\nurl = \"http://{}/p/{i}\"\nschedule = \"{}\"\n{}\n\n",
            hosts[i % hosts.len()],
            schedules[i % schedules.len()],
            FIELDS[i % FIELDS.len()]
        );
    }
    let path = dir.join("watchers.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn binary() -> PathBuf {
    std::env::var_os("PAGEHOOK_BENCH_BIN")
        .map_or_else(|| env!("CARGO_BIN_EXE_pagehook").into(), PathBuf::from)
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// CPU seconds (user + system) the process has used so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // utime and stime, fields 14 and 15 of stat(5), counted from the state field (3) here.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / CLOCK_TICKS
}

fn command(config: &Path, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(binary());
    command
        .arg("-c")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// `pagehook check`: wall time and peak RSS.
async fn check(config: &Path) -> (Duration, u64) {
    let started = Instant::now();
    let mut child = command(config, &["check"]).spawn().unwrap();
    let pid = child.id().unwrap();
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = status_kib(pid, "VmHWM:") {
            peak = peak.max(kib);
        }
        tokio::select! {
            status = child.wait() => break status.unwrap(),
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
    };
    assert!(status.success(), "pagehook check failed");
    (started.elapsed(), peak)
}

/// `pagehook status --json` against the running daemon: how long until it has answered.
async fn status_latency(config: &Path) -> Duration {
    let started = Instant::now();
    let status = command(config, &["status", "--json"])
        .status()
        .await
        .unwrap();
    assert!(status.success(), "pagehook status failed");
    started.elapsed()
}

async fn stop(mut child: tokio::process::Child) {
    let pid = child.id().unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = child.wait().await.unwrap();
    assert!(status.success(), "pagehook run exited with {status}");
}

/// Waits until the daemon's control socket answers. Until the socket is there, `status` would
/// open the store itself, and could take it from the daemon that is starting.
async fn until_ready(config: &Path, child: &mut tokio::process::Child) {
    let socket = config.with_file_name("state").join("control.sock");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        assert!(child.try_wait().unwrap().is_none(), "pagehook run exited");
        if socket.exists() && status_latency(config).await > Duration::ZERO {
            return;
        }
        assert!(Instant::now() < deadline, "pagehook run never got ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn run(n: usize, schedules: &[String], idle: Duration) {
    let shop = Shop::new(n);
    let hosts = serve(shop.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &hosts, n, schedules);
    let size = std::fs::metadata(&config).unwrap().len();
    println!(
        "N = {n} watchers on {HOSTS} hosts, schedules {schedules:?}, config {:.1} MiB, {}",
        mib(size / 1024),
        binary().display()
    );

    let (load, peak) = check(&config).await;
    println!(
        "  check             load {:>7.2} s   peak RSS {:>6.1} MiB",
        load.as_secs_f64(),
        mib(peak)
    );

    let started = Instant::now();
    let mut daemon = command(&config, &["run"]).spawn().unwrap();
    let pid = daemon.id().unwrap();
    until_ready(&config, &mut daemon).await;
    let longest = schedules
        .iter()
        .filter_map(|s| s.strip_prefix("every "))
        .map(|s| humantime::parse_duration(s).unwrap())
        .max()
        .unwrap_or(Duration::from_secs(900));
    let deadline = started + longest * 2 + Duration::from_secs(120);
    let mut busy_status = Vec::new();
    let mut next_status = Instant::now();
    while shop.distinct.load(Ordering::Relaxed) < n {
        assert!(daemon.try_wait().unwrap().is_none(), "pagehook run exited");
        if Instant::now() > deadline {
            println!(
                "  first pass incomplete after {:.0} s: {} of {n} pages",
                started.elapsed().as_secs_f64(),
                shop.distinct.load(Ordering::Relaxed)
            );
            break;
        }
        if Instant::now() >= next_status && busy_status.len() < 3 {
            busy_status.push(status_latency(&config).await);
            next_status = Instant::now() + Duration::from_secs(10);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first_pass = started.elapsed();
    // The last checks of the pass commit, and freed memory settles.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss = status_kib(pid, "VmRSS:").unwrap();
    let hwm = status_kib(pid, "VmHWM:").unwrap();
    busy_status.push(status_latency(&config).await);
    let worst = busy_status.iter().max().unwrap();
    println!(
        "  run, first pass   {:>7.1} s   RSS after it {:>6.1} MiB ({:.2} KiB/watcher), peak {:>6.1} MiB; status while checking: worst {:.0} ms of {}",
        first_pass.as_secs_f64(),
        mib(rss),
        rss as f64 / n as f64,
        mib(hwm),
        ms(*worst),
        busy_status.len()
    );
    stop(daemon).await;

    // The same watchers, checked a moment ago, on a daily schedule: nothing is due.
    let daily = [String::from("every 24h")];
    write_config(dir.path(), &hosts, n, &daily);
    let _ = std::fs::remove_file(dir.path().join("state").join("control.sock"));
    let mut daemon = command(&config, &["run"]).spawn().unwrap();
    let pid = daemon.id().unwrap();
    until_ready(&config, &mut daemon).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = cpu_secs(pid);
    let window = Instant::now();
    tokio::time::sleep(idle).await;
    let cpu = cpu_secs(pid) - before;
    let per_minute = cpu * 60.0 / window.elapsed().as_secs_f64();
    let rss = status_kib(pid, "VmRSS:").unwrap();
    let idle_status: Vec<Duration> = {
        let mut all = Vec::new();
        for _ in 0..3 {
            all.push(status_latency(&config).await);
        }
        all
    };
    println!(
        "  run, idle         RSS {:>6.1} MiB ({:.2} KiB/watcher); CPU {:.2} s per idle minute (over {} s); status {:.0} / {:.0} / {:.0} ms",
        mib(rss),
        rss as f64 / n as f64,
        per_minute,
        idle.as_secs(),
        ms(idle_status[0]),
        ms(idle_status[1]),
        ms(idle_status[2])
    );
    stop(daemon).await;
}

fn main() {
    let sizes = support::sizes("10000,100000");
    let schedules: Vec<String> = std::env::var("PAGEHOOK_BENCH_SCHEDULES")
        .unwrap_or_else(|_| "every 2m,every 3m".into())
        .split(',')
        .map(|s| s.trim().to_owned())
        .collect();
    let idle = Duration::from_secs(std::env::var("PAGEHOOK_BENCH_IDLE_SECS").map_or(15, |s| {
        s.parse().expect("PAGEHOOK_BENCH_IDLE_SECS: seconds")
    }));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for n in sizes {
        runtime.block_on(run(n, &schedules, idle));
    }
}
