//! One watcher, once: fetch -> extract -> diff -> commit. Shared by `run`, `once` and `test`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::{StreamExt, stream};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::config::Watcher;
use crate::diff::{Diff, Event, evaluate};
use crate::extract::{ExtractError, Extraction, Values, extract_explained};
use crate::fetch::{FetchError, Fetcher, Request};
use crate::metrics;
use crate::store::{Delivery, HistoryEntry, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("fetch failed: {0}")]
    Fetch(#[from] FetchError),
    #[error("extraction failed: {0}")]
    Extract(#[from] ExtractError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a committed check did.
#[derive(Debug)]
pub enum Outcome {
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
    Failed(CheckError),
}

impl Outcome {
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

/// How a pass over several watchers went: what `once` reports.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checks {
    pub checked: usize,
    pub changed: usize,
    pub unchanged: usize,
    /// Changed, but below the notify rules: recorded, nothing sent.
    pub quiet: usize,
    pub baseline: usize,
    pub failed: usize,
}

impl Checks {
    fn count(&mut self, outcome: &Outcome) {
        self.checked += 1;
        *match outcome {
            Outcome::Baseline => &mut self.baseline,
            Outcome::Unchanged => &mut self.unchanged,
            Outcome::Quiet { .. } => &mut self.quiet,
            Outcome::Changed { .. } => &mut self.changed,
            Outcome::Failed(_) => &mut self.failed,
        } += 1;
    }
}

/// Check each of `watchers` once, `concurrency` at a time, committing as each finishes.
pub async fn check_all(
    watchers: &[Arc<Watcher>],
    fetcher: &Fetcher,
    store: &Store,
    concurrency: usize,
) -> Checks {
    stream::iter(watchers.iter().cloned())
        .map(|w| async move { check(&w, fetcher, store).await })
        .buffer_unordered(concurrency)
        .fold(Checks::default(), |mut checks, outcome| async move {
            checks.count(&outcome);
            checks
        })
        .await
}

/// Fetch and extract without touching state: what `test` shows.
pub async fn probe(watcher: &Watcher, fetcher: &Fetcher) -> Result<Values, CheckError> {
    Ok(probe_explained(watcher, fetcher).await?.values)
}

/// As `probe`, also saying where each value was found.
pub async fn probe_explained(
    watcher: &Watcher,
    fetcher: &Fetcher,
) -> Result<Extraction, CheckError> {
    let request = Request {
        url: &watcher.url,
        timeout: watcher.timeout,
        max_body: watcher.max_body,
    };
    let page = fetcher.fetch(&request).await?;
    metrics::bytes_fetched(&watcher.name, page.body.len());
    Ok(extract_explained(&watcher.fields, &page.body)?)
}

/// Check a watcher and commit what it found: new values and, on a change, one event per
/// target webhook in the same transaction. A failed check changes no values.
pub async fn check(watcher: &Watcher, fetcher: &Fetcher, store: &Store) -> Outcome {
    let started = Instant::now();
    let outcome = match check_and_commit(watcher, fetcher, store).await {
        Ok(outcome) => outcome,
        Err(CheckError::Store(err)) => Outcome::Failed(CheckError::Store(err)),
        Err(err) => match record_failure(watcher, store, &err).await {
            Ok(()) => Outcome::Failed(err),
            Err(store_err) => Outcome::Failed(CheckError::Store(store_err)),
        },
    };
    log(watcher, &outcome, started.elapsed());
    metrics::check_finished(&watcher.name, outcome.label(), started.elapsed());
    if let Outcome::Changed { .. } = outcome {
        metrics::change_detected(&watcher.name);
    }
    outcome
}

async fn check_and_commit(
    watcher: &Watcher,
    fetcher: &Fetcher,
    store: &Store,
) -> Result<Outcome, CheckError> {
    let values = probe(watcher, fetcher).await?;
    let now = Utc::now();
    let mut state = store.watcher_state(&watcher.name)?;
    let evaluation = evaluate(
        &watcher.notify,
        state.values.as_ref(),
        state.announced.as_ref(),
        &values,
    );
    let mut deliveries = Vec::new();
    let outcome = match evaluation.diff {
        Diff::Baseline => Outcome::Baseline,
        Diff::Unchanged if evaluation.quiet.is_empty() => Outcome::Unchanged,
        Diff::Unchanged => Outcome::Quiet {
            fields: evaluation.quiet,
        },
        Diff::Changed(changes) => {
            state.seq += 1;
            let fields = changes.keys().cloned().collect();
            let event = Event::changed(
                &watcher.name,
                &watcher.url,
                state.seq,
                now,
                changes,
                values.clone(),
            );
            let payload = event.to_json();
            deliveries = watcher
                .webhooks
                .iter()
                .map(|webhook| Delivery {
                    event_id: event.id.clone(),
                    webhook: webhook.clone(),
                    watcher: watcher.name.clone(),
                    payload: payload.clone(),
                    created_at: now,
                    attempts: 0,
                    next_attempt: now,
                    history: Vec::new(),
                })
                .collect();
            Outcome::Changed {
                fields,
                event_id: event.id,
            }
        }
    };
    // History records what the values were over time: a baseline or a change (announced or
    // quiet), not every fetch.
    let entry = match &outcome {
        Outcome::Baseline => Some(HistoryEntry {
            checked_at: now,
            kind: "baseline".into(),
            changed: Vec::new(),
            event_id: None,
            values: values.clone(),
        }),
        Outcome::Changed { fields, event_id } => Some(HistoryEntry {
            checked_at: now,
            kind: "changed".into(),
            changed: fields.clone(),
            event_id: Some(event_id.clone()),
            values: values.clone(),
        }),
        Outcome::Quiet { fields } => Some(HistoryEntry {
            checked_at: now,
            kind: "quiet".into(),
            changed: fields.clone(),
            event_id: None,
            values: values.clone(),
        }),
        _ => None,
    };
    state.values = Some(values);
    state.announced = Some(evaluation.announced);
    state.last_check = Some(now);
    state.last_success = Some(now);
    state.consecutive_failures = 0;
    state.last_error = None;
    store
        .commit_recorded(
            &watcher.name,
            &state,
            &deliveries,
            entry.as_ref(),
            watcher.history_limit,
        )
        .await?;
    Ok(outcome)
}

async fn record_failure(
    watcher: &Watcher,
    store: &Store,
    err: &CheckError,
) -> Result<(), StoreError> {
    let mut state = store.watcher_state(&watcher.name)?;
    state.last_check = Some(Utc::now());
    state.consecutive_failures += 1;
    state.last_error = Some(err.to_string());
    store.commit(&watcher.name, &state, &[]).await
}

fn log(watcher: &Watcher, outcome: &Outcome, elapsed: Duration) {
    let duration_ms = elapsed.as_millis() as u64;
    let name = watcher.name.as_str();
    match outcome {
        Outcome::Changed { fields, event_id } => info!(
            watcher = name,
            outcome = outcome.label(),
            duration_ms,
            changed = %fields.join(","),
            event_id = event_id.as_str(),
            "check"
        ),
        Outcome::Failed(err) => {
            warn!(watcher = name, outcome = outcome.label(), duration_ms, error = %err, "check")
        }
        _ => info!(
            watcher = name,
            outcome = outcome.label(),
            duration_ms,
            "check"
        ),
    }
}
