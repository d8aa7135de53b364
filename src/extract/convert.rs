//! A field's raw text or JSON scalar -> the value its kind asks for.

use std::str::FromStr;

use regex::Regex;
use rust_decimal::Decimal;
use serde_json::Value;

use super::price::{self, Price};
use super::{Field, FieldError, FieldKind, availability, currency, number};

/// A field's raw value before its type is applied: text, or a JSON scalar, with the currency
/// that structured data states beside it.
pub(super) struct Input {
    pub(super) text: String,
    /// The text is a JSON number's, so it is read as exactly that number.
    pub(super) json_number: bool,
    pub(super) currency: Option<String>,
}

impl Input {
    pub(super) fn text(text: String) -> Self {
        Input {
            text,
            json_number: false,
            currency: None,
        }
    }

    pub(super) fn scalar(
        value: &Value,
        at: &str,
        currency: Option<&str>,
    ) -> Result<Self, FieldError> {
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

pub(super) fn convert(field: &Field, input: &Input) -> Result<Value, FieldError> {
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
pub(super) fn read_price(input: &Input, hint: Option<&'static str>) -> Option<Price> {
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

/// Text as it appears in values and messages: a runaway match (a whole script) is cut short.
pub(super) fn preview(text: &str) -> String {
    const MAX_CHARS: usize = 200;
    match text.char_indices().nth(MAX_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// The first capture group, or the whole match when the pattern has no group.
pub(super) fn refine(regex: &Regex, text: &str) -> Result<String, FieldError> {
    let captures = regex
        .captures(text)
        .ok_or_else(|| FieldError::RegexNoMatch {
            regex: regex.as_str().to_owned(),
            text: preview(text),
        })?;
    let found = captures.get(1).or_else(|| captures.get(0));
    Ok(found.map_or("", |m| m.as_str()).trim().to_owned())
}
