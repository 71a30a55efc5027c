//! RFC 2136 dynamic updates (BIND, Knot, PowerDNS, Windows DNS), signed with TSIG.
//!
//! The zone's primary server is read with ordinary queries (one per rrset) and
//! written with one UPDATE message per edit. The UPDATE adds and deletes single
//! RRs (RFC 2136 §2.5.1, §2.5.4), so values that are not named are never touched.
//! Ownership is kept under `_dnsreg.<zone>`: each instance's registry, and a
//! claim rrset per value it publishes naming who claims it (claims by name, see
//! [`crate::registry::claim_name`]). The UPDATE carries a prerequisite for
//! each of those it touches (§2.4.2 "RRset exists (value dependent)", or
//! §2.4.3 "RRset does not exist"), so the server applies it only if they are
//! still exactly what we read: a concurrent claimant turns into
//! NXRRSET/YXRRSET, which is a [`Fail::Conflict`], and `reconcile` reads
//! again. The records themselves are added and deleted value by value with no
//! prerequisite: instances adding to one shared rrset never conflict, however
//! many join at once. The server applies an UPDATE atomically (§3.7) and
//! answers only after it is in the zone, so there is nothing to poll.
//!
//! A join or leave needs the rights to update the zone and to query it, no
//! more; only `reap`, whose job is a listing of every registry, transfers the
//! zone (AXFR over TCP, signed with the key).
//!
//! Wire format, transports and TSIG (RFC 8945) come from hickory. Queries and
//! updates go over UDP and are repeated over TCP when the answer is truncated.

mod message;
mod transport;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hickory_proto::rr::{Record as HRecord, RecordType};

use std::sync::Arc;

use super::{Connect, Edit, Fail, Provider, Values, Written};
use crate::config::Rfc2136Config;
use crate::record::{DomainName, RType, RrKey};
use crate::registry;
use crate::retry::{Backoff, Pacer};
use crate::tsig::TsigKey;
use message::{hname, hrecord, value_of};
use transport::{FUDGE, Transport};

/// Retries of a lost or SERVFAILed exchange: a DNS server answers in
/// milliseconds or not at all, so fewer and shorter than for HTTP APIs; an
/// unreachable server is reported after about 20 s.
const BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(200),
    cap: Duration::from_secs(4),
    attempts: 5,
};

/// An rrset as read: its records exactly as the server holds them (for the
/// prerequisite), our reading of them, and its TTL.
#[derive(Clone, Debug, Default)]
pub struct RrSet {
    raw: Vec<HRecord>,
    values: Values,
    ttl: Option<u32>,
}

#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    sets: BTreeMap<RrKey, RrSet>,
}

/// What the state file keeps of a snapshot: each rrset's values and TTL, as
/// this instance's last UPDATE left them. The records are rebuilt from the
/// values, exactly as dnsreg writes them (see [`Rfc2136::presume`]).
#[derive(serde::Serialize, serde::Deserialize)]
struct Kept {
    #[serde(with = "crate::record::by_key")]
    sets: BTreeMap<RrKey, KeptSet>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct KeptSet {
    values: Values,
    ttl: Option<u32>,
}

impl serde::Serialize for Snapshot {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Kept {
            sets: self
                .sets
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        KeptSet {
                            values: v.values.clone(),
                            ttl: v.ttl,
                        },
                    )
                })
                .collect(),
        }
        .serialize(s)
    }
}

/// A state file of an earlier dnsreg kept nothing here (`null`): then
/// nothing is presumed.
impl<'de> serde::Deserialize<'de> for Snapshot {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let kept = Option::<Kept>::deserialize(d)?;
        Ok(Snapshot {
            sets: kept
                .map(|k| k.sets)
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, RrSet::of(v.values, v.ttl)))
                .collect(),
        })
    }
}

impl RrSet {
    /// An rrset as dnsreg wrote it: its records rebuilt from the values.
    fn of(values: Values, ttl: Option<u32>) -> RrSet {
        let ttl = ttl.filter(|_| !values.is_empty());
        RrSet {
            raw: values
                .iter()
                .map(|v| hrecord(v, ttl.unwrap_or(0)))
                .collect(),
            values,
            ttl,
        }
    }
}

/// An RFC 2136 server as configured (see [`Connect`]).
pub struct Connector {
    name: String,
    cfg: Rfc2136Config,
    pacer: Arc<Pacer>,
}

/// A server found to serve the zone, with its transport and key.
pub struct Rfc2136 {
    name: String,
    cfg: Rfc2136Config,
    zone: DomainName,
    transport: Transport,
    pacer: Arc<Pacer>,
}

impl Connector {
    pub fn new(name: &str, cfg: Rfc2136Config) -> Connector {
        Connector {
            name: name.to_string(),
            cfg,
            pacer: Arc::new(Pacer::new(Backoff::BUSY)),
        }
    }
}

