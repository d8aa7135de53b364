//! `pagehook receive`: the real binary verifying requests signed the way pagehook signs them.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use pagehook::sign::{self, Secret};

use crate::fixtures::*;

struct Sent {
    status: u16,
    body: String,
}

async fn post(url: &str, secret: &Secret, id: &str, ts: i64, signed: &str, sent: &str) -> Sent {
    let signature = sign::sign(std::slice::from_ref(secret), id, ts, signed.as_bytes());
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header(sign::HEADER_ID, id)
        .header(sign::HEADER_TIMESTAMP, ts.to_string())
        .header(sign::HEADER_SIGNATURE, signature)
        .body(sent.to_owned())
        .send()
        .await
        .unwrap();
    Sent {
        status: response.status().as_u16(),
        body: response.text().await.unwrap(),
    }
}

/// A running `pagehook receive` on a free port, with its stdout lines and its URL.
struct Running {
    child: tokio::process::Child,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    first: String,
    url: String,
}

async fn start_receive(args: &[&str], secret_env: &str) -> Running {
    let mut child = tokio::process::Command::new(binary())
        .args(["receive", "--port", "0"])
        .args(args)
        .env("PAGEHOOK_SECRET", secret_env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = stdout.next_line().await.unwrap().unwrap();
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_owned();
    Running {
        child,
        stdout,
        first,
        url: format!("http://{addr}/hooks/pagehook"),
    }
}

impl Running {
    /// SIGINT, then everything it printed after the first line; asserts a clean exit.
    async fn stop(mut self) -> Vec<String> {
        let pid = self.child.id().unwrap().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap();
        assert!(killed.success());
        let mut printed = Vec::new();
        while let Some(line) = self.stdout.next_line().await.unwrap() {
            printed.push(line);
        }
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("receive stops on SIGINT")
            .unwrap();
        assert_eq!(status.code(), Some(0));
        printed
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn receive_verifies_answers_401_to_bad_requests_and_appends_verified_events() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("events.jsonl");
    let old = Secret::generate().unwrap();
    let out_arg = out_file.display().to_string();
    // Two secrets in the variable, as while rotating.
    let running = start_receive(
        &["--out", &out_arg],
        &format!("{SECRET}\n{}", old.to_whsec()),
    )
    .await;
    assert!(
        running.first.contains("with 2 secrets"),
        "{}",
        running.first
    );
    let url = running.url.clone();

    let secret: Secret = SECRET.parse().unwrap();
    let now = chrono::Utc::now().timestamp();
    let body = r#"{"type":"watch.changed","timestamp":"2026-11-27T06:00:00Z","data":{"watcher":"acme","seq":1}}"#;
    let tampered = body.replace("\"seq\":1", "\"seq\":2");

    let ok = post(&url, &secret, "evt_ok", now, body, body).await;
    assert_eq!((ok.status, ok.body.as_str()), (204, ""));
    let rotated = post(&url, &old, "evt_old", now, body, body).await;
    assert_eq!(rotated.status, 204, "the second secret verifies too");

    let wrong = Secret::generate().unwrap();
    let rejected = [
        (
            post(&url, &secret, "evt_t", now, body, &tampered).await,
            "no webhook-signature entry matches any secret",
        ),
        (
            post(&url, &wrong, "evt_w", now, body, body).await,
            "no webhook-signature entry matches any secret",
        ),
        (
            post(&url, &secret, "evt_s", now - 600, body, body).await,
            "webhook-timestamp is outside the allowed tolerance",
        ),
    ];
    for (sent, reason) in &rejected {
        assert_eq!(sent.status, 401, "{}", sent.body);
        assert!(sent.body.starts_with(reason), "{}", sent.body);
    }

    // A 204 is sent only once the line is written.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out_file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["id"], "evt_ok");
    assert_eq!(lines[1]["id"], "evt_old");
    assert_eq!(
        lines[0]["event"],
        serde_json::from_str::<serde_json::Value>(body).unwrap()
    );

    let printed = running.stop().await;
    let heads: Vec<&String> = printed.iter().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(heads.len(), 5, "{printed:#?}");
    assert!(
        heads[0].contains("verified  watch.changed  evt_ok  watcher=acme seq=1"),
        "{heads:?}"
    );
    assert_eq!(
        heads.iter().filter(|l| l.contains("REJECTED  401")).count(),
        3,
        "{heads:?}"
    );
    assert!(
        printed.contains(&"        \"watcher\": \"acme\",".to_owned()),
        "{printed:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn receive_refuses_a_malformed_secret_without_echoing_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = pagehook(
        &dir.path().join("watchers.toml"),
        &["receive", "--secret", "whsec_c2hvcnQ="],
    )
    .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("secret #1: secret is 5 bytes long"),
        "{out:?}"
    );
    assert!(!out.stderr.contains("c2hvcnQ"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_prints_a_fresh_usable_secret() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("watchers.toml");
    let (a, b) = (
        pagehook(&config, &["secret"]).await,
        pagehook(&config, &["secret"]).await,
    );
    assert_eq!(a.code, 0, "{a:?}");
    let (a, b) = (a.stdout.trim(), b.stdout.trim());
    assert_ne!(a, b);
    assert!(a.starts_with("whsec_"), "{a}");
    a.parse::<Secret>().expect("pagehook parses what it prints");
}

#[tokio::test(flavor = "multi_thread")]
async fn receive_verifies_what_the_real_pipeline_sends() {
    let shop = Shop::start().await;
    shop.set("/widget", product("Widget", "$10.00", 5));
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("events.jsonl");
    let out_arg = out_file.display().to_string();
    let running = start_receive(&["--out", &out_arg], SECRET).await;
    let config = dir.path().join("watchers.toml");
    let text = format!(
        "[daemon]\nstate_dir = \"{}\"\n[webhooks.local]\nurl = \"{}\"\nsecret = \"{SECRET}\"\n{}",
        dir.path().join("state").display(),
        running.url,
        widget_watcher(&shop, "w", "/widget", "every 5m")
    );
    std::fs::write(&config, text).unwrap();

    let baseline = pagehook(&config, &["once"]).await;
    assert_eq!(baseline.code, 0, "{baseline:?}");
    shop.set("/widget", product("Widget", "$8.00", 5));
    let changed = pagehook(&config, &["once"]).await;
    assert!(
        changed.stdout.contains("delivered 1, 0 queued"),
        "{changed:?}"
    );

    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&out_file).unwrap().trim()).unwrap();
    assert!(line["id"].as_str().unwrap().starts_with("evt_"), "{line}");
    assert_eq!(
        line["event"]["data"]["changes"]["price"],
        serde_json::json!({"old": "$10.00", "new": "$8.00"})
    );
    let printed = running.stop().await;
    assert!(
        printed[0].contains("verified  watch.changed  evt_"),
        "{printed:#?}"
    );
    assert!(printed[0].ends_with("watcher=w seq=1"), "{printed:#?}");
}
