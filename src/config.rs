//! watchers.toml: raw serde types, defaults, validation, secret resolution, and the runtime
//! types every other part reads. Nothing after load handles an unparsed string.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use toml::Spanned;
use url::Url;

use crate::extract::{DEFAULT_MAX_VALUE_SIZE, Field, FieldKind, Source, currency};
use crate::fetch::HttpOptions;
use crate::notify::{self, Direction, FieldNotify, FieldRules, Rules};
use crate::redact::{self, SensitiveUrl};
use crate::schedule::{DEFAULT_MAX_JITTER, Schedule};
use crate::sign::Secret;

pub const DEFAULT_SCHEDULE: &str = "every 15m";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_BODY: u64 = 10 * 1024 * 1024;
pub const DEFAULT_RETRY: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(15);
pub const DEFAULT_WEBHOOK_CONCURRENCY: usize = 4;
const MAX_WEBHOOK_CONCURRENCY: usize = 256;
const DEFAULT_STATE_DIR: &str = "pagehook-state";
/// Recorded values kept per watcher: years of daily changes, yet a bounded store.
pub const DEFAULT_HISTORY_LIMIT: usize = 1000;

mod css;
mod http;

/// A loaded, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub state_dir: PathBuf,
    /// Where /healthz and /metrics are served; None turns the admin endpoint off.
    pub admin_listen: Option<std::net::SocketAddr>,
    pub webhooks: BTreeMap<String, Arc<Webhook>>,
    pub watchers: Vec<Arc<Watcher>>,
    /// Page requests in flight at once (`daemon.max_concurrency`).
    pub max_concurrency: usize,
}

/// One receiving endpoint.
#[derive(Clone, PartialEq)]
pub struct Webhook {
    pub name: String,
    pub url: SensitiveUrl,
    /// The first signs as the current secret; the rest keep receivers working while they rotate.
    pub secrets: Vec<Secret>,
    /// The delay before each retry; its length is the number of retries.
    pub retry: Vec<Duration>,
    pub headers: HeaderMap,
    pub timeout: Duration,
    /// Attempts in flight at once to this endpoint.
    pub concurrency: usize,
}

impl fmt::Debug for Webhook {
    // Extra headers usually carry credentials, so only their names are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("secrets", &self.secrets)
            .field("retry", &self.retry)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

/// One watched page.
#[derive(Debug, Clone)]
pub struct Watcher {
    pub name: String,
    pub url: SensitiveUrl,
    pub schedule: Schedule,
    /// This watcher's deterministic place within its schedule's period.
    pub offset: Duration,
    pub webhooks: Vec<String>,
    pub fields: Vec<Field>,
    pub timeout: Duration,
    pub max_body: u64,
    /// History entries kept for this watcher; 0 records none.
    pub history_limit: usize,
    /// When a recorded change is worth an event.
    pub notify: Rules,
    pub http: HttpOptions,
    /// Failed checks in a row that send one `watch.failing` event.
    pub failure_threshold: u32,
}

/// How long a check may be late before it counts as overdue, beyond its slot and `timeout`:
/// the scheduler's and the store's own moments.
const OVERDUE_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

impl Watcher {
    /// The slot this watcher has been due at since, if it is overdue at `now`: that slot, its
    /// `timeout` and a grace have passed without a check finishing. A watcher that never ran
    /// has been due since checking began (`running_since`, the daemon's start); with no daemon
    /// running that is unknown, and it is not called overdue.
    pub fn overdue_since(
        &self,
        last_check: Option<chrono::DateTime<chrono::Utc>>,
        now: chrono::DateTime<chrono::Utc>,
        running_since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let due = match last_check {
            Some(last) => self.schedule.next_after(last, self.offset),
            None => running_since?,
        };
        let late = chrono::TimeDelta::from_std(self.timeout + OVERDUE_GRACE).ok()?;
        (now > due + late).then_some(due)
    }
}

impl Config {
    pub fn watcher(&self, name: &str) -> Option<&Arc<Watcher>> {
        self.watchers.iter().find(|w| w.name == name)
    }
}

/// One finding of validation, pointing into the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (file, line, column) = (self.file.display(), self.line, self.column);
        write!(f, "{file}:{line}:{column}: {}", self.message)
    }
}

impl Diagnostic {
    /// The same place and message, marked as a warning: legal, but probably not meant.
    pub fn as_warning(&self) -> String {
        let (file, line, column) = (self.file.display(), self.line, self.column);
        format!("{file}:{line}:{column}: warning: {}", self.message)
    }
}

/// Every error found in a config file (warnings travel separately, on success).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub errors: Vec<Diagnostic>,
}

/// A config and the odd-but-legal settings worth a warning.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

/// Where a config's outside inputs come from, so tests need no process environment.
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// Read and validate a config file.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|err| ConfigError {
        errors: vec![Diagnostic {
            file: path.to_owned(),
            line: 1,
            column: 1,
            message: format!("cannot read config: {err}"),
        }],
    })?;
    parse(&text, path, &ProcessEnv)
}

/// Validate config text as if read from `path` (relative secret files resolve beside it).
pub fn parse(text: &str, path: &Path, env: &dyn Environment) -> Result<Loaded, ConfigError> {
    let mut v = Validator {
        file: path,
        text,
        env,
        errors: Vec::new(),
        warnings: Vec::new(),
        reported: HashSet::new(),
    };
    let raw: RawConfig = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(err) => {
            // serde stops at the first shape error; semantic checks below report all at once.
            v.error(
                err.span().unwrap_or(0..0),
                without_quoted_strings(err.message().trim_end()),
            );
            return Err(ConfigError { errors: v.errors });
        }
    };
    let config = v.config(raw);
    if v.errors.is_empty() {
        Ok(Loaded {
            config,
            warnings: v.warnings,
        })
    } else {
        Err(ConfigError { errors: v.errors })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    daemon: RawDaemon,
    defaults: Option<Spanned<RawWatcher>>,
    #[serde(default)]
    webhooks: BTreeMap<Spanned<String>, Spanned<RawWebhook>>,
    // Boxed, so the list grows by pointers, not by whole watchers: it matters at 10,000.
    #[serde(default)]
    watchers: Vec<Spanned<Box<RawWatcher>>>,
    proxies: Option<Spanned<http::RawProxies>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    state_dir: Option<PathBuf>,
    admin_listen: Option<Spanned<String>>,
    max_concurrency: Option<Spanned<i64>>,
}

/// A string or a list of strings, as TOML users write either.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: Spanned<String>,
    secret: Option<Spanned<OneOrMany>>,
    secret_env: Option<Spanned<String>>,
    secret_file: Option<Spanned<PathBuf>>,
    secret_credential: Option<Spanned<String>>,
    retry: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    headers: BTreeMap<String, Spanned<String>>,
    timeout: Option<Spanned<String>>,
    concurrency: Option<Spanned<i64>>,
}

/// A watcher as written, and also `[defaults]`: every key is optional so that a watcher's
/// silence can fall back to the defaults.
#[derive(Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
struct RawWatcher {
    name: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    schedule: Option<Spanned<String>>,
    jitter: Option<Spanned<String>>,
    webhook: Option<Spanned<OneOrMany>>,
    // Boxed: a map node holds eleven slots, and a watcher usually has one or two fields.
    fields: Option<Spanned<BTreeMap<String, Spanned<Box<RawField>>>>>,
    timeout: Option<Spanned<String>>,
    max_body_size: Option<Spanned<ByteSize>>,
    /// The default for the watcher's fields.
    max_value_size: Option<Spanned<ByteSize>>,
    history_limit: Option<Spanned<i64>>,
    notify: Option<Spanned<RawRule>>,
    currency: Option<Spanned<String>>,
    connect_timeout: Option<Spanned<String>>,
    per_host_concurrency: Option<Spanned<i64>>,
    per_host_delay: Option<Spanned<String>>,
    failure_threshold: Option<Spanned<i64>>,
    method: Option<Spanned<String>>,
    body: Option<Spanned<String>>,
    headers: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    cookies: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    user_agent: Option<Spanned<String>>,
    proxy: Option<Spanned<String>>,
}

