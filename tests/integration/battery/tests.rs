//! The battery's tests, each generic over the provider (instantiated by `battery!`).
//!
//! They assert what a user sees in the zone and on the terminal, in the
//! canonical presentation of [`Backend::values`] and [`Backend::records`];
//! how many requests it took, and how each provider marks what is ours, are
//! checked in the provider's own file.

use std::process::Stdio;

use super::{Backend, World};
use crate::util::{claims, expected_claims, run_expect, stderr, stdout};

/// The instance the metadata stand-in describes.
const ID: &str = "i-0123456789abcdef0";

/// The original script's invocation, as flags.
const SERVICE: &str = "--service _v1._theservice._tcp --port 8080";

/// Every kind of record, from a configuration file; `{provider}` is the
/// provider's table.
pub const FULL: &str = r#"
[instance]
metadata = "aws"

[providers.p]
{provider}

[[host]]
providers = ["p"]
name = "{instance_id}"
ttl = 120

[[round_robin]]
providers = ["p"]
name = "www"

[[srv]]
providers = ["p"]
name = "_v1._theservice._tcp"
port = 8080
weight = 10
target = "{instance_id}"

[[service]]
providers = ["p"]
type = "_http._tcp"
instance = "{hostname}"
port = 8080
target = "{instance_id}"
txt = { path = "/", version = "1" }

[agent]
state_dir = "{state_dir}"
"#;

/// The records that are not the ownership registry.
fn published<B: Backend>(w: &World<B>) -> Vec<String> {
    w.records()
        .into_iter()
        .filter(|r| !r.contains("._dnsreg."))
        .collect()
}

fn none() -> Vec<String> {
    Vec::new()
}

/// Join publishes, says so, and is idempotent; status follows; leave removes
/// everything and is idempotent too (docs/design.md, "The contract").
pub fn join_and_leave_are_idempotent_and_status_follows<B: Backend>() {
    let w = World::<B>::new();
    let name = w.name();
    let out = run_expect(&mut w.flags("join", SERVICE), 0);
    assert!(
        stdout(&out).contains("+ 203-0-113-7.example.com. A 203.0.113.7"),
        "{name}: {}",
        stdout(&out)
    );
    assert_eq!(w.values("203-0-113-7", "A"), ["203.0.113.7"], "{name}");
    assert_eq!(
        w.values("_v1._theservice._tcp", "SRV"),
        ["0 0 8080 203-0-113-7.example.com."],
        "{name}"
    );
    assert_eq!(
        published(&w),
        [
            "203-0-113-7.example.com. A 203.0.113.7",
            "_v1._theservice._tcp.example.com. SRV 0 0 8080 203-0-113-7.example.com.",
        ],
        "{name}"
    );
    // The ownership registry lists exactly what was published.
    let registry = w.values(&format!("{ID}._dnsreg"), "TXT");
    assert_eq!(registry.len(), 2, "{name}: {registry:?}");
    assert!(
        registry
            .iter()
            .any(|v| v.contains("203-0-113-7.example.com. A 203.0.113.7")),
        "{name}: {registry:?}"
    );
    // Where claims are kept by name, each value has one naming this instance.
    let (claimed, rest): (Vec<String>, Vec<String>) = w
        .records()
        .into_iter()
        .partition(|r| r.contains("._claims._dnsreg."));
    assert_eq!(rest.len(), 4, "{name}: {rest:?}");
    let want = if w.claims_by_name() {
        expected_claims(
            [
                "203-0-113-7.example.com. A 203.0.113.7",
                "_v1._theservice._tcp.example.com. SRV 0 0 8080 203-0-113-7.example.com.",
            ]
            .map(|line| (ID, line.to_string())),
        )
    } else {
        Default::default()
    };
    assert_eq!(claims(&claimed), want, "{name}");

    // status: everything present.
    run_expect(&mut w.flags("status", SERVICE), 0);

    // A second join changes nothing (that it sends no write is counted per provider).
    let before = w.records();
    let out = run_expect(&mut w.flags("join", SERVICE), 0);
    assert!(
        stdout(&out).contains("already published"),
        "{name}: {}",
        stdout(&out)
    );
    assert_eq!(w.records(), before, "{name}");

    run_expect(&mut w.flags("leave", SERVICE), 0);
    assert_eq!(w.records(), none(), "{name}");
    // status now says what is missing, with exit 1.
    let out = run_expect(&mut w.flags("status", SERVICE), 1);
    assert!(stdout(&out).contains("MISSING"), "{name}: {}", stdout(&out));
    // Leaving again is a no-op.
    let out = run_expect(&mut w.flags("leave", SERVICE), 0);
    assert!(
        stdout(&out).contains("nothing of ours to remove"),
        "{name}: {}",
        stdout(&out)
    );
    assert_eq!(w.records(), none(), "{name}");
}

