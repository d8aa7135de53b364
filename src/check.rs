//! One watcher, once: read -> fetch -> extract -> step -> one commit. Shared by `run`, `once`
//! and `test`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::clock::Clock;
use crate::config::Watcher;
use crate::event;
use crate::extract::{ExtractError, Extraction, Field, FieldKind, Source, extract_hinted};
use crate::fetch::browser::BrowserPage;
use crate::fetch::{FetchError, Fetched, Fetcher, Request, Validators, host_key};
use crate::metrics;
use crate::reason::Reason;
use crate::step::{self, Failure, Observed, step};
use crate::store::{Delivery, Store, StoreError, WatcherState};

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("fetch failed: {0}")]
    Fetch(#[from] FetchError),
    #[error("extraction failed: {0}")]
    Extract(#[from] ExtractError),
    /// The watcher's `timeout` ran out after the fetch.
    #[error("timed out after {} {doing}", humantime::format_duration(*after))]
    Timeout {
        after: Duration,
        doing: &'static str,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CheckError {
    pub fn reason(&self) -> Reason {
        match self {
            CheckError::Fetch(err) => err.reason(),
            CheckError::Extract(err) => err.reason(),
            CheckError::Timeout { .. } => Reason::Timeout,
            CheckError::Store(_) => Reason::Store,
        }
    }
}

impl Failure for CheckError {
    fn reason(&self) -> Reason {
        CheckError::reason(self)
    }
}

/// What a committed check did.
pub type Outcome = step::Outcome<CheckError>;

impl Outcome {
    /// The check never got a slot to fetch in: it has not been served, and keeps its place.
    pub fn got_no_slot(&self) -> bool {
        matches!(
            self,
            Outcome::Failed(CheckError::Fetch(FetchError::Busy(..)))
        )
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

    fn add(&mut self, other: Checks) {
        self.checked += other.checked;
        self.changed += other.changed;
        self.unchanged += other.unchanged;
        self.quiet += other.quiet;
        self.baseline += other.baseline;
        self.failed += other.failed;
    }
}

/// Check each of `watchers` once and commit as each finishes. Each host gets as many tasks as
/// its `per_host_concurrency`, each taking the host's next watcher when it is done with one:
/// thousands of watchers on one shop cost a few tasks, and checks run on every core. A host's
/// watchers go in the order they fell due (the longest waiting first, config order among
/// equals), and each one's `timeout` starts when its task takes it.
pub async fn check_all(watchers: &[Arc<Watcher>], fetcher: &Fetcher, store: &Store) -> Checks {
    let now = Utc::now();
    // Each host's watchers, with when each fell due.
    let mut hosts: HashMap<String, Vec<Due>> = HashMap::new();
    for watcher in watchers {
        let due = due_since(watcher, store, now);
        hosts
            .entry(host_key(&watcher.url))
            .or_default()
            .push((due, watcher.clone()));
    }
    let mut lanes = tokio::task::JoinSet::new();
    for mut queue in hosts.into_values() {
        queue.sort_by_key(|(due, _)| *due);
        let width = queue[0].1.http.host.concurrency.clamp(1, queue.len());
        let (queue, next) = (Arc::new(queue), Arc::new(AtomicUsize::new(0)));
        for _ in 0..width {
            let (queue, next) = (queue.clone(), next.clone());
            let (fetcher, store) = (fetcher.clone(), store.clone());
            lanes.spawn(async move {
                let mut checks = Checks::default();
                while let Some((due, watcher)) = queue.get(next.fetch_add(1, Ordering::Relaxed)) {
                    checks.count(&check(watcher, &fetcher, &store, *due, &Clock::System).await);
                }
                checks
            });
        }
    }
    let mut checks = Checks::default();
    while let Some(lane) = lanes.join_next().await {
        match lane {
            Ok(lane) => checks.add(lane),
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(_) => {}
        }
    }
    checks
}

type Due = (DateTime<Utc>, Arc<Watcher>);

/// When `watcher` fell due: the first slot after its last check, or long ago if it never ran.
fn due_since(watcher: &Watcher, store: &Store, now: DateTime<Utc>) -> DateTime<Utc> {
    match store.watcher_state(&watcher.name).map(|s| s.last_check) {
        Ok(Some(last)) => watcher.schedule.next_after(last, watcher.offset).min(now),
        _ => DateTime::<Utc>::MIN_UTC,
    }
}

/// Fetch and extract without touching state, saying where each value was found: what `test`
/// shows.
pub async fn probe(watcher: &Arc<Watcher>, fetcher: &Fetcher) -> Result<Extraction, CheckError> {
    let deadline = Instant::now() + watcher.timeout;
    let body = fetch_page(watcher, fetcher, deadline).await?;
    read(watcher, body, deadline).await
}

/// Fetch the watcher's page unconditionally, as `test` and `probe` do, by `deadline`.
pub async fn fetch_page(
    watcher: &Watcher,
    fetcher: &Fetcher,
    deadline: Instant,
) -> Result<String, CheckError> {
    match fetcher
        .fetch(&request(watcher, None, Utc::now(), deadline))
        .await?
    {
        Fetched::Page(page) => {
            metrics::bytes_fetched(&watcher.name, page.body.len());
            Ok(page.body)
        }
        // Only an answer to validators we did not send: the server is confused.
        Fetched::NotModified => Err(FetchError::Status(reqwest::StatusCode::NOT_MODIFIED).into()),
    }
}

fn request<'a>(
    watcher: &'a Watcher,
    validators: Option<&'a Validators>,
    due: DateTime<Utc>,
    deadline: Instant,
) -> Request<'a> {
    Request {
        url: &watcher.url,
        timeout: watcher.timeout,
        deadline,
        due,
        max_body: watcher.max_body,
        options: &watcher.http,
        validators,
        browser: watcher.browser.as_ref(),
    }
}

/// Pages parsed at once: one per core. Parsing and extraction are the CPU-heavy part of a
/// check, so they run on blocking threads, never on the async workers that run the scheduler,
/// the control socket and /healthz, and no more at once than there are cores, so that huge
/// pages queue behind each other instead of crowding out everything else. Process-wide, as the
/// cores are.
static PARSERS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Arc::new(Semaphore::new(cores))
});

