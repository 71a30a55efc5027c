//! Leases and `dnsreg reap`: the records of machines that died without leaving
//! are removed by their peers — exactly the values each dead machine's registry
//! lists, never anything else, once however many reapers run.

use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use testkit::route53::RrSet;

use crate::util::{Env, Said, run_expect, stderr, stdout, wait_until};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What a crashed instance leaves: its values in the shared rrsets, and its
/// registry with a lease that ran out at `expiry` (or none).
fn plant_registry(env: &Env, id: &str, lines: &[&str], expiry: Option<u64>) {
    let mut reg: Vec<String> = lines.iter().map(|l| format!("\"dnsreg1 {l}\"")).collect();
    if let Some(t) = expiry {
        reg.push(format!("\"dnsreg1-lease {t}\""));
    }
    let reg: Vec<&str> = reg.iter().map(String::as_str).collect();
    env.r53.put_rrset(
        &env.zone_id,
        RrSet::simple(&format!("{id}._dnsreg.example.com."), "TXT", 60, &reg),
    );
}

fn add_value(env: &Env, name: &str, value: &str) {
    let mut v = env.values(name, "A");
    v.push(value.to_string());
    let v: Vec<&str> = v.iter().map(String::as_str).collect();
    env.r53.put_rrset(
        &env.zone_id,
        RrSet::simple(&format!("{name}.example.com."), "A", 60, &v),
    );
}

/// `dnsreg -c CONFIG run`, its stdout and stderr read as they come.
fn run_agent(env: &Env, config: &std::path::Path) -> (Child, Said, Said) {
    let mut child = env
        .dnsreg()
        .arg("-c")
        .arg(config)
        .arg("run")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = Said::read(child.stdout.take().unwrap());
    let err = Said::read(child.stderr.take().unwrap());
    (child, out, err)
}

