//! Every provider behind one object-safe trait, so that the engine holds a
//! `Box<dyn AnyProvider>` per configured provider and calls it without
//! knowing its type. [`Provider`] is generic over its snapshot type (what a
//! write needs from the read before it) and cannot be a trait object; this
//! trait offers what the engine asks of a provider, each operation run by
//! the generic code of `reconcile` for the concrete type behind it.

use std::pin::Pin;
use std::time::Duration;

use crate::config::{ProviderConfig, ProviderKind};
use crate::provider::{Cloudflare, Fail, KnownZone, Provider, Rfc2136, Route53};
use crate::reconcile::{self, DryRun, Intent, Outcome, Reaped};
use crate::record::{DomainName, Record, Value};
use crate::retry::Pacer;

/// A future the caller need not name.
pub type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the engine asks of a provider, whatever its type.
pub trait AnyProvider: Send + Sync {
    /// The zone's name. Valid after [`AnyProvider::connect`].
    fn zone(&self) -> &DomainName;

    /// See [`Provider::known_zone`].
    fn known_zone(&self) -> Option<KnownZone>;

    /// See [`Provider::connect`].
    fn connect<'a>(&'a mut self, known: Option<&'a KnownZone>) -> Boxed<'a, anyhow::Result<()>>;

    /// See [`Provider::forget_zone`].
    fn forget_zone(&mut self);

    /// See [`Provider::pacer`].
    fn pacer(&self) -> &Pacer;

    /// Whether a leave is one request here: each instance's values in
    /// rrsets of its own ([`Provider::keeps_apart`]), or changed one by one
    /// (not [`Provider::rewrites_rrsets`]).
    fn leaves_in_one_request(&self) -> bool;

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
}

impl<P: Provider + 'static> AnyProvider for P {
    fn zone(&self) -> &DomainName {
        Provider::zone(self)
    }

    fn known_zone(&self) -> Option<KnownZone> {
        Provider::known_zone(self)
    }

    fn connect<'a>(&'a mut self, known: Option<&'a KnownZone>) -> Boxed<'a, anyhow::Result<()>> {
        Box::pin(Provider::connect(self, known))
    }

    fn forget_zone(&mut self) {
        Provider::forget_zone(self);
    }

    fn pacer(&self) -> &Pacer {
        Provider::pacer(self)
    }

    fn leaves_in_one_request(&self) -> bool {
        self.keeps_apart() || !self.rewrites_rrsets()
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

/// The provider a configuration entry names, not connected yet.
pub fn for_config(cfg: &ProviderConfig, instance_id: &str) -> Box<dyn AnyProvider> {
    match &cfg.kind {
        ProviderKind::Route53(r) => Box::new(Route53::new(&cfg.name, r.clone(), instance_id)),
        ProviderKind::Cloudflare(c) => Box::new(Cloudflare::new(&cfg.name, c.clone(), instance_id)),
        ProviderKind::Rfc2136(r) => Box::new(Rfc2136::new(&cfg.name, r.clone())),
    }
}
