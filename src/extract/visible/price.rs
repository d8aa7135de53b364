//! The product's price on the visible page: the nearest price to the title and the buy
//! button that is not a former, unit, monthly, instalment or shipping price, nor a related
//! product's or the cart's.

use std::collections::{HashMap, HashSet};

use ego_tree::NodeId;

use scraper::{ElementRef, Html, Node};

use super::{Anchors, Found, Reason, in_chrome, lineage, names, short_text};
use crate::extract::price::{self, Price};

/// A price label is short; anything longer is a sentence or a container.
const MAX_LABEL: usize = 60;
/// The farthest, in tree steps from an anchor, that the product's own price sits.
const MAX_DISTANCE: usize = 12;
/// A price this few tree steps from both the title and the buy button is in the product's own
/// block: a "slider" there is the product's gallery.
const OWN_BLOCK: usize = 6;
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
/// Of those, the names of a widget rather than of other products: around the product's title
/// and buy button, a slider is its own gallery.
const WIDGET_NAMES: &[&str] = &["carousel", "slider"];
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
    // "5,900원~", "¥1,000〜": from, as shops in Korea, Japan and China write it.
    "~",
    "〜",
    "～",
    // An auction's opening bid and its estimate are not what the lot costs now.
    "starting",
    "estimate",
];

/// A number that reads as a price, and where it is.
struct Candidate<'a> {
    element: ElementRef<'a>,
    text: String,
    price: Price,
    distance: usize,
    named_price: bool,
}

impl Candidate<'_> {
    /// Lower is better: tree steps from an anchor, counted twice, less one for an element
    /// named as a price.
    fn score(&self) -> usize {
        self.distance * 2 - usize::from(self.named_price).min(self.distance * 2)
    }
}

/// The best score a candidate this far from an anchor can have.
fn least_score(distance: usize) -> usize {
    (distance * 2).saturating_sub(1)
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
    /// Beside a discount percentage and a lower price: the price before the discount.
    BeforeDiscount,
    /// Inside a block of other products (`related`, `carousel`).
    OtherProducts(&'static str),
    PageFrame,
    Zero,
    /// More tree steps from the title and the buy button than the product's price sits.
    TooFar(usize),
    /// Farther from the product than the price that was taken.
    Farther,
    /// Its text reads as no price in the currency the field names.
    NotInCurrency,
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Wording(w) => write!(f, "says {:?}: not the price to pay now", w.trim()),
            Why::CrossedOut => write!(f, "crossed out: a former price"),
            Why::FormerPrice(w) => write!(f, "named {w:?}: a former price"),
            Why::BeforeDiscount => write!(
                f,
                "beside a discount and a lower price: the price before the discount"
            ),
            Why::OtherProducts(w) => write!(f, "inside a block named {w:?}: another product's"),
            Why::PageFrame => write!(f, "in the page's header, navigation, footer or cart"),
            Why::Zero => write!(f, "zero"),
            Why::TooFar(d) => write!(
                f,
                "{d} steps from the product's title or buy button (at most {MAX_DISTANCE})"
            ),
            Why::Farther => write!(f, "farther from the product than the price taken"),
            Why::NotInCurrency => write!(f, "not a price in the currency the field names"),
        }
    }
}

/// The product's price on the visible page, whose anchors are `anchors`, or why there is none.
pub fn price(
    html: &Html,
    anchors: &Anchors,
    hint: Option<&'static str>,
) -> Result<Found<Price>, Reason> {
    scan(html, anchors, hint, None)
}

/// As `price`, also giving every other number that reads as a price and why it was not taken.
pub fn price_explained(
    html: &Html,
    hint: Option<&'static str>,
) -> (Result<Found<Price>, Reason>, Vec<Rejected>) {
    price_judged(html, &Anchors::of(html), hint)
}

/// As `price_explained`, on a page whose anchors are already found.
pub fn price_judged(
    html: &Html,
    anchors: &Anchors,
    hint: Option<&'static str>,
) -> (Result<Found<Price>, Reason>, Vec<Rejected>) {
    let mut rejected = Vec::new();
    let found = scan(html, anchors, hint, Some(&mut rejected));
    (found, rejected)
}

