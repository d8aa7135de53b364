//! A streaming read of a page: the elements, text and script contents html5ever would build,
//! in document order, with the elements open around each, and no tree. It follows the same
//! tokenizer and model of the parser's stack as [`super::prepare`], and where the parser would
//! repair the tree in ways the model does not follow (the adoption agency, foster parenting,
//! formatting elements it re-opens, `<template>`, ...) it stops with [`Unsure`] instead of
//! guessing, so that the caller parses the page.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};

use super::MAX_DEPTH;
use super::chars::{Doubtful, decode, lines};
use super::elements::{Kind, Name, flag, key};
use super::model::{End, Model, Tag};
use super::scan::{CLASS, SPACE, carries_data, find, find_seq, raw_text_end, tag_end};
use super::token::{Token, token_at};

/// Why a streaming read gave the page to the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::extract) enum Unsure {
    /// Markup the parser repairs by rules the streaming read does not follow.
    Repaired(&'static str),
    /// A field matched an element the parser makes by itself (`html`, `head`, `body`).
    Implied,
    /// The page ends inside a tag, comment or script.
    Truncated,
    Stopped,
}

impl Unsure {
    /// Why the page was parsed, in words.
    pub(in crate::extract) fn describe(self) -> String {
        match self {
            Unsure::Repaired(what) => {
                format!("the page holds {what}, which only the parser reads right")
            }
            Unsure::Implied => "a field matches an element the parser makes by itself".into(),
            Unsure::Truncated => "the page ends inside a tag, comment or script".into(),
            Unsure::Stopped => "the read was stopped".into(),
        }
    }
}

impl From<Doubtful> for Unsure {
    fn from(_: Doubtful) -> Self {
        Unsure::Repaired("a character reference without its `;`")
    }
}

/// An element's attributes: lowercase names, decoded values, the first of each name.
pub(in crate::extract) type Attrs<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

/// An element as the parser makes it: its name and attributes as the tree holds them.
#[derive(Debug)]
pub(in crate::extract) struct Node<'a> {
    /// Lowercase.
    pub name: Cow<'a, str>,
    pub attrs: Attrs<'a>,
    pub foreign: bool,
    /// `html`, `head` or `body`, which the parser makes whatever the markup says.
    pub implied: bool,
    /// Its place among its parent's element children, from 0.
    pub index: usize,
    /// The name keys of its element children so far, for `:nth-child` and `:nth-of-type`.
    pub children: Vec<u64>,
    key: u64,
    flags: u16,
}

impl Node<'_> {
    pub(in crate::extract) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_ref())
    }

    pub(in crate::extract) fn key(&self) -> u64 {
        self.key
    }
}

