//! The request and politeness keys of a watcher, `daemon.max_concurrency` and the `[proxies]`
//! pool: raw TOML -> `HttpOptions` and friends.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use toml::Spanned;

use super::{RawWatcher, Validator, Watcher};
use crate::fetch::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_CONCURRENCY, DEFAULT_PER_HOST_CONCURRENCY, HostPolicy,
    HttpOptions, Proxy, ProxyPool, ProxyUrl, Rotation, host_key,
};

/// Failed checks in a row before `watch.failing` is sent.
pub(crate) const DEFAULT_FAILURE_THRESHOLD: u32 = 3;
pub(crate) const DEFAULT_PROXY_FAILURES_BEFORE_REST: u32 = 3;
pub(crate) const DEFAULT_PROXY_REST: Duration = Duration::from_secs(5 * 60);
/// Well past what one machine should have in flight; a larger number is a typo.
const MAX_CONCURRENCY_LIMIT: i64 = 10_000;
/// A watcher's `proxy` value that bypasses the `[proxies]` pool.
const DIRECT: &str = "direct";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProxies {
    urls: Vec<Spanned<String>>,
    rotation: Option<Spanned<String>>,
    failures_before_rest: Option<Spanned<i64>>,
    rest: Option<Spanned<String>>,
}

type RawMap = Spanned<BTreeMap<String, Spanned<String>>>;

/// A watcher's table over the defaults' table, key by key.
pub(super) fn merge(own: Option<RawMap>, defaults: Option<RawMap>) -> Option<RawMap> {
    match (own, defaults) {
        (Some(own), Some(defaults)) => {
            let span = own.span();
            let mut merged = defaults.into_inner();
            merged.extend(own.into_inner());
            Some(Spanned::new(span, merged))
        }
        (own, defaults) => own.or(defaults),
    }
}

/// Watchers of one host share one politeness policy: the strictest any of them asks for, since
/// the host is one server whichever watcher knocks.
pub(super) fn share_host_policies(watchers: &mut [Arc<Watcher>]) {
    let mut strictest: HashMap<String, HostPolicy> = HashMap::new();
    for w in watchers.iter() {
        let policy = w.http.host;
        strictest
            .entry(host_key(&w.url))
            .and_modify(|p| {
                p.concurrency = p.concurrency.min(policy.concurrency);
                p.delay = p.delay.max(policy.delay);
            })
            .or_insert(policy);
    }
    // Watchers that shared their options before share the changed ones too.
    let mut last: Option<(Arc<HttpOptions>, Arc<HttpOptions>)> = None;
    for w in watchers.iter_mut() {
        let policy = strictest[&host_key(&w.url)];
        if w.http.host == policy {
            continue;
        }
        let changed = match &last {
            Some((from, to)) if Arc::ptr_eq(from, &w.http) && to.host == policy => to.clone(),
            _ => {
                let to = Arc::new(HttpOptions {
                    host: policy,
                    ..(*w.http).clone()
                });
                last = Some((w.http.clone(), to.clone()));
                to
            }
        };
        Arc::make_mut(w).http = changed;
    }
}

