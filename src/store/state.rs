//! What pagehook remembers of each watcher: its state, committed with its deliveries in one
//! transaction, and its history of recorded values.

use super::{Database, Delivery, OutboxKey, Store, StoreError, due_bytes, name_prefix};
use crate::extract::Values;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

/// What pagehook remembers about one watcher between checks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WatcherState {
    /// The values of the last successful check; None until the baseline.
    pub values: Option<Values>,
    /// The seq of the last event produced for this watcher.
    pub seq: u64,
    pub last_check: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    /// The reason of the last failed check, beside `last_error`; None in state written
    /// before reasons existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reason: Option<crate::reason::Reason>,
    /// The values receivers were last told of, per field: notify rules measure a change from
    /// these, so small moves that were recorded quietly still add up. None in state written
    /// before notify rules existed, where the recorded values stand in.
    #[serde(default)]
    pub announced: Option<Values>,
    /// A `watch.failing` event went out and no `watch.recovered` yet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failing_sent: bool,
    /// What the values were last extracted with (URL, request, fields): the validators and
    /// body hash below only stand for those values while it is unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// The page's ETag and Last-Modified at its last full fetch, for conditional requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// SHA-256 (hex) of the last body the values came from: the same body is not parsed again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_hash: Option<String>,
}

/// What `status` shows of a watcher's state, read without the values last announced and the
/// validators: for 100,000 watchers, those are as much work again as the rest.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ShownState {
    #[serde(default)]
    pub(crate) values: Option<Values>,
    #[serde(default)]
    pub(crate) last_check: Option<DateTime<Utc>>,
    #[serde(default)]
    pub(crate) last_success: Option<DateTime<Utc>>,
    #[serde(default)]
    pub(crate) consecutive_failures: u32,
    #[serde(default)]
    pub(crate) last_error: Option<String>,
    #[serde(default)]
    pub(crate) last_reason: Option<crate::reason::Reason>,
}

/// The times and reason of a watcher's last check, and nothing else of its state.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Checked {
    #[serde(default)]
    pub(crate) last_check: Option<DateTime<Utc>>,
    #[serde(default)]
    pub(crate) last_success: Option<DateTime<Utc>>,
    #[serde(default)]
    pub(crate) last_reason: Option<crate::reason::Reason>,
}

/// One recorded set of values: a baseline or a change. Unchanged checks add nothing, so the
/// history reads as the values' own timeline rather than a log of every fetch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub(crate) checked_at: DateTime<Utc>,
    /// "baseline", "changed" (an event was sent) or "quiet" (below the notify rules).
    pub(crate) kind: String,
    /// The fields that changed (empty for a baseline).
    pub(crate) changed: Vec<String>,
    /// The event this change produced, if any.
    pub(crate) event_id: Option<String>,
    pub(crate) values: Values,
}

impl Store {
    pub fn watcher_state(&self, watcher: &str) -> Result<WatcherState, StoreError> {
        self.with(|d| d.watcher_state(watcher))
    }

    /// When the watcher was last checked, read without building its values: the scheduler
    /// asks it of every watcher at start, and 100,000 value maps built and dropped at once
    /// leave the heap that much larger.
    pub(crate) fn last_check(&self, watcher: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        #[derive(Deserialize)]
        struct LastCheck {
            #[serde(default)]
            last_check: Option<DateTime<Utc>>,
        }
        self.with(|d| match d.state.get(watcher)? {
            Some(bytes) => Ok(serde_json::from_slice::<LastCheck>(&bytes)?.last_check),
            None => Ok(None),
        })
    }

    /// How the last check went, read without the values: what the dashboard counts and
    /// filters 100,000 watchers by.
    pub(crate) fn last_checked(&self, watcher: &str) -> Result<Checked, StoreError> {
        self.with(|d| match d.state.get(watcher)? {
            Some(bytes) => Ok(serde_json::from_slice(&bytes)?),
            None => Ok(Checked::default()),
        })
    }

    /// How many entries `watcher`'s history holds.
    pub(crate) fn history_len(&self, watcher: &str) -> Result<usize, StoreError> {
        self.with(|d| Ok(d.history.scan_prefix(name_prefix(watcher)).keys().count()))
    }

