//! Page -> values. Pure functions: no I/O, no clock.

pub mod availability;
mod css;
pub mod currency;
mod dom;
pub mod json;
pub mod jsonld;
mod markup;
mod microdata;
mod number;
pub mod price;
mod survey;
mod visible;

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::atomic::AtomicBool;

use regex::Regex;
use rust_decimal::Decimal;
use scraper::{Html, Selector};
use serde_json::Value;

pub use self::dom::PageError;
use self::price::Price;
pub use self::survey::{Survey, survey};
pub use self::visible::{Rejected, Why};
use crate::reason::Reason;

/// The largest value a field records by default, in bytes of its text: 16 KiB.
///
/// A price is a dozen bytes, a headline a hundred, a product description a few thousand; a
/// value past this is nearly always a selector that matched a whole container or a script.
/// It bounds what one change costs: a webhook carries a value up to three times (old, new and
/// the values), and history keeps it once per change.
pub const DEFAULT_MAX_VALUE_SIZE: usize = 16 * 1024;

/// The values of one successful extraction, by field name, in the JSON form they take in
/// payloads and state: text is a string, a number is a decimal string (never a float), a
/// price is `{"amount": "1299.99", "currency": "USD", "raw": "$1,299.99"}`, an availability
/// is a schema.org name.
pub type Values = BTreeMap<String, Value>;

/// What a field's raw text is turned into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    Number,
    Price,
    Availability,
}

impl FieldKind {
    /// Kinds whose changes have a size, so `delta`, `pct` and the numeric notify rules apply.
    pub fn is_numeric(self) -> bool {
        matches!(self, FieldKind::Number | FieldKind::Price)
    }
}

/// Where a field's text comes from.
#[derive(Debug, Clone)]
pub enum Source {
    Css {
        /// Kept beside the compiled selector for messages.
        css: String,
        selector: Selector,
        attr: Option<String>,
    },
    /// A dotted path into the page's schema.org Product node (`offers.price`).
    JsonLd { path: Vec<String> },
    /// A JSON Pointer into a JSON response (`/data/price`).
    Json { pointer: String },
    /// No source given: the product's price or availability from the page's structured
    /// data (JSON-LD, then microdata, then meta tags).
    Auto,
}

/// One tracked value of a watcher, compiled at config load.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub source: Source,
    pub regex: Option<Regex>,
    pub kind: FieldKind,
    /// A required field that yields nothing fails the check; an optional one becomes null.
    pub required: bool,
    /// The currency a price with only an ambiguous symbol ("$", "kr") or none is read in.
    pub currency: Option<&'static str>,
    /// The most bytes the value may take (`max_value_size`); a larger one fails the field.
    pub max_size: usize,
}

/// Where a value was found, so a user can trust or correct an automatic source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Css,
    JsonLd,
    Microdata,
    Meta,
    Json,
    /// The visible page, read when structured data is silent.
    Visible,
}

impl Origin {
    pub fn label(self) -> &'static str {
        match self {
            Origin::Css => "CSS",
            Origin::JsonLd => "JSON-LD",
            Origin::Microdata => "microdata",
            Origin::Meta => "meta tags",
            Origin::Json => "JSON",
            Origin::Visible => "the visible page",
        }
    }
}

/// Why a field produced no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("selector `{0}` matched nothing")]
    NoMatch(String),
    #[error("selector `{css}` matched, but the element has no `{attr}` attribute")]
    NoAttribute { css: String, attr: String },
    #[error("regex `{regex}` did not match {text:?}")]
    RegexNoMatch { regex: String, text: String },
    #[error("no number in {0:?}")]
    NotANumber(String),
    #[error("no price in {0:?}")]
    NoPrice(String),
    #[error("no stock status in {0:?}")]
    NoAvailability(String),
    #[error("the page has no schema.org Product in its JSON-LD")]
    NoProduct,
    #[error("JSON-LD path `{0}` matched nothing in the page's Product")]
    JsonLdNoMatch(String),
    #[error("the response is not JSON: {0}")]
    NotJson(String),
    #[error("JSON pointer `{0}` matched nothing")]
    PointerNoMatch(String),
    #[error("`{0}` is an object or a list, not a single value")]
    NotScalar(String),
    #[error("`{0}` is null")]
    Null(String),
    #[error(
        "no price in the page's JSON-LD, microdata or product meta tags, nor on the visible page, which is {0}; set `css` to read it from the page"
    )]
    NoAutoPrice(&'static str),
    #[error(
        "no availability in the page's JSON-LD, microdata or product meta tags, nor on the visible page, which is {0}; set `css` to read it from the page"
    )]
    NoAutoAvailability(&'static str),
    #[error(
        "the value is {} ({size} bytes), over the field's {} limit (max_value_size): narrow the selector, add a regex or raise max_value_size",
        size_label(*.size as u64),
        size_label(*.limit as u64)
    )]
    TooLarge { size: usize, limit: usize },
}

