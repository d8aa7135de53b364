//! Which of a product's offers gives its price, when it has several (sizes, colours, sellers):
//! the page's own variant's when the page says which it is, else the lowest that can be bought
//! (the lowest of all when none says it is in stock), as a shopper sees it.
//!
//! The page names its variant by its canonical URL (`<link rel="canonical">`, `og:url`), by the
//! product's own SKU, or by the option a shopper has selected (`<option selected>`, a checked
//! radio button). An offer is the page's when its URL or SKU is one of those. Offers that all
//! name the page (one URL for every size) tell nothing apart: the page's own is only taken
//! when the offers that name it agree on one amount.
//!
//! Availability is the product's, not one offer's: in stock when any offer is
//! (`jsonld::Node::availability`), as a shopper who can pick another size can buy it.

use std::sync::LazyLock;

use rust_decimal::Decimal;
use scraper::{Html, Selector};
use url::Url;

/// What the page says about which variant it shows.
#[derive(Debug, Default)]
pub(super) struct Identity {
    /// Canonical URLs, as paths with their queries.
    urls: Vec<String>,
    /// The product's SKU and the selected options' values.
    variants: Vec<String>,
}

/// One offer as the choice sees it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Offered<'a> {
    pub(super) amount: Decimal,
    pub(super) buyable: bool,
    pub(super) url: Option<&'a str>,
    pub(super) sku: Option<&'a str>,
}

impl Identity {
    pub(super) fn of(html: &Html, product_sku: Option<&str>) -> Self {
        static CANONICAL: LazyLock<Selector> = LazyLock::new(|| {
            Selector::parse(r#"link[rel~="canonical"][href], meta[property="og:url"][content]"#)
                .expect("valid selector")
        });
        static SELECTED: LazyLock<Selector> = LazyLock::new(|| {
            Selector::parse(
                r#"option[selected][value], input[type="radio"][checked][value], input[type="hidden"][name*="sku" i][value], input[type="hidden"][name*="variant" i][value]"#,
            )
            .expect("valid selector")
        });
        let urls = html
            .select(&CANONICAL)
            .filter_map(|e| e.value().attr("href").or_else(|| e.value().attr("content")))
            .filter_map(url_key)
            .collect();
        let variants = html
            .select(&SELECTED)
            .filter_map(|e| e.value().attr("value"))
            .chain(product_sku)
            .map(str::trim)
            // A selected "1" is a quantity, not a variant.
            .filter(|v| v.chars().count() >= 3)
            .map(str::to_owned)
            .collect();
        Identity { urls, variants }
    }

    fn names(&self, offer: &Offered<'_>) -> bool {
        offer
            .url
            .and_then(url_key)
            .is_some_and(|u| self.urls.contains(&u))
            || offer
                .sku
                .is_some_and(|s| self.variants.iter().any(|v| v == s.trim()))
    }
}

/// The index of the offer whose price is the product's, None without offers.
pub(super) fn choose(offers: &[Offered<'_>], page: &Identity) -> Option<usize> {
    let own: Vec<usize> = (0..offers.len())
        .filter(|&i| page.names(&offers[i]))
        .collect();
    if let Some(&first) = own.first()
        && own
            .iter()
            .all(|&i| offers[i].amount == offers[first].amount)
    {
        return Some(first);
    }
    let buyable = offers.iter().any(|o| o.buyable);
    (0..offers.len())
        .filter(|&i| offers[i].buyable || !buyable)
        .min_by_key(|&i| offers[i].amount)
}

/// A URL as pages and offers write it, reduced to what names a page: its path and query, with
/// no fragment and no trailing slash, whether written absolute or relative to the site.
fn url_key(url: &str) -> Option<String> {
    // Any base resolves a relative or protocol-relative URL; only the path and query are kept.
    static BASE: LazyLock<Url> =
        LazyLock::new(|| Url::parse("http://base.invalid/").expect("valid base"));
    let url = BASE.join(url.trim()).ok()?;
    let path = url.path().trim_end_matches('/');
    let key = match url.query() {
        Some(query) => format!("{path}/?{query}"),
        None => path.to_owned(),
    };
    (!key.is_empty()).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(amount: &str, buyable: bool) -> Offered<'static> {
        Offered {
            amount: amount.parse().unwrap(),
            buyable,
            url: None,
            sku: None,
        }
    }

    fn identity(page: &str, sku: Option<&str>) -> Identity {
        Identity::of(&Html::parse_document(page), sku)
    }

    #[test]
    fn without_a_named_variant_the_lowest_that_can_be_bought() {
        let offers = [offer("30", true), offer("10", false), offer("20", true)];
        assert_eq!(choose(&offers, &Identity::default()), Some(2));
        let none_in_stock = [offer("30", false), offer("10", false)];
        assert_eq!(choose(&none_in_stock, &Identity::default()), Some(1));
        assert_eq!(choose(&[], &Identity::default()), None);
    }

    #[test]
    fn the_offer_at_the_canonical_url_is_the_pages_own() {
        let page = identity(
            r#"<link rel="canonical" href="https://shop.example/p/widget?size=l#reviews">"#,
            None,
        );
        let offers = [
            Offered {
                url: Some("/p/widget?size=s"),
                ..offer("10", true)
            },
            Offered {
                url: Some("https://shop.example/p/widget?size=l"),
                ..offer("30", true)
            },
        ];
        assert_eq!(choose(&offers, &page), Some(1));
        let og = identity(
            r#"<meta property="og:url" content="/p/widget?size=s">"#,
            None,
        );
        assert_eq!(choose(&offers, &og), Some(0));
    }

    #[test]
    fn the_selected_option_or_the_products_sku_names_the_variant() {
        let page = identity(
            r#"<select name="size"><option value="W-S">S</option>
               <option value="W-M" selected>M</option></select>
               <select name="qty"><option value="1" selected>1</option></select>"#,
            None,
        );
        let offers = [
            Offered {
                sku: Some("W-S"),
                ..offer("10", true)
            },
            Offered {
                sku: Some("W-M"),
                ..offer("12", true)
            },
        ];
        assert_eq!(choose(&offers, &page), Some(1));
        assert_eq!(choose(&offers, &identity("", Some("W-S"))), Some(0));
        assert_eq!(choose(&offers, &identity("", Some("1"))), Some(0));
    }

    /// One URL on every size names no size: the lowest that can be bought stands.
    #[test]
    fn offers_that_all_name_the_page_with_different_amounts_tell_nothing_apart() {
        let page = identity(r#"<meta property="og:url" content="/p/boots">"#, None);
        let offers = [
            Offered {
                url: Some("/p/boots"),
                ..offer("70.50", true)
            },
            Offered {
                url: Some("https://shop.example/p/boots/"),
                ..offer("62.95", false)
            },
            Offered {
                url: Some("/p/boots"),
                ..offer("80.50", true)
            },
        ];
        assert_eq!(choose(&offers, &page), Some(0));
    }

    #[test]
    fn urls_are_compared_by_path_and_query() {
        assert_eq!(
            url_key("https://a.example/x/?q=1#top").as_deref(),
            Some("/x/?q=1")
        );
        assert_eq!(url_key("//a.example/x/").as_deref(), Some("/x"));
        assert_eq!(url_key("/x/").as_deref(), Some("/x"));
        assert_eq!(url_key("https://a.example"), None);
    }
}
