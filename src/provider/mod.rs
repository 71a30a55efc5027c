//! The provider contract: what every DNS service dnsreg writes to must do.
//!
//! A provider knows how to read the values at some names and how to write an
//! edit atomically relative to what it read; it knows nothing of ownership.
//! `reconcile` owns the rules (which values are this instance's, what to add
//! and remove, never touching anything else) on top of this contract, and the
//! conformance battery (`tests/integration/battery`) holds every provider to it.
//!
//! Every call makes one attempt: failures come back classified ([`Fail`]) and
//! the one retry loop of each operation (`reconcile`) decides what to do, so
//! retries never stack. Each provider's [`Pacer`] holds every request of the
//! process back while the provider says it is busy.

pub mod cloudflare;
pub mod mdns;
pub mod rfc2136;
pub mod route53;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::fail::Fail;
use crate::record::{DomainName, Record, RrKey, Value};
use crate::retry::Pacer;

pub(crate) use crate::net::is_loopback_url;
pub use crate::registry::Values;

/// An edit of one zone, relative to a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Edit {
    /// Values to add, with TTLs, by rrset.
    pub add: BTreeMap<RrKey, Vec<Record>>,
    /// Values to remove, by rrset. Each is present in the snapshot.
    pub remove: BTreeMap<RrKey, Vec<Value>>,
    /// The TTL each touched rrset has after the edit. An rrset listed here alone
    /// (no values added or removed) only changes its TTL.
    pub ttl: BTreeMap<RrKey, u32>,
    /// Rrsets the edit does not change but that must still be exactly as in the
    /// snapshot for it to apply (another instance's registry whose `want` line
    /// is being honoured, say).
    pub guard: BTreeSet<RrKey>,
    /// Where a provider keeps on each record which instances claim it (see
    /// [`Provider::claimants`]): values whose records are to name exactly
    /// these instances from now on (instance labels). Others ignore it.
    pub claimants: BTreeMap<Value, BTreeSet<String>>,
}

impl Edit {
    pub fn is_empty(&self) -> bool {
        self.keys().is_empty()
    }

    /// Every rrset the edit changes.
    pub fn keys(&self) -> BTreeSet<RrKey> {
        let added = self
            .add
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, _)| k);
        let removed = self
            .remove
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, _)| k);
        let claimed = self.claimants.keys().map(Value::key);
        added
            .chain(removed)
            .chain(self.ttl.keys())
            .cloned()
            .chain(claimed)
            .collect()
    }
}

/// What a successful write left.
#[derive(Clone, Debug)]
pub struct Written<S> {
    /// The snapshot as it is after the write, for the keys of the snapshot
    /// written against: what the next change may presume (see
    /// [`Provider::presume`]).
    pub after: S,
    /// A change the provider accepted but has yet to make live everywhere
    /// (Route53: its change id, PENDING until INSYNC); `None` when the write is
    /// live when it returns.
    pub change: Option<String>,
}

/// The size of one write a provider takes, in records and in characters of
/// their values, counting each rrset it touches whole, as it is and as it
/// will be (Route53 DELETEs and CREATEs it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLimit {
    pub records: usize,
    pub characters: usize,
}

impl BatchLimit {
    pub const NONE: BatchLimit = BatchLimit {
        records: usize::MAX,
        characters: usize::MAX,
    };
}

/// A zone found earlier: its name and the provider's id for it, kept in the
/// state file so that an instance looks its zone up once in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownZone {
    pub name: DomainName,
    pub id: String,
}

/// A provider as configured, before any I/O. [`Connect::connect`] opens its
/// client and finds its zone, and gives the [`Provider`] that reads and
/// writes it: a provider that could be asked to read or write before it is
/// connected does not exist. A connector is kept for the life of the
/// process; when the zone it found is gone (deleted and made again), the
/// connected provider is dropped and the connector connects anew.
pub trait Connect: Send + Sync {
    type Provider: Provider + 'static;

    /// The zone's name, when the configuration says it (a Route53 zone given
    /// only by its id is named by the provider at connect).
    fn zone(&self) -> Option<&DomainName>;

    /// The pacer every request of this provider waits on: one per
    /// configured provider, shared by each provider it connects.
    fn pacer(&self) -> &Pacer;

    /// Whether a leave is one request here: each instance's values in
    /// rrsets of its own ([`Provider::keeps_apart`]), or changed one by one
    /// (not [`Provider::rewrites_rrsets`]).
    fn leaves_in_one_request(&self) -> bool;

