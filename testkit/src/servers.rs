//! The three RFC 2136 servers operators run — BIND, Knot DNS and PowerDNS —
//! behind one face, so that a test can be run against each of them alike.
//!
//! [`Kind::start`] starts one with [`ServerOptions`] and hands back a
//! [`DnsServer`]: the server's address, the key file dnsreg is given (as
//! `tsig-keygen` wrote it), and the harness's own reading and writing of the
//! zone with `dig` and `nsupdate`, tools independent of dnsreg's DNS code.
//!
//! Rights: dnsreg's key may always update the zones (and query them); it may
//! transfer them (AXFR) only with [`ServerOptions::allow_transfer`]. The
//! harness reads a whole zone ([`DnsServer::records`]) whatever dnsreg's key
//! may do: Knot and PowerDNS have a second key, the harness's own
//! ([`ADMIN_KEY`]), that may always transfer; BIND's configuration is
//! [`crate::bind`]'s and has only dnsreg's key, so the harness reads BIND's
//! zone from its files (the zone file and the journal named writes before it
//! answers an update) with `named-compilezone`.
//!
//! How each server grants the rights (the settings the README quotes):
//!
//! | right | BIND | Knot | PowerDNS |
//! |---|---|---|---|
//! | update | `update-policy { grant KEY zonesub A AAAA SRV TXT PTR; };` | `acl: [{ id: dnsreg, key: KEY, action: update, update-type: [A, AAAA, SRV, TXT, PTR] }]` | `pdnsutil set-meta ZONE TSIG-ALLOW-DNSUPDATE KEY` (and `dnsupdate=yes`, `allow-dnsupdate-from`) |
//! | update and transfer | the same and `allow-transfer { key KEY; };` | `action: [update, transfer]` | the same and `pdnsutil set-meta ZONE TSIG-ALLOW-AXFR KEY` |

use std::fmt::Debug;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::bind::{Bind, BindOptions, free_port, tool};

/// The name of the harness's own key on Knot and PowerDNS: it may update and
/// transfer every zone, whatever dnsreg's key may do.
pub const ADMIN_KEY: &str = "dnsreg-harness-admin";

/// What to start; the same for every server.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Zones served as primary, each accepting updates signed with the key.
    pub zones: Vec<String>,
    /// The key's algorithm: hmac-sha256, hmac-sha384 or hmac-sha512.
    pub algorithm: String,
    /// The name of dnsreg's key.
    pub key_name: String,
    /// Whether dnsreg's key may also transfer the zones (AXFR); without it the
    /// key may only update them (and query them, as anyone may).
    pub allow_transfer: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            zones: vec!["example.com".to_string()],
            algorithm: "hmac-sha256".to_string(),
            key_name: "dnsreg-key".to_string(),
            allow_transfer: true,
        }
    }
}

/// Which server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bind,
    Knot,
    Pdns,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Bind, Kind::Knot, Kind::Pdns];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Bind => "BIND",
            Kind::Knot => "Knot",
            Kind::Pdns => "PowerDNS",
        }
    }

    /// Starts the server; it answers and takes a signed update when this returns.
    pub fn start(self, options: ServerOptions) -> Box<dyn DnsServer> {
        match self {
            Kind::Bind => Box::new(Bind::start_with(BindOptions {
                zones: options.zones,
                algorithm: options.algorithm,
                key_name: options.key_name,
                allow_transfer: options.allow_transfer,
                // What the README advises: the types dnsreg writes, nothing else.
                least_privilege: true,
                max_records_per_type: None,
            })),
            Kind::Knot => Box::new(crate::knot::start(options)),
            Kind::Pdns => Box::new(crate::pdns::start(options)),
        }
    }
}

/// A running DNS server with dynamic zones; stopped (and its directory
/// removed) on drop.
pub trait DnsServer: Debug + Send + Sync {
    fn kind(&self) -> Kind;

    /// The server's address (UDP and TCP).
    fn addr(&self) -> SocketAddr;

    /// dnsreg's key file, exactly as `tsig-keygen` wrote it.
    fn key_file(&self) -> PathBuf;

    /// The first zone.
    fn zone(&self) -> &str;

