//! One integration-test binary: the real `pagehook` binary and daemon against loopback
//! fixtures.

mod browser;
mod cli;
mod crash;
mod daemon;
mod dashboard;
mod delivery;
mod demo;
mod deploy;
mod disk_full;
mod fetching;
mod fixtures;
mod hostile;
mod layers;
mod output;
mod pipeline;
mod prices;
mod probe;
mod receive;
mod secrets;
mod service;
mod shards;
mod state_dir;
mod transfer;