/// What a streaming read is told, and what it asks.
pub(in crate::extract) trait Visitor<'a> {
    /// An element opened: the last of `open`, inside the others.
    fn element(&mut self, open: &[Node<'a>]) -> Result<(), Unsure>;
    /// Elements closed: `len` are still open.
    fn closed(&mut self, len: usize);
    /// Whether text is wanted now; text is decoded only then.
    fn wants_text(&self) -> bool;
    /// Text inside the open elements.
    fn text(&mut self, text: &str);
    /// The contents of a `<script>` that carries data (JSON), whose element is `script`.
    fn data_script(&mut self, script: &Node<'a>, contents: Cow<'a, str>);
    /// Nothing more is needed: the read ends here.
    fn done(&self) -> bool;
}

/// Elements the parser puts in `<head>` while it is still reading the head.
const HEAD: &[&[u8]] = &[
    b"base",
    b"basefont",
    b"bgsound",
    b"link",
    b"meta",
    b"noframes",
    b"script",
    b"style",
    b"template",
    b"title",
    b"noscript",
];

/// SVG element names the parser writes in camel case (`clipPath`): a lowercase selector never
/// matches them.
const CAMEL_TAGS: &[&str] = &[
    "altglyph",
    "altglyphdef",
    "altglyphitem",
    "animatecolor",
    "animatemotion",
    "animatetransform",
    "clippath",
    "feblend",
    "fecolormatrix",
    "fecomponenttransfer",
    "fecomposite",
    "feconvolvematrix",
    "fediffuselighting",
    "fedisplacementmap",
    "fedistantlight",
    "fedropshadow",
    "feflood",
    "fefunca",
    "fefuncb",
    "fefuncg",
    "fefuncr",
    "fegaussianblur",
    "feimage",
    "femerge",
    "femergenode",
    "femorphology",
    "feoffset",
    "fepointlight",
    "fespecularlighting",
    "fespotlight",
    "fetile",
    "feturbulence",
    "foreignobject",
    "glyphref",
    "lineargradient",
    "radialgradient",
    "textpath",
];

/// Attribute names of SVG the parser writes in camel case (`viewBox`): a lowercase selector
/// never matches them. MathML has one, `definitionURL`.
const CAMEL_ATTRS: &[&str] = &[
    "attributename",
    "attributetype",
    "basefrequency",
    "baseprofile",
    "calcmode",
    "clippathunits",
    "diffuseconstant",
    "edgemode",
    "filterunits",
    "glyphref",
    "gradienttransform",
    "gradientunits",
    "kernelmatrix",
    "kernelunitlength",
    "keypoints",
    "keysplines",
    "keytimes",
    "lengthadjust",
    "limitingconeangle",
    "markerheight",
    "markerunits",
    "markerwidth",
    "maskcontentunits",
    "maskunits",
    "numoctaves",
    "pathlength",
    "patterncontentunits",
    "patterntransform",
    "patternunits",
    "pointsatx",
    "pointsaty",
    "pointsatz",
    "preservealpha",
    "preserveaspectratio",
    "primitiveunits",
    "refx",
    "refy",
    "repeatcount",
    "repeatdur",
    "requiredextensions",
    "requiredfeatures",
    "specularconstant",
    "specularexponent",
    "spreadmethod",
    "startoffset",
    "stddeviation",
    "stitchtiles",
    "surfacescale",
    "systemlanguage",
    "tablevalues",
    "targetx",
    "targety",
    "textlength",
    "viewbox",
    "viewtarget",
    "xchannelselector",
    "ychannelselector",
    "zoomandpan",
];

/// Read `html` as the parser would, telling `visitor`. Script and style contents count as text
/// only when `strip_inert` is unset, as in [`super::prepare`].
pub(in crate::extract) fn walk<'a>(
    html: &'a str,
    strip_inert: bool,
    stop: &AtomicBool,
    visitor: &mut impl Visitor<'a>,
) -> Result<(), Unsure> {
    if memchr::memchr(0, html.as_bytes()).is_some() {
        return Err(Unsure::Repaired("a NUL character"));
    }
    let mut walk = Walk {
        src: html,
        bytes: html.as_bytes(),
        model: Model::default(),
        open: vec![implied("html", Vec::new(), 0)],
        body: false,
        standard: None,
        strip_inert,
        text_from: 0,
        form_open: false,
    };
    walk.run(stop, visitor)
}

struct Walk<'a> {
    src: &'a str,
    bytes: &'a [u8],
    model: Model,
    /// `html`, then `head` or `body` once made, then the model's stack.
    open: Vec<Node<'a>>,
    /// Whether the parser has begun the body.
    body: bool,
    /// Whether the page began with `<!doctype html>`; without it the parser is in quirks mode,
    /// where a table does not close a paragraph.
    standard: Option<bool>,
    strip_inert: bool,
    /// Text runs from here to the next token.
    text_from: usize,
    /// Whether a form has been opened and not yet ended by `</form>`: the parser's form pointer.
    form_open: bool,
}

/// How many tokens pass between looks at the stop flag.
const STOP_EVERY: u32 = 4096;

