//! The streaming read against the parse: wherever the streaming read answers, its answer is
//! the parse's, on hand-written pages, on thousands of generated ones full of the malformed
//! markup real pages carry, and (with `PAGEHOOK_REAL_PAGES`) on saved shop pages.

use std::sync::atomic::AtomicBool;

use scraper::Selector;

use super::{Reading, read};
use crate::extract::markup::Unsure;
use crate::extract::{Css, DEFAULT_MAX_VALUE_SIZE, Field, FieldError, FieldKind, Source, css, dom};

fn field(css: &str, attr: Option<&str>) -> Field {
    Field {
        name: "f".into(),
        source: Source::Css {
            css: css.into(),
            selector: Css::new(Selector::parse(css).unwrap(), css).into(),
            attr: attr.map(str::to_owned),
        },
        regex: None,
        kind: FieldKind::Text,
        required: true,
        currency: None,
        max_size: DEFAULT_MAX_VALUE_SIZE,
    }
}

/// The parse's answer, and the streaming read's (Err when it gave the page to the parser).
fn both(
    page: &str,
    css: &str,
    attr: Option<&str>,
) -> (
    Result<String, FieldError>,
    Result<Result<String, FieldError>, Unsure>,
) {
    let stop = AtomicBool::new(false);
    let strip = !css.contains("script") && !css.contains("style");
    let parsed = dom::parse(page, strip, &stop).unwrap();
    let selector = Selector::parse(css).unwrap();
    let dom = css::select(&parsed, css, &selector, attr);
    let f = field(css, attr);
    let streamed = read(std::slice::from_ref(&f), page, strip, &stop).map(|mut s| {
        s.texts
            .remove("f")
            .unwrap_or_else(|| panic!("{css}: {:?}", f.source))
    });
    (dom, streamed)
}

/// The streaming read answers, and as the parse does.
fn agrees(page: &str, css: &str, attr: Option<&str>) -> String {
    let (dom, streamed) = both(page, css, attr);
    let streamed = streamed.unwrap_or_else(|why| panic!("{css} on {page}: {why:?}"));
    assert_eq!(streamed, dom, "{css} on {page}");
    dom.unwrap_or_default()
}

/// Where the streaming read answers, it answers as the parse does; whether it did.
fn never_differs(page: &str, css: &str, attr: Option<&str>) -> bool {
    let (dom, streamed) = both(page, css, attr);
    match streamed {
        Ok(streamed) => {
            assert_eq!(streamed, dom, "{css} {attr:?} on {page:?}");
            true
        }
        Err(_) => false,
    }
}

const SHOP: &str = r#"<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Widget &amp; Co | Shop</title><meta property="og:price:amount" content="12.50">
<script>var a = "<span class='price'>$0</span>";</script>
<script type="application/ld+json">{"@type": "Product", "name": "Widget"}</script>
<style>.price { color: red }</style></head>
<body class="product-page"><header><nav><a href="/">Home</a><span class="cart">$99.00</span></nav></header>
<main id="main"><div class="product"><h1 class="title">Widget&nbsp;Pro</h1>
<div class="buy"><span class="price" data-sku="W-1">$12.50</span>
<p>In stock<br>ships today</p><button type="submit" disabled>Add</button></div>
<ul class="specs"><li>Size: L</li><li>Colour: <b>red</b></li><li>Weight: 2&#160;kg</li></ul>
<svg class="icon" viewBox="0 0 10 10"><clipPath id="c"><rect/></clipPath><title>star</title></svg>
<table><tr><td>a</td><td class="cell">b</td></tr></table>
<select name="size"><option value="s">S<option value="m" selected>M</select>
</div></main><!-- <span class="price">$1</span> --></body></html>"#;

