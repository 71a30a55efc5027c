//! A join or leave at every provider, each on its own from connect to
//! accepted change, with the state file written around each write; and the
//! same planning as a dry run for `dnsreg plan`.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::future::join_all;

use super::facade::AnyProvider;
use super::{Action, Engine, Report, Slot, known_zone, lock, plan, save, unix_now_ms};
use crate::config::{Config, UsageError};
use crate::fail::ZoneGone;
use crate::plan::{Desired, Vars};
use crate::provider::KnownZone;
use crate::reconcile::{Checkpoint, DryRun, Intent, Outcome};
use crate::record::DomainName;
use crate::state::{Pending, ProviderState, State, StateFile};

impl Engine {
    /// Joins or leaves at every provider. Planning errors are returned before any
    /// write; provider failures are in the reports.
    pub async fn sync(
        &mut self,
        action: Action,
        deadline: Duration,
    ) -> Result<Vec<Report>, UsageError> {
        self.sync_only(action, deadline, None).await
    }

    /// The same at the providers named in `only` (all when `None`). Providers
    /// work concurrently, each from connect to accepted change on its own: one
    /// that is down (retrying for minutes) does not hold up the others, and each
    /// gets `deadline` for all of it.
    pub async fn sync_only(
        &mut self,
        action: Action,
        deadline: Duration,
        only: Option<&BTreeSet<String>>,
    ) -> Result<Vec<Report>, UsageError> {
        let selected = |name: &str| only.is_none_or(|o| o.contains(name));
        self.plan_known(&selected)?;
        let state = std::sync::Mutex::new(self.load_state());
        let Engine {
            config,
            vars,
            slots,
            state: file,
        } = self;
        let round = &Round {
            action,
            deadline,
            config,
            vars,
            file,
            state: &state,
            lease: config.lease.map(|l| l.ttl),
        };
        let results = join_all(slots.iter_mut().filter(|slot| selected(&slot.name)).map(
            |slot| async move {
                let name = slot.name.clone();
                // Each provider gets `deadline` from connect to acceptance;
                // one that runs out is reported, the others are not held up.
                let work = round.slot(slot);
                tokio::time::timeout(deadline, work)
                    .await
                    .unwrap_or_else(|_| Ok(Report::timed_out(name, deadline)))
            },
        ))
        .await;
        results.into_iter().collect()
    }

    /// Plans every provider whose zone is already known before anything is
    /// written: a planning error then changes nothing anywhere. Only a Route53
    /// zone given by id is learnt at connect, and planned after it.
    fn plan_known(&self, selected: &dyn Fn(&str) -> bool) -> Result<(), UsageError> {
        for slot in self.slots.iter().filter(|s| selected(&s.name)) {
            if let Some(zone) = slot.link.zone() {
                plan(&self.config, &self.vars, &slot.name, &zone)?;
            }
        }
        Ok(())
    }

    /// What a join or leave would do at every provider now (`dnsreg plan`):
    /// the same planning, connection and intent as [`Engine::sync`], then
    /// [`reconcile::dry_run`](crate::reconcile::dry_run) instead of `apply`.
    /// Reads the state file, never writes it; never writes to a provider.
    pub async fn dry_run(
        &mut self,
        action: Action,
        deadline: Duration,
    ) -> Result<Vec<PlanReport>, UsageError> {
        self.plan_known(&|_| true)?;
        let state = self.load_state();
        let Engine {
            config,
            vars,
            slots,
            ..
        } = self;
        let (config, vars, state) = (&*config, &*vars, &state);
        let lease = config.lease.map(|l| l.ttl);
        let results = join_all(slots.iter_mut().map(|slot| async move {
            let name = slot.name.clone();
            let work = async {
                let before = state.providers.get(&slot.name).cloned().unwrap_or_default();
                let known_zone = known_zone(&before);
                let provider = match slot.link.provider(known_zone.as_ref()).await {
                    Ok(p) => p,
                    Err(e) => return Ok(Err(e)),
                };
                let zone = provider.zone().clone();
                let desired = plan(config, vars, &slot.name, &zone)?;
                let intent = intent(action, vars, desired, &before, &zone, deadline, lease);
                let result = provider.dry_run(&intent).await;
                Ok(result)
            };
            let result = tokio::time::timeout(deadline, work)
                .await
                .unwrap_or_else(|_| {
                    Ok(Err(anyhow::anyhow!(
                        "gave up after {} without an answer",
                        humantime::format_duration(deadline)
                    )))
                })?;
            Ok(PlanReport {
                provider: name,
                result,
            })
        }))
        .await;
        results.into_iter().collect()
    }
}

/// One sync across the providers: what each provider's part of
/// [`Engine::sync_only`] shares, the state file's content under a lock
/// among them.
struct Round<'a> {
    action: Action,
    deadline: Duration,
    config: &'a Config,
    vars: &'a Vars,
    file: &'a StateFile,
    state: &'a std::sync::Mutex<State>,
    lease: Option<Duration>,
}

