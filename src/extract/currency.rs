//! ISO 4217 codes and the symbols and words shops print instead of them.

use std::collections::HashMap;
use std::sync::LazyLock;

/// Active ISO 4217 codes (2025), so a three-letter word is only a currency when it is one, and
/// the Croatian kuna (HRK), retired in 2023, which older and saved pages still print.
const CODES: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD",
    "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ",
    "GYD", "HKD", "HNL", "HRK", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD",
    "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP",
    "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR",
    "MVR", "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB",
    "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD",
    "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL",
    "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU",
    "UZS", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW",
    "ZWG",
];

/// Currencies with three decimal places: there "1.250" is one and a quarter, not 1250.
const THREE_DECIMALS: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];

/// The canonical (static) spelling of an ISO 4217 code, if `code` is one.
pub fn code(code: &str) -> Option<&'static str> {
    CODES.binary_search(&code).ok().map(|i| CODES[i])
}

/// FNV-1a: the lookup tables hash short keys on the price parser's hot path, where SipHash's
/// protection against chosen keys buys nothing (the keys are ours).
#[derive(Default, Clone, Copy)]
pub struct FnvHasher(u64);

impl std::hash::Hasher for FnvHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

pub type Fnv = std::hash::BuildHasherDefault<FnvHasher>;

pub fn three_decimals(code: &str) -> bool {
    THREE_DECIMALS.contains(&code)
}

/// What a printed currency marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// The usual reading; None when no reading is usual enough (`kr`: SEK, NOK, DKK, ISK).
    pub code: Option<&'static str>,
    /// Several currencies print this marker, so a watcher's `currency` hint overrides it.
    pub ambiguous: bool,
}

/// Symbols, which shops glue to the number or to other text ("US$", "(€", "円)").
const SYMBOLS: &[(&str, Option<&str>, bool)] = &[
    ("$", Some("USD"), true),
    ("＄", Some("USD"), true),
    ("US$", Some("USD"), false),
    ("U$S", Some("USD"), false),
    ("C$", Some("CAD"), false),
    ("CA$", Some("CAD"), false),
    ("CAN$", Some("CAD"), false),
    ("A$", Some("AUD"), false),
    ("AU$", Some("AUD"), false),
    ("NZ$", Some("NZD"), false),
    ("HK$", Some("HKD"), false),
    ("S$", Some("SGD"), false),
    ("NT$", Some("TWD"), false),
    ("MX$", Some("MXN"), false),
    ("R$", Some("BRL"), false),
    ("RD$", Some("DOP"), false),
    ("$U", Some("UYU"), false),
    ("AR$", Some("ARS"), false),
    ("CLP$", Some("CLP"), false),
    ("COL$", Some("COP"), false),
    ("€", Some("EUR"), false),
    ("£", Some("GBP"), false),
    ("¥", Some("JPY"), true),
    ("￥", Some("JPY"), true),
    ("円", Some("JPY"), false),
    ("元", Some("CNY"), false),
    ("CN¥", Some("CNY"), false),
    ("JP¥", Some("JPY"), false),
    ("₹", Some("INR"), false),
    ("₽", Some("RUB"), false),
    ("₩", Some("KRW"), false),
    ("원", Some("KRW"), false),
    ("₺", Some("TRY"), false),
    ("₪", Some("ILS"), false),
    ("₫", Some("VND"), false),
    ("₱", Some("PHP"), false),
    ("฿", Some("THB"), false),
    ("₴", Some("UAH"), false),
    ("₸", Some("KZT"), false),
    ("₦", Some("NGN"), false),
    ("₡", Some("CRC"), false),
    ("₲", Some("PYG"), false),
    ("₾", Some("GEL"), false),
    ("₼", Some("AZN"), false),
    ("֏", Some("AMD"), false),
    ("৳", Some("BDT"), false),
    ("₭", Some("LAK"), false),
    ("₮", Some("MNT"), false),
    ("₵", Some("GHS"), false),
    ("﷼", Some("SAR"), true),
    (":-", Some("SEK"), true),
];

