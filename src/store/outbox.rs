//! The outbox: deliveries keyed by webhook then due time, what is due, rescheduling, and the
//! quarantine for entries that no longer decode.

use super::{Database, Store, StoreError, unabort};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

/// One event on its way to one webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub event_id: String,
    pub webhook: String,
    pub watcher: String,
    /// The exact body, fixed at commit time so every attempt signs the same bytes.
    pub payload: String,
    pub created_at: DateTime<Utc>,
    /// Attempts made since the event was queued (or replayed); the retry schedule counts these.
    pub attempts: u32,
    pub next_attempt: DateTime<Utc>,
    /// The most recent attempts, oldest first, so a dead letter explains itself.
    #[serde(default)]
    pub history: Vec<AttemptRecord>,
}

impl Delivery {
    pub(crate) fn last_error(&self) -> Option<&str> {
        self.history.last().and_then(|a| a.error.as_deref())
    }
}

/// Whom a queued delivery (or a dead letter) is for and when it was queued, read without its
/// payload and attempts: the dashboard asks this of every entry of an outbox that may hold
/// 100,000 while an endpoint is down.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Queued {
    pub(crate) event_id: String,
    pub(crate) watcher: String,
    pub(crate) created_at: DateTime<Utc>,
}

/// Entries that a test admits, decoded whole up to a limit, and how many it admits in all.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Listed<T> {
    pub(crate) shown: Vec<T>,
    pub(crate) total: usize,
}

/// Scan `tree`: every entry is read as [`Queued`]; those `admit` takes are counted, and those
/// of them that `keep` takes, told how many are kept so far, are decoded whole.
pub(crate) fn scan<T: serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    admit: impl Fn(&Queued) -> bool,
    keep: impl Fn(&Queued, usize) -> bool,
) -> Result<Listed<T>, StoreError> {
    let mut found = Listed {
        shown: Vec::new(),
        total: 0,
    };
    for value in tree.iter().values() {
        let value = value?;
        let queued: Queued = serde_json::from_slice(&value)?;
        if !admit(&queued) {
            continue;
        }
        if keep(&queued, found.shown.len()) {
            found.shown.push(serde_json::from_slice(&value)?);
        }
        found.total += 1;
    }
    Ok(found)
}

/// What one attempt got back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub(crate) at: DateTime<Utc>,
    pub(crate) duration_ms: u64,
    /// The HTTP status, when the endpoint answered at all.
    pub(crate) status: Option<u16>,
    /// Why the attempt did not count as delivered; None when it did.
    pub(crate) error: Option<String>,
    /// The start of the response body, for a human reading the dead letter.
    pub(crate) response: Option<String>,
}

/// Where an outbox entry sits: grouped by webhook, then ordered by due time, so "what is due
/// for this endpoint" is one short range scan.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct OutboxKey(pub(super) Vec<u8>);

impl OutboxKey {
    pub(super) fn new(d: &Delivery) -> Self {
        let mut key = name_prefix(&d.webhook);
        key.extend_from_slice(&due_bytes(d.next_attempt));
        key.extend_from_slice(d.event_id.as_bytes());
        OutboxKey(key)
    }
}

/// The event id an outbox key ends with, after the webhook's name and the due time.
pub(super) fn outbox_event_id(key: &[u8]) -> Option<&[u8]> {
    let name_end = key.iter().position(|&b| b == 0)?;
    key.get(name_end + 1 + 8..)
}

pub(super) const MILLI: chrono::TimeDelta = chrono::TimeDelta::milliseconds(1);

/// Outbox keys start with the webhook's name, history keys with the watcher's (then time and a
/// store-wide id), so one prefix scan lists either oldest first.
pub(super) fn name_prefix(name: &str) -> Vec<u8> {
    let mut key = name.as_bytes().to_vec();
    key.push(0);
    key
}

pub(super) fn due_bytes(at: DateTime<Utc>) -> [u8; 8] {
    (at.timestamp_millis().max(0) as u64).to_be_bytes()
}

