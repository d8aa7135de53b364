//! `pagehook demo`: the embedded shop, the real daemon and the verifying receiver, end to end.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use pagehook::demo::{self, Output, pct_change};

use crate::fixtures::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_produces_verified_events_until_stopped() {
    let options = demo::Options {
        duration: None,
        schedule: "every 1s".into(),
        tick: Duration::from_millis(150),
    };
    let stop = CancellationToken::new();
    let mut outputs = Vec::new();
    let mut events = 0;
    let run = demo::run(&options, stop.clone(), |output| {
        if let Output::Event(_) = output {
            events += 1;
            if events == 3 {
                stop.cancel();
            }
        }
        outputs.push(output);
    });
    let summary = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("three events within 20 s")
        .unwrap();

    assert!(
        matches!(outputs[0], Output::Intro { watchers: 5, .. }),
        "{outputs:?}"
    );
    assert!(matches!(outputs.last(), Some(Output::Summary(_))));
    let lines: Vec<_> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Event(line) => Some(line),
            _ => None,
        })
        .collect();
    assert!(lines.len() >= 3, "{outputs:?}");
    assert_eq!(
        summary.verified,
        lines.len(),
        "every verified webhook is shown"
    );
    assert_eq!(summary.rejected, 0, "{outputs:?}");
    // Five baselines plus at least one check that found each change.
    assert!(summary.fetches >= 6, "{summary:?}");
    for line in lines {
        assert_eq!(line.kind, "watch.changed");
        assert!(line.stock.is_some(), "{line:?}");
        assert!(line.price.is_some(), "{line:?}");
        // Every move changes the price, so each event carries one, with its percentage.
        let moved = line.price_move.expect("a price move");
        assert_eq!(Some(moved.new), line.price);
        assert_eq!(moved.pct, pct_change(moved.old, moved.new));
        assert_ne!(moved.old, moved.new);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_binary_stops_after_its_duration_with_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    // The demo needs no config: a missing watchers.toml must not matter.
    let out = pagehook(
        &dir.path().join("absent.toml"),
        &["demo", "--duration", "4s"],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let (body, summary) = out
        .stdout
        .split_once("\nStopped after ")
        .unwrap_or_else(|| panic!("no summary: {out:?}"));
    let events = body.lines().filter(|l| l.contains(" -> $")).count();
    assert!(events >= 1, "at least one price move in 4 s: {out:?}");
    assert!(
        summary.contains(&format!(": {events} webhooks verified, 0 rejected;")),
        "{out:?}"
    );
    assert!(
        !out.stderr.contains("WARN") && !out.stderr.contains("ERROR"),
        "{out:?}"
    );
}
