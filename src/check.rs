//! One watcher, once: fetch -> extract -> diff -> commit. Shared by `run`, `once` and `test`.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::Method;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::alert;
use crate::config::Watcher;
use crate::diff::{Diff, Event, diff};
use crate::extract::{ExtractError, Values, extract};
use crate::fetch::{FetchError, Fetched, Fetcher, Request, Validators};
use crate::store::{Delivery, Store, StoreError};

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
    Failed(CheckError),
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Baseline => "baseline",
            Outcome::Unchanged => "unchanged",
            Outcome::Changed { .. } => "changed",
            Outcome::Failed(_) => "failed",
        }
    }
}

/// Fetch and extract without touching state: what `test` shows.
pub async fn probe(watcher: &Watcher, fetcher: &Fetcher) -> Result<Values, CheckError> {
    match fetcher.fetch(&request(watcher, None)).await? {
        Fetched::Page(page) => Ok(extract(&watcher.fields, &page.body)?),
        // Only an answer to validators we did not send: the server is confused.
        Fetched::NotModified => Err(FetchError::Status(reqwest::StatusCode::NOT_MODIFIED).into()),
    }
}

fn request<'a>(watcher: &'a Watcher, validators: Option<&'a Validators>) -> Request<'a> {
    Request {
        url: &watcher.url,
        timeout: watcher.timeout,
        max_body: watcher.max_body,
        options: &watcher.http,
        validators,
    }
}

