//! The fallbacks after JSON-LD: schema.org microdata (`itemprop="price"`), RDFa Lite
//! (`property="schema:price"`) and the product meta tags of OpenGraph and Facebook/Pinterest
//! catalogues (`product:price:amount`).

use std::sync::LazyLock;

use scraper::{ElementRef, Html, Selector};

fn selector(css: &str) -> Selector {
    Selector::parse(css).expect("valid built-in selector")
}

/// The elements that can carry structured data, in document order: those with an `itemprop`
/// or a `property` (meta tags included), the subjects of every selector below. Found in one
/// walk, so that a page without structured data costs one walk of its tree, not one per
/// selector and source.
pub struct Marked<'a> {
    elements: Vec<ElementRef<'a>>,
}

impl<'a> Marked<'a> {
    pub fn of(document: &'a Html) -> Self {
        let elements = document
            .root_element()
            .descendants()
            .filter_map(ElementRef::wrap)
            .filter(|e| {
                e.value()
                    .attrs()
                    .any(|(name, _)| name == "itemprop" || name == "property")
            })
            .collect();
        Marked { elements }
    }

    /// The marked elements of the document's `<head>` only: its meta tags, found without
    /// walking the body.
    pub fn head(document: &'a Html) -> Self {
        let head = document
            .root_element()
            .children()
            .filter_map(ElementRef::wrap)
            .find(|e| e.value().name() == "head");
        let elements = head
            .into_iter()
            .flat_map(|h| h.descendants())
            .filter_map(ElementRef::wrap)
            .filter(|e| e.value().attr("property").is_some())
            .collect();
        Marked { elements }
    }

    fn select<'s>(&'s self, selector: &'s Selector) -> impl Iterator<Item = ElementRef<'a>> + 's {
        self.elements
            .iter()
            .copied()
            .filter(|element| selector.matches(element))
    }
}

/// A value read from the page and the currency printed beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub text: String,
    pub currency: Option<String>,
}

/// `content` wins over the visible text: shops put the machine-readable form there.
fn read(element: ElementRef<'_>, attrs: &[&str]) -> Option<String> {
    let from_attr = attrs.iter().find_map(|a| element.value().attr(a));
    let text = match from_attr {
        Some(value) => value.to_owned(),
        None => element.text().collect::<Vec<_>>().join(" "),
    };
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (!text.is_empty()).then_some(text)
}

/// The first `itemprop` of a Product's scope, else the first on the page.
fn first(
    document: &Marked<'_>,
    scoped: &Selector,
    any: &Selector,
    attrs: &[&str],
) -> Option<String> {
    document
        .select(scoped)
        .chain(document.select(any))
        .find_map(|e| read(e, attrs))
}

/// The first price in a Product's scope; else, outside any, the page's prices when they are one
/// product's worth (all the same amount): several different ones are a list of products, and
/// the first of them is as likely another product's as this one's.
fn price_of(document: &Marked<'_>, scoped: &Selector, any: &Selector) -> Option<String> {
    const ATTRS: &[&str] = &["content", "value"];
    if let Some(text) = document.select(scoped).find_map(|e| read(e, ATTRS)) {
        return Some(text);
    }
    let digits = |t: &str| t.chars().filter(char::is_ascii_digit).collect::<String>();
    let mut texts = document.select(any).filter_map(|e| read(e, ATTRS));
    let first = texts.next()?;
    let amount = digits(&first);
    texts.all(|t| digits(&t) == amount).then_some(first)
}

/// A vocabulary's product properties as CSS: the price within a product's scope and anywhere,
/// its currency and its availability, scoped first.
struct Vocabulary {
    price: [Selector; 2],
    currency: [Selector; 2],
    availability: [Selector; 2],
}

