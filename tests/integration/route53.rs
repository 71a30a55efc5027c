//! What only Route53 has, against its strict stand-in: multivalue routing, one
//! change batch per join, what a join costs in API requests, its own transient
//! error and its wording. The behaviour every provider shares is in the battery
//! (`battery::route53::*`).

use testkit::route53::Fault;

use crate::battery::FULL;
use crate::util::{Env, run_expect, stderr};

/// The original script's invocation, as flags.
const SERVICE: &str = "--service _v1._theservice._tcp --port 8080";

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

#[test]
fn a_config_file_join_is_one_change_batch() {
    let env = Env::new();
    let config = env.config("dnsreg.toml", FULL);
    run_expect(env.dnsreg().arg("-c").arg(&config).arg("join"), 0);
    // Host, round robin, SRV, DNS-SD and the registry (the battery checks what).
    assert_eq!(env.records().len(), 7, "{:?}", env.records());
    assert_eq!(
        env.r53.stats().applied_batches,
        1,
        "one change batch for the whole join"
    );
    run_expect(env.dnsreg().arg("-c").arg(&config).arg("join"), 0);
    assert_eq!(
        env.r53.stats().applied_batches,
        1,
        "an idempotent join sends no change batch"
    );
    run_expect(env.dnsreg().arg("-c").arg(&config).arg("leave"), 0);
    assert_eq!(env.r53.stats().applied_batches, 2, "one for the leave");
    assert_eq!(env.records(), Vec::<String>::new());
}

/// PriorRequestNotComplete: Route53 is still applying an earlier change (the
/// battery covers throttling, 5xx and dropped connections).
#[test]
fn prior_request_not_complete_and_a_slow_answer_are_waited_out() {
    let env = Env::new();
    env.r53.fail_next(1, Fault::PriorRequestNotComplete);
    env.r53
        .fail_next(1, Fault::Delay(std::time::Duration::from_millis(300)));
    env.r53.fail_next(1, Fault::PriorRequestNotComplete);
    assert_eq!(env.r53.pending_faults(), 3);
    let started = std::time::Instant::now();
    run_expect(&mut env.flags("join", SERVICE), 0);
    assert_eq!(env.values("203-0-113-7", "A"), vec!["203.0.113.7"]);
    assert_eq!(
        env.values("_v1._theservice._tcp", "SRV"),
        vec!["0 0 8080 203-0-113-7.example.com."]
    );
    // Every fault met a request: both refusals answered, the slow answer waited for.
    assert_eq!(env.r53.pending_faults(), 0, "every fault injected was met");
    assert_eq!(env.r53.stats().prior_request_not_complete, 2);
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
}

/// A secret that is not the account's: the stand-in refuses every request
/// as Route53 does (HTTP 403 SignatureDoesNotMatch), and dnsreg says it is
/// the credentials, changing nothing.
#[test]
fn a_wrong_secret_key_is_refused_and_reported_as_a_credentials_problem() {
    let env = Env::new();
    let mut join = env.flags("join", SERVICE);
    join.env("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let out = run_expect(&mut join, 1);
    let err = stderr(&out);
    assert!(
        err.contains("SignatureDoesNotMatch") && err.contains("check the AWS credentials"),
        "{err}"
    );
    let stats = env.r53.stats();
    assert!(stats.total() >= 1, "dnsreg asked: {stats:?}");
    assert_eq!(stats.applied_batches, 0);
    assert_eq!(env.records(), Vec::<String>::new());
    // The same command with the right secret goes through.
    run_expect(&mut env.flags("join", SERVICE), 0);
    assert_eq!(env.values("203-0-113-7", "A"), vec!["203.0.113.7"]);
}

#[test]
fn an_unknown_zone_says_no_hosted_zone_has_that_name() {
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
        stderr(&out).contains("no hosted zone named nope.example."),
        "{}",
        stderr(&out)
    );
}

/// The requests the stand-in counted since the last call, by action.
fn requests(env: &Env) -> std::collections::BTreeMap<String, u64> {
    let s = env.r53.stats();
    env.r53.reset_stats();
    s.requests
}

/// What a join and a leave cost in API requests: the figure that decides how
/// large a fleet one account's five requests per second can serve.
#[test]
fn a_join_and_a_leave_cost_a_handful_of_requests() {
    let env = Env::new();
    run_expect(&mut env.flags("join", SERVICE), 0);
    // Zone lookup, one read of the whole (small) zone, one batch, GetChange.
    let join = requests(&env);
    assert_eq!(
        join,
        crate::util::counts(&[
            ("ListHostedZonesByName", 1),
            ("ListResourceRecordSets", 1),
            ("ChangeResourceRecordSets", 1),
            ("GetChange", 1)
        ])
    );
    run_expect(&mut env.flags("join", SERVICE), 0);
    assert_eq!(
        requests(&env),
        crate::util::counts(&[("ListResourceRecordSets", 1)]),
        "an idempotent join only reads, and the zone id is remembered"
    );
    // Leave also lists the other instances' registries (one page per 300), so
    // that a value another instance claims too is never removed.
    run_expect(&mut env.flags("leave", SERVICE), 0);
    assert_eq!(
        requests(&env),
        crate::util::counts(&[
            ("ListResourceRecordSets", 2),
            ("ChangeResourceRecordSets", 1),
            ("GetChange", 1)
        ])
    );
    eprintln!("join: {join:?}");
}

