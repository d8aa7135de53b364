//! `cargo bench --bench browser`: single-page-app pages rendered per second in headless
//! Chromium, and the peak memory of this process plus every browser process, at max_tabs 1, 2
//! and 4.
//!
//! A loopback shop in this process serves N product pages (`PAGEHOOK_BENCH_PAGES`, default
//! 200) whose HTML has an empty app root; a script fetches the price from a JSON API and
//! renders it, as the shops that need a browser do. Each pass renders every page once through
//! `Browser::fetch` (a fresh context per page, images, media and fonts refused, waiting for the
//! load event and a quiet network) with max_tabs pages in flight, after one warm-up page that
//! starts the browser. Memory is sampled every 100 ms (`PAGEHOOK_BENCH_SAMPLE_MS`): the sum of
//! RSS (shared pages counted once per process, so it over-counts) and, every fifth sample, the
//! sum of PSS (shared pages split among the processes that map them: the memory the machine
//! really spends). CPU s/page is the CPU time of this process (pagehook and the loopback shop)
//! and of every browser process during the pass, per page, less the sampler's own; it hardly
//! depends on what else the machine is doing, where pages/s does. `PAGEHOOK_BENCH_TABS=4` (a
//! comma list) runs only those passes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path;
use axum::response::Html;
use axum::routing::get;
use pagehook::fetch::HttpOptions;
use pagehook::fetch::browser::{Browser, BrowserConfig, RenderRequest, Source, discover};
use url::Url;

const PAGE: &str = r#"<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Widget ID | Shop</title><style>body{font-family:sans-serif}.price{font-weight:bold}</style>
</head><body><header><nav><a href="/">Home</a> <a href="/c/widgets">Widgets</a></nav></header>
<main><div id="app">Loading...</div></main>
<img src="/img/ID.jpg" width="600" height="600">
<script>
fetch('/api/product/ID').then(r => r.json()).then(p => {
  const app = document.getElementById('app');
  app.innerHTML = '<h1>' + p.name + '</h1><span class="price">' + p.price + '</span>' +
    '<ul>' + p.related.map(r => '<li>' + r.name + ' <span>' + r.price + '</span></li>').join('') + '</ul>';
});
</script></body></html>"#;

fn product(id: u32) -> serde_json::Value {
    let related: Vec<_> = (0..24)
        .map(|i| serde_json::json!({ "name": format!("Related {i}"), "price": format!("${}.99", 10 + i) }))
        .collect();
    serde_json::json!({ "name": format!("Widget {id}"), "price": format!("${}.99", 100 + id % 50), "related": related })
}

