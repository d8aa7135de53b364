//! What the dashboard shows, as data: one page of the overview, one watcher with its history
//! and what became of its events. The counts are the [`Summary`] that `status --json` reports,
//! from the same code.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::report::{Outcome, Statuses, Summary, WatcherStatus};
use crate::config::Watcher;
use crate::store::{
    DeadLetter, Delivery, EndpointFailure, HistoryEntry, Queued, Store, StoreError,
};

/// Deliveries the deliveries page lists, of the outbox and of the dead letters each; the
/// counts are of all.
const FATES: usize = 1_000;
/// Of one watcher's page: the changes listed, with what became of each one's event, and the
/// deliveries not done listed besides those.
pub(crate) const CHANGES_LISTED: usize = 200;
const UNDONE_LISTED: usize = 100;

/// Which watchers the overview lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    /// Part of the name or the URL, in any case; empty for all.
    pub(crate) text: String,
    pub(crate) outcome: Option<Outcome>,
}

/// Whether `needle` (lowercase) is part of the watcher's name or URL, in any case (the URL
/// as shown: credentials redacted).
fn names(watcher: &Watcher, needle: &str) -> bool {
    needle.is_empty()
        || watcher.name.to_lowercase().contains(needle)
        || watcher.url.to_string().to_lowercase().contains(needle)
}

/// One page of the watchers a filter admits, and the counts over all of them.
#[derive(Debug)]
pub(crate) struct Overview {
    pub(crate) summary: Summary,
    /// How many watchers the filter admits, over all pages.
    pub(crate) matched: usize,
    /// The position of the first row among those.
    pub(crate) offset: usize,
    pub(crate) rows: Vec<WatcherStatus>,
}

impl Statuses<'_> {
    /// The watchers `filter` admits from `offset`, at most `limit` of them. Every watcher is
    /// counted from its last check alone; only the rows shown have their values read.
    pub(crate) fn overview(
        &self,
        filter: &Filter,
        offset: usize,
        limit: usize,
    ) -> Result<Overview, StoreError> {
        let needle = filter.text.to_lowercase();
        let mut summary = self.outbox_summary();
        let mut matched = 0;
        let mut rows = Vec::with_capacity(limit.min(self.watchers.len()));
        for watcher in self.watchers {
            let (outcome, overdue) = self.outline(watcher)?;
            summary.add(outcome, overdue);
            let admitted =
                filter.outcome.is_none_or(|wanted| wanted == outcome) && names(watcher, &needle);
            if !admitted {
                continue;
            }
            if matched >= offset && rows.len() < limit {
                rows.push(self.of(watcher)?);
            }
            matched += 1;
        }
        Ok(Overview {
            summary,
            matched,
            offset,
            rows,
        })
    }
}

/// What became of one event at one webhook, while the outbox or the dead letters hold it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Fate {
    Pending(Delivery),
    Dead {
        delivery: Delivery,
        died_at: DateTime<Utc>,
        reason: String,
    },
}

impl From<DeadLetter> for Fate {
    fn from(letter: DeadLetter) -> Fate {
        Fate::Dead {
            delivery: letter.delivery,
            died_at: letter.died_at,
            reason: letter.reason,
        }
    }
}

impl Fate {
    pub(crate) fn delivery(&self) -> &Delivery {
        match self {
            Fate::Pending(d) | Fate::Dead { delivery: d, .. } => d,
        }
    }
}

/// One watcher's page: its status, its newest history, and the deliveries of its events
/// that are not done.
#[derive(Debug)]
pub(crate) struct WatcherView {
    pub(crate) name: String,
    /// None for a watcher no longer configured, whose history the store keeps.
    pub(crate) status: Option<WatcherStatus>,
    /// Newest first, at most the number asked for.
    pub(crate) history: Vec<HistoryEntry>,
    /// How many entries the store holds in all.
    pub(crate) history_total: usize,
    /// The deliveries still in the outbox or dead of the events of the first
    /// [`CHANGES_LISTED`] entries of the history, and of up to [`UNDONE_LISTED`] more of this
    /// watcher's events: an event listed with none here was delivered.
    pub(crate) fates: Vec<Fate>,
    /// How many there are in all.
    pub(crate) fates_total: usize,
}

impl WatcherView {
    /// The undone deliveries by event id, for a table of many events.
    pub(crate) fn fates_by_event(&self) -> HashMap<&str, Vec<&Fate>> {
        let mut by_event: HashMap<&str, Vec<&Fate>> = HashMap::new();
        for fate in &self.fates {
            by_event
                .entry(fate.delivery().event_id.as_str())
                .or_default()
                .push(fate);
        }
        by_event
    }
}

