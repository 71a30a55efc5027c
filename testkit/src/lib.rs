//! Strict, stateful stand-ins for the services dnsreg talks to.
//!
//! Each stand-in behaves like the real service on the points dnsreg depends on,
//! including its errors and limits, so that a test passing here means something
//! against the real thing. They serve on loopback, keep their state in memory,
//! and expose it (plus fault knobs) to tests through a handle. The same servers
//! are reachable from the `dnsreg-testkit` binary so that users can try a
//! configuration offline.

pub mod bind;
pub mod cloudflare;
pub mod dnsproxy;
pub mod imds;
mod query;
pub mod route53;
mod serve;

pub use serve::Running;