fn implied<'a>(name: &'static str, attrs: Attrs<'a>, index: usize) -> Node<'a> {
    Node {
        name: Cow::Borrowed(name),
        attrs,
        foreign: false,
        implied: true,
        index,
        children: Vec::new(),
        key: key(name.as_bytes()),
        flags: flag::SPECIAL,
    }
}

impl<'a> Walk<'a> {
    fn run(&mut self, stop: &AtomicBool, visitor: &mut impl Visitor<'a>) -> Result<(), Unsure> {
        let mut at = 0;
        let mut tokens = 0u32;
        while let Some(lt) = find(self.bytes, b'<', at) {
            if visitor.done() {
                let (html, body) = (usize::from(self.open.len() == 1), usize::from(!self.body));
                return match merges_later(&self.bytes[lt..], html, body) {
                    true => Err(Unsure::Repaired("a later <html> or <body> with attributes")),
                    false => Ok(()),
                };
            }
            tokens = tokens.wrapping_add(1);
            if tokens % STOP_EVERY == 0 && stop.load(Ordering::Relaxed) {
                return Err(Unsure::Stopped);
            }
            at = self.token(lt, visitor)?.ok_or(Unsure::Truncated)?;
        }
        self.text(self.text_from, self.bytes.len(), visitor)?;
        // The end of the document closes everything.
        if !self.body {
            self.begin_body(Vec::new(), visitor)?;
        }
        visitor.closed(0);
        Ok(())
    }

    /// The markup that starts with the `<` at `lt`: where to go on, None at the end of the
    /// document.
    fn token(
        &mut self,
        lt: usize,
        visitor: &mut impl Visitor<'a>,
    ) -> Result<Option<usize>, Unsure> {
        match token_at(self.bytes, lt, self.model.in_foreign()) {
            Token::Text => Ok(Some(lt + 1)),
            Token::Cdata { .. } => Err(Unsure::Repaired("CDATA in SVG or MathML")),
            Token::Skip { end } => {
                // The text before it first: text before a doctype means quirks mode.
                let next = self.skip(lt, Some(end), visitor)?;
                // A doctype (not a comment, which the parser passes over) sets the mode.
                if self.standard.is_none()
                    && self.bytes[lt + 1] == b'!'
                    && !self.bytes[lt..].starts_with(b"<!--")
                {
                    self.standard = Some(is_standard_doctype(&self.src[lt..end]));
                }
                Ok(next)
            }
            Token::EndTag { name, gt } => {
                self.text(self.text_from, lt, visitor)?;
                self.text_from = gt + 1;
                self.end_tag(&name, visitor)?;
                Ok(Some(gt + 1))
            }
            Token::StartTag {
                name,
                gt,
                self_closing,
            } => {
                self.text(self.text_from, lt, visitor)?;
                self.text_from = gt + 1;
                self.start_tag(&name, self_closing, gt, visitor)
            }
            Token::Eof => Ok(None),
        }
    }

    /// Markup from `lt` that is not a tag (a comment, a doctype), ending at `end`.
    fn skip(
        &mut self,
        lt: usize,
        end: Option<usize>,
        visitor: &mut impl Visitor<'a>,
    ) -> Result<Option<usize>, Unsure> {
        self.text(self.text_from, lt, visitor)?;
        self.text_from = end.unwrap_or(lt);
        Ok(end)
    }

    /// The text `src[from..to]`.
    fn text(
        &mut self,
        from: usize,
        to: usize,
        visitor: &mut impl Visitor<'a>,
    ) -> Result<(), Unsure> {
        if from >= to {
            return Ok(());
        }
        let raw = &self.src[from..to];
        let blank = raw.bytes().all(|b| CLASS[b as usize] == SPACE);
        if !blank {
            // Text before any doctype leaves the parser in quirks mode.
            self.standard.get_or_insert(false);
            if !self.body {
                self.begin_body(Vec::new(), visitor)?;
            }
            if matches!(
                self.model.top_kind(),
                Some(Kind::Table | Kind::Section | Kind::Row)
            ) || self.in_colgroup()
            {
                return Err(Unsure::Repaired("text inside a table outside its cells"));
            }
        }
        if visitor.wants_text() {
            visitor.text(&decode(raw)?);
        }
        Ok(())
    }

