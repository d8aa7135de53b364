//! `pagehook probe URL`: paste a URL, get what URL-only mode finds and a watcher that works.

use crate::fixtures::*;

/// A product page with no structured data: the price is only on the visible page, among a
/// former price, a related product's and the cart's.
fn plain_page() -> String {
    r#"<!doctype html><html><head><title>Kettle | Shop</title></head><body>
    <header class="site-header"><span>Cart € 0,00</span></header>
    <main><h1>Blue Kettle</h1>
      <div class="offer"><del>€ 39,99</del> <span class="now">€ 24,99</span></div>
      <button type="submit">Add to cart</button></main>
    <section class="related"><h3>Teapot</h3><span>€ 12,00</span></section>
    </body></html>"#
        .to_owned()
}

/// The `[[watchers]]` block `probe` prints after its "Paste" line.
fn pasted_block(stdout: &str) -> &str {
    let (_, block) = stdout
        .split_once("Paste into watchers.toml:\n\n")
        .unwrap_or_else(|| panic!("no block to paste: {stdout}"));
    block
}

#[tokio::test(flavor = "multi_thread")]
async fn probe_finds_the_visible_price_and_its_block_works_as_a_watcher() {
    let shop = Shop::start().await;
    shop.set("/p/blue-kettle", plain_page());
    let receiver = Receiver::start().await;
    // The probe fetches as the user's watchers would: with [defaults]' request options.
    let setup = Setup::new(
        &receiver,
        r#"["5s"]"#,
        "[defaults]\nheaders = { X-Team = \"pricing\" }\n",
    );
    let url = shop.url("/p/blue-kettle");
    let out = setup.pagehook(&["probe", &url]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(shop.last_request_header("x-team"), "pricing");
    let stdout = &out.stdout;
    assert!(stdout.contains("  title: Blue Kettle\n"), "{stdout}");
    assert!(
        stdout.contains(
            "  price: 24.99 EUR  (found in the visible page at `main > div.offer > span.now`)"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("€ 39,99  at `main > div.offer > del`: crossed out"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "€ 12,00  at `body > section.related > span`: inside a block named \"related\""
        ),
        "{stdout}"
    );
    let block = pasted_block(stdout);
    assert!(
        block
            .contains("fields.price = { css = \"main > div.offer > span.now\", type = \"price\" }"),
        "pinned to what was found: {block}"
    );
    assert!(
        block.contains("fields.stock = { type = \"availability\" }  # read from the visible page"),
        "the buy button's state is read, not its text: {block}"
    );

    // Pasted into a config as it is, the block is a watcher that reads the same price.
    let pasted = Setup::new(&receiver, r#"["5s"]"#, block);
    let test = pasted.pagehook(&["test", "--json"]).await;
    assert_eq!(test.code, 0, "{test:?}");
    let line: serde_json::Value = serde_json::from_str(test.stdout.trim()).unwrap();
    assert_eq!(line["watcher"], "127-0-0-1-blue-kettle");
    assert_eq!(line["values"]["price"]["amount"], "24.99");
    assert_eq!(line["values"]["stock"], "InStock");
    assert!(
        !pasted.state_dir().exists(),
        "probe and test touch no state"
    );
    assert!(receiver.requests().is_empty(), "nothing is sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn probe_json_says_where_and_why_not() {
    let shop = Shop::start().await;
    shop.set(
        "/ld",
        r#"<html><head><script type="application/ld+json">{"@type":"Product","name":"Lamp",
        "offers":{"@type":"Offer","price":"19.90","priceCurrency":"CHF",
        "availability":"https://schema.org/OutOfStock"}}</script></head><body><p>Lamp</p></body></html>"#
            .into(),
    );
    shop.set(
        "/empty",
        "<html><body><p>Nothing to buy here.</p></body></html>".into(),
    );
    // Without a config file the probe runs on pagehook's defaults.
    let missing = std::path::Path::new("/nonexistent/watchers.toml");

    let out = pagehook(missing, &["probe", "--json", &shop.url("/ld")]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let line: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(line["ok"], true);
    assert_eq!(line["title"], "Lamp");
    assert_eq!(line["fields"]["price"]["value"]["amount"], "19.90");
    assert_eq!(line["fields"]["price"]["found_in"], "JSON-LD");
    assert_eq!(line["fields"]["stock"]["value"], "OutOfStock");
    let block = line["watcher"].as_str().unwrap();
    assert!(
        block.contains("fields.price = { type = \"price\" }  # read from JSON-LD"),
        "{block}"
    );

    let out = pagehook(missing, &["probe", "--json", &shop.url("/empty")]).await;
    assert_eq!(out.code, 1, "nothing found is a failure: {out:?}");
    let line: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(line["ok"], false);
    assert!(
        line["watcher"].is_null(),
        "no block without a value: {line}"
    );
    let why = line["fields"]["price"]["error"].as_str().unwrap();
    assert!(
        why.contains("without a product title (h1) or a buy button"),
        "{why}"
    );

    shop.set_status("/empty", 503);
    let out = pagehook(missing, &["probe", &shop.url("/empty")]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("pagehook probe: "), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");

    let out = pagehook(missing, &["probe", "ftp://files.example/x"]).await;
    assert_eq!(out.code, 2, "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn probe_with_the_browser_reads_a_page_built_by_script() {
    if crate::browser::browser_source("probe --browser").is_none() {
        return;
    }
    let shop = Shop::start().await;
    shop.set(
        "/app",
        r#"<!doctype html><html><body><div id="app"></div><script>
        document.getElementById('app').innerHTML =
          '<h1>Desk Lamp</h1><p class="cost">€ 49,00</p><button>Add to cart</button>';
        </script></body></html>"#
            .into(),
    );
    let missing = std::path::Path::new("/nonexistent/watchers.toml");
    let served = pagehook(missing, &["probe", "--json", &shop.url("/app")]).await;
    let line: serde_json::Value = serde_json::from_str(served.stdout.trim()).unwrap();
    assert_eq!(line["ok"], false, "no price in the HTML as served: {line}");

    let rendered = pagehook(missing, &["probe", "--browser", &shop.url("/app")]).await;
    assert_eq!(rendered.code, 0, "{rendered:?}");
    assert!(
        rendered
            .stdout
            .contains("  price: 49.00 EUR  (found in the visible page"),
        "{rendered:?}"
    );
    assert!(
        pasted_block(&rendered.stdout).contains("browser = true"),
        "{rendered:?}"
    );
}