#[test]
fn a_clean_page_is_streamed_and_reads_as_the_parse_reads_it() {
    let cases: &[(&str, Option<&str>, &str)] = &[
        ("span.price", None, "$12.50"),
        // A no-break space is whitespace to the normalising, both ways.
        ("h1", None, "Widget Pro"),
        ("title", None, "Widget & Co | Shop"),
        (
            "meta[property=\"og:price:amount\"]",
            Some("content"),
            "12.50",
        ),
        ("span.price", Some("data-sku"), "W-1"),
        (".buy p", None, "In stockships today"),
        ("main .product > .buy > span", None, "$12.50"),
        ("ul.specs li:nth-child(2)", None, "Colour: red"),
        ("ul.specs li:first-child", None, "Size: L"),
        ("li:nth-of-type(3)", None, "Weight: 2 kg"),
        ("li:not(:first-child) b", None, "red"),
        ("body.product-page .cart", None, "$99.00"),
        ("html[lang=en] h1.title", None, "Widget Pro"),
        ("td.cell", None, "b"),
        ("table tr > td", None, "a"),
        ("table tbody td.cell", None, "b"),
        ("option[selected]", None, "M"),
        ("button[disabled]", None, "Add"),
        ("svg.icon", None, "star"),
        ("[data-sku^=W]", None, "$12.50"),
        (":is(.nothing, .price)", None, "$12.50"),
        ("*[class~=price]", None, "$12.50"),
        (
            "script[type=\"application/ld+json\"]",
            None,
            r#"{"@type": "Product", "name": "Widget"}"#,
        ),
    ];
    for &(css, attr, want) in cases {
        assert_eq!(agrees(SHOP, css, attr), want, "{css}");
    }
    // Missing: the same error both ways.
    let (dom, streamed) = both(SHOP, "span.nothing", None);
    assert_eq!(streamed.unwrap(), dom);
    let (dom, streamed) = both(SHOP, "span.price", Some("nothing"));
    assert_eq!(streamed.unwrap(), dom);
}

#[test]
fn the_choice_of_reading_is_made_from_the_fields() {
    assert_eq!(Reading::of(&[field("span.price", None)]), Reading::Stream);
    for css in [
        "h1 + span",
        "li ~ li",
        "li:last-child",
        "div:has(span)",
        "p:empty",
        ":root p",
        "svg clipPath",
    ] {
        assert!(
            matches!(Reading::of(&[field(css, None)]), Reading::Parse(_)),
            "{css}"
        );
    }
}

/// Markup the parser repairs by rules the streaming read does not follow: it says so (and
/// the parse reads the page) wherever that could change the answer.
#[test]
fn repaired_markup_goes_to_the_parser() {
    for (page, css) in [
        ("<p><b>bold<p>next</b>", "p b"),
        ("<div><a href=x>link</div><span>after</span>", "span"),
        ("<table><span class=p>moved</span><tr><td>x</table>", ".p"),
        ("<b><div>block</b>x</div>", "div"),
        (
            "<template><span class=p>t</span></template><span class=p>x</span>",
            ".p",
        ),
        ("</p><p class=x>x</p>", "p"),
        ("<span>a &copy 2024</span>", "span"),
        ("<p class=a>x<table><td>y</table>", "p.a"),
        ("<body class=a><body class=b><span>x</span>", "span"),
        ("<select><span class=p>x</span></select>", ".p"),
        ("<table><col class=p><tr><td>x</table>", "table > .p"),
        ("<p>a<col class=p>b</p>", ".p"),
        ("<span>x\0y</span>", "span"),
        // A later body's attributes are the first body's: it may match before anything.
        ("<p class=a>x</p><body class=a>", "[class]"),
        ("<p class=a>x</p><HTML lang=en>", "p"),
    ] {
        let (_, streamed) = both(page, css, None);
        assert!(streamed.is_err(), "{page}: {streamed:?}");
    }
    // A selector that matches what the parser makes by itself.
    let (_, streamed) = both("<p class=x>a</p>", "body", None);
    assert_eq!(streamed.unwrap_err(), Unsure::Implied);
}

