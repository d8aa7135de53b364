//! `export` and `import`: a watcher moves to another state directory (another shard) with its
//! baseline and `seq`, into a stopped store or a running daemon.

use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use pagehook::clock::Clock;

use crate::fixtures::*;

/// Shard A checks "w" twice (a baseline, then a change: seq 1) and "other" once, and exports
/// both; the file's lines, parsed.
async fn exported_from_a(shop: &Shop) -> (String, Vec<Value>) {
    let receiver = Receiver::start().await;
    shop.set("/w", product("Widget", "$10.00", 5));
    shop.set("/other", product("Other", "$1.00", 1));
    let watchers = widget_watcher(shop, "w", "/w", "every 1h")
        + &widget_watcher(shop, "other", "/other", "every 1h");
    let a = Setup::new(&receiver, r#"["5s"]"#, &watchers);
    assert_eq!(a.pagehook(&["once"]).await.code, 0);
    shop.set("/w", product("Widget", "$9.00", 5));
    assert_eq!(a.pagehook(&["once"]).await.code, 0);
    assert_eq!(receiver.wait_for(1).await[0].json()["data"]["seq"], 1);

    let out = a.pagehook(&["export"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "a header and two watchers: {}", out.stdout);
    assert_eq!(lines[0]["pagehook_export"], 1);
    assert_eq!(lines[0]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(lines[1]["watcher"], "w");
    assert_eq!(lines[1]["state"]["seq"], 1);
    assert_eq!(lines[1]["state"]["values"]["price"], "$9.00");
    let kinds: Vec<&Value> = lines[1]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["kind"])
        .collect();
    assert_eq!(
        kinds,
        [&json!("baseline"), &json!("changed")],
        "oldest first"
    );
    let unknown = a.pagehook(&["export", "nope"]).await;
    assert_eq!(unknown.code, 2, "{unknown:?}");

    // With "other" gone from A's config (moved to another shard), A hands it over.
    let config = std::fs::read_to_string(a.config()).unwrap();
    let (without_other, _) = config.split_once("[[watchers]]\nname = \"other\"").unwrap();
    let shrunk = a.dir.path().join("shrunk.toml");
    std::fs::write(&shrunk, without_other).unwrap();
    let unowned = pagehook(&shrunk, &["export", "--unowned"]).await;
    assert_eq!(unowned.code, 0, "{unowned:?}");
    let handed: Vec<&str> = unowned.stdout.lines().collect();
    assert_eq!(handed.len(), 2, "{unowned:?}");
    assert_eq!(serde_json::from_str::<Value>(handed[1]).unwrap(), lines[2]);
    (out.stdout, lines)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_moved_watcher_continues_its_values_and_seq_on_the_shard_that_imports_it() {
    let shop = Shop::start().await;
    let (file, lines) = exported_from_a(&shop).await;
    let receiver = Receiver::start().await;
    let b = Setup::new(
        &receiver,
        r#"["5s"]"#,
        &widget_watcher(&shop, "w", "/w", "every 1h"),
    );

    // A file from another format writes nothing, and says which line is wrong.
    let other_format = file.replacen("\"pagehook_export\":1", "\"pagehook_export\":2", 1);
    let other = b.dir.path().join("other.jsonl");
    std::fs::write(&other, other_format).unwrap();
    let refused = b.pagehook(&["import", other.to_str().unwrap()]).await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("other.jsonl: line 1: an export of format 2"),
        "{refused:?}"
    );
    let broken = format!("{file}{{\"watcher\":\n");
    let broken_file = b.dir.path().join("broken.jsonl");
    std::fs::write(&broken_file, broken).unwrap();
    let refused = b.pagehook(&["import", broken_file.to_str().unwrap()]).await;
    assert!(
        refused.code == 1 && refused.stderr.contains("line 4: not a JSON line"),
        "{refused:?}"
    );
    assert!(!b.state_dir().exists(), "nothing was written");

    let good = b.dir.path().join("a.jsonl");
    std::fs::write(&good, &file).unwrap();
    let imported = b.pagehook(&["import", good.to_str().unwrap()]).await;
    assert_eq!(imported.code, 0, "{imported:?}");
    assert_eq!(
        imported.stdout,
        "imported 1 watcher: 1 new, 0 replaced, 0 kept because the local state is as new or newer\nnew: w\nskipped 1 watcher this shard does not have: other\n"
    );

    shop.set("/w", product("Widget", "$8.00", 5));
    let once = b.pagehook(&["once"]).await;
    assert_eq!(once.code, 0, "{once:?}");
    assert!(once.stdout.starts_with("checked 1: 1 changed"), "{once:?}");
    let events = receiver.wait_for(1).await;
    assert_eq!(events.len(), 1);
    let event = events[0].json();
    assert_eq!(event["type"], "watch.changed");
    assert_eq!(
        event["data"]["changes"]["price"]["old"],
        lines[1]["state"]["values"]["price"]
    );
    assert_eq!(event["data"]["changes"]["price"]["new"], "$8.00");
    assert_eq!(
        event["data"]["seq"],
        lines[1]["state"]["seq"].as_u64().unwrap() + 1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_daemon_takes_an_import_larger_than_a_control_request_and_diffs_against_it() {
    let shop = Shop::start().await;
    let (_, lines) = exported_from_a(&shop).await;
    // 1,500 older entries make one record of some 200 KB, past the socket's 64 KB a request.
    let mut record = lines[1].clone();
    let first: chrono::DateTime<chrono::Utc> = record["history"][0]["checked_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut history: Vec<Value> = (1..=1500)
        .rev()
        .map(|n| {
            json!({
                "checked_at": first - chrono::TimeDelta::minutes(n),
                "kind": "changed",
                "changed": ["price"],
                "event_id": format!("evt_old_{n}"),
                "values": {"price": format!("${n}.00"), "title": "Widget", "stock": 5},
            })
        })
        .collect();
    history.extend(record["history"].as_array().unwrap().iter().cloned());
    record["history"] = history.into();
    let file = format!("{}\n{record}\n", lines[0]);
    assert!(file.len() > 150_000, "{}", file.len());

    let receiver = Receiver::start().await;
    let b = Setup::new(
        &receiver,
        r#"["5s"]"#,
        &widget_watcher(&shop, "w", "/w", "every 1h"),
    );
    let config = pagehook::config::load(&b.config()).unwrap().config;
    let stop = CancellationToken::new();
    let daemon = tokio::spawn(pagehook::daemon::run_on(
        Clock::System,
        config,
        b.config(),
        stop.clone(),
    ));
    // Never checked here, so the daemon checks it at once: a local baseline with seq 0, which
    // the import, newer, replaces (or, landing during that check, leaves that check uncommitted).
    let hits = shop.hits("/w");
    shop.wait_for_hits("/w", hits + 1).await;

    let mut import = tokio::process::Command::new(binary())
        .arg("-c")
        .arg(b.config())
        .args(["import", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = import.stdin.take().unwrap();
    stdin.write_all(file.as_bytes()).await.unwrap();
    drop(stdin);
    let imported: Output = import.wait_with_output().await.unwrap().into();
    assert_eq!(imported.code, 0, "{imported:?}");
    assert!(
        imported.stdout.starts_with("imported 1 watcher:"),
        "{imported:?}"
    );

    let history = b
        .pagehook(&["history", "w", "--json", "--limit", "5000"])
        .await;
    assert_eq!(history.code, 0, "{history:?}");
    let history: Value = serde_json::from_str(&history.stdout).unwrap();
    let entries = history["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1000, "trimmed to the default history_limit");
    assert_eq!(entries[0]["values"]["price"], "$9.00", "newest first");

    shop.set("/w", product("Widget", "$8.00", 5));
    let once = b.pagehook(&["once", "w"]).await;
    assert_eq!(once.code, 0, "{once:?}");
    assert!(
        once.stdout.contains("queued for the running daemon"),
        "{once:?}"
    );
    let events = receiver.wait_for(1).await;
    let event = events[0].json();
    assert_eq!(event["type"], "watch.changed");
    assert_eq!(event["data"]["changes"]["price"]["old"], "$9.00");
    assert_eq!(event["data"]["seq"], 2);

    let exported = b.pagehook(&["export", "w"]).await;
    assert_eq!(exported.code, 0, "{exported:?}");
    let record: Value = serde_json::from_str(exported.stdout.lines().nth(1).unwrap()).unwrap();
    assert_eq!(record["state"]["seq"], 2, "exported through the daemon");
    stop.cancel();
    daemon.await.unwrap().unwrap();
    assert_eq!(receiver.requests().len(), 1, "one event, no other");
}
