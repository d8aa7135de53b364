//! Price text as shops print it -> an exact amount and an ISO 4217 currency.
//!
//! The text is cut into numbers and words. Each number learns its currency from the word
//! glued to or next to it, and its role from the words since the previous number: an old
//! ("was", "statt", "UVP"), a saving ("save", "20% off"), shipping, an instalment ("12x de",
//! "/mo") or a unit price ("/kg") is not the price. Of what is left, the current price is
//! the one marked "now" or, failing that, the lowest: a struck-out price is always the
//! higher one, and "From $19.99" or a range starts at the lowest.

mod marker;
mod tokens;
mod words;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use self::marker::{marker_prefix, marker_suffix, marker_word};
use self::tokens::{Number, Token, tokenize};
use self::words::{
    FREE, INSTALMENTS, NOW, OFF, OLD, PER, SAVE, SHIPPING, THRESHOLD, TIMES, free, roles, trim,
};
use super::currency::Marker;

/// Texts longer than this are not a price someone printed; reading them costs for nothing.
pub const MAX_TEXT: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    pub amount: Decimal,
    pub currency: Option<&'static str>,
}

impl Price {
    /// The JSON form kept in state and sent in payloads.
    pub fn to_value(&self, raw: &str) -> Value {
        json!({"amount": self.amount.to_string(), "currency": self.currency, "raw": raw})
    }
}

/// The current price in `text`, or None when it holds none. `hint` is the currency to read an
/// ambiguous symbol ("$", "kr") or a bare number as.
pub fn parse(text: &str, hint: Option<&'static str>) -> Option<Price> {
    if text.len() > MAX_TEXT {
        return None;
    }
    let tokens = tokenize(text);
    let mut candidates = Vec::new();
    let mut previous_number = None;
    let mut skip = false;
    for (i, token) in tokens.iter().enumerate() {
        let Token::Number(number) = token else {
            continue;
        };
        if std::mem::take(&mut skip) {
            previous_number = Some(i);
            continue;
        }
        let window = &tokens[previous_number.map_or(0, |p| p + 1)..i];
        let after_number = previous_number.is_some();
        previous_number = Some(i);
        if let Some(c) = judge(text, &tokens, i, number, window, after_number, hint) {
            skip = c.took_next;
            candidates.push(c);
        }
    }
    // Once any number in the text carries a currency, bare numbers are counts, sizes, ratings.
    let money = candidates.iter().any(|c| c.marked);
    candidates.retain(|c| !c.excluded && (c.marked || !money));
    let Some(top) = candidates.iter().map(Candidate::rank).max() else {
        return (!money && free(text, &tokens)).then_some(Price {
            amount: Decimal::ZERO,
            currency: hint,
        });
    };
    let pool = candidates.iter().filter(|c| c.rank() == top);
    // Two currencies side by side ("$29.99 (€27.50)"): the first one printed is the price.
    let currency = pool.clone().next().and_then(|c| c.currency);
    pool.filter(|c| !c.marked || c.currency == currency)
        .min_by(|a, b| a.amount.cmp(&b.amount))
        .map(|c| Price {
            amount: c.amount,
            currency: c.currency,
        })
}

/// One number that may be the price, with what the words around it say.
#[derive(Debug)]
struct Candidate {
    amount: Decimal,
    currency: Option<&'static str>,
    marked: bool,
    fraction: bool,
    old: bool,
    now: bool,
    /// A saving, shipping, an instalment, a unit price or a percentage.
    excluded: bool,
    /// The next number was this one's cents ("129€99").
    took_next: bool,
}

impl Candidate {
    /// Which pool a candidate belongs to; only the highest non-empty pool is considered.
    fn rank(&self) -> u8 {
        let not_old = u8::from(!self.old) << 3;
        let money = u8::from(self.marked) << 2;
        let now = u8::from(self.now) << 1;
        let fraction = u8::from(self.fraction && !self.marked);
        not_old | money | now | fraction
    }
}

