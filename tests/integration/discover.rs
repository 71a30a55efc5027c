//! `dnsreg discover` against a real BIND: SRV ordering and weighted picks
//! (RFC 2782), DNS-SD browsing (RFC 6763), plain addresses, `--wait`, and the
//! errors. Records are written with `nsupdate` and cross-checked with `dig`,
//! tools independent of dnsreg's own DNS code.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use testkit::bind::Bind;
use testkit::dnsproxy::DnsProxy;

use crate::util::{Said, isolate, output_within, run_expect, stderr, stdout, wait_until};

/// A BIND serving example.com, and a scratch directory.
struct Ns {
    bind: Bind,
    dir: TempDir,
}

impl Ns {
    fn new() -> Ns {
        Ns {
            bind: Bind::start(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// `dnsreg discover NAME --server <bind> ARGS` (`args` split at spaces).
    fn discover(&self, name: &str, args: &str) -> Command {
        self.discover_at(self.bind.addr(), name, args)
    }

    /// The same, asking `server` (a proxy in front of BIND).
    fn discover_at(&self, server: SocketAddr, name: &str, args: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dnsreg"));
        isolate(&mut c, self.dir.path());
        c.args(["discover", name, "--server"])
            .arg(server.to_string())
            .args(args.split_whitespace());
        c
    }

    fn lines(&self, name: &str, args: &str) -> Vec<String> {
        let out = run_expect(&mut self.discover(name, args), 0);
        stdout(&out).lines().map(str::to_string).collect()
    }

    /// A service with two priorities: `a` (weight 1) and `b` (weight 9) at
    /// priority 10, `backup` at priority 20.
    fn two_priorities(&self) {
        self.bind.nsupdate(
            "update add _api._tcp.example.com. 60 SRV 10 1 8001 a.example.com.
             update add _api._tcp.example.com. 60 SRV 10 9 8002 b.example.com.
             update add _api._tcp.example.com. 60 SRV 20 0 8003 backup.example.com.
             update add a.example.com. 60 A 192.0.2.1
             update add b.example.com. 60 A 192.0.2.2
             update add b.example.com. 60 AAAA 2001:db8::2
             update add backup.example.com. 60 A 192.0.2.3",
        );
    }
}

fn json(out: &Output) -> Vec<serde_json::Value> {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", stdout(out)))
}

#[test]
fn srv_endpoints_come_lowest_priority_first() {
    let ns = Ns::new();
    ns.two_priorities();
    for _ in 0..10 {
        let lines = ns.lines("_api._tcp.example.com", "");
        assert_eq!(lines.len(), 3, "{lines:?}");
        let first_two: BTreeSet<&str> = lines[..2].iter().map(String::as_str).collect();
        assert_eq!(
            first_two,
            BTreeSet::from(["a.example.com:8001", "b.example.com:8002"]),
            "{lines:?}"
        );
        assert_eq!(lines[2], "backup.example.com:8003");
    }
    // A relative NAME with --server is taken as absolute, and a final dot is fine.
    assert_eq!(ns.lines("_api._tcp.example.com.", "").len(), 3);
}

#[test]
fn one_is_a_weighted_pick_from_the_lowest_priority() {
    let ns = Ns::new();
    ns.two_priorities();
    let mut picks: HashMap<String, u32> = HashMap::new();
    for _ in 0..60 {
        let lines = ns.lines("_api._tcp.example.com", "--one");
        assert_eq!(lines.len(), 1, "{lines:?}");
        *picks.entry(lines[0].clone()).or_default() += 1;
    }
    assert_eq!(picks.get("backup.example.com:8003"), None, "{picks:?}");
    let heavy = picks.get("b.example.com:8002").copied().unwrap_or(0);
    let light = picks.get("a.example.com:8001").copied().unwrap_or(0);
    // Weights 9 and 1: expected 54 and 6 of 60; heavy > light fails about once in 10^12.
    assert_eq!(heavy + light, 60, "{picks:?}");
    assert!(heavy > light, "{picks:?}");
    assert!(heavy >= 40, "{picks:?}");
}

#[test]
fn discover_prints_what_dig_shows() {
    let ns = Ns::new();
    ns.two_priorities();
    // dig +short SRV: "priority weight port target."
    let from_dig: BTreeSet<String> = ns
        .bind
        .values("_api._tcp.example.com.", "SRV")
        .iter()
        .map(|v| {
            let f: Vec<&str> = v.split_whitespace().collect();
            format!("{}:{}", f[3].trim_end_matches('.'), f[2])
        })
        .collect();
    let from_discover: BTreeSet<String> =
        ns.lines("_api._tcp.example.com", "").into_iter().collect();
    assert_eq!(from_discover, from_dig);
    assert_eq!(from_dig.len(), 3);
    // The JSON's fields are dig's fields.
    let out = run_expect(&mut ns.discover("_api._tcp.example.com", "--json"), 0);
    let from_json: BTreeSet<String> = json(&out)
        .iter()
        .map(|e| {
            format!(
                "{} {} {} {}.",
                e["priority"],
                e["weight"],
                e["port"],
                e["target"].as_str().unwrap()
            )
        })
        .collect();
    let dig_lines: BTreeSet<String> = ns
        .bind
        .values("_api._tcp.example.com.", "SRV")
        .into_iter()
        .collect();
    assert_eq!(from_json, dig_lines);
    // Plain addresses too.
    let addrs: BTreeSet<String> = ns.lines("b.example.com", "").into_iter().collect();
    let mut dig_addrs: BTreeSet<String> =
        ns.bind.values("b.example.com.", "A").into_iter().collect();
    dig_addrs.extend(ns.bind.values("b.example.com.", "AAAA"));
    assert_eq!(addrs, dig_addrs);
}

#[test]
fn json_has_the_documented_fields() {
    let ns = Ns::new();
    ns.two_priorities();
    let out = run_expect(&mut ns.discover("_api._tcp.example.com", "--json"), 0);
    let all = json(&out);
    assert_eq!(all.len(), 3);
    assert_eq!(all[2]["kind"], "srv");
    assert_eq!(all[2]["target"], "backup.example.com");
    assert_eq!(all[2]["port"], 8003);
    assert_eq!(all[2]["priority"], 20);
    assert_eq!(all[2]["weight"], 0);
    assert_eq!(all[2]["ttl"], 60);
    assert!(all[2].get("addresses").is_none(), "{}", all[2]);

    // --one --json: still an array, of one; --resolve adds the addresses.
    let out = run_expect(
        &mut ns.discover("_api._tcp.example.com", "--json --one --resolve"),
        0,
    );
    let one = json(&out);
    assert_eq!(one.len(), 1);
    let addresses = one[0]["addresses"].as_array().unwrap();
    match one[0]["target"].as_str().unwrap() {
        "a.example.com" => assert_eq!(addresses, &[serde_json::json!("192.0.2.1")]),
        "b.example.com" => assert_eq!(
            addresses,
            &[
                serde_json::json!("192.0.2.2"),
                serde_json::json!("2001:db8::2")
            ]
        ),
        other => panic!("picked {other}"),
    }
}

#[test]
fn resolve_prints_addresses_with_ipv6_in_brackets() {
    let ns = Ns::new();
    ns.bind.nsupdate(
        "update add _db._tcp.example.com. 60 SRV 0 0 5432 b.example.com.
         update add b.example.com. 60 A 192.0.2.2
         update add b.example.com. 60 AAAA 2001:db8::2",
    );
    assert_eq!(
        ns.lines("_db._tcp.example.com", "--resolve"),
        ["192.0.2.2:5432", "[2001:db8::2]:5432"]
    );
}

#[test]
fn dns_sd_browse_lists_instances_with_their_txt() {
    let ns = Ns::new();
    ns.bind.nsupdate(
        r#"update add _http._tcp.example.com. 60 PTR web-1._http._tcp.example.com.
           update add _http._tcp.example.com. 60 PTR web-2._http._tcp.example.com.
           update add web-1._http._tcp.example.com. 60 SRV 0 0 8080 h1.example.com.
           update add web-1._http._tcp.example.com. 60 TXT "path=/" "version=1" "tls"
           update add web-2._http._tcp.example.com. 60 SRV 0 0 8081 h2.example.com.
           update add web-2._http._tcp.example.com. 60 TXT "path=/v2" "Version=2" "version=3" "empty=""#,
    );
    let lines: BTreeSet<String> = ns.lines("_http._tcp.example.com", "").into_iter().collect();
    assert_eq!(
        lines,
        BTreeSet::from([
            "h1.example.com:8080\tweb-1\tpath=/\tversion=1\ttls".to_string(),
            // Keys are case-insensitive and the first of a duplicate wins (RFC 6763 §6.4).
            "h2.example.com:8081\tweb-2\tpath=/v2\tversion=2\tempty=".to_string(),
        ])
    );
    // cut -f1 gives the endpoints.
    let out = run_expect(&mut ns.discover("_http._tcp.example.com", "--one"), 0);
    let one = stdout(&out);
    let endpoint = one.split('\t').next().unwrap();
    assert!(
        ["h1.example.com:8080", "h2.example.com:8081"].contains(&endpoint),
        "{one}"
    );

    let out = run_expect(&mut ns.discover("_http._tcp.example.com", "--json"), 0);
    let mut all = json(&out);
    all.sort_by_key(|e| e["instance"].as_str().unwrap().to_string());
    assert_eq!(all[0]["kind"], "dns-sd");
    assert_eq!(all[0]["instance"], "web-1");
    assert_eq!(all[0]["target"], "h1.example.com");
    assert_eq!(all[0]["port"], 8080);
    assert_eq!(
        all[0]["txt"],
        serde_json::json!({"path": "/", "version": "1", "tls": true})
    );
    assert_eq!(
        all[1]["txt"],
        serde_json::json!({"path": "/v2", "version": "2", "empty": ""})
    );
}

#[test]
fn instance_picks_one_dns_sd_instance_by_its_own_name() {
    let ns = Ns::new();
    // An instance name with a space and a dot (RFC 6763 §4.3), escaped as
    // BIND reads names.
    ns.bind.nsupdate(
        r#"update add _http._tcp.example.com. 60 PTR web-1._http._tcp.example.com.
           update add _http._tcp.example.com. 60 PTR Web\032Two\.eu._http._tcp.example.com.
           update add web-1._http._tcp.example.com. 60 SRV 0 0 8080 h1.example.com.
           update add Web\032Two\.eu._http._tcp.example.com. 60 SRV 0 0 8081 h2.example.com.
           update add Web\032Two\.eu._http._tcp.example.com. 60 TXT "v=2""#,
    );
    assert_eq!(
        ns.lines("_http._tcp.example.com", "--instance web-1"),
        ["h1.example.com:8080\tweb-1"]
    );
    let mut c = ns.discover("_http._tcp.example.com", "--json --instance");
    c.arg("Web Two.eu");
    let out = run_expect(&mut c, 0);
    let found = json(&out);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["instance"], "Web Two.eu");
    assert_eq!(found[0]["port"], 8081);

    // None of that name: exit 1, naming those there are.
    let out = run_expect(
        &mut ns.discover("_http._tcp.example.com", "--instance web-3"),
        1,
    );
    assert!(
        stderr(&out).contains(r#"no instance called "web-3" among "Web Two.eu", "web-1""#),
        "{}",
        stderr(&out)
    );
    // A host name has no instances: a usage error, before any query.
    let out = run_expect(&mut ns.discover("h1.example.com", "--instance web-1"), 2);
    assert!(
        stderr(&out).contains("--instance picks a DNS-SD instance"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_name_with_only_addresses_prints_them() {
    let ns = Ns::new();
    ns.bind.nsupdate(
        "update add www.example.com. 60 A 192.0.2.10
         update add www.example.com. 60 A 192.0.2.11
         update add www.example.com. 60 AAAA 2001:db8::10",
    );
    let lines = ns.lines("www.example.com", "");
    // IPv4 first, each family in random order.
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(
        lines[..2].iter().collect::<BTreeSet<_>>(),
        BTreeSet::from([&"192.0.2.10".to_string(), &"192.0.2.11".to_string()])
    );
    assert_eq!(lines[2], "2001:db8::10");
    let with_port: BTreeSet<String> = ns
        .lines("www.example.com", "--port 443")
        .into_iter()
        .collect();
    assert_eq!(
        with_port,
        BTreeSet::from([
            "192.0.2.10:443".to_string(),
            "192.0.2.11:443".to_string(),
            "[2001:db8::10]:443".to_string()
        ])
    );
    let out = run_expect(&mut ns.discover("www.example.com", "--json --one"), 0);
    let one = json(&out);
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["kind"], "address");
    assert!(one[0].get("port").is_none(), "{}", one[0]);
}

#[test]
fn nxdomain_is_exit_1_with_what_was_asked() {
    let ns = Ns::new();
    let out = run_expect(&mut ns.discover("nothing.example.com", ""), 1);
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out).trim(),
        format!(
            "dnsreg: discover nothing.example.com: no SRV, PTR, A or AAAA records (asked {})",
            ns.bind.addr()
        )
    );
}

#[test]
fn a_single_dot_target_says_the_service_is_not_available() {
    let ns = Ns::new();
    ns.bind
        .nsupdate("update add _off._tcp.example.com. 60 SRV 0 0 0 .");
    let out = run_expect(&mut ns.discover("_off._tcp.example.com", ""), 1);
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("decidedly not available"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn wait_returns_as_soon_as_the_service_appears() {
    let ns = Ns::new();
    // Asked through a proxy that counts the questions, so that the service
    // is added once discover has asked, found nothing, and is waiting.
    let proxy = DnsProxy::start(ns.bind.addr());
    let mut child = ns
        .discover_at(proxy.addr(), "_master._tcp.example.com", "--wait 60s")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = Said::read(child.stdout.take().unwrap());
    let mut err = Said::read(child.stderr.take().unwrap());
    // A round asks four questions (SRV, PTR, A, AAAA): a fifth is the next
    // round, the first having found nothing.
    wait_until(
        Duration::from_secs(20),
        "a second round of questions",
        || proxy.stats().queries >= 5,
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "discover --wait stopped before the service appeared: {}",
        err.now()
    );
    ns.bind
        .nsupdate("update add _master._tcp.example.com. 60 SRV 0 0 7000 master.example.com.");
    let added = Instant::now();
    // Rounds are at most 2 s apart: within 10 s of the service appearing,
    // discover has answered. A discover that sees the service only when
    // --wait (60 s) runs out, or never (a cached "nothing there"), fails here.
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if added.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "discover still waited 10 s after the service appeared:\n{}",
                err.all()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!("answered {:?} after the service appeared", added.elapsed());
    assert_eq!(status.code(), Some(0), "{}", err.all());
    assert_eq!(out.all(), "master.example.com:7000\n");
}

#[test]
fn wait_gives_up_after_the_duration() {
    let ns = Ns::new();
    let started = Instant::now();
    // Not before the duration, nor long after it: 10 s leaves room for a
    // loaded machine, and catches a --wait that does not end.
    let out = output_within(
        &mut ns.discover("_never._tcp.example.com", "--wait 2s"),
        Duration::from_secs(10),
    );
    let elapsed = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "dnsreg: discover _never._tcp.example.com: nothing answered within 2s (asked {})",
            ns.bind.addr()
        )),
        "{err}"
    );
    assert!(err.contains("no SRV, PTR, A or AAAA records"), "{err}");
    // Its last round starts 100 ms before the deadline, counted from its own
    // start (after ours): giving up earlier is giving up too soon.
    assert!(elapsed >= Duration::from_millis(1900), "{elapsed:?}");
}

#[test]
fn an_unreachable_server_is_named_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    // A server that never answers: a socket bound and never read (held, so
    // that no other process can start answering on its port).
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = silent.local_addr().unwrap().to_string();
    let mut c = Command::new(env!("CARGO_BIN_EXE_dnsreg"));
    isolate(&mut c, dir.path());
    c.args(["discover", "_api._tcp.example.com", "--server", &server]);
    let started = Instant::now();
    // 2 s per query and one retry, the four queries at once: about 4 s. The
    // resolver's defaults (5 s per query, more tries) would take 10 s or more.
    let out = output_within(&mut c, Duration::from_secs(8));
    let elapsed = started.elapsed();
    eprintln!("gave up on a silent server in {elapsed:?}");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("dnsreg: discover _api._tcp.example.com: "),
        "{err}"
    );
    assert!(err.contains(&format!("(asked {server})")), "{err}");
    assert!(err.contains("no answer"), "{err}");
    drop(silent);
}

