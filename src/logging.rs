//! Log output: human-readable lines by default, JSON for log shippers, and under systemd no
//! timestamps or colours, since journald stamps and stores each line itself.

use std::io::IsTerminal;
use std::os::unix::fs::MetadataExt;

use tracing_subscriber::EnvFilter;

use crate::config::Diagnostic;

/// `--log-format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per line, fields included.
    Json,
}

/// Set up the global subscriber: `RUST_LOG` if set, else `default` (e.g. "info").
pub fn init(format: LogFormat, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let journal = writes_to_journal(std::env::var("JOURNAL_STREAM").ok().as_deref(), stderr_id());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match (format, journal) {
        (LogFormat::Json, _) => builder.json().init(),
        (LogFormat::Human, true) => builder.without_time().with_ansi(false).init(),
        (LogFormat::Human, false) => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// A config problem as one log event, its place in fields of its own: under `--log-format json`
/// `{"level":"ERROR","fields":{"message":..,"file":..,"line":..,"column":..},..}`, so a log
/// shipper reads it like any other line.
pub(crate) fn config_problem(problem: &Diagnostic, warning: bool) {
    let file = problem.file.display();
    let (line, column, message) = (problem.line, problem.column, problem.message.as_str());
    if warning {
        tracing::warn!(target: "pagehook::config", %file, line, column, "{message}");
    } else {
        tracing::error!(target: "pagehook::config", %file, line, column, "{message}");
    }
}

/// stderr's device and inode, to compare with what systemd put in `$JOURNAL_STREAM`.
fn stderr_id() -> Option<(u64, u64)> {
    let meta = std::fs::metadata("/proc/self/fd/2").ok()?;
    Some((meta.dev(), meta.ino()))
}

/// True when stderr is the journal stream systemd set up. The variable alone is not enough: a
/// shell started from a unit inherits it while its stderr is a terminal (sd_journal_stream_fd(3)).
fn writes_to_journal(journal_stream: Option<&str>, stderr: Option<(u64, u64)>) -> bool {
    let Some(value) = journal_stream else {
        return false;
    };
    let parsed = value
        .split_once(':')
        .and_then(|(dev, ino)| Some((dev.parse::<u64>().ok()?, ino.parse::<u64>().ok()?)));
    match (parsed, stderr) {
        (Some(expected), Some(actual)) => expected == actual,
        // Set but unverifiable: trust it, as journald is the likelier reader.
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_is_recognised_by_its_device_and_inode() {
        assert!(!writes_to_journal(None, Some((1, 2))));
        assert!(writes_to_journal(Some("8:12345"), Some((8, 12345))));
        assert!(
            !writes_to_journal(Some("8:12345"), Some((8, 999))),
            "an inherited variable with stderr elsewhere"
        );
        assert!(writes_to_journal(Some("garbled"), Some((8, 999))));
        assert!(writes_to_journal(Some("8:12345"), None));
    }
}