    pub(crate) fn shown_state(&self, watcher: &str) -> Result<ShownState, StoreError> {
        self.with(|d| match d.state.get(watcher)? {
            Some(bytes) => Ok(serde_json::from_slice(&bytes)?),
            None => Ok(ShownState::default()),
        })
    }

    /// Write a watcher's new state and its deliveries atomically, then make them durable
    /// before anything is sent: a receiver never sees an event that a crash could undo.
    pub async fn commit(
        &self,
        watcher: &str,
        state: &WatcherState,
        deliveries: &[Delivery],
    ) -> Result<(), StoreError> {
        self.commit_recorded(watcher, None, state, deliveries, None, 0)
            .await
    }

    /// `commit`, also recording `entry` in the watcher's history in the same transaction, then
    /// dropping its oldest entries beyond `limit`. With `before`, the state this one was
    /// stepped from, the commit fails with `StoreError::Moved` when the stored state is no
    /// longer it (an import, or a `once` beside the scheduler, committed meanwhile): what it
    /// holds would be lost, and its `seq` used twice.
    pub(crate) async fn commit_recorded(
        &self,
        watcher: &str,
        before: Option<&WatcherState>,
        state: &WatcherState,
        deliveries: &[Delivery],
        entry: Option<&HistoryEntry>,
        limit: usize,
    ) -> Result<(), StoreError> {
        let database = self.database()?;
        let result = database
            .commit_recorded(watcher, before, state, deliveries, entry, limit)
            .await;
        self.checked(&database, result)
    }

    /// A watcher's recorded values, newest first, at most `limit` of them.
    pub fn history(&self, watcher: &str, limit: usize) -> Result<Vec<HistoryEntry>, StoreError> {
        self.with(|d| d.history(watcher, limit))
    }

    /// Names of every watcher the store has state for, including ones since removed from the
    /// config (their state is kept in case they come back).
    pub(crate) fn known_watchers(&self) -> Result<Vec<String>, StoreError> {
        self.with(Database::known_watchers)
    }

    /// A watcher's state and its whole history, oldest first; None when it has no state.
    pub(crate) fn whole_watcher(
        &self,
        watcher: &str,
    ) -> Result<Option<(WatcherState, Vec<HistoryEntry>)>, StoreError> {
        self.with(|d| d.whole_watcher(watcher))
    }

    /// Write what `decide` makes of a watcher's stored state (None: it has none) and whole
    /// history, in one transaction, and return its answer. The transaction only commits if
    /// the state is still the one `decide` saw, so a check committing meanwhile is never
    /// overwritten by a decision made without it: `decide` runs again on the new state.
    /// Nothing is flushed: the caller flushes once after many.
    pub(crate) fn rewrite_watcher<T>(
        &self,
        watcher: &str,
        decide: impl Fn(Option<&WatcherState>, &[HistoryEntry]) -> (Rewrite, T),
    ) -> Result<T, StoreError> {
        self.with(|d| d.rewrite_watcher(watcher, decide))
    }
}

/// What to write for one watcher; None leaves that part as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Rewrite {
    pub(crate) state: Option<WatcherState>,
    /// The whole history, oldest first.
    pub(crate) history: Option<Vec<HistoryEntry>>,
}

/// How often `rewrite_watcher` decides again when checks keep committing under it: checks
/// are seconds apart, so a third clash means something is wrong.
const REWRITE_ATTEMPTS: usize = 3;

impl Database {
    pub(crate) fn watcher_state(&self, watcher: &str) -> Result<WatcherState, StoreError> {
        match self.state.get(watcher)? {
            Some(bytes) => Ok(serde_json::from_slice(&bytes)?),
            None => Ok(WatcherState::default()),
        }
    }

