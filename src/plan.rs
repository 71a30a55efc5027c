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

use crate::config::{Config, ProviderKind, RecordSpec, SpecKind, Template, ZoneRef};
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
mod tests {
    use super::*;
    use crate::config::parse;

    fn vars() -> Vars {
        Vars {
            instance_id: "i-0abc".into(),
            hostname: Some("ip-10-0-0-5.ec2.internal".into()),
            region: Some("eu-west-1".into()),
            ipv4: "198.51.100.20".parse().unwrap(),
            ipv6: None,
        }
    }

    fn zone() -> DomainName {
        DomainName::new("example.com").unwrap()
    }

    const BASE: &str = "[providers.r53]\ntype = \"route53\"\nzone = \"example.com\"\n";

    #[test]
    fn the_original_scripts_records() {
        let c = crate::config::from_flags(&crate::config::Flags {
            provider: "route53".into(),
            zone: Some("example.com".into()),
            service: Some("_v1._theservice._tcp".into()),
            port: Some(8080),
            ..Default::default()
        })
        .unwrap();
        let lines: Vec<String> = desired(&c, "route53", &zone(), &vars())
            .unwrap()
            .records
            .iter()
            .map(|r| r.value.to_line())
            .collect();
        assert_eq!(
            lines,
            vec![
                "198-51-100-20.example.com. A 198.51.100.20",
                "_v1._theservice._tcp.example.com. SRV 0 0 8080 198-51-100-20.example.com.",
            ]
        );
    }

    #[test]
    fn dns_sd_gives_ptr_srv_and_txt() {
        let text = format!(
            "{BASE}[[host]]\nproviders=[\"r53\"]\nname=\"{{instance_id}}\"\n[[service]]\nproviders=[\"r53\"]\ntype=\"_http._tcp\"\ninstance=\"{{hostname}}\"\nport=80\ntxt={{path=\"/\"}}\n"
        );
        let c = parse("t", &text).unwrap();
        let lines: Vec<String> = desired(&c, "r53", &zone(), &vars())
            .unwrap()
            .records
            .iter()
            .map(|r| r.value.to_line())
            .collect();
        assert!(
            lines.contains(
                &"_http._tcp.example.com. PTR ip-10-0-0-5._http._tcp.example.com.".to_string()
            ),
            "{lines:?}"
        );
        assert!(lines.contains(
            &"ip-10-0-0-5._http._tcp.example.com. SRV 0 0 80 i-0abc.example.com.".to_string()
        ));
        assert!(lines.contains(&"ip-10-0-0-5._http._tcp.example.com. TXT \"path=/\"".to_string()));
    }

    #[test]
    fn names_outside_the_zone_are_refused_before_any_network_call() {
        let text = format!("{BASE}[[round_robin]]\nproviders=[\"r53\"]\nname=\"www.other.org.\"\n");
        let e = parse("t.toml", &text).unwrap_err();
        assert_eq!(e.problems[0].line, Some(4));
        assert!(e.problems[0].message.contains("outside the zone"), "{e}");
    }

    #[test]
    fn srv_targets_must_be_published() {
        let text = format!(
            "{BASE}[[srv]]\nproviders=[\"r53\"]\nname=\"_a._tcp\"\nport=1\ntarget=\"{{instance_id}}\"\n"
        );
        let e = parse("t.toml", &text).unwrap_err();
        assert_eq!(e.problems[0].key, "srv[0].target");
        assert!(
            e.problems[0]
                .message
                .contains("not a name this configuration publishes"),
            "{e}"
        );
    }

    #[test]
    fn colliding_records_are_refused() {
        let text = format!(
            "{BASE}[[host]]\nproviders=[\"r53\"]\nname=\"www\"\n[[round_robin]]\nproviders=[\"r53\"]\nname=\"www\"\n"
        );
        let e = parse("t.toml", &text).unwrap_err();
        assert!(e.problems[0].message.contains("collide"), "{e}");
    }

