//! A real Knot DNS (`knotd`, in the foreground) on a loopback port, with
//! dynamic zones and TSIG keys: the second RFC 2136 server the tests speak to
//! (see [`crate::servers`] for what the three share).
//!
//! Everything is in a scratch directory: the configuration, the zone files,
//! the journal and timer databases, the control socket and the log. Knot takes
//! no BIND key file: the secret `tsig-keygen` made is written into Knot's own
//! `key:` section. Two keys: dnsreg's, granted `update` (only the types dnsreg
//! writes) and, with `allow_transfer`, `transfer`; and the harness's, which may
//! always update and transfer, for [`Knot::records`]. Needs the Debian package
//! `knot` (scripts/setup-test-env installs it) and the BIND tools (`dig`,
//! `nsupdate`, `tsig-keygen`).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::bind::free_port;
use crate::servers::{
    ADMIN_KEY, Client, ServerOptions, scratch_dir, server_tool, tsig_keygen, wait_for_log,
    write_key,
};

/// A running `knotd`; stopped (and its directory removed) on drop.
#[derive(Debug)]
pub struct Knot {
    child: Child,
    dir: PathBuf,
    client: Client,
    options: ServerOptions,
}

impl Knot {
    /// Knot serving `example.com` with an hmac-sha256 key that may update and transfer.
    pub fn start() -> Knot {
        Knot::start_with(ServerOptions::default())
    }

    pub fn start_with(options: ServerOptions) -> Knot {
        let knotd = server_tool("knotd", "knot");
        let dir = scratch_dir("knot");
        let key = tsig_keygen(&options.algorithm, &options.key_name);
        let admin = tsig_keygen("hmac-sha256", ADMIN_KEY);
        write_key(&dir.join("key.conf"), &key);
        write_key(&dir.join("admin.key.conf"), &admin);
        std::fs::create_dir_all(dir.join("db")).unwrap();
        let log = dir.join("knotd.log");

        // The port can be taken between our probe and knotd's bind (knotd
        // then exits: "cannot bind address"): try a few.
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            write_config(&dir, port, &options, &key.secret, &admin.secret);
            let mut child = Command::new(&knotd)
                .arg("-c")
                .arg(dir.join("knot.conf"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("knotd starts");
            let loaded: Vec<String> = options
                .zones
                .iter()
                .map(|z| format!("[{}.] loaded", z.trim_end_matches('.')))
                .collect();
            let mut ready: Vec<&str> = loaded.iter().map(String::as_str).collect();
            ready.push("server started");
            if wait_for_log(
                &log,
                &ready,
                &["critical:", "failed to configure server"],
                &mut child,
                Duration::from_secs(10),
            ) {
                let client = Client {
                    port,
                    key: dir.join("key.conf"),
                    admin_key: dir.join("admin.key.conf"),
                };
                let knot = Knot {
                    child,
                    dir,
                    client,
                    options,
                };
                if let Err(e) = knot
                    .client
                    .wait_writable(&knot.options.zones, Duration::from_secs(10))
                {
                    panic!(
                        "knotd never took an update: {e}\nknotd log:\n{}",
                        knot.log()
                    );
                }
                return knot;
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(&log).unwrap_or_default();
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("knotd did not start; its log:\n{last_log}");
    }

    /// The server's address (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.client.port))
    }

    /// dnsreg's key file, exactly as `tsig-keygen` wrote it.
    pub fn key_file(&self) -> PathBuf {
        self.dir.join("key.conf")
    }

    /// The harness's key file: it may always update and transfer.
    pub fn admin_key_file(&self) -> PathBuf {
        self.dir.join("admin.key.conf")
    }

    /// The first zone.
    pub fn zone(&self) -> &str {
        &self.options.zones[0]
    }

    /// The scratch directory (configuration, zone files, databases, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What knotd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("knotd.log")).unwrap_or_default()
    }

    /// The values at an absolute `name` and `rtype` as `dig +short` prints them, sorted.
    pub fn values(&self, name: &str, rtype: &str) -> Vec<String> {
        self.client.values(name, rtype)
    }

    /// The TTL of the rrset at `name` and `rtype`, if it exists.
    pub fn ttl(&self, name: &str, rtype: &str) -> Option<u32> {
        self.client.ttl(name, rtype)
    }

    /// Every record of the first zone but its SOA, NS and the name server's
    /// address, as `name ttl type data` lines from an AXFR signed with the
    /// harness's key (whatever dnsreg's key may do), sorted.
    pub fn records(&self) -> Vec<String> {
        self.client.records(self.zone())
    }

    pub fn records_of(&self, zone: &str) -> Vec<String> {
        self.client.records(zone)
    }

    /// Runs `nsupdate` signed with dnsreg's key against the first zone;
    /// `send` is appended. Panics if the server refuses.
    pub fn nsupdate(&self, commands: &str) {
        if let Err(e) = self.try_nsupdate(self.zone(), commands) {
            panic!("{e}\nknotd log:\n{}", self.log());
        }
    }

    /// The same against `zone`; the error says what nsupdate printed.
    pub fn try_nsupdate(&self, zone: &str, commands: &str) -> Result<(), String> {
        self.client.try_nsupdate(zone, commands)
    }

    /// Stops the server (as on drop).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        self.shutdown();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The ACL entries that grant dnsreg's key its rights: `update` of the types
/// dnsreg writes (Knot's counterpart of BIND's `update-policy { grant KEY
/// zonesub A AAAA SRV TXT PTR; }`), and `transfer` only when allowed.
pub fn dnsreg_acl(key_name: &str, allow_transfer: bool) -> String {
    let action = if allow_transfer {
        "[update, transfer]"
    } else {
        "update"
    };
    format!(
        "  - id: dnsreg\n    key: {key_name}\n    action: {action}\n    update-type: [A, AAAA, SRV, TXT, PTR]\n"
    )
}

fn write_config(dir: &Path, port: u16, o: &ServerOptions, secret: &str, admin_secret: &str) {
    let d = dir.display();
    let algorithm = &o.algorithm;
    let key_name = &o.key_name;
    let dnsreg_acl = dnsreg_acl(key_name, o.allow_transfer);
    let mut conf = format!(
        r#"server:
    rundir: "{d}"
    listen: 127.0.0.1@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1

log:
  - target: stderr
    any: info

database:
    storage: "{d}/db"

key:
  - id: {key_name}
    algorithm: {algorithm}
    secret: {secret}
  - id: {ADMIN_KEY}
    algorithm: hmac-sha256
    secret: {admin_secret}

acl:
{dnsreg_acl}  - id: harness
    key: {ADMIN_KEY}
    action: [update, transfer]

template:
  - id: default
    storage: "{d}"
    file: "%s.zone"

zone:
"#
    );
    for zone in &o.zones {
        let z = zone.trim_end_matches('.');
        std::fs::write(
            dir.join(format!("{z}.zone")),
            format!(
                "$TTL 300\n@ IN SOA ns.{z}. hostmaster.{z}. 1 3600 600 86400 60\n@ IN NS ns.{z}.\nns IN A 127.0.0.1\n"
            ),
        )
        .unwrap();
        conf.push_str(&format!("  - domain: {z}\n    acl: [dnsreg, harness]\n"));
    }
    std::fs::write(dir.join("knot.conf"), conf).unwrap();
}
