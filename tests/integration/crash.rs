//! Crash safety: SIGKILL right after request k of a join or a leave, for every
//! k, on every provider, then the next run (a join or a leave) converges to
//! exactly the right records, with no duplicates and nothing of an old
//! address left behind (docs/design.md, "The state file": written
//! atomically).
//!
//! A kill lands at a known point, never at a guess: the server holds request k
//! when it arrives (the HTTP stand-ins' [`hold`](testkit::route53::Route53Server::hold);
//! for BIND, [`DnsProxy`] holding message k), so dnsreg has sent it and waits
//! for its answer; the test kills dnsreg then, checks that nothing came after
//! request k, and only then lets request k go:
//!
//! - served: it lands (a change is applied) and its answer is lost, which for
//!   the server and the state file is also a kill right after its answer;
//! - dropped, for writes: it never lands, as if dnsreg had died just before
//!   sending it (right after the answer to the request before).
//!
//! dnsreg reads an RFC 2136 server with several queries at once, so there
//! message k may have company: every message from the k-th on is held, and
//! the kill must land before the hold of any of them is over, so that dnsreg
//! had no answer to any of them.
//!
//! Each is done for every request of four runs: a first join (no state file
//! yet), a join on an empty zone, a join at a new address (EC2 stop/start)
//! over a completed join at the old one, and a leave; each kill is followed
//! once by a join and once by a leave.
//! How many requests a run makes is counted from an undisturbed run first.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testkit::dnsproxy::{DnsFault, Kind};
use testkit::{Release, Requests};

use crate::battery::{Backend, CloudflareBackend, Route53Backend, World};
use crate::faults::ProxiedBind;
use crate::util::{ZONE, claim_name, run_expect};

/// Our instance and what it publishes.
const ID: &str = "i-crash";
const ARGS: &str = "--service _v1._theservice._tcp --port 8080 --name www";
/// The address of a joined instance, and the one it moves to.
const OLD: &str = "192.0.2.1";
const NEW: &str = "192.0.2.2";

/// How BIND's proxy holds a message for a kill: long enough for the test to
/// see it and kill dnsreg, shorter than dnsreg's 3 s before it asks again.
const DNS_HOLD: Duration = Duration::from_millis(1500);

/// A provider whose server can stop dnsreg at its k-th request.
trait Crashable: Backend {
    /// Requests (`Any`) or writes (`Writes`) the server has received so far,
    /// counted as they arrive (a held one included, once let go).
    fn count(&self, which: Requests) -> u64;
    /// Holds the `nth` request of kind `which` from now on; after the kill
    /// it goes as `how` says.
    fn arm(&self, nth: u32, which: Requests, how: Release);
    /// Whether the request armed for has arrived; `target` is what
    /// [`Crashable::count`] reaches when it has.
    fn arrived(&self, which: Requests, target: u64) -> bool;
    /// Requests of kind `which` that arrived since [`Crashable::arm`], when
    /// [`Crashable::count`] was `base` (a dropped one included).
    fn since_armed(&self, which: Requests, base: u64) -> u64 {
        self.count(which) - base
    }
    /// Requests of kind `which` dnsreg sends at once (a run's reads), all
    /// held from the `nth` on, however many: the time within which the kill
    /// must land for none of them to be answered. `None`: one at a time,
    /// and exactly the `nth` arrives before the kill.
    fn held_together(&self, _which: Requests) -> Option<Duration> {
        None
    }
    /// After the kill: lets the held request go as armed, and returns once
    /// the server is done with it.
    fn finish(&self, how: Release);
}

impl Crashable for Route53Backend {
    fn count(&self, which: Requests) -> u64 {
        let stats = self.r53.stats();
        match which {
            Requests::Any => stats.total(),
            Requests::Writes => stats.requests_of("ChangeResourceRecordSets"),
        }
    }

    fn arm(&self, nth: u32, which: Requests, _how: Release) {
        self.r53.hold(nth, which);
    }

    fn arrived(&self, _which: Requests, _target: u64) -> bool {
        self.r53.is_holding()
    }

    fn since_armed(&self, _which: Requests, _base: u64) -> u64 {
        self.r53.seen_since_hold()
    }

    fn finish(&self, how: Release) {
        self.r53.release(how);
    }
}

impl Crashable for CloudflareBackend {
    fn count(&self, which: Requests) -> u64 {
        let stats = self.cf.stats();
        match which {
            Requests::Any => stats.total(),
            Requests::Writes => stats
                .requests
                .iter()
                .filter(|(kind, _)| !kind.starts_with("GET") && kind.as_str() != "unknown")
                .map(|(_, n)| n)
                .sum(),
        }
    }

    fn arm(&self, nth: u32, which: Requests, _how: Release) {
        self.cf.hold(nth, which);
    }

    fn arrived(&self, _which: Requests, _target: u64) -> bool {
        self.cf.is_holding()
    }

    fn since_armed(&self, _which: Requests, _base: u64) -> u64 {
        self.cf.seen_since_hold()
    }

