//! `[providers.NAME] type = "mdns"`: its keys, and what multicast DNS cannot
//! publish of the record tables routed to it (RFC 6762/6763, and the
//! responder dnsreg uses, mdns-sd).

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::checker::Checker;
use super::raw::{RawConfig, RawProvider, S};
use crate::model::{MdnsConfig, Problem, ProviderConfig, ProviderKind, RecordSpec, SpecKind};
use crate::record::DomainName;

/// The host label a `[[service]]` through mdns providers alone points at
/// when neither `target` nor a `[[host]]` says one: a name of this
/// instance's own, so that the responder never publishes the machine's
/// host name, which avahi-daemon publishes too (research §1.6.4: a goodbye
/// or a different address set for it would flush or rename avahi's).
pub const DEFAULT_HOST: &str = "{instance_id}";

/// The longest service name label (RFC 6763 §7.2: 15 characters after `_`).
const SERVICE_NAME_MAX: usize = 15;

/// `[providers.NAME]` with `type = "mdns"` (its foreign keys are refused by
/// the caller).
pub(super) fn validate_mdns(
    c: &mut Checker,
    name: &str,
    p: &S<RawProvider>,
) -> Option<ProviderConfig> {
    let key = format!("providers.{name}");
    let raw = p.get_ref();
    let domain = match &raw.domain {
        None => Some(DomainName::new("local").expect("valid")),
        Some(d) if matches!(d.get_ref().trim_end_matches('.'), "local" | "LOCAL") => {
            Some(DomainName::new("local").expect("valid"))
        }
        Some(d) => {
            c.problem(
                d.span(),
                format!("{key}.domain"),
                format!(
                    "`{}` is not a domain multicast DNS is answered in here: the responder (mdns-sd) publishes only under .local (RFC 6762 §3); write domain = \"local\" or remove it",
                    d.get_ref()
                ),
            );
            None
        }
    };
    let mut interfaces = Vec::new();
    if let Some(list) = &raw.interfaces {
        for i in list.get_ref() {
            if i.is_empty() || i.len() > 15 || i.contains(['/', ' ']) {
                c.problem(
                    list.span(),
                    format!("{key}.interfaces"),
                    format!("`{i}` is not an interface name; write names as `ip link` shows them, e.g. [\"eth0\"]"),
                );
            }
            interfaces.push(i.clone());
        }
    }
    let service_file = raw.service_file.as_ref().map_or_else(
        || PathBuf::from(format!("/etc/avahi/services/dnsreg-{name}.service")),
        |f| PathBuf::from(f.get_ref()),
    );
    if let Some(f) = &raw.service_file
        && !f.get_ref().ends_with(".service")
    {
        c.problem(
            f.span(),
            format!("{key}.service_file"),
            "avahi-daemon loads only files ending in .service; write e.g. \"/etc/avahi/services/dnsreg-web.service\"",
        );
    }
    Some(ProviderConfig {
        name: name.to_string(),
        kind: ProviderKind::Mdns(MdnsConfig {
            domain: domain?,
            interfaces,
            service_file,
        }),
    })
}

/// The names of the `[providers]` tables of type mdns, as written.
pub(super) fn mdns_names(raw: &RawConfig) -> BTreeSet<String> {
    raw.providers
        .iter()
        .filter(|(_, p)| p.get_ref().kind.get_ref() == "mdns")
        .map(|(n, _)| n.clone())
        .collect()
}

/// What an mdns provider cannot publish of the records routed to it: a
/// problem for each (exit 2), a warning for a TTL it publishes otherwise.
pub(super) fn mdns_record_problems(
    c: &mut Checker,
    raw: &RawConfig,
    records: &[RecordSpec],
    providers: &[ProviderConfig],
    line_of: impl Fn(&Checker, &str) -> Option<usize>,
) {
    for r in records {
        let Some(p) = providers
            .iter()
            .find(|p| matches!(p.kind, ProviderKind::Mdns(_)) && r.providers.contains(&p.name))
        else {
            continue;
        };
        let problem = |key: &str, message: String| (format!("{}.{key}", r.origin), message);
        let found = match &r.kind {
            SpecKind::RoundRobin { .. } => Some(problem(
                "providers",
                format!(
                    "a [[round_robin]] name cannot go through mdns provider `{}`: on multicast DNS each name belongs to one host, which defends it against every other (RFC 6762 §9); use a [[host]] name of this instance's own, or a [[service]] that several instances publish",
                    p.name
                ),
            )),
            SpecKind::Srv { .. } => Some(problem(
                "providers",
                format!(
                    "a bare [[srv]] rrset cannot go through mdns provider `{}`: browsers find services on multicast DNS through DNS-SD (RFC 6763); write a [[service]] with type = \"_name._tcp\" instead",
                    p.name
                ),
            )),
            SpecKind::Service {
                priority, weight, ..
            } if *priority != 0 || *weight != 0 => Some(problem(
                "priority",
                format!(
                    "mdns provider `{}` publishes SRV priority and weight 0 only (its responder, mdns-sd, cannot set them), so clients would not see {priority}/{weight}; remove priority and weight, or route this service to another provider",
                    p.name
                ),
            )),
            SpecKind::Service { service_type, .. }
                if service_type.split('.').next().map_or(0, str::len) > SERVICE_NAME_MAX + 1 =>
            {
                Some(problem(
                    "type",
                    format!(
                        "`{service_type}`: a service name is at most {SERVICE_NAME_MAX} characters after its `_` (RFC 6763 §7.2), and mdns provider `{}` refuses longer ones",
                        p.name
                    ),
                ))
            }
            _ => None,
        };
        if let Some((key, message)) = found {
            let line = line_of(c, &key);
            c.problems.push(Problem { line, key, message });
        } else if ttl_written(raw, &r.origin) {
            tracing::warn!(
                "{}.ttl: mdns provider `{}` publishes the TTLs of RFC 6762 §10 (120 s for host and SRV records, 75 min for PTR and TXT), not {} s; goodbyes remove its records at once when it leaves",
                r.origin,
                p.name,
                r.ttl
            );
        }
    }
}

/// Whether the record table at `origin` (`service[2]`) has `ttl` written.
fn ttl_written(raw: &RawConfig, origin: &str) -> bool {
    let Some((table, rest)) = origin.split_once('[') else {
        return false;
    };
    let Some(index) = rest
        .split_once(']')
        .and_then(|(i, _)| i.parse::<usize>().ok())
    else {
        return false;
    };
    match table {
        "host" => raw
            .host
            .get(index)
            .is_some_and(|h| h.get_ref().ttl.is_some()),
        "service" => raw
            .service
            .get(index)
            .is_some_and(|s| s.get_ref().ttl.is_some()),
        _ => false,
    }
}
