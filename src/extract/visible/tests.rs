//! Small pages, one per rule of the visible-page reading.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::extract::tests::thread_cpu;

use crate::extract::{
    DEFAULT_MAX_VALUE_SIZE, ExtractError, Extraction, Field, FieldError, FieldKind, Origin, Source,
    extract_until,
};

fn auto(name: &str, kind: FieldKind) -> Field {
    Field {
        name: name.into(),
        source: Source::Auto,
        regex: None,
        kind,
        required: true,
        currency: None,
        max_size: DEFAULT_MAX_VALUE_SIZE,
    }
}

fn run(page: &str) -> Result<Extraction, ExtractError> {
    let fields = [
        auto("price", FieldKind::Price),
        auto("stock", FieldKind::Availability),
    ];
    extract_until(&fields, page, &AtomicBool::new(false))
}

fn price(page: &str) -> Result<String, FieldError> {
    let fields = [auto("price", FieldKind::Price)];
    match extract_until(&fields, page, &AtomicBool::new(false)) {
        Ok(found) => {
            assert_eq!(found.origins["price"], Origin::Visible);
            Ok(found.values["price"]["amount"].as_str().unwrap().to_owned())
        }
        Err(err) => Err(err.fields()[0].1.clone()),
    }
}

fn stock(page: &str) -> Result<String, FieldError> {
    let fields = [auto("stock", FieldKind::Availability)];
    match extract_until(&fields, page, &AtomicBool::new(false)) {
        Ok(found) => Ok(found.values["stock"].as_str().unwrap().to_owned()),
        Err(err) => Err(err.fields()[0].1.clone()),
    }
}

