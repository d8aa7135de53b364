//! Each numeric or price field's history as an SVG step chart, drawn on the server: a value
//! holds until the next recorded change, so a step line is the truth and a sloped one is not.

use std::fmt::Write as _;

use chrono::{DateTime, TimeDelta, Utc};

use super::html::{esc, rfc3339};
use crate::ops::{Point, Series};

/// Change points marked on one chart; past this the line alone is drawn, and the page says so.
const MARKED: usize = 1_000;
const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 30.0;

/// The span of time a chart covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Range {
    Day,
    Week,
    Month,
    Quarter,
    All,
}

impl Range {
    pub(super) const ALL: [Range; 5] = [
        Range::Day,
        Range::Week,
        Range::Month,
        Range::Quarter,
        Range::All,
    ];

    pub(super) fn word(self) -> &'static str {
        match self {
            Range::Day => "24h",
            Range::Week => "7d",
            Range::Month => "30d",
            Range::Quarter => "90d",
            Range::All => "all",
        }
    }

    pub(super) fn parse(word: &str) -> Option<Range> {
        Range::ALL.into_iter().find(|r| r.word() == word)
    }

    fn span(self) -> Option<TimeDelta> {
        match self {
            Range::Day => Some(TimeDelta::hours(24)),
            Range::Week => Some(TimeDelta::days(7)),
            Range::Month => Some(TimeDelta::days(30)),
            Range::Quarter => Some(TimeDelta::days(90)),
            Range::All => None,
        }
    }
}

/// The points a chart over `range` up to `now` draws: those inside it, led by the value that
/// held when it began (a step line starts at the range's left edge with that value).
/// Says too whether the first point is such a carried-in value rather than a change.
fn in_view(
    points: &[Point],
    range: Range,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, Vec<Point>, bool) {
    let Some(first) = points.first() else {
        return (now, Vec::new(), false);
    };
    let start = match range.span() {
        Some(span) => now - span,
        None => first.at,
    };
    let inside = points.partition_point(|p| p.at < start);
    let mut shown = Vec::with_capacity(points.len() - inside + 1);
    if inside > 0 {
        shown.push(Point {
            at: start,
            ..points[inside - 1].clone()
        });
    }
    shown.extend_from_slice(&points[inside..]);
    (start, shown, inside > 0)
}

/// Round tick values covering `low..high`, about `wanted` of them.
fn ticks(low: f64, high: f64, wanted: usize) -> (Vec<f64>, usize) {
    let raw = (high - low) / wanted as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    // As many decimals as the step has: 0.5 needs one, 0.25 two, 0.000001 six.
    let decimals = (0..=12)
        .find(|d| {
            let scaled = step * 10f64.powi(*d as i32);
            scaled.abs() >= 0.5 && (scaled - scaled.round()).abs() < 1e-6 * scaled.abs()
        })
        .unwrap_or(12);
    // Counted, not stepped: near 1e17 a small step added to a tick leaves it where it was.
    let first = (low / step).ceil();
    let out = (0..=wanted * 2 + 2)
        .map(|i| (first + i as f64) * step)
        .take_while(|tick| *tick <= high + step * 1e-9)
        .filter(|tick| tick.is_finite())
        .collect();
    (out, decimals)
}

/// A tick's value with `decimals` places, or in scientific notation past what a margin holds.
fn tick_text(value: f64, decimals: usize) -> String {
    if value.abs() >= 1e15 {
        format!("{value:.3e}")
    } else {
        format!("{value:.decimals$}")
    }
}

/// "USD 19.99" or "19.99".
fn label(text: &str, currency: Option<&str>) -> String {
    match currency {
        Some(code) => format!("{code} {text}"),
        None => text.to_owned(),
    }
}

/// The time axis's label format for a span.
fn time_format(span: TimeDelta) -> &'static str {
    if span <= TimeDelta::minutes(10) {
        "%H:%M:%S"
    } else if span <= TimeDelta::hours(36) {
        "%H:%M"
    } else if span <= TimeDelta::days(400) {
        "%b %d"
    } else {
        "%Y-%m"
    }
}

