//! Where the agent stands, apart from its engine: the mode that health
//! verdicts and termination notices set, when to sync next, and the
//! messages to systemd (READY=1, the start timeout, the watchdog).

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, sleep_until, timeout};

use super::status::describe;
use super::{Mode, RETRY, Standing, notify, ping_watchdog};
use crate::checks::{self, Verdict};
use crate::config::Config;
use crate::engine;
use crate::metadata::{Identity, Notice, notice};
use crate::registry::unix_now;

impl Standing {
    /// How often to reconcile: a lease is renewed when a third of it has
    /// passed, so at least that often.
    pub(super) fn interval(&self) -> Duration {
        match self.config.lease {
            Some(l) => self.config.agent.reconcile_interval.min(l.ttl / 3),
            None => self.config.agent.reconcile_interval,
        }
    }

    pub(super) fn watches_notices(&self) -> bool {
        !matches!(self.mode, Mode::Terminating(_)) && has_notices(&self.identity)
    }

    /// A health verdict came; whether it changed the mode (then a sync for
    /// the new one starts at once).
    pub(super) fn verdict(&mut self, verdict: &Verdict) -> bool {
        self.status.checks = verdict.checks.clone();
        if follow_verdict(verdict, &mut self.mode) {
            self.attempt = 0;
            self.next_sync = self.sync_after(verdict);
            self.status.show(&self.mode, &self.config.agent.state_dir);
            true
        } else {
            self.status.write(&self.config.agent.state_dir);
            false
        }
    }

    /// When to sync after `verdict`: at once, but the first sync not before
    /// `first_sync`, nor before every check has passed or failed.
    pub(super) fn sync_after(&self, verdict: &Verdict) -> Instant {
        if self.synced_once {
            Instant::now()
        } else if verdict.decided() {
            self.first_sync.max(Instant::now())
        } else {
            far_future()
        }
    }

    /// A termination notice: records removed at once, and kept down.
    pub(super) fn notice(&mut self, n: &Notice) {
        self.mode = terminating(n);
        self.attempt = 0;
        self.next_sync = Instant::now();
        self.status.show(&self.mode, &self.config.agent.state_dir);
    }

    pub(super) fn ping(&mut self) {
        ping_watchdog();
        self.next_ping = Instant::now() + self.watchdog.unwrap_or_default();
    }

    pub(super) fn extend_start(&mut self) {
        notify(&[sd_notify::NotifyState::ExtendTimeoutUsec(
            u32::try_from(START_EXTENSION.as_micros()).unwrap_or(u32::MAX),
        )]);
        self.next_extend = Instant::now() + START_EXTENSION / 3;
    }

    /// A sync ended with these reports (`ok`: all succeeded; `busy`: a
    /// provider is throttling): the status, when to sync next, and READY=1
    /// after the first that published (or that removed, when down).
    pub(super) fn synced(
        &mut self,
        reports: &[engine::Report],
        ok: bool,
        started: Instant,
        busy: bool,
    ) {
        (self.status.state, self.status.reason) = describe(&self.mode);
        if !ok {
            let failed: Vec<String> = reports
                .iter()
                .filter_map(|r| {
                    r.result
                        .as_ref()
                        .err()
                        .map(|e| format!("{}: {e:#}", r.provider))
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

/// How long each EXTEND_TIMEOUT_USEC pushes systemd's start timeout back.
const START_EXTENSION: Duration = Duration::from_secs(90);

/// Asks the cloud for a termination notice every `notice_interval`, from
/// `*at` on, until one comes.
pub(super) async fn next_notice(at: &mut Instant, config: &Config, identity: &Identity) -> Notice {
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
    match (&*mode, &new) {
        (_, Mode::Up) => tracing::info!("health checks pass: publishing"),
        (Mode::Up, Mode::Withdrawn(why)) => {
            tracing::warn!("health checks fail, withdrawing the records: {why}")
        }
        // Not published yet, or withdrawn already: what the checks say now.
        (_, Mode::Withdrawn(why)) => tracing::info!("health checks: {why}"),
        (_, Mode::Terminating(_)) => {}
    }
    *mode = new;
    true
}

pub(super) fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

pub(super) fn mode_for(verdict: &Verdict) -> Mode {
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
pub(super) async fn changed_verdict(
    rx: &mut watch::Receiver<Verdict>,
    any: bool,
) -> Option<Verdict> {
    if !any {
        return std::future::pending().await;
    }
    match checks::changed(rx).await {
        Some(v) => Some(v),
        None => std::future::pending().await,
    }
}
