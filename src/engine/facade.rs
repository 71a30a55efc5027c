//! Every provider behind object-safe traits, so that the engine holds a
//! `Box<dyn AnyConnect>` per configured provider, and the `Box<dyn
//! AnyProvider>` it connected, and calls them without knowing their type.
//! [`Provider`] is generic over its snapshot type (what a write needs from
//! the read before it) and cannot be a trait object; [`AnyProvider`] offers
//! what the engine asks of a connected provider, each operation run by the
//! generic code of `reconcile` for the concrete type behind it.

use std::pin::Pin;
use std::time::Duration;

use crate::config::{ProviderConfig, ProviderKind};
use crate::provider::{Connect, Fail, KnownZone, Provider, cloudflare, rfc2136, route53};
use crate::reconcile::{self, DryRun, Intent, Outcome, Reaped};
use crate::record::{DomainName, Record, Value};
use crate::retry::Pacer;

/// A future the caller need not name.
pub type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the engine asks of a configured provider, whatever its type (see
/// [`Connect`]).
pub trait AnyConnect: Send + Sync {
    /// See [`Connect::zone`].
    fn zone(&self) -> Option<&DomainName>;

    /// See [`Connect::pacer`].
    fn pacer(&self) -> &Pacer;

    /// See [`Connect::leaves_in_one_request`].
    fn leaves_in_one_request(&self) -> bool;

    /// See [`Connect::connect`].
    fn connect<'a>(
        &'a self,
        known: Option<&'a KnownZone>,
    ) -> Boxed<'a, anyhow::Result<Box<dyn AnyProvider>>>;
}

impl<C: Connect> AnyConnect for C {
    fn zone(&self) -> Option<&DomainName> {
        Connect::zone(self)
    }

    fn pacer(&self) -> &Pacer {
        Connect::pacer(self)
    }

    fn leaves_in_one_request(&self) -> bool {
        Connect::leaves_in_one_request(self)
    }

    fn connect<'a>(
        &'a self,
        known: Option<&'a KnownZone>,
    ) -> Boxed<'a, anyhow::Result<Box<dyn AnyProvider>>> {
        Box::pin(async move {
            let connected = Connect::connect(self, known).await?;
            Ok(Box::new(connected) as Box<dyn AnyProvider>)
        })
    }
}

/// What the engine asks of a provider, whatever its type.
pub trait AnyProvider: Send + Sync {
    /// The zone it writes to.
    fn zone(&self) -> &DomainName;

    /// See [`Provider::known_zone`].
    fn known_zone(&self) -> Option<KnownZone>;

    /// [`reconcile::apply`] with this provider.
    fn apply<'a>(&'a self, intent: &'a Intent) -> Boxed<'a, anyhow::Result<Outcome>>;

    /// [`reconcile::dry_run`] with this provider.
    fn dry_run<'a>(&'a self, intent: &'a Intent) -> Boxed<'a, anyhow::Result<DryRun>>;

    /// [`reconcile::presence`] with this provider.
    fn presence<'a>(
        &'a self,
        desired: &'a [Record],
        deadline: Duration,
    ) -> Boxed<'a, anyhow::Result<Vec<(Value, bool)>>>;

    /// [`reconcile::reap`] with this provider.
    fn reap(&self, now: u64, deadline: Duration) -> Boxed<'_, anyhow::Result<Vec<Reaped>>>;

    /// See [`Provider::confirm`].
    fn confirm<'a>(&'a self, change: &'a str) -> Boxed<'a, Result<bool, Fail>>;

    /// Lists every registry ([`Provider::registries`]), for the rights it
    /// needs, and drops what it read.
    fn list_registries(&self) -> Boxed<'_, Result<(), Fail>>;

    /// Ends what the provider keeps running (the mDNS responder's thread,
    /// with its goodbyes); nothing for the others. Called once, at the end
    /// of the process or of this provider.
    fn close(&self) -> Boxed<'_, ()> {
        Box::pin(async {})
    }
}

impl<P: Provider + 'static> AnyProvider for P {
    fn zone(&self) -> &DomainName {
        Provider::zone(self)
    }

    fn known_zone(&self) -> Option<KnownZone> {
        Provider::known_zone(self)
    }

    fn apply<'a>(&'a self, intent: &'a Intent) -> Boxed<'a, anyhow::Result<Outcome>> {
        Box::pin(reconcile::apply(self, intent))
    }

    fn dry_run<'a>(&'a self, intent: &'a Intent) -> Boxed<'a, anyhow::Result<DryRun>> {
        Box::pin(reconcile::dry_run(self, intent))
    }

    fn presence<'a>(
        &'a self,
        desired: &'a [Record],
        deadline: Duration,
    ) -> Boxed<'a, anyhow::Result<Vec<(Value, bool)>>> {
        Box::pin(reconcile::presence(self, desired, deadline))
    }

    fn reap(&self, now: u64, deadline: Duration) -> Boxed<'_, anyhow::Result<Vec<Reaped>>> {
        Box::pin(reconcile::reap(self, now, deadline))
    }

    fn confirm<'a>(&'a self, change: &'a str) -> Boxed<'a, Result<bool, Fail>> {
        Box::pin(Provider::confirm(self, change))
    }

    fn list_registries(&self) -> Boxed<'_, Result<(), Fail>> {
        Box::pin(async { self.registries().await.map(|_| ()) })
    }
}

/// Whether the process stays to answer for what it publishes: the agent
/// (`dnsreg run`) does, a one-shot command does not. Only a provider that
/// answers itself (mdns) acts on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    OneShot,
    Agent,
}

/// The provider a configuration entry names, not connected yet.
pub fn for_config(cfg: &ProviderConfig, instance_id: &str, role: Role) -> Box<dyn AnyConnect> {
    match &cfg.kind {
        ProviderKind::Route53(r) => {
            Box::new(route53::Connector::new(&cfg.name, r.clone(), instance_id))
        }
        ProviderKind::Cloudflare(c) => Box::new(cloudflare::Connector::new(
            &cfg.name,
            c.clone(),
            instance_id,
        )),
        ProviderKind::Rfc2136(r) => Box::new(rfc2136::Connector::new(&cfg.name, r.clone())),
        ProviderKind::Mdns(m) => Box::new(mdns::Connector::new(&cfg.name, m.clone(), role)),
    }
}

mod mdns;
