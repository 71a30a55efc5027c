//! Join, leave and status across every configured provider, with the state file.
//!
//! Shared by the one-shot commands and the agent. Each provider is handled on its
//! own: one that fails does not stop the others, and the report says which did
//! what. Planning happens for every provider before anything is written, so a
//! planning error (a name outside a zone known only by id) changes nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::future::join_all;

use crate::config::{Config, ProviderKind, UsageError};
use crate::metadata::Identity;
use crate::plan::{Desired, Vars, desired};
use crate::provider::{AnyProvider, Fail, KnownZone};
use crate::reconcile::{Checkpoint, DryRun, Intent, Outcome, Reaped};
use crate::record::{DomainName, Value};
use crate::registry::unix_now;
use crate::state::{Pending, ProviderState, State, StateFile};

struct Slot {
    name: String,
    provider: Box<dyn AnyProvider>,
    connected: bool,
    /// What an operation cut off here had learnt (see [`Checkpoint`]).
    checkpoint: Checkpoint,
}

/// What happened at one provider.
#[derive(Debug)]
pub struct Report {
    pub provider: String,
    pub result: Result<Outcome, String>,
    /// It failed only by running out of time (the provider busy or contended).
    pub out_of_time: bool,
}

impl Report {
    fn timed_out(provider: String, deadline: Duration) -> Report {
        Report {
            provider,
            result: Err(format!(
                "gave up after {} without finishing: nothing more is sent, a \
                 change already accepted stands whole (each is atomic), and the \
                 next run or reconcile finishes the work",
                humantime::format_duration(deadline)
            )),
            out_of_time: true,
        }
    }
}

/// One desired record's presence, for `status`.
#[derive(Debug, serde::Serialize)]
pub struct Presence {
    pub provider: String,
    pub record: String,
    pub present: bool,
}

/// Whether a provider's accepted change is live, for `join` and the agent.
#[derive(Debug)]
pub struct Confirmation {
    pub provider: String,
    pub change: String,
    /// `Ok(true)`: live everywhere; `Ok(false)`: still pending.
    pub result: Result<bool, String>,
    /// How long since it was accepted.
    pub after: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Join,
    Leave,
}

pub struct Engine {
    config: Config,
    vars: Vars,
    slots: Vec<Slot>,
    state: StateFile,
}

/// The variables, or whose fault they are not (see [`Engine::new`]).
fn usable(vars: Result<Vars, crate::metadata::Unusable>) -> anyhow::Result<Vars> {
    vars.map_err(|e| match e {
        crate::metadata::Unusable::Config(why) => UsageError(why).into(),
        crate::metadata::Unusable::Metadata(why) => anyhow::anyhow!(why),
    })
}

impl Engine {
    /// Prepares providers for `identity`; no network call yet. An identity
    /// the metadata service made unusable is a runtime failure; one the
    /// configuration did, a [`UsageError`].
    pub fn new(config: Config, identity: &Identity) -> anyhow::Result<Engine> {
        let vars = usable(crate::metadata::vars(identity, &config.instance))?;
        let slots = config
            .providers
            .iter()
            .map(|p| Slot {
                name: p.name.clone(),
                provider: crate::provider::facade::for_config(p, &vars.instance_id),
                connected: false,
                checkpoint: Checkpoint::default(),
            })
            .collect();
        let state = StateFile::new(&config.agent.state_dir);
        Ok(Engine {
            config,
            vars,
            slots,
            state,
        })
    }

    /// The zone a provider writes to, when known without asking it.
    fn zone_before_connect(&self, slot: &Slot) -> Option<DomainName> {
        if slot.connected {
            return Some(slot.provider.zone().clone());
        }
        let cfg = self.config.providers.iter().find(|p| p.name == slot.name)?;
        match &cfg.kind {
            ProviderKind::Route53(r) => match &r.zone {
                crate::config::ZoneRef::Name(zone) | crate::config::ZoneRef::Both(zone, _) => {
                    Some(zone.clone())
                }
                crate::config::ZoneRef::Id(_) => None,
            },
            ProviderKind::Cloudflare(c) => Some(c.zone.clone()),
            ProviderKind::Rfc2136(r) => Some(r.zone.clone()),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn vars(&self) -> &Vars {
        &self.vars
    }

    /// Follows a new identity (an address change); the next join removes the old values.
    pub fn set_identity(&mut self, identity: &Identity) -> anyhow::Result<bool> {
        let vars = usable(crate::metadata::vars(identity, &self.config.instance))?;
        if vars.instance_id != self.vars.instance_id {
            anyhow::bail!(
                "the instance id changed from {} to {}; restart dnsreg",
                self.vars.instance_id,
                vars.instance_id
            );
        }
        let changed = vars != self.vars;
        self.vars = vars;
        Ok(changed)
    }

    /// The state file's content, or empty (with a warning) when it cannot be
    /// read: the ownership registry in DNS still knows what was published.
    fn load_state(&self) -> State {
        let mut state = match self.state.load() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("{e:#}");
                State::default()
            }
        };
        if !state.instance_id.is_empty() && state.instance_id != self.vars.instance_id {
            tracing::warn!(
                file = %self.state.path().display(),
                "the state file belongs to instance {}, not {}; ignoring it",
                state.instance_id,
                self.vars.instance_id
            );
            state.providers.clear();
        }
        state.version = 1;
        state.instance_id.clone_from(&self.vars.instance_id);
        state
    }

