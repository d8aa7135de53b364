//! schema.org JSON-LD: every `<script type="application/ld+json">` block, read as leniently
//! as browsers and search engines read it, and the Product node with its offers.

use std::collections::HashMap;
use std::sync::LazyLock;

use scraper::{Html, Selector};
use serde_json::{Map, Value};

/// Node types that carry a product's offers.
const PRODUCT_TYPES: &[&str] = &[
    "Product",
    "ProductGroup",
    "IndividualProduct",
    "ProductModel",
    "SomeProducts",
    "Vehicle",
    "Car",
    "Book",
];

/// All JSON-LD on a page, with an index of its `@id`s so references resolve.
#[derive(Debug, Default)]
pub struct Graph {
    roots: Vec<Value>,
}

impl Graph {
    pub fn from_document(document: &Html) -> Graph {
        Graph::from_blocks(&blocks(document))
    }

    /// The graph of JSON-LD blocks read off the page without parsing it.
    pub fn from_blocks(blocks: &[String]) -> Graph {
        let roots = blocks.iter().flat_map(|b| parse_block(b)).collect();
        Graph { roots }
    }

    /// The page's product: the first Product node with offers, else the first Product.
    pub fn product(&self) -> Option<Node<'_>> {
        let ids = self.ids();
        let mut products = Vec::new();
        for root in &self.roots {
            collect_products(root, &mut products);
        }
        let with_offers = products.iter().find(|p| {
            p.contains_key("offers")
                || p.get("hasVariant")
                    .is_some_and(|v| first_objects(v).any(|v| v.contains_key("offers")))
        });
        let map = *with_offers.or(products.first())?;
        // The same product printed once per size or colour, each node with its own offer: the
        // others are its variants, as if listed under `hasVariant`.
        let name = map.get("name").and_then(scalar_str);
        let siblings = products
            .iter()
            .filter(|p| !std::ptr::eq(**p, map) && p.contains_key("offers"))
            .filter(|p| name.is_some() && p.get("name").and_then(scalar_str) == name)
            .copied()
            .collect();
        Some(Node { map, ids, siblings })
    }

    fn ids(&self) -> HashMap<&str, &Map<String, Value>> {
        let mut ids = HashMap::new();
        for root in &self.roots {
            index_ids(root, &mut ids);
        }
        ids
    }
}

/// The text of every JSON-LD block of a parsed page.
pub(super) fn blocks(document: &Html) -> Vec<String> {
    static SCRIPT: LazyLock<Selector> =
        LazyLock::new(|| Selector::parse("script[type]").expect("valid selector"));
    document
        .select(&SCRIPT)
        .filter(|s| is_jsonld(s.value().attr("type").unwrap_or_default()))
        .map(|s| s.text().collect())
        .collect()
}

/// Whether a script's `type` says it holds JSON-LD.
pub(super) fn is_jsonld(kind: &str) -> bool {
    kind.trim()
        .to_ascii_lowercase()
        .starts_with("application/ld+json")
}

/// A node with the page's `@id` index, so `{"@id": "#offer"}` reads as the offer it names.
#[derive(Debug, Clone)]
pub struct Node<'a> {
    map: &'a Map<String, Value>,
    ids: HashMap<&'a str, &'a Map<String, Value>>,
    /// Other nodes of the same product (one per size), read as its variants.
    siblings: Vec<&'a Map<String, Value>>,
}

/// A scalar found by a path, and the object holding it (whose `priceCurrency` a price needs).
#[derive(Debug, Clone)]
pub struct Found<'a> {
    pub value: &'a Value,
    pub parent: &'a Map<String, Value>,
}

/// One offer's price, currency and availability, as written, and what names the offer's
/// variant (its URL and SKU), so the page's own can be told from the others.
#[derive(Debug, Clone)]
pub struct OfferData<'a> {
    pub price: &'a Value,
    pub currency: Option<&'a str>,
    pub availability: Option<&'a str>,
    pub url: Option<&'a str>,
    pub sku: Option<&'a str>,
}