/// Sets the flag when dropped: a parse whose check has given up (timed out, or cancelled at
/// shutdown) stops at its next piece instead of running on.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Parse `body` and extract the watcher's fields on a parser thread, by `deadline`.
async fn read(
    watcher: &Arc<Watcher>,
    body: String,
    deadline: Instant,
) -> Result<Extraction, CheckError> {
    let timed_out = |doing| CheckError::Timeout {
        after: watcher.timeout,
        doing,
    };
    let slot = tokio::time::timeout_at(deadline, PARSERS.clone().acquire_owned())
        .await
        .map_err(|_| timed_out("waiting for a free parser (one per core)"))?
        .expect("the parser semaphore is never closed");
    let stop = Arc::new(AtomicBool::new(false));
    let _stop = StopOnDrop(stop.clone());
    let job = tokio::task::spawn_blocking({
        let watcher = watcher.clone();
        move || {
            let _slot = slot;
            extract_hinted(&watcher.fields, &body, &stop, &watcher.reading)
        }
    });
    match tokio::time::timeout_at(deadline, job).await {
        Ok(Ok(extracted)) => Ok(extracted?),
        Ok(Err(join)) => std::panic::resume_unwind(join.into_panic()),
        Err(_) => Err(timed_out("parsing the page")),
    }
}

/// A digest of everything that shapes a watcher's values besides the page: URL, request and
/// fields. Stored validators and body hashes only stand for the stored values while it holds.
pub fn fingerprint(watcher: &Watcher) -> String {
    let http = &watcher.http;
    let mut hash = Sha256::new();
    hash.update(watcher.url.expose().as_str());
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
    // Spelled out part by part rather than through `Debug`, whose text a crate upgrade may change.
    for field in &watcher.fields {
        hash_field(&mut hash, field);
    }
    // A rendered page can differ from the served one, so rendering is part of what shapes values.
    if let Some(BrowserPage { wait_for }) = &watcher.browser {
        part(&mut hash, "browser");
        optional(&mut hash, wait_for.as_deref());
    }
    hex(&hash.finalize())
}

