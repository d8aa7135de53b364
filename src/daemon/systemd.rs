//! Telling systemd how the daemon is doing: READY, RELOADING, STOPPING, watchdog pings and the
//! STATUS= line under `systemctl status` (sd_notify(3); a no-op outside a systemd service).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sd_notify::NotifyState;
use tracing::debug;

use crate::config::Watcher;
use crate::ops;
use crate::store::Store;

pub(super) fn tell_systemd(state: &[NotifyState]) {
    if let Err(err) = sd_notify::notify(state) {
        debug!(error = %err, "cannot notify systemd");
    }
}

/// Tell systemd what `systemctl status` should show under the unit.
pub(super) fn report_status(
    store: &Store,
    watchers: &[Arc<Watcher>],
    rejected: Option<&str>,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    // Counted watcher by watcher: a report of them all is a hundred megabytes at 100,000.
    match ops::Statuses::read(store, watchers, now, Some(started)).and_then(|s| s.summary()) {
        Ok(mut line) => {
            if let Some(rejected) = rejected {
                line = format!("{line}; {rejected}");
            }
            tell_systemd(&[NotifyState::Status(&line)]);
        }
        // Most likely the store failing: say so where the operator looks.
        Err(err) => tell_systemd(&[NotifyState::Status(&err.to_string())]),
    }
}