    /// Start the body, as the first content that cannot go in the head does.
    fn begin_body(
        &mut self,
        attrs: Attrs<'a>,
        visitor: &mut impl Visitor<'a>,
    ) -> Result<(), Unsure> {
        if self.model.len() > 0 {
            return Err(Unsure::Repaired("an element left open in the head"));
        }
        self.head(visitor)?;
        self.open.truncate(1);
        self.open[0].children.push(key(b"body"));
        self.open.push(implied("body", attrs, 1));
        self.body = true;
        visitor.element(&self.open)
    }

    /// Make the head, if it is not made yet.
    fn head(&mut self, visitor: &mut impl Visitor<'a>) -> Result<(), Unsure> {
        if self.open.len() > 1 {
            return Ok(());
        }
        self.head_with(Vec::new(), visitor)
    }

    fn head_with(
        &mut self,
        attrs: Attrs<'a>,
        visitor: &mut impl Visitor<'a>,
    ) -> Result<(), Unsure> {
        visitor.element(&self.open[..1])?;
        self.open[0].children.push(key(b"head"));
        self.open.push(implied("head", attrs, 0));
        visitor.element(&self.open)
    }

    fn start_tag(
        &mut self,
        name: &Name,
        self_closing: bool,
        gt: usize,
        visitor: &mut impl Visitor<'a>,
    ) -> Result<Option<usize>, Unsure> {
        let after = gt + 1;
        let html = !self.model.in_foreign();
        let standard = *self.standard.get_or_insert(false);
        let attrs = attributes(self.src, name.end(), gt)?;
        let written = &self.src[name.at..name.end()];
        if html {
            match name.kind {
                Kind::Document => {
                    return self
                        .document_tag(written, attrs, visitor)
                        .map(|()| Some(after));
                }
                Kind::Template => return Err(Unsure::Repaired("a <template>")),
                Kind::Plaintext => return Err(Unsure::Repaired("a <plaintext>")),
                _ => {}
            }
            if let Some(why) = self.unfollowed_start(name, written) {
                return Err(Unsure::Repaired(why));
            }
            if name.kind == Kind::Table && !standard && self.model.p_in_scope() {
                return Err(Unsure::Repaired(
                    "a table inside a paragraph in quirks mode",
                ));
            }
            // Outside a column group the parser drops a `<col>` or makes a column group for
            // it, and it drops a `<frame>` outside a frameset; in a column group anything but a
            // `<col>` is moved out of the table.
            let col = written.eq_ignore_ascii_case("col");
            if col != self.in_colgroup() || written.eq_ignore_ascii_case("frame") {
                return Err(Unsure::Repaired(
                    "a <col> outside a column group, or something else inside one",
                ));
            }
            let in_head = HEAD
                .iter()
                .any(|h| written.as_bytes().eq_ignore_ascii_case(h));
            if !self.body && !in_head {
                self.begin_body(Vec::new(), visitor)?;
            }
            if !self.body {
                self.head(visitor)?;
            }
            if self.model.has(Kind::Select)
                && !matches!(
                    name.kind,
                    Kind::Option | Kind::Optgroup | Kind::Script | Kind::Select
                )
            {
                return Err(Unsure::Repaired(
                    "a tag inside a <select> the parser leaves out",
                ));
            }
            if matches!(
                self.model.top_kind(),
                Some(Kind::Table | Kind::Section | Kind::Row)
            ) && !matches!(
                name.kind,
                Kind::Table
                    | Kind::Section
                    | Kind::Row
                    | Kind::Cell
                    | Kind::Caption
                    | Kind::Script
                    | Kind::Style
            ) {
                return Err(Unsure::Repaired(
                    "an element the parser moves out of a table",
                ));
            }
        }
        let raw = match name.kind {
            Kind::Script | Kind::Style => true,
            Kind::RawText => html,
            _ => false,
        };
        // A tag that ends the SVG or MathML it stands in is HTML again.
        let foreign = (!html && name.flags & flag::BREAKOUT == 0) || name.kind == Kind::Foreign;
        let mut attrs = attrs;
        let mut name_text = lowercase(written);
        let svg = match self.foreign_root() {
            Some(root) => root == "svg",
            None => name_text == "svg",
        };
        if !html && let Some(why) = foreign_unfollowed(&name_text, svg) {
            return Err(Unsure::Repaired(why));
        }
        if foreign {
            // The parser puts these in a namespace, or writes them in camel case: no selector
            // without a namespace, in lower case, reaches them.
            attrs.retain(|(n, _)| {
                let namespaced = ["xlink:", "xml:", "xmlns:"]
                    .iter()
                    .any(|p| n.starts_with(p))
                    || n == "xmlns";
                let camel = match svg {
                    true => CAMEL_ATTRS.contains(&n.as_ref()),
                    false => n == "definitionurl",
                };
                !namespaced && !camel
            });
            if svg && CAMEL_TAGS.contains(&name_text.as_ref()) {
                // Kept out of reach of any lowercase selector, as the parser's name is.
                name_text = Cow::Owned(format!("{name_text}\u{0}camel"));
            }
        }
        let node = Node {
            name: name_text,
            attrs,
            foreign,
            implied: false,
            index: 0,
            children: Vec::new(),
            key: name.key,
            flags: name.flags,
        };
        if raw {
            return self.raw_element(name, node, after, html, visitor);
        }
        if html && ["pre", "listing"].contains(&node.name.as_ref()) {
            // The parser drops a line break right after the start tag.
            self.text_from = after + newline_at(self.bytes, after);
        }
        if self.model.len() + 1 >= MAX_DEPTH || !self.model.all_open() {
            return Err(Unsure::Repaired("nesting deeper than the parser builds"));
        }
        self.model.mark();
        if self.model.start(name, self_closing).is_some() {
            return Err(Unsure::Repaired("nesting deeper than the parser builds"));
        }
        self.sync(None, visitor)?;
        let pushed = (self.model.len() > 0).then(|| self.model.entry(self.model.len() - 1));
        match pushed {
            Some((Tag::Source(range), _)) if range.start == name.at => {
                self.push(node, visitor)?;
            }
            _ if name.kind == Kind::Void || (node.foreign && self_closing) => {
                // An element that holds nothing: it opens and closes at once.
                let len = self.open.len();
                self.push(node, visitor)?;
                self.open.truncate(len);
                visitor.closed(len);
            }
            // A tag the parser ignores (a cell outside a table, a form in a form).
            _ => {}
        }
        debug_assert_eq!(self.open.len() - self.prefix(), self.model.len());
        Ok(Some(after))
    }