/// Why a series has no chart.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum NoChart {
    /// No point falls in the range or before it.
    Empty,
    /// Values near f64's limits: no scale fits them on one axis.
    Unscalable,
}

impl NoChart {
    pub(super) fn says(&self) -> &'static str {
        match self {
            NoChart::Empty => "no values in this range",
            NoChart::Unscalable => "its values are too far apart to draw on one axis",
        }
    }
}

/// The chart of `series` over `range` up to `now`, as an `<svg>` element with a note of what
/// it left out.
pub(super) fn svg(series: &Series, range: Range, now: DateTime<Utc>) -> Result<String, NoChart> {
    let (start, points, carried) = in_view(&series.points, range, now);
    if points.is_empty() {
        return Err(NoChart::Empty);
    }
    let end = now.max(points.last().map_or(now, |p| p.at));
    // A history of seconds is drawn over a minute that ends now, not one that runs on past it.
    let span = (end - start).max(TimeDelta::minutes(1));
    let start = end - span;
    let (mut low, mut high) = points.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.value), hi.max(p.value))
    });
    // Values closer than a billionth of their size are one value: no axis could tell them apart.
    if high - low <= 1e-9 * high.abs().max(low.abs()).max(1.0) {
        let pad = (high.abs() * 0.05).max(1.0);
        low -= pad;
        high += pad;
    } else {
        let pad = (high - low) * 0.08;
        low -= pad;
        high += pad;
    }
    if !(high - low).is_finite() {
        return Err(NoChart::Unscalable);
    }
    let x = |at: DateTime<Utc>| {
        LEFT + (at - start).num_milliseconds() as f64 / span.num_milliseconds() as f64
            * (WIDTH - LEFT - RIGHT)
    };
    let y = |v: f64| TOP + (high - v) / (high - low) * (HEIGHT - TOP - BOTTOM);
    let currency = series.currency.as_deref();

    let mut out = String::with_capacity(256 + points.len() * 160);
    let title = match currency {
        Some(code) => format!("{} in {code}", series.field),
        None => series.field.clone(),
    };
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{t}" data-field="{f}" data-currency="{c}" data-range="{r}"><title>{t}</title>"#,
        t = esc(&title),
        f = esc(&series.field),
        c = esc(currency.unwrap_or("")),
        r = range.word(),
    );
    let (values, decimals) = ticks(low, high, 5);
    // Labels as precise as the recorded values: USD 12.00 beside USD 12.50, not USD 12.
    let recorded = points
        .iter()
        .map(|p| p.text.split_once('.').map_or(0, |(_, f)| f.len()))
        .max()
        .unwrap_or(0);
    let decimals = decimals.max(recorded.min(12));
    for v in values {
        let at = y(v);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{LEFT}" x2="{x2}" y1="{at:.1}" y2="{at:.1}"/><text class="ylabel" x="{lx}" y="{ty:.1}">{text}</text>"#,
            x2 = WIDTH - RIGHT,
            lx = LEFT - 8.0,
            ty = at + 4.0,
            text = esc(&label(&tick_text(v, decimals), currency)),
        );
    }
    let format = time_format(span);
    for i in 0..=4 {
        let at = start + span * i / 4;
        let anchor = match i {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let _ = write!(
            out,
            r#"<text class="xlabel" x="{:.1}" y="{}" text-anchor="{anchor}">{}</text>"#,
            x(at),
            HEIGHT - 8.0,
            at.format(format)
        );
    }
    let _ = write!(
        out,
        r#"<path class="line" d="M{:.1},{:.1}"#,
        x(points[0].at),
        y(points[0].value)
    );
    for pair in points.windows(2) {
        let _ = write!(out, " H{:.1} V{:.1}", x(pair[1].at), y(pair[1].value));
    }
    let _ = write!(out, r#" H{:.1}"/>"#, x(end));
    let changes = &points[usize::from(carried)..];
    for p in changes.iter().rev().take(MARKED).rev() {
        let _ = write!(
            out,
            r#"<circle class="point" cx="{:.1}" cy="{:.1}" r="3.5" data-at="{at}" data-value="{v}"><title>{at}: {text}</title></circle>"#,
            x(p.at),
            y(p.value),
            at = rfc3339(p.at),
            v = esc(&p.text),
            text = esc(&label(&p.text, currency)),
        );
    }
    out.push_str("</svg>");
    if changes.len() > MARKED {
        let _ = write!(
            out,
            r#"<p class="note">The newest {MARKED} of {} changes in this range are marked.</p>"#,
            changes.len()
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::series;
    use crate::ops::testing::{entry, price};
    use serde_json::json;

    #[test]
    fn the_chart_is_a_step_line_with_each_change_marked() {
        let history = vec![
            entry(
                "2026-12-03T00:00:00Z",
                json!({"price": price("25.00", "USD")}),
            ),
            entry(
                "2026-12-02T00:00:00Z",
                json!({"price": price("20.00", "USD")}),
            ),
        ];
        let (all, _) = series(&history);
        let now = "2026-12-04T00:00:00Z".parse().unwrap();
        let svg = svg(&all[0], Range::All, now).unwrap();
        assert_eq!(svg.matches("<circle").count(), 2, "{svg}");
        assert!(
            svg.contains(r#"data-at="2026-12-02T00:00:00Z" data-value="20.00""#),
            "{svg}"
        );
        assert!(svg.contains("USD 25.00"), "{svg}");
        let path = &svg[svg.find(r#"d="M"#).unwrap() + 3..];
        let path = &path[..path.find('"').unwrap()];
        assert_eq!(
            path.matches(" H").count(),
            2,
            "to the change, then to now: {path}"
        );
        assert_eq!(path.matches(" V").count(), 1, "{path}");
    }

    #[test]
    fn a_range_starts_with_the_value_that_held_then() {
        let history = vec![
            entry("2026-12-03T12:00:00Z", json!({"n": "3"})),
            entry("2026-11-01T00:00:00Z", json!({"n": "2"})),
        ];
        let (all, _) = series(&history);
        let now = "2026-12-04T00:00:00Z".parse().unwrap();
        let svg = svg(&all[0], Range::Day, now).unwrap();
        assert_eq!(
            svg.matches("<circle").count(),
            1,
            "only the change inside the range: {svg}"
        );
        assert!(svg.contains(r#"data-value="3""#));
        let empty = series(&[]).0;
        assert!(empty.is_empty());
    }

    #[test]
    fn ticks_are_round() {
        let (values, decimals) = ticks(18.3, 25.2, 4);
        assert_eq!(values, vec![20.0, 22.0, 24.0]);
        assert_eq!(decimals, 0);
        let (values, decimals) = ticks(0.1, 0.9, 4);
        assert_eq!(decimals, 1);
        assert!(values.len() >= 3);
        let (values, decimals) = ticks(0.0, 9.0, 4);
        assert_eq!((values[1], decimals), (2.5, 1));
        let (values, decimals) = ticks(0.00001229, 0.0000124, 5);
        let texts: Vec<String> = values.iter().map(|v| tick_text(*v, decimals)).collect();
        assert!(texts.windows(2).all(|w| w[0] != w[1]), "{texts:?}");
        assert_eq!(tick_text(2e300, 0), "2.000e300");
        for (low, high) in [(1e17, 1e17 + 30.0), (-1e308, 1e308), (0.0, f64::MAX)] {
            assert!(ticks(low, high, 5).0.len() <= 12, "{low}..{high}");
        }
        let extreme = vec![
            entry("2026-12-03T00:00:00Z", json!({"n": -1e308})),
            entry("2026-12-02T00:00:00Z", json!({"n": 1e308})),
        ];
        let now = "2026-12-04T00:00:00Z".parse().unwrap();
        assert_eq!(
            svg(&series(&extreme).0[0], Range::All, now),
            Err(NoChart::Unscalable)
        );
    }
}
