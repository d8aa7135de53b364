//! The outbox worker: sign, POST, classify the answer, back off. An entry leaves the outbox
//! only after a 2xx.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::header::CONTENT_TYPE;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::Webhook;
use crate::fetch::{USER_AGENT, error_chain};
use crate::metrics;
use crate::sign::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, sign};
use crate::store::{Delivery, OutboxKey, Store};

/// Attempts in flight at once, across all endpoints.
const MAX_IN_FLIGHT: usize = 32;
/// How long an entry for a webhook that left the config waits before it is looked at again.
const ORPHAN_RECHECK: Duration = Duration::from_secs(3600);

/// The delay before the next attempt after `attempts` failures: the webhook's retry list,
/// whose last entry repeats once the list is exhausted, so an event is never dropped.
pub fn retry_delay(schedule: &[Duration], attempts: u32) -> Duration {
    let index = (attempts.max(1) as usize - 1).min(schedule.len().saturating_sub(1));
    schedule
        .get(index)
        .copied()
        .unwrap_or(Duration::from_secs(5))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Delivered,
    Failed,
}

/// A cheap-to-clone handle on the outbox worker.
#[derive(Clone)]
pub struct Deliverer {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    store: Store,
    // Swapped whole on reload; an attempt clones the one Arc it needs and lets go.
    webhooks: RwLock<BTreeMap<String, Arc<Webhook>>>,
    wake: Notify,
    slots: Semaphore,
    // A std mutex: held for a set insert or remove, never across an await.
    in_flight: Mutex<HashSet<OutboxKey>>,
}