    /// `<html>`, `<head>`, `<body>`, `<frameset>`: the parser has one of each.
    fn document_tag(
        &mut self,
        written: &str,
        attrs: Attrs<'a>,
        visitor: &mut impl Visitor<'a>,
    ) -> Result<(), Unsure> {
        let made = match written.to_ascii_lowercase().as_str() {
            "html" if self.open.len() == 1 && self.open[0].attrs.is_empty() => {
                self.open[0].attrs = attrs;
                return Ok(());
            }
            "head" if self.open.len() == 1 => return self.head_with(attrs, visitor),
            "body" if !self.body => return self.begin_body(attrs, visitor),
            "frameset" => return Err(Unsure::Repaired("a <frameset>")),
            _ => attrs.is_empty(),
        };
        // A second one adds its attributes to the first.
        match made {
            true => Ok(()),
            false => Err(Unsure::Repaired(
                "a repeated <html> or <body> with attributes",
            )),
        }
    }

    /// A script, style, title, textarea, noscript, ...: an element that holds only text.
    fn raw_element(
        &mut self,
        name: &Name,
        node: Node<'a>,
        after: usize,
        html: bool,
        visitor: &mut impl Visitor<'a>,
    ) -> Result<Option<usize>, Unsure> {
        let Some(close) = raw_text_end(self.bytes, after, &name.lower()[..name.len]) else {
            return Ok(None);
        };
        let mut contents = &self.src[after..close];
        if html
            && name.kind == Kind::RawText
            && self.src[name.at..name.end()].eq_ignore_ascii_case("textarea")
        {
            contents = &contents[newline_at(self.bytes, after).min(contents.len())..];
        }
        let is_script = name.kind == Kind::Script;
        let data = is_script && carries_data(&self.src[name.end()..after]);
        if !html && (!self.strip_inert || data) {
            return Err(Unsure::Repaired("a script or style inside SVG or MathML"));
        }
        // After `<!--`, a `<script` makes the tokenizer skip the next `</script>`.
        if data
            && let Some(opener) = find_seq(contents.as_bytes(), b"<!--", 0)
            && contents[opener..].to_ascii_lowercase().contains("<script")
        {
            return Err(Unsure::Repaired(
                "a script tag inside a commented-out script",
            ));
        }
        let len = self.open.len();
        self.push(node, visitor)?;
        let inert = matches!(name.kind, Kind::Script | Kind::Style) && !data;
        if !(contents.is_empty() || inert && self.strip_inert) && visitor.wants_text() {
            // Only a title's and a textarea's references are decoded.
            let rcdata = ["title", "textarea"].contains(&self.open[len].name.as_ref());
            match rcdata {
                true => visitor.text(&decode(contents)?),
                false => visitor.text(&lines(contents)),
            }
        }
        if data {
            visitor.data_script(&self.open[len], lines(contents));
        }
        self.open.truncate(len);
        visitor.closed(len);
        let (gt, _) = tag_end(self.bytes, close + 2 + name.len).ok_or(Unsure::Truncated)?;
        self.text_from = gt + 1;
        Ok(Some(gt + 1))
    }

