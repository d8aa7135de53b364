//! Three shards of one cluster as real processes on one machine: one config, one shop, one
//! receiver, a state directory each (as the systemd template gives them).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;
use tokio::process::Child;

use crate::fixtures::*;

const SHARDS: u32 = 3;
const WATCHERS: usize = 9;

struct Cluster {
    dir: tempfile::TempDir,
    shop: Shop,
    receiver: Receiver,
}

struct Node {
    child: Child,
    log: DaemonLog,
}

impl Cluster {
    async fn start() -> Cluster {
        let (shop, receiver) = (Shop::start().await, Receiver::start().await);
        // One loopback host for every page, so the watchers divide by name.
        let mut config = format!(
            "[cluster]\nshards = {SHARDS}\nshard_by = \"watcher\"\n\n[webhooks.pipeline]\nurl = \"{}\"\nsecret = \"{SECRET}\"\nretry = [{}]\n\n",
            receiver.url(),
            vec!["\"100ms\""; 100].join(", ")
        );
        for n in 0..WATCHERS {
            let path = format!("/p{n}");
            shop.set(&path, product(&format!("P{n}"), "$10.00", 1));
            config += &widget_watcher(&shop, &format!("w{n}"), &path, "every 1s");
            config += "jitter = \"0s\"\n";
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("watchers.toml"), config).unwrap();
        Cluster {
            dir,
            shop,
            receiver,
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("watchers.toml")
    }

    fn state_dir(&self, shard: u32) -> PathBuf {
        self.dir.path().join(format!("state-{shard}"))
    }

    fn node(&self, shard: u32) -> Node {
        let mut child = tokio::process::Command::new(binary())
            .arg("-c")
            .arg(self.config())
            .args(["--log-format", "json", "--shard", &shard.to_string(), "run"])
            .env("STATE_DIRECTORY", self.state_dir(shard))
            .env_remove("PAGEHOOK_SHARD")
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let log = DaemonLog::follow(&mut child);
        Node { child, log }
    }

    fn set_prices(&self, price: &str) {
        for n in 0..WATCHERS {
            self.shop
                .set(&format!("/p{n}"), product(&format!("P{n}"), price, 1));
        }
    }

    /// Wait until `n` distinct events have been answered 2xx.
    async fn delivered(&self, n: usize) {
        self.receiver
            .wait_until(|got| {
                let ids: BTreeSet<&str> = got
                    .iter()
                    .filter(|r| r.status < 300)
                    .map(|r| r.header("webhook-id"))
                    .collect();
                ids.len() >= n
            })
            .await;
    }

    /// The distinct changes that arrived: (watcher, seq) -> the new price, with the old one.
    fn changes(&self) -> BTreeMap<(String, u64), (Value, Value)> {
        let mut seen = BTreeMap::new();
        for request in self.receiver.requests() {
            let event = request.json();
            if event["type"] != "watch.changed" || request.status >= 300 {
                continue;
            }
            let data = &event["data"];
            let price = &data["changes"]["price"];
            let key = (
                data["watcher"].as_str().unwrap().to_owned(),
                data["seq"].as_u64().unwrap(),
            );
            let change = (price["old"].clone(), price["new"].clone());
            if let Some(before) = seen.insert(key.clone(), change.clone()) {
                assert_eq!(before, change, "{key:?}: one seq, two different events");
            }
        }
        seen
    }
}

/// The watchers a node's log says it checked.
fn checked(log: &DaemonLog) -> BTreeSet<String> {
    log.lines()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["message"] == "check")
        .filter_map(|line| line["fields"]["watcher"].as_str().map(str::to_owned))
        .collect()
}

fn owner(watcher: &str) -> u32 {
    pagehook::config::shard_of(watcher, SHARDS)
}

/// Wait until `node` has logged a check of each of its watchers with `outcome` from line
/// `from` on.
async fn each_checked(node: &Node, from: usize, shard: u32, outcome: &'static str) -> usize {
    let own = (0..WATCHERS)
        .filter(|n| owner(&format!("w{n}")) == shard)
        .count();
    let mut at = from;
    let mut done = BTreeSet::new();
    while done.len() < own {
        at = node.log.wait_for(at, 1, check_line(outcome)).await;
        let line: Value = serde_json::from_str(&node.log.lines()[at - 1]).unwrap();
        done.insert(line["fields"]["watcher"].as_str().unwrap().to_owned());
    }
    at
}

fn stop(node: &mut Node) {
    node.child.start_kill().unwrap();
}

