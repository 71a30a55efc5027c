//! `dnsreg run`: the agent's life (SPEC §4).
//!
//! identify → join → READY=1 → every `reconcile_interval`: identify again
//! (addresses change) and join again (idempotent: re-creates what someone
//! deleted, removes an old address) → on shutdown: STOPPING=1, leave within
//! `stop_timeout`, wait `drain`, return.
//!
//! Shutdown is an argument, not a signal handler, so tests drive the loop with
//! any future. Nothing polls between reconciles: the task sleeps.

use std::time::Duration;

use anyhow::Context;
use tokio::time::{Instant, sleep, sleep_until, timeout};

use crate::config::Config;
use crate::engine::{Action, Engine, print_reports};
use crate::metadata::identify;
use crate::retry::Backoff;

/// How long to keep retrying a first join, or identification, before each new try.
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

/// Runs the agent until `shutdown` completes, then leaves. Returns an error when
/// leaving failed or timed out, so that the exit code tells.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    let interval = config.agent.reconcile_interval;
    let stop_timeout = config.agent.stop_timeout;
    let drain = config.agent.drain;

    // Identify, retrying until metadata answers or we are told to stop.
    let mut attempt = 0;
    let identity = loop {
        tokio::select! {
            got = identify(&config.instance) => match got {
                Ok(identity) => break identity,
                Err(e) => {
                    tracing::warn!("{e}; retrying");
                    notify(&[sd_notify::NotifyState::Status(&format!("waiting for metadata: {e}"))]);
                }
            },
            () = &mut shutdown => return Ok(()),
        }
        tokio::select! {
            () = sleep(RETRY.delay(attempt)) => attempt += 1,
            () = &mut shutdown => return Ok(()),
        }
    };
    tracing::info!(instance = %identity.instance_id, cloud = %identity.cloud, "identified");
    let mut engine = Engine::new(config.clone(), &identity).context("planning records")?;

    // First join: retried until every provider has it, or shutdown.
    let mut attempt = 0;
    let mut ready = false;
    let mut next = Instant::now();
    loop {
        tokio::select! {
            () = sleep_until(next) => {}
            () = &mut shutdown => break,
        }
        if ready {
            match identify(&config.instance).await {
                Ok(identity) => match engine.set_identity(&identity) {
                    Ok(true) => {
                        tracing::info!(ipv4 = %engine.vars().ipv4, "address changed; replacing the old records")
                    }
                    Ok(false) => {}
                    Err(e) => tracing::error!("{e}"),
                },
                Err(e) => tracing::warn!("{e}; keeping the last known addresses"),
            }
        }
        let reports = tokio::select! {
            r = engine.sync(Action::Join, interval.max(Duration::from_secs(60))) => r?,
            () = &mut shutdown => break,
        };
        let ok = print_reports(Action::Join, &reports);
        if ok {
            attempt = 0;
            next = Instant::now() + interval;
            if !ready {
                ready = true;
                tracing::info!(
                    "joined; reconciling every {}",
                    humantime::format_duration(interval)
                );
                notify(&[
                    sd_notify::NotifyState::Ready,
                    sd_notify::NotifyState::Status("registered"),
                ]);
            }
        } else {
            // Retry sooner than a full interval, with backoff.
            next = Instant::now() + RETRY.delay(attempt).min(interval);
            attempt += 1;
        }
    }

    notify(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status("leaving"),
    ]);
    tracing::info!(
        "stopping: removing this instance's records (at most {})",
        humantime::format_duration(stop_timeout)
    );
    let left = timeout(stop_timeout, engine.sync(Action::Leave, stop_timeout)).await;
    let result = match left {
        Ok(Ok(reports)) => {
            if print_reports(Action::Leave, &reports) {
                Ok(())
            } else {
                Err(anyhow::anyhow!(
                    "some records could not be removed (see above)"
                ))
            }
        }
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(anyhow::anyhow!(
            "removing records did not finish within stop_timeout ({}); some may remain",
            humantime::format_duration(stop_timeout)
        )),
    };
    if !drain.is_zero() {
        tracing::info!("draining for {}", humantime::format_duration(drain));
        sleep(drain).await;
    }
    result
}