    fn end_tag(&mut self, name: &Name, visitor: &mut impl Visitor<'a>) -> Result<(), Unsure> {
        let written = &self.src[name.at..name.end()];
        if self.model.in_foreign()
            && (written.eq_ignore_ascii_case("p") || written.eq_ignore_ascii_case("br"))
        {
            return Err(Unsure::Repaired("a </p> or </br> inside SVG or MathML"));
        }
        if self.model.has(Kind::Select)
            && !matches!(name.kind, Kind::Option | Kind::Optgroup | Kind::Select)
        {
            return Err(Unsure::Repaired("an end tag inside a <select>"));
        }
        if matches!(name.kind, Kind::Option | Kind::Optgroup) && !self.model.has(Kind::Select) {
            return Err(Unsure::Repaired("an option outside a <select>"));
        }
        if name.kind == Kind::Form {
            self.form_open = false;
        }
        if !self.model.in_foreign() {
            match name.kind {
                Kind::P if !self.model.p_in_scope() => {
                    return Err(Unsure::Repaired("a </p> with no paragraph open"));
                }
                Kind::Void if self.src[name.at..name.end()].eq_ignore_ascii_case("br") => {
                    return Err(Unsure::Repaired("a </br>"));
                }
                _ => {}
            }
        }
        self.model.mark();
        if let End::Drop(_) = self.model.end(name) {
            return Err(Unsure::Repaired("nesting deeper than the parser builds"));
        }
        self.sync(Some(name.key), visitor)
    }