impl Connect for Connector {
    type Provider = Rfc2136;

    fn zone(&self) -> Option<&DomainName> {
        Some(&self.cfg.zone)
    }

    fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    fn leaves_in_one_request(&self) -> bool {
        true
    }

    async fn connect(&self, _known: Option<&super::KnownZone>) -> anyhow::Result<Rfc2136> {
        let what = what(&self.name, &self.cfg);
        let server = &self.cfg.server;
        let addr = tokio::net::lookup_host((server.host.as_str(), server.port))
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| {
                anyhow::anyhow!("{what}: cannot resolve the server name {}", server.host)
            })?;
        let key = match &self.cfg.tsig_key_file {
            Some(path) => Some(TsigKey::load(path).map_err(|e| anyhow::anyhow!("{what}: {e}"))?),
            None => None,
        };
        let zone = self.cfg.zone.clone();
        let provider = Rfc2136 {
            name: self.name.clone(),
            cfg: self.cfg.clone(),
            transport: Transport {
                addr,
                origin: hname(&zone),
                signer: key.as_ref().map(|k| k.signer(FUDGE)).transpose()?,
                key: key.as_ref().map(TsigKey::describe),
            },
            zone,
            pacer: self.pacer.clone(),
        };
        provider.check_soa().await?;
        Ok(provider)
    }
}

impl Rfc2136 {
    /// A provider of `cfg` that has not looked at its server (the unit
    /// tests' own: what they ask of it needs no server).
    #[cfg(test)]
    pub(crate) fn unchecked(name: &str, cfg: Rfc2136Config) -> Rfc2136 {
        let zone = cfg.zone.clone();
        Rfc2136 {
            name: name.to_string(),
            transport: Transport {
                addr: std::net::SocketAddr::from(([127, 0, 0, 1], cfg.server.port)),
                origin: hname(&zone),
                signer: None,
                key: None,
            },
            cfg,
            zone,
            pacer: Arc::new(Pacer::new(Backoff::BUSY)),
        }
    }

    fn transport(&self) -> &Transport {
        &self.transport
    }

    fn what(&self) -> String {
        what(&self.name, &self.cfg)
    }

    /// The zone must be served, authoritatively, by this server.
    async fn check_soa(&self) -> anyhow::Result<()> {
        let what = self.what();
        let mut tries =
            crate::retry::Attempts::new(&what, Duration::from_secs(24 * 3600)).with(BACKOFF);
        let answer = crate::retry::attempt(&mut tries, "looking up the zone's SOA", || async {
            self.query(&self.zone, RecordType::SOA)
                .await
                .map_err(|f| f.context(format!("{what}: looking up the zone's SOA")))
        })
        .await?;
        let origin = hname(&self.zone);
        if !answer
            .answers
            .iter()
            .any(|r| r.name == origin && r.record_type() == RecordType::SOA)
        {
            anyhow::bail!(
                "{}: the server has no SOA at {}: it does not serve that zone (check `zone`; a name inside a zone is not a zone)",
                self.what(),
                self.zone.without_dot()
            );
        }
        Ok(())
    }
}

/// How messages name the provider.
fn what(name: &str, cfg: &Rfc2136Config) -> String {
    format!(
        "rfc2136 `{name}` (zone {} at {})",
        cfg.zone.without_dot(),
        cfg.server
    )
}

impl Provider for Rfc2136 {
    type Snapshot = Snapshot;

    fn name(&self) -> &str {
        &self.name
    }

    fn zone(&self) -> &DomainName {
        &self.zone
    }

    fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    fn transient_backoff(&self) -> Backoff {
        BACKOFF
    }

    /// The ownership rrsets (registries, claims) first, then the records,
    /// each group's queries at once. In that order, a value found without a
    /// claim was not added by an instance meanwhile (one adds the value and
    /// its claim in one UPDATE, which the claim's query would have seen, or
    /// which the next UPDATE's prerequisite on that claim refuses): it is a
    /// person's.
    async fn read(&self, keys: &BTreeSet<RrKey>) -> Result<Snapshot, Fail> {
        let ownership = registry::root(&self.zone);
        let (first, then): (Vec<&RrKey>, Vec<&RrKey>) =
            keys.iter().partition(|k| k.name.is_in(&ownership));
        let mut snapshot = Snapshot::default();
        for group in [first, then] {
            let mut tasks = tokio::task::JoinSet::new();
            for key in group {
                let me = self.reader();
                let key = key.clone();
                tasks.spawn(async move {
                    let set = me.read_one(&key).await;
                    (key, set)
                });
            }
            while let Some(done) = tasks.join_next().await {
                let (key, set) =
                    done.map_err(|e| Fail::permanent(format!("a read task failed: {e}")))?;
                let set = set.map_err(|f| f.context(format!("{}: reading {key}", self.what())))?;
                snapshot.sets.insert(key, set);
            }
        }
        Ok(snapshot)
    }

