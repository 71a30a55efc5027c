//! RFC 2136 against a real BIND: what only this provider has (TSIG keys, server
//! refusals, zone transfers, UDP→TCP), and a fleet joining one SRV rrset and one
//! DNS-SD service at once. The behaviour every provider shares is in the battery.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use tempfile::TempDir;
use testkit::bind::{Bind, BindOptions};

use crate::util::{isolate, run_expect, stderr, stdout};

/// A BIND serving example.com, and a scratch directory.
struct Ns {
    bind: Bind,
    dir: TempDir,
}

impl Ns {
    fn new() -> Ns {
        Ns::with(BindOptions::default())
    }

    fn with(options: BindOptions) -> Ns {
        Ns {
            bind: Bind::start_with(options),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn dnsreg(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dnsreg"));
        isolate(&mut c, self.dir.path());
        c
    }

    /// `dnsreg CMD` as instance `id` at `ip`, configured from flags, signed with `key`.
    fn cmd_with_key(
        &self,
        cmd: &str,
        id: &str,
        ip: &str,
        key: Option<&PathBuf>,
        args: &str,
    ) -> Command {
        self.cmd_via(&self.bind.addr().to_string(), cmd, id, ip, key, args)
    }

    /// The same, through `server` (a proxy in front of BIND).
    fn cmd_via(
        &self,
        server: &str,
        cmd: &str,
        id: &str,
        ip: &str,
        key: Option<&PathBuf>,
        args: &str,
    ) -> Command {
        let mut c = self.dnsreg();
        c.args([
            cmd,
            "--provider",
            "rfc2136",
            "--zone",
            "example.com",
            "--server",
            server,
        ]);
        if let Some(key) = key {
            c.arg("--tsig-key-file").arg(key);
        }
        c.args(args.split_whitespace())
            .args(["--metadata", "none", "--instance-id", id, "--ipv4", ip])
            .arg("--state-dir")
            .arg(self.dir.path().join("state").join(id));
        c
    }

    fn cmd(&self, cmd: &str, id: &str, ip: &str, args: &str) -> Command {
        self.cmd_with_key(cmd, id, ip, Some(&self.bind.key_file()), args)
    }

    /// A configuration file for instance `id`; `{server}`, `{key}` and `{state}` are filled in.
    fn config(&self, id: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{id}.toml"));
        let text = text
            .replace("{server}", &self.bind.addr().to_string())
            .replace("{key}", &self.bind.key_file().display().to_string())
            .replace(
                "{state}",
                &self.dir.path().join("state").join(id).display().to_string(),
            );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A key file with the same name as the server's but another secret.
    fn wrong_key(&self) -> PathBuf {
        self.new_key("dnsreg-key", "wrong.key")
    }

    /// A new key named `name`, in `file` of the scratch directory.
    fn new_key(&self, name: &str, file: &str) -> PathBuf {
        let out = Command::new("tsig-keygen")
            .args(["-a", "hmac-sha256", name])
            .output()
            .unwrap();
        let path = self.dir.path().join(file);
        std::fs::write(&path, out.stdout).unwrap();
        path
    }
}

const SERVICE: &str = "--service _v1._theservice._tcp --port 8080";

#[test]
fn keys_of_every_supported_algorithm_sign_updates_bind_accepts() {
    for algorithm in ["hmac-sha256", "hmac-sha384", "hmac-sha512"] {
        let ns = Ns::with(BindOptions {
            algorithm: algorithm.into(),
            ..BindOptions::default()
        });
        run_expect(&mut ns.cmd("join", "i-1", "192.0.2.1", SERVICE), 0);
        assert_eq!(
            ns.bind.values("_v1._theservice._tcp.example.com.", "SRV"),
            ["0 0 8080 192-0-2-1.example.com."],
            "{algorithm}"
        );
        assert_eq!(ns.bind.values("192-0-2-1.example.com.", "A"), ["192.0.2.1"]);
        run_expect(&mut ns.cmd("leave", "i-1", "192.0.2.1", SERVICE), 0);
        assert_eq!(ns.bind.records(), Vec::<String>::new(), "{algorithm}");
    }
}

#[test]
fn the_least_privilege_policy_of_the_readme_is_enough() {
    let ns = Ns::with(BindOptions {
        least_privilege: true,
        ..BindOptions::default()
    });
    let config = ns.config(
        "i-1",
        &FLEET.replace("{id}", "i-1").replace("{ip}", "192.0.2.1"),
    );
    let mut join = ns.dnsreg();
    join.arg("-c").arg(&config).arg("join");
    run_expect(&mut join, 0);
    assert_eq!(
        ns.bind.values("_http._tcp.example.com.", "PTR"),
        ["i-1._http._tcp.example.com."]
    );
    assert_eq!(ns.bind.values("www.example.com.", "A"), ["192.0.2.1"]);
    // And the policy does deny what dnsreg never needs: a CNAME.
    assert!(
        ns.bind
            .try_nsupdate(
                "example.com",
                "update add alias.example.com. 60 CNAME www.example.com."
            )
            .is_err()
    );
    let mut leave = ns.dnsreg();
    leave.arg("-c").arg(&config).arg("leave");
    run_expect(&mut leave, 0);
    assert_eq!(ns.bind.records(), Vec::<String>::new());
}

#[test]
fn a_wrong_key_is_a_clear_error_and_changes_nothing() {
    let ns = Ns::new();
    let wrong = ns.wrong_key();
    let out = run_expect(
        &mut ns.cmd_with_key("join", "i-1", "192.0.2.1", Some(&wrong), SERVICE),
        1,
    );
    let err = stderr(&out);
    assert!(err.contains("TSIG signature (BADSIG)"), "{err}");
    assert!(err.contains("another secret"), "{err}");
    assert!(err.contains("dnsreg-key"), "{err}");
    assert!(err.contains(&wrong.display().to_string()), "{err}");
    assert!(
        !err.contains("file an issue"),
        "hickory's wording leaks: {err}"
    );
    // The secret is never shown.
    let secret = std::fs::read_to_string(&wrong).unwrap();
    let secret = secret.split('"').nth(3).unwrap();
    assert!(!err.contains(secret), "{err}");
    assert_eq!(ns.bind.records(), Vec::<String>::new());
}

/// A key the server does not have at all (another name): BADKEY, said so.
#[test]
fn an_unknown_key_is_named_as_such() {
    let ns = Ns::new();
    let unknown = ns.new_key("some-other-key", "unknown.key");
    let out = run_expect(
        &mut ns.cmd_with_key("join", "i-1", "192.0.2.1", Some(&unknown), SERVICE),
        1,
    );
    let err = stderr(&out);
    assert!(err.contains("TSIG signature (BADKEY)"), "{err}");
    assert!(err.contains("some-other-key"), "{err}");
    assert_eq!(ns.bind.records(), Vec::<String>::new());
}

/// This machine's clock an hour ahead (libfaketime, for dnsreg alone): BIND
/// refuses the signature's time, and the error says so, with the skew,
/// rather than blaming the key.
#[test]
fn a_clock_off_by_an_hour_is_named_with_the_skew() {
    let ns = Ns::new();
    let c = ns.cmd("join", "i-1", "192.0.2.1", SERVICE);
    let program = c.get_program().to_owned();
    let args: Vec<std::ffi::OsString> = c.get_args().map(ToOwned::to_owned).collect();
    let mut faked = Command::new("faketime");
    faked.env_clear();
    // Only the wall clock: timers keep the real monotonic one.
    faked.env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => faked.env(k, v),
            None => faked.env_remove(k),
        };
    }
    if let Some(dir) = c.get_current_dir() {
        faked.current_dir(dir);
    }
    faked.arg("-f").arg("+1h").arg(program).args(args);
    let out = run_expect(&mut faked, 1);
    let err = stderr(&out);
    assert!(err.contains("TSIG signature's time (BADTIME)"), "{err}");
    let skew = err
        .split("its clock is ")
        .nth(1)
        .and_then(|r| r.split(" s behind").next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("the skew, in seconds: {err}"));
    assert!((3590..=3610).contains(&skew), "{skew}: {err}");
    assert!(!err.contains("another secret"), "{err}");
    assert_eq!(ns.bind.records(), Vec::<String>::new());
}

#[test]
fn an_update_without_a_key_is_refused_with_what_to_allow() {
    let ns = Ns::new();
    let out = run_expect(
        &mut ns.cmd_with_key("join", "i-1", "192.0.2.1", None, SERVICE),
        1,
    );
    let err = stderr(&out);
    assert!(err.contains("REFUSED"), "{err}");
    assert!(err.contains("allow-update"), "{err}");
    assert_eq!(ns.bind.records(), Vec::<String>::new());
}

#[test]
fn a_zone_the_server_does_not_serve_is_a_clear_error() {
    let ns = Ns::new();
    let mut c = ns.dnsreg();
    c.args([
        "join",
        "--provider",
        "rfc2136",
        "--zone",
        "example.org",
        "--server",
    ])
    .arg(ns.bind.addr().to_string())
    .arg("--tsig-key-file")
    .arg(ns.bind.key_file())
    .args([
        "--metadata",
        "none",
        "--instance-id",
        "i-1",
        "--ipv4",
        "192.0.2.1",
        "--name",
        "www",
    ])
    .arg("--state-dir")
    .arg(ns.dir.path().join("state"));
    let out = run_expect(&mut c, 1);
    let err = stderr(&out);
    assert!(err.contains("example.org"), "{err}");
    assert!(err.contains("does it serve zone"), "{err}");
}

#[test]
fn an_unreachable_server_is_a_clear_error_after_a_few_retries() {
    let ns = Ns::new();
    // A port nothing listens on: take one and let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = ns.dnsreg();
    c.args([
        "join",
        "--provider",
        "rfc2136",
        "--zone",
        "example.com",
        "--server",
    ])
    .arg(format!("127.0.0.1:{port}"))
    .arg("--tsig-key-file")
    .arg(ns.bind.key_file())
    .args([
        "--metadata",
        "none",
        "--instance-id",
        "i-1",
        "--ipv4",
        "192.0.2.1",
        "--name",
        "www",
    ])
    .arg("--state-dir")
    .arg(ns.dir.path().join("state"));
    let started = std::time::Instant::now();
    let out = run_expect(&mut c, 1);
    let err = stderr(&out);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("Connection refused"), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

/// A leased instance sharing `www`, configured from a file.
const LEASED: &str = r#"
[instance]
metadata = "none"
id = "{id}"
ipv4 = "{ip}"

[providers.ns]
type = "rfc2136"
zone = "example.com"
server = "{server}"
tsig_key_file = "{key}"

[[host]]
providers = ["ns"]
name = "{instance_id}"

[[round_robin]]
providers = ["ns"]
name = "www"

[lease]
ttl = "1h"

[agent]
state_dir = "{state}"
"#;

#[test]
fn an_agent_s_updates_and_records_show_in_its_metrics() {
    use crate::metrics::{free_port, parse, scrape, value};
    let ns = Ns::new();
    let listen = free_port();
    let text = LEASED
        .replace("{id}", "i-1")
        .replace("{ip}", "192.0.2.1")
        .replace(
            "[agent]\n",
            &format!("[agent]\nmetrics_listen = \"{listen}\"\n"),
        );
    let config = ns.config("i-1", &text);
    let mut agent = ns
        .dnsreg()
        .arg("-c")
        .arg(&config)
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let published = || {
        ns.bind.values("www.example.com.", "A").len()
            + ns.bind.values("i-1.example.com.", "A").len()
    };
    crate::util::wait_until(std::time::Duration::from_secs(30), "published", || {
        published() == 2
    });
    let mut samples = Vec::new();
    crate::util::wait_until(std::time::Duration::from_secs(10), "the metrics", || {
        samples = parse(&scrape(&listen).2);
        value(&samples, "dnsreg_records_published", &[("provider", "ns")]) == 2.0
    });
    assert_eq!(
        value(&samples, "dnsreg_records_desired", &[("provider", "ns")]),
        published() as f64
    );
    let updates = [
        ("provider", "ns"),
        ("operation", "update"),
        ("outcome", "ok"),
    ];
    assert!(
        value(&samples, "dnsreg_api_requests_total", &updates) >= 1.0,
        "{samples:?}"
    );
    let queries = [
        ("provider", "ns"),
        ("operation", "query"),
        ("outcome", "ok"),
    ];
    assert!(
        value(&samples, "dnsreg_api_requests_total", &queries) >= 1.0,
        "{samples:?}"
    );
    Command::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(agent.wait().unwrap().code(), Some(0));
    assert_eq!(published(), 0);
}

/// A key that may update the zone but not transfer it: join and leave need
/// no more (claims are read by name), and only `reap`, whose job is a
/// listing of every registry, says which right it lacks, without blaming
/// the key, and changes nothing.
#[test]
fn a_key_that_may_not_transfer_joins_and_leaves_and_reap_says_what_to_allow() {
    let ns = Ns::with(BindOptions {
        allow_transfer: false,
        ..BindOptions::default()
    });
    let leased =
        |id: &str, ip: &str| ns.config(id, &LEASED.replace("{id}", id).replace("{ip}", ip));
    let (one, two) = (leased("i-1", "192.0.2.1"), leased("i-2", "192.0.2.2"));
    for c in [&one, &two] {
        run_expect(ns.dnsreg().arg("-c").arg(c).arg("join"), 0);
    }
    assert_eq!(
        ns.bind.values("www.example.com.", "A"),
        ["192.0.2.1", "192.0.2.2"]
    );
    let out = run_expect(ns.dnsreg().arg("-c").arg(&one).arg("leave"), 0);
    assert!(
        stdout(&out).contains("- www.example.com. A 192.0.2.1"),
        "{}",
        stdout(&out)
    );
    assert_eq!(ns.bind.values("www.example.com.", "A"), ["192.0.2.2"]);
    assert_eq!(
        ns.bind.values("192-0-2-1.example.com.", "A"),
        Vec::<String>::new()
    );
    assert_eq!(
        ns.bind.values("i-1._dnsreg.example.com.", "TXT"),
        Vec::<String>::new()
    );

    let before = ns.bind.records();
    let out = run_expect(ns.dnsreg().arg("-c").arg(&two).arg("reap"), 1);
    let err = stderr(&out);
    assert!(err.contains("refused to transfer the zone"), "{err}");
    assert!(
        err.contains("allow-transfer { key \"dnsreg-key\"; }"),
        "{err}"
    );
    assert!(
        !err.contains("BADSIG") && !err.contains("not the key"),
        "{err}"
    );
    assert_eq!(ns.bind.records(), before, "reap changed nothing");
}

/// An agent that reaps (`[lease] reap = true`) with a key that may not
/// transfer the zone: it says so at the start and publishes nothing, rather
/// than join and fail at every reap after.
#[test]
fn a_reaping_agent_without_transfer_rights_refuses_to_start_and_publishes_nothing() {
    let ns = Ns::with(BindOptions {
        allow_transfer: false,
        ..BindOptions::default()
    });
    let text = LEASED
        .replace("{id}", "i-1")
        .replace("{ip}", "192.0.2.1")
        .replace("ttl = \"1h\"", "ttl = \"1h\"\nreap = true");
    let config = ns.config("i-1", &text);
    let out = crate::util::output_within(
        ns.dnsreg().arg("-c").arg(&config).arg("run"),
        std::time::Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("reap = true"), "{err}");
    assert!(
        err.contains("allow-transfer { key \"dnsreg-key\"; }"),
        "{err}"
    );
    assert!(
        !err.contains("BADSIG") && !err.contains("not the key"),
        "{err}"
    );
    assert_eq!(
        ns.bind.values("www.example.com.", "A"),
        Vec::<String>::new()
    );
    assert_eq!(
        ns.bind.values("i-1._dnsreg.example.com.", "TXT"),
        Vec::<String>::new()
    );
}

#[test]
fn a_large_shared_rrset_is_read_over_tcp_and_only_our_value_changes() {
    let ns = Ns::new();
    // 80 SRV lines by hand: the answer is larger than a UDP answer may be (1232 octets).
    let lines: Vec<String> = (0..80)
        .map(|i| format!("update add _v1._theservice._tcp.example.com. 60 SRV 0 0 8080 by-hand-{i:02}.example.com."))
        .collect();
    ns.bind.nsupdate(&lines.join("\n"));
    let mut by_hand = ns.bind.values("_v1._theservice._tcp.example.com.", "SRV");
    assert_eq!(by_hand.len(), 80);

    run_expect(&mut ns.cmd("join", "i-1", "192.0.2.1", SERVICE), 0);
    let mut now = ns.bind.values("_v1._theservice._tcp.example.com.", "SRV");
    assert_eq!(now.len(), 81);
    now.retain(|v| !v.contains("by-hand"));
    assert_eq!(now, ["0 0 8080 192-0-2-1.example.com."]);
    // status reads it back (over TCP too) and sees ours.
    run_expect(&mut ns.cmd("status", "i-1", "192.0.2.1", SERVICE), 0);

    run_expect(&mut ns.cmd("leave", "i-1", "192.0.2.1", SERVICE), 0);
    let mut after = ns.bind.values("_v1._theservice._tcp.example.com.", "SRV");
    after.sort();
    by_hand.sort();
    assert_eq!(after, by_hand);
}

/// A server slow to answer an UPDATE (BIND working through a fleet's) is
/// waited for, not sent the UPDATE again: hickory resends a UDP message after
/// a third of a second, and a repeat whose first copy landed only fails its
/// prerequisites (measured: 164 repeats from 300 agents on one BIND).
#[test]
fn an_update_answered_late_is_waited_for_not_sent_again() {
    use std::time::Duration;
    use testkit::dnsproxy::{DnsFault, DnsProxy, Kind};
    let ns = Ns::new();
    let proxy = DnsProxy::start(ns.bind.addr());
    proxy.fail_next_of(Kind::Update, 1, DnsFault::Delay(Duration::from_millis(800)));
    let key = ns.bind.key_file();
    let via = proxy.addr().to_string();
    let mut join = ns.cmd_via(&via, "join", "i-1", "192.0.2.1", Some(&key), SERVICE);
    run_expect(&mut join, 0);
    let s = proxy.stats();
    assert_eq!(s.faulted, 1, "the late answer was the join's: {s:?}");
    assert_eq!(s.updates, 1, "one UPDATE, waited for: {s:?}");
    assert_eq!(
        ns.bind.values("_v1._theservice._tcp.example.com.", "SRV"),
        ["0 0 8080 192-0-2-1.example.com."]
    );
}

#[test]
fn the_ttl_of_our_own_rrset_follows_the_configuration() {
    let ns = Ns::new();
    run_expect(
        &mut ns.cmd("join", "i-1", "192.0.2.1", "--host web --ttl 300"),
        0,
    );
    assert_eq!(ns.bind.ttl("web.example.com.", "A"), Some(300));
    run_expect(
        &mut ns.cmd("join", "i-1", "192.0.2.1", "--host web --ttl 60"),
        0,
    );
    assert_eq!(ns.bind.ttl("web.example.com.", "A"), Some(60));
    assert_eq!(ns.bind.values("web.example.com.", "A"), ["192.0.2.1"]);
}

const FLEET: &str = r#"
[instance]
metadata = "none"
id = "{id}"
ipv4 = "{ip}"
hostname = "{id}"

[providers.ns]
type = "rfc2136"
zone = "example.com"
server = "{server}"
tsig_key_file = "{key}"

[[host]]
providers = ["ns"]
name = "{instance_id}"
ttl = 60

[[round_robin]]
providers = ["ns"]
name = "www"
ttl = 60

[[srv]]
providers = ["ns"]
name = "_v1._theservice._tcp"
port = 8080
target = "{instance_id}"
ttl = 60

[[service]]
providers = ["ns"]
type = "_http._tcp"
instance = "{hostname}"
port = 8080
txt = { path = "/", version = "1" }
ttl = 60

[agent]
state_dir = "{state}"
"#;

#[test]
fn fifty_agents_join_one_srv_rrset_and_dns_sd_service_through_bind_at_once() {
    let ns = Arc::new(Ns::new());
    let n = 50;
    let ids: Vec<(String, String)> = (1..=n)
        .map(|i| (format!("node-{i:02}"), format!("198.51.100.{i}")))
        .collect();
    let configs: Vec<PathBuf> = ids
        .iter()
        .map(|(id, ip)| ns.config(id, &FLEET.replace("{id}", id).replace("{ip}", ip)))
        .collect();
    let run_all = |cmd: &'static str| {
        let handles: Vec<_> = configs
            .iter()
            .map(|config| {
                let mut c = ns.dnsreg();
                c.arg("-c").arg(config).arg(cmd);
                std::thread::spawn(move || c.output().unwrap())
            })
            .collect();
        for h in handles {
            let out = h.join().unwrap();
            assert!(
                out.status.success(),
                "{cmd} failed:\n{}\n{}",
                stdout(&out),
                stderr(&out)
            );
        }
    };

    run_all("join");
    let www = ns.bind.values("www.example.com.", "A");
    assert_eq!(www.len(), n, "{www:?}");
    let srv = ns.bind.values("_v1._theservice._tcp.example.com.", "SRV");
    assert_eq!(srv.len(), n, "{srv:?}");
    let ptr = ns.bind.values("_http._tcp.example.com.", "PTR");
    assert_eq!(ptr.len(), n, "{ptr:?}");
    for (id, ip) in &ids {
        assert_eq!(
            ns.bind.values(&format!("{id}.example.com."), "A"),
            [ip.as_str()]
        );
        assert!(srv.contains(&format!("0 0 8080 {id}.example.com.")), "{id}");
        assert!(
            ptr.contains(&format!("{id}._http._tcp.example.com.")),
            "{id}"
        );
        assert_eq!(
            ns.bind
                .values(&format!("{id}._http._tcp.example.com."), "SRV"),
            [format!("0 0 8080 {id}.example.com.")]
        );
        assert_eq!(
            ns.bind
                .values(&format!("{id}._http._tcp.example.com."), "TXT"),
            ["\"path=/\" \"version=1\""]
        );
    }

    run_all("leave");
    assert_eq!(ns.bind.records(), Vec::<String>::new());
}

#[test]
fn config_errors_for_rfc2136_name_the_key() {
    let ns = Ns::new();
    let bad_key = ns.dir.path().join("md5.key");
    std::fs::write(
        &bad_key,
        "key \"old\" {\n\talgorithm hmac-md5;\n\tsecret \"c2VjcmV0\";\n};\n",
    )
    .unwrap();
    let config = ns.config(
        "bad",
        &format!(
            r#"[instance]
metadata = "none"
id = "i-1"
ipv4 = "192.0.2.1"

[providers.ns]
type = "rfc2136"
zone = "example.com"
server = "not a server"
tsig_key_file = "{}"
token_file = "/nonexistent"

[providers.other]
type = "rfc2136"
zone = "example.com"

[[round_robin]]
providers = ["ns", "other"]
name = "www"
"#,
            bad_key.display()
        ),
    );
    let mut c = ns.dnsreg();
    c.arg("-c").arg(&config).arg("check");
    let out = run_expect(&mut c, 2);
    let err = stderr(&out);
    for says in [
        "providers.ns.server",
        "not a server address",
        "providers.ns.tsig_key_file",
        "hmac-md5",
        "tsig-keygen -a hmac-sha256 old",
        "providers.ns.token_file",
        "providers.other.server",
        "missing",
    ] {
        assert!(err.contains(says), "{says}: {err}");
    }
    assert!(!err.contains("c2VjcmV0"), "the secret is shown: {err}");
}

/// At a name holding thousands of values neither the answer nor an UPDATE
/// naming the rrset in full (its prerequisite) fits in one DNS message; the
/// DNS library would cut both short without a word (a part of the rrset taken
/// for the whole; an UPDATE applied in part by BIND). dnsreg refuses, says
/// why, and nothing changes.
#[test]
fn an_rrset_too_large_for_one_message_is_refused_not_cut_short() {
    let ns = Ns::with(BindOptions {
        max_records_per_type: Some(0),
        ..BindOptions::default()
    });
    // 5,000 addresses at www, by hand, in batches nsupdate can send.
    for batch in 0..25 {
        let adds: Vec<String> = (0..200)
            .map(|i| {
                let n = batch * 200 + i;
                format!(
                    "update add www.example.com. 60 A 10.{}.{}.{}",
                    n / 62500,
                    (n / 250) % 250,
                    n % 250 + 1
                )
            })
            .collect();
        ns.bind.nsupdate(&adds.join("\n"));
    }
    let before = ns.bind.records().len();
    let out = run_expect(&mut ns.cmd("join", "i-big", "192.0.2.1", "--name www"), 1);
    let err = stderr(&out);
    assert!(
        err.contains("does not fit in one DNS message") || err.contains("more than DNS can carry"),
        "{err}"
    );
    assert_eq!(ns.bind.records().len(), before, "nothing was applied");
}
