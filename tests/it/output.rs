//! What the commands print, and to whom: a reader that goes away (`| head -1`) ends a command
//! quietly, and under `--log-format json` config problems are JSON lines like any log line.

use std::process::Stdio;

use serde_json::Value;

use crate::fixtures::*;

/// The write end of a pipe whose reader has already gone, as after `| head -1` read its line.
fn closed_pipe() -> Stdio {
    let (writer, reader) = tokio::net::unix::pipe::pipe().unwrap();
    drop(reader);
    Stdio::from(writer.into_blocking_fd().unwrap())
}

/// Run the binary with stdout (or stderr, when `stderr` is set) into a closed pipe.
async fn into_closed_pipe(setup: &Setup, args: &[&str], stderr: bool) -> Output {
    let mut command = tokio::process::Command::new(binary());
    command
        .arg("-c")
        .arg(setup.config())
        .args(args)
        .env("RUST_LOG", "warn");
    if stderr {
        command.stdout(Stdio::piped()).stderr(closed_pipe());
    } else {
        command.stdout(closed_pipe()).stderr(Stdio::piped());
    }
    // Not `output()`, which would pipe stdout and stderr itself.
    let out = command.spawn().unwrap().wait_with_output().await.unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_pipe_ends_every_command_that_prints_quietly() {
    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    shop.set("/w", product("Widget", "$5.00", 2));
    let setup = Setup::new(
        &receiver,
        r#"["1h"]"#,
        &widget_watcher(&shop, "w", "/w", "every 1h"),
    );
    let baseline = setup.pagehook(&["once"]).await;
    assert_eq!(baseline.code, 0, "{baseline:?}");
    shop.set("/w", product("Widget", "$6.00", 2));
    receiver.answer(500);
    let change = setup.pagehook(&["once"]).await;
    assert!(change.stdout.contains("1 queued"), "{change:?}");

    let commands: [&[&str]; 13] = [
        &["status"],
        &["status", "--json"],
        &["history", "w"],
        &["history", "w", "--json"],
        &["deliveries"],
        &["deliveries", "--json"],
        &["deliveries", "--dead"],
        &["replay", "--dead"],
        &["check"],
        &["test"],
        &["test", "--json"],
        &["once"],
        &["secret"],
    ];
    for args in commands {
        let out = into_closed_pipe(&setup, args, false).await;
        assert_eq!(out.code, 0, "pagehook {args:?}: {out:?}");
        assert_eq!(out.stderr, "", "pagehook {args:?}");
    }

    // Error messages go to stderr; a closed stderr must not turn a clean failure into a crash.
    std::fs::write(
        setup.config(),
        "[[watchers]]\nname = \"Bad Name\"\nurl = \"x\"\n",
    )
    .unwrap();
    let out = into_closed_pipe(&setup, &["check"], true).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stdout, "");
}

#[tokio::test(flavor = "multi_thread")]
async fn config_problems_are_json_lines_under_log_format_json() {
    let receiver = Receiver::start().await;
    let watcher = |css: &str| {
        format!(
            "[[watchers]]\nname = \"w\"\nurl = \"https://shop.example/w\"\nschedule = \"every 10s\"\ntimeout = \"1m\"\nfields.price = {{ css = \"{css}\" }}\n"
        )
    };
    let setup = Setup::new(&receiver, r#"["1h"]"#, &watcher("div >"));
    let path = setup.config().display().to_string();
    let problems = |out: &Output| -> Vec<(String, Value)> {
        out.stderr
            .lines()
            .map(|line| {
                let line: Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
                (
                    line["level"].as_str().unwrap().to_owned(),
                    line["fields"].clone(),
                )
            })
            .collect()
    };
    let selector = serde_json::json!({
        "message": "invalid CSS selector `div >`: a combinator (` `, `>`, `+` or `~`) has no selector after it",
        "file": path, "line": 14, "column": 24});
    for (command, code) in [("check", 1), ("run", 78), ("status", 1)] {
        let out = setup.pagehook(&["--log-format", "json", command]).await;
        assert_eq!(out.code, code, "{out:?}");
        assert_eq!(
            problems(&out),
            [("ERROR".to_owned(), selector.clone())],
            "pagehook {command}"
        );
    }
    // Without the flag, the same problem reads FILE:LINE:COL: message, on one line.
    let out = setup.pagehook(&["check"]).await;
    assert_eq!(
        out.stderr,
        format!("{path}:14:24: {}\n", selector["message"].as_str().unwrap())
    );

    let valid = Setup::new(&receiver, r#"["1h"]"#, &watcher("h1"));
    let out = valid.pagehook(&["--log-format", "json", "check"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let warning = serde_json::json!({
        "message": "timeout (1m) is longer than the schedule's period (10s); overlapping checks are skipped",
        "file": valid.config().display().to_string(), "line": 12, "column": 12});
    assert_eq!(problems(&out), [("WARN".to_owned(), warning)]);
}
