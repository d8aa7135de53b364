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
    // A field the watcher's choice sends to the parse is never streamed.
    if let Reading::Parse(why) = Reading::of(std::slice::from_ref(&f)) {
        return (dom, Err(Unsure::Repaired(why)));
    }
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

/// Markup a reviewer found the model of the parser getting wrong (options outside a select,
/// ruby, the form pointer, column groups, tables in captions, SVG and MathML breakouts and
/// integration points, end tags in a select, quirks mode, foreign attributes), and more near
/// it: each reads the same both ways, or goes to the parser.
#[test]
fn reviewed_markup_reads_the_same_or_goes_to_the_parser() {
    let cases: &[(&str, &str, Option<&str>)] = &[
        (
            "<div><optgroup>a<optgroup>b</optgroup></optgroup></div>",
            "optgroup optgroup",
            None,
        ),
        ("<div><optgroup><span>x</optgroup>y</div>", "optgroup", None),
        ("<div><option><span>x</option>y</div>", "option", None),
        ("<div><rt>a<rt>b</div>", "rt rt", None),
        ("<div><ruby><rtc>a<rt>b</ruby></div>", "rtc rt", None),
        (
            "<div><ruby>x<rtc>a<rt>b</rt>c</rtc></ruby></div>",
            "rtc",
            None,
        ),
        (
            "<div><form id=a></div><form id=b><input name=q></form>",
            "form#b",
            None,
        ),
        (
            "<div><form id=a></div><div><form id=b><input name=q></form></div>",
            "#b input",
            Some("name"),
        ),
        (
            "<table><colgroup><span>x</span></colgroup></table>",
            "colgroup span",
            None,
        ),
        (
            "<table><colgroup>abc</colgroup></table><p>z</p>",
            "colgroup",
            None,
        ),
        (
            "<table><caption><table><tr><td>x</td></tr></table></caption></table>",
            "caption td",
            None,
        ),
        (
            "<!doctype html><table><caption>c<table><tr><td>x</td></tr></table>q</caption></table>",
            "caption",
            None,
        ),
        ("<pre>&#10;x</pre>", "pre", None),
        ("<textarea>&#10;x</textarea>", "textarea", None),
        ("<pre>&NewLine;x</pre>", "pre", None),
        (
            "<div><svg><font color=red>x</font></svg></div>",
            "svg font",
            None,
        ),
        (
            "<div><svg><font color=red>x</font></svg></div>",
            "div > font",
            None,
        ),
        ("<div><svg></p>x</svg></div>", "svg", None),
        ("<div><svg></p>x</svg></div>", "div p", None),
        ("<div><svg></br>x</svg></div>", "div br", None),
        ("<div><svg><html><g id=z>t</g></svg></div>", "svg g", None),
        (
            "<div><svg><address>x</address></svg></div>",
            "svg address",
            None,
        ),
        (
            "<div><svg><address>x</address></svg></div>",
            "div > address",
            None,
        ),
        (
            "<ul><li>a<svg><foreignObject><li>b</li></foreignObject></svg></li></ul>",
            "li li",
            None,
        ),
        (
            "<math><annotation-xml><textarea>a<b>c</b></textarea></annotation-xml></math>",
            "textarea",
            None,
        ),
        (
            "<math><desc><textarea>a<i>c</i></textarea></desc></math>",
            "textarea",
            None,
        ),
        (
            "<svg><mi><textarea>a<i>c</i></textarea></mi></svg>",
            "textarea",
            None,
        ),
        (
            "<div><svg><a xlink:href=\"/x\">t</a></svg></div>",
            "svg a",
            Some("href"),
        ),
        (
            "<div><svg><g foo:bar=\"v\">t</g></svg></div>",
            "svg g",
            Some("foo:bar"),
        ),
        (
            "<div><math viewbox=\"v\">t</math></div>",
            "math[viewbox]",
            None,
        ),
        (
            "<div><svg definitionurl=\"v\">t</svg></div>",
            "svg[definitionurl]",
            None,
        ),
        (
            "<div><math><clippath>t</clippath></math></div>",
            "math clippath",
            None,
        ),
        (
            "<div><svg viewBox=\"0 0 1 1\">t</svg></div>",
            "svg",
            Some("viewBox"),
        ),
        (
            "<div><svg viewBox=\"0 0 1 1\">t</svg></div>",
            "svg",
            Some("viewbox"),
        ),
        (
            "x<!DOCTYPE html><p><table><tr><td>y</td></tr></table>",
            "p td",
            None,
        ),
        (
            "<div><select><option>a</div>b</option></select>c</div>",
            "option",
            None,
        ),
        (
            "<div><select><option>a</div>b</option></select>c</div>",
            "div",
            None,
        ),
        (
            "<p><select><option>a</p>b</option></select>c</p>",
            "option",
            None,
        ),
        (
            "<b><select><option>a</b>b</option></select>c</b>",
            "option",
            None,
        ),
        (
            "<div><svg><script>a<b>c</b></script></svg></div>",
            "svg b",
            None,
        ),
        (
            "<div><svg><style>a<b>c</b></style></svg></div>",
            "svg b",
            None,
        ),
        ("<div><noscript><b>x</b></noscript></div>", "noscript", None),
        (
            "<div><noscript><b>x</b></noscript></div>",
            "noscript b",
            None,
        ),
        ("<div><iframe><b>x</b></iframe></div>", "iframe", None),
        ("<div><noembed><b>x</b></noembed></div>", "noembed", None),
        ("<div title=\"a&amp;b&lt;c\">x</div>", "div", Some("title")),
        ("<div title=\"a\r\nb\">x</div>", "div", Some("title")),
        ("<div>a\r\nb\rc</div>", "div", None),
        ("<div TITLE=one title=two>x</div>", "div", Some("title")),
        ("<div title=a/>x</div>", "div", Some("title")),
        ("<div title='a>b'>x</div>", "div", Some("title")),
        (
            "<div title=\"a\"title=\"b\" id=q>x</div>",
            "#q",
            Some("title"),
        ),
        ("<div =x>y</div>", "div", Some("=x")),
        ("<ul><li>a<menu><li>b</menu></ul>", "menu li", None),
        ("<dl><dt>a<dd>b<dt>c</dl>", "dd", None),
        ("<button>a<button>b</button>", "button button", None),
        ("<button>a<button>b</button>", "button", None),
        ("<h1>a<h2>b</h2>", "h1 h2", None),
        ("<h1>a<h2>b</h1>c", "h2", None),
        ("<h1>a<div><h2>b</h2></div></h1>", "h1 h2", None),
        (
            "<table><tr><td>a</td></tr><table><tr><td>b</td></tr></table>",
            "table table td",
            None,
        ),
        (
            "<table><tr><td>a</td><tr><td>b</td></table>",
            "tbody > tr:nth-child(2) > td",
            None,
        ),
        (
            "<table><thead><tr><td>a</td></tr><tr><td>b</td></tr></table>",
            "thead td",
            None,
        ),
        ("<table><tr><th>a<td>b</table>", "tr > td", None),
        ("<div><li>a<li>b</div>", "li li", None),
        ("<p>a<li>b</p>", "p li", None),
        ("<p>a<dd>b</p>", "p dd", None),
        ("<dl><dd>a<div><dt>b</div></dl>", "dd dt", None),
        ("<ul><li>a<div><li>b</div></ul>", "li li", None),
        ("<ul><li>a<address><li>b</address></ul>", "li li", None),
        ("<ul><li>a<span><li>b</span></ul>", "li li", None),
        ("<ul><li>a<ul><li>b</li></ul>c</li></ul>", "ul > li", None),
        ("<ul><li><ol><li>b</li></ol></li>x</ul>", "ol", None),
        ("<div><p>a<ol><li>b</ol></div>", "p ol", None),
        ("<div><option>a<option>b</div>", "option option", None),
        (
            "<datalist><option>a<option>b</datalist>",
            "option option",
            None,
        ),
        (
            "<datalist><option>a<span>b</span></datalist>",
            "option span",
            None,
        ),
        ("<p>a<hr>b</p>", "p", None),
        ("<div>x</body>y</html>z</div>", "div", None),
        ("<div>x</body><p>q</div>", "div p", None),
        (
            "<head><title>t</title></head> <div>x</div>",
            "div:nth-child(1)",
            None,
        ),
        (
            "<title>t</title><div>x</div><div>y</div>",
            "div:nth-child(2)",
            None,
        ),
        (
            "<html><head></head><body><div>x</div><div>y</div>",
            "div:nth-of-type(2)",
            None,
        ),
        (
            "<div>a<nobr>b</nobr><nobr>c</nobr></div>",
            "nobr:nth-child(2)",
            None,
        ),
        ("<pre>\n\nx</pre>", "pre", None),
        ("<pre><!--c-->\nx</pre>", "pre", None),
        ("<listing>\nx</listing>", "listing", None),
        ("<textarea>\r\nx</textarea>", "textarea", None),
        ("<textarea>\n\nx</textarea>", "textarea", None),
        ("<div>&amp</div>", "div", None),
        ("<div>&#x41;&#65;&#0065;</div>", "div", None),
        ("<div>&#x0;</div>", "div", None),
        ("<div>&#128;&#129;</div>", "div", None),
        ("<div>&#x10FFFF;</div>", "div", None),
        ("<div>&#xFFFE;</div>", "div", None),
        ("<div>&#13;</div>", "div", None),
        ("<div>&ThickSpace;</div>", "div", None),
        ("<div>&Aacute;x</div>", "div", None),
        ("<a href=\"?a=1&b=2\">x</a>", "a", Some("href")),
        ("<a href=\"?a=1&amp=2\">x</a>", "a", Some("href")),
        ("<a href=\"?x=1&lang=2\">x</a>", "a", Some("href")),
        ("<div><p>a<table><tr><td>b</table></div>", "p td", None),
        (
            "<!DOCTYPE html><div><p>a<table><tr><td>b</table></div>",
            "p td",
            None,
        ),
        (
            "<!DOCTYPE html PUBLIC \"-//W3C//DTD HTML 4.01//EN\"><div><p>a<table><tr><td>b</table></div>",
            "p td",
            None,
        ),
        ("<table><tr><td>a</td></tr></table><td>b</td>", "td", None),
        ("<div><caption>x</caption><td>y</td></div>", "div", None),
        ("<table><caption>a<td>b</table>", "caption", None),
        (
            "<table><caption>a</caption><tr><td>b</td></tr></table>",
            "table > tbody > tr > td",
            None,
        ),
        (
            "<table><tbody><tr><td>a<tbody><tr><td>b</table>",
            "tbody:nth-child(2) td",
            None,
        ),
        ("<table><tr><td>a</tr>b</td></table>", "td", None),
        (
            "<table><tr><td><table><tr><td>a</table>b</td></table>",
            "td",
            None,
        ),
        (
            "<div><svg><foreignObject><p>a</foreignObject>b</svg></div>",
            "svg",
            None,
        ),
        (
            "<div><svg><foreignObject><div>a</svg>b</div>",
            "div div",
            None,
        ),
        ("<div><svg><g><div>a</div></g></svg></div>", "svg div", None),
        ("<div><svg><g></div>x", "svg", None),
        ("<div><svg><G>a</g>b</svg></div>", "svg g", None),
        (
            "<div><svg><title>a<span>b</span></title></svg></div>",
            "svg title span",
            None,
        ),
        (
            "<div><svg><title>a<b>b</b></title></svg></div>",
            "svg title b",
            None,
        ),
        (
            "<div><math><mi><select><option>a</option></select></mi></math></div>",
            "option",
            None,
        ),
        (
            "<div><math><mtext><mglyph>a</mglyph></mtext></math></div>",
            "mglyph",
            None,
        ),
        (
            "<div><svg><desc><svg><title>a</title></svg></desc></svg></div>",
            "title",
            None,
        ),
        ("<div><svg/><p>x</p></div>", "div > p", None),
        ("<div><svg><path/><g>x</g></svg></div>", "svg > g", None),
        (
            "<div><svg><path><g>x</g></path></svg></div>",
            "path > g",
            None,
        ),
        ("<div><svg><br>x</svg></div>", "svg", None),
        ("<div><math><mi><b>x</b></mi></math></div>", "mi b", None),
        ("<a><div>x</div></a>", "a div", None),
        ("<div><a>x<div>y</div></a></div>", "a", None),
        ("<p><div>a</div></p>", "p", None),
        ("<div><button><p>a</button>b</div>", "button p", None),
        ("<div><button><p>a</button>b</div>", "div", None),
        (
            "<form><div><form id=x>y</form></div></form>",
            "form form",
            None,
        ),
        ("<form id=a>x</form><form id=b>y</form>", "#b", None),
        ("<form id=a><div>x</form>y</div>", "div", None),
        ("<select><option>a<select><option>b", "select", None),
        (
            "<select><optgroup label=g><option>a<optgroup><option>b</select>",
            "optgroup optgroup",
            None,
        ),
        ("<select><option>a</option>b</select>", "select", None),
        ("<select>  <option>a</option>  </select>", "select", None),
        ("<p>x<select><option>a<p>b</select>", "p", None),
        ("<div><dd>a<dt>b</div>", "dd dt", None),
        ("<div><dd>a<span><dt>b</span></div>", "dd dt", None),
        ("<div><dd>a<button><dt>b</button></div>", "dd dt", None),
        ("<div><li>a<button><li>b</button></div>", "li li", None),
        ("<div><li>a<p><li>b</p></div>", "li li", None),
        ("<div><li>a<object><li>b</object></div>", "li li", None),
        ("<div><p>a<object><p>b</object></div>", "p p", None),
        ("<div><p>a<marquee><p>b</marquee></div>", "p p", None),
        ("<div><p>a<applet><div>b</applet></div>", "p div", None),
        ("<div><span>a</div>b</span>", "span", None),
        ("<div><span><p>a</span>b</p></div>", "p", None),
        ("<div><span><p>a</span>b</p></div>", "span", None),
        ("<div><em><p>a</em>b</p></div>", "p", None),
        ("<div>a</em>b</div>", "div", None),
        ("<div><i>a</i>b</div>", "i", None),
        ("<div><object><span>a</div>b</span></object>", "span", None),
        ("<main><section><h2>a</main>b", "h2", None),
        ("<p>a<search>b</search></p>", "p search", None),
        ("<p>a<dialog>b</dialog></p>", "p dialog", None),
        ("<p>a<hgroup>b</hgroup></p>", "p hgroup", None),
        ("<p>a<menuitem>b<menuitem>c</p>", "menuitem menuitem", None),
        (
            "<div><select><option>a</span>b</select></div>",
            "option",
            None,
        ),
        (
            "<div><select><option>a</li>b</select></div>",
            "option",
            None,
        ),
        ("<div><a>x<div>y</a>z</div></div>", "div div", None),
        (
            "<div><math><mi><textarea>a<i>c</i></textarea></mi></math></div>",
            "textarea",
            None,
        ),
        (
            "<div><svg><foreignObject><textarea>a<i>c</i></textarea></foreignObject></svg></div>",
            "textarea",
            None,
        ),
        (
            "<div><svg><foreignobject><textarea>a<i>c</i></textarea></foreignobject></svg></div>",
            "textarea",
            None,
        ),
        (
            "<div><svg><desc><font size=3>a</font></desc></svg></div>",
            "desc font",
            None,
        ),
        (
            "<div><svg><a href=x><span>t</span></a></svg></div>",
            "svg a",
            Some("href"),
        ),
        (
            "<div><svg xml:lang=en>t</svg></div>",
            "svg",
            Some("xml:lang"),
        ),
        (
            "<div><svg xmlns=\"http://www.w3.org/2000/svg\">t</svg></div>",
            "svg",
            Some("xmlns"),
        ),
        (
            "<table><colgroup> <col> </colgroup><tr><td>a</table>",
            "td",
            None,
        ),
        (
            "<table><colgroup><col></colgroup>x<tr><td>a</table>",
            "td",
            None,
        ),
        (
            "<div><math><frameset>x</frameset></math></div>",
            "math frameset",
            None,
        ),
        ("<div><svg><ruby>x<rt>y</ruby></svg></div>", "svg rt", None),
        ("<div><svg><rt>a<rt>b</svg></div>", "rt rt", None),
        ("<div><p>a<search>b</search></div>", "p search", None),
        ("<div><p>a<dialog>b</dialog></div>", "p dialog", None),
        (
            "<div><math><title><b>x</b></title></math></div>",
            "title b",
            None,
        ),
        (
            "<div><math><title><b>x</b></title></math></div>",
            "div > b",
            None,
        ),
        (
            "<div><math><annotation-xml encoding=\"text/html\"><b>x</b></annotation-xml></math></div>",
            "annotation-xml b",
            None,
        ),
        (
            "<div><math><annotation-xml><span>x</span>y</annotation-xml></math></div>",
            "annotation-xml",
            None,
        ),
        ("<div><svg><mi><span>x</span>y</mi></svg></div>", "mi", None),
        ("<textarea>\rx</textarea>", "textarea", None),
        ("<div><p>a</div><p>b", "div p", None),
    ];
    for &(page, css, attr) in cases {
        never_differs(page, css, attr);
    }
}