/// Repairs the model of the parser follows exactly are streamed.
#[test]
fn implied_end_tags_are_followed() {
    for (page, css, want) in [
        ("<p class=a>one<p>two<div>three</div>", "p.a", "one"),
        ("<ul><li class=a>one<li>two</ul>", "li.a", "one"),
        ("<dl><dt>t<dd class=a>d<dt>u</dl>", "dd.a", "d"),
        ("<table><tr><td class=a>1<td>2</table>", "td.a", "1"),
        ("<h2 class=a>x<h3>y</h3>", "h2.a", "x"),
        ("<div><span class=a>x</div>y", "span.a", "x"),
        (
            "<!DOCTYPE html><p class=a>x<table><td>y</table>",
            "p.a",
            "x",
        ),
        ("<ul><li>a<li class=b>b</ul>", "li:nth-child(2)", "b"),
    ] {
        assert_eq!(agrees(page, css, None), want, "{page}");
    }
}

/// Pieces of markup real pages carry, well-formed and not.
const PIECES: &[&str] = &[
    "<div class=a>",
    "</div>",
    "<div class=\"a b\" id=x>",
    "<span class=price>",
    "</span>",
    "<p>",
    "</p>",
    "<p class=a>",
    "<b>",
    "</b>",
    "<i>",
    "</i>",
    "<a href=\"/x\">",
    "</a>",
    "<ul>",
    "</ul>",
    "<li>",
    "<li class=a>",
    "</li>",
    "<table>",
    "</table>",
    "<tr>",
    "<td>",
    "</td>",
    "<th class=a>",
    "<tbody>",
    "<br>",
    "<br/>",
    "<img src=x alt=\"a>b\">",
    "<hr>",
    "<h1>",
    "</h1>",
    "<h2 class=a>",
    "<section>",
    "</section>",
    "<select>",
    "<option>",
    "</select>",
    "<button disabled>",
    "</button>",
    "<form>",
    "</form>",
    "<input value=1>",
    "<svg class=a><path d='M0'/></svg>",
    "<math><mi>x</mi></math>",
    "<noscript><b>n</b></noscript>",
    "<template><p>t</p></template>",
    "<script>var x = '<p>';</script>",
    "<script type=\"application/ld+json\">{\"a\": 1}</script>",
    "<style>p{}</style>",
    "<title>T&amp;</title>",
    "<textarea>a<b</textarea>",
    "<!-- c -->",
    "<!-->",
    "<![CDATA[x]]>",
    "<?php x ?>",
    "<!doctype html>",
    "$12.50",
    " 3 ",
    "&amp;",
    "&nbsp;",
    "&#36;",
    "&copy",
    "R&D",
    "a < b",
    "\r\n",
    "\t",
    "x",
    "<",
    "</>",
    "</ x>",
    "<span",
    "<div class='a",
    "&",
    "<em>",
    "</em>",
    "<nobr>",
    "<ruby>a<rt>b</ruby>",
    "<dl><dt>t<dd>d</dl>",
    "<head>",
    "<body class=a>",
    "</body>",
    "</html>",
    "<html lang=en>",
    "<pre>\n",
    "</pre>",
    "<xmp>",
    "<iframe>x</iframe>",
    "<div/>",
    "<DIV CLASS=A>",
    "<span class=a>",
    "<p id=x>",
];

const SELECTORS: &[(&str, Option<&str>)] = &[
    ("div", None),
    (".a", None),
    ("div.a", None),
    ("#x", None),
    ("span.price", None),
    ("p", None),
    ("div p", None),
    ("div > p", None),
    ("li", None),
    ("li.a", None),
    ("ul li", None),
    ("td", None),
    ("tr td", None),
    ("table td", None),
    ("b", None),
    ("p b", None),
    ("div span", None),
    ("a", Some("href")),
    ("img", Some("alt")),
    ("input", Some("value")),
    (".a", Some("id")),
    ("li:nth-child(2)", None),
    ("li:first-child", None),
    ("p:nth-of-type(2)", None),
    ("div:not(.a)", None),
    ("h1, h2", None),
    ("option", None),
    ("button[disabled]", None),
    ("section p", None),
    ("title", None),
    ("textarea", None),
    ("noscript", None),
    ("svg", None),
    ("path", None),
    ("em", None),
    ("* > span", None),
    ("[class]", None),
    ("[id=x]", None),
    ("pre", None),
    ("iframe", None),
    ("dd", None),
    ("tbody", None),
    ("body > div", None),
    ("head title", None),
    ("script", None),
];