#[test]
fn bad_arguments_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (args, says) in [
        (
            &["discover", "x.example.com", "--server", "not-an-address"][..],
            "--server not-an-address: not an IP address or IP:PORT",
        ),
        (
            &[
                "discover",
                "x.example.com",
                "--server",
                "127.0.0.1",
                "--wait",
                "soon",
            ][..],
            "--wait soon:",
        ),
        (
            &["discover", "a..b", "--server", "127.0.0.1"][..],
            "not a domain name",
        ),
    ] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dnsreg"));
        isolate(&mut c, dir.path());
        c.args(args);
        let out = run_expect(&mut c, 2);
        let err = stderr(&out);
        assert!(err.starts_with("dnsreg: discover "), "{err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn discover_finds_what_join_published() {
    let ns = Ns::new();
    let mut join = Command::new(env!("CARGO_BIN_EXE_dnsreg"));
    isolate(&mut join, ns.dir.path());
    join.args(["join", "--provider", "rfc2136", "--zone", "example.com"])
        .arg("--server")
        .arg(ns.bind.addr().to_string())
        .arg("--tsig-key-file")
        .arg(ns.bind.key_file())
        .args(["--service", "_v1._theservice._tcp", "--port", "8080"])
        .args([
            "--metadata",
            "none",
            "--instance-id",
            "i-1",
            "--ipv4",
            "192.0.2.7",
        ])
        .arg("--state-dir")
        .arg(ns.dir.path().join("state"));
    run_expect(&mut join, 0);
    assert_eq!(
        ns.lines("_v1._theservice._tcp.example.com", ""),
        ["192-0-2-7.example.com:8080"]
    );
    assert_eq!(
        ns.lines("_v1._theservice._tcp.example.com", "--resolve"),
        ["192.0.2.7:8080"]
    );
}

#[test]
fn a_large_rrset_is_read_over_tcp() {
    let ns = Ns::new();
    // 80 SRV records with long targets: far beyond one UDP answer.
    let updates: String = (0..80)
        .map(|i| {
            format!(
                "update add _big._tcp.example.com. 60 SRV 0 1 {} a-rather-long-host-name-to-fill-the-answer-{i:02}.example.com.\n",
                9000 + i
            )
        })
        .collect();
    ns.bind.nsupdate(&updates);
    let lines: BTreeSet<String> = ns.lines("_big._tcp.example.com", "").into_iter().collect();
    assert_eq!(lines.len(), 80);
    assert!(lines.contains("a-rather-long-host-name-to-fill-the-answer-79.example.com:9079"));
}
