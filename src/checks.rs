//! Health checks (`[[check]]`): the agent publishes records only while every
//! check passes (README.md, "The agent": health checks).
//!
//! Each check runs on its own task at its own interval and keeps its verdict
//! with hysteresis, as load balancers do: a failing check passes after `rise`
//! passes in a row, a passing one fails after `fall` failures in a row. A check
//! starts failing, so a machine is published only once it has proven healthy.
//! The combined verdict goes out on a [`watch`] channel; the agent acts on
//! changes. Between probes the tasks sleep: nothing polls.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until, timeout};

use crate::config::{CheckConfig, Probe};

/// What one check says now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckStatus {
    /// `check[0] (http http://127.0.0.1:8080/healthz)`.
    pub check: String,
    pub passing: bool,
    /// The last probe's result: "HTTP 200", "connection refused", "exit status 1"…
    pub last: String,
    /// How many probes in a row gave the last result.
    pub streak: u32,
    /// Whether the last probe passed: with `passing` false, the check is
    /// rising (`streak` of `rise` passes).
    #[serde(default)]
    pub last_passed: bool,
    /// Passes in a row a failing check needs to pass.
    #[serde(default)]
    pub rise: u32,
}

/// Every check's status; healthy when all pass (and when there are none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub healthy: bool,
    pub checks: Vec<CheckStatus>,
}

impl Verdict {
    /// Whether every check has said which way it goes: it passes, or its
    /// last probe failed. A check not probed yet, or rising (passed, but
    /// fewer than `rise` times), has not.
    pub fn decided(&self) -> bool {
        self.checks
            .iter()
            .all(|c| c.passing || (!c.last.is_empty() && !c.last_passed))
    }