    /// The scratch directory (configuration, zone data, log).
    fn dir(&self) -> &Path;

    /// What the server logged so far.
    fn log(&self) -> String;

    /// The values at an absolute `name` and `rtype` as `dig +short` prints them, sorted.
    fn values(&self, name: &str, rtype: &str) -> Vec<String>;

    /// The TTL of the rrset at `name` and `rtype`, if it exists.
    fn ttl(&self, name: &str, rtype: &str) -> Option<u32>;

    /// Every record of the first zone but its SOA, NS and the name server's
    /// address, as `name ttl type data` lines, sorted; read whatever dnsreg's
    /// key may do. Panics if the zone cannot be read.
    fn records(&self) -> Vec<String>;

    /// Runs `nsupdate` signed with dnsreg's key against the first zone:
    /// `commands` are `update …` / `prereq …` lines; `send` is appended.
    /// Panics (with the server's log) if the server refuses.
    fn nsupdate(&self, commands: &str) {
        if let Err(e) = self.try_nsupdate(self.zone(), commands) {
            panic!("{e}\n{} log:\n{}", self.kind().name(), self.log());
        }
    }

    /// The same against `zone`; the error says what nsupdate printed.
    fn try_nsupdate(&self, zone: &str, commands: &str) -> Result<(), String>;

    /// Stops the server (as on drop).
    fn stop(self: Box<Self>);
}

impl DnsServer for Bind {
    fn kind(&self) -> Kind {
        Kind::Bind
    }
    fn addr(&self) -> SocketAddr {
        Bind::addr(self)
    }
    fn key_file(&self) -> PathBuf {
        Bind::key_file(self)
    }
    fn zone(&self) -> &str {
        Bind::zone(self)
    }
    fn dir(&self) -> &Path {
        Bind::dir(self)
    }
    fn log(&self) -> String {
        Bind::log(self)
    }
    fn values(&self, name: &str, rtype: &str) -> Vec<String> {
        Bind::values(self, name, rtype)
    }
    fn ttl(&self, name: &str, rtype: &str) -> Option<u32> {
        Bind::ttl(self, name, rtype)
    }
    /// From the zone file and named's journal, with `named-compilezone`: a
    /// transfer with dnsreg's key (what [`Bind::records`] does) needs
    /// `allow_transfer`, and the harness has no key of its own in BIND.
    fn records(&self) -> Vec<String> {
        let zone = Bind::zone(self).trim_end_matches('.');
        let file = Bind::dir(self).join(format!("{zone}.zone"));
        let out = Command::new(tool("named-compilezone"))
            .args(["-j", "-q", "-s", "full", "-o", "-", zone])
            .arg(&file)
            .output()
            .expect("named-compilezone runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "named-compilezone {}: {text}{}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        zone_lines(&text, zone)
    }
    fn nsupdate(&self, commands: &str) {
        Bind::nsupdate(self, commands)
    }
    fn try_nsupdate(&self, zone: &str, commands: &str) -> Result<(), String> {
        Bind::try_nsupdate(self, zone, commands)
    }
    fn stop(self: Box<Self>) {
        Bind::stop(*self)
    }
}

/// A Knot or PowerDNS started by this harness in a scratch directory (see
/// [`Launched::start`]); stopped, and its directory removed, on drop.
#[derive(Debug)]
pub struct Launched {
    kind: Kind,
    child: Child,
    dir: PathBuf,
    log: PathBuf,
    client: Client,
    options: ServerOptions,
}

/// What differs between starting Knot and PowerDNS.
pub(crate) struct Launch<'a> {
    pub(crate) kind: Kind,
    /// The program, as messages name it.
    pub(crate) program: &'a str,
    /// The scratch directory, with `key.conf` and `admin.key.conf` in it.
    pub(crate) dir: PathBuf,
    /// The server's log file, where it says it is ready or has failed.
    pub(crate) log: PathBuf,
    pub(crate) options: ServerOptions,
    /// Log lines that mean the start failed.
    pub(crate) fatal: &'a [&'a str],
}

