//! The ownership rules against an in-memory provider whose writes are
//! conditional on values, as Route53's exact DELETE is (or, keeping claims by
//! name, on the ownership rrsets alone, as dnsreg's RFC 2136 UPDATEs are):
//! unit tests of each rule, and a randomized interleaving of many instances
//! joining, leaving, crashing and a person editing, checking after every
//! write that nothing is lost, clobbered or left unowned.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use super::*;
use crate::provider::{KnownZone, Written};
use crate::record::{RData, by_key};
use crate::registry::unix_now;
use crate::retry::Pacer;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Set {
    values: Values,
    ttl: Option<u32>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Snap {
    #[serde(with = "by_key")]
    sets: BTreeMap<RrKey, Set>,
}

type Check = Box<dyn Fn(&BTreeMap<RrKey, Set>) -> Result<(), String> + Send + Sync>;

/// What the provider was asked to do.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    /// Requests refused by the rate limit (not in the counts below).
    throttled: u32,
    reads: u32,
    /// Rrsets read, over all reads.
    rrsets_read: u32,
    writes: u32,
    conflicts: u32,
    lists: u32,
}

/// An in-memory zone. A write applies only if every rrset it touches holds
/// exactly the values (and TTL) of the snapshot, as Route53's DELETE demands.
struct Memory {
    zone: DomainName,
    /// Behaves like Route53 multivalue: each instance's rrsets are its own.
    apart: bool,
    /// Listing the registries is as cheap as a read (waiters elect a carrier).
    lists: bool,
    /// Behaves like RFC 2136 with claims kept by name: a write is conditional
    /// only on the ownership rrsets it touches; values are added and removed
    /// one by one (adding one present, or removing one absent, does nothing).
    by_name: bool,
    /// A read costs a request per rrset, as on Route53 once the zone is
    /// larger than one page of a listing.
    per_rrset: bool,
    /// Shared by the handles of one fleet (see [`Memory::peer`]).
    sets: Arc<Mutex<BTreeMap<RrKey, Set>>>,
    /// This handle's pacer: one per process, as each agent has its own.
    pacer: Pacer,
    /// The account's rate limit, shared by a fleet's handles: a request
    /// with no token left is refused as busy (and costs no token).
    bucket: Option<Arc<Mutex<Bucket>>>,
    /// Before each of the next N writes, another writer adds a value.
    interfere: AtomicU32,
    /// Each call first sleeps a random while (paused clock): interleavings.
    jitter: Option<Mutex<StdRng>>,
    /// Run after every applied write, under the lock.
    check: Option<Check>,
    counts: Arc<Mutex<Counts>>,
    /// This handle's requests under a rate limit: (accepted, throttled).
    mine: Mutex<(u32, u32)>,
}

/// Route53's account limit: `burst` requests at once, refilled at `rate`
/// per second.
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: tokio::time::Instant,
}