/// Rejections are only spelled out (a CSS path each) when `rejected` asks for them, and then
/// every number is judged, not only those that could still win.
fn scan(
    html: &Html,
    anchors: &Anchors,
    hint: Option<&'static str>,
    mut rejected: Option<&mut Vec<Rejected>>,
) -> Result<Found<Price>, Reason> {
    if anchors.is_empty() {
        return Err("without a product title (h1) or a buy button to start from");
    }
    let mut candidates = Vec::new();
    let mut seen = HashSet::new();
    // What each element's text reads as, so that the text nodes inside one element and the
    // levels their lineages share are read once.
    let mut read: HashMap<NodeId, Option<(String, Price)>> = HashMap::new();
    let mut best: Option<usize> = None;
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
        let mut levels = lineage(node, 3).take_while(|e| !anchors.holds(*e));
        // A number that cannot score as well as the best candidate so far cannot be chosen nor
        // make the choice ambiguous: unless every rejection is asked for, it is neither read
        // nor judged, which on a page of many related products is most of the work. Here,
        // before its text is read, it is skipped when no level it could be read at is near
        // enough; below, when the element it reads at is not.
        if rejected.is_none()
            && let Some(best) = best
            && levels
                .clone()
                .all(|e| anchors.distance(*e).is_none_or(|d| least_score(d) > best))
        {
            continue;
        }
        let found = levels.find_map(|e| {
            let label = read.entry(e.id()).or_insert_with(|| {
                let text = short_text(e, MAX_LABEL)?;
                let price = price::parse(&text, None)?;
                price.currency.is_some().then_some((text, price))
            });
            label.clone().map(|label| (e, label))
        });
        let Some((element, (text, unhinted))) = found else {
            continue;
        };
        if !seen.insert(element.id()) {
            continue;
        }
        let Some(distance) = anchors.distance(*element) else {
            continue;
        };
        if rejected.is_none() && best.is_some_and(|best| least_score(distance) > best) {
            continue;
        }
        match judge(element, text, unhinted, (distance, anchors), hint) {
            Ok(c) => {
                best = Some(best.map_or(c.score(), |best| best.min(c.score())));
                candidates.push(c);
            }
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

/// `element` as a candidate, given its text and the price that text reads as without a hint.
fn judge<'a>(
    element: ElementRef<'a>,
    text: String,
    unhinted: Price,
    (distance, anchors): (usize, &Anchors),
    hint: Option<&'static str>,
) -> Result<Candidate<'a>, (String, Why)> {
    if distance > MAX_DISTANCE {
        return Err((text, Why::TooFar(distance)));
    }
    let lower = text.to_lowercase();
    if let Some(w) = NOT_THE_PRICE.iter().find(|w| lower.contains(*w)) {
        return Err((text, Why::Wording(w)));
    }
    let near: Vec<String> = lineage(*element, 4).map(names).collect();
    if lineage(*element, 4).any(|e| matches!(e.value().name(), "del" | "s" | "strike")) {
        return Err((text, Why::CrossedOut));
    }
    if let Some(w) = OLD_NAMES
        .iter()
        .find(|w| near.iter().any(|n| names_old(n, w)))
    {
        return Err((text, Why::FormerPrice(w)));
    }
    if before_discount(element, unhinted) {
        return Err((text, Why::BeforeDiscount));
    }
    let own_block = anchors.near_all(*element, OWN_BLOCK);
    let other = lineage(*element, 12).find_map(|e| {
        let n = names(e);
        OTHER_NAMES
            .iter()
            .filter(|w| !(own_block && WIDGET_NAMES.contains(*w)))
            .find(|w| n.contains(*w))
    });
    if let Some(w) = other {
        return Err((text, Why::OtherProducts(w)));
    }
    if in_chrome(*element) {
        return Err((text, Why::PageFrame));
    }
    let found = match hint {
        None => unhinted,
        Some(_) => match price::parse(&text, hint) {
            Some(found) => found,
            None => return Err((text, Why::NotInCurrency)),
        },
    };
    if found.amount.is_zero() {
        return Err((text, Why::Zero));
    }
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

/// Whether the small block around `element` (a level or two up) shows a discount percentage and
/// a lower price than `price`, as in "-21% 5,900 7,500": the higher amount is the one before
/// the discount, whatever its element is named.
fn before_discount(element: ElementRef<'_>, price: Price) -> bool {
    lineage(*element, 3).skip(1).any(|block| {
        short_text(block, MAX_LABEL).is_some_and(|text| {
            text.contains('%')
                && price::parse(&text, price.currency).is_some_and(|p| p.amount < price.amount)
        })
    })
}

/// Whether the names `n` mark a former price by the word `w`: as a whole name part (`old`,
/// `price--old`) or glued to "price" (`was-price`, `oldprice`, `priceold`).
fn names_old(n: &str, w: &str) -> bool {
    n.split(|c: char| !c.is_alphanumeric()).any(|t| t == w)
        || n.match_indices(w).any(|(at, _)| {
            let (before, after) = (&n[..at], &n[at + w.len()..]);
            after.starts_with("-price") || after.starts_with("price") || before.ends_with("price")
        })
}

/// The nearest candidate, a price-named one first among equals; two different amounts
/// equally near are a page too ambiguous to answer.
fn choose(
    mut candidates: Vec<Candidate<'_>>,
    rejected: Option<&mut Vec<Rejected>>,
) -> Result<Found<Price>, Reason> {
    let score = Candidate::score;
    candidates.sort_by_key(score);
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
