//! The outbox worker: sign, POST, classify the answer, back off, dead-letter. An entry leaves
//! the outbox only after a 2xx, or for the dead letters after its last attempt.
//!
//! Each webhook has its own lane with its own concurrency limit, so a slow or dead endpoint
//! only ever holds up its own deliveries. While the store cannot be written every lane holds:
//! an attempt whose outcome cannot be recorded is remembered here, and its entry is left alone
//! until the store is back and the outcome is written, so a delivered event is never sent
//! again by this process for want of a removal, and nothing loops.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use futures_util::{StreamExt, stream};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::clock::Clock;
use crate::config::Webhook;
use crate::fetch::{USER_AGENT, error_chain, parse_retry_after};
use crate::metrics;
use crate::sign::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, sign};
use crate::store::{
    AttemptRecord, DeadLetter, Delivery, EndpointFailure, OutboxKey, Store, StoreError,
};

mod policy;

use policy::jitter_for;

/// How much of a failed response's body is kept for the dead letter.
const SNIPPET_BYTES: usize = 512;
/// How many attempts a delivery remembers.
const HISTORY: usize = 32;

pub(crate) type Webhooks = BTreeMap<String, Arc<Webhook>>;
pub(crate) use policy::{Verdict, classify, next_delay};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempted {
    Delivered,
    Retrying,
    Dead,
}

/// What `deliver_due` did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tally {
    pub delivered: usize,
    pub(crate) retrying: usize,
    pub(crate) dead: usize,
}

/// An attempt's outcome that the store could not take.
#[derive(Debug, Clone)]
enum Owed {
    Remove,
    Reschedule(Delivery),
    Bury(DeadLetter),
}

impl Owed {
    fn name(&self) -> &'static str {
        match self {
            Owed::Remove => "remove",
            Owed::Reschedule(_) => "reschedule",
            Owed::Bury(_) => "bury",
        }
    }
}

/// A cheap-to-clone handle on the outbox worker.
#[derive(Clone)]
pub struct Deliverer {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    store: Store,
    /// When entries are due and when they are tried again; the signature's timestamp stays on
    /// the wall clock, as receivers check it against theirs.
    clock: Clock,
    webhooks: watch::Sender<Webhooks>,
    // Std mutexes: each is held for a map or set operation, never across an await.
    lanes: Mutex<BTreeMap<String, Arc<Notify>>>,
    in_flight: Mutex<HashSet<OutboxKey>>,
    /// Outcomes to write once the store takes writes again, with their webhook's name.
    owed: Mutex<HashMap<OutboxKey, (String, Owed)>>,
}

impl Deliverer {
    pub fn new(store: Store, webhooks: Webhooks) -> Result<Self, reqwest::Error> {
        Deliverer::on_clock(store, webhooks, Clock::System)
    }

