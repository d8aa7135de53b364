//! Price text cut into numbers (digits with the separators between them, in any script's
//! digits) and words.

use rust_decimal::Decimal;

use crate::extract::currency;

/// The most digits an amount may have (rust_decimal holds 28 safely).
const MAX_DIGITS: usize = 28;
const MAX_SEPARATORS: usize = 12;

/// A run of digits and the separators between them, as printed.
#[derive(Debug)]
pub(super) struct Number {
    /// Byte range in the text.
    pub(super) span: (usize, usize),
    digits: [u8; MAX_DIGITS],
    pub(super) len: usize,
    /// (digits before the separator, separator)
    seps: [(u8, Sep); MAX_SEPARATORS],
    pub(super) nseps: usize,
    overflow: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sep {
    Dot,
    Comma,
    /// A space or an apostrophe: only ever grouping.
    Group,
    /// The Arabic decimal separator: only ever decimal.
    Decimal,
}

impl Number {
    fn seps(&self) -> &[(u8, Sep)] {
        &self.seps[..self.nseps]
    }

    /// The amount, and whether it has a fractional part. `code` decides "1.250" for the
    /// currencies with three decimals.
    pub(super) fn value(&self, code: Option<&str>) -> Option<(Decimal, bool)> {
        if self.overflow || self.len == 0 {
            return None;
        }
        let seps = self.seps();
        let is_mark = |s: &Sep| matches!(s, Sep::Dot | Sep::Comma | Sep::Decimal);
        let last_mark = seps.iter().rev().find(|(_, s)| is_mark(s)).copied();
        // Where the decimal separator sits, counted in digits before it.
        let decimal_at = match last_mark {
            None => None,
            Some((pos, Sep::Decimal)) => Some(usize::from(pos)),
            Some((pos, kind)) => {
                let pos = usize::from(pos);
                let marks = seps.iter().filter(|(_, s)| is_mark(s)).count();
                let same = seps.iter().filter(|(_, s)| *s == kind).count();
                let mixed = same != marks;
                let last_overall = seps.last().map(|(p, _)| usize::from(*p)) == Some(pos);
                let fraction = self.len - pos;
                if mixed {
                    // "1.299,00", "1,299.99": the last mark is the decimal one, once.
                    if same != 1 || !last_overall {
                        return None;
                    }
                    Some(pos)
                } else if !last_overall {
                    None
                } else if same > 1 {
                    // "1.234.567" groups; "1.299.99" is a typo for 1299.99.
                    (fraction < 3).then_some(pos)
                } else if fraction != 3
                    || code.is_some_and(currency::three_decimals)
                    || (pos == 1 && self.digits[0] == 0)
                    || seps.iter().any(|(_, s)| *s == Sep::Group)
                {
                    Some(pos)
                } else {
                    // "1,299", "31.500", "1.299 €": three digits after a lone mark group.
                    None
                }
            }
        };
        let scale = decimal_at.map_or(0, |pos| self.len - pos);
        let mut mantissa: i128 = 0;
        for d in &self.digits[..self.len] {
            mantissa = mantissa * 10 + i128::from(*d);
        }
        let amount = Decimal::try_from_i128_with_scale(mantissa, scale as u32).ok()?;
        Some((amount, scale > 0))
    }
}

#[derive(Debug)]
pub(super) enum Token {
    Number(Number),
    /// A byte range of a run of non-space, non-digit characters.
    Word(usize, usize),
}

impl Token {
    pub(super) fn span(&self) -> (usize, usize) {
        match self {
            Token::Word(s, e) => (*s, *e),
            Token::Number(n) => n.span,
        }
    }

    pub(super) fn word<'t>(&self, text: &'t str) -> Option<&'t str> {
        match self {
            Token::Word(s, e) => Some(&text[*s..*e]),
            Token::Number(_) => None,
        }
    }
}

fn digit(c: char) -> Option<u8> {
    let d = match c {
        '0'..='9' => c as u32 - '0' as u32,
        '٠'..='٩' => c as u32 - '٠' as u32,
        '۰'..='۹' => c as u32 - '۰' as u32,
        '०'..='९' => c as u32 - '०' as u32,
        '０'..='９' => c as u32 - '０' as u32,
        _ => return None,
    };
    Some(d as u8)
}

fn separator(c: char) -> Option<Sep> {
    match c {
        '.' | '．' => Some(Sep::Dot),
        ',' | '，' | '٬' => Some(Sep::Comma),
        '\'' | '’' | 'ʼ' | '´' => Some(Sep::Group),
        '٫' => Some(Sep::Decimal),
        c if c.is_whitespace() => Some(Sep::Group),
        _ => None,
    }
}

pub(super) fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let end_of = |i: usize| chars.get(i).map_or(text.len(), |(b, _)| *b);
    let mut tokens = Vec::with_capacity(8);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        if c.is_whitespace() {
            i += 1;
        } else if digit(c).is_some() {
            let (mut number, next) = scan_number(&chars, i);
            number.span.1 = end_of(next);
            tokens.push(Token::Number(number));
            i = next;
        } else {
            let start = i;
            while i < chars.len() && !chars[i].1.is_whitespace() && digit(chars[i].1).is_none() {
                i += 1;
            }
            tokens.push(Token::Word(end_of(start), end_of(i)));
        }
    }
    tokens
}

/// Digits with the separators between them; a space or apostrophe only joins a group of
/// exactly three digits ("1 299,00"), so "3 for 10" stays two numbers.
fn scan_number(chars: &[(usize, char)], mut i: usize) -> (Number, usize) {
    let mut n = Number {
        span: (chars[i].0, 0),
        digits: [0; MAX_DIGITS],
        len: 0,
        seps: [(0, Sep::Group); MAX_SEPARATORS],
        nseps: 0,
        overflow: false,
    };
    let at = |i: usize| chars.get(i).map(|(_, c)| *c);
    loop {
        while let Some(d) = at(i).and_then(digit) {
            if n.len < MAX_DIGITS {
                n.digits[n.len] = d;
                n.len += 1;
            } else {
                n.overflow = true;
            }
            i += 1;
        }
        let Some(sep) = at(i).and_then(separator) else {
            break;
        };
        if matches!(sep, Sep::Dot | Sep::Comma) && matches!(at(i + 1), Some('-' | '–' | '—')) {
            // "15,-" and "1.299,-": whole units, as Czech, German and Nordic shops print.
            i += 2;
            break;
        }
        let run = (i + 1..)
            .take_while(|&j| at(j).and_then(digit).is_some())
            .count();
        let joins = match sep {
            Sep::Group => run == 3,
            _ => run > 0,
        };
        if !joins {
            break;
        }
        if n.nseps < MAX_SEPARATORS {
            // len <= MAX_DIGITS, so it fits.
            n.seps[n.nseps] = (n.len as u8, sep);
            n.nseps += 1;
        } else {
            n.overflow = true;
        }
        i += 1;
    }
    (n, i)
}