/// host, round robin, SRV and DNS-SD (PTR, SRV, TXT) from one file, with the
/// configured TTL, all listed in the registry, all gone after leave.
pub fn a_config_file_publishes_every_kind_of_record<B: Backend>() {
    let w = World::<B>::new();
    let name = w.name();
    let config = w.config("dnsreg.toml", FULL);
    run_expect(w.dnsreg().arg("-c").arg(&config).arg("check"), 0);
    run_expect(w.dnsreg().arg("-c").arg(&config).arg("join"), 0);
    assert_eq!(
        published(&w),
        [
            "_http._tcp.example.com. PTR ip-10-0-0-5._http._tcp.example.com.",
            "_v1._theservice._tcp.example.com. SRV 0 10 8080 i-0123456789abcdef0.example.com.",
            "i-0123456789abcdef0.example.com. A 203.0.113.7",
            "ip-10-0-0-5._http._tcp.example.com. SRV 0 0 8080 i-0123456789abcdef0.example.com.",
            "ip-10-0-0-5._http._tcp.example.com. TXT \"path=/\" \"version=1\"",
            "www.example.com. A 203.0.113.7",
        ],
        "{name}"
    );
    assert_eq!(
        w.values(&format!("{ID}._dnsreg"), "TXT").len(),
        6,
        "{name}: the registry lists all six values"
    );
    assert_eq!(w.ttl(ID, "A"), Some(120), "{name}");

    // Idempotent from a file too.
    let out = run_expect(w.dnsreg().arg("-c").arg(&config).arg("join"), 0);
    assert!(
        stdout(&out).contains("already published"),
        "{name}: {}",
        stdout(&out)
    );

    run_expect(w.dnsreg().arg("-c").arg(&config).arg("leave"), 0);
    assert_eq!(w.records(), none(), "{name}");
}

/// A person's values in the shared rrsets we join stay, with their TTL,
/// through join and leave (docs/design.md, "The rules", rule 3).
pub fn a_value_put_there_by_hand_survives_join_and_leave<B: Backend>() {
    let w = World::<B>::new();
    let name = w.name();
    w.put_by_hand("www", "A", "192.0.2.99", 300);
    w.put_by_hand(
        "_v1._theservice._tcp",
        "SRV",
        "5 5 9000 legacy.example.net.",
        300,
    );
    let args = format!("{SERVICE} --name www");
    run_expect(&mut w.flags("join", &args), 0);
    assert_eq!(
        w.values("www", "A"),
        ["192.0.2.99", "203.0.113.7"],
        "{name}"
    );
    assert_eq!(
        w.values("_v1._theservice._tcp", "SRV"),
        [
            "0 0 8080 203-0-113-7.example.com.",
            "5 5 9000 legacy.example.net."
        ],
        "{name}"
    );
    assert_eq!(
        w.ttl_of("www", "A", "192.0.2.99"),
        Some(300),
        "{name}: the person's TTL is kept"
    );
    // The value dnsreg added is served with the rrset's TTL (or, where each
    // record has its own, the configured one).
    let ours = if w.ttl_per_record() { 60 } else { 300 };
    assert_eq!(w.ttl_of("www", "A", "203.0.113.7"), Some(ours), "{name}");

    run_expect(&mut w.flags("leave", &args), 0);
    assert_eq!(w.values("www", "A"), ["192.0.2.99"], "{name}");
    assert_eq!(
        w.values("_v1._theservice._tcp", "SRV"),
        ["5 5 9000 legacy.example.net."],
        "{name}"
    );
    assert_eq!(
        w.ttl("www", "A"),
        Some(300),
        "{name}: the person's TTL is kept"
    );
    assert_eq!(
        w.ttl("_v1._theservice._tcp", "SRV"),
        Some(300),
        "{name}: the person's TTL is kept"
    );
    assert_eq!(w.values("203-0-113-7", "A"), none(), "{name}");
    assert_eq!(
        w.records(),
        [
            "_v1._theservice._tcp.example.com. SRV 5 5 9000 legacy.example.net.",
            "www.example.com. A 192.0.2.99",
        ],
        "{name}: nothing else is left"
    );
}