    /// A deliverer whose lanes wait on `clock`.
    pub(crate) fn on_clock(
        store: Store,
        webhooks: Webhooks,
        clock: Clock,
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
                clock,
                webhooks: watch::Sender::new(webhooks),
                lanes: Mutex::new(BTreeMap::new()),
                in_flight: Mutex::new(HashSet::new()),
                owed: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Swap in a reloaded config's webhooks: lanes of changed or removed webhooks finish their
    /// attempts in flight and stop, new ones start.
    pub fn set_webhooks(&self, webhooks: Webhooks) {
        self.inner.webhooks.send_replace(webhooks);
    }

    /// Tell the lanes that new entries were committed.
    pub fn wake(&self) {
        for lane in self.inner.lanes.lock().expect("lanes").values() {
            lane.notify_one();
        }
    }

    /// Attempt every entry due now once, wait for the answers, and count how they ended: what
    /// `once` does.
    pub async fn deliver_due(&self) -> Tally {
        let webhooks = self.inner.webhooks.borrow().clone();
        self.warn_of_orphans(&webhooks);
        let now = self.inner.clock.now();
        let lanes = webhooks.into_values().map(|hook| async move {
            let due = match self.inner.store.due(&hook.name, now) {
                Ok(due) => due,
                Err(err) => {
                    error!(webhook = hook.name.as_str(), error = %err, "cannot read the outbox");
                    return Vec::new();
                }
            };
            stream::iter(due)
                .map(|(key, delivery)| {
                    let hook = &hook;
                    async move { self.attempt(hook, &key, delivery).await }
                })
                .buffer_unordered(hook.concurrency)
                .collect::<Vec<_>>()
                .await
        });
        let mut tally = Tally::default();
        for outcome in futures_util::future::join_all(lanes).await.concat() {
            match outcome {
                Attempted::Delivered => tally.delivered += 1,
                Attempted::Retrying => tally.retrying += 1,
                Attempted::Dead => tally.dead += 1,
            }
        }
        tally
    }

    /// Deliver until `shutdown`, then give in-flight attempts `drain` to finish. An attempt cut
    /// off stays in the outbox and is sent again after the restart.
    pub async fn run(&self, shutdown: CancellationToken, drain: Duration) {
        let mut config = self.inner.webhooks.subscribe();
        let mut lanes: BTreeMap<String, (Arc<Webhook>, CancellationToken)> = BTreeMap::new();
        let mut tasks = JoinSet::new();
        loop {
            let webhooks = config.borrow_and_update().clone();
            self.warn_of_orphans(&webhooks);
            // A reload reads every webhook afresh; only a changed one needs a new lane.
            lanes.retain(|name, (hook, stop)| {
                let keep = webhooks.get(name).is_some_and(|new| **new == **hook);
                if !keep {
                    stop.cancel();
                }
                keep
            });
            for (name, hook) in webhooks {
                if lanes.contains_key(&name) {
                    continue;
                }
                let stop = shutdown.child_token();
                let wake = Arc::new(Notify::new());
                self.inner
                    .lanes
                    .lock()
                    .expect("lanes")
                    .insert(name.clone(), wake.clone());
                tasks.spawn(self.clone().lane(hook.clone(), wake, stop.clone(), drain));
                lanes.insert(name, (hook, stop));
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Ok(()) = config.changed() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        while tasks.join_next().await.is_some() {}
    }

    fn warn_of_orphans(&self, webhooks: &Webhooks) {
        match self.inner.store.pending_webhooks() {
            Ok(names) => {
                for name in names.iter().filter(|n| !webhooks.contains_key(*n)) {
                    warn!(
                        webhook = name.as_str(),
                        "queued deliveries name a webhook that is not in the config; they stay queued until it is back"
                    );
                }
            }
            Err(err) => error!(error = %err, "cannot read the outbox"),
        }
    }

    /// One webhook's worker: keep up to `concurrency` attempts in flight, oldest due first.
    async fn lane(
        self,
        hook: Arc<Webhook>,
        wake: Arc<Notify>,
        stop: CancellationToken,
        drain: Duration,
    ) {
        let slots = Arc::new(Semaphore::new(hook.concurrency));
        let mut attempts = JoinSet::new();
        loop {
            if !self.inner.store.is_writable() {
                // The store logged its failure once; every lane waits for it to come back.
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = self.inner.store.writable() => {}
                    Some(_) = attempts.join_next(), if !attempts.is_empty() => {}
                }
                continue;
            }
            let mut store_error = !self.settle(&hook.name);
            while !store_error {
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    break;
                };
                let next = self
                    .inner
                    .store
                    .first_due(&hook.name, self.inner.clock.now(), |key| self.is_busy(key));
                let (key, delivery) = match next {
                    Ok(Some(next)) => next,
                    Ok(None) => break,
                    Err(err) => {
                        self.outbox_unreadable(&hook.name, &err);
                        store_error = true;
                        break;
                    }
                };
                self.set_in_flight(&key, true);
                let (this, hook) = (self.clone(), hook.clone());
                attempts.spawn(async move {
                    let _slot = slot;
                    this.attempt(&hook, &key, delivery).await;
                    this.set_in_flight(&key, false);
                });
            }
            if store_error && !self.inner.store.is_writable() {
                continue;
            }
            let now = self.inner.clock.now();
            let wake_at = match self.inner.store.next_due_after(&hook.name, now) {
                _ if store_error => now + TimeDelta::seconds(5),
                Ok(Some(at)) => at,
                Ok(None) => now + TimeDelta::hours(1),
                Err(err) => {
                    self.outbox_unreadable(&hook.name, &err);
                    now + TimeDelta::seconds(5)
                }
            };
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = wake.notified() => {}
                Some(_) = attempts.join_next(), if !attempts.is_empty() => {}
                _ = self.inner.clock.sleep_until(wake_at) => {}
            }
        }
        {
            let mut lanes = self.inner.lanes.lock().expect("lanes");
            if lanes.get(&hook.name).is_some_and(|w| Arc::ptr_eq(w, &wake)) {
                lanes.remove(&hook.name);
            }
        }
        if tokio::time::timeout(drain, async {
            while attempts.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            warn!(
                webhook = hook.name.as_str(),
                left = attempts.len(),
                "deliveries still in flight at the drain deadline stay queued"
            );
        }
    }

    /// A failure that closed the store was logged by the store; anything else (a damaged
    /// record) is logged here.
    fn outbox_unreadable(&self, webhook: &str, err: &StoreError) {
        if self.inner.store.is_writable() {
            error!(webhook, error = %err, "cannot read the outbox");
        } else {
            debug!(webhook, error = %err, "cannot read the outbox");
        }
    }

    /// An entry this process is sending, or whose outcome it has yet to record.
    fn is_busy(&self, key: &OutboxKey) -> bool {
        self.inner
            .in_flight
            .lock()
            .expect("in-flight set")
            .contains(key)
            || self
                .inner
                .owed
                .lock()
                .expect("owed writes")
                .contains_key(key)
    }

    /// The store could not take an attempt's outcome: keep it, and the entry out of the lanes'
    /// hands, until it can.
    fn owe(&self, key: &OutboxKey, delivery: &Delivery, write: Owed, err: &StoreError) {
        warn!(
            event_id = delivery.event_id.as_str(),
            webhook = delivery.webhook.as_str(),
            write = write.name(),
            error = %err,
            "cannot record the attempt's outcome; it is recorded once the state store is back"
        );
        self.inner
            .owed
            .lock()
            .expect("owed writes")
            .insert(key.clone(), (delivery.webhook.clone(), write));
    }

    /// Record the outcomes `webhook`'s attempts owe the store. False if the store still fails.
    fn settle(&self, webhook: &str) -> bool {
        let owed: Vec<(OutboxKey, Owed)> = {
            let owed = self.inner.owed.lock().expect("owed writes");
            owed.iter()
                .filter(|(_, (name, _))| name == webhook)
                .map(|(key, (_, write))| (key.clone(), write.clone()))
                .collect()
        };
        for (key, write) in owed {
            let store = &self.inner.store;
            let done = match &write {
                Owed::Remove => store.delivered(&key),
                Owed::Reschedule(delivery) => store.reschedule(&key, delivery),
                Owed::Bury(letter) => store.bury(&key, letter),
            };
            if let Err(err) = done {
                debug!(webhook, write = write.name(), error = %err, "cannot record an attempt's outcome yet");
                return false;
            }
            self.inner.owed.lock().expect("owed writes").remove(&key);
        }
        true
    }

    fn set_in_flight(&self, key: &OutboxKey, on: bool) {
        let mut set = self.inner.in_flight.lock().expect("in-flight set");
        if on {
            set.insert(key.clone());
        } else {
            set.remove(key);
        }
    }

    /// One signed POST, its verdict, and the outbox updated to match.
    async fn attempt(&self, hook: &Webhook, key: &OutboxKey, mut delivery: Delivery) -> Attempted {
        let at = self.inner.clock.now();
        let started = Instant::now();
        let answer = self.post(hook, &delivery, Utc::now().timestamp()).await;
        delivery.attempts += 1;
        let (verdict, retry_after, record) = match answer {
            Ok(answer) => {
                let verdict = classify(answer.status);
                let error = match &verdict {
                    Verdict::Delivered => None,
                    Verdict::Retry { reason, .. } | Verdict::Stop { reason } => {
                        Some(reason.clone())
                    }
                };
                let retry_after = answer.retry_after.filter(|_| {
                    matches!(
                        answer.status,
                        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
                    )
                });
                let record = AttemptRecord {
                    at,
                    duration_ms: started.elapsed().as_millis() as u64,
                    status: Some(answer.status.as_u16()),
                    error,
                    response: Some(answer.snippet).filter(|s| !s.is_empty()),
                };
                (verdict, retry_after, record)
            }
            Err(reason) => {
                let record = AttemptRecord {
                    at,
                    duration_ms: started.elapsed().as_millis() as u64,
                    status: None,
                    error: Some(reason.clone()),
                    response: None,
                };
                let verdict = Verdict::Retry {
                    reason,
                    misconfigured: false,
                };
                (verdict, None, record)
            }
        };
        metrics::delivery_finished(&hook.name, verdict == Verdict::Delivered, started.elapsed());
        let event_id = delivery.event_id.clone();
        let event_id = event_id.as_str();
        let webhook = hook.name.as_str();
        let attempt = delivery.attempts;
        let status = record.status;
        delivery.history.push(record);
        if delivery.history.len() > HISTORY {
            delivery.history.remove(0);
        }

        match verdict {
            Verdict::Delivered => {
                info!(event_id, webhook, status, attempt, "delivered");
                if let Err(err) = self.inner.store.delivered(key) {
                    self.owe(key, &delivery, Owed::Remove, &err);
                }
                self.endpoint_recovered(webhook);
                Attempted::Delivered
            }
            Verdict::Retry {
                reason,
                misconfigured,
            } => {
                let jitter = jitter_for(event_id, attempt);
                let Some(delay) = next_delay(&hook.retry, attempt, retry_after, jitter) else {
                    let reason = format!("gave up after {attempt} attempts; last: {reason}");
                    return self.bury(key, delivery, reason);
                };
                delivery.next_attempt = self.inner.clock.now() + delay;
                let next_retry = delivery
                    .next_attempt
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                // Misconfiguration is flagged in a field, so log queries can pick it out.
                warn!(
                    event_id,
                    webhook,
                    error = reason.as_str(),
                    misconfigured,
                    attempt,
                    next_retry,
                    "delivery failed"
                );
                if let Err(err) = self.inner.store.reschedule(key, &delivery) {
                    self.owe(key, &delivery, Owed::Reschedule(delivery.clone()), &err);
                }
                Attempted::Retrying
            }
            Verdict::Stop { reason } => {
                let failure = EndpointFailure {
                    since: self.inner.clock.now(),
                    reason: reason.clone(),
                };
                error!(
                    webhook,
                    reason = reason.as_str(),
                    "endpoint marked failing; fix it, then `pagehook replay --dead`"
                );
                if let Err(err) = self
                    .inner
                    .store
                    .set_endpoint_failure(webhook, Some(&failure))
                {
                    error!(webhook, error = %err, "cannot record the endpoint's failure");
                }
                self.bury(key, delivery, reason)
            }
        }
    }

    async fn post(
        &self,
        hook: &Webhook,
        delivery: &Delivery,
        timestamp: i64,
    ) -> Result<Answer, String> {
        let signature = sign(
            &hook.secrets,
            &delivery.event_id,
            timestamp,
            delivery.payload.as_bytes(),
        );
        // reqwest's timeout covers connecting, the answer and the body read below, so a
        // receiver that hangs or trickles costs one bounded attempt.
        let sent = self
            .inner
            .client
            .post(hook.url.expose().clone())
            .timeout(hook.timeout)
            .headers(hook.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(HEADER_ID, &delivery.event_id)
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(HEADER_SIGNATURE, signature)
            .body(delivery.payload.clone())
            .send()
            .await;
        let transport = |err: reqwest::Error| {
            if err.is_timeout() {
                format!(
                    "timed out after {}",
                    humantime::format_duration(hook.timeout)
                )
            } else {
                error_chain(&err.without_url())
            }
        };
        let mut response = sent.map_err(transport)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            // An HTTP date is the endpoint's wall clock, so it is read against ours.
            .and_then(|v| parse_retry_after(v, Utc::now()));
        // Only the start of the body is read; dropping the response closes the connection
        // rather than download whatever else the endpoint sends.
        let mut body = Vec::new();
        if !status.is_success() {
            while body.len() < SNIPPET_BYTES {
                match response.chunk().await {
                    Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                    Ok(None) | Err(_) => break,
                }
            }
        }
        body.truncate(SNIPPET_BYTES);
        Ok(Answer {
            status,
            retry_after,
            snippet: String::from_utf8_lossy(&body).trim().to_owned(),
        })
    }

    fn bury(&self, key: &OutboxKey, delivery: Delivery, reason: String) -> Attempted {
        error!(
            event_id = delivery.event_id.as_str(),
            webhook = delivery.webhook.as_str(),
            reason = reason.as_str(),
            "delivery moved to the dead letters; `pagehook replay` sends it again"
        );
        metrics::dead_lettered(&delivery.webhook);
        let letter = DeadLetter {
            delivery,
            died_at: self.inner.clock.now(),
            reason,
        };
        if let Err(err) = self.inner.store.bury(key, &letter) {
            self.owe(key, &letter.delivery, Owed::Bury(letter.clone()), &err);
        }
        Attempted::Dead
    }

    fn endpoint_recovered(&self, webhook: &str) {
        match self.inner.store.endpoint_failure(webhook) {
            Ok(None) => {}
            Ok(Some(_)) => {
                info!(webhook, "endpoint accepts deliveries again");
                if let Err(err) = self.inner.store.set_endpoint_failure(webhook, None) {
                    error!(webhook, error = %err, "cannot clear the endpoint's failure");
                }
            }
            Err(err) => error!(webhook, error = %err, "cannot read the endpoint's state"),
        }
    }
}

struct Answer {
    status: StatusCode,
    retry_after: Option<Duration>,
    snippet: String,
}

#[cfg(test)]
#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::WatcherState;

    /// One entry due now, and a receiver that answers `status` after the disk fills up under
    /// the attempt (the store fails while the POST is in flight). Returns the request count.
    async fn an_attempt_while_the_store_fails(
        status: u16,
    ) -> (
        Arc<std::sync::atomic::AtomicUsize>,
        Store,
        tempfile::TempDir,
    ) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        let delivery = Delivery {
            event_id: "evt_1".into(),
            webhook: "hook".into(),
            watcher: "w".into(),
            payload: "{}".into(),
            created_at: now,
            attempts: 0,
            next_attempt: now,
            history: Vec::new(),
        };
        store
            .commit("w", &WatcherState::default(), &[delivery])
            .await
            .unwrap();

        let requests = Arc::new(AtomicUsize::new(0));
        let router = axum::Router::new().fallback({
            let (requests, store) = (requests.clone(), store.clone());
            move || async move {
                if requests.fetch_add(1, Ordering::SeqCst) == 0 {
                    store.fail_as_if("No space left on device");
                }
                StatusCode::from_u16(status).unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        let hook = Webhook {
            name: "hook".into(),
            url: url.parse().unwrap(),
            secrets: vec!["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse().unwrap()],
            retry: vec![Duration::from_secs(3600)],
            headers: Default::default(),
            timeout: Duration::from_secs(5),
            concurrency: 4,
        };
        let deliverer =
            Deliverer::new(store.clone(), [("hook".into(), Arc::new(hook))].into()).unwrap();
        let stop = CancellationToken::new();
        let worker = tokio::spawn({
            let (deliverer, stop) = (deliverer.clone(), stop.clone());
            async move { deliverer.run(stop, Duration::from_secs(1)).await }
        });
        // The attempt has ended once its outcome waits for the store.
        let owed = async {
            while deliverer.inner.owed.lock().unwrap().is_empty() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), owed)
            .await
            .expect("the outcome is owed");
        assert!(!store.is_writable());

        // The disk has room again: the lane records the outcome before it picks anything.
        store.reopen().await.unwrap();
        let recorded = async {
            while !deliverer.inner.owed.lock().unwrap().is_empty() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), recorded)
            .await
            .expect("the outcome is recorded");
        stop.cancel();
        worker.await.unwrap();
        (requests, store, dir)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_delivery_whose_removal_failed_is_removed_once_the_store_is_back_never_resent() {
        let (requests, store, _dir) = an_attempt_while_the_store_fails(204).await;
        assert_eq!(store.pending_count(), 0, "removed after the reopen");
        assert_eq!(
            requests.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "delivered once, not again for want of a removal"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_failed_attempt_that_could_not_be_rescheduled_keeps_its_backoff() {
        let (requests, store, _dir) = an_attempt_while_the_store_fails(503).await;
        assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 1);
        let pending = store.pending().unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].attempts, 1);
        assert_eq!(pending[0].history[0].status, Some(503));
        assert!(
            pending[0].next_attempt > Utc::now() + chrono::TimeDelta::minutes(50),
            "rescheduled an hour out, not due at once"
        );
    }
}
