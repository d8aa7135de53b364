//! The watcher's state step: given what a check observed, the next state, the events to send
//! and the history entry to record. Pure: the rules for baseline, change, quiet change,
//! failing, recovered and `seq` live here alone, tested without a network or a store.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::config::Watcher;
use crate::diff::{Diff, evaluate};
use crate::event::{self, Emitted};
use crate::extract::Values;
use crate::reason::Reason;
use crate::store::{HistoryEntry, WatcherState};

/// A failed check as the step sees it: its text goes into `watch.failing`, its reason into
/// the state.
pub trait Failure: fmt::Display {
    fn reason(&self) -> Reason;
}

/// What a check observed.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed<F> {
    /// The page is the one the stored values came from (304, or the same body): not parsed.
    Same,
    Values(Values),
    Failed(F),
}

/// How a check went: what the step decides, and what `check` logs, counts and reports. `F` is
/// what a failure carries (the check's error), handed back from [`Observed::Failed`].
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<F> {
    Baseline,
    Unchanged,
    Changed {
        fields: Vec<String>,
        event_id: String,
    },
    /// Values changed, but not enough for the notify rules: recorded, nothing sent.
    Quiet {
        fields: Vec<String>,
    },
    Failed(F),
}

impl<F> Outcome<F> {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Baseline => "baseline",
            Outcome::Unchanged => "unchanged",
            Outcome::Changed { .. } => "changed",
            Outcome::Quiet { .. } => "quiet",
            Outcome::Failed(_) => "failed",
        }
    }
}

/// The step's result, committed together.
#[derive(Debug, Clone, PartialEq)]
pub struct Stepped<F> {
    pub state: WatcherState,
    pub events: Vec<Emitted>,
    pub history: Option<HistoryEntry>,
    pub outcome: Outcome<F>,
}

/// Whether a failed check that brought the count of failures in a row to `failures` should
/// send `watch.failing`. Once sent, nothing more until the watcher recovers: no event storm.
/// `>=` rather than `==` so that lowering the threshold on reload still alerts.
fn should_alert(failures: u32, threshold: u32, already_sent: bool) -> bool {
    !already_sent && failures >= threshold.max(1)
}