    /// Why the parser would treat this HTML start tag by rules the model does not follow.
    fn unfollowed_start(&mut self, name: &Name, written: &str) -> Option<&'static str> {
        match name.kind {
            Kind::Option | Kind::Optgroup if !self.model.has(Kind::Select) => {
                Some("an option outside a <select>")
            }
            Kind::Ruby => Some("ruby annotations"),
            // The parser's form pointer outlives an implied close of the form.
            Kind::Form if self.form_open => Some("a form inside a form"),
            Kind::Form => {
                self.form_open = true;
                None
            }
            Kind::Table if self.model.has(Kind::Caption) => Some("a table inside a caption"),
            _ if written.eq_ignore_ascii_case("image") || written.eq_ignore_ascii_case("xmp") => {
                Some("an <image> or <xmp>")
            }
            _ => None,
        }
    }

    fn in_colgroup(&self) -> bool {
        self.open
            .last()
            .is_some_and(|n| n.name == "colgroup" && !n.foreign)
    }

    /// The name of the SVG or MathML element the open foreign content starts at.
    fn foreign_root(&self) -> Option<&str> {
        self.open
            .iter()
            .rev()
            .take_while(|n| n.foreign)
            .last()
            .map(|n| n.name.as_ref())
    }

    /// Bring the open elements in line with the model after a tag: close what it closed. A
    /// formatting element (`b`, `a`, `em`, ...) closed by anything but its own end tag is one
    /// the parser re-opens further on.
    fn sync(&mut self, own_end: Option<u64>, visitor: &mut impl Visitor<'a>) -> Result<(), Unsure> {
        if self.model.reordered() {
            return Err(Unsure::Repaired("mis-nested formatting tags"));
        }
        let keep = self.prefix() + self.model.low();
        if keep < self.open.len() {
            for (i, node) in self.open[keep..].iter().enumerate() {
                let own = i == 0 && own_end == Some(node.key);
                if node.flags & flag::FORMATTING != 0 && !own {
                    return Err(Unsure::Repaired("a formatting element the parser re-opens"));
                }
            }
            self.open.truncate(keep);
            visitor.closed(keep);
        }
        for index in self.model.low()..self.model.len() {
            match self.model.entry(index) {
                (Tag::Implied(name), _) => {
                    let node = Node {
                        implied: false,
                        ..implied(name, Vec::new(), 0)
                    };
                    self.push(node, visitor)?;
                }
                (Tag::Source(_), _) => break,
            }
        }
        Ok(())
    }

    /// How many of the open elements come before the model's stack: `html`, and `head` or
    /// `body` once made.
    fn prefix(&self) -> usize {
        self.open.iter().take_while(|n| n.implied).count()
    }

    /// Open `node` inside the open elements and tell the visitor.
    fn push(&mut self, mut node: Node<'a>, visitor: &mut impl Visitor<'a>) -> Result<(), Unsure> {
        let parent = self.open.last_mut().expect("html is always open");
        node.index = parent.children.len();
        parent.children.push(node.key);
        self.open.push(node);
        visitor.element(&self.open)
    }
}

/// Whether a doctype is `<!doctype html>`, which keeps the parser out of quirks mode.
fn is_standard_doctype(doctype: &str) -> bool {
    let inner = doctype
        .get(2..doctype.len().saturating_sub(1))
        .unwrap_or_default();
    let words: Vec<_> = inner.split_ascii_whitespace().collect();
    words.len() == 2
        && words[0].eq_ignore_ascii_case("doctype")
        && words[1].eq_ignore_ascii_case("html")
}