/// Under multivalue routing every rrset dnsreg writes is this instance's own:
/// a first join writes without reading, a later one checks what the state
/// file remembers in one change batch that changes nothing, and a leave
/// deletes what it remembers: one change each (the README's request table).
#[test]
fn under_multivalue_each_step_is_one_change_batch_and_nothing_is_read() {
    let env = Env::new();
    let args = format!("{SERVICE} --routing multivalue");
    run_expect(&mut env.flags("join", &args), 0);
    assert_eq!(
        requests(&env),
        crate::util::counts(&[
            ("ListHostedZonesByName", 1),
            ("ChangeResourceRecordSets", 1),
            ("GetChange", 1)
        ]),
        "a first join writes without reading"
    );
    run_expect(&mut env.flags("join", &args), 0);
    assert_eq!(
        requests(&env),
        crate::util::counts(&[("ChangeResourceRecordSets", 1)]),
        "a later join checks its memory in one batch"
    );
    run_expect(&mut env.flags("leave", &args), 0);
    assert_eq!(
        requests(&env),
        crate::util::counts(&[("ChangeResourceRecordSets", 1), ("GetChange", 1)]),
        "a leave deletes what it remembers"
    );
    assert_eq!(env.records(), Vec::<String>::new());
}

/// Registries of more than one page (Route53 lists 300 rrsets a page): a
/// leave lists them all, follows the pages, and removes only its own value
/// from a name 320 other instances share.
#[test]
fn a_leave_follows_the_registries_over_several_pages() {
    let env = Env::new();
    let ip = |k: usize| format!("10.7.{}.{}", k / 200, k % 200 + 1);
    let others: Vec<String> = (0..320).map(ip).collect();
    for (k, v) in others.iter().enumerate() {
        env.r53.put_rrset(
            &env.zone_id,
            testkit::route53::RrSet::simple(
                &format!("i-peer{k:03}._dnsreg.example.com."),
                "TXT",
                60,
                &[&format!("\"dnsreg1 www.example.com. A {v}\"")],
            ),
        );
    }
    let refs: Vec<&str> = others.iter().map(String::as_str).collect();
    env.r53.put_rrset(
        &env.zone_id,
        testkit::route53::RrSet::simple("www.example.com.", "A", 60, &refs),
    );
    run_expect(&mut env.flags("join", "--name www"), 0);
    assert_eq!(env.values("www", "A").len(), 321);
    env.r53.reset_stats();
    run_expect(&mut env.flags("leave", "--name www"), 0);
    let mut left = env.values("www", "A");
    left.sort();
    let mut want = others.clone();
    want.sort();
    assert_eq!(left, want, "only this instance's value went");
    let lists = env.r53.stats().requests["ListResourceRecordSets"];
    assert!(
        lists >= 2,
        "the registries took more than one page: {lists}"
    );
}

/// A zone of more than one page is read rrset by rrset, and still right.
#[test]
fn a_zone_larger_than_a_page_is_read_rrset_by_rrset() {
    let env = Env::new();
    for i in 0..320 {
        env.r53.put_rrset(
            &env.zone_id,
            testkit::route53::RrSet::simple(
                &format!("filler-{i:03}.example.com."),
                "A",
                60,
                &["192.0.2.1"],
            ),
        );
    }
    env.r53.put_rrset(
        &env.zone_id,
        testkit::route53::RrSet::simple("www.example.com.", "A", 60, &["192.0.2.99"]),
    );
    env.r53.reset_stats();
    run_expect(&mut env.flags("join", "--name www"), 0);
    let reads = env.r53.stats().requests["ListResourceRecordSets"];
    // One page that was not the whole zone, then one read per rrset (www and
    // the registry).
    assert_eq!(reads, 1 + 2, "{:?}", env.r53.stats().requests);
    let mut www = env.values("www", "A");
    www.sort();
    assert_eq!(www, ["192.0.2.99", "203.0.113.7"]);
    run_expect(&mut env.flags("leave", "--name www"), 0);
    assert_eq!(env.values("www", "A"), ["192.0.2.99"]);
}

/// A shared rrset too large to rewrite in one change batch (Route53 takes
/// 1,000 records; DELETE and CREATE of 500 values is 1,001): the join says so
/// and names multivalue, and nothing is changed.
#[test]
fn a_shared_rrset_too_large_for_one_batch_is_refused_with_what_to_do() {
    let env = Env::new();
    let values: Vec<String> = (0..500)
        .map(|i| format!("10.9.{}.{}", i / 250, i % 250 + 1))
        .collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    env.r53.put_rrset(
        &env.zone_id,
        testkit::route53::RrSet::simple("www.example.com.", "A", 60, &refs),
    );
    env.r53.reset_stats();
    let out = run_expect(&mut env.flags("join", "--name www"), 1);
    let err = stderr(&out);
    assert!(
        err.contains("more than Route53 takes") && err.contains("routing = \"multivalue\""),
        "{err}"
    );
    assert_eq!(env.r53.stats().applied_batches, 0);
    assert_eq!(env.values("www", "A").len(), 500);
}
