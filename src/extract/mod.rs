//! Page -> values. Pure functions: no I/O, no clock.

mod auto;
pub mod availability;
mod convert;
mod crosscheck;
mod css;
pub mod currency;
mod dom;
mod error;
pub mod json;
pub mod jsonld;
mod markup;
mod microdata;
mod number;
mod offer;
mod page;
pub mod price;
mod stream;
mod survey;
mod visible;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use regex::Regex;
use scraper::Selector;
use serde_json::Value;

use self::convert::{Input, convert, refine};
pub use self::dom::PageError;
pub use self::error::{ExtractError, FieldError};
use self::markup::Unsure;
use self::page::Page;
pub use self::stream::{Hint, Reading, StreamSelector};
pub use self::survey::{Survey, survey};
pub use self::visible::{Rejected, Why};

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
        /// Shared by every field of the same `css`: watchers mostly copy one spec.
        selector: Arc<Css>,
        attr: Option<String>,
    },
    /// A dotted path into the page's schema.org Product node (`offers.price`).
    JsonLd { path: Vec<String> },
    /// A JSON Pointer into a JSON response (`/data/price`).
    Json { pointer: String },
    /// No source given: the product's price or availability from the page's structured
    /// data (JSON-LD, then microdata, RDFa and meta tags).
    Auto,
}

/// A field's CSS selector, compiled for the parsed page and, where it can be, for the
/// streaming read.
#[derive(Debug)]
pub struct Css {
    pub dom: Selector,
    /// Or why only the parsed page can match it.
    pub stream: Result<StreamSelector, &'static str>,
}

impl Css {
    pub fn new(dom: Selector, css: &str) -> Css {
        Css {
            dom,
            stream: StreamSelector::parse(css),
        }
    }
}

/// One tracked value of a watcher, compiled at config load.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub source: Source,
    /// Shared by every field of the same pattern, as the selector is.
    pub regex: Option<Arc<Regex>>,
    pub kind: FieldKind,
    /// A required field that yields nothing fails the check; an optional one becomes null.
    pub required: bool,
    /// The currency a price with only an ambiguous symbol ("$", "kr") or none is read in.
    pub currency: Option<&'static str>,
    /// The most bytes the value may take (`max_value_size`); a larger one fails the field.
    pub max_size: usize,
}

// The compiled parts (selectors, regexes) have no equality of their own, so each compares by
// the text it was compiled from: a reload must tell an unchanged field from a changed one.
impl PartialEq for Source {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                Source::Css {
                    css,
                    selector: _,
                    attr,
                },
                Source::Css {
                    css: other_css,
                    selector: _,
                    attr: other_attr,
                },
            ) => css == other_css && attr == other_attr,
            (Source::JsonLd { path }, Source::JsonLd { path: other }) => path == other,
            (Source::Json { pointer }, Source::Json { pointer: other }) => pointer == other,
            (Source::Auto, Source::Auto) => true,
            _ => false,
        }
    }
}

impl PartialEq for Field {
    fn eq(&self, other: &Self) -> bool {
        // Destructured whole, so a new property does not compile until it is compared here.
        let Field {
            name,
            source,
            regex,
            kind,
            required,
            currency,
            max_size,
        } = self;
        *name == other.name
            && *source == other.source
            && regex.as_deref().map(Regex::as_str) == other.regex.as_deref().map(Regex::as_str)
            && *kind == other.kind
            && *required == other.required
            && *currency == other.currency
            && *max_size == other.max_size
    }
}

/// Where a value was found, so a user can trust or correct an automatic source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Css,
    JsonLd,
    Microdata,
    Rdfa,
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
            Origin::Rdfa => "RDFa",
            Origin::Meta => "meta tags",
            Origin::Json => "JSON",
            Origin::Visible => "the visible page",
        }
    }
}

/// Values, and where each was found.
#[derive(Debug, Clone, PartialEq)]
pub struct Extraction {
    pub values: Values,
    pub origins: BTreeMap<String, Origin>,
    /// For values read off the visible page, a CSS path to the element that shows them.
    pub paths: BTreeMap<String, String>,
    /// For a watcher whose fields stream, why this page was parsed instead, if it was.
    pub parsed_because: Option<String>,
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
    extract_hinted(fields, body, stop, &Hint::default())
}

