//! Writing HTML safely: every value from a page, a config or the store goes through [`esc`],
//! and the pieces every page shares (its frame, times, counts) are written here once.

use std::fmt::{self, Display, Write as _};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

/// Text escaped for HTML content and for quoted attribute values alike.
pub(super) struct Esc<'a>(pub(super) &'a str);

pub(super) fn esc(text: &str) -> Esc<'_> {
    Esc(text)
}

impl Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..at])?;
            f.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

/// Characters of one value shown in a table cell; more of it is in its title.
pub(super) const CELL_CHARS: usize = 80;
/// Characters of a value or an error in a title: a page's text can be megabytes, and the
/// page that shows it must stay small.
pub(super) const TITLE_CHARS: usize = 1_000;

/// `text` cut to `max` characters, with an ellipsis when cut.
pub(super) fn clip(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]).into(),
        None => text.into(),
    }
}

/// A recorded value as a person reads it: a price as its currency and amount, a string as it
/// is, anything else as JSON.
pub(super) fn value_text(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::String(s) => s.clone(),
        Value::Object(price) if price.contains_key("amount") => {
            let amount = price.get("amount").and_then(Value::as_str).unwrap_or("?");
            match price.get("currency").and_then(Value::as_str) {
                Some(code) => format!("{code} {amount}"),
                None => amount.to_owned(),
            }
        }
        other => other.to_string(),
    }
}

/// A map of values as `name value` pairs, each clipped with the whole value on hover; the
/// names in `changed` are marked.
pub(super) fn values_list(out: &mut String, values: &crate::extract::Values, changed: &[String]) {
    out.push_str(r#"<dl class="values">"#);
    for (name, value) in values {
        let class = if changed.contains(name) {
            r#" class="changed""#
        } else {
            ""
        };
        let text = value_text(value);
        let _ = write!(
            out,
            r#"<div{class} data-field="{n}"><dt>{n}</dt><dd title="{t}">{c}</dd></div>"#,
            n = esc(name),
            t = esc(&clip(&text, TITLE_CHARS)),
            c = esc(&clip(&text, CELL_CHARS)),
        );
    }
    out.push_str("</dl>");
}

/// A query string's value, percent-encoded.
pub(super) fn query_value(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

pub(super) fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// "3 min ago" or "in 2 h", from `now`.
pub(super) fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let delta = at - now;
    let span = delta.abs();
    let amount = if span < TimeDelta::seconds(45) {
        return if delta.num_seconds().abs() < 2 {
            "now".to_owned()
        } else if delta < TimeDelta::zero() {
            format!("{} s ago", span.num_seconds())
        } else {
            format!("in {} s", span.num_seconds())
        };
    } else if span < TimeDelta::minutes(90) {
        format!("{} min", (span.num_seconds() + 30) / 60)
    } else if span < TimeDelta::hours(36) {
        format!("{} h", (span.num_minutes() + 30) / 60)
    } else {
        format!("{} d", (span.num_hours() + 12) / 24)
    };
    if delta < TimeDelta::zero() {
        format!("{amount} ago")
    } else {
        format!("in {amount}")
    }
}

/// A `<time>` that reads relative to `now`, with the exact time on hover.
pub(super) fn time(out: &mut String, at: Option<DateTime<Utc>>, now: DateTime<Utc>) {
    match at {
        Some(at) => {
            let exact = rfc3339(at);
            let _ = write!(
                out,
                r#"<time datetime="{exact}" title="{exact}">{}</time>"#,
                relative(at, now)
            );
        }
        None => out.push_str(r#"<span class="muted">never</span>"#),
    }
}

/// 12,345
pub(super) fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Which part of the dashboard a page is, for the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Watchers,
    Deliveries,
}

/// The frame every page shares, around `body`.
pub(super) fn page(title: &str, section: Section, now: DateTime<Utc>, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 1024);
    let current = |s: Section| {
        if s == section {
            r#" aria-current="page""#
        } else {
            ""
        }
    };
    let _ = write!(
        out,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · pagehook</title>
<link rel="icon" href="/assets/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/assets/dashboard.css">
<script src="/assets/dashboard.js" defer></script>
</head><body>
<header class="top"><a class="brand" href="/"><img src="/assets/icon.svg" alt="" width="22" height="22">pagehook</a>
<nav><a href="/"{w}>Watchers</a><a href="/deliveries"{d}>Deliveries</a></nav>
<span class="asof">as of <time datetime="{at}">{shown}</time></span></header>
<main>
{body}</main>
<footer>read-only · the same numbers as <code>pagehook status --json</code> · <a href="/metrics">/metrics</a> · <a href="/healthz">/healthz</a></footer>
</body></html>
"#,
        title = esc(title),
        w = current(Section::Watchers),
        d = current(Section::Deliveries),
        at = rfc3339(now),
        shown = now.format("%Y-%m-%d %H:%M:%S UTC"),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_values_is_escaped_for_text_and_attributes() {
        let hostile = r#"<script>alert("x")</script>&'"#;
        assert_eq!(
            esc(hostile).to_string(),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
        assert_eq!(esc("plain").to_string(), "plain");
    }

    #[test]
    fn clip_cuts_on_characters() {
        assert_eq!(clip("ééééé", 3), "ééé…");
        assert_eq!(clip("abc", 3), "abc");
    }

    #[test]
    fn times_read_relative_to_now() {
        let now: DateTime<Utc> = "2026-12-06T12:00:00Z".parse().unwrap();
        let at = |s: i64| now + TimeDelta::seconds(s);
        assert_eq!(relative(at(0), now), "now");
        assert_eq!(relative(at(-30), now), "30 s ago");
        assert_eq!(relative(at(-600), now), "10 min ago");
        assert_eq!(relative(at(7200), now), "in 2 h");
        assert_eq!(relative(at(-3 * 86400), now), "3 d ago");
    }

    #[test]
    fn counts_group_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(100_000), "100,000");
        assert_eq!(count(1_234_567), "1,234,567");
    }
}
