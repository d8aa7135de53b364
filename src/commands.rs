//! The CLI: each command asks (the running daemon, or the store when none runs), then prints.
//! A command returns its exit code, or the [`Failure`] that `main` prints once.
//!
//! Output goes through `out!`, never `println!`, which panics when its reader has gone:
//! `pagehook status | head -1` must end quietly, as other command-line tools do.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::{StreamExt, stream};
use serde_json::json;
use tokio::sync::mpsc;

use crate::check::probe;
use crate::config::{self, Config, Diagnostic, Loaded, Node, ShardBy, Watcher};
use crate::control;
use crate::daemon;
use crate::demo;
use crate::extract::{Extraction, Reading, Source};
use crate::fetch::Fetcher;
use crate::logging::{self, LogFormat};
use crate::ops::{self, Answerer, DeliveriesView, ImportReport, Ops, Record, Reply, Request};
use crate::receive::{self, describe};
use crate::sign::{DEFAULT_TOLERANCE_SECS, Secret};
use crate::store::{Store, StoreError};

/// systemd's EX_CONFIG: a bad config must not restart-loop a service.
pub const EXIT_CONFIG: u8 = 78;
pub(crate) const EXIT_USAGE: u8 = 2;
/// How long a command waits for a locked store or a daemon's socket before it gives up.
const LOCKED_PATIENCE: Duration = Duration::from_secs(2);
/// Checks `test` runs at once (it prints in config order).
const CONCURRENCY: usize = 16;
/// `import` sends records to a running daemon in requests of about this size (see
/// `control::MAX_IMPORT_REQUEST`): each one's merges are a small, bounded piece of work.
const IMPORT_BATCH_BYTES: usize = 1024 * 1024;
/// What an import request adds around its records.
const IMPORT_REQUEST_OVERHEAD: u64 = 64;

/// A line on stdout. A failed write ends the command through `?`, and [`exit`] turns a reader
/// that has gone away into a quiet end.
macro_rules! out {
    ($($arg:tt)*) => {
        writeln!(io::stdout().lock(), $($arg)*).map_err(Failure::Output)?
    };
}

mod probe;
pub use self::probe::probe_url;

/// Why a command stopped; `main` tells it once, through [`exit`].
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The problems were told already (config diagnostics): only the exit code is left.
    #[error("exit status {0}")]
    Told(u8),
    /// The command was used wrongly: exit 2.
    #[error("{0}")]
    Usage(String),
    /// Exit 1.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
    /// Stdout failed; a reader that went away is a quiet end.
    #[error("cannot write the output: {0}")]
    Output(io::Error),
}

/// A command's exit code, or why it failed.
pub(crate) type Done = Result<ExitCode, Failure>;

/// The process's exit code for how `command` ended, telling its failure on stderr. A closed
/// pipe (`| head -1`) means the reader has what it wanted: exit 0 without a word, as ripgrep
/// does.
pub fn exit(command: &str, done: Done) -> ExitCode {
    let (code, message) = match done {
        Ok(code) => return code,
        Err(Failure::Output(err)) if err.kind() == io::ErrorKind::BrokenPipe => {
            return ExitCode::SUCCESS;
        }
        Err(Failure::Told(code)) => return ExitCode::from(code),
        Err(Failure::Usage(message)) => (EXIT_USAGE, message),
        Err(Failure::Failed(err)) => (1, format!("{err:#}")),
        Err(err @ Failure::Output(_)) => (1, err.to_string()),
    };
    // When stderr itself is gone, nobody is left to tell.
    let _ = writeln!(io::stderr().lock(), "pagehook {command}: {message}");
    ExitCode::from(code)
}

fn failed(message: impl std::fmt::Display) -> Failure {
    Failure::Failed(anyhow::anyhow!("{message}"))
}

/// The config file a command reads, and how its problems are told.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    /// Under `--log-format json` each problem is a JSON log line with its place in fields.
    pub log_format: LogFormat,
    /// `--shard I`: which shard of a `[cluster]` this process is.
    pub shard: Option<String>,
}

