//! The record tables: `[[host]]`, `[[round_robin]]`, `[[srv]]` and `[[service]]`,
//! each entry checked into a [`RecordSpec`].

use std::collections::BTreeSet;

use super::checker::Checker;
use super::raw::{RawConfig, RawName, RawService, RawSrv, S};
use crate::model::{RecordSpec, SpecKind, Template};

/// Every record table's entries, table by table in the order above.
pub(super) fn validate_records(c: &mut Checker, raw: &RawConfig) -> Vec<RecordSpec> {
    let known: BTreeSet<&str> = raw.providers.keys().map(String::as_str).collect();
    let mut records = Vec::new();
    records.extend(validate_names(c, &known, "host", &raw.host, |name| {
        SpecKind::Host { name }
    }));
    records.extend(validate_names(
        c,
        &known,
        "round_robin",
        &raw.round_robin,
        |name| SpecKind::RoundRobin { name },
    ));
    for (i, s) in raw.srv.iter().enumerate() {
        records.extend(validate_srv(c, &known, i, s.get_ref()));
    }
    let mdns = super::mdns::mdns_names(raw);
    let mut own_host: Option<RecordSpec> = None;
    for (i, s) in raw.service.iter().enumerate() {
        let s = s.get_ref();
        let only_mdns = s.providers.get_ref().iter().all(|p| mdns.contains(p));
        let default_host =
            only_mdns && s.target.is_none() && hosts_through(&raw.host, s).is_empty();
        if default_host {
            // Through mdns alone, with no host named: a host label of the
            // instance's own (see `mdns::DEFAULT_HOST`), published with it.
            let host = own_host.get_or_insert_with(|| RecordSpec {
                origin: format!("service[{i}].host"),
                providers: Vec::new(),
                ttl: 120,
                kind: SpecKind::Host {
                    name: Template::new(super::mdns::DEFAULT_HOST).expect("valid"),
                },
            });
            for p in s.providers.get_ref() {
                if !host.providers.contains(p) {
                    host.providers.push(p.clone());
                }
            }
        }
        records.extend(validate_service(c, &known, &raw.host, i, s, default_host));
    }
    records.extend(own_host);
    records
}

/// The `[[host]]` entries published through any provider of `s`.
fn hosts_through<'a>(hosts: &'a [S<RawName>], s: &RawService) -> Vec<&'a S<RawName>> {
    hosts
        .iter()
        .filter(|h| {
            h.get_ref()
                .providers
                .get_ref()
                .iter()
                .any(|p| s.providers.get_ref().contains(p))
        })
        .collect()
}

/// The entries of `[[host]]` or `[[round_robin]]` (`table`): a name each, made
/// into a record by `kind`.
fn validate_names(
    c: &mut Checker,
    known: &BTreeSet<&str>,
    table: &str,
    entries: &[S<RawName>],
    kind: fn(Template) -> SpecKind,
) -> Vec<RecordSpec> {
    let mut records = Vec::new();
    for (i, h) in entries.iter().enumerate() {
        let origin = format!("{table}[{i}]");
        let h = h.get_ref();
        let (providers, ttl) = providers_and_ttl(c, known, &h.providers, &h.ttl, &origin);
        if let Some(name) = c.template(&h.name, &format!("{origin}.name")) {
            records.push(RecordSpec {
                origin,
                providers,
                ttl,
                kind: kind(name),
            });
        }
    }
    records
}

/// One `[[srv]]`.
fn validate_srv(
    c: &mut Checker,
    known: &BTreeSet<&str>,
    i: usize,
    s: &RawSrv,
) -> Option<RecordSpec> {
    let origin = format!("srv[{i}]");
    let (providers, ttl) = providers_and_ttl(c, known, &s.providers, &s.ttl, &origin);
    let (port, priority, weight) = srv_numbers(c, &origin, &s.port, &s.priority, &s.weight);
    let name = c.template(&s.name, &format!("{origin}.name"));
    let target = c.template(&s.target, &format!("{origin}.target"));
    if !s.name.get_ref().starts_with('_') {
        c.problem(
            s.name.span(),
            format!("{origin}.name"),
            format!("`{}` is not an SRV owner name; write `_service._proto`, e.g. \"_v1._theservice._tcp\" (RFC 2782)", s.name.get_ref()),
        );
    }
    Some(RecordSpec {
        origin,
        providers,
        ttl,
        kind: SpecKind::Srv {
            name: name?,
            priority: priority?,
            weight: weight?,
            port: port?,
            target: target?,
        },
    })
}

