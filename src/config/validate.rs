//! Validation of a whole configuration: each table checked by its part, then
//! what only the whole can tell (providers naming one zone, records a provider
//! cannot take, settings that contradict each other).

use std::collections::BTreeSet;
use std::time::Duration;

use super::checker::Checker;
use super::model::{
    Config, ConfigError, LeaseConfig, Problem, ProviderKind, RecordSpec, Routing, SpecKind,
    Template,
};
use super::providers::{same_zone, validate_provider};
use super::raw::{RawConfig, RawName, S};
use super::settings::{validate_agent, validate_check, validate_instance};

/// Validates a raw configuration. `text` (when from a file) gives line numbers.
pub fn validate(
    source_name: &str,
    text: Option<&str>,
    mut raw: RawConfig,
) -> Result<Config, ConfigError> {
    let mut c = Checker {
        text,
        problems: Vec::new(),
    };

    let instance = validate_instance(&mut c, raw.instance.take().unwrap_or_default());

    let mut providers = Vec::new();
    for (name, p) in &raw.providers {
        if let Some(pc) = validate_provider(&mut c, name, p) {
            providers.push(pc);
        }
    }
    for (i, a) in providers.iter().enumerate() {
        for b in &providers[..i] {
            if same_zone(a, b) {
                let span = raw.providers.get(&a.name).map_or(0..0, S::span);
                c.problem(
                    span,
                    format!("providers.{}", a.name),
                    format!(
                        "names the same zone as providers.{}: each entry would take the other's records in the zone's registry for its own to remove; put all the records of one zone under one provider entry",
                        b.name
                    ),
                );
            }
        }
    }
    let known: BTreeSet<&str> = raw.providers.keys().map(String::as_str).collect();

    let mut records = Vec::new();
    let check_providers = |c: &mut Checker, v: &S<Vec<String>>, origin: &str| -> Vec<String> {
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
        v.get_ref().clone()
    };

    for (i, h) in raw.host.iter().enumerate() {
        let origin = format!("host[{i}]");
        let h = h.get_ref();
        let providers = check_providers(&mut c, &h.providers, &origin);
        let ttl = ttl(&mut c, &h.ttl, &origin);
        if let Some(name) = c.template(&h.name, &format!("{origin}.name")) {
            records.push(RecordSpec {
                origin,
                providers,
                ttl,
                kind: SpecKind::Host { name },
            });
        }
    }
    for (i, r) in raw.round_robin.iter().enumerate() {
        let origin = format!("round_robin[{i}]");
        let r = r.get_ref();
        let providers = check_providers(&mut c, &r.providers, &origin);
        let ttl = ttl(&mut c, &r.ttl, &origin);
        if let Some(name) = c.template(&r.name, &format!("{origin}.name")) {
            records.push(RecordSpec {
                origin,
                providers,
                ttl,
                kind: SpecKind::RoundRobin { name },
            });
        }
    }
    for (i, s) in raw.srv.iter().enumerate() {
        let origin = format!("srv[{i}]");
        let s = s.get_ref();
        let providers = check_providers(&mut c, &s.providers, &origin);
        let ttl = ttl(&mut c, &s.ttl, &origin);
        let port = c.u32_in::<u16>(&s.port, &format!("{origin}.port"), 1, 65535);
        let priority = s.priority.as_ref().map_or(Some(0), |v| {
            c.u32_in::<u16>(v, &format!("{origin}.priority"), 0, 65535)
        });
        let weight = s.weight.as_ref().map_or(Some(0), |v| {
            c.u32_in::<u16>(v, &format!("{origin}.weight"), 0, 65535)
        });
        let name = c.template(&s.name, &format!("{origin}.name"));
        let target = c.template(&s.target, &format!("{origin}.target"));
        if !s.name.get_ref().starts_with('_') {
            c.problem(
                s.name.span(),
                format!("{origin}.name"),
                format!("`{}` is not an SRV owner name; write `_service._proto`, e.g. \"_v1._theservice._tcp\" (RFC 2782)", s.name.get_ref()),
            );
        }
        if let (Some(port), Some(priority), Some(weight), Some(name), Some(target)) =
            (port, priority, weight, name, target)
        {
            records.push(RecordSpec {
                origin,
                providers,
                ttl,
                kind: SpecKind::Srv {
                    name,
                    priority,
                    weight,
                    port,
                    target,
                },
            });
        }
    }
    for (i, s) in raw.service.iter().enumerate() {
        let origin = format!("service[{i}]");
        let s = s.get_ref();
        let providers = check_providers(&mut c, &s.providers, &origin);
        let ttl = ttl(&mut c, &s.ttl, &origin);
        let port = c.u32_in::<u16>(&s.port, &format!("{origin}.port"), 1, 65535);
        let priority = s.priority.as_ref().map_or(Some(0), |v| {
            c.u32_in::<u16>(v, &format!("{origin}.priority"), 0, 65535)
        });
        let weight = s.weight.as_ref().map_or(Some(0), |v| {
            c.u32_in::<u16>(v, &format!("{origin}.weight"), 0, 65535)
        });
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
        let target = match &s.target {
            Some(t) => c.template(t, &format!("{origin}.target")),
            None => {
                // Default: the one [[host]] name published through the same providers.
                let hosts: Vec<&S<RawName>> = raw
                    .host
                    .iter()
                    .filter(|h| {
                        h.get_ref()
                            .providers
                            .get_ref()
                            .iter()
                            .any(|p| s.providers.get_ref().contains(p))
                    })
                    .collect();
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
        };
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
        if let (true, Some(port), Some(priority), Some(weight), Some(instance), Some(target)) =
            (type_ok, port, priority, weight, instance, target)
        {
            records.push(RecordSpec {
                origin,
                providers,
                ttl,
                kind: SpecKind::Service {
                    service_type: stype.clone(),
                    instance,
                    port,
                    priority,
                    weight,
                    target,
                    txt,
                },
            });
        }
    }

    let drain_span = raw
        .agent
        .as_ref()
        .and_then(|a| a.drain.as_ref())
        .map(S::span);
    let agent = validate_agent(&mut c, raw.agent.take().unwrap_or_default());

    // Cloudflare proxies only A/AAAA (and CNAME): an SRV, TXT or PTR record
    // cannot be proxied, so a spec that makes them must not go to such a provider.
    for r in &records {
        // Cloudflare takes TTLs of 1 (automatic) or 30 (Enterprise; 60 on the
        // other plans) to 86400 seconds ("Time to Live (TTL)" in its DNS docs).
        for pc in &providers {
            if matches!(pc.kind, ProviderKind::Cloudflare(_))
                && r.providers.contains(&pc.name)
                && r.ttl != 1
                && !(30..=86400).contains(&r.ttl)
            {
                let line = raw_line_for(&c, &raw, &r.origin);
                c.problems.push(Problem {
                    line,
                    key: format!("{}.ttl", r.origin),
                    message: format!(
                        "{} is not a TTL Cloudflare accepts (provider `{}`); write 1 (automatic) or 60 to 86400",
                        r.ttl, pc.name
                    ),
                });
            }
        }
        if !matches!(r.kind, SpecKind::Srv { .. } | SpecKind::Service { .. }) {
            continue;
        }
        for pc in &providers {
            if let ProviderKind::Cloudflare(cf) = &pc.kind
                && cf.proxied
                && r.providers.contains(&pc.name)
            {
                let line = raw_line_for(&c, &raw, &r.origin);
                c.problems.push(Problem {
                    line,
                    key: format!("{}.providers", r.origin),
                    message: format!(
                        "`{}` makes SRV/TXT/PTR records, which Cloudflare cannot proxy, but provider `{}` has proxied = true; set proxied = false there or route this spec to another provider",
                        r.origin, pc.name
                    ),
                });
            }
        }
    }
    if providers.is_empty() && raw.providers.is_empty() {
        c.problems.push(Problem {
            line: None,
            key: "providers".into(),
            message: "no provider is configured; add e.g. [providers.r53] with type = \"route53\" and zone = \"example.com\"".into(),
        });
    }
    if records.is_empty()
        && raw.host.is_empty()
        && raw.round_robin.is_empty()
        && raw.srv.is_empty()
        && raw.service.is_empty()
    {
        c.problems.push(Problem {
            line: None,
            key: String::new(),
            message: "no records are configured; add a [[host]], [[round_robin]], [[srv]] or [[service]] table".into(),
        });
    }

    let checks = raw
        .check
        .iter()
        .enumerate()
        .filter_map(|(i, ch)| validate_check(&mut c, i, ch))
        .collect();
    let lease = raw.lease.as_ref().map(|l| {
        let ttl = c.duration(&l.get_ref().ttl, "lease.ttl", Duration::from_secs(3600));
        if l.get_ref().ttl.is_none() {
            c.problem(l.span(), "lease.ttl", "missing; write e.g. ttl = \"1h\" (refreshed every ttl/3)");
        } else if ttl < Duration::from_secs(60) {
            c.problem(
                l.get_ref().ttl.as_ref().unwrap().span(),
                "lease.ttl",
                "must be at least 60s (each refresh is a write to every provider); write e.g. \"1h\"",
            );
        }
        LeaseConfig {
            ttl,
            reap: l.get_ref().reap.unwrap_or(false),
        }
    });
    if agent.drain >= agent.stop_timeout && !agent.drain.is_zero() {
        let span = drain_span;
        let message = format!(
            "drain ({}) must be shorter than stop_timeout ({}), which bounds the whole stop (removal, then drain)",
            humantime::format_duration(agent.drain),
            humantime::format_duration(agent.stop_timeout)
        );
        match span {
            Some(span) => c.problem(span, "agent.drain", message),
            None => c.problems.push(Problem {
                line: None,
                key: "agent.drain".into(),
                message,
            }),
        }
    }

    let config = Config {
        instance,
        providers,
        records,
        agent,
        checks,
        lease,
    };
    if c.problems.is_empty() {
        // Expanding with a sample identity catches bad names, names outside the
        // zone, SRV targets nobody publishes and colliding records, before any
        // network call.
        for p in crate::plan::check_sample(&config) {
            let line = raw_line_for(&c, &raw, &p.0);
            c.problems.push(Problem {
                line,
                key: p.0,
                message: p.1,
            });
        }
    }
    if c.problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError {
            source_name: source_name.to_string(),
            problems: c.problems,
        })
    }
}

