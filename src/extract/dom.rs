//! The HTML parse every extractor reads: the page's markup after [`markup::prepare`], through
//! html5ever, fed in pieces so that a parse can be stopped between them and its work is
//! metered. The nesting cap bounds html5ever's cost on deep pages; the meter bounds it on
//! markup built to get past the cap's model of the parser (mis-nested formatting tags that
//! html5ever re-opens at every block make a tree the square of the page's size).

use std::borrow::Cow;
use std::cell::{Cell, Ref};
use std::sync::atomic::{AtomicBool, Ordering};

use html5ever::tendril::{StrTendril, TendrilSink};
use html5ever::tree_builder::{ElementFlags, NodeOrText, QuirksMode, TreeSink};
use html5ever::{Attribute, QualName};
use scraper::{Html, HtmlTreeSink};

use super::markup;

/// Markup fed to html5ever at a time: the grain at which a parse is stopped and metered.
const PIECE: usize = 16 * 1024;

/// The most parser steps (element names looked up, nodes compared or created) a page may cost
/// per byte of markup, and the least allowance for a small page. Saved shop pages cost under
/// half a step per byte; 200,000 nested `<div>`s, flattened at the cap, about 75.
const STEPS_PER_BYTE: u64 = 256;
const STEPS_AT_LEAST: u64 = 10_000_000;
/// The most elements a page may make per byte of markup, and the least allowance. Saved shop
/// pages make one per 54 bytes or more, and a tag takes at least three; markup that makes more
/// has the parser re-opening elements, which can grow the tree with the square of the page.
const BYTES_PER_ELEMENT: u64 = 4;
const ELEMENTS_AT_LEAST: u64 = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error(
        "the page's markup makes the HTML parser loop (it re-opens mis-nested tags again and again): more than {STEPS_PER_BYTE} parser steps or one element per {BYTES_PER_ELEMENT} bytes; it is not read"
    )]
    TooComplex,
    #[error("the parse was stopped")]
    Stopped,
}

/// Parse `body` as a document, with script and style contents left out when `strip_inert` is
/// set. `stop`, once set, ends the parse at the next piece.
pub fn parse(body: &str, strip_inert: bool, stop: &AtomicBool) -> Result<Html, PageError> {
    let prepared = markup::prepare(body, strip_inert);
    let bytes = prepared.len() as u64;
    let steps = STEPS_AT_LEAST.max(STEPS_PER_BYTE.saturating_mul(bytes));
    let elements = ELEMENTS_AT_LEAST.max(bytes / BYTES_PER_ELEMENT);
    let mut parser = html5ever::parse_document(Metered::new(), Default::default());
    for piece in pieces(&prepared) {
        if stop.load(Ordering::Relaxed) {
            return Err(PageError::Stopped);
        }
        parser.process(StrTendril::from_slice(piece));
        let sink = &parser.tokenizer.sink.sink;
        if sink.steps.get() > steps || sink.elements.get() > elements {
            return Err(PageError::TooComplex);
        }
    }
    Ok(parser.finish())
}

/// `text` in pieces of about `PIECE` bytes, cut between characters.
fn pieces(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut cut = PIECE.min(rest.len());
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        let (piece, after) = rest.split_at(cut);
        rest = after;
        Some(piece)
    })
}

/// scraper's tree sink, counting the calls that html5ever's costly loops make and the
/// elements it creates.
struct Metered {
    inner: HtmlTreeSink,
    steps: Cell<u64>,
    elements: Cell<u64>,
}

impl Metered {
    fn new() -> Self {
        Metered {
            inner: HtmlTreeSink::new(Html::new_document()),
            steps: Cell::new(0),
            elements: Cell::new(0),
        }
    }

    fn step(&self) {
        self.steps.set(self.steps.get() + 1);
    }
}

type Handle = <HtmlTreeSink as TreeSink>::Handle;

impl TreeSink for Metered {
    type Handle = Handle;
    type Output = Html;
    type ElemName<'a> = Ref<'a, QualName>;

    fn finish(self) -> Html {
        self.inner.finish()
    }

    fn parse_error(&self, msg: Cow<'static, str>) {
        self.inner.parse_error(msg)
    }

    fn get_document(&self) -> Handle {
        self.inner.get_document()
    }

    fn elem_name<'a>(&'a self, target: &'a Handle) -> Ref<'a, QualName> {
        self.step();
        // Read from the tree here, as scraper's sink does, so that this inlines into html5ever's
        // loops, which call it more than anything else.
        Ref::map(self.inner.0.borrow(), |html| {
            let node = html.tree.get(*target).expect("a node of this tree");
            &node.value().as_element().expect("an element").name
        })
    }

    fn create_element(&self, name: QualName, attrs: Vec<Attribute>, flags: ElementFlags) -> Handle {
        self.step();
        self.elements.set(self.elements.get() + 1);
        self.inner.create_element(name, attrs, flags)
    }

