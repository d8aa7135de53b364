//! The model of the parser's stack of open elements that tells the pass how deep an element
//! sits, with the end tags each start tag implies.

use std::ops::Range;

use super::MAX_DEPTH;
use super::elements::{INTEGRATION_POINTS, Kind, Name, flag, key};

/// How far down the stack a search for an element goes. Ordinary pages nest a few dozen levels;
/// past this, the pass stops looking rather than cost more than the parse it protects.
const SEARCH: usize = MAX_DEPTH + 64;

/// How to name an element in an end tag.
#[derive(Debug, Clone)]
pub(super) enum Tag {
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
pub(super) enum End {
    Keep,
    /// Leave it out, as its element was closed early; close these (top first) instead, which
    /// the parser still holds open inside it.
    Drop(Vec<Tag>),
}

/// The parser's stack of open elements, as far as the pass can tell.
#[derive(Default)]
pub(super) struct Model {
    stack: Vec<Entry>,
    /// Indexes into `stack` of the entries still open: the nesting the parser sees.
    open: Vec<usize>,
    /// Entries on the stack by kind, so that most searches end before they start.
    counts: [u32; KINDS],
    /// The shortest the stack has been since [`Model::mark`]: what a streaming reader keeps.
    low: usize,
    /// Whether an entry was taken out of the middle of the stack since [`Model::mark`].
    reordered: bool,
}

const KINDS: usize = Kind::Foreign as usize + 1;

impl Model {
    /// Whether tags are read as SVG or MathML here.
    pub(super) fn in_foreign(&self) -> bool {
        self.stack
            .last()
            .is_some_and(|top| top.foreign && !top.integration)
    }

    pub(super) fn has(&self, kind: Kind) -> bool {
        self.counts[kind as usize] > 0
    }

    /// Entries on the stack, open or not.
    pub(super) fn len(&self) -> usize {
        self.stack.len()
    }

    /// The name of the entry at `index` and whether it is foreign content.
    pub(super) fn entry(&self, index: usize) -> (&Tag, bool) {
        let entry = &self.stack[index];
        (&entry.name, entry.foreign)
    }

    /// Start watching what the stack does: [`Model::low`] and [`Model::reordered`] report from
    /// here on.
    pub(super) fn mark(&mut self) {
        self.low = self.stack.len();
        self.reordered = false;
    }

    pub(super) fn low(&self) -> usize {
        self.low
    }

    pub(super) fn reordered(&self) -> bool {
        self.reordered
    }

    /// Whether the parser would have a `p` to close for a `</p>`: without one it makes an empty
    /// paragraph.
    pub(super) fn p_in_scope(&self) -> bool {
        self.has(Kind::P)
            && self
                .in_scope(|e| e.kind == Kind::P, Some(Kind::Button))
                .is_some()
    }

    /// Whether every element on the stack is open: false once the nesting cap closed one early.
    pub(super) fn all_open(&self) -> bool {
        self.open.len() == self.stack.len()
    }

    pub(super) fn top_kind(&self) -> Option<Kind> {
        self.stack.last().map(|e| e.kind)
    }

    fn pop(&mut self) {
        self.pop_to(self.stack.len() - 1);
    }

    /// Pop entries down to and including `index`; the names of the open ones above it, top
    /// first.
    fn pop_to(&mut self, index: usize) -> Vec<Tag> {
        let mut open_above = Vec::new();
        self.low = self.low.min(index);
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
        self.reordered |= index + 1 != self.stack.len();
        let entry = self.stack.remove(index);
        self.low = self.low.min(index);
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
    pub(super) fn start(&mut self, name: &Name, self_closing: bool) -> Option<Tag> {
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
    pub(super) fn end(&mut self, name: &Name) -> End {
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
