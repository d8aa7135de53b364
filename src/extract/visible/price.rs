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

/// The product's price on the visible page, or why there is none.
pub fn price(html: &Html, hint: Option<&'static str>) -> Result<Found<Price>, Reason> {
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
        let Some(element) = lineage(node, 3)
            .take_while(|e| !anchors.holds(*e))
            .find(|e| {
                short_text(*e, MAX_LABEL)
                    .is_some_and(|t| price::parse(&t, None).is_some_and(|p| p.currency.is_some()))
            })
        else {
            continue;
        };
        if !seen.insert(element.id()) {
            continue;
        }
        if let Some(c) = judge(element, &anchors, hint) {
            candidates.push(c);
        }
    }
    choose(candidates)
}

fn judge<'a>(
    element: ElementRef<'a>,
    anchors: &Anchors<'a>,
    hint: Option<&'static str>,
) -> Option<Candidate<'a>> {
    let text = short_text(element, MAX_LABEL)?;
    let lower = text.to_lowercase();
    if NOT_THE_PRICE.iter().any(|w| lower.contains(w)) {
        return None;
    }
    let near: Vec<String> = lineage(*element, 4).map(names).collect();
    let struck = lineage(*element, 4).any(|e| matches!(e.value().name(), "del" | "s" | "strike"));
    if struck
        || near.iter().any(|n| {
            OLD_NAMES.iter().any(|w| {
                n.split(|c: char| !c.is_alphanumeric()).any(|t| t == *w)
                    || n.contains(&format!("{w}-price"))
                    || n.contains(&format!("{w}price"))
            })
        })
    {
        return None;
    }
    if lineage(*element, 12).any(|e| OTHER_NAMES.iter().any(|w| names(e).contains(w)))
        || in_chrome(*element)
    {
        return None;
    }
    let found = price::parse(&text, hint)?;
    if found.amount.is_zero() {
        return None;
    }
    let distance = anchors.distance(*element)?;
    (distance <= MAX_DISTANCE).then(|| Candidate {
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
fn choose(mut candidates: Vec<Candidate<'_>>) -> Result<Found<Price>, Reason> {
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
    Ok(Found {
        value: best.price,
        path: super::css_path(best.element),
        text: best.text.clone(),
    })
}