async fn shop() -> std::net::SocketAddr {
    let router = Router::new()
        .route(
            "/p/{id}",
            get(|Path(id): Path<u32>| async move { Html(PAGE.replace("ID", &id.to_string())) }),
        )
        .route(
            "/api/product/{id}",
            get(|Path(id): Path<u32>| async move { axum::Json(product(id)) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// Every process of `group`, and this one.
fn pids(group: Option<u32>) -> Vec<u32> {
    let mut pids = vec![std::process::id()];
    let Some(group) = group else { return pids };
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        if fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(group) {
            pids.push(pid);
        }
    }
    pids
}

/// CPU time of the process at `stat` (a `/proc/.../stat` path) and of its children it has
/// reaped, in clock ticks (100 a second on Linux): utime + stime + cutime + cstime. A renderer
/// that is gone counts in its zygote's cutime and cstime, all of it, however short it lived.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(stat).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
    fields[11..15].iter().map(|f| f.parse::<u64>().ok()).sum()
}

/// CPU ticks of this process and every process of `group`, less the calling thread's: the
/// memory sampler's reading of /proc is the bench's cost, not pagehook's.
fn group_ticks(group: Option<u32>) -> u64 {
    let all: u64 = pids(group)
        .iter()
        .filter_map(|&p| cpu_ticks(&format!("/proc/{p}/stat")))
        .sum();
    all - cpu_ticks("/proc/thread-self/stat").unwrap_or(0)
}

/// RSS of `pid` in KiB, from the kernel's counters: cheap.
fn rss(pid: u32) -> u64 {
    kib_field(&format!("/proc/{pid}/status"), "VmRSS:")
}

/// PSS of `pid` in KiB, from smaps_rollup, which walks the process's page tables: costly,
/// so read less often.
fn pss(pid: u32) -> u64 {
    kib_field(&format!("/proc/{pid}/smaps_rollup"), "Pss:")
}

fn kib_field(path: &str, name: &str) -> u64 {
    let Ok(text) = std::fs::read_to_string(path) else {
        return 0;
    };
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
}

/// PSS is read every this many samples of RSS.
const PSS_EVERY: u64 = 5;

struct Pass {
    pages: usize,
    failed: usize,
    wall: Duration,
    peak_rss: u64,
    peak_pss: u64,
    processes: usize,
    /// CPU seconds of this process and the browser's, during the pass.
    cpu: f64,
}

async fn pass(addr: std::net::SocketAddr, max_tabs: usize, pages: u32) -> Pass {
    let browser = Browser::new(BrowserConfig {
        source: Source::Discover,
        max_tabs,
        ..BrowserConfig::default()
    });
    let options = Arc::new(HttpOptions::default());
    let render = |id: u32| {
        let browser = browser.clone();
        let options = options.clone();
        async move {
            let url = Url::parse(&format!("http://{addr}/p/{id}")).unwrap();
            let req = RenderRequest {
                url: &url,
                timeout: Duration::from_secs(30),
                max_body: 10 << 20,
                options: &options,
                wait_for: None,
                load_media: false,
                deadline: None,
            };
            match browser.fetch(&req).await {
                Ok(page) if page.body.contains("Related 23") => true,
                Ok(_) => false,
                Err(err) => {
                    eprintln!("page {id}: {err}");
                    false
                }
            }
        }
    };
    assert!(render(0).await, "the warm-up page did not render");
    let group = browser.process_group().await;

    let interval = Duration::from_millis(
        std::env::var("PAGEHOOK_BENCH_SAMPLE_MS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(100),
    );
    let done = Arc::new(AtomicBool::new(false));
    let (ready, started) = tokio::sync::oneshot::channel();
    let sampler = {
        let done = done.clone();
        tokio::task::spawn_blocking(move || {
            let before = group_ticks(group);
            let _ = ready.send(());
            let (mut peak_rss, mut peak_pss, mut processes) = (0, 0, 0);
            let mut round = 0u64;
            while !done.load(Ordering::Relaxed) {
                let pids = pids(group);
                peak_rss = peak_rss.max(pids.iter().map(|&p| rss(p)).sum());
                if round % PSS_EVERY == 0 {
                    peak_pss = peak_pss.max(pids.iter().map(|&p| pss(p)).sum());
                }
                processes = processes.max(pids.len());
                round += 1;
                std::thread::sleep(interval);
            }
            let cpu = group_ticks(group).saturating_sub(before) as f64 / 100.0;
            (peak_rss, peak_pss, processes, cpu)
        })
    };
    started.await.unwrap();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for id in 1..=pages {
        tasks.spawn(render(id));
    }
    let mut failed = 0;
    while let Some(ok) = tasks.join_next().await {
        failed += usize::from(!ok.unwrap());
    }
    let wall = start.elapsed();
    done.store(true, Ordering::Relaxed);
    let (peak_rss, peak_pss, processes, cpu) = sampler.await.unwrap();
    browser.close().await;
    Pass {
        pages: pages as usize,
        failed,
        wall,
        peak_rss,
        peak_pss,
        processes,
        cpu,
    }
}

fn main() {
    let Some(executable) = discover() else {
        eprintln!(
            "skipped: no chromium-headless-shell, chromium, chromium-browser or google-chrome on PATH"
        );
        return;
    };
    let pages: u32 = std::env::var("PAGEHOOK_BENCH_PAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let addr = shop().await;
        println!("browser: {}", executable.display());
        println!("{pages} single-page-app pages per pass, loopback shop in this process");
        println!(
            "| max_tabs | wall | pages/s | CPU s/page | failed | peak RSS (sum) | peak PSS (sum) | processes |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        let tabs: Vec<usize> = match std::env::var("PAGEHOOK_BENCH_TABS") {
            Ok(list) => list.split(',').filter_map(|n| n.trim().parse().ok()).collect(),
            Err(_) => vec![1, 2, 4],
        };
        for max_tabs in tabs {
            let p = pass(addr, max_tabs, pages).await;
            let mib = |kib: u64| kib as f64 / 1024.0;
            println!(
                "| {max_tabs} | {:.2} s | {:.1} | {:.3} | {} | {:.0} MiB | {:.0} MiB | {} |",
                p.wall.as_secs_f64(),
                p.pages as f64 / p.wall.as_secs_f64(),
                p.cpu / p.pages as f64,
                p.failed,
                mib(p.peak_rss),
                mib(p.peak_pss),
                p.processes,
            );
        }
    });
}
