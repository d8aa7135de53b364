//! The state directory: one sled database with a tree per job. State and outbox change
//! together in one transaction, so a crash can neither lose an event nor record a change
//! without one, and an outbox entry is offered for delivery only once a flush has put it on
//! disk.
//!
//! `Store` is the handle every part of the daemon clones. sled stops taking any work after an
//! I/O error (a full disk); the handle then closes the database, answers every call with
//! `StoreError::Unavailable`, and `keep_open` opens it again once the disk takes writes.

mod dead;
mod health;
mod outbox;
mod private;
mod state;
mod watermark;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use chrono::Utc;
use sled::transaction::TransactionError;
use tokio::sync::watch;
use tracing::{error, info};

pub(crate) use dead::{DeadLetter, EndpointFailure};
pub(crate) use health::Health;
pub use outbox::{AttemptRecord, Delivery};
pub(crate) use outbox::{Listed, OutboxKey, Queued};
use outbox::{due_bytes, name_prefix, outbox_event_id};
pub(crate) use state::Rewrite;
pub use state::{HistoryEntry, WatcherState};
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
    #[error("the state of watcher `{0}` kept changing while it was being rewritten; try again")]
    Contended(String),
    #[error(
        "the state of watcher `{0}` changed while this check ran (an import, or another check); the next check starts from it"
    )]
    Moved(String),
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

fn unabort(err: TransactionError<()>) -> StoreError {
    match err {
        TransactionError::Storage(err) => StoreError::Io(err),
        TransactionError::Abort(()) => unreachable!("no transaction here aborts"),
    }
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

    pub(crate) fn health(&self) -> Health {
        self.shared.health.borrow().clone()
    }

    pub(crate) fn is_writable(&self) -> bool {
        self.shared.health.borrow().is_writable()
    }

    /// Wait until the store takes writes (at once if it does).
    pub(crate) async fn writable(&self) {
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
    pub(crate) async fn reopen(&self) -> Result<(), StoreError> {
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

    /// Prove the store still takes writes, down to the disk: what /healthz reports.
    pub(crate) async fn probe_writable(&self) -> Result<(), StoreError> {
        let database = self.database()?;
        let result = database.probe_writable().await;
        self.checked(&database, result)
    }

    /// Put everything written so far on disk.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let database = self.database()?;
        let result = database.flush().await;
        self.checked(&database, result)
    }
}

/// How long an open waits for a lock that may be about to be let go.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

impl Database {
    fn open(dir: &Path) -> Result<Database, StoreError> {
        use StoreError::Locked;
        let open = || {
            sled::Config::new()
                .path(dir)
                .cache_capacity(CACHE_BYTES)
                .open()
                .map_err(|source| match &source {
                    // sled reports a held lock as a bare io error; name the real cause.
                    sled::Error::Io(io) if io.to_string().contains("lock") => {
                        Locked(dir.to_owned())
                    }
                    _ => StoreError::Sled {
                        path: dir.to_owned(),
                        source,
                    },
                })
        };
        // sled's flusher thread lets go of the lock a moment after the last handle in this
        // process is dropped: a store closed and opened again waits that moment out, while
        // one held by another process is still refused within LOCK_WAIT.
        let started = std::time::Instant::now();
        let db = loop {
            match open() {
                Err(Locked(_)) if started.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other?,
            }
        };
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

    pub(crate) async fn probe_writable(&self) -> Result<(), StoreError> {
        self.db
            .insert("healthz", Utc::now().to_rfc3339().as_bytes())?;
        self.flush().await
    }

    /// Flush, then show the lanes the entries it put on disk.
    pub(crate) async fn flush(&self) -> Result<(), StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use serde_json::json;

    pub(super) fn delivery(id: &str, due: DateTime<Utc>) -> Delivery {
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

    pub(super) fn entry(kind: &str, price: &str) -> HistoryEntry {
        HistoryEntry {
            checked_at: Utc::now(),
            kind: kind.into(),
            changed: vec![],
            event_id: None,
            values: [("price".to_string(), json!(price))].into(),
        }
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