/// Our own address, already at a shared name by someone else's hand, is not
/// taken over, and so not removed on leave (docs/design.md, "The rules",
/// rule 3).
pub fn our_own_address_put_there_by_hand_is_not_claimed<B: Backend>() {
    let w = World::<B>::new();
    let name = w.name();
    w.put_by_hand("www", "A", "203.0.113.7", 60);
    let args = format!("{SERVICE} --name www");
    let out = run_expect(&mut w.flags("join", &args), 0);
    assert!(
        stdout(&out).contains("put there by someone else"),
        "{name}: {}",
        stdout(&out)
    );
    assert_eq!(w.values("www", "A"), ["203.0.113.7"], "{name}");
    run_expect(&mut w.flags("leave", &args), 0);
    assert_eq!(
        w.values("www", "A"),
        ["203.0.113.7"],
        "{name}: a value we did not publish is not ours to remove"
    );
    assert_eq!(
        w.records(),
        ["www.example.com. A 203.0.113.7"],
        "{name}: the rest of ours is gone"
    );
}

/// After an EC2 stop/start the old address is removed, from the state file
/// or, with that lost, from the registry in DNS (docs/design.md, "The state
/// file").
pub fn an_address_change_between_runs_is_cleaned_up<B: Backend>() {
    let w = World::<B>::new();
    let name = w.name();
    let config = w.config("dnsreg.toml", FULL);
    run_expect(w.dnsreg().arg("-c").arg(&config).arg("join"), 0);
    // EC2 stop/start: a new public address.
    w.imds
        .update(|i| i.public_ipv4 = Some("198.51.100.44".into()));
    let out = run_expect(w.dnsreg().arg("-c").arg(&config).arg("join"), 0);
    assert!(
        stdout(&out).contains("- www.example.com. A 203.0.113.7"),
        "{name}: {}",
        stdout(&out)
    );
    assert_eq!(w.values("www", "A"), ["198.51.100.44"], "{name}");
    assert_eq!(w.values(ID, "A"), ["198.51.100.44"], "{name}");

    // Another stop/start, and this time the state file is lost too: the registry
    // in DNS still says what to remove.
    std::fs::remove_dir_all(w.state_dir()).unwrap();
    w.imds
        .update(|i| i.public_ipv4 = Some("198.51.100.45".into()));
    run_expect(w.dnsreg().arg("-c").arg(&config).arg("leave"), 0);
    assert_eq!(w.records(), none(), "{name}");
}

/// An address an instance had before, or has beside another instance, is
/// removed only when no other instance claims it (docs/design.md, "The
/// rules", rule 4).
pub fn an_old_address_now_used_by_another_instance_is_not_removed<B: Backend>() {
    let w = World::<B>::new();
    let name = w.name();
    let run =
        |cmd: &str, id: &str, ip: &str| run_expect(&mut w.instance(cmd, id, ip, "--name www"), 0);
    run("join", "i-a", "192.0.2.1");
    // i-a's address is released and handed to i-b, then i-a comes back with a new one.
    run("join", "i-b", "192.0.2.1");
    run("join", "i-a", "192.0.2.2");
    assert_eq!(w.values("www", "A"), ["192.0.2.1", "192.0.2.2"], "{name}");

    // Two live instances publishing the same address (private addresses of two
    // networks): one leaving does not take the other's value away.
    run("join", "i-c", "192.0.2.2");
    let out = run("leave", "i-a", "192.0.2.2");
    assert!(
        stdout(&out).contains("also claimed by another instance"),
        "{name}: {}",
        stdout(&out)
    );
    assert_eq!(w.values("www", "A"), ["192.0.2.1", "192.0.2.2"], "{name}");

    // The last claimants leave: the values they took over go too, nothing is left.
    run("leave", "i-b", "192.0.2.1");
    run("leave", "i-c", "192.0.2.2");
    assert_eq!(w.records(), none(), "{name}");
}

