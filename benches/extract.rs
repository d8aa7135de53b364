//! `cargo bench --bench extract`: price strings parsed per second, realistic 150 KB product
//! pages extracted per second, on one core, and the time one page of N nested `<div>`s takes
//! (`PAGEHOOK_BENCH_DEPTHS`, default 10000,20000,40000,200000; a depth is skipped once the one
//! before it took over 5 s, as the cost before the nesting cap grew with its square).
//!
//! `PAGEHOOK_BENCH_PAGES=N` extracts the product page exactly N times and nothing else, for
//! counting instructions (`valgrind --tool=cachegrind`), which a busy machine does not skew;
//! with `PAGEHOOK_BENCH_BARE` set, the page without structured data, read off the visible page.

use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use pagehook::config::{self, ProcessEnv};
use pagehook::extract::{Hint, extract, extract_hinted, price};

/// Run `f` repeatedly for about `budget`, returning calls per second of wall time and per
/// second of this process's CPU time (which other load on the machine disturbs less).
fn rate(budget: Duration, mut f: impl FnMut() -> usize) -> (f64, f64) {
    // Warm up caches and lazily built tables first.
    for _ in 0..3 {
        black_box(f());
    }
    let (start, cpu) = (Instant::now(), cpu_seconds());
    let mut done = 0usize;
    while start.elapsed() < budget {
        done += f();
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    (done as f64 / wall, done as f64 / cpu.max(0.01))
}

/// User and system CPU seconds of this process so far, from /proc (0 where there is none).
fn cpu_seconds() -> f64 {
    const CLOCK_TICKS: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / CLOCK_TICKS
}

/// The data file's texts, as shops print them.
fn price_texts() -> Vec<String> {
    include_str!("../src/extract/price/prices.tsv")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split('\t').next())
        .map(|t| {
            let escapes = [
                ("\\u{a0}", "\u{a0}"),
                ("\\u{202f}", "\u{202f}"),
                ("\\u{2009}", "\u{2009}"),
                ("\\u{a}", "\n"),
            ];
            escapes
                .iter()
                .fold(t.to_owned(), |t, (escape, c)| t.replace(escape, c))
        })
        .collect()
}

/// A product page in the shape of a real shop's: navigation, a gallery, the product with
/// JSON-LD, microdata and meta tags, reviews, forty related products with their own prices,
/// inline scripts, and a footer; padded to `size` bytes.
fn product_page(size: usize) -> String {
    let mut page = String::from(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Widget Pro | Shop</title>
<meta property="og:title" content="Widget Pro"><meta property="product:price:amount" content="1199.99">
<meta property="product:price:currency" content="USD">
<script type="application/ld+json">{"@context":"https://schema.org","@type":"Organization","name":"Shop","url":"https://shop.example"}</script>
<script type="application/ld+json">
{"@context": "https://schema.org/", "@type": "Product", "name": "Widget Pro", "sku": "WP-1",
 "image": ["https://shop.example/img/1.jpg"], "brand": {"@type": "Brand", "name": "Acme"},
 "aggregateRating": {"@type": "AggregateRating", "ratingValue": "4.6", "reviewCount": "212"},
 "offers": [{"@type": "Offer", "price": "1199.99", "priceCurrency": "USD",
   "availability": "https://schema.org/InStock", "seller": {"@type": "Organization", "name": "Shop"}},
  {"@type": "Offer", "price": "1149.00", "priceCurrency": "USD",
   "availability": "https://schema.org/OutOfStock"}]}
</script></head><body><header><nav>"#,
    );
    for i in 0..60 {
        page.push_str(&format!(
            r#"<a class="nav-link" href="/c/{i}">Category {i}</a>"#
        ));
    }
    page.push_str(
        r#"</nav><div class="cart">Cart: <span class="price">$0.00</span></div></header>
<main><div itemscope itemtype="https://schema.org/Product"><h1 class="title">Widget Pro</h1>
<div class="buy"><del class="price old">$1,299.99</del> <span class="price now">$1,199.99</span>
<meta itemprop="price" content="1199.99"><meta itemprop="priceCurrency" content="USD">
<p class="stock">In stock (17 available)</p><button>Add to cart</button></div></div>"#,
    );
    let mut i = 0;
    while page.len() < size - 4_000 {
        page.push_str(&format!(
            r#"<article class="card" data-id="{i}"><a href="/p/{i}"><img src="/img/{i}.jpg" alt="Item {i}">
<h3>Related item {i} with a long descriptive name</h3></a><span class="price">${i}.99</span>
<p class="review">Great value, arrived quickly and works as described. {i} stars from me.</p>
<script>window.dataLayer=window.dataLayer||[];dataLayer.push({{"item":"{i}","price":{i}.99}});</script></article>"#
        ));
        i += 1;
    }
    page.push_str("</main><footer>");
    while page.len() < size - 20 {
        page.push_str("<p>Footer text</p>");
    }
    page.push_str("</footer></body></html>");
    page
}

