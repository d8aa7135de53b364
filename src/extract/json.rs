//! JSON responses: a JSON Pointer (RFC 6901) into the parsed body.

use serde_json::{Map, Value};

use super::FieldError;

/// Keys an API puts beside a price to say its currency.
const CURRENCY_KEYS: &[&str] = &[
    "currency",
    "currencyCode",
    "currency_code",
    "priceCurrency",
    "price_currency",
];

/// Parse a response body as JSON; a byte-order mark is tolerated.
pub fn parse(body: &str) -> Result<Value, FieldError> {
    serde_json::from_str(body.trim_start_matches('\u{feff}'))
        .map_err(|err| FieldError::NotJson(err.to_string()))
}

/// The value at `pointer`, and the currency written beside it, if any.
pub fn get<'a>(root: &'a Value, pointer: &str) -> Result<(&'a Value, Option<&'a str>), FieldError> {
    let value = root
        .pointer(pointer)
        .ok_or_else(|| FieldError::PointerNoMatch(pointer.to_owned()))?;
    let parent = pointer
        .rfind('/')
        .and_then(|at| root.pointer(&pointer[..at]))
        .and_then(Value::as_object);
    Ok((value, parent.and_then(currency_beside)))
}

pub(super) fn currency_beside(parent: &Map<String, Value>) -> Option<&str> {
    CURRENCY_KEYS
        .iter()
        .find_map(|k| parent.get(*k).and_then(Value::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointer_and_the_currency_beside_it() {
        let root =
            parse(r#"{"data": {"price": 12.5, "currency": "EUR", "tags": ["a", "b"]}}"#).unwrap();
        assert_eq!(
            get(&root, "/data/price").unwrap(),
            (&json!(12.5), Some("EUR"))
        );
        assert_eq!(get(&root, "/data/tags/1").unwrap(), (&json!("b"), None));
        assert_eq!(
            get(&root, "/data/nope").unwrap_err(),
            FieldError::PointerNoMatch("/data/nope".into())
        );
        assert!(matches!(parse("<html>"), Err(FieldError::NotJson(_))));
        assert!(parse("\u{feff}{}").is_ok());
    }
}