/// A byte count as people read it: "16 KiB", "4.0 MiB", "312 bytes".
fn size_label(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    match bytes {
        b if b >= MIB && b % MIB == 0 => format!("{} MiB", b / MIB),
        b if b >= MIB => format!("{:.1} MiB", b as f64 / MIB as f64),
        b if b >= KIB && b % KIB == 0 => format!("{} KiB", b / KIB),
        b if b >= KIB => format!("{:.1} KiB", b as f64 / KIB as f64),
        b => format!("{b} bytes"),
    }
}

impl FieldError {
    pub fn reason(&self) -> Reason {
        match self {
            FieldError::NoMatch(_)
            | FieldError::NoAttribute { .. }
            | FieldError::NoProduct
            | FieldError::JsonLdNoMatch(_)
            | FieldError::PointerNoMatch(_)
            | FieldError::NoAutoPrice(_)
            | FieldError::NoAutoAvailability(_) => Reason::Selector,
            FieldError::RegexNoMatch { .. }
            | FieldError::NotANumber(_)
            | FieldError::NoPrice(_)
            | FieldError::NoAvailability(_)
            | FieldError::NotJson(_)
            | FieldError::NotScalar(_)
            | FieldError::Null(_) => Reason::Value,
            FieldError::TooLarge { .. } => Reason::TooLarge,
        }
    }
}

impl ExtractError {
    /// `selector` when any field found nothing: the page is likely not what the watcher
    /// expects; else `value`. A page the parser refuses is `too_large`; a stopped parse is the
    /// check's `timeout`.
    pub fn reason(&self) -> Reason {
        let failures = match self {
            ExtractError::Page(PageError::TooComplex) => return Reason::TooLarge,
            ExtractError::Page(PageError::Stopped) => return Reason::Timeout,
            ExtractError::Fields(failures) => failures,
        };
        let reasons = || failures.iter().map(|(_, err)| err.reason());
        if reasons().any(|r| r == Reason::Selector) {
            Reason::Selector
        } else {
            reasons().next().unwrap_or(Reason::Selector)
        }
    }
}

/// Why an extraction failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// The page could not be parsed at all.
    #[error(transparent)]
    Page(#[from] PageError),
    /// Every field that failed, so a user fixes them all in one go.
    #[error("{}", describe(.0))]
    Fields(Vec<(String, FieldError)>),
}

impl ExtractError {
    /// The fields that failed, none when the page itself could not be read.
    pub fn fields(&self) -> &[(String, FieldError)] {
        match self {
            ExtractError::Page(_) => &[],
            ExtractError::Fields(failures) => failures,
        }
    }
}

fn describe(failures: &[(String, FieldError)]) -> String {
    let parts: Vec<String> = failures
        .iter()
        .map(|(field, err)| format!("field `{field}`: {err}"))
        .collect();
    parts.join("; ")
}

/// Values, and where each was found.
#[derive(Debug, Clone, PartialEq)]
pub struct Extraction {
    pub values: Values,
    pub origins: BTreeMap<String, Origin>,
    /// For values read off the visible page, a CSS path to the element that shows them.
    pub paths: BTreeMap<String, String>,
}

impl Extraction {
    /// Where a field's value was found, in words: `the visible page at div.price > span`.
    pub fn found_in(&self, field: &str) -> Option<String> {
        let origin = self.origins.get(field)?.label();
        Some(match self.paths.get(field) {
            Some(path) => format!("{origin} at `{path}`"),
            None => origin.to_owned(),
        })
    }
}

/// Extract every field from a body (HTML, or JSON for `json` fields). Fails when any
/// required field yields nothing.
pub fn extract(fields: &[Field], body: &str) -> Result<Values, ExtractError> {
    extract_explained(fields, body).map(|e| e.values)
}

/// As `extract`, also saying where each value was found.
pub fn extract_explained(fields: &[Field], body: &str) -> Result<Extraction, ExtractError> {
    extract_until(fields, body, &AtomicBool::new(false))
}