/// SIGTERM; the exit status, within `limit` (else the agent is killed and
/// the test fails).
fn stop_within(child: &mut Child, limit: Duration, err: &mut Said) -> ExitStatus {
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the agent did not exit within {limit:?} of SIGTERM:\n{}",
                err.all()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

const REAPER: &str = r#"
[instance]
metadata = "none"
id = "i-reaper"
ipv4 = "192.0.2.50"

[providers.r53]
type = "route53"
zone = "example.com"

[[round_robin]]
providers = ["r53"]
name = "www"

[lease]
ttl = "1h"
reap = true

[agent]
reconcile_interval = "1s"
stop_timeout = "10s"
state_dir = "{state_dir}"
"#;

#[test]
fn reap_removes_only_what_expired_registries_list_and_once_with_many_reapers() {
    let env = Env::new();
    let t = now();
    // A person's value, two dead machines, one live one sharing .8, one without a lease.
    add_value(&env, "www", "192.0.2.99");
    for (id, ip, expiry) in [
        ("i-dead1", "192.0.2.7", Some(t - 60)),
        ("i-dead2", "192.0.2.8", Some(t - 5)),
        ("i-live", "192.0.2.8", Some(t + 3600)),
        ("i-nolease", "192.0.2.9", None),
    ] {
        if !env.values("www", "A").contains(&ip.to_string()) {
            add_value(&env, "www", ip);
        }
        plant_registry(&env, id, &[&format!("www.example.com. A {ip}")], expiry);
    }
    let config = env.config("reap.toml", REAPER);

    // Five reapers at once.
    let handles: Vec<_> = (0..5)
        .map(|_| {
            let mut c = env.dnsreg();
            c.arg("-c").arg(&config).arg("reap");
            std::thread::spawn(move || c.output().unwrap())
        })
        .collect();
    let mut reaped = Vec::new();
    for h in handles {
        let out = h.join().unwrap();
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        reaped.extend(
            stdout(&out)
                .lines()
                .filter(|l| l.contains("reaped"))
                .map(str::to_string),
        );
    }
    reaped.sort();
    assert_eq!(
        reaped.len(),
        2,
        "each dead instance reaped once: {reaped:?}"
    );
    assert!(
        reaped[0].contains("i-dead1") && reaped[1].contains("i-dead2"),
        "{reaped:?}"
    );

    // .7 gone; .8 stays for the live instance; the person's and the lease-less stay.
    assert_eq!(
        env.values("www", "A"),
        ["192.0.2.8", "192.0.2.9", "192.0.2.99"]
    );
    assert!(env.values("i-dead1._dnsreg", "TXT").is_empty());
    assert!(env.values("i-dead2._dnsreg", "TXT").is_empty());
    assert_eq!(env.values("i-live._dnsreg", "TXT").len(), 2);
    assert_eq!(env.values("i-nolease._dnsreg", "TXT").len(), 1);

    // Nothing left to reap.
    let mut c = env.dnsreg();
    c.arg("-c").arg(&config).arg("reap");
    let out = run_expect(&mut c, 0);
    assert!(
        stdout(&out).contains("no expired leases"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn the_agent_holds_a_lease_and_reaps_its_dead_peers() {
    let env = Env::new();
    plant_registry(
        &env,
        "i-crashed",
        &["www.example.com. A 192.0.2.66"],
        Some(now() - 1),
    );
    add_value(&env, "www", "192.0.2.66");
    let config = env.config("agent.toml", REAPER);
    let (mut child, mut out, mut err) = run_agent(&env, &config);
    wait_until(Duration::from_secs(20), "the crashed peer reaped", || {
        env.values("www", "A") == ["192.0.2.50"]
    });
    // The zone changes when the change is submitted; the reaper reports once
    // Route53 says INSYNC: wait for that report before stopping it.
    out.wait_for(Duration::from_secs(20), "reaped i-crashed");
    // Our own registry carries a lease about an hour out.
    let reg = env.values("i-reaper._dnsreg", "TXT");
    let lease: u64 = reg
        .iter()
        .find_map(|v| {
            v.trim_matches('"')
                .strip_prefix("dnsreg1-lease ")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no lease line in {reg:?}"));
    assert!(lease.abs_diff(now() + 3600) < 30, "{lease}");

    // stop_timeout is 10 s.
    let status = stop_within(&mut child, Duration::from_secs(15), &mut err);
    assert_eq!(status.code(), Some(0), "{}", err.all());
    let out = out.all();
    assert_eq!(
        out.matches("reaped i-crashed").count(),
        1,
        "reaped once:\n{out}"
    );
    assert_eq!(env.records(), Vec::<String>::new());
}

#[test]
fn lease_and_check_mistakes_are_configuration_errors() {
    let env = Env::new();
    let config = env.config(
        "bad.toml",
        r#"
[instance]
metadata = "none"
id = "i-1"
ipv4 = "192.0.2.1"

[providers.r53]
type = "route53"
zone = "example.com"

[[round_robin]]
providers = ["r53"]
name = "www"

[[check]]
http = "127.0.0.1:8080/healthz"
interval = "1s"
timeout = "5s"

[[check]]
tcp = "127.0.0.1:8080"
exec = ["/bin/true"]

[[check]]
exec = []
rise = 0

[lease]
ttl = "10s"

[agent]
drain = "30s"
stop_timeout = "20s"
"#,
    );
    let mut c = env.dnsreg();
    c.arg("-c").arg(&config).arg("check");
    let out = run_expect(&mut c, 2);
    let err = stderr(&out);
    for says in [
        "bad.toml:16: check[0].http",
        "check[0].timeout",
        "bad.toml:20: check[1]: a check needs exactly one of",
        "check[2].exec",
        "check[2].rise",
        "lease.ttl: must be at least 60s",
        "agent.drain",
    ] {
        assert!(err.contains(says), "{says}:\n{err}");
    }
}

/// Under multivalue routing each instance has rrsets of its own: a reaper
/// (another instance, `dnsreg reap`) must delete the dead instance's rrsets,
/// not look for its own; an address the dead and a live instance both publish
/// is in two rrsets, and only the dead one's goes.
#[test]
fn reap_deletes_a_dead_instances_own_multivalue_rrsets() {
    let env = Env::new();
    let t = now();
    let multivalue = |id: &str, value: &str| {
        let mut r = RrSet::simple("www.example.com.", "A", 60, &[value]);
        r.set_identifier = Some(id.to_string());
        r.multivalue_answer = Some(true);
        env.r53.put_rrset(&env.zone_id, r);
    };
    multivalue("i-Dead", "192.0.2.7");
    plant_registry(
        &env,
        "i-dead",
        &["www.example.com. A 192.0.2.7"],
        Some(t - 5),
    );
    multivalue("i-live", "192.0.2.7");
    plant_registry(
        &env,
        "i-live",
        &["www.example.com. A 192.0.2.7"],
        Some(t + 3600),
    );
    let config = env.config(
        "reap.toml",
        "[providers.r53]\ntype = \"route53\"\nzone = \"example.com\"\nrouting = \"multivalue\"\n\n[[round_robin]]\nproviders = [\"r53\"]\nname = \"www\"\n\n[agent]\nstate_dir = \"{state_dir}\"\n",
    );
    let out = run_expect(env.dnsreg().arg("-c").arg(&config).arg("reap"), 0);
    assert!(stdout(&out).contains("reaped i-dead"), "{}", stdout(&out));
    let left: Vec<String> = env
        .records()
        .into_iter()
        .filter(|r| r.starts_with("www."))
        .collect();
    assert_eq!(
        left,
        ["www.example.com. A [i-live] 192.0.2.7"],
        "only the live instance's rrset stays"
    );
    assert!(
        !env.records()
            .iter()
            .any(|r| r.starts_with("i-dead._dnsreg")),
        "{:?}",
        env.records()
    );
}

/// Many expired instances under multivalue routing, in a zone of several
/// pages: the reaper reads them all with one listing of the zone (a request
/// per 300 rrsets), not a request per rrset of each, and deletes exactly
/// theirs, one change each.
#[test]
fn reap_reads_many_expired_multivalue_instances_with_one_listing() {
    let env = Env::new();
    let t = now();
    let multivalue = |id: &str, name: &str, value: &str| {
        let mut r = RrSet::simple(&format!("{name}.example.com."), "A", 60, &[value]);
        r.set_identifier = Some(id.to_string());
        r.multivalue_answer = Some(true);
        env.r53.put_rrset(&env.zone_id, r);
    };
    // 320 hand-made names: the zone is more than one page.
    for i in 0..320 {
        env.r53.put_rrset(
            &env.zone_id,
            RrSet::simple(
                &format!("filler-{i:03}.example.com."),
                "A",
                60,
                &["192.0.2.1"],
            ),
        );
    }
    for k in 0..6 {
        let (id, ip) = (format!("i-dead{k}"), format!("192.0.2.{}", 10 + k));
        multivalue(&id, "www", &ip);
        multivalue(&id, "api", &ip);
        plant_registry(
            &env,
            &id,
            &[
                &format!("www.example.com. A {ip}"),
                &format!("api.example.com. A {ip}"),
            ],
            Some(t - 5),
        );
    }
    multivalue("i-live", "www", "192.0.2.99");
    plant_registry(
        &env,
        "i-live",
        &["www.example.com. A 192.0.2.99"],
        Some(t + 3600),
    );
    let config = env.config(
        "reap.toml",
        "[providers.r53]\ntype = \"route53\"\nzone = \"example.com\"\nrouting = \"multivalue\"\n\n[[round_robin]]\nproviders = [\"r53\"]\nname = \"www\"\n\n[agent]\nstate_dir = \"{state_dir}\"\n",
    );
    env.r53.reset_stats();
    let out = run_expect(env.dnsreg().arg("-c").arg(&config).arg("reap"), 0);
    for k in 0..6 {
        assert!(
            stdout(&out).contains(&format!("reaped i-dead{k}")),
            "{}",
            stdout(&out)
        );
    }
    let left: Vec<String> = env
        .records()
        .into_iter()
        .filter(|r| !r.starts_with("filler-"))
        .collect();
    assert_eq!(
        left,
        [
            "i-live._dnsreg.example.com. TXT \"dnsreg1 www.example.com. A 192.0.2.99\" | \"dnsreg1-lease "
                .to_string()
                + &(t + 3600).to_string()
                + "\"",
            "www.example.com. A [i-live] 192.0.2.99".to_string(),
        ],
        "only the live instance's records stay"
    );
    let stats = env.r53.stats().requests;
    // The zone lookup, the registries (one page), the zone (two pages).
    assert_eq!(
        stats.get("ListResourceRecordSets").copied(),
        Some(3),
        "{stats:?}"
    );
    assert_eq!(
        stats.get("ChangeResourceRecordSets").copied(),
        Some(6),
        "{stats:?}"
    );
}

/// A stop that runs out of time because the provider stays busy (a fleet
/// stopping faster than the account's rate allows): with a lease, the records
/// are left for the reapers and the agent says so and exits 0; without one it
/// exits 1 and says a lease would have let peers reap them.
#[test]
fn a_stop_out_of_time_is_left_to_reapers_when_a_lease_covers_it() {
    for lease in [true, false] {
        let env = Env::new();
        let text = REAPER
            .replace("stop_timeout = \"10s\"", "stop_timeout = \"2s\"")
            .replace("reap = true\n", "")
            .replace(
                "[lease]\nttl = \"1h\"\n",
                if lease { "[lease]\nttl = \"1h\"\n" } else { "" },
            );
        let config = env.config("agent.toml", &text);
        let (mut child, _out, mut err) = run_agent(&env, &config);
        wait_until(Duration::from_secs(20), "www published", || {
            env.values("www", "A") == ["192.0.2.50"]
        });
        // Route53 answers nothing but Throttling from now on.
        env.r53
            .fail_next(10_000, testkit::route53::Fault::Throttling);
        // The stop gives up when stop_timeout (2 s) runs out, however long
        // the provider would keep it retrying: 10 s leaves room for a loaded
        // machine and catches a stop that retries past it.
        let status = stop_within(&mut child, Duration::from_secs(10), &mut err);
        let err = err.all();
        assert!(
            env.r53.pending_faults() < 10_000,
            "the stop never asked Route53"
        );
        assert_eq!(
            env.values("www", "A"),
            ["192.0.2.50"],
            "nothing could be removed"
        );
        if lease {
            assert_eq!(status.code(), Some(0), "{err}");
            assert!(err.contains("left for reapers"), "{err}");
        } else {
            assert_eq!(status.code(), Some(1), "{err}");
            assert!(err.contains("a [lease] would let peers reap them"), "{err}");
        }
    }
}