impl Statuses<'_> {
    /// `name`'s page with at most `history_limit` entries of its history, or None for a
    /// watcher neither the config nor the store knows.
    pub(crate) fn watcher(
        &self,
        name: &str,
        history_limit: usize,
    ) -> Result<Option<WatcherView>, StoreError> {
        let store = self.store;
        let status = match self.watchers.iter().find(|w| w.name == name) {
            Some(watcher) => Some(self.of(watcher)?),
            None => None,
        };
        let history_total = store.history_len(name)?;
        if status.is_none() && history_total == 0 {
            return Ok(None);
        }
        let history = store.history(name, history_limit)?;
        // Every event of the changes listed, to say what became of it, and the first of the
        // rest for the table of deliveries not done.
        let listed: HashSet<&str> = history
            .iter()
            .take(CHANGES_LISTED)
            .filter_map(|e| e.event_id.as_deref())
            .collect();
        let of_this = |queued: &Queued| queued.watcher == name;
        let keep = |queued: &Queued, kept: usize| {
            kept < UNDONE_LISTED || listed.contains(queued.event_id.as_str())
        };
        let pending = store.pending_where(of_this, keep)?;
        let dead = store.dead_where(of_this, keep)?;
        let fates_total = pending.total + dead.total;
        let mut fates: Vec<Fate> = pending.shown.into_iter().map(Fate::Pending).collect();
        fates.extend(dead.shown.into_iter().map(Fate::from));
        Ok(Some(WatcherView {
            name: name.to_owned(),
            status,
            history,
            history_total,
            fates,
            fates_total,
        }))
    }
}

/// The outbox and the dead letters, up to [`FATES`] of each, for the deliveries page.
#[derive(Debug)]
pub(crate) struct DeliveriesPage {
    pub(crate) pending: Vec<Fate>,
    pub(crate) pending_total: usize,
    pub(crate) dead: Vec<Fate>,
    pub(crate) dead_total: usize,
    /// Endpoints that answered 410 Gone, by webhook name.
    pub(crate) failing: Vec<(String, EndpointFailure)>,
    pub(crate) quarantined: usize,
}

impl DeliveriesPage {
    pub(crate) fn read(store: &Store) -> Result<Self, StoreError> {
        let first = |_: &Queued, kept: usize| kept < FATES;
        let pending = store.pending_where(|_| true, first)?;
        let dead = store.dead_where(|_| true, first)?;
        Ok(DeliveriesPage {
            pending: pending.shown.into_iter().map(Fate::Pending).collect(),
            pending_total: pending.total,
            dead: dead.shown.into_iter().map(Fate::from).collect(),
            dead_total: dead.total,
            failing: store.endpoint_failures()?,
            quarantined: store.quarantined(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::NoEnv;
    use std::path::Path;

    #[tokio::test]
    async fn every_listed_event_is_told_apart_from_a_delivered_one_however_many_wait() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now: DateTime<Utc> = "2026-12-06T12:00:00Z".parse().unwrap();
        let events = UNDONE_LISTED + 20;
        for i in 0..events {
            let id = format!("evt_{i:04}");
            let delivery = Delivery {
                event_id: id.clone(),
                webhook: "a".into(),
                watcher: "w".into(),
                payload: "{}".into(),
                created_at: now,
                attempts: 1,
                next_attempt: now,
                history: Vec::new(),
            };
            let entry = HistoryEntry {
                checked_at: now + chrono::TimeDelta::minutes(i as i64),
                kind: "changed".into(),
                changed: vec!["price".into()],
                event_id: Some(id),
                values: Default::default(),
            };
            let state = crate::store::WatcherState::default();
            store
                .commit_recorded("w", None, &state, &[delivery], Some(&entry), 1000)
                .await
                .unwrap();
        }
        let text = "[webhooks.a]\nurl = \"https://a.example\"\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n[[watchers]]\nname = \"w\"\nurl = \"https://s.example/w\"\nwebhook = \"a\"\nfields.t = { css = \"h1\" }\n";
        let watchers = crate::config::parse(text, Path::new("w.toml"), &NoEnv)
            .unwrap()
            .config
            .watchers;
        let statuses = Statuses::read(&store, &watchers, now, None).unwrap();
        let view = statuses.watcher("w", 2_000).unwrap().unwrap();
        assert_eq!(view.fates_total, events);
        let undone = view.fates_by_event();
        for entry in &view.history {
            let id = entry.event_id.as_deref().unwrap();
            assert!(undone.contains_key(id), "{id} is pending, not delivered");
        }
        assert_eq!(view.status.unwrap().pending_deliveries, events);
        assert!(statuses.watcher("nobody", 10).unwrap().is_none());
    }
}
