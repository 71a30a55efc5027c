//! Join and leave against the strict Route53 stand-in: what a user sees in the zone.

use std::process::Command;
use std::sync::Arc;

use testkit::route53::{Fault, RrSet};

use crate::util::{Env, run_expect, stdout};

/// The original script's invocation, as flags.
fn flags(env: &Env, cmd: &str) -> Command {
    env.flags(cmd, "--service _v1._theservice._tcp --port 8080")
}

#[test]
fn join_publishes_the_host_and_srv_line_and_leave_removes_them() {
    let env = Env::new();
    let out = run_expect(&mut flags(&env, "join"), 0);
    assert!(
        stdout(&out).contains("+ 203-0-113-7.example.com. A 203.0.113.7"),
        "{}",
        stdout(&out)
    );
    assert_eq!(env.values("203-0-113-7", "A"), vec!["203.0.113.7"]);
    assert_eq!(
        env.values("_v1._theservice._tcp", "SRV"),
        vec!["0 0 8080 203-0-113-7.example.com."]
    );
    // The ownership registry lists exactly what was published.
    let registry = env.values("i-0123456789abcdef0._dnsreg", "TXT");
    assert_eq!(registry.len(), 2, "{registry:?}");
    assert!(
        registry
            .iter()
            .any(|v| v.contains("203-0-113-7.example.com. A 203.0.113.7"))
    );

    // status: everything present.
    run_expect(&mut flags(&env, "status"), 0);

    // A second join changes nothing and sends no change batch.
    let batches = env.r53.stats().applied_batches;
    let out = run_expect(&mut flags(&env, "join"), 0);
    assert!(
        stdout(&out).contains("already published"),
        "{}",
        stdout(&out)
    );
    assert_eq!(env.r53.stats().applied_batches, batches);

    run_expect(&mut flags(&env, "leave"), 0);
    assert_eq!(env.records(), Vec::<String>::new());
    // status now says what is missing, with exit 1.
    let out = run_expect(&mut flags(&env, "status"), 1);
    assert!(stdout(&out).contains("MISSING"), "{}", stdout(&out));
    // Leaving again is a no-op.
    let out = run_expect(&mut flags(&env, "leave"), 0);
    assert!(
        stdout(&out).contains("nothing of ours to remove"),
        "{}",
        stdout(&out)
    );
}

const FULL: &str = r#"
[instance]
metadata = "aws"

[providers.r53]
type = "route53"
zone = "example.com"

[[host]]
providers = ["r53"]
name = "{instance_id}"
ttl = 30

[[round_robin]]
providers = ["r53"]
name = "www"

[[srv]]
providers = ["r53"]
name = "_v1._theservice._tcp"
port = 8080
weight = 10
target = "{instance_id}"

[[service]]
providers = ["r53"]
type = "_http._tcp"
instance = "{hostname}"
port = 8080
target = "{instance_id}"
txt = { path = "/", version = "1" }

[agent]
state_dir = "{state_dir}"
"#;

#[test]
fn a_config_file_publishes_every_kind_of_record_in_one_batch() {
    let env = Env::new();
    let config = env.config("dnsreg.toml", FULL);
    run_expect(env.dnsreg().arg("-c").arg(&config).arg("join"), 0);
    let mut records: Vec<String> = env
        .records()
        .into_iter()
        .filter(|r| !r.contains("._dnsreg."))
        .collect();
    records.sort();
    assert_eq!(
        records,
        vec![
            "_http._tcp.example.com. PTR ip-10-0-0-5._http._tcp.example.com.",
            "_v1._theservice._tcp.example.com. SRV 0 10 8080 i-0123456789abcdef0.example.com.",
            "i-0123456789abcdef0.example.com. A 203.0.113.7",
            "ip-10-0-0-5._http._tcp.example.com. SRV 0 0 8080 i-0123456789abcdef0.example.com.",
            "ip-10-0-0-5._http._tcp.example.com. TXT \"path=/\" \"version=1\"",
            "www.example.com. A 203.0.113.7",
        ]
    );
    assert_eq!(
        env.values("i-0123456789abcdef0._dnsreg", "TXT").len(),
        6,
        "the registry lists all six values"
    );
    assert_eq!(
        env.r53.stats().applied_batches,
        1,
        "one change batch for the whole join"
    );
    let ttl = env
        .r53
        .rrsets(&env.zone_id)
        .into_iter()
        .find(|r| r.name == "i-0123456789abcdef0.example.com.")
        .unwrap()
        .ttl;
    assert_eq!(ttl, 30);

    run_expect(env.dnsreg().arg("-c").arg(&config).arg("leave"), 0);
    assert_eq!(env.records(), Vec::<String>::new());
}

