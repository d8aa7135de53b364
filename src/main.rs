use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use pagehook::commands::{self, ConfigFile};
use pagehook::logging::{self, LogFormat};
use pagehook::ops::{DeliveriesView, Show};

/// Watch web pages and JSON APIs; send a signed webhook when a tracked value changes.
#[derive(Parser)]
#[command(
    name = "pagehook",
    version,
    propagate_version = true,
    after_help = "Examples:\n  pagehook demo                     # see it work, offline\n  pagehook check && pagehook test   # validate watchers.toml, try its selectors\n  pagehook run                      # the daemon\n\n`pagehook help COMMAND` shows a command's options and an example."
)]
struct Cli {
    /// The watchers file.
    #[arg(
        short,
        long,
        global = true,
        env = "PAGEHOOK_CONFIG",
        default_value = "watchers.toml"
    )]
    config: PathBuf,
    /// Which shard of the config's [cluster] this process is (0 to shards-1).
    #[arg(long, global = true, value_name = "I")]
    shard: Option<String>,
    /// Log lines as readable text or as JSON objects (for log shippers).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: check on schedule and deliver webhooks until SIGTERM or SIGINT.
    #[command(after_help = "Example:\n  pagehook -c /etc/pagehook/watchers.toml run")]
    Run,
    /// Check all (or the named) watchers once, commit, deliver what is due, and exit.
    #[command(after_help = "Example:\n  pagehook once acme-widget")]
    Once {
        /// Watchers to check (default: all).
        watchers: Vec<String>,
    },
    /// Validate the config; print every problem as FILE:LINE:COL: message.
    #[command(
        after_help = "Examples:\n  pagehook check -c watchers.toml\n  pagehook check --shards      # how [cluster] divides the watchers"
    )]
    Check {
        /// Print how many watchers and hosts each shard of [cluster] gets.
        #[arg(long)]
        shards: bool,
    },
    /// Fetch and extract now and print the values; touches no state, sends nothing.
    #[command(after_help = "Example:\n  pagehook test acme-widget --json")]
    Test {
        /// Watchers to test (default: all).
        watchers: Vec<String>,
        /// One JSON object per watcher per line.
        #[arg(long)]
        json: bool,
    },
    /// Find a page's price and stock with no selectors; print where, what was passed over, and
    /// a `[[watchers]]` block to paste. Uses [defaults], [proxies] and [browser] from the config
    /// file when there is one; touches no state, sends nothing.
    #[command(
        after_help = "Examples:\n  pagehook probe https://shop.example/p/kettle\n  pagehook probe --browser --json https://shop.example/p/kettle >> found.jsonl"
    )]
    Probe {
        /// The product page.
        url: String,
        /// Render the page in the browser first (for pages built by script).
        #[arg(long)]
        browser: bool,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List queued deliveries and dead letters, with each one's last error.
    #[command(
        after_help = "Examples:\n  pagehook deliveries --dead\n  pagehook deliveries --json | jq .history"
    )]
    Deliveries {
        /// Only the deliveries waiting for their next attempt.
        #[arg(long, conflicts_with = "dead")]
        pending: bool,
        /// Only the dead letters: deliveries whose retries ran out.
        #[arg(long)]
        dead: bool,
        /// One JSON object per delivery per line, with its attempt history.
        #[arg(long)]
        json: bool,
    },
    /// Queue events again, with their original webhook-id, so receivers can deduplicate.
    #[command(
        after_help = "Examples:\n  pagehook replay evt_0193a6f2c1d87e40a1b2c3d4e5f60718\n  pagehook replay --dead"
    )]
    Replay {
        /// Events to send again, dead or still queued.
        #[arg(required_unless_present = "dead")]
        event_ids: Vec<String>,
        /// Every dead letter.
        #[arg(long)]
        dead: bool,
    },
    /// Show each watcher: last values, last check and outcome, next run, failures, queue.
    #[command(after_help = "Example:\n  pagehook status --json")]
    Status {
        /// One JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show a watcher's recorded values over time, newest first.
    #[command(after_help = "Example:\n  pagehook history acme-widget --limit 20")]
    History {
        /// The watcher.
        watcher: String,
        /// At most this many entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// One JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write watchers' state and history as JSON lines, to move them to another shard with
    /// their baseline and seq.
    #[command(
        after_help = "Examples:\n  pagehook export > all.jsonl\n  pagehook export --unowned > moved.jsonl   # after [cluster] shards changed\n  pagehook export acme-widget | ssh shard-2 pagehook import -"
    )]
    Export {
        /// Watchers to export (default: every configured watcher with state).
        watchers: Vec<String>,
        /// Instead, the watchers the store has state for and the config does not: the ones
        /// another shard owns now, or deleted ones.
        #[arg(long, conflicts_with = "watchers")]
        unowned: bool,
    },
    /// Merge an export into this shard's state: the newer state of each watcher wins, the
    /// histories are joined; watchers this config does not have are skipped.
    #[command(after_help = "Example:\n  pagehook import moved.jsonl")]
    Import {
        /// The export file; `-` reads stdin.
        file: PathBuf,
    },
    /// Try pagehook offline: a local shop whose prices move, pagehook watching it, and a receiver
    /// verifying every webhook; one line per event.
    #[command(
        after_help = "Examples:\n  pagehook demo                 # until Ctrl-C\n  pagehook demo --duration 30s"
    )]
    Demo {
        /// Stop after this long (e.g. 30s, 2m) and print the summary; default: run until Ctrl-C.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
    },
    /// Receive webhooks locally: verify each request's signature, answer 204 or 401, print
    /// the event.
    #[command(
        after_help = "Examples:\n  pagehook receive --secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n  PAGEHOOK_SECRET=\"$(cat secret)\" pagehook receive --port 8080 --out events.jsonl\n\nWith the example watchers.toml, the first command receives what `pagehook once` sends."
    )]
    Receive {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// The port to listen on (0: any free port).
        #[arg(short, long, default_value_t = 9999)]
        port: u16,
        /// The webhook's whsec_ secret; repeat it (or separate with spaces in the variable) to
        /// accept several while rotating.
        #[arg(
            long = "secret",
            value_name = "SECRET",
            env = "PAGEHOOK_SECRET",
            hide_env_values = true,
            required = true
        )]
        secrets: Vec<String>,
        /// Append each verified event to this file as one JSON line:
        /// {"id":..,"received_at":..,"event":{..}}.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Print a fresh webhook secret (whsec_ + 32 random bytes in base64).
    #[command(
        after_help = "Example:\n  pagehook secret > /etc/pagehook/secret   # then: secret_file = \"/etc/pagehook/secret\""
    )]
    Secret,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet = !matches!(cli.command, Command::Run | Command::Once { .. });
    logging::init(cli.log_format, if quiet { "warn" } else { "info" });
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            let _ = writeln!(
                std::io::stderr(),
                "pagehook: cannot start the async runtime: {err}"
            );
            return ExitCode::FAILURE;
        }
    };
    let file = ConfigFile {
        path: cli.config,
        log_format: cli.log_format,
        shard: cli.shard,
    };
    let name = cli.command.name();
    let done = runtime.block_on(async {
        match cli.command {
            Command::Run => commands::run(file).await,
            Command::Once { watchers } => commands::once(&file, &watchers).await,
            Command::Check { shards } => commands::check_config(&file, shards),
            Command::Test { watchers, json } => commands::test(&file, &watchers, json).await,
            Command::Probe { url, browser, json } => {
                commands::probe_url(&file, &url, browser, json).await
            }
            Command::Deliveries {
                pending,
                dead,
                json,
            } => {
                let show = match (pending, dead) {
                    (true, _) => Show::Pending,
                    (_, true) => Show::Dead,
                    _ => Show::All,
                };
                commands::deliveries(&file, DeliveriesView { show, json }).await
            }
            Command::Replay { event_ids, dead } => commands::replay(&file, &event_ids, dead).await,
            Command::Status { json } => commands::status(&file, json).await,
            Command::History {
                watcher,
                limit,
                json,
            } => commands::history(&file, &watcher, limit, json).await,
            Command::Export { watchers, unowned } => {
                commands::export(&file, &watchers, unowned).await
            }
            Command::Import { file: path } => commands::import(&file, &path).await,
            Command::Demo { duration } => commands::demo(duration).await,
            Command::Receive {
                host,
                port,
                secrets,
                out,
            } => commands::receive(&host, port, &secrets, out.as_deref()).await,
            Command::Secret => commands::secret(),
        }
    });
    // Dropping the runtime would wait for every blocking task, and a parse cut off by the
    // daemon's drain may still be running on one until its next piece: do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(500));
    commands::exit(name, done)
}

impl Command {
    /// What errors are prefixed with: `pagehook NAME: ...`.
    fn name(&self) -> &'static str {
        match self {
            Command::Run => "run",
            Command::Once { .. } => "once",
            Command::Check { .. } => "check",
            Command::Test { .. } => "test",
            Command::Probe { .. } => "probe",
            Command::Deliveries { .. } => "deliveries",
            Command::Replay { .. } => "replay",
            Command::Status { .. } => "status",
            Command::History { .. } => "history",
            Command::Export { .. } => "export",
            Command::Import { .. } => "import",
            Command::Demo { .. } => "demo",
            Command::Receive { .. } => "receive",
            Command::Secret => "secret",
        }
    }
}
