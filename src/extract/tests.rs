//! The extraction as a whole: each source, each kind, failures and bad input.

use serde_json::json;

use super::*;

fn css_field(name: &str, css_text: &str) -> Field {
    field(name, css(css_text), FieldKind::Text)
}

#[test]
fn text_leaves_out_scripts_unless_a_selector_names_them() {
    let page = r#"<div class="buy">$5<script>track("view")</script><style>p{}</style></div>
        <script id="data">{"stock": 3}</script>"#;
    let values = extract(&[css_field("buy", "div.buy")], page).unwrap();
    assert_eq!(values["buy"], "$5");
    let values = extract(&[css_field("data", "script#data")], page).unwrap();
    assert_eq!(values["data"], r#"{"stock": 3}"#);
}

const PAGE: &str = r#"<html><head><meta property="og:title" content="Widget Pro"></head>
    <body><h1>  Widget
       Pro </h1><span class="price">Now only $1,299.99!</span>
    <p class="stock">In stock: 17 left</p><span class="price">$5.00</span></body></html>"#;

#[test]
fn text_of_the_first_match_is_whitespace_normalised() {
    let values = extract(
        &[css_field("title", "h1"), css_field("price", ".price")],
        PAGE,
    )
    .unwrap();
    assert_eq!(values["title"], "Widget Pro");
    assert_eq!(values["price"], "Now only $1,299.99!");
}

#[test]
fn attr_reads_an_attribute() {
    let mut field = css_field("og", r#"meta[property="og:title"]"#);
    let Source::Css { attr, .. } = &mut field.source else {
        unreachable!()
    };
    *attr = Some("content".into());
    assert_eq!(extract(&[field], PAGE).unwrap()["og"], "Widget Pro");

    let mut missing = css_field("og", "h1");
    let Source::Css { attr, .. } = &mut missing.source else {
        unreachable!()
    };
    *attr = Some("content".into());
    let err = extract(&[missing], PAGE).unwrap_err();
    assert!(matches!(err.fields()[0].1, FieldError::NoAttribute { .. }));
}

#[test]
fn regex_takes_the_first_capture_group_and_number_parses_it() {
    let mut field = css_field("left", ".stock");
    field.regex = Some(Regex::new(r"(\d+) left").unwrap().into());
    field.kind = FieldKind::Number;
    assert_eq!(extract(&[field], PAGE).unwrap()["left"], "17");
}

#[test]
fn number_of_a_price_text() {
    let mut field = css_field("price", ".price");
    field.kind = FieldKind::Number;
    assert_eq!(extract(&[field], PAGE).unwrap()["price"], "1299.99");
}

#[test]
fn every_failing_required_field_is_reported() {
    let mut word = css_field("word", "h1");
    word.kind = FieldKind::Number;
    let err = extract(&[css_field("gone", ".nope"), word], PAGE).unwrap_err();
    assert_eq!(err.fields().len(), 2);
    assert_eq!(
        err.to_string(),
        "field `gone`: selector `.nope` matched nothing; field `word`: no number in \"Widget Pro\""
    );
}

/// A value over `max_value_size` fails its field, optional or not: never cut short, never
/// null (which would read as a change).
#[test]
fn a_value_over_its_size_cap_fails_the_field() {
    let page = format!("<p class=big>{}</p><h1>Title</h1>", "x".repeat(5_000));
    let mut big = css_field("big", "p.big");
    big.max_size = 4_096;
    let mut optional = big.clone();
    optional.name = "optional".into();
    optional.required = false;
    let err = extract(&[big.clone(), optional, css_field("title", "h1")], &page).unwrap_err();
    let expected = FieldError::TooLarge {
        size: 5_000,
        limit: 4_096,
    };
    assert_eq!(err.fields().len(), 2, "{err}");
    assert_eq!(err.fields()[0], ("big".into(), expected.clone()));
    assert_eq!(err.fields()[1], ("optional".into(), expected));
    assert_eq!(
        err.fields()[0].1.to_string(),
        "the value is 4.9 KiB (5000 bytes), over the field's 4 KiB limit (max_value_size): narrow the selector, add a regex or raise max_value_size"
    );
    big.max_size = 5_000;
    assert_eq!(
        extract(&[big], &page).unwrap()["big"]
            .as_str()
            .unwrap()
            .len(),
        5_000
    );
}

#[test]
fn an_optional_field_that_matches_nothing_is_null() {
    let mut field = css_field("badge", ".badge");
    field.required = false;
    assert_eq!(extract(&[field], PAGE).unwrap()["badge"], Value::Null);
}

/// The CPU time this thread has spent. Bounds on hostile pages are read on it: other work on
/// a loaded machine stretches the wall clock, not this.
pub(super) fn thread_cpu() -> std::time::Duration {
    let time = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    std::time::Duration::new(time.tv_sec as u64, time.tv_nsec as u32)
}

pub(super) const NO_ANCHOR: &str = "without a product title (h1) or a buy button to start from";

pub(super) fn field(name: &str, source: Source, kind: FieldKind) -> Field {
    Field {
        name: name.into(),
        source,
        regex: None,
        kind,
        required: true,
        currency: None,
        max_size: DEFAULT_MAX_VALUE_SIZE,
    }
}

fn css(css: &str) -> Source {
    Source::Css {
        css: css.into(),
        selector: super::Css::new(Selector::parse(css).unwrap(), css).into(),
        attr: None,
    }
}

fn jsonld(path: &str) -> Source {
    Source::JsonLd {
        path: path.split('.').map(str::to_owned).collect(),
    }
}

fn json_at(pointer: &str) -> Source {
    Source::Json {
        pointer: pointer.into(),
    }
}

pub(super) fn ld(json: &str) -> String {
    format!(r#"<script type="application/ld+json">{json}</script>"#)
}

pub(super) const PRODUCT: &str = r#"{"@context": "https://schema.org/", "@type": "Product",
    "name": "Widget", "sku": 1234, "offers": [
      {"@type": "Offer", "price": "1299.99", "priceCurrency": "USD",
       "availability": "https://schema.org/InStock"},
      {"@type": "Offer", "price": 999.5, "priceCurrency": "USD",
       "availability": "https://schema.org/OutOfStock"},
      {"@type": "Offer", "price": "1249.00", "priceCurrency": "USD",
       "availability": "http://schema.org/InStock"}]}"#;

#[test]
fn jsonld_paths_read_the_product() {
    let page = ld(PRODUCT);
    let fields = [
        field("price", jsonld("offers.price"), FieldKind::Price),
        field(
            "stock",
            jsonld("offers.availability"),
            FieldKind::Availability,
        ),
        field("name", jsonld("name"), FieldKind::Text),
        field("sku", jsonld("sku"), FieldKind::Number),
        field("second", jsonld("offers.1.price"), FieldKind::Price),
    ];
    let found = extract_explained(&fields, &page).unwrap();
    let v = &found.values;
    assert_eq!(
        v["price"],
        json!({"amount": "1299.99", "currency": "USD", "raw": "1299.99"})
    );
    assert_eq!(v["stock"], "InStock");
    assert_eq!(v["name"], "Widget");
    assert_eq!(v["sku"], "1234");
    assert_eq!(v["second"]["amount"], "999.5");
    assert_eq!(found.origins["price"], Origin::JsonLd);
}

#[test]
fn css_price_uses_the_currency_hint_for_ambiguous_symbols() {
    let mut price = field("price", css(".price"), FieldKind::Price);
    price.currency = Some("CAD");
    let page = r#"<span class="price">Was $29.99 Now $24.99</span>"#;
    assert_eq!(
        extract(&[price], page).unwrap()["price"],
        json!({"amount": "24.99", "currency": "CAD", "raw": "Was $29.99 Now $24.99"})
    );
    let text = r#"<span class="price">Call us</span>"#;
    let err = extract(&[field("price", css(".price"), FieldKind::Price)], text).unwrap_err();
    assert_eq!(err.fields()[0].1, FieldError::NoPrice("Call us".into()));
}

#[test]
fn json_pointers_read_a_json_response() {
    let body = r#"{"data": {"price": 1199.99, "currency": "EUR", "stock": "in_stock",
        "name": "Widget", "list": null}}"#;
    let fields = [
        field("price", json_at("/data/price"), FieldKind::Price),
        field("stock", json_at("/data/stock"), FieldKind::Availability),
        field("name", json_at("/data/name"), FieldKind::Text),
    ];
    let found = extract_explained(&fields, body).unwrap();
    assert_eq!(
        found.values["price"],
        json!({"amount": "1199.99", "currency": "EUR", "raw": "1199.99"})
    );
    assert_eq!(found.values["stock"], "InStock");
    assert_eq!(found.origins["name"], Origin::Json);

    let missing = [
        field("gone", json_at("/data/gone"), FieldKind::Text),
        field("list", json_at("/data/list"), FieldKind::Text),
        field("data", json_at("/data"), FieldKind::Text),
    ];
    let err = extract(&missing, body).unwrap_err();
    assert_eq!(
        err.fields()[0].1,
        FieldError::PointerNoMatch("/data/gone".into())
    );
    assert_eq!(err.fields()[1].1, FieldError::Null("/data/list".into()));
    assert_eq!(err.fields()[2].1, FieldError::NotScalar("/data".into()));
    let html = extract(&missing[..1], "<html></html>").unwrap_err();
    assert!(
        matches!(html.fields()[0].1, FieldError::NotJson(_)),
        "{html}"
    );
}

