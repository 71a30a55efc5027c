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
//! (`TSIG-ALLOW-AXFR`); the harness's key may always do both, for the
//! harness's own reads. No transfer is allowed by address (`allow-axfr-ips` is
//! empty; PowerDNS's default lets 127.0.0.0/8 transfer without a key). The
//! SOA serial goes up by one with every update, as BIND and Knot do it
//! (`SOA-EDIT-DNSUPDATE INCREASE`; PowerDNS 4.7's default jumps to a date,
//! YYYYMMDDnn). Needs the Debian packages `pdns-server` and
//! `pdns-backend-sqlite3`, `sqlite3` (scripts/setup-test-env installs them)
//! and the BIND tools (`dig`, `nsupdate`, `tsig-keygen`).

use std::path::Path;
use std::process::{Command, Stdio};

use crate::servers::{
    ADMIN_KEY, Kind, Launch, Launched, ServerOptions, scratch_dir, server_tool, tsig_keygen,
    write_key,
};

/// Where Debian puts the gsqlite3 schema (pdns-backend-sqlite3).
const SCHEMAS: [&str; 2] = [
    "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql",
    "/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql",
];

/// PowerDNS serving `options.zones`; it answers and takes a signed update
/// when this returns.
pub fn start(options: ServerOptions) -> Launched {
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
    let launch = Launch {
        kind: Kind::Pdns,
        program: "pdns_server",
        dir: dir.clone(),
        log: log.clone(),
        options: options.clone(),
        fatal: &["Fatal error", "Unable to bind", "Exiting because"],
    };
    Launched::start(
        launch,
        |port| {
            write_config(&dir, port);
            Command::new(&pdns_server)
                .arg(format!("--config-dir={}", dir.display()))
                .args(["--daemon=no", "--guardian=no"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("pdns_server starts")
        },
        |port| {
            vec![
                format!("UDP server bound to 127.0.0.1:{port}"),
                format!("TCP server bound to 127.0.0.1:{port}"),
            ]
        },
    )
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