/// The line of a record table, from its origin (`srv[2].target` → that table).
fn raw_line_for(c: &Checker, raw: &RawConfig, key: &str) -> Option<usize> {
    let (table, rest) = key.split_once('[')?;
    let index: usize = rest.split_once(']')?.0.parse().ok()?;
    let span = match table {
        "host" => raw.host.get(index)?.span(),
        "round_robin" => raw.round_robin.get(index)?.span(),
        "srv" => raw.srv.get(index)?.span(),
        "service" => raw.service.get(index)?.span(),
        _ => return None,
    };
    c.line(span)
}

fn ttl(c: &mut Checker, v: &Option<S<i64>>, origin: &str) -> u32 {
    match v {
        None => 60,
        // Route53 accepts 0..=2147483647; anything above a week is a mistake here.
        Some(v) => c
            .u32_in::<u32>(v, &format!("{origin}.ttl"), 1, 604_800)
            .unwrap_or(60),
    }
}

/// What `dnsreg check` can say of a fleet's limits without knowing its size:
/// a Route53 provider with simple routing that instances share names through.
pub fn fleet_notes(config: &Config) -> Vec<String> {
    config
        .providers
        .iter()
        .filter(|p| matches!(&p.kind, ProviderKind::Route53(r) if r.routing == Routing::Simple))
        .filter_map(|p| {
            let shared: Vec<&str> = config
                .records
                .iter()
                .filter(|r| r.providers.contains(&p.name))
                .filter(|r| !matches!(r.kind, SpecKind::Host { .. }))
                .map(|r| r.origin.as_str())
                .collect();
            (!shared.is_empty()).then(|| {
                format!(
                    "providers.{}: with routing = \"simple\" the instances share one rrset per name ({}); Route53 rewrites it whole, in one change batch of at most 1,000 records and 32,000 characters, so a shared rrset holds about 450 addresses or 300 SRV lines at most, and instances joining or stopping at once take turns (measured: 200 stopped together left the values of 35 to 58 of them behind, even with stop_timeout twice the floor): for more than a few dozen per name at once, use routing = \"multivalue\", and give a fleet a [lease] so that survivors reap what a scale-in could not remove",
                    p.name,
                    shared.join(", ")
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::{SpecKind, parse};

    const GOOD: &str = r#"
[instance]
metadata = "aws"
address = "public"

[providers.r53]
type = "route53"
zone = "example.com"
routing = "simple"

[[host]]
providers = ["r53"]
name = "{instance_id}"
ttl = 60

[[round_robin]]
providers = ["r53"]
name = "www"

[[srv]]
providers = ["r53"]
name = "_v1._theservice._tcp"
port = 8080
target = "{instance_id}"

[[service]]
providers = ["r53"]
type = "_http._tcp"
instance = "{hostname}"
port = 8080
txt = { path = "/", version = "1" }

[agent]
reconcile_interval = "30s"
stop_timeout = "15s"
join_spread = "100s"
state_dir = "/tmp/dnsreg-state"
"#;

    #[test]
    fn the_spec_example_validates() {
        let c = parse("t.toml", GOOD).unwrap();
        assert_eq!(c.providers.len(), 1);
        assert_eq!(c.records.len(), 4);
        assert_eq!(c.agent.reconcile_interval, Duration::from_secs(30));
        assert_eq!(c.agent.join_spread, Duration::from_secs(100));
        assert_eq!(
            parse("t.toml", &GOOD.replace("join_spread = \"100s\"\n", ""))
                .unwrap()
                .agent
                .join_spread,
            Duration::ZERO,
            "no spread unless asked"
        );
        match &c.records[3].kind {
            SpecKind::Service { target, txt, .. } => {
                assert_eq!(target.as_str(), "{instance_id}");
                assert_eq!(txt.len(), 2);
            }
            other => panic!("{other:?}"),
        }
    }
    #[test]
    fn every_problem_is_listed_with_line_and_key() {
        let text = r#"[providers.r53]
type = "route53"
zone = "example.com"
routing = "weighted"

[[round_robin]]
providers = ["cf"]
name = "www"
ttl = 0

[[srv]]
providers = ["r53"]
name = "_x._tcp"
port = 70000
target = "{instance}"

[agent]
drain = "soon"
"#;
        let e = parse("t.toml", text).unwrap_err();
        let got: Vec<(Option<usize>, &str)> = e
            .problems
            .iter()
            .map(|p| (p.line, p.key.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Some(4), "providers.r53.routing"),
                (Some(7), "round_robin[0].providers"),
                (Some(9), "round_robin[0].ttl"),
                (Some(14), "srv[0].port"),
                (Some(15), "srv[0].target"),
                (Some(18), "agent.drain"),
            ],
            "{e}"
        );
        let shown = e.to_string();
        assert!(shown.contains("t.toml:7: round_robin[0].providers: there is no provider `cf`; write one of: \"r53\""), "{shown}");
    }
}