    fn finish(&self, how: Release) {
        self.cf.release(how);
    }
}

/// Messages through the proxy: every one the `nth` is armed for passes
/// untouched (a zero delay), the `nth` is held [`DNS_HOLD`] and then
/// forwarded (served) or never forwarded (dropped; over UDP, which UPDATEs
/// take, dnsreg then hears nothing for 3 s).
impl Crashable for ProxiedBind {
    fn count(&self, which: Requests) -> u64 {
        let stats = self.proxy.stats();
        match which {
            Requests::Any => stats.total(),
            Requests::Writes => stats.updates,
        }
    }

    fn arm(&self, nth: u32, which: Requests, how: Release) {
        self.proxy.clear();
        match (which, how) {
            (Requests::Any, Release::Serve) => {
                self.proxy
                    .fail_next_of(Kind::Any, nth - 1, DnsFault::Delay(Duration::ZERO));
                // The nth and whatever is sent beside it.
                self.proxy
                    .fail_next_of(Kind::Any, 100, DnsFault::Hold(DNS_HOLD));
            }
            (Requests::Writes, Release::Drop) => {
                self.proxy
                    .fail_next_of(Kind::Update, nth - 1, DnsFault::Delay(Duration::ZERO));
                self.proxy.fail_next_of(Kind::Update, 1, DnsFault::Drop);
            }
            other => panic!("no such cut here: {other:?}"),
        }
    }

    fn held_together(&self, which: Requests) -> Option<Duration> {
        (which == Requests::Any).then_some(DNS_HOLD)
    }

    fn arrived(&self, which: Requests, target: u64) -> bool {
        self.count(which) >= target
    }

    fn finish(&self, how: Release) {
        if how == Release::Serve {
            // Forwarded when the hold is over, and BIND answers in
            // milliseconds.
            std::thread::sleep(DNS_HOLD + Duration::from_millis(500));
        }
        self.proxy.clear();
    }
}

/// What the zone holds (every record, registries and claims kept by name
/// included), as the battery's canonical lines, sorted.
fn joined_at(ip: &str, claims_by_name: bool) -> Vec<String> {
    let dashed = ip.replace('.', "-");
    let host = format!("{dashed}.{ZONE}.");
    let registry = format!("{ID}._dnsreg.{ZONE}. TXT");
    let mut v = vec![
        format!("{host} A {ip}"),
        format!("_v1._theservice._tcp.{ZONE}. SRV 0 0 8080 {host}"),
        format!("www.{ZONE}. A {ip}"),
        format!("{registry} \"dnsreg1 {host} A {ip}\""),
        format!("{registry} \"dnsreg1 _v1._theservice._tcp.{ZONE}. SRV 0 0 8080 {host}\""),
        format!("{registry} \"dnsreg1 www.{ZONE}. A {ip}\""),
    ];
    if claims_by_name {
        for line in v.clone().iter().filter(|l| !l.starts_with(&registry)) {
            v.push(format!(
                "{} TXT \"{}\"",
                claim_name(line),
                ID.to_ascii_lowercase()
            ));
        }
    }
    v.sort();
    v
}

/// Where the zone stands between runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Zone {
    Empty,
    Joined(&'static str),
}

impl Zone {
    fn records(self, claims_by_name: bool) -> Vec<String> {
        match self {
            Zone::Empty => Vec::new(),
            Zone::Joined(ip) => joined_at(ip, claims_by_name),
        }
    }
}

/// A run to cut short: the command, and where the zone must stand before it.
#[derive(Clone, Copy, Debug)]
struct Run {
    what: &'static str,
    action: &'static str,
    ip: &'static str,
    before: Zone,
    /// Without a state file: the instance's first run.
    first: bool,
}

const RUNS: [Run; 4] = [
    Run {
        what: "a first join",
        action: "join",
        ip: OLD,
        before: Zone::Empty,
        first: true,
    },
    Run {
        what: "a join on an empty zone",
        action: "join",
        ip: OLD,
        before: Zone::Empty,
        first: false,
    },
    Run {
        what: "a join at a new address",
        action: "join",
        ip: NEW,
        before: Zone::Joined(OLD),
        first: false,
    },
    Run {
        what: "a leave",
        action: "leave",
        ip: OLD,
        before: Zone::Joined(OLD),
        first: false,
    },
];

struct Crash<'a, B: Crashable> {
    w: &'a World<B>,
    /// Where the zone stands now.
    now: Zone,
}

