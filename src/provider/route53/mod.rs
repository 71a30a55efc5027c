//! AWS Route53, through aws-sdk-route53.
//!
//! `routing = "simple"`: shared rrsets are changed by one atomic change batch
//! that DELETEs the exact rrset we read and CREATEs the new one; if anyone
//! changed it meanwhile, Route53 refuses the whole batch (InvalidChangeBatch) and
//! we read again. `routing = "multivalue"`: each instance has its own rrset per
//! name (SetIdentifier = instance id, MultiValueAnswer = true), changed the same
//! way. All of an instance's changes to the zone go in one batch.
//! See "ChangeResourceRecordSets" in the Route53 API reference.
//!
//! Requests count against the account's rate limit, so each change costs as
//! few as it can: the zone id is looked up once in an instance's life (kept in
//! the state file), a write against this instance's own rrsets is presumed from
//! what its last write left (a wrong guess is refused by Route53 and costs a
//! read), and confirmation (GetChange, INSYNC) is asked separately, once, when
//! the change is likely live ("Route 53 propagates changes ... generally within
//! 60 seconds", ChangeResourceRecordSets in the API reference).
//!
//! Credentials and region come from the standard AWS chain; the endpoint from
//! `endpoint`, `AWS_ENDPOINT_URL_ROUTE_53` or `AWS_ENDPOINT_URL`. The SDK's own
//! retries are off: every call is one attempt, classified as a [`Fail`] for the
//! one retry loop of the operation (`reconcile`), and throttling
//! (`Throttling`, `PriorRequestNotComplete`) holds every request of the process
//! back through the provider's [`Pacer`].

mod api;
mod batch;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_route53::Client;
use aws_sdk_route53::types::{ChangeStatus, ResourceRecord, ResourceRecordSet, RrType};
use serde::{Deserialize, Serialize};

/// The fuzz tests' way in to what a failed call's message quotes of an answer.
#[cfg(test)]
pub(crate) use api::excerpt;
pub(crate) use api::unescape_name;
use api::{Api, plausible_change_id, rr_type};
use batch::{MAX_BATCH_CHARACTERS, MAX_BATCH_RECORDS};

use super::{BatchLimit, Connect, Edit, Fail, KnownZone, Provider, Values, Written};
use crate::config::{Route53Config, Routing, ZoneRef};
use crate::record::{DomainName, RData, RType, RrKey, Value, by_key};
use crate::registry;
use crate::retry::{Backoff, Pacer};

/// A Route53 provider as configured (see [`Connect`]): the SDK client is
/// made at the first connect and kept, so that a zone lookup that failed is
/// tried again with the same client.
pub struct Connector {
    name: String,
    cfg: Route53Config,
    instance_id: String,
    pacer: Arc<Pacer>,
    client: tokio::sync::OnceCell<Client>,
}

/// A hosted zone found, and the client to reach it.
pub struct Route53 {
    api: Api,
    cfg: Route53Config,
    instance_id: String,
    zone_id: String,
    zone: DomainName,
    /// Set once the zone was found to hold more than one page of rrsets:
    /// reads then ask for each rrset on its own.
    zone_is_large: AtomicBool,
}

/// An rrset as dnsreg keeps it: enough to DELETE it exactly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    ttl: i64,
    /// The values exactly as Route53 wrote them.
    records: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    set_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    multi_value_answer: Option<bool>,
}

/// One key's rrset in a snapshot.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Held {
    /// `None` when absent.
    rrset: Option<Stored>,
    /// Taken from what this instance's last write left, not read.
    #[serde(skip)]
    presumed: bool,
}

/// The exact rrsets read (or presumed), by key.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(with = "by_key")]
    rrsets: BTreeMap<RrKey, Held>,
}

impl Stored {
    fn from_sdk(rs: &ResourceRecordSet) -> Stored {
        Stored {
            ttl: rs.ttl().unwrap_or(0),
            records: rs
                .resource_records()
                .iter()
                .map(|r| r.value().to_string())
                .collect(),
            set_identifier: rs.set_identifier().map(str::to_string),
            multi_value_answer: rs.multi_value_answer(),
        }
    }

    fn to_sdk(&self, key: &RrKey) -> Result<ResourceRecordSet, Fail> {
        let mut rs = ResourceRecordSet::builder()
            .name(key.name.as_str())
            .r#type(rr_type(key.rtype))
            .ttl(self.ttl);
        for r in &self.records {
            rs = rs.resource_records(
                ResourceRecord::builder()
                    .value(r)
                    .build()
                    .map_err(|e| Fail::Permanent(e.into()))?,
            );
        }
        if let Some(id) = &self.set_identifier {
            rs = rs.set_identifier(id);
        }
        if let Some(m) = self.multi_value_answer {
            rs = rs.multi_value_answer(m);
        }
        rs.build().map_err(|e| Fail::Permanent(e.into()))
    }

