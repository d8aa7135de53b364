//! The visible page, read as a person reads it, for URL-only fields when the page's structured
//! data is silent. The product's own values sit in its main block: near its title (`h1`) and
//! its buy button, so both are anchors and every candidate is scored by how far it is from
//! them in the tree. Precision before recall: when the page is ambiguous the answer is no
//! value, with a reason.

mod anchor;
mod price;
mod stock;

use ego_tree::{NodeId, NodeRef};
use scraper::{ElementRef, Html, Node};

pub use self::price::{Rejected, Why, price, price_explained, price_judged};
pub use self::stock::availability;

/// The text of the product's title (`h1`), when the page has one.
pub(crate) fn title_text(html: &Html) -> Option<String> {
    anchor::title(html).and_then(|h| short_text(h, 400))
}

/// Why the visible page gave no value, in words for `found_in` and errors.
pub type Reason = &'static str;

/// A value found on the visible page, with a CSS path to the element that shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Found<T> {
    pub value: T,
    pub path: String,
    /// The element's text, as the page shows it.
    pub text: String,
}

/// The product's anchors: its title and its buy button, when the page has them, each with the
/// ids of its lineage (itself, then its ancestors), walked once so that every candidate's
/// distance and containment are a lookup rather than another walk. Found once per page and
/// kept by ids, so that the price and the availability readings share them.
pub(crate) struct Anchors {
    buy: Option<NodeId>,
    /// Each anchor's lineage, nearest first.
    lineages: Vec<Vec<NodeId>>,
}

impl Anchors {
    pub(crate) fn of(html: &Html) -> Self {
        let (title, buy) = (anchor::title(html), anchor::buy_button(html));
        let lineages = [title, buy]
            .into_iter()
            .flatten()
            .map(|a| {
                std::iter::once(*a)
                    .chain(a.ancestors())
                    .map(|n| n.id())
                    .collect()
            })
            .collect();
        Anchors {
            buy: buy.map(|b| b.id()),
            lineages,
        }
    }

    /// Whether the page shows neither a title nor a buy button.
    fn is_empty(&self) -> bool {
        self.lineages.is_empty()
    }

    /// The buy button, in the page the anchors were found in.
    fn buy<'a>(&self, html: &'a Html) -> Option<ElementRef<'a>> {
        self.buy
            .and_then(|id| html.tree.get(id))
            .and_then(ElementRef::wrap)
    }

    /// Whether `e` is an anchor or holds one.
    fn holds(&self, e: ElementRef<'_>) -> bool {
        self.lineages.iter().any(|up| up.contains(&e.id()))
    }

    /// Tree steps from `node` to the nearer anchor, None without anchors: steps up from each
    /// to their nearest common ancestor. The walks are bounded by the depth of the tree, which
    /// the markup pass caps.
    fn distance(&self, node: NodeRef<'_, Node>) -> Option<usize> {
        self.lineages.iter().map(|up| steps(up, node)).min()
    }

    /// Whether `node` is at most `limit` tree steps from the title and from the buy button,
    /// false unless the page shows both.
    fn near_all(&self, node: NodeRef<'_, Node>, limit: usize) -> bool {
        self.lineages.len() == 2 && self.lineages.iter().all(|up| steps(up, node) <= limit)
    }
}

/// Tree steps from `node` to the anchor whose lineage is `up`: steps up from each to their
/// nearest common ancestor, usize::MAX in another tree.
fn steps(up: &[NodeId], node: NodeRef<'_, Node>) -> usize {
    std::iter::once(node)
        .chain(node.ancestors())
        .enumerate()
        .find_map(|(steps, n)| up.iter().position(|id| *id == n.id()).map(|at| steps + at))
        .unwrap_or(usize::MAX)
}

/// Element and ancestors, nearest first, at most `levels` of them.
fn lineage<'a>(
    node: NodeRef<'a, Node>,
    levels: usize,
) -> impl Iterator<Item = ElementRef<'a>> + Clone {
    std::iter::once(node)
        .chain(node.ancestors())
        .filter_map(ElementRef::wrap)
        .take(levels)
}

/// The lower-cased class, id and a few naming attributes of an element, for word tests.
fn names(element: ElementRef<'_>) -> String {
    const NAMING: [&str; 5] = ["class", "id", "itemprop", "data-testid", "name"];
    // One walk over the attributes: looking each name up would intern it as an atom first.
    let mut found: [Option<&str>; 5] = [None; 5];
    for (name, value) in element.value().attrs() {
        if let Some(at) = NAMING.iter().position(|n| *n == name) {
            found[at].get_or_insert(value);
        }
    }
    let mut out = String::new();
    for value in found.into_iter().flatten() {
        out.push_str(&value.to_lowercase());
        out.push(' ');
    }
    out
}

/// An element's text, whitespace-normalised, or None when it is longer than `limit` bytes or
/// spread over more than a few dozen nodes (a container, not a label).
fn short_text(element: ElementRef<'_>, limit: usize) -> Option<String> {
    // Room for a label at once: growing the string word by word cost more than reading it.
    let mut text = String::with_capacity(limit);
    for (seen, node) in element.descendants().enumerate() {
        if seen > 64 {
            return None;
        }
        if let Node::Text(t) = node.value() {
            // Text of ASCII alone, as most labels are, is split by bytes rather than decoded
            // characters; the vertical tab is the one ASCII character that Unicode counts as
            // white space and `split_ascii_whitespace` does not.
            if t.is_ascii() && !t.contains('\x0b') {
                push_words(&mut text, t.split_ascii_whitespace());
            } else {
                push_words(&mut text, t.split_whitespace());
            }
            if text.len() > limit {
                return None;
            }
        }
    }
    Some(text)
}

/// `words` appended to `text`, one space between each.
fn push_words<'a>(text: &mut String, words: impl Iterator<Item = &'a str>) {
    for word in words {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(word);
    }
}

/// A CSS path that finds the element again: its nearest id, then tags and a class.
pub(crate) fn css_path(element: ElementRef<'_>) -> String {
    let mut parts = Vec::new();
    for e in lineage(*element, 3) {
        let v = e.value();
        if let Some(id) = v.id().filter(|id| is_plain(id)) {
            parts.push(format!("#{id}"));
            break;
        }
        let class = v.classes().find(|c| is_plain(c));
        parts.push(match class {
            Some(c) => format!("{}.{c}", v.name()),
            None => v.name().to_owned(),
        });
    }
    parts.reverse();
    parts.join(" > ")
}

/// A name a selector can carry as written: no digits-only ids, no escapes needed.
fn is_plain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Inside the page's header, navigation, footer or a cart: never the product's own value.
fn in_chrome(node: NodeRef<'_, Node>) -> bool {
    lineage(node, 40).any(|e| {
        matches!(e.value().name(), "header" | "nav" | "footer" | "aside")
            || names(e).split_whitespace().any(|n| CHROME.contains(&n))
    })
}

/// Class or id names of a page's frame, matched whole: `product-header` is not the header.
const CHROME: &[&str] = &[
    "header",
    "site-header",
    "page-header",
    "main-header",
    "footer",
    "site-footer",
    "navbar",
    "minicart",
    "mini-cart",
    "cart",
    "basket",
];

#[cfg(test)]
mod tests;
