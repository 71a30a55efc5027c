//! A real PowerDNS Authoritative Server (`pdns_server`, in the foreground)
//! on a loopback port, with the gsqlite3 backend, dynamic updates and TSIG
//! keys: the third RFC 2136 server the tests speak to (see
//! [`crate::servers`] for what the three share).
//!
//! Everything is in a scratch directory: `pdns.conf` (`--config-dir`), the
//! SQLite database made from the schema Debian ships, the control socket
//! (`socket-dir`) and the log. The zones are loaded and the keys and rights
//! set with `pdnsutil` before the server starts: the keys are imported from
//! the secrets `tsig-keygen` made (`pdnsutil import-tsig-key`), dnsreg's key
//! may update (`TSIG-ALLOW-DNSUPDATE`) and, with `allow_transfer`, transfer
//! (`TSIG-ALLOW-AXFR`); the harness's key may always do both, for
//! [`Pdns::records`]. No transfer is allowed by address (`allow-axfr-ips` is
//! empty; PowerDNS's default lets 127.0.0.0/8 transfer without a key). The
//! SOA serial goes up by one with every update, as BIND and Knot do it
//! (`SOA-EDIT-DNSUPDATE INCREASE`; PowerDNS 4.7's default jumps to a date,
//! YYYYMMDDnn). Needs the Debian packages `pdns-server` and
//! `pdns-backend-sqlite3`, `sqlite3` (scripts/setup-test-env installs them)
//! and the BIND tools (`dig`, `nsupdate`, `tsig-keygen`).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::bind::free_port;
use crate::servers::{
    ADMIN_KEY, Client, ServerOptions, scratch_dir, server_tool, tsig_keygen, wait_for_log,
    write_key,
};

/// Where Debian puts the gsqlite3 schema (pdns-backend-sqlite3).
const SCHEMAS: [&str; 2] = [
    "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql",
    "/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql",
];

/// A running `pdns_server`; stopped (and its directory removed) on drop.
#[derive(Debug)]
pub struct Pdns {
    child: Child,
    dir: PathBuf,
    client: Client,
    options: ServerOptions,
}

impl Pdns {
    /// PowerDNS serving `example.com` with an hmac-sha256 key that may update and transfer.
    pub fn start() -> Pdns {
        Pdns::start_with(ServerOptions::default())
    }