#[test]
fn a_value_put_there_by_hand_survives_join_and_leave() {
    let env = Env::new();
    env.r53.put_rrset(
        &env.zone_id,
        RrSet::simple("www.example.com.", "A", 300, &["192.0.2.99"]),
    );
    env.r53.put_rrset(
        &env.zone_id,
        RrSet::simple(
            "_v1._theservice._tcp.example.com.",
            "SRV",
            300,
            &["5 5 9000 legacy.example.net."],
        ),
    );
    let mut join = flags(&env, "join");
    run_expect(join.args(["--name", "www"]), 0);
    assert_eq!(env.values("www", "A"), vec!["192.0.2.99", "203.0.113.7"]);
    assert_eq!(
        env.values("_v1._theservice._tcp", "SRV"),
        vec![
            "0 0 8080 203-0-113-7.example.com.",
            "5 5 9000 legacy.example.net."
        ]
    );

    let mut leave = flags(&env, "leave");
    run_expect(leave.args(["--name", "www"]), 0);
    assert_eq!(env.values("www", "A"), vec!["192.0.2.99"]);
    assert_eq!(
        env.values("_v1._theservice._tcp", "SRV"),
        vec!["5 5 9000 legacy.example.net."]
    );
    let www = env
        .r53
        .rrsets(&env.zone_id)
        .into_iter()
        .find(|r| r.name == "www.example.com.")
        .unwrap();
    assert_eq!(www.ttl, 300, "the person's TTL is kept");
    assert_eq!(env.values("203-0-113-7", "A"), Vec::<String>::new());
}

#[test]
fn our_own_address_put_there_by_someone_else_is_not_claimed() {
    let env = Env::new();
    env.r53.put_rrset(
        &env.zone_id,
        RrSet::simple("www.example.com.", "A", 60, &["203.0.113.7"]),
    );
    let mut join = flags(&env, "join");
    let out = run_expect(join.args(["--name", "www"]), 0);
    assert!(
        stdout(&out).contains("put there by someone else"),
        "{}",
        stdout(&out)
    );
    let mut leave = flags(&env, "leave");
    run_expect(leave.args(["--name", "www"]), 0);
    assert_eq!(
        env.values("www", "A"),
        vec!["203.0.113.7"],
        "a value we did not publish is not ours to remove"
    );
}

#[test]
fn an_address_change_between_runs_is_cleaned_up() {
    let env = Env::new();
    let config = env.config("dnsreg.toml", FULL);
    run_expect(env.dnsreg().arg("-c").arg(&config).arg("join"), 0);
    // EC2 stop/start: a new public address.
    env.imds
        .update(|i| i.public_ipv4 = Some("198.51.100.44".into()));
    let out = run_expect(env.dnsreg().arg("-c").arg(&config).arg("join"), 0);
    assert!(
        stdout(&out).contains("- www.example.com. A 203.0.113.7"),
        "{}",
        stdout(&out)
    );
    assert_eq!(env.values("www", "A"), vec!["198.51.100.44"]);
    assert_eq!(
        env.values("i-0123456789abcdef0", "A"),
        vec!["198.51.100.44"]
    );

    // Another stop/start, and this time the state file is lost too: the registry
    // in DNS still says what to remove.
    std::fs::remove_dir_all(env.state_dir()).unwrap();
    env.imds
        .update(|i| i.public_ipv4 = Some("198.51.100.45".into()));
    run_expect(env.dnsreg().arg("-c").arg(&config).arg("leave"), 0);
    assert_eq!(env.records(), Vec::<String>::new());
}