impl Bucket {
    fn new(rate: f64, burst: f64) -> Bucket {
        Bucket {
            rate,
            burst,
            tokens: burst,
            at: tokio::time::Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        self.tokens = (self.tokens + (now - self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Memory {
    fn new() -> Memory {
        Memory {
            zone: DomainName::new("example.com").unwrap(),
            apart: false,
            lists: false,
            by_name: false,
            per_rrset: false,
            sets: Arc::default(),
            pacer: Pacer::new(Backoff::BUSY),
            bucket: None,
            interfere: AtomicU32::new(0),
            jitter: None,
            check: None,
            counts: Arc::default(),
            mine: Mutex::default(),
        }
    }

    /// Another process's handle on the same zone, counts and rate limit,
    /// with a pacer of its own.
    fn peer(&self) -> Memory {
        Memory {
            zone: self.zone.clone(),
            apart: self.apart,
            lists: self.lists,
            by_name: self.by_name,
            per_rrset: self.per_rrset,
            sets: self.sets.clone(),
            pacer: Pacer::new(Backoff::BUSY),
            bucket: self.bucket.clone(),
            interfere: AtomicU32::new(0),
            jitter: None,
            check: None,
            counts: self.counts.clone(),
            mine: Mutex::default(),
        }
    }

    /// Where a rate limit is set: waits on this handle's pacer, then takes a
    /// token or is refused as busy, and tells the pacer, as a provider does.
    async fn admit(&self) -> Result<(), Fail> {
        let Some(bucket) = &self.bucket else {
            return Ok(());
        };
        self.pacer.ready().await;
        if bucket.lock().unwrap().take() {
            self.mine.lock().unwrap().0 += 1;
            self.pacer.ok();
            Ok(())
        } else {
            self.counts.lock().unwrap().throttled += 1;
            self.mine.lock().unwrap().1 += 1;
            let why = "Throttling: Rate exceeded".to_string();
            self.pacer.busy(&why, None);
            Err(Fail::Busy {
                why,
                retry_after: None,
            })
        }
    }

    fn put(&self, line: &str) {
        let v = Value::from_line(line).unwrap();
        let mut z = self.sets.lock().unwrap();
        let e = z.entry(v.key()).or_default();
        e.values.insert(v);
        e.ttl.get_or_insert(60);
    }

    fn take(&self, v: &Value) {
        let mut z = self.sets.lock().unwrap();
        if let Some(e) = z.get_mut(&v.key()) {
            e.values.remove(v);
            if e.values.is_empty() {
                z.remove(&v.key());
            }
        }
    }

    fn lines(&self, name: &str, rtype: RType) -> Vec<String> {
        let key = RrKey {
            name: DomainName::new(name).unwrap(),
            rtype,
        };
        self.sets
            .lock()
            .unwrap()
            .get(&key)
            .map(|e| e.values.iter().map(|v| v.data.to_string()).collect())
            .unwrap_or_default()
    }

    fn counts(&self) -> Counts {
        *self.counts.lock().unwrap()
    }

    async fn pause(&self) {
        let wait = self
            .jitter
            .as_ref()
            .map(|r| r.lock().unwrap().random_range(0..40u64));
        if let Some(ms) = wait {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
}

impl Provider for Memory {
    type Snapshot = Snap;

    fn name(&self) -> &str {
        "memory"
    }
    fn zone(&self) -> &DomainName {
        &self.zone
    }
    async fn connect(&mut self, _: Option<&KnownZone>) -> anyhow::Result<()> {
        Ok(())
    }
    fn pacer(&self) -> &Pacer {
        &self.pacer
    }
    fn keeps_apart(&self) -> bool {
        self.apart
    }
    fn lists_cheaply(&self) -> bool {
        self.lists
    }
    fn reads_rrset_by_rrset(&self) -> bool {
        self.per_rrset
    }
    fn claims_by_name(&self) -> bool {
        self.by_name
    }
    fn rewrites_rrsets(&self) -> bool {
        !self.by_name
    }
    async fn check(&self, snapshot: &Snap, keys: &BTreeSet<RrKey>) -> Result<Option<bool>, Fail> {
        if !self.apart || keys.iter().any(|k| self.values(snapshot, k).is_empty()) {
            return Ok(None);
        }
        self.pause().await;
        self.admit().await?;
        self.counts.lock().unwrap().writes += 1;
        let z = self.sets.lock().unwrap();
        Ok(Some(keys.iter().all(|k| {
            z.get(k).cloned().unwrap_or_default()
                == snapshot.sets.get(k).cloned().unwrap_or_default()
        })))
    }
    async fn read(&self, keys: &BTreeSet<RrKey>) -> Result<Snap, Fail> {
        self.pause().await;
        let requests = if self.per_rrset { keys.len().max(1) } else { 1 };
        for _ in 0..requests {
            self.admit().await?;
            self.counts.lock().unwrap().reads += 1;
        }
        self.counts.lock().unwrap().rrsets_read += u32::try_from(keys.len()).unwrap();
        let z = self.sets.lock().unwrap();
        Ok(Snap {
            sets: keys
                .iter()
                .map(|k| (k.clone(), z.get(k).cloned().unwrap_or_default()))
                .collect(),
        })
    }
    fn presume(
        &self,
        memory: &Snap,
        keys: &BTreeSet<RrKey>,
        shared: &BTreeSet<RrKey>,
        owned: &Values,
    ) -> Option<(Snap, BTreeSet<RrKey>)> {
        let mut out = Snap::default();
        let mut rest = BTreeSet::new();
        let ownership = registry::root(&self.zone);
        for k in keys {
            if self.by_name {
                // As the RFC 2136 provider does: the ownership rrsets as
                // remembered, this instance's own values in the others.
                let kept = memory.sets.get(k);
                if k.name.is_in(&ownership) {
                    out.sets
                        .insert(k.clone(), kept.cloned().unwrap_or_default());
                } else if let Some(set) = kept {
                    let values: Values = set.values.intersection(owned).cloned().collect();
                    let ttl = set.ttl.filter(|_| !values.is_empty());
                    out.sets.insert(k.clone(), Set { values, ttl });
                } else {
                    rest.insert(k.clone());
                }
            } else if self.apart || !shared.contains(k) {
                out.sets
                    .insert(k.clone(), memory.sets.get(k).cloned().unwrap_or_default());
            } else {
                rest.insert(k.clone());
            }
        }
        Some((out, rest))
    }
    fn applied(&self, snapshot: &Snap, edit: &Edit) -> Option<Snap> {
        let mut after = snapshot.clone();
        for key in edit.keys() {
            let set = after.sets.entry(key.clone()).or_default();
            for v in edit.remove.get(&key).into_iter().flatten() {
                set.values.remove(v);
            }
            for r in edit.add.get(&key).into_iter().flatten() {
                set.values.insert(r.value.clone());
            }
            if let Some(t) = edit.ttl.get(&key) {
                set.ttl = Some(*t);
            }
            if set.values.is_empty() {
                *set = Set::default();
            } else {
                set.ttl.get_or_insert(60);
            }
        }
        Some(after)
    }
    fn merge(&self, snapshot: &mut Snap, more: Snap) {
        for (k, v) in more.sets {
            snapshot.sets.entry(k).or_insert(v);
        }
    }
    fn values(&self, snapshot: &Snap, key: &RrKey) -> Values {
        snapshot
            .sets
            .get(key)
            .map(|e| e.values.clone())
            .unwrap_or_default()
    }
    fn ttl(&self, snapshot: &Snap, key: &RrKey) -> Option<u32> {
        snapshot.sets.get(key).and_then(|e| e.ttl)
    }
    async fn write(&self, snapshot: &Snap, edit: &Edit) -> Result<Written<Snap>, Fail> {
        self.pause().await;
        self.admit().await?;
        if self.interfere.load(Ordering::SeqCst) > 0 {
            let n = self.interfere.fetch_sub(1, Ordering::SeqCst);
            self.put(&format!("www.example.com. A 192.0.2.{}", 200 + n % 50));
        }
        let mut z = self.sets.lock().unwrap();
        self.counts.lock().unwrap().writes += 1;
        let touched = edit.keys();
        let ownership = registry::root(&self.zone);
        let guarded = |k: &&RrKey| !self.by_name || k.name.is_in(&ownership);
        for key in touched.iter().chain(edit.guard.iter()).filter(guarded) {
            let now = z.get(key).cloned().unwrap_or_default();
            let then = snapshot.sets.get(key).cloned().unwrap_or_default();
            if now != then {
                self.counts.lock().unwrap().conflicts += 1;
                return Err(Fail::Conflict(format!("{key} changed")));
            }
        }
        let mut after = snapshot.clone();
        for key in &touched {
            let mut set = z.get(key).cloned().unwrap_or_default();
            let strict = guarded(&key);
            for v in edit.remove.get(key).into_iter().flatten() {
                assert!(
                    set.values.remove(v) || !strict,
                    "the edit removes only present values: {v}"
                );
            }
            for r in edit.add.get(key).into_iter().flatten() {
                assert!(
                    set.values.insert(r.value.clone()) || !strict,
                    "the edit adds only absent values: {}",
                    r.value
                );
            }
            if let Some(t) = edit.ttl.get(key) {
                set.ttl = Some(*t);
            }
            if set.values.is_empty() {
                z.remove(key);
                after.sets.insert(key.clone(), Set::default());
            } else {
                set.ttl.get_or_insert(60);
                z.insert(key.clone(), set.clone());
                after.sets.insert(key.clone(), set);
            }
        }
        if let Some(check) = &self.check
            && let Err(broken) = check(&z)
        {
            return Err(Fail::permanent(format!(
                "invariant broken by this write:\n{edit}{broken}"
            )));
        }
        Ok(Written {
            after,
            change: None,
        })
    }
    async fn registries(&self) -> Result<(BTreeMap<String, Values>, Snap), Fail> {
        self.pause().await;
        self.admit().await?;
        self.counts.lock().unwrap().lists += 1;
        let z = self.sets.lock().unwrap();
        let mut map = BTreeMap::new();
        let mut snap = Snap::default();
        for (k, e) in z.iter() {
            if let Some(label) = registry::label_of(&k.name, &self.zone) {
                map.insert(label, e.values.clone());
                snap.sets.insert(k.clone(), e.clone());
            }
        }
        Ok((map, snap))
    }
}

/// With `DNSREG_TRACE` set, the test's debug log is printed (with
/// `--nocapture`): what each instance read, wrote and waited for.
fn trace_if_asked() {
    if std::env::var_os("DNSREG_TRACE").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("dnsreg=debug")
            .with_test_writer()
            .try_init();
    }
}

fn value(line: &str) -> Value {
    Value::from_line(line).unwrap()
}

fn intent(id: &str, lines: &[&str], leaving: bool) -> Intent {
    let desired: Vec<Record> = lines
        .iter()
        .map(|l| Record {
            value: value(l),
            ttl: 60,
        })
        .collect();
    Intent {
        instance_id: id.into(),
        // Round-robin names and SRV rrsets are shared; hosts (h*, or named
        // for the instance, i-*) are not.
        exclusive: desired
            .iter()
            .map(|r| r.value.key())
            .filter(|k| k.name.as_str().starts_with('h') || k.name.as_str().starts_with("i-"))
            .collect(),
        desired: if leaving { Vec::new() } else { desired },
        leaving,
        known: Values::new(),
        memory: None,
        deadline: Duration::from_secs(30),
        lease: None,
        checkpoint: Checkpoint::default(),
    }
}

fn registry_of(m: &Memory, id: &str) -> Registry {
    let key = RrKey {
        name: registry::name(&m.zone, id).unwrap(),
        rtype: RType::TXT,
    };
    let z = m.sets.lock().unwrap();
    Registry::parse(&z.get(&key).map(|e| e.values.clone()).unwrap_or_default())
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
async fn a_shared_rrset_keeps_its_ttl_and_one_of_our_own_takes_ours() {
    // A person's value at www with a TTL of 600; the instance publishes www
    // and its host h1 with 60. www is shared: its TTL is not the instance's
    // to change; h1 is the instance's alone.
    let m = Memory::new();
    m.put("www.example.com. A 192.0.2.99");
    let www = RrKey {
        name: DomainName::new("www.example.com").unwrap(),
        rtype: RType::A,
    };
    m.sets.lock().unwrap().get_mut(&www).unwrap().ttl = Some(600);
    let lines = [
        "www.example.com. A 192.0.2.1",
        "h1.example.com. A 192.0.2.1",
    ];
    apply(&m, &intent("i-1", &lines, false)).await.unwrap();
    let ttl = |name: &str, rtype: RType| {
        let key = RrKey {
            name: DomainName::new(name).unwrap(),
            rtype,
        };
        m.sets.lock().unwrap().get(&key).and_then(|s| s.ttl)
    };
    assert_eq!(m.lines("www.example.com", RType::A).len(), 2);
    assert_eq!(ttl("www.example.com", RType::A), Some(600));
    assert_eq!(ttl("h1.example.com", RType::A), Some(60));
    apply(&m, &intent("i-1", &lines, true)).await.unwrap();
    assert_eq!(m.lines("www.example.com", RType::A), vec!["192.0.2.99"]);
    assert_eq!(ttl("www.example.com", RType::A), Some(600));
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
async fn a_value_already_there_is_a_persons_and_never_claimed() {
    let m = Memory::new();
    m.put("www.example.com. A 192.0.2.1");
    let o = apply(&m, &intent("i-1", &MINE, false)).await.unwrap();
    assert_eq!(o.foreign, vec![value("www.example.com. A 192.0.2.1")]);
    assert!(
        !registry_of(&m, "i-1")
            .owned
            .contains(&value("www.example.com. A 192.0.2.1"))
    );
    apply(&m, &intent("i-1", &MINE, true)).await.unwrap();
    assert_eq!(m.lines("www.example.com", RType::A), vec!["192.0.2.1"]);
}

#[tokio::test]
async fn conflicts_are_resolved_by_reading_again_without_losing_the_other_writer() {
    let m = Memory::new();
    m.interfere.store(3, Ordering::SeqCst);
    let o = apply(&m, &intent("i-1", &MINE, false)).await.unwrap();
    assert!(o.conflicts >= 1);
    let www = m.lines("www.example.com", RType::A);
    assert!(www.contains(&"192.0.2.1".to_string()), "{www:?}");
    assert_eq!(www.len(), 4, "{www:?}");
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
async fn values_only_the_state_file_names_are_never_removed() {
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
    .map(|l| value(l))
    .collect();
    // A stale or tampered state file: .7 is a person's (no registry claims
    // it), .8 is i-2's. Neither is this instance's to remove.
    let o = apply(&m, &i).await.unwrap();
    assert!(o.removed.is_empty(), "{:?}", o.removed);
    assert_eq!(
        m.lines("www.example.com", RType::A),
        vec!["192.0.2.1", "192.0.2.7", "192.0.2.8"]
    );
    let mut leave = intent("i-1", &MINE, true);
    leave.known = i.known.clone();
    let o = apply(&m, &leave).await.unwrap();
    let mut own: Vec<Value> = MINE.iter().map(|l| value(l)).collect();
    own.sort();
    assert_eq!(o.removed, own, "only its own");
    assert_eq!(
        m.lines("www.example.com", RType::A),
        vec!["192.0.2.7", "192.0.2.8"]
    );
}

#[tokio::test]
async fn a_lease_is_written_kept_while_fresh_and_renewed_after_a_third() {
    let m = Memory::new();
    let mut i = intent("i-1", &MINE, false);
    i.lease = Some(Duration::from_secs(3600));
    apply(&m, &i).await.unwrap();
    let first = registry_of(&m, "i-1").lease.expect("a lease line");
    assert!(first.abs_diff(unix_now() + 3600) <= 2, "{first}");
    // Fresh: a second join writes nothing.
    let again = apply(&m, &i).await.unwrap();
    assert!(!again.changed());
    assert_eq!(registry_of(&m, "i-1").lease, Some(first));
    let set_lease = |expiry: u64| {
        let key = RrKey {
            name: DomainName::new("i-1._dnsreg.example.com").unwrap(),
            rtype: RType::TXT,
        };
        let mut z = m.sets.lock().unwrap();
        let e = z.get_mut(&key).unwrap();
        e.values
            .retain(|v| !matches!(&v.data, RData::Txt(t) if t[0].starts_with("dnsreg1-lease")));
        e.values.insert(Value {
            name: key.name.clone(),
            data: RData::Txt(vec![format!("dnsreg1-lease {expiry}")]),
        });
    };
    // More than two thirds left, though not the whole: kept as it is.
    let kept = unix_now() + 3000;
    set_lease(kept);
    apply(&m, &i).await.unwrap();
    assert_eq!(registry_of(&m, "i-1").lease, Some(kept));
    // Two thirds left at most: renewed.
    set_lease(unix_now() + 2000);
    apply(&m, &i).await.unwrap();
    assert!(registry_of(&m, "i-1").lease.unwrap() >= unix_now() + 3590);
    assert_eq!(m.lines("www.example.com", RType::A), vec!["192.0.2.1"]);
    // Lease turned off: the line goes.
    i.lease = None;
    apply(&m, &i).await.unwrap();
    assert_eq!(registry_of(&m, "i-1").lease, None);
    assert_eq!(m.lines("i-1._dnsreg.example.com", RType::TXT).len(), 2);
}

#[tokio::test]
async fn reap_removes_only_what_is_still_there_of_what_an_expired_registry_lists() {
    // A dead instance's registry lists .7 and .9; someone deleted .9 by hand
    // since. The reap removes .7 and the registry, and says nothing of .9.
    let m = Memory::new();
    let now = unix_now();
    dead(
        &m,
        "i-dead",
        &[
            "www.example.com. A 192.0.2.7",
            "www.example.com. A 192.0.2.9",
        ],
        now - 10,
    );
    m.take(&value("www.example.com. A 192.0.2.9"));
    let reaped = reap(&m, now, Duration::from_secs(10)).await.unwrap();
    assert_eq!(reaped.len(), 1);
    assert_eq!(
        reaped[0].removed,
        vec![value("www.example.com. A 192.0.2.7")]
    );
    assert!(m.lines("www.example.com", RType::A).is_empty());
    assert!(m.lines("i-dead._dnsreg.example.com", RType::TXT).is_empty());
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
    apply(
        &m,
        &intent("i-nolease", &["www.example.com. A 192.0.2.5"], false),
    )
    .await
    .unwrap();

    let reaped = reap(&m, now, Duration::from_secs(10)).await.unwrap();
    assert_eq!(reaped.len(), 1);
    assert_eq!(reaped[0].instance, "i-dead");
    assert_eq!(
        reaped[0].removed,
        vec![value("www.example.com. A 192.0.2.7")]
    );
    assert_eq!(
        reaped[0].protected,
        vec![value("www.example.com. A 192.0.2.8")]
    );
    assert_eq!(
        m.lines("www.example.com", RType::A),
        vec!["192.0.2.5", "192.0.2.8", "192.0.2.99"]
    );
    assert!(m.lines("i-dead._dnsreg.example.com", RType::TXT).is_empty());
    assert!(
        reap(&m, now, Duration::from_secs(10))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn reapers_racing_each_other_and_writers_reap_once_and_lose_nothing() {
    let m = Arc::new(Memory::new());
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
    let runs = (0..4)
        .map(|_| {
            let m = m.clone();
            tokio::spawn(async move { reap(&*m, now, Duration::from_secs(30)).await.unwrap() })
        })
        .collect::<Vec<_>>();
    let mut total = 0;
    for r in runs {
        total += r.await.unwrap().len();
    }
    assert_eq!(total, 5);
    let left = m.lines("www.example.com", RType::A);
    assert!(left.iter().all(|v| v.starts_with("192.0.2.2")), "{left:?}");
    assert_eq!(left.len(), 4, "{left:?}");
}

#[tokio::test]
async fn apart_a_join_and_a_leave_are_one_write_each_from_memory() {
    let mut m = Memory::new();
    m.apart = true;
    let mut i = intent("i-1", &MINE, false);
    let o = apply(&m, &i).await.unwrap();
    assert_eq!(
        (m.counts().reads, m.counts().writes),
        (0, 1),
        "the first join only writes"
    );
    i.memory = o.memory.clone();
    i.known = o.owned.clone();
    // A reconcile from memory: one write that changes nothing but checks
    // that what is remembered is still there; no read.
    let o = apply(&m, &i).await.unwrap();
    assert!(!o.changed());
    assert_eq!((m.counts().reads, m.counts().writes), (0, 2));
    // Leave from memory: one write, no read, no listing.
    let mut leave = intent("i-1", &MINE, true);
    leave.memory = o.memory.clone();
    leave.known = o.owned.clone();
    let o = apply(&m, &leave).await.unwrap();
    assert_eq!(o.removed.len(), 2);
    let c = m.counts();
    assert_eq!((c.reads, c.writes, c.lists), (0, 3, 0), "{c:?}");
    assert!(m.sets.lock().unwrap().is_empty());
}

/// Claims kept by name (RFC 2136): a join reads the record rrsets and
/// writes once, claims presumed absent; a leave from memory is one write and
/// no read at all.
#[tokio::test]
async fn by_name_a_join_reads_the_records_only_and_a_leave_is_one_write() {
    let mut m = Memory::new();
    m.by_name = true;
    let mut i = intent("i-1", &MINE, false);
    let o = apply(&m, &i).await.unwrap();
    assert_eq!(o.added.len(), 2);
    let c = m.counts();
    assert_eq!((c.reads, c.writes, c.lists), (1, 1, 0), "{c:?}");
    // The two record rrsets; neither claim nor the registry (a machine's
    // first join in a fleet asks nothing it is not publishing into).
    assert_eq!(c.rrsets_read, 2, "{c:?}");
    i.memory = o.memory.clone();
    i.known = o.owned.clone();
    let mut leave = intent("i-1", &MINE, true);
    leave.memory = o.memory;
    leave.known = o.owned;
    let o = apply(&m, &leave).await.unwrap();
    assert_eq!(o.removed.len(), 2);
    let c = m.counts();
    assert_eq!((c.reads, c.writes, c.lists), (1, 2, 0), "{c:?}");
    assert!(
        m.sets.lock().unwrap().is_empty(),
        "values, claims, registry: all gone"
    );
}

/// Claims kept by name: a new instance given an address another instance
/// publishes claims the value too; a claim presumed absent from an empty
/// memory must not make it take the value for a person's.
#[tokio::test]
async fn by_name_an_address_published_by_another_instance_is_claimed_too() {
    let mut m = Memory::new();
    m.by_name = true;
    apply(&m, &intent("i-1", &MINE, false)).await.unwrap();
    // With a host record of its own to add, so that the join writes.
    let theirs = [MINE[0], "h2.example.com. A 192.0.2.1"];
    let o = apply(&m, &intent("i-2", &theirs, false)).await.unwrap();
    assert!(o.foreign.is_empty(), "{o:?}");
    assert!(registry_of(&m, "i-2").owned.contains(&value(MINE[0])));
    // i-1 leaves: the value stays for i-2; then i-2 leaves: it goes.
    let o = apply(&m, &intent("i-1", &MINE, true)).await.unwrap();
    assert_eq!(o.protected, vec![value(MINE[0])]);
    assert_eq!(m.lines("www.example.com", RType::A), vec!["192.0.2.1"]);
    apply(&m, &intent("i-2", &theirs, true)).await.unwrap();
    assert!(m.sets.lock().unwrap().is_empty());
}

/// Claims kept by name: a claim remembered wrong (another instance claimed
/// the value since) is refused by the write's prerequisite, read, and the
/// value stays for the other.
#[tokio::test]
async fn by_name_a_leave_from_a_stale_memory_never_removes_a_value_claimed_since() {
    let mut m = Memory::new();
    m.by_name = true;
    let o = apply(&m, &intent("i-1", &MINE, false)).await.unwrap();
    apply(&m, &intent("i-2", &MINE[..1], false)).await.unwrap();
    let mut leave = intent("i-1", &MINE, true);
    leave.memory = o.memory;
    leave.known = o.owned;
    let o = apply(&m, &leave).await.unwrap();
    assert_eq!(o.conflicts, 1, "{o:?}");
    assert_eq!(o.protected, vec![value(MINE[0])]);
    assert_eq!(m.lines("www.example.com", RType::A), vec!["192.0.2.1"]);
}

#[tokio::test]
async fn a_wrong_memory_costs_a_refused_write_and_a_read_never_a_wrong_write() {
    let mut m = Memory::new();
    m.apart = true;
    let o = apply(&m, &intent("i-1", &MINE, false)).await.unwrap();
    // Someone deleted this instance's SRV behind its back.
    m.take(&value(MINE[1]));
    let mut leave = intent("i-1", &MINE, true);
    leave.memory = o.memory;
    leave.known = o.owned;
    let o = apply(&m, &leave).await.unwrap();
    assert_eq!(o.conflicts, 1);
    assert_eq!(o.removed, vec![value(MINE[0])]);
    assert!(m.sets.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_fleet_at_once_converges_with_writes_in_proportion_to_its_size() {
    let mut m = Memory::new();
    m.jitter = Some(Mutex::new(StdRng::seed_from_u64(7)));
    m.lists = true;
    let m = Arc::new(m);
    let n = 40;
    let joins = (0..n)
        .map(|k| {
            let m = m.clone();
            tokio::spawn(async move {
                let lines = [
                    format!("www.example.com. A 192.0.2.{}", k + 1),
                    format!("h{k}.example.com. A 192.0.2.{}", k + 1),
                ];
                let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
                let mut i = intent(&format!("i-{k}"), &refs, false);
                i.deadline = Duration::from_secs(600);
                apply(&*m, &i).await.unwrap()
            })
        })
        .collect::<Vec<_>>();
    let mut by_peers = 0;
    for j in joins {
        by_peers += j.await.unwrap().by_peers;
    }
    assert_eq!(m.lines("www.example.com", RType::A).len(), n);
    for k in 0..n {
        let r = registry_of(&m, &format!("i-{k}"));
        assert_eq!(r.owned.len(), 2, "i-{k}: {r:?}");
        assert!(r.wanted.is_empty() && r.dropped.is_empty());
    }
    let c = m.counts();
    eprintln!("fleet of {n}: {c:?}, carried for {by_peers}");
    // Every instance races at first; the ones that lose announce and most
    // are then carried by a peer's write: far fewer than N rounds of N.
    assert!(by_peers > 0, "nobody was carried by a peer");
    assert!(
        (c.writes as usize) < 6 * n,
        "{} writes for {n} instances ({c:?})",
        c.writes
    );
}

/// `id` announces the removal of `line`, as a leaving instance's own write
/// does: its registry's owned line becomes a drop line.
fn announce_drop(m: &Memory, id: &str, line: &str) {
    let reg = |prefix: &str| {
        value(&format!(
            "{id}._dnsreg.example.com. TXT \"{prefix} {}\"",
            line.replace('"', "\\\"")
        ))
    };
    m.take(&reg("dnsreg1"));
    m.put(&format!(
        "{id}._dnsreg.example.com. TXT \"dnsreg1-drop {}\"",
        line.replace('"', "\\\"")
    ));
}

#[tokio::test(start_paused = true)]
async fn a_leave_that_carries_hands_a_value_another_instance_wants_over_to_it() {
    // i-1 publishes www 192.0.2.5; i-2, at the same address, announced that
    // it wants that value too. i-1 leaves on a throttled provider (so it
    // announces, looks, and carries): the value stays, now i-2's, and i-1
    // does not report it removed.
    trace_if_asked();
    let mut m = Memory::new();
    m.lists = true;
    let m = Arc::new(m);
    let v = "www.example.com. A 192.0.2.5";
    let joined = apply(&*m, &intent("i-1", &[v], false)).await.unwrap();
    m.put(&format!(
        "i-2._dnsreg.example.com. TXT \"dnsreg1-want {v}\""
    ));
    let mut leave = intent("i-1", &[v], true);
    leave.known = joined.owned.clone();
    leave.memory = joined.memory.clone();
    leave.deadline = Duration::from_secs(60);
    m.pacer
        .busy("Throttling: Rate exceeded", Some(Duration::from_millis(1)));
    let read_before = m.counts().rrsets_read;
    let out = apply(&*m, &leave).await.unwrap();
    // Only the shared rrset is read, to carry: its registry is as its look
    // listed it, its own rrsets as its announcement left them.
    assert_eq!(m.counts().rrsets_read - read_before, 1, "{:?}", m.counts());
    assert_eq!(m.lines("www.example.com", RType::A), vec!["192.0.2.5"]);
    assert!(
        registry_of(&m, "i-2").owned.contains(&value(v)),
        "{:?}",
        m.sets.lock().unwrap()
    );
    assert!(registry_of(&m, "i-2").wanted.is_empty());
    assert!(m.lines("i-1._dnsreg.example.com", RType::TXT).is_empty());
    assert!(out.removed.is_empty(), "handed over, not removed: {out:?}");
}

#[tokio::test(start_paused = true)]
async fn a_leaving_carrier_stays_to_carry_those_who_announce_after_it() {
    // A scale-in of three sharing www, with a person's value there too, on
    // a provider that throttles (so a leave announces rather than race): i-2
    // announced its removal before i-1 leaves; i-3 announces only after
    // i-1's carrying write, and then nobody else writes. i-1 announces, is
    // first in line, carries i-2, and stays to carry i-3 too.
    let mut m = Memory::new();
    m.lists = true;
    let m = Arc::new(m);
    m.put("www.example.com. A 192.0.2.250");
    let line = |k: u32| format!("www.example.com. A 192.0.2.{k}");
    let mut last = None;
    for k in [2, 3, 1] {
        last = Some(
            apply(&*m, &intent(&format!("i-{k}"), &[&line(k)], false))
                .await
                .unwrap(),
        );
    }
    let joined = last.unwrap();
    announce_drop(&m, "i-2", &line(2));
    let mut leave = intent("i-1", &[&line(1)], true);
    leave.known = joined.owned.clone();
    leave.memory = joined.memory.clone();
    leave.deadline = Duration::from_secs(60);
    m.pacer
        .busy("Throttling: Rate exceeded", Some(Duration::from_millis(1)));
    let writes_before = m.counts().writes;
    let carrier = {
        let m = m.clone();
        tokio::spawn(async move { apply(&*m, &leave).await.unwrap() })
    };
    // i-3 announces once i-1's first carrying write took out i-2's value.
    let carried_i2 = tokio::time::timeout(Duration::from_secs(30), async {
        while m
            .lines("www.example.com", RType::A)
            .contains(&"192.0.2.2".to_string())
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        carried_i2.is_ok(),
        "i-1 never carried i-2's announced removal: {:?}",
        m.sets.lock().unwrap()
    );
    announce_drop(&m, "i-3", &line(3));
    let announced_at = tokio::time::Instant::now();
    let out = carrier.await.unwrap();
    // Once nobody waits, two quiet rounds of looking and it is done, long
    // before its stop's deadline (60 s).
    let stayed = announced_at.elapsed();
    assert!(
        stayed <= CARRY_ROUND * 5,
        "stayed {stayed:?} after the last announcement"
    );
    assert_eq!(
        m.lines("www.example.com", RType::A),
        vec!["192.0.2.250"],
        "every leaving instance's value went, the person's stayed"
    );
    for k in 1..=3 {
        assert!(
            m.lines(&format!("i-{k}._dnsreg.example.com"), RType::TXT)
                .is_empty(),
            "i-{k}'s registry is gone"
        );
    }
    assert_eq!(out.removed, vec![value(&line(1))]);
    assert_eq!(out.carried, 2, "i-2's value and i-3's: {out:?}");
    // Its announcement, its carrying write and one more for i-3.
    assert_eq!(m.counts().writes - writes_before, 3, "{:?}", m.counts());
}

#[tokio::test(start_paused = true)]
async fn a_read_throttled_midway_keeps_the_rrsets_it_read() {
    // Route53 once the zone is large: a request per rrset, here with one
    // token at a time, so the second rrset's request is refused.
    let mut m = Memory::new();
    m.per_rrset = true;
    m.bucket = Some(Arc::new(Mutex::new(Bucket::new(1.0, 1.0))));
    m.put("www.example.com. A 192.0.2.250");
    m.put("_a._tcp.example.com. SRV 0 0 80 other.example.com.");
    let keys: BTreeSet<RrKey> = [
        "www.example.com. A 192.0.2.250",
        "_a._tcp.example.com. SRV 0 0 80 other.example.com.",
    ]
    .iter()
    .map(|l| value(l).key())
    .collect();
    let mut tries = Attempts::new("memory", Duration::from_secs(60)).paced(&m.pacer);
    let snap = read_all(&m, &mut tries, false, &keys).await.unwrap();
    for k in &keys {
        assert_eq!(m.values(&snap, k).len(), 1, "{k}");
    }
    let c = m.counts();
    assert!(c.throttled > 0, "the limit was met: {c:?}");
    // Read in one call, the accepted first rrset was read again after the
    // refusal of the second.
    assert_eq!(c.reads, 2, "each rrset read once: {c:?}");
}

#[test]
fn the_waiters_look_as_often_as_they_are_few() {
    // The last few of a join storm look within seconds, so that the one
    // not first in line soon sees that nobody carried it and carries
    // itself; two hundred waiting look tens of seconds apart each.
    let left = Duration::from_secs(600);
    for _ in 0..100 {
        assert!(look_after(Some(1), true, left, false) <= Duration::from_secs(3));
        assert!(look_after(Some(3), true, left, false) <= Duration::from_secs(3));
        assert!(look_after(Some(200), true, left, false) >= Duration::from_secs(25));
    }
}

/// A fleet scaled in as soon as it scaled out, on a throttling provider:
/// i-1's join announced, a SIGTERM cut it off while it waited, and a peer
/// carried it meanwhile. Then i-1 leaves, given what the engine would give
/// it (`keep`: what the cut-off join kept; else nothing, as before). Returns
/// the rrsets the leave read.
async fn leave_after_a_join_cut_off(keep: bool) -> u32 {
    trace_if_asked();
    let mut m = Memory::new();
    m.lists = true;
    let m = Arc::new(m);
    let lines = [
        "i-1.example.com. A 192.0.2.1",
        "www.example.com. A 192.0.2.1",
    ];
    let join = intent("i-1", &lines, false);
    m.pacer
        .busy("Throttling: Rate exceeded", Some(Duration::from_millis(1)));
    tokio::select! {
        r = apply(&*m, &join) => panic!("the join was not cut off: {r:?}"),
        () = async {
            while registry_of(&m, "i-1").wanted.is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        } => {}
    }
    let peer = m.peer();
    peer.pacer
        .busy("Throttling: Rate exceeded", Some(Duration::from_millis(1)));
    apply(
        &peer,
        &intent("i-2", &["www.example.com. A 192.0.2.2"], false),
    )
    .await
    .unwrap();
    let carried = registry_of(&m, "i-1");
    assert!(
        carried.wanted.is_empty() && carried.owned.contains(&value(lines[1])),
        "i-2 carried i-1: {carried:?}"
    );
    let kept = join.checkpoint.take();
    assert!(kept.is_some(), "the announcement kept a memory");
    let mut leave = intent("i-1", &lines, true);
    leave.known = lines.iter().map(|l| value(l)).collect();
    leave.memory = kept.filter(|_| keep);
    leave.deadline = Duration::from_secs(60);
    let read_before = m.counts().rrsets_read;
    let out = apply(&*m, &leave).await.unwrap();
    assert_eq!(out.removed.len(), 2, "{out:?}");
    assert_eq!(m.lines("www.example.com", RType::A), vec!["192.0.2.2"]);
    assert!(m.lines("i-1.example.com", RType::A).is_empty());
    assert!(
        m.lines("i-1._dnsreg.example.com", RType::TXT).is_empty(),
        "i-1's registry is gone"
    );
    m.counts().rrsets_read - read_before
}

#[tokio::test(start_paused = true)]
async fn a_join_cut_off_while_it_waited_leaves_the_leave_a_memory_to_presume() {
    let presumed = leave_after_a_join_cut_off(true).await;
    let unknown = leave_after_a_join_cut_off(false).await;
    // Without the memory, its registry and its host rrset are read before
    // it can announce (a request each on Route53 once the zone is large);
    // with it, they are presumed as the carrier left them, and the leave
    // reads only when it carries its own announcement.
    assert_eq!(
        unknown.checked_sub(presumed),
        Some(2),
        "rrsets read: {presumed} with the memory, {unknown} without"
    );
}

#[tokio::test(start_paused = true)]
async fn a_leave_that_announces_lists_nobody_before_it_when_its_host_is_named_for_it() {
    // A scale-in on a throttling provider: the leave announces. Its host name
    // made from an address could be another instance's by now (so the
    // others' registries are listed before it is taken out); one made from
    // its own id cannot, and that listing is saved.
    for (host, lists_before) in [("h1", 1), ("i-1", 0)] {
        let mut m = Memory::new();
        m.lists = true;
        let m = Arc::new(m);
        m.put("www.example.com. A 192.0.2.250");
        let mine = [
            "www.example.com. A 192.0.2.1".to_string(),
            format!("{host}.example.com. A 192.0.2.1"),
        ];
        let mine: Vec<&str> = mine.iter().map(String::as_str).collect();
        apply(
            &*m,
            &intent("i-2", &["www.example.com. A 192.0.2.2"], false),
        )
        .await
        .unwrap();
        let joined = apply(&*m, &intent("i-1", &mine, false)).await.unwrap();
        let mut leave = intent("i-1", &mine, true);
        leave.known = joined.owned.clone();
        leave.memory = joined.memory.clone();
        m.pacer
            .busy("Throttling: Rate exceeded", Some(Duration::from_millis(1)));
        let before = m.counts();
        let out = apply(&*m, &leave).await.unwrap();
        let c = m.counts();
        assert_eq!(
            m.lines("www.example.com", RType::A),
            vec!["192.0.2.2", "192.0.2.250"],
            "{host}"
        );
        assert!(
            m.lines(&format!("{host}.example.com"), RType::A).is_empty(),
            "{host}: the host record went"
        );
        assert_eq!(out.removed.len(), 2, "{host}: {out:?}");
        // One look (a listing) after the announcement, which carries it,
        // and the listing before it where the name may be another's.
        assert_eq!(c.lists - before.lists, 1 + lists_before, "{host}: {c:?}");
        assert_eq!(c.writes - before.writes, 2, "{host}: {c:?}");
    }
}

/// What a simulated fleet did: the join storm's time (when all joined at
/// once), and what the scale-in left: agents whose leave failed, and values
/// of the fleet still in the zone.
struct ScaleIn {
    /// Until every value was in the zone (sampled every 100 ms), and until
    /// every join had returned.
    published_in: Option<Duration>,
    joined_in: Option<Duration>,
    join: Counts,
    failed: usize,
    left: Vec<String>,
    leave: Counts,
}

impl Counts {
    fn since(self, before: Counts) -> Counts {
        Counts {
            throttled: self.throttled - before.throttled,
            reads: self.reads - before.reads,
            rrsets_read: self.rrsets_read - before.rrsets_read,
            writes: self.writes - before.writes,
            conflicts: self.conflicts - before.conflicts,
            lists: self.lists - before.lists,
        }
    }

    fn accepted(self) -> u32 {
        self.reads + self.writes + self.lists
    }
}

/// `n` instances sharing www and an SRV rrset (simple routing), each with a
/// host named for it, every process with its own pacer, against Route53's
/// account limit (10 requests a second, a burst of 50), join all at once.
/// Then, with the bucket full again, all leave at once (within 100 ms), with
/// `stop` each: `abrupt`, the moment every value is in the zone (as the
/// bench does: joins still looking are cut off, and leave from what their
/// state file held before, nothing), else a minute after every join returned.
async fn scale_in(seed: u64, n: usize, abrupt: bool, stop: Duration) -> ScaleIn {
    crate::retry::SEEDED.with(|r| *r.borrow_mut() = Some(StdRng::seed_from_u64(seed)));
    let mut m = Memory::new();
    m.lists = true;
    m.per_rrset = true;
    m.put("www.example.com. A 192.0.2.250");
    let lines = |k: usize| {
        vec![
            format!("www.example.com. A 10.50.{}.{}", k / 200, k % 200 + 1),
            format!("_a._tcp.example.com. SRV 0 0 80 i-{k}.example.com."),
            format!("i-{k}.example.com. A 10.50.{}.{}", k / 200, k % 200 + 1),
        ]
    };
    let bucket = Arc::new(Mutex::new(Bucket::new(10.0, 50.0)));
    m.bucket = Some(bucket.clone());
    let peers: Vec<Arc<Memory>> = (0..n)
        .map(|k| {
            let mut peer = m.peer();
            peer.jitter = Some(Mutex::new(StdRng::seed_from_u64(seed ^ k as u64)));
            Arc::new(peer)
        })
        .collect();
    let checkpoints: Vec<Checkpoint> = (0..n).map(|_| Checkpoint::default()).collect();
    let leave_of = |k: usize, joined: Option<Outcome>| {
        let l = lines(k);
        let refs: Vec<&str> = l.iter().map(String::as_str).collect();
        let mut leave = intent(&format!("i-{k}"), &refs, true);
        // As the engine gives a leave: where the configuration publishes,
        // and what the state file says was published after the last join
        // that returned, or what a join cut off kept (see `Checkpoint`).
        leave.known = refs.iter().map(|l| value(l)).collect();
        if let Some(joined) = joined {
            leave.known.extend(joined.owned);
            leave.memory = joined.memory;
        } else {
            leave.memory = checkpoints[k].take();
        }
        leave.deadline = stop;
        leave
    };
    let started = tokio::time::Instant::now();
    let sampler = {
        let sets = m.sets.clone();
        let want = 3 * n;
        tokio::spawn(async move {
            loop {
                let there = sets
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(k, _)| !k.name.as_str().contains("_dnsreg"))
                    .map(|(_, s)| s.values.len())
                    .sum::<usize>();
                // The person's value is there too.
                if there > want {
                    return started.elapsed();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let joined: Arc<Mutex<Vec<Option<Outcome>>>> = Arc::new(Mutex::new(vec![None; n]));
    let tasks: Vec<_> = (0..n)
        .map(|k| {
            let peer = peers[k].clone();
            let joined = joined.clone();
            let l = lines(k);
            let checkpoint = checkpoints[k].clone();
            tokio::spawn(async move {
                let refs: Vec<&str> = l.iter().map(String::as_str).collect();
                let mut join = intent(&format!("i-{k}"), &refs, false);
                join.deadline = Duration::from_secs(600);
                join.checkpoint = checkpoint;
                let out = apply(&*peer, &join).await.unwrap();
                if std::env::var_os("DNSREG_TIMES").is_some() {
                    eprintln!(
                        "joined i-{k} at {:?}: {:?} (accepted, throttled); {} by peers",
                        tokio::time::Instant::now(),
                        peer.mine.lock().unwrap(),
                        out.by_peers
                    );
                }
                joined.lock().unwrap()[k] = Some(out);
            })
        })
        .collect();
    let published_in = Some(sampler.await.unwrap());
    let joined_in = if abrupt {
        for t in &tasks {
            t.abort();
        }
        None
    } else {
        for t in tasks {
            t.await.unwrap();
        }
        let took = started.elapsed();
        tokio::time::sleep(Duration::from_secs(60)).await;
        Some(took)
    };
    let join = m.counts();
    *bucket.lock().unwrap() = Bucket::new(10.0, 50.0);
    let outcomes = std::mem::take(&mut *joined.lock().unwrap());
    let leaves: Vec<Intent> = outcomes
        .into_iter()
        .enumerate()
        .map(|(k, o)| leave_of(k, o))
        .collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let tasks: Vec<_> = leaves
        .into_iter()
        .zip(peers)
        .map(|(leave, peer)| {
            let start = Duration::from_millis(rng.random_range(0..100));
            tokio::spawn(async move {
                tokio::time::sleep(start).await;
                apply(&*peer, &leave).await
            })
        })
        .collect();
    let mut failed = 0;
    for t in tasks {
        if let Err(e) = t.await.unwrap() {
            if std::env::var_os("DNSREG_TIMES").is_some() {
                eprintln!("leave failed: {e:#}");
            }
            failed += 1;
        }
    }
    let left = m
        .sets
        .lock()
        .unwrap()
        .values()
        .flat_map(|s| s.values.iter())
        .map(Value::to_line)
        .filter(|l| !l.contains("192.0.2.250"))
        .collect();
    ScaleIn {
        published_in,
        joined_in,
        join,
        failed,
        left,
        leave: m.counts().since(join),
    }
}

#[tokio::test(start_paused = true)]
async fn a_simple_routing_fleet_of_200_stopped_as_soon_as_it_is_published_leaves_almost_nothing() {
    // Three seeds of the simulated fleet: 200 instances join at once on
    // Route53's rate, and all stop the moment the last value is in (most
    // still waiting to see they were carried) with twice the floor (69 s).
    // Reads cost a request per rrset, as on Route53 once the zone is large.
    // Before leaves looked where the configuration publishes, the cut-off
    // joins' leaves raced each other with direct writes and left 212 values
    // with seed 0; before a cut-off join kept a memory (`Checkpoint`) and a
    // carrying write presumed the carrier's own rrsets, 122 (its leaves used
    // up the stop's every request). What is left now is at most the
    // registries and values of two instances whose announcement was never
    // accepted; more is a regression.
    for seed in [0, 5, 6] {
        let r = scale_in(seed, 200, true, Duration::from_secs(69)).await;
        assert!(r.published_in.is_some(), "seed {seed}");
        let registries = r.left.iter().filter(|l| l.contains("._dnsreg.")).count();
        // Each instance left behind leaves its 3 values and its registry of 3 lines.
        assert!(
            r.left.len() <= 2 * 6 && registries <= 2 * 3,
            "seed {seed}: left {:?}",
            r.left
        );
        eprintln!(
            "seed {seed}: {} leaves ran out of time, {} records left",
            r.failed,
            r.left.len()
        );
    }
}

/// The simulated fleet as a measurement, a line per seed. `DNSREG_FLEET`:
/// its size (200); `DNSREG_SCHEDULES`: seeds 0 to it (3); `DNSREG_ABRUPT=0`:
/// stop a minute after every join returned instead of the moment all is
/// published; `DNSREG_TIMES=1`: when each join returned, with its requests,
/// and why each failed leave failed.
#[tokio::test(start_paused = true)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn simulated_scale_in_of_a_simple_routing_fleet() {
    let var = |name: &str, default: u64| -> u64 {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let n = usize::try_from(var("DNSREG_FLEET", 200)).unwrap();
    let abrupt = var("DNSREG_ABRUPT", 1) == 1;
    for seed in 0..var("DNSREG_SCHEDULES", 3) {
        // Twice the floor of two requests per leave, less the second the
        // agent keeps for itself, as the bench gives it.
        let floor = (2.0 * n as f64 - 50.0).max(0.0) / 10.0;
        let stop = Duration::from_secs_f64((2.0 * floor).max(20.0) - 1.0);
        let r = scale_in(seed, n, abrupt, stop).await;
        let per = |x: u32| f64::from(x) / n as f64;
        let (j, c) = (r.join, r.leave);
        eprintln!(
            "seed {seed}: published {:?}, join {:?}, {:.2} accepted ({:.2} reads, {:.2} writes, {:.2} lists) + {:.2} throttled per join; leave: {} failed, {} values left, per leave {:.2} accepted ({:.2} reads, {:.2} writes, {:.2} lists) + {:.2} throttled, {} conflicts",
            r.published_in,
            r.joined_in,
            per(j.accepted()),
            per(j.reads),
            per(j.writes),
            per(j.lists),
            per(j.throttled),
            r.failed,
            r.left.len(),
            per(c.accepted()),
            per(c.reads),
            per(c.writes),
            per(c.lists),
            per(c.throttled),
            c.conflicts
        );
    }
}

// ---------------------------------------------------------------------------
// Randomized interleavings
// ---------------------------------------------------------------------------

/// What the schedule knows, shared with the provider's after-write check.
#[derive(Default)]
struct Truth {
    /// Values a person put in and has not taken out.
    persons: Values,
    /// For each instance whose join finished and whose leave has not begun:
    /// the values it owns. They must stay until it leaves.
    published: BTreeMap<String, Values>,
    /// Values a join under way may add, and how many joins: where claims are
    /// kept by name, a value the person adds while a join adds it too is
    /// taken for the instance's (see README, RFC 2136), so the person does
    /// not race a join here.
    adding: BTreeMap<Value, u32>,
}

#[derive(Clone, Debug)]
enum Op {
    Join,
    Leave,
    /// Join or leave, cut off after a random while (a SIGKILL).
    Crash {
        leaving: bool,
        after_ms: u64,
    },
    /// The state file is lost (a new disk).
    LoseState,
}

struct Agent {
    id: String,
    lines: Vec<String>,
    known: Values,
    memory: Option<serde_json::Value>,
    lease: Duration,
}

impl Agent {
    fn intent(&self, leaving: bool) -> Intent {
        let refs: Vec<&str> = self.lines.iter().map(String::as_str).collect();
        let mut i = intent(&self.id, &refs, leaving);
        i.known = self.known.clone();
        i.memory = self.memory.clone();
        i.lease = Some(self.lease);
        i.deadline = Duration::from_secs(3600);
        i
    }

    fn desired(&self) -> Values {
        self.lines.iter().map(|l| value(l)).collect()
    }

    /// One operation, updating the state file as the engine does.
    async fn run(&mut self, m: &Memory, truth: &Mutex<Truth>, leaving: bool, cut: Option<u64>) {
        if leaving {
            truth.lock().unwrap().published.remove(&self.id);
        }
        let i = self.intent(leaving);
        if !leaving {
            let mut t = truth.lock().unwrap();
            for v in self.desired() {
                *t.adding.entry(v).or_default() += 1;
            }
        }
        let done = match cut {
            Some(ms) => tokio::time::timeout(Duration::from_millis(ms), apply(m, &i))
                .await
                .ok(),
            None => Some(apply(m, &i).await),
        };
        if !leaving {
            let mut t = truth.lock().unwrap();
            for v in self.desired() {
                if let Some(n) = t.adding.get_mut(&v) {
                    *n -= 1;
                    if *n == 0 {
                        t.adding.remove(&v);
                    }
                }
            }
        }
        let Some(result) = done else {
            return; // killed: the state file stays as it was before the change
        };
        let o = result.unwrap_or_else(|e| panic!("{}: {e:#}", self.id));
        if std::env::var_os("DNSREG_TRACE").is_some() {
            eprintln!(
                "{} {} -> {o:?}",
                self.id,
                if leaving { "leave" } else { "join" }
            );
        }
        self.known = o.owned.clone();
        self.memory = o.memory.clone();
        if !leaving {
            // A join that finished owns every value it wants but the person's
            // (a value another instance publishes, or announced for removal,
            // is claimed too).
            let t = truth.lock().unwrap();
            for v in self.desired() {
                assert!(
                    o.owned.contains(&v) || t.persons.contains(&v),
                    "{} joined without claiming {v}: {o:?}",
                    self.id
                );
            }
        }
        if !leaving {
            truth
                .lock()
                .unwrap()
                .published
                .insert(self.id.clone(), o.owned.clone());
        }
    }
}

fn check_zone(
    zone: &DomainName,
    sets: &BTreeMap<RrKey, Set>,
    truth: &Truth,
    by_name: bool,
) -> Result<(), String> {
    // Owned, or announced for removal (owned until a peer removes it).
    let mut owned = Values::new();
    let mut owners: BTreeMap<Value, BTreeSet<String>> = BTreeMap::new();
    for (k, s) in sets {
        if let Some(label) = registry::label_of(&k.name, zone) {
            let r = Registry::parse(&s.values);
            for v in r.owned.iter().chain(&r.dropped) {
                owners.entry(v.clone()).or_default().insert(label.clone());
            }
            owned.extend(r.owned);
            owned.extend(r.dropped);
        }
    }
    let ownership = registry::root(zone);
    if by_name {
        // Each value's claim names exactly the instances whose registry owns
        // it, and no claim is left without one.
        let mut claims: BTreeMap<RrKey, BTreeSet<String>> = sets
            .iter()
            .filter(|(k, _)| {
                k.name.is_in(&ownership) && registry::label_of(&k.name, zone).is_none()
            })
            .map(|(k, s)| (k.clone(), registry::claimants(&s.values)))
            .collect();
        for (v, who) in &owners {
            let claim = claims
                .remove(&registry::claim_key(zone, v))
                .unwrap_or_default();
            if claim != *who {
                return Err(format!(
                    "{v} is owned by {who:?} but its claim names {claim:?}"
                ));
            }
        }
        if let Some((k, who)) = claims.first_key_value() {
            return Err(format!(
                "a claim {k} of {who:?} for a value no registry owns"
            ));
        }
    }
    for (k, s) in sets {
        if k.name.is_in(&ownership) {
            continue;
        }
        for v in &s.values {
            if !(owned.contains(v) || truth.persons.contains(v)) {
                return Err(format!(
                    "{v} is in the zone but nobody owns it (neither a registry nor the person)"
                ));
            }
        }
    }
    let present = |v: &Value| sets.get(&v.key()).is_some_and(|s| s.values.contains(v));
    for v in &truth.persons {
        if !present(v) {
            return Err(format!("the person's {v} was removed"));
        }
    }
    for (id, values) in &truth.published {
        for v in values {
            if !present(v) {
                return Err(format!("{id}'s {v} was lost while it was published"));
            }
        }
    }
    Ok(())
}

/// One schedule from one seed: instances (two may share an address, as a
/// reused one does), each running a random list of joins, leaves, crashes
/// and lost state files concurrently, while a person adds and removes values
/// (once, the very address an instance is about to publish). After every
/// write: nothing unowned, nothing of the person's removed, nothing published
/// lost. At the end, every instance joins or leaves for good, and the zone
/// holds exactly what the survivors want and the person's values.
async fn schedule(seed: u64) {
    trace_if_asked();
    crate::retry::SEEDED.with(|r| *r.borrow_mut() = Some(StdRng::seed_from_u64(seed)));
    let mut rng = StdRng::seed_from_u64(seed);
    let truth = Arc::new(Mutex::new(Truth::default()));
    let zone = DomainName::new("example.com").unwrap();
    let mut m = Memory::new();
    m.jitter = Some(Mutex::new(StdRng::seed_from_u64(seed ^ 0x5eed)));
    m.lists = rng.random_range(0..2) == 0;
    m.by_name = rng.random_range(0..3) == 0;
    let by_name = m.by_name;
    let t = truth.clone();
    let z = zone.clone();
    m.check = Some(Box::new(move |sets| {
        check_zone(&z, sets, &t.lock().unwrap(), by_name)
    }));
    let m = Arc::new(m);
    let n = rng.random_range(2..7usize);
    let shared_ip = rng.random_range(0..4) == 0;
    let named_hosts = rng.random_range(0..2) == 0;
    let mut agents: Vec<Agent> = (0..n)
        .map(|k| {
            let ip = if shared_ip && k == 1 { 1 } else { k + 1 };
            // Host names by number, or made from the instance's id.
            let host = if named_hosts {
                format!("i-{k}")
            } else {
                format!("h{k}")
            };
            Agent {
                id: format!("i-{k}"),
                lines: vec![
                    format!("www.example.com. A 192.0.2.{ip}"),
                    format!("_a._tcp.example.com. SRV 0 0 80 {host}.example.com."),
                    format!("{host}.example.com. A 192.0.2.{ip}"),
                ],
                known: Values::new(),
                memory: None,
                lease: Duration::from_secs(3600),
            }
        })
        .collect();
    // The person's value, there from the start.
    m.put("www.example.com. A 192.0.2.250");
    truth
        .lock()
        .unwrap()
        .persons
        .insert(value("www.example.com. A 192.0.2.250"));

    let mut plans: Vec<Vec<(u64, Op)>> = Vec::new();
    for _ in 0..n {
        let ops = rng.random_range(1..5);
        let plan = (0..ops)
            .map(|_| {
                let think = rng.random_range(0..300);
                let op = match rng.random_range(0..10) {
                    0..=3 => Op::Join,
                    4..=5 => Op::Leave,
                    6..=8 => Op::Crash {
                        leaving: rng.random_range(0..2) == 0,
                        after_ms: rng.random_range(0..120),
                    },
                    _ => Op::LoseState,
                };
                (think, op)
            })
            .collect();
        plans.push(plan);
    }
    // The person: adds a value of their own, later removes it; and adds the
    // address of an instance that is not up (a record made by hand).
    let person = {
        let m = m.clone();
        let truth = truth.clone();
        let at = rng.random_range(0..400);
        let victim = rng.random_range(0..n) + 1;
        let takes_back = rng.random_range(0..2) == 0;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(at)).await;
            let own = value("www.example.com. A 192.0.2.251");
            {
                let mut t = truth.lock().unwrap();
                m.put(&own.to_line());
                t.persons.insert(own.clone());
            }
            tokio::time::sleep(Duration::from_millis(at / 2)).await;
            let theirs = value(&format!("www.example.com. A 192.0.2.{victim}"));
            {
                let mut t = truth.lock().unwrap();
                let already = m
                    .sets
                    .lock()
                    .unwrap()
                    .get(&theirs.key())
                    .is_some_and(|s| s.values.contains(&theirs));
                if !(already || by_name && t.adding.contains_key(&theirs)) {
                    m.put(&theirs.to_line());
                    t.persons.insert(theirs);
                }
            }
            if takes_back {
                tokio::time::sleep(Duration::from_millis(at)).await;
                let mut t = truth.lock().unwrap();
                t.persons.remove(&own);
                m.take(&own);
            }
        })
    };
    let mut tasks = Vec::new();
    for (mut a, plan) in agents.drain(..).zip(plans) {
        let m = m.clone();
        let truth = truth.clone();
        tasks.push(tokio::spawn(async move {
            for (think, op) in plan {
                tokio::time::sleep(Duration::from_millis(think)).await;
                match op {
                    Op::Join => a.run(&m, &truth, false, None).await,
                    Op::Leave => a.run(&m, &truth, true, None).await,
                    Op::Crash { leaving, after_ms } => {
                        a.run(&m, &truth, leaving, Some(after_ms)).await;
                    }
                    Op::LoseState => {
                        a.known.clear();
                        a.memory = None;
                    }
                }
            }
            a
        }));
    }
    let mut agents = Vec::new();
    for t in tasks {
        agents.push(t.await.unwrap());
    }
    person.await.unwrap();

    // For good: a random half stays, the others leave; then the zone is exact.
    let stay: Vec<bool> = agents.iter().map(|_| rng.random_range(0..2) == 0).collect();
    let mut finals = Vec::new();
    for (mut a, up) in agents.into_iter().zip(stay.iter().copied()) {
        let m = m.clone();
        let truth = truth.clone();
        finals.push(tokio::spawn(async move {
            a.run(&m, &truth, !up, None).await;
            a
        }));
    }
    let mut agents = Vec::new();
    for f in finals {
        agents.push(f.await.unwrap());
    }
    // One more round for those that stay: a value carried for a peer that
    // left meanwhile is settled by the next join (reconcile).
    for (a, up) in agents.iter_mut().zip(stay.iter().copied()) {
        if up {
            a.run(&m, &truth, false, None).await;
        }
    }

    let persons = truth.lock().unwrap().persons.clone();
    let sets = m.sets.lock().unwrap().clone();
    if let Err(broken) = check_zone(&zone, &sets, &truth.lock().unwrap(), by_name) {
        panic!("at the end: {broken}");
    }
    let mut expected: BTreeMap<RrKey, Values> = BTreeMap::new();
    for v in &persons {
        expected.entry(v.key()).or_default().insert(v.clone());
    }
    for (a, up) in agents.iter().zip(stay.iter()) {
        let r = Registry::parse(
            &sets
                .get(&RrKey {
                    name: registry::name(&zone, &a.id).unwrap(),
                    rtype: RType::TXT,
                })
                .map(|s| s.values.clone())
                .unwrap_or_default(),
        );
        if *up {
            for v in a.desired() {
                expected.entry(v.key()).or_default().insert(v.clone());
                assert!(
                    r.owned.contains(&v) || persons.contains(&v),
                    "{} stays but does not own {v}: {r:?}",
                    a.id
                );
            }
            assert!(
                r.wanted.is_empty() && r.dropped.is_empty(),
                "{}: {r:?}",
                a.id
            );
        } else {
            assert_eq!(
                r,
                Registry::default(),
                "{} left but its registry remains",
                a.id
            );
        }
    }
    let ownership = registry::root(&zone);
    let actual: BTreeMap<RrKey, Values> = sets
        .into_iter()
        .filter(|(k, _)| !k.name.is_in(&ownership))
        .map(|(k, s)| (k, s.values))
        .collect();
    assert_eq!(
        actual, expected,
        "the zone is not exactly what the survivors want plus the person's"
    );
}

#[test]
fn randomized_fleets_of_joins_leaves_crashes_and_a_persons_edits_lose_nothing() {
    let runs: u64 = std::env::var("DNSREG_SCHEDULES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let first: u64 = std::env::var("DNSREG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    for seed in first..first + runs {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(schedule(seed));
        }));
        if let Err(e) = result {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_default();
            panic!(
                "schedule {seed} failed: {msg}\nreplay it: DNSREG_SEED={seed} DNSREG_SCHEDULES=1 cargo test -p dnsreg randomized"
            );
        }
    }
}

#[test]
fn a_carried_value_always_comes_with_its_registry_flipped() {
    // A materialiser with three waiting peers, each wanting a www address and
    // an SRV line: every value it adds is in a registry it rewrites.
    let zone = DomainName::new("example.com").unwrap();
    let ctx = Ctx::new(&zone, "i-m", false).unwrap();
    let mut seen = Seen::default();
    let key = |n: &str, t: RType| RrKey {
        name: DomainName::new(n).unwrap(),
        rtype: t,
    };
    seen.rrsets
        .insert(key("www.example.com", RType::A), Rrset::default());
    seen.rrsets
        .insert(key("_a._tcp.example.com", RType::SRV), Rrset::default());
    seen.rrsets.insert(ctx.registry.clone(), Rrset::default());
    let mut others = BTreeMap::new();
    for k in 1..=3 {
        let r = Registry {
            wanted: [
                value(&format!("www.example.com. A 192.0.2.{k}")),
                value(&format!(
                    "_a._tcp.example.com. SRV 0 0 80 h{k}.example.com."
                )),
            ]
            .into(),
            lease: Some(unix_now() + 3600),
            ..Registry::default()
        };
        let name = registry::name(&zone, &format!("i-{k}")).unwrap();
        seen.rrsets.insert(
            RrKey {
                name: name.clone(),
                rtype: RType::TXT,
            },
            Rrset {
                values: r.to_values(&name).unwrap(),
                ttl: Some(60),
            },
        );
        others.insert(format!("i-{k}"), r);
    }
    seen.others = Some(others);
    let i = intent("i-m", &["www.example.com. A 192.0.2.9"], false);
    let Decision::Write(plan) = decide(&i, &ctx, &seen, How::Materialise).unwrap() else {
        panic!("a write")
    };
    let added: Vec<&Value> = plan.edit.add.values().flatten().map(|r| &r.value).collect();
    for k in 1..=3 {
        let reg = RrKey {
            name: registry::name(&zone, &format!("i-{k}")).unwrap(),
            rtype: RType::TXT,
        };
        let www = value(&format!("www.example.com. A 192.0.2.{k}"));
        let srv = value(&format!(
            "_a._tcp.example.com. SRV 0 0 80 h{k}.example.com."
        ));
        let flipped = plan.edit.add.get(&reg).map(|v| v.len()).unwrap_or(0);
        assert_eq!(
            added.contains(&&www) && added.contains(&&srv),
            flipped == 2,
            "i-{k}: values added {} and registry lines added {flipped}:\n{}",
            added.contains(&&www) && added.contains(&&srv),
            plan.edit
        );
    }
}

#[test]
fn a_write_costs_its_records_and_their_characters_and_fits_only_within_both() {
    let a = value("www.example.com. A 192.0.2.1");
    let b = value("_v1._theservice._tcp.example.com. SRV 0 0 8080 i-1.example.com.");
    let chars = a.data.to_string().len() + b.data.to_string().len();
    let c = Cost::of([&a, &b].into_iter());
    assert_eq!((c.records, c.characters), (2, chars));
    let limit = |records, characters| BatchLimit {
        records,
        characters,
    };
    assert!(c.within(limit(2, chars)));
    assert!(!c.within(limit(1, chars)), "one record too many");
    assert!(!c.within(limit(2, chars - 1)), "one character too many");
}

#[test]
fn a_carrying_write_stays_within_the_providers_batch_limit() {
    // 150 waiting peers, each with a long SRV line, under Route53's limits
    // (1,000 records, 32,000 characters of values): the write carries as
    // many as fit, counting every rrset it rewrites whole, and no more.
    let zone = DomainName::new("example.com").unwrap();
    let mut ctx = Ctx::new(&zone, "i-m", false).unwrap();
    ctx.batch_limit = BatchLimit {
        records: 900,
        characters: 28_000,
    };
    let srv = RrKey {
        name: DomainName::new("_v1._theservice._tcp.example.com").unwrap(),
        rtype: RType::SRV,
    };
    let line = |k: usize| {
        value(&format!(
            "_v1._theservice._tcp.example.com. SRV 0 0 8080 i-0123456789abcd{k:03}.example.com."
        ))
    };
    let mut seen = Seen::default();
    // 100 lines there already.
    seen.rrsets.insert(
        srv.clone(),
        Rrset {
            values: (500..600).map(line).collect(),
            ttl: Some(60),
        },
    );
    seen.rrsets.insert(ctx.registry.clone(), Rrset::default());
    let mut others = BTreeMap::new();
    for k in 0..150 {
        let r = Registry {
            wanted: [line(k)].into(),
            lease: Some(unix_now() + 3600),
            ..Registry::default()
        };
        let name = registry::name(&zone, &format!("i-{k}")).unwrap();
        seen.rrsets.insert(
            RrKey {
                name: name.clone(),
                rtype: RType::TXT,
            },
            Rrset {
                values: r.to_values(&name).unwrap(),
                ttl: Some(60),
            },
        );
        others.insert(format!("i-{k}"), r);
    }
    seen.others = Some(others);
    let mut i = intent("i-m", &[], false);
    i.desired = vec![Record {
        value: line(999),
        ttl: 60,
    }];
    let Decision::Write(plan) = decide(&i, &ctx, &seen, How::Materialise).unwrap() else {
        panic!("a write")
    };
    let cost = batch_cost(&plan.edit, &seen);
    assert!(cost.within(ctx.batch_limit), "{cost:?}");
    let carried = plan.outcome.carried;
    assert!(carried > 10 && carried < 150, "carried {carried}");
}

/// A dry run (`dnsreg plan`) reads and decides as a join or leave would, and
/// writes nothing: the zone is unchanged and the provider was asked for no
/// write (nor a memory check, which is one on Route53), in each ownership
/// model, even with a memory that would let the real join skip the read.
#[tokio::test]
async fn a_dry_run_shows_the_decision_and_writes_nothing() {
    let person = "www.example.com. A 192.0.2.99";
    for (apart, by_name) in [(false, false), (true, false), (false, true)] {
        let mut m = Memory::new();
        m.apart = apart;
        m.by_name = by_name;
        let how = format!("apart {apart}, by name {by_name}");
        // A person's value equal to this instance's, and another of theirs
        // (the model keeps apart by taking all it reads for its own: none).
        if !apart {
            m.put(MINE[0]);
            m.put(person);
        }
        let zone = || m.sets.lock().unwrap().clone();
        let before = zone();
        let d = dry_run(&m, &intent("i-1", &MINE, false)).await.unwrap();
        let (keep_foreign, keep_others) = if apart {
            (vec![], vec![])
        } else {
            (vec![value(MINE[0])], vec![value(person)])
        };
        // In the order of the rrsets' keys.
        let add = if apart {
            vec![value(MINE[1]), value(MINE[0])]
        } else {
            vec![value(MINE[1])]
        };
        assert_eq!(
            (&d.add, &d.remove, &d.keep_foreign, &d.keep_others),
            (&add, &vec![], &keep_foreign, &keep_others),
            "{how}: {d:?}"
        );
        assert!(d.changes(), "{how}");
        assert_eq!(m.counts().writes, 0, "{how}");
        assert_eq!(zone(), before, "{how}");

        // What the join then does is what the dry run said.
        let o = apply(&m, &intent("i-1", &MINE, false)).await.unwrap();
        assert_eq!(o.added, d.add, "{how}");
        assert_eq!(o.owned, d.owned, "{how}");
        let writes = m.counts().writes;
        let after = zone();
        let mut again = intent("i-1", &MINE, false);
        again.known = o.owned.clone();
        again.memory = o.memory.clone();
        let d = dry_run(&m, &again).await.unwrap();
        assert!(!d.changes(), "{how}: {d:?}");
        assert_eq!(d.owned, o.owned, "{how}");
        assert_eq!(d.keep_foreign, keep_foreign, "{how}");

        // A leave would remove what it owns, and only that.
        let mut leave = intent("i-1", &MINE, true);
        leave.known = o.owned.clone();
        leave.memory = o.memory.clone();
        let d = dry_run(&m, &leave).await.unwrap();
        let mut removed = d.remove.clone();
        removed.sort();
        let mut owned: Vec<Value> = o.owned.iter().cloned().collect();
        owned.sort();
        assert_eq!(removed, owned, "{how}: {d:?}");
        assert!(d.add.is_empty() && d.changes(), "{how}");
        assert_eq!(m.counts().writes, writes, "{how}: no write");
        assert_eq!(zone(), after, "{how}: nothing changed");
    }
}

/// A value this instance owns that another instance claims too is left for
/// it, and the dry run of a leave says so.
#[tokio::test]
async fn a_dry_run_of_a_leave_keeps_a_value_another_instance_claims() {
    let mut m = Memory::new();
    m.by_name = true;
    apply(&m, &intent("i-1", &MINE, false)).await.unwrap();
    let theirs = [MINE[0], "h2.example.com. A 192.0.2.1"];
    apply(&m, &intent("i-2", &theirs, false)).await.unwrap();
    let writes = m.counts().writes;
    let d = dry_run(&m, &intent("i-1", &MINE, true)).await.unwrap();
    assert_eq!(d.remove, vec![value(MINE[1])], "{d:?}");
    assert_eq!(d.keep_others, vec![value(MINE[0])], "{d:?}");
    assert_eq!(m.counts().writes, writes);
}

/// A throttled retry never waits past the operation's deadline: an instance
/// of a crowd whose backoff window has grown to most of a minute still tries
/// within a stop of twenty seconds, and gets through. (Without it, the window
/// ran past the stop and the leave gave up having sent nothing more.)
#[tokio::test(start_paused = true)]
async fn a_throttled_retry_comes_within_the_deadline_however_grown_the_window() {
    let pacer = Pacer::new(Backoff::BUSY);
    // A crowd's refusals: the next window is up to a minute.
    for _ in 0..28 {
        pacer.busy("Throttling: Rate exceeded", None);
    }
    let deadline = Duration::from_secs(20);
    let start = Instant::now();
    let mut tries = Attempts::new("p", deadline).paced(&pacer);
    let calls = Mutex::new(Vec::new());
    let got = attempt(&mut tries, "removing", || async {
        pacer.ready().await;
        let mut calls = calls.lock().unwrap();
        calls.push(start.elapsed());
        if calls.len() < 3 {
            pacer.busy("Throttling: Rate exceeded", None);
            return Err(Fail::Busy {
                why: "Throttling: Rate exceeded".into(),
                retry_after: None,
            });
        }
        Ok(calls.len())
    })
    .await;
    let calls = calls.into_inner().unwrap();
    assert_eq!(got.unwrap(), 3, "{calls:?}");
    assert!(calls.iter().all(|t| *t < deadline), "{calls:?}");
}
