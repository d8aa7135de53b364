//! The one-shot commands: each loads what it needs, does its job, prints, and returns the
//! process exit code.
//!
//! Output goes through `out!` and `err!`, never `println!`, which panics when its reader has
//! gone: `pagehook status | head -1` must end quietly, as other command-line tools do.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::{StreamExt, stream};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;

use crate::check::{Checks, check_all, probe_explained};
use crate::config::{self, Config, Diagnostic, Loaded, Watcher};
use crate::control::{self, Request};
use crate::deliver::{Deliverer, Tally};
use crate::extract::{Extraction, Source};
use crate::fetch::Fetcher;
use crate::logging::{self, LogFormat};
use crate::receive::{self, describe};
use crate::sign::{DEFAULT_TOLERANCE_SECS, Secret};
use crate::status::{self, Deliveries, Replayed};
use crate::store::{Store, StoreError};
use crate::{daemon, demo};

/// systemd's EX_CONFIG: a bad config must not restart-loop a service.
pub const EXIT_CONFIG: u8 = 78;
pub const EXIT_USAGE: u8 = 2;
/// Checks `test` runs at once (it prints in config order).
const CONCURRENCY: usize = 16;

/// A line on stdout. A failed write ends the command through `?`, and [`exit`] turns a reader
/// that has gone away into a quiet end.
macro_rules! out {
    ($($arg:tt)*) => {
        writeln!(io::stdout().lock(), $($arg)*)?
    };
}

/// A line on stderr; when stderr itself is gone, nobody is left to tell.
macro_rules! err {
    ($($arg:tt)*) => {
        let _ = writeln!(io::stderr().lock(), $($arg)*);
    };
}

/// A command's exit code, or the failed write to stdout that stopped it.
pub type Printed = io::Result<ExitCode>;

