//! `check` and `test`, and how the commands treat a broken config.

use crate::fixtures::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_config_is_rejected_with_file_line_and_column() {
    let receiver = Receiver::start().await;
    let setup = Setup::new(
        &receiver,
        r#"["5s"]"#,
        "[[watchers]]\nname = \"w\"\nurl = \"https://shop.example/w\"\nschedule = \"*/5 * * *\"\nfields.price = { css = \"span[\" }\n",
    );
    let path = setup.config().display().to_string();
    let out = setup.pagehook(&["check"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines,
        [
            format!(
                "{path}:12:12: invalid cron expression \"*/5 * * *\": expected 5 fields (or 6 with seconds), found 4"
            ),
            format!("{path}:13:24: invalid CSS selector `span[`: Unexpected EOL"),
        ]
    );

    let once = setup.pagehook(&["once"]).await;
    assert_eq!(
        once.code, 78,
        "run and once exit 78 on a bad config: {once:?}"
    );
    let run = setup.pagehook(&["run"]).await;
    assert_eq!(run.code, 78, "{run:?}");
    assert!(
        !setup.state_dir().exists(),
        "a rejected config touches no state"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shipped_example_config_passes_check() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("watchers.toml");
    let out = pagehook(&example, &["check"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("OK (2 watchers, 1 webhooks)"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn test_prints_values_as_json_lines_and_touches_nothing() {
    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    shop.set("/ok", product("Widget", "$5.00", 2));
    let watchers = widget_watcher(&shop, "ok", "/ok", "every 5m")
        + &widget_watcher(&shop, "gone", "/gone", "every 5m");
    let setup = Setup::new(&receiver, r#"["5s"]"#, &watchers);

    let out = setup.pagehook(&["test", "--json"]).await;
    assert_eq!(out.code, 1, "a failed watcher fails `test`: {out:?}");
    let lines: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines[0],
        serde_json::json!({"watcher": "ok", "ok": true, "reading": "stream",
            "values": {"price": "$5.00", "stock": "2", "title": "Widget"}})
    );
    assert_eq!(
        lines[1],
        serde_json::json!({"watcher": "gone", "ok": false, "reason": "http_status", "error": "fetch failed: HTTP 404 Not Found"})
    );

    let human = setup.pagehook(&["test", "ok"]).await;
    assert_eq!(human.code, 0, "{human:?}");
    assert_eq!(
        human.stdout,
        "ok: ok  (streamed, no DOM)\n  price = \"$5.00\"\n  stock = \"2\"\n  title = \"Widget\"\n"
    );
    assert!(!setup.state_dir().exists(), "test touches no state");
    assert!(receiver.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn every_command_has_help_with_an_example_and_version_works() {
    let config = std::path::Path::new("watchers.toml");
    let version = pagehook(config, &["--version"]).await;
    assert_eq!(
        version.stdout,
        format!("pagehook {}\n", env!("CARGO_PKG_VERSION"))
    );
    let top = pagehook(config, &["--help"]).await;
    assert!(top.stdout.contains("Examples:\n  pagehook demo"), "{top:?}");
    for command in ["run", "once", "check", "test", "demo", "receive", "secret"] {
        let help = pagehook(config, &[command, "--help"]).await;
        assert_eq!(help.code, 0, "{help:?}");
        let example = help
            .stdout
            .split_once("\nExample")
            .map(|(_, example)| example)
            .unwrap_or_else(|| {
                panic!(
                    "`pagehook {command} --help` has no example:\n{}",
                    help.stdout
                )
            });
        assert!(
            example.contains("  pagehook ") && example.contains(command),
            "{}",
            help.stdout
        );
    }
}
