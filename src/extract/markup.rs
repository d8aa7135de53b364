//! The one pass over a page's markup before html5ever parses it. It does two things:
//!
//! - **Scripts and style sheets are emptied.** They are often half of a product page's bytes
//!   and no field reads them (JSON data blocks aside), so the parser is spared that work.
//! - **Nesting is capped at [`MAX_DEPTH`], as browsers do.** html5ever looks through its stack
//!   of open elements for many start tags, so its cost grows with the square of the nesting:
//!   200,000 nested `<div>`s take minutes. Chromium's parser attaches an element that would
//!   sit deeper than 512 levels to its parent's parent instead, so deeper start tags become
//!   siblings; this pass does the same to the markup by closing the deepest open element just
//!   before such a start tag, and dropping the end tags of the elements it closed that way.
//!
//! To know how deep an element sits, the pass tokenizes tags as the HTML tokenizer does
//! (comments, raw text, quoted attributes, self-closing syntax) and keeps a model of the
//! parser's stack of open elements: void elements open nothing, and the implied end tags of
//! `p`, `li`, `dd`, `td`, `tr`, `option`, headings and the like close what the parser would
//! close. A page whose model never reaches the cap comes out byte for byte as it went in
//! (scripts aside), so ordinary pages parse exactly as before. The model is a close
//! approximation, not the parser itself; `dom` meters the parse for markup built to fool it.

use std::borrow::Cow;
use std::ops::Range;

/// The deepest nesting the parse builds: Chromium's `kMaximumHTMLParserDOMTreeDepth`.
pub const MAX_DEPTH: usize = 512;

/// How far down the stack a search for an element goes. Ordinary pages nest a few dozen levels;
/// past this, the pass stops looking rather than cost more than the parse it protects.
const SEARCH: usize = MAX_DEPTH + 64;

/// `html` prepared for the parse: with the contents of `<script>` and `<style>` removed when
/// `strip_inert` is set (except scripts that carry JSON data: `application/ld+json`,
/// `application/json`; the tags stay, so the document keeps its shape), and nesting capped at
/// [`MAX_DEPTH`]. Borrowed when nothing needed changing.
pub fn prepare(html: &str, strip_inert: bool) -> Cow<'_, str> {
    let mut pass = Pass {
        src: html,
        bytes: html.as_bytes(),
        out: Out::new(html),
        model: Model::default(),
        strip_inert,
    };
    pass.run();
    pass.out.finish()
}

/// The prepared text, copied only from the first change on.
struct Out<'a> {
    src: &'a str,
    text: Option<String>,
    /// Copied (or deliberately skipped) up to here.
    done: usize,
}

impl<'a> Out<'a> {
    fn new(src: &'a str) -> Self {
        Out {
            src,
            text: None,
            done: 0,
        }
    }

    fn text(&mut self) -> &mut String {
        let len = self.src.len();
        self.text.get_or_insert_with(|| String::with_capacity(len))
    }

    /// Leave out `src[from..to]`.
    fn skip(&mut self, from: usize, to: usize) {
        let (src, done) = (self.src, self.done);
        self.text().push_str(&src[done..from]);
        self.done = to;
    }

    /// Put `extra` in before `src[at..]`.
    fn insert(&mut self, at: usize, extra: &str) {
        let (src, done) = (self.src, self.done);
        let text = self.text();
        text.push_str(&src[done..at]);
        text.push_str(extra);
        self.done = at;
    }

    fn finish(self) -> Cow<'a, str> {
        match self.text {
            None => Cow::Borrowed(self.src),
            Some(mut text) => {
                text.push_str(&self.src[self.done..]);
                Cow::Owned(text)
            }
        }
    }
}

struct Pass<'a> {
    src: &'a str,
    bytes: &'a [u8],
    out: Out<'a>,
    model: Model,
    strip_inert: bool,
}

