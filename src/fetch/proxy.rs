//! Proxies: a URL whose credentials never print, and a rotating pool that rests a proxy after
//! repeated failures.

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use url::Url;

use crate::redact::SensitiveUrl;

/// A proxy URL (`http`, `https`, `socks5`, `socks5h`). Its user name and password are secrets:
/// `Debug` and `Display` show `***` in their place.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct ProxyUrl(SensitiveUrl);

impl ProxyUrl {
    pub(crate) fn parse(text: &str) -> Result<ProxyUrl, String> {
        // Never echo the input: it may hold a password.
        let url = Url::parse(text).map_err(|err| format!("invalid proxy URL: {err}"))?;
        if !matches!(url.scheme(), "http" | "https" | "socks5" | "socks5h") {
            return Err(format!(
                "proxy scheme `{}` is not supported: use http://, https://, socks5:// or socks5h://",
                url.scheme()
            ));
        }
        if url.host().is_none() {
            return Err("proxy URL has no host".into());
        }
        Ok(ProxyUrl(SensitiveUrl::new(url)))
    }

    /// The full URL, credentials included: only for handing to the HTTP client.
    pub(super) fn expose(&self) -> &str {
        self.0.expose().as_str()
    }

    /// Remove this proxy's credentials from a message (an error from the proxy connector
    /// could quote them).
    pub(super) fn scrub(&self, text: String) -> String {
        self.0.scrub(text)
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A proxy is an address: the bare path `/` its URL gets is noise.
        let shown = self.0.to_string();
        let url = self.0.expose();
        match shown.strip_suffix('/') {
            Some(address) if url.path() == "/" && url.query().is_none() => f.write_str(address),
            _ => f.write_str(&shown),
        }
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({self})")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rotation {
    RoundRobin,
    Random,
}

/// Several proxies used in turn. Pool state lives in memory: a restart forgets who was resting.
pub(crate) struct ProxyPool {
    urls: Vec<ProxyUrl>,
    rotation: Rotation,
    failures_before_rest: u32,
    rest: Duration,
    state: Mutex<PoolState>,
}

struct PoolState {
    next: usize,
    failures: Vec<u32>,
    resting_until: Vec<Option<Instant>>,
    rng: u64,
}

impl fmt::Debug for ProxyPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyPool")
            .field("urls", &self.urls)
            .field("rotation", &self.rotation)
            .field("failures_before_rest", &self.failures_before_rest)
            .field("rest", &self.rest)
            .finish()
    }
}

/// Two pools are equal when they are set up alike; who is resting now does not count.
impl PartialEq for ProxyPool {
    fn eq(&self, other: &Self) -> bool {
        self.urls == other.urls
            && self.rotation == other.rotation
            && self.failures_before_rest == other.failures_before_rest
            && self.rest == other.rest
    }
}

impl ProxyPool {
    /// `urls` must not be empty (the config checks).
    pub(crate) fn new(
        urls: Vec<ProxyUrl>,
        rotation: Rotation,
        failures_before_rest: u32,
        rest: Duration,
    ) -> Self {
        let n = urls.len();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64);
        ProxyPool {
            urls,
            rotation,
            failures_before_rest: failures_before_rest.max(1),
            rest,
            state: Mutex::new(PoolState {
                next: 0,
                failures: vec![0; n],
                resting_until: vec![None; n],
                rng: seed | 1,
            }),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.urls.len()
    }

    /// The proxy for the next request: the next (or a random) one that is not resting; when all
    /// are resting, the one whose rest ends first, since sending nothing helps nobody.
    pub(crate) fn pick(&self) -> (usize, ProxyUrl) {
        let now = Instant::now();
        let mut state = self.state.lock().expect("not poisoned");
        let n = self.urls.len();
        let start = match self.rotation {
            Rotation::RoundRobin => {
                let start = state.next % n;
                state.next = (start + 1) % n;
                start
            }
            Rotation::Random => (xorshift(&mut state.rng) % n as u64) as usize,
        };
        let awake = (0..n)
            .map(|i| (start + i) % n)
            .find(|&i| state.resting_until[i].is_none_or(|until| until <= now));
        let index = awake.unwrap_or_else(|| {
            (0..n)
                .min_by_key(|&i| state.resting_until[i])
                .expect("a pool has at least one proxy")
        });
        if self.rotation == Rotation::RoundRobin {
            state.next = (index + 1) % n;
        }
        (index, self.urls[index].clone())
    }

    /// Record how a request through proxy `index` went.
    pub(crate) fn report(&self, index: usize, ok: bool) {
        let mut state = self.state.lock().expect("not poisoned");
        if ok {
            state.failures[index] = 0;
            state.resting_until[index] = None;
            return;
        }
        state.failures[index] += 1;
        if state.failures[index] >= self.failures_before_rest {
            state.failures[index] = 0;
            state.resting_until[index] = Some(Instant::now() + self.rest);
            tracing::warn!(proxy = %self.urls[index], rest = ?self.rest, "proxy keeps failing; resting it");
        }
    }
}

fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(rotation: Rotation) -> ProxyPool {
        let urls = [
            "http://u1:pw1@p1:8080",
            "socks5://p2:1080",
            "http://p3:3128",
        ]
        .iter()
        .map(|u| ProxyUrl::parse(u).unwrap())
        .collect();
        ProxyPool::new(urls, rotation, 2, Duration::from_secs(60))
    }

    #[test]
    fn credentials_never_print() {
        let url = ProxyUrl::parse("http://alice:s3cret@proxy.example:8080").unwrap();
        assert_eq!(url.to_string(), "http://***@proxy.example:8080");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(
            url.scrub("proxy error for alice with s3cret".into()),
            "proxy error for *** with ***"
        );
        let err = ProxyUrl::parse("ftp://bob:hunter2@x").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn round_robin_skips_a_resting_proxy_until_its_rest_ends() {
        let pool = pool(Rotation::RoundRobin);
        let order: Vec<usize> = (0..4).map(|_| pool.pick().0).collect();
        assert_eq!(order, [0, 1, 2, 0]);
        pool.report(1, false);
        pool.report(1, false);
        let order: Vec<usize> = (0..4).map(|_| pool.pick().0).collect();
        assert_eq!(order, [2, 0, 2, 0], "p2 rests after two failures");
        tokio::time::advance(Duration::from_secs(61)).await;
        let order: Vec<usize> = (0..3).map(|_| pool.pick().0).collect();
        assert_eq!(order, [1, 2, 0], "p2 is back after its rest");
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_clears_the_failure_count() {
        let pool = pool(Rotation::RoundRobin);
        pool.report(0, false);
        pool.report(0, true);
        pool.report(0, false);
        let order: Vec<usize> = (0..3).map(|_| pool.pick().0).collect();
        assert_eq!(order, [0, 1, 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn when_all_rest_the_first_to_wake_is_used() {
        let pool = pool(Rotation::Random);
        for i in [2, 0, 1] {
            pool.report(i, false);
            pool.report(i, false);
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        assert_eq!(pool.pick().0, 2);
    }

    #[test]
    fn random_rotation_uses_every_proxy() {
        let pool = pool(Rotation::Random);
        let mut seen = [false; 3];
        for _ in 0..200 {
            seen[pool.pick().0] = true;
        }
        assert_eq!(seen, [true; 3]);
    }
}
