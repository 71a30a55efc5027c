//! A real BIND (`named -g`) on a loopback port, with dynamic zones and a TSIG key.
//!
//! RFC 2136 is not stood in for: the tests speak to the real server operators
//! run. This module starts Debian's `named` in the foreground in a scratch
//! directory, with a key made by `tsig-keygen` and zones that accept updates signed
//! with it, and reads the zone back with `dig` and writes it by hand with
//! `nsupdate`: tools independent of dnsreg's own DNS code. It needs the Debian
//! packages `bind9` and `bind9-dnsutils` (scripts/setup-test-env installs them).

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// What to start.
#[derive(Clone, Debug)]
pub struct BindOptions {
    /// Zones served as primary, each accepting updates signed with the key.
    pub zones: Vec<String>,
    /// The key's algorithm: hmac-sha256, hmac-sha384 or hmac-sha512.
    pub algorithm: String,
    /// The key's name.
    pub key_name: String,
    /// Whether the key may transfer the zones (AXFR), as dnsreg's registry listing needs.
    pub allow_transfer: bool,
    /// Grant the key only what dnsreg needs (`update-policy { grant KEY zonesub
    /// A AAAA SRV TXT PTR; }`, the README's advice) instead of `allow-update`.
    pub least_privilege: bool,
    /// `max-records-per-type`: records one rrset may hold (BIND's default is
    /// 100 since 9.18.28, ISC's answer to CVE-2024-1737; 0 is no limit).
    /// `None` keeps BIND's default.
    pub max_records_per_type: Option<u32>,
}

impl Default for BindOptions {
    fn default() -> Self {
        BindOptions {
            zones: vec!["example.com".to_string()],
            algorithm: "hmac-sha256".to_string(),
            key_name: "dnsreg-key".to_string(),
            allow_transfer: true,
            least_privilege: false,
            max_records_per_type: None,
        }
    }
}

/// A running `named`; stopped (and its directory removed) on drop.
#[derive(Debug)]
pub struct Bind {
    child: Child,
    dir: PathBuf,
    port: u16,
    options: BindOptions,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Where the BIND tools are, or a panic that says how to get them.
pub(crate) fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "{name} is not installed: run scripts/setup-test-env (apt-get install bind9 bind9-dnsutils)"
    )
}

/// A port free for both UDP and TCP on 127.0.0.1 right now.
pub(crate) fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a UDP port");
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
}

impl Bind {
    /// BIND serving `example.com` with an hmac-sha256 key.
    pub fn start() -> Bind {
        Bind::start_with(BindOptions::default())
    }