/// Destructured whole, so a new field property does not compile until it is hashed here.
fn hash_field(hash: &mut Sha256, field: &Field) {
    let Field {
        name,
        source,
        regex,
        kind,
        required,
        currency,
        max_size,
    } = field;
    part(hash, name);
    match source {
        Source::Css {
            css,
            selector: _,
            attr,
        } => {
            part(hash, "css");
            part(hash, css);
            optional(hash, attr.as_deref());
        }
        Source::JsonLd { path } => {
            part(hash, "jsonld");
            part(hash, path.join("."));
        }
        Source::Json { pointer } => {
            part(hash, "json");
            part(hash, pointer);
        }
        Source::Auto => part(hash, "auto"),
    }
    optional(hash, regex.as_ref().map(|r| r.as_str()));
    part(
        hash,
        match kind {
            FieldKind::Text => "text",
            FieldKind::Number => "number",
            FieldKind::Price => "price",
            FieldKind::Availability => "availability",
        },
    );
    part(hash, if *required { "required" } else { "optional" });
    optional(hash, *currency);
    part(hash, max_size.to_le_bytes());
}

/// Length-prefixed, so that no two different sequences of parts hash alike.
fn part(hash: &mut Sha256, bytes: impl AsRef<[u8]>) {
    let bytes = bytes.as_ref();
    hash.update((bytes.len() as u64).to_le_bytes());
    hash.update(bytes);
}

fn optional(hash: &mut Sha256, value: Option<&str>) {
    match value {
        Some(value) => {
            part(hash, "some");
            part(hash, value);
        }
        None => part(hash, "none"),
    }
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
            history: Vec::new(),
        })
        .collect()
}

/// Check a watcher that fell due at `due` and commit what it found: read the state, fetch,
/// extract, [`step`], then one commit of the new state, its events (one delivery per target
/// webhook) and its history entry. A failed check changes no values. The watcher's `timeout`
/// bounds the fetch (waiting for a slot included) and the parse together. The check is
/// recorded at `clock`'s time: the daemon's, which its scheduler and delivery lanes read too.
pub async fn check(
    watcher: &Arc<Watcher>,
    fetcher: &Fetcher,
    store: &Store,
    due: DateTime<Utc>,
    clock: &Clock,
) -> Outcome {
    let started = Instant::now();
    let outcome = check_and_commit(watcher, fetcher, store, due, clock)
        .await
        .unwrap_or_else(Outcome::Failed);
    // A failed check counts under its reason, so a dashboard tells a bot wall from a timeout.
    let label = match &outcome {
        Outcome::Failed(err) => err.reason().as_str(),
        other => other.label(),
    };
    metrics::check_finished(&watcher.name, label, started.elapsed());
    if let Outcome::Changed { .. } = outcome {
        metrics::change_detected(&watcher.name);
    }
    // Logged last: whoever reads the line finds the check in the store and the counters.
    log(watcher, &outcome, started.elapsed());
    outcome
}

async fn check_and_commit(
    watcher: &Arc<Watcher>,
    fetcher: &Fetcher,
    store: &Store,
    due: DateTime<Utc>,
    clock: &Clock,
) -> Result<Outcome, CheckError> {
    let state = store.watcher_state(&watcher.name)?;
    // The commit lands only on the state read here: an import (or a `once`) that committed
    // while this check fetched is not overwritten, and its `seq` not used again.
    let read = state.clone();
    // A failed check keeps the stored validators and hashes: they still stand for the values.
    let (before, observed) = match observe(watcher, fetcher, state.clone(), due).await {
        Ok(observed) => observed,
        Err(err) => (state, Observed::Failed(err)),
    };
    let now = clock.now();
    let stepped = step(before, observed, watcher, now);
    let mut deliveries = Vec::new();
    for event in &stepped.events {
        match event.kind {
            event::WATCH_RECOVERED => info!(
                watcher = watcher.name.as_str(),
                event_id = event.id.as_str(),
                "watcher recovered"
            ),
            event::WATCH_FAILING => warn!(
                watcher = watcher.name.as_str(),
                failures = stepped.state.consecutive_failures,
                event_id = event.id.as_str(),
                "watcher failing"
            ),
            _ => {}
        }
        deliveries.extend(deliveries_for(watcher, &event.id, &event.payload, now));
    }
    store
        .commit_recorded(
            &watcher.name,
            Some(&read),
            &stepped.state,
            &deliveries,
            stepped.history.as_ref(),
            watcher.history_limit,
        )
        .await?;
    Ok(stepped.outcome)
}

