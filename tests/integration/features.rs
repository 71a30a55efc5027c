//! Features no other test could catch breaking, each driven the way a user
//! meets it: the HTTP health probe of a running agent, the termination
//! notices of GCP, Azure and Alibaba, a lease renewed while the agent runs
//! (and so never reaped), and `dnsreg reap` on Cloudflare and a real BIND.
//!
//! Every wait polls with a deadline, and every test checks that the event it
//! injects was met (the endpoint was probed, the notice was asked for, the
//! reaper was live), so that a pass proves something.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use testkit::imds::{CloudKind, ImdsServer, Instance};
use testkit::route53::RrSet;

use crate::battery::{Backend, CloudflareBackend, Rfc2136Backend, World};
use crate::util::{Env, run_expect, stdout};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Polls `cond` every 50 ms for up to `secs`; panics naming `what` when it
/// never holds.
fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A running `dnsreg run`, its output in files (a pipe nobody reads would
/// stall a long-running agent once full). Killed if the test panics.
struct Agent {
    child: Option<Child>,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Agent {
    /// Starts `cmd` (a `dnsreg … run`); its output goes to `dir/NAME.out|err`.
    fn start(cmd: &mut Command, dir: &Path, name: &str) -> Agent {
        let stdout = dir.join(format!("{name}.out"));
        let stderr = dir.join(format!("{name}.err"));
        let child = cmd
            .stdout(File::create(&stdout).unwrap())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .expect("dnsreg runs");
        Agent {
            child: Some(child),
            stdout,
            stderr,
        }
    }

    fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// SIGTERM, then the exit code once it exits (within `secs`).
    fn stop(mut self, secs: u64) -> Option<i32> {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the agent did not exit within {secs}s of SIGTERM\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `dnsreg -c CONFIG status` until its output contains every one of `says`
/// (the status file is written once the sync that follows a change is done).
fn wait_for_status(env: &Env, config: &Path, says: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = env
            .dnsreg()
            .arg("-c")
            .arg(config)
            .arg("status")
            .output()
            .unwrap();
        let shown = stdout(&out);
        if says.iter().all(|s| shown.contains(s)) {
            return shown;
        }
        assert!(
            Instant::now() < deadline,
            "status never said {says:?}; last:\n{shown}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------
// 1. The HTTP health probe
// ---------------------------------------------------------------------------

/// What the stand-in health endpoint does with the next request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    /// 200 OK.
    Healthy,
    /// 500 Internal Server Error.
    Error,
    /// Reads the request and never answers (a hung service).
    Silent,
    /// Reads the request and closes the connection without a word.
    Closed,
    /// 302 to a path that would answer 200: a redirect is not health.
    Redirect,
}

/// What the endpoint answers now, and each request line with what it got.
struct Endpoint {
    answer: Answer,
    seen: Vec<(Answer, String)>,
}

/// A tiny HTTP server on loopback whose answer the test switches, and that
/// logs every request line with the answer it got.
struct HealthEndpoint {
    addr: SocketAddr,
    state: Arc<Mutex<Endpoint>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HealthEndpoint {
    fn start() -> HealthEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(Endpoint {
            answer: Answer::Healthy,
            seen: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                // Connections of the silent answer, held open until the end.
                let mut held: Vec<TcpStream> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let mut s = match listener.accept() {
                        Ok((s, _)) => s,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                        Err(e) => panic!("health endpoint: {e}"),
                    };
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    let line = request_line(&mut s);
                    let answer = {
                        let mut st = state.lock().unwrap();
                        let answer = st.answer;
                        st.seen.push((answer, line));
                        answer
                    };
                    let reply = |status: &str, extra: &str| {
                        format!(
                            "HTTP/1.1 {status}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
                        )
                    };
                    let text = match answer {
                        Answer::Healthy => reply("200 OK", ""),
                        Answer::Error => reply("500 Internal Server Error", ""),
                        Answer::Redirect => reply("302 Found", "Location: /elsewhere\r\n"),
                        Answer::Silent => {
                            held.push(s);
                            continue;
                        }
                        Answer::Closed => continue,
                    };
                    let _ = s.write_all(text.as_bytes());
                }
            })
        };
        HealthEndpoint {
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn answer(&self, answer: Answer) {
        self.state.lock().unwrap().answer = answer;
    }

    /// How many requests got `answer`.
    fn hits(&self, answer: Answer) -> usize {
        let st = self.state.lock().unwrap();
        st.seen.iter().filter(|(a, _)| *a == answer).count()
    }

    /// Every request line so far.
    fn requests(&self) -> Vec<String> {
        let st = self.state.lock().unwrap();
        st.seen.iter().map(|(_, l)| l.clone()).collect()
    }
}

impl Drop for HealthEndpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads a request's head; returns its first line.
fn request_line(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

const HTTP_CHECKED: &str = r#"
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

[[check]]
http = "{url}"
interval = "300ms"
timeout = "250ms"
rise = 2
fall = 2

[agent]
reconcile_interval = "30s"
stop_timeout = "10s"
state_dir = "{state_dir}"
"#;

/// The README's `http` check: passes on a 2xx answer, redirects not
/// followed. An endpoint that answers 500, hangs, drops the connection or
/// redirects withdraws the records while the agent keeps running; healthy
/// again, they are published again.
#[test]
fn an_http_check_withdraws_the_records_while_the_endpoint_fails_and_republishes_them() {
    let env = Env::new();
    let health = HealthEndpoint::start();
    let url = health.url("/healthz");
    let config = env.config("dnsreg.toml", &HTTP_CHECKED.replace("{url}", &url));
    let mut agent = Agent::start(
        env.dnsreg().arg("-c").arg(&config).arg("run"),
        env.dir.path(),
        "agent",
    );
    let published = || {
        env.values("www", "A") == ["203.0.113.7"]
            && env.values("i-0123456789abcdef0", "A") == ["203.0.113.7"]
    };

    wait_for(20, "the records, the endpoint answering 200", published);
    assert!(
        health.hits(Answer::Healthy) >= 2,
        "published after rise = 2 passes: {:?}",
        health.requests()
    );
    assert_eq!(health.requests()[0], "GET /healthz HTTP/1.1");

    for (answer, says) in [
        (Answer::Error, "HTTP 500"),
        (Answer::Silent, "no answer within 250ms"),
        (Answer::Closed, "error sending request"),
        (Answer::Redirect, "HTTP 302"),
    ] {
        let before = health.hits(answer);
        health.answer(answer);
        wait_for(10, &format!("the records withdrawn ({answer:?})"), || {
            env.records().is_empty()
        });
        assert!(
            health.hits(answer) >= before + 2,
            "withdrawn after fall = 2 failures of {answer:?}"
        );
        assert!(agent.alive(), "the agent keeps running while withdrawn");
        let shown = wait_for_status(
            &env,
            &config,
            &[
                "withdrawn: health checks fail",
                "FAILING check[0] (http ",
                says,
            ],
        );
        assert!(shown.contains(&url), "{shown}");

        health.answer(Answer::Healthy);
        wait_for(10, &format!("the records back after {answer:?}"), published);
    }
    // The redirect's target was never asked for: not followed.
    let requests = health.requests();
    assert!(
        requests.iter().all(|l| l == "GET /healthz HTTP/1.1"),
        "{requests:?}"
    );

    let code = agent_stop(agent);
    assert_eq!(code.0, Some(0), "{}", code.1);
    assert!(
        code.1.contains(&format!(
            "health checks fail, withdrawing the records: check[0] (http {url}): HTTP 500"
        )),
        "{}",
        code.1
    );
    assert_eq!(env.records(), Vec::<String>::new());
}

/// Stops the agent; its exit code and stderr.
fn agent_stop(agent: Agent) -> (Option<i32>, String) {
    let path = agent.stderr.clone();
    let code = agent.stop(15);
    (code, std::fs::read_to_string(path).unwrap_or_default())
}

// ---------------------------------------------------------------------------
// 2. Termination notices of GCP, Azure and Alibaba in a running agent
// ---------------------------------------------------------------------------

const ON_CLOUD: &str = r#"
[instance]
metadata = "{cloud}"
metadata_endpoint = "{imds}"

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

/// How much later than the notice the records may go: the README's "under
/// 10 s after a spot notice appears" (notice_interval is 1 s here).
const NOTICE_DEADLINE: Duration = Duration::from_secs(10);

/// An agent on `kind`'s metadata publishes; the metadata stand-in then
/// announces the end (`announce`); the records must be gone within
/// [`NOTICE_DEADLINE`] while the agent keeps running and says why
/// (`says`), and it exits 0 on the SIGTERM that follows. `ignored`, if
/// given, is an announcement that is no notice: records stay.
fn a_notice_removes_the_records(
    kind: CloudKind,
    notice_request: &str,
    ignored: Option<&dyn Fn(&ImdsServer)>,
    announce: &dyn Fn(&ImdsServer),
    says: &str,
) {
    let env = Env::new();
    let instance = Instance::example(kind);
    let ip = instance.public_ipv4.clone().unwrap();
    let id = instance.instance_id.to_ascii_lowercase();
    let imds = ImdsServer::start_cloud(kind, instance);
    let config = env.config(
        "dnsreg.toml",
        &ON_CLOUD
            .replace("{cloud}", kind.name())
            .replace("{imds}", &imds.url()),
    );
    let mut agent = Agent::start(
        env.dnsreg().arg("-c").arg(&config).arg("run"),
        env.dir.path(),
        "agent",
    );
    let published =
        || env.values("www", "A") == [ip.as_str()] && env.values(&id, "A") == [ip.as_str()];
    wait_for(20, "the records", published);

    // Asked, and no notice yet: the records stay.
    let asked = || {
        imds.requests()
            .iter()
            .filter(|r| r.as_str() == notice_request)
            .count()
    };
    let before = asked();
    wait_for(10, "two more questions for a notice", || {
        asked() >= before + 2
    });
    assert!(published(), "{:?}", env.records());
    if let Some(ignored) = ignored {
        ignored(&imds);
        let before = asked();
        wait_for(10, "two questions after a harmless event", || {
            asked() >= before + 2 || !published()
        });
        assert!(
            published(),
            "an event that is no notice removed the records: {:?}",
            env.records()
        );
    }

    let before = asked();
    announce(&imds);
    let noticed = Instant::now();
    wait_for(15, "the records removed after the notice", || {
        env.records().is_empty()
    });
    let took = noticed.elapsed();
    assert!(asked() > before, "the agent asked for the notice");
    assert!(took < NOTICE_DEADLINE, "{kind:?}: {took:?}");
    eprintln!("{kind:?} notice → records removed in {took:?}");

    // Down for good: reconciles go on, the records stay away.
    assert!(agent.alive());
    wait_for_status(&env, &config, &["terminating: ", says]);
    let changes = env
        .r53
        .stats()
        .requests
        .get("ChangeResourceRecordSets")
        .copied();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(env.records(), Vec::<String>::new());
    assert_eq!(
        env.r53
            .stats()
            .requests
            .get("ChangeResourceRecordSets")
            .copied(),
        changes,
        "nothing written after the removal"
    );

    let (code, err) = agent_stop(agent);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains(says), "{err}");
}

#[test]
fn a_gcp_preemption_removes_the_records() {
    a_notice_removes_the_records(
        CloudKind::Gcp,
        "GET /computeMetadata/v1/instance/preempted",
        None,
        &|imds| imds.set_termination_notice(true),
        "gcp preemption notice: instance/preempted is TRUE",
    );
}

#[test]
fn an_azure_spot_eviction_removes_the_records_and_a_freeze_does_not() {
    a_notice_removes_the_records(
        CloudKind::Azure,
        "GET /metadata/scheduledevents?api-version=2020-07-01",
        Some(&|imds| imds.set_azure_event(Some("Freeze"))),
        &|imds| imds.set_azure_event(Some("Preempt")),
        "azure preemption notice: scheduled event Preempt",
    );
}

#[test]
fn an_azure_scheduled_termination_removes_the_records() {
    a_notice_removes_the_records(
        CloudKind::Azure,
        "GET /metadata/scheduledevents?api-version=2020-07-01",
        Some(&|imds| imds.set_azure_event(Some("Reboot"))),
        &|imds| imds.set_azure_event(Some("Terminate")),
        "azure termination notice: scheduled event Terminate",
    );
}

#[test]
fn an_alibaba_spot_release_removes_the_records() {
    a_notice_removes_the_records(
        CloudKind::Alibaba,
        "GET /latest/meta-data/instance/spot/termination-time",
        None,
        &|imds| imds.set_termination_notice(true),
        "alibaba preemption notice: spot termination-time",
    );
}

// ---------------------------------------------------------------------------
// 3. Lease renewal by a running agent
// ---------------------------------------------------------------------------

const LEASED: &str = r#"
[instance]
metadata = "none"
id = "{id}"
ipv4 = "{ip}"

[providers.r53]
type = "route53"
zone = "example.com"

[[host]]
providers = ["r53"]
name = "{instance_id}"

[[round_robin]]
providers = ["r53"]
name = "www"

[lease]
ttl = "60s"
{reap}

[agent]
reconcile_interval = "1s"
stop_timeout = "10s"
state_dir = "{state_dir}/{id}"
"#;

fn leased(env: &Env, id: &str, ip: &str, reap: bool) -> PathBuf {
    env.config(
        &format!("{id}.toml"),
        &LEASED
            .replace("{id}", id)
            .replace("{ip}", ip)
            .replace("{reap}", if reap { "reap = true" } else { "" }),
    )
}

/// The lease line of instance `id`'s registry at the Route53 stand-in.
fn lease_of(env: &Env, id: &str) -> Option<u64> {
    env.values(&format!("{id}._dnsreg"), "TXT")
        .iter()
        .find_map(|v| {
            v.trim_matches('"')
                .strip_prefix("dnsreg1-lease ")?
                .parse()
                .ok()
        })
}

/// With the shortest lease (`ttl = "60s"`, renewed once a third has passed),
/// the lease in a running agent's registry moves forward while it runs; past
/// the first lease's expiry, neither a reaping agent running all along nor a
/// `dnsreg reap` touches the live agent, while the reaping agent did reap a
/// dead peer (so it was reaping).
#[test]
fn a_running_agent_renews_its_lease_and_no_reaper_reaps_it() {
    let env = Env::new();
    // A dead peer with an expired lease, for the reaping agent to prove itself on.
    env.r53.put_rrset(
        &env.zone_id,
        RrSet::simple(
            "i-crashed._dnsreg.example.com.",
            "TXT",
            60,
            &[
                "\"dnsreg1 www.example.com. A 192.0.2.66\"",
                &format!("\"dnsreg1-lease {}\"", now() - 5),
            ],
        ),
    );
    env.r53.put_rrset(
        &env.zone_id,
        RrSet::simple("www.example.com.", "A", 60, &["192.0.2.66"]),
    );

    let live = leased(&env, "i-live", "192.0.2.8", false);
    let reaper = leased(&env, "i-reaper", "192.0.2.9", true);
    let mut live_agent = Agent::start(
        env.dnsreg().arg("-c").arg(&live).arg("run"),
        env.dir.path(),
        "live",
    );
    // Alone, an agent with a lease but without `reap = true` reaps nobody:
    // it logs "joined" after the step where a reaping agent reaps, so once
    // it has, the dead peer must still be there.
    wait_for(20, "the live agent to join", || {
        live_agent.stderr().contains("joined; reconciling every")
    });
    assert!(
        env.values("www", "A").contains(&"192.0.2.66".to_string())
            && !env.values("i-crashed._dnsreg", "TXT").is_empty(),
        "an agent without reap = true reaped: {:?}",
        env.records()
    );
    let mut reaper_agent = Agent::start(
        env.dnsreg().arg("-c").arg(&reaper).arg("run"),
        env.dir.path(),
        "reaper",
    );
    let live_records = || {
        env.values("i-live", "A") == ["192.0.2.8"]
            && env.values("www", "A").contains(&"192.0.2.8".to_string())
    };
    wait_for(20, "the live agent's records", live_records);
    let first = lease_of(&env, "i-live").expect("a lease line");
    let t0 = now();
    assert!(
        first.abs_diff(t0 + 60) <= 5,
        "a lease of 60 s: {first} at {t0}"
    );
    wait_for(20, "the dead peer reaped by the reaping agent", || {
        !env.values("www", "A").contains(&"192.0.2.66".to_string())
            && env.values("i-crashed._dnsreg", "TXT").is_empty()
    });

    // Renewed once a third has passed (20 s), and again 20 s later.
    let mut seen = vec![first];
    for round in 1..=2 {
        wait_for(30, &format!("renewal {round} of the lease"), || {
            lease_of(&env, "i-live").is_some_and(|l| l > *seen.last().unwrap())
        });
        let l = lease_of(&env, "i-live").unwrap();
        let at = now();
        assert!(
            l.abs_diff(at + 60) <= 5,
            "renewed to 60 s ahead: {l} at {at}"
        );
        assert!(
            l - seen.last().unwrap() >= 15,
            "renewed once a third had passed, not at every reconcile: {seen:?} then {l}"
        );
        seen.push(l);
        assert!(live_records(), "{:?}", env.records());
    }

    // Past the first lease: a reaper now would reap an agent that did not renew.
    wait_for(30, "the first lease to run out", || now() > first + 1);
    let out = run_expect(env.dnsreg().arg("-c").arg(&reaper).arg("reap"), 0);
    assert!(
        stdout(&out).contains("r53: no expired leases"),
        "{}",
        stdout(&out)
    );
    assert!(live_records(), "{:?}", env.records());
    assert!(lease_of(&env, "i-live").unwrap() > now());
    assert!(live_agent.alive() && reaper_agent.alive());

    let reaper_said = reaper_agent.stdout();
    assert!(reaper_said.contains("reaped i-crashed"), "{reaper_said}");
    assert!(!reaper_said.contains("reaped i-live"), "{reaper_said}");
    for agent in [live_agent, reaper_agent] {
        let (code, err) = agent_stop(agent);
        assert_eq!(code, Some(0), "{err}");
    }
    assert_eq!(env.records(), Vec::<String>::new());
}

// ---------------------------------------------------------------------------
// 4. Reaping on Cloudflare and on RFC 2136
// ---------------------------------------------------------------------------

/// A provider whose zone a test can edit as a crashed instance would have left it.
trait Reapable: Backend {
    /// Rewrites the lease line of instance `id`'s registry to expire at `at`
    /// (unix seconds), the rest of the registry as dnsreg wrote it.
    fn set_lease(&self, id: &str, at: u64);
}

fn lease_line(value: &str) -> Option<u64> {
    value
        .trim_matches('"')
        .strip_prefix("dnsreg1-lease ")?
        .parse()
        .ok()
}

impl Reapable for CloudflareBackend {
    fn set_lease(&self, id: &str, at: u64) {
        let name = format!("{id}._dnsreg.example.com");
        let mut record = self
            .cf
            .records(&self.zone_id)
            .into_iter()
            .find(|r| r.name == name && r.rtype == "TXT" && lease_line(&r.content).is_some())
            .unwrap_or_else(|| panic!("no lease record at {name}"));
        let old = lease_line(&record.content).unwrap();
        record.content = record.content.replace(&old.to_string(), &at.to_string());
        self.cf.put_record(&self.zone_id, record);
    }
}

impl Reapable for Rfc2136Backend {
    fn set_lease(&self, id: &str, at: u64) {
        let name = format!("{id}._dnsreg.example.com.");
        let old = self
            .bind
            .values(&name, "TXT")
            .into_iter()
            .find(|v| lease_line(v).is_some())
            .unwrap_or_else(|| panic!("no lease line at {name}"));
        let ttl = self.bind.ttl(&name, "TXT").unwrap();
        self.bind.nsupdate(&format!(
            "update delete {name} TXT {old}\nupdate add {name} {ttl} TXT \"dnsreg1-lease {at}\""
        ));
    }
}

const REAPED: &str = r#"
[instance]
metadata = "none"
id = "{id}"
ipv4 = "{ip}"

[providers.p]
{provider}

[[host]]
providers = ["p"]
name = "{instance_id}"

[[round_robin]]
providers = ["p"]
name = "www"

[lease]
ttl = "1h"

[agent]
state_dir = "{state_dir}/{id}"
"#;

/// Three instances join with a lease: `i-dead` (192.0.2.7), `i-live`
/// (192.0.2.8) and `i-reuse`, given the dead one's address 192.0.2.7. A
/// person put 192.0.2.99 into `www` and a TXT of their own. `i-dead` dies (its
/// lease runs out); `dnsreg reap` removes exactly its host record and
/// registry; `www` 192.0.2.7 stays because `i-reuse` claims it too; the
/// others' records, registries and the person's records are untouched. The
/// live ones can still leave cleanly afterwards, leaving only the person's.
fn reap_removes_only_the_expired_instance<B: Reapable>() -> World<B> {
    let env: World<B> = World::new();
    env.put_by_hand("www", "A", "192.0.2.99", 300);
    env.put_by_hand("notes", "TXT", "\"kept by hand\"", 300);
    let config = |id: &str, ip: &str| {
        env.config(
            &format!("{id}.toml"),
            &REAPED.replace("{id}", id).replace("{ip}", ip),
        )
    };
    for (id, ip) in [
        ("i-dead", "192.0.2.7"),
        ("i-live", "192.0.2.8"),
        ("i-reuse", "192.0.2.7"),
    ] {
        run_expect(env.dnsreg().arg("-c").arg(config(id, ip)).arg("join"), 0);
    }
    assert_eq!(
        env.values("www", "A"),
        ["192.0.2.7", "192.0.2.8", "192.0.2.99"]
    );
    assert!(
        env.values("i-reuse._dnsreg", "TXT")
            .iter()
            .any(|v| v.contains("www.example.com. A 192.0.2.7")),
        "i-reuse claims 192.0.2.7 too: {:?}",
        env.values("i-reuse._dnsreg", "TXT")
    );
    let records = env.records();
    let keep = |r: &String| !r.contains("i-dead");
    let expected: Vec<String> = records.iter().filter(|r| keep(r)).cloned().collect();
    assert!(
        records
            .iter()
            .any(|r| r.starts_with("i-dead.example.com. A"))
            && records
                .iter()
                .any(|r| r.starts_with("i-dead._dnsreg.example.com. TXT")),
        "{records:?}"
    );

    // Live leases do not expire: nothing to reap yet.
    let reaper = config("i-live", "192.0.2.8");
    let out = run_expect(env.dnsreg().arg("-c").arg(&reaper).arg("reap"), 0);
    assert!(
        stdout(&out).contains("p: no expired leases"),
        "{}",
        stdout(&out)
    );
    assert_eq!(env.records(), records);

    // i-dead dies: its lease ran out a minute ago.
    env.set_lease("i-dead", now() - 60);
    assert!(
        env.values("i-dead._dnsreg", "TXT")
            .iter()
            .any(|v| lease_line(v).is_some_and(|t| t < now())),
        "{:?}",
        env.values("i-dead._dnsreg", "TXT")
    );
    let out = run_expect(env.dnsreg().arg("-c").arg(&reaper).arg("reap"), 0);
    let said = stdout(&out);
    assert_eq!(said.matches("reaped ").count(), 1, "{said}");
    assert!(said.contains("p: reaped i-dead"), "{said}");
    assert!(
        said.contains("= www.example.com. A 192.0.2.7 (also claimed by a live instance"),
        "{said}"
    );
    assert_eq!(
        env.records(),
        expected,
        "only i-dead's host record and registry went"
    );
    assert_eq!(
        env.values("www", "A"),
        ["192.0.2.7", "192.0.2.8", "192.0.2.99"]
    );

    let out = run_expect(env.dnsreg().arg("-c").arg(&reaper).arg("reap"), 0);
    assert!(
        stdout(&out).contains("p: no expired leases"),
        "{}",
        stdout(&out)
    );

    // The survivors leave cleanly: only the person's records remain.
    for (id, ip) in [("i-live", "192.0.2.8"), ("i-reuse", "192.0.2.7")] {
        run_expect(env.dnsreg().arg("-c").arg(config(id, ip)).arg("leave"), 0);
    }
    assert_eq!(
        env.records(),
        [
            "notes.example.com. TXT \"kept by hand\"",
            "www.example.com. A 192.0.2.99"
        ]
    );
    env
}

#[test]
fn reap_on_cloudflare_removes_only_the_expired_instance() {
    reap_removes_only_the_expired_instance::<CloudflareBackend>();
}

#[test]
fn reap_on_rfc2136_removes_only_the_expired_instance() {
    reap_removes_only_the_expired_instance::<Rfc2136Backend>();
}