/// Thousands of pages put together from the pieces: the streaming read answers on many
/// and is never different from the parse where it does.
#[test]
fn generated_pages_read_the_same_both_ways() {
    let mut rng = fastrand::Rng::with_seed(7);
    let (mut answered, mut asked) = (0, 0);
    for _ in 0..3_000 {
        let len = rng.usize(1..40);
        let page: String = (0..len)
            .map(|_| PIECES[rng.usize(..PIECES.len())])
            .collect();
        for _ in 0..4 {
            let (css, attr) = SELECTORS[rng.usize(..SELECTORS.len())];
            asked += 1;
            answered += usize::from(never_differs(&page, css, attr));
        }
    }
    // Most pages hold some repair the read leaves to the parser; a good share do not.
    assert!(answered * 5 > asked, "{answered} of {asked}");
}

/// Cut-off bodies, huge lines and stray bytes: an answer the parse agrees with, or the page
/// handed to it, never a panic.
#[test]
fn broken_bodies_read_the_same_or_go_to_the_parser() {
    for cut in [5, 40, 200, 333, 500, 777, 1000, SHOP.len() - 3] {
        let mut end = cut.min(SHOP.len());
        while !SHOP.is_char_boundary(end) {
            end -= 1;
        }
        for &(css, attr) in SELECTORS {
            never_differs(&SHOP[..end], css, attr);
        }
    }
    let long = format!(
        "<div class=a>{}<span class=price>$1</span></div>",
        "x".repeat(5_000_000)
    );
    assert_eq!(agrees(&long, "span.price", None), "$1");
    // 50 MB on one line: the streaming read alone (the parse of it is the hostile-page tests').
    let huge = format!(
        "<p class=a>{}</p><span class=price>$3</span>",
        "y".repeat(50 << 20)
    );
    let f = field("span.price", None);
    let streamed = read(
        std::slice::from_ref(&f),
        &huge,
        true,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(streamed.texts["f"], Ok("$3".to_owned()));
    let replaced =
        String::from_utf8_lossy(b"<span title=\"\xff\xfe\" class=price>\xc3$2</span>").into_owned();
    assert_eq!(agrees(&replaced, "span.price", None), "\u{fffd}$2");
}

/// Saved shop pages (set `PAGEHOOK_REAL_PAGES` to a directory of .html files): the streaming
/// read agrees with the parse wherever it answers, and says how often it does.
#[test]
fn real_pages_read_the_same_both_ways() {
    let Some(dir) = std::env::var_os("PAGEHOOK_REAL_PAGES") else {
        eprintln!("skipped: set PAGEHOOK_REAL_PAGES to a directory of saved pages");
        return;
    };
    let (mut answered, mut asked) = (0, 0);
    let mut reasons = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let page = String::from_utf8_lossy(&bytes);
        for &(css, attr) in SELECTORS {
            asked += 1;
            let (dom, streamed) = both(&page, css, attr);
            match streamed {
                Ok(streamed) => {
                    assert_eq!(streamed, dom, "{css}");
                    answered += 1;
                }
                Err(why) => *reasons.entry(format!("{why:?}")).or_insert(0) += 1,
            }
        }
    }
    eprintln!("streamed {answered} of {asked}; handed to the parser: {reasons:#?}");
}

