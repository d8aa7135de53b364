//! Old values vs new values -> the changes worth an event, and the event itself. Pure.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::extract::Values;

pub const WATCH_CHANGED: &str = "watch.changed";

/// One field's move.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub old: Value,
    pub new: Value,
}

pub type Changes = BTreeMap<String, Change>;

/// What a successful check found, compared with the last one.
#[derive(Debug, Clone, PartialEq)]
pub enum Diff {
    /// The first success: recorded, announced to nobody.
    Baseline,
    Unchanged,
    Changed(Changes),
}

/// Compare a watcher's last recorded values with fresh ones. A field that the last snapshot
/// does not have (it was just added to the config) is baselined silently rather than reported
/// as a change from nothing; a field that disappeared from the config is simply no longer
/// tracked.
pub fn diff(old: Option<&Values>, new: &Values) -> Diff {
    let Some(old) = old else {
        return Diff::Baseline;
    };
    let changes: Changes = new
        .iter()
        .filter_map(|(name, new)| {
            let old = old.get(name)?;
            (old != new).then(|| {
                let change = Change {
                    old: old.clone(),
                    new: new.clone(),
                };
                (name.clone(), change)
            })
        })
        .collect();
    if changes.is_empty() {
        Diff::Unchanged
    } else {
        Diff::Changed(changes)
    }
}

/// The webhook body, exactly as DESIGN.md fixes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(skip)]
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(with = "rfc3339")]
    pub timestamp: DateTime<Utc>,
    pub data: EventData,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventData {
    pub watcher: String,
    pub url: Url,
    pub seq: u64,
    #[serde(with = "rfc3339")]
    pub checked_at: DateTime<Utc>,
    pub changes: Changes,
    pub values: Values,
}

impl Event {
    /// A `watch.changed` event with a fresh, time-ordered id.
    pub fn changed(
        watcher: &str,
        url: &Url,
        seq: u64,
        checked_at: DateTime<Utc>,
        changes: Changes,
        values: Values,
    ) -> Self {
        Event {
            id: new_event_id(),
            kind: WATCH_CHANGED.to_owned(),
            timestamp: checked_at,
            data: EventData {
                watcher: watcher.to_owned(),
                url: url.clone(),
                seq,
                checked_at,
                changes,
                values,
            },
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an event always serialises")
    }
}

/// `evt_` + a UUIDv7: unique without coordination, and sorts by creation time.
pub(crate) fn new_event_id() -> String {
    format!("evt_{}", uuid::Uuid::now_v7().simple())
}

/// Whole seconds with `Z`, as in DESIGN.md's example payload.
mod rfc3339 {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn values(pairs: &[(&str, Value)]) -> Values {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn first_success_is_a_baseline() {
        assert_eq!(
            diff(None, &values(&[("price", json!("5"))])),
            Diff::Baseline
        );
    }

    #[test]
    fn equal_values_are_unchanged() {
        let v = values(&[("price", json!("5")), ("title", json!("Widget"))]);
        assert_eq!(diff(Some(&v), &v.clone()), Diff::Unchanged);
    }

    #[test]
    fn only_changed_fields_are_reported() {
        let old = values(&[("price", json!("5")), ("title", json!("Widget"))]);
        let new = values(&[("price", json!("4")), ("title", json!("Widget"))]);
        let Diff::Changed(changes) = diff(Some(&old), &new) else {
            panic!("expected a change");
        };
        assert_eq!(changes.len(), 1);
        assert_eq!(
            changes["price"],
            Change {
                old: json!("5"),
                new: json!("4")
            }
        );
    }

    #[test]
    fn a_newly_added_field_is_baselined_not_reported() {
        let old = values(&[("price", json!("5"))]);
        let new = values(&[("price", json!("5")), ("stock", json!("In stock"))]);
        assert_eq!(diff(Some(&old), &new), Diff::Unchanged);
    }

    #[test]
    fn a_field_becoming_null_is_a_change() {
        let old = values(&[("badge", json!("Sale"))]);
        let new = values(&[("badge", Value::Null)]);
        assert!(matches!(diff(Some(&old), &new), Diff::Changed(_)));
    }

    #[test]
    fn event_payload_has_the_documented_shape() {
        let at = DateTime::parse_from_rfc3339("2026-11-27T06:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let url = Url::parse("https://shop.example.com/widget").unwrap();
        let changes: Changes = [(
            "price".to_string(),
            Change {
                old: json!("1299.99"),
                new: json!("1199.99"),
            },
        )]
        .into();
        let event = Event::changed(
            "acme-widget",
            &url,
            42,
            at,
            changes,
            values(&[("price", json!("1199.99"))]),
        );
        assert!(event.id.starts_with("evt_"));
        let body: Value = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(
            body,
            json!({
                "type": "watch.changed",
                "timestamp": "2026-11-27T06:00:00Z",
                "data": {
                    "watcher": "acme-widget",
                    "url": "https://shop.example.com/widget",
                    "seq": 42,
                    "checked_at": "2026-11-27T06:00:00Z",
                    "changes": {"price": {"old": "1299.99", "new": "1199.99"}},
                    "values": {"price": "1199.99"}
                }
            })
        );
    }
}