impl Validator<'_> {
    fn positive(&mut self, raw: &Spanned<i64>, key: &str, max: i64) -> Option<u32> {
        let n = *raw.get_ref();
        if (1..=max).contains(&n) {
            Some(n as u32)
        } else {
            self.error(raw.span(), format!("`{key}` must be between 1 and {max}"));
            None
        }
    }

    pub(super) fn max_concurrency(&mut self, raw: Option<&Spanned<i64>>) -> usize {
        raw.and_then(|n| self.positive(n, "max_concurrency", MAX_CONCURRENCY_LIMIT))
            .map_or(DEFAULT_MAX_CONCURRENCY, |n| n as usize)
    }

    pub(super) fn failure_threshold(&mut self, raw: Option<&Spanned<i64>>) -> u32 {
        raw.and_then(|n| self.positive(n, "failure_threshold", 1_000_000))
            .unwrap_or(DEFAULT_FAILURE_THRESHOLD)
    }

    pub(super) fn proxies(&mut self, raw: Spanned<RawProxies>) -> Option<Arc<ProxyPool>> {
        let span = raw.span();
        let raw = raw.into_inner();
        if raw.urls.is_empty() {
            self.error(span, "[proxies] `urls` lists no proxy");
            return None;
        }
        let urls: Vec<ProxyUrl> = raw.urls.iter().filter_map(|u| self.proxy_url(u)).collect();
        let rotation = match raw.rotation.as_ref().map(|r| (r, r.get_ref().as_str())) {
            None | Some((_, "round-robin")) => Some(Rotation::RoundRobin),
            Some((_, "random")) => Some(Rotation::Random),
            Some((r, other)) => {
                let msg = format!("unknown rotation `{other}`: use \"round-robin\" or \"random\"");
                self.error(r.span(), msg);
                None
            }
        };
        let failures = raw
            .failures_before_rest
            .as_ref()
            .and_then(|n| self.positive(n, "failures_before_rest", 1_000))
            .unwrap_or(DEFAULT_PROXY_FAILURES_BEFORE_REST);
        let rest = raw
            .rest
            .as_ref()
            .and_then(|r| self.duration(r))
            .unwrap_or(DEFAULT_PROXY_REST);
        (urls.len() == raw.urls.len())
            .then_some(())
            .and(rotation)
            .map(|rotation| Arc::new(ProxyPool::new(urls, rotation, failures, rest)))
    }

    fn proxy_url(&mut self, raw: &Spanned<String>) -> Option<ProxyUrl> {
        ProxyUrl::parse(raw.get_ref())
            .map_err(|msg| self.error(raw.span(), msg))
            .ok()
    }

    pub(super) fn http_options(
        &mut self,
        raw: &RawWatcher,
        pool: Option<&Arc<ProxyPool>>,
    ) -> Option<HttpOptions> {
        let mut ok = true;
        let method = match &raw.method {
            None => Method::GET,
            Some(m) => match m.get_ref().to_ascii_uppercase().as_str() {
                "GET" => Method::GET,
                "POST" => Method::POST,
                "PUT" => Method::PUT,
                "PATCH" => Method::PATCH,
                "DELETE" => Method::DELETE,
                other => {
                    let msg = format!(
                        "unsupported method `{other}`: use GET, POST, PUT, PATCH or DELETE"
                    );
                    self.error(m.span(), msg);
                    ok = false;
                    Method::GET
                }
            },
        };
        if let Some(body) = &raw.body
            && method == Method::GET
        {
            self.warn(
                body.span(),
                "`body` is sent with GET, which most servers ignore; set `method = \"POST\"`?",
            );
        }

        let mut headers = HeaderMap::new();
        if let Some(map) = &raw.headers {
            for (key, value) in map.get_ref() {
                let name = HeaderName::from_bytes(key.as_bytes());
                match (name, sensitive(value.get_ref())) {
                    (Ok(name), Some(value)) => {
                        headers.insert(name, value);
                    }
                    (Err(_), _) => {
                        self.error(value.span(), format!("invalid header name `{key}`"));
                        ok = false;
                    }
                    (_, None) => {
                        self.error(value.span(), format!("invalid value for header `{key}`"));
                        ok = false;
                    }
                }
            }
        }
        if let Some(map) = &raw.cookies {
            let mut pairs = Vec::new();
            for (name, value) in map.get_ref() {
                let bad_name = name.is_empty()
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
                let bad_value = !value
                    .get_ref()
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b",;\\\"".contains(&b));
                if bad_name || bad_value {
                    let msg = format!(
                        "invalid cookie `{name}`: a name is a token; a value has no spaces, `;`, `,`, `\"` or `\\`"
                    );
                    self.error(value.span(), msg);
                    ok = false;
                }
                pairs.push(format!("{name}={}", value.get_ref()));
            }
            if let Some(value) = sensitive(&pairs.join("; ")) {
                headers.insert(header::COOKIE, value);
            }
        }
        if let Some(agent) = &raw.user_agent {
            match HeaderValue::from_str(agent.get_ref()) {
                Ok(value) => {
                    headers.insert(header::USER_AGENT, value);
                }
                Err(_) => {
                    self.error(agent.span(), "invalid `user_agent`: use printable ASCII");
                    ok = false;
                }
            }
        }
        let body = raw.body.as_ref().map(|b| b.get_ref().clone());
        if let Some(body) = &body
            && !headers.contains_key(header::CONTENT_TYPE)
            && serde_json::from_str::<serde::de::IgnoredAny>(body).is_ok()
        {
            // What an API behind POST almost always wants; a header in `headers` overrides it.
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }

        let proxy = match &raw.proxy {
            Some(p) if p.get_ref() == DIRECT => Proxy::Direct,
            Some(p) => match self.proxy_url(p) {
                Some(url) => Proxy::One(url),
                None => {
                    ok = false;
                    Proxy::Direct
                }
            },
            None => pool.map_or(Proxy::Direct, |pool| Proxy::Pool(pool.clone())),
        };
        let connect_timeout = raw
            .connect_timeout
            .as_ref()
            .and_then(|t| self.duration(t))
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let concurrency = raw
            .per_host_concurrency
            .as_ref()
            .and_then(|n| self.positive(n, "per_host_concurrency", MAX_CONCURRENCY_LIMIT))
            .map_or(DEFAULT_PER_HOST_CONCURRENCY, |n| n as usize);
        let delay = raw
            .per_host_delay
            .as_ref()
            .and_then(|d| self.duration(d))
            .unwrap_or_default();
        ok.then_some(HttpOptions {
            method,
            headers,
            body,
            proxy,
            connect_timeout,
            host: HostPolicy { concurrency, delay },
        })
    }
}