/// The process's exit code for what a command printed. A closed pipe (`| head -1`) means the
/// reader has what it wanted: exit 0 without a word, as ripgrep does.
pub fn exit(printed: Printed) -> ExitCode {
    match printed {
        Ok(code) => code,
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            err!("pagehook: cannot write the output: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The config file a command reads, and how its problems are told.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    /// Under `--log-format json` each problem is a JSON log line with its place in fields.
    pub log_format: LogFormat,
}

impl ConfigFile {
    /// Load the config, telling its warnings, or tell every error and return `error_code`.
    pub fn load(&self, error_code: u8) -> Result<Config, ExitCode> {
        match config::load(&self.path) {
            Ok(Loaded { config, warnings }) => {
                for warning in &warnings {
                    self.tell(warning, true);
                }
                Ok(config)
            }
            Err(err) => {
                for error in &err.errors {
                    self.tell(error, false);
                }
                Err(ExitCode::from(error_code))
            }
        }
    }

    fn tell(&self, problem: &Diagnostic, warning: bool) {
        match (self.log_format, warning) {
            (LogFormat::Json, _) => logging::config_problem(problem, warning),
            (LogFormat::Human, true) => {
                err!("{}", problem.as_warning());
            }
            (LogFormat::Human, false) => {
                err!("{problem}");
            }
        }
    }
}

/// `pagehook check`
pub fn check_config(file: &ConfigFile) -> Printed {
    match file.load(1) {
        Ok(config) => {
            out!(
                "{}: OK ({} watchers, {} webhooks)",
                file.path.display(),
                config.watchers.len(),
                config.webhooks.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(code) => Ok(code),
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
                err!(
                    "unknown watcher `{name}`; the config has: {}",
                    known.join(", ")
                );
                ExitCode::from(EXIT_USAGE)
            })
        })
        .collect()
}

/// Ask the running daemon through its control socket, or, when none runs, do the job on the
/// store directly: a user never meets a lock error.
async fn via_daemon_or_store<T, F, Fut>(
    state_dir: &Path,
    request: Request,
    local: F,
) -> anyhow::Result<T>
where
    T: DeserializeOwned,
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    // A daemon that is starting holds the store before its socket is up: ask again briefly.
    for _ in 0..20 {
        if let Some(answer) = control::call(state_dir, &request).await? {
            return Ok(serde_json::from_value(answer)?);
        }
        match Store::open(state_dir) {
            Ok(store) => {
                let result = local(store.clone()).await;
                store.flush().await?;
                return result;
            }
            Err(StoreError::Locked(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(err) => return Err(err.into()),
        }
    }
    Err(StoreError::Locked(state_dir.to_owned()).into())
}

/// What `once` did, whether it ran here or in the daemon.
#[derive(Debug, Serialize, Deserialize)]
pub struct OnceReport {
    pub checks: Checks,
    /// None when a running daemon took the deliveries over.
    pub deliveries: Option<Tally>,
    pub queued: usize,
}

/// `pagehook once [WATCHER...]`
pub async fn once(file: &ConfigFile, names: &[String]) -> Printed {
    let config = match file.load(EXIT_CONFIG) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let watchers = match select(&config, names) {
        Ok(watchers) => watchers,
        Err(code) => return Ok(code),
    };
    let request = Request::Once {
        watchers: names.to_vec(),
    };
    let report = via_daemon_or_store(&config.state_dir, request, |store| async move {
        let fetcher = Fetcher::with_concurrency(config.max_concurrency)?;
        let checks = check_all(&watchers, &fetcher, &store).await;
        let tally = Deliverer::new(store.clone(), config.webhooks.clone())?
            .deliver_due()
            .await;
        Ok(OnceReport {
            checks,
            deliveries: Some(tally),
            queued: store.pending_count(),
        })
    });
    let report: OnceReport = match report.await {
        Ok(report) => report,
        Err(err) => {
            err!("pagehook once: {err:#}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let Checks {
        checked,
        changed,
        unchanged,
        quiet,
        baseline,
        failed,
    } = report.checks;
    let deliveries = match report.deliveries {
        Some(t) => format!(
            "delivered {}, {} queued, {} dead",
            t.delivered, report.queued, t.dead
        ),
        None => format!("{} queued for the running daemon", report.queued),
    };
    out!(
        "checked {checked}: {changed} changed, {unchanged} unchanged, {quiet} quiet, {baseline} baseline, {failed} failed; {deliveries}"
    );
    if failed > 0 {
        Ok(ExitCode::FAILURE)
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

/// Which part of `pagehook deliveries` to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    All,
    Pending,
    Dead,
}

/// `pagehook deliveries [--pending|--dead] [--json]`
pub async fn deliveries(file: &ConfigFile, show: Show, as_json: bool) -> Printed {
    let config = match file.load(1) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let report = via_daemon_or_store(&config.state_dir, Request::Deliveries, |store| async move {
        Ok(Deliveries::read(&store)?)
    });
    let report = match report.await {
        Ok(report) => report,
        Err(err) => {
            err!("pagehook deliveries: {err:#}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let pending = if show == Show::Dead {
        &[][..]
    } else {
        &report.pending[..]
    };
    let dead = if show == Show::Pending {
        &[][..]
    } else {
        &report.dead[..]
    };
    if as_json {
        for d in pending {
            out!("{}", with_state(d, "pending"));
        }
        for d in dead {
            out!("{}", with_state(d, "dead"));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    for d in pending {
        out!(
            "pending  {}  webhook={} watcher={} attempts={} next={}  {}",
            d.event_id,
            d.webhook,
            d.watcher,
            d.attempts,
            time(&d.next_attempt),
            d.last_error().unwrap_or("")
        );
    }
    for letter in dead {
        let d = &letter.delivery;
        out!(
            "dead     {}  webhook={} watcher={} attempts={} died={}  {}",
            d.event_id,
            d.webhook,
            d.watcher,
            d.history.len(),
            time(&letter.died_at),
            letter.reason
        );
    }
    if pending.is_empty() && dead.is_empty() {
        out!(
            "no {}",
            match show {
                Show::All => "pending deliveries and no dead letters",
                Show::Pending => "pending deliveries",
                Show::Dead => "dead letters",
            }
        );
    }
    for (webhook, failure) in &report.failing {
        out!(
            "webhook `{webhook}` is failing since {}: {}",
            time(&failure.since),
            failure.reason
        );
    }
    if report.quarantined > 0 {
        out!(
            "{} unreadable outbox entries were set aside in the `quarantine` tree",
            report.quarantined
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn with_state(item: &impl Serialize, state: &str) -> serde_json::Value {
    let mut value = serde_json::to_value(item).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.insert("state".into(), state.into());
    }
    value
}

/// `pagehook replay EVENT_ID... | --dead`
pub async fn replay(file: &ConfigFile, event_ids: &[String], dead: bool) -> Printed {
    if event_ids.iter().any(|id| id.trim().is_empty()) {
        err!(
            "pagehook replay: an event id is empty; give whole ids (evt_...), as `pagehook deliveries` lists them"
        );
        return Ok(ExitCode::FAILURE);
    }
    let config = match file.load(1) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let request = Request::Replay {
        event_ids: event_ids.to_vec(),
        dead,
    };
    let replayed = via_daemon_or_store(&config.state_dir, request, |store| async move {
        Ok(Replayed::run(&store, event_ids, dead, Utc::now())?)
    });
    match replayed.await {
        Ok(replayed) => {
            for (event_id, webhook) in &replayed.queued {
                out!("queued {event_id} for webhook `{webhook}`");
            }
            out!(
                "{} deliveries queued; `pagehook run` or `pagehook once` sends them",
                replayed.queued.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            err!("pagehook replay: {err:#}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `pagehook test [WATCHER...] [--json]`
pub async fn test(file: &ConfigFile, names: &[String], as_json: bool) -> Printed {
    let config = match file.load(1) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let watchers = match select(&config, names) {
        Ok(watchers) => watchers,
        Err(code) => return Ok(code),
    };
    let fetcher = match Fetcher::with_concurrency(config.max_concurrency) {
        Ok(fetcher) => fetcher,
        Err(err) => {
            err!("pagehook test: {err}");
            return Ok(ExitCode::FAILURE);
        }
    };
    // Print in config order, each as soon as it and those before it are done.
    let mut results = stream::iter(&watchers)
        .map(|w| {
            let fetcher = &fetcher;
            async move { (w, probe_explained(w, fetcher).await) }
        })
        .buffered(CONCURRENCY);
    let mut failed = false;
    while let Some((watcher, result)) = results.next().await {
        failed |= result.is_err();
        let name = watcher.name.as_str();
        if as_json {
            let line = match &result {
                Ok(found) => {
                    let mut line = json!({"watcher": name, "ok": true, "values": found.values});
                    let automatic = automatic_origins(watcher, found);
                    if !automatic.is_empty() {
                        line["found_in"] = json!(automatic);
                    }
                    line
                }
                Err(err) => json!({"watcher": name, "ok": false, "error": err.to_string()}),
            };
            out!("{line}");
            continue;
        }
        match result {
            Ok(found) => {
                out!("{name}: ok");
                let automatic = automatic_origins(watcher, &found);
                for (field, value) in &found.values {
                    match automatic.get(field) {
                        Some(origin) => out!("  {field} = {value}  (found in {origin})"),
                        None => out!("  {field} = {value}"),
                    }
                }
            }
            Err(err) => out!("{name}: FAILED: {err}"),
        }
    }
    if failed {
        Ok(ExitCode::FAILURE)
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

/// `pagehook status [--json]`
pub async fn status(file: &ConfigFile, as_json: bool) -> Printed {
    let config = match file.load(1) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let watchers = config.watchers.clone();
    let report = via_daemon_or_store(&config.state_dir, Request::Status, |store| async move {
        Ok(status::status(&store, &watchers, Utc::now(), None)?)
    });
    match report.await {
        Ok(report) if as_json => {
            out!(
                "{}",
                serde_json::to_string_pretty(&report).expect("plain data")
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(report) => {
            out!("{}", status::render_status(&report).trim_end_matches('\n'));
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            err!("pagehook status: {err:#}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `pagehook history WATCHER [--limit N] [--json]`
pub async fn history(file: &ConfigFile, watcher: &str, limit: usize, as_json: bool) -> Printed {
    let config = match file.load(1) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let watchers = config.watchers.clone();
    let request = Request::History {
        watcher: watcher.to_owned(),
        limit,
    };
    let report = via_daemon_or_store(&config.state_dir, request, |store| async move {
        Ok(status::history(&store, &watchers, watcher, limit)?)
    });
    match report.await {
        Ok(Some(report)) if as_json => {
            out!(
                "{}",
                serde_json::to_string_pretty(&report).expect("plain data")
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(Some(report)) => {
            out!("{}", status::render_history(&report).trim_end_matches('\n'));
            Ok(ExitCode::SUCCESS)
        }
        Ok(None) => {
            err!(
                "pagehook history: unknown watcher `{watcher}`: it is not in the config and the store has nothing for it"
            );
            Ok(ExitCode::from(EXIT_USAGE))
        }
        Err(err) => {
            err!("pagehook history: {err:#}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `pagehook demo [--duration D]`
pub async fn demo(duration: Option<std::time::Duration>) -> Printed {
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
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(err) => {
            err!("pagehook demo: {err:#}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `pagehook receive --secret S [--host H] [--port P] [--out FILE]`
pub async fn receive(host: &str, port: u16, secrets: &[String], out: Option<&Path>) -> Printed {
    // Several secrets may also arrive whitespace-separated in one value, as from
    // $PAGEHOOK_SECRET; parse errors never echo the secret.
    let texts: Vec<&str> = secrets.iter().flat_map(|s| s.split_whitespace()).collect();
    if texts.is_empty() {
        err!("pagehook receive: --secret is empty");
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let mut parsed = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        match text.parse::<Secret>() {
            Ok(secret) => parsed.push(secret),
            Err(err) => {
                err!("pagehook receive: secret #{}: {err}", i + 1);
                return Ok(ExitCode::from(EXIT_USAGE));
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
                err!("pagehook receive: cannot open {}: {err}", path.display());
                return Ok(ExitCode::FAILURE);
            }
        },
        None => None,
    };
    let listener = match tokio::net::TcpListener::bind((host, port)).await {
        Ok(listener) => listener,
        Err(err) => {
            err!("pagehook receive: cannot listen on {host}:{port}: {err}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(err) => {
            err!("pagehook receive: {err}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let count = parsed.len();
    let options = receive::Options {
        secrets: parsed,
        tolerance_secs: DEFAULT_TOLERANCE_SECS,
        out: file,
    };
    out!(
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
        Ok(Ok(())) => Ok(ExitCode::SUCCESS),
        Ok(Err(err)) => {
            err!("pagehook receive: {err}");
            Ok(ExitCode::FAILURE)
        }
        Err(err) => {
            err!("pagehook receive: the server panicked: {err}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `pagehook secret`
pub fn secret() -> Printed {
    match Secret::generate() {
        Ok(secret) => {
            out!("{}", secret.to_whsec());
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            err!("pagehook secret: the operating system gave no random bytes: {err}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Where each field without a source found its value, so a user can trust or correct it.
fn automatic_origins(watcher: &Watcher, found: &Extraction) -> BTreeMap<String, String> {
    watcher
        .fields
        .iter()
        .filter(|f| matches!(f.source, Source::Auto))
        .filter_map(|f| Some((f.name.clone(), found.found_in(&f.name)?)))
        .collect()
}
