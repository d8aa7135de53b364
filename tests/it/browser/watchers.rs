//! Browser watchers through the real binary: `check`, `test --json`, `once` and `status`
//! against the loopback single-page-app shop, bot walls over HTTP, and the reason of every
//! failed check where users read it.

use super::*;
use crate::fixtures::{Output, Receiver, Setup, binary};

/// Run the binary to completion; also return whether any browser it started still runs.
async fn run(setup: &Setup, args: &[&str]) -> (Output, bool) {
    let child = tokio::process::Command::new(binary())
        .arg("-c")
        .arg(setup.config())
        .args(args)
        .env_remove("PAGEHOOK_CONFIG")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let profile = format!("pagehook-browser-{}-", child.id().unwrap());
    let output: Output = child.wait_with_output().await.unwrap().into();
    (output, browser_running(&profile))
}

/// Whether a process runs whose command line names a profile starting with `profile`.
fn browser_running(profile: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        std::fs::read(entry.path().join("cmdline"))
            .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains(profile))
            && std::fs::read_to_string(entry.path().join("stat"))
                .is_ok_and(|stat| !stat.rsplit(')').next().unwrap_or("").starts_with(" Z"))
    })
}

/// A watcher table; `timeout` is 20 s unless `extra` sets it.
fn watcher(name: &str, addr: SocketAddr, path: &str, extra: &str) -> String {
    let timeout = if extra.contains("timeout") {
        ""
    } else {
        "timeout = \"20s\"\n"
    };
    format!(
        "[[watchers]]\nname = \"{name}\"\nurl = \"http://{addr}{path}\"\nschedule = \"every 1h\"\n{timeout}{extra}\n"
    )
}

fn lines(stdout: &str) -> HashMap<String, serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| (v["watcher"].as_str().unwrap().to_owned(), v))
        .collect()
}

#[tokio::test]
async fn test_renders_browser_watchers_and_gives_every_failure_its_reason() {
    if browser_source("test --json").is_none() {
        return;
    }
    let (_shop, addr) = Shop::start().await;
    let receiver = Receiver::start().await;
    let watchers = [
        watcher(
            "spa",
            addr,
            "/spa",
            "browser = true\nfields.price = { css = \"span.price\", type = \"price\" }",
        ),
        watcher(
            "jsonld",
            addr,
            "/jsonld",
            "browser = true\nfields.price = { type = \"price\" }",
        ),
        watcher(
            "late",
            addr,
            "/spa-late",
            "browser = true\nwait_for = \"#price\"\nfields.price = { css = \"#price\" }",
        ),
        // 4 s: the timeout covers starting the browser too, which took over 2 s under load
        // and failed the check before its wait began.
        watcher(
            "never",
            addr,
            "/never",
            "browser = true\nwait_for = \".price\"\ntimeout = \"4s\"\nfields.price = { css = \".price\" }",
        ),
        // Over plain HTTP, the app root is empty: the reason a browser is needed.
        watcher("spa-http", addr, "/spa", "fields.price = { css = \"span.price\" }"),
        // A challenge page served with 200, whose markup a loose selector matches.
        watcher("wall", addr, "/challenge-ok", "fields.title = { css = \"title\" }"),
        watcher(
            "wall-browser",
            addr,
            "/challenge",
            "browser = true\nfields.title = { css = \"title\" }",
        ),
        watcher("gone", addr, "/gone", "fields.p = { css = \"p\" }"),
    ]
    .concat();
    let setup = Setup::new(&receiver, "[]", &watchers);
    let started = Instant::now();
    let (out, left_running) = run(&setup, &["test", "--json"]).await;
    assert!(!left_running, "`test` left its browser running");
    assert_eq!(out.code, 1, "{out:?}");
    let by_name = lines(&out.stdout);
    assert_eq!(by_name["spa"]["ok"], true, "{out:?}");
    assert_eq!(by_name["spa"]["values"]["price"]["amount"], "19.99");
    assert_eq!(by_name["jsonld"]["values"]["price"]["amount"], "19.99");
    assert_eq!(by_name["jsonld"]["values"]["price"]["currency"], "EUR");
    assert_eq!(by_name["jsonld"]["found_in"]["price"], "JSON-LD");
    assert_eq!(by_name["late"]["values"]["price"], "$19.99");
    let never = &by_name["never"];
    assert_eq!(never["ok"], false);
    assert_eq!(never["reason"], "render", "{never}");
    assert!(
        never["error"]
            .as_str()
            .unwrap()
            .contains("wait_for `.price` matched nothing within 4s"),
        "{never}"
    );
    assert_eq!(by_name["spa-http"]["reason"], "selector");
    for name in ["wall", "wall-browser"] {
        let wall = &by_name[name];
        assert_eq!(wall["ok"], false, "{wall}");
        assert_eq!(wall["reason"], "blocked", "{wall}");
        assert!(
            wall["error"].as_str().unwrap().contains("Cloudflare"),
            "{wall}"
        );
    }
    assert_eq!(by_name["gone"]["reason"], "http_status");
    // Several pages in two tabs, one of them waiting out its 2 s.
    assert_within(started, Duration::from_secs(30));
}

