//! The fallbacks after JSON-LD: schema.org microdata (`itemprop="price"`) and the product
//! meta tags of OpenGraph and Facebook/Pinterest catalogues (`product:price:amount`).

use std::sync::LazyLock;

use scraper::{ElementRef, Html, Selector};

fn selector(css: &str) -> Selector {
    Selector::parse(css).expect("valid built-in selector")
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
fn first(document: &Html, scoped: &Selector, any: &Selector, attrs: &[&str]) -> Option<String> {
    document
        .select(scoped)
        .chain(document.select(any))
        .find_map(|e| read(e, attrs))
}

pub fn price(document: &Html) -> Option<Found> {
    static PRICE: LazyLock<[Selector; 2]> = LazyLock::new(|| {
        [
            selector(r#"[itemtype*="schema.org/Product"] [itemprop="price"]"#),
            selector(r#"[itemprop="price"], [itemprop="lowPrice"]"#),
        ]
    });
    static CURRENCY: LazyLock<[Selector; 2]> = LazyLock::new(|| {
        [
            selector(r#"[itemtype*="schema.org/Product"] [itemprop="priceCurrency"]"#),
            selector(r#"[itemprop="priceCurrency"]"#),
        ]
    });
    let text = first(document, &PRICE[0], &PRICE[1], &["content", "value"])?;
    let currency = first(document, &CURRENCY[0], &CURRENCY[1], &["content", "value"]);
    Some(Found { text, currency })
}

pub fn availability(document: &Html) -> Option<String> {
    static AVAILABILITY: LazyLock<[Selector; 2]> = LazyLock::new(|| {
        [
            selector(r#"[itemtype*="schema.org/Product"] [itemprop="availability"]"#),
            selector(r#"[itemprop="availability"]"#),
        ]
    });
    first(
        document,
        &AVAILABILITY[0],
        &AVAILABILITY[1],
        &["href", "content"],
    )
}

fn meta(document: &Html, selectors: &Selector) -> Option<String> {
    document
        .select(selectors)
        .find_map(|e| read(e, &["content"]))
}

pub fn meta_price(document: &Html) -> Option<Found> {
    static AMOUNT: LazyLock<Selector> = LazyLock::new(|| {
        selector(r#"meta[property="product:price:amount"], meta[property="og:price:amount"]"#)
    });
    static CURRENCY: LazyLock<Selector> = LazyLock::new(|| {
        selector(r#"meta[property="product:price:currency"], meta[property="og:price:currency"]"#)
    });
    let text = meta(document, &AMOUNT)?;
    Some(Found {
        text,
        currency: meta(document, &CURRENCY),
    })
}

pub fn meta_availability(document: &Html) -> Option<String> {
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
        let found = price(&page).unwrap();
        assert_eq!(found.text, "1299.99");
        assert_eq!(found.currency.as_deref(), Some("USD"));
        assert_eq!(
            availability(&page).as_deref(),
            Some("https://schema.org/InStock")
        );
    }

    #[test]
    fn product_meta_tags() {
        let page = Html::parse_document(
            r#"<head><meta property="product:price:amount" content="24.90">
            <meta property="product:price:currency" content="EUR">
            <meta property="og:availability" content="instock"></head>"#,
        );
        let found = meta_price(&page).unwrap();
        assert_eq!(
            (found.text.as_str(), found.currency.as_deref()),
            ("24.90", Some("EUR"))
        );
        assert_eq!(meta_availability(&page).as_deref(), Some("instock"));
        assert_eq!(price(&page), None);
    }
}
