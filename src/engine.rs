//! Join, leave and status across every configured provider, with the state file.
//!
//! Shared by the one-shot commands and the agent. Each provider is handled on its
//! own: one that fails does not stop the others, and the report says which did
//! what. Planning happens for every provider before anything is written, so a
//! planning error (a name outside a zone known only by id) changes nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;

use crate::config::{Config, ProviderKind, UsageError};
use crate::metadata::Identity;
use crate::plan::{Vars, desired};
use futures_util::future::join_all;

use crate::provider::{
    Cloudflare, Intent, Outcome, Provider, Rfc2136, Route53, Values, apply, presence,
};
use crate::provider::{Reaped, reap, unix_now};
use crate::record::{DomainName, Record, Value};
use crate::state::{ProviderState, State, StateFile};

/// Every provider type, for dispatch.
pub enum AnyProvider {
    Route53(Route53),
    Cloudflare(Cloudflare),
    Rfc2136(Rfc2136),
}

impl AnyProvider {
    fn new(cfg: &crate::config::ProviderConfig, instance_id: &str) -> AnyProvider {
        match &cfg.kind {
            ProviderKind::Route53(r) => {
                AnyProvider::Route53(Route53::new(&cfg.name, r.clone(), instance_id))
            }
            ProviderKind::Cloudflare(c) => {
                AnyProvider::Cloudflare(Cloudflare::new(&cfg.name, c.clone(), instance_id))
            }
            ProviderKind::Rfc2136(r) => AnyProvider::Rfc2136(Rfc2136::new(&cfg.name, r.clone())),
        }
    }
}

/// Calls a generic function with the concrete provider.
macro_rules! with_provider {
    ($p:expr, $v:ident => $body:expr) => {
        match $p {
            AnyProvider::Route53($v) => $body,
            AnyProvider::Cloudflare($v) => $body,
            AnyProvider::Rfc2136($v) => $body,
        }
    };
}

struct Slot {
    name: String,
    provider: AnyProvider,
    connected: bool,
}

/// What happened at one provider.
#[derive(Debug, Serialize)]
pub struct Report {
    pub provider: String,
    pub zone: String,
    #[serde(skip)]
    pub result: Result<Outcome, String>,
}

impl Report {
    fn timed_out(provider: String, deadline: Duration) -> Report {
        Report {
            provider,
            zone: String::new(),
            result: Err(format!(
                "gave up after {}: its records may be partly changed; \
                 the next run or reconcile finishes the work",
                humantime::format_duration(deadline)
            )),
        }
    }
}