    fn create_comment(&self, text: StrTendril) -> Handle {
        self.inner.create_comment(text)
    }

    fn create_pi(&self, target: StrTendril, data: StrTendril) -> Handle {
        self.inner.create_pi(target, data)
    }

    fn append(&self, parent: &Handle, child: NodeOrText<Handle>) {
        self.inner.append(parent, child)
    }

    fn append_based_on_parent_node(
        &self,
        element: &Handle,
        prev_element: &Handle,
        child: NodeOrText<Handle>,
    ) {
        self.inner
            .append_based_on_parent_node(element, prev_element, child)
    }

    fn append_doctype_to_document(
        &self,
        name: StrTendril,
        public_id: StrTendril,
        system_id: StrTendril,
    ) {
        self.inner
            .append_doctype_to_document(name, public_id, system_id)
    }

    fn mark_script_already_started(&self, node: &Handle) {
        self.inner.mark_script_already_started(node)
    }

    fn pop(&self, node: &Handle) {
        self.inner.pop(node)
    }

    fn get_template_contents(&self, target: &Handle) -> Handle {
        self.inner.get_template_contents(target)
    }

    fn same_node(&self, x: &Handle, y: &Handle) -> bool {
        self.step();
        x == y
    }

    fn set_quirks_mode(&self, mode: QuirksMode) {
        self.inner.set_quirks_mode(mode)
    }

    fn append_before_sibling(&self, sibling: &Handle, new_node: NodeOrText<Handle>) {
        self.inner.append_before_sibling(sibling, new_node)
    }

    fn add_attrs_if_missing(&self, target: &Handle, attrs: Vec<Attribute>) {
        self.inner.add_attrs_if_missing(target, attrs)
    }

    fn associate_with_form(
        &self,
        target: &Handle,
        form: &Handle,
        nodes: (&Handle, Option<&Handle>),
    ) {
        self.inner.associate_with_form(target, form, nodes)
    }

    fn remove_from_parent(&self, target: &Handle) {
        self.inner.remove_from_parent(target)
    }

    fn reparent_children(&self, node: &Handle, new_parent: &Handle) {
        self.inner.reparent_children(node, new_parent)
    }

    fn is_mathml_annotation_xml_integration_point(&self, handle: &Handle) -> bool {
        self.inner
            .is_mathml_annotation_xml_integration_point(handle)
    }

    fn set_current_line(&self, line_number: u64) {
        self.inner.set_current_line(line_number)
    }

    fn allow_declarative_shadow_roots(&self, intended_parent: &Handle) -> bool {
        self.inner.allow_declarative_shadow_roots(intended_parent)
    }

    fn attach_declarative_shadow(
        &self,
        location: &Handle,
        template: &Handle,
        attrs: &[Attribute],
    ) -> bool {
        self.inner
            .attach_declarative_shadow(location, template, attrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::tests::thread_cpu;

    fn parse_all(html: &str) -> Result<Html, PageError> {
        parse(html, true, &AtomicBool::new(false))
    }

    #[test]
    fn a_page_parses_as_scraper_parses_it() {
        let page = "<!doctype html><title>T</title><p class=a>one<p>two<table><td>x</table>";
        assert_eq!(
            parse_all(page).unwrap().html(),
            Html::parse_document(page).html()
        );
        let long = "<p>a paragraph, long enough to fill several pieces é</p>".repeat(2_000);
        assert_eq!(
            parse_all(&long).unwrap().html(),
            Html::parse_document(&long).html()
        );
    }

    /// Formatting tags that never close, each with its own attributes, make html5ever re-open
    /// all the earlier ones inside every new paragraph: 24 KB of this is 3 million elements.
    #[test]
    fn markup_that_makes_the_parser_loop_is_refused_quickly() {
        let page: String = (0..20_000).map(|i| format!("<b id={i}><p>")).collect();
        let started = thread_cpu();
        assert_eq!(parse_all(&page).unwrap_err(), PageError::TooComplex);
        let spent = thread_cpu() - started;
        assert!(spent.as_secs() < 5, "{spent:?}");
    }

    #[test]
    fn a_deep_page_is_flattened_not_refused() {
        let page = format!("{}x{}", "<div>".repeat(5_000), "</div>".repeat(5_000));
        let html = parse_all(&page).unwrap();
        assert_eq!(
            html.tree.nodes().filter(|n| n.value().is_element()).count(),
            5_003
        );
    }

    #[test]
    fn a_stopped_parse_ends_at_the_next_piece() {
        let stop = AtomicBool::new(true);
        let page = "<p>text</p>".repeat(10);
        assert_eq!(parse(&page, true, &stop).unwrap_err(), PageError::Stopped);
    }
}
