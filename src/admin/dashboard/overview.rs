//! `/`: the counts, then every watcher a filter admits, a page at a time.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::html::{
    Section, TITLE_CHARS, clip, count, esc, page, query_value, relative, time, values_list,
};
use crate::ops::{Filter, Outcome, Overview, Summary, WatcherStatus};

/// Rows on one page of the overview.
pub(super) const PER_PAGE: usize = 100;

/// The overview's query: `?q=TEXT&outcome=WORD&page=N`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Query {
    pub(super) filter: Filter,
    /// From 1.
    pub(super) page: usize,
}

impl Query {
    pub(super) fn parse(query: Option<&str>) -> Query {
        let mut parsed = Query {
            page: 1,
            ..Query::default()
        };
        for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*key {
                "q" => parsed.filter.text = value.trim().to_owned(),
                "outcome" => parsed.filter.outcome = Outcome::parse(&value),
                // Far past any last page, and far from overflowing an offset.
                "page" => parsed.page = value.parse().unwrap_or(1).clamp(1, 1 << 32),
                _ => {}
            }
        }
        parsed
    }

    pub(super) fn offset(&self) -> usize {
        (self.page - 1).saturating_mul(PER_PAGE)
    }

    /// This query at another page, as a link.
    fn link(&self, page: usize) -> String {
        let mut link = format!("/?page={page}");
        if !self.filter.text.is_empty() {
            let _ = write!(link, "&q={}", query_value(&self.filter.text));
        }
        if let Some(outcome) = self.filter.outcome {
            let _ = write!(link, "&outcome={}", outcome.as_str());
        }
        link
    }
}

