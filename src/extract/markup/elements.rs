//! What the HTML parser's rules make of a tag name: its kind and the groups it belongs to,
//! looked up by a key read straight off the bytes.

use super::scan::{CLASS, GT, SLASH, SPACE};

/// What sort of element a tag names, for the parser rules the model follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Other,
    /// Opens nothing: `br`, `img`, `meta`, ...
    Void,
    /// `html`, `head`, `body`, `frameset`: the parser keeps one of each, whatever the tags say.
    Document,
    Script,
    Style,
    /// Text up to its end tag: `title`, `textarea`, `iframe`, `noscript`, `xmp`, ...
    RawText,
    Plaintext,
    P,
    Li,
    DdDt,
    Heading,
    Option,
    Optgroup,
    Select,
    Table,
    /// `td`, `th`
    Cell,
    Row,
    /// `tbody`, `thead`, `tfoot`
    Section,
    /// `caption`, `colgroup`: they start right under their table.
    Caption,
    Button,
    Form,
    Template,
    /// `rb`, `rp`, `rt`, `rtc`
    Ruby,
    /// `ul`, `ol`: the edge of list-item scope.
    List,
    A,
    Nobr,
    /// `svg`, `math`: foreign content, where self-closing tags do close.
    Foreign,
}

/// How the parser's rules group elements.
pub(super) mod flag {
    /// The "special" category: it ends the search of `li`, `dd` and most end tags.
    pub const SPECIAL: u16 = 1;
    /// The edge of the default scope.
    pub const SCOPE: u16 = 2;
    /// A start tag that closes an open `p`.
    pub const CLOSES_P: u16 = 4;
    /// Formatting elements: the adoption agency closes them.
    pub const FORMATTING: u16 = 8;
    /// In SVG or MathML, a start tag that returns to HTML.
    pub const BREAKOUT: u16 = 16;
    /// Where the search for an open `a` stops.
    pub const MARKER: u16 = 32;
    /// `address`, `div`, `p`: special, yet no end to the search of `li` and `dd`.
    pub const THROUGH: u16 = 64;
}

