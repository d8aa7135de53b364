//! Politeness: a global cap on requests in flight and, per host, a cap on concurrent requests
//! and a minimum spacing between their starts. A request waits for its host first and only
//! then for a global slot, so a busy or slow host never holds slots that other hosts could use.
//!
//! Requests waiting for a host are served by the time their check was due, earliest first (in
//! arrival order among equals), not by when they joined the line: a check that has waited
//! since an earlier slot goes before one scheduled later. Every wait ends at the check's
//! deadline, and a request that got no slot by then is told why.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::time::Instant;

/// How gently one host is treated. The config gives every watcher of a host the same policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct HostPolicy {
    /// Requests in flight to the host at once.
    pub(crate) concurrency: usize,
    /// The least time between the starts of two requests to the host.
    pub(crate) delay: Duration,
}

impl Default for HostPolicy {
    fn default() -> Self {
        HostPolicy {
            concurrency: super::DEFAULT_PER_HOST_CONCURRENCY,
            delay: Duration::ZERO,
        }
    }
}

/// Why a request got no slot before its deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    pub(crate) host: String,
    pub(crate) limit: Limit,
}

/// The limit that was full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// All of the host's slots were taken; `ahead` requests were due before this one.
    Host { slots: usize, ahead: usize },
    /// The host's `per_host_delay` put the next start past the deadline.
    Spacing(Duration),
    /// All `max_concurrency` slots were taken.
    Global(usize),
    /// All `[browser] max_tabs` tabs were rendering other pages.
    Tabs(usize),
}

impl Busy {
    /// What a user reads: which limit left no room within the check's `timeout`.
    pub(crate) fn explain(&self, timeout: Duration) -> String {
        let (host, timeout) = (&self.host, humantime::format_duration(timeout));
        let plural = |n: usize, one: &str, many: &str| match n {
            1 => format!("1 {one}"),
            n => format!("{n} {many}"),
        };
        match self.limit {
            Limit::Host { slots, ahead } => format!(
                "no free slot for {host} within the check's {timeout} timeout: {} busy, and {} due earlier waiting too",
                plural(
                    slots,
                    "per_host_concurrency slot was",
                    "per_host_concurrency slots were"
                ),
                plural(ahead, "check", "checks"),
            ),
            Limit::Spacing(delay) => format!(
                "no start for {host} within the check's {timeout} timeout: per_host_delay spaces its requests {} apart",
                humantime::format_duration(delay)
            ),
            Limit::Global(slots) => format!(
                "no free slot within the check's {timeout} timeout: all {slots} max_concurrency slots were busy"
            ),
            Limit::Tabs(tabs) => format!(
                "no free browser tab within the check's {timeout} timeout: all {tabs} of [browser] max_tabs were rendering"
            ),
        }
    }
}

pub(super) struct Gates {
    global: Arc<Semaphore>,
    max: usize,
    // A std mutex: it guards a map lookup and is never held across an await.
    hosts: Mutex<HashMap<String, Arc<Host>>>,
}

struct Host {
    policy: HostPolicy,
    line: Mutex<Line>,
    next_start: Mutex<Instant>,
}

/// A host's requests in flight and the ones waiting, by when their check was due.
#[derive(Default)]
struct Line {
    in_flight: usize,
    waiting: BTreeMap<(DateTime<Utc>, u64), oneshot::Sender<()>>,
    arrivals: u64,
}

impl Host {
    /// Free a slot: hand it to the earliest-due waiter still there, or give it back.
    fn release(&self) {
        let mut line = self.line.lock().expect("not poisoned");
        while let Some((_, waiter)) = line.waiting.pop_first() {
            if waiter.send(()).is_ok() {
                return;
            }
        }
        line.in_flight -= 1;
    }
}

/// A slot of one host, freed when dropped.
struct HostSlot(Arc<Host>);

impl Drop for HostSlot {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// A place in a host's line. Dropped before its turn (the check gave up or was cancelled), it
/// leaves the line, and passes on a slot that reached it meanwhile.
struct Ticket {
    host: Arc<Host>,
    key: (DateTime<Utc>, u64),
    turn: oneshot::Receiver<()>,
    served: bool,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.served {
            return;
        }
        let left = {
            let mut line = self.host.line.lock().expect("not poisoned");
            line.waiting.remove(&self.key).is_some()
        };
        // Not in line any more: `release` took the ticket out and sent it the slot, under the
        // lock, so the slot is here to pass on.
        if !left && self.turn.try_recv().is_ok() {
            self.host.release();
        }
    }
}

