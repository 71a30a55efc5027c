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

mod avahi;
mod events;
mod registrations;
mod responder;

pub use registrations::Registration;
#[cfg(test)]
use registrations::on_link;
use registrations::{PLACEHOLDER_TYPE, registrations};
pub use responder::Responder;

use std::collections::BTreeMap;

use anyhow::Context;

use crate::model::MdnsConfig;
use crate::record::{RData, Record, Value};
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
/// for avahi-daemon to publish (and to say goodbye for when it goes). The
/// only part of this provider that works without a process staying to
/// answer; `known` is what a leave reports removed. avahi-daemon publishes
/// the services under its own host name and addresses: a `[[host]]` is not
/// in the file.
pub fn static_file(
    name: &str,
    config: &MdnsConfig,
    records: &[Record],
    known: &Values,
) -> anyhow::Result<Change> {
    let path = &config.service_file;
    if records.is_empty() {
        let removed = avahi::remove(path).with_context(|| format!("{name}: leaving"))?;
        if removed {
            eprintln!(
                "{name}: removed {}; avahi-daemon says goodbye for its services",
                path.display()
            );
        }
        return Ok(Change {
            removed: if removed {
                known.iter().cloned().collect()
            } else {
                Vec::new()
            },
            ..Change::default()
        });
    }
    let regs = registrations(records, &config.domain).map_err(anyhow::Error::msg)?;
    // A host's placeholder is no service for avahi: it publishes its own host.
    let real: Vec<&Registration> = regs
        .values()
        .filter(|r| !r.service_type.starts_with(PLACEHOLDER_TYPE))
        .collect();
    let services: Vec<avahi::StaticService> = real
        .iter()
        .map(|r| avahi::StaticService {
            instance: r.instance.clone(),
            service_type: r
                .service_type
                .strip_suffix(&format!(".{}", config.domain))
                .unwrap_or(&r.service_type)
                .to_string(),
            subtypes: Vec::new(),
            port: r.port,
            txt: r.txt.clone(),
        })
        .collect();
    if services.is_empty() {
        anyhow::bail!(
            "{name}: an Avahi static service file describes services, and there is none here (a [[host]] alone): `dnsreg run` answers for a host name itself"
        );
    }
    avahi::write(path, &services).with_context(|| format!("{name}: joining"))?;
    eprintln!(
        "{name}: wrote {}: avahi-daemon (if it runs) publishes {} under this machine's own host name; no dnsreg process stays to answer (`dnsreg run` does)",
        path.display(),
        services
            .iter()
            .map(|s| format!("{} {}", s.instance, s.service_type))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let published: Values = real
        .iter()
        .flat_map(|r| r.values.iter().cloned())
        // avahi publishes its own host name and addresses, not these.
        .filter(|v| !matches!(v.data, RData::A(_) | RData::Aaaa(_)))
        .collect();
    Ok(Change {
        added: published.iter().cloned().collect(),
        removed: Vec::new(),
        owned: published,
    })
}

#[cfg(test)]
mod tests;
