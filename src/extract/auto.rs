//! URL-only fields: the product's price or availability from the page's structured data,
//! most reliable first, and from the visible page only when that is silent.

use serde_json::Value;

use super::convert::{Input, preview, read_price};
use super::page::Page;
use super::price::Price;
use super::{Field, FieldError, FieldKind, Origin, availability, microdata, visible};

/// A price or availability with no source: the page's structured data, most reliable first.
pub(super) fn automatic(field: &Field, page: &Page<'_>) -> Result<(Value, Origin), FieldError> {
    match field.kind {
        FieldKind::Price => automatic_price(field, page),
        FieldKind::Availability => automatic_availability(field, page),
        // Config validation gives every other kind a source.
        FieldKind::Text | FieldKind::Number => Err(FieldError::NoAutoPrice("not read for text")),
    }
}

fn automatic_price(field: &Field, page: &Page<'_>) -> Result<(Value, Origin), FieldError> {
    if let Some(product) = page.graph().product() {
        // Several offers (sellers, sizes): the lowest one that can be bought, as a shopper
        // sees it; the lowest of all when none says it is in stock.
        let mut priced: Vec<(Price, String, bool)> = product
            .offers()
            .iter()
            .filter_map(|offer| {
                let input = Input::scalar(offer.price, "price", offer.currency).ok()?;
                let price = read_price(&input, field.currency)?;
                let buyable = !matches!(
                    offer.availability.and_then(availability::normalise),
                    Some("OutOfStock" | "SoldOut" | "Discontinued")
                );
                Some((price, input.text, buyable))
            })
            .collect();
        if priced.iter().any(|(_, _, buyable)| *buyable) {
            priced.retain(|(_, _, buyable)| *buyable);
        }
        if let Some((price, raw, _)) = priced.iter().min_by(|a, b| a.0.amount.cmp(&b.0.amount)) {
            return Ok((price.to_value(raw), Origin::JsonLd));
        }
    }
    let html = page.html();
    for (found, origin) in [
        (microdata::price(html), Origin::Microdata),
        (microdata::meta_price(html), Origin::Meta),
    ] {
        let Some(found) = found else { continue };
        let input = Input {
            text: found.text,
            json_number: false,
            currency: found.currency,
        };
        if let Some(price) = read_price(&input, field.currency) {
            return Ok((price.to_value(&preview(&input.text)), origin));
        }
    }
    // Structured data is silent: only now is the visible page read, so that pages with it
    // cost no more than before.
    let found =
        visible::price(html, page.anchors(), field.currency).map_err(FieldError::NoAutoPrice)?;
    let raw = preview(&found.text);
    page.record_path(&field.name, found.path);
    Ok((found.value.to_value(&raw), Origin::Visible))
}

fn automatic_availability(field: &Field, page: &Page<'_>) -> Result<(Value, Origin), FieldError> {
    let html = page.html();
    let from_jsonld = page.graph().product().and_then(|p| p.availability());
    let found = [
        (from_jsonld.map(str::to_owned), Origin::JsonLd),
        (microdata::availability(html), Origin::Microdata),
        (microdata::meta_availability(html), Origin::Meta),
    ];
    let structured = found.into_iter().find_map(|(text, origin)| {
        let name = availability::normalise(&text?)?;
        Some((Value::String(name.to_owned()), origin))
    });
    if let Some(found) = structured {
        return Ok(found);
    }
    let found =
        visible::availability(html, page.anchors()).map_err(FieldError::NoAutoAvailability)?;
    page.record_path(&field.name, found.path);
    Ok((Value::String(found.value.to_owned()), Origin::Visible))
}

#[cfg(test)]
mod tests {
    use crate::extract::tests::{NO_ANCHOR, PRODUCT, field, ld};
    use crate::extract::{FieldError, FieldKind, Origin, Source, extract, extract_explained};

    #[test]
    fn automatic_price_takes_the_lowest_offer_that_can_be_bought() {
        let fields = [
            field("price", Source::Auto, FieldKind::Price),
            field("stock", Source::Auto, FieldKind::Availability),
        ];
        let found = extract_explained(&fields, &ld(PRODUCT)).unwrap();
        assert_eq!(found.values["price"]["amount"], "1249.00");
        assert_eq!(found.values["price"]["currency"], "USD");
        assert_eq!(found.values["stock"], "InStock");
        assert_eq!(found.origins["price"], Origin::JsonLd);
    }

    #[test]
    fn automatic_price_falls_back_to_microdata_then_meta() {
        let auto = [field("price", Source::Auto, FieldKind::Price)];
        let microdata = r#"<div itemscope itemtype="https://schema.org/Product">
            <span itemprop="price" content="1.299,00">1.299,00 €</span>
            <meta itemprop="priceCurrency" content="EUR"></div>"#;
        let found = extract_explained(&auto, microdata).unwrap();
        assert_eq!(found.values["price"]["amount"], "1299.00");
        assert_eq!(found.values["price"]["currency"], "EUR");
        assert_eq!(found.origins["price"], Origin::Microdata);

        let meta = r#"<head><meta property="og:price:amount" content="24.90">
            <meta property="og:price:currency" content="CHF"></head>"#;
        let found = extract_explained(&auto, meta).unwrap();
        assert_eq!(found.values["price"]["amount"], "24.90");
        assert_eq!(found.values["price"]["currency"], "CHF");
        assert_eq!(found.origins["price"], Origin::Meta);

        let none = extract(&auto, "<p>$5</p>").unwrap_err();
        assert_eq!(none.fields()[0].1, FieldError::NoAutoPrice(NO_ANCHOR));
    }
}
