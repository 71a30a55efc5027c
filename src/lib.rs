//! dnsreg: a cloud DNS registration agent, as a library: the modules that
//! read the configuration and the instance metadata, plan the records,
//! publish and withdraw them at each provider, and run the agent.
//! `src/main.rs` is the thin binary: it parses the command line ([`cli`])
//! and hands it to [`commands`]. Only those two are public: everything else
//! is the crate's own, so that the compiler still finds what nothing uses.
//! docs/design.md is the map.

mod agent;
mod checks;
pub mod cli;
pub mod commands;
mod config;
mod discover;
mod engine;
mod fail;
mod files;
#[cfg(test)]
mod fuzz;
mod manual;
mod metadata;
mod metrics;
mod model;
mod net;
mod output;
mod plan;
mod provider;
mod reconcile;
mod record;
mod registry;
mod retry;
mod state;
mod tsig;
