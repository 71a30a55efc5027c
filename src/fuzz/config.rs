//! What a person (or a provisioning tool) writes: the TOML configuration, the
//! command line, and the TSIG key file.

use clap::Parser;

use super::{Input, Target, corpus};
use crate::cli::{Cli, Command};
use crate::config::{self, ServerAddr, Template};
use crate::tsig::TsigKey;

const TOML_TOKENS: &[&[u8]] = &[
    b"\n[instance]\n",
    b"\n[agent]\n",
    b"\n[lease]\nttl = \"1h\"\n",
    b"\n[providers.r53]\ntype = \"route53\"\nzone = \"example.com\"\n",
    b"\n[providers.cf]\ntype = \"cloudflare\"\nzone = \"example.com\"\n",
    b"\n[providers.ns]\ntype = \"rfc2136\"\nzone = \"example.com\"\nserver = \"192.0.2.53\"\n",
    b"\n[[host]]\nproviders = [\"r53\"]\nname = \"{instance_id}\"\n",
    b"\n[[round_robin]]\nproviders = [\"r53\"]\nname = \"www\"\n",
    b"\n[[srv]]\nproviders = [\"r53\"]\nname = \"_x._tcp\"\nport = 1\ntarget = \"{instance_id}\"\n",
    b"\n[[service]]\nproviders = [\"r53\"]\ntype = \"_x._tcp\"\ninstance = \"{hostname}\"\nport = 1\n",
    b"\n[[check]]\nexec = [\"/bin/true\"]\n",
    b"\n[[check]]\ntcp = \"127.0.0.1:1\"\n",
    b"\n[[check]]\nhttp = \"http://127.0.0.1:1/\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\n",
    b"\"\"\"",
    b"'''",
    b"[[",
    b"]]",
    b"{ a = [",
    b"[[[[[[[[[[[[[[[[",
    b"{a={a={a={a={a={a={a={a=",
    b"1979-05-27T07:32:00Z",
    b"0x7fffffffffffffff",
    b"0o777",
    b"0b1",
    b"1_000",
    b"+inf",
    b"-nan",
    b"true",
    b"ttl = ",
    b"port = ",
    b"providers = []",
    b"{instance_id}",
    b"{hostname}",
    b"{ipv4_dashed}",
    b"{ipv6}",
    b"{nope}",
    b"{",
    b"}",
    b"9999999999999999999s",
    b"18446744073709551615s",
    b"1000000000000000000000ns",
    b"30d",
    b"31d",
    b"584942417355y",
];

fn check_toml(text: &str) {
    match config::parse("fuzz.toml", text) {
        Ok(c) => {
            for p in &c.providers {
                // A hosted zone id goes into every Route53 URL.
                if let config::ProviderKind::Route53(r) = &p.kind
                    && let config::ZoneRef::Id(id) | config::ZoneRef::Both(_, id) = &r.zone
                {
                    assert!(config::plausible_hosted_zone_id(id), "zone id {id:?}");
                }
            }
            let _ = config::fleet_notes(&c);
            assert!(!c.providers.is_empty() && !c.records.is_empty());
            assert!(c.agent.reconcile_interval <= config::MAX_DURATION);
        }
        Err(e) => {
            assert!(!e.problems.is_empty());
            let lines = text.split('\n').count();
            for p in &e.problems {
                if let Some(l) = p.line {
                    assert!(l >= 1 && l <= lines, "line {l} of {lines}");
                }
            }
            let _ = e.to_string();
        }
    }
}

#[test]
fn config_toml() {
    let t = Target::new("config-toml");
    let seeds = corpus("config-toml");
    t.run_bytes(&seeds, TOML_TOKENS, |i: &Input| check_toml(&i.text()));
}

