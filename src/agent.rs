//! `dnsreg run`: the agent's life.
//!
//! identify → wait until the health checks pass → join → READY=1 → then, until
//! told to stop, keep the records true:
//! - every `reconcile_interval`: identify again (addresses change) and join
//!   again (idempotent: re-creates what someone deleted, removes an old
//!   address), or leave again while withdrawn;
//! - a health verdict that changes: leave (the agent keeps running) or join;
//! - a termination or preemption notice from the cloud: leave at once and stay
//!   down until the SIGTERM that follows;
//! - SIGHUP: read the configuration again; a bad one is refused and the old one
//!   kept; a good one is applied (providers no longer configured are left,
//!   records no longer configured removed by the next join);
//! - shutdown: STOPPING=1, leave, wait `drain`, all within `stop_timeout`.
//!
//! Shutdown and reload are arguments, not signal handlers, so tests drive the
//! loop with any future and channel. Nothing polls between events: the task
//! sleeps until the next reconcile, check result, notice poll or signal.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep, sleep_until, timeout};

use crate::checks::{self, Verdict};
use crate::config::{Config, ConfigError};
use crate::engine::{self, Action, Engine, print_reports};
use crate::metadata::{Identity, Notice, identify, notice};
use crate::registry::unix_now;
use crate::retry::Backoff;

/// How long to keep retrying a failed sync, or identification, before each new try.
const RETRY: Backoff = Backoff {
    base: Duration::from_secs(1),
    cap: Duration::from_secs(30),
    attempts: u32::MAX,
};

/// The file in the state directory where the running agent says what it is
/// doing, for `dnsreg status`.
const STATUS_FILE: &str = "agent.json";

fn notify(state: &[sd_notify::NotifyState]) {
    // Outside systemd (no NOTIFY_SOCKET) this does nothing.
    if let Err(e) = sd_notify::notify(state) {
        tracing::debug!("sd_notify: {e}");
    }
}

