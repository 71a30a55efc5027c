//! Integration tests: the built `dnsreg` binary against the stand-ins (and moto).
//! One binary for all of them (as ripgrep lays its tests out); one file per
//! concept.

mod agent;
mod battery;
mod cloudflare;
mod cloudflare_sdk;
mod config_errors;
mod crash;
mod discover;
mod faults;
mod features;
mod fleet;
mod hermetic;
mod hostile;
mod lease;
mod manual;
mod mdns;
mod metadata;
mod metrics;
mod moto;
mod plan;
mod rfc2136;
mod route53;
mod servers;
mod util;
