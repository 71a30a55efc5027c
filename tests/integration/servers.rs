//! RFC 2136 against each of the three servers operators run — BIND, Knot DNS
//! and PowerDNS — with a key that may only update (the least a machine should
//! hold) and with one that may also transfer the zone (AXFR).
//!
//! Joins and leaves need only the update right: two instances share a
//! round-robin name and have a host record each; one leaves, and exactly its
//! values go. A person's value at the shared name is never removed. `reap`
//! lists every instance's registry with a zone transfer: with the transfer
//! right it removes an expired instance's values; without it, it fails and
//! says that the zone-transfer right is missing (not that the key is wrong).
//! A key with the right name and another secret is refused, says so, and
//! changes nothing.
//!
//! The zone is read with the harness's tools (`dig`; see `testkit::servers`),
//! never with dnsreg, and whatever dnsreg's key may do.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use tempfile::TempDir;
use testkit::servers::{DnsServer, Kind, ServerOptions};

use crate::util::{isolate, output_within, stderr, stdout};

/// Long enough for a loaded machine; short enough that a command retrying a
/// refusal it should give up on fails its test instead of stalling the suite.
const LIMIT: Duration = Duration::from_secs(30);

/// A server serving example.com whose dnsreg key may update and, with
/// `transfer`, transfer; and a scratch directory.
struct Ns {
    server: Box<dyn DnsServer>,
    dir: TempDir,
    transfer: bool,
}

impl Ns {
    fn new(kind: Kind, transfer: bool) -> Ns {
        Ns {
            server: kind.start(ServerOptions {
                allow_transfer: transfer,
                ..ServerOptions::default()
            }),
            dir: tempfile::tempdir().unwrap(),
            transfer,
        }
    }

    /// Who the failure messages speak of.
    fn what(&self) -> String {
        format!(
            "{} with an update{} key",
            self.server.kind().name(),
            if self.transfer { "+transfer" } else { "-only" }
        )
    }

    /// A configuration file for instance `id` at `ip`: a host record
    /// `{instance_id}` and the round-robin name `www`, signed with `key`
    /// (dnsreg's key unless given), with a lease of an hour when `lease`.
    fn config(&self, id: &str, ip: &str, key: Option<&PathBuf>, lease: bool) -> PathBuf {
        let key = key.cloned().unwrap_or_else(|| self.server.key_file());
        let path = self.dir.path().join(format!("{id}.toml"));
        let lease = if lease {
            "\n[lease]\nttl = \"1h\"\n"
        } else {
            ""
        };
        let text = format!(
            r#"[instance]
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
name = "{{instance_id}}"
ttl = 60

[[round_robin]]
providers = ["ns"]
name = "www"
ttl = 60
{lease}
[agent]
state_dir = "{state}"
"#,
            server = self.server.addr(),
            key = key.display(),
            state = self.dir.path().join("state").join(id).display(),
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `dnsreg -c CONFIG CMD`, isolated, bounded by [`LIMIT`].
    fn run(&self, config: &PathBuf, cmd: &str) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dnsreg"));
        isolate(&mut c, self.dir.path());
        c.arg("-c").arg(config).arg(cmd);
        output_within(&mut c, LIMIT)
    }

    /// `run`, which must exit 0.
    fn ok(&self, config: &PathBuf, cmd: &str) -> Output {
        let out = self.run(config, cmd);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: dnsreg {cmd} ({}) failed\n--- stdout\n{}\n--- stderr\n{}\n--- server log (tail)\n{}",
            self.what(),
            config.display(),
            stdout(&out),
            stderr(&out),
            self.log_tail()
        );
        out
    }