/// Words and abbreviations: matched only as a whole word, so "R" in "PR" or "lei" in
/// "leiden" is not a currency.
const WORDS: &[(&str, Option<&str>, bool)] = &[
    ("euro", Some("EUR"), false),
    ("euros", Some("EUR"), false),
    ("Euro", Some("EUR"), false),
    ("евро", Some("EUR"), false),
    ("zł", Some("PLN"), false),
    ("zl", Some("PLN"), false),
    ("Kč", Some("CZK"), false),
    ("Kc", Some("CZK"), false),
    ("Ft", Some("HUF"), false),
    ("kn", Some("HRK"), false),
    ("Kn", Some("HRK"), false),
    ("kn.", Some("HRK"), false),
    ("lei", Some("RON"), false),
    ("Lei", Some("RON"), false),
    ("leu", Some("RON"), false),
    ("kr", None, true),
    ("kr.", None, true),
    ("Kr", None, true),
    ("Kr.", None, true),
    ("лв", Some("BGN"), false),
    ("лв.", Some("BGN"), false),
    ("ден", Some("MKD"), false),
    ("ден.", Some("MKD"), false),
    ("дин", Some("RSD"), false),
    ("дин.", Some("RSD"), false),
    ("din", Some("RSD"), false),
    ("din.", Some("RSD"), false),
    ("руб", Some("RUB"), false),
    ("руб.", Some("RUB"), false),
    ("Руб", Some("RUB"), false),
    ("Руб.", Some("RUB"), false),
    ("рублей", Some("RUB"), false),
    ("рубля", Some("RUB"), false),
    ("рубль", Some("RUB"), false),
    ("р.", Some("RUB"), true),
    ("р", Some("RUB"), true),
    ("₽.", Some("RUB"), false),
    ("грн", Some("UAH"), false),
    ("грн.", Some("UAH"), false),
    ("гривень", Some("UAH"), false),
    ("тг", Some("KZT"), false),
    ("тг.", Some("KZT"), false),
    ("тенге", Some("KZT"), false),
    ("сом", Some("KGS"), false),
    ("сум", Some("UZS"), false),
    ("сўм", Some("UZS"), false),
    ("so'm", Some("UZS"), false),
    ("сомони", Some("TJS"), false),
    ("Br", Some("BYN"), true),
    ("ლ", Some("GEL"), false),
    ("TL", Some("TRY"), false),
    ("Rp", Some("IDR"), false),
    ("Rp.", Some("IDR"), false),
    ("RM", Some("MYR"), false),
    ("Rs", Some("INR"), true),
    ("Rs.", Some("INR"), true),
    ("रु", Some("NPR"), true),
    ("रु.", Some("NPR"), true),
    ("R", Some("ZAR"), true),
    ("KSh", Some("KES"), false),
    ("Ksh", Some("KES"), false),
    ("KShs", Some("KES"), false),
    ("USh", Some("UGX"), false),
    ("TSh", Some("TZS"), false),
    ("N", Some("NGN"), true),
    ("GH₵", Some("GHS"), false),
    ("CHF", Some("CHF"), false),
    ("Fr.", Some("CHF"), true),
    ("fr.", Some("CHF"), true),
    ("SFr.", Some("CHF"), false),
    ("Fr", Some("CHF"), true),
    ("S/", Some("PEN"), false),
    ("S/.", Some("PEN"), false),
    ("Bs", None, true),
    ("Bs.", None, true),
    ("Q", Some("GTQ"), true),
    ("L", Some("HNL"), true),
    ("Gs", Some("PYG"), false),
    ("Gs.", Some("PYG"), false),
    ("₲.", Some("PYG"), false),
    ("B/.", Some("PAB"), false),
    ("đ", Some("VND"), false),
    ("đồng", Some("VND"), false),
    ("VNĐ", Some("VND"), false),
    ("VNđ", Some("VND"), false),
    ("บาท", Some("THB"), false),
    ("ريال", Some("SAR"), true),
    ("ر.س", Some("SAR"), false),
    ("ر.س.", Some("SAR"), false),
    ("درهم", Some("AED"), true),
    ("د.إ", Some("AED"), false),
    ("د.إ.", Some("AED"), false),
    ("Dhs", Some("AED"), false),
    ("Dhs.", Some("AED"), false),
    ("AED.", Some("AED"), false),
    ("DH", Some("MAD"), false),
    ("Dh", Some("MAD"), false),
    ("dh", Some("MAD"), false),
    ("د.م.", Some("MAD"), false),
    ("د.م", Some("MAD"), false),
    ("جنيه", Some("EGP"), true),
    ("ج.م", Some("EGP"), false),
    ("ج.م.", Some("EGP"), false),
    ("دينار", None, true),
    ("د.ك", Some("KWD"), false),
    ("د.ك.", Some("KWD"), false),
    ("KD", Some("KWD"), false),
    ("د.ب", Some("BHD"), false),
    ("د.ب.", Some("BHD"), false),
    ("BD", Some("BHD"), false),
    ("ر.ق", Some("QAR"), false),
    ("ر.ق.", Some("QAR"), false),
    ("QR", Some("QAR"), false),
    ("ر.ع", Some("OMR"), false),
    ("ر.ع.", Some("OMR"), false),
    ("د.أ", Some("JOD"), false),
    ("د.ا", Some("JOD"), false),
    ("JD", Some("JOD"), false),
    ("د.ت", Some("TND"), false),
    ("DT", Some("TND"), false),
    ("د.ج", Some("DZD"), false),
    ("DA", Some("DZD"), false),
    ("ل.ل", Some("LBP"), false),
    ("ل.ل.", Some("LBP"), false),
    ("ع.د", Some("IQD"), false),
    ("د.ع", Some("IQD"), false),
    ("ریال", Some("IRR"), false),
    ("تومان", Some("IRR"), true),
    ("ש״ח", Some("ILS"), false),
    ("ש\"ח", Some("ILS"), false),
    ("שח", Some("ILS"), false),
    ("рупий", Some("INR"), false),
];

