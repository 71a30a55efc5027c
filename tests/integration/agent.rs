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
    let (mut child, sock) = start(&env, &config);

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

/// Starts `dnsreg run` with `config` (and a NOTIFY_SOCKET), its output piped.
fn start(env: &Env, config: &std::path::Path) -> (Child, UnixDatagram) {
    let sock_path = env.dir.path().join("notify.sock");
    let _ = std::fs::remove_file(&sock_path);
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_nonblocking(true).unwrap();
    let child = env
        .dnsreg()
        .arg("-c")
        .arg(config)
        .arg("run")
        .env("NOTIFY_SOCKET", &sock_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, sock)
}

/// SIGTERM, then the exit code and stderr (within `secs`).
fn stop(child: Child, secs: u64) -> (Option<i32>, String) {
    signal(&child, "-TERM");
    let mut child = child;
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the agent did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code(), stderr(&out))
}

fn alive(child: &mut Child) -> bool {
    child.try_wait().unwrap().is_none()
}

const CHECKED: &str = r#"
[instance]
metadata = "aws"

[providers.r53]
type = "route53"
zone = "example.com"

[[round_robin]]
providers = ["r53"]
name = "www"

[[check]]
exec = ["/usr/bin/test", "-e", "{flag}"]
interval = "300ms"
timeout = "250ms"
rise = 2
fall = 2

[[check]]
tcp = "{tcp}"
interval = "300ms"
timeout = "250ms"
rise = 1
fall = 1

[agent]
reconcile_interval = "30s"
stop_timeout = "10s"
state_dir = "{state_dir}"
"#;

#[test]
fn records_are_published_only_while_every_health_check_passes() {
    let env = Env::new();
    let flag = env.dir.path().join("healthy");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = listener.local_addr().unwrap().to_string();
    let config = env.config(
        "dnsreg.toml",
        &CHECKED
            .replace("{flag}", &flag.display().to_string())
            .replace("{tcp}", &tcp),
    );
    let (mut child, sock) = start(&env, &config);

    // Failing at start: READY comes (the agent runs), records do not.
    let mut seen = Vec::new();
    wait_for(20, "READY=1", || {
        seen.extend(notifications(&sock));
        seen.iter().any(|m| m.contains("READY=1"))
    });
    assert!(env.values("www", "A").is_empty());
    // status says why, with exit 1.
    let out = crate::util::run_expect(env.dnsreg().arg("-c").arg(&config).arg("status"), 1);
    let shown = crate::util::stdout(&out);
    assert!(shown.contains("withdrawn"), "{shown}");
    assert!(
        shown.contains("FAILING check[0] (exec /usr/bin/test -e"),
        "{shown}"
    );
    assert!(shown.contains("exit status 1"), "{shown}");
    assert!(shown.contains("passing check[1] (tcp"), "{shown}");

    // Healthy: published.
    std::fs::write(&flag, "").unwrap();
    wait_for(10, "www published", || {
        env.values("www", "A") == ["203.0.113.7"]
    });
    let out = crate::util::run_expect(env.dnsreg().arg("-c").arg(&config).arg("status"), 0);
    assert!(
        crate::util::stdout(&out).contains("agent (pid"),
        "{}",
        crate::util::stdout(&out)
    );

    // The service stops listening: withdrawn while the agent keeps running.
    drop(listener);
    wait_for(10, "www withdrawn", || env.values("www", "A").is_empty());
    assert!(alive(&mut child));
    assert_eq!(env.records(), Vec::<String>::new(), "the registry goes too");

    // Back: published again.
    let _listener = std::net::TcpListener::bind(&tcp).unwrap();
    wait_for(10, "www published again", || {
        env.values("www", "A") == ["203.0.113.7"]
    });

    let (code, err) = stop(child, 15);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("health checks fail, withdrawing"), "{err}");
    assert_eq!(env.records(), Vec::<String>::new());
}

