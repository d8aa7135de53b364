//! `status`, `history`, `deliveries` and `replay`: reports built from the store and the config,
//! as plain serializable structs; the daemon's own STATUS line comes from here too.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::render::plural;
use crate::config::Watcher;
use crate::extract::Values;
use crate::reason::Reason;
use crate::store::{DeadLetter, Delivery, EndpointFailure, HistoryEntry, Store, StoreError};

/// Every configured watcher, in config order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StatusReport {
    pub(crate) watchers: Vec<WatcherStatus>,
    /// Deliveries in the outbox, for all watchers (including ones no longer configured).
    pub(crate) pending_deliveries: usize,
    /// The counts the dashboard shows at the top.
    #[serde(default)]
    pub(crate) summary: Summary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct WatcherStatus {
    pub(crate) name: String,
    pub(crate) url: String,
    /// The values of the last successful check; null before the first.
    pub(crate) values: Option<Values>,
    pub(crate) last_check: Option<DateTime<Utc>>,
    /// "ok" or "failed"; null when never checked.
    pub(crate) last_outcome: Option<String>,
    /// Why the last check failed, when it did.
    pub(crate) last_error: Option<String>,
    /// The same, as one word of `reason::Reason` (`blocked`, `timeout`, ...).
    #[serde(default)]
    pub(crate) last_reason: Option<Reason>,
    pub(crate) last_success: Option<DateTime<Utc>>,
    /// When the scheduler runs it next: now, if it is overdue.
    pub(crate) next_run: DateTime<Utc>,
    /// Set when the watcher is late: the slot it has been due at since, with that slot and its
    /// `timeout` passed and no check finished.
    pub(crate) overdue_since: Option<DateTime<Utc>>,
    pub(crate) consecutive_failures: u32,
    /// This watcher's deliveries still in the outbox.
    pub(crate) pending_deliveries: usize,
}

impl WatcherStatus {
    pub(crate) fn outcome(&self) -> Outcome {
        Outcome::of(self.last_check, self.last_success, self.last_reason)
    }
}

/// How a watcher's last check went, in the words the dashboard counts and filters by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outcome {
    Ok,
    /// Failed for any reason but a bot wall.
    Failing,
    /// Stopped by a bot wall: a different fix (a proxy, the browser) from other failures.
    Blocked,
    Never,
}

impl Outcome {
    pub(crate) const ALL: [Outcome; 4] = [
        Outcome::Ok,
        Outcome::Failing,
        Outcome::Blocked,
        Outcome::Never,
    ];

    pub(crate) fn of(
        last_check: Option<DateTime<Utc>>,
        last_success: Option<DateTime<Utc>>,
        last_reason: Option<Reason>,
    ) -> Outcome {
        match last_check {
            None => Outcome::Never,
            Some(checked) if last_success == Some(checked) => Outcome::Ok,
            Some(_) if last_reason == Some(Reason::Blocked) => Outcome::Blocked,
            Some(_) => Outcome::Failing,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failing => "failing",
            Outcome::Blocked => "blocked",
            Outcome::Never => "never",
        }
    }

    pub(crate) fn parse(word: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == word)
    }
}

/// The counts over every configured watcher, and the state of the outbox: what `status
/// --json` reports as `summary`, the dashboard shows at its top, and systemd's STATUS= line
/// is made of.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Summary {
    pub(crate) watchers: usize,
    pub(crate) ok: usize,
    pub(crate) failing: usize,
    pub(crate) blocked: usize,
    pub(crate) never_checked: usize,
    pub(crate) overdue: usize,
    pub(crate) pending_deliveries: usize,
    /// When the oldest delivery still in the outbox was queued.
    pub(crate) oldest_pending: Option<DateTime<Utc>>,
    pub(crate) dead_letters: usize,
}

impl Summary {
    pub(super) fn add(&mut self, outcome: Outcome, overdue: bool) {
        self.watchers += 1;
        *match outcome {
            Outcome::Ok => &mut self.ok,
            Outcome::Failing => &mut self.failing,
            Outcome::Blocked => &mut self.blocked,
            Outcome::Never => &mut self.never_checked,
        } += 1;
        self.overdue += usize::from(overdue);
    }

