//! What the mdns-sd daemon reports, logged and remembered: `Announce` at
//! info (published), `NameChange` at warn (a conflict renamed a name of
//! ours, RFC 6762 §9), `Error` at error. Registrations are known by the
//! names they were registered under; a rename maps them to what is
//! announced.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use mdns_sd::{DaemonEvent, Receiver};

/// What the events said so far.
#[derive(Debug, Default)]
pub struct Heard {
    /// Names announced (as announced: renamed where a conflict renamed them).
    announced: BTreeSet<String>,
    /// Original name → the name a conflict gave it.
    renamed: BTreeMap<String, String>,
}

impl Heard {
    /// The name `fullname` is published under now.
    fn resolve<'a>(&'a self, fullname: &'a str) -> &'a str {
        self.renamed
            .get(&fullname.to_ascii_lowercase())
            .map_or(fullname, String::as_str)
    }

    /// Whether `fullname` (as registered) has been announced.
    pub fn announced(&self, fullname: &str) -> bool {
        let name = self.resolve(fullname).to_ascii_lowercase();
        self.announced.contains(&name)
    }

    /// `fullname` was unregistered: a new registration must be announced anew.
    pub fn forget(&mut self, fullname: &str) {
        let name = self.resolve(fullname).to_ascii_lowercase();
        self.announced.remove(&name);
    }

    /// Takes one event in; what to log is logged by [`spawn`].
    pub fn take(&mut self, event: &DaemonEvent) {
        match event {
            DaemonEvent::Announce(fullname, _) => {
                self.announced.insert(fullname.to_ascii_lowercase());
            }
            DaemonEvent::NameChange(c) => {
                self.renamed
                    .insert(c.original.to_ascii_lowercase(), c.new_name.clone());
            }
            _ => {}
        }
    }
}

/// Follows the daemon's events until it shuts down (its channel closes);
/// `then` sees each after it is logged and taken in.
pub fn spawn(
    provider: String,
    events: Receiver<DaemonEvent>,
    heard: Arc<Mutex<Heard>>,
    then: impl Fn(&DaemonEvent) + Send + 'static,
) {
    tokio::spawn(async move {
        while let Ok(event) = events.recv_async().await {
            log(&provider, &event);
            heard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(&event);
            then(&event);
        }
        tracing::debug!(provider = %provider, "mDNS responder events ended");
    });
}

fn log(provider: &str, event: &DaemonEvent) {
    match event {
        DaemonEvent::Announce(fullname, at) => {
            tracing::info!(provider = %provider, "mDNS: published {fullname} ({at})");
        }
        DaemonEvent::NameChange(c) => tracing::warn!(
            provider = %provider,
            "mDNS name conflict: {} renamed to {} on {} ({:?} record)",
            c.original,
            c.new_name,
            c.intf_name,
            c.rr_type
        ),
        DaemonEvent::Error(e) => tracing::error!(provider = %provider, "mDNS responder: {e}"),
        other => tracing::trace!(provider = %provider, "mDNS responder: {other:?}"),
    }
}
