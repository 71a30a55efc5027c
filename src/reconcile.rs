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
use crate::retry::{Backoff, Pacer};

/// Other instances' announced values carried in one write, at most (the
/// provider's batch limit usually binds first).
const MAX_PEERS_PER_WRITE: usize = 100;
/// Where one listing shows every waiting instance (Route53), how far apart
/// each instance's looks are, per instance in the zone: a fleet of N waiting
/// together looks about 4 times a second in all, under half of Route53's 10
/// requests per second, so that its looks never crowd out the writes that
/// carry it.
const LOOK_SPACING: Duration = Duration::from_millis(250);
/// Where a throttled provider told an instance that a fleet is at it, but it
/// has not seen how many they are yet: its first look comes this long after
/// its announcement, at most (and at least a twentieth of it).
const FIRST_LOOK_CROWDED: Duration = Duration::from_secs(20);
/// The longest a leaving instance of a crowd waits before its first look: a
/// one-shot `leave` has minutes, and must not spend them waiting.
const LEAVING_FIRST_LOOK: Duration = Duration::from_secs(35);
/// How often a leaving instance that carried others looks again for more to
/// carry (see [`keep_carrying`]).
const CARRY_ROUND: Duration = Duration::from_secs(2);

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

/// The rule, as a pure function of what was read. See the module comment.
pub fn decide(intent: &Intent, ctx: &Ctx, seen: &Seen, how: How) -> anyhow::Result<Decision> {
    let zone = &ctx.zone;
    let reg_values = seen.values(&ctx.registry);
    let mine = Registry::parse(&reg_values);
    let desired: BTreeMap<&Value, &Record> = intent.desired.iter().map(|r| (&r.value, r)).collect();
    let desired_ttl = intent.desired.iter().map(|r| r.ttl).min().unwrap_or(60);
    let shared = |k: &RrKey| !ctx.keeps_apart && intent.is_shared(k, &ctx.registry);

    // What this instance owns: its registry's owned lines and the values it
    // announced for removal, as the zone says, never the state file (a stale
    // or tampered file must not be enough to remove a person's or another
    // instance's value; a registry deleted by hand leaves its values behind
    // rather than risk that). A value it only announced wanting is not its
    // own until a write carried it.
    let mut owned: Values = mine.owned.union(&mine.dropped).cloned().collect();
    owned.retain(|v| v.name.is_in(zone));
    // Where claims are kept by name, those of the values this instance wants
    // or owns are read like any other rrset: who else claims them is known
    // without listing every registry. Its own rrsets' values too: another
    // instance given its address (reused) publishes the same host name.
    let claim_keys: BTreeMap<Value, RrKey> = if ctx.claims_by_name {
        desired
            .keys()
            .copied()
            .chain(owned.iter())
            .map(|v| (v.clone(), registry::claim_key(zone, v)))
            .collect()
    } else {
        BTreeMap::new()
    };

    // The keys to know: desired, owned, wanted; shared ones only when written.
    let mut need: BTreeSet<RrKey> = desired
        .keys()
        .map(|v| v.key())
        .chain(owned.iter().map(Value::key))
        .chain(
            mine.wanted
                .iter()
                .filter(|v| v.name.is_in(zone))
                .map(Value::key),
        )
        .filter(|k| how != How::Announce || !shared(k))
        .collect();
    need.insert(ctx.registry.clone());
    let missing: BTreeSet<RrKey> = need
        .iter()
        .chain(claim_keys.values())
        .filter(|k| !seen.rrsets.contains_key(*k))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Ok(Decision::Read(missing));
    }
    // Where each instance keeps its own rrsets, what is in ours is ours; where
    // records name their claimants, what names this instance is its.
    if ctx.keeps_apart {
        for k in need.iter().filter(|k| **k != ctx.registry) {
            owned.extend(seen.values(k));
        }
    }
    let by_name: Option<BTreeMap<Value, BTreeSet<String>>> = ctx.claims_by_name.then(|| {
        claim_keys
            .iter()
            .map(|(v, k)| (v.clone(), registry::claimants(&seen.values(k))))
            .collect()
    });
    let claims = by_name.as_ref().or(seen.claimants.as_ref());
    let tracks = claims.is_some();
    let claimants = |v: &Value| -> BTreeSet<String> {
        claims.and_then(|m| m.get(v)).cloned().unwrap_or_default()
    };
    if let Some(m) = claims {
        let registries = registry::root(zone);
        owned.extend(
            m.iter()
                .filter(|(v, c)| {
                    c.contains(&ctx.label) && v.name.is_in(zone) && !v.name.is_in(&registries)
                })
                .map(|(v, _)| v.clone()),
        );
    }

    let writes_shared = how != How::Announce;
    let written = |k: &RrKey| writes_shared || !shared(k);
    let present = |v: &Value| seen.values(&v.key()).contains(v);
    // Desired values present but not ours, and values to take out: both need
    // to know who else claims what (unless each instance keeps apart).
    let present_unowned = desired
        .keys()
        .any(|v| !intent.leaving && !owned.contains(*v) && written(&v.key()) && present(v));
    // An announcement writes only this instance's own rrsets (and its
    // registry), but even those may hold a value another instance claims
    // too: a host name made from an address, given to another machine since
    // (measured: taking it out unlooked removed that machine's record). A
    // name made from this instance's id is the exception (see `named_for`).
    let withdraw = owned.iter().any(|v| {
        (intent.leaving || !desired.contains_key(v))
            && written(&v.key())
            && present(v)
            && !named_for(v, &ctx.label)
    });
    let needs_others =
        !ctx.keeps_apart && (how == How::Materialise || (!tracks && (withdraw || present_unowned)));
    if needs_others && seen.others.is_none() {
        return Ok(Decision::ListRegistries);
    }
    let empty = BTreeMap::new();
    let others = seen.others.as_ref().unwrap_or(&empty);
    // What other instances own: claimed too when present, never removed.
    // A value another instance announced for removal is still its own until
    // a write takes it out: one joining with it claims it too (and keeps it),
    // rather than take it for a person's.
    let owned_by_others: Values = others
        .values()
        .flat_map(|r| r.owned.iter().chain(&r.dropped).cloned())
        .collect();
    let others_claim = |v: &Value| {
        if tracks {
            claimants(v).iter().any(|l| *l != ctx.label)
        } else {
            owned_by_others.contains(v)
        }
    };
    let with_me = |v: &Value| {
        let mut c = claimants(v);
        c.insert(ctx.label.clone());
        c
    };
    let without_me = |v: &Value| {
        let mut c = claimants(v);
        c.remove(&ctx.label);
        c
    };

    let mut edit = Edit::default();
    let mut out = Outcome::default();
    let mut new_owned = Values::new();
    let mut wants = Values::new();
    let mut drops = Values::new();
    let mut reread = BTreeSet::new();
    for key in need.iter().filter(|k| **k != ctx.registry) {
        let current = seen.values(key);
        if !intent.leaving {
            for (v, rec) in desired.iter().filter(|(v, _)| v.key() == *key) {
                if !current.contains(*v) {
                    edit.add
                        .entry(key.clone())
                        .or_default()
                        .push((*rec).clone());
                    out.added.push((*v).clone());
                    new_owned.insert((*v).clone());
                } else if owned.contains(*v) || others_claim(v) {
                    new_owned.insert((*v).clone());
                    if tracks && !claimants(v).contains(&ctx.label) {
                        // Claimed by another instance: this one's name goes on it too.
                        edit.claimants.insert((*v).clone(), with_me(v));
                    }
                } else if let Some(k) = claim_keys.get(*v).filter(|k| seen.presumed.contains(*k)) {
                    // Found with its claim only presumed absent: a person's,
                    // or an instance's whose claim was not read. Read the
                    // claim, then the record again (in that order, as a
                    // first read does, so that an instance taking the value
                    // out meanwhile is not mistaken for a person).
                    reread.insert(k.clone());
                    reread.insert(key.clone());
                } else {
                    out.foreign.push((*v).clone());
                    if let Some(k) = claim_keys.get(*v) {
                        // A person's because nobody claims it: the write
                        // applies only if nobody claimed it since.
                        edit.guard.insert(k.clone());
                    }
                }
            }
        }
        for v in current.iter().filter(|v| owned.contains(*v)) {
            let keep = !intent.leaving && desired.contains_key(v);
            if keep {
                new_owned.insert(v.clone());
            } else if others_claim(v) {
                out.protected.push(v.clone());
                if tracks {
                    edit.claimants.insert(v.clone(), without_me(v));
                }
            } else {
                edit.remove.entry(key.clone()).or_default().push(v.clone());
                out.removed.push(v.clone());
            }
        }
    }
    if !reread.is_empty() {
        return Ok(Decision::Read(reread));
    }
    if ctx.claims_by_name {
        // Claims kept by name change in the same edit as the values: what it
        // adds names this instance, what it removes nobody any more.
        let mut changed = std::mem::take(&mut edit.claimants);
        for v in out.added.iter().filter(|v| claim_keys.contains_key(*v)) {
            changed.entry(v.clone()).or_insert_with(|| with_me(v));
        }
        for v in &out.removed {
            changed.insert(v.clone(), BTreeSet::new());
        }
        for (v, who) in changed {
            let Some(k) = claim_keys.get(&v) else {
                continue;
            };
            let after = registry::claim_values(&k.name, &who);
            set_exactly(&mut edit, k, &seen.values(k), &after, desired_ttl);
        }
    }
    if !writes_shared {
        // Announce: this instance's part of each shared rrset as lines, for
        // whoever writes the rrset next.
        for v in desired.keys().filter(|v| shared(&v.key())) {
            if intent.leaving {
                break;
            }
            if mine.owned.contains(*v) {
                new_owned.insert((*v).clone());
            } else {
                wants.insert((*v).clone());
            }
        }
        for v in owned.iter().filter(|v| shared(&v.key())) {
            if intent.leaving || !desired.contains_key(v) {
                drops.insert(v.clone());
            }
        }
    }

    // Carry other instances' announced values at the shared rrsets being written.
    // And, whenever this write removes a value, the `drop` lines other
    // instances have for it: once gone it is not theirs to remove any more
    // (a value added again later, by a person, say, must not be).
    let mut peers: BTreeMap<String, Registry> = BTreeMap::new();
    let removing: Values = edit.remove.values().flatten().cloned().collect();
    if how == How::Materialise || (writes_shared && !removing.is_empty()) {
        let carry = how == How::Materialise;
        let mut cost = batch_cost(&edit, seen);
        // The rrsets the write names so far: a peer's value at another one
        // brings that rrset in whole.
        let mut counted = edit.keys();
        for (label, r) in others.iter() {
            if peers.len() >= MAX_PEERS_PER_WRITE
                || (carry && r.expired(ctx.now))
                || (!carry && !r.dropped.iter().any(|d| removing.contains(d)))
            {
                continue;
            }
            let Ok(reg_name) = registry::name(zone, label) else {
                continue;
            };
            let reg_key = RrKey {
                name: reg_name,
                rtype: RType::TXT,
            };
            if !seen.rrsets.contains_key(&reg_key) {
                continue;
            }
            let mut after = r.clone();
            let mut add: Vec<Value> = Vec::new();
            let mut remove: Vec<Value> = Vec::new();
            for w in r.wanted.iter().filter(|_| carry) {
                let k = w.key();
                if !seen.rrsets.contains_key(&k) || !shared(&k) || add.contains(w) {
                    continue;
                }
                let flip = if let Some(i) = edit
                    .remove
                    .get(&k)
                    .and_then(|l| l.iter().position(|x| x == w))
                {
                    // This instance gives it up as the peer asks for it: hand it over.
                    edit.remove.get_mut(&k).expect("found").remove(i);
                    out.removed.retain(|x| x != w);
                    true
                } else if !will_hold(&edit, seen, &k).contains(w) {
                    add.push(w.clone());
                    true
                } else {
                    // Present: the peer's too if a dnsreg instance owns it;
                    // a person's otherwise, for the peer to find out itself.
                    mine.owned.contains(w) || owned_by_others_except(others, label).contains(w)
                };
                if flip {
                    after.wanted.remove(w);
                    after.owned.insert(w.clone());
                }
            }
            for d in &r.dropped {
                let k = d.key();
                if !seen.rrsets.contains_key(&k) || !shared(&k) {
                    continue;
                }
                if !carry && !removing.contains(d) {
                    continue;
                }
                let claimed_elsewhere =
                    new_owned.contains(d) || owned_by_others_except(others, label).contains(d);
                if will_hold(&edit, seen, &k).contains(d) && !claimed_elsewhere {
                    remove.push(d.clone());
                }
                after.dropped.remove(d);
            }
            if after == *r {
                continue;
            }
            let before_values = seen.values(&reg_key);
            let after_values =
                if after.owned.is_empty() && after.wanted.is_empty() && after.dropped.is_empty() {
                    Values::new()
                } else {
                    after.to_values(&reg_key.name)?
                };
            // This peer's share: its registry as it is and as it will be,
            // and its values in the shared rrsets (each rewritten whole, as
            // it is and as it will be, already counts once).
            let brought: BTreeSet<RrKey> = add
                .iter()
                .chain(&remove)
                .map(Value::key)
                .filter(|k| !counted.contains(k))
                .collect();
            let whole: Vec<Value> = brought
                .iter()
                .flat_map(|k| {
                    let v = seen.values(k);
                    v.clone().into_iter().chain(v)
                })
                .collect();
            let step = Cost::of(
                before_values
                    .iter()
                    .chain(&after_values)
                    .chain(&add)
                    .chain(&remove)
                    .chain(&whole),
            );
            if !cost.plus(step).within(ctx.batch_limit) {
                continue;
            }
            cost = cost.plus(step);
            counted.extend(brought);
            for w in add {
                let ttl = seen
                    .rrsets
                    .get(&w.key())
                    .and_then(|r| r.ttl)
                    .unwrap_or(desired_ttl);
                edit.add
                    .entry(w.key())
                    .or_default()
                    .push(Record { value: w, ttl });
                out.carried += 1;
            }
            for d in remove {
                edit.remove.entry(d.key()).or_default().push(d);
                out.carried += 1;
            }
            let ttl = seen
                .rrsets
                .get(&reg_key)
                .and_then(|r| r.ttl)
                .unwrap_or(desired_ttl);
            set_exactly(&mut edit, &reg_key, &before_values, &after_values, ttl);
            peers.insert(label.clone(), after);
        }
    }

    // This instance's registry: rewritten in the same edit, so it is never out of step.
    let mut new_registry = Registry {
        owned: new_owned.clone(),
        wanted: wants.clone(),
        dropped: drops.clone(),
        lease: None,
    };
    // The lease: kept while more than two thirds of it remain, renewed
    // otherwise; an instance that claims nothing holds none.
    if let Some(ttl) = intent.lease {
        let expiry = match mine.lease {
            Some(t) if t > ctx.now + ttl.as_secs() * 2 / 3 && t <= ctx.now + ttl.as_secs() => t,
            _ => ctx.now + ttl.as_secs(),
        };
        new_registry.lease = Some(expiry);
    }
    let new_reg_values = new_registry.to_values(&ctx.registry.name)?;
    set_exactly(
        &mut edit,
        &ctx.registry,
        &reg_values,
        &new_reg_values,
        desired_ttl,
    );

    // TTLs: an rrset holding only this instance's values takes the configured
    // TTL (so a changed `ttl` reaches DNS); one shared with others keeps its
    // TTL, which is not ours alone to change; a new one gets ours.
    let configured: BTreeMap<RrKey, u32> = intent
        .desired
        .iter()
        .map(|r| (r.value.key(), r.ttl))
        .chain([(ctx.registry.clone(), desired_ttl)])
        .collect();
    for key in need.iter() {
        let after = will_hold(&edit, seen, key);
        let all_ours = after
            .iter()
            .all(|v| new_owned.contains(v) || new_reg_values.contains(v));
        let (Some(&want), false) = (configured.get(key), after.is_empty()) else {
            continue;
        };
        let now = seen.rrsets.get(key).and_then(|r| r.ttl);
        if seen.presumed.contains(key)
            && shared(key)
            && !ctx.ttl_per_record
            && now.is_some_and(|now| now != want)
        {
            // Whether others share the rrset (and its TTL is not ours to
            // change) only a read can tell.
            return Ok(Decision::Read(BTreeSet::from([key.clone()])));
        }
        let ttl = match now {
            Some(now) if !all_ours && !ctx.ttl_per_record => now,
            _ => want,
        };
        let touched = edit.add.get(key).is_some_and(|v| !v.is_empty())
            || edit.remove.get(key).is_some_and(|v| !v.is_empty());
        if touched || now.is_some_and(|now| now != ttl) {
            edit.ttl.insert(key.clone(), ttl);
        }
    }
    // A peer's registry rewritten keeps its TTL; so does a shared rrset carried.
    for key in edit.keys() {
        if !edit.ttl.contains_key(&key)
            && let Some(t) = seen.rrsets.get(&key).and_then(|r| r.ttl)
        {
            edit.ttl.insert(key, t);
        }
    }
    out.owned = new_owned;
    Ok(Decision::Write(Box::new(Plan {
        edit,
        outcome: out,
        registry: new_reg_values,
        announces: !wants.is_empty() || !drops.is_empty(),
    })))
}

