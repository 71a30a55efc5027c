//! Randomized interleavings: a few instances joining, leaving, crashing and
//! losing their state files at once while a person edits the zone, checked
//! after every write and at the end, over thousands of seeded schedules.

use super::*;

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
    let m = Arc::new(checked_memory(seed, &mut rng, &zone, &truth));
    let by_name = m.by_name;
    let agents = fleet_of_agents(&mut rng);
    let n = agents.len();
    // The person's value, there from the start.
    m.put("www.example.com. A 192.0.2.250");
    truth
        .lock()
        .unwrap()
        .persons
        .insert(value("www.example.com. A 192.0.2.250"));

    let plans: Vec<Vec<(u64, Op)>> = (0..n).map(|_| plan(&mut rng)).collect();
    let person = person(&m, &truth, &mut rng, n);
    let mut tasks = Vec::new();
    for (a, plan) in agents.into_iter().zip(plans) {
        tasks.push(tokio::spawn(run_plan(a, plan, m.clone(), truth.clone())));
    }
    let mut agents = Vec::new();
    for t in tasks {
        agents.push(t.await.unwrap());
    }
    person.await.unwrap();

    // For good: a random half stays, the others leave; then the zone is exact.
    let stay: Vec<bool> = agents.iter().map(|_| rng.random_range(0..2) == 0).collect();
    let agents = for_good(agents, &stay, &m, &truth).await;
    check_the_end(&zone, &m, &truth, &agents, &stay, by_name);
}

/// The provider of one schedule: jittered, listing cheaply or not and
/// keeping claims by name or not (drawn from `rng`), and checking the zone
/// against `truth` after every write.
fn checked_memory(
    seed: u64,
    rng: &mut StdRng,
    zone: &DomainName,
    truth: &Arc<Mutex<Truth>>,
) -> Memory {
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
    m
}

/// Two to six instances, each publishing www, an SRV line and its host;
/// sometimes two share an address, and hosts are named by number or for
/// the instance.
fn fleet_of_agents(rng: &mut StdRng) -> Vec<Agent> {
    let n = rng.random_range(2..7usize);
    let shared_ip = rng.random_range(0..4) == 0;
    let named_hosts = rng.random_range(0..2) == 0;
    (0..n)
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
        .collect()
}

/// One instance's plan: one to four operations, each after a pause to
/// think.
fn plan(rng: &mut StdRng) -> Vec<(u64, Op)> {
    let ops = rng.random_range(1..5);
    (0..ops)
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
        .collect()
}

/// The person: adds a value of their own, later removes it; and adds the
/// address of an instance that is not up (a record made by hand).
fn person(
    m: &Arc<Memory>,
    truth: &Arc<Mutex<Truth>>,
    rng: &mut StdRng,
    n: usize,
) -> tokio::task::JoinHandle<()> {
    let m = m.clone();
    let truth = truth.clone();
    let by_name = m.by_name;
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
}

/// Runs an instance's plan, operation after operation, and gives the
/// instance back as it ends.
async fn run_plan(
    mut a: Agent,
    plan: Vec<(u64, Op)>,
    m: Arc<Memory>,
    truth: Arc<Mutex<Truth>>,
) -> Agent {
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
}

/// Every instance joins (where `stay` says so) or leaves for good, all at
/// once; then those that stay join once more.
async fn for_good(
    agents: Vec<Agent>,
    stay: &[bool],
    m: &Arc<Memory>,
    truth: &Arc<Mutex<Truth>>,
) -> Vec<Agent> {
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
            a.run(m, truth, false, None).await;
        }
    }
    agents
}

/// The zone at the end: every check of a write holds, those that stay own
/// what they want with nothing announced, those that left have no registry,
/// and the zone holds exactly what the survivors want and the person's
/// values.
fn check_the_end(
    zone: &DomainName,
    m: &Memory,
    truth: &Mutex<Truth>,
    agents: &[Agent],
    stay: &[bool],
    by_name: bool,
) {
    let persons = truth.lock().unwrap().persons.clone();
    let sets = m.sets.lock().unwrap().clone();
    if let Err(broken) = check_zone(zone, &sets, &truth.lock().unwrap(), by_name) {
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
                    name: registry::name(zone, &a.id).unwrap(),
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
    let ownership = registry::root(zone);
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