const FLAG_TOKENS: &[&[u8]] = &[
    b"\njoin\n",
    b"\nleave\n",
    b"\nstatus\n",
    b"\nwhoami\n",
    b"\ndiscover\n",
    b"\ncheck\n",
    b"\n--provider\n",
    b"\n--provider\nroute53\n",
    b"\n--provider\ncloudflare\n",
    b"\n--provider\nrfc2136\n",
    b"\n--zone\n",
    b"\n--zone-id\n",
    b"\n--routing\n",
    b"\n--endpoint\n",
    b"\n--server\n",
    b"\n--tsig-key-file\n",
    b"\n--service\n",
    b"\n--port\n",
    b"\n--name\n",
    b"\n--host\n",
    b"\n--ttl\n",
    b"\n--state-dir\n",
    b"\n--metadata\n",
    b"\n--metadata-endpoint\n",
    b"\n--address\n",
    b"\n--instance-id\n",
    b"\n--ipv4\n",
    b"\n--ipv6\n",
    b"\n--wait\n",
    b"\n--one\n",
    b"\n--json\n",
    b"\n--resolve\n",
    b"\n-c\n",
    b"\n-vv\n",
    b"\n-q\n",
    b"\n--\n",
    b"\n--help\n",
    b"=",
    b"[::1]:53",
    b"[",
    b"]:",
    b":65536",
    b"1e9999s",
    b"999999999999999999999h",
];

fn check_args(text: &str) {
    let args = std::iter::once("dnsreg").chain(text.split('\n'));
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    match &cli.command {
        Command::Join(a) | Command::Leave(a) => records(&a.records),
        Command::Plan(a) => records(&a.records),
        Command::Status { records: r, .. } => records(r),
        Command::Whoami { instance, .. } => {
            if let Err(e) = config::instance_from_flags(&instance.flags()) {
                let _ = e.to_string();
            }
        }
        Command::Discover(args) => {
            if let Err(e) = crate::discover::Request::parse(args) {
                let _ = e.to_string();
            }
        }
        Command::Run
        | Command::Check
        | Command::Reap
        | Command::Completions { .. }
        | Command::Manpages { .. } => {}
    }
}

fn records(r: &crate::cli::RecordArgs) {
    match r.flags() {
        Some(f) => match config::from_flags(&f) {
            Ok(c) => assert!(!c.records.is_empty()),
            Err(e) => {
                assert!(!e.problems.is_empty());
                let _ = e.to_string();
            }
        },
        None => {
            let _ = r.stray();
        }
    }
}

#[test]
fn config_flags() {
    let t = Target::new("config-flags");
    let seeds = corpus("config-flags");
    t.run_bytes(&seeds, FLAG_TOKENS, |i: &Input| check_args(&i.text()));
}

/// Single values a configuration holds as text: server addresses, templates.
fn check_values(text: &str) {
    for s in std::iter::once(text).chain(text.split('\n')) {
        if let Some(a) = ServerAddr::parse(s) {
            // What it shows parses back to the same address.
            assert_eq!(ServerAddr::parse(&a.to_string()).as_ref(), Some(&a), "{a}");
        }
        if let Ok(t) = Template::new(s) {
            let _ = t.expand(|v| Some(format!("<{v}>")));
            let _ = t.expand(|_| None);
        }
        let _ = crate::net::is_loopback_url(s);
    }
}

#[test]
fn config_values() {
    let t = Target::new("config-values");
    let seeds = corpus("config-values");
    t.run_bytes(&seeds, FLAG_TOKENS, |i: &Input| check_values(&i.text()));
}

const KEY_TOKENS: &[&[u8]] = &[
    b"key",
    b"key \"k\" {",
    b"algorithm",
    b"secret",
    b"hmac-sha256",
    b"hmac-sha512.",
    b"hmac-md5",
    b"/*",
    b"*/",
    b"//",
    b"#",
    b"};",
    b"\"\"",
    b"====",
    b"AAAA",
];

#[test]
fn tsig_key_file() {
    let t = Target::new("tsig-key");
    let seeds = corpus("tsig-key");
    t.run_bytes(&seeds, KEY_TOKENS, |i: &Input| {
        match i.text().parse::<TsigKey>() {
            Ok(k) => {
                assert!(!k.name.is_empty());
                // Never shows the secret.
                let _ = format!("{k:?}");
            }
            Err(e) => assert!(!e.is_empty()),
        }
    });
}
