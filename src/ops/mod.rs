//! The reports and actions that both the CLI and the daemon serve: `status`, `history`,
//! `deliveries`, `replay`, `once`, `export` and `import`. Each [`Request`] has one [`Reply`]; the daemon computes it
//! over the control socket, a command over the store when no daemon runs, and both render it
//! through [`render`], so a user sees the same either way.

mod board;
mod render;
mod report;
mod series;
mod transfer;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::check::{Checks, check_all};
use crate::config::Watcher;
use crate::deliver::{Deliverer, Tally};
use crate::fetch::Fetcher;
use crate::store::{Store, StoreError};

pub(crate) use board::{CHANGES_LISTED, DeliveriesPage, Fate, Filter, Overview, WatcherView};
pub use render::{DeliveriesView, Show};
pub(crate) use render::{render_deliveries, render_history, render_once};
pub(crate) use render::{render_import, render_replayed, render_status};
pub(crate) use report::{Deliveries, HistoryReport, Replayed, StatusReport, history, status};
pub(crate) use report::{Outcome, Statuses, Summary, WatcherStatus};
#[cfg(test)]
pub(crate) use series::testing;
pub(crate) use series::{Point, Series, series};
pub(crate) use transfer::{ExportPage, ExportReader, Header, ImportReport, Record, Selection};

/// What a command asks of the daemon (or, with none running, of the store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub(crate) enum Request {
    Deliveries,
    Replay {
        event_ids: Vec<String>,
        dead: bool,
    },
    Once {
        watchers: Vec<String>,
    },
    Status,
    History {
        watcher: String,
        limit: usize,
    },
    /// One page of an export: the selected watchers after `after`, in order.
    Export {
        selection: Selection,
        after: Option<String>,
    },
    /// One batch of an import; the CLI has read and checked the whole file first.
    Import {
        records: Vec<Record>,
    },
}

/// The answer to each [`Request`], one variant per request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", content = "report", rename_all = "snake_case")]
pub(crate) enum Reply {
    Deliveries(Deliveries),
    Replay(Replayed),
    Once(OnceReport),
    Status(StatusReport),
    /// None for a watcher neither the config nor the store knows.
    History(Option<HistoryReport>),
    Export(ExportPage),
    Import(ImportReport),
}

/// A [`Reply`] encoded as it is built, for a report too large to hold decoded at once: the
/// same tags, so a command reads it as the `Reply`.
#[derive(Serialize)]
#[serde(tag = "reply", content = "report", rename_all = "snake_case")]
enum Streamed<'a> {
    Status(Statuses<'a>),
}

/// What `once` did, whether it ran here or in the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct OnceReport {
    pub(crate) checks: Checks,
    /// None when a running daemon took the deliveries over.
    pub(crate) deliveries: Option<Tally>,
    pub(crate) queued: usize,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum OpsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the running daemon has no watcher `{0}`")]
    UnknownWatcher(String),
    #[error("{0}")]
    Client(String),
    #[error("cannot encode the report: {0}")]
    Encode(serde_json::Error),
}

/// Who answers: the daemon, whose workers deliver, or a command alone with the store.
#[derive(Clone)]
pub(crate) enum Answerer {
    Daemon {
        fetcher: Fetcher,
        deliverer: Deliverer,
        /// When the daemon started, for the status of watchers it has not checked yet.
        started: DateTime<Utc>,
    },
    Alone {
        max_concurrency: usize,
        /// The `[browser]` table: a browser starts if a browser watcher is checked, and is
        /// closed once the checks are done.
        browser: crate::fetch::browser::BrowserConfig,
        webhooks: crate::deliver::Webhooks,
    },
}

/// Answers requests over one store and the watchers configured at the time.
#[derive(Clone)]
pub(crate) struct Ops {
    pub(crate) store: Store,
    pub(crate) watchers: Vec<Arc<Watcher>>,
    pub(crate) answerer: Answerer,
}

impl Ops {
    pub(crate) async fn answer(
        &self,
        request: Request,
        now: DateTime<Utc>,
    ) -> Result<Reply, OpsError> {
        let store = &self.store;
        Ok(match request {
            Request::Deliveries => Reply::Deliveries(Deliveries::read(store)?),
            Request::Replay { event_ids, dead } => {
                let replayed = Replayed::run(store, &event_ids, dead, now)?;
                if let Answerer::Daemon { deliverer, .. } = &self.answerer {
                    deliverer.wake();
                }
                Reply::Replay(replayed)
            }
            Request::Status => {
                Reply::Status(status(store, &self.watchers, now, self.running_since())?)
            }
            Request::History { watcher, limit } => {
                Reply::History(history(store, &self.watchers, &watcher, limit)?)
            }
            Request::Once { watchers } => Reply::Once(self.once(&watchers).await?),
            Request::Export { selection, after } => Reply::Export(transfer::export(
                store,
                &self.watchers,
                &selection,
                after.as_deref(),
                transfer::EXPORT_PAGE_BYTES,
            )?),
            // The scheduler reads a watcher's state afresh at each check, so a running daemon
            // diffs its next check against what was imported, and continues its `seq`.
            Request::Import { records } => {
                Reply::Import(transfer::import(store, &self.watchers, &records).await?)
            }
        })
    }

    /// The reply to `request` as JSON, as the control socket sends it. A status is encoded
    /// watcher by watcher as it is read: built whole first, 100,000 watchers' values would
    /// take a hundred megabytes more, which the heap keeps after.
    pub(crate) async fn answer_json(
        &self,
        request: Request,
        now: DateTime<Utc>,
    ) -> Result<Vec<u8>, OpsError> {
        let encoded = match request {
            Request::Status => {
                let statuses =
                    Statuses::read(&self.store, &self.watchers, now, self.running_since())?;
                serde_json::to_vec(&Streamed::Status(statuses))
            }
            other => serde_json::to_vec(&self.answer(other, now).await?),
        };
        encoded.map_err(OpsError::Encode)
    }

    fn running_since(&self) -> Option<DateTime<Utc>> {
        match &self.answerer {
            Answerer::Daemon { started, .. } => Some(*started),
            Answerer::Alone { .. } => None,
        }
    }

    async fn once(&self, names: &[String]) -> Result<OnceReport, OpsError> {
        let selected = if names.is_empty() {
            self.watchers.clone()
        } else {
            names
                .iter()
                .map(|name| {
                    self.watchers
                        .iter()
                        .find(|w| &w.name == name)
                        .cloned()
                        .ok_or_else(|| OpsError::UnknownWatcher(name.clone()))
                })
                .collect::<Result<_, _>>()?
        };
        let store = &self.store;
        match &self.answerer {
            Answerer::Daemon {
                fetcher, deliverer, ..
            } => {
                let checks = check_all(&selected, fetcher, store).await;
                deliverer.wake();
                Ok(OnceReport {
                    checks,
                    deliveries: None,
                    queued: store.pending_count(),
                })
            }
            Answerer::Alone {
                max_concurrency,
                browser,
                webhooks,
            } => {
                let client = |err: &dyn std::fmt::Display| OpsError::Client(err.to_string());
                let fetcher = Fetcher::with_browser(*max_concurrency, browser.clone())
                    .map_err(|e| client(&e))?;
                let checks = check_all(&selected, &fetcher, store).await;
                fetcher.close().await;
                let tally = Deliverer::new(store.clone(), webhooks.clone())
                    .map_err(|e| client(&e))?
                    .deliver_due()
                    .await;
                Ok(OnceReport {
                    checks,
                    deliveries: Some(tally),
                    queued: store.pending_count(),
                })
            }
        }
    }
}
