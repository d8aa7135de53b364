//! A full disk, for real: the state directory is a small tmpfs that the test fills up under
//! the running binary, then empties again. Needs root (to mount); elsewhere it says why it
//! skipped and passes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Child;

use crate::fixtures::*;

/// A tmpfs mounted for the test, unmounted when dropped, panics included.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Tmpfs(path.to_owned()))
    }

    /// Take every free byte, in a file `free` deletes.
    fn fill(&self) {
        use std::io::Write;
        let mut file = std::fs::File::create(self.0.join("filler")).unwrap();
        for chunk in [64 * 1024, 4096, 512] {
            let bytes = vec![0u8; chunk];
            while file.write_all(&bytes).is_ok() {}
        }
    }

    fn free(&self) {
        std::fs::remove_file(self.0.join("filler")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let umount = |lazy: bool| {
            let mut command = std::process::Command::new("umount");
            if lazy {
                // The killed daemon may still hold files open for a moment.
                command.arg("-l");
            }
            command.arg(&self.0).status().is_ok_and(|s| s.success())
        };
        if !umount(false) && !umount(true) {
            eprintln!("could not unmount {}", self.0.display());
        }
    }
}

async fn healthz(admin: &str) -> (u16, Value) {
    let response = reqwest::get(format!("http://{admin}/healthz"))
        .await
        .unwrap();
    let code = response.status().as_u16();
    let body = response.text().await.unwrap();
    (code, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn price(request: &Received) -> String {
    request.json()["data"]["values"]["price"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_sends_nothing_undurable_holds_deliveries_quietly_and_recovers_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let disk = match Tmpfs::mount(&state, "16m") {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("SKIPPED a_full_disk_...: cannot mount a tmpfs ({why}); run as root");
            return;
        }
    };
    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    shop.set("/p", product("P", "$1", 1));
    let admin = format!(
        "127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let config = dir.path().join("watchers.toml");
    let retry = format!("[\"1500ms\", {}]", vec!["\"300ms\""; 30].join(", "));
    let watcher = widget_watcher(&shop, "w", "/p", "every 1s") + "jitter = \"0s\"\n";
    std::fs::write(
        &config,
        format!(
            "[daemon]\nstate_dir = \"{}\"\nadmin_listen = \"{admin}\"\n\n[webhooks.pipeline]\nurl = \"{}\"\nsecret = \"{SECRET}\"\nretry = {retry}\n\n{watcher}",
            state.display(),
            receiver.url()
        ),
    )
    .unwrap();
    let mut daemon = tokio::process::Command::new(binary())
        .args(["--log-format", "json", "-c"])
        .arg(&config)
        .arg("run")
        .env_remove("PAGEHOOK_CONFIG")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let log = DaemonLog::follow(&mut daemon);

    // seq 1 is committed while the disk has room; the receiver refuses it, so it stays queued,
    // due again 1.5 s later: while the disk is full.
    let at = log.wait_for(0, 1, check_line("baseline")).await;
    receiver.answer(503);
    shop.set("/p", product("P", "$2", 1));
    log.wait_for(at, 1, check_line("changed")).await;
    receiver.wait_for(1).await;
    // /healthz flushes, so everything so far is on disk before the disk fills.
    assert_eq!(healthz(&admin).await.0, 200);

    disk.fill();
    shop.set("/p", product("P", "$3", 1));
    // The first write after that fails: the check of $3 cannot make its event durable.
    let failed = log.wait_for(at, 1, check_line("failed")).await;
    let (posts, lines) = (receiver.requests().len(), log.len());
    // The failed write closed the store before the check could fail.
    let (code, health) = healthz(&admin).await;
    assert_eq!(code, 503, "{health}");
    let why = health["store"].as_str().unwrap_or_default();
    assert!(why.contains("space"), "{health}");

    // Two more checks while the disk stays full; seq 1 falls due among them.
    let window = log.wait_for(failed, 2, check_line("failed")).await;
    let held = receiver.requests();
    assert_eq!(
        held.len(),
        posts,
        "deliveries are held while the store fails: {} POSTs",
        held.len() - posts
    );
    assert!(
        held.iter().all(|r| price(r) == "$2"),
        "an event whose commit failed reached the receiver"
    );
    let quiet = window - lines;
    assert!(
        quiet <= 12,
        "{quiet} log lines over two checks of a failing store:\n{}",
        log.lines()[lines..].join("\n")
    );
    let failure = log.lines()[failed - 1].clone();
    assert!(failure.contains("state store"), "{failure}");

    // Space is back: the daemon reopens the store itself, without a restart.
    receiver.answer(204);
    disk.free();
    let freed = std::time::Instant::now();
    let reopen = json_line(|line| {
        line["fields"]["message"] == "the state store is open again: checks and deliveries resume"
    });
    log.wait_for(window, 1, reopen).await;
    let reopened = freed.elapsed();
    let (code, health) = healthz(&admin).await;
    assert_eq!(code, 200, "{health}");
    let requests = receiver
        .wait_until(|r| r.iter().any(|r| r.status == 204 && price(r) == "$3"))
        .await;
    assert!(
        daemon.try_wait().unwrap().is_none(),
        "still the same process"
    );
    shop.set("/p", product("P", "$4", 1));
    receiver
        .wait_until(|r| r.iter().any(|r| r.status == 204 && price(r) == "$4"))
        .await;
    assert!(requests.iter().any(|r| r.status == 204 && price(r) == "$2"));

    // No seq ever stood for two events, and every change arrived once under its own seq.
    let mut ids: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for request in receiver.requests() {
        let seq = request.json()["data"]["seq"].as_u64().unwrap();
        ids.entry(seq)
            .or_default()
            .insert(request.header("webhook-id").to_owned());
    }
    assert!(
        ids.values().all(|ids| ids.len() == 1),
        "a seq was reused: {ids:?}"
    );
    let mut delivered: Vec<(u64, String)> = receiver
        .requests()
        .iter()
        .filter(|r| r.status == 204)
        .map(|r| (r.json()["data"]["seq"].as_u64().unwrap(), price(r)))
        .collect();
    delivered.sort();
    assert_eq!(
        delivered,
        [(1, "$2".into()), (2, "$3".into()), (3, "$4".into())]
    );

    eprintln!(
        "full disk: {} POSTs and {quiet} log lines over two checks while the store failed; \
         writable again {reopened:.1?} after space came back",
        held.len() - posts
    );
    if std::env::var_os("PAGEHOOK_SHOW_LOG").is_some() {
        eprintln!("{}", log.lines().join("\n"));
    }
    signal_term(&daemon);
    let status = tokio::time::timeout(Duration::from_secs(15), daemon.wait())
        .await
        .expect("the daemon stops")
        .unwrap();
    assert!(status.success(), "{status:?}");
    drop(disk);
}

fn signal_term(child: &Child) {
    let pid = child.id().unwrap().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
}