#[test]
fn an_old_address_now_used_by_another_instance_is_not_removed() {
    let env = Env::new();
    let join = |id: &str, ip: &str| run_expect(&mut env.instance("join", id, ip, "--name www"), 0);
    join("i-a", "192.0.2.1");
    // i-a's address is released and handed to i-b, then i-a comes back with a new one.
    join("i-b", "192.0.2.1");
    join("i-a", "192.0.2.2");
    assert_eq!(env.values("www", "A"), vec!["192.0.2.1", "192.0.2.2"]);

    // Two live instances publishing the same address (private addresses of two
    // networks): one leaving does not take the other's value away.
    join("i-c", "192.0.2.2");
    let mut leave = env.instance("leave", "i-a", "192.0.2.2", "--name www");
    let out = run_expect(&mut leave, 0);
    assert!(
        stdout(&out).contains("also claimed by another instance"),
        "{}",
        stdout(&out)
    );
    assert_eq!(env.values("www", "A"), vec!["192.0.2.1", "192.0.2.2"]);
}

#[test]
fn transient_failures_are_retried() {
    let env = Env::new();
    env.r53.fail_next(2, Fault::Throttling);
    env.r53.fail_next(1, Fault::PriorRequestNotComplete);
    env.r53.fail_next(1, Fault::InternalError);
    env.r53.fail_next(1, Fault::ServiceUnavailable);
    run_expect(&mut flags(&env, "join"), 0);
    assert_eq!(env.values("203-0-113-7", "A"), vec!["203.0.113.7"]);
}

#[test]
fn an_unknown_zone_is_a_clear_runtime_error() {
    let env = Env::new();
    let mut c = env.dnsreg();
    c.args([
        "join",
        "--provider",
        "route53",
        "--zone",
        "nope.example",
        "--name",
        "www",
    ]);
    let out = run_expect(&mut c, 1);
    assert!(
        crate::util::stderr(&out).contains("no hosted zone named nope.example."),
        "{}",
        crate::util::stderr(&out)
    );
}

#[test]
fn multivalue_routing_gives_each_instance_its_own_rrset() {
    let env = Env::new();
    let run = |cmd: &str, id: &str, ip: &str| {
        run_expect(
            &mut env.instance(cmd, id, ip, "--routing multivalue --name www"),
            0,
        )
    };
    run("join", "i-a", "192.0.2.1");
    run("join", "i-b", "192.0.2.2");
    assert_eq!(
        env.records()
            .iter()
            .filter(|r| r.starts_with("www."))
            .cloned()
            .collect::<Vec<_>>(),
        vec![
            "www.example.com. A [i-a] 192.0.2.1",
            "www.example.com. A [i-b] 192.0.2.2",
        ]
    );
    run("leave", "i-a", "192.0.2.1");
    assert_eq!(env.values("www", "A"), vec!["192.0.2.2"]);
    run("leave", "i-b", "192.0.2.2");
    assert_eq!(env.records(), Vec::<String>::new());
}