impl Pass<'_> {
    fn run(&mut self) {
        let mut at = 0;
        while let Some(lt) = find(self.bytes, b'<', at) {
            let Some(next) = self.token(lt) else { return };
            at = next;
        }
    }

    /// Handle the markup that starts with the `<` at `lt`; where to go on, or None at the end
    /// of the document.
    fn token(&mut self, lt: usize) -> Option<usize> {
        let bytes = self.bytes;
        match bytes.get(lt + 1) {
            Some(b'!') if bytes[lt..].starts_with(b"<!--") => comment_end(bytes, lt + 4),
            Some(b'!') if self.model.in_foreign() && bytes[lt..].starts_with(b"<![CDATA[") => {
                find_seq(bytes, b"]]>", lt + 9).map(|i| i + 3)
            }
            // Doctypes, CDATA outside SVG and MathML, and `<?...>` run to the next `>`.
            Some(b'!' | b'?') => find(bytes, b'>', lt + 2).map(|i| i + 1),
            Some(b'/') => match bytes.get(lt + 2) {
                Some(c) if c.is_ascii_alphabetic() => {
                    let name = Name::read(bytes, lt + 2);
                    let (gt, _) = tag_end(bytes, name.end())?;
                    self.end_tag(&name, lt, gt + 1);
                    Some(gt + 1)
                }
                Some(b'>') => Some(lt + 3),
                Some(_) => find(bytes, b'>', lt + 2).map(|i| i + 1),
                None => None,
            },
            Some(c) if c.is_ascii_alphabetic() => {
                let name = Name::read(bytes, lt + 1);
                let (gt, self_closing) = tag_end(bytes, name.end())?;
                self.start_tag(&name, self_closing, lt, gt + 1)
            }
            Some(_) => Some(lt + 1),
            None => None,
        }
    }

    /// A start tag spanning `lt..after`.
    fn start_tag(
        &mut self,
        name: &Name,
        self_closing: bool,
        lt: usize,
        after: usize,
    ) -> Option<usize> {
        let html = !self.model.in_foreign();
        // Script and style contents are skipped wherever they are, as they always were.
        let raw = match name.kind {
            Kind::Script | Kind::Style => true,
            Kind::RawText => html,
            // Everything after `<plaintext>` is text.
            Kind::Plaintext if html => return None,
            _ => false,
        };
        if !raw {
            if let Some(closed) = self.model.start(name, self_closing) {
                let close = self.end_tag_for(&closed);
                self.out.insert(lt, &close);
            }
            return Some(after);
        }
        let close = raw_text_end(self.bytes, after, &name.lower()[..name.len])?;
        let inert = matches!(name.kind, Kind::Script | Kind::Style)
            && !(name.kind == Kind::Script && carries_data(&self.src[name.end()..after]));
        if self.strip_inert && inert && close > after {
            self.out.skip(after, close);
        }
        // The element holds only text: it adds nothing to the nesting.
        let (gt, _) = tag_end(self.bytes, close + 2 + name.len)?;
        Some(gt + 1)
    }

    fn end_tag_for(&self, tag: &Tag) -> String {
        match tag {
            Tag::Source(name) => format!("</{}>", &self.src[name.clone()]),
            Tag::Implied(name) => format!("</{name}>"),
        }
    }

    /// An end tag spanning `lt..after`.
    fn end_tag(&mut self, name: &Name, lt: usize, after: usize) {
        if let End::Drop(still_open) = self.model.end(name) {
            // Its element was closed early; the ones the parser still holds open inside it are
            // closed here instead.
            let closes: String = still_open.iter().map(|t| self.end_tag_for(t)).collect();
            self.out.skip(lt, after);
            self.out.insert(after, &closes);
        }
    }
}

