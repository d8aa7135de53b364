//! Rendering: single-page apps, script-inserted JSON-LD, script redirects, what is sent and loaded.

use super::*;

#[tokio::test]
async fn a_price_that_arrives_by_fetch_after_the_load_event_is_rendered() {
    let Some(browser) = browser("spa", 2) else {
        return;
    };
    let (_shop, addr) = Shop::start().await;
    let options = HttpOptions::default();
    let page_url = url(addr, "/spa");
    let page = browser
        .fetch(&request(&page_url, &options, Duration::from_secs(20)))
        .await
        .unwrap();
    assert!(
        page.body.contains(r#"<span class="price">$19.99</span>"#),
        "{}",
        page.body
    );
    assert_eq!(page.url.expose(), &page_url);
    close(&browser).await;
}

#[tokio::test]
async fn wait_for_waits_for_a_selector_that_a_late_script_fills() {
    let Some(browser) = browser("wait_for", 2) else {
        return;
    };
    let (_shop, addr) = Shop::start().await;
    let options = HttpOptions::default();
    let page_url = url(addr, "/spa-late");
    let mut req = request(&page_url, &options, Duration::from_secs(20));
    req.wait_for = Some("#price");
    let page = browser.render(&req).await.unwrap();
    assert!(
        page.html.contains(r#"<span id="price">$19.99</span>"#),
        "{}",
        page.html
    );
    close(&browser).await;
}

#[tokio::test]
async fn json_ld_that_a_script_inserts_is_extracted_from_the_rendered_page() {
    use pagehook::extract::{
        DEFAULT_MAX_VALUE_SIZE, Field, FieldKind, Source as FieldSource, extract,
    };
    let Some(browser) = browser("jsonld", 2) else {
        return;
    };
    let (_shop, addr) = Shop::start().await;
    let options = HttpOptions::default();
    let page_url = url(addr, "/jsonld");
    let page = browser
        .fetch(&request(&page_url, &options, Duration::from_secs(20)))
        .await
        .unwrap();
    let field = |name: &str, kind| Field {
        name: name.into(),
        source: FieldSource::Auto,
        regex: None,
        kind,
        required: true,
        currency: None,
        max_size: DEFAULT_MAX_VALUE_SIZE,
    };
    let fields = [
        field("price", FieldKind::Price),
        field("stock", FieldKind::Availability),
    ];
    let values = extract(&fields, &page.body).unwrap();
    assert_eq!(values["price"]["amount"], "19.99");
    assert_eq!(values["price"]["currency"], "EUR");
    assert_eq!(values["stock"], "InStock");
    close(&browser).await;
}

#[tokio::test]
async fn a_page_that_never_renders_fails_within_its_timeout() {
    let Some(browser) = browser("never", 2) else {
        return;
    };
    let (_shop, addr) = Shop::start().await;
    let options = HttpOptions::default();
    let timeout = Duration::from_secs(2);

    // Waiting for an element that never comes.
    let never = url(addr, "/never");
    let mut req = request(&never, &options, timeout);
    req.wait_for = Some(".price");
    let start = Instant::now();
    let err = browser.render(&req).await.unwrap_err();
    assert_within(start, timeout + Duration::from_secs(2));
    assert_eq!(err.reason(), Reason::Render, "{err}");
    assert!(
        err.to_string()
            .contains("wait_for `.price` matched nothing within 2s"),
        "{err}"
    );

    // A script that never arrives holds the load event forever.
    let stuck = url(addr, "/stuck");
    let start = Instant::now();
    let err = browser
        .render(&request(&stuck, &options, timeout))
        .await
        .unwrap_err();
    assert_within(start, timeout + Duration::from_secs(2));
    assert_eq!(err.reason(), Reason::Timeout, "{err}");
    close(&browser).await;
}

#[tokio::test]
async fn a_script_redirect_is_followed_to_the_final_page() {
    let Some(browser) = browser("redirect", 2) else {
        return;
    };
    let (shop, addr) = Shop::start().await;
    let options = HttpOptions::default();
    let start_url = url(addr, "/redirect");
    let page = browser
        .render(&request(&start_url, &options, Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(page.url, url(addr, "/final"));
    assert!(page.html.contains("$7.50"), "{}", page.html);
    assert_eq!(shop.hits("/final"), 1);

    // With wait_for too: the selector is looked for again in the new document.
    let mut req = request(&start_url, &options, Duration::from_secs(20));
    req.wait_for = Some(".price");
    let page = browser.render(&req).await.unwrap();
    assert_eq!(page.url, url(addr, "/final"));
    close(&browser).await;
}

#[tokio::test]
async fn headers_go_to_the_pages_own_origin_only_and_media_is_not_loaded() {
    let Some(browser) = browser("echo", 2) else {
        return;
    };
    let (shop, addr) = Shop::start().await;
    let mut options = HttpOptions::default();
    for (name, value) in [
        ("authorization", "Bearer secret"),
        ("cookie", "session=abc123"),
        ("user-agent", "pagehook-test/1"),
    ] {
        options.headers.insert(name, value.parse().unwrap());
    }
    let page_url = url(addr, "/echo");
    let mut req = request(&page_url, &options, Duration::from_secs(20));
    req.wait_for = Some("#price");
    browser.render(&req).await.unwrap();
    assert_eq!(
        shop.header("/echo", "authorization").as_deref(),
        Some("Bearer secret")
    );
    assert_eq!(
        shop.header("/api/price", "authorization").as_deref(),
        Some("Bearer secret")
    );
    assert_eq!(
        shop.header("/echo", "cookie").as_deref(),
        Some("session=abc123")
    );
    assert_eq!(
        shop.header("/echo", "user-agent").as_deref(),
        Some("pagehook-test/1")
    );
    // The same shop under another name is another origin: no credentials for it.
    shop_waits_for(&shop, "/third.js").await;
    assert_eq!(shop.header("/third.js", "authorization"), None);
    assert_eq!(shop.header("/third.js", "cookie"), None);
    for media in ["/image.png", "/movie.mp4", "/font.woff2"] {
        assert_eq!(shop.hits(media), 0, "{media}");
    }
    close(&browser).await;
}

#[tokio::test]
async fn a_challenge_page_fails_as_blocked_and_other_errors_as_http_status() {
    let Some(browser) = browser("challenge", 2) else {
        return;
    };
    let (_shop, addr) = Shop::start().await;
    let options = HttpOptions::default();
    let challenge = url(addr, "/challenge");
    // Even a selector that matches on the challenge page yields nothing.
    let mut req = request(&challenge, &options, Duration::from_secs(20));
    req.wait_for = Some("h1");
    let err = browser.fetch(&req).await.unwrap_err();
    assert!(
        matches!(&err, FetchError::Blocked(w) if w.vendor == "Cloudflare"),
        "{err}"
    );
    assert_eq!(err.reason(), Reason::Blocked);
    let gone = url(addr, "/gone");
    let err = browser
        .fetch(&request(&gone, &options, Duration::from_secs(20)))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Status(s) if s == 410), "{err}");
    let refused = closed_port().await;
    let err = browser
        .fetch(&request(&refused, &options, Duration::from_secs(20)))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Reason::Connect, "{err}");
    close(&browser).await;
}

#[tokio::test]
async fn a_check_that_finds_every_tab_taken_until_its_deadline_fails_as_busy() {
    let Some(browser) = browser("busy", 1) else {
        return;
    };
    let (shop, addr) = Shop::start().await;
    let options = HttpOptions::default();
    let spa = url(addr, "/spa");
    // Started first, so that a slow start under load cannot eat the holder's timeout.
    browser
        .render(&request(&spa, &options, Duration::from_secs(20)))
        .await
        .unwrap();
    // A script that never arrives holds the one tab until its render times out.
    let stuck = url(addr, "/stuck");
    let holder = {
        let (browser, options, stuck) = (browser.clone(), options.clone(), stuck.clone());
        tokio::spawn(async move {
            browser
                .render(&request(&stuck, &options, Duration::from_secs(6)))
                .await
                .map(|_| ())
        })
    };
    shop_waits_for(&shop, "/stuck").await;

    let served = shop.hits("/spa");
    let mut req = request(&spa, &options, Duration::from_millis(500));
    req.deadline = Some(tokio::time::Instant::now() + Duration::from_millis(500));
    let start = Instant::now();
    let err = browser.render(&req).await.unwrap_err();
    assert_within(start, Duration::from_secs(2));
    assert_eq!(err.reason(), Reason::Busy, "{err}");
    let message = err.to_string();
    assert!(
        message.contains("no free browser tab") && message.contains("all 1 of [browser] max_tabs"),
        "{message}"
    );
    assert_eq!(shop.hits("/spa"), served, "a busy check loads nothing");

    let held = holder.await.unwrap().unwrap_err();
    assert_eq!(held.reason(), Reason::Timeout, "{held}");
    close(&browser).await;
}
