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
mod tests;
