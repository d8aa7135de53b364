//! Each numeric or price field's recorded values as series of numbers: what the dashboard
//! charts and `pagehook history` draws as a sparkline.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::store::HistoryEntry;

/// One recorded value of a field, as read for a chart.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Point {
    pub(crate) at: DateTime<Utc>,
    pub(crate) value: f64,
    /// The value as recorded ("19.99"), for labels: no float noise.
    pub(crate) text: String,
}

/// One field's points in one unit (a currency, or none), oldest first.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Series {
    pub(crate) field: String,
    pub(crate) currency: Option<String>,
    pub(crate) points: Vec<Point>,
}

/// What could not be charted, for the page to say.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Skipped {
    /// Entries per field whose value was not a number (text, a list, missing).
    pub(crate) not_numbers: BTreeMap<String, usize>,
}

/// A number, or a price's amount and currency; None for anything else.
fn number(value: &Value) -> Option<(f64, String, Option<String>)> {
    match value {
        Value::Number(n) => Some((n.as_f64()?, n.to_string(), None)),
        Value::String(s) => {
            let trimmed = s.trim();
            let plain = !trimmed.is_empty()
                && trimmed
                    .trim_start_matches('-')
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '.')
                && trimmed.matches('.').count() <= 1;
            plain
                .then(|| trimmed.parse::<f64>().ok())
                .flatten()
                .filter(|v| v.is_finite())
                .map(|v| (v, trimmed.to_owned(), None))
        }
        Value::Object(price) => {
            let amount = price.get("amount")?.as_str()?;
            let value = amount.parse::<f64>().ok().filter(|v| v.is_finite())?;
            let currency = price
                .get("currency")
                .and_then(Value::as_str)
                .map(str::to_owned);
            Some((value, amount.to_owned(), currency))
        }
        _ => None,
    }
}

/// The charts of `history` (newest first, as the store gives it): one series per field and
/// currency, the latest currency first. A field that never held a number has no chart and
/// is not counted as skipped; one that sometimes did has its other entries counted.
pub(crate) fn series(history: &[HistoryEntry]) -> (Vec<Series>, Skipped) {
    let mut by_unit: BTreeMap<(String, Option<String>), Series> = BTreeMap::new();
    let mut latest_unit: BTreeMap<String, (DateTime<Utc>, Option<String>)> = BTreeMap::new();
    let mut not_numbers: BTreeMap<String, usize> = BTreeMap::new();
    for entry in history.iter().rev() {
        for (field, value) in &entry.values {
            match number(value) {
                Some((value, text, currency)) => {
                    latest_unit.insert(field.clone(), (entry.checked_at, currency.clone()));
                    by_unit
                        .entry((field.clone(), currency.clone()))
                        .or_insert_with(|| Series {
                            field: field.clone(),
                            currency,
                            points: Vec::new(),
                        })
                        .points
                        .push(Point {
                            at: entry.checked_at,
                            value,
                            text,
                        });
                }
                None => *not_numbers.entry(field.clone()).or_default() += 1,
            }
        }
    }
    not_numbers.retain(|field, _| latest_unit.contains_key(field));
    let mut all: Vec<Series> = by_unit.into_values().collect();
    // A field's current currency first; the rest by when they were last seen.
    all.sort_by(|a, b| {
        let last = |s: &Series| s.points.last().map(|p| p.at);
        a.field.cmp(&b.field).then_with(|| {
            let current =
                |s: &Series| latest_unit.get(&s.field).map(|(_, c)| c) == Some(&s.currency);
            current(b)
                .cmp(&current(a))
                .then_with(|| last(b).cmp(&last(a)))
        })
    });
    (all, Skipped { not_numbers })
}

/// Entries of history as tests write them.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub(crate) fn entry(at: &str, values: Value) -> HistoryEntry {
        HistoryEntry {
            checked_at: at.parse().unwrap(),
            kind: "changed".into(),
            changed: vec![],
            event_id: None,
            values: serde_json::from_value(values).unwrap(),
        }
    }

    /// A price as the price field records it.
    pub(crate) fn price(amount: &str, currency: &str) -> Value {
        serde_json::json!({"amount": amount, "currency": currency, "raw": amount})
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{entry, price};
    use super::*;
    use serde_json::json;

    #[test]
    fn a_currency_change_splits_the_series_and_text_values_are_counted_as_skipped() {
        // Newest first, as the store gives it.
        let history = vec![
            entry(
                "2026-12-04T00:00:00Z",
                json!({"price": price("21.00", "USD"), "stock": "7"}),
            ),
            entry(
                "2026-12-03T00:00:00Z",
                json!({"price": price("20.00", "USD"), "stock": "none"}),
            ),
            entry(
                "2026-12-02T00:00:00Z",
                json!({"price": price("18.00", "EUR"), "stock": 5}),
            ),
            entry(
                "2026-12-01T00:00:00Z",
                json!({"price": price("17.50", "EUR"), "title": "Widget"}),
            ),
        ];
        let (all, skipped) = series(&history);
        let shown: Vec<(&str, Option<&str>, Vec<&str>)> = all
            .iter()
            .map(|s| {
                (
                    s.field.as_str(),
                    s.currency.as_deref(),
                    s.points.iter().map(|p| p.text.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                ("price", Some("USD"), vec!["20.00", "21.00"]),
                ("price", Some("EUR"), vec!["17.50", "18.00"]),
                ("stock", None, vec!["5", "7"]),
            ]
        );
        assert_eq!(skipped.not_numbers, [("stock".to_owned(), 1)].into());
    }
}
