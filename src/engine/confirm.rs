//! Whether an accepted change is live yet: asked of each provider with one
//! pending, and when to ask, from how long the last one took.

use std::time::Duration;

use super::{Confirmation, Engine, known_zone, save, unix_now_ms};
use crate::provider::Fail;

impl Engine {
    /// Asks each provider with a change not yet confirmed whether it is live
    /// now: one request each. Confirmed changes are forgotten, and how long
    /// they took is kept, to know when to ask about the next one.
    pub async fn confirm(&mut self) -> Vec<Confirmation> {
        let mut state = self.load_state();
        let mut out = Vec::new();
        for slot in &mut self.slots {
            let Some(entry) = state.providers.get_mut(&slot.name) else {
                continue;
            };
            let Some(pending) = entry.pending.clone() else {
                continue;
            };
            let after = Duration::from_millis(unix_now_ms().saturating_sub(pending.accepted_ms));
            let known = known_zone(entry);
            let result = match slot.link.provider(known.as_ref()).await {
                Ok(provider) => {
                    match provider.confirm(&pending.change).await {
                        Ok(live) => Ok(live),
                        // Busy or failing for now: not known yet, ask again later.
                        Err(Fail::Busy { .. } | Fail::Transient(_)) => Ok(false),
                        Err(f) => Err(anyhow::Error::new(f).context(format!(
                            "{}: asking about change {}",
                            slot.name, pending.change
                        ))),
                    }
                }
                Err(e) => Err(e),
            };
            if matches!(result, Ok(true)) {
                entry.pending = None;
                entry.live_after_ms = Some(u64::try_from(after.as_millis()).unwrap_or(u64::MAX));
            }
            out.push(Confirmation {
                provider: slot.name.clone(),
                change: pending.change,
                result,
                after,
            });
        }
        if !out.is_empty() {
            save(&self.state, &state);
        }
        out
    }

    /// When the pending changes are likely live: for each, when it was
    /// accepted plus how long the last one took (`first` when none is known).
    pub fn confirm_due(&self, first: Duration) -> Option<Duration> {
        let state = self.state.load().ok()?;
        let now = unix_now_ms();
        state
            .providers
            .iter()
            // Only a configured provider is asked (see `confirm`): a change
            // pending at one taken out of the configuration is never confirmed.
            .filter(|(name, _)| self.slots.iter().any(|s| s.name == **name))
            .filter_map(|(_, p)| {
                let pending = p.pending.as_ref()?;
                let expect = p.live_after_ms.map_or(first, Duration::from_millis);
                let due = pending
                    .accepted_ms
                    .saturating_add(u64::try_from(expect.as_millis()).unwrap_or(u64::MAX));
                Some(Duration::from_millis(due.saturating_sub(now)))
            })
            .min()
    }
}