    pub(crate) fn count(&self, outcome: Outcome) -> usize {
        match outcome {
            Outcome::Ok => self.ok,
            Outcome::Failing => self.failing,
            Outcome::Blocked => self.blocked,
            Outcome::Never => self.never_checked,
        }
    }

    fn line(&self) -> String {
        let mut line = format!(
            "watching {}, {} failing, {} queued",
            plural(self.watchers, "page"),
            self.failing + self.blocked,
            plural(self.pending_deliveries, "delivery")
        );
        if self.overdue > 0 {
            let _ = write!(line, ", {} overdue", self.overdue);
        }
        line
    }
}

/// The state of each configured watcher as of `now`; `running_since` is when the daemon
/// started, if one runs.
pub(crate) fn status(
    store: &Store,
    watchers: &[std::sync::Arc<Watcher>],
    now: DateTime<Utc>,
    running_since: Option<DateTime<Utc>>,
) -> Result<StatusReport, StoreError> {
    let statuses = Statuses::read(store, watchers, now, running_since)?;
    let watchers: Vec<WatcherStatus> = statuses.iter().collect::<Result<_, _>>()?;
    let mut summary = statuses.outbox_summary();
    for status in &watchers {
        summary.add(status.outcome(), status.overdue_since.is_some());
    }
    Ok(StatusReport {
        watchers,
        pending_deliveries: statuses.pending_total,
        summary,
    })
}

/// The status of each watcher, one at a time: encoded one by one, 100,000 of them never
/// hold their values at once (a value map takes a kilobyte).
pub(crate) struct Statuses<'a> {
    pub(super) store: &'a Store,
    pub(super) watchers: &'a [std::sync::Arc<Watcher>],
    now: DateTime<Utc>,
    running_since: Option<DateTime<Utc>>,
    /// Deliveries in the outbox by watcher, and in all.
    pending: BTreeMap<String, usize>,
    pending_total: usize,
    oldest_pending: Option<DateTime<Utc>>,
}

impl<'a> Statuses<'a> {
    pub(crate) fn read(
        store: &'a Store,
        watchers: &'a [std::sync::Arc<Watcher>],
        now: DateTime<Utc>,
        running_since: Option<DateTime<Utc>>,
    ) -> Result<Self, StoreError> {
        let mut pending: BTreeMap<String, usize> = BTreeMap::new();
        let (mut pending_total, mut oldest_pending) = (0, None::<DateTime<Utc>>);
        store.each_queued(|queued| {
            *pending.entry(queued.watcher).or_default() += 1;
            pending_total += 1;
            oldest_pending =
                Some(oldest_pending.map_or(queued.created_at, |o| o.min(queued.created_at)));
        })?;
        Ok(Statuses {
            store,
            watchers,
            now,
            running_since,
            pending,
            pending_total,
            oldest_pending,
        })
    }

    /// One line for systemd's STATUS=: what `systemctl status` shows under the unit.
    pub(crate) fn summary(&self) -> Result<String, StoreError> {
        Ok(self.summarize()?.line())
    }

    /// The counts over every watcher, read without their values.
    pub(crate) fn summarize(&self) -> Result<Summary, StoreError> {
        let mut summary = self.outbox_summary();
        for watcher in self.watchers {
            let (outcome, overdue) = self.outline(watcher)?;
            summary.add(outcome, overdue);
        }
        Ok(summary)
    }

    /// A summary of no watchers yet: the outbox's part.
    pub(super) fn outbox_summary(&self) -> Summary {
        Summary {
            pending_deliveries: self.pending_total,
            oldest_pending: self.oldest_pending,
            dead_letters: self.store.dead_count(),
            ..Summary::default()
        }
    }

    /// How `watcher`'s last check went and whether it is overdue, without reading its values:
    /// the dashboard asks this of all 100,000 to count and filter them.
    pub(crate) fn outline(&self, watcher: &Watcher) -> Result<(Outcome, bool), StoreError> {
        let checked = self.store.last_checked(&watcher.name)?;
        let outcome = Outcome::of(
            checked.last_check,
            checked.last_success,
            checked.last_reason,
        );
        let overdue = watcher
            .overdue_since(checked.last_check, self.now, self.running_since)
            .is_some();
        Ok((outcome, overdue))
    }