impl<'a> Node<'a> {
    fn object(&self, value: &'a Value) -> Option<&'a Map<String, Value>> {
        self.object_of(value.as_object()?)
    }

    /// The node a reference (`{"@id": "#offer"}`) names, or the node itself.
    fn object_of(&self, map: &'a Map<String, Value>) -> Option<&'a Map<String, Value>> {
        match map.get("@id").and_then(Value::as_str) {
            Some(id) if map.len() <= 2 => Some(self.ids.get(id).copied().unwrap_or(map)),
            _ => Some(map),
        }
    }

    /// Follow `offers.price`-style paths. A list is entered at its first element unless the
    /// segment is an index (`offers.1.price`).
    pub fn get(&self, path: &[String]) -> Option<Found<'a>> {
        let mut parent = self.map;
        let mut value: Option<&'a Value> = None;
        for segment in path {
            let current = match value {
                None => parent,
                Some(v) => {
                    let v = match v {
                        Value::Array(items) => match segment.parse::<usize>() {
                            Ok(i) => {
                                value = Some(items.get(i)?);
                                continue;
                            }
                            Err(_) => items.first()?,
                        },
                        v => v,
                    };
                    self.object(v)?
                }
            };
            parent = current;
            value = Some(current.get(segment.as_str())?);
        }
        let value = match value? {
            Value::Array(items) => items.first()?,
            v => v,
        };
        let value = match value {
            Value::Object(map) => map
                .get("@value")
                .or_else(|| map.get("@id"))
                .unwrap_or(value),
            v => v,
        };
        Some(Found { value, parent })
    }

    /// Every priced offer: Offer, AggregateOffer (its `lowPrice`), lists of offers, offers
    /// inside a priceSpecification, and the offers of a ProductGroup's variants.
    pub fn offers(&self) -> Vec<OfferData<'a>> {
        let mut out = Vec::new();
        if let Some(offers) = self.map.get("offers") {
            self.collect_offers(offers, &mut out, 0);
        }
        let listed = self
            .map
            .get("hasVariant")
            .into_iter()
            .flat_map(first_objects);
        for variant in listed.chain(self.siblings.iter().copied()) {
            let Some(offers) = variant.get("offers") else {
                continue;
            };
            let from = out.len();
            self.collect_offers(offers, &mut out, 0);
            // A variant's offers are named by the variant when they do not name themselves.
            for offer in &mut out[from..] {
                offer.url = offer
                    .url
                    .or_else(|| variant.get("url").and_then(scalar_str));
                offer.sku = offer
                    .sku
                    .or_else(|| variant.get("sku").and_then(scalar_str));
            }
        }
        out
    }

