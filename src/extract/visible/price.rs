//! The product's price on the visible page: the nearest price to the title and the buy
//! button that is not a former, unit, monthly, instalment or shipping price, nor a related
//! product's or the cart's.

use std::collections::HashSet;

use scraper::{ElementRef, Html, Node};

use super::{Anchors, Found, Reason, in_chrome, lineage, names, short_text};
use crate::extract::price::{self, Price};

/// A price label is short; anything longer is a sentence or a container.
const MAX_LABEL: usize = 60;
/// The farthest, in tree steps from an anchor, that the product's own price sits.
const MAX_DISTANCE: usize = 12;
/// Text nodes looked at, at most: a page past this is read no further.
const MAX_TEXTS: usize = 200_000;

/// Former prices: struck through or named so.
const OLD_NAMES: &[&str] = &[
    "old",
    "was",
    "strike",
    "before",
    "regular",
    "compare",
    "crossed",
    "rrp",
    "uvp",
    "list-price",
    "listprice",
    "saving",
    "save",
    "discount",
    "original",
    "prev",
];
/// Blocks of other products.
const OTHER_NAMES: &[&str] = &[
    "related",
    "recommend",
    "similar",
    "upsell",
    "cross-sell",
    "crosssell",
    "carousel",
    "slider",
    "recent",
    "also",
    "bundle",
    "accessor",
];
/// Words that make a number something other than the price to pay now, lower case.
const NOT_THE_PRICE: &[&str] = &[
    "/",
    "per ",
    "month",
    "monat",
    "mois",
    "/mes",
    "mês",
    "mese",
    "maand",
    "miesiąc",
    "měsíc",
    "мес",
    "ヶ月",
    "个月",
    "개월",
    "x de",
    " x ",
    "×",
    "shipping",
    "delivery",
    "versand",
    "livraison",
    "envío",
    "envio",
    "frete",
    "spedizione",
    "verzend",
    "wysyłka",
    "doprava",
    "доставка",
    "kargo",
    "送料",
    "运费",
    "배송",
    "save",
    "spar",
    "économ",
    "ahorr",
    "economi",
    "risparm",
    "bespaar",
    "oszczęd",
    "%",
    "from",
    "ab ",
    "à partir",
    "desde",
    "a partir",
];

/// A number that reads as a price, and where it is.
struct Candidate<'a> {
    element: ElementRef<'a>,
    text: String,
    price: Price,
    distance: usize,
    named_price: bool,
}

/// A number on the page that reads as a price but was not taken, and why: what `probe` shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// The element's text, as the page shows it.
    pub text: String,
    pub path: String,
    pub why: Why,
}

/// Why a number that reads as a price is not the product's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Why {
    /// Per-unit, monthly, instalment, shipping, saving or "from" wording.
    Wording(&'static str),
    CrossedOut,
    /// Inside an element named as a former price (`old-price`, `was`).
    FormerPrice(&'static str),
    /// Inside a block of other products (`related`, `carousel`).
    OtherProducts(&'static str),
    PageFrame,
    Zero,
    /// More tree steps from the title and the buy button than the product's price sits.
    TooFar(usize),
    /// Farther from the product than the price that was taken.
    Farther,
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Wording(w) => write!(f, "says {:?}: not the price to pay now", w.trim()),
            Why::CrossedOut => write!(f, "crossed out: a former price"),
            Why::FormerPrice(w) => write!(f, "named {w:?}: a former price"),
            Why::OtherProducts(w) => write!(f, "inside a block named {w:?}: another product's"),
            Why::PageFrame => write!(f, "in the page's header, navigation, footer or cart"),
            Why::Zero => write!(f, "zero"),
            Why::TooFar(d) => write!(
                f,
                "{d} steps from the product's title or buy button (at most {MAX_DISTANCE})"
            ),
            Why::Farther => write!(f, "farther from the product than the price taken"),
        }
    }
}

/// The product's price on the visible page, or why there is none.
pub fn price(html: &Html, hint: Option<&'static str>) -> Result<Found<Price>, Reason> {
    read(html, hint, None)
}

/// As `price`, also giving every other number that reads as a price and why it was not taken.
pub fn price_explained(
    html: &Html,
    hint: Option<&'static str>,
) -> (Result<Found<Price>, Reason>, Vec<Rejected>) {
    let mut rejected = Vec::new();
    let found = read(html, hint, Some(&mut rejected));
    (found, rejected)
}

