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
use crate::record::{Record, Value};
use crate::state::{ProviderState, StateFile};

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

    /// The records wanted through each connected provider, or the planning problems.
    fn plan(&self, slot: &Slot) -> Result<Vec<Record>, UsageError> {
        let zone = with_provider!(&slot.provider, p => p.zone().clone());
        desired(&self.config, &slot.name, &zone, &self.vars).map_err(|problems| {
            UsageError(
                problems
                    .into_iter()
                    .map(|(key, message)| format!("{key}: {message}"))
                    .collect::<Vec<_>>()
                    .join("\n  "),
            )
        })
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
    /// work concurrently: one that is down (retrying for minutes) does not hold
    /// up the others.
    pub async fn sync_only(
        &mut self,
        action: Action,
        deadline: Duration,
        only: Option<&BTreeSet<String>>,
    ) -> Result<Vec<Report>, UsageError> {
        let selected = |name: &str| only.is_none_or(|o| o.contains(name));
        let connected: Vec<Result<(), String>> =
            join_all(self.slots.iter_mut().map(|slot| async move {
                if !selected(&slot.name) {
                    return Err(String::new());
                }
                Self::connect(slot).await.map_err(|e| format!("{e:#}"))
            }))
            .await;
        let mut reports = Vec::new();
        let mut plans: Vec<Option<Vec<Record>>> = Vec::new();
        for (slot, connected) in self.slots.iter().zip(connected) {
            match connected {
                Ok(()) => plans.push(Some(self.plan(slot)?)),
                Err(e) => {
                    plans.push(None);
                    if !e.is_empty() {
                        reports.push(Report {
                            provider: slot.name.clone(),
                            zone: String::new(),
                            result: Err(e),
                        });
                    }
                }
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

        // Before writing, remember everything that may be published after it.
        let mut intents = Vec::new();
        for (slot, plan) in self.slots.iter().zip(plans) {
            let Some(records) = plan else {
                intents.push(None);
                continue;
            };
            let zone = with_provider!(&slot.provider, p => p.zone().clone());
            let known: Values = state
                .providers
                .get(&slot.name)
                .map(|s| s.published.clone())
                .unwrap_or_default();
            if action == Action::Join {
                let mut intent_state = known.clone();
                intent_state.extend(records.iter().map(|r| r.value.clone()));
                state.providers.insert(
                    slot.name.clone(),
                    ProviderState {
                        zone: zone.to_string(),
                        published: intent_state,
                    },
                );
            }
            intents.push(Some((
                zone,
                Intent {
                    instance_id: self.vars.instance_id.clone(),
                    desired: records,
                    leaving: action == Action::Leave,
                    known,
                    deadline,
                    lease: self.config.lease.map(|l| l.ttl),
                },
            )));
        }
        if action == Action::Join {
            self.save(&state);
        }

        let results = join_all(
            self.slots
                .iter()
                .zip(&intents)
                .map(|(slot, intent)| async move {
                    let (_, intent) = intent.as_ref()?;
                    Some(with_provider!(&slot.provider, p => apply(p, intent).await))
                }),
        )
        .await;

        for ((slot, intent), result) in self.slots.iter().zip(&intents).zip(results) {
            let (Some((zone, _)), Some(result)) = (intent, result) else {
                continue;
            };
            match &result {
                Ok(outcome) => {
                    // A protected old value is another instance's now: forget it.
                    if outcome.owned.is_empty() {
                        state.providers.remove(&slot.name);
                    } else {
                        state.providers.insert(
                            slot.name.clone(),
                            ProviderState {
                                zone: zone.to_string(),
                                published: outcome.owned.clone(),
                            },
                        );
                    }
                }
                Err(e) => tracing::debug!(provider = %slot.name, "{e:#}"),
            }
            reports.push(Report {
                provider: slot.name.clone(),
                zone: zone.to_string(),
                result: result.map_err(|e| format!("{e:#}")),
            });
        }
        self.save(&state);
        Ok(reports)
    }

    /// Reaps expired leases at every provider, concurrently (see [`crate::provider::reap`]).
    pub async fn reap(&mut self, deadline: Duration) -> Vec<ReapReport> {
        reap_slots(&mut self.slots, deadline).await
    }

    fn save(&self, state: &crate::state::State) {
        if let Err(e) = self.state.save(state) {
            tracing::warn!("{e:#}; `leave` will rely on the ownership registry in DNS");
        }
    }

    /// Whether each desired record is present at its provider.
    pub async fn status(&mut self) -> Result<Vec<Result<Vec<Presence>, String>>, UsageError> {
        let mut out = Vec::new();
        for i in 0..self.slots.len() {
            if let Err(e) = Self::connect(&mut self.slots[i]).await {
                out.push(Err(format!("{}: {e:#}", self.slots[i].name)));
                continue;
            }
            let records = self.plan(&self.slots[i])?;
            let slot = &self.slots[i];
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