impl Vocabulary {
    /// `scopes` select a product's element; `property` gives the selectors of a schema.org
    /// property.
    fn new(scopes: &[&str], property: impl Fn(&str) -> Vec<String>) -> Self {
        let pair = |names: &[&str]| {
            let any: Vec<String> = names.iter().flat_map(|n| property(n)).collect();
            let scoped: Vec<String> = scopes
                .iter()
                .flat_map(|scope| any.iter().map(move |p| format!("{scope} {p}")))
                .collect();
            [selector(&scoped.join(", ")), selector(&any.join(", "))]
        };
        Vocabulary {
            price: pair(&["price", "lowPrice"]),
            currency: pair(&["priceCurrency"]),
            availability: pair(&["availability"]),
        }
    }

    fn price(&self, document: &Marked<'_>) -> Option<Found> {
        let text = price_of(document, &self.price[0], &self.price[1])?;
        let [scoped, any] = &self.currency;
        let currency = first(document, scoped, any, &["content", "value"]);
        Some(Found { text, currency })
    }

    fn availability(&self, document: &Marked<'_>) -> Option<String> {
        let [scoped, any] = &self.availability;
        first(document, scoped, any, &["href", "content", "resource"])
    }
}

/// Microdata: `itemprop="price"` in an `itemscope itemtype=".../Product"`.
static MICRODATA: LazyLock<Vocabulary> = LazyLock::new(|| {
    Vocabulary::new(&[r#"[itemtype*="schema.org/Product"]"#], |name| {
        vec![format!(r#"[itemprop="{name}"]"#)]
    })
});

/// RDFa Lite: `property="schema:price"`, or `property="price"` under `vocab=".../schema.org/"`,
/// in a `typeof="Product"`.
static RDFA: LazyLock<Vocabulary> = LazyLock::new(|| {
    Vocabulary::new(
        &[r#"[typeof~="Product"]"#, r#"[typeof~="schema:Product"]"#],
        |name| {
            vec![
                format!(r#"[property="schema:{name}"]"#),
                format!(r#"[vocab*="schema.org"] [property="{name}"]"#),
            ]
        },
    )
});

pub fn price(document: &Marked<'_>) -> Option<Found> {
    MICRODATA.price(document)
}

pub fn availability(document: &Marked<'_>) -> Option<String> {
    MICRODATA.availability(document)
}

pub fn rdfa_price(document: &Marked<'_>) -> Option<Found> {
    RDFA.price(document)
}

pub fn rdfa_availability(document: &Marked<'_>) -> Option<String> {
    RDFA.availability(document)
}

fn meta(document: &Marked<'_>, selectors: &Selector) -> Option<String> {
    document
        .select(selectors)
        .find_map(|e| read(e, &["content"]))
}

/// The `property` of the meta tags that give a product's price, and its currency.
const AMOUNT: [&str; 2] = ["product:price:amount", "og:price:amount"];
const CURRENCY: [&str; 2] = ["product:price:currency", "og:price:currency"];

fn meta_selector(properties: [&str; 2]) -> Selector {
    selector(&format!(
        r#"meta[property="{}"], meta[property="{}"]"#,
        properties[0], properties[1]
    ))
}

pub fn meta_price(document: &Marked<'_>) -> Option<Found> {
    static AMOUNTS: LazyLock<Selector> = LazyLock::new(|| meta_selector(AMOUNT));
    static CURRENCIES: LazyLock<Selector> = LazyLock::new(|| meta_selector(CURRENCY));
    let text = meta(document, &AMOUNTS)?;
    Some(Found {
        text,
        currency: meta(document, &CURRENCIES),
    })
}

/// As [`meta_price`] over the head's meta tags, given as (`property`, `content`) in order, as a
/// streaming read collects them.
pub(super) fn meta_price_in(metas: &[(String, String)]) -> Option<Found> {
    let first = |properties: [&str; 2]| {
        metas
            .iter()
            .filter(|(property, _)| properties.contains(&property.as_str()))
            .find_map(|(_, content)| {
                let text = content.split_whitespace().collect::<Vec<_>>().join(" ");
                (!text.is_empty()).then_some(text)
            })
    };
    Some(Found {
        text: first(AMOUNT)?,
        currency: first(CURRENCY),
    })
}

pub fn meta_availability(document: &Marked<'_>) -> Option<String> {
    static AVAILABILITY: LazyLock<Selector> = LazyLock::new(|| {
        selector(r#"meta[property="product:availability"], meta[property="og:availability"]"#)
    });
    meta(document, &AVAILABILITY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microdata_prefers_content_and_the_product_scope() {
        let page = Html::parse_document(
            r#"<div itemscope itemtype="https://schema.org/Offer"><span itemprop="price">1</span></div>
            <div itemscope itemtype="https://schema.org/Product">
              <span itemprop="price" content="1299.99">$1,299.99</span>
              <meta itemprop="priceCurrency" content="USD">
              <link itemprop="availability" href="https://schema.org/InStock">
            </div>"#,
        );
        let found = price(&Marked::of(&page)).unwrap();
        assert_eq!(found.text, "1299.99");
        assert_eq!(found.currency.as_deref(), Some("USD"));
        assert_eq!(
            availability(&Marked::of(&page)).as_deref(),
            Some("https://schema.org/InStock")
        );
    }

    /// Outside a Product's scope, prices count only when they are one product's worth.
    #[test]
    fn unscoped_microdata_prices_count_when_they_agree() {
        let one = Html::parse_document(
            r#"<div itemscope itemtype="https://schema.org/Offer">
              <meta itemprop="price" content="24.90"><span itemprop="price">24,90 €</span>
              <meta itemprop="priceCurrency" content="EUR"></div>"#,
        );
        let found = price(&Marked::of(&one)).unwrap();
        assert_eq!(
            (found.text.as_str(), found.currency.as_deref()),
            ("24.90", Some("EUR"))
        );
        let listing = Html::parse_document(
            r#"<li itemscope itemtype="https://schema.org/Offer"><meta itemprop="price" content="9.99"></li>
               <li itemscope itemtype="https://schema.org/Offer"><meta itemprop="price" content="24.90"></li>"#,
        );
        assert_eq!(price(&Marked::of(&listing)), None);
    }

    #[test]
    fn rdfa_lite_with_a_prefix_or_a_vocabulary() {
        let prefixed = Html::parse_document(
            r#"<div typeof="schema:Product"><div property="schema:offers" typeof="schema:Offer">
              <span property="schema:price" content="1299.00">1.299,00 €</span>
              <meta property="schema:priceCurrency" content="EUR">
              <link property="schema:availability" href="https://schema.org/InStock"></div></div>"#,
        );
        let found = rdfa_price(&Marked::of(&prefixed)).unwrap();
        assert_eq!(
            (found.text.as_str(), found.currency.as_deref()),
            ("1299.00", Some("EUR"))
        );
        assert_eq!(
            rdfa_availability(&Marked::of(&prefixed)).as_deref(),
            Some("https://schema.org/InStock")
        );
        assert_eq!(price(&Marked::of(&prefixed)), None, "RDFa is not microdata");

        let vocab = Html::parse_document(
            r#"<div vocab="https://schema.org/" typeof="Product"><span property="name">W</span>
              <div property="offers" typeof="Offer"><span property="price">19.99</span>
              <span property="priceCurrency" content="USD">$</span>
              <link property="availability" resource="https://schema.org/OutOfStock"></div></div>"#,
        );
        let found = rdfa_price(&Marked::of(&vocab)).unwrap();
        assert_eq!(
            (found.text.as_str(), found.currency.as_deref()),
            ("19.99", Some("USD"))
        );
        assert_eq!(
            rdfa_availability(&Marked::of(&vocab)).as_deref(),
            Some("https://schema.org/OutOfStock")
        );
    }

    #[test]
    fn product_meta_tags() {
        let page = Html::parse_document(
            r#"<head><meta property="product:price:amount" content="24.90">
            <meta property="product:price:currency" content="EUR">
            <meta property="og:availability" content="instock"></head>"#,
        );
        let found = meta_price(&Marked::of(&page)).unwrap();
        assert_eq!(
            (found.text.as_str(), found.currency.as_deref()),
            ("24.90", Some("EUR"))
        );
        assert_eq!(
            meta_availability(&Marked::of(&page)).as_deref(),
            Some("instock")
        );
        assert_eq!(price(&Marked::of(&page)), None);
    }
}
