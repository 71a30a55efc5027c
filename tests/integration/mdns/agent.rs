//! `dnsreg run` with an mdns provider, on the segments of [`super::Segment`]:
//! the agent answers for its service and host itself, and says goodbye when
//! it stops or withdraws. Observed by `dnsreg discover` (the one-shot
//! querier) and by python-zeroconf (tests/sdk/zeroconf_browse.py), an
//! independent browser whose events carry the time they came.

use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{Avahi, LIMIT, Running, Segment, ip};
use crate::util::{Said, output_within, stderr, stdout, venv_bin};

/// `dnsreg run` in one host of a segment, its stderr read as it comes.
struct Agent {
    child: Running,
    log: Said,
}

/// A configuration: instance `id` at `ipv4`, `_http._tcp` instance
/// `instance` on port 8080 through an mdns provider on eth0, and `more`.
fn config(seg: &Segment, id: &str, ipv4: &str, instance: &str, more: &str) -> String {
    let state = seg.dir.path().join(format!("state-{id}"));
    format!(
        r#"[instance]
metadata = "none"
id = "{id}"
ipv4 = "{ipv4}"

[providers.lan]
type = "mdns"
interfaces = ["eth0"]

[[service]]
providers = ["lan"]
type = "_http._tcp"
instance = "{instance}"
port = 8080
txt = {{ path = "/" }}

[agent]
stop_timeout = "5s"
state_dir = "{}"
{more}"#,
        state.display()
    )
}

impl Agent {
    fn start(seg: &Segment, host: usize, config: &str) -> Agent {
        let path = seg.dir.path().join(format!("agent-{host}.toml"));
        std::fs::write(&path, config).unwrap();
        let mut c = seg.command(host, env!("CARGO_BIN_EXE_dnsreg"));
        c.arg("-c")
            .arg(&path)
            .arg("run")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("dnsreg runs");
        let log = Said::read(child.stderr.take().unwrap());
        Agent {
            child: Running(child),
            log,
        }
    }

    /// SIGTERM (`ip netns exec` execs dnsreg: the pid is its own), and when it
    /// was sent.
    fn term(&self) -> SystemTime {
        let sent = SystemTime::now();
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &self.child.0.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        sent
    }

