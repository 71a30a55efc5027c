//! Reaping expired leases: the engine's own providers in the agent, or a
//! configuration's alone for `dnsreg reap`, and the check at the start that
//! an agent which reaps is allowed to.

use std::time::Duration;

use futures_util::future::join_all;

use super::{Engine, Slot, known_zone};
use crate::config::Config;
use crate::reconcile::Reaped;
use crate::registry::unix_now;
use crate::state::State;

impl Engine {
    /// Where this agent reaps (`[lease] reap = true`): one listing of every
    /// registry at each provider before anything is published, so that a
    /// right only reaping needs (RFC 2136: a zone transfer) is found missing
    /// at the start, not at the first reap after the records are out. A
    /// refusal is returned; a failure that may pass (a busy or silent
    /// server) is logged, and the start goes on.
    pub async fn check_reap_rights(&mut self) -> anyhow::Result<()> {
        let state = self.load_state();
        for slot in &mut self.slots {
            let known = state.providers.get(&slot.name).and_then(known_zone);
            let provider = match slot.link.provider(known.as_ref()).await {
                Ok(p) => p,
                Err(e) => {
                    // The join says it too, and retries.
                    tracing::warn!(provider = %slot.name, "could not check the rights reaping needs: {e:#}");
                    continue;
                }
            };
            let listed = provider.list_registries().await;
            match listed {
                Ok(()) => {}
                Err(crate::provider::Fail::Permanent(e) | crate::provider::Fail::Denied(e)) => {
                    return Err(e.context(format!(
                        "{}: this agent reaps expired leases ([lease] reap = true), which needs every registry listed; refusing to publish what it could not reap",
                        slot.name
                    )));
                }
                Err(f) => tracing::warn!(
                    provider = %slot.name,
                    "could not check now that this agent may list every registry, as reaping needs: {f}"
                ),
            }
        }
        Ok(())
    }

    /// Reaps expired leases at every provider, concurrently (see [`crate::reconcile::reap`]).
    pub async fn reap(&mut self, deadline: Duration) -> Vec<ReapReport> {
        let state = self.load_state();
        reap_slots(&mut self.slots, &state, deadline).await
    }
}

/// What reaping did at one provider.
#[derive(Debug)]
pub struct ReapReport {
    pub provider: String,
    pub result: anyhow::Result<Vec<Reaped>>,
}

impl ReapReport {
    /// It ended only by running out of time (the provider busy): there may
    /// be more to reap.
    pub fn out_of_time(&self) -> bool {
        self.result.as_ref().err().is_some_and(super::out_of_time)
    }
}

async fn reap_slots(slots: &mut [Slot], state: &State, deadline: Duration) -> Vec<ReapReport> {
    let now = unix_now();
    join_all(slots.iter_mut().map(|slot| async move {
        let known = state.providers.get(&slot.name).and_then(known_zone);
        let result = match slot.link.provider(known.as_ref()).await {
            Ok(provider) => provider.reap(now, deadline).await,
            Err(e) => Err(e),
        };
        ReapReport {
            provider: slot.name.clone(),
            result,
        }
    }))
    .await
}

/// `dnsreg reap`: needs no identity of its own (it only removes), so it works
/// from any machine with the configuration's credentials.
pub async fn reap_once(config: &Config, deadline: Duration) -> Vec<ReapReport> {
    let mut slots: Vec<Slot> = config
        .providers
        .iter()
        .map(|p| Slot::new(p, "dnsreg-reaper", super::Role::OneShot))
        .collect();
    reap_slots(&mut slots, &State::default(), deadline).await
}