    pub fn start_with(options: BindOptions) -> Bind {
        let dir = std::env::temp_dir().join(format!(
            "dnsreg-bind-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = Command::new(tool("tsig-keygen"))
            .args(["-a", &options.algorithm, &options.key_name])
            .output()
            .expect("tsig-keygen runs");
        assert!(
            key.status.success(),
            "tsig-keygen: {}",
            String::from_utf8_lossy(&key.stderr)
        );
        std::fs::write(dir.join("key.conf"), &key.stdout).unwrap();
        // As a user would keep it: readable by its owner only.
        std::fs::set_permissions(
            dir.join("key.conf"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();

        // The port can be taken between our probe and named's bind: try a few.
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            write_config(&dir, port, &options);
            let mut child = Command::new(tool("named"))
                .arg("-g")
                .arg("-c")
                .arg(dir.join("named.conf"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("named.log")).unwrap())
                .spawn()
                .expect("named starts");
            if wait_ready(&dir, Duration::from_secs(10)) {
                let bind = Bind {
                    child,
                    dir,
                    port,
                    options,
                };
                bind.wait_writable();
                return bind;
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(dir.join("named.log")).unwrap_or_default();
        }
        panic!("named did not start; its log:\n{last_log}");
    }

    /// The server's address (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The key file, exactly as `tsig-keygen` wrote it.
    pub fn key_file(&self) -> PathBuf {
        self.dir.join("key.conf")
    }

    /// The first zone.
    pub fn zone(&self) -> &str {
        &self.options.zones[0]
    }

    /// The scratch directory (zone files, journal, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What named logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("named.log")).unwrap_or_default()
    }

    fn dig(&self, args: &[&str]) -> String {
        let out = Command::new(tool("dig"))
            .args(["@127.0.0.1", "-p", &self.port.to_string()])
            // Over TCP: dig's UDP socket takes any datagram sent to its port,
            // and tests running in parallel aim dnsreg at ports nothing listens
            // on (rfc2136::an_unreachable_server_…); a retry landing on dig's
            // port reads as "query response not set" and an empty answer.
            .args(["+tcp", "+tries=3", "+time=2"])
            .args(args)
            .output()
            .expect("dig runs");
        assert!(
            out.status.success(),
            "dig {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The values at an absolute `name` and `rtype` as `dig +short` prints them, sorted.
    pub fn values(&self, name: &str, rtype: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .dig(&["+short", name, rtype])
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect();
        v.sort();
        v
    }

    /// The TTL of the rrset at `name` and `rtype`, if it exists.
    pub fn ttl(&self, name: &str, rtype: &str) -> Option<u32> {
        self.dig(&["+noall", "+answer", name, rtype])
            .lines()
            .find_map(|l| l.split_whitespace().nth(1)?.parse().ok())
    }

    /// Every record of the first zone but its SOA, NS and the name server's
    /// address, as `name ttl type data` lines from an AXFR (signed with the
    /// key), sorted.
    pub fn records(&self) -> Vec<String> {
        self.records_of(self.zone())
    }

    pub fn records_of(&self, zone: &str) -> Vec<String> {
        let apex = format!("{}.", zone.trim_end_matches('.'));
        let ns = format!("ns.{apex}");
        let out = self.dig(&[
            "-k",
            self.key_file().to_str().unwrap(),
            "+noall",
            "+answer",
            "+onesoa",
            &apex,
            "AXFR",
        ]);
        let mut v: Vec<String> = out
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                if f.len() < 5 {
                    return None;
                }
                let (name, ttl, rtype) = (f[0], f[1], f[3]);
                if (name == apex && (rtype == "SOA" || rtype == "NS")) || name == ns {
                    return None;
                }
                Some(format!("{name} {ttl} {rtype} {}", f[4..].join(" ")))
            })
            .collect();
        v.sort();
        v
    }

    /// named answers SERVFAIL to updates for a moment after it logs "running"
    /// (seen with 9.18): wait until each zone takes a no-op update.
    fn wait_writable(&self) {
        let start = Instant::now();
        for zone in &self.options.zones {
            let noop = format!("update delete dnsreg-harness-probe.{zone}. TXT");
            while let Err(e) = self.try_nsupdate(zone, &noop) {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "named never took an update for {zone}: {e}\nnamed log:\n{}",
                    self.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Runs `nsupdate` signed with the key against the first zone: `commands`
    /// are `update add …` / `update delete …` lines; `send` is appended.
    /// Panics if the server refuses.
    pub fn nsupdate(&self, commands: &str) {
        if let Err(e) = self.try_nsupdate(self.zone(), commands) {
            panic!("{e}\nnamed log:\n{}", self.log());
        }
    }

    /// The same against `zone`; the error says what nsupdate printed.
    pub fn try_nsupdate(&self, zone: &str, commands: &str) -> Result<(), String> {
        crate::servers::nsupdate(self.port, &self.key_file(), zone, commands)
    }

    /// Stops the server (as on drop); the port is free about a second later.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        self.shutdown();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// named logs "running" once it answers; "exiting" if it gave up (a taken port).
fn wait_ready(dir: &Path, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        let log = std::fs::read_to_string(dir.join("named.log")).unwrap_or_default();
        if log.contains("running") {
            return true;
        }
        if log.contains("exiting") {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn write_config(dir: &Path, port: u16, o: &BindOptions) {
    let d = dir.display();
    let records = o
        .max_records_per_type
        .map(|n| format!("max-records-per-type {n};"))
        .unwrap_or_default();
    let transfer = if o.allow_transfer {
        format!("allow-transfer {{ key \"{}\"; }};", o.key_name)
    } else {
        "allow-transfer { none; };".to_string()
    };
    let mut conf = format!(
        r#"include "{d}/key.conf";
options {{
    directory "{d}";
    pid-file none;
    session-keyfile none;
    managed-keys-directory "{d}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    notify no;
    dnssec-validation no;
    {transfer}
    {records}
}};
controls {{ }};
"#
    );
    for zone in &o.zones {
        let z = zone.trim_end_matches('.');
        let file = dir.join(format!("{z}.zone"));
        let _ = std::fs::remove_file(dir.join(format!("{z}.zone.jnl")));
        std::fs::write(
            &file,
            format!(
                "$TTL 300\n@ IN SOA ns.{z}. hostmaster.{z}. 1 3600 600 86400 60\n@ IN NS ns.{z}.\nns IN A 127.0.0.1\n"
            ),
        )
        .unwrap();
        let update = if o.least_privilege {
            format!(
                "update-policy {{ grant \"{}\" zonesub A AAAA SRV TXT PTR; }};",
                o.key_name
            )
        } else {
            format!("allow-update {{ key \"{}\"; }};", o.key_name)
        };
        conf.push_str(&format!(
            "zone \"{z}\" {{ type primary; file \"{}\"; {update} }};\n",
            file.display()
        ));
    }
    std::fs::write(dir.join("named.conf"), conf).unwrap();
}
