//! What the words near a number say it is: old, now, a saving, shipping, an instalment, a
//! unit price, free; the word lists by role, in the languages shops use.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::tokens::Token;
use crate::extract::currency::Fnv;

pub(super) fn trim(word: &str) -> &str {
    word.trim_matches(|c: char| !c.is_alphanumeric() && c != '&')
}

/// What a word says about the number near it, as bits.
pub(super) const OLD: u16 = 1;
pub(super) const NOW: u16 = 1 << 1;
pub(super) const SAVE: u16 = 1 << 2;
pub(super) const OFF: u16 = 1 << 3;
pub(super) const SHIPPING: u16 = 1 << 4;
pub(super) const INSTALMENTS: u16 = 1 << 5;
pub(super) const THRESHOLD: u16 = 1 << 6;
pub(super) const PER: u16 = 1 << 7;
pub(super) const FREE: u16 = 1 << 8;
/// "12x de R$ 108,25", "12 x 10,00 €": a count of instalments.
pub(super) const TIMES: u16 = 1 << 9;

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
pub(super) fn roles(word: &str) -> u16 {
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
pub(super) fn free(text: &str, tokens: &[Token]) -> bool {
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