    fn collect_offers(&self, value: &'a Value, out: &mut Vec<OfferData<'a>>, depth: usize) {
        if depth > 4 {
            return;
        }
        if let Value::Array(items) = value {
            for item in items {
                self.collect_offers(item, out, depth + 1);
            }
            return;
        }
        let Some(offer) = self.object(value) else {
            return;
        };
        let text = |key: &str| offer.get(key).and_then(scalar_str);
        let specs: Vec<&'a Map<String, Value>> = offer
            .get("priceSpecification")
            .map(|s| first_objects(s).filter_map(|s| self.object_of(s)).collect())
            .unwrap_or_default();
        let spec_currency = |spec: Option<&'a Map<String, Value>>| {
            spec.and_then(|s| s.get("priceCurrency"))
                .and_then(scalar_str)
        };
        let direct = ["price", "lowPrice"]
            .iter()
            .find_map(|k| offer.get(*k).filter(|v| !v.is_null()));
        // An offer's own price, else each price its specifications give that is what a buyer
        // pays now: not a list or struck-out price, a per-unit price or a charge.
        let prices: Vec<(&'a Value, Option<&'a str>)> = match direct {
            Some(price) => vec![(
                price,
                text("priceCurrency").or_else(|| spec_currency(specs.first().copied())),
            )],
            None => specs
                .iter()
                .filter(|s| is_price_to_pay(s))
                .filter_map(|s| {
                    let price = s.get("price").filter(|v| !v.is_null())?;
                    Some((
                        price,
                        text("priceCurrency").or_else(|| spec_currency(Some(s))),
                    ))
                })
                .collect(),
        };
        let scalar = |p: &&Value| !p.is_array() && !p.is_object();
        if prices.is_empty() || !prices.iter().all(|(p, _)| scalar(p)) {
            // An AggregateOffer may list its offers instead of summing them up.
            if let Some(nested) = offer.get("offers") {
                self.collect_offers(nested, out, depth + 1);
            }
            return;
        }
        for (price, currency) in prices {
            out.push(OfferData {
                price,
                currency,
                availability: text("availability"),
                url: text("url"),
                sku: text("sku"),
            });
        }
    }

    /// The product's own SKU, which names the variant a page shows when its offers are the
    /// variants'.
    pub fn sku(&self) -> Option<&'a str> {
        self.map.get("sku").and_then(scalar_str)
    }

    /// The product's availability: in stock when any offer (a size, a seller) can be bought,
    /// else the first offer's, else its own.
    pub fn availability(&self) -> Option<&'a str> {
        let offers = self.offers();
        let stated = || offers.iter().filter_map(|o| o.availability);
        stated()
            .find(|a| {
                !matches!(
                    super::availability::normalise(a),
                    None | Some("OutOfStock" | "SoldOut" | "Discontinued")
                )
            })
            .or_else(|| stated().next())
            .or_else(|| self.map.get("availability").and_then(scalar_str))
    }
}

/// Whether a price specification is the price a buyer pays now, not a list or struck-out price
/// (`priceType`), a charge for delivery or payment, or a price per unit of measure.
fn is_price_to_pay(spec: &Map<String, Value>) -> bool {
    let named = |key: &str, names: &[&str]| {
        spec.get(key).and_then(scalar_str).is_some_and(|v| {
            let v = v.rsplit(['/', ':', '#']).next().unwrap_or(v);
            names.iter().any(|n| n.eq_ignore_ascii_case(v))
        })
    };
    const NOT_NOW: &[&str] = &[
        "ListPrice",
        "StrikethroughPrice",
        "MSRP",
        "SRP",
        "InvoicePrice",
        "MinimumAdvertisedPrice",
    ];
    const CHARGES: &[&str] = &["DeliveryChargeSpecification", "PaymentChargeSpecification"];
    // A reference quantity in a unit of measure makes a unit price; one piece does not.
    let per_unit = spec
        .get("referenceQuantity")
        .and_then(Value::as_object)
        .and_then(|q| q.get("unitCode").and_then(scalar_str))
        .is_some_and(|unit| !matches!(unit, "C62" | "H87" | "EA"));
    !named("priceType", NOT_NOW) && !named("@type", CHARGES) && !per_unit
}

fn scalar_str(value: &Value) -> Option<&str> {
    match value {
        Value::String(s) => Some(s.as_str()),
        Value::Array(items) => items.first().and_then(scalar_str),
        Value::Object(map) => map.get("@id").and_then(Value::as_str),
        _ => None,
    }
}

fn first_objects(value: &Value) -> impl Iterator<Item = &Map<String, Value>> {
    let items: &[Value] = match value {
        Value::Array(items) => items,
        v => std::slice::from_ref(v),
    };
    items.iter().filter_map(Value::as_object)
}

fn is_product(map: &Map<String, Value>) -> bool {
    let named = |t: &str| {
        let t = t
            .trim_start_matches("http://schema.org/")
            .trim_start_matches("https://schema.org/")
            .trim_start_matches("schema:");
        PRODUCT_TYPES.contains(&t)
    };
    match map.get("@type") {
        Some(Value::String(t)) => named(t),
        Some(Value::Array(types)) => types.iter().filter_map(Value::as_str).any(named),
        _ => false,
    }
}