impl RawWatcher {
    fn or(self, defaults: &RawWatcher) -> RawWatcher {
        let d = defaults.clone();
        RawWatcher {
            name: self.name,
            url: self.url.or(d.url),
            schedule: self.schedule.or(d.schedule),
            jitter: self.jitter.or(d.jitter),
            webhook: self.webhook.or(d.webhook),
            fields: self.fields.or(d.fields),
            timeout: self.timeout.or(d.timeout),
            max_body_size: self.max_body_size.or(d.max_body_size),
            max_value_size: self.max_value_size.or(d.max_value_size),
            history_limit: self.history_limit.or(d.history_limit),
            notify: self.notify.or(d.notify),
            currency: self.currency.or(d.currency),
            connect_timeout: self.connect_timeout.or(d.connect_timeout),
            per_host_concurrency: self.per_host_concurrency.or(d.per_host_concurrency),
            per_host_delay: self.per_host_delay.or(d.per_host_delay),
            failure_threshold: self.failure_threshold.or(d.failure_threshold),
            method: self.method.or(d.method),
            body: self.body.or(d.body),
            // Headers and cookies add up: [defaults] gives every watcher its own, a watcher
            // adds or overrides by name.
            headers: http::merge(self.headers, d.headers),
            cookies: http::merge(self.cookies, d.cookies),
            user_agent: self.user_agent.or(d.user_agent),
            proxy: self.proxy.or(d.proxy),
        }
    }
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawField {
    css: Option<Spanned<String>>,
    jsonld: Option<Spanned<String>>,
    json: Option<Spanned<String>>,
    attr: Option<Spanned<String>>,
    currency: Option<Spanned<String>>,
    notify: Option<Spanned<RawFieldNotify>>,
    regex: Option<Spanned<String>>,
    max_value_size: Option<Spanned<ByteSize>>,
    #[serde(rename = "type", default)]
    kind: RawKind,
    #[serde(default = "yes")]
    required: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Clone, Copy, Default)]
#[serde(rename_all = "lowercase")]
enum RawKind {
    #[default]
    Text,
    Number,
    Price,
    Availability,
}

/// `notify = { on = "decrease", min_change_pct = 1.0, below = 100 }`
#[derive(Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
struct RawRule {
    on: Option<Spanned<RawDirection>>,
    min_change_pct: Option<Spanned<RawDecimal>>,
    min_change_abs: Option<Spanned<RawDecimal>>,
    below: Option<Spanned<RawDecimal>>,
    above: Option<Spanned<RawDecimal>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawDirection {
    Any,
    Increase,
    Decrease,
}

/// A field's `notify`: `false`, `true`, or a rule table.
#[derive(Clone)]
enum RawFieldNotify {
    Enabled(bool),
    Rule(RawRule),
}

impl<'de> Deserialize<'de> for RawFieldNotify {
    // Hand-written rather than `untagged` so a typo inside the table is reported by name.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = RawFieldNotify;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`false`, `true` or a table such as { on = \"decrease\" }")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(RawFieldNotify::Enabled(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                RawRule::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RawFieldNotify::Rule)
            }
        }
        d.deserialize_any(Visit)
    }
}

/// A number as TOML writes it: 5, 1.5 or "1299.99" (exact).
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum RawDecimal {
    Integer(i64),
    Float(f64),
    Text(String),
}

/// A byte count: an integer, or a string such as "10 MiB" or "512KB".
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum ByteSize {
    Bytes(u64),
    Text(String),
}

struct Validator<'a> {
    file: &'a Path,
    text: &'a str,
    env: &'a dyn Environment,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// What was reported, by kind, place and message: a key in [defaults] is checked again
    /// for every watcher that inherits it, yet its problem is one problem.
    reported: HashSet<(bool, usize, String)>,
}

