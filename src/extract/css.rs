use scraper::{Html, Selector};

use super::FieldError;

/// Text (or an attribute) of the first element `selector` matches, whitespace-normalised the
/// way a browser renders it, so reformatted markup does not read as a change.
pub(super) fn select(
    document: &Html,
    css: &str,
    selector: &Selector,
    attr: Option<&str>,
) -> Result<String, FieldError> {
    let element = document
        .select(selector)
        .next()
        .ok_or_else(|| FieldError::NoMatch(css.to_owned()))?;
    match attr {
        Some(name) => {
            element
                .value()
                .attr(name)
                .map(normalise)
                .ok_or_else(|| FieldError::NoAttribute {
                    css: css.to_owned(),
                    attr: name.to_owned(),
                })
        }
        None => Ok(normalise(&element.text().collect::<String>())),
    }
}

pub(super) fn normalise(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
