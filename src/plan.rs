//! From configuration and identity to the exact records this instance wants in
//! each provider's zone.
//!
//! This is where templates meet the instance: `{instance_id}` becomes
//! `i-0abc…`, relative names are resolved against the zone, and the rules that
//! need no network are enforced: every name inside the zone, SRV
//! targets that this configuration itself publishes, no two specs claiming the
//! same record. `dnsreg check` runs the same code with a sample identity.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::model::{Config, ProviderKind, RecordSpec, SpecKind, Template, ZoneRef};
use crate::record::{DomainName, RData, RType, Record, RrKey, Value};
use crate::registry::root as registry_root;

/// What templates may refer to, for one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vars {
    pub instance_id: String,
    pub hostname: Option<String>,
    pub region: Option<String>,
    pub ipv4: Ipv4Addr,
    /// Present only when the instance has IPv6 and `ipv6 = true`.
    pub ipv6: Option<Ipv6Addr>,
}

impl Vars {
    fn lookup(&self, var: &str) -> Option<String> {
        match var {
            "instance_id" => Some(self.instance_id.clone()),
            "hostname" => self
                .hostname
                .as_ref()
                .map(|h| h.split('.').next().unwrap_or(h).to_string()),
            "region" => self.region.clone(),
            "ipv4" => Some(self.ipv4.to_string()),
            "ipv4_dashed" => Some(self.ipv4.to_string().replace('.', "-")),
            "ipv6" => self.ipv6.map(|ip| ip.to_string()),
            _ => None,
        }
    }

    /// A made-up identity for validating a configuration without metadata.
    pub fn sample() -> Vars {
        Vars {
            instance_id: "i-0123456789abcdef0".into(),
            hostname: Some("ip-10-0-0-5".into()),
            region: Some("us-east-1".into()),
            ipv4: Ipv4Addr::new(203, 0, 113, 7),
            ipv6: Some("2001:db8::7".parse().expect("valid")),
        }
    }
}

fn expand_name(
    t: &Template,
    vars: &Vars,
    zone: &DomainName,
    key: &str,
) -> Result<DomainName, (String, String)> {
    let text = t
        .expand(|v| vars.lookup(v))
        .map_err(|e| (key.to_string(), e))?;
    let name = DomainName::resolve(&text, zone).map_err(|e| (key.to_string(), format!("{e}")))?;
    if !name.is_in(zone) {
        return Err((
            key.to_string(),
            format!(
                "`{name}` is outside the zone `{zone}`; write a name inside it, or a relative one"
            ),
        ));
    }
    if name.is_in(&registry_root(zone)) {
        return Err((
            key.to_string(),
            format!(
                "`{name}` is inside `{}`, which dnsreg keeps for its ownership registry",
                registry_root(zone)
            ),
        ));
    }
    Ok(name)
}

fn addresses(name: &DomainName, vars: &Vars) -> Vec<Value> {
    let mut out = vec![Value {
        name: name.clone(),
        data: RData::A(vars.ipv4),
    }];
    if let Some(ip) = vars.ipv6 {
        out.push(Value {
            name: name.clone(),
            data: RData::Aaaa(ip),
        });
    }
    out
}

/// Whether a record is owned by this instance alone, or is its share of an rrset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Share {
    Exclusive,
    Shared,
}

/// The records one spec yields, each with whether its rrset is shared.
pub fn expand(
    spec: &RecordSpec,
    vars: &Vars,
    zone: &DomainName,
) -> Result<Vec<(Record, Share)>, (String, String)> {
    let key = |field: &str| format!("{}.{field}", spec.origin);
    let rec = |value: Value| Record {
        value,
        ttl: spec.ttl,
    };
    Ok(match &spec.kind {
        SpecKind::Host { name } => {
            let name = expand_name(name, vars, zone, &key("name"))?;
            addresses(&name, vars)
                .into_iter()
                .map(|v| (rec(v), Share::Exclusive))
                .collect()
        }
        SpecKind::RoundRobin { name } => {
            let name = expand_name(name, vars, zone, &key("name"))?;
            addresses(&name, vars)
                .into_iter()
                .map(|v| (rec(v), Share::Shared))
                .collect()
        }
        SpecKind::Srv {
            name,
            priority,
            weight,
            port,
            target,
        } => {
            let name = expand_name(name, vars, zone, &key("name"))?;
            let target = expand_name(target, vars, zone, &key("target"))?;
            let data = RData::Srv {
                priority: *priority,
                weight: *weight,
                port: *port,
                target,
            };
            vec![(rec(Value { name, data }), Share::Shared)]
        }
        SpecKind::Service {
            service_type,
            instance,
            port,
            priority,
            weight,
            target,
            txt,
        } => {
            let service = DomainName::resolve(service_type, zone)
                .map_err(|e| (key("type"), e.to_string()))?;
            let label = instance
                .expand(|v| vars.lookup(v))
                .map_err(|e| (key("instance"), e))?;
            let instance_name = service
                .child(&label)
                .map_err(|e| (key("instance"), e.to_string()))?;
            let target = expand_name(target, vars, zone, &key("target"))?;
            let srv = RData::Srv {
                priority: *priority,
                weight: *weight,
                port: *port,
                target,
            };
            dns_sd_records(service, instance_name, srv, txt)
                .into_iter()
                .map(|(v, share)| (rec(v), share))
                .collect()
        }
    })
}

