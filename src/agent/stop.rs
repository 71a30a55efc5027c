//! The stop: leave within `stop_timeout`, then drain.

use std::time::Duration;

use tokio::time::{Instant, sleep, timeout};

use super::status::{STATUS_FILE, State};
use super::{Agent, alive_while, notify};
use crate::config::Config;
use crate::engine::{self, Action};
use crate::output::print_reports;
use crate::registry::unix_now;

impl Agent {
    /// The stop: leave, then drain, all within stop_timeout.
    pub(super) async fn stop(&mut self, started: Instant) -> anyhow::Result<()> {
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
            } else if reports.iter().all(|r| r.result.is_ok() || r.out_of_time()) {
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
