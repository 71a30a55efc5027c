//! Ownership applied: from what this instance wants and what the zone holds to
//! one atomic edit, and the one retry loop around it.
//!
//! The rules, whatever the provider:
//! - desired values that are missing are added;
//! - values this instance owns (as its registry in the zone says, or where
//!   ownership is kept in the records, as they say) and no longer wants are
//!   removed, unless another instance's registry claims them too; the state
//!   file only says where to look, never what is owned;
//! - a desired value already present but not owned is someone else's: left
//!   alone and never claimed (a person's), or claimed too (another instance's,
//!   an address released and reused), so that neither instance's cleanup
//!   removes it while the other still publishes it;
//! - nothing else is touched; the registry is rewritten in the same atomic edit.
//!
//! [`decide`] is that rule as a pure function of what was read; [`apply`] is the
//! loop that reads, decides, writes, and tries again.
//!
//! **A fleet at once.** Many instances adding their value to one shared rrset
//! rewritten whole (`routing = "simple"`) conflict: each write is conditional on the
//! rrset it read, so only one per round lands, and N instances would need N
//! rounds each. Instead, once an instance meets contention (a refused write, or
//! a provider that throttles, even its reads), it *announces*: it writes `want` (or `drop`)
//! lines into its own registry, which nobody else writes in the normal course,
//! and waits. Whoever writes the shared rrset next carries every announced
//! value it sees ([`How::Materialise`]) and flips those lines to owned in the
//! same atomic change, conditional on each registry being as it read it, so a
//! value never lands for a claim withdrawn meanwhile, and none is ever unowned.
//! An instance that finds its lines flipped is done without writing the rrset
//! at all; one that finds them untouched writes for everyone itself. It looks
//! seldom, spread out, so that a fleet's looks leave the provider's rate to
//! the writes that carry it (see `look_after`); where one listing shows who
//! is waiting, it carries only when first in line or when nobody was carried
//! since its last look, so that carriers do not race. Where each
//! instance keeps its own rrsets (Route53 multivalue) there is nothing to share
//! and every change is one write, presumed from the state file without a read.
//! Where each value is changed on its own and who claims it is kept beside it
//! (Cloudflare's record comments, RFC 2136 claims by name), writes to one
//! shared rrset do not conflict either, and no instance announces.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use crate::provider::{BatchLimit, Edit, Fail, Provider, Values};
use crate::record::{DomainName, RType, Record, RrKey, Value};
use crate::registry::{self, Registry};
use crate::retry::Backoff;

mod apply;
mod carry;
mod decide;
mod dry_run;
mod observe;
mod reap;

pub use crate::retry::{Attempts, OutOfTime, attempt};
use crate::retry::{Crowded, attempt_unless_crowded};
pub use apply::apply;
pub use decide::decide;
pub use dry_run::{DryRun, dry_run};
pub use reap::{Reaped, presence, reap};
use {carry::*, decide::*, dry_run::*, observe::*};

/// What one instance wants of one provider.
#[derive(Clone, Debug)]
pub struct Intent {
    pub instance_id: String,
    /// What the configuration asks for now.
    pub desired: Vec<Record>,
    /// The keys of the rrsets that are this instance's alone (its host
    /// records, its DNS-SD SRV and TXT). Every other rrset (a round-robin
    /// name, an SRV rrset, a DNS-SD PTR, an old value's) may be written by
    /// other instances too.
    pub exclusive: BTreeSet<RrKey>,
    /// True for leave: publish nothing, remove everything owned, drop the registry.
    pub leaving: bool,
    /// Values the local state file says this instance owned after its last
    /// change that completed: which rrsets to read or presume, never what may
    /// be removed (only the zone's own ownership data says that).
    pub known: Values,
    /// What this instance's last change left at the provider (the state
    /// file's copy of [`crate::provider::Written::after`]), to presume instead
    /// of reading.
    pub memory: Option<serde_json::Value>,
    /// Give up after this long.
    pub deadline: Duration,
    /// `[lease]`: keep a lease of this length in the registry, refreshed when a
    /// third of it has passed. `None`: no lease (an old one is dropped).
    pub lease: Option<Duration>,
    /// Where a join that announced keeps what its rrsets will be once a peer
    /// carries it, for the operation that follows if this one is cut off
    /// while it waits (see [`Checkpoint`]).
    pub checkpoint: Checkpoint,
}

/// What an operation that was cut off had learnt of the provider, as a
/// memory for the next operation to presume instead of reading (the state
/// file keeps only what operations that finished left). A join that
/// announced and then waited to be carried is cut off by a SIGTERM when a
/// fleet is scaled in soon after it scaled out; without it, its leave read
/// its registry and host rrsets one request each, under the same
/// throttling that the rest of the fleet's leaves needed (measured with 200
/// agents on Route53 simple routing: 37 such leaves, 82 of the stop's 730
/// accepted requests). Presumed like any memory: a wrong guess (the peer
/// had not carried it yet) costs a refused write and a read, never a wrong
/// write.
#[derive(Clone, Default)]
pub struct Checkpoint(std::sync::Arc<std::sync::Mutex<Option<serde_json::Value>>>);

impl Checkpoint {
    fn keep(&self, memory: Option<serde_json::Value>) {
        *self.lock() = memory;
    }