    /// The state, its deliveries and `entry` in one transaction; the deliveries stay hidden
    /// from the lanes until the flush after it succeeds. Trimming the history happens after
    /// the commit: it only bounds the history's size, so a crash between the two costs nothing.
    pub(crate) async fn commit_recorded(
        &self,
        watcher: &str,
        before: Option<&WatcherState>,
        state: &WatcherState,
        deliveries: &[Delivery],
        entry: Option<&HistoryEntry>,
        limit: usize,
    ) -> Result<(), StoreError> {
        let state_bytes = serde_json::to_vec(state)?;
        let history = match entry.filter(|_| limit > 0) {
            Some(entry) => {
                let mut key = name_prefix(watcher);
                key.extend_from_slice(&due_bytes(entry.checked_at));
                key.extend_from_slice(&self.db.generate_id()?.to_be_bytes());
                Some((key, serde_json::to_vec(entry)?))
            }
            None => None,
        };
        let entries = deliveries
            .iter()
            .map(|d| Ok((OutboxKey::new(d), serde_json::to_vec(d)?)))
            .collect::<Result<Vec<_>, serde_json::Error>>()?;
        let keys: Vec<OutboxKey> = entries.iter().map(|(key, _)| key.clone()).collect();
        self.unflushed().writing(&keys);
        let written = (&self.state, &self.outbox, &self.history)
            .transaction(|(state_tree, outbox_tree, history_tree)| {
                if let Some(before) = before {
                    let stored = match state_tree.get(watcher)? {
                        Some(bytes) => serde_json::from_slice(&bytes)
                            .map_err(|err| ConflictableTransactionError::Abort(err.into()))?,
                        None => WatcherState::default(),
                    };
                    if stored != *before {
                        let moved = StoreError::Moved(watcher.to_owned());
                        return Err(ConflictableTransactionError::Abort(moved));
                    }
                }
                state_tree.insert(watcher.as_bytes(), state_bytes.as_slice())?;
                for (key, bytes) in &entries {
                    outbox_tree.insert(key.0.as_slice(), bytes.as_slice())?;
                }
                if let Some((key, bytes)) = &history {
                    history_tree.insert(key.as_slice(), bytes.as_slice())?;
                }
                Ok(())
            })
            .map_err(|err| match err {
                TransactionError::Abort(err) => err,
                TransactionError::Storage(err) => StoreError::Io(err),
            });
        match written {
            Ok(()) => self.unflushed().wrote(&keys),
            Err(err) => {
                self.unflushed().abandoned(&keys);
                return Err(err);
            }
        }
        if history.is_some() {
            self.trim_history(watcher, limit)?;
        }
        if !deliveries.is_empty() {
            self.flush().await?;
        }
        Ok(())
    }

    pub(super) fn trim_history(&self, watcher: &str, limit: usize) -> Result<(), StoreError> {
        let prefix = name_prefix(watcher);
        let excess = self
            .history
            .scan_prefix(&prefix)
            .count()
            .saturating_sub(limit);
        for key in self.history.scan_prefix(&prefix).keys().take(excess) {
            self.history.remove(key?)?;
        }
        Ok(())
    }

    /// A watcher's recorded values, newest first, at most `limit` of them.
    pub(crate) fn history(
        &self,
        watcher: &str,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        self.history
            .scan_prefix(name_prefix(watcher))
            .values()
            .rev()
            .take(limit)
            .map(|v| Ok(serde_json::from_slice(&v?)?))
            .collect()
    }

    fn whole_watcher(
        &self,
        watcher: &str,
    ) -> Result<Option<(WatcherState, Vec<HistoryEntry>)>, StoreError> {
        let Some(bytes) = self.state.get(watcher)? else {
            return Ok(None);
        };
        let history = self
            .history
            .scan_prefix(name_prefix(watcher))
            .values()
            .map(|v| Ok(serde_json::from_slice(&v?)?))
            .collect::<Result<_, StoreError>>()?;
        Ok(Some((serde_json::from_slice(&bytes)?, history)))
    }