/// As `extract_explained`, giving up (`PageError::Stopped`) soon after `stop` is set, so a
/// check that ran out of time does not keep a thread parsing.
pub fn extract_until(
    fields: &[Field],
    body: &str,
    stop: &AtomicBool,
) -> Result<Extraction, ExtractError> {
    // Only `json` fields read the body without parsing it as HTML.
    let needs_html = fields
        .iter()
        .any(|f| !matches!(f.source, Source::Json { .. }));
    // A selector naming scripts or styles reads what stripping would remove.
    let reads_inert = fields.iter().any(|f| {
        matches!(&f.source, Source::Css { css, .. }
            if css.to_ascii_lowercase().contains("script") || css.to_ascii_lowercase().contains("style"))
    });
    let html = match needs_html {
        true => Some(dom::parse(body, !reads_inert, stop)?),
        false => None,
    };
    let page = Page {
        body,
        html,
        graph: OnceCell::new(),
        json: OnceCell::new(),
        visible_paths: Default::default(),
    };
    let mut values = Values::new();
    let mut origins = BTreeMap::new();
    let mut paths = BTreeMap::new();
    let mut failures = Vec::new();
    for field in fields {
        match extract_field(field, &page).and_then(|found| within_size(field, found)) {
            Ok((value, origin)) => {
                values.insert(field.name.clone(), value);
                origins.insert(field.name.clone(), origin);
                if let Some(path) = page.visible_paths.borrow_mut().remove(&field.name) {
                    paths.insert(field.name.clone(), path);
                }
            }
            // An optional field that yields nothing is null; one that yields too much is not
            // nothing, and null in its place would read as a change.
            Err(err) if !field.required && !matches!(err, FieldError::TooLarge { .. }) => {
                values.insert(field.name.clone(), Value::Null);
            }
            Err(err) => failures.push((field.name.clone(), err)),
        }
    }
    if failures.is_empty() {
        Ok(Extraction {
            values,
            origins,
            paths,
        })
    } else {
        Err(ExtractError::Fields(failures))
    }
}

/// The value, unless it is larger than the field's `max_value_size`.
fn within_size(field: &Field, found: (Value, Origin)) -> Result<(Value, Origin), FieldError> {
    let size = match &found.0 {
        Value::String(text) => text.len(),
        other => other.to_string().len(),
    };
    if size > field.max_size {
        return Err(FieldError::TooLarge {
            size,
            limit: field.max_size,
        });
    }
    Ok(found)
}

/// A body, and the forms of it the fields need, each made at most once.
struct Page<'b> {
    body: &'b str,
    /// Parsed when any field reads HTML.
    html: Option<Html>,
    graph: OnceCell<jsonld::Graph>,
    json: OnceCell<Result<Value, FieldError>>,
    /// Paths of the values the visible-page reading found, by field.
    visible_paths: std::cell::RefCell<BTreeMap<String, String>>,
}