const NOTICED: &str = r#"
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
notice_interval = "1s"
stop_timeout = "10s"
state_dir = "{state_dir}"
"#;

#[test]
fn a_spot_notice_removes_the_records_within_seconds_and_they_stay_down() {
    let env = Env::new();
    let config = env.config("dnsreg.toml", NOTICED);
    let (mut child, sock) = start(&env, &config);
    let mut seen = Vec::new();
    wait_for(20, "READY=1", || {
        seen.extend(notifications(&sock));
        seen.iter().any(|m| m.contains("READY=1"))
    });
    assert_eq!(env.values("www", "A"), ["203.0.113.7"]);

    env.imds.set_spot_action(Some("terminate"));
    let noticed = Instant::now();
    wait_for(10, "records removed after the spot notice", || {
        env.records().is_empty()
    });
    let took = noticed.elapsed();
    assert!(took < Duration::from_secs(10), "{took:?}");
    eprintln!("spot notice → records removed in {took:?}");

    // Reconciles go on passing: the records stay down, the agent stays up.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(env.records(), Vec::<String>::new());
    assert!(alive(&mut child));
    let out = crate::util::run_expect(env.dnsreg().arg("-c").arg(&config).arg("status"), 1);
    assert!(
        crate::util::stdout(&out)
            .contains("terminating: aws preemption notice: spot instance-action terminate"),
        "{}",
        crate::util::stdout(&out)
    );

    let (code, err) = stop(child, 15);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("spot instance-action terminate"), "{err}");
}

#[test]
fn an_auto_scaling_termination_removes_the_records() {
    let env = Env::new();
    let config = env.config("dnsreg.toml", NOTICED);
    let (child, _sock) = start(&env, &config);
    wait_for(20, "www published", || {
        env.values("www", "A") == ["203.0.113.7"]
    });
    env.imds.set_lifecycle_state("Terminated");
    wait_for(10, "records removed after scale-in", || {
        env.records().is_empty()
    });
    let (code, err) = stop(child, 15);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("auto scaling target lifecycle state Terminated"),
        "{err}"
    );
}

const RELOADED: &str = r#"
[instance]
metadata = "aws"

[providers.r53]
type = "route53"
zone = "example.com"

[providers.other]
type = "route53"
zone = "example.org"

[[host]]
providers = ["r53"]
name = "{instance_id}"

[[round_robin]]
providers = ["r53", "other"]
name = "www"

[agent]
reconcile_interval = "30s"
stop_timeout = "10s"
state_dir = "{state_dir}"
"#;

#[test]
fn sighup_applies_only_the_difference_and_refuses_a_bad_configuration() {
    let env = Env::new();
    let org = env.r53.create_zone("example.org");
    let config = env.config("dnsreg.toml", RELOADED);
    let (mut child, _sock) = start(&env, &config);
    wait_for(20, "both zones published", || {
        env.values("www", "A") == ["203.0.113.7"]
            && env.r53.values(&org, "www.example.org.", "A") == ["203.0.113.7"]
    });
    let changes = || {
        env.r53
            .stats()
            .requests
            .get("ChangeResourceRecordSets")
            .copied()
            .unwrap_or(0)
    };

    // A bad configuration: refused, the old one kept, nothing changes.
    let before = changes();
    std::fs::write(&config, "[providers.r53]\ntype = \"route54\"\n").unwrap();
    signal(&child, "-HUP");
    std::thread::sleep(Duration::from_secs(1));
    assert!(alive(&mut child));
    assert_eq!(changes(), before);
    assert_eq!(env.values("www", "A"), ["203.0.113.7"]);

    // The provider `other` goes, www becomes api: only that changes.
    let host_before = env.values("i-0123456789abcdef0", "A");
    env.config(
        "dnsreg.toml",
        &RELOADED
            .replace(
                "[providers.other]\ntype = \"route53\"\nzone = \"example.org\"\n",
                "",
            )
            .replace(
                "providers = [\"r53\", \"other\"]\nname = \"www\"",
                "providers = [\"r53\"]\nname = \"api\"",
            ),
    );
    signal(&child, "-HUP");
    wait_for(10, "the difference applied", || {
        env.values("www", "A").is_empty()
            && env.values("api", "A") == ["203.0.113.7"]
            && env
                .r53
                .rrsets(&org)
                .iter()
                .all(|r| r.rtype == "SOA" || r.rtype == "NS")
    });
    assert_eq!(env.values("i-0123456789abcdef0", "A"), host_before);

    let (code, err) = stop(child, 15);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("reload refused, keeping the running configuration"),
        "{err}"
    );
    assert!(err.contains("route54"), "{err}");
    assert_eq!(env.records(), Vec::<String>::new());
}