#[tokio::test]
async fn once_records_rendered_values_and_a_bot_wall_never_records_a_value() {
    if browser_source("once").is_none() {
        return;
    }
    let (_shop, addr) = Shop::start().await;
    let receiver = Receiver::start().await;
    let watchers = [
        watcher(
            "spa",
            addr,
            "/spa",
            "browser = true\nfields.price = { css = \"span.price\" }",
        ),
        watcher(
            "wall",
            addr,
            "/challenge-ok",
            "failure_threshold = 1\nfields.title = { css = \"title\" }",
        ),
    ]
    .concat();
    let setup = Setup::new(
        &receiver,
        "[]",
        &format!("[browser]\nmax_tabs = 1\n{watchers}"),
    );
    let (out, left_running) = run(&setup, &["once"]).await;
    assert!(!left_running, "`once` left its browser running");
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("1 baseline, 1 failed"), "{out:?}");
    assert!(
        out.stderr.contains("reason=blocked") || out.stderr.contains("reason: blocked"),
        "the log line carries the reason: {}",
        out.stderr
    );

    let failing = receiver.wait_for(1).await;
    let event = failing[0].json();
    assert_eq!(event["type"], "watch.failing");
    assert_eq!(event["data"]["watcher"], "wall");
    assert_eq!(event["data"]["reason"], "blocked");

    let status = setup.pagehook(&["status", "--json"]).await;
    assert_eq!(status.code, 0, "{status:?}");
    let report: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let by_name: HashMap<&str, &serde_json::Value> = report["watchers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["name"].as_str().unwrap(), w))
        .collect();
    assert_eq!(by_name["spa"]["values"]["price"], "$19.99");
    assert_eq!(by_name["spa"]["last_reason"], serde_json::Value::Null);
    let wall = by_name["wall"];
    assert_eq!(wall["last_outcome"], "failed");
    assert_eq!(wall["last_reason"], "blocked");
    assert_eq!(
        wall["values"],
        serde_json::Value::Null,
        "no value from a wall"
    );

    let text = setup.pagehook(&["status"]).await;
    assert!(text.stdout.contains("failed (blocked)"), "{text:?}");
    let history = setup.pagehook(&["history", "wall", "--json"]).await;
    let history: serde_json::Value = serde_json::from_str(&history.stdout).unwrap();
    assert_eq!(history["entries"], serde_json::json!([]));
}

#[tokio::test]
async fn check_says_when_browser_watchers_have_no_browser() {
    let (_shop, addr) = Shop::start().await;
    let receiver = Receiver::start().await;
    let spa = watcher(
        "spa",
        addr,
        "/spa",
        "browser = true\nfields.price = { css = \"span.price\" }",
    );
    let setup = Setup::new(
        &receiver,
        "[]",
        &format!("[browser]\nexecutable = \"/nonexistent/chromium\"\n{spa}"),
    );
    let out = setup.pagehook(&["check"]).await;
    assert_eq!(out.code, 0, "valid, with a warning: {out:?}");
    assert!(
        out.stderr.contains(
            "warning: watcher `spa` uses the browser, and it cannot start: [browser] executable /nonexistent/chromium is not an executable file"
        ),
        "{out:?}"
    );
    // And the check itself fails as `browser`, at once.
    let (out, _) = run(&setup, &["test", "--json"]).await;
    let line = &lines(&out.stdout)["spa"];
    assert_eq!(line["reason"], "browser", "{line}");

    let bad = Setup::new(
        &receiver,
        "[]",
        &watcher(
            "w",
            addr,
            "/spa",
            "wait_for = \"div >\"\nfields.p = { css = \"p\" }",
        ),
    );
    let out = bad.pagehook(&["check"]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("watchers.toml:14:12: `wait_for` needs `browser = true`"),
        "{out:?}"
    );
}