/// The elements the pass treats apart, with what the parser's rules group them by; any other
/// name is `(Kind::Other, 0)`.
pub(super) const ELEMENTS: &[(&[u8], (Kind, u16))] = {
    use flag::*;
    const BLOCK: u16 = SPECIAL | CLOSES_P;
    &[
        (b"br", (Kind::Void, SPECIAL | BREAKOUT)),
        (b"embed", (Kind::Void, SPECIAL | BREAKOUT)),
        (b"img", (Kind::Void, SPECIAL | BREAKOUT)),
        (b"meta", (Kind::Void, SPECIAL | BREAKOUT)),
        (b"hr", (Kind::Void, BLOCK | BREAKOUT)),
        (b"area", (Kind::Void, SPECIAL)),
        (b"base", (Kind::Void, SPECIAL)),
        (b"basefont", (Kind::Void, SPECIAL)),
        (b"bgsound", (Kind::Void, SPECIAL)),
        (b"col", (Kind::Void, SPECIAL)),
        (b"frame", (Kind::Void, SPECIAL)),
        (b"image", (Kind::Void, SPECIAL)),
        (b"input", (Kind::Void, SPECIAL)),
        (b"keygen", (Kind::Void, SPECIAL)),
        (b"link", (Kind::Void, SPECIAL)),
        (b"param", (Kind::Void, SPECIAL)),
        (b"source", (Kind::Void, SPECIAL)),
        (b"track", (Kind::Void, SPECIAL)),
        (b"wbr", (Kind::Void, SPECIAL)),
        (b"html", (Kind::Document, SPECIAL | BREAKOUT)),
        (b"head", (Kind::Document, SPECIAL | BREAKOUT)),
        (b"body", (Kind::Document, SPECIAL | BREAKOUT)),
        (b"frameset", (Kind::Document, SPECIAL | BREAKOUT)),
        (b"script", (Kind::Script, SPECIAL)),
        (b"style", (Kind::Style, SPECIAL)),
        (b"title", (Kind::RawText, SPECIAL)),
        (b"textarea", (Kind::RawText, SPECIAL)),
        (b"iframe", (Kind::RawText, SPECIAL)),
        (b"noscript", (Kind::RawText, SPECIAL)),
        (b"noembed", (Kind::RawText, SPECIAL)),
        (b"noframes", (Kind::RawText, SPECIAL)),
        (b"blockquote", (Kind::Other, BLOCK | BREAKOUT)),
        (b"center", (Kind::Other, BLOCK | BREAKOUT)),
        (b"dl", (Kind::Other, BLOCK | BREAKOUT)),
        (b"menu", (Kind::Other, BLOCK | BREAKOUT)),
        (b"pre", (Kind::Other, BLOCK | BREAKOUT)),
        (b"listing", (Kind::Other, BLOCK | BREAKOUT)),
        (b"xmp", (Kind::RawText, BLOCK)),
        (b"plaintext", (Kind::Plaintext, BLOCK)),
        (b"p", (Kind::P, BLOCK | BREAKOUT | THROUGH)),
        (b"li", (Kind::Li, BLOCK | BREAKOUT)),
        (b"dd", (Kind::DdDt, BLOCK | BREAKOUT)),
        (b"dt", (Kind::DdDt, BLOCK | BREAKOUT)),
        (b"h1", (Kind::Heading, BLOCK | BREAKOUT)),
        (b"h2", (Kind::Heading, BLOCK | BREAKOUT)),
        (b"h3", (Kind::Heading, BLOCK | BREAKOUT)),
        (b"h4", (Kind::Heading, BLOCK | BREAKOUT)),
        (b"h5", (Kind::Heading, BLOCK | BREAKOUT)),
        (b"h6", (Kind::Heading, BLOCK | BREAKOUT)),
        (b"option", (Kind::Option, 0)),
        (b"optgroup", (Kind::Optgroup, 0)),
        (b"select", (Kind::Select, SPECIAL)),
        (b"table", (Kind::Table, BLOCK | SCOPE | BREAKOUT)),
        (b"td", (Kind::Cell, SPECIAL | SCOPE | MARKER)),
        (b"th", (Kind::Cell, SPECIAL | SCOPE | MARKER)),
        (b"tr", (Kind::Row, SPECIAL)),
        (b"tbody", (Kind::Section, SPECIAL)),
        (b"thead", (Kind::Section, SPECIAL)),
        (b"tfoot", (Kind::Section, SPECIAL)),
        (b"caption", (Kind::Caption, SPECIAL | SCOPE | MARKER)),
        (b"colgroup", (Kind::Caption, SPECIAL)),
        (b"button", (Kind::Button, SPECIAL)),
        (b"form", (Kind::Form, BLOCK)),
        (b"template", (Kind::Template, SPECIAL | SCOPE | MARKER)),
        (b"rb", (Kind::Ruby, 0)),
        (b"rp", (Kind::Ruby, 0)),
        (b"rt", (Kind::Ruby, 0)),
        (b"rtc", (Kind::Ruby, 0)),
        (b"ul", (Kind::List, BLOCK | BREAKOUT)),
        (b"ol", (Kind::List, BLOCK | BREAKOUT)),
        (b"a", (Kind::A, FORMATTING)),
        (b"nobr", (Kind::Nobr, FORMATTING | BREAKOUT)),
        (b"svg", (Kind::Foreign, 0)),
        (b"math", (Kind::Foreign, 0)),
        (b"b", (Kind::Other, FORMATTING | BREAKOUT)),
        (b"big", (Kind::Other, FORMATTING | BREAKOUT)),
        (b"code", (Kind::Other, FORMATTING | BREAKOUT)),
        (b"em", (Kind::Other, FORMATTING | BREAKOUT)),
        (b"i", (Kind::Other, FORMATTING | BREAKOUT)),
        (b"s", (Kind::Other, FORMATTING | BREAKOUT)),
        (b"small", (Kind::Other, FORMATTING | BREAKOUT)),
        (b"strike", (Kind::Other, FORMATTING | BREAKOUT)),
        (b"strong", (Kind::Other, FORMATTING | BREAKOUT)),
        (b"tt", (Kind::Other, FORMATTING | BREAKOUT)),
        (b"u", (Kind::Other, FORMATTING | BREAKOUT)),
        (b"font", (Kind::Other, FORMATTING)),
        (b"applet", (Kind::Other, SPECIAL | SCOPE | MARKER)),
        (b"marquee", (Kind::Other, SPECIAL | SCOPE | MARKER)),
        (b"object", (Kind::Other, SPECIAL | SCOPE | MARKER)),
        (b"address", (Kind::Other, BLOCK | BREAKOUT | THROUGH)),
        (b"div", (Kind::Other, BLOCK | BREAKOUT | THROUGH)),
        (b"article", (Kind::Other, BLOCK)),
        (b"aside", (Kind::Other, BLOCK)),
        (b"details", (Kind::Other, BLOCK)),
        (b"dialog", (Kind::Other, BLOCK)),
        (b"dir", (Kind::Other, BLOCK)),
        (b"fieldset", (Kind::Other, BLOCK)),
        (b"figcaption", (Kind::Other, BLOCK)),
        (b"figure", (Kind::Other, BLOCK)),
        (b"footer", (Kind::Other, BLOCK)),
        (b"header", (Kind::Other, BLOCK)),
        (b"hgroup", (Kind::Other, BLOCK)),
        (b"main", (Kind::Other, BLOCK)),
        (b"nav", (Kind::Other, BLOCK)),
        (b"search", (Kind::Other, BLOCK)),
        (b"section", (Kind::Other, BLOCK)),
        (b"summary", (Kind::Other, BLOCK)),
        (b"ruby", (Kind::Other, BREAKOUT)),
        (b"span", (Kind::Other, BREAKOUT)),
        (b"sub", (Kind::Other, BREAKOUT)),
        (b"sup", (Kind::Other, BREAKOUT)),
        (b"var", (Kind::Other, BREAKOUT)),
    ]
};

