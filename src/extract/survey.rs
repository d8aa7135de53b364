//! What URL-only reading sees on a page besides the values: the product's title and the
//! numbers that read as prices but were not taken, with why. What `pagehook probe` shows, so
//! a user can trust the answer or see what to pin instead.

use std::sync::atomic::AtomicBool;

use scraper::{Html, Selector};
use serde_json::Value;

use super::visible::{self, Rejected};
use super::{ExtractError, dom, jsonld};

/// Rejections past this many say nothing a user would read.
const MAX_REJECTED: usize = 40;
/// A title longer than this is a container's text, not a title.
const MAX_TITLE: usize = 300;

#[derive(Debug, Clone, Default)]
pub struct Survey {
    pub title: Option<String>,
    pub rejected: Vec<Rejected>,
}

/// Survey an HTML page, reading ambiguous price symbols in `currency` as a price field would.
pub fn survey(
    body: &str,
    currency: Option<&'static str>,
    stop: &AtomicBool,
) -> Result<Survey, ExtractError> {
    let html = dom::parse(body, true, stop)?;
    let (_, mut rejected) = visible::price_explained(&html, currency);
    // A repeated block (a carousel's copies) says the same thing again.
    let mut seen = std::collections::HashSet::new();
    rejected.retain(|r| seen.insert((r.text.clone(), r.path.clone(), r.why)));
    rejected.truncate(MAX_REJECTED);
    Ok(Survey {
        title: title(&html),
        rejected,
    })
}

/// The product's name from structured data, else its `h1`, else the page's own title.
fn title(html: &Html) -> Option<String> {
    let graph = jsonld::Graph::from_document(html);
    let named = graph
        .product()
        .and_then(|p| p.get(&["name".to_owned()]))
        .and_then(|found| match found.value {
            Value::String(name) => Some(name.clone()),
            _ => None,
        });
    let meta = || {
        let og = Selector::parse(r#"meta[property="og:title"]"#).expect("valid selector");
        html.select(&og)
            .find_map(|m| m.value().attr("content").map(str::to_owned))
    };
    let head = || {
        let title = Selector::parse("title").expect("valid selector");
        html.select(&title).next().map(|t| t.text().collect())
    };
    named
        .or_else(|| visible::title_text(html))
        .or_else(meta)
        .or_else(head)
        .map(|t: String| t.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|t| !t.is_empty() && t.len() <= MAX_TITLE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::visible::Why;

    fn run(page: &str) -> Survey {
        survey(page, None, &AtomicBool::new(false)).unwrap()
    }

    #[test]
    fn the_title_comes_from_structured_data_then_the_h1_then_the_head() {
        let jsonld = r#"<script type="application/ld+json">{"@type":"Product","name":"Acme  Widget"}</script><h1>Other</h1>"#;
        assert_eq!(run(jsonld).title.as_deref(), Some("Acme Widget"));
        assert_eq!(
            run("<h1> Blue\n Kettle </h1>").title.as_deref(),
            Some("Blue Kettle")
        );
        let head = r#"<head><meta property="og:title" content="Shared"><title>Tab</title></head>"#;
        assert_eq!(run(head).title.as_deref(), Some("Shared"));
        assert_eq!(run("<title>Tab</title>").title.as_deref(), Some("Tab"));
        assert_eq!(run("<p>nothing</p>").title, None);
    }

    #[test]
    fn prices_passed_over_say_why() {
        let page = r#"<main><h1>Kettle</h1>
            <div class="price"><span>€ 24,99</span></div>
            <del>€ 39,99</del>
            <span class="old-price">€ 35,00</span>
            <span>from € 4,99</span>
            <button>Add to cart</button></main>
            <section class="related"><h3>Teapot</h3><span>€ 12,00</span></section>
            <header class="site-header"><span>€ 0,00</span></header>"#;
        let rejected = run(page).rejected;
        let why = |text: &str| {
            rejected
                .iter()
                .find(|r| r.text.contains(text))
                .map(|r| r.why)
        };
        assert_eq!(why("39,99"), Some(Why::CrossedOut));
        assert_eq!(why("35,00"), Some(Why::FormerPrice("old")));
        assert_eq!(why("4,99"), Some(Why::Wording("from")));
        assert_eq!(why("12,00"), Some(Why::OtherProducts("related")));
        assert_eq!(why("0,00"), Some(Why::PageFrame));
        assert_eq!(why("24,99"), None, "the price taken is not rejected");
        let unit = rejected.iter().find(|r| r.text.contains("4,99")).unwrap();
        assert_eq!(
            unit.why.to_string(),
            r#"says "from": not the price to pay now"#
        );
        assert_eq!(unit.path, "body > main > span");
    }

    #[test]
    fn a_price_farther_away_than_the_one_taken_is_named() {
        let page = r#"<main><h1>Kettle</h1><span>€ 24,99</span><button>Add to cart</button>
            <div><div><div><p><span>€ 19,99</span></p></div></div></div></main>"#;
        let rejected = run(page).rejected;
        assert_eq!(rejected.len(), 1, "{rejected:?}");
        assert_eq!(rejected[0].why, Why::Farther);
        assert!(rejected[0].text.contains("19,99"));
    }
}
