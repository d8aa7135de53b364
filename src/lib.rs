//! pagehook: watch web pages and JSON APIs, send a signed webhook when a tracked value changes.
//!
//! The stages (`schedule`, `fetch`, `extract`, `notify`, `diff`, `sign`, and `reason`, the
//! failure reasons their errors map onto) know nothing of each other's internals or of the
//! daemon; `check` composes them; `daemon` and `commands` compose
//! `check`, `deliver` and `store`.

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
