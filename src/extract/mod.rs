//! Page -> values. Pure functions: no I/O, no clock.

mod css;
pub mod currency;
mod number;
pub mod price;

use std::collections::BTreeMap;

use regex::Regex;
use scraper::{Html, Selector};
use serde_json::Value;

/// The values of one successful extraction, by field name, in the JSON form they take in
/// payloads and state: text is a string, a number is a decimal string (never a float).
pub type Values = BTreeMap<String, Value>;

/// What a field's raw text is turned into. `price` and `availability` will join these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    Number,
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
}

/// Every field that failed in one extraction, so a user fixes them all in one go.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe(.0))]
pub struct ExtractError(pub Vec<(String, FieldError)>);

fn describe(failures: &[(String, FieldError)]) -> String {
    let parts: Vec<String> = failures
        .iter()
        .map(|(field, err)| format!("field `{field}`: {err}"))
        .collect();
    parts.join("; ")
}

/// Extract every field from an HTML body. Fails when any required field yields nothing.
pub fn extract(fields: &[Field], body: &str) -> Result<Values, ExtractError> {
    let document = Html::parse_document(body);
    let mut values = Values::new();
    let mut failures = Vec::new();
    for field in fields {
        match extract_field(field, &document) {
            Ok(value) => {
                values.insert(field.name.clone(), value);
            }
            Err(_) if !field.required => {
                values.insert(field.name.clone(), Value::Null);
            }
            Err(err) => failures.push((field.name.clone(), err)),
        }
    }
    if failures.is_empty() {
        Ok(values)
    } else {
        Err(ExtractError(failures))
    }
}

fn extract_field(field: &Field, document: &Html) -> Result<Value, FieldError> {
    let text = match &field.source {
        Source::Css {
            css,
            selector,
            attr,
        } => css::select(document, css, selector, attr.as_deref())?,
    };
    let text = match &field.regex {
        Some(regex) => refine(regex, &text)?,
        None => text,
    };
    match field.kind {
        FieldKind::Text => Ok(Value::String(text)),
        FieldKind::Number => number::parse(&text)
            .map(|n| Value::String(n.to_string()))
            .ok_or(FieldError::NotANumber(text)),
    }
}

/// The first capture group, or the whole match when the pattern has no group.
fn refine(regex: &Regex, text: &str) -> Result<String, FieldError> {
    let captures = regex
        .captures(text)
        .ok_or_else(|| FieldError::RegexNoMatch {
            regex: regex.as_str().to_owned(),
            text: text.to_owned(),
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
        }
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
        let Source::Css { attr, .. } = &mut field.source;
        *attr = Some("content".into());
        assert_eq!(extract(&[field], PAGE).unwrap()["og"], "Widget Pro");

        let mut missing = css_field("og", "h1");
        let Source::Css { attr, .. } = &mut missing.source;
        *attr = Some("content".into());
        let err = extract(&[missing], PAGE).unwrap_err();
        assert!(matches!(err.0[0].1, FieldError::NoAttribute { .. }));
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
        assert_eq!(err.0.len(), 2);
        assert_eq!(
            err.to_string(),
            "field `gone`: selector `.nope` matched nothing; field `word`: no number in \"Widget Pro\""
        );
    }

    #[test]
    fn an_optional_field_that_matches_nothing_is_null() {
        let mut field = css_field("badge", ".badge");
        field.required = false;
        assert_eq!(extract(&[field], PAGE).unwrap()["badge"], Value::Null);
    }
}