    fn merge(&self, snapshot: &mut Snapshot, more: Snapshot) {
        for (k, v) in more.sets {
            snapshot.sets.entry(k).or_insert(v);
        }
    }

    /// What this instance's last UPDATE left stands in for a read of the
    /// ownership rrsets it wrote (its registry, its values' claims: nobody
    /// else writes them in the normal course), absent ones included: each
    /// is a prerequisite of the next UPDATE, so a wrong guess is refused
    /// (NXRRSET/YXRRSET) and costs a read, never a wrong write. In the
    /// record rrsets, only this instance's own values are remembered: what
    /// a leave deletes, one by one, without a prerequisite (the claims guard
    /// it); a join reads them anyway (see `reconcile::decide`).
    fn presume(
        &self,
        memory: &Snapshot,
        keys: &BTreeSet<RrKey>,
        _shared: &BTreeSet<RrKey>,
        owned: &Values,
    ) -> Option<(Snapshot, BTreeSet<RrKey>)> {
        let ownership = registry::root(&self.zone);
        let mut out = Snapshot::default();
        let mut rest = BTreeSet::new();
        for k in keys {
            let kept = memory.sets.get(k);
            if k.name.is_in(&ownership) {
                out.sets
                    .insert(k.clone(), kept.cloned().unwrap_or_default());
            } else if let Some(set) = kept {
                let mine: Values = set.values.intersection(owned).cloned().collect();
                out.sets.insert(k.clone(), RrSet::of(mine, set.ttl));
            } else {
                rest.insert(k.clone());
            }
        }
        Some((out, rest))
    }

    fn values(&self, snapshot: &Snapshot, key: &RrKey) -> Values {
        snapshot
            .sets
            .get(key)
            .map(|s| s.values.clone())
            .unwrap_or_default()
    }

    fn ttl(&self, snapshot: &Snapshot, key: &RrKey) -> Option<u32> {
        snapshot.sets.get(key).and_then(|s| s.ttl)
    }

    async fn write(&self, snapshot: &Snapshot, edit: &Edit) -> Result<Written<Snapshot>, Fail> {
        use crate::metrics::Outcome;
        let result = self.update(snapshot, edit).await;
        let outcome = result.as_ref().err().map_or(Outcome::Ok, Outcome::of_fail);
        crate::metrics::get().request(&self.name, "update", outcome);
        result
    }

    fn rewrites_rrsets(&self) -> bool {
        false
    }

    fn claims_by_name(&self) -> bool {
        true
    }

    async fn registries(&self) -> Result<(BTreeMap<String, Values>, Snapshot), Fail> {
        let origin = hname(&self.zone);
        let t = self.transport();
        self.pacer.ready().await;
        let transferred = t.transfer(&origin).await;
        let outcome = transferred.as_ref().err().map_or(
            crate::metrics::Outcome::Ok,
            crate::metrics::Outcome::of_fail,
        );
        crate::metrics::get().request(&self.name, "axfr", outcome);
        let records = match transferred {
            Ok(records) => {
                self.pacer.ok();
                records
            }
            Err(f) => {
                let fail = f.context(format!(
                    "{}: listing the ownership registries (AXFR)",
                    self.what()
                ));
                if let Fail::Busy { why, .. } = &fail {
                    self.pacer.busy(why, None);
                }
                return Err(fail);
            }
        };
        let mut out: BTreeMap<String, Values> = BTreeMap::new();
        let mut snap = Snapshot::default();
        for r in records
            .iter()
            .filter(|r| r.record_type() == RecordType::TXT)
        {
            let Ok(name) = DomainName::new(&r.name.to_ascii()) else {
                continue;
            };
            let Some(label) = registry::label_of(&name, &self.zone) else {
                continue;
            };
            let key = RrKey {
                name: name.clone(),
                rtype: RType::TXT,
            };
            if let Some(v) = value_of(&key, &r.data) {
                out.entry(label).or_default().insert(v.clone());
                let set = snap.sets.entry(key).or_default();
                set.values.insert(v);
                set.ttl = Some(set.ttl.map_or(r.ttl, |t| t.min(r.ttl)));
                set.raw.push(r.clone());
            }
        }
        Ok((out, snap))
    }
}

impl Rfc2136 {
    /// A copy that can read on its own task.
    fn reader(&self) -> Rfc2136 {
        Rfc2136 {
            name: self.name.clone(),
            cfg: self.cfg.clone(),
            zone: self.zone.clone(),
            transport: self.transport.clone(),
            pacer: self.pacer.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
