use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;
use rust_decimal::Decimal;

/// A plain number: the first one in the text, with an optional sign, `,` as thousands
/// grouping and `.` as the decimal point ("1,299.99", "-3", "17 left"). Locale-aware
/// reading of prices is the price type's job, not this one's.
pub(super) fn parse(text: &str) -> Option<Decimal> {
    static NUMBER: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?").expect("valid number regex")
    });
    let found = NUMBER.find(text)?.as_str().replace(',', "");
    Decimal::from_str(found.trim_start_matches('+'))
        .ok()
        .map(|d| d.normalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_numbers() {
        let cases = [
            ("42", "42"),
            ("-3.5", "-3.5"),
            ("+7", "7"),
            ("1,299.99", "1299.99"),
            ("1,234,567", "1234567"),
            ("17 left", "17"),
            ("Rating: 4.50 of 5", "4.5"),
            ("0.000", "0"),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse(text).map(|d| d.to_string()).as_deref(),
                Some(want),
                "{text}"
            );
        }
    }

    #[test]
    fn text_without_digits_is_not_a_number() {
        assert_eq!(parse("sold out"), None);
        assert_eq!(parse(""), None);
    }
}
