//! Price text as shops print it -> an exact amount and an ISO 4217 currency.
//!
//! The text is cut into numbers and words. Each number learns its currency from the word
//! glued to or next to it, and its role from the words since the previous number: an old
//! ("was", "statt", "UVP"), a saving ("save", "20% off"), shipping, an instalment ("12x de",
//! "/mo") or a unit price ("/kg") is not the price. Of what is left, the current price is
//! the one marked "now" or, failing that, the lowest: a struck-out price is always the
//! higher one, and "From $19.99" or a range starts at the lowest.

use std::collections::HashMap;
use std::sync::LazyLock;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::currency::{self, Fnv, MAX_SYMBOL_CHARS, Marker};

/// Texts longer than this are not a price someone printed; reading them costs for nothing.
pub const MAX_TEXT: usize = 64 * 1024;

/// The most digits an amount may have (rust_decimal holds 28 safely).
const MAX_DIGITS: usize = 28;
const MAX_SEPARATORS: usize = 12;

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

/// A currency at the end of the word before a number: "$", "(US$", "Price:€", "CHF".
fn marker_suffix(word: &str) -> Option<Marker> {
    if let Some(m) = marker_word(word) {
        return Some(m);
    }
    // Every glued symbol has a character that is not an ASCII letter or digit.
    if word.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let mut starts = [0usize; MAX_SYMBOL_CHARS];
    let mut n = 0;
    for (i, _) in word.char_indices().rev().take(MAX_SYMBOL_CHARS) {
        starts[n] = i;
        n += 1;
    }
    // Longest first: "US$" before "$".
    starts[..n]
        .iter()
        .rev()
        .find_map(|&i| currency::symbol(&word[i..]))
}

/// A currency at the start of the word after a number: "€", "€*", "円（税込）", "zł".
fn marker_prefix(word: &str) -> Option<Marker> {
    if let Some(m) = marker_word(word) {
        return Some(m);
    }
    if word.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let mut ends = [0usize; MAX_SYMBOL_CHARS];
    let mut n = 0;
    for (i, c) in word.char_indices().take(MAX_SYMBOL_CHARS) {
        ends[n] = i + c.len_utf8();
        n += 1;
    }
    ends[..n]
        .iter()
        .rev()
        .find_map(|&end| currency::symbol(&word[..end]))
}

fn marker_word(word: &str) -> Option<Marker> {
    if let Some(m) = currency::word(word).or_else(|| currency::symbol(word)) {
        return Some(m);
    }
    let punct = trim_punctuation(word);
    if punct.len() != word.len()
        && let Some(m) = currency::word(punct)
    {
        return Some(m);
    }
    let bare = trim(word);
    if bare.len() != punct.len() && !bare.is_empty() {
        return currency::word(bare);
    }
    None
}

fn trim_punctuation(word: &str) -> &str {
    word.trim_matches(|c: char| "()[]{}:;,!?*\"«»（）".contains(c))
}

fn trim(word: &str) -> &str {
    word.trim_matches(|c: char| !c.is_alphanumeric() && c != '&')
}

/// What a word says about the number near it, as bits.
const OLD: u16 = 1;
const NOW: u16 = 1 << 1;
const SAVE: u16 = 1 << 2;
const OFF: u16 = 1 << 3;
const SHIPPING: u16 = 1 << 4;
const INSTALMENTS: u16 = 1 << 5;
const THRESHOLD: u16 = 1 << 6;
const PER: u16 = 1 << 7;
const FREE: u16 = 1 << 8;
/// "12x de R$ 108,25", "12 x 10,00 €": a count of instalments.
const TIMES: u16 = 1 << 9;

static KEYWORDS: LazyLock<HashMap<String, u16, Fnv>> = LazyLock::new(|| {
    let mut map = HashMap::default();
    for (list, role) in [
        (OLD_WORDS, OLD),
        (NOW_WORDS, NOW),
        (SAVE_WORDS, SAVE),
        (OFF_WORDS, OFF),
        (SHIPPING_WORDS, SHIPPING),
        (INSTALMENT_WORDS, INSTALMENTS),
        (THRESHOLD_WORDS, THRESHOLD),
        (PER_WORDS, PER),
        (FREE_WORDS, FREE),
        (&["x", "×"][..], TIMES),
    ] {
        for word in list {
            *map.entry(word.to_lowercase()).or_default() |= role;
        }
    }
    map
});

/// The roles of one word, case-insensitively, without allocating.
fn roles(word: &str) -> u16 {
    let mut buf = [0u8; 48];
    let mut n = 0;
    for c in word.chars().flat_map(char::to_lowercase) {
        let len = c.len_utf8();
        if n + len > buf.len() {
            // Longer than any keyword.
            return 0;
        }
        c.encode_utf8(&mut buf[n..]);
        n += len;
    }
    let lower = std::str::from_utf8(&buf[..n]).unwrap_or_default();
    KEYWORDS.get(lower).copied().unwrap_or(0)
}

/// "Free", "Gratis", "Бесплатно", ... with no number at all: a price of zero. "Free
/// shipping" alone is not a price.
fn free(text: &str, tokens: &[Token]) -> bool {
    if tokens.iter().any(|t| matches!(t, Token::Number(_))) {
        return false;
    }
    let all = tokens
        .iter()
        .filter_map(|t| t.word(text))
        .fold(0, |acc, w| acc | roles(trim(w)));
    if all & SHIPPING != 0 {
        return false;
    }
    all & FREE != 0 || FREE_GLUED.iter().any(|f| text.contains(f))
}

