//! Whether the store takes writes, and getting it back when it does not. sled records the first
//! I/O error (a full disk) and refuses all later work, reads of what it has in memory aside;
//! only a fresh open clears that. So the handle closes a failed database at once, and
//! `keep_open` opens it again, backing off between attempts, once the disk takes writes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{Store, StoreError};

/// The first wait before reopening a failed store; each failed attempt doubles it.
const FIRST: Duration = Duration::from_millis(500);
/// The longest wait between two attempts: an outage that ends is noticed within this.
const LONGEST: Duration = Duration::from_secs(30);
/// How long a reopened store must keep working before a new failure starts again from
/// `FIRST`; a store that fails soon after each reopen keeps the longer waits.
const STABLE: Duration = Duration::from_secs(60);

/// What the store can do right now, for /healthz, the lanes and the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Health {
    Writable,
    /// The database failed and is closed; nothing is recorded or delivered until it reopens.
    Failing {
        since: DateTime<Utc>,
        /// The error that closed it.
        error: String,
        /// Why the latest attempt to reopen it failed, once one has.
        reopen: Option<String>,
    },
}

impl Health {
    pub(crate) fn is_writable(&self) -> bool {
        *self == Health::Writable
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Health::Writable => f.write_str("writable"),
            Health::Failing {
                since,
                error,
                reopen,
            } => {
                let since = since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                write!(f, "failing since {since}: {error}")?;
                match reopen {
                    Some(reopen) => write!(f, "; cannot reopen yet: {reopen}"),
                    None => f.write_str("; reopening"),
                }
            }
        }
    }
}

/// The waits between attempts to reopen a failed store: `FIRST`, doubling up to `LONGEST`.
#[derive(Debug, Default)]
pub(super) struct Backoff {
    /// Attempts since the waits last started afresh.
    attempts: u32,
    /// When the store last reopened.
    reopened: Option<Instant>,
}

impl Backoff {
    /// How long to wait before the next attempt, made at `now`.
    pub(crate) fn next(&mut self, now: Instant) -> Duration {
        if let Some(at) = self.reopened.take() {
            if now.saturating_duration_since(at) >= STABLE {
                self.attempts = 0;
            }
        }
        let delay = FIRST
            .saturating_mul(2u32.saturating_pow(self.attempts))
            .min(LONGEST);
        self.attempts = self.attempts.saturating_add(1);
        delay
    }

    pub(crate) fn reopened(&mut self, now: Instant) {
        self.reopened = Some(now);
    }
}

impl Store {
    /// Reopen the database whenever it fails, until `shutdown`. The daemon runs this; a
    /// command that meets a failed store just reports it.
    pub(crate) async fn keep_open(&self, shutdown: CancellationToken) {
        let mut health = self.shared.health.subscribe();
        let mut backoff = Backoff::default();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                failing = health.wait_for(|h| !h.is_writable()) => {
                    if failing.is_err() {
                        return;
                    }
                }
            }
            let delay = backoff.next(Instant::now());
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            match self.reopen().await {
                Ok(()) => backoff.reopened(Instant::now()),
                Err(err) => {
                    let reason = match err {
                        // Our own handles on the failed database, not another process.
                        StoreError::Locked(_) => "the failed database is still closing".into(),
                        other => other.reason(),
                    };
                    // Logged once, when it failed; each attempt only updates what /healthz says.
                    debug!(error = reason.as_str(), "cannot reopen the state store yet");
                    self.shared.health.send_modify(|health| {
                        if let Health::Failing { reopen, .. } = health {
                            *reopen = Some(reason);
                        }
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_from_half_a_second_to_thirty() {
        let mut backoff = Backoff::default();
        let now = Instant::now();
        let waits: Vec<u64> = (0..9)
            .map(|_| backoff.next(now).as_millis() as u64)
            .collect();
        assert_eq!(
            waits,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
    }

    #[test]
    fn a_store_that_fails_again_soon_keeps_the_long_wait_and_a_stable_one_starts_afresh() {
        let mut backoff = Backoff::default();
        let start = Instant::now();
        for _ in 0..4 {
            backoff.next(start);
        }
        backoff.reopened(start);
        assert_eq!(
            backoff.next(start + Duration::from_secs(5)),
            Duration::from_secs(8),
            "flapping: no fresh start"
        );
        backoff.reopened(start + Duration::from_secs(10));
        assert_eq!(
            backoff.next(start + Duration::from_secs(10) + STABLE),
            FIRST,
            "worked for a minute: the next outage starts short"
        );
        assert_eq!(backoff.next(start + STABLE * 2), FIRST * 2);
    }

    #[test]
    fn health_reads_as_a_line_for_healthz() {
        let since = "2026-11-27T06:00:00Z".parse().unwrap();
        let failing = Health::Failing {
            since,
            error: "No space left on device".into(),
            reopen: None,
        };
        assert_eq!(
            failing.to_string(),
            "failing since 2026-11-27T06:00:00Z: No space left on device; reopening"
        );
        let retried = Health::Failing {
            since,
            error: "x".into(),
            reopen: Some("No space left on device".into()),
        };
        assert!(
            retried
                .to_string()
                .ends_with("cannot reopen yet: No space left on device")
        );
        assert!(Health::Writable.is_writable() && !failing.is_writable());
    }
}
