//! Failure alerts: after `failure_threshold` failed checks in a row one `watch.failing` event,
//! and one `watch.recovered` at the next success. Pure: the decisions and the payloads.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::extract::Values;
use crate::redact::SensitiveUrl;

pub const WATCH_FAILING: &str = "watch.failing";
pub const WATCH_RECOVERED: &str = "watch.recovered";
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;

/// Whether a failed check that brought the count of failures in a row to `failures` should
/// send `watch.failing`. Once sent, nothing more until the watcher recovers: no event storm.
/// `>=` rather than `==` so that lowering the threshold on reload still alerts.
pub fn should_alert(failures: u32, threshold: u32, already_sent: bool) -> bool {
    !already_sent && failures >= threshold.max(1)
}

/// An alert event: its id and the exact webhook body.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub id: String,
    pub payload: String,
}

/// What a `watch.failing` event says.
pub struct Failing<'a> {
    pub watcher: &'a str,
    pub url: &'a SensitiveUrl,
    pub seq: u64,
    pub checked_at: DateTime<Utc>,
    pub consecutive_failures: u32,
    pub error: &'a str,
    pub reason: crate::reason::Reason,
    pub last_success: Option<DateTime<Utc>>,
}

pub fn failing(f: &Failing<'_>) -> Alert {
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

pub fn recovered(r: &Recovered<'_>) -> Alert {
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

fn alert(kind: &str, at: DateTime<Utc>, data: Value) -> Alert {
    let body = json!({"type": kind, "timestamp": secs(at), "data": data});
    Alert {
        id: crate::diff::new_event_id(),
        payload: body.to_string(),
    }
}

/// Whole seconds with `Z`, like `watch.changed`.
fn secs(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_alert_at_the_threshold_then_silence() {
        let sent: Vec<bool> = (1..=6).map(|n| should_alert(n, 3, n > 3)).collect();
        assert_eq!(sent, [false, false, true, false, false, false]);
        assert!(
            should_alert(5, 3, false),
            "a lowered threshold still alerts"
        );
        assert!(should_alert(1, 0, false), "a zero threshold acts as one");
    }

    #[test]
    fn payloads_have_the_documented_shape() {
        let at = DateTime::parse_from_rfc3339("2026-11-27T06:00:00Z")
            .unwrap()
            .to_utc();
        // The receiver is another system: the watcher's credentials stay here.
        let url = "https://me:pw@shop.example.com/widget?sku=7&token=t0k"
            .parse()
            .unwrap();
        let alert = failing(&Failing {
            watcher: "acme-widget",
            url: &url,
            seq: 7,
            checked_at: at,
            consecutive_failures: 3,
            error: "fetch failed: HTTP 503",
            reason: crate::reason::Reason::HttpStatus,
            last_success: None,
        });
        assert!(alert.id.starts_with("evt_"));
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
        let body: Value = serde_json::from_str(
            &recovered(&Recovered {
                watcher: "acme-widget",
                url: &url,
                seq: 8,
                checked_at: at,
                failed_checks: 4,
                values: Some(&values),
            })
            .payload,
        )
        .unwrap();
        assert_eq!(body["type"], "watch.recovered");
        assert_eq!(body["data"]["failed_checks"], 4);
        assert_eq!(
            body["data"]["url"],
            "https://***@shop.example.com/widget?sku=7&token=***"
        );
        assert_eq!(body["data"]["values"], json!({"price": "5"}));
    }
}