/// What the agent is doing, in a word (the status file's `state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Identifying the instance, or waiting for the health checks.
    Starting,
    /// A sync to publish is under way.
    Publishing,
    /// Published, and kept true.
    Published,
    /// Records removed while the health checks fail.
    Withdrawn,
    /// Records removed for good after a termination notice.
    Terminating,
    /// SIGTERM: leaving, then draining.
    Stopping,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Publishing => "publishing",
            State::Published => "published",
            State::Withdrawn => "withdrawn",
            State::Terminating => "terminating",
            State::Stopping => "stopping",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the agent is doing, as `dnsreg status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub pid: u32,
    pub state: State,
    /// Why, in one line (failing checks, the notice, the last error).
    pub reason: String,
    /// Each health check's last result.
    #[serde(default)]
    pub checks: Vec<checks::CheckStatus>,
    /// Unix seconds of this status.
    pub since: u64,
}

impl AgentStatus {
    /// The running agent's status in `state_dir`, if an agent is running there.
    pub fn read(state_dir: &Path) -> Option<AgentStatus> {
        let bytes = std::fs::read(state_dir.join(STATUS_FILE)).ok()?;
        let status: AgentStatus = serde_json::from_slice(&bytes).ok()?;
        // A file left by an agent that is gone says nothing about now.
        Path::new(&format!("/proc/{}", status.pid))
            .exists()
            .then_some(status)
    }

    /// Says at once what a new mode means (a sync for it may take a while:
    /// up is "publishing" until it is done).
    fn show(&mut self, mode: &Mode, state_dir: &Path) {
        (self.state, self.reason) = describe(mode);
        if *mode == Mode::Up {
            self.state = State::Publishing;
        }
        self.since = unix_now();
        self.write(state_dir);
    }

    fn write(&self, state_dir: &Path) {
        // Every change of the agent's status passes here: the metrics of the
        // mode and the checks follow it, and the textfile is written anew
        // (after each sync and at each change of mode).
        let metrics = crate::metrics::get();
        metrics.mode(match self.state {
            State::Published => "publishing",
            other => other.as_str(),
        });
        metrics.checks(&self.checks);
        crate::metrics::flush();
        let path = state_dir.join(STATUS_FILE);
        let tmp = state_dir.join(format!(".{STATUS_FILE}.tmp"));
        let done = crate::state::create_private_dir(state_dir)
            .and_then(|()| crate::state::create_private_file(&tmp))
            .and_then(|mut f| {
                std::io::Write::write_all(
                    &mut f,
                    &serde_json::to_vec_pretty(self).unwrap_or_default(),
                )
            })
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = done {
            tracing::debug!("cannot write {}: {e}", path.display());
        }
        // The same line for `systemctl status`.
        let line = match self.reason.as_str() {
            "" => self.state.to_string(),
            why => format!("{}: {why}", self.state),
        };
        notify(&[sd_notify::NotifyState::Status(&line)]);
    }
}

impl std::fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "agent (pid {}): {}", self.pid, self.state)?;
        if !self.reason.is_empty() {
            write!(f, ": {}", self.reason)?;
        }
        Ok(())
    }
}

/// Where the agent stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Mode {
    /// Records should be published (healthy, no notice).
    Up,
    /// Records should be absent while the agent runs: failing checks.
    Withdrawn(String),
    /// A notice came: records removed for good; waiting for the stop.
    Terminating(String),
}

/// Runs the agent until `shutdown` completes, then leaves. `reload` delivers
/// SIGHUPs; `load` reads the configuration again for them. Returns an error
/// when leaving failed or timed out, so that the exit code tells.
pub async fn run(
    config: Config,
    load: impl Fn() -> Result<Config, anyhow::Error>,
    shutdown: impl Future<Output = ()>,
    mut reload: mpsc::UnboundedReceiver<()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    let started = Instant::now();
    let status = AgentStatus {
        pid: std::process::id(),
        state: State::Starting,
        reason: "identifying the instance".into(),
        checks: Vec::new(),
        since: unix_now(),
    };
    // Stopped and removed when `run` returns, however it returns.
    let _metrics = crate::metrics::Outputs::start(&config.agent).await?;
    status.write(&config.agent.state_dir);

    let Some(identity) = identify_until(&config, &mut shutdown).await else {
        return Ok(());
    };
    tracing::info!(instance = %identity.instance_id, cloud = %identity.cloud, "identified");
    let mut engine = Engine::new(config.clone(), &identity).context("planning records")?;
    if config.lease.is_some_and(|l| l.reap) {
        tokio::select! {
            r = engine.check_reap_rights() => r?,
            () = &mut shutdown => return Ok(()),
        }
    }
    let mut agent = Agent::new(config, identity, engine, status);
    'agent: loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(()) = reload.recv() => agent.reload(&load).await,
            Some(verdict) = changed_verdict(&mut agent.health, !agent.at.config.checks.is_empty()) => {
                agent.at.verdict(&verdict);
            }
            n = next_notice(&mut agent.at.notices_at, &agent.at.config, &agent.at.identity), if agent.at.watches_notices() => {
                agent.at.notice(&n);
            }
            () = sleep_until(agent.at.next_ping), if agent.at.watchdog.is_some() => agent.at.ping(),
            () = sleep_until(agent.at.next_extend), if !agent.at.ready => agent.at.extend_start(),
            () = sleep_until(agent.at.next_confirm.unwrap_or_else(far_future)), if agent.at.next_confirm.is_some() => {
                agent.at.next_confirm = alive_while(agent.at.watchdog, confirm(&mut agent.engine)).await;
            }
            () = sleep_until(agent.at.next_sync) => {
                match agent.sync(&mut shutdown, &mut reload).await {
                    Synced::Done => {}
                    // A notice, a verdict or a SIGHUP came during the sync: it
                    // was dropped, and the loop goes on with the new mode.
                    Synced::Superseded => continue 'agent,
                    Synced::Reload => agent.reload(&load).await,
                    Synced::Shutdown => break,
                    Synced::Failed(e) => return Err(e),
                }
            }
        }
    }
    agent.stop(started).await
}

/// Identifies the instance, retrying until metadata answers; `None` when
/// told to stop first.
async fn identify_until(
    config: &Config,
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Option<Identity> {
    let mut attempt = 0;
    loop {
        tokio::select! {
            got = identify(&config.instance) => match got {
                Ok(identity) => return Some(identity),
                Err(e) => {
                    tracing::warn!("{e}; retrying");
                    notify(&[sd_notify::NotifyState::Status(&format!("waiting for metadata: {e}"))]);
                }
            },
            () = &mut *shutdown => return None,
        }
        tokio::select! {
            () = sleep(RETRY.delay(attempt)) => attempt += 1,
            () = &mut *shutdown => return None,
        }
    }
}

/// How a sync ended.
enum Synced {
    Done,
    /// Dropped for a notice or a verdict that changed the mode.
    Superseded,
    /// Dropped for a SIGHUP, to be read now.
    Reload,
    /// Dropped for the stop.
    Shutdown,
    /// The engine could not sync at all (not a provider's failure: those
    /// are reported and retried).
    Failed(anyhow::Error),
}

/// The running agent: its engine and health checks, and where it stands.
/// The loop in [`run`] waits for the next event and calls one method for it.
struct Agent {
    engine: Engine,
    health: watch::Receiver<Verdict>,
    at: Standing,
}

/// Everything the agent knows but its engine: split off so that the events
/// that come while a sync holds the engine (a notice, a verdict, a watchdog
/// ping) can be followed without waiting for it.
struct Standing {
    config: Config,
    identity: Identity,
    status: AgentStatus,
    mode: Mode,
    /// READY=1 was sent.
    ready: bool,
    /// Failed syncs in a row: the retry's backoff step.
    attempt: u32,
    synced_once: bool,
    next_sync: Instant,
    notices_at: Instant,
    next_confirm: Option<Instant>,
    /// Until READY=1, systemd's start timeout is pushed back while the loop
    /// runs: a boot storm may take minutes to get through a provider's rate
    /// limit, and a start that never ends is a loop that stopped running.
    next_extend: Instant,
    /// With WatchdogSec= in the unit: WATCHDOG=1 from this loop, so that a
    /// loop that stopped is restarted, while a sync held up by a throttled
    /// provider (the loop still runs around it) is not mistaken for one.
    watchdog: Option<Duration>,
    next_ping: Instant,
}

impl Agent {
    fn new(config: Config, identity: Identity, engine: Engine, status: AgentStatus) -> Agent {
        let health = checks::spawn(&config.checks);
        if !config.checks.is_empty() {
            tracing::info!(
                checks = config.checks.len(),
                "waiting for the health checks to pass before publishing"
            );
        }
        let mode = mode_for(&health.borrow());
        // A fleet booting together: spread the first joins over `join_spread`.
        let spread = crate::retry::Backoff {
            base: config.agent.join_spread,
            cap: config.agent.join_spread,
            attempts: 1,
        }
        .delay(0);
        if !spread.is_zero() {
            tracing::info!(
                "joining in {} (join_spread: a fleet starting together reaches the provider at its rate)",
                humantime::format_duration(Duration::from_millis(
                    u64::try_from(spread.as_millis()).unwrap_or(0)
                ))
            );
        }
        let now = Instant::now();
        Agent {
            engine,
            health,
            at: Standing {
                config,
                identity,
                status,
                mode,
                ready: false,
                attempt: 0,
                synced_once: false,
                next_sync: now + spread,
                notices_at: now,
                next_confirm: None,
                next_extend: now,
                watchdog: watchdog_period(),
                next_ping: now,
            },
        }
    }

    /// SIGHUP: the configuration read again; a bad one is refused and the
    /// running one kept.
    async fn reload(&mut self, load: &impl Fn() -> Result<Config, anyhow::Error>) {
        let at = &mut self.at;
        match alive_while(
            at.watchdog,
            reload_config(load, &at.config, &mut self.engine, &at.identity),
        )
        .await
        {
            Ok(Some(new)) => {
                if new.checks != at.config.checks {
                    self.health = checks::spawn(&new.checks);
                }
                at.config = new;
                at.next_sync = Instant::now();
            }
            Ok(None) => {}
            Err(e) => tracing::error!("reload refused, keeping the running configuration: {e:#}"),
        }
    }

    /// The reconcile: identify again (after the first), then join or leave
    /// as the mode says, while following the events that cannot wait for it.
    async fn sync(
        &mut self,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
        reload: &mut mpsc::UnboundedReceiver<()>,
    ) -> Synced {
        if self.at.synced_once && self.at.mode == Mode::Up {
            self.reidentify().await;
        }
        let at = &mut self.at;
        let action = if at.mode == Mode::Up {
            Action::Join
        } else {
            Action::Leave
        };
        let interval = at.interval();
        let has_checks = !at.config.checks.is_empty();
        let watch_notices = at.watches_notices();
        // A termination notice, a health verdict that changes what should be
        // published, a SIGHUP or the stop acts at once, even while a sync is
        // held up by a throttled or silent provider: the sync is dropped
        // (every write is atomic and conditional, and the state file is
        // written around each; the next sync starts from what is there).
        let started = Instant::now();
        let reports = {
            let sync = self
                .engine
                .sync(action, interval.max(Duration::from_secs(60)));
            tokio::pin!(sync);
            loop {
                tokio::select! {
                    biased;
                    () = &mut *shutdown => return Synced::Shutdown,
                    r = &mut sync => match r {
                        Ok(reports) => break reports,
                        Err(e) => return Synced::Failed(e.into()),
                    },
                    () = sleep_until(at.next_ping), if at.watchdog.is_some() => at.ping(),
                    n = next_notice(&mut at.notices_at, &at.config, &at.identity), if watch_notices => {
                        tracing::info!("a sync was under way; it is dropped for the notice");
                        at.notice(&n);
                        return Synced::Superseded;
                    }
                    Some(verdict) = changed_verdict(&mut self.health, has_checks) => {
                        if at.verdict(&verdict) {
                            tracing::info!("a sync was under way; it is dropped for the new verdict");
                            return Synced::Superseded;
                        }
                    }
                    Some(()) = reload.recv() => {
                        tracing::info!("a sync was under way; it is dropped for the SIGHUP");
                        return Synced::Reload;
                    }
                }
            }
        };
        let ok = print_reports(action, &reports);
        let first = !self.at.synced_once;
        self.at.synced_once = true;
        if reports
            .iter()
            .any(|r| r.result.as_ref().is_ok_and(|o| o.change.is_some()))
        {
            self.schedule_confirmation(started, first);
        }
        let reap_again = if ok {
            match self.reap(shutdown).await {
                Some(more) => more,
                None => return Synced::Shutdown,
            }
        } else {
            false
        };
        self.at.synced(
            &reports,
            ok,
            started,
            self.engine.busy(Duration::from_secs(60)),
        );
        if reap_again {
            // The reap ran out of its time with leases still to reap (the
            // provider throttling a stopped fleet's leaves): sync and reap
            // again soon instead of a whole interval later. Measured: with
            // reaping only every 20 s and for 10 s at most, three reapers
            // took 95 to 136 s to remove what 200 machines stopped at once
            // left, for leases of 60 s.
            self.at.next_sync = self.at.next_sync.min(Instant::now() + REAP_AGAIN);
        }
        Synced::Done
    }

    /// Identifies the instance again (addresses change), keeping the last
    /// known addresses when metadata does not answer.
    async fn reidentify(&mut self) {
        let at = &mut self.at;
        match alive_while(at.watchdog, identify(&at.config.instance)).await {
            Ok(new) => {
                match self.engine.set_identity(&new) {
                    Ok(true) => {
                        tracing::info!(ipv4 = %self.engine.vars().ipv4, "address changed; replacing the old records")
                    }
                    Ok(false) => {}
                    Err(e) => tracing::error!("{e}"),
                }
                at.identity = new;
            }
            Err(e) => tracing::warn!("{e}; keeping the last known addresses"),
        }
    }

    /// Reaps expired peers, where this agent reaps, after a sync that
    /// succeeded: this instance's own lease is safe then (the sync renewed
    /// it), and it reaps for at most a sixth of the lease, so that the next
    /// renewal comes in time. Measured: reapers whose reaping held the loop
    /// while a scale-in throttled the account let their own leases run out,
    /// and were reaped by each other. Whether it ran out of time with more
    /// to reap; `None` when the stop came first.
    async fn reap(
        &mut self,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Option<bool> {
        let at = &self.at;
        let Some(lease) = at.config.lease.filter(|l| l.reap && at.mode == Mode::Up) else {
            return Some(false);
        };
        let reaped = tokio::select! {
            r = alive_while(at.watchdog, self.engine.reap((lease.ttl / 6).max(Duration::from_secs(10)))) => r,
            () = &mut *shutdown => return None,
        };
        engine::print_reaped_quietly(&reaped);
        crate::metrics::get().reaped(
            reaped
                .iter()
                .filter_map(|r| r.result.as_ref().ok())
                .map(Vec::len)
                .sum(),
        );
        Some(reaped.iter().any(|r| r.out_of_time))
    }

    /// Route53 takes up to a minute to make a change live: ask once, then,
    /// unless this instance is one of a crowd (see `confirm_not_before`).
    fn schedule_confirmation(&mut self, sync_started: Instant, first_sync: bool) {
        let took = sync_started.elapsed();
        let throttled_for = if self.engine.busy(took) {
            took
        } else {
            Duration::ZERO
        };
        let spread = if first_sync {
            self.at.config.agent.join_spread
        } else {
            Duration::ZERO
        };
        let not_before = confirm_not_before(spread, throttled_for);
        self.at.next_confirm = self
            .engine
            .confirm_due(CONFIRM_FIRST)
            .map(|d| Instant::now() + d.max(not_before).max(Duration::from_secs(1)));
    }

    /// The stop: leave, then drain, all within stop_timeout.
    async fn stop(mut self, started: Instant) -> anyhow::Result<()> {
        let config = self.at.config.clone();
        let watchdog = self.at.watchdog;
        let stop_timeout = config.agent.stop_timeout;
        let stop_started = Instant::now();
        notify(&[
            sd_notify::NotifyState::Stopping,
            sd_notify::NotifyState::Status("leaving"),
        ]);
        let status = &mut self.at.status;
        status.state = State::Stopping;
        status.reason = String::new();
        status.since = unix_now();
        status.write(&config.agent.state_dir);
        tracing::info!(
            "stopping: removing this instance's records (at most {})",
            humantime::format_duration(stop_timeout)
        );
        // A fleet stopped together (a scale-in) meets the provider's limit as
        // its boot did: the instances refused once the burst is used up come
        // back spread over `join_spread` (the fleet's size at the provider's
        // rate), not all again within a second; over three quarters of
        // stop_timeout at most, so that the last of them still has time to be
        // refused and retry.
        let spread = config.agent.join_spread.min(stop_timeout * 3 / 4);
        if !spread.is_zero() {
            self.engine.spread_retries(spread);
        }
        // Each provider gets a little less than the whole, so that one that
        // cannot finish is reported by name before the hard limit cuts
        // everything off.
        let per_provider =
            stop_timeout.saturating_sub((stop_timeout / 10).min(Duration::from_secs(1)));
        let left = alive_while(
            watchdog,
            timeout(stop_timeout, self.engine.sync(Action::Leave, per_provider)),
        )
        .await;
        let result = stop_result(&config, left);
        let drain = config
            .agent
            .drain
            .min(stop_timeout.saturating_sub(stop_started.elapsed()));
        drain_for(drain, watchdog).await;
        let _ = std::fs::remove_file(config.agent.state_dir.join(STATUS_FILE));
        tracing::debug!(ran = ?started.elapsed(), "agent done");
        result
    }
}

impl Standing {
    /// How often to reconcile: a lease is renewed when a third of it has
    /// passed, so at least that often.
    fn interval(&self) -> Duration {
        match self.config.lease {
            Some(l) => self.config.agent.reconcile_interval.min(l.ttl / 3),
            None => self.config.agent.reconcile_interval,
        }
    }

    fn watches_notices(&self) -> bool {
        !matches!(self.mode, Mode::Terminating(_)) && has_notices(&self.identity)
    }

    /// A health verdict came; whether it changed the mode (then a sync for
    /// the new one starts at once).
    fn verdict(&mut self, verdict: &Verdict) -> bool {
        self.status.checks = verdict.checks.clone();
        if follow_verdict(verdict, &mut self.mode) {
            self.attempt = 0;
            self.next_sync = Instant::now();
            self.status.show(&self.mode, &self.config.agent.state_dir);
            true
        } else {
            self.status.write(&self.config.agent.state_dir);
            false
        }
    }

    /// A termination notice: records removed at once, and kept down.
    fn notice(&mut self, n: &Notice) {
        self.mode = terminating(n);
        self.attempt = 0;
        self.next_sync = Instant::now();
        self.status.show(&self.mode, &self.config.agent.state_dir);
    }

    fn ping(&mut self) {
        ping_watchdog();
        self.next_ping = Instant::now() + self.watchdog.unwrap_or_default();
    }

    fn extend_start(&mut self) {
        notify(&[sd_notify::NotifyState::ExtendTimeoutUsec(
            u32::try_from(START_EXTENSION.as_micros()).unwrap_or(u32::MAX),
        )]);
        self.next_extend = Instant::now() + START_EXTENSION / 3;
    }

    /// A sync ended with these reports (`ok`: all succeeded; `busy`: a
    /// provider is throttling): the status, when to sync next, and READY=1
    /// after the first that published (or that removed, when down).
    fn synced(&mut self, reports: &[engine::Report], ok: bool, started: Instant, busy: bool) {
        (self.status.state, self.status.reason) = describe(&self.mode);
        if !ok {
            let failed: Vec<String> = reports
                .iter()
                .filter_map(|r| {
                    r.result
                        .as_ref()
                        .err()
                        .map(|e| format!("{}: {e}", r.provider))
                })
                .collect();
            self.status.reason = [self.status.reason.clone(), failed.join("; ")]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
        }
        self.status.since = unix_now();
        self.status.write(&self.config.agent.state_dir);
        let interval = self.interval();
        if ok {
            self.attempt = 0;
            self.next_sync = match self.mode {
                // Removed for good: nothing more to do until the stop.
                Mode::Terminating(_) => far_future(),
                // From the start of this sync: a slow sync or reap does not
                // push the next renewal of a lease back.
                _ => started + interval,
            };
        } else if busy {
            // The provider is throttling: its pacer spaces the requests, and
            // what was announced stays announced. Go on at once.
            self.next_sync = Instant::now();
        } else {
            // Retry sooner than a full interval, with backoff.
            self.next_sync = Instant::now() + RETRY.delay(self.attempt).min(interval);
            self.attempt += 1;
        }
        if !self.ready && (ok || self.mode != Mode::Up) {
            self.ready = true;
            let what = match &self.mode {
                Mode::Up => {
                    tracing::info!(
                        "joined; reconciling every {}",
                        humantime::format_duration(interval)
                    );
                    "registered"
                }
                Mode::Withdrawn(_) => "running; records withdrawn until the health checks pass",
                Mode::Terminating(_) => "running; records removed after a termination notice",
            };
            notify(&[
                sd_notify::NotifyState::Ready,
                sd_notify::NotifyState::Status(what),
            ]);
        }
    }
}

/// What the stop's leave comes to: out of time with a lease to fall back on
/// (a fleet stopping together faster than the provider's rate allows), what
/// remains is the reapers'.
fn stop_result(
    config: &Config,
    left: Result<
        Result<Vec<engine::Report>, crate::config::UsageError>,
        tokio::time::error::Elapsed,
    >,
) -> anyhow::Result<()> {
    let left_to_reapers = |what: &str| match config.lease {
        Some(lease) => {
            tracing::warn!(
                "{what}; left for reapers: this instance's lease runs out within {}, then any agent with reap = true (or `dnsreg reap`) removes them",
                humantime::format_duration(lease.ttl)
            );
            Ok(())
        }
        None => Err(anyhow::anyhow!(
            "{what}; some may remain (a [lease] would let peers reap them)"
        )),
    };
    match left {
        Ok(Ok(reports)) => {
            if print_reports(Action::Leave, &reports) {
                Ok(())
            } else if reports.iter().all(|r| r.result.is_ok() || r.out_of_time) {
                left_to_reapers("some records could not be removed within stop_timeout (see above)")
            } else {
                Err(anyhow::anyhow!(
                    "some records could not be removed (see above)"
                ))
            }
        }
        Ok(Err(e)) => Err(e.into()),
        Err(_) => left_to_reapers(&format!(
            "removing records did not finish within stop_timeout ({})",
            humantime::format_duration(config.agent.stop_timeout)
        )),
    }
}

/// Waits `drain` (clients' caches expire while the service still answers).
/// A second SIGTERM or SIGINT cuts it short (the operator who asks twice
/// means now): the first one's listener is gone, and the runtime's handler
/// would otherwise swallow it.
async fn drain_for(drain: Duration, watchdog: Option<Duration>) {
    if drain.is_zero() {
        return;
    }
    tracing::info!(
        "draining for {}: clients' caches expire while the service still answers",
        humantime::format_duration(drain)
    );
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    let again = async {
        match (&mut term, &mut int) {
            (Some(t), Some(i)) => {
                tokio::select! {
                    _ = t.recv() => {}
                    _ = i.recv() => {}
                }
            }
            _ => std::future::pending().await,
        }
    };
    tokio::select! {
        () = alive_while(watchdog, sleep(drain)) => {}
        () = again => tracing::info!("signalled again: the drain is cut short"),
    }
}

/// How soon to sync and reap again after a reap that ran out of time.
const REAP_AGAIN: Duration = Duration::from_secs(2);

/// How long each EXTEND_TIMEOUT_USEC pushes systemd's start timeout back.
const START_EXTENSION: Duration = Duration::from_secs(90);

/// When to ask first whether an accepted change is live, when no earlier
/// change says how long it takes: Route53 propagates "generally within 60
/// seconds" (ChangeResourceRecordSets, API reference).
const CONFIRM_FIRST: Duration = Duration::from_secs(60);

/// How long after a sync to wait at least before asking whether its change
/// is live, when this instance may be one of a fleet. A confirmation is a
/// request too, and a fleet's confirmations asked while its last joins are
/// still being refused take the account's rate from them (measured with
/// 1,000 agents on Route53 spread over 95 s, each asking 95 s after its join:
/// 973 were published at 100 s, and the last 27 not until 228 s, refused
/// among the confirmations of the others). The crowd lasts as long as
/// `join_spread` says (the first sync only: that is what it spreads), or
/// at least as long as this sync was throttled; the confirmation comes at a
/// random moment from then to twenty times that, so that a fleet told its
/// size (`join_spread` = N / rate) confirms at about a twentieth of the
/// rate. None for an instance alone. (A model of 1,000 agents starting
/// together, unspread, `bench/sim/confirmations.py`: the last joined at
/// 199 s with every confirmation 60 s after its join, 191 s with them after
/// [T, 2T], 154 s after [T, 20T], and 121 s with none at all.)
fn confirm_not_before(join_spread: Duration, throttled_for: Duration) -> Duration {
    let crowd = join_spread.max(throttled_for);
    crate::retry::uniform(crowd, crowd * 20)
}

/// Asks whether accepted changes are live (one request per provider with one),
/// unless the provider is busy with a fleet now: confirmation is worth less
/// than a fleet's joins, so it waits. Returns when to ask again, if needed.
async fn confirm(engine: &mut Engine) -> Option<Instant> {
    if engine.busy(Duration::from_secs(30)) {
        return Some(Instant::now() + Duration::from_secs(30) + RETRY.delay(3));
    }
    let mut again = false;
    for c in engine.confirm().await {
        match c.result {
            Ok(true) => tracing::info!(
                provider = %c.provider,
                change = %c.change,
                "the change is live on every server {}s after it was accepted",
                c.after.as_secs()
            ),
            Ok(false) => {
                again = true;
                tracing::debug!(provider = %c.provider, change = %c.change, "not live yet");
            }
            Err(e) => {
                again = true;
                tracing::debug!("{e}");
            }
        }
    }
    again.then(|| Instant::now() + Duration::from_secs(30) + RETRY.delay(3))
}

/// How often the loop tells systemd it is alive (`WATCHDOG=1`): half the
/// unit's `WatchdogSec=` (systemd passes it as WATCHDOG_USEC), or never.
fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| (d / 2).max(Duration::from_millis(100)))
}

fn ping_watchdog() {
    notify(&[sd_notify::NotifyState::Watchdog]);
}

/// `work`, while the loop keeps telling systemd it is alive: an await that
/// takes long by design (a reap or a confirmation held back by a throttled
/// provider, the leave within stop_timeout) is not a loop that stopped. The
/// pings come from this task, so a task that stops running stops them.
async fn alive_while<F: std::future::Future>(period: Option<Duration>, work: F) -> F::Output {
    let Some(period) = period else {
        return work.await;
    };
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            () = sleep(period) => ping_watchdog(),
        }
    }
}

/// Asks the cloud for a termination notice every `notice_interval`, from
/// `*at` on, until one comes.
async fn next_notice(at: &mut Instant, config: &Config, identity: &Identity) -> Notice {
    loop {
        sleep_until(*at).await;
        *at = Instant::now() + config.agent.notice_interval;
        let limit = config.agent.notice_interval.max(Duration::from_secs(2));
        match timeout(limit, notice(&config.instance, identity)).await {
            Ok(Ok(Some(n))) => return n,
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::debug!("asking for termination notices: {e}"),
            Err(_) => tracing::debug!("asking for termination notices: no answer in time"),
        }
    }
}

/// The agent's state and reason, as `dnsreg status` and `systemctl status` show them.
fn describe(mode: &Mode) -> (State, String) {
    match mode {
        Mode::Up => (State::Published, String::new()),
        Mode::Withdrawn(why) => (State::Withdrawn, format!("health checks fail: {why}")),
        Mode::Terminating(n) => (State::Terminating, n.clone()),
    }
}

/// The mode after termination notice `n`.
fn terminating(n: &Notice) -> Mode {
    crate::metrics::get().notice();
    tracing::warn!(
        cloud = n.cloud(),
        at = n.at(),
        "{n}: removing this instance's records now and staying down"
    );
    Mode::Terminating(n.to_string())
}

/// Follows a new health verdict (a machine going away stays away); whether
/// the mode changed.
fn follow_verdict(verdict: &Verdict, mode: &mut Mode) -> bool {
    if matches!(mode, Mode::Terminating(_)) {
        return false;
    }
    let new = mode_for(verdict);
    if new == *mode {
        return false;
    }
    match &new {
        Mode::Up => tracing::info!("health checks pass: publishing"),
        Mode::Withdrawn(why) => {
            tracing::warn!("health checks fail, withdrawing the records: {why}")
        }
        Mode::Terminating(_) => {}
    }
    *mode = new;
    true
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

fn mode_for(verdict: &Verdict) -> Mode {
    if verdict.healthy {
        Mode::Up
    } else {
        Mode::Withdrawn(verdict.why())
    }
}

/// Whether this cloud publishes termination notices the agent can watch.
fn has_notices(identity: &Identity) -> bool {
    crate::metadata::cloud(identity.cloud).is_some_and(|c| c.has_notices())
}

/// The next changed verdict, or never when there are no checks (or they stopped).
async fn changed_verdict(rx: &mut watch::Receiver<Verdict>, any: bool) -> Option<Verdict> {
    if !any {
        return std::future::pending().await;
    }
    match checks::changed(rx).await {
        Some(v) => Some(v),
        None => std::future::pending().await,
    }
}

/// Reads the configuration again and switches to it. Providers that are gone
/// (or whose settings changed) are left first, with the old settings; the
/// records no longer configured at the others go with the next join. Returns
/// `None` when nothing changed.
async fn reload_config(
    load: &impl Fn() -> Result<Config, anyhow::Error>,
    old: &Config,
    engine: &mut Engine,
    identity: &Identity,
) -> anyhow::Result<Option<Config>> {
    tracing::info!("SIGHUP: reading the configuration again");
    let new = load()?;
    if new == *old {
        tracing::info!("the configuration did not change");
        return Ok(None);
    }
    if new.instance != old.instance {
        anyhow::bail!(
            "[instance] changed; that needs a restart (the records would belong to another identity)"
        );
    }
    if new.agent.state_dir != old.agent.state_dir {
        anyhow::bail!("agent.state_dir changed; that needs a restart");
    }
    if (&new.agent.metrics_textfile, new.agent.metrics_listen)
        != (&old.agent.metrics_textfile, old.agent.metrics_listen)
    {
        anyhow::bail!(
            "agent.metrics_textfile or agent.metrics_listen changed; that needs a restart"
        );
    }
    let next = Engine::new(new.clone(), identity).context("planning records")?;
    // Providers gone or changed: leave them with what the old engine knows.
    let gone: BTreeSet<String> = old
        .providers
        .iter()
        .filter(|p| !new.providers.contains(p))
        .map(|p| p.name.clone())
        .collect();
    if !gone.is_empty() {
        tracing::info!(providers = ?gone, "leaving providers no longer configured (or reconfigured)");
        let reports = engine
            .sync_only(
                Action::Leave,
                old.agent.stop_timeout.max(Duration::from_secs(30)),
                Some(&gone),
            )
            .await?;
        if !print_reports(Action::Leave, &reports) {
            anyhow::bail!(
                "could not leave {gone:?}; keeping the old configuration to try again at the next SIGHUP"
            );
        }
    }
    *engine = next;
    tracing::info!("configuration reloaded");
    Ok(Some(new))
}

/// Turns load errors into what the reload logs.
pub fn loader(path: std::path::PathBuf) -> impl Fn() -> Result<Config, anyhow::Error> {
    move || crate::config::load(&path).map_err(|e: ConfigError| anyhow::anyhow!("{e}"))
}

#[cfg(test)]
mod tests;