    fn iter(&self) -> impl Iterator<Item = Result<WatcherStatus, StoreError>> + '_ {
        self.watchers.iter().map(|w| self.of(w))
    }

    pub(crate) fn of(&self, watcher: &Watcher) -> Result<WatcherStatus, StoreError> {
        let now = self.now;
        let state = self.store.shown_state(&watcher.name)?;
        let next_run = if watcher
            .schedule
            .is_overdue(state.last_check, now, watcher.offset)
        {
            now
        } else {
            watcher.schedule.next_after(now, watcher.offset)
        };
        let last_outcome = state.last_check.map(|checked| {
            if state.last_success == Some(checked) {
                "ok".to_owned()
            } else {
                "failed".to_owned()
            }
        });
        Ok(WatcherStatus {
            name: watcher.name.clone(),
            url: watcher.url.to_string(),
            values: state.values,
            last_check: state.last_check,
            last_outcome,
            last_error: state.last_error,
            last_reason: state
                .last_reason
                .filter(|_| state.last_success != state.last_check),
            last_success: state.last_success,
            next_run,
            overdue_since: watcher.overdue_since(state.last_check, now, self.running_since),
            consecutive_failures: state.consecutive_failures,
            pending_deliveries: self.pending.get(&watcher.name).copied().unwrap_or(0),
        })
    }
}

/// Encoded as a [`StatusReport`] is, each watcher's status built as it is written.
impl Serialize for Statuses<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq, SerializeStruct};
        use std::cell::RefCell;
        /// The watchers, counted into the summary as they are written.
        struct Each<'s, 'a>(&'s Statuses<'a>, &'s RefCell<Summary>);
        impl Serialize for Each<'_, '_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut seq = serializer.serialize_seq(Some(self.0.watchers.len()))?;
                for status in self.0.iter() {
                    let status = status.map_err(S::Error::custom)?;
                    self.1
                        .borrow_mut()
                        .add(status.outcome(), status.overdue_since.is_some());
                    seq.serialize_element(&status)?;
                }
                seq.end()
            }
        }
        let summary = RefCell::new(self.outbox_summary());
        let mut report = serializer.serialize_struct("StatusReport", 3)?;
        report.serialize_field("watchers", &Each(self, &summary))?;
        report.serialize_field("pending_deliveries", &self.pending_total)?;
        report.serialize_field("summary", &*summary.borrow())?;
        report.end()
    }
}

/// A watcher's recorded values, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct HistoryReport {
    pub(crate) watcher: String,
    pub(crate) entries: Vec<HistoryEntry>,
}

/// Up to `limit` entries of `watcher`'s history, or None for a watcher neither the config nor
/// the store knows. A watcher removed from the config keeps its history, so it is found by the
/// store as well as by the config.
pub(crate) fn history(
    store: &Store,
    watchers: &[std::sync::Arc<Watcher>],
    watcher: &str,
    limit: usize,
) -> Result<Option<HistoryReport>, StoreError> {
    let entries = store.history(watcher, limit)?;
    let configured = watchers.iter().any(|w| w.name == watcher);
    if entries.is_empty() && !configured && !store.known_watchers()?.iter().any(|w| w == watcher) {
        return Ok(None);
    }
    Ok(Some(HistoryReport {
        watcher: watcher.to_owned(),
        entries,
    }))
}

/// The outbox and the dead letters: `pagehook deliveries`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Deliveries {
    pub(crate) pending: Vec<Delivery>,
    pub(crate) dead: Vec<DeadLetter>,
    /// Endpoints that answered 410 Gone, by webhook name.
    pub(crate) failing: Vec<(String, EndpointFailure)>,
    /// Outbox entries that could not be decoded and were set aside.
    pub(crate) quarantined: usize,
}

impl Deliveries {
    pub(crate) fn read(store: &Store) -> Result<Self, StoreError> {
        Ok(Deliveries {
            pending: store.pending()?,
            dead: store.dead()?,
            failing: store.endpoint_failures()?,
            quarantined: store.quarantined(),
        })
    }
}

