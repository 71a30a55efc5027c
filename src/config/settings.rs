//! The tables that configure the agent itself rather than what it publishes:
//! `[instance]`, `[[check]]`, `[lease]` and `[agent]`.

use std::net::Ipv4Addr;
use std::ops::{Range, RangeInclusive};
use std::path::PathBuf;
use std::time::Duration;

use super::checker::Checker;
use super::raw::{RawAgent, RawCheck, RawInstance, RawLease, S};
use crate::model::{
    AddressKind, AgentConfig, CheckConfig, InstanceConfig, LeaseConfig, MetadataKind, Probe,
    Problem, ServerAddr,
};

/// `[instance]`: where the instance's identity comes from, and values that
/// override it.
pub(super) fn validate_instance(c: &mut Checker, raw: RawInstance) -> InstanceConfig {
    let metadata = instance_metadata(c, &raw);
    let address = match raw
        .address
        .as_ref()
        .map(|a| (a.get_ref().as_str(), a.span()))
    {
        None | Some(("public", _)) => AddressKind::Public,
        Some(("private", _)) => AddressKind::Private,
        Some((other, span)) => {
            c.problem(
                span,
                "instance.address",
                format!("`{other}` is not an address kind; write \"public\" or \"private\""),
            );
            AddressKind::Public
        }
    };
    let ipv4 = instance_ipv4(c, &raw);
    let id = raw.id.as_ref().map(|v| {
        if let Err(e) = crate::registry::instance_label(v.get_ref()) {
            c.problem(v.span(), "instance.id", e);
        }
        v.get_ref().clone()
    });
    if metadata == MetadataKind::None && (raw.id.is_none() || raw.ipv4.is_none()) {
        c.problems.push(Problem {
            line: None,
            key: "instance".into(),
            message: "with metadata = \"none\", set both id and ipv4 in [instance]".into(),
        });
    }
    let metadata_endpoint = raw.metadata_endpoint.as_ref().map(|v| {
        let s = v.get_ref();
        if !(s.starts_with("http://") || s.starts_with("https://")) {
            c.problem(
                v.span(),
                "instance.metadata_endpoint",
                format!("`{s}` is not an http(s) URL; write e.g. \"http://127.0.0.1:1338\""),
            );
        }
        s.trim_end_matches('/').to_string()
    });
    InstanceConfig {
        metadata,
        address,
        ipv6: raw.ipv6.unwrap_or(false),
        id,
        ipv4,
        hostname: raw.hostname.map(|h| h.into_inner()),
        region: raw.region.map(|r| r.into_inner()),
        metadata_endpoint,
    }
}

/// `[instance] metadata`: where the identity comes from, `auto` when not given.
fn instance_metadata(c: &mut Checker, raw: &RawInstance) -> MetadataKind {
    match raw
        .metadata
        .as_ref()
        .map(|m| (m.get_ref().as_str(), m.span()))
    {
        None => MetadataKind::Auto,
        Some((name, span)) => match MetadataKind::from_name(name) {
            Some(kind) => kind,
            None => {
                let all: Vec<String> = MetadataKind::ALL
                    .iter()
                    .map(|k| format!("\"{}\"", k.name()))
                    .collect();
                c.problem(
                    span,
                    "instance.metadata",
                    format!(
                        "`{name}` is not a metadata source; write one of {}",
                        all.join(", ")
                    ),
                );
                MetadataKind::Auto
            }
        },
    }
}

/// `[instance] ipv4`: an address, and one that other machines can reach.
fn instance_ipv4(c: &mut Checker, raw: &RawInstance) -> Option<Ipv4Addr> {
    raw
        .ipv4
        .as_ref()
        .and_then(|v| match v.get_ref().parse::<Ipv4Addr>() {
            Ok(ip) => {
                if let Some(why) = crate::net::unusable_ipv4(ip) {
                    c.problem(
                        v.span(),
                        "instance.ipv4",
                        format!("{ip} is {why}, which no other machine can reach; write the address others should use"),
                    );
                }
                Some(ip)
            }
            Err(_) => {
                c.problem(
                    v.span(),
                    "instance.ipv4",
                    format!(
                        "`{}` is not an IPv4 address; write e.g. \"203.0.113.7\"",
                        v.get_ref()
                    ),
                );
                None
            }
        })
}

