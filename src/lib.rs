//! pagehook: watch web pages and JSON APIs, send a signed webhook when a tracked value changes.
//!
//! Three layers; a module imports only from its own layer or the ones below it.
//! - **Stages**, which know nothing of the service: `config`, `schedule`, `fetch`, `extract`,
//!   `notify` (the notify rules), `diff`, `sign`, `reason` (the failure reasons their errors
//!   map onto), `clock`, `redact`, `logging`.
//! - **The engine**, which composes them: `event` (what is sent), `step` (the pure state step:
//!   baseline, change, failing, recovered, `seq`), `store`, `check` (read, fetch, extract,
//!   step, one commit), `deliver`, and `metrics` (counted as checks and deliveries
//!   happen; the store's gauges read at scrape time).
//! - **The faces**, which compose the engine: `daemon`, `control` and `ops` (the control
//!   socket and its typed replies), `commands` (the CLI), `admin` (/healthz, /metrics), `demo`
//!   and `receive`.

pub mod admin;
pub(crate) mod check;
pub mod clock;
pub mod commands;
pub mod config;
pub(crate) mod control;
pub mod daemon;
pub mod deliver;
pub mod demo;
pub(crate) mod diff;
pub(crate) mod event;
pub mod extract;
pub mod fetch;
pub mod logging;
pub(crate) mod metrics;
pub(crate) mod notify;
pub mod ops;
pub mod reason;
pub(crate) mod receive;
pub(crate) mod redact;
pub(crate) mod schedule;
pub mod sign;
pub(crate) mod step;
pub mod store;
