//! A real Knot DNS (`knotd`, in the foreground) on a loopback port, with
//! dynamic zones and TSIG keys: the second RFC 2136 server the tests speak to
//! (see [`crate::servers`] for what the three share).
//!
//! Everything is in a scratch directory: the configuration, the zone files,
//! the journal and timer databases, the control socket and the log. Knot takes
//! no BIND key file: the secret `tsig-keygen` made is written into Knot's own
//! `key:` section. Two keys: dnsreg's, granted `update` (only the types dnsreg
//! writes) and, with `allow_transfer`, `transfer`; and the harness's, which may
//! always update and transfer, for the harness's own reads. Needs the Debian package
//! `knot` (scripts/setup-test-env installs it) and the BIND tools (`dig`,
//! `nsupdate`, `tsig-keygen`).

use std::path::Path;
use std::process::{Command, Stdio};

use crate::servers::{
    ADMIN_KEY, Kind, Launch, Launched, ServerOptions, scratch_dir, server_tool, tsig_keygen,
    write_key,
};

/// Knot serving `options.zones`; it answers and takes a signed update when
/// this returns.
pub fn start(options: ServerOptions) -> Launched {
    let knotd = server_tool("knotd", "knot");
    let dir = scratch_dir("knot");
    let key = tsig_keygen(&options.algorithm, &options.key_name);
    let admin = tsig_keygen("hmac-sha256", ADMIN_KEY);
    write_key(&dir.join("key.conf"), &key);
    write_key(&dir.join("admin.key.conf"), &admin);
    std::fs::create_dir_all(dir.join("db")).unwrap();
    let log = dir.join("knotd.log");
    let mut ready: Vec<String> = options
        .zones
        .iter()
        .map(|z| format!("[{}.] loaded", z.trim_end_matches('.')))
        .collect();
    ready.push("server started".into());
    let launch = Launch {
        kind: Kind::Knot,
        program: "knotd",
        dir: dir.clone(),
        log: log.clone(),
        options: options.clone(),
        fatal: &["critical:", "failed to configure server"],
    };
    Launched::start(
        launch,
        |port| {
            write_config(&dir, port, &options, &key.secret, &admin.secret);
            Command::new(&knotd)
                .arg("-c")
                .arg(dir.join("knot.conf"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("knotd starts")
        },
        |_| ready.clone(),
    )
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