impl Launched {
    /// Starts the server with `spawn` on a free port, until its log shows
    /// every line `ready` names for that port and it takes a signed update.
    /// The port can be taken between the probe and the server's bind (it
    /// then exits): a few ports are tried.
    pub(crate) fn start(
        launch: Launch<'_>,
        mut spawn: impl FnMut(u16) -> Child,
        ready: impl Fn(u16) -> Vec<String>,
    ) -> Launched {
        let Launch {
            kind,
            program,
            dir,
            log,
            options,
            fatal,
        } = launch;
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut child = spawn(port);
            let lines = ready(port);
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            if wait_for_log(&log, &lines, fatal, &mut child, Duration::from_secs(10)) {
                let server = Launched {
                    kind,
                    child,
                    client: Client {
                        port,
                        key: dir.join("key.conf"),
                        admin_key: dir.join("admin.key.conf"),
                    },
                    dir,
                    log,
                    options,
                };
                if let Err(e) = server
                    .client
                    .wait_writable(&server.options.zones, Duration::from_secs(10))
                {
                    panic!(
                        "{program} never took an update: {e}\n{program} log:\n{}",
                        server.log()
                    );
                }
                return server;
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(&log).unwrap_or_default();
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("{program} did not start; its log:\n{last_log}");
    }

    fn shutdown(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        self.shutdown();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reads are signed with the harness's key ([`ADMIN_KEY`]), whatever
/// dnsreg's key may do; updates with dnsreg's.
impl DnsServer for Launched {
    fn kind(&self) -> Kind {
        self.kind
    }
    fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.client.port))
    }
    fn key_file(&self) -> PathBuf {
        self.client.key.clone()
    }
    fn zone(&self) -> &str {
        &self.options.zones[0]
    }
    fn dir(&self) -> &Path {
        &self.dir
    }
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    fn values(&self, name: &str, rtype: &str) -> Vec<String> {
        self.client.values(name, rtype)
    }
    fn ttl(&self, name: &str, rtype: &str) -> Option<u32> {
        self.client.ttl(name, rtype)
    }
    fn records(&self) -> Vec<String> {
        self.client.records(self.zone())
    }
    fn try_nsupdate(&self, zone: &str, commands: &str) -> Result<(), String> {
        self.client.try_nsupdate(zone, commands)
    }
    fn stop(mut self: Box<Self>) {
        self.shutdown();
    }
}

// ---------------------------------------------------------------------------
// What Knot and PowerDNS share: keys, dig and nsupdate against a port.
// ---------------------------------------------------------------------------

/// Where a server's program is, or a panic that names the Debian package.
pub(crate) fn server_tool(name: &str, package: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} is not installed: run scripts/setup-test-env (apt-get install {package})")
}

/// A key made by `tsig-keygen`: the file as it wrote it, and its secret.
pub(crate) struct Key {
    pub(crate) file: String,
    pub(crate) secret: String,
}

/// `tsig-keygen -a ALGORITHM NAME`, and the secret read back from its output
/// (Knot and PowerDNS take the secret in their own syntax).
pub(crate) fn tsig_keygen(algorithm: &str, name: &str) -> Key {
    let out = Command::new(tool("tsig-keygen"))
        .args(["-a", algorithm, name])
        .output()
        .expect("tsig-keygen runs");
    assert!(
        out.status.success(),
        "tsig-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = String::from_utf8(out.stdout).expect("tsig-keygen writes text");
    // key "NAME" {\n\talgorithm hmac-sha256;\n\tsecret "BASE64";\n};
    let secret = file
        .lines()
        .find_map(|l| l.trim().strip_prefix("secret "))
        .and_then(|s| s.split('"').nth(1))
        .unwrap_or_else(|| panic!("no secret in tsig-keygen's output:\n{file}"))
        .to_string();
    Key { file, secret }
}

/// Writes a key file readable by its owner only, as a user would keep it.
pub(crate) fn write_key(path: &Path, key: &Key) {
    std::fs::write(path, &key.file).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
}

/// The harness's reading and writing of a server on a loopback port.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) port: u16,
    /// dnsreg's key: nsupdate signs with it.
    pub(crate) key: PathBuf,
    /// The harness's key: transfers are signed with it.
    pub(crate) admin_key: PathBuf,
}

