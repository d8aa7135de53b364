//! `[[watchers]]` and `[defaults]`: the raw watcher, how a watcher falls back to the defaults,
//! and the runtime `Watcher` it becomes.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{
    ByteSize, DEFAULT_HISTORY_LIMIT, DEFAULT_MAX_BODY, DEFAULT_SCHEDULE, DEFAULT_TIMEOUT,
    OneOrMany, RawField, RawRule, Validator, http,
};
use crate::extract::{DEFAULT_MAX_VALUE_SIZE, Field, FieldKind};
use crate::fetch::HttpOptions;
use crate::notify::{FieldRules, Rules};
use crate::redact::SensitiveUrl;
use crate::schedule::{DEFAULT_MAX_JITTER, Schedule};

/// One watched page. Equal when set up alike: a reload keeps the schedule of an unchanged one.
#[derive(Debug, Clone, PartialEq)]
pub struct Watcher {
    pub(crate) name: String,
    pub(crate) url: SensitiveUrl,
    pub(crate) schedule: Schedule,
    /// This watcher's deterministic place within its schedule's period.
    pub(crate) offset: Duration,
    pub(crate) webhooks: Vec<String>,
    pub fields: Vec<Field>,
    pub(crate) timeout: Duration,
    pub(crate) max_body: u64,
    /// History entries kept for this watcher; 0 records none.
    pub(crate) history_limit: usize,
    /// When a recorded change is worth an event. Shared by the watchers whose rules are
    /// alike, as most are: a map of one field costs a kilobyte.
    pub(crate) notify: Arc<Rules>,
    /// Shared by the watchers whose request options are alike, as most are: the options take
    /// a few hundred bytes.
    pub(crate) http: Arc<HttpOptions>,
    /// Failed checks in a row that send one `watch.failing` event.
    pub(crate) failure_threshold: u32,
    /// `browser = true`: the page is rendered in the browser.
    pub(crate) browser: Option<crate::fetch::browser::BrowserPage>,
    /// Whether its pages have lately needed the DOM.
    pub(crate) reading: crate::extract::Hint,
}

/// How long a check may be late before it counts as overdue, beyond its slot and `timeout`:
/// the scheduler's and the store's own moments.
pub(super) const OVERDUE_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

impl Watcher {
    /// The slot this watcher has been due at since, if it is overdue at `now`: that slot, its
    /// `timeout` and a grace have passed without a check finishing. A watcher that never ran
    /// has been due since checking began (`running_since`, the daemon's start); with no daemon
    /// running that is unknown, and it is not called overdue. One due at the daemon's start
    /// has one period more: its catch-up is spread over that.
    pub(crate) fn overdue_since(
        &self,
        last_check: Option<chrono::DateTime<chrono::Utc>>,
        now: chrono::DateTime<chrono::Utc>,
        running_since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let due = match last_check {
            Some(last) => self.schedule.next_after(last, self.offset),
            None => running_since?,
        };
        // What was already due when the daemon started catches up spread over one period
        // (the scheduler's `catch_up`), cron watchers at once: until then it is on its way.
        let planned = match running_since {
            Some(start) if due <= start && !self.schedule.is_cron() => {
                start + chrono::TimeDelta::from_std(self.schedule.period()).ok()?
            }
            _ => due,
        };
        let late = chrono::TimeDelta::from_std(self.timeout + OVERDUE_GRACE).ok()?;
        (now > planned + late).then_some(due)
    }
}

/// A watcher as written, and also `[defaults]`: every key is optional so that a watcher's
/// silence can fall back to the defaults.
#[derive(Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWatcher {
    pub(super) name: Option<Spanned<String>>,
    pub(super) url: Option<Spanned<String>>,
    pub(super) schedule: Option<Spanned<String>>,
    pub(super) jitter: Option<Spanned<String>>,
    pub(super) webhook: Option<Spanned<OneOrMany>>,
    // Boxed: a map node holds eleven slots, and a watcher usually has one or two fields.
    pub(super) fields: Option<Spanned<BTreeMap<String, Spanned<Box<RawField>>>>>,
    pub(super) timeout: Option<Spanned<String>>,
    pub(super) max_body_size: Option<Spanned<ByteSize>>,
    /// The default for the watcher's fields.
    pub(super) max_value_size: Option<Spanned<ByteSize>>,
    pub(super) history_limit: Option<Spanned<i64>>,
    pub(super) notify: Option<Spanned<RawRule>>,
    pub(super) currency: Option<Spanned<String>>,
    pub(super) connect_timeout: Option<Spanned<String>>,
    pub(super) per_host_concurrency: Option<Spanned<i64>>,
    pub(super) per_host_delay: Option<Spanned<String>>,
    pub(super) failure_threshold: Option<Spanned<i64>>,
    pub(super) method: Option<Spanned<String>>,
    pub(super) body: Option<Spanned<String>>,
    pub(super) headers: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    pub(super) cookies: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    pub(super) user_agent: Option<Spanned<String>>,
    pub(super) proxy: Option<Spanned<String>>,
    pub(super) browser: Option<Spanned<bool>>,
    pub(super) wait_for: Option<Spanned<String>>,
}

impl RawWatcher {
    pub(super) fn or(self, defaults: &RawWatcher) -> RawWatcher {
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
            browser: self.browser.or(d.browser),
            wait_for: self.wait_for.or(d.wait_for),
        }
    }
}

impl Validator<'_> {
    pub(super) fn watcher(
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
        let browser = self.browser_page(&raw);
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
        let notify = self.compiled.rules(notify);
        if matches!(hint, Some(None)) {
            return None;
        }
        // Collected in place, the fields would keep the room of the four (Field, FieldRules)
        // slots a collected Vec starts with: five times what one field needs.
        let mut fields: Vec<Field> = fields.into_iter().map(|(f, _)| f).collect();
        fields.shrink_to_fit();
        Some(Watcher {
            offset,
            url: url?,
            webhooks: targets?,
            fields,
            name,
            schedule,
            timeout,
            max_body,
            history_limit,
            notify,
            http: self.compiled.http(http?),
            failure_threshold,
            browser,
            reading: Default::default(),
        })
    }

    pub(super) fn targets(
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
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::config::hooks::DEFAULT_RETRY;
    use crate::config::testing::*;

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
}
