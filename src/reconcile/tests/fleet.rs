//! A simulated fleet on Route53's account limit: hundreds of instances,
//! each with a pacer of its own, join in a storm and stop together, in
//! seconds of test time; a test of three seeds, and a measurement of any
//! size.

use super::*;

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
    let started = tokio::time::Instant::now();
    let sampler = sample_until_published(m.sets.clone(), n, started);
    let joined: Arc<Mutex<Vec<Option<Outcome>>>> = Arc::new(Mutex::new(vec![None; n]));
    let tasks: Vec<_> = (0..n)
        .map(|k| join_one(k, peers[k].clone(), joined.clone(), checkpoints[k].clone()))
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
        .map(|(k, o)| leave_of(k, o, &checkpoints[k], stop))
        .collect();
    let failed = leave_all(seed, leaves, peers).await;
    ScaleIn {
        published_in,
        joined_in,
        join,
        failed,
        left: left_of_the_fleet(&m),
        leave: m.counts().since(join),
    }
}

/// What instance `k` of the simulated fleet publishes: www and the SRV
/// line shared with all, and a host named for it.
fn fleet_lines(k: usize) -> Vec<String> {
    vec![
        format!("www.example.com. A 10.50.{}.{}", k / 200, k % 200 + 1),
        format!("_a._tcp.example.com. SRV 0 0 80 i-{k}.example.com."),
        format!("i-{k}.example.com. A 10.50.{}.{}", k / 200, k % 200 + 1),
    ]
}

/// Looks at the zone every 100 ms until every value of a fleet of `n` is
/// in it, and returns how long after `started` that was.
fn sample_until_published(
    sets: Arc<Mutex<BTreeMap<RrKey, Set>>>,
    n: usize,
    started: tokio::time::Instant,
) -> tokio::task::JoinHandle<Duration> {
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
}

/// Instance `k` joins through its own handle `peer`, keeping what a cut-off
/// join would leave in `checkpoint`, and puts what its join returned in
/// its place in `joined`.
fn join_one(
    k: usize,
    peer: Arc<Memory>,
    joined: Arc<Mutex<Vec<Option<Outcome>>>>,
    checkpoint: Checkpoint,
) -> tokio::task::JoinHandle<()> {
    let l = fleet_lines(k);
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
}

/// The leave of instance `k` with `stop`, given `joined`, what its join
/// returned if it did.
fn leave_of(k: usize, joined: Option<Outcome>, checkpoint: &Checkpoint, stop: Duration) -> Intent {
    let l = fleet_lines(k);
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
        leave.memory = checkpoint.take();
    }
    leave.deadline = stop;
    leave
}

/// Every instance leaves through its own handle, each starting within
/// 100 ms (drawn from `seed`); returns how many leaves failed.
async fn leave_all(seed: u64, leaves: Vec<Intent>, peers: Vec<Arc<Memory>>) -> usize {
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
    failed
}

/// What the fleet left in the zone, registries included: every line but
/// the person's value.
fn left_of_the_fleet(m: &Memory) -> Vec<String> {
    m.sets
        .lock()
        .unwrap()
        .values()
        .flat_map(|s| s.values.iter())
        .map(Value::to_line)
        .filter(|l| !l.contains("192.0.2.250"))
        .collect()
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