impl Client {
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
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "dig {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    pub(crate) fn values(&self, name: &str, rtype: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .dig(&["+short", name, rtype])
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect();
        v.sort();
        v
    }

    pub(crate) fn ttl(&self, name: &str, rtype: &str) -> Option<u32> {
        self.dig(&["+noall", "+answer", name, rtype])
            .lines()
            .find_map(|l| l.split_whitespace().nth(1)?.parse().ok())
    }

    /// The zone by AXFR signed with the harness's key; panics when refused
    /// (dig prints "; Transfer failed." and exits 0: an empty zone is not
    /// taken for an answer).
    pub(crate) fn records(&self, zone: &str) -> Vec<String> {
        let apex = format!("{}.", zone.trim_end_matches('.'));
        let out = self.dig(&[
            "-k",
            self.admin_key.to_str().unwrap(),
            "+noall",
            "+answer",
            "+onesoa",
            &apex,
            "AXFR",
        ]);
        assert!(
            !out.contains("Transfer failed") && !out.contains("communications error"),
            "the harness's AXFR of {apex} failed:\n{out}"
        );
        assert!(
            out.lines().any(|l| l.contains("\tSOA\t")),
            "the harness's AXFR of {apex} has no SOA:\n{out}"
        );
        zone_lines(&out, &apex)
    }

    pub(crate) fn try_nsupdate(&self, zone: &str, commands: &str) -> Result<(), String> {
        nsupdate(self.port, &self.key, zone, commands)
    }

    /// Waits until every zone takes a signed no-op update (the server answers
    /// and has loaded it): what a start returns after.
    pub(crate) fn wait_writable(&self, zones: &[String], within: Duration) -> Result<(), String> {
        let start = Instant::now();
        for zone in zones {
            let noop = format!(
                "update delete dnsreg-harness-probe.{}. TXT",
                zone.trim_end_matches('.')
            );
            while let Err(e) = self.try_nsupdate(zone, &noop) {
                if start.elapsed() > within {
                    return Err(format!("{zone} never took an update: {e}"));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }
}

/// `nsupdate -k KEY` with `commands` for `zone` at 127.0.0.1:`port`.
pub(crate) fn nsupdate(port: u16, key: &Path, zone: &str, commands: &str) -> Result<(), String> {
    let script = format!(
        "server 127.0.0.1 {port}\nzone {zone}\n{}\nsend\n",
        commands.trim()
    );
    let mut child = Command::new(tool("nsupdate"))
        .arg("-k")
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nsupdate runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    if status.success() {
        Ok(())
    } else {
        Err(format!("nsupdate failed: {err}\nscript:\n{script}"))
    }
}

/// `name ttl type data` lines of a zone as dig or named-compilezone print it
/// (`name ttl class type data…`), without the apex SOA and NS and the name
/// server's own name (`ns.ZONE`), sorted.
pub(crate) fn zone_lines(text: &str, zone: &str) -> Vec<String> {
    let apex = format!("{}.", zone.trim_end_matches('.'));
    let ns = format!("ns.{apex}");
    let mut v: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 5 || f[2] != "IN" || f[1].parse::<u32>().is_err() {
                return None;
            }
            let (name, ttl, rtype) = (f[0], f[1], f[3]);
            if (name.eq_ignore_ascii_case(&apex) && (rtype == "SOA" || rtype == "NS"))
                || name.eq_ignore_ascii_case(&ns)
            {
                return None;
            }
            Some(format!("{name} {ttl} {rtype} {}", f[4..].join(" ")))
        })
        .collect();
    v.sort();
    v
}

/// A scratch directory of its own for a server of `kind` (a prefix such as
/// "knot"), emptied.
pub(crate) fn scratch_dir(kind: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "dnsreg-{kind}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits until `log` contains every one of `ready` (true) or any of `failed`
/// (false), or `within` passes (false), or the child exits (false).
pub(crate) fn wait_for_log(
    log: &Path,
    ready: &[&str],
    failed: &[&str],
    child: &mut std::process::Child,
    within: Duration,
) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if ready.iter().all(|r| text.contains(r)) {
            return true;
        }
        if failed.iter().any(|f| text.contains(f)) {
            return false;
        }
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}
