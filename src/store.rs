//! The state directory: one sled database with a tree per job. State and outbox change
//! together in one transaction, so a crash can neither lose an event nor record a change
//! without one.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::extract::Values;

/// sled's default cache is 1 GB; a daemon on a small VPS needs a fraction of that.
const CACHE_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the state directory {0} is in use by another pagehook process (a running `pagehook run`?); stop it or point this command at another state_dir"
    )]
    Locked(PathBuf),
    #[error("state store at {path}: {source}")]
    Sled { path: PathBuf, source: sled::Error },
    #[error("state store: {0}")]
    Io(#[from] sled::Error),
    #[error("state store holds an unreadable record: {0}")]
    Corrupt(#[from] serde_json::Error),
}

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

/// One event on its way to one webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub event_id: String,
    pub webhook: String,
    pub watcher: String,
    /// The exact body, fixed at commit time so every attempt signs the same bytes.
    pub payload: String,
    pub created_at: DateTime<Utc>,
    /// Attempts made so far.
    pub attempts: u32,
    pub next_attempt: DateTime<Utc>,
    pub last_error: Option<String>,
}

/// Where an outbox entry sits: ordered by due time so "what is due" is one range scan.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OutboxKey(Vec<u8>);

impl OutboxKey {
    fn new(d: &Delivery) -> Self {
        let mut key = due_prefix(d.next_attempt).to_vec();
        key.extend_from_slice(d.event_id.as_bytes());
        key.push(0);
        key.extend_from_slice(d.webhook.as_bytes());
        OutboxKey(key)
    }
}

const MILLI: chrono::TimeDelta = chrono::TimeDelta::milliseconds(1);

fn due_prefix(at: DateTime<Utc>) -> [u8; 8] {
    (at.timestamp_millis().max(0) as u64).to_be_bytes()
}