/// Products anywhere: at the top, in `@graph`, in a WebPage's `mainEntity`, in lists.
fn collect_products<'a>(value: &'a Value, out: &mut Vec<&'a Map<String, Value>>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| collect_products(v, out)),
        Value::Object(map) => {
            if is_product(map) {
                out.push(map);
            }
            for (key, child) in map {
                // A product's own variants and offers are not separate products.
                if is_product(map) && matches!(key.as_str(), "hasVariant" | "isVariantOf") {
                    continue;
                }
                if child.is_object() || child.is_array() {
                    collect_products(child, out);
                }
            }
        }
        _ => {}
    }
}

fn index_ids<'a>(value: &'a Value, ids: &mut HashMap<&'a str, &'a Map<String, Value>>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| index_ids(v, ids)),
        Value::Object(map) => {
            // Only a node with content defines an id; `{"@id": ...}` alone is a reference.
            if let Some(id) = map.get("@id").and_then(Value::as_str)
                && map.len() > 2
            {
                ids.entry(id).or_insert(map);
            }
            map.values().for_each(|v| index_ids(v, ids));
        }
        _ => {}
    }
}

/// One script's JSON-LD, forgiving what real pages get wrong: HTML comment and CDATA
/// wrappers, raw control characters, trailing commas, a stray closing brace, several
/// objects in a row. Whatever cannot be read is skipped, never guessed at.
pub fn parse_block(raw: &str) -> Vec<Value> {
    let text = unwrap(raw);
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if let Ok(value) = serde_json::from_str::<Value>(&text) {
        return vec![value];
    }
    let text = drop_trailing_commas(&text);
    let mut values = Vec::new();
    let mut rest = text.as_str();
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',' || c == ';');
        let Some(start) = rest.find(['{', '[']) else {
            break;
        };
        rest = &rest[start..];
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
        match stream.next() {
            Some(Ok(value)) => {
                values.push(value);
                rest = &rest[stream.byte_offset()..];
            }
            _ => break,
        }
    }
    values
}

fn unwrap(raw: &str) -> &str {
    let mut text = raw.trim();
    loop {
        let before = text.len();
        for prefix in ["<!--", "//<![CDATA[", "<![CDATA[", "/*<![CDATA[*/"] {
            text = text.strip_prefix(prefix).unwrap_or(text).trim_start();
        }
        for suffix in ["-->", "//]]>", "]]>", "/*]]>*/", "//"] {
            text = text.strip_suffix(suffix).unwrap_or(text).trim_end();
        }
        if text.len() == before {
            return text;
        }
    }
}