/// What `pagehook replay` queued again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Replayed {
    /// (event id, webhook) pairs, each due now.
    pub(crate) queued: Vec<(String, String)>,
}

impl Replayed {
    /// Queue `event_ids` again, or every dead letter when `dead` is set.
    pub(crate) fn run(
        store: &Store,
        event_ids: &[String],
        dead: bool,
        now: DateTime<Utc>,
    ) -> Result<Self, StoreError> {
        let mut deliveries = if dead {
            store.replay_dead(now)?
        } else {
            Vec::new()
        };
        if !event_ids.is_empty() {
            deliveries.extend(store.replay(event_ids, now)?);
        }
        Ok(Replayed {
            queued: deliveries
                .into_iter()
                .map(|d| (d.event_id, d.webhook))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::render::{render_history, render_status};
    use crate::store::WatcherState;
    use serde_json::json;
    use std::path::Path;

    fn watchers() -> Vec<std::sync::Arc<Watcher>> {
        let text = r#"
            [webhooks.a]
            url = "https://a.example"
            secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
            [defaults]
            schedule = "every 1h"
            jitter = "0s"
            [[watchers]]
            name = "fresh"
            url = "https://s.example/fresh"
            fields.price = { css = ".price" }
            [[watchers]]
            name = "broken"
            url = "https://s.example/broken"
            fields.price = { css = ".price" }
        "#;
        crate::config::parse(text, Path::new("w.toml"), &crate::config::testing::NoEnv)
            .unwrap()
            .config
            .watchers
    }

    #[tokio::test]
    async fn status_reports_outcome_next_run_and_failures() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now: DateTime<Utc> = "2026-11-27T06:30:00Z".parse().unwrap();
        let ok_at = now - chrono::TimeDelta::minutes(10);
        let ok = WatcherState {
            values: Some([("price".to_string(), json!("$5.00"))].into()),
            last_check: Some(ok_at),
            last_success: Some(ok_at),
            ..Default::default()
        };
        store.commit("fresh", &ok, &[]).await.unwrap();
        let failed = WatcherState {
            last_check: Some(now - chrono::TimeDelta::hours(2)),
            consecutive_failures: 3,
            last_error: Some("fetch failed: HTTP 503".into()),
            last_reason: Some(Reason::HttpStatus),
            ..Default::default()
        };
        store.commit("broken", &failed, &[]).await.unwrap();

        let report = status(&store, &watchers(), now, None).unwrap();
        let [fresh, broken] = &report.watchers[..] else {
            panic!("{report:?}")
        };
        assert_eq!(fresh.last_outcome.as_deref(), Some("ok"));
        assert_eq!(
            fresh.next_run,
            "2026-11-27T07:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(broken.last_outcome.as_deref(), Some("failed"));
        assert_eq!(broken.next_run, now, "an overdue watcher runs at once");
        assert_eq!(broken.consecutive_failures, 3);
        assert_eq!(fresh.overdue_since, None);
        assert_eq!(
            broken.overdue_since,
            Some("2026-11-27T05:00:00Z".parse().unwrap()),
            "due at the slot after its last check, and that was 90 minutes ago"
        );
        let summary = Statuses::read(&store, &watchers(), now, None)
            .and_then(|s| s.summary())
            .unwrap();
        assert_eq!(
            summary,
            "watching 2 pages, 1 failing, 0 deliveries queued, 1 overdue"
        );
        let counts = Summary {
            watchers: 2,
            ok: 1,
            failing: 1,
            overdue: 1,
            ..Summary::default()
        };
        assert_eq!(report.summary, counts);
        // The daemon's answer, encoded as it is read, carries the same counts.
        let configured = watchers();
        let statuses = Statuses::read(&store, &configured, now, None).unwrap();
        let streamed: StatusReport =
            serde_json::from_slice(&serde_json::to_vec(&statuses).unwrap()).unwrap();
        assert_eq!(streamed, report);
        assert_eq!(statuses.summarize().unwrap(), counts);

        let text = render_status(&report);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("WATCHER  LAST CHECK"), "{text}");
        assert!(
            lines[1].starts_with("fresh    2026-11-27T06:20:00Z  ok "),
            "{text}"
        );
        assert!(lines[1].ends_with("price=$5.00"), "{text}");
        assert_eq!(lines[3], "broken: fetch failed: HTTP 503");
        assert_eq!(
            lines[4],
            "broken: overdue since 2026-11-27T05:00:00Z: no check has finished since"
        );
    }

    /// A watcher the running daemon has never checked is overdue once its period (an hour,
    /// over which the catch-up of such watchers is spread), its timeout (30 s) and the grace
    /// have passed since the daemon started.
    #[tokio::test]
    async fn a_watcher_never_checked_by_a_running_daemon_is_overdue() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let started: DateTime<Utc> = "2026-11-27T06:00:00Z".parse().unwrap();
        let soon = started + chrono::TimeDelta::seconds(3600 + 30);
        let report = status(&store, &watchers(), soon, Some(started)).unwrap();
        assert!(report.watchers.iter().all(|w| w.overdue_since.is_none()));
        let later = started + chrono::TimeDelta::seconds(3600 + 41);
        let report = status(&store, &watchers(), later, Some(started)).unwrap();
        assert!(
            report
                .watchers
                .iter()
                .all(|w| w.overdue_since == Some(started))
        );
        let summary = Statuses::read(&store, &watchers(), later, Some(started))
            .and_then(|s| s.summary())
            .unwrap();
        assert!(summary.ends_with(", 2 overdue"), "{summary}");
        assert!(
            render_status(&report)
                .contains("fresh: overdue since 2026-11-27T06:00:00Z: it has never been checked")
        );
        let no_daemon = status(&store, &watchers(), later, None).unwrap();
        assert!(no_daemon.watchers.iter().all(|w| w.overdue_since.is_none()));
    }

    #[test]
    fn an_outcome_is_ok_failing_blocked_or_never() {
        let at: DateTime<Utc> = "2026-11-27T06:00:00Z".parse().unwrap();
        let before = at - chrono::TimeDelta::hours(1);
        assert_eq!(Outcome::of(None, None, None), Outcome::Never);
        assert_eq!(Outcome::of(Some(at), Some(at), None), Outcome::Ok);
        let blocked = Outcome::of(Some(at), Some(before), Some(Reason::Blocked));
        assert_eq!(blocked, Outcome::Blocked);
        let failing = Outcome::of(Some(at), None, Some(Reason::Timeout));
        assert_eq!(failing, Outcome::Failing);
        for outcome in Outcome::ALL {
            assert_eq!(Outcome::parse(outcome.as_str()), Some(outcome));
        }
    }

    #[test]
    fn history_draws_a_sparkline_of_each_numeric_field_over_its_table() {
        let entry = |at: &str, price: &str, stock: serde_json::Value| HistoryEntry {
            checked_at: at.parse().unwrap(),
            kind: "changed".into(),
            changed: vec!["price".into()],
            event_id: None,
            values: [
                (
                    "price".to_owned(),
                    json!({"amount": price, "currency": "USD", "raw": price}),
                ),
                ("stock".to_owned(), stock),
            ]
            .into(),
        };
        let report = HistoryReport {
            watcher: "w".into(),
            entries: vec![
                entry("2026-12-03T00:00:00Z", "12.00", json!("in_stock")),
                entry("2026-12-02T00:00:00Z", "20.00", json!("in_stock")),
                entry("2026-12-01T00:00:00Z", "10.00", json!("out_of_stock")),
            ],
        };
        let text = render_history(&report);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "price  ▁█▂  USD 10.00 -> USD 12.00 (low USD 10.00, high USD 20.00, 3 values)"
        );
        assert_eq!(lines[1], "", "{text}");
        assert!(lines[2].starts_with("TIME"), "{text}");
        assert!(
            !text.contains("stock  "),
            "a text field has no sparkline: {text}"
        );
    }

    #[tokio::test]
    async fn history_of_an_unknown_watcher_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let empty = history(&store, &watchers(), "fresh", 10).unwrap().unwrap();
        assert!(empty.entries.is_empty());
        assert_eq!(render_history(&empty), "fresh: no history recorded yet\n");
        assert_eq!(history(&store, &watchers(), "nope", 10).unwrap(), None);
    }
}
