//! The daemon: in-process for restarts, the real binary for signals.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use pagehook::clock::{Clock, ManualClock};
use pagehook::store::WatcherState;

use crate::fixtures::*;

async fn start(
    setup: &Setup,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    start_on(setup, Clock::System).await
}

async fn start_on(
    setup: &Setup,
    clock: Clock,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let config = pagehook::config::load(&setup.config()).unwrap().config;
    let token = CancellationToken::new();
    let handle = tokio::spawn(pagehook::daemon::run_on(
        clock,
        config,
        setup.config(),
        token.clone(),
    ));
    (token, handle)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_between_a_change_and_its_delivery_still_delivers_it() {
    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    shop.set("/widget", product("Widget", "$10.00", 5));
    // jitter 0 keeps the watcher on whole seconds, so the test waits at most ~1 s per check.
    let watcher = widget_watcher(&shop, "w", "/widget", "every 1s") + "jitter = \"0s\"\n";
    let setup = Setup::new(
        &receiver,
        r#"["300ms", "300ms", "300ms", "300ms", "300ms"]"#,
        &watcher,
    );
    receiver.answer(503);

    let (stop, daemon) = start(&setup).await;
    // Once the shop has served the page, the baseline holds the old price whatever happens next.
    shop.wait_for_hits("/widget", 1).await;
    shop.set("/widget", product("Widget", "$7.50", 5));
    let failed = receiver.wait_for(1).await;
    stop.cancel();
    daemon.await.unwrap().unwrap();

    let attempts_before_restart = receiver.requests().len();
    assert!(receiver.requests().iter().all(|r| r.status == 503));

    receiver.answer(200);
    let (stop, daemon) = start(&setup).await;
    let requests = receiver
        .wait_until(|r| r.iter().any(|r| r.status == 200))
        .await;
    let delivered = &requests[attempts_before_restart];
    assert_eq!(delivered.status, 200);
    assert_eq!(
        delivered.header("webhook-id"),
        failed[0].header("webhook-id")
    );
    assert_eq!(delivered.body, failed[0].body);
    assert_eq!(delivered.json()["data"]["changes"]["price"]["new"], "$7.50");
    stop.cancel();
    daemon.await.unwrap().unwrap();

    let store = setup.store();
    assert!(
        store.pending().unwrap().is_empty(),
        "the outbox is empty once delivered"
    );
    assert_eq!(
        receiver.requests().len(),
        attempts_before_restart + 1,
        "delivered once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn after_downtime_an_overdue_watcher_runs_once_and_a_current_one_waits_its_turn() {
    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    shop.set("/stale", product("Stale", "$1.00", 1));
    shop.set("/fresh", product("Fresh", "$1.00", 1));
    let watchers = widget_watcher(&shop, "stale", "/stale", "every 1h")
        + "jitter = \"0s\"\n"
        + &widget_watcher(&shop, "fresh", "/fresh", "every 1h")
        + "jitter = \"0s\"\n";
    let setup = Setup::new(&receiver, r#"["5s"]"#, &watchers);
    // Standing still, so the test cannot cross an hour and see a slot that is really due.
    let clock = ManualClock::new(chrono::Utc::now());
    {
        // "stale" last ran three slots ago; "fresh" ran after the latest slot.
        let store = setup.store();
        let now = clock.now();
        for (name, last) in [("stale", now - chrono::TimeDelta::hours(3)), ("fresh", now)] {
            let state = WatcherState {
                last_check: Some(last),
                ..Default::default()
            };
            store.commit(name, &state, &[]).await.unwrap();
        }
        store.flush().await.unwrap();
    }

    let (stop, daemon) = start_on(&setup, clock.into()).await;
    shop.wait_for_hits("/stale", 1).await;
    // The drain lets every check started so far reach the shop. That a missed slot costs one
    // run, and when the next comes, the scheduler's own test pins on a moved clock.
    stop.cancel();
    daemon.await.unwrap().unwrap();
    assert_eq!(
        shop.hits("/stale"),
        1,
        "three missed slots cost one run, not three"
    );
    assert_eq!(
        shop.hits("/fresh"),
        0,
        "a watcher that is not overdue waits for its next slot"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_daemon_cleanly() {
    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    shop.set("/widget", product("Widget", "$10.00", 5));
    let setup = Setup::new(
        &receiver,
        r#"["5s"]"#,
        &widget_watcher(&shop, "w", "/widget", "every 1h"),
    );
    let mut systemd = Systemd::listen(setup.dir.path());
    let mut child = tokio::process::Command::new(binary())
        .arg("-c")
        .arg(setup.config())
        .arg("run")
        .env("NOTIFY_SOCKET", &systemd.path)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A watcher that never ran is overdue: the daemon checks it at once.
    let pid = child.id().unwrap().to_string();
    systemd.wait_for("READY=1").await;
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the daemon exits within the drain bound")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let out = pagehook(&setup.config(), &["once"]).await;
    assert_eq!(out.code, 0, "the store is released after SIGTERM: {out:?}");
}

/// The daemon records its checks at its own clock's time, the one its scheduler and delivery
/// lanes read: on a clock set back a year, a change is stamped then and delivered at once.
#[tokio::test(flavor = "multi_thread")]
async fn checks_are_recorded_and_delivered_on_the_daemons_clock() {
    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    shop.set("/widget", product("Widget", "$10.00", 5));
    let watcher = widget_watcher(&shop, "w", "/widget", "every 1h") + "jitter = \"0s\"\n";
    let setup = Setup::new(&receiver, r#"["5s"]"#, &watcher);
    let start: chrono::DateTime<chrono::Utc> = "2025-12-06T12:00:30Z".parse().unwrap();
    let clock = ManualClock::new(start);
    let (stop, daemon) = start_on(&setup, clock.clone().into()).await;
    // The baseline is committed before the clock moves, so its next slot is 13:00.
    loop {
        let status = setup.pagehook(&["status", "--json"]).await;
        let report: serde_json::Value = serde_json::from_str(&status.stdout).unwrap_or_default();
        if report["watchers"][0]["last_check"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shop.set("/widget", product("Widget", "$7.50", 5));
    clock.advance(chrono::TimeDelta::hours(1));
    let delivered = receiver.wait_for(1).await;
    assert_eq!(
        delivered[0].json()["data"]["changes"]["price"]["new"],
        "$7.50"
    );
    stop.cancel();
    daemon.await.unwrap().unwrap();

    let history = setup.pagehook(&["history", "w", "--json"]).await;
    let history: serde_json::Value = serde_json::from_str(&history.stdout).unwrap();
    let times: Vec<&str> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["checked_at"].as_str().unwrap())
        .collect();
    assert_eq!(times, ["2025-12-06T13:00:30Z", "2025-12-06T12:00:30Z"]);
}
