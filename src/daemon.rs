//! `pagehook run`: the scheduler and the delivery worker, until the shutdown token fires.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::check::{Outcome, check, check_all};
use crate::commands::OnceReport;
use crate::config::{Config, Watcher};
use crate::control::{self, Request};
use crate::deliver::Deliverer;
use crate::fetch::Fetcher;
use crate::report::{Deliveries, Replayed};
use crate::store::{Store, StoreError};

/// Checks in flight at once; the rest wait their turn rather than pile onto the network.
pub const MAX_CONCURRENT_CHECKS: usize = 32;
/// How long in-flight checks and deliveries get to finish after SIGTERM.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Run the daemon until `shutdown` is cancelled, then drain and flush.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let store = Store::open(&config.state_dir)?;
    let fetcher = Fetcher::new().context("cannot build the HTTP client")?;
    let deliverer = Deliverer::new(store.clone(), config.webhooks.clone())
        .context("cannot build the webhook client")?;
    info!(
        watchers = config.watchers.len(),
        webhooks = config.webhooks.len(),
        state_dir = %config.state_dir.display(),
        "pagehook running"
    );

    let worker = tokio::spawn({
        let deliverer = deliverer.clone();
        let shutdown = shutdown.clone();
        async move { deliverer.run(shutdown, DRAIN).await }
    });
    let control = Control {
        watchers: config.watchers.clone(),
        fetcher: fetcher.clone(),
        store: store.clone(),
        deliverer: deliverer.clone(),
    };
    let control_socket = tokio::spawn({
        let shutdown = shutdown.clone();
        let state_dir = config.state_dir.clone();
        async move {
            control::serve(
                &state_dir,
                move |request| control.clone().handle(request),
                shutdown,
            )
            .await
        }
    });
    let scheduler = Scheduler {
        watchers: config.watchers,
        fetcher,
        store: store.clone(),
        deliverer,
    };
    scheduler.run(shutdown).await?;
    worker.await.context("delivery worker panicked")?;
    if let Err(err) = control_socket.await.context("control socket panicked")? {
        warn!(error = %err, "the control socket failed; commands opened while pagehook ran could not reach it");
    }
    store.flush().await?;
    info!("pagehook stopped");
    Ok(())
}

struct Scheduler {
    watchers: Vec<Arc<Watcher>>,
    fetcher: Fetcher,
    store: Store,
    deliverer: Deliverer,
}

impl Scheduler {
    async fn run(&self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let now = Utc::now();
        let mut queue = BTreeSet::new();
        for (index, watcher) in self.watchers.iter().enumerate() {
            let last = self.store.watcher_state(&watcher.name)?.last_check;
            // After downtime a watcher runs once now, not once per slot it missed.
            let first = if watcher.schedule.is_overdue(last, now, watcher.offset) {
                now
            } else {
                watcher.schedule.next_after(now, watcher.offset)
            };
            queue.insert((first, index));
        }

        let slots = Arc::new(Semaphore::new(MAX_CONCURRENT_CHECKS));
        let mut checks = JoinSet::new();
        let mut running = HashSet::new();
        loop {
            let wait = queue
                .first()
                .map_or(Duration::from_secs(3600), |(at, _)| until(*at));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(done) = checks.join_next(), if !checks.is_empty() => {
                    running.remove(&done.context("a check panicked")?);
                }
                _ = tokio::time::sleep(wait) => {
                    let now = Utc::now();
                    while let Some(&(at, index)) = queue.first() {
                        if at > now {
                            break;
                        }
                        queue.pop_first();
                        let watcher = &self.watchers[index];
                        queue.insert((watcher.schedule.next_after(now, watcher.offset), index));
                        if !running.insert(index) {
                            debug!(watcher = watcher.name.as_str(), "previous check still running; slot skipped");
                            continue;
                        }
                        checks.spawn(self.check_task(index, slots.clone()));
                    }
                }
            }
        }

        if tokio::time::timeout(DRAIN, async { while checks.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            warn!(
                left = checks.len(),
                "checks still running at the drain deadline were cut off; nothing of theirs was committed"
            );
        }
        Ok(())
    }

    fn check_task(
        &self,
        index: usize,
        slots: Arc<Semaphore>,
    ) -> impl Future<Output = usize> + Send + 'static {
        let watcher = self.watchers[index].clone();
        let (fetcher, store, deliverer) = (
            self.fetcher.clone(),
            self.store.clone(),
            self.deliverer.clone(),
        );
        async move {
            let _slot = slots.acquire_owned().await.expect("semaphore never closed");
            if let Outcome::Changed { .. } = check(&watcher, &fetcher, &store).await {
                deliverer.wake();
            }
            index
        }
    }
}

/// Answers the control socket with the daemon's own store and workers.
#[derive(Clone)]
struct Control {
    watchers: Vec<Arc<Watcher>>,
    fetcher: Fetcher,
    store: Store,
    deliverer: Deliverer,
}

impl Control {
    async fn handle(self, request: Request) -> Result<serde_json::Value, String> {
        let output = match request {
            Request::Deliveries => to_json(Deliveries::read(&self.store)),
            Request::Replay { event_ids, dead } => {
                let replayed = Replayed::run(&self.store, &event_ids, dead, Utc::now());
                self.deliverer.wake();
                to_json(replayed)
            }
            Request::Once { watchers } => {
                let selected = if watchers.is_empty() {
                    self.watchers.clone()
                } else {
                    let mut selected = Vec::new();
                    for name in &watchers {
                        match self.watchers.iter().find(|w| &w.name == name) {
                            Some(w) => selected.push(w.clone()),
                            None => {
                                return Err(format!("the running daemon has no watcher `{name}`"));
                            }
                        }
                    }
                    selected
                };
                let checks =
                    check_all(&selected, &self.fetcher, &self.store, MAX_CONCURRENT_CHECKS).await;
                self.deliverer.wake();
                to_json(Ok::<_, StoreError>(OnceReport {
                    checks,
                    deliveries: None,
                    queued: self.store.pending_count(),
                }))
            }
        };
        output.map_err(|err| err.to_string())
    }
}

fn to_json<T: serde::Serialize, E: std::fmt::Display>(
    result: Result<T, E>,
) -> Result<serde_json::Value, anyhow::Error> {
    let value = result.map_err(|err| anyhow::anyhow!("{err}"))?;
    Ok(serde_json::to_value(value)?)
}

fn until(at: DateTime<Utc>) -> Duration {
    (at - Utc::now()).to_std().unwrap_or_default()
}

/// A token cancelled by the first SIGTERM or SIGINT.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            warn!("cannot listen for signals; stop pagehook with SIGKILL");
            return;
        };
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        info!(
            signal = name,
            "shutting down: draining checks and deliveries"
        );
        cancel.cancel();
    });
    token
}
