//! The mdns provider behind the facade. It is no [`crate::provider::Provider`]
//! (no zone to read, no registry, nothing to reconcile: see
//! `provider::mdns`), so it implements [`AnyConnect`] and [`AnyProvider`]
//! itself: an intent's desired records are what to publish, a leave's are
//! none, and what the responder holds is what this instance owns.

use std::time::Duration;

use super::{AnyConnect, AnyProvider, Boxed, Role};
use crate::model::MdnsConfig;
use crate::provider::mdns::{Change, Responder, static_file};
use crate::provider::{Fail, KnownZone};
use crate::reconcile::{DryRun, Intent, Outcome, Reaped};
use crate::record::{DomainName, Record, Value};
use crate::retry::{Backoff, Pacer};

/// `[providers.NAME] type = "mdns"`, not started yet: no I/O until `connect`.
pub struct Connector {
    name: String,
    config: MdnsConfig,
    role: Role,
    /// Never busy: nothing here is rate-limited, but the engine asks.
    pacer: Pacer,
}

impl Connector {
    pub fn new(name: &str, config: MdnsConfig, role: Role) -> Connector {
        Connector {
            name: name.to_string(),
            config,
            role,
            pacer: Pacer::new(Backoff::BUSY),
        }
    }
}

impl AnyConnect for Connector {
    fn zone(&self) -> Option<&DomainName> {
        Some(&self.config.domain)
    }

    fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    fn leaves_in_one_request(&self) -> bool {
        false
    }

    /// In the agent, starts the responder; in a one-shot command, nothing
    /// to start (the static file is written by `apply`).
    fn connect<'a>(
        &'a self,
        _known: Option<&'a KnownZone>,
    ) -> Boxed<'a, anyhow::Result<Box<dyn AnyProvider>>> {
        Box::pin(async move {
            let how = match self.role {
                Role::Agent => How::Answer(Responder::start(&self.name, &self.config)?),
                Role::OneShot => How::StaticFile,
            };
            Ok(Box::new(Mdns {
                name: self.name.clone(),
                config: self.config.clone(),
                how,
            }) as Box<dyn AnyProvider>)
        })
    }
}

/// A started mdns provider.
struct Mdns {
    name: String,
    config: MdnsConfig,
    how: How,
}

enum How {
    /// `dnsreg run`: answering for the records itself.
    Answer(Responder),
    /// One-shot `join`/`leave`: an Avahi static service file.
    StaticFile,
}

fn outcome(change: Change) -> Outcome {
    Outcome {
        added: change.added,
        removed: change.removed,
        owned: change.owned,
        ..Outcome::default()
    }
}

impl AnyProvider for Mdns {
    fn zone(&self) -> &DomainName {
        &self.config.domain
    }

    fn known_zone(&self) -> Option<KnownZone> {
        None
    }

    fn apply<'a>(&'a self, intent: &'a Intent) -> Boxed<'a, anyhow::Result<Outcome>> {
        Box::pin(async move {
            let change = match &self.how {
                How::Answer(r) => r.apply(&intent.desired).await?,
                How::StaticFile => {
                    static_file(&self.name, &self.config, &intent.desired, &intent.known)?
                }
            };
            Ok(outcome(change))
        })
    }

    fn dry_run<'a>(&'a self, intent: &'a Intent) -> Boxed<'a, anyhow::Result<DryRun>> {
        Box::pin(async move {
            let change = match &self.how {
                How::Answer(r) => r.dry_run(&intent.desired)?,
                // What the file would hold; what avahi publishes now is not
                // asked.
                How::StaticFile => Change {
                    added: intent.desired.iter().map(|r| r.value.clone()).collect(),
                    removed: if intent.leaving {
                        intent.known.iter().cloned().collect()
                    } else {
                        Vec::new()
                    },
                    owned: intent.desired.iter().map(|r| r.value.clone()).collect(),
                },
            };
            Ok(DryRun {
                add: change.added,
                remove: change.removed,
                owned: change.owned,
                ..DryRun::default()
            })
        })
    }

    fn presence<'a>(
        &'a self,
        desired: &'a [Record],
        _deadline: Duration,
    ) -> Boxed<'a, anyhow::Result<Vec<(Value, bool)>>> {
        Box::pin(async move {
            match &self.how {
                How::Answer(r) => Ok(r.presence(desired)),
                How::StaticFile => anyhow::bail!(
                    "{}: a one-shot command cannot see what is answered by multicast DNS; `dnsreg discover <type>.local` asks the segment",
                    self.name
                ),
            }
        })
    }

    /// Nothing to reap: a responder that stops says goodbye, and one that
    /// dies stops answering (its records expire from caches by their TTL).
    fn reap(&self, _now: u64, _deadline: Duration) -> Boxed<'_, anyhow::Result<Vec<Reaped>>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn confirm<'a>(&'a self, _change: &'a str) -> Boxed<'a, Result<bool, Fail>> {
        Box::pin(async { Ok(true) })
    }

    fn list_registries(&self) -> Boxed<'_, Result<(), Fail>> {
        Box::pin(async { Ok(()) })
    }

    fn close(&self) -> Boxed<'_, ()> {
        Box::pin(async move {
            if let How::Answer(r) = &self.how {
                r.close().await;
            }
        })
    }
}