impl Validator<'_> {
    fn diagnostic(&self, span: Range<usize>, message: String) -> Diagnostic {
        // Messages quote what the user wrote, and a secret may sit under the wrong key.
        let message = redact::webhook_secrets(&message);
        let before = &self.text[..span.start.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Diagnostic {
            file: self.file.to_owned(),
            line,
            column,
            message,
        }
    }

    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        if let Some(d) = self.first_report(false, span, message.into()) {
            self.errors.push(d);
        }
    }

    fn warn(&mut self, span: Range<usize>, message: impl Into<String>) {
        if let Some(d) = self.first_report(true, span, message.into()) {
            self.warnings.push(d);
        }
    }

    /// The diagnostic, unless this one was reported already.
    fn first_report(
        &mut self,
        warning: bool,
        span: Range<usize>,
        message: String,
    ) -> Option<Diagnostic> {
        self.reported
            .insert((warning, span.start, message.clone()))
            .then(|| self.diagnostic(span, message))
    }

    fn config(&mut self, raw: RawConfig) -> Config {
        // An explicit relative state_dir belongs to the config file, like secret_file does;
        // the fallback is where the user runs pagehook.
        let state_dir = match raw.daemon.state_dir {
            Some(dir) => self.beside_config(&dir),
            None => self
                .env
                .var("STATE_DIRECTORY")
                .map_or_else(|| PathBuf::from(DEFAULT_STATE_DIR), PathBuf::from),
        };

        let admin_listen = raw
            .daemon
            .admin_listen
            .as_ref()
            .and_then(|a| self.admin_listen(a));

        // Watchers are checked against every declared webhook, valid or not, so one bad
        // webhook is reported once, not again at each watcher that uses it.
        let mut declared = BTreeMap::new();
        let mut webhooks = BTreeMap::new();
        for (name, hook) in raw.webhooks {
            let span = name.span();
            let name = name.into_inner();
            self.check_name(&span, "webhook", &name);
            if let Some(hook) = self.webhook(&name, hook) {
                webhooks.insert(name.clone(), Arc::new(hook));
            }
            declared.insert(name, span);
        }

        let defaults = match raw.defaults {
            Some(d) => {
                if let Some(name) = &d.get_ref().name {
                    self.error(
                        name.span(),
                        "`name` cannot be set in [defaults]: each watcher needs its own",
                    );
                }
                d.into_inner()
            }
            None => RawWatcher::default(),
        };

        let max_concurrency = self.max_concurrency(raw.daemon.max_concurrency.as_ref());
        let pool = raw.proxies.and_then(|p| self.proxies(p));
        let mut watchers = Vec::new();
        let mut seen = BTreeSet::new();
        let mut used = BTreeSet::new();
        for raw in raw.watchers {
            let span = raw.span();
            let raw = (*raw.into_inner()).or(&defaults);
            if let Some(name) = &raw.name
                && !seen.insert(name.get_ref().clone())
            {
                let msg = format!("duplicate watcher name `{}`", name.get_ref());
                self.error(name.span(), msg);
            }
            if let Some(w) = self.watcher(span, raw, &declared, pool.as_ref()) {
                used.extend(w.webhooks.iter().cloned());
                watchers.push(Arc::new(w));
            }
        }
        for (name, span) in declared.iter().filter(|(n, _)| !used.contains(*n)) {
            self.warn(
                span.clone(),
                format!("webhook `{name}` is not used by any watcher"),
            );
        }
        http::share_host_policies(&mut watchers);
        if watchers.is_empty() && self.errors.is_empty() {
            self.warn(0..0, "no [[watchers]] defined: there is nothing to check");
        }

        Config {
            state_dir,
            admin_listen,
            webhooks,
            watchers,
            max_concurrency,
        }
    }

    fn check_name(&mut self, span: &Range<usize>, what: &str, name: &str) -> bool {
        let ok = !name.is_empty()
            && name.len() <= 128
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !ok {
            self.error(
                span.clone(),
                format!(
                    "invalid {what} name `{name}`: use 1-128 characters from a-z, 0-9, - and _"
                ),
            );
        }
        ok
    }

    fn webhook(&mut self, name: &str, raw: Spanned<RawWebhook>) -> Option<Webhook> {
        let span = raw.span();
        let raw = raw.into_inner();
        let url = self.http_url(&raw.url);
        let secrets = self.secrets(name, span.clone(), &raw);
        let retry = match &raw.retry {
            Some(list) => list.iter().filter_map(|d| self.duration(d)).collect(),
            None => DEFAULT_RETRY.to_vec(),
        };
        let timeout = raw
            .timeout
            .as_ref()
            .and_then(|t| self.duration(t))
            .unwrap_or(DEFAULT_WEBHOOK_TIMEOUT);
        let concurrency = match &raw.concurrency {
            None => DEFAULT_WEBHOOK_CONCURRENCY,
            Some(n) if (1..=MAX_WEBHOOK_CONCURRENCY as i64).contains(n.get_ref()) => {
                *n.get_ref() as usize
            }
            Some(n) => {
                self.error(
                    n.span(),
                    format!("`concurrency` must be between 1 and {MAX_WEBHOOK_CONCURRENCY}"),
                );
                DEFAULT_WEBHOOK_CONCURRENCY
            }
        };
        let mut headers = HeaderMap::new();
        for (key, value) in &raw.headers {
            let name = HeaderName::from_bytes(key.as_bytes());
            let val = HeaderValue::from_str(value.get_ref());
            match (name, val) {
                (Ok(name), Ok(mut val)) => {
                    val.set_sensitive(true);
                    headers.insert(name, val);
                }
                (Err(_), _) => self.error(value.span(), format!("invalid header name `{key}`")),
                (_, Err(_)) => {
                    self.error(value.span(), format!("invalid value for header `{key}`"))
                }
            }
        }
        Some(Webhook {
            name: name.to_owned(),
            url: url?,
            secrets: secrets?,
            retry,
            headers,
            timeout,
            concurrency,
        })
    }

    fn secrets(&mut self, hook: &str, span: Range<usize>, raw: &RawWebhook) -> Option<Vec<Secret>> {
        let sources = [
            raw.secret.is_some(),
            raw.secret_env.is_some(),
            raw.secret_file.is_some(),
            raw.secret_credential.is_some(),
        ];
        let (texts, at): (Vec<String>, Range<usize>) = match sources.iter().filter(|s| **s).count()
        {
            0 => {
                self.error(
                    span,
                    format!("webhook `{hook}` needs a secret: set secret, secret_env, secret_file or secret_credential (`pagehook secret` makes one)"),
                );
                return None;
            }
            1 => {
                if let Some(s) = &raw.secret {
                    (s.get_ref().clone().into_vec(), s.span())
                } else if let Some(var) = &raw.secret_env {
                    if self.names_a_secret("secret_env", var.get_ref(), var.span()) {
                        return None;
                    }
                    match self.env.var(var.get_ref()) {
                        Some(value) => (split_secrets(&value), var.span()),
                        None => {
                            let msg =
                                format!("environment variable `{}` is not set", var.get_ref());
                            self.error(var.span(), msg);
                            return None;
                        }
                    }
                } else if let Some(name) = &raw.secret_credential {
                    if self.names_a_secret("secret_credential", name.get_ref(), name.span()) {
                        return None;
                    }
                    match self.credential(name) {
                        Some(value) => (split_secrets(&value), name.span()),
                        None => return None,
                    }
                } else {
                    let file = raw.secret_file.as_ref().expect("counted above");
                    let named = file.get_ref().to_string_lossy();
                    if self.names_a_secret("secret_file", &named, file.span()) {
                        return None;
                    }
                    let path = self.beside_config(file.get_ref());
                    match std::fs::read_to_string(&path) {
                        Ok(value) => (split_secrets(&value), file.span()),
                        Err(err) => {
                            let msg = format!("cannot read secret_file {}: {err}", path.display());
                            self.error(file.span(), msg);
                            return None;
                        }
                    }
                }
            }
            _ => {
                self.error(
                    span,
                    format!("webhook `{hook}`: set only one of secret, secret_env, secret_file and secret_credential"),
                );
                return None;
            }
        };
        if texts.is_empty() {
            self.error(at, "the secret is empty");
            return None;
        }
        let mut secrets = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            match text.trim().parse::<Secret>() {
                Ok(secret) => secrets.push(secret),
                Err(err) => {
                    let which = if texts.len() > 1 {
                        format!("secret #{}: ", i + 1)
                    } else {
                        String::new()
                    };
                    self.error(at.clone(), format!("{which}{err}"));
                }
            }
        }
        (secrets.len() == texts.len()).then_some(secrets)
    }

    /// `secret_env`, `secret_file` and `secret_credential` name where the secret is kept; the
    /// secret itself in their place is a slip worth naming (and never echoing).
    fn names_a_secret(&mut self, key: &str, value: &str, span: Range<usize>) -> bool {
        if !value.trim().starts_with(crate::sign::SECRET_PREFIX) {
            return false;
        }
        let msg = format!(
            "`{key}` names where the secret is kept, and this is the secret itself: move it to `secret`, or keep it elsewhere and name that"
        );
        self.error(span, msg);
        true
    }

    /// A secret handed over by systemd's `LoadCredential=`: the file `name` in
    /// `$CREDENTIALS_DIRECTORY`, readable only by the service, never in the unit or the config.
    /// Outside the service (`pagehook check` or `status` from a shell) that variable is unset and
    /// the file `name` beside the config is read instead: where the shipped unit loads it from.
    fn credential(&mut self, name: &Spanned<String>) -> Option<String> {
        let plain = !name.get_ref().is_empty()
            && !name.get_ref().contains('/')
            && !name.get_ref().starts_with('.');
        if !plain {
            let msg = format!(
                "invalid credential name `{}`: a file name, as in LoadCredential=NAME:PATH",
                name.get_ref()
            );
            self.error(name.span(), msg);
            return None;
        }
        let path = match self.env.var("CREDENTIALS_DIRECTORY") {
            Some(dir) => Path::new(&dir).join(name.get_ref()),
            None => self.beside_config(Path::new(name.get_ref())),
        };
        match std::fs::read_to_string(&path) {
            Ok(value) => Some(value),
            Err(err) => {
                let msg = format!("cannot read credential {}: {err}", path.display());
                self.error(name.span(), msg);
                None
            }
        }
    }

    fn admin_listen(&mut self, raw: &Spanned<String>) -> Option<std::net::SocketAddr> {
        match raw.get_ref().parse::<std::net::SocketAddr>() {
            Ok(addr) => {
                if !addr.ip().is_loopback() {
                    // /metrics names every watcher and endpoint; not for the open internet.
                    let msg = format!(
                        "admin_listen {addr} is not a loopback address: /healthz and /metrics will be reachable from other hosts"
                    );
                    self.warn(raw.span(), msg);
                }
                Some(addr)
            }
            Err(_) => {
                let msg = format!(
                    "invalid admin_listen `{}`: write IP:PORT, e.g. \"127.0.0.1:9480\"",
                    raw.get_ref()
                );
                self.error(raw.span(), msg);
                None
            }
        }
    }

    fn beside_config(&self, path: &Path) -> PathBuf {
        match self.file.parent() {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_owned(),
        }
    }

    fn watcher(
        &mut self,
        span: Range<usize>,
        raw: RawWatcher,
        webhooks: &BTreeMap<String, Range<usize>>,
        pool: Option<&Arc<crate::fetch::ProxyPool>>,
    ) -> Option<Watcher> {
        let name = match &raw.name {
            Some(n) => self
                .check_name(&n.span(), "watcher", n.get_ref())
                .then(|| n.get_ref().clone()),
            None => {
                self.error(span.clone(), "watcher has no `name`");
                None
            }
        };
        let url = match &raw.url {
            Some(u) => self.http_url(u),
            None => {
                self.error(span.clone(), "watcher has no `url`");
                None
            }
        };
        let schedule = match &raw.schedule {
            Some(s) => match s.get_ref().parse::<Schedule>() {
                Ok(schedule) => Some(schedule),
                Err(err) => {
                    self.error(s.span(), err.to_string());
                    None
                }
            },
            None => Some(DEFAULT_SCHEDULE.parse().expect("default schedule parses")),
        };
        let jitter = raw
            .jitter
            .as_ref()
            .and_then(|j| self.duration(j))
            .unwrap_or(DEFAULT_MAX_JITTER);
        let timeout = raw
            .timeout
            .as_ref()
            .and_then(|t| self.duration(t))
            .unwrap_or(DEFAULT_TIMEOUT);
        let max_body = raw
            .max_body_size
            .as_ref()
            .and_then(|b| self.byte_size(b))
            .unwrap_or(DEFAULT_MAX_BODY);
        let history_limit = match &raw.history_limit {
            Some(limit) => match usize::try_from(*limit.get_ref()) {
                Ok(limit) => limit,
                Err(_) => {
                    self.error(
                        limit.span(),
                        "history_limit must be 0 (keep no history) or more",
                    );
                    DEFAULT_HISTORY_LIMIT
                }
            },
            None => DEFAULT_HISTORY_LIMIT,
        };
        let http = self.http_options(&raw, pool);
        let failure_threshold = self.failure_threshold(raw.failure_threshold.as_ref());
        let targets = self.targets(span.clone(), raw.webhook.as_ref(), webhooks);
        let max_value_size = self.value_size(raw.max_value_size.as_ref(), DEFAULT_MAX_VALUE_SIZE);
        let fields = match &raw.fields {
            Some(fields) if !fields.get_ref().is_empty() => {
                let compiled: Vec<(Field, FieldRules)> = fields
                    .get_ref()
                    .iter()
                    .filter_map(|(n, f)| self.field(n, f, max_value_size))
                    .collect();
                (compiled.len() == fields.get_ref().len()).then_some(compiled)
            }
            Some(fields) => {
                self.error(
                    fields.span(),
                    "`fields` is empty: name at least one value to track",
                );
                None
            }
            None => {
                self.error(span.clone(), "watcher has no `fields`: name at least one value to track, e.g. fields.price = { css = \".price\" }");
                None
            }
        };
        if let (Some(s), Some(schedule)) = (&raw.schedule, &schedule)
            && timeout > schedule.period()
        {
            let msg = format!(
                "timeout ({}) is longer than the schedule's period ({}); overlapping checks are skipped",
                humantime::format_duration(timeout),
                humantime::format_duration(schedule.period())
            );
            self.warn(s.span(), msg);
        }
        let watcher_rule = raw
            .notify
            .as_ref()
            .map(|n| (n.span(), self.rule(n.get_ref())));
        let hint = raw.currency.as_ref().map(|c| self.currency(c));
        let (name, schedule) = (name?, schedule?);
        let offset = schedule.offset_for(&name, jitter);
        let mut fields = fields?;
        if let Some(Some(hint)) = hint {
            for (field, _) in &mut fields {
                if field.kind == FieldKind::Price && field.currency.is_none() {
                    field.currency = Some(hint);
                }
            }
        }
        let notify = Rules {
            watcher: match watcher_rule {
                Some((span, rule)) => {
                    if !fields.iter().any(|(_, r)| r.numeric) {
                        self.warn(span, "notify rules apply to price and number fields, and this watcher has none; its other fields notify on every change");
                    }
                    Some(rule?)
                }
                None => None,
            },
            fields: fields
                .iter()
                .map(|(f, r)| (f.name.clone(), r.clone()))
                .collect(),
        };
        if matches!(hint, Some(None)) {
            return None;
        }
        Some(Watcher {
            offset,
            url: url?,
            webhooks: targets?,
            fields: fields.into_iter().map(|(f, _)| f).collect(),
            name,
            schedule,
            timeout,
            max_body,
            history_limit,
            notify,
            http: http?,
            failure_threshold,
        })
    }

    fn targets(
        &mut self,
        span: Range<usize>,
        named: Option<&Spanned<OneOrMany>>,
        webhooks: &BTreeMap<String, Range<usize>>,
    ) -> Option<Vec<String>> {
        let Some(named) = named else {
            // With a single endpoint there is only one sensible target.
            if webhooks.len() == 1 {
                return Some(webhooks.keys().cloned().collect());
            }
            let hint = if webhooks.is_empty() {
                "define a [webhooks.NAME] table and "
            } else {
                ""
            };
            self.error(
                span,
                format!(
                    "watcher names no webhook: {hint}set `webhook = \"NAME\"` here or in [defaults]"
                ),
            );
            return None;
        };
        let names = named.get_ref().clone().into_vec();
        let unknown: Vec<&String> = names
            .iter()
            .filter(|n| !webhooks.contains_key(*n))
            .collect();
        if !unknown.is_empty() {
            let known: Vec<&str> = webhooks.keys().map(String::as_str).collect();
            for name in unknown {
                let msg = format!("unknown webhook `{name}` (defined: {})", known.join(", "));
                self.error(named.span(), msg);
            }
            return None;
        }
        if names.is_empty() {
            self.error(named.span(), "`webhook` lists no webhook");
            return None;
        }
        Some(names)
    }

    /// A `max_value_size`, or `default` when it is absent or invalid (and reported).
    fn value_size(&mut self, raw: Option<&Spanned<ByteSize>>, default: usize) -> usize {
        raw.and_then(|size| self.byte_size(size))
            .map_or(default, |bytes| {
                usize::try_from(bytes).unwrap_or(usize::MAX)
            })
    }

    fn field(
        &mut self,
        name: &str,
        raw: &Spanned<Box<RawField>>,
        max_value_size: usize,
    ) -> Option<(Field, FieldRules)> {
        let span = raw.span();
        let raw = raw.get_ref();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            self.error(
                span.clone(),
                format!("invalid field name `{name}`: use a-z, A-Z, 0-9, - and _"),
            );
        }
        let regex = raw
            .regex
            .as_ref()
            .and_then(|r| match Regex::new(r.get_ref()) {
                Ok(regex) => Some(regex),
                Err(err) => {
                    let msg = format!("invalid regex: {}", last_line(&err.to_string()));
                    self.error(r.span(), msg);
                    None
                }
            });
        let kind = match raw.kind {
            RawKind::Text => FieldKind::Text,
            RawKind::Number => FieldKind::Number,
            RawKind::Price => FieldKind::Price,
            RawKind::Availability => FieldKind::Availability,
        };
        let source = self.source(name, span.clone(), raw, kind);
        let currency = raw.currency.as_ref().and_then(|c| {
            if kind != FieldKind::Price {
                self.error(
                    c.span(),
                    "`currency` applies only to `type = \"price\"` fields",
                );
            }
            self.currency(c)
        });
        if raw.currency.is_some() && currency.is_none() {
            return None;
        }
        let notify = match raw.notify.as_ref() {
            None => Some(FieldNotify::Inherit),
            Some(n) => match n.get_ref() {
                RawFieldNotify::Enabled(true) => Some(FieldNotify::Inherit),
                RawFieldNotify::Enabled(false) => Some(FieldNotify::Never),
                RawFieldNotify::Rule(rule) => {
                    if !kind.is_numeric() {
                        self.error(
                            n.span(),
                            format!("notify rules measure a change's size, and field `{name}` is not a price or number: use `notify = false` or set `type = \"price\"` or `\"number\"`"),
                        );
                    }
                    self.rule(rule)
                        .filter(|_| kind.is_numeric())
                        .map(FieldNotify::Rule)
                }
            },
        };
        if raw.regex.is_some() && regex.is_none() {
            return None;
        }
        let field = Field {
            name: name.to_owned(),
            source: source?,
            regex,
            kind,
            required: raw.required,
            currency,
            max_size: self.value_size(raw.max_value_size.as_ref(), max_value_size),
        };
        let rules = FieldRules {
            numeric: kind.is_numeric(),
            notify: notify?,
        };
        Some((field, rules))
    }

    /// A field's one source; a price or availability field without one finds its value in
    /// the page's structured data.
    fn source(
        &mut self,
        name: &str,
        span: Range<usize>,
        raw: &RawField,
        kind: FieldKind,
    ) -> Option<Source> {
        let given: Vec<&str> = [
            raw.css.as_ref().map(|_| "css"),
            raw.jsonld.as_ref().map(|_| "jsonld"),
            raw.json.as_ref().map(|_| "json"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if given.len() > 1 {
            let msg = format!(
                "field `{name}` has several sources ({}): keep one",
                given.join(", ")
            );
            self.error(span, msg);
            return None;
        }
        if let Some(attr) = &raw.attr
            && raw.css.is_none()
        {
            self.error(
                attr.span(),
                "`attr` reads an attribute of the `css` match: set `css` too",
            );
        }
        if let Some(css) = &raw.css {
            return match css::selector(css.get_ref()) {
                Ok(selector) => Some(Source::Css {
                    css: css.get_ref().clone(),
                    selector,
                    attr: raw.attr.as_ref().map(|a| a.get_ref().clone()),
                }),
                Err(err) => {
                    let msg = format!("invalid CSS selector `{}`: {err}", css.get_ref());
                    self.error(css.span(), msg);
                    None
                }
            };
        }
        if let Some(path) = &raw.jsonld {
            let segments: Vec<String> = path.get_ref().split('.').map(str::to_owned).collect();
            let bad = segments
                .iter()
                .any(|s| s.is_empty() || s.chars().any(char::is_whitespace));
            if bad {
                let msg = format!(
                    "invalid JSON-LD path `{}`: write property names joined by dots, e.g. \"offers.price\"",
                    path.get_ref()
                );
                self.error(path.span(), msg);
                return None;
            }
            return Some(Source::JsonLd { path: segments });
        }
        if let Some(pointer) = &raw.json {
            if !pointer.get_ref().starts_with('/') {
                let msg = format!(
                    "invalid JSON pointer `{}`: it starts with `/`, e.g. \"/data/price\"",
                    pointer.get_ref()
                );
                self.error(pointer.span(), msg);
                return None;
            }
            return Some(Source::Json {
                pointer: pointer.get_ref().clone(),
            });
        }
        if matches!(kind, FieldKind::Price | FieldKind::Availability) {
            if let Some(regex) = &raw.regex {
                self.error(
                    regex.span(),
                    "`regex` refines a source's text: set `css`, `jsonld` or `json` too",
                );
                return None;
            }
            return Some(Source::Auto);
        }
        self.error(
            span,
            format!("field `{name}` has no source: set `css`, `jsonld` or `json` (only price and availability fields find their value by themselves)"),
        );
        None
    }

    fn currency(&mut self, raw: &Spanned<String>) -> Option<&'static str> {
        let code = currency::code(raw.get_ref());
        if code.is_none() {
            let msg = format!(
                "unknown currency `{}`: use an ISO 4217 code such as \"EUR\", \"USD\", \"SEK\"",
                raw.get_ref()
            );
            self.error(raw.span(), msg);
        }
        code
    }

    fn rule(&mut self, raw: &RawRule) -> Option<notify::Rule> {
        let mut ok = true;
        let mut number =
            |v: &mut Self, value: &Option<Spanned<RawDecimal>>, key: &str, min_zero: bool| {
                let value = value.as_ref()?;
                let parsed = match value.get_ref() {
                    RawDecimal::Integer(i) => Some(rust_decimal::Decimal::from(*i)),
                    // The shortest form that reads back as the float: 0.1, not 0.1000000000000000055.
                    RawDecimal::Float(f) => f.to_string().parse().ok(),
                    RawDecimal::Text(t) => t.trim().parse().ok(),
                };
                match parsed {
                    Some(d) if min_zero && d.is_sign_negative() && !d.is_zero() => {
                        v.error(
                            value.span(),
                            format!("`{key}` cannot be negative: it is a size, either way"),
                        );
                        ok = false;
                        None
                    }
                    Some(d) => Some(d),
                    None => {
                        v.error(value.span(), format!("`{key}` must be a number"));
                        ok = false;
                        None
                    }
                }
            };
        let rule = notify::Rule {
            on: match raw.on.as_ref().map(|o| *o.get_ref()) {
                None | Some(RawDirection::Any) => Direction::Any,
                Some(RawDirection::Increase) => Direction::Increase,
                Some(RawDirection::Decrease) => Direction::Decrease,
            },
            min_change_pct: number(self, &raw.min_change_pct, "min_change_pct", true),
            min_change_abs: number(self, &raw.min_change_abs, "min_change_abs", true),
            below: number(self, &raw.below, "below", false),
            above: number(self, &raw.above, "above", false),
        };
        ok.then_some(rule)
    }

    fn http_url(&mut self, raw: &Spanned<String>) -> Option<SensitiveUrl> {
        match Url::parse(raw.get_ref()) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                Some(SensitiveUrl::new(url))
            }
            Ok(_) => {
                let msg = format!(
                    "URL `{}` must be http:// or https:// with a host",
                    redact::url(raw.get_ref())
                );
                self.error(raw.span(), msg);
                None
            }
            Err(err) => {
                let msg = format!("invalid URL `{}`: {err}", redact::url(raw.get_ref()));
                self.error(raw.span(), msg);
                None
            }
        }
    }

    fn duration(&mut self, raw: &Spanned<String>) -> Option<Duration> {
        match humantime::parse_duration(raw.get_ref()) {
            Ok(d) => Some(d),
            Err(err) => {
                let msg = format!(
                    "invalid duration `{}`: {err} (write e.g. \"30s\", \"5m\", \"2h\")",
                    raw.get_ref()
                );
                self.error(raw.span(), msg);
                None
            }
        }
    }

    fn byte_size(&mut self, raw: &Spanned<ByteSize>) -> Option<u64> {
        let parsed = match raw.get_ref() {
            ByteSize::Bytes(n) => Some(*n),
            ByteSize::Text(text) => parse_byte_size(text),
        };
        match parsed {
            Some(0) | None => {
                self.error(
                    raw.span(),
                    "invalid size: write a positive number of bytes or e.g. \"10 MiB\", \"512 KB\"",
                );
                None
            }
            n => n,
        }
    }
}