    /// Why the verdict is unhealthy, in one line; empty when healthy.
    pub fn why(&self) -> String {
        self.checks
            .iter()
            .filter(|c| !c.passing)
            .map(|c| {
                if c.last.is_empty() {
                    format!("{}: not yet checked", c.check)
                } else if c.last_passed {
                    format!(
                        "{}: {}, not passing yet ({} of {} in a row)",
                        c.check, c.last, c.streak, c.rise
                    )
                } else {
                    format!("{}: {} ({} in a row)", c.check, c.last, c.streak)
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Starts every check; the receiver sees each change of the combined verdict.
/// The tasks stop when the returned receiver (and its clones) are dropped.
pub fn spawn(checks: &[CheckConfig]) -> watch::Receiver<Verdict> {
    let initial = Verdict {
        healthy: checks.is_empty(),
        checks: checks
            .iter()
            .map(|c| CheckStatus {
                check: format!("{} ({})", c.origin, c.probe),
                passing: false,
                last: String::new(),
                streak: 0,
                last_passed: false,
                rise: c.rise,
            })
            .collect(),
    };
    let (tx, rx) = watch::channel(initial);
    let tx = Arc::new(tx);
    let http = reqwest::Client::builder()
        // Health endpoints answer locally; a redirect elsewhere is not health.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .ok();
    for (i, check) in checks.iter().cloned().enumerate() {
        let tx = tx.clone();
        let http = http.clone();
        tokio::spawn(async move {
            let mut state = Hysteresis::new(check.rise, check.fall);
            let mut next = Instant::now();
            loop {
                sleep_until(next).await;
                next += check.interval;
                let (passed, last) = probe(&check, http.as_ref()).await;
                let (passing, streak) = state.record(passed);
                tx.send_if_modified(|v| {
                    let s = &mut v.checks[i];
                    let changed = s.passing != passing || s.last != last || s.last_passed != passed;
                    s.passing = passing;
                    s.last = last.clone();
                    s.streak = streak;
                    s.last_passed = passed;
                    v.healthy = v.checks.iter().all(|c| c.passing);
                    changed
                });
                if tx.is_closed() {
                    return;
                }
                if next < Instant::now() {
                    // A probe longer than the interval: do not try to catch up.
                    next = Instant::now();
                }
            }
        });
    }
    rx
}

/// Rise/fall counting for one check.
#[derive(Clone, Debug)]
struct Hysteresis {
    rise: u32,
    fall: u32,
    passing: bool,
    /// Consecutive results equal to the last one.
    streak: u32,
    last: Option<bool>,
}

impl Hysteresis {
    fn new(rise: u32, fall: u32) -> Hysteresis {
        Hysteresis {
            rise,
            fall,
            passing: false,
            streak: 0,
            last: None,
        }
    }

    /// Takes one probe result; returns whether the check passes now, and the streak.
    fn record(&mut self, passed: bool) -> (bool, u32) {
        if self.last == Some(passed) {
            self.streak = self.streak.saturating_add(1);
        } else {
            self.streak = 1;
            self.last = Some(passed);
        }
        if passed && !self.passing && self.streak >= self.rise {
            self.passing = true;
        } else if !passed && self.passing && self.streak >= self.fall {
            self.passing = false;
        }
        (self.passing, self.streak)
    }
}

/// Runs one probe within its timeout: (passed, what happened).
async fn probe(check: &CheckConfig, http: Option<&reqwest::Client>) -> (bool, String) {
    let limit = check.timeout;
    let outcome = timeout(limit, async {
        match &check.probe {
            Probe::Http(url) => {
                let Some(client) = http else {
                    return (false, "no HTTP client could be built".to_string());
                };
                match client.get(url).send().await {
                    Ok(r) => (
                        r.status().is_success(),
                        format!("HTTP {}", r.status().as_u16()),
                    ),
                    Err(e) => (false, short_error(&e)),
                }
            }
            Probe::Tcp(addr) => {
                match tokio::net::TcpStream::connect((addr.host.as_str(), addr.port)).await {
                    Ok(_) => (true, "connected".to_string()),
                    Err(e) => (false, e.to_string()),
                }
            }
            Probe::Exec(argv) => exec(argv).await,
        }
    })
    .await;
    outcome.unwrap_or_else(|_| {
        (
            false,
            format!("no answer within {}", humantime::format_duration(limit)),
        )
    })
}

/// What of the agent's environment an `exec` check sees: enough to find and
/// run a program, nothing more. The agent's environment holds provider
/// secrets (CLOUDFLARE_API_TOKEN, AWS_SECRET_ACCESS_KEY from dnsreg.env) and
/// systemd's NOTIFY_SOCKET, which are no check's business.
const EXEC_ENV: [&str; 4] = ["PATH", "LANG", "LC_ALL", "TZ"];

/// Runs a program (no shell); exit status 0 passes. Killed if it outlives the
/// timeout (the future is dropped, and `kill_on_drop` does the rest).
async fn exec(argv: &[String]) -> (bool, String) {
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.env_clear();
    for key in EXEC_ENV {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    if std::env::var_os("PATH").is_none() {
        cmd.env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        );
    }
    cmd.args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    match cmd.output().await {
        Ok(out) if out.status.success() => (true, "exit status 0".to_string()),
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr);
            let first = err.lines().next().unwrap_or("").trim();
            let status = match out.status.code() {
                Some(code) => format!("exit status {code}"),
                None => "killed by a signal".to_string(),
            };
            if first.is_empty() {
                (false, status)
            } else {
                (false, format!("{status}: {}", truncate(first, 200)))
            }
        }
        Err(e) => (false, format!("cannot run {}: {e}", argv[0])),
    }
}

fn short_error(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s = format!("{s}: {inner}");
        source = inner.source();
    }
    truncate(&s, 300)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Waits until the verdict changes; `None` when the checks are gone.
pub async fn changed(rx: &mut watch::Receiver<Verdict>) -> Option<Verdict> {
    rx.changed().await.ok()?;
    Some(rx.borrow_and_update().clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::config::ServerAddr;

    #[test]
    fn rise_and_fall_give_hysteresis() {
        let mut h = Hysteresis::new(2, 3);
        // Starts failing; one pass is not enough, two are.
        assert_eq!(h.record(true), (false, 1));
        assert_eq!(h.record(true), (true, 2));
        // Two failures keep it passing, the third fails it.
        assert_eq!(h.record(false), (true, 1));
        assert_eq!(h.record(false), (true, 2));
        assert_eq!(h.record(true), (true, 1));
        assert_eq!(h.record(false), (true, 1));
        assert_eq!(h.record(false), (true, 2));
        assert_eq!(h.record(false), (false, 3));
        // And back up after two passes.
        assert_eq!(h.record(true), (false, 1));
        assert_eq!(h.record(true), (true, 2));
    }

    fn check(probe: Probe) -> CheckConfig {
        CheckConfig {
            origin: "check[0]".into(),
            probe,
            interval: Duration::from_millis(50),
            timeout: Duration::from_millis(500),
            rise: 1,
            fall: 1,
        }
    }

    #[tokio::test]
    async fn probes_say_what_happened() {
        let (ok, what) = probe(&check(Probe::Exec(vec!["/bin/true".into()])), None).await;
        assert!(ok, "{what}");
        let argv = vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo broken >&2; exit 3".into(),
        ];
        let (ok, what) = probe(&check(Probe::Exec(argv)), None).await;
        assert!(!ok);
        assert_eq!(what, "exit status 3: broken");
        let (ok, what) = probe(&check(Probe::Exec(vec!["/nonexistent/x".into()])), None).await;
        assert!(!ok);
        assert!(what.starts_with("cannot run /nonexistent/x"), "{what}");
        // A program that outlives the timeout fails the probe and is killed.
        let slow = check(Probe::Exec(vec!["/bin/sleep".into(), "5".into()]));
        let started = std::time::Instant::now();
        let (ok, what) = probe(&slow, None).await;
        assert!(!ok);
        assert!(what.starts_with("no answer within"), "{what}");
        assert!(started.elapsed() < Duration::from_secs(2));

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tcp = |port| {
            check(Probe::Tcp(
                ServerAddr::parse(&format!("127.0.0.1:{port}")).unwrap(),
            ))
        };
        assert!(probe(&tcp(port), None).await.0);
        drop(listener);
        let (ok, what) = probe(&tcp(port), None).await;
        assert!(!ok);
        assert!(what.to_lowercase().contains("refused"), "{what}");
    }

    #[tokio::test]
    async fn the_verdict_follows_the_checks() {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("healthy");
        let argv = vec![
            "/usr/bin/test".into(),
            "-e".into(),
            flag.display().to_string(),
        ];
        let mut rx = spawn(&[check(Probe::Exec(argv))]);
        assert!(!rx.borrow().healthy);
        // Failing at first: it says why.
        let v = changed(&mut rx).await.unwrap();
        assert!(!v.healthy);
        assert!(v.decided(), "failed once: failing");
        assert!(v.why().contains("exit status 1"), "{}", v.why());
        std::fs::write(&flag, "").unwrap();
        let v = loop {
            let v = changed(&mut rx).await.unwrap();
            if v.healthy {
                break v;
            }
        };
        assert_eq!(v.why(), "");
        assert!(v.decided());
        std::fs::remove_file(&flag).unwrap();
        loop {
            if !changed(&mut rx).await.unwrap().healthy {
                break;
            }
        }
        // No checks: healthy from the start.
        assert!(spawn(&[]).borrow().healthy);
    }

    /// A check that has passed once of the two passes `rise` wants is not
    /// failing: it says it is not passing yet, and how far it is.
    #[tokio::test]
    async fn a_rising_check_says_it_is_not_passing_yet() {
        let rising = CheckConfig {
            rise: 2,
            interval: Duration::from_secs(3600),
            ..check(Probe::Exec(vec!["/bin/true".into()]))
        };
        let mut rx = spawn(&[rising]);
        assert!(!rx.borrow().decided(), "not probed yet");
        let v = changed(&mut rx).await.unwrap();
        assert!(!v.healthy);
        assert!(!v.decided(), "rising");
        assert_eq!(
            v.why(),
            "check[0] (exec /bin/true): exit status 0, not passing yet (1 of 2 in a row)"
        );
        // The status file written before these fields existed still reads.
        let old: CheckStatus = serde_json::from_str(
            r#"{"check": "check[0]", "passing": false, "last": "HTTP 500", "streak": 3}"#,
        )
        .unwrap();
        assert!(!old.last_passed);
    }
}
