//! `dnsreg run`: the agent joins, tells systemd, keeps records true, follows an
//! address change, and leaves on SIGTERM.

use std::os::unix::net::UnixDatagram;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::util::{Env, stderr};

const CONFIG: &str = r#"
[instance]
metadata = "aws"

[providers.r53]
type = "route53"
zone = "example.com"

[[host]]
providers = ["r53"]
name = "{instance_id}"

[[round_robin]]
providers = ["r53"]
name = "www"

[agent]
reconcile_interval = "1s"
stop_timeout = "10s"
state_dir = "{state_dir}"
"#;

/// Polls `cond` for up to `secs`.
fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The sd_notify messages the agent sent so far.
fn notifications(sock: &UnixDatagram) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    out
}

fn signal(child: &Child, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn the_agent_joins_reconciles_follows_the_address_and_leaves_on_sigterm() {
    let env = Env::new();
    let config = env.config("dnsreg.toml", CONFIG);
    let sock_path = env.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_nonblocking(true).unwrap();
    let mut child = env
        .dnsreg()
        .arg("-c")
        .arg(&config)
        .arg("run")
        .env("NOTIFY_SOCKET", &sock_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let mut seen = Vec::new();
    wait_for(20, "READY=1", || {
        seen.extend(notifications(&sock));
        seen.iter().any(|m| m.contains("READY=1"))
    });
    assert_eq!(
        env.values("www", "A"),
        vec!["203.0.113.7"],
        "records are there once READY is sent"
    );

    // Someone deletes our record: the next reconcile puts it back.
    env.r53
        .remove_rrset(&env.zone_id, "www.example.com.", "A", None);
    wait_for(10, "www re-created", || {
        env.values("www", "A") == vec!["203.0.113.7"]
    });

    // The address changes: the old values go, the new ones come.
    env.imds
        .update(|i| i.public_ipv4 = Some("198.51.100.9".into()));
    wait_for(10, "the new address", || {
        env.values("www", "A") == vec!["198.51.100.9"]
            && env.values("i-0123456789abcdef0", "A") == vec!["198.51.100.9"]
    });

    signal(&child, "-TERM");
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        env.records(),
        Vec::<String>::new(),
        "everything removed on SIGTERM"
    );
    seen.extend(notifications(&sock));
    assert!(seen.iter().any(|m| m.contains("STOPPING=1")), "{seen:?}");
}

#[test]
fn sigint_before_metadata_answers_exits_cleanly() {
    let env = Env::new();
    env.imds.set_fault(testkit::imds::ImdsFault::Status(503));
    let config = env.config("dnsreg.toml", CONFIG);
    let child = env
        .dnsreg()
        .arg("-c")
        .arg(&config)
        .arg("run")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // One identify round is four token attempts; the fifth request is the next round.
    wait_for(15, "a failed identify round", || {
        env.imds.requests().len() >= 5
    });
    signal(&child, "-INT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("HTTP 503"),
        "the agent said why it was waiting: {}",
        stderr(&out)
    );
    assert_eq!(
        env.r53.stats().requests.get("ChangeResourceRecordSets"),
        None
    );
}