impl<B: Crashable> Crash<'_, B> {
    fn command(&self, action: &str, ip: &str) -> Command {
        self.w.instance(action, ID, ip, ARGS)
    }

    /// Runs to its end, and checks the zone.
    fn complete(&mut self, action: &str, ip: &'static str, when: &str) {
        run_expect(&mut self.command(action, ip), 0);
        self.now = if action == "join" {
            Zone::Joined(ip)
        } else {
            Zone::Empty
        };
        assert_eq!(
            self.w.records(),
            self.now.records(self.w.claims_by_name()),
            "{}: {when}: {action} at {ip}",
            self.w.name()
        );
    }

    /// Brings the zone to where `run` starts, with complete runs.
    fn bring_to(&mut self, run: Run) {
        if self.now != run.before {
            match run.before {
                Zone::Empty => self.complete("leave", OLD, "setting up"),
                Zone::Joined(ip) => self.complete("join", ip, "setting up"),
            }
        }
        if run.first {
            let state = self.w.state_dir().join(ID);
            if state.exists() {
                std::fs::remove_dir_all(state).unwrap();
            }
        }
    }

    /// Requests of kind `which` an undisturbed `run` makes, from its start.
    fn requests_of(&mut self, run: Run, which: Requests) -> u32 {
        self.bring_to(run);
        let before = self.w.count(which);
        self.complete(run.action, run.ip, run.what);
        u32::try_from(self.w.count(which) - before).unwrap()
    }

    /// `run`, killed right after its `k`-th request of kind `which`, that
    /// request then going as `how` says; then `next` to its end.
    fn cut(&mut self, run: Run, k: u32, which: Requests, how: Release, next: Run) {
        let name = self.w.name();
        let at = format!(
            "{} ({}), killed after its request {k} ({which:?}), which was then {how:?}, then {}",
            run.what, run.action, next.action
        );
        self.bring_to(run);
        let base = self.w.count(which);
        self.w.arm(k, which, how);
        let mut child = quiet(self.command(run.action, run.ip));
        let deadline = Instant::now() + Duration::from_secs(30);
        let arrived = loop {
            if self.w.arrived(which, base + u64::from(k)) {
                break Instant::now();
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("{name}: {at}: dnsreg ended ({status}) before request {k}");
            }
            assert!(
                Instant::now() < deadline,
                "{name}: {at}: request {k} never came"
            );
            std::thread::sleep(Duration::from_millis(1));
        };
        assert!(
            child.try_wait().unwrap().is_none(),
            "{name}: {at}: dnsreg ended while request {k} was held"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        let killed = arrived.elapsed();
        let seen = self.w.since_armed(which, base);
        self.w.finish(how);
        match self.w.held_together(which) {
            None => assert_eq!(
                seen,
                u64::from(k),
                "{name}: {at}: the kill came right after request {k}, not later"
            ),
            Some(hold) => assert!(
                seen >= u64::from(k) && killed < hold,
                "{name}: {at}: the kill came {killed:?} after request {k} arrived \
                 ({seen} since), before any answer (held {hold:?})"
            ),
        }
        // Whatever was cut short, the next complete run converges.
        self.complete(next.action, next.ip, &at);
    }
}

fn quiet(mut c: Command) -> Child {
    c.stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Every cut of every run, each followed by a join and by a leave; panics
/// unless the zone is exactly right after each. Returns how many kills.
fn crash_everywhere<B: Crashable>(w: &World<B>) -> u32 {
    let mut c = Crash {
        w,
        now: Zone::Empty,
    };
    // A first life, so that every run below starts as a later one would (the
    // zone's id known, a state file there).
    c.complete("join", OLD, "a first join");
    c.complete("leave", OLD, "a first leave");
    let mut kills = 0;
    for run in RUNS {
        let requests = c.requests_of(run, Requests::Any);
        let writes = c.requests_of(run, Requests::Writes);
        eprintln!(
            "{}: {} makes {requests} requests, {writes} of them writes",
            w.name(),
            run.what
        );
        assert!(
            writes >= 1 && requests >= writes,
            "{}: {}",
            w.name(),
            run.what
        );
        let cuts = (1..=requests)
            .map(|k| (k, Requests::Any, Release::Serve))
            .chain((1..=writes).map(|k| (k, Requests::Writes, Release::Drop)));
        for (k, which, how) in cuts {
            for next in [
                Run {
                    action: "join",
                    ip: if run.action == "join" { run.ip } else { OLD },
                    ..run
                },
                Run {
                    action: "leave",
                    ..run
                },
            ] {
                c.cut(run, k, which, how, next);
                kills += 1;
            }
        }
    }
    kills
}

#[test]
fn sigkill_after_each_request_of_route53_joins_and_leaves_never_leaves_a_mess() {
    let w = World::<Route53Backend>::new();
    // Live at once: a join asks GetChange exactly once.
    w.r53.set_insync_after(Duration::ZERO);
    let kills = crash_everywhere(&w);
    eprintln!("route53: {kills} kills");
}

#[test]
fn sigkill_after_each_request_of_cloudflare_joins_and_leaves_never_leaves_a_mess() {
    let w = World::<CloudflareBackend>::new();
    let kills = crash_everywhere(&w);
    eprintln!("cloudflare: {kills} kills");
}

#[test]
fn sigkill_after_each_message_of_rfc2136_joins_and_leaves_never_leaves_a_mess() {
    let w = World::<ProxiedBind>::new();
    let kills = crash_everywhere(&w);
    eprintln!("rfc2136: {kills} kills");
}