/// Makes `edit` take the rrset at `key` from `before` to exactly `after`:
/// what only `before` holds removed, what only `after` holds added with
/// `ttl` (an ownership rrset: a registry or a claim).
fn set_exactly(edit: &mut Edit, key: &RrKey, before: &Values, after: &Values, ttl: u32) {
    let gone: Vec<Value> = before.difference(after).cloned().collect();
    let new: Vec<Record> = after
        .difference(before)
        .map(|v| Record {
            value: v.clone(),
            ttl,
        })
        .collect();
    if !gone.is_empty() {
        edit.remove.insert(key.clone(), gone);
    }
    if !new.is_empty() {
        edit.add.insert(key.clone(), new);
    }
}

/// What the registries other than `label`'s own.
/// Whether `v`'s name starts with this instance's registry label (its id, as
/// `{instance_id}` makes host names): no other instance's registry can claim
/// it, since an instance of the same id would share this registry too. Its
/// withdrawal needs no listing of the others (at a fleet's scale-in that
/// listing was one request in four of every leave).
fn named_for(v: &Value, label: &str) -> bool {
    v.name
        .as_str()
        .split('.')
        .next()
        .is_some_and(|first| first == label)
}

fn owned_by_others_except(others: &BTreeMap<String, Registry>, label: &str) -> Values {
    others
        .iter()
        .filter(|(l, _)| l.as_str() != label)
        .flat_map(|(_, r)| r.owned.iter().cloned())
        .collect()
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

/// The values at `key` once `edit` is applied to what `seen` holds.
fn will_hold(edit: &Edit, seen: &Seen, key: &RrKey) -> Values {
    let mut after = seen.values(key);
    for v in edit.remove.get(key).into_iter().flatten() {
        after.remove(v);
    }
    after.extend(
        edit.add
            .get(key)
            .into_iter()
            .flatten()
            .map(|r| r.value.clone()),
    );
    after
}

/// Records a write of `edit` carries: each touched rrset as it is and as it
/// will be (Route53 DELETEs and CREATEs it whole).
fn batch_cost(edit: &Edit, seen: &Seen) -> Cost {
    let mut cost = Cost::default();
    for k in edit.keys() {
        let before = seen.values(&k);
        let after = will_hold(edit, seen, &k);
        cost = cost.plus(Cost::of(before.iter().chain(&after)));
    }
    cost
}

/// Records and characters of values in a write (see [`BatchLimit`]).
#[derive(Clone, Copy, Debug, Default)]
struct Cost {
    records: usize,
    characters: usize,
}

impl Cost {
    fn of<'a>(values: impl Iterator<Item = &'a Value>) -> Cost {
        values.fold(Cost::default(), |c, v| Cost {
            records: c.records + 1,
            characters: c.characters + v.data.to_string().len(),
        })
    }

    fn plus(self, other: Cost) -> Cost {
        Cost {
            records: self.records + other.records,
            characters: self.characters + other.characters,
        }
    }

    fn within(self, limit: BatchLimit) -> bool {
        self.records <= limit.records && self.characters <= limit.characters
    }
}