/// One desired record's presence, for `status`.
#[derive(Debug, Serialize)]
pub struct Presence {
    pub provider: String,
    pub record: String,
    pub present: bool,
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

impl Engine {
    /// Prepares providers for `identity`; no network call yet.
    pub fn new(config: Config, identity: &Identity) -> Result<Engine, UsageError> {
        let vars = crate::metadata::vars(identity, &config.instance).map_err(UsageError)?;
        let slots = config
            .providers
            .iter()
            .map(|p| Slot {
                name: p.name.clone(),
                provider: AnyProvider::new(p, &vars.instance_id),
                connected: false,
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
            return Some(with_provider!(&slot.provider, p => p.zone().clone()));
        }
        let cfg = self.config.providers.iter().find(|p| p.name == slot.name)?;
        match &cfg.kind {
            ProviderKind::Route53(r) => match &r.zone {
                crate::config::ZoneRef::Name(zone) => Some(zone.clone()),
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
    pub fn set_identity(&mut self, identity: &Identity) -> Result<bool, UsageError> {
        let vars = crate::metadata::vars(identity, &self.config.instance).map_err(UsageError)?;
        if vars.instance_id != self.vars.instance_id {
            return Err(UsageError(format!(
                "the instance id changed from {} to {}; restart dnsreg",
                self.vars.instance_id, vars.instance_id
            )));
        }
        let changed = vars != self.vars;
        self.vars = vars;
        Ok(changed)
    }

    async fn connect(slot: &mut Slot) -> anyhow::Result<()> {
        if !slot.connected {
            with_provider!(&mut slot.provider, p => p.connect().await)?;
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
    /// work concurrently, each from connect to confirmed change on its own: one
    /// that is down (retrying for minutes) does not hold up the others, and each
    /// gets `deadline` for all of it.
    pub async fn sync_only(
        &mut self,
        action: Action,
        deadline: Duration,
        only: Option<&BTreeSet<String>>,
    ) -> Result<Vec<Report>, UsageError> {
        let selected = |name: &str| only.is_none_or(|o| o.contains(name));
        // Plan every provider whose zone is already known before anything is
        // written: a planning error then changes nothing anywhere. Only a Route53
        // zone given by id is learnt at connect, and planned after it.
        for slot in self.slots.iter().filter(|s| selected(&s.name)) {
            if let Some(zone) = self.zone_before_connect(slot) {
                plan(&self.config, &self.vars, &slot.name, &zone)?;
            }
        }
        let mut state = match self.state.load() {
            Ok(s) => s,
            Err(e) => {
                // Without the file we still have the registry in DNS; say so and go on.
                tracing::warn!("{e:#}");
                Default::default()
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
        let state = std::sync::Mutex::new(state);

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
                // Each provider gets `deadline` from connect to confirmation;
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
        if let Err(e) = Self::connect(slot).await {
            return Ok(Report {
                provider: slot.name.clone(),
                zone: String::new(),
                result: Err(format!("{e:#}")),
            });
        }
        let zone = with_provider!(&slot.provider, p => p.zone().clone());
        let records = plan(config, vars, &slot.name, &zone)?;
        let known: Values = lock(state)
            .providers
            .get(&slot.name)
            .map(|s| s.published.clone())
            .unwrap_or_default();
        // Before writing, remember everything that may be published after it.
        if action == Action::Join {
            let mut s = lock(state);
            let mut intent_state = known.clone();
            intent_state.extend(records.iter().map(|r| r.value.clone()));
            s.providers.insert(
                slot.name.clone(),
                ProviderState {
                    zone: zone.to_string(),
                    published: intent_state,
                },
            );
            save(file, &s);
        }
        let intent = Intent {
            instance_id: vars.instance_id.clone(),
            desired: records,
            leaving: action == Action::Leave,
            known,
            deadline,
            lease,
        };
        let result = with_provider!(&slot.provider, p => apply(p, &intent).await);
        match &result {
            Ok(outcome) => {
                let mut s = lock(state);
                // A protected old value is another instance's now: forget it.
                if outcome.owned.is_empty() {
                    s.providers.remove(&slot.name);
                } else {
                    s.providers.insert(
                        slot.name.clone(),
                        ProviderState {
                            zone: zone.to_string(),
                            published: outcome.owned.clone(),
                        },
                    );
                }
                save(file, &s);
            }
            Err(e) => tracing::debug!(provider = %slot.name, "{e:#}"),
        }
        Ok(Report {
            provider: slot.name.clone(),
            zone: zone.to_string(),
            result: result.map_err(|e| format!("{e:#}")),
        })
    }

    /// Reaps expired leases at every provider, concurrently (see [`crate::provider::reap`]).
    pub async fn reap(&mut self, deadline: Duration) -> Vec<ReapReport> {
        reap_slots(&mut self.slots, deadline).await
    }

    /// Whether each desired record is present at its provider.
    pub async fn status(&mut self) -> Result<Vec<Result<Vec<Presence>, String>>, UsageError> {
        let mut out = Vec::new();
        for i in 0..self.slots.len() {
            if let Err(e) = Self::connect(&mut self.slots[i]).await {
                out.push(Err(format!("{}: {e:#}", self.slots[i].name)));
                continue;
            }
            let slot = &self.slots[i];
            let zone = with_provider!(&slot.provider, p => p.zone().clone());
            let records = plan(&self.config, &self.vars, &slot.name, &zone)?;
            let got = with_provider!(&slot.provider, p => presence(p, &records).await);
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

/// The records wanted through a provider of `zone`, or the planning problems.
fn plan(
    config: &Config,
    vars: &Vars,
    provider: &str,
    zone: &DomainName,
) -> Result<Vec<Record>, UsageError> {
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
}

async fn reap_slots(slots: &mut [Slot], deadline: Duration) -> Vec<ReapReport> {
    let now = unix_now();
    join_all(slots.iter_mut().map(|slot| async move {
        let result = match Engine::connect(slot).await {
            Ok(()) => with_provider!(&slot.provider, p => reap(p, now, deadline).await),
            Err(e) => Err(e),
        };
        ReapReport {
            provider: slot.name.clone(),
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
            provider: AnyProvider::new(p, "dnsreg-reaper"),
            connected: false,
        })
        .collect();
    reap_slots(&mut slots, deadline).await
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
                eprintln!("dnsreg: reap at {}: {e}", r.provider);
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

/// Prints reports as users read them; returns whether all succeeded.
pub fn print_reports(action: Action, reports: &[Report]) -> bool {
    let mut ok = true;
    for r in reports {
        match &r.result {
            Ok(o) => {
                for v in &o.added {
                    println!("{}: + {v}", r.provider);
                }
                for v in &o.removed {
                    println!("{}: - {v}", r.provider);
                }
                for v in &o.foreign {
                    println!(
                        "{}: = {v} (already there, put there by someone else: left alone)",
                        r.provider
                    );
                }
                for v in &o.protected {
                    println!(
                        "{}: = {v} (also claimed by another instance: left for it)",
                        r.provider
                    );
                }
                if !o.changed() {
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
                eprintln!(
                    "dnsreg: {} at {}: {e}",
                    if action == Action::Join {
                        "join"
                    } else {
                        "leave"
                    },
                    r.provider
                );
            }
        }
    }
    ok
}
