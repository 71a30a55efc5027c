//! `type = "mdns"`: multicast DNS on the local segment (RFC 6762), DNS-SD
//! services (RFC 6763) and this instance's host name under `.local`.
//!
//! mDNS is not a zone: there is no server to write to, no ownership registry
//! and nothing to reconcile against. Whoever answers for a name owns it
//! while it answers. So this provider does not implement [`super::Provider`];
//! the engine holds it through its facade (`engine::facade::mdns`), which
//! turns an intent into the records to publish here:
//! - inside the agent (`dnsreg run`), a [`Responder`] answers for them
//!   itself for as long as the process runs, and says goodbye when they are
//!   withdrawn or the agent stops;
//! - one-shot `join`/`leave` leave no process behind to answer, so they
//!   write and remove an Avahi static service file instead ([`static_file`]),
//!   which avahi-daemon publishes.

mod events;
mod registrations;
mod responder;

pub use registrations::Registration;
#[cfg(test)]
use registrations::{PLACEHOLDER_TYPE, on_link, registrations};
pub use responder::Responder;

use std::collections::BTreeMap;

use crate::model::MdnsConfig;
use crate::record::{Record, Value};
use crate::registry::Values;

/// What a change of the published records did (or would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Change {
    pub added: Vec<Value>,
    pub removed: Vec<Value>,
    /// What is published after it.
    pub owned: Values,
}

impl Change {
    /// From the registrations `before` to those `after`.
    pub fn between(
        before: &BTreeMap<String, Registration>,
        after: &BTreeMap<String, Registration>,
    ) -> Change {
        let all = |m: &BTreeMap<String, Registration>| -> Values {
            m.values().flat_map(|r| r.values.iter().cloned()).collect()
        };
        let (was, will) = (all(before), all(after));
        Change {
            added: will.difference(&was).cloned().collect(),
            removed: was.difference(&will).cloned().collect(),
            owned: will,
        }
    }
}

/// One-shot `join` (`records` wanted) or `leave` (`records` empty): the
/// Avahi static service file at `config.service_file` written or removed,
/// for avahi-daemon to publish. The only part of this provider that works
/// without a process staying to answer.
pub fn static_file(name: &str, config: &MdnsConfig, records: &[Record]) -> anyhow::Result<Change> {
    let _ = (config, records);
    anyhow::bail!(
        "{name}: one-shot join and leave write an Avahi static service file ({}), which this build cannot do yet; run `dnsreg run` to answer for the records itself",
        config.service_file.display()
    )
}

#[cfg(test)]
mod tests;