// ---------------------------------------------------------------------------
// The loop
// ---------------------------------------------------------------------------

/// An operation that ran out of its deadline while the provider was busy or
/// contended (as opposed to one that was refused): the next try may well
/// succeed, and a leave's records are then left for a reaper.
#[derive(Debug)]
pub struct OutOfTime(pub String);

impl std::fmt::Display for OutOfTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OutOfTime {}

/// Retries one operation's calls: busy answers wait on the provider's pacer
/// (the provider already knows), failures that may pass get a capped backoff
/// and about a dozen tries, anything else ends the operation. All of it within
/// one deadline.
pub struct Attempts<'a> {
    provider: &'a str,
    deadline: Instant,
    transient: u32,
    policy: Backoff,
    pacer: Option<&'a Pacer>,
}

impl<'a> Attempts<'a> {
    pub fn new(provider: &'a str, deadline: Duration) -> Attempts<'a> {
        Attempts {
            provider,
            deadline: Instant::now() + deadline,
            transient: 0,
            policy: Backoff::API,
            pacer: None,
        }
    }

    /// Paced by `pacer`: a throttled retry never waits past the deadline
    /// (see [`Pacer::fit`]).
    pub fn paced(mut self, pacer: &'a Pacer) -> Attempts<'a> {
        self.pacer = Some(pacer);
        self
    }

    /// With another policy for failures that may pass.
    pub fn with(mut self, policy: Backoff) -> Attempts<'a> {
        self.policy = policy;
        self
    }

    /// After `fail` while `doing`: returns once it is worth trying again, or
    /// the error that ends the operation.
    pub async fn after(&mut self, doing: &str, fail: Fail) -> anyhow::Result<()> {
        let provider = self.provider;
        match fail {
            Fail::Permanent(e) => Err(e.context(format!("{provider}: {doing}"))),
            Fail::Conflict(m) => Err(anyhow::anyhow!("{provider}: {doing}: {m}")),
            Fail::Busy { why, .. } => {
                if Instant::now() >= self.deadline {
                    return Err(OutOfTime(format!(
                        "{provider}: {doing}: still busy at the deadline: {why}"
                    ))
                    .into());
                }
                crate::metrics::get().retry(provider, "throttled");
                Ok(())
            }
            Fail::Transient(m) => {
                self.transient += 1;
                if self.transient >= self.policy.attempts || Instant::now() >= self.deadline {
                    anyhow::bail!(
                        "{provider}: {doing}: still failing after {} attempts: {m}",
                        self.transient
                    );
                }
                tracing::debug!(provider, attempt = self.transient, doing, "{m}; retrying");
                crate::metrics::get().retry(provider, "transient");
                self.sleep(self.policy.delay(self.transient - 1)).await;
                Ok(())
            }
        }
    }

    /// A request about to be sent comes before the deadline, whatever
    /// window the pacer's refusals opened (see [`Pacer::fit`]). Measured
    /// without it: a leaving instance refused seven times in a row was sent
    /// away for 56 s with 48 s of its stop left, and its records stayed.
    fn fit(&self) {
        if let Some(pacer) = self.pacer {
            pacer.fit(self.deadline);
        }
    }

    async fn sleep(&self, d: Duration) {
        tokio::time::sleep_until(self.deadline.min(Instant::now() + d)).await;
    }

    fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }
}

/// A read for a direct write of shared rrsets was throttled: a fleet is at
/// it, and racing it would only waste requests. The instance announces
/// instead, without reading them.
#[derive(Debug)]
struct Crowded;

impl std::fmt::Display for Crowded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the provider is throttling a fleet")
    }
}

impl std::error::Error for Crowded {}

