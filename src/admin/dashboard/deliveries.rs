//! `/deliveries`: what waits in the outbox and what died, each with the command that sends
//! it again.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::html::{Section, TITLE_CHARS, clip, count, esc, page, time};
use crate::ops::{DeliveriesPage, Fate};

/// How to run `pagehook replay` against this daemon's config, from a shell on its host.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    /// `pagehook`, with `-c FILE` and `--shard I` when the daemon needs them.
    prefix: String,
}

impl Replay {
    /// `config` as the daemon was given it; `shard` when it is one of several.
    pub fn new(config: &std::path::Path, shard: Option<u32>) -> Replay {
        let mut prefix = "pagehook".to_owned();
        if config != std::path::Path::new("watchers.toml") {
            let _ = write!(prefix, " -c {}", shell_word(&config.to_string_lossy()));
        }
        if let Some(shard) = shard {
            let _ = write!(prefix, " --shard {shard}");
        }
        Replay { prefix }
    }

    pub(super) fn event(&self, id: &str) -> String {
        format!("{} replay {}", self.prefix, shell_word(id))
    }

    fn dead(&self) -> String {
        format!("{} replay --dead", self.prefix)
    }
}

/// `word` as one word for a POSIX shell.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A command to copy: selectable text, and a button where scripts run.
fn command(out: &mut String, command: &str) {
    let _ = write!(
        out,
        r#"<span class="cmd"><code>{c}</code><button type="button" class="copy" data-copy="{c}" hidden>copy</button></span>"#,
        c = esc(command)
    );
}

/// One undone delivery's state, in a cell.
pub(super) fn fate_cells(out: &mut String, fate: &Fate, replay: &Replay, now: DateTime<Utc>) {
    let d = fate.delivery();
    match fate {
        Fate::Pending(_) => {
            let _ = write!(
                out,
                r#"<div class="fate"><span class="badge pending">pending</span> to <b>{}</b>, {} so far, next "#,
                esc(&d.webhook),
                attempts(d.attempts)
            );
            time(out, Some(d.next_attempt), now);
        }
        Fate::Dead { died_at, .. } => {
            let _ = write!(
                out,
                r#"<div class="fate"><span class="badge dead">dead</span> at <b>{}</b> "#,
                esc(&d.webhook)
            );
            time(out, Some(*died_at), now);
            out.push(' ');
            command(out, &replay.event(&d.event_id));
        }
    }
    out.push_str("</div>");
}

fn attempts(n: u32) -> String {
    if n == 1 {
        "1 attempt".to_owned()
    } else {
        format!("{n} attempts")
    }
}

/// Undone deliveries as a table, each with its last error and the command to send it now.
pub(super) fn table(
    out: &mut String,
    fates: &[Fate],
    total: usize,
    replay: &Replay,
    now: DateTime<Utc>,
) {
    out.push_str(r#"<table class="deliveries"><thead><tr><th>Event</th><th>Watcher</th><th>Webhook</th><th>Queued</th><th class="num">Attempts</th><th>State</th><th>Last error</th><th>Send it again</th></tr></thead><tbody>"#);
    for fate in fates {
        let d = fate.delivery();
        let _ = write!(
            out,
            r#"<tr data-event="{id}"><td><code class="id">{id}</code></td><td><a href="/watchers/{w}">{w}</a></td><td>{h}</td><td>"#,
            id = esc(&d.event_id),
            w = esc(&d.watcher),
            h = esc(&d.webhook),
        );
        time(out, Some(d.created_at), now);
        let _ = write!(out, r#"</td><td class="num">{}</td><td>"#, d.attempts);
        // A dead letter's reason says why it died and quotes the last error; a pending
        // delivery has only the error.
        let error = match fate {
            Fate::Pending(_) => {
                out.push_str(r#"<span class="badge pending">pending</span> next "#);
                time(out, Some(d.next_attempt), now);
                d.last_error().unwrap_or("")
            }
            Fate::Dead {
                died_at, reason, ..
            } => {
                out.push_str(r#"<span class="badge dead">dead</span> "#);
                time(out, Some(*died_at), now);
                reason
            }
        };
        let _ = write!(
            out,
            r#"</td><td class="why" title="{e}">{}</td><td>"#,
            esc(&clip(error, 240)),
            e = esc(&clip(error, TITLE_CHARS))
        );
        command(out, &replay.event(&d.event_id));
        out.push_str("</td></tr>");
    }
    out.push_str("</tbody></table>");
    if total > fates.len() {
        let _ = write!(
            out,
            r#"<p class="note">The first {} of {} are listed; <code>pagehook deliveries</code> lists all.</p>"#,
            count(fates.len()),
            count(total)
        );
    }
}

pub(super) fn render(report: &DeliveriesPage, replay: &Replay, now: DateTime<Utc>) -> String {
    let rows = report.pending.len() + report.dead.len();
    let mut out = String::with_capacity(4096 + rows * 800);
    out.push_str("<h1>Deliveries</h1>");
    let _ = write!(
        out,
        r#"<h2 id="pending">In the outbox <span class="count">{}</span></h2>"#,
        count(report.pending_total)
    );
    if report.pending.is_empty() {
        out.push_str(
            r#"<p class="empty">Nothing waits: every event has reached its webhooks.</p>"#,
        );
    } else {
        table(&mut out, &report.pending, report.pending_total, replay, now);
    }
    let _ = write!(
        out,
        r#"<h2 id="dead">Dead letters <span class="count">{}</span></h2>"#,
        count(report.dead_total)
    );
    if report.dead.is_empty() {
        out.push_str(r#"<p class="empty">No dead letters.</p>"#);
    } else {
        out.push_str(r#"<p>These will not be tried again until replayed. All of them at once: "#);
        command(&mut out, &replay.dead());
        out.push_str("</p>");
        table(&mut out, &report.dead, report.dead_total, replay, now);
    }
    if !report.failing.is_empty() {
        out.push_str(r#"<h2>Endpoints that answered 410 Gone</h2><ul class="gone">"#);
        for (webhook, failure) in &report.failing {
            let _ = write!(out, "<li><b>{}</b> since ", esc(webhook));
            time(&mut out, Some(failure.since), now);
            let _ = write!(out, ": {}</li>", esc(&clip(&failure.reason, TITLE_CHARS)));
        }
        out.push_str("</ul>");
    }
    if report.quarantined > 0 {
        let _ = write!(
            out,
            r#"<p class="error">{} outbox entries could not be read and were set aside.</p>"#,
            count(report.quarantined)
        );
    }
    page("Deliveries", Section::Deliveries, now, &out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_replay_command_names_the_config_and_shard_it_needs() {
        let plain = Replay::new(Path::new("watchers.toml"), None);
        assert_eq!(plain.event("evt_1"), "pagehook replay evt_1");
        let other = Replay::new(Path::new("/etc/page hook/w.toml"), Some(2));
        assert_eq!(
            other.event("evt_1"),
            "pagehook -c '/etc/page hook/w.toml' --shard 2 replay evt_1"
        );
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }
}