fn cards(out: &mut String, summary: &Summary, now: DateTime<Utc>) {
    out.push_str(r#"<section class="cards" aria-label="Summary">"#);
    let _ = write!(
        out,
        r#"<a class="card" href="/"><span class="n" id="count-watchers">{}</span><span class="label">watchers</span></a>"#,
        count(summary.watchers)
    );
    for outcome in Outcome::ALL {
        let label = match outcome {
            Outcome::Never => "never checked",
            other => other.as_str(),
        };
        let n = summary.count(outcome);
        let hot = if n > 0 && matches!(outcome, Outcome::Failing | Outcome::Blocked) {
            " hot"
        } else {
            ""
        };
        let _ = write!(
            out,
            r#"<a class="card {word}{hot}" href="/?outcome={word}"><span class="n" id="count-{word}">{}</span><span class="label">{label}</span></a>"#,
            count(n),
            word = outcome.as_str(),
        );
    }
    let oldest = match summary.oldest_pending {
        Some(at) => format!("oldest queued {}", relative(at, now)),
        None => "nothing waiting".to_owned(),
    };
    let _ = write!(
        out,
        r#"<a class="card outbox" href="/deliveries"><span class="n" id="count-pending">{}</span><span class="label">in the outbox</span><span class="sub">{oldest}</span></a>"#,
        count(summary.pending_deliveries)
    );
    let dead = if summary.dead_letters > 0 { " hot" } else { "" };
    let _ = write!(
        out,
        r#"<a class="card dead{dead}" href="/deliveries#dead"><span class="n" id="count-dead">{}</span><span class="label">dead letters</span></a>"#,
        count(summary.dead_letters)
    );
    if summary.overdue > 0 {
        let _ = write!(
            out,
            r#"<span class="card overdue hot"><span class="n" id="count-overdue">{}</span><span class="label">overdue</span></span>"#,
            count(summary.overdue)
        );
    }
    out.push_str("</section>");
}

fn filter_form(out: &mut String, query: &Query) {
    let _ = write!(
        out,
        r#"<form class="filter" method="get" action="/" role="search"><input type="search" id="filter-text" name="q" value="{}" placeholder="Filter by name or URL" autocomplete="off" aria-label="Filter by name or URL"><select name="outcome" id="filter-outcome" aria-label="Outcome"><option value="">any outcome</option>"#,
        esc(&query.filter.text)
    );
    for outcome in Outcome::ALL {
        let selected = if query.filter.outcome == Some(outcome) {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            out,
            r#"<option value="{w}"{selected}>{w}</option>"#,
            w = outcome.as_str()
        );
    }
    out.push_str(r#"</select><button type="submit">Filter</button>"#);
    if query.filter != Filter::default() {
        out.push_str(r#"<a class="clear" href="/">clear</a>"#);
    }
    out.push_str(r#"<span class="shown" id="filter-shown" aria-live="polite"></span></form>"#);
}

fn row(out: &mut String, w: &WatcherStatus, now: DateTime<Utc>) {
    let outcome = w.outcome();
    let _ = write!(
        out,
        r#"<tr data-name="{name}" data-url="{url}" data-outcome="{o}"><td class="name"><a href="/watchers/{name}">{name}</a><div class="url" title="{url}">{url_shown}</div></td><td><span class="badge {o}">{o}</span>"#,
        name = esc(&w.name),
        url = esc(&w.url),
        url_shown = esc(&clip(&w.url, 60)),
        o = outcome.as_str(),
    );
    if matches!(outcome, Outcome::Failing | Outcome::Blocked) {
        let reason = w.last_reason.map(|r| r.to_string()).unwrap_or_default();
        let error = w.last_error.as_deref().unwrap_or("");
        let _ = write!(
            out,
            r#" <span class="reason">{}</span><div class="why" title="{e}">{}</div>"#,
            esc(&reason),
            esc(&clip(error, 120)),
            e = esc(&clip(error, TITLE_CHARS)),
        );
    }
    out.push_str("</td><td>");
    time(out, w.last_check, now);
    out.push_str("</td><td>");
    match &w.values {
        Some(values) => values_list(out, values, &[]),
        None => out.push_str(r#"<span class="muted">none yet</span>"#),
    }
    out.push_str("</td><td>");
    time(out, Some(w.next_run), now);
    if w.overdue_since.is_some() {
        out.push_str(r#" <span class="badge overdue">overdue</span>"#);
    }
    let failures = if w.consecutive_failures > 0 {
        r#" class="num hot""#
    } else {
        r#" class="num""#
    };
    let _ = write!(
        out,
        r#"</td><td{failures}>{}</td><td class="num">{}</td></tr>"#,
        w.consecutive_failures, w.pending_deliveries
    );
}

fn pager(out: &mut String, query: &Query, overview: &Overview) {
    let first = overview.offset.saturating_add(1);
    let last = overview.offset.saturating_add(overview.rows.len());
    let pages = overview.matched.div_ceil(PER_PAGE).max(1);
    out.push_str(r#"<nav class="pager" aria-label="Pages">"#);
    if overview.rows.is_empty() {
        let _ = write!(out, "<span>no watcher on page {}</span>", query.page);
    } else {
        let _ = write!(
            out,
            "<span>{}–{} of {}</span>",
            count(first),
            count(last),
            count(overview.matched)
        );
    }
    if query.page > 1 {
        let _ = write!(
            out,
            r#"<a href="{}" rel="prev">‹ previous</a>"#,
            esc(&query.link((query.page - 1).min(pages)))
        );
    }
    if query.page < pages {
        let _ = write!(
            out,
            r#"<a href="{}" rel="next">next ›</a>"#,
            esc(&query.link(query.page + 1))
        );
    }
    let _ = write!(
        out,
        "<span class=\"muted\">page {} of {pages}</span></nav>",
        query.page
    );
}

pub(super) fn render(overview: &Overview, query: &Query, now: DateTime<Utc>) -> String {
    let mut out = String::with_capacity(8192 + overview.rows.len() * 700);
    out.push_str("<h1>Watchers</h1>");
    cards(&mut out, &overview.summary, now);
    filter_form(&mut out, query);
    if overview.summary.watchers == 0 {
        out.push_str(r#"<p class="empty">No watchers are configured. Add a <code>[[watchers]]</code> table to the config and reload.</p>"#);
        return page("Watchers", Section::Watchers, now, &out);
    }
    out.push_str(r#"<table class="watchers" id="watchers"><thead><tr><th>Watcher</th><th>Outcome</th><th>Last check</th><th>Last values</th><th>Next run</th><th class="num">Failures</th><th class="num">Queued</th></tr></thead><tbody>"#);
    for w in &overview.rows {
        row(&mut out, w, now);
    }
    out.push_str("</tbody></table>");
    if overview.rows.is_empty() {
        out.push_str(if overview.matched == 0 {
            r#"<p class="empty">No watcher matches this filter.</p>"#
        } else {
            r#"<p class="empty">This page is past the last one.</p>"#
        });
    }
    pager(&mut out, query, overview);
    page("Watchers", Section::Watchers, now, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_reads_filter_and_page_and_ignores_the_rest() {
        let q = Query::parse(Some("q=Acme+W%C3%A9&outcome=blocked&page=3&x=1"));
        assert_eq!(q.filter.text, "Acme Wé");
        assert_eq!(q.filter.outcome, Some(Outcome::Blocked));
        assert_eq!(q.page, 3);
        assert_eq!(q.offset(), 200);
        assert_eq!(q.link(4), "/?page=4&q=Acme+W%C3%A9&outcome=blocked");
        let bad = Query::parse(Some("page=0&outcome=nonsense"));
        assert_eq!((bad.page, bad.filter.outcome), (1, None));
        let far = Query::parse(Some("page=184467440737095518"));
        assert!(far.offset() > 1 << 32, "past any page, without overflow");
        assert_eq!(Query::parse(None).page, 1);
    }
}