/// Leave to send one request; dropping it frees the host's and the global slot.
pub(super) struct Pass {
    _host: HostSlot,
    _global: OwnedSemaphorePermit,
}

impl Gates {
    pub(super) fn new(max_concurrency: usize) -> Self {
        Gates {
            global: Arc::new(Semaphore::new(max_concurrency.max(1))),
            max: max_concurrency.max(1),
            hosts: Mutex::new(HashMap::new()),
        }
    }

    /// Wait until `host` may take another request under `policy`, then for a global slot, for
    /// a check that was `due` then; give up at `deadline`.
    pub(super) async fn enter(
        &self,
        host: &str,
        policy: HostPolicy,
        due: DateTime<Utc>,
        deadline: Instant,
    ) -> Result<Pass, Busy> {
        let busy = |limit| Busy {
            host: host.to_owned(),
            limit,
        };
        let gate = self.host(host, policy);
        let ticket = {
            let mut line = gate.line.lock().expect("not poisoned");
            if line.in_flight < policy.concurrency.max(1) && line.waiting.is_empty() {
                line.in_flight += 1;
                None
            } else {
                let (send, turn) = oneshot::channel();
                let key = (due, line.arrivals);
                line.arrivals += 1;
                line.waiting.insert(key, send);
                Some(Ticket {
                    host: gate.clone(),
                    key,
                    turn,
                    served: false,
                })
            }
        };
        if let Some(mut ticket) = ticket {
            match tokio::time::timeout_at(deadline, &mut ticket.turn).await {
                Ok(Ok(())) => ticket.served = true,
                _ => {
                    let ahead = {
                        let line = gate.line.lock().expect("not poisoned");
                        line.waiting.range(..ticket.key).count()
                    };
                    let slots = policy.concurrency.max(1);
                    return Err(busy(Limit::Host { slots, ahead }));
                }
            }
        }
        let host_slot = HostSlot(gate.clone());
        if !policy.delay.is_zero() {
            let start = {
                let mut next = gate.next_start.lock().expect("not poisoned");
                let start = (*next).max(Instant::now());
                *next = start + policy.delay;
                start
            };
            if start > deadline {
                return Err(busy(Limit::Spacing(policy.delay)));
            }
            tokio::time::sleep_until(start).await;
        }
        let global = tokio::time::timeout_at(deadline, self.global.clone().acquire_owned())
            .await
            .map_err(|_| busy(Limit::Global(self.max)))?
            .expect("the global semaphore is never closed");
        Ok(Pass {
            _host: host_slot,
            _global: global,
        })
    }

