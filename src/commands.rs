//! The one-shot commands: each loads what it needs, does its job, prints, and returns the
//! process exit code.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use futures_util::{StreamExt, stream};
use serde_json::json;
use tokio::sync::mpsc;

use crate::check::{Outcome, check, probe};
use crate::config::{self, Config, Loaded, Watcher};
use crate::deliver::Deliverer;
use crate::fetch::Fetcher;
use crate::receive::{self, describe};
use crate::sign::{DEFAULT_TOLERANCE_SECS, Secret};
use crate::store::Store;
use crate::{daemon, demo};

/// systemd's EX_CONFIG: a bad config must not restart-loop a service.
pub const EXIT_CONFIG: u8 = 78;
pub const EXIT_USAGE: u8 = 2;
/// Checks in flight at once during `once` and `test`.
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
        let fetcher = Fetcher::new()?;
        let outcomes: Vec<Outcome> = stream::iter(&watchers)
            .map(|w| check(w, &fetcher, &store))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
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
    let fetcher = match Fetcher::new() {
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

/// `pagehook demo [--duration D]`
pub async fn demo(duration: Option<std::time::Duration>) -> ExitCode {
    let options = demo::Options {
        duration,
        ..demo::Options::default()
    };
    let shutdown = daemon::shutdown_on_signals();
    let stop = shutdown.clone();
    // A closed stdout (`pagehook demo | head`) ends the demo rather than a panic.
    let show = |output: demo::Output| {
        if writeln!(std::io::stdout(), "{output}").is_err() {
            stop.cancel();
        }
    };
    match demo::run(&options, shutdown, show).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("pagehook demo: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `pagehook receive --secret S [--host H] [--port P] [--out FILE]`
pub async fn receive(host: &str, port: u16, secrets: &[String], out: Option<&Path>) -> ExitCode {
    // Several secrets may also arrive whitespace-separated in one value, as from
    // $PAGEHOOK_SECRET; parse errors never echo the secret.
    let texts: Vec<&str> = secrets.iter().flat_map(|s| s.split_whitespace()).collect();
    if texts.is_empty() {
        eprintln!("pagehook receive: --secret is empty");
        return ExitCode::from(EXIT_USAGE);
    }
    let mut parsed = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        match text.parse::<Secret>() {
            Ok(secret) => parsed.push(secret),
            Err(err) => {
                eprintln!("pagehook receive: secret #{}: {err}", i + 1);
                return ExitCode::from(EXIT_USAGE);
            }
        }
    }
    let file = match out {
        Some(path) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(file) => Some(file),
            Err(err) => {
                eprintln!("pagehook receive: cannot open {}: {err}", path.display());
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let listener = match tokio::net::TcpListener::bind((host, port)).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("pagehook receive: cannot listen on {host}:{port}: {err}");
            return ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(err) => {
            eprintln!("pagehook receive: {err}");
            return ExitCode::FAILURE;
        }
    };
    let count = parsed.len();
    let options = receive::Options {
        secrets: parsed,
        tolerance_secs: DEFAULT_TOLERANCE_SECS,
        out: file,
    };
    println!(
        "Listening on http://{addr}/ (any path) with {count} secret{}; answering 204 to verified webhooks, 401 to the rest.{} Ctrl-C stops.",
        if count == 1 { "" } else { "s" },
        out.map(|p| format!(" Appending events to {}.", p.display()))
            .unwrap_or_default()
    );
    let shutdown = daemon::shutdown_on_signals();
    let (events, mut received) = mpsc::channel(64);
    let server = tokio::spawn(receive::serve(listener, options, events, shutdown.clone()));
    // The channel closes when the server has stopped and dropped its sender.
    while let Some(request) = received.recv().await {
        // A closed stdout stops the receiver; it must not go on answering 204 unseen.
        if writeln!(std::io::stdout(), "{}", describe(&request)).is_err() {
            shutdown.cancel();
        }
    }
    match server.await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(err)) => {
            eprintln!("pagehook receive: {err}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("pagehook receive: the server panicked: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `pagehook secret`
pub fn secret() -> ExitCode {
    match Secret::generate() {
        Ok(secret) => {
            println!("{}", secret.to_whsec());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("pagehook secret: the operating system gave no random bytes: {err}");
            ExitCode::FAILURE
        }
    }
}