impl ConfigFile {
    /// Load the config with this node's watchers (every watcher where the node is not known),
    /// telling its warnings, or tell every error and fail with `error_code`.
    pub(crate) fn load(&self, error_code: u8) -> Result<Config, Failure> {
        self.load_as(
            Node::Own {
                flag: self.shard.as_deref(),
            },
            error_code,
        )
    }

    /// [`load`](Self::load) for a command that works on this node's store: in a cluster it
    /// must know which shard it is, or it would take on every other shard's watchers.
    pub(crate) fn load_own(&self, error_code: u8) -> Result<Config, Failure> {
        let config = self.load(error_code)?;
        if let Err(why) = config.cluster.own_shard() {
            let _ = writeln!(io::stderr().lock(), "{}: {why}", self.path.display());
            return Err(Failure::Told(error_code));
        }
        Ok(config)
    }

    fn load_as(&self, node: Node<'_>, error_code: u8) -> Result<Config, Failure> {
        match config::load_for(&self.path, node) {
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
                Err(Failure::Told(error_code))
            }
        }
    }

    fn tell(&self, problem: &Diagnostic, warning: bool) {
        let mut stderr = io::stderr().lock();
        let _ = match (self.log_format, warning) {
            (LogFormat::Json, _) => {
                logging::config_problem(problem, warning);
                Ok(())
            }
            (LogFormat::Human, true) => writeln!(stderr, "{}", problem.as_warning()),
            (LogFormat::Human, false) => writeln!(stderr, "{problem}"),
        };
    }
}