/// serde quotes a mistyped value back (`invalid type: string "whsec_...", expected a map`), and
/// a value under the wrong key may be a secret; the message's place already points at it.
fn without_quoted_strings(message: &str) -> String {
    const QUOTED: &str = "string \"";
    let mut shown = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(QUOTED) {
        shown.push_str(&rest[..start]);
        shown.push_str("a string");
        // Debug-escaped: a quote inside the value is `\"`.
        let quoted = &rest[start + QUOTED.len()..];
        let mut escaped = false;
        let end = quoted
            .char_indices()
            .find(|&(_, c)| {
                let closes = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                closes
            })
            .map_or(quoted.len(), |(i, _)| i + 1);
        rest = &quoted[end..];
    }
    shown.push_str(rest);
    shown
}

/// Several secrets in one env var or file sit on separate lines (or are space-separated).
fn split_secrets(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

/// regex errors draw the pattern with a caret over several lines; the last one says what is wrong.
fn last_line(text: &str) -> &str {
    let last = text.lines().last().unwrap_or(text).trim();
    last.strip_prefix("error: ").unwrap_or(last)
}

fn parse_byte_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" => 1 << 10,
        "mb" => 1_000_000,
        "mib" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// Helpers for tests that build configs from text.
#[cfg(test)]
pub(crate) mod testing {
    use super::Environment;

    /// An environment with no variables set.
    pub struct NoEnv;

    impl Environment for NoEnv {
        fn var(&self, _: &str) -> Option<String> {
            None
        }
    }

    /// `errs` holds exactly one error starting with each of `expect`.
    pub fn assert_errors(errs: &[String], expect: &[&str]) {
        for want in expect {
            assert!(
                errs.iter().any(|e| e.starts_with(want)),
                "missing {want:?} in:\n{}",
                errs.join("\n")
            );
        }
        assert_eq!(errs.len(), expect.len(), "{}", errs.join("\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::testing::assert_errors;
    use super::*;
    use std::collections::HashMap;

    struct FakeEnv(HashMap<&'static str, &'static str>);

    impl Environment for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| v.to_string())
        }
    }

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn parse_text(text: &str) -> Result<Loaded, ConfigError> {
        let env = FakeEnv([("PAGEHOOK_SECRET", SECRET)].into());
        parse(text, Path::new("watchers.toml"), &env)
    }

    fn errors(text: &str) -> Vec<String> {
        match parse_text(text) {
            Ok(_) => panic!("config should be rejected:\n{text}"),
            Err(err) => err.errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let text = include_str!("../watchers.toml");
        let loaded = parse_text(text).unwrap_or_else(|e| panic!("{e}"));
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(loaded.config.watchers.len(), 2);
        let attic = &loaded.config.watchers[0];
        assert_eq!(attic.fields.len(), 3);
        assert_eq!(attic.webhooks, ["pipeline"]);
        assert_eq!(attic.timeout, Duration::from_secs(30));
        assert!(attic.offset < DEFAULT_MAX_JITTER);
    }

    #[test]
    fn defaults_fill_what_a_watcher_leaves_out() {
        let loaded = parse_text(&format!(
            r#"
            [defaults]
            schedule = "every 5m"
            timeout = "10s"
            [webhooks.a]
            url = "https://a.example/hook"
            secret = "{SECRET}"
            [[watchers]]
            name = "w1"
            url = "https://shop.example/1"
            fields.price = {{ css = ".price" }}
            [[watchers]]
            name = "w2"
            url = "https://shop.example/2"
            timeout = "20s"
            max_body_size = "1 MiB"
            fields.price = {{ css = ".price", type = "number", required = false }}
            "#
        ))
        .unwrap();
        let [w1, w2] = &loaded.config.watchers[..] else {
            panic!()
        };
        assert_eq!(w1.schedule.period(), Duration::from_secs(300));
        assert_eq!(
            (w1.timeout, w2.timeout),
            (Duration::from_secs(10), Duration::from_secs(20))
        );
        assert_eq!((w1.max_body, w2.max_body), (DEFAULT_MAX_BODY, 1 << 20));
        assert_eq!(w1.webhooks, ["a"], "the only webhook is the default target");
        assert_eq!(w2.fields[0].kind, FieldKind::Number);
        assert!(!w2.fields[0].required);
        assert_eq!(loaded.config.webhooks["a"].retry, DEFAULT_RETRY);
    }

    #[test]
    fn a_syntax_error_names_line_and_column() {
        let errs = errors("[[watchers]]\nname = \"a\"\nurl = = \"x\"\n");
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("watchers.toml:3:7: "), "{errs:?}");
    }

    #[test]
    fn an_unknown_key_is_an_error_at_its_place() {
        let err = &errors(&format!(
            "[webhooks.a]\nurl = \"https://a.example\"\nsecret = \"{SECRET}\"\n\n[[watchers]]\nname = \"a\"\n  shedule = \"every 5m\"\n"
        ))[0];
        assert!(
            err.starts_with("watchers.toml:7:3: unknown field `shedule`"),
            "{err}"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = r#"[webhooks.a]
url = "ftp://a.example/hook"
secret = "whsec_short"

[webhooks.b]
url = "https://b.example/hook"
secret_env = "NOT_SET"

[webhooks.c]
url = "https://c.example/hook"
secret_env = "PAGEHOOK_SECRET"

[[watchers]]
name = "Bad Name"
url = "not a url"
schedule = "*/5 * * *"
webhook = "nope"
fields.price = { css = "span[" }

[[watchers]]
name = "dup"
url = "https://shop.example/1"
webhook = "c"
fields.title = { css = "h1", regex = "(" }

[[watchers]]
name = "dup"
url = "https://shop.example/2"
webhook = "b"
"#;
        let errs = errors(text);
        let expect = [
            "watchers.toml:2:7: URL `ftp://a.example/hook` must be http:// or https:// with a host",
            "watchers.toml:3:10: secret is ",
            "watchers.toml:7:14: environment variable `NOT_SET` is not set",
            "watchers.toml:14:8: invalid watcher name `Bad Name`",
            "watchers.toml:15:7: invalid URL `not a url`",
            "watchers.toml:16:12: invalid cron expression \"*/5 * * *\"",
            "watchers.toml:17:11: unknown webhook `nope` (defined: a, b, c)",
            "watchers.toml:18:24: invalid CSS selector `span[`: Unexpected EOL",
            "watchers.toml:24:38: invalid regex: unclosed group",
            "watchers.toml:27:8: duplicate watcher name `dup`",
            "watchers.toml:26:1: watcher has no `fields`",
        ];
        assert_errors(&errs, &expect);
    }

    #[test]
    fn secrets_never_reach_debug_output_or_errors() {
        let loaded = parse_text(
            "[webhooks.a]\nurl = \"https://a.example\"\nsecret_env = \"PAGEHOOK_SECRET\"\nheaders = { Authorization = \"Bearer tok3n\" }\n",
        )
        .unwrap();
        let shown = format!("{:?}", loaded.config);
        assert!(
            !shown.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") && !shown.contains("tok3n"),
            "{shown}"
        );
        assert!(shown.contains("authorization"));

        let leaked = "whsec_c2VjcmV0LXRvby1zaG9ydA==";
        let errs = errors(&format!(
            "[webhooks.a]\nurl = \"https://a.example\"\nsecret = \"{leaked}\"\n"
        ));
        assert!(errs.iter().all(|e| !e.contains("c2VjcmV0")), "{errs:?}");
    }

    #[test]
    fn config_errors_keep_their_place_and_lose_their_secrets() {
        let errs = errors(&format!(
            r#"[webhooks]
secret = "{SECRET}"

[webhooks.a]
url = "https://bob:hunter2pw@/hook?token=t0ken"
secret_env = "{SECRET}"

[webhooks.b]
url = "ftp://bob:hunter2pw@b.example/hook"
secret_file = "{SECRET}"

[webhooks.c]
url = "https://c.example"
secret_credential = "{SECRET}"
"#
        ));
        let expect = ["watchers.toml:2:10: invalid type: a string, expected struct RawWebhook"];
        assert_errors(&errs, &expect);
        let errs = errors(&format!(
            r#"[webhooks.a]
url = "https://bob:hunter2pw@/hook?token=t0ken"
secret_env = "{SECRET}"

[webhooks.b]
url = "ftp://bob:hunter2pw@b.example/hook"
secret_file = "{SECRET}"

[webhooks.c]
url = "https://c.example"
secret_credential = "{SECRET}"
"#
        ));
        let expect = [
            "watchers.toml:2:7: invalid URL `https://***@/hook?token=***`: empty host",
            "watchers.toml:3:14: `secret_env` names where the secret is kept, and this is the secret itself",
            "watchers.toml:6:7: URL `ftp://***@b.example/hook` must be http:// or https://",
            "watchers.toml:7:15: `secret_file` names where the secret is kept",
            "watchers.toml:11:21: `secret_credential` names where the secret is kept",
        ];
        assert_errors(&errs, &expect);
        let errs = errors(&format!(
            "{HOOK}[[watchers]]\nname = \"w\"\nurl = \"https://s.example\"\nfields.p = {{ css = \"p\", type = \"{SECRET}\" }}\n"
        ));
        assert_errors(&errs, &["watchers.toml:7:32: unknown variant `whsec_***`"]);
        let secret = &SECRET["whsec_".len()..];
        let mistakes = [
            format!("[webhooks]\nsecret = \"{SECRET}\"\n"),
            format!(
                "[webhooks.a]\nurl = \"https://a.example\"\nretry = \"{SECRET}\"\nsecret = \"x\"\n"
            ),
            format!("[webhooks.a]\nurl = \"https://a.example\"\nheaders = \"{SECRET}\"\n"),
            format!("[webhooks.a]\nurl = \"https://a.example\"\nsecret_env = \"{SECRET}\"\n"),
            format!("[webhooks.a]\nurl = \"https://a.example\"\nsecret_env = \"x\\\"{SECRET}\"\n"),
        ];
        for text in mistakes {
            let errs = errors(&text);
            assert!(
                errs.iter()
                    .all(|e| e.starts_with("watchers.toml:") && !e.contains(secret)),
                "{errs:?}"
            );
        }
    }

    #[test]
    fn urls_with_credentials_print_redacted() {
        let loaded = parse_text(&format!(
            "[webhooks.a]\nurl = \"https://hook:pw1@a.example/in?token=t0k\"\nsecret = \"{SECRET}\"\n[[watchers]]\nname = \"w\"\nurl = \"https://me:pw2@s.example/p?api_key=k3y&id=7\"\nfields.t = {{ css = \"h1\" }}\n"
        ))
        .unwrap();
        let config = &loaded.config;
        let watcher = &config.watchers[0];
        assert_eq!(
            watcher.url.to_string(),
            "https://***@s.example/p?api_key=***&id=7"
        );
        assert_eq!(
            watcher.url.expose().as_str(),
            "https://me:pw2@s.example/p?api_key=k3y&id=7"
        );
        let shown = format!("{config:?}");
        for secret in ["pw1", "t0k", "pw2", "k3y"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn a_problem_of_a_default_is_reported_once_not_per_watcher() {
        let watchers: String = (0..5)
            .map(|i| format!("[[watchers]]\nname = \"w{i}\"\nurl = \"https://s.example/{i}\"\n"))
            .collect();
        let loaded = parse_text(&format!(
            "{HOOK}[defaults]\nbody = \"q=1\"\nschedule = \"every 10s\"\ntimeout = \"1m\"\nfields.t = {{ css = \"h1\" }}\n{watchers}"
        ))
        .unwrap();
        let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(warnings.len(), 2, "{warnings:#?}");
        assert!(
            warnings[0].starts_with("watchers.toml:5:8: `body` is sent with GET"),
            "{warnings:#?}"
        );
        assert!(
            warnings[1].starts_with("watchers.toml:6:12: timeout (1m) is longer"),
            "{warnings:#?}"
        );

        let errs = errors(&format!(
            "{HOOK}[defaults]\nfields.t = {{ css = \"div >\" }}\ntimeout = \"soon\"\n{watchers}"
        ));
        assert_errors(
            &errs,
            &[
                "watchers.toml:5:20: invalid CSS selector `div >`: a combinator",
                "watchers.toml:6:11: invalid duration `soon`",
            ],
        );
    }

    #[test]
    fn rotation_takes_several_secrets_from_a_list_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), format!("{SECRET}\n{SECRET}\n")).unwrap();
        let text = format!(
            "[webhooks.a]\nurl = \"https://a.example\"\nsecret = [\"{SECRET}\", \"{SECRET}\"]\n[webhooks.b]\nurl = \"https://b.example\"\nsecret_file = \"secret\"\n"
        );
        let loaded = parse(
            &text,
            &dir.path().join("watchers.toml"),
            &FakeEnv(HashMap::new()),
        )
        .unwrap();
        assert_eq!(loaded.config.webhooks["a"].secrets.len(), 2);
        assert_eq!(loaded.config.webhooks["b"].secrets.len(), 2);
    }

    #[test]
    fn odd_but_legal_settings_are_warnings() {
        let loaded = parse_text(&format!(
            "[webhooks.a]\nurl = \"https://a.example\"\nsecret = \"{SECRET}\"\n[webhooks.unused]\nurl = \"https://b.example\"\nsecret = \"{SECRET}\"\n[[watchers]]\nname = \"w\"\nurl = \"https://s.example\"\nwebhook = \"a\"\nschedule = \"every 10s\"\ntimeout = \"1m\"\nfields.t = {{ css = \"h1\" }}\n"
        ))
        .unwrap();
        let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].starts_with("watchers.toml:11:12: timeout (1m) is longer"),
            "{warnings:?}"
        );
        assert!(
            warnings[1].starts_with("watchers.toml:4:11: webhook `unused` is not used"),
            "{warnings:?}"
        );
    }

    const HOOK: &str =
        "[webhooks.a]\nurl = \"https://a.example\"\nsecret_env = \"PAGEHOOK_SECRET\"\n";

    #[test]
    fn price_sources_currencies_and_notify_rules() {
        let loaded = parse_text(&format!(
            r#"{HOOK}[[watchers]]
name = "w"
url = "https://s.example/p"
currency = "SEK"
notify = {{ on = "decrease", min_change_pct = 1.5, below = "1000" }}
fields.price = {{ type = "price" }}
fields.listed = {{ jsonld = "offers.price", type = "price", currency = "NOK", notify = {{ above = 10 }} }}
fields.api = {{ json = "/data/price", type = "number", notify = false }}
fields.stock = {{ type = "availability" }}
fields.title = {{ css = "h1", notify = true }}
"#
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let w = &loaded.config.watchers[0];
        let by_name = |n: &str| w.fields.iter().find(|f| f.name == n).unwrap();
        assert!(matches!(by_name("price").source, Source::Auto));
        assert_eq!(by_name("price").currency, Some("SEK"), "the watcher's hint");
        assert_eq!(
            by_name("listed").currency,
            Some("NOK"),
            "the field's own wins"
        );
        assert!(
            matches!(&by_name("api").source, Source::Json { pointer } if pointer == "/data/price")
        );
        let rule = w.notify.watcher.as_ref().unwrap();
        assert_eq!(rule.on, Direction::Decrease);
        assert_eq!(rule.min_change_pct.unwrap().to_string(), "1.5");
        assert_eq!(rule.below.unwrap().to_string(), "1000");
        assert_eq!(w.notify.fields["api"].notify, FieldNotify::Never);
        assert!(matches!(
            w.notify.fields["listed"].notify,
            FieldNotify::Rule(_)
        ));
        assert!(!w.notify.fields["title"].numeric);
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }

    #[test]
    fn every_bad_price_key_is_reported_at_its_place() {
        let text = format!(
            r#"{HOOK}[[watchers]]
name = "w"
url = "https://s.example/p"
notify = {{ min_change_pct = -1, on = "any" }}
fields.two = {{ css = "h1", json = "/a" }}
fields.ptr = {{ json = "data/price" }}
fields.path = {{ jsonld = "offers..price" }}
fields.nosource = {{ type = "number" }}
fields.cur = {{ css = ".p", type = "price", currency = "EURO" }}
fields.textcur = {{ css = ".p", currency = "EUR" }}
fields.textrule = {{ css = "h1", notify = {{ min_change_abs = 1 }} }}
fields.abs = {{ css = ".p", type = "price", notify = {{ min_change_abs = -2.5 }} }}
fields.attr = {{ jsonld = "image", attr = "src" }}
fields.autoregex = {{ type = "price", regex = "(\\d+)" }}
"#
        );
        let errs = errors(&text);
        let expect = [
            "watchers.toml:7:29: `min_change_pct` cannot be negative",
            "watchers.toml:8:14: field `two` has several sources (css, json): keep one",
            "watchers.toml:9:23: invalid JSON pointer `data/price`: it starts with `/`",
            "watchers.toml:10:26: invalid JSON-LD path `offers..price`",
            "watchers.toml:11:19: field `nosource` has no source",
            "watchers.toml:12:55: unknown currency `EURO`",
            "watchers.toml:13:43: `currency` applies only to `type = \"price\"` fields",
            "watchers.toml:14:42: notify rules measure a change's size, and field `textrule` is not a price or number",
            "watchers.toml:15:72: `min_change_abs` cannot be negative",
            "watchers.toml:16:42: `attr` reads an attribute of the `css` match",
            "watchers.toml:17:46: `regex` refines a source's text",
        ];
        assert_errors(&errs, &expect);

        let typo = errors(&format!(
            "{HOOK}[[watchers]]\nname = \"w\"\nurl = \"https://s.example\"\nfields.p = {{ type = \"price\", notify = {{ below_ = 5 }} }}\n"
        ));
        assert!(typo[0].contains("unknown field `below_`"), "{typo:?}");
        let on = errors(&format!(
            "{HOOK}[[watchers]]\nname = \"w\"\nurl = \"https://s.example\"\nnotify = {{ on = \"drop\" }}\nfields.p = {{ type = \"price\" }}\n"
        ));
        assert!(
            on[0].starts_with("watchers.toml:7:17: unknown variant `drop`"),
            "{on:?}"
        );
    }

    #[test]
    fn watcher_rules_without_numeric_fields_are_a_warning() {
        let loaded = parse_text(&format!(
            "{HOOK}[[watchers]]\nname = \"w\"\nurl = \"https://s.example\"\nnotify = {{ on = \"decrease\" }}\nfields.t = {{ css = \"h1\" }}\n"
        ))
        .unwrap();
        assert_eq!(loaded.warnings.len(), 1);
        assert!(
            loaded.warnings[0]
                .to_string()
                .contains("notify rules apply to price and number fields"),
            "{:?}",
            loaded.warnings
        );
    }

    #[test]
    fn a_secret_comes_from_a_systemd_credential_or_beside_the_config() {
        let creds = tempfile::tempdir().unwrap();
        std::fs::write(creds.path().join("hook-secret"), format!("{SECRET}\n")).unwrap();
        let text =
            "[webhooks.a]\nurl = \"https://a.example\"\nsecret_credential = \"hook-secret\"\n";
        let dir = creds.path().to_str().unwrap().to_owned();
        let env = FakeEnv([("CREDENTIALS_DIRECTORY", &*dir.leak())].into());
        let loaded = parse(text, Path::new("/nowhere/watchers.toml"), &env).unwrap();
        assert_eq!(loaded.config.webhooks["a"].secrets.len(), 1);

        // From a shell, the same name is the file beside the config.
        let config = creds.path().join("watchers.toml");
        let loaded = parse(text, &config, &FakeEnv(HashMap::new())).unwrap();
        assert_eq!(loaded.config.webhooks["a"].secrets.len(), 1);

        let errs = errors(text);
        assert!(
            errs[0].starts_with("watchers.toml:3:21: cannot read credential hook-secret: "),
            "{errs:?}"
        );
        let errs =
            errors("[webhooks.a]\nurl = \"https://a.example\"\nsecret_credential = \"../etc/x\"\n");
        assert!(errs[0].contains("invalid credential name"), "{errs:?}");
    }

    #[test]
    fn admin_listen_and_history_limit() {
        let watcher = |extra: &str| {
            format!(
                "[webhooks.a]\nurl = \"https://a.example\"\nsecret = \"{SECRET}\"\n[defaults]\nhistory_limit = 5\n[[watchers]]\nname = \"w\"\nurl = \"https://s.example\"\nfields.t = {{ css = \"h1\" }}\n{extra}"
            )
        };
        let loaded = parse_text(&format!(
            "[daemon]\nadmin_listen = \"127.0.0.1:9480\"\n{}",
            watcher("")
        ))
        .unwrap();
        assert_eq!(
            loaded.config.admin_listen,
            Some("127.0.0.1:9480".parse().unwrap())
        );
        assert_eq!(
            loaded.config.watchers[0].history_limit, 5,
            "from [defaults]"
        );
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

        let own = parse_text(&watcher("history_limit = 0\n")).unwrap();
        assert_eq!(own.config.watchers[0].history_limit, 0);
        assert_eq!(own.config.admin_listen, None, "off unless set");

        let open = parse_text(&format!(
            "[daemon]\nadmin_listen = \"0.0.0.0:9480\"\n{}",
            watcher("")
        ))
        .unwrap();
        assert!(
            open.warnings[0].to_string().starts_with(
                "watchers.toml:2:16: admin_listen 0.0.0.0:9480 is not a loopback address"
            ),
            "{:?}",
            open.warnings
        );
        let errs = errors(&format!(
            "[daemon]\nadmin_listen = \"localhost\"\n{}",
            watcher("history_limit = -1\n")
        ));
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].starts_with("watchers.toml:2:16: invalid admin_listen `localhost`"),
            "{errs:?}"
        );
        assert!(
            errs[1].starts_with("watchers.toml:12:17: history_limit must be 0"),
            "{errs:?}"
        );
    }

    /// `max_value_size` on a field wins over the watcher's, which wins over `[defaults]`, which
    /// wins over 16 KiB; a bad one names its place in the file.
    #[test]
    fn max_value_size_per_field_watcher_and_defaults() {
        let config = |defaults: &str, watcher: &str| {
            format!(
                "[webhooks.a]\nurl = \"https://a.example\"\nsecret = \"{SECRET}\"\n[defaults]\n{defaults}\n[[watchers]]\nname = \"w\"\nurl = \"https://s.example\"\n{watcher}\nfields.own = {{ css = \"p\", max_value_size = 100 }}\nfields.inherits = {{ css = \"h1\" }}\n"
            )
        };
        let sizes = |text: &str| -> Vec<(String, usize)> {
            let loaded = parse_text(text).unwrap_or_else(|e| panic!("{e}"));
            let watcher = &loaded.config.watchers[0];
            watcher
                .fields
                .iter()
                .map(|f| (f.name.clone(), f.max_size))
                .collect()
        };
        assert_eq!(
            sizes(&config("", "")),
            [("inherits".into(), 16 * 1024), ("own".into(), 100)]
        );
        assert_eq!(
            sizes(&config("max_value_size = \"1 MiB\"", "")),
            [("inherits".into(), 1 << 20), ("own".into(), 100)]
        );
        assert_eq!(
            sizes(&config(
                "max_value_size = \"1 MiB\"",
                "max_value_size = 2048"
            )),
            [("inherits".into(), 2048), ("own".into(), 100)]
        );
        let errs = errors(
            &config("", "max_value_size = \"lots\"")
                .replace("max_value_size = 100", "max_value_size = 0"),
        );
        assert_errors(
            &errs,
            &[
                "watchers.toml:9:18: invalid size",
                "watchers.toml:10:44: invalid size",
            ],
        );
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("10 MiB"), Some(10 << 20));
        assert_eq!(parse_byte_size("512KB"), Some(512_000));
        assert_eq!(parse_byte_size("7"), Some(7));
        assert_eq!(parse_byte_size("lots"), None);
        assert_eq!(parse_byte_size("5 parsecs"), None);
    }
}
