//! `dnsreg plan` (and `join --dry-run`, `leave --dry-run`): what a join or
//! leave would add, remove and leave alone, written nowhere, against the
//! Route53 and Cloudflare stand-ins and a real BIND (RFC 2136). What a user
//! sees is asserted: the lines, the exit codes (0 nothing to change, 3
//! something would, 1 a provider failed, 2 a configuration error), the JSON,
//! and a zone, a count of writes and a state file that the dry run left
//! exactly as they were.

use std::path::PathBuf;

use crate::battery::{Backend, CloudflareBackend, Rfc2136Backend, Route53Backend, World};
use crate::util::{run_expect, stderr, stdout};

/// A host record, a round-robin name and an SRV line.
const ARGS: &str = "--service _v1._theservice._tcp --port 8080 --name www";
const HOST: &str = "203-0-113-7.example.com. A 203.0.113.7";
const SRV: &str = "_v1._theservice._tcp.example.com. SRV 0 0 8080 203-0-113-7.example.com.";
/// A person's value equal to the instance's at the round-robin name.
const PERSONS_SAME: &str = "www.example.com. A 203.0.113.7";
/// A person's other value there.
const PERSONS_OTHER: &str = "www.example.com. A 192.0.2.99";

fn state_file<B: Backend>(w: &World<B>) -> PathBuf {
    w.state_dir().join("state.json")
}

fn state<B: Backend>(w: &World<B>) -> Option<Vec<u8>> {
    std::fs::read(state_file(w)).ok()
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

fn sorted(v: &serde_json::Value) -> Vec<String> {
    let mut l: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    l.sort();
    l
}

/// Runs `plan`-like `cmd` and checks that it wrote nothing: the zone, the
/// provider's count of writes (`writes`) and the state file are as before.
fn dry<B: Backend>(
    w: &World<B>,
    writes: &dyn Fn(&World<B>) -> String,
    cmd: &str,
    args: &str,
    code: i32,
) -> std::process::Output {
    let (zone, count, file) = (w.records(), writes(w), state(w));
    let out = run_expect(&mut w.flags(cmd, args), code);
    let name = w.name();
    assert_eq!(w.records(), zone, "{name}: `{cmd} {args}` changed the zone");
    assert_eq!(writes(w), count, "{name}: `{cmd} {args}` wrote");
    assert_eq!(
        state(w),
        file,
        "{name}: `{cmd} {args}` wrote the state file"
    );
    out
}

/// Before a join, `plan` lists the adds and what it leaves alone and exits
/// 3; after the join it has nothing to change and exits 0; `plan --leave`
/// lists the removals; `--json` says the same; nothing is ever written.
fn plan_shows_a_join_and_a_leave_and_writes_nothing<B: Backend>(
    writes: &dyn Fn(&World<B>) -> String,
) {
    let w = World::<B>::new();
    let name = w.name();
    w.put_by_hand("www", "A", "203.0.113.7", 60);
    w.put_by_hand("www", "A", "192.0.2.99", 60);

    // Before the join.
    let untouched = writes(&w);
    let out = dry(&w, writes, "plan", ARGS, 3);
    let text = stdout(&out);
    for line in [
        format!("{name}: + {HOST}"),
        format!("{name}: + {SRV}"),
        format!("{name}: = {PERSONS_SAME} (already there, put there by someone else: left alone)"),
        format!("{name}: = {PERSONS_OTHER} (not this instance's to change: left alone)"),
        "join would add 2 and remove 0 records; nothing was changed (dry run)".into(),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{name}: no line {line:?} in\n{text}"
        );
    }
    assert_eq!(state(&w), None, "{name}: no state file made");
    // `join --dry-run` is `plan`; its JSON says the same.
    let out = dry(&w, writes, "join", &format!("{ARGS} --dry-run --json"), 3);
    let doc = json(&out);
    assert_eq!(doc["action"], "join", "{doc}");
    assert_eq!(doc["changes"], true, "{doc}");
    let p = &doc["providers"][name];
    assert_eq!(sorted(&p["add"]), [HOST, SRV], "{name}: {doc}");
    assert_eq!(sorted(&p["remove"]), Vec::<String>::new(), "{doc}");
    assert_eq!(sorted(&p["keep_foreign"]), [PERSONS_SAME], "{doc}");
    assert_eq!(sorted(&p["keep_others"]), [PERSONS_OTHER], "{doc}");
    assert_eq!(writes(&w), untouched, "{name}: no write before the join");

    // The join does exactly what the plan said; then there is nothing to change.
    let changes = |text: &str| -> Vec<String> {
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| l.contains(": + ") || l.contains(": - ") || l.contains("(already there"))
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    };
    let planned = changes(&text);
    let out = run_expect(&mut w.flags("join", ARGS), 0);
    assert_eq!(
        changes(&stdout(&out)),
        planned,
        "{name}: the join did other than the plan showed"
    );
    let out = dry(&w, writes, "plan", ARGS, 0);
    let text = stdout(&out);
    assert!(
        !text.contains(": + ") && !text.contains(": - "),
        "{name}:\n{text}"
    );
    assert!(
        text.contains(&format!("{name}: nothing to change (2 records owned)"))
            && text.contains("join would change nothing")
            && text.contains(&format!(
                "{name}: = {PERSONS_SAME} (already there, put there by someone else: left alone)"
            )),
        "{name}:\n{text}"
    );
    let doc = json(&dry(&w, writes, "plan", &format!("{ARGS} --json"), 0));
    assert_eq!(doc["changes"], false, "{doc}");
    assert_eq!(
        sorted(&doc["providers"][name]["owned"]),
        [HOST, SRV],
        "{doc}"
    );

    // A leave would remove this instance's values, not the person's.
    let out = dry(&w, writes, "plan", &format!("{ARGS} --leave"), 3);
    let text = stdout(&out);
    for line in [
        format!("{name}: - {HOST}"),
        format!("{name}: - {SRV}"),
        "leave would add 0 and remove 2 records; nothing was changed (dry run)".into(),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{name}: no line {line:?} in\n{text}"
        );
    }
    assert!(
        !text.contains(&format!("- {PERSONS_SAME}")),
        "{name}:\n{text}"
    );
    let doc = json(&dry(
        &w,
        writes,
        "leave",
        &format!("{ARGS} --dry-run --json"),
        3,
    ));
    assert_eq!(doc["action"], "leave", "{doc}");
    assert_eq!(
        sorted(&doc["providers"][name]["remove"]),
        [HOST, SRV],
        "{doc}"
    );
    assert_eq!(sorted(&doc["providers"][name]["add"]), Vec::<String>::new());

    // After the leave: nothing of ours to remove.
    run_expect(&mut w.flags("leave", ARGS), 0);
    let out = dry(&w, writes, "plan", &format!("{ARGS} --leave"), 0);
    assert!(
        stdout(&out).contains("leave would change nothing"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        w.records(),
        [PERSONS_OTHER, PERSONS_SAME],
        "{name}: the person's values stayed throughout"
    );
}