pub(super) fn due_range(
    webhook: &str,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> (Vec<u8>, Vec<u8>) {
    let prefix = name_prefix(webhook);
    let start = match from {
        Some(at) => [prefix.as_slice(), &due_bytes(at)].concat(),
        None => prefix.clone(),
    };
    let end = match to {
        Some(at) => [prefix.as_slice(), &due_bytes(at)].concat(),
        // The byte after the separator ends this webhook's keys.
        None => [webhook.as_bytes(), &[1]].concat(),
    };
    (start, end)
}

impl Store {
    /// The first entry for `webhook` due at `now` that `skip` does not name and that is on
    /// disk (skipped keys are not decoded). An entry that cannot be decoded is quarantined and
    /// reported, so one bad record never stops the queue behind it.
    pub(crate) fn first_due(
        &self,
        webhook: &str,
        now: DateTime<Utc>,
        skip: impl Fn(&OutboxKey) -> bool,
    ) -> Result<Option<(OutboxKey, Delivery)>, StoreError> {
        self.with(|d| d.first_due(webhook, now, skip))
    }

    /// Every entry for `webhook` due at `now` and on disk, oldest first.
    pub(crate) fn due(
        &self,
        webhook: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<(OutboxKey, Delivery)>, StoreError> {
        self.with(|d| d.due(webhook, now))
    }

    /// When the first entry for `webhook` not yet due at `now` falls due.
    pub(crate) fn next_due_after(
        &self,
        webhook: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.with(|d| d.next_due_after(webhook, now))
    }

    /// Every queued delivery, grouped by webhook and oldest first within each.
    pub fn pending(&self) -> Result<Vec<Delivery>, StoreError> {
        self.with(Database::pending)
    }

    /// Each queued delivery's watcher and time, without its payload.
    pub(crate) fn each_queued(&self, mut each: impl FnMut(Queued)) -> Result<(), StoreError> {
        self.with(|d| {
            for value in d.outbox.iter().values() {
                each(serde_json::from_slice(&value?)?);
            }
            Ok(())
        })
    }

    /// The queued deliveries `admit` takes, counted, and those `keep` takes (see [`scan`]).
    pub(crate) fn pending_where(
        &self,
        admit: impl Fn(&Queued) -> bool,
        keep: impl Fn(&Queued, usize) -> bool,
    ) -> Result<Listed<Delivery>, StoreError> {
        self.with(|d| scan(&d.outbox, admit, keep))
    }

    /// Queued deliveries; 0 while the store is failing (what it holds is unknown then).
    pub fn pending_count(&self) -> usize {
        self.database().map_or(0, |d| d.outbox.len())
    }

    /// The names of webhooks that have queued deliveries.
    pub(crate) fn pending_webhooks(&self) -> Result<Vec<String>, StoreError> {
        self.with(Database::pending_webhooks)
    }

    pub(crate) fn quarantined(&self) -> usize {
        self.database().map_or(0, |d| d.quarantine.len())
    }

    /// A 2xx came back: the entry's job is done.
    pub(crate) fn delivered(&self, key: &OutboxKey) -> Result<(), StoreError> {
        self.with(|d| d.delivered(key))
    }

    /// Move an entry to its new due time in one step, so it is never in two places or none.
    pub(crate) fn reschedule(
        &self,
        key: &OutboxKey,
        delivery: &Delivery,
    ) -> Result<(), StoreError> {
        self.with(|d| d.reschedule(key, delivery))
    }
}

impl Database {
    pub(crate) fn first_due(
        &self,
        webhook: &str,
        now: DateTime<Utc>,
        skip: impl Fn(&OutboxKey) -> bool,
    ) -> Result<Option<(OutboxKey, Delivery)>, StoreError> {
        let (start, end) = due_range(webhook, None, Some(now + MILLI));
        for entry in self.outbox.range(start..end) {
            let (key, value) = entry?;
            let key = OutboxKey(key.to_vec());
            if skip(&key) || self.unflushed().hides(&key) {
                continue;
            }
            if let Some(delivery) = self.decode_or_quarantine(&key, &value)? {
                return Ok(Some((key, delivery)));
            }
        }
        Ok(None)
    }

    pub(crate) fn due(
        &self,
        webhook: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<(OutboxKey, Delivery)>, StoreError> {
        let (start, end) = due_range(webhook, None, Some(now + MILLI));
        let mut due = Vec::new();
        for entry in self.outbox.range(start..end) {
            let (key, value) = entry?;
            let key = OutboxKey(key.to_vec());
            if self.unflushed().hides(&key) {
                continue;
            }
            if let Some(delivery) = self.decode_or_quarantine(&key, &value)? {
                due.push((key, delivery));
            }
        }
        Ok(due)
    }

    pub(super) fn decode_or_quarantine(
        &self,
        key: &OutboxKey,
        value: &[u8],
    ) -> Result<Option<Delivery>, StoreError> {
        match serde_json::from_slice(value) {
            Ok(delivery) => Ok(Some(delivery)),
            Err(err) => {
                tracing::error!(key = %String::from_utf8_lossy(&key.0), error = %err, "unreadable outbox entry moved to the quarantine tree");
                (&self.outbox, &self.quarantine)
                    .transaction(|(outbox, quarantine)| {
                        outbox.remove(key.0.as_slice())?;
                        quarantine.insert(key.0.as_slice(), value)?;
                        Ok::<_, ConflictableTransactionError<()>>(())
                    })
                    .map_err(unabort)?;
                Ok(None)
            }
        }
    }

    /// When the first entry for `webhook` not yet due at `now` falls due.
    pub(crate) fn next_due_after(
        &self,
        webhook: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let (start, end) = due_range(webhook, Some(now + MILLI), None);
        let Some(entry) = self.outbox.range(start..end).next() else {
            return Ok(None);
        };
        let (key, _) = entry?;
        let at = key
            .get(webhook.len() + 1..webhook.len() + 9)
            .ok_or_else(|| StoreError::Key(String::from_utf8_lossy(&key).into_owned()))?;
        let millis = u64::from_be_bytes(at.try_into().expect("slice of 8"));
        Ok(DateTime::from_timestamp_millis(millis as i64))
    }

    /// Every queued delivery, grouped by webhook and oldest first within each.
    pub(crate) fn pending(&self) -> Result<Vec<Delivery>, StoreError> {
        self.outbox
            .iter()
            .values()
            .map(|v| Ok(serde_json::from_slice(&v?)?))
            .collect()
    }

    /// The names of webhooks that have queued deliveries.
    pub(crate) fn pending_webhooks(&self) -> Result<Vec<String>, StoreError> {
        let mut names: Vec<String> = Vec::new();
        for key in self.outbox.iter().keys() {
            let key = key?;
            let name = key.split(|b| *b == 0).next().unwrap_or_default();
            if names.last().map(String::as_bytes) != Some(name) {
                names.push(String::from_utf8_lossy(name).into_owned());
            }
        }
        Ok(names)
    }

    /// A 2xx came back: the entry's job is done.
    pub(crate) fn delivered(&self, key: &OutboxKey) -> Result<(), StoreError> {
        self.outbox.remove(key.0.as_slice())?;
        Ok(())
    }

    /// Move an entry to its new due time in one step, so it is never in two places or none.
    pub(crate) fn reschedule(
        &self,
        key: &OutboxKey,
        delivery: &Delivery,
    ) -> Result<(), StoreError> {
        let new_key = OutboxKey::new(delivery);
        let bytes = serde_json::to_vec(delivery)?;
        self.outbox
            .transaction(|tree| {
                tree.remove(key.0.as_slice())?;
                tree.insert(new_key.0.as_slice(), bytes.as_slice())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(unabort)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::store::tests::delivery;
    use crate::store::*;

    #[tokio::test]
    async fn due_is_per_webhook_ordered_and_bounded_by_now_and_reschedule_moves_an_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        let later = now + chrono::Duration::seconds(60);
        let earlier = now - chrono::Duration::seconds(60);
        let mut elsewhere = delivery("evt_z", earlier);
        // A name that sorts right after "hook" must not leak into its range.
        elsewhere.webhook = "hook-2".into();
        let entries = [
            delivery("evt_b", now),
            delivery("evt_c", later),
            delivery("evt_a", earlier),
            elsewhere,
        ];
        store
            .commit("w", &WatcherState::default(), &entries)
            .await
            .unwrap();

        let due = store.due("hook", now).unwrap();
        let ids: Vec<&str> = due.iter().map(|(_, d)| d.event_id.as_str()).collect();
        assert_eq!(ids, ["evt_a", "evt_b"]);
        let first = store.first_due("hook", now, |_| false).unwrap().unwrap();
        assert_eq!(first.1.event_id, "evt_a");
        let second = store
            .first_due("hook", now, |key| *key == first.0)
            .unwrap()
            .unwrap();
        assert_eq!(second.1.event_id, "evt_b", "skipped entries are left out");
        let next = store
            .next_due_after("hook", now)
            .unwrap()
            .map(|t| t.timestamp_millis());
        assert_eq!(next, Some(later.timestamp_millis()));
        assert_eq!(store.next_due_after("hook-2", now).unwrap(), None);
        assert_eq!(store.pending_webhooks().unwrap(), ["hook", "hook-2"]);

        let (key, mut moved) = due[0].clone();
        moved.attempts = 1;
        moved.next_attempt = later;
        store.reschedule(&key, &moved).unwrap();
        assert_eq!(store.due("hook", now).unwrap().len(), 1);
        assert_eq!(store.pending().unwrap().len(), 4);

        let (key, _) = &store.due("hook", now).unwrap()[0];
        store.delivered(key).unwrap();
        assert!(store.due("hook", now).unwrap().is_empty());
        assert_eq!(store.pending_count(), 3);
    }

    #[tokio::test]
    async fn an_unreadable_outbox_entry_is_quarantined_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        let early = delivery("evt_a", now - chrono::Duration::seconds(5));
        store
            .database()
            .unwrap()
            .outbox
            .insert(
                OutboxKey::new(&early).0,
                &b"{\"event_id\": \"evt_a\", tru"[..],
            )
            .unwrap();
        store
            .commit("w", &WatcherState::default(), &[delivery("evt_b", now)])
            .await
            .unwrap();
        let (_, next) = store.first_due("hook", now, |_| false).unwrap().unwrap();
        assert_eq!(
            next.event_id, "evt_b",
            "the queue behind a bad entry still moves"
        );
        assert_eq!(store.quarantined(), 1);
        assert_eq!(store.pending_count(), 1);
    }

    #[tokio::test]
    async fn an_entry_not_yet_on_disk_is_offered_to_no_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        let early = delivery("evt_early", now);
        let key = OutboxKey::new(&early);
        let database = store.database().unwrap();
        // A commit's transaction has written the entry; its flush has not succeeded yet.
        database.unflushed().writing(std::slice::from_ref(&key));
        database
            .outbox
            .insert(key.0.as_slice(), serde_json::to_vec(&early).unwrap())
            .unwrap();
        database.unflushed().wrote(std::slice::from_ref(&key));
        assert!(store.first_due("hook", now, |_| false).unwrap().is_none());
        assert!(store.due("hook", now).unwrap().is_empty());
        let err = store.replay(&["evt_early".into()], now).unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{err}");

        // Any flush that starts after the write covers it, whoever makes it.
        store
            .commit("w", &WatcherState::default(), &[delivery("evt_late", now)])
            .await
            .unwrap();
        let due = store.due("hook", now).unwrap();
        let ids: Vec<&str> = due.iter().map(|(_, d)| d.event_id.as_str()).collect();
        assert_eq!(ids, ["evt_early", "evt_late"]);
    }
}