/// One `[[service]]`; `hosts` are the `[[host]]` entries, for its default
/// target (`own_host`: the mdns default, [`super::mdns::DEFAULT_HOST`]).
fn validate_service(
    c: &mut Checker,
    known: &BTreeSet<&str>,
    hosts: &[S<RawName>],
    i: usize,
    s: &RawService,
    own_host: bool,
) -> Option<RecordSpec> {
    let origin = format!("service[{i}]");
    let (providers, ttl) = providers_and_ttl(c, known, &s.providers, &s.ttl, &origin);
    let (port, priority, weight) = srv_numbers(c, &origin, &s.port, &s.priority, &s.weight);
    let stype = s.service_type.get_ref();
    let labels: Vec<&str> = stype.split('.').collect();
    let type_ok = labels.len() == 2
        && labels[0].starts_with('_')
        && labels[0].len() >= 2
        && (labels[1] == "_tcp" || labels[1] == "_udp");
    if !type_ok {
        c.problem(
            s.service_type.span(),
            format!("{origin}.type"),
            format!("`{stype}` is not a DNS-SD service type; write `_name._tcp` or `_name._udp`, e.g. \"_http._tcp\" (RFC 6763 §7)"),
        );
    }
    let instance = c.template(&s.instance, &format!("{origin}.instance"));
    let target = if own_host {
        Template::new(super::mdns::DEFAULT_HOST).ok()
    } else {
        service_target(c, hosts, &origin, s)
    };
    let txt = service_txt(c, &origin, s);
    if !type_ok {
        return None;
    }
    Some(RecordSpec {
        origin,
        providers,
        ttl,
        kind: SpecKind::Service {
            service_type: stype.clone(),
            instance: instance?,
            port: port?,
            priority: priority?,
            weight: weight?,
            target: target?,
            txt,
        },
    })
}

/// The name a `[[service]]`'s SRV record points at: its `target`, or else the
/// one `[[host]]` name published through the same providers.
fn service_target(
    c: &mut Checker,
    hosts: &[S<RawName>],
    origin: &str,
    s: &RawService,
) -> Option<Template> {
    if let Some(t) = &s.target {
        return c.template(t, &format!("{origin}.target"));
    }
    let hosts = hosts_through(hosts, s);
    if hosts.len() == 1 {
        Template::new(hosts[0].get_ref().name.get_ref()).ok()
    } else {
        c.problem(
            s.instance.span(),
            format!("{origin}.target"),
            "missing: say which name the service's SRV record points at, e.g. target = \"{instance_id}\" with a [[host]] of that name",
        );
        None
    }
}

/// A `[[service]]`'s TXT keys and values, each checked.
fn service_txt(c: &mut Checker, origin: &str, s: &RawService) -> Vec<(String, String)> {
    let mut txt = Vec::new();
    for (k, v) in &s.txt {
        let pair = format!("{k}={v}");
        if k.is_empty() || k.contains('=') || pair.len() > 255 {
            c.problem(
                s.instance.span(),
                format!("{origin}.txt.{k}"),
                "a TXT key must be non-empty without `=`, and `key=value` at most 255 characters (RFC 6763 §6)",
            );
        }
        txt.push((k.clone(), v.clone()));
    }
    txt
}

/// What every record entry has: the providers it goes to (each a table of
/// `[providers]`, in `known`) and its TTL.
fn providers_and_ttl(
    c: &mut Checker,
    known: &BTreeSet<&str>,
    v: &S<Vec<String>>,
    ttl_value: &Option<S<i64>>,
    origin: &str,
) -> (Vec<String>, u32) {
    if v.get_ref().is_empty() {
        c.problem(
            v.span(),
            format!("{origin}.providers"),
            "the list is empty; name at least one table of [providers]",
        );
    }
    for p in v.get_ref() {
        if !known.contains(p.as_str()) {
            let hint = if known.is_empty() {
                "there are no [providers.NAME] tables; add one".to_string()
            } else {
                format!(
                    "write one of: {}",
                    known
                        .iter()
                        .map(|k| format!("\"{k}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            c.problem(
                v.span(),
                format!("{origin}.providers"),
                format!("there is no provider `{p}`; {hint}"),
            );
        }
    }
    (v.get_ref().clone(), ttl(c, ttl_value, origin))
}

/// A record's TTL, 60 seconds when not given.
fn ttl(c: &mut Checker, v: &Option<S<i64>>, origin: &str) -> u32 {
    match v {
        None => 60,
        // Route53 accepts 0..=2147483647; anything above a week is a mistake here.
        Some(v) => c
            .u32_in::<u32>(v, &format!("{origin}.ttl"), 1, 604_800)
            .unwrap_or(60),
    }
}

/// The port, priority and weight of an SRV line (`[[srv]]` and `[[service]]`):
/// priority and weight are 0 when not given.
fn srv_numbers(
    c: &mut Checker,
    origin: &str,
    port: &S<i64>,
    priority: &Option<S<i64>>,
    weight: &Option<S<i64>>,
) -> (Option<u16>, Option<u16>, Option<u16>) {
    let port = c.u32_in::<u16>(port, &format!("{origin}.port"), 1, 65535);
    let priority = priority.as_ref().map_or(Some(0), |v| {
        c.u32_in::<u16>(v, &format!("{origin}.priority"), 0, 65535)
    });
    let weight = weight.as_ref().map_or(Some(0), |v| {
        c.u32_in::<u16>(v, &format!("{origin}.weight"), 0, 65535)
    });
    (port, priority, weight)
}
