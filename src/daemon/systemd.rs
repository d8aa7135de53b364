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
    match ops::status(store, watchers, now, Some(started)) {
        Ok(report) => {
            let mut line = report.summary();
            if let Some(rejected) = rejected {
                line = format!("{line}; {rejected}");
            }
            tell_systemd(&[NotifyState::Status(&line)]);
        }
        // Most likely the store failing: say so where the operator looks.
        Err(err) => tell_systemd(&[NotifyState::Status(&err.to_string())]),
    }
}
