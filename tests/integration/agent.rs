//! `dnsreg run`: the agent joins, tells systemd, keeps records true, follows an
//! address change, and leaves on SIGTERM.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::util::{Env, Said, TcpPort};

pub(crate) const CONFIG: &str = r#"
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
pub(crate) fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `dnsreg run` under test: its sd_notify socket, and its stdout and stderr
/// read as they come, so that a test can wait for what the agent says.
pub(crate) struct Agent {
    child: Child,
    /// What the agent sent to its NOTIFY_SOCKET, read as it comes by a
    /// thread: a socket left unread fills (ten datagrams here), and the
    /// agent's next sd_notify then blocks its whole runtime, /metrics too,
    /// as systemd, which always reads, never would.
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Read so that the pipe never fills and blocks the agent.
    _stdout: Said,
    pub(crate) stderr: Said,
}

impl Agent {
    /// Starts `dnsreg run` with `config` (and a NOTIFY_SOCKET).
    pub(crate) fn start(env: &Env, config: &Path) -> Agent {
        Agent::start_with(env, config, &[])
    }

    /// Starts it with these environment variables too (as systemd sets them).
    pub(crate) fn start_with(env: &Env, config: &Path, vars: &[(&str, &str)]) -> Agent {
        let sock_path = env.dir.path().join("notify.sock");
        let _ = std::fs::remove_file(&sock_path);
        let sock = UnixDatagram::bind(&sock_path).unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        {
            let seen = std::sync::Arc::clone(&seen);
            // Ends with the test process; it only ever reads.
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = sock.recv(&mut buf) {
                    seen.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
            });
        }
        let mut child = env
            .dnsreg()
            .arg("-c")
            .arg(config)
            .arg("run")
            .env("NOTIFY_SOCKET", &sock_path)
            // Only what the test gives, whatever runs the suite.
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .envs(vars.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Said::read(child.stdout.take().unwrap());
        let stderr = Said::read(child.stderr.take().unwrap());
        Agent {
            child,
            seen,
            _stdout: stdout,
            stderr,
        }
    }

