//! Crash safety: SIGKILL at any point of a join or a leave, then the next run
//! converges to exactly the right records, with no duplicates and nothing of an
//! old address left behind (SPEC §3, the state file written atomically).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::bind::Bind;

use crate::util::{Env, isolate, run_expect};

/// A small deterministic generator: the kill points differ per round but a
/// failure can be replayed from the seed it prints.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

fn seed() -> u64 {
    std::env::var("DNSREG_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

/// Starts `c`, kills it with SIGKILL after `after` (if still running).
/// Returns whether it was killed before finishing.
fn run_and_kill(mut c: Command, after: Duration) -> bool {
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while start.elapsed() < after {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let killed = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    killed
}

/// The loop for one provider: `cmd(action, ip)` makes the command, `zone()`
/// reads the zone as sorted lines, `expect(ip)` is what the zone must hold
/// after a completed join at `ip`.
fn crash_loop(
    rounds: u32,
    max_kill_ms: u64,
    cmd: &dyn Fn(&str, &str) -> Command,
    zone: &dyn Fn() -> Vec<String>,
    expect: &dyn Fn(&str) -> Vec<String>,
) {
    let seed = seed();
    eprintln!("crash loop seed {seed} (DNSREG_CRASH_SEED={seed} replays it)");
    let mut rng = Lcg(seed);
    let mut killed = 0;
    for round in 0..rounds {
        // Each round the machine may have a new address (EC2 stop/start).
        let ip = format!("192.0.2.{}", 1 + rng.next(4));
        let action = if rng.next(3) == 0 { "leave" } else { "join" };
        let after = Duration::from_millis(rng.next(max_kill_ms));
        if run_and_kill(cmd(action, &ip), after) {
            killed += 1;
        }
        // The next complete run converges, whatever was cut short.
        run_expect(&mut cmd("join", &ip), 0);
        assert_eq!(
            zone(),
            expect(&ip),
            "round {round} (seed {seed}): {action} killed after {after:?}, then join at {ip}"
        );
    }
    run_expect(&mut cmd("leave", "192.0.2.1"), 0);
    assert_eq!(
        zone(),
        Vec::<String>::new(),
        "seed {seed}: leave after the loop"
    );
    eprintln!("{killed} of {rounds} runs killed mid-way");
    assert!(
        killed >= rounds / 4,
        "too few runs were cut short ({killed}) to mean anything"
    );
}

#[test]
fn sigkill_at_random_points_of_route53_joins_and_leaves_never_leaves_a_mess() {
    let env = Env::new();
    // Slow enough that kills land before, during and after the change batch.
    env.r53.set_insync_after(Duration::from_millis(150));
    crash_loop(
        30,
        400,
        &|action, ip| {
            env.instance(
                action,
                "i-crash",
                ip,
                "--service _v1._theservice._tcp --port 8080 --name www",
            )
        },
        &|| {
            let mut v = env.records();
            v.sort();
            v
        },
        &|ip| {
            let dashed = ip.replace('.', "-");
            let mut v = vec![
                format!("{dashed}.example.com. A {ip}"),
                format!("_v1._theservice._tcp.example.com. SRV 0 0 8080 {dashed}.example.com."),
                format!("www.example.com. A {ip}"),
            ];
            let reg = [
                format!("\"dnsreg1 {dashed}.example.com. A {ip}\""),
                format!(
                    "\"dnsreg1 _v1._theservice._tcp.example.com. SRV 0 0 8080 {dashed}.example.com.\""
                ),
                format!("\"dnsreg1 www.example.com. A {ip}\""),
            ];
            let mut reg = reg.to_vec();
            reg.sort();
            v.push(format!(
                "i-crash._dnsreg.example.com. TXT {}",
                reg.join(" | ")
            ));
            v.sort();
            v
        },
    );
}

#[test]
fn sigkill_at_random_points_of_rfc2136_joins_and_leaves_never_leaves_a_mess() {
    let bind = Bind::start();
    let dir = tempfile::tempdir().unwrap();
    crash_loop(
        40,
        20,
        &|action, ip| {
            let mut c = Command::new(env!("CARGO_BIN_EXE_dnsreg"));
            isolate(&mut c, dir.path());
            c.args([
                action,
                "--provider",
                "rfc2136",
                "--zone",
                "example.com",
                "--server",
            ])
            .arg(bind.addr().to_string())
            .arg("--tsig-key-file")
            .arg(bind.key_file())
            .args([
                "--service",
                "_v1._theservice._tcp",
                "--port",
                "8080",
                "--name",
                "www",
            ])
            .args([
                "--metadata",
                "none",
                "--instance-id",
                "i-crash",
                "--ipv4",
                ip,
            ])
            .arg("--state-dir")
            .arg(dir.path().join("state"));
            c
        },
        &|| bind.records(),
        &|ip| {
            let dashed = ip.replace('.', "-");
            let mut v = vec![
                format!("{dashed}.example.com. 60 A {ip}"),
                format!("_v1._theservice._tcp.example.com. 60 SRV 0 0 8080 {dashed}.example.com."),
                format!("www.example.com. 60 A {ip}"),
                format!(
                    "i-crash._dnsreg.example.com. 60 TXT \"dnsreg1 {dashed}.example.com. A {ip}\""
                ),
                format!(
                    "i-crash._dnsreg.example.com. 60 TXT \"dnsreg1 _v1._theservice._tcp.example.com. SRV 0 0 8080 {dashed}.example.com.\""
                ),
                format!("i-crash._dnsreg.example.com. 60 TXT \"dnsreg1 www.example.com. A {ip}\""),
            ];
            v.sort();
            v
        },
    );
}