#[test]
fn availability_from_visible_text() {
    let page = r#"<p class="stock">Nur noch 2 auf Lager</p><p class="x">Widget</p>"#;
    let stock = field("stock", css(".stock"), FieldKind::Availability);
    assert_eq!(
        extract(&[stock], page).unwrap()["stock"],
        "LimitedAvailability"
    );
    let err = extract(&[field("x", css(".x"), FieldKind::Availability)], page).unwrap_err();
    assert_eq!(
        err.fields()[0].1,
        FieldError::NoAvailability("Widget".into())
    );
}

/// Bad input gives a clear per-field error or value, never a panic.
#[test]
fn bad_input() {
    let fields = [
        field("price", Source::Auto, FieldKind::Price),
        field("ld", jsonld("offers.price"), FieldKind::Price),
        field("css", css(".price"), FieldKind::Price),
        field("json", json_at("/price"), FieldKind::Price),
    ];
    // Empty body: every field says what it missed.
    let err = extract(&fields, "").unwrap_err();
    assert_eq!(
        err.fields()
            .iter()
            .map(|(_, e)| e.clone())
            .collect::<Vec<_>>(),
        [
            FieldError::NoAutoPrice(NO_ANCHOR),
            FieldError::NoProduct,
            FieldError::NoMatch(".price".into()),
            FieldError::NotJson("EOF while parsing a value at line 1 column 0".into()),
        ]
    );

    // Malformed JSON-LD: unreadable blocks are skipped, not guessed at.
    let malformed = ld(r#"{"@type": "Product", "offers": {"price": "12.00",,}"#);
    let err = extract(&fields[..2], &malformed).unwrap_err();
    assert_eq!(err.fields()[0].1, FieldError::NoAutoPrice(NO_ANCHOR));

    // A 10 MB single-line script next to the product.
    let huge = format!(
        "<script>var x = \"{}\";</script>{}<span class=price>{}</span>",
        "a".repeat(10 << 20),
        ld(PRODUCT),
        "9".repeat(1 << 20),
    );
    let err = extract(&fields[..3], &huge).unwrap_err();
    assert_eq!(err.fields().len(), 1, "{err}");
    let FieldError::NoPrice(preview) = &err.fields()[0].1 else {
        panic!("{err}")
    };
    assert!(preview.chars().count() <= 201, "messages stay short");

    // A 10 MB JSON-LD block, readable and then broken.
    let description = "a".repeat(10 << 20);
    let big = ld(&format!(
        r#"{{"@type": "Product", "description": "{description}", "offers": {{"price": "5.00"}}}}"#
    ));
    assert_eq!(
        extract(&fields[..1], &big).unwrap()["price"]["amount"],
        "5.00"
    );
    let broken = big.replace(r#""5.00"}}"#, r#""5.00",}}"#);
    assert_eq!(
        extract(&fields[..1], &broken).unwrap()["price"]["amount"],
        "5.00"
    );
    let cut = big.replace(r#""offers""#, r#""offers"::"#);
    assert_eq!(
        extract(&fields[..1], &cut).unwrap_err().fields()[0].1,
        FieldError::NoAutoPrice(NO_ANCHOR)
    );

    // A page with ten prices: the first match of the selector, the first product.
    let ten: String = (1..=10)
        .map(|i| {
            format!(
                "<span class=price>${i}.99</span>{}",
                ld(&format!(
                    r#"{{"@type": "Product", "offers": {{"price": "{i}.99", "priceCurrency": "USD"}}}}"#
                ))
            )
        })
        .collect();
    let values = extract(&fields[..3], &ten).unwrap();
    for name in ["price", "ld", "css"] {
        assert_eq!(values[name]["amount"], "1.99", "{name}");
    }

    // Text decoded with the wrong charset: a price without a currency, or none at all.
    let mojibake = "<span class=price>1.299,00 â‚¬</span><p class=s>Ã‰puisÃ©</p>";
    let values = extract(&fields[2..3], mojibake).unwrap();
    assert_eq!(values["css"]["amount"], "1299.00");
    let garbled = "<span class=price>\u{fffd}\u{fffd}\u{fffd}</span>";
    assert!(matches!(
        extract(&fields[2..3], garbled).unwrap_err().fields()[0].1,
        FieldError::NoPrice(_)
    ));
}

#[test]
fn a_field_that_found_nothing_makes_the_reason_selector() {
    use crate::reason::Reason;
    let value = ("price".to_owned(), FieldError::NoPrice("Call us".into()));
    let missing = ("stock".to_owned(), FieldError::NoMatch(".stock".into()));
    assert_eq!(
        ExtractError::Fields(vec![value.clone()]).reason(),
        Reason::Value
    );
    assert_eq!(
        ExtractError::Fields(vec![value, missing]).reason(),
        Reason::Selector
    );
}