    fn values(&self, key: &RrKey) -> Values {
        self.records
            .iter()
            .filter_map(|r| RData::parse(key.rtype, r))
            .map(|data| Value {
                name: key.name.clone(),
                data,
            })
            .collect()
    }
}

impl Connector {
    pub fn new(name: &str, cfg: Route53Config, instance_id: &str) -> Connector {
        Connector {
            name: name.to_string(),
            cfg,
            instance_id: instance_id.to_string(),
            pacer: Arc::new(Pacer::new(Backoff::BUSY)),
            client: tokio::sync::OnceCell::new(),
        }
    }

    /// How messages name the provider before its zone is found.
    fn what(&self) -> String {
        match &self.cfg.zone {
            ZoneRef::Name(zone) => format!("route53 `{}` (zone {zone})", self.name),
            ZoneRef::Id(id) => format!("route53 `{}` (zone {id})", self.name),
            ZoneRef::Both(zone, id) => format!("route53 `{}` (zone {zone} {id})", self.name),
        }
    }

    /// The provider for the zone `zone` (`zone_id`), through `api`.
    fn bound(&self, api: Api, zone: DomainName, zone_id: String) -> Route53 {
        Route53 {
            api,
            cfg: self.cfg.clone(),
            instance_id: self.instance_id.clone(),
            zone_id,
            zone,
            zone_is_large: AtomicBool::new(false),
        }
    }
}

impl Connect for Connector {
    type Provider = Route53;

    fn zone(&self) -> Option<&DomainName> {
        match &self.cfg.zone {
            ZoneRef::Name(zone) | ZoneRef::Both(zone, _) => Some(zone),
            ZoneRef::Id(_) => None,
        }
    }

    fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    fn leaves_in_one_request(&self) -> bool {
        // Multivalue: each instance's values in rrsets of its own.
        self.cfg.routing == Routing::Multivalue
    }

    async fn connect(&self, known: Option<&KnownZone>) -> anyhow::Result<Route53> {
        let client = self
            .client
            .get_or_try_init(|| self.make_client())
            .await?
            .clone();
        let api = Api {
            name: self.name.clone(),
            client,
            pacer: self.pacer.clone(),
        };
        if let ZoneRef::Both(zone, id) = &self.cfg.zone {
            return Ok(self.bound(api, zone.clone(), id.clone()));
        }
        // The state file's word, if it names this zone with an id Route53 could
        // have given (a damaged file's could panic the SDK in every URL).
        let usable = known
            .filter(|k| crate::config::plausible_hosted_zone_id(&k.id))
            .filter(|k| match &self.cfg.zone {
                ZoneRef::Name(name) => *name == k.name,
                ZoneRef::Id(id) => *id == k.id,
                ZoneRef::Both(..) => false,
            });
        if let Some(k) = usable {
            tracing::debug!(provider = %self.name, zone = %k.name, zone_id = %k.id, "zone known from the state file");
            return Ok(self.bound(api, k.name.clone(), k.id.clone()));
        }
        let (zone, zone_id) = self.find_zone(&api).await?;
        tracing::debug!(provider = %self.name, zone = %zone, zone_id = %zone_id, "connected");
        Ok(self.bound(api, zone, zone_id))
    }
}

impl Route53 {
    /// A provider that talks through `client` to the hosted zone `zone_id`
    /// (the fuzz tests' client, to a fake Route53 on loopback).
    #[cfg(test)]
    pub(crate) fn with_client(
        name: &str,
        cfg: Route53Config,
        instance_id: &str,
        client: Client,
        zone_id: &str,
    ) -> Route53 {
        let zone = match &cfg.zone {
            ZoneRef::Name(z) | ZoneRef::Both(z, _) => z.clone(),
            ZoneRef::Id(_) => DomainName::new("example.com").expect("valid"),
        };
        let api = Api {
            name: name.to_string(),
            client,
            pacer: Arc::new(Pacer::new(Backoff::BUSY)),
        };
        Connector::new(name, cfg, instance_id).bound(api, zone, zone_id.to_string())
    }

    /// A provider that has sent nothing and never will (its endpoint is a
    /// closed port): the fuzz tests' own, for what needs no API.
    #[cfg(test)]
    pub(crate) fn offline(name: &str, cfg: Route53Config, instance_id: &str) -> Route53 {
        let conf = aws_sdk_route53::Config::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .build();
        Route53::with_client(
            name,
            cfg,
            instance_id,
            Client::from_conf(conf),
            "Z0123456789ABCDEFGHIJ",
        )
    }

