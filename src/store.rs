//! The state directory: one sled database with a tree per job. State and outbox change
//! together in one transaction, so a crash can neither lose an event nor record a change
//! without one, and an outbox entry is offered for delivery only once a flush has put it on
//! disk.
//!
//! `Store` is the handle every part of the daemon clones. sled stops taking any work after an
//! I/O error (a full disk); the handle then closes the database, answers every call with
//! `StoreError::Unavailable`, and `keep_open` opens it again once the disk takes writes.

mod health;
mod private;
mod watermark;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use tokio::sync::watch;
use tracing::{error, info};

use crate::extract::Values;
pub use health::Health;
use watermark::Watermark;

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
    #[error("cannot create the state directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the state store failed ({0}); nothing is recorded or delivered until pagehook reopens it"
    )]
    Unavailable(String),
    #[error("state store holds an unreadable record: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("state store holds a malformed outbox key {0:?}")]
    Key(String),
    #[error("no queued or dead delivery has the event id `{0}`")]
    NotFound(String),
}

impl StoreError {
    /// The disk or sled failed, rather than one record or request: sled takes no more work
    /// after these, so the database has to be opened again.
    fn is_storage(&self) -> bool {
        matches!(self, StoreError::Io(_) | StoreError::Sled { .. })
    }

    /// What went wrong, in a few words. sled shows an I/O error as Debug text, and often
    /// re-wraps the OS error in one whose message is that text; its kind reads better then.
    fn reason(&self) -> String {
        match self {
            StoreError::Io(sled::Error::Io(io))
            | StoreError::Sled {
                source: sled::Error::Io(io),
                ..
            } => match (io.raw_os_error(), io.kind()) {
                (None, kind) if kind != std::io::ErrorKind::Other => kind.to_string(),
                _ => io.to_string(),
            },
            other => other.to_string(),
        }
    }
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
    pub fn last_error(&self) -> Option<&str> {
        self.history.last().and_then(|a| a.error.as_deref())
    }
}

/// What one attempt got back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub at: DateTime<Utc>,
    pub duration_ms: u64,
    /// The HTTP status, when the endpoint answered at all.
    pub status: Option<u16>,
    /// Why the attempt did not count as delivered; None when it did.
    pub error: Option<String>,
    /// The start of the response body, for a human reading the dead letter.
    pub response: Option<String>,
}

/// An event that will not be attempted again until someone replays it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    #[serde(flatten)]
    pub delivery: Delivery,
    pub died_at: DateTime<Utc>,
    pub reason: String,
}

/// An endpoint that answered 410 Gone: it asked not to be sent this event again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointFailure {
    pub since: DateTime<Utc>,
    pub reason: String,
}

/// One recorded set of values: a baseline or a change. Unchanged checks add nothing, so the
/// history reads as the values' own timeline rather than a log of every fetch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub checked_at: DateTime<Utc>,
    /// "baseline", "changed" (an event was sent) or "quiet" (below the notify rules).
    pub kind: String,
    /// The fields that changed (empty for a baseline).
    pub changed: Vec<String>,
    /// The event this change produced, if any.
    pub event_id: Option<String>,
    pub values: Values,
}

/// Where an outbox entry sits: grouped by webhook, then ordered by due time, so "what is due
/// for this endpoint" is one short range scan.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OutboxKey(Vec<u8>);

impl OutboxKey {
    fn new(d: &Delivery) -> Self {
        let mut key = name_prefix(&d.webhook);
        key.extend_from_slice(&due_bytes(d.next_attempt));
        key.extend_from_slice(d.event_id.as_bytes());
        OutboxKey(key)
    }
}

/// The event id an outbox key ends with, after the webhook's name and the due time.
fn outbox_event_id(key: &[u8]) -> Option<&[u8]> {
    let name_end = key.iter().position(|&b| b == 0)?;
    key.get(name_end + 1 + 8..)
}

/// Dead letters are keyed by event, then webhook, so replay by event id is a prefix scan.
fn dead_key(d: &Delivery) -> Vec<u8> {
    let mut key = d.event_id.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(d.webhook.as_bytes());
    key
}

const MILLI: chrono::TimeDelta = chrono::TimeDelta::milliseconds(1);