fn related(order: &[u32]) -> String {
    let cards: String = order
        .iter()
        .map(|i| {
            format!(r#"<li class="card"><h3>Other {i}</h3><span class="price">${i}.49</span></li>"#)
        })
        .collect();
    format!(r#"<section class="related-products"><ul>{cards}</ul></section>"#)
}

fn shop(product: &str, after: &str) -> String {
    format!(
        r#"<html><body><header><a href="/cart">Cart <span class="price">$42.00</span></a></header>
        <main><div class="product"><h1>Trail Runner 3</h1>{product}</div>{after}</main>
        <footer>Free shipping over $50</footer></body></html>"#
    )
}

const BUY: &str = r#"<div class="price-box"><del class="price">$159.00</del>
    <span class="price">$129.00</span></div><p>Ships in 2 days</p>
    <button type="submit" class="btn">Add to cart</button>"#;

#[test]
fn the_price_beside_the_title_not_the_old_one_the_cart_or_related_products() {
    let page = shop(BUY, &related(&[1, 2, 3]));
    let found = run(&page).unwrap();
    assert_eq!(found.values["price"]["amount"], "129.00");
    assert_eq!(found.values["price"]["currency"], "USD");
    assert_eq!(found.values["stock"], "InStock");
    assert_eq!(
        found.found_in("price").unwrap(),
        "the visible page at `div.product > div.price-box > span.price`"
    );
    assert_eq!(
        found.found_in("stock").unwrap(),
        "the visible page at `main > div.product > button.btn`"
    );
}

#[test]
fn instalments_unit_prices_and_shipping_are_not_the_price() {
    for (noise, want) in [
        (
            r#"<span class="parcel">4x de R$ 25,00</span><span class="price">R$ 99,90</span>"#,
            "99.90",
        ),
        (
            r#"<span>USD 12.50 / month</span><span class="price">USD 299.00</span>"#,
            "299.00",
        ),
        (
            r#"<span class="price">€ 18,95</span><span>€ 3,79 / kg</span>"#,
            "18.95",
        ),
        (
            r#"<span>Shipping: €4.95</span><span class="amount">€ 24,95</span>"#,
            "24.95",
        ),
        (
            r#"<span class="save">Save $30.00</span><span class="price">$129.00</span>"#,
            "129.00",
        ),
    ] {
        let page = shop(
            &format!("<div>{noise}</div><button>Add to cart</button>"),
            "",
        );
        assert_eq!(price(&page).as_deref(), Ok(want), "{noise}");
    }
}

/// The choice rests on the product block alone: what changes around it does not move it.
#[test]
fn a_banner_reordered_related_products_or_a_review_do_not_move_the_choice() {
    let base = shop(BUY, &related(&[1, 2, 3]));
    let want = price(&base).unwrap();
    let variants = [
        base.replace(
            "<main>",
            r#"<main><div class="banner">Summer sale: all from $9.99!</div>"#,
        ),
        shop(BUY, &related(&[3, 1, 2, 7])),
        shop(
            BUY,
            &format!(
                r#"{}<div class="review"><p>Worth every $129, love it</p></div>"#,
                related(&[1, 2, 3])
            ),
        ),
    ];
    for page in &variants {
        assert_eq!(price(page).as_ref(), Ok(&want), "{page}");
        assert_eq!(price(page), price(page));
    }
}

#[test]
fn two_different_prices_equally_near_are_ambiguous() {
    let page = shop(
        r#"<span class="price">$10.00</span><span class="price">$20.00</span>"#,
        "",
    );
    assert_eq!(
        price(&page),
        Err(FieldError::NoAutoPrice(
            "ambiguous: different prices equally near the product's title"
        ))
    );
}

#[test]
fn forty_prices_and_no_product_block_give_no_price() {
    let grid: String = (1..=40)
        .map(|i| format!(r#"<div class="tile"><a href="/p/{i}">Item {i}</a><span class="price">${i}.00</span></div>"#))
        .collect();
    let with_heading = format!("<main><h1>Deals</h1><div class=grid>{grid}</div></main>");
    assert!(
        matches!(price(&with_heading), Err(FieldError::NoAutoPrice(r)) if r.starts_with("ambiguous"))
    );
    let bare = format!("<main><div class=grid>{grid}</div></main>");
    assert_eq!(
        price(&bare),
        Err(FieldError::NoAutoPrice(
            "without a product title (h1) or a buy button to start from"
        ))
    );
}

#[test]
fn a_price_only_in_an_image_is_no_price() {
    let page = shop(
        r#"<img src="/price.png" alt="$129.00"><button>Add to cart</button>"#,
        "",
    );
    assert_eq!(
        price(&page),
        Err(FieldError::NoAutoPrice(
            "without a price near the product's title or buy button"
        ))
    );
}

#[test]
fn a_right_to_left_page() {
    let page = r#"<html dir="rtl" lang="ar"><body><main><h1>حذاء جري</h1>
        <span class="price">129.00 ر.س</span><button>أضف إلى السلة</button></main></body></html>"#;
    let found = run(page).unwrap();
    assert_eq!(found.values["price"]["amount"], "129.00");
    assert_eq!(found.values["stock"], "InStock");
}

#[test]
fn stock_from_the_buy_button_and_the_wording_near_it() {
    let enabled = shop(
        r#"<span class="price">$5.00</span><button>In den Warenkorb</button>"#,
        "",
    );
    assert_eq!(stock(&enabled).as_deref(), Ok("InStock"));
    let disabled = shop(
        r#"<button class="add-to-cart" disabled>Add to cart</button>"#,
        "",
    );
    assert_eq!(stock(&disabled).as_deref(), Ok("OutOfStock"));
    for (said, want) in [
        ("Ausverkauft", "SoldOut"),
        ("Épuisé", "SoldOut"),
        ("Agotado", "SoldOut"),
        ("Esgotado", "SoldOut"),
        ("Non disponibile", "OutOfStock"),
        ("Niet op voorraad", "OutOfStock"),
        ("Brak towaru", "OutOfStock"),
        ("Není skladem", "OutOfStock"),
        ("Ikke på lager", "OutOfStock"),
        ("Нет в наличии", "OutOfStock"),
        ("Stokta yok", "OutOfStock"),
        ("在庫切れ", "OutOfStock"),
        ("缺货", "OutOfStock"),
        ("품절", "SoldOut"),
        ("Auf Lager", "InStock"),
        ("En stock", "InStock"),
    ] {
        let page = shop(&format!(r#"<p class="availability">{said}</p>"#), "");
        assert_eq!(stock(&page).as_deref(), Ok(want), "{said}");
    }
    let both = shop(r#"<p>In stock</p><p>Out of stock</p>"#, "");
    assert!(
        matches!(stock(&both), Err(FieldError::NoAutoAvailability(r)) if r.starts_with("ambiguous"))
    );
    let far = shop(
        "",
        r#"<div><div><div><div><div><div><div><div><p>Sold out</p></div></div></div></div></div></div></div></div>"#,
    );
    assert!(matches!(
        stock(&far),
        Err(FieldError::NoAutoAvailability(_))
    ));
}

/// A link that submits the product's form is its buy button, in the page's language ("Kupi",
/// Croatian); a link elsewhere is only a link.
#[test]
fn a_link_in_the_products_form_is_its_buy_button() {
    let page = shop(
        r#"<div class="prices"><span class="price-new">270,00 Kn</span>
        <span class="price-old">540,00 Kn</span></div>
        <form method="post" action="/cart/add"><input type="hidden" name="id" value="380">
        <a class="cta" href="/cart/add">Kupi</a></form>"#,
        "",
    );
    let found = run(&page).unwrap();
    assert_eq!(found.values["price"]["amount"], "270.00");
    assert_eq!(found.values["price"]["currency"], "HRK");
    assert_eq!(found.values["stock"], "InStock");
    let link = shop(r#"<a class="cta" href="/p/2">Kupi</a>"#, "");
    assert!(matches!(
        stock(&link),
        Err(FieldError::NoAutoAvailability(_))
    ));
}

/// A buy button that holds a label for each of its states, and an unavailable delivery option
/// beside it: the enabled button answers.
#[test]
fn a_buttons_hidden_labels_and_an_options_availability_are_not_the_products() {
    let page = shop(
        r#"<span class="price">$5.00</span>
        <div class="pickup"><div class="label">Option not available for this product</div></div>
        <a class="add-to-basket" href="/cart/add"><span class="can-buy">Add to cart</span>
        <span class="cannot-buy">Product unavailable</span></a>
        <div class="sticky"><a class="add-to-basket" href="/cart/add">
        <span class="can-buy">Add to cart</span><span class="cannot-buy">Unavailable</span></a></div>"#,
        "",
    );
    assert_eq!(stock(&page).as_deref(), Ok("InStock"));
    let polish = shop(
        r#"<a class="add-to-basket" href="/cart/add"><span>do koszyka</span>
        <span class="unavailable">Produkt niedostępny</span></a>"#,
        "",
    );
    assert_eq!(stock(&polish).as_deref(), Ok("InStock"));
    let sold_out = shop(r#"<button class="add-to-cart">Sold out</button>"#, "");
    assert_eq!(stock(&sold_out).as_deref(), Ok("SoldOut"));
}

/// A link styled as a button is one, and its title may say what it does.
#[test]
fn a_link_styled_as_a_button_buys_when_its_title_says_so() {
    let page = shop(
        r#"<span class="price">36,99 €</span>
        <a href="/%23add" class="btn add-product" title="Ajouter Housse à votre panier">Je fonce</a>"#,
        "",
    );
    assert_eq!(stock(&page).as_deref(), Ok("InStock"));
}

#[test]
fn structured_data_is_read_first() {
    let page = shop(
        BUY,
        r#"<script type="application/ld+json">{"@type":"Product","offers":{"price":"99.00","priceCurrency":"USD","availability":"OutOfStock"}}</script>"#,
    );
    let found = run(&page).unwrap();
    assert_eq!(found.values["price"]["amount"], "99.00");
    assert_eq!(found.origins["price"], Origin::JsonLd);
    assert_eq!(found.values["stock"], "OutOfStock");
    assert!(found.paths.is_empty());
}

/// Hostile pages: no panic, no wrong value, and done in bounded time.
#[test]
fn huge_and_deep_pages_end_quickly_without_a_wrong_value() {
    let review = format!(
        "<p>{} 4 of 5 stars, paid $12 for it</p>",
        "words ".repeat(160)
    );
    let big = shop(BUY, &review.repeat((10 << 20) / review.len()));
    let deep = format!(
        "<h1>X</h1>{}<span>$5.00</span>{}",
        "<div>".repeat(100_000),
        "</div>".repeat(100_000)
    );
    for (page, want) in [(big, Some("129.00")), (deep, None)] {
        // The parse alone, as a selector field costs it: the reading must add little to it.
        let css = Field {
            source: Source::Css {
                css: "h1".into(),
                selector: crate::extract::Css::new(scraper::Selector::parse("h1").unwrap(), "h1")
                    .into(),
                attr: None,
            },
            ..auto("title", FieldKind::Text)
        };
        let started = thread_cpu();
        extract_until(&[css], &page, &AtomicBool::new(false)).unwrap();
        let parse = thread_cpu() - started;
        let started = thread_cpu();
        let result = run(&page);
        let read = thread_cpu() - started;
        assert!(
            read < parse * 3 + Duration::from_secs(1),
            "{read:?} vs a parse of {parse:?}"
        );
        match (result, want) {
            (Ok(found), Some(want)) => assert_eq!(found.values["price"]["amount"], want),
            (Ok(found), None) => panic!("{:?}", found.values),
            (Err(err), _) => assert!(!err.to_string().is_empty()),
        }
    }
}

/// "5,900원~" and "¥1,000〜" read "from": not the price to pay now, as "from $9.99" is not;
/// nor an auction's starting price or its estimate.
#[test]
fn from_prices_starting_bids_and_estimates_are_not_the_price() {
    for noise in [
        "<span>5,900원~</span>",
        "<span>¥1,000〜</span>",
        "<span>Starting price $150</span>",
        "<span>Estimate $300</span>",
    ] {
        let page = shop(
            &format!(r#"<div>{noise}</div><button>Add to cart</button>"#),
            "",
        );
        assert!(price(&page).is_err(), "{noise}");
    }
    let page = shop(
        r#"<div><span>Starting price $150</span></div><div><span class="price">$200</span></div>
        <button>Add to cart</button>"#,
        "",
    );
    assert_eq!(price(&page).as_deref(), Ok("200"));
}

/// Beside a discount and a lower price, the higher one is the price before the discount, and
/// a name glued after "price" (`priceold`) marks a former price as one glued before it does.
#[test]
fn the_price_before_a_discount_is_not_the_price() {
    for product in [
        r#"<div><span>-21%</span> <span>$59.00</span> <span>$75.00</span></div>"#,
        r#"<div><span class="pricenew">$59.00</span><span class="priceold">$75.00</span></div>"#,
    ] {
        let page = shop(&format!("{product}<button>Add to cart</button>"), "");
        assert_eq!(price(&page).as_deref(), Ok("59.00"), "{product}");
    }
}

/// A "slider" beside the title and around the buy button is the product's own gallery; a
/// carousel of other products away from them stays another's, in any order.
#[test]
fn a_slider_around_the_buy_button_is_the_products_own_block() {
    let own = r#"<div class="gallery-slider"><img src="/a.jpg" alt="">
        <div class="slider-price"><span>€27,00</span></div>
        <form><a class="btn" href="/buy">Add to cart</a></form></div>"#;
    let carousel = |order: &[u32]| {
        let cards: String = order
            .iter()
            .map(|i| format!(r#"<li><h3>Other {i}</h3><span class="price">€{i},00</span></li>"#))
            .collect();
        format!(r#"<section class="carousel"><ul>{cards}</ul></section>"#)
    };
    let want = price(&shop(own, &carousel(&[1, 2, 3])));
    assert_eq!(want.as_deref(), Ok("27.00"));
    assert_eq!(price(&shop(own, &carousel(&[3, 1, 2, 9]))), want);
    let far = r#"<section><div class="slider"><div><div><div><div><div>
        <span>€5,00</span></div></div></div></div></div></div></section>"#;
    assert_eq!(
        price(&shop(&format!("{far}<button>Add to cart</button>"), "")),
        Err(FieldError::NoAutoPrice(
            "without a price near the product's title or buy button"
        ))
    );
}

/// A title that links elsewhere is a listed product's: a list of deals has no title of its own.
#[test]
fn an_h1_inside_a_link_is_not_the_products_title() {
    let list: String = (1..=3)
        .map(|i| {
            format!(r#"<li><a href="/deal/{i}"><h1>Deal {i}</h1><span>${i}.00</span></a></li>"#)
        })
        .collect();
    let page = format!("<html><body><ul>{list}</ul></body></html>");
    assert_eq!(
        price(&page),
        Err(FieldError::NoAutoPrice(crate::extract::tests::NO_ANCHOR))
    );
    let with_own = format!(
        r#"<html><body><ul>{list}</ul><div class="product"><h1>Kettle</h1>
        <span class="price">$24.00</span></div></body></html>"#
    );
    assert_eq!(price(&with_own).as_deref(), Ok("24.00"));
}