/// The three records of one DNS-SD service instance (RFC 6763 §4): the
/// PTR from the service type, which the instances share, and the
/// instance's own SRV and TXT.
fn dns_sd_records(
    service: DomainName,
    instance_name: DomainName,
    srv: RData,
    txt: &[(String, String)],
) -> Vec<(Value, Share)> {
    let strings = if txt.is_empty() {
        // RFC 6763 §6.1: a service with no TXT data still has one empty string.
        vec![String::new()]
    } else {
        txt.iter().map(|(k, v)| format!("{k}={v}")).collect()
    };
    vec![
        (
            Value {
                name: service,
                data: RData::Ptr(instance_name.clone()),
            },
            Share::Shared,
        ),
        (
            Value {
                name: instance_name.clone(),
                data: srv,
            },
            Share::Exclusive,
        ),
        (
            Value {
                name: instance_name,
                data: RData::Txt(strings),
            },
            Share::Exclusive,
        ),
    ]
}

/// What this instance wants through one provider.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    pub records: Vec<Record>,
    /// The keys of rrsets that are this instance's alone (nobody else writes them).
    pub exclusive: BTreeSet<RrKey>,
}

/// Every record this instance wants through `provider`, whose zone is `zone`.
/// Errors name the config key and say what is wrong.
pub fn desired(
    config: &Config,
    provider: &str,
    zone: &DomainName,
    vars: &Vars,
) -> Result<Desired, Vec<(String, String)>> {
    let mut problems = Vec::new();
    let mut out: Vec<(Record, Share, &str)> = Vec::new();
    for spec in config
        .records
        .iter()
        .filter(|s| s.providers.iter().any(|p| p == provider))
    {
        match expand(spec, vars, zone) {
            Ok(records) => out.extend(
                records
                    .into_iter()
                    .map(|(r, s)| (r, s, spec.origin.as_str())),
            ),
            Err(p) => problems.push(p),
        }
    }
    problems.extend(unpublished_targets(config, provider, zone, vars, &out));
    problems.extend(collisions(&out));
    if problems.is_empty() {
        let exclusive = out
            .iter()
            .filter(|(_, s, _)| *s == Share::Exclusive)
            .map(|(r, _, _)| r.value.key())
            .collect();
        let mut records: Vec<Record> = out.into_iter().map(|(r, _, _)| r).collect();
        records.sort();
        Ok(Desired { records, exclusive })
    } else {
        Err(problems)
    }
}

/// SRV targets must be names this configuration publishes through this
/// provider: a problem for each that is not.
fn unpublished_targets(
    config: &Config,
    provider: &str,
    zone: &DomainName,
    vars: &Vars,
    out: &[(Record, Share, &str)],
) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let published: Vec<&DomainName> = out
        .iter()
        .filter(|(r, _, _)| matches!(r.value.data.rtype(), RType::A | RType::AAAA))
        .map(|(r, _, _)| &r.value.name)
        .collect();
    for spec in config
        .records
        .iter()
        .filter(|s| s.providers.iter().any(|p| p == provider))
    {
        if let SpecKind::Srv { target, .. } | SpecKind::Service { target, .. } = &spec.kind
            && let Ok(t) = expand_name(target, vars, zone, "")
            && !published.contains(&&t)
        {
            problems.push((
                format!("{}.target", spec.origin),
                format!(
                    "`{}` (here {t}) is not a name this configuration publishes through `{provider}`; add a [[host]] with that name, or point target at one",
                    target.as_str()
                ),
            ));
        }
    }
    problems
}

/// Collisions: an exclusive rrset claimed twice, or claimed and shared at once;
/// the same shared value written by two specs. A problem for each.
fn collisions(out: &[(Record, Share, &str)]) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    type Claims<'a> = Vec<(Share, &'a str, &'a Value)>;
    let mut by_key: BTreeMap<(DomainName, RType), Claims> = BTreeMap::new();
    for (r, share, origin) in out {
        by_key
            .entry((r.value.name.clone(), r.value.data.rtype()))
            .or_default()
            .push((*share, origin, &r.value));
    }
    for ((name, rtype), claims) in &by_key {
        if claims.len() < 2 {
            continue;
        }
        let exclusive = claims.iter().any(|c| c.0 == Share::Exclusive);
        let same_value = claims.iter().skip(1).any(|c| c.2 == claims[0].2);
        if exclusive || same_value {
            let origins: Vec<&str> = claims.iter().map(|c| c.1).collect();
            problems.push((
                origins[1].to_string(),
                format!("{} also writes {name} {rtype}; the records of {} collide: give them different names", origins[0], origins.join(" and ")),
            ));
        }
    }
    problems
}

/// The configuration's problems found by expanding it with a sample identity.
pub fn check_sample(config: &Config) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let vars = Vars {
        ipv6: if config.instance.ipv6 {
            Vars::sample().ipv6
        } else {
            None
        },
        ..Vars::sample()
    };
    for p in &config.providers {
        // A zone given by id is named only by the API; check names against a stand-in zone.
        let (zone, by_id) = match &p.kind {
            ProviderKind::Route53(r) => match &r.zone {
                ZoneRef::Name(z) | ZoneRef::Both(z, _) => (z.clone(), false),
                ZoneRef::Id(_) => (
                    DomainName::new("zone-given-by-id.invalid").expect("valid"),
                    true,
                ),
            },
            ProviderKind::Cloudflare(cf) => (cf.zone.clone(), false),
            ProviderKind::Rfc2136(r) => (r.zone.clone(), false),
            ProviderKind::Mdns(m) => (m.domain.clone(), false),
        };
        if let Err(mut ps) = desired(config, &p.name, &zone, &vars) {
            if by_id {
                ps.retain(|(_, m)| !m.contains("is outside the zone"));
            }
            problems.extend(ps);
        }
    }
    problems.sort();
    problems.dedup();
    problems
}

#[cfg(test)]
mod tests;
