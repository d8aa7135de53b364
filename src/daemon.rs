//! `pagehook run`: the scheduler and the delivery worker, until the shutdown token fires;
//! SIGHUP reloads the config, systemd hears READY, STATUS and watchdog pings.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sd_notify::NotifyState;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::admin::{self, AdminState, Health, Part};
use crate::check::check;
use crate::config::{self, Config, Watcher};
use crate::control;
use crate::deliver::Deliverer;
use crate::fetch::Fetcher;
use crate::ops::{self, Answerer, Ops};
use crate::store::Store;

/// How long in-flight checks and deliveries get to finish after SIGTERM.
pub const DRAIN: Duration = Duration::from_secs(10);

/// How often the STATUS= line is refreshed (and, at most, the watchdog interval).
const STATUS_EVERY: Duration = Duration::from_secs(30);

/// Run the daemon until `shutdown` is cancelled, then drain and flush. `path` is the config
/// file, read again on SIGHUP.
pub async fn run(config: Config, path: PathBuf, shutdown: CancellationToken) -> anyhow::Result<()> {
    let started = Utc::now();
    let store = Store::open(&config.state_dir)?;
    let fetcher = Fetcher::with_concurrency(config.max_concurrency)
        .context("cannot build the HTTP client")?;
    let deliverer = Deliverer::new(store.clone(), config.webhooks.clone())
        .context("cannot build the webhook client")?;
    // Subscribed before anything runs, so a SIGHUP from now on reloads instead of killing us.
    let mut hangups = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    let stop = shutdown.child_token();
    let health = Health::default();
    // The running watchers, for the admin endpoint (and anything else that reports on them).
    let live = Arc::new(RwLock::new(config.watchers.clone()));
    let admin = match config.admin_listen {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on admin_listen {addr}"))?;
            let state = AdminState {
                store: store.clone(),
                health: health.clone(),
                watchers: live.clone(),
                started,
            };
            Some(tokio::spawn(admin::serve(listener, state, stop.clone())))
        }
        None => None,
    };
    info!(
        watchers = config.watchers.len(),
        webhooks = config.webhooks.len(),
        state_dir = %config.state_dir.display(),
        "pagehook running"
    );

    // A store that fails (a full disk) is opened again once it takes writes; until then
    // checks fail saying why, deliveries wait and /healthz answers 503.
    let keeper = tokio::spawn({
        let (store, stop) = (store.clone(), stop.clone());
        async move { store.keep_open(stop).await }
    });
    let mut worker = tokio::spawn({
        let (deliverer, stop) = (deliverer.clone(), stop.clone());
        let alive = health.alive(Part::Delivery);
        async move {
            let _alive = alive;
            deliverer.run(stop, DRAIN).await
        }
    });
    let answerer = Answerer::Daemon {
        fetcher: fetcher.clone(),
        deliverer: deliverer.clone(),
        started,
    };
    let control_socket = tokio::spawn({
        let stop = stop.clone();
        let (state_dir, store, live) = (config.state_dir.clone(), store.clone(), live.clone());
        // Each request sees the watchers running when it arrives, as reloads swap them.
        let handle = move |request| {
            let ops = Ops {
                store: store.clone(),
                watchers: live.read().expect("live watchers").clone(),
                answerer: answerer.clone(),
            };
            async move {
                ops.answer(request, Utc::now())
                    .await
                    .map_err(|err| err.to_string())
            }
        };
        async move { control::serve(&state_dir, handle, stop).await }
    });
    let (reloads, reloaded) = mpsc::channel(1);
    let mut scheduler = tokio::spawn({
        let scheduler = Scheduler::new(fetcher, store.clone(), deliverer.clone());
        let (watchers, stop) = (config.watchers.clone(), stop.clone());
        let alive = health.alive(Part::Scheduler);
        async move {
            let _alive = alive;
            scheduler.run(watchers, reloaded, stop).await
        }
    });

    let mut current = config;
    // Shown in STATUS= until a reload succeeds, so `systemctl status` tells why edits are ignored.
    let mut rejected: Option<String> = None;
    notify(&[NotifyState::Ready]);
    let watchdog = sd_notify::watchdog_enabled();
    // Half the watchdog timeout, as sd_watchdog_enabled(3) advises: one late tick is no restart.
    let every = watchdog.map_or(STATUS_EVERY, |w| (w / 2).min(STATUS_EVERY));
    let mut tick = tokio::time::interval(every);
    // A part that ends before `stop` is a fault; after it, the normal end of a drain.
    let (mut scheduler_done, mut worker_done) = (None, None);
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            done = &mut scheduler => {
                scheduler_done = Some(done);
                break;
            }
            done = &mut worker => {
                worker_done = Some(done);
                break;
            }
            _ = hangups.recv() => {
                rejected = reload(&path, &mut current, &deliverer, &reloads, &live).await.err();
                report_status(&store, &current.watchers, rejected.as_deref(), started);
            }
            _ = tick.tick() => {
                if watchdog.is_some() {
                    notify(&[NotifyState::Watchdog]);
                }
                report_status(&store, &current.watchers, rejected.as_deref(), started);
            }
        }
    }
    notify(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: draining checks and deliveries"),
    ]);
    let unexpected = !stop.is_cancelled();
    stop.cancel();
    let scheduler_done = match scheduler_done {
        Some(done) => done,
        None => scheduler.await,
    };
    let worker_done = match worker_done {
        Some(done) => done,
        None => worker.await,
    };
    if let Some(mut admin) = admin {
        // Graceful shutdown waits for open connections; a scraper's idle keep-alive must not
        // hold up the exit.
        if tokio::time::timeout(Duration::from_secs(1), &mut admin)
            .await
            .is_err()
        {
            admin.abort();
            // Awaited so that its handle on the store is gone when `run` returns.
            let _ = admin.await;
        }
    }
    if let Err(err) = keeper.await {
        warn!(error = %err, "the state store's keeper panicked");
    }
    match control_socket.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            warn!(error = %err, "the control socket failed; commands could not reach the daemon")
        }
        Err(err) => warn!(error = %err, "the control socket panicked"),
    }
    store.flush().await?;
    scheduler_done.context("the scheduler panicked")??;
    worker_done.context("the delivery worker panicked")?;
    if unexpected {
        // Exit non-zero so that Restart=on-failure brings the daemon back.
        anyhow::bail!("the scheduler or the delivery worker stopped unexpectedly");
    }
    info!("pagehook stopped");
    Ok(())
}