/// More generated pages, from a second reviewer's pieces (SVG, MathML, forms, selects, ruby).
#[test]
fn more_generated_pages_read_the_same_both_ways() {
    let pieces = [
        "<div>",
        "</div>",
        "<p>",
        "</p>",
        "<li>",
        "<ul>",
        "</ul>",
        "<span>",
        "</span>",
        "<table>",
        "<tr>",
        "<td>",
        "</td>",
        "</table>",
        "<svg>",
        "</svg>",
        "<math>",
        "<mi>",
        "<foreignObject>",
        "x",
        " ",
        "\r\n",
        "&amp;",
        "&#10;",
        "<pre>",
        "<textarea>",
        "</textarea>",
        "<script>",
        "</script>",
        "<b>",
        "</b>",
        "<a href=1>",
        "</a>",
        "<select>",
        "<option>",
        "</option>",
        "<optgroup>",
        "<button>",
        "</button>",
        "<form>",
        "</form>",
        "<h1>",
        "<h2>",
        "</h1>",
        "<dd>",
        "<dt>",
        "<caption>",
        "<colgroup>",
        "<!--c-->",
        "<!doctype html>",
        "<br>",
        "</br>",
        "<title>",
        "</title>",
        "<iframe>",
        "</iframe>",
        "<svg/>",
        "<g>",
        "</g>",
        "<rt>",
        "<ruby>",
        "<img src=2>",
        "<div class=z>",
        "<",
        "&",
        "<desc>",
        "</html>",
        "</body>",
        "<body>",
        "<head>",
        "<meta content=m>",
        "<noscript>",
        "</noscript>",
        "<nobr>",
        "<em>",
        "<dl>",
    ];
    let selectors = [
        "div",
        "p",
        "li",
        "span",
        "td",
        "svg",
        ".z",
        "div div",
        "div > span",
        "td span",
        "p span",
        "option",
        "pre",
        "textarea",
        "a",
        "title",
        "button",
        "h1",
        "dd",
        "g",
        "img",
        "meta",
    ];
    let mut rng = fastrand::Rng::with_seed(11);
    let (mut answered, mut asked) = (0, 0);
    for _ in 0..6_000 {
        let len = rng.usize(3..17);
        let page: String = (0..len)
            .map(|_| pieces[rng.usize(..pieces.len())])
            .collect();
        let css = selectors[rng.usize(..selectors.len())];
        let attr = match css {
            "a" => Some("href"),
            "img" => Some("src"),
            "meta" => Some("content"),
            _ => None,
        };
        asked += 1;
        answered += usize::from(never_differs(&page, css, attr));
    }
    assert!(answered * 5 > asked, "{answered} of {asked}");
}