/// [`attempt`], except that with `crowd` a throttled answer ends it with
/// [`Crowded`] instead of waiting to try again.
async fn attempt_unless_crowded<T, F, Fut>(
    tries: &mut Attempts<'_>,
    doing: &str,
    crowd: bool,
    mut op: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Fail>>,
{
    loop {
        tries.fit();
        match op().await {
            Ok(v) => return Ok(v),
            Err(Fail::Busy { .. }) if crowd => return Err(Crowded.into()),
            Err(f) => tries.after(doing, f).await?,
        }
    }
}

/// Calls `op` until it succeeds or [`Attempts::after`] gives up.
pub async fn attempt<T, F, Fut>(tries: &mut Attempts<'_>, doing: &str, op: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Fail>>,
{
    attempt_unless_crowded(tries, doing, false, op).await
}

/// What the loop is doing with shared rrsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Read, decide, write (carrying peers' announced values when `How::Materialise`).
    Write(How),
    /// Write this instance's want/drop lines.
    Announce,
    /// Wait, then see whether a peer carried them.
    Await(u32),
}

/// Brings the provider's zone to this instance's intent (see the module
/// comment). Idempotent. Gives up at `intent.deadline`.
pub async fn apply<P: Provider>(p: &P, intent: &Intent) -> anyhow::Result<Outcome> {
    let ctx = ctx_of(p, intent)?;
    let mut tries = Attempts::new(p.name(), intent.deadline)
        .with(p.transient_backoff())
        .paced(p.pacer());
    // Without a memory (a new instance), what it would remember is nothing at
    // all: a first join writes without reading, and only a refused write
    // (something was there after all) costs a read.
    let memory: Option<P::Snapshot> = Some(
        intent
            .memory
            .as_ref()
            .and_then(|m| serde_json::from_value(m.clone()).ok())
            .unwrap_or_default(),
    );
    let mut trust_memory = true;
    let mut conflicts = 0u32;
    // The last write refused as a conflict, and the registry it would have
    // left: its answer may have been lost after it was applied (a timeout,
    // then a retry the provider refused because the change was already made).
    // Finding exactly that registry on the next read means the write landed.
    let mut refused: Option<(Outcome, Values)> = None;
    // Values this instance announced, to report what peers did for it.
    let mut announced: Option<Plan> = None;
    // What the writes that landed so far added and removed.
    let mut landed = Outcome::default();
    // Registries listed while waiting, for the write that follows.
    let mut prelisted: Option<(BTreeMap<String, Values>, P::Snapshot)> = None;
    // Who was waiting at this instance's last look (where one listing shows
    // it), and whether it carries at this one.
    let mut last_pending: Option<BTreeSet<String>> = None;
    let mut carry = true;
    // What this instance's announcement left of its own rrsets.
    let mut announced_after: Option<P::Snapshot> = None;
    // What a look showed of this instance's own rrsets, for the carrying
    // write that follows it.
    let mut looked: Option<P::Snapshot> = None;
    // How many instances the last listing showed waiting to be carried.
    let mut waiters: Option<usize> = None;
    let contention = Duration::from_secs(60);
    let mut step = if !p.keeps_apart()
        && p.rewrites_rrsets()
        && intent.shares_any(&ctx.registry)
        && p.pacer().busy_within(contention)
    {
        Step::Announce
    } else {
        Step::Write(How::Direct)
    };
    let writes_shared = !p.keeps_apart() && p.rewrites_rrsets() && intent.shares_any(&ctx.registry);
    // At the deadline of a leave whose removal is announced, with a lease to
    // fall back on: the rest is the peers' and reapers' work.
    let handoff = |announced: &Option<Plan>, conflicts: u32| -> Option<Outcome> {
        let plan = announced
            .as_ref()
            .filter(|_| intent.leaving && intent.lease.is_some())?;
        let mine = Registry::parse(&plan.registry);
        Some(Outcome {
            handed_off: true,
            conflicts,
            owned: Values::new(),
            announced: mine.dropped.iter().cloned().collect(),
            ..plan.outcome.clone()
        })
    };
    loop {
        p.pacer().fit(tries.deadline);
        if tries.expired() {
            if let Some(out) = handoff(&announced, conflicts) {
                return Ok(out);
            }
            return Err(OutOfTime(format!(
                "{}: gave up after {}{}{}",
                p.name(),
                humantime::format_duration(intent.deadline),
                if conflicts > 0 {
                    format!(" and {conflicts} conflicting writes")
                } else {
                    String::new()
                },
                p.pacer()
                    .last_busy()
                    .map(|b| format!(" (the provider kept saying it is busy: {b})"))
                    .unwrap_or_default()
            ))
            .into());
        }
        if let Step::Await(round) = step {
            // Give peers a moment to carry the announced values, then look.
            let wait = if p.lists_cheaply() {
                look_after(
                    waiters,
                    p.pacer().busy_within(contention),
                    tries.deadline.saturating_duration_since(Instant::now()),
                    intent.leaving,
                )
            } else {
                Backoff {
                    base: Duration::from_secs(2),
                    cap: Duration::from_secs(30),
                    attempts: u32::MAX,
                }
                .delay(round)
                .max(Duration::from_millis(500))
            };
            tries.sleep(wait).await;
            // Where listing every registry costs one request, look at all of
            // them: an instance that finds its lines still waiting carries
            // them and everyone else's at once. The looks are spread so
            // thinly (see `look_after`) that one write usually carries every
            // instance that announced since the last, and the others find
            // their lines carried when they look.
            let reg = if p.lists_cheaply() {
                let listed = match attempt(&mut tries, "listing ownership registries", || {
                    p.registries()
                })
                .await
                {
                    Ok(l) => l,
                    Err(e) => return handoff(&announced, conflicts).ok_or(e),
                };
                let parsed: BTreeMap<String, Registry> = listed
                    .0
                    .iter()
                    .map(|(l, v)| (l.clone(), Registry::parse(v)))
                    .collect();
                let pending: BTreeSet<String> = parsed
                    .iter()
                    .filter(|(_, r)| waiting(r, ctx.now))
                    .map(|(l, _)| l.clone())
                    .collect();
                waiters = Some(pending.len());
                // Carry when first in line, or when nobody carried anyone
                // since the last look: else a carrier is at work, and a
                // second one would only race it. A leave carries at every
                // look after its first: it has a stop to keep, and a
                // carrier at work would have carried it by then (measured:
                // with the first in line starved of requests, nobody
                // carried a scale-in's announcements for half its stop).
                let first = pending.first() == Some(&ctx.label);
                let progress = last_pending
                    .as_ref()
                    .is_some_and(|before| before.iter().any(|l| !pending.contains(l)));
                carry = first || (last_pending.is_some() && (intent.leaving || !progress));
                last_pending = Some(pending);
                let mine = parsed.get(&ctx.label).cloned().unwrap_or_default();
                prelisted = Some(listed);
                mine
            } else {
                let keys = BTreeSet::from([ctx.registry.clone()]);
                let snap = match attempt(&mut tries, "reading this instance's registry", || {
                    p.read(&keys)
                })
                .await
                {
                    Ok(s) => s,
                    Err(e) => return handoff(&announced, conflicts).ok_or(e),
                };
                Registry::parse(&p.values(&snap, &ctx.registry))
            };
            tracing::debug!(
                provider = p.name(),
                round,
                ?waiters,
                "waiting: this instance's lines {}",
                if reg.wanted.is_empty() && reg.dropped.is_empty() {
                    "carried"
                } else {
                    "still pending"
                }
            );
            if reg.wanted.is_empty() && reg.dropped.is_empty() {
                // Carried by a peer: report what the announcement asked for.
                let plan = announced.take().unwrap_or_else(|| Plan {
                    edit: Edit::default(),
                    outcome: Outcome::default(),
                    registry: Values::new(),
                    announces: false,
                });
                let mine = Registry::parse(&plan.registry);
                let mut out = plan.outcome;
                out.added.extend(
                    mine.wanted
                        .iter()
                        .filter(|v| reg.owned.contains(*v))
                        .cloned(),
                );
                out.removed.extend(mine.dropped.iter().cloned());
                out.foreign.clear();
                out.by_peers = mine.wanted.len() + mine.dropped.len();
                out.conflicts = conflicts;
                // The registry was rewritten by a peer: remembered as the
                // listing showed it, with this instance's own rrsets as its
                // announcement left them; else read, not presumed, next time.
                out.memory = match (prelisted.take(), announced_after.take()) {
                    (Some((_, mut seen)), Some(after)) => {
                        p.merge(&mut seen, after);
                        remember(p, intent, &ctx, &seen, &reg.owned)
                    }
                    _ => None,
                };
                out.owned = reg.owned;
                return Ok(merged(out, &landed));
            }
            if !carry {
                prelisted = None;
                step = Step::Await(round + 1);
                continue;
            }
            // Still waiting: carry them, and everyone's. Its own rrsets
            // are as its announcement left them, its registry as just
            // listed: presumed, so that only the shared rrsets are read
            // (a request each on Route53 once the zone is large).
            looked = match (&prelisted, &announced_after) {
                (Some((_, listed)), Some(after)) => {
                    let mut m = listed.clone();
                    p.merge(&mut m, after.clone());
                    Some(m)
                }
                _ => None,
            };
            step = Step::Write(How::Materialise);
            continue;
        }
        let how = match step {
            Step::Write(h) => h,
            Step::Announce => How::Announce,
            Step::Await(_) => unreachable!("handled above"),
        };
        if how == How::Direct && writes_shared && p.pacer().busy_within(contention) {
            // The provider is throttling: a fleet is at it. Announce instead of racing.
            step = Step::Announce;
            continue;
        }
        let looked_now = looked.take();
        let (mut plan, snap, presumed) = match observe(
            p,
            intent,
            &ctx,
            how,
            looked_now
                .as_ref()
                .or(memory.as_ref().filter(|_| trust_memory)),
            prelisted.take(),
            &mut tries,
        )
        .await
        {
            Err(e) if e.is::<Crowded>() => {
                tracing::debug!(
                    provider = p.name(),
                    "throttled while reading: announcing instead"
                );
                step = Step::Announce;
                continue;
            }
            r => r?,
        };
        if how == How::Direct
            && writes_shared
            && !plan.edit.is_empty()
            && p.pacer().busy_within(contention)
        {
            // The provider started throttling while this was read: a fleet is
            // at it, and the write would only race. Announce instead.
            step = Step::Announce;
            continue;
        }
        plan.outcome.conflicts = conflicts;
        if plan.edit.is_empty() && !presumed.is_empty() {
            // Nothing to do, says memory; but a memory is checked only by a
            // write. Check it in one request where the provider can, else read.
            trust_memory = false;
            match p.check(&snap, &presumed).await {
                Ok(Some(true)) => {
                    plan.outcome.memory = remember(p, intent, &ctx, &snap, &plan.outcome.owned);
                    return Ok(merged(plan.outcome, &landed));
                }
                Ok(Some(false)) => {
                    tracing::debug!(
                        provider = p.name(),
                        "this instance's records changed behind its back; reading them"
                    );
                }
                Ok(None) => {}
                Err(f) => tries.after("checking this instance's records", f).await?,
            }
            continue;
        }
        if plan.edit.is_empty() {
            if let Some((landed_refused, _)) =
                refused.take().filter(|(_, left)| *left == plan.registry)
            {
                // Report what that write did, not "already published".
                return Ok(merged(
                    Outcome {
                        memory: remember(p, intent, &ctx, &snap, &plan.outcome.owned),
                        owned: plan.outcome.owned,
                        conflicts,
                        ..landed_refused
                    },
                    &landed,
                ));
            }
            if plan.announces {
                // Announced already (an earlier try whose answer was lost): wait for peers.
                announced.get_or_insert(plan);
                step = Step::Await(0);
                continue;
            }
            plan.outcome.memory = remember(p, intent, &ctx, &snap, &plan.outcome.owned);
            return Ok(merged(plan.outcome, &landed));
        }
        // What was presumed and is not changed is guarded: the decision
        // rested on it, so the write applies only if it holds.
        let changed = plan.edit.keys();
        plan.edit.guard.extend(
            presumed
                .iter()
                .filter(|k| !changed.contains(*k) && !p.values(&snap, k).is_empty())
                .cloned(),
        );
        tracing::debug!(provider = p.name(), ?how, "writing:\n{}", plan.edit);
        let direct_shared = how == How::Direct
            && writes_shared
            && plan
                .edit
                .keys()
                .iter()
                .any(|k| intent.is_shared(k, &ctx.registry));
        let result = loop {
            let r = p.write(&snap, &plan.edit).await;
            match r {
                // Throttled: nothing was applied, and the write is
                // conditional on what it presumes, so the same write is sent
                // again once the pacer allows (reading again would only cost
                // more of the budget a fleet is short of). A direct write of
                // shared rrsets announces instead (below).
                Err(Fail::Busy { .. }) if !direct_shared && !tries.expired() => {
                    p.pacer().fit(tries.deadline);
                }
                r => break r,
            }
        };
        match result {
            Ok(written) => {
                if plan.announces {
                    tracing::debug!(
                        provider = p.name(),
                        "announced; waiting for a peer to carry it"
                    );
                    if !intent.leaving {
                        intent.checkpoint.keep(once_carried(
                            p,
                            intent,
                            &ctx,
                            &plan,
                            &written.after,
                        ));
                    }
                    landed = merged(plan.outcome.clone(), &landed);
                    announced = Some(plan);
                    announced_after = Some(written.after);
                    trust_memory = false;
                    step = Step::Await(0);
                    continue;
                }
                let mut out = plan.outcome;
                if let Some(a) = announced.take() {
                    // Some of what was announced was carried meanwhile; report it all.
                    let mine = Registry::parse(&a.registry);
                    for v in mine.wanted.iter().filter(|v| out.owned.contains(*v)) {
                        if !out.added.contains(v) {
                            out.added.push(v.clone());
                        }
                    }
                    // A dropped value still there after this write was handed
                    // over to an instance that wants it, not removed.
                    for v in &mine.dropped {
                        if !out.removed.contains(v)
                            && !p.values(&written.after, &v.key()).contains(v)
                        {
                            out.removed.push(v.clone());
                        }
                    }
                }
                out.memory = remember(p, intent, &ctx, &written.after, &out.owned);
                out.change = written.change.clone();
                if how == How::Materialise && intent.leaving && out.carried > 0 {
                    out.carried += keep_carrying(p, intent, &ctx, written.after, &mut tries).await;
                }
                return Ok(merged(out, &landed));
            }
            Err(Fail::Conflict(why)) => {
                conflicts += 1;
                trust_memory = false;
                refused = (!plan.announces).then(|| (plan.outcome.clone(), plan.registry.clone()));
                tracing::debug!(provider = p.name(), conflicts, %why, ?how, "conflict, reading again");
                step = match how {
                    // Shared rrsets raced: announce rather than race again.
                    How::Direct if direct_shared => Step::Announce,
                    How::Materialise => Step::Await(conflicts),
                    _ => {
                        tries
                            .sleep(
                                Backoff {
                                    base: Duration::from_millis(100),
                                    cap: Duration::from_secs(5),
                                    attempts: u32::MAX,
                                }
                                .delay(conflicts.min(10)),
                            )
                            .await;
                        step
                    }
                };
            }
            Err(Fail::Busy { .. }) if direct_shared => {
                // Throttled: a fleet is at it, and by the time this write
                // goes through what it read will have changed. Announce
                // (memory still holds: nothing was applied).
                step = Step::Announce;
            }
            Err(f) => tries.after("writing the change", f).await?,
        }
    }
}

/// The memory of a join whose announcement `plan` left `after`, as it will
/// be once a peer carries it: its registry's wanted lines owned (as the
/// carrier flips them), its own rrsets as the announcement wrote them.
/// `None` where the provider cannot tell what an edit leaves.
fn once_carried<P: Provider>(
    p: &P,
    intent: &Intent,
    ctx: &Ctx,
    plan: &Plan,
    after: &P::Snapshot,
) -> Option<serde_json::Value> {
    let announced = Registry::parse(&plan.registry);
    let carried = Registry {
        owned: announced.owned.union(&announced.wanted).cloned().collect(),
        wanted: Values::new(),
        dropped: Values::new(),
        lease: announced.lease,
    };
    let values = if carried.owned.is_empty() {
        Values::new()
    } else {
        carried.to_values(&ctx.registry.name).ok()?
    };
    let ttl = p.ttl(after, &ctx.registry)?;
    let mut edit = Edit::default();
    set_exactly(&mut edit, &ctx.registry, &plan.registry, &values, ttl);
    let snap = p.applied(after, &edit)?;
    remember(p, intent, ctx, &snap, &carried.owned)
}

/// A leaving instance whose write carried other instances' announced values
/// stays the fleet's carrier while its stop allows: when a fleet scales in
/// together, announcements come in over the time the provider's rate takes,
/// and the waiting instances look seldom (see `look_after`). A carrier that
/// stopped after one write left the rest to whoever was first in line at
/// its next look, which came too late (measured with 200 agents on Route53
/// simple routing: 104 announced removals not carried when their stops
/// ended). Every `CARRY_ROUND` it lists the registries and carries what is
/// pending, until two listings in a row show nothing pending or its stop is
/// near. Each write is conditional like any other: one racing another
/// carrier is refused and the next round sees what it did. Returns the
/// values carried.
async fn keep_carrying<P: Provider>(
    p: &P,
    intent: &Intent,
    ctx: &Ctx,
    mut last: P::Snapshot,
    tries: &mut Attempts<'_>,
) -> usize {
    // Only its shared rrsets are read again (its own are gone, as its last
    // write left them).
    let intent = Intent {
        desired: Vec::new(),
        known: intent
            .known
            .iter()
            .filter(|v| intent.is_shared(&v.key(), &ctx.registry))
            .cloned()
            .collect(),
        memory: None,
        ..intent.clone()
    };
    let intent = &intent;
    let mut carried = 0;
    let mut quiet = 0;
    while tries.deadline.saturating_duration_since(Instant::now()) > CARRY_ROUND * 2 && quiet < 2 {
        tries.sleep(CARRY_ROUND).await;
        let Ok(listed) = attempt(tries, "listing ownership registries", || p.registries()).await
        else {
            break;
        };
        let pending = listed
            .0
            .iter()
            .filter(|(label, _)| **label != ctx.label)
            .map(|(_, values)| Registry::parse(values))
            .any(|r| waiting(&r, ctx.now));
        if !pending {
            quiet += 1;
            continue;
        }
        quiet = 0;
        let Ok((plan, snap, _)) = observe(
            p,
            intent,
            ctx,
            How::Materialise,
            Some(&last),
            Some(listed),
            tries,
        )
        .await
        else {
            break;
        };
        if plan.edit.is_empty() {
            continue;
        }
        tracing::debug!(provider = p.name(), "carrying for others:\n{}", plan.edit);
        match p.write(&snap, &plan.edit).await {
            Ok(written) => {
                carried += plan.outcome.carried;
                last = written.after;
            }
            // Another carrier wrote first, or the provider is busy (its
            // pacer holds the next request back): the next round sees.
            Err(Fail::Conflict(_) | Fail::Busy { .. }) => {}
            Err(_) => break,
        }
    }
    carried
}

/// Whether a registry has announced values waiting to be carried, and is
/// still alive to want them.
fn waiting(r: &Registry, now: u64) -> bool {
    !r.expired(now) && (!r.wanted.is_empty() || !r.dropped.is_empty())
}

/// What is fixed for `p` and `intent`'s instance.
fn ctx_of<P: Provider>(p: &P, intent: &Intent) -> anyhow::Result<Ctx> {
    let mut ctx = Ctx::new(p.zone(), &intent.instance_id, p.keeps_apart())?;
    ctx.batch_limit = p.batch_limit();
    ctx.ttl_per_record = p.ttl_per_record();
    ctx.claims_by_name = p.claims_by_name();
    Ok(ctx)
}

/// What a join or leave would do at one provider now ([`dry_run`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DryRun {
    /// Values the write would add.
    pub add: Vec<Value>,
    /// Values this instance owns that the write would remove.
    pub remove: Vec<Value>,
    /// Desired values already there that nobody claims (a person's): left
    /// alone, never claimed ([`Outcome::foreign`]).
    pub keep_foreign: Vec<Value>,
    /// Everything else at the names this instance writes that is not its own:
    /// other instances' values (also those it owned that another instance
    /// claims too, [`Outcome::protected`]) and a person's other values.
    pub keep_others: Vec<Value>,
    /// What this instance would own afterwards.
    pub owned: Values,
    /// Whether what this instance owns would change (its registry, leaving a
    /// lease renewal aside): a value claimed too, or given up to another.
    pub ownership_changes: bool,
}