async fn wait_exit(node: &mut Node) {
    node.child.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn three_shards_divide_the_watchers_and_each_change_is_sent_once() {
    let cluster = Cluster::start().await;
    let owned: Vec<usize> = (0..SHARDS)
        .map(|s| {
            (0..WATCHERS)
                .filter(|n| owner(&format!("w{n}")) == s)
                .count()
        })
        .collect();
    assert!(
        owned.iter().all(|&n| n > 0),
        "every shard has work: {owned:?}"
    );

    let divided = pagehook(&cluster.config(), &["check", "--shards"]).await;
    assert_eq!(divided.code, 0, "{divided:?}");
    for (shard, count) in owned.iter().enumerate() {
        let line = format!("shard {shard}: {count} watchers on 1 hosts");
        assert!(
            divided.stdout.contains(&line),
            "{line} in {}",
            divided.stdout
        );
    }

    let mut nodes: Vec<Node> = (0..SHARDS).map(|s| cluster.node(s)).collect();
    let mut marks = Vec::new();
    for (shard, node) in nodes.iter().enumerate() {
        marks.push(each_checked(node, 0, shard as u32, "baseline").await);
    }
    // Each watcher is checked by exactly one shard, its owner, and together they check all.
    let mut all = BTreeSet::new();
    for (shard, node) in nodes.iter().enumerate() {
        let checked = checked(&node.log);
        for watcher in &checked {
            assert_eq!(
                owner(watcher),
                shard as u32,
                "{watcher} checked by shard {shard}"
            );
        }
        assert!(all.is_disjoint(&checked));
        all.extend(checked);
    }
    assert_eq!(all.len(), WATCHERS);
    // A second node started as shard 0 on this machine finds shard 0's store held.
    let mut twin = cluster.node(0);
    assert!(!twin.child.wait().await.unwrap().success());
    let said = twin.log.all().await;
    assert!(
        said.contains("is in use by another pagehook process"),
        "{said}"
    );

    // A change on each page: exactly one event each, from its owner.
    cluster.set_prices("$12.00");
    for (shard, node) in nodes.iter().enumerate() {
        marks[shard] = each_checked(node, marks[shard], shard as u32, "changed").await;
    }
    cluster.delivered(WATCHERS).await;
    // Each shard has since checked its watchers again and found nothing new to send.
    for (shard, node) in nodes.iter().enumerate() {
        marks[shard] = each_checked(node, marks[shard], shard as u32, "unchanged").await;
    }
    let changes = cluster.changes();
    assert_eq!(changes.len(), WATCHERS, "{changes:?}");
    assert!(changes.keys().all(|(_, seq)| *seq == 1));

    // Shard 1 commits its next changes while the receiver is down, and is then killed.
    cluster.receiver.answer(503);
    cluster.set_prices("$14.00");
    for (shard, node) in nodes.iter().enumerate() {
        marks[shard] = each_checked(node, marks[shard], shard as u32, "changed").await;
    }
    stop(&mut nodes[1]);
    wait_exit(&mut nodes[1]).await;
    cluster.receiver.answer(200);
    let others = owned[0] + owned[2];
    cluster.delivered(WATCHERS + others).await;
    // The others went on: their changes arrived, and shard 1's did not.
    for shard in [0, 2] {
        marks[shard] = each_checked(&nodes[shard], marks[shard], shard as u32, "unchanged").await;
    }
    let second: Vec<_> = cluster
        .changes()
        .into_keys()
        .filter(|(_, seq)| *seq == 2)
        .collect();
    assert_eq!(second.len(), others, "{second:?}");
    assert!(second.iter().all(|(w, _)| owner(w) != 1));

    // Restarted, shard 1 delivers its outbox: every change once, with the right old value.
    nodes[1] = cluster.node(1);
    cluster.delivered(2 * WATCHERS).await;
    let changes = cluster.changes();
    assert_eq!(changes.len(), 2 * WATCHERS, "{changes:?}");
    for ((watcher, seq), (old, new)) in &changes {
        let (was, now) = if *seq == 1 {
            ("10.00", "12.00")
        } else {
            ("12.00", "14.00")
        };
        assert!(old.to_string().contains(was), "{watcher} {seq}: {old}");
        assert!(new.to_string().contains(now), "{watcher} {seq}: {new}");
    }
    for node in &mut nodes {
        stop(node);
        wait_exit(node).await;
    }
    let delivered = cluster
        .receiver
        .requests()
        .iter()
        .filter(|r| r.status < 300)
        .count();
    assert_eq!(delivered, 2 * WATCHERS, "each change sent once");
    assert_own_stores(&cluster);
}

/// Each shard's store holds only its own watchers.
fn assert_own_stores(cluster: &Cluster) {
    for shard in 0..SHARDS {
        let store = pagehook::store::Store::open(&cluster.state_dir(shard)).unwrap();
        for n in 0..WATCHERS {
            let name = format!("w{n}");
            let seq = store.watcher_state(&name).unwrap().seq;
            let expected = if owner(&name) == shard { 2 } else { 0 };
            assert_eq!(seq, expected, "shard {shard}'s store, {name}");
        }
    }
}

#[tokio::test]
async fn a_node_that_does_not_know_its_shard_refuses_to_run() {
    let cluster = Cluster::start().await;
    let out = pagehook(&cluster.config(), &["once"]).await;
    assert_eq!(out.code, 78, "{out:?}");
    assert!(
        out.stderr
            .contains("this node's shard is not known: give it with --shard I"),
        "{out:?}"
    );
    let out = pagehook(&cluster.config(), &["--shard", "3", "run"]).await;
    assert_eq!(out.code, 78, "{out:?}");
    assert!(
        out.stderr
            .contains("--shard 3 is not a shard of this cluster: shards = 3 numbers them 0 to 2"),
        "{out:?}"
    );
    let out = pagehook(&cluster.config(), &["--shard", "1", "check"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let count = (0..WATCHERS)
        .filter(|n| owner(&format!("w{n}")) == 1)
        .count();
    assert!(
        out.stdout.contains(&format!(
            "(9 watchers, 1 webhooks; shard 1 of 3 checks {count} of them)"
        )),
        "{out:?}"
    );
}

/// `pagehook --shard I ARGS` on `config`, with shard I's state directory, to completion.
async fn on_shard(
    cluster: &Cluster,
    config: &std::path::Path,
    shard: u32,
    args: &[&str],
) -> Output {
    let out = tokio::process::Command::new(binary())
        .arg("-c")
        .arg(config)
        .args(["--shard", &shard.to_string()])
        .args(args)
        .env("STATE_DIRECTORY", cluster.state_dir(shard))
        .env_remove("PAGEHOOK_SHARD")
        .env_remove("PAGEHOOK_CONFIG")
        .output()
        .await
        .unwrap();
    out.into()
}

/// The README's procedure for changing the number of shards, from 3 to 2: export everywhere,
/// change `shards`, import everywhere. Every watcher's next change carries its old value and
/// the next `seq`, whichever shard it moved to.
#[tokio::test]
async fn changing_the_number_of_shards_moves_each_baseline_to_its_new_owner() {
    let cluster = Cluster::start().await;
    let three = cluster.config();
    for price in ["$10.00", "$11.00"] {
        cluster.set_prices(price);
        for shard in 0..SHARDS {
            let out = on_shard(&cluster, &three, shard, &["once"]).await;
            assert_eq!(out.code, 0, "{out:?}");
        }
    }
    assert_eq!(
        cluster.changes().len(),
        WATCHERS,
        "one change each before the move"
    );

    let mut exported = String::new();
    for shard in 0..SHARDS {
        let out = on_shard(&cluster, &three, shard, &["export"]).await;
        assert_eq!(out.code, 0, "{out:?}");
        exported += &out.stdout;
    }
    let moved = cluster.dir.path().join("exported.jsonl");
    std::fs::write(&moved, exported).unwrap();

    let two = cluster.dir.path().join("two.toml");
    let text = std::fs::read_to_string(&three).unwrap();
    std::fs::write(&two, text.replace("shards = 3", "shards = 2")).unwrap();
    let new_owner = |w: &str| pagehook::config::shard_of(w, 2);
    let moving = (0..WATCHERS)
        .map(|n| format!("w{n}"))
        .filter(|w| new_owner(w) != owner(w))
        .count();
    assert!(moving > 0, "some watchers change shard");
    for shard in 0..2 {
        let out = on_shard(&cluster, &two, shard, &["import", moved.to_str().unwrap()]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(
            out.stdout.contains("skipped"),
            "the other shard's watchers: {out:?}"
        );
    }

    cluster.set_prices("$12.00");
    for shard in 0..2 {
        let out = on_shard(&cluster, &two, shard, &["once"]).await;
        assert_eq!(out.code, 0, "{out:?}");
    }
    let after: Vec<_> = cluster
        .changes()
        .into_iter()
        .filter(|((_, seq), _)| *seq == 2)
        .collect();
    assert_eq!(
        after.len(),
        WATCHERS,
        "no watcher took a new baseline: {after:?}"
    );
    for ((watcher, _), (old, new)) in &after {
        assert!(old.to_string().contains("11.00"), "{watcher}: {old}");
        assert!(new.to_string().contains("12.00"), "{watcher}: {new}");
    }
}
