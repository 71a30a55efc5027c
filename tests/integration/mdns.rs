//! `dnsreg discover` over multicast DNS, against independent responders on a
//! segment of its own: each test builds network namespaces (a bridge, and a
//! veth "host" per namespace on it), runs a real avahi-daemon (Debian's, no
//! D-Bus, a static service file) or python-zeroconf (tests/sdk/zeroconf_publish.py)
//! in one host, and dnsreg in another. Nothing is sent on the machine's own
//! interfaces: every multicast packet stays on the test's bridge, and the
//! namespaces go when the test ends, panic or not.
//!
//! Needs root, iproute2 and avahi-daemon (scripts/setup-test-env installs them).

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::util::{Said, isolate, output_within, run_expect, stderr, stdout, venv_bin};

mod agent;

/// A discover that finds nothing must still end: a round is at most about a
/// second, and every test run is bounded by this.
const LIMIT: Duration = Duration::from_secs(20);

/// A tool the tests cannot do without, or a failure that says how to get it.
fn need(tool: &str, package: &str) -> String {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let path = Path::new(dir).join(tool);
        if path.exists() {
            return path.display().to_string();
        }
    }
    panic!("{tool} is not installed: run scripts/setup-test-env (apt-get install {package})");
}

/// Runs `ip ARGS`, panicking with what it said if it fails.
fn ip(args: &[&str]) {
    let out = Command::new(need("ip", "iproute2"))
        .args(args)
        .output()
        .expect("ip runs");
    assert!(
        out.status.success(),
        "ip {}: {}(network namespaces need root)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// One layer-2 segment: a namespace holding the bridge, and `hosts`
/// namespaces each with an `eth0` on it at 10.53.53.<i+1>/24. Namespaces
/// are per test (names carry the process id and a counter), so tests run in
/// parallel; dropping the segment kills what still runs in them and deletes
/// them.
struct Segment {
    bridge: String,
    hosts: Vec<String>,
    dir: TempDir,
}

impl Segment {
    fn new(hosts: usize) -> Segment {
        let id = format!(
            "dnsreg-mdns-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut seg = Segment {
            bridge: format!("{id}-br"),
            hosts: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
        };
        ip(&["netns", "add", &seg.bridge]);
        // Snooping off: 224.0.0.251 is flooded anyway, and a querier showing up
        // cannot change that.
        ip(&[
            "-n",
            &seg.bridge,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        ip(&["-n", &seg.bridge, "link", "set", "br0", "up"]);
        for i in 0..hosts {
            let ns = format!("{id}-{i}");
            ip(&["netns", "add", &ns]);
            seg.hosts.push(ns.clone());
            let port = format!("h{i}");
            // Both ends are made in the test's namespaces: nothing passes
            // through the machine's own.
            ip(&[
                "-n",
                &seg.bridge,
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &ns,
            ]);
            ip(&[
                "-n",
                &seg.bridge,
                "link",
                "set",
                &port,
                "master",
                "br0",
                "up",
            ]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", Segment::ip(i)),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        }
        seg
    }

    fn ip(host: usize) -> String {
        format!("10.53.53.{}", host + 1)
    }

    /// Gives host `host` the IPv6 address fd53::<host+1>/64 (no duplicate
    /// address detection: usable at once); `only` takes its IPv4 one away.
    fn ipv6(&self, host: usize, only: bool) -> String {
        let ns = &self.hosts[host];
        let v6 = format!("fd53::{}", host + 1);
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{v6}/64"),
            "dev",
            "eth0",
            "nodad",
        ]);
        if only {
            ip(&[
                "-n",
                ns,
                "addr",
                "del",
                &format!("{}/24", Segment::ip(host)),
                "dev",
                "eth0",
            ]);
        }
        v6
    }

    /// `program` run in host `host`'s namespace.
    fn command(&self, host: usize, program: &str) -> Command {
        let mut c = Command::new(need("ip", "iproute2"));
        isolate(&mut c, self.dir.path());
        c.args(["netns", "exec", &self.hosts[host], program]);
        c
    }

    /// `dnsreg discover NAME ARGS` in host `host` (`args` split at spaces).
    fn discover(&self, host: usize, name: &str, args: &[&str]) -> Command {
        let mut c = self.command(host, env!("CARGO_BIN_EXE_dnsreg"));
        c.args(["discover", name]).args(args);
        c
    }

    /// The lines of a discover that must succeed.
    fn lines(&self, host: usize, name: &str, args: &[&str]) -> Vec<String> {
        let out = output_within(&mut self.discover(host, name, args), LIMIT);
        assert!(
            out.status.success(),
            "discover {name} {args:?}: {:?}\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            stdout(&out),
            stderr(&out)
        );
        stdout(&out).lines().map(str::to_string).collect()
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        for ns in self.hosts.iter().chain([&self.bridge]) {
            // Whatever a failed test left running in it, by its pid.
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A child killed (and reaped) on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real avahi-daemon in one host, publishing static service files, with
/// no D-Bus. It runs in a mount namespace of its own (`ip netns exec` gives
/// each command one): a tmpfs over /run for its pid file and socket, and the
/// test's directory bound over /etc/avahi/services, so several run at once
/// and the machine's /etc and /run are not touched.
struct Avahi {
    _child: Running,
    log: Said,
    host_name: String,
}

impl Avahi {
    /// Starts it with `services` (file stem, XML) and waits until each is
    /// established.
    fn start(seg: &Segment, host: usize, services: &[(&str, String)]) -> Avahi {
        let daemon = need("avahi-daemon", "avahi-daemon");
        let dir = seg.dir.path().join(format!("avahi-{host}"));
        std::fs::create_dir_all(dir.join("services")).unwrap();
        let host_name = format!("avahi-{host}-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        std::fs::write(
            dir.join("avahi-daemon.conf"),
            format!(
                "[server]\nhost-name={host_name}\nuse-ipv4=yes\nuse-ipv6=no\n\
                 allow-interfaces=eth0\nenable-dbus=no\n\
                 [wide-area]\nenable-wide-area=no\n\
                 [publish]\npublish-hinfo=no\npublish-workstation=no\n"
            ),
        )
        .unwrap();
        for (stem, xml) in services {
            std::fs::write(dir.join("services").join(format!("{stem}.service")), xml).unwrap();
        }
        let mut c = seg.command(host, "sh");
        c.args([
            "-c",
            "mount -t tmpfs tmpfs /run && mkdir /run/avahi-daemon \
             && mount --bind \"$1/services\" /etc/avahi/services \
             && exec \"$2\" -f \"$1/avahi-daemon.conf\" --no-drop-root --no-chroot --no-rlimits --debug",
            "sh",
        ])
        .arg(&dir)
        .arg(&daemon)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut child = c.spawn().expect("avahi-daemon starts");
        let log = Said::read(child.stderr.take().unwrap());
        let avahi = Avahi {
            _child: Running(child),
            log,
            host_name,
        };
        avahi
            .log
            .wait_for(Duration::from_secs(10), "Server startup complete");
        let established = services.len();
        let deadline = Instant::now() + Duration::from_secs(10);
        while avahi.log.now().matches("successfully established").count() < established {
            assert!(
                Instant::now() < deadline,
                "avahi did not establish its services:\n{}",
                avahi.log.now()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        avahi
    }
}

/// An avahi static service file (avahi.service(5)): `_http._tcp` at `port`
/// under this avahi's own host name, with `txt` strings.
fn service_file(name: &str, port: u16, txt: &[&str]) -> String {
    let txt: String = txt
        .iter()
        .map(|t| format!("<txt-record>{t}</txt-record>"))
        .collect();
    format!(
        "<?xml version=\"1.0\" standalone='no'?>\n\
         <!DOCTYPE service-group SYSTEM \"avahi-service.dtd\">\n\
         <service-group><name>{name}</name>\
         <service protocol=\"ipv4\"><type>_http._tcp</type><port>{port}</port>{txt}</service>\
         </service-group>\n"
    )
}

/// python-zeroconf publishing instances of `_http._tcp` in one host, as host
/// `pyhost.local.` (tests/sdk/zeroconf_publish.py).
struct Zeroconf {
    child: Running,
    out: Said,
    stdin: Option<ChildStdin>,
}

impl Zeroconf {
    /// Registers `instances` (`NAME:PORT:PRIORITY:WEIGHT[:k=v,...]`) at the
    /// host's IPv4 address and waits until each is announced.
    fn start(seg: &Segment, host: usize, instances: &[&str]) -> Zeroconf {
        Zeroconf::start_at(seg, host, &Segment::ip(host), instances)
    }

    /// The same at `ips` (comma-separated, IPv4 and IPv6).
    fn start_at(seg: &Segment, host: usize, ips: &str, instances: &[&str]) -> Zeroconf {
        let python = venv_bin("python");
        let mut c = seg.command(host, python.to_str().unwrap());
        c.arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/sdk/zeroconf_publish.py"
        ))
        .args([ips, "_http._tcp.local.", "pyhost"])
        .args(instances)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        let mut child = c.spawn().expect("python runs");
        let stdin = child.stdin.take();
        let out = Said::read(child.stdout.take().unwrap());
        let zc = Zeroconf {
            child: Running(child),
            out,
            stdin,
        };
        for spec in instances {
            let name = spec.split(':').next().unwrap();
            zc.out
                .wait_for(Duration::from_secs(15), &format!("registered {name}\n"));
        }
        zc
    }

    /// Unregisters one instance (its goodbye, RFC 6762 §10.1, goes out) and
    /// waits until zeroconf says it is done.
    fn unregister(&mut self, name: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "unregister {name}").unwrap();
        stdin.flush().unwrap();
        self.out
            .wait_for(Duration::from_secs(10), &format!("unregistered {name}\n"));
    }
}

impl Drop for Zeroconf {
    fn drop(&mut self) {
        // End of input: it unregisters the rest and exits; killed after 5 s.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn json(out: &[u8]) -> Vec<serde_json::Value> {
    serde_json::from_slice(out)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", String::from_utf8_lossy(out)))
}

#[test]
fn avahi_static_services_are_found_with_address_txt_and_by_instance_name() {
    let seg = Segment::new(2);
    let avahi = Avahi::start(
        &seg,
        0,
        &[
            (
                "front",
                service_file("Front Door v1.2", 8080, &["path=/", "role=frontend"]),
            ),
            ("side", service_file("Side Door", 8081, &["role=side"])),
        ],
    );
    let host = format!("{}.local", avahi.host_name);

    // --resolve: the avahi host's address, and nothing but it (avahi also
    // publishes its IPv6 link-local address, useless without a zone).
    let mut lines = seg.lines(1, "_http._tcp.local", &["--resolve"]);
    lines.sort();
    assert_eq!(
        lines,
        [
            "10.53.53.1:8080\tFront Door v1.2\tpath=/\trole=frontend",
            "10.53.53.1:8081\tSide Door\trole=side",
        ],
    );

    // --json: the SRV target, port and TXT as avahi published them.
    let out = run_expect(&mut seg.discover(1, "_http._tcp.local.", &["--json"]), 0);
    let found = json(&out.stdout);
    let front = found
        .iter()
        .find(|e| e["instance"] == "Front Door v1.2")
        .unwrap_or_else(|| panic!("{found:?}"));
    assert_eq!(front["kind"], "dns-sd");
    assert_eq!(front["target"], host.as_str());
    assert_eq!(front["port"], 8080);
    assert_eq!(
        front["txt"],
        serde_json::json!({"path": "/", "role": "frontend"})
    );

    // --instance: the name as published, spaces and dots included.
    let lines = seg.lines(1, "_http._tcp.local", &["--instance", "Front Door v1.2"]);
    assert_eq!(
        lines,
        [format!(
            "{host}:8080\tFront Door v1.2\tpath=/\trole=frontend"
        )]
    );
    let out = output_within(
        &mut seg.discover(1, "_http._tcp.local", &["--instance", "Back Door"]),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no instance called \"Back Door\" among"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");

    // The host name alone: its A record.
    assert_eq!(seg.lines(1, &host, &[]), ["10.53.53.1"]);

    // On avahi's own host too: the daemon hears the query (multicast loop)
    // and answers, while it holds port 5353 and discover never binds it.
    assert_eq!(
        seg.lines(0, "_http._tcp.local", &["--instance", "Side Door"]),
        [format!("{host}:8081\tSide Door\trole=side")]
    );
}

#[test]
fn zeroconf_priorities_decide_the_order_and_one_is_the_lowest() {
    let seg = Segment::new(2);
    // "backup" sorts first by name and has the larger weight: only its
    // priority puts it last.
    let _zc = Zeroconf::start(
        &seg,
        0,
        &[
            "backup:8081:20:50:role=backup",
            "primary:8080:10:5:role=primary",
        ],
    );
    for _ in 0..5 {
        let lines = seg.lines(1, "_http._tcp.local", &[]);
        assert_eq!(
            lines,
            [
                "pyhost.local:8080\tprimary\trole=primary",
                "pyhost.local:8081\tbackup\trole=backup",
            ],
        );
        assert_eq!(
            seg.lines(1, "_http._tcp.local", &["--one", "--resolve"]),
            ["10.53.53.1:8080\tprimary\trole=primary"]
        );
    }
    // The priority and weight read off the wire.
    let out = run_expect(&mut seg.discover(1, "_http._tcp.local", &["--json"]), 0);
    let found = json(&out.stdout);
    assert_eq!(
        found
            .iter()
            .map(|e| (
                e["instance"].clone(),
                e["priority"].clone(),
                e["weight"].clone()
            ))
            .collect::<Vec<_>>(),
        [
            ("primary".into(), 10.into(), 5.into()),
            ("backup".into(), 20.into(), 50.into())
        ]
    );
}

#[test]
fn wait_finds_a_publisher_that_comes_later() {
    let seg = Segment::new(2);
    let mut c = seg.discover(1, "_http._tcp.local", &["--wait", "10s", "--one"]);
    c.env("DNSREG_LOG", "dnsreg=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = Running(c.spawn().expect("dnsreg runs"));
    let mut out = Said::read(child.0.stdout.take().unwrap());
    let mut err = Said::read(child.0.stderr.take().unwrap());
    // A round has found nothing, and it is still waiting.
    err.wait_for(Duration::from_secs(5), "asking again");
    assert!(child.0.try_wait().unwrap().is_none(), "{}", err.now());

    let published = Instant::now();
    let _zc = Zeroconf::start(&seg, 0, &["late:8080:0:0:v=1"]);
    let registered = Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed() < LIMIT, "still waiting:\n{}", err.now());
        std::thread::sleep(Duration::from_millis(20));
    };
    let (took, since) = (started.elapsed(), published.elapsed());
    eprintln!(
        "--wait: found {since:?} after the publisher started, {:?} after it was announced",
        registered.elapsed()
    );
    assert!(status.success(), "{status:?}\n{}", err.all());
    assert_eq!(out.all(), "pyhost.local:8080\tlate\tv=1\n");
    // Registration (probing) takes zeroconf about 1.6 s; a round ~0.25 s and
    // the pause between rounds at most 2 s.
    assert!(
        since < Duration::from_secs(6),
        "found {since:?} after publishing"
    );
    assert!(took < Duration::from_secs(9), "took {took:?} of --wait 10s");
}

#[test]
fn wait_with_nothing_published_fails_at_its_deadline() {
    let seg = Segment::new(2);
    let started = Instant::now();
    let out = output_within(
        &mut seg.discover(1, "_http._tcp.local", &["--wait", "2s"]),
        LIMIT,
    );
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("nothing answered within 2s"),
        "{}",
        stderr(&out)
    );
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_millis(2800),
        "--wait 2s took {took:?}"
    );

    // Without --wait, one round: about a second, then a clear failure.
    let started = Instant::now();
    let out = output_within(&mut seg.discover(1, "_http._tcp.local", &[]), LIMIT);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no responder answered for _http._tcp.local.")
            && stderr(&out).contains(" on eth0 (asked by multicast DNS)"),
        "{}",
        stderr(&out)
    );
    assert!(
        took < Duration::from_millis(1800),
        "one round took {took:?}"
    );
}

#[test]
fn an_unregistered_instance_is_gone_from_the_next_discover() {
    let seg = Segment::new(2);
    let mut zc = Zeroconf::start(&seg, 0, &["stays:8080:0:0", "leaves:8081:0:0"]);
    let mut lines = seg.lines(1, "_http._tcp.local", &[]);
    lines.sort();
    assert_eq!(
        lines,
        ["pyhost.local:8080\tstays", "pyhost.local:8081\tleaves"]
    );

    zc.unregister("leaves");
    assert_eq!(
        seg.lines(1, "_http._tcp.local", &[]),
        ["pyhost.local:8080\tstays"]
    );
    // And asked by name, it is not there.
    let out = output_within(
        &mut seg.discover(1, "_http._tcp.local", &["--instance", "leaves"]),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn ipv6_is_asked_too_and_an_ipv6_only_host_finds_the_service() {
    let seg = Segment::new(3);
    let v6 = seg.ipv6(0, false);
    seg.ipv6(1, false);
    seg.ipv6(2, true);
    let _zc = Zeroconf::start_at(&seg, 0, &format!("10.53.53.1,{v6}"), &["web:8080:0:0"]);
    // Both families' addresses, IPv4 first.
    assert_eq!(
        seg.lines(1, "_http._tcp.local", &["--resolve"]),
        ["10.53.53.1:8080\tweb", "[fd53::1]:8080\tweb"]
    );
    assert_eq!(seg.lines(1, "pyhost.local", &[]), ["10.53.53.1", "fd53::1"]);
    // Host 2 has no IPv4 address: it asks on ff02::fb alone.
    assert_eq!(
        seg.lines(2, "_http._tcp.local", &["--resolve"]),
        ["10.53.53.1:8080\tweb", "[fd53::1]:8080\tweb"]
    );
}

#[test]
fn mdns_names_refuse_a_server_and_instance_needs_a_service_type() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dnsreg"));
        isolate(&mut c, dir.path());
        c.arg("discover").args(args);
        run_expect(&mut c, 2)
    };
    let out = run(&["_http._tcp.local", "--server", "127.0.0.1"]);
    assert!(
        stderr(&out).contains("--server asks one DNS server, but a name under .local"),
        "{}",
        stderr(&out)
    );
    let out = run(&["frontend.local", "--instance", "web1"]);
    assert!(
        stderr(&out).contains("--instance picks a DNS-SD instance"),
        "{}",
        stderr(&out)
    );
    let out = run(&["_http._tcp.example.com", "--interface", "eth0"]);
    assert!(
        stderr(&out).contains("--interface is for multicast DNS"),
        "{}",
        stderr(&out)
    );
}
