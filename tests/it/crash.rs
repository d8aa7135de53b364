//! Crash safety, proved the hard way: SIGKILL the real daemon at random moments while it
//! produces and delivers events, restart it, repeat; then check that nothing was lost,
//! duplicates are true duplicates, and nothing arrived that was never committed.
//!
//! `PAGEHOOK_CRASH_CYCLES` (default 20), `PAGEHOOK_CRASH_MAX_MS` (the longest a daemon lives,
//! default 400) and `PAGEHOOK_CRASH_SEED` tune it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::fixtures::*;

const WATCHERS: usize = 6;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64: enough randomness for kill times, and a seed that reproduces a failure.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_moments_loses_no_event_and_invents_none() {
    let cycles = env_or("PAGEHOOK_CRASH_CYCLES", 20);
    let max_ms = env_or("PAGEHOOK_CRASH_MAX_MS", 400).max(20);
    let seed = env_or("PAGEHOOK_CRASH_SEED", rand_seed());
    eprintln!("crash test: {cycles} cycles, up to {max_ms} ms each, PAGEHOOK_CRASH_SEED={seed}");
    let mut rng = Rng(seed | 1);

    let (shop, receiver) = (Shop::start().await, Receiver::start().await);
    let mut watchers = String::new();
    for n in 0..WATCHERS {
        let path = format!("/p{n}");
        shop.set(&path, product(&format!("P{n}"), "$1", 1));
        watchers += &widget_watcher(&shop, &format!("w{n}"), &path, "every 1s");
        watchers += "jitter = \"0s\"\ntimeout = \"900ms\"\n";
    }
    // Short retries, so attempts cut off or refused during the run are retried within it.
    let retry = format!("[{}]", vec!["\"50ms\""; 40].join(", "));
    let setup = Setup::new(&receiver, &retry, &watchers);

    // Prices move all the time, so every check the daemon completes commits an event.
    let mover = tokio::spawn({
        let shop = shop.clone();
        async move {
            for tick in 0u64.. {
                for n in 0..WATCHERS {
                    shop.set(
                        &format!("/p{n}"),
                        product(&format!("P{n}"), &format!("${tick}.{n}"), 1),
                    );
                }
                // Not a wait: the pace at which the shop's prices move.
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        }
    });

    // Under load more daemons die before their first commit; the kills go on (up to three
    // times as many) until the daemons have committed at least one event per planned cycle.
    let committed = || {
        let store = setup.store();
        (0..WATCHERS)
            .map(|n| store.watcher_state(&format!("w{n}")).unwrap().seq)
            .sum::<u64>()
    };
    let mut cycle = 0;
    while cycle < cycles || (cycle < 3 * cycles && committed() < cycles) {
        cycle += 1;
        // Some cycles the receiver refuses, so retries are in the outbox when the kill lands.
        receiver.answer(if rng.below(4) == 0 { 503 } else { 200 });
        let mut daemon = tokio::process::Command::new(binary())
            .args(["-c", setup.config().to_str().unwrap(), "run"])
            .env("RUST_LOG", "error")
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // Not a wait: the kill lands at a random moment of the daemon's life, start included.
        tokio::time::sleep(Duration::from_millis(10 + rng.below(max_ms))).await;
        daemon.start_kill().unwrap();
        let status = daemon.wait().await.unwrap();
        assert!(
            !status.success(),
            "cycle {cycle}: the daemon was killed, not stopped"
        );
    }
    mover.abort();

    // A last clean pass delivers whatever the kills left queued.
    receiver.answer(200);
    let last = setup.pagehook(&["once"]).await;
    assert!(last.stdout.contains(", 0 queued, 0 dead"), "{last:?}");

    let store = setup.store();
    // (watcher, seq) -> the distinct (webhook-id, body) pairs that arrived for it.
    type Copies = BTreeSet<(String, Vec<u8>)>;
    let mut received: BTreeMap<(String, u64), Copies> = BTreeMap::new();
    for request in receiver.requests().iter().filter(|r| r.status == 200) {
        let event = request.json();
        let key = (
            event["data"]["watcher"].as_str().unwrap().to_owned(),
            event["data"]["seq"].as_u64().unwrap(),
        );
        let copy = (
            request.header("webhook-id").to_owned(),
            request.body.to_vec(),
        );
        received.entry(key).or_default().insert(copy);
    }
    let mut produced = 0;
    for n in 0..WATCHERS {
        let watcher = format!("w{n}");
        let committed = store.watcher_state(&watcher).unwrap().seq;
        produced += committed;
        for seq in 1..=committed {
            let copies = received.get(&(watcher.clone(), seq));
            let copies = copies.unwrap_or_else(|| {
                panic!("{watcher} event {seq} of {committed} was lost (seed {seed})")
            });
            assert_eq!(
                copies.len(),
                1,
                "{watcher} event {seq}: duplicates differ in id or body (seed {seed})"
            );
        }
        let invented: Vec<_> = received
            .keys()
            .filter(|(w, seq)| *w == watcher && *seq > committed)
            .collect();
        assert!(
            invented.is_empty(),
            "received events never committed: {invented:?} (seed {seed})"
        );
    }
    assert!(received.keys().all(|(w, _)| w.starts_with('w')));
    assert!(
        produced >= cycles,
        "the daemon produced only {produced} events in {cycles} cycles"
    );
    eprintln!(
        "crash test: {produced} events committed over {cycle} cycles, {} delivered attempts accepted",
        receiver
            .requests()
            .iter()
            .filter(|r| r.status == 200)
            .count()
    );
}

fn rand_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}
