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

use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep, sleep_until};

use crate::checks::{self, Verdict};
use crate::config::Config;
use crate::engine::{self, Action, Engine};
use crate::metadata::{Identity, identify};
use crate::output::{self, print_reports};
use crate::registry::unix_now;
use crate::retry::Backoff;

mod reload;
mod standing;
mod status;
mod stop;

pub use reload::loader;
pub use status::{AgentStatus, State};

use standing::{changed_verdict, far_future, mode_for, next_notice};

/// How long to keep retrying a failed sync, or identification, before each new try.
const RETRY: Backoff = Backoff {
    base: Duration::from_secs(1),
    cap: Duration::from_secs(30),
    attempts: u32::MAX,
};

fn notify(state: &[sd_notify::NotifyState]) {
    // Outside systemd (no NOTIFY_SOCKET) this does nothing.
    if let Err(e) = sd_notify::notify(state) {
        tracing::debug!("sd_notify: {e}");
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
    let mut engine = Engine::for_agent(config.clone(), &identity).context("planning records")?;
    if config.lease.is_some_and(|l| l.reap) {
        let checked = tokio::select! {
            r = engine.check_reap_rights() => r.map(|()| true),
            () = &mut shutdown => Ok(false),
        };
        if !matches!(checked, Ok(true)) {
            // Connecting may have started a responder: end it too.
            engine.close().await;
            return checked.map(|_| ());
        }
    }
    let mut agent = Agent::new(config, identity, engine, status);
    let result = agent
        .serve(&load, &mut shutdown, &mut reload, started)
        .await;
    // Every end of the agent passes here: a responder's thread stops, and
    // says goodbye for what it still holds.
    agent.engine.close().await;
    result
}

impl Agent {
    /// The loop: one method per event until the stop, then the stop.
    async fn serve(
        &mut self,
        load: &impl Fn() -> Result<Config, anyhow::Error>,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
        reload: &mut mpsc::UnboundedReceiver<()>,
        started: Instant,
    ) -> anyhow::Result<()> {
        'agent: loop {
            tokio::select! {
                biased;
                () = &mut *shutdown => break,
                Some(()) = reload.recv() => self.reload(load).await,
                Some(verdict) = changed_verdict(&mut self.health, !self.at.config.checks.is_empty()) => {
                    self.at.verdict(&verdict);
                }
                n = next_notice(&mut self.at.notices_at, &self.at.config, &self.at.identity), if self.at.watches_notices() => {
                    self.at.notice(&n);
                }
                () = sleep_until(self.at.next_ping), if self.at.watchdog.is_some() => self.at.ping(),
                () = sleep_until(self.at.next_extend), if !self.at.ready => self.at.extend_start(),
                () = sleep_until(self.at.next_confirm.unwrap_or_else(far_future)), if self.at.next_confirm.is_some() => {
                    self.at.next_confirm = alive_while(self.at.watchdog, confirm(&mut self.engine)).await;
                }
                () = sleep_until(self.at.next_sync) => {
                    match self.sync(shutdown, reload).await {
                        Synced::Done => {}
                        // A notice, a verdict or a SIGHUP came during the sync: it
                        // was dropped, and the loop goes on with the new mode.
                        Synced::Superseded => continue 'agent,
                        Synced::Reload => self.reload(load).await,
                        Synced::Shutdown => break,
                        Synced::Failed(e) => return Err(e),
                    }
                }
            }
        }
        self.stop(started).await
    }
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
    /// The first sync's time (`join_spread` after the start); with health
    /// checks, not before every check has said which way it goes.
    first_sync: Instant,
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
        // Not a leave before the checks have spoken: a healthy machine whose
        // agent restarts would take its records out for a probe or two.
        if !health.borrow().decided() {
            tracing::info!("first sync when every health check has passed or failed");
        }
        let mut agent = Agent {
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
                first_sync: now + spread,
                next_sync: now,
                notices_at: now,
                next_confirm: None,
                next_extend: now,
                watchdog: watchdog_period(),
                next_ping: now,
            },
        };
        agent.at.next_sync = agent.at.sync_after(&agent.health.borrow());
        agent
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
        let action = if self.at.mode == Mode::Up {
            Action::Join
        } else {
            Action::Leave
        };
        let started = Instant::now();
        let reports = match self.sync_or_event(action, shutdown, reload).await {
            Ok(reports) => reports,
            Err(ended) => return ended,
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

    /// The engine's join or leave, while following the events that cannot
    /// wait for it: its reports, or how it ended when one of them came first.
    async fn sync_or_event(
        &mut self,
        action: Action,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
        reload: &mut mpsc::UnboundedReceiver<()>,
    ) -> Result<Vec<engine::Report>, Synced> {
        let at = &mut self.at;
        let interval = at.interval();
        let has_checks = !at.config.checks.is_empty();
        let watch_notices = at.watches_notices();
        // A termination notice, a health verdict that changes what should be
        // published, a SIGHUP or the stop acts at once, even while a sync is
        // held up by a throttled or silent provider: the sync is dropped
        // (every write is atomic and conditional, and the state file is
        // written around each; the next sync starts from what is there).
        let sync = self
            .engine
            .sync(action, interval.max(Duration::from_secs(60)));
        tokio::pin!(sync);
        loop {
            tokio::select! {
                biased;
                () = &mut *shutdown => return Err(Synced::Shutdown),
                r = &mut sync => match r {
                    Ok(reports) => return Ok(reports),
                    Err(e) => return Err(Synced::Failed(e.into())),
                },
                () = sleep_until(at.next_ping), if at.watchdog.is_some() => at.ping(),
                n = next_notice(&mut at.notices_at, &at.config, &at.identity), if watch_notices => {
                    tracing::info!("a sync was under way; it is dropped for the notice");
                    at.notice(&n);
                    return Err(Synced::Superseded);
                }
                Some(verdict) = changed_verdict(&mut self.health, has_checks) => {
                    if at.verdict(&verdict) {
                        tracing::info!("a sync was under way; it is dropped for the new verdict");
                        return Err(Synced::Superseded);
                    }
                }
                Some(()) = reload.recv() => {
                    tracing::info!("a sync was under way; it is dropped for the SIGHUP");
                    return Err(Synced::Reload);
                }
            }
        }
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
        output::print_reaped_quietly(&reaped);
        crate::metrics::get().reaped(
            reaped
                .iter()
                .filter_map(|r| r.result.as_ref().ok())
                .map(Vec::len)
                .sum(),
        );
        Some(reaped.iter().any(engine::ReapReport::out_of_time))
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
}

/// How soon to sync and reap again after a reap that ran out of time.
const REAP_AGAIN: Duration = Duration::from_secs(2);

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
                tracing::debug!("{e:#}");
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

#[cfg(test)]
mod tests;
