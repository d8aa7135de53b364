//! One integration-test binary: the real `pagehook` binary and daemon against loopback
//! fixtures.

mod cli;
mod daemon;
mod fetching;
mod fixtures;
mod pipeline;