fn judge(
    text: &str,
    tokens: &[Token],
    at: usize,
    number: &Number,
    window: &[Token],
    after_number: bool,
    hint: Option<&'static str>,
) -> Option<Candidate> {
    let glued = |a: usize, b: usize| match (tokens.get(a), tokens.get(b)) {
        (Some(x), Some(y)) => x.span().1 == y.span().0,
        _ => false,
    };
    let is_number = |i: usize| matches!(tokens.get(i), Some(Token::Number(_)));
    let before = at.checked_sub(1).and_then(|i| word_at(text, tokens, i));
    let after = word_at(text, tokens, at + 1);
    // A symbol between two numbers belongs to the one it touches: "Size 42 $89.99".
    let before_belongs =
        at < 2 || !is_number(at - 2) || !glued(at - 2, at - 1) || glued(at - 1, at);
    let after_belongs = !is_number(at + 2) || !glued(at + 1, at + 2) || glued(at, at + 1);
    let marker_before = before.filter(|_| before_belongs).and_then(marker_suffix);
    let marker_after = after.filter(|_| after_belongs).and_then(marker_prefix);
    // An explicit code beats an ambiguous symbol: "$ 19.99 CAD" is Canadian.
    let marker = match (marker_before, marker_after) {
        (Some(b), Some(a)) if b.ambiguous && !a.ambiguous => Some(a),
        (Some(b), _) => Some(b),
        (None, a) => a,
    };
    let code = match marker {
        Some(m) if m.ambiguous => hint.or(m.code),
        Some(m) => m.code,
        None => hint,
    };
    let (mut amount, mut fraction) = number.value(code)?;
    let mut took_next = false;
    // "129€99": French shops print the cents after the symbol.
    if let (Some(Token::Number(cents)), true, true, false) = (
        tokens.get(at + 2),
        marker_after.is_some(),
        glued(at, at + 1) && glued(at + 1, at + 2),
        fraction,
    ) && cents.len == 2
        && cents.nseps == 0
        && let Some((c, _)) = cents.value(None)
    {
        amount += c / Decimal::ONE_HUNDRED;
        fraction = true;
        took_next = true;
    }
    // ¥ is yen in Japan and yuan in China; only yuan prices have cents.
    let code = match (marker, hint) {
        (Some(m), None) if m.code == Some("JPY") && m.ambiguous && fraction => Some("CNY"),
        _ => code,
    };
    let (old, now, excluded) = role(text, tokens, at, window, after_number, after, marker_after);
    Some(Candidate {
        amount,
        currency: code,
        marked: marker.is_some(),
        fraction,
        old,
        now,
        excluded,
        took_next,
    })
}

/// What the words around a number say it is: (old, now, not the price at all).
fn role(
    text: &str,
    tokens: &[Token],
    at: usize,
    window: &[Token],
    after_number: bool,
    after: Option<&str>,
    marker_after: Option<Marker>,
) -> (bool, bool, bool) {
    const NOT_A_PRICE: (bool, bool, bool) = (false, false, true);
    if after.is_some_and(|w| w.starts_with('%') || w.starts_with('٪')) {
        return NOT_A_PRICE;
    }
    // The words after the number, past a currency printed after it.
    let mut rest = tokens[at + 1..]
        .iter()
        .take_while(|t| !matches!(t, Token::Number(_)))
        .filter_map(|t| t.word(text));
    if marker_after.is_some() && after.is_some_and(|w| marker_word(w).is_some()) {
        rest.next();
    }
    let next = rest.next().map(trim);
    let next2 = rest.next().map(trim);
    let unit = after.is_some_and(|w| w.contains('/') && marker_word(w).is_none());
    let next_roles = next.map_or(0, roles);
    if unit || next_roles & (PER | TIMES) != 0 {
        return NOT_A_PRICE;
    }
    let free_next = next_roles & FREE != 0;
    let after_roles = next_roles | next2.map_or(0, roles);
    if after_roles & (OFF | THRESHOLD) != 0 || (after_roles & SHIPPING != 0 && !free_next) {
        return NOT_A_PRICE;
    }
    let mut words = window.iter().filter_map(|t| t.word(text)).map(trim);
    let first = words.next();
    let first_roles = first.map_or(0, roles);
    if after_number && first_roles & TIMES != 0 {
        return NOT_A_PRICE;
    }
    let before = words.fold(first_roles, |acc, w| acc | roles(w));
    let shipping = before & SHIPPING != 0 && before & FREE == 0;
    if shipping || before & (SAVE | INSTALMENTS | THRESHOLD) != 0 {
        return NOT_A_PRICE;
    }
    (before & OLD != 0, before & NOW != 0, false)
}

