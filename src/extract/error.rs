//! Why a field, or a whole extraction, gave no value.

use super::PageError;
use crate::reason::Reason;

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
    /// A page read without a DOM holds no answer a URL-only field can give without one; the
    /// page is parsed and the fields read again. Never leaves `extract`.
    #[error("the field needs the parsed page")]
    NeedsDom,
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
            FieldError::NeedsDom => Reason::Selector,
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