/// A header value that prints as "Sensitive" in Debug output.
fn sensitive(text: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(text).ok()?;
    value.set_sensitive(true);
    Some(value)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::testing::{NoEnv, assert_errors};
    use super::super::{ConfigError, Loaded, parse};
    use super::*;

    const HEAD: &str = "[webhooks.a]\nurl = \"https://a.example/hook\"\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n";

    fn load(text: &str) -> Result<Loaded, ConfigError> {
        parse(&format!("{HEAD}{text}"), Path::new("watchers.toml"), &NoEnv)
    }

    fn errors(text: &str) -> Vec<String> {
        match load(text) {
            Ok(_) => panic!("should be rejected:\n{text}"),
            Err(err) => err.errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn request_keys_compile_and_defaults_merge_by_name() {
        let loaded = load(
            r#"[daemon]
max_concurrency = 8
[defaults]
headers = { Accept-Language = "de", X-Key = "d" }
cookies = { region = "eu" }
proxy = "socks5://u:p@127.0.0.1:1080"
failure_threshold = 5
[[watchers]]
name = "api"
url = "https://api.example/search"
method = "post"
body = '{"q": 1}'
headers = { X-Key = "w" }
user_agent = "Mozilla/5.0"
connect_timeout = "3s"
fields.p = { css = "p" }
[[watchers]]
name = "plain"
url = "https://shop.example/x"
proxy = "direct"
fields.p = { css = "p" }
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let config = &loaded.config;
        assert_eq!(config.max_concurrency, 8);
        let [api, plain] = &config.watchers[..] else {
            panic!()
        };
        let http = &api.http;
        assert_eq!(http.method, Method::POST);
        assert_eq!(http.headers["x-key"], "w");
        assert_eq!(http.headers["accept-language"], "de");
        assert_eq!(http.headers["cookie"], "region=eu");
        assert_eq!(http.headers["user-agent"], "Mozilla/5.0");
        assert_eq!(http.headers["content-type"], "application/json");
        assert_eq!(http.connect_timeout, Duration::from_secs(3));
        assert!(
            matches!(&http.proxy, Proxy::One(url) if url.to_string() == "socks5://***@127.0.0.1:1080")
        );
        assert_eq!(api.failure_threshold, 5);
        assert!(matches!(plain.http.proxy, Proxy::Direct));
        assert_eq!(plain.http.method, Method::GET);
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("u:p@") && !shown.contains("\"w\""),
            "{shown}"
        );
    }

    #[test]
    fn the_pool_serves_watchers_without_their_own_proxy() {
        let loaded = load(
            r#"[proxies]
urls = ["http://a:b@p1.example:8080", "socks5h://p2.example:1080"]
rotation = "random"
rest = "10m"
failures_before_rest = 2
[[watchers]]
name = "w"
url = "https://shop.example/x"
fields.p = { css = "p" }
"#,
        )
        .unwrap();
        let Proxy::Pool(pool) = &loaded.config.watchers[0].http.proxy else {
            panic!("expected the pool")
        };
        assert_eq!(pool.len(), 2);
        assert!(!format!("{pool:?}").contains("a:b"));
    }

    #[test]
    fn watchers_of_one_host_share_its_strictest_policy() {
        let loaded = load(
            r#"[[watchers]]
name = "a"
url = "https://shop.example/a"
per_host_concurrency = 4
fields.p = { css = "p" }
[[watchers]]
name = "b"
url = "https://shop.example/b"
per_host_delay = "2s"
fields.p = { css = "p" }
[[watchers]]
name = "c"
url = "https://other.example/c"
fields.p = { css = "p" }
"#,
        )
        .unwrap();
        let policies: Vec<HostPolicy> =
            loaded.config.watchers.iter().map(|w| w.http.host).collect();
        let shop = HostPolicy {
            concurrency: 2,
            delay: Duration::from_secs(2),
        };
        assert_eq!(policies, [shop, shop, HostPolicy::default()]);
    }

    #[test]
    fn bad_values_are_errors_at_their_place() {
        let errs = errors(
            r#"[daemon]
max_concurrency = 0
[proxies]
urls = ["ftp://x:secretpw@p.example"]
rotation = "sideways"
[[watchers]]
name = "w"
url = "https://shop.example/x"
method = "BREW"
per_host_concurrency = -1
headers = { "bad header" = "x" }
cookies = { session = "a;b" }
proxy = "not a url"
failure_threshold = 0
fields.p = { css = "p" }
"#,
        );
        let expect = [
            "watchers.toml:5:19: `max_concurrency` must be between 1 and 10000",
            "watchers.toml:7:9: proxy scheme `ftp` is not supported",
            "watchers.toml:8:12: unknown rotation `sideways`",
            "watchers.toml:12:10: unsupported method `BREW`",
            "watchers.toml:13:24: `per_host_concurrency` must be between 1 and 10000",
            "watchers.toml:14:28: invalid header name `bad header`",
            "watchers.toml:15:23: invalid cookie `session`",
            "watchers.toml:16:9: invalid proxy URL",
            "watchers.toml:17:21: `failure_threshold` must be between 1 and 1000000",
        ];
        assert_errors(&errs, &expect);
        assert!(errs.iter().all(|e| !e.contains("secretpw")));
    }

    #[test]
    fn a_body_with_get_is_a_warning() {
        let loaded = load(
            "[[watchers]]\nname = \"w\"\nurl = \"https://x.example\"\nbody = \"q=1\"\nfields.p = { css = \"p\" }\n",
        )
        .unwrap();
        assert_eq!(loaded.warnings.len(), 1);
        assert!(
            loaded.warnings[0]
                .message
                .contains("`body` is sent with GET")
        );
    }
}