/// The SVG and MathML elements whose children are HTML again.
pub(super) const INTEGRATION_POINTS: &[&[u8]] = &[
    b"foreignobject",
    b"desc",
    b"title",
    b"annotation-xml",
    b"mi",
    b"mo",
    b"mn",
    b"ms",
    b"mtext",
];

/// The key of a lowercase tag name: the name itself, up to 8 bytes; a hash (FNV-1a, with the
/// top bit set) of a longer one. A collision only makes the model a little less exact.
pub(super) const fn key(name: &[u8]) -> u64 {
    if name.len() <= 8 {
        let mut bytes = [0; 8];
        let mut i = 0;
        while i < name.len() {
            bytes[i] = name[i];
            i += 1;
        }
        return u64::from_le_bytes(bytes);
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < name.len() {
        hash = (hash ^ name[i] as u64).wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash | 1 << 63
}

/// `ELEMENTS` by key, open addressing in a table four times their number: one or two probes
/// per tag.
const SLOTS: usize = 512;

const fn slot(key: u64) -> usize {
    (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 55) as usize
}

static CLASSES: [(u64, (Kind, u16)); SLOTS] = {
    let mut table = [(0, (Kind::Other, 0)); SLOTS];
    let mut i = 0;
    while i < ELEMENTS.len() {
        let k = key(ELEMENTS[i].0);
        let mut at = slot(k);
        while table[at].0 != 0 {
            at = (at + 1) % SLOTS;
        }
        table[at] = (k, ELEMENTS[i].1);
        i += 1;
    }
    table
};

pub(super) fn classify(key: u64) -> (Kind, u16) {
    let mut at = slot(key);
    loop {
        match CLASSES[at] {
            (0, _) => return (Kind::Other, 0),
            (k, class) if k == key => return class,
            _ => at = (at + 1) % SLOTS,
        }
    }
}

/// A tag name as the tokenizer reads it: where it is, its key and what it names.
pub(super) struct Name {
    pub(super) at: usize,
    pub(super) len: usize,
    pub(super) key: u64,
    pub(super) kind: Kind,
    pub(super) flags: u16,
}

impl Name {
    pub(super) fn read(bytes: &[u8], at: usize) -> Self {
        let mut len = 0;
        let mut short = 0;
        for &b in &bytes[at..] {
            if CLASS[b as usize] & (SPACE | GT | SLASH) != 0 {
                break;
            }
            if len < 8 {
                short |= u64::from(b.to_ascii_lowercase()) << (8 * len);
            }
            len += 1;
        }
        let key = match len {
            0..=8 => short,
            _ => key(&bytes[at..at + len].to_ascii_lowercase()),
        };
        let (kind, flags) = classify(key);
        Name {
            at,
            len,
            key,
            kind,
            flags,
        }
    }

    pub(super) fn end(&self) -> usize {
        self.at + self.len
    }

    /// The lowercase name of an element whose text runs to its end tag (all are short).
    pub(super) fn lower(&self) -> [u8; 8] {
        self.key.to_le_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_element_of_the_table_is_found_by_its_name_in_any_case() {
        for (name, class) in ELEMENTS {
            let upper = name.to_ascii_uppercase();
            let read = Name::read(&[&upper[..], b">"].concat(), 0);
            assert_eq!(
                (read.kind, read.flags),
                *class,
                "{}",
                String::from_utf8_lossy(name)
            );
        }
        assert_eq!(classify(key(b"custom-element")), (Kind::Other, 0));
    }
}