    pub fn start_with(options: ServerOptions) -> Pdns {
        let pdns_server = server_tool("pdns_server", "pdns-server pdns-backend-sqlite3");
        let dir = scratch_dir("pdns");
        let key = tsig_keygen(&options.algorithm, &options.key_name);
        let admin = tsig_keygen("hmac-sha256", ADMIN_KEY);
        write_key(&dir.join("key.conf"), &key);
        write_key(&dir.join("admin.key.conf"), &admin);
        make_database(&dir);
        // The port is not in the database: the zones, keys and rights are set
        // once; only pdns.conf changes from one try to the next.
        write_config(&dir, 0);
        let pdnsutil = |args: &[&str]| pdnsutil(&dir, args);
        pdnsutil(&[
            "import-tsig-key",
            &options.key_name,
            &options.algorithm,
            &key.secret,
        ]);
        pdnsutil(&["import-tsig-key", ADMIN_KEY, "hmac-sha256", &admin.secret]);
        for zone in &options.zones {
            let z = zone.trim_end_matches('.');
            let file = dir.join(format!("{z}.zone"));
            std::fs::write(
                &file,
                format!(
                    "$TTL 300\n@ IN SOA ns.{z}. hostmaster.{z}. 1 3600 600 86400 60\n@ IN NS ns.{z}.\nns IN A 127.0.0.1\n"
                ),
            )
            .unwrap();
            pdnsutil(&["load-zone", z, file.to_str().unwrap()]);
            pdnsutil(&["set-meta", z, "SOA-EDIT-DNSUPDATE", "INCREASE"]);
            for (kind, keys) in rights(&options.key_name, options.allow_transfer) {
                let mut args = vec!["set-meta", z, kind];
                args.extend(keys.iter().map(String::as_str));
                pdnsutil(&args);
            }
        }
        let log = dir.join("pdns.log");

        // The port can be taken between our probe and pdns_server's bind (it
        // then exits: "Unable to bind"): try a few.
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            write_config(&dir, port);
            let mut child = Command::new(&pdns_server)
                .arg(format!("--config-dir={}", dir.display()))
                .args(["--daemon=no", "--guardian=no"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("pdns_server starts");
            let bound = [
                format!("UDP server bound to 127.0.0.1:{port}"),
                format!("TCP server bound to 127.0.0.1:{port}"),
            ];
            let ready: Vec<&str> = bound.iter().map(String::as_str).collect();
            if wait_for_log(
                &log,
                &ready,
                &["Fatal error", "Unable to bind", "Exiting because"],
                &mut child,
                Duration::from_secs(10),
            ) {
                let client = Client {
                    port,
                    key: dir.join("key.conf"),
                    admin_key: dir.join("admin.key.conf"),
                };
                let pdns = Pdns {
                    child,
                    dir,
                    client,
                    options,
                };
                if let Err(e) = pdns
                    .client
                    .wait_writable(&pdns.options.zones, Duration::from_secs(10))
                {
                    panic!(
                        "pdns_server never took an update: {e}\npdns_server log:\n{}",
                        pdns.log()
                    );
                }
                return pdns;
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(&log).unwrap_or_default();
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("pdns_server did not start; its log:\n{last_log}");
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

    /// The scratch directory (configuration, database, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What pdns_server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pdns.log")).unwrap_or_default()
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
            panic!("{e}\npdns_server log:\n{}", self.log());
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

impl Drop for Pdns {
    fn drop(&mut self) {
        self.shutdown();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The zone metadata that grants the keys their rights: dnsreg's key may
/// update, and transfer only when allowed; the harness's key may do both.
/// (`pdnsutil set-meta ZONE KIND KEY…` for each.)
pub fn rights(key_name: &str, allow_transfer: bool) -> [(&'static str, Vec<String>); 2] {
    let both = vec![key_name.to_string(), ADMIN_KEY.to_string()];
    let axfr = if allow_transfer {
        both.clone()
    } else {
        vec![ADMIN_KEY.to_string()]
    };
    [("TSIG-ALLOW-DNSUPDATE", both), ("TSIG-ALLOW-AXFR", axfr)]
}

fn make_database(dir: &Path) {
    let schema = SCHEMAS
        .iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| {
            panic!(
                "the gsqlite3 schema is not installed (looked at {SCHEMAS:?}): run scripts/setup-test-env (apt-get install pdns-backend-sqlite3)"
            )
        });
    let out = Command::new(server_tool("sqlite3", "sqlite3"))
        .arg(dir.join("pdns.sqlite3"))
        .arg(format!(".read {schema}"))
        .output()
        .expect("sqlite3 runs");
    assert!(
        out.status.success(),
        "sqlite3 {schema}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pdnsutil(dir: &Path, args: &[&str]) {
    let out = Command::new(server_tool("pdnsutil", "pdns-server"))
        .arg(format!("--config-dir={}", dir.display()))
        .args(args)
        .output()
        .expect("pdnsutil runs");
    assert!(
        out.status.success(),
        "pdnsutil {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write_config(dir: &Path, port: u16) {
    let d = dir.display();
    std::fs::write(
        dir.join("pdns.conf"),
        format!(
            "launch=gsqlite3
gsqlite3-database={d}/pdns.sqlite3
local-address=127.0.0.1
local-port={port}
socket-dir={d}
dnsupdate=yes
allow-dnsupdate-from=127.0.0.0/8
allow-axfr-ips=
security-poll-suffix=
webserver=no
api=no
disable-syslog=yes
loglevel=6
distributor-threads=1
receiver-threads=1
"
        ),
    )
    .unwrap();
}
