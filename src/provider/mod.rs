//! The provider contract, and the one algorithm that applies SPEC §3 on top of it.
//!
//! A provider knows how to read the values at some names and how to write an edit
//! atomically relative to what it read; it knows nothing of ownership. [`apply`]
//! owns the rules: which values are this instance's (the ownership registry in the
//! zone plus the local state file), what to add, what to remove, and never touching
//! anything else. Conflicts (another writer changed an rrset between our read and
//! our write) are resolved by reading again, with backoff, until the edit lands.

pub mod cloudflare;
pub mod rfc2136;
pub mod route53;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use crate::plan::registry_name;
use crate::record::{DomainName, RData, Record, RrKey, Value};
use crate::retry::Backoff;

pub use cloudflare::Cloudflare;
pub use rfc2136::Rfc2136;
pub use route53::Route53;

/// The values one provider shows at one name and type, as far as this instance
/// is concerned: the whole rrset for shared rrsets, this instance's own rrset
/// where the provider keeps one per instance (Route53 multivalue).
pub type Values = BTreeSet<Value>;

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
}

impl Edit {
    pub fn is_empty(&self) -> bool {
        self.keys().is_empty()
    }

    /// Every rrset the edit touches.
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
        added
            .chain(removed)
            .chain(self.ttl.keys())
            .cloned()
            .collect()
    }
}

/// Why a write did not happen.
#[derive(Debug)]
pub enum WriteError {
    /// The zone changed since the snapshot: read again and retry.
    Conflict(String),
    /// Anything else, after the provider's own retries of transient failures.
    Failed(anyhow::Error),
}

/// What a provider must do. Each operation's guarantee is stated on it; the
/// conformance tests hold every provider to them.
pub trait Provider: Send + Sync {
    /// Whatever the provider needs to remember from a read to write exactly
    /// against it (Route53: the exact rrsets, to DELETE them).
    type Snapshot: Send + Sync;

    /// The name used in configuration and messages.
    fn name(&self) -> &str;

    /// The zone's name. Valid after [`Provider::connect`].
    fn zone(&self) -> &DomainName;

    /// Finds the zone (once) and checks access. Idempotent.
    fn connect(&mut self) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Reads the values at `keys`. Absent rrsets read as empty. Transient failures
    /// are retried inside.
    fn read(
        &self,
        keys: &BTreeSet<RrKey>,
    ) -> impl Future<Output = anyhow::Result<Self::Snapshot>> + Send;

    /// The values the snapshot holds at `key` (see [`Values`]).
    fn values(&self, snapshot: &Self::Snapshot, key: &RrKey) -> Values;

    /// The TTL of the rrset at `key` in the snapshot, if it exists.
    fn ttl(&self, snapshot: &Self::Snapshot, key: &RrKey) -> Option<u32>;

    /// Applies `edit` as one atomic change if every rrset it touches is still as
    /// `snapshot` saw it, and waits until the provider confirms the change is
    /// live. Values not named in the edit are left exactly as they are.
    /// Returns [`WriteError::Conflict`] if the zone changed meanwhile; nothing
    /// was applied then.
    fn write(
        &self,
        snapshot: &Self::Snapshot,
        edit: &Edit,
    ) -> impl Future<Output = Result<(), WriteError>> + Send;

    /// Every instance's ownership registry in the zone: instance label → the
    /// TXT values of its registry rrset, as they are (see [`Registry::parse`]).
    fn registries(&self) -> impl Future<Output = anyhow::Result<BTreeMap<String, Values>>> + Send;
}

// ---------------------------------------------------------------------------
// The ownership registry (SPEC §3 rule 5)
// ---------------------------------------------------------------------------

/// The prefix of each registry string: the format's version.
const REGISTRY_PREFIX: &str = "dnsreg1 ";

