//! The small value types many keys share: durations, byte sizes and http(s) URLs.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use url::Url;

use super::Validator;
use crate::redact::{self, SensitiveUrl};

/// A byte count: an integer, or a string such as "10 MiB" or "512KB".
#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub(super) enum ByteSize {
    Bytes(u64),
    Text(String),
}

pub(super) fn parse_byte_size(text: &str) -> Option<u64> {
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
impl Validator<'_> {
    /// A `max_value_size`, or `default` when it is absent or invalid (and reported).
    pub(super) fn value_size(&mut self, raw: Option<&Spanned<ByteSize>>, default: usize) -> usize {
        raw.and_then(|size| self.byte_size(size))
            .map_or(default, |bytes| {
                usize::try_from(bytes).unwrap_or(usize::MAX)
            })
    }

    pub(super) fn http_url(&mut self, raw: &Spanned<String>) -> Option<SensitiveUrl> {
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

    pub(super) fn duration(&mut self, raw: &Spanned<String>) -> Option<Duration> {
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

    pub(super) fn byte_size(&mut self, raw: &Spanned<ByteSize>) -> Option<u64> {
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

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("10 MiB"), Some(10 << 20));
        assert_eq!(parse_byte_size("512KB"), Some(512_000));
        assert_eq!(parse_byte_size("7"), Some(7));
        assert_eq!(parse_byte_size("lots"), None);
        assert_eq!(parse_byte_size("5 parsecs"), None);
    }
}
