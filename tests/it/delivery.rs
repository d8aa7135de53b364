//! Delivery a pipeline can trust: dead letters, replay, Retry-After, 410, receivers that
//! misbehave, per-endpoint isolation, and the control socket.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use pagehook::store::{Delivery, Store, WatcherState};

use crate::fixtures::*;

/// A watcher whose page has a baseline, then a changed price: one event is queued.
async fn one_event_queued(shop: &Shop, setup: &Setup) {
    shop.set("/widget", product("Widget", "$10.00", 5));
    let baseline = setup.pagehook(&["once"]).await;
    assert_eq!(baseline.code, 0, "{baseline:?}");
    shop.set("/widget", product("Widget", "$8.00", 5));
}

async fn deliveries(setup: &Setup, which: &[&str]) -> Vec<Value> {
    let out = setup
        .pagehook(&[&["deliveries", "--json"], which].concat())
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    out.stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn widget(shop: &Shop) -> String {
    widget_watcher(shop, "w", "/widget", "every 1h")
}

#[tokio::test]
async fn retries_run_out_into_a_dead_letter_with_its_history_and_replay_resends_the_same_id() {
    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    // A retry delay of 0 s: the retry is due at once, so the test waits for no backoff.
    let setup = Setup::new(&receiver, r#"["0s"]"#, &widget(&shop));
    one_event_queued(&shop, &setup).await;
    receiver.answer(500);

    let first = setup.pagehook(&["once"]).await;
    assert!(
        first.stdout.contains("delivered 0, 1 queued, 0 dead"),
        "{first:?}"
    );
    let second = setup.pagehook(&["once"]).await;
    assert!(
        second.stdout.contains("delivered 0, 0 queued, 1 dead"),
        "{second:?}"
    );
    assert!(second.stderr.contains("dead letters"), "{second:?}");

    let dead = deliveries(&setup, &["--dead"]).await;
    assert_eq!(dead.len(), 1);
    assert!(deliveries(&setup, &["--pending"]).await.is_empty());
    let letter = &dead[0];
    assert_eq!(letter["state"], "dead");
    assert!(
        letter["reason"]
            .as_str()
            .unwrap()
            .contains("gave up after 2 attempts")
    );
    let history = letter["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    for attempt in history {
        assert_eq!(attempt["status"], 500);
        assert_eq!(attempt["response"], "receiver answered 500");
        assert!(
            attempt["at"]
                .as_str()
                .unwrap()
                .parse::<DateTime<Utc>>()
                .is_ok()
        );
    }
    let listing = setup.pagehook(&["deliveries"]).await;
    let event_id = letter["event_id"].as_str().unwrap();
    assert!(listing.stdout.contains(event_id), "{listing:?}");

    receiver.answer(200);
    let replay = setup.pagehook(&["replay", "--dead"]).await;
    assert!(
        replay.stdout.contains(&format!("queued {event_id}")),
        "{replay:?}"
    );
    let third = setup.pagehook(&["once"]).await;
    assert!(
        third.stdout.contains("delivered 1, 0 queued, 0 dead"),
        "{third:?}"
    );

    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r.header("webhook-id") == event_id));
    assert!(requests.iter().all(|r| r.body == requests[0].body));
    assert!(deliveries(&setup, &[]).await.is_empty());

    let unknown = setup.pagehook(&["replay", "evt_unknown"]).await;
    assert_eq!(unknown.code, 1);
    assert!(unknown.stderr.contains("evt_unknown"), "{unknown:?}");
}