impl Page<'_> {
    fn html(&self) -> &Html {
        self.html
            .as_ref()
            .expect("parsed whenever a field reads HTML")
    }

    fn graph(&self) -> &jsonld::Graph {
        self.graph
            .get_or_init(|| jsonld::Graph::from_document(self.html()))
    }

    fn json(&self) -> Result<&Value, FieldError> {
        self.json
            .get_or_init(|| json::parse(self.body))
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// A field's raw value before its type is applied: text, or a JSON scalar, with the currency
/// that structured data states beside it.
struct Input {
    text: String,
    /// The text is a JSON number's, so it is read as exactly that number.
    json_number: bool,
    currency: Option<String>,
}

impl Input {
    fn text(text: String) -> Self {
        Input {
            text,
            json_number: false,
            currency: None,
        }
    }

    fn scalar(value: &Value, at: &str, currency: Option<&str>) -> Result<Self, FieldError> {
        let (text, json_number) = match value {
            Value::String(s) => (s.split_whitespace().collect::<Vec<_>>().join(" "), false),
            Value::Number(n) => (n.to_string(), true),
            Value::Bool(b) => (b.to_string(), false),
            Value::Null => return Err(FieldError::Null(at.to_owned())),
            _ => return Err(FieldError::NotScalar(at.to_owned())),
        };
        Ok(Input {
            text,
            json_number,
            currency: currency.map(str::to_owned),
        })
    }
}

fn extract_field(field: &Field, page: &Page<'_>) -> Result<(Value, Origin), FieldError> {
    let (input, origin) = match &field.source {
        Source::Css {
            css,
            selector,
            attr,
        } => {
            let text = css::select(page.html(), css, selector, attr.as_deref())?;
            (Input::text(text), Origin::Css)
        }
        Source::JsonLd { path } => {
            let shown = path.join(".");
            let product = page.graph().product().ok_or(FieldError::NoProduct)?;
            let found = product
                .get(path)
                .ok_or_else(|| FieldError::JsonLdNoMatch(shown.clone()))?;
            let currency = found.parent.get("priceCurrency").and_then(Value::as_str);
            (
                Input::scalar(found.value, &shown, currency)?,
                Origin::JsonLd,
            )
        }
        Source::Json { pointer } => {
            let (value, currency) = json::get(page.json()?, pointer)?;
            (Input::scalar(value, pointer, currency)?, Origin::Json)
        }
        Source::Auto => return automatic(field, page),
    };
    let input = match &field.regex {
        Some(regex) => Input {
            text: refine(regex, &input.text)?,
            json_number: false,
            ..input
        },
        None => input,
    };
    Ok((convert(field, &input)?, origin))
}

fn convert(field: &Field, input: &Input) -> Result<Value, FieldError> {
    let text = &input.text;
    match field.kind {
        FieldKind::Text => Ok(Value::String(text.clone())),
        FieldKind::Number => {
            let n = if input.json_number {
                exact(text)
            } else {
                number::parse(text)
            };
            n.map(|n| Value::String(n.to_string()))
                .ok_or_else(|| FieldError::NotANumber(preview(text)))
        }
        FieldKind::Price => read_price(input, field.currency)
            .map(|p| p.to_value(&preview(text)))
            .ok_or_else(|| FieldError::NoPrice(preview(text))),
        FieldKind::Availability => availability::normalise(text)
            .map(|name| Value::String(name.to_owned()))
            .ok_or_else(|| FieldError::NoAvailability(preview(text))),
    }
}

/// A JSON number, or a decimal string written the way schema.org asks ("1299.99"), is
/// exact; anything else is shop text for the price parser.
fn read_price(input: &Input, hint: Option<&'static str>) -> Option<Price> {
    let stated = input
        .currency
        .as_deref()
        .and_then(|c| currency::code(&c.trim().to_ascii_uppercase()));
    let plain = input.text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && input.text.bytes().filter(|b| *b == b'.').count() <= 1;
    if input.json_number || plain {
        let amount = exact(&input.text)?;
        return (amount >= Decimal::ZERO).then_some(Price {
            amount,
            currency: stated.or(hint),
        });
    }
    let parsed = price::parse(&input.text, stated.or(hint))?;
    Some(Price {
        currency: stated.or(parsed.currency),
        ..parsed
    })
}

fn exact(text: &str) -> Option<Decimal> {
    Decimal::from_str(text)
        .or_else(|_| Decimal::from_scientific(text))
        .ok()
}

/// A price or availability with no source: the page's structured data, most reliable first.
fn automatic(field: &Field, page: &Page<'_>) -> Result<(Value, Origin), FieldError> {
    match field.kind {
        FieldKind::Price => automatic_price(field, page),
        FieldKind::Availability => automatic_availability(field, page),
        // Config validation gives every other kind a source.
        FieldKind::Text | FieldKind::Number => Err(FieldError::NoAutoPrice("not read for text")),
    }
}

fn automatic_price(field: &Field, page: &Page<'_>) -> Result<(Value, Origin), FieldError> {
    if let Some(product) = page.graph().product() {
        // Several offers (sellers, sizes): the lowest one that can be bought, as a shopper
        // sees it; the lowest of all when none says it is in stock.
        let mut priced: Vec<(Price, String, bool)> = product
            .offers()
            .iter()
            .filter_map(|offer| {
                let input = Input::scalar(offer.price, "price", offer.currency).ok()?;
                let price = read_price(&input, field.currency)?;
                let buyable = !matches!(
                    offer.availability.and_then(availability::normalise),
                    Some("OutOfStock" | "SoldOut" | "Discontinued")
                );
                Some((price, input.text, buyable))
            })
            .collect();
        if priced.iter().any(|(_, _, buyable)| *buyable) {
            priced.retain(|(_, _, buyable)| *buyable);
        }
        if let Some((price, raw, _)) = priced.iter().min_by(|a, b| a.0.amount.cmp(&b.0.amount)) {
            return Ok((price.to_value(raw), Origin::JsonLd));
        }
    }
    let html = page.html();
    for (found, origin) in [
        (microdata::price(html), Origin::Microdata),
        (microdata::meta_price(html), Origin::Meta),
    ] {
        let Some(found) = found else { continue };
        let input = Input {
            text: found.text,
            json_number: false,
            currency: found.currency,
        };
        if let Some(price) = read_price(&input, field.currency) {
            return Ok((price.to_value(&preview(&input.text)), origin));
        }
    }
    // Structured data is silent: only now is the visible page read, so that pages with it
    // cost no more than before.
    let found = visible::price(html, field.currency).map_err(FieldError::NoAutoPrice)?;
    let raw = preview(&found.text);
    page.visible_paths
        .borrow_mut()
        .insert(field.name.clone(), found.path);
    Ok((found.value.to_value(&raw), Origin::Visible))
}

fn automatic_availability(field: &Field, page: &Page<'_>) -> Result<(Value, Origin), FieldError> {
    let html = page.html();
    let from_jsonld = page.graph().product().and_then(|p| p.availability());
    let found = [
        (from_jsonld.map(str::to_owned), Origin::JsonLd),
        (microdata::availability(html), Origin::Microdata),
        (microdata::meta_availability(html), Origin::Meta),
    ];
    let structured = found.into_iter().find_map(|(text, origin)| {
        let name = availability::normalise(&text?)?;
        Some((Value::String(name.to_owned()), origin))
    });
    if let Some(found) = structured {
        return Ok(found);
    }
    let found = visible::availability(html).map_err(FieldError::NoAutoAvailability)?;
    page.visible_paths
        .borrow_mut()
        .insert(field.name.clone(), found.path);
    Ok((Value::String(found.value.to_owned()), Origin::Visible))
}

/// Text as it appears in values and messages: a runaway match (a whole script) is cut short.
fn preview(text: &str) -> String {
    const MAX_CHARS: usize = 200;
    match text.char_indices().nth(MAX_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// The first capture group, or the whole match when the pattern has no group.
fn refine(regex: &Regex, text: &str) -> Result<String, FieldError> {
    let captures = regex
        .captures(text)
        .ok_or_else(|| FieldError::RegexNoMatch {
            regex: regex.as_str().to_owned(),
            text: preview(text),
        })?;
    let found = captures.get(1).or_else(|| captures.get(0));
    Ok(found.map_or("", |m| m.as_str()).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn css_field(name: &str, css: &str) -> Field {
        Field {
            name: name.into(),
            source: Source::Css {
                css: css.into(),
                selector: Selector::parse(css).unwrap(),
                attr: None,
            },
            regex: None,
            kind: FieldKind::Text,
            required: true,
            currency: None,
            max_size: DEFAULT_MAX_VALUE_SIZE,
        }
    }

    #[test]
    fn text_leaves_out_scripts_unless_a_selector_names_them() {
        let page = r#"<div class="buy">$5<script>track("view")</script><style>p{}</style></div>
            <script id="data">{"stock": 3}</script>"#;
        let values = extract(&[css_field("buy", "div.buy")], page).unwrap();
        assert_eq!(values["buy"], "$5");
        let values = extract(&[css_field("data", "script#data")], page).unwrap();
        assert_eq!(values["data"], r#"{"stock": 3}"#);
    }

    const PAGE: &str = r#"<html><head><meta property="og:title" content="Widget Pro"></head>
        <body><h1>  Widget
           Pro </h1><span class="price">Now only $1,299.99!</span>
        <p class="stock">In stock: 17 left</p><span class="price">$5.00</span></body></html>"#;

    #[test]
    fn text_of_the_first_match_is_whitespace_normalised() {
        let values = extract(
            &[css_field("title", "h1"), css_field("price", ".price")],
            PAGE,
        )
        .unwrap();
        assert_eq!(values["title"], "Widget Pro");
        assert_eq!(values["price"], "Now only $1,299.99!");
    }

    #[test]
    fn attr_reads_an_attribute() {
        let mut field = css_field("og", r#"meta[property="og:title"]"#);
        let Source::Css { attr, .. } = &mut field.source else {
            unreachable!()
        };
        *attr = Some("content".into());
        assert_eq!(extract(&[field], PAGE).unwrap()["og"], "Widget Pro");

        let mut missing = css_field("og", "h1");
        let Source::Css { attr, .. } = &mut missing.source else {
            unreachable!()
        };
        *attr = Some("content".into());
        let err = extract(&[missing], PAGE).unwrap_err();
        assert!(matches!(err.fields()[0].1, FieldError::NoAttribute { .. }));
    }

    #[test]
    fn regex_takes_the_first_capture_group_and_number_parses_it() {
        let mut field = css_field("left", ".stock");
        field.regex = Some(Regex::new(r"(\d+) left").unwrap());
        field.kind = FieldKind::Number;
        assert_eq!(extract(&[field], PAGE).unwrap()["left"], "17");
    }

    #[test]
    fn number_of_a_price_text() {
        let mut field = css_field("price", ".price");
        field.kind = FieldKind::Number;
        assert_eq!(extract(&[field], PAGE).unwrap()["price"], "1299.99");
    }

    #[test]
    fn every_failing_required_field_is_reported() {
        let mut word = css_field("word", "h1");
        word.kind = FieldKind::Number;
        let err = extract(&[css_field("gone", ".nope"), word], PAGE).unwrap_err();
        assert_eq!(err.fields().len(), 2);
        assert_eq!(
            err.to_string(),
            "field `gone`: selector `.nope` matched nothing; field `word`: no number in \"Widget Pro\""
        );
    }

    /// A value over `max_value_size` fails its field, optional or not: never cut short, never
    /// null (which would read as a change).
    #[test]
    fn a_value_over_its_size_cap_fails_the_field() {
        let page = format!("<p class=big>{}</p><h1>Title</h1>", "x".repeat(5_000));
        let mut big = css_field("big", "p.big");
        big.max_size = 4_096;
        let mut optional = big.clone();
        optional.name = "optional".into();
        optional.required = false;
        let err = extract(&[big.clone(), optional, css_field("title", "h1")], &page).unwrap_err();
        let expected = FieldError::TooLarge {
            size: 5_000,
            limit: 4_096,
        };
        assert_eq!(err.fields().len(), 2, "{err}");
        assert_eq!(err.fields()[0], ("big".into(), expected.clone()));
        assert_eq!(err.fields()[1], ("optional".into(), expected));
        assert_eq!(
            err.fields()[0].1.to_string(),
            "the value is 4.9 KiB (5000 bytes), over the field's 4 KiB limit (max_value_size): narrow the selector, add a regex or raise max_value_size"
        );
        big.max_size = 5_000;
        assert_eq!(
            extract(&[big], &page).unwrap()["big"]
                .as_str()
                .unwrap()
                .len(),
            5_000
        );
    }

    #[test]
    fn an_optional_field_that_matches_nothing_is_null() {
        let mut field = css_field("badge", ".badge");
        field.required = false;
        assert_eq!(extract(&[field], PAGE).unwrap()["badge"], Value::Null);
    }
}

#[cfg(test)]
mod source_tests {
    use super::*;

    const NO_ANCHOR: &str = "without a product title (h1) or a buy button to start from";
    use serde_json::json;

    fn field(name: &str, source: Source, kind: FieldKind) -> Field {
        Field {
            name: name.into(),
            source,
            regex: None,
            kind,
            required: true,
            currency: None,
            max_size: DEFAULT_MAX_VALUE_SIZE,
        }
    }

    fn css(css: &str) -> Source {
        Source::Css {
            css: css.into(),
            selector: Selector::parse(css).unwrap(),
            attr: None,
        }
    }

    fn jsonld(path: &str) -> Source {
        Source::JsonLd {
            path: path.split('.').map(str::to_owned).collect(),
        }
    }

    fn json_at(pointer: &str) -> Source {
        Source::Json {
            pointer: pointer.into(),
        }
    }

    fn ld(json: &str) -> String {
        format!(r#"<script type="application/ld+json">{json}</script>"#)
    }

    const PRODUCT: &str = r#"{"@context": "https://schema.org/", "@type": "Product",
        "name": "Widget", "sku": 1234, "offers": [
          {"@type": "Offer", "price": "1299.99", "priceCurrency": "USD",
           "availability": "https://schema.org/InStock"},
          {"@type": "Offer", "price": 999.5, "priceCurrency": "USD",
           "availability": "https://schema.org/OutOfStock"},
          {"@type": "Offer", "price": "1249.00", "priceCurrency": "USD",
           "availability": "http://schema.org/InStock"}]}"#;

    #[test]
    fn jsonld_paths_read_the_product() {
        let page = ld(PRODUCT);
        let fields = [
            field("price", jsonld("offers.price"), FieldKind::Price),
            field(
                "stock",
                jsonld("offers.availability"),
                FieldKind::Availability,
            ),
            field("name", jsonld("name"), FieldKind::Text),
            field("sku", jsonld("sku"), FieldKind::Number),
            field("second", jsonld("offers.1.price"), FieldKind::Price),
        ];
        let found = extract_explained(&fields, &page).unwrap();
        let v = &found.values;
        assert_eq!(
            v["price"],
            json!({"amount": "1299.99", "currency": "USD", "raw": "1299.99"})
        );
        assert_eq!(v["stock"], "InStock");
        assert_eq!(v["name"], "Widget");
        assert_eq!(v["sku"], "1234");
        assert_eq!(v["second"]["amount"], "999.5");
        assert_eq!(found.origins["price"], Origin::JsonLd);
    }

    #[test]
    fn automatic_price_takes_the_lowest_offer_that_can_be_bought() {
        let fields = [
            field("price", Source::Auto, FieldKind::Price),
            field("stock", Source::Auto, FieldKind::Availability),
        ];
        let found = extract_explained(&fields, &ld(PRODUCT)).unwrap();
        assert_eq!(found.values["price"]["amount"], "1249.00");
        assert_eq!(found.values["price"]["currency"], "USD");
        assert_eq!(found.values["stock"], "InStock");
        assert_eq!(found.origins["price"], Origin::JsonLd);
    }

    #[test]
    fn automatic_price_falls_back_to_microdata_then_meta() {
        let auto = [field("price", Source::Auto, FieldKind::Price)];
        let microdata = r#"<div itemscope itemtype="https://schema.org/Product">
            <span itemprop="price" content="1.299,00">1.299,00 €</span>
            <meta itemprop="priceCurrency" content="EUR"></div>"#;
        let found = extract_explained(&auto, microdata).unwrap();
        assert_eq!(found.values["price"]["amount"], "1299.00");
        assert_eq!(found.values["price"]["currency"], "EUR");
        assert_eq!(found.origins["price"], Origin::Microdata);

        let meta = r#"<head><meta property="og:price:amount" content="24.90">
            <meta property="og:price:currency" content="CHF"></head>"#;
        let found = extract_explained(&auto, meta).unwrap();
        assert_eq!(found.values["price"]["amount"], "24.90");
        assert_eq!(found.values["price"]["currency"], "CHF");
        assert_eq!(found.origins["price"], Origin::Meta);

        let none = extract(&auto, "<p>$5</p>").unwrap_err();
        assert_eq!(none.fields()[0].1, FieldError::NoAutoPrice(NO_ANCHOR));
    }

    #[test]
    fn css_price_uses_the_currency_hint_for_ambiguous_symbols() {
        let mut price = field("price", css(".price"), FieldKind::Price);
        price.currency = Some("CAD");
        let page = r#"<span class="price">Was $29.99 Now $24.99</span>"#;
        assert_eq!(
            extract(&[price], page).unwrap()["price"],
            json!({"amount": "24.99", "currency": "CAD", "raw": "Was $29.99 Now $24.99"})
        );
        let text = r#"<span class="price">Call us</span>"#;
        let err = extract(&[field("price", css(".price"), FieldKind::Price)], text).unwrap_err();
        assert_eq!(err.fields()[0].1, FieldError::NoPrice("Call us".into()));
    }

    #[test]
    fn json_pointers_read_a_json_response() {
        let body = r#"{"data": {"price": 1199.99, "currency": "EUR", "stock": "in_stock",
            "name": "Widget", "list": null}}"#;
        let fields = [
            field("price", json_at("/data/price"), FieldKind::Price),
            field("stock", json_at("/data/stock"), FieldKind::Availability),
            field("name", json_at("/data/name"), FieldKind::Text),
        ];
        let found = extract_explained(&fields, body).unwrap();
        assert_eq!(
            found.values["price"],
            json!({"amount": "1199.99", "currency": "EUR", "raw": "1199.99"})
        );
        assert_eq!(found.values["stock"], "InStock");
        assert_eq!(found.origins["name"], Origin::Json);

        let missing = [
            field("gone", json_at("/data/gone"), FieldKind::Text),
            field("list", json_at("/data/list"), FieldKind::Text),
            field("data", json_at("/data"), FieldKind::Text),
        ];
        let err = extract(&missing, body).unwrap_err();
        assert_eq!(
            err.fields()[0].1,
            FieldError::PointerNoMatch("/data/gone".into())
        );
        assert_eq!(err.fields()[1].1, FieldError::Null("/data/list".into()));
        assert_eq!(err.fields()[2].1, FieldError::NotScalar("/data".into()));
        let html = extract(&missing[..1], "<html></html>").unwrap_err();
        assert!(
            matches!(html.fields()[0].1, FieldError::NotJson(_)),
            "{html}"
        );
    }

    #[test]
    fn availability_from_visible_text() {
        let page = r#"<p class="stock">Nur noch 2 auf Lager</p><p class="x">Widget</p>"#;
        let stock = field("stock", css(".stock"), FieldKind::Availability);
        assert_eq!(
            extract(&[stock], page).unwrap()["stock"],
            "LimitedAvailability"
        );
        let err = extract(&[field("x", css(".x"), FieldKind::Availability)], page).unwrap_err();
        assert_eq!(
            err.fields()[0].1,
            FieldError::NoAvailability("Widget".into())
        );
    }

    /// Bad input gives a clear per-field error or value, never a panic.
    #[test]
    fn bad_input() {
        let fields = [
            field("price", Source::Auto, FieldKind::Price),
            field("ld", jsonld("offers.price"), FieldKind::Price),
            field("css", css(".price"), FieldKind::Price),
            field("json", json_at("/price"), FieldKind::Price),
        ];
        // Empty body: every field says what it missed.
        let err = extract(&fields, "").unwrap_err();
        assert_eq!(
            err.fields()
                .iter()
                .map(|(_, e)| e.clone())
                .collect::<Vec<_>>(),
            [
                FieldError::NoAutoPrice(NO_ANCHOR),
                FieldError::NoProduct,
                FieldError::NoMatch(".price".into()),
                FieldError::NotJson("EOF while parsing a value at line 1 column 0".into()),
            ]
        );

        // Malformed JSON-LD: unreadable blocks are skipped, not guessed at.
        let malformed = ld(r#"{"@type": "Product", "offers": {"price": "12.00",,}"#);
        let err = extract(&fields[..2], &malformed).unwrap_err();
        assert_eq!(err.fields()[0].1, FieldError::NoAutoPrice(NO_ANCHOR));

        // A 10 MB single-line script next to the product.
        let huge = format!(
            "<script>var x = \"{}\";</script>{}<span class=price>{}</span>",
            "a".repeat(10 << 20),
            ld(PRODUCT),
            "9".repeat(1 << 20),
        );
        let err = extract(&fields[..3], &huge).unwrap_err();
        assert_eq!(err.fields().len(), 1, "{err}");
        let FieldError::NoPrice(preview) = &err.fields()[0].1 else {
            panic!("{err}")
        };
        assert!(preview.chars().count() <= 201, "messages stay short");

        // A 10 MB JSON-LD block, readable and then broken.
        let description = "a".repeat(10 << 20);
        let big = ld(&format!(
            r#"{{"@type": "Product", "description": "{description}", "offers": {{"price": "5.00"}}}}"#
        ));
        assert_eq!(
            extract(&fields[..1], &big).unwrap()["price"]["amount"],
            "5.00"
        );
        let broken = big.replace(r#""5.00"}}"#, r#""5.00",}}"#);
        assert_eq!(
            extract(&fields[..1], &broken).unwrap()["price"]["amount"],
            "5.00"
        );
        let cut = big.replace(r#""offers""#, r#""offers"::"#);
        assert_eq!(
            extract(&fields[..1], &cut).unwrap_err().fields()[0].1,
            FieldError::NoAutoPrice(NO_ANCHOR)
        );

        // A page with ten prices: the first match of the selector, the first product.
        let ten: String = (1..=10)
            .map(|i| {
                format!(
                    "<span class=price>${i}.99</span>{}",
                    ld(&format!(
                        r#"{{"@type": "Product", "offers": {{"price": "{i}.99", "priceCurrency": "USD"}}}}"#
                    ))
                )
            })
            .collect();
        let values = extract(&fields[..3], &ten).unwrap();
        for name in ["price", "ld", "css"] {
            assert_eq!(values[name]["amount"], "1.99", "{name}");
        }

        // Text decoded with the wrong charset: a price without a currency, or none at all.
        let mojibake = "<span class=price>1.299,00 â‚¬</span><p class=s>Ã‰puisÃ©</p>";
        let values = extract(&fields[2..3], mojibake).unwrap();
        assert_eq!(values["css"]["amount"], "1299.00");
        let garbled = "<span class=price>\u{fffd}\u{fffd}\u{fffd}</span>";
        assert!(matches!(
            extract(&fields[2..3], garbled).unwrap_err().fields()[0].1,
            FieldError::NoPrice(_)
        ));
    }

    #[test]
    fn a_field_that_found_nothing_makes_the_reason_selector() {
        use crate::reason::Reason;
        let value = ("price".to_owned(), FieldError::NoPrice("Call us".into()));
        let missing = ("stock".to_owned(), FieldError::NoMatch(".stock".into()));
        assert_eq!(
            ExtractError::Fields(vec![value.clone()]).reason(),
            Reason::Value
        );
        assert_eq!(
            ExtractError::Fields(vec![value, missing]).reason(),
            Reason::Selector
        );
    }
}