    fn set_identifier(&self, key: &RrKey) -> Option<String> {
        // The registry is this instance's alone, so it needs no routing policy.
        (self.cfg.routing == Routing::Multivalue && !key.name.is_in(&registry::root(&self.zone)))
            .then(|| self.instance_id.clone())
    }

    fn what(&self) -> String {
        format!(
            "route53 `{}` (zone {} {})",
            self.api.name, self.zone, self.zone_id
        )
    }
}

impl Provider for Route53 {
    type Snapshot = Snapshot;

    fn name(&self) -> &str {
        &self.api.name
    }

    fn zone(&self) -> &DomainName {
        &self.zone
    }

    fn known_zone(&self) -> Option<KnownZone> {
        Some(KnownZone {
            name: self.zone.clone(),
            id: self.zone_id.clone(),
        })
    }

    fn pacer(&self) -> &Pacer {
        &self.api.pacer
    }

    fn as_owner(&self, label: &str) -> Option<Route53> {
        self.keeps_apart().then(|| Route53 {
            api: self.api.clone(),
            cfg: self.cfg.clone(),
            instance_id: label.to_string(),
            zone_id: self.zone_id.clone(),
            zone: self.zone.clone(),
            zone_is_large: AtomicBool::new(self.zone_is_large.load(Ordering::Relaxed)),
        })
    }

    fn keeps_apart(&self) -> bool {
        self.cfg.routing == Routing::Multivalue
    }

    /// A change batch that DELETEs and CREATEs each rrset exactly as it is:
    /// Route53 applies it only if all of them are as remembered, and it
    /// changes nothing. (Absent rrsets cannot be checked so: they are read.)
    async fn check(
        &self,
        snapshot: &Snapshot,
        keys: &BTreeSet<RrKey>,
    ) -> Result<Option<bool>, Fail> {
        if keys.iter().any(|k| self.values(snapshot, k).is_empty()) {
            return Ok(None);
        }
        let touch = Edit {
            guard: keys.clone(),
            ..Edit::default()
        };
        match self.write(snapshot, &touch).await {
            Ok(_) => Ok(Some(true)),
            Err(Fail::Conflict(_)) => Ok(Some(false)),
            Err(f) => Err(f),
        }
    }

    fn lists_cheaply(&self) -> bool {
        true
    }

    fn reads_rrset_by_rrset(&self) -> bool {
        self.zone_is_large.load(Ordering::Relaxed)
    }

    fn batch_limit(&self) -> BatchLimit {
        // Route53's own limits, with room for this instance's own rrsets
        // beside what it carries for peers.
        BatchLimit {
            records: MAX_BATCH_RECORDS - 100,
            characters: MAX_BATCH_CHARACTERS - 4_000,
        }
    }

    async fn read(&self, keys: &BTreeSet<RrKey>) -> Result<Snapshot, Fail> {
        let mut rrsets = BTreeMap::new();
        if keys.len() > 1
            && let Some(all) = self.list_whole_zone().await?
        {
            // The whole zone: an rrset not in it is absent.
            for key in keys {
                let rrset = self.pick(key, &all)?;
                rrsets.insert(
                    key.clone(),
                    Held {
                        rrset,
                        presumed: false,
                    },
                );
            }
            return Ok(Snapshot { rrsets });
        }
        for key in keys {
            let rrset = self.list_one(key).await?;
            rrsets.insert(
                key.clone(),
                Held {
                    rrset,
                    presumed: false,
                },
            );
        }
        Ok(Snapshot { rrsets })
    }

    fn presume(
        &self,
        memory: &Snapshot,
        keys: &BTreeSet<RrKey>,
        shared: &BTreeSet<RrKey>,
        _owned: &Values,
    ) -> Option<(Snapshot, BTreeSet<RrKey>)> {
        let mut out = Snapshot::default();
        let mut rest = BTreeSet::new();
        // Where something must be read anyway and the zone fits in one page,
        // that one request reads everything: presume nothing.
        let small = !self
            .zone_is_large
            .load(std::sync::atomic::Ordering::Relaxed);
        if small && !self.keeps_apart() && keys.iter().any(|k| shared.contains(k)) {
            return Some((out, keys.clone()));
        }
        for key in keys {
            // Under multivalue routing every rrset dnsreg writes is this
            // instance's own; under simple routing only its registry and the
            // rrsets nobody else writes.
            if self.keeps_apart() || !shared.contains(key) {
                let rrset = memory.rrsets.get(key).and_then(|h| h.rrset.clone());
                out.rrsets.insert(
                    key.clone(),
                    Held {
                        rrset,
                        presumed: true,
                    },
                );
            } else {
                rest.insert(key.clone());
            }
        }
        Some((out, rest))
    }

