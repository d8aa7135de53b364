//! `pagehook run`: the scheduler and the delivery worker, until the shutdown token fires.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::check::check;
use crate::config::{Config, Watcher};
use crate::deliver::Deliverer;
use crate::fetch::Fetcher;
use crate::store::Store;

/// How long in-flight checks and deliveries get to finish after SIGTERM.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Run the daemon until `shutdown` is cancelled, then drain and flush.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let store = Store::open(&config.state_dir)?;
    let fetcher = Fetcher::with_concurrency(config.max_concurrency)
        .context("cannot build the HTTP client")?;
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
    let scheduler = Scheduler {
        watchers: config.watchers,
        fetcher,
        store: store.clone(),
        deliverer,
    };
    scheduler.run(shutdown).await?;
    worker.await.context("delivery worker panicked")?;
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
                        checks.spawn(self.check_task(index));
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

    /// A due check. It waits inside the fetcher for its host's and a global slot, so one
    /// slow host never holds up the others.
    fn check_task(&self, index: usize) -> impl Future<Output = usize> + Send + 'static {
        let watcher = self.watchers[index].clone();
        let (fetcher, store, deliverer) = (
            self.fetcher.clone(),
            self.store.clone(),
            self.deliverer.clone(),
        );
        async move {
            // Any outcome may have queued an event: a change, `watch.failing` or
            // `watch.recovered`. A wake with nothing due costs one empty range scan.
            check(&watcher, &fetcher, &store).await;
            deliverer.wake();
            index
        }
    }
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
