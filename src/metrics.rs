//! Prometheus metrics: what /metrics serves.
//!
//! The registry is process-global so that check and delivery record with one line
//! (`metrics::check_finished(..)`) instead of threading a handle through every signature;
//! one process is one daemon, and every series carries the watcher or webhook it is about.
//! Counters and histograms are recorded as things happen; gauges that describe the store
//! (outbox depth, per-watcher state) are read from it at scrape time, so they are right after
//! a restart and never drift from what `status` shows.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::config::Watcher;
use crate::store::{Store, StoreError};

/// The content type of `encode()`'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    watcher: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    webhook: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WatcherLabel {
    watcher: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShardLabels {
    index: u32,
    shards: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabel {
    webhook: String,
}

struct Metrics {
    registry: Registry,
    checks: Family<CheckLabels, Counter>,
    check_duration: Histogram,
    bytes_fetched: Family<WatcherLabel, Counter>,
    changes: Family<WatcherLabel, Counter>,
    deliveries: Family<DeliveryLabels, Counter>,
    delivery_duration: Histogram,
    dead_letters: Family<WebhookLabel, Counter>,
    outbox_depth: Gauge,
    dead_letters_held: Gauge,
    oldest_pending: Gauge<f64, AtomicU64>,
    last_success: Family<WatcherLabel, Gauge<f64, AtomicU64>>,
    consecutive_failures: Family<WatcherLabel, Gauge>,
    overdue: Family<WatcherLabel, Gauge<f64, AtomicU64>>,
    overdue_watchers: Gauge,
    never_checked: Gauge,
    shard: Family<ShardLabels, Gauge>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("pagehook");
    let m = Metrics {
        registry: Registry::default(),
        checks: Family::default(),
        // 50 ms .. ~100 s: a cached page to a timed-out slow shop.
        check_duration: Histogram::new(exponential_buckets(0.05, 2.0, 12)),
        bytes_fetched: Family::default(),
        changes: Family::default(),
        deliveries: Family::default(),
        // 10 ms .. ~40 s: the default webhook timeout is 15 s.
        delivery_duration: Histogram::new(exponential_buckets(0.01, 2.0, 13)),
        dead_letters: Family::default(),
        outbox_depth: Gauge::default(),
        dead_letters_held: Gauge::default(),
        oldest_pending: Gauge::default(),
        last_success: Family::default(),
        consecutive_failures: Family::default(),
        overdue: Family::default(),
        overdue_watchers: Gauge::default(),
        never_checked: Gauge::default(),
        shard: Family::default(),
    };
    registry.register(
        "checks",
        "Checks finished, by watcher and outcome (baseline, unchanged, changed, failed)",
        m.checks.clone(),
    );
    registry.register_with_unit(
        "check_duration",
        "Time from the start of a check's fetch to its commit",
        Unit::Seconds,
        m.check_duration.clone(),
    );
    registry.register_with_unit(
        "fetched",
        "Page body bytes fetched (after content decoding), by watcher",
        Unit::Bytes,
        m.bytes_fetched.clone(),
    );
    registry.register(
        "changes",
        "Changes detected (each one an event), by watcher",
        m.changes.clone(),
    );
    registry.register(
        "deliveries",
        "Delivery attempts, by webhook and outcome (delivered, failed)",
        m.deliveries.clone(),
    );
    registry.register_with_unit(
        "delivery_duration",
        "Latency of one delivery attempt: request sent to answer received",
        Unit::Seconds,
        m.delivery_duration.clone(),
    );
    registry.register(
        "dead_letters",
        "Events moved to the dead letters after their last retry, by webhook",
        m.dead_letters.clone(),
    );
    registry.register(
        "shard",
        "1, labelled with this node's shard index and the cluster's shard count",
        m.shard.clone(),
    );
    registry.register(
        "outbox_depth",
        "Deliveries waiting in the outbox",
        m.outbox_depth.clone(),
    );
    registry.register(
        "dead_letters_held",
        "Dead letters in the store now, waiting for `pagehook replay`",
        m.dead_letters_held.clone(),
    );
    registry.register_with_unit(
        "outbox_oldest_age",
        "Age of the oldest delivery waiting in the outbox (0 when empty)",
        Unit::Seconds,
        m.oldest_pending.clone(),
    );
    registry.register_with_unit(
        "watcher_last_success",
        "Unix time of the watcher's last successful check",
        Unit::Seconds,
        m.last_success.clone(),
    );
    registry.register(
        "watcher_consecutive_failures",
        "Failed checks in a row for the watcher (0 after a success)",
        m.consecutive_failures.clone(),
    );
    registry.register_with_unit(
        "watcher_overdue",
        "How long the watcher has been due without a check finishing, once past its slot, timeout and a 10 s grace (0 when on time)",
        Unit::Seconds,
        m.overdue.clone(),
    );
    registry.register(
        "watchers_overdue",
        "Watchers whose check is overdue: past their slot, timeout and a 10 s grace",
        m.overdue_watchers.clone(),
    );
    registry.register(
        "watchers_never_checked",
        "Configured watchers with no check recorded yet",
        m.never_checked.clone(),
    );
    Metrics { registry, ..m }
});

/// A check finished with `outcome` (its label) after `elapsed`.
pub fn check_finished(watcher: &str, outcome: &str, elapsed: Duration) {
    let labels = CheckLabels {
        watcher: watcher.to_owned(),
        outcome: outcome.to_owned(),
    };
    METRICS.checks.get_or_create(&labels).inc();
    METRICS.check_duration.observe(elapsed.as_secs_f64());
}