/// One registry TXT record per owned value: `"dnsreg1 NAME TYPE DATA"`.
pub fn registry_values(
    zone: &DomainName,
    instance_id: &str,
    owned: &Values,
) -> anyhow::Result<Vec<Value>> {
    let name = registry_name(zone, instance_id).map_err(anyhow::Error::msg)?;
    owned
        .iter()
        .map(|v| {
            let line = format!("{REGISTRY_PREFIX}{}", v.to_line());
            anyhow::ensure!(
                line.len() <= 255,
                "the registry line for {v} is longer than a TXT string allows (255)"
            );
            Ok(Value {
                name: name.clone(),
                data: RData::Txt(vec![line]),
            })
        })
        .collect()
}

/// The lease line's prefix: `"dnsreg1-lease EXPIRY"`, unix seconds.
const LEASE_PREFIX: &str = "dnsreg1-lease ";

/// The values a registry rrset lists; records that are not registry lines are ignored.
pub fn parse_registry(values: &Values) -> Values {
    Registry::parse(values).owned
}

/// What one instance's registry rrset says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registry {
    /// The values the instance owns.
    pub owned: Values,
    /// When its lease expires (unix seconds), if it holds one (`[lease]`).
    pub lease: Option<u64>,
}

impl Registry {
    pub fn parse(values: &Values) -> Registry {
        let mut r = Registry::default();
        for v in values {
            let RData::Txt(strings) = &v.data else {
                continue;
            };
            let line = strings.concat();
            if let Some(rest) = line.strip_prefix(LEASE_PREFIX) {
                // Two lease lines (a torn manual edit): the later expiry counts.
                if let Ok(t) = rest.trim().parse::<u64>() {
                    r.lease = Some(r.lease.map_or(t, |l| l.max(t)));
                }
            } else if let Some(v) = line
                .strip_prefix(REGISTRY_PREFIX)
                .and_then(Value::from_line)
            {
                r.owned.insert(v);
            }
        }
        r
    }

    /// Whether the lease ran out before `now` (unix seconds). Registries without
    /// a lease never expire: `reap` touches only instances that opted in.
    pub fn expired(&self, now: u64) -> bool {
        self.lease.is_some_and(|t| t < now)
    }
}

/// The registry's lease line for an expiry.
fn lease_value(zone: &DomainName, instance_id: &str, expiry: u64) -> anyhow::Result<Value> {
    Ok(Value {
        name: registry_name(zone, instance_id).map_err(anyhow::Error::msg)?,
        data: RData::Txt(vec![format!("{LEASE_PREFIX}{expiry}")]),
    })
}

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// The algorithm
// ---------------------------------------------------------------------------

/// What one instance wants of one provider.
#[derive(Clone, Debug)]
pub struct Intent {
    pub instance_id: String,
    /// What the configuration asks for now.
    pub desired: Vec<Record>,
    /// True for leave: publish nothing, remove everything owned, drop the registry.
    pub leaving: bool,
    /// Values the local state file says this instance published.
    pub known: Values,
    /// Give up resolving conflicts after this long.
    pub deadline: Duration,
    /// `[lease]`: keep a lease of this length in the registry, refreshed when a
    /// third of it has passed. `None`: no lease (an old one is dropped).
    pub lease: Option<Duration>,
}

/// What [`apply`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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
    /// Conflicts resolved on the way.
    pub conflicts: u32,
}

impl Outcome {
    pub fn changed(&self) -> bool {
        !self.added.is_empty() || !self.removed.is_empty()
    }
}