/// A digest of everything that shapes a watcher's values besides the page: URL, request and
/// fields. Stored validators and body hashes only stand for the stored values while it holds.
pub fn fingerprint(watcher: &Watcher) -> String {
    let http = &watcher.http;
    let mut hash = Sha256::new();
    hash.update(watcher.url.as_str());
    hash.update([0]);
    hash.update(http.method.as_str());
    hash.update([0]);
    for (name, value) in &http.headers {
        hash.update(name.as_str());
        hash.update([0]);
        hash.update(value.as_bytes());
        hash.update([0]);
    }
    hash.update(http.body.as_deref().unwrap_or_default());
    hash.update([0]);
    // Debug spells out each field's compiled source, regex and type: any edit changes it.
    hash.update(format!("{:?}", watcher.fields));
    hex(&hash.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn deliveries_for(
    watcher: &Watcher,
    event_id: &str,
    payload: &str,
    now: DateTime<Utc>,
) -> Vec<Delivery> {
    watcher
        .webhooks
        .iter()
        .map(|webhook| Delivery {
            event_id: event_id.to_owned(),
            webhook: webhook.clone(),
            watcher: watcher.name.clone(),
            payload: payload.to_owned(),
            created_at: now,
            attempts: 0,
            next_attempt: now,
            last_error: None,
        })
        .collect()
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
    outcome
}

async fn check_and_commit(
    watcher: &Watcher,
    fetcher: &Fetcher,
    store: &Store,
) -> Result<Outcome, CheckError> {
    let mut state = store.watcher_state(&watcher.name)?;
    let fingerprint = fingerprint(watcher);
    let current = state.values.is_some() && state.fingerprint.as_ref() == Some(&fingerprint);
    let validators = Validators {
        etag: state.etag.clone(),
        last_modified: state.last_modified.clone(),
    };
    // Conditional requests are defined for GET; other methods are compared by body hash.
    let conditional = current && watcher.http.method == Method::GET && !validators.is_empty();
    let fetched = fetcher
        .fetch(&request(watcher, conditional.then_some(&validators)))
        .await?;
    // None: the page is the one the stored values came from, so it is not parsed again.
    let fresh = match fetched {
        Fetched::NotModified => None,
        Fetched::Page(page) => {
            state.etag = page.validators.etag;
            state.last_modified = page.validators.last_modified;
            let hash = hex(&Sha256::digest(page.body.as_bytes()));
            if current && state.body_hash.as_ref() == Some(&hash) {
                None
            } else {
                let values = extract(&watcher.fields, &page.body)?;
                state.body_hash = Some(hash);
                state.fingerprint = Some(fingerprint);
                Some(values)
            }
        }
    };
    let now = Utc::now();
    let mut deliveries = Vec::new();
    if state.failing_sent {
        state.seq += 1;
        let alert = alert::recovered(&alert::Recovered {
            watcher: &watcher.name,
            url: &watcher.url,
            seq: state.seq,
            checked_at: now,
            failed_checks: state.consecutive_failures,
            values: fresh.as_ref().or(state.values.as_ref()),
        });
        info!(
            watcher = watcher.name.as_str(),
            event_id = alert.id.as_str(),
            "watcher recovered"
        );
        deliveries = deliveries_for(watcher, &alert.id, &alert.payload, now);
        state.failing_sent = false;
    }
    let Some(values) = fresh else {
        state.last_check = Some(now);
        state.last_success = Some(now);
        state.consecutive_failures = 0;
        state.last_error = None;
        store.commit(&watcher.name, &state, &deliveries).await?;
        return Ok(Outcome::Unchanged);
    };
    let diff = diff(state.values.as_ref(), &values);
    let outcome = match diff {
        Diff::Baseline => Outcome::Baseline,
        Diff::Unchanged => Outcome::Unchanged,
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
            deliveries.extend(deliveries_for(watcher, &event.id, &event.to_json(), now));
            Outcome::Changed {
                fields,
                event_id: event.id,
            }
        }
    };
    state.values = Some(values);
    state.last_check = Some(now);
    state.last_success = Some(now);
    state.consecutive_failures = 0;
    state.last_error = None;
    store.commit(&watcher.name, &state, &deliveries).await?;
    Ok(outcome)
}

async fn record_failure(
    watcher: &Watcher,
    store: &Store,
    err: &CheckError,
) -> Result<(), StoreError> {
    let mut state = store.watcher_state(&watcher.name)?;
    let now = Utc::now();
    state.last_check = Some(now);
    state.consecutive_failures += 1;
    let error = err.to_string();
    let mut deliveries = Vec::new();
    if alert::should_alert(
        state.consecutive_failures,
        watcher.failure_threshold,
        state.failing_sent,
    ) {
        state.seq += 1;
        let alert = alert::failing(&alert::Failing {
            watcher: &watcher.name,
            url: &watcher.url,
            seq: state.seq,
            checked_at: now,
            consecutive_failures: state.consecutive_failures,
            error: &error,
            last_success: state.last_success,
        });
        warn!(
            watcher = watcher.name.as_str(),
            failures = state.consecutive_failures,
            event_id = alert.id.as_str(),
            "watcher failing"
        );
        deliveries = deliveries_for(watcher, &alert.id, &alert.payload, now);
        state.failing_sent = true;
    }
    state.last_error = Some(error);
    store.commit(&watcher.name, &state, &deliveries).await
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Environment, parse};

    struct NoEnv;

    impl Environment for NoEnv {
        fn var(&self, _: &str) -> Option<String> {
            None
        }
    }

    fn watcher(extra: &str) -> Watcher {
        let text = format!(
            "[webhooks.a]\nurl = \"https://a.example\"\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n[[watchers]]\nname = \"w\"\n{extra}\n"
        );
        let config = parse(&text, Path::new("w.toml"), &NoEnv).unwrap().config;
        (*config.watchers[0]).clone()
    }

    #[test]
    fn the_fingerprint_moves_with_anything_that_shapes_the_values() {
        let base = "url = \"https://s.example/a\"\nfields.p = { css = \".price\" }";
        let same = fingerprint(&watcher(base));
        assert_eq!(same, fingerprint(&watcher(base)), "stable for one config");
        let variants = [
            "url = \"https://s.example/b\"\nfields.p = { css = \".price\" }",
            "url = \"https://s.example/a\"\nfields.p = { css = \".cost\" }",
            "url = \"https://s.example/a\"\nfields.p = { css = \".price\", type = \"number\" }",
            "url = \"https://s.example/a\"\nfields.p = { css = \".price\", regex = '(\\d+)' }",
            "url = \"https://s.example/a\"\nfields.p = { css = \".price\" }\nheaders = { Accept-Language = \"de\" }",
            "url = \"https://s.example/a\"\nfields.p = { css = \".price\" }\nmethod = \"POST\"\nbody = \"q=1\"",
        ];
        for variant in variants {
            assert_ne!(same, fingerprint(&watcher(variant)), "{variant}");
        }
        let unrelated = "url = \"https://s.example/a\"\nfields.p = { css = \".price\" }\ntimeout = \"5s\"\nschedule = \"every 1h\"";
        assert_eq!(
            same,
            fingerprint(&watcher(unrelated)),
            "timing does not shape values"
        );
    }
}