/// Throttling, 5xx and dropped connections are retried, and a `Retry-After`
/// is waited out (docs/design.md, "The pacer and the retry budget").
pub fn transient_failures_are_retried<B: Backend>() {
    let w = World::<B>::new();
    let name = w.name();
    assert!(
        w.inject_transient_faults(),
        "{name} cannot inject faults: leave this test out in its battery! line"
    );
    let injected = w.pending_faults();
    assert!(injected >= 4, "{name}: {injected} faults queued");
    run_expect(&mut w.flags("join", SERVICE), 0);
    // The join went through every fault, not around them.
    assert_eq!(
        w.pending_faults(),
        0,
        "{name}: of {injected} faults injected, some were never met"
    );
    if let Some(waits) = w.retry_waits() {
        assert!(!waits.is_empty(), "{name}: no Retry-After was ever given");
        for (told, waited) in waits {
            assert!(
                waited >= told,
                "{name}: told to come back after {told:?}, came back after {waited:?}"
            );
        }
    }
    assert_eq!(w.values("203-0-113-7", "A"), ["203.0.113.7"], "{name}");
    assert_eq!(
        w.values("_v1._theservice._tcp", "SRV"),
        ["0 0 8080 203-0-113-7.example.com."],
        "{name}"
    );
}

/// A zone the provider does not have is a runtime failure (exit 1) that names
/// the zone, in the `dnsreg: …` convention, and changes nothing. (The wording
/// of each provider is checked in its own file.)
pub fn an_unknown_zone_is_a_clear_runtime_error<B: Backend>() {
    let w = World::<B>::new();
    let name = w.name();
    let mut flags = w.provider_flags();
    let zone = flags.iter().position(|f| f == "--zone").unwrap() + 1;
    flags[zone] = "nope.example".into();
    let mut c = w.dnsreg();
    c.arg("join")
        .args(flags)
        .args(["--name", "www", "--state-dir"])
        .arg(w.state_dir());
    let out = run_expect(&mut c, 1);
    let err = stderr(&out);
    assert!(err.contains("nope.example"), "{name}: {err}");
    assert!(err.starts_with("dnsreg: "), "{name}: {err}");
    assert_eq!(w.records(), none(), "{name}");
}

/// A changed `ttl` reaches the rrsets that hold only our values; a shared rrset
/// keeps the TTL it has, which is not ours alone to change.
pub fn a_changed_ttl_reaches_our_own_rrsets_but_not_shared_ones<B: Backend>() {
    let w = World::<B>::new();
    let name = w.name();
    w.put_by_hand("shared", "A", "192.0.2.99", 300);
    let ttls = |w: &World<B>| {
        (
            w.ttl("web", "A"),
            w.ttl("www", "A"),
            w.ttl_of("shared", "A", "192.0.2.99"),
            w.ttl_of("shared", "A", "203.0.113.7"),
        )
    };
    // On a provider with one TTL per rrset, ours in the shared rrset has its TTL.
    let shared_ours = |configured: u32| Some(if w.ttl_per_record() { configured } else { 300 });
    run_expect(
        &mut w.flags("join", "--host web --name www --name shared --ttl 120"),
        0,
    );
    assert_eq!(
        ttls(&w),
        (Some(120), Some(120), Some(300), shared_ours(120)),
        "{name}"
    );
    let out = run_expect(
        &mut w.flags("join", "--host web --name www --name shared --ttl 60"),
        0,
    );
    assert_eq!(
        ttls(&w),
        (Some(60), Some(60), Some(300), shared_ours(60)),
        "{name}: {}",
        stdout(&out)
    );
    assert_eq!(w.values("web", "A"), ["203.0.113.7"], "{name}");
    assert_eq!(
        w.values("shared", "A"),
        ["192.0.2.99", "203.0.113.7"],
        "{name}"
    );
}