/// Brings the provider's zone to this instance's intent under SPEC §3:
/// - desired values that are missing are added;
/// - values this instance owns (registry ∪ state file) and no longer wants are
///   removed — unless another instance's registry claims them;
/// - a desired value already present but not owned is someone else's: untouched;
/// - nothing else is touched; the registry is rewritten in the same atomic edit.
///
/// Idempotent. Conflicts are retried with backoff until `intent.deadline`.
pub async fn apply<P: Provider>(p: &P, intent: &Intent) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let zone = p.zone().clone();
    let reg_name = registry_name(&zone, &intent.instance_id).map_err(anyhow::Error::msg)?;
    let reg_key = RrKey {
        name: reg_name,
        rtype: crate::record::RType::TXT,
    };
    let desired: BTreeMap<Value, &Record> = intent
        .desired
        .iter()
        .map(|r| (r.value.clone(), r))
        .collect();
    let desired_ttl = intent.desired.iter().map(|r| r.ttl).min().unwrap_or(60);

    let mut keys: BTreeSet<RrKey> = desired
        .keys()
        .map(Value::key)
        .chain(intent.known.iter().map(Value::key))
        .collect();
    keys.insert(reg_key.clone());
    // Values other instances' registries claim; listed at most once per apply.
    let mut others: Option<Values> = None;
    let mut conflicts = 0u32;
    // The last write that was refused as a conflict, and the registry it would
    // have left: its answer may have been lost after it was applied (a timeout,
    // then a retry that the provider refused because the change was already
    // made). Only this instance writes its registry, so finding exactly that
    // registry on the next read means the write did land.
    let mut refused: Option<(Outcome, Values)> = None;
    let backoff = Backoff {
        base: Duration::from_millis(100),
        cap: Duration::from_secs(5),
        attempts: u32::MAX,
    };

    loop {
        let snap = p.read(&keys).await?;
        let registry = p.values(&snap, &reg_key);
        let current_lease = Registry::parse(&registry).lease;
        let mut owned: Values = parse_registry(&registry);
        owned.extend(intent.known.iter().cloned());
        owned.retain(|v| v.name.is_in(&zone));

        // The registry may name rrsets we have not read (an old address's).
        let more: BTreeSet<RrKey> = owned
            .iter()
            .map(Value::key)
            .filter(|k| !keys.contains(k))
            .collect();
        if !more.is_empty() {
            keys.extend(more);
            continue;
        }

        // Desired values already present that we do not own: a person's (leave
        // them alone, never claim them) or another instance's (an address that
        // was released and reused: claim it too, so that neither instance's
        // cleanup removes it while the other still publishes it).
        let present_unowned: Vec<&Value> = desired
            .keys()
            .filter(|v| {
                !intent.leaving && !owned.contains(*v) && p.values(&snap, &v.key()).contains(*v)
            })
            .collect();
        // Values to withdraw: on leave everything owned, on join the old ones.
        // Before removing any, make sure no other instance claims it too.
        let withdraw: Vec<&Value> = owned
            .iter()
            .filter(|v| intent.leaving || !desired.contains_key(*v))
            .collect();
        if (!withdraw.is_empty() || !present_unowned.is_empty()) && others.is_none() {
            let mut all = p.registries().await?;
            if let Ok(me) = crate::plan::instance_label(&intent.instance_id) {
                all.remove(&me);
            }
            others = Some(all.values().flat_map(parse_registry).collect());
        }
        let claimed_by_others = others.clone().unwrap_or_default();
        let protected: Vec<Value> = withdraw
            .iter()
            .filter(|v| claimed_by_others.contains(**v))
            .map(|v| (*v).clone())
            .collect();

        let mut edit = Edit::default();
        let mut outcome = Outcome {
            protected: protected.clone(),
            conflicts,
            ..Outcome::default()
        };
        let mut new_owned = Values::new();
        for key in keys.iter().filter(|k| **k != reg_key) {
            let current = p.values(&snap, key);
            if !intent.leaving {
                for (v, rec) in desired.iter().filter(|(v, _)| v.key() == *key) {
                    if !current.contains(v) {
                        edit.add
                            .entry(key.clone())
                            .or_default()
                            .push((*rec).clone());
                        outcome.added.push(v.clone());
                        new_owned.insert(v.clone());
                    } else if owned.contains(v) || claimed_by_others.contains(v) {
                        new_owned.insert(v.clone());
                    } else {
                        outcome.foreign.push(v.clone());
                    }
                }
            }
            for v in current.iter().filter(|v| owned.contains(*v)) {
                let keep = !intent.leaving && desired.contains_key(v);
                if !keep && !protected.contains(v) {
                    edit.remove.entry(key.clone()).or_default().push(v.clone());
                    outcome.removed.push(v.clone());
                }
            }
        }

        // The registry: rewritten in the same edit, so it is never out of step.
        let mut new_registry: Values = if intent.leaving {
            Values::new()
        } else {
            registry_values(&zone, &intent.instance_id, &new_owned)?
                .into_iter()
                .collect()
        };
        // The lease: kept while more than two thirds of it remain, renewed
        // otherwise; an instance that owns nothing holds none.
        if let (Some(ttl), false) = (intent.lease, new_registry.is_empty()) {
            let now = unix_now();
            let expiry = match current_lease {
                Some(t) if t > now + ttl.as_secs() * 2 / 3 && t <= now + ttl.as_secs() => t,
                _ => now + ttl.as_secs(),
            };
            new_registry.insert(lease_value(&zone, &intent.instance_id, expiry)?);
        }
        let reg_add: Vec<Record> = new_registry
            .difference(&registry)
            .map(|v| Record {
                value: v.clone(),
                ttl: desired_ttl,
            })
            .collect();
        let reg_remove: Vec<Value> = registry.difference(&new_registry).cloned().collect();
        if !reg_add.is_empty() {
            edit.add.insert(reg_key.clone(), reg_add);
        }
        if !reg_remove.is_empty() {
            edit.remove.insert(reg_key.clone(), reg_remove);
        }
        // TTLs: an rrset holding only this instance's values takes the configured
        // TTL (so a changed `ttl` reaches DNS); one shared with others keeps its
        // TTL, which is not ours alone to change; a new one gets ours.
        let configured: BTreeMap<RrKey, u32> = intent
            .desired
            .iter()
            .map(|r| (r.value.key(), r.ttl))
            .chain([(reg_key.clone(), desired_ttl)])
            .collect();
        for key in keys.iter() {
            let current = if *key == reg_key {
                registry.clone()
            } else {
                p.values(&snap, key)
            };
            let removed: Values = edit
                .remove
                .get(key)
                .map(|v| v.iter().cloned().collect())
                .unwrap_or_default();
            let mut after: Values = current.difference(&removed).cloned().collect();
            after.extend(
                edit.add
                    .get(key)
                    .into_iter()
                    .flatten()
                    .map(|r| r.value.clone()),
            );
            let all_ours = after
                .iter()
                .all(|v| new_owned.contains(v) || new_registry.contains(v));
            let (Some(&want), false) = (configured.get(key), after.is_empty()) else {
                continue;
            };
            let now = p.ttl(&snap, key);
            let ttl = match now {
                Some(now) if !all_ours => now,
                _ => want,
            };
            let touched = edit.add.get(key).is_some_and(|v| !v.is_empty())
                || edit.remove.get(key).is_some_and(|v| !v.is_empty());
            if touched || now.is_some_and(|now| now != ttl) {
                edit.ttl.insert(key.clone(), ttl);
            }
        }
        outcome.owned = new_owned;

        if edit.is_empty() {
            if let Some((landed, _)) = refused.filter(|(_, left)| *left == registry) {
                // Report what that write did, not "already published".
                return Ok(Outcome {
                    owned: outcome.owned,
                    conflicts,
                    ..landed
                });
            }
            return Ok(outcome);
        }
        match p.write(&snap, &edit).await {
            Ok(()) => return Ok(outcome),
            Err(WriteError::Failed(e)) => return Err(e),
            Err(WriteError::Conflict(why)) => {
                conflicts += 1;
                refused = (new_registry != registry).then(|| (outcome.clone(), new_registry));
                if started.elapsed() >= intent.deadline {
                    anyhow::bail!(
                        "{}: gave up after {conflicts} conflicting writes in {:?} (other writers kept changing the same rrsets); last: {why}",
                        p.name(),
                        started.elapsed()
                    );
                }
                tracing::debug!(provider = p.name(), conflicts, %why, "conflict, reading again");
                tokio::time::sleep(backoff.delay(conflicts.min(10))).await;
            }
        }
    }
}

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
/// exactly the values its registry lists (and still present), then the
/// registry itself, in one atomic edit per instance. Values another registry
/// also claims stay. Registries without a lease are never touched.
///
/// Safe when several reapers run at once, and against the instance coming back:
/// each edit is conditional on what was read (a conflict reads again), and a
/// registry whose lease was renewed meanwhile is left alone.
pub async fn reap<P: Provider>(p: &P, now: u64, deadline: Duration) -> anyhow::Result<Vec<Reaped>> {
    let started = Instant::now();
    let all = p.registries().await?;
    let parsed: BTreeMap<String, Registry> = all
        .iter()
        .map(|(label, values)| (label.clone(), Registry::parse(values)))
        .collect();
    let mut out = Vec::new();
    let backoff = Backoff {
        base: Duration::from_millis(100),
        cap: Duration::from_secs(5),
        attempts: u32::MAX,
    };
    for (label, registry) in parsed.iter().filter(|(_, r)| r.expired(now)) {
        let claimed_by_others: Values = parsed
            .iter()
            .filter(|(l, r)| *l != label && !r.expired(now))
            .flat_map(|(_, r)| r.owned.iter().cloned())
            .collect();
        let reg_key = RrKey {
            name: registry_name(p.zone(), label).map_err(anyhow::Error::msg)?,
            rtype: crate::record::RType::TXT,
        };
        let mut conflicts = 0u32;
        loop {
            let mut keys: BTreeSet<RrKey> = registry.owned.iter().map(Value::key).collect();
            keys.insert(reg_key.clone());
            let snap = p.read(&keys).await?;
            let current = p.values(&snap, &reg_key);
            let now_reg = Registry::parse(&current);
            // Gone (another reaper was first) or renewed (the instance is back).
            if !now_reg.expired(now) {
                break;
            }
            let mut edit = Edit::default();
            let mut reaped = Reaped {
                instance: label.clone(),
                expired: now_reg.lease.unwrap_or_default(),
                ..Reaped::default()
            };
            for v in &now_reg.owned {
                if !v.name.is_in(p.zone()) {
                    continue;
                }
                if claimed_by_others.contains(v) {
                    reaped.protected.push(v.clone());
                } else if p.values(&snap, &v.key()).contains(v) {
                    edit.remove.entry(v.key()).or_default().push(v.clone());
                    reaped.removed.push(v.clone());
                }
            }
            edit.remove
                .insert(reg_key.clone(), current.iter().cloned().collect());
            match p.write(&snap, &edit).await {
                Ok(()) => {
                    out.push(reaped);
                    break;
                }
                Err(WriteError::Failed(e)) => return Err(e),
                Err(WriteError::Conflict(why)) => {
                    conflicts += 1;
                    if started.elapsed() >= deadline {
                        anyhow::bail!(
                            "{}: gave up reaping {label} after {conflicts} conflicting writes; last: {why}",
                            p.name()
                        );
                    }
                    tokio::time::sleep(backoff.delay(conflicts.min(10))).await;
                }
            }
        }
    }
    Ok(out)
}