    fn log_tail(&self) -> String {
        let log = self.server.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn www(&self) -> Vec<String> {
        self.server.values("www.example.com.", "A")
    }

    fn host(&self, id: &str) -> Vec<String> {
        self.server.values(&format!("{id}.example.com."), "A")
    }

    /// The zone's records outside dnsreg's registry subtree (`_dnsreg`):
    /// the values themselves, whatever the registry's format.
    fn published(&self) -> Vec<String> {
        self.server
            .records()
            .into_iter()
            .filter(|r| !r.contains("_dnsreg.example.com. "))
            .collect()
    }

    /// A key file with dnsreg's key name and algorithm but another secret.
    fn wrong_key(&self) -> PathBuf {
        let out = Command::new("tsig-keygen")
            .args(["-a", "hmac-sha256", "dnsreg-key"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let path = self.dir.path().join("wrong.key");
        std::fs::write(&path, out.stdout).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        path
    }

    /// Makes instance `id`'s lease run out: its lease line (`dnsreg1-lease
    /// EXPIRY`, the registry's documented format) is set to a time long past,
    /// by hand, as if the instance had died an hour and more ago.
    fn expire_lease(&self, id: &str) {
        let name = format!("{id}._dnsreg.example.com.");
        let lines = self.server.values(&name, "TXT");
        let lease = lines
            .iter()
            .find(|l| l.starts_with("\"dnsreg1-lease "))
            .unwrap_or_else(|| {
                panic!(
                    "{}: no lease line in {id}'s registry: {lines:?}",
                    self.what()
                )
            });
        let ttl = self.server.ttl(&name, "TXT").unwrap();
        self.server.nsupdate(&format!(
            "update delete {name} TXT {lease}\nupdate add {name} {ttl} TXT \"dnsreg1-lease 1000000000\""
        ));
        assert!(
            self.server
                .values(&name, "TXT")
                .contains(&"\"dnsreg1-lease 1000000000\"".to_string()),
            "{}",
            self.what()
        );
    }
}

/// The person's value at the shared name: dnsreg never removes it.
const PERSON: &str = "192.0.2.99";

fn add_persons_value(ns: &Ns) {
    ns.server
        .nsupdate(&format!("update add www.example.com. 60 A {PERSON}"));
    assert_eq!(ns.www(), [PERSON]);
}

/// The harness grants exactly what it says, or every other test here proves
/// less than it claims: dnsreg's key may update, and transfer only when
/// allowed; the harness reads the zone either way.
fn the_harness_grants_what_it_says(kind: Kind, transfer: bool) {
    let ns = Ns::new(kind, transfer);
    ns.server
        .nsupdate("update add probe.example.com. 60 A 192.0.2.1");
    assert_eq!(
        ns.server.records(),
        ["probe.example.com. 60 A 192.0.2.1"],
        "{}",
        ns.what()
    );
    let axfr = Command::new("dig")
        .args(["@127.0.0.1", "-p", &ns.server.addr().port().to_string()])
        .arg("-k")
        .arg(ns.server.key_file())
        .args(["+noall", "+answer", "example.com.", "AXFR"])
        .output()
        .unwrap();
    let axfr = stdout(&axfr);
    let transferred = axfr.contains("probe.example.com.");
    assert_eq!(
        transferred,
        transfer,
        "{}: dnsreg's key transferred the zone: {transferred}\n{axfr}",
        ns.what()
    );
}

/// Two instances share `www` and have a host record each; one leaves and
/// exactly its values go; a person's value at `www` stays through both leaves.
fn join_and_leave(kind: Kind, transfer: bool) {
    let ns = Ns::new(kind, transfer);
    let what = ns.what();
    add_persons_value(&ns);
    let one = ns.config("i-1", "192.0.2.1", None, false);
    let two = ns.config("i-2", "192.0.2.2", None, false);
    ns.ok(&one, "join");
    ns.ok(&two, "join");
    assert_eq!(
        ns.www(),
        ["192.0.2.1", "192.0.2.2", PERSON],
        "{what}: both instances' values and the person's"
    );
    assert_eq!(ns.host("i-1"), ["192.0.2.1"], "{what}");
    assert_eq!(ns.host("i-2"), ["192.0.2.2"], "{what}");

    let before = ns.published();
    ns.ok(&one, "leave");
    let mut expected: Vec<String> = before
        .iter()
        .filter(|r| {
            *r != "www.example.com. 60 A 192.0.2.1" && *r != "i-1.example.com. 60 A 192.0.2.1"
        })
        .cloned()
        .collect();
    expected.sort();
    assert_eq!(
        before.len() - expected.len(),
        2,
        "{what}: i-1's two values were published: {before:?}"
    );
    assert_eq!(
        ns.published(),
        expected,
        "{what}: exactly i-1's values went"
    );
    assert_eq!(ns.www(), ["192.0.2.2", PERSON], "{what}");
    assert_eq!(ns.host("i-1"), Vec::<String>::new(), "{what}");
    assert_eq!(ns.host("i-2"), ["192.0.2.2"], "{what}");

    ns.ok(&two, "leave");
    assert_eq!(ns.www(), [PERSON], "{what}: the person's value stays");
    assert_eq!(
        ns.server.records(),
        [format!("www.example.com. 60 A {PERSON}")],
        "{what}: nothing of dnsreg's is left, registries included"
    );
}

/// Two instances with leases join; one's lease runs out; `reap`.
fn reap_setup(ns: &Ns) -> PathBuf {
    add_persons_value(ns);
    let dead = ns.config("i-dead", "192.0.2.7", None, true);
    let live = ns.config("i-live", "192.0.2.8", None, true);
    ns.ok(&dead, "join");
    ns.ok(&live, "join");
    assert_eq!(
        ns.www(),
        ["192.0.2.7", "192.0.2.8", PERSON],
        "{}",
        ns.what()
    );
    ns.expire_lease("i-dead");
    ns.config("i-reaper", "192.0.2.50", None, false)
}

/// With the transfer right, `reap` removes exactly the expired instance's values.
fn reap_removes_an_expired_instance(kind: Kind) {
    let ns = Ns::new(kind, true);
    let what = ns.what();
    let reaper = reap_setup(&ns);
    let before = ns.published();
    let out = ns.ok(&reaper, "reap");
    assert!(
        stdout(&out).contains("reaped i-dead"),
        "{what}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(!stdout(&out).contains("reaped i-live"), "{what}");
    assert_eq!(ns.www(), ["192.0.2.8", PERSON], "{what}");
    assert_eq!(ns.host("i-dead"), Vec::<String>::new(), "{what}");
    assert_eq!(ns.host("i-live"), ["192.0.2.8"], "{what}");
    let mut expected: Vec<String> = before
        .into_iter()
        .filter(|r| !r.contains("192.0.2.7"))
        .collect();
    expected.sort();
    assert_eq!(
        ns.published(),
        expected,
        "{what}: exactly i-dead's values went"
    );
    assert_eq!(
        ns.server.values("i-dead._dnsreg.example.com.", "TXT"),
        Vec::<String>::new(),
        "{what}: i-dead's registry went"
    );
    assert!(
        !ns.server
            .values("i-live._dnsreg.example.com.", "TXT")
            .is_empty(),
        "{what}: i-live's registry stays"
    );
}

/// Without the transfer right, `reap` fails, says the zone-transfer right is
/// missing — not that the key is wrong, which it is not — and changes nothing.
fn reap_without_transfer_names_the_missing_right(kind: Kind) {
    let ns = Ns::new(kind, false);
    let what = ns.what();
    let reaper = reap_setup(&ns);
    let before = ns.server.records();
    let out = ns.run(&reaper, "reap");
    let err = stderr(&out);
    assert_ne!(
        out.status.code(),
        Some(0),
        "{what}: reap cannot list the registries: {}{err}",
        stdout(&out)
    );
    // "AXFR" alone proves nothing (the step is named "listing the ownership
    // registries (AXFR)" whatever went wrong): the message names the right,
    // as this server's setting grants it.
    let setting = match kind {
        Kind::Bind => "allow-transfer",
        Kind::Knot => "action: [update, transfer]",
        Kind::Pdns => "TSIG-ALLOW-AXFR",
    };
    assert!(
        err.contains(setting),
        "{what}: the message names the missing zone-transfer right ({setting}): {err}"
    );
    // Knot refuses the transfer with NOTAUTH and the TSIG error BADKEY (its
    // word for any refusal by its ACL), PowerDNS with an unsigned NOTAUTH:
    // both look like a refused key, and the key is not the cause (its signed
    // queries and updates are answered). The message may quote the server's
    // words; it must not say the key is wrong.
    for wrong in [
        "not the key",
        "check its name, algorithm and secret",
        "did not accept the TSIG signature",
        "another secret",
        "has no key",
    ] {
        assert!(
            !err.contains(wrong),
            "{what}: the key is right, only its transfer right is missing; the message says {wrong:?}: {err}"
        );
    }
    assert_eq!(ns.server.records(), before, "{what}: nothing changed");
}

/// A key with dnsreg's name and another secret: refused, said, nothing changes.
fn a_wrong_key_is_not_accepted(kind: Kind, transfer: bool) {
    let ns = Ns::new(kind, transfer);
    let what = ns.what();
    let wrong = ns.wrong_key();
    let config = ns.config("i-1", "192.0.2.1", Some(&wrong), false);
    let out = ns.run(&config, "join");
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: {}{err}\n--- server log (tail)\n{}",
        stdout(&out),
        ns.log_tail()
    );
    assert!(
        err.contains("BADSIG") || err.contains("BADKEY") || err.contains("not accept"),
        "{what}: the message says the key is not accepted: {err}"
    );
    // BIND and Knot say why: their answer carries a TSIG record with the
    // error BADSIG (a key of that name, another secret), and the message
    // says that, not a guess between two causes ("BADSIG/BADKEY"). PowerDNS
    // answers a bad signature unsigned, with no TSIG error at all (REFUSED to
    // an update, NOTAUTH to a query): it names no cause to repeat.
    if kind != Kind::Pdns {
        assert!(
            err.contains("BADSIG") && !err.contains("BADKEY"),
            "{what}: the server said BADSIG; the message should say that and only that: {err}"
        );
    }
    for rights in ["allow-update", "TSIG-ALLOW", "action: update", "transfer"] {
        assert!(
            !err.contains(rights),
            "{what}: the key is wrong, not short of a right; the message says {rights:?}: {err}"
        );
    }
    assert!(err.contains("dnsreg-key"), "{what}: names the key: {err}");
    assert_eq!(
        ns.server.records(),
        Vec::<String>::new(),
        "{what}: nothing changed"
    );
}

/// One module per server, one test per scenario and key right, so that a
/// failure names the server and the right.
macro_rules! server_tests {
    ($module:ident, $kind:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn the_harness_grants_update_only() {
                the_harness_grants_what_it_says($kind, false);
            }

            #[test]
            fn the_harness_grants_update_and_transfer() {
                the_harness_grants_what_it_says($kind, true);
            }

            #[test]
            fn join_and_leave_with_an_update_only_key() {
                join_and_leave($kind, false);
            }

            #[test]
            fn join_and_leave_with_an_update_and_transfer_key() {
                join_and_leave($kind, true);
            }

            #[test]
            fn reap_with_an_update_and_transfer_key_removes_an_expired_instance() {
                reap_removes_an_expired_instance($kind);
            }

            #[test]
            fn reap_with_an_update_only_key_names_the_missing_transfer_right() {
                reap_without_transfer_names_the_missing_right($kind);
            }

            #[test]
            fn a_wrong_key_is_not_accepted_update_only() {
                a_wrong_key_is_not_accepted($kind, false);
            }

            #[test]
            fn a_wrong_key_is_not_accepted_update_and_transfer() {
                a_wrong_key_is_not_accepted($kind, true);
            }
        }
    };
}

server_tests!(bind, Kind::Bind);
server_tests!(knot, Kind::Knot);
server_tests!(pdns, Kind::Pdns);