    /// The sd_notify messages the agent sent so far.
    fn notifications(&mut self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    pub(crate) fn wait_ready(&mut self) {
        wait_for(20, "READY=1", || {
            self.notifications().iter().any(|m| m.contains("READY=1"))
        });
    }

    pub(crate) fn signal(&self, sig: &str) {
        let status = std::process::Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Still running: not exited, and not a zombie either (`try_wait` reaps
    /// one, where `/proc/<pid>` would still be there).
    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits up to `secs` for the agent to exit; its status and all it wrote
    /// to stderr.
    fn exit_within(&mut self, secs: u64, what: &str) -> (ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            // Read what it tells systemd meanwhile, as systemd would: a
            // datagram socket holds only a few unread messages, and the
            // agent's next one (a watchdog ping) would block it.
            self.notifications();
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the agent did not exit within {secs}s {what}; it said:\n{}",
                    self.stderr.all()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (status, self.stderr.all())
    }

    /// SIGTERM, then the exit code and stderr (within `secs`).
    pub(crate) fn stop(&mut self, secs: u64) -> (Option<i32>, String) {
        self.signal("-TERM");
        let (status, err) = self.exit_within(secs, "after SIGTERM");
        (status.code(), err)
    }
}

impl Drop for Agent {
    /// A test that failed half-way leaves no agent running behind it.
    fn drop(&mut self) {
        if self.alive() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn the_agent_joins_reconciles_follows_the_address_and_leaves_on_sigterm() {
    let env = Env::new();
    let config = env.config("dnsreg.toml", CONFIG);
    let mut agent = Agent::start(&env, &config);

    agent.wait_ready();
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

    let (code, err) = agent.stop(15);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        env.records(),
        Vec::<String>::new(),
        "everything removed on SIGTERM"
    );
    let seen = agent.notifications();
    assert!(seen.iter().any(|m| m.contains("STOPPING=1")), "{seen:?}");
    // Without WatchdogSec= (no WATCHDOG_USEC), no watchdog pings at all.
    assert!(!seen.iter().any(|m| m.contains("WATCHDOG=1")), "{seen:?}");
}

#[test]
fn a_running_agent_follows_its_zone_when_it_is_deleted_and_made_again() {
    let env = Env::new();
    let config = env.config("dnsreg.toml", CONFIG);
    let mut agent = Agent::start(&env, &config);
    agent.wait_ready();
    let lookups = || env.r53.stats().requests_of("ListHostedZonesByName");
    assert_eq!(lookups(), 1, "the zone is looked up once, then remembered");

    // The zone is deleted and made again under the same name: a new id. The
    // remembered one answers NoSuchHostedZone from now on.
    env.r53.delete_zone(&env.zone_id);
    let again = env.r53.create_zone("example.com");
    assert_ne!(again, env.zone_id);
    wait_for(20, "the records in the new zone", || {
        env.r53.values(&again, "www.example.com.", "A") == vec!["203.0.113.7"]
            && env
                .r53
                .values(&again, "i-0123456789abcdef0.example.com.", "A")
                == vec!["203.0.113.7"]
    });
    assert_eq!(lookups(), 2, "the zone was looked up again, once");

    let (code, err) = agent.stop(15);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("NoSuchHostedZone"),
        "the agent said why its sync failed: {err}"
    );
    assert!(
        env.r53.values(&again, "www.example.com.", "A").is_empty(),
        "removed from the new zone on SIGTERM"
    );
}

#[test]
fn sigint_before_metadata_answers_exits_cleanly() {
    let env = Env::new();
    env.imds.set_fault(testkit::imds::ImdsFault::Status(503));
    let config = env.config("dnsreg.toml", CONFIG);
    let mut agent = Agent::start(&env, &config);
    // One identify round is four token attempts; the fifth request is the next round.
    wait_for(15, "a failed identify round", || {
        env.imds.requests().len() >= 5
    });
    agent.signal("-INT");
    // Identification retries for as long as metadata fails: only the signal ends it.
    let (status, err) = agent.exit_within(10, "after SIGINT");
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(
        err.contains("HTTP 503"),
        "the agent said why it was waiting: {err}"
    );
    assert_eq!(
        env.r53.stats().requests.get("ChangeResourceRecordSets"),
        None
    );
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

/// A machine already published (a restarted agent, or `join` at boot then
/// `run`) keeps its records while its checks rise: the first sync waits for
/// every check to pass or fail. A leave before they spoke took the records
/// out for a probe or two on every restart of a healthy machine.
#[test]
fn a_restart_while_healthy_does_not_take_the_records_out() {
    let env = Env::new();
    let flag = env.dir.path().join("healthy");
    std::fs::write(&flag, "").unwrap();
    let port = TcpPort::new();
    let _listener = port.listen();
    let config = env.config(
        "dnsreg.toml",
        &CHECKED
            .replace("{flag}", &flag.display().to_string())
            .replace("{tcp}", &port.addr().to_string()),
    );
    crate::util::run_expect(env.dnsreg().arg("-c").arg(&config).arg("join"), 0);
    assert_eq!(env.values("www", "A"), ["203.0.113.7"]);
    let changes = |env: &Env| env.r53.stats().requests_of("ChangeResourceRecordSets");
    let before = changes(&env);

    let mut agent = Agent::start(&env, &config);
    // The exec check rises (rise = 2, 300 ms apart): READY comes after the
    // first sync, which finds everything in place.
    agent.wait_ready();
    assert_eq!(env.values("www", "A"), ["203.0.113.7"]);
    assert_eq!(
        changes(&env),
        before,
        "the restart changed the zone: {:?}",
        env.r53.stats()
    );
    let (code, err) = agent.stop(15);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("first sync when every health check has passed or failed"),
        "{err}"
    );
    assert!(!err.contains("withdrawing"), "{err}");
    assert!(env.values("www", "A").is_empty(), "SIGTERM still leaves");
}

#[test]
fn records_are_published_only_while_every_health_check_passes() {
    let env = Env::new();
    let flag = env.dir.path().join("healthy");
    // The checked service's port stays ours while it is down: no other
    // process can start listening there and make the check pass.
    let port = TcpPort::new();
    let listener = port.listen();
    let tcp = port.addr().to_string();
    let config = env.config(
        "dnsreg.toml",
        &CHECKED
            .replace("{flag}", &flag.display().to_string())
            .replace("{tcp}", &tcp),
    );
    let mut agent = Agent::start(&env, &config);

    // Failing at start: READY comes (the agent runs, its first sync done), records do not.
    agent.wait_ready();
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
    assert!(agent.alive());
    assert_eq!(env.records(), Vec::<String>::new(), "the registry goes too");

    // Back: published again.
    let _listener = port.listen();
    wait_for(10, "www published again", || {
        env.values("www", "A") == ["203.0.113.7"]
    });

    let (code, err) = agent.stop(15);
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
    let mut agent = Agent::start(&env, &config);
    agent.wait_ready();
    assert_eq!(env.values("www", "A"), ["203.0.113.7"]);

    // A spot notice gives two minutes; the agent asks every second
    // (notice_interval): 10 s is the bound, with room for a loaded machine,
    // and catches notices not being watched while the agent runs.
    env.imds.set_spot_action(Some("terminate"));
    let noticed = Instant::now();
    wait_for(10, "records removed after the spot notice", || {
        env.records().is_empty()
    });
    eprintln!("spot notice → records removed in {:?}", noticed.elapsed());
    agent.stderr.wait_for(
        Duration::from_secs(5),
        "removing this instance's records now and staying down",
    );

    // They stay down: reconciles (every second) must not join again. Nothing
    // happens while that holds, so time is the behaviour here: over three
    // reconcile intervals, no write reaches Route53 and the records stay away.
    let writes = || env.r53.stats().requests_of("ChangeResourceRecordSets");
    let before = writes();
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert_eq!(env.records(), Vec::<String>::new());
        assert_eq!(writes(), before, "a write after the records were removed");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(agent.alive());
    let out = crate::util::run_expect(env.dnsreg().arg("-c").arg(&config).arg("status"), 1);
    assert!(
        crate::util::stdout(&out)
            .contains("terminating: aws preemption notice: spot instance-action terminate"),
        "{}",
        crate::util::stdout(&out)
    );

    let (code, err) = agent.stop(15);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("spot instance-action terminate"), "{err}");
}

/// A notice or a failing health check is acted on at once even while a
/// sync is stuck: here on a second provider whose API refuses connections
/// (retried for up to a minute per sync). The records go from the provider
/// that answers within seconds, not after the stuck sync gives up.
#[test]
fn a_notice_or_failing_check_during_a_stuck_sync_acts_at_once() {
    let env = Env::new();
    let flag = env.dir.path().join("healthy");
    std::fs::write(&flag, "").unwrap();
    let check = format!(
        "[[check]]\nexec = [\"/usr/bin/test\", \"-e\", \"{}\"]\ninterval = \"200ms\"\ntimeout = \"150ms\"\nfall = 1\nrise = 1\n\n",
        flag.display()
    );
    let (config, _dead) = with_dead_cloudflare(&env, NOTICED, &check);
    // With systemd's watchdog (WatchdogSec=600ms): WATCHDOG=1 every 300 ms.
    let mut agent = Agent::start_with(&env, &config, &[("WATCHDOG_USEC", "600000")]);
    wait_for(20, "the Route53 records", || {
        env.values("www", "A") == ["203.0.113.7"]
    });
    // The sync goes on, stuck on Cloudflare: the agent never said it was done,
    // yet its loop runs, and tells the watchdog so.
    let pings = |a: &mut Agent| {
        a.notifications()
            .iter()
            .filter(|m| m.trim_end() == "WATCHDOG=1")
            .count()
    };
    let before = pings(&mut agent);
    wait_for(10, "WATCHDOG=1 while the sync is stuck", || {
        pings(&mut agent) >= before + 3
    });
    assert!(!agent.stderr.now().contains("joined; reconciling"));

    // The check fails: withdrawn from Route53 within seconds.
    std::fs::remove_file(&flag).unwrap();
    let failed = Instant::now();
    wait_for(10, "www withdrawn while the sync is stuck", || {
        env.values("www", "A").is_empty()
    });
    eprintln!("check failed → withdrawn in {:?}", failed.elapsed());
    // systemctl status says so at once (the leave at Cloudflare is stuck too).
    wait_for(5, "STATUS=withdrawn", || {
        agent
            .notifications()
            .iter()
            .any(|m| m.starts_with("STATUS=withdrawn: health checks fail"))
    });
    // Healthy again, and published again (a new sync, stuck again on Cloudflare).
    std::fs::write(&flag, "").unwrap();
    wait_for(10, "www published again", || {
        env.values("www", "A") == ["203.0.113.7"]
    });

    // A spot notice: removed within seconds, though the sync is stuck.
    env.imds.set_spot_action(Some("terminate"));
    let noticed = Instant::now();
    wait_for(10, "records removed after the spot notice", || {
        env.records().is_empty()
    });
    eprintln!("spot notice → removed in {:?}", noticed.elapsed());
    agent.stderr.wait_for(
        Duration::from_secs(5),
        "removing this instance's records now and staying down",
    );
    assert!(agent.alive());
    // Leaving takes stop_timeout (Cloudflare never answers): pinged throughout.
    agent.signal("-TERM");
    let stopping = pings(&mut agent);
    wait_for(10, "WATCHDOG=1 while leaving", || {
        pings(&mut agent) >= stopping + 3
    });
    let (status, err) = agent.exit_within(30, "after SIGTERM");
    let code = status.code();
    // Cloudflare could not be reached to leave: named, exit 1.
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cf"), "{err}");
    assert_eq!(env.records(), Vec::<String>::new());
}

#[test]
fn an_auto_scaling_termination_removes_the_records() {
    let env = Env::new();
    let config = env.config("dnsreg.toml", NOTICED);
    let mut agent = Agent::start(&env, &config);
    wait_for(20, "www published", || {
        env.values("www", "A") == ["203.0.113.7"]
    });
    env.imds.set_lifecycle_state("Terminated");
    wait_for(10, "records removed after scale-in", || {
        env.records().is_empty()
    });
    let (code, err) = agent.stop(15);
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
    let mut agent = Agent::start(&env, &config);
    wait_for(20, "both zones published", || {
        env.values("www", "A") == ["203.0.113.7"]
            && env.r53.values(&org, "www.example.org.", "A") == ["203.0.113.7"]
    });
    let changes = || env.r53.stats().requests_of("ChangeResourceRecordSets");

    // A bad configuration: refused, the old one kept, nothing changes. The
    // agent says so once it has read the file: only then is "nothing
    // changed" worth asserting.
    let before = changes();
    std::fs::write(&config, "[providers.r53]\ntype = \"route54\"\n").unwrap();
    agent.signal("-HUP");
    agent.stderr.wait_for(
        Duration::from_secs(10),
        "reload refused, keeping the running configuration",
    );
    assert!(
        agent.stderr.now().contains("route54"),
        "{}",
        agent.stderr.now()
    );
    assert!(agent.alive());
    assert_eq!(changes(), before);
    assert_eq!(env.values("www", "A"), ["203.0.113.7"]);
    assert_eq!(
        env.r53.values(&org, "www.example.org.", "A"),
        ["203.0.113.7"]
    );

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
    agent.signal("-HUP");
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
    assert!(
        agent.stderr.now().contains("configuration reloaded"),
        "{}",
        agent.stderr.now()
    );

    let (code, err) = agent.stop(15);
    assert_eq!(code, Some(0), "{err}");
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
    let mut agent = Agent::start(&env, &config);
    wait_for(20, "www published", || {
        env.values("www", "A") == ["203.0.113.7"]
    });
    agent.signal("-TERM");
    let sent = Instant::now();
    wait_for(10, "records removed", || env.records().is_empty());
    let removed = sent.elapsed();
    // Still running (draining) right after the removal: not exited, and not
    // a zombie waiting to be reaped.
    assert!(agent.alive(), "exited at once after removing the records");
    // stop_timeout (10s) bounds the whole stop, drain included.
    let (status, err) = agent.exit_within(15, "after SIGTERM");
    let exited = sent.elapsed();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(
        exited >= removed + Duration::from_millis(1500),
        "removed {removed:?}, exited {exited:?}"
    );
    assert!(err.contains("draining for 2s"), "{err}");
}

/// `base` (its `www` on Route53) with a second provider for `www`: Cloudflare
/// at a port that refuses connections, and stays ours so that nothing else
/// starts answering there (keep the port while the test runs); `extra` goes
/// before the records (a `[[check]]`, say).
pub(crate) fn with_dead_cloudflare(
    env: &Env,
    base: &str,
    extra: &str,
) -> (std::path::PathBuf, TcpPort) {
    let dead = TcpPort::new();
    let dead_url = format!("http://{}/client/v4", dead.addr());
    let token = env.dir.path().join("cf.token");
    std::fs::write(&token, "t").unwrap();
    let config = env.config(
        "dnsreg.toml",
        &base
            .replace(
                "[[host]]",
                &format!(
                    "[providers.cf]\ntype = \"cloudflare\"\nzone = \"example.com\"\nendpoint = \"{dead_url}\"\ntoken_file = \"{}\"\n\n{extra}[[host]]",
                    token.display()
                ),
            )
            .replace("providers = [\"r53\"]\nname = \"www\"", "providers = [\"r53\", \"cf\"]\nname = \"www\""),
    );
    (config, dead)
}

#[test]
fn a_provider_that_is_down_does_not_hold_up_the_others() {
    let env = Env::new();
    let (config, _dead) = with_dead_cloudflare(&env, CONFIG, "");
    let mut agent = Agent::start(&env, &config);
    // Route53's records come at once, while Cloudflare is still being retried
    // (a provider that is down is retried for up to a minute per reconcile):
    // were the providers synced one after the other, they would not be there
    // within 20 s.
    wait_for(20, "the Route53 records", || {
        env.values("www", "A") == ["203.0.113.7"]
    });
    let (code, err) = agent.stop(30);
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
    let mut agent = Agent::start(&env, &config);
    // The first lookup fails, and the agent says so, before the zone exists.
    agent
        .stderr
        .wait_for(Duration::from_secs(20), "no hosted zone named example.org");
    let org = env.r53.create_zone("example.org");
    // Once it exists, a later reconcile finds it and publishes (the first,
    // failed lookup must not leave the provider half-connected).
    wait_for(20, "the records in the new zone", || {
        env.r53.values(&org, "www.example.org.", "A") == ["203.0.113.7"]
    });
    let (code, err) = agent.stop(15);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        env.r53.values(&org, "www.example.org.", "A"),
        Vec::<String>::new()
    );
}