fn notify(state: &[NotifyState]) {
    if let Err(err) = sd_notify::notify(state) {
        debug!(error = %err, "cannot notify systemd");
    }
}

/// Tell systemd what `systemctl status` should show under the unit.
fn report_status(
    store: &Store,
    watchers: &[Arc<Watcher>],
    rejected: Option<&str>,
    started: DateTime<Utc>,
) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    match ops::status(store, watchers, Utc::now(), Some(started)) {
        Ok(report) => {
            let mut line = report.summary();
            if let Some(rejected) = rejected {
                line = format!("{line}; {rejected}");
            }
            notify(&[NotifyState::Status(&line)]);
        }
        // Most likely the store failing: say so where the operator looks.
        Err(err) => notify(&[NotifyState::Status(&err.to_string())]),
    }
}

/// SIGHUP: read the config again and hand it to the scheduler and the delivery worker. A file
/// that does not validate changes nothing; the error says so in a line for STATUS=.
async fn reload(
    path: &Path,
    current: &mut Config,
    deliverer: &Deliverer,
    reloads: &mpsc::Sender<Vec<Arc<Watcher>>>,
    live: &RwLock<Vec<Arc<Watcher>>>,
) -> Result<(), String> {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now]),
        Err(_) => notify(&[NotifyState::Reloading]),
    }
    info!(config = %path.display(), "SIGHUP: reloading the config");
    let loaded = match config::load(path) {
        Ok(loaded) => loaded,
        Err(err) => {
            for diagnostic in &err.errors {
                error!(problem = %diagnostic, "invalid config");
            }
            error!(
                errors = err.errors.len(),
                "reload rejected; still running the previous config"
            );
            notify(&[NotifyState::Ready]);
            return Err(format!(
                "last reload rejected ({} errors in {}), running the previous config",
                err.errors.len(),
                path.display()
            ));
        }
    };
    for warning in &loaded.warnings {
        warn!(problem = %warning.as_warning(), "config warning");
    }
    let mut new = loaded.config;
    // Bound at start-up: the store is open, the port is listening, the fetcher is built.
    if new.state_dir != current.state_dir {
        warn!(state_dir = %new.state_dir.display(), "state_dir changed; it takes effect at the next restart");
        new.state_dir = current.state_dir.clone();
    }
    if new.admin_listen != current.admin_listen {
        warn!("admin_listen changed; it takes effect at the next restart");
        new.admin_listen = current.admin_listen;
    }
    if new.max_concurrency != current.max_concurrency {
        warn!("max_concurrency changed; it takes effect at the next restart");
        new.max_concurrency = current.max_concurrency;
    }
    deliverer.set_webhooks(new.webhooks.clone());
    if reloads.send(new.watchers.clone()).await.is_err() {
        // The scheduler is gone; the main loop notices on its next turn.
        return Ok(());
    }
    *live.write().expect("live watchers") = new.watchers.clone();
    *current = new;
    notify(&[NotifyState::Ready]);
    Ok(())
}