impl DryRun {
    /// Whether the join or leave would change anything but a lease.
    pub fn changes(&self) -> bool {
        !self.add.is_empty() || !self.remove.is_empty() || self.ownership_changes
    }
}

/// A dry run of [`apply`]: reads what the zone holds now (everything for
/// real: no memory is presumed, whatever `intent.memory` says, and no
/// [`Provider::check`], which may be a write), lets [`decide`] make the
/// decision the first direct write would carry out, and returns it without
/// writing. Never calls [`Provider::write`]. Where shared rrsets are rewritten
/// whole (Route53 simple routing), the real join or leave may announce and be
/// carried by a peer under contention; this is the direct decision.
pub async fn dry_run<P: Provider>(p: &P, intent: &Intent) -> anyhow::Result<DryRun> {
    let ctx = ctx_of(p, intent)?;
    let mut tries = Attempts::new(p.name(), intent.deadline)
        .with(p.transient_backoff())
        .paced(p.pacer());
    let (plan, snap) = loop {
        match observe(p, intent, &ctx, How::Direct, None, None, &mut tries).await {
            // Throttled while reading shared rrsets: the pacer spaces the next try.
            Err(e) if e.is::<Crowded>() && !tries.expired() => {
                p.pacer().fit(tries.deadline);
            }
            Err(e) if e.is::<Crowded>() => {
                return Err(OutOfTime(format!(
                    "{}: gave up after {}: the provider kept throttling the reads",
                    p.name(),
                    humantime::format_duration(intent.deadline)
                ))
                .into());
            }
            r => {
                let (plan, snap, _) = r?;
                break (plan, snap);
            }
        }
    };
    let before = Registry::parse(&p.values(&snap, &ctx.registry));
    let after = Registry::parse(&plan.registry);
    let ownership_changes = (&before.owned, &before.wanted, &before.dropped)
        != (&after.owned, &after.wanted, &after.dropped);
    let out = plan.outcome;
    // The names looked at: what is desired, known, or listed in the registry.
    let ownership = registry::root(&ctx.zone);
    let keys: BTreeSet<RrKey> = intent
        .desired
        .iter()
        .map(|r| r.value.key())
        .chain(intent.known.iter().map(Value::key))
        .chain(
            before
                .owned
                .iter()
                .chain(&before.wanted)
                .chain(&before.dropped)
                .map(Value::key),
        )
        .filter(|k| k.name.is_in(&ctx.zone) && !k.name.is_in(&ownership))
        .collect();
    let mut keep_others = out.protected.clone();
    for k in &keys {
        for v in p.values(&snap, k) {
            if !out.owned.contains(&v)
                && !out.added.contains(&v)
                && !out.removed.contains(&v)
                && !out.foreign.contains(&v)
                && !keep_others.contains(&v)
            {
                keep_others.push(v);
            }
        }
    }
    Ok(DryRun {
        add: out.added,
        remove: out.removed,
        keep_foreign: out.foreign,
        keep_others,
        owned: out.owned,
        ownership_changes,
    })
}