/// `pagehook run`
pub async fn run(file: ConfigFile) -> Done {
    let config = file.load_own(EXIT_CONFIG)?;
    let shutdown = daemon::shutdown_on_signals();
    daemon::run(config, file.path, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// `pagehook check [--shards]`
pub fn check_config(file: &ConfigFile, shards: bool) -> Done {
    if shards {
        return check_shards(file);
    }
    let config = file.load(1)?;
    let cluster = &config.cluster;
    let part = match &cluster.node {
        _ if cluster.shards == 1 => String::new(),
        Ok(index) => format!(
            "; shard {index} of {} checks {} of them",
            cluster.shards,
            config.watchers.len()
        ),
        Err(_) => format!(
            "; divided among {} shards by {} (`check --shards` shows how)",
            cluster.shards,
            cluster.shard_by.as_str()
        ),
    };
    out!(
        "{}: OK ({} watchers, {} webhooks{part})",
        file.path.display(),
        config.watchers_in_file,
        config.webhooks.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// `pagehook check --shards`: how the watchers divide, so that a lopsided cluster is seen
/// before it runs.
fn check_shards(file: &ConfigFile) -> Done {
    let config = file.load_as(Node::Every, 1)?;
    let cluster = &config.cluster;
    let mut watchers = vec![0usize; cluster.shards as usize];
    let mut hosts = vec![std::collections::BTreeSet::new(); cluster.shards as usize];
    for w in &config.watchers {
        let shard = cluster.owner(w) as usize;
        watchers[shard] += 1;
        hosts[shard].insert(w.url.host_str().unwrap_or_default().to_ascii_lowercase());
    }
    out!(
        "{}: OK ({} watchers, {} webhooks) in {} shards by {}: shard = SHA-256({}) first 8 bytes, big-endian, mod {}",
        file.path.display(),
        config.watchers.len(),
        config.webhooks.len(),
        cluster.shards,
        cluster.shard_by.as_str(),
        cluster.shard_by.as_str(),
        cluster.shards
    );
    let width = (cluster.shards - 1).to_string().len();
    for (index, (count, hosts)) in watchers.iter().zip(&hosts).enumerate() {
        out!(
            "shard {index:>width$}: {count} watchers on {} hosts",
            hosts.len()
        );
    }
    let busiest = watchers.iter().copied().max().unwrap_or(0);
    let fair = config.watchers.len().div_ceil(cluster.shards as usize);
    // One host's watchers all go to one shard: a config that mostly watches one host puts
    // nearly everything on one node.
    if cluster.shards > 1 && cluster.shard_by == ShardBy::Host && busiest > 2 * fair.max(1) {
        out!(
            "note: the busiest shard has {busiest} watchers where an even split is {fair}: with most watchers on few hosts, consider shard_by = \"watcher\" (see the README on politeness)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The named watchers, or all of them; an unknown name is a usage error.
fn select(config: &Config, names: &[String]) -> Result<Vec<Arc<Watcher>>, Failure> {
    if names.is_empty() {
        return Ok(config.watchers.clone());
    }
    names
        .iter()
        .map(|name| {
            config.watcher(name).cloned().ok_or_else(|| {
                let known: Vec<&str> = config.watchers.iter().map(|w| w.name.as_str()).collect();
                let whose = match &config.cluster.node {
                    Ok(index) if config.cluster.shards > 1 => format!(
                        "shard {index} of {} has (`check --shards` shows how they divide)",
                        config.cluster.shards
                    ),
                    _ => "the config has".to_owned(),
                };
                Failure::Usage(format!(
                    "unknown watcher `{name}`; {whose}: {}",
                    known.join(", ")
                ))
            })
        })
        .collect()
}

/// Ask the running daemon through its control socket, or, when none runs, answer from the
/// store directly: a user never meets a lock error.
async fn ask(config: &Config, request: Request) -> Result<Reply, Failure> {
    let state_dir = &config.state_dir;
    // The store is locked with no socket up: a daemon is starting (it opens the store before
    // its socket) or stopping, or another command holds the store for a moment. None of them
    // says when it is done, so ask again, soon at first and then less often, for about 2 s.
    let mut wait = Duration::from_millis(10);
    let deadline = tokio::time::Instant::now() + LOCKED_PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if let Some(reply) = control::call(state_dir, &request)
            .await
            .map_err(anyhow::Error::from)?
        {
            return Ok(reply);
        }
        match Store::open(state_dir) {
            Ok(store) => {
                let ops = Ops {
                    store: store.clone(),
                    watchers: config.watchers.clone(),
                    answerer: Answerer::Alone {
                        max_concurrency: config.max_concurrency,
                        browser: config.browser.clone(),
                        webhooks: config.webhooks.clone(),
                    },
                };
                let reply = ops.answer(request, Utc::now()).await;
                store.flush().await.map_err(anyhow::Error::from)?;
                return reply.map_err(|err| Failure::Failed(err.into()));
            }
            Err(StoreError::Locked(_)) => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_millis(250));
            }
            Err(err) => return Err(Failure::Failed(err.into())),
        }
    }
    Err(Failure::Failed(
        StoreError::Locked(state_dir.to_owned()).into(),
    ))
}

fn unexpected(reply: Reply) -> Failure {
    let kind = match reply {
        Reply::Deliveries(_) => "deliveries",
        Reply::Replay(_) => "replay",
        Reply::Once(_) => "once",
        Reply::Status(_) => "status",
        Reply::History(_) => "history",
        Reply::Export(_) => "export",
        Reply::Import(_) => "import",
    };
    failed(format_args!(
        "the running daemon answered with a {kind} report to another question"
    ))
}

/// Print a rendered report, which ends with a newline.
fn print(text: &str) -> Result<(), Failure> {
    if !text.is_empty() {
        out!("{}", text.trim_end_matches('\n'));
    }
    Ok(())
}

/// Print a report as pretty JSON under `--json`, else as `render` writes it.
fn print_report<R: serde::Serialize>(
    report: &R,
    as_json: bool,
    render: fn(&R) -> String,
) -> Result<(), Failure> {
    if as_json {
        out!(
            "{}",
            serde_json::to_string_pretty(report).expect("plain data")
        );
        Ok(())
    } else {
        print(&render(report))
    }
}

/// `pagehook once [WATCHER...]`
pub async fn once(file: &ConfigFile, names: &[String]) -> Done {
    let config = file.load_own(EXIT_CONFIG)?;
    select(&config, names)?;
    let request = Request::Once {
        watchers: names.to_vec(),
    };
    let report = match ask(&config, request).await? {
        Reply::Once(report) => report,
        other => return Err(unexpected(other)),
    };
    print(&ops::render_once(&report))?;
    if report.checks.failed > 0 {
        Ok(ExitCode::FAILURE)
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

/// `pagehook deliveries [--pending|--dead] [--json]`
pub async fn deliveries(file: &ConfigFile, view: DeliveriesView) -> Done {
    let config = file.load_own(1)?;
    let report = match ask(&config, Request::Deliveries).await? {
        Reply::Deliveries(report) => report,
        other => return Err(unexpected(other)),
    };
    print(&ops::render_deliveries(&report, view))?;
    Ok(ExitCode::SUCCESS)
}

/// `pagehook replay EVENT_ID... | --dead`
pub async fn replay(file: &ConfigFile, event_ids: &[String], dead: bool) -> Done {
    if event_ids.iter().any(|id| id.trim().is_empty()) {
        return Err(failed(
            "an event id is empty; give whole ids (evt_...), as `pagehook deliveries` lists them",
        ));
    }
    let config = file.load_own(1)?;
    let request = Request::Replay {
        event_ids: event_ids.to_vec(),
        dead,
    };
    let replayed = match ask(&config, request).await? {
        Reply::Replay(replayed) => replayed,
        other => return Err(unexpected(other)),
    };
    print(&ops::render_replayed(&replayed))?;
    Ok(ExitCode::SUCCESS)
}

/// `pagehook status [--json]`
pub async fn status(file: &ConfigFile, as_json: bool) -> Done {
    // A running daemon answers from the config it runs: reaching it takes the state directory,
    // not the whole file compiled (seconds at 100,000 watchers).
    let running = match config::state_dir(&file.path, &config::ProcessEnv) {
        Some(dir) => control::call(&dir, &Request::Status)
            .await
            .map_err(anyhow::Error::from)?,
        None => None,
    };
    let reply = match running {
        Some(reply) => reply,
        None => ask(&file.load_own(1)?, Request::Status).await?,
    };
    let report = match reply {
        Reply::Status(report) => report,
        other => return Err(unexpected(other)),
    };
    print_report(&report, as_json, ops::render_status)?;
    Ok(ExitCode::SUCCESS)
}

/// `pagehook history WATCHER [--limit N] [--json]`
pub async fn history(file: &ConfigFile, watcher: &str, limit: usize, as_json: bool) -> Done {
    let config = file.load_own(1)?;
    let request = Request::History {
        watcher: watcher.to_owned(),
        limit,
    };
    let report = match ask(&config, request).await? {
        Reply::History(Some(report)) => report,
        Reply::History(None) => {
            return Err(Failure::Usage(format!(
                "unknown watcher `{watcher}`: it is not in the config and the store has nothing for it"
            )));
        }
        other => return Err(unexpected(other)),
    };
    print_report(&report, as_json, ops::render_history)?;
    Ok(ExitCode::SUCCESS)
}

/// `pagehook export [WATCHER...] [--unowned]`: the header line, then one record a line, as
/// the daemon (or the store) hands them out a page at a time.
pub async fn export(file: &ConfigFile, names: &[String], unowned: bool) -> Done {
    let config = file.load_own(1)?;
    select(&config, names)?;
    let selection = match unowned {
        true => ops::Selection::Unowned,
        false => ops::Selection::Configured(names.to_vec()),
    };
    let mut header = Some(ops::Header::now());
    let (mut after, mut without_state) = (None, Vec::new());
    loop {
        let request = Request::Export {
            selection: selection.clone(),
            after: after.take(),
        };
        let page = match ask(&config, request).await? {
            Reply::Export(page) => page,
            other => return Err(unexpected(other)),
        };
        // Written once the first page is in, so a failure leaves stdout empty.
        if let Some(header) = header.take() {
            out!("{}", serde_json::to_string(&header).expect("plain data"));
        }
        for record in &page.records {
            out!("{}", serde_json::to_string(record).expect("plain data"));
        }
        without_state.extend(page.without_state);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    if !without_state.is_empty() {
        let shown = without_state.len().min(10);
        let more = match without_state.len() - shown {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        let _ = writeln!(
            io::stderr().lock(),
            "pagehook export: not exported, never checked here so no state yet: {}{more}",
            without_state[..shown].join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `pagehook import FILE` (`-`: stdin). The file is read twice: through once to check every
/// line (so a broken file writes nothing), then again to send it in batches, so that memory
/// holds one batch rather than the whole file parsed.
pub async fn import(file: &ConfigFile, path: &Path) -> Done {
    let config = file.load_own(1)?;
    let (source, shown) = if path == Path::new("-") {
        let mut text = Vec::new();
        io::Read::read_to_end(&mut io::stdin().lock(), &mut text)
            .map_err(|err| failed(format_args!("cannot read stdin: {err}")))?;
        (ImportSource::Stdin(text), "stdin".to_owned())
    } else {
        (
            ImportSource::File(path.to_owned()),
            path.display().to_string(),
        )
    };
    let refused =
        |err: &dyn std::fmt::Display| failed(format_args!("{shown}: {err}; nothing was imported"));
    for record in source.records().map_err(|err| refused(&err))? {
        request_size(&record.map_err(|err| refused(&err))?, &shown)?;
    }
    let mut report = ImportReport::default();
    let (mut batch, mut bytes) = (Vec::new(), 0);
    for record in source.records().map_err(|err| refused(&err))? {
        let record = record.map_err(|err| {
            merged_before(
                &report,
                &shown,
                failed(format_args!("{shown} changed during the import: {err}")),
            )
        })?;
        let size = request_size(&record, &shown)?;
        if !batch.is_empty() && bytes + size > IMPORT_BATCH_BYTES {
            send_batch(&config, std::mem::take(&mut batch), &mut report, &shown).await?;
            bytes = 0;
        }
        bytes += size;
        batch.push(record);
    }
    if !batch.is_empty() {
        send_batch(&config, batch, &mut report, &shown).await?;
    }
    print(&ops::render_import(&report))?;
    Ok(ExitCode::SUCCESS)
}

/// What `import` reads: a file, opened once per pass, or stdin, kept as text to read twice.
enum ImportSource {
    File(PathBuf),
    Stdin(Vec<u8>),
}

impl ImportSource {
    fn records(&self) -> io::Result<ops::ExportReader<Box<dyn io::BufRead + Send + '_>>> {
        let input: Box<dyn io::BufRead + Send> = match self {
            ImportSource::File(path) => Box::new(io::BufReader::new(std::fs::File::open(path)?)),
            ImportSource::Stdin(text) => Box::new(&text[..]),
        };
        Ok(ops::ExportReader::new(input))
    }
}

/// A record's bytes in an import request. One larger than a control request may be is
/// refused while the file is checked, before anything is sent.
fn request_size(record: &Record, shown: &str) -> Result<usize, Failure> {
    let size = serde_json::to_vec(record).expect("plain data").len() + 1;
    if size as u64 + IMPORT_REQUEST_OVERHEAD > control::MAX_IMPORT_REQUEST {
        return Err(failed(format_args!(
            "{shown}: the record of `{}` is {size} bytes, more than one import request takes ({} bytes); nothing was imported",
            record.watcher,
            control::MAX_IMPORT_REQUEST
        )));
    }
    Ok(size)
}

async fn send_batch(
    config: &Config,
    records: Vec<Record>,
    report: &mut ImportReport,
    shown: &str,
) -> Result<(), Failure> {
    let reply = ask(config, Request::Import { records })
        .await
        .map_err(|failure| merged_before(report, shown, failure))?;
    match reply {
        Reply::Import(part) => {
            report.add(part);
            Ok(())
        }
        other => Err(unexpected(other)),
    }
}

/// A failure part way through an import says what was merged already, and that going again
/// is safe.
fn merged_before(report: &ImportReport, shown: &str, failure: Failure) -> Failure {
    match failure {
        Failure::Failed(err) if !report.is_empty() => Failure::Failed(err.context(format!(
            "{} watchers from {shown} were merged before this; importing the file again is safe, as a merge already done changes nothing",
            report.merged()
        ))),
        other => other,
    }
}

/// `pagehook test [WATCHER...] [--json]`
pub async fn test(file: &ConfigFile, names: &[String], as_json: bool) -> Done {
    let config = file.load(1)?;
    let watchers = select(&config, names)?;
    let fetcher =
        Fetcher::with_browser(config.max_concurrency, config.browser.clone()).map_err(failed)?;
    // Print in config order, each as soon as it and those before it are done.
    let mut results = stream::iter(&watchers)
        .map(|w| {
            let fetcher = &fetcher;
            async move { (w, probe(w, fetcher).await) }
        })
        .buffered(CONCURRENCY);
    let printed = print_tests(&mut results, as_json).await;
    drop(results);
    // Before the exit, whatever printing did: no browser outlives `test`.
    fetcher.close().await;
    printed
}

async fn print_tests<'w>(
    results: &mut (
             impl futures_util::Stream<
        Item = (
            &'w Arc<Watcher>,
            Result<Extraction, crate::check::CheckError>,
        ),
    > + Unpin
         ),
    as_json: bool,
) -> Done {
    let mut failed = false;
    while let Some((watcher, result)) = results.next().await {
        failed |= result.is_err();
        let name = watcher.name.as_str();
        if as_json {
            let line = match &result {
                Ok(found) => {
                    let mut line = json!({"watcher": name, "ok": true, "values": found.values});
                    let (reading, because) = reading(watcher, found);
                    line["reading"] = json!(reading);
                    if let Some(because) = because {
                        line["dom_because"] = json!(because);
                    }
                    let automatic = automatic_origins(watcher, found);
                    if !automatic.is_empty() {
                        line["found_in"] = json!(automatic);
                    }
                    line
                }
                Err(err) => json!({
                    "watcher": name, "ok": false, "reason": err.reason(), "error": err.to_string(),
                }),
            };
            out!("{line}");
            continue;
        }
        match result {
            Ok(found) => {
                match reading(watcher, &found) {
                    (_, Some(because)) => out!("{name}: ok  (parsed into a DOM: {because})"),
                    ("stream", None) => out!("{name}: ok  (streamed, no DOM)"),
                    _ => out!("{name}: ok"),
                }
                let automatic = automatic_origins(watcher, &found);
                for (field, value) in &found.values {
                    match automatic.get(field) {
                        Some(origin) => out!("  {field} = {value}  (found in {origin})"),
                        None => out!("  {field} = {value}"),
                    }
                }
            }
            Err(err) => out!("{name}: FAILED ({}): {err}", err.reason()),
        }
    }
    if failed {
        Ok(ExitCode::FAILURE)
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

/// `pagehook demo [--duration D]`
pub async fn demo(duration: Option<std::time::Duration>) -> Done {
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
    demo::run(&options, shutdown, show).await?;
    Ok(ExitCode::SUCCESS)
}

/// `pagehook receive --secret S [--host H] [--port P] [--out FILE]`
pub async fn receive(host: &str, port: u16, secrets: &[String], out: Option<&Path>) -> Done {
    // Several secrets may also arrive whitespace-separated in one value, as from
    // $PAGEHOOK_SECRET; parse errors never echo the secret.
    let texts: Vec<&str> = secrets.iter().flat_map(|s| s.split_whitespace()).collect();
    if texts.is_empty() {
        return Err(Failure::Usage("--secret is empty".into()));
    }
    let parsed = texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            text.parse::<Secret>()
                .map_err(|err| Failure::Usage(format!("secret #{}: {err}", i + 1)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let file = match out {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|err| failed(format_args!("cannot open {}: {err}", path.display())))?,
        ),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind((host, port))
        .await
        .map_err(|err| failed(format_args!("cannot listen on {host}:{port}: {err}")))?;
    let addr = listener.local_addr().map_err(failed)?;
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
        Ok(Err(err)) => Err(failed(err)),
        Err(err) => Err(failed(format_args!("the server panicked: {err}"))),
    }
}

/// `pagehook secret`
pub fn secret() -> Done {
    let secret = Secret::generate().map_err(|err| {
        failed(format_args!(
            "the operating system gave no random bytes: {err}"
        ))
    })?;
    out!("{}", secret.to_whsec());
    Ok(ExitCode::SUCCESS)
}

/// How the page was read (`stream`, `dom` or `json`), and why it took a DOM when it did: the
/// watcher's fields, or this page's markup.
fn reading(watcher: &Watcher, found: &Extraction) -> (&'static str, Option<String>) {
    match (Reading::of(&watcher.fields), &found.parsed_because) {
        (Reading::Stream, None) => ("stream", None),
        (Reading::Stream, Some(why)) => ("dom", Some(why.clone())),
        (Reading::Parse(field), _) => ("dom", Some(field.to_owned())),
        (Reading::Json, _) => ("json", None),
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