    /// Its exit, within `limit`.
    fn exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.0.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "still running:\n{}",
                self.log.now()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// python-zeroconf browsing `_http._tcp.local.` in one host.
struct Browser {
    _child: Running,
    out: Said,
}

impl Browser {
    fn start(seg: &Segment, host: usize) -> Browser {
        let python = venv_bin("python");
        let mut c = seg.command(host, python.to_str().unwrap());
        c.arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/sdk/zeroconf_browse.py"
        ))
        .args([&Segment::ip(host), "_http._tcp.local.", "60"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        let mut child = c.spawn().expect("python runs");
        let out = Said::read(child.stdout.take().unwrap());
        out.wait_for(Duration::from_secs(10), "browsing\n");
        Browser {
            _child: Running(child),
            out,
        }
    }

    /// The wall-clock time of the first `event` line about `name`, waiting
    /// up to `limit` for it.
    fn when(&self, event: &str, name: &str, limit: Duration) -> f64 {
        let deadline = Instant::now() + limit;
        loop {
            let text = self.out.now();
            let found = text.lines().find_map(|l| {
                let mut parts = l.splitn(3, ' ');
                let (e, t, rest) = (parts.next()?, parts.next()?, parts.next()?);
                (e == event && rest.starts_with(name)).then(|| t.parse::<f64>().ok())?
            });
            if let Some(t) = found {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "no `{event} {name}` from zeroconf within {limit:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

#[test]
fn the_agent_answers_for_its_service_and_host_and_zeroconf_resolves_them() {
    let seg = Segment::new(2);
    let browser = Browser::start(&seg, 1);
    let started = SystemTime::now();
    let agent = Agent::start(&seg, 0, &config(&seg, "web-a", "10.53.53.1", "front", ""));
    let added = browser.when("added", "front._http._tcp.local.", LIMIT);
    eprintln!(
        "agent start → zeroconf saw it: {:.3} s",
        added - secs(started)
    );
    agent
        .log
        .wait_for(LIMIT, "mDNS: published front._http._tcp.local.");

    // The third-party client resolves what the agent publishes: its own
    // host label (the instance id, not the machine's name), port, address, TXT.
    browser.when(
        "resolved",
        "front._http._tcp.local. web-a.local. 8080 10.53.53.1 path=/",
        LIMIT,
    );
    // dnsreg's own querier, from another host.
    assert_eq!(
        seg.lines(1, "_http._tcp.local", &["--resolve"]),
        ["10.53.53.1:8080\tfront\tpath=/"]
    );
    assert_eq!(seg.lines(1, "web-a.local", &[]), ["10.53.53.1"]);
}

#[test]
fn sigterm_says_goodbye_and_browsers_drop_the_service_at_once() {
    let seg = Segment::new(2);
    let browser = Browser::start(&seg, 1);
    let mut agent = Agent::start(&seg, 0, &config(&seg, "web-a", "10.53.53.1", "front", ""));
    browser.when("resolved", "front._http._tcp.local.", LIMIT);

    let sent = agent.term();
    // Without a goodbye, zeroconf keeps the PTR for its TTL (75 minutes).
    let removed = browser.when("removed", "front._http._tcp.local.", Duration::from_secs(5));
    let latency = removed - secs(sent);
    eprintln!("SIGTERM → zeroconf removed it: {latency:.3} s");
    assert!(latency < 1.0, "removed {latency:.3} s after SIGTERM");
    let status = agent.exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}\n{}", agent.log.all());
    let log = agent.log.all();
    assert!(
        log.contains("front._http._tcp.local. unregistered (goodbye sent)"),
        "{log}"
    );
    assert!(log.contains("mDNS responder stopped"), "{log}");
    let out = output_within(&mut seg.discover(1, "_http._tcp.local", &[]), LIMIT);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

/// An agent started before its interface has the address (DHCP late at
/// boot) announces once the address comes, and again after the address went
/// and came back. mdns-sd by itself announces a registration only on the
/// interfaces it had when the registration was made.
#[test]
fn an_address_that_comes_late_or_comes_back_is_announced_on() {
    let seg = Segment::new(2);
    let host = seg.hosts[0].clone();
    ip(&["-n", &host, "addr", "del", "10.53.53.1/24", "dev", "eth0"]);
    let agent = Agent::start(&seg, 0, &config(&seg, "web-a", "10.53.53.1", "front", ""));
    agent
        .log
        .wait_for(LIMIT, "registered but not announced yet");
    let out = output_within(&mut seg.discover(1, "_http._tcp.local", &[]), LIMIT);
    assert_eq!(
        out.status.code(),
        Some(1),
        "no address, no answer: {}",
        stdout(&out)
    );

    // The address comes: mdns-sd sees it within its 5 s interface check.
    let browser = Browser::start(&seg, 1);
    ip(&["-n", &host, "addr", "add", "10.53.53.1/24", "dev", "eth0"]);
    browser.when("added", "front._http._tcp.local.", LIMIT);
    agent.log.wait_for(
        LIMIT,
        "mDNS: 10.53.53.1 is up: announcing front._http._tcp.local. there",
    );

    // The address goes (a DHCP lease lost) and comes back: mdns-sd drops
    // the interface with its last address, and adds it anew.
    ip(&["-n", &host, "addr", "del", "10.53.53.1/24", "dev", "eth0"]);
    agent.log.wait_for(LIMIT, "mDNS: 10.53.53.1 is gone");
    ip(&["-n", &host, "addr", "add", "10.53.53.1/24", "dev", "eth0"]);
    assert_eq!(
        seg.lines(1, "_http._tcp.local", &["--wait", "20s", "--resolve"]),
        ["10.53.53.1:8080\tfront\tpath=/"]
    );
    assert_eq!(
        agent.log.now().matches("is up: announcing front").count(),
        2,
        "{}",
        agent.log.now()
    );
}

#[test]
fn two_agents_with_one_instance_name_rename_one_and_both_are_found() {
    let seg = Segment::new(3);
    let first = Agent::start(&seg, 0, &config(&seg, "web-a", "10.53.53.1", "front", ""));
    first
        .log
        .wait_for(LIMIT, "mDNS: published front._http._tcp.local.");
    let second = Agent::start(&seg, 1, &config(&seg, "web-b", "10.53.53.2", "front", ""));
    second.log.wait_for(
        LIMIT,
        "mDNS name conflict: front._http._tcp.local. renamed to front (2)._http._tcp.local. on eth0",
    );
    second
        .log
        .wait_for(LIMIT, "mDNS: published front (2)._http._tcp.local.");
    assert!(
        !first.log.now().contains("name conflict"),
        "{}",
        first.log.now()
    );
    let mut lines = seg.lines(2, "_http._tcp.local", &["--resolve"]);
    lines.sort();
    assert_eq!(
        lines,
        [
            "10.53.53.1:8080\tfront\tpath=/",
            "10.53.53.2:8080\tfront (2)\tpath=/",
        ]
    );
}

#[test]
fn the_agent_shares_port_5353_with_avahi_daemon_on_its_host() {
    let seg = Segment::new(2);
    let avahi = Avahi::start(&seg, 0, &[]);
    let agent = Agent::start(&seg, 0, &config(&seg, "web-a", "10.53.53.1", "front", ""));
    agent
        .log
        .wait_for(LIMIT, "mDNS: published front._http._tcp.local.");
    assert_eq!(
        seg.lines(1, "_http._tcp.local", &["--resolve"]),
        ["10.53.53.1:8080\tfront\tpath=/"]
    );
    // Avahi still runs and answers for its own host name beside it.
    assert_eq!(
        seg.lines(1, &format!("{}.local", avahi.host_name), &[]),
        ["10.53.53.1"]
    );
}

#[test]
fn a_failing_health_check_withdraws_the_service_with_a_goodbye() {
    let seg = Segment::new(2);
    let flag = seg.dir.path().join("healthy");
    std::fs::write(&flag, "").unwrap();
    let check = format!(
        "\n[[check]]\nexec = [\"/usr/bin/test\", \"-e\", \"{}\"]\ninterval = \"200ms\"\ntimeout = \"200ms\"\nrise = 1\nfall = 1\n",
        flag.display()
    );
    let browser = Browser::start(&seg, 1);
    let agent = Agent::start(
        &seg,
        0,
        &config(&seg, "web-a", "10.53.53.1", "front", &check),
    );
    browser.when("resolved", "front._http._tcp.local.", LIMIT);
    std::fs::remove_file(&flag).unwrap();
    let failed = SystemTime::now();
    let removed = browser.when("removed", "front._http._tcp.local.", Duration::from_secs(5));
    eprintln!("check failing → removed: {:.3} s", removed - secs(failed));
    let out = output_within(&mut seg.discover(1, "_http._tcp.local", &[]), LIMIT);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // Healthy again: published again.
    std::fs::write(&flag, "").unwrap();
    agent
        .log
        .wait_for(LIMIT, "mDNS: published front._http._tcp.local.");
    assert_eq!(
        seg.lines(1, "_http._tcp.local", &[]),
        ["web-a.local:8080\tfront\tpath=/"]
    );
}

#[test]
fn one_shot_join_and_leave_write_and_remove_an_avahi_static_service_file() {
    let seg = Segment::new(2);
    let avahi = Avahi::start(&seg, 0, &[]);
    let file = seg.dir.path().join("avahi-0/services/dnsreg-lan.service");
    let text = config(&seg, "web-a", "10.53.53.1", "front", "").replace(
        "interfaces = [\"eth0\"]",
        &format!("service_file = \"{}\"", file.display()),
    );
    let path = seg.dir.path().join("oneshot.toml");
    std::fs::write(&path, text).unwrap();
    let run = |verb: &str| {
        let mut c = seg.command(0, env!("CARGO_BIN_EXE_dnsreg"));
        c.arg("-c").arg(&path).arg(verb);
        output_within(&mut c, LIMIT)
    };
    let out = run("join");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("wrote") && stderr(&out).contains("no dnsreg process stays"),
        "{}",
        stderr(&out)
    );
    assert!(file.exists());
    avahi.log.wait_for(LIMIT, "successfully established");
    // avahi publishes it under its own host name.
    assert_eq!(
        seg.lines(1, "_http._tcp.local", &["--wait", "5s"]),
        [format!("{}.local:8080\tfront\tpath=/", avahi.host_name)]
    );
    let out = run("leave");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!file.exists());
    avahi.log.wait_for(LIMIT, "vanished");
    let out = output_within(&mut seg.discover(1, "_http._tcp.local", &[]), LIMIT);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn check_explains_that_run_answers_and_one_shot_commands_write_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lan.toml");
    let text = format!(
        "[instance]\nmetadata = \"none\"\nid = \"web-a\"\nipv4 = \"10.0.0.5\"\n\n[providers.lan]\ntype = \"mdns\"\n\n[[service]]\nproviders = [\"lan\"]\ntype = \"_http._tcp\"\ninstance = \"front\"\nport = 8080\n\n[agent]\nstate_dir = \"{}\"\n",
        dir.path().display()
    );
    std::fs::write(&path, &text).unwrap();
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_dnsreg"));
    crate::util::isolate(&mut c, dir.path());
    c.arg("-c").arg(&path).arg("check");
    let out = crate::util::run_expect(&mut c, 0);
    let said = crate::util::stdout(&out);
    assert!(
        said.contains("`dnsreg run` answers for these records itself")
            && said.contains("/etc/avahi/services/dnsreg-lan.service"),
        "{said}"
    );
    // What multicast DNS cannot publish is exit 2, saying why.
    std::fs::write(
        &path,
        format!("{text}\n[[round_robin]]\nproviders = [\"lan\"]\nname = \"www\"\n"),
    )
    .unwrap();
    let out = crate::util::run_expect(&mut c, 2);
    assert!(
        stderr(&out).contains("each name belongs to one host"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_sighup_that_changes_the_txt_updates_it_without_a_goodbye() {
    let seg = Segment::new(2);
    let browser = Browser::start(&seg, 1);
    let text = config(&seg, "web-a", "10.53.53.1", "front", "");
    let agent = Agent::start(&seg, 0, &text);
    browser.when("resolved", "front._http._tcp.local.", LIMIT);
    std::fs::write(
        seg.dir.path().join("agent-0.toml"),
        text.replace("path = \"/\"", "path = \"/v2\""),
    )
    .unwrap();
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &agent.child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    agent.log.wait_for(LIMIT, "configuration reloaded");
    // Answered throughout: the name is ours already, so the update is
    // announced without probing again (RFC 6762 §8.4).
    crate::util::wait_until(LIMIT, "the new TXT", || {
        let lines = seg.lines(1, "_http._tcp.local", &[]);
        assert!(lines.len() == 1, "{lines:?}");
        lines == ["web-a.local:8080\tfront\tpath=/v2"]
    });
    // The responder was kept (its provider's settings did not change): no
    // goodbye, no second responder probing against the first.
    assert!(
        !browser.out.now().contains("removed"),
        "{}",
        browser.out.now()
    );
    let log = agent.log.now();
    assert!(!log.contains("name conflict"), "{log}");
    assert_eq!(log.matches("mDNS responder started").count(), 1, "{log}");
}
