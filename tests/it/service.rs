//! Running as a service: systemd notifications, SIGHUP reload, SIGTERM drain, the admin
//! endpoint, `status` and `history`.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};

use pagehook::admin::{self, AdminState, Health, Part};
use pagehook::store::Store;

use crate::fixtures::*;

/// `pagehook run` as systemd starts it, with its notification socket set.
fn spawn_daemon(setup: &Setup, systemd: &Systemd) -> Child {
    daemon_command(setup, systemd).spawn().unwrap()
}

fn daemon_command(setup: &Setup, systemd: &Systemd) -> Command {
    let mut command = Command::new(binary());
    command
        .arg("-c")
        .arg(setup.config())
        .arg("run")
        .env_remove("PAGEHOOK_CONFIG")
        .env("RUST_LOG", "info")
        .env("NOTIFY_SOCKET", &systemd.path)
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

fn signal(child: &Child, name: &str) {
    let pid = child.id().unwrap().to_string();
    let sent = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// SIGTERM, then the exit code and everything the daemon logged.
async fn stop(mut child: Child) -> (i32, String) {
    let log = DaemonLog::follow(&mut child);
    stop_followed(child, &log).await
}

/// [`stop`] for a daemon whose stderr `log` follows.
async fn stop_followed(mut child: Child, log: &DaemonLog) -> (i32, String) {
    signal(&child, "TERM");
    let out = tokio::time::timeout(Duration::from_secs(15), async {
        (child.wait().await.unwrap(), log.all().await)
    })
    .await
    .expect("the daemon exits within the drain bound");
    (out.0.code().unwrap_or(-1), out.1)
}

fn write_config(setup: &Setup, receiver: &Receiver, watchers: &str) {
    let fresh = Setup::new(receiver, r#"["200ms"]"#, watchers);
    let text = std::fs::read_to_string(fresh.config()).unwrap();
    // The fresh file names its own state dir; keep the running one.
    let text = text.replace(
        &fresh.state_dir().display().to_string(),
        &setup.state_dir().display().to_string(),
    );
    std::fs::write(setup.config(), text).unwrap();
}

fn every_second(shop: &Shop, name: &str, path: &str) -> String {
    widget_watcher(shop, name, path, "every 1s") + "jitter = \"0s\"\n"
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_applies_a_valid_config_and_keeps_running_on_an_invalid_one() {
    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    for path in [
        "/kept", "/hourly", "/old-url", "/new-url", "/gone", "/added",
    ] {
        shop.set(path, product("Widget", "$10.00", 5));
    }
    let hourly = widget_watcher(&shop, "hourly", "/hourly", "every 1h");
    let setup = Setup::new(
        &receiver,
        r#"["200ms"]"#,
        &[
            every_second(&shop, "kept", "/kept"),
            hourly.clone(),
            every_second(&shop, "moved", "/old-url"),
            every_second(&shop, "gone", "/gone"),
        ]
        .concat(),
    );
    let mut systemd = Systemd::listen(setup.dir.path());
    let daemon = spawn_daemon(&setup, &systemd);
    systemd.wait_for("READY=1").await;
    let status = systemd.wait_for("STATUS=").await;
    assert!(
        status.starts_with("STATUS=watching 4 pages, 0 failing, 0 deliveries queued"),
        "{status}"
    );
    for path in ["/kept", "/hourly", "/old-url", "/gone"] {
        shop.wait_for_hits(path, 1).await;
    }

    // `moved` changes its URL, `gone` leaves, `added` arrives, the rest stay as they were.
    write_config(
        &setup,
        &receiver,
        &[
            every_second(&shop, "kept", "/kept"),
            hourly.clone(),
            every_second(&shop, "moved", "/new-url"),
            every_second(&shop, "added", "/added"),
        ]
        .concat(),
    );
    signal(&daemon, "HUP");
    systemd.wait_for("RELOADING=1").await;
    systemd.wait_for("READY=1").await;
    let gone_at_reload = shop.hits("/gone");
    let old_url_at_reload = shop.hits("/old-url");
    shop.wait_for_hits("/added", 1).await;
    shop.wait_for_hits("/new-url", 2).await;
    let kept = shop.hits("/kept");
    shop.wait_for_hits("/kept", kept + 1).await;
    // A check already under way at the reload may still finish; nothing starts after it.
    assert!(
        shop.hits("/gone") <= gone_at_reload + 1,
        "a removed watcher stops"
    );
    assert!(
        shop.hits("/old-url") <= old_url_at_reload + 1,
        "a changed watcher uses its new URL"
    );
    assert_eq!(
        shop.hits("/hourly"),
        1,
        "an unchanged watcher keeps its slot"
    );

    // A broken file is rejected whole; the running config goes on.
    std::fs::write(
        setup.config(),
        std::fs::read_to_string(setup.config()).unwrap() + "[[watchers]]\nname = \"Bad Name\"\n",
    )
    .unwrap();
    signal(&daemon, "HUP");
    systemd.wait_for("RELOADING=1").await;
    let status = systemd.wait_for("STATUS=").await;
    assert!(
        status.contains("last reload rejected (3 errors in"),
        "{status}"
    );
    let added = shop.hits("/added");
    shop.wait_for_hits("/added", added + 1).await;

    let (code, log) = stop(daemon).await;
    assert_eq!(code, 0, "{log}");
    let config = setup.config().display().to_string();
    assert!(
        log.contains(&format!("{config}:41:8: invalid watcher name `Bad Name`")),
        "the reload error names the place: {log}"
    );
    assert!(
        log.contains("reload rejected; still running the previous config"),
        "{log}"
    );
    systemd.drain();
    assert!(
        systemd.seen.iter().any(|m| m.contains("STOPPING=1")),
        "{:?}",
        systemd.seen
    );

    let store = setup.store();
    assert!(
        store.watcher_state("gone").unwrap().last_success.is_some(),
        "a removed watcher's state is kept"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_with_deliveries_pending_loses_none_and_a_restart_sends_the_rest() {
    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    shop.set("/a", product("A", "$10.00", 5));
    shop.set("/b", product("B", "$20.00", 5));
    let watchers = every_second(&shop, "a", "/a") + &every_second(&shop, "b", "/b");
    // Retries enough that none runs out before the endpoint recovers, on a loaded machine too:
    // a dead letter is neither delivered nor queued.
    let setup = Setup::new(
        &receiver,
        r#"["200ms", "500ms", "500ms", "500ms", "500ms"]"#,
        &watchers,
    );
    receiver.answer(503);

    let mut systemd = Systemd::listen(setup.dir.path());
    let daemon = spawn_daemon(&setup, &systemd);
    systemd.wait_for("READY=1").await;
    shop.wait_for_hits("/a", 1).await;
    shop.wait_for_hits("/b", 1).await;
    shop.set("/a", product("A", "$9.00", 5));
    shop.set("/b", product("B", "$19.00", 5));
    let event_ids = |requests: &[Received]| {
        let mut ids: Vec<String> = requests
            .iter()
            .map(|r| r.header("webhook-id").to_owned())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    let failing = receiver.wait_until(|r| event_ids(r).len() == 2).await;
    let events = event_ids(&failing);

    // The endpoint recovers but answers slowly: SIGTERM lands while a delivery is in flight.
    receiver.answer_after(Duration::from_millis(700));
    receiver.answer(200);
    receiver
        .wait_until(|r| r.iter().any(|r| r.status == 200))
        .await;
    let (code, log) = stop(daemon).await;
    assert_eq!(code, 0, "{log}");
    assert!(!log.contains("stay queued"), "nothing was cut off: {log}");

    let answered: Vec<String> = receiver
        .requests()
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert!(!answered.is_empty());
    {
        let store = Store::open(&setup.state_dir()).unwrap();
        let pending: Vec<String> = store
            .pending()
            .unwrap()
            .into_iter()
            .map(|d| d.event_id)
            .collect();
        for id in &answered {
            assert!(
                !pending.contains(id),
                "{id} was answered 2xx during the drain, so it left the outbox"
            );
        }
        for id in &events {
            assert!(
                pending.contains(id) || answered.contains(id),
                "{id} is either delivered or still queued"
            );
        }
    }

    receiver.answer_after(Duration::ZERO);
    let daemon = spawn_daemon(&setup, &systemd);
    systemd.wait_for("READY=1").await;
    let delivered = |requests: &[Received]| {
        events.iter().all(|id| {
            requests
                .iter()
                .any(|r| r.status == 200 && r.header("webhook-id") == id)
        })
    };
    receiver.wait_until(delivered).await;
    let (code, log) = stop(daemon).await;
    assert_eq!(code, 0, "{log}");
    for id in &events {
        let ok = receiver
            .requests()
            .iter()
            .filter(|r| r.status == 200 && r.header("webhook-id") == id)
            .count();
        assert_eq!(ok, 1, "{id} is delivered exactly once after its 2xx");
    }
    let store = Store::open(&setup.state_dir()).unwrap();
    assert!(store.pending().unwrap().is_empty());
}

/// A Prometheus text exposition, checked line by line: every sample belongs to a declared
/// family and has a numeric value. Returns `name{labels}` -> value.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut families = BTreeMap::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            families.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") || line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment line {line:?}");
        let (series, value) = line.rsplit_once(' ').expect("a sample is `series value`");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name = series.split('{').next().unwrap();
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "bad labels in {line:?}"
            );
        }
        let family = families
            .keys()
            .filter(|f| name.starts_with(f.as_str()))
            .max_by_key(|f| f.len());
        assert!(family.is_some(), "{name} has no # TYPE");
        samples.insert(series.to_owned(), value);
    }
    assert!(text.ends_with("# EOF\n"));
    samples
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_parse_as_prometheus_text_and_their_counters_move() {
    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    shop.set("/m", product("M", "$10.00", 5));
    // A bot wall's challenge served with 200: a failed check counts under its reason.
    shop.set(
        "/wall",
        include_str!("../../src/fetch/blocked/cloudflare-challenge.html").into(),
    );
    // The wall fails every second; a high threshold keeps its `watch.failing` event out of the
    // delivery counts.
    let watchers = every_second(&shop, "m", "/m")
        + &every_second(&shop, "wall", "/wall")
        + "failure_threshold = 1000\n";
    let setup = Setup::new(&receiver, r#"["200ms"]"#, &watchers);
    let admin = format!("127.0.0.1:{}", free_port());
    // The daemon hands its admin endpoint the token: /metrics asks for it, /healthz does not.
    let token = "3c9d0e7f1a2b4c5d6e7f8091";
    let text = std::fs::read_to_string(setup.config()).unwrap().replace(
        "[daemon]\n",
        &format!("[daemon]\nadmin_listen = \"{admin}\"\nadmin_token = \"{token}\"\n"),
    );
    std::fs::write(setup.config(), text).unwrap();

    let mut systemd = Systemd::listen(setup.dir.path());
    let mut daemon = spawn_daemon(&setup, &systemd);
    let log = DaemonLog::follow(&mut daemon);
    systemd.wait_for("READY=1").await;
    // A check is counted before it is logged.
    let checked = |outcome: &'static str| {
        move |line: &str| {
            line.contains(" check watcher=\"m\"")
                && line.contains(&format!("outcome=\"{outcome}\""))
        }
    };
    let at = log.wait_for(0, 1, checked("baseline")).await;
    log.wait_for(0, 1, |line| {
        line.contains(" check watcher=\"wall\"") && line.contains("blocked")
    })
    .await;
    let client = reqwest::Client::new();
    let unauthorized = client
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    let scrape = || async {
        let response = client
            .get(format!("http://{admin}/metrics"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let kind = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
        parse_prometheus(&response.text().await.unwrap())
    };
    let baseline = r#"pagehook_checks_total{watcher="m",outcome="baseline"}"#;
    let before = scrape().await;
    assert_eq!(before[baseline], 1.0, "{before:#?}");
    assert!(before[r#"pagehook_fetched_bytes_total{watcher="m"}"#] > 100.0);
    assert!(before[r#"pagehook_watcher_last_success_seconds{watcher="m"}"#] > 1.7e9);
    assert_eq!(
        before[r#"pagehook_watcher_consecutive_failures{watcher="m"}"#],
        0.0
    );
    assert_eq!(before["pagehook_outbox_depth"], 0.0);
    let blocked = r#"pagehook_checks_total{watcher="wall",outcome="blocked"}"#;
    assert!(before[blocked] >= 1.0, "{before:#?}");
    assert!(
        !before
            .keys()
            .any(|series| series.contains("watcher=\"wall\",outcome=\"failed\"")),
        "{before:#?}"
    );

    shop.set("/m", product("M", "$8.00", 5));
    receiver.wait_for(1).await;
    let delivered = r#"pagehook_deliveries_total{webhook="pipeline",outcome="delivered"}"#;
    // And a delivery before its line too.
    log.wait_for(at, 1, checked("changed")).await;
    log.wait_for(at, 1, |line| line.contains(" delivered event_id="))
        .await;
    let after = scrape().await;
    assert_eq!(
        after[r#"pagehook_changes_total{watcher="m"}"#], 1.0,
        "{after:#?}"
    );
    assert_eq!(after[delivered], 1.0, "{after:#?}");
    assert_eq!(
        after["pagehook_delivery_duration_seconds_count"], 1.0,
        "{after:#?}"
    );
    assert!(
        after["pagehook_check_duration_seconds_count"]
            > before["pagehook_check_duration_seconds_count"]
    );

    let health = client
        .get(format!("http://{admin}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let body: Value = serde_json::from_str(&health.text().await.unwrap()).unwrap();
    assert_eq!(body["status"], "ok");

    // The running daemon owns the store; `status` asks it through the control socket.
    let status = setup.pagehook(&["status", "--json"]).await;
    assert_eq!(status.code, 0, "{status:?}");
    let report: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(report["watchers"][0]["name"], "m", "{status:?}");
    let (code, log) = stop_followed(daemon, &log).await;
    assert_eq!(code, 0, "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_names_the_part_that_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let health = Health::default();
    let state = AdminState {
        store: Store::open(dir.path()).unwrap(),
        health: health.clone(),
        watchers: Default::default(),
        started: chrono::Utc::now(),
        clock: Default::default(),
        replay: Default::default(),
        token: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, admin::router(state)).await });
    let get = || async {
        let response = reqwest::get(format!("http://{addr}/healthz"))
            .await
            .unwrap();
        let code = response.status().as_u16();
        let body = response.text().await.unwrap();
        (code, serde_json::from_str::<Value>(&body).unwrap())
    };

    let scheduler = health.alive(Part::Scheduler);
    let (code, body) = get().await;
    assert_eq!(code, 503);
    assert_eq!(
        body,
        serde_json::json!({"status": "unhealthy", "scheduler": "ok", "delivery_worker": "not running", "store": "ok"})
    );

    let delivery = health.alive(Part::Delivery);
    assert_eq!(get().await.0, 200);
    drop(scheduler);
    let (code, body) = get().await;
    assert_eq!(code, 503, "a part whose task ended is reported down");
    assert_eq!(body["scheduler"], "not running");
    drop(delivery);
}

#[tokio::test(flavor = "multi_thread")]
async fn status_and_history_print_json() {
    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    shop.set("/s", product("S", "$10.00", 5));
    shop.set("/down", product("D", "$1.00", 1));
    let watchers = widget_watcher(&shop, "s", "/s", "every 1h")
        + &widget_watcher(&shop, "down", "/down", "every 1h");
    let setup = Setup::new(&receiver, r#"["1h"]"#, &watchers);
    receiver.answer(503);
    assert_eq!(setup.pagehook(&["once"]).await.code, 0);
    shop.set("/s", product("S", "$8.00", 5));
    shop.set_status("/down", 500);
    let once = setup.pagehook(&["once"]).await;
    assert_eq!(once.code, 1, "{once:?}");

    let out = setup.pagehook(&["status", "--json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let status: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(status["pending_deliveries"], 1);
    let s = &status["watchers"][0];
    assert_eq!(s["name"], "s");
    assert_eq!(s["url"], shop.url("/s"));
    assert_eq!(s["values"]["price"], "$8.00");
    assert_eq!(s["last_outcome"], "ok");
    assert_eq!(s["consecutive_failures"], 0);
    assert_eq!(s["pending_deliveries"], 1);
    assert_eq!(s["last_error"], Value::Null);
    for key in ["last_check", "last_success", "next_run"] {
        let at = s[key].as_str().unwrap_or_else(|| panic!("{key}: {s}"));
        chrono::DateTime::parse_from_rfc3339(at).unwrap();
    }
    let down = &status["watchers"][1];
    assert_eq!(down["last_outcome"], "failed");
    assert_eq!(down["consecutive_failures"], 1);
    assert_eq!(
        down["last_error"],
        "fetch failed: HTTP 500 Internal Server Error"
    );
    assert_eq!(
        down["values"]["price"], "$1.00",
        "the last good values stay"
    );

    let table = setup.pagehook(&["status"]).await;
    assert!(table.stdout.starts_with("WATCHER  LAST CHECK"), "{table:?}");
    assert!(
        table.stdout.contains("down: fetch failed: HTTP 500"),
        "{table:?}"
    );

    let out = setup.pagehook(&["history", "s", "--json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let history: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(history["watcher"], "s");
    let entries = history["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{history}");
    assert_eq!(entries[0]["kind"], "changed", "newest first");
    assert_eq!(entries[0]["changed"], serde_json::json!(["price"]));
    assert!(entries[0]["event_id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(entries[0]["values"]["price"], "$8.00");
    assert_eq!(entries[1]["kind"], "baseline");
    assert_eq!(entries[1]["values"]["price"], "$10.00");
    assert_eq!(entries[1]["event_id"], Value::Null);

    let one = setup
        .pagehook(&["history", "s", "--limit", "1", "--json"])
        .await;
    let one: Value = serde_json::from_str(&one.stdout).unwrap();
    assert_eq!(one["entries"].as_array().unwrap().len(), 1);
    let unknown = setup.pagehook(&["history", "nope"]).await;
    assert_eq!(unknown.code, 2, "{unknown:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_are_json_on_request_and_bare_lines_for_the_journal() {
    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    shop.set("/l", product("L", "$1.00", 1));
    let setup = Setup::new(
        &receiver,
        r#"["5s"]"#,
        &widget_watcher(&shop, "l", "/l", "every 1h"),
    );

    let json = setup.pagehook(&["--log-format", "json", "once"]).await;
    assert_eq!(json.code, 0, "{json:?}");
    let check = json
        .stderr
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .find(|l| l["fields"]["message"] == "check")
        .expect("a check line");
    assert_eq!(check["fields"]["watcher"], "l");
    assert_eq!(check["fields"]["outcome"], "baseline");
    assert_eq!(check["level"], "INFO");

    // systemd names the journal stream by device and inode; journald adds time itself.
    let log_path = setup.dir.path().join("journal.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    use std::os::unix::fs::MetadataExt;
    let meta = log_file.metadata().unwrap();
    let status = Command::new(binary())
        .arg("-c")
        .arg(setup.config())
        .arg("once")
        .env_remove("PAGEHOOK_CONFIG")
        .env("RUST_LOG", "info")
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stderr(log_file)
        .stdout(Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let journal = std::fs::read_to_string(&log_path).unwrap();
    let line = journal
        .lines()
        .find(|l| l.contains("check"))
        .unwrap_or_else(|| panic!("{journal}"));
    assert!(
        line.starts_with(" INFO pagehook::check: check watcher=\"l\""),
        "no timestamp, no colour: {line:?}"
    );
    let human = setup.pagehook(&["once"]).await;
    let first = human.stderr.lines().find(|l| l.contains("check")).unwrap();
    assert!(
        first.starts_with("20") && !first.contains('\u{1b}'),
        "a timestamp, no colour off a terminal: {first:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_watchdog_is_pinged_at_half_its_timeout() {
    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    shop.set("/d", product("D", "$1.00", 1));
    let setup = Setup::new(
        &receiver,
        r#"["5s"]"#,
        &widget_watcher(&shop, "d", "/d", "every 1h"),
    );
    let mut systemd = Systemd::listen(setup.dir.path());
    let started = tokio::time::Instant::now();
    let daemon = daemon_command(&setup, &systemd)
        .env("WATCHDOG_USEC", "400000")
        .spawn()
        .unwrap();
    systemd.wait_for("READY=1").await;
    // The first tick pings at once; the next one 200 ms later.
    systemd.wait_for("WATCHDOG=1").await;
    systemd.wait_for("WATCHDOG=1").await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    let (code, log) = stop(daemon).await;
    assert_eq!(code, 0, "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn new_webhook_settings_take_effect_at_the_next_attempt() {
    let (old, new) = (Receiver::start().await, Receiver::start().await);
    let shop = Shop::start().await;
    let watcher = widget_watcher(&shop, "w", "/w", "every 1h");
    let before = Setup::new(&old, r#"["5s"]"#, &watcher);
    let after = Setup::new(&new, r#"["5s"]"#, &watcher);
    let load = |setup: &Setup| pagehook::config::load(&setup.config()).unwrap().config;

    let store = Store::open(&before.state_dir()).unwrap();
    let now = chrono::Utc::now();
    let queued = pagehook::store::Delivery {
        event_id: "evt_reload".into(),
        webhook: "pipeline".into(),
        watcher: "w".into(),
        payload: "{}".into(),
        created_at: now,
        attempts: 0,
        next_attempt: now,
        history: Vec::new(),
    };
    store
        .commit("w", &Default::default(), &[queued])
        .await
        .unwrap();
    let deliverer =
        pagehook::deliver::Deliverer::new(store.clone(), load(&before).webhooks).unwrap();
    deliverer.set_webhooks(load(&after).webhooks);
    assert_eq!(deliverer.deliver_due().await.delivered, 1);
    assert!(old.requests().is_empty());
    assert_eq!(new.requests()[0].header("webhook-id"), "evt_reload");
}
