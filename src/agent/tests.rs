//! The loop driven in-process: shutdown is a oneshot, SIGHUP a channel send,
//! the configuration file a string the test swaps. Real time, short intervals:
//! the stand-ins answer over loopback, and tokio's paused clock would jump
//! past the HTTP timeouts while a request is in flight.

use std::path::Path;
use std::sync::{Arc, Mutex};

use testkit::cloudflare::CloudflareServer;
use testkit::imds::{AwsInstance, ImdsServer};
use tokio::sync::oneshot;
use tokio::time::timeout;

use super::status::STATUS_FILE;
use super::*;

const TOKEN: &str = "agent-test-token";

fn config_text(cf: &CloudflareServer, imds: &ImdsServer, dir: &Path, with_api: bool) -> String {
    let api = if with_api {
        "[[round_robin]]\nproviders = [\"cf\"]\nname = \"api\"\n"
    } else {
        ""
    };
    format!(
        r#"
[instance]
metadata = "aws"
metadata_endpoint = "{imds}"

[providers.cf]
type = "cloudflare"
zone = "example.com"
endpoint = "{cf}"
token_file = "{token}"

[[round_robin]]
providers = ["cf"]
name = "www"
{api}
[agent]
reconcile_interval = "1s"
notice_interval = "1s"
stop_timeout = "10s"
state_dir = "{state}"
"#,
        imds = imds.url(),
        cf = cf.url(),
        token = dir.join("token").display(),
        state = dir.join("state").display(),
    )
}

/// What the agent logs, as a user reads it on stderr.
#[derive(Clone, Default)]
struct Logged(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logged {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logged {
    /// Collects this thread's log (the test's runtime and the agent's
    /// task run on it) until the guard is dropped.
    fn start(&self) -> tracing::subscriber::DefaultGuard {
        let into = self.clone();
        tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_writer(move || into.clone())
                .with_ansi(false)
                .finish(),
        )
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(25)).await;
    }
}

#[test]
fn a_crowd_s_confirmations_wait_until_it_is_through_and_spread_thinly_after() {
    let s = Duration::from_secs;
    // Alone: as soon as Route53 usually has the change live.
    assert_eq!(confirm_not_before(s(0), s(0)), s(0));
    // join_spread or the throttled time, whichever is longer, to twenty
    // times that, at random, reaching both ends.
    for (spread, throttled, lo) in [
        (s(100), s(0), s(100)),
        (s(100), s(150), s(150)),
        (s(0), s(40), s(40)),
    ] {
        let draws: Vec<Duration> = (0..500)
            .map(|_| confirm_not_before(spread, throttled))
            .collect();
        let (min, max) = (*draws.iter().min().unwrap(), *draws.iter().max().unwrap());
        assert!(
            min >= lo && max <= lo * 20,
            "{spread:?}, {throttled:?}: {min:?}..{max:?}"
        );
        assert!(
            min < lo * 2 && max > lo * 18,
            "{spread:?}, {throttled:?}: {min:?}..{max:?}"
        );
    }
}

/// An agent run in-process against the Cloudflare and metadata
/// stand-ins, publishing `www` and `api`: its configuration text (what a
/// SIGHUP reads), its shutdown and SIGHUP senders, and its task.
struct Running {
    dir: tempfile::TempDir,
    cf: CloudflareServer,
    zone: String,
    imds: ImdsServer,
    text: Arc<Mutex<String>>,
    stop: oneshot::Sender<()>,
    hup: mpsc::UnboundedSender<()>,
    agent: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    fn start() -> Running {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), TOKEN).unwrap();
        let cf = CloudflareServer::start();
        let zone = cf.create_zone("example.com");
        cf.add_token(TOKEN, true);
        let imds = ImdsServer::start(AwsInstance::default());
        let text = Arc::new(Mutex::new(config_text(&cf, &imds, dir.path(), true)));
        let first = crate::config::parse("dnsreg.toml", &text.lock().unwrap()).unwrap();
        let load = {
            let text = Arc::clone(&text);
            move || Ok(crate::config::parse("dnsreg.toml", &text.lock().unwrap())?)
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let (hup, reload) = mpsc::unbounded_channel();
        let agent = tokio::spawn(run(
            first,
            load,
            async {
                let _ = stopped.await;
            },
            reload,
        ));
        Running {
            dir,
            cf,
            zone,
            imds,
            text,
            stop,
            hup,
            agent,
        }
    }

    fn values(&self, name: &str) -> Vec<String> {
        self.cf.values(&self.zone, name, "A")
    }

    async fn published_both(&self) {
        wait_until("both names published", || {
            self.values("www.example.com") == ["203.0.113.7"]
                && self.values("api.example.com") == ["203.0.113.7"]
        })
        .await;
    }

    /// The configuration file now says `text` (or the usual one, with or
    /// without `api`), and a SIGHUP is sent.
    fn sighup_with(&self, text: Option<&str>, with_api: bool) {
        *self.text.lock().unwrap() = match text {
            Some(t) => t.to_string(),
            None => config_text(&self.cf, &self.imds, self.dir.path(), with_api),
        };
        self.hup.send(()).unwrap();
    }

    /// The injected shutdown: the agent leaves and returns Ok, and
    /// nothing of it is left.
    async fn stop_cleanly(self) {
        self.stop.send(()).unwrap();
        let result = timeout(Duration::from_secs(15), self.agent)
            .await
            .unwrap()
            .unwrap();
        assert!(result.is_ok(), "{result:?}");
        let left = self.cf.records(&self.zone);
        assert!(left.is_empty(), "{left:?}");
    }
}

