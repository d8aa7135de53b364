//! Politeness: a global cap on requests in flight and, per host, a cap on concurrent requests
//! and a minimum spacing between their starts. A request waits for its host first and only
//! then for a global slot, so a busy or slow host never holds slots that other hosts could use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How gently one host is treated. The config gives every watcher of a host the same policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HostPolicy {
    /// Requests in flight to the host at once.
    pub concurrency: usize,
    /// The least time between the starts of two requests to the host.
    pub delay: Duration,
}

impl Default for HostPolicy {
    fn default() -> Self {
        HostPolicy {
            concurrency: super::DEFAULT_PER_HOST_CONCURRENCY,
            delay: Duration::ZERO,
        }
    }
}

pub(super) struct Gates {
    global: Arc<Semaphore>,
    // A std mutex: it guards a map lookup and is never held across an await.
    hosts: Mutex<HashMap<String, Arc<Host>>>,
}

struct Host {
    policy: HostPolicy,
    permits: Arc<Semaphore>,
    next_start: Mutex<Instant>,
}

/// Leave to send one request; dropping it frees the host's and the global slot.
pub(super) struct Pass {
    _host: OwnedSemaphorePermit,
    _global: OwnedSemaphorePermit,
}

impl Gates {
    pub(super) fn new(max_concurrency: usize) -> Self {
        Gates {
            global: Arc::new(Semaphore::new(max_concurrency.max(1))),
            hosts: Mutex::new(HashMap::new()),
        }
    }

    /// Wait until `host` may take another request under `policy`, then for a global slot.
    pub(super) async fn enter(&self, host: &str, policy: HostPolicy) -> Pass {
        let gate = self.host(host, policy);
        let host_permit = gate
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("host semaphores are never closed");
        if !policy.delay.is_zero() {
            let start = {
                let mut next = gate.next_start.lock().expect("not poisoned");
                let start = (*next).max(Instant::now());
                *next = start + policy.delay;
                start
            };
            tokio::time::sleep_until(start).await;
        }
        let global = self
            .global
            .clone()
            .acquire_owned()
            .await
            .expect("the global semaphore is never closed");
        Pass {
            _host: host_permit,
            _global: global,
        }
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
                    permits: Arc::new(Semaphore::new(policy.concurrency.max(1))),
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

    #[tokio::test(start_paused = true)]
    async fn a_full_host_does_not_block_another_host() {
        let gates = Gates::new(4);
        let _a1 = gates.enter("a:80", policy(1, 0)).await;
        let waiting =
            tokio::time::timeout(Duration::from_secs(5), gates.enter("a:80", policy(1, 0)));
        assert!(waiting.await.is_err(), "a second request to a waits");
        let other =
            tokio::time::timeout(Duration::from_millis(1), gates.enter("b:80", policy(1, 0)));
        assert!(other.await.is_ok(), "b is not held up by a");
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_a_host_holds_no_global_slot() {
        let gates = Gates::new(1);
        let held = gates.enter("a:80", policy(1, 0)).await;
        let gates = Arc::new(gates);
        let queued = tokio::spawn({
            let gates = gates.clone();
            async move {
                let _pass = gates.enter("a:80", policy(1, 0)).await;
            }
        });
        tokio::task::yield_now().await;
        drop(held);
        let b = tokio::time::timeout(Duration::from_secs(1), gates.enter("b:80", policy(1, 0)));
        // Either b got the freed slot or the queued a-request did and then released it.
        assert!(b.await.is_ok());
        queued.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_global_cap_bounds_requests_in_flight() {
        let gates = Gates::new(2);
        let _a = gates.enter("a:80", policy(2, 0)).await;
        let _b = gates.enter("b:80", policy(2, 0)).await;
        let c = tokio::time::timeout(Duration::from_secs(5), gates.enter("c:80", policy(2, 0)));
        assert!(c.await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn starts_to_one_host_are_spaced_by_its_delay() {
        let gates = Gates::new(8);
        let t0 = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..3 {
            let _pass = gates.enter("a:80", policy(4, 250)).await;
            starts.push(Instant::now() - t0);
        }
        assert_eq!(
            starts,
            [0, 250, 500].map(Duration::from_millis),
            "each start waits for the previous one's delay"
        );
        let other = Instant::now();
        let _b = gates.enter("b:80", policy(4, 250)).await;
        assert_eq!(Instant::now(), other, "another host has its own spacing");
    }
}
