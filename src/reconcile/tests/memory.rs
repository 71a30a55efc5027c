//! `Memory`, the stand-in provider the rules are tested against: an
//! in-memory zone whose writes are conditional on the rrsets they touch, as
//! Route53's are, with switches for the other ownership models, a rate limit
//! as Route53's account has one, jitter for interleavings, and a check run
//! after every write.

use super::*;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Set {
    pub(super) values: Values,
    pub(super) ttl: Option<u32>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct Snap {
    #[serde(with = "by_key")]
    sets: BTreeMap<RrKey, Set>,
}

pub(super) type Check = Box<dyn Fn(&BTreeMap<RrKey, Set>) -> Result<(), String> + Send + Sync>;

/// What the provider was asked to do.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Counts {
    /// Requests refused by the rate limit (not in the counts below).
    pub(super) throttled: u32,
    pub(super) reads: u32,
    /// Rrsets read, over all reads.
    pub(super) rrsets_read: u32,
    pub(super) writes: u32,
    pub(super) conflicts: u32,
    pub(super) lists: u32,
}

/// An in-memory zone. A write applies only if every rrset it touches holds
/// exactly the values (and TTL) of the snapshot, as Route53's DELETE demands.
pub(super) struct Memory {
    pub(super) zone: DomainName,
    /// Behaves like Route53 multivalue: each instance's rrsets are its own.
    pub(super) apart: bool,
    /// Listing the registries is as cheap as a read (waiters elect a carrier).
    pub(super) lists: bool,
    /// Behaves like RFC 2136 with claims kept by name: a write is conditional
    /// only on the ownership rrsets it touches; values are added and removed
    /// one by one (adding one present, or removing one absent, does nothing).
    pub(super) by_name: bool,
    /// A read costs a request per rrset, as on Route53 once the zone is
    /// larger than one page of a listing.
    pub(super) per_rrset: bool,
    /// Shared by the handles of one fleet (see [`Memory::peer`]).
    pub(super) sets: Arc<Mutex<BTreeMap<RrKey, Set>>>,
    /// This handle's pacer: one per process, as each agent has its own.
    pub(super) pacer: Pacer,
    /// The account's rate limit, shared by a fleet's handles: a request
    /// with no token left is refused as busy (and costs no token).
    pub(super) bucket: Option<Arc<Mutex<Bucket>>>,
    /// Before each of the next N writes, another writer adds a value.
    pub(super) interfere: AtomicU32,
    /// Each call first sleeps a random while (paused clock): interleavings.
    pub(super) jitter: Option<Mutex<StdRng>>,
    /// Run after every applied write, under the lock.
    pub(super) check: Option<Check>,
    counts: Arc<Mutex<Counts>>,
    /// This handle's requests under a rate limit: (accepted, throttled).
    pub(super) mine: Mutex<(u32, u32)>,
}

/// Route53's account limit: `burst` requests at once, refilled at `rate`
/// per second.
pub(super) struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: tokio::time::Instant,
}

impl Bucket {
    pub(super) fn new(rate: f64, burst: f64) -> Bucket {
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
    pub(super) fn new() -> Memory {
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
    pub(super) fn peer(&self) -> Memory {
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

    pub(super) fn put(&self, line: &str) {
        let v = Value::from_line(line).unwrap();
        let mut z = self.sets.lock().unwrap();
        let e = z.entry(v.key()).or_default();
        e.values.insert(v);
        e.ttl.get_or_insert(60);
    }

    pub(super) fn take(&self, v: &Value) {
        let mut z = self.sets.lock().unwrap();
        if let Some(e) = z.get_mut(&v.key()) {
            e.values.remove(v);
            if e.values.is_empty() {
                z.remove(&v.key());
            }
        }
    }

    pub(super) fn lines(&self, name: &str, rtype: RType) -> Vec<String> {
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

    pub(super) fn counts(&self) -> Counts {
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