#[tokio::test]
async fn reloads_and_shutdown_drive_the_loop() {
    let logged = Logged::default();
    let _log = logged.start();
    let r = Running::start();
    let state = r.dir.path().join("state");
    r.published_both().await;
    wait_until("the status file says published", || {
        AgentStatus::read(&state).is_some_and(|s| s.state == State::Published)
    })
    .await;

    // A broken file is refused: the running configuration and records
    // stay. Once the agent has said so, the reload was handled.
    r.sighup_with(Some("[[round_robin]\n"), true);
    wait_until("the reload refused", || {
        logged
            .text()
            .contains("reload refused, keeping the running configuration")
    })
    .await;
    assert_eq!(r.values("api.example.com"), ["203.0.113.7"]);
    assert_eq!(r.values("www.example.com"), ["203.0.113.7"]);
    assert!(!r.agent.is_finished());
    // The reconciles after it (every second) run with the configuration
    // kept: the status file, written after each, comes back saying
    // published, and both names are still there.
    std::fs::remove_file(state.join(STATUS_FILE)).unwrap();
    wait_until("a reconcile after the refused reload", || {
        AgentStatus::read(&state).is_some()
    })
    .await;
    let status = AgentStatus::read(&state).unwrap();
    assert_eq!(status.state, State::Published, "{status:?}");
    assert_eq!(r.values("api.example.com"), ["203.0.113.7"]);
    assert_eq!(r.values("www.example.com"), ["203.0.113.7"]);

    // A good one that drops `api`: only that name goes.
    r.sighup_with(None, false);
    wait_until("api removed", || r.values("api.example.com").is_empty()).await;
    assert_eq!(r.values("www.example.com"), ["203.0.113.7"]);

    // The injected shutdown: leave, remove the status file, return Ok.
    r.stop_cleanly().await;
    assert!(AgentStatus::read(&state).is_none());
}

/// A SIGHUP during a sync that hangs (a provider that does not answer)
/// is read at once: the sync is dropped, and the next one runs with the
/// new configuration while the hung request still hangs.
#[tokio::test]
async fn a_sighup_during_a_hung_sync_is_read_at_once() {
    let logged = Logged::default();
    let _log = logged.start();
    let r = Running::start();
    r.published_both().await;
    // The next reconcile's first request hangs.
    r.cf.hold(1, testkit::Requests::Any);
    wait_until("a request held", || r.cf.is_holding()).await;
    r.sighup_with(None, false);
    wait_until("api removed by a sync with the new configuration", || {
        r.values("api.example.com").is_empty()
    })
    .await;
    assert!(r.cf.is_holding(), "the hung request still hangs");
    assert!(
        logged
            .text()
            .contains("a sync was under way; it is dropped for the SIGHUP"),
        "{}",
        logged.text()
    );
    assert_eq!(r.values("www.example.com"), ["203.0.113.7"]);
    r.cf.release(testkit::Release::Drop);
    r.stop_cleanly().await;
}

#[tokio::test]
async fn a_shutdown_while_metadata_is_unreachable_returns_at_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), TOKEN).unwrap();
    let cf = CloudflareServer::start();
    cf.create_zone("example.com");
    let imds = ImdsServer::start(AwsInstance::default());
    let mut text = config_text(&cf, &imds, dir.path(), false);
    // Nothing listens here (bound, not listening: connections are
    // refused, and the port stays ours): identification keeps retrying.
    let dead = tokio::net::TcpSocket::new_v4().unwrap();
    dead.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    text = text.replace(&imds.url(), &dead_url);
    let config = crate::config::parse("dnsreg.toml", &text).unwrap();
    let (_hup, reload) = mpsc::unbounded_channel();
    let started = Instant::now();
    let result = run(
        config,
        || anyhow::bail!("not reloaded"),
        sleep(Duration::from_millis(1500)),
        reload,
    )
    .await;
    assert!(result.is_ok(), "{result:?}");
    // It kept trying until told to stop (not giving up on its own), then
    // returned without finishing a retry's wait (up to several seconds).
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(
        cf.stats().total(),
        0,
        "nothing was written without an identity"
    );
}