/// Outbox keys start with the webhook's name, history keys with the watcher's (then time and a
/// store-wide id), so one prefix scan lists either oldest first.
fn name_prefix(name: &str) -> Vec<u8> {
    let mut key = name.as_bytes().to_vec();
    key.push(0);
    key
}

fn due_bytes(at: DateTime<Utc>) -> [u8; 8] {
    (at.timestamp_millis().max(0) as u64).to_be_bytes()
}

fn due_range(
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

/// A cheap-to-clone handle on the state directory. Every clone (the scheduler's, the delivery
/// lanes', the admin endpoint's, the control socket's) shares one open database, so closing a
/// failed one and opening it again happens once, for all of them.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

struct Shared {
    dir: PathBuf,
    /// None from a failure until the database is open again. A std lock: it is held only to
    /// clone or swap the Arc, never across an await.
    open: RwLock<Option<Arc<Database>>>,
    health: watch::Sender<Health>,
}

impl Store {
    /// Open the store in `dir`, creating the directory if it is missing. The directory is made
    /// private to this user, and the process umask narrowed to 077 (see `private::prepare`).
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        private::prepare(dir).map_err(|source| StoreError::Dir {
            path: dir.to_owned(),
            source,
        })?;
        let database = Database::open(dir)?;
        Ok(Store {
            shared: Arc::new(Shared {
                dir: dir.to_owned(),
                open: RwLock::new(Some(Arc::new(database))),
                health: watch::Sender::new(Health::Writable),
            }),
        })
    }

    pub fn health(&self) -> Health {
        self.shared.health.borrow().clone()
    }

    pub fn is_writable(&self) -> bool {
        self.shared.health.borrow().is_writable()
    }

    /// Wait until the store takes writes (at once if it does).
    pub async fn writable(&self) {
        let mut health = self.shared.health.subscribe();
        // The sender lives as long as `self`, so this only returns once writable.
        let _ = health.wait_for(Health::is_writable).await;
    }

    fn database(&self) -> Result<Arc<Database>, StoreError> {
        match &*self.shared.open.read().expect("store lock") {
            Some(database) => Ok(database.clone()),
            None => Err(StoreError::Unavailable(match self.health() {
                Health::Failing { error, .. } => error,
                Health::Writable => "it is being reopened".into(),
            })),
        }
    }

    /// Run `op` on the open database, closing the database if it fails.
    fn with<T>(
        &self,
        op: impl FnOnce(&Database) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let database = self.database()?;
        let result = op(&database);
        self.checked(&database, result)
    }

    /// Pass `result` on; if it is a storage error, close `database` first. The caller still
    /// holds `database`, so it cannot have been reopened in between.
    fn checked<T>(
        &self,
        database: &Arc<Database>,
        result: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Err(err) = &result {
            if err.is_storage() {
                self.close(database, err);
            }
        }
        result
    }

    /// sled takes no more work after an I/O error and keeps only in memory what it could not
    /// write, so `database` goes out of service at once: from here on every call fails with
    /// `Unavailable` rather than read writes that never reached the disk. Its files stay
    /// locked until the last call using it returns, then `reopen` can open them again.
    fn close(&self, database: &Arc<Database>, err: &StoreError) {
        let mut open = self.shared.open.write().expect("store lock");
        if !open.as_ref().is_some_and(|d| Arc::ptr_eq(d, database)) {
            // Another caller met the failure first.
            return;
        }
        let closed = open.take();
        drop(open);
        self.shared.health.send_replace(Health::Failing {
            since: Utc::now(),
            error: err.reason(),
            reopen: None,
        });
        error!(
            error = %err,
            "the state store failed: checks fail and deliveries are held until it is reopened"
        );
        drop(closed);
    }

    /// Open a failed store again; Ok if it is open. The reopened database holds exactly what
    /// reached the disk, and it must take a write and a flush before anything uses it.
    pub async fn reopen(&self) -> Result<(), StoreError> {
        if self.shared.open.read().expect("store lock").is_some() {
            return Ok(());
        }
        let dir = self.shared.dir.clone();
        let database = tokio::task::spawn_blocking(move || Database::open(&dir))
            .await
            .expect("opening sled does not panic")?;
        database.probe_writable().await?;
        let since = match self.health() {
            Health::Failing { since, .. } => Some(since),
            Health::Writable => None,
        };
        *self.shared.open.write().expect("store lock") = Some(Arc::new(database));
        self.shared.health.send_replace(Health::Writable);
        let down_s = since.map_or(0, |since| (Utc::now() - since).num_seconds());
        info!(
            down_s,
            "the state store is open again: checks and deliveries resume"
        );
        Ok(())
    }

    /// What a full disk does to the store, for tests anywhere in the crate.
    #[cfg(test)]
    pub(crate) fn fail_as_if(&self, error: &str) {
        let database = self.database().expect("an open store");
        let err = StoreError::Io(sled::Error::Io(std::io::Error::other(error.to_owned())));
        self.close(&database, &err);
    }

    pub fn watcher_state(&self, watcher: &str) -> Result<WatcherState, StoreError> {
        self.with(|d| d.watcher_state(watcher))
    }

    /// Write a watcher's new state and its deliveries atomically, then make them durable
    /// before anything is sent: a receiver never sees an event that a crash could undo.
    pub async fn commit(
        &self,
        watcher: &str,
        state: &WatcherState,
        deliveries: &[Delivery],
    ) -> Result<(), StoreError> {
        self.commit_recorded(watcher, state, deliveries, None, 0)
            .await
    }

    /// `commit`, also recording `entry` in the watcher's history in the same transaction, then
    /// dropping its oldest entries beyond `limit`.
    pub async fn commit_recorded(
        &self,
        watcher: &str,
        state: &WatcherState,
        deliveries: &[Delivery],
        entry: Option<&HistoryEntry>,
        limit: usize,
    ) -> Result<(), StoreError> {
        let database = self.database()?;
        let result = database
            .commit_recorded(watcher, state, deliveries, entry, limit)
            .await;
        self.checked(&database, result)
    }

    /// A watcher's recorded values, newest first, at most `limit` of them.
    pub fn history(&self, watcher: &str, limit: usize) -> Result<Vec<HistoryEntry>, StoreError> {
        self.with(|d| d.history(watcher, limit))
    }

    /// Names of every watcher the store has state for, including ones since removed from the
    /// config (their state is kept in case they come back).
    pub fn known_watchers(&self) -> Result<Vec<String>, StoreError> {
        self.with(Database::known_watchers)
    }

    /// Prove the store still takes writes, down to the disk: what /healthz reports.
    pub async fn probe_writable(&self) -> Result<(), StoreError> {
        let database = self.database()?;
        let result = database.probe_writable().await;
        self.checked(&database, result)
    }

    /// The first entry for `webhook` due at `now` that `skip` does not name and that is on
    /// disk (skipped keys are not decoded). An entry that cannot be decoded is quarantined and
    /// reported, so one bad record never stops the queue behind it.
    pub fn first_due(
        &self,
        webhook: &str,
        now: DateTime<Utc>,
        skip: impl Fn(&OutboxKey) -> bool,
    ) -> Result<Option<(OutboxKey, Delivery)>, StoreError> {
        self.with(|d| d.first_due(webhook, now, skip))
    }

    /// Every entry for `webhook` due at `now` and on disk, oldest first.
    pub fn due(
        &self,
        webhook: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<(OutboxKey, Delivery)>, StoreError> {
        self.with(|d| d.due(webhook, now))
    }

    /// When the first entry for `webhook` not yet due at `now` falls due.
    pub fn next_due_after(
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

    /// Queued deliveries; 0 while the store is failing (what it holds is unknown then).
    pub fn pending_count(&self) -> usize {
        self.database().map_or(0, |d| d.outbox.len())
    }

    /// The names of webhooks that have queued deliveries.
    pub fn pending_webhooks(&self) -> Result<Vec<String>, StoreError> {
        self.with(Database::pending_webhooks)
    }

    pub fn dead(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.with(Database::dead)
    }

    pub fn dead_count(&self) -> usize {
        self.database().map_or(0, |d| d.dead.len())
    }

    pub fn quarantined(&self) -> usize {
        self.database().map_or(0, |d| d.quarantine.len())
    }

    /// A 2xx came back: the entry's job is done.
    pub fn delivered(&self, key: &OutboxKey) -> Result<(), StoreError> {
        self.with(|d| d.delivered(key))
    }

    /// Move an entry to its new due time in one step, so it is never in two places or none.
    pub fn reschedule(&self, key: &OutboxKey, delivery: &Delivery) -> Result<(), StoreError> {
        self.with(|d| d.reschedule(key, delivery))
    }

    /// Move an entry from the outbox to the dead letters in one step.
    pub fn bury(&self, key: &OutboxKey, letter: &DeadLetter) -> Result<(), StoreError> {
        self.with(|d| d.bury(key, letter))
    }

    /// Queue events again, due now, with their ids unchanged so receivers can deduplicate:
    /// dead letters go back to the outbox and queued entries are moved to the front. Returns
    /// the deliveries requeued; an id found nowhere is an error naming it.
    pub fn replay(
        &self,
        event_ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.with(|d| d.replay(event_ids, now))
    }

    /// Queue every dead letter again.
    pub fn replay_dead(&self, now: DateTime<Utc>) -> Result<Vec<Delivery>, StoreError> {
        self.with(|d| d.replay_dead(now))
    }

    pub fn endpoint_failure(&self, webhook: &str) -> Result<Option<EndpointFailure>, StoreError> {
        self.with(|d| d.endpoint_failure(webhook))
    }

    pub fn endpoint_failures(&self) -> Result<Vec<(String, EndpointFailure)>, StoreError> {
        self.with(Database::endpoint_failures)
    }

    pub fn set_endpoint_failure(
        &self,
        webhook: &str,
        failure: Option<&EndpointFailure>,
    ) -> Result<(), StoreError> {
        self.with(|d| d.set_endpoint_failure(webhook, failure))
    }

    /// Put everything written so far on disk.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let database = self.database()?;
        let result = database.flush().await;
        self.checked(&database, result)
    }
}

/// One open sled database: the trees, and which outbox entries are known to be on disk.
struct Database {
    db: sled::Db,
    state: sled::Tree,
    outbox: sled::Tree,
    dead: sled::Tree,
    endpoints: sled::Tree,
    /// Outbox entries that could not be decoded, kept byte for byte for a human to inspect.
    quarantine: sled::Tree,
    history: sled::Tree,
    /// A std mutex: held for a map operation, never across an await.
    unflushed: Mutex<Watermark>,
}

impl Database {
    fn open(dir: &Path) -> Result<Database, StoreError> {
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
        // What sled recovered may so far sit only in the page cache (a crash between a write
        // and its flush, a flush that failed): put it on disk before any of it is delivered.
        std::fs::File::open(dir.join("db"))
            .and_then(|log| log.sync_all())
            .map_err(|err| StoreError::Io(err.into()))?;
        Ok(Database {
            state: db.open_tree("state")?,
            outbox: db.open_tree("outbox")?,
            dead: db.open_tree("dead")?,
            endpoints: db.open_tree("endpoints")?,
            quarantine: db.open_tree("quarantine")?,
            history: db.open_tree("history")?,
            db,
            unflushed: Mutex::default(),
        })
    }

    fn unflushed(&self) -> std::sync::MutexGuard<'_, Watermark> {
        self.unflushed.lock().expect("unflushed keys")
    }

    pub fn watcher_state(&self, watcher: &str) -> Result<WatcherState, StoreError> {
        match self.state.get(watcher)? {
            Some(bytes) => Ok(serde_json::from_slice(&bytes)?),
            None => Ok(WatcherState::default()),
        }
    }

    /// The state, its deliveries and `entry` in one transaction; the deliveries stay hidden
    /// from the lanes until the flush after it succeeds. Trimming the history happens after
    /// the commit: it only bounds the history's size, so a crash between the two costs nothing.
    pub async fn commit_recorded(
        &self,
        watcher: &str,
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
                state_tree.insert(watcher.as_bytes(), state_bytes.as_slice())?;
                for (key, bytes) in &entries {
                    outbox_tree.insert(key.0.as_slice(), bytes.as_slice())?;
                }
                if let Some((key, bytes)) = &history {
                    history_tree.insert(key.as_slice(), bytes.as_slice())?;
                }
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(unabort);
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

    fn trim_history(&self, watcher: &str, limit: usize) -> Result<(), StoreError> {
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
    pub fn history(&self, watcher: &str, limit: usize) -> Result<Vec<HistoryEntry>, StoreError> {
        self.history
            .scan_prefix(name_prefix(watcher))
            .values()
            .rev()
            .take(limit)
            .map(|v| Ok(serde_json::from_slice(&v?)?))
            .collect()
    }

    /// Names of every watcher the store has state for, including ones since removed from the
    /// config (their state is kept in case they come back).
    pub fn known_watchers(&self) -> Result<Vec<String>, StoreError> {
        self.state
            .iter()
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?).into_owned()))
            .collect()
    }

    pub async fn probe_writable(&self) -> Result<(), StoreError> {
        self.db
            .insert("healthz", Utc::now().to_rfc3339().as_bytes())?;
        self.flush().await
    }

    pub fn first_due(
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

    pub fn due(
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

    fn decode_or_quarantine(
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
    pub fn next_due_after(
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
    pub fn pending(&self) -> Result<Vec<Delivery>, StoreError> {
        self.outbox
            .iter()
            .values()
            .map(|v| Ok(serde_json::from_slice(&v?)?))
            .collect()
    }

    /// The names of webhooks that have queued deliveries.
    pub fn pending_webhooks(&self) -> Result<Vec<String>, StoreError> {
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

    pub fn dead(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.dead
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

    /// Move an entry from the outbox to the dead letters in one step.
    pub fn bury(&self, key: &OutboxKey, letter: &DeadLetter) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(letter)?;
        let dead_key = dead_key(&letter.delivery);
        (&self.outbox, &self.dead)
            .transaction(|(outbox, dead)| {
                outbox.remove(key.0.as_slice())?;
                dead.insert(dead_key.as_slice(), bytes.as_slice())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(unabort)?;
        Ok(())
    }

    /// Queue events again, due now, with their ids unchanged so receivers can deduplicate:
    /// dead letters go back to the outbox and queued entries are moved to the front. Returns
    /// the deliveries requeued; an id found nowhere is an error naming it.
    pub fn replay(
        &self,
        event_ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut found = Vec::new();
        let mut seen = std::collections::HashSet::new();
        // Whole ids only: a suffix would requeue whatever happens to end with it.
        for id in event_ids.iter().filter(|id| seen.insert(id.as_str())) {
            let before = found.len();
            for entry in self.dead.scan_prefix([id.as_bytes(), &[0]].concat()) {
                let (_, value) = entry?;
                found.push(Found::Dead(
                    serde_json::from_slice::<DeadLetter>(&value)?.delivery,
                ));
            }
            for entry in self.outbox.iter() {
                let (key, value) = entry?;
                // An entry not yet on disk is not queued yet: a replay must not send it early.
                if outbox_event_id(&key) == Some(id.as_bytes())
                    && !self.unflushed().hides(&OutboxKey(key.to_vec()))
                {
                    found.push(Found::Queued(
                        OutboxKey(key.to_vec()),
                        serde_json::from_slice(&value)?,
                    ));
                }
            }
            if found.len() == before {
                return Err(StoreError::NotFound(id.clone()));
            }
        }
        found.into_iter().map(|f| self.requeue(f, now)).collect()
    }

    /// Queue every dead letter again.
    pub fn replay_dead(&self, now: DateTime<Utc>) -> Result<Vec<Delivery>, StoreError> {
        self.dead()?
            .into_iter()
            .map(|letter| self.requeue(Found::Dead(letter.delivery), now))
            .collect()
    }

    fn requeue(&self, found: Found, now: DateTime<Utc>) -> Result<Delivery, StoreError> {
        let (old_outbox, old_dead, mut delivery) = match found {
            Found::Dead(d) => (None, Some(dead_key(&d)), d),
            Found::Queued(key, d) => (Some(key), None, d),
        };
        // A replay starts the retry schedule afresh; the history of what went before stays.
        delivery.attempts = 0;
        delivery.next_attempt = now;
        let key = OutboxKey::new(&delivery);
        let bytes = serde_json::to_vec(&delivery)?;
        (&self.outbox, &self.dead)
            .transaction(|(outbox, dead)| {
                if let Some(old) = &old_outbox {
                    outbox.remove(old.0.as_slice())?;
                }
                if let Some(old) = &old_dead {
                    dead.remove(old.as_slice())?;
                }
                outbox.insert(key.0.as_slice(), bytes.as_slice())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(unabort)?;
        Ok(delivery)
    }

    pub fn endpoint_failure(&self, webhook: &str) -> Result<Option<EndpointFailure>, StoreError> {
        match self.endpoints.get(webhook)? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    pub fn endpoint_failures(&self) -> Result<Vec<(String, EndpointFailure)>, StoreError> {
        self.endpoints
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                Ok((
                    String::from_utf8_lossy(&key).into_owned(),
                    serde_json::from_slice(&value)?,
                ))
            })
            .collect()
    }

    pub fn set_endpoint_failure(
        &self,
        webhook: &str,
        failure: Option<&EndpointFailure>,
    ) -> Result<(), StoreError> {
        match failure {
            Some(failure) => self
                .endpoints
                .insert(webhook, serde_json::to_vec(failure)?)?,
            None => self.endpoints.remove(webhook)?,
        };
        Ok(())
    }

    /// Flush, then show the lanes the entries it put on disk.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let covered = self.unflushed().flush_starts();
        // Not `flush_async`: several of those in flight at once can wait forever
        // (spacejam/sled#1241), which a `once` over many changed pages hit.
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .expect("a sled flush does not panic")?;
        self.unflushed().flushed(covered);
        Ok(())
    }
}

enum Found {
    Dead(Delivery),
    Queued(OutboxKey, Delivery),
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
            history: Vec::new(),
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
        assert_eq!(store.due("hook", now).unwrap().len(), 1);
        assert_eq!(
            store.watcher_state("other").unwrap(),
            WatcherState::default()
        );
    }

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
    async fn dead_letters_keep_their_history_and_replay_keeps_the_event_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        let entries = [delivery("evt_a", now), delivery("evt_b", now)];
        store
            .commit("w", &WatcherState::default(), &entries)
            .await
            .unwrap();
        for (key, mut d) in store.due("hook", now).unwrap() {
            d.attempts = 3;
            d.history.push(AttemptRecord {
                at: now,
                duration_ms: 7,
                status: Some(500),
                error: Some("HTTP 500".into()),
                response: Some("boom".into()),
            });
            let reason = "gave up".to_string();
            store
                .bury(
                    &key,
                    &DeadLetter {
                        delivery: d,
                        died_at: now,
                        reason,
                    },
                )
                .unwrap();
        }
        assert_eq!(store.pending_count(), 0);
        let dead = store.dead().unwrap();
        assert_eq!(dead.len(), 2);
        assert_eq!(
            dead[0].delivery.history[0].response.as_deref(),
            Some("boom")
        );

        let err = store.replay(&["evt_nope".into()], now).unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{err}");
        let replayed = store.replay(&["evt_b".into()], now).unwrap();
        assert_eq!(replayed.len(), 1);
        assert_eq!(replayed[0].attempts, 0, "the retry schedule starts afresh");
        assert_eq!(replayed[0].history.len(), 1, "the history stays");
        assert_eq!(store.due("hook", now).unwrap()[0].1.event_id, "evt_b");
        assert_eq!(store.dead().unwrap().len(), 1);

        // Replaying a queued event moves it to the front without duplicating it.
        let later = now + chrono::Duration::seconds(600);
        let (key, mut d) = store.due("hook", now).unwrap().remove(0);
        d.next_attempt = later;
        store.reschedule(&key, &d).unwrap();
        store.replay(&["evt_b".into()], now).unwrap();
        assert_eq!(store.pending_count(), 1);
        assert_eq!(store.due("hook", now).unwrap().len(), 1);

        assert_eq!(store.replay_dead(now).unwrap().len(), 1);
        assert!(store.dead().unwrap().is_empty());
        assert_eq!(store.pending_count(), 2);
    }

    #[tokio::test]
    async fn replay_takes_whole_event_ids_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        let later = now + chrono::Duration::seconds(600);
        let mut waiting = delivery("evt_0193a6f2c1d87e405b", later);
        waiting.attempts = 3;
        store
            .commit("w", &WatcherState::default(), &[waiting.clone()])
            .await
            .unwrap();
        for id in ["5b", "", "evt_0193a6f2c1d87e40", "0193a6f2c1d87e405b"] {
            let err = store.replay(&[id.to_owned()], now).unwrap_err();
            assert!(matches!(err, StoreError::NotFound(_)), "{id:?}: {err}");
        }
        assert_eq!(
            store.pending().unwrap(),
            [waiting.clone()],
            "nothing was requeued"
        );
        let whole = waiting.event_id.clone();
        let replayed = store.replay(&[whole.clone(), whole], now).unwrap();
        assert_eq!(replayed.len(), 1, "an id given twice is queued once");
        assert_eq!((replayed[0].attempts, replayed[0].next_attempt), (0, now));
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
    async fn an_endpoint_failure_is_recorded_and_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let failure = EndpointFailure {
            since: Utc::now(),
            reason: "410".into(),
        };
        store.set_endpoint_failure("hook", Some(&failure)).unwrap();
        assert_eq!(
            store.endpoint_failure("hook").unwrap(),
            Some(failure.clone())
        );
        assert_eq!(
            store.endpoint_failures().unwrap(),
            [("hook".to_string(), failure)]
        );
        store.set_endpoint_failure("hook", None).unwrap();
        assert_eq!(store.endpoint_failure("hook").unwrap(), None);
    }

    fn entry(kind: &str, price: &str) -> HistoryEntry {
        HistoryEntry {
            checked_at: Utc::now(),
            kind: kind.into(),
            changed: vec![],
            event_id: None,
            values: [("price".to_string(), json!(price))].into(),
        }
    }

    #[tokio::test]
    async fn history_is_newest_first_per_watcher_and_trimmed_to_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let state = WatcherState::default();
        for price in ["1", "2", "3", "4"] {
            store
                .commit_recorded("w", &state, &[], Some(&entry("changed", price)), 3)
                .await
                .unwrap();
        }
        store
            .commit_recorded("w-2", &state, &[], Some(&entry("baseline", "9")), 3)
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
            .commit_recorded("w", &state, &[], Some(&entry("changed", "5")), 0)
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

    #[test]
    fn a_second_opener_is_told_who_holds_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let _held = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path())
            .err()
            .expect("second open must fail");
        assert!(matches!(err, StoreError::Locked(_)), "{err}");
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

    #[tokio::test]
    async fn a_failed_store_refuses_work_until_reopened_and_every_clone_sees_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let lane = store.clone();
        let state = WatcherState {
            seq: 7,
            ..Default::default()
        };
        store.commit("w", &state, &[]).await.unwrap();
        store.flush().await.unwrap();

        let in_use = store.database().unwrap();
        store.fail_as_if("No space left on device");
        assert!(!lane.is_writable());
        let err = lane.watcher_state("w").unwrap_err();
        assert!(
            matches!(&err, StoreError::Unavailable(e) if e.contains("No space left")),
            "{err}"
        );
        assert!(lane.probe_writable().await.is_err(), "/healthz says so too");
        assert!(
            matches!(
                lane.commit("w", &state, &[]).await,
                Err(StoreError::Unavailable(_))
            ),
            "a check cannot commit"
        );

        // A call still running on the failed database keeps its files locked.
        let err = store.reopen().await.unwrap_err();
        assert!(matches!(err, StoreError::Locked(_)), "{err}");
        drop(in_use);
        store.reopen().await.unwrap();
        assert!(lane.is_writable());
        assert_eq!(lane.watcher_state("w").unwrap().seq, 7);
        lane.probe_writable().await.unwrap();
    }

    #[tokio::test]
    async fn keep_open_reopens_a_failed_store_by_itself() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let keeper = tokio::spawn({
            let (store, stop) = (store.clone(), stop.clone());
            async move { store.keep_open(stop).await }
        });
        store.fail_as_if("No space left on device");
        assert!(matches!(store.health(), Health::Failing { .. }));
        tokio::time::timeout(std::time::Duration::from_secs(5), store.writable())
            .await
            .expect("reopened within the first backoff");
        store.watcher_state("w").unwrap();
        stop.cancel();
        keeper.await.unwrap();
    }
}