#[test]
fn drain_waits_after_removal_within_stop_timeout() {
    let env = Env::new();
    let config = env.config(
        "dnsreg.toml",
        &NOTICED.replace(
            "stop_timeout = \"10s\"",
            "stop_timeout = \"10s\"\ndrain = \"2s\"",
        ),
    );
    let (child, _sock) = start(&env, &config);
    wait_for(20, "www published", || {
        env.values("www", "A") == ["203.0.113.7"]
    });
    let pid = child.id();
    signal(&child, "-TERM");
    let sent = Instant::now();
    wait_for(10, "records removed", || env.records().is_empty());
    let removed = sent.elapsed();
    // Still running (draining) right after the removal.
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    let out = child.wait_with_output().unwrap();
    let exited = sent.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        exited >= removed + Duration::from_millis(1500),
        "removed {removed:?}, exited {exited:?}"
    );
    assert!(stderr(&out).contains("draining for 2s"), "{}", stderr(&out));
}

#[test]
fn a_provider_that_is_down_does_not_hold_up_the_others() {
    let env = Env::new();
    // A second provider whose API is unreachable (nothing listens there).
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/client/v4", dead.local_addr().unwrap());
    drop(dead);
    let token = env.dir.path().join("cf.token");
    std::fs::write(&token, "t").unwrap();
    let config = env.config(
        "dnsreg.toml",
        &CONFIG
            .replace(
                "[[host]]",
                &format!(
                    "[providers.cf]\ntype = \"cloudflare\"\nzone = \"example.com\"\nendpoint = \"{dead_url}\"\ntoken_file = \"{}\"\n\n[[host]]",
                    token.display()
                ),
            )
            .replace("providers = [\"r53\"]\nname = \"www\"", "providers = [\"r53\", \"cf\"]\nname = \"www\""),
    );
    let started = Instant::now();
    let (child, _sock) = start(&env, &config);
    // Route53's records come at once, while Cloudflare is still being retried.
    wait_for(10, "the Route53 records", || {
        env.values("www", "A") == ["203.0.113.7"]
    });
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "{took:?}");
    let (code, err) = stop(child, 30);
    // The stop reports the provider it could not reach (exit 1), after removing the rest.
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cf"), "{err}");
    assert_eq!(env.records(), Vec::<String>::new());
}

#[test]
fn a_zone_lookup_that_failed_is_tried_again_by_the_next_reconcile() {
    let env = Env::new();
    // The hosted zone does not exist yet when the agent starts.
    let config = env.config(
        "dnsreg.toml",
        &CONFIG.replace("zone = \"example.com\"", "zone = \"example.org\""),
    );
    let (child, _sock) = start(&env, &config);
    std::thread::sleep(Duration::from_secs(2));
    let org = env.r53.create_zone("example.org");
    // Once it exists, a later reconcile finds it and publishes (the first,
    // failed lookup must not leave the provider half-connected).
    wait_for(20, "the records in the new zone", || {
        env.r53.values(&org, "www.example.org.", "A") == ["203.0.113.7"]
    });
    let (code, err) = stop(child, 15);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("no hosted zone named example.org"), "{err}");
    assert_eq!(
        env.r53.values(&org, "www.example.org.", "A"),
        Vec::<String>::new()
    );
}
