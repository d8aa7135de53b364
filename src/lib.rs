//! pagehook: watch web pages and JSON APIs, send a signed webhook when a tracked value changes.
//!
//! The stages (`schedule`, `fetch`, `extract`, `notify`, `diff`, `sign`, and `reason`, the
//! failure reasons their errors map onto) know nothing of each other's internals or of the
//! daemon; `check` composes them; `daemon` and `commands` compose
//! `check`, `deliver` and `store`.

pub mod admin;
pub mod check;
pub mod clock;
pub mod commands;
pub mod config;
pub mod control;
pub mod daemon;
pub mod deliver;
pub mod demo;
pub mod diff;
pub mod event;
pub mod extract;
pub mod fetch;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod ops;
pub mod reason;
pub mod receive;
pub mod redact;
pub mod schedule;
pub mod sign;
pub mod step;
pub mod store;
