//! `cargo bench --bench shards [-- N...]` (default 6000): one loopback shop of 250 hosts, its N
//! pages watched first by one node, then by three shards of one `[cluster]` running side by
//! side on this machine, each with `pagehook --shard I once` and its own state directory, as the
//! systemd template runs them. Prints pages/s per shard and in total (N over the slowest
//! shard's wall time), the CPU seconds they spent, and checks that every page was fetched by
//! exactly one shard. `PAGEHOOK_BENCH_BIN` measures another build.
//!
//! On one machine the shards share its cores, so the total shows what sharding costs (three
//! processes, three stores) rather than what it gains; on three machines each shard's figure
//! is what its own machine would do.

#[path = "support/cpu.rs"]
mod cpu;
#[path = "support/shop.rs"]
mod shop;
mod support;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cpu::children_cpu;
use shop::{HOSTS, Shop, serve};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SHARDS: u32 = 3;

fn binary() -> PathBuf {
    std::env::var_os("PAGEHOOK_BENCH_BIN")
        .map_or_else(|| env!("CARGO_BIN_EXE_pagehook").into(), PathBuf::from)
}

/// A config of `n` watchers over `hosts`, divided among `shards` by host (none when 1).
fn write_config(dir: &Path, hosts: &[SocketAddr], n: usize, shards: u32) -> PathBuf {
    let mut text = String::new();
    if shards > 1 {
        let _ = writeln!(text, "[cluster]\nshards = {shards}\n");
    }
    let _ = write!(
        text,
        "[defaults]\nschedule = \"every 1h\"\n\n[webhooks.bench]\nurl = \"http://{}/hooks\"\nsecret = \"{SECRET}\"\n\n",
        hosts[0]
    );
    for i in 0..n {
        let _ = write!(
            text,
            "[[watchers]]\nname = \"p{i:06}\"\nurl = \"http://{}/p/{i}\"\nfields.price = {{ css = \"div.buy span.price\", type = \"price\" }}\n\n",
            hosts[i % hosts.len()]
        );
    }
    let path = dir.join(format!("watchers-{shards}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// `pagehook [--shard I] once` with its own state directory: how long it took.
async fn once(config: &Path, state: &Path, shard: Option<u32>) -> Duration {
    let mut command = tokio::process::Command::new(binary());
    command.arg("-c").arg(config);
    if let Some(shard) = shard {
        command.args(["--shard", &shard.to_string()]);
    }
    let started = Instant::now();
    let status = command
        .arg("once")
        .env("STATE_DIRECTORY", state)
        .env_remove("RUST_LOG")
        .env_remove("PAGEHOOK_SHARD")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(
        status.success(),
        "pagehook once ({shard:?}) failed: {status}"
    );
    started.elapsed()
}

async fn run(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    println!(
        "N = {n} watchers on {HOSTS} hosts, {SHARDS} shards by host, {}",
        binary().display()
    );

    let shop = Shop::new(n);
    let hosts = serve(shop.clone()).await;
    let config = write_config(dir.path(), &hosts, n, 1);
    let cpu = children_cpu();
    let alone = once(&config, &dir.path().join("alone"), None).await;
    let alone_cpu = children_cpu() - cpu;
    assert_eq!(
        shop.distinct.load(Ordering::Relaxed),
        n,
        "one node fetched every page"
    );
    println!(
        "  one node          {:>7.0} pages/s   {:>6.2} s   CPU {:>6.2} s",
        n as f64 / alone.as_secs_f64(),
        alone.as_secs_f64(),
        alone_cpu
    );

    // A fresh shop, so that every page's fetches are counted afresh.
    let shop = Shop::new(n);
    let hosts = serve(shop.clone()).await;
    let config = write_config(dir.path(), &hosts, n, SHARDS);
    let owned: Vec<usize> = (0..SHARDS)
        .map(|s| {
            (0..n)
                .filter(|i| {
                    let host = hosts[i % hosts.len()].ip().to_string();
                    pagehook::config::shard_of(&host, SHARDS) == s
                })
                .count()
        })
        .collect();
    let cpu = children_cpu();
    let passes = futures_util::future::join_all((0..SHARDS).map(|s| {
        let (config, state) = (config.clone(), dir.path().join(format!("shard-{s}")));
        async move { once(&config, &state, Some(s)).await }
    }))
    .await;
    let shards_cpu = children_cpu() - cpu;
    assert_eq!(
        shop.distinct.load(Ordering::Relaxed),
        n,
        "together they fetched every page"
    );
    assert_eq!(
        shop.fetches.load(Ordering::Relaxed),
        n,
        "and each page once"
    );
    for (s, (wall, owned)) in passes.iter().zip(&owned).enumerate() {
        println!(
            "  shard {s}           {:>7.0} pages/s   {:>6.2} s   {owned} watchers",
            *owned as f64 / wall.as_secs_f64(),
            wall.as_secs_f64()
        );
    }
    let slowest = passes.iter().max().unwrap();
    println!(
        "  three shards      {:>7.0} pages/s   {:>6.2} s   CPU {:>6.2} s (all three)",
        n as f64 / slowest.as_secs_f64(),
        slowest.as_secs_f64(),
        shards_cpu
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for n in support::sizes("6000") {
        runtime.block_on(run(n));
    }
}
