//! watchers.toml -> `pagehook once` -> a signed webhook, as a user runs it.

use pagehook::sign::{self, Secret};

use crate::fixtures::*;

fn verify(request: &Received) {
    let secret: Secret = SECRET.parse().unwrap();
    let now = chrono::Utc::now().timestamp();
    sign::verify(
        &[secret],
        Some(request.header("webhook-id")),
        Some(request.header("webhook-timestamp")),
        Some(request.header("webhook-signature")),
        &request.body,
        now,
        sign::DEFAULT_TOLERANCE_SECS,
    )
    .expect("the signature verifies");
}

#[tokio::test(flavor = "multi_thread")]
async fn baseline_is_silent_and_one_change_sends_one_signed_event() {
    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    shop.set("/widget", product("Widget", "$1,299.99", 17));
    let setup = Setup::new(
        &receiver,
        r#"["5s"]"#,
        &widget_watcher(&shop, "acme-widget", "/widget", "every 5m"),
    );

    let first = setup.pagehook(&["once"]).await;
    assert_eq!(first.code, 0, "{first:?}");
    let accepted = shop.last_request_header("accept-encoding");
    assert!(
        accepted.contains("gzip") && accepted.contains("br"),
        "{accepted}"
    );
    assert!(
        shop.last_request_header("user-agent")
            .starts_with("pagehook/")
    );
    assert!(first.stdout.contains("1 baseline"), "{first:?}");
    let unchanged = setup.pagehook(&["once"]).await;
    assert!(unchanged.stdout.contains("1 unchanged"), "{unchanged:?}");
    assert!(
        receiver.requests().is_empty(),
        "baseline and unchanged pages send nothing"
    );

    shop.set("/widget", product("Widget", "$1,199.99", 17));
    let changed = setup.pagehook(&["once"]).await;
    assert!(
        changed.stdout.contains("1 changed") && changed.stdout.contains("delivered 1"),
        "{changed:?}"
    );
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    verify(request);
    assert!(request.header("webhook-id").starts_with("evt_"));
    assert_eq!(request.header("content-type"), "application/json");
    assert!(request.header("user-agent").starts_with("pagehook/"));

    let body = request.json();
    assert_eq!(body["type"], "watch.changed");
    let data = &body["data"];
    assert_eq!(data["watcher"], "acme-widget");
    assert_eq!(data["url"], shop.url("/widget"));
    assert_eq!(data["seq"], 1);
    assert_eq!(
        data["changes"],
        serde_json::json!({"price": {"old": "$1,299.99", "new": "$1,199.99"}})
    );
    assert_eq!(
        data["values"],
        serde_json::json!({"price": "$1,199.99", "stock": "17", "title": "Widget"})
    );
    assert_eq!(body["timestamp"], data["checked_at"]);

    let again = setup.pagehook(&["once"]).await;
    assert!(again.stdout.contains("1 unchanged"), "{again:?}");
    assert_eq!(
        receiver.requests().len(),
        1,
        "an unchanged page sends nothing"
    );

    shop.set("/widget", product("Widget", "$1,199.99", 3));
    setup.pagehook(&["once"]).await;
    let second = receiver.wait_for(2).await[1].json();
    assert_eq!(second["data"]["seq"], 2, "seq counts the watcher's events");
    assert_eq!(
        second["data"]["changes"]["stock"],
        serde_json::json!({"old": "17", "new": "3", "delta": "-14", "pct": "-82.35"}),
        "number changes carry their size"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_answering_500_keeps_the_event_and_a_retry_delivers_the_same_id() {
    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    shop.set("/widget", product("Widget", "$10.00", 5));
    let setup = Setup::new(
        &receiver,
        r#"["0s"]"#,
        &widget_watcher(&shop, "w", "/widget", "every 5m"),
    );
    setup.pagehook(&["once"]).await;

    receiver.answer(500);
    shop.set("/widget", product("Widget", "$9.00", 5));
    let failed = setup.pagehook(&["once"]).await;
    assert_eq!(
        failed.code, 0,
        "a failed delivery is not a failed check: {failed:?}"
    );
    assert!(
        failed.stdout.contains("delivered 0, 1 queued"),
        "{failed:?}"
    );
    assert!(failed.stderr.contains("delivery failed"), "{failed:?}");

    // A retry delay of 0 s: the retry is due at once, so no test waits for a backoff to pass.
    receiver.answer(200);
    let retried = setup.pagehook(&["once"]).await;
    assert!(
        retried.stdout.contains("delivered 1, 0 queued"),
        "{retried:?}"
    );

    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].header("webhook-id"),
        requests[1].header("webhook-id")
    );
    assert_eq!(
        requests[0].body, requests[1].body,
        "a retry sends the same event"
    );
    verify(&requests[1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_or_reshaped_page_is_reported_and_never_recorded_as_a_change() {
    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    shop.set("/widget", product("Widget", "$10.00", 5));
    let setup = Setup::new(
        &receiver,
        r#"["5s"]"#,
        &widget_watcher(&shop, "w", "/widget", "every 5m"),
    );
    setup.pagehook(&["once"]).await;

    shop.set_status("/widget", 503);
    let down = setup.pagehook(&["once"]).await;
    assert_eq!(down.code, 1, "{down:?}");
    assert!(down.stdout.contains("1 failed"), "{down:?}");
    assert!(down.stderr.contains("HTTP 503"), "{down:?}");

    shop.set(
        "/widget",
        "<html><body><h1 class=\"title\">Widget</h1>Redesigned!</body></html>".into(),
    );
    let reshaped = setup.pagehook(&["once"]).await;
    assert_eq!(reshaped.code, 1, "{reshaped:?}");
    assert!(
        reshaped
            .stderr
            .contains("selector `div.buy .price` matched nothing"),
        "{reshaped:?}"
    );
    assert!(
        receiver.requests().is_empty(),
        "a failed check sends nothing"
    );

    shop.set("/widget", product("Widget", "$8.00", 5));
    let back = setup.pagehook(&["once"]).await;
    assert_eq!(back.code, 0, "{back:?}");
    let event = receiver.wait_for(1).await[0].json();
    assert_eq!(
        event["data"]["changes"],
        serde_json::json!({"price": {"old": "$10.00", "new": "$8.00"}}),
        "the change is against the last good values"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_the_size_cap_fails_the_check() {
    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    let padding = "x".repeat(64 * 1024);
    shop.set(
        "/big",
        product("Big", "$1.00", 1).replace("<main>", &format!("<main>{padding}")),
    );
    let watcher = widget_watcher(&shop, "big", "/big", "every 5m") + "max_body_size = \"32 KiB\"\n";
    let setup = Setup::new(&receiver, r#"["5s"]"#, &watcher);
    let out = setup.pagehook(&["once"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("larger than the 32768-byte limit"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn once_checks_only_the_named_watchers() {
    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    shop.set("/a", product("A", "$1.00", 1));
    shop.set("/b", product("B", "$2.00", 1));
    let watchers = widget_watcher(&shop, "a", "/a", "every 5m")
        + &widget_watcher(&shop, "b", "/b", "every 5m");
    let setup = Setup::new(&receiver, r#"["5s"]"#, &watchers);
    let out = setup.pagehook(&["once", "b"]).await;
    assert!(out.stdout.starts_with("checked 1:"), "{out:?}");
    let unknown = setup.pagehook(&["once", "nope"]).await;
    assert_eq!(unknown.code, 2, "{unknown:?}");
    assert!(
        unknown
            .stderr
            .contains("unknown watcher `nope`; the config has: a, b"),
        "{unknown:?}"
    );
}