impl Deliverer {
    pub fn new(
        store: Store,
        webhooks: BTreeMap<String, Arc<Webhook>>,
    ) -> Result<Self, reqwest::Error> {
        // The Standard Webhooks spec treats redirects as failures: following one would send a
        // signed event somewhere the user never configured.
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Deliverer {
            inner: Arc::new(Inner {
                client,
                store,
                webhooks: RwLock::new(webhooks),
                wake: Notify::new(),
                slots: Semaphore::new(MAX_IN_FLIGHT),
                in_flight: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// Deliver with these endpoints from now on (a reloaded config). Attempts already in flight
    /// finish with the settings they started with.
    pub fn set_webhooks(&self, webhooks: BTreeMap<String, Arc<Webhook>>) {
        *self.inner.webhooks.write().expect("webhooks lock") = webhooks;
        self.wake();
    }

    /// Tell the worker that new entries were committed.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Attempt every entry due now once, wait for the answers, and return how many were
    /// delivered: what `once` does.
    pub async fn deliver_due(&self) -> usize {
        let mut attempts = JoinSet::new();
        self.dispatch_due(&mut attempts);
        let mut delivered = 0;
        while let Some(result) = attempts.join_next().await {
            delivered += usize::from(matches!(result, Ok(Attempt::Delivered)));
        }
        delivered
    }

    /// Deliver until `shutdown`, then give in-flight attempts `drain` to finish. An attempt cut
    /// off stays in the outbox and is sent again after the restart.
    pub async fn run(&self, shutdown: CancellationToken, drain: Duration) {
        let mut attempts = JoinSet::new();
        loop {
            self.dispatch_due(&mut attempts);
            while attempts.try_join_next().is_some() {}
            let now = Utc::now();
            let sleep = match self.inner.store.next_due_after(now) {
                Ok(Some(at)) => (at - now).to_std().unwrap_or_default(),
                Ok(None) => Duration::from_secs(3600),
                Err(err) => {
                    error!(error = %err, "cannot read the outbox");
                    Duration::from_secs(5)
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
        if tokio::time::timeout(drain, async {
            while attempts.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            warn!(
                left = attempts.len(),
                "deliveries still in flight at the drain deadline stay queued"
            );
        }
    }

    fn dispatch_due(&self, attempts: &mut JoinSet<Attempt>) {
        let in_flight = |key: &OutboxKey| {
            self.inner
                .in_flight
                .lock()
                .expect("in-flight set")
                .contains(key)
        };
        let due = match self.inner.store.due(Utc::now(), in_flight) {
            Ok(due) => due,
            Err(err) => {
                error!(error = %err, "cannot read the outbox");
                return;
            }
        };
        for (key, delivery) in due {
            if !self
                .inner
                .in_flight
                .lock()
                .expect("in-flight set")
                .insert(key.clone())
            {
                continue;
            }
            let this = self.clone();
            attempts.spawn(async move {
                let outcome = this.attempt(&key, delivery).await;
                this.inner
                    .in_flight
                    .lock()
                    .expect("in-flight set")
                    .remove(&key);
                this.wake();
                outcome
            });
        }
    }

    async fn attempt(&self, key: &OutboxKey, mut delivery: Delivery) -> Attempt {
        let inner = &self.inner;
        let hook = inner
            .webhooks
            .read()
            .expect("webhooks lock")
            .get(&delivery.webhook)
            .cloned();
        let Some(hook) = hook else {
            warn!(
                event_id = delivery.event_id.as_str(),
                webhook = delivery.webhook.as_str(),
                "webhook is no longer in the config; the event stays queued"
            );
            delivery.next_attempt = Utc::now() + ORPHAN_RECHECK;
            delivery.last_error = Some(format!(
                "webhook `{}` is not in the config",
                delivery.webhook
            ));
            self.save(key, &delivery);
            return Attempt::Failed;
        };
        let _slot = inner.slots.acquire().await.expect("semaphore never closed");
        let started = Instant::now();
        let timestamp = Utc::now().timestamp();
        let signature = sign(
            &hook.secrets,
            &delivery.event_id,
            timestamp,
            delivery.payload.as_bytes(),
        );
        let sent = inner
            .client
            .post(hook.url.clone())
            .timeout(hook.timeout)
            .headers(hook.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(HEADER_ID, &delivery.event_id)
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(HEADER_SIGNATURE, signature)
            .body(delivery.payload.clone())
            .send()
            .await;
        delivery.attempts += 1;
        let ok = matches!(&sent, Ok(response) if response.status().is_success());
        metrics::delivery_finished(&hook.name, ok, started.elapsed());
        let failure = match sent {
            Ok(response) if response.status().is_success() => {
                info!(
                    event_id = delivery.event_id.as_str(),
                    webhook = hook.name.as_str(),
                    status = response.status().as_u16(),
                    attempt = delivery.attempts,
                    "delivered"
                );
                if let Err(err) = inner.store.delivered(key) {
                    error!(event_id = delivery.event_id.as_str(), error = %err, "delivered, but the outbox entry could not be removed; it will be sent again");
                }
                return Attempt::Delivered;
            }
            Ok(response) => format!("HTTP {}", response.status()),
            Err(err) if err.is_timeout() => format!(
                "timed out after {}",
                humantime::format_duration(hook.timeout)
            ),
            Err(err) => error_chain(&err.without_url()),
        };
        let delay = retry_delay(&hook.retry, delivery.attempts);
        delivery.next_attempt = Utc::now() + delay;
        warn!(
            event_id = delivery.event_id.as_str(),
            webhook = hook.name.as_str(),
            error = failure.as_str(),
            attempt = delivery.attempts,
            next_retry = %delivery.next_attempt.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "delivery failed"
        );
        delivery.last_error = Some(failure);
        self.save(key, &delivery);
        Attempt::Failed
    }

    fn save(&self, key: &OutboxKey, delivery: &Delivery) {
        if let Err(err) = self.inner.store.reschedule(key, delivery) {
            error!(event_id = delivery.event_id.as_str(), error = %err, "cannot reschedule; the entry stays due");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_walks_the_schedule_then_repeats_its_last_step() {
        let schedule = [
            Duration::from_secs(5),
            Duration::from_secs(300),
            Duration::from_secs(1800),
        ];
        let delays: Vec<u64> = (1..=5)
            .map(|n| retry_delay(&schedule, n).as_secs())
            .collect();
        assert_eq!(delays, [5, 300, 1800, 1800, 1800]);
    }

    #[test]
    fn retry_delay_has_a_floor_for_an_empty_schedule() {
        assert_eq!(retry_delay(&[], 3), Duration::from_secs(5));
    }
}