/// How a reload changes the running watchers.
#[derive(Debug, Default, PartialEq)]
struct Plan {
    added: Vec<String>,
    removed: Vec<String>,
    /// Changed, and whether its next run must be computed again (schedule or jitter moved).
    changed: Vec<(String, bool)>,
    unchanged: Vec<String>,
}

fn plan(old: &BTreeMap<String, Arc<Watcher>>, new: &[Arc<Watcher>]) -> Plan {
    let mut plan = Plan::default();
    for watcher in new {
        match old.get(&watcher.name) {
            None => plan.added.push(watcher.name.clone()),
            // The compiled watcher has no PartialEq (selectors, regexes); its Debug form spells
            // out every setting, so equal text means an equal definition.
            Some(before) if format!("{before:?}") == format!("{watcher:?}") => {
                plan.unchanged.push(watcher.name.clone())
            }
            Some(before) => {
                let reschedule =
                    before.schedule != watcher.schedule || before.offset != watcher.offset;
                plan.changed.push((watcher.name.clone(), reschedule));
            }
        }
    }
    let kept: HashSet<&str> = new.iter().map(|w| w.name.as_str()).collect();
    plan.removed = old
        .keys()
        .filter(|name| !kept.contains(name.as_str()))
        .cloned()
        .collect();
    plan
}

struct Scheduler {
    watchers: BTreeMap<String, Arc<Watcher>>,
    /// Due times, earliest first; `next` says where each watcher sits in it.
    queue: BTreeSet<(DateTime<Utc>, String)>,
    next: HashMap<String, DateTime<Utc>>,
    /// Watchers whose last check got no slot to fetch in, by the slot they have been waiting
    /// since: their next check keeps that place in the host's line.
    waiting: HashMap<String, DateTime<Utc>>,
    fetcher: Fetcher,
    store: Store,
    deliverer: Deliverer,
}

impl Scheduler {
    fn new(fetcher: Fetcher, store: Store, deliverer: Deliverer) -> Self {
        Scheduler {
            watchers: BTreeMap::new(),
            queue: BTreeSet::new(),
            next: HashMap::new(),
            waiting: HashMap::new(),
            fetcher,
            store,
            deliverer,
        }
    }

    /// When a watcher (new to this scheduler) runs first: after downtime, once now rather than
    /// once per slot it missed. With the store failing, now: the check says why it cannot run.
    fn first_run(&self, watcher: &Watcher, now: DateTime<Utc>) -> DateTime<Utc> {
        let last = self
            .store
            .watcher_state(&watcher.name)
            .ok()
            .and_then(|state| state.last_check);
        if watcher.schedule.is_overdue(last, now, watcher.offset) {
            now
        } else {
            watcher.schedule.next_after(now, watcher.offset)
        }
    }

    fn enqueue(&mut self, name: &str, at: DateTime<Utc>) {
        if let Some(old) = self.next.insert(name.to_owned(), at) {
            self.queue.remove(&(old, name.to_owned()));
        }
        self.queue.insert((at, name.to_owned()));
    }

    fn apply(&mut self, watchers: Vec<Arc<Watcher>>, now: DateTime<Utc>) {
        let plan = plan(&self.watchers, &watchers);
        for name in &plan.removed {
            self.watchers.remove(name);
            self.waiting.remove(name);
            if let Some(at) = self.next.remove(name) {
                self.queue.remove(&(at, name.clone()));
            }
        }
        let mut rescheduled = Vec::new();
        for watcher in watchers {
            let name = watcher.name.clone();
            self.watchers.insert(name.clone(), watcher);
            let fresh = plan.added.contains(&name)
                || plan.changed.iter().any(|(n, moved)| *n == name && *moved);
            if fresh {
                rescheduled.push(name);
            }
        }
        for name in rescheduled {
            let at = self.first_run(&self.watchers[&name], now);
            self.enqueue(&name, at);
        }
        info!(
            added = plan.added.len(),
            removed = plan.removed.len(),
            changed = plan.changed.len(),
            unchanged = plan.unchanged.len(),
            "watchers loaded"
        );
    }