    fn host(&self, host: &str, policy: HostPolicy) -> Arc<Host> {
        let mut hosts = self.hosts.lock().expect("not poisoned");
        match hosts.get(host) {
            Some(gate) if gate.policy == policy => gate.clone(),
            // A reloaded config changed the policy: requests already holding the old gate
            // finish under it, new ones use the new one.
            _ => {
                let gate = Arc::new(Host {
                    policy,
                    line: Mutex::new(Line::default()),
                    next_start: Mutex::new(Instant::now()),
                });
                hosts.insert(host.to_owned(), gate.clone());
                gate
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(concurrency: usize, delay_ms: u64) -> HostPolicy {
        HostPolicy {
            concurrency,
            delay: Duration::from_millis(delay_ms),
        }
    }

    fn at(second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + second, 0).unwrap()
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    async fn enter(gates: &Gates, host: &str, policy: HostPolicy) -> Pass {
        gates.enter(host, policy, Utc::now(), far()).await.unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_host_does_not_block_another_host() {
        let gates = Gates::new(4);
        let _a1 = enter(&gates, "a:80", policy(1, 0)).await;
        let waiting =
            tokio::time::timeout(Duration::from_secs(5), enter(&gates, "a:80", policy(1, 0)));
        assert!(waiting.await.is_err(), "a second request to a waits");
        let other = tokio::time::timeout(
            Duration::from_millis(1),
            enter(&gates, "b:80", policy(1, 0)),
        );
        assert!(other.await.is_ok(), "b is not held up by a");
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_a_host_holds_no_global_slot() {
        let gates = Arc::new(Gates::new(1));
        let held = enter(&gates, "a:80", policy(1, 0)).await;
        let queued = tokio::spawn({
            let gates = gates.clone();
            async move {
                let _pass = enter(&gates, "a:80", policy(1, 0)).await;
            }
        });
        tokio::task::yield_now().await;
        drop(held);
        let b = tokio::time::timeout(Duration::from_secs(1), enter(&gates, "b:80", policy(1, 0)));
        // Either b got the freed slot or the queued a-request did and then released it.
        assert!(b.await.is_ok());
        queued.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_global_cap_bounds_requests_in_flight() {
        let gates = Gates::new(2);
        let _a = enter(&gates, "a:80", policy(2, 0)).await;
        let _b = enter(&gates, "b:80", policy(2, 0)).await;
        let c = tokio::time::timeout(Duration::from_secs(5), enter(&gates, "c:80", policy(2, 0)));
        assert!(c.await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn starts_to_one_host_are_spaced_by_its_delay() {
        let gates = Gates::new(8);
        let t0 = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..3 {
            let _pass = enter(&gates, "a:80", policy(4, 250)).await;
            starts.push(Instant::now() - t0);
        }
        assert_eq!(
            starts,
            [0, 250, 500].map(Duration::from_millis),
            "each start waits for the previous one's delay"
        );
        let other = Instant::now();
        let _b = enter(&gates, "b:80", policy(4, 250)).await;
        assert_eq!(Instant::now(), other, "another host has its own spacing");
    }

    /// Checks queued behind a busy host are served by when they were due, not by when they
    /// arrived: one that waited since an earlier slot goes first.
    #[tokio::test(start_paused = true)]
    async fn a_freed_slot_goes_to_the_check_due_earliest() {
        let gates = Arc::new(Gates::new(8));
        let held = enter(&gates, "a:80", policy(1, 0)).await;
        let (order, mut served) = tokio::sync::mpsc::unbounded_channel();
        // Arriving in the order 30, 10, 20, 10.
        for (i, due) in [30, 10, 20, 10].into_iter().enumerate() {
            let (gates, order) = (gates.clone(), order.clone());
            tokio::spawn(async move {
                let _pass = gates
                    .enter("a:80", policy(1, 0), at(due), far())
                    .await
                    .unwrap();
                order.send((due, i)).unwrap();
            });
            tokio::task::yield_now().await;
        }
        drop(order);
        drop(held);
        let mut seen = Vec::new();
        while let Some(next) = served.recv().await {
            seen.push(next);
        }
        assert_eq!(seen, [(10, 1), (10, 3), (20, 2), (30, 0)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_ends_at_the_deadline_and_says_what_was_full() {
        let gates = Gates::new(1);
        let _held = enter(&gates, "a:80", policy(1, 0)).await;
        let deadline = Instant::now() + Duration::from_secs(2);
        let busy = gates
            .enter("a:80", policy(1, 0), Utc::now(), deadline)
            .await
            .err()
            .expect("no slot came");
        assert_eq!(
            Instant::now(),
            deadline,
            "it waited exactly until the deadline"
        );
        assert_eq!(busy.limit, Limit::Host { slots: 1, ahead: 0 });
        assert_eq!(
            busy.explain(Duration::from_secs(2)),
            "no free slot for a:80 within the check's 2s timeout: 1 per_host_concurrency slot was busy, and 0 checks due earlier waiting too"
        );
        let global = gates
            .enter(
                "b:80",
                policy(1, 0),
                Utc::now(),
                Instant::now() + Duration::from_secs(1),
            )
            .await
            .err()
            .expect("the one global slot is taken");
        assert_eq!(global.limit, Limit::Global(1));
    }

    /// A check that gives up (or is cancelled) leaves the line, and a slot that reached it just
    /// then goes on to the next in line.
    #[tokio::test(start_paused = true)]
    async fn a_check_that_gives_up_leaves_the_line() {
        let gates = Arc::new(Gates::new(8));
        let held = enter(&gates, "a:80", policy(1, 0)).await;
        let quitter = tokio::spawn({
            let gates = gates.clone();
            async move {
                gates
                    .enter("a:80", policy(1, 0), at(0), far())
                    .await
                    .is_ok()
            }
        });
        tokio::task::yield_now().await;
        quitter.abort();
        let _ = quitter.await;
        drop(held);
        let next = tokio::time::timeout(
            Duration::from_millis(1),
            enter(&gates, "a:80", policy(1, 0)),
        );
        assert!(next.await.is_ok(), "the slot is free again");
    }
}