/// The next state of `watcher` after a check that observed `observed` at `now`. Each event
/// takes the next `seq`, so one `seq` never names two events.
pub fn step<F: Failure>(
    mut state: WatcherState,
    observed: Observed<F>,
    watcher: &Watcher,
    now: DateTime<Utc>,
) -> Stepped<F> {
    state.last_check = Some(now);
    let mut events = Vec::new();
    let fresh = match observed {
        Observed::Failed(failure) => {
            let error = failure.to_string();
            state.consecutive_failures += 1;
            if should_alert(
                state.consecutive_failures,
                watcher.failure_threshold,
                state.failing_sent,
            ) {
                state.seq += 1;
                events.push(event::failing(&event::Failing {
                    watcher: &watcher.name,
                    url: &watcher.url,
                    seq: state.seq,
                    checked_at: now,
                    consecutive_failures: state.consecutive_failures,
                    error: &error,
                    reason: failure.reason(),
                    last_success: state.last_success,
                }));
                state.failing_sent = true;
            }
            state.last_error = Some(error);
            state.last_reason = Some(failure.reason());
            return Stepped {
                state,
                events,
                history: None,
                outcome: Outcome::Failed(failure),
            };
        }
        Observed::Same => None,
        Observed::Values(values) => Some(values),
    };
    if state.failing_sent {
        state.seq += 1;
        events.push(event::recovered(&event::Recovered {
            watcher: &watcher.name,
            url: &watcher.url,
            seq: state.seq,
            checked_at: now,
            failed_checks: state.consecutive_failures,
            values: fresh.as_ref().or(state.values.as_ref()),
        }));
        state.failing_sent = false;
    }
    state.last_success = Some(now);
    state.consecutive_failures = 0;
    state.last_error = None;
    state.last_reason = None;
    let Some(values) = fresh else {
        return Stepped {
            state,
            events,
            history: None,
            outcome: Outcome::Unchanged,
        };
    };
    let evaluation = evaluate(
        &watcher.notify,
        state.values.as_ref(),
        state.announced.as_ref(),
        &values,
    );
    let outcome = match evaluation.diff {
        Diff::Baseline => Outcome::Baseline,
        Diff::Unchanged if evaluation.quiet.is_empty() => Outcome::Unchanged,
        Diff::Unchanged => Outcome::Quiet {
            fields: evaluation.quiet,
        },
        Diff::Changed(changes) => {
            state.seq += 1;
            let changed = event::changed(&event::Changed {
                watcher: &watcher.name,
                url: &watcher.url,
                seq: state.seq,
                checked_at: now,
                changes: &changes,
                values: &values,
            });
            let event_id = changed.id.clone();
            events.push(changed);
            Outcome::Changed {
                fields: changes.into_keys().collect(),
                event_id,
            }
        }
    };
    // History records what the values were over time: a baseline or a change (announced or
    // quiet), not every fetch.
    let history = match &outcome {
        Outcome::Baseline => Some(("baseline", Vec::new(), None)),
        Outcome::Changed { fields, event_id } => {
            Some(("changed", fields.clone(), Some(event_id.clone())))
        }
        Outcome::Quiet { fields } => Some(("quiet", fields.clone(), None)),
        Outcome::Unchanged | Outcome::Failed(_) => None,
    }
    .map(|(kind, changed, event_id)| HistoryEntry {
        checked_at: now,
        kind: kind.into(),
        changed,
        event_id,
        values: values.clone(),
    });
    state.values = Some(values);
    state.announced = Some(evaluation.announced);
    Stepped {
        state,
        events,
        history,
        outcome,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::{Value, json};

    use super::*;
    use crate::config::parse;
    use crate::config::testing::NoEnv;

    fn watcher() -> Watcher {
        let text = "[webhooks.a]\nurl = \"https://a.example\"\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n[[watchers]]\nname = \"w\"\nurl = \"https://s.example/w\"\nfields.p = { css = \".p\", type = \"number\" }\nnotify = { on = \"decrease\" }\n";
        let config = parse(text, Path::new("w.toml"), &NoEnv).unwrap().config;
        (*config.watchers[0]).clone()
    }

    fn values(p: &str) -> Values {
        [("p".to_owned(), json!(p))].into()
    }

    fn seen(p: &str, seq: u64) -> WatcherState {
        WatcherState {
            values: Some(values(p)),
            announced: Some(values(p)),
            seq,
            ..Default::default()
        }
    }

    fn failing(p: &str, seq: u64, failures: u32, sent: bool) -> WatcherState {
        WatcherState {
            consecutive_failures: failures,
            failing_sent: sent,
            last_error: Some("fetch failed: HTTP 503".into()),
            ..seen(p, seq)
        }
    }

    struct Case {
        name: &'static str,
        before: WatcherState,
        observed: Observed<Http503>,
        outcome: &'static str,
        events: &'static [&'static str],
        seq: u64,
        history: Option<&'static str>,
        failures: u32,
        failing_sent: bool,
        values: Option<&'static str>,
    }

    /// A failed fetch, as the step sees one.
    #[derive(Debug, Clone, PartialEq)]
    struct Http503;

    impl fmt::Display for Http503 {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("fetch failed: HTTP 503")
        }
    }

    impl Failure for Http503 {
        fn reason(&self) -> Reason {
            Reason::HttpStatus
        }
    }

    #[test]
    fn the_step_decides_baseline_change_quiet_failing_recovered_and_seq() {
        let failed = || Observed::Failed(Http503);
        let cases = [
            Case {
                name: "first success records a baseline and sends nothing",
                before: WatcherState::default(),
                observed: Observed::Values(values("10")),
                outcome: "baseline",
                events: &[],
                seq: 0,
                history: Some("baseline"),
                failures: 0,
                failing_sent: false,
                values: Some("10"),
            },
            Case {
                name: "same values: nothing recorded, nothing sent",
                before: seen("10", 4),
                observed: Observed::Values(values("10")),
                outcome: "unchanged",
                events: &[],
                seq: 4,
                history: None,
                failures: 0,
                failing_sent: false,
                values: Some("10"),
            },
            Case {
                name: "the same page is unchanged without a parse",
                before: seen("10", 4),
                observed: Observed::Same,
                outcome: "unchanged",
                events: &[],
                seq: 4,
                history: None,
                failures: 0,
                failing_sent: false,
                values: Some("10"),
            },
            Case {
                name: "a change that passes the rules is sent with the next seq",
                before: seen("10", 4),
                observed: Observed::Values(values("9")),
                outcome: "changed",
                events: &["watch.changed"],
                seq: 5,
                history: Some("changed"),
                failures: 0,
                failing_sent: false,
                values: Some("9"),
            },
            Case {
                name: "a change below the rules is recorded quietly",
                before: seen("10", 4),
                observed: Observed::Values(values("11")),
                outcome: "quiet",
                events: &[],
                seq: 4,
                history: Some("quiet"),
                failures: 0,
                failing_sent: false,
                values: Some("11"),
            },
            Case {
                name: "a failure below the threshold sends nothing and keeps the values",
                before: seen("10", 4),
                observed: failed(),
                outcome: "failed",
                events: &[],
                seq: 4,
                history: None,
                failures: 1,
                failing_sent: false,
                values: Some("10"),
            },
            Case {
                name: "the failure that reaches the threshold sends watch.failing",
                before: failing("10", 4, 2, false),
                observed: failed(),
                outcome: "failed",
                events: &["watch.failing"],
                seq: 5,
                history: None,
                failures: 3,
                failing_sent: true,
                values: Some("10"),
            },
            Case {
                name: "after watch.failing, further failures send nothing",
                before: failing("10", 5, 3, true),
                observed: failed(),
                outcome: "failed",
                events: &[],
                seq: 5,
                history: None,
                failures: 4,
                failing_sent: true,
                values: Some("10"),
            },
            Case {
                name: "a success after watch.failing sends watch.recovered",
                before: failing("10", 5, 4, true),
                observed: Observed::Same,
                outcome: "unchanged",
                events: &["watch.recovered"],
                seq: 6,
                history: None,
                failures: 0,
                failing_sent: false,
                values: Some("10"),
            },
            Case {
                name: "recovering with a change: two events, two seqs, recovered first",
                before: failing("10", 5, 4, true),
                observed: Observed::Values(values("8")),
                outcome: "changed",
                events: &["watch.recovered", "watch.changed"],
                seq: 7,
                history: Some("changed"),
                failures: 0,
                failing_sent: false,
                values: Some("8"),
            },
            Case {
                name: "a success after failures below the threshold sends nothing",
                before: failing("10", 4, 2, false),
                observed: Observed::Values(values("10")),
                outcome: "unchanged",
                events: &[],
                seq: 4,
                history: None,
                failures: 0,
                failing_sent: false,
                values: Some("10"),
            },
            Case {
                name: "a watcher that never succeeded can fail without values",
                before: WatcherState::default(),
                observed: failed(),
                outcome: "failed",
                events: &[],
                seq: 0,
                history: None,
                failures: 1,
                failing_sent: false,
                values: None,
            },
        ];
        let watcher = watcher();
        let now: DateTime<Utc> = "2026-11-27T06:00:00Z".parse().unwrap();
        for case in cases {
            let before = case.before.clone();
            let out = step(case.before, case.observed, &watcher, now);
            let name = case.name;
            assert_eq!(out.outcome.label(), case.outcome, "{name}");
            let kinds: Vec<&str> = out.events.iter().map(|e| e.kind).collect();
            assert_eq!(kinds, case.events, "{name}");
            assert_eq!(out.state.seq, case.seq, "{name}");
            assert_eq!(
                out.history.as_ref().map(|h| h.kind.as_str()),
                case.history,
                "{name}"
            );
            assert_eq!(out.state.consecutive_failures, case.failures, "{name}");
            assert_eq!(out.state.failing_sent, case.failing_sent, "{name}");
            assert_eq!(out.state.values, case.values.map(values), "{name}");
            assert_eq!(out.state.last_check, Some(now), "{name}");
            // Each event carries its own seq, counting up from the state before.
            for (i, event) in out.events.iter().enumerate() {
                let body: Value = serde_json::from_str(&event.payload).unwrap();
                assert_eq!(body["type"], event.kind, "{name}");
                assert_eq!(body["data"]["seq"], before.seq + 1 + i as u64, "{name}");
                assert!(event.id.starts_with("evt_"), "{name}");
            }
            if let Outcome::Changed { event_id, .. } = &out.outcome {
                assert_eq!(out.events.last().unwrap().id, *event_id, "{name}");
                let entry = out.history.as_ref().unwrap();
                assert_eq!(entry.event_id.as_ref(), Some(event_id), "{name}");
            }
            if case.outcome == "failed" {
                assert_eq!(out.state.last_success, before.last_success, "{name}");
                assert!(out.state.last_error.is_some(), "{name}");
                assert_eq!(out.state.last_reason, Some(Reason::HttpStatus), "{name}");
            } else {
                assert_eq!(out.state.last_success, Some(now), "{name}");
                assert_eq!(out.state.last_error, None, "{name}");
                assert_eq!(out.state.last_reason, None, "{name}");
            }
        }
    }
}
