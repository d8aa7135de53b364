//! The events pagehook sends and their exact webhook bodies, as DESIGN.md fixes them:
//! `watch.changed`, `watch.failing` and `watch.recovered`. `diff` computes the changes and
//! `step` decides which events a check sends; this module says what each one says.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::json;

use crate::diff::Changes;
use crate::extract::Values;
use crate::reason::Reason;
use crate::redact::SensitiveUrl;

pub const WATCH_CHANGED: &str = "watch.changed";
pub const WATCH_FAILING: &str = "watch.failing";
pub const WATCH_RECOVERED: &str = "watch.recovered";

/// One event to send: its kind, its id (the `webhook-id` of every attempt) and the exact
/// webhook body.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    pub kind: &'static str,
    pub id: String,
    pub payload: String,
}

/// What a `watch.changed` event says.
pub struct Changed<'a> {
    pub watcher: &'a str,
    pub url: &'a SensitiveUrl,
    pub seq: u64,
    pub checked_at: DateTime<Utc>,
    pub changes: &'a Changes,
    pub values: &'a Values,
}

pub fn changed(c: &Changed<'_>) -> Emitted {
    #[derive(Serialize)]
    struct Body<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        #[serde(serialize_with = "rfc3339")]
        timestamp: DateTime<Utc>,
        data: Data<'a>,
    }
    #[derive(Serialize)]
    struct Data<'a> {
        watcher: &'a str,
        /// Redacted when serialised: a receiver never sees the watcher's credentials.
        url: &'a SensitiveUrl,
        seq: u64,
        #[serde(serialize_with = "rfc3339")]
        checked_at: DateTime<Utc>,
        changes: &'a Changes,
        values: &'a Values,
    }
    let body = Body {
        kind: WATCH_CHANGED,
        timestamp: c.checked_at,
        data: Data {
            watcher: c.watcher,
            url: c.url,
            seq: c.seq,
            checked_at: c.checked_at,
            changes: c.changes,
            values: c.values,
        },
    };
    Emitted {
        kind: WATCH_CHANGED,
        id: new_event_id(),
        payload: serde_json::to_string(&body).expect("an event always serialises"),
    }
}

/// What a `watch.failing` event says.
pub struct Failing<'a> {
    pub watcher: &'a str,
    pub url: &'a SensitiveUrl,
    pub seq: u64,
    pub checked_at: DateTime<Utc>,
    pub consecutive_failures: u32,
    pub error: &'a str,
    pub reason: Reason,
    pub last_success: Option<DateTime<Utc>>,
}

pub fn failing(f: &Failing<'_>) -> Emitted {
    let data = json!({
        "watcher": f.watcher,
        "url": f.url,
        "seq": f.seq,
        "checked_at": secs(f.checked_at),
        "consecutive_failures": f.consecutive_failures,
        "error": f.error,
        "reason": f.reason,
        "last_success": f.last_success.map(secs),
    });
    alert(WATCH_FAILING, f.checked_at, data)
}

/// What a `watch.recovered` event says.
pub struct Recovered<'a> {
    pub watcher: &'a str,
    pub url: &'a SensitiveUrl,
    pub seq: u64,
    pub checked_at: DateTime<Utc>,
    /// The failures in a row that ended with this success.
    pub failed_checks: u32,
    pub values: Option<&'a Values>,
}

pub fn recovered(r: &Recovered<'_>) -> Emitted {
    let data = json!({
        "watcher": r.watcher,
        "url": r.url,
        "seq": r.seq,
        "checked_at": secs(r.checked_at),
        "failed_checks": r.failed_checks,
        "values": r.values,
    });
    alert(WATCH_RECOVERED, r.checked_at, data)
}

fn alert(kind: &'static str, at: DateTime<Utc>, data: serde_json::Value) -> Emitted {
    let body = json!({"type": kind, "timestamp": secs(at), "data": data});
    Emitted {
        kind,
        id: new_event_id(),
        payload: body.to_string(),
    }
}

