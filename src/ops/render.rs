//! Reports as text for people, or JSON for scripts: one place for what the commands print.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::{Deliveries, HistoryReport, ImportReport, OnceReport, Replayed, StatusReport};
use crate::check::Checks;
use crate::extract::Values;

pub(super) fn plural(n: usize, noun: &str) -> String {
    match (n, noun.strip_suffix('y')) {
        (1, _) => format!("1 {noun}"),
        (_, Some(stem)) => format!("{n} {stem}ies"),
        _ => format!("{n} {noun}s"),
    }
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `field=value` pairs, strings unquoted when they need no quotes.
fn values_line(values: &Values) -> String {
    let mut line = String::new();
    for (name, value) in values {
        if !line.is_empty() {
            line.push(' ');
        }
        let _ = match value {
            serde_json::Value::String(s) if !s.is_empty() && !s.contains(char::is_whitespace) => {
                write!(line, "{name}={s}")
            }
            other => write!(line, "{name}={other}"),
        };
    }
    line
}

/// Columns padded to their widest cell, two spaces apart; the last column is not padded.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The human-readable `status` table, with each failing watcher's error beneath it.
pub(crate) fn render_status(report: &StatusReport) -> String {
    let mut rows = vec![
        [
            "WATCHER",
            "LAST CHECK",
            "OUTCOME",
            "NEXT RUN",
            "FAILURES",
            "QUEUED",
            "VALUES",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for w in &report.watchers {
        rows.push(vec![
            w.name.clone(),
            w.last_check.map_or("never".into(), time),
            match (w.last_outcome.as_deref(), w.last_reason) {
                (Some("failed"), Some(reason)) => format!("failed ({reason})"),
                (outcome, _) => outcome.unwrap_or("-").to_owned(),
            },
            time(w.next_run),
            w.consecutive_failures.to_string(),
            w.pending_deliveries.to_string(),
            w.values.as_ref().map_or("-".into(), values_line),
        ]);
    }
    let mut out = table(&rows);
    for w in &report.watchers {
        if let (Some("failed"), Some(err)) = (w.last_outcome.as_deref(), &w.last_error) {
            let _ = writeln!(out, "{}: {err}", w.name);
        }
        if let Some(due) = w.overdue_since {
            let checked = match w.last_check {
                Some(_) => "no check has finished since",
                None => "it has never been checked",
            };
            let _ = writeln!(out, "{}: overdue since {}: {checked}", w.name, time(due));
        }
    }
    let _ = writeln!(
        out,
        "{} queued",
        plural(report.pending_deliveries, "delivery")
    );
    out
}

/// The human-readable `history` listing, newest first.
pub(crate) fn render_history(report: &HistoryReport) -> String {
    if report.entries.is_empty() {
        return format!("{}: no history recorded yet\n", report.watcher);
    }
    let mut rows = vec![
        ["TIME", "KIND", "CHANGED", "VALUES"]
            .map(String::from)
            .to_vec(),
    ];
    for e in &report.entries {
        let changed = if e.changed.is_empty() {
            "-".to_owned()
        } else {
            e.changed.join(",")
        };
        rows.push(vec![
            time(e.checked_at),
            e.kind.clone(),
            changed,
            values_line(&e.values),
        ]);
    }
    let mut out = String::new();
    let (all, _) = super::series(&report.entries);
    let width = all
        .iter()
        .map(|s| s.field.chars().count())
        .max()
        .unwrap_or(0);
    for series in &all {
        let _ = writeln!(out, "{:<width$}  {}", series.field, sparkline(series));
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&table(&rows));
    out
}

/// Bars this wide at most: the newest values, one character each.
const SPARK_CHARS: usize = 48;

/// `▁▃█▅  USD 17.50 -> 21.00 (low 17.50, high 24.00, 6 values)`: a series' newest values as
/// bars from its lowest to its highest, oldest on the left.
fn sparkline(series: &super::Series) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let points = &series.points[series.points.len().saturating_sub(SPARK_CHARS)..];
    let (low, high) = points.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.value), hi.max(p.value))
    });
    let bars: String = points
        .iter()
        .map(|p| {
            let at = if high > low && (high - low).is_finite() {
                ((p.value - low) / (high - low) * 7.0).round() as usize
            } else {
                3
            };
            BARS[at.min(7)]
        })
        .collect();
    let text = |p: &super::Point| match &series.currency {
        Some(code) => format!("{code} {}", p.text),
        None => p.text.clone(),
    };
    let lowest = points.iter().min_by(|a, b| a.value.total_cmp(&b.value));
    let highest = points.iter().max_by(|a, b| a.value.total_cmp(&b.value));
    let (first, last) = (&points[0], &points[points.len() - 1]);
    format!(
        "{bars}  {} -> {} (low {}, high {}, {})",
        text(first),
        text(last),
        lowest.map_or_else(String::new, text),
        highest.map_or_else(String::new, text),
        plural(points.len(), "value")
    )
}

