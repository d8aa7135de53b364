//! The admin endpoint on `daemon.admin_listen`: `/healthz` for load balancers and monitors,
//! `/metrics` for Prometheus, and the dashboard for people.

mod dashboard;

mod auth;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info};

use crate::clock::Clock;
use crate::config::Watcher;
use crate::metrics;
use crate::store::{self, Store};

/// The long-running parts whose death makes the daemon unhealthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Scheduler,
    Delivery,
}

/// Which parts are alive. Each part holds an `Alive` guard for as long as its task runs, so a
/// task that returns or panics is reported without any cooperation from it.
#[derive(Clone, Default)]
pub struct Health {
    scheduler: Arc<AtomicBool>,
    delivery: Arc<AtomicBool>,
}

impl Health {
    fn flag(&self, part: Part) -> &AtomicBool {
        match part {
            Part::Scheduler => &self.scheduler,
            Part::Delivery => &self.delivery,
        }
    }

    pub(crate) fn set(&self, part: Part, alive: bool) {
        self.flag(part).store(alive, Ordering::SeqCst);
    }

    pub(crate) fn is_alive(&self, part: Part) -> bool {
        self.flag(part).load(Ordering::SeqCst)
    }

    /// Mark `part` alive until the returned guard is dropped.
    pub fn alive(&self, part: Part) -> Alive {
        self.set(part, true);
        Alive {
            health: self.clone(),
            part,
        }
    }
}

pub struct Alive {
    health: Health,
    part: Part,
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.health.set(self.part, false);
    }
}

/// What the admin handlers read.
#[derive(Clone)]
pub struct AdminState {
    pub store: Store,
    pub health: Health,
    /// The running watchers, replaced on reload.
    pub watchers: Arc<RwLock<Vec<Arc<Watcher>>>>,
    /// When the daemon started: watchers it has not checked yet have been due since then.
    pub started: DateTime<Utc>,
    /// The daemon's clock: the dashboard's "now".
    pub clock: Clock,
    /// How the dashboard tells a person to replay an event.
    pub replay: Replay,
    /// `[daemon] admin_token`: when set, every route but /healthz asks for it.
    pub token: Option<crate::config::AdminToken>,
}

pub use dashboard::Replay;

/// The /healthz body: each part "ok" or what is wrong with it.
#[derive(Debug, Serialize)]
struct HealthReport {
    status: &'static str,
    scheduler: String,
    delivery_worker: String,
    store: String,
}

pub fn router(state: AdminState) -> Router {
    // Open: load balancers and kubelets probe /healthz without credentials.
    let open = Router::new().route("/healthz", get(healthz));
    let guarded = Router::new()
        .route("/metrics", get(metrics_text))
        .merge(dashboard::routes());
    auth::guard(guarded, open, state.token.clone()).with_state(state)
}

/// Serve the admin endpoint on `listener` until `shutdown`.
pub(crate) async fn serve(listener: TcpListener, state: AdminState, shutdown: CancellationToken) {
    if let Ok(addr) = listener.local_addr() {
        info!(addr = %addr, "admin endpoint: the dashboard at /, /healthz and /metrics");
    }
    let stopped = async move { shutdown.cancelled().await };
    if let Err(err) = axum::serve(listener, router(state))
        .with_graceful_shutdown(stopped)
        .await
    {
        error!(error = %err, "admin endpoint stopped");
    }
}

fn part(alive: bool) -> String {
    if alive { "ok" } else { "not running" }.to_owned()
}

async fn healthz(State(state): State<AdminState>) -> Response {
    // A failing store says since when and why, rather than fail the probe afresh each time.
    let store = match state.store.health() {
        store::Health::Writable => match state.store.probe_writable().await {
            Ok(()) => "ok".to_owned(),
            Err(err) => format!("not writable: {err}"),
        },
        failing => format!("not writable: {failing}"),
    };
    let report = HealthReport {
        status: "ok",
        scheduler: part(state.health.is_alive(Part::Scheduler)),
        delivery_worker: part(state.health.is_alive(Part::Delivery)),
        store,
    };
    let healthy = [&report.scheduler, &report.delivery_worker, &report.store]
        .iter()
        .all(|s| *s == "ok");
    let (code, report) = if healthy {
        (StatusCode::OK, report)
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            HealthReport {
                status: "unhealthy",
                ..report
            },
        )
    };
    (code, axum::Json(report)).into_response()
}

async fn metrics_text(State(state): State<AdminState>) -> Response {
    let watchers = state.watchers.read().expect("live watchers").clone();
    let (text, err) = metrics::scrape(&state.store, &watchers, Utc::now(), state.started);
    // The counters are still worth serving; the store gauges keep their last values. A failed
    // store has said so once already, not once per scrape.
    match err {
        Some(err) if state.store.is_writable() => {
            error!(error = %err, "cannot read the store for /metrics")
        }
        Some(err) => debug!(error = %err, "cannot read the store for /metrics"),
        None => {}
    }
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
}