    /// Opens the client, finds the zone and checks access; with `known`,
    /// trusts it instead of asking (a wrong guess shows as an error on the
    /// first call that uses it).
    fn connect(
        &self,
        known: Option<&KnownZone>,
    ) -> impl Future<Output = anyhow::Result<Self::Provider>> + Send;
}

/// What a provider must do. Each operation's guarantee is stated on it; the
/// conformance tests hold every provider to them.
pub trait Provider: Send + Sync {
    /// Whatever the provider needs to remember from a read to write exactly
    /// against it (Route53: the exact rrsets, to DELETE them). Serializable, so
    /// that what a write left can be kept in the state file and presumed later.
    type Snapshot: Clone + Default + Send + Sync + Serialize + DeserializeOwned;

    /// The name used in configuration and messages.
    fn name(&self) -> &str;

    /// The zone it writes to.
    fn zone(&self) -> &DomainName;

    /// The zone's name and the provider's id for it, to be passed to the
    /// next [`Connect::connect`] (`None` where there is no id).
    fn known_zone(&self) -> Option<KnownZone> {
        None
    }

    /// The same provider acting for another instance (by its registry label):
    /// where each instance keeps rrsets of its own (Route53 multivalue), what
    /// a reaper must read and delete are that instance's rrsets, not its own.
    /// `None` where every instance sees the same rrsets.
    fn as_owner(&self, _label: &str) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }

    /// Reads `keys` as each owner sees them (see [`Provider::as_owner`]):
    /// what a reaper reads of many expired instances. The default reads
    /// owner by owner; a provider where one listing can serve them all
    /// (Route53 multivalue) does that instead.
    fn read_as_owners(
        &self,
        owners: &BTreeMap<String, BTreeSet<RrKey>>,
    ) -> impl Future<Output = Result<BTreeMap<String, Self::Snapshot>, Fail>> + Send
    where
        Self: Sized,
    {
        async move {
            let mut out = BTreeMap::new();
            for (label, keys) in owners {
                let owner = self.as_owner(label);
                let p = owner.as_ref().unwrap_or(self);
                out.insert(label.clone(), p.read(keys).await?);
            }
            Ok(out)
        }
    }

    /// Every request of this provider waits on its pacer.
    fn pacer(&self) -> &Pacer;

    /// Whether each instance's values live in rrsets of their own (Route53
    /// multivalue): removing them never takes another instance's, so no other
    /// instance's registry needs to be consulted, and a value found in this
    /// instance's own rrset is this instance's.
    fn keeps_apart(&self) -> bool {
        false
    }

    /// Reads the values at `keys`. Absent rrsets read as empty.
    fn read(
        &self,
        keys: &BTreeSet<RrKey>,
    ) -> impl Future<Output = Result<Self::Snapshot, Fail>> + Send;

    /// Which of `keys` `memory` (what this instance's last change left) may
    /// stand in for, as a snapshot of them, instead of a read: rrsets nobody
    /// else writes in the normal course (this instance's registry, its own
    /// rrsets). The write is conditional on it, so a wrong guess costs a
    /// refused write ([`Fail::Conflict`]) and a read, never a wrong write.
    /// `shared` are the keys of rrsets other instances write too; `owned` the
    /// values this instance owns (where the provider keeps records of others
    /// beside its own, the ones to remember).
    fn presume(
        &self,
        _memory: &Self::Snapshot,
        _keys: &BTreeSet<RrKey>,
        _shared: &BTreeSet<RrKey>,
        _owned: &Values,
    ) -> Option<(Self::Snapshot, BTreeSet<RrKey>)> {
        None
    }

    /// The instances (labels) that claim `value` on the records that hold it
    /// in the snapshot, where the provider keeps that on each record
    /// (Cloudflare: the record's comment): then a value another instance
    /// claims is known without listing the registries, and every change of
    /// claimants replaces the record, so that a claimant writing from memory
    /// finds out. `None` where only the registries say it.
    fn claimants(&self, _snapshot: &Self::Snapshot, _value: &Value) -> Option<BTreeSet<String>> {
        None
    }

    /// Whether claims are kept by name (RFC 2136): each value dnsreg
    /// publishes has a TXT rrset of its own naming the instances that claim
    /// it ([`crate::registry::claim_name`]), read and written like any other
    /// rrset. A write then changes the other rrsets value by value, guarded
    /// only by the claim and registry rrsets it touches (each exactly as
    /// read), so instances adding to one shared rrset never conflict, and no
    /// join or leave needs to list the registries (a zone transfer).
    fn claims_by_name(&self) -> bool {
        false
    }

    /// What `snapshot` would be once `edit` is applied to it, where the
    /// provider can tell without asking (what a peer's write will leave, to
    /// presume later: see [`crate::reconcile::Checkpoint`]). `None` where it
    /// cannot.
    fn applied(&self, _snapshot: &Self::Snapshot, _edit: &Edit) -> Option<Self::Snapshot> {
        None
    }

    /// Adds `more` (a read of other keys) to `snapshot`; keys `snapshot`
    /// already holds keep what it holds.
    fn merge(&self, snapshot: &mut Self::Snapshot, more: Self::Snapshot);

    /// The values the snapshot holds at `key`: the whole rrset for shared
    /// rrsets, this instance's own rrset where the provider keeps one per
    /// instance (Route53 multivalue).
    fn values(&self, snapshot: &Self::Snapshot, key: &RrKey) -> Values;

    /// The TTL of the rrset at `key` in the snapshot, if it exists.
    fn ttl(&self, snapshot: &Self::Snapshot, key: &RrKey) -> Option<u32>;

    /// Applies `edit` as one atomic change if every rrset it touches (and every
    /// rrset it guards) is still as `snapshot` saw it. Values not named in the
    /// edit are left exactly as they are. Returns [`Fail::Conflict`] if the zone
    /// changed meanwhile (or a presumed snapshot was wrong): nothing was
    /// applied then. Returns once the provider has accepted the change; a change
    /// still to be made live everywhere is in [`Written::change`].
    fn write(
        &self,
        snapshot: &Self::Snapshot,
        edit: &Edit,
    ) -> impl Future<Output = Result<Written<Self::Snapshot>, Fail>> + Send;

    /// Whether an accepted change (from [`Written::change`]) is live on every
    /// server yet. One request.
    fn confirm(&self, _change: &str) -> impl Future<Output = Result<bool, Fail>> + Send {
        async { Ok(true) }
    }

    /// Every instance's ownership registry in the zone: instance label → the
    /// TXT values of its registry rrset, as they are (see
    /// [`crate::registry::Registry::parse`]), and a snapshot of those rrsets
    /// to write against.
    fn registries(
        &self,
    ) -> impl Future<Output = Result<(BTreeMap<String, Values>, Self::Snapshot), Fail>> + Send;

    /// Whether a change to a shared name rewrites its whole rrset, so that
    /// instances writing one name at once conflict (Route53 simple routing);
    /// false where each value is changed on its own: a record of its own
    /// (Cloudflare), or a single-RR add or delete guarded only by the claims
    /// (RFC 2136).
    fn rewrites_rrsets(&self) -> bool {
        true
    }

    /// Whether each record keeps a TTL of its own (Cloudflare), so that this
    /// instance's records take the configured TTL even at a name others
    /// share; else an rrset has one TTL, which a shared rrset keeps.
    fn ttl_per_record(&self) -> bool {
        false
    }

    /// How failures that may pass (5xx, timeouts) are retried.
    fn transient_backoff(&self) -> crate::retry::Backoff {
        crate::retry::Backoff::API
    }

    /// Checks in one request that the rrsets at `keys`, presumed from memory,
    /// are still as `snapshot` says (this instance's own ones: a reconcile
    /// with nothing to change must still notice what someone deleted).
    /// `Ok(None)` where the provider has no such request: they are read then.
    fn check(
        &self,
        _snapshot: &Self::Snapshot,
        _keys: &BTreeSet<RrKey>,
    ) -> impl Future<Output = Result<Option<bool>, Fail>> + Send {
        async { Ok(None) }
    }

    /// Whether reading several rrsets costs a request per rrset (Route53
    /// once the zone is larger than one page of a listing): then they are
    /// read one by one, so that a throttled request costs only its own
    /// rrset's read again, not the ones accepted before it.
    fn reads_rrset_by_rrset(&self) -> bool {
        false
    }

    /// Whether listing every registry ([`Provider::registries`]) costs about
    /// what reading one rrset does (Route53: a page per 300 instances), so
    /// that instances waiting for their announced values can see which of
    /// them is first and let it alone carry everyone's.
    fn lists_cheaply(&self) -> bool {
        false
    }

    /// What one write carrying other instances' announced values may hold
    /// (see [`BatchLimit`]), where rrsets are rewritten whole.
    fn batch_limit(&self) -> BatchLimit {
        BatchLimit::NONE
    }
}

impl fmt::Display for Edit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in self.add.values().flatten() {
            writeln!(f, "+ {}", r.value)?;
        }
        for v in self.remove.values().flatten() {
            writeln!(f, "- {v}")?;
        }
        Ok(())
    }
}