    async fn connect(slot: &mut Slot, known: Option<&KnownZone>) -> anyhow::Result<()> {
        if !slot.connected {
            slot.provider.connect(known).await?;
            slot.connected = true;
        }
        Ok(())
    }

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
        let (config, vars, file, state) = (&*config, &*vars, &*file, &state);
        let lease = config.lease.map(|l| l.ttl);
        let results = join_all(slots.iter_mut().filter(|slot| selected(&slot.name)).map(
            |slot| async move {
                let name = slot.name.clone();
                // Each provider gets `deadline` from connect to acceptance;
                // one that runs out is reported, the others are not held up.
                let work =
                    Self::sync_slot(slot, action, deadline, config, vars, file, state, lease);
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
            if let Some(zone) = self.zone_before_connect(slot) {
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
                if let Err(e) = Self::connect(slot, known_zone.as_ref()).await {
                    return Ok(Err(format!("{e:#}")));
                }
                let zone = slot.provider.zone().clone();
                let desired = plan(config, vars, &slot.name, &zone)?;
                let intent = intent(action, vars, desired, &before, &zone, deadline, lease);
                let result = slot.provider.dry_run(&intent).await;
                Ok(result.map_err(|e| format!("{e:#}")))
            };
            let result = tokio::time::timeout(deadline, work)
                .await
                .unwrap_or_else(|_| {
                    Ok(Err(format!(
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

    /// One provider's part of [`Engine::sync_only`].
    #[allow(clippy::too_many_arguments)]
    async fn sync_slot(
        slot: &mut Slot,
        action: Action,
        deadline: Duration,
        config: &Config,
        vars: &Vars,
        file: &StateFile,
        state: &std::sync::Mutex<State>,
        lease: Option<Duration>,
    ) -> Result<Report, UsageError> {
        let mut before = lock(state)
            .providers
            .get(&slot.name)
            .cloned()
            .unwrap_or_default();
        // The last operation here was cut off (a SIGTERM while its join
        // waited to be carried): what it learnt is newer than the file.
        if let Some(memory) = slot.checkpoint.take() {
            before.memory = Some(memory);
        }
        let known_zone = known_zone(&before);
        if let Err(e) = Self::connect(slot, known_zone.as_ref()).await {
            return Ok(Report {
                provider: slot.name.clone(),
                out_of_time: e.downcast_ref::<crate::reconcile::OutOfTime>().is_some(),
                result: Err(format!("{e:#}")),
            });
        }
        let zone = slot.provider.zone().clone();
        let zone_id = slot.provider.known_zone().map(|k| k.id);
        let desired = plan(config, vars, &slot.name, &zone)?;
        let wanted = if action == Action::Join {
            desired.records.len()
        } else {
            0
        };
        crate::metrics::get().records(&slot.name, Some(wanted), None);
        // Before writing: the zone's id, and whether a leave is under way (a
        // record for whoever reads the file after a crash; nothing reads it
        // back: what may be removed is decided by the zone's registries,
        // never by the state file's list).
        {
            let mut s = lock(state);
            let entry = s.providers.entry(slot.name.clone()).or_default();
            entry.zone = zone.to_string();
            entry.zone_id.clone_from(&zone_id);
            entry.leaving = action == Action::Leave;
            save(file, &s);
        }
        let intent = Intent {
            checkpoint: slot.checkpoint.clone(),
            ..intent(action, vars, desired, &before, &zone, deadline, lease)
        };
        let result = slot.provider.apply(&intent).await;
        if result.is_ok() {
            // Finished: the state file keeps what it left.
            slot.checkpoint.take();
        }
        {
            let mut s = lock(state);
            let entry = s.providers.entry(slot.name.clone()).or_default();
            match &result {
                Ok(outcome) => {
                    let metrics = crate::metrics::get();
                    metrics.records(&slot.name, None, Some(outcome.owned.len()));
                    metrics.synced(&slot.name);
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
                    tracing::debug!(provider = %slot.name, "{e:#}");
                    // A remembered zone id that the provider no longer knows
                    // (the zone was deleted and made again): look it up anew.
                    let text = format!("{e:#}");
                    if known_zone.is_some() && ZONE_GONE.iter().any(|m| text.contains(m)) {
                        entry.zone_id = None;
                        slot.connected = false;
                        slot.provider.forget_zone();
                    }
                }
            }
            save(file, &s);
        }
        Ok(Report {
            provider: slot.name.clone(),
            out_of_time: result
                .as_ref()
                .err()
                .is_some_and(|e| e.downcast_ref::<crate::reconcile::OutOfTime>().is_some()),
            result: result.map_err(|e| format!("{e:#}")),
        })
    }

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
            let result = match Self::connect(slot, known.as_ref()).await {
                Ok(()) => {
                    match slot.provider.confirm(&pending.change).await {
                        Ok(live) => Ok(live),
                        // Busy or failing for now: not known yet, ask again later.
                        Err(Fail::Busy { .. } | Fail::Transient(_)) => Ok(false),
                        Err(f) => Err(format!(
                            "{}: asking about change {}: {f}",
                            slot.name, pending.change
                        )),
                    }
                }
                Err(e) => Err(format!("{e:#}")),
            };
            if let Ok(true) = result {
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

    /// Makes every provider's next first throttled answer wait a random
    /// while up to `over` (see [`crate::retry::Pacer::spread`]), where a
    /// leave is one request. Where instances share rrsets that are rewritten
    /// whole (Route53 simple routing), a leave announces, looks and
    /// carries within the stop: spreading its first request over most of
    /// the stop left too little for the rest (measured with 200 agents).
    pub fn spread_retries(&self, over: Duration) {
        for s in &self.slots {
            if s.provider.leaves_in_one_request() {
                s.provider.pacer().spread(over);
            }
        }
    }

    /// Whether any provider is throttling this process now.
    pub fn busy(&self, within: Duration) -> bool {
        self.slots
            .iter()
            .any(|s| s.provider.pacer().busy_within(within))
    }

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
            if let Err(e) = Self::connect(slot, known.as_ref()).await {
                // The join says it too, and retries.
                tracing::warn!(provider = %slot.name, "could not check the rights reaping needs: {e:#}");
                continue;
            }
            let listed = slot.provider.list_registries().await;
            match listed {
                Ok(()) => {}
                Err(crate::provider::Fail::Permanent(e)) => {
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

    /// Whether each desired record is present at its provider.
    pub async fn status(&mut self) -> Result<Vec<Result<Vec<Presence>, String>>, UsageError> {
        let state = self.load_state();
        let mut out = Vec::new();
        for i in 0..self.slots.len() {
            let known = state
                .providers
                .get(&self.slots[i].name)
                .and_then(known_zone);
            if let Err(e) = Self::connect(&mut self.slots[i], known.as_ref()).await {
                out.push(Err(format!("{}: {e:#}", self.slots[i].name)));
                continue;
            }
            let slot = &self.slots[i];
            let zone = slot.provider.zone().clone();
            let records = plan(&self.config, &self.vars, &slot.name, &zone)?.records;
            let got = slot
                .provider
                .presence(&records, Duration::from_secs(60))
                .await;
            out.push(
                got.map(|list| {
                    list.into_iter()
                        .map(|(v, present): (Value, bool)| Presence {
                            provider: slot.name.clone(),
                            record: v.to_line(),
                            present,
                        })
                        .collect()
                })
                .map_err(|e| format!("{e:#}")),
            );
        }
        Ok(out)
    }
}

/// What providers say of a zone id they do not know: Route53's error code,
/// Cloudflare's "Invalid zone identifier" (7003) and "Could not route" (7000).
const ZONE_GONE: [&str; 3] = ["NoSuchHostedZone", "7003 ", "7000 "];

/// The zone a provider's state remembers, if it remembers its id.
fn known_zone(p: &ProviderState) -> Option<KnownZone> {
    Some(KnownZone {
        name: DomainName::new(&p.zone).ok()?,
        id: p.zone_id.clone()?,
    })
}

fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// What this instance wants of one provider: `desired` for a join, nothing
/// for a leave; what the state file remembers of it, unless it was of another zone.
fn intent(
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
    pub result: Result<DryRun, String>,
}

/// The records wanted through a provider of `zone`, or the planning problems.
fn plan(
    config: &Config,
    vars: &Vars,
    provider: &str,
    zone: &DomainName,
) -> Result<Desired, UsageError> {
    desired(config, provider, zone, vars).map_err(|problems| {
        UsageError(
            problems
                .into_iter()
                .map(|(key, message)| format!("{key}: {message}"))
                .collect::<Vec<_>>()
                .join("\n  "),
        )
    })
}

fn lock(state: &std::sync::Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn save(file: &StateFile, state: &State) {
    if let Err(e) = file.save(state) {
        tracing::warn!("{e:#}; `leave` will rely on the ownership registry in DNS");
    }
}

/// What reaping did at one provider.
#[derive(Debug)]
pub struct ReapReport {
    pub provider: String,
    pub result: Result<Vec<Reaped>, String>,
    /// It ended only by running out of time (the provider busy): there may
    /// be more to reap.
    pub out_of_time: bool,
}

async fn reap_slots(slots: &mut [Slot], state: &State, deadline: Duration) -> Vec<ReapReport> {
    let now = unix_now();
    join_all(slots.iter_mut().map(|slot| async move {
        let known = state.providers.get(&slot.name).and_then(known_zone);
        let result = match Engine::connect(slot, known.as_ref()).await {
            Ok(()) => slot.provider.reap(now, deadline).await,
            Err(e) => Err(e),
        };
        ReapReport {
            provider: slot.name.clone(),
            out_of_time: result
                .as_ref()
                .err()
                .is_some_and(|e| e.downcast_ref::<crate::reconcile::OutOfTime>().is_some()),
            result: result.map_err(|e| format!("{e:#}")),
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
        .map(|p| Slot {
            name: p.name.clone(),
            provider: crate::provider::facade::for_config(p, "dnsreg-reaper"),
            connected: false,
            checkpoint: Checkpoint::default(),
        })
        .collect();
    reap_slots(&mut slots, &State::default(), deadline).await
}

/// Prints what reaping did; returns whether every provider could be reaped.
pub fn print_reaped(reports: &[ReapReport]) -> bool {
    let mut ok = true;
    for r in reports {
        match &r.result {
            Ok(list) if list.is_empty() => println!("{}: no expired leases", r.provider),
            Ok(list) => {
                for x in list {
                    println!(
                        "{}: reaped {} (lease expired at {})",
                        r.provider,
                        x.instance,
                        humantime::format_rfc3339_seconds(
                            std::time::UNIX_EPOCH + Duration::from_secs(x.expired)
                        )
                    );
                    for v in &x.removed {
                        println!("{}: - {v}", r.provider);
                    }
                    for v in &x.protected {
                        println!(
                            "{}: = {v} (also claimed by a live instance: left for it)",
                            r.provider
                        );
                    }
                }
            }
            Err(e) => {
                ok = false;
                crate::output::error(format_args!("reap at {}: {e}", r.provider));
            }
        }
    }
    ok
}

/// In the agent: only what was reaped, and failures as warnings.
pub fn print_reaped_quietly(reports: &[ReapReport]) {
    for r in reports {
        match &r.result {
            Ok(list) if list.is_empty() => {}
            Ok(_) => {
                print_reaped(std::slice::from_ref(r));
            }
            Err(e) => tracing::warn!(provider = %r.provider, "reaping expired leases: {e}"),
        }
    }
}

/// What `dnsreg plan` found: whether every provider answered, and whether
/// anything would change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Planned {
    pub ok: bool,
    pub changes: bool,
}

/// Prints what a join or leave would do, as lines or (`json`) one JSON
/// object: per provider `add`, `remove`, `keep_foreign`, `keep_others` and
/// `owned`, each value as its record line, or `error`.
pub fn print_plans(
    action: Action,
    instance_id: &str,
    reports: &[PlanReport],
    json: bool,
) -> Planned {
    let ok = reports.iter().all(|r| r.result.is_ok());
    let changes = reports
        .iter()
        .any(|r| r.result.as_ref().is_ok_and(DryRun::changes));
    let verb = if action == Action::Join {
        "join"
    } else {
        "leave"
    };
    if json {
        let lines = |v: &[Value]| v.iter().map(Value::to_line).collect::<Vec<_>>();
        let providers: serde_json::Map<String, serde_json::Value> = reports
            .iter()
            .map(|r| {
                let entry = match &r.result {
                    Ok(d) => serde_json::json!({
                        "changes": d.changes(),
                        "add": lines(&d.add),
                        "remove": lines(&d.remove),
                        "keep_foreign": lines(&d.keep_foreign),
                        "keep_others": lines(&d.keep_others),
                        "owned": d.owned.iter().map(Value::to_line).collect::<Vec<_>>(),
                    }),
                    Err(e) => serde_json::json!({ "error": e }),
                };
                (r.provider.clone(), entry)
            })
            .collect();
        let doc = serde_json::json!({
            "action": verb,
            "instance_id": instance_id,
            "changes": changes,
            "ok": ok,
            "providers": providers,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("JSON of strings")
        );
        for r in reports {
            if let Err(e) = &r.result {
                crate::output::error(format_args!("plan at {}: {e}", r.provider));
            }
        }
        return Planned { ok, changes };
    }
    let (mut adds, mut removes) = (0, 0);
    for r in reports {
        match &r.result {
            Ok(d) => {
                adds += d.add.len();
                removes += d.remove.len();
                print_values(&r.provider, "+", &d.add, "");
                print_values(&r.provider, "-", &d.remove, "");
                print_values(&r.provider, "=", &d.keep_foreign, FOREIGN);
                print_values(
                    &r.provider,
                    "=",
                    &d.keep_others,
                    "not this instance's to change: left alone",
                );
                if !d.changes() {
                    println!(
                        "{}: nothing to change ({} record{} owned)",
                        r.provider,
                        d.owned.len(),
                        if d.owned.len() == 1 { "" } else { "s" }
                    );
                } else if d.add.is_empty() && d.remove.is_empty() {
                    println!(
                        "{}: no record to add or remove; this instance's claims would change (its ownership registry)",
                        r.provider
                    );
                }
            }
            Err(e) => crate::output::error(format_args!("plan at {}: {e}", r.provider)),
        }
    }
    if changes {
        println!(
            "{verb} would add {adds} and remove {removes} record{}; nothing was changed (dry run)",
            if removes == 1 { "" } else { "s" }
        );
    } else if ok {
        println!("{verb} would change nothing");
    }
    Planned { ok, changes }
}

/// What a value a person put there is called where it is left alone.
const FOREIGN: &str = "already there, put there by someone else: left alone";

/// `provider: MARK value (note)` for each value.
fn print_values(provider: &str, mark: &str, values: &[Value], note: &str) {
    for v in values {
        if note.is_empty() {
            println!("{provider}: {mark} {v}");
        } else {
            println!("{provider}: {mark} {v} ({note})");
        }
    }
}

/// Prints reports as users read them; returns whether all succeeded.
pub fn print_reports(action: Action, reports: &[Report]) -> bool {
    let mut ok = true;
    for r in reports {
        match &r.result {
            Ok(o) => {
                print_values(&r.provider, "+", &o.added, "");
                print_values(&r.provider, "-", &o.removed, "");
                print_values(&r.provider, "=", &o.foreign, FOREIGN);
                print_values(
                    &r.provider,
                    "=",
                    &o.protected,
                    "also claimed by another instance: left for it",
                );
                if o.handed_off {
                    for v in &o.announced {
                        println!(
                            "{}: - {v} (announced, not yet removed: the next instance to write this name removes it, or a reaper once the lease runs out)",
                            r.provider
                        );
                    }
                } else if !o.changed() {
                    let what = if action == Action::Join {
                        "already published"
                    } else {
                        "nothing of ours to remove"
                    };
                    println!(
                        "{}: {what} ({} record{} owned)",
                        r.provider,
                        o.owned.len(),
                        if o.owned.len() == 1 { "" } else { "s" }
                    );
                }
            }
            Err(e) => {
                ok = false;
                crate::output::error(format_args!(
                    "{} at {}: {e}",
                    if action == Action::Join {
                        "join"
                    } else {
                        "leave"
                    },
                    r.provider
                ));
            }
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    //! The engine against the Cloudflare stand-in over loopback, each
    //! instance with its state file in a temporary directory. Real time, as
    //! in the agent's tests: the stand-in answers over loopback.

    use testkit::cloudflare::{CfFault, CloudflareServer};

    use super::*;
    use crate::provider::Values;
    use crate::record::{Record, Value};
    use crate::state::ProviderState;

    #[test]
    fn a_leave_looks_where_the_configuration_publishes_whatever_the_state_file_says() {
        // A first join cut off before it completed leaves nothing in the
        // state file; its leave must still know which rrsets it touches (and
        // so that it shares them with a fleet). A join is given what the
        // state file says only.
        let zone = DomainName::new("example.com").unwrap();
        let record = |line: &str| Record {
            value: Value::from_line(line).unwrap(),
            ttl: 60,
        };
        let desired = Desired {
            records: vec![
                record("www.example.com. A 192.0.2.1"),
                record("h.example.com. A 192.0.2.1"),
            ],
            exclusive: BTreeSet::from([record("h.example.com. A 192.0.2.1").value.key()]),
        };
        let empty = ProviderState::default();
        let remembered = ProviderState {
            published: Values::from([Value::from_line("old.example.com. A 192.0.2.9").unwrap()]),
            ..ProviderState::default()
        };
        let leave = intent(
            Action::Leave,
            &Vars::sample(),
            desired.clone(),
            &empty,
            &zone,
            DEADLINE,
            None,
        );
        assert!(leave.leaving && leave.desired.is_empty());
        assert_eq!(
            leave.known,
            desired
                .records
                .iter()
                .map(|r| r.value.clone())
                .collect::<Values>()
        );
        let leave = intent(
            Action::Leave,
            &Vars::sample(),
            desired.clone(),
            &remembered,
            &zone,
            DEADLINE,
            None,
        );
        assert_eq!(leave.known.len(), 3, "{:?}", leave.known);
        let join = intent(
            Action::Join,
            &Vars::sample(),
            desired,
            &remembered,
            &zone,
            DEADLINE,
            None,
        );
        assert_eq!(join.known, remembered.published);
    }

    const TOKEN: &str = "engine-test-token";
    const DEADLINE: Duration = Duration::from_secs(30);

    /// One host name per instance at provider `a`.
    const HOST_AT_A: &str = "[[host]]\nproviders = [\"a\"]\nname = \"{instance_id}\"\n";

    /// Zones `a.example` and `b.example` at one Cloudflare stand-in, seen by
    /// every configuration as providers `a` and `b`.
    struct World {
        dir: tempfile::TempDir,
        cf: CloudflareServer,
        a: String,
        b: String,
    }

    fn identity(id: &str, ipv4: &str) -> Identity {
        Identity {
            cloud: crate::config::MetadataKind::None,
            detected_by: "test".into(),
            instance_id: id.into(),
            region: None,
            availability_zone: None,
            hostname: None,
            public_ipv4: Some(ipv4.parse().unwrap()),
            private_ipv4: None,
            ipv6: None,
        }
    }

    impl World {
        fn new() -> World {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("token"), TOKEN).unwrap();
            let cf = CloudflareServer::start();
            cf.add_token(TOKEN, true);
            let a = cf.create_zone("a.example");
            let b = cf.create_zone("b.example");
            World { dir, cf, a, b }
        }

        fn state_dir(&self, id: &str) -> std::path::PathBuf {
            self.dir.path().join(id)
        }

        /// Instance `id`'s configuration: providers `a` and `b`, then `records`.
        fn config(&self, id: &str, records: &str) -> Config {
            let mut text = format!(
                "[instance]\nmetadata = \"none\"\nid = \"{id}\"\nipv4 = \"203.0.113.7\"\n\n\
                 [agent]\nstate_dir = {:?}\n\n",
                self.state_dir(id).display().to_string()
            );
            for (name, zone) in [("a", "a.example"), ("b", "b.example")] {
                text.push_str(&format!(
                    "[providers.{name}]\ntype = \"cloudflare\"\nzone = \"{zone}\"\n\
                     endpoint = \"{}\"\ntoken_file = {:?}\n\n",
                    self.cf.url(),
                    self.dir.path().join("token").display().to_string()
                ));
            }
            text.push_str(records);
            crate::config::parse("engine-test.toml", &text).unwrap()
        }

        fn engine(&self, id: &str, ipv4: &str, records: &str) -> Engine {
            Engine::new(self.config(id, records), &identity(id, ipv4)).unwrap()
        }

        fn state(&self, id: &str) -> State {
            StateFile::new(&self.state_dir(id)).load().unwrap()
        }

        fn save_state(&self, id: &str, state: &State) {
            StateFile::new(&self.state_dir(id)).save(state).unwrap();
        }
    }

    fn lines(values: &[Value]) -> Vec<String> {
        values.iter().map(Value::to_line).collect()
    }

    /// Each provider's rows of `status`: (provider, record, present).
    async fn status(e: &mut Engine) -> Vec<(String, String, bool)> {
        e.status()
            .await
            .unwrap()
            .into_iter()
            .flat_map(|r| r.unwrap())
            .map(|p| (p.provider, p.record, p.present))
            .collect()
    }

    fn row(provider: &str, record: &str, present: bool) -> (String, String, bool) {
        (provider.into(), record.into(), present)
    }

    #[tokio::test]
    async fn a_join_publishes_at_every_provider_and_a_later_leave_removes_it() {
        let w = World::new();
        let both = "[[host]]\nproviders = [\"a\", \"b\"]\nname = \"{instance_id}\"\n";
        let mut e = w.engine("i-0abc", "203.0.113.7", both);
        let (at_a, at_b) = (
            "i-0abc.a.example. A 203.0.113.7",
            "i-0abc.b.example. A 203.0.113.7",
        );
        assert_eq!(
            status(&mut e).await,
            [row("a", at_a, false), row("b", at_b, false)]
        );

        let reports = e.sync(Action::Join, DEADLINE).await.unwrap();
        let added: Vec<(&str, Vec<String>)> = reports
            .iter()
            .map(|r| {
                (
                    r.provider.as_str(),
                    lines(&r.result.as_ref().unwrap().added),
                )
            })
            .collect();
        assert_eq!(added, [("a", vec![at_a.into()]), ("b", vec![at_b.into()])]);
        assert!(print_reports(Action::Join, &reports));
        assert_eq!(w.cf.values(&w.a, "i-0abc.a.example", "A"), ["203.0.113.7"]);
        assert_eq!(w.cf.values(&w.b, "i-0abc.b.example", "A"), ["203.0.113.7"]);
        assert_eq!(
            status(&mut e).await,
            [row("a", at_a, true), row("b", at_b, true)]
        );

        // The state file keeps, per provider, the zone and its id and what
        // was published, for the next process of this instance.
        let state = w.state("i-0abc");
        assert_eq!(state.instance_id, "i-0abc");
        for (name, zone, id, value) in [
            ("a", "a.example.", &w.a, at_a),
            ("b", "b.example.", &w.b, at_b),
        ] {
            let p = &state.providers[name];
            assert_eq!(p.zone, zone);
            assert_eq!(p.zone_id.as_ref(), Some(id));
            let published: Vec<String> = p.published.iter().map(Value::to_line).collect();
            assert!(published.contains(&value.to_string()), "{published:?}");
        }

        // Restarted, the instance leaves: with the zones' ids remembered it
        // asks for no zone, and removes everything it wrote.
        let mut e = w.engine("i-0abc", "203.0.113.7", both);
        w.cf.reset_stats();
        let reports = e.sync(Action::Leave, DEADLINE).await.unwrap();
        let removed: Vec<(&str, Vec<String>)> = reports
            .iter()
            .map(|r| {
                (
                    r.provider.as_str(),
                    lines(&r.result.as_ref().unwrap().removed),
                )
            })
            .collect();
        assert_eq!(
            removed,
            [("a", vec![at_a.into()]), ("b", vec![at_b.into()])]
        );
        assert!(print_reports(Action::Leave, &reports));
        assert!(w.cf.records(&w.a).is_empty(), "{:?}", w.cf.records(&w.a));
        assert!(w.cf.records(&w.b).is_empty(), "{:?}", w.cf.records(&w.b));
        assert_eq!(w.cf.stats().requests.get("GET zones"), None);
        assert_eq!(
            status(&mut e).await,
            [row("a", at_a, false), row("b", at_b, false)]
        );
    }

    #[tokio::test]
    async fn a_planning_error_at_one_provider_writes_nothing_at_any() {
        let w = World::new();
        // This instance has no region (the sample identity that checked the
        // configuration had one).
        let records = format!("{HOST_AT_A}[[host]]\nproviders = [\"b\"]\nname = \"{{region}}\"\n");
        let mut e = w.engine("i-0abc", "203.0.113.7", &records);
        let e = e.sync(Action::Join, DEADLINE).await.unwrap_err();
        assert!(
            e.0.contains("host[1].name: `{region}` needs {region}"),
            "{e}"
        );
        assert!(w.cf.records(&w.a).is_empty(), "{:?}", w.cf.records(&w.a));
    }

    #[tokio::test]
    async fn each_provider_s_names_are_planned_in_its_own_zone() {
        let w = World::new();
        let records = "[[host]]\nproviders = [\"a\"]\nname = \"www.a.example.\"\n\
                       [[host]]\nproviders = [\"b\"]\nname = \"www.b.example.\"\n";
        let mut e = w.engine("i-0abc", "203.0.113.7", records);
        let reports = e.sync(Action::Join, DEADLINE).await.unwrap();
        assert!(print_reports(Action::Join, &reports));
        assert_eq!(w.cf.values(&w.a, "www.a.example", "A"), ["203.0.113.7"]);
        assert_eq!(w.cf.values(&w.b, "www.b.example", "A"), ["203.0.113.7"]);
    }

    #[tokio::test]
    async fn a_new_address_replaces_the_old_one_and_a_new_instance_id_is_refused() {
        let w = World::new();
        let mut e = w.engine("i-0abc", "203.0.113.7", HOST_AT_A);
        assert!(!e.set_identity(&identity("i-0abc", "203.0.113.7")).unwrap());
        e.sync(Action::Join, DEADLINE).await.unwrap();
        assert_eq!(w.cf.values(&w.a, "i-0abc.a.example", "A"), ["203.0.113.7"]);

        assert!(e.set_identity(&identity("i-0abc", "203.0.113.8")).unwrap());
        assert_eq!(e.vars().ipv4.to_string(), "203.0.113.8");
        let reports = e.sync(Action::Join, DEADLINE).await.unwrap();
        assert!(print_reports(Action::Join, &reports));
        assert_eq!(w.cf.values(&w.a, "i-0abc.a.example", "A"), ["203.0.113.8"]);

        let err = e
            .set_identity(&identity("i-0def", "203.0.113.8"))
            .unwrap_err();
        assert!(err.to_string().contains("restart dnsreg"), "{err}");
        assert_eq!(e.vars().instance_id, "i-0abc");
    }

    /// A state file of `id` with a change accepted `ago` at provider `a`.
    fn pending_at_a(w: &World, id: &str, ago: Duration) -> State {
        let mut state = State {
            version: 1,
            instance_id: id.into(),
            ..State::default()
        };
        state.providers.insert(
            "a".into(),
            ProviderState {
                zone: "a.example.".into(),
                zone_id: Some(w.a.clone()),
                pending: Some(Pending {
                    change: "change-1".into(),
                    accepted_ms: unix_now_ms() - u64::try_from(ago.as_millis()).unwrap(),
                }),
                ..ProviderState::default()
            },
        );
        state
    }

    #[tokio::test]
    async fn a_confirmed_change_is_forgotten_and_how_long_it_took_times_the_next() {
        let w = World::new();
        w.save_state(
            "i-0abc",
            &pending_at_a(&w, "i-0abc", Duration::from_secs(3)),
        );
        let mut e = w.engine("i-0abc", "203.0.113.7", HOST_AT_A);
        // Accepted 3 s ago; a first change is expected live after 10 s.
        let due = e.confirm_due(Duration::from_secs(10)).unwrap();
        assert!(
            due > Duration::from_secs(6) && due <= Duration::from_secs(7),
            "{due:?}"
        );

        // Cloudflare's changes are live once accepted.
        let got = e.confirm().await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(
            (got[0].provider.as_str(), got[0].change.as_str()),
            ("a", "change-1")
        );
        assert_eq!(got[0].result, Ok(true));
        assert!(
            got[0].after >= Duration::from_secs(3) && got[0].after < Duration::from_secs(60),
            "{:?}",
            got[0].after
        );
        let kept = &w.state("i-0abc").providers["a"];
        assert_eq!(kept.pending, None);
        let took = kept.live_after_ms.unwrap();
        assert!((3000..60_000).contains(&took), "{took}");
        assert_eq!(e.confirm_due(Duration::from_secs(10)), None);
        assert!(e.confirm().await.is_empty());

        // The next change accepted now is expected live as late as the last
        // one was, not after the first guess.
        let mut state = w.state("i-0abc");
        state.providers.get_mut("a").unwrap().pending = Some(Pending {
            change: "change-2".into(),
            accepted_ms: unix_now_ms(),
        });
        w.save_state("i-0abc", &state);
        let due = e.confirm_due(Duration::from_secs(10)).unwrap();
        assert!(
            due <= Duration::from_millis(took)
                && due > Duration::from_millis(took) - Duration::from_secs(2),
            "{due:?} {took}"
        );
    }

    #[tokio::test]
    async fn a_change_pending_at_a_provider_no_longer_configured_is_not_waited_for() {
        let w = World::new();
        // Provider `gone` had a change accepted and not yet confirmed (`join
        // --no-wait`, or an agent stopped before asking), then was taken out
        // of the configuration: nothing asks it any more, and `join` waited
        // for it until LIVE_DEADLINE (3 min), then failed.
        let mut state = pending_at_a(&w, "i-0abc", Duration::from_secs(3));
        let gone = state.providers.remove("a").unwrap();
        state.providers.insert("gone".into(), gone);
        w.save_state("i-0abc", &state);
        let mut e = w.engine("i-0abc", "203.0.113.7", HOST_AT_A);
        assert!(e.confirm().await.is_empty());
        assert_eq!(e.confirm_due(Duration::from_secs(10)), None);
    }

    #[tokio::test]
    async fn another_instance_s_state_file_is_not_this_one_s() {
        let w = World::new();
        w.save_state(
            "i-0abc",
            &pending_at_a(&w, "i-0def", Duration::from_secs(3)),
        );
        let mut e = w.engine("i-0abc", "203.0.113.7", HOST_AT_A);
        assert!(e.confirm().await.is_empty());
        e.sync(Action::Join, DEADLINE).await.unwrap();
        let state = w.state("i-0abc");
        assert_eq!(state.instance_id, "i-0abc");
        assert_eq!(state.providers["a"].pending, None);
    }

    #[tokio::test]
    async fn a_provider_that_throttled_this_process_is_busy_for_a_while() {
        let w = World::new();
        let mut e = w.engine("i-0abc", "203.0.113.7", HOST_AT_A);
        assert!(!e.busy(Duration::from_secs(60)));
        w.cf.fail_next(
            1,
            CfFault::RateLimited {
                retry_after_secs: 1,
            },
        );
        let reports = e.sync(Action::Join, DEADLINE).await.unwrap();
        assert!(print_reports(Action::Join, &reports));
        assert!(e.busy(Duration::from_secs(60)));
    }

    #[tokio::test]
    async fn a_reaping_agent_that_may_not_list_the_registries_refuses_to_start() {
        let w = World::new();
        let mut e = w.engine("i-0abc", "203.0.113.7", HOST_AT_A);
        assert!(print_reports(
            Action::Join,
            &e.sync(Action::Join, DEADLINE).await.unwrap()
        ));
        e.check_reap_rights().await.unwrap();
        // Provider `a` answers the listing 403: the token lacks the right.
        w.cf.fail_next(1, CfFault::ServerError(403));
        let err = e.check_reap_rights().await.unwrap_err();
        assert!(
            format!("{err:#}").starts_with("a: this agent reaps expired leases"),
            "{err:#}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_spreads_the_first_retries_where_instances_write_apart() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[instance]\nmetadata = \"none\"\nid = \"i-0abc\"\nipv4 = \"203.0.113.7\"\n\n\
             [agent]\nstate_dir = {:?}\n\n\
             [providers.cf]\ntype = \"cloudflare\"\nzone = \"example.com\"\n\n\
             [providers.simple]\ntype = \"route53\"\nzone = \"example.net\"\n\n\
             [providers.multi]\ntype = \"route53\"\nzone = \"example.org\"\nrouting = \"multivalue\"\n\n\
             [[host]]\nproviders = [\"cf\", \"simple\", \"multi\"]\nname = \"{{instance_id}}\"\n",
            dir.path().display().to_string()
        );
        let config = crate::config::parse("engine-test.toml", &text).unwrap();
        let e = Engine::new(config, &identity("i-0abc", "203.0.113.7")).unwrap();
        e.spread_retries(Duration::from_secs(1000 * 3600));
        // Draws from a seed: the check below is not left to odds.
        crate::retry::SEEDED.with(|r| {
            *r.borrow_mut() = Some(rand::SeedableRng::seed_from_u64(1));
        });
        let mut waited = Vec::new();
        for s in &e.slots {
            // A first "too many requests" without Retry-After.
            let pacer = s.provider.pacer();
            pacer.busy("throttled", None);
            let start = tokio::time::Instant::now();
            pacer.ready().await;
            waited.push((s.name.as_str(), start.elapsed() > Duration::from_secs(3600)));
        }
        crate::retry::SEEDED.with(|r| *r.borrow_mut() = None);
        // Spread over up to 1000 h, but not where every instance rewrites
        // the one shared rrset (Route53 simple routing): there a leave must
        // announce, look and carry within the stop too.
        waited.sort_unstable();
        assert_eq!(waited, [("cf", true), ("multi", true), ("simple", false)]);
    }

    #[tokio::test]
    async fn a_restarted_instance_with_nothing_to_change_lists_once_per_provider() {
        let w = World::new();
        let mut e = w.engine("i-0abc", "203.0.113.7", HOST_AT_A);
        e.sync(Action::Join, DEADLINE).await.unwrap();
        // README "Performance": a later join with nothing to change costs one
        // listing of the records naming the instance at each provider (`b`
        // has none), from what the state file remembers; no write.
        let mut e = w.engine("i-0abc", "203.0.113.7", HOST_AT_A);
        w.cf.reset_stats();
        let reports = e.sync(Action::Join, DEADLINE).await.unwrap();
        assert!(
            reports
                .iter()
                .all(|r| !r.result.as_ref().unwrap().changed())
        );
        assert_eq!(
            w.cf.stats().requests,
            [("GET dns_records".to_string(), 2)].into()
        );
    }

    /// Sets `id`'s lease at zone `a` to have run out a minute ago.
    fn expire(w: &World, id: &str) {
        let name = format!("{id}._dnsreg.a.example");
        let mut record =
            w.cf.records(&w.a)
                .into_iter()
                .find(|r| r.name == name && r.content.contains("dnsreg1-lease "))
                .unwrap_or_else(|| panic!("no lease at {name}"));
        let at = record
            .content
            .trim_matches('"')
            .strip_prefix("dnsreg1-lease ")
            .unwrap()
            .to_string();
        record.content = record.content.replace(&at, &(unix_now() - 60).to_string());
        w.cf.put_record(&w.a, record);
    }

    /// Each report as `provider: instance - value` lines, one per value
    /// reaped (`provider: nothing` when there was no expired lease).
    fn reaped(reports: &[ReapReport]) -> Vec<String> {
        let mut out = Vec::new();
        for r in reports {
            let list = r.result.as_ref().unwrap();
            if list.is_empty() {
                out.push(format!("{}: nothing", r.provider));
            }
            for x in list {
                out.extend(
                    x.removed
                        .iter()
                        .map(|v| format!("{}: {} - {v}", r.provider, x.instance)),
                );
            }
        }
        out
    }

    #[tokio::test]
    async fn expired_leases_are_reaped_by_an_agent_and_by_dnsreg_reap() {
        let w = World::new();
        let records = format!("{HOST_AT_A}[lease]\nttl = \"1h\"\n");
        for (id, ip) in [("i-dead1", "203.0.113.8"), ("i-dead2", "203.0.113.9")] {
            let mut e = w.engine(id, ip, &records);
            let joined = e.sync(Action::Join, DEADLINE).await.unwrap();
            assert!(print_reports(Action::Join, &joined));
        }
        let mut live = w.engine("i-live", "203.0.113.7", &records);
        let joined = live.sync(Action::Join, DEADLINE).await.unwrap();
        assert!(print_reports(Action::Join, &joined));

        let nothing = live.reap(DEADLINE).await;
        assert_eq!(reaped(&nothing), ["a: nothing", "b: nothing"]);
        assert!(print_reaped(&nothing));

        expire(&w, "i-dead1");
        let reports = live.reap(DEADLINE).await;
        assert_eq!(
            reaped(&reports),
            [
                "a: i-dead1 - i-dead1.a.example. A 203.0.113.8",
                "b: nothing"
            ]
        );
        assert!(print_reaped(&reports));

        // `dnsreg reap`, from the configuration alone.
        expire(&w, "i-dead2");
        let reports = reap_once(&w.config("i-live", &records), DEADLINE).await;
        assert_eq!(
            reaped(&reports),
            [
                "a: i-dead2 - i-dead2.a.example. A 203.0.113.9",
                "b: nothing"
            ]
        );
        assert!(print_reaped(&reports));
        let left: Vec<String> = w.cf.records(&w.a).into_iter().map(|r| r.name).collect();
        assert!(left.iter().all(|n| n.starts_with("i-live.")), "{left:?}");

        // Throttled past its deadline: a failure, and out of time (the agent
        // reaps again soon rather than a whole interval later).
        w.cf.fail_next(
            4,
            CfFault::RateLimited {
                retry_after_secs: 1,
            },
        );
        let reports = live.reap(Duration::from_millis(500)).await;
        assert!(!print_reaped(&reports));
        assert!(
            reports.iter().any(|r| r.out_of_time && r.result.is_err()),
            "{reports:?}"
        );
    }

    #[test]
    fn a_failure_at_any_provider_fails_the_command() {
        let ok = || Report {
            provider: "a".into(),
            result: Ok(Outcome::default()),
            out_of_time: false,
        };
        let failed = || Report {
            provider: "b".into(),
            result: Err("refused".into()),
            out_of_time: false,
        };
        for action in [Action::Join, Action::Leave] {
            assert!(print_reports(action, &[ok()]));
            assert!(!print_reports(action, &[ok(), failed()]));
        }
        let reaped = ReapReport {
            provider: "a".into(),
            result: Ok(Vec::new()),
            out_of_time: false,
        };
        let failed = ReapReport {
            provider: "b".into(),
            result: Err("refused".into()),
            out_of_time: false,
        };
        assert!(print_reaped(std::slice::from_ref(&reaped)));
        assert!(!print_reaped(&[reaped, failed]));
    }
}