    fn rewrite_watcher<T>(
        &self,
        watcher: &str,
        decide: impl Fn(Option<&WatcherState>, &[HistoryEntry]) -> (Rewrite, T),
    ) -> Result<T, StoreError> {
        let prefix = name_prefix(watcher);
        for _ in 0..REWRITE_ATTEMPTS {
            let stored = self.state.get(watcher)?;
            let state: Option<WatcherState> = match &stored {
                Some(bytes) => Some(serde_json::from_slice(bytes)?),
                None => None,
            };
            // Read outside the transaction, which cannot scan; a check that adds an entry
            // meanwhile changes the state as well, and the transaction below sees that.
            let mut keys = Vec::new();
            let mut history = Vec::new();
            for item in self.history.scan_prefix(&prefix) {
                let (key, value) = item?;
                keys.push(key);
                history.push(serde_json::from_slice(&value)?);
            }
            let (rewrite, answer) = decide(state.as_ref(), &history);
            let state_bytes = rewrite.state.as_ref().map(serde_json::to_vec).transpose()?;
            let entries = match &rewrite.history {
                Some(entries) => Some(
                    entries
                        .iter()
                        .map(|entry| {
                            let mut key = prefix.clone();
                            key.extend_from_slice(&due_bytes(entry.checked_at));
                            key.extend_from_slice(&self.db.generate_id()?.to_be_bytes());
                            Ok((key, serde_json::to_vec(entry)?))
                        })
                        .collect::<Result<Vec<_>, StoreError>>()?,
                ),
                None => None,
            };
            if state_bytes.is_none() && entries.is_none() {
                return Ok(answer);
            }
            let written = (&self.state, &self.history).transaction(|(state_tree, history_tree)| {
                if state_tree.get(watcher)? != stored {
                    return Err(ConflictableTransactionError::Abort(()));
                }
                if let Some(bytes) = &state_bytes {
                    state_tree.insert(watcher.as_bytes(), bytes.as_slice())?;
                }
                if let Some(entries) = &entries {
                    for key in &keys {
                        history_tree.remove(key)?;
                    }
                    for (key, bytes) in entries {
                        history_tree.insert(key.as_slice(), bytes.as_slice())?;
                    }
                }
                Ok(())
            });
            match written {
                Ok(()) => return Ok(answer),
                Err(TransactionError::Abort(())) => continue,
                Err(TransactionError::Storage(err)) => return Err(err.into()),
            }
        }
        Err(StoreError::Contended(watcher.to_owned()))
    }

    /// Names of every watcher the store has state for, including ones since removed from the
    /// config (their state is kept in case they come back).
    pub(crate) fn known_watchers(&self) -> Result<Vec<String>, StoreError> {
        self.state
            .iter()
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?).into_owned()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;
    use crate::store::tests::{delivery, entry};
    use crate::store::*;

    #[tokio::test]
    async fn state_and_outbox_commit_together_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let state = WatcherState {
            values: Some([("price".to_string(), json!("5"))].into()),
            seq: 1,
            ..Default::default()
        };
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .commit("w", &state, &[delivery("evt_1", now)])
                .await
                .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.watcher_state("w").unwrap(), state);
        assert_eq!(store.due("hook", now).unwrap().len(), 1);
        assert_eq!(
            store.watcher_state("other").unwrap(),
            WatcherState::default()
        );
    }

    #[tokio::test]
    async fn history_is_newest_first_per_watcher_and_trimmed_to_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let state = WatcherState::default();
        for price in ["1", "2", "3", "4"] {
            store
                .commit_recorded("w", None, &state, &[], Some(&entry("changed", price)), 3)
                .await
                .unwrap();
        }
        store
            .commit_recorded("w-2", None, &state, &[], Some(&entry("baseline", "9")), 3)
            .await
            .unwrap();
        let prices = |list: Vec<HistoryEntry>| -> Vec<String> {
            list.iter()
                .map(|e| e.values["price"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(prices(store.history("w", 10).unwrap()), ["4", "3", "2"]);
        assert_eq!(prices(store.history("w", 1).unwrap()), ["4"]);
        assert_eq!(
            prices(store.history("w-2", 10).unwrap()),
            ["9"],
            "a name that extends another is its own watcher"
        );
        assert!(store.history("x", 10).unwrap().is_empty());

        store
            .commit_recorded("w", None, &state, &[], Some(&entry("changed", "5")), 0)
            .await
            .unwrap();
        assert_eq!(
            prices(store.history("w", 10).unwrap()),
            ["4", "3", "2"],
            "limit 0 records nothing"
        );
        assert_eq!(store.known_watchers().unwrap(), ["w", "w-2"]);
        store.probe_writable().await.unwrap();
    }

    #[test]
    fn state_written_before_validators_and_alerts_existed_still_loads() {
        let old = r#"{"values":{"price":"5"},"seq":3,"last_check":null,"last_success":null,"consecutive_failures":0,"last_error":null}"#;
        let state: WatcherState = serde_json::from_str(old).unwrap();
        assert_eq!(state.seq, 3);
        assert!(!state.failing_sent && state.etag.is_none() && state.body_hash.is_none());
        let round_trip = serde_json::to_string(&state).unwrap();
        assert!(
            !round_trip.contains("etag"),
            "empty new fields take no space: {round_trip}"
        );
    }
}
