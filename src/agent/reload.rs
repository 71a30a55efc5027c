//! SIGHUP: the configuration read again, and switched to when it is good.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;

use super::{Agent, alive_while};
use crate::checks;
use crate::config::{Config, ConfigError};
use crate::engine::{Action, Engine};
use crate::metadata::Identity;
use crate::output::print_reports;

impl Agent {
    /// SIGHUP: the configuration read again; a bad one is refused and the
    /// running one kept.
    pub(super) async fn reload(&mut self, load: &impl Fn() -> Result<Config, anyhow::Error>) {
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
    let mut next = Engine::for_agent(new.clone(), identity).context("planning records")?;
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
    // Unchanged providers go on as they are (an mDNS responder keeps
    // answering); what is left of the old engine is ended.
    next.adopt(engine);
    let mut old = std::mem::replace(engine, next);
    old.close().await;
    tracing::info!("configuration reloaded");
    Ok(Some(new))
}

/// Turns load errors into what the reload logs.
pub fn loader(path: std::path::PathBuf) -> impl Fn() -> Result<Config, anyhow::Error> {
    move || crate::config::load(&path).map_err(|e: ConfigError| anyhow::anyhow!("{e}"))
}