/// Fetch and extract: the state with the page's validators and hashes, and what was seen.
async fn observe(
    watcher: &Arc<Watcher>,
    fetcher: &Fetcher,
    mut state: WatcherState,
    due: DateTime<Utc>,
) -> Result<(WatcherState, Observed<CheckError>), CheckError> {
    let deadline = Instant::now() + watcher.timeout;
    let fingerprint = fingerprint(watcher);
    let current = state.values.is_some() && state.fingerprint.as_ref() == Some(&fingerprint);
    let validators = Validators {
        etag: state.etag.clone(),
        last_modified: state.last_modified.clone(),
    };
    // Conditional requests are defined for GET; other methods are compared by body hash.
    let conditional = current && watcher.http.method == Method::GET && !validators.is_empty();
    let validators = conditional.then_some(&validators);
    let fetched = fetcher
        .fetch(&request(watcher, validators, due, deadline))
        .await?;
    let observed = match fetched {
        Fetched::NotModified => Observed::Same,
        Fetched::Page(page) => {
            metrics::bytes_fetched(&watcher.name, page.body.len());
            let hash = hex(&Sha256::digest(page.body.as_bytes()));
            let etag = page.validators.etag;
            let last_modified = page.validators.last_modified;
            let observed = if current && state.body_hash.as_ref() == Some(&hash) {
                Observed::Same
            } else {
                let values = read(watcher, page.body, deadline).await?.values;
                state.body_hash = Some(hash);
                state.fingerprint = Some(fingerprint);
                Observed::Values(values)
            };
            state.etag = etag;
            state.last_modified = last_modified;
            observed
        }
    };
    Ok((state, observed))
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
            warn!(watcher = name, outcome = outcome.label(), reason = %err.reason(), duration_ms, error = %err, "check")
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
    use crate::config::parse;
    use crate::config::testing::NoEnv;

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
        // Pinned: stored states carry it, so a change re-fetches every page unconditionally once.
        assert_eq!(
            same, "c40a95489498252677e8114cb05e696170326db0d66054b0f605c0c20402970b",
            "stable across builds"
        );
        let variants = [
            "url = \"https://s.example/b\"\nfields.p = { css = \".price\" }",
            "url = \"https://s.example/a\"\nfields.p = { css = \".cost\" }",
            "url = \"https://s.example/a\"\nfields.p = { css = \".price\", type = \"number\" }",
            "url = \"https://s.example/a\"\nfields.p = { css = \".price\", regex = '(\\d+)' }",
            "url = \"https://s.example/a\"\nfields.p = { css = \".price\" }\nheaders = { Accept-Language = \"de\" }",
            "url = \"https://s.example/a\"\nfields.p = { css = \".price\" }\nmethod = \"POST\"\nbody = \"q=1\"",
            "url = \"https://s.example/a\"\nfields.q = { css = \".price\" }",
            "url = \"https://s.example/a\"\nfields.p = { css = \".price\", attr = \"content\" }",
            "url = \"https://s.example/a\"\nfields.p = { css = \".price\", required = false }",
            "url = \"https://s.example/a\"\nfields.p = { css = \".price\", max_value_size = 100 }",
            "url = \"https://s.example/a\"\nfields.p = { jsonld = \"offers.price\", type = \"price\" }",
            "url = \"https://s.example/a\"\nfields.p = { type = \"price\" }",
            "url = \"https://s.example/a\"\nfields.p = { type = \"price\", currency = \"EUR\" }",
            "url = \"https://s.example/a\"\nfields.p = { json = \"/price\" }",
            "url = \"https://s.example/a\"\nfields.p = { css = \".price\" }\nbrowser = true",
            "url = \"https://s.example/a\"\nfields.p = { css = \".price\" }\nbrowser = true\nwait_for = \".price\"",
        ];
        let rendered = |extra: &str| {
            fingerprint(&watcher(&format!(
                "url = \"https://s.example/a\"\nfields.p = {{ css = \".price\" }}\nbrowser = true{extra}"
            )))
        };
        assert_ne!(
            rendered(""),
            rendered("\nwait_for = \".price\""),
            "wait_for"
        );
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