/// As `extract_until`, for a watcher whose earlier pages `hint` remembers: one whose pages
/// keep needing the DOM skips the streaming read for a while.
pub fn extract_hinted(
    fields: &[Field],
    body: &str,
    stop: &AtomicBool,
    hint: &Hint,
) -> Result<Extraction, ExtractError> {
    // A selector naming scripts or styles reads what stripping would remove.
    let reads_inert = fields.iter().any(|f| {
        matches!(&f.source, Source::Css { css, .. }
            if css.to_ascii_lowercase().contains("script") || css.to_ascii_lowercase().contains("style"))
    });
    // The fields read off the parsed page; `why` says why a page whose fields stream took it.
    let parsed = |why: Option<String>| {
        let page = Page::new(body, Some(dom::parse(body, !reads_inert, stop)?));
        read_fields(fields, &page).done(why)
    };
    match Reading::of(fields) {
        Reading::Json => read_fields(fields, &Page::new(body, None)).done(None),
        Reading::Parse(_) => parsed(None),
        Reading::Stream if hint.parse_directly() => parsed(Some(
            "this watcher's last pages needed it; the streaming read is tried again soon".into(),
        )),
        Reading::Stream => match stream::read(fields, body, !reads_inert, stop) {
            Ok(streamed) => match read_fields(fields, &Page::streamed(body, streamed)) {
                Read::Done(extraction) => {
                    #[cfg(debug_assertions)]
                    cross_check(fields, body, !reads_inert, &extraction);
                    hint.streamed();
                    extraction
                }
                // A URL-only field needs microdata or the visible page.
                Read::NeedsDom => {
                    hint.needed_dom();
                    parsed(Some(
                        "a URL-only field found no sure answer in the JSON-LD and the head's \
                         meta tags, so it read microdata or the visible page"
                            .into(),
                    ))
                }
            },
            Err(Unsure::Stopped) => Err(PageError::Stopped.into()),
            // Markup the streaming read does not follow: the parser reads it.
            Err(why) => {
                hint.needed_dom();
                parsed(Some(why.describe()))
            }
        },
    }
}

/// In debug builds (and so in every test that extracts), a page answered without a DOM is
/// parsed and read again, and the two answers must be the same: every field of the test suite
/// is a differential test of the streaming read.
#[cfg(debug_assertions)]
fn cross_check(
    fields: &[Field],
    body: &str,
    strip_inert: bool,
    streamed: &Result<Extraction, ExtractError>,
) {
    // Pages built to be huge are the hostile-input tests' business, not this check's.
    if body.len() > 2 << 20 {
        return;
    }
    let Ok(html) = dom::parse(body, strip_inert, &AtomicBool::new(false)) else {
        return;
    };
    let parsed = read_fields(fields, &Page::new(body, Some(html))).done(None);
    let shown = |r: &Result<Extraction, ExtractError>| match r {
        Ok(e) => format!("{:?} {:?} {:?}", e.values, e.origins, e.paths),
        Err(err) => err.to_string(),
    };
    assert_eq!(
        shown(streamed),
        shown(&parsed),
        "the streaming read and the parse disagree"
    );
}

/// What reading the fields off a page came to.
enum Read {
    Done(Result<Extraction, ExtractError>),
    /// The page was read without a DOM, and a field needs one.
    NeedsDom,
}

impl Read {
    /// The extraction, noting why the page took a DOM when its fields stream.
    fn done(self, parsed_because: Option<String>) -> Result<Extraction, ExtractError> {
        match self {
            Read::Done(found) => found.map(|e| Extraction {
                parsed_because,
                ..e
            }),
            Read::NeedsDom => unreachable!("a parsed page has its DOM"),
        }
    }
}

fn read_fields(fields: &[Field], page: &Page<'_>) -> Read {
    let mut values = Values::new();
    let mut origins = BTreeMap::new();
    let mut paths = BTreeMap::new();
    let mut failures = Vec::new();
    for field in fields {
        match extract_field(field, page).and_then(|found| within_size(field, found)) {
            Ok((value, origin)) => {
                values.insert(field.name.clone(), value);
                origins.insert(field.name.clone(), origin);
                if let Some(path) = page.take_path(&field.name) {
                    paths.insert(field.name.clone(), path);
                }
            }
            Err(FieldError::NeedsDom) => return Read::NeedsDom,
            // An optional field that yields nothing is null; one that yields too much is not
            // nothing, and null in its place would read as a change.
            Err(err) if !field.required && !matches!(err, FieldError::TooLarge { .. }) => {
                values.insert(field.name.clone(), Value::Null);
            }
            Err(err) => failures.push((field.name.clone(), err)),
        }
    }
    Read::Done(if failures.is_empty() {
        Ok(Extraction {
            values,
            origins,
            paths,
            parsed_because: None,
        })
    } else {
        Err(ExtractError::Fields(failures))
    })
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

fn extract_field(field: &Field, page: &Page<'_>) -> Result<(Value, Origin), FieldError> {
    let (input, origin) = match &field.source {
        Source::Css {
            css,
            selector,
            attr,
        } => {
            let text = match page.streamed_text(&field.name) {
                Some(found) => found?,
                None => css::select(page.html(), css, &selector.dom, attr.as_deref())?,
            };
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
        Source::Auto => return auto::automatic(field, page),
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

#[cfg(test)]
mod tests;