    fn applied(&self, snapshot: &Snapshot, edit: &Edit) -> Option<Snapshot> {
        self.batch(snapshot, edit).ok().map(|(_, after)| after)
    }

    fn merge(&self, snapshot: &mut Snapshot, more: Snapshot) {
        for (k, v) in more.rrsets {
            snapshot.rrsets.entry(k).or_insert(v);
        }
    }

    fn ttl(&self, snapshot: &Snapshot, key: &RrKey) -> Option<u32> {
        snapshot
            .rrsets
            .get(key)
            .and_then(|h| h.rrset.as_ref())
            .and_then(|rs| u32::try_from(rs.ttl).ok())
    }

    fn values(&self, snapshot: &Snapshot, key: &RrKey) -> Values {
        snapshot
            .rrsets
            .get(key)
            .and_then(|h| h.rrset.as_ref())
            .map(|rs| rs.values(key))
            .unwrap_or_default()
    }

    async fn write(&self, snapshot: &Snapshot, edit: &Edit) -> Result<Written<Snapshot>, Fail> {
        let (changes, after) = self.batch(snapshot, edit)?;
        let presumed = edit
            .keys()
            .iter()
            .chain(edit.guard.iter())
            .any(|k| snapshot.rrsets.get(k).is_some_and(|h| h.presumed));
        let change = self.send_batch(changes, edit, presumed).await?;
        Ok(Written { after, change })
    }

    async fn confirm(&self, change: &str) -> Result<bool, Fail> {
        if !plausible_change_id(change) {
            return Err(Fail::permanent(format!(
                "{}: {:?} is not a change id Route53 gives; it cannot be asked about (the next change replaces it)",
                self.what(),
                change.chars().take(60).collect::<String>()
            )));
        }
        let got = self
            .api
            .call("GetChange", |c| c.get_change().id(change).send())
            .await?;
        Ok(got.change_info().map(|c| c.status()) == Some(&ChangeStatus::Insync))
    }

    async fn registries(&self) -> Result<(BTreeMap<String, Values>, Snapshot), Fail> {
        let root = registry::root(&self.zone);
        let mut out: BTreeMap<String, Values> = BTreeMap::new();
        let mut snap = Snapshot::default();
        let from = (root.as_str().to_string(), RrType::Txt, None);
        self.list_pages(Some(from), "the registries", |rs| {
            let Ok(name) = DomainName::new(&unescape_name(&rs.name)) else {
                return true;
            };
            if !name.is_in(&root) {
                // Past the registries' subtree: done.
                return false;
            }
            if rs.r#type != RrType::Txt {
                return true;
            }
            let Some(label) = registry::label_of(&name, &self.zone) else {
                return true;
            };
            let key = RrKey {
                name: name.clone(),
                rtype: RType::TXT,
            };
            let stored = Stored::from_sdk(rs);
            out.entry(label).or_default().extend(stored.values(&key));
            snap.rrsets.insert(
                key,
                Held {
                    rrset: Some(stored),
                    presumed: false,
                },
            );
            true
        })
        .await?;
        Ok((out, snap))
    }

    /// Under multivalue routing, what each owner's rrsets at its keys are,
    /// from one listing of the whole zone (a page per 300 rrsets) instead of
    /// a read per owner (a request per rrset once the zone has more than one
    /// page): a reaper facing a hundred expired instances reads them in a
    /// few requests. Elsewhere, each owner read as usual.
    async fn read_as_owners(
        &self,
        owners: &BTreeMap<String, BTreeSet<RrKey>>,
    ) -> Result<BTreeMap<String, Snapshot>, Fail> {
        let mut out = BTreeMap::new();
        if !self.keeps_apart() || owners.len() < 2 {
            for (label, keys) in owners {
                let owner = self.as_owner(label);
                let p = owner.as_ref().unwrap_or(self);
                out.insert(label.clone(), p.read(keys).await?);
            }
            return Ok(out);
        }
        let mut all = Vec::new();
        self.list_pages(None, "the zone", |rs| {
            all.push(rs.clone());
            true
        })
        .await?;
        for (label, keys) in owners {
            let owner = self.as_owner(label);
            let p = owner.as_ref().unwrap_or(self);
            let mut rrsets = BTreeMap::new();
            for key in keys {
                rrsets.insert(
                    key.clone(),
                    Held {
                        rrset: p.pick(key, &all)?,
                        presumed: false,
                    },
                );
            }
            out.insert(label.clone(), Snapshot { rrsets });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
