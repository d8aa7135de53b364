//! Prices and structured data through the real binary: a JSON-LD product page and a JSON
//! API, automatic sources, delta/pct in the payload, and notify rules that keep quiet.

use serde_json::json;

use crate::fixtures::*;

/// A product page whose price lives only in JSON-LD, wrapped in the junk real pages carry.
fn jsonld_page(price: &str, availability: &str) -> String {
    format!(
        r#"<!doctype html><html><head><title>Widget</title>
        <script type="application/ld+json"><!--
        {{"@context": "https://schema.org", "@graph": [
          {{"@type": "WebPage", "name": "Widget"}},
          {{"@type": "Product", "name": "Widget", "offers": {{"@type": "Offer",
            "price": "{price}", "priceCurrency": "USD",
            "availability": "https://schema.org/{availability}",}}}}]}}
        --></script></head>
        <body><h1>Widget</h1><p class="promo">Save 20% on accessories!</p></body></html>"#
    )
}

fn api(price: &str, stock: &str) -> String {
    json!({"data": {"sku": "W-1", "price": price, "currency": "EUR", "stock": stock}}).to_string()
}

fn watchers(shop: &Shop) -> String {
    format!(
        r#"[[watchers]]
name = "ld"
url = "{}"
notify = {{ min_change_pct = 5 }}
fields.price = {{ type = "price" }}
fields.stock = {{ type = "availability" }}
fields.title = {{ css = "h1" }}

[[watchers]]
name = "api"
url = "{}"
fields.price = {{ json = "/data/price", type = "price", notify = {{ on = "decrease" }} }}
fields.stock = {{ json = "/data/stock", type = "availability", notify = false }}
"#,
        shop.url("/widget"),
        shop.url("/api/widget"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn test_says_where_an_automatic_price_was_found() {
    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    shop.set("/widget", jsonld_page("1299.99", "InStock"));
    shop.set("/api/widget", api("49.90", "in_stock"));
    let setup = Setup::new(&receiver, r#"["5s"]"#, &watchers(&shop));

    let human = setup.pagehook(&["test", "ld"]).await;
    assert_eq!(human.code, 0, "{human:?}");
    assert!(
        human.stdout.contains(
            r#"price = {"amount":"1299.99","currency":"USD","raw":"1299.99"}  (found in JSON-LD)"#
        ),
        "{human:?}"
    );
    assert!(
        human
            .stdout
            .contains(r#"stock = "InStock"  (found in JSON-LD)"#),
        "{human:?}"
    );

    let lines = setup.pagehook(&["test", "--json"]).await;
    assert_eq!(lines.code, 0, "{lines:?}");
    let lines: Vec<serde_json::Value> = lines
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines[0]["found_in"],
        json!({"price": "JSON-LD", "stock": "JSON-LD"})
    );
    // JSON-LD settles a URL-only field with no DOM.
    assert_eq!(lines[0]["reading"], "stream", "{}", lines[0]);
    assert_eq!(
        lines[1],
        json!({"watcher": "api", "ok": true, "reading": "json", "values": {
            "price": {"amount": "49.90", "currency": "EUR", "raw": "49.90"},
            "stock": "InStock"}})
    );

    // Structured data that cannot be read is a clear failure, not a zero.
    shop.set(
        "/widget",
        "<html><script type=\"application/ld+json\">{\"@type\": \"Product\", \"offers\": {\"price\": }</script><h1>W</h1></html>".into(),
    );
    let broken = setup.pagehook(&["test", "ld"]).await;
    assert_eq!(broken.code, 1, "{broken:?}");
    assert!(
        broken.stdout.contains(
            "field `price`: no price in the page's JSON-LD, microdata or product meta tags"
        ),
        "{broken:?}"
    );
    assert!(!setup.state_dir().exists(), "test touches no state");
}

#[tokio::test(flavor = "multi_thread")]
async fn price_changes_carry_delta_and_pct_and_rules_keep_small_ones_quiet() {
    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    shop.set("/widget", jsonld_page("1299.99", "InStock"));
    shop.set("/api/widget", api("49.90", "in_stock"));
    let setup = Setup::new(&receiver, r#"["5s"]"#, &watchers(&shop));

    let baseline = setup.pagehook(&["once"]).await;
    assert!(baseline.stdout.contains("2 baseline"), "{baseline:?}");

    // -7.69%: passes `min_change_pct = 5`.
    shop.set("/widget", jsonld_page("1199.99", "InStock"));
    let changed = setup.pagehook(&["once", "ld"]).await;
    assert!(changed.stdout.contains("1 changed"), "{changed:?}");
    let event = receiver.wait_for(1).await[0].json();
    let data = &event["data"];
    assert_eq!(data["seq"], 1);
    assert_eq!(
        data["changes"],
        json!({"price": {
            "old": {"amount": "1299.99", "currency": "USD", "raw": "1299.99"},
            "new": {"amount": "1199.99", "currency": "USD", "raw": "1199.99"},
            "delta": "-100.00", "pct": "-7.69"}})
    );
    assert_eq!(data["values"]["stock"], "InStock");

    // -0.83%: recorded, nothing sent.
    shop.set("/widget", jsonld_page("1190.00", "InStock"));
    let quiet = setup.pagehook(&["once", "ld"]).await;
    assert!(quiet.stdout.contains("1 quiet"), "{quiet:?}");
    // Another -7.6%, -8.33% from what the receiver was told: sent, measured from 1199.99.
    shop.set("/widget", jsonld_page("1100.00", "OutOfStock"));
    let again = setup.pagehook(&["once", "ld"]).await;
    assert!(again.stdout.contains("1 changed"), "{again:?}");
    let second = receiver.wait_for(2).await[1].json();
    let changes = &second["data"]["changes"];
    assert_eq!(second["data"]["seq"], 2, "a quiet change uses no seq");
    assert_eq!(changes["price"]["old"]["amount"], "1199.99");
    assert_eq!(changes["price"]["delta"], "-99.99");
    assert_eq!(changes["price"]["pct"], "-8.33");
    assert_eq!(
        changes["stock"],
        json!({"old": "InStock", "new": "OutOfStock"}),
        "availability has no size"
    );

    // The API: `on = "decrease"` keeps a rise quiet; `notify = false` never sends.
    shop.set("/api/widget", api("54.90", "out_of_stock"));
    let rise = setup.pagehook(&["once", "api"]).await;
    assert!(rise.stdout.contains("1 quiet"), "{rise:?}");
    shop.set("/api/widget", api("44.90", "out_of_stock"));
    let drop = setup.pagehook(&["once", "api"]).await;
    assert!(drop.stdout.contains("1 changed"), "{drop:?}");
    let third = receiver.wait_for(3).await[2].json();
    assert_eq!(third["data"]["watcher"], "api");
    assert_eq!(
        third["data"]["changes"],
        json!({"price": {
            "old": {"amount": "49.90", "currency": "EUR", "raw": "49.90"},
            "new": {"amount": "44.90", "currency": "EUR", "raw": "44.90"},
            "delta": "-5.00", "pct": "-10.02"}})
    );
    assert_eq!(third["data"]["values"]["stock"], "OutOfStock");
    assert_eq!(receiver.requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn thresholds_fire_once_when_crossed() {
    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    let page = |price: &str| product("Widget", price, 1);
    shop.set("/w", page("1.299,00 €"));
    let watcher = format!(
        r#"[[watchers]]
name = "w"
url = "{}"
fields.price = {{ css = "div.buy .price", type = "price", notify = {{ below = 1000 }} }}
"#,
        shop.url("/w")
    );
    let setup = Setup::new(&receiver, r#"["5s"]"#, &watcher);
    setup.pagehook(&["once"]).await;
    for (price, sent) in [
        ("1.099,00 €", 0),
        ("999,00 €", 1),
        ("949,00 €", 1),
        ("1.049,00 €", 1),
        ("989,00 €", 2),
    ] {
        shop.set("/w", page(price));
        let out = setup.pagehook(&["once"]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(receiver.requests().len(), sent, "after {price}: {out:?}");
    }
    let last = receiver.requests()[1].json();
    assert_eq!(
        last["data"]["changes"]["price"]["old"]["amount"], "999.00",
        "measured from the last announced price"
    );
    assert_eq!(last["data"]["changes"]["price"]["new"]["currency"], "EUR");
}