/// Which part of `pagehook deliveries` to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    All,
    Pending,
    Dead,
}

/// How `pagehook deliveries` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveriesView {
    pub show: Show,
    pub json: bool,
}

/// `pagehook deliveries`: one line per delivery (a JSON object each under `--json`), then the
/// failing endpoints and the quarantine, as text.
pub(crate) fn render_deliveries(report: &Deliveries, view: DeliveriesView) -> String {
    let show = view.show;
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
    let mut out = String::new();
    if view.json {
        for d in pending {
            let _ = writeln!(out, "{}", with_state(d, "pending"));
        }
        for d in dead {
            let _ = writeln!(out, "{}", with_state(d, "dead"));
        }
        return out;
    }
    for d in pending {
        let _ = writeln!(
            out,
            "pending  {}  webhook={} watcher={} attempts={} next={}  {}",
            d.event_id,
            d.webhook,
            d.watcher,
            d.attempts,
            time(d.next_attempt),
            d.last_error().unwrap_or("")
        );
    }
    for letter in dead {
        let d = &letter.delivery;
        let _ = writeln!(
            out,
            "dead     {}  webhook={} watcher={} attempts={} died={}  {}",
            d.event_id,
            d.webhook,
            d.watcher,
            d.history.len(),
            time(letter.died_at),
            letter.reason
        );
    }
    if pending.is_empty() && dead.is_empty() {
        let _ = writeln!(
            out,
            "no {}",
            match show {
                Show::All => "pending deliveries and no dead letters",
                Show::Pending => "pending deliveries",
                Show::Dead => "dead letters",
            }
        );
    }
    for (webhook, failure) in &report.failing {
        let _ = writeln!(
            out,
            "webhook `{webhook}` is failing since {}: {}",
            time(failure.since),
            failure.reason
        );
    }
    if report.quarantined > 0 {
        let _ = writeln!(
            out,
            "{} unreadable outbox entries were set aside in the `quarantine` tree",
            report.quarantined
        );
    }
    out
}

fn with_state(item: &impl Serialize, state: &str) -> serde_json::Value {
    let mut value = serde_json::to_value(item).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.insert("state".into(), state.into());
    }
    value
}

/// `pagehook replay`: what was queued again.
pub(crate) fn render_replayed(replayed: &Replayed) -> String {
    let mut out = String::new();
    for (event_id, webhook) in &replayed.queued {
        let _ = writeln!(out, "queued {event_id} for webhook `{webhook}`");
    }
    let _ = writeln!(
        out,
        "{} deliveries queued; `pagehook run` or `pagehook once` sends them",
        replayed.queued.len()
    );
    out
}

/// `pagehook once`: one summary line.
pub(crate) fn render_once(report: &OnceReport) -> String {
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
    format!(
        "checked {checked}: {changed} changed, {unchanged} unchanged, {quiet} quiet, {baseline} baseline, {failed} failed; {deliveries}\n"
    )
}

/// `pagehook import`: what became of each watcher in the file.
pub(crate) fn render_import(report: &ImportReport) -> String {
    let mut out = format!(
        "imported {}: {} new, {} replaced, {} kept because the local state is as new or newer\n",
        plural(report.merged(), "watcher"),
        report.new.len(),
        report.replaced.len(),
        report.kept.len()
    );
    for (label, names) in [
        ("new", &report.new),
        ("replaced", &report.replaced),
        ("kept", &report.kept),
    ] {
        if !names.is_empty() {
            let _ = writeln!(out, "{label}: {}", names.join(", "));
        }
    }
    if !report.skipped.is_empty() {
        let _ = writeln!(
            out,
            "skipped {} this shard does not have: {}",
            plural(report.skipped.len(), "watcher"),
            report.skipped.join(", ")
        );
    }
    out
}