/// ChangeResourceRecordSets requests received (a write, or a memory check).
fn route53_writes(w: &World<Route53Backend>) -> String {
    let n = w
        .r53
        .stats()
        .requests
        .get("ChangeResourceRecordSets")
        .copied();
    n.unwrap_or(0).to_string()
}

/// Cloudflare requests other than reads.
fn cloudflare_writes(w: &World<CloudflareBackend>) -> String {
    let s = w.cf.stats();
    let n: u64 = s
        .requests
        .iter()
        .filter(|(k, _)| !k.starts_with("GET"))
        .map(|(_, n)| *n)
        .sum();
    format!("{n} requests, {} batches", s.applied_batches)
}

/// The zone's SOA: its serial changes with every UPDATE BIND applies.
fn bind_writes(w: &World<Rfc2136Backend>) -> String {
    w.values("example.com.", "SOA").join(" ")
}

#[test]
fn route53_plan_shows_a_join_and_a_leave_and_writes_nothing() {
    plan_shows_a_join_and_a_leave_and_writes_nothing::<Route53Backend>(&|w| {
        // Before the join (the person's values were put in through the
        // stand-in's handle) nothing at all was sent to be changed.
        let n = route53_writes(w);
        assert!(w.state_dir().join("state.json").exists() || n == "0", "{n}");
        n
    });
}

#[test]
fn cloudflare_plan_shows_a_join_and_a_leave_and_writes_nothing() {
    plan_shows_a_join_and_a_leave_and_writes_nothing::<CloudflareBackend>(&cloudflare_writes);
}

#[test]
fn rfc2136_plan_shows_a_join_and_a_leave_and_writes_nothing() {
    plan_shows_a_join_and_a_leave_and_writes_nothing::<Rfc2136Backend>(&bind_writes);
}

/// The other exit codes: a provider that refuses (wrong credentials) is 1, a
/// configuration error 2; neither writes.
#[test]
fn plan_exits_1_on_a_provider_failure_and_2_on_a_configuration_error() {
    let w = World::<Route53Backend>::new();
    let mut c = w.flags("plan", ARGS);
    c.env("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let out = run_expect(&mut c, 1);
    assert!(
        stderr(&out).contains("SignatureDoesNotMatch"),
        "{}",
        stderr(&out)
    );
    let out = run_expect(
        w.dnsreg().args([
            "plan",
            "--service",
            "_v1._theservice._tcp",
            "--port",
            "8080",
        ]),
        2,
    );
    assert!(
        stderr(&out).contains("needs --provider"),
        "{}",
        stderr(&out)
    );
    assert_eq!(route53_writes(&w), "0");
    assert_eq!(state(&w), None);
}

/// A plan against a throttling Route53 waits its turn like a join and shows
/// the plan; it does not fail on the first "Rate exceeded".
#[test]
fn route53_plan_waits_out_throttling_and_shows_the_plan() {
    let w = World::<Route53Backend>::new();
    w.put_by_hand("www", "A", "192.0.2.99", 60);
    w.r53.fail_next(3, testkit::route53::Fault::Throttling);
    // The zone id given: the throttling meets the reads of the shared rrsets.
    let args = format!("{ARGS} --zone-id {}", w.zone_id);
    let out = dry(&w, &route53_writes, "plan", &args, 3);
    assert_eq!(w.r53.pending_faults(), 0, "the throttling was met");
    let text = stdout(&out);
    let name = w.name();
    assert!(
        text.lines().any(|l| l == format!("{name}: + {SRV}")),
        "{text}"
    );
}