/// SPEC §3 rule 4: many instances changing the same shared rrsets at once, under
/// throttling, lose nothing and leave nothing.
#[test]
fn fifty_agents_join_and_leave_one_name_concurrently_under_throttling() {
    const N: usize = 50;
    let env = Arc::new(Env::new());
    // Faster than the real account rate so the test stays short, slow enough
    // that the fleet is throttled (asserted below).
    env.r53.set_rate_limit(Some(40.0));
    let run_all = |cmd: &'static str| {
        let children: Vec<_> = (0..N)
            .map(|i| {
                let ip = format!("10.0.{}.{}", i / 200, i % 200 + 1);
                let mut c = env.instance(
                    cmd,
                    &format!("i-{i:03}"),
                    &ip,
                    "--name www --service _app._tcp --port 443",
                );
                c.stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped());
                c.spawn().unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{cmd} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    run_all("join");
    let www = env.values("www", "A");
    assert_eq!(www.len(), N, "every address is in the round-robin name");
    assert_eq!(
        env.values("_app._tcp", "SRV").len(),
        N,
        "every instance has its SRV line"
    );
    let stats = env.r53.stats();
    assert!(stats.throttled > 0, "the fleet was throttled: {stats:?}");
    assert!(
        stats.invalid_change_batch > 0,
        "the fleet had conflicts to resolve: {stats:?}"
    );
    eprintln!("join: {stats:?}");

    run_all("leave");
    assert_eq!(
        env.records(),
        Vec::<String>::new(),
        "nothing is left behind"
    );
}

fn ttl_of(env: &Env, name: &str) -> u32 {
    let name = crate::util::absolute(name);
    env.r53
        .rrsets(&env.zone_id)
        .into_iter()
        .find(|r| r.name == name)
        .unwrap()
        .ttl
}

#[test]
fn a_changed_ttl_reaches_our_own_rrsets_but_not_shared_ones() {
    let env = Env::new();
    env.r53.put_rrset(
        &env.zone_id,
        RrSet::simple("shared.example.com.", "A", 300, &["192.0.2.99"]),
    );
    run_expect(
        &mut env.flags("join", "--host web --name www --name shared --ttl 60"),
        0,
    );
    assert_eq!(
        (
            ttl_of(&env, "web"),
            ttl_of(&env, "www"),
            ttl_of(&env, "shared")
        ),
        (60, 60, 300)
    );
    let out = run_expect(
        &mut env.flags("join", "--host web --name www --name shared --ttl 30"),
        0,
    );
    assert_eq!(
        (
            ttl_of(&env, "web"),
            ttl_of(&env, "www"),
            ttl_of(&env, "shared")
        ),
        (30, 30, 300),
        "{}",
        stdout(&out)
    );
    assert_eq!(env.values("shared", "A"), vec!["192.0.2.99", "203.0.113.7"]);
}

/// What a join and a leave cost in API requests: the figure that decides how
/// large a fleet one account's five requests per second can serve.
#[test]
fn a_join_and_a_leave_cost_a_handful_of_requests() {
    let env = Env::new();
    let requests = |env: &Env| {
        let s = env.r53.stats();
        env.r53.reset_stats();
        s.requests
    };
    let count = |pairs: &[(&str, u64)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    run_expect(&mut flags(&env, "join"), 0);
    // Zone lookup, one read per rrset (host A, SRV, registry), one batch, GetChange.
    let join = requests(&env);
    assert_eq!(
        join,
        count(&[
            ("ListHostedZonesByName", 1),
            ("ListResourceRecordSets", 3),
            ("ChangeResourceRecordSets", 1),
            ("GetChange", 1)
        ])
    );
    run_expect(&mut flags(&env, "join"), 0);
    assert_eq!(
        requests(&env),
        count(&[("ListHostedZonesByName", 1), ("ListResourceRecordSets", 3)]),
        "an idempotent join only reads"
    );
    // Leave also lists the other instances' registries (one page per 300), so
    // that a value another instance claims too is never removed.
    run_expect(&mut flags(&env, "leave"), 0);
    assert_eq!(
        requests(&env),
        count(&[
            ("ListHostedZonesByName", 1),
            ("ListResourceRecordSets", 4),
            ("ChangeResourceRecordSets", 1),
            ("GetChange", 1)
        ])
    );
    eprintln!("join: {join:?}");
}

#[test]
fn ipv6_adds_aaaa_records_beside_the_a_records() {
    let env = Env::new();
    env.imds.update(|i| i.ipv6 = Some("2001:db8::7".into()));
    let config = env.config(
        "dnsreg.toml",
        &FULL.replace("metadata = \"aws\"", "metadata = \"aws\"\nipv6 = true"),
    );
    run_expect(env.dnsreg().arg("-c").arg(&config).arg("join"), 0);
    assert_eq!(env.values("www", "AAAA"), vec!["2001:db8::7"]);
    assert_eq!(
        env.values("i-0123456789abcdef0", "AAAA"),
        vec!["2001:db8::7"]
    );
    assert_eq!(env.values("www", "A"), vec!["203.0.113.7"]);
    run_expect(env.dnsreg().arg("-c").arg(&config).arg("leave"), 0);
    assert_eq!(env.records(), Vec::<String>::new());

    // Without `ipv6 = true`, no AAAA even when the instance has IPv6.
    let config = env.config("v4.toml", FULL);
    run_expect(env.dnsreg().arg("-c").arg(&config).arg("join"), 0);
    assert_eq!(env.values("www", "AAAA"), Vec::<String>::new());
}

#[test]
fn address_private_publishes_the_private_address() {
    let env = Env::new();
    run_expect(&mut env.flags("join", "--name www --address private"), 0);
    assert_eq!(env.values("www", "A"), vec!["10.0.0.5"]);
}