fn word_at<'t>(text: &'t str, tokens: &[Token], i: usize) -> Option<&'t str> {
    tokens.get(i)?.word(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::currency;
    use std::str::FromStr;

    /// One row of prices.tsv: text, amount, currency (or -), optional hint.
    struct Case {
        line: usize,
        text: String,
        amount: Option<Decimal>,
        currency: Option<String>,
        hint: Option<&'static str>,
    }

    /// `\u{a0}`-style escapes keep invisible spaces visible in the data file.
    fn unescape(text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(at) = rest.find("\\u{") {
            out.push_str(&rest[..at]);
            let end = rest[at..].find('}').expect("closed escape") + at;
            let code = u32::from_str_radix(&rest[at + 3..end], 16).expect("hex escape");
            out.push(char::from_u32(code).expect("a char"));
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }

    fn cases() -> Vec<Case> {
        include_str!("prices.tsv")
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|(i, line)| {
                let cols: Vec<&str> = line.split('\t').collect();
                assert!(
                    (3..=4).contains(&cols.len()),
                    "prices.tsv:{}: want 3 or 4 tab-separated columns",
                    i + 1
                );
                Case {
                    line: i + 1,
                    text: unescape(cols[0]),
                    amount: (cols[1] != "-").then(|| Decimal::from_str(cols[1]).unwrap()),
                    currency: (cols[2] != "-").then(|| cols[2].to_owned()),
                    hint: cols
                        .get(3)
                        .map(|h| currency::code(h).expect("hint is a code")),
                }
            })
            .collect()
    }

    #[test]
    fn prices_from_shops_around_the_world() {
        let cases = cases();
        assert!(cases.len() >= 300, "only {} cases", cases.len());
        let mut failures = Vec::new();
        for case in &cases {
            let got = parse(&case.text, case.hint);
            let want = case.amount.map(|amount| (amount, case.currency.clone()));
            let got_pair = got.map(|p| (p.amount, p.currency.map(str::to_owned)));
            // Compare the amount by value but also by scale: "1299.00" must stay "1299.00".
            let same = match (&got_pair, &want) {
                (Some((ga, gc)), Some((wa, wc))) => ga.to_string() == wa.to_string() && gc == wc,
                (None, None) => true,
                _ => false,
            };
            if !same {
                failures.push(format!(
                    "prices.tsv:{}: {:?} -> {:?}, want {:?}",
                    case.line, case.text, got_pair, want
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} failed:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn the_json_form_keeps_the_scale_and_the_raw_text() {
        let price = parse("$1,299.90", None).unwrap();
        assert_eq!(
            price.to_value("$1,299.90"),
            json!({"amount": "1299.90", "currency": "USD", "raw": "$1,299.90"})
        );
    }

    #[test]
    fn hostile_text_never_panics() {
        let long_digits = "9".repeat(100);
        let many_seps = "1,".repeat(50) + "0";
        let huge = "x".repeat(MAX_TEXT + 1);
        for text in [
            "",
            " ",
            "$",
            ",,,.",
            "1.2.3.4.5.6.7.8.9.0.1.2.3.4.5.6",
            long_digits.as_str(),
            many_seps.as_str(),
            huge.as_str(),
            "\u{fffd}\u{fffd} 12\u{fffd}99",
            "٫٫١",
            "$-",
            "%",
        ] {
            let _ = parse(text, None);
            let _ = parse(text, Some("EUR"));
        }
        assert_eq!(parse(&long_digits, None), None);
        assert_eq!(parse(&huge, None), None);
    }
}