/// Many instances changing the same shared rrsets at once, under the
/// provider's rate limit, lose nothing and leave nothing (docs/design.md,
/// "Shared rrsets rewritten whole: announce and materialise").
pub fn fifty_agents_join_and_leave_one_name_concurrently<B: Backend>() {
    const N: usize = 50;
    let w = World::<B>::new();
    let name = w.name();
    w.limit_rate_for_a_fleet();
    let ip = |i: usize| format!("10.0.{}.{}", i / 200, i % 200 + 1);
    let run_all = |cmd: &str| {
        let children: Vec<_> = (0..N)
            .map(|i| {
                let mut c = w.instance(
                    cmd,
                    &format!("i-{i:03}"),
                    &ip(i),
                    "--name www --service _app._tcp --port 443",
                );
                c.stdout(Stdio::piped()).stderr(Stdio::piped());
                c.spawn().unwrap()
            })
            .collect();
        if cmd == "join" {
            w.contend();
        }
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{name}: {cmd} failed: {}",
                stderr(&out)
            );
        }
    };
    run_all("join");
    assert_eq!(
        w.values("www", "A").len(),
        N,
        "{name}: every address is in the round-robin name"
    );
    let srv = w.values("_app._tcp", "SRV");
    assert_eq!(srv.len(), N, "{name}: every instance has its SRV line");
    for i in 0..N {
        let host = ip(i).replace('.', "-");
        assert!(
            srv.contains(&format!("0 0 443 {host}.example.com.")),
            "{name}: {host}: {srv:?}"
        );
    }
    w.assert_the_fleet_contended();

    run_all("leave");
    assert_eq!(w.records(), none(), "{name}: nothing is left behind");
}

/// `ipv6 = true` adds AAAA beside A at every address name; without it, none.
pub fn ipv6_adds_aaaa_records_beside_the_a_records<B: Backend>() {
    let w = World::<B>::new();
    let name = w.name();
    w.imds.update(|i| i.ipv6 = Some("2001:db8::7".into()));
    let config = w.config(
        "dnsreg.toml",
        &FULL.replace("metadata = \"aws\"", "metadata = \"aws\"\nipv6 = true"),
    );
    run_expect(w.dnsreg().arg("-c").arg(&config).arg("join"), 0);
    assert_eq!(w.values("www", "AAAA"), ["2001:db8::7"], "{name}");
    assert_eq!(w.values(ID, "AAAA"), ["2001:db8::7"], "{name}");
    assert_eq!(w.values("www", "A"), ["203.0.113.7"], "{name}");
    run_expect(w.dnsreg().arg("-c").arg(&config).arg("leave"), 0);
    assert_eq!(w.records(), none(), "{name}");

    // Without `ipv6 = true`, no AAAA even when the instance has IPv6.
    let config = w.config("v4.toml", FULL);
    run_expect(w.dnsreg().arg("-c").arg(&config).arg("join"), 0);
    assert_eq!(w.values("www", "AAAA"), none(), "{name}");
    assert_eq!(w.values(ID, "AAAA"), none(), "{name}");
    assert_eq!(w.values("www", "A"), ["203.0.113.7"], "{name}");
}

/// `address = private` publishes the private address instead of the public one.
pub fn address_private_publishes_the_private_address<B: Backend>() {
    let w = World::<B>::new();
    let name = w.name();
    run_expect(&mut w.flags("join", "--name www --address private"), 0);
    assert_eq!(w.values("www", "A"), ["10.0.0.5"], "{name}");
    run_expect(&mut w.flags("leave", "--name www --address private"), 0);
    assert_eq!(w.records(), none(), "{name}");
}
