//! URL-only fields: the product's price or availability from the page's structured data,
//! most reliable first, and from the visible page only when that is silent.

use serde_json::Value;

use super::convert::{Input, preview, read_price};
use super::crosscheck::{self, Said};
use super::microdata::{self, Marked};
use super::offer::{self, Identity, Offered};
use super::page::Page;
use super::price::Price;
use super::{Field, FieldError, FieldKind, Origin, availability, visible};

/// A price or availability with no source: the page's structured data, most reliable first.
pub(super) fn automatic(field: &Field, page: &Page<'_>) -> Result<(Value, Origin), FieldError> {
    match field.kind {
        FieldKind::Price => automatic_price(field, page),
        FieldKind::Availability => automatic_availability(field, page),
        // Config validation gives every other kind a source.
        FieldKind::Text | FieldKind::Number => Err(FieldError::NoAutoPrice("not read for text")),
    }
}

/// A structured source of the product's price, read from the parsed page.
type PriceReader = fn(&Marked<'_>) -> Option<microdata::Found>;
/// A structured source of the product's availability, as written.
type StockReader = fn(&Marked<'_>) -> Option<String>;

fn automatic_price(field: &Field, page: &Page<'_>) -> Result<(Value, Origin), FieldError> {
    if let Some(product) = page.graph().product() {
        let offers = product.offers();
        let priced: Vec<(Price, String, Offered<'_>)> = offers
            .iter()
            .filter_map(|offer| {
                let input = Input::scalar(offer.price, "price", offer.currency).ok()?;
                let price = read_price(&input, field.currency)?;
                let buyable = !matches!(
                    offer.availability.and_then(availability::normalise),
                    Some("OutOfStock" | "SoldOut" | "Discontinued")
                );
                let offered = Offered {
                    amount: price.amount,
                    buyable,
                    url: offer.url,
                    sku: offer.sku,
                };
                Some((price, input.text, offered))
            })
            .collect();
        // Which variant the page shows matters only when the offers differ.
        let identity = match priced.windows(2).any(|w| w[0].0.amount != w[1].0.amount) {
            true => Identity::of(page.dom()?, product.sku()),
            false => Identity::default(),
        };
        let offered: Vec<Offered<'_>> = priced.iter().map(|(_, _, o)| *o).collect();
        if let Some(at) = offer::choose(&offered, &identity) {
            let (price, raw, _) = &priced[at];
            let said = Said {
                price: *price,
                raw: raw.clone(),
                origin: Origin::JsonLd,
            };
            return crosscheck::with_meta(field, page, said);
        }
    }
    let fallbacks: [(PriceReader, Origin); 3] = [
        (microdata::price, Origin::Microdata),
        (microdata::rdfa_price, Origin::Rdfa),
        (microdata::meta_price, Origin::Meta),
    ];
    let html = page.dom()?;
    let marked = Marked::of(html);
    for (read, origin) in fallbacks {
        let Some(found) = read(&marked) else { continue };
        let input = Input {
            text: found.text,
            json_number: false,
            currency: found.currency,
        };
        if let Some(price) = read_price(&input, field.currency) {
            let said = Said {
                price,
                raw: preview(&input.text),
                origin,
            };
            return Ok(crosscheck::with_visible(field, page, said));
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
    let known = |text: Option<&str>, origin| {
        let name = availability::normalise(text?)?;
        Some((Value::String(name.to_owned()), origin))
    };
    let from_jsonld = page.graph().product().and_then(|p| p.availability());
    // The page is walked for the other sources only when JSON-LD said nothing; each is read
    // only when the ones before it said nothing.
    if let Some(found) = known(from_jsonld, Origin::JsonLd) {
        return Ok(found);
    }
    let html = page.dom()?;
    let structured = {
        let marked = Marked::of(html);
        let readers: [(StockReader, Origin); 3] = [
            (microdata::availability, Origin::Microdata),
            (microdata::rdfa_availability, Origin::Rdfa),
            (microdata::meta_availability, Origin::Meta),
        ];
        readers
            .into_iter()
            .find_map(|(read, origin)| known(read(&marked).as_deref(), origin))
    };
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

    /// Sizes at different prices: the page's own size's price, else the lowest in stock.
    #[test]
    fn automatic_price_is_the_pages_own_variants_then_the_lowest_offered() {
        let offers = r#"{"@type": "Product", "name": "Boot", "offers": [
            {"@type": "Offer", "sku": "B-41", "url": "/p/boot?size=41", "price": "60.00",
             "priceCurrency": "EUR", "availability": "OutOfStock"},
            {"@type": "Offer", "sku": "B-42", "url": "/p/boot?size=42", "price": "70.00",
             "priceCurrency": "EUR", "availability": "InStock"},
            {"@type": "Offer", "sku": "B-43", "url": "/p/boot?size=43", "price": "65.00",
             "priceCurrency": "EUR", "availability": "InStock"}]}"#;
        let auto = [field("price", Source::Auto, FieldKind::Price)];
        let amount = |page: &str| {
            let found = extract_explained(&auto, page).unwrap();
            assert_eq!(found.origins["price"], Origin::JsonLd);
            found.values["price"]["amount"].as_str().unwrap().to_owned()
        };
        assert_eq!(amount(&ld(offers)), "65.00", "the lowest in stock");
        let canonical = r#"<link rel="canonical" href="https://shop.example/p/boot?size=42">"#;
        assert_eq!(amount(&format!("{canonical}{}", ld(offers))), "70.00");
        let selected = r#"<select name="size"><option value="B-41" selected>41</option></select>"#;
        assert_eq!(
            amount(&format!("{selected}{}", ld(offers))),
            "60.00",
            "the shown size's price, even out of stock"
        );
    }

    #[test]
    fn automatic_price_and_stock_from_rdfa() {
        let page = r#"<div vocab="https://schema.org/" typeof="Product">
            <span property="price" content="19.99">$19.99</span>
            <meta property="priceCurrency" content="USD">
            <link property="availability" href="https://schema.org/InStock"></div>"#;
        let fields = [
            field("price", Source::Auto, FieldKind::Price),
            field("stock", Source::Auto, FieldKind::Availability),
        ];
        let found = extract_explained(&fields, page).unwrap();
        assert_eq!(found.values["price"]["amount"], "19.99");
        assert_eq!(found.values["price"]["currency"], "USD");
        assert_eq!(found.values["stock"], "InStock");
        assert_eq!(found.found_in("price").as_deref(), Some("RDFa"));
        assert_eq!(found.origins["stock"], Origin::Rdfa);
    }
}
