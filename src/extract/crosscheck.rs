//! A structured price checked against what else the page says, where that costs little.
//!
//! - JSON-LD and the product meta tags in `<head>` can give two different prices (an auction's
//!   opening bid and its current bid, a stale cache of either). Two sources that disagree are
//!   no answer by themselves: the visible page decides, and when it shows neither, the field
//!   has no value rather than a guess.
//! - Microdata, RDFa and meta tags are read when a page has no JSON-LD, and those pages are
//!   read on the visible page too: a structured price that the page shows only as a former
//!   price (struck through, named "old") is stale, and the price the page shows as current is
//!   taken. JSON-LD pages are not read this way, which would double their cost.

use serde_json::Value;

use super::convert::{Input, preview, read_price};
use super::page::Page;
use super::price::{self, Price};
use super::visible::{self, Why};
use super::{Field, FieldError, Origin};

/// A price as a source gave it: the amount and the text it was read from.
pub(super) struct Said {
    pub(super) price: Price,
    pub(super) raw: String,
    pub(super) origin: Origin,
}

impl Said {
    fn into_value(self) -> (Value, Origin) {
        (self.price.to_value(&self.raw), self.origin)
    }
}

/// JSON-LD's price, unless the meta tags in `<head>` say another and the visible page does not
/// side with it.
pub(super) fn with_meta(
    field: &Field,
    page: &Page<'_>,
    from_jsonld: Said,
) -> Result<(Value, Origin), FieldError> {
    let meta = page.head_meta_price().and_then(|found| {
        let input = Input {
            text: found.text,
            json_number: false,
            currency: found.currency,
        };
        let price = read_price(&input, field.currency)?;
        Some(Said {
            price,
            raw: preview(&input.text),
            origin: Origin::Meta,
        })
    });
    let Some(meta) = meta.filter(|m| m.price.amount != from_jsonld.price.amount) else {
        return Ok(from_jsonld.into_value());
    };
    let shown = visible::price(page.dom()?, page.anchors(), field.currency).map(|f| f.value.amount);
    match shown {
        Ok(amount) if amount == from_jsonld.price.amount => Ok(from_jsonld.into_value()),
        Ok(amount) if amount == meta.price.amount => Ok(meta.into_value()),
        _ => Err(FieldError::NoAutoPrice(
            "ambiguous: JSON-LD and the product meta tags give different prices, and the visible page shows neither",
        )),
    }
}

/// A price from microdata, RDFa or meta tags, unless the visible page shows it only as a former
/// price and shows another as the current one.
pub(super) fn with_visible(field: &Field, page: &Page<'_>, structured: Said) -> (Value, Origin) {
    let html = page.html();
    let (found, rejected) = visible::price_judged(html, page.anchors(), field.currency);
    let Ok(current) = found else {
        return structured.into_value();
    };
    let amount = structured.price.amount;
    let reads_as = |text: &str| price::parse(text, field.currency).map(|p| p.amount);
    let former = rejected.iter().any(|r| {
        matches!(
            r.why,
            Why::CrossedOut | Why::FormerPrice(_) | Why::BeforeDiscount
        ) && reads_as(&r.text) == Some(amount)
    });
    let also_current = rejected
        .iter()
        .any(|r| r.why == Why::Farther && reads_as(&r.text) == Some(amount));
    if current.value.amount == amount || !former || also_current {
        return structured.into_value();
    }
    page.record_path(&field.name, current.path);
    let raw = preview(&current.text);
    (current.value.to_value(&raw), Origin::Visible)
}

#[cfg(test)]
mod tests {
    use crate::extract::tests::{field, ld};
    use crate::extract::{FieldError, FieldKind, Origin, Source, extract_explained};

    fn price(page: &str) -> Result<(String, Origin), FieldError> {
        let auto = [field("price", Source::Auto, FieldKind::Price)];
        match extract_explained(&auto, page) {
            Ok(found) => Ok((
                found.values["price"]["amount"].as_str().unwrap().to_owned(),
                found.origins["price"],
            )),
            Err(err) => Err(err.fields()[0].1.clone()),
        }
    }

    /// JSON-LD says 150 (an opening bid), the meta tags 200 (the current bid).
    fn auction(shown: &str) -> String {
        let offer = r#"{"@type": "Product", "name": "Lamp",
            "offers": {"@type": "Offer", "price": 150, "priceCurrency": "USD"}}"#;
        format!(
            r#"<html><head><meta property="product:price:amount" content="200">
            <meta property="product:price:currency" content="USD"></head><body>{}
            <div class="lot"><h1>Lamp</h1>{shown}<button>Place bid</button></div>
            <div class="banner">Lots from $9!</div></body></html>"#,
            ld(offer)
        )
    }

    #[test]
    fn json_ld_and_meta_tags_that_disagree_are_decided_by_the_visible_page() {
        let current = r#"<div><span class="price">$200</span></div><p>Starting price $150</p>"#;
        assert_eq!(price(&auction(current)), Ok(("200".into(), Origin::Meta)));
        let opening = r#"<div><span class="price">$150</span></div>"#;
        assert_eq!(price(&auction(opening)), Ok(("150".into(), Origin::JsonLd)));
        assert_eq!(
            price(&auction("<p>Bid now</p>")),
            Err(FieldError::NoAutoPrice(
                "ambiguous: JSON-LD and the product meta tags give different prices, and the visible page shows neither"
            ))
        );
        let agreeing = auction("").replace(r#"content="200""#, r#"content="150.00""#);
        assert_eq!(price(&agreeing), Ok(("150".into(), Origin::JsonLd)));
    }

    fn microdata(shown: &str) -> String {
        format!(
            r#"<html><body><div class="banner">Sale: all from €5,00</div>
            <div itemscope itemtype="https://schema.org/Product"><h1>Bag</h1>
            <div itemprop="offers" itemscope itemtype="https://schema.org/Offer">
            <meta itemprop="price" content="219.99"><meta itemprop="priceCurrency" content="EUR">
            {shown}</div><button>Add to cart</button></div></body></html>"#
        )
    }

    #[test]
    fn a_structured_price_shown_only_as_the_former_one_gives_way_to_the_current() {
        let sale = r#"<div><span class="original-price">€219,99</span></div>
            <div><span class="product-price">€110,00</span></div>"#;
        assert_eq!(
            price(&microdata(sale)),
            Ok(("110.00".into(), Origin::Visible))
        );
        let struck =
            r#"<div><del>€219,99</del></div><div><span class="price">€110,00</span></div>"#;
        assert_eq!(
            price(&microdata(struck)),
            Ok(("110.00".into(), Origin::Visible))
        );
        let current = r#"<div><span class="price">€219,99</span></div>"#;
        assert_eq!(
            price(&microdata(current)),
            Ok(("219.99".into(), Origin::Microdata))
        );
        let unshown = r#"<div><span class="price">€110,00</span></div>"#;
        assert_eq!(
            price(&microdata(unshown)),
            Ok(("219.99".into(), Origin::Microdata))
        );
    }
}