/// What sort of element a tag names, for the parser rules the model follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
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
mod flag {
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
const ELEMENTS: &[(&[u8], (Kind, u16))] = {
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
const INTEGRATION_POINTS: &[&[u8]] = &[
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
const fn key(name: &[u8]) -> u64 {
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

fn classify(key: u64) -> (Kind, u16) {
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
struct Name {
    at: usize,
    len: usize,
    key: u64,
    kind: Kind,
    flags: u16,
}

impl Name {
    fn read(bytes: &[u8], at: usize) -> Self {
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

    fn end(&self) -> usize {
        self.at + self.len
    }

    /// The lowercase name of an element whose text runs to its end tag (all are short).
    fn lower(&self) -> [u8; 8] {
        self.key.to_le_bytes()
    }
}

/// How to name an element in an end tag.
#[derive(Debug, Clone)]
enum Tag {
    /// As its start tag in the source does.
    Source(Range<usize>),
    /// An element the parser adds by itself, like the `tbody` around rows.
    Implied(&'static str),
}

/// One element on the model's stack.
struct Entry {
    name: Tag,
    key: u64,
    kind: Kind,
    flags: u16,
    foreign: bool,
    /// An SVG or MathML element whose children are HTML.
    integration: bool,
    /// Still open for the parser; false once the cap closed it early.
    open: bool,
}

/// What to do with an end tag.
enum End {
    Keep,
    /// Leave it out, as its element was closed early; close these (top first) instead, which
    /// the parser still holds open inside it.
    Drop(Vec<Tag>),
}

/// The parser's stack of open elements, as far as the pass can tell.
#[derive(Default)]
struct Model {
    stack: Vec<Entry>,
    /// Indexes into `stack` of the entries still open: the nesting the parser sees.
    open: Vec<usize>,
    /// Entries on the stack by kind, so that most searches end before they start.
    counts: [u32; KINDS],
}

const KINDS: usize = Kind::Foreign as usize + 1;

impl Model {
    /// Whether tags are read as SVG or MathML here.
    fn in_foreign(&self) -> bool {
        self.stack
            .last()
            .is_some_and(|top| top.foreign && !top.integration)
    }

    fn has(&self, kind: Kind) -> bool {
        self.counts[kind as usize] > 0
    }

    fn top_kind(&self) -> Option<Kind> {
        self.stack.last().map(|e| e.kind)
    }

    fn pop(&mut self) {
        self.pop_to(self.stack.len() - 1);
    }

    /// Pop entries down to and including `index`; the names of the open ones above it, top
    /// first.
    fn pop_to(&mut self, index: usize) -> Vec<Tag> {
        let mut open_above = Vec::new();
        while self.stack.len() > index {
            let entry = self.stack.pop().expect("not empty");
            self.counts[entry.kind as usize] -= 1;
            if entry.open {
                self.open.pop();
                if self.stack.len() > index {
                    open_above.push(entry.name);
                }
            }
        }
        open_above
    }

    /// Take the entry at `index` out of the middle of the stack.
    fn remove(&mut self, index: usize) -> Entry {
        let entry = self.stack.remove(index);
        self.counts[entry.kind as usize] -= 1;
        self.open.retain(|&i| i != index);
        for i in &mut self.open {
            if *i > index {
                *i -= 1;
            }
        }
        entry
    }

    fn push(&mut self, entry: Entry) {
        if entry.open {
            self.open.push(self.stack.len());
        }
        self.counts[entry.kind as usize] += 1;
        self.stack.push(entry);
    }

    /// The highest entry, within `SEARCH` of the top, for which `found` holds, unless `stop`
    /// holds for one above it first.
    fn find(&self, found: impl Fn(&Entry) -> bool, stop: impl Fn(&Entry) -> bool) -> Option<usize> {
        for (i, entry) in self.stack.iter().enumerate().rev().take(SEARCH) {
            if found(entry) {
                return Some(i);
            }
            if stop(entry) {
                return None;
            }
        }
        None
    }

    /// The highest entry `found` holds for within the default scope, widened by `edge`
    /// (`button` for button scope, `ul`/`ol` for list-item scope).
    fn in_scope(&self, found: impl Fn(&Entry) -> bool, edge: Option<Kind>) -> Option<usize> {
        self.find(found, |e| {
            e.flags & flag::SCOPE != 0 || Some(e.kind) == edge
        })
    }

    /// A start tag. When the cap closes the deepest open element to make room, its name in the
    /// source, to close it in the markup.
    fn start(&mut self, name: &Name, self_closing: bool) -> Option<Tag> {
        if self.in_foreign() {
            if name.flags & flag::BREAKOUT == 0 {
                return (!self_closing).then(|| self.admit(name, true)).flatten();
            }
            // An HTML tag ends the SVG or MathML it appears in.
            while self.in_foreign() {
                self.pop();
            }
        }
        self.close_implied(name);
        match name.kind {
            Kind::Void | Kind::Document => None,
            // Outside a table the parser ignores them.
            Kind::Cell | Kind::Row | Kind::Section | Kind::Caption
                if self.open_table().is_none() =>
            {
                None
            }
            Kind::Foreign if self_closing => None,
            Kind::Foreign => self.admit(name, true),
            Kind::Select => match self.open_select() {
                // A select inside a select closes it instead.
                Some(at) => {
                    self.pop_to(at);
                    None
                }
                None => self.admit(name, false),
            },
            // The parser ignores a form inside a form.
            Kind::Form if self.has(Kind::Form) && !self.has(Kind::Template) => None,
            _ => self.admit(name, false),
        }
    }

    /// Push a new element; at the cap, first close the deepest open one, so that the new
    /// element becomes its sibling.
    fn admit(&mut self, name: &Name, foreign: bool) -> Option<Tag> {
        let closed = if self.open.len() >= MAX_DEPTH {
            let deepest = self.open.pop().expect("at the cap");
            self.stack[deepest].open = false;
            Some(self.stack[deepest].name.clone())
        } else {
            None
        };
        let (flags, integration) = if foreign {
            let integration = INTEGRATION_POINTS.iter().any(|p| key(p) == name.key);
            (if integration { flag::SCOPE } else { 0 }, integration)
        } else {
            (name.flags, false)
        };
        self.push(Entry {
            name: Tag::Source(name.at..name.end()),
            key: name.key,
            // Inside SVG and MathML, HTML names mean nothing.
            kind: if foreign && name.kind != Kind::Foreign {
                Kind::Other
            } else {
                name.kind
            },
            flags,
            foreign,
            integration,
            open: true,
        });
        closed
    }

    fn open_table(&self) -> Option<usize> {
        if !self.has(Kind::Table) {
            return None;
        }
        self.find(|e| e.kind == Kind::Table, |e| e.kind == Kind::Template)
    }

    /// What a table part's start tag closes in the nearest table: the cell it is in (a table
    /// inside a cell aside), then a table the table before it, a row the row, a cell the cell,
    /// and a caption, section or column group whatever is open in the table.
    fn close_table_parts(&mut self, kind: Kind) {
        let Some(table) = self.open_table() else {
            return;
        };
        let lowest = |model: &Self, kinds: &[Kind]| {
            (table + 1..model.stack.len()).find(|&i| kinds.contains(&model.stack[i].kind))
        };
        if kind != Kind::Table
            && let Some(cell) = lowest(self, &[Kind::Cell])
        {
            self.pop_to(cell);
        }
        if lowest(self, &[Kind::Cell]).is_some() {
            return;
        }
        match kind {
            Kind::Table => {
                self.pop_to(table);
            }
            Kind::Caption | Kind::Section => {
                self.pop_to(table + 1);
            }
            Kind::Row | Kind::Cell => {
                let closed: &[Kind] = if kind == Kind::Row {
                    &[Kind::Row, Kind::Caption]
                } else {
                    &[Kind::Caption]
                };
                if let Some(at) = lowest(self, closed) {
                    self.pop_to(at);
                }
                // The parser adds the section and row that rows and cells need.
                if lowest(self, &[Kind::Section]).is_none() {
                    self.implied("tbody", Kind::Section);
                }
                if kind == Kind::Cell && lowest(self, &[Kind::Row]).is_none() {
                    self.implied("tr", Kind::Row);
                }
            }
            _ => {}
        }
    }

    fn implied(&mut self, name: &'static str, kind: Kind) {
        self.push(Entry {
            name: Tag::Implied(name),
            key: key(name.as_bytes()),
            kind,
            flags: flag::SPECIAL,
            foreign: false,
            integration: false,
            open: true,
        });
    }

    fn open_select(&self) -> Option<usize> {
        if !self.has(Kind::Select) {
            return None;
        }
        self.find(
            |e| e.kind == Kind::Select,
            |e| !matches!(e.kind, Kind::Option | Kind::Optgroup),
        )
    }

    /// The end tags a start tag implies: an open `p` before a block, the previous `li`, `dd`,
    /// `option`, cell or row, a heading inside a heading, an `a` inside an `a`, ...
    fn close_implied(&mut self, name: &Name) {
        use flag::*;
        match name.kind {
            Kind::Li | Kind::DdDt => {
                let kind = name.kind;
                if self.has(kind)
                    && let Some(at) = self.find(
                        |e| e.kind == kind,
                        |e| e.flags & SPECIAL != 0 && e.flags & THROUGH == 0,
                    )
                {
                    self.pop_to(at);
                }
            }
            Kind::Option if self.top_kind() == Some(Kind::Option) => self.pop(),
            Kind::Optgroup => {
                for kind in [Kind::Option, Kind::Optgroup] {
                    if self.top_kind() == Some(kind) {
                        self.pop();
                    }
                }
            }
            Kind::Table | Kind::Caption | Kind::Section | Kind::Row | Kind::Cell => {
                self.close_table_parts(name.kind)
            }
            Kind::Button => {
                if self.has(Kind::Button)
                    && let Some(at) = self.in_scope(|e| e.kind == Kind::Button, None)
                {
                    self.pop_to(at);
                }
            }
            Kind::A | Kind::Nobr => {
                let kind = name.kind;
                let stop = if kind == Kind::A { MARKER } else { SCOPE };
                if self.has(kind)
                    && let Some(at) = self.find(|e| e.kind == kind, |e| e.flags & stop != 0)
                {
                    self.adopt(at);
                }
            }
            Kind::Ruby => {
                while self.top_kind() == Some(Kind::Ruby) {
                    self.pop();
                }
            }
            _ => {}
        }
        if name.flags & CLOSES_P != 0
            && self.has(Kind::P)
            && let Some(at) = self.in_scope(|e| e.kind == Kind::P, Some(Kind::Button))
        {
            self.pop_to(at);
        }
        if name.kind == Kind::Heading && self.top_kind() == Some(Kind::Heading) {
            self.pop();
        }
    }

    /// The adoption agency closing the formatting element at `at`: with no block inside it, it
    /// and everything above it close; otherwise the block stays open and a copy of the
    /// formatting element is carried inside it, so the nesting stays as it was.
    fn adopt(&mut self, at: usize) {
        let block_inside = self.stack[at + 1..]
            .iter()
            .any(|e| e.flags & flag::SPECIAL != 0);
        if block_inside {
            let entry = self.remove(at);
            self.push(entry);
        } else {
            self.pop_to(at);
        }
    }

    /// An end tag: pop what the parser would pop.
    fn end(&mut self, name: &Name) -> End {
        use flag::*;
        let key = name.key;
        let named = |e: &Entry| e.key == key;
        let target = match name.kind {
            // Nothing of that kind is open: the parser ignores the end tag.
            kind if kind != Kind::Other && !self.has(kind) => None,
            Kind::Void | Kind::Document | Kind::Script | Kind::Style | Kind::RawText => None,
            Kind::P => self.in_scope(named, Some(Kind::Button)),
            Kind::Li => self.in_scope(named, Some(Kind::List)),
            // Any heading's end tag closes the open heading.
            Kind::Heading => self.in_scope(|e| e.kind == Kind::Heading, None),
            Kind::Cell | Kind::Row | Kind::Section | Kind::Caption | Kind::Table => {
                self.find(named, |e| matches!(e.kind, Kind::Table | Kind::Template))
            }
            Kind::Select => self.open_select(),
            Kind::Option => (self.top_kind() == Some(Kind::Option)).then(|| self.stack.len() - 1),
            Kind::Optgroup => {
                let n = self.stack.len();
                let below = n.checked_sub(2).map(|i| self.stack[i].kind);
                match (self.top_kind(), below) {
                    (Some(Kind::Optgroup), _) => Some(n - 1),
                    (Some(Kind::Option), Some(Kind::Optgroup)) => Some(n - 2),
                    _ => None,
                }
            }
            Kind::Form => {
                // The parser takes the form off the stack and leaves what is inside it open.
                if let Some(at) = self.in_scope(named, None) {
                    return match self.remove(at).open {
                        true => End::Keep,
                        false => End::Drop(Vec::new()),
                    };
                }
                None
            }
            _ if name.flags & FORMATTING != 0 => match self.in_scope(named, None) {
                Some(at) if self.stack[at + 1..].iter().any(|e| e.flags & SPECIAL != 0) => {
                    self.adopt(at);
                    return End::Keep;
                }
                found => found,
            },
            _ if name.flags & SPECIAL != 0 => self.in_scope(named, None),
            // Any other end tag closes the nearest element of its name, unless a special
            // element is open above that.
            _ => self.find(named, |e| e.flags & SPECIAL != 0),
        };
        let Some(at) = target else {
            return End::Keep;
        };
        if self.stack[at].open {
            self.pop_to(at);
            End::Keep
        } else {
            End::Drop(self.pop_to(at))
        }
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
}

/// The `>` that ends a tag whose attributes begin at `from`, and whether the tag ends in `/>`;
/// None when the document ends inside the tag. Quotes only count where an attribute value
/// starts, as in the HTML tokenizer: `<p title=a"b>` ends at its `>`.
fn tag_end(bytes: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let class = |i: usize| bytes.get(i).map(|&b| CLASS[b as usize]);
    loop {
        while class(i)? == SPACE {
            i += 1;
        }
        match bytes[i] {
            b'>' => return Some((i, false)),
            b'/' => {
                i += 1;
                if bytes.get(i) == Some(&b'>') {
                    return Some((i, true));
                }
                continue;
            }
            _ => {}
        }
        // An attribute name: its first character may be `=`.
        i += 1;
        while class(i)? & (SPACE | GT | SLASH | EQ) == 0 {
            i += 1;
        }
        while class(i)? == SPACE {
            i += 1;
        }
        if bytes[i] != b'=' {
            continue;
        }
        i += 1;
        while class(i)? == SPACE {
            i += 1;
        }
        match bytes[i] {
            quote @ (b'"' | b'\'') => i = find(bytes, quote, i + 1)? + 1,
            b'>' => return Some((i, false)),
            _ => {
                while class(i).is_some_and(|c| c & (SPACE | GT) == 0) {
                    i += 1;
                }
            }
        }
    }
}

/// What the tokenizer makes of a byte inside a tag.
const SPACE: u8 = 1;
const GT: u8 = 2;
const SLASH: u8 = 4;
const EQ: u8 = 8;

static CLASS: [u8; 256] = {
    let mut class = [0; 256];
    class[b' ' as usize] = SPACE;
    class[b'\t' as usize] = SPACE;
    class[b'\n' as usize] = SPACE;
    class[b'\r' as usize] = SPACE;
    class[0x0c] = SPACE;
    class[b'>' as usize] = GT;
    class[b'/' as usize] = SLASH;
    class[b'=' as usize] = EQ;
    class
};

/// Where the comment whose text starts at `from` (just after `<!--`) ends.
fn comment_end(bytes: &[u8], from: usize) -> Option<usize> {
    // `<!-->` and `<!--->` are empty comments.
    if bytes.get(from) == Some(&b'>') {
        return Some(from + 1);
    }
    if bytes.get(from..from + 2) == Some(b"->") {
        return Some(from + 2);
    }
    let mut at = from;
    while let Some(dashes) = find_seq(bytes, b"--", at) {
        match bytes.get(dashes + 2) {
            Some(b'>') => return Some(dashes + 3),
            Some(b'!') if bytes.get(dashes + 3) == Some(&b'>') => return Some(dashes + 4),
            _ => at = dashes + 1,
        }
    }
    None
}

/// Where the raw text that starts at `from` ends: the `<` of the first `</name` followed by a
/// space, `/` or `>`, ignoring case.
fn raw_text_end(bytes: &[u8], mut from: usize, name: &[u8]) -> Option<usize> {
    while let Some(lt) = find_seq(bytes, b"</", from) {
        let after = lt + 2 + name.len();
        if bytes
            .get(lt + 2..after)
            .is_some_and(|n| n.eq_ignore_ascii_case(name))
            && bytes
                .get(after)
                .is_some_and(|&b| is_space(b) || b == b'/' || b == b'>')
        {
            return Some(lt);
        }
        from = lt + 2;
    }
    None
}

/// A script whose type says it holds JSON: structured data that fields may read.
fn carries_data(attributes: &str) -> bool {
    attributes.to_ascii_lowercase().contains("json")
}

fn find(bytes: &[u8], needle: u8, from: usize) -> Option<usize> {
    let rest = bytes.get(from..)?;
    // Most gaps between tags and most attribute values are short: look at those bytes one by
    // one before paying for a vectorised search.
    let near = rest.len().min(16);
    if let Some(i) = rest[..near].iter().position(|&b| b == needle) {
        return Some(from + i);
    }
    memchr::memchr(needle, &rest[near..]).map(|i| from + near + i)
}

fn find_seq(bytes: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    memchr::memmem::find(bytes.get(from..)?, needle).map(|i| from + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use scraper::Html;

    /// The page as html5ever parses it, serialized: two strings are equal when the two trees
    /// are.
    fn tree(html: &str) -> String {
        Html::parse_document(html).html()
    }

    /// The nesting of the parsed tree: the most elements on one path from the root.
    fn depth(html: &str) -> usize {
        let parsed = Html::parse_document(html);
        parsed
            .tree
            .nodes()
            .filter(|n| n.value().is_element())
            .map(|n| n.ancestors().filter(|a| a.value().is_element()).count() + 1)
            .max()
            .unwrap_or(0)
    }

    /// `page` passes untouched (when nothing is stripped) and parses to the same tree.
    fn unchanged(page: &str) {
        let prepared = prepare(page, false);
        assert!(
            matches!(prepared, Cow::Borrowed(_)),
            "changed: {}",
            &prepared[..prepared.len().min(300)]
        );
        assert_eq!(tree(&prepared), tree(page));
    }

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

    #[test]
    fn scripts_and_styles_are_emptied_and_data_blocks_kept() {
        let page = concat!(
            "<head><style>.a{}</style><SCRIPT src=x.js></SCRIPT>",
            "<script type=\"application/ld+json\">{\"price\": 1}</script>",
            "<script id=\"__NEXT_DATA__\" type='application/json'>{}</script></head>",
            "<body><script>if (a < b && c > d) { x = \"</div>\"; }</script>",
            "<p class=\"price\">$5</p><scripts>not a script</scripts>",
            "<style media=\"x>y\">p{}</style><script>a = '</scripts>';</script></body>"
        );
        assert_eq!(
            prepare(page, true),
            concat!(
                "<head><style></style><SCRIPT src=x.js></SCRIPT>",
                "<script type=\"application/ld+json\">{\"price\": 1}</script>",
                "<script id=\"__NEXT_DATA__\" type='application/json'>{}</script></head>",
                "<body><script></script>",
                "<p class=\"price\">$5</p><scripts>not a script</scripts>",
                "<style media=\"x>y\"></style><script></script></body>"
            )
        );
    }

    #[test]
    fn a_page_without_scripts_is_not_copied_and_broken_tags_are_left_alone() {
        assert!(matches!(prepare("<p>plain</p>", true), Cow::Borrowed(_)));
        assert!(matches!(
            prepare("<p>x</p><script>never closed", true),
            Cow::Borrowed(_)
        ));
        assert!(matches!(prepare("<script", true), Cow::Borrowed(_)));
        assert_eq!(
            prepare("<style>a</style><script", true),
            "<style></style><script"
        );
    }

    #[test]
    fn ten_thousand_nested_divs_become_siblings_at_the_cap() {
        let n = 10_000;
        let page = format!(
            "<html><body>{}deep text{}<span class=price>$5</span></body></html>",
            "<div class=d>".repeat(n),
            "</div>".repeat(n)
        );
        let prepared = prepare(&page, true);
        let parsed = Html::parse_document(&prepared);
        let divs = scraper::Selector::parse("div.d").unwrap();
        assert_eq!(parsed.select(&divs).count(), n, "every div is kept");
        let deepest = depth(&prepared);
        assert!(
            (MAX_DEPTH..MAX_DEPTH + 4).contains(&deepest),
            "html, body and the capped nesting: {deepest}"
        );
        let text: String = parsed.root_element().text().collect();
        assert!(text.contains("deep text"));
        // What follows the nest is where it was: after it, in the body.
        let price = scraper::Selector::parse("body > span.price").unwrap();
        assert_eq!(parsed.select(&price).count(), 1);
    }

    #[test]
    fn below_the_cap_nothing_changes() {
        let n = MAX_DEPTH - 3;
        let page = format!("{}x{}", "<div>".repeat(n), "</div>".repeat(n));
        unchanged(&page);
        assert_eq!(depth(&page), n + 2);
    }

    /// Thousands of elements the parser closes by itself, or never opens, are not nesting: a
    /// page full of them parses exactly as before.
    #[test]
    fn implied_end_tags_void_elements_and_raw_text_do_not_count_as_nesting() {
        let n = 3 * MAX_DEPTH;
        let cases = [
            format!("<ul>{}</ul>", "<li>item".repeat(n)),
            format!("<dl>{}</dl>", "<dt>term<dd>def".repeat(n)),
            "<p>paragraph".repeat(n),
            format!("<select>{}</select>", "<option>o".repeat(n)),
            format!(
                "<select>{}</select>",
                "<optgroup label=g><option>a<option>b".repeat(n)
            ),
            format!("<table>{}</table>", "<tr><td>a<td>b<th>c".repeat(n)),
            format!("<table>{}</table>", "<tbody><tr><td>a</td><td>b".repeat(n)),
            "<h2>a<h3>b".repeat(n),
            "<a href=x>link".repeat(n),
            "<b><div>block</b>".repeat(4),
            "<br><img src=x><input><hr><meta charset=x><link rel=x><wbr>".repeat(n),
            "<div/>".repeat(MAX_DEPTH / 2) + &"</div>".repeat(MAX_DEPTH / 2),
            format!(
                "<svg>{}</svg>",
                "<path d='M0 0'/><g><circle r=1 /></g><rect/>".repeat(n)
            ),
            format!("<math>{}</math>", "<mi>x</mi><mo>+</mo>".repeat(n)),
            "<!-- <div><div><div> -->".repeat(n),
            "<title><div></title><textarea><div></textarea><noscript><div></noscript>".repeat(n),
            "<p title='<div>' data-x=\"a>b\" class=a\"b>x</p>".repeat(n),
            "<ruby>漢<rb>字<rt>kan<rp>(<rt>ji<rp>)</ruby>".repeat(n),
            "<button>a<button>b".repeat(n),
            "<form><form><input></form>".repeat(n),
            "<td>stray cell<tr>stray row".repeat(n),
            format!("<table>{}</table>", "<caption>c<colgroup><col>".repeat(n)),
            "<nobr>a<nobr>b".repeat(n),
            "<p>a<table><tr><td>b</table>".repeat(n),
        ];
        for page in cases {
            let page = format!("<!doctype html><html><body>{page}</body></html>");
            unchanged(&page);
            assert!(depth(&page) < MAX_DEPTH, "{}", &page[..200.min(page.len())]);
        }
    }

    #[test]
    fn deep_nesting_of_any_element_is_capped() {
        let n = 5 * MAX_DEPTH;
        for (open, close) in [
            ("<div>", "</div>"),
            ("<span>", "</span>"),
            ("<ul><li>", "</li></ul>"),
            ("<table><tr><td>", "</td></tr></table>"),
            ("<b>", "</b>"),
            ("<svg><g>", "</g></svg>"),
            ("<section><p>x", ""),
            // The parser ignores the span's end tag inside the div: the spans nest.
            ("<span><div></span></div>", ""),
            (
                "<custom-element-with-a-long-name>",
                "</custom-element-with-a-long-name>",
            ),
        ] {
            let page = format!("{}x{}", open.repeat(n), close.repeat(n));
            let deepest = depth(&prepare(&page, true));
            assert!(deepest <= MAX_DEPTH + 4, "{open}: {deepest}");
        }
    }

    /// Real product pages (set `PAGEHOOK_REAL_PAGES` to a directory of .html files): the
    /// prepared markup parses to the very tree the raw markup does.
    #[test]
    fn real_pages_parse_as_before() {
        let Some(dir) = std::env::var_os("PAGEHOOK_REAL_PAGES") else {
            eprintln!("skipped: set PAGEHOOK_REAL_PAGES to a directory of saved pages");
            return;
        };
        let mut pages = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let page = String::from_utf8_lossy(&bytes);
            unchanged(&page);
            pages += 1;
        }
        assert!(pages > 0);
    }
}