/// How long an instance that announced waits before it looks whether it was
/// carried, where one listing shows every waiting instance: about
/// `LOOK_SPACING` per instance its last look saw `waiters` (only they look,
/// so their looks stay a small share of the provider's rate however many
/// they are), drawn at random so that the looks spread out; before it has
/// looked, up to `FIRST_LOOK_CROWDED` when the provider is throttling
/// (`crowded`: many are at it), else a couple of seconds. Spaced by the
/// whole fleet instead, the last few of a join storm, each waiting for
/// another to carry it, looked half a minute apart, and the last three of
/// 200 were carried 52 s after the rest. Never more than a quarter of the
/// time `left`, so that a leave near its deadline still looks, and carries,
/// in time.
fn look_after(waiters: Option<usize>, crowded: bool, left: Duration, leaving: bool) -> Duration {
    let span = match waiters {
        Some(n) => LOOK_SPACING
            .saturating_mul(u32::try_from(n).unwrap_or(u32::MAX))
            .max(Duration::from_secs(2)),
        // A crowd leaving together (a scale-in) announces all at once: its
        // first looks spread over half of what is left of the stop (up to
        // `LEAVING_FIRST_LOOK`), so that they do not take the rate from the
        // announcements and carrying writes (measured with 200 on Route53:
        // looked within 20 s, a third of the looks found nothing carried yet
        // and came again).
        None if crowded && leaving => (left / 2).clamp(FIRST_LOOK_CROWDED, LEAVING_FIRST_LOOK),
        None if crowded => FIRST_LOOK_CROWDED,
        None => Duration::from_secs(2),
    };
    let (lo, hi) = match waiters {
        Some(_) => (span / 2, span * 3 / 2),
        None => (span / 20, span),
    };
    let cap = if leaving && waiters.is_none() {
        left / 2
    } else {
        left / 4
    };
    crate::retry::uniform(lo, hi)
        .min(cap)
        .max(Duration::from_millis(500))
}

/// `out` with what earlier writes of the same operation added and removed.
fn merged(mut out: Outcome, earlier: &Outcome) -> Outcome {
    for v in &earlier.added {
        if !out.added.contains(v) && !out.removed.contains(v) {
            out.added.push(v.clone());
        }
    }
    for v in &earlier.removed {
        if !out.removed.contains(v) && !out.added.contains(v) {
            out.removed.push(v.clone());
        }
    }
    out
}

/// Where claims are kept by name, the claim rrsets of the values this
/// instance wants or knows it published: read, or presumed, with the rest.
fn claims_of(intent: &Intent, ctx: &Ctx) -> BTreeSet<RrKey> {
    if !ctx.claims_by_name {
        return BTreeSet::new();
    }
    intent
        .desired
        .iter()
        .map(|r| &r.value)
        .chain(&intent.known)
        .filter(|v| v.name.is_in(&ctx.zone))
        .map(|v| registry::claim_key(&ctx.zone, v))
        .collect()
}

