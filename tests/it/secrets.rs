//! A watcher's credentials stay with pagehook: its URL's user, password and secret query values
//! are fetched with but shown nowhere (status, logs, deliveries, the webhook's `data.url`), its
//! headers never follow a redirect to another origin, and config errors do not echo secrets.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::fixtures::*;

/// The path and query, and the headers, of each request a server saw.
type Seen = Arc<Mutex<Vec<(String, HeaderMap)>>>;

/// A server that answers `answer(path)` and records every request.
async fn recording(answer: fn(&str) -> Response) -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let router = Router::new()
        .fallback(
            move |State(seen): State<Seen>, request: Request| async move {
                let uri = request.uri().to_string();
                let path = request.uri().path().to_owned();
                seen.lock().unwrap().push((uri, request.headers().clone()));
                answer(&path)
            },
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (addr, seen)
}

/// The real binary with every log line on, so a leak in any library's debug output shows.
async fn traced(setup: &Setup, args: &[&str]) -> Output {
    pagehook_logging(&setup.config(), args, "trace").await
}

fn assert_no_secret(out: &Output, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "{secret} leaked: {out:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn url_credentials_are_fetched_with_but_shown_nowhere_and_sent_to_no_receiver() {
    static PRICE: Mutex<&str> = Mutex::new("$5.00");
    static ANSWERED: AtomicBool = AtomicBool::new(false);
    let (shop, seen) = recording(|_| {
        // The first answer is a transient failure, so the retry's log line is on trial too.
        if !ANSWERED.swap(true, Ordering::SeqCst) {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "0")],
            )
                .into_response();
        }
        let price = *PRICE.lock().unwrap();
        (
            [(header::CONTENT_TYPE, "text/html")],
            product("Widget", price, 3),
        )
            .into_response()
    })
    .await;
    let receiver = Receiver::start().await;
    let secrets = ["pa55word", "k3ysecret", "s1gnature"];
    let url = format!("http://shopper:pa55word@{shop}/widget?id=7&api_key=k3ysecret&sig=s1gnature");
    let shown = format!("http://***@{shop}/widget?id=7&api_key=***&sig=***");
    // The failed delivery is due again by the next `once`.
    let setup = Setup::new(
        &receiver,
        r#"["10ms", "10ms"]"#,
        &format!(
            "[[watchers]]\nname = \"w\"\nurl = \"{url}\"\nfields.price = {{ css = \"div.buy .price\" }}\n"
        ),
    );

    let baseline = traced(&setup, &["once"]).await;
    assert_eq!(baseline.code, 0, "{baseline:?}");
    assert!(
        baseline.stderr.contains("trying again"),
        "retried: {baseline:?}"
    );
    assert_no_secret(&baseline, &secrets);
    // What the shop was asked for is the real URL, credentials and all.
    let (uri, headers) = seen.lock().unwrap()[0].clone();
    assert_eq!(uri, "/widget?id=7&api_key=k3ysecret&sig=s1gnature");
    assert_eq!(
        headers[header::AUTHORIZATION],
        "Basic c2hvcHBlcjpwYTU1d29yZA=="
    );

    *PRICE.lock().unwrap() = "$6.00";
    receiver.answer(500);
    let change = traced(&setup, &["once"]).await;
    assert!(change.stdout.contains("1 changed"), "{change:?}");
    assert_no_secret(&change, &secrets);

    let queued = traced(&setup, &["deliveries", "--json"]).await;
    assert_eq!(queued.code, 0, "{queued:?}");
    assert_no_secret(&queued, &secrets);
    let delivery: Value = serde_json::from_str(queued.stdout.lines().next().unwrap()).unwrap();
    let payload: Value = serde_json::from_str(delivery["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["data"]["url"], shown.as_str());

    for args in [&["status"][..], &["status", "--json"], &["test", "--json"]] {
        let out = traced(&setup, args).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert_no_secret(&out, &secrets);
    }
    let status = traced(&setup, &["status", "--json"]).await;
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["watchers"][0]["url"], shown.as_str());

    receiver.answer(204);
    let delivered = traced(&setup, &["once"]).await;
    assert!(delivered.stdout.contains("delivered 1"), "{delivered:?}");
    assert_no_secret(&delivered, &secrets);
    for request in receiver.requests() {
        let body = String::from_utf8_lossy(&request.body);
        assert_eq!(request.json()["data"]["url"], shown.as_str(), "{body}");
        for secret in secrets {
            assert!(
                !body.contains(secret),
                "{secret} sent to the receiver: {body}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_to_another_origin_carries_no_configured_header_and_no_referer() {
    let (elsewhere, elsewhere_seen) = recording(|_| {
        (
            [(header::CONTENT_TYPE, "text/html")],
            product("Widget", "$5.00", 3),
        )
            .into_response()
    })
    .await;
    // The watched origin redirects once within itself, then to the other origin.
    static ELSEWHERE: Mutex<String> = Mutex::new(String::new());
    *ELSEWHERE.lock().unwrap() = format!("http://{elsewhere}/landing");
    let (origin, origin_seen) = recording(|path| {
        let to = match path {
            "/start" => "/next?token=t0ken".to_owned(),
            _ => ELSEWHERE.lock().unwrap().clone(),
        };
        (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
    })
    .await;
    let receiver = Receiver::start().await;
    let setup = Setup::new(
        &receiver,
        r#"["1h"]"#,
        &format!(
            r#"[[watchers]]
name = "w"
url = "http://me:pa55word@{origin}/start?api_key=k3ysecret"
headers = {{ X-Api-Key = "hdr-k3y", Accept-Language = "de" }}
cookies = {{ session = "c00kie" }}
user_agent = "pagehook-test/1"
fields.price = {{ css = "div.buy .price" }}
"#
        ),
    );
    let out = traced(&setup, &["test", "--json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_no_secret(
        &out,
        &["pa55word", "k3ysecret", "hdr-k3y", "c00kie", "t0ken"],
    );

    let origin_seen = origin_seen.lock().unwrap().clone();
    assert_eq!(origin_seen.len(), 2, "{origin_seen:?}");
    for (uri, headers) in &origin_seen {
        assert_eq!(
            headers["x-api-key"], "hdr-k3y",
            "{uri}: the same origin gets them"
        );
        assert_eq!(headers[header::COOKIE], "session=c00kie", "{uri}");
        assert!(headers.contains_key(header::AUTHORIZATION), "{uri}");
        assert!(!headers.contains_key(header::REFERER), "{uri}");
    }
    let elsewhere_seen = elsewhere_seen.lock().unwrap().clone();
    let [(uri, headers)] = &elsewhere_seen[..] else {
        panic!("{elsewhere_seen:?}")
    };
    assert_eq!(uri, "/landing");
    let mut names: Vec<&str> = headers.keys().map(|n| n.as_str()).collect();
    names.sort();
    for name in [
        "x-api-key",
        "accept-language",
        "cookie",
        "authorization",
        "referer",
    ] {
        assert!(
            !names.contains(&name),
            "{name} reached another origin: {names:?}"
        );
    }
    assert_eq!(headers[header::USER_AGENT], "pagehook-test/1");
}

#[tokio::test(flavor = "multi_thread")]
async fn config_errors_point_at_the_place_without_quoting_a_secret() {
    let receiver = Receiver::start().await;
    let setup = Setup::new(&receiver, r#"["1h"]"#, "");
    let path = setup.config().display().to_string();
    let text = format!(
        r#"[webhooks.a]
url = "https://hook:pa55word@/in"
secret = "{SECRET}"

[webhooks.b]
url = "https://b.example/in"
secret_env = "{SECRET}"
"#
    );
    std::fs::write(setup.config(), &text).unwrap();
    let out = setup.pagehook(&["check"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines,
        [
            format!("{path}:2:7: invalid URL `https://***@/in`: empty host"),
            format!(
                "{path}:7:14: `secret_env` names where the secret is kept, and this is the secret itself: move it to `secret`, or keep it elsewhere and name that"
            ),
        ]
    );

    std::fs::write(
        setup.config(),
        format!("[webhooks]\nsecret = \"{SECRET}\"\n"),
    )
    .unwrap();
    let out = setup.pagehook(&["check"]).await;
    assert_eq!(
        out.stderr,
        format!("{path}:2:10: invalid type: a string, expected struct RawWebhook\n")
    );
    assert!(!out.stderr.contains(&SECRET[6..]), "{out:?}");
}
