//! `/watchers/NAME`: one watcher's status, a chart of each numeric field, its recorded
//! changes, and what became of the events they sent.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::chart::{self, Range};
use super::deliveries::{Replay, fate_cells};
use super::html::{Section, TITLE_CHARS, clip, count, esc, page, time, values_list};
use crate::ops::{Outcome, WatcherView};

/// Entries read for the charts and the table; a longer history is read no further, and the
/// page says how much it left out.
pub(super) const HISTORY_READ: usize = 2_000;
/// Rows of the table of changes.
const TABLE_ROWS: usize = crate::ops::CHANGES_LISTED;

pub(super) fn parse_range(query: Option<&str>) -> Range {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "range")
        .and_then(|(_, v)| Range::parse(&v))
        .unwrap_or(Range::All)
}

fn status(out: &mut String, view: &WatcherView, now: DateTime<Utc>) {
    let Some(w) = &view.status else {
        out.push_str(r#"<p class="note">This watcher is no longer in the config; the store keeps its history.</p>"#);
        return;
    };
    let outcome = w.outcome();
    let _ = write!(
        out,
        r#"<p class="target"><a href="{u}" rel="noreferrer noopener" target="_blank">{u}</a></p><section class="cards" aria-label="Status"><div class="card {o}"><span class="n"><span class="badge {o}" id="outcome">{o}</span></span><span class="label">last check "#,
        u = esc(&w.url),
        o = outcome.as_str()
    );
    time(out, w.last_check, now);
    out.push_str(r#"</span></div><div class="card"><span class="n">"#);
    time(out, w.last_success, now);
    out.push_str(
        r#"</span><span class="label">last success</span></div><div class="card"><span class="n">"#,
    );
    time(out, Some(w.next_run), now);
    let _ = write!(
        out,
        r#"</span><span class="label">next run</span></div><div class="card{hot}"><span class="n">{}</span><span class="label">consecutive failures</span></div><div class="card"><span class="n">{}</span><span class="label">queued deliveries</span></div></section>"#,
        w.consecutive_failures,
        w.pending_deliveries,
        hot = if w.consecutive_failures > 0 {
            " hot"
        } else {
            ""
        },
    );
    if matches!(outcome, Outcome::Failing | Outcome::Blocked) {
        let reason = w.last_reason.map(|r| r.to_string()).unwrap_or_default();
        let _ = write!(
            out,
            r#"<p class="error"><span class="reason">{}</span> {}</p>"#,
            esc(&reason),
            esc(&clip(w.last_error.as_deref().unwrap_or(""), TITLE_CHARS))
        );
    }
    if let Some(values) = &w.values {
        out.push_str(r#"<h2>Last values</h2>"#);
        values_list(out, values, &[]);
    }
}

fn ranges(out: &mut String, name: &str, shown: Range) {
    out.push_str(r#"<nav class="ranges" aria-label="Time range">"#);
    for range in Range::ALL {
        let current = if range == shown {
            r#" aria-current="true""#
        } else {
            ""
        };
        let _ = write!(
            out,
            r#"<a href="/watchers/{}?range={w}"{current}>{w}</a>"#,
            esc(name),
            w = range.word()
        );
    }
    out.push_str("</nav>");
}

fn charts(out: &mut String, view: &WatcherView, range: Range, now: DateTime<Utc>) {
    let (all, skipped) = crate::ops::series(&view.history);
    if all.is_empty() {
        return;
    }
    out.push_str(r#"<h2>History</h2>"#);
    ranges(out, &view.name, range);
    for series in &all {
        let heading = match &series.currency {
            Some(code) => format!("{} ({code})", series.field),
            None => series.field.clone(),
        };
        let _ = write!(
            out,
            r#"<figure class="chart"><figcaption>{}</figcaption>"#,
            esc(&heading)
        );
        match chart::svg(series, range, now) {
            Ok(svg) => out.push_str(&svg),
            Err(why) => {
                let _ = write!(out, r#"<p class="muted">{}</p>"#, why.says());
            }
        }
        out.push_str("</figure>");
    }
    let mut fields: Vec<&str> = all.iter().map(|s| s.field.as_str()).collect();
    fields.dedup();
    for field in fields {
        let units: Vec<&str> = all
            .iter()
            .filter(|s| s.field == field)
            .filter_map(|s| s.currency.as_deref())
            .collect();
        if units.len() > 1 {
            let _ = write!(
                out,
                r#"<p class="note">The currency of <b>{}</b> changed ({}); each currency has a chart of its own, newest first.</p>"#,
                esc(field),
                esc(&units.join(", "))
            );
        }
    }
    for (field, n) in &skipped.not_numbers {
        let _ = write!(
            out,
            r#"<p class="note">{} of <b>{}</b> were not numbers and are not on the chart.</p>"#,
            if *n == 1 {
                "1 entry".to_owned()
            } else {
                format!("{} entries", count(*n))
            },
            esc(field)
        );
    }
}

fn changes(out: &mut String, view: &WatcherView, replay: &Replay, now: DateTime<Utc>) {
    out.push_str(r#"<h2>Recorded changes</h2>"#);
    if view.history.is_empty() {
        out.push_str(
            r#"<p class="empty">Nothing recorded yet: the first check records a baseline.</p>"#,
        );
        return;
    }
    let fates = view.fates_by_event();
    out.push_str(r#"<table class="changes" id="changes"><thead><tr><th>Checked</th><th>Kind</th><th>Values</th><th>Event</th><th>Delivery</th></tr></thead><tbody>"#);
    for entry in view.history.iter().take(TABLE_ROWS) {
        let _ = write!(
            out,
            r#"<tr data-at="{}"><td>"#,
            super::html::rfc3339(entry.checked_at)
        );
        time(out, Some(entry.checked_at), now);
        let _ = write!(
            out,
            r#"</td><td><span class="kind {k}">{k}</span></td><td>"#,
            k = esc(&entry.kind)
        );
        values_list(out, &entry.values, &entry.changed);
        out.push_str("</td>");
        match &entry.event_id {
            Some(id) => {
                let _ = write!(out, r#"<td><code class="id">{}</code></td><td>"#, esc(id));
                match fates.get(id.as_str()) {
                    Some(undone) => {
                        for fate in undone {
                            fate_cells(out, fate, replay, now);
                        }
                    }
                    None => out.push_str(r#"<span class="badge ok">delivered</span>"#),
                }
                out.push_str("</td>");
            }
            None => out.push_str(r#"<td class="muted">none</td><td></td>"#),
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    let read = view.history.len();
    if read > TABLE_ROWS || view.history_total > read {
        let _ = write!(
            out,
            r#"<p class="note">The newest {} of {} entries are listed{}. <code>pagehook history {} --limit N</code> lists more.</p>"#,
            count(read.min(TABLE_ROWS)),
            count(view.history_total),
            if view.history_total > read {
                format!("; the charts show the newest {}", count(read))
            } else {
                String::new()
            },
            esc(&view.name),
        );
    }
}

pub(super) fn render(
    view: &WatcherView,
    range: Range,
    replay: &Replay,
    now: DateTime<Utc>,
) -> String {
    let mut out = String::with_capacity(16_384 + view.history.len().min(TABLE_ROWS) * 600);
    let _ = write!(
        out,
        r#"<p class="crumbs"><a href="/">Watchers</a> /</p><h1>{}</h1>"#,
        esc(&view.name)
    );
    status(&mut out, view, now);
    charts(&mut out, view, range, now);
    changes(&mut out, view, replay, now);
    if !view.fates.is_empty() {
        out.push_str(r#"<h2>Deliveries not done</h2>"#);
        super::deliveries::table(&mut out, &view.fates, view.fates_total, replay, now);
    }
    page(&view.name, Section::Watchers, now, &out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::HistoryEntry;
    use chrono::TimeDelta;
    use serde_json::json;

    fn view(entries: usize, total: usize, now: DateTime<Utc>) -> WatcherView {
        let history = (0..entries)
            .map(|i| HistoryEntry {
                checked_at: now - TimeDelta::minutes(10 * i as i64),
                kind: "changed".into(),
                changed: vec!["price".into()],
                event_id: Some(format!("evt_{i}")),
                values: [
                    (
                        "price".to_owned(),
                        json!({"amount": format!("{}.99", 10 + i % 7), "currency": "USD"}),
                    ),
                    ("title".to_owned(), json!("<script>alert(1)</script>")),
                ]
                .into(),
            })
            .collect();
        WatcherView {
            name: "w".into(),
            status: None,
            history,
            history_total: total,
            fates: Vec::new(),
            fates_total: 0,
        }
    }

    #[test]
    fn a_long_history_renders_bounded_and_says_what_it_left_out() {
        let now: DateTime<Utc> = "2026-12-06T12:00:00Z".parse().unwrap();
        let page = render(
            &view(HISTORY_READ, 100_000, now),
            Range::All,
            &Replay::default(),
            now,
        );
        assert!(page.len() < 1 << 20, "{} bytes", page.len());
        assert_eq!(
            page.matches("<circle").count(),
            1_000,
            "the newest changes marked"
        );
        assert!(page.contains("The newest 1000 of 2000 changes in this range are marked."));
        assert!(page.contains(
            "The newest 200 of 100,000 entries are listed; the charts show the newest 2,000."
        ));
        assert_eq!(page.matches("<tr data-at=").count(), TABLE_ROWS);
        assert!(!page.contains("<script>alert"), "values are escaped");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("This watcher is no longer in the config"));
    }
}