/// One `[[check]]`: exactly one probe, sane timings.
pub(super) fn validate_check(c: &mut Checker, i: usize, ch: &S<RawCheck>) -> Option<CheckConfig> {
    let origin = format!("check[{i}]");
    let raw = ch.get_ref();
    let probes = [raw.http.is_some(), raw.tcp.is_some(), raw.exec.is_some()];
    if probes.iter().filter(|p| **p).count() != 1 {
        c.problem(
            ch.span(),
            origin.clone(),
            "a check needs exactly one of http = \"http://127.0.0.1:8080/healthz\", tcp = \"127.0.0.1:8080\" or exec = [\"/usr/local/bin/healthy\"]",
        );
        return None;
    }
    let probe = check_probe(c, &origin, raw);
    let interval = c.duration(
        &raw.interval,
        &format!("{origin}.interval"),
        Duration::from_secs(5),
    );
    let timeout = c.duration(
        &raw.timeout,
        &format!("{origin}.timeout"),
        Duration::from_secs(2),
    );
    if interval < Duration::from_millis(100) {
        let span = raw.interval.as_ref().map_or(ch.span(), S::span);
        c.problem(
            span,
            format!("{origin}.interval"),
            "must be at least 100ms; write e.g. \"5s\"",
        );
    }
    if timeout.is_zero() || timeout > interval {
        let span = raw.timeout.as_ref().map_or(ch.span(), S::span);
        c.problem(
            span,
            format!("{origin}.timeout"),
            format!(
                "must be above zero and at most the interval ({}); write e.g. \"2s\"",
                humantime::format_duration(interval)
            ),
        );
    }
    let count = |c: &mut Checker, v: &Option<S<i64>>, key: &str, default: u32| -> u32 {
        match v {
            None => default,
            Some(n) => c
                .u32_in::<u32>(n, &format!("{origin}.{key}"), 1, 100)
                .unwrap_or(default),
        }
    };
    let rise = count(c, &raw.rise, "rise", 2);
    let fall = count(c, &raw.fall, "fall", 3);
    Some(CheckConfig {
        origin,
        probe: probe?,
        interval,
        timeout,
        rise,
        fall,
    })
}

/// The probe of a `[[check]]` that has exactly one.
fn check_probe(c: &mut Checker, origin: &str, raw: &RawCheck) -> Option<Probe> {
    if let Some(url) = &raw.http {
        let u = url.get_ref();
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            c.problem(
                url.span(),
                format!("{origin}.http"),
                format!(
                    "`{u}` is not an http(s) URL; write e.g. \"http://127.0.0.1:8080/healthz\""
                ),
            );
            None
        } else {
            Some(Probe::Http(u.clone()))
        }
    } else if let Some(addr) = &raw.tcp {
        match ServerAddr::parse(addr.get_ref()) {
            Some(a) if addr.get_ref().contains(':') => Some(Probe::Tcp(a)),
            _ => {
                c.problem(
                    addr.span(),
                    format!("{origin}.tcp"),
                    format!(
                        "`{}` is not host:port; write e.g. \"127.0.0.1:8080\"",
                        addr.get_ref()
                    ),
                );
                None
            }
        }
    } else if let Some(argv) = &raw.exec {
        let v = argv.get_ref();
        if v.is_empty() || v[0].is_empty() {
            c.problem(
                argv.span(),
                format!("{origin}.exec"),
                "the list is empty; write the program and its arguments, e.g. [\"/usr/bin/systemctl\", \"is-active\", \"nginx\"] (no shell)",
            );
            None
        } else {
            Some(Probe::Exec(v.clone()))
        }
    } else {
        None
    }
}

