//! What the dashboard shows, as data: one page of the overview, one watcher with its history
//! and what became of its events. The counts are the [`Summary`] that `status --json` reports,
//! from the same code.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::report::{Outcome, Statuses, Summary, WatcherStatus};
use crate::config::Watcher;
use crate::store::{
    DeadLetter, Delivery, EndpointFailure, HistoryEntry, Queued, Store, StoreError,
};

/// Deliveries a page lists, of the outbox and of the dead letters each; the counts are of all.
pub(crate) const FATES: usize = 1_000;

/// Which watchers the overview lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    /// Part of the name or the URL, in any case; empty for all.
    pub(crate) text: String,
    pub(crate) outcome: Option<Outcome>,
}

impl Filter {
    /// Whether the text is part of the watcher's name or URL (as shown: credentials
    /// redacted).
    fn admits_text(&self, watcher: &Watcher) -> bool {
        if self.text.is_empty() {
            return true;
        }
        let needle = self.text.to_lowercase();
        watcher.name.to_lowercase().contains(&needle)
            || watcher.url.to_string().to_lowercase().contains(&needle)
    }
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
        let mut summary = self.outbox_summary();
        let mut matched = 0;
        let mut rows = Vec::with_capacity(limit.min(self.watchers.len()));
        for watcher in self.watchers {
            let (outcome, overdue) = self.outline(watcher)?;
            summary.add(outcome, overdue);
            let admitted = filter.outcome.is_none_or(|wanted| wanted == outcome)
                && filter.admits_text(watcher);
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
    /// The deliveries of this watcher's events still in the outbox or dead, up to [`FATES`]
    /// of each; an event of the history with none here was delivered (or is past that).
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
        let store: &Store = self.store;
        let status = match self.watchers.iter().find(|w| w.name == name) {
            Some(watcher) => Some(self.of(watcher)?),
            None => None,
        };
        let history_total = store.history_len(name)?;
        if status.is_none() && history_total == 0 {
            return Ok(None);
        }
        let of_this = |queued: &Queued| queued.watcher == name;
        let pending = store.pending_where(FATES, of_this)?;
        let dead = store.dead_where(FATES, of_this)?;
        let fates_total = pending.total + dead.total;
        let mut fates: Vec<Fate> = pending.shown.into_iter().map(Fate::Pending).collect();
        fates.extend(dead.shown.into_iter().map(Fate::from));
        Ok(Some(WatcherView {
            name: name.to_owned(),
            status,
            history: store.history(name, history_limit)?,
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
        let pending = store.pending_where(FATES, |_| true)?;
        let dead = store.dead_where(FATES, |_| true)?;
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