/// The product page with its structured data taken out, as marketplaces serve theirs.
fn visible_only(page: &str) -> String {
    let mut out = page.to_owned();
    while let Some(start) = out.find(r#"<script type="application/ld+json">"#) {
        let end = start + out[start..].find("</script>").expect("closed") + "</script>".len();
        out.replace_range(start..end, "");
    }
    for marker in ["<meta property=\"product:", "<meta itemprop="] {
        while let Some(start) = out.find(marker) {
            let end = start + out[start..].find('>').expect("closed") + 1;
            out.replace_range(start..end, "");
        }
    }
    out.replace(r#" itemscope itemtype="https://schema.org/Product""#, "")
}

const CONFIG: &str = r#"
[webhooks.h]
url = "https://hooks.example/h"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

[[watchers]]
name = "bench"
url = "https://shop.example/widget"
fields.price = { type = "price" }
fields.stock = { type = "availability" }
fields.shown = { css = "div.buy .price.now", type = "price" }
fields.left = { css = "p.stock", regex = '\((\d+) available\)', type = "number" }
fields.title = { css = "h1.title" }
"#;

fn main() {
    if let Some(n) = std::env::var("PAGEHOOK_BENCH_PAGES")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        let loaded = config::parse(CONFIG, Path::new("bench.toml"), &ProcessEnv).expect("valid");
        let mut fields = loaded.config.watchers[0].fields.clone();
        let mut page = product_page(150 * 1024);
        let bare = std::env::var_os("PAGEHOOK_BENCH_BARE").is_some();
        if bare {
            page = visible_only(&page);
            fields.retain(|f| matches!(f.name.as_str(), "price" | "stock"));
        }
        for _ in 0..n {
            black_box(extract(&fields, black_box(&page)).expect("the bench page extracts"));
        }
        let kind = if bare {
            "without structured data"
        } else {
            "product"
        };
        println!("{kind} pages extracted: {n}");
        return;
    }
    let budget = Duration::from_secs(2);
    let texts = price_texts();
    let (strings_per_sec, _) = rate(budget, || {
        for text in &texts {
            black_box(price::parse(black_box(text), None));
        }
        texts.len()
    });
    println!(
        "price strings parsed:  {:>12.0}/s on one core ({} distinct strings; target 1,000,000/s: {:.2}x)",
        strings_per_sec,
        texts.len(),
        strings_per_sec / 1_000_000.0
    );

    let loaded = config::parse(CONFIG, Path::new("bench.toml"), &ProcessEnv).expect("valid");
    let fields = &loaded.config.watchers[0].fields;
    let page = product_page(150 * 1024);
    let values = extract(fields, &page).expect("the bench page extracts");
    assert_eq!(values["price"]["amount"], "1199.99");
    assert_eq!(values["shown"]["amount"], "1199.99");
    // One watcher's checks, as the daemon runs them: its hint remembers that these pages need
    // the DOM (the JSON-LD offers differ), so most skip the streaming read.
    let hint = Hint::default();
    let stop = AtomicBool::new(false);
    let (pages_per_sec, pages_per_cpu_sec) = rate(budget, || {
        black_box(extract_hinted(fields, black_box(&page), &stop, &hint).is_ok());
        1
    });
    println!(
        "product pages extracted: {:>10.1}/s on one core, {:.1}/s of CPU ({} KB each, {} fields: JSON-LD price and availability, CSS price, number and text) = {:.1} MB/s",
        pages_per_sec,
        pages_per_cpu_sec,
        page.len() / 1024,
        fields.len(),
        pages_per_sec * page.len() as f64 / 1e6
    );

    // CSS fields alone, which the streaming read matches with no DOM (a build before it, or
    // a watcher with one field it cannot stream, parses the page).
    let css: Vec<_> = fields
        .iter()
        .filter(|f| !matches!(f.name.as_str(), "price" | "stock"))
        .cloned()
        .collect();
    let values = extract(&css, &page).expect("the page's CSS fields extract");
    assert_eq!(values["shown"]["amount"], "1199.99");
    let (css_per_sec, css_per_cpu_sec) = rate(budget, || {
        black_box(extract(&css, black_box(&page)).is_ok());
        1
    });
    println!(
        "pages with CSS fields only: {:>9.1}/s on one core, {:.1}/s of CPU ({} KB each, {} fields: CSS price, number and text) = {:.2} ms a page",
        css_per_sec,
        css_per_cpu_sec,
        page.len() / 1024,
        css.len(),
        1e3 / css_per_sec
    );

    // The streaming read stops once every field has its value; a field that matches nothing
    // (optional) makes it read the whole page, as one near its end would.
    let mut whole = css.clone();
    whole.push(pagehook::extract::Field {
        name: "absent".into(),
        required: false,
        ..css.iter().find(|f| f.name == "title").unwrap().clone()
    });
    if let pagehook::extract::Source::Css { css, selector, .. } =
        &mut whole.last_mut().unwrap().source
    {
        *css = "div.not-on-the-page".into();
        *selector = pagehook::extract::Css::new(scraper::Selector::parse(css).unwrap(), css).into();
    }
    let (whole_per_sec, whole_per_cpu_sec) = rate(budget, || {
        black_box(extract(&whole, black_box(&page)).is_ok());
        1
    });
    println!(
        "the same, read to the end:  {:>9.1}/s on one core, {:.1}/s of CPU (one more field, matching nothing) = {:.2} ms a page",
        whole_per_sec,
        whole_per_cpu_sec,
        1e3 / whole_per_sec
    );

    // The same page without its JSON-LD, microdata and meta tags: the visible-page reading.
    let bare = visible_only(&page);
    let auto: Vec<_> = fields
        .iter()
        .filter(|f| matches!(f.name.as_str(), "price" | "stock"))
        .cloned()
        .collect();
    let values = extract(&auto, &bare).expect("the bare page extracts");
    assert_eq!(values["price"]["amount"], "1199.99");
    assert_eq!(values["stock"], "InStock");
    let hint = Hint::default();
    let (bare_per_sec, bare_per_cpu_sec) = rate(budget, || {
        black_box(extract_hinted(&auto, black_box(&bare), &stop, &hint).is_ok());
        1
    });
    println!(
        "pages without structured data: {:>5.1}/s on one core, {:.1}/s of CPU ({} KB each, automatic price and availability from the visible page) = {:.2} ms a page",
        bare_per_sec,
        bare_per_cpu_sec,
        bare.len() / 1024,
        1e3 / bare_per_sec
    );

    let nested = CONFIG.replace(
        "fields.price = { type = \"price\" }",
        "fields.nested = { css = \"span.price\", type = \"price\" }",
    );
    let nested = config::parse(&nested, Path::new("bench.toml"), &ProcessEnv).expect("valid");
    let nested = &nested.config.watchers[0].fields;
    let nested = std::slice::from_ref(nested.iter().find(|f| f.name == "nested").unwrap());
    let depths = std::env::var("PAGEHOOK_BENCH_DEPTHS")
        .unwrap_or_else(|_| "10000,20000,40000,200000".into());
    let mut last = Duration::ZERO;
    for depth in depths
        .split(',')
        .map(|d| d.trim().parse::<usize>().expect("a number"))
    {
        let page = format!(
            "<html><body>{}<span class=\"price\">$5.00</span>{}</body></html>",
            "<div>".repeat(depth),
            "</div>".repeat(depth)
        );
        if last > Duration::from_secs(5) {
            println!(
                "nested page, {depth:>7} divs: skipped ({:.1} MB; the previous depth took {:.1} s)",
                page.len() as f64 / 1e6,
                last.as_secs_f64()
            );
            continue;
        }
        let started = Instant::now();
        let values = extract(nested, &page);
        last = started.elapsed();
        println!(
            "nested page, {depth:>7} divs: {:>8.3} s to extract ({:.1} MB; {})",
            last.as_secs_f64(),
            page.len() as f64 / 1e6,
            match values {
                Ok(values) => format!("price {}", values["nested"]["amount"]),
                Err(err) => err.to_string(),
            }
        );
    }
}