/// `{"a": 1,}` and `[1, 2,]` are common hand-written mistakes; JSON forbids them.
fn drop_trailing_commas(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if c == ',' {
            let next = text[i + 1..].trim_start().chars().next();
            if matches!(next, Some('}' | ']')) {
                continue;
            }
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn graph(html: &str) -> Graph {
        Graph::from_document(&Html::parse_document(html))
    }

    fn script(json: &str) -> String {
        format!(r#"<html><head><script type="application/ld+json">{json}</script></head></html>"#)
    }

    fn path(p: &str) -> Vec<String> {
        p.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn junk_around_and_inside_blocks_is_forgiven() {
        let cases = [
            r#"{"@type": "Product", "name": "A"}"#,
            "<!-- {\"@type\": \"Product\", \"name\": \"A\"} -->",
            "//<![CDATA[\n{\"@type\": \"Product\", \"name\": \"A\"}\n//]]>",
            "{\"@type\": \"Product\", \"name\": \"A\",}",
            "{\"@type\": \"Product\", \"name\": \"A\", \"tags\": [1, 2,],}",
            "{\"@type\": \"Product\", \"name\": \"A\"}}",
            "{\"@type\": \"Product\", \"name\": \"A\tB\nC\"}",
            "{\"@type\": \"Organization\"} {\"@type\": \"Product\", \"name\": \"A\"}",
            "[{\"@type\": \"Organization\"}, {\"@type\": \"Product\", \"name\": \"A\"}]",
            "{\"@graph\": [{\"@type\": \"WebPage\"}, {\"@type\": [\"Product\"], \"name\": \"A\"}]}",
            "{\"@type\": \"ItemPage\", \"mainEntity\": {\"@type\": \"http://schema.org/Product\", \"name\": \"A\"}}",
        ];
        for case in cases {
            let g = graph(&script(case));
            let product = g
                .product()
                .unwrap_or_else(|| panic!("no product in {case}"));
            let name = product.get(&path("name")).unwrap().value.as_str().unwrap();
            assert!(name.starts_with('A'), "{case}: {name}");
        }
    }

    #[test]
    fn garbage_yields_nothing_and_never_panics() {
        for junk in [
            "",
            "{",
            "}",
            "not json",
            "{\"a\": }",
            "[[[[",
            "\u{0}\u{1}",
            "<!-- -->",
        ] {
            assert!(graph(&script(junk)).product().is_none(), "{junk}");
        }
        let deep = "[".repeat(10_000);
        assert!(graph(&script(&deep)).product().is_none());
    }

    #[test]
    fn offers_in_every_shape() {
        let page = script(
            r##"{"@context": "https://schema.org", "@graph": [
              {"@type": "Product", "name": "Widget", "offers": [
                {"@type": "Offer", "price": 1299.99, "priceCurrency": "USD",
                 "availability": "https://schema.org/InStock"},
                {"@id": "#second"}]},
              {"@id": "#second", "@type": "Offer", "price": "1199.00", "priceCurrency": "USD",
               "availability": "OutOfStock"}]}"##,
        );
        let g = graph(&page);
        let product = g.product().unwrap();
        let offers = product.offers();
        assert_eq!(offers.len(), 2);
        assert_eq!(offers[0].price, &json!(1299.99));
        assert_eq!(offers[1].price, &json!("1199.00"));
        assert_eq!(offers[1].availability, Some("OutOfStock"));
        assert_eq!(
            product.get(&path("offers.price")).unwrap().value,
            &json!(1299.99)
        );
        let second = product.get(&path("offers.1.price")).unwrap();
        assert_eq!(second.value, &json!("1199.00"));
        assert_eq!(second.parent["priceCurrency"], "USD");
        assert_eq!(product.availability(), Some("https://schema.org/InStock"));

        let aggregate = script(
            r#"{"@type": "Product", "offers": {"@type": "AggregateOffer", "lowPrice": "19.99",
                "highPrice": "29.99", "priceCurrency": "EUR", "offerCount": 3}}"#,
        );
        let g = graph(&aggregate);
        let offers = g.product().unwrap().offers();
        assert_eq!(
            (offers[0].price, offers[0].currency),
            (&json!("19.99"), Some("EUR"))
        );

        let spec = script(
            r#"{"@type": "Product", "offers": {"@type": "Offer", "priceSpecification":
                {"@type": "UnitPriceSpecification", "price": 5, "priceCurrency": "GBP"}}}"#,
        );
        let g = graph(&spec);
        let offers = g.product().unwrap().offers();
        assert_eq!(
            (offers[0].price, offers[0].currency),
            (&json!(5), Some("GBP"))
        );
    }

    /// A list of specifications: the price to pay now, not the list price, a per-unit price or
    /// a delivery charge beside it.
    #[test]
    fn price_specifications_as_a_list() {
        let page = script(
            r#"{"@type": "Product", "offers": {"@type": "Offer", "availability": "InStock",
                "url": "/p/1", "sku": "W-1", "priceSpecification": [
                {"@type": "UnitPriceSpecification", "priceType": "https://schema.org/ListPrice",
                 "price": 120, "priceCurrency": "EUR"},
                {"@type": "UnitPriceSpecification", "price": 4.5, "priceCurrency": "EUR",
                 "referenceQuantity": {"value": 1, "unitCode": "KGM"}},
                {"@type": "DeliveryChargeSpecification", "price": 4.95, "priceCurrency": "EUR"},
                {"@type": "UnitPriceSpecification", "price": 99, "priceCurrency": "EUR",
                 "referenceQuantity": {"value": 1, "unitCode": "C62"}}]}}"#,
        );
        let g = graph(&page);
        let offers = g.product().unwrap().offers();
        assert_eq!(offers.len(), 1, "{offers:?}");
        assert_eq!(
            (offers[0].price, offers[0].currency),
            (&json!(99), Some("EUR"))
        );
        assert_eq!((offers[0].url, offers[0].sku), (Some("/p/1"), Some("W-1")));

        let only_list = script(
            r#"{"@type": "Product", "offers": {"@type": "Offer", "priceSpecification": [
                {"priceType": "StrikethroughPrice", "price": 50}]}}"#,
        );
        assert!(graph(&only_list).product().unwrap().offers().is_empty());
    }

    /// One Product node per size, all of one name: in stock when any size is; a related
    /// product of another name is not one of them.
    #[test]
    fn products_of_one_name_are_its_sizes() {
        let page = script(
            r#"[{"@type": "Product", "name": "Boot", "sku": "B-35",
                 "offers": {"price": "69.95", "availability": "OutOfStock"}},
                {"@type": "Product", "name": "Boot", "sku": "B-36",
                 "offers": {"price": "69.95", "availability": "InStock"}},
                {"@type": "Product", "name": "Sock", "sku": "S-1",
                 "offers": {"price": "5", "availability": "InStock"}}]"#,
        );
        let g = graph(&page);
        let product = g.product().unwrap();
        assert_eq!(product.availability(), Some("InStock"));
        let skus: Vec<_> = product.offers().iter().map(|o| o.sku).collect();
        assert_eq!(skus, [None, Some("B-36")]);

        let alone = script(
            r#"[{"@type": "Product", "name": "Boot",
                 "offers": {"price": "69.95", "availability": "OutOfStock"}},
                {"@type": "Product", "name": "Sock",
                 "offers": {"price": "5", "availability": "InStock"}}]"#,
        );
        assert_eq!(
            graph(&alone).product().unwrap().availability(),
            Some("OutOfStock")
        );
    }

    #[test]
    fn a_variants_offers_are_named_by_the_variant() {
        let page = script(
            r#"{"@type": "ProductGroup", "sku": "B-42", "hasVariant": [
                {"@type": "Product", "sku": "B-41", "offers": {"price": "10"}},
                {"@type": "Product", "sku": "B-42", "url": "/p/b?size=42",
                 "offers": {"price": "12"}}]}"#,
        );
        let g = graph(&page);
        let product = g.product().unwrap();
        let named: Vec<_> = product.offers().iter().map(|o| (o.sku, o.url)).collect();
        assert_eq!(
            named,
            [(Some("B-41"), None), (Some("B-42"), Some("/p/b?size=42"))]
        );
        assert_eq!(product.sku(), Some("B-42"));
    }

    #[test]
    fn the_product_with_offers_wins_over_related_products() {
        let page = format!(
            "{}{}",
            script(r#"{"@type": "Product", "name": "Accessory"}"#),
            script(r#"{"@type": "Product", "name": "Main", "offers": {"price": "5"}}"#)
        );
        let g = graph(&page);
        let product = g.product().unwrap();
        assert_eq!(product.get(&path("name")).unwrap().value, "Main");
        assert!(product.get(&path("offers.nope")).is_none());
        assert!(product.get(&path("brand.name")).is_none());
    }
}