/// Whether each desired value is present, for `status`.
pub async fn presence<P: Provider>(
    p: &P,
    desired: &[Record],
) -> anyhow::Result<Vec<(Value, bool)>> {
    let keys: BTreeSet<RrKey> = desired.iter().map(|r| r.value.key()).collect();
    let snap = p.read(&keys).await?;
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

/// Plain http is allowed to loopback stand-ins only: credentials travel over TLS.
pub(crate) fn is_loopback_url(url: &str) -> bool {
    let rest = url.strip_prefix("http://").unwrap_or("");
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::record::RType;

    /// An in-memory zone with versioned rrsets: a write conflicts when any rrset
    /// it touches changed since the snapshot, as Route53's exact DELETE does.
    struct Memory {
        zone: DomainName,
        rrsets: Mutex<BTreeMap<RrKey, (u64, Values)>>,
        /// Before each of the next N writes, another writer adds a value.
        interfere: AtomicU32,
    }

    impl Memory {
        fn new() -> Memory {
            Memory {
                zone: DomainName::new("example.com").unwrap(),
                rrsets: Mutex::default(),
                interfere: AtomicU32::new(0),
            }
        }
        fn put(&self, line: &str) {
            let v = Value::from_line(line).unwrap();
            let mut z = self.rrsets.lock().unwrap();
            let e = z.entry(v.key()).or_default();
            e.0 += 1;
            e.1.insert(v);
        }
        fn lines(&self, name: &str, rtype: RType) -> Vec<String> {
            let key = RrKey {
                name: DomainName::new(name).unwrap(),
                rtype,
            };
            self.rrsets
                .lock()
                .unwrap()
                .get(&key)
                .map(|e| e.1.iter().map(|v| v.data.to_string()).collect())
                .unwrap_or_default()
        }
    }

    impl Provider for Memory {
        type Snapshot = BTreeMap<RrKey, (u64, Values)>;
        fn name(&self) -> &str {
            "memory"
        }
        fn zone(&self) -> &DomainName {
            &self.zone
        }
        async fn connect(&mut self) -> anyhow::Result<()> {
            Ok(())
        }
        async fn read(&self, keys: &BTreeSet<RrKey>) -> anyhow::Result<Self::Snapshot> {
            let z = self.rrsets.lock().unwrap();
            Ok(keys
                .iter()
                .map(|k| (k.clone(), z.get(k).cloned().unwrap_or_default()))
                .collect())
        }
        fn values(&self, snapshot: &Self::Snapshot, key: &RrKey) -> Values {
            snapshot.get(key).map(|e| e.1.clone()).unwrap_or_default()
        }
        fn ttl(&self, _: &Self::Snapshot, _: &RrKey) -> Option<u32> {
            None
        }
        async fn write(&self, snapshot: &Self::Snapshot, edit: &Edit) -> Result<(), WriteError> {
            if self.interfere.load(Ordering::SeqCst) > 0 {
                let n = self.interfere.fetch_sub(1, Ordering::SeqCst);
                self.put(&format!("www.example.com. A 192.0.2.{}", 200 + n % 50));
            }
            let mut z = self.rrsets.lock().unwrap();
            for key in edit.keys() {
                let now = z.get(&key).map_or(0, |e| e.0);
                if now != snapshot.get(&key).map_or(0, |e| e.0) {
                    return Err(WriteError::Conflict(format!("{key} changed")));
                }
            }
            for (key, recs) in &edit.add {
                let e = z.entry(key.clone()).or_default();
                e.0 += 1;
                e.1.extend(recs.iter().map(|r| r.value.clone()));
            }
            for (key, vals) in &edit.remove {
                let e = z.entry(key.clone()).or_default();
                e.0 += 1;
                for v in vals {
                    assert!(e.1.remove(v), "the edit removes only present values");
                }
            }
            Ok(())
        }
        async fn registries(&self) -> anyhow::Result<BTreeMap<String, Values>> {
            let root = crate::plan::registry_root(&self.zone);
            let z = self.rrsets.lock().unwrap();
            Ok(z.iter()
                .filter(|(k, _)| k.name.is_in(&root) && k.name != root)
                .map(|(k, e)| {
                    (
                        k.name.as_str().split('.').next().unwrap().to_string(),
                        e.1.clone(),
                    )
                })
                .collect())
        }
    }

    fn intent(id: &str, lines: &[&str], leaving: bool) -> Intent {
        Intent {
            instance_id: id.into(),
            desired: lines
                .iter()
                .map(|l| Record {
                    value: Value::from_line(l).unwrap(),
                    ttl: 60,
                })
                .collect(),
            leaving,
            known: Values::new(),
            deadline: Duration::from_secs(30),
            lease: None,
        }
    }

    fn lease_of(m: &Memory, id: &str) -> Option<u64> {
        let key = RrKey {
            name: DomainName::new(&format!("{id}._dnsreg.example.com")).unwrap(),
            rtype: RType::TXT,
        };
        let z = m.rrsets.lock().unwrap();
        Registry::parse(&z.get(&key).map(|e| e.1.clone()).unwrap_or_default()).lease
    }

    /// A registry as a crashed instance left it: its values, and a lease line.
    fn dead(m: &Memory, id: &str, lines: &[&str], expiry: u64) {
        for l in lines {
            m.put(l);
            m.put(&format!(
                "{id}._dnsreg.example.com. TXT \"dnsreg1 {}\"",
                l.replace('"', "\\\"")
            ));
        }
        m.put(&format!(
            "{id}._dnsreg.example.com. TXT \"dnsreg1-lease {expiry}\""
        ));
    }

    #[tokio::test]
    async fn a_lease_is_written_kept_while_fresh_and_renewed_after_a_third() {
        let m = Memory::new();
        let mut i = intent("i-1", &MINE, false);
        i.lease = Some(Duration::from_secs(3600));
        apply(&m, &i).await.unwrap();
        let first = lease_of(&m, "i-1").expect("a lease line");
        assert!(first.abs_diff(unix_now() + 3600) <= 2, "{first}");
        // Fresh: a second join writes nothing.
        let again = apply(&m, &i).await.unwrap();
        assert!(!again.changed());
        assert_eq!(lease_of(&m, "i-1"), Some(first));
        // Two thirds left at most: renewed, in the same atomic edit style.
        {
            let key = RrKey {
                name: DomainName::new("i-1._dnsreg.example.com").unwrap(),
                rtype: RType::TXT,
            };
            let mut z = m.rrsets.lock().unwrap();
            let e = z.get_mut(&key).unwrap();
            e.1.retain(|v| !matches!(&v.data, RData::Txt(t) if t[0].starts_with("dnsreg1-lease")));
            e.1.insert(Value {
                name: key.name.clone(),
                data: RData::Txt(vec![format!("dnsreg1-lease {}", unix_now() + 2000)]),
            });
            e.0 += 1;
        }
        apply(&m, &i).await.unwrap();
        assert!(lease_of(&m, "i-1").unwrap() >= unix_now() + 3590);
        // The values are still the same two.
        assert_eq!(m.lines("www.example.com", RType::A), vec!["192.0.2.1"]);
        // Lease turned off: the line goes; leave drops the whole registry.
        i.lease = None;
        apply(&m, &i).await.unwrap();
        assert_eq!(lease_of(&m, "i-1"), None);
        assert_eq!(m.lines("i-1._dnsreg.example.com", RType::TXT).len(), 2);
    }

    #[tokio::test]
    async fn reap_removes_exactly_what_an_expired_registry_lists() {
        let m = Memory::new();
        let now = unix_now();
        m.put("www.example.com. A 192.0.2.99"); // a person's
        dead(
            &m,
            "i-dead",
            &[
                "www.example.com. A 192.0.2.7",
                "www.example.com. A 192.0.2.8",
            ],
            now - 10,
        );
        // A live instance claims .8 too (the address was reused): it stays.
        dead(&m, "i-live", &["www.example.com. A 192.0.2.8"], now + 3600);
        // No lease at all: never reaped.
        let mut j = intent("i-nolease", &["www.example.com. A 192.0.2.5"], false);
        j.lease = None;
        apply(&m, &j).await.unwrap();

        let reaped = reap(&m, now, Duration::from_secs(10)).await.unwrap();
        assert_eq!(reaped.len(), 1);
        assert_eq!(reaped[0].instance, "i-dead");
        assert_eq!(
            reaped[0].removed,
            vec![Value::from_line("www.example.com. A 192.0.2.7").unwrap()]
        );
        assert_eq!(
            reaped[0].protected,
            vec![Value::from_line("www.example.com. A 192.0.2.8").unwrap()]
        );
        assert_eq!(
            m.lines("www.example.com", RType::A),
            vec!["192.0.2.5", "192.0.2.8", "192.0.2.99"]
        );
        assert!(m.lines("i-dead._dnsreg.example.com", RType::TXT).is_empty());
        // Again: nothing left to reap.
        assert!(
            reap(&m, now, Duration::from_secs(10))
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn reapers_racing_each_other_and_writers_reap_once_and_lose_nothing() {
        let m = std::sync::Arc::new(Memory::new());
        let now = unix_now();
        for n in 0..5 {
            dead(
                &m,
                &format!("i-dead{n}"),
                &[&format!("www.example.com. A 192.0.2.{}", 10 + n)],
                now - 1,
            );
        }
        m.interfere.store(4, Ordering::SeqCst);
        let runs = (0..4).map(|_| {
            let m = m.clone();
            tokio::spawn(async move { reap(&*m, now, Duration::from_secs(30)).await.unwrap() })
        });
        let mut total = 0;
        for r in runs {
            total += r.await.unwrap().len();
        }
        // Every dead instance reaped by exactly one reaper; the other writers' values stay.
        assert_eq!(total, 5);
        let left = m.lines("www.example.com", RType::A);
        assert!(left.iter().all(|v| v.starts_with("192.0.2.2")), "{left:?}");
        assert_eq!(left.len(), 4, "{left:?}");
    }

    const MINE: [&str; 2] = [
        "www.example.com. A 192.0.2.1",
        "_a._tcp.example.com. SRV 0 0 80 h1.example.com.",
    ];

    #[tokio::test]
    async fn join_adds_and_registers_then_changes_nothing() {
        let m = Memory::new();
        let o = apply(&m, &intent("i-1", &MINE, false)).await.unwrap();
        assert_eq!(o.added.len(), 2);
        assert_eq!(o.owned.len(), 2);
        assert_eq!(m.lines("i-1._dnsreg.example.com", RType::TXT).len(), 2);
        let again = apply(&m, &intent("i-1", &MINE, false)).await.unwrap();
        assert!(!again.changed());
        assert_eq!(again.owned, o.owned);
    }

    #[tokio::test]
    async fn leave_removes_only_what_is_owned() {
        let m = Memory::new();
        m.put("www.example.com. A 192.0.2.99");
        apply(&m, &intent("i-1", &MINE, false)).await.unwrap();
        let o = apply(&m, &intent("i-1", &MINE, true)).await.unwrap();
        assert_eq!(o.removed.len(), 2);
        assert_eq!(m.lines("www.example.com", RType::A), vec!["192.0.2.99"]);
        assert!(m.lines("i-1._dnsreg.example.com", RType::TXT).is_empty());
        // Leaving with nothing owned touches nothing.
        let o = apply(&m, &intent("i-1", &MINE, true)).await.unwrap();
        assert!(!o.changed());
    }

    #[tokio::test]
    async fn conflicts_are_resolved_by_reading_again_without_losing_the_other_writer() {
        let m = Memory::new();
        m.interfere.store(3, Ordering::SeqCst);
        let o = apply(&m, &intent("i-1", &MINE, false)).await.unwrap();
        assert_eq!(o.conflicts, 3);
        assert_eq!(
            m.lines("www.example.com", RType::A),
            vec!["192.0.2.1", "192.0.2.201", "192.0.2.202", "192.0.2.203"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn endless_conflicts_give_up_at_the_deadline() {
        let m = Memory::new();
        m.interfere.store(u32::MAX, Ordering::SeqCst);
        let mut i = intent("i-1", &MINE, false);
        i.deadline = Duration::from_secs(3);
        let e = apply(&m, &i).await.unwrap_err().to_string();
        assert!(
            e.contains("gave up after") && e.contains("conflicting writes"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn old_values_from_the_state_file_are_removed_unless_someone_claims_them() {
        let m = Memory::new();
        m.put("www.example.com. A 192.0.2.7");
        apply(&m, &intent("i-2", &["www.example.com. A 192.0.2.8"], false))
            .await
            .unwrap();
        let mut i = intent("i-1", &MINE, false);
        i.known = [
            "www.example.com. A 192.0.2.7",
            "www.example.com. A 192.0.2.8",
        ]
        .iter()
        .map(|l| Value::from_line(l).unwrap())
        .collect();
        let o = apply(&m, &i).await.unwrap();
        assert_eq!(
            o.removed,
            vec![Value::from_line("www.example.com. A 192.0.2.7").unwrap()]
        );
        assert_eq!(
            o.protected,
            vec![Value::from_line("www.example.com. A 192.0.2.8").unwrap()]
        );
        assert_eq!(
            m.lines("www.example.com", RType::A),
            vec!["192.0.2.1", "192.0.2.8"]
        );
    }

    #[test]
    fn registry_lines_round_trip() {
        let zone = DomainName::new("example.com").unwrap();
        let owned: Values = MINE.iter().map(|l| Value::from_line(l).unwrap()).collect();
        let reg: Values = registry_values(&zone, "i-1", &owned)
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(parse_registry(&reg), owned);
    }
}
