//! A fleet of `dnsreg run` agents starting together on a provider that
//! throttles, then stopped together: nothing lost, nothing left, every agent
//! exits 0. The invariants only; how fast is `scripts/bench`'s business.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testkit::route53::Quota;

use crate::battery::{Backend, CloudflareBackend, Route53Backend, World};
use crate::util::stderr;

const N: usize = 50;
const PERSONS: &str = "192.0.2.250";

/// One machine of the fleet.
struct Machine {
    id: String,
    ip: String,
}

impl Machine {
    fn nth(i: usize) -> Machine {
        Machine {
            id: format!("i-{i:04}"),
            ip: format!("10.1.{}.{}", i / 200, i % 200 + 1),
        }
    }

    /// Its three values: host A, its address in `www`, its SRV line.
    fn values<B: Backend>(&self, w: &World<B>) -> [bool; 3] {
        [
            w.values(&self.id, "A").contains(&self.ip),
            w.values("www", "A").contains(&self.ip),
            w.values("_app._tcp", "SRV")
                .contains(&format!("0 0 443 {}.example.com.", self.id)),
        ]
    }
}

fn config<B: Backend>(w: &World<B>, m: &Machine, extra: &str) -> PathBuf {
    let dir = w.dir.path().join(&m.id);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dnsreg.toml");
    let text = format!(
        r#"
[instance]
metadata = "none"
id = "{id}"
ipv4 = "{ip}"

[providers.p]
{provider}
{extra}

[[host]]
providers = ["p"]
name = "{{instance_id}}"

[[round_robin]]
providers = ["p"]
name = "www"

[[srv]]
providers = ["p"]
name = "_app._tcp"
port = 443
target = "{{instance_id}}"

[agent]
reconcile_interval = "300s"
stop_timeout = "90s"
state_dir = "{state}"
"#,
        id = m.id,
        ip = m.ip,
        provider = w.backend.provider_table(),
        extra = extra.replace("{dir}", &dir.display().to_string()),
        state = dir.join("state").display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn start<B: Backend>(w: &World<B>, machines: &[Machine], extra: &str) -> Vec<Child> {
    machines
        .iter()
        .map(|m| {
            let cfg = config(w, m, extra);
            let mut c: Command = w.dnsreg();
            c.arg("-c")
                .arg(cfg)
                .arg("run")
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            c.spawn().expect("start dnsreg run")
        })
        .collect()
}

/// Starts N agents at once, waits until all are published (sampling that no
/// value once seen goes away), stops them all at once, and checks that each
/// exits 0 and that nothing but the person's value is left.
fn fleet_joins_and_leaves<B: Backend>(w: &World<B>, extra: &str) {
    let machines: Vec<Machine> = (0..N).map(Machine::nth).collect();
    let mut agents = start(w, &machines, extra);
    let mut seen = [[false; 3]; N];
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let now: Vec<[bool; 3]> = machines.iter().map(|m| m.values(w)).collect();
        for (i, (was, is)) in seen.iter_mut().zip(&now).enumerate() {
            for k in 0..3 {
                assert!(
                    !was[k] || is[k],
                    "{}: value {k} of {} was published and then lost",
                    w.name(),
                    machines[i].id
                );
                was[k] |= is[k];
            }
        }
        if now.iter().all(|v| v.iter().all(|b| *b)) {
            break;
        }
        for a in &mut agents {
            if let Some(status) = a.try_wait().unwrap() {
                panic!("{}: an agent exited while joining: {status}", w.name());
            }
        }
        assert!(
            Instant::now() < deadline,
            "{}: not all published within 180 s: {} of {N}",
            w.name(),
            now.iter().filter(|v| v.iter().all(|b| *b)).count()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(w.values("www", "A").contains(&PERSONS.to_string()));

    // Scale-in: SIGTERM to all at once.
    for a in &agents {
        let pid = a.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
    }
    for (a, m) in agents.into_iter().zip(&machines) {
        let out = a.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}: {} exited {:?}: {}",
            w.name(),
            m.id,
            out.status,
            stderr(&out)
        );
    }
    let left: BTreeSet<String> = w.records().into_iter().collect();
    let persons = format!("www.example.com. A {PERSONS}");
    assert_eq!(
        left,
        BTreeSet::from([persons]),
        "{}: only the person's value may be left",
        w.name()
    );
}

#[test]
fn route53_multivalue_fleet_under_the_account_rate_loses_nothing_and_leaves_nothing() {
    let w = World::<Route53Backend>::new();
    w.r53.set_quota(Some(Quota {
        rate: 20.0,
        burst: 10.0,
    }));
    w.r53.set_prior_request_not_complete(0.05, 7);
    let mut persons = testkit::route53::RrSet::simple("www.example.com.", "A", 60, &[PERSONS]);
    persons.set_identifier = Some("by-hand".into());
    persons.multivalue_answer = Some(true);
    w.r53.put_rrset(&w.zone_id, persons);
    fleet_joins_and_leaves(&w, "routing = \"multivalue\"");
    let s = w.r53.stats();
    assert!(s.throttled > 0, "the fleet was never throttled: {s:?}");
    assert!(
        s.prior_request_not_complete > 0,
        "no PriorRequestNotComplete was met: {s:?}"
    );
}

#[test]
fn route53_simple_fleet_sharing_one_rrset_loses_nothing_and_leaves_nothing() {
    let w = World::<Route53Backend>::new();
    w.r53.set_quota(Some(Quota {
        rate: 20.0,
        burst: 10.0,
    }));
    w.r53.set_prior_request_not_complete(0.05, 11);
    w.put_by_hand("www", "A", PERSONS, 60);
    fleet_joins_and_leaves(&w, "");
    let s = w.r53.stats();
    assert!(s.throttled > 0, "the fleet was never throttled: {s:?}");
    // Contended, the instances announced and were carried: one write changed
    // the shared rrsets and the registries of others too, more names than
    // any instance's own change (its registry, its host, www and the SRV
    // rrset). (A write that raced another and was refused proves contention
    // as well, but leaves that announce once the provider throttles seldom
    // race any more.)
    assert!(
        s.most_names_in_a_batch > 4,
        "no write carried another instance's announced values: {s:?}"
    );
}

#[test]
fn cloudflare_fleet_under_the_rate_limit_loses_nothing_and_leaves_nothing() {
    let w = World::<CloudflareBackend>::new();
    // About one batch per join and per leave: 30 per two seconds holds 50 back.
    w.cf.set_rate_limit(Some((30, Duration::from_secs(2))));
    w.put_by_hand("www", "A", PERSONS, 60);
    // A token of each agent's own (the limit is the user's, shared), so that
    // the stand-in can tell an agent that did not wait as it was told.
    for i in 0..N {
        let m = Machine::nth(i);
        let dir = w.dir.path().join(&m.id);
        std::fs::create_dir_all(&dir).unwrap();
        let token = format!("fleet-token-{i:04}-0123456789abcdef");
        std::fs::write(dir.join("token"), &token).unwrap();
        w.cf.add_token(&token, true);
    }
    fleet_joins_and_leaves(&w, "token_file = \"{dir}/token\"");
    let s = w.cf.stats();
    assert!(
        s.rate_limited > 0,
        "the fleet was never rate limited: {s:?}"
    );
    assert_eq!(
        s.ignored_retry_after, 0,
        "an agent came back before the Retry-After it was given: {s:?}"
    );
}

#[test]
fn rfc2136_fleet_on_a_real_bind_loses_nothing_and_leaves_nothing() {
    let w = World::<crate::battery::Rfc2136Backend>::new();
    w.put_by_hand("www", "A", PERSONS, 60);
    fleet_joins_and_leaves(&w, "");
}