/// Saved shop pages, URL-only: how often JSON-LD and the head's meta tags settle the price and
/// availability with no DOM (in debug builds each such page is also parsed, and must agree).
#[test]
fn real_pages_url_only() {
    let Some(dir) = std::env::var_os("PAGEHOOK_REAL_PAGES") else {
        eprintln!("skipped: set PAGEHOOK_REAL_PAGES to a directory of saved pages");
        return;
    };
    let auto = |name: &str, kind| Field {
        name: name.into(),
        source: Source::Auto,
        required: false,
        kind,
        ..field("p", None)
    };
    let fields = [
        auto("price", FieldKind::Price),
        auto("stock", FieldKind::Availability),
    ];
    let (mut streamed, mut pages) = (0, 0);
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let page = String::from_utf8_lossy(&bytes);
        let found = crate::extract::extract_explained(&fields, &page).unwrap();
        pages += 1;
        streamed += usize::from(found.parsed_because.is_none());
    }
    eprintln!("URL-only: {streamed} of {pages} pages read with no DOM");
}

/// URL-only fields stream when JSON-LD (checked against the head's meta tags) settles them,
/// and take the parse when microdata or the visible page must speak.
#[test]
fn url_only_fields_stream_when_json_ld_settles_them() {
    let auto = |name: &str, kind| Field {
        name: name.into(),
        source: Source::Auto,
        kind,
        ..field("p", None)
    };
    let fields = [
        auto("price", FieldKind::Price),
        auto("stock", FieldKind::Availability),
    ];
    let ld = r#"<script type="application/ld+json">{"@type":"Product","name":"W",
        "offers":{"@type":"Offer","price":"12.50","priceCurrency":"EUR",
        "availability":"https://schema.org/InStock"}}</script>"#;
    let page = |head: &str, body: &str| {
        format!("<!doctype html><html><head>{head}</head><body><h1>W</h1>{body}</body></html>")
    };
    let read = |page: &str| crate::extract::extract_explained(&fields, page).unwrap();

    let settled = read(&page(ld, "<p>€12.50</p>"));
    assert_eq!(settled.values["price"]["amount"], "12.50");
    assert_eq!(settled.parsed_because, None);
    let agreeing = read(&page(
        &format!(r#"<meta property="product:price:amount" content="12.50">{ld}"#),
        "",
    ));
    assert_eq!(agreeing.parsed_because, None);

    // The meta tags disagree: the visible page decides, so the page is parsed.
    let disputed = read(&page(
        &format!(r#"<meta property="product:price:amount" content="15.00">{ld}"#),
        r#"<div class="price">€12.50</div><button>Add to cart</button>"#,
    ));
    assert_eq!(disputed.values["price"]["amount"], "12.50");
    assert!(disputed.parsed_because.unwrap().contains("URL-only"));
    // Microdata only.
    let microdata = read(&page(
        "",
        r#"<div itemscope itemtype="https://schema.org/Product"><span itemprop="price" content="9.99">9,99 €</span>
        <link itemprop="availability" href="https://schema.org/OutOfStock"></div>"#,
    ));
    assert_eq!(microdata.values["stock"], "OutOfStock");
    assert!(microdata.parsed_because.is_some());
}

/// A watcher whose pages keep needing the DOM skips the streaming read for a while, then tries
/// it again.
#[test]
fn pages_that_keep_needing_the_dom_skip_the_streaming_read_for_a_while() {
    let hint = crate::extract::Hint::default();
    let fields = [field("p b", None)];
    let stop = AtomicBool::new(false);
    let read = |page: &str| crate::extract::extract_hinted(&fields, page, &stop, &hint).unwrap();
    let repaired = "<p><b>bold<p>next</b>";
    assert!(
        read(repaired)
            .parsed_because
            .unwrap()
            .contains("formatting")
    );
    for _ in 0..super::PARSE_RUN {
        let direct = read("<p><b>clean</b></p>");
        assert_eq!(direct.values["f"], "clean");
        assert!(direct.parsed_because.unwrap().contains("last pages"));
    }
    assert_eq!(read("<p><b>clean</b></p>").parsed_because, None);
}