/// A cheap-to-clone handle on the state directory.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    state: sled::Tree,
    outbox: sled::Tree,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(|source| match &source {
                // sled reports a held lock as a bare io error; name the real cause.
                sled::Error::Io(io) if io.to_string().contains("lock") => Locked(dir.to_owned()),
                _ => StoreError::Sled {
                    path: dir.to_owned(),
                    source,
                },
            })?;
        use StoreError::Locked;
        Ok(Store {
            state: db.open_tree("state")?,
            outbox: db.open_tree("outbox")?,
            db,
        })
    }

    pub fn watcher_state(&self, watcher: &str) -> Result<WatcherState, StoreError> {
        match self.state.get(watcher)? {
            Some(bytes) => Ok(serde_json::from_slice(&bytes)?),
            None => Ok(WatcherState::default()),
        }
    }

    /// Write a watcher's new state and its deliveries atomically, then make them durable
    /// before anything is sent: a receiver never sees an event that a crash could undo.
    pub async fn commit(
        &self,
        watcher: &str,
        state: &WatcherState,
        deliveries: &[Delivery],
    ) -> Result<(), StoreError> {
        let state_bytes = serde_json::to_vec(state)?;
        let entries = deliveries
            .iter()
            .map(|d| Ok((OutboxKey::new(d), serde_json::to_vec(d)?)))
            .collect::<Result<Vec<_>, serde_json::Error>>()?;
        (&self.state, &self.outbox)
            .transaction(|(state_tree, outbox_tree)| {
                state_tree.insert(watcher.as_bytes(), state_bytes.as_slice())?;
                for (key, bytes) in &entries {
                    outbox_tree.insert(key.0.as_slice(), bytes.as_slice())?;
                }
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(unabort)?;
        if !deliveries.is_empty() {
            self.flush().await?;
        }
        Ok(())
    }

    /// Outbox entries due at `now`, oldest first, leaving out (undecoded) those `skip` names.
    pub fn due(
        &self,
        now: DateTime<Utc>,
        skip: impl Fn(&OutboxKey) -> bool,
    ) -> Result<Vec<(OutboxKey, Delivery)>, StoreError> {
        let mut due = Vec::new();
        for entry in self.outbox.range(..due_prefix(now + MILLI).as_slice()) {
            let (key, value) = entry?;
            let key = OutboxKey(key.to_vec());
            if !skip(&key) {
                due.push((key, serde_json::from_slice(&value)?));
            }
        }
        Ok(due)
    }

    /// When the first entry not yet due at `now` falls due. Entries already due are either in
    /// flight or about to be, so they do not set the next wake-up.
    pub fn next_due_after(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
        let Some(entry) = self
            .outbox
            .range(due_prefix(now + MILLI).as_slice()..)
            .next()
        else {
            return Ok(None);
        };
        let (key, _) = entry?;
        let millis = u64::from_be_bytes(key[..8].try_into().expect("keys start with 8 bytes"));
        Ok(DateTime::from_timestamp_millis(millis as i64))
    }

    pub fn pending(&self) -> Result<Vec<Delivery>, StoreError> {
        self.outbox
            .iter()
            .values()
            .map(|v| Ok(serde_json::from_slice(&v?)?))
            .collect()
    }

    /// A 2xx came back: the entry's job is done.
    pub fn delivered(&self, key: &OutboxKey) -> Result<(), StoreError> {
        self.outbox.remove(key.0.as_slice())?;
        Ok(())
    }

    /// Move an entry to its new due time in one step, so it is never in two places or none.
    pub fn reschedule(&self, key: &OutboxKey, delivery: &Delivery) -> Result<(), StoreError> {
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

    pub async fn flush(&self) -> Result<(), StoreError> {
        // Not `flush_async`: several of those in flight at once can wait forever
        // (spacejam/sled#1241), which a `once` over many changed pages hit.
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .expect("a sled flush does not panic")?;
        Ok(())
    }
}

fn unabort(err: TransactionError<()>) -> StoreError {
    match err {
        TransactionError::Storage(err) => StoreError::Io(err),
        TransactionError::Abort(()) => unreachable!("no transaction here aborts"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn delivery(id: &str, due: DateTime<Utc>) -> Delivery {
        Delivery {
            event_id: id.into(),
            webhook: "hook".into(),
            watcher: "w".into(),
            payload: "{}".into(),
            created_at: due,
            attempts: 0,
            next_attempt: due,
            last_error: None,
        }
    }

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
        assert_eq!(store.due(now, |_| false).unwrap().len(), 1);
        assert_eq!(
            store.watcher_state("other").unwrap(),
            WatcherState::default()
        );
    }

    #[tokio::test]
    async fn due_is_ordered_and_bounded_by_now_and_reschedule_moves_an_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        let later = now + chrono::Duration::seconds(60);
        let earlier = now - chrono::Duration::seconds(60);
        let entries = [
            delivery("evt_b", now),
            delivery("evt_c", later),
            delivery("evt_a", earlier),
        ];
        store
            .commit("w", &WatcherState::default(), &entries)
            .await
            .unwrap();

        let due = store.due(now, |_| false).unwrap();
        let ids: Vec<&str> = due.iter().map(|(_, d)| d.event_id.as_str()).collect();
        assert_eq!(ids, ["evt_a", "evt_b"]);
        let not_first = store.due(now, |key| *key == due[0].0).unwrap();
        assert_eq!(not_first.len(), 1, "skipped entries are left out");
        assert_eq!(not_first[0].1.event_id, "evt_b");
        let next = store
            .next_due_after(now)
            .unwrap()
            .map(|t| t.timestamp_millis());
        assert_eq!(next, Some(later.timestamp_millis()));

        let (key, mut first) = due[0].clone();
        first.attempts = 1;
        first.next_attempt = later;
        store.reschedule(&key, &first).unwrap();
        assert_eq!(store.due(now, |_| false).unwrap().len(), 1);
        assert_eq!(store.pending().unwrap().len(), 3);

        let (key, _) = &store.due(now, |_| false).unwrap()[0];
        store.delivered(key).unwrap();
        assert!(store.due(now, |_| false).unwrap().is_empty());
        assert_eq!(store.pending().unwrap().len(), 2);
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

    #[test]
    fn a_second_opener_is_told_who_holds_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let _held = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path())
            .err()
            .expect("second open must fail");
        assert!(matches!(err, StoreError::Locked(_)), "{err}");
    }
}