impl Round<'_> {
    /// One provider's part of [`Engine::sync_only`].
    async fn slot(&self, slot: &mut Slot) -> Result<Report, UsageError> {
        let before = self.before(slot);
        let known_zone = known_zone(&before);
        let Slot {
            name,
            link,
            checkpoint,
        } = slot;
        let provider = match link.provider(known_zone.as_ref()).await {
            Ok(p) => p,
            Err(e) => {
                return Ok(Report {
                    provider: name.clone(),
                    result: Err(e),
                });
            }
        };
        let zone = provider.zone().clone();
        let desired = plan(self.config, self.vars, name, &zone)?;
        let wanted = if self.action == Action::Join {
            desired.records.len()
        } else {
            0
        };
        crate::metrics::get().records(name, Some(wanted), None);
        self.starting(name, provider);
        let intent = Intent {
            checkpoint: checkpoint.clone(),
            ..intent(
                self.action,
                self.vars,
                desired,
                &before,
                &zone,
                self.deadline,
                self.lease,
            )
        };
        let result = provider.apply(&intent).await;
        if result.is_ok() {
            // Finished: the state file keeps what it left.
            checkpoint.take();
        }
        if self.finished(name, &result, known_zone.as_ref()) {
            link.disconnect();
        }
        Ok(Report {
            provider: name.clone(),
            result,
        })
    }

    /// What the state file remembers of this provider, with what an
    /// operation cut off here learnt since.
    fn before(&self, slot: &mut Slot) -> ProviderState {
        let mut before = lock(self.state)
            .providers
            .get(&slot.name)
            .cloned()
            .unwrap_or_default();
        // The last operation here was cut off (a SIGTERM while its join
        // waited to be carried): what it learnt is newer than the file.
        if let Some(memory) = slot.checkpoint.take() {
            before.memory = Some(memory);
        }
        before
    }

    /// Before writing: the zone's id, and whether a leave is under way (a
    /// record for whoever reads the file after a crash; nothing reads it
    /// back: what may be removed is decided by the zone's registries,
    /// never by the state file's list).
    fn starting(&self, name: &str, provider: &dyn AnyProvider) {
        let zone_id = provider.known_zone().map(|k| k.id);
        let mut s = lock(self.state);
        let entry = s.providers.entry(name.to_string()).or_default();
        entry.zone = provider.zone().to_string();
        entry.zone_id.clone_from(&zone_id);
        entry.leaving = self.action == Action::Leave;
        save(self.file, &s);
    }

    /// After writing: what the provider now holds of this instance, and
    /// the change to confirm; or, on a failure that says the remembered
    /// zone id is gone, that it is to be looked up anew (true: the caller
    /// drops the connected provider).
    fn finished(
        &self,
        name: &str,
        result: &anyhow::Result<Outcome>,
        known_zone: Option<&KnownZone>,
    ) -> bool {
        let mut s = lock(self.state);
        let entry = s.providers.entry(name.to_string()).or_default();
        let mut zone_gone = false;
        match result {
            Ok(outcome) => {
                let metrics = crate::metrics::get();
                metrics.records(name, None, Some(outcome.owned.len()));
                metrics.synced(name);
                // A protected old value is another instance's now: forget it.
                entry.published = outcome.owned.clone();
                entry.leaving = false;
                entry.memory = outcome.memory.clone();
                if let Some(change) = &outcome.change {
                    entry.pending = Some(Pending {
                        change: change.clone(),
                        accepted_ms: unix_now_ms(),
                    });
                }
            }
            Err(e) => {
                tracing::debug!(provider = %name, "{e:#}");
                // A remembered zone id that the provider no longer knows
                // (the zone was deleted and made again): look it up anew.
                if known_zone.is_some() && ZoneGone::within(e) {
                    entry.zone_id = None;
                    zone_gone = true;
                }
            }
        }
        save(self.file, &s);
        zone_gone
    }
}

/// What this instance wants of one provider: `desired` for a join, nothing
/// for a leave; what the state file remembers of it, unless it was of another zone.
pub(super) fn intent(
    action: Action,
    vars: &Vars,
    desired: Desired,
    before: &ProviderState,
    zone: &DomainName,
    deadline: Duration,
    lease: Option<Duration>,
) -> Intent {
    let Desired { records, exclusive } = desired;
    // The zone moved (a reconfigured provider): what was remembered is of another.
    let same_zone = before.zone.is_empty() || before.zone == zone.to_string();
    let mut known = before.published.clone();
    if action == Action::Leave {
        // Where the configuration publishes is where to look too: a leave
        // after a join that was cut off (a SIGTERM while it waited to be
        // carried) has nothing in its state file, and would not know that
        // it shares rrsets with a fleet (measured: such leaves raced each
        // other with direct writes instead of announcing). Only the zone's
        // registry says what is removed.
        known.extend(records.iter().map(|r| r.value.clone()));
    }
    Intent {
        instance_id: vars.instance_id.clone(),
        desired: if action == Action::Join {
            records
        } else {
            Vec::new()
        },
        exclusive,
        leaving: action == Action::Leave,
        known,
        memory: before.memory.clone().filter(|_| same_zone),
        deadline,
        lease,
        checkpoint: Checkpoint::default(),
    }
}

/// What a dry run found at one provider (`dnsreg plan`).
#[derive(Debug)]
pub struct PlanReport {
    pub provider: String,
    pub result: anyhow::Result<DryRun>,
}
