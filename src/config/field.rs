//! A watcher's `fields`: the extraction source, kind, currency and per-field notify rules.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use regex::Regex;
use serde::Deserialize;
use toml::Spanned;

use super::{ByteSize, Validator, css};
use crate::extract::{Css, Field, FieldKind, Source, currency};
use crate::fetch::HttpOptions;
use crate::notify::{self, Direction, FieldNotify, FieldRules, Rules};

/// What fields compiled, by the text they were compiled from, for the fields after them.
#[derive(Default)]
pub(super) struct Compiled {
    selectors: HashMap<String, Arc<Css>>,
    regexes: HashMap<String, Arc<Regex>>,
    rules: HashSet<Arc<Rules>>,
    /// The last watcher's request options: watchers mostly take them all from [defaults], so
    /// the next one's are usually the same.
    http: Option<Arc<HttpOptions>>,
}

impl Compiled {
    /// The one copy of these rules.
    pub(super) fn rules(&mut self, rules: Rules) -> Arc<Rules> {
        if let Some(shared) = self.rules.get(&rules) {
            return shared.clone();
        }
        let rules = Arc::new(rules);
        self.rules.insert(rules.clone());
        rules
    }

    /// These request options, shared with the last watcher when they are the same.
    pub(super) fn http(&mut self, http: HttpOptions) -> Arc<HttpOptions> {
        match &self.http {
            Some(last) if **last == http => last.clone(),
            _ => self.http.insert(Arc::new(http)).clone(),
        }
    }
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawField {
    pub(super) css: Option<Spanned<String>>,
    pub(super) jsonld: Option<Spanned<String>>,
    pub(super) json: Option<Spanned<String>>,
    pub(super) attr: Option<Spanned<String>>,
    pub(super) currency: Option<Spanned<String>>,
    pub(super) notify: Option<Spanned<RawFieldNotify>>,
    pub(super) regex: Option<Spanned<String>>,
    pub(super) max_value_size: Option<Spanned<ByteSize>>,
    #[serde(rename = "type", default)]
    pub(super) kind: RawKind,
    #[serde(default = "yes")]
    pub(super) required: bool,
}

pub(super) fn yes() -> bool {
    true
}

#[derive(Deserialize, Clone, Copy, Default)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawKind {
    #[default]
    Text,
    Number,
    Price,
    Availability,
}

/// `notify = { on = "decrease", min_change_pct = 1.0, below = 100 }`
#[derive(Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    pub(super) on: Option<Spanned<RawDirection>>,
    pub(super) min_change_pct: Option<Spanned<RawDecimal>>,
    pub(super) min_change_abs: Option<Spanned<RawDecimal>>,
    pub(super) below: Option<Spanned<RawDecimal>>,
    pub(super) above: Option<Spanned<RawDecimal>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawDirection {
    Any,
    Increase,
    Decrease,
}

/// A field's `notify`: `false`, `true`, or a rule table.
#[derive(Clone)]
pub(super) enum RawFieldNotify {
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
pub(super) enum RawDecimal {
    Integer(i64),
    Float(f64),
    Text(String),
}

/// regex errors draw the pattern with a caret over several lines; the last one says what is wrong.
pub(super) fn last_line(text: &str) -> &str {
    let last = text.lines().last().unwrap_or(text).trim();
    last.strip_prefix("error: ").unwrap_or(last)
}

impl Validator<'_> {
    pub(super) fn field(
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
        let regex = raw.regex.as_ref().and_then(|r| self.regex(r));
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
    pub(super) fn source(
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
            return self.selector(css).map(|selector| Source::Css {
                css: css.get_ref().clone(),
                selector,
                attr: raw.attr.as_ref().map(|a| a.get_ref().clone()),
            });
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

    /// A `css` compiled once for all the fields that write it.
    fn selector(&mut self, css: &Spanned<String>) -> Option<Arc<Css>> {
        if let Some(selector) = self.compiled.selectors.get(css.get_ref()) {
            return Some(selector.clone());
        }
        match css::selector(css.get_ref()) {
            Ok(selector) => {
                let selector = Arc::new(Css::new(selector, css.get_ref()));
                let text = css.get_ref().clone();
                self.compiled.selectors.insert(text, selector.clone());
                Some(selector)
            }
            Err(err) => {
                let msg = format!("invalid CSS selector `{}`: {err}", css.get_ref());
                self.error(css.span(), msg);
                None
            }
        }
    }

    /// A `regex` compiled once for all the fields that write it: a compiled regex takes
    /// kilobytes, a hundred thousand copies of one take gigabytes.
    fn regex(&mut self, raw: &Spanned<String>) -> Option<Arc<Regex>> {
        if let Some(regex) = self.compiled.regexes.get(raw.get_ref()) {
            return Some(regex.clone());
        }
        match Regex::new(raw.get_ref()) {
            Ok(regex) => {
                let regex = Arc::new(regex);
                let text = raw.get_ref().clone();
                self.compiled.regexes.insert(text, regex.clone());
                Some(regex)
            }
            Err(err) => {
                let msg = format!("invalid regex: {}", last_line(&err.to_string()));
                self.error(raw.span(), msg);
                None
            }
        }
    }

    pub(super) fn currency(&mut self, raw: &Spanned<String>) -> Option<&'static str> {
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

    pub(super) fn rule(&mut self, raw: &RawRule) -> Option<notify::Rule> {
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
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::config::testing::*;

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

    /// A hundred thousand watchers mostly repeat a few field specs: each spec is compiled
    /// once, and equality still compares what was written.
    #[test]
    fn fields_written_alike_share_their_selector_regex_and_rules() {
        let watcher = |name: &str, regex: &str| {
            format!(
                "[[watchers]]\nname = \"{name}\"\nurl = \"https://s.example/{name}\"\nfields.n = {{ css = \"span.n\", regex = '{regex}', type = \"number\" }}\n"
            )
        };
        let text = format!(
            "{HOOK}{}{}{}",
            watcher("a", "(\\d+)"),
            watcher("b", "(\\d+)"),
            watcher("c", "(\\d+) left")
        );
        let loaded = parse_text(&text).unwrap_or_else(|e| panic!("{e}"));
        let [a, b, c] = &loaded.config.watchers[..] else {
            panic!("three watchers")
        };
        let selector = |w: &crate::config::Watcher| match &w.fields[0].source {
            Source::Css { selector, .. } => selector.clone(),
            other => panic!("{other:?}"),
        };
        let regex = |w: &crate::config::Watcher| w.fields[0].regex.clone().unwrap();
        assert!(Arc::ptr_eq(&selector(a), &selector(b)));
        assert!(
            Arc::ptr_eq(&selector(a), &selector(c)),
            "one css, one selector"
        );
        assert!(Arc::ptr_eq(&regex(a), &regex(b)));
        assert!(!Arc::ptr_eq(&regex(a), &regex(c)));
        assert_eq!(regex(c).as_str(), "(\\d+) left");
        assert!(Arc::ptr_eq(&a.notify, &c.notify), "the same rules");
        assert_eq!(a.fields, b.fields);
        assert_ne!(a.fields, c.fields, "compared by the pattern");
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
}
