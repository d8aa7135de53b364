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

mod chars;
mod elements;
mod model;
mod scan;
mod token;
mod walk;

pub(super) use self::walk::{Node, Unsure, Visitor, walk};

use std::borrow::Cow;

use self::elements::{Kind, Name};
use self::model::{End, Model, Tag};
use self::scan::{carries_data, find, raw_text_end, tag_end};
use self::token::{Token, token_at};

/// The deepest nesting the parse builds: Chromium's `kMaximumHTMLParserDOMTreeDepth`.
pub const MAX_DEPTH: usize = 512;

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
        match token_at(self.bytes, lt, self.model.in_foreign()) {
            Token::Text => Some(lt + 1),
            Token::Skip { end } | Token::Cdata { end } => Some(end),
            Token::EndTag { name, gt } => {
                self.end_tag(&name, lt, gt + 1);
                Some(gt + 1)
            }
            Token::StartTag {
                name,
                gt,
                self_closing,
            } => self.start_tag(&name, self_closing, lt, gt + 1),
            Token::Eof => None,
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