const OLD_WORDS: &[&str] = &[
    "was",
    "war",
    "statt",
    "uvp",
    "rrp",
    "msrp",
    "list",
    "regular",
    "reg",
    "before",
    "old",
    "originally",
    "original",
    "avant",
    "antes",
    "prima",
    "vorher",
    "zuvor",
    "ord",
    "ordinarie",
    "normalpris",
    "normalpreis",
    "compare",
    "retail",
    "tidligere",
    "før",
    "förut",
    "voorheen",
    "eerder",
    "anteriormente",
    "precedente",
    "dříve",
    "původně",
    "korábban",
    "było",
    "bylo",
    "было",
    "Было",
    "раньше",
    "старая",
    "cena",
    "van",
    "kainą",
    "vanha",
    "εκπτωση",
];
const NOW_WORDS: &[&str] = &[
    "now",
    "jetzt",
    "nu",
    "ahora",
    "maintenant",
    "nyt",
    "nå",
    "teraz",
    "сейчас",
    "por",
    "voor",
    "agora",
    "ora",
    "sale",
    "special",
    "nur",
    "only",
    "deal",
    "nyní",
    "nyni",
    "most",
    "şimdi",
    "simdi",
    "nun",
    "zdaj",
    "тепер",
    "Сейчас",
    "offer",
];
const SAVE_WORDS: &[&str] = &[
    "save",
    "saving",
    "savings",
    "spare",
    "sparen",
    "sparst",
    "spar",
    "ersparnis",
    "économisez",
    "economisez",
    "économie",
    "ahorra",
    "ahorras",
    "ahorro",
    "risparmi",
    "risparmia",
    "economize",
    "economia",
    "bespaar",
    "besparing",
    "oszczędzasz",
    "oszczędź",
    "ušetříte",
    "ušetři",
    "sleva",
    "экономия",
    "Экономия",
    "скидка",
    "Скидка",
    "discount",
    "rabatt",
    "rabais",
    "descuento",
    "desconto",
    "sconto",
    "korting",
    "tasarruf",
    "spara",
    "sparer",
    "säästä",
    "megtakarítás",
    "reduction",
    "réduction",
    "remise",
    "coupon",
    "voucher",
];
const OFF_WORDS: &[&str] = &[
    "off",
    "korting",
    "rabatt",
    "de descuento",
    "descuento",
    "sconto",
];
const SHIPPING_WORDS: &[&str] = &[
    "shipping",
    "delivery",
    "postage",
    "p&p",
    "versand",
    "versandkosten",
    "lieferung",
    "livraison",
    "envío",
    "envio",
    "spedizione",
    "verzending",
    "verzendkosten",
    "frete",
    "доставка",
    "Доставка",
    "porto",
    "wysyłka",
    "dostawa",
    "doprava",
    "poštovné",
    "kargo",
    "fee",
    "deposit",
    "pfand",
    "frakt",
    "fragt",
    "toimitus",
    "postage",
    "shipped",
    "handling",
];
/// "Free shipping on orders over $35": a condition, not a price.
const THRESHOLD_WORDS: &[&str] = &[
    "over", "above", "order", "orders", "spend", "minimum", "min",
];
const INSTALMENT_WORDS: &[&str] = &[
    "installments",
    "installment",
    "instalments",
    "instalment",
    "payments",
    "cuotas",
    "parcelas",
    "raten",
    "rate",
    "mensualités",
    "klarna",
    "afterpay",
];
const PER_WORDS: &[&str] = &[
    "per",
    "pro",
    "je",
    "mo",
    "month",
    "months",
    "monthly",
    "mth",
    "mes",
    "mês",
    "meses",
    "monat",
    "monatlich",
    "mois",
    "mese",
    "mnd",
    "miesięcznie",
    "mies",
    "kk",
    "kuukausi",
    "ay",
    "月",
    "tháng",
    "месяц",
    "мес",
];
const FREE_WORDS: &[&str] = &[
    "free",
    "gratis",
    "kostenlos",
    "gratuit",
    "gratuite",
    "gratuito",
    "gratuita",
    "grátis",
    "бесплатно",
    "Бесплатно",
    "безкоштовно",
    "darmowy",
    "darmowe",
    "zdarma",
    "ingyenes",
    "ücretsiz",
    "kostnadsfri",
    "ilmainen",
    "δωρεάν",
    "مجاني",
    "مجانا",
    "חינם",
    "ฟรี",
];
/// Scripts without spaces between words.
const FREE_GLUED: &[&str] = &["免费", "無料", "무료", "miễn phí", "Miễn phí", "免費"];

/// A run of digits and the separators between them, as printed.
#[derive(Debug)]
struct Number {
    /// Byte range in the text.
    span: (usize, usize),
    digits: [u8; MAX_DIGITS],
    len: usize,
    /// (digits before the separator, separator)
    seps: [(u8, Sep); MAX_SEPARATORS],
    nseps: usize,
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
    fn value(&self, code: Option<&str>) -> Option<(Decimal, bool)> {
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
enum Token {
    Number(Number),
    /// A byte range of a run of non-space, non-digit characters.
    Word(usize, usize),
}

impl Token {
    fn span(&self) -> (usize, usize) {
        match self {
            Token::Word(s, e) => (*s, *e),
            Token::Number(n) => n.span,
        }
    }

    fn word<'t>(&self, text: &'t str) -> Option<&'t str> {
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

fn tokenize(text: &str) -> Vec<Token> {
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

#[cfg(test)]
mod tests {
    use super::*;
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