    /// What the last operation kept, if it was cut off; empties it.
    pub fn take(&self) -> Option<serde_json::Value> {
        self.lock().take()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<serde_json::Value>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.lock().is_some() {
            "Checkpoint(kept)"
        } else {
            "Checkpoint(empty)"
        })
    }
}

/// What [`apply`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    pub added: Vec<Value>,
    pub removed: Vec<Value>,
    /// What this instance owns after the change (its registry's content).
    pub owned: Values,
    /// Desired values already there that belong to someone else: left alone,
    /// never claimed, never removed.
    pub foreign: Vec<Value>,
    /// Old values that another instance's registry claims (an address reused by
    /// another machine): not removed.
    pub protected: Vec<Value>,
    /// Conflicts met on the way.
    pub conflicts: u32,
    /// Values another instance's write added or removed for this one.
    pub by_peers: usize,
    /// Announced values of other instances this instance's write carried.
    pub carried: usize,
    /// What the provider holds now at this instance's keys, to presume next time.
    pub memory: Option<serde_json::Value>,
    /// A change accepted but not yet live everywhere (Route53's change id).
    pub change: Option<String>,
    /// Leaving ran out of time with its removal announced in its registry:
    /// the next instance to write those rrsets removes the values, or a
    /// reaper once the lease runs out.
    pub handed_off: bool,
    /// The values announced for peers to add (joining) or remove (leaving)
    /// that were not yet carried when this returned.
    pub announced: Vec<Value>,
}

impl Outcome {
    pub fn changed(&self) -> bool {
        !self.added.is_empty() || !self.removed.is_empty()
    }
}

/// One rrset as read: its values and TTL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rrset {
    pub values: Values,
    pub ttl: Option<u32>,
}

/// What is known of the zone: the rrsets read (or presumed), and the other
/// instances' registries when they were listed.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub rrsets: BTreeMap<RrKey, Rrset>,
    /// The keys taken from memory rather than read.
    pub presumed: BTreeSet<RrKey>,
    /// Who claims each value present, where the provider keeps that on the
    /// records themselves (see [`Provider::claimants`]).
    pub claimants: Option<BTreeMap<Value, BTreeSet<String>>>,
    /// Other instances' registries, by label (this instance's excluded).
    pub others: Option<BTreeMap<String, Registry>>,
}

impl Seen {
    fn values(&self, key: &RrKey) -> Values {
        self.rrsets
            .get(key)
            .map(|r| r.values.clone())
            .unwrap_or_default()
    }
}

/// How to treat shared rrsets in one decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// Write them: add and remove this instance's values.
    Direct,
    /// Write them, carrying other instances' announced values too.
    Materialise,
    /// Do not touch them: announce this instance's values in its registry.
    Announce,
}

/// What is fixed for one provider and instance.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub zone: DomainName,
    pub label: String,
    pub registry: RrKey,
    pub keeps_apart: bool,
    /// Unix seconds.
    pub now: u64,
    /// What one write may carry (see [`Provider::batch_limit`]).
    pub batch_limit: BatchLimit,
    /// Each record has its own TTL (see [`Provider::ttl_per_record`]).
    pub ttl_per_record: bool,
    /// Claims are kept by name (see [`Provider::claims_by_name`]).
    pub claims_by_name: bool,
}

impl Ctx {
    pub fn new(zone: &DomainName, instance_id: &str, keeps_apart: bool) -> anyhow::Result<Ctx> {
        Ok(Ctx {
            zone: zone.clone(),
            label: registry::instance_label(instance_id).map_err(anyhow::Error::msg)?,
            registry: RrKey {
                name: registry::name(zone, instance_id).map_err(anyhow::Error::msg)?,
                rtype: RType::TXT,
            },
            keeps_apart,
            now: registry::unix_now(),
            batch_limit: BatchLimit::NONE,
            ttl_per_record: false,
            claims_by_name: false,
        })
    }
}

/// What [`decide`] needs before it can say more, or the edit to write.
#[derive(Clone, Debug)]
pub enum Decision {
    /// Read these rrsets too (the registry names values not read yet), or
    /// again, for real, where they were presumed or must be read after a
    /// claim.
    Read(BTreeSet<RrKey>),
    /// List the other instances' registries.
    ListRegistries,
    /// Write this (an empty edit: nothing to do).
    Write(Box<Plan>),
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub edit: Edit,
    pub outcome: Outcome,
    /// The registry this edit leaves.
    pub registry: Values,
    /// Whether the edit announces values for others to carry (`want`/`drop`
    /// lines) rather than writing them.
    pub announces: bool,
}

impl Intent {
    /// Whether other instances may write the rrset at `key` too.
    fn is_shared(&self, key: &RrKey, registry: &RrKey) -> bool {
        key != registry && !self.exclusive.contains(key)
    }

    /// Whether any rrset this intent touches is shared.
    fn shares_any(&self, registry: &RrKey) -> bool {
        self.desired
            .iter()
            .map(|r| r.value.key())
            .chain(self.known.iter().map(Value::key))
            .any(|k| self.is_shared(&k, registry))
    }
}

/// How long to wait before reading again after the `conflicts`-th refused
/// write: a tenth of a second, doubling up to 5 s, drawn at random (the
/// writers that raced are told apart).
fn after_conflict(conflicts: u32) -> Duration {
    Backoff {
        base: Duration::from_millis(100),
        cap: Duration::from_secs(5),
        attempts: u32::MAX,
    }
    .delay(conflicts.min(10))
}

#[cfg(test)]
mod tests;