    async fn run(
        mut self,
        watchers: Vec<Arc<Watcher>>,
        mut reloads: mpsc::Receiver<Vec<Arc<Watcher>>>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        self.apply(watchers, Utc::now());
        let mut checks = JoinSet::new();
        let mut running = HashSet::new();
        loop {
            let wait = self
                .queue
                .first()
                .map_or(Duration::from_secs(3600), |(at, _)| until(*at));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(watchers) = reloads.recv() => self.apply(watchers, Utc::now()),
                Some(done) = checks.join_next(), if !checks.is_empty() => {
                    let (name, served) = done.context("a check panicked")?;
                    running.remove(&name);
                    if served {
                        self.waiting.remove(&name);
                    }
                }
                _ = tokio::time::sleep(wait) => {
                    let now = Utc::now();
                    while let Some((at, name)) = self.queue.first().cloned() {
                        if at > now {
                            break;
                        }
                        let watcher = self.watchers[&name].clone();
                        self.enqueue(&name, watcher.schedule.next_after(now, watcher.offset));
                        if !running.insert(name.clone()) {
                            debug!(watcher = name.as_str(), "previous check still running; slot skipped");
                            continue;
                        }
                        let due = *self.waiting.entry(name).or_insert(at);
                        checks.spawn(self.check_task(watcher, due));
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

    /// A check due since `due`. It waits inside the fetcher for its host's and a global slot,
    /// so one slow host never holds up the others, and ends with the watcher's name and whether
    /// it was served (got a slot).
    fn check_task(
        &self,
        watcher: Arc<Watcher>,
        due: DateTime<Utc>,
    ) -> impl Future<Output = (String, bool)> + Send + 'static {
        let (fetcher, store, deliverer) = (
            self.fetcher.clone(),
            self.store.clone(),
            self.deliverer.clone(),
        );
        async move {
            // Any outcome may have queued an event: a change, `watch.failing` or
            // `watch.recovered`. A wake with nothing due costs one empty range scan.
            let outcome = check(&watcher, &fetcher, &store, due).await;
            deliverer.wake();
            (watcher.name.clone(), !outcome.got_no_slot())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    use crate::config::testing::NoEnv;

    fn watchers(tables: &str) -> Vec<Arc<Watcher>> {
        let text = format!(
            "[webhooks.a]\nurl = \"https://a.example\"\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n{tables}"
        );
        config::parse(&text, Path::new("w.toml"), &NoEnv)
            .unwrap()
            .config
            .watchers
    }

    fn watcher(name: &str, schedule: &str, css: &str) -> String {
        format!(
            "[[watchers]]\nname = \"{name}\"\nurl = \"https://s.example/{name}\"\nschedule = \"{schedule}\"\nfields.p = {{ css = \"{css}\" }}\n"
        )
    }

    #[tokio::test]
    async fn a_reload_keeps_unchanged_slots_reschedules_changed_ones_and_starts_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now: DateTime<Utc> = "2026-11-27T06:00:30Z".parse().unwrap();
        for name in ["same", "sched", "gone"] {
            let ran = crate::store::WatcherState {
                last_check: Some(now),
                ..Default::default()
            };
            store.commit(name, &ran, &[]).await.unwrap();
        }
        let deliverer = Deliverer::new(store.clone(), BTreeMap::new()).unwrap();
        let mut scheduler = Scheduler::new(Fetcher::new().unwrap(), store, deliverer);
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let tables = |list: &[(&str, &str)]| {
            let text: String = list
                .iter()
                .map(|(name, every)| watcher(name, every, ".p") + "jitter = \"0s\"\n")
                .collect();
            watchers(&text)
        };

        scheduler.apply(
            tables(&[
                ("same", "every 5m"),
                ("sched", "every 5m"),
                ("gone", "every 5m"),
            ]),
            now,
        );
        assert_eq!(scheduler.next["same"], at("2026-11-27T06:05:00Z"));

        let later = now + chrono::TimeDelta::minutes(1);
        scheduler.apply(
            tables(&[
                ("same", "every 5m"),
                ("sched", "every 1h"),
                ("new", "every 5m"),
            ]),
            later,
        );
        assert_eq!(
            scheduler.next["same"],
            at("2026-11-27T06:05:00Z"),
            "slot kept"
        );
        assert_eq!(
            scheduler.next["sched"],
            at("2026-11-27T07:00:00Z"),
            "new schedule"
        );
        assert_eq!(
            scheduler.next["new"], later,
            "never ran, so it runs at once"
        );
        assert!(!scheduler.next.contains_key("gone"));
        assert_eq!(scheduler.queue.len(), 3);
        assert_eq!(scheduler.watchers.len(), 3);
    }

    #[test]
    fn a_reload_plan_sorts_watchers_by_what_happened_to_them() {
        let old: BTreeMap<String, Arc<Watcher>> = watchers(
            &[
                watcher("same", "every 5m", ".p"),
                watcher("selector", "every 5m", ".p"),
                watcher("schedule", "every 5m", ".p"),
                watcher("gone", "every 5m", ".p"),
            ]
            .concat(),
        )
        .into_iter()
        .map(|w| (w.name.clone(), w))
        .collect();
        let new = watchers(
            &[
                watcher("same", "every 5m", ".p"),
                watcher("selector", "every 5m", ".price"),
                watcher("schedule", "every 1h", ".p"),
                watcher("new", "every 5m", ".p"),
            ]
            .concat(),
        );
        assert_eq!(
            plan(&old, &new),
            Plan {
                added: vec!["new".into()],
                removed: vec!["gone".into()],
                changed: vec![("selector".into(), false), ("schedule".into(), true)],
                unchanged: vec!["same".into()],
            }
        );
    }
}
