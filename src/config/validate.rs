//! Validation of a whole configuration: each table checked by its part, then
//! what only the whole can tell (providers naming one zone, records a provider
//! cannot take, settings that contradict each other).

use super::checker::Checker;
use super::providers::validate_providers;
use super::raw::{RawConfig, S};
use super::records::validate_records;
use super::settings::{
    drain_within_stop_timeout, validate_agent, validate_check, validate_instance, validate_lease,
};
use crate::model::{
    Config, ConfigError, Problem, ProviderConfig, ProviderKind, RecordSpec, Routing, SpecKind,
};

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
    let providers = validate_providers(&mut c, &raw.providers);
    let records = validate_records(&mut c, &raw);

    let drain_span = raw
        .agent
        .as_ref()
        .and_then(|a| a.drain.as_ref())
        .map(S::span);
    let agent = validate_agent(&mut c, raw.agent.take().unwrap_or_default());

    cloudflare_record_problems(&mut c, &raw, &records, &providers);
    super::mdns::mdns_record_problems(&mut c, &raw, &records, &providers, |c, key| {
        raw_line_for(c, &raw, key)
    });
    missing_tables(&mut c, &raw, &providers, &records);

    let checks = raw
        .check
        .iter()
        .enumerate()
        .filter_map(|(i, ch)| validate_check(&mut c, i, ch))
        .collect();
    let lease = raw.lease.as_ref().map(|l| validate_lease(&mut c, l));
    drain_within_stop_timeout(&mut c, &agent, drain_span);

    let config = Config {
        instance,
        providers,
        records,
        agent,
        checks,
        lease,
    };
    if c.problems.is_empty() {
        sample_problems(&mut c, &raw, &config);
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

/// What a Cloudflare provider cannot take of the records routed to it.
fn cloudflare_record_problems(
    c: &mut Checker,
    raw: &RawConfig,
    records: &[RecordSpec],
    providers: &[ProviderConfig],
) {
    // Cloudflare proxies only A/AAAA (and CNAME): an SRV, TXT or PTR record
    // cannot be proxied, so a spec that makes them must not go to such a provider.
    for r in records {
        // Cloudflare takes TTLs of 1 (automatic) or 30 (Enterprise; 60 on the
        // other plans) to 86400 seconds ("Time to Live (TTL)" in its DNS docs).
        for pc in providers {
            if matches!(pc.kind, ProviderKind::Cloudflare(_))
                && r.providers.contains(&pc.name)
                && r.ttl != 1
                && !(30..=86400).contains(&r.ttl)
            {
                let line = raw_line_for(c, raw, &r.origin);
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
        for pc in providers {
            if let ProviderKind::Cloudflare(cf) = &pc.kind
                && cf.proxied
                && r.providers.contains(&pc.name)
            {
                let line = raw_line_for(c, raw, &r.origin);
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
}

/// Problems of a configuration with no providers or no records at all.
fn missing_tables(
    c: &mut Checker,
    raw: &RawConfig,
    providers: &[ProviderConfig],
    records: &[RecordSpec],
) {
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
}

/// Expanding with a sample identity catches bad names, names outside the
/// zone, SRV targets nobody publishes and colliding records, before any
/// network call.
fn sample_problems(c: &mut Checker, raw: &RawConfig, config: &Config) {
    for p in crate::plan::check_sample(config) {
        let line = raw_line_for(c, raw, &p.0);
        c.problems.push(Problem {
            line,
            key: p.0,
            message: p.1,
        });
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
