//! `pagehook run`: the scheduler and the delivery worker, until the shutdown token fires;
//! SIGHUP reloads the config, systemd hears READY, STATUS and watchdog pings.

mod control_socket;
mod scheduler;
mod systemd;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use sd_notify::NotifyState;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::admin::{self, AdminState, Health, Part};
use crate::clock::Clock;
use crate::config::{self, Config, Watcher};
use crate::control;
use crate::deliver::Deliverer;
use crate::fetch::Fetcher;
use crate::ops::{Answerer, Ops};
use crate::store::Store;
use scheduler::Scheduler;
use systemd::{report_status, tell_systemd};

/// How long in-flight checks and deliveries get to finish after SIGTERM.
pub const DRAIN: Duration = Duration::from_secs(10);

/// How often the STATUS= line is refreshed (and, at most, the watchdog interval).
const STATUS_EVERY: Duration = Duration::from_secs(30);

/// Run the daemon until `shutdown` is cancelled, then drain and flush. `path` is the config
/// file, read again on SIGHUP.
pub async fn run(config: Config, path: PathBuf, shutdown: CancellationToken) -> anyhow::Result<()> {
    run_on(Clock::System, config, path, shutdown).await
}

/// [`run`] with the scheduler and the delivery lanes on `clock`: tests move it by hand.
pub async fn run_on(
    clock: Clock,
    config: Config,
    path: PathBuf,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let started = clock.now();
    let store = Store::open(&config.state_dir)?;
    // `[browser]` is read at start: a reload keeps the browser that runs.
    let fetcher = Fetcher::with_browser(config.max_concurrency, config.browser.clone())
        .context("cannot build the HTTP client")?;
    let browser = fetcher.clone();
    let deliverer = Deliverer::on_clock(store.clone(), config.webhooks.clone(), clock.clone())
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
                clock: clock.clone(),
                // Absolute, so the command works from any directory.
                replay: admin::Replay::new(
                    &std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone()),
                    (config.cluster.shards > 1)
                        .then(|| config.cluster.node.clone().ok())
                        .flatten(),
                ),
                token: config.admin_token.clone(),
            };
            Some(tokio::spawn(admin::serve(listener, state, stop.clone())))
        }
        None => None,
    };
    let shard = config.cluster.node.clone().unwrap_or_default();
    crate::metrics::shard(shard, config.cluster.shards);
    info!(
        watchers = config.watchers.len(),
        webhooks = config.webhooks.len(),
        shard,
        shards = config.cluster.shards,
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
    // Bound before READY=1, so that READY=1 means commands reach the daemon.
    let control_socket = match control::bind(&config.state_dir) {
        Ok(bound) => Some(tokio::spawn(control_socket::serve(
            bound,
            Ops {
                store: store.clone(),
                watchers: Vec::new(),
                answerer,
            },
            live.clone(),
            clock.clone(),
            stop.clone(),
        ))),
        Err(err) => {
            warn!(error = %err, "cannot bind the control socket; commands cannot reach the daemon");
            None
        }
    };
    let (reloads, reloaded) = mpsc::channel(1);
    let mut scheduler = tokio::spawn({
        let scheduler = Scheduler::new(fetcher, store.clone(), deliverer.clone(), clock.clone());
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
    tell_systemd(&[NotifyState::Ready]);
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
                report_status(&store, &current.watchers, rejected.as_deref(), started, clock.now());
            }
            _ = tick.tick() => {
                if watchdog.is_some() {
                    tell_systemd(&[NotifyState::Watchdog]);
                }
                report_status(&store, &current.watchers, rejected.as_deref(), started, clock.now());
            }
        }
    }
    tell_systemd(&[
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
    if let Some(control_socket) = control_socket {
        if let Err(err) = control_socket.await {
            warn!(error = %err, "the control socket panicked");
        }
    }
    browser.close().await;
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
        Ok(now) => tell_systemd(&[NotifyState::Reloading, now]),
        Err(_) => tell_systemd(&[NotifyState::Reloading]),
    }
    info!(config = %path.display(), "SIGHUP: reloading the config");
    // A node stays the shard it started as: its store holds that shard's watchers.
    let loaded = match config::load_for(path, config::Node::Kept(&current.cluster)) {
        Ok(loaded) => loaded,
        Err(err) => {
            for diagnostic in &err.errors {
                error!(problem = %diagnostic, "invalid config");
            }
            error!(
                errors = err.errors.len(),
                "reload rejected; still running the previous config"
            );
            tell_systemd(&[NotifyState::Ready]);
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
    if new.admin_token != current.admin_token {
        warn!("admin_token changed; it takes effect at the next restart");
        new.admin_token = current.admin_token.clone();
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
    tell_systemd(&[NotifyState::Ready]);
    Ok(())
}

/// A token cancelled by the first SIGTERM or SIGINT.
pub(crate) fn shutdown_on_signals() -> CancellationToken {
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