/// Longest symbol, in characters, worth trying as a prefix or suffix of a glued word.
pub const MAX_SYMBOL_CHARS: usize = 4;

static SYMBOL_MAP: LazyLock<HashMap<&'static str, Marker, Fnv>> = LazyLock::new(|| table(SYMBOLS));
static WORD_MAP: LazyLock<HashMap<&'static str, Marker, Fnv>> = LazyLock::new(|| {
    let mut map = table(WORDS);
    for code in CODES {
        map.entry(code).or_insert(Marker {
            code: Some(code),
            ambiguous: false,
        });
    }
    map
});

fn table(
    entries: &[(&'static str, Option<&'static str>, bool)],
) -> HashMap<&'static str, Marker, Fnv> {
    entries
        .iter()
        .map(|&(text, code, ambiguous)| {
            debug_assert!(code.is_none_or(|c| self::code(c).is_some()), "{text}");
            (text, Marker { code, ambiguous })
        })
        .collect()
}

/// A symbol ("€", "US$") exactly as given.
pub fn symbol(text: &str) -> Option<Marker> {
    SYMBOL_MAP.get(text).copied()
}

/// A whole word ("zł", "руб.", "CHF", "ر.س") or an ISO code; a lower-case code ("eur") is
/// accepted too, since some shops print it so.
pub fn word(text: &str) -> Option<Marker> {
    if let Some(marker) = WORD_MAP.get(text) {
        return Some(*marker);
    }
    if text.len() == 3 && text.bytes().all(|b| b.is_ascii_lowercase()) {
        let upper = [0, 1, 2].map(|i| text.as_bytes()[i].to_ascii_uppercase());
        let upper = std::str::from_utf8(&upper).unwrap_or_default();
        // Common English words that are also codes must not turn into money.
        if !matches!(
            text,
            "all" | "top" | "try" | "cup" | "pen" | "bob" | "mop" | "sos"
        ) {
            return code(upper).map(|code| Marker {
                code: Some(code),
                ambiguous: false,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_marker_names_a_known_code() {
        for (text, code, _) in SYMBOLS.iter().chain(WORDS) {
            if let Some(c) = code {
                assert!(self::code(c).is_some(), "{text} -> {c}");
            }
        }
        for (text, _, _) in SYMBOLS {
            assert!(text.chars().count() <= MAX_SYMBOL_CHARS, "{text}");
        }
    }

    #[test]
    fn codes_are_sorted_for_binary_search() {
        assert!(CODES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn codes_words_and_symbols() {
        assert_eq!(word("EUR").unwrap().code, Some("EUR"));
        assert_eq!(word("eur").unwrap().code, Some("EUR"));
        assert_eq!(word("all"), None);
        assert_eq!(word("руб.").unwrap().code, Some("RUB"));
        assert_eq!(symbol("R$").unwrap().code, Some("BRL"));
        assert!(symbol("$").unwrap().ambiguous);
        assert_eq!(word("kr").unwrap().code, None);
        assert!(three_decimals("KWD") && !three_decimals("EUR"));
    }
}
