//! watchers.toml: raw serde types, defaults, validation, secret resolution, and the runtime
//! types every other part reads. Nothing after load handles an unparsed string.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use scraper::Selector;
use serde::Deserialize;
use toml::Spanned;
use url::Url;

use crate::extract::{Field, FieldKind, Source};
use crate::fetch::HttpOptions;
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
const DEFAULT_STATE_DIR: &str = "pagehook-state";

mod http;

/// A loaded, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub state_dir: PathBuf,
    pub webhooks: BTreeMap<String, Arc<Webhook>>,
    pub watchers: Vec<Arc<Watcher>>,
    /// Page requests in flight at once (`daemon.max_concurrency`).
    pub max_concurrency: usize,
}

/// One receiving endpoint.
#[derive(Clone)]
pub struct Webhook {
    pub name: String,
    pub url: Url,
    /// The first signs as the current secret; the rest keep receivers working while they rotate.
    pub secrets: Vec<Secret>,
    /// The delay before each retry; its length is the number of retries.
    pub retry: Vec<Duration>,
    pub headers: HeaderMap,
    pub timeout: Duration,
}

impl fmt::Debug for Webhook {
    // Extra headers usually carry credentials, so only their names are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("url", &self.url.as_str())
            .field("secrets", &self.secrets)
            .field("retry", &self.retry)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// One watched page.
#[derive(Debug, Clone)]
pub struct Watcher {
    pub name: String,
    pub url: Url,
    pub schedule: Schedule,
    /// This watcher's deterministic place within its schedule's period.
    pub offset: Duration,
    pub webhooks: Vec<String>,
    pub fields: Vec<Field>,
    pub timeout: Duration,
    pub max_body: u64,
    pub http: HttpOptions,
    /// Failed checks in a row that send one `watch.failing` event.
    pub failure_threshold: u32,
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
    };
    let raw: RawConfig = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(err) => {
            // serde stops at the first shape error; semantic checks below report all at once.
            v.error(
                err.span().unwrap_or(0..0),
                err.message().trim_end().to_owned(),
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
    #[serde(default)]
    watchers: Vec<Spanned<RawWatcher>>,
    proxies: Option<Spanned<http::RawProxies>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    state_dir: Option<PathBuf>,
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
    retry: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    headers: BTreeMap<String, Spanned<String>>,
    timeout: Option<Spanned<String>>,
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
    fields: Option<Spanned<BTreeMap<String, Spanned<RawField>>>>,
    timeout: Option<Spanned<String>>,
    max_body_size: Option<Spanned<ByteSize>>,
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
    attr: Option<String>,
    regex: Option<Spanned<String>>,
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
}

impl Validator<'_> {
    fn diagnostic(&self, span: Range<usize>, message: String) -> Diagnostic {
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
        let d = self.diagnostic(span, message.into());
        self.errors.push(d);
    }

    fn warn(&mut self, span: Range<usize>, message: impl Into<String>) {
        let d = self.diagnostic(span, message.into());
        self.warnings.push(d);
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
            let raw = raw.into_inner().or(&defaults);
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
            Some(list) if list.is_empty() => {
                // Until dead letters exist, an event with no retries would have nowhere to go.
                self.error(
                    span.clone(),
                    format!("webhook `{name}`: `retry` needs at least one delay"),
                );
                Vec::new()
            }
            Some(list) => list.iter().filter_map(|d| self.duration(d)).collect(),
            None => DEFAULT_RETRY.to_vec(),
        };
        let timeout = raw
            .timeout
            .as_ref()
            .and_then(|t| self.duration(t))
            .unwrap_or(DEFAULT_WEBHOOK_TIMEOUT);
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
        })
    }

    fn secrets(&mut self, hook: &str, span: Range<usize>, raw: &RawWebhook) -> Option<Vec<Secret>> {
        let sources = [
            raw.secret.is_some(),
            raw.secret_env.is_some(),
            raw.secret_file.is_some(),
        ];
        let (texts, at): (Vec<String>, Range<usize>) = match sources.iter().filter(|s| **s).count()
        {
            0 => {
                self.error(
                    span,
                    format!("webhook `{hook}` needs a secret: set secret, secret_env or secret_file (`pagehook secret` makes one)"),
                );
                return None;
            }
            1 => {
                if let Some(s) = &raw.secret {
                    (s.get_ref().clone().into_vec(), s.span())
                } else if let Some(var) = &raw.secret_env {
                    match self.env.var(var.get_ref()) {
                        Some(value) => (split_secrets(&value), var.span()),
                        None => {
                            let msg =
                                format!("environment variable `{}` is not set", var.get_ref());
                            self.error(var.span(), msg);
                            return None;
                        }
                    }
                } else {
                    let file = raw.secret_file.as_ref().expect("counted above");
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
                    format!("webhook `{hook}`: set only one of secret, secret_env and secret_file"),
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
        let http = self.http_options(&raw, pool);
        let failure_threshold = self.failure_threshold(raw.failure_threshold.as_ref());
        let targets = self.targets(span.clone(), raw.webhook.as_ref(), webhooks);
        let fields = match &raw.fields {
            Some(fields) if !fields.get_ref().is_empty() => {
                let compiled: Vec<Field> = fields
                    .get_ref()
                    .iter()
                    .filter_map(|(n, f)| self.field(n, f))
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
        let (name, schedule) = (name?, schedule?);
        let offset = schedule.offset_for(&name, jitter);
        Some(Watcher {
            offset,
            url: url?,
            webhooks: targets?,
            fields: fields?,
            name,
            schedule,
            timeout,
            max_body,
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

    fn field(&mut self, name: &str, raw: &Spanned<RawField>) -> Option<Field> {
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
        let Some(css) = &raw.css else {
            self.error(
                span,
                format!("field `{name}` has no source: set `css = \"...\"`"),
            );
            return None;
        };
        let selector = match Selector::parse(css.get_ref()) {
            Ok(selector) => selector,
            Err(err) => {
                let msg = format!("invalid CSS selector `{}`: {err}", css.get_ref());
                self.error(css.span(), msg);
                return None;
            }
        };
        if raw.regex.is_some() && regex.is_none() {
            return None;
        }
        Some(Field {
            name: name.to_owned(),
            source: Source::Css {
                css: css.get_ref().clone(),
                selector,
                attr: raw.attr.clone(),
            },
            regex,
            kind: match raw.kind {
                RawKind::Text => FieldKind::Text,
                RawKind::Number => FieldKind::Number,
            },
            required: raw.required,
        })
    }

    fn http_url(&mut self, raw: &Spanned<String>) -> Option<Url> {
        match Url::parse(raw.get_ref()) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                Some(url)
            }
            Ok(url) => {
                let msg = format!("URL `{url}` must be http:// or https:// with a host");
                self.error(raw.span(), msg);
                None
            }
            Err(err) => {
                let msg = format!("invalid URL `{}`: {err}", raw.get_ref());
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

#[cfg(test)]
mod tests {
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
        for want in expect {
            assert!(
                errs.iter().any(|e| e.starts_with(want)),
                "missing {want:?} in:\n{}",
                errs.join("\n")
            );
        }
        assert_eq!(errs.len(), expect.len(), "{}", errs.join("\n"));
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

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("10 MiB"), Some(10 << 20));
        assert_eq!(parse_byte_size("512KB"), Some(512_000));
        assert_eq!(parse_byte_size("7"), Some(7));
        assert_eq!(parse_byte_size("lots"), None);
        assert_eq!(parse_byte_size("5 parsecs"), None);
    }
}