/// The part of `snap` the provider would presume next time, as the state file keeps it.
fn remember<P: Provider>(
    p: &P,
    intent: &Intent,
    ctx: &Ctx,
    snap: &P::Snapshot,
    owned: &Values,
) -> Option<serde_json::Value> {
    let mut keys: BTreeSet<RrKey> = intent
        .desired
        .iter()
        .map(|r| r.value.key())
        .chain(intent.known.iter().map(Value::key))
        .collect();
    keys.insert(ctx.registry.clone());
    keys.extend(claims_of(intent, ctx));
    let shared: BTreeSet<RrKey> = keys
        .iter()
        .filter(|k| intent.is_shared(k, &ctx.registry))
        .cloned()
        .collect();
    if ctx.keeps_apart || !p.rewrites_rrsets() {
        let (part, _) = p.presume(snap, &keys, &shared, owned)?;
        return serde_json::to_value(&part).ok();
    }
    // Shared rrsets are never presumed; this instance's own are kept
    // whatever the zone's size (a zone small enough to read in one request
    // when this was written may not be when the memory is used).
    let own: BTreeSet<RrKey> = keys.difference(&shared).cloned().collect();
    let (part, _) = p.presume(snap, &own, &BTreeSet::new(), owned)?;
    serde_json::to_value(&part).ok()
}

/// Reads `keys`, retrying as [`attempt_unless_crowded`] does; where each
/// rrset costs a request of its own, one by one, so that what was read
/// stays read when a later request is throttled. Read in one call, a
/// throttled second rrset threw the first away, and under a fleet's
/// throttling half of the reads of a simulated scale-in were such waste.
async fn read_all<P: Provider>(
    p: &P,
    tries: &mut Attempts<'_>,
    crowd: bool,
    keys: &BTreeSet<RrKey>,
) -> anyhow::Result<P::Snapshot> {
    if keys.len() < 2 || !p.reads_rrset_by_rrset() {
        return attempt_unless_crowded(tries, "reading records", crowd, || p.read(keys)).await;
    }
    let mut snap = P::Snapshot::default();
    for key in keys {
        let one = BTreeSet::from([key.clone()]);
        let part = attempt_unless_crowded(tries, "reading records", crowd, || p.read(&one)).await?;
        p.merge(&mut snap, part);
    }
    Ok(snap)
}