    #[test]
    fn registry_names_live_in_one_subtree() {
        assert_eq!(
            crate::registry::name(&zone(), "i-0ABC").unwrap().as_str(),
            "i-0abc._dnsreg.example.com."
        );
        assert!(crate::registry::name(&zone(), "web 1").is_err());
        let text = format!("{BASE}[[round_robin]]\nproviders=[\"r53\"]\nname=\"x._dnsreg\"\n");
        assert!(
            parse("t", &text)
                .unwrap_err()
                .to_string()
                .contains("ownership registry")
        );
    }

    fn lines(d: &Desired) -> Vec<String> {
        d.records.iter().map(|r| r.value.to_line()).collect()
    }

    #[test]
    fn every_template_variable_is_this_instance_s_value() {
        let text = format!(
            "{BASE}[[host]]\nproviders=[\"r53\"]\nname=\"{{instance_id}}\"\n\
             [[host]]\nproviders=[\"r53\"]\nname=\"h-{{hostname}}\"\n\
             [[host]]\nproviders=[\"r53\"]\nname=\"{{region}}\"\n\
             [[host]]\nproviders=[\"r53\"]\nname=\"{{ipv4_dashed}}\"\n\
             [[host]]\nproviders=[\"r53\"]\nname=\"{{ipv4}}\"\n"
        );
        let c = parse("t", &text).unwrap();
        assert_eq!(
            lines(&desired(&c, "r53", &zone(), &vars()).unwrap()),
            [
                "198-51-100-20.example.com. A 198.51.100.20",
                "198.51.100.20.example.com. A 198.51.100.20",
                "eu-west-1.example.com. A 198.51.100.20",
                "h-ip-10-0-0-5.example.com. A 198.51.100.20",
                "i-0abc.example.com. A 198.51.100.20",
            ]
        );
        // An instance without a region cannot publish a name made of it:
        // refused with the key, before anything is written.
        let no_region = Vars {
            region: None,
            ..vars()
        };
        let problems = desired(&c, "r53", &zone(), &no_region).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "host[2].name");
        assert!(problems[0].1.contains("needs {region}"), "{problems:?}");
    }

    #[test]
    fn a_provider_plans_only_its_own_specs_and_srv_targets_it_publishes() {
        let two = format!(
            "{BASE}[providers.cf]\ntype = \"cloudflare\"\nzone = \"example.com\"\n\
             [[host]]\nproviders=[\"r53\"]\nname=\"a\"\n\
             [[host]]\nproviders=[\"cf\"]\nname=\"b\"\n\
             [[srv]]\nproviders=[\"cf\"]\nname=\"_b._tcp\"\nport=1\ntarget=\"b\"\n"
        );
        let c = parse("t", &two).unwrap();
        assert_eq!(
            lines(&desired(&c, "r53", &zone(), &vars()).unwrap()),
            ["a.example.com. A 198.51.100.20"]
        );
        assert_eq!(
            lines(&desired(&c, "cf", &zone(), &vars()).unwrap()),
            [
                "_b._tcp.example.com. SRV 0 0 1 b.example.com.",
                "b.example.com. A 198.51.100.20",
            ]
        );
        // An SRV through r53 whose target only cf publishes points at a name
        // r53's zone may not have.
        let text =
            format!("{two}[[srv]]\nproviders=[\"r53\"]\nname=\"_a._tcp\"\nport=1\ntarget=\"b\"\n");
        let e = parse("t", &text).unwrap_err();
        assert_eq!(e.problems.len(), 1, "{e}");
        assert_eq!(e.problems[0].key, "srv[1].target");
        assert!(e.problems[0].message.contains("through `r53`"), "{e}");
    }

    #[test]
    fn a_shared_value_written_twice_collides_and_different_ones_share_a_name() {
        // Two round robins of one name would write the same address twice.
        let text = format!(
            "{BASE}[[round_robin]]\nproviders=[\"r53\"]\nname=\"www\"\n\
             [[round_robin]]\nproviders=[\"r53\"]\nname=\"www\"\n"
        );
        let e = parse("t", &text).unwrap_err();
        assert_eq!(e.problems.len(), 1, "{e}");
        assert_eq!(e.problems[0].key, "round_robin[1]");
        assert!(
            e.problems[0].message.contains(
                "round_robin[0] also writes www.example.com. A; the records of round_robin[0] and round_robin[1] collide"
            ),
            "{e}"
        );
        // Two hosts of one name: each would own the rrset.
        let text = format!(
            "{BASE}[[host]]\nproviders=[\"r53\"]\nname=\"www\"\n\
             [[host]]\nproviders=[\"r53\"]\nname=\"www\"\n"
        );
        assert!(
            parse("t", &text)
                .unwrap_err()
                .to_string()
                .contains("collide")
        );
        // Two SRV records of one service name with different targets are
        // its two values, which the rrset shares.
        let text = format!(
            "{BASE}[[host]]\nproviders=[\"r53\"]\nname=\"a\"\n\
             [[host]]\nproviders=[\"r53\"]\nname=\"b\"\n\
             [[srv]]\nproviders=[\"r53\"]\nname=\"_x._tcp\"\nport=1\ntarget=\"a\"\n\
             [[srv]]\nproviders=[\"r53\"]\nname=\"_x._tcp\"\nport=2\ntarget=\"b\"\n"
        );
        let c = parse("t", &text).unwrap();
        let d = desired(&c, "r53", &zone(), &vars()).unwrap();
        assert_eq!(
            lines(&d),
            [
                "_x._tcp.example.com. SRV 0 0 1 a.example.com.",
                "_x._tcp.example.com. SRV 0 0 2 b.example.com.",
                "a.example.com. A 198.51.100.20",
                "b.example.com. A 198.51.100.20",
            ]
        );
    }

    #[test]
    fn only_a_host_s_rrsets_are_this_instance_s_alone() {
        let text = format!(
            "{BASE}[instance]\nipv6 = true\n\
             [[host]]\nproviders=[\"r53\"]\nname=\"a\"\n\
             [[round_robin]]\nproviders=[\"r53\"]\nname=\"www\"\n"
        );
        let c = parse("t", &text).unwrap();
        let v6 = Vars {
            ipv6: Some("2001:db8::20".parse().unwrap()),
            ..vars()
        };
        let d = desired(&c, "r53", &zone(), &v6).unwrap();
        assert_eq!(
            lines(&d),
            [
                "a.example.com. A 198.51.100.20",
                "a.example.com. AAAA 2001:db8::20",
                "www.example.com. A 198.51.100.20",
                "www.example.com. AAAA 2001:db8::20",
            ]
        );
        // The round robin's rrsets are shared with other instances: writing
        // them whole would remove the others' addresses.
        let exclusive: Vec<String> = d.exclusive.iter().map(ToString::to_string).collect();
        assert_eq!(exclusive, ["a.example.com. A", "a.example.com. AAAA"]);
    }

    #[test]
    fn a_zone_given_by_id_takes_absolute_names_and_still_refuses_collisions() {
        let by_id = "[providers.r53]\ntype = \"route53\"\nzone_id = \"Z0123456789ABC\"\n";
        // The zone's name is learnt at connect: an absolute name cannot be
        // checked against it before, and is not refused (the engine plans
        // it again once connected).
        let text = format!("{by_id}[[host]]\nproviders=[\"r53\"]\nname=\"www.example.com.\"\n");
        let c = parse("t", &text).unwrap();
        assert!(check_sample(&c).is_empty());
        // Relative names are checked, against a stand-in zone.
        let text = format!(
            "{by_id}[[host]]\nproviders=[\"r53\"]\nname=\"www\"\n\
             [[round_robin]]\nproviders=[\"r53\"]\nname=\"www\"\n"
        );
        let e = parse("t", &text).unwrap_err();
        assert_eq!(e.problems.len(), 1, "{e}");
        assert!(e.problems[0].message.contains("collide"), "{e}");
    }
}