/// Rejections are only spelled out (a CSS path each) when `rejected` asks for them.
fn read(
    html: &Html,
    hint: Option<&'static str>,
    mut rejected: Option<&mut Vec<Rejected>>,
) -> Result<Found<Price>, Reason> {
    let anchors = Anchors::of(html);
    if anchors.title.is_none() && anchors.buy.is_none() {
        return Err("without a product title (h1) or a buy button to start from");
    }
    let mut candidates = Vec::new();
    let mut seen = HashSet::new();
    for (count, node) in html.tree.root().descendants().enumerate() {
        if count > MAX_TEXTS {
            return Err("too large to read");
        }
        let Node::Text(text) = node.value() else {
            continue;
        };
        if !text.bytes().any(|b| b.is_ascii_digit()) && !text.chars().any(|c| c.is_numeric()) {
            continue;
        }
        // A price split over spans ("€ <b>24</b>,<sup>99</sup>") reads whole a level or two up.
        // Never as far up as a block that holds the title or the button.
        let Some((element, text, plain)) = lineage(node, 3)
            .take_while(|e| !anchors.holds(*e))
            .find_map(|e| {
                let text = short_text(e, MAX_LABEL)?;
                let plain = price::parse(&text, None).filter(|p| p.currency.is_some())?;
                Some((e, text, plain))
            })
        else {
            continue;
        };
        if !seen.insert(element.id()) {
            continue;
        }
        // The hint names what an ambiguous symbol ("$", "kr") means on this page.
        let found = match hint {
            None => plain,
            Some(_) => match price::parse(&text, hint) {
                Some(found) => found,
                None => continue,
            },
        };
        match judge(element, text, found, &anchors) {
            Ok(c) => candidates.push(c),
            Err((text, why)) => {
                if let Some(rejected) = rejected.as_deref_mut() {
                    rejected.push(Rejected {
                        text,
                        path: super::css_path(element),
                        why,
                    });
                }
            }
        }
    }
    choose(candidates, rejected)
}

fn judge<'a>(
    element: ElementRef<'a>,
    text: String,
    found: Price,
    anchors: &Anchors<'a>,
) -> Result<Candidate<'a>, (String, Why)> {
    let lower = text.to_lowercase();
    if let Some(w) = NOT_THE_PRICE.iter().find(|w| lower.contains(*w)) {
        return Err((text, Why::Wording(w)));
    }
    let near: Vec<String> = lineage(*element, 4).map(names).collect();
    if lineage(*element, 4).any(|e| matches!(e.value().name(), "del" | "s" | "strike")) {
        return Err((text, Why::CrossedOut));
    }
    let former = OLD_NAMES.iter().find(|w| {
        near.iter().any(|n| {
            n.split(|c: char| !c.is_alphanumeric()).any(|t| t == **w)
                || n.contains(&format!("{w}-price"))
                || n.contains(&format!("{w}price"))
        })
    });
    if let Some(w) = former {
        return Err((text, Why::FormerPrice(w)));
    }
    let other = lineage(*element, 12).find_map(|e| {
        let names = names(e);
        OTHER_NAMES.iter().find(|w| names.contains(*w))
    });
    if let Some(w) = other {
        return Err((text, Why::OtherProducts(w)));
    }
    if in_chrome(*element) {
        return Err((text, Why::PageFrame));
    }
    if found.amount.is_zero() {
        return Err((text, Why::Zero));
    }
    let Some(distance) = anchors.distance(*element).filter(|d| *d <= MAX_DISTANCE) else {
        let steps = anchors.distance(*element).unwrap_or(usize::MAX);
        return Err((text, Why::TooFar(steps)));
    };
    Ok(Candidate {
        element,
        text,
        price: found,
        distance,
        named_price: near.iter().any(|n| {
            n.contains("price")
                || n.contains("preis")
                || n.contains("prix")
                || n.contains("precio")
                || n.contains("cena")
        }),
    })
}

/// The nearest candidate, a price-named one first among equals; two different amounts
/// equally near are a page too ambiguous to answer.
fn choose(
    mut candidates: Vec<Candidate<'_>>,
    rejected: Option<&mut Vec<Rejected>>,
) -> Result<Found<Price>, Reason> {
    let score = |c: &Candidate<'_>| c.distance * 2 - usize::from(c.named_price).min(c.distance * 2);
    candidates.sort_by_key(|c| score(c));
    let Some(best) = candidates.first() else {
        return Err("without a price near the product's title or buy button");
    };
    let rivals = candidates
        .iter()
        .skip(1)
        .take_while(|c| score(c) == score(best))
        .any(|c| c.price.amount != best.price.amount);
    if rivals {
        return Err("ambiguous: different prices equally near the product's title");
    }
    if let Some(rejected) = rejected {
        rejected.extend(candidates.iter().skip(1).map(|c| Rejected {
            text: c.text.clone(),
            path: super::css_path(c.element),
            why: Why::Farther,
        }));
    }
    Ok(Found {
        value: best.price,
        path: super::css_path(best.element),
        text: best.text.clone(),
    })
}