/// A page body of `bytes` was read for `watcher`.
pub fn bytes_fetched(watcher: &str, bytes: usize) {
    let labels = WatcherLabel {
        watcher: watcher.to_owned(),
    };
    METRICS
        .bytes_fetched
        .get_or_create(&labels)
        .inc_by(bytes as u64);
}

/// A check found a change and queued its event.
pub fn change_detected(watcher: &str) {
    let labels = WatcherLabel {
        watcher: watcher.to_owned(),
    };
    METRICS.changes.get_or_create(&labels).inc();
}

/// One delivery attempt ended: `delivered` on a 2xx.
pub fn delivery_finished(webhook: &str, delivered: bool, elapsed: Duration) {
    let labels = DeliveryLabels {
        webhook: webhook.to_owned(),
        outcome: if delivered { "delivered" } else { "failed" }.to_owned(),
    };
    METRICS.deliveries.get_or_create(&labels).inc();
    METRICS.delivery_duration.observe(elapsed.as_secs_f64());
}

/// An event gave up its last retry and moved to the dead letters.
pub fn dead_lettered(webhook: &str) {
    let labels = WebhookLabel {
        webhook: webhook.to_owned(),
    };
    METRICS.dead_letters.get_or_create(&labels).inc();
}

/// Serialises scrapes: the per-watcher gauges are cleared and refilled, and a concurrent
/// scrape must not encode them half-filled.
static SCRAPE: Mutex<()> = Mutex::new(());

/// What /metrics serves: the store gauges refreshed, then every metric encoded. A store that
/// cannot be read leaves those gauges at their last values and is reported beside the text.
/// `running_since` is when the daemon started, for watchers it has never checked.
pub fn scrape(
    store: &Store,
    watchers: &[Arc<Watcher>],
    now: DateTime<Utc>,
    running_since: DateTime<Utc>,
) -> (String, Option<StoreError>) {
    let _one = SCRAPE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let err = observe_store(store, watchers, now, running_since).err();
    (encode(), err)
}

/// Refresh the gauges that mirror the store: the outbox and each configured watcher's state.
/// Watchers no longer configured drop out of the per-watcher series.
fn observe_store(
    store: &Store,
    watchers: &[Arc<Watcher>],
    now: DateTime<Utc>,
    running_since: DateTime<Utc>,
) -> Result<(), StoreError> {
    let pending = store.pending()?;
    METRICS.outbox_depth.set(pending.len() as i64);
    METRICS.dead_letters_held.set(store.dead_count() as i64);
    let oldest = pending.iter().map(|d| d.created_at).min();
    let age = oldest.map_or(0.0, |at| {
        (now - at).num_milliseconds().max(0) as f64 / 1000.0
    });
    METRICS.oldest_pending.set(age);

    let mut states = Vec::with_capacity(watchers.len());
    for watcher in watchers {
        states.push((watcher, store.watcher_state(&watcher.name)?));
    }
    METRICS.last_success.clear();
    METRICS.consecutive_failures.clear();
    METRICS.overdue.clear();
    let (mut overdue, mut never_checked) = (0, 0);
    for (watcher, state) in states {
        let labels = WatcherLabel {
            watcher: watcher.name.clone(),
        };
        never_checked += i64::from(state.last_check.is_none());
        let late = watcher.overdue_since(state.last_check, now, Some(running_since));
        let late = late.map_or(0.0, |due| {
            overdue += 1;
            (now - due).num_milliseconds() as f64 / 1000.0
        });
        METRICS.overdue.get_or_create(&labels).set(late);
        if let Some(at) = state.last_success {
            let secs = at.timestamp_millis() as f64 / 1000.0;
            METRICS.last_success.get_or_create(&labels).set(secs);
        }
        METRICS
            .consecutive_failures
            .get_or_create(&labels)
            .set(i64::from(state.consecutive_failures));
    }
    METRICS.overdue_watchers.set(overdue);
    METRICS.never_checked.set(never_checked);
    Ok(())
}

/// This process is shard `index` of `shards`: a dashboard sums the shards, and an alert on
/// `count by (index) (pagehook_shard) > 1` finds two nodes started as one shard.
pub fn shard(index: u32, shards: u32) {
    METRICS.shard.clear();
    METRICS
        .shard
        .get_or_create(&ShardLabels { index, shards })
        .set(1);
}

/// Every metric in the OpenMetrics text format, which Prometheus scrapes natively.
pub fn encode() -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &METRICS.registry)
        .expect("writing to a String cannot fail");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_values_show_up_under_their_labels() {
        check_finished("metrics-unit", "changed", Duration::from_millis(120));
        change_detected("metrics-unit");
        bytes_fetched("metrics-unit", 2048);
        delivery_finished("metrics-unit-hook", false, Duration::from_millis(30));
        shard(2, 3);
        let text = encode();
        for line in [
            r#"pagehook_checks_total{watcher="metrics-unit",outcome="changed"} 1"#,
            r#"pagehook_changes_total{watcher="metrics-unit"} 1"#,
            r#"pagehook_fetched_bytes_total{watcher="metrics-unit"} 2048"#,
            r#"pagehook_deliveries_total{webhook="metrics-unit-hook",outcome="failed"} 1"#,
            r#"pagehook_shard{index="2",shards="3"} 1"#,
            "# TYPE pagehook_check_duration_seconds histogram",
            "# TYPE pagehook_outbox_depth gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
