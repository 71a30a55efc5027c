//! Join, leave and status across every configured provider, with the state file.
//!
//! Shared by the one-shot commands and the agent. Each provider is handled on its
//! own: one that fails does not stop the others, and the report says which did
//! what. Planning happens for every provider before anything is written, so a
//! planning error (a name outside a zone known only by id) changes nothing.

use std::time::Duration;

use crate::config::{Config, ProviderConfig, UsageError};
use crate::metadata::Identity;
use crate::plan::{Desired, Vars, desired};
use crate::provider::KnownZone;
use crate::reconcile::{Checkpoint, Outcome};
use crate::record::{DomainName, Value};
use crate::retry::OutOfTime;
use crate::state::{ProviderState, State, StateFile};
pub use facade::Role;
use facade::{AnyConnect, AnyProvider};

mod confirm;
mod facade;
mod reap;
mod sync;

pub use reap::{ReapReport, reap_once};
pub use sync::PlanReport;

struct Slot {
    name: String,
    link: Link,
    /// What an operation cut off here had learnt (see [`Checkpoint`]).
    checkpoint: Checkpoint,
}

impl Slot {
    fn new(config: &ProviderConfig, instance_id: &str, role: Role) -> Slot {
        Slot {
            name: config.name.clone(),
            link: Link {
                connector: facade::for_config(config, instance_id, role),
                connected: None,
            },
            checkpoint: Checkpoint::default(),
        }
    }
}

/// A configured provider and, once it has connected, the provider it
/// connected (see [`crate::provider::Connect`]).
struct Link {
    connector: Box<dyn AnyConnect>,
    connected: Option<Box<dyn AnyProvider>>,
}

impl Link {
    /// The connected provider, connecting first if it is not: a connect
    /// that failed is tried again by the next call.
    async fn provider(&mut self, known: Option<&KnownZone>) -> anyhow::Result<&dyn AnyProvider> {
        let provider = match self.connected.take() {
            Some(p) => p,
            None => self.connector.connect(known).await?,
        };
        Ok(&**self.connected.insert(provider))
    }

    /// Drops the connected provider: the zone it found is gone (deleted and
    /// made again), so the next call connects anew.
    fn disconnect(&mut self) {
        self.connected = None;
    }

    /// The zone it writes to, when known without asking the provider.
    fn zone(&self) -> Option<DomainName> {
        match &self.connected {
            Some(p) => Some(p.zone().clone()),
            None => self.connector.zone().cloned(),
        }
    }
}

/// What happened at one provider.
/// The error stays typed until it is printed (`{e:#}`: each cause after a
/// colon), so that what it was can still be asked (see [`Report::out_of_time`]).
#[derive(Debug)]
pub struct Report {
    pub provider: String,
    pub result: anyhow::Result<Outcome>,
}

impl Report {
    fn timed_out(provider: String, deadline: Duration) -> Report {
        Report {
            provider,
            result: Err(OutOfTime(format!(
                "gave up after {} without finishing: nothing more is sent, a \
                 change already accepted stands whole (each is atomic), and the \
                 next run or reconcile finishes the work",
                humantime::format_duration(deadline)
            ))
            .into()),
        }
    }

    /// It failed only by running out of time (the provider busy or contended).
    pub fn out_of_time(&self) -> bool {
        self.result.as_ref().err().is_some_and(out_of_time)
    }
}

/// Whether `e` is an operation that ran out of time rather than one refused.
pub fn out_of_time(e: &anyhow::Error) -> bool {
    e.downcast_ref::<OutOfTime>().is_some()
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
    /// `Ok(true)`: live everywhere; `Ok(false)`: still pending. The error
    /// stays typed until it is printed (`{e:#}`).
    pub result: anyhow::Result<bool>,
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
    /// Prepares providers for `identity` in a one-shot command; no network
    /// call yet. An identity the metadata service made unusable is a runtime
    /// failure; one the configuration did, a [`UsageError`].
    pub fn new(config: Config, identity: &Identity) -> anyhow::Result<Engine> {
        Engine::with_role(config, identity, Role::OneShot)
    }

    /// The same for the agent, which stays to answer for what it publishes
    /// (the mdns provider's responder): [`Engine::close`] must end it.
    pub fn for_agent(config: Config, identity: &Identity) -> anyhow::Result<Engine> {
        Engine::with_role(config, identity, Role::Agent)
    }

    fn with_role(config: Config, identity: &Identity, role: Role) -> anyhow::Result<Engine> {
        let vars = usable(crate::metadata::vars(identity, &config.instance))?;
        let slots = config
            .providers
            .iter()
            .map(|p| Slot::new(p, &vars.instance_id, role))
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

    /// Ends what connected providers keep running (the mDNS responder, with
    /// its goodbyes). The agent calls it at each of its ends.
    pub async fn close(&mut self) {
        for slot in &mut self.slots {
            if let Some(p) = slot.link.connected.take() {
                p.close().await;
            }
        }
    }

    /// Takes over from `old` (a SIGHUP's reload) the connected providers
    /// whose configuration did not change: an mDNS responder then goes on
    /// answering instead of saying goodbye and probing again.
    pub fn adopt(&mut self, old: &mut Engine) {
        for slot in &mut self.slots {
            let same = |c: &Config| c.providers.iter().find(|p| p.name == slot.name).cloned();
            if same(&self.config) != same(&old.config) {
                continue;
            }
            if let Some(o) = old.slots.iter_mut().find(|o| o.name == slot.name) {
                std::mem::swap(&mut slot.link, &mut o.link);
                std::mem::swap(&mut slot.checkpoint, &mut o.checkpoint);
            }
        }
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

    /// Makes every provider's next first throttled answer wait a random
    /// while up to `over` (see [`crate::retry::Pacer::spread`]), where a
    /// leave is one request. Where instances share rrsets that are rewritten
    /// whole (Route53 simple routing), a leave announces, looks and
    /// carries within the stop: spreading its first request over most of
    /// the stop left too little for the rest (measured with 200 agents).
    pub fn spread_retries(&self, over: Duration) {
        for s in &self.slots {
            if s.link.connector.leaves_in_one_request() {
                s.link.connector.pacer().spread(over);
            }
        }
    }

    /// Whether any provider is throttling this process now.
    pub fn busy(&self, within: Duration) -> bool {
        self.slots
            .iter()
            .any(|s| s.link.connector.pacer().busy_within(within))
    }

    /// Whether each desired record is present at its provider.
    pub async fn status(&mut self) -> Result<Vec<anyhow::Result<Vec<Presence>>>, UsageError> {
        let state = self.load_state();
        let mut out = Vec::new();
        for i in 0..self.slots.len() {
            let known = state
                .providers
                .get(&self.slots[i].name)
                .and_then(known_zone);
            let slot = &mut self.slots[i];
            let provider = match slot.link.provider(known.as_ref()).await {
                Ok(p) => p,
                Err(e) => {
                    out.push(Err(e.context(slot.name.clone())));
                    continue;
                }
            };
            let zone = provider.zone().clone();
            let records = plan(&self.config, &self.vars, &slot.name, &zone)?.records;
            let got = provider.presence(&records, Duration::from_secs(60)).await;
            out.push(got.map(|list| {
                list.into_iter()
                    .map(|(v, present): (Value, bool)| Presence {
                        provider: slot.name.clone(),
                        record: v.to_line(),
                        present,
                    })
                    .collect()
            }));
        }
        Ok(out)
    }
}

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

#[cfg(test)]
mod tests;