#[tokio::test]
async fn gone_stops_at_once_and_marks_the_endpoint_failing_until_it_accepts_again() {
    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    let setup = Setup::new(&receiver, r#"["10ms", "10ms", "10ms"]"#, &widget(&shop));
    one_event_queued(&shop, &setup).await;
    receiver.answer(410);

    let out = setup.pagehook(&["once"]).await;
    assert!(
        out.stdout.contains("delivered 0, 0 queued, 1 dead"),
        "{out:?}"
    );
    let listing = setup.pagehook(&["deliveries"]).await;
    assert!(
        listing
            .stdout
            .contains("webhook `pipeline` is failing since"),
        "{listing:?}"
    );
    let dead = deliveries(&setup, &["--dead"]).await;
    let event_id = dead[0]["event_id"].as_str().unwrap();

    receiver.answer(200);
    setup.pagehook(&["replay", event_id]).await;
    let out = setup.pagehook(&["once"]).await;
    assert!(out.stdout.contains("delivered 1"), "{out:?}");
    let listing = setup.pagehook(&["deliveries"]).await;
    assert!(!listing.stdout.contains("failing"), "{listing:?}");
    assert_eq!(receiver.requests().len(), 2);
}

/// One event queued, its next attempt put off 120 s by the receiver's 503 and Retry-After.
async fn one_event_held_back() -> Setup {
    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    let setup = Setup::new(&receiver, r#"["1s", "1s"]"#, &widget(&shop));
    one_event_queued(&shop, &setup).await;
    receiver.answer(503);
    receiver.retry_after("120");
    setup.pagehook(&["once"]).await;
    setup
}

#[tokio::test]
async fn retry_after_on_503_replaces_the_scheduled_delay() {
    let setup = one_event_held_back().await;
    let pending = deliveries(&setup, &["--pending"]).await;
    let next: DateTime<Utc> = pending[0]["next_attempt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let wait = (next - Utc::now()).num_seconds();
    assert!((100..=120).contains(&wait), "next attempt in {wait}s");
}

#[tokio::test]
async fn replay_takes_whole_event_ids_and_an_unknown_or_empty_one_changes_nothing() {
    let setup = one_event_held_back().await;
    let before = deliveries(&setup, &["--pending"]).await;
    assert_eq!(before[0]["attempts"], 1, "{before:?}");
    let event_id = before[0]["event_id"].as_str().unwrap().to_owned();

    let suffix = &event_id[event_id.len() - 2..];
    let prefix = &event_id[..event_id.len() - 1];
    for id in [suffix, "", " ", prefix, &event_id[4..]] {
        let out = setup.pagehook(&["replay", id]).await;
        assert_eq!(out.code, 1, "replay {id:?}: {out:?}");
        assert!(
            out.stderr.starts_with("pagehook replay: "),
            "replay {id:?}: {out:?}"
        );
        assert_eq!(
            deliveries(&setup, &["--pending"]).await,
            before,
            "replay {id:?} changed nothing: not the attempts, not the Retry-After"
        );
    }
    let empty = setup.pagehook(&["replay", ""]).await;
    assert!(empty.stderr.contains("an event id is empty"), "{empty:?}");

    let whole = setup.pagehook(&["replay", &event_id]).await;
    assert_eq!(whole.code, 0, "{whole:?}");
    let after = deliveries(&setup, &["--pending"]).await;
    assert_eq!(after[0]["attempts"], 0, "{after:?}");
}

/// Receivers that misbehave in the ways real ones do, each on its own port.
async fn misbehaving(redirect_to: &str) -> [(&'static str, String); 4] {
    async fn serve(router: Router) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        format!("http://{addr}/hook")
    }
    // Not a wait: an endpoint that never answers within any attempt's timeout.
    let hang = serve(Router::new().fallback(|| async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }))
    .await;
    // An endless body standing in for a 3 GB one: only its start may be read.
    let huge = serve(Router::new().fallback(|| async {
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        let endless =
            futures_util::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
        (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            Body::from_stream(endless),
        )
    }))
    .await;
    let target = redirect_to.to_owned();
    let redirect = serve(Router::new().fallback(move || {
        let target = target.clone();
        async move { axum::response::Redirect::temporary(&target) }
    }))
    .await;
    // Reads part of the request, then closes the connection without a word.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hangup = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 64];
            let _ = stream.read(&mut buf).await;
        }
    });
    [
        ("hang", hang),
        ("huge", huge),
        ("redirect", redirect),
        ("hangup", hangup),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn receivers_that_hang_flood_redirect_or_hang_up_cost_one_bounded_attempt() {
    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    let endpoints = misbehaving(&receiver.url()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = format!(
        "[daemon]\nstate_dir = \"{}\"\n\n",
        dir.path().join("state").display()
    );
    for (name, url) in &endpoints {
        config += &format!(
            "[webhooks.{name}]\nurl = \"{url}\"\nsecret = \"{SECRET}\"\ntimeout = \"1s\"\nretry = [\"1h\"]\n\n"
        );
    }
    config += &widget(&shop);
    config += "webhook = [\"hang\", \"huge\", \"redirect\", \"hangup\"]\n";
    let path = dir.path().join("watchers.toml");
    std::fs::write(&path, config).unwrap();
    shop.set("/widget", product("Widget", "$10.00", 5));
    assert_eq!(pagehook(&path, &["once"]).await.code, 0);
    shop.set("/widget", product("Widget", "$8.00", 5));

    let started = Instant::now();
    let out = pagehook(&path, &["once"]).await;
    assert!(out.stdout.contains("delivered 0, 4 queued"), "{out:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );

    let listing = pagehook(&path, &["deliveries", "--pending", "--json"]).await;
    let attempt = |webhook: &str| -> Value {
        listing
            .stdout
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .find(|d| d["webhook"] == webhook)
            .unwrap()["history"][0]
            .clone()
    };
    assert_eq!(attempt("hang")["error"], "timed out after 1s");
    let huge = attempt("huge");
    assert_eq!(huge["status"], 500);
    assert_eq!(huge["response"].as_str().unwrap().len(), 512);
    let redirect = attempt("redirect");
    assert_eq!(redirect["status"], 307);
    assert!(
        redirect["error"]
            .as_str()
            .unwrap()
            .contains("redirects are not followed")
    );
    assert!(
        receiver.requests().is_empty(),
        "the redirect was not followed"
    );
    let hangup = attempt("hangup");
    assert_eq!(hangup["status"], Value::Null);
    assert!(!hangup["error"].as_str().unwrap().is_empty());
}

fn queued(event: usize, webhook: &str) -> Delivery {
    Delivery {
        event_id: format!("evt_{event:04}"),
        webhook: webhook.into(),
        watcher: "w".into(),
        payload: format!(r#"{{"n":{event}}}"#),
        created_at: Utc::now(),
        attempts: 0,
        next_attempt: Utc::now(),
        history: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_endpoint_does_not_delay_deliveries_to_another() {
    let receiver = Receiver::start().await;
    let [(_, hang), ..] = misbehaving(&receiver.url()).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = format!(
        r#"[daemon]
state_dir = "{}"
[webhooks.slow]
url = "{hang}"
secret = "{SECRET}"
timeout = "2s"
[webhooks.fast]
url = "{}"
secret = "{SECRET}"
"#,
        state.display(),
        receiver.url()
    );
    let path = dir.path().join("watchers.toml");
    std::fs::write(&path, config).unwrap();
    {
        // More queued for the hanging endpoint than any global limit would let through.
        let store = Store::open(&state).unwrap();
        let mut entries: Vec<Delivery> = (0..100).map(|n| queued(n, "slow")).collect();
        entries.extend((100..110).map(|n| queued(n, "fast")));
        store
            .commit("w", &WatcherState::default(), &entries)
            .await
            .unwrap();
    }
    let config = pagehook::config::load(&path).unwrap().config;
    let stop = CancellationToken::new();
    let daemon = tokio::spawn(pagehook::daemon::run(config, path.clone(), stop.clone()));
    let started = Instant::now();
    receiver.wait_for(10).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    stop.cancel();
    daemon.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn deliveries_replay_and_once_reach_a_running_daemon() {
    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    let setup = Setup::new(&receiver, r#"["1h"]"#, &widget(&shop));
    one_event_queued(&shop, &setup).await;
    receiver.answer(500);
    let failed = setup.pagehook(&["once"]).await;
    assert!(failed.stdout.contains("1 queued"), "{failed:?}");

    let mut systemd = Systemd::listen(setup.dir.path());
    let mut daemon = tokio::process::Command::new(binary())
        .args(["-c", setup.config().to_str().unwrap(), "run"])
        .env("RUST_LOG", "warn")
        .env("NOTIFY_SOCKET", &systemd.path)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    systemd.wait_for("READY=1").await;
    let socket = setup.state_dir().join("control.sock");
    assert!(socket.exists());
    let pending = deliveries(&setup, &["--pending"]).await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    let event_id = pending[0]["event_id"].as_str().unwrap().to_owned();

    receiver.answer(200);
    let replay = setup.pagehook(&["replay", &event_id]).await;
    assert_eq!(replay.code, 0, "{replay:?}");
    let requests = receiver
        .wait_until(|r| r.iter().any(|r| r.status == 200))
        .await;
    assert!(requests.iter().all(|r| r.header("webhook-id") == event_id));

    let once = setup.pagehook(&["once"]).await;
    assert_eq!(once.code, 0, "{once:?}");
    assert!(
        once.stdout.contains("checked 1: 0 changed, 1 unchanged"),
        "{once:?}"
    );
    assert!(
        once.stdout.contains("queued for the running daemon"),
        "{once:?}"
    );

    let pid = daemon.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(daemon.wait().await.unwrap().success());
    assert!(!socket.exists(), "the socket goes with the daemon");
    assert!(
        deliveries(&setup, &[]).await.is_empty(),
        "read from the store directly"
    );
}