/// `[agent]`: its timings, where its state and metrics go.
pub(super) fn validate_agent(c: &mut Checker, raw: RawAgent) -> AgentConfig {
    let d = AgentConfig::default();
    let reconcile_interval = bounded_duration(
        c,
        &raw.reconcile_interval,
        "agent.reconcile_interval",
        d.reconcile_interval,
        Duration::from_secs(1)..=Duration::MAX,
        "must be at least 1s; write e.g. \"60s\"",
    );
    let notice_interval = bounded_duration(
        c,
        &raw.notice_interval,
        "agent.notice_interval",
        d.notice_interval,
        Duration::from_millis(500)..=Duration::from_secs(60),
        "must be between 500ms and 60s (a spot notice gives two minutes); write e.g. \"5s\"",
    );
    let stop_timeout = bounded_duration(
        c,
        &raw.stop_timeout,
        "agent.stop_timeout",
        d.stop_timeout,
        Duration::from_secs(1)..=Duration::MAX,
        "must be at least 1s, or nothing is removed at the stop; write e.g. \"20s\"",
    );
    let metrics_textfile = raw.metrics_textfile.and_then(|v| metrics_textfile(c, &v));
    let metrics_listen = raw.metrics_listen.and_then(|v| match v.get_ref().parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            c.problem(
                v.span(),
                "agent.metrics_listen",
                format!(
                    "`{}` is not an address and port; write e.g. \"127.0.0.1:9469\"",
                    v.get_ref()
                ),
            );
            None
        }
    });
    AgentConfig {
        metrics_textfile,
        metrics_listen,
        reconcile_interval,
        notice_interval,
        drain: c.duration(&raw.drain, "agent.drain", d.drain),
        stop_timeout,
        join_spread: c.duration(&raw.join_spread, "agent.join_spread", d.join_spread),
        state_dir: raw
            .state_dir
            .map(|s| PathBuf::from(s.into_inner()))
            .unwrap_or(d.state_dir),
    }
}

/// A duration, `default` when not given; one given outside `within` is
/// reported with `advice`.
fn bounded_duration(
    c: &mut Checker,
    v: &Option<S<String>>,
    key: &str,
    default: Duration,
    within: RangeInclusive<Duration>,
    advice: &str,
) -> Duration {
    let d = c.duration(v, key, default);
    if let Some(v) = v
        && !within.contains(&d)
    {
        c.problem(v.span(), key, advice);
    }
    d
}

/// `[agent] metrics_textfile`: an absolute path in a directory that exists.
fn metrics_textfile(c: &mut Checker, v: &S<String>) -> Option<PathBuf> {
    let path = PathBuf::from(v.get_ref());
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let fine = path.is_absolute()
        && path.file_name().is_some()
        && dir.is_some_and(std::path::Path::is_dir);
    if fine {
        Some(path)
    } else {
        c.problem(
            v.span(),
            "agent.metrics_textfile",
            format!(
                "`{}` is not a file in an existing directory; write an absolute path in node_exporter's --collector.textfile.directory, e.g. \"/var/lib/prometheus/node-exporter/dnsreg.prom\"",
                path.display()
            ),
        );
        None
    }
}

/// `[lease]`: its ttl is required, and at least a minute.
pub(super) fn validate_lease(c: &mut Checker, l: &S<RawLease>) -> LeaseConfig {
    let ttl = c.duration(&l.get_ref().ttl, "lease.ttl", Duration::from_secs(3600));
    if l.get_ref().ttl.is_none() {
        c.problem(
            l.span(),
            "lease.ttl",
            "missing; write e.g. ttl = \"1h\" (refreshed every ttl/3)",
        );
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
}

/// A drain that leaves no time in `stop_timeout` for the removal before it.
pub(super) fn drain_within_stop_timeout(
    c: &mut Checker,
    agent: &AgentConfig,
    drain_span: Option<Range<usize>>,
) {
    if agent.drain >= agent.stop_timeout && !agent.drain.is_zero() {
        let message = format!(
            "drain ({}) must be shorter than stop_timeout ({}), which bounds the whole stop (removal, then drain)",
            humantime::format_duration(agent.drain),
            humantime::format_duration(agent.stop_timeout)
        );
        match drain_span {
            Some(span) => c.problem(span, "agent.drain", message),
            None => c.problems.push(Problem {
                line: None,
                key: "agent.drain".into(),
                message,
            }),
        }
    }
}