/// `evt_` + a UUIDv7: unique without coordination, and sorts by creation time.
fn new_event_id() -> String {
    format!("evt_{}", uuid::Uuid::now_v7().simple())
}

/// Whole seconds with `Z`, as in DESIGN.md's example payload.
fn secs(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&secs(*t))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::diff::Change;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-27T06:00:00Z")
            .unwrap()
            .to_utc()
    }

    #[test]
    fn the_changed_payload_has_the_documented_shape() {
        // The receiver is another system: the watcher's credentials stay here.
        let url = "https://shop.example.com/widget?api_key=s3cret"
            .parse()
            .unwrap();
        let changes: Changes = [(
            "price".to_string(),
            Change::new(json!("1299.99"), json!("1199.99"), false),
        )]
        .into();
        let values: Values = [("price".to_string(), json!("1199.99"))].into();
        let event = changed(&Changed {
            watcher: "acme-widget",
            url: &url,
            seq: 42,
            checked_at: at(),
            changes: &changes,
            values: &values,
        });
        assert!(event.id.starts_with("evt_"));
        assert_eq!(event.kind, WATCH_CHANGED);
        // Byte for byte: receivers may hash or store the body as it came.
        assert_eq!(
            event.payload,
            r#"{"type":"watch.changed","timestamp":"2026-11-27T06:00:00Z","data":{"watcher":"acme-widget","url":"https://shop.example.com/widget?api_key=***","seq":42,"checked_at":"2026-11-27T06:00:00Z","changes":{"price":{"old":"1299.99","new":"1199.99"}},"values":{"price":"1199.99"}}}"#
        );
        let body: Value = serde_json::from_str(&event.payload).unwrap();
        assert_eq!(
            body,
            json!({
                "type": "watch.changed",
                "timestamp": "2026-11-27T06:00:00Z",
                "data": {
                    "watcher": "acme-widget",
                    "url": "https://shop.example.com/widget?api_key=***",
                    "seq": 42,
                    "checked_at": "2026-11-27T06:00:00Z",
                    "changes": {"price": {"old": "1299.99", "new": "1199.99"}},
                    "values": {"price": "1199.99"}
                }
            })
        );
    }

    #[test]
    fn the_alert_payloads_have_the_documented_shape() {
        // The receiver is another system: the watcher's credentials stay here.
        let url = "https://me:pw@shop.example.com/widget?sku=7&token=t0k"
            .parse()
            .unwrap();
        let alert = failing(&Failing {
            watcher: "acme-widget",
            url: &url,
            seq: 7,
            checked_at: at(),
            consecutive_failures: 3,
            error: "fetch failed: HTTP 503",
            reason: Reason::HttpStatus,
            last_success: None,
        });
        assert!(alert.id.starts_with("evt_"));
        assert_eq!(alert.kind, WATCH_FAILING);
        let body: Value = serde_json::from_str(&alert.payload).unwrap();
        assert_eq!(
            body,
            json!({"type": "watch.failing", "timestamp": "2026-11-27T06:00:00Z",
                   "data": {"watcher": "acme-widget",
                            "url": "https://***@shop.example.com/widget?sku=7&token=***",
                            "seq": 7, "checked_at": "2026-11-27T06:00:00Z",
                            "consecutive_failures": 3, "error": "fetch failed: HTTP 503",
                            "reason": "http_status", "last_success": null}})
        );
        let values: Values = [("price".to_string(), json!("5"))].into();
        let alert = recovered(&Recovered {
            watcher: "acme-widget",
            url: &url,
            seq: 8,
            checked_at: at(),
            failed_checks: 4,
            values: Some(&values),
        });
        assert_eq!(alert.kind, WATCH_RECOVERED);
        let body: Value = serde_json::from_str(&alert.payload).unwrap();
        assert_eq!(body["type"], "watch.recovered");
        assert_eq!(body["data"]["failed_checks"], 4);
        assert_eq!(
            body["data"]["url"],
            "https://***@shop.example.com/widget?sku=7&token=***"
        );
        assert_eq!(body["data"]["values"], json!({"price": "5"}));
    }
}
