//! The one-shot commands: each loads what it needs, does its job, prints, and returns the
//! process exit code.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::{StreamExt, stream};
use serde_json::json;

use crate::check::{Outcome, check, probe};
use crate::config::{self, Config, Loaded, Watcher};
use crate::deliver::Deliverer;
use crate::fetch::{Fetcher, host_key};
use crate::store::Store;

/// systemd's EX_CONFIG: a bad config must not restart-loop a service.
pub const EXIT_CONFIG: u8 = 78;
pub const EXIT_USAGE: u8 = 2;
/// Checks `test` runs at once (it prints in config order).
const CONCURRENCY: usize = 16;

/// Load a config, printing its warnings, or print every error and return the exit code.
pub fn load_config(path: &Path, error_code: u8) -> Result<Config, ExitCode> {
    match config::load(path) {
        Ok(Loaded { config, warnings }) => {
            for warning in warnings {
                eprintln!("{}", warning.as_warning());
            }
            Ok(config)
        }
        Err(err) => {
            eprintln!("{err}");
            Err(ExitCode::from(error_code))
        }
    }
}

/// `pagehook check`
pub fn check_config(path: &Path) -> ExitCode {
    match load_config(path, 1) {
        Ok(config) => {
            println!(
                "{}: OK ({} watchers, {} webhooks)",
                path.display(),
                config.watchers.len(),
                config.webhooks.len()
            );
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// The named watchers, or all of them; an unknown name is a usage error.
fn select(config: &Config, names: &[String]) -> Result<Vec<Arc<Watcher>>, ExitCode> {
    if names.is_empty() {
        return Ok(config.watchers.clone());
    }
    names
        .iter()
        .map(|name| {
            config.watcher(name).cloned().ok_or_else(|| {
                let known: Vec<&str> = config.watchers.iter().map(|w| w.name.as_str()).collect();
                eprintln!(
                    "unknown watcher `{name}`; the config has: {}",
                    known.join(", ")
                );
                ExitCode::from(EXIT_USAGE)
            })
        })
        .collect()
}

/// `pagehook once [WATCHER...]`
pub async fn once(path: &Path, names: &[String]) -> ExitCode {
    let config = match load_config(path, EXIT_CONFIG) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let watchers = match select(&config, names) {
        Ok(watchers) => watchers,
        Err(code) => return code,
    };
    let result = async {
        let store = Store::open(&config.state_dir)?;
        let fetcher = Fetcher::with_concurrency(config.max_concurrency)?;
        let outcomes = check_by_host(&watchers, &fetcher, &store).await?;
        let delivered = Deliverer::new(store.clone(), config.webhooks.clone())?
            .deliver_due()
            .await;
        let queued = store.pending()?.len();
        store.flush().await?;
        anyhow::Ok((outcomes, delivered, queued))
    };
    let (outcomes, delivered, queued) = match result.await {
        Ok(done) => done,
        Err(err) => {
            eprintln!("pagehook once: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let count = |label: &str| outcomes.iter().filter(|o| o.label() == label).count();
    println!(
        "checked {}: {} changed, {} unchanged, {} baseline, {} failed; delivered {}, {} queued for retry",
        outcomes.len(),
        count("changed"),
        count("unchanged"),
        count("baseline"),
        count("failed"),
        delivered,
        queued
    );
    if count("failed") > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Check every watcher once. Each host gets as many lanes (tasks) as it may have requests in
/// flight, and each lane takes the host's next watcher when its last check is done: checks queued
/// for a slow host never hold up other hosts, parsing runs on every core, and ten thousand
/// watchers of one shop cost a few dozen tasks, not ten thousand waiting ones.
async fn check_by_host(
    watchers: &[Arc<Watcher>],
    fetcher: &Fetcher,
    store: &Store,
) -> anyhow::Result<Vec<Outcome>> {
    let mut hosts: HashMap<String, Vec<Arc<Watcher>>> = HashMap::new();
    for watcher in watchers {
        hosts
            .entry(host_key(&watcher.url))
            .or_default()
            .push(watcher.clone());
    }
    let mut lanes = tokio::task::JoinSet::new();
    for queue in hosts.into_values() {
        let width = queue[0].http.host.concurrency.clamp(1, queue.len());
        let (queue, next) = (Arc::new(queue), Arc::new(AtomicUsize::new(0)));
        for _ in 0..width {
            let (queue, next) = (queue.clone(), next.clone());
            let (fetcher, store) = (fetcher.clone(), store.clone());
            lanes.spawn(async move {
                let mut outcomes = Vec::new();
                while let Some(watcher) = queue.get(next.fetch_add(1, Ordering::Relaxed)) {
                    outcomes.push(check(watcher, &fetcher, &store).await);
                }
                outcomes
            });
        }
    }
    let mut outcomes = Vec::with_capacity(watchers.len());
    while let Some(lane) = lanes.join_next().await {
        outcomes.extend(lane?);
    }
    Ok(outcomes)
}

/// `pagehook test [WATCHER...] [--json]`
pub async fn test(path: &Path, names: &[String], as_json: bool) -> ExitCode {
    let config = match load_config(path, 1) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let watchers = match select(&config, names) {
        Ok(watchers) => watchers,
        Err(code) => return code,
    };
    let fetcher = match Fetcher::with_concurrency(config.max_concurrency) {
        Ok(fetcher) => fetcher,
        Err(err) => {
            eprintln!("pagehook test: {err}");
            return ExitCode::FAILURE;
        }
    };
    // Print in config order, each as soon as it and those before it are done.
    let mut results = stream::iter(&watchers)
        .map(|w| {
            let fetcher = &fetcher;
            async move { (w, probe(w, fetcher).await) }
        })
        .buffered(CONCURRENCY);
    let mut failed = false;
    while let Some((watcher, result)) = results.next().await {
        failed |= result.is_err();
        let name = watcher.name.as_str();
        if as_json {
            let line = match &result {
                Ok(values) => json!({"watcher": name, "ok": true, "values": values}),
                Err(err) => json!({"watcher": name, "ok": false, "error": err.to_string()}),
            };
            println!("{line}");
            continue;
        }
        match result {
            Ok(values) => {
                println!("{name}: ok");
                for (field, value) in values {
                    println!("  {field} = {value}");
                }
            }
            Err(err) => println!("{name}: FAILED: {err}"),
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