/// Whether `rest` may hold an `<html>` or `<body>` tag with attributes, which the parser adds to
/// the first one, or a `<frameset>`, which can replace the body: either changes elements read
/// already. A look at the bytes, not the tokens, so it errs towards yes.
fn merges_later(rest: &[u8], html_ahead: usize, body_ahead: usize) -> bool {
    let tag = |needle: &[u8], start: u8, attrs: bool| {
        memchr::memmem::find_iter(rest, needle)
            .filter(|&at| {
                at >= 2
                    && rest[at - 2] == b'<'
                    && rest[at - 1].eq_ignore_ascii_case(&start)
                    && (!attrs
                        || rest
                            .get(at + needle.len())
                            .is_some_and(|&b| CLASS[b as usize] == SPACE || b == b'/'))
            })
            .count()
    };
    // The first `<html>` and `<body>` ahead may be the first of the page, not a repeat.
    tag(b"ody", b'b', true) + tag(b"ODY", b'b', true) > body_ahead
        || tag(b"tml", b'h', true) + tag(b"TML", b'h', true) > html_ahead
        || tag(b"rameset", b'f', false) + tag(b"RAMESET", b'f', false) > 0
}

/// The length of the line break at `at`: `\n`, `\r\n` or `\r`; 0 when there is none.
fn newline_at(bytes: &[u8], at: usize) -> usize {
    match (bytes.get(at), bytes.get(at + 1)) {
        (Some(b'\r'), Some(b'\n')) => 2,
        (Some(b'\n' | b'\r'), _) => 1,
        _ => 0,
    }
}

/// Why the parser would treat this tag inside SVG (`svg`) or MathML by rules the model does not
/// follow: tags that end the foreign content or not depending on their attributes or on which
/// of the two they are in, and the points where HTML starts again inside it.
fn foreign_unfollowed(name: &str, svg: bool) -> Option<&'static str> {
    match name {
        "font" | "address" | "html" | "frameset" | "annotation-xml" => {
            Some("a tag inside SVG or MathML that the parser reads by rules of its own")
        }
        "desc" | "title" | "foreignobject" if !svg => Some("an SVG name inside MathML"),
        "mi" | "mo" | "mn" | "ms" | "mtext" if svg => Some("a MathML name inside SVG"),
        _ => None,
    }
}

/// A tag's name in lowercase, borrowed when it is already.
fn lowercase(name: &str) -> Cow<'_, str> {
    match name.bytes().any(|b| b.is_ascii_uppercase()) {
        true => Cow::Owned(name.to_ascii_lowercase()),
        false => Cow::Borrowed(name),
    }
}

/// The attributes of the tag whose name ends at `from` and whose `>` is at `gt`, as the
/// tokenizer reads them: names lowercased, values decoded, a repeated name ignored.
fn attributes(src: &str, from: usize, gt: usize) -> Result<Attrs<'_>, Unsure> {
    let bytes = src.as_bytes();
    let space = |i: usize| CLASS[bytes[i] as usize] == SPACE;
    let mut attrs: Attrs<'_> = Vec::new();
    let mut i = from;
    while i < gt {
        while i < gt && (space(i) || bytes[i] == b'/') {
            i += 1;
        }
        if i >= gt {
            break;
        }
        // A name; its first character may be `=`.
        let start = i;
        i += 1;
        while i < gt && !space(i) && !matches!(bytes[i], b'/' | b'=') {
            i += 1;
        }
        let name = &src[start..i];
        while i < gt && space(i) {
            i += 1;
        }
        let mut value = "";
        if i < gt && bytes[i] == b'=' {
            i += 1;
            while i < gt && space(i) {
                i += 1;
            }
            match bytes.get(i) {
                Some(&quote @ (b'"' | b'\'')) if i < gt => {
                    let close = find(bytes, quote, i + 1).filter(|&c| c < gt).unwrap_or(gt);
                    value = &src[i + 1..close];
                    i = close + 1;
                }
                _ => {
                    let begin = i;
                    while i < gt && !space(i) {
                        i += 1;
                    }
                    value = &src[begin..i];
                }
            }
        }
        let name = lowercase(name);
        if !attrs.iter().any(|(n, _)| *n == name) {
            attrs.push((name, decode(value)?));
        }
    }
    Ok(attrs)
}
