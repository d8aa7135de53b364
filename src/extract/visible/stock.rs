//! The product's availability on the visible page: its buy button (there and enabled, or
//! disabled) and the stock wording near the title and the button.

use ego_tree::NodeRef;
use scraper::{Html, Node};

use super::anchor::{is_disabled, says_buy};
use super::{Anchors, Found, Reason, css_path, in_chrome, lineage, short_text};
use crate::extract::availability;

/// How far from an anchor stock wording counts as the product's.
const MAX_DISTANCE: usize = 8;
/// Stock wording is a short label.
const MAX_LABEL: usize = 80;
const MAX_TEXTS: usize = 200_000;

/// The availability the visible page, whose anchors are `anchors`, shows, or why it shows none.
pub fn availability(html: &Html, anchors: &Anchors) -> Result<Found<&'static str>, Reason> {
    let mut said: Option<(&'static str, String, String)> = None;
    let mut conflict = false;
    for (count, node) in html.tree.root().descendants().enumerate() {
        if count > MAX_TEXTS {
            return Err("too large to read");
        }
        let Node::Text(text) = node.value() else {
            continue;
        };
        if text.trim().is_empty() || text.len() > MAX_LABEL {
            continue;
        }
        // The cheapest test first: most of a page's text is far from the product.
        if anchors.distance(node).is_none_or(|d| d > MAX_DISTANCE) {
            continue;
        }
        let Some(element) = node.parent().and_then(scraper::ElementRef::wrap) else {
            continue;
        };
        let Some(label) = short_text(element, MAX_LABEL) else {
            continue;
        };
        let Some(name) = stock_words(&label) else {
            continue;
        };
        if in_chrome(node) || in_a_buttons_states(node) {
            continue;
        }
        match &said {
            None => said = Some((name, css_path(element), label)),
            Some((first, _, _)) if bought(first) != bought(name) => conflict = true,
            Some(_) => {}
        }
    }
    if conflict {
        return Err("ambiguous: both in-stock and out-of-stock wording near the product");
    }
    if let Some((value, path, text)) = said {
        return Ok(Found { value, path, text });
    }
    match anchors.buy(html) {
        Some(button) => Ok(Found {
            value: if is_disabled(button) {
                "OutOfStock"
            } else {
                "InStock"
            },
            path: css_path(button),
            text: short_text(button, MAX_LABEL).unwrap_or_default(),
        }),
        None => Err("without stock wording or a buy button near the product's title"),
    }
}

/// A button or link that says "add to cart" and also holds "sold out" carries a label for each
/// of its states, for a script to show one: the button's state (enabled or disabled) answers,
/// not the labels.
fn in_a_buttons_states(node: NodeRef<'_, Node>) -> bool {
    lineage(node, 4).any(|e| matches!(e.value().name(), "button" | "a") && says_buy(e))
}

/// Whether a shopper can buy now at this availability.
fn bought(name: &str) -> bool {
    !matches!(name, "OutOfStock" | "SoldOut" | "Discontinued")
}

/// Words that name an option (a way to deliver or collect, a size): "option not available"
/// says that option cannot be had, not the product.
const OPTION_WORDS: &[&str] = &[
    "option", "opcja", "opcji", "opción", "opção", "opzione", "optie",
];

/// A stock status in a label, leaving out the words a buy button carries ("add to cart"),
/// which the button itself answers for, a bare "available" ("available sizes"), and an
/// option's availability.
fn stock_words(label: &str) -> Option<&'static str> {
    // Most labels near the product name no stock status at all: that is told first, and the
    // words left out are looked for only in the few that do.
    let name = availability::normalise(label)?;
    let lower = label.to_lowercase();
    let left_out = lower.contains("add to")
        || lower.trim() == "available"
        || lower.contains("notify")
        || OPTION_WORDS.iter().any(|w| lower.contains(w));
    (!left_out).then_some(name)
}