/// Reads (or presumes) what a decision needs, then decides.
async fn observe<P: Provider>(
    p: &P,
    intent: &Intent,
    ctx: &Ctx,
    how: How,
    memory: Option<&P::Snapshot>,
    mut prelisted: Option<(BTreeMap<String, Values>, P::Snapshot)>,
    tries: &mut Attempts<'_>,
) -> anyhow::Result<(Plan, P::Snapshot, BTreeSet<RrKey>)> {
    let mut seen = Seen::default();
    let mut snap: Option<P::Snapshot> = None;
    let mut refresh: BTreeSet<RrKey> = BTreeSet::new();
    let mut keys: BTreeSet<RrKey> = intent
        .desired
        .iter()
        .map(|r| r.value.key())
        .chain(intent.known.iter().map(Value::key))
        .filter(|k| how != How::Announce || ctx.keeps_apart || !intent.is_shared(k, &ctx.registry))
        .collect();
    keys.insert(ctx.registry.clone());
    keys.extend(claims_of(intent, ctx));
    let mut memory = memory;
    // Reading shared rrsets to write them directly: a throttled read means a
    // fleet is at it; announce instead (see `Crowded`).
    let crowd = how == How::Direct
        && !ctx.keeps_apart
        && p.rewrites_rrsets()
        && intent.shares_any(&ctx.registry);
    loop {
        let mut fresh: BTreeSet<RrKey> = keys
            .difference(&seen.rrsets.keys().cloned().collect())
            .cloned()
            .collect();
        if !refresh.is_empty() {
            // Presumed keys that must be read for real after all.
            let read = read_all(p, tries, crowd, &refresh).await?;
            for k in &refresh {
                let values = p.values(&read, k);
                for v in &values {
                    if let Some(c) = p.claimants(&read, v) {
                        seen.claimants.get_or_insert_default().insert(v.clone(), c);
                    }
                }
                seen.rrsets.insert(
                    k.clone(),
                    Rrset {
                        values,
                        ttl: p.ttl(&read, k),
                    },
                );
                seen.presumed.remove(k);
            }
            let mut fresh_snap = read;
            if let Some(old) = snap.take() {
                p.merge(&mut fresh_snap, old);
            }
            snap = Some(fresh_snap);
            refresh.clear();
            fresh.retain(|k| !seen.rrsets.contains_key(k));
        }
        if !fresh.is_empty() {
            let shared: BTreeSet<RrKey> = fresh
                .iter()
                .filter(|k| intent.is_shared(k, &ctx.registry))
                .cloned()
                .collect();
            // Where claims are kept by name, a join reads the records
            // (memory would not show a value added or removed by someone else
            // since) and presumes the ownership rrsets: its registry and its
            // values' claims as its last write left them, absent when nothing
            // is remembered (a machine's first join). Every claim the decision
            // rests on is then a prerequisite of the UPDATE (changed, or
            // guarded as absent where a value was found unclaimed), so a claim
            // a peer wrote meanwhile refuses the write and is read; a fleet
            // joining with values of their own reads no claim at all. A leave
            // presumes them all.
            let presumable: BTreeSet<RrKey> = if ctx.claims_by_name && !intent.leaving {
                let ownership = registry::root(&ctx.zone);
                fresh
                    .iter()
                    .filter(|k| k.name.is_in(&ownership))
                    .cloned()
                    .collect()
            } else {
                fresh.clone()
            };
            let (presumed, to_read) = match memory
                .take()
                .and_then(|m| p.presume(m, &presumable, &shared, &intent.known))
            {
                Some((s, mut rest)) => {
                    seen.presumed.extend(presumable.difference(&rest).cloned());
                    rest.extend(fresh.difference(&presumable).cloned());
                    (Some(s), rest)
                }
                None => (None, fresh.clone()),
            };
            let mut part = presumed;
            if !to_read.is_empty() {
                let read = read_all(p, tries, crowd, &to_read).await?;
                match &mut part {
                    Some(s) => p.merge(s, read),
                    None => part = Some(read),
                }
            }
            let part = part.expect("presumed or read");
            for k in &fresh {
                let values = p.values(&part, k);
                for v in &values {
                    if let Some(c) = p.claimants(&part, v) {
                        seen.claimants.get_or_insert_default().insert(v.clone(), c);
                    }
                }
                seen.rrsets.insert(
                    k.clone(),
                    Rrset {
                        values,
                        ttl: p.ttl(&part, k),
                    },
                );
            }
            match &mut snap {
                Some(s) => p.merge(s, part),
                None => snap = Some(part),
            }
        }
        match decide(intent, ctx, &seen, how)? {
            Decision::Read(more) => {
                // Keys known already are read again, for real.
                refresh.extend(
                    more.iter()
                        .filter(|k| seen.rrsets.contains_key(*k))
                        .cloned(),
                );
                keys.extend(more);
            }
            Decision::ListRegistries => {
                let (all, regs) = match prelisted.take() {
                    Some(listed) => listed,
                    None => {
                        attempt_unless_crowded(tries, "listing ownership registries", crowd, || {
                            p.registries()
                        })
                        .await?
                    }
                };
                let mut others = BTreeMap::new();
                for (label, values) in all {
                    if label == ctx.label {
                        continue;
                    }
                    if let Ok(name) = registry::name(&ctx.zone, &label) {
                        let key = RrKey {
                            name,
                            rtype: RType::TXT,
                        };
                        let ttl = p.ttl(&regs, &key);
                        seen.rrsets.entry(key).or_insert_with(|| Rrset {
                            values: values.clone(),
                            ttl,
                        });
                    }
                    others.insert(label, Registry::parse(&values));
                }
                seen.others = Some(others);
                match &mut snap {
                    Some(s) => p.merge(s, regs),
                    None => snap = Some(regs),
                }
            }
            Decision::Write(plan) => {
                return Ok((
                    *plan,
                    snap.expect("the registry is always read"),
                    seen.presumed,
                ));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Reaping and presence
// ---------------------------------------------------------------------------

/// What [`reap`] removed for one expired instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reaped {
    /// The instance's registry label.
    pub instance: String,
    /// When its lease ran out (unix seconds).
    pub expired: u64,
    pub removed: Vec<Value>,
    /// Values its registry listed that another live registry claims too: left.
    pub protected: Vec<Value>,
}

/// Removes the records of every instance whose lease expired before `now`:
/// exactly the values its registry lists (owned, or announced for removal) and
/// still present, then the registry itself, in one atomic edit per instance.
/// Values another live registry also claims stay. Registries without a lease
/// are never touched.
///
/// Safe when several reapers run at once, and against the instance coming back:
/// each edit is conditional on what was read (a conflict reads again), and a
/// registry whose lease was renewed meanwhile is left alone.
pub async fn reap<P: Provider>(p: &P, now: u64, deadline: Duration) -> anyhow::Result<Vec<Reaped>> {
    let mut tries = Attempts::new(p.name(), deadline)
        .with(p.transient_backoff())
        .paced(p.pacer());
    let (all, _) = attempt(&mut tries, "listing ownership registries", || {
        p.registries()
    })
    .await?;
    let parsed: BTreeMap<String, Registry> = all
        .iter()
        .map(|(label, values)| (label.clone(), Registry::parse(values)))
        .collect();
    let mut out = Vec::new();
    let expired = expired_from_anywhere(&parsed, now);
    // Where instances keep rrsets of their own, every expired one's are read
    // at once: one listing of the zone instead of a read per instance.
    let mut prefetched: BTreeMap<String, P::Snapshot> = if p.keeps_apart() && expired.len() > 1 {
        let owners = expired
            .iter()
            .map(|(label, r)| Ok(((*label).clone(), reap_keys(p, label, r)?)))
            .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
        attempt(&mut tries, "reading records", || p.read_as_owners(&owners)).await?
    } else {
        BTreeMap::new()
    };
    for (label, registry) in expired {
        // Where instances keep rrsets of their own, read and delete the dead
        // one's, and what another instance publishes too is in its own rrsets.
        let owner = p.as_owner(label);
        let p = owner.as_ref().unwrap_or(p);
        let claimed_by_others: Values = parsed
            .iter()
            .filter(|(l, r)| *l != label && !r.expired(now) && !p.keeps_apart())
            .flat_map(|(_, r)| r.claims().cloned())
            .collect();
        let reg_key = RrKey {
            name: registry::name(p.zone(), label).map_err(anyhow::Error::msg)?,
            rtype: RType::TXT,
        };
        let mut conflicts = 0u32;
        let keys = reap_keys(p, label, registry)?;
        loop {
            // What was read of every expired instance at once, the first
            // time; after a conflict, this one's again.
            let snap = match prefetched.remove(label) {
                Some(snap) => snap,
                None => attempt(&mut tries, "reading records", || p.read(&keys)).await?,
            };
            let current = p.values(&snap, &reg_key);
            let now_reg = Registry::parse(&current);
            // Gone (another reaper was first) or renewed (the instance is back).
            if !now_reg.expired(now) {
                break;
            }
            let (edit, reaped) = reap_edit(
                p,
                label,
                &snap,
                &now_reg,
                &current,
                &reg_key,
                &claimed_by_others,
            );
            match p.write(&snap, &edit).await {
                Ok(_) => {
                    out.push(reaped);
                    break;
                }
                Err(Fail::Conflict(why)) => {
                    conflicts += 1;
                    if tries.expired() {
                        anyhow::bail!(
                            "{}: gave up reaping {label} after {conflicts} conflicting writes; last: {why}",
                            p.name()
                        );
                    }
                    tries
                        .sleep(
                            Backoff {
                                base: Duration::from_millis(100),
                                cap: Duration::from_secs(5),
                                attempts: u32::MAX,
                            }
                            .delay(conflicts.min(10)),
                        )
                        .await;
                }
                Err(f) => tries.after(&format!("reaping {label}"), f).await?,
            }
        }
    }
    Ok(out)
}

/// The expired registries, starting at a random place in the list: several
/// reapers at once (every agent with `reap = true`) then mostly take
/// different instances instead of reading the same ones and finding them
/// gone.
fn expired_from_anywhere(
    parsed: &BTreeMap<String, Registry>,
    now: u64,
) -> Vec<(&String, &Registry)> {
    let mut expired: Vec<(&String, &Registry)> =
        parsed.iter().filter(|(_, r)| r.expired(now)).collect();
    if let Some(last) = expired.len().checked_sub(1) {
        let start = usize::try_from(crate::retry::jitter(last as u64)).unwrap_or(0);
        expired.rotate_left(start.min(last));
    }
    expired
}

/// What a reaper reads of expired instance `label`: the values its
/// registry lists (and their claims, where claims are kept by name), and
/// the registry.
fn reap_keys<P: Provider>(
    p: &P,
    label: &str,
    registry: &Registry,
) -> anyhow::Result<BTreeSet<RrKey>> {
    let mut keys: BTreeSet<RrKey> = registry
        .owned
        .iter()
        .chain(registry.dropped.iter())
        .flat_map(|v| {
            [
                Some(v.key()),
                p.claims_by_name().then(|| registry::claim_key(p.zone(), v)),
            ]
        })
        .flatten()
        .collect();
    keys.insert(RrKey {
        name: registry::name(p.zone(), label).map_err(anyhow::Error::msg)?,
        rtype: RType::TXT,
    });
    Ok(keys)
}

/// The change that reaps expired instance `label` as `snap` shows it (its
/// registry `current`, parsed as `now_reg`, at `reg_key`): its values that
/// no other instance claims (`claimed_by_others`, or the claims on the
/// records) go, the others are left and lose its claim, and its registry
/// goes. With what it removes and leaves, for the report.
fn reap_edit<P: Provider>(
    p: &P,
    label: &str,
    snap: &P::Snapshot,
    now_reg: &Registry,
    current: &Values,
    reg_key: &RrKey,
    claimed_by_others: &Values,
) -> (Edit, Reaped) {
    // Where claims are kept by name, each value's claim rrset is read and
    // written with it: the dead instance's name comes off it.
    let claim_key = |v: &Value| p.claims_by_name().then(|| registry::claim_key(p.zone(), v));
    let mut edit = Edit::default();
    let mut reaped = Reaped {
        instance: label.to_string(),
        expired: now_reg.lease.unwrap_or_default(),
        ..Reaped::default()
    };
    for v in now_reg.owned.iter().chain(now_reg.dropped.iter()) {
        if !v.name.is_in(p.zone()) {
            continue;
        }
        let on_record = p.claimants(snap, v).map(|mut c| {
            c.remove(label);
            c
        });
        let by_name = claim_key(v).map(|k| {
            let held = p.values(snap, &k);
            let mut c = registry::claimants(&held);
            c.remove(label);
            (k, held, c)
        });
        let others = match (&on_record, &by_name) {
            (Some(c), _) => !c.is_empty(),
            (None, Some((_, _, c))) => !c.is_empty() || claimed_by_others.contains(v),
            (None, None) => claimed_by_others.contains(v),
        };
        if others {
            reaped.protected.push(v.clone());
            if let Some(c) = on_record.filter(|_| p.values(snap, &v.key()).contains(v)) {
                edit.claimants.insert(v.clone(), c);
            }
        } else if p.values(snap, &v.key()).contains(v) && !reaped.removed.contains(v) {
            edit.remove.entry(v.key()).or_default().push(v.clone());
            reaped.removed.push(v.clone());
        }
        // The dead instance's name off the claim (all of it when the
        // value goes), whether or not the value is still there.
        if let Some((k, held, c)) = by_name {
            let after = if others {
                registry::claim_values(&k.name, &c)
            } else {
                Values::new()
            };
            let gone = edit.remove.entry(k).or_default();
            for c in held.difference(&after) {
                if !gone.contains(c) {
                    gone.push(c.clone());
                }
            }
        }
    }
    edit.remove
        .insert(reg_key.clone(), current.iter().cloned().collect());
    (edit, reaped)
}

/// Whether each desired value is present, for `status`.
pub async fn presence<P: Provider>(
    p: &P,
    desired: &[Record],
    deadline: Duration,
) -> anyhow::Result<Vec<(Value, bool)>> {
    let keys: BTreeSet<RrKey> = desired.iter().map(|r| r.value.key()).collect();
    let mut tries = Attempts::new(p.name(), deadline)
        .with(p.transient_backoff())
        .paced(p.pacer());
    let snap = attempt(&mut tries, "reading records", || p.read(&keys)).await?;
    Ok(desired
        .iter()
        .map(|r| {
            (
                r.value.clone(),
                p.values(&snap, &r.value.key()).contains(&r.value),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests;
