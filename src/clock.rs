//! What time it is for the parts that wait for a moment: the scheduler and the delivery lanes.
//! The daemon runs on the system clock; a test runs it on a [`ManualClock`] and says "an hour
//! passes" instead of waiting for it.
//!
//! Not tokio's paused time: that advances on its own whenever every task is idle, and a task
//! waiting on a real socket (the fake shop, the receiver) counts as idle, so request timeouts
//! would fire at once. And `Utc::now()` is the wall clock, which paused time does not move.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;

/// A clock to read and to sleep on. Cheap to clone; clones share the time.
#[derive(Clone, Debug, Default)]
pub enum Clock {
    #[default]
    System,
    Manual(ManualClock),
}

impl Clock {
    pub(crate) fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Manual(manual) => manual.now(),
        }
    }

    /// Return once it is `at` or later: at once for a moment already past.
    pub(crate) async fn sleep_until(&self, at: DateTime<Utc>) {
        match self {
            Clock::System => {
                let wait = (at - Utc::now()).to_std().unwrap_or_default();
                tokio::time::sleep(wait).await
            }
            Clock::Manual(manual) => {
                let mut now = manual.now.subscribe();
                // The sender lives in `manual`, borrowed for this whole wait: it cannot close.
                let _ = now.wait_for(|now| *now >= at).await;
            }
        }
    }
}

/// A clock that stands still until a test moves it.
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<watch::Sender<DateTime<Utc>>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            now: Arc::new(watch::Sender::new(start)),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    /// Move the time on by `by`, waking whoever sleeps until a moment it reaches.
    pub fn advance(&self, by: TimeDelta) {
        self.now.send_modify(|now| *now += by);
    }
}

impl From<ManualClock> for Clock {
    fn from(manual: ManualClock) -> Self {
        Clock::Manual(manual)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::pin::pin;
    use std::task::Poll;

    /// Poll `sleep` once: whether it has finished.
    async fn done(sleep: &mut std::pin::Pin<&mut impl Future<Output = ()>>) -> bool {
        std::future::poll_fn(|cx| Poll::Ready(sleep.as_mut().poll(cx).is_ready())).await
    }

    #[tokio::test]
    async fn a_sleeper_on_a_manual_clock_wakes_when_the_time_reaches_its_moment() {
        let start: DateTime<Utc> = "2026-11-27T06:00:00Z".parse().unwrap();
        let manual = ManualClock::new(start);
        let clock = Clock::from(manual.clone());
        let mut sleep = pin!(clock.sleep_until(start + TimeDelta::minutes(5)));

        assert!(!done(&mut sleep).await);
        manual.advance(TimeDelta::minutes(4));
        assert!(
            !done(&mut sleep).await,
            "four minutes in, a sleep of five goes on"
        );
        manual.advance(TimeDelta::minutes(1));
        assert!(done(&mut sleep).await);
        assert_eq!(clock.now(), start + TimeDelta::minutes(5));
        // A moment already past is no wait at all.
        assert!(done(&mut pin!(clock.sleep_until(start))).await);
    }
}
